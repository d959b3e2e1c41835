#!/usr/bin/env bash
# Run bench/bench_gpu.py (CPU against GPU proving) on a machine with an NVIDIA GPU and leave
# the results in $OUT (default bench/results): bench_gpu-<time>.json, the log, and
# machine-<time>.txt (nvidia-smi, CPUs, memory). Arguments go to bench_gpu.py (default:
# --cnn medium --repeat 2); e.g. `bash bench/run_gpu.sh --cnn large --repeat 3`.
#
# A GPU worker proves with the `ezkl` binary built with ezkl's gpu-accelerated feature
# (ezkl's Python prove never selects the GPU; prover/circuits/backend.py). Two ways to get it:
#   BENCH_IMAGE=prover-gpu:local  run inside that image (docker/Dockerfile.gpu, which sets
#                                 PROVER_EZKL_CLI) with `docker run --gpus`; the repository
#                                 is mounted read-only
#   otherwise                     a virtual environment .venv (made with pip when missing:
#                                 prover and its pinned dependencies, no torch) and
#                                 PROVER_EZKL_CLI naming that binary (e.g. copied out of the
#                                 image's /usr/local/bin/ezkl, with its /opt/icicle as
#                                 ICICLE_BACKEND_INSTALL_DIR); without it the benchmark
#                                 measures the CPU path only
# Other settings: BENCH_TIMEOUT (seconds for the whole benchmark, default 540: results of
# the circuits finished by then are kept), BENCH_GPU (GPU index, default 0), PYTHON,
# ICICLE_BACKEND_INSTALL_DIR (the CUDA backend; the image sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-bench/results}
mkdir -p "$out"
out=$(cd "$out" && pwd)
limit=${BENCH_TIMEOUT:-540}
gpu=${BENCH_GPU:-0}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
name="bench_gpu-$stamp"
if [ "$#" -eq 0 ]; then
  set -- --cnn medium --repeat 2
fi

{
  echo "== date"; date -u
  echo "== nvidia-smi"; nvidia-smi 2>&1 || echo "no nvidia-smi"
  echo "== cpus"; nproc
  echo "== memory"; free -g 2>&1 || true
} > "$out/machine-$stamp.txt"

run_in_image() {
  # The image's own user cannot write to $out: run as the caller, HOME in /tmp.
  docker run --rm --gpus "device=$gpu" --user "$(id -u):$(id -g)" -e HOME=/tmp \
    -v "$PWD:/src:ro" -v "$out:/out" -w /src --entrypoint timeout "$BENCH_IMAGE" \
    "$limit" python bench/bench_gpu.py --gpu 0 --json "/out/$name.json" "$@"
}

run_in_venv() {
  if ! .venv/bin/python -c 'import prover, ezkl' 2>/dev/null; then
    echo "run_gpu: installing prover into .venv" >&2
    "${PYTHON:-python3}" -m venv .venv
    .venv/bin/python -m pip install --disable-pip-version-check -q -e .
  fi
  if [ -z "${PROVER_EZKL_CLI:-}" ]; then
    echo "run_gpu: PROVER_EZKL_CLI is not set: no GPU binary, the CPU path only" >&2
  fi
  timeout "$limit" .venv/bin/python bench/bench_gpu.py --gpu "$gpu" --json "$out/$name.json" "$@"
}

set +e
if [ -n "${BENCH_IMAGE:-}" ]; then
  run_in_image "$@" 2>&1 | tee "$out/$name.log"
else
  run_in_venv "$@" 2>&1 | tee "$out/$name.log"
fi
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 124 ]; then
  echo "run_gpu: stopped after ${limit}s; circuits finished before are in $out/$name.json" >&2
fi
echo "run_gpu: results in $out ($name.json, $name.log, machine-$stamp.txt); exit $rc" >&2
exit "$rc"
