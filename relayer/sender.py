"""Transactions from the operator's account: one at a time per chain, with the nonce managed here and
the fees bumped when a transaction sits unmined.

A transaction is built (which estimates its gas, so that a revert is seen and decoded before
anything is sent), signed locally and sent. If no receipt comes within `stuck_after` seconds it is
sent again with the same nonce and fees raised by `bump` (nodes take a replacement only at +10% or
more), up to `max_bumps` times; whichever of its versions is mined ends the wait. Failures the caller
retries later (on the daemon's retry policy, `hub.retry`) are raised as `SendFailed` or `Reverted`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, cast

from eth_account.datastructures import SignedTransaction
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxParams, TxReceipt, Wei

from bridge_contracts.chain import Chain, Reverted, reverted_error

log = logging.getLogger(__name__)

_ERROR_NAME = re.compile(r"([A-Za-z_]\w*)\(")


def failure_reason(step: str, exc: Exception) -> str:
    """A short, fixed label for the failures metric: the step and the contract error's name (one
    time series per kind of failure, never one per transaction)."""
    if not isinstance(exc, Reverted):
        return f"{step}: not sent"
    name = _ERROR_NAME.match(exc.error)
    return f"{step}: {name.group(1) if name else 'failed on chain'}"


class SendFailed(RuntimeError):
    """A transaction could not be sent or was never mined; the message says which and why."""


class Sender:
    def __init__(
        self,
        chain: Chain,
        *,
        stuck_after: float = 30.0,
        bump: float = 1.25,
        max_bumps: int = 5,
        poll: float = 0.1,
    ) -> None:
        self.chain = chain
        self.stuck_after = stuck_after
        self.bump = bump
        self.max_bumps = max_bumps
        self.poll = poll
        self._lock = asyncio.Lock()
        self.bumps = 0  # replacements sent so far, for the logs and tests

    @property
    def address(self) -> str:
        return str(self.chain.signer.address)

    async def send(
        self, fn: ContractFunction, *, what: str, value: int = 0, extra_gas: int = 0, until_fed: bool = False
    ) -> TxReceipt:
        """Send `fn` and wait until it is mined; raise Reverted (decoded) if it reverts. `extra_gas` is
        added to the node's estimate, for work the estimate cannot see (a call that may fail inside
        the transaction without failing it). `until_fed`: the limit is doubled (up to the block's) while
        a call at it reverts NotEnoughGas() — an Inbox round whose estimate settled where one execution
        fails quietly, and the limit plus extra_gas is still too little for what runs once it does not
        (a first arrival that deploys a token, then a SwapDesk's phase 2, which needs PHASE2_GAS)."""
        async with self._lock:
            return await asyncio.to_thread(self._send, fn, what, value, extra_gas, until_fed)

    def _send(
        self, fn: ContractFunction, what: str, value: int, extra_gas: int, until_fed: bool
    ) -> TxReceipt:
        w3 = self.chain.w3
        nonce = w3.eth.get_transaction_count(self.chain.signer.address, "pending")
        tip = int(w3.eth.max_priority_fee)
        base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0))
        params: TxParams = {
            "from": self.chain.signer.address,
            "value": Wei(value),
            "nonce": nonce,
            "chainId": self.chain.chain_id,
            "maxPriorityFeePerGas": Wei(tip),
            "maxFeePerGas": Wei(2 * base + tip),
        }
        try:
            tx = cast(dict[str, Any], fn.build_transaction(params))
        except ContractLogicError as exc:
            raise reverted_error(what, exc) from exc
        if extra_gas or until_fed:
            limit = int(w3.eth.get_block("latest")["gasLimit"])
            tx["gas"] = min(limit, int(tx["gas"]) + extra_gas)
            if until_fed:
                tx["gas"] = self._fed(tx, limit, what)
        sent: list[HexBytes] = []
        for round_ in range(self.max_bumps + 1):
            if round_:
                tx["maxPriorityFeePerGas"] = int(tx["maxPriorityFeePerGas"] * self.bump) + 1
                tx["maxFeePerGas"] = int(tx["maxFeePerGas"] * self.bump) + 1
                self.bumps += 1
                log.warning(
                    "%s: nonce %d unmined after %g s; bumping fees (%d)",
                    what,
                    nonce,
                    self.stuck_after,
                    round_,
                )
            signed: SignedTransaction = self.chain.signer.sign_transaction(tx)
            try:
                sent.append(HexBytes(w3.eth.send_raw_transaction(signed.raw_transaction)))
            except (ValueError, Web3RPCError) as exc:  # e.g. "nonce too low": an earlier version was mined
                if not sent:
                    raise SendFailed(f"{what}: the node refused the transaction: {exc}") from exc
            receipt = self._wait(sent, self.stuck_after)
            if receipt is not None:
                if receipt["status"] != 1:
                    tx_hash = receipt["transactionHash"].to_0x_hex()
                    raise Reverted(what, f"transaction {tx_hash} failed in block {receipt['blockNumber']}")
                return receipt
        raise SendFailed(f"{what}: nonce {nonce} still unmined after {self.max_bumps} fee bumps")

    def _fed(self, tx: dict[str, Any], limit: int, what: str) -> int:
        """tx's gas limit, doubled (up to `limit`) until a call at it does not revert NotEnoughGas()."""
        gas = int(tx["gas"])
        while True:
            try:
                self.chain.w3.eth.call(cast(TxParams, {**tx, "gas": gas}))
                return gas
            except ContractLogicError as exc:
                error = reverted_error(what, exc)
                if not error.error.startswith("NotEnoughGas") or gas >= limit:
                    raise error from exc
                gas = min(limit, 2 * gas)

    def _wait(self, hashes: list[HexBytes], timeout: float) -> TxReceipt | None:
        deadline = time.monotonic() + timeout
        while True:
            for tx_hash in hashes:
                try:
                    return self.chain.w3.eth.get_transaction_receipt(tx_hash)
                except TransactionNotFound:
                    continue
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.poll)
