"""The receiver: everything that arrives on this institution's topic.

An envelope must be signed by the operator (per the L1 Hub) of a chain in the peering, for that
peer's name; anything else is refused and recorded with the reason. A "messages" envelope's messages
are stored as "received", then verified off-chain before any gas is spent:

- each message is addressed to this chain and comes from the envelope's peer, to a target and in an
  asset that peer is allowed, within the peer's rate limit;
- its leaf, recomputed from its fields, reaches the batch root through its path of exactly
  log2(capacity) siblings;
- the batch proof verifies (py_ecc) against its public inputs, whose chain id and batch root are the
  ones claimed;
- the L1 Hub has that batch of that chain committed with that root.

A message that passes is "verified" (the executor takes it from there); one that fails is "refused"
with the reason, and the sender gets a receipt saying so. A message that is settled and well formed
but that the peering's rules do not allow (its target or asset) is "bouncing": the executor bounces
it, so its value goes back to the source. A bounce (value coming home) is exempt from those rules,
but must bring back a message this chain sent that peer. A batch not yet settled on L1 as far as
this daemon can see leaves its messages "received", checked again shortly. "receipts" envelopes
update this chain's outgoing messages.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

import orjson

from bridge_contracts.messages import Message
from hub.delivery import (
    BatchEvidence,
    DeliveredMessage,
    Delivery,
    DeliveryError,
    Receipt,
    delivery_from_json,
    delivery_to_json,
    message_key,
    receipts_from_json,
    receipts_to_json,
)
from hub.envelope import (
    KIND_MESSAGES,
    KIND_RECEIPTS,
    KIND_RESYNC,
    KIND_TERMS,
    Envelope,
    EnvelopeRefused,
    PeerKey,
    open_envelope,
    sender_of,
)
from proofs import merkle
from proofs.groth16.verifier import VerifierError, verify
from relayer.config import ANY, PeerConfig
from relayer.pipeline import swaps
from relayer.pipeline.context import Context, PerMinute
from relayer.store import FINAL_STATUSES, Direction, InStatus, OutStatus, ReceiptUpdate, Received

log = logging.getLogger(__name__)

CLOCK_SKEW = 300.0  # seconds an envelope's sent_at may lie ahead of this daemon's clock
RESYNC_SECONDS = 10.0  # a peer's resync is honoured at most this often
NOT_SETTLED = "not settled"  # a check's answer when L1 has not settled the batch yet: ask again later
VERDICTS_KEPT = 1024  # batch-proof verdicts remembered
BOUNCEABLE = (
    OutStatus.SETTLED,
    OutStatus.PUSHED,
    OutStatus.FORCING,
    OutStatus.FORCED,
    OutStatus.FAILED,
    OutStatus.BOUNCED,
    OutStatus.EXECUTED,
)
"""What an outgoing message may be when its bounce arrives: anything but refunded already. "executed"
too: the destination reports an execution before it is final, and one reorganised away may be
bounced after all (the bounce itself is settled on L1: the destination's Inbox did bounce it)."""


class Receiver:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # Verdicts on batch proofs, by batch and proof; bounded (a peer can send any number of proofs).
        self._verified: OrderedDict[tuple[int, int, tuple[int, ...], str], bool] = OrderedDict()
        self._arrivals = PerMinute()  # the messages taken, per peer
        self._lock = asyncio.Lock()  # one verification at a time: handle() and recheck() share rows
        self._resynced: dict[str, float] = {}  # per peer: when it last had everything pushed again

    async def peers(self) -> dict[str, PeerKey]:
        """Each peer's chain and the operator the L1 Hub has for it (read again every HUB_RECORD_TTL)."""
        keys = {}
        for peer in self.ctx.config.peers:
            try:
                record, _ = await self.ctx.hub_record(peer.chain_id)
            except Exception as exc:  # an RPC hiccup: that peer's envelopes wait for its next push
                log.warning("cannot read %s's operator from the L1 Hub: %s", peer.name, exc)
                continue
            keys[peer.name] = PeerKey(peer.chain_id, record.operator)
        return keys

    async def _open(self, raw: bytes, topic: str | None) -> Envelope:
        """The envelope in `raw`, opened (`open_envelope`), from `topic`'s sender, fresh and never seen
        before (checked last: an envelope refused for anything else leaves no trace that would refuse
        its genuine copy as a replay)."""
        ctx = self.ctx
        me, peers = ctx.config.institution, await self.peers()
        keyring = await ctx.keyring()
        try:  # off the event loop: recovering the signer and opening the box take milliseconds
            envelope = await asyncio.to_thread(open_envelope, raw, me=me, peers=peers, keyring=keyring)
        except EnvelopeRefused as exc:
            if not exc.reason.startswith("sealed to key") or not ctx.may_read_l1_again():
                raise
            # Sealed to a key of ours the cached L1 record may not show yet (a rotation): ask L1 now.
            keyring = await ctx.keyring(fresh=True)
            envelope = await asyncio.to_thread(open_envelope, raw, me=me, peers=peers, keyring=keyring)
        if topic is not None and sender_of(topic, me) != envelope.sender:
            raise EnvelopeRefused(
                f"{envelope.sender}'s envelope came on {topic}, not on its own topic",
                envelope.sender,
                envelope.chain_id,
            )
        moment, max_age = time.time(), ctx.config.bus.max_envelope_age_seconds
        if envelope.sent_at < moment - max_age:
            raise EnvelopeRefused(
                f"stale: sent {moment - envelope.sent_at:.0f} s ago, over bus.max_envelope_age_seconds "
                f"({max_age:g} s)",
                envelope.sender,
                envelope.chain_id,
            )
        if envelope.sent_at > moment + CLOCK_SKEW:
            raise EnvelopeRefused(
                f"from the future: sent_at is {envelope.sent_at - moment:.0f} s ahead of this daemon's clock",
                envelope.sender,
                envelope.chain_id,
            )
        if not ctx.store.first_sight(
            envelope.id, envelope.sender, envelope.sent_at, forget_before=moment - max_age
        ):
            raise EnvelopeRefused(
                f"replayed: envelope {envelope.id} was taken before", envelope.sender, envelope.chain_id
            )
        return envelope

    async def handle(self, raw: bytes, topic: str | None = None) -> None:
        """One envelope from the bus, from `topic` (whose sender must be the envelope's). Nothing in
        it can stop the daemon: whatever is wrong is refused and recorded."""
        ctx = self.ctx
        limit = ctx.config.bus.max_envelope_bytes
        if len(raw) > limit:
            reason = f"envelope too large: {len(raw)} bytes, the limit is {limit} (bus.max_envelope_bytes)"
            ctx.refuse(peer=None, chain_id=None, kind="envelope", reason=reason, raw=raw)
            ctx.metrics.failure("envelope too large")
            log.warning("refused an envelope: %s", reason)
            return
        try:
            envelope = await self._open(raw, topic)
        except EnvelopeRefused as exc:
            ctx.refuse(peer=exc.sender, chain_id=exc.chain_id, kind="envelope", reason=exc.reason, raw=raw)
            ctx.metrics.failure("envelope refused")  # a fixed label: the reason is the sender's text
            log.warning("refused an envelope from %s: %s", exc.sender or "?", exc.reason)
            return
        peer = ctx.peer_by_name(envelope.sender)
        assert peer is not None  # open_envelope accepts known peers only
        try:
            if envelope.kind == KIND_MESSAGES:
                async with self._lock:
                    await self._messages(peer, envelope, delivery_from_json(envelope.body))
            elif envelope.kind == KIND_RECEIPTS:
                self._receipts(peer, receipts_from_json(envelope.body), raw)
            elif envelope.kind == KIND_TERMS:
                try:
                    await swaps.on_terms(ctx, peer, envelope.body)
                except ValueError as exc:  # malformed terms, or a signature not the peer operator's
                    raise DeliveryError(str(exc)) from None
            else:
                assert envelope.kind == KIND_RESYNC
                self._resync(peer)
        except DeliveryError as exc:
            ctx.refuse(peer=peer.name, chain_id=peer.chain_id, kind=envelope.kind, reason=str(exc), raw=raw)
            ctx.metrics.failure("malformed delivery")
            log.warning("refused a %s envelope from %s: %s", envelope.kind, peer.name, exc)

    def _resync(self, peer: PeerConfig) -> None:
        """The peer asks for everything again: what waits for its receipt is pushed now, or, within
        RESYNC_SECONDS of the last time, once they have passed; a request while one waits is folded
        into it. So a peer cannot make this daemon push its backlog more often than that, and a loss of
        its envelopes soon after another is still made good."""
        moment = time.monotonic()
        last = self._resynced.get(peer.name)
        if last is None or moment >= last + RESYNC_SECONDS:
            self._resynced[peer.name] = moment
            self._push_again(peer.name)
        elif moment >= last:  # none waits: one at the end of the window
            self._resynced[peer.name] = last + RESYNC_SECONDS
            asyncio.get_running_loop().call_later(last + RESYNC_SECONDS - moment, self._push_again, peer.name)
            log.info("%s asks for everything again: due in %.1f s", peer.name, last + RESYNC_SECONDS - moment)

    def _push_again(self, peer: str) -> None:
        try:
            again = self.ctx.store.push_now(peer)
        except Exception:  # e.g. the disk full: the pushes still go out on their schedule
            log.exception("%s asks for everything again: cannot make its messages due now", peer)
            return
        log.info("%s asks for everything again: %d message(s) to push now", peer, again)
        self.ctx.wakeups.wake("pusher")

    # --- messages -------------------------------------------------------------------------------

    async def _messages(self, peer: PeerConfig, envelope: Envelope, delivery: Delivery) -> None:
        ctx = self.ctx
        answers: list[Receipt] = []
        fresh: list[DeliveredMessage] = []
        payloads: dict[str, str] = {}
        for item in delivery.messages:
            m = item.message
            key = message_key(m.source_chain_id, m.nonce)
            single = orjson.dumps(delivery_to_json(Delivery(delivery.batch, (item,))))
            if m.source_chain_id != peer.chain_id:  # before anything is looked up for it
                reason = (
                    f"wrong source chain: {key} claims chain {m.source_chain_id}; "
                    f"{peer.name} is {peer.chain_id}"
                )
                ctx.refuse(
                    peer=peer.name, chain_id=m.source_chain_id, kind="message", reason=reason, raw=single
                )
                ctx.metrics.failure("wrong source chain")
                continue
            known = ctx.store.message(key)
            if known is not None:
                if known.direction == Direction.IN and known.status in FINAL_STATUSES:
                    answers.append(Receipt(key, str(known.status), known.exec_tx, known.error))
                continue  # a duplicate: the first copy is being handled
            malformed = _malformed(m)
            if malformed is not None:  # it cannot even be stored: refused, with a receipt saying why
                ctx.refuse(
                    peer=peer.name, chain_id=m.source_chain_id, kind="message", reason=malformed, raw=single
                )
                ctx.metrics.failure("malformed message")
                answers.append(Receipt(key, "refused", None, malformed))
                continue
            # Postponed before it is stored, with no receipt: the sender pushes it again later.
            postponed = self._postpone(peer, m)
            if postponed is not None:
                ctx.refuse(
                    peer=peer.name, chain_id=m.source_chain_id, kind="message", reason=postponed, raw=single
                )
                ctx.metrics.failure(postponed.split(":")[0])
                continue
            fresh.append(item)
            payloads[key] = single.decode()
        new = set(
            ctx.store.receive(
                peer.name,
                [Received(i.message, payloads[_key(i)]) for i in fresh],
                f"from {peer.name} in envelope {envelope.id}",
            )
        )
        answers += await self._verify(peer, delivery.batch, [i for i in fresh if _key(i) in new])
        if answers:
            await send_receipts(ctx, peer.name, answers)

    async def _verify(
        self, peer: PeerConfig, batch: BatchEvidence, items: list[DeliveredMessage]
    ) -> list[Receipt]:
        """Check stored "received" messages of one batch; the ones that pass become "verified" and the
        refused "refused", in one store step (so the executor takes the verified in one round); the
        refused get a receipt. A batch L1 has not settled yet leaves its messages "received"."""
        if not items:
            return []  # nothing new: no proof is checked for duplicates
        verified: list[str] = []
        refused: dict[str, str] = {}
        bouncing: dict[str, str] = {}
        batch_verdict = await self._check_batch(batch)
        bad_batch = None if batch_verdict == NOT_SETTLED else batch_verdict
        node_hash = functools.cache(merkle.poseidon_node)  # the paths of one batch share their upper nodes
        for item in items:
            key, m = _key(item), item.message
            # A bad batch refuses all its messages; a batch not settled yet leaves the good ones waiting.
            refusal = (
                self._misaddressed(m)
                or bad_batch
                or self._check_path(batch, item, node_hash)
                or batch_verdict
            )
            if refusal is None:
                rule = peering_rule(self.ctx, peer, m)
                if rule is None:
                    verified.append(key)
                elif m.is_bounce:  # a refund is never bounced back
                    refusal = rule
                else:  # settled, but not allowed here: its value goes home
                    bouncing[key] = rule
                    self.ctx.metrics.failure("bounced: " + rule.split(":")[0])
                    log.warning("message %s from %s is to be bounced: %s", key, peer.name, rule)
            if refusal is not None and refusal != NOT_SETTLED:
                refused[key] = refusal
                self.ctx.metrics.failure(refusal.split(":")[0])
                log.warning("refused message %s from %s: %s", key, peer.name, refusal)
        self.ctx.store.record_verdicts(verified=verified, refused=refused, bouncing=bouncing)
        if verified or bouncing:
            self.ctx.wakeups.wake("executor")
        return [Receipt(key, "refused", None, reason) for key, reason in refused.items()]

    def _postpone(self, peer: PeerConfig, m: Message) -> str | None:
        """Why a message cannot be taken now (it is not stored; the sender pushes it again), or None:
        the peer's rate limit."""
        if self._arrivals.count(peer.name) >= peer.rate_limit_per_minute:
            return f"rate limit: {peer.name} sent more than {peer.rate_limit_per_minute} messages in a minute"
        self._arrivals.add(peer.name)
        return None

    def _misaddressed(self, m: Message) -> str | None:
        """Why this chain can neither execute nor bounce the message, or None."""
        if m.dest_chain_id != self.ctx.chain_id:
            return f"wrong destination: chain {m.dest_chain_id}, this is chain {self.ctx.chain_id}"
        return None

    async def _check_batch(self, batch: BatchEvidence) -> str | None:
        """The checks of a batch as a whole: None if L1 settled it with that root and its proof
        verifies, NOT_SETTLED if L1 has not settled it yet (or this daemon cannot check its proof yet),
        otherwise the reason its messages are refused. L1 is asked first: it is cheap, and a batch it
        does not hold costs no proof check."""
        try:
            depth = merkle.batch_depth(batch.capacity)
        except merkle.MerkleError as exc:
            return f"bad batch: {exc}"
        record = await self.ctx.hub_batch(batch.chain_id, batch.batch_number)
        if not record.committed:
            return NOT_SETTLED
        if record.batch_root != batch.batch_root or record.depth != depth:
            return f"not on L1: L1 has batch {batch.batch_number} of chain {batch.chain_id} with another root"
        return await self._proof_verifies(batch)

    @staticmethod
    def _check_path(
        batch: BatchEvidence,
        item: DeliveredMessage,
        node_hash: Callable[[int, int], int] = merkle.poseidon_node,
    ) -> str | None:
        """Whether one message belongs to the batch: its leaf, recomputed, reaches the batch root
        through exactly log2(capacity) siblings."""
        m = item.message
        if batch.chain_id != m.source_chain_id:
            return (
                f"bad batch: the batch is chain {batch.chain_id}'s, the message chain {m.source_chain_id}'s"
            )
        try:
            depth = merkle.batch_depth(batch.capacity)
        except merkle.MerkleError as exc:
            return f"bad batch: {exc}"
        if len(item.siblings) != depth:
            return (
                f"bad path: {len(item.siblings)} siblings, a batch of capacity {batch.capacity} needs {depth}"
            )
        try:
            reached = merkle.poseidon_root_from_path(m.leaf(), item.index, item.siblings, node_hash)
        except (ValueError, merkle.MerkleError) as exc:
            return f"bad path: {exc}"
        if reached != batch.batch_root:
            return "bad path: the message's leaf does not reach the batch root"
        return None

    async def _proof_verifies(self, batch: BatchEvidence) -> str | None:
        key = (batch.chain_id, batch.batch_number, batch.public_inputs, repr(batch.proof))
        if key not in self._verified:
            if (batch.public.chain_id, batch.public.batch_number) != (batch.chain_id, batch.batch_number):
                return "bad proof: its public inputs are for another chain or batch"
            try:
                vk = self.ctx.verifying_key(batch.capacity)
            except (OSError, ValueError) as exc:  # this daemon's own fault: the messages wait
                log.error("no verifying key for capacity %d: %s", batch.capacity, exc)
                return NOT_SETTLED
            try:
                self._verified[key] = await asyncio.to_thread(verify, vk, batch.public_inputs, batch.proof)
            except VerifierError as exc:
                return f"bad proof: {exc}"
            while len(self._verified) > VERDICTS_KEPT:
                self._verified.popitem(last=False)
        self._verified.move_to_end(key)
        return None if self._verified[key] else "bad proof: the batch proof does not verify"

    # --- receipts -------------------------------------------------------------------------------

    def _receipts(self, peer: PeerConfig, receipts: list[Receipt], raw: bytes) -> None:
        updates = [ReceiptUpdate(r.id, OutStatus(r.status), r.tx, r.reason) for r in receipts]
        for problem in self.ctx.store.record_receipts(peer.name, updates):
            self.ctx.refuse(peer=peer.name, chain_id=peer.chain_id, kind="receipt", reason=problem, raw=raw)

    async def recheck(self) -> float:
        """Check again the messages whose batch L1 had not settled when they arrived."""
        async with self._lock:
            return await self._recheck()

    async def _recheck(self) -> float:
        groups: dict[tuple[str, int], tuple[BatchEvidence, list[DeliveredMessage]]] = {}
        for m in self.ctx.store.messages(direction="in", status=InStatus.RECEIVED):
            if m.payload and self.ctx.peer_by_name(m.peer) is not None:  # else it waits for the peering
                delivery = delivery_from_json(orjson.loads(m.payload))
                group = groups.setdefault((m.peer, delivery.batch.batch_number), (delivery.batch, []))
                group[1].extend(delivery.messages)
        for (name, _), (batch, items) in groups.items():
            peer = self.ctx.peer_by_name(name)
            assert peer is not None
            refused = await self._verify(peer, batch, items)
            if refused:
                await send_receipts(self.ctx, name, refused)
        return self.ctx.config.l1.poll_seconds


def peering_rule(ctx: Context, peer: PeerConfig, m: Message) -> str | None:
    """The peering's rules for one settled message; None if it may be executed. A bounce (value
    coming home) is exempt from them, but must bring back a message this chain sent that peer."""
    if m.is_bounce:
        original = ctx.store.original_of(m)
        if original is None or original.peer != peer.name:
            return f"bad bounce: {peer.name} bounces a message this chain never sent it"
        if original.status not in BOUNCEABLE:
            return f"bad bounce: {peer.name} bounces {original.id}, which is {original.status} here"
        if original.status == OutStatus.EXECUTED:
            log.warning(
                "%s bounces %s, which it reported executed: its execution was undone",
                peer.name,
                original.id,
            )
        return None
    desk, theirs = ctx.config.chain.contracts.swap_desk, peer.swap_desk
    if desk and theirs and (m.sender.lower(), m.target.lower()) == (theirs.lower(), desk.lower()):
        return None  # a swap between the two desks: the terms both operators signed govern it
    if swaps.bounce_refusal(ctx.config, m) is not None:
        return None  # a swap's result is never bounced (its desk or peering changed): the desk checks it
    if ANY not in peer.allowed_targets and m.target.lower() not in {t.lower() for t in peer.allowed_targets}:
        return f"target not allowed: {peer.name} may not call {m.target}"
    if (
        m.amount
        and ANY not in peer.allowed_assets
        and "0x" + m.asset_id.hex() not in {a.lower() for a in peer.allowed_assets}
    ):
        return f"asset not allowed: {peer.name} may not send 0x{m.asset_id.hex()}"
    return None


def _key(item: DeliveredMessage) -> str:
    return message_key(item.message.source_chain_id, item.message.nonce)


def _malformed(m: Message) -> str | None:
    """Why a message's fields cannot make a leaf (e.g. an amount without an asset), or None."""
    try:
        m.leaf()
    except ValueError as exc:
        return f"malformed message: {exc}"
    return None


async def send_receipts(ctx: Context, peer: str, receipts: list[Receipt]) -> None:
    if ctx.peer_by_name(peer) is None:
        return  # an L1 deposit, or a peer removed since: nobody to tell
    await ctx.send(peer, KIND_RECEIPTS, receipts_to_json(receipts))
