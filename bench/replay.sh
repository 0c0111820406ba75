#!/usr/bin/env bash
# Inspection throughput beside nDPI's on the same captures, in one run: the `replay`
# criterion bench (every frame of ../shared/corpus held in memory, through the pipeline and
# the policy, on one core) and ndpiReader (Debian: libndpi-bin) over each of the same files,
# using nDPI's own "nDPI throughput" timing (packet processing only, like ours; the median of
# LOOPS passes per file), combined over the corpus as total packets / total time. Prints both
# and the ratio. Not a test: figures go to docs/PERFORMANCE.md.
#
# Usage: bench/replay.sh [LOOPS, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
loops=${1:-20}
corpus=../shared/corpus/pcap
[ -d "$corpus" ] || { echo "the shared corpus ($corpus) is not here" >&2; exit 1; }
command -v ndpiReader >/dev/null || { echo "ndpiReader missing: apt-get install libndpi-bin" >&2; exit 1; }

bench=$(cargo bench -q -p schoolgate-agent --bench replay -- 'replay/corpus$' 2>&1)
# criterion: "thrpt:  [low unit mid unit high unit]"; take the middle estimate.
# (awk reads to the end: an early exit would kill the writer with SIGPIPE under pipefail.)
ours=$(echo "$bench" | awk '/thrpt:/ && !done { v = $4; u = $5; m = (u ~ /^M/) ? 1e6 : (u ~ /^K/) ? 1e3 : 1; printf "%.0f", v * m; done = 1 }')

total_packets=0
total_seconds=0
for f in "$corpus"/*; do
    out=$(ndpiReader -i "$f" -l "$loops" 2>&1 || true)
    packets=$(echo "$out" | awk '/packets total/ && !done { print $(NF-2); done = 1 }')
    pps=$(echo "$out" | awk '/nDPI throughput:/ { v = $3; u = $4; m = (u == "M") ? 1e6 : (u == "K") ? 1e3 : 1; print v * m }' \
        | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }')
    [ -n "$packets" ] && [ -n "$pps" ] || { echo "ndpiReader gave no figure for $f" >&2; continue; }
    total_packets=$((total_packets + packets))
    total_seconds=$(awk -v s="$total_seconds" -v n="$packets" -v p="$pps" 'BEGIN { printf "%.9f", s + n / p }')
done
ndpi=$(awk -v n="$total_packets" -v s="$total_seconds" 'BEGIN { printf "%.0f", n / s }')
echo "schoolgate replay: $ours packets/s (one core, corpus in memory, judged by the policy)"
echo "ndpiReader:        $ndpi packets/s ($total_packets packets, median of $loops loops per file)"
awk -v a="$ours" -v b="$ndpi" 'BEGIN { printf "ratio schoolgate/nDPI: %.2f\n", a / b }'
