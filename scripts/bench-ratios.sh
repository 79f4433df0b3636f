#!/usr/bin/env bash
# W1 and W2 beside the raw-LMDB reference, interleaved over several rounds, as ratios.
#
#   scripts/bench-ratios.sh EVENTS.jsonl [ROUNDS] [--durability none]     (default 5 rounds, fsync)
#
# On a shared machine the disk's and the CPU's speed wander by 2x within an hour, so a ratio
# from one reference run and one Tributary run taken minutes apart says little. Each round here
# runs the reference (../shared/bench/reference, plain C on raw LMDB) and `tributary bench` back
# to back, alternating which goes first, and prints that round's ratios; the summary gives the
# median, lowest and highest ratio of the rounds. Every benchmark line is kept in the output.
#
# Environment: TRIBUTARY, REFERENCE_DIR, SCRATCH (see scripts/bench-common.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
bench_setup bench-ratios 5 "$@"

run_reference() {
  rm -rf "$work/lmdb" && mkdir "$work/lmdb"
  "$work/lmdb_bench" append "$work/lmdb" "$events" 1000 "$sync_flag"
  "$work/lmdb_bench" scan "$work/lmdb" 1000
  rm -rf "$work/lmdb"
}
run_tributary() {
  "$tributary" bench --workload W1-append,W2-scan --input "$events" --scratch "$work" \
    --durability "$durability" 2>&1 | grep '^workload='
}

# events_per_s of the line with this workload, system and variant.
rate() { sed -n "s/^workload=$1 system=$2 .*events_per_s=\([0-9]*\) .*variant=$3 .*/\1/p" | head -1; }
: > "$work/ratios"
for round in $(seq "$rounds"); do
  if [ $((round % 2)) = 1 ]; then
    lines=$(run_reference; run_tributary)
  else
    lines=$(run_tributary; run_reference)
  fi
  echo "$lines" | sed "s/^/round=$round /"
  raw_w1=$(echo "$lines" | rate W1-append lmdb "$sync_flag")
  raw_w2=$(echo "$lines" | rate W2-scan lmdb page1000)
  w1=$(echo "$lines" | rate W1-append tributary inprocess-apply)
  w2=$(echo "$lines" | rate W2-scan tributary inprocess-page1000-crc)
  awk -v r="$round" -v a="$w1" -v b="$raw_w1" -v c="$w2" -v d="$raw_w2" \
    'BEGIN { printf "round %s: W1 %.2fx (%d / %d)  W2 %.2fx (%d / %d)\n", r, a / b, a, b, c / d, c, d }'
  echo "$w1 $raw_w1 $w2 $raw_w2" >> "$work/ratios"
done
echo "summary over $rounds rounds, durability=$durability, $(wc -l < "$events") events:"
awk '{ print $1 / $2 }' "$work/ratios" | ratio_summary "W1 ratio to raw LMDB"
awk '{ print $3 / $4 }' "$work/ratios" | ratio_summary "W2 ratio to raw LMDB"
