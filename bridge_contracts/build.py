"""Compile every Solidity source in src/ with the pinned solc into artifacts/.

One standard-JSON compilation (optimizer on); one artifact per contract declared in src/, written
as stable, sorted JSON so that a rebuild of unchanged sources gives identical files. The artifacts
are committed: installing xrelay needs no compiler, and `check()` proves they match the sources.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge_contracts import toolchain

SOURCES_DIR = toolchain.PACKAGE_DIR / "src"
ARTIFACTS_DIR = toolchain.PACKAGE_DIR / "artifacts"

SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


class CompileError(RuntimeError):
    """solc refused the sources; the message holds its formatted errors."""


@dataclass(frozen=True)
class BuildResult:
    artifacts: dict[str, str]  # file name -> JSON text
    warnings: list[str]


def compile_sources(sources_dir: Path = SOURCES_DIR) -> BuildResult:
    """Compile every .sol file under sources_dir; source units are named relative to its parent
    ("src/AssetRouter.sol"), so a copy elsewhere compiles to identical artifacts."""
    root = sources_dir.parent
    files = sorted(sources_dir.rglob("*.sol"))
    sources = {p.relative_to(root).as_posix(): {"content": p.read_text()} for p in files}
    if not sources:
        raise CompileError(f"no Solidity sources in {sources_dir}")
    request = {"language": "Solidity", "sources": sources, "settings": SETTINGS}
    key = json.dumps(request, sort_keys=True)
    if key not in _compiled:  # the same sources compile to the same result: once per process
        _compiled[key] = _compile(root, request)
    return _compiled[key]


_compiled: dict[str, BuildResult] = {}


def _compile(root: Path, request: dict[str, Any]) -> BuildResult:
    cmd = [
        toolchain.node(),
        str(toolchain.solcjs()),
        "--standard-json",
        "--base-path",
        str(root),
        "--include-path",
        str(toolchain.node_modules()),
    ]
    # solcjs exits before a piped stdout drains (output cut at 64 KiB); writes to a file are synchronous.
    # Its synchronous read of a piped stdin can fail with EAGAIN on a large request: give it a file too.
    with tempfile.TemporaryFile("w+") as request_file, tempfile.TemporaryFile("w+") as out:
        json.dump(request, request_file)
        request_file.seek(0)
        proc = subprocess.run(
            cmd, stdin=request_file, stdout=out, stderr=subprocess.PIPE, text=True, check=False
        )
        out.seek(0)
        text = out.read()
    # solcjs may print a notice (">>> Cannot retry compilation with SMT...") before the JSON.
    start = text.find("{")
    if proc.returncode != 0 or start < 0:
        raise CompileError(f"solc failed (exit {proc.returncode}): {proc.stderr.strip() or text.strip()}")
    output = json.loads(text[start:])
    diagnostics = output.get("errors", [])
    errors = [d["formattedMessage"].strip() for d in diagnostics if d["severity"] == "error"]
    if errors:
        raise CompileError("solc reported errors:\n" + "\n".join(errors))
    warnings = [d["formattedMessage"].strip() for d in diagnostics if d["severity"] != "error"]

    version = toolchain.solc_version()
    artifacts: dict[str, str] = {}
    for source_name in request["sources"]:
        for name, out in sorted(output["contracts"].get(source_name, {}).items()):
            file_name = f"{name}.json"
            if file_name in artifacts:
                raise CompileError(f"two contracts are named {name}: artifact names must be unique")
            artifact = {
                "contractName": name,
                "sourceName": source_name,
                "compiler": {"solc": version, "settings": SETTINGS},
                "abi": out["abi"],
                "bytecode": "0x" + out["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + out["evm"]["deployedBytecode"]["object"],
            }
            artifacts[file_name] = json.dumps(artifact, indent=2, sort_keys=True) + "\n"
    return BuildResult(artifacts, warnings)


def build(out_dir: Path = ARTIFACTS_DIR) -> BuildResult:
    """Compile and write the artifacts, removing artifacts of contracts that no longer exist."""
    result = compile_sources()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in set(p.name for p in out_dir.glob("*.json")) - set(result.artifacts):
        (out_dir / stale).unlink()
    for file_name, text in result.artifacts.items():
        path = out_dir / file_name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return result


def check(sources_dir: Path = SOURCES_DIR, artifacts_dir: Path = ARTIFACTS_DIR) -> list[str]:
    """Rebuild in memory; describe every difference from the artifacts on disk (empty: all match)."""
    fresh = compile_sources(sources_dir).artifacts
    on_disk = {p.name: p.read_text() for p in artifacts_dir.glob("*.json")}
    problems = [
        f"{name}: missing; run `xrelay contracts build`" for name in sorted(set(fresh) - set(on_disk))
    ]
    problems += [f"{name}: no longer built from src/" for name in sorted(set(on_disk) - set(fresh))]
    problems += [
        f"{name}: differs from a fresh build of its sources; run `xrelay contracts build`"
        for name in sorted(set(fresh) & set(on_disk))
        if fresh[name] != on_disk[name]
    ]
    return problems
