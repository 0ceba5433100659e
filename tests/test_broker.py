"""Who may use the bus, on the real Mosquitto the devnet runs (relayer/devnet/mosquitto.py) and on the
embedded broker (hub/broker.py): TLS only (Mosquitto), logins, client ids bound to logins, and the
per-institution topic ACLs; then `xrelay devnet up --broker mosquitto` end to end."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
import stat
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from socket import SHUT_RDWR
from typing import Any

import aiomqtt
import psutil
import pytest
from cryptography import x509

from bridge_contracts.anvil import free_port
from hub import config as hub_config
from hub.broker import (
    ADMIN_USER,
    OUTSIDER_USER,
    BusUser,
    EmbeddedBroker,
    bus_users,
    filter_covers,
    read_users,
    sole_user,
)
from hub.bus import Bus, BusMessage, BusTls
from hub.envelope import HUB_SENDER, ROOTS_TOPIC, inbox_filter, institution_topic, topic_matches
from relayer import config as institution_config
from relayer.devnet.mosquitto import Mosquitto, MosquittoError, dynsec_password
from relayer.devnet.services import Services

WAIT = 10.0
INSTITUTIONS = {
    "bank-a": ["bank-b", "bank-c"],
    "bank-b": ["bank-a", "bank-c"],
    "bank-c": ["bank-a", "bank-b"],
}
TO_B_FROM_A = institution_topic("bank-b", "bank-a")
TO_B_FROM_C = institution_topic("bank-b", "bank-c")
NOT_AUTHORIZED = 135  # CONNACK 5 (MQTT 3.1.1), as paho reports it


@dataclass
class Broker:
    """A running broker under test and its logins."""

    kind: str
    port: int
    users: dict[str, BusUser]
    ca_cert: Path | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.ca_cert else 'mqtt'}://127.0.0.1:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca_cert)) if self.ca_cert else None

    def client(
        self,
        user: str | None,
        *,
        client_id: str | None = None,
        password: str | None = None,
        clean_session: bool | None = None,
    ) -> aiomqtt.Client:
        """A raw client logging in as `user` (its own client id and password unless given)."""
        login = self.users.get(user) if user else None
        return aiomqtt.Client(
            "127.0.0.1",
            self.port,
            identifier=client_id or (login.client_id if login else "xrelay-nobody"),
            username=user,
            password=password or (login.password if login else None),
            tls_context=self.tls_context(),
            clean_session=clean_session,
            timeout=WAIT,
        )

    def bus(self, name: str) -> Bus:
        """hub.bus.Bus as an institution's daemon uses it: its own topics and the root announcements."""
        login = self.users[name]
        tls = BusTls(ca_cert=self.ca_cert) if self.ca_cert else None
        return Bus(self.url, name, username=name, password=login.password, tls=tls, timeout=WAIT)


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), free_port())
    broker.write(INSTITUTIONS)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(params=["mosquitto", "embedded"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(kind: str, mosquitto: Mosquitto, test: Callable[[Broker], Coroutine[Any, Any, None]]) -> None:
    """Run an async test body against the module's Mosquitto or a fresh embedded broker with the same
    kind of logins."""

    async def main() -> None:
        if kind == "mosquitto":
            broker = Broker(kind, mosquitto.port, read_users(mosquitto.credentials), mosquitto.ca_cert)
            await asyncio.wait_for(test(broker), 30)
            return
        users = bus_users(INSTITUTIONS)
        async with EmbeddedBroker("127.0.0.1", free_port(), users=users.values()) as embedded:
            await asyncio.wait_for(test(Broker(kind, embedded.port, users)), 30)

    asyncio.run(main())


@contextlib.asynccontextmanager
async def listening(client: aiomqtt.Client, *filters: str) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Connect `client`, subscribe it to `filters` (each must be granted) and collect what arrives."""
    got: list[tuple[str, bytes]] = []

    async def collect() -> None:
        async for message in client.messages:
            got.append((str(message.topic), bytes(message.payload)))

    async with client:
        for topic_filter in filters:
            assert granted(await client.subscribe(topic_filter, qos=1)), topic_filter
        task = asyncio.create_task(collect())
        try:
            yield got
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def granted(reason_codes: Any) -> bool:
    return all(int(code.value) < 0x80 for code in reason_codes)


async def until(got: list[tuple[str, bytes]], payload: bytes) -> list[tuple[str, bytes]]:
    """What `got` holds once `payload` arrived (everything before it included)."""
    async with asyncio.timeout(WAIT):
        while not any(p == payload for _, p in got):
            await asyncio.sleep(0.02)
    return list(got)


async def bus_until(bus: Bus, payload: bytes) -> list[BusMessage]:
    got: list[BusMessage] = []
    async with asyncio.timeout(WAIT):
        async for message in bus.messages():
            got.append(message)
            if message.payload == payload:
                return got
    raise AssertionError("the bus closed")


async def refused(client: aiomqtt.Client) -> int:
    """The code with which the broker refuses `client`'s connection."""
    with pytest.raises(aiomqtt.MqttCodeError) as caught:
        async with client:
            pass
    code = caught.value.rc
    assert code is not None
    return int(code if isinstance(code, int) else code.value)


# --- Mosquitto's own: TLS only, its files ------------------------------------------------------


def test_mosquitto_is_tls_only_with_the_devnet_ca(mosquitto: Mosquitto) -> None:
    users = read_users(mosquitto.credentials)
    login = users["bank-a"]

    async def body() -> None:
        plain = aiomqtt.Client(
            "127.0.0.1",
            mosquitto.port,
            identifier=login.client_id,
            username="bank-a",
            password=login.password,
            timeout=1,  # the broker waits for a TLS handshake that never comes
        )
        with pytest.raises(aiomqtt.MqttError):
            async with plain:
                pass
        without_ca = aiomqtt.Client(
            "127.0.0.1",
            mosquitto.port,
            identifier=login.client_id,
            username="bank-a",
            password=login.password,
            tls_context=ssl.create_default_context(),  # the system's CAs only
        )
        with pytest.raises(aiomqtt.MqttError, match="CERTIFICATE_VERIFY_FAILED"):
            async with without_ca:
                pass

    asyncio.run(body())
    conf = mosquitto.config_path.read_text().splitlines()
    assert [line for line in conf if line.startswith("listener")] == [f"listener {mosquitto.port} 127.0.0.1"]
    assert "allow_anonymous false" in conf
    assert f"max_packet_size {(4 << 20) + (64 << 10)}" in conf
    for private in ("credentials.json", "dynsec.json", "ca.key", "server.key"):
        assert stat.S_IMODE((mosquitto.folder / private).stat().st_mode) == 0o600, private
    dynsec = json.loads((mosquitto.folder / "dynsec.json").read_text())
    assert {c["username"]: c["clientid"] for c in dynsec["clients"]} == {
        name: f"xrelay-{name}" for name in [*INSTITUTIONS, HUB_SENDER, ADMIN_USER, OUTSIDER_USER]
    }
    assert not any(dynsec["defaultACLAccess"].values())
    bank_a = next(r for r in dynsec["roles"] if r["rolename"] == "xrelay-bank-a")
    assert sorted(a["topic"] for a in bank_a["acls"] if a["acltype"] == "publishClientSend") == [
        institution_topic("bank-a", "bank-a"),
        institution_topic("bank-b", "bank-a"),
        institution_topic("bank-c", "bank-a"),
    ]
    ca = x509.load_pem_x509_certificate(mosquitto.ca_cert.read_bytes())
    assert "DEVNET ONLY" in ca.subject.rfc4514_string()
    assert mosquitto.running and psutil.Process(mosquitto.pid).cmdline()[0].endswith("mosquitto")


def test_dynsec_password_hash_is_what_mosquitto_ctrl_writes(tmp_path: Path) -> None:
    """`mosquitto_ctrl dynsec init` (no broker needed) hashes a password; ours gives the same."""
    ctrl = "/usr/bin/mosquitto_ctrl"
    if not os.path.exists(ctrl):
        pytest.skip("mosquitto_ctrl is not installed")
    path = tmp_path / "dynsec.json"
    subprocess.run([ctrl, "dynsec", "init", str(path), "someone", "pw 1"], check=True, capture_output=True)
    client = json.loads(path.read_text())["clients"][0]
    ours = dynsec_password("pw 1", base64.b64decode(client["salt"]))
    assert ours["password"] == client["password"] and ours["iterations"] == client["iterations"]


def test_a_missing_mosquitto_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("relayer.devnet.mosquitto._SEARCH_BIN", (str(tmp_path),))
    with pytest.raises(MosquittoError, match="apt-get install mosquitto"):
        Mosquitto(tmp_path, free_port()).start()


# --- both brokers: logins, bound client ids, topic ACLs -----------------------------------------


def test_wrong_logins_are_refused(kind: str, mosquitto: Mosquitto) -> None:
    async def body(broker: Broker) -> None:
        assert await refused(broker.client("bank-a", password="wrong")) == NOT_AUTHORIZED
        assert await refused(broker.client("nobody", password="x")) == NOT_AUTHORIZED
        assert await refused(broker.client(None, client_id="xrelay-bank-a")) == NOT_AUTHORIZED
        async with broker.client("bank-a"):
            pass  # the right one is admitted

    run(kind, mosquitto, body)


def test_a_client_id_is_bound_to_its_login(kind: str, mosquitto: Mosquitto) -> None:
    """Another login giving bank-b's client id is refused, persistent session or clean, and bank-b's
    connected session is neither taken over nor cleared: it keeps receiving."""

    async def body(broker: Broker) -> None:
        async with broker.bus("bank-b") as bank_b:
            await bank_b.wait_connected(WAIT)
            for login in (OUTSIDER_USER, "bank-a", ADMIN_USER):
                for clean in (False, True):
                    impostor = broker.client(login, client_id="xrelay-bank-b", clean_session=clean)
                    assert await refused(impostor) == NOT_AUTHORIZED, (login, clean)
            # and bank-b's login with another client id is refused as well
            assert await refused(broker.client("bank-b", client_id="xrelay-bank-a")) == NOT_AUTHORIZED
            assert bank_b.connected
            async with broker.client("bank-a") as bank_a:
                await bank_a.publish(TO_B_FROM_A, b"still yours", qos=1)
            got = await bus_until(bank_b, b"still yours")
            assert (got[-1].topic, got[-1].payload) == (TO_B_FROM_A, b"still yours")

    run(kind, mosquitto, body)


def test_the_outsider_reads_and_writes_nothing(kind: str, mosquitto: Mosquitto) -> None:
    async def body(broker: Broker) -> None:
        async with (
            listening(broker.client(ADMIN_USER), "#") as everything,
            broker.client(OUTSIDER_USER) as outsider,
        ):
            for topic_filter in (inbox_filter("bank-b"), "#", ROOTS_TOPIC, "xrelay/v2/institutions/+/+"):
                assert not granted(await outsider.subscribe(topic_filter, qos=1)), topic_filter
            heard: list[bytes] = []
            listener = asyncio.create_task(_collect(outsider, heard))
            await outsider.publish(TO_B_FROM_A, b"forged by outsider", qos=1)
            async with broker.client("bank-a") as bank_a:
                await bank_a.publish(TO_B_FROM_A, b"for bank-b", qos=1)
            seen = await until(everything, b"for bank-b")
            assert b"forged by outsider" not in [p for _, p in seen]
            await asyncio.sleep(0.3)
            listener.cancel()
            assert heard == []

    run(kind, mosquitto, body)


def test_a_will_cannot_write_where_its_login_may_not(kind: str, mosquitto: Mosquitto) -> None:
    """A will is published by the broker when its client drops: amqtt never asks the topic ACL, so the
    embedded broker refuses any will; Mosquitto applies the ACL and drops it."""

    async def drop_with_will(broker: Broker, user: str, payload: bytes) -> None:
        client = broker.client(user)
        client._client.will_set(TO_B_FROM_A, payload, qos=1)
        await client.__aenter__()
        socket = client._client.socket()
        assert socket is not None
        assert isinstance(socket, ssl.SSLSocket)
        socket.shutdown(SHUT_RDWR)  # dropped without DISCONNECT: the broker sends the will, if any
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)

    async def body(broker: Broker) -> None:
        async with listening(broker.client(ADMIN_USER), "#") as everything:
            if kind == "embedded":
                client = broker.client(OUTSIDER_USER)
                client._client.will_set(TO_B_FROM_A, b"will of the outsider", qos=1)
                assert await refused(client) == NOT_AUTHORIZED
            else:
                await drop_with_will(broker, OUTSIDER_USER, b"will of the outsider")
                await drop_with_will(broker, "bank-a", b"will of bank-a")  # the control: its own topic
                await until(everything, b"will of bank-a")
            async with broker.client("bank-a") as bank_a:
                await bank_a.publish(TO_B_FROM_A, b"for bank-b", qos=1)
            seen = await until(everything, b"for bank-b")
            await asyncio.sleep(0.5)
            assert b"will of the outsider" not in [p for _, p in seen]

    run(kind, mosquitto, body)


async def _collect(client: aiomqtt.Client, into: list[bytes]) -> None:
    async for message in client.messages:
        into.append(bytes(message.payload))


def test_an_institution_writes_only_as_itself_to_its_peers(kind: str, mosquitto: Mosquitto) -> None:
    """bank-a's login publishes to bank-b's topic from bank-a (delivered), not from bank-c, not to
    the root announcements; it cannot subscribe to bank-b's topics. The admin sees what is delivered."""

    async def body(broker: Broker) -> None:
        async with (
            listening(broker.client(ADMIN_USER), "#") as everything,
            broker.bus("bank-b") as bank_b,
            broker.client("bank-a") as bank_a,
        ):
            await bank_b.wait_connected(WAIT)
            assert not granted(await bank_a.subscribe(inbox_filter("bank-b"), qos=1))
            assert not granted(await bank_a.subscribe("#", qos=1))
            await bank_a.publish(TO_B_FROM_C, b"as bank-c", qos=1)
            await bank_a.publish(ROOTS_TOPIC, b"a root", qos=1)
            await bank_a.publish(institution_topic("bank-a", "bank-a"), b"probe", qos=1)
            await bank_a.publish(TO_B_FROM_A, b"as bank-a", qos=1)
            got = await bus_until(bank_b, b"as bank-a")  # after what its session kept from other tests
            assert not {m.payload for m in got} & {b"as bank-c", b"a root", b"probe"}
            assert (got[-1].topic, got[-1].payload) == (TO_B_FROM_A, b"as bank-a")
            seen = await until(everything, b"as bank-a")
            assert seen == [(institution_topic("bank-a", "bank-a"), b"probe"), (TO_B_FROM_A, b"as bank-a")]

    run(kind, mosquitto, body)


def test_the_hub_announces_roots_to_every_institution(kind: str, mosquitto: Mosquitto) -> None:
    async def body(broker: Broker) -> None:
        hub = broker.users[HUB_SENDER]
        async with broker.bus("bank-c") as bank_c:
            await bank_c.wait_connected(WAIT)
            async with broker.client(HUB_SENDER) as service:
                assert hub.client_id == "xrelay-hub"
                assert not granted(await service.subscribe(inbox_filter("bank-c"), qos=1))
                await service.publish(TO_B_FROM_A, b"hub as bank-a", qos=1)
                await service.publish(institution_topic("bank-c", "bank-a"), b"hub to bank-c", qos=1)
                await service.publish(ROOTS_TOPIC, b"root 1", qos=1)
            got = await bus_until(bank_c, b"root 1")
            assert not {m.payload for m in got} & {b"hub as bank-a", b"hub to bank-c"}
            assert (got[-1].topic, got[-1].payload) == (ROOTS_TOPIC, b"root 1")

    run(kind, mosquitto, body)


# --- the embedded broker's own ------------------------------------------------------------------


def test_a_daemons_own_broker_admits_its_client_id_only() -> None:
    """The broker a daemon without [bus] url embeds: its own client id, with its bus login if set."""

    async def body(user: BusUser) -> None:
        port = free_port()
        async with EmbeddedBroker("127.0.0.1", port, users=[user]):
            broker = Broker("embedded", port, {})

            def client(client_id: str, username: str | None = user.name, **login: str) -> aiomqtt.Client:
                password = login.get("password", user.password)
                return broker.client(username, client_id=client_id, password=password)

            async with client("xrelay-bank-a") as itself:
                assert granted(await itself.subscribe("#", qos=1))
                assert await refused(client("xrelay-bank-b")) == NOT_AUTHORIZED
                assert await refused(client("xrelay-bank-a", username="bank-b")) == NOT_AUTHORIZED
                if user.name is not None:
                    assert await refused(client("xrelay-bank-a", password="wrong")) == NOT_AUTHORIZED
                    assert await refused(client("xrelay-bank-a", username=None)) == NOT_AUTHORIZED
                await itself.publish(TO_B_FROM_A, b"anything", qos=1)
                async with asyncio.timeout(WAIT):
                    message = await anext(aiter(itself.messages))
                assert (str(message.topic), message.payload) == (TO_B_FROM_A, b"anything")

    asyncio.run(body(sole_user("bank-a", None, None)))
    asyncio.run(body(sole_user("bank-a", "bank-a", "secret")))


@pytest.mark.parametrize(
    ("allowed", "candidate", "matches", "covers"),
    [
        ("xrelay/v2/institutions/bank-b/#", "xrelay/v2/institutions/bank-b/bank-a", True, True),
        ("xrelay/v2/institutions/bank-b/#", "xrelay/v2/institutions/bank-b/+", False, True),
        ("xrelay/v2/institutions/bank-b/#", "xrelay/v2/institutions/+/bank-a", False, False),
        ("xrelay/v2/institutions/bank-b/#", "xrelay/v2/institutions/#", False, False),
        ("xrelay/v2/institutions/bank-b/#", "xrelay/v2/institutions/bank-bb/x", False, False),
        ("xrelay/v2/institutions/bank-b/bank-a", "xrelay/v2/institutions/bank-b/bank-a", True, True),
        ("xrelay/v2/institutions/bank-b/bank-a", "xrelay/v2/institutions/bank-b/bank-a/x", False, False),
        ("xrelay/v2/institutions/+/bank-a", "xrelay/v2/institutions/bank-b/bank-a", True, True),
        ("xrelay/v2/institutions/+/bank-a", "xrelay/v2/institutions/+/bank-a", False, True),
        ("#", "$SYS/broker/uptime", False, False),
        ("#", "anything/at/all", True, True),
    ],
)
def test_topic_rules(allowed: str, candidate: str, matches: bool, covers: bool) -> None:
    """topic_matches: a topic a client publishes or receives; filter_covers: a filter it subscribes to."""
    if "+" not in candidate and "#" not in candidate:
        assert topic_matches(allowed, candidate) is matches
    assert filter_covers(allowed, candidate) is covers


def test_the_hub_config_names_the_users_with_listen_only(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text("{}")
    base = f"[l1]\nchain_id = 900\nrpc_urls = ['http://127.0.0.1:1']\nhub = '0x{'11' * 20}'\n"
    path = tmp_path / "hub.toml"
    path.write_text(base + "[bus]\nlisten = '127.0.0.1:1883'\nusers = 'users.json'\n")
    assert hub_config.load(path).bus.users == users
    path.write_text(base + "[bus]\nurl = 'mqtt://broker'\nusers = 'users.json'\n")
    with pytest.raises(hub_config.HubConfigError) as caught:
        hub_config.load(path)
    assert "users only goes with listen" in str(caught.value)


# --- xrelay devnet up --broker mosquitto ---------------------------------------------------------


def xrelay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayer", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_devnet_up_with_mosquitto(tmp_path: Path) -> None:
    state_dir = tmp_path / "devnet"
    result = xrelay("devnet", "up", "--l2", "2", "--broker", "mosquitto", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((state_dir / "manifest.json").read_text())
    bus = manifest["bus"]
    broker = Mosquitto.from_manifest(bus)
    try:
        assert bus["broker"] == "mosquitto" and bus["url"] == f"mqtts://127.0.0.1:{bus['port']}"
        assert broker.running and bus["pid"] == broker.pid
        assert Path(bus["ca_cert"]).is_file() and Path(bus["credentials"]).is_file()
        assert "mosquitto, pid" in result.stdout
        logins = read_users(Path(bus["credentials"]))
        hub = tomllib.loads(Path(manifest["hub_service"]["config"]).read_text())["bus"]
        assert hub == {
            "url": bus["url"],
            "ca_cert": "bus/ca.pem",
            "username_env": "XRELAY_HUB_BUS_USER",
            "password_env": "XRELAY_HUB_BUS_PASSWORD",
        }
        for chain in manifest["chains"]:
            loaded = institution_config.load(chain["config"]).bus
            assert (loaded.url, loaded.ca_cert) == (bus["url"], Path(bus["ca_cert"]))
            env = f"XRELAY_{chain['name'].upper().replace('-', '_')}_BUS"
            assert (loaded.username_env, loaded.password_env) == (f"{env}_USER", f"{env}_PASSWORD")
            assert (chain["bus_username_env"], chain["bus_password_env"]) == (
                f"{env}_USER",
                f"{env}_PASSWORD",
            )

        async def connect() -> None:  # each daemon's login, as the devnet's services get it
            for chain in manifest["chains"]:
                name = chain["name"]
                tls = BusTls(ca_cert=Path(bus["ca_cert"]))
                async with Bus(bus["url"], name, username=name, password=logins[name].password, tls=tls) as b:
                    await b.wait_connected(WAIT)

        asyncio.run(connect())
        services = Services(state_dir)
        assert services.hub.env == {
            "XRELAY_HUB_BUS_USER": "hub",
            "XRELAY_HUB_BUS_PASSWORD": logins["hub"].password,
        }
        assert services.daemons["bank-a"].env["XRELAY_BANK_A_BUS_PASSWORD"] == logins["bank-a"].password
        again = xrelay("devnet", "up", "--broker", "mosquitto", "--state-dir", str(state_dir))
        assert again.returncode != 0 and str(broker.pid) in again.stderr
    finally:
        down = xrelay("devnet", "down", "--state-dir", str(state_dir))
        if broker.running:  # a failing test must not leave it behind
            broker.stop()
    assert down.returncode == 0, down.stderr
    assert str(broker.pid) in down.stdout
    assert not broker.running
    assert not Path(bus["credentials"]).exists()


def test_devnet_up_with_the_embedded_broker(tmp_path: Path) -> None:
    """The default: the hub service embeds the broker, with the same logins, on plain MQTT."""
    state_dir = tmp_path / "devnet"
    result = xrelay("devnet", "up", "--l2", "1", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((state_dir / "manifest.json").read_text())
    bus = manifest["bus"]
    try:
        assert bus["broker"] == "embedded" and bus["url"] == f"mqtt://{bus['listen']}"
        credentials = Path(bus["credentials"])
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        assert set(read_users(credentials)) == {"bank-a", HUB_SENDER, ADMIN_USER, OUTSIDER_USER}
        hub = hub_config.load(manifest["hub_service"]["config"]).bus
        assert (hub.listen, hub.users, hub.url) == (bus["listen"], credentials, None)
        loaded = institution_config.load(manifest["chains"][0]["config"]).bus
        assert (loaded.url, loaded.ca_cert) == (bus["url"], None)
        assert (loaded.username_env, loaded.password_env) == (
            "XRELAY_BANK_A_BUS_USER",
            "XRELAY_BANK_A_BUS_PASSWORD",
        )
        services = Services(state_dir)
        assert services.hub.env == {}  # it reads its own login from the users file
        assert services.daemons["bank-a"].env["XRELAY_BANK_A_BUS_USER"] == "bank-a"
    finally:
        down = xrelay("devnet", "down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert not Path(bus["credentials"]).exists()
