"""`xrelay demo` (what `make demo` runs): the whole system on a fresh devnet.

It brings up the L1 and two institution chains, the hub service (with the embedded broker) and
both institutions' daemons as separate processes; sends from bank-a to bank-b a plain message, a
method call carrying bank-a's native token, and a tokenized deposit, then sends part of that deposit
back from bank-b; shows each message's progress, then a table per message and the chain balances the
L1 Hub holds.

Then an atomic swap of bank-a's tokenized gold (X) for bank-b's stablecoin (its deposit token, Y),
through `relayer.devnet.swapping.SwapPair`: bank-a's operator proposes terms and bank-b's accepts them
through their daemons' admin APIs (the window W long enough for bank-b's L1 priority window:
`least_window` plus a margin), bank-b quotes 2,000 Y per gold with a 30 bps fee, and the user starts two
swaps, one that completes and one that asks for more than the quote and is refunded for slippage. It
shows their progress through the three phases, a table of both swaps, and where every unit of X and Y
is, before and after, on both chains and L1, with whether it all adds up (`settled`). Then everything
is shut down. DEVNET ONLY: it uses anvil's public development keys.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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
from bridge_contracts.swaps import PRICE_ONE, SwapReason, SwapState, quote
from hub.delivery import message_key
from relayer.config import load as load_config
from relayer.devnet import devnet
from relayer.devnet.services import Services
from relayer.devnet.swapping import FINAL, Ended, SwapPair, settled
from relayer.pipeline.swaps import least_window
from relayer.store import OutStatus, Store, StoredMessage

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

    def run(self, *, capacities: Sequence[int]) -> None:
        if devnet.read_manifest(self.state_dir.resolve()) is not None:
            devnet.down(self.state_dir)  # what an interrupted demo left behind
        with self.console.status(
            "starting the devnet: L1, bank-a, bank-b; deploying; making the dev proving key"
        ):
            self.manifest = devnet.up(self.state_dir, l2=2, capacities=capacities)
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
        SwapDemo(self).run()

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
        with _progress(self.console) as progress:
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


# --- the atomic swap ------------------------------------------------------------------------------

PRICE = 2000 * PRICE_ONE  # Y base units per 1e18 gold base units: 2,000 Y per gold
FEE_BPS = 30
PRICE_BAND = (1900 * PRICE_ONE, 2100 * PRICE_ONE)
WINDOW_MARGIN = 60  # seconds on top of the least window bank-b accepts
SWAP_STEPS = ("phase 1 sent", "phase 1 settled", "phase 2 on bank-b", "result settled", "phase 3 on bank-a")
SETTLED_OR_LATER = (OutStatus.SETTLED, OutStatus.PUSHED, OutStatus.EXECUTED)


@dataclass
class Started:
    label: str
    swap_id: bytes
    amount_x: int
    min_amount_y: int
    started_at: float  # wall time, just before the user's approve and initiate
    seen_ended_at: float | None = None  # wall time the demo saw bank-a's desk record the result


class SwapDemo:
    """The demo's atomic swap: terms agreed by both operators, bank-b's quote, a swap that completes and
    one refunded for slippage, their progress, and where X and Y are before and after."""

    def __init__(self, demo: Demo) -> None:
        self.demo, self.console = demo, demo.console
        self.pair = SwapPair(demo.manifest, "bank-a", "bank-b")
        self.x = Demo._symbol(self.pair.router_a, self.pair.asset_x)
        self.y = Demo._symbol(self.pair.router_b, self.pair.asset_y)

    def run(self) -> None:
        pair = self.pair
        max_wait = load_config(pair.b["config"]).batch.max_wait_seconds
        window = least_window(devnet.PRIORITY_WINDOW_SECONDS, max_wait) + WINDOW_MARGIN
        terms = pair.terms(window=window, price_min=PRICE_BAND[0], price_max=PRICE_BAND[1], fee_bps=FEE_BPS)
        with self.console.status("swap terms: bank-a's operator proposes them, bank-b's accepts"):
            terms_id = pair.agree(terms)
        pair.quote(PRICE)
        low, high = (_ether(p) for p in PRICE_BAND)
        least = f"least_window({devnet.PRIORITY_WINDOW_SECONDS} s priority window, {max_wait:g} s max wait)"
        self.console.print(
            f"swap terms {terms_id[:10]}… agreed and on both desks: {self.x} (bank-a's tokenized gold) "
            f"for {self.y} (bank-b's stablecoin), band {low}..{high} {self.y} per {self.x}, fee {FEE_BPS} "
            f"bps, window W {window} s ({least} + {WINDOW_MARGIN} s); bank-b quotes {_ether(PRICE)} "
            f"{self.y} per {self.x}"
        )
        before = pair.ledger()
        one = 10**18
        amount = 3 * one // 2
        swaps = [
            self._initiate("swap", terms_id, amount, quote(amount, PRICE, FEE_BPS)),
            # asks for 2,000 Y for one gold: the quote after the fee is 1,994
            self._initiate("slippage", terms_id, one, PRICE),
        ]
        self._follow(swaps)
        ended = pair.wait([s.swap_id for s in swaps], timeout=30)  # all ended: what both desks have
        after = pair.ledger()
        self._swaps_table(swaps, ended)
        self._ledger_table(before, after)
        problems = settled(after)
        if problems:
            for problem in problems:
                self.console.print(f"[red]does not add up:[/red] {problem}")
        else:
            self.console.print(
                f"[green]everything adds up:[/green] the {self.x} locked on bank-a is the {self.x} bridged "
                f"on bank-b, which L1 says bank-b holds; the {self.y} locked on bank-b is the {self.y} "
                "bridged on bank-a, which L1 says bank-a holds; bank-b's desk holds exactly what it owns "
                "and bank-a's nothing."
            )
        outcomes = [(e.on_a.state, e.on_a.reason, e.on_b.state) for e in ended]
        expected = [
            (SwapState.COMPLETED, SwapReason.NONE, SwapState.COMPLETED),
            (SwapState.REFUNDED, SwapReason.SLIPPAGE, SwapState.REFUNDED),
        ]
        if problems or outcomes != expected:
            raise devnet.DevnetError(f"the swaps did not end as they should: {outcomes}; {problems}")

    def _initiate(self, label: str, terms_id: str, amount_x: int, min_amount_y: int) -> Started:
        started_at = time.time()
        swap_id = self.pair.initiate(terms_id, amount_x, min_amount_y)
        return Started(label, swap_id, amount_x, min_amount_y, started_at)

    def _message(self, name: str, chain_id: int, nonce: int) -> StoredMessage | None:
        """Message (chain_id, nonce) as `name`'s daemon has it."""
        with self.demo._store(name) as store:
            return store.message(message_key(chain_id, nonce))

    def _step(self, s: Started) -> tuple[int, str]:
        """How far a swap is (SWAP_STEPS done) and what to say about it."""
        pair = self.pair
        on_a = pair.state(pair.desk_a, s.swap_id)
        if on_a.state in FINAL:
            return len(SWAP_STEPS), _outcome(on_a.state, on_a.reason)
        on_b = pair.state(pair.desk_b, s.swap_id)
        if on_b.state == SwapState.NONE:
            m = self._message("bank-a", pair.a["chain_id"], on_a.message_nonce)
            status = "sent" if m is None else str(m.status)
            return 2 if m is not None and m.status in SETTLED_OR_LATER else 1, f"phase 1 {status}"
        m = self._message("bank-b", pair.b["chain_id"], on_b.message_nonce)
        status = "sent" if m is None else str(m.status)
        done = 4 if m is not None and m.status in SETTLED_OR_LATER else 3
        return done, f"bank-b {_outcome(on_b.state, on_b.reason)}; result {status}"

    def _follow(self, swaps: list[Started]) -> None:
        with _progress(self.console) as progress:
            tasks = {
                s.swap_id: progress.add_task(
                    f"{_short(s.swap_id)} {s.label}", total=len(SWAP_STEPS), status="initiated"
                )
                for s in swaps
            }
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                for s in swaps:
                    if s.seen_ended_at is not None:
                        continue
                    done, status = self._step(s)
                    progress.update(tasks[s.swap_id], completed=done, status=status)
                    if done == len(SWAP_STEPS):
                        s.seen_ended_at = time.time()
                if all(s.seen_ended_at is not None for s in swaps):
                    return
                time.sleep(0.3)
        raise devnet.DevnetError(
            f"swaps not ended within {TIMEOUT:.0f} s; see the logs in {self.demo.state_dir}/logs"
        )

    def _ended_at(self, s: Started, ended: Ended) -> float:
        """When bank-a's daemon executed B's result (phase 3), or when the demo saw it."""
        m = self._message("bank-a", self.pair.b["chain_id"], ended.on_b.message_nonce)
        if m is not None and m.executed_at is not None:
            return float(m.executed_at)
        assert s.seen_ended_at is not None
        return s.seen_ended_at

    def _swaps_table(self, swaps: list[Started], ended: list[Ended]) -> None:
        table = Table(title="atomic swaps", box=box.SIMPLE_HEAD)
        for column in (
            "swap",
            "what",
            self.x,
            f"min {self.y}",
            f"{self.y} paid",
            "outcome",
            "reason",
            "time",
        ):
            table.add_column(
                column, justify="left" if column in ("swap", "what", "outcome", "reason") else "right"
            )
        for s, e in zip(swaps, ended, strict=True):
            outcome = e.on_a.state.name.lower()
            if e.on_b.state != e.on_a.state:
                outcome += f" (bank-b: {e.on_b.state.name.lower()})"
            table.add_row(
                _short(s.swap_id),
                s.label,
                _ether(s.amount_x),
                _ether(s.min_amount_y),
                _ether(e.on_a.amount_y),
                outcome,
                e.on_a.reason.word if e.on_a.reason != SwapReason.NONE else "-",
                f"{self._ended_at(s, e) - s.started_at:.1f} s",
            )
        self.console.print(table)
        self.console.print(
            "time: from the user's initiate on bank-a to bank-a's daemon executing bank-b's result "
            "(phase 3); phase 1 and the result are each batched, proven, settled on L1 and delivered."
        )

    def _ledger_table(self, before: dict[str, int], after: dict[str, int]) -> None:
        rows = (
            ("the user (on bank-a)", "X user", "Y user"),
            ("bank-a's desk", "X desk A", "Y desk A"),
            ("bank-b's desk", "X desk B", "Y desk B"),
            ("bank-b's desk: its own (held)", "X held by desk B", "Y held by desk B"),
            (f"locked at home ({self.x} on bank-a, {self.y} on bank-b)", "X locked on A", "Y locked on B"),
            (f"bridged supply ({self.x} on bank-b, {self.y} on bank-a)", "X bridged on B", "Y bridged on A"),
            ("L1 Hub: what the other chain holds", "X of B on L1", "Y of A on L1"),
        )
        table = Table(title=f"where every {self.x} and {self.y} is", box=box.SIMPLE_HEAD)
        table.add_column("where")
        for column in (self.x, "change", self.y, "change"):
            table.add_column(column, justify="right")
        for where, x, y in rows:
            table.add_row(
                where,
                _ether(after[x]),
                _change(after[x] - before[x]),
                _ether(after[y]),
                _change(after[y] - before[y]),
            )
        self.console.print(table)


def _short(swap_id: bytes) -> str:
    return f"0x{swap_id.hex()[:8]}…"


def _outcome(state: SwapState, reason: SwapReason) -> str:
    if state == SwapState.COMPLETED:
        return "swapped"
    return f"refunded: {reason.word}" if state == SwapState.REFUNDED else state.name.lower()


def _change(amount: int) -> str:
    return "" if amount == 0 else f"{'+' if amount > 0 else '-'}{_ether(abs(amount))}"


def _progress(console: Console) -> Progress:
    """A bar per message or swap: what it is, how far, its status word, the time it has taken."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=console)


def _ether(amount: int) -> str:
    return f"{Web3.from_wei(amount, 'ether'):,}"
