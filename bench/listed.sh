#!/usr/bin/env bash
# What a large address list costs: the shipped policy with its Tor relay list replaced by N
# addresses (default 10,000, more than the whole Tor network), timed through
# `print-ruleset` (policy load, every listed address judged for every group, table text) and
# `nft -f` (the kernel loading that table) in a private network namespace. Not a test: prints
# figures for docs/PERFORMANCE.md.
#
# Needs root, nft, and a release build:  cargo build --release -p schoolgate-agent
# Usage: bench/listed.sh [N] [ROUNDS, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
rounds=${2:-5}
agent=$PWD/target/release/schoolgate-agent
[ -x "$agent" ] || { echo "missing: $agent" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace)" >&2; exit 1; }

ns=sglisted$$
work=$(mktemp -d)
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$ns"

cp policy.yaml "$work/" && cp -r lists "$work/"
# N distinct addresses spread over 100.64.0.0/10 (so few are neighbours to be joined).
awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) { v = i * 37; printf "100.%d.%d.%d\n", 64 + int(v / 65536) % 64, int(v / 256) % 256, v % 256 } }' \
    > "$work/lists/tor_relays.txt"

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
for r in $(seq "$rounds"); do
    t=$(date +%s%N)
    "$agent" print-ruleset --policy "$work/policy.yaml" --at 2026-11-24T10:00 > "$work/table.nft"
    build=$(ms "$t")
    t=$(date +%s%N)
    ip netns exec "$ns" nft -f "$work/table.nft"
    load=$(ms "$t")
    elements=$(grep -o 'listed_group_[a-z_]*_v4 {[^}]*elements = {[^}]*}' "$work/table.nft" | tr ',' '\n' | wc -l)
    echo "round $r: $n listed addresses, $elements elements in the groups' sets: build ${build} ms, nft load ${load} ms"
done
