"""What every step of the pipeline works with: the config, the store, both chains and their
contracts, the senders, the bus, the hub client and the metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from nacl.public import PrivateKey
from web3.contract import Contract

from bridge_contracts.chain import Chain
from bridge_contracts.views import HubBatch, HubBusKey, HubChain
from hub.bus import Bus
from hub.client import HubClient
from hub.envelope import Envelope, Keyring, institution_topic, public_key_of
from proofs.formats import snarkjs_json
from proofs.groth16.keys import VerifyingKey
from relayer import config as institution_config
from relayer.config import ConfigError, InstitutionConfig, PeerConfig
from relayer.metrics import Metrics
from relayer.sender import Sender
from relayer.store import L1_PEER, Halt, Store
from relayer.watcher import Watcher

log = logging.getLogger(__name__)

HUB_RECORD_TTL = 30.0
"""Seconds a chain's operator and bus key, read from the L1 Hub, are trusted before being read again."""


FRESH_READ_SECONDS = 5.0
"""The least time between two reads of this chain's bus key from L1 that an envelope causes."""
REFUSALS_PER_MINUTE = 120
"""Refused envelopes recorded in the store per sender and minute; a flood beyond is only counted."""


class PerMinute:
    """What each sender (a peer's name, or None) did in the last minute: a sliding window of times."""

    def __init__(self) -> None:
        self._times: dict[str | None, deque[float]] = {}

    def count(self, sender: str | None) -> int:
        """How many times `sender` was counted in the last 60 s."""
        window = self._times.setdefault(sender, deque())
        while window and window[0] < time.monotonic() - 60:
            window.popleft()
        return len(window)

    def add(self, sender: str | None) -> None:
        self._times.setdefault(sender, deque()).append(time.monotonic())


class NoBusKey(RuntimeError):
    """A peer has no bus key on the L1 Hub: nothing can be sealed to it yet."""


class Wakeups:
    """How one step of the pipeline wakes the step that consumes what it wrote (the batcher wakes
    the settler, the settler the pusher, ...). Each step waits on its own event, up to its poll
    interval, instead of spinning."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, step: str) -> asyncio.Event:
        return self._events.setdefault(step, asyncio.Event())

    def wake(self, *steps: str) -> None:
        for step in steps:
            self.event(step).set()


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
    desk: Contract | None = None  # this chain's SwapDesk, if it has one
    wakeups: Wakeups = field(default_factory=Wakeups)
    watchers: dict[str, Watcher] = field(default_factory=dict)  # by name: "outbox", "l1-deposits"
    bus_secrets: tuple[PrivateKey, ...] = ()
    """This institution's bus keys from its config: the current one, then the previous one."""
    _config_mtime: float = 0.0
    _hub_records: dict[int, tuple[HubChain, HubBusKey, float]] = field(default_factory=dict)
    _refused: PerMinute = field(default_factory=PerMinute)  # the refusals recorded, per sender

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

    def outgoing_halt(self) -> Halt | None:
        """The halt in force over this chain's outgoing pipeline, if any: nothing is batched, settled
        or pushed until an operator decides (`xrelay resume`)."""
        return self.store.active_halt("outbox")

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

    def refuse(
        self,
        *,
        peer: str | None,
        chain_id: int | None,
        kind: str,
        reason: str,
        raw: bytes,
        size: int | None = None,
    ) -> None:
        """Record a refused input (`Store.refuse`), at most REFUSALS_PER_MINUTE a minute per sender:
        beyond that a flood is counted in the metrics and logged once a minute, not written, so it
        neither fills the disk nor holds the event loop."""
        recorded = self._refused.count(peer)
        if recorded >= REFUSALS_PER_MINUTE:
            self.metrics.failure("refusal not recorded: over the per-minute budget")
            if recorded == REFUSALS_PER_MINUTE:
                self._refused.add(peer)  # one warning per full window
                log.warning(
                    "%s sent more than %d refused inputs in a minute: more are counted, not recorded",
                    peer or "an unknown sender",
                    REFUSALS_PER_MINUTE,
                )
            return
        self._refused.add(peer)
        self.store.refuse(peer=peer, chain_id=chain_id, kind=kind, reason=reason, raw=raw, size=size)

    async def call(self, fn: Any) -> Any:
        """A contract view call, off the event loop."""
        return await asyncio.to_thread(fn.call)

    async def hub_chain(self, chain_id: int) -> HubChain:
        """What the L1 Hub has for a chain (its operator signs that chain's batches and envelopes)."""
        return HubChain.from_tuple(await self.call(self.hub.functions.chains(chain_id)))

    async def hub_record(self, chain_id: int, *, fresh: bool = False) -> tuple[HubChain, HubBusKey]:
        """A chain's record and bus key on the L1 Hub, read again once HUB_RECORD_TTL has passed (or
        now, if `fresh`)."""
        cached = self._hub_records.get(chain_id)
        if fresh or cached is None or cached[2] < time.monotonic() - HUB_RECORD_TTL:
            record = await self.hub_chain(chain_id)
            bus_key = HubBusKey.from_tuple(await self.call(self.hub.functions.busKeys(chain_id)))
            cached = (record, bus_key, time.monotonic())
            self._hub_records[chain_id] = cached
        return cached[0], cached[1]

    def may_read_l1_again(self) -> bool:
        """Whether an envelope sealed to a key the cached record does not know may make this daemon
        read its own chain's record from L1 now: at most once every FRESH_READ_SECONDS, so envelopes
        sealed to random keys cannot drain the RPC endpoint."""
        cached = self._hub_records.get(self.chain_id)
        return cached is None or cached[2] < time.monotonic() - FRESH_READ_SECONDS

    async def keyring(self, *, fresh: bool = False) -> Keyring:
        """The keys envelopes to this institution open with now: of the configured ones, the key the
        L1 Hub has for this chain, and the one it replaced until `bus.key_grace_seconds` after."""
        _, registered = await self.hub_record(self.chain_id, fresh=fresh)
        grace = self.config.bus.key_grace_seconds
        keys: dict[bytes, PrivateKey] = {}
        retired: dict[bytes, str] = {}
        for secret in self.bus_secrets:
            public = public_key_of(secret)
            in_grace = public == registered.previous and time.time() < registered.changed_at + grace
            if public == registered.current or in_grace:
                keys[public] = secret
            elif public == registered.previous:
                retired[public] = (
                    f"replaced on the L1 Hub at {registered.changed_at} and past its grace period "
                    f"({grace:g} s, bus.key_grace_seconds)"
                )
            else:
                retired[public] = "not this chain's bus key on the L1 Hub"
        return Keyring(keys, retired)

    async def bus_key_of(self, chain_id: int) -> bytes:
        """The bus key the L1 Hub has for a chain now: what anything for that chain's institution is
        sealed to (`hub.envelope.seal`: an envelope's body, or a message forced through L1)."""
        _, key = await self.hub_record(chain_id)
        if not any(key.current):
            raise NoBusKey(f"chain {chain_id} has no bus key on the L1 Hub yet")
        return key.current

    async def send(self, peer: str, kind: str, body: dict[str, Any]) -> None:
        """Seal `body` to `peer`'s bus key on the L1 Hub, sign it and publish it on its topic."""
        config = self.peer_by_name(peer)
        if config is None:
            raise ValueError(f"{peer} is not a peer")
        key = await self.bus_key_of(config.chain_id)
        envelope = Envelope(kind, self.config.institution, peer, self.chain_id, body)
        raw = await asyncio.to_thread(envelope.seal, key, self.l2.signer)
        await self.bus.publish(institution_topic(peer, self.config.institution), raw)

    async def hub_batch(self, chain_id: int, batch_number: int) -> HubBatch:
        """What the L1 Hub has for a batch of a chain."""
        return HubBatch.from_tuple(await self.call(self.hub.functions.batches(chain_id, batch_number)))


@cache
def _verifying_key(path: Path) -> VerifyingKey:
    return snarkjs_json.verifying_key_from_json(orjson.loads(path.read_bytes()), str(path))


def now() -> float:
    return time.time()
