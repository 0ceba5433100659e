"""anvil nodes for the devnet and the tests, and anvil's well-known development accounts.

The accounts come from anvil's default mnemonic, which is public: they are for devnet and tests
only, never for a chain that holds value.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from bridge_contracts import toolchain

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10
DEV_BALANCE_ETH = 10_000


class AnvilError(RuntimeError):
    """An anvil node did not start or did not answer."""


@cache
def dev_account(index: int) -> LocalAccount:
    """anvil's well-known development account `index` (0-9). DEVNET ONLY: its key is public."""
    if not 0 <= index < DEV_ACCOUNT_COUNT:
        raise ValueError(f"anvil has development accounts 0 to {DEV_ACCOUNT_COUNT - 1}, not {index}")
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class AnvilNode:
    process: subprocess.Popen[bytes]
    chain_id: int
    port: int
    log_path: Path

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    chain_id: int,
    log_path: Path,
    *,
    block_time: float | None = None,
    mixed_mining: bool = False,
    slots_in_an_epoch: int | None = None,
    detach: bool = False,
    ready_timeout: float = 30.0,
) -> AnvilNode:
    """Start an anvil node on a free loopback port and wait until it answers JSON-RPC.

    block_time: mine every so many seconds (default: a block per transaction, at once); with
    mixed_mining, both. slots_in_an_epoch sets how far the node's "safe" and "finalized" blocks trail
    its head (with 1 slot, "safe" is the head's parent and "finalized" its
    grandparent; the default of 32 puts "finalized" 64 blocks back).
    detach=True puts it in a session of its own, so it outlives this process (the devnet).
    """
    binary = toolchain.anvil()
    last_error = ""
    for _ in range(3):  # a free port can be taken between our probe and anvil's bind: try another
        port = free_port()
        cmd = [
            str(binary),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--chain-id", str(chain_id),
            "--mnemonic", DEV_MNEMONIC,
            "--accounts", str(DEV_ACCOUNT_COUNT),
            "--balance", str(DEV_BALANCE_ETH),
        ]  # fmt: skip
        if block_time is not None:
            cmd += ["--block-time", str(block_time)]
        if mixed_mining:
            cmd += ["--mixed-mining"]
        if slots_in_an_epoch is not None:
            cmd += ["--slots-in-an-epoch", str(slots_in_an_epoch)]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=detach
            )
        node = AnvilNode(process, chain_id, port, log_path)
        if _wait_ready(node, ready_timeout):
            return node
        node.stop()
        last_error = log_path.read_text(errors="replace")[-2000:]
    raise AnvilError(f"anvil (chain id {chain_id}) did not start; the end of {log_path}:\n{last_error}")


def _wait_ready(node: AnvilNode, timeout: float) -> bool:
    w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 2}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            return False
        try:
            if w3.eth.chain_id == node.chain_id:
                return True
        except Exception:  # not listening yet
            pass
        time.sleep(0.05)
    return False
