#!/usr/bin/env bash
# The whole test suite in one command, on a fresh Debian 12 machine (as root) or a dev box:
#   bash scripts/test.sh [pytest args]
# 1. Debian packages: postgresql (and chromium for the browser tests), installed only when missing.
# 2. .venv in the repo root with `pip install -e '.[dev]'` (skipped while pyproject.toml is unchanged).
# 3. A throwaway Postgres server for this run (stopped and deleted on exit);
#    FORGE_NB_TEST_PG_DSN tells the tests where it is. An already-set FORGE_NB_TEST_PG_DSN is used as is.
# 4. The JupyterLab extension (labextension/ -> labextension/build/labextension) when missing or stale
#    (scripts/build_labextension.sh: node, npm ci from the lockfile; the wheel ships the result).
# 5. ruff check, mypy, lint-imports (the layers), then pytest. Exits non-zero if any of them fails (pytest's status when only it
#    fails; "no tests collected" counts as a failure).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
log() { printf '[test.sh] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else log "need root to run: $*"; return 1
  fi
}

# -- 1. Debian packages ------------------------------------------------------------------------
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ! -x .venv/bin/python ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)   # Debian splits venv/ensurepip out of python3
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" </dev/null
fi

# -- 2. Python environment ---------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.forge_nb_installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] \
   || ! .venv/bin/python -c 'import forge_nb, pytest, ruff, mypy, importlinter' >/dev/null 2>&1; then
  log "pip install -e '.[dev]'"
  .venv/bin/python -m pip install --disable-pip-version-check -q --upgrade pip </dev/null
  .venv/bin/python -m pip install --disable-pip-version-check -q -e '.[dev]' </dev/null
  echo "$want" > "$stamp"
fi
# shellcheck disable=SC1091
. .venv/bin/activate

# -- 3. Throwaway Postgres ---------------------------------------------------------------------
TMPDIR_PG=""
cleanup() {
  if [ -n "$TMPDIR_PG" ]; then
    bash "$ROOT/scripts/postgres.sh" stop "$TMPDIR_PG" >/dev/null 2>&1 || true
    rm -rf "$TMPDIR_PG"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -z "${FORGE_NB_TEST_PG_DSN:-}" ]; then
  TMPDIR_PG=$(mktemp -d /tmp/forge_nb_pg.XXXXXX)
  FORGE_NB_TEST_PG_DSN=$(PG_EXTRA_CONF=$'fsync=off\nsynchronous_commit=off\nfull_page_writes=off' \
    bash scripts/postgres.sh start "$TMPDIR_PG")
  log "postgres: $FORGE_NB_TEST_PG_DSN"
fi
export FORGE_NB_TEST_PG_DSN

status=0
# -- 4. The JupyterLab extension ---------------------------------------------------------------
log "labextension (scripts/build_labextension.sh)"
PYTHON="$ROOT/.venv/bin/python" bash scripts/build_labextension.sh || {
  log "the labextension did not build: its tests will fail"; status=1; }

# -- 5. Lint, types, tests ---------------------------------------------------------------------
log "ruff check forge_nb tests"
ruff check forge_nb tests || status=1
log "mypy"
mypy || status=1
log "lint-imports (the layer contract in pyproject.toml)"
lint-imports || status=1

log "JS unit tests (node --test js/ labextension/test/)"
bash scripts/test_js.sh || status=1
if [ -d labextension/lib ]; then node --test labextension/test/ || status=1; fi

log "pytest $*"
set +e
python -m pytest "$@"
pytest_status=$?
set -e
if [ "$pytest_status" = 5 ]; then
  log "pytest collected no tests: that is a failure"
fi
if [ "$pytest_status" != 0 ]; then
  exit "$pytest_status"
fi
if [ "$status" != 0 ]; then
  log "tests passed but ruff, mypy or lint-imports failed (see above)"
fi
exit "$status"
