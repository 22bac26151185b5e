#!/usr/bin/env bash
# One command from a fresh clone to a running demo: installs forge-nb into .venv and runs
# `forge-nb demo` (embedded SQLite + demo jobs + workers + the dashboard, URL printed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import forge_nb, panel' >/dev/null 2>&1; then
  .venv/bin/python -m pip install --disable-pip-version-check -q -e . </dev/null
fi
exec .venv/bin/forge-nb demo "$@"
