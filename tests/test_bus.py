"""The bus client over a real broker (the embedded one; Mosquitto too when installed): persistent
sessions, the publisher's queue across a broker restart, the liveness self-probe (a session taken over,
a frozen broker), fair per-sender queues and what the bus drops (over quota, too large, retained
garbage)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from bridge_contracts.anvil import free_port
from hub.broker import EmbeddedBroker
from hub.bus import ROOTS_TOPIC, Bus, BusDrop, BusError, BusMessage, BusTls
from hub.envelope import institution_topic

WAIT = 10.0
PROBE = 0.2
DEAF_AFTER = 1.5
TO_B_FROM_A = institution_topic("bank-b", "bank-a")
TO_B_FROM_C = institution_topic("bank-b", "bank-c")


def run(test: Callable[[EmbeddedBroker], Coroutine[Any, Any, None]]) -> None:
    """Run an async test body against a fresh embedded broker on a free port."""

    async def main() -> None:
        async with EmbeddedBroker("127.0.0.1", free_port()) as broker:
            await asyncio.wait_for(test(broker), 60)

    asyncio.run(main())


async def receive(bus: Bus, count: int) -> list[BusMessage]:
    async def take() -> list[BusMessage]:
        got: list[BusMessage] = []
        async for message in bus.messages():
            got.append(message)
            if len(got) == count:
                break
        return got

    return await asyncio.wait_for(take(), WAIT)


async def nothing_arrives(bus: Bus, seconds: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(bus.messages()), seconds)


async def until_quiet(bus: Bus, quiet: float = 0.3) -> list[BusMessage]:
    """What arrives until nothing has for `quiet` seconds."""
    got: list[BusMessage] = []
    iterator = bus.messages()
    with contextlib.suppress(TimeoutError):
        while True:
            got.append(await asyncio.wait_for(anext(iterator), quiet))
    return got


async def _until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


def probing(url: str, name: str, **kw: Any) -> Bus:
    return Bus(url, name, probe_seconds=PROBE, deaf_after_seconds=DEAF_AFTER, timeout=1.0, **kw)


class Recorder:
    """The hooks a daemon sets: drops reported, recoveries signalled (monotonic times)."""

    def __init__(self, bus: Bus) -> None:
        self.drops: list[BusDrop] = []
        self.recovered: list[float] = []
        bus.on_dropped = self.drops.append
        bus.on_recovered = lambda: self.recovered.append(time.monotonic())

    def kinds(self) -> list[str]:
        return [d.kind for d in self.drops]


# --- the client ---------------------------------------------------------------------------------


def test_subscriber_gets_what_was_published_while_it_was_away() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with Bus(broker.url, "bank-b") as bank_b:
            await bank_b.wait_connected(WAIT)  # the broker now holds bank-b's persistent session
        async with Bus(broker.url, "bank-a") as bank_a:
            for n in range(3):
                await bank_a.publish(TO_B_FROM_A, f"while away {n}".encode())
            assert await bank_a.drain(WAIT)
        async with Bus(broker.url, "bank-b") as bank_b:  # same client id: xrelay-bank-b
            received = await receive(bank_b, 3)
        assert [m.payload for m in received] == [b"while away 0", b"while away 1", b"while away 2"]
        assert {(m.topic, m.sender) for m in received} == {(TO_B_FROM_A, "bank-a")}

    run(body)


def test_publisher_queue_is_flushed_after_a_broker_restart() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with Bus(broker.url, "bank-a") as bank_a:
            await bank_a.wait_connected(WAIT)
            await broker.stop()
            await _until(lambda: not bank_a.connected)
            for n in range(3):
                await bank_a.publish(TO_B_FROM_A, f"queued {n}".encode())
            assert bank_a.pending == 3
            assert not await bank_a.drain(0.2)  # nothing can be sent: no broker
            # The broker comes back empty (its sessions were in memory); bank-b subscribes before
            # bank-a's next reconnection attempt, at least a second after it lost the broker.
            await broker.start()
            async with Bus(broker.url, "bank-b") as bank_b:
                await bank_b.wait_connected(WAIT)
                assert not bank_a.connected, "bank-a reconnected too early for this test"
                received = await receive(bank_b, 3)
                assert bank_a.connected and bank_a.pending == 0
        assert [m.payload for m in received] == [b"queued 0", b"queued 1", b"queued 2"]

    run(body)


def test_bad_urls_settings_and_closed_bus() -> None:
    async def body() -> None:
        for url, reason in [
            ("http://localhost:1883", "scheme must be mqtt or mqtts"),
            ("mqtt://", "has no host"),
            ("mqtt://user:secret@localhost", "never in the URL"),
            ("mqtt://localhost:99999", "not a valid URL"),
        ]:
            with pytest.raises(BusError, match=reason):
                Bus(url, "bank-a")
        with pytest.raises(BusError, match="need an mqtts:// URL"):
            Bus("mqtt://localhost", "bank-a", tls=BusTls())
        with pytest.raises(BusError, match="must be more than probe_seconds"):
            Bus("mqtt://localhost", "bank-a", probe_seconds=5, deaf_after_seconds=5)
        with pytest.raises(BusError, match="probe_seconds must be positive"):
            Bus("mqtt://localhost", "bank-a", probe_seconds=0)
        with pytest.raises(BusError, match="per_sender_pending"):
            Bus("mqtt://localhost", "bank-a", per_sender_pending=0)
        assert Bus("mqtt://localhost", "bank-a", probe_seconds=5).deaf_after_seconds == 20
        bus = Bus(f"mqtt://127.0.0.1:{free_port()}", "bank-a", max_pending=1)
        async with bus:
            await bus.publish("t", b"1")
            with pytest.raises(BusError, match="1 messages wait for the broker"):
                await bus.publish("t", b"2")
        with pytest.raises(BusError, match="closed"):
            await bus.publish("t", b"3")

    asyncio.run(body())


# --- liveness -----------------------------------------------------------------------------------


def test_a_bus_hears_its_own_probes_and_never_yields_them() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with probing(broker.url, "bank-b") as bank_b:
            await bank_b.wait_connected(WAIT)
            await nothing_arrives(bank_b, 1.0)  # five probes went by
            health = bank_b.health()
            assert health["connected"] and not health["deaf"] and health["deaf_since"] is None
            assert health["last_heard"] is not None and time.time() - health["last_heard"] < 1.0
            assert (health["deaf_episodes"], health["reconnects"]) == (0, 0)
            # Another client writing the probe topic (no ACL here) proves nothing: neither a forged
            # token nor one heard already counts.
            async with aiomqtt.Client(broker.host, broker.port, identifier="forger") as forger:
                heard = bank_b.last_heard
                await forger.publish(bank_b.probe_topic or "", b"0" * 32, qos=1)
                await forger.publish(bank_b.probe_topic or "", b"not even hex \xff", qos=1)
            bank_b.probe_seconds = 60.0  # quiet, so that only the forgeries could be heard
            await asyncio.sleep(0.5)
            assert bank_b.last_heard is not None and heard is not None
            assert bank_b.last_heard - heard < PROBE * 2  # the last real probe at most

    run(body)


def test_a_stalled_event_loop_is_not_taken_for_deafness() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with probing(broker.url, "bank-b") as bank_b:
            await bank_b.wait_connected(WAIT)
            await _until(lambda: bank_b.last_heard is not None)
            assert bank_b.deaf_after_seconds is not None
            time.sleep(bank_b.deaf_after_seconds * 1.5)  # the loop is held, as by a long burst of work
            await asyncio.sleep(1.0)
            assert (bank_b.deaf_episodes, bank_b.reconnects) == (0, 0), bank_b.health()

    run(body)


async def _takeover(url: str, host: str, port: int) -> tuple[Bus, list[float], float]:
    """Someone connects with bank-b's client id for three seconds, then leaves; bank-b signals that
    it must be sent again what it missed, and hears what is published to it afterwards."""
    async with probing(url, "bank-b") as bank_b, Bus(url, "bank-a") as bank_a:
        hooks = Recorder(bank_b)
        await bank_b.wait_connected(WAIT)
        await bank_a.wait_connected(WAIT)
        await _until(lambda: bank_b.last_heard is not None)
        started = time.monotonic()
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client(host, port, identifier=bank_b.client_id):
                await asyncio.sleep(3.0)
        await _until(lambda: bool(hooks.recovered), WAIT)
        await asyncio.sleep(1.0)  # the intruder is gone: nothing takes the session away again
        await bank_a.publish(TO_B_FROM_A, b"after the takeover")
        [message] = await receive(bank_b, 1)
        assert message.payload == b"after the takeover"
        assert not bank_b.deaf and bank_b.reconnects >= 1
        return bank_b, hooks.recovered, started


def test_a_session_taken_over_is_noticed_and_recovered() -> None:
    """amqtt hands the session to the newcomer without closing bank-b's connection: bank-b hears
    nothing from then on, notices it, and takes a fresh session."""

    async def body(broker: EmbeddedBroker) -> None:
        bank_b, recovered, started = await _takeover(broker.url, broker.host, broker.port)
        assert bank_b.deaf_episodes == 1 and len(recovered) == 1
        assert recovered[0] - started < DEAF_AFTER + PROBE + 1.0, "noticed and recovered late"
        print(f"takeover (amqtt): deaf and recovered after {recovered[0] - started:.2f}s")

    run(body)


@contextlib.asynccontextmanager
async def mosquitto(tmp_path: Path) -> AsyncIterator[int]:
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()), None
    )
    if binary is None:
        pytest.skip("no mosquitto installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(5)


def test_a_session_taken_over_on_mosquitto(tmp_path: Path) -> None:
    """Mosquitto closes bank-b's connection when the newcomer arrives, and the newcomer's clean
    session discards bank-b's: bank-b reconnects a second later to no session, and says so."""

    async def body() -> None:
        async with mosquitto(tmp_path) as port:
            bank_b, recovered, started = await _takeover(f"mqtt://127.0.0.1:{port}", "127.0.0.1", port)
        assert bank_b.sessions_lost >= 1 and recovered[0] - started < 2.5
        print(f"takeover (mosquitto): session lost, signalled after {recovered[0] - started:.2f}s")

    asyncio.run(asyncio.wait_for(body(), 60))


def test_mosquitto_delivers_what_waited_for_an_offline_session(tmp_path: Path) -> None:
    """A spec-abiding broker sends what it queued for an offline session without the RETAIN flag, so
    the bus does not take it for retained garbage."""

    async def body() -> None:
        async with mosquitto(tmp_path) as port:
            url = f"mqtt://127.0.0.1:{port}"
            async with Bus(url, "bank-b") as bank_b:
                await bank_b.wait_connected(WAIT)
            async with Bus(url, "bank-a") as bank_a:
                await bank_a.publish(TO_B_FROM_A, b"while away")
                assert await bank_a.drain(WAIT)
            async with Bus(url, "bank-b") as bank_b:
                hooks = Recorder(bank_b)
                [message] = await receive(bank_b, 1)
            assert message.payload == b"while away" and hooks.drops == []

    asyncio.run(asyncio.wait_for(body(), 60))


class PausableProxy:
    """A TCP proxy between the bus and the broker that can freeze: paused, it holds every byte (and
    accepts new connections) without closing anything, as a broker stopped with SIGSTOP would."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = free_port()
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> PausableProxy:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.target)
        pumps = [
            asyncio.create_task(self._pump(client_r, broker_w)),
            asyncio.create_task(self._pump(broker_r, client_w)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_w, broker_w):
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self.flowing.wait()
            writer.write(data)
            await writer.drain()


def test_a_frozen_broker_is_noticed_and_recovered_from() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with PausableProxy(broker.port) as proxy, probing(proxy.url, "bank-b") as bank_b:
            hooks = Recorder(bank_b)
            await bank_b.wait_connected(WAIT)
            await _until(lambda: bank_b.last_heard is not None)
            proxy.flowing.clear()
            frozen = time.monotonic()
            await _until(lambda: bank_b.deaf, WAIT)
            noticed = time.monotonic() - frozen
            assert DEAF_AFTER - PROBE <= noticed <= DEAF_AFTER + PROBE + 0.5
            assert bank_b.health()["deaf"] and bank_b.deaf_episodes == 1
            await asyncio.sleep(4.0 - noticed)  # frozen for four seconds
            proxy.flowing.set()
            resumed = time.monotonic()
            await _until(lambda: bool(hooks.recovered), WAIT)
            print(f"frozen broker: deaf after {noticed:.2f}s, recovered {hooks.recovered[0] - resumed:.2f}s")
            print(f"after it resumed ({bank_b.reconnects} reconnections)")
            assert not bank_b.deaf and bank_b.deaf_episodes == 1 and bank_b.reconnects >= 1
            async with Bus(broker.url, "bank-a") as bank_a:
                await bank_a.publish(TO_B_FROM_A, b"after the freeze")
                [message] = await receive(bank_b, 1)
            assert message.payload == b"after the freeze"

    run(body)


# --- fair queues and drops ----------------------------------------------------------------------


def test_one_sender_does_not_starve_another() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with (
            Bus(broker.url, "bank-b", per_sender_pending=2000) as bank_b,
            Bus(broker.url, "bank-a") as bank_a,
            Bus(broker.url, "bank-c") as bank_c,
        ):
            await bank_b.wait_connected(WAIT)
            for n in range(1000):
                await bank_c.publish(TO_B_FROM_C, f"flood {n}".encode())
            assert await bank_c.drain(WAIT)
            await _until(lambda: bank_b.queued == 1000)
            await bank_a.publish(TO_B_FROM_A, b"just one")
            await _until(lambda: bank_b.queued == 1001)
            first = await receive(bank_b, 3)
            assert b"just one" in [m.payload for m in first]
            assert next(m.payload for m in first if m.sender == "bank-c") == b"flood 0"  # still in order

    run(body)


def test_a_sender_over_its_quota_is_dropped_and_reported() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with (
            Bus(broker.url, "bank-b", per_sender_pending=5) as bank_b,
            Bus(broker.url, "bank-a") as bank_a,
        ):
            hooks = Recorder(bank_b)
            await bank_b.wait_connected(WAIT)
            for n in range(8):
                await bank_a.publish(TO_B_FROM_A, f"a {n}".encode())
            await bank_a.publish(TO_B_FROM_C, b"c 0")  # (no ACL here: bank-a writes as bank-c)
            await _until(lambda: len(hooks.drops) == 3 and bank_b.queued == 6)
            assert hooks.kinds() == ["queue_full"] * 3 and bank_b.dropped["queue_full"] == 3
            assert [(d.sender, d.topic, d.head) for d in hooks.drops] == [
                ("bank-a", TO_B_FROM_A, f"a {n}".encode()) for n in (5, 6, 7)
            ]
            received = await receive(bank_b, 6)
            assert [m.payload for m in received] == [b"a 0", b"c 0", b"a 1", b"a 2", b"a 3", b"a 4"]

    run(body)


def test_only_known_senders_get_a_queue_and_a_queue_has_a_byte_budget() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with (
            Bus(broker.url, "bank-b", per_sender_bytes=2500, senders=lambda name: name == "bank-a") as bank_b,
            Bus(broker.url, "bank-a") as bank_a,
        ):
            hooks = Recorder(bank_b)
            await bank_b.wait_connected(WAIT)
            await bank_a.publish(institution_topic("bank-b", "sybil-1"), b"from nobody")
            for n in range(3):
                await bank_a.publish(TO_B_FROM_A, bytes([n]) * 1000)  # the third is over 2,500 bytes
            await _until(lambda: len(hooks.drops) == 2)
            assert hooks.kinds() == ["foreign_topic", "queue_full"]
            assert hooks.drops[0].reason == "sybil-1 is not a peer of bank-b"
            received = await receive(bank_b, 2)
            assert [m.payload for m in received] == [b"\0" * 1000, b"\1" * 1000]
            await bank_a.publish(TO_B_FROM_A, b"\3" * 2000)  # read: the budget is free again
            [message] = await receive(bank_b, 1)
            assert message.payload == b"\3" * 2000

    run(body)


def test_too_large_is_dropped_and_reported_and_the_connection_kept() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with (
            Bus(broker.url, "bank-b", max_payload_bytes=1000) as bank_b,
            Bus(broker.url, "bank-a") as bank_a,
        ):
            hooks = Recorder(bank_b)
            await bank_b.wait_connected(WAIT)
            await bank_a.publish(TO_B_FROM_A, b"x" * 1001)
            await bank_a.publish(TO_B_FROM_A, b"y" * 1000)
            [message] = await receive(bank_b, 1)
            assert message.payload == b"y" * 1000
            [drop] = hooks.drops
            assert (drop.kind, drop.sender, drop.size, drop.head) == (
                "too_large",
                "bank-a",
                1001,
                b"x" * 1001,
            )
            assert "too large" in drop.reason
            assert bank_b.connected and bank_b.reconnects == 0

    run(body)


def test_retained_garbage_on_an_inbox_is_dropped_once_and_roots_are_kept() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with aiomqtt.Client(broker.host, broker.port, identifier="litterer") as litterer:
            await litterer.publish(TO_B_FROM_A, b"stale", qos=1, retain=True)
            await litterer.publish("xrelay/v2/elsewhere", b"elsewhere", qos=1, retain=True)
            await litterer.publish(ROOTS_TOPIC, b"root 7", qos=1, retain=True)
        async with PausableProxy(broker.port) as proxy, Bus(proxy.url, "bank-b") as bank_b:
            hooks = Recorder(bank_b)
            for connection in range(3):
                await bank_b.wait_connected(WAIT)
                # The root is retained by design: handed over at every subscription (amqtt may hand it
                # over twice when it resumes a session), and nothing else is.
                received = await until_quiet(bank_b)
                assert received and {(m.topic, m.payload, m.sender) for m in received} == {
                    (ROOTS_TOPIC, b"root 7", None)
                }
                if connection < 2:
                    for task in list(proxy._tasks):  # cut the connection: bank-b subscribes again
                        task.cancel()
                    await _until(lambda: not bank_b.connected)
            assert bank_b.reconnects == 2
            [drop] = hooks.drops  # reported once, not at every subscription
            assert (drop.kind, drop.sender, drop.head) == ("retained", "bank-a", b"stale")
            async with Bus(broker.url, "bank-a") as bank_a:  # a live message on the same topic arrives
                await bank_a.publish(TO_B_FROM_A, b"fresh")
                [message] = await receive(bank_b, 1)
            assert message.payload == b"fresh"

    run(body)


def test_topics_not_ours_are_dropped() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        # A watcher subscribed to everything: bank-b's inbox, its roots, and more.
        async with Bus(
            broker.url, "bank-b", topics=("xrelay/v2/institutions/bank-b/+", "xrelay/#")
        ) as bank_b:
            hooks = Recorder(bank_b)
            await bank_b.wait_connected(WAIT)
            async with aiomqtt.Client(broker.host, broker.port, identifier="writer") as writer:
                await writer.publish("xrelay/v2/institutions/bank-b/Not-A-Name", b"bad sender", qos=1)
                await writer.publish(ROOTS_TOPIC, b"root", qos=1)
                await writer.publish("xrelay/v2/other", b"other", qos=1)
            received = await until_quiet(bank_b)
            # (amqtt delivers a message once per matching subscription)
            assert {m.payload for m in received} == {b"other", b"root"}
            assert set(hooks.kinds()) == {"foreign_topic"}

    run(body)
