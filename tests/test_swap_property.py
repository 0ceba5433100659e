"""A property of SwapDesk on real anvil nodes (the world of tests/test_swap_desk.py, built once for the
module): whatever swaps start, whatever B's owner quotes, funds and withdraws, however B's clock jumps,
whichever phase-1 executions fail or are bounced, in whatever order messages are settled and delivered,
every swap ends exactly once on both sides (completed on both, or refunded on both for the same reason; a
bounced one is refunded on A and unknown to B), and no value is created or lost on A, B or L1.

Each example starts from the module's world again (anvil snapshots of the three nodes and a copy of the
Hub's tree, as test_swap_desk's `world` fixture does) and runs a plan: two fixed ones (EDGES, REFUSALS:
every outcome, at its edges), then EXAMPLES drawn ones, each drawn whole before anything is sent (so that
hypothesis never abandons an example half-way through): 1 to 3 swaps, each with a life, and 1 to 4 other
steps, all interleaved at random (each life in its order):

- a swap's life: Initiate (on A, under TERMS, test_swap_desk's; WIDE, another band, fee, amount range and
  window on the same pair, registered on both desks; or A_ONLY, registered on A's desk only, which B never
  heard of; an amount in or out of the terms' range; a minAmountY around the quote at B's price then, or
  0), then possibly a pressure of its own (B's clock to about its deadline, a new quote, or B's inventory
  down to about what it pays), then possibly Phase2 failing (B's Outbox refuses A for that one
  transaction: MessageFailed, retryable), then Phase2 (executed on B, or retried) or Bounce (B's operator
  bounces it), or nothing, then possibly Phase3 (the result or the bounce executed on A; a bounce is then
  reclaimed, by anyone);
- the other steps: SetPrice (inside or outside either band, or 0), Fund, Withdraw (never more than desk B
  holds; often down to about what an open swap pays), Clock (B's, to about an open swap's deadline or up
  to two windows ahead) and Settle (a chain's unsettled messages, in batches of CAPACITY).

A message is settled when it is delivered if it was not before (everything its chain sent, in one batch),
so that delivery is in any order, not first in first out. Then everything in flight is delivered, in a
drawn order, and the end is checked. The model (`Run`) predicts every step exactly: each phase 2's outcome
(Completed at `swaps.quote`, or Refunded for the first of UnknownTerms, Expired, PriceOutsideBand,
Slippage, InventoryShort that applies, by the block's time, B's quote and `held` then), the result message,
both desks' records, and the 16 entries of `World.ledger` after every step that moves value or must not
(B's owner's moves are checked with the rest: what they change stays to the end)."""

from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st
from web3.types import RPCEndpoint

from bridge_contracts.anvil import AnvilNode
from bridge_contracts.chain import Chain
from bridge_contracts.messages import Message, bounce_of, sent_messages
from bridge_contracts.swaps import Swap, SwapReason, Terms, quote
from tests.settlement import CAPACITY, E18, events
from tests.test_inbox import calldata
from tests.test_swap_desk import (
    AMOUNT_X,
    COMPLETED,
    INITIATED,
    MALLORY,
    MAX_X,
    MIN_X,
    NONE,
    OPERATOR_B,
    PRICE,
    PRICE_MAX,
    PRICE_MIN,
    REFUNDED,
    USER,
    WINDOW,
    A,
    B,
    Ledger,
    World,
    backed,
    built,
    call_error,
    failure,
    hex32,
    node_l1,
    now,
    result_data,
    reverts,
    set_time,
    snapshots,
    timestamp,
)

__all__ = ["built", "node_l1"]  # test_swap_desk's module fixtures: this module builds its own world

EXAMPLES = 6  # drawn plans, besides EDGES and REFUSALS
SWAPS = (1, 3)  # swaps a plan starts
MOVES = (1, 4)  # and the other steps it has

E6 = 10**6
WIDE_MIN, WIDE_MAX = 1_800 * E6, 3_000 * E6  # WIDE's band: it overlaps TERMS' (1_500 to 2_500)
WIDE_MIN_X, WIDE_MAX_X = E18 // 1_000, 5 * E18
AMOUNTS = {"terms": (MIN_X, MAX_X), "wide": (WIDE_MIN_X, WIDE_MAX_X), "a_only": (MIN_X, MAX_X)}
# Each band's edges and just outside them, no quote, the module's quote.
EDGE_PRICES = (
    PRICE_MIN, PRICE_MAX, PRICE_MIN - 1, PRICE_MAX + 1,
    WIDE_MIN, WIDE_MIN - 1, WIDE_MAX, WIDE_MAX + 1,
    0, PRICE,
)  # fmt: skip
SHARE = 1_000  # `share` fields are thousandths


# --- the plan ------------------------------------------------------------------------------------
# Each swap of a plan has a life: it is initiated; something may happen to it on B (a pressure: B's clock
# to about its deadline, a new quote, B's inventory down to about what it pays); its phase-1 message may
# fail on B; then it is executed on B or bounced by B's operator, or left for the end; what B sends back
# may come home before the end. The lives of the plan's swaps are interleaved at random, with each other
# and with B's owner's moves, B's clock and settlements. `swap` fields name a swap of the plan by its index;
# those of B's owner's moves and the clock name the one they are about (the first open one instead, if
# that one is not open).


@dataclass(frozen=True)
class Initiate:
    swap: int
    terms: str  # "terms", "wide" or "a_only"
    amount_x: int
    min_y: str  # "quote" (at B's price now), "above" (+ 1), "below" (- 1), "zero", "any" (share of 2 quotes)
    share: int = 0


@dataclass(frozen=True)
class Phase2:
    swap: int
    fail: bool = False  # B's Outbox refuses A during the execution: MessageFailed, retryable


@dataclass(frozen=True)
class Bounce:
    swap: int


@dataclass(frozen=True)
class Phase3:
    swap: int


@dataclass(frozen=True)
class SetPrice:
    price: int


@dataclass(frozen=True)
class Fund:
    amount: int | None  # None: what swap `swap` pays at B's price now
    swap: int = 0


@dataclass(frozen=True)
class Withdraw:
    keep: str  # "share" (of what the desk holds); or "pays", "pays-1", "pays+1": what swap `swap` pays
    swap: int = 0
    share: int = 0


@dataclass(frozen=True)
class Clock:
    offset: int | None  # to swap `swap`'s deadline plus `offset`; None: `jump` seconds ahead
    swap: int = 0
    jump: int = 1


@dataclass(frozen=True)
class Settle:
    chain: int  # A or B (the other if this one has nothing unsettled)


Step = Initiate | Phase2 | Bounce | Phase3 | SetPrice | Fund | Withdraw | Clock | Settle
SHARES = st.integers(0, SHARE)
FATES = ("executed", "executed", "failed, retried", "bounced", "failed, bounced", "left")


def initiates(swap: int, terms: str) -> st.SearchStrategy[Initiate]:
    lo, hi = AMOUNTS[terms]
    in_range = st.integers(lo, hi)
    return st.builds(
        Initiate,
        swap=st.just(swap),
        terms=st.just(terms),
        amount_x=st.one_of(in_range, in_range, in_range, st.sampled_from([lo, hi, lo - 1, hi + 1])),
        min_y=st.sampled_from(["any", "any", "quote", "quote", "above", "below", "zero"]),
        share=SHARES,
    )


PRICES = st.one_of(
    st.integers(PRICE_MIN, PRICE_MAX), st.integers(WIDE_MIN, WIDE_MAX), st.sampled_from(EDGE_PRICES)
)


def pressures(swap: int) -> st.SearchStrategy[Step | None]:
    """What may happen to a swap between its initiate and its phase 2 (None: nothing of its own): B's clock
    to about its deadline, a new quote, or B's inventory down to about what it pays."""
    return st.one_of(
        st.none(),
        st.builds(Clock, st.sampled_from([-2, -1, 0, 1]), st.just(swap)),
        st.builds(SetPrice, PRICES),
        st.builds(Withdraw, st.sampled_from(["pays", "pays-1", "pays+1"]), st.just(swap)),
    )


def moves(swaps: int) -> st.SearchStrategy[Step]:
    """B's owner's moves, B's clock, a settlement."""
    swap = st.integers(0, swaps - 1)
    return st.one_of(
        st.builds(SetPrice, PRICES),
        st.builds(Withdraw, st.sampled_from(["share", "pays", "pays-1", "pays+1"]), swap, SHARES),
        st.builds(
            Clock,
            st.one_of(st.none(), st.sampled_from([-2, -1, 0, 1])),
            swap,
            st.one_of(st.integers(1, WINDOW // 4), st.integers(1, 2 * WINDOW)),
        ),
        st.builds(Fund, st.one_of(st.none(), st.integers(1, 10**11)), swap),
        st.builds(Settle, st.sampled_from([A, B])),
    )


@st.composite
def plans(draw: st.DrawFn) -> list[Step]:
    """SWAPS swaps' lives and MOVES moves, interleaved (each life in its order)."""
    count = draw(st.integers(*SWAPS), label="swaps")
    lives: list[list[Step]] = []
    for swap in range(count):
        terms = draw(st.sampled_from(["terms", "terms", "wide", "a_only"]), label="terms")
        life: list[Step] = [draw(initiates(swap, terms))]
        pressure = draw(pressures(swap), label="pressure")
        if pressure is not None:
            life.append(pressure)
        fate = draw(st.sampled_from(FATES), label="fate")
        if fate.startswith("failed"):
            life.append(Phase2(swap, fail=True))
        if fate != "left":
            life.append(Bounce(swap) if fate.endswith("bounced") else Phase2(swap))
            if draw(st.booleans(), label="home before the end"):
                life.append(Phase3(swap))
        lives.append(life)
    others = draw(st.lists(moves(count), min_size=MOVES[0], max_size=MOVES[1]), label="moves")
    owners = [swap for swap, life in enumerate(lives) for _ in life] + [-1] * len(others)
    plan: list[Step] = []
    for owner in draw(st.permutations(owners), label="interleaving"):
        plan.append(lives[owner].pop(0) if owner >= 0 else others.pop(0))
    return plan


# Two plans run every time, before the drawn ones, so that every outcome is seen at its edges:
# - a swap paid with exactly what desk B holds, and one executed at its deadline (B's clock set one second
#   before it; the execution is the next block), which finds nothing left (InventoryShort);
EDGES = [
    Initiate(0, "terms", AMOUNT_X, "quote"),
    Initiate(1, "wide", E18, "quote"),
    Withdraw("pays", 0),
    Phase2(0),
    Clock(-1, 1),
    Phase2(1),
    Phase3(1),
]
# - each refusal in turn (Slippage; UnknownTerms on a retry after a failed execution; a bounce after a
#   failed execution, reclaimed; PriceOutsideBand at a quote inside WIDE's band but above TERMS'; Expired).
REFUSALS = [
    Initiate(0, "terms", AMOUNT_X, "above"),
    Initiate(1, "a_only", AMOUNT_X, "quote"),
    Initiate(2, "wide", E18, "quote"),
    Initiate(3, "terms", AMOUNT_X, "quote"),
    Phase2(1, fail=True),
    Phase2(0),
    Phase2(1),
    Phase2(2, fail=True),
    Bounce(2),
    SetPrice(PRICE_MAX + 1),
    Phase2(3),
    Phase3(2),
    Initiate(4, "wide", E18, "quote"),
    Clock(0, 4),
    Phase2(4),
]


# --- the world -----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)  # a falsifying example shows its plan, not the whole world
class Desks:
    """The module's world, with two more terms on the same pair: WIDE on both desks, A_ONLY on A's."""

    w: World
    terms: dict[str, Terms]
    x_data: bytes  # X's and Y's assetData, as every message that carries them has them
    y_data: bytes
    nodes: tuple[AnvilNode, ...]  # L1, A and B

    def __repr__(self) -> str:
        return "Desks(...)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis prints it
        printer.text(repr(self))

    @property
    def on_both(self) -> tuple[Terms, Terms]:
        return self.terms["terms"], self.terms["wide"]


@pytest.fixture(scope="module")
def desks(built: World, node_l1: AnvilNode, node_a: AnvilNode, node_b: AnvilNode) -> Desks:
    """Registered once, inside `built`'s module snapshot (rolled back with it)."""
    w = built
    wide = dataclasses.replace(
        w.terms,
        price_min=WIDE_MIN,
        price_max=WIDE_MAX,
        fee_bps=0,
        min_amount_x=WIDE_MIN_X,
        max_amount_x=WIDE_MAX_X,
        window=2 * WINDOW,
    )
    a_only = dataclasses.replace(w.terms, window=WINDOW // 2)
    for l2, desk, terms in ((w.a, w.desk_a, wide), (w.b, w.desk_b, wide), (w.a, w.desk_a, a_only)):
        w.owner(l2).send(desk.functions.registerTerms(terms.as_tuple()))
    named = {"terms": w.terms, "wide": wide, "a_only": a_only}
    return Desks(w, named, w.x_data, w.y_data, (node_l1, node_a, node_b))


@contextmanager
def rolled_back(w: World, *nodes: AnvilNode) -> Iterator[None]:
    """What is done inside is undone: the nodes (snapshots) and the Hub's mirror (as test_swap_desk's
    `world` fixture does)."""
    tree, places = copy.deepcopy(w.hub.tree), dict(w.hub.places)
    try:
        with snapshots(*nodes):
            yield
    finally:
        w.hub.tree, w.hub.places = tree, places


def pin_next_block(chain: Chain, when: int) -> None:
    chain.w3.provider.make_request(RPCEndpoint("anvil_setNextBlockTimestamp"), [when])


# --- the model -----------------------------------------------------------------------------------


@dataclass
class Case:
    """One swap the user started, as the model expects it."""

    n: int  # its index in the plan
    sid: bytes
    terms: Terms
    amount_x: int
    min_y: int
    deadline: int
    phase1: Message
    failed: bool = False  # phase 1's last execution on B failed (retryable)
    b: Swap | None = None  # B's record, once phase 2 ran
    result: Message | None = None
    bounce: Message | None = None
    a: Swap | None = None  # A's final record (after phase 3, or the reclaim)

    @property
    def phase1_open(self) -> bool:
        """Phase 1 is neither executed on B nor bounced."""
        return self.b is None and self.bounce is None

    @property
    def home(self) -> Message | None:
        """What B sent back to A for this swap, if anything."""
        return self.result or self.bounce


@dataclass
class Run:
    d: Desks
    expect: Ledger  # the ledger as the model has it
    price: int = PRICE
    cases: list[Case] = field(default_factory=list)  # the swaps started, in order
    planned: dict[int, Case] = field(default_factory=dict)  # by their index in the plan
    unsettled: dict[int, list[Message]] = field(default_factory=lambda: {A: [], B: []})
    settled: set[bytes] = field(default_factory=set)
    a_nonce: int = 0  # the next message nonce of A's Outbox
    b_nonce: int = 0
    funded: int = 0
    withdrawn: int = 0

    @property
    def w(self) -> World:
        return self.d.w

    def move(self, **changes: int) -> None:
        for name, delta in changes.items():
            self.expect[name] += delta

    def check_ledger(self) -> None:
        assert self.w.ledger() == self.expect

    # --- what is open ---

    def open_phase1(self, *, failed: bool) -> list[Case]:
        """Swaps whose phase 1 is open on B (whose last execution failed, or not)."""
        return [c for c in self.cases if c.phase1_open and c.failed == failed]

    def in_flight(self) -> list[Case]:
        """Swaps not over on A: phase 1 open, or what B sent back not yet executed (a bounce is reclaimed
        as soon as it is home)."""
        return [c for c in self.cases if c.a is None]

    def open_home(self) -> list[Case]:
        """Swaps whose result or bounce is on its way to A."""
        return [c for c in self.in_flight() if c.home is not None]

    def about(self, swap: int) -> Case | None:
        """The plan's swap `swap` if its phase 1 is open, else the first one open (None: none is)."""
        c = self.planned.get(swap)
        if c is not None and c.phase1_open:
            return c
        return next((c for c in self.cases if c.phase1_open), None)

    def pays(self, swap: int) -> int | None:
        """What that swap would pay at B's price now."""
        c = self.about(swap)
        return None if c is None else quote(c.amount_x, self.price, c.terms.fee_bps)

    # --- settlement ---

    def settle(self, source: int) -> None:
        """Everything `source`'s Outbox sent and L1 has not yet settled: in batches of CAPACITY."""
        pending, l2 = self.unsettled[source], self.w.a if source == A else self.w.b
        if not pending:
            return
        chunks = [pending[i : i + CAPACITY] for i in range(0, len(pending), CAPACITY)]
        note(f"settle {len(pending)} message(s) of {source} in {len(chunks)} batch(es)")
        for chunk in chunks[:-1]:
            self.w.hub.commit(source, chunk, l2.operator)
        self.w.settle(l2, chunks[-1])
        for m in pending:
            if source == A:
                self.move(l1_b_x=m.amount)  # X on its way to B: B's on L1
            elif m.asset_id == self.w.x:
                self.move(l1_b_x=-m.amount)  # X on its way home (a refund or a bounce)
            else:
                self.move(l1_a_y=m.amount)  # Y on its way to A
            self.settled.add(m.id())
        pending.clear()

    def settled_through(self, m: Message) -> None:
        if m.id() not in self.settled:
            self.settle(m.source_chain_id)

    # --- the steps ---

    def step(self, step: Step) -> None:
        """Runs `step`. One of a swap whose initiate was refused does nothing."""
        match step:
            case Initiate():
                self.initiate(step)
            case Phase2(swap, fail) if swap in self.planned:
                c = self.planned[swap]
                if c.failed:
                    note(f"retry swap {swap}")
                    event("a failed phase 2 retried before the end")
                self.phase2(c, fail=fail)
            case Bounce(swap) if swap in self.planned:
                self.bounce(self.planned[swap])
            case Phase3(swap) if swap in self.planned:
                self.phase3(self.planned[swap])
                event("phase 3 before the end")
            case SetPrice(price):
                self.set_price(price)
            case Fund(amount, swap):
                self.fund(amount or self.pays(swap) or 1)
            case Withdraw():
                self.withdraw(step)
            case Clock():
                self.clock(step)
            case Settle(chain):
                self.settle(chain if self.unsettled[chain] else A + B - chain)

    def initiate(self, step: Initiate) -> None:
        w = self.w
        terms = self.d.terms[step.terms]
        lo, hi, amount = terms.min_amount_x, terms.max_amount_x, step.amount_x
        q = quote(amount, self.price, terms.fee_bps)  # at B's price now: it may change before phase 2
        min_y = {
            "quote": max(q, 1),
            "above": q + 1,
            "below": max(q - 1, 1),
            "zero": 0,
            "any": 1 + (2 * q + 1) * step.share // SHARE,
        }[step.min_y]
        note(f"swap {step.swap}: initiate {amount} X for at least {min_y} Y (quote now {q}), {step.terms}")
        fn = w.desk_a.functions.initiate(terms.terms_id, amount, min_y)
        user = w.a.chain.with_signer(USER)
        if not lo <= amount <= hi:
            reverts(user, fn, f"AmountOutOfRange(amountX={amount}, minAmountX={lo}, maxAmountX={hi})")
            return
        if min_y == 0:
            reverts(user, fn, "ZeroMinimum()")
            return
        sid, phase1, receipt = w.initiate(amount, min_y, terms.terms_id)
        deadline = timestamp(w.a.chain, receipt) + terms.window
        nonce = len(self.cases)
        assert sid == bytes(w.desk_a.functions.swapIdOf(A, w.desk_a.address, nonce).call())
        assert phase1.nonce == self.a_nonce
        self.a_nonce += 1
        order = (nonce, terms.terms_id, USER.address, amount, min_y, deadline)
        assert phase1 == Message(
            A, B, phase1.nonce, w.desk_a.address, w.desk_b.address, w.x, amount,
            calldata(w.desk_b.functions.receiveSwap(order)), self.d.x_data,
        )  # fmt: skip
        started = Swap(terms.terms_id, USER.address, amount, min_y, 0, deadline, phase1.nonce, INITIATED,
                       SwapReason.NONE)  # fmt: skip
        assert w.recorded(w.desk_a, receipt) == [(sid, started)]
        self.cases.append(case := Case(step.swap, sid, terms, amount, min_y, deadline, phase1))
        self.planned[step.swap] = case
        self.unsettled[A].append(phase1)
        self.move(user_x=-amount, locked_x=amount)

    def set_price(self, price: int) -> None:
        w = self.w
        note(f"B quotes {price}")
        w.owner(w.b).send(w.desk_b.functions.setPrice(w.x, w.y, price))
        self.price = price
        for terms in self.d.on_both:  # the desk's quote is the model's
            assert w.desk_b.functions.quote(terms.terms_id, AMOUNT_X).call() == quote(
                AMOUNT_X, price, terms.fee_bps
            )

    def fund(self, amount: int) -> None:
        w = self.w
        note(f"B funds {amount}")
        owner = w.owner(w.b)
        w.b.chain.send(w.stable.functions.mint(OPERATOR_B.address, amount))
        owner.send(w.stable.functions.approve(w.desk_b.address, amount))
        owner.send(w.desk_b.functions.fund(w.stable.address, amount))
        self.funded += amount
        self.move(desk_b_y=amount, held_b_y=amount)

    def withdraw(self, step: Withdraw) -> None:
        w = self.w
        held = self.expect["held_b_y"]
        keep = held * step.share // SHARE
        pays = self.pays(step.swap)
        if step.keep != "share" and pays is not None:
            keep = pays + {"pays": 0, "pays-1": -1, "pays+1": 1}[step.keep]
        keep = min(max(keep, 0), held)
        amount = held - keep
        note(f"B withdraws {amount}, keeps {keep}")
        w.owner(w.b).send(w.desk_b.functions.withdraw(w.stable.address, OPERATOR_B.address, amount))
        self.withdrawn += amount
        self.move(desk_b_y=-amount, held_b_y=-amount, owner_b_y=amount)

    def clock(self, step: Clock) -> None:
        chain = self.w.b.chain
        latest = now(chain)
        about = self.about(step.swap)
        if step.offset is not None and about is not None:
            target = about.deadline + step.offset
        else:
            target = latest + step.jump
        target = max(target, latest + 1)
        note(f"B's clock to {target} (was {latest})")
        set_time(chain, target)

    def outcome(self, c: Case, when: int) -> tuple[SwapReason, int]:
        """Desk B's rule, in its order: refused for the first reason that applies, else swapped."""
        if c.terms not in self.d.on_both:
            return SwapReason.UNKNOWN_TERMS, 0
        if when > c.deadline:
            return SwapReason.EXPIRED, 0
        if not c.terms.price_min <= self.price <= c.terms.price_max:
            return SwapReason.PRICE_OUTSIDE_BAND, 0
        amount_y = quote(c.amount_x, self.price, c.terms.fee_bps)
        if amount_y < c.min_y:
            return SwapReason.SLIPPAGE, 0
        if self.expect["held_b_y"] < amount_y:
            return SwapReason.INVENTORY_SHORT, 0
        return SwapReason.NONE, amount_y

    def phase2(self, c: Case, *, fail: bool) -> None:
        """Executes c's phase 1 on B (settled first if need be); `fail`: B's Outbox refuses A meanwhile."""
        w = self.w
        self.settled_through(c.phase1)
        destination = w.b.outbox.functions.setDestination
        if fail:
            w.b.chain.send(destination(A, False))
        when = now(w.b.chain) + 1  # the block it lands in: the model decides by it
        pin_next_block(w.b.chain, when)
        receipt = w.execute(w.b, c.phase1)
        assert timestamp(w.b.chain, receipt) == when
        executed = [e["id"] for e in events(w.b.inbox, "MessageExecuted", receipt)]
        sent = [s.message for s in sent_messages(w.b.outbox, [receipt])]
        if fail:
            note(f"phase 2 of swap {c.n} fails at {when}")
            event("phase 2: failed")
            w.b.chain.send(destination(A, True))
            assert failure(w.b.inbox, receipt) == f"UnknownDestination(destChainId={A})"
            assert (executed, sent, w.recorded(w.desk_b, receipt)) == ([], [], [])
            assert not w.b.inbox.functions.executed(c.phase1.id()).call()
            assert w.swap(w.desk_b, c.sid).state == NONE
            c.failed = True
            return
        reason, amount_y = self.outcome(c, when)
        note(f"phase 2 of swap {c.n} at {when} (deadline {c.deadline}): {reason.word} {amount_y}")
        event(f"phase 2: {reason.word}")
        state = COMPLETED if reason == SwapReason.NONE else REFUNDED
        assert executed == [c.phase1.id()]
        if state == COMPLETED:
            expected = Message(
                B, A, self.b_nonce, w.desk_b.address, w.desk_a.address, w.y, amount_y,
                result_data(w.desk_a, c.sid, COMPLETED, SwapReason.NONE, amount_y), self.d.y_data,
            )  # fmt: skip
        else:
            expected = Message(
                B, A, self.b_nonce, w.desk_b.address, w.desk_a.address, w.x, c.amount_x,
                result_data(w.desk_a, c.sid, REFUNDED, reason, 0), self.d.x_data,
            )  # fmt: skip
        found = w.swap(w.desk_b, c.sid)
        assert (found.state, found.reason, found.amount_y) == (state, reason, amount_y), (
            f"phase 2 at {when} (deadline {c.deadline}), quote {self.price}, held {self.expect['held_b_y']}, "
            f"band {c.terms.price_min}..{c.terms.price_max}, minAmountY {c.min_y}: desk B says "
            f"{found.state.name} {found.reason.word} {found.amount_y}, "
            f"the model {state.name} {reason.word} {amount_y}"
        )
        assert sent == [expected], "phase 2 sends exactly one result: the one the model expects"
        on_b = Swap(c.terms.terms_id, USER.address, c.amount_x, c.min_y, amount_y, c.deadline, self.b_nonce,
                    state, reason)  # fmt: skip
        assert w.recorded(w.desk_b, receipt) == [(c.sid, on_b)]
        assert w.swap(w.desk_b, c.sid) == on_b
        c.b, c.result, c.failed = on_b, expected, False
        self.b_nonce += 1
        self.unsettled[B].append(expected)
        if state == COMPLETED:
            ax = c.amount_x
            self.move(supply_x_b=ax, desk_b_x=ax, held_b_x=ax)
            self.move(desk_b_y=-amount_y, held_b_y=-amount_y, locked_y=amount_y)

    def bounce(self, c: Case) -> None:
        w = self.w
        self.settled_through(c.phase1)
        note(f"B bounces swap {c.n}")
        event("bounce" + (" after a failed execution" if c.failed else ""))
        receipt = w.b.bounce(c.phase1, w.hub.proof(c.phase1), "desk closed")
        expected = bounce_of(c.phase1, self.b_nonce)
        assert [s.message for s in sent_messages(w.b.outbox, [receipt])] == [expected]
        assert w.recorded(w.desk_b, receipt) == []
        assert w.swap(w.desk_b, c.sid).state == NONE
        reclaim = w.desk_a.functions.reclaim(c.sid)
        assert call_error(reclaim, MALLORY.address) == f"NotBounced(swapId={hex32(c.sid)})"
        c.bounce, c.failed = expected, False
        self.b_nonce += 1
        self.unsettled[B].append(expected)

    def phase3(self, c: Case) -> None:
        """Executes what B sent back for c on A (settled first if need be); a bounce is then reclaimed."""
        w = self.w
        m = c.home
        assert m is not None
        self.settled_through(m)
        receipt = w.execute(w.a, m)
        assert [e["id"] for e in events(w.a.inbox, "MessageExecuted", receipt)] == [m.id()]
        if c.result is not None:
            assert c.b is not None
            note(f"phase 3 of swap {c.n}: {c.b.state.name} {c.b.reason.word}")
            c.a = dataclasses.replace(c.b, message_nonce=c.phase1.nonce)
            assert w.recorded(w.desk_a, receipt) == [(c.sid, c.a)]
            if c.b.state == COMPLETED:
                self.move(supply_y_a=c.b.amount_y, user_y=c.b.amount_y)
            else:
                self.move(locked_x=-c.amount_x, user_x=c.amount_x)
            return
        note(f"bounce of swap {c.n} home, reclaimed")
        [refunded] = events(w.a.inbox, "MessageRefunded", receipt)
        assert (refunded["to"], refunded["amount"]) == (w.desk_a.address, c.amount_x)
        assert w.a.inbox.functions.refunded(c.phase1.id()).call()
        assert w.recorded(w.desk_a, receipt) == []
        assert w.swap(w.desk_a, c.sid).state == INITIATED
        self.move(locked_x=-c.amount_x, desk_a_x=c.amount_x)
        self.check_ledger()  # the value is home, at desk A: not yet the user's, not the desk's either
        receipt = w.a.chain.with_signer(MALLORY).send(w.desk_a.functions.reclaim(c.sid))  # anyone may
        c.a = Swap(
            c.terms.terms_id, USER.address, c.amount_x, c.min_y, 0, c.deadline, c.phase1.nonce, REFUNDED,
            SwapReason.BOUNCED,
        )  # fmt: skip
        assert w.recorded(w.desk_a, receipt) == [(c.sid, c.a)]
        self.move(desk_a_x=-c.amount_x, user_x=c.amount_x)

    def drain(self, order: random.Random) -> None:
        """Everything in flight delivered, in `order`: phase 1 (failed ones retried), then what comes home."""
        note("deliver everything in flight")
        while self.in_flight():
            self.settle(A)
            for c in order.sample(open_ := [c for c in self.cases if c.phase1_open], len(open_)):
                self.phase2(c, fail=False)
            self.check_ledger()
            self.settle(B)
            for c in order.sample(home := self.open_home(), len(home)):
                self.phase3(c)
            self.check_ledger()


def check_the_end(run: Run, start: Ledger) -> None:
    """Every swap over on both sides, exactly once; the ledger adds up."""
    w = run.w
    end = w.ledger()
    assert end == run.expect
    assert run.unsettled == {A: [], B: []}
    paid_x = paid_y = 0
    for c in run.cases:
        on_a, on_b = w.swap(w.desk_a, c.sid), w.swap(w.desk_b, c.sid)
        assert on_a == c.a
        assert on_a.state in (COMPLETED, REFUNDED)
        assert w.b.inbox.functions.executed(c.phase1.id()).call()  # executed or bounced
        home = c.home
        assert home is not None and w.a.inbox.functions.executed(home.id()).call()
        if c.bounce is not None:
            assert (on_a.state, on_a.reason, on_b.state) == (REFUNDED, SwapReason.BOUNCED, NONE)
            assert c.result is None and w.b.inbox.functions.bounced(c.phase1.id()).call()
        else:
            assert (on_b.state, on_b.reason, on_b.amount_y) == (on_a.state, on_a.reason, on_a.amount_y)
            assert (on_a.state == COMPLETED) == (on_a.reason == SwapReason.NONE)
        if on_a.state == COMPLETED:
            assert on_a.amount_y >= c.min_y
            paid_x += c.amount_x
            paid_y += on_a.amount_y
    assert w.desk_a.functions.swapNonce().call() == len(run.cases)
    assert w.a.outbox.functions.nonce().call() == run.a_nonce == len(run.cases)
    assert w.b.outbox.functions.nonce().call() == run.b_nonce == len(run.cases)
    # Nothing in flight: every X on B is locked on A and B's on L1; every Y on A is locked on B and A's.
    backed(end)
    assert end["locked_x"] - start["locked_x"] == paid_x
    assert end["locked_y"] - start["locked_y"] == paid_y
    # The user's change is the completed swaps'; desk B's `held` too (and what its owner added or took).
    assert (end["user_x"] - start["user_x"], end["user_y"] - start["user_y"]) == (-paid_x, paid_y)
    assert end["held_b_x"] - start["held_b_x"] == paid_x
    assert end["held_b_y"] - start["held_b_y"] == run.funded - run.withdrawn - paid_y
    assert end["owner_b_y"] - start["owner_b_y"] == run.withdrawn
    # The desks hold nothing of the user's: A nothing beyond its `held`, B nothing beyond its `held`.
    assert end["desk_a_x"] == end["held_a_x"] == start["held_a_x"]
    assert end["desk_a_y"] == 0
    assert (end["desk_b_x"], end["desk_b_y"]) == (end["held_b_x"], end["held_b_y"])


@settings(max_examples=EXAMPLES, deadline=None)
@given(plan=plans(), order=st.integers(0, 2**32 - 1))
@example(plan=EDGES, order=0)
@example(plan=REFUSALS, order=0)
def test_every_swap_ends_once_on_both_sides_and_no_value_is_made_or_lost(
    desks: Desks, plan: list[Step], order: int
) -> None:
    w = desks.w
    with rolled_back(w, *desks.nodes):
        start = w.ledger()
        run = Run(desks, dict(start))
        for step in plan:
            run.step(step)
            # After what moves value in flight, and what must not (a failed execution; a bounce, on B).
            if isinstance(step, Initiate | Phase2 | Bounce | Phase3 | Settle):
                run.check_ledger()
        run.drain(random.Random(order))
        check_the_end(run, start)
