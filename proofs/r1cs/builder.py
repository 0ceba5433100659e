"""The R1CS builder: write a circuit in Python, freeze it into an R1CS, compute its witnesses.

A rank-1 constraint system over the BN254 scalar field R is a list of constraints A·B = C, each of
A, B, C a linear combination of the wires w_0..w_{m-1}, with w_0 = 1. A witness is an assignment of
the wires that satisfies every constraint.

Building:

    b = Builder("batch")                       # the root of every constraint's label
    chain_id = b.public("chainId")             # public inputs, in declaration order
    amounts = b.private_array("amount", 4)     # private inputs: scalars or arrays
    total = weighted_sum([1] * 4, amounts)     # linear: +, -, unary -, * int; no constraint
    with b.scope("square"):                    # labels: "batch/square/..."
        sq = b.mul(total, total)               # one constraint total·total = sq, one new wire
    inv = b.hint("inverse", lambda v: [pow(v[0], -1, R)], [sq])[0]   # computed, NOT constrained
    b.enforce(sq, inv, 1)                      # constrains it: sq·inv = 1
    b.bind(chain_id)                           # chainId·1 = chainId: a public input in no other constraint
    r1cs = b.build()
    w = r1cs.witness({"chainId": 901, "amount": [1, 2, 3, 4]})   # runs the steps, checks every constraint

Values (`LC`) are linear combinations of variables; an int is a constant and may stand wherever a value
is expected. `mul` of two values creates a constraint and a wire only when neither is a constant, so
linear constraints are never created by arithmetic (as with circom --O2): only `enforce` (and the
gadgets built on it, e.g. assert_equal) adds a constraint whose sides may be linear. A constraint whose
sides are all constants is checked at build time and dropped, or refused when false.

Hints (`hint`) are witness steps computed outside the constraints (bit decompositions, inverses): their
outputs are free wires until the circuit constrains them. The standard ones are in proofs.r1cs.hints.
`derive(name, value)` lets a witness compute a scalar input (a hash the circuit states, say) when the
inputs leave it out: after the steps, as `value`; the circuit must still constrain the input to it.

Wires, as snarkjs and circom number them: 0 is the constant one, then the public inputs in declaration
order, then the private inputs in declaration order, then the internal wires in creation order.
`build()` refuses a public input that appears in no constraint: its verifying-key point would be zero and
any value of it would verify; `bind(x)` is the explicit way to bind one that nothing else uses.

The R1CS that `build()` returns holds n_wires, n_public, n_private, n_constraints, `constraints` (each
Constraint(a, b, c) of sparse Rows: wires ascending, coefficients in [1, R)), `labels` (one per
constraint) and `wire_labels` (one per wire); `witness(inputs)`, `check(witness)` and
`public_values(witness)` work on it. proofs.formats.r1cs and proofs.formats.wtns write it for snarkjs.

Two witness paths give the same witness and the same errors: `witness(inputs)` is the reference, readable
Python over ints; `witness_limbs(inputs)` (or `witness(inputs, compiled=True)`, as ints) runs the same
steps as compiled code (proofs.r1cs.compiled), tens of times faster, and returns the limbs the prover takes.

Errors: `CircuitError` while building, `WitnessError` for bad inputs and failing hints, and
`ConstraintFailed` (a WitnessError) naming the constraint's index and label and the values of A, B, C.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from proofs.field import R

if TYPE_CHECKING:
    import numpy as np

    from proofs.r1cs.compiled import WitnessProgram

_ONE = 0  # the variable (and wire) that always holds 1

_PUBLIC, _PRIVATE, _INTERNAL = 1, 2, 3


class CircuitError(ValueError):
    """The circuit as written is invalid (a misuse of the builder, or a constraint that can never hold)."""


class WitnessError(ValueError):
    """A witness cannot be computed: a bad input, or a hint that failed."""


class ConstraintFailed(WitnessError):
    """A constraint A·B = C does not hold for the witness."""

    def __init__(self, index: int, label: str, a: int, b: int, c: int) -> None:
        self.index = index
        self.label = label
        self.a, self.b, self.c = a, b, c
        super().__init__(
            f"constraint {index} ({label or 'no label'}) fails: "
            f"A = {_show(a)}, B = {_show(b)}, C = {_show(c)}, but A·B = {_show(a * b % R)}"
        )


def _show(v: int) -> str:
    """A field element as a reader wants it: small ones in decimal, -k for R - k, others in hex."""
    if v < 1 << 64:
        return str(v)
    if R - v < 1 << 64:
        return f"-{R - v}"
    return hex(v)


class LC:
    """A linear combination of the builder's variables with coefficients in the field; a constant when
    it uses only the variable ONE. Supports +, -, unary - and multiplication by an int."""

    __slots__ = ("terms",)

    def __init__(self, terms: dict[int, int]) -> None:
        self.terms = terms  # variable -> coefficient in [1, R); variable 0 is the constant one

    @staticmethod
    def constant(k: int) -> LC:
        k %= R
        return LC({_ONE: k} if k else {})

    def constant_value(self) -> int | None:
        """The value of a constant LC, None when it depends on a variable."""
        if not self.terms:
            return 0
        if len(self.terms) == 1 and _ONE in self.terms:
            return self.terms[_ONE]
        return None

    def __add__(self, other: Value) -> LC:
        if isinstance(other, int):
            other = LC.constant(other)
        terms = dict(self.terms)
        for v, c in other.terms.items():
            s = (terms.get(v, 0) + c) % R
            if s:
                terms[v] = s
            else:
                terms.pop(v, None)
        return LC(terms)

    def __radd__(self, other: int) -> LC:
        return self + other

    def __neg__(self) -> LC:
        return LC({v: R - c for v, c in self.terms.items()})

    def __sub__(self, other: Value) -> LC:
        return self + (-other)

    def __rsub__(self, other: int) -> LC:
        return -self + other

    def __mul__(self, k: int) -> LC:
        if not isinstance(k, int):
            raise TypeError(
                "an LC multiplies an int; multiply two LCs with Builder.mul, which adds a constraint"
            )
        k %= R
        if not k:
            return LC({})
        return LC({v: c * k % R for v, c in self.terms.items()})

    def __rmul__(self, k: int) -> LC:
        return self * k

    def __repr__(self) -> str:
        return "LC(" + " + ".join(f"{_show(c)}·v{v}" if v else _show(c) for v, c in self.terms.items()) + ")"


Value = LC | int


def as_lc(x: Value) -> LC:
    return LC.constant(x) if isinstance(x, int) else x


def weighted_sum(coeffs: Sequence[int], values: Sequence[Value]) -> LC:
    """Σ coeffs[i]·values[i] in one pass (no constraint); faster than chaining + for long sums."""
    if len(coeffs) != len(values):
        raise CircuitError(f"weighted_sum: {len(coeffs)} coefficients for {len(values)} values")
    terms: dict[int, int] = {}
    for k, x in zip(coeffs, values, strict=True):
        if isinstance(x, int):
            terms[_ONE] = terms.get(_ONE, 0) + k * x
        else:
            for v, c in x.terms.items():
                terms[v] = terms.get(v, 0) + k * c
    reduced = {}
    for v, c in terms.items():
        k = c % R
        if k:
            reduced[v] = k
    return LC(reduced)


class Row(NamedTuple):
    """One row of A, B or C: a sparse linear combination of wires, wires ascending, coefficients in [1, R)."""

    wires: tuple[int, ...]
    coeffs: tuple[int, ...]

    def evaluate(self, witness: Sequence[int]) -> int:
        total: int = sum(map(operator.mul, self.coeffs, map(witness.__getitem__, self.wires)))
        return total % R


class Constraint(NamedTuple):
    """A·B = C."""

    a: Row
    b: Row
    c: Row


class _MulStep(NamedTuple):
    out: int
    a: Row
    b: Row


class _HintStep(NamedTuple):
    outs: tuple[int, ...]
    inputs: tuple[Row, ...]
    compute: Callable[[list[int]], Sequence[int]]
    label: str


def hint_outputs(step: _HintStep, args: list[int]) -> list[int]:
    """The values a hint step gives its output wires for the values of its inputs, reduced mod R;
    WitnessError when the hint raises or returns the wrong number of values or a non-int."""
    try:
        outs = list(step.compute(args))
    except Exception as e:
        raise WitnessError(f"hint {step.label} failed on {[_show(a) for a in args]}: {e!r}") from e
    if len(outs) != len(step.outs):
        raise WitnessError(f"hint {step.label} returned {len(outs)} values, not {len(step.outs)}")
    for value in outs:
        if not isinstance(value, int):
            raise WitnessError(f"hint {step.label} returned {value!r}, not an int")
    return [value % R for value in outs]


class _Input(NamedTuple):
    wires: tuple[int, ...]
    is_array: bool


class _PendingMul(NamedTuple):
    out: int  # variable
    constraint: int  # index of its constraint x·y = out


class _PendingHint(NamedTuple):
    outs: list[int]  # variables
    inputs: list[LC]
    compute: Callable[[list[int]], Sequence[int]]
    label: str


class R1CS:
    """A frozen constraint system: its counts, constraints and labels, and (when made by a Builder) the
    steps that compute its witness from named inputs. One read from a .r1cs file has no such steps."""

    def __init__(
        self,
        n_wires: int,
        n_public: int,
        n_private: int,
        constraints: Sequence[Constraint],
        *,
        labels: Sequence[str] = (),
        wire_labels: Sequence[str] = (),
        inputs: Mapping[str, _Input] | None = None,
        steps: Sequence[_MulStep | _HintStep] = (),
        derived: Mapping[str, Row] | None = None,
    ) -> None:
        if 1 + n_public + n_private > n_wires:
            raise CircuitError(
                f"{n_public} public and {n_private} private inputs do not fit in {n_wires} wires"
            )
        if labels and len(labels) != len(constraints):
            raise CircuitError(f"{len(labels)} labels for {len(constraints)} constraints")
        self.n_wires = n_wires
        self.n_public = n_public  # public inputs: wires 1..n_public
        self.n_private = n_private  # private inputs: the next n_private wires
        self.constraints = tuple(constraints)
        self.labels = tuple(labels)  # one per constraint, or none
        self.wire_labels = tuple(wire_labels)  # one per wire, or none
        self._inputs = dict(inputs) if inputs is not None else None
        self._steps = tuple(steps)
        self._derived = dict(derived or {})  # input name -> the row that computes it (Builder.derive)
        self._program: WitnessProgram | None = None  # the compiled witness program, made on first use

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_program"] = None  # large, and quick to make again where it is needed
        return state

    @property
    def n_constraints(self) -> int:
        return len(self.constraints)

    @property
    def input_names(self) -> list[str]:
        """The names `witness` takes: public inputs first, each group in declaration order."""
        return list(self._inputs or ())

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels else ""

    def witness(self, inputs: Mapping[str, int | Sequence[int]], *, compiled: bool = False) -> list[int]:
        """The full assignment of the wires for these named inputs (ints in [0, R); arrays as sequences),
        checked against every constraint. This is the reference: readable Python over ints. With
        `compiled`, the same witness comes from `witness_limbs` (the compiled program), as ints."""
        if compiled:
            return self._compiled().witness(inputs)
        if self._inputs is None:
            raise CircuitError("this R1CS has no witness steps (it was read from a file, not built)")
        w = [0] * self.n_wires
        w[_ONE] = 1
        for wire, value in zip(*self.input_wires(inputs), strict=True):
            w[wire] = value
        for step in self._steps:
            if type(step) is _MulStep:
                out, a, b = step
                w[out] = a.evaluate(w) * b.evaluate(w) % R
            else:
                assert isinstance(step, _HintStep)
                args = [row.evaluate(w) for row in step.inputs]
                for wire, value in zip(step.outs, hint_outputs(step, args), strict=True):
                    w[wire] = value
        for wire, row in self.derived_rows(inputs):
            w[wire] = row.evaluate(w)
        self.check(w)
        return w

    def witness_limbs(self, inputs: Mapping[str, int | Sequence[int]]) -> np.ndarray:
        """The witness of `witness(inputs)` computed by compiled code (proofs.r1cs.compiled), as an
        (n_wires, 4) uint64 array of plain (not Montgomery) limbs, least significant first: what the
        prover takes. Bad inputs, failing hints and failing constraints raise the same errors as
        `witness`. The first call compiles the program (kept on this R1CS, not pickled with it)."""
        return self._compiled().run(inputs)

    def _compiled(self) -> WitnessProgram:
        if self._inputs is None:
            raise CircuitError("this R1CS has no witness steps (it was read from a file, not built)")
        if self._program is None:
            # Here, not at the top: numba loads only where a compiled witness is asked for, and
            # proofs.r1cs.compiled imports this module.
            from proofs.r1cs.compiled import WitnessProgram  # noqa: PLC0415

            self._program = WitnessProgram(self)
        return self._program

    @property
    def derived_inputs(self) -> list[str]:
        """The inputs a witness computes when they are left out (Builder.derive)."""
        return list(self._derived)

    def derived_rows(self, inputs: Mapping[str, object]) -> list[tuple[int, Row]]:
        """(wire, row) for each derived input left out of `inputs`: after the steps, the wire is set to
        the row's value."""
        assert self._inputs is not None
        return [
            (self._inputs[name].wires[0], row) for name, row in self._derived.items() if name not in inputs
        ]

    @property
    def steps(self) -> tuple[_MulStep | _HintStep, ...]:
        """The witness steps, in order (empty for an R1CS read from a file)."""
        return self._steps

    def input_wires(self, inputs: Mapping[str, int | Sequence[int]]) -> tuple[list[int], list[int]]:
        """(wires, values) that the named inputs assign, each value checked: an int in [0, R), arrays of
        their declared length, no name unknown, none missing but derived ones (WitnessError otherwise)."""
        assert self._inputs is not None
        unknown = [name for name in inputs if name not in self._inputs]
        if unknown:
            raise WitnessError(f"unknown input {unknown[0]!r}; the inputs are {', '.join(self._inputs)}")
        wires: list[int] = []
        checked: list[int] = []
        for name, spec in self._inputs.items():
            if name not in inputs:
                if name in self._derived:
                    continue
                raise WitnessError(f"missing input {name!r}")
            given = inputs[name]
            if spec.is_array:
                if isinstance(given, int | str | bytes):
                    raise WitnessError(
                        f"input {name!r} is an array of {len(spec.wires)} values, not {given!r}"
                    )
                if len(given) != len(spec.wires):
                    raise WitnessError(f"input {name!r} must have {len(spec.wires)} values, got {len(given)}")
                values: Sequence[object] = given
                names = [f"{name}[{i}]" for i in range(len(given))]
            else:
                values, names = [given], [name]
            for value, shown in zip(values, names, strict=True):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise WitnessError(f"input {shown!r} must be an int, not {type(value).__name__}")
                if not 0 <= value < R:
                    raise WitnessError(f"input {shown!r} = {value} is not in [0, R)")
                checked.append(value)
            wires.extend(spec.wires)
        return wires, checked

    def check(self, witness: Sequence[int]) -> None:
        """Raise ConstraintFailed at the first constraint the witness does not satisfy."""
        if len(witness) != self.n_wires:
            raise WitnessError(f"the witness has {len(witness)} values; the R1CS has {self.n_wires} wires")
        if witness[_ONE] != 1:
            raise WitnessError(f"wire 0 must hold 1, not {witness[_ONE]}")
        bad = next((i for i, v in enumerate(witness) if not 0 <= v < R), None)
        if bad is not None:
            raise WitnessError(f"wire {bad} holds {witness[bad]}, which is not in [0, R)")
        for i, (a, b, c) in enumerate(self.constraints):
            va, vb, vc = a.evaluate(witness), b.evaluate(witness), c.evaluate(witness)
            if (va * vb - vc) % R:
                raise ConstraintFailed(i, self.label(i), va, vb, vc)

    def public_values(self, witness: Sequence[int]) -> list[int]:
        """The public inputs, in order, as a verifier takes them."""
        return list(witness[1 : 1 + self.n_public])


class Builder:
    """Collects inputs, constraints and witness steps; `build()` freezes them into an R1CS."""

    def __init__(self, name: str = "circuit") -> None:
        self._path = [name]
        self._prefix = name
        self._kinds = [0]  # per variable: 0 for ONE, then _PUBLIC, _PRIVATE or _INTERNAL
        self._var_labels = ["one"]
        self._inputs: dict[str, tuple[int, list[int], bool]] = {}  # name -> (kind, variables, is_array)
        self._constraints: list[tuple[LC, LC, LC]] = []
        self._labels: list[str] = []
        self._steps: list[_PendingMul | _PendingHint] = []
        self._derived: dict[str, LC] = {}
        self._built = False

    # Inputs

    def public(self, name: str) -> LC:
        return self._declare(name, _PUBLIC, None)[0]

    def public_array(self, name: str, n: int) -> list[LC]:
        return self._declare(name, _PUBLIC, n)

    def private(self, name: str) -> LC:
        return self._declare(name, _PRIVATE, None)[0]

    def private_array(self, name: str, n: int) -> list[LC]:
        return self._declare(name, _PRIVATE, n)

    def _declare(self, name: str, kind: int, n: int | None) -> list[LC]:
        self._check_open()
        if not name or name in self._inputs:
            raise CircuitError(f"input name {name!r} is empty or already declared")
        if n is not None and n < 0:
            raise CircuitError(f"input array {name!r} cannot have {n} elements")
        labels = [name] if n is None else [f"{name}[{i}]" for i in range(n)]
        variables = [self._new_var(kind, label) for label in labels]
        self._inputs[name] = (kind, variables, n is not None)
        return [LC({v: 1}) for v in variables]

    def _new_var(self, kind: int, label: str) -> int:
        self._kinds.append(kind)
        self._var_labels.append(label)
        return len(self._kinds) - 1

    # Labels

    @contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Label the constraints and wires made inside with `name`, under the enclosing scopes."""
        self._path.append(name)
        self._prefix = "/".join(self._path)
        try:
            yield
        finally:
            self._path.pop()
            self._prefix = "/".join(self._path)

    def _label(self, label: str | None) -> str:
        return f"{self._prefix}/{label}" if label else self._prefix

    # Constraints and witness steps

    def mul(self, x: Value, y: Value, label: str | None = None) -> LC:
        """x·y. A constant side folds; otherwise a new wire z, the constraint x·y = z and its witness step."""
        self._check_open()
        x, y = as_lc(x), as_lc(y)
        kx, ky = x.constant_value(), y.constant_value()
        if kx is not None:
            return y * kx
        if ky is not None:
            return x * ky
        z = self._new_var(_INTERNAL, self._label(label or "mul"))
        out = LC({z: 1})
        self._steps.append(_PendingMul(z, len(self._constraints)))
        self._constraints.append((x, y, out))
        self._labels.append(self._label(label))
        return out

    def enforce(self, a: Value, b: Value, c: Value, label: str | None = None) -> None:
        """Add the constraint a·b = c (computing nothing). All-constant sides are checked now and dropped."""
        self._check_open()
        a, b, c = as_lc(a), as_lc(b), as_lc(c)
        ka, kb, kc = a.constant_value(), b.constant_value(), c.constant_value()
        if ka is not None and kb is not None and kc is not None:
            if ka * kb % R != kc:
                raise CircuitError(
                    f"{self._label(label)}: the constant constraint {ka}·{kb} = {kc} can never hold"
                )
            return
        self._constraints.append((a, b, c))
        self._labels.append(self._label(label))

    def bind(self, x: LC) -> None:
        """Make x appear in a constraint (x·1 = x) so that a public input no other constraint uses is bound
        to the proof. Use it for public inputs that the statement only carries (chain id, batch number)."""
        if x.constant_value() is not None:
            raise CircuitError(f"{self._prefix}: bind takes a variable, not the constant {x!r}")
        name = self._var_labels[next(iter(x.terms))] if len(x.terms) == 1 else "value"
        self.enforce(x, 1, x, label=f"bind({name})")

    def derive(self, name: str, value: LC) -> None:
        """Let a witness compute the scalar input `name` as `value` when its inputs leave it out: after
        the steps, as their result (a hash the circuit computes and states as a public input, say). The
        circuit must still constrain the input to it (e.g. assert_equal): this only computes. No step may
        read the input, and `value` may not use a derived input (build() refuses either)."""
        self._check_open()
        if name not in self._inputs or self._inputs[name][2]:
            raise CircuitError(f"derive: {name!r} is not a scalar input")
        if name in self._derived:
            raise CircuitError(f"derive: {name!r} is already derived")
        self._derived[name] = as_lc(value)

    def hint(
        self,
        name: str,
        compute: Callable[[list[int]], Sequence[int]],
        inputs: Sequence[Value],
        n_out: int = 1,
    ) -> list[LC]:
        """n_out new wires that the witness computes as compute([values of inputs]) (reduced mod R).
        They are NOT constrained: the circuit must constrain them itself. A module-level function (or a
        functools.partial of one) keeps the R1CS picklable; a lambda does not."""
        self._check_open()
        label = self._label(name)
        outs = [self._new_var(_INTERNAL, f"{label}[{i}]" if n_out > 1 else label) for i in range(n_out)]
        self._steps.append(_PendingHint(outs, [as_lc(x) for x in inputs], compute, label))
        return [LC({v: 1}) for v in outs]

    def _check_open(self) -> None:
        if self._built:
            raise CircuitError("this builder has already been built; start a new Builder")

    # Freezing

    def build(self) -> R1CS:
        """Number the wires, refuse unbound public inputs, and freeze everything into an R1CS."""
        self._check_open()
        kinds = self._kinds
        order = [_ONE] + [
            v for kind in (_PUBLIC, _PRIVATE, _INTERNAL) for v in range(1, len(kinds)) if kinds[v] == kind
        ]
        wire_of = [0] * len(kinds)
        for wire, v in enumerate(order):
            wire_of[v] = wire
        n_public = sum(1 for k in kinds if k == _PUBLIC)
        n_private = sum(1 for k in kinds if k == _PRIVATE)

        used: set[int] = set()
        for a, b, c in self._constraints:
            used.update(a.terms, b.terms, c.terms)
        unbound = [self._var_labels[v] for v in range(1, len(kinds)) if kinds[v] == _PUBLIC and v not in used]
        if unbound:
            raise CircuitError(
                f"public inputs {', '.join(unbound)} appear in no constraint, so a proof would not bind them "
                "(any value would verify): use them, or bind them with Builder.bind"
            )

        rows: dict[int, Row] = {}  # id(LC) -> its row: an LC used twice (x·x) gives one Row object

        def row(x: LC) -> Row:
            made = rows.get(id(x))
            if made is None:
                pairs = sorted(zip(map(wire_of.__getitem__, x.terms), x.terms.values(), strict=True))
                made = rows[id(x)] = Row(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))
            return made

        self._check_derived()
        constraints = [Constraint(row(a), row(b), row(c)) for a, b, c in self._constraints]
        steps: list[_MulStep | _HintStep] = []
        for step in self._steps:
            if isinstance(step, _PendingMul):
                constraint = constraints[step.constraint]
                steps.append(_MulStep(wire_of[step.out], constraint.a, constraint.b))
            else:
                outs = tuple(wire_of[v] for v in step.outs)
                steps.append(_HintStep(outs, tuple(map(row, step.inputs)), step.compute, step.label))
        inputs = {
            name: _Input(tuple(wire_of[v] for v in variables), is_array)
            for group in (_PUBLIC, _PRIVATE)
            for name, (kind, variables, is_array) in self._inputs.items()
            if kind == group
        }
        self._built = True
        return R1CS(
            n_wires=len(kinds),
            n_public=n_public,
            n_private=n_private,
            constraints=constraints,
            labels=self._labels,
            wire_labels=[self._var_labels[v] for v in order],
            inputs=inputs,
            steps=steps,
            derived={name: row(value) for name, value in self._derived.items()},
        )

    def _check_derived(self) -> None:
        """Refuse a derived input that a step reads, or a derived value that uses a derived input."""
        derived = {self._inputs[name][1][0]: name for name in self._derived}
        if not derived:
            return
        for name, value in self._derived.items():
            used = [derived[v] for v in value.terms if v in derived]
            if used:
                raise CircuitError(f"derive: the value of {name!r} uses the derived input {used[0]!r}")
        for step in self._steps:
            if isinstance(step, _PendingMul):
                x, y, _ = self._constraints[step.constraint]
                reads = [x, y]
            else:
                reads = step.inputs
            for lc in reads:
                used = [name for v, name in derived.items() if v in lc.terms]
                if used:
                    raise CircuitError(
                        f"derive: a witness step reads the derived input {used[0]!r}, which is only "
                        "computed after the steps"
                    )
