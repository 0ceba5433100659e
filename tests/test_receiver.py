"""The receiver's rules (relayer/pipeline/receiver.py), each on real parts: two institutions' Contexts
as the daemon builds them (config file, SQLite store, chains on anvil, the L1 Hub deployed on an
anvil L1 with each chain's operator registered, a bus on the embedded broker, metrics), and a batch
of bank-a's messages with a real Groth16 proof that the L1 has not settled.

bank-b (chain 902) is the receiver under test; bank-a (chain 901) sends. Envelopes speak the bus
protocol v2 (hub/envelope.py): sealed to the recipient's bus key as the L1 Hub registers it (each
chain has the devnet bus key of its operator's number) and signed by the sender chain's operator. An
envelope arrives on bank-b's topic for its sender through the broker and bank-b's receiver handles it
as the daemon's listener does; what bank-b publishes is read back from the broker, opened with
bank-a's bus key as bank-a opens it and handed to bank-a's receiver, so each test checks the
recorded reason on both sides.

A batch the L1 has not settled leaves its messages "received" (only one for another chain is refused
at once): the peering's rules apply to settled messages, and a settled message they do not allow is
"bouncing" (its value goes home), not refused. The `settle` fixture has L1 settle the batch for one
test, with the batch's real proof, and rolls L1 back after it.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import tomli_w
from eth_account.messages import encode_defunct
from eth_hash.auto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.types import RPCEndpoint

from bridge_contracts import anvil
from bridge_contracts.anvil import AnvilNode, dev_account, free_port
from bridge_contracts.chain import Chain
from bridge_contracts.messages import BOUNCE_SENDER, Message, bounce_of, groth16_proof
from bridge_contracts.views import HubBusKey, hub_batch
from hub.broker import EmbeddedBroker
from hub.bus import Bus
from hub.client import HubClient
from hub.delivery import (
    BatchEvidence,
    DeliveredMessage,
    Delivery,
    Receipt,
    delivery_to_json,
    message_key,
    receipts_from_json,
)
from hub.envelope import (
    Envelope,
    EnvelopeRefused,
    Keyring,
    PeerKey,
    devnet_bus_key,
    inbox_filter,
    institution_topic,
    open_envelope,
    public_key_of,
)
from proofs import merkle
from proofs.circuits.batch import Batch, BatchCircuit
from proofs.formats import snarkjs_json
from proofs.groth16.prover import prove
from proofs.message import roll
from relayer.config import load
from relayer.metrics import Metrics
from relayer.pipeline import receiver as receiver_module
from relayer.pipeline.context import REFUSALS_PER_MINUTE, Context
from relayer.pipeline.receiver import Receiver, send_receipts
from relayer.sender import Sender
from relayer.store import InStatus, Outcome, Received, Refusal, Sent, Store
from tests.settlement import CAPACITY, Prepared, Settlement, asset_id, batch_key

pytestmark = pytest.mark.timeout(120)

L1_ID, A_ID, B_ID, C_ID = 900, 901, 902, 903
OPERATOR = {"bank-a": 1, "bank-b": 2, "bank-c": 3}  # anvil dev account of each chain's operator
OPERATOR_A, OPERATOR_B, OPERATOR_C = (dev_account(i) for i in OPERATOR.values())
STRANGER = dev_account(7)  # the operator of no chain
# The bus keys the L1 Hub has for bank-a's and bank-b's chains (Settlement.register): the devnet's
# keys of their operators' numbers.
KEY_A, KEY_B = devnet_bus_key(OPERATOR["bank-a"]), devnet_bus_key(OPERATOR["bank-b"])
PUBLIC_A, PUBLIC_B = public_key_of(KEY_A), public_key_of(KEY_B)
KEYRING_A = Keyring({PUBLIC_A: KEY_A}, {})  # what bank-a opens envelopes with
T_OK = Web3.to_checksum_address("0x00000000000000000000000000000000000000a1")
T_OTHER = Web3.to_checksum_address("0x00000000000000000000000000000000000000b2")
# Two tokens of bank-a's chain, registered on the L1 Hub: a batch moving them out of bank-a's chain
# debits nothing there (they originate there), so L1 settles the batch as it is.
TOKEN_OK = Web3.to_checksum_address("0x00000000000000000000000000000000000000c1")
TOKEN_OTHER = Web3.to_checksum_address("0x00000000000000000000000000000000000000c2")
ASSET_OK, ASSET_OTHER = asset_id(A_ID, TOKEN_OK), asset_id(A_ID, TOKEN_OTHER)
UNUSED = "0x000000000000000000000000000000000000dEaD"  # the chains' contracts: the receiver never calls them
WAIT = 10.0
WATCHED = ("bank-a", "bank-c", "bank-z")  # bank-b's topics to these are watched: what it publishes
SENTINEL = b"end of what was published"
MB5 = 5 * 1024 * 1024


def _message(nonce: int, **fields: Any) -> Message:
    defaults: dict[str, Any] = {
        "source_chain_id": A_ID,
        "dest_chain_id": B_ID,
        "nonce": nonce,
        "sender": dev_account(8).address,
        "target": T_OK,
        "asset_id": bytes(32),
        "amount": 0,
        "data": b"\xca\xfe",
        "asset_data": b"",
    }
    return Message(**(defaults | fields))


# A message bank-b sent bank-a, carrying value in an asset bank-b's peering does not allow bank-a, to
# a sender that is no allowed target either: bank-a bounced it (BATCH[7] brings its value back).
ORIGINAL = Message(
    source_chain_id=B_ID,
    dest_chain_id=A_ID,
    nonce=0,
    sender=dev_account(9).address,
    target=T_OK,
    asset_id=ASSET_OTHER,
    amount=5,
    data=b"",
    asset_data=b"",
)

# bank-a's batch 0; bank-b's peering allows bank-a target T_OK and value in ASSET_OK (by default).
BATCH = [
    _message(0),  # passes every rule
    _message(1, target=T_OTHER),  # a target bank-b's peering does not allow
    _message(2, asset_id=ASSET_OK, amount=5),  # value in an allowed asset
    _message(3, asset_id=ASSET_OTHER, amount=5),  # value in an asset bank-a may not send
    _message(4, dest_chain_id=C_ID),  # for another chain
    _message(5),
    _message(6),
    bounce_of(ORIGINAL, 7),  # a bounce: exempt from the rules, but must bring back a message bank-b sent
]
assert BATCH[7].sender == BOUNCE_SENDER and BATCH[7].target == ORIGINAL.sender


@dataclass(frozen=True)
class World:
    """What every test shares: the L1 (with the Hub), the chains, the verifying key, bank-a's batch."""

    l1: AnvilNode
    l2: dict[str, AnvilNode]
    hub: str
    keys_dir: Path
    batch: BatchEvidence
    items: tuple[DeliveredMessage, ...]  # BATCH[i] at position i with its batch path
    proof_json: dict[str, Any]
    commit: Prepared  # Hub.commitBatch's arguments for `batch`, signed by bank-a's operator


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, node_a: AnvilNode, node_b: AnvilNode) -> Iterator[World]:
    base = tmp_path_factory.mktemp("receiver")
    l1_node = anvil.start(L1_ID, base / "l1.log")
    try:
        l1 = Chain(l1_node.rpc_url, dev_account(0))
        settlement = Settlement.deploy(l1)  # the Hub, with a verifier of the capacity-8 proofs
        for chain_id, operator in ((A_ID, OPERATOR_A), (B_ID, OPERATOR_B), (C_ID, OPERATOR_C)):
            settlement.register(chain_id, operator)
        for token in (TOKEN_OK, TOKEN_OTHER):
            l1.send(settlement.hub.functions.registerAsset(A_ID, token))
        key = batch_key()
        keys_dir = base / "keys"
        keys_dir.mkdir()
        vk = snarkjs_json.verifying_key_to_json(key.vk)
        (keys_dir / f"batch-{CAPACITY}.vk.json").write_bytes(orjson.dumps(vk))
        circuit = BatchCircuit(CAPACITY)
        batch = Batch(A_ID, 0, 0, tuple(m.preimage() for m in BATCH))
        public = circuit.public_inputs(batch)
        proof = prove(key, circuit.witness(batch, public))
        tree = merkle.PoseidonTree([m.leaf() for m in BATCH], CAPACITY)
        assert public.batch_root == tree.root
        evidence = BatchEvidence(A_ID, 0, CAPACITY, tuple(public.values()), proof)
        items = tuple(DeliveredMessage(m, i, tuple(tree.proof(i))) for i, m in enumerate(BATCH))
        yield World(
            l1_node,
            {"bank-a": node_a, "bank-b": node_b},
            settlement.hub.address,
            keys_dir,
            evidence,
            items,
            snarkjs_json.proof_to_json(proof),
            settlement.sign(public, groth16_proof(proof), OPERATOR_A),
        )
    finally:
        l1_node.stop()


Settle = Callable[[], Awaitable[None]]


@contextmanager
def _l1_for_this_test(world: World) -> Iterator[tuple[Chain, Contract]]:
    """The L1 (signed by its deployer) and its Hub, back in their state before the test when the test
    ends (evm_snapshot, evm_revert), so the other tests see L1 unchanged."""
    l1 = Chain(world.l1.rpc_url, dev_account(0))
    hub = l1.contract("Hub", world.hub)
    snapshot = l1.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
    try:
        yield l1, hub
    finally:
        assert l1.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])["result"] is True


@pytest.fixture
def settle(world: World) -> Iterator[Settle]:
    """What has L1 settle the world's batch: bank-a's operator commits it to the Hub with its real
    proof. For this test only: L1 goes back to its state before the test when the test ends, so the
    other tests see the batch unsettled."""
    with _l1_for_this_test(world) as (l1, hub):

        async def commit() -> None:
            await asyncio.to_thread(l1.send, hub.functions.commitBatch(*world.commit.as_args()))
            assert hub_batch(hub, A_ID, 0).batch_root == world.batch.batch_root

        yield commit
    assert not hub_batch(hub, A_ID, 0).committed


# --- two institutions on one broker -----------------------------------------------------------


@dataclass
class Side:
    ctx: Context
    receiver: Receiver

    @property
    def store(self) -> Store:
        return self.ctx.store


def _peer(name: str, chain_id: int, **rules: Any) -> dict[str, Any]:
    return {"name": name, "chain_id": chain_id, "allowed_assets": ["*"], "allowed_targets": ["*"]} | rules


def _context(
    world: World,
    folder: Path,
    broker: EmbeddedBroker,
    name: str,
    chain_id: int,
    *,
    bus: dict[str, Any] | None = None,
    **config: Any,
) -> Context:
    """An institution's Context as `xrelay run` builds it from its config file: its bus key is the one
    the L1 Hub has for its chain, unless `bus` (over the [bus] section) says otherwise."""
    data = {
        "institution": name,
        "chain": {
            "chain_id": chain_id,
            "rpc_urls": [world.l2[name].rpc_url],
            "confirmations": 0,
            "contracts": {"asset_router": UNUSED, "outbox": UNUSED, "inbox": UNUSED},
            "signer": {"devnet_account": OPERATOR[name]},
        },
        "l1": {
            "chain_id": L1_ID,
            "rpc_urls": [world.l1.rpc_url],
            "confirmations": 0,
            "hub": world.hub,
            "hub_api": "http://127.0.0.1:9",
        },
        "batch": {"capacity": CAPACITY, "keys_dir": str(world.keys_dir)},
        "store": {"path": f"{name}.sqlite"},
        "bus": {"url": broker.url, "key": {"devnet_key": OPERATOR[name]}} | (bus or {}),
        "admin": {"listen": f"127.0.0.1:{free_port()}", "token_env": "XRELAY_TEST_ADMIN_TOKEN"},
    } | config
    path = folder / f"{name}.toml"
    path.write_text(tomli_w.dumps(data))
    loaded = load(path)
    signer = loaded.chain.signer.resolve()
    l2, l1 = Chain(loaded.chain.rpc_urls, signer), Chain(loaded.l1.rpc_urls, signer)
    assert loaded.l1.hub is not None and loaded.l1.hub_api is not None
    assert loaded.chain.contracts.inbox is not None and loaded.bus.key is not None
    previous = loaded.bus.previous_key
    ctx = Context(
        config_path=path,
        config=loaded,
        store=Store(loaded.store.path, refusals=loaded.store.refusal_policy()),
        l2=l2,
        l1=l1,
        outbox=l2.contract("Outbox", loaded.chain.contracts.outbox),
        inbox=l2.contract("Inbox", loaded.chain.contracts.inbox),
        hub=l1.contract("Hub", loaded.l1.hub),
        l2_sender=Sender(l2),
        l1_sender=Sender(l1),
        # bank-b's inbox; bank-a reads nothing (what bank-b publishes is read by the watcher). No size
        # limit on the bus: the receiver's own (bus.max_envelope_bytes) is under test.
        bus=Bus(
            broker.url,
            name,
            topics=(inbox_filter(name),) if name == "bank-b" else (),
            max_payload_bytes=None,
        ),
        hub_client=HubClient(loaded.l1.hub_api),
        metrics=Metrics(),
        # As the daemon reads them: bus.key, then bus.previous_key.
        bus_secrets=(loaded.bus.key.resolve(), *([previous.resolve("bus.previous_key")] if previous else [])),
    )
    ctx.reload_peers()
    return ctx


def _sent_by_bank_a(world: World, store: Store) -> None:
    """bank-a's record of its batch 0: sent, proven, settled (as far as bank-a's store says) and pushed
    to each destination that is bank-a's peer; so a receipt from bank-b can move them on."""
    h, sent = 0, []
    for m in BATCH:
        h = roll(h, m.leaf())
        sent.append(Sent(m, "bank-b" if m.dest_chain_id == B_ID else f"chain-{m.dest_chain_id}", 1, h))
    store.record_sent(sent, cursor=("outbox", 1))
    keys = [message_key(A_ID, m.nonce) for m in BATCH]
    store.close_batch(0, capacity=CAPACITY, message_ids=keys)
    store.record_proof(
        0,
        batch_root=world.batch.batch_root,
        public_inputs=list(world.batch.public_inputs),
        proof=world.proof_json,
        seconds=1.0,
    )
    store.start_commit(0)
    store.settle_batch(0, leaf_index=0, tx="0x" + "cc" * 32, gas=300_000, reason="BatchSettled")
    to_b = [message_key(A_ID, m.nonce) for m in BATCH if m.dest_chain_id == B_ID]
    store.record_push(to_b, "bank-b", "published to bank-b")


@dataclass
class Net:
    world: World
    a: Side  # the sender
    b: Side  # the receiver under test
    watcher: Bus  # subscribed to the WATCHED topics: what bank-b publishes

    def envelope(
        self,
        indices: list[int],
        extra: tuple[Message, ...] = (),
        *,
        sender: str = "bank-a",
        chain_id: int = A_ID,
        signer: Any = OPERATOR_A,
        padding: int = 0,
        key: bytes = PUBLIC_B,
        sent_at: float | None = None,
    ) -> bytes:
        """A "messages" envelope to bank-b with BATCH[i] for each i (with its path) and `extra`
        messages, sealed to `key` (bank-b's on the L1 Hub) and signed."""
        items = [self.world.items[i] for i in indices] + [self._item(m) for m in extra]
        body = delivery_to_json(Delivery(self.world.batch, tuple(items)))
        if padding:
            body["padding"] = "x" * padding
        envelope = Envelope("messages", sender, "bank-b", chain_id, body)
        if sent_at is not None:
            envelope = replace(envelope, sent_at=sent_at)
        return envelope.seal(key, signer)

    def _item(self, m: Message) -> DeliveredMessage:
        return DeliveredMessage(m, 7, self.world.items[0].siblings)

    def single(self, m: Message) -> bytes:
        """What the receiver keeps of one message it refuses: its delivery alone, as JSON."""
        item = next((i for i in self.world.items if i.message == m), None) or self._item(m)
        return orjson.dumps(delivery_to_json(Delivery(self.world.batch, (item,))))

    async def deliver(self, raw: bytes, topic: str | None = None) -> None:
        """`raw` published (by bank-a's bus) on `topic`, by default bank-b's topic for the sender the
        envelope names (bank-a's if it names none); bank-b's receiver handles what arrives, as the
        daemon's listener does."""
        topic = topic or institution_topic("bank-b", _named_sender(raw) or "bank-a")
        await self.a.ctx.bus.publish(topic, raw)
        message = await asyncio.wait_for(anext(self.b.ctx.bus.messages()), WAIT)
        assert (message.topic, message.payload) == (topic, raw)
        await self.b.receiver.handle(message.payload, message.topic)

    async def published(self) -> dict[str, list[bytes]]:
        """What bank-b published on each WATCHED topic since the last call (up to a sentinel bank-b
        publishes after it: the broker keeps one publisher's order on a topic)."""
        for name in WATCHED:
            await self.b.ctx.bus.publish(institution_topic(name, "bank-b"), SENTINEL)
        got: dict[str, list[bytes]] = {name: [] for name in WATCHED}
        waiting = set(WATCHED)
        while waiting:
            message = await asyncio.wait_for(anext(self.watcher.messages()), WAIT)
            name = message.topic.split("/")[-2]  # xrelay/v2/institutions/<recipient>/bank-b
            if message.payload == SENTINEL:
                waiting.discard(name)
            else:
                got[name].append(message.payload)
        return got

    async def receipts(self) -> list[Receipt]:
        """The receipts bank-b sent bank-a since the last call (it must have sent nobody else
        anything), opened as bank-a opens them (with its bus key; sealed, they show no message id);
        bank-a's receiver then handles each envelope."""
        got = await self.published()
        assert not any(got[name] for name in WATCHED if name != "bank-a"), got
        receipts = []
        for raw in got["bank-a"]:
            assert f"{A_ID}:".encode() not in raw
            envelope = open_b_to_a(raw)
            assert (envelope.kind, envelope.sender, envelope.recipient) == ("receipts", "bank-b", "bank-a")
            receipts += receipts_from_json(envelope.body)
            await self.a.receiver.handle(raw, institution_topic("bank-a", "bank-b"))
        return receipts


def open_b_to_a(raw: bytes, keyring: Keyring = KEYRING_A) -> Envelope:
    """An envelope bank-b sent bank-a, opened as bank-a opens it (with `keyring`: bank-a's bus key)."""
    return open_envelope(
        raw, me="bank-a", peers={"bank-b": PeerKey(B_ID, OPERATOR_B.address)}, keyring=keyring
    )


def _named_sender(raw: bytes) -> str | None:
    """The sender an envelope names, if it is JSON that names one."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    sender = data.get("sender") if isinstance(data, dict) else None
    return sender if isinstance(sender, str) else None


def _resigned(raw: bytes, account: Any = OPERATOR_A, **changes: Any) -> bytes:
    """The envelope in `raw` with `changes` to its fields, signed anew by `account` (or left without
    a signature if `account` is None), as its sender's operator could."""
    fields = orjson.loads(raw) | changes
    unsigned = {name: value for name, value in fields.items() if name != "signature"}
    canonical = orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS)
    if account is None:
        return canonical
    signed = account.sign_message(encode_defunct(primitive=keccak(canonical)))
    signature = "0x" + bytes(signed.signature).hex()
    return orjson.dumps({**unsigned, "signature": signature}, option=orjson.OPT_SORT_KEYS)


def run(
    world: World,
    tmp_path: Path,
    body: Callable[[Net], Coroutine[Any, Any, None]],
    *,
    bank_a: dict[str, Any] | None = None,
    peers: tuple[dict[str, Any], ...] = (),
    refusal_bytes: int = 4096,
    bus_b: dict[str, Any] | None = None,
) -> None:
    """Run `body` on a fresh pair: bank-b's peering of bank-a is `bank_a` over the default rules
    (targets [T_OK], assets [ASSET_OK]), with `peers` besides; bank-b keeps `refusal_bytes` of a
    refused input, and its [bus] section has `bus_b` over the defaults."""
    rules = {"allowed_targets": [T_OK], "allowed_assets": ["0x" + ASSET_OK.hex()]} | (bank_a or {})

    async def main() -> None:
        async with EmbeddedBroker("127.0.0.1", free_port()) as broker, AsyncExitStack() as stack:
            a = _context(world, tmp_path, broker, "bank-a", A_ID, peers=[_peer("bank-b", B_ID)])
            b = _context(
                world,
                tmp_path,
                broker,
                "bank-b",
                B_ID,
                peers=[_peer("bank-a", A_ID, **rules), *peers],
                store={"path": "bank-b.sqlite", "refusal_bytes": refusal_bytes},
                bus=bus_b,
            )
            for ctx in (a, b):
                stack.callback(ctx.store.close)
                await stack.enter_async_context(ctx.bus)
            watcher = await stack.enter_async_context(
                Bus(broker.url, "test-watcher", topics=[institution_topic(n, "bank-b") for n in WATCHED])
            )
            for bus in (b.bus, watcher):
                await bus.wait_connected(WAIT)
            _sent_by_bank_a(world, a.store)
            net = Net(world, Side(a, Receiver(a)), Side(b, Receiver(b)), watcher)
            await asyncio.wait_for(body(net), 60)

    asyncio.run(main())


def _status(store: Store, key: str) -> str | None:
    row = store.message(key)
    return None if row is None else str(row.status)


def _key(index: int) -> str:
    return message_key(A_ID, BATCH[index].nonce)


async def _waiting(net: Net, indices: list[int]) -> None:
    """bank-b left BATCH[i] "received" for each i, with no error (L1 has not settled their batch: no
    rule was applied yet), refused nothing and sent bank-a no receipt; there they are still "pushed"."""
    for i in indices:
        row = net.b.store.message(_key(i))
        assert row is not None and (row.status, row.error) == ("received", None), row
    assert net.b.store.refusals() == []
    assert await net.receipts() == []
    keys = [_key(i) for i in indices]
    assert {key: _status(net.a.store, key) for key in keys} == dict.fromkeys(keys, "pushed")


async def _settled(net: Net, bouncing: dict[int, str], verified: list[int]) -> None:
    """With the batch settled on L1, bank-b has BATCH[i] "bouncing" with the rule bouncing[i] as its
    error (the executor bounces it: its value goes home) and the `verified` ones "verified"; it refused
    none of them and sent bank-a no receipt for them (a "bounced" one comes from the executor), so
    there they are all still "pushed"."""
    for i, rule in bouncing.items():
        row = net.b.store.message(_key(i))
        assert row is not None and (row.status, row.error) == ("bouncing", rule), row
        assert net.b.store.history(_key(i))[-1].reason == f"to be bounced: {rule}"
    assert {_key(i): _status(net.b.store, _key(i)) for i in verified} == dict.fromkeys(
        map(_key, verified), "verified"
    )
    assert net.b.store.refusals() == []  # a verdict is recorded on the message, not as a refusal
    assert await net.receipts() == []
    keys = [_key(i) for i in [*bouncing, *verified]]
    assert {key: _status(net.a.store, key) for key in keys} == dict.fromkeys(keys, "pushed")


def _only_refusal(store: Store) -> Refusal:
    (refusal,) = store.refusals()
    return refusal


# --- the peering's rules ------------------------------------------------------------------------


async def _delivered_then_settled(net: Net, settle: Settle, indexes: list[int]) -> None:
    """BATCH[i] for each index delivered to bank-b and left waiting; then L1 settles the batch and
    bank-b's receiver checks them again."""
    await net.deliver(net.envelope(indexes))
    await _waiting(net, indexes)
    await settle()
    await net.b.receiver.recheck()


TARGET_NOT_ALLOWED = f"target not allowed: bank-a may not call {T_OTHER}"


@pytest.mark.parametrize(
    ("targets", "bouncing", "verified"),
    [
        ([T_OK], {1: TARGET_NOT_ALLOWED}, [0]),
        ([T_OK.lower(), T_OTHER], {}, [0, 1]),
        (["*"], {}, [0, 1]),
    ],
)
def test_only_the_targets_the_peering_allows_are_called(
    world: World,
    settle: Settle,
    tmp_path: Path,
    *,
    targets: list[str],
    bouncing: dict[int, str],
    verified: list[int],
) -> None:
    async def body(net: Net) -> None:
        await _delivered_then_settled(net, settle, [0, 1])
        await _settled(net, bouncing, verified)

    run(world, tmp_path, body, bank_a={"allowed_targets": targets})


def _asset_not_allowed(asset: bytes) -> str:
    return f"asset not allowed: bank-a may not send 0x{asset.hex()}"


@pytest.mark.parametrize(
    ("assets", "bouncing", "verified"),
    [
        (["0x" + ASSET_OK.hex()], {3: _asset_not_allowed(ASSET_OTHER)}, [0, 2]),
        (["0x" + ASSET_OK.hex().upper()], {3: _asset_not_allowed(ASSET_OTHER)}, [0, 2]),
        ([], {2: _asset_not_allowed(ASSET_OK), 3: _asset_not_allowed(ASSET_OTHER)}, [0]),  # no value is fine
        (["*"], {}, [0, 2, 3]),
    ],
)
def test_value_only_in_the_assets_the_peering_allows_and_no_value_always(
    world: World,
    settle: Settle,
    tmp_path: Path,
    *,
    assets: list[str],
    bouncing: dict[int, str],
    verified: list[int],
) -> None:
    async def body(net: Net) -> None:
        await _delivered_then_settled(net, settle, [0, 2, 3])
        await _settled(net, bouncing, verified)

    run(world, tmp_path, body, bank_a={"allowed_assets": assets})


WRONG_DESTINATION = f"wrong destination: chain {C_ID}, this is chain {B_ID}"


def test_a_message_for_another_chain_is_refused(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        await net.deliver(net.envelope([4, 0]))
        row = net.b.store.message(_key(4))
        assert row is not None and (row.status, row.error) == ("refused", WRONG_DESTINATION)
        assert _status(net.b.store, _key(0)) == "received"
        assert await net.receipts() == [Receipt(_key(4), "refused", None, WRONG_DESTINATION)]
        # bank-a sent that message to chain 903, not to bank-b: bank-b's receipt for it changes nothing.
        assert _status(net.a.store, _key(4)) == "settled"
        refusal = _only_refusal(net.a.store)
        assert (refusal.peer, refusal.kind, refusal.reason) == (
            "bank-b",
            "receipt",
            f"receipt for {_key(4)}, which is not a message this chain sent to bank-b",
        )

    run(world, tmp_path, body)


def test_in_a_settled_batch_the_rules_bounce_and_another_chains_message_is_refused(
    world: World, settle: Settle, tmp_path: Path
) -> None:
    async def body(net: Net) -> None:
        await settle()
        await net.deliver(net.envelope([0, 1, 2, 3, 4]))  # judged on arrival: L1 holds the batch
        row = net.b.store.message(_key(4))
        assert row is not None and (row.status, row.error) == ("refused", WRONG_DESTINATION)
        assert await net.receipts() == [Receipt(_key(4), "refused", None, WRONG_DESTINATION)]
        assert [r.reason for r in net.a.store.refusals()] == [
            f"receipt for {_key(4)}, which is not a message this chain sent to bank-b"
        ]
        await _settled(net, {1: TARGET_NOT_ALLOWED, 3: _asset_not_allowed(ASSET_OTHER)}, [0, 2])

        # Copies: a bouncing message is not final, so it gets no receipt; a refused one its receipt again.
        await net.deliver(net.envelope([1, 3, 4]))
        assert await net.receipts() == [Receipt(_key(4), "refused", None, WRONG_DESTINATION)]
        assert [_status(net.b.store, _key(i)) for i in (1, 3, 4)] == ["bouncing", "bouncing", "refused"]

    run(world, tmp_path, body)


def test_over_the_rate_limit_a_message_is_not_taken_and_no_receipt_is_sent(
    world: World, settle: Settle, tmp_path: Path
) -> None:
    async def body(net: Net) -> None:
        await net.deliver(net.envelope([1, 0, 2, 5, 6]))  # the limit is 3 a minute
        reason = "rate limit: bank-a sent more than 3 messages in a minute"
        for i in (5, 6):
            assert net.b.store.message(_key(i)) is None  # not stored: bank-a pushes it again later
        refusals = net.b.store.refusals()
        assert [(r.peer, r.chain_id, r.kind, r.reason) for r in refusals] == [
            ("bank-a", A_ID, "message", reason)
        ] * 2
        for refusal, i in zip(refusals, (6, 5), strict=True):  # newest first
            single = net.single(BATCH[i])
            assert (refusal.raw, refusal.raw_size) == (single[:300], len(single))
        # The three taken are stored, waiting for L1 (one is for a target not allowed): no receipt.
        assert [_status(net.b.store, _key(i)) for i in (1, 0, 2)] == ["received"] * 3
        assert await net.receipts() == []
        assert _status(net.a.store, _key(5)) == "pushed"

        # A copy of a message already taken is no new message; a new one is still over the limit.
        await net.deliver(net.envelope([0]))
        assert len(net.b.store.refusals()) == 2
        await net.deliver(net.envelope([5]))
        assert [r.reason for r in net.b.store.refusals()] == [reason] * 3
        assert net.b.store.message(_key(5)) is None
        assert await net.receipts() == []

        # Once L1 settles the batch, the three taken are judged; the two over the limit stay unknown.
        await settle()
        await net.b.receiver.recheck()
        assert [_status(net.b.store, _key(i)) for i in (1, 0, 2)] == ["bouncing", "verified", "verified"]
        assert [net.b.store.message(_key(i)) for i in (5, 6)] == [None, None]
        assert await net.receipts() == []

    run(world, tmp_path, body, bank_a={"rate_limit_per_minute": 3}, refusal_bytes=300)


# --- bounces --------------------------------------------------------------------------------------


BAD_BOUNCE = "bad bounce: bank-a bounces a message this chain never sent it"


@pytest.mark.parametrize(
    "sent_by_b",
    [None, replace(ORIGINAL, amount=4)],  # nothing; a message of that id, but with less value
    ids=["nothing-sent", "less-value-sent"],
)
def test_a_bounce_that_brings_back_no_message_this_chain_sent_is_refused_once_settled(
    world: World, settle: Settle, tmp_path: Path, sent_by_b: Message | None
) -> None:
    async def body(net: Net) -> None:
        if sent_by_b is not None:
            net.b.store.record_sent(
                [Sent(sent_by_b, "bank-a", 1, roll(0, sent_by_b.leaf()))], cursor=("outbox", 1)
            )
        await net.deliver(net.envelope([7]))
        await _waiting(net, [7])  # not judged before L1 settles its batch
        await settle()
        await net.b.receiver.recheck()
        row = net.b.store.message(_key(7))
        assert row is not None and (row.status, row.error) == ("refused", BAD_BOUNCE), row
        assert await net.receipts() == [Receipt(_key(7), "refused", None, BAD_BOUNCE)]
        sent = net.a.store.message(_key(7))
        assert sent is not None and (sent.status, sent.error) == ("refused", BAD_BOUNCE)
        if sent_by_b is not None:
            assert _status(net.b.store, message_key(B_ID, 0)) == "sent"  # left alone

    # Every target and asset allowed: the refusal is the bounce's own check, not a rule.
    run(world, tmp_path, body, bank_a={"allowed_targets": ["*"], "allowed_assets": ["*"]})


def test_a_bounce_of_a_message_this_chain_sent_that_peer_is_exempt_from_the_rules(
    world: World, settle: Settle, tmp_path: Path
) -> None:
    async def body(net: Net) -> None:
        store = net.b.store
        store.record_sent([Sent(ORIGINAL, "bank-a", 1, roll(0, ORIGINAL.leaf()))], cursor=("outbox", 1))
        assert store.original_of(BATCH[7]) is not None
        key = message_key(ORIGINAL.source_chain_id, ORIGINAL.nonce)
        store.close_batch(0, capacity=CAPACITY, message_ids=[key])  # a bounce comes once it settled
        store.record_proof(0, batch_root=1, public_inputs=[1], proof={"protocol": "groth16"}, seconds=1.0)
        store.start_commit(0)
        store.settle_batch(0, leaf_index=0, tx=None, gas=None, reason="settled")
        await _delivered_then_settled(net, settle, [7, 3])
        # The bounce pays ORIGINAL's sender (no allowed target) in ASSET_OTHER (no allowed asset), as
        # 901:3 pays in ASSET_OTHER: that one bounces, the bounce is executed.
        await _settled(net, {3: _asset_not_allowed(ASSET_OTHER)}, [7])

    run(world, tmp_path, body)


def test_a_message_from_another_source_chain_is_not_taken(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        claims_c = _message(0, source_chain_id=C_ID)
        await net.deliver(net.envelope([1], (claims_c,)))
        refusal = _only_refusal(net.b.store)
        assert (refusal.peer, refusal.chain_id, refusal.kind, refusal.reason) == (
            "bank-a",
            C_ID,
            "message",
            f"wrong source chain: {C_ID}:0 claims chain {C_ID}; bank-a is {A_ID}",
        )
        assert (refusal.raw, refusal.raw_size) == (net.single(claims_c), len(net.single(claims_c)))
        assert net.b.store.message(f"{C_ID}:0") is None
        # The rest of the delivery is taken, waiting for L1 (a target not allowed: judged once settled).
        assert _status(net.b.store, _key(1)) == "received"
        assert await net.receipts() == []

    run(world, tmp_path, body)


def test_a_message_claiming_another_peers_id_learns_nothing_of_that_message(
    world: World, tmp_path: Path
) -> None:
    async def body(net: Net) -> None:
        from_c = _message(0, source_chain_id=C_ID)
        key = message_key(C_ID, 0)
        net.b.store.receive("bank-c", [Received(from_c, "{}")], "from bank-c")
        net.b.store.record_verdicts(verified=[key], refused={})
        net.b.store.start_execution([key])
        net.b.store.record_outcomes(
            [Outcome(key, InStatus.EXECUTED, "MessageExecuted")], tx="0x" + "ee" * 32, gas_each=None
        )
        await net.deliver(net.envelope([], (replace(from_c, target=T_OTHER),)))  # bank-a claims 903:0
        assert [r.reason for r in net.b.store.refusals()] == [
            f"wrong source chain: {key} claims chain {C_ID}; bank-a is {A_ID}"
        ]
        assert await net.receipts() == []
        assert _status(net.b.store, key) == "executed"

    run(world, tmp_path, body, peers=(_peer("bank-c", C_ID),))


def test_a_message_whose_fields_make_no_leaf_is_refused_with_a_receipt(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        no_asset = _message(8, amount=5)  # an amount, no asset
        no_amount = _message(9, asset_id=ASSET_OK)  # an asset, no amount
        await net.deliver(net.envelope([0], (no_asset, no_amount)))
        reasons = {
            no_asset: "malformed message: a message carries value exactly when it names an asset: "
            "asset_id=0x0, amount=5",
            no_amount: "malformed message: a message carries value exactly when it names an asset: "
            f"asset_id=0x{ASSET_OK.hex()}, amount=0",
        }
        refusals = net.b.store.refusals()
        assert [(r.peer, r.chain_id, r.kind, r.reason) for r in refusals] == [
            ("bank-a", A_ID, "message", reasons[m]) for m in (no_amount, no_asset)
        ]
        for refusal, m in zip(refusals, (no_amount, no_asset), strict=True):
            single = net.single(m)
            assert len(single) > 512 and (refusal.raw, refusal.raw_size) == (single[:512], len(single))
            assert net.b.store.message(message_key(A_ID, m.nonce)) is None
        assert _status(net.b.store, _key(0)) == "received"  # the rest of the delivery goes on
        assert await net.receipts() == [
            Receipt(message_key(A_ID, m.nonce), "refused", None, reasons[m]) for m in (no_asset, no_amount)
        ]
        # bank-a's Outbox never sent such messages: its receiver records bank-b's receipts for them.
        assert [r.reason for r in net.a.store.refusals()] == [
            f"receipt for {A_ID}:{n}, which is not a message this chain sent to bank-b" for n in (9, 8)
        ]

    run(world, tmp_path, body, refusal_bytes=512)


# --- who may send -----------------------------------------------------------------------------


def test_an_envelope_from_outside_the_peering_is_refused(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        cases = [
            # bank-c is registered on the L1 Hub and signs with its operator, but is not bank-b's peer.
            ("bank-c", C_ID, OPERATOR_C, "unknown sender 'bank-c': not a peer of this institution"),
            ("bank-z", 904, STRANGER, "unknown sender 'bank-z': not a peer of this institution"),
        ]
        for sender, chain_id, signer, reason in cases:
            raw = net.envelope([1], sender=sender, chain_id=chain_id, signer=signer)
            await net.deliver(raw)
            refusal = net.b.store.refusals()[0]
            assert (refusal.peer, refusal.chain_id, refusal.kind, refusal.reason) == (
                sender,
                chain_id,
                "envelope",
                reason,
            )
            assert (refusal.raw, refusal.raw_size) == (raw[:4096], len(raw))
        assert len(net.b.store.refusals()) == 2
        assert net.b.store.message(_key(1)) is None
        assert await net.receipts() == []  # nothing was published to anyone

    run(world, tmp_path, body)


def test_an_envelope_not_signed_by_the_peers_operator_on_l1_is_refused(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        unsigned = _resigned(net.envelope([1]), None)  # the signature dropped
        cases = [
            (net.envelope([1], signer=STRANGER), f"signed by {STRANGER.address}, not by bank-a's operator "),
            # bank-a's operator is a real operator, but the L1 Hub has another for bank-c's chain.
            (
                net.envelope([1], sender="bank-c", chain_id=C_ID),
                f"signed by {OPERATOR_A.address}, not by bank-c's operator {OPERATOR_C.address}",
            ),
            (net.envelope([1], chain_id=C_ID), f"chain id {C_ID} is not bank-a's: its chain is {A_ID}"),
            (unsigned, "missing fields: signature"),
        ]
        for raw, reason in cases:
            await net.deliver(raw)
            refusal = net.b.store.refusals()[0]
            assert refusal.kind == "envelope" and refusal.reason.startswith(reason), refusal.reason
        assert "bank-a's operator " + OPERATOR_A.address in net.b.store.refusals()[-1].reason
        assert net.b.store.message(_key(1)) is None
        assert await net.receipts() == []

        # The same body signed by the operator the L1 Hub has for bank-a's chain is taken.
        await net.deliver(net.envelope([1]))
        assert len(net.b.store.refusals()) == len(cases)
        assert _status(net.b.store, _key(1)) == "received"  # ...to be judged once L1 settles its batch
        assert await net.receipts() == []

    run(world, tmp_path, body, peers=(_peer("bank-c", C_ID),))


def test_a_5_mb_envelope_is_refused_and_only_refusal_bytes_of_it_kept(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        junk = b"\xff" * MB5
        signed = Envelope("messages", "bank-a", "bank-b", A_ID, {"padding": "x" * MB5}).seal(
            PUBLIC_B, OPERATOR_A
        )
        assert len(signed) > MB5
        for raw, kind, reason in [
            (junk, "envelope", "envelope too large: "),
            (signed, "envelope", "envelope too large: "),
            (junk[:2000], "envelope", "the envelope is not JSON: "),
        ]:
            await net.deliver(raw)
            refusal = net.b.store.refusals()[0]
            assert (refusal.kind, refusal.reason[: len(reason)]) == (kind, reason), refusal.reason
            assert (refusal.raw, refusal.raw_size) == (raw[:1000], len(raw))
        assert len(net.b.store.refusals()) == 3
        assert await net.receipts() == []

    run(world, tmp_path, body, refusal_bytes=1000)


def test_a_signed_5_mb_delivery_is_refused_for_its_size(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        raw = net.envelope([0], padding=MB5)
        await net.deliver(raw)
        refusal = _only_refusal(net.b.store)
        assert (refusal.peer, refusal.kind) == (None, "envelope")  # refused unread
        assert refusal.reason.startswith(f"envelope too large: {len(raw)} bytes, the limit is {4 << 20}")
        assert (refusal.raw, refusal.raw_size) == (raw[:1000], len(raw))
        assert net.b.store.message(_key(0)) is None

    run(world, tmp_path, body, refusal_bytes=1000)


# --- receipts -----------------------------------------------------------------------------------


def test_each_receipt_status_ends_in_the_senders_store(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        tx = "0x" + "ab" * 32
        sent = [
            Receipt(_key(0), "executed", tx, None),
            Receipt(_key(1), "failed", tx, "the target reverted: TargetFailing()"),
            Receipt(_key(2), "refused", None, "bad proof: the batch proof does not verify"),
            Receipt(_key(3), "bounced", tx, _asset_not_allowed(ASSET_OTHER)),
            Receipt(f"{A_ID}:99", "executed", tx, None),  # bank-a never sent 901:99
            Receipt(_key(4), "executed", tx, None),  # bank-a sent 901:4 to chain 903, not to bank-b
        ]
        await send_receipts(net.b.ctx, "bank-a", sent)  # as bank-b's receiver and executor send them
        assert await net.receipts() == sent
        for receipt in sent[:4]:
            row = net.a.store.message(receipt.id)
            assert row is not None and (row.status, row.exec_tx, row.error) == (
                receipt.status,
                receipt.tx,
                receipt.reason,
            ), row
        assert [_status(net.a.store, _key(i)) for i in (4, 5)] == ["settled", "pushed"]
        assert [(r.peer, r.kind, r.reason) for r in net.a.store.refusals()] == [
            ("bank-b", "receipt", f"receipt for {key}, which is not a message this chain sent to bank-b")
            for key in (_key(4), f"{A_ID}:99")
        ]

        # A receipt with a status no receiver sends: the whole envelope is refused, nothing applied.
        lost = {"results": [{"id": _key(5), "status": "lost", "tx": None, "reason": None}]}
        raw = Envelope("receipts", "bank-b", "bank-a", B_ID, lost).seal(PUBLIC_A, OPERATOR_B)
        await net.b.ctx.bus.publish(institution_topic("bank-a", "bank-b"), raw)
        assert (await net.published())["bank-a"] == [raw]
        await net.a.receiver.handle(raw, institution_topic("bank-a", "bank-b"))
        refusal = net.a.store.refusals()[0]
        assert (refusal.kind, refusal.reason, refusal.raw) == (
            "receipts",
            "results[0].status: must be one of executed, failed, refused, bounced",
            raw,
        )
        assert _status(net.a.store, _key(5)) == "pushed"

    run(world, tmp_path, body)


# --- envelopes: fresh, once, on their own topic, sealed to this institution's key -----------------


def _set_bus_key(l1: Chain, hub: Contract, key: bytes) -> None:
    """bank-b's operator registers `key` as its chain's bus key (`Hub.setBusKey`), as `xrelay bus-key
    register` does but with a fixed gas limit: anvil estimates the call in its latest block, and when
    that block has the second the key was last set in, storing the same changedAt again costs less
    than storing a new one, so the estimate falls short."""
    tx = hub.functions.setBusKey(B_ID, key).transact({"from": OPERATOR_B.address, "gas": 200_000})
    assert l1.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1


async def _refused_then_taken(
    net: Net,
    raw: bytes,
    reason: str | re.Pattern[str],
    *,
    topic: str | None = None,
    index: int = 1,
    key: bytes = PUBLIC_B,
) -> None:
    """`raw` (an envelope from bank-a with BATCH[index]) delivered to bank-b on `topic` (bank-a's by
    default) is refused with `reason` (exactly, or matching the pattern), and nothing of it is stored
    or answered; a genuine envelope with the same message (sealed to `key`) delivered right after is
    taken (left "received": L1 has not settled its batch)."""
    before = len(net.b.store.refusals())
    await net.deliver(raw, topic)
    refusals = net.b.store.refusals()
    assert len(refusals) == before + 1
    refusal = refusals[0]
    if isinstance(reason, str):
        assert refusal.reason == reason
    else:
        assert reason.fullmatch(refusal.reason), refusal.reason
    assert (refusal.peer, refusal.chain_id, refusal.kind, refusal.raw) == ("bank-a", A_ID, "envelope", raw)
    assert net.b.store.message(_key(index)) is None
    assert await net.receipts() == []

    await net.deliver(net.envelope([index], key=key))
    assert len(net.b.store.refusals()) == before + 1
    assert _status(net.b.store, _key(index)) == "received"
    assert await net.receipts() == []
    assert _status(net.a.store, _key(index)) == "pushed"


def test_a_replayed_envelope_is_refused(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        raw = net.envelope([0])
        await net.deliver(raw)
        assert _status(net.b.store, _key(0)) == "received"
        history = net.b.store.history(_key(0))
        envelope_id = orjson.loads(raw)["id"]
        # The same bytes again (QoS 1 may deliver twice; anyone who saw them may send them again).
        await _refused_then_taken(net, raw, f"replayed: envelope {envelope_id} was taken before")
        assert net.b.store.history(_key(0)) == history  # the replay changed nothing

    run(world, tmp_path, body)


@pytest.mark.parametrize(
    ("ago", "reason"),
    [
        (7200, r"stale: sent 720\d s ago, over bus\.max_envelope_age_seconds \(3600 s\)"),
        (-3600, r"from the future: sent_at is 3(599|600) s ahead of this daemon's clock"),
    ],
    ids=["stale", "future"],
)
def test_an_envelope_sent_too_long_ago_or_in_the_future_is_refused(
    world: World, tmp_path: Path, ago: int, reason: str
) -> None:
    async def body(net: Net) -> None:
        raw = net.envelope([1], sent_at=time.time() - ago)
        await _refused_then_taken(net, raw, re.compile(reason))

    run(world, tmp_path, body)


def test_an_envelope_on_another_senders_topic_is_refused(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        topic = institution_topic("bank-b", "bank-c")  # bank-c's topic to bank-b, not bank-a's
        reason = f"bank-a's envelope came on {topic}, not on its own topic"
        raw = net.envelope([1])
        await _refused_then_taken(net, raw, reason, topic=topic)
        # The misrouted copy left no trace: the genuine one on bank-a's topic is no replay.
        refused = len(net.b.store.refusals())
        await net.deliver(net.envelope([2]), institution_topic("bank-b", "bank-c"))
        await net.deliver(raw)
        assert len(net.b.store.refusals()) == refused + 1

    run(world, tmp_path, body, peers=(_peer("bank-c", C_ID),))


def test_an_envelope_sealed_to_a_key_not_bank_bs_is_refused(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        other = "0x" + public_key_of(devnet_bus_key(77)).hex()
        raw = net.envelope([1], key=bytes.fromhex(other[2:]))
        await _refused_then_taken(net, raw, f"sealed to key {other[:18]}…, not a key of this institution")

    run(world, tmp_path, body)


def test_an_envelope_whose_ciphertext_was_changed_and_signed_again_is_refused(
    world: World, tmp_path: Path
) -> None:
    async def body(net: Net) -> None:
        raw = net.envelope([1])
        sealed = bytearray(base64.b64decode(orjson.loads(raw)["body"]))
        sealed[-1] ^= 1  # one bit of the ciphertext flipped; bank-a's operator signs the result
        tampered = _resigned(raw, OPERATOR_A, body=base64.b64encode(bytes(sealed)).decode())
        reason = "sealed body refused: it does not open with the key it names"
        await _refused_then_taken(net, tampered, reason)

    run(world, tmp_path, body)


NEW_KEY_B = 12  # the devnet bus key bank-b rotates to


def test_after_a_key_rotation_the_old_key_opens_for_its_grace_period_only(
    world: World, tmp_path: Path
) -> None:
    old, new = PUBLIC_B, public_key_of(devnet_bus_key(NEW_KEY_B))
    old_hex = "0x" + old.hex()

    with _l1_for_this_test(world) as (l1, hub):

        async def body(net: Net) -> None:
            # Before L1 has it, the new key opens nothing: peers cannot know it.
            raw = net.envelope([1], key=new)
            reason = f"sealed to key 0x{new.hex()[:16]}…, not this chain's bus key on the L1 Hub"
            await _refused_then_taken(net, raw, reason)

            # bank-b's operator registers the new key; bank-b reads L1 again (its record is cached).
            await asyncio.to_thread(_set_bus_key, l1, hub, new)
            registered = HubBusKey.from_tuple(hub.functions.busKeys(B_ID).call())
            assert (registered.current, registered.previous) == (new, old)
            net.b.ctx._hub_records.clear()
            # Within the grace period (30 s) an envelope sealed to the old key still opens...
            await net.deliver(net.envelope([0], key=old))
            # ...and one sealed to the new key opens.
            await net.deliver(net.envelope([2], key=new))
            assert [_status(net.b.store, _key(i)) for i in (0, 2)] == ["received"] * 2
            # What bank-a sends bank-b once it reads L1 again is sealed to the new key.
            net.a.ctx._hub_records.clear()
            await net.a.ctx.send("bank-b", "resync", {})
            message = await asyncio.wait_for(anext(net.b.ctx.bus.messages()), WAIT)
            assert orjson.loads(message.payload)["key"] == "0x" + new.hex()
            await net.b.receiver.handle(message.payload, message.topic)
            assert len(net.b.store.refusals()) == 1  # the first one only

            # Past the grace period (bank-b restarted with key_grace_seconds = 0) the old key opens
            # nothing; the new one still does.
            bus = net.b.ctx.config.bus.model_copy(update={"key_grace_seconds": 0.0})
            net.b.ctx.config = net.b.ctx.config.model_copy(update={"bus": bus})
            net.b.ctx._hub_records.clear()
            await asyncio.sleep(max(0.0, registered.changed_at - time.time()))  # L1's clock may run ahead
            reason = (
                f"sealed to key {old_hex[:18]}…, replaced on the L1 Hub at {registered.changed_at} "
                "and past its grace period (0 s, bus.key_grace_seconds)"
            )
            await _refused_then_taken(net, net.envelope([5], key=old), reason, index=5, key=new)

        bus = {"key": {"devnet_key": NEW_KEY_B}, "previous_key": {"devnet_key": OPERATOR["bank-b"]}}
        run(world, tmp_path, body, bus_b=bus | {"key_grace_seconds": 30})
    assert HubBusKey.from_tuple(hub.functions.busKeys(B_ID).call()).current == old  # rolled back


# --- resync and sealed receipts ---------------------------------------------------------------------


def test_a_resync_makes_what_waits_for_the_peers_receipt_due_now(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver_module, "RESYNC_SECONDS", 3.0)

    async def body(net: Net) -> None:
        a = net.a.store
        pushed = [_key(i) for i in range(len(BATCH)) if BATCH[i].dest_chain_id == B_ID]
        start = time.time()
        for key in pushed:
            row = a.message(key)
            assert row is not None and row.status == "pushed" and row.due > start, row  # pushed again later
        net.a.ctx.wakeups.event("pusher").clear()

        # bank-b was deaf a while: it asks bank-a to push again now what still waits for its receipt.
        await net.b.ctx.send("bank-a", "resync", {})
        [raw] = (await net.published())["bank-a"]
        envelope = open_b_to_a(raw)
        assert (envelope.kind, envelope.body) == ("resync", {})
        await net.a.receiver.handle(raw, institution_topic("bank-a", "bank-b"))
        assert a.refusals() == []
        for key in pushed:
            row = a.message(key)
            assert row is not None and row.status == "pushed" and start <= row.due <= time.time(), row
        assert net.a.ctx.wakeups.event("pusher").is_set()
        assert _status(a, _key(4)) == "settled"  # for chain 903, not pushed to bank-b: left alone

        # Asked again at once, and again: done once, RESYNC_SECONDS after the first time (here 3 s), so
        # a peer cannot make bank-a push its backlog in a loop, and a second loss is still made good.
        a.record_push(pushed, "bank-b", "pushed again")
        done: list[str] = []
        push_again = net.a.receiver._push_again

        def counted(peer: str) -> None:
            done.append(peer)
            push_again(peer)

        monkeypatch.setattr(net.a.receiver, "_push_again", counted)

        def dues() -> list[float]:
            rows = [a.message(key) for key in pushed]
            assert all(row is not None for row in rows), rows
            return [row.due for row in rows if row is not None]

        for _ in range(2):
            await net.b.ctx.send("bank-a", "resync", {})
            [raw] = (await net.published())["bank-a"]
            await net.a.receiver.handle(raw, institution_topic("bank-a", "bank-b"))
        assert done == [] and all(due > time.time() + 20 for due in dues())
        await asyncio.sleep(receiver_module.RESYNC_SECONDS + 0.2)
        assert done == ["bank-b"] and all(due <= time.time() for due in dues())

    run(world, tmp_path, body)


def test_refusals_are_recorded_within_a_budget_per_sender(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        ctx = net.b.ctx
        for n in range(REFUSALS_PER_MINUTE + 30):
            ctx.refuse(peer="bank-a", chain_id=A_ID, kind="envelope", reason=f"junk {n}", raw=b"junk")
        ctx.refuse(peer="bank-c", chain_id=C_ID, kind="envelope", reason="bank-c's own", raw=b"")
        reasons = [r.reason for r in net.b.store.refusals()]
        assert len(reasons) == REFUSALS_PER_MINUTE + 1 and reasons[0] == "bank-c's own"
        assert reasons[-1] == "junk 0" and f"junk {REFUSALS_PER_MINUTE}" not in reasons
        skipped = ctx.metrics.failures.labels(reason="refusal not recorded: over the per-minute budget")
        assert skipped._value.get() == 30

    run(world, tmp_path, body)


def test_the_receipts_bank_b_sends_are_sealed_to_bank_as_key(world: World, tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        tx = "0x" + "ab" * 32
        sent = [Receipt(_key(0), "executed", tx, None), Receipt(_key(1), "refused", None, TARGET_NOT_ALLOWED)]
        await send_receipts(net.b.ctx, "bank-a", sent)
        [raw] = (await net.published())["bank-a"]
        for secret in (f"{A_ID}:", tx[2:], "executed", "target not allowed", T_OTHER[2:].lower()):
            assert secret.encode() not in raw.lower(), secret
        assert orjson.loads(raw)["key"] == "0x" + PUBLIC_A.hex()
        # Only bank-a's secret key opens it: not bank-b's own, nor another key under bank-a's name.
        for keyring, reason in [
            (Keyring({PUBLIC_B: KEY_B}, {}), f"sealed to key 0x{PUBLIC_A.hex()[:16]}…, not a key of this"),
            (Keyring({PUBLIC_A: devnet_bus_key(77)}, {}), "sealed body refused: it does not open with"),
        ]:
            with pytest.raises(EnvelopeRefused, match=re.escape(reason)):
                open_b_to_a(raw, keyring)
        envelope = open_b_to_a(raw)
        assert receipts_from_json(envelope.body) == sent
        await net.a.receiver.handle(raw, institution_topic("bank-a", "bank-b"))
        assert [_status(net.a.store, _key(i)) for i in (0, 1)] == ["executed", "refused"]
        assert net.a.store.refusals() == []

    run(world, tmp_path, body)
