"""Where the pinned Solidity compiler and the local chain binary are found.

A native ``solc`` on PATH is used when it is version 0.8.20; otherwise the official wasm
build from npm (``solc@0.8.20``) runs under node. ``anvil`` comes from npm
(``@foundry-rs/anvil``, a real binary). ``scripts/setup.sh`` installs both into
``node_modules`` at the repository root; ``PROVER_NODE_MODULES`` points elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from prover.errors import ToolchainError

SOLC_VERSION = "0.8.20"
REPO_ROOT = Path(__file__).resolve().parents[2]


def node_modules() -> Path:
    return Path(os.environ.get("PROVER_NODE_MODULES", REPO_ROOT / "node_modules"))


@lru_cache
def native_solc() -> str | None:
    """Path of a native solc of the pinned version, if one is on PATH."""
    path = shutil.which("solc")
    if path is None:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return path if f"Version: {SOLC_VERSION}" in out.stdout else None


def solcjs_module() -> Path:
    """The npm solc package directory (the official compiler as wasm)."""
    module = node_modules() / "solc"
    if shutil.which("node") is None or not (module / "package.json").is_file():
        raise ToolchainError(
            f"no solc {SOLC_VERSION}: put a native solc {SOLC_VERSION} on PATH, or install node "
            "and run scripts/setup.sh (npm install solc@0.8.20)"
        )
    return module


def anvil_binary() -> Path:
    """The anvil binary shipped by the npm package for this platform."""
    base = node_modules() / "@foundry-rs"
    candidates = sorted(base.glob("anvil-*/bin/anvil")) if base.is_dir() else []
    found = shutil.which("anvil")
    if candidates:
        return candidates[0]
    if found:
        return Path(found)
    raise ToolchainError("no anvil: run scripts/setup.sh (npm install @foundry-rs/anvil)")
