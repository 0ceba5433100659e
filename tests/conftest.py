"""Shared fixtures: real anvil nodes, started once per session, reset to a snapshot after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_contracts import anvil
from bridge_contracts.anvil import AnvilNode
from bridge_contracts.chain import Chain

CHAIN_A_ID = 901
CHAIN_B_ID = 902


@pytest.fixture(scope="session")
def anvil_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("anvil")


def _node(chain_id: int, logs: Path) -> Iterator[AnvilNode]:
    node = anvil.start(chain_id, logs / f"{chain_id}.log")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def node_a(anvil_logs: Path) -> Iterator[AnvilNode]:
    yield from _node(CHAIN_A_ID, anvil_logs)


@pytest.fixture(scope="session")
def node_b(anvil_logs: Path) -> Iterator[AnvilNode]:
    yield from _node(CHAIN_B_ID, anvil_logs)


def isolated(node: AnvilNode) -> Iterator[Chain]:
    """A Chain signed by dev account 0, whose state is rolled back when the test ends."""
    chain = Chain(node.rpc_url, anvil.dev_account(0))
    snapshot = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield chain
    finally:
        chain.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]


@pytest.fixture
def chain_a(node_a: AnvilNode) -> Iterator[Chain]:
    yield from isolated(node_a)


@pytest.fixture
def chain_b(node_b: AnvilNode) -> Iterator[Chain]:
    yield from isolated(node_b)
