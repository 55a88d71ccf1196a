#!/usr/bin/env bash
# A 3-node comet_server cluster on this machine, with the demo: redis-server on 127.0.0.1:6390
# (data in .cluster/), nodes a, b, c on http://127.0.0.1:8087, :8088, :8089 (CometQL 3307-3309).
# Open http://127.0.0.1:8087/demo/chat/ and http://127.0.0.1:8088/demo/chat/: two nodes, one chat;
# the demo link printed at the end gives a page all three nodes (comet_py picks one, moves on).
# Ctrl-C stops all four. COMET_CLUSTER_PORT / COMET_REDIS_PORT move the ports; extra arguments go
# to every node.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
base=${COMET_CLUSTER_PORT:-8087}
redis_port=${COMET_REDIS_PORT:-6390}
mkdir -p .cluster
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$PWD/.cluster" --appendonly yes --save "" \
  --logfile "$PWD/.cluster/redis.log" &
pids+=($!)
for _ in $(seq 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
url="redis://127.0.0.1:$redis_port/0"
.venv/bin/python -m demo.seed --redis "$url"
i=0
for node in a b c; do
  .venv/bin/python -m comet_server --demo --redis "$url" --node-id "$node" --port $((base + i)) \
    --cometql-port $((3307 + i)) "$@" &
  pids+=($!)
  i=$((i + 1))
done
echo "cluster: nodes a, b, c on http://127.0.0.1:$base/, :$((base + 1))/, :$((base + 2))/; redis $url"
echo "demo on all three nodes: http://127.0.0.1:$base/demo/chat/?node=127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
wait -n
