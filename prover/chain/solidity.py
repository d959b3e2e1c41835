"""Compile Solidity with the pinned official compiler (standard JSON, optimizer on)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prover.chain.toolchain import native_solc, solcjs_module
from prover.errors import SolidityError

EIP170_LIMIT = 24_576  # bytes of runtime code a contract may have on mainnet
_SOLCJS_RUNNER = Path(__file__).with_name("solcjs_compile.cjs")


@dataclass(frozen=True)
class CompiledContract:
    name: str
    abi: list[dict]
    bytecode: str  # creation code, 0x-prefixed
    runtime_size: int  # bytes of deployed code

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "runtime_size": self.runtime_size,
        }


def compile_sources(
    sources: dict[str, str], optimizer_runs: int = 1
) -> dict[str, CompiledContract]:
    """Compile ``{file name: source}``; returns every contract by name."""
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": optimizer_runs},
            "evmVersion": "london",
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        input_path = Path(tmp) / "input.json"
        input_path.write_text(json.dumps(standard_input))
        solc = native_solc()
        if solc:
            command = [solc, "--standard-json", str(input_path)]
        else:
            command = ["node", str(_SOLCJS_RUNNER), str(solcjs_module()), str(input_path)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise SolidityError(f"the Solidity compiler failed: {result.stderr.strip()[:500]}")
    output = json.loads(result.stdout)
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise SolidityError("Solidity compilation failed: " + "\n".join(errors)[:2000])
    contracts = {}
    for file_contracts in output.get("contracts", {}).values():
        for name, c in file_contracts.items():
            runtime = c["evm"]["deployedBytecode"]["object"]
            contracts[name] = CompiledContract(
                name, c["abi"], "0x" + c["evm"]["bytecode"]["object"], len(runtime) // 2
            )
    return contracts
