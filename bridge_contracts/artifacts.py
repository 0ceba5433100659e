"""Read the committed contract artifacts (ABI and bytecode) written by `xrelay contracts build`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from bridge_contracts.build import ARTIFACTS_DIR


class ArtifactMissing(RuntimeError):
    """No compiled artifact for a contract name."""


@dataclass(frozen=True)
class Artifact:
    name: str
    source_name: str  # "src/generated/PoseidonT3.sol": with the name, what solc links libraries by
    abi: list[dict[str, Any]]
    bytecode: str

    @property
    def qualified_name(self) -> str:
        return f"{self.source_name}:{self.name}"


@cache
def load(name: str) -> Artifact:
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise ArtifactMissing(f"no artifact for contract {name} at {path}: run `xrelay contracts build`")
    data = json.loads(path.read_text())
    return Artifact(
        name=data["contractName"], source_name=data["sourceName"], abi=data["abi"], bytecode=data["bytecode"]
    )


def names() -> list[str]:
    return sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json"))
