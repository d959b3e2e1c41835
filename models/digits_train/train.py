"""Proven training of the tiny digits classifier, end to end.

Compiles one SGD step into a circuit, proves ``--steps`` consecutive steps on real batches
of scikit-learn's digits (each step fed the weights the previous proof produced), shows
the loss going down, verifies the chain of commitments off-chain, then, on a local anvil
chain, starts a run on the TrainingLedger contract with its batch schedule pinned and
submits every step: the ledger accepts each only with a valid proof that starts from the
last accepted weights and uses the scheduled batch.

    .venv/bin/python models/digits_train/train.py [--steps 8] [--data-dir DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import BATCH, CLASSES, batches, evaluation_set, make_model

from prover.chain.client import connect
from prover.chain.ledger import run_state, start_run, submit_step
from prover.chain.node import ANVIL_DEV_KEY, LocalChain
from prover.config import Settings
from prover.store import ArtifactStore
from prover.training.graph import one_hot
from prover.training.step_export import flatten_params, unflatten_into
from prover.training.steps import (
    batch_commitment,
    commitment,
    compile_step,
    prove_step,
    verify_chain,
)

LOSS = "mse"  # on one-hot targets: cross-entropy's exp/log tables cost 2^16 rows here
LR = 1.0


def evaluate(weights: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) of the weights on the test split, in float."""
    model = make_model()
    unflatten_into(model, weights)
    x, y = evaluation_set()
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    target = torch.from_numpy(one_hot(y, CLASSES))
    loss = float(torch.nn.functional.mse_loss(out, target))
    return loss, float((out.argmax(1).numpy() == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=Path(".data"))
    parser.add_argument("--json", type=Path, help="write the run's numbers here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # ezkl's calibration reports are warnings
    settings = Settings(data_dir=args.data_dir, measure_top=1)
    store = ArtifactStore(settings.data_dir)
    data = batches(args.steps)

    def xy(b: dict) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(b["x"], np.float32), one_hot(b["y"], CLASSES)

    started = time.perf_counter()
    circuit = compile_step(make_model(), LOSS, LR, *xy(data[0]), store, settings)
    meta = circuit["training"]
    print(
        f"step circuit {circuit['id'][:16]}  logrows {circuit['logrows']}  scale {meta['scale']}"
        f"  quantization error {meta['quantization_error']:.2e} = "
        f"{meta['error_over_update']:.1%} of the mean update  "
        f"({time.perf_counter() - started:.0f} s)"
    )
    weights = flatten_params(make_model())
    initial = commitment(weights, meta["scale"])
    loss0, acc0 = evaluate(weights)
    print(
        f"{'step':>4}  {'batch loss':>10}  {'float':>8}  {'test loss':>9}  {'test acc':>8}  "
        f"{'prove s':>7}  weights out"
    )
    print(f"{'-':>4}  {'':>10}  {'':>8}  {loss0:9.4f}  {acc0:8.3f}  {'':>7}  {initial[:18]}…")
    steps = []
    for t, batch in enumerate(data):
        step = prove_step(store, circuit["id"], weights, *xy(batch))
        weights = np.asarray(step["new_weights"])
        test_loss, test_acc = evaluate(weights)
        steps.append({**step, "test_loss": test_loss, "test_accuracy": test_acc})
        print(
            f"{t:>4}  {step['loss']:10.4f}  {step['float_loss']:8.4f}  {test_loss:9.4f}  "
            f"{test_acc:8.3f}  {step['timings']['prove_s']:7.1f}  "
            f"{step['commitments']['weights_out'][:18]}…"
        )
    ids = [s["proof_id"] for s in steps]
    expected = [batch_commitment(*xy(b), meta["scale"]) for b in data]
    chain_check = verify_chain(store, ids, expected, initial)
    print(f"chain off-chain: {'valid' if chain_check['valid'] else chain_check['reason']}")

    with LocalChain() as node:
        chain = connect(node.rpc_url, ANVIL_DEV_KEY)
        run_id = f"digits-{initial[2:14]}"
        pinned = start_run(chain, store, run_id, circuit["id"], initial, batches=expected)
        print(f"ledger run {run_id}: batch schedule {pinned['batch_schedule']['root'][:18]}…")
        # A valid step from the initial weights, but on batch 1 instead of the scheduled 0.
        off_schedule = xy(batches(2)[1])
        unscheduled = prove_step(store, circuit["id"], flatten_params(make_model()), *off_schedule)
        skipped = submit_step(chain, store, run_id, unscheduled["proof_id"])
        print(f"ledger step 0 on batch 1: accepted={skipped['accepted']} ({skipped['reason']})")
        onchain = [submit_step(chain, store, run_id, proof_id) for proof_id in ids]
        for t, result in enumerate(onchain):
            print(f"ledger step {t}: accepted={result['accepted']}  gas {result.get('gas_used')}")
        state = run_state(chain, store, run_id)
        replay = submit_step(chain, store, run_id, ids[0])
        print(
            f"ledger: {state['steps']} steps, current weights {state['current_weights'][:18]}…;"
            f" replaying step 0: accepted={replay['accepted']} ({replay.get('reason')})"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "circuit": {"id": circuit["id"], "logrows": circuit["logrows"], **meta},
                    "batch": BATCH,
                    "initial": {"test_loss": loss0, "test_accuracy": acc0, "weights": initial},
                    "steps": [{k: v for k, v in s.items() if k != "new_weights"} for s in steps],
                    "chain": chain_check,
                    "ledger": {
                        "state": state,
                        "submissions": onchain,
                        "unscheduled_batch": skipped,
                        "replay": replay,
                    },
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
