"""The MQTT client every xrelay daemon and the hub service use (what they say: hub/envelope.py).

Everything is published with QoS 1 and every client keeps a persistent session (client id
"xrelay-<name>", clean_session false), so a subscriber that was away receives what was published
meanwhile. QoS 1 is at-least-once: a receiver may see an envelope twice and must treat its `id` as
idempotent.

A connection can look up and still deliver nothing: another client took the session over with the
same client id, or the broker froze and the client came back over a session the broker no longer
serves. A daemon's Bus therefore probes itself (`probe_seconds`): it publishes an unpredictable token
on the institution's own probe topic, `institution_topic(name, name)`, which only that institution
may write, and listens for it. Silent for `deaf_after_seconds` while connected, it is *deaf*: it
raises the alarm, starts a fresh session (one connection with clean_session true wipes the broker's
stale one, then persistent sessions again), subscribes again and, once it hears itself, calls
`on_recovered` so the daemon asks its peers to push again what waits for a receipt.

What arrives is queued per sender (the sender the topic names; ROOTS_TOPIC and any other subscribed
topic each have a queue of their own) and `messages()` takes from the queues in turn, so one sender
flooding the bus delays the others by one message at most. A queue holds `per_sender_pending`
messages of at most `per_sender_bytes` in all; what arrives when its queue is full, what is larger
than `max_payload_bytes`, a retained message on an inbox topic (stale garbage the broker would hand
over at every subscription), a sender `senders` does not know (only peers get a queue) and anything
on a topic that is not ours is dropped and reported to `on_dropped`. Dropping loses nothing
for good: a sender pushes again what gets no receipt.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import secrets
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

from hub.envelope import ROOTS_TOPIC, inbox_filter, institution_topic, sender_of, topic_matches
from hub.retry import RETRY

log = logging.getLogger("xrelay.hub.bus")

__all__ = [
    "DROP_KINDS",
    "ROOTS_TOPIC",
    "Bus",
    "BusDrop",
    "BusError",
    "BusMessage",
    "BusTls",
]


# --- the client -------------------------------------------------------------------------------


class BusError(RuntimeError):
    """The bus cannot do what was asked (a bad URL, a full outgoing queue, a closed bus)."""


@dataclass(frozen=True)
class BusMessage:
    topic: str
    payload: bytes
    sender: str | None = None
    """The institution the topic names as the sender (xrelay/v2/institutions/<me>/<sender>); None on
    ROOTS_TOPIC and on other subscribed topics."""


STALL_SECONDS = 1.0
"""An event loop that woke this much later than asked was stalled, not the broker silent."""
DROP_KINDS = ("too_large", "queue_full", "retained", "foreign_topic")
"""Why the bus drops an incoming message (`BusDrop.kind`, a metric's label)."""
DROP_HEAD_BYTES = 4096


@dataclass(frozen=True)
class BusDrop:
    """An incoming message the bus dropped before anyone read it, as `on_dropped` is told."""

    sender: str | None
    """The sender its topic names (None: not an inbox topic)."""
    topic: str
    size: int
    kind: str
    """One of DROP_KINDS."""
    reason: str
    """What happened, for a person ("too large: 5000000 bytes, more than 4194304")."""
    head: bytes
    """Its first DROP_HEAD_BYTES bytes."""


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
_REPORTED_DIGESTS = 4096  # retained payloads remembered, so each is reported once
_TOKENS = 4096  # probe tokens awaited at most


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


class _Deaf(Exception):
    """Raised inside a connection the bus no longer hears itself on: start a fresh session."""


class Bus:
    """One institution's (or the hub's) connection to the broker.

    `async with Bus(url, name) as bus:` connects in the background and keeps reconnecting, on the
    retry policy (`hub.retry.RETRY`), whenever the broker goes away. `publish`
    never waits for the broker: messages are queued in memory and sent, in order, each with QoS 1,
    as soon as a connection is up; one leaves the queue only once the broker acknowledged it, so a
    message published while the broker is away is sent when it returns (and, after a lost
    acknowledgement, possibly twice). The queue lives in this process only: a daemon's store is the
    durable record of what still has to be sent. `messages()` yields what arrives on `topics`
    (the institution's inbox, `inbox_filter(name)`, and ROOTS_TOPIC by default), across
    reconnections, taking from each sender's queue in turn.

    Liveness (with `probe_seconds`): every `probe_seconds` the bus publishes a fresh random token
    (secrets.token_hex) on `institution_topic(name, name)` and records when it last heard one back.
    Only a token this bus issued and has not yet heard counts, so no one else can make it believe it
    hears: the broker's ACL lets only the institution write that topic, and a token cannot be guessed
    or replayed. Probes are never yielded by `messages()`. Not hearing itself for
    `deaf_after_seconds` on a connection (counted from the last token heard, or from the connection's
    start if that is later), the bus is deaf: it logs event=bus_deaf (ERROR), counts the episode,
    disconnects, connects once with clean_session true (which wipes the session the broker keeps for
    its client id), then reconnects with a persistent session, subscribes and probes again; it stays
    deaf, trying again every `deaf_after_seconds`, until it hears a token. Then it logs
    event=bus_recovered and calls `on_recovered()` (a plain function, or one returning an awaitable,
    which is run as a task): what peers published while it was deaf never reached it, and the daemon
    asks them to push again. `on_recovered()` is also called when a reconnection finds that the broker
    kept no session for this client id (CONNACK's session-present flag is 0: the broker restarted and
    forgot it, or another client took the id with a clean session, which Mosquitto allows by closing
    ours): what was published to it meanwhile is gone just the same (event=bus_session_lost); and
    on every other reconnection too: a QoS 1 delivery in flight on the lost connection, or one a
    thief holding the session for a moment took, may be gone as well.

    Hooks, attributes a caller may set at any time: `on_recovered: Callable[[], object] | None` and
    `on_dropped: Callable[[BusDrop], None] | None` (called in the event loop, for each message
    dropped; a retained one once per distinct payload). Their exceptions are logged, never raised.

    State, for status pages and metrics: `connected`, `deaf`, `deaf_since` and `last_heard` (unix
    times, None when never), `deaf_episodes`, `recoveries`, `reconnects` (connections made after the
    first), `sessions_lost`, `dropped` (per DROP_KINDS), `pending` (outgoing), `queued` (incoming,
    not yet read); `health()` has them all as JSON.
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
        probe_seconds: float | None = None,
        deaf_after_seconds: float | None = None,
        per_sender_pending: int = 500,
        per_sender_bytes: int = 64 << 20,
        max_payload_bytes: int | None = 4 << 20,
        senders: Callable[[str], bool] | None = None,
        on_dropped: Callable[[BusDrop], None] | None = None,
        on_recovered: Callable[[], object] | None = None,
    ) -> None:
        self.host, self.port, secure = _broker_address(url)
        self.url = url
        self.name = name
        self.client_id = f"xrelay-{name}"
        self.topics = tuple(topics) if topics is not None else (inbox_filter(name), ROOTS_TOPIC)
        self._username = username
        self._password = password
        if tls is not None and not secure:
            raise BusError(f"bus url {url!r}: TLS settings need an mqtts:// URL")
        try:
            self._tls_context = (tls or BusTls()).context() if secure else None
        except (OSError, ssl.SSLError) as exc:
            raise BusError(f"bus {url!r}: cannot load the TLS certificates: {exc}") from None
        deaf_after_seconds = _deaf_after(self.client_id, probe_seconds, deaf_after_seconds)
        if per_sender_pending < 1:
            raise BusError(f"bus {self.client_id}: per_sender_pending must be at least 1")
        self.max_pending = max_pending
        self.timeout = timeout
        self.probe_seconds = probe_seconds
        self.deaf_after_seconds = deaf_after_seconds
        self.per_sender_pending = per_sender_pending
        self.per_sender_bytes = per_sender_bytes
        self.senders = senders
        self.max_payload_bytes = max_payload_bytes
        self.on_dropped = on_dropped
        self.on_recovered = on_recovered
        self.probe_topic = institution_topic(name, name) if probe_seconds is not None else None
        self._subscriptions = self.topics
        if self.probe_topic is not None and not any(topic_matches(t, self.probe_topic) for t in self.topics):
            self._subscriptions += (self.probe_topic,)
        self._inbox_prefix = _inbox_prefix(name, self.topics)

        self._outbox: deque[tuple[str, bytes, bool]] = deque()
        self._outbox_ready = asyncio.Event()
        self._outbox_empty = asyncio.Event()
        self._outbox_empty.set()
        self._queues: dict[str, deque[BusMessage]] = {}
        self._queued_bytes: dict[str, int] = {}
        self._turns: deque[str] = deque()  # the queues that hold something, in the order of their turn
        self._arrived = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

        self._init_state()

    # --- state ----------------------------------------------------------------------------------

    def _init_state(self) -> None:
        self.deaf_since: float | None = None
        self.last_heard: float | None = None
        self.deaf_episodes = 0
        self.recoveries = 0
        self.reconnects = 0
        self.sessions_lost = 0
        self._session_present = True
        self.dropped: dict[str, int] = dict.fromkeys(DROP_KINDS, 0)
        self._tokens: OrderedDict[str, float] = OrderedDict()  # issued, not yet heard: token -> when
        self._heard_at = 0.0  # monotonic
        self._connected_at = 0.0  # monotonic
        self._connections = 0
        self._wipe_session = False
        self._went_deaf = False
        self._reported: OrderedDict[bytes, None] = OrderedDict()
        self._hook_tasks: set[asyncio.Task[Any]] = set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def deaf(self) -> bool:
        return self.deaf_since is not None

    @property
    def pending(self) -> int:
        """Messages published but not yet acknowledged by the broker."""
        return len(self._outbox)

    @property
    def queued(self) -> int:
        """Messages received but not yet read from `messages()`."""
        return sum(len(q) for q in self._queues.values())

    def health(self) -> dict[str, Any]:
        """The bus's state as JSON (the daemon's status shows it)."""
        return {
            "url": self.url,
            "connected": self.connected,
            "deaf": self.deaf,
            "deaf_since": self.deaf_since,
            "last_heard": self.last_heard,
            "deaf_episodes": self.deaf_episodes,
            "reconnects": self.reconnects,
            "sessions_lost": self.sessions_lost,
            "pending": self.pending,
            "queued": self.queued,
            "dropped": dict(self.dropped),
        }

    # --- use ------------------------------------------------------------------------------------

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
        for task in list(self._hook_tasks):
            task.cancel()
        await asyncio.gather(*self._hook_tasks, return_exceptions=True)
        self._arrived.set()  # readers stop once the queues are empty

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
        """What arrives on this bus's topics until the bus is closed: each sender's messages in the
        order they arrived, the senders in turn (one message each)."""
        while True:
            if self._turns:
                key = self._turns.popleft()
                queue = self._queues[key]
                message = queue.popleft()
                self._queued_bytes[key] -= len(message.payload)
                if queue:
                    self._turns.append(key)
                else:
                    del self._queues[key], self._queued_bytes[key]
                yield message
                await asyncio.sleep(0)  # a backlog never keeps the rest of the event loop waiting
            elif self._closed:
                return
            else:
                self._arrived.clear()
                await self._arrived.wait()

    # --- what arrives ---------------------------------------------------------------------------

    def _accept(self, topic: str, payload: bytes, retain: bool) -> None:
        """Queue what arrived, take it as a probe, or drop it."""
        sender = sender_of(topic, self.name) if self._inbox_prefix is not None else None
        if topic == self.probe_topic or (sender is not None and sender == self.name):
            self._heard(payload)  # never yielded, whatever it holds
            return
        size = len(payload)
        if self.max_payload_bytes is not None and size > self.max_payload_bytes:
            self._drop(
                sender,
                topic,
                payload,
                "too_large",
                f"too large: {size} bytes, more than {self.max_payload_bytes}",
            )
            return
        if sender is not None:
            if retain:
                digest = hashlib.sha256(payload).digest()
                if digest in self._reported:
                    return
                self._reported[digest] = None
                if len(self._reported) > _REPORTED_DIGESTS:
                    self._reported.popitem(last=False)
                self._drop(
                    sender,
                    topic,
                    payload,
                    "retained",
                    "a retained message on an inbox topic (sha256 "
                    f"{digest.hex()}): the broker hands it over at every subscription",
                )
                return
            if self.senders is not None and not self.senders(sender):
                self._drop(sender, topic, payload, "foreign_topic", f"{sender} is not a peer of {self.name}")
                return
            key = sender
        elif not self._in_inbox(topic) and any(topic_matches(t, topic) for t in self.topics):
            key = topic
        else:
            self._drop(None, topic, payload, "foreign_topic", f"topic {topic!r} is not one of ours")
            return
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._queued_bytes[key] = 0
        if len(queue) >= self.per_sender_pending or self._queued_bytes[key] + size > self.per_sender_bytes:
            self._drop(
                sender,
                topic,
                payload,
                "queue_full",
                f"{len(queue)} messages ({self._queued_bytes[key]} bytes) from {key} wait to be read: "
                "over its quota",
            )
            if not queue:
                del self._queues[key], self._queued_bytes[key]
            return
        if not queue:
            self._turns.append(key)
        self._queued_bytes[key] += size
        queue.append(BusMessage(topic=topic, payload=payload, sender=sender))
        self._arrived.set()

    def _in_inbox(self, topic: str) -> bool:
        return self._inbox_prefix is not None and topic.startswith(self._inbox_prefix)

    def _drop(self, sender: str | None, topic: str, payload: bytes, kind: str, reason: str) -> None:
        self.dropped[kind] += 1
        log.warning(
            "event=bus_dropped client=%s topic=%s sender=%s size=%d kind=%s reason=%r",
            self.client_id,
            topic,
            sender,
            len(payload),
            kind,
            reason,
        )
        if self.on_dropped is not None:
            drop = BusDrop(sender, topic, len(payload), kind, reason, payload[:DROP_HEAD_BYTES])
            try:
                self.on_dropped(drop)
            except Exception:
                log.exception("event=bus_on_dropped_failed client=%s", self.client_id)

    # --- liveness -------------------------------------------------------------------------------

    def _issue(self) -> bytes:
        token = secrets.token_hex(16)
        self._tokens[token] = time.monotonic()
        while len(self._tokens) > _TOKENS:
            self._tokens.popitem(last=False)
        return token.encode()

    def _heard(self, payload: bytes) -> None:
        try:
            token = payload.decode("ascii")
        except UnicodeDecodeError:
            return
        if self._tokens.pop(token, None) is None:
            return  # not one of ours, or heard already: it proves nothing
        self._heard_at = time.monotonic()
        self.last_heard = time.time()
        if self.deaf_since is not None:
            log.warning(
                "event=bus_recovered client=%s broker=%s deaf_for=%.1fs episode=%d",
                self.client_id,
                self.url,
                self.last_heard - self.deaf_since,
                self.deaf_episodes,
            )
            self.deaf_since = None
            self.recoveries += 1
            self._call_recovered()

    def _call_recovered(self) -> None:
        if self.on_recovered is None:
            return
        try:
            result = self.on_recovered()
        except Exception:
            log.exception("event=bus_on_recovered_failed client=%s", self.client_id)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_done)

    def _hook_done(self, task: asyncio.Future[Any]) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=bus_on_recovered_failed client=%s error=%r", self.client_id, task.exception())

    def _session_lost(self) -> None:
        """The broker had no session for us on a reconnection (it forgot it, or another client took our
        client id with a clean session): what was published to us meanwhile is gone."""
        self.sessions_lost += 1
        log.warning(
            "event=bus_session_lost client=%s broker=%s: the broker kept no session for this client; "
            "what peers sent while it was away is lost, asking them to push again",
            self.client_id,
            self.url,
        )
        self._call_recovered()

    async def _probe(self, client: aiomqtt.Client) -> None:
        assert self.probe_seconds is not None and self.probe_topic is not None
        while True:
            try:  # QoS 1, as envelopes are: the probe takes their path through the broker
                await client.publish(self.probe_topic, self._issue(), qos=1, timeout=self.probe_seconds)
            except aiomqtt.MqttError as exc:
                log.debug("event=bus_probe_unacknowledged client=%s error=%r", self.client_id, str(exc))
            await asyncio.sleep(self.probe_seconds)

    async def _watch(self) -> None:
        """Raise _Deaf once nothing was heard for deaf_after_seconds on this connection."""
        assert self.deaf_after_seconds is not None and self.probe_seconds is not None
        tick = min(max(self.probe_seconds / 4, 0.05), 1.0)
        stalled_at = 0.0  # when the event loop last came back from a stall (monotonic)
        while True:
            slept = time.monotonic()
            await asyncio.sleep(tick)
            if time.monotonic() - slept > tick + STALL_SECONDS:
                # The loop was busy (a flood being refused, say): a probe that came back meanwhile
                # may still wait to be read. Silence counts again from now, not from before.
                stalled_at = time.monotonic()
            silent = time.monotonic() - max(self._heard_at, self._connected_at, stalled_at)
            if silent <= self.deaf_after_seconds:
                continue
            now = time.time()
            heard = "never" if self.last_heard is None else f"{now - self.last_heard:.1f}s ago"
            self._went_deaf = True
            if self.deaf_since is None:
                self.deaf_since = now
                self.deaf_episodes += 1
                log.error(
                    "event=bus_deaf client=%s broker=%s silent_for=%.1fs last_heard=%s episode=%d: "
                    "connected but not hearing its own probes; starting a fresh session",
                    self.client_id,
                    self.url,
                    silent,
                    heard,
                    self.deaf_episodes,
                )
            else:
                log.error(
                    "event=bus_deaf client=%s broker=%s deaf_for=%.1fs last_heard=%s episode=%d: "
                    "still deaf; starting a fresh session again",
                    self.client_id,
                    self.url,
                    now - self.deaf_since,
                    heard,
                    self.deaf_episodes,
                )
            raise _Deaf

    # --- the connection loop ------------------------------------------------------------------

    def _client(self, *, clean_session: bool = False) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            clean_session=clean_session,
            username=self._username,
            password=self._password,
            tls_context=self._tls_context,
            timeout=self.timeout,
        )
        # aiomqtt drops CONNACK's session-present flag: catch it on the way (paho's callback).
        paho = client._client
        connected = paho.on_connect
        assert connected is not None

        def on_connect(*args: Any) -> None:
            flags = args[2] if len(args) > 2 else None
            self._session_present = bool(getattr(flags, "session_present", True))
            connected(*args)

        self._session_present = True
        paho.on_connect = on_connect
        return client

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                wiped = self._wipe_session
                if wiped:
                    async with self._client(clean_session=True):
                        pass  # connecting with clean_session true discards the broker's session
                    self._wipe_session = False
                    log.info("event=bus_session_wiped client=%s broker=%s", self.client_id, self.url)
                async with self._client() as client:
                    for topic in self._subscriptions:
                        await client.subscribe(topic, qos=1)
                    self._connected_at = time.monotonic()
                    if self._connections > 0 and not wiped:
                        if not self._session_present:
                            self._session_lost()
                        else:  # a QoS 1 delivery in flight on the lost connection, or a thief's
                            self._call_recovered()
                    self._connections += 1
                    self.reconnects = self._connections - 1
                    self._connected.set()
                    failures = 0
                    log.info(
                        "event=bus_connected client=%s broker=%s pending=%d",
                        self.client_id,
                        self.url,
                        self.pending,
                    )
                    await self._serve(client)
            except (_Deaf, aiomqtt.MqttError) as exc:
                if self._went_deaf:  # (a deaf connection may fail to close cleanly: gone all the same)
                    self._went_deaf = False
                    self._wipe_session = True
                    continue  # at once
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
        jobs = [self._receive(client), self._send(client)]
        if self.probe_seconds is not None:
            jobs += [self._probe(client), self._watch()]
        tasks = [asyncio.create_task(job) for job in jobs]
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
            self._accept(str(message.topic), raw, bool(message.retain))

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


def _deaf_after(client_id: str, probe: float | None, deaf_after: float | None) -> float | None:
    """deaf_after_seconds, checked (4 probe periods when not given)."""
    if probe is None:
        return None
    if probe <= 0:
        raise BusError(f"bus {client_id}: probe_seconds must be positive, not {probe}")
    deaf_after = 4 * probe if deaf_after is None else deaf_after
    if deaf_after <= probe:
        raise BusError(
            f"bus {client_id}: deaf_after_seconds ({deaf_after}) must be more than probe_seconds ({probe})"
        )
    return deaf_after


def _inbox_prefix(name: str, topics: Sequence[str]) -> str | None:
    """ "xrelay/v2/institutions/<name>/" when the bus subscribes its institution's inbox, else None."""
    try:
        inbox = inbox_filter(name)
    except ValueError:
        return None
    return inbox[:-1] if inbox in topics else None
