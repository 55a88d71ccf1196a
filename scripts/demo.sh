#!/usr/bin/env bash
# Set up what is needed (idempotent) and start comet_server with the multi-tab chat demo on
# http://127.0.0.1:8087/ (CometQL on 127.0.0.1:3307). Ctrl-C stops it. --demo also serves the
# server console and the demo users' public keys (demo/accounts.json), which a real site must not.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m demo.seed --db "${COMET_DB:-comet_server.db}"
exec .venv/bin/comet-server --demo --db "${COMET_DB:-comet_server.db}" "$@"
