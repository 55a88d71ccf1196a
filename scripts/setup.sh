#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine (run as root): Chromium, a venv with the pinned
# server/test stack, and Pyodide + PyScript vendored from npm into vendor/ (served by
# comet_server from our own origin). Quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYODIDE_VERSION=314.0.7
PYSCRIPT_VERSION=0.7.31
PY=${PYTHON:-python3}

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v mysql >/dev/null 2>&1 || need_apt+=(mariadb-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: pip install -r requirements.txt"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt 2> >(grep -v "is ignored" >&2)
  echo "$want" > "$stamp"
fi

# Pyodide and PyScript from npm, copied into vendor/ (git-ignored).
# Versions and integrity hashes are pinned in scripts/npm/package-lock.json.
vstamp=vendor/.versions
vwant="$(sha256sum scripts/npm/package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$vstamp" 2>/dev/null)" != "$vwant" ]; then
  echo "setup: vendoring pyodide $PYODIDE_VERSION and @pyscript/core $PYSCRIPT_VERSION from npm"
  rm -rf vendor/pyodide vendor/pyscript vendor/npm
  mkdir -p vendor/npm
  cp scripts/npm/package.json scripts/npm/package-lock.json vendor/npm/
  (cd vendor/npm && npm ci --silent --no-audit --no-fund >/dev/null)
  mkdir -p vendor/pyodide vendor/pyscript
  cp -r vendor/npm/node_modules/pyodide/. vendor/pyodide/
  cp -r vendor/npm/node_modules/@pyscript/core/dist/. vendor/pyscript/
  find vendor/pyscript vendor/pyodide -name '*.map' -delete
  # npm pyodide ships no wheels: fetch micropip/packaging from PyPI and fix the lock's sha256.
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.13 -d vendor/pyodide micropip==0.11.1 packaging==26.1 2> >(grep -v "is ignored" >&2)
  .venv/bin/python scripts/patch_pyodide_lock.py vendor/pyodide
  rm -rf vendor/npm
  echo "$vwant" > "$vstamp"
fi

# comet_py as a pure-Python wheel, rebuilt when its sources change.
src_sum=$(cat pyproject.toml comet_py/*.py | sha256sum | cut -d' ' -f1)
if [ "$(cat vendor/.wheel.sha 2>/dev/null)" != "$src_sum" ] || ! ls vendor/wheels/comet_py-*.whl >/dev/null 2>&1; then
  echo "setup: building the comet_py wheel"
  rm -rf vendor/wheels build comet_py.egg-info
  .venv/bin/pip wheel -q --disable-pip-version-check --no-deps -w vendor/wheels . >/dev/null
  rm -rf build comet_py.egg-info
  echo "$src_sum" > vendor/.wheel.sha
fi
echo "setup: ready"
