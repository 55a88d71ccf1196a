#!/bin/sh
# Run every benchmark, one after the other (the machine has 2 cores: never in parallel).
# Each prints its figures and rewrites its own block in bench/README.md (and bench/results/*.json).
# Rough durations on the 2-core VM when it is otherwise idle: page_load ~1-2 min, ingest ~2 min,
# server_fanout ~3-5 min, cometql ~4-5 min, tabs ~5-10 min, scale_curve ~5 min, memory_breakdown ~8-10 min, cluster ~8 min. Nothing here fails
# on a timing.
set -eu
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY bench/page_load.py --n 9
$PY bench/ingest.py --n 20000 --rounds 5
$PY bench/server_fanout.py --procs 1 --conns 1000 --duration 10
$PY bench/cometql.py --insert-seconds 5 --duration 10 --soak 60 --open-loop 30
$PY bench/tabs.py --max-tabs 8 --gap-runs 10 --crash-runs 5 --relay-n 500 --failovers 10
$PY bench/scale_curve.py
$PY bench/memory_breakdown.py
$PY bench/cluster.py --rounds 3
