#!/usr/bin/env bash
# The main job, end to end: set up, compile the digits MLP into a circuit, prove one
# inference, verify the proof, deploy its verifier contract to a local chain and have the
# contract verify it. Artifacts go to $PROVER_DATA_DIR (default ./.data). With
# PROVER_RPC_URL unset, a local anvil chain is started for the run and stopped after it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PROVER_DATA_DIR=${PROVER_DATA_DIR:-$PWD/.data}
prover=.venv/bin/prover
model=models/digits_mlp
field() { .venv/bin/python -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

echo "== compile $model/model.onnx (settings search; instant when already compiled)"
$prover compile $model/model.onnx --calibration $model/calibration.json
circuit=$($prover compile $model/model.onnx --calibration $model/calibration.json --json | field circuit_id)

echo "== prove one inference: an 8x8 handwritten digit labelled $(field sample_label < $model/metrics.json)"
$prover prove "$circuit" --input $model/input.json
proof=$($prover prove "$circuit" --input $model/input.json --json | field proof_id)

echo "== verify proof $proof"
$prover verify "$proof"

if [ -z "${PROVER_RPC_URL:-}" ]; then
  port=$(.venv/bin/python -c 'from prover.chain.node import free_port; print(free_port())')
  anvil=$(.venv/bin/python -c 'from prover.chain.toolchain import anvil_binary; print(anvil_binary())')
  "$anvil" --host 127.0.0.1 --port "$port" --silent &
  anvil_pid=$!
  trap 'kill $anvil_pid 2>/dev/null || true' EXIT
  export PROVER_RPC_URL=http://127.0.0.1:$port
  for _ in $(seq 50); do
    node_modules/.bin/cast chain-id --rpc-url "$PROVER_RPC_URL" >/dev/null 2>&1 && break
    sleep 0.2
  done
fi

echo "== deploy the circuit's verifier contract and register it, on the chain at $PROVER_RPC_URL"
$prover deploy "$circuit"

echo "== verify on chain: the verifier contract's own answer (eth_call)"
$prover verify "$proof" --onchain

echo "== submit the proven result: accepted only because the proof verifies"
$prover submit "$proof"
