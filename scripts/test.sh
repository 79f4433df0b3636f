#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds every target with the
# module-dependency check on (an import that Package.swift does not declare fails the build),
# then runs the whole test suite (unit, crash and integration tests; each networked test has a
# time limit).
set -euo pipefail
cd "$(dirname "$0")/.."
# bsdutils has script(1), which gives a CLI test its pseudo-terminal (Debian installs it everywhere).
./scripts/setup-system.sh bsdutils
swift build --build-tests --explicit-target-dependency-import-check error
swift test --skip-build "$@"
