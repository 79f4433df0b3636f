#!/usr/bin/env bash
# Installs the system libraries Tributary links against when they are missing (Debian, as root
# or with sudo): liblmdb-dev (the event log), libsqlite3-dev (the views), pkg-config, and any
# package named as an argument.
set -euo pipefail
missing=()
for pkg in liblmdb-dev libsqlite3-dev pkg-config "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
