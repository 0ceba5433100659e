"""The committed artifacts are exactly what the pinned solc makes of the sources."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge_contracts import build


def test_committed_artifacts_match_a_fresh_build() -> None:
    assert build.check() == []


def test_check_notices_an_edited_source(tmp_path: Path) -> None:
    sources = tmp_path / "src"
    shutil.copytree(build.SOURCES_DIR, sources)
    token = sources / "devnet" / "DevToken.sol"  # imported by no other source
    token.write_text(token.read_text() + "\n// an edit the artifacts have not seen\n")
    assert build.check(sources) == [
        "DevToken.json: differs from a fresh build of its sources; run `xrelay contracts build`"
    ]


def test_check_notices_missing_and_stale_artifacts(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(build.ARTIFACTS_DIR, artifacts)
    (artifacts / "DevToken.json").unlink()
    (artifacts / "Gone.json").write_text("{}\n")
    assert build.check(artifacts_dir=artifacts) == [
        "DevToken.json: missing; run `xrelay contracts build`",
        "Gone.json: no longer built from src/",
    ]


def test_compile_error_names_file_and_line(tmp_path: Path) -> None:
    sources = tmp_path / "src"
    sources.mkdir()
    (sources / "Broken.sol").write_text(
        "// SPDX-License-Identifier: Apache-2.0\npragma solidity 0.8.30;\ncontract Broken { uint x = ; }\n"
    )
    with pytest.raises(build.CompileError, match=r"(?s)ParserError.*src/Broken.sol:3"):
        build.compile_sources(sources)
