"""bridge_contracts.chain.FailoverProvider through Chain, against real anvil nodes: endpoints that
refuse, hang or answer with an HTTP error are skipped, a node that stops is failed over, all of them
down is a ProviderConnectionError naming each, and a JSON-RPC error answer is never failed over.
Given the chain id, an endpoint of another chain (or of another genesis) is never used and is
reported, the provider fails back to an earlier endpoint that is up again, and check_endpoints()
names what is wrong."""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import pytest
from web3 import Web3
from web3.exceptions import ProviderConnectionError

from bridge_contracts import anvil, deploy, toolchain
from bridge_contracts.anvil import AnvilNode
from bridge_contracts.chain import Chain, FailoverProvider, Reverted

CHAIN_ID = 941
OTHER_CHAIN_ID = 942
GENESIS_TIME = 1_700_000_000  # one genesis timestamp for every node that is to share a genesis
NAME = f"chain bank-a ({CHAIN_ID})"
STRANGER = anvil.dev_account(3)


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{anvil.free_port()}"


def provider(chain: Chain) -> FailoverProvider:
    p = chain.w3.provider
    assert isinstance(p, FailoverProvider)
    return p


def mine(node: AnvilNode, blocks: int) -> None:
    """Mine on one node directly, so that the nodes can be told apart by their block numbers."""
    w3 = Web3(Web3.HTTPProvider(node.rpc_url))
    response = w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]
    assert "error" not in response, response


def head_of(node: AnvilNode) -> int:
    return Web3(Web3.HTTPProvider(node.rpc_url)).eth.block_number


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[AnvilNode, AnvilNode]]:
    """Two anvil nodes with the same chain id: the first at block 3, the second at block 7."""
    first = anvil.start(CHAIN_ID, tmp_path / "first.log")
    try:
        second = anvil.start(CHAIN_ID, tmp_path / "second.log")
        try:
            mine(first, 3)
            mine(second, 7)
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.fixture
def hung_url() -> Iterator[str]:
    """A socket that takes connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


class _Unavailable(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def unavailable_url() -> Iterator[str]:
    """An HTTP server that answers every request with 503."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_dead_first_url_is_skipped(nodes: tuple[AnvilNode, AnvilNode]) -> None:
    live = nodes[0]
    dead = dead_url()
    chain = Chain([dead, live.rpc_url], anvil.dev_account(0))
    assert chain.chain_id == CHAIN_ID
    assert chain.w3.eth.block_number == 3
    assert provider(chain).current_url == live.rpc_url
    assert chain.rpc_urls == (dead, live.rpc_url)
    assert chain.w3.is_connected()


def test_a_hung_endpoint_times_out_and_is_skipped(nodes: tuple[AnvilNode, AnvilNode], hung_url: str) -> None:
    chain = Chain([hung_url, nodes[1].rpc_url], anvil.dev_account(0), request_timeout=0.5)
    assert chain.w3.eth.block_number == 7
    assert provider(chain).current_url == nodes[1].rpc_url
    # The hung endpoint is not tried again while the current one answers: no more waiting.
    started = time.monotonic()
    for _ in range(3):
        assert chain.w3.eth.block_number == 7
    assert time.monotonic() - started < 0.5


def test_an_http_error_is_failed_over(nodes: tuple[AnvilNode, AnvilNode], unavailable_url: str) -> None:
    chain = Chain([unavailable_url, nodes[0].rpc_url], anvil.dev_account(0))
    assert chain.w3.eth.block_number == 3
    assert provider(chain).current_url == nodes[0].rpc_url


def test_a_stopped_node_fails_over_to_the_next(nodes: tuple[AnvilNode, AnvilNode]) -> None:
    first, second = nodes
    chain = Chain([first.rpc_url, second.rpc_url], anvil.dev_account(0))
    assert chain.w3.eth.block_number == 3
    assert provider(chain).current_url == first.rpc_url
    first.stop()
    assert chain.w3.eth.block_number == 7
    assert provider(chain).current_url == second.rpc_url
    # Transactions go there too, and the provider stays there.
    token = deploy.deploy_dev_token(chain, "Failover", "FO")
    assert Web3(Web3.HTTPProvider(second.rpc_url)).eth.get_code(token.address) != b""
    assert token.functions.symbol().call() == "FO"
    assert provider(chain).current_url == second.rpc_url
    assert head_of(second) == 8


def test_the_current_endpoint_stays_while_it_answers(nodes: tuple[AnvilNode, AnvilNode]) -> None:
    first, second = nodes
    chain = Chain([dead_url(), first.rpc_url, second.rpc_url], anvil.dev_account(0))
    assert chain.w3.eth.block_number == 3
    second.stop()
    assert chain.w3.eth.block_number == 3  # the current one still answers: it stays
    assert provider(chain).current_url == first.rpc_url


def start_on(
    port: int, log_path: Path, *, chain_id: int = CHAIN_ID, timestamp: int | None = None
) -> AnvilNode:
    """An anvil node on a port chosen beforehand. Its genesis block is stamped `timestamp` (by default
    the time it starts): nodes of one chain id share a genesis when they share the timestamp."""
    cmd = [str(toolchain.anvil()), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id)]
    if timestamp is not None:
        cmd += ["--timestamp", str(timestamp)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    node = AnvilNode(process, chain_id, port, log_path)
    w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 1}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if w3.eth.chain_id == chain_id:
                return node
        except Exception:  # not listening yet
            time.sleep(0.05)
    node.stop()
    raise AssertionError(f"anvil on port {port} did not start")


def test_failover_wraps_around_to_an_earlier_url(nodes: tuple[AnvilNode, AnvilNode], tmp_path: Path) -> None:
    first, _ = nodes
    port = anvil.free_port()
    late_url = f"http://127.0.0.1:{port}"
    chain = Chain([late_url, first.rpc_url], anvil.dev_account(0))
    assert chain.w3.eth.block_number == 3  # nothing on the first URL yet
    assert provider(chain).current_url == first.rpc_url
    late = start_on(port, tmp_path / "late.log")
    try:
        first.stop()
        assert chain.w3.eth.block_number == 0  # the late node, after the last URL failed
        assert provider(chain).current_url == late_url
    finally:
        late.stop()


def test_all_endpoints_down_names_every_url(nodes: tuple[AnvilNode, AnvilNode]) -> None:
    first, second = nodes
    dead = dead_url()
    chain = Chain([first.rpc_url, dead, second.rpc_url], anvil.dev_account(0))
    assert chain.w3.eth.block_number == 3
    first.stop()
    second.stop()
    with pytest.raises(ProviderConnectionError) as raised:
        chain.w3.eth.block_number  # noqa: B018
    message = str(raised.value)
    assert "eth_blockNumber" in message
    for url in (first.rpc_url, dead, second.rpc_url):
        assert f"{url}: ConnectionError" in message
    assert not chain.w3.is_connected()


def test_all_dead_from_the_start(tmp_path: Path) -> None:
    urls = [dead_url(), dead_url()]
    chain = Chain(urls, anvil.dev_account(0))
    with pytest.raises(ProviderConnectionError) as raised:
        chain.w3.eth.chain_id  # noqa: B018
    assert all(url in str(raised.value) for url in urls)


def test_a_json_rpc_error_is_not_failed_over(nodes: tuple[AnvilNode, AnvilNode]) -> None:
    first, second = nodes
    chain = Chain([first.rpc_url, second.rpc_url], anvil.dev_account(0))
    token = deploy.deploy_dev_token(chain, "Stay", "ST")
    # The revert is an answer: it is raised, decoded, and the provider stays on the first node (on
    # the second there is no contract at all, so the same call would not revert there).
    with pytest.raises(Reverted) as raised:
        chain.with_signer(STRANGER).send(token.functions.mint(STRANGER.address, 1))
    assert raised.value.error == f"OnlyMinter(caller={STRANGER.address})"
    assert provider(chain).current_url == first.rpc_url
    # Nor is a method the node does not know.
    response = provider(chain).make_request("no_such_method", [])  # type: ignore[arg-type]
    assert "error" in response
    assert provider(chain).current_url == first.rpc_url
    assert head_of(second) == 7


def test_a_provider_needs_a_url() -> None:
    with pytest.raises(ValueError, match="at least one URL"):
        FailoverProvider([])


def test_a_chain_needs_a_url() -> None:
    with pytest.raises(ValueError, match="at least one URL"):
        Chain([], anvil.dev_account(0))


# -- the chain's identity: chain id and genesis


class Spawn(Protocol):
    def __call__(
        self,
        chain_id: int = CHAIN_ID,
        *,
        timestamp: int = GENESIS_TIME,
        port: int | None = None,
        blocks: int = 0,
    ) -> AnvilNode: ...


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Starts anvil nodes (by default of CHAIN_ID and one shared genesis), mined `blocks` deep so that
    the answer to eth_blockNumber tells which served it; stops them all at the end."""
    started: list[AnvilNode] = []

    def start(
        chain_id: int = CHAIN_ID, *, timestamp: int = GENESIS_TIME, port: int | None = None, blocks: int = 0
    ) -> AnvilNode:
        port = port if port is not None else anvil.free_port()
        node = start_on(port, tmp_path / f"node-{len(started)}.log", chain_id=chain_id, timestamp=timestamp)
        started.append(node)
        if blocks:
            mine(node, blocks)
        return node

    try:
        yield start
    finally:
        for node in started:
            node.stop()


def genesis_of(node: AnvilNode) -> bytes:
    return bytes(Web3(Web3.HTTPProvider(node.rpc_url)).eth.get_block(0)["hash"])


def states(chain: Chain) -> list[str]:
    return [e["state"] for e in chain.endpoints()]


def errors_naming(caplog: pytest.LogCaptureFixture, url: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and url in r.getMessage()]


def test_an_endpoint_of_another_chain_is_never_used(spawn: Spawn, caplog: pytest.LogCaptureFixture) -> None:
    right, other = spawn(blocks=3), spawn(OTHER_CHAIN_ID, blocks=5)
    dead = dead_url()
    chain = Chain([dead, other.rpc_url, right.rpc_url], anvil.dev_account(0), chain_id=CHAIN_ID, name=NAME)
    with caplog.at_level(logging.INFO, logger="bridge_contracts.chain"):
        assert chain.w3.eth.block_number == 3
    assert chain.current_url == provider(chain).current_url == right.rpc_url
    assert states(chain) == ["down", "wrong chain", "in use"]
    endpoints = chain.endpoints()
    assert endpoints[0]["error"].startswith("ConnectionError")
    assert endpoints[1]["error"] == f"answers for chain {OTHER_CHAIN_ID}, expected {CHAIN_ID}"
    assert endpoints[2]["error"] is None
    assert all(e["last_checked"] is not None for e in endpoints)
    (logged,) = errors_naming(caplog, other.rpc_url)
    assert NAME in logged and f"answers for chain {OTHER_CHAIN_ID} (expected {CHAIN_ID})" in logged
    # Transactions go to the right chain too; neither endpoint is checked again meanwhile.
    checked = [e["last_checked"] for e in endpoints]
    token = deploy.deploy_dev_token(chain, "Right", "RT")
    assert Web3(Web3.HTTPProvider(right.rpc_url)).eth.get_code(token.address) != b""
    assert Web3(Web3.HTTPProvider(other.rpc_url)).eth.get_code(token.address) == b""
    assert head_of(other) == 5
    assert [e["last_checked"] for e in chain.endpoints()] == checked
    assert chain.chain_id == CHAIN_ID


def test_a_node_of_another_genesis_is_refused(spawn: Spawn) -> None:
    right = spawn(blocks=3)
    twin = spawn(timestamp=GENESIS_TIME + 1, blocks=9)  # the same chain id, another history
    genesis, twin_genesis = genesis_of(right), genesis_of(twin)
    assert genesis != twin_genesis
    # The genesis is learned from the first endpoint of the right chain id, then required.
    chain = Chain([right.rpc_url, twin.rpc_url], anvil.dev_account(0), chain_id=CHAIN_ID, name=NAME)
    assert chain.w3.eth.block_number == 3
    right.stop()
    with pytest.raises(ProviderConnectionError) as raised:
        chain.w3.eth.block_number  # noqa: B018
    message = str(raised.value)
    assert f"no RPC endpoint of {NAME} answered eth_blockNumber" in message
    assert f"{right.rpc_url}: ConnectionError" in message
    assert f"{twin.rpc_url}: has genesis 0x{twin_genesis.hex()}, expected 0x{genesis.hex()}" in message
    assert states(chain) == ["down", "wrong chain"]
    # Given outright, the genesis is required from the start, whichever endpoint comes first.
    given = FailoverProvider(
        [twin.rpc_url, spawn(blocks=4).rpc_url], expected_chain_id=CHAIN_ID, expected_genesis=genesis
    )
    assert Web3(given).eth.block_number == 4
    assert [e["state"] for e in given.endpoints()] == ["wrong chain", "in use"]


def test_only_wrong_chain_endpoints_is_an_error_naming_each(spawn: Spawn) -> None:
    one, two = spawn(OTHER_CHAIN_ID), spawn(OTHER_CHAIN_ID + 1)
    chain = Chain([one.rpc_url, two.rpc_url], anvil.dev_account(0), chain_id=CHAIN_ID, name=NAME)
    checked = []
    for _ in range(2):  # the second time from what is known, without asking them again
        with pytest.raises(ProviderConnectionError) as raised:
            chain.w3.eth.block_number  # noqa: B018
        assert str(raised.value) == (
            f"no RPC endpoint of {NAME} answered eth_blockNumber: "
            f"{one.rpc_url}: answers for chain {OTHER_CHAIN_ID}, expected {CHAIN_ID}; "
            f"{two.rpc_url}: answers for chain {OTHER_CHAIN_ID + 1}, expected {CHAIN_ID}"
        )
        checked.append([e["last_checked"] for e in chain.endpoints()])
    assert checked[0] == checked[1]
    assert states(chain) == ["wrong chain", "wrong chain"]
    assert not chain.w3.is_connected()


def test_fails_back_to_the_first_endpoint_when_it_is_up_again(
    spawn: Spawn, caplog: pytest.LogCaptureFixture
) -> None:
    port = anvil.free_port()
    first, second = spawn(port=port, blocks=3), spawn(blocks=7)
    chain = Chain(
        [first.rpc_url, second.rpc_url],
        anvil.dev_account(0),
        chain_id=CHAIN_ID,
        name=NAME,
        failback_seconds=1.5,
    )
    assert chain.w3.eth.block_number == 3
    assert states(chain) == ["in use", "unchecked"]
    first.stop()
    assert chain.w3.eth.block_number == 7
    failed_over = time.monotonic()
    assert provider(chain).current_url == second.rpc_url
    assert states(chain) == ["down", "in use"]
    again = spawn(port=port)  # the first URL is back: the same chain and genesis, at block 0
    assert genesis_of(again) == genesis_of(second)
    assert chain.w3.eth.block_number == 7  # not before failback_seconds
    time.sleep(max(0.0, failed_over + 1.6 - time.monotonic()))
    with caplog.at_level(logging.INFO, logger="bridge_contracts.chain"):
        assert chain.w3.eth.block_number == 0
    assert provider(chain).current_url == first.rpc_url
    assert states(chain) == ["in use", "healthy"]
    assert f"failing back to {first.rpc_url}" in caplog.messages


def test_a_wrong_endpoint_is_checked_again_and_used_once_right(spawn: Spawn) -> None:
    port = anvil.free_port()
    wrong, right = spawn(OTHER_CHAIN_ID, port=port), spawn(blocks=3)
    p = FailoverProvider(
        [wrong.rpc_url, right.rpc_url], expected_chain_id=CHAIN_ID, failback_seconds=0.2, recheck_seconds=0.2
    )
    w3 = Web3(p)
    assert w3.eth.block_number == 3
    checked = p.endpoints()[0]["last_checked"]
    time.sleep(0.3)
    assert w3.eth.block_number == 3  # probed again for the fail-back: still the other chain
    assert p.endpoints()[0]["state"] == "wrong chain"
    assert p.endpoints()[0]["last_checked"] > checked
    wrong.stop()
    spawn(port=port, blocks=5)  # now the URL serves the right chain
    time.sleep(0.3)
    assert w3.eth.block_number == 5
    assert [e["state"] for e in p.endpoints()] == ["in use", "healthy"]


def test_check_endpoints_names_each_bad_one(spawn: Spawn) -> None:
    right, other = spawn(), spawn(OTHER_CHAIN_ID)
    twin = spawn(timestamp=GENESIS_TIME + 1)
    dead = dead_url()
    chain = Chain(
        [dead, other.rpc_url, right.rpc_url, twin.rpc_url], anvil.dev_account(0), chain_id=CHAIN_ID, name=NAME
    )
    assert chain.check_endpoints() == [
        f"{dead} is down (ConnectionError)",
        f"{other.rpc_url} answers for chain {OTHER_CHAIN_ID} (expected {CHAIN_ID})",
        f"{twin.rpc_url} has genesis 0x{genesis_of(twin).hex()} (expected 0x{genesis_of(right).hex()})",
    ]
    assert states(chain) == ["down", "wrong chain", "healthy", "wrong chain"]
    assert chain.w3.eth.block_number == 0
    assert provider(chain).current_url == right.rpc_url
    # Without a chain id nothing is compared, but a dead endpoint is still found.
    assert Chain([right.rpc_url, dead], anvil.dev_account(0)).check_endpoints() == [
        f"{dead} is down (ConnectionError)"
    ]


def test_concurrent_requests_fail_over_together(spawn: Spawn) -> None:
    first, second = spawn(blocks=3), spawn(blocks=7)
    chain = Chain([first.rpc_url, second.rpc_url], anvil.dev_account(0), chain_id=CHAIN_ID, name=NAME)
    assert chain.w3.eth.block_number == 3
    seen: list[int] = []
    errors: list[Exception] = []

    def ask() -> None:
        for _ in range(20):
            try:
                seen.append(chain.w3.eth.block_number)
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    first.stop()
    for t in threads:
        t.join()
    assert errors == []
    assert set(seen) <= {3, 7} and len(seen) == 160
    assert states(chain) == ["down", "in use"]
    assert chain.w3.eth.block_number == 7


def test_the_chain_id_given_is_the_chain_id_and_carried_with_another_signer() -> None:
    chain = Chain([dead_url()], anvil.dev_account(0), chain_id=CHAIN_ID, name=NAME, failback_seconds=5)
    assert chain.chain_id == CHAIN_ID  # without asking: nothing answers
    other = provider(chain.with_signer(STRANGER))
    assert (other.expected_chain_id, other.name, other.failback_seconds) == (CHAIN_ID, NAME, 5)
    assert FailoverProvider([dead_url()], expected_chain_id=7).name == "chain 7"
