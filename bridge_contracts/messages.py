"""Messages as the Outbox emits them, and their leaves (docs/protocol.md, "Messages").

`Message` mirrors `Outbox.Message`; `Message.leaf()` computes in Python what `Outbox.leafOf`
computes on-chain, through the same `proofs.message` hashing the batch circuit uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from proofs.message import BODY_BITS, LeafPreimage


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
        return self.preimage().leaf()

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple of `Outbox.Message`, for contract calls."""
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
        """From the decoded `message` argument of a `MessageSent` event."""
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
