"""End to end: the devnet (L1 and three institution chains on anvil), the hub service with the
embedded broker, and each institution's daemon as a separate process, all real. Messages go in
through the Outbox and are checked where they end up: on the destination chain, in both daemons'
stores and on the L1 Hub.

The tests share one network and run in file order; the last one freezes bank-c on purpose.
"""

from __future__ import annotations

import asyncio
import random
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import tomli_w
from click.testing import CliRunner
from web3 import Web3
from web3.logs import DISCARD

from bridge_contracts import anvil
from bridge_contracts.chain import Chain, Reverted
from bridge_contracts.messages import Message, MessageProof, message_id, sent_messages
from bridge_contracts.views import hub_batch
from hub.broker import ADMIN_USER, read_users
from hub.bus import Bus, BusTls
from hub.client import HubClient
from hub.delivery import DeliveredMessage, Delivery, delivery_from_json, delivery_to_json, message_key
from hub.envelope import Envelope, devnet_bus_key, institution_topic, public_key_of
from proofs.groth16.proof import Proof
from relayer.cli import cli
from relayer.config import load as load_config
from relayer.devnet import devnet
from relayer.devnet.mosquitto import PACKET_MARGIN
from relayer.devnet.services import Services, admin_token
from relayer.store import Store, StoredMessage

pytestmark = pytest.mark.timeout(900)

USER = anvil.dev_account(devnet.USER_ACCOUNT)
ONE = 10**18
WAIT = 180.0


@dataclass
class Net:
    manifest: dict[str, Any]
    services: Services

    def entry(self, name: str) -> dict[str, Any]:
        return next(c for c in self.manifest["chains"] if c["name"] == name)

    def chain(self, name: str, account: Any = USER) -> Chain:
        return Chain(self.entry(name)["rpc_url"], account)

    def contract(self, name: str, contract: str, key: str | None = None) -> Any:
        return self.chain(name).contract(contract, self.entry(name)["contracts"][key or _snake(contract)])

    def hub(self) -> Any:
        l1 = Chain(self.manifest["l1"]["rpc_url"], USER)
        return l1.contract("Hub", self.manifest["l1"]["contracts"]["hub"])

    def config(self, name: str) -> Path:
        return Path(self.entry(name)["config"])

    def store(self, name: str) -> Store:
        return Store(load_config(self.config(name)).store.path)

    def row(self, name: str, key: str) -> StoredMessage | None:
        with self.store(name) as store:
            return store.message(key)

    def send(
        self, source: str, dest: str, target: str, data: bytes = b"", value: tuple[bytes, int] | None = None
    ) -> str:
        chain = self.chain(source)
        outbox = self.contract(source, "Outbox")
        dest_id = self.manifest["l1"]["chain_id"] if dest == "l1" else self.entry(dest)["chain_id"]
        if value is None:
            receipt = chain.send(outbox.functions.send(dest_id, target, data))
        else:
            asset, amount = value
            router = self.contract(source, "AssetRouter")
            origin, origin_token, token = router.functions.assets(asset).call()
            native = origin_token == NATIVE and origin == self.entry(source)["chain_id"]
            if not native and origin == self.entry(source)["chain_id"]:
                chain.send(chain.contract("DevToken", token).functions.approve(router.address, amount))
            receipt = chain.send(
                outbox.functions.sendWithAsset(dest_id, target, data, asset, amount),
                value=amount if native else 0,
            )
        (sent,) = sent_messages(outbox, [receipt])
        return message_key(sent.message.source_chain_id, sent.message.nonce)

    def wait(self, name: str, keys: list[str], status: str = "executed", timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.store(name) as store:
                rows = {key: store.message(key) for key in keys}
            if all(row is not None and row.status == status for row in rows.values()):
                return
            time.sleep(0.25)
        shown = {key: None if row is None else str(row.status) for key, row in rows.items()}
        raise AssertionError(f"{name}: waited {timeout:.0f} s for {status}; have {shown}")

    def status(self, name: str) -> dict[str, Any]:
        """`name`'s running daemon's status (GET /v1/status on its admin API)."""
        response = requests.get(
            f"http://{self.entry(name)['admin']}/v1/status",
            headers={"Authorization": f"Bearer {admin_token(name)}"},
            timeout=10,
        )
        assert response.status_code == 200, (response.status_code, response.text[:500])
        status: dict[str, Any] = response.json()
        return status

    def admin_bus(self, topics: tuple[str, ...] = ()) -> Bus:
        """A client with the devnet broker's admin login, which may read and write every topic."""
        bus = self.manifest["bus"]
        admin = read_users(Path(bus["credentials"]))[ADMIN_USER]
        tls = BusTls(ca_cert=Path(bus["ca_cert"])) if "ca_cert" in bus else None
        return Bus(
            bus["url"], ADMIN_USER, topics=topics, username=admin.name, password=admin.password, tls=tls
        )

    def bridged(self, name: str, asset: bytes) -> Any:
        router = self.contract(name, "AssetRouter")
        token = router.functions.assets(asset).call()[2]
        return self.chain(name).contract("BridgedToken", token)


NATIVE = "0x0000000000000000000000000000000000000001"
RECIPIENT = Web3.to_checksum_address("0x000000000000000000000000000000000000beef")  # only ever receives


def _snake(contract: str) -> str:
    return {
        "Outbox": "outbox",
        "Inbox": "inbox",
        "AssetRouter": "asset_router",
        "CallRecorder": "call_recorder",
    }[contract]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    yield from network(tmp_path_factory.mktemp("e2e"), l2=3)


def network(state: Path, *, l2: int, broker: str = "mosquitto") -> Iterator[Net]:
    """A devnet of `l2` institution chains (capacities 8 and 16, proven adaptively) on `broker`, with
    its hub service and daemons running."""
    manifest = devnet.up(state, l2=l2, capacities=(8, 16), broker=broker)
    services = Services(state)
    try:
        services.start()
        yield Net(manifest, services)
    finally:
        services.stop()
        devnet.down(state)


@contextmanager
def reconfigured(net: Net, name: str, change: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """`name`'s config as `change` edits it (its daemon restarted on it, if it runs); afterwards, whatever
    happened, the config file as it was and the daemon started on it."""
    path = net.config(name)
    original = path.read_text()
    config = tomllib.loads(original)
    change(config)
    daemon = net.services.daemons[name]
    running = daemon.running
    daemon.stop()
    path.write_text(tomli_w.dumps(config))
    try:
        if running:
            daemon.start()
        yield
    finally:
        daemon.stop()
        path.write_text(original)
        daemon.start()


def _asset(net: Net, name: str, native: bool) -> bytes:
    router = net.contract(name, "AssetRouter")
    if native:
        return bytes(router.functions.nativeAssetId().call())
    return bytes(router.functions.assetIdOfToken(net.entry(name)["contracts"]["deposit_token"]).call())


def _ledger(net: Net, asset: bytes, origin: str) -> dict[str, int]:
    """Where an asset of `origin` is: locked there, bridged supply elsewhere, L1 balances."""
    hub = net.hub()
    found = {f"locked on {origin}": net.contract(origin, "AssetRouter").functions.locked(asset).call()}
    for entry in net.manifest["chains"]:
        if entry["name"] == origin:
            continue
        router = net.contract(entry["name"], "AssetRouter")
        token = router.functions.assets(asset).call()[2]
        supply = (
            0
            if int(token, 16) == 0
            else net.chain(entry["name"]).contract("BridgedToken", token).functions.totalSupply().call()
        )
        found[f"supply on {entry['name']}"] = supply
        found[f"L1 balance of {entry['name']}"] = hub.functions.balances(entry["chain_id"], asset).call()
    return found


def _adds_up(ledger: dict[str, int], origin: str) -> None:
    """Nothing in flight: what is locked on the origin is exactly what exists elsewhere, and L1 says
    each chain holds exactly its bridged supply."""
    others = [k.removeprefix("supply on ") for k in ledger if k.startswith("supply on ")]
    assert ledger[f"locked on {origin}"] == sum(ledger[f"supply on {o}"] for o in others), ledger
    for other in others:
        assert ledger[f"supply on {other}"] == ledger[f"L1 balance of {other}"], ledger


def test_value_arrives_exactly_and_a_call_with_value_reaches_its_target(net: Net) -> None:
    native_a, token_a = _asset(net, "bank-a", True), _asset(net, "bank-a", False)
    recorder = net.contract("bank-b", "CallRecorder")
    token_on_a = net.chain("bank-a").contract("DevToken", net.entry("bank-a")["contracts"]["deposit_token"])
    user_tokens_before = token_on_a.functions.balanceOf(USER.address).call()
    calls_before = recorder.functions.count().call()
    before = {asset: _ledger(net, asset, "bank-a") for asset in (native_a, token_a)}

    note = b"invoice 42"
    keys = [
        net.send(
            "bank-a",
            "bank-b",
            recorder.address,
            recorder.encode_abi("receiveMessage", [note]),
            (native_a, 3 * ONE // 2),
        ),
        net.send("bank-a", "bank-b", USER.address, b"", (token_a, 100 * ONE)),
        net.send("bank-a", "bank-c", USER.address, b"", (token_a, 7)),
    ]
    net.wait("bank-b", keys[:2])
    net.wait("bank-c", keys[2:])
    back = net.send("bank-b", "bank-a", USER.address, b"", (token_a, 40 * ONE))
    net.wait("bank-a", [back])
    net.wait("bank-a", [*keys, back])  # the receipts came back: every outgoing message is executed

    # The call reached its target with the message's source chain, sender and value.
    assert recorder.functions.count().call() == calls_before + 1
    source, sender, asset, amount, msg_value, got_note = recorder.functions.records(calls_before).call()
    assert (source, sender, bytes(asset), amount, msg_value, got_note) == (
        901,
        USER.address,
        native_a,
        3 * ONE // 2,
        0,
        note,
    )
    assert net.bridged("bank-b", native_a).functions.balanceOf(recorder.address).call() >= 3 * ONE // 2

    # Value arrived exactly, and every ledger adds up before and after.
    assert (
        token_on_a.functions.balanceOf(USER.address).call() == user_tokens_before - 100 * ONE - 7 + 40 * ONE
    )
    after = {asset: _ledger(net, asset, "bank-a") for asset in (native_a, token_a)}
    for asset in (native_a, token_a):
        _adds_up(before[asset], "bank-a")
        _adds_up(after[asset], "bank-a")
    assert after[token_a]["L1 balance of bank-b"] - before[token_a]["L1 balance of bank-b"] == 60 * ONE
    assert after[token_a]["L1 balance of bank-c"] - before[token_a]["L1 balance of bank-c"] == 7
    assert after[native_a]["L1 balance of bank-b"] - before[native_a]["L1 balance of bank-b"] == 3 * ONE // 2
    with net.store("bank-b") as store:
        history = store.history(keys[0])
    assert [t.to_status for t in history] == ["received", "verified", "executing", "executed"], [
        (t.to_status, t.reason) for t in history
    ]


def test_a_deposit_from_l1_arrives_and_a_withdrawal_returns_to_l1(net: Net) -> None:
    hub = net.hub()
    l1 = Chain(net.manifest["l1"]["rpc_url"], USER)
    eth = bytes(hub.functions.nativeAssetId().call())
    chain_a = net.entry("bank-a")["chain_id"]
    locked, held = hub.functions.locked(eth).call(), hub.functions.balances(chain_a, eth).call()
    receipt = l1.send(hub.functions.deposit(chain_a, USER.address, b""), value=2 * ONE)
    (event,) = hub.events.DepositQueued().process_receipt(receipt, errors=DISCARD)
    key = message_key(900, event["args"]["nonce"])
    net.wait("bank-a", [key])
    l1_eth_on_a = net.bridged("bank-a", eth)
    assert l1_eth_on_a.functions.balanceOf(USER.address).call() == 2 * ONE
    assert hub.functions.locked(eth).call() == locked + 2 * ONE
    assert hub.functions.balances(chain_a, eth).call() == held + 2 * ONE

    # Back to L1: the bridged ETH is burned on bank-a, the batch debits bank-a on L1, and the daemon
    # finalizes the withdrawal, which pays the target on L1.
    before = l1.w3.eth.get_balance(RECIPIENT)
    back = net.send("bank-a", "l1", RECIPIENT, b"", (eth, ONE // 2))
    net.wait("bank-a", [back])
    assert l1.w3.eth.get_balance(RECIPIENT) == before + ONE // 2
    assert l1_eth_on_a.functions.balanceOf(USER.address).call() == 2 * ONE - ONE // 2
    assert l1_eth_on_a.functions.totalSupply().call() == hub.functions.balances(chain_a, eth).call() - held
    assert hub.functions.locked(eth).call() == locked + 2 * ONE - ONE // 2


def test_a_backlog_is_proven_in_the_larger_circuit_and_a_lone_message_in_the_smaller(net: Net) -> None:
    recorder = net.contract("bank-b", "CallRecorder")
    count = recorder.functions.count().call()
    daemon = net.services.daemons["bank-a"]
    daemon.stop()  # a backlog builds while bank-a's daemon is down
    backlog = [
        net.send("bank-a", "bank-b", recorder.address, recorder.encode_abi("receiveMessage", [b"%d" % i]))
        for i in range(12)
    ]
    time.sleep(3)  # the devnet's 1 s heartbeat blocks make all 12 final: the watcher reads them at once
    daemon.start()
    net.wait("bank-b", backlog)
    lone = net.send("bank-a", "bank-b", recorder.address, recorder.encode_abi("receiveMessage", [b"lone"]))
    net.wait("bank-b", [lone])
    net.wait("bank-a", [*backlog, lone])
    assert recorder.functions.count().call() == count + 13
    with net.store("bank-a") as store:
        rows = [store.message(key) for key in [*backlog, lone]]
        numbers = sorted(
            {row.batch_number for row in rows if row is not None and row.batch_number is not None}
        )
        batches = [store.batch(n) for n in numbers]
    # the 12 were read together: one batch in capacity 16 (8 cannot hold them); the lone one in 8
    assert [(b.count, b.capacity) for b in batches if b is not None] == [(12, 16), (1, 8)]


def test_a_failed_call_is_replayed_once_after_the_target_is_fixed(net: Net) -> None:
    recorder = net.contract("bank-b", "CallRecorder")
    on_b = net.chain("bank-b")
    on_b.send(recorder.functions.setFailing(True))
    count = recorder.functions.count().call()
    key = net.send("bank-a", "bank-b", recorder.address, recorder.encode_abi("receiveMessage", [b"retry me"]))
    net.wait("bank-b", [key], "failed")
    net.wait("bank-a", [key], "failed")  # the receipt says so at the source too
    row = net.row("bank-b", key)
    assert row is not None and row.error is not None and "TargetFailing" in row.error
    assert recorder.functions.count().call() == count

    on_b.send(recorder.functions.setFailing(False))
    runner = CliRunner()
    result = runner.invoke(cli, ["replay", "-c", str(net.config("bank-b")), key])
    assert result.exit_code == 0, result.output
    again = runner.invoke(cli, ["replay", "-c", str(net.config("bank-b")), key])  # idempotent
    assert again.exit_code == 0, again.output
    net.wait("bank-b", [key])
    net.wait("bank-a", [key])
    assert recorder.functions.count().call() == count + 1
    refused = runner.invoke(cli, ["replay", "-c", str(net.config("bank-b")), key])
    assert refused.exit_code != 0 and "executed" in refused.output


def test_a_message_that_starves_its_execution_fails_and_holds_up_nothing(net: Net) -> None:
    """A target that burns every gas it is given starves its execution (NotEnoughGas): its round either
    lands with it rejected, or reverts at any gas limit, and then the daemon finds it by executing one
    message at a time and fails it without running it. Either way the others are executed."""
    recorder = net.contract("bank-b", "CallRecorder")
    on_b = net.chain("bank-b")
    # PUSH4 <JUMPDEST PUSH1 0 JUMP: a loop that burns every gas it is given>, PUSH1 0, MSTORE, RETURN 4 bytes
    init = bytes.fromhex("635b600056" + "600052600460" + "1cf3")
    burner = on_b.send(on_b.w3.eth.contract(abi=[], bytecode=init).constructor())["contractAddress"]
    assert burner is not None
    count = recorder.functions.count().call()
    before = net.send(
        "bank-a", "bank-b", recorder.address, recorder.encode_abi("receiveMessage", [b"before"])
    )
    poison = net.send("bank-a", "bank-b", burner, b"")
    after = net.send("bank-a", "bank-b", recorder.address, recorder.encode_abi("receiveMessage", [b"after"]))
    net.wait("bank-b", [before, after])
    net.wait("bank-b", [poison], "failed")
    net.wait("bank-a", [poison], "failed")
    row = net.row("bank-b", poison)
    assert row is not None and row.error is not None
    assert "NotEnoughGas" in row.error or "uses up every gas" in row.error, row.error
    assert recorder.functions.count().call() == count + 2


def _publish(net: Net, sender: str, dest: str, body: dict[str, Any]) -> bytes:
    """A "messages" envelope with `body`, sealed to `dest`'s bus key and signed by `sender`'s operator,
    published on `sender`'s topic to `dest` (with the broker's admin login: `sender`'s own would take
    its daemon's session)."""
    entry = net.entry(sender)
    operator = anvil.dev_account(entry["operator_account"])
    key = public_key_of(devnet_bus_key(net.entry(dest)["operator_account"]))
    envelope = Envelope("messages", sender, dest, entry["chain_id"], body).seal(key, operator)

    async def go() -> None:
        async with net.admin_bus() as bus:
            await bus.publish(institution_topic(dest, sender), envelope)
            assert await bus.drain(30)

    asyncio.run(go())
    return envelope


def _refusal(net: Net, name: str, key: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = net.row(name, key)
        if row is not None and row.status == "refused":
            return str(row.error)
        time.sleep(0.25)
    raise AssertionError(f"{key} was not refused by {name}: {net.row(name, key)}")


def test_a_message_delivered_twice_runs_once_and_tampering_is_refused_off_and_on_chain(net: Net) -> None:
    recorder = net.contract("bank-b", "CallRecorder")
    key = net.send("bank-a", "bank-b", recorder.address, recorder.encode_abi("receiveMessage", [b"once"]))
    net.wait("bank-b", [key])
    count = recorder.functions.count().call()
    row = net.row("bank-b", key)
    assert row is not None
    delivery = delivery_from_json(orjson.loads(row.payload or "null"))

    # The same message again, correctly signed by bank-a: the daemon does not run it twice...
    _publish(net, "bank-a", "bank-b", delivery_to_json(delivery))
    time.sleep(3)
    assert net.row("bank-b", key).status == "executed"  # type: ignore[union-attr]
    assert recorder.functions.count().call() == count
    # ...and forced on-chain, the Inbox's nullifier refuses it.
    inbox = net.contract("bank-b", "Inbox")
    item = delivery.messages[0]
    leaf_index = hub_batch(net.hub(), 901, delivery.batch.batch_number).leaf_index
    path = asyncio.run(_proof(net, leaf_index))
    proof = MessageProof(
        delivery.batch.batch_number, item.index, item.siblings, leaf_index, tuple(path.siblings), path.root
    )
    with pytest.raises(Reverted, match="AlreadyExecuted"):
        net.chain("bank-b").send(inbox.functions.execute(item.message.as_tuple(), proof.as_tuple()))

    # Tampered copies (under fresh nonces, so they are not mere duplicates) are refused off-chain.
    def forged(nonce: int, **changes: Any) -> tuple[str, Delivery]:
        m = item.message
        fields = {**m.__dict__, "nonce": nonce, **changes.pop("message", {})}
        message = Message(**fields)
        changed = DeliveredMessage(message, item.index, changes.pop("siblings", item.siblings))
        return message_key(m.source_chain_id, nonce), Delivery(
            changes.pop("batch", delivery.batch), (changed,)
        )

    a, b, c = delivery.batch.proof.a, delivery.batch.proof.b, delivery.batch.proof.c
    cases = {
        "bad path": forged(10**6),  # a leaf no batch holds
        "bad path ": forged(10**6 + 1, siblings=(item.siblings[0] + 1, *item.siblings[1:])),
        "bad proof": forged(10**6 + 2, batch=replace(delivery.batch, proof=Proof(c, b, a))),
    }
    for expected, (forged_key, forged_delivery) in cases.items():
        _publish(net, "bank-a", "bank-b", delivery_to_json(forged_delivery))
        assert _refusal(net, "bank-b", forged_key).startswith(expected.strip()), forged_key

    # Forced on-chain, the Inbox refuses a tampered message (tests/test_inbox.py forces every other
    # tampering: sibling, index, aggregated path, root).
    tampered = Message(**{**item.message.__dict__, "nonce": 10**6 + 3, "amount": item.message.amount + 1})
    with pytest.raises(Reverted, match="BadPath"):
        net.chain("bank-b").send(inbox.functions.execute(tampered.as_tuple(), proof.as_tuple()))
    assert recorder.functions.count().call() == count


async def _proof(net: Net, leaf_index: int) -> Any:
    client = HubClient(net.manifest["hub_service"]["api"])
    try:
        return await client.proof(leaf_index)
    finally:
        await client.close()


# Where each round kills a daemon: the victim, and the state one of the round's messages must have
# reached in the victim's store (then a random few milliseconds more).
KILL_POINTS = [
    ("bank-a", "sent"),  # seen by the watcher, no batch yet
    ("bank-a", "batched"),  # proving (or committing)
    ("bank-a", "settled"),  # on L1, not yet pushed
    ("bank-b", "received"),  # stored, being verified
    ("bank-b", "verified"),  # about to be executed (or executing)
    ("bank-a", "pushed"),  # waiting for the receipt
]


def _kill_when(net: Net, victim: str, keys: list[str], status: str, rng: random.Random) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with net.store(victim) as store:
            seen = {key: getattr(store.message(key), "status", None) for key in keys}
        if status in seen.values():
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    net.services.daemons[victim].kill()
    return seen


def test_daemons_killed_at_random_points_lose_nothing_and_run_nothing_twice(net: Net) -> None:
    recorder = net.contract("bank-b", "CallRecorder")
    inbox = net.contract("bank-b", "Inbox")
    rng = random.Random(5)
    sent: list[str] = []
    count = recorder.functions.count().call()
    for round_, (victim, status) in enumerate(KILL_POINTS):
        keys = [
            net.send(
                "bank-a",
                "bank-b",
                recorder.address,
                recorder.encode_abi("receiveMessage", [f"{round_}.{i}".encode()]),
            )
            for i in range(3)
        ]
        sent += keys
        seen = _kill_when(net, victim, keys, status, rng)
        print(f"round {round_}: SIGKILL to {victim} once a message was {status!r}: {seen}")
        net.services.daemons[victim].start()
    net.wait("bank-b", sent)
    net.wait("bank-a", sent)
    assert recorder.functions.count().call() == count + len(sent)
    for key in sent:
        source, nonce = map(int, key.split(":"))
        executed = inbox.events.MessageExecuted().get_logs(
            from_block=0, argument_filters={"id": message_id(source, nonce)}
        )
        assert len(executed) == 1, key


def test_a_chain_outside_the_peering_is_refused_until_it_is_added(net: Net) -> None:
    runner = CliRunner()
    config_b = str(net.config("bank-b"))
    removed = runner.invoke(cli, ["peers", "remove", "-c", config_b, "bank-c"])
    assert removed.exit_code == 0, removed.output
    time.sleep(2)  # the running daemon picks the change up by itself
    recorder = net.contract("bank-b", "CallRecorder")
    key = net.send("bank-c", "bank-b", recorder.address, recorder.encode_abi("receiveMessage", [b"from c"]))
    net.wait("bank-c", [key], "pushed")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with net.store("bank-b") as store:
            refusals = [r for r in store.refusals() if r.peer == "bank-c"]
        if refusals:
            break
        time.sleep(0.25)
    # Dropped by bank-b's bus before it is even opened: only peers get a queue.
    assert refusals and refusals[0].reason.startswith("bank-c is not a peer of bank-b"), refusals
    assert net.row("bank-b", key) is None  # refused and recorded, never stored as a message

    added = runner.invoke(
        cli, ["peers", "add", "-c", config_b, "bank-c", str(net.entry("bank-c")["chain_id"])]
    )
    assert added.exit_code == 0, added.output
    # bank-b asks its new peer to push again at once: bank-c's own next push is about 30 s away.
    net.wait("bank-b", [key], timeout=20)


def _peer_b_allows_bank_a(net: Net, *options: str) -> None:
    """bank-b's peering of bank-a replaced by one with `options` (`xrelay peers add`'s)."""
    runner, config_b = CliRunner(), str(net.config("bank-b"))
    chain_a = str(net.entry("bank-a")["chain_id"])
    for args in (["remove", "-c", config_b, "bank-a"], ["add", "-c", config_b, "bank-a", chain_a, *options]):
        result = runner.invoke(cli, ["peers", *args])
        assert result.exit_code == 0, result.output
    time.sleep(2)  # the running daemon picks the change up by itself


def test_what_a_peer_may_not_send_is_refused_and_recorded_and_traffic_goes_on(net: Net) -> None:
    recorder = net.contract("bank-b", "CallRecorder")
    kept = load_config(net.config("bank-b")).store.refusal_bytes

    # (a) For a while bank-b lets bank-a call its CallRecorder only; bank-a calls another address.
    _peer_b_allows_bank_a(net, "--target", recorder.address)
    try:
        not_allowed = net.send("bank-a", "bank-b", USER.address)
        deadline = time.monotonic() + WAIT
        while (arrived := net.row("bank-b", not_allowed)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert arrived is not None and arrived.payload is not None, f"{not_allowed} never reached bank-b"
        # (b) meanwhile, a message with an amount but no asset (its fields make no leaf), in the batch
        # (a) came in, and (c) an envelope of 5 MB, both signed by bank-a's operator.
        delivery = delivery_from_json(orjson.loads(arrived.payload))
        item = delivery.messages[0]
        no_asset = replace(item.message, nonce=2 * 10**6, amount=5, asset_id=bytes(32))
        forged = Delivery(delivery.batch, (DeliveredMessage(no_asset, item.index, item.siblings),))
        _publish(net, "bank-a", "bank-b", delivery_to_json(forged))
        # (c) is over bank-b's bound (bus.max_envelope_bytes, 4 MiB) but under the broker's packet
        # limit, which is a little above it: a larger one the broker refuses itself.
        big = _publish(net, "bank-a", "bank-b", {"padding": "x" * 3_167_000})
        assert 4 << 20 < len(big) < (4 << 20) + PACKET_MARGIN
        # Settled, but not allowed: bank-b bounces it (it carries no value, so no message comes back)
        # and tells bank-a why.
        net.wait("bank-a", [not_allowed], "bounced", timeout=WAIT)
    finally:
        _peer_b_allows_bank_a(net)  # any target, any asset, as the devnet made it

    rule = f"target not allowed: bank-a may not call {USER.address}"
    row, sent = net.row("bank-b", not_allowed), net.row("bank-a", not_allowed)
    assert row is not None and (row.status, row.error) == ("bounced", rule), row
    assert sent is not None and (sent.status, sent.error) == ("bounced", rule), sent
    with net.store("bank-b") as store:  # no value, so no bounce message back
        bounces = [m for m in store.messages(direction="out") if m.message.is_bounce]
    assert all(m.message.bounced_id() != row.message.id() for m in bounces), bounces
    single = orjson.dumps(delivery_to_json(forged))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with net.store("bank-b") as store:
            found = {r.raw_size: r for r in store.refusals(limit=50)}
        if len(single) in found and len(big) in found:
            break
        time.sleep(0.25)
    malformed, huge = found.get(len(single)), found.get(len(big))
    assert malformed is not None and (malformed.peer, malformed.kind) == ("bank-a", "message"), found
    assert malformed.reason.startswith("malformed message: a message carries value exactly when")
    assert malformed.raw == single[:kept] and len(malformed.raw) <= kept
    assert huge is not None and huge.reason.startswith("too large: "), huge
    assert huge.raw == big[:kept] and len(huge.raw) == kept < len(big)
    assert net.row("bank-b", message_key(no_asset.source_chain_id, no_asset.nonce)) is None

    # The daemons go on: messages both ways are executed.
    there = net.send("bank-a", "bank-b", recorder.address, recorder.encode_abi("receiveMessage", [b"after"]))
    back = net.send("bank-b", "bank-a", USER.address)
    net.wait("bank-b", [there])
    net.wait("bank-a", [back])
    net.wait("bank-a", [there])  # the receipts came back too
    net.wait("bank-b", [back])


def test_a_batch_that_would_overdraw_its_chain_is_rejected_by_l1(net: Net) -> None:
    token_a = _asset(net, "bank-a", False)
    hub = net.hub()
    held = hub.functions.balances(net.entry("bank-c")["chain_id"], token_a).call()
    assert held > 0  # bank-c holds some of bank-a's tokens (from the first test)
    # bank-c's operator lies: its chain mints bridged tokens out of nothing (here, by impersonating
    # the router on anvil), and its user sends them on.
    bridged = net.bridged("bank-c", token_a)
    router = net.contract("bank-c", "AssetRouter")
    w3 = net.chain("bank-c").w3
    w3.provider.make_request("anvil_impersonateAccount", [router.address])  # type: ignore[arg-type]
    w3.provider.make_request("anvil_setBalance", [router.address, hex(ONE)])  # type: ignore[arg-type]
    tx = bridged.functions.mint(USER.address, 1000 * ONE).transact({"from": router.address})
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    key = net.send("bank-c", "bank-b", USER.address, b"", (token_a, 500 * ONE))
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with net.store("bank-c") as store:
            row = store.message(key)
            batch = store.batch(row.batch_number) if row and row.batch_number is not None else None
        if batch is not None and batch.error and "Overdraft" in batch.error:
            break
        time.sleep(0.25)
    assert batch is not None and batch.error is not None and "Overdraft" in batch.error, batch
    assert batch.status != "settled"
    assert hub.functions.balances(net.entry("bank-c")["chain_id"], token_a).call() == held
    assert net.row("bank-b", key) is None
