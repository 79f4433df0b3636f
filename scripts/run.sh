#!/usr/bin/env bash
# The run command of the README: installs what is missing, builds a release binary and runs
# Tributary on the embedded data directory ./tributary-data. Until the HTTP gateway lands this
# imports a generated sample (the first time) and prints the log's status.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-system.sh
swift build -c release --product tributary
bin="$(swift build -c release --show-bin-path)/tributary"
data="${TRIBUTARY_DATA:-./tributary-data}"
if [ ! -e "$data/log/data.mdb" ]; then
  "$bin" sample --events 10000 > "$data.sample.jsonl"
  "$bin" import --data "$data" "$data.sample.jsonl" && rm -f "$data.sample.jsonl"
fi
exec "$bin" status --data "$data" "$@"
