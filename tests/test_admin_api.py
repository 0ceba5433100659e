"""The daemon's admin HTTP API, through aiohttp's test client: the token, each route, replays,
batches, peer edits, bad inputs and the metrics."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from web3 import Web3

from relayer.api import make_app
from relayer.config import load
from relayer.metrics import Metrics
from relayer.store import Store
from tests.stored import ASSET, deliver, fill_batches, fill_messages, incoming, prove, settle

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.config = tmp_path / "bank-a.toml"
        shutil.copy(CONFIGS / "bank-a.toml", self.config)
        self.store = Store(load(self.config).store.path)
        self.metrics = Metrics()
        self.wakeups: list[str] = []  # what the API woke in the daemon
        fill_messages(self.store)
        self.store.refuse(
            peer="bank-b", chain_id=902, kind="messages", reason="bad signature", raw=b"\x00\x01"
        )

    def run(self, requests: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
        """Serve the API and run `requests` against it."""

        async def main() -> None:
            app = make_app(
                self.store,
                self.config,
                TOKEN,
                self.metrics,
                lambda: {"institution": "bank-a"},
                replayed=lambda: self.wakeups.append("executor"),
            )
            async with TestClient(TestServer(app)) as client:
                await requests(client)

        asyncio.run(main())


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    made = Env(tmp_path)
    yield made
    made.store.close()


ROUTES = [
    ("GET", "/v1/status"),
    ("GET", "/v1/messages"),
    ("GET", "/v1/messages/902:1"),
    ("POST", "/v1/messages/902:1/replay"),
    ("POST", "/v1/messages/902:1/bounce"),
    ("GET", "/v1/halts"),
    ("POST", "/v1/halts/outbox/resume"),
    ("GET", "/v1/batches"),
    ("GET", "/v1/batches/0"),
    ("GET", "/v1/peers"),
    ("POST", "/v1/peers"),
    ("DELETE", "/v1/peers/bank-b"),
    ("GET", "/v1/refusals"),
    ("GET", "/metrics"),
]


def test_every_route_requires_the_token(env: Env) -> None:
    async def requests(client: TestClient[Any, Any]) -> None:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            for method, path in ROUTES:
                response = await client.request(method, path, headers=headers, json={"name": "bank-c"})
                assert response.status == 401, (method, path, headers)
                assert await response.json() == {
                    "error": "missing or wrong bearer token (Authorization: Bearer <token>)"
                }
                assert response.headers["WWW-Authenticate"].startswith("Bearer")

    env.run(requests)
    assert [p.name for p in load(env.config).peers] == ["bank-b"]  # nothing was changed
    assert env.store.message("902:1").status == "failed"  # type: ignore[union-attr]


def test_an_empty_token_is_refused(env: Env) -> None:
    with pytest.raises(ValueError, match="non-empty bearer token"):
        make_app(env.store, env.config, "", env.metrics, dict)


def test_status_and_unknown_routes(env: Env) -> None:
    async def requests(client: TestClient[Any, Any]) -> None:
        response = await client.get("/v1/status", headers=AUTH)
        assert (response.status, await response.json()) == (200, {"institution": "bank-a"})
        response = await client.get("/v1/nothing", headers=AUTH)
        assert (response.status, await response.json()) == (404, {"error": "Not Found"})
        response = await client.put("/v1/status", headers=AUTH)
        assert response.status == 405
        assert (await response.json())["error"] == "Method Not Allowed"

    env.run(requests)


def test_messages_list_and_filters(env: Env) -> None:
    async def ids(client: TestClient[Any, Any], query: str) -> list[str]:
        response = await client.get(f"/v1/messages{query}", headers=AUTH)
        assert response.status == 200
        return [m["id"] for m in await response.json()]

    async def requests(client: TestClient[Any, Any]) -> None:
        assert await ids(client, "") == ["902:1", "902:2", "901:0"]
        assert await ids(client, "?direction=in") == ["902:1", "902:2"]
        assert await ids(client, "?status=failed,sent") == ["902:1", "901:0"]
        assert await ids(client, "?peer=bank-b&limit=1") == ["902:1"]
        assert await ids(client, "?peer=bank-z") == []
        first = (await (await client.get("/v1/messages?limit=1", headers=AUTH)).json())[0]
        assert (first["amount"], first["asset_id"], first["data"]) == ("7", ASSET, "0xcafe")
        assert first["leaf"] == str(incoming(1, amount=7).leaf())
        assert (first["status"], first["error"]) == ("failed", "the target reverted: TargetFailing()")
        assert first["payload"] == {"delivery": "from bank-b"}
        for query, error in [
            ("?direction=sideways", "direction must be 'in' or 'out'"),
            ("?limit=0", "limit must be a positive integer"),
            ("?limit=000", "limit must be a positive integer"),
            ("?limit=ten", "limit must be a positive integer"),
            ("?limit=-1", "limit must be a positive integer"),
            ("?status=lost", "unknown status lost: expected sent, batched"),
            ("?status=proving", "unknown status proving"),  # a batch's status
        ]:
            response = await client.get(f"/v1/messages{query}", headers=AUTH)
            assert response.status == 400
            assert error in (await response.json())["error"]

    env.run(requests)


def test_one_message_with_its_history(env: Env) -> None:
    async def requests(client: TestClient[Any, Any]) -> None:
        response = await client.get("/v1/messages/902:2", headers=AUTH)
        assert response.status == 200
        body = await response.json()
        assert (body["status"], body["exec_tx"], body["payload"]) == (
            "executed",
            "0xbeef",
            {"deposit": {"x": 1}},
        )
        assert [(h["from_status"], h["to_status"], h["reason"]) for h in body["history"]] == [
            (None, "received", "delivered by bank-b"),
            ("received", "verified", "path, batch proof and L1 settlement checked"),
            ("verified", "executing", "in an execute transaction"),
            ("executing", "executed", "MessageExecuted"),
        ]
        assert all(isinstance(h["at"], float) for h in body["history"])
        response = await client.get("/v1/messages/902:77", headers=AUTH)
        assert (response.status, await response.json()) == (404, {"error": "no message 902:77"})

    env.run(requests)


def test_replay_through_the_api(env: Env) -> None:
    async def replay(client: TestClient[Any, Any], message_id: str) -> tuple[int, Any]:
        response = await client.post(f"/v1/messages/{message_id}/replay", headers=AUTH)
        return response.status, await response.json()

    async def requests(client: TestClient[Any, Any]) -> None:
        assert await replay(client, "902:1") == (200, {"id": "902:1", "status": "replay", "changed": True})
        assert await replay(client, "902:1") == (200, {"id": "902:1", "status": "replay", "changed": False})
        status, body = await replay(client, "902:2")
        assert status == 409
        assert "message 902:2 was executed at" in body["error"]
        assert "it cannot be replayed" in body["error"]
        status, body = await replay(client, "901:0")
        assert (status, body["error"].split(":")[0]) == (409, "message 901")
        assert "is outgoing" in body["error"]
        status, body = await replay(client, "902:9")
        assert status == 404
        assert body["error"].startswith("no message 902:9")

    env.run(requests)
    assert env.wakeups == ["executor"]  # once: for the replay that changed something
    history = env.store.history("902:1")
    assert [t.to_status for t in history] == ["received", "verified", "executing", "failed", "replay"]
    assert history[-1].reason == "replay requested through the admin API"


def test_bounce_through_the_api(env: Env) -> None:
    async def bounce(client: TestClient[Any, Any], message_id: str, body: Any) -> tuple[int, Any]:
        response = await client.post(f"/v1/messages/{message_id}/bounce", headers=AUTH, json=body)
        return response.status, await response.json()

    async def requests(client: TestClient[Any, Any]) -> None:
        for body in (None, {}, {"reason": ""}, {"reason": 5}, ["given up"]):
            status, answer = await bounce(client, "902:1", body)
            assert status == 400 and "non-empty 'reason'" in answer["error"], body
        response = await client.post("/v1/messages/902:1/bounce", headers=AUTH, data=b"{not json")
        assert response.status == 400 and (await response.json())["error"].startswith("the body is not JSON")
        given_up = {"reason": "given up"}
        assert await bounce(client, "902:1", given_up) == (
            200,
            {"id": "902:1", "status": "bouncing", "changed": True},
        )
        assert await bounce(client, "902:1", given_up) == (
            200,
            {"id": "902:1", "status": "bouncing", "changed": False},
        )
        status, answer = await bounce(client, "902:2", given_up)
        assert status == 409 and "only a failed message can be bounced" in answer["error"]
        status, answer = await bounce(client, "902:9", given_up)
        assert status == 404 and answer["error"].startswith("no message 902:9")

    env.run(requests)
    assert env.wakeups == ["executor"]  # once: for the bounce that changed something
    assert env.store.history("902:1")[-1].reason == "bounce: given up (through the admin API)"


def test_halts_through_the_api(env: Env) -> None:
    env.store.halt("outbox", "reorganisation deeper than finality: block 9", 9)

    async def requests(client: TestClient[Any, Any]) -> None:
        response = await client.get("/v1/halts", headers=AUTH)
        [halt] = await response.json()
        assert (halt["scope"], halt["block"], halt["lifted_at"]) == ("outbox", 9, None)
        response = await client.post("/v1/halts/nowhere/resume", headers=AUTH, json={})
        assert (
            response.status == 404
            and "the streams are outbox, l1-deposits" in (await response.json())["error"]
        )
        for body in ({"rewind": "yes"}, [True]):
            response = await client.post("/v1/halts/outbox/resume", headers=AUTH, json=body)
            assert response.status == 400, body
        response = await client.post("/v1/halts/outbox/resume", headers=AUTH, json={"rewind": False})
        assert response.status == 503  # this app was made without a way to reach the chains

    env.run(requests)
    assert env.store.active_halt("outbox") is not None  # nothing was lifted


def test_peers_through_the_api(env: Env) -> None:
    async def requests(client: TestClient[Any, Any]) -> None:
        response = await client.get("/v1/peers", headers=AUTH)
        assert await response.json() == [
            {
                "name": "bank-b",
                "chain_id": 902,
                "allowed_assets": ["*"],
                "allowed_targets": ["*"],
                "rate_limit_per_minute": 6000,
                "force_after_seconds": 21600.0,
                "swap_desk": None,
            }
        ]
        new = {
            "name": "bank-c",
            "chain_id": 903,
            "allowed_assets": [ASSET],
            "rate_limit_per_minute": 60,
            "force_after_seconds": 120,
            "swap_desk": "0x" + "ab" * 20,
        }
        response = await client.post("/v1/peers", headers=AUTH, json=new)
        assert response.status == 201
        desk = Web3.to_checksum_address("0x" + "ab" * 20)
        assert await response.json() == new | {"allowed_targets": ["*"], "swap_desk": desk}
        for body, status, error in [
            (new, 409, "there is already a peer named 'bank-c'"),
            ({"name": "bank-d", "chain_id": 901}, 400, "peers[2].chain_id: 901 is already used"),
            ({"name": "bank-d", "chain_id": 904, "allowed_assets": ["0x1"]}, 400, '"0x1" is not an asset id'),
            ({"name": "bank-d"}, 400, "chain_id is required"),
            ({"name": "bank-d", "chain_id": "904"}, 400, "chain_id must be an integer"),
            ({"name": "bank-d", "chain_id": 904, "allowed_assets": "*"}, 400, "must be a list of strings"),
            ({"name": "bank-d", "chain_id": 904, "colour": "red"}, 400, "unknown field colour"),
            ({"name": "hub", "chain_id": 904}, 400, 'peers[2].name: "hub" is reserved'),
            ({"name": "l1", "chain_id": 904}, 400, 'peers[2].name: "l1" is reserved'),
            ({"name": "chain-904", "chain_id": 904}, 400, 'peers[2].name: "chain-904" is reserved'),
            ([1, 2], 400, "the body must be a JSON object"),
        ]:
            response = await client.post("/v1/peers", headers=AUTH, json=body)
            assert response.status == status, body
            assert error in (await response.json())["error"]
        response = await client.post("/v1/peers", headers=AUTH, data=b"{not json")
        assert response.status == 400
        response = await client.delete("/v1/peers/bank-b", headers=AUTH)
        assert response.status == 200
        assert (await response.json())["chain_id"] == 902
        response = await client.delete("/v1/peers/bank-b", headers=AUTH)
        assert response.status == 404
        assert "no peer named 'bank-b' (peers: bank-c)" in (await response.json())["error"]

    env.run(requests)
    assert [p.name for p in load(env.config).peers] == ["bank-c"]
    assert "# When a batch of outgoing messages closes" in env.config.read_text()


def test_refusals(env: Env) -> None:
    async def requests(client: TestClient[Any, Any]) -> None:
        response = await client.get("/v1/refusals?limit=5", headers=AUTH)
        [refusal] = await response.json()
        assert (refusal["peer"], refusal["chain_id"], refusal["kind"]) == ("bank-b", 902, "messages")
        assert (refusal["reason"], refusal["raw"], refusal["raw_size"]) == ("bad signature", "0x0001", 2)

    env.run(requests)


def test_batches(env: Env) -> None:
    fill_batches(env.store)
    last_of_first = env.store.message("901:1")
    assert last_of_first is not None

    async def numbers(client: TestClient[Any, Any], query: str) -> list[int]:
        response = await client.get(f"/v1/batches{query}", headers=AUTH)
        assert response.status == 200, await response.text()
        return [b["batch_number"] for b in await response.json()]

    async def requests(client: TestClient[Any, Any]) -> None:
        assert await numbers(client, "") == [0, 1, 2]
        assert await numbers(client, "?status=settled") == [0]
        assert await numbers(client, "?status=proving,proven") == [1, 2]
        assert await numbers(client, "?limit=2") == [1, 2]  # the last ones
        assert await numbers(client, "?status=committing") == []
        first, second, _ = await (await client.get("/v1/batches", headers=AUTH)).json()
        assert (first["status"], first["count"], first["first_nonce"], first["last_nonce"]) == (
            "settled",
            2,
            0,
            1,
        )
        assert (first["commit_tx"], first["commit_gas"], first["attempts"]) == ("0xc0ffee", 300_000, 1)
        assert first["h_end"] == second["h_start"] == str(last_of_first.outbox_hash)
        assert (first["batch_root"], first["public_inputs"]) == ("12345", ["1", "2", "3"])
        assert (second["status"], second["error"]) == ("proven", "insufficient funds")
        for query, error in [
            ("?status=sent", "unknown status sent: expected proving, proven, committing, settled"),
            ("?limit=0", "limit must be a positive integer"),
        ]:
            response = await client.get(f"/v1/batches{query}", headers=AUTH)
            assert (response.status, (await response.json())["error"][: len(error)]) == (400, error)

    env.run(requests)


def test_one_batch_with_its_history(env: Env) -> None:
    fill_batches(env.store)

    async def requests(client: TestClient[Any, Any]) -> None:
        response = await client.get("/v1/batches/0", headers=AUTH)
        assert response.status == 200
        body = await response.json()
        assert (body["batch_number"], body["status"], body["proving_seconds"]) == (0, "settled", 2.5)
        assert [(h["from_status"], h["to_status"], h["reason"]) for h in body["history"]] == [
            (None, "proving", "closed with 2 messages"),
            ("proving", "proven", "proven in 2.50 s"),
            ("proven", "committing", "committing to L1"),
            ("committing", "proven", "commit refused (try 1): nonce too low"),
            ("proven", "committing", "committing to L1"),
            ("committing", "settled", "settled on L1 (BatchSettled)"),
        ]
        response = await client.get("/v1/batches/0002", headers=AUTH)
        assert (await response.json())["batch_number"] == 2
        for number, status, error in [
            ("7", 404, "no batch 7"),
            ("9" * 40, 404, "no batch"),
            ("-1", 400, 'a batch number is a non-negative integer, not "-1"'),
            ("two", 400, 'a batch number is a non-negative integer, not "two"'),
        ]:
            response = await client.get(f"/v1/batches/{number}", headers=AUTH)
            assert (response.status, (await response.json())["error"][: len(error)]) == (status, error)

    env.run(requests)


def test_a_limit_beyond_any_store_is_no_limit(env: Env) -> None:
    """SQLite takes 64-bit integers, and Python parses no more than 4300 digits: neither is a 500."""

    async def requests(client: TestClient[Any, Any]) -> None:
        for digits in (23, 5000):
            huge = "1" + "0" * (digits - 1)
            response = await client.get(f"/v1/messages?limit={huge}", headers=AUTH)
            assert response.status == 200
            assert [m["id"] for m in await response.json()] == ["902:1", "902:2", "901:0"]
            response = await client.get(f"/v1/refusals?limit={huge}", headers=AUTH)
            assert response.status == 200
            assert len(await response.json()) == 1
            response = await client.get(f"/v1/batches?limit={huge}", headers=AUTH)
            assert (response.status, await response.json()) == (200, [])
        response = await client.get("/v1/refusals?limit=" + "9" * 5000 + "x", headers=AUTH)
        assert response.status == 400
        error = (await response.json())["error"]
        assert error.startswith('limit must be a positive integer, not "999') and len(error) < 120

    env.run(requests)


def test_metrics(env: Env) -> None:
    env.metrics.batch_proven(3.5)
    env.metrics.batch_settled()
    env.metrics.failure("commit")
    env.metrics.executed("bank-b")

    async def requests(client: TestClient[Any, Any]) -> None:
        response = await client.get("/metrics", headers=AUTH)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
        for line in [
            'xrelay_backlog{direction="out",peer="bank-b"} 1.0',
            "xrelay_batches_proven_total 1.0",
            "xrelay_batches_settled_total 1.0",
            'xrelay_failures_total{reason="commit"} 1.0',
            'xrelay_messages_executed_total{peer="bank-b"} 1.0',
            "xrelay_proving_seconds_count 1.0",
            'xrelay_proving_seconds_bucket{le="5.0"} 1.0',
        ]:
            assert line in text.splitlines(), line
        assert 'xrelay_oldest_pending_seconds{peer="bank-b"}' in text

    env.run(requests)


def test_the_backlog_goes_back_to_zero(env: Env) -> None:
    env.metrics.refresh_from_store(env.store)
    assert b'xrelay_backlog{direction="out",peer="bank-b"} 1.0' in env.metrics.render()
    env.store.close_batch(0, capacity=16, message_ids=["901:0"])
    prove(env.store, 0)
    settle(env.store, 0)
    deliver(env.store, "901:0")
    assert env.store.message("901:0").status == "executed"  # type: ignore[union-attr]
    env.metrics.refresh_from_store(env.store)
    text = env.metrics.render().decode()
    assert 'xrelay_backlog{direction="out",peer="bank-b"} 0.0' in text
    assert 'xrelay_oldest_pending_seconds{peer="bank-b"} 0.0' in text
    assert "xrelay_backlog{" in text  # a series once seen stays, at 0
