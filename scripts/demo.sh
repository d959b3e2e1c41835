#!/usr/bin/env bash
# The main job, end to end: set up, compile the digits MLP into a circuit, prove one
# inference, and verify the proof. Artifacts go to $PROVER_DATA_DIR (default ./.data).
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
