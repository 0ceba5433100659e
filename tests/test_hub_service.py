"""The hub service against a real Hub on anvil: the indexer's store and tree, the HTTP API through
HubClient, restart from the cursor, RPC failover, the loud failures, root announcements on the bus,
and the config file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from bridge_contracts import anvil
from bridge_contracts.anvil import AnvilNode, free_port
from bridge_contracts.chain import Chain
from bridge_contracts.messages import aggregated_leaf
from bridge_contracts.views import hub_batch
from hub import config as hub_config
from hub.api import create_app
from hub.bus import Bus
from hub.cli import hub as hub_cli
from hub.client import HubClient, HubClientError
from hub.config import HubConfigError
from hub.envelope import ROOTS_TOPIC, RootAnnouncement, read_root_announcement
from hub.indexer import AggregatedRootMismatch, Indexer, IndexerError, ReorgTooDeep
from hub.service import HubService
from hub.store import HubStore
from proofs import merkle
from tests.settlement import DEPTH, E18, NATIVE, Settlement, asset_id, ether_data, message

B = 902
OPERATOR_B = anvil.dev_account(2)
USER = anvil.dev_account(5)
RECIPIENT = anvil.dev_account(6).address


@dataclass
class L1:
    node: AnvilNode
    settlement: Settlement
    start_block: int

    @property
    def chain(self) -> Chain:
        return self.settlement.chain

    @property
    def id(self) -> int:
        return self.settlement.l1

    def call(self, name: str, *args: Any) -> Any:
        return getattr(self.settlement.hub.functions, name)(*args).call()

    def root_at(self, size: int) -> bytes:
        return bytes(self.call("rootAt", size))

    def deposit(self, value: int, data: bytes = b"") -> None:
        self.settlement.deposit(USER, B, RECIPIENT, data, value=value)

    def indexer(self, store: HubStore, **options: Any) -> Indexer:
        defaults: dict[str, Any] = {
            "rpc_urls": [self.node.rpc_url],
            "confirmations": 0,
            "start_block": self.start_block,
        }
        return Indexer(store, hub=self.settlement.hub.address, l1_chain_id=self.id, **(defaults | options))


@pytest.fixture
def l1(chain_a: Chain, node_a: AnvilNode) -> L1:
    """A Hub on node A (the L1) with chain B registered: two deposits to B, one batch of B (to L1,
    with value in B's ether), and one more deposit: four aggregated leaves."""
    start_block = chain_a.w3.eth.block_number + 1
    settlement = Settlement.deploy(chain_a)
    settlement.register(B, OPERATOR_B)
    found = L1(node_a, settlement, start_block)
    found.deposit(E18, b"first")
    found.deposit(2 * E18, b"second")
    b_eth = asset_id(B, NATIVE)
    settlement.commit(
        B,
        [
            message(B, found.id, 0, RECIPIENT, asset=b_eth, amount=5, assetdata=ether_data(B)),
            message(B, found.id, 1, RECIPIENT, data=b"no value"),
            message(B, found.id, 2, RECIPIENT, asset=b_eth, amount=7, assetdata=ether_data(B)),
        ],
        OPERATOR_B,
    )
    found.deposit(0, b"a plain message")
    return found


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HubStore]:
    with HubStore(tmp_path / "hub.sqlite") as opened:
        yield opened


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(body(), 120)

    asyncio.run(main())


@asynccontextmanager
async def serving(indexer: Indexer) -> AsyncIterator[HubClient]:
    runner = web.AppRunner(create_app(indexer))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with HubClient(f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        await runner.cleanup()


def hex32(value: bytes | int) -> str:
    return "0x" + (value.to_bytes(32, "big") if isinstance(value, int) else value).hex()


def test_indexer_and_api_agree_with_the_hub(l1: L1, store: HubStore) -> None:
    async def body() -> None:
        indexer = l1.indexer(store)
        updates = await indexer.sync()
        size = l1.call("aggregatedSize")
        assert size == 4
        assert [u.size for u in updates] == [1, 2, 3, 4]  # one deposit or batch per block
        assert [u.root for u in updates] == [l1.root_at(n) for n in range(1, 5)]

        async with serving(indexer) as client:
            status = await client.status()
            assert status == {
                "l1_chain_id": l1.id,
                "hub": l1.settlement.hub.address,
                "indexed_block": l1.chain.w3.eth.block_number,
                "aggregated_size": 4,
                "aggregated_root": hex32(l1.call("aggregatedRoot")),
            }
            roots = await client.roots()
            assert [(r["size"], r["root"]) for r in roots] == [(n, hex32(l1.root_at(n))) for n in range(1, 5)]
            assert [r["size"] for r in await client.roots(from_size=3)] == [3, 4]

            # Every leaf's path, against every root that holds it, leads to the Hub's root.
            for leaf_index in range(size):
                for at in (None, *range(leaf_index + 1, size + 1)):
                    proof = await client.proof(leaf_index, at)
                    assert proof.size == (size if at is None else at)
                    assert proof.leaf == l1.settlement.tree.leaf(leaf_index)
                    assert len(proof.siblings) == merkle.AGGREGATED_TREE_DEPTH
                    root = merkle.keccak_root_from_path(proof.leaf, leaf_index, proof.siblings)
                    assert root == proof.root == l1.root_at(proof.size)

            record = hub_batch(l1.settlement.hub, B, 0)
            assert record.committed and record.depth == DEPTH
            leaf_index, batch_root = record.leaf_index, record.batch_root
            proof = await client.batch_proof(B, 0)
            assert proof.leaf_index == leaf_index == 2
            assert proof.leaf == aggregated_leaf(B, 0, DEPTH, batch_root)
            assert merkle.keccak_root_from_path(proof.leaf, leaf_index, proof.siblings) == l1.root_at(4)
            assert (await client.batch_proof(B, 0, size=3)).root == l1.root_at(3)

            [batch] = await client.batches(B)
            assert batch | {"tx": None, "block": None} == {
                "batch_number": 0,
                "count": 3,
                "h_end": hex32(l1.settlement.info(B).outbox_hash),
                "batch_root": hex32(batch_root),
                "depth": DEPTH,
                "leaf_index": 2,
                "aggregated_root": hex32(l1.root_at(3)),
                "tx": None,
                "block": None,
            }
            assert await client.chains() == [
                {
                    "chain_id": B,
                    "operator": OPERATOR_B.address,
                    "validium": True,
                    "next_batch": 1,
                    "outbox_hash": hex32(l1.settlement.info(B).outbox_hash),
                }
            ]
            l1_eth, b_eth = asset_id(l1.id, NATIVE), asset_id(B, NATIVE)
            assert await client.balances(B) == {hex32(l1_eth): 3 * E18}
            assert l1.call("balances", B, l1_eth) == 3 * E18
            assert await client.balances(l1.id) == {hex32(b_eth): 12}

            deposits = await client.deposits(B, from_nonce=1)
            assert [d["nonce"] for d in deposits] == [1, 2]
            assert [d["leaf_index"] for d in deposits] == [1, 3]
            assert deposits[0]["message"] == {
                "source_chain_id": l1.id,
                "dest_chain_id": B,
                "nonce": 1,
                "sender": USER.address,
                "target": RECIPIENT,
                "asset_id": hex32(l1_eth),
                "amount": str(2 * E18),
                "data": "0x" + b"second".hex(),
                "asset_data": "0x" + ether_data(l1.id).hex(),
            }
            assert deposits[1]["message"]["asset_id"] == hex32(0)  # no value, no asset
            assert await client.deposits(903) == []

    run(body)


def test_api_errors_say_what_was_wrong(l1: L1, store: HubStore) -> None:
    async def body() -> None:
        indexer = l1.indexer(store)
        await indexer.sync()
        async with serving(indexer) as client:
            cases: list[tuple[Coroutine[Any, Any, Any], int, str]] = [
                (client.proof(9), 404, "no leaf 9 in a tree of 4 leaves"),
                (client.proof(0, size=7), 404, "size 7 is beyond the 4 leaves indexed so far"),
                (client.proof(3, size=2), 404, "no leaf 3 in a tree of 2 leaves"),
                (client.get("/v1/proof", leaf_index=None), 400, "leaf_index is required"),
                (client.get("/v1/proof?leaf_index=x"), 400, "leaf_index must be an integer >= 0, not 'x'"),
                (client.balances(999), 404, "chain 999 is not registered"),
                (client.batch_proof(B, 5), 404, "batch 5 of chain 902 is not committed"),
                (client.get("/v1/deposits"), 400, "the query parameter dest is required"),
                (client.get("/v1/nothing"), 404, "Not Found: GET /v1/nothing"),
            ]
            for call, status, reason in cases:
                with pytest.raises(HubClientError) as refused:
                    await call
                assert refused.value.status == status
                assert reason in refused.value.reason, refused.value
                assert refused.value.url.startswith(client.base_url)
        async with HubClient(f"http://127.0.0.1:{free_port()}") as nowhere:
            with pytest.raises(HubClientError, match="unreachable"):
                await nowhere.status()

    run(body)


def test_a_restart_resumes_after_the_cursor(l1: L1, tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite"

    async def body() -> None:
        with HubStore(path) as store:
            await l1.indexer(store).sync()
            cursor = store.cursor()
        assert cursor is not None
        l1.deposit(3 * E18)
        l1.deposit(4 * E18)
        with HubStore(path) as store:
            indexer = l1.indexer(store)
            ranges: list[tuple[int, int]] = []
            get_logs = indexer._get_logs

            async def recorded(first: int, last: int) -> Any:
                ranges.append((first, last))
                return await get_logs(first, last)

            indexer._get_logs = recorded  # type: ignore[method-assign]
            await indexer.start()
            assert indexer.aggregated_size == 4  # rebuilt from the stored leaves
            updates = await indexer.sync()
            assert ranges[0][0] == cursor[0] + 1
            assert [u.size for u in updates] == [5, 6]
            assert indexer.aggregated_root == l1.root_at(6)
            async with serving(indexer) as client:
                assert len(await client.roots()) == 6
                assert (await client.deposits(B, from_nonce=3))[0]["message"]["amount"] == str(3 * E18)
                assert await client.balances(B) == {hex32(asset_id(l1.id, NATIVE)): 10 * E18}

    run(body)


def test_rpc_failover_and_an_unreachable_l1(l1: L1, store: HubStore) -> None:
    down = f"http://127.0.0.1:{free_port()}"

    async def body() -> None:
        indexer = l1.indexer(store, rpc_urls=[down, l1.node.rpc_url], block_range=3)
        await indexer.sync()
        assert indexer.provider.current_url == l1.node.rpc_url
        assert indexer.aggregated_root == l1.root_at(4)
        with pytest.raises(IndexerError, match="cannot reach the L1"):
            await l1.indexer(store, rpc_urls=[down]).start()
        with pytest.raises(IndexerError, match=f"serves chain {l1.id}, not 1"):
            await Indexer(store, [l1.node.rpc_url], l1.settlement.hub.address, l1_chain_id=1).start()
        with pytest.raises(IndexerError, match="no contract at the Hub address"):
            await Indexer(store, [l1.node.rpc_url], RECIPIENT, l1_chain_id=l1.id).start()

    run(body)


def test_a_tree_that_disagrees_with_the_hub_stops_the_indexer(l1: L1, store: HubStore) -> None:
    async def body() -> None:
        indexer = l1.indexer(store, tree_depth=16)  # other zero hashes: every root differs
        with pytest.raises(
            AggregatedRootMismatch, match=r"after leaf 0 \(0x[0-9a-f]{64}\) the Hub's aggregated root is"
        ):
            await indexer.sync()
        # nothing of that range was kept: not the chain registered before the first leaf either
        assert store.leaves() == [] and store.chains() == [] and store.cursor() is None
        assert indexer.aggregated_size == 0

    run(body)


def test_a_reorganisation_below_the_cursor_stops_the_indexer(l1: L1, store: HubStore) -> None:
    w3 = l1.chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    l1.deposit(E18)

    async def body() -> None:
        indexer = l1.indexer(store)
        await indexer.sync()
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
        l1.chain.send(l1.settlement.hub.functions.deposit(B, USER.address, b"other"), value=1)
        with pytest.raises(ReorgTooDeep, match="a reorganisation deeper than confirmations=0"):
            await indexer.sync()

    run(body)


def _config(l1: L1, tmp_path: Path, broker_port: int, api_port: int) -> hub_config.HubConfig:
    data = {
        "l1": {
            "chain_id": l1.id,
            "rpc_urls": [l1.node.rpc_url],
            "confirmations": 0,
            "hub": l1.settlement.hub.address,
            "start_block": l1.start_block,
            "poll_interval": 0.1,
        },
        "api": {"listen": f"127.0.0.1:{api_port}"},
        "bus": {"listen": f"127.0.0.1:{broker_port}"},
    }
    return hub_config.parse(data, base_dir=tmp_path)


async def announced(bus: Bus, size: int) -> RootAnnouncement:
    """The announcement of the root of `size` leaves (after any of smaller sizes)."""
    async for received in bus.messages():
        assert received.topic == ROOTS_TOPIC
        found = read_root_announcement(received.payload)
        assert found.size <= size
        if found.size == size:
            return found
    raise AssertionError("the bus closed")


def test_the_service_serves_and_announces_roots_on_the_bus(l1: L1, tmp_path: Path) -> None:
    broker_port, api_port = free_port(), free_port()
    config = _config(l1, tmp_path, broker_port, api_port)
    assert config.store.path == tmp_path / "hub.sqlite"

    async def body() -> None:
        stop = asyncio.Event()
        service = HubService(config)
        running = asyncio.create_task(service.run(stop))
        async with HubClient(f"http://127.0.0.1:{api_port}") as client:
            while True:  # the service comes up and catches up
                try:
                    if (await client.status())["aggregated_size"] == 4:
                        break
                except HubClientError:
                    pass
                assert not running.done(), running
                await asyncio.sleep(0.1)
            async with Bus(f"mqtt://127.0.0.1:{broker_port}", "bank-b") as bank_b:
                # Retained: a subscriber gets the latest root at once (earlier ones may come first
                # if it subscribed while the service was still announcing its catch-up).
                latest = await announced(bank_b, 4)
                assert latest.root == l1.root_at(4)
                await asyncio.to_thread(l1.deposit, E18)
                new = await announced(bank_b, 5)
                assert new.root == l1.root_at(5)
                assert new.l1_block == l1.chain.w3.eth.block_number
            stop.set()
            await running
        assert running.done() and running.exception() is None

    run(body)


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(
        "[l1]\nchain_id = 0\nrpc_urls = ['ftp://x', 'http://a', 'http://a']\nhub = '0x12'\nconfirmatons = 2\n"
        "[api]\nlisten = 'localhost'\n"
        "[bus]\nurl = 'mqtt://broker'\nlisten = '127.0.0.1:1883'\n"
        "[store]\npath = 'missing/hub.sqlite'\n"
    )
    with pytest.raises(HubConfigError) as error:
        hub_config.load(path)
    problems = dict(error.value.problems)
    assert problems["l1.chain_id"] == "must be greater than 0, not 0"
    assert "has scheme 'ftp': expected http or https" in problems["l1.rpc_urls[0]"]
    assert problems["l1.confirmatons"] == "unknown key 'confirmatons' (did you mean 'confirmations'?)"
    assert "is not an address" in problems["l1.hub"]
    assert "expected host:port" in problems["api.listen"]
    assert "set exactly one of url" in problems["bus"]
    assert "does not exist" in problems["store.path"]
    assert str(path) in str(error.value)

    path.write_text("[l1]\nchain_id = 900\nrpc_urls = []\nhub = '0x' + '11' * 20\n")
    with pytest.raises(HubConfigError, match="invalid TOML"):
        hub_config.load(path)
    path.write_text(
        f"[l1]\nchain_id = 900\nrpc_urls = []\nhub = '0x{'11' * 20}'\n[bus]\nlisten = '127.0.0.1:1883'\n"
    )
    with pytest.raises(HubConfigError, match=r"l1\.rpc_urls: must list at least one URL"):
        hub_config.load(path)

    result = CliRunner().invoke(hub_cli, ["run", "-c", str(tmp_path / "none.toml")])
    assert result.exit_code == 1
    assert "none.toml: no such file" in result.output
