# Sourced by the scripts that run Tributary's benchmarks beside the raw-LMDB reference
# (bench-ratios.sh, w1-apply-floor.sh): their arguments, binaries, scratch directory and summary.
#
#   bench_setup NAME DEFAULT_ROUNDS "$@"    EVENTS.jsonl [ROUNDS] [--durability fsync|none]
#
# Sets events, rounds, durability, sync_flag (the reference's sync|nosync), tributary, reference
# and work (a scratch directory removed on exit, holding the compiled reference lmdb_bench).
# Environment: TRIBUTARY (binary, default .build/release/tributary), REFERENCE_DIR (default
# ../shared/bench/reference), SCRATCH (data directories, default the current directory).
bench_setup() {
  local name=$1 default_rounds=$2
  shift 2
  events=${1:?usage: scripts/$name.sh EVENTS.jsonl [ROUNDS] [--durability none]}
  rounds=${2:-$default_rounds}
  durability=fsync
  [ "${3:-}" = --durability ] && durability=${4:?--durability needs fsync or none}
  tributary=${TRIBUTARY:-.build/release/tributary}
  reference=${REFERENCE_DIR:-../shared/bench/reference}
  local scratch=${SCRATCH:-.}
  [ -x "$tributary" ] || { echo "no $tributary: swift build -c release --product tributary" >&2; exit 1; }
  [ -f "$reference/lmdb_bench.c" ] || { echo "no reference in $reference (set REFERENCE_DIR)" >&2; exit 1; }
  work=$(mktemp -d "$scratch/$name.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  cc -O2 -o "$work/lmdb_bench" "$reference/lmdb_bench.c" -llmdb -lpthread
  sync_flag=sync
  if [ "$durability" = none ]; then sync_flag=nosync; fi
}

# Median, lowest and highest of the ratios read one per line from stdin, after LABEL.
ratio_summary() {
  sort -g | awk -v label="$1" '{ v[NR] = $1 }
    END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "  %s: median %.2fx, lowest %.2fx, highest %.2fx\n", label, m, v[1], v[NR] }'
}
