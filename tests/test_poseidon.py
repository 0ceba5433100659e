"""Poseidon in Python against circomlibjs (the reference JavaScript of circomlib's Poseidon)."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge_contracts import toolchain
from proofs import poseidon_params
from proofs.field import R, join128, split128
from proofs.poseidon import (
    optimized,
    params,
    permute,
    permute_optimized,
    poseidon,
    supported_widths,
)

CIRCOMLIBJS = toolchain.node_modules() / "circomlibjs"

# Reads [[inputs...], ...] (decimal strings) on stdin; prints, for each, Poseidon by circomlibjs's
# default (wasm) implementation and by its reference implementation.
NODE_SCRIPT = """
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const lib = await import(pathToFileURL(process.argv[1]).href);
const poseidon = await lib.buildPoseidon();
const reference = await lib.buildPoseidonReference();
const vectors = JSON.parse(readFileSync(0, "utf8"));
const out = vectors.map((xs) => [
  poseidon.F.toString(poseidon(xs.map(BigInt))),
  reference.F.toString(reference(xs.map(BigInt))),
]);
process.stdout.write(JSON.stringify(out));
"""


def _circomlibjs(vectors: list[list[int]], tmp_path: Path) -> list[list[int]]:
    request = tmp_path / "vectors.json"
    request.write_text(json.dumps([[str(x) for x in xs] for xs in vectors]))
    with request.open() as stdin:
        proc = subprocess.run(
            [toolchain.node(), "--input-type=module", "-e", NODE_SCRIPT, str(CIRCOMLIBJS / "main.js")],
            stdin=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    return [[int(h) for h in pair] for pair in json.loads(proc.stdout)]


def _field_elements(rng: random.Random, n: int) -> list[int]:
    special = [0, 1, 2, R - 1, R - 2, (1 << 253) - 1]
    return [rng.choice(special) if rng.random() < 0.3 else rng.randrange(R) for _ in range(n)]


def test_known_vector() -> None:
    assert poseidon([1, 2]) == 0x115CC0F5E7D690413DF64C6B9662E9CF2A3617F2743245519E19607A4417189A


def test_matches_circomlibjs_for_every_width(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    vectors = [[1, 2]]
    for n in range(1, 17):
        vectors += [list(range(1, n + 1)), [0] * n, [R - 1] * n]
        vectors += [_field_elements(rng, n) for _ in range(3)]
    expected = _circomlibjs(vectors, tmp_path)
    for xs, (wasm, reference) in zip(vectors, expected, strict=True):
        assert wasm == reference
        assert poseidon(xs) == wasm, xs


def _circomlibjs_tables(name: str) -> dict[str, Any]:
    tables: dict[str, Any] = json.loads((CIRCOMLIBJS / "src" / name).read_text())
    return tables


def _ints(values: list[str]) -> list[int]:
    return [int(v, 16) for v in values]


def test_constants_equal_circomlibjs_tables() -> None:
    tables = _circomlibjs_tables("poseidon_constants.json")
    assert supported_widths() == list(range(2, 18))
    for t in supported_widths():
        p = params(t)
        assert list(p.round_constants) == _ints(tables["C"][t - 2]), t
        assert [list(row) for row in p.mds] == [_ints(row) for row in tables["M"][t - 2]], t
        assert p.full_rounds == 8
        assert p.partial_rounds == poseidon_params.PARTIAL_ROUNDS[t]


def test_optimized_form_equals_circomlibjs_optimized_tables() -> None:
    """circomlibjs's poseidon_constants_opt holds the same sparse matrices (S: per partial round
    mds[0][0], the row, the column) and the same pre-sparse matrix (P, stored transposed)."""
    tables = _circomlibjs_tables("poseidon_constants_opt.json")
    for t in range(2, 8):
        o = optimized(t)
        sparse = [
            x for k in range(o.partial_rounds) for x in (o.mds[0][0], *o.sparse_row[k], *o.sparse_column[k])
        ]
        assert sparse == _ints(tables["S"][t - 2]), t
        transposed = [list(col) for col in zip(*o.pre_sparse, strict=True)]
        assert transposed == [_ints(row) for row in tables["P"][t - 2]], t


@pytest.mark.parametrize("t", range(2, 18))
def test_optimized_permutation_equals_plain(t: int) -> None:
    rng = random.Random(t)
    p = params(t)
    forms = [optimized(t)]
    if t <= 8:  # some partial rounds dense, the rest sparse, as the wide Solidity libraries do
        forms += [optimized(t, 0), optimized(t, 1), optimized(t, p.partial_rounds - 19)]
    for o in forms:
        for _ in range(2):
            state = _field_elements(rng, t)
            assert permute_optimized(state, o) == permute(state, p)


def test_data_file_is_what_the_generator_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m proofs.poseidon_params` regenerates the committed file exactly (all widths, ~1 s)."""
    committed = poseidon_params.DATA_FILE.read_text()
    monkeypatch.setattr(poseidon_params, "DATA_FILE", tmp_path / "poseidon_bn254.json")
    poseidon_params.main()
    assert (tmp_path / "poseidon_bn254.json").read_text() == committed


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="1 to 16 inputs"):
        poseidon([])
    with pytest.raises(ValueError, match="1 to 16 inputs"):
        poseidon([1] * 17)
    with pytest.raises(ValueError, match="input 1 is not a field element"):
        poseidon([1, R])
    with pytest.raises(ValueError, match="input 0 is not a field element"):
        poseidon([-1])
    for t in (0, 1, 18):
        with pytest.raises(ValueError, match="not supported"):
            params(t)
    with pytest.raises(ValueError, match="3 lanes"):
        permute([0, 1, 2], params(4))


def test_split128() -> None:
    assert split128((5 << 128) | 7) == (5, 7)
    assert split128((1 << 256) - 1) == ((1 << 128) - 1, (1 << 128) - 1)
    with pytest.raises(ValueError):
        split128(1 << 256)


@given(st.integers(0, (1 << 256) - 1))
def test_join128_inverts_split128(x: int) -> None:
    assert join128(*split128(x)) == x


def test_join128_refuses_a_half_of_more_than_128_bits() -> None:
    with pytest.raises(ValueError, match="two 128-bit unsigned halves"):
        join128(1 << 128, 0)
    with pytest.raises(ValueError, match="two 128-bit unsigned halves"):
        join128(0, -1)
