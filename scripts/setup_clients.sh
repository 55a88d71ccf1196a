#!/usr/bin/env bash
# Installs the stock MySQL clients that tests/clients runs against CometQL (run as root, after
# scripts/setup.sh made .venv): PHP mysqli + PDO, node mysql2 + mysql, mysqlclient, aiomysql,
# mysql-connector-python and the mysql CLI. Idempotent; a few hundred ms when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY=.venv/bin/python
PIP_PINS=(mysqlclient==2.3.2 aiomysql==0.3.2 mysql-connector-python==26.10.0)

have() { command -v "$1" >/dev/null 2>&1; }
php_has() { have php && grep -qix "$1" <<<"$(php -m 2>/dev/null)"; }   # no pipe: SIGPIPE + pipefail
pips_ok() {
  "$VENV_PY" - "${PIP_PINS[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
}

need_apt=()
have php || need_apt+=(php-cli)
php_has mysqli && php_has pdo_mysql || need_apt+=(php-mysql)
have mysql || need_apt+=(mariadb-client)
have node || need_apt+=(nodejs)
have npm || need_apt+=(npm)            # a nodejs build that bundles npm already has it
if ! pips_ok; then
  # mysqlclient builds from source against MariaDB Connector/C.
  pkg-config --exists libmariadb 2>/dev/null || need_apt+=(pkg-config libmariadb-dev)
  have cc || need_apt+=(gcc)
  "$VENV_PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || need_apt+=(python3-dev)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup_clients: apt-get install ${need_apt[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi

if ! pips_ok; then
  echo "setup_clients: pip install ${PIP_PINS[*]}"
  .venv/bin/pip install -q --disable-pip-version-check "${PIP_PINS[@]}" 2> >(grep -v "is ignored" >&2)
fi

# node mysql2 and mysql, pinned with integrity hashes in tests/clients/node/package-lock.json.
node_dir=tests/clients/node
lock_sum=$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$node_dir/node_modules/.lock.sha" 2>/dev/null)" != "$lock_sum" ]; then
  echo "setup_clients: npm ci in $node_dir"
  (cd "$node_dir" && npm ci --silent --no-audit --no-fund >/dev/null)
  echo "$lock_sum" > "$node_dir/node_modules/.lock.sha"
fi
echo "setup_clients: ready"
