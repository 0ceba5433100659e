"""The pusher: sends each settled message on to where it is going.

- To a peer: its batch's evidence (public inputs and proof) and its batch-tree path, in a signed
  envelope on the peer's topic. The message is marked "pushed" first, with a time to push it again;
  until the peer's receipt arrives it is pushed again on a stepped backoff, so a lost envelope or a
  peer that was down never loses it (the peer drops duplicates).
- To the L1: the withdrawal is finalized on the Hub with its batch path (`finalizeWithdrawal`).
- To a chain that is not a peer: it waits, "settled", until the chain is added as a peer.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import orjson

from bridge_contracts.chain import Reverted
from bridge_contracts.messages import MessageProof
from hub.bus import Envelope, institution_topic
from hub.delivery import BatchEvidence, DeliveredMessage, Delivery, delivery_to_json
from proofs.formats import snarkjs_json
from proofs.merkle import PoseidonTree
from relayer.pipeline.context import L1_PEER, Context, batch_messages, message_of, now
from relayer.sender import SendFailed, backoff, failure_reason

log = logging.getLogger(__name__)

REPUSH_SCALE = 30.0  # a peer gets a message again after 30 s, 60 s, 150 s, ... without a receipt


class Pusher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def step(self) -> bool:
        store, moment = self.ctx.store, now()
        due = [
            m
            for m in store.messages(direction="out", status=["settled", "pushed"])
            if m["status"] == "settled" or (m["next_attempt_at"] or 0) <= moment
        ]
        by_batch: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
        for m in due:  # the peer named by the destination now: peers come and go while messages wait
            by_batch[m["batch_number"], self.ctx.peer_name(m["dest_chain_id"])].append(m)
        did = False
        for (number, peer), rows in sorted(by_batch.items()):
            if peer == L1_PEER:
                did |= await self._withdraw(number, rows)
            elif self.ctx.peer_by_name(peer) is not None:
                await self._push(number, peer, rows)
                did = True
        return did

    def _evidence(self, number: int) -> tuple[BatchEvidence, PoseidonTree]:
        store = self.ctx.store
        batch = store.batch(number)
        assert batch is not None and batch["status"] == "settled"
        rows = batch_messages(store, number)
        tree = PoseidonTree([int(m["leaf"]) for m in rows], batch["capacity"])
        evidence = BatchEvidence(
            chain_id=self.ctx.chain_id,
            batch_number=number,
            capacity=batch["capacity"],
            public_inputs=tuple(int(x) for x in orjson.loads(batch["public_inputs"])),
            proof=snarkjs_json.proof_from_json(orjson.loads(batch["proof"])),
        )
        return evidence, tree

    async def _push(self, number: int, peer: str, rows: list[dict[str, Any]]) -> None:
        ctx = self.ctx
        evidence, tree = self._evidence(number)
        delivered = tuple(
            DeliveredMessage(message_of(m), m["index_in_batch"], tuple(tree.proof(m["index_in_batch"])))
            for m in rows
        )
        for m in rows:
            attempts = m["attempts"] or 0
            ctx.store.transition(
                m["id"],
                "pushed",
                f"pushed to {peer}"
                + (f" again (try {attempts + 1}): no receipt yet" if m["status"] == "pushed" else ""),
                peer=peer,
                attempts=attempts + 1,
                next_attempt_at=now() + REPUSH_SCALE * backoff(attempts + 1),
            )
        envelope = Envelope(
            "messages", ctx.config.institution, ctx.chain_id, delivery_to_json(Delivery(evidence, delivered))
        )
        await ctx.bus.publish(institution_topic(peer), envelope.sign(ctx.l2.signer))
        log.info("batch %d: pushed %d message(s) to %s", number, len(rows), peer)

    async def _withdraw(self, number: int, rows: list[dict[str, Any]]) -> bool:
        ctx = self.ctx
        _, tree = self._evidence(number)
        did = False
        for m in rows:
            if m["status"] != "settled" and (m["next_attempt_at"] or 0) > now():
                continue
            proof = MessageProof(
                number, m["index_in_batch"], tuple(tree.proof(m["index_in_batch"])), 0, (), b"\0" * 32
            )
            ctx.store.transition(
                m["id"],
                "pushed",
                "finalizing the withdrawal on L1",
                attempts=(m["attempts"] or 0) + 1,
                next_attempt_at=now() + REPUSH_SCALE * backoff((m["attempts"] or 0) + 1),
            )
            try:
                receipt = await ctx.l1_sender.send(
                    ctx.hub.functions.finalizeWithdrawal(message_of(m).as_tuple(), proof.as_tuple()),
                    what=f"finalizeWithdrawal {m['id']}",
                )
            except (Reverted, SendFailed) as exc:
                reason = exc.error if isinstance(exc, Reverted) else str(exc)
                if "AlreadyWithdrawn" in reason:
                    ctx.store.transition(m["id"], "executed", "the withdrawal was already finalized on L1")
                else:
                    ctx.store.transition(m["id"], "pushed", f"finalizing failed: {reason}", error=reason)
                    ctx.metrics.failure(failure_reason("withdrawal", exc))
                continue
            ctx.store.transition(
                m["id"],
                "executed",
                "withdrawal finalized on L1",
                exec_tx=receipt["transactionHash"].to_0x_hex(),
                exec_gas=receipt["gasUsed"],
                executed_at=now(),
            )
            did = True
        return did
