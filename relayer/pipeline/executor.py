"""The executor: runs verified messages on this chain through its Inbox.

It takes the L1 Hub's latest aggregated root (the hub service says which; L1 itself confirms it),
fetches the aggregated-tree path of each batch its messages are in against it from the hub service
(once per batch), and calls `Inbox.executeBatchesWithRoot` (which imports the root if it is new there,
in the same transaction) for up to `MAX_PER_TX` messages at a time, grouped by (source chain, batch):
each group goes with one multiproof of its messages' leaves in their batch tree, made from the single
batch paths the messages are stored with (`bridge_contracts.messages.batch_groups`), and its batch's one
aggregated path, so the Inbox hashes every node once per round (docs/protocol.md, "A round by batch").
A group the Inbox cannot verify has all its messages rejected, and no other (each stored path was
checked against its batch's root on L1 when the message arrived, so a group's multiproof verifies; two
messages at one position go to groups of their own). The messages are marked "executing" before the
transaction is sent; after a restart, the Inbox's nullifiers say which of them were executed. Each
message's outcome comes from the transaction's events: executed, failed (the target reverted: nothing
was applied, and `xrelay replay` runs it again) or rejected by the Inbox. The sender gets a receipt
for each.

Messages to be bounced ("bouncing": settled, but refused by a peering rule or given up by the
operator) go into `Inbox.bounceManyWithRoot` with a proof each, which sends their value home; the
sender gets a "bounced" receipt.

Each execution and bounce is confirmed once its block is final on this chain (the outbox watcher
keeps the final head): the Inbox must still have the message processed at that block, else the
transaction was reorganised away and the message is done again.

Operations of this chain's L1 priority queue (messages forced to it) come first, in queue order, from
the Inbox's priority cursor on (`Inbox.processPriorityOps`): each is executed, or bounced when the
peering refuses it, or only counted when it was executed or bounced before; all of them are processed,
a failed execution too (it stays replayable). The operations are marked "processing" before the
transaction is sent; after a restart, the Inbox's cursor says which were processed. A message that
is a pending operation is never executed outside its turn in the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from web3.exceptions import TransactionNotFound
from web3.logs import DISCARD
from web3.types import TxReceipt

from bridge_contracts.chain import Reverted, decode_revert
from bridge_contracts.messages import Message, MessageProof, batch_groups
from hub.client import HubClientError
from hub.delivery import Receipt, delivery_from_json
from relayer.pipeline.context import Context, now
from relayer.pipeline.priority import resolve_unreadable
from relayer.pipeline.receiver import send_receipts
from relayer.pipeline.swaps import bounce_refusal
from relayer.sender import failure_reason
from relayer.store import (
    EXECUTABLE,
    PENDING_PRIORITY,
    InStatus,
    Outcome,
    PriorityOp,
    PriorityStatus,
    QueuedOp,
    StoredMessage,
)

log = logging.getLogger(__name__)

MAX_PER_TX = 128  # plain messages: about 20M gas from one batch; a round too big for a block is halved
GROW_AFTER = 8  # rounds that landed at a smaller size before the size doubles again
OUT_OF_GAS = ("out of gas", "gas required exceeds", "exceeds block gas limit", "no reason given")
"""How a round too big for a block fails (its gas runs out in the Inbox's own work, before the
starvation check could say NotEnoughGas): the round is halved."""
BRIDGED_TOKEN_DEPLOY_GAS = 1_500_000  # a BridgedToken's deployment costs about 1.2M


def _place(m: StoredMessage) -> tuple[int, int, int]:
    """(source chain, batch number, index in batch) of a stored incoming message."""
    number, index, _, _ = _proof_source(m.message, m.payload)
    return m.message.source_chain_id, number, index


def _proof_source(message: Message, stored: str | None) -> tuple[int, int, tuple[int, ...], int | None]:
    """(batch number, index in batch, batch siblings, aggregated leaf index) of an incoming message
    from the payload it is stored with; the leaf index is known from it only for an L1 deposit (None
    otherwise)."""
    assert stored is not None
    payload = orjson.loads(stored)
    if "deposit" in payload:
        return message.nonce, 0, (), int(payload["deposit"]["leaf_index"])
    if "forced" in payload:
        forced = payload["forced"]
        return (
            int(forced["batch_number"]),
            int(forced["index"]),
            tuple(int(s) for s in forced["siblings"]),
            None,
        )
    item = delivery_from_json(payload)
    return item.batch.batch_number, item.messages[0].index, item.messages[0].siblings, None


STARVING = (
    "its execution uses up every gas it is given, at any limit (or floods it with revert data): not executed"
)
PRIORITY_PER_TX = 4
"""Operations per processPriorityOps at most: each may use its whole Inbox.PRIORITY_EXECUTION_GAS (5M),
and a round must fit a block (30M on the devnet and on Ethereum)."""
PRIORITY_OUTCOMES = {0: "executed", 1: "failed", 3: "bounced", 4: "closed"}
"""Inbox.processPriorityOps's outcome codes."""


class _Proofs:
    """Each message's MessageProof against one aggregated root (of `size` leaves), its batch's
    aggregated leaf and path fetched once per round."""

    def __init__(self, ctx: Context, root: bytes, size: int) -> None:
        self.ctx, self.root, self.size = ctx, root, size
        self._leaves: dict[tuple[int, int], int] = {}  # (source, batch) -> aggregated leaf index
        self._paths: dict[int, tuple[bytes, ...]] = {}  # aggregated leaf index -> its path at `size`

    async def of(self, message: Message, payload: str | None) -> MessageProof | None:
        """The proof of a message stored with `payload`; None if its batch is not in the tree yet."""
        number, index, siblings, deposit_leaf = _proof_source(message, payload)
        source = message.source_chain_id
        if (source, number) not in self._leaves:
            if deposit_leaf is not None:
                self._leaves[source, number] = deposit_leaf
            else:
                self._leaves[source, number] = (await self.ctx.hub_batch(source, number)).leaf_index
        leaf_index = self._leaves[source, number]
        if leaf_index >= self.size:
            return None
        if leaf_index not in self._paths:
            self._paths[leaf_index] = tuple((await self.ctx.hub_client.proof(leaf_index, self.size)).siblings)
        return MessageProof(number, index, siblings, leaf_index, self._paths[leaf_index], self.root)


class Executor:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._round = MAX_PER_TX  # messages per round: halved while no gas limit runs one
        self._landed = 0  # rounds landed at the current smaller size
        self._priority_round = PRIORITY_PER_TX  # halved while rounds are refused, back after one lands

    async def recover(self) -> None:
        """After a restart: settle what a transaction in flight did to "executing" messages."""
        outcomes = []
        for m in self.ctx.store.messages(direction="in", status=InStatus.EXECUTING):
            if await self.ctx.call(self.ctx.inbox.functions.executed(m.message.id())):
                outcomes.append(
                    Outcome(m.id, InStatus.EXECUTED, "found executed on the Inbox after a restart")
                )
            else:
                outcomes.append(
                    Outcome(m.id, InStatus.VERIFIED, "not executed before the restart; to run again")
                )
        head = await asyncio.to_thread(lambda: self.ctx.l2.w3.eth.block_number)
        self.ctx.store.record_outcomes(outcomes, tx=None, gas_each=None, block=head)  # confirmed past it
        processing = self.ctx.store.priority_ops(status=PriorityStatus.PROCESSING)
        if processing:
            cursor = int(await self.ctx.call(self.ctx.inbox.functions.priorityCursor()))
            await self._processed_before([op for op in processing if op.index < cursor])
            self.ctx.store.priority_not_sent(
                [op.index for op in processing if op.index >= cursor], "not processed before the restart"
            )

    async def confirm(self) -> None:
        """Executions and bounces whose block is final now must still be in the chain: their
        transaction's receipt in a final block of the chain as it is, and the Inbox's nullifier set.
        One reorganised away is done again (the nullifier makes that safe). Only receipts and the
        latest state are read (no archive node needed); a failure here is logged and never stops
        execution."""
        ctx = self.ctx
        watcher = ctx.watchers.get("outbox")
        final = None if watcher is None else watcher.final_head
        if final is None:
            return
        confirmed, undone = [], []
        transactions: dict[str, bool | None] = {}  # each round's transaction is read once a pass
        try:
            for m in ctx.store.unconfirmed(final):
                verdict = await self._still_there(m, final, transactions)
                if verdict is True:
                    confirmed.append(m.id)
                elif verdict is False:
                    undone.append(m.id)
                    ctx.metrics.failure("execution reorganised away")
                    log.error(
                        "%s: its %s in %s was reorganised away; doing it again", m.id, m.status, m.exec_tx
                    )
        except Exception as exc:  # an RPC hiccup: checked again at the next step
            log.warning("confirming executions failed: %s", exc)
        if confirmed or undone:
            ctx.store.confirm_outcomes(confirmed, undone)
        if undone:
            if ctx.store.priority_ops(limit=1):  # a priority round among them: its operations go again
                cursor = int(await ctx.call(ctx.inbox.functions.priorityCursor()))
                ctx.store.requeue_priority(cursor, f"reorganised away (the Inbox's cursor is {cursor})")
            ctx.wakeups.wake("executor")

    async def _still_there(
        self, m: StoredMessage, final: int, transactions: dict[str, bool | None]
    ) -> bool | None:
        """True when m's execution or bounce is final in the chain; False when the chain lost it;
        None when its transaction is in a block that is not final yet. `transactions`: what is
        known of each transaction already (a round's messages share one)."""
        ctx = self.ctx
        if m.exec_tx is not None:
            if m.exec_tx not in transactions:
                transactions[m.exec_tx] = await self._transaction_final(m.exec_tx, final)
            if transactions[m.exec_tx] is not True:
                return transactions[m.exec_tx]
        message_id = m.message.id()
        done = await ctx.call(ctx.inbox.functions.executed(message_id))
        bounced = await ctx.call(ctx.inbox.functions.bounced(message_id))
        return bool(done) and bounced == (m.status == InStatus.BOUNCED)

    async def _transaction_final(self, tx: str, final: int) -> bool | None:
        """True when transaction `tx` succeeded in a block of the chain as it is, at or below `final`;
        False when the chain lost it (or it failed); None when its block is not final yet."""
        w3 = self.ctx.l2.w3
        try:
            receipt = await asyncio.to_thread(w3.eth.get_transaction_receipt, tx)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        if receipt["blockNumber"] > final:
            return None  # mined again in a later block: wait for it
        block = await asyncio.to_thread(w3.eth.get_block, receipt["blockNumber"])
        return bytes(block["hash"]) == bytes(receipt["blockHash"]) and receipt["status"] == 1

    async def step(self) -> float | None:
        ctx, moment, poll = self.ctx, now(), self.ctx.config.l1.poll_seconds
        await self.confirm()
        ops = ctx.store.priority_ops(status=PENDING_PRIORITY)
        # Executed in their turn in the queue, never before (also a copy the bus brought of one whose
        # sealed body could not be read: the same place in the same batch).
        places = {(op.source_chain_id, op.batch_number, op.index_in_batch) for op in ops}
        waiting = [
            m
            for m in ctx.store.messages(direction="in", status=[*EXECUTABLE, InStatus.BOUNCING])
            if not places or _place(m) not in places
        ]
        ready = [m for m in waiting if m.due <= moment]
        if not ready and not ops:
            return min([poll, *(m.due - moment for m in waiting)])
        try:
            status = await ctx.hub_client.status()
        except HubClientError as exc:
            log.warning("hub service unavailable: %s", exc)
            return poll
        size, root = int(status["aggregated_size"]), bytes.fromhex(str(status["aggregated_root"])[2:])
        if size == 0 or not await ctx.call(ctx.hub.functions.isAggregatedRoot(root)):
            return poll  # the hub service is ahead of (or apart from) L1 as this daemon sees it
        if ops and await self._priority(ops, root, size):
            return None
        if not ready:
            return min([poll, *(m.due - moment for m in waiting)])
        proofs = _Proofs(ctx, root, size)
        work = []
        for m in ready[: self._round]:
            proof = await proofs.of(m.message, m.payload)
            if proof is not None:  # else settled after the root the hub service has: next round
                work.append((m, proof))
        if not work:
            return poll  # a newer root is announced on the bus and wakes this step
        bounces = [w for w in work if w[0].status == InStatus.BOUNCING]
        if bounces:
            await self._bounce(root, bounces)
        if len(bounces) < len(work):
            await self._execute(root, [w for w in work if w[0].status != InStatus.BOUNCING])
        return None

    async def _priority(self, ops: list[PriorityOp], root: bytes, size: int) -> bool:
        """Process the next operations of this chain's priority queue, in order, in one transaction;
        True if one was sent. Each goes with its own message (the one L1 queued) and its priority id."""
        ctx = self.ctx
        cursor = int(await ctx.call(ctx.inbox.functions.priorityCursor()))
        behind = [op for op in ops if op.index < cursor]
        if behind:  # processed by a transaction this store did not record
            await self._processed_before(behind)
        if ctx.store.requeue_priority(cursor, f"not processed on the Inbox (its cursor is {cursor})"):
            log.error("priority operations from %d were undone on this chain: processing them again", cursor)
            return False
        proofs = _Proofs(ctx, root, size)
        work: list[tuple[PriorityOp, StoredMessage | None, MessageProof]] = []
        for op in ops:
            if op.index < cursor:
                continue
            if op.index != cursor + len(work) or op.due > now() or len(work) == self._priority_round:
                break  # the watcher has not read the next one yet, or it waits for a retry
            if op.status == PriorityStatus.UNREADABLE:
                await self._resolve(op)
                break  # the queue stops here until the message is had (DeadlineWatch warns)
            assert op.message is not None and op.payload is not None
            proof = await proofs.of(op.message, op.payload)
            if proof is None:
                break  # its batch is newer than the root the hub service has: next round
            work.append((op, self._stored(op), proof))
        if not work:
            return False
        indexes = [op.index for op, _, _ in work]
        ctx.store.start_priority(indexes)
        items = []
        for op, m, proof in work:
            assert op.message is not None
            bounce = op.bounce or ""
            if m is not None and m.status == InStatus.BOUNCING:
                bounce = (m.error or "bounced")[:500]
            items.append((op.priority_id, op.message.as_tuple(), proof.as_tuple(), bounce))
        receipt = await self._send(
            ctx.inbox.functions.processPriorityOps(root, cursor, items),
            f"processPriorityOps {indexes[0]}..{indexes[-1]}",
            [str(i) for i in indexes],
            not_sent=lambda _, reason: ctx.store.priority_not_sent(indexes, reason),
            failure="priority",
            deploying=[op.message for op, _, _ in work if op.message is not None],
        )
        if receipt is None:
            self._priority_round = max(1, len(work) // 2)  # a round too big for a block: smaller ones
        else:
            self._priority_round = PRIORITY_PER_TX
            await self._priority_outcomes(work, receipt)
        return True

    def _stored(self, op: PriorityOp) -> StoredMessage | None:
        """The store's message under the operation's message id, if it is the operation's message (a
        chain that settled two messages under one id gets the one L1 queued processed, and only that)."""
        m = None if op.message_id is None else self.ctx.store.message(op.message_id)
        if m is not None and m.leaf == op.leaf:
            return m
        log.error(
            "priority operation %d: the store has another message under its id %s", op.index, op.message_id
        )
        return None

    async def _priority_outcomes(
        self, work: list[tuple[PriorityOp, StoredMessage | None, MessageProof]], receipt: TxReceipt
    ) -> None:
        """A processPriorityOps transaction's outcomes: recorded in one store step, and the receipts sent."""
        ctx = self.ctx
        tx, gas_each = receipt["transactionHash"].to_0x_hex(), receipt["gasUsed"] // len(work)
        found = self._outcomes(receipt)
        codes = {
            event["args"]["index"]: event["args"]["outcome"]
            for event in ctx.inbox.events.PriorityOpProcessed().process_receipt(receipt, errors=DISCARD)
        }
        outcomes: dict[int, tuple[str, str]] = {}
        receipts: dict[str, list[Receipt]] = {}
        for op, m, _ in work:
            assert op.message is not None and op.message_id is not None
            outcome = PRIORITY_OUTCOMES.get(codes.get(op.index, -1), "missing")
            reason = found.get(op.message.id(), ("", ""))[1]
            if outcome == "closed":
                reason = await self._closed_as(op.message)
            elif outcome == "missing":
                log.error("priority operation %d: no PriorityOpProcessed event in %s", op.index, tx)
                continue
            outcomes[op.index] = (outcome, reason)
            status = reason if outcome == "closed" else outcome
            if m is None:
                continue  # not the store's message: nobody to tell
            if status == "executed":
                ctx.metrics.executed(m.peer)
            receipts.setdefault(m.peer, []).append(
                Receipt(m.id, status, tx, None if status == "executed" else reason or m.error)
            )
        ctx.store.record_priority_outcomes(outcomes, tx=tx, gas_each=gas_each, block=receipt["blockNumber"])
        for peer, answers in receipts.items():
            await send_receipts(ctx, peer, answers)
        log.info("processed priority operations %d..%d in %s", work[0][0].index, work[-1][0].index, tx)

    async def _resolve(self, op: PriorityOp) -> None:
        """An unreadable operation: queued with its message if the bus brought it since; else looked for
        again on the retry policy."""
        queued = QueuedOp(
            index=op.index,
            priority_id=op.priority_id,
            source_chain_id=op.source_chain_id,
            batch_number=op.batch_number,
            index_in_batch=op.index_in_batch,
            deadline=op.deadline,
            rolling_hash=op.rolling_hash,
            block_number=op.block_number,
            peer=self.ctx.peer_name(op.source_chain_id),
            message=None,
        )
        batch = await self.ctx.hub_batch(op.source_chain_id, op.batch_number)
        found = resolve_unreadable(self.ctx, queued, op.error or "unreadable", batch)
        if found.message is not None and self.ctx.store.resolve_priority_op(found):
            self.ctx.wakeups.wake("executor")
        else:
            self.ctx.store.unreadable_again(op.index, found.problem or "unreadable")

    async def _processed_before(self, ops: list[PriorityOp]) -> None:
        """Operations the Inbox's cursor has passed but the store does not have processed (a transaction
        in flight at a crash): processed, each as the Inbox's nullifiers say of its message."""
        outcomes: dict[int, tuple[str, str]] = {}
        for op in ops:
            if op.message is None:
                continue
            if await self.ctx.call(self.ctx.inbox.functions.executed(op.message.id())):
                outcomes[op.index] = ("closed", await self._closed_as(op.message))
            else:
                outcomes[op.index] = (
                    "failed",
                    "processed on the Inbox before a restart; its execution failed",
                )
        self.ctx.store.record_priority_outcomes(outcomes, tx=None, gas_each=None, block=None)

    async def _bounce(self, root: bytes, work: list[tuple[StoredMessage, MessageProof]]) -> None:
        """Bounce settled messages this chain will never execute: the Inbox marks each processed and
        sends its value back to the source through this chain's Outbox (`Inbox.bounceManyWithRoot`)."""
        ctx = self.ctx
        ids = [m.id for m, _ in work]
        fn = ctx.inbox.functions.bounceManyWithRoot(
            root,
            [m.message.as_tuple() for m, _ in work],
            [proof.as_tuple() for _, proof in work],
            [(m.error or "bounced")[:500] for m, _ in work],
        )
        receipt = await self._send(
            fn, f"bounceMany of {len(work)}", ids, not_sent=ctx.store.bounce_not_done, failure="bounce"
        )
        if receipt is None:
            return
        tx, gas_each = receipt["transactionHash"].to_0x_hex(), receipt["gasUsed"] // len(work)
        found = self._outcomes(receipt)
        bounced: dict[str, str] = {}
        executed: dict[str, str] = {}
        rejected: dict[str, str] = {}
        receipts: dict[str, list[Receipt]] = {}
        for m, _ in work:
            kind, reason = found.get(m.message.id(), ("rejected", "no event"))
            if kind != "executed" and await self._nullified(m.message, receipt["blockNumber"]):
                # The Inbox's events are not the record: a target may make the Inbox reject any id
                # (an executeMany of its own with a bogus proof), inside this very round. Its
                # nullifier at the round's block is.
                kind, reason = "rejected", "AlreadyExecuted (its nullifier is set)"
            if kind == "rejected" and reason.startswith("AlreadyExecuted"):
                kind = await self._closed_as(m.message)
                if kind == "executed":
                    executed[m.id] = "executed by someone else before it was bounced"
                    receipts.setdefault(m.peer, []).append(Receipt(m.id, "executed", None, None))
                    continue
            if kind == "bounced":
                bounced[m.id] = f"bounced in {tx}: {m.error or 'bounced'}"
                receipts.setdefault(m.peer, []).append(Receipt(m.id, "bounced", tx, m.error))
            else:
                rejected[m.id] = reason
                log.error("bounce of %s rejected: %s", m.id, reason)
        ctx.store.record_bounces(
            bounced,
            executed=executed,
            rejected=rejected,
            tx=tx,
            gas_each=gas_each,
            block=receipt["blockNumber"],
        )
        for peer, items in receipts.items():
            await send_receipts(ctx, peer, items)  # nobody is told of an L1 deposit's
        log.info("bounced %d message(s) in %s", len(bounced), tx)

    async def _execute(self, root: bytes, work: list[tuple[StoredMessage, MessageProof]]) -> None:
        ctx = self.ctx
        ids = [m.id for m, _ in work]
        groups = batch_groups((m.message, proof) for m, proof in work)  # each batch's messages together
        ctx.store.start_execution(ids)
        fn = ctx.inbox.functions.executeBatchesWithRoot(  # imports the root too, if it is new
            root,
            [message.as_tuple() for group in groups for message in group.messages],
            [group.proof.as_tuple() for group in groups],
        )
        failures: list[str] = []

        def not_sent(not_executed: Sequence[str], reason: str) -> None:
            failures.append(reason)
            ctx.store.execution_not_sent(not_executed, reason)

        receipt = await self._send(
            fn,
            f"executeBatches of {len(work)} ({len(groups)} batches)",
            ids,
            not_sent=not_sent,
            failure="execute",
            deploying=[m.message for m, _ in work],
        )
        if receipt is None:
            reason = failures[0] if failures else ""
            if reason.startswith("NotEnoughGas"):
                await self._starving([m for m, _ in work])
            elif len(work) > 1 and any(sign in reason.lower() for sign in OUT_OF_GAS):
                self._round, self._landed = max(1, len(work) // 2), 0
                log.warning("a round of %d does not fit a block: rounds of %d", len(work), self._round)
            return
        if self._round < MAX_PER_TX:
            self._landed += 1
            if self._landed >= GROW_AFTER:
                self._round, self._landed = min(MAX_PER_TX, 2 * self._round), 0
        tx, gas_each = receipt["transactionHash"].to_0x_hex(), receipt["gasUsed"] // len(work)
        found = self._outcomes(receipt)
        outcomes: list[Outcome] = []
        receipts: dict[str, list[Receipt]] = {}
        for m, _ in work:
            kind, reason = await self.outcome(m.message, found, receipt["blockNumber"])
            if kind in ("executed", "already executed"):
                outcomes.append(
                    Outcome(
                        m.id,
                        InStatus.EXECUTED,
                        f"executed in {tx}" if kind == "executed" else "already executed",
                    )
                )
                ctx.metrics.executed(m.peer)
                status = "executed"
            else:
                outcomes.append(Outcome(m.id, InStatus.FAILED, f"{kind} in {tx}: {reason}"))
                ctx.metrics.failure(
                    "target reverted" if kind == "failed" else f"rejected {reason.split('(')[0]}"
                )
                status = "failed"
            receipts.setdefault(m.peer, []).append(
                Receipt(m.id, status, tx, None if status == "executed" else reason)
            )
        ctx.store.record_outcomes(outcomes, tx=tx, gas_each=gas_each, block=receipt["blockNumber"])
        for peer, items in receipts.items():
            await send_receipts(ctx, peer, items)  # nobody is told of an L1 deposit's
        log.info("executed %d message(s) in %s", len(work), tx)

    async def _send(
        self,
        fn: Any,
        what: str,
        ids: list[str],
        *,
        not_sent: Callable[[Sequence[str], str], None],
        failure: str,
        deploying: list[Message] | None = None,
    ) -> TxReceipt | None:
        """Send one round's transaction; if it is refused or not mined, the store step `not_sent`
        puts its messages back to be tried again, and None is returned. `deploying`: the round's messages,
        for the gas of the BridgedTokens it deploys."""
        try:
            extra = 0 if deploying is None else await self._deployments(deploying)
            return await self.ctx.l2_sender.send(fn, what=what, extra_gas=extra, until_fed=True)
        except Exception as exc:
            reason = exc.error if isinstance(exc, Reverted) else str(exc)
            not_sent(ids, reason)
            self.ctx.metrics.failure(failure_reason(failure, exc))
            log.error("%s failed: %s", what, reason)
            return None

    async def _starving(self, messages: list[StoredMessage]) -> None:
        """An execute round that the node refuses at every gas limit (NotEnoughGas): the round does
        not fit a block, or a message in it starves its transaction (its target uses up every gas it
        is given, or floods it with revert data) and would hold up every round it is in. Rounds are
        halved until they fit, or until that message is alone; then it is failed without being
        executed (the operator may bounce it home). Rounds grow back after GROW_AFTER land."""
        ctx = self.ctx
        if len(messages) > 1:
            self._round, self._landed = max(1, len(messages) // 2), 0
            log.warning(
                "an execute round of %d runs out of gas at every limit: rounds of %d",
                len(messages),
                self._round,
            )
            return
        m = messages[0]
        refusal = bounce_refusal(ctx.config, m.message)
        reason = f"{STARVING}; " + (
            "`xrelay bounce` sends its value home" if refusal is None else "replay it once its cause is fixed"
        )
        if ctx.store.unexecutable(m.id, reason):
            ctx.metrics.failure("execute: starves every round")
            log.error("message %s: %s", m.id, reason)
            await send_receipts(ctx, m.peer, [Receipt(m.id, "failed", None, reason)])
        self._round = MAX_PER_TX

    async def outcome(
        self, message: Message, found: dict[bytes, tuple[str, str]], block: int
    ) -> tuple[str, str]:
        """(kind, reason) of a message in a round that landed in `block`, from the round's events
        (`found`, by `_outcomes`): "executed", "already executed", "failed" or "rejected"."""
        kind, reason = found.get(message.id(), ("rejected", "no event"))
        if kind != "executed" and await self._nullified(message, block):
            # The Inbox's events are not the record: a target may make the Inbox reject any id (an
            # executeMany of its own with a bogus proof) inside this very round. Its nullifier is.
            kind, reason = "rejected", "AlreadyExecuted (its nullifier is set)"
        if kind == "rejected" and reason.startswith("AlreadyExecuted"):
            if await self._closed_as(message) == "bounced":
                reason = "bounced already: never executed here"
            else:
                kind = "already executed"
        return kind, reason

    async def _nullified(self, message: Message, block: int) -> bool:
        """Whether the Inbox had the message executed (or bounced) as of `block`."""
        fn = self.ctx.inbox.functions.executed(message.id())
        return bool(await asyncio.to_thread(fn.call, block_identifier=block))

    async def _closed_as(self, message: Message) -> str:
        """What a closed message (the Inbox's AlreadyExecuted, or CLOSED) was: "bounced" or "executed"."""
        return (
            "bounced" if await self.ctx.call(self.ctx.inbox.functions.bounced(message.id())) else "executed"
        )

    async def _deployments(self, messages: list[Message]) -> int:
        """Gas for the BridgedTokens these messages deploy. An asset's first arrival on this chain
        deploys one inside the message's all-or-nothing call, which the node's estimate does not
        count: it would settle on a limit where that call runs out of gas and the message fails."""
        router = self.ctx.l2.contract("AssetRouter", self.ctx.config.chain.contracts.asset_router)
        new = 0
        for asset in {m.asset_id for m in messages if m.amount}:
            token = (await self.ctx.call(router.functions.assets(asset)))[2]
            new += int(token, 16) == 0
        return new * BRIDGED_TOKEN_DEPLOY_GAS

    def _outcomes(self, receipt: Any) -> dict[bytes, tuple[str, str]]:
        events = self.ctx.inbox.events
        found: dict[bytes, tuple[str, str]] = {}
        for event in events.MessageExecuted().process_receipt(receipt, errors=DISCARD):
            found[bytes(event["args"]["id"])] = ("executed", "")
        for event in events.MessageFailed().process_receipt(receipt, errors=DISCARD):
            found[bytes(event["args"]["id"])] = ("failed", decode_revert(bytes(event["args"]["reason"])))
        for event in events.MessageBounced().process_receipt(receipt, errors=DISCARD):
            found[bytes(event["args"]["id"])] = ("bounced", "")
        for event in events.MessageRejected().process_receipt(receipt, errors=DISCARD):
            found[bytes(event["args"]["id"])] = ("rejected", decode_revert(bytes(event["args"]["reason"])))
        return found
