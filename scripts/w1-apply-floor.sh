#!/usr/bin/env bash
# W1's apply path in plain C (scripts/w1-apply-floor.c) beside the raw-LMDB reference and
# `tributary bench` W1, interleaved over several rounds, as ratios to the reference: how much of
# the gap between Tributary and raw LMDB the apply path's semantics (validation, dedupe, the
# conflict rule, the index overlay, the record format) cost at the least on this machine, and how
# much is Swift's. Each round also runs W1 over loopback HTTP both ways: the C floor's `http` mode
# (PUT /api/sync/update pages decoded with simdjson) and Tributary's http-sync-update variant; and
# W4 both ways: the C floor's `pull` and `pull-compacted` modes (a hub serving pull pages from its
# log, a fresh node fetching one page ahead, then the content-hash check on both sides) and
# Tributary's W4-catchup, as ratios to the reference's W1.
#
#   scripts/w1-apply-floor.sh EVENTS.jsonl [ROUNDS] [--durability none]    (default 3 rounds, fsync)
#
# Installs libsimdjson-dev, libssl-dev (SHA-1 for the check) and g++ when missing
# (scripts/setup-system.sh).
# Environment: TRIBUTARY, REFERENCE_DIR, SCRATCH (see scripts/bench-common.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
bench_setup w1-apply-floor 3 "$@"
scripts/setup-system.sh libsimdjson-dev libssl-dev g++
cc -O2 -c -I "$reference" -I Sources/CCRC32C/include -o "$work/floor.o" scripts/w1-apply-floor.c
cc -O2 -c -I Sources/CCRC32C/include -o "$work/crc32c.o" Sources/CCRC32C/crc32c.c
# -march=native: simdjson's on-demand API is compiled inline, for the build machine's SIMD.
g++ -O2 -march=native -std=c++17 -c -o "$work/json.o" scripts/w1-http-floor-json.cc
g++ -o "$work/floor" "$work/floor.o" "$work/crc32c.o" "$work/json.o" -lsimdjson -llmdb -lpthread -lcrypto

fresh() { rm -rf "$work/db" && mkdir "$work/db"; }
run_reference() { fresh; "$work/lmdb_bench" append "$work/db" "$events" 1000 "$sync_flag"; }
run_floor() {
  for mode in "" http pull pull-compacted; do
    fresh; "$work/floor" "$work/db" "$events" "$sync_flag" $mode
  done
}
run_tributary() {
  rm -rf "$work/db"
  "$tributary" bench --workload W1-append,W4-catchup --http --input "$events" --scratch "$work" \
    --durability "$durability" 2>&1 | grep -E '^workload=(W1|W4)'
}

rate() { sed -n "s/^workload=W[14]-[a-z]* system=$1 .*events_per_s=\([0-9]*\) .*/\1/p" | head -1; }
: > "$work/ratios"
for round in $(seq "$rounds"); do
  case $((round % 3)) in
    1) lines=$(run_reference; run_floor; run_tributary) ;;
    2) lines=$(run_floor; run_tributary; run_reference) ;;
    0) lines=$(run_tributary; run_reference; run_floor) ;;
  esac
  echo "$lines" | sed "s/^/round=$round /"
  raw=$(echo "$lines" | rate lmdb)
  floor=$(echo "$lines" | rate c-apply-floor)
  http_floor=$(echo "$lines" | rate c-http-floor)
  pull_floor=$(echo "$lines" | grep 'variant=full-history' | rate c-pull-floor)
  pull_floor_c=$(echo "$lines" | grep 'variant=compacted' | rate c-pull-floor)
  swift=$(echo "$lines" | grep 'variant=inprocess-apply' | rate tributary)
  swift_http=$(echo "$lines" | grep 'variant=http-sync-update' | rate tributary)
  swift_w4=$(echo "$lines" | grep 'variant=full-history' | rate tributary)
  swift_w4c=$(echo "$lines" | grep 'variant=compacted' | rate tributary)
  awk -v r="$round" -v a="$floor" -v b="$swift" -v c="$raw" -v d="$http_floor" -v e="$swift_http" \
    -v f="$pull_floor" -v g="$swift_w4" -v h="$swift_w4c" -v i="$pull_floor_c" \
    'BEGIN { printf "round %s: C apply floor %.2fx (%d), tributary %.2fx (%d); over HTTP: C floor %.2fx (%d), tributary %.2fx (%d); W4 full-history: C floor %.2fx (%d), tributary %.2fx (%d); W4 compacted: C floor %.2fx (%d), tributary %.2fx (%d); raw LMDB %d\n",
             r, a / c, a, b / c, b, d / c, d, e / c, e, f / c, f, g / c, g, i / c, i, h / c, h, c }'
  echo "$floor $swift $raw $http_floor $swift_http $pull_floor $swift_w4 $swift_w4c $pull_floor_c" >> "$work/ratios"
done
echo "summary over $rounds rounds, durability=$durability:"
awk '{ print $1 / $3 }' "$work/ratios" | ratio_summary "C apply floor to raw LMDB"
awk '{ print $2 / $3 }' "$work/ratios" | ratio_summary "tributary to raw LMDB"
awk '{ print $4 / $3 }' "$work/ratios" | ratio_summary "C floor over HTTP (sync-update pages) to raw LMDB"
awk '{ print $5 / $3 }' "$work/ratios" | ratio_summary "tributary over HTTP (http-sync-update) to raw LMDB"
awk '{ print $6 / $3 }' "$work/ratios" | ratio_summary "W4: C floor full-history to raw LMDB W1"
awk '{ print $9 / $3 }' "$work/ratios" | ratio_summary "W4: C floor compacted to raw LMDB W1"
awk '{ print $7 / $3 }' "$work/ratios" | ratio_summary "W4: tributary full-history to raw LMDB W1"
awk '{ print $8 / $3 }' "$work/ratios" | ratio_summary "W4: tributary compacted to raw LMDB W1"
