"""bridge_contracts.chain.FailoverProvider through Chain, against real anvil nodes: endpoints that
refuse, hang or answer with an HTTP error are skipped, a node that stops is failed over, all of them
down is a ProviderConnectionError naming each, and a JSON-RPC error answer is never failed over."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.exceptions import ProviderConnectionError

from bridge_contracts import anvil, deploy, toolchain
from bridge_contracts.anvil import AnvilNode
from bridge_contracts.chain import Chain, FailoverProvider, Reverted

CHAIN_ID = 941
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


def start_on(port: int, log_path: Path) -> AnvilNode:
    """An anvil node on a port chosen beforehand."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(toolchain.anvil()), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(CHAIN_ID)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    node = AnvilNode(process, CHAIN_ID, port, log_path)
    w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 1}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if w3.eth.chain_id == CHAIN_ID:
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
