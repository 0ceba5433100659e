"""Generate circomlib's Poseidon parameters for BN254 (x^5, 8 full rounds) into proofs/poseidon_bn254.json.

Run `python -m proofs.poseidon_params` to (re)write the committed data file for t = 2..17.

Facts, from the Poseidon paper (Grassi et al., https://eprint.iacr.org/2019/458, appendix F) and its
reference script `generate_parameters_grain.sage` (https://extgit.iaik.tugraz.at/krypto/hadeshash),
invoked by circomlib as `sage generate_parameters_grain.sage 1 0 254 t 8 R_P 0x30644e...0001`:

- An 80-bit Grain LFSR is seeded with, most significant bit first: field type (2 bits, 1 = GF(p)),
  S-box (4 bits, 0 = x^alpha), field size n (12 bits, 254), t (12 bits), R_F (10 bits), R_P (10 bits),
  then thirty 1 bits. Seed bit i is s_i; the feedback is
  s_{i+80} = s_{i+62} ^ s_{i+51} ^ s_{i+38} ^ s_{i+23} ^ s_{i+13} ^ s_i.
- The first 160 LFSR bits are discarded. After that bits are read in pairs (a, b): b is output when
  a = 1, the pair is dropped when a = 0 (self-shrinking).
- A field element takes n output bits, the first one most significant. Round constants are
  rejection-sampled: a value >= p is dropped and the next n bits are taken. (R_F + R_P) * t
  constants are drawn, round by round, lane by lane.
- Then the MDS matrix, from the same bit stream: 2t values of n bits, each reduced mod p (no
  rejection), xs = the first t, ys = the last t; if the 2t values are not distinct, or some
  xs[i] + ys[j] = 0, all 2t are drawn again. M[i][j] = 1 / (xs[i] + ys[j]) (a Cauchy matrix).
- The script then runs three security checks on M (the paper's "Algorithm 1-3" against infinitely
  long invariant subspace trails) and draws a new matrix if one fails. They are not run here:
  for every circomlib width the first matrix drawn is the one circomlib uses (tests/test_poseidon.py
  compares every constant with circomlibjs's own tables), so the checks did not change the result.

The partial round numbers per t = 2..17 are circomlib's (circomlibjs src/poseidon_reference.js):
56, 57, 56, 60, 60, 63, 64, 63, 60, 66, 60, 65, 70, 60, 64, 68.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from proofs.field import R

FIELD_BITS = 254
FULL_ROUNDS = 8
PARTIAL_ROUNDS: dict[int, int] = dict(
    zip(range(2, 18), (56, 57, 56, 60, 60, 63, 64, 63, 60, 66, 60, 65, 70, 60, 64, 68), strict=True)
)
DATA_FILE = Path(__file__).resolve().parent / "poseidon_bn254.json"

_TAPS = (62, 51, 38, 23, 13, 0)
_STEP = 18  # the nearest tap (62) is 18 bits behind a new bit: 18 new bits depend only on the old window
_STEP_MASK = (1 << _STEP) - 1


def _shrink(pairs: int, count: int) -> tuple[int, int]:
    """Self-shrink `count` pairs held in the low bits of `pairs` (the earlier bit lower): for each
    pair (a, b), keep b when a = 1. Returns (kept bits, earliest most significant; how many)."""
    kept = 0
    n = 0
    for k in range(count):
        if pairs >> (2 * k) & 1:
            kept = kept << 1 | (pairs >> (2 * k + 1) & 1)
            n += 1
    return kept, n


_SHRINK_6 = [_shrink(v, 3) for v in range(64)]  # three pairs at a time


def _lfsr_chunks(seed_bits: list[int]) -> Iterator[int]:
    """The raw Grain LFSR stream after the seed, 18 bits per item, the earliest bit lowest."""
    window = sum(bit << i for i, bit in enumerate(seed_bits))  # bit i of `window` = s_i
    while True:
        new = 0
        for tap in _TAPS:
            new ^= window >> tap
        new &= _STEP_MASK
        window = window >> _STEP | new << (80 - _STEP)
        yield new


class GrainBits:
    """The script's output bit stream for (GF(p), x^alpha, n, t, R_F, R_P), read n bits at a time."""

    def __init__(self, field_bits: int, t: int, full_rounds: int, partial_rounds: int) -> None:
        fields = ((1, 2), (0, 4), (field_bits, 12), (t, 12), (full_rounds, 10), (partial_rounds, 10))
        seed = "".join(format(value, f"0{width}b") for value, width in fields) + "1" * 30
        assert len(seed) == 80
        self._chunks = _lfsr_chunks([int(c) for c in seed])
        for _ in range(160 // _STEP):  # discard the first 160 bits (8 * 18 = 144, then 16 more)
            next(self._chunks)
        first = next(self._chunks) >> (160 % _STEP)  # the 2 bits left of this chunk: one pair
        self._buffer, self._count = _shrink(first, 1)

    def _refill(self) -> None:
        chunk = next(self._chunks)
        for shift in (0, 6, 12):
            kept, n = _SHRINK_6[chunk >> shift & 63]
            self._buffer = self._buffer << n | kept
            self._count += n

    def take(self, n: int) -> int:
        """The next n output bits as an integer, the first bit most significant."""
        while self._count < n:
            self._refill()
        self._count -= n
        value = self._buffer >> self._count
        self._buffer &= (1 << self._count) - 1
        return value


def generate(t: int, full_rounds: int = FULL_ROUNDS, partial_rounds: int | None = None) -> dict[str, Any]:
    """Round constants (round r lane i at [r*t + i]) and the Cauchy MDS matrix for width t."""
    rounds_p = PARTIAL_ROUNDS[t] if partial_rounds is None else partial_rounds
    bits = GrainBits(FIELD_BITS, t, full_rounds, rounds_p)
    constants = []
    for _ in range((full_rounds + rounds_p) * t):
        value = bits.take(FIELD_BITS)
        while value >= R:
            value = bits.take(FIELD_BITS)
        constants.append(value)
    while True:
        values = [bits.take(FIELD_BITS) % R for _ in range(2 * t)]
        if len(set(values)) != 2 * t:
            continue
        xs, ys = values[:t], values[t:]
        if any((x + y) % R == 0 for x in xs for y in ys):
            continue
        mds = [[pow(x + y, -1, R) for y in ys] for x in xs]
        break
    return {
        "t": t,
        "full_rounds": full_rounds,
        "partial_rounds": rounds_p,
        "round_constants": constants,
        "mds": mds,
    }


def _hex(x: int) -> str:
    return f"0x{x:064x}"


def render(widths: range = range(2, 18)) -> str:
    """The data file's text: stable JSON with field elements as 0x-prefixed 64-digit hex strings."""
    entries = {}
    for t in widths:
        p = generate(t)
        entries[str(t)] = {
            "full_rounds": p["full_rounds"],
            "partial_rounds": p["partial_rounds"],
            "round_constants": [_hex(c) for c in p["round_constants"]],
            "mds": [[_hex(m) for m in row] for row in p["mds"]],
        }
    document = {
        "about": "Poseidon over BN254, circomlib's parameters (x^5, Grain LFSR constants, Cauchy MDS). "
        "Generated by `python -m proofs.poseidon_params`; do not edit.",
        "field": str(R),
        "mds_orientation": "new[i] = sum_j mds[i][j] * old[j]",
        "widths": entries,
    }
    return json.dumps(document, indent=1) + "\n"


def main() -> None:
    DATA_FILE.write_text(render())
    print(f"wrote {DATA_FILE}")


if __name__ == "__main__":
    main()
