"""`xrelay demo` (what `make demo` runs): the whole system on a fresh devnet.

It brings up the L1 and two institution chains, the hub service (with the embedded broker) and
both institutions' daemons as separate processes; sends from bank-a to bank-b a plain message, a
method call carrying bank-a's native token, and a tokenized deposit, then sends part of that deposit
back from bank-b; shows each message's progress, then a table per message and the chain balances the
L1 Hub holds; and shuts everything down. DEVNET ONLY: it uses anvil's public development keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from web3 import Web3

from bridge_contracts import anvil
from bridge_contracts.chain import Chain
from bridge_contracts.messages import sent_messages
from hub.delivery import message_key
from relayer.config import load as load_config
from relayer.devnet import devnet
from relayer.devnet.services import Services
from relayer.store import OutStatus, Store

STEPS = (OutStatus.SENT, OutStatus.BATCHED, OutStatus.SETTLED, OutStatus.PUSHED, OutStatus.EXECUTED)
TIMEOUT = 300.0


@dataclass
class Sent:
    label: str
    route: str
    value: str
    key: str
    source: str  # institution names
    dest: str
    receipt: Any


class Demo:
    def __init__(self, state_dir: Path, console: Console) -> None:
        self.state_dir = state_dir
        self.console = console
        self.user = anvil.dev_account(devnet.USER_ACCOUNT)

    def run(self, *, capacity: int) -> None:
        if devnet.read_manifest(self.state_dir.resolve()) is not None:
            devnet.down(self.state_dir)  # what an interrupted demo left behind
        with self.console.status(
            "starting the devnet: L1, bank-a, bank-b; deploying; making the dev proving key"
        ):
            self.manifest = devnet.up(self.state_dir, l2=2, capacity=capacity)
        try:
            with Services(self.state_dir) as services:
                with self.console.status("starting the hub service, the broker and both daemons"):
                    services.start()
                self._main()
        finally:
            devnet.down(self.state_dir)
            self.console.print("devnet down: every process stopped")

    def _chain(self, name: str) -> dict[str, Any]:
        return next(c for c in self.manifest["chains"] if c["name"] == name)

    def _main(self) -> None:
        a, b = self._chain("bank-a"), self._chain("bank-b")
        on_a, on_b = Chain(a["rpc_url"], self.user), Chain(b["rpc_url"], self.user)
        recorder = on_b.contract("CallRecorder", b["contracts"]["call_recorder"])
        router_a = on_a.contract("AssetRouter", a["contracts"]["asset_router"])
        native_a = bytes(router_a.functions.nativeAssetId().call())
        token_a = bytes(router_a.functions.assetIdOfToken(a["contracts"]["deposit_token"]).call())
        one = 10**18
        ab, ba = (on_a, a, b), (on_b, b, a)

        def call(note: bytes) -> bytes:
            return bytes.fromhex(recorder.encode_abi("receiveMessage", [note])[2:])

        first = [
            self._send(ab, "plain", recorder.address, call(b"hello from bank-a")),
            self._send(
                ab, "call with value", recorder.address, call(b"invoice 42"), (native_a, 3 * one // 2)
            ),
            self._send(ab, "asset", self.user.address, b"", (token_a, 100 * one)),
        ]
        self._wait(first)
        back = [self._send(ba, "asset back", self.user.address, b"", (token_a, 40 * one))]
        self._wait(back)
        self._report(first + back, native_a, token_a)

    def _send(
        self,
        route: tuple[Chain, dict[str, Any], dict[str, Any]],
        label: str,
        target: str,
        data: bytes,
        value: tuple[bytes, int] | None = None,
    ) -> Sent:
        """Send a message, carrying `value` (asset id, amount) if given, from the route's source chain
        (as the demo user) to its destination."""
        chain, source, dest = route
        outbox = chain.contract("Outbox", source["contracts"]["outbox"])
        if value is None:
            receipt = chain.send(outbox.functions.send(dest["chain_id"], target, data))
            shown = "-"
        else:
            asset, amount = value
            router = chain.contract("AssetRouter", source["contracts"]["asset_router"])
            info = router.functions.assets(asset).call()
            native = info[1] == "0x0000000000000000000000000000000000000001" and info[0] == source["chain_id"]
            if not native and info[0] == source["chain_id"]:
                token = chain.contract("DevToken", info[2])
                chain.send(token.functions.approve(router.address, amount))
            fn = outbox.functions.sendWithAsset(dest["chain_id"], target, data, asset, amount)
            receipt = chain.send(fn, value=amount if native else 0)
            shown = f"{Web3.from_wei(amount, 'ether')} {self._symbol(router, asset)}"
        (sent,) = sent_messages(outbox, [receipt])
        key = message_key(sent.message.source_chain_id, sent.message.nonce)
        route_text = f"{source['name'].removeprefix('bank-')}→{dest['name'].removeprefix('bank-')}"
        return Sent(label, route_text, shown, key, source["name"], dest["name"], receipt)

    @staticmethod
    def _symbol(router: Any, asset: bytes) -> str:
        data = router.functions.assetDataOf(asset).call()
        return str(Web3().codec.decode(["uint256", "address", "string", "string", "uint8"], data)[3])

    def _store(self, name: str) -> Store:
        return Store(load_config(self._chain(name)["config"]).store.path)

    def _wait(self, sent: list[Sent]) -> None:
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console) as progress:
            tasks = {
                s.key: progress.add_task(f"{s.key} {s.label} ({s.route})", total=len(STEPS), status="sent")
                for s in sent
            }
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                pending = 0
                for s in sent:
                    with self._store(s.source) as store:
                        m = store.message(s.key)
                    if m is None:
                        progress.update(tasks[s.key], completed=0, status="waiting for the watcher")
                        pending += 1
                        continue
                    done = STEPS.index(m.status) + 1 if m.status in STEPS else 0
                    progress.update(tasks[s.key], completed=done, status=str(m.status))
                    pending += m.status != OutStatus.EXECUTED
                    if m.status in (OutStatus.FAILED, OutStatus.REFUSED):
                        raise devnet.DevnetError(f"message {s.key} {m.status}: {m.error}")
                if not pending:
                    return
                time.sleep(0.3)
        raise devnet.DevnetError(
            f"messages not executed within {TIMEOUT:.0f} s; see the logs in {self.state_dir}/logs"
        )

    def _report(self, sent: list[Sent], native_a: bytes, token_a: bytes) -> None:
        table = Table(title="messages", box=box.SIMPLE_HEAD)
        for column in ("id", "what", "route", "value", "batch", "proving", "latency", "L1 gas", "L2 gas"):
            table.add_column(
                column, justify="right" if column.endswith(("gas", "latency", "proving")) else "left"
            )
        for s in sent:
            with self._store(s.source) as source, self._store(s.dest) as dest:
                out, inn = source.message(s.key), dest.message(s.key)
                assert out is not None and inn is not None and out.batch_number is not None
                batch = source.batch(out.batch_number)
            assert batch is not None and inn.executed_at is not None and out.sent_at is not None
            table.add_row(
                s.key,
                s.label,
                s.route,
                s.value,
                str(out.batch_number),
                "-" if batch.proving_seconds is None else f"{batch.proving_seconds:.2f} s",
                f"{inn.executed_at - out.sent_at:.1f} s",
                f"{(batch.commit_gas or 0) // batch.count:,}",
                "-" if inn.exec_gas is None else f"{inn.exec_gas:,}",  # None: found executed after a restart
            )
        self.console.print(table)
        self.console.print(
            "latency: from the source daemon seeing the message to its execution on the destination; "
            "L1 gas: the message's share of its batch's commitBatch; L2 gas: its share of executeMany "
            "(an asset's first arrival deploys its bridged token)."
        )
        a, b = self._chain("bank-a"), self._chain("bank-b")
        hub = Chain(self.manifest["l1"]["rpc_url"], self.user).contract(
            "Hub", self.manifest["l1"]["contracts"]["hub"]
        )
        router_a = Chain(a["rpc_url"], self.user).contract("AssetRouter", a["contracts"]["asset_router"])
        router_b = Chain(b["rpc_url"], self.user).contract("AssetRouter", b["contracts"]["asset_router"])
        balances = Table(title="bank-a's assets: where the value is", box=box.SIMPLE_HEAD)
        for column in ("asset", "locked on bank-a", "bridged on bank-b", "bank-b's balance on L1"):
            balances.add_column(column, justify="right")
        for asset in (native_a, token_a):
            bridged = router_b.functions.assets(asset).call()[2]
            supply = (
                Chain(b["rpc_url"], self.user)
                .contract("BridgedToken", bridged)
                .functions.totalSupply()
                .call()
            )
            balances.add_row(
                self._symbol(router_a, asset),
                _ether(router_a.functions.locked(asset).call()),
                _ether(supply),
                _ether(hub.functions.balances(b["chain_id"], asset).call()),
            )
        self.console.print(balances)


def _ether(amount: int) -> str:
    return f"{Web3.from_wei(amount, 'ether'):,}"
