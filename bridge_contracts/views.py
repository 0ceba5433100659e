"""Typed views of the L1 Hub's state (src/Hub.sol), read by name instead of by position.

`HubChain` mirrors `Hub.ChainInfo` (the `chains(chainId)` getter), `HubBatch` mirrors
`Hub.BatchRecord` (the `batches(chainId, batchNumber)` getter) and `HubBusKey` mirrors `Hub.BusKey`
(the `busKeys(chainId)` getter), fields in the struct's order.
`hub_chain` and `hub_batch` make the call; code that makes its own (off the event loop, say) turns
the returned record into the view with `from_tuple`:

    info = HubChain.from_tuple(await asyncio.to_thread(hub.functions.chains(chain_id).call))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from web3 import Web3
from web3.contract import Contract


def _check_length(cls: type[HubChain | HubBatch | HubBusKey], getter: str, record: Sequence[Any]) -> None:
    names = [f.name for f in fields(cls)]
    if len(record) != len(names):
        raise ValueError(
            f"Hub.{getter} returns {len(names)} fields ({', '.join(names)}); {len(record)} were given"
        )


@dataclass(frozen=True)
class HubChain:
    """What the Hub has for a chain (`Hub.ChainInfo`); all zero for a chain never registered."""

    registered: bool
    validium: bool
    operator: str  # checksummed; the key that signs the chain's batches
    next_batch: int  # the number the next batch must have: also the number of batches settled
    outbox_hash: int  # the outbox hash the last settled batch ended on: the next batch's h_start

    @classmethod
    def from_tuple(cls, record: Sequence[Any]) -> HubChain:
        """From what `hub.functions.chains(chain_id).call()` returns."""
        _check_length(cls, "chains", record)
        registered, validium, operator, next_batch, outbox_hash = record
        return cls(
            registered=bool(registered),
            validium=bool(validium),
            operator=str(Web3.to_checksum_address(operator)),
            next_batch=int(next_batch),
            outbox_hash=int(outbox_hash),
        )


@dataclass(frozen=True)
class HubBatch:
    """What the Hub has for a batch of a chain (`Hub.BatchRecord`); all zero for one not committed."""

    batch_root: int
    depth: int  # of the batch tree: log2 of the capacity of the circuit that proved it
    leaf_index: int  # the batch's position in the aggregated tree
    committed: bool

    @classmethod
    def from_tuple(cls, record: Sequence[Any]) -> HubBatch:
        """From what `hub.functions.batches(chain_id, batch_number).call()` returns."""
        _check_length(cls, "batches", record)
        batch_root, depth, leaf_index, committed = record
        return cls(
            batch_root=int(batch_root),
            depth=int(depth),
            leaf_index=int(leaf_index),
            committed=bool(committed),
        )


@dataclass(frozen=True)
class HubBusKey:
    """A chain's bus encryption key on the Hub (`Hub.BusKey`); all zero when none was registered."""

    current: bytes  # 32 bytes: the X25519 public key peers seal envelopes to
    previous: bytes  # the key `current` replaced (zero bytes if none)
    changed_at: int  # when it was replaced (unix time of the L1 block)

    @classmethod
    def from_tuple(cls, record: Sequence[Any]) -> HubBusKey:
        """From what `hub.functions.busKeys(chain_id).call()` returns."""
        _check_length(cls, "busKeys", record)
        current, previous, changed_at = record
        return cls(current=bytes(current), previous=bytes(previous), changed_at=int(changed_at))


def hub_chain(hub: Contract, chain_id: int) -> HubChain:
    """`Hub.chains(chain_id)`, as of the node's latest block."""
    return HubChain.from_tuple(hub.functions.chains(chain_id).call())


def hub_batch(hub: Contract, chain_id: int, batch_number: int) -> HubBatch:
    """`Hub.batches(chain_id, batch_number)`, as of the node's latest block."""
    return HubBatch.from_tuple(hub.functions.batches(chain_id, batch_number).call())
