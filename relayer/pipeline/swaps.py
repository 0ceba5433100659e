"""Atomic swaps (docs/protocol.md, "Atomic swaps"): agreeing terms with a peer, and following every
swap on this chain's SwapDesk.

Terms travel over the bus ("swap-terms" envelopes): one operator proposes (`propose`, from the CLI or
the admin API), signing the terms id (`bridge_contracts.swaps.terms_digest`); the peer's daemon checks
them (`terms_problem`: the desks, the assets, the window W against chain B's L1 priority window plus
proving and settlement time) and offers them to its operator, who accepts (`accept`) or not. Once both
have signed, each daemon registers the terms on its own desk (`Swaps.step`).

The "swap-desk" watcher stores every final `SwapRecorded` event of this chain's desk (`desk_handler`):
the desk emits the whole swap at each change, so the store holds each swap as the desk has it. The
swaps themselves move by messages the pipeline already carries (phase 1 from A's desk, the result from
B's), forced through L1 when the peer ignores them (the forcer forces a swap's phase 1 by a quarter of
its window at the latest: `force_at`). What is left to this step: registering terms, sending the
terms envelopes again until answered, and `SwapDesk.reclaim` for a swap whose phase 1 B bounced.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.types import EventData

from bridge_contracts.chain import Reverted
from bridge_contracts.messages import Message, sign_digest
from bridge_contracts.swaps import Swap, SwapState, Terms, terms_digest
from hub.delivery import message_key
from hub.envelope import KIND_TERMS
from relayer.config import SETTLE_SECONDS, InstitutionConfig, PeerConfig
from relayer.pipeline.context import Context
from relayer.sender import SendFailed, failure_reason
from relayer.store import (
    OutStatus,
    StoredTerms,
    SwapRecord,
    SwapSide,
    SwapStatus,
    TermsStatus,
    WatchCursor,
)
from relayer.watcher import Handler

log = logging.getLogger(__name__)

TERMS_RESEND_SECONDS = 30.0
"""How often a proposal the peer has not answered is sent again."""
RECLAIM_RETRY_SECONDS = 30.0
MAX_WAITING_TERMS = 100
"""The most terms one peer may have offered or refused here at once: more proposals are refused unread."""
PROVING_ALLOWANCE_SECONDS = 120.0
"""What W allows for proving a batch, on top of batch.max_wait_seconds and SETTLE_SECONDS."""
WINDOW_MARGIN_SECONDS = 60.0
FORCE_SHARE = 4
"""A swap's phase 1 is forced once 1/FORCE_SHARE of its window has passed without B's receipt (or the
peer's force_after_seconds, if sooner)."""


RESULT_SELECTOR = keccak(b"receiveResult(bytes32,uint8,uint8,uint128)")[:4]
"""The call a swap's result message makes on A's desk (`SwapDesk.receiveResult`)."""


def bounce_refusal(config: InstitutionConfig, m: Message) -> str | None:
    """Why an operator may not bounce `m`, or None: a swap's result to this chain's desk is the only way
    the swap ends; bounced, its value would go back to B's desk, where nothing accounts for it. A failed
    result is replayed instead (its cause fixed first)."""
    desk = config.chain.contracts.swap_desk
    if desk is not None and m.target.lower() == desk.lower() and m.data[:4] == RESULT_SELECTOR:
        return (
            f"message {message_key(m.source_chain_id, m.nonce)} is a swap's result to this chain's desk: it "
            "is never bounced (its value would be stranded on the counterparty's desk); replay it instead"
        )
    return None


class TermsError(ValueError):
    """Terms that cannot be agreed: the message says which figure or field and why."""


# --- terms ---------------------------------------------------------------------------------------


def least_window(priority_window: float, max_wait_seconds: float) -> int:
    """The shortest W terms may have: chain B's priority window plus proving and settlement time, so
    that a phase 1 forced after a quarter of W is processed by B (or B frozen) before the deadline:
    W * 3/4 > window + proving + settlement, plus a margin."""
    proving = max_wait_seconds + PROVING_ALLOWANCE_SECONDS + SETTLE_SECONDS
    return math.ceil((priority_window + proving) * FORCE_SHARE / (FORCE_SHARE - 1) + WINDOW_MARGIN_SECONDS)


async def terms_problem(ctx: Context, terms: Terms, peer: PeerConfig) -> str | None:
    """Why this daemon cannot agree `terms` with `peer`, or None: the chains and desks must be this
    chain's and the peer's, and W long enough for chain B's priority window (read on L1)."""
    desk = ctx.config.chain.contracts.swap_desk
    if desk is None:
        return "this chain has no swap desk (chain.contracts.swap_desk)"
    if peer.swap_desk is None:
        return f"{peer.name} has no swap desk in this config (peers.swap_desk)"
    ours = (ctx.chain_id, desk.lower())
    theirs = (peer.chain_id, peer.swap_desk.lower())
    sides = {(terms.chain_a, terms.desk_a.lower()), (terms.chain_b, terms.desk_b.lower())}
    if sides != {ours, theirs}:
        return (
            f"the terms name desks {terms.desk_a} on chain {terms.chain_a} and {terms.desk_b} on chain "
            f"{terms.chain_b}; this chain's is {desk} on {ctx.chain_id}, {peer.name}'s {peer.swap_desk} "
            f"on {peer.chain_id}"
        )
    if terms.last_start <= time.time():
        return f"last_start {terms.last_start} has passed"
    window, _, _ = await ctx.call(ctx.hub.functions.priority(terms.chain_b))
    least = least_window(float(window), ctx.config.batch.max_wait_seconds)
    if terms.window < least:
        wait = ctx.config.batch.max_wait_seconds
        return (
            f"window {terms.window} s is too short: it must be at least {least} s = (chain "
            f"{terms.chain_b}'s L1 priority window {window} s + batch.max_wait_seconds {wait:g} s + "
            f"{PROVING_ALLOWANCE_SECONDS:g} s proving + {SETTLE_SECONDS:g} s settling) x "
            f"{FORCE_SHARE}/{FORCE_SHARE - 1} + {WINDOW_MARGIN_SECONDS:g} s margin"
        )
    return None


def side_of(ctx: Context, terms: Terms) -> SwapSide:
    return SwapSide.A if terms.chain_a == ctx.chain_id else SwapSide.B


def _sign(ctx: Context, terms: Terms) -> str:
    return "0x" + sign_digest(ctx.l2.signer, terms_digest(terms.terms_id)).hex()


def _signer_of(terms: Terms, signature: str) -> str:
    raw = bytes.fromhex(signature.removeprefix("0x"))
    return str(Account.recover_message(encode_defunct(primitive=terms_digest(terms.terms_id)), signature=raw))


async def propose(ctx: Context, peer_name: str, terms: Terms) -> StoredTerms:
    """This operator proposes `terms` to a peer: checked, signed, stored "proposed" and sent (by the
    swaps step). TermsError says what is wrong."""
    peer = ctx.peer_by_name(peer_name)
    if peer is None:
        raise TermsError(f"{peer_name} is not a peer")
    problem = await terms_problem(ctx, terms, peer)
    if problem is not None:
        raise TermsError(problem)
    stored = ctx.store.propose_terms(terms, peer.name, side_of(ctx, terms), _sign(ctx, terms))
    ctx.wakeups.wake("swaps")
    return stored


async def accept(ctx: Context, terms_id: str) -> StoredTerms:
    """This operator accepts terms a peer offered: checked again, signed, "accepted"; the swaps step
    registers them on this chain's desk and sends the acceptance."""
    known = ctx.store.terms(terms_id)
    if known is None:
        raise TermsError(f"no swap terms {terms_id}")
    peer = ctx.peer_by_name(known.peer)
    if peer is None:
        raise TermsError(f"{known.peer} is no longer a peer")
    problem = await terms_problem(ctx, known.terms, peer)
    if problem is not None:
        raise TermsError(problem)
    stored = ctx.store.accept_terms(known.terms_id, _sign(ctx, known.terms))
    ctx.wakeups.wake("swaps")
    return stored


async def on_terms(ctx: Context, peer: PeerConfig, body: Any) -> None:
    """A "swap-terms" envelope from a peer: a proposal, an acceptance or a refusal. ValueError if it is
    malformed (the receiver records the refusal)."""
    if not isinstance(body, dict) or body.get("action") not in ("propose", "accept", "refuse"):
        raise ValueError("a swap-terms body needs an action: propose, accept or refuse")
    terms = Terms.from_json(body.get("terms"))
    terms_id = "0x" + terms.terms_id.hex()
    action = body["action"]
    if action == "refuse":
        reason = "".join(c if c.isprintable() else "?" for c in str(body.get("reason", ""))[:500])
        refused = ctx.store.terms(terms_id)
        if refused is not None and refused.peer == peer.name:
            ctx.store.terms_problem(terms_id, f"{peer.name} refused them: {reason}", refused=True)
            log.warning("%s refused swap terms %s: %s", peer.name, terms_id, reason)
        return
    known = ctx.store.terms(terms_id)
    if known is not None and known.peer != peer.name:
        raise ValueError(f"terms {terms_id} are with {known.peer}, not {peer.name}")
    if action == "accept" and (known is None or known.status != TermsStatus.PROPOSED):
        return  # not (or no longer) waiting for an acceptance: nothing to do, nothing to read on L1
    if action == "propose" and known is None and ctx.store.waiting_terms(peer.name) >= MAX_WAITING_TERMS:
        raise ValueError(f"{peer.name} has {MAX_WAITING_TERMS} terms offered or refused here already")
    signature = body.get("signature")
    if not isinstance(signature, str):
        raise ValueError("a swap-terms proposal or acceptance needs the sender's signature")
    operator = (await ctx.hub_record(peer.chain_id))[0].operator
    try:
        signer = _signer_of(terms, signature)
    except Exception as exc:
        raise ValueError(f"bad terms signature: {exc}") from None
    if signer != operator:
        raise ValueError(f"terms signed by {signer}, not by {peer.name}'s operator {operator}")
    problem = await terms_problem(ctx, terms, peer)
    if action == "accept":
        if problem is not None:
            log.warning("%s accepts terms %s that this daemon refuses: %s", peer.name, terms_id, problem)
            ctx.store.terms_problem(terms_id, problem, refused=True)
        elif ctx.store.terms_accepted(terms_id, signature):
            log.info("%s accepted swap terms %s", peer.name, terms_id)
            ctx.wakeups.wake("swaps")
        return
    if problem is None and known is not None and known.status == TermsStatus.REFUSED:
        problem = known.error or "refused"  # e.g. registerTerms reverted here: the peer stops resending
    if problem is not None:
        log.warning("refused swap terms %s from %s: %s", terms_id, peer.name, problem)
        ctx.store.refuse_terms(terms, peer.name, side_of(ctx, terms), problem)
        await ctx.send(
            peer.name, KIND_TERMS, {"action": "refuse", "terms": terms.to_json(), "reason": problem}
        )
        return
    stored = ctx.store.offer_terms(terms, peer.name, side_of(ctx, terms), signature)
    if stored.status == TermsStatus.OFFERED:
        log.warning(
            "%s proposes swap terms %s: `xrelay swaps terms accept %s`", peer.name, terms_id, terms_id
        )
    elif stored.our_signature is not None:
        ctx.store.send_terms_again(terms_id)  # our acceptance may be what was lost
        ctx.wakeups.wake("swaps")


async def set_price(ctx: Context, asset_x: bytes, asset_y: bytes, price: int) -> str:
    """This operator quotes `price` (Y base units per 1e18 X base units) on its desk: the transaction."""
    desk = _desk(ctx)
    receipt = await ctx.l2_sender.send(desk.functions.setPrice(asset_x, asset_y, price), what="setPrice")
    return "0x" + bytes(receipt["transactionHash"]).hex()


async def fund(ctx: Context, token: str, amount: int) -> str:
    """This operator adds `amount` of its `token` to the desk's inventory (approve, then fund)."""
    desk = _desk(ctx)
    erc20 = ctx.l2.contract("DevToken", token)  # any ERC-20's approve
    await ctx.l2_sender.send(erc20.functions.approve(desk.address, amount), what="approve the desk")
    receipt = await ctx.l2_sender.send(desk.functions.fund(token, amount), what="fund the desk")
    return "0x" + bytes(receipt["transactionHash"]).hex()


class Operations:
    """What an operator asks of the swap desk through the admin API (`relayer.api`)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def propose(self, peer: str, terms: Terms) -> StoredTerms:
        return await propose(self.ctx, peer, terms)

    async def accept(self, terms_id: str) -> StoredTerms:
        return await accept(self.ctx, terms_id)

    async def set_price(self, asset_x: bytes, asset_y: bytes, price: int) -> str:
        return await set_price(self.ctx, asset_x, asset_y, price)

    async def fund(self, token: str, amount: int) -> str:
        return await fund(self.ctx, token, amount)


def _desk(ctx: Context) -> Contract:
    if ctx.desk is None:
        raise TermsError("this chain has no swap desk (chain.contracts.swap_desk)")
    return ctx.desk


# --- the desk ------------------------------------------------------------------------------------


def desk_handler(ctx: Context) -> Handler:
    """The "swap-desk" watcher's handler: each final SwapRecorded event stored as the swap's state."""

    async def handle(events: Sequence[EventData], cursor: WatchCursor) -> None:
        records = []
        for event in events:
            swap = Swap.from_event(event["args"]["swap"])
            swap_id = "0x" + bytes(event["args"]["swapId"]).hex()
            known = ctx.store.swap(swap_id)
            terms = ctx.store.terms("0x" + swap.terms_id.hex())
            if known is not None:
                side, peer = known.side, known.peer
            elif terms is not None:
                side, peer = side_of(ctx, terms.terms), terms.peer
            else:  # B refunding a swap under terms it does not have: A's first record is "initiated"
                side = SwapSide.A if swap.state == SwapState.INITIATED else SwapSide.B
                peer = "?"
            message_id = message_key(ctx.chain_id, swap.message_nonce)
            block_hash = "0x" + bytes(event["blockHash"]).hex()
            records.append(
                SwapRecord(swap_id, side, peer, message_id, swap, event["blockNumber"], block_hash)
            )
        if ctx.store.record_swaps(records, cursor=cursor):
            ctx.wakeups.wake("swaps")

    return handle


def force_at(sent_at: float, peer: PeerConfig, swap_deadline: int | None) -> tuple[float, str]:
    """When an outgoing message to `peer` is forced through L1, and why: force_after_seconds after it was
    sent, or for a swap's phase 1 (with its deadline), a quarter of the time to the deadline if sooner."""
    at = sent_at + peer.force_after_seconds
    reason = f"no receipt from {peer.name} within force_after_seconds ({peer.force_after_seconds:g} s)"
    if swap_deadline is not None:
        early = sent_at + max(0.0, swap_deadline - sent_at) / FORCE_SHARE
        if early < at:
            return early, f"no receipt from {peer.name} within 1/{FORCE_SHARE} of its swap's time to deadline"
    return at, reason


class Swaps:
    """The swaps step: terms to register and to send, and swaps to reclaim."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._reclaimed: dict[str, float] = {}  # swap id -> when reclaim was last sent

    async def step(self) -> float | None:
        ctx, moment = self.ctx, time.time()
        if ctx.desk is None:
            return 3600.0
        for terms in ctx.store.swap_terms(status=TermsStatus.ACCEPTED):
            await self._register(terms)
        for terms in ctx.store.swap_terms(
            status=(TermsStatus.PROPOSED, TermsStatus.ACCEPTED, TermsStatus.REGISTERED)
        ):
            await self._send_terms(terms, moment)
        await self._reclaim(moment)
        return ctx.config.chain.poll_seconds * 8

    async def _register(self, terms: StoredTerms) -> None:
        ctx = self.ctx
        assert ctx.desk is not None
        registered = await ctx.call(ctx.desk.functions.termsOf(terms.terms.terms_id))
        if registered[-1] != 0:  # its window: never 0 for registered terms
            ctx.store.terms_registered(terms.terms_id, None)
            return
        try:
            receipt = await ctx.l2_sender.send(
                ctx.desk.functions.registerTerms(terms.terms.as_tuple()),
                what=f"registerTerms {terms.terms_id}",
            )
        except (Reverted, SendFailed) as exc:
            reason = exc.error if isinstance(exc, Reverted) else str(exc)
            ctx.metrics.failure(failure_reason("register terms", exc))
            log.error("registering swap terms %s failed: %s", terms.terms_id, reason)
            ctx.store.terms_problem(terms.terms_id, reason, refused=isinstance(exc, Reverted))
            return
        ctx.store.terms_registered(terms.terms_id, "0x" + bytes(receipt["transactionHash"]).hex())
        log.info("swap terms %s registered on this chain's desk", terms.terms_id)

    async def _send_terms(self, terms: StoredTerms, moment: float) -> None:
        """A proposal until the peer answers (again every TERMS_RESEND_SECONDS); an acceptance once."""
        proposing = terms.status == TermsStatus.PROPOSED
        if terms.our_signature is None or (terms.their_signature is None and not proposing):
            return
        if terms.sent_at is not None and (not proposing or moment - terms.sent_at < TERMS_RESEND_SECONDS):
            return
        body = {
            "action": "propose" if proposing else "accept",
            "terms": terms.terms.to_json(),
            "signature": terms.our_signature,
        }
        try:
            await self.ctx.send(terms.peer, KIND_TERMS, body)
        except Exception as exc:  # the bus or L1 (the peer's bus key) is down: tried again next step
            log.warning("cannot send swap terms %s to %s: %s", terms.terms_id, terms.peer, exc)
            return
        self.ctx.store.terms_sent(terms.terms_id)

    async def _reclaim(self, moment: float) -> None:
        """A swap whose phase 1 B bounced: its value came home to this desk; the user gets it back."""
        ctx = self.ctx
        assert ctx.desk is not None
        for swap in ctx.store.swaps(status=SwapStatus.INITIATED, side=SwapSide.A):
            m = ctx.store.message(swap.message_id)
            if m is None or m.status != OutStatus.REFUNDED:
                continue
            if moment - self._reclaimed.get(swap.swap_id, 0.0) < RECLAIM_RETRY_SECONDS:
                continue
            self._reclaimed[swap.swap_id] = moment
            try:
                receipt = await ctx.l2_sender.send(
                    ctx.desk.functions.reclaim(bytes.fromhex(swap.swap_id[2:])),
                    what=f"reclaim {swap.swap_id}",
                )
            except (Reverted, SendFailed) as exc:
                reason = exc.error if isinstance(exc, Reverted) else str(exc)
                ctx.metrics.failure(failure_reason("reclaim", exc))
                log.error("reclaiming swap %s failed: %s", swap.swap_id, reason)
                ctx.store.swap_step_failed(swap.swap_id, reason)
                continue
            tx = "0x" + bytes(receipt["transactionHash"]).hex()
            ctx.store.swap_step_failed(swap.swap_id, "phase 1 bounced by the peer: reclaimed", tx)
            log.warning(
                "swap %s: phase 1 bounced by %s; X returned to %s", swap.swap_id, swap.peer, swap.user
            )
