#!/usr/bin/env bash
# Idempotent set-up for a Debian 12 machine, even a bare one (run as root): the Debian packages
# below when missing, a venv with the pinned server/test stack and the `comet-server` command,
# Pyodide + PyScript vendored from npm into vendor/ (served by comet_server from our own
# origin), the comet_py wheel and comet_py byte-compiled for Pyodide. Quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PYODIDE_VERSION=314.0.7
PYSCRIPT_VERSION=0.7.31
MICROPYTHON_VERSION=1.27.0  # npm @micropython/micropython-webassembly-pyscript, for type="mpy" pages
PY=${PYTHON:-python3}

# --- Debian packages ------------------------------------------------------------------------
# Every program this script, scripts/test.sh and scripts/demo.sh run, with the package that has it.
need_apt=()
want_cmd() {  # want_cmd COMMAND PACKAGE...: queue PACKAGE(s) when COMMAND is not on PATH
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$@")
}
want_cmd sha256sum coreutils
want_cmd cut coreutils
want_cmd find findutils
want_cmd grep grep
want_cmd "$PY" python3 python3-venv
# Debian's python3 makes venvs only with python3-venv (it brings ensurepip back).
if [ "$(command -v "$PY" 2>/dev/null)" = /usr/bin/python3 ] &&
   ! dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "ok installed"; then
  need_apt+=(python3-venv)
fi
want_cmd node nodejs
want_cmd npm npm            # Debian's npm 9 with node 18 runs our `npm ci`
[ -x /usr/bin/chromium ] || need_apt+=(chromium)  # the tests drive this exact binary
want_cmd Xvfb xvfb          # tests/e2e_real runs Chromium headed on a virtual display
want_cmd mysql mariadb-client
want_cmd curl curl          # the README's and the demo console's publish examples
want_cmd redis-server redis-server  # tests/cluster start their own redis-server on a free port
# pip (Debian's wheel) and Debian's npm check TLS against the system's CA list.
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
if [ ${#need_apt[@]} -gt 0 ]; then
  mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages; run as root, or: apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  echo "setup: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # Debian starts the packaged Redis service where an init system runs; the tests need none of
  # it (they run their own on a free port), so it is stopped and not started at boot.
  if printf '%s\n' "${need_apt[@]}" | grep -qx redis-server; then
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      systemctl disable --now redis-server >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
      service redis-server stop >/dev/null 2>&1 || true
    fi
  fi
fi

# --- Python -----------------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# The stock MySQL clients of tests/clients (PHP, node, mysqlclient with its build headers...),
# when that script is there. It needs .venv and runs before the pins below, so that mysqlclient
# is built once its headers are installed.
if [ -f scripts/setup_clients.sh ]; then
  bash scripts/setup_clients.sh
fi
# requirements.txt: the server's runtime pins; requirements-dev.txt adds tests and benchmarks;
# pyproject.toml: the comet-server command, installed editable so that it serves this checkout.
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x .venv/bin/comet-server ]; then
  echo "setup: pip install -r requirements-dev.txt, then the comet-server command"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt 2> >(grep -v "is ignored" >&2)
  .venv/bin/pip install -q --disable-pip-version-check -e . 2> >(grep -v "is ignored" >&2)
  rm -rf build comet_server.egg-info
  echo "$want" > "$stamp"
fi

# --- Pyodide, PyScript and MicroPython from npm, copied into vendor/ (git-ignored) -----------
# Versions and integrity hashes are pinned in scripts/npm/package-lock.json.
vstamp=vendor/.versions
vwant="$(sha256sum scripts/npm/package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$vstamp" 2>/dev/null)" != "$vwant" ]; then
  echo "setup: vendoring pyodide $PYODIDE_VERSION, @pyscript/core $PYSCRIPT_VERSION and micropython $MICROPYTHON_VERSION from npm"
  rm -rf vendor/pyodide vendor/pyscript vendor/micropython vendor/npm
  mkdir -p vendor/npm
  cp scripts/npm/package.json scripts/npm/package-lock.json vendor/npm/
  (cd vendor/npm && npm ci --silent --no-audit --no-fund >/dev/null)
  mkdir -p vendor/pyodide vendor/pyscript
  cp -r vendor/npm/node_modules/pyodide/. vendor/pyodide/
  cp -r vendor/npm/node_modules/@pyscript/core/dist/. vendor/pyscript/
  find vendor/pyscript vendor/pyodide -name '*.map' -delete
  # MicroPython: only the interpreter (micropython.mjs + micropython.wasm) is served.
  mkdir -p vendor/micropython
  cp vendor/npm/node_modules/@micropython/micropython-webassembly-pyscript/micropython.{mjs,wasm} vendor/micropython/
  # npm pyodide ships no wheels: fetch micropip/packaging from PyPI and fix the lock's sha256.
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.13 -d vendor/pyodide micropip==0.11.1 packaging==26.1 2> >(grep -v "is ignored" >&2)
  .venv/bin/python scripts/patch_pyodide_lock.py vendor/pyodide
  rm -rf vendor/npm
  echo "$vwant" > "$vstamp"
fi

# --- comet_py as a pure-Python, dependency-free wheel, rebuilt when its sources change --------
src_sum=$(cat packaging/comet_py/pyproject.toml README.md comet_py/*.py | sha256sum | cut -d' ' -f1)
if [ "$(cat vendor/.wheel.sha 2>/dev/null)" != "$src_sum" ] || ! ls vendor/wheels/comet_py-*.whl >/dev/null 2>&1; then
  echo "setup: building the comet_py wheel"
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  cp packaging/comet_py/pyproject.toml README.md "$stage"/
  mkdir "$stage"/comet_py
  cp comet_py/*.py comet_py/py.typed "$stage"/comet_py/
  rm -rf vendor/wheels
  .venv/bin/pip wheel -q --disable-pip-version-check --no-deps -w vendor/wheels "$stage" >/dev/null
  echo "$src_sum" > vendor/.wheel.sha
fi

# --- comet_py byte-compiled by the vendored Pyodide's own Python (pyscript.toml maps each .pyc
# beside its .py: pages then skip compiling comet_py at every load) ---------------------------
pyc_sum=$(cat vendor/.versions packaging/comet_py/compile_pyc.mjs comet_py/*.py | sha256sum | cut -d' ' -f1)
if [ "$(cat vendor/.pyc.sha 2>/dev/null)" != "$pyc_sum" ] || [ ! -d vendor/wheels/pycache ]; then
  echo "setup: byte-compiling comet_py for Pyodide"
  node packaging/comet_py/compile_pyc.mjs vendor/pyodide comet_py vendor/wheels/pycache >/dev/null
  echo "$pyc_sum" > vendor/.pyc.sha
fi
# --- comet_py for MicroPython pages: one zip (pyscript-mpy.toml unpacks it), with the typing
# stand-in; rebuilt when its sources change or when re-vendoring emptied vendor/micropython -----
mpy_sum=$(cat packaging/micropython/build_bundle.py packaging/micropython/lib/*.py comet_py/*.py | sha256sum | cut -d' ' -f1)
if [ "$(cat vendor/.mpy_bundle.sha 2>/dev/null)" != "$mpy_sum" ] || [ ! -f vendor/micropython/comet_py.zip ]; then
  echo "setup: bundling comet_py for MicroPython pages"
  .venv/bin/python packaging/micropython/build_bundle.py vendor/micropython/comet_py.zip
  echo "$mpy_sum" > vendor/.mpy_bundle.sha
fi
echo "setup: ready"
