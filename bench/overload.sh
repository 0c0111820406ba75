#!/usr/bin/env bash
# The resolver under overload: more new names than the upstream can answer, for schoolgate
# and for Unbound in turn, on loopback inside a private network namespace. The upstream
# (lab-peer dns-slow) answers at most RATE queries a second and drops the rest. Cached and
# blocked names are asked alone, then again while a third client asks FLOOD new names a
# second; their rates should hold, and the misses beyond what the upstream answers should be
# shed with SERVFAIL at once (counted in /metrics) rather than queue. Not a test: prints
# figures for docs/PERFORMANCE.md.
#
# Needs root and: dnsperf unbound curl (Debian packages), a release build:
#   cargo build --release -p schoolgate-agent -p schoolgate-lab
# Usage: [RATE=2000] [FLOOD=20000] [PACE=20000] [SERVERS='schoolgate unbound'] bench/overload.sh [SECONDS per run, default 10]
#
# Two ways of asking the cached and blocked names, each alone and then beside the flood:
# - paced: PACE queries a second each (what a school asks of its gateway): their rate, the
#   answers lost, and the 99th percentile latency should not move;
# - as fast as the clients can (two clients each, 100 outstanding): on a machine with few
#   cores the clients, the flood's client and the resolver share them, so these rates fall
#   beside the flood whatever the resolver does; Unbound on the same run is the yardstick.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-10}
rate=${RATE:-2000}
flood=${FLOOD:-20000}
pace=${PACE:-20000}
servers=${SERVERS:-schoolgate unbound}
root=$PWD
agent=$root/target/release/schoolgate-agent
peer=$root/target/release/lab-peer
for tool in dnsperf unbound curl "$agent" "$peer"; do
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

blocked_domains="facebook.com instagram.com tiktok.com"
# The policy in a directory of its own: the agent watches the policy's directory for saves,
# and the runs below write their output beside it (dnsperf -v, a line per answer), which
# would keep the watcher busy as a quiet /etc/schoolgate never does.
mkdir -p "$work/etc"
cat > "$work/etc/policy.yaml" <<YAML
version: 1
school: { name: Bench School, timezone: UTC }
categories:
  social: { domains: [$(echo $blocked_domains | sed 's/ /, /g')] }
groups:
  bench: { networks: [127.0.0.0/8] }
rules:
  - { name: No social, groups: [bench], block: [social] }
gateway:
  dns: { listen: ["127.0.0.1:5300"], upstreams: ["127.0.0.53:53"], block_response: nxdomain, rate_limit: 10000000 }
  state_dir: $work/state
YAML
# Unbound: the same domains as always_nxdomain local zones, forwarding the rest.
printf '%s\n' $blocked_domains > "$work/blocked-domains"
unbound_conf "$work" 5301 "$work/blocked-domains" > "$work/unbound.conf"

ip netns exec "$ns" "$peer" dns-slow 127.0.0.53:53 "$rate" 2>/dev/null &
pids+=($!)

for i in $(seq 1 100); do echo "www.site$i.example.org A"; done > "$work/q-cached"
for d in $blocked_domains; do
    for i in $(seq 1 30); do echo "p$i.$d A"; done
done > "$work/q-blocked"

port_of() { case $1 in schoolgate) echo 5300 ;; unbound) echo 5301 ;; esac; }

start() { # server
    case $1 in
        schoolgate)
            ip netns exec "$ns" "$agent" run --policy "$work/etc/policy.yaml" --no-firewall \
                --no-inspection --metrics-listen 127.0.0.1:9153 2>"$work/agent.log" &
            ;;
        unbound)
            ip netns exec "$ns" unbound -c "$work/unbound.conf" 2>"$work/unbound.log" &
            ;;
    esac
    server_pid=$!
    pids+=("$server_pid")
    local port
    port=$(port_of "$1")
    for _ in $(seq 50); do
        in_ns dnsperf -s 127.0.0.1 -p "$port" -n 1 -d <(echo "ready.example A") 2>/dev/null \
            | grep -q 'NOERROR 1' && break
        sleep 0.2
    done
    # Warm the cache within the upstream's rate, and see the blocked names once (schoolgate
    # journals a first sighting) out of the way.
    in_ns dnsperf -s 127.0.0.1 -p "$port" -d "$work/q-cached" -n 1 -Q 500 >/dev/null 2>&1
    in_ns dnsperf -s 127.0.0.1 -p "$port" -d "$work/q-blocked" -n 1 >/dev/null 2>&1
}

stop() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}

# One dnsperf run. Paced runs print every answer's latency (-v) for the percentiles.
run() { # label port file clients outstanding [queries a second, 0: as fast as it can]
    local extra=()
    if [ "${6:-0}" != 0 ]; then extra=(-Q "$6" -v); fi
    in_ns dnsperf -s 127.0.0.1 -p "$2" -d "$3" -l "$secs" -c "$4" -q "$5" "${extra[@]}" \
        > "$work/out-$1" 2>&1 || true
}
qps() { awk '/Queries per second/ {print int($4)}' "$work/out-$1"; }
lost() { awk '/Queries lost/ {print $3}' "$work/out-$1"; }
p99() {
    grep -E '^> ' "$work/out-$1" | awk '{print $NF}' | sort -g > "$work/lat-$1"
    local n
    n=$(wc -l < "$work/lat-$1")
    awk -v n="$n" 'NR==int(n*0.99)+1{printf "%.2f", $1*1000}' "$work/lat-$1"
}
new_names() { # server round
    awk -v n=3000000 -v s="$$-$1-$2" 'BEGIN{for(i=0;i<n;i++) printf "u%d-%s.example.com A\n", i, s}' \
        > "$work/q-new"
}
metric() {
    in_ns curl -s http://127.0.0.1:9153/metrics | awk -v m="$1" '$1 == m {print $2}'
}

# Cached and blocked together, alone and then beside the flood. `how` is paced or full.
measure() { # server how
    local port=$(port_of "$1") how=$2 limit=0 clients=2
    if [ "$how" = paced ]; then limit=$pace; clients=1; fi
    run "$1-$how-cached-alone" "$port" "$work/q-cached" "$clients" 100 "$limit" &
    local a=$!
    run "$1-$how-blocked-alone" "$port" "$work/q-blocked" "$clients" 100 "$limit" &
    local b=$!
    wait "$a" "$b"
    new_names "$1" "$how"
    local shed_before=0
    [ "$1" = schoolgate ] && shed_before=$(metric schoolgate_dns_upstream_shed_total)
    run "$1-$how-new" "$port" "$work/q-new" 4 5000 "$flood" &
    local n=$!
    sleep 1
    run "$1-$how-cached-flood" "$port" "$work/q-cached" "$clients" 100 "$limit" &
    a=$!
    run "$1-$how-blocked-flood" "$port" "$work/q-blocked" "$clients" 100 "$limit" &
    b=$!
    wait "$n" "$a" "$b"
    if [ "$1" = schoolgate ]; then
        local shed_after
        shed_after=$(metric schoolgate_dns_upstream_shed_total)
        echo "$(( ${shed_after%.*} - ${shed_before%.*} ))" > "$work/shed-$how"
    fi
}

row() { # server how kind
    local alone=$1-$2-$3-alone flood=$1-$2-$3-flood
    if [ "$2" = paced ]; then
        printf '| %-10s | %-6s | %-7s | %9s | %9s | %5s | %5s | %7s | %7s |\n' "$1" "$2" "$3" \
            "$(qps "$alone")" "$(qps "$flood")" "$(lost "$alone")" "$(lost "$flood")" \
            "$(p99 "$alone")" "$(p99 "$flood")"
    else
        printf '| %-10s | %-6s | %-7s | %9s | %9s | %5s | %5s | %7s | %7s |\n' "$1" "$2" "$3" \
            "$(qps "$alone")" "$(qps "$flood")" "$(lost "$alone")" "$(lost "$flood")" - -
    fi
}

for server in $servers; do
    start "$server"
    measure "$server" paced
    measure "$server" full
    stop
done

printf 'upstream answers at most %s queries a second; flood %s new names a second; paced %s a second each; %s s per run; %s cores\n' \
    "$rate" "$flood" "$pace" "$secs" "$(nproc)"
echo '| server     | asked  | names   | q/s alone | q/s flood | lost  | lost  | p99 ms  | p99 ms  |'
echo '|            |        |         |           |           | alone | flood | alone   | flood   |'
echo '|------------|--------|---------|----------:|----------:|------:|------:|--------:|--------:|'
for server in $servers; do
    for how in paced full; do
        for kind in cached blocked; do row "$server" "$how" "$kind"; done
    done
done
echo
echo '| server     | asked  | flood q/s | NOERROR | SERVFAIL | lost | shed (schoolgate_dns_upstream_shed_total) |'
echo '|------------|--------|----------:|--------:|---------:|-----:|---------:|'
for server in $servers; do
    for how in paced full; do
        out=$work/out-$server-$how-new
        printf '| %-10s | %-6s | %9s | %7s | %8s | %4s | %8s |\n' "$server" "$how" \
            "$(qps "$server-$how-new")" \
            "$(awk '/Response codes/ {for (i=1;i<=NF;i++) if ($i=="NOERROR") print $(i+1)}' "$out" | tr -d ,)" \
            "$(awk '/Response codes/ {for (i=1;i<=NF;i++) if ($i=="SERVFAIL") print $(i+1)}' "$out" | tr -d ,)" \
            "$(lost "$server-$how-new")" \
            "$( [ "$server" = schoolgate ] && cat "$work/shed-$how" || echo -)"
    done
done
