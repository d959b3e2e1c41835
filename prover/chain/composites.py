"""Segmented (composite) proofs on a chain: one transaction accepts a model's result only
when every segment proof verifies and every link between segments holds.

A composite circuit splits a model at cut tensors into segments, each an ordinary circuit
with its own verifier. The ProvenComposites contract (``verifier_contracts/``) is told
once, per composite, which verifier checks each segment and which values must be equal
between consecutive segments (the *layout*):

* ``hashed`` links: the Poseidon hash of the cut tensor is a public instance of both
  proofs (segment i's output hash, segment i+1's input hash); the contract compares the
  two instances. Positions follow ezkl's instance order: inputs, then outputs, each
  public tensor taking its size, each hashed tensor one element.
* ``polycommit`` links: each proof opens with the KZG commitments (64-byte G1 points) of
  its polycommit columns, inputs first, then outputs; the contract compares the points at
  those byte offsets. KZG commitments of the same values agree only in the same domain,
  so linked segments must have the same logrows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from web3.exceptions import ContractCustomError, ContractLogicError

from prover.chain.client import Chain
from prover.chain.contracts import compiled, contract, decode_revert, transact
from prover.chain.deployments import Kind, deploy_once, deployed
from prover.chain.onchain import deploy_verifier, verifier_arguments
from prover.chain.submission import calldata, submit
from prover.errors import ChainError, InvalidInputError
from prover.proving.records import circuit_kind, proof_kind
from prover.store import ArtifactStore

CONTRACT = "ProvenComposites"
INSTANCE, PROOF_POINT = 0, 1  # ProvenComposites.Check.source
POINT_BYTES = 64
LINK_SOURCES = {"hashed": INSTANCE, "polycommit": PROOF_POINT}

Check = tuple[int, int, int, int]  # (link, source, position in segment link, in link + 1)


def _tensor_size(spec: dict[str, Any]) -> int:
    size = 1
    for dim in spec["shape"]:
        size *= int(dim)
    return size


def _side_positions(
    circuit: dict[str, Any], side: str, start: int, mode: str
) -> tuple[dict[str, int], int]:
    """Where each ``mode`` tensor of one side (``input``/``output``) sits, counting from
    ``start`` (instance indices for hashed, proof byte offsets for polycommit), and where
    the next side starts."""
    visibility = circuit["visibility"][side]
    at, found = start, {}
    for spec in circuit[f"{side}s"]:
        if visibility == mode:
            found[spec["name"]] = at
            at += 1 if mode == "hashed" else POINT_BYTES
        elif visibility == "public" and mode == "hashed":
            at += _tensor_size(spec)
    return found, at


def _single_column(circuit: dict[str, Any], side: str) -> None:
    """A polycommit tensor longer than a column has several commitments; the offsets
    computed here assume one point per tensor."""
    rows = 2 ** int(circuit["logrows"]) // 2
    for spec in circuit[f"{side}s"]:
        if _tensor_size(spec) > rows:
            raise InvalidInputError(
                f"tensor {spec['name']!r} of circuit {circuit['id'][:16]} may span several "
                "committed columns; polycommit links support tensors of one column only"
            )


def positions(circuit: dict[str, Any], mode: str) -> tuple[dict[str, int], dict[str, int]]:
    """(inputs, outputs): each linked tensor's instance index (``hashed``) or proof byte
    offset of its commitment (``polycommit``) in a segment circuit's proofs."""
    if circuit["visibility"]["param"] not in ("fixed", "private"):
        raise InvalidInputError(
            f"segment circuit {circuit['id'][:16]} has {circuit['visibility']['param']} "
            "parameters; composite links need fixed or private parameters"
        )
    if mode == "polycommit":
        for side in ("input", "output"):
            _single_column(circuit, side)
    inputs, end = _side_positions(circuit, "input", 0, mode)
    outputs, _ = _side_positions(circuit, "output", end, mode)
    return inputs, outputs


def _counted_points(left: dict[str, Any], right: dict[str, Any], i: int) -> list[Check]:
    """Polycommit checks from the commitment counts segmentation measured on a real run
    (``link_values``: a tensor over several columns has several points): the left
    segment's output points, after its input and parameter points, against the right
    segment's input points, at the head of its proof."""
    n_out, n_in = left["outputs"], right["inputs"]
    if n_out != n_in or n_out == 0:
        raise InvalidInputError(
            f"link {i}->{i + 1}: segment {i} commits {n_out} output points, segment {i + 1} "
            f"{n_in} input points"
        )
    start = left["inputs"] + left["params"]
    return [(i, PROOF_POINT, (start + k) * POINT_BYTES, k * POINT_BYTES) for k in range(n_out)]


def _linked_names(link: dict[str, Any], source: dict[str, Any], target: dict[str, Any]) -> list:
    """The cut tensors a link names; every input of the later segment must be one (an
    unlinked input would be unproven)."""
    tensors = link.get("tensors") or [t["name"] for t in source["outputs"]]
    names = [t if isinstance(t, str) else t["name"] for t in tensors]
    unlinked = [t["name"] for t in target["inputs"] if t["name"] not in names]
    if unlinked:
        raise InvalidInputError(f"inputs {unlinked} of segment {link['to']} are not linked")
    return names


def _named_checks(
    link: dict[str, Any], source: dict[str, Any], target: dict[str, Any], mode: str
) -> list[Check]:
    """One check per cut tensor, at its position in both segments."""
    i = int(link["from"])
    _, out_at = positions(source, mode)
    in_at, _ = positions(target, mode)
    checks = []
    for name in _linked_names(link, source, target):
        if name not in out_at or name not in in_at:
            raise InvalidInputError(
                f"cut tensor {name!r} of link {i}->{i + 1} is not a {mode} output of "
                f"segment {i} and a {mode} input of segment {i + 1}"
            )
        checks.append((i, LINK_SOURCES[mode], out_at[name], in_at[name]))
    return checks


def _link_checks(
    link: dict[str, Any], entries: list[dict[str, Any]], circuits: list[dict[str, Any]], mode: str
) -> list[Check]:
    """A link's checks; for polycommit, from the measured commitment counts when the
    composite record has them."""
    i = int(link["from"])
    source, target = circuits[i], circuits[i + 1]
    if mode == "polycommit" and source["logrows"] != target["logrows"]:
        raise InvalidInputError(
            f"polycommit link {i}->{i + 1} joins segments of {source['logrows']} and "
            f"{target['logrows']} logrows; KZG commitments agree only at equal logrows"
        )
    left, right = entries[i].get("link_values"), entries[i + 1].get("link_values")
    if mode == "polycommit" and left is not None and right is not None:
        _linked_names(link, source, target)
        return _counted_points(left, right, i)
    return _named_checks(link, source, target, mode)


def link_layout(store: ArtifactStore, composite: dict[str, Any]) -> list[Check]:
    """The checks the contract makes for a composite circuit record: for each link and
    each cut tensor, the position of its hash or commitment in both segments' proofs."""
    mode = composite.get("link")
    if mode not in LINK_SOURCES:
        raise InvalidInputError(f"composite link {mode!r} is not hashed or polycommit")
    entries = sorted(composite["segments"], key=lambda s: int(s["index"]))
    circuits = _segment_circuits(store, composite)
    checks: list[Check] = []
    for link in composite["links"]:
        i = int(link["from"])
        if int(link["to"]) != i + 1 or not 0 <= i < len(circuits) - 1:
            raise InvalidInputError(f"link {link['from']}->{link['to']} is not between neighbours")
        checks += _link_checks(link, entries, circuits, mode)
    return checks


def _segment_circuits(store: ArtifactStore, composite: dict[str, Any]) -> list[dict[str, Any]]:
    ordered = sorted(composite["segments"], key=lambda s: int(s["index"]))
    return [store.read_record("circuits", s["circuit_id"]) for s in ordered]


def _composite_record(store: ArtifactStore, composite_ref: str) -> dict[str, Any]:
    composite = store.read_record("circuits", composite_ref)
    if circuit_kind(store, composite) != "segmented":
        raise InvalidInputError(f"circuit {composite['id'][:16]} is not a segmented circuit")
    return composite


def _kind() -> Kind:
    return {"composites_address": compiled()[CONTRACT]}


def deploy_composite(
    store: ArtifactStore, composite_ref: str, chain: Chain, force: bool = False
) -> dict[str, Any]:
    """Deploy (or reuse) every segment's verifier and register the composite's verifiers
    and link layout in ProvenComposites (again only if what is registered differs)."""
    composite = _composite_record(store, composite_ref)
    segments = _segment_circuits(store, composite)
    checks = link_layout(store, composite)
    verifiers, deploy_gas = [], 0
    for circuit in segments:
        if circuit.get("reusable_verifier"):
            raise InvalidInputError(
                f"segment circuit {circuit['id'][:16]} uses ezkl's reusable verifier; "
                "composites need each segment's own verifier"
            )
        deployment = deploy_verifier(store, circuit["id"], chain, force)
        deploy_gas += 0 if deployment["reused"] else deployment["gas_used"]
        verifiers.append(deployment["verifier_address"])
    address = str(deploy_once(store, chain, _kind())["composites_address"])
    composites = contract(chain, CONTRACT, address)
    key = bytes.fromhex(composite["id"])
    _owner, have_verifiers, have_checks = composites.functions.get(key).call()
    register_gas = 0
    if list(have_verifiers) != verifiers or [tuple(c) for c in have_checks] != checks:
        call = composites.functions.register(key, verifiers, checks)
        register_gas = transact(chain, call)["gasUsed"]
    return {
        "composite_id": composite["id"],
        "chain_id": chain.chain_id,
        "composites_address": address,
        "link": composite["link"],
        "verifiers": verifiers,
        "checks": [list(c) for c in checks],
        "deploy_gas_used": deploy_gas,
        "register_gas_used": register_gas,
    }


def registered_composite(store: ArtifactStore, composite_id: str, chain: Chain) -> str:
    """The ProvenComposites address where a composite is registered; ``ChainError``
    saying to deploy first if it is not. Sends nothing."""
    record = deployed(store, chain, _kind())
    if record is not None:
        composites = contract(chain, CONTRACT, record["composites_address"])
        if composites.functions.get(bytes.fromhex(composite_id)).call()[1]:
            return str(record["composites_address"])
    raise ChainError(
        f"composite {composite_id[:16]} is not registered on chain {chain.chain_id}; "
        f"deploy it first (prover.chain.composites.deploy_composite)"
    )


def composite_arguments(
    store: ArtifactStore, proof_ref: str
) -> tuple[dict[str, Any], list[bytes], list[list[int]]]:
    """(composite proof record, proof bytes per segment, instances per segment), in
    segment order, exactly as each segment's verifier takes them."""
    record = store.read_record("proofs", proof_ref)
    if proof_kind(store, record) != "composite":
        raise InvalidInputError(f"proof {record['id'][:16]} is not a composite proof")
    directory = store.path("proofs", record["id"])
    proofs, instances = [], []
    for segment in sorted(record["segments"], key=lambda s: int(s["index"])):
        proof, values = verifier_arguments(Path(directory / segment["proof_file"]))
        proofs.append(proof)
        instances.append(values)
    return record, proofs, instances


def _revert_reason(exc: Exception) -> str:
    data = getattr(exc, "data", None)
    return decode_revert(data) if isinstance(data, str | bytes) else str(exc)


def verify_composite_onchain(store: ArtifactStore, proof_ref: str, chain: Chain) -> dict[str, Any]:
    """A stored composite proof checked by ProvenComposites (an eth_call, no transaction):
    valid, or the contract's reason naming the failing segment or link."""
    record, proofs, instances = composite_arguments(store, proof_ref)
    address = registered_composite(store, record["circuit_id"], chain)
    call = contract(chain, CONTRACT, address).functions.check(
        bytes.fromhex(record["circuit_id"]), proofs, instances
    )
    base = {
        "proof_id": record["id"],
        "circuit_id": record["circuit_id"],
        "chain_id": chain.chain_id,
        "composites_address": address,
        "segments": len(proofs),
    }
    try:
        call.call()
    except (ContractCustomError, ContractLogicError) as exc:
        return {**base, "valid": False, "reason": _revert_reason(exc), "gas": None}
    return {**base, "valid": True, "reason": None, "gas": call.estimate_gas()}


def submit_composite(store: ArtifactStore, proof_ref: str, chain: Chain) -> dict[str, Any]:
    """Submit a stored composite proof's result to ProvenComposites in one transaction;
    a rejection (simulated first, so it costs no gas) is reported with the contract's
    reason, not sent."""
    record, proofs, instances = composite_arguments(store, proof_ref)
    address = registered_composite(store, record["circuit_id"], chain)
    composites = contract(chain, CONTRACT, address)
    base = {
        "proof_id": record["id"],
        "circuit_id": record["circuit_id"],
        "chain_id": chain.chain_id,
        "composites_address": address,
        "segments": len(proofs),
    }
    call = composites.functions.submit(bytes.fromhex(record["circuit_id"]), proofs, instances)
    answer, receipt = submit(chain, composites, lambda: (call, {}))
    if receipt is None:
        return {**base, **answer}
    (event,) = composites.events.CompositeAccepted().process_receipt(receipt)
    return {
        **base,
        **answer,
        "outputs": record.get("outputs"),
        "calldata_bytes": len(calldata(composites, call)),
        "event": {
            "name": event["event"],
            "circuit_id": event["args"]["compositeId"].hex(),
            "result_key": "0x" + event["args"]["resultKey"].hex(),
            "prover": event["args"]["prover"],
        },
    }


def commitment_points(witness: dict[str, Any], side: str) -> list[bytes]:
    """The polycommit commitments ezkl's witness holds for one side (``processed_inputs``
    or ``processed_outputs``), as the 64-byte uncompressed points a proof carries (for
    checking offsets against real proofs)."""
    found = (witness.get(side) or {}).get("polycommit") or []
    return [_uncompress(bytes.fromhex(p)) for tensor in found for p in tensor]


# BN254's base field modulus.
_P = 21888242871839275222246405745257275088696311157297823662689037894645226208583


def _uncompress(compressed: bytes) -> bytes:
    """halo2curves' compressed G1 (x little-endian, the y sign in the top bit) → x || y
    big-endian, as the EVM verifier reads points."""
    raw = bytearray(compressed)
    odd = bool(raw[31] & 0x80)
    raw[31] &= 0x3F
    x = int.from_bytes(raw, "little")
    y = pow((x**3 + 3) % _P, (_P + 1) // 4, _P)
    if (y & 1) != odd:
        y = _P - y
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")
