"""The settler: commits proven batches to the L1 Hub, in order.

Before sending `commitBatch` the batch is marked "committing"; after a restart the Hub's own batch
counter says whether that transaction landed, so a batch is never committed twice and never skipped.
A refused commit (the Hub's custom error, decoded) is retried with stepped backoff whose count is
kept in the store; an overdraft stays refused for good and is reported as such in the logs, the
store and the metrics.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from eth_abi.abi import decode as abi_decode
from eth_account.messages import encode_defunct

from bridge_contracts.chain import Reverted
from bridge_contracts.messages import commitment
from bridge_contracts.verifier_gen import calldata
from proofs.circuits.batch import PublicInputs, ValueSlot
from proofs.formats import snarkjs_json
from relayer.pipeline.context import Context, batch_messages, now
from relayer.sender import SendFailed, backoff, failure_reason

log = logging.getLogger(__name__)


def public_inputs_of(row: dict[str, Any], chain_id: int) -> PublicInputs:
    values = [int(x) for x in orjson.loads(row["public_inputs"])]
    head, columns = values[:6], values[6:]
    k = len(columns) // 4
    slots = tuple(
        ValueSlot(columns[i], (columns[k + i] << 128) | columns[2 * k + i], columns[3 * k + i])
        for i in range(k)
    )
    return PublicInputs(head[0], head[1], head[2], head[3], head[4], head[5], slots)


class Settler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def step(self) -> bool:
        store = self.ctx.store
        pending = sorted(store.batches(status=["proven", "committing"]), key=lambda b: b["batch_number"])
        if not pending:
            return False
        row = pending[0]
        if row["next_attempt_at"] and row["next_attempt_at"] > now():
            return False
        number = row["batch_number"]
        info = await self.ctx.call(self.ctx.hub.functions.chains(self.ctx.chain_id))
        next_batch = info[3]
        if next_batch > number:
            await self._settled(row, tx=row["commit_tx"], gas=row["commit_gas"], reason="found on L1")
            return True
        if next_batch < number:
            return False  # an earlier batch is not on L1 yet: it must settle first
        store.update_batch(number, status="committing", attempts=row["attempts"] or 0)
        try:
            await self._register_assets(row)
            receipt = await self._commit(row)
        except (Reverted, SendFailed) as exc:
            attempts = (row["attempts"] or 0) + 1
            reason = exc.error if isinstance(exc, Reverted) else str(exc)
            store.update_batch(
                number,
                status="proven",
                attempts=attempts,
                next_attempt_at=now() + backoff(attempts),
                error=reason,
            )
            self.ctx.metrics.failure(failure_reason("commit", exc))
            log.error("batch %d: commit refused (try %d): %s", number, attempts, reason)
            return False
        await self._settled(
            row, tx=receipt["transactionHash"].to_0x_hex(), gas=receipt["gasUsed"], reason="committed"
        )
        return True

    async def _register_assets(self, row: dict[str, Any]) -> None:
        """Tell the Hub the origin of this chain's own assets the batch sends, so it never debits
        this chain for them (anyone may register an asset: its id is the hash of its origin)."""
        public = public_inputs_of(row, self.ctx.chain_id)
        hub = self.ctx.hub
        for slot in public.slots:
            if not slot.amount:
                continue
            asset = slot.asset_id.to_bytes(32, "big")
            if await self.ctx.call(hub.functions.assetOrigin(asset)):
                continue
            for m in batch_messages(self.ctx.store, row["batch_number"]):
                if m["asset_id"] == "0x" + asset.hex():
                    origin, token = abi_decode(["uint256", "address"], bytes(m["asset_data"])[:64])
                    if origin == self.ctx.chain_id:
                        await self.ctx.l1_sender.send(
                            hub.functions.registerAsset(origin, token), what=f"register asset 0x{asset.hex()}"
                        )
                    break

    async def _commit(self, row: dict[str, Any]) -> Any:
        ctx = self.ctx
        public = public_inputs_of(row, ctx.chain_id)
        batch = commitment(public, row["capacity"])
        digest = bytes(await ctx.call(ctx.hub.functions.commitDigest(batch)))
        signature = ctx.l1.signer.sign_message(encode_defunct(primitive=digest)).signature
        proof = snarkjs_json.proof_from_json(orjson.loads(row["proof"]))
        a, b, c, _ = calldata(proof, public.values())
        log.info("batch %d: committing to L1", row["batch_number"])
        return await ctx.l1_sender.send(
            ctx.hub.functions.commitBatch(batch, (a, b, c), signature),
            what=f"commitBatch {row['batch_number']}",
        )

    async def _settled(self, row: dict[str, Any], *, tx: str | None, gas: int | None, reason: str) -> None:
        ctx, number = self.ctx, row["batch_number"]
        record = await ctx.call(ctx.hub.functions.batches(ctx.chain_id, number))
        ctx.store.update_batch(
            number,
            status="settled",
            commit_tx=tx,
            commit_gas=gas,
            leaf_index=record[2],
            settled_at=now(),
            error=None,
        )
        ids = [m["id"] for m in batch_messages(ctx.store, number) if m["status"] == "batched"]
        ctx.store.transition_many(ids, "settled", f"batch {number} settled on L1 ({reason})")
        ctx.metrics.batch_settled()
        log.info("batch %d settled on L1 (%s, leaf %d)", number, reason, record[2])
