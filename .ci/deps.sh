#!/usr/bin/env bash
# Install the Debian packages named as arguments that are not installed yet,
# and the npm modules of spec/e2e when they are missing.  Idempotent.
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$root/spec/e2e/package-lock.json" ] && { [ ! -d "$root/spec/e2e/node_modules/@microsoft/signalr" ] || [ ! -d "$root/spec/e2e/node_modules/@microsoft/signalr-protocol-msgpack" ]; }; then
  command -v npm >/dev/null || { echo "deps: npm is required (Node 20 + npm)"; exit 1; }
  echo "deps: npm ci (spec/e2e)"
  (cd "$root/spec/e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi
exit 0
