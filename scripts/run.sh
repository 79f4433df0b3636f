#!/usr/bin/env bash
# The run command of the README: installs what is missing, builds a release binary and serves
# Tributary on the embedded data directory ./tributary-data (no external server) at
# http://127.0.0.1:8080. Extra arguments go to `tributary serve` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-system.sh
swift build -c release --product tributary
bin="$(swift build -c release --show-bin-path)/tributary"
exec "$bin" serve --data "${TRIBUTARY_DATA:-./tributary-data}" "$@"
