#!/usr/bin/env bash
# Live capture at a steady packet rate, in two network namespaces joined by a veth pair:
# `lab-flood` sends RATE packets a second for SECONDS from one side (TLS flows and WireGuard
# flows, each a flow start followed by BULK 1,400-byte data packets); on the other,
# `schoolgate-agent watch` captures on the interface as the daemon does (the same socket,
# kernel filter and pipeline, judged by the repository's policy.yaml) and prints what it saw.
# The receiving side drops every packet in netfilter's prerouting, after capture, so nothing
# answers. Prints, with and without the kernel filter: packets sent, frames that reached user
# space, the share the kernel filter dropped, flow starts sent and flow starts not seen. Not
# a test: figures go to docs/PERFORMANCE.md. Needs root; sends nothing outside its namespaces.
#
# Usage: bench/live.sh [RATE, default 100000] [SECONDS, default 5] [BULK, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-100000}
seconds=${2:-5}
bulk=${3:-8}
[ "$(id -u)" = 0 ] || { echo "bench/live.sh builds network namespaces: run it as root" >&2; exit 1; }

cargo build -q --release -p schoolgate-agent -p schoolgate-lab --bins
agent=target/release/schoolgate-agent
flood=target/release/lab-flood
gen=sgbench-gen-$$
gw=sgbench-gw-$$
tmp=$(mktemp -d)
cleanup() {
    ip netns del "$gen" 2>/dev/null || true
    ip netns del "$gw" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$gen"
ip netns add "$gw"
ip link add sgb0 netns "$gen" type veth peer name lan0 netns "$gw"
ip -n "$gen" addr add 10.200.0.2/24 dev sgb0
ip -n "$gw" addr add 10.200.0.1/24 dev lan0
ip -n "$gen" link set sgb0 up
ip -n "$gw" link set lan0 up
ip -n "$gen" route add 198.18.0.0/24 via 10.200.0.1
ip netns exec "$gw" nft add table inet bench
ip netns exec "$gw" nft add chain inet bench pre '{ type filter hook prerouting priority -400; policy drop; }'

softnet_drops() {
    # Second column of /proc/net/softnet_stat: packets the kernel's input backlog dropped
    # (hexadecimal, one line per CPU).
    local s=0 line
    while read -r -a line; do s=$((s + 16#${line[1]})); done </proc/net/softnet_stat
    echo "$s"
}

run() {
    local mode=$1 flag=""
    [ "$mode" = unfiltered ] && flag=--unfiltered
    local before after
    before=$(softnet_drops)
    ip netns exec "$gw" "$agent" watch --interface lan0 --policy policy.yaml --json \
        --seconds $((seconds + 3)) $flag >"$tmp/seen-$mode" 2>"$tmp/watch-$mode" &
    local watcher=$!
    sleep 1
    ip netns exec "$gen" "$flood" 10.200.0.2 198.18.0.1 "$rate" "$seconds" "$bulk" >"$tmp/sent-$mode"
    wait "$watcher"
    after=$(softnet_drops)
    local sent starts achieved errors frames tls wg seen
    sent=$(grep -o '"packets":[0-9]*' "$tmp/sent-$mode" | cut -d: -f2)
    starts=$(grep -o '"flow_starts":[0-9]*' "$tmp/sent-$mode" | cut -d: -f2)
    achieved=$(grep -o '"rate":[0-9]*' "$tmp/sent-$mode" | cut -d: -f2)
    errors=$(grep -o '"errors":[0-9]*' "$tmp/sent-$mode" | cut -d: -f2)
    frames=$(grep -o '[0-9]* frames' "$tmp/watch-$mode" | cut -d' ' -f1)
    tls=$(grep -o '"name":"f[0-9]*\.bench\.lab"' "$tmp/seen-$mode" | sort -u | wc -l)
    wg=$(grep '"technique":"wireguard"' "$tmp/seen-$mode" | grep -o '"client":"[^"]*","server":"[^"]*"' | sort -u | wc -l)
    seen=$((tls + wg))
    awk -v m="$mode" -v s="$sent" -v r="$achieved" -v e="$errors" -v f="$frames" -v st="$starts" \
        -v seen="$seen" -v d=$((after - before)) 'BEGIN {
        printf "%-10s sent %d packets (%d/s, %d send errors); %d reached user space; kernel filter dropped %.1f%%\n",
            m, s, r, e, f, (s > 0 ? 100 * (s - f) / s : 0)
        printf "%-10s flow starts sent %d, seen %d, lost %d; input backlog drops %d\n", m, st, seen, st - seen, d
    }'
}

echo "rate $rate packets/s for $seconds s, $bulk bulk packets per flow start"
run filtered
run unfiltered
