#!/usr/bin/env bash
# The main job, end to end, through the service: set up, start the local stack
# (`prover up`: Redis if none answers, a local anvil chain if none answers, workers, the
# API), create an API key, compile the digits MLP into a circuit on the compile queue,
# request a proven inference on the prove queue, verify the proof, deploy the circuit's
# verifier contract and submit the proven result on the chain queue; the chain accepts it
# only because the proof verifies. The stack is stopped at the end.
# Artifacts and the database go to $PROVER_DATA_DIR (default ./.data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PROVER_DATA_DIR=${PROVER_DATA_DIR:-$PWD/.data}
export PROVER_API_PORT=${PROVER_API_PORT:-8000}
export PROVER_API_URL=${PROVER_API_URL:-http://127.0.0.1:$PROVER_API_PORT}
prover=.venv/bin/prover
model=models/digits_mlp
field() { .venv/bin/python -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

mkdir -p "$PROVER_DATA_DIR"
log=$PROVER_DATA_DIR/up.log
echo "== start the local stack (prover up; its output: $log)"
$prover up >"$log" 2>&1 &
up_pid=$!
trap 'kill -INT $up_pid 2>/dev/null && wait $up_pid 2>/dev/null || true' EXIT
until grep -qx "ready" "$log"; do
  if ! kill -0 $up_pid 2>/dev/null; then cat "$log" >&2; exit 1; fi
  sleep 0.5
done
grep -v '^ready$' "$log"

echo "== create an API key"
PROVER_API_KEY=$($prover keys create --name demo --json | field key)
export PROVER_API_KEY

echo "== compile $model/model.onnx through the service (settings search; instant when compiled)"
$prover compile $model/model.onnx --calibration $model/calibration.json --remote
circuit=$($prover compile $model/model.onnx --calibration $model/calibration.json --remote --json |
  field circuit_id)

echo "== prove one inference through the queue: a handwritten digit labelled $(field sample_label < $model/metrics.json)"
$prover prove "$circuit" --input $model/input.json --remote
proof=$($prover prove "$circuit" --input $model/input.json --remote --json | field proof_id)

echo "== verify proof $proof (the service checks it with ezkl)"
$prover verify "$proof" --remote

echo "== deploy the circuit's verifier contract and register it (chain queue)"
$prover deploy "$circuit" --remote

echo "== submit the proven result on chain: accepted only because the proof verifies"
$prover submit "$proof" --remote
