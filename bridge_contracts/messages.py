"""Messages as the Outbox emits them, their leaves and ids, the proof that one was settled, and the
batch commitment the L1 Hub settles (docs/protocol.md, "Messages").

`Message` mirrors `Messages.Message` (src/lib/Messages.sol); `Message.leaf()` computes in Python what
`Messages.leafOf` computes on-chain, through the same `proofs.message` hashing the batch circuit uses.
`message_id` and `aggregated_leaf` are `Messages.idOf` and `Messages.aggregatedLeaf`; `MessageProof`
mirrors `Messages.MessageProof`, `BatchProof` `Messages.BatchProof` (one batch's part of an
`Inbox.executeBatches` round: a multiproof of its messages' leaves and one aggregated path), and
`batch_groups` turns the single proofs of a round's messages into its batch groups. `commitment`,
`commit_digest` and `sign_digest` build what `Hub.commitBatch` takes. `BOUNCE_SENDER`,
`Message.is_bounce`, `Message.bounced_id` and `bounce_of` are the bounce: the message a destination's
Outbox sends (`Outbox.sendBounce`) to take back the value of a message its Inbox bounced.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from proofs.circuits.batch import PublicInputs
from proofs.groth16.proof import Proof
from proofs.merkle import multiproof_from_paths
from proofs.message import BODY_BITS, LeafPreimage

# The value slots of a batch proof as the Hub takes it (Hub.SLOTS): 6 + 4 * 4 = 22 public inputs.
HUB_SLOTS = 4
COMMIT_TYPEHASH = keccak(b"xrelay.Hub.commitBatch.v2")
PRIORITY_TYPEHASH = keccak(b"xrelay.Hub.reportPriority.v1")
EMPTY_PRIORITY_HASH = bytes(32)
"""The rolling hash of an empty priority queue."""
# The sender of every bounce message (`Messages.BOUNCE_SENDER`): address(uint160(uint256(keccak256(
# "xrelay.bounce")))), the hash's low 20 bytes; no one holds its key.
BOUNCE_SENDER = Web3.to_checksum_address(keccak(b"xrelay.bounce")[12:])


def message_id(source_chain_id: int, nonce: int) -> bytes:
    """keccak256(abi.encode(uint64 sourceChainId, uint64 nonce)): `Messages.idOf`."""
    return keccak(encode(["uint64", "uint64"], [source_chain_id, nonce]))


def priority_id(source_chain_id: int, batch_number: int, index: int, leaf: int) -> bytes:
    """keccak256(abi.encode(uint64 sourceChainId, uint64 batchNumber, uint256 index, uint256 leaf)):
    `Messages.priorityIdOf`, a forced message's id in its destination's priority queue."""
    return keccak(
        encode(["uint64", "uint64", "uint256", "uint256"], [source_chain_id, batch_number, index, leaf])
    )


def next_priority_hash(rolling_hash: bytes, priority_id: bytes) -> bytes:
    """keccak256(abi.encode(bytes32 hash, bytes32 priorityId)): `Messages.nextPriorityHash`."""
    return keccak(encode(["bytes32", "bytes32"], [rolling_hash, priority_id]))


def aggregated_leaf(source_chain_id: int, batch_number: int, depth: int, batch_root: int) -> bytes:
    """keccak256(abi.encode(uint64 sourceChainId, uint64 batchNumber, uint32 depth, uint256 batchRoot)):
    `Messages.aggregatedLeaf`, what the Hub appends to the aggregated tree for a batch (an L1 deposit:
    its deposit nonce, depth 0 and its leaf)."""
    return keccak(
        encode(["uint64", "uint64", "uint32", "uint256"], [source_chain_id, batch_number, depth, batch_root])
    )


@dataclass(frozen=True)
class Message:
    source_chain_id: int
    dest_chain_id: int
    nonce: int
    sender: str
    target: str
    asset_id: bytes  # 32 bytes; all zero when the message carries no value
    amount: int
    data: bytes
    asset_data: bytes

    def body(self) -> int:
        """keccak256(abi.encode(sourceChainId, nonce, sender, target, data, assetData)) >> 8."""
        encoded = encode(
            ["uint64", "uint64", "address", "address", "bytes", "bytes"],
            [self.source_chain_id, self.nonce, self.sender, self.target, self.data, self.asset_data],
        )
        return int.from_bytes(keccak(encoded), "big") >> (256 - BODY_BITS)

    def preimage(self) -> LeafPreimage:
        return LeafPreimage(
            dest_chain_id=self.dest_chain_id,
            asset_id=int.from_bytes(self.asset_id, "big"),
            amount=self.amount,
            body=self.body(),
        )

    def leaf(self) -> int:
        return self._leaf

    @functools.cached_property
    def _leaf(self) -> int:  # a Poseidon hash in Python (about a millisecond): computed once per message
        return self.preimage().leaf()

    def leaf_fields(self) -> tuple[int, int, bytes, int, int]:
        """The ABI tuple of `Messages.LeafFields`: what L1 learns of the message when it is forced
        (its source, and its leaf's fields; its body only as a hash)."""
        return (self.source_chain_id, self.dest_chain_id, self.asset_id, self.amount, self.body())

    def id(self) -> bytes:
        """The message's id, `message_id(source_chain_id, nonce)`."""
        return message_id(self.source_chain_id, self.nonce)

    @property
    def is_bounce(self) -> bool:
        """Whether this is a bounce message (value coming home), sent by `BOUNCE_SENDER`."""
        return self.sender.lower() == BOUNCE_SENDER.lower()

    def bounced_id(self) -> bytes:
        """The id of the message whose value this bounce message takes back (`Messages.bouncedIdOf`):
        its data, abi.encode(bytes32 originalId). ValueError if this is not a bounce message or its
        data is not exactly 32 bytes."""
        if not self.is_bounce:
            raise ValueError(f"message {self.id().hex()} is not a bounce (sender {self.sender})")
        if len(self.data) != 32:
            raise ValueError(f"a bounce message's data is one 32-byte id, not {len(self.data)} bytes")
        return self.data

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple of `Messages.Message`, for contract calls."""
        return (
            self.source_chain_id,
            self.dest_chain_id,
            self.nonce,
            self.sender,
            self.target,
            self.asset_id,
            self.amount,
            self.data,
            self.asset_data,
        )

    @classmethod
    def from_event(cls, message: Mapping[str, Any]) -> Message:
        """From the decoded `message` argument of a `MessageSent` (Outbox) or `DepositQueued` (Hub) event."""
        return cls(
            source_chain_id=message["sourceChainId"],
            dest_chain_id=message["destChainId"],
            nonce=message["nonce"],
            sender=Web3.to_checksum_address(message["sender"]),
            target=Web3.to_checksum_address(message["target"]),
            asset_id=bytes(message["assetId"]),
            amount=message["amount"],
            data=bytes(message["data"]),
            asset_data=bytes(message["assetData"]),
        )


def bounce_of(original: Message, nonce: int) -> Message:
    """The bounce message of `original` that its destination's Outbox sends as its message `nonce`
    (`Outbox.sendBounce`): from the destination back to the source, from `BOUNCE_SENDER` to the original
    sender, with the original's value and abi.encode(bytes32 originalId) as data."""
    return Message(
        source_chain_id=original.dest_chain_id,
        dest_chain_id=original.source_chain_id,
        nonce=nonce,
        sender=BOUNCE_SENDER,
        target=Web3.to_checksum_address(original.sender),
        asset_id=original.asset_id,
        amount=original.amount,
        data=original.id(),
        asset_data=original.asset_data,
    )


@dataclass(frozen=True)
class MessageProof:
    """Where a message's leaf is (`Messages.MessageProof`): position `index` of batch `batch_number` of
    its source chain, with the batch path (bottom-up; none for an L1 deposit), and that batch's
    aggregated leaf at `aggregated_index` of the aggregated tree with root `aggregated_root` (32
    siblings, bottom-up)."""

    batch_number: int
    index: int
    batch_siblings: tuple[int, ...]
    aggregated_index: int
    aggregated_siblings: tuple[bytes, ...]
    aggregated_root: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple of `Messages.MessageProof`, for contract calls."""
        return (
            self.batch_number,
            self.index,
            list(self.batch_siblings),
            self.aggregated_index,
            list(self.aggregated_siblings),
            self.aggregated_root,
        )


@dataclass(frozen=True)
class BatchProof:
    """One batch's part of an `Inbox.executeBatches` round (`Messages.BatchProof`): the round's next
    `len(indices)` messages are leaves of batch `batch_number` of chain `source_chain_id`, a batch tree of
    `depth` levels (0 for an L1 deposit), at positions `indices` (strictly increasing); `nodes` is their
    multiproof (`proofs.merkle.multiproof_nodes`), and the batch's aggregated leaf is at `aggregated_index`
    with `aggregated_siblings` (32, bottom-up) under the round's root."""

    source_chain_id: int
    batch_number: int
    depth: int
    indices: tuple[int, ...]
    nodes: tuple[int, ...]
    aggregated_index: int
    aggregated_siblings: tuple[bytes, ...]

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple of `Messages.BatchProof`, for contract calls."""
        return (
            self.source_chain_id,
            self.batch_number,
            self.depth,
            list(self.indices),
            list(self.nodes),
            self.aggregated_index,
            list(self.aggregated_siblings),
        )


@dataclass(frozen=True)
class BatchGroup:
    """A batch's messages in an execution round, in the order of their positions, and their proof."""

    messages: tuple[Message, ...]
    proof: BatchProof


def batch_groups(items: Iterable[tuple[Message, MessageProof]]) -> list[BatchGroup]:
    """The batch groups of a round from each message's single proof (all against one aggregated root):
    one group per batch (source chain, batch number, aggregated leaf, depth), in the order of each batch's
    first message, its messages sorted by position. Two messages at one position of one batch (one of them
    cannot be genuine) go to groups of their own, so that a group never names a position twice.
    ValueError if the proofs are against different roots."""
    roots: set[bytes] = set()
    batches: dict[tuple[int, int, int, int], list[dict[int, tuple[Message, MessageProof]]]] = {}
    for message, proof in items:
        roots.add(proof.aggregated_root)
        key = (message.source_chain_id, proof.batch_number, proof.aggregated_index, len(proof.batch_siblings))
        groups = batches.setdefault(key, [])
        for group in groups:
            if proof.index not in group:
                group[proof.index] = (message, proof)
                break
        else:
            groups.append({proof.index: (message, proof)})
    if len(roots) > 1:
        raise ValueError(f"a round's proofs are against one aggregated root, not {len(roots)}")
    found = []
    for (source, number, aggregated_index, depth), groups in batches.items():
        for group in groups:
            indices = sorted(group)
            first = group[indices[0]][1]
            nodes = multiproof_from_paths({i: group[i][1].batch_siblings for i in indices}, depth)
            siblings = first.aggregated_siblings
            batch = BatchProof(
                source, number, depth, tuple(indices), tuple(nodes), aggregated_index, siblings
            )
            found.append(BatchGroup(tuple(group[i][0] for i in indices), batch))
    return found


def _check_slots(public_inputs: PublicInputs) -> None:
    if len(public_inputs.slots) != HUB_SLOTS:
        raise ValueError(f"the Hub takes proofs with {HUB_SLOTS} value slots, not {len(public_inputs.slots)}")


def commitment(
    public_inputs: PublicInputs,
    capacity: int,
    priority_cursor: int = 0,
    priority_hash: bytes = EMPTY_PRIORITY_HASH,
) -> tuple[Any, ...]:
    """The ABI tuple of `Hub.BatchCommitment` for a batch proof's public inputs, its circuit's capacity
    and the chain's priority cursor with the queue's rolling hash there (the operator attests them)."""
    _check_slots(public_inputs)
    p = public_inputs
    head = (p.chain_id, p.batch_number, capacity, p.count, p.h_start, p.h_end, p.batch_root)
    return (*head, *p.slot_columns(), priority_cursor, priority_hash)


def commit_digest(
    public_inputs: PublicInputs,
    capacity: int,
    *,
    l1_chain_id: int,
    hub: str,
    priority_cursor: int = 0,
    priority_hash: bytes = EMPTY_PRIORITY_HASH,
) -> bytes:
    """What the operator signs to commit the batch on the Hub at `hub` on chain `l1_chain_id`
    (`Hub.commitDigest`): keccak256(abi.encode(COMMIT_TYPEHASH, l1ChainId, hub, uint32 capacity,
    uint256[22] publicInputs, uint64 priorityCursor, bytes32 priorityHash))."""
    _check_slots(public_inputs)
    values = public_inputs.values()
    return keccak(
        encode(
            ["bytes32", "uint256", "address", "uint32", f"uint256[{len(values)}]", "uint64", "bytes32"],
            [
                COMMIT_TYPEHASH,
                l1_chain_id,
                Web3.to_checksum_address(hub),
                capacity,
                values,
                priority_cursor,
                priority_hash,
            ],
        )
    )


FORCE_TYPEHASH = keccak(b"xrelay.Hub.requestPriorityOp.v1")


def force_digest(priority_id: bytes, body: bytes, *, l1_chain_id: int, hub: str) -> bytes:
    """What a source chain's operator signs to force one of its messages with the sealed `body`
    (`Hub.forceDigest`): keccak256(abi.encode(FORCE_TYPEHASH, l1ChainId, hub, bytes32 priorityId,
    bytes32 keccak256(body)))."""
    return keccak(
        encode(
            ["bytes32", "uint256", "address", "bytes32", "bytes32"],
            [FORCE_TYPEHASH, l1_chain_id, Web3.to_checksum_address(hub), priority_id, keccak(body)],
        )
    )


def priority_digest(chain_id: int, cursor: int, rolling_hash: bytes, *, l1_chain_id: int, hub: str) -> bytes:
    """What a chain's operator signs to report its priority cursor (`Hub.priorityDigest`):
    keccak256(abi.encode(PRIORITY_TYPEHASH, l1ChainId, hub, uint64 chainId, uint64 cursor, bytes32 hash))."""
    return keccak(
        encode(
            ["bytes32", "uint256", "address", "uint64", "uint64", "bytes32"],
            [PRIORITY_TYPEHASH, l1_chain_id, Web3.to_checksum_address(hub), chain_id, cursor, rolling_hash],
        )
    )


def sign_digest(account: LocalAccount, digest: bytes) -> bytes:
    """The operator's EIP-191 personal signature of a digest the Hub checks (commit_digest,
    priority_digest, force_digest): 65 bytes, r ‖ s ‖ v."""
    return bytes(account.sign_message(encode_defunct(primitive=digest)).signature)


def groth16_proof(proof: Proof) -> tuple[list[int], list[list[int]], list[int]]:
    """The ABI tuple of `Hub.Groth16Proof` (a, b, c), b's Fp2 halves imaginary part first (EIP-197),
    as `verifier_gen.calldata` gives them."""
    (bx0, bx1), (by0, by1) = proof.b
    return list(proof.a), [[bx1, bx0], [by1, by0]], list(proof.c)


@dataclass(frozen=True)
class SentMessage:
    """A `MessageSent` event: the message, and the leaf and outbox hash the Outbox computed."""

    message: Message
    leaf: int
    outbox_hash: int


def sent_messages(outbox: Contract, receipts: Iterable[TxReceipt]) -> list[SentMessage]:
    """Every `MessageSent` event of `outbox` in the given receipts, in order."""
    found: list[SentMessage] = []
    for receipt in receipts:
        # Other contracts' events in the same receipt (the router's, a token's) are skipped.
        for event in outbox.events.MessageSent().process_receipt(receipt, errors=DISCARD):
            args = event["args"]
            found.append(SentMessage(Message.from_event(args["message"]), args["leaf"], args["outboxHash"]))
    return found
