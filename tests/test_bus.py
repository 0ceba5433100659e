"""The bus protocol over a real (embedded) broker: signed envelopes, refusals, persistent sessions and
the publisher's queue across a broker restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import pytest

from bridge_contracts.anvil import dev_account, free_port
from hub.broker import EmbeddedBroker
from hub.bus import (
    ROOTS_TOPIC,
    Bus,
    BusError,
    BusMessage,
    BusTls,
    Envelope,
    EnvelopeRefused,
    PeerKey,
    RootAnnouncement,
    institution_topic,
    open_envelope,
    read_root_announcement,
)

OPERATOR_A = dev_account(1)
OPERATOR_B = dev_account(2)
PEERS = {"bank-a": PeerKey(901, OPERATOR_A.address), "bank-b": PeerKey(902, OPERATOR_B.address)}
WAIT = 10.0


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


def envelope(**overrides: Any) -> Envelope:
    fields: dict[str, Any] = {
        "kind": "messages",
        "sender": "bank-a",
        "chain_id": 901,
        "body": {"messages": [{"id": "901:5", "amount": str(10**30)}], "note": "héllo"},
    }
    return Envelope(**(fields | overrides))


def test_topics() -> None:
    assert institution_topic("bank-a") == "xrelay/v1/institutions/bank-a"
    assert ROOTS_TOPIC == "xrelay/v1/hub/roots"
    for bad in ("Bank-A", "bank/a", "bank+", "#", ""):
        with pytest.raises(ValueError, match="not an institution name"):
            institution_topic(bad)


def test_signed_envelope_round_trip() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with Bus(broker.url, "bank-a") as bank_a, Bus(broker.url, "bank-b") as bank_b:
            await bank_a.wait_connected(WAIT)
            await bank_b.wait_connected(WAIT)
            sent = envelope()
            await bank_a.publish(institution_topic("bank-b"), sent.sign(OPERATOR_A))
            [message] = await receive(bank_b, 1)
            assert message.topic == institution_topic("bank-b")
            opened = open_envelope(message.payload, PEERS)
            assert opened.unsigned() == sent.unsigned()
            assert opened.signature is not None
            await nothing_arrives(bank_a)  # nothing addressed to bank-a

    run(body)


def test_the_signature_covers_what_the_receiver_reads_back() -> None:
    """An integer time and a tuple in the body read back as an integer and a list: the receiver's
    digest is still the one signed."""
    sent = envelope(sent_at=1_700_000_000, body={"path": (1, 2), "nested": {"b": 1, "a": [None, 0.5]}})
    opened = open_envelope(sent.sign(OPERATOR_A), PEERS)
    assert (opened.sent_at, opened.body["path"]) == (1_700_000_000, [1, 2])
    assert opened.digest() == sent.digest()
    with pytest.raises(ValueError, match="decimal strings"):
        envelope(body={"amount": 10**30}).sign(OPERATOR_A)


def _tampered() -> bytes:
    data = orjson.loads(envelope().sign(OPERATOR_A))
    data["body"]["messages"][0]["amount"] = str(10**31)
    return orjson.dumps(data)


def _without(*names: str) -> bytes:
    data = orjson.loads(envelope().sign(OPERATOR_A))
    return orjson.dumps({k: v for k, v in data.items() if k not in names})


REFUSALS: list[tuple[str, bytes, str, str | None, int | None]] = [
    ("not JSON", b"{not json", "not JSON", None, None),
    ("not an object", b"[1, 2]", "not a JSON object but list", None, None),
    ("missing fields", _without("id", "body"), "missing fields: id, body", "bank-a", 901),
    ("no version", _without("version"), "missing field: version", "bank-a", 901),
    ("wrong version", envelope(version=2).sign(OPERATOR_A), "version 2 is not spoken here", "bank-a", 901),
    (
        "wrong type",
        envelope(chain_id="901").sign(OPERATOR_A),
        "field chain_id has the wrong type",
        "bank-a",
        None,
    ),
    ("unsigned", envelope().to_bytes(), "unsigned", "bank-a", 901),
    ("unknown sender", envelope(sender="bank-z").sign(OPERATOR_A), "unknown sender 'bank-z'", "bank-z", 901),
    (
        "foreign chain id",
        envelope(chain_id=902).sign(OPERATOR_A),
        "chain id 902 is not bank-a's",
        "bank-a",
        902,
    ),
    ("another signer", envelope().sign(OPERATOR_B), f"signed by {OPERATOR_B.address}", "bank-a", 901),
    ("tampered body", _tampered(), "not by bank-a's operator", "bank-a", 901),
]


def test_each_refusal_reason() -> None:
    """Every malformed or forged envelope is carried by the bus and refused by open_envelope with its
    reason and what it claimed to be."""

    async def body(broker: EmbeddedBroker) -> None:
        async with Bus(broker.url, "bank-a") as bank_a, Bus(broker.url, "bank-b") as bank_b:
            await bank_b.wait_connected(WAIT)
            for _, raw, _, _, _ in REFUSALS:
                await bank_a.publish(institution_topic("bank-b"), raw)
            received = await receive(bank_b, len(REFUSALS))
        for (case, raw, reason, sender, chain_id), message in zip(REFUSALS, received, strict=True):
            assert message.payload == raw, case
            with pytest.raises(EnvelopeRefused, match=reason) as refused:
                open_envelope(message.payload, PEERS)
            assert (refused.value.sender, refused.value.chain_id) == (sender, chain_id), case

    run(body)


def test_root_announcements_are_unsigned_hints() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        announcement = RootAnnouncement(size=7, root=bytes(range(32)), l1_block=123)
        async with Bus(broker.url, "hub", topics=()) as hub, Bus(broker.url, "bank-a") as bank_a:
            await bank_a.wait_connected(WAIT)
            await hub.publish(ROOTS_TOPIC, announcement.envelope(900))
            [message] = await receive(bank_a, 1)
        assert message.topic == ROOTS_TOPIC
        assert read_root_announcement(message.payload) == announcement
        with pytest.raises(EnvelopeRefused, match="unsigned"):
            open_envelope(message.payload, PEERS)  # never taken for a peer's envelope
        with pytest.raises(EnvelopeRefused, match="not a root announcement"):
            read_root_announcement(envelope().sign(OPERATOR_A))
        bad = Envelope(kind="root", sender="hub", chain_id=900, body={"size": "7", "root": "0x00"})
        with pytest.raises(EnvelopeRefused, match="body is"):
            read_root_announcement(bad.to_bytes())

    run(body)


def test_subscriber_gets_what_was_published_while_it_was_away() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        async with Bus(broker.url, "bank-b") as bank_b:
            await bank_b.wait_connected(WAIT)  # the broker now holds bank-b's persistent session
        async with Bus(broker.url, "bank-a") as bank_a:
            for n in range(3):
                await bank_a.publish(institution_topic("bank-b"), f"while away {n}".encode())
            assert await bank_a.drain(WAIT)
        async with Bus(broker.url, "bank-b") as bank_b:  # same client id: xrelay-bank-b
            received = await receive(bank_b, 3)
        assert [m.payload for m in received] == [b"while away 0", b"while away 1", b"while away 2"]

    run(body)


def test_publisher_queue_is_flushed_after_a_broker_restart() -> None:
    async def body(broker: EmbeddedBroker) -> None:
        topic = institution_topic("bank-b")
        async with Bus(broker.url, "bank-a") as bank_a:
            await bank_a.wait_connected(WAIT)
            await broker.stop()
            await _until(lambda: not bank_a.connected)
            for n in range(3):
                await bank_a.publish(topic, f"queued {n}".encode())
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


async def _until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


def test_bad_urls_and_closed_bus() -> None:
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
        bus = Bus(f"mqtt://127.0.0.1:{free_port()}", "bank-a", max_pending=1)
        async with bus:
            await bus.publish("t", b"1")
            with pytest.raises(BusError, match="1 messages wait for the broker"):
                await bus.publish("t", b"2")
        with pytest.raises(BusError, match="closed"):
            await bus.publish("t", b"3")

    asyncio.run(body())
