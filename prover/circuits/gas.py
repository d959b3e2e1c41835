"""Verify gas before any setup: one on-chain verification, by the own or reusable verifier.

A halo2 verifier's work is fixed by the circuit's shape, not its rows: it reads one
commitment per advice, fixed, permutation, lookup and shuffle column and one evaluation
per query, checks the gate and argument identities at one point and does one pairing,
and takes each public instance into the transcript. ezkl's settings (from gen_settings +
calibrate, no setup) fix that shape: the inner columns (ezkl's advice and selector
columns grow with them, and each lookup table, range check and shuffle is an argument
per column), the public instances (the model's public tensors' elements, one per
Poseidon hash), and whether a Poseidon chip or shuffles are present. So each quantity
is a non-negative combination of ``terms``. ezkl's reusable verifier does the same work
with the circuit's verifying-key artifact (VKA) sent in calldata: measured 1.3-1.6x the
own verifier's gas, so the own verifier is the cheaper one wherever it deploys (EIP-170).

The coefficients are fitted by ``bench/fit_gas_model.py`` and stored in ``gas_model.json``
next to this file: anvil, ``eth_estimateGas`` of the registered verifier's ``verifyProof``
(calldata and the 21k base included) of 120 circuits (86 with gas; the others' own
verifiers are over EIP-170, measured for size only) of five small models (MLPs with
relu, sigmoid, sigmoid+tanh; one softmax attention head), 1-4 inner columns, logrows
8-14, inputs and outputs public or hashed; ezkl 23.0.5, solc 0.8.20. The fit's largest
relative error on them (``FIT_ERROR``): own verifier gas 1.9%, reusable verifier gas
1.8%, own verifier code size 1.6%. Checked on circuits it was not fitted on (the bundled
digits models, bench_chain's README table): digits_mlp and digits_cnn at 1 and 2 columns
within -0.9% to +2.4%, digits_attention's own verifier at 1 column +0.5% (code size 24,399
predicted, 24,398 measured) and its reusable one at 2 columns -0.5%. Gas does not depend
on the machine. Polycommit visibility, dynamic lookups and circuits past 2^17 rows were
not measured: their predictions are extrapolations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

MODEL_PATH = Path(__file__).with_name("gas_model.json")
# EIP-170: the most runtime code a contract may have on mainnet-like chains.
EIP170_BYTES = 24_576
# own: the circuit's own verifier's gas; reusable: ezkl's shared verifier's, with the VKA;
# own_bytes: the own verifier's runtime code size (EIP-170).
QUANTITIES = ("own", "reusable", "own_bytes")
TERMS = (
    "constant",
    "inner_cols",
    "inner_cols x lookups",
    "inner_cols x range_checks",
    "inner_cols x shuffles",
    "shuffles",
    "public instances",
    "poseidon",
    "logrows",
)
Verifier = Literal["own", "reusable"]


def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MODEL_PATH.read_text())
    return data


MODEL = _load()
COEFFICIENTS: dict[str, list[float]] = MODEL["coefficients"]
FIT_ERROR: dict[str, float] = MODEL["fit_error"]


def instances(settings: dict[str, Any]) -> int:
    """Public instances: the model's public tensors' elements, plus one per Poseidon hash."""
    count = 0
    for shape in settings.get("model_instance_shapes", []):
        size = 1
        for dim in shape:
            size *= int(dim)
        count += size
    poseidon = settings.get("module_sizes", {}).get("poseidon", [0, []])
    return count + sum(int(n) for n in poseidon[1])


def terms(settings: dict[str, Any]) -> list[float]:
    """The model's terms (``TERMS``) for a circuit, from its ezkl settings."""
    run_args = settings["run_args"]
    cols = int(run_args["num_inner_cols"])
    poseidon = settings.get("module_sizes", {}).get("poseidon", [0, []])
    # Whether the circuit has shuffle or dynamic-lookup arguments: their count in the
    # settings counts uses, not arguments (4 and 8 gave the same verifier, measured).
    dynamic = int(settings.get("num_shuffles", 0)) + int(settings.get("num_dynamic_lookups", 0))
    shuffles = 1 if dynamic else 0
    return [
        1.0,
        float(cols),
        float(cols * len(settings.get("required_lookups", []))),
        float(cols * len(settings.get("required_range_checks", []))),
        float(cols * shuffles),
        float(shuffles),
        float(instances(settings)),
        1.0 if int(poseidon[0]) > 0 else 0.0,
        float(run_args["logrows"]),
    ]


def predict_quantity(
    settings: dict[str, Any], quantity: str, coefficients: list[float] | None = None
) -> float:
    """One quantity (a key of ``COEFFICIENTS``) predicted for a circuit's settings."""
    weights = COEFFICIENTS[quantity] if coefficients is None else coefficients
    return float(sum(w * t for w, t in zip(weights, terms(settings), strict=True)))


def own_fits(own_bytes: float) -> bool:
    """Whether an own verifier of this predicted size deploys under EIP-170. The point
    prediction decides: within the fit's error of the limit (1.6%, ~400 bytes) it may be
    wrong either way, and a wrong "fits" fails loudly at deploy (which names
    --reusable-verifier), while a wrong "does not fit" would silently cost ~1.5x the gas
    of every verification (digits_attention's own verifier fits by 178 bytes)."""
    return own_bytes <= EIP170_BYTES


def predict(settings: dict[str, Any], reusable: bool | None = None) -> dict[str, Any]:
    """Predicted verify gas of a circuit with each verifier, and the verifier to use.

    ``reusable`` pins the verifier (True/False); with None the cheaper one that deploys
    is chosen: the own verifier unless its code is predicted over EIP-170."""
    own = predict_quantity(settings, "own")
    shared = predict_quantity(settings, "reusable")
    own_bytes = predict_quantity(settings, "own_bytes")
    fits = own_fits(own_bytes)
    verifier: Verifier
    if reusable is None:
        verifier = "own" if fits and own <= shared else "reusable"
    else:
        verifier = "reusable" if reusable else "own"
    return {
        "own": int(own),
        "reusable": int(shared),
        "own_bytes": int(own_bytes),
        "own_fits_eip170": fits,
        "verifier": verifier,
        "gas": int(own if verifier == "own" else shared),
        "model": "fitted",
        "fit_error": FIT_ERROR,
    }
