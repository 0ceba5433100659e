"""Generate the Poseidon libraries src/generated/PoseidonT{2..7}.sol from proofs.poseidon.

Run `python -m bridge_contracts.poseidon_gen` to (re)write them; `check()` says whether the committed
sources are current. Every constant comes from proofs.poseidon (circomlib's parameters); nothing is
copied by hand.

Each library computes circomlib's Poseidon(n) (t = n + 1) in one inline-assembly block, in the
optimized form of the Poseidon paper's appendix B (https://eprint.iacr.org/2019/458), derived by
proofs.poseidon.optimized: partial rounds add a constant to lane 0 only, and the last partial rounds
mix with sparse matrices (2t - 1 multiplications instead of t^2). Choices per width (LAYOUTS):

- constants used once (round constants, sparse matrices) are PUSH32 in the code; the dense matrices M
  and P, used in many rounds, are a `bytes` literal (copied from code) moved to memory at 0x80 and read
  with MLOAD: repeated PUSH32 constants would be 33 bytes each, and solc's optimizer (runs = 200) turns
  them into a CODECOPY routine of about 40 gas per use;
- wide widths keep the dense mix in their first `dense_rounds` partial rounds (a loop over their
  constants) and run 7 of the 8 full rounds in a loop, because each sparse round takes 2t - 1 words
  of code and the EIP-170 limit on deployed code is 24,576 bytes; the counts are the largest sparse
  share that fits (tests/test_poseidon_sol.py checks the sizes; benchmarks/poseidon_gas.py reports).

Arithmetic: MULMOD and ADDMOD reduce exactly whatever their operands (< 2^256), so values are kept
unreduced while a sum of them cannot reach 2^256: 5 * R < 2^256 < 6 * R. The generator tracks for every
lane how many multiples of R it may hold and reduces (ADDMOD instead of ADD) only where needed.

An input >= R reverts with `InputNotInField(index)` rather than being reduced: reducing would make
x and x + R collide.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from bridge_contracts import toolchain
from proofs.field import R
from proofs.poseidon import OptimizedParams, optimized

OUT_DIR = toolchain.PACKAGE_DIR / "src" / "generated"
WIDTHS = range(2, 8)
MAX_SUM = 5  # multiples of R that fit in 256 bits
ROUND_ENTRY = 4  # lanes entering a round hold < 4 R, so adding a constant (< R) stays below 5 R
ERROR = "InputNotInField(uint256)"


@dataclass(frozen=True)
class Layout:
    dense_rounds: int  # the first partial rounds that keep the dense mix (a loop over their constants)
    full_loop: bool  # the first 7 full rounds in a loop over their constants (else all unrolled)
    scratch: bool  # new lanes of a dense mix wait in memory (the stack reaches 16 values only)


LAYOUTS: dict[int, Layout] = {
    2: Layout(dense_rounds=0, full_loop=False, scratch=False),
    3: Layout(dense_rounds=0, full_loop=False, scratch=False),
    4: Layout(dense_rounds=0, full_loop=False, scratch=False),
    5: Layout(dense_rounds=6, full_loop=True, scratch=False),
    6: Layout(dense_rounds=19, full_loop=True, scratch=True),
    7: Layout(dense_rounds=32, full_loop=True, scratch=True),
}

# Memory: the inputs are read onto the stack first; then the table (a bytes literal, which Solidity
# copies from code) is moved to this fixed address, so that reading an entry is PUSH2 + MLOAD.
TABLE_ADDRESS = 0x80


def _hex(x: int) -> str:
    return f"0x{x:064x}"


def _word(x: int) -> str:
    return f"{x:064x}"


def _and_all(terms: list[str]) -> str:
    expr = terms[-1]
    for term in reversed(terms[:-1]):
        expr = f"and({term}, {expr})"
    return expr


class _Emitter:
    """Writes the assembly body of one width and keeps the bound of every lane (in multiples of R)."""

    def __init__(self, o: OptimizedParams, layout: Layout) -> None:
        self.o = o
        self.t = o.t
        self.layout = layout
        self.lines: list[str] = []
        self.indent = 3
        self.bounds = [1] * o.t
        # The table: [M | P | constants of the looped dense rounds | of the looped full rounds], then
        # t - 1 words of scratch. M and P are read in many rounds; a repeated PUSH32 would be turned by
        # the optimizer into a slower CODECOPY routine, and takes 33 bytes of code at every use.
        self.table = [x for row in o.mds for x in row] + [x for row in o.pre_sparse for x in row]
        self.dense_address = TABLE_ADDRESS + 32 * len(self.table)
        self.table += list(o.partial_constants[: max(layout.dense_rounds - 1, 0)])
        self.full_address = TABLE_ADDRESS + 32 * len(self.table)
        if layout.full_loop:
            assert layout.dense_rounds >= 1  # P then mixes a partial round, not a looped full round
            self.table += [c for rc in (*o.first_constants, *o.last_constants[:-1]) for c in rc]
        self.scratch_address = TABLE_ADDRESS + 32 * len(self.table)

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def block(self, lines: list[str]) -> None:
        self.emit("{")
        self.indent += 1
        for line in lines:
            self.emit(line)
        self.indent -= 1
        self.emit("}")

    def entry(self, matrix: int, i: int, j: int) -> str:
        """Matrix 0 (M) or 1 (P), entry [i][j], as a Yul expression."""
        if matrix == 0 and i == 0 and j == 0:
            return "m00"
        return f"mload({TABLE_ADDRESS + 32 * (matrix * self.t * self.t + i * self.t + j):#x})"

    @staticmethod
    def total(terms: list[tuple[str, int]], target: int) -> tuple[str, int]:
        """A right-nested sum (the innermost evaluated first, which keeps the stack shallow) of
        (expression, bound) terms, with ADDMOD where the running bound would pass MAX_SUM or, for the
        outermost addition, `target`. Returns the expression and its bound."""
        expr, bound = terms[-1]
        for k in range(len(terms) - 2, -1, -1):
            term, term_bound = terms[k]
            limit = target if k == 0 else MAX_SUM
            if bound + term_bound <= limit:
                expr, bound = f"add({term}, {expr})", bound + term_bound
            else:
                expr, bound = f"addmod({term}, {expr}, R)", 1
        if bound > target:
            expr, bound = f"mod({expr}, R)", 1
        return expr, bound

    def sbox(self, lane: int, constant: str) -> None:
        """s := (s + constant)^5 mod R."""
        assert self.bounds[lane] + 1 <= MAX_SUM
        self.block(
            [
                f"let x := add(s{lane}, {constant})",
                f"s{lane} := mulmod(x, x, R)",
                f"s{lane} := mulmod(mulmod(s{lane}, s{lane}, R), x, R)",
            ]
        )
        self.bounds[lane] = 1

    def row_sum(self, matrix: int, i: int, target: int) -> tuple[str, int]:
        return self.total(
            [(f"mulmod(s{j}, {self.entry(matrix, i, j)}, R)", 1) for j in range(self.t)], target
        )

    def dense_mix(self, matrix: int) -> None:
        """s := matrix * s, every lane below ROUND_ENTRY * R afterwards."""
        t = self.t
        sums = [self.row_sum(matrix, i, ROUND_ENTRY) for i in range(t)]
        if self.layout.scratch:
            # new lanes 0..t-2 wait in memory; lane t-1 is computed last, straight into s{t-1}
            slots = [f"{self.scratch_address + 32 * i:#x}" for i in range(t - 1)]
            lines = [f"mstore({slots[i]}, {sums[i][0]})" for i in range(t - 1)]
            lines.append(f"s{t - 1} := {sums[t - 1][0]}")
            lines += [f"s{i} := mload({slots[i]})" for i in range(t - 1)]
        else:
            lines = [f"let n{i} := {sums[i][0]}" for i in range(t)]
            lines += [f"s{i} := n{i}" for i in range(t)]
        self.block(lines)
        self.bounds = [bound for _, bound in sums]

    def full_round(self, constants: tuple[int, ...], matrix: int, first: bool, last: bool) -> None:
        self.emit(f"// full round{', mixed with P' if matrix else ''}")
        for lane, c in enumerate(constants):
            if first and lane == 0:  # lane 0 starts at 0: its S-box output is a constant
                self.emit(f"s0 := {_hex(pow(c, 5, R))}")
                self.bounds[0] = 1
            else:
                self.sbox(lane, _hex(c))
        if last:
            expr, _ = self.row_sum(0, 0, 1)
            self.emit(f"out := {expr}")
        else:
            self.dense_mix(matrix)

    def sparse_round(self, k: int) -> None:
        """Partial round k (of all partial rounds) in the sparse form."""
        o, t = self.o, self.t
        index = k - (o.partial_rounds - len(o.sparse_row))
        row, column = o.sparse_row[index], o.sparse_column[index]
        self.emit("// partial round, sparse mix")
        self.sbox(0, _hex(o.partial_constants[k]))
        terms = [("mulmod(s0, m00, R)", 1)]
        terms += [(f"mulmod(s{j}, {_hex(row[j - 1])}, R)", 1) for j in range(1, t)]
        lane0, bound0 = self.total(terms, ROUND_ENTRY)
        lines = [f"let n0 := {lane0}"]
        for i in range(1, t):
            product = f"mulmod(s0, {_hex(column[i - 1])}, R)"
            if self.bounds[i] + 1 <= ROUND_ENTRY:
                lines.append(f"s{i} := add(s{i}, {product})")
                self.bounds[i] += 1
            else:
                lines.append(f"s{i} := addmod(s{i}, {product}, R)")
                self.bounds[i] = 1
        lines.append("s0 := n0")
        self.block(lines)
        self.bounds[0] = bound0

    def dense_loop(self, count: int) -> None:
        """`count` dense partial rounds mixed with M, over their constants in the table."""
        assert all(b <= ROUND_ENTRY for b in self.bounds)  # the same on entry to every iteration
        start, end = self.dense_address, self.dense_address + 32 * count
        self.emit(f"// {count} partial rounds, dense mix")
        self.emit(f"for {{ let q := {start:#x} }} lt(q, {end:#x}) {{ q := add(q, 0x20) }} {{")
        self.indent += 1
        self.sbox(0, "mload(q)")
        self.dense_mix(0)
        self.indent -= 1
        self.emit("}")
        assert all(b <= ROUND_ENTRY for b in self.bounds)

    def partial_rounds(self) -> None:
        o, dense = self.o, self.layout.dense_rounds
        if dense >= 2:
            self.dense_loop(dense - 1)
        if dense >= 1:
            self.emit("// partial round, dense, mixed with P")
            self.sbox(0, _hex(o.partial_constants[dense - 1]))
            self.dense_mix(1)
        for k in range(dense, o.partial_rounds):
            self.sparse_round(k)

    def full_loop(self) -> None:
        """Full rounds 0 .. full_rounds-2 in a loop over their constants in the table, the partial
        rounds inside it, after the middle full round; then the last full round."""
        o, t = self.o, self.t
        half = o.full_rounds // 2
        step = 32 * t
        start, end = self.full_address, self.full_address + step * (o.full_rounds - 1)
        middle = start + step * (half - 1)
        self.emit(f"// full rounds 0..{o.full_rounds - 2}; the partial rounds after round {half - 1}")
        self.emit(f"for {{ let p := {start:#x} }} lt(p, {end:#x}) {{ p := add(p, {step:#x}) }} {{")
        self.indent += 1
        self.bounds = [ROUND_ENTRY] * t
        for lane in range(t):
            self.sbox(lane, "mload(p)" if lane == 0 else f"mload(add(p, {32 * lane:#x}))")
        self.dense_mix(0)
        self.emit(f"if eq(p, {middle:#x}) {{")
        self.indent += 1
        self.partial_rounds()
        assert all(b <= ROUND_ENTRY for b in self.bounds)
        self.bounds = [ROUND_ENTRY] * t
        self.indent -= 1
        self.emit("}")
        self.indent -= 1
        self.emit("}")
        self.full_round(o.last_constants[-1], 0, first=False, last=True)

    def body(self) -> list[str]:
        o, t = self.o, self.t
        half = o.full_rounds // 2
        dense = self.layout.dense_rounds
        selector = bytes(Web3.keccak(text=ERROR)[:4]).hex()
        self.emit("let R := " + _hex(R))
        for i in range(1, t):
            self.emit(f"let s{i} := mload({'inputs' if i == 1 else f'add(inputs, {32 * (i - 1):#x})'})")
        self.emit(f"if iszero({_and_all([f'lt(s{i}, R)' for i in range(1, t)])}) {{")
        self.indent += 1
        self.emit("let i := 0")
        self.emit("for {} lt(mload(add(inputs, shl(5, i))), R) {} { i := add(i, 1) }")
        self.emit(f"mstore(0, shl(224, 0x{selector}))")
        self.emit("mstore(4, i)")
        self.emit("revert(0, 0x24)")
        self.indent -= 1
        self.emit("}")
        self.emit(f"mcopy({TABLE_ADDRESS:#x}, add(table, 0x20), {32 * len(self.table):#x})")
        self.emit(f"let m00 := mload({TABLE_ADDRESS:#x})")
        self.emit("let s0 := 0")

        if self.layout.full_loop:
            self.full_loop()
            return self.lines
        for r in range(half):
            matrix = 1 if dense == 0 and r == half - 1 else 0
            self.full_round(o.first_constants[r], matrix, first=r == 0, last=False)
        self.partial_rounds()
        for r in range(half):
            self.full_round(o.last_constants[r], 0, first=False, last=r == half - 1)
        return self.lines


def _describe(layout: Layout, o: OptimizedParams) -> str:
    dense = layout.dense_rounds
    parts = [f"{o.full_rounds} full rounds" + (" (7 in a loop)" if layout.full_loop else "")]
    if dense:
        parts.append(f"{dense} dense partial rounds")
    parts.append(f"{o.partial_rounds - dense} sparse partial rounds (unrolled)")
    return "Layout: " + ", ".join(parts) + "."


def render(t: int) -> str:
    """The Solidity source of PoseidonT<t>."""
    layout = LAYOUTS[t]
    n = t - 1
    o = optimized(t, sparse_rounds=optimized(t).partial_rounds - layout.dense_rounds)
    emitter = _Emitter(o, layout)
    body = emitter.body()
    table = f'        bytes memory table = hex"{"".join(_word(x) for x in emitter.table)}";\n'
    return (
        "// SPDX-License-Identifier: Apache-2.0\n"
        "// GENERATED by `python -m bridge_contracts.poseidon_gen` from proofs.poseidon"
        " (circomlib's parameters). DO NOT EDIT.\n"
        "pragma solidity 0.8.30;\n"
        "\n"
        f"/// @title Poseidon over the BN254 scalar field, {n} input{'s' if n > 1 else ''} (width {t}):\n"
        f"/// circomlib's Poseidon({n}), i.e. circomlibjs poseidon([x1..x{n}]).\n"
        "/// @notice Deployed once per chain and linked (the function is public). Reverts with\n"
        "/// InputNotInField(index) for an input >= the field modulus (no silent reduction).\n"
        f"/// @dev {_describe(layout, o)}\n"
        f"library PoseidonT{t} {{\n"
        "    /// An input is not a field element: it is not below the BN254 scalar field modulus.\n"
        "    error InputNotInField(uint256 index);\n"
        "\n"
        f"    function hash(uint256[{n}] memory inputs) public pure returns (uint256 out) {{\n"
        f"{table}"
        "        assembly {\n" + "\n".join(body) + "\n        }\n    }\n}\n"
    )


def _path(t: int) -> Path:
    return OUT_DIR / f"PoseidonT{t}.sol"


def write() -> list[Path]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for t in WIDTHS:
        path = _path(t)
        text = render(t)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def check() -> list[str]:
    """Describe every generated source that differs from what the generator makes (empty: current)."""
    problems = []
    for t in WIDTHS:
        path = _path(t)
        if not path.exists():
            problems.append(f"{path.name}: missing; run `python -m bridge_contracts.poseidon_gen`")
        elif path.read_text() != render(t):
            problems.append(f"{path.name}: out of date; run `python -m bridge_contracts.poseidon_gen`")
    return problems


def main() -> int:
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
