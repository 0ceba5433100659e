"""Poseidon over BN254's scalar field, compatible with circomlib's Poseidon(n) and circomlibjs.

Facts (Grassi et al., "Poseidon", https://eprint.iacr.org/2019/458; circomlib circuits/poseidon.circom
and circomlibjs src/poseidon_reference.js for the instance and its round structure):

- Width t = n + 1 for n inputs; state = [0, *inputs]; the hash is lane 0 of the permuted state.
- 8 full rounds and circomlib's partial rounds per t (see proofs.poseidon_params). Round r: add the
  round constants C[r*t + i] to every lane i; S-box x -> x^5 on every lane in the first 4 and last 4
  rounds, on lane 0 only in the partial rounds between; then mix: new[i] = sum_j M[i][j] * old[j].
- Constants and the MDS matrix come from the Grain LFSR (proofs.poseidon_params), committed in
  proofs/poseidon_bn254.json.

`optimized(t)` derives the cheaper equivalent form of the paper's appendix B (circomlib's
poseidon_constants_opt is another instance of the same idea): constants of partial rounds folded so
that a partial round adds a constant to lane 0 only, and every partial round's mix factored into a
sparse matrix, the dense remainders pushed back into the last full round of the first half.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from proofs.field import R
from proofs.poseidon_params import DATA_FILE

Matrix = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class PoseidonParams:
    t: int
    full_rounds: int  # 8
    partial_rounds: int
    round_constants: tuple[int, ...]  # t*(full_rounds+partial_rounds), round r lane i at [r*t + i]
    mds: Matrix  # t x t; the mix computes new[i] = sum_j mds[i][j] * old[j] mod R


@cache
def _data() -> dict[str, dict[str, object]]:
    document = json.loads(DATA_FILE.read_text())
    if int(document["field"]) != R:
        raise ValueError(f"{DATA_FILE} is for another field")
    widths: dict[str, dict[str, object]] = document["widths"]
    return widths


def supported_widths() -> list[int]:
    return sorted(int(t) for t in _data())


@cache
def params(t: int) -> PoseidonParams:
    """circomlib's parameters for width t (2..17, i.e. 1..16 inputs)."""
    entry = _data().get(str(t)) if isinstance(t, int) else None
    if entry is None:
        raise ValueError(f"Poseidon width t={t!r} is not supported: t must be 2..17 (1..16 inputs)")
    constants = entry["round_constants"]
    mds = entry["mds"]
    full_rounds = entry["full_rounds"]
    partial_rounds = entry["partial_rounds"]
    assert isinstance(constants, list) and isinstance(mds, list)
    assert isinstance(full_rounds, int) and isinstance(partial_rounds, int)
    p = PoseidonParams(
        t=t,
        full_rounds=full_rounds,
        partial_rounds=partial_rounds,
        round_constants=tuple(int(c, 16) for c in constants),
        mds=tuple(tuple(int(m, 16) for m in row) for row in mds),
    )
    if len(p.round_constants) != t * (full_rounds + partial_rounds) or len(p.mds) != t:
        raise ValueError(f"{DATA_FILE}: malformed parameters for t={t}")
    return p


def _mix(m: Matrix, state: Sequence[int]) -> list[int]:
    return [sum(a * b for a, b in zip(row, state, strict=True)) % R for row in m]


def permute(state: Sequence[int], p: PoseidonParams) -> list[int]:
    """The Poseidon permutation of a t-lane state (lanes taken mod R)."""
    t = p.t
    if len(state) != t:
        raise ValueError(f"the state has {len(state)} lanes, the parameters are for t={t}")
    s = [x % R for x in state]
    half = p.full_rounds // 2
    for r in range(p.full_rounds + p.partial_rounds):
        s = [(x + c) % R for x, c in zip(s, p.round_constants[r * t : (r + 1) * t], strict=True)]
        if r < half or r >= half + p.partial_rounds:
            s = [pow(x, 5, R) for x in s]
        else:
            s[0] = pow(s[0], 5, R)
        s = _mix(p.mds, s)
    return s


def poseidon(inputs: Sequence[int]) -> int:
    """circomlib's Poseidon(n) of n = len(inputs) field elements (1..16), each in [0, R)."""
    n = len(inputs)
    if not 1 <= n <= 16:
        raise ValueError(f"Poseidon takes 1 to 16 inputs, not {n}")
    for i, x in enumerate(inputs):
        if not isinstance(x, int) or not 0 <= x < R:
            raise ValueError(f"Poseidon input {i} is not a field element (an int in [0, R)): {x!r}")
    return permute([0, *inputs], params(n + 1))[0]


# --- The optimized form (paper, appendix B) -------------------------------------------------------


@dataclass(frozen=True)
class OptimizedParams:
    """The same permutation as `params(t)`, arranged for fewer multiplications:

    - full rounds r < full_rounds/2: add first_constants[r] (t values), x^5 on all lanes, mix;
    - partial round k: add partial_constants[k] to lane 0, x^5 on lane 0, mix;
    - full rounds after them: add last_constants[r] (t values), x^5 on all lanes, mix with mds.

    The last len(sparse_row) partial rounds are sparse: round k of them mixes with
      new[0] = mds[0][0] * old[0] + sum_{j>=1} sparse_row[k][j-1] * old[j],
      new[i] = old[i] + sparse_column[k][i-1] * old[0] for i >= 1.
    The round just before the first sparse one (a full round when all partial rounds are sparse)
    mixes with the dense matrix pre_sparse; every other round mixes with mds.
    """

    t: int
    full_rounds: int
    partial_rounds: int
    first_constants: tuple[tuple[int, ...], ...]  # full_rounds/2 rounds of t
    partial_constants: tuple[int, ...]  # partial_rounds values, for lane 0
    last_constants: tuple[tuple[int, ...], ...]  # full_rounds/2 rounds of t
    mds: Matrix
    pre_sparse: Matrix  # the mix of the round before the first sparse one
    sparse_row: tuple[tuple[int, ...], ...]  # per sparse round: row 0 right of the diagonal (t-1 values)
    sparse_column: tuple[tuple[int, ...], ...]  # per sparse round: column 0 below the diagonal (t-1)


def _matmul(a: Matrix, b: Matrix) -> Matrix:
    columns = tuple(zip(*b, strict=True))
    return tuple(tuple(sum(x * y for x, y in zip(row, col, strict=True)) % R for col in columns) for row in a)


def _inverse(m: Matrix) -> Matrix:
    """Gauss-Jordan inverse mod R (m must be invertible)."""
    n = len(m)
    rows = [[*row, *(int(i == j) for j in range(n))] for i, row in enumerate(m)]
    for col in range(n):
        pivot = next(i for i in range(col, n) if rows[i][col] % R)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        inv = pow(rows[col][col], -1, R)
        rows[col] = [x * inv % R for x in rows[col]]
        for i in range(n):
            if i != col and rows[i][col]:
                f = rows[i][col]
                rows[i] = [(x - f * y) % R for x, y in zip(rows[i], rows[col], strict=True)]
    return tuple(tuple(row[n:]) for row in rows)


@cache
def optimized(t: int, sparse_rounds: int | None = None) -> OptimizedParams:
    """Derive the optimized form of width t from the plain parameters, with the last `sparse_rounds`
    partial rounds (default: all) in the sparse form."""
    p = params(t)
    sparse_count = p.partial_rounds if sparse_rounds is None else sparse_rounds
    if not 0 <= sparse_count <= p.partial_rounds:
        raise ValueError(f"t={t} has {p.partial_rounds} partial rounds, not {sparse_count} to make sparse")
    half = p.full_rounds // 2
    m = p.mds
    rounds = [list(p.round_constants[r * t : (r + 1) * t]) for r in range(p.full_rounds + p.partial_rounds)]

    # Constants: a partial round's S-box leaves lanes 1.. alone, so their constants can be added after
    # it instead, i.e. carried through the mix into the next round: next += M * (0, c_1, ..., c_{t-1}).
    partial_constants = []
    for r in range(half, half + p.partial_rounds):
        carried = _mix(m, [0, *rounds[r][1:]])
        rounds[r + 1] = [(a + b) % R for a, b in zip(rounds[r + 1], carried, strict=True)]
        partial_constants.append(rounds[r][0])

    # Matrices, for the last sparse_count partial rounds: a partial round's mix
    # A = [[a00, row], [col, Â]] factors as A = A'' * A' with A' = [[1, 0], [0, Â]] applied first and
    # the sparse A'' = [[a00, row * Â^-1], [col, I]]. A' leaves lane 0 alone, so it commutes with the
    # round's lane-0 constant and S-box: it moves into the previous round's mix, which becomes A' * M.
    # Going from the last partial round back, the last A' ends in the mix of the round before them.
    rows: list[tuple[int, ...]] = []
    columns: list[tuple[int, ...]] = []
    acc = m
    for _ in range(sparse_count):
        assert acc[0] == m[0]  # A' fixes row 0
        sub = tuple(row[1:] for row in acc[1:])
        inverse_t = tuple(zip(*_inverse(sub), strict=True))
        rows.append(tuple(_mix(inverse_t, acc[0][1:])))
        columns.append(tuple(row[0] for row in acc[1:]))
        outer = ((1,) + (0,) * (t - 1), *((0, *row) for row in sub))
        acc = _matmul(outer, m)
    rows.reverse()
    columns.reverse()

    return OptimizedParams(
        t=t,
        full_rounds=p.full_rounds,
        partial_rounds=p.partial_rounds,
        first_constants=tuple(tuple(c) for c in rounds[:half]),
        partial_constants=tuple(partial_constants),
        last_constants=tuple(tuple(c) for c in rounds[half + p.partial_rounds :]),
        mds=m,
        pre_sparse=acc,
        sparse_row=tuple(rows),
        sparse_column=tuple(columns),
    )


def permute_optimized(state: Sequence[int], o: OptimizedParams) -> list[int]:
    """The permutation computed in the optimized form; equals permute(state, params(o.t))."""
    if len(state) != o.t:
        raise ValueError(f"the state has {len(state)} lanes, the parameters are for t={o.t}")
    s = [x % R for x in state]
    half = o.full_rounds // 2
    first_sparse = o.partial_rounds - len(o.sparse_row)
    pre_round = half + first_sparse - 1  # the round that mixes with pre_sparse

    def mix(r: int, s: list[int]) -> list[int]:
        return _mix(o.pre_sparse if r == pre_round else o.mds, s)

    for r, constants in enumerate(o.first_constants):
        s = mix(r, [pow((x + c) % R, 5, R) for x, c in zip(s, constants, strict=True)])
    m00 = o.mds[0][0]
    for k, c in enumerate(o.partial_constants):
        s[0] = pow((s[0] + c) % R, 5, R)
        if k < first_sparse:
            s = mix(half + k, s)
            continue
        row, column = o.sparse_row[k - first_sparse], o.sparse_column[k - first_sparse]
        y = s[0]
        s = [(m00 * y + sum(a * b for a, b in zip(row, s[1:], strict=True))) % R] + [
            (x + v * y) % R for x, v in zip(s[1:], column, strict=True)
        ]
    for constants in o.last_constants:
        s = _mix(o.mds, [pow((x + c) % R, 5, R) for x, c in zip(s, constants, strict=True)])
    return s
