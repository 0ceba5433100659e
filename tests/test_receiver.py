"""The receiver's rules (relayer/pipeline/receiver.py), each on real parts: two institutions' Contexts
as the daemon builds them (config file, SQLite store, chains on anvil, the L1 Hub deployed on an
anvil L1 with each chain's operator registered, a bus on the embedded broker, metrics), and a batch
of bank-a's messages with a real Groth16 proof that the L1 has not settled.

bank-b (chain 902) is the receiver under test; bank-a (chain 901) sends. An envelope arrives on
bank-b's topic through the broker and bank-b's receiver handles it as the daemon's listener does;
what bank-b publishes is read back from the broker, decoded as bank-a decodes it and handed to
bank-a's receiver, so each test checks the recorded reason on both sides.

A batch the L1 has not settled leaves its messages "received" (only one for another chain is refused
at once): the peering's rules apply to settled messages, and a settled message they do not allow is
"bouncing" (its value goes home), not refused. The `settle` fixture has L1 settle the batch for one
test, with the batch's real proof, and rolls L1 back after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import tomli_w
from web3 import Web3
from web3.types import RPCEndpoint

from bridge_contracts import anvil
from bridge_contracts.anvil import AnvilNode, dev_account, free_port
from bridge_contracts.chain import Chain
from bridge_contracts.messages import BOUNCE_SENDER, Message, bounce_of, groth16_proof
from bridge_contracts.views import hub_batch
from hub.broker import EmbeddedBroker
from hub.bus import Bus, Envelope, PeerKey, institution_topic, open_envelope
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
from proofs import merkle
from proofs.circuits.batch import Batch, BatchCircuit
from proofs.formats import snarkjs_json
from proofs.groth16.prover import prove
from proofs.message import roll
from relayer.config import load
from relayer.metrics import Metrics
from relayer.pipeline.context import Context
from relayer.pipeline.receiver import Receiver, send_receipts
from relayer.sender import Sender
from relayer.store import InStatus, Outcome, Received, Refusal, Sent, Store
from tests.settlement import CAPACITY, Prepared, Settlement, asset_id, batch_key

pytestmark = pytest.mark.timeout(120)

L1_ID, A_ID, B_ID, C_ID = 900, 901, 902, 903
OPERATOR = {"bank-a": 1, "bank-b": 2, "bank-c": 3}  # anvil dev account of each chain's operator
OPERATOR_A, OPERATOR_B, OPERATOR_C = (dev_account(i) for i in OPERATOR.values())
STRANGER = dev_account(7)  # the operator of no chain
T_OK = Web3.to_checksum_address("0x00000000000000000000000000000000000000a1")
T_OTHER = Web3.to_checksum_address("0x00000000000000000000000000000000000000b2")
# Two tokens of bank-a's chain, registered on the L1 Hub: a batch moving them out of bank-a's chain
# debits nothing there (they originate there), so L1 settles the batch as it is.
TOKEN_OK = Web3.to_checksum_address("0x00000000000000000000000000000000000000c1")
TOKEN_OTHER = Web3.to_checksum_address("0x00000000000000000000000000000000000000c2")
ASSET_OK, ASSET_OTHER = asset_id(A_ID, TOKEN_OK), asset_id(A_ID, TOKEN_OTHER)
UNUSED = "0x000000000000000000000000000000000000dEaD"  # the chains' contracts: the receiver never calls them
WAIT = 10.0
WATCHED = ("bank-a", "bank-c", "bank-z")  # the topics bank-b's publications are watched on
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


@pytest.fixture
def settle(world: World) -> Iterator[Settle]:
    """What has L1 settle the world's batch: bank-a's operator commits it to the Hub with its real
    proof. For this test only: L1 goes back to its state before the test when the test ends, so the
    other tests see the batch unsettled."""
    l1 = Chain(world.l1.rpc_url, dev_account(0))
    hub = l1.contract("Hub", world.hub)
    snapshot = l1.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]

    async def commit() -> None:
        await asyncio.to_thread(l1.send, hub.functions.commitBatch(*world.commit.as_args()))
        assert hub_batch(hub, A_ID, 0).batch_root == world.batch.batch_root

    try:
        yield commit
    finally:
        assert l1.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])["result"] is True
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
    world: World, folder: Path, broker: EmbeddedBroker, name: str, chain_id: int, **config: Any
) -> Context:
    """An institution's Context as `xrelay run` builds it from its config file."""
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
        "bus": {"url": broker.url},
        "admin": {"listen": f"127.0.0.1:{free_port()}", "token_env": "XRELAY_TEST_ADMIN_TOKEN"},
    } | config
    path = folder / f"{name}.toml"
    path.write_text(tomli_w.dumps(data))
    loaded = load(path)
    signer = loaded.chain.signer.resolve()
    l2, l1 = Chain(loaded.chain.rpc_urls, signer), Chain(loaded.l1.rpc_urls, signer)
    assert loaded.l1.hub is not None and loaded.l1.hub_api is not None
    assert loaded.chain.contracts.inbox is not None
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
        bus=Bus(broker.url, name, topics=(institution_topic(name),) if name == "bank-b" else ()),
        hub_client=HubClient(loaded.l1.hub_api),
        metrics=Metrics(),
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
    ) -> bytes:
        """A "messages" envelope with BATCH[i] for each i (with its path) and `extra` messages, signed."""
        items = [self.world.items[i] for i in indices] + [self._item(m) for m in extra]
        body = delivery_to_json(Delivery(self.world.batch, tuple(items)))
        if padding:
            body["padding"] = "x" * padding
        return Envelope("messages", sender, chain_id, body).sign(signer)

    def _item(self, m: Message) -> DeliveredMessage:
        return DeliveredMessage(m, 7, self.world.items[0].siblings)

    def single(self, m: Message) -> bytes:
        """What the receiver keeps of one message it refuses: its delivery alone, as JSON."""
        item = next((i for i in self.world.items if i.message == m), None) or self._item(m)
        return orjson.dumps(delivery_to_json(Delivery(self.world.batch, (item,))))

    async def deliver(self, raw: bytes) -> None:
        """`raw` published (by bank-a's bus) to bank-b's topic; bank-b's receiver handles what arrives,
        as the daemon's listener does."""
        await self.a.ctx.bus.publish(institution_topic("bank-b"), raw)
        message = await asyncio.wait_for(anext(self.b.ctx.bus.messages()), WAIT)
        assert message.payload == raw
        await self.b.receiver.handle(message.payload)

    async def published(self) -> dict[str, list[bytes]]:
        """What bank-b published on each WATCHED topic since the last call (up to a sentinel bank-b
        publishes after it: the broker keeps one publisher's order on a topic)."""
        for name in WATCHED:
            await self.b.ctx.bus.publish(institution_topic(name), SENTINEL)
        got: dict[str, list[bytes]] = {name: [] for name in WATCHED}
        waiting = set(WATCHED)
        while waiting:
            message = await asyncio.wait_for(anext(self.watcher.messages()), WAIT)
            name = message.topic.rsplit("/", 1)[1]
            if message.payload == SENTINEL:
                waiting.discard(name)
            else:
                got[name].append(message.payload)
        return got

    async def receipts(self) -> list[Receipt]:
        """The receipts bank-b sent bank-a since the last call (it must have sent nobody else
        anything), decoded as bank-a decodes them; bank-a's receiver then handles each envelope."""
        got = await self.published()
        assert not any(got[name] for name in WATCHED if name != "bank-a"), got
        receipts = []
        for raw in got["bank-a"]:
            envelope = open_envelope(raw, {"bank-b": PeerKey(B_ID, OPERATOR_B.address)})
            assert envelope.kind == "receipts"
            receipts += receipts_from_json(envelope.body)
            await self.a.receiver.handle(raw)
        return receipts


def run(
    world: World,
    tmp_path: Path,
    body: Callable[[Net], Coroutine[Any, Any, None]],
    *,
    bank_a: dict[str, Any] | None = None,
    peers: tuple[dict[str, Any], ...] = (),
    refusal_bytes: int = 4096,
) -> None:
    """Run `body` on a fresh pair: bank-b's peering of bank-a is `bank_a` over the default rules
    (targets [T_OK], assets [ASSET_OK]), with `peers` besides; bank-b keeps `refusal_bytes` of a
    refused input."""
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
            )
            for ctx in (a, b):
                stack.callback(ctx.store.close)
                await stack.enter_async_context(ctx.bus)
            watcher = await stack.enter_async_context(
                Bus(broker.url, "test-watcher", topics=[institution_topic(n) for n in WATCHED])
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
        unsigned = Envelope("messages", "bank-a", A_ID, orjson.loads(net.envelope([1]))["body"]).to_bytes()
        cases = [
            (net.envelope([1], signer=STRANGER), f"signed by {STRANGER.address}, not by bank-a's operator "),
            # bank-a's operator is a real operator, but the L1 Hub has another for bank-c's chain.
            (
                net.envelope([1], sender="bank-c", chain_id=C_ID),
                f"signed by {OPERATOR_A.address}, not by bank-c's operator {OPERATOR_C.address}",
            ),
            (net.envelope([1], chain_id=C_ID), f"chain id {C_ID} is not bank-a's: its chain is {A_ID}"),
            (unsigned, "unsigned: the envelope has no signature"),
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
        signed = Envelope("messages", "bank-a", A_ID, {"padding": "x" * MB5}).sign(OPERATOR_A)
        assert len(signed) > MB5
        for raw, kind, reason in [
            (junk, "envelope", "envelope too large: "),
            (signed, "envelope", "envelope too large: "),
            (junk[:2000], "envelope", "not JSON: "),
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
        raw = Envelope("receipts", "bank-b", B_ID, lost).sign(OPERATOR_B)
        await net.b.ctx.bus.publish(institution_topic("bank-a"), raw)
        assert (await net.published())["bank-a"] == [raw]
        await net.a.receiver.handle(raw)
        refusal = net.a.store.refusals()[0]
        assert (refusal.kind, refusal.reason, refusal.raw) == (
            "receipts",
            "results[0].status: must be one of executed, failed, refused, bounced",
            raw,
        )
        assert _status(net.a.store, _key(5)) == "pushed"

    run(world, tmp_path, body)
