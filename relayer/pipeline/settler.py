"""The settler: commits proven batches to the L1 Hub, in order.

Before sending `commitBatch` it checks that the blocks its messages were read from (each one, and
the outbox watcher's cursor) are still the chain's: a reorganisation deeper than finality halts the
outgoing pipeline instead, and nothing of it is settled. Then it marks the batch "committing"; after
a restart the Hub's own batch counter says whether that transaction landed, so a batch is never
committed twice and never skipped.
Settling is one store step (`Store.settle_batch`: the batch and its messages). A refused commit (the
Hub's custom error, decoded) is retried on the retry policy, its count kept in the store; an
overdraft stays refused for good and is reported as such in the logs, the store and the metrics.

Every commit carries the Inbox's priority cursor and the queue's rolling hash there, which the operator
signs with the batch: L1 refuses it while an operation of this chain's priority queue is overdue and
beyond the cursor. When this chain has been forced a message, the settler also reports the cursor alone
(`Hub.reportPriority`) whenever the Inbox is ahead of what L1 has, so a chain without outgoing traffic
keeps up too.
"""

from __future__ import annotations

import asyncio
import logging

from eth_abi.abi import decode as abi_decode
from web3 import Web3
from web3.types import BlockIdentifier, TxReceipt

from bridge_contracts.chain import Reverted
from bridge_contracts.messages import HUB_SLOTS, commitment, priority_digest, sign_digest
from bridge_contracts.verifier_gen import calldata
from proofs import merkle
from proofs.circuits.batch import PublicInputs
from proofs.formats import snarkjs_json
from relayer.pipeline.context import Context, now
from relayer.sender import SendFailed, failure_reason
from relayer.store import BatchStatus, StoredBatch

log = logging.getLogger(__name__)


def public_inputs(batch: StoredBatch) -> PublicInputs:
    """A proven batch's public inputs, by name."""
    assert batch.public_inputs is not None, f"batch {batch.batch_number} is not proven"
    return PublicInputs.from_values(batch.public_inputs, HUB_SLOTS)


class Settler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._reported = -1  # the priority cursor L1 had when last read (or was sent)

    async def step(self) -> float | None:
        store, poll = self.ctx.store, self.ctx.config.l1.poll_seconds
        await self._report_priority()
        pending = store.batches(status=[BatchStatus.PROVEN, BatchStatus.COMMITTING])
        if not pending:
            return poll
        batch = pending[0]
        if batch.due > now():
            return min(poll, batch.due - now())
        number = batch.batch_number
        halted = self.ctx.outgoing_halt() is not None
        if halted and batch.status != BatchStatus.COMMITTING:
            return poll  # nothing more settles until an operator decides
        next_batch = (await self.ctx.hub_chain(self.ctx.chain_id)).next_batch
        if next_batch > number:
            await self._settled(batch, tx=None, gas=None, reason="found on L1")
            return None
        if next_batch < number or halted:
            return poll  # an earlier batch is not on L1 yet: it must settle first
        blocks = {
            (m.block_number, m.block_hash) for m in store.messages(direction="out", batch_number=number)
        }
        reorged = await self.ctx.watchers["outbox"].check_canonical(
            (block, read) for block, read in blocks if block is not None
        )
        if reorged is not None:  # the stream is halted now: the batch may hold messages the chain lost
            self.ctx.metrics.failure("settle: reorganised")
            log.critical("batch %d not committed: %s", number, reorged)
            return poll
        store.start_commit(number)
        try:
            await self._register_assets(batch)
            receipt = await self._commit(batch)
        except (Reverted, SendFailed) as exc:
            reason = exc.error if isinstance(exc, Reverted) else str(exc)
            refused = store.commit_refused(number, reason)
            self.ctx.metrics.failure(failure_reason("commit", exc))
            log.error("batch %d: commit refused (try %d): %s", number, refused.attempts, reason)
            return None
        await self._settled(
            batch, tx=receipt["transactionHash"].to_0x_hex(), gas=receipt["gasUsed"], reason="committed"
        )
        return None

    async def _register_assets(self, batch: StoredBatch) -> None:
        """Tell the Hub the origin of this chain's own assets the batch sends, so it never debits
        this chain for them (anyone may register an asset: its id is the hash of its origin)."""
        hub = self.ctx.hub
        messages = self.ctx.store.messages(direction="out", batch_number=batch.batch_number)
        for slot in public_inputs(batch).slots:
            if not slot.amount:
                continue
            asset = slot.asset_id.to_bytes(32, "big")
            if await self.ctx.call(hub.functions.assetOrigin(asset)):
                continue
            m = next((m.message for m in messages if m.message.asset_id == asset), None)
            if m is None:
                continue
            origin, token = abi_decode(["uint256", "address"], m.asset_data[:64])
            if origin == self.ctx.chain_id:
                await self.ctx.l1_sender.send(
                    hub.functions.registerAsset(origin, Web3.to_checksum_address(token)),
                    what=f"register asset 0x{asset.hex()}",
                )

    async def _priority_cursor(self) -> tuple[int, bytes]:
        """The Inbox's priority cursor and the queue's rolling hash there, as of this chain's final head
        (a round in a block that a reorganisation may still undo is not reported yet)."""
        inbox, watcher = self.ctx.inbox, self.ctx.watchers.get("outbox")
        final = None if watcher is None else watcher.final_head
        at: BlockIdentifier = "latest" if final is None else final

        def read() -> tuple[int, bytes]:
            cursor = int(inbox.functions.priorityCursor().call(block_identifier=at))
            return cursor, bytes(inbox.functions.priorityHash().call(block_identifier=at))

        return await asyncio.to_thread(read)

    async def _report_priority(self) -> None:
        """Report the Inbox's priority cursor to L1 when it is ahead of L1's (only on a chain that has
        been forced a message: others have nothing to report). A failure is logged and tried again at
        the next step."""
        ctx = self.ctx
        if ctx.store.priority_processed() <= self._reported:
            return  # nothing processed since L1 was last seen to have it: no RPC call
        try:
            cursor, rolling = await self._priority_cursor()
            self._reported = int((await ctx.call(ctx.hub.functions.priority(ctx.chain_id)))[1])
            if cursor <= self._reported:
                return
            digest = priority_digest(
                ctx.chain_id, cursor, rolling, l1_chain_id=ctx.l1_chain_id, hub=ctx.hub.address
            )
            await ctx.l1_sender.send(
                ctx.hub.functions.reportPriority(
                    ctx.chain_id, cursor, rolling, sign_digest(ctx.l1.signer, digest)
                ),
                what=f"reportPriority {cursor}",
            )
            self._reported = cursor
        except (Reverted, SendFailed) as exc:
            ctx.metrics.failure(failure_reason("report priority", exc))
            log.error("reporting the priority cursor failed: %s", exc)
            return
        log.info("priority cursor %d reported to L1", cursor)

    async def _commit(self, batch: StoredBatch) -> TxReceipt:
        ctx = self.ctx
        public = public_inputs(batch)
        commit = commitment(public, batch.capacity, *await self._priority_cursor())
        digest = bytes(await ctx.call(ctx.hub.functions.commitDigest(commit)))
        signature = sign_digest(ctx.l1.signer, digest)
        assert batch.proof is not None
        a, b, c, _ = calldata(snarkjs_json.proof_from_json(batch.proof), public.values())
        log.info("batch %d: committing to L1", batch.batch_number)
        return await ctx.l1_sender.send(
            ctx.hub.functions.commitBatch(commit, (a, b, c), signature),
            what=f"commitBatch {batch.batch_number}",
        )

    async def _settled(self, batch: StoredBatch, *, tx: str | None, gas: int | None, reason: str) -> None:
        """Record the batch settled, once L1's record of it is this very batch: a batch L1 holds under
        its number with another root (a store restored from an old backup, a second daemon signing
        with the same key) is never taken as settled — its messages would be pushed with evidence no
        peer accepts."""
        ctx, number = self.ctx, batch.batch_number
        record = await ctx.hub_batch(ctx.chain_id, number)
        depth = merkle.batch_depth(batch.capacity)
        if not record.committed or record.batch_root != batch.batch_root or record.depth != depth:
            conflict = (
                f"conflict: L1 holds batch {number} with root {record.batch_root:#x} (depth {record.depth}); "
                f"this store has root {batch.batch_root or 0:#x} (depth {depth}). Nothing more of this "
                "chain settles until an operator resolves it"
            )
            ctx.store.commit_refused(number, conflict)
            ctx.store.halt("outbox", f"batch {number}: {conflict}")
            ctx.metrics.failure("settle: conflict with L1")
            log.critical("batch %d: %s", number, conflict)
            return
        if ctx.store.settle_batch(number, leaf_index=record.leaf_index, tx=tx, gas=gas, reason=reason):
            ctx.metrics.batch_settled()
            log.info("batch %d settled on L1 (%s, leaf %d)", number, reason, record.leaf_index)
        ctx.wakeups.wake("pusher", "batcher")  # the batcher closes on an idle pipeline
