#!/usr/bin/env bash
# The resolver for school devices away from school: DNS over HTTPS (h2load, HTTP/2 GETs) and
# DNS over TLS (kdig processes, each keeping one connection open), beside plain UDP
# (dnsperf) for the same names, on loopback inside a private network namespace. The device
# asks by its off-site id; allowed names come from the answer cache (the fake upstream,
# lab-peer, answers the first ask), blocked names are answered NXDOMAIN by the policy. Not a
# test: prints figures for docs/PERFORMANCE.md.
#
# Needs root and: dnsperf knot-dnsutils nghttp2-client openssl (Debian packages), a release
# build:
#   cargo build --release -p schoolgate-agent -p schoolgate-lab
# Usage: bench/offsite.sh [SECONDS per run, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
root=$PWD
agent=$root/target/release/schoolgate-agent
peer=$root/target/release/lab-peer
for tool in dnsperf kdig h2load openssl "$agent" "$peer"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace)" >&2; exit 1; }

ns=sgoffsite$$
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 127.0.0.53/8 dev lo 2>/dev/null || true
# (The servers are started with `ip netns exec` itself, not this function, so that `$!` is
# their own process id and the cleanup's kill reaches them.)
in_ns() { ip netns exec "$ns" "$@"; }

id=ict-suite-01-k7q2
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=dns.bench.test -addext "subjectAltName=DNS:dns.bench.test,DNS:*.dns.bench.test" \
    -keyout "$work/dns.key" -out "$work/dns.crt" 2>/dev/null
# The policy in a directory of its own: the agent watches the policy's directory for saves,
# and the runs below write their output beside it (dnsperf -v, a line per answer), which
# would keep the watcher busy as a quiet /etc/schoolgate never does.
mkdir -p "$work/etc"
cat > "$work/etc/policy.yaml" <<YAML
version: 1
school: { name: Bench School, timezone: UTC }
categories:
  social: { domains: [facebook.com, instagram.com] }
groups:
  school_computers:
    devices:
      - { mac: "52:54:00:12:34:56", name: ICT-Suite-01, off_site_id: $id }
rules:
  - { name: No social, groups: [school_computers], block: [social] }
gateway:
  dns: { listen: ["127.0.0.1:5300"], upstreams: ["127.0.0.53:53"], block_response: nxdomain, rate_limit: 10000000 }
  state_dir: $work/state
  off_site:
    server_name: dns.bench.test
    doh: ["127.0.0.1:8443"]
    dot: ["127.0.0.1:8853"]
    cert_file: $work/dns.crt
    key_file: $work/dns.key
    rate_limit: 10000000
YAML

ip netns exec "$ns" "$peer" dns 127.0.0.53:53 2>/dev/null &
pids+=($!)
ip netns exec "$ns" "$agent" run --policy "$work/etc/policy.yaml" --no-firewall --no-inspection \
    2>"$work/agent.log" &
pids+=($!)
for _ in $(seq 50); do
    in_ns kdig @127.0.0.1 -p 8853 +tls +tls-hostname=$id.dns.bench.test +tls-ca="$work/dns.crt" +time=1 +retry=0 \
        www.example.org 2>/dev/null | grep -q NOERROR && break
    sleep 0.2
done

# The names, in wire form for DoH GETs (base64url, no padding).
b64() { python3 -c "import base64,struct,sys
n=sys.argv[1]; q=struct.pack('>HHHHHH',0,0x0100,1,0,0,0)+b''.join(bytes([len(l)])+l.encode() for l in n.split('.'))+b'\0'+struct.pack('>HH',1,1)
print(base64.urlsafe_b64encode(q).decode().rstrip('='))" "$1"; }

printf '%-10s %-8s %12s\n' transport kind 'queries/s'
for kind in cached blocked; do
    case $kind in
        cached) name=www.example.org ;;
        blocked) name=www.facebook.com ;;
    esac
    # UDP, for scale.
    # (`yes | head` would end in SIGPIPE, which pipefail counts as a failure.)
    for _ in $(seq 1000); do echo "$name A"; done > "$work/q.txt"
    udp=$(in_ns dnsperf -s 127.0.0.1 -p 5300 -d "$work/q.txt" -l "$secs" -c 4 -q 200 2>/dev/null \
        | awk '/Queries per second/ {print int($4)}')
    printf '%-10s %-8s %12s\n' udp "$kind" "$udp"
    # DNS over HTTPS: 8 connections, 32 streams each, GET.
    url="https://127.0.0.1:8443/dns-query/$id?dns=$(b64 "$name")"
    doh=$(in_ns h2load -D "$secs" -c 8 -m 32 -t 2 "$url" 2>/dev/null \
        | awk '/^finished in/ {gsub(",", "", $4); print int($4)}')
    doh_ok=$(in_ns h2load -n 1000 -c 1 -m 1 "$url" 2>/dev/null | awk '/^status codes:/ {print $3}')
    printf '%-10s %-8s %12s   (200s in a check of 1000: %s)\n' doh "$kind" "$doh" "$doh_ok"
    # DNS over TLS: 8 kdig processes, each asking 4000 questions over one connection.
    names=$(for _ in $(seq 4000); do printf '%s ' "$name"; done)
    start=$(date +%s.%N)
    for _ in $(seq 8); do
        # shellcheck disable=SC2086
        in_ns kdig @127.0.0.1 -p 8853 +tls +keepopen +tls-hostname=$id.dns.bench.test +tls-ca="$work/dns.crt" \
            +noall +time=2 +retry=0 $names >/dev/null 2>&1 &
    done
    wait_for=$(jobs -p | grep -v -w -e "${pids[0]}" -e "${pids[1]}" || true)
    # shellcheck disable=SC2086
    [ -z "$wait_for" ] || wait $wait_for
    end=$(date +%s.%N)
    dot=$(python3 -c "print(int(8*4000/($end-$start)))")
    printf '%-10s %-8s %12s\n' dot "$kind" "$dot"
done
