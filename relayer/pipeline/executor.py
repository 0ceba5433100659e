"""The executor: runs verified messages on this chain through its Inbox.

It takes the L1 Hub's latest aggregated root (the hub service says which; L1 itself confirms it),
fetches each message's aggregated-tree path against it from the hub service, and calls
`Inbox.executeManyWithRoot` (which imports the root if it is new there, in the same transaction) for
up to `MAX_PER_TX` messages at a time. The messages are marked "executing" before the transaction is
sent; after a restart, the Inbox's nullifiers say which of them were executed. Each message's
outcome comes from the transaction's events: executed, failed (the target reverted: nothing was
applied, and `xrelay replay` runs it again) or rejected by the Inbox. The sender gets a receipt for
each.

Messages to be bounced ("bouncing": settled, but refused by a peering rule or given up by the
operator) go the same way into `Inbox.bounceManyWithRoot`, which sends their value home; the sender
gets a "bounced" receipt.

Each execution and bounce is confirmed once its block is final on this chain (the outbox watcher
keeps the final head): the Inbox must still have the message processed at that block, else the
transaction was reorganised away and the message is done again.
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
from bridge_contracts.messages import MessageProof
from hub.client import HubClientError
from hub.delivery import Receipt, delivery_from_json
from relayer.pipeline.context import Context, now
from relayer.pipeline.receiver import send_receipts
from relayer.sender import failure_reason
from relayer.store import EXECUTABLE, InStatus, Outcome, StoredMessage

log = logging.getLogger(__name__)

MAX_PER_TX = 64  # about 18M gas of plain messages: a round fits a 30M block
BRIDGED_TOKEN_DEPLOY_GAS = 1_500_000  # a BridgedToken's deployment costs about 1.2M


def _proof_source(m: StoredMessage) -> tuple[int, int, tuple[int, ...], int | None]:
    """(batch number, index in batch, batch siblings, aggregated leaf index) of a stored incoming
    message; the leaf index is known from the payload only for an L1 deposit (None otherwise)."""
    assert m.payload is not None
    payload = orjson.loads(m.payload)
    if "deposit" in payload:
        return m.nonce, 0, (), int(payload["deposit"]["leaf_index"])
    item = delivery_from_json(payload)
    return item.batch.batch_number, item.messages[0].index, item.messages[0].siblings, None


class Executor:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

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
        try:
            for m in ctx.store.unconfirmed(final):
                verdict = await self._still_there(m, final)
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
            ctx.wakeups.wake("executor")

    async def _still_there(self, m: StoredMessage, final: int) -> bool | None:
        """True when m's execution or bounce is final in the chain; False when the chain lost it;
        None when its transaction is in a block that is not final yet."""
        ctx = self.ctx
        if m.exec_tx is not None:
            try:
                receipt = await asyncio.to_thread(ctx.l2.w3.eth.get_transaction_receipt, m.exec_tx)  # type: ignore[arg-type]
            except TransactionNotFound:
                return False
            if receipt["blockNumber"] > final:
                return None  # mined again in a later block: wait for it
            block = await asyncio.to_thread(ctx.l2.w3.eth.get_block, receipt["blockNumber"])
            if bytes(block["hash"]) != bytes(receipt["blockHash"]) or receipt["status"] != 1:
                return False
        message_id = m.message.id()
        done = await ctx.call(ctx.inbox.functions.executed(message_id))
        bounced = await ctx.call(ctx.inbox.functions.bounced(message_id))
        return bool(done) and bounced == (m.status == InStatus.BOUNCED)

    async def step(self) -> float | None:
        ctx, moment, poll = self.ctx, now(), self.ctx.config.l1.poll_seconds
        await self.confirm()
        waiting = ctx.store.messages(direction="in", status=[*EXECUTABLE, InStatus.BOUNCING])
        ready = [m for m in waiting if m.due <= moment]
        if not ready:
            return min([poll, *(m.due - moment for m in waiting)])
        try:
            status = await ctx.hub_client.status()
        except HubClientError as exc:
            log.warning("hub service unavailable: %s", exc)
            return poll
        size, root = int(status["aggregated_size"]), bytes.fromhex(str(status["aggregated_root"])[2:])
        if size == 0 or not await ctx.call(ctx.hub.functions.isAggregatedRoot(root)):
            return poll  # the hub service is ahead of (or apart from) L1 as this daemon sees it
        work = []
        leaves: dict[tuple[int, int], int] = {}  # (source, batch) -> aggregated leaf index
        paths: dict[int, tuple[bytes, ...]] = {}  # aggregated leaf index -> its path at `size`
        for m in ready[:MAX_PER_TX]:
            number, index, siblings, deposit_leaf = _proof_source(m)
            source = m.message.source_chain_id
            if (source, number) not in leaves:
                if deposit_leaf is not None:
                    leaves[source, number] = deposit_leaf
                else:
                    leaves[source, number] = (await ctx.hub_batch(source, number)).leaf_index
            leaf_index = leaves[source, number]
            if leaf_index >= size:
                continue  # settled after the root the hub service has: next round
            if leaf_index not in paths:
                paths[leaf_index] = tuple((await ctx.hub_client.proof(leaf_index, size)).siblings)
            work.append((m, MessageProof(number, index, siblings, leaf_index, paths[leaf_index], root)))
        if not work:
            return poll  # a newer root is announced on the bus and wakes this step
        bounces = [w for w in work if w[0].status == InStatus.BOUNCING]
        if bounces:
            await self._bounce(root, bounces)
        if len(bounces) < len(work):
            await self._execute(root, [w for w in work if w[0].status != InStatus.BOUNCING])
        return None

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
            if kind == "rejected" and reason.startswith("AlreadyExecuted"):
                kind = await self._processed_as(m)
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
        ctx.store.start_execution(ids)
        fn = ctx.inbox.functions.executeManyWithRoot(  # imports the root too, if it is new
            root, [m.message.as_tuple() for m, _ in work], [proof.as_tuple() for _, proof in work]
        )
        receipt = await self._send(
            fn,
            f"executeMany of {len(work)}",
            ids,
            not_sent=ctx.store.execution_not_sent,
            failure="execute",
            deploying=work,
        )
        if receipt is None:
            return
        tx, gas_each = receipt["transactionHash"].to_0x_hex(), receipt["gasUsed"] // len(work)
        found = self._outcomes(receipt)
        outcomes: list[Outcome] = []
        receipts: dict[str, list[Receipt]] = {}
        for m, _ in work:
            kind, reason = found.get(m.message.id(), ("rejected", "no event"))
            if kind == "rejected" and reason.startswith("AlreadyExecuted"):
                if await self._processed_as(m) == "bounced":
                    reason = "bounced already: never executed here"
                else:
                    kind = "already executed"
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
        deploying: list[tuple[StoredMessage, MessageProof]] | None = None,
    ) -> TxReceipt | None:
        """Send one round's transaction; if it is refused or not mined, the store step `not_sent`
        puts its messages back to be tried again, and None is returned. `deploying`: the round's work,
        for the gas of the BridgedTokens it deploys."""
        try:
            extra = 0 if deploying is None else await self._deployments(deploying)
            return await self.ctx.l2_sender.send(fn, what=what, extra_gas=extra)
        except Exception as exc:
            reason = exc.error if isinstance(exc, Reverted) else str(exc)
            not_sent(ids, reason)
            self.ctx.metrics.failure(failure_reason(failure, exc))
            log.error("%s failed: %s", what, reason)
            return None

    async def _processed_as(self, m: StoredMessage) -> str:
        """What the Inbox's AlreadyExecuted means for m: "bounced" or "executed"."""
        return (
            "bounced" if await self.ctx.call(self.ctx.inbox.functions.bounced(m.message.id())) else "executed"
        )

    async def _deployments(self, work: list[tuple[StoredMessage, MessageProof]]) -> int:
        """Gas for the BridgedTokens these messages deploy. An asset's first arrival on this chain
        deploys one inside the message's all-or-nothing call, which the node's estimate does not
        count: it would settle on a limit where that call runs out of gas and the message fails."""
        router = self.ctx.l2.contract("AssetRouter", self.ctx.config.chain.contracts.asset_router)
        new = 0
        for asset in {m.message.asset_id for m, _ in work if m.message.amount}:
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
