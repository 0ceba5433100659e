"""Attacks on the atomic swaps (an outside review of SwapDesk, Inbox.refunded and the daemon's swap
steps). Each test states the attack and asserts what must hold; a test that fails shows the weakness.

On real anvil nodes (the world of tests/test_swap_desk.py):

- a zero-value bounce message forged by a third chain's operator (any chain registered on L1, not A's
  peer, not B) names a swap's phase-1 message: Inbox.refunded says "its value came home" and
  SwapDesk.reclaim pays the user X out of what desk A holds for its owner; B's genuine result then fails
  on A for good;
- the same bounce forged by B's operator, while desk B swaps: B and the user take X from desk A.

Without chains (stubs of the daemon's context around a real store):

- a swap's result to this chain's desk is bounced by the automatic paths (a forced result from a peer
  since removed; a result from a peer whose swap_desk is unset or changed), which `bounce_refusal` says
  must never happen;
- one peer's signed "accept" of terms this daemon agreed with another peer marks them refused;
- a peer's terms proposals are stored without bound (each also costs an L1 call or a refusal envelope).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

import pytest
from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractLogicError

from bridge_contracts import anvil
from bridge_contracts.chain import Reverted, decode_revert
from bridge_contracts.messages import BOUNCE_SENDER, Message, sent_messages, sign_digest
from bridge_contracts.swaps import SwapReason, Terms, terms_digest
from hub.envelope import KIND_TERMS
from relayer.config import InstitutionConfig, PeerConfig, load
from relayer.pipeline.context import Context
from relayer.pipeline.priority import _bounce_rule
from relayer.pipeline.receiver import peering_rule
from relayer.pipeline.swaps import MAX_WAITING_TERMS, RESULT_SELECTOR, bounce_refusal, on_terms
from relayer.store import Store, SwapSide, TermsStatus
from tests.settlement import E18
from tests.test_swap_desk import (
    AMOUNT_X,
    COMPLETED,
    INITIATED,
    MALLORY,
    OPERATOR_B,
    USER,
    A,
    B,
    World,
    built,
    failure,
    node_l1,
    world,
)
from tests.test_swap_steps import sample_terms

__all__ = ["built", "node_l1", "world"]  # test_swap_desk's fixtures, for this module's own world

C = 903  # a third chain: registered on L1, no peer of A's, no party to the swap
OPERATOR_C = anvil.dev_account(4)
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


# --- a third chain's forged bounce drains desk A ------------------------------------------------


def _x_on_a(w: World) -> tuple[int, int, int]:
    """X on chain A, for an attack's report: desk A's `held`, desk A's balance, the user's balance."""
    held = int(w.desk_a.functions.held(w.gold.address).call())
    return (
        held,
        int(w.gold.functions.balanceOf(w.desk_a.address).call()),
        int(w.gold.functions.balanceOf(USER.address).call()),
    )


def _reclaim_error(w: World, sid: bytes) -> str | None:
    """The error reclaim(sid) reverts with now (eth_call from anyone), or None if it would succeed."""
    try:
        w.desk_a.functions.reclaim(sid).call({"from": MALLORY.address})
    except ContractLogicError as exc:
        return decode_revert(exc.data if isinstance(exc.data, str) else None)
    return None


def _settle_raw(w: World, source: int, operator: LocalAccount, messages: list[Message]) -> None:
    """`messages` settled as `source`'s next batch whatever its Outbox says (its operator attests them),
    and the root imported on A and B (as their daemons do for every root L1 has)."""
    w.hub.commit(source, messages, operator)
    for l2 in (w.a, w.b):
        w.owner(l2).send(l2.inbox.functions.importRoot(w.hub.tree.root))


def test_a_bounce_forged_by_a_third_chain_cannot_make_desk_a_pay_x_twice(world: World) -> None:
    """Attack: chain C's operator (any chain on L1; its batches attest what it likes, trust-model §3)
    settles a zero-value "bounce" from BOUNCE_SENDER to desk A whose data is the id of the user's phase-1
    message (sent to B, not C). A's Inbox executes it (execute is open to anyone once A imported L1's
    root, which it does for every root) and sets refunded[phase 1]; reclaim then pays the user AMOUNT_X
    out of desk A's balance, i.e. out of its owner's `held` X (or other users' X waiting to be
    reclaimed). B never bounced anything: it swaps, and its genuine result fails on A for good
    (NotInitiated), its Y stranded. Desk A holds less than `held`; its owner's withdraw fails.

    What must hold: nothing but B's own bounce of phase 1 lets reclaim pay (Inbox.refunded should record
    the refund's source chain, asset and amount, and the desk check them against terms.chainB, assetX
    and amountX), and the swap ends as a plain swap, desk A's `held` untouched."""
    w = world
    own = 5 * E18  # desk A's owner keeps X there (e.g. its inventory as side B of the reverse pair)
    w.fund_desk_a_with_gold(own)
    w.hub.register(C, OPERATOR_C)
    user_x_before = int(w.gold.functions.balanceOf(USER.address).call())

    sid, phase1, _ = w.initiate()
    w.settle(w.a, [phase1])
    forged = Message(
        source_chain_id=C,
        dest_chain_id=A,
        nonce=0,
        sender=BOUNCE_SENDER,
        target=w.desk_a.address,
        asset_id=bytes(32),
        amount=0,
        data=phase1.id(),
        asset_data=b"",
    )
    _settle_raw(w, C, OPERATOR_C, [forged])  # C's operator attests it; L1 sees no value, checks nothing
    anyone = w.a.chain.with_signer(MALLORY)
    with contextlib.suppress(Reverted, ContractLogicError):  # a fixed Inbox may refuse it outright
        anyone.send(w.a.inbox.functions.execute(forged.as_tuple(), w.hub.proof(forged).as_tuple()))
    refunded = bool(w.a.inbox.functions.refunded(phase1.id()).call())
    error = _reclaim_error(w, sid)
    if error is None:  # the attack works: show what it does, then fail
        anyone.send(w.desk_a.functions.reclaim(sid))
        [sent] = sent_messages(w.b.outbox, [w.execute(w.b, phase1)])  # B swaps: keeps X, sends Y
        result = sent.message
        w.settle(w.b, [result])
        receipt = w.execute(w.a, result)
        result_failure = failure(w.a.inbox, receipt)
        held, balance, user_x = _x_on_a(w)
        pytest.fail(
            f"a zero-value bounce forged by chain {C} set Inbox.refunded[phase 1]={refunded}; reclaim paid "
            f"the user {AMOUNT_X} X (user X before {user_x_before}, after {user_x}) out of desk A, which "
            f"now holds {balance} X while held says {held}; desk B swapped ({w.swap(w.desk_b, sid).state!r}) "
            f"and its result fails on A for good: {result_failure}"
        )
    [sent] = sent_messages(w.b.outbox, [w.execute(w.b, phase1)])
    w.phase3(sent.message)
    assert w.swap(w.desk_a, sid).state == COMPLETED
    assert int(w.desk_a.functions.held(w.gold.address).call()) == own
    assert int(w.gold.functions.balanceOf(w.desk_a.address).call()) == own
    assert int(w.gold.functions.balanceOf(USER.address).call()) == user_x_before - AMOUNT_X
    assert w.swap(w.desk_a, sid).state != INITIATED


def test_a_valueless_bounce_from_b_cannot_make_desk_a_pay_x_while_b_swaps(world: World) -> None:
    """Attack (B's operator with a user of A): the same forged bounce, from B itself, carrying no value.
    B executes phase 1 on its chain (desk B keeps the user's X) and never settles the result; the user
    reclaims X out of desk A's owner's `held`. B and the user are up AMOUNT_X, taken from desk A, which B
    was never trusted with. A check of the bounce's source chain alone does not stop it: the desk must
    also check the refund's asset and amount (assetX, amountX).
    What must hold: reclaim pays only for a bounce that brought the swap's X home."""
    w = world
    own = 5 * E18
    w.fund_desk_a_with_gold(own)
    user_x_before = int(w.gold.functions.balanceOf(USER.address).call())

    sid, phase1, _ = w.initiate()
    w.settle(w.a, [phase1])
    forged = Message(B, A, 10**9, BOUNCE_SENDER, w.desk_a.address, bytes(32), 0, phase1.id(), b"")
    _settle_raw(w, B, OPERATOR_B, [forged])
    with contextlib.suppress(Reverted, ContractLogicError):
        w.a.chain.with_signer(MALLORY).send(
            w.a.inbox.functions.execute(forged.as_tuple(), w.hub.proof(forged).as_tuple())
        )
    error = _reclaim_error(w, sid)
    [sent] = sent_messages(w.b.outbox, [w.execute(w.b, phase1)])  # desk B keeps X
    if error is None:
        w.a.chain.with_signer(USER).send(w.desk_a.functions.reclaim(sid))
        held, balance, user_x = _x_on_a(w)
        pytest.fail(
            f"a valueless bounce from B let the user reclaim: user X {user_x_before} -> {user_x}, desk B "
            f"swapped ({w.swap(w.desk_b, sid).state!r}) and keeps the user's X, desk A holds {balance} X "
            f"with held {held}"
        )
    _settle_raw(w, B, OPERATOR_B, [sent.message])
    w.execute(w.a, sent.message)
    assert w.swap(w.desk_a, sid).state == COMPLETED
    assert int(w.gold.functions.balanceOf(w.desk_a.address).call()) == own
    assert int(w.gold.functions.balanceOf(USER.address).call()) == user_x_before - AMOUNT_X


# --- the daemon: contexts without chains ---------------------------------------------------------

DESK_A = "0x00000000000000000000000000000000000000D1"  # this chain's (bank-a, 901) desk
DESK_B = "0x00000000000000000000000000000000000000D2"  # bank-b's (902)
DESK_B_NEW = "0x00000000000000000000000000000000000000D4"  # bank-b's desk, redeployed
DESK_C = "0x00000000000000000000000000000000000000D3"  # bank-c's (903)
SOMEONE = "0x00000000000000000000000000000000000000aa"


def _config(peers: list[PeerConfig]) -> InstitutionConfig:
    config = load(CONFIGS / "bank-a.toml")
    contracts = config.chain.contracts.model_copy(update={"swap_desk": DESK_A})
    return config.model_copy(
        update={"chain": config.chain.model_copy(update={"contracts": contracts}), "peers": peers}
    )


def _bank_b(**changes: Any) -> PeerConfig:
    return PeerConfig(**({"name": "bank-b", "chain_id": 902, "swap_desk": DESK_B} | changes))


class _Wakeups:
    def wake(self, *names: str) -> None:
        pass


class _Functions:
    @staticmethod
    def priority(chain_id: int) -> tuple[str, int]:
        return ("priority", chain_id)


class _Hub:
    functions = _Functions()


@dataclasses.dataclass
class _HubChain:
    operator: str


class _Ctx:
    """What on_terms, the swaps step and the bounce rules read of a Context: the config, the store, L1's
    Hub (the priority window, the peers' operators), the bus (what is sent is kept)."""

    def __init__(self, store: Store, config: InstitutionConfig, operators: dict[int, str]) -> None:
        self.store, self.config, self.chain_id = store, config, config.chain.chain_id
        self.operators = operators
        self.hub = _Hub()
        self.wakeups = _Wakeups()
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.l1_calls = 0
        self.desk = None

    def peer_by_name(self, name: str) -> PeerConfig | None:
        return next((p for p in self.config.peers if p.name == name), None)

    def peer_by_chain(self, chain_id: int) -> PeerConfig | None:
        return next((p for p in self.config.peers if p.chain_id == chain_id), None)

    async def hub_record(self, chain_id: int, *, fresh: bool = False) -> tuple[_HubChain, None]:
        return _HubChain(self.operators[chain_id]), None

    async def call(self, fn: Any) -> Any:
        self.l1_calls += 1
        return (600, 0, 0)  # chain B's priority window on L1: 600 s

    async def send(self, peer: str, kind: str, body: dict[str, Any]) -> None:
        self.sent.append((peer, kind, body))


def _ctx(store: Store, config: InstitutionConfig, operators: dict[int, str] | None = None) -> Context:
    return cast(Context, _Ctx(store, config, operators or {}))


def _result(sender: str = DESK_B) -> Message:
    """A swap's result from bank-b's desk to this chain's: receiveResult(...) carrying Y."""
    return Message(902, 901, 7, sender, DESK_A, b"\x02" * 32, 5, RESULT_SELECTOR + bytes(128), b"")


def test_a_swap_result_is_never_bounced_by_the_automatic_rules(tmp_path: Path) -> None:
    """Attack (an operator's routine change while a swap is in flight): bounce_refusal says a swap's result
    to this chain's desk is never bounced (its Y would be stranded on B's desk, outside `held`, and the
    user's X kept by B: the user loses X). Only the CLI and the admin API ask it. The automatic paths
    bounce the same message:
    - bank-b removed from the peering (`xrelay peers remove`): bank-b forces the result through L1, and
      the priority rule bounces it ("not a peer");
    - bank-b's swap_desk unset, or changed after bank-b redeployed its desk, with allowed_targets that do
      not list this chain's desk: the receiver bounces the old desk's result ("target not allowed").
    What must hold: no automatic rule returns a bounce reason for a message bounce_refusal protects."""
    m = _result()
    restricted = {"allowed_targets": [SOMEONE]}
    cases = {
        "peer removed, result forced": ([], "priority"),
        "swap_desk unset, result forced": ([_bank_b(swap_desk=None, **restricted)], "priority"),
        "swap_desk unset, result pushed": ([_bank_b(swap_desk=None, **restricted)], "receiver"),
        "desk redeployed, old desk's result pushed": (
            [_bank_b(swap_desk=DESK_B_NEW, **restricted)],
            "receiver",
        ),
    }
    bounced: dict[str, str] = {}
    with Store(tmp_path / "s.sqlite") as store:
        for name, (peers, path) in cases.items():
            config = _config(peers)
            assert bounce_refusal(config, m) is not None  # the message the operator may never bounce
            ctx = _ctx(store, config)
            if path == "priority":
                rule = _bounce_rule(ctx, m)
            else:
                peer = ctx.peer_by_name("bank-b")
                assert peer is not None
                rule = peering_rule(ctx, peer, m)
            if rule is not None:
                bounced[name] = rule
    assert not bounced, f"a swap's result is bounced automatically: {bounced}"


def _terms(**changes: int) -> Terms:
    return sample_terms(**({"window": 5000} | changes))


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


def _signature(account: LocalAccount, terms: Terms) -> str:
    return "0x" + sign_digest(account, terms_digest(terms.terms_id)).hex()


def test_another_peer_cannot_refuse_terms_agreed_with_bank_b(tmp_path: Path) -> None:
    """Attack (a hostile peer, bank-c, that learnt terms this chain agreed with bank-b): bank-c sends a
    "swap-terms" envelope {"action": "accept", "terms": T, "signature": bank-c operator's signature of T}.
    on_terms checks the signature is bank-c's operator's, finds T is not bank-c's (terms_problem) and calls
    store.terms_problem(T, refused=True), which never checks that T's peer is bank-c: T, proposed by this
    operator and accepted by bank-b, becomes "refused" before the swaps step registers it. bank-b has
    registered T on its desk; this desk never does (users' swaps under T are refunded UnknownTerms).
    What must hold: an envelope from one peer never changes terms agreed with another."""
    bank_b_operator, bank_c_operator = anvil.dev_account(8), anvil.dev_account(9)
    bank_c = PeerConfig(name="bank-c", chain_id=903, swap_desk=DESK_C)
    config = _config([_bank_b(), bank_c])
    with Store(tmp_path / "s.sqlite") as store:
        ctx = _ctx(store, config, {902: bank_b_operator.address, 903: bank_c_operator.address})
        terms = _terms()
        terms_id = "0x" + terms.terms_id.hex()
        store.propose_terms(terms, "bank-b", SwapSide.A, "0xa1")
        _run(
            on_terms(
                ctx,
                config.peers[0],
                {
                    "action": "accept",
                    "terms": terms.to_json(),
                    "signature": _signature(bank_b_operator, terms),
                },
            )
        )
        agreed = store.terms(terms_id)
        assert agreed is not None and agreed.status == TermsStatus.ACCEPTED  # to be registered here

        body = {"action": "accept", "terms": terms.to_json(), "signature": _signature(bank_c_operator, terms)}
        with contextlib.suppress(ValueError):  # refusing the envelope is fine
            _run(on_terms(ctx, bank_c, body))
        after = store.terms(terms_id)
        assert after is not None
        assert after.status == TermsStatus.ACCEPTED, (
            f"bank-c's envelope turned terms agreed with bank-b {after.status}: {after.error}"
        )
        assert store.swap_terms(status=TermsStatus.ACCEPTED)  # what Swaps.step would register


def test_a_peers_proposals_do_not_grow_the_store_without_bound(tmp_path: Path) -> None:
    """Attack (a hostile peer): "swap-terms" envelopes are not rate limited (the per-minute limit counts
    messages only), and every distinct proposal is stored for good: "offered" ones (each also costs an L1
    call, hub.priority, inline in the bus listener) and "refused" ones (each also answered with a sealed
    refusal envelope). N envelopes, N rows, N L1 calls or envelopes out; nothing ever deletes them.
    What must hold: what one peer can make this daemon keep is bounded (here: at most 100 rows for 300
    proposals), and a flood does not cost one L1 call or one envelope out per proposal."""
    bank_b_operator = anvil.dev_account(8)
    config = _config([_bank_b()])
    count, moment = 150, int(time.time())
    quiet = contextlib.ExitStack()
    quiet.callback(logging.getLogger("relayer.pipeline.swaps").setLevel, logging.NOTSET)
    logging.getLogger("relayer.pipeline.swaps").setLevel(logging.ERROR)  # a warning per proposal
    refused_unread = 0  # ValueError: the receiver records the envelope as refused
    with quiet, Store(tmp_path / "s.sqlite") as store:
        ctx = _ctx(store, config, {902: bank_b_operator.address})
        stub = cast(_Ctx, ctx)
        for i in range(count):
            # Valid-looking offers: this chain is B, bank-b's desk is A; each differs in max_amount_x.
            offer = dataclasses.replace(
                _terms(max_amount_x=10**24 + i), chain_a=902, desk_a=DESK_B, chain_b=901, desk_b=DESK_A
            )
            body = {
                "action": "propose",
                "terms": offer.to_json(),
                "signature": _signature(bank_b_operator, offer),
            }
            refused_unread += _refused_unread(ctx, config, body)
            # Terms this daemon refuses (last_start passed): stored "refused" and answered.
            stale = _terms(last_start=moment - 1 - i)
            body = {
                "action": "propose",
                "terms": stale.to_json(),
                "signature": _signature(bank_b_operator, stale),
            }
            refused_unread += _refused_unread(ctx, config, body)
        rows = store.swap_terms()
        offered = [t for t in rows if t.status == TermsStatus.OFFERED]
        refused = [t for t in rows if t.status == TermsStatus.REFUSED]
        refusals_sent = [s for s in stub.sent if s[1] == KIND_TERMS]
        assert refused_unread == 2 * count - MAX_WAITING_TERMS
        assert stub.l1_calls <= MAX_WAITING_TERMS and len(refusals_sent) <= MAX_WAITING_TERMS
        assert len(rows) <= MAX_WAITING_TERMS, (
            f"one peer's {2 * count} proposals left {len(rows)} rows ({len(offered)} offered, "
            f"{len(refused)} refused), cost {stub.l1_calls} L1 calls and {len(refusals_sent)} envelopes out"
        )


def _refused_unread(ctx: Any, config: Any, body: dict[str, Any]) -> int:
    try:
        _run(on_terms(ctx, config.peers[0], body))
    except ValueError:
        return 1
    return 0


def test_reason_words_are_the_metric_labels() -> None:
    """Held up (no label injection): the refunded-reason label is SwapReason.word, a closed set."""
    assert {r.word for r in SwapReason if r} == {
        "slippage",
        "expired",
        "inventory-short",
        "price-outside-band",
        "unknown-terms",
        "send-failed",
        "bounced",
    }
