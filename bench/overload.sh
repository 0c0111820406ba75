#!/usr/bin/env bash
# The resolver under overload: more new names than the upstream can answer. The upstream
# (lab-peer dns-slow) answers at most RATE queries a second and drops the rest. Cached and
# blocked names are asked at full speed alone, then again while a third client floods the
# resolver with names never seen; the rates of the first two should hold, and the misses
# beyond what the upstream answers should be shed with SERVFAIL at once (counted in
# /metrics) rather than queue. Not a test: prints figures for docs/PERFORMANCE.md.
#
# Needs root and: dnsperf (Debian package), a release build:
#   cargo build --release -p schoolgate-agent -p schoolgate-lab
# Usage: [RATE=2000] [FLOOD=20000] bench/overload.sh [SECONDS per run, default 10]
#
# The flood is FLOOD new names a second (10 times what the upstream answers by default);
# FLOOD=0 floods as fast as dnsperf can, which saturates the machine itself: then every
# client's share of the resolver's queues follows how much it has outstanding.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rate=${RATE:-2000}
flood=${FLOOD:-20000}
root=$PWD
agent=$root/target/release/schoolgate-agent
peer=$root/target/release/lab-peer
for tool in dnsperf curl "$agent" "$peer"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace)" >&2; exit 1; }

ns=sgoverload$$
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

cat > "$work/policy.yaml" <<YAML
version: 1
school: { name: Bench School, timezone: UTC }
categories:
  social: { domains: [facebook.com, instagram.com, tiktok.com] }
groups:
  bench: { networks: [127.0.0.0/8] }
rules:
  - { name: No social, groups: [bench], block: [social] }
gateway:
  dns: { listen: ["127.0.0.1:5300"], upstreams: ["127.0.0.53:53"], block_response: nxdomain, rate_limit: 10000000 }
  state_dir: $work/state
YAML

ip netns exec "$ns" "$peer" dns-slow 127.0.0.53:53 "$rate" 2>/dev/null &
pids+=($!)
ip netns exec "$ns" "$agent" run --policy "$work/policy.yaml" --no-firewall --no-inspection \
    --metrics-listen 127.0.0.1:9153 2>"$work/agent.log" &
pids+=($!)
for _ in $(seq 50); do
    in_ns dnsperf -s 127.0.0.1 -p 5300 -n 1 -d <(echo "ready.example A") 2>/dev/null \
        | grep -q 'NOERROR 1' && break
    sleep 0.2
done

for i in $(seq 1 100); do echo "www.site$i.example.org A"; done > "$work/q-cached"
for d in facebook.com instagram.com tiktok.com; do
    for i in $(seq 1 30); do echo "p$i.$d A"; done
done > "$work/q-blocked"
awk -v n=3000000 -v s="$$" 'BEGIN{for(i=0;i<n;i++) printf "u%d-%s.example.com A\n", i, s}' \
    > "$work/q-new"
# Warm the cache within the upstream's rate.
in_ns dnsperf -s 127.0.0.1 -p 5300 -d "$work/q-cached" -n 1 -Q 500 >/dev/null 2>&1
# The blocked names' first sightings, journaled, out of the way.
in_ns dnsperf -s 127.0.0.1 -p 5300 -d "$work/q-blocked" -n 1 >/dev/null 2>&1

run() { # label file clients outstanding [max queries a second]
    local limit=()
    if [ "${5:-0}" != 0 ]; then limit=(-Q "$5"); fi
    in_ns dnsperf -s 127.0.0.1 -p 5300 -d "$2" -l "$secs" -c "$3" -q "$4" "${limit[@]}" \
        > "$work/out-$1" 2>&1 || true
}
field() { # label field
    awk -v f="$2" '$0 ~ f {print $0}' "$work/out-$1"
}
qps() { awk '/Queries per second/ {print int($4)}' "$work/out-$1"; }
metric() {
    in_ns curl -s http://127.0.0.1:9153/metrics | awk -v m="$1" '$1 == m {print $2}'
}

# Alone: cached and blocked together, two clients each.
run cached-alone "$work/q-cached" 2 100 &
a=$!
run blocked-alone "$work/q-blocked" 2 100 &
b=$!
wait "$a" "$b"
shed_before=$(metric schoolgate_dns_upstream_shed_total)
# Under a flood of new names.
run new "$work/q-new" 4 5000 "$flood" &
n=$!
sleep 1
run cached-flood "$work/q-cached" 2 100 &
a=$!
run blocked-flood "$work/q-blocked" 2 100 &
b=$!
wait "$n" "$a" "$b"
shed_after=$(metric schoolgate_dns_upstream_shed_total)

printf 'upstream answers at most %s queries a second; flood %s new names a second (0: unpaced); %s s per run\n' \
    "$rate" "$flood" "$secs"
printf '%-28s %12s\n' run 'queries/s'
printf '%-28s %12s\n' 'cached, alone' "$(qps cached-alone)"
printf '%-28s %12s\n' 'blocked, alone' "$(qps blocked-alone)"
printf '%-28s %12s\n' 'cached, under the flood' "$(qps cached-flood)"
printf '%-28s %12s\n' 'blocked, under the flood' "$(qps blocked-flood)"
printf '%-28s %12s\n' 'new names (the flood)' "$(qps new)"
field new 'Response codes' | sed 's/^ */  flood answers: /'
field new 'Queries lost' | sed 's/^ */  flood /'
field new 'Average Latency' | head -1 | sed 's/^ */  flood /'
printf '  shed with SERVFAIL (schoolgate_dns_upstream_shed_total): %s\n' \
    "$(( ${shed_after%.*} - ${shed_before%.*} ))"
