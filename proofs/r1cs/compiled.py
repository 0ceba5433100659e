"""The witness of a built R1CS computed by compiled code: the fast path of `R1CS.witness_limbs` (and of
`R1CS.witness(..., compiled=True)`); `R1CS.witness` over Python ints stays the reference, and the tests
hold the two equal.

A `WitnessProgram` is the R1CS's witness steps as arrays, made once per R1CS:

- rows: every linear combination the steps and the checked constraints evaluate, in CSR form (`row_ptr`,
  `row_wire`, `row_coef`), each coefficient an index into `coefs`, the distinct coefficients in
  Montgomery form (index 0 is 1 and index 1 is -1: an addition or a subtraction, no multiplication);
- ops, one per step, in order: a multiplication (out = A·B), or one of the standard hints of
  proofs.r1cs.hints (bits, inverse_or_zero, less_than), each computed in the same loop; any other hint
  is a Python op: the loop stops before it, Python computes it as the reference does, and the loop
  goes on after it.

The wires live in an (n_wires, 4) uint64 array in Montgomery form, with the field arithmetic of
proofs.bn254.field. When every wire is set once, before any step reads it (`single_assignment`, checked
when the program is made; true of every Builder's R1CS), a row read more than once (x in x·x and x⁴·x)
is computed once per witness, and each multiplication's own constraint A·B = out holds by construction:
its step computed out as exactly that product, with the same code, from wires that never change after.
Derived inputs (Builder.derive) left out are set after the steps. Then the other constraints are checked
in compiled code (all of them without single assignment): a failing one raises the same ConstraintFailed
as the reference (the first that fails, its label and the values of A, B and C), and bad inputs and
failing hints raise the same WitnessError.

The kernels are cached on disk like the prover's (`cache=True`, under proofs.bn254's cache folder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from itertools import chain

import numpy as np
from numba import njit

from proofs.bn254 import field
from proofs.bn254.field import (
    FR_ONE,
    FR_R2,
    FR_ZERO,
    ONE,
    U64,
    ZERO,
    equal,
    fr_add,
    fr_inv,
    fr_mul,
    fr_sub,
    load,
    store,
)
from proofs.field import R
from proofs.r1cs import hints
from proofs.r1cs.builder import (
    R1CS,
    Constraint,
    ConstraintFailed,
    Row,
    _HintStep,
    _MulStep,
    hint_outputs,
)

_MUL, _BITS, _INVERSE, _LESS_THAN, _PYTHON = 0, 1, 2, 3, 4
_PLAIN_ONE = (ONE, ZERO, ZERO, ZERO)  # multiplying by it leaves Montgomery form


# --- kernels -------------------------------------------------------------------------------------------


@njit(cache=True)
def _row(w, r, rows):  # type: ignore[no-untyped-def]
    """The value of row r over the wires w (Montgomery form). rows = (row_ptr, row_wire, row_coef,
    coefs, row_slot, memo, known): a row with a slot (row_slot[r] >= 0) is computed once, then kept in
    memo[slot] (known[slot] set)."""
    row_ptr, row_wire, row_coef, coefs, row_slot, memo, known = rows
    slot = row_slot[r]
    if slot >= 0 and known[slot]:
        return load(memo, slot)
    acc = FR_ZERO
    for j in range(row_ptr[r], row_ptr[r + 1]):
        x = load(w, row_wire[j])
        k = row_coef[j]
        if k == 0:
            acc = fr_add(acc, x)
        elif k == 1:
            acc = fr_sub(acc, x)
        else:
            acc = fr_add(acc, fr_mul(x, load(coefs, k)))
    if slot >= 0:
        store(memo, slot, acc)
        known[slot] = True
    return acc


@njit(cache=True)
def _run(w, start, ops, out_wires, rows):  # type: ignore[no-untyped-def]
    """Run ops[start:] over w until a Python op: returns its index, or len(ops) when all are done.
    An op is (kind, row, row or n, first output in out_wires)."""
    for i in range(start, ops.shape[0]):
        kind = ops[i, 0]
        if kind == _MUL:
            x = _row(w, ops[i, 1], rows)
            y = _row(w, ops[i, 2], rows)
            store(w, out_wires[ops[i, 3]], fr_mul(x, y))
        elif kind == _BITS:
            v = fr_mul(_row(w, ops[i, 1], rows), _PLAIN_ONE)  # plain limbs
            for k in range(ops[i, 2]):
                bit = (v[k // 64] >> U64(k % 64)) & ONE
                store(w, out_wires[ops[i, 3] + k], FR_ONE if bit == ONE else FR_ZERO)
        elif kind == _LESS_THAN:
            v = fr_mul(_row(w, ops[i, 1], rows), _PLAIN_ONE)
            high = (v[1] | v[2] | v[3]) != ZERO  # v >= 2^64 > every k
            for k in range(ops[i, 2]):
                store(w, out_wires[ops[i, 3] + k], FR_ONE if high or U64(k) < v[0] else FR_ZERO)
        elif kind == _INVERSE:
            store(w, out_wires[ops[i, 3]], fr_inv(_row(w, ops[i, 1], rows)))  # 0^(r-2) = 0: inverse_or_zero
        else:
            return i
    return ops.shape[0]


@njit(cache=True)
def _derive(w, derived, rows):  # type: ignore[no-untyped-def]
    """w[wire] = the value of row, for each (wire, row) of derived."""
    for i in range(derived.shape[0]):
        store(w, derived[i, 0], _row(w, derived[i, 1], rows))


@njit(cache=True)
def _check(w, constraints, rows):  # type: ignore[no-untyped-def]
    """The position of the first constraint (rows a, b, c) that w does not satisfy, or -1."""
    for i in range(constraints.shape[0]):
        a = _row(w, constraints[i, 0], rows)
        b = _row(w, constraints[i, 1], rows)
        c = _row(w, constraints[i, 2], rows)
        if not equal(fr_mul(a, b), c):
            return i
    return -1


@njit(cache=True)
def _times(rows, k):  # type: ignore[no-untyped-def]
    """Each row of an (n, 4) array Montgomery-multiplied by k: by R2 into Montgomery form, by plain one
    out of it. Sequential: the arrays here are small, or the caller is about to use every core."""
    out = np.empty_like(rows)
    for i in range(rows.shape[0]):
        store(out, i, fr_mul(load(rows, i), k))
    return out


# --- the program ---------------------------------------------------------------------------------------


def _standard_hint(step: _HintStep) -> int:
    """The op kind that computes `step` in compiled code, or _PYTHON."""
    compute, n_out = step.compute, len(step.outs)
    if len(step.inputs) != 1:
        return _PYTHON
    if compute is hints.inverse_or_zero:
        return _INVERSE if n_out == 1 else _PYTHON
    if isinstance(compute, partial) and not compute.keywords and compute.args == (n_out,):
        if compute.func is hints.bits and n_out <= 256:
            return _BITS
        if compute.func is hints.less_than:
            return _LESS_THAN
    return _PYTHON


class WitnessProgram:
    """The witness steps of a built R1CS as compiled ops; `run(inputs)` computes and checks a witness."""

    def __init__(self, r1cs: R1CS) -> None:
        self.r1cs = r1cs
        # Each row object once, numbered in order of first use (Builder.build gives an LC used twice,
        # as in x·x, one Row object).
        self._rows: list[Row] = []
        self._row_ids: dict[int, int] = {}  # id(row) -> its number
        mul_rows, python_reads = self._compile_steps()
        # Derived inputs (Builder.derive) left out of a witness's inputs: set after the steps.
        self._derived_rows = {wire: self._row_id(row) for wire, row in r1cs.derived_rows({})}
        read_ops, read_rows = self._reads(python_reads)
        self._choose_checks(mul_rows, read_ops, read_rows)
        del self._row_ids, self._rows  # ids of rows mean something only while the rows are held

        # With every wire set once (single_assignment), a row's value never changes once computed: a
        # row read more than once is computed once per witness, into its memo slot.
        n_rows = len(self._row_ptr) - 1
        uses = np.bincount(np.concatenate([read_rows, self._checked.ravel()]), minlength=n_rows)
        shared = (uses > 1) if self.single_assignment else np.zeros(n_rows, dtype=bool)
        self._row_slot = np.where(shared, np.cumsum(shared) - 1, -1).astype(np.int64)
        self.n_slots = int(shared.sum())

    def _compile_steps(self) -> tuple[dict[int, tuple[Row, Row]], np.ndarray]:
        """The ops and their output wires; returns the rows of each multiplication by its output wire,
        and (op, row) for each row a Python hint reads."""
        row_id = self._row_id
        ops: list[int] = []  # four per op
        out_wires: list[int] = []
        python_reads: list[int] = []
        self._python_steps: dict[int, _HintStep] = {}
        mul_rows: dict[int, tuple[Row, Row]] = {}
        for i, step in enumerate(self.r1cs.steps):
            first = len(out_wires)
            if type(step) is _MulStep:
                ops += (_MUL, row_id(step.a), row_id(step.b), first)
                out_wires.append(step.out)
                mul_rows[step.out] = (step.a, step.b)
                continue
            assert isinstance(step, _HintStep)
            inputs = [row_id(row) for row in step.inputs]
            kind = _standard_hint(step)
            if kind == _PYTHON:
                self._python_steps[i] = step
                ops += (_PYTHON, -1, -1, first)
                for row in inputs:
                    python_reads += (i, row)
            else:
                ops += (kind, inputs[0], len(step.outs), first)
            out_wires.extend(step.outs)
        self._ops = np.array(ops, dtype=np.int64).reshape(len(self.r1cs.steps), 4)
        self._out_wires = np.array(out_wires, dtype=np.int64)
        return mul_rows, np.array(python_reads, dtype=np.int64).reshape(-1, 2)

    def _choose_checks(
        self, mul_rows: dict[int, tuple[Row, Row]], read_ops: np.ndarray, read_rows: np.ndarray
    ) -> None:
        """The constraints to check after the steps, then the rows frozen into arrays.

        A multiplication's own constraint A·B = out holds by construction when every wire is set once,
        before whatever reads it: its step computed out as A·B with this same code, from wires that never
        change after. Otherwise every constraint is checked."""

        def by_step(constraint: Constraint) -> bool:
            a, b, c = constraint
            if len(c.wires) != 1 or c.coeffs != (1,) or c.wires[0] not in mul_rows:
                return False
            step_a, step_b = mul_rows[c.wires[0]]
            return (step_a is a or step_a == a) and (step_b is b or step_b == b)

        constraints, row_id = self.r1cs.constraints, self._row_id
        checked = [i for i, constraint in enumerate(constraints) if not by_step(constraint)]
        checked_rows = [row_id(row) for i in checked for row in constraints[i]]
        self._freeze_rows()
        self.single_assignment = self._single_assignment(read_ops, read_rows)
        if not self.single_assignment and len(checked) < len(constraints):
            checked = list(range(len(constraints)))
            checked_rows = [row_id(row) for constraint in constraints for row in constraint]
            self._freeze_rows()
        self.n_checked = len(checked)  # the constraints a witness is checked against
        self._checked_index = np.array(checked, dtype=np.int64)
        self._checked = np.array(checked_rows, dtype=np.int64).reshape(len(checked), 3)

    def _reads(self, python_reads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(op, row) for every row an op reads, as two arrays."""
        kinds, order = self._ops[:, 0], np.arange(len(self._ops), dtype=np.int64)
        muls, others = kinds == _MUL, (kinds != _MUL) & (kinds != _PYTHON)
        read_ops = np.concatenate([order[muls], order[muls], order[others], python_reads[:, 0]])
        read_rows = np.concatenate(
            [self._ops[muls, 1], self._ops[muls, 2], self._ops[others, 1], python_reads[:, 1]]
        )
        return read_ops, read_rows

    def _row_id(self, row: Row) -> int:
        number = self._row_ids.get(id(row))
        if number is None:
            number = self._row_ids[id(row)] = len(self._rows)
            self._rows.append(row)
        return number

    def _freeze_rows(self) -> None:
        """The rows as CSR arrays, their coefficients as indices into the distinct coefficients."""
        rows = self._rows
        lengths = np.fromiter((len(row.wires) for row in rows), dtype=np.int64, count=len(rows))
        self._row_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._row_ptr[1:])
        nnz = int(self._row_ptr[-1])
        self._row_wire = np.fromiter(chain.from_iterable(row.wires for row in rows), np.int32, count=nnz)
        coef_index = {1: 0, R - 1: 1}
        by_tuple: dict[tuple[int, ...], tuple[int, ...]] = {}

        def indices(coeffs: tuple[int, ...]) -> tuple[int, ...]:
            found = by_tuple.get(coeffs)
            if found is None:
                found = by_tuple[coeffs] = tuple(coef_index.setdefault(k, len(coef_index)) for k in coeffs)
            return found

        self._row_coef = np.fromiter(
            chain.from_iterable(indices(row.coeffs) for row in rows), np.int32, count=nnz
        )
        self._coefs = _times(field.limbs(list(coef_index)), FR_R2)
        self.nnz = nnz

    def _single_assignment(self, read_ops: np.ndarray, read_rows: np.ndarray) -> bool:
        """Whether each wire is set once (wire 0 and the inputs before any step, each other wire by one
        step) and each step reads only wires set before it."""
        r1cs = self.r1cs
        n_outs = np.diff(np.append(self._ops[:, 3], len(self._out_wires)))
        writer_of_out = np.repeat(np.arange(len(self._ops), dtype=np.int64), n_outs)
        outs = self._out_wires
        if len(outs) and (
            np.bincount(outs, minlength=r1cs.n_wires).max() > 1
            or outs.min() < 1 + r1cs.n_public + r1cs.n_private
        ):
            return False
        writer = np.full(r1cs.n_wires, -1, dtype=np.int64)  # the step that sets each wire; -1: before any
        writer[outs] = writer_of_out
        writer[list(self._derived_rows)] = len(self._ops)  # derived inputs: after every step
        lengths = np.diff(self._row_ptr)
        latest = np.full(len(lengths), -1, dtype=np.int64)  # per row: the last step setting one of its wires
        nonempty = lengths > 0
        if nonempty.any():
            latest[nonempty] = np.maximum.reduceat(writer[self._row_wire], self._row_ptr[:-1][nonempty])
        return bool((latest[read_rows] < read_ops).all())

    def witness(self, inputs: Mapping[str, int | Sequence[int]]) -> list[int]:
        """`run(inputs)` as ints: R1CS.witness(inputs, compiled=True)."""
        return field.ints(self.run(inputs))

    def run(self, inputs: Mapping[str, int | Sequence[int]]) -> np.ndarray:
        """The checked witness for these named inputs, as an (n_wires, 4) uint64 array of plain limbs."""
        wires, values = self.r1cs.input_wires(inputs)
        w = np.zeros((self.r1cs.n_wires, 4), dtype=np.uint64)
        w[0] = FR_ONE
        if wires:
            w[np.array(wires, dtype=np.int64)] = _times(field.limbs(values), FR_R2)
        memo = np.empty((self.n_slots, 4), dtype=np.uint64)
        known = np.zeros(self.n_slots, dtype=np.bool_)
        rows = self._row_ptr, self._row_wire, self._row_coef, self._coefs, self._row_slot, memo, known
        op = 0
        while (op := _run(w, op, self._ops, self._out_wires, rows)) < len(self._ops):
            self._python_hint(self._python_steps[op], w)
            op += 1
        derived = [(wire, self._derived_rows[wire]) for wire, _ in self.r1cs.derived_rows(inputs)]
        if derived:
            _derive(w, np.array(derived, dtype=np.int64), rows)
        failed = _check(w, self._checked, rows)
        plain: np.ndarray = _times(w, _PLAIN_ONE)
        if failed >= 0:
            self._raise_failed(int(self._checked_index[failed]), plain)
        return plain

    def _python_hint(self, step: _HintStep, w: np.ndarray) -> None:
        """A hint without a compiled kind, computed as the reference computes it."""
        needed = sorted({wire for row in step.inputs for wire in row.wires})
        value = dict(zip(needed, field.ints(_times(w[needed], _PLAIN_ONE)), strict=True))
        args = [
            sum(k * value[x] for x, k in zip(row.wires, row.coeffs, strict=True)) % R for row in step.inputs
        ]
        outs = hint_outputs(step, args)
        if outs:
            w[list(step.outs)] = _times(field.limbs(outs), FR_R2)

    def _raise_failed(self, index: int, plain: np.ndarray) -> None:
        witness = field.ints(plain)
        a, b, c = self.r1cs.constraints[index]
        raise ConstraintFailed(
            index, self.r1cs.label(index), a.evaluate(witness), b.evaluate(witness), c.evaluate(witness)
        )
