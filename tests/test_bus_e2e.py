"""End to end on the real broker: the devnet on Mosquitto (TLS, a login per client bound to its client
id, per-institution ACLs), three institutions' daemons as separate processes, and the bus's faults.

- Privacy: the broker's admin, who reads every topic, sees no target, amount, calldata or message id
  of what bank-a sends bank-b.
- Hostile envelopes on bank-a's topic (a replay of one the broker saw, tampered ciphertext, a body
  sealed to another key, a header moved onto another body, an unsigned change): each refused with its
  reason, and bank-a's next message is executed.
- A flood of 1,000 envelopes and an oversized one on bank-c's topic to bank-b: refused or dropped,
  recorded, bank-b keeps running and executes bank-a's messages meanwhile.
- Deafness: a session taken over with a stolen login, and the broker frozen (SIGSTOP) for 30 s:
  each daemon notices, reconnects with a clean session, and everything sent meanwhile is executed.
- Key rotation mid-stream: bank-b moves to a new bus key while bank-a keeps sending; nothing is lost.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import tomli_w
from click.testing import CliRunner
from eth_account.messages import encode_defunct
from eth_hash.auto import keccak

from bridge_contracts import anvil
from bridge_contracts.chain import Chain
from hub.broker import read_users
from hub.bus import Bus, BusTls
from hub.envelope import Envelope, devnet_bus_key, institution_topic, new_envelope_id, public_key_of
from relayer.bus_keys import new_key
from relayer.cli import cli
from tests.test_e2e import Net, network

WAIT = 180.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    yield from network(tmp_path_factory.mktemp("bus-e2e"), l2=3, broker="mosquitto")


def recorder(net: Net, name: str) -> Any:
    return net.contract(name, "CallRecorder")


def call(net: Net, source: str, dest: str, note: bytes) -> str:
    target = recorder(net, dest)
    return net.send(source, dest, target.address, target.encode_abi("receiveMessage", [note]))


class Sniffer:
    """Everything the broker's admin sees on every topic, collected on a thread of its own."""

    def __init__(self, net: Net) -> None:
        self.net = net
        self.seen: list[tuple[str, bytes]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with self.net.admin_bus(("#",)) as bus:
            await bus.wait_connected(30)

            async def collect() -> None:
                async for message in bus.messages():
                    self.seen.append((message.topic, message.payload))

            collecting = asyncio.create_task(collect())
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # what is still on its way
            collecting.cancel()

    def __enter__(self) -> Sniffer:
        self._thread.start()
        assert self._ready.wait(30), "the admin could not subscribe"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_the_broker_sees_only_ciphertext(net: Net) -> None:
    marker = b"wire transfer ref 7731-secret"
    native_a = bytes(net.contract("bank-a", "AssetRouter").functions.nativeAssetId().call())
    amount = 1_234_567_891_234_567
    target = recorder(net, "bank-b")
    with Sniffer(net) as sniffer:
        keys = [
            call(net, "bank-a", "bank-b", marker),
            net.send(
                "bank-a",
                "bank-b",
                target.address,
                target.encode_abi("receiveMessage", [marker]),
                (native_a, amount),
            ),
        ]
        net.wait("bank-b", keys)
        net.wait("bank-a", keys)  # the receipts came back too
    to_b = [raw for topic, raw in sniffer.seen if topic == institution_topic("bank-b", "bank-a")]
    to_a = [raw for topic, raw in sniffer.seen if topic == institution_topic("bank-a", "bank-b")]
    assert to_b and to_a, [topic for topic, _ in sniffer.seen]
    secrets = [
        marker,
        marker.hex().encode(),
        str(amount).encode(),
        target.address.lower()[2:].encode(),
        target.address[2:].encode(),
        native_a.hex().encode(),
        *(key.encode() for key in keys),
    ]
    for _, raw in sniffer.seen:
        for secret in secrets:
            assert secret not in raw, (secret, raw[:300])


def _resigned(fields: dict[str, Any], operator: Any) -> bytes:
    """An envelope's fields signed anew by `operator`, as a peer that holds the key would."""
    unsigned = {name: value for name, value in fields.items() if name != "signature"}
    digest = keccak(orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS))
    signature = "0x" + bytes(operator.sign_message(encode_defunct(primitive=digest)).signature).hex()
    return orjson.dumps(unsigned | {"signature": signature}, option=orjson.OPT_SORT_KEYS)


def test_hostile_envelopes_are_refused_with_their_reasons_and_traffic_flows(net: Net) -> None:
    operator_a = anvil.dev_account(net.entry("bank-a")["operator_account"])
    to_b = institution_topic("bank-b", "bank-a")
    with Sniffer(net) as sniffer:  # a genuine envelope bank-a sent bank-b, as the broker saw it
        net.wait("bank-b", [call(net, "bank-a", "bank-b", b"to be replayed")])
    genuine = next(raw for topic, raw in sniffer.seen if topic == to_b)
    fields = orjson.loads(genuine)
    box = bytearray(base64.b64decode(fields["body"]))
    box[-1] ^= 1
    other = orjson.loads(
        Envelope("receipts", "bank-a", "bank-b", fields["chain_id"], {"results": []}).seal(
            bytes.fromhex(fields["key"][2:]), operator_a
        )
    )
    wrong_key = public_key_of(devnet_bus_key(99))
    hostile = {
        "replayed: envelope": genuine,
        "sealed body refused: it does not open": _resigned(
            fields | {"id": new_envelope_id(), "body": base64.b64encode(bytes(box)).decode()}, operator_a
        ),
        "sealed to key": Envelope("messages", "bank-a", "bank-b", fields["chain_id"], {}).seal(
            wrong_key, operator_a
        ),
        "the sealed body belongs to another envelope": _resigned(
            fields | {"id": new_envelope_id(), "body": other["body"]}, operator_a
        ),
        "signed by": orjson.dumps(fields | {"id": new_envelope_id()}),
    }

    async def publish() -> None:
        async with net.admin_bus() as bus:
            for raw in hostile.values():
                await bus.publish(to_b, raw)
            assert await bus.drain(30)

    asyncio.run(publish())
    key = call(net, "bank-a", "bank-b", b"after the hostile ones")
    net.wait("bank-b", [key])
    with net.store("bank-b") as store:
        reasons = [r.reason for r in store.refusals(200) if r.peer == "bank-a"]
    for reason in hostile:
        assert any(r.startswith(reason) for r in reasons), (reason, reasons)


def test_a_flood_from_one_peer_delays_only_that_peer(net: Net) -> None:
    bank_c = net.entry("bank-c")
    operator_c = anvil.dev_account(bank_c["operator_account"])
    key_b = public_key_of(devnet_bus_key(net.entry("bank-b")["operator_account"]))
    junk = {"batch": {"chain_id": bank_c["chain_id"]}, "messages": []}  # well sealed, malformed inside
    flood = [
        Envelope("messages", "bank-c", "bank-b", bank_c["chain_id"], junk).seal(key_b, operator_c)
        for _ in range(1000)
    ]
    oversized = b"x" * (4 << 20) + b"!"  # over bank-b's bus.max_envelope_bytes
    started = time.monotonic()

    async def publish() -> None:
        async with net.admin_bus() as bus:
            await bus.wait_connected(30)
            await bus.publish(institution_topic("bank-b", "bank-c"), oversized)
            for raw in flood:
                await bus.publish(institution_topic("bank-b", "bank-c"), raw)
            assert await bus.drain(60)

    asyncio.run(publish())
    key = call(net, "bank-a", "bank-b", b"during the flood")
    net.wait("bank-b", [key], timeout=60)
    latency = time.monotonic() - started
    print(f"\nbank-a's message executed {latency:.1f} s after a 1,000-envelope flood from bank-c began")
    with net.store("bank-b") as store:
        refusals = [r for r in store.refusals(5000) if r.peer in ("bank-c", None)]
    reasons = {r.reason.split(":")[0] for r in refusals}
    assert any("too large" in reason for reason in reasons), reasons
    assert len(refusals) >= 100, len(refusals)  # refused after opening, or dropped over the quota
    assert net.status("bank-b")["bus"]["connected"]
    # bank-c's own traffic still flows once the flood is over.
    again = call(net, "bank-c", "bank-b", b"after the flood")
    net.wait("bank-b", [again])


def test_a_stolen_session_is_noticed_and_nothing_sent_meanwhile_is_lost(net: Net) -> None:
    bus = net.manifest["bus"]
    login = read_users(Path(bus["credentials"]))["bank-b"]
    before = net.status("bank-b")["bus"]

    async def steal() -> None:
        # bank-b's own login and client id, as a thief with its password would: the broker hands it
        # bank-b's session, and bank-b's daemon is disconnected.
        thief = Bus(
            bus["url"],
            "bank-b",
            topics=(),
            username=login.name,
            password=login.password,
            tls=BusTls(ca_cert=Path(bus["ca_cert"])),
        )
        async with thief:
            await thief.wait_connected(30)
            await asyncio.sleep(3)

    thread = threading.Thread(target=lambda: asyncio.run(steal()))
    thread.start()
    time.sleep(0.5)
    keys = [call(net, "bank-a", "bank-b", f"while stolen {i}".encode()) for i in range(3)]
    thread.join()
    started = time.monotonic()
    net.wait("bank-b", keys)
    print(f"\nexecuted {time.monotonic() - started:.1f} s after the thief left")
    # The thief's connection closed the daemon's: it came back (a reconnection, a lost session, or
    # deafness) and asked bank-a to push again. The thief's client and the daemon took the session
    # from each other while both were there: the daemon may still be in its reconnect backoff.
    deadline = time.monotonic() + 30
    while not (after := net.status("bank-b")["bus"])["connected"] and time.monotonic() < deadline:
        time.sleep(0.5)
    noticed = ("reconnects", "sessions_lost", "deaf_episodes")
    assert sum(after[k] for k in noticed) > sum(before[k] for k in noticed), (before, after)
    assert after["connected"] and not after["deaf"], after


def test_a_frozen_broker_is_noticed_and_everything_sent_meanwhile_executed(net: Net) -> None:
    pid = net.manifest["bus"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        keys = [call(net, "bank-a", "bank-b", f"while frozen {i}".encode()) for i in range(3)]
        keys += [call(net, "bank-b", "bank-a", f"while frozen {i}".encode()) for i in range(2)]
        time.sleep(30)
        deaf = {name: net.status(name)["bus"] for name in ("bank-a", "bank-b")}
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    assert all(s["deaf"] or not s["connected"] for s in deaf.values()), deaf
    net.wait("bank-b", keys[:3])
    net.wait("bank-a", keys[3:])
    net.wait("bank-a", keys[:3])  # and the receipts made it back
    print(
        f"\neverything sent during a 30 s freeze executed {time.monotonic() - resumed:.1f} s after it ended"
    )
    for name in ("bank-a", "bank-b"):
        after = net.status(name)["bus"]
        assert after["connected"] and not after["deaf"], after


def test_key_rotation_mid_stream_loses_nothing(net: Net, tmp_path: Path) -> None:
    entry = net.entry("bank-b")
    config_path = Path(entry["config"])
    original = config_path.read_text()
    daemon = net.services.daemons["bank-b"]
    secret = new_key()
    keys: list[str] = []
    with net.store("bank-b") as store:
        refused_before = max((r.id for r in store.refusals(1)), default=0)
    try:
        keys += [call(net, "bank-a", "bank-b", f"before rotation {i}".encode()) for i in range(3)]
        config = tomllib.loads(original)
        config["bus"]["previous_key"] = config["bus"]["key"]
        config["bus"]["key"] = {"env": "XRELAY_BANK_B_NEW_BUS_KEY"}
        daemon.env["XRELAY_BANK_B_NEW_BUS_KEY"] = bytes(secret).hex()
        daemon.stop()
        config_path.write_text(tomli_w.dumps(config))
        daemon.start()
        keys += [call(net, "bank-a", "bank-b", f"after restart {i}".encode()) for i in range(3)]
        runner = CliRunner(env={"XRELAY_BANK_B_NEW_BUS_KEY": bytes(secret).hex()})
        shown = runner.invoke(cli, ["bus-key", "show", "-c", str(config_path)])
        assert shown.exit_code != 0 and "not the key the L1 Hub has" in shown.output, shown.output
        result = runner.invoke(cli, ["bus-key", "register", "-c", str(config_path)])
        assert result.exit_code == 0 and "registered on the L1 Hub" in result.output, result.output
        shown = runner.invoke(cli, ["bus-key", "show", "-c", str(config_path)])
        assert shown.exit_code == 0 and f"0x{public_key_of(secret).hex()}" in shown.output, shown.output
        again = runner.invoke(cli, ["bus-key", "register", "-c", str(config_path)])
        assert again.exit_code == 0 and "has this key already" in again.output, again.output
        keys += [call(net, "bank-a", "bank-b", f"after rotation {i}".encode()) for i in range(3)]
        net.wait("bank-b", keys)
        net.wait("bank-a", keys)
        hub = net.hub()
        assert bytes(hub.functions.busKeys(entry["chain_id"]).call()[0]) == public_key_of(secret)
        with net.store("bank-b") as store:
            refused = [r for r in store.refusals(1000) if r.id > refused_before]
        assert not [r for r in refused if "sealed" in r.reason], refused
    finally:
        # Leave the devnet as it was: the old key registered again and in the config.
        daemon.stop()
        config_path.write_text(original)
        daemon.env.pop("XRELAY_BANK_B_NEW_BUS_KEY", None)
        l1 = Chain(net.manifest["l1"]["rpc_url"], anvil.dev_account(entry["operator_account"]))
        hub = l1.contract("Hub", net.manifest["l1"]["contracts"]["hub"])
        old = public_key_of(devnet_bus_key(entry["operator_account"]))
        l1.send(hub.functions.setBusKey(entry["chain_id"], old))
        daemon.start()
