#!/usr/bin/env bash
# Build the JupyterLab extension: labextension/ (TypeScript) -> labextension/build/labextension,
# the prebuilt output the wheel ships under share/jupyter/labextensions/forge-nb.
#   bash scripts/build_labextension.sh [--force]
# Skipped when labextension/build/sources.sha256 matches the sources (tests/jupyter/test_labextension.py
# computes the same digest and fails on a stale build). Needs node >= 18 and npm (the npm registry, the
# first time: `npm ci` from the committed package-lock.json) and the jupyterlab Python package, whose
# staging/package.json tells @jupyterlab/builder which packages Lab shares. Installing the wheel needs none
# of this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../labextension"
log() { printf '[build_labextension.sh] %s\n' "$*" >&2; }

OUT=build/labextension
STAMP=build/sources.sha256
# Every input of the build, by path; the same digest as forge_nb's test (see the header).
sources_digest() {
  find package.json package-lock.json tsconfig.json install.json src style -type f \
    | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
}
want=$(sources_digest)
if [ "${1:-}" != "--force" ] && [ -f "$OUT/package.json" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$want" ]; then
  log "up to date ($OUT)"
  exit 0
fi

command -v node >/dev/null 2>&1 || { log "node is needed to build the labextension"; exit 1; }
PY=${PYTHON:-python3}
core=$("$PY" -c 'import os, jupyterlab; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))') || {
  log "the jupyterlab Python package is needed (pip install -e '.[dev]')"; exit 1; }

# node_modules follows the lockfile: reinstalled when the lockfile changed since the last install.
lock_digest=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.forge_nb_lock 2>/dev/null || true)" != "$lock_digest" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error </dev/null
  echo "$lock_digest" > node_modules/.forge_nb_lock
fi

log "tsc"
rm -rf lib
node node_modules/typescript/bin/tsc -p tsconfig.json
log "build-labextension (core: $core)"
rm -rf "$OUT"
node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" . >/dev/null
cp install.json "$OUT/install.json"
echo "$want" > "$STAMP"
log "built $OUT"
