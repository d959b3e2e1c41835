#!/usr/bin/env bash
# Set up if needed, lint, type-check, check the import contracts, and run the whole test
# suite (real ezkl proofs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
