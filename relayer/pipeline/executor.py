"""The executor: runs verified messages on this chain through its Inbox.

It takes the L1 Hub's latest aggregated root (the hub service says which; L1 itself confirms it),
fetches each message's aggregated-tree path against it from the hub service, and calls
`Inbox.executeManyWithRoot` (which imports the root if it is new there, in the same transaction) for
up to `MAX_PER_TX` messages at a time. The messages are marked "executing" before the transaction is
sent; after a restart, the Inbox's nullifiers say which of them were executed. Each message's
outcome comes from the transaction's events: executed, failed (the target reverted: nothing was
applied, and `xrelay replay` runs it again) or rejected by the Inbox. The sender gets a receipt for
each.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from web3.logs import DISCARD

from bridge_contracts.chain import Reverted, decode_revert
from bridge_contracts.messages import MessageProof, message_id
from hub.client import HubClientError
from hub.delivery import Receipt, delivery_from_json
from relayer.pipeline.context import L1_PEER, Context, message_of, now
from relayer.pipeline.receiver import send_receipts
from relayer.sender import backoff, failure_reason

log = logging.getLogger(__name__)

MAX_PER_TX = 64  # about 18M gas of plain messages: a round fits a 30M block
BRIDGED_TOKEN_DEPLOY_GAS = 1_500_000  # a BridgedToken's deployment costs about 1.2M
EXECUTABLE = ("verified", "replay")


def _proof_source(row: dict[str, Any]) -> tuple[int, int, tuple[int, ...]]:
    """(batch number, index in batch, batch siblings) of a stored incoming message."""
    payload = orjson.loads(row["payload"])
    if "deposit" in payload:
        return row["nonce"], 0, ()
    item = delivery_from_json(payload)
    return item.batch.batch_number, item.messages[0].index, item.messages[0].siblings


class Executor:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def recover(self) -> None:
        """After a restart: settle what a transaction in flight did to "executing" messages."""
        for row in self.ctx.store.messages(direction="in", status="executing"):
            done = await self.ctx.call(
                self.ctx.inbox.functions.executed(message_id(row["source_chain_id"], row["nonce"]))
            )
            if done:
                self.ctx.store.transition(
                    row["id"], "executed", "found executed on the Inbox after a restart"
                )
            else:
                self.ctx.store.transition(
                    row["id"], "verified", "not executed before the restart; to run again"
                )

    async def step(self) -> bool:
        ctx, moment = self.ctx, now()
        ready = [
            r
            for r in ctx.store.messages(direction="in", status=list(EXECUTABLE))
            if (r["next_attempt_at"] or 0) <= moment
        ]
        if not ready:
            return False
        try:
            status = await ctx.hub_client.status()
        except HubClientError as exc:
            log.warning("hub service unavailable: %s", exc)
            return False
        size, root = int(status["aggregated_size"]), bytes.fromhex(str(status["aggregated_root"])[2:])
        if size == 0 or not await ctx.call(ctx.hub.functions.isAggregatedRoot(root)):
            return False  # the hub service is ahead of (or apart from) L1 as this daemon sees it
        work = []
        leaves: dict[tuple[int, int], int] = {}  # (source, batch) -> aggregated leaf index
        paths: dict[int, tuple[bytes, ...]] = {}  # aggregated leaf index -> its path at `size`
        for row in ready[:MAX_PER_TX]:
            number, index, siblings = _proof_source(row)
            source = row["source_chain_id"]
            if (source, number) not in leaves:
                if source == ctx.l1_chain_id:
                    leaves[source, number] = orjson.loads(row["payload"])["deposit"]["leaf_index"]
                else:
                    leaves[source, number] = (await ctx.call(ctx.hub.functions.batches(source, number)))[2]
            leaf_index = leaves[source, number]
            if leaf_index >= size:
                continue  # settled after the root the hub service has: next round
            if leaf_index not in paths:
                paths[leaf_index] = tuple((await ctx.hub_client.proof(leaf_index, size)).siblings)
            work.append((row, MessageProof(number, index, siblings, leaf_index, paths[leaf_index], root)))
        if not work:
            return False
        await self._execute(root, work)
        return True

    async def _execute(self, root: bytes, work: list[tuple[dict[str, Any], MessageProof]]) -> None:
        ctx = self.ctx
        ids = [row["id"] for row, _ in work]
        ctx.store.transition_many(ids, "executing", "in an executeMany transaction")
        fn = ctx.inbox.functions.executeManyWithRoot(  # imports the root too, if it is new
            root, [message_of(row).as_tuple() for row, _ in work], [proof.as_tuple() for _, proof in work]
        )
        try:
            extra = await self._deployments(work)
            receipt = await ctx.l2_sender.send(fn, what=f"executeMany of {len(work)}", extra_gas=extra)
        except Exception as exc:
            reason = exc.error if isinstance(exc, Reverted) else str(exc)
            for row, _ in work:
                attempts = (row["attempts"] or 0) + 1
                ctx.store.transition(
                    row["id"],
                    "verified",
                    f"executeMany failed: {reason}",
                    attempts=attempts,
                    next_attempt_at=now() + backoff(attempts),
                    error=reason,
                )
            ctx.metrics.failure(failure_reason("execute", exc))
            log.error("executeMany of %d failed: %s", len(work), reason)
            return
        tx, gas_each = receipt["transactionHash"].to_0x_hex(), receipt["gasUsed"] // len(work)
        outcomes = self._outcomes(receipt)
        receipts: dict[str, list[Receipt]] = {}
        for row, _ in work:
            kind, reason = outcomes.get(
                message_id(row["source_chain_id"], row["nonce"]), ("rejected", "no event")
            )
            if kind == "executed" or (kind == "rejected" and reason.startswith("AlreadyExecuted")):
                ctx.store.transition(
                    row["id"],
                    "executed",
                    f"executed in {tx}" if kind == "executed" else "already executed",
                    exec_tx=tx,
                    exec_gas=gas_each,
                    executed_at=now(),
                    error=None,
                )
                ctx.metrics.executed(row["peer"])
                status = "executed"
            else:
                attempts = (row["attempts"] or 0) + 1
                ctx.store.transition(
                    row["id"],
                    "failed",
                    f"{kind} in {tx}: {reason}",
                    exec_tx=tx,
                    error=reason,
                    attempts=attempts,
                )
                ctx.metrics.failure(
                    "target reverted" if kind == "failed" else f"rejected {reason.split('(')[0]}"
                )
                status = "failed"
            receipts.setdefault(row["peer"], []).append(
                Receipt(row["id"], status, tx, None if status == "executed" else reason)
            )
        for peer, items in receipts.items():
            if peer != L1_PEER:
                await send_receipts(ctx, peer, items)
        log.info("executed %d message(s) in %s", len(work), tx)

    async def _deployments(self, work: list[tuple[dict[str, Any], MessageProof]]) -> int:
        """Gas for the BridgedTokens these messages deploy. An asset's first arrival on this chain
        deploys one inside the message's all-or-nothing call, which the node's estimate does not
        count: it would settle on a limit where that call runs out of gas and the message fails."""
        router = self.ctx.l2.contract("AssetRouter", self.ctx.config.chain.contracts.asset_router)
        new = 0
        for asset in {row["asset_id"] for row, _ in work if int(row["amount"])}:
            token = (await self.ctx.call(router.functions.assets(bytes.fromhex(asset[2:]))))[2]
            new += int(token, 16) == 0
        return new * BRIDGED_TOKEN_DEPLOY_GAS

    def _outcomes(self, receipt: Any) -> dict[bytes, tuple[str, str]]:
        events = self.ctx.inbox.events
        found: dict[bytes, tuple[str, str]] = {}
        for event in events.MessageExecuted().process_receipt(receipt, errors=DISCARD):
            found[bytes(event["args"]["id"])] = ("executed", "")
        for event in events.MessageFailed().process_receipt(receipt, errors=DISCARD):
            found[bytes(event["args"]["id"])] = ("failed", decode_revert(bytes(event["args"]["reason"])))
        for event in events.MessageRejected().process_receipt(receipt, errors=DISCARD):
            found[bytes(event["args"]["id"])] = ("rejected", decode_revert(bytes(event["args"]["reason"])))
        return found
