"""The on-chain training ledger (``verifier_contracts/TrainingLedger.sol``): runs that
advance only by proven SGD steps, or by federated rounds of step proofs and an
aggregation proof, each from the run's current weights commitment.

A run id is any string: 0x and 64 hex digits is taken as the bytes32 itself, anything
else as the keccak256 of its text. Commitments are 0x big-endian field elements, as
``prover.training.steps.commitment`` and ``commitments_of`` write them.

A run may pin its batch schedule: the steps' batch commitments (``H(x):H(y)``, as
``steps.batch_commitment`` and ``verify_chain`` write them) in order, held on chain as a
Merkle root (see the contract). The schedule itself is kept in the store under its root,
so that each submission can send its batch's sibling path.

Each circuit is checked by its own verifier, or, if compiled with ``reusable_verifier``
(needed once its own verifier exceeds EIP-170, as step circuits' usually do), by ezkl's
reusable verifier with the circuit's VKA, which the ledger stores once per VKA.
"""

from __future__ import annotations

import re
from typing import Any

from eth_utils import keccak

from prover.chain.client import Chain
from prover.chain.contracts import compiled, contract, transact
from prover.chain.deployments import deploy_once, deployed
from prover.chain.evm_verifier import verifier_artifact
from prover.chain.onchain import deploy_circuit, verifier_arguments
from prover.chain.submission import submit
from prover.circuits.search import Progress
from prover.errors import ChainError, InvalidInputError
from prover.proving.proofs import resolve_proof
from prover.store import ArtifactStore, record_type
from prover.training.steps import COMMITMENTS, STEP_CIRCUIT_TYPE

LEDGER = "TrainingLedger"
_BYTES32 = re.compile(r"0x[0-9a-fA-F]{64}")
_NO_VKA = "0x" + "00" * 20  # a circuit checked by its own verifier


def run_key(run_id: str) -> bytes:
    """The bytes32 a run id stands for on chain."""
    return bytes.fromhex(run_id[2:]) if _BYTES32.fullmatch(run_id) else keccak(text=run_id)


def _word(commitment: str) -> bytes:
    value = int(commitment, 16)
    if not 0 <= value < 2**256:
        raise InvalidInputError(f"commitment {commitment} is not a 256-bit value")
    return value.to_bytes(32, "big")


def _hex(word: bytes | int) -> str:
    raw = word.to_bytes(32, "big") if isinstance(word, int) else word
    return "0x" + raw.hex()


def _batch_words(batch: str) -> tuple[bytes, bytes]:
    parts = batch.split(":")
    if len(parts) != 2 or not all(_BYTES32.fullmatch(p) for p in parts):
        raise InvalidInputError(
            f"batch commitment {batch!r} is not H(x):H(y) (two 0x-prefixed 32-byte words)"
        )
    return _word(parts[0]), _word(parts[1])


def schedule_levels(batches: list[str]) -> list[list[bytes]]:
    """The Merkle tree of a batch schedule, leaves first, root last: a leaf is
    keccak256(H(x) || H(y)), a node keccak256(left || right); the leaves are padded with
    zero words to a power of two."""
    if not batches:
        raise InvalidInputError("a batch schedule needs at least one batch")
    level = [keccak(b"".join(_batch_words(b))) for b in batches]
    level += [bytes(32)] * ((1 << (len(level) - 1).bit_length()) - len(level))
    levels = [level]
    while len(level) > 1:
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def schedule_root(batches: list[str]) -> str:
    """The root a run pins for this batch schedule."""
    return _hex(schedule_levels(batches)[-1][0])


def schedule_path(batches: list[str], position: int) -> list[bytes]:
    """The sibling path of batch ``position`` of a schedule, leaf level first."""
    if not 0 <= position < len(batches):
        raise InvalidInputError(
            f"the batch schedule has {len(batches)} batches; there is no batch {position}"
        )
    return _sibling_path(schedule_levels(batches), position)


def _sibling_path(levels: list[list[bytes]], position: int) -> list[bytes]:
    return [level[(position >> depth) ^ 1] for depth, level in enumerate(levels[:-1])]


def _save_schedule(store: ArtifactStore, batches: list[str] | None) -> tuple[bytes, int]:
    """(root word, count) a run pins; zero for no schedule. The schedule is kept in the
    store under its root."""
    if batches is None:
        return bytes(32), 0
    root = schedule_root(batches)
    if not store.exists("schedules", root[2:]):
        store.save_record(
            "schedules", root[2:], {"id": root[2:], "type": "batch_schedule", "batches": batches}
        )
    return _word(root), len(batches)


def _paths(store: ArtifactStore, root: bytes, positions: list[int]) -> list[list[bytes]]:
    """The sibling paths of positions of the schedule with this root (none for a zero
    root: the run pins no schedule)."""
    if root == bytes(32):
        return [[] for _ in positions]
    if not store.exists("schedules", root.hex()):
        raise InvalidInputError(
            f"the run pins batch schedule {_hex(root)}, which this data dir does not hold: "
            "submit from the data dir that started the run"
        )
    batches = store.read_record("schedules", root.hex())["batches"]
    levels = schedule_levels(batches)
    # Past the schedule's end the ledger refuses (ScheduleEnded), whatever the path.
    return [_sibling_path(levels, p) if p < len(batches) else [] for p in positions]


def deploy_ledger(chain: Chain, store: ArtifactStore, deploy_missing: bool = True) -> str:
    """The ledger's address on this chain, deployed once and recorded in the store (see
    ``deployments``); with ``deploy_missing`` false, a ``ChainError`` instead of a deploy."""
    kind = {"ledger_address": compiled()[LEDGER]}
    record = deploy_once(store, chain, kind) if deploy_missing else deployed(store, chain, kind)
    if record is None:
        raise ChainError(f"the training ledger is not deployed on chain {chain.chain_id}")
    return str(record["ledger_address"])


def _ledger(chain: Chain, store: ArtifactStore) -> Any:
    return contract(chain, LEDGER, deploy_ledger(chain, store, deploy_missing=False))


def _verifier(chain: Chain, store: ArtifactStore, ledger: Any, circuit_id: str) -> tuple[str, str]:
    """(verifier address, VKA data contract) of a circuit, deployed and registered if need
    be: its own verifier and no VKA, or ezkl's reusable verifier and the circuit's VKA,
    stored on the ledger once."""
    deployment = deploy_circuit(store, circuit_id, chain)
    artifact = verifier_artifact(store, circuit_id)
    if not artifact["reusable"]:
        return str(deployment["verifier_address"]), _NO_VKA
    digest = bytes.fromhex(artifact["vka_digest"][2:])
    if int(ledger.functions.vkaData(digest).call(), 16) == 0:
        words = [bytes.fromhex(w[2:]) for w in artifact["vka"]]
        transact(chain, ledger.functions.storeVka(words))
    return str(deployment["verifier_address"]), str(ledger.functions.vkaData(digest).call())


def _circuit(store: ArtifactStore, circuit_ref: str, step: bool) -> str:
    """The id of a step circuit (``step``) or of an aggregation circuit (any other)."""
    circuit_id = str(store.read_record("circuits", circuit_ref)["id"])
    circuit_type = (
        record_type(store.read_record("training", circuit_id))
        if store.exists("training", circuit_id)
        else None
    )
    if step != (circuit_type == STEP_CIRCUIT_TYPE):
        wanted = "a training step circuit" if step else "an aggregation circuit"
        raise InvalidInputError(f"circuit {circuit_id[:16]} is not {wanted}")
    return circuit_id


def _start(
    chain: Chain,
    store: ArtifactStore,
    run_id: str,
    step_circuit_id: str,
    initial_weights_commitment: str,
    batches: list[str] | None,
    aggregation_circuit_id: str | None = None,
    clients: int = 0,
) -> dict[str, Any]:
    """Start a run on the ledger (see ``start_run`` and ``start_federated_run``)."""
    circuit_id = _circuit(store, step_circuit_id, step=True)
    aggregation_id = (
        _circuit(store, aggregation_circuit_id, step=False) if aggregation_circuit_id else None
    )
    weights = _word(initial_weights_commitment)
    root, count = _save_schedule(store, batches)
    ledger = contract(chain, LEDGER, deploy_ledger(chain, store))
    step_verifier, step_vka = _verifier(chain, store, ledger, circuit_id)
    aggregation_verifier, aggregation_vka = (
        _verifier(chain, store, ledger, aggregation_id) if aggregation_id else (_NO_VKA, _NO_VKA)
    )
    spec = (
        step_verifier,
        step_vka,
        aggregation_verifier,
        aggregation_vka,
        clients,
        weights,
        root,
        count,
    )
    receipt = transact(chain, ledger.functions.startRun(run_key(run_id), spec))
    federated = (
        {
            "aggregation_circuit_id": aggregation_id,
            "clients": clients,
            "aggregation_verifier": aggregation_verifier,
            "aggregation_vka": None if aggregation_vka == _NO_VKA else aggregation_vka,
        }
        if aggregation_id
        else {}
    )
    return {
        "run_id": run_id,
        "run_key": _hex(run_key(run_id)),
        "chain_id": chain.chain_id,
        "ledger_address": ledger.address,
        "step_circuit_id": circuit_id,
        "step_verifier": step_verifier,
        "step_vka": None if step_vka == _NO_VKA else step_vka,
        **federated,
        "initial_weights": initial_weights_commitment,
        "batch_schedule": None if batches is None else {"root": _hex(root), "batches": count},
        "tx_hash": receipt["transactionHash"].to_0x_hex(),
        "gas_used": receipt["gasUsed"],
    }


def start_run(
    chain: Chain,
    store: ArtifactStore,
    run_id: str,
    step_circuit_id: str,
    initial_weights_commitment: str,
    batches: list[str] | None = None,
) -> dict[str, Any]:
    """Start a run of ``step_circuit_id`` steps from the committed initial weights; the
    sender owns it. ``batches`` (``H(x):H(y)`` per step, in order) pins the batch schedule:
    step t is then accepted only on batch t. A ``ChainError`` (``RunExists``...) if the
    ledger refuses."""
    return _start(chain, store, run_id, step_circuit_id, initial_weights_commitment, batches)


def start_federated_run(
    chain: Chain,
    store: ArtifactStore,
    run_id: str,
    step_circuit_id: str,
    aggregation_circuit_id: str,
    clients: int,
    initial_weights_commitment: str,
    batches: list[str] | None = None,
) -> dict[str, Any]:
    """Start a federated run: rounds of ``clients`` step proofs and one aggregation proof
    (public instances [H(w_0), ..., H(w_{clients-1}), H(global)]). ``batches`` pins the
    schedule: round r's client k is accepted only on batch ``r * clients + k``."""
    return _start(
        chain,
        store,
        run_id,
        step_circuit_id,
        initial_weights_commitment,
        batches,
        aggregation_circuit_id,
        clients,
    )


def _arguments(store: ArtifactStore, proof_id: str) -> tuple[str, bytes, list[int]]:
    """(stored proof id, proof bytes, instances) as the verifier contract takes them."""
    resolved, path, _ = resolve_proof(store, proof_id)
    proof, instances = verifier_arguments(path)
    return str(resolved), proof, instances


def _submitted(chain: Chain, ledger: Any, run_id: str, call: Any) -> tuple[dict[str, Any], Any]:
    """``submission.submit`` of a run's call: (answer, receipt or None)."""
    answer, receipt = submit(chain, ledger, lambda: (call, {}))
    base = {"run_id": run_id, "chain_id": chain.chain_id, "ledger_address": ledger.address}
    return {**base, **answer}, receipt


def submit_step(
    chain: Chain,
    store: ArtifactStore,
    run_id: str,
    proof_id: str,
    path: list[bytes] | None = None,
) -> dict[str, Any]:
    """Submit a step proof to its run; ``accepted`` false with the ledger's reason (e.g.
    ``OutOfOrder(...)``, ``InvalidProof(...)``) when refused, else the StepAccepted event.
    ``path``: the step's batch path, if the caller has it; else it is looked up from the
    run's schedule in the store."""
    resolved, proof, instances = _arguments(store, proof_id)
    ledger = _ledger(chain, store)
    if path is None:
        run = _run(ledger, run_id)
        (path,) = _paths(store, run["batchRoot"], [run["steps"]])
    call = ledger.functions.submitStep(run_key(run_id), proof, instances, path)
    result, receipt = _submitted(chain, ledger, run_id, call)
    result["proof_id"] = resolved
    if receipt is not None:
        (event,) = ledger.events.StepAccepted().process_receipt(receipt)
        args = event["args"]
        result["event"] = {
            "name": event["event"],
            "index": args["index"],
            **{
                name: _hex(args[field])
                for name, field in zip(
                    COMMITMENTS,
                    ("weightsIn", "batchX", "batchY", "weightsOut", "loss"),
                    strict=True,
                )
            },
        }
    return result


def submit_round(
    chain: Chain,
    store: ArtifactStore,
    run_id: str,
    step_proof_ids: list[str],
    aggregation_proof_id: str,
) -> dict[str, Any]:
    """Submit a federated round (client k's step proof is ``step_proof_ids[k]``, matching
    the aggregation's k-th input); refused rounds as for ``submit_step``."""
    steps = [_arguments(store, p) for p in step_proof_ids]
    aggregation_id, aggregation_proof, aggregation_instances = _arguments(
        store, aggregation_proof_id
    )
    ledger = _ledger(chain, store)
    run = _run(ledger, run_id)
    first = run["steps"] * len(steps)  # the round's first schedule position
    call = ledger.functions.submitRound(
        run_key(run_id),
        [proof for _, proof, _ in steps],
        [instances for _, _, instances in steps],
        aggregation_proof,
        aggregation_instances,
        _paths(store, run["batchRoot"], [first + k for k in range(len(steps))]),
    )
    result, receipt = _submitted(chain, ledger, run_id, call)
    result["step_proof_ids"] = [p for p, _, _ in steps]
    result["aggregation_proof_id"] = aggregation_id
    if receipt is not None:
        (event,) = ledger.events.RoundAccepted().process_receipt(receipt)
        args = event["args"]
        result["event"] = {
            "name": event["event"],
            "round": args["round"],
            "weights_in": _hex(args["weightsIn"]),
            "weights_out": _hex(args["weightsOut"]),
        }
    return result


def _run(ledger: Any, run_id: str) -> dict[str, Any]:
    """The ledger's Run struct of a run by field name (all zero if never started)."""
    fields = ledger.get_function_by_name("get").abi["outputs"][0]["components"]
    values = ledger.functions.get(run_key(run_id)).call()
    return {field["name"]: value for field, value in zip(fields, values, strict=True)}


def run_state(chain: Chain, store: ArtifactStore, run_id: str) -> dict[str, Any]:
    """A run as the ledger holds it (sends nothing): owner, verifiers, steps (or rounds)
    accepted, the current weights commitment and the batch schedule; a ``ChainError`` if
    it was never started."""
    ledger = _ledger(chain, store)
    run = _run(ledger, run_id)
    if int(run["stepVerifier"], 16) == 0:
        raise ChainError(f"run {run_id!r} was never started on chain {chain.chain_id}")

    def vka(address: str) -> str | None:
        return None if int(address, 16) == 0 else address

    clients, count = run["clients"], run["batchCount"]
    return {
        "run_id": run_id,
        "run_key": _hex(run_key(run_id)),
        "chain_id": chain.chain_id,
        "ledger_address": ledger.address,
        "owner": run["owner"],
        "federated": clients > 0,
        "clients": clients or None,
        "step_verifier": run["stepVerifier"],
        "step_vka": vka(run["stepVka"]),
        "aggregation_verifier": run["aggregationVerifier"] if clients else None,
        "aggregation_vka": vka(run["aggregationVka"]),
        "steps": run["steps"],
        "current_weights": _hex(run["current"]),
        "batch_schedule": {"root": _hex(run["batchRoot"]), "batches": count} if count else None,
    }


def record_run(
    chain: Chain,
    store: ArtifactStore,
    run_id: str,
    step_circuit_id: str,
    initial_weights_commitment: str,
    batches: list[str],
    proof_ids: list[str],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Put a proven run on the ledger: start it with its batch schedule pinned (unless this
    sender started it before, with the same start and schedule), then submit, in order,
    each step proof the ledger has not accepted yet. Safe to repeat: it goes on from the
    ledger's own count. A ``ChainError`` names the step the ledger refuses, or why the run
    on chain is not this one."""
    say = progress or (lambda _m, _f: None)
    say("starting the run on the ledger", 0.0)
    try:
        state = run_state(chain, store, run_id)
        started = None
    except ChainError:
        started = start_run(
            chain, store, run_id, step_circuit_id, initial_weights_commitment, batches
        )
        state = run_state(chain, store, run_id)
    levels = schedule_levels(batches)  # once: a run may have thousands of steps
    pinned = {"root": _hex(levels[-1][0]), "batches": len(batches)}
    if state["owner"] != chain.account.address or state["batch_schedule"] != pinned:
        raise ChainError(
            f"run {run_id!r} on the ledger was started by {state['owner']} with batch "
            f"schedule {state['batch_schedule']}, not by {chain.account.address} with this "
            "run's schedule"
        )
    submitted = []
    for step in range(state["steps"], len(proof_ids)):
        say(f"submitting step {step}", step / len(proof_ids))
        path = _sibling_path(levels, step) if step < len(batches) else []
        result = submit_step(chain, store, run_id, proof_ids[step], path)
        if not result["accepted"]:
            raise ChainError(f"the ledger refused step {step}: {result['reason']}")
        submitted.append({"step": step, **result})
    final = run_state(chain, store, run_id)
    return {
        **final,
        "started": started,
        "submitted": submitted,
        "gas_used": sum(s["gas_used"] for s in submitted) + (started or {}).get("gas_used", 0),
    }
