"""The embedded MQTT broker (amqtt), and who may use a broker: logins, bound client ids, topic ACLs.

The embedded broker is for the devnet and the tests only: it listens without TLS and keeps its
sessions in memory (a restart forgets them). Production runs a real broker (Mosquitto, EMQX) with TLS
and the same per-institution rules (docs/operations.md, "The broker").

Given `users`, the embedded broker authenticates: a client must present a known user name, its
password, and the one client id bound to that login, or it is refused (CONNACK 5, not authorized)
before amqtt looks its session up, so an impostor using another's client id can neither take that
session over nor clear it. Each login then subscribes only to filters inside what it may read,
receives only topics it may read and publishes only to topics it may write (a publish elsewhere is
acknowledged and dropped). Without `users` it admits everyone (the unit tests of the bus).

The rules are those of the protocol's topics (hub/envelope.py): an institution reads
`xrelay/v2/institutions/<itself>/#` and the hub's root announcements, and writes
`xrelay/v2/institutions/<peer>/<itself>` for each of its peers and `.../<itself>/<itself>` (its
liveness probe); the hub service writes the root announcements only. `bus_users` derives them, for
the embedded broker and for the devnet's Mosquitto alike.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.adapters import ReaderAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import MQTTError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from hub.envelope import HUB_SENDER, ROOTS_TOPIC, inbox_filter, institution_topic, topic_matches

log = logging.getLogger("xrelay.hub.broker")

# amqtt logs every packet and connection at INFO; keep its warnings and errors only.
for _noisy in ("amqtt", "transitions"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

ADMIN_USER = "admin"
"""A devnet and test login that reads and writes everything."""
OUTSIDER_USER = "outsider"
"""A devnet and test login with a valid password and no rights at all."""


CONNECT_SECONDS = 10.0
"""How long a new connection may take to send its CONNECT before it is closed."""
MAX_CONNECTIONS = 256
"""Connections the embedded broker holds at once (a devnet has a handful)."""


class BrokerError(RuntimeError):
    """The embedded broker could not start (most often: its port is taken), or its users file is bad."""


# --- who may use the broker ---------------------------------------------------------------------


@dataclass(frozen=True)
class BusUser:
    """One broker login: its user name and password, the only client id it may connect with, the topic
    filters it may subscribe to and receive from (`read`) and those it may publish to (`write`)."""

    name: str | None
    """The user name; None for a client that sends none (a daemon's own embedded broker)."""
    password: str | None
    client_id: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()

    def admits(self, username: str | None, password: str | None, client_id: str | None) -> bool:
        if username != self.name or client_id != self.client_id:
            return False
        if self.password is None:
            return password is None
        return password is not None and hmac.compare_digest(password.encode(), self.password.encode())

    def may_read(self, topic: str) -> bool:
        return any(topic_matches(allowed, topic) for allowed in self.read)

    def may_subscribe(self, topic_filter: str) -> bool:
        return any(filter_covers(allowed, topic_filter) for allowed in self.read)

    def may_write(self, topic: str) -> bool:
        return any(topic_matches(allowed, topic) for allowed in self.write)


def client_id_of(name: str) -> str:
    """The MQTT client id of a bus name (hub.bus.Bus uses the same)."""
    return f"xrelay-{name}"


def institution_rights(name: str, peers: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(read, write) of an institution: its own topics and the root announcements; each peer's topic
    from it, and its own liveness probe."""
    read = (f"{inbox_filter(name).removesuffix('+')}#", ROOTS_TOPIC)
    write = tuple(institution_topic(peer, name) for peer in sorted(set(peers) - {name}))
    return read, (*write, institution_topic(name, name))


def bus_users(
    institutions: Mapping[str, Sequence[str]], passwords: Mapping[str, str] | None = None
) -> dict[str, BusUser]:
    """The logins of a network: each institution (name -> its peers' names), the hub service, and the
    devnet's `admin` (everything) and `outsider` (nothing). Passwords come from `passwords` by user
    name, or are made up (32 random bytes, URL-safe base64)."""
    passwords = passwords or {}
    taken = set(institutions) & {HUB_SENDER, ADMIN_USER, OUTSIDER_USER}
    if taken:
        raise ValueError(
            f"{', '.join(sorted(taken))}: not an institution's name, the bus has its own login so named"
        )

    def password(name: str) -> str:
        return passwords.get(name) or secrets.token_urlsafe(32)

    users = {}
    for name, peers in institutions.items():
        read, write = institution_rights(name, peers)
        users[name] = BusUser(name, password(name), client_id_of(name), read, write)
    hub = HUB_SENDER
    users[hub] = BusUser(hub, password(hub), client_id_of(hub), (), (ROOTS_TOPIC,))
    users[ADMIN_USER] = BusUser(ADMIN_USER, password(ADMIN_USER), client_id_of(ADMIN_USER), ("#",), ("#",))
    users[OUTSIDER_USER] = BusUser(OUTSIDER_USER, password(OUTSIDER_USER), client_id_of(OUTSIDER_USER))
    return users


def sole_user(name: str, username: str | None, password: str | None) -> BusUser:
    """The one login of an institution's own embedded broker: its client id, with its bus credentials
    if it has some, and every topic."""
    return BusUser(username, password if username else None, client_id_of(name), ("#",), ("#",))


USERS_NOTE = "DEVNET ONLY: broker logins in clear text, readable by their owner only"


def write_users(path: Path, users: Mapping[str, BusUser]) -> None:
    """Write the logins as JSON, readable and writable by the owner only (0600)."""
    data = {
        "note": USERS_NOTE,
        "users": {
            name: {
                "password": user.password,
                "client_id": user.client_id,
                "read": list(user.read),
                "write": list(user.write),
            }
            for name, user in users.items()
        },
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def read_users(path: Path) -> dict[str, BusUser]:
    """The logins `write_users` wrote; BrokerError says what is wrong with the file."""
    try:
        data = json.loads(path.read_text())
        return {
            name: BusUser(
                name,
                str(entry["password"]),
                str(entry["client_id"]),
                tuple(str(t) for t in entry.get("read", ())),
                tuple(str(t) for t in entry.get("write", ())),
            )
            for name, entry in data["users"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BrokerError(f"cannot read the broker users from {path}: {exc!r}") from None


def filter_covers(allowed: str, topic_filter: str) -> bool:
    """Whether every topic that `topic_filter` matches is matched by `allowed` as well."""
    if topic_filter.startswith("$") and not allowed.startswith("$"):
        return False
    mine, theirs = allowed.split("/"), topic_filter.split("/")
    for index, wanted in enumerate(mine):
        if wanted == "#":
            return True
        if index >= len(theirs):
            return False
        level = theirs[index]
        if level == "#" or (wanted != "+" and (level == "+" or level != wanted)):
            return False
    return len(mine) == len(theirs)


# --- the embedded broker ------------------------------------------------------------------------


class _Users:
    def __init__(self, users: Iterable[BusUser]) -> None:
        self.users = tuple(users)

    def admitted(self, username: str | None, password: str | None, client_id: str | None) -> BusUser | None:
        return next((u for u in self.users if u.admits(username, password, client_id)), None)

    def of(self, session: Session | None) -> BusUser | None:
        """The login of an admitted session."""
        if session is None:
            return None
        return next(
            (u for u in self.users if u.name == session.username and u.client_id == session.client_id), None
        )


class AdmitEveryone(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Admits every client, with or without a user name. amqtt's own AnonymousAuthPlugin marks such
    sessions anonymous, and amqtt then keeps no messages for them while they are offline: persistent
    sessions would not work."""

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Session) -> bool:
        return True


class UsersAuth(BaseAuthPlugin, BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Admits the given logins only, each with its bound client id, and applies their topic rights."""

    @dataclass
    class Config:
        users: Any = None  # a _Users

    async def authenticate(self, *, session: Session) -> bool:
        users: _Users = self.config.users
        return users.admitted(session.username, session.password, session.client_id) is not None

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        user = self.config.users.of(session)
        if user is None or topic is None:
            return False
        if action == Action.SUBSCRIBE:
            return bool(user.may_subscribe(topic))
        if action == Action.PUBLISH:
            allowed = bool(user.may_write(topic))
            if not allowed:
                log.warning("event=broker_publish_refused user=%s topic=%s", user.name, topic)
            return allowed
        return bool(user.may_read(topic))  # Action.RECEIVE


class _Recording(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """Reads through `inner`, keeping what it read."""

    def __init__(self, inner: ReaderAdapter) -> None:
        self.inner = inner
        self.data = bytearray()

    async def read(self, n: int = -1) -> bytes:
        chunk: bytes = await self.inner.read(n)
        self.data += chunk
        return chunk

    def feed_eof(self) -> None:
        self.inner.feed_eof()


class _Replaying(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """Gives `head` first, then reads through `inner`."""

    def __init__(self, head: bytes, inner: ReaderAdapter) -> None:
        self.head = head
        self.inner = inner

    async def read(self, n: int = -1) -> bytes:
        if not self.head:
            data: bytes = await self.inner.read(n)
            return data
        if n == -1:
            head, self.head = self.head, b""
            rest: bytes = await self.inner.read(-1)
            return head + rest
        take, self.head = self.head[:n], self.head[n:]
        if len(take) < n:
            take += await self.inner.read(n - len(take))
        return take

    def feed_eof(self) -> None:
        self.inner.feed_eof()


class _CompliantBroker(Broker):  # type: ignore[misc]  # amqtt is untyped
    """amqtt's broker, delivering what it queued for an offline persistent session as MQTT 3.1.1
    requires: amqtt 0.12 sets the RETAIN flag on those messages, which the standard keeps for a
    message sent because of a new subscription (3.3.1.3); the bus drops retained messages on inboxes,
    so they would be lost. Delivered as Mosquitto does, with RETAIN 0."""

    async def _publish_session_retained_messages(self, session: Session) -> None:
        handler = self._get_handler(session)
        if handler is None:
            return
        sending = []
        while not session.retained_messages.empty():
            queued = await session.retained_messages.get()
            publish = handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False)
            sending.append(asyncio.ensure_future(publish))
        if sending:
            await asyncio.wait(sending)


class _AuthenticatingBroker(_CompliantBroker):
    """amqtt's broker, refusing a client before it touches the session of the client id it gave.

    amqtt 0.12 first looks the CONNECT's client id up (deleting that session for clean_session=1,
    taking it over otherwise) and only then asks the auth plugins: anyone could kick a daemon off or
    clear its subscriptions by naming its client id. Here the CONNECT is read and checked first, then
    handed to amqtt as if it had just arrived."""

    def __init__(self, config: dict[str, Any], users: _Users) -> None:
        super().__init__(config)
        self._users = users

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: Any, remote_address: str, remote_port: int
    ) -> Any:
        recording = _Recording(reader)
        try:
            connect = await asyncio.wait_for(ConnectPacket.from_stream(recording), CONNECT_SECONDS)
        except Exception:  # slow, truncated or not a CONNECT at all: nothing to answer
            await writer.close()
            raise
        refusal = None
        if self._users.admitted(connect.username, connect.password, connect.client_id) is None:
            refusal = "not authorized"
        elif connect.will_flag:  # amqtt publishes a will without asking the topic ACL; xrelay uses none
            refusal = f"a will (on {connect.payload.will_topic!r}) is not accepted"
        if refusal is not None:
            log.warning(
                "event=broker_refused client=%s user=%s from=%s:%s reason=%r",
                connect.client_id,
                connect.username,
                remote_address,
                remote_port,
                refusal,
            )
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise MQTTError(f"client {connect.client_id!r} (user {connect.username!r}): {refusal}")
        return await super()._initialize_client_session(
            _Replaying(bytes(recording.data), reader), writer, remote_address, remote_port
        )


class EmbeddedBroker:
    """A plain-TCP MQTT 3.1.1 broker on host:port; `async with` starts and stops it.

    users: the logins it admits (each with its bound client id and topic rights); None admits
    everyone, with every right (the unit tests of the bus only)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 1883, *, users: Iterable[BusUser] | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.users = None if users is None else tuple(users)
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._broker is not None

    async def start(self) -> None:
        if self._broker is not None:
            return
        config: dict[str, Any] = {
            "listeners": {
                "default": {
                    "type": "tcp",
                    "bind": f"{self.host}:{self.port}",
                    "max_connections": MAX_CONNECTIONS,
                }
            },
        }
        if self.users is None:
            config["plugins"] = {f"{__name__}.{AdmitEveryone.__name__}": {}}
            broker = _CompliantBroker(config)
        else:
            users = _Users(self.users)
            config["plugins"] = {f"{__name__}.{UsersAuth.__name__}": {"users": users}}
            broker = _AuthenticatingBroker(config, users)
        try:
            await broker.start()
        except Exception as exc:
            raise BrokerError(
                f"the embedded MQTT broker cannot listen on {self.host}:{self.port}: {exc}"
            ) from exc
        self._broker = broker
        log.info(
            "event=broker_started url=%s users=%s",
            self.url,
            "anyone" if self.users is None else ",".join(str(u.name) for u in self.users),
        )

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
            log.info("event=broker_stopped url=%s", self.url)

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
