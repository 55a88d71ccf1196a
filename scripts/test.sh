#!/usr/bin/env bash
# Set up what is needed (idempotent) and run every test: CPython unit tests, server and CometQL
# tests over real sockets, and Playwright end-to-end tests in Debian Chromium. Extra arguments go
# to pytest (e.g. `bash scripts/test.sh tests/unit -q`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "${@:-tests}"
