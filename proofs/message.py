"""The message leaf and the outbox rolling hash: the hashing that the Outbox contract, the batch
circuit and the Inbox all compute, so that a batch proof speaks about the messages the chain sent.

    leaf       = Poseidon(destChainId, assetId >> 128, assetId mod 2^128, amount, body)
    outboxHash = Poseidon(outboxHash, leaf), starting at 0

`body` is the rest of the message (source chain, nonce, sender, target, data, assetData) hashed
with keccak256 and cut to 248 bits by the Outbox (`bridge_contracts.messages`); the circuit never
looks inside it. Every field is below the BN254 scalar field R without reduction: chain ids have
64 bits, the asset id is split into 128-bit halves, amounts have at most 128 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from proofs.field import split128
from proofs.poseidon import poseidon

CHAIN_ID_BITS = 64
AMOUNT_BITS = 128
BODY_BITS = 248
ASSET_ID_BITS = 256


def _check_width(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an integer in [0, 2^{bits}), got {value}")


@dataclass(frozen=True)
class LeafPreimage:
    """The fields of a message that its leaf hashes, as the batch circuit sees them."""

    dest_chain_id: int
    asset_id: int  # 0 when the message carries no value
    amount: int
    body: int

    def __post_init__(self) -> None:
        _check_width("dest_chain_id", self.dest_chain_id, CHAIN_ID_BITS)
        _check_width("asset_id", self.asset_id, ASSET_ID_BITS)
        _check_width("amount", self.amount, AMOUNT_BITS)
        _check_width("body", self.body, BODY_BITS)
        if (self.asset_id == 0) != (self.amount == 0):
            raise ValueError(
                f"a message carries value exactly when it names an asset: asset_id={self.asset_id:#x}, "
                f"amount={self.amount}"
            )

    def fields(self) -> list[int]:
        """The leaf's Poseidon inputs, in order."""
        asset_hi, asset_lo = split128(self.asset_id)
        return [self.dest_chain_id, asset_hi, asset_lo, self.amount, self.body]

    def leaf(self) -> int:
        return poseidon(self.fields())


def roll(outbox_hash: int, leaf: int) -> int:
    """The outbox hash after one more message."""
    return poseidon([outbox_hash, leaf])
