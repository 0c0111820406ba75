#!/usr/bin/env bash
# schoolgate's resolver against Unbound, with dnsperf, on loopback inside a private network
# namespace. Both filter the same blocklist (the repository's lists/, answered NXDOMAIN) and
# forward everything else to the same fake upstream (lab-peer). Not a test: prints figures
# for docs/PERFORMANCE.md.
#
# Needs root and: dnsperf unbound (Debian packages), a release build:
#   cargo build --release -p schoolgate-agent -p schoolgate-lab
# Usage: [KINDS='cached blocked blocked_new uncached paced'] [ROUNDS=1] [FIREWALL=on] bench/dnsperf.sh [SECONDS per run, default 10]
#
# FIREWALL=on runs the agent with its firewall (loopback as the LAN interface, so no packet
# is redirected): every answer is then also handed to the firewall's thread, as on a gateway.
#
# With ROUNDS > 1 every kind is measured that many times, the servers taking turns to go
# first, and the median ratio of schoolgate's rate to Unbound's is printed per kind.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-10}
root=$PWD
agent=$root/target/release/schoolgate-agent
peer=$root/target/release/lab-peer
for tool in dnsperf unbound "$agent" "$peer"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace)" >&2; exit 1; }

ns=sgbench$$
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
in_ns() { ip netns exec "$ns" "$@"; }

# The blocklist: every domain in lists/*.txt.
# Domains only: the lists' addresses and networks are the firewall's, not names to ask for,
# and a `[service]` line names the service the domains below it belong to.
cat lists/*.txt | sed 's/#.*//' | tr -d ' \t\r' | grep -v '^$' | grep -Ev '^\[|^[0-9.]+(/[0-9]+)?$|:' \
    | sort -u > "$work/blocked-domains"
n_blocked=$(wc -l < "$work/blocked-domains")

# schoolgate: one group for loopback, one rule blocking every list.
lists=$(ls lists/*.txt | sed "s|^|$root/|" | paste -sd, -)
# The policy in a directory of its own: the agent watches the policy's directory for saves,
# and the runs below write their output beside it (dnsperf -v, a line per answer), which
# would keep the watcher busy as a quiet /etc/schoolgate never does.
mkdir -p "$work/etc"
cat > "$work/etc/policy.yaml" <<YAML
version: 1
school: { name: Bench School, timezone: UTC }
categories:
  everything: { lists: [$lists] }
groups:
  bench: { networks: [127.0.0.0/8] }
rules:
  - { name: Block the lists, groups: [bench], block: [everything] }
gateway:
  dns: { listen: ["127.0.0.1:5300"], upstreams: ["127.0.0.53:53"], block_response: nxdomain, rate_limit: 10000000 }
  state_dir: $work/state
YAML
firewall_flag=--no-firewall
if [ "${FIREWALL:-off}" = on ]; then
    firewall_flag=
    printf '  lan_interfaces: [lo]\n  firewall: { on_stop: fail_open }\n' >> "$work/etc/policy.yaml"
fi

# Unbound: the same domains as always_nxdomain local zones, forwarding the rest.
unbound_conf "$work" 5301 "$work/blocked-domains" > "$work/unbound.conf"

ip netns exec "$ns" "$peer" dns 127.0.0.53:53 2>"$work/peer.log" & pids+=($!)
ip netns exec "$ns" "$agent" run --policy "$work/etc/policy.yaml" $firewall_flag --no-inspection 2>"$work/agent.log" & pids+=($!)
ip netns exec "$ns" unbound -c "$work/unbound.conf" 2>"$work/unbound.log" & pids+=($!)
for port in 5300 5301; do
    for _ in $(seq 50); do
        in_ns dig +short +time=1 +tries=1 -p $port @127.0.0.1 ready.example A >/dev/null 2>&1 && break
        sleep 0.2
    done
done

# Query files.
awk '{print $1" A"}' "$work/blocked-domains" > "$work/q-blocked"
for i in $(seq 1 200); do echo "www.site$i.example.org A"; done > "$work/q-cached"
# Names neither server has seen: new ones for every server and round.
uncached() { # port round
    local f=$work/q-uncached-$1-$2
    awk -v n=3000000 -v s="$$-$1-$2" 'BEGIN{for(i=0;i<n;i++) printf "u%d-%s.example.com A\n", i, s}' > "$f"
    echo "$f"
}

# Blocked names never asked before (under the listed domains), new for every server and
# round: each is a first sighting, which schoolgate writes to its journal before answering.
blocked_new() { # port round
    local f=$work/q-blocked-new-$1-$2
    awk -v n=3000000 -v s="$$-$1-$2" '{d[m++]=$1} END{for(i=0;i<n;i++) printf "n%d-%s.%s A\n", i, s, d[i%m]}' \
        "$work/blocked-domains" > "$f"
    echo "$f"
}

# Warm both caches with the cached names.
for port in 5300 5301; do
    in_ns dnsperf -s 127.0.0.1 -p $port -d "$work/q-cached" -n 2 >/dev/null
done

# dnsperf -v prints one line per answer ending in its latency in seconds.
summarise() { # label port file
    local out=$work/out-$1-$2
    in_ns dnsperf -s 127.0.0.1 -p "$2" -d "$3" -l "$secs" -c "${CLIENTS:-16}" -q 200 -v > "$out" 2>&1 || true
    local qps lost
    qps=$(awk '/Queries per second/{print $4}' "$out")
    lost=$(awk '/Queries lost/{print $3}' "$out")
    grep -E '^> ' "$out" | awk '{print $NF}' | sort -g > "$out.lat"
    local n p50 p99
    n=$(wc -l < "$out.lat")
    p50=$(awk -v n="$n" 'NR==int(n*0.50)+1{printf "%.3f", $1*1000}' "$out.lat")
    p99=$(awk -v n="$n" 'NR==int(n*0.99)+1{printf "%.3f", $1*1000}' "$out.lat")
    printf "| %-22s | %-9s | %10s | %6s | %8s | %8s |\n" "$1" "$( [ "$2" = 5300 ] && echo schoolgate || echo unbound )" "$qps" "$lost" "$p50" "$p99"
    echo "$1 $2 $qps" >> "$work/rates"
}
# Latency at a fixed, moderate rate, where queueing in the client does not dominate.
paced() { # label port file rate
    local out=$work/paced-$1-$2
    in_ns dnsperf -s 127.0.0.1 -p "$2" -d "$3" -l "$secs" -Q "$4" -v > "$out" 2>&1 || true
    grep -E '^> ' "$out" | awk '{print $NF}' | sort -g > "$out.lat"
    local n p50 p99 qps
    qps=$(awk '/Queries per second/{print $4}' "$out")
    n=$(wc -l < "$out.lat")
    p50=$(awk -v n="$n" 'NR==int(n*0.50)+1{printf "%.3f", $1*1000}' "$out.lat")
    p99=$(awk -v n="$n" 'NR==int(n*0.99)+1{printf "%.3f", $1*1000}' "$out.lat")
    printf "| %-22s | %-9s | %10s | %6s | %8s | %8s |\n" "$1 @$4 qps" "$( [ "$2" = 5300 ] && echo schoolgate || echo unbound )" "$qps" "-" "$p50" "$p99"
}

echo "blocklist: $n_blocked domains; ${secs}s per run; $(nproc) cores"
echo "| queries                | server    |        qps |   lost | p50 (ms) | p99 (ms) |"
echo "|------------------------|-----------|-----------:|-------:|---------:|---------:|"
kinds=${KINDS:-cached blocked uncached paced}
rounds=${ROUNDS:-1}
: > "$work/rates"
for round in $(seq "$rounds"); do
    for kind in $kinds; do
        ports="5300 5301"
        [ $((round % 2)) = 0 ] && ports="5301 5300"
        for port in $ports; do
            case $kind in
                uncached) summarise uncached $port "$(uncached $port "$round")" ;;
                blocked_new) summarise blocked_new $port "$(blocked_new $port "$round")" ;;
                paced) paced cached $port "$work/q-cached" 20000 ;;
                *) summarise "$kind" $port "$work/q-$kind" ;;
            esac
        done
    done
done

# Median over rounds of schoolgate's rate divided by Unbound's, per kind.
if [ "$rounds" -gt 1 ]; then
    for kind in $kinds; do
        awk -v k="$kind" '$1==k && $2==5300 {s[++i]=$3} $1==k && $2==5301 {u[++j]=$3}
            END {for (n=1; n<=i; n++) printf "%.3f\n", s[n]/u[n]}' "$work/rates" | sort -g > "$work/ratios"
        [ -s "$work/ratios" ] || continue
        n=$(wc -l < "$work/ratios")
        echo "$kind: ratios $(paste -sd' ' "$work/ratios"); median $(awk -v n="$n" 'NR==int((n+1)/2)' "$work/ratios")"
    done
fi
