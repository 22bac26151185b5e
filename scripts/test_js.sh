#!/usr/bin/env bash
# The widgets' JavaScript unit tests: `node --test js/` (Node's built-in runner, no npm packages).
# Installs Debian's nodejs when node is missing and we are root (or have passwordless sudo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v node >/dev/null 2>&1; then
  echo "[test_js.sh] node not found: installing Debian nodejs" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs </dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n apt-get update -qq
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs </dev/null
  else
    echo "[test_js.sh] need node (>= 18) or root to install it" >&2
    exit 1
  fi
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "[test_js.sh] node $(node --version) is too old: the built-in test runner needs >= 18" >&2
  exit 1
fi
# js/package.json declares "type": "module", so the .js files load as ES modules.
exec node --test js/
