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
    abi: list[dict[str, Any]]
    bytecode: str


@cache
def load(name: str) -> Artifact:
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise ArtifactMissing(f"no artifact for contract {name} at {path}: run `xrelay contracts build`")
    data = json.loads(path.read_text())
    return Artifact(name=data["contractName"], abi=data["abi"], bytecode=data["bytecode"])


def names() -> list[str]:
    return sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json"))
