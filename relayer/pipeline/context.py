"""What every step of the pipeline works with: the config, the store, both chains and their
contracts, the senders, the bus, the hub client and the metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from web3 import Web3
from web3.contract import Contract

from bridge_contracts.chain import Chain
from bridge_contracts.messages import Message
from hub.bus import Bus
from hub.client import HubClient
from hub.delivery import message_key
from proofs.formats import snarkjs_json
from proofs.groth16.keys import VerifyingKey
from relayer import config as institution_config
from relayer.config import ConfigError, InstitutionConfig, PeerConfig
from relayer.metrics import Metrics
from relayer.sender import Sender
from relayer.store import MessageRow, Store

log = logging.getLogger(__name__)

L1_PEER = "l1"


@dataclass
class Context:
    config_path: Path
    config: InstitutionConfig
    store: Store
    l2: Chain
    l1: Chain
    outbox: Contract
    inbox: Contract
    hub: Contract
    l2_sender: Sender
    l1_sender: Sender
    bus: Bus
    hub_client: HubClient
    metrics: Metrics
    _config_mtime: float = 0.0

    @property
    def chain_id(self) -> int:
        return self.config.chain.chain_id

    @property
    def l1_chain_id(self) -> int:
        return self.config.l1.chain_id

    def peer_by_chain(self, chain_id: int) -> PeerConfig | None:
        return next((p for p in self.config.peers if p.chain_id == chain_id), None)

    def peer_by_name(self, name: str) -> PeerConfig | None:
        return next((p for p in self.config.peers if p.name == name), None)

    def peer_name(self, chain_id: int) -> str:
        """The name a message's other end is recorded under: a peer's name, "l1", or "chain-<id>"."""
        if chain_id == self.l1_chain_id:
            return L1_PEER
        peer = self.peer_by_chain(chain_id)
        return peer.name if peer is not None else f"chain-{chain_id}"

    def verifying_key(self, capacity: int) -> VerifyingKey:
        return _verifying_key(self.config.batch.keys_dir / f"batch-{capacity}.vk.json")

    def reload_peers(self) -> bool:
        """Re-read the config file if it changed (peers are edited while the daemon runs); an invalid
        file is logged and the peers in force stay. True when the peers changed."""
        try:
            mtime = self.config_path.stat().st_mtime
        except OSError:
            return False
        if mtime == self._config_mtime:
            return False
        self._config_mtime = mtime
        try:
            fresh = institution_config.load(self.config_path)
        except ConfigError as exc:
            log.error("config changed but is invalid; keeping the peers in force: %s", exc)
            return False
        if fresh.peers == self.config.peers:
            return False
        self.config = self.config.model_copy(update={"peers": fresh.peers})
        log.info("peers now: %s", ", ".join(f"{p.name} ({p.chain_id})" for p in fresh.peers) or "none")
        return True

    async def call(self, fn: Any) -> Any:
        """A contract view call, off the event loop."""
        return await asyncio.to_thread(fn.call)

    async def peer_operator(self, chain_id: int) -> str:
        """The operator address the L1 Hub has for a chain (who signs that chain's envelopes)."""
        info = await self.call(self.hub.functions.chains(chain_id))
        return str(Web3.to_checksum_address(info[2]))


@cache
def _verifying_key(path: Path) -> VerifyingKey:
    return snarkjs_json.verifying_key_from_json(orjson.loads(path.read_bytes()), str(path))


def now() -> float:
    return time.time()


def message_row(m: Message, peer: str, direction: str, block: int | None = None) -> MessageRow:
    """A message as the store keeps it; `peer` is the other end's name (see Context.peer_name)."""
    return MessageRow(
        id=message_key(m.source_chain_id, m.nonce),
        direction=direction,
        peer=peer,
        source_chain_id=m.source_chain_id,
        dest_chain_id=m.dest_chain_id,
        nonce=m.nonce,
        sender=m.sender,
        target=m.target,
        asset_id="0x" + m.asset_id.hex(),
        amount=m.amount,
        data=m.data,
        asset_data=m.asset_data,
        leaf=m.leaf(),
        block_number=block,
        sent_at=now(),
    )


def batch_messages(store: Store, number: int) -> list[dict[str, Any]]:
    """This chain's messages in its batch `number`, in nonce order."""
    return sorted(store.messages(direction="out", batch_number=number), key=lambda m: m["nonce"])


def message_of(row: dict[str, Any]) -> Message:
    """A stored message row as the Outbox's Message."""
    return Message(
        source_chain_id=row["source_chain_id"],
        dest_chain_id=row["dest_chain_id"],
        nonce=row["nonce"],
        sender=row["sender"],
        target=row["target"],
        asset_id=bytes.fromhex(row["asset_id"][2:]),
        amount=int(row["amount"]),
        data=bytes(row["data"]),
        asset_data=bytes(row["asset_data"]),
    )
