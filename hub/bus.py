"""The bus protocol every xrelay daemon speaks: MQTT topics, signed envelopes, and a client.

Topics: `xrelay/v1/institutions/<name>` carries everything addressed to one institution;
`xrelay/v1/hub/roots` carries the hub service's root announcements. Everything is published with
QoS 1 and every client keeps a persistent session (client id "xrelay-<name>", clean_session false), so
a subscriber that was away receives what was published meanwhile. QoS 1 is at-least-once: a receiver
may see an envelope twice and must treat its `id` as idempotent.

An envelope is one JSON object (docs/protocol.md):

    {"version": 1, "kind": "messages", "sender": "bank-a", "chain_id": 901, "id": "…",
     "sent_at": 1718000000.5, "body": {…}, "signature": "0x…"}

signed EIP-191 (personal_sign) by the sender's operator key over
keccak256(orjson.dumps(envelope without "signature", option=OPT_SORT_KEYS)). A receiver accepts it
only from a known peer, with that peer's chain id, signed by that chain's operator as registered on
the L1 Hub (`open_envelope`). Root announcements are the exception: they are unsigned hints that a
new aggregated root exists; a receiver checks the root on L1 before it relies on it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiomqtt
import orjson
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from web3 import Web3

from hub.retry import RETRY

log = logging.getLogger("xrelay.hub.bus")

VERSION = 1
ROOTS_TOPIC = "xrelay/v1/hub/roots"
_INSTITUTIONS = "xrelay/v1/institutions/"

KIND_MESSAGES = "messages"
"""Source daemon -> destination daemon: settled messages with their proofs."""
KIND_RECEIPTS = "receipts"
"""Destination daemon -> source daemon: what became of them."""
KIND_ROOT = "root"
"""Hub service -> everyone, on ROOTS_TOPIC, unsigned: {"size": int, "root": "0x…", "l1_block": int}."""

HUB_SENDER = "hub"
"""The `sender` of root announcements."""

_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")  # an institution's name, as in its config
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "version": int,
    "kind": str,
    "sender": str,
    "chain_id": int,
    "id": str,
    "sent_at": (int, float),
    "body": dict,
}


def institution_topic(name: str) -> str:
    """The topic that carries everything addressed to institution `name`."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an institution name: 1 to 63 lower-case letters, digits and '-', "
            "starting with a letter"
        )
    return _INSTITUTIONS + name


# --- envelopes --------------------------------------------------------------------------------


class PeerKey(NamedTuple):
    """What a receiver knows of a peer: its chain id and that chain's operator on the L1 Hub."""

    chain_id: int
    operator: str


class EnvelopeRefused(ValueError):
    """An envelope that was not accepted. `reason` says why; `sender` and `chain_id` are what the
    envelope claimed, where it could be read (None otherwise)."""

    def __init__(self, reason: str, sender: str | None = None, chain_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sender = sender
        self.chain_id = chain_id


def new_envelope_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Envelope:
    kind: str
    sender: str
    chain_id: int
    body: dict[str, Any]
    id: str = field(default_factory=new_envelope_id)
    sent_at: float = field(default_factory=time.time)
    version: int = VERSION
    signature: str | None = None
    """0x-hex, 65 bytes; None for an unsigned envelope (a root announcement)."""

    def unsigned(self) -> dict[str, Any]:
        """The envelope's fields as JSON values, without its signature."""
        return {
            "version": self.version,
            "kind": self.kind,
            "sender": self.sender,
            "chain_id": self.chain_id,
            "id": self.id,
            "sent_at": self.sent_at,
            "body": self.body,
        }

    def digest(self) -> bytes:
        """keccak256 of the canonical JSON (sorted keys) of the envelope without its signature."""
        return keccak(_canonical(self.unsigned()))

    def sign(self, account: LocalAccount) -> bytes:
        """The wire form, signed by `account` (the sender chain's operator)."""
        # Sign what a receiver will see: the body as it reads back from JSON (tuples become lists).
        unsigned = orjson.loads(_canonical(self.unsigned()))
        signed = account.sign_message(encode_defunct(primitive=keccak(_canonical(unsigned))))
        return _canonical({**unsigned, "signature": "0x" + bytes(signed.signature).hex()})

    def to_bytes(self) -> bytes:
        """The wire form as it stands: unsigned unless this envelope carries a signature."""
        fields = self.unsigned()
        if self.signature is not None:
            fields["signature"] = self.signature
        return _canonical(fields)


def _canonical(fields: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise ValueError(
            f"envelope is not JSON: {exc} (write integers beyond 64 bits as decimal strings)"
        ) from None


def _parse(raw: bytes) -> Envelope:
    """An envelope's structure checked: JSON object, version, every field with its type."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeRefused(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnvelopeRefused(f"not a JSON object but {type(data).__name__}")
    sender = data.get("sender") if isinstance(data.get("sender"), str) else None
    chain_id = data.get("chain_id") if _is_int(data.get("chain_id")) else None
    missing = [name for name in _FIELDS if name not in data]
    if "version" in missing:
        raise EnvelopeRefused("missing field: version", sender, chain_id)
    if data["version"] != VERSION or not _is_int(data["version"]):
        raise EnvelopeRefused(
            f"version {data['version']!r} is not spoken here (this node speaks version {VERSION})",
            sender,
            chain_id,
        )
    if missing:
        raise EnvelopeRefused(f"missing fields: {', '.join(missing)}", sender, chain_id)
    unknown = sorted(set(data) - set(_FIELDS) - {"signature"})
    if unknown:
        raise EnvelopeRefused(f"unknown fields: {', '.join(unknown)}", sender, chain_id)
    for name, kind in _FIELDS.items():
        value = data[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise EnvelopeRefused(
                f"field {name} has the wrong type ({type(value).__name__}: {str(value)[:40]})",
                sender,
                chain_id,
            )
    signature = data.get("signature")
    if signature is not None and not (isinstance(signature, str) and _SIGNATURE.fullmatch(signature)):
        raise EnvelopeRefused("signature is not 65 bytes of 0x-hex", sender, chain_id)
    return Envelope(
        kind=data["kind"],
        sender=data["sender"],
        chain_id=data["chain_id"],
        body=data["body"],
        id=data["id"],
        sent_at=data["sent_at"],
        version=data["version"],
        signature=signature,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def open_envelope(raw: bytes, peers: Mapping[str, PeerKey]) -> Envelope:
    """The envelope in `raw`, if it is well formed and signed by its sender's operator.

    `peers` maps each known institution's name to its chain id and that chain's operator (as the L1
    Hub registers it). Raises EnvelopeRefused with the reason otherwise.
    """
    envelope = _parse(raw)
    sender, chain_id = envelope.sender, envelope.chain_id
    if envelope.signature is None:
        raise EnvelopeRefused("unsigned: the envelope has no signature", sender, chain_id)
    peer = peers.get(sender)
    if peer is None:
        raise EnvelopeRefused(f"unknown sender {sender!r}: not a peer of this institution", sender, chain_id)
    if chain_id != peer.chain_id:
        raise EnvelopeRefused(
            f"chain id {chain_id} is not {sender}'s: its chain is {peer.chain_id}", sender, chain_id
        )
    digest = keccak(_canonical(envelope.unsigned()))
    try:
        signer = Account.recover_message(encode_defunct(primitive=digest), signature=envelope.signature)
    except Exception:  # a malformed signature (bad v, s out of range) recovers nothing
        raise EnvelopeRefused("the signature recovers no address", sender, chain_id) from None
    if signer.lower() != peer.operator.lower():
        raise EnvelopeRefused(
            f"signed by {signer}, not by {sender}'s operator {Web3.to_checksum_address(peer.operator)}",
            sender,
            chain_id,
        )
    return envelope


@dataclass(frozen=True)
class RootAnnouncement:
    """The hub service saw the L1 Hub's aggregated tree reach `size` leaves with `root`, in `l1_block`.
    A hint only: check the root on L1 (`Hub.isAggregatedRoot`) before relying on it."""

    size: int
    root: bytes
    l1_block: int

    def envelope(self, l1_chain_id: int) -> bytes:
        """The unsigned wire form, for ROOTS_TOPIC."""
        body = {"size": self.size, "root": "0x" + self.root.hex(), "l1_block": self.l1_block}
        return Envelope(kind=KIND_ROOT, sender=HUB_SENDER, chain_id=l1_chain_id, body=body).to_bytes()


def read_root_announcement(raw: bytes) -> RootAnnouncement:
    """The announcement in `raw` (no signature is required or checked). Raises EnvelopeRefused."""
    envelope = _parse(raw)
    if envelope.kind != KIND_ROOT:
        raise EnvelopeRefused(f"kind {envelope.kind!r} is not a root announcement", envelope.sender)
    body = envelope.body
    size, root, l1_block = body.get("size"), body.get("root"), body.get("l1_block")
    if not (
        _is_int(size)
        and _is_int(l1_block)
        and isinstance(root, str)
        and re.fullmatch(r"0x[0-9a-f]{64}", root)
    ):
        raise EnvelopeRefused(
            'a root announcement\'s body is {"size": int, "root": "0x" + 64 hex, "l1_block": int}',
            envelope.sender,
            envelope.chain_id,
        )
    assert isinstance(size, int) and isinstance(l1_block, int)
    return RootAnnouncement(size=size, root=bytes.fromhex(root[2:]), l1_block=l1_block)


# --- the client -------------------------------------------------------------------------------


class BusError(RuntimeError):
    """The bus cannot do what was asked (a bad URL, a full outgoing queue, a closed bus)."""


@dataclass(frozen=True)
class BusMessage:
    topic: str
    payload: bytes


@dataclass(frozen=True)
class BusTls:
    """TLS for mqtts://: CA certificates to trust (the system's when None) and a client certificate."""

    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_cert) if self.ca_cert else None)
        if self.client_cert is not None:
            context.load_cert_chain(str(self.client_cert), str(self.client_key) if self.client_key else None)
        return context


_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


def _broker_address(url: str) -> tuple[str, int, bool]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BusError(f"bus url {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise BusError(f"bus url {url!r}: the scheme must be mqtt or mqtts")
    if not parts.hostname:
        raise BusError(f"bus url {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise BusError(f"bus url {url!r}: give the user name and password apart, never in the URL")
    return parts.hostname, port or _DEFAULT_PORTS[parts.scheme], parts.scheme == "mqtts"


class Bus:
    """One institution's (or the hub's) connection to the broker.

    `async with Bus(url, name) as bus:` connects in the background and keeps reconnecting, on the
    retry policy (`hub.retry.RETRY`), whenever the broker goes away. `publish`
    never waits for the broker: messages are queued in memory and sent, in order, each with QoS 1,
    as soon as a connection is up; one leaves the queue only once the broker acknowledged it, so a
    message published while the broker is away is sent when it returns (and, after a lost
    acknowledgement, possibly twice). The queue lives in this process only: a daemon's store is the
    durable record of what still has to be sent. `messages()` yields what arrives on `topics`
    (the institution's own topic and ROOTS_TOPIC by default), across reconnections.
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        topics: Sequence[str] | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: BusTls | None = None,
        max_pending: int = 100_000,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, secure = _broker_address(url)
        self.url = url
        self.name = name
        self.client_id = f"xrelay-{name}"
        self.topics = tuple(topics) if topics is not None else (institution_topic(name), ROOTS_TOPIC)
        self._username = username
        self._password = password
        if tls is not None and not secure:
            raise BusError(f"bus url {url!r}: TLS settings need an mqtts:// URL")
        try:
            self._tls_context = (tls or BusTls()).context() if secure else None
        except (OSError, ssl.SSLError) as exc:
            raise BusError(f"bus {url!r}: cannot load the TLS certificates: {exc}") from None
        self.max_pending = max_pending
        self.timeout = timeout
        self._outbox: deque[tuple[str, bytes, bool]] = deque()
        self._outbox_ready = asyncio.Event()
        self._outbox_empty = asyncio.Event()
        self._outbox_empty.set()
        self._inbox: asyncio.Queue[BusMessage | None] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def pending(self) -> int:
        """Messages published but not yet acknowledged by the broker."""
        return len(self._outbox)

    async def __aenter__(self) -> Bus:
        if self._task is not None or self._closed:
            raise BusError("a Bus is entered once")
        self._task = asyncio.create_task(self._run(), name=f"bus {self.client_id}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Send what is queued (waiting at most `drain_timeout` seconds), then disconnect."""
        if self._closed:
            return
        if self._outbox and self.connected:
            await self.drain(drain_timeout)
        self._closed = True
        if self._outbox:
            log.warning(
                "event=bus_closed_with_pending client=%s pending=%d", self.client_id, len(self._outbox)
            )
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._inbox.put_nowait(None)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a connection is up and subscribed (TimeoutError after `timeout` seconds)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued message was acknowledged; False if `timeout` ran out first."""
        try:
            await asyncio.wait_for(self._outbox_empty.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue `payload` for `topic` (QoS 1); it is sent as soon as the broker is reachable."""
        if self._closed:
            raise BusError(f"bus {self.client_id} is closed")
        if len(self._outbox) >= self.max_pending:
            raise BusError(
                f"bus {self.client_id}: {len(self._outbox)} messages wait for the broker at {self.url}; "
                "refusing more until it is back"
            )
        self._outbox.append((topic, payload, retain))
        self._outbox_empty.clear()
        self._outbox_ready.set()

    async def messages(self) -> AsyncIterator[BusMessage]:
        """What arrives on this bus's topics, in order, until the bus is closed."""
        while (message := await self._inbox.get()) is not None:
            yield message
        self._inbox.put_nowait(None)  # let another reader stop as well

    # --- the connection loop ------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            clean_session=False,
            username=self._username,
            password=self._password,
            tls_context=self._tls_context,
            timeout=self.timeout,
        )

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                async with self._client() as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self._connected.set()
                    failures = 0
                    log.info(
                        "event=bus_connected client=%s broker=%s pending=%d",
                        self.client_id,
                        self.url,
                        self.pending,
                    )
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                failures += 1
                state = "lost" if self._connected.is_set() else "unreachable"
                log.warning(
                    "event=bus_%s client=%s broker=%s error=%r retry_in=%.1fs pending=%d",
                    state,
                    self.client_id,
                    self.url,
                    str(exc),
                    RETRY.delay(failures),
                    self.pending,
                )
            finally:
                self._connected.clear()
            await asyncio.sleep(RETRY.delay(failures))

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Receive and send over one connection until it fails (the failure is raised)."""
        tasks = [asyncio.create_task(self._receive(client)), asyncio.create_task(self._send(client))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            raw = payload if isinstance(payload, bytes) else str(payload).encode()
            await self._inbox.put(BusMessage(topic=str(message.topic), payload=raw))

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            if not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            topic, payload, retain = self._outbox[0]
            await client.publish(topic, payload, qos=1, retain=retain)
            self._outbox.popleft()  # acknowledged: only now does it leave the queue
            if not self._outbox:
                self._outbox_empty.set()
