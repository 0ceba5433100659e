"""relayer.sender.Sender on real anvil nodes: receipts, decoded reverts (before sending and once mined),
fee bumps of a stuck transaction with one nonce, serialised concurrent sends, and the retry helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound

from bridge_contracts import anvil, deploy
from bridge_contracts.anvil import AnvilNode
from bridge_contracts.chain import Chain, Reverted
from relayer.sender import Sender, SendFailed, failure_reason

FRESH_CHAIN_ID = 931
HOLDER = anvil.dev_account(4)
STRANGER = anvil.dev_account(3)
RECIPIENT = anvil.dev_account(5).address


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


async def until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `condition` (run in a thread) until it gives something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(condition)
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def pooled(w3: Web3, address: str, nonce: int) -> dict[str, Any] | None:
    """The pending transaction of `address` with `nonce` in anvil's pool, if there is one."""
    pending = rpc(w3, "txpool_content")["pending"]
    by_nonce: dict[str, dict[str, Any]] = pending.get(address.lower(), {})
    return by_nonce.get(str(nonce))


def bumped(fee: int, times: int) -> int:
    for _ in range(times):
        fee = int(fee * 1.25) + 1
    return fee


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Chain]:
    """A Chain on an anvil node of its own, for tests that turn automine off or change fees."""
    node: AnvilNode = anvil.start(FRESH_CHAIN_ID, tmp_path / "anvil.log")
    try:
        yield Chain(node.rpc_url, anvil.dev_account(0))
    finally:
        node.stop()


def token_on(chain: Chain) -> Contract:
    return deploy.deploy_dev_token(chain, "Sender Test", "SND")


def test_send_returns_the_receipt(chain_a: Chain) -> None:
    token = token_on(chain_a)
    sender = Sender(chain_a, poll=0.01)
    nonce = chain_a.w3.eth.get_transaction_count(sender.chain.signer.address)
    receipt = asyncio.run(sender.send(token.functions.mint(RECIPIENT, 123), what="mint"))
    assert receipt["status"] == 1
    tx = chain_a.w3.eth.get_transaction(receipt["transactionHash"])
    assert (tx["from"], tx["to"], tx["nonce"]) == (sender.address, token.address, nonce)
    assert token.functions.balanceOf(RECIPIENT).call() == 123
    assert sender.bumps == 0


def test_extra_gas_is_added_to_the_estimate(chain_a: Chain) -> None:
    token = token_on(chain_a)
    fn = token.functions.mint(RECIPIENT, 1)
    estimate = fn.estimate_gas({"from": chain_a.signer.address})
    receipt = asyncio.run(Sender(chain_a, poll=0.01).send(fn, what="mint", extra_gas=40_000))
    assert chain_a.w3.eth.get_transaction(receipt["transactionHash"])["gas"] == estimate + 40_000


def test_a_revert_is_raised_decoded_and_nothing_is_sent(chain_a: Chain) -> None:
    token = token_on(chain_a)
    sender = Sender(chain_a.with_signer(STRANGER), poll=0.01)
    before = chain_a.w3.eth.get_transaction_count(STRANGER.address, "pending")
    with pytest.raises(Reverted) as raised:
        asyncio.run(sender.send(token.functions.mint(RECIPIENT, 1), what="mint by a stranger"))
    assert raised.value.error == f"OnlyMinter(caller={STRANGER.address})"
    assert str(raised.value).startswith("mint by a stranger reverted: ")
    assert chain_a.w3.eth.get_transaction_count(STRANGER.address, "pending") == before


def test_outbox_send_to_an_unknown_destination_is_refused(chain_a: Chain) -> None:
    router = deploy.deploy_asset_router(chain_a)
    outbox = deploy.deploy_outbox(chain_a, router.address, owner=chain_a.signer.address)
    chain_a.send(router.functions.connect(outbox.address, anvil.dev_account(2).address))
    fn = outbox.functions.send(903, RECIPIENT, b"")
    with pytest.raises(Reverted) as raised:
        asyncio.run(Sender(chain_a, poll=0.01).send(fn, what="send"))
    assert raised.value.error == "UnknownDestination(destChainId=903)"


def test_a_transaction_that_reverts_once_mined_raises_reverted(fresh: Chain) -> None:
    """The estimate passes against the latest block, but a transfer already in the pool empties the
    balance first: the mined transaction fails, and that is raised as Reverted."""
    w3 = fresh.w3
    token = token_on(fresh)
    fresh.send(token.functions.mint(HOLDER.address, 10))
    rpc(w3, "evm_setAutomine", False)
    holder_chain = fresh.with_signer(HOLDER)
    fn = token.functions.transfer(RECIPIENT, 10)
    nonce = w3.eth.get_transaction_count(HOLDER.address)
    first = fn.build_transaction({"from": HOLDER.address, "nonce": nonce, "chainId": FRESH_CHAIN_ID})
    w3.eth.send_raw_transaction(HOLDER.sign_transaction(cast(dict[str, Any], first)).raw_transaction)
    sender = Sender(holder_chain, stuck_after=30, poll=0.02)

    async def scenario() -> None:
        task = asyncio.create_task(sender.send(fn, what="second transfer"))
        await until(lambda: pooled(w3, HOLDER.address, nonce + 1), what="the second transfer in the pool")
        await asyncio.to_thread(rpc, w3, "evm_mine")
        await asyncio.wait_for(task, 10)

    with pytest.raises(Reverted) as raised:
        asyncio.run(scenario())
    assert "failed in block" in raised.value.error
    assert token.functions.balanceOf(RECIPIENT).call() == 10
    assert sender.bumps == 0


def test_a_transaction_the_node_refuses_raises_send_failed(fresh: Chain) -> None:
    token = token_on(fresh)
    # The estimate passes, but the next block's base fee is above the fee cap the sender offers.
    rpc(fresh.w3, "anvil_setNextBlockBaseFeePerGas", hex(10**12))
    with pytest.raises(SendFailed, match="refused"):
        asyncio.run(Sender(fresh, poll=0.01).send(token.functions.mint(RECIPIENT, 1), what="mint"))


def test_a_stuck_transaction_is_replaced_with_higher_fees(fresh: Chain) -> None:
    w3 = fresh.w3
    token = token_on(fresh)
    sender = Sender(fresh, stuck_after=0.5, poll=0.05)
    address = sender.chain.signer.address
    nonce = w3.eth.get_transaction_count(address)
    start_block = w3.eth.block_number
    rpc(w3, "evm_setAutomine", False)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], Any]:
        task = asyncio.create_task(sender.send(token.functions.mint(RECIPIENT, 7), what="mint"))
        first = await until(lambda: pooled(w3, address, nonce), what="the first version in the pool")
        await until(lambda: sender.bumps >= 1, what="a fee bump")
        # The replacement has taken the first version's place in the pool.
        last = await until(
            lambda: (tx := pooled(w3, address, nonce)) is not None and tx["hash"] != first["hash"] and tx,
            what="the replacement in the pool",
        )
        await asyncio.to_thread(rpc, w3, "evm_mine")
        receipt = await asyncio.wait_for(task, 10)
        return first, last, receipt

    first, last, receipt = asyncio.run(scenario())
    bumps = sender.bumps
    assert bumps >= 1
    assert receipt["status"] == 1
    assert receipt["transactionHash"].to_0x_hex() == last["hash"]
    mined = w3.eth.get_transaction(receipt["transactionHash"])
    first_tip, first_cap = int(first["maxPriorityFeePerGas"], 16), int(first["maxFeePerGas"], 16)
    assert mined["nonce"] == nonce
    assert mined["maxPriorityFeePerGas"] == bumped(first_tip, bumps) > first_tip
    assert mined["maxFeePerGas"] == bumped(first_cap, bumps) > first_cap
    base = w3.eth.get_block(receipt["blockNumber"])["baseFeePerGas"]
    assert receipt["effectiveGasPrice"] > min(first_cap, base + first_tip)  # what the first would pay

    # One transaction of that nonce exists: the first version is gone, nothing is left in the pool.
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction(first["hash"])
    assert rpc(w3, "txpool_status") == {"pending": "0x0", "queued": "0x0"}
    ours = [
        tx
        for number in range(start_block + 1, w3.eth.block_number + 1)
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]
        if not isinstance(tx, bytes) and tx["from"] == address and tx["nonce"] == nonce
    ]
    assert len(ours) == 1
    assert token.functions.balanceOf(RECIPIENT).call() == 7

    # The next send takes the next nonce, with no bump.
    rpc(w3, "evm_setAutomine", True)
    after = asyncio.run(sender.send(token.functions.mint(RECIPIENT, 1), what="mint again"))
    assert w3.eth.get_transaction(after["transactionHash"])["nonce"] == nonce + 1
    assert sender.bumps == bumps


def test_a_transaction_never_mined_fails_after_max_bumps(fresh: Chain) -> None:
    w3 = fresh.w3
    token = token_on(fresh)
    rpc(w3, "evm_setAutomine", False)
    sender = Sender(fresh, stuck_after=0.2, max_bumps=2, poll=0.02)
    nonce = w3.eth.get_transaction_count(sender.chain.signer.address)
    with pytest.raises(SendFailed, match=f"nonce {nonce} still unmined after 2 fee bumps"):
        asyncio.run(sender.send(token.functions.mint(RECIPIENT, 1), what="mint"))
    assert sender.bumps == 2
    last = pooled(w3, sender.address, nonce)
    assert last is not None
    assert int(last["maxPriorityFeePerGas"], 16) == bumped(int(w3.eth.max_priority_fee), 2)


def test_concurrent_sends_land_with_consecutive_nonces(chain_a: Chain) -> None:
    token = token_on(chain_a)
    sender = Sender(chain_a, poll=0.01)
    first_nonce = chain_a.w3.eth.get_transaction_count(sender.chain.signer.address)

    async def send_all() -> list[Any]:
        return await asyncio.gather(
            *(
                sender.send(token.functions.mint(RECIPIENT, amount), what=f"mint {amount}")
                for amount in range(1, 7)
            )
        )

    receipts = asyncio.run(send_all())
    assert all(r["status"] == 1 for r in receipts)
    nonces = sorted(chain_a.w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts)
    assert nonces == list(range(first_nonce, first_nonce + 6))
    assert token.functions.balanceOf(RECIPIENT).call() == sum(range(1, 7))


def test_failure_reason_names_the_step_and_the_error() -> None:
    insufficient = Reverted("commit batch 3", "InsufficientLocked(assetId=0x01, locked=5, requested=6)")
    assert failure_reason("commit", insufficient) == "commit: InsufficientLocked"
    assert failure_reason("execute", Reverted("executeMany", "ZeroTarget()")) == "execute: ZeroTarget"
    assert failure_reason("withdrawal", SendFailed("nonce 4 still unmined")) == "withdrawal: not sent"
    assert failure_reason("commit", ConnectionError("refused")) == "commit: not sent"


def test_failure_reason_is_a_fixed_label_for_every_reverted() -> None:
    mined = Reverted("commit", "transaction 0xab12 failed in block 77")
    other = Reverted("commit", "transaction 0xcd34 failed in block 78")
    assert failure_reason("commit", mined) == failure_reason("commit", other)
    unknown = Reverted("commit", "unknown error 0xdeadbeef")
    assert failure_reason("commit", unknown) == failure_reason("commit", Reverted("c", "unknown error 0x01"))
