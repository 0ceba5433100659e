"""The pusher: sends each settled message on to where it is going.

- To a peer: its batch's evidence (public inputs and proof) and its batch-tree path, in a signed
  envelope on the peer's topic. The messages are marked "pushed" first (one store step), with a
  time to push them again; until the peer's receipt arrives they are pushed again on the REPUSH
  retry policy, so a lost envelope or a peer that was down never loses one (the peer drops
  duplicates). A message forced through L1 is pushed on too (it stays "forced"): the peer may not
  be able to open its sealed body on L1.
- To the L1: the withdrawal is finalized on the Hub with its batch path (`finalizeWithdrawal`).
- To a chain that is not a peer: it waits, "settled", until the chain is added as a peer.

Nothing is pushed while this chain's outgoing pipeline is halted (`Context.outgoing_halt`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import orjson

from bridge_contracts.chain import Reverted
from bridge_contracts.messages import MessageProof
from hub.delivery import BatchEvidence, DeliveredMessage, Delivery, delivery_to_json
from hub.envelope import KIND_MESSAGES, sealed_size
from proofs.formats import snarkjs_json
from proofs.merkle import PoseidonTree
from relayer.pipeline.context import Context, now
from relayer.sender import SendFailed, failure_reason
from relayer.store import L1_PEER, PUSHABLE, BatchStatus, OutStatus, Store, StoredBatch, StoredMessage

log = logging.getLogger(__name__)


def batch_tree(store: Store, number: int) -> tuple[StoredBatch, PoseidonTree]:
    """A settled batch of this chain and its tree (each message's path is `tree.proof(index)`)."""
    batch = store.batch(number)
    assert batch is not None and batch.status == BatchStatus.SETTLED, f"batch {number} is not settled"
    messages = store.messages(direction="out", batch_number=number)
    tree = PoseidonTree([m.leaf for m in messages], batch.capacity)
    if tree.root != batch.batch_root:  # the proof's root comes from the circuit; the paths from here
        raise BatchTreeError(
            f"batch {number}: its messages' tree has root {tree.root:#x}, the proof states "
            f"{batch.batch_root or 0:#x}: no path of it would verify"
        )
    return batch, tree


class BatchTreeError(RuntimeError):
    """A settled batch's messages do not make the tree its proof states."""


class Pusher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def step(self) -> float | None:
        store, moment, poll = self.ctx.store, now(), self.ctx.config.l1.poll_seconds
        if self.ctx.outgoing_halt() is not None:
            return poll  # nothing leaves this chain until an operator decides
        waiting = store.messages(direction="out", status=PUSHABLE)
        due = [m for m in waiting if m.status == OutStatus.SETTLED or m.due <= moment]
        by_batch: dict[tuple[int, str], list[StoredMessage]] = defaultdict(list)
        for m in due:  # the peer named by the destination now: peers come and go while messages wait
            assert m.batch_number is not None
            by_batch[m.batch_number, self.ctx.peer_name(m.message.dest_chain_id)].append(m)
        did = False
        for (number, peer), messages in sorted(by_batch.items()):
            if peer == L1_PEER:
                did |= await self._withdraw(number, messages)
            elif self.ctx.peer_by_name(peer) is not None:
                await self._push(number, peer, messages)
                did = True
        if did:
            return None
        later = [m.due - moment for m in waiting if m.status != OutStatus.SETTLED and m.due > moment]
        return min([poll, *later])

    def _evidence(self, number: int) -> tuple[BatchEvidence, PoseidonTree]:
        batch, tree = batch_tree(self.ctx.store, number)
        assert batch.public_inputs is not None and batch.proof is not None
        evidence = BatchEvidence(
            chain_id=self.ctx.chain_id,
            batch_number=number,
            capacity=batch.capacity,
            public_inputs=batch.public_inputs,
            proof=snarkjs_json.proof_from_json(batch.proof),
        )
        return evidence, tree

    async def _push(self, number: int, peer: str, messages: list[StoredMessage]) -> None:
        ctx = self.ctx
        evidence, tree = self._evidence(number)
        pushed = ctx.store.record_push([m.id for m in messages], peer, f"pushed to {peer}")
        if not pushed:
            return
        delivered = []
        for m in pushed:
            assert m.index_in_batch is not None
            delivered.append(
                DeliveredMessage(m.message, m.index_in_batch, tuple(tree.proof(m.index_in_batch)))
            )
        for body in self._bodies(evidence, delivered):
            await ctx.send(peer, KIND_MESSAGES, body)
        log.info("batch %d: pushed %d message(s) to %s", number, len(pushed), peer)

    def _bodies(self, evidence: BatchEvidence, delivered: list[DeliveredMessage]) -> list[dict[str, Any]]:
        """The envelope bodies that carry `delivered`: one, or as many as keep each sealed envelope
        under the bus's envelope bound (a message too large alone is logged and left to its next
        push)."""
        body = delivery_to_json(Delivery(evidence, tuple(delivered)))
        size = sealed_size(len(orjson.dumps(body)))
        if size <= self.ctx.config.bus.max_envelope_bytes:
            return [body]
        if len(delivered) == 1:
            m = delivered[0].message
            log.error(
                "message %d:%d alone makes a %d-byte envelope, over bus.max_envelope_bytes: not pushed",
                m.source_chain_id,
                m.nonce,
                size,
            )
            return []
        half = len(delivered) // 2
        return self._bodies(evidence, delivered[:half]) + self._bodies(evidence, delivered[half:])

    async def _withdraw(self, number: int, messages: list[StoredMessage]) -> bool:
        ctx = self.ctx
        _, tree = self._evidence(number)
        did = False
        for m in ctx.store.record_push([m.id for m in messages], L1_PEER, "finalizing the withdrawal on L1"):
            assert m.index_in_batch is not None
            proof = MessageProof(
                number, m.index_in_batch, tuple(tree.proof(m.index_in_batch)), 0, (), b"\0" * 32
            )
            try:
                receipt = await ctx.l1_sender.send(
                    ctx.hub.functions.finalizeWithdrawal(m.message.as_tuple(), proof.as_tuple()),
                    what=f"finalizeWithdrawal {m.id}",
                )
            except (Reverted, SendFailed) as exc:
                reason = exc.error if isinstance(exc, Reverted) else str(exc)
                if "AlreadyWithdrawn" in reason:
                    ctx.store.record_withdrawal(
                        m.id, tx=None, gas=None, reason="the withdrawal was already finalized on L1"
                    )
                else:
                    ctx.store.withdrawal_failed(m.id, reason)
                    ctx.metrics.failure(failure_reason("withdrawal", exc))
                continue
            ctx.store.record_withdrawal(
                m.id,
                tx=receipt["transactionHash"].to_0x_hex(),
                gas=receipt["gasUsed"],
                reason="withdrawal finalized on L1",
            )
            did = True
        return did
