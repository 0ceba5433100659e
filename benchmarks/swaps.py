"""Atomic swaps on the devnet: swaps per second, latency and gas per phase, through the real daemons.

A fresh devnet (L1, bank-a, bank-b on anvil, the embedded broker), the hub service and both daemons as
processes, as `xrelay demo` runs them; `relayer.devnet.swapping.SwapPair` drives the operators and the
user. Both operators agree terms (bank-a proposes, bank-b accepts: W = least_window(the devnet's L1
priority window, batch.max_wait_seconds) + 60 s) and bank-b quotes 2,000 Y per gold with a 30 bps fee.
Every swap is 0.1 gold for at least its quote, so each completes.

1. One swap alone, the desks' first: its latency with nothing else in flight, and its gas, where
   phase 2 deploys X's BridgedToken on bank-b and phase 3 Y's on bank-a (their first arrivals).
2. N concurrent swaps: the user approves the desk once, then N `initiate` transactions, signed
   beforehand with consecutive nonces, are sent back to back. A swap's latency runs from its
   initiate's submission to bank-a's daemon executing bank-b's result (phase 3: the user paid, A's
   desk state final; `executed_at` in bank-a's store); throughput is N / (the last phase 3 - the first
   submission). "phase 1 leg" is the part up to bank-b's daemon executing the phase-1 message.

Gas is gasUsed from the receipts (the 21,000 base and calldata included): phase 1 is each initiate
transaction on bank-a; phase 2 is bank-b's Inbox transactions that executed the phase-1 messages
(executeMany, several messages each), per swap its share; phase 3 is bank-a's Inbox transactions that
executed bank-b's results, likewise. L1 is the swap's share of the commitBatch of the batch that
carried its phase-1 message plus that of its result's. `benchmarks.swap_gas` gives the contract-level
figures of single swaps, each message executed alone.

Figures only, never assertions. A failed run keeps its state directory (logs in <state_dir>/logs/).

    python -m benchmarks.swaps [--out FILE] [--swaps N] [--capacity C]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_typing import HexStr
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from web3.logs import DISCARD
from web3.types import TxReceipt

from benchmarks import arguments, report
from benchmarks.relay import blast, percentile, sign_all
from bridge_contracts.swaps import PRICE_ONE, SwapState, quote
from hub.delivery import message_key
from relayer.config import load as load_config
from relayer.devnet import devnet
from relayer.devnet.services import Services
from relayer.devnet.swapping import Ended, SwapPair, settled
from relayer.pipeline.swaps import least_window
from relayer.store import Store

PRICE = 2000 * PRICE_ONE
FEE_BPS = 30
AMOUNT_X = PRICE_ONE // 10  # 0.1 gold a swap: 199.4 Y, so the desk's 100,000 Y lasts 500 swaps
WINDOW_MARGIN = 60
TIMEOUT = 600.0


class BenchError(RuntimeError):
    """The run could not measure what it was to measure; the message says why."""


@dataclass(frozen=True)
class Leg:
    """One swap's messages as the daemons' stores have them."""

    started: float  # the initiate's submission, wall time
    phase_2_at: float  # bank-b's daemon executed the phase-1 message
    ended_at: float  # bank-a's daemon executed bank-b's result
    initiate_gas: int
    phase_1: str  # message ids
    result: str


class Bench:
    def __init__(self, swaps: int, capacity: int, console: Console) -> None:
        self.n = swaps
        self.capacity = capacity
        self.console = console
        self.state_dir = Path(tempfile.mkdtemp(prefix="xrelay-bench-swaps-"))

    def run(self) -> dict[str, Any]:
        ok = False
        try:
            with self.console.status("devnet up (L1, bank-a, bank-b; dev key)"):
                self.manifest = devnet.up(self.state_dir, l2=2, capacities=(self.capacity,))
            services = Services(self.state_dir)
            try:
                with self.console.status("hub service and both daemons"):
                    services.start()
                results = self._measure()
                ok = True
                return results
            finally:
                services.stop()
                devnet.down(self.state_dir)
        finally:
            if ok:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            else:
                self.console.print(f"state and logs kept in {self.state_dir}")

    # --- helpers ------------------------------------------------------------------------------

    def _store(self, name: str) -> Store:
        entry = next(c for c in self.manifest["chains"] if c["name"] == name)
        return Store(load_config(entry["config"]).store.path)

    def _until(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not check():
            if time.monotonic() > deadline:
                raise BenchError(f"waited {TIMEOUT:.0f} s for {what}")
            time.sleep(0.25)

    def _wait(self, description: str, swap_ids: list[bytes]) -> list[Ended]:
        """SwapPair.wait, with a progress bar."""
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} ended"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console) as progress:
            task = progress.add_task(description, total=len(swap_ids))
            return self.pair.wait(
                swap_ids, timeout=TIMEOUT, on_change=lambda done, _: progress.update(task, completed=done)
            )

    def _initiate(self, count: int) -> tuple[list[bytes], list[float], list[TxReceipt]]:
        """`count` initiates of AMOUNT_X for at least its quote, signed beforehand and sent back to back
        (the desk approved for all of them first): swap ids, submission times, receipts."""
        pair = self.pair
        pair.on_a.send(pair.gold.functions.approve(pair.desk_a.address, count * AMOUNT_X))
        terms_id = bytes.fromhex(self.terms_id[2:])
        call = pair.desk_a.functions.initiate(terms_id, AMOUNT_X, quote(AMOUNT_X, PRICE, FEE_BPS))
        _, raw = sign_all(pair.on_a, pair.user, [call] * count)
        sent = blast(pair.on_a, raw, timeout=TIMEOUT)
        ids = []
        for receipt in sent.receipts:
            (event,) = pair.desk_a.events.SwapRecorded().process_receipt(receipt, errors=DISCARD)
            ids.append(bytes(event["args"]["swapId"]))
        return ids, sent.submitted, sent.receipts

    def _legs(self, ended: list[Ended], submitted: list[float], receipts: list[TxReceipt]) -> list[Leg]:
        a_id, b_id = self.pair.a["chain_id"], self.pair.b["chain_id"]
        keys = [
            (message_key(a_id, e.on_a.message_nonce), message_key(b_id, e.on_b.message_nonce)) for e in ended
        ]

        def executed(name: str, ids: list[str]) -> bool:
            with self._store(name) as store:
                return all(getattr(store.message(i), "executed_at", None) is not None for i in ids)

        # the desks are final; the daemons record the executions right after their receipts
        self._until(
            "bank-b's store to have every phase 1 executed", lambda: executed("bank-b", [p for p, _ in keys])
        )
        self._until(
            "bank-a's store to have every result executed", lambda: executed("bank-a", [r for _, r in keys])
        )
        with self._store("bank-a") as on_a, self._store("bank-b") as on_b:
            legs = []
            for (phase_1, result), started, receipt in zip(keys, submitted, receipts, strict=True):
                at_b, at_a = on_b.message(phase_1), on_a.message(result)
                assert at_b is not None and at_b.executed_at is not None
                assert at_a is not None and at_a.executed_at is not None
                legs.append(
                    Leg(started, at_b.executed_at, at_a.executed_at, receipt["gasUsed"], phase_1, result)
                )
        return legs

    def _exec_gas(self, name: str, ids: list[str]) -> tuple[float, int]:
        """The gas of `name`'s Inbox transactions that executed messages `ids`, shared by the messages
        each executed, per message; and how many transactions."""
        chain = self.pair.on_a if name == "bank-a" else self.pair.on_b
        with self._store(name) as store:
            incoming = [m for m in store.messages(direction="in") if m.exec_tx is not None]
        wanted = set(ids)
        txs = {m.exec_tx for m in incoming if m.id in wanted}
        if sum(1 for m in incoming if m.id in wanted) != len(ids):
            raise BenchError(f"{name}'s store lacks the execution transaction of some messages")
        total = 0.0
        for tx in txs:
            assert tx is not None
            gas = chain.w3.eth.get_transaction_receipt(HexStr(tx))["gasUsed"]
            in_tx = [m for m in incoming if m.exec_tx == tx]
            total += gas * sum(1 for m in in_tx if m.id in wanted) / len(in_tx)
        return total / len(ids), len(txs)

    def _l1_gas(self, legs: list[Leg]) -> float:
        """Per swap: its phase-1 message's share of bank-a's commitBatch plus its result's of bank-b's."""
        total = 0
        for name, ids in (
            ("bank-a", [leg.phase_1 for leg in legs]),
            ("bank-b", [leg.result for leg in legs]),
        ):
            with self._store(name) as store:
                for i in ids:
                    m = store.message(i)
                    batch = None if m is None or m.batch_number is None else store.batch(m.batch_number)
                    if batch is None or batch.commit_gas is None:
                        raise BenchError(f"{name}'s store has no committed batch for {i}")
                    total += batch.commit_gas // batch.count
        return total / len(legs)

    def _gas(self, legs: list[Leg]) -> dict[str, Any]:
        phase_2, phase_2_txs = self._exec_gas("bank-b", [leg.phase_1 for leg in legs])
        phase_3, phase_3_txs = self._exec_gas("bank-a", [leg.result for leg in legs])
        return {
            "initiate_gas_p50": round(statistics.median(leg.initiate_gas for leg in legs)),
            "phase2_gas_per_swap": round(phase_2),
            "phase2_txs": phase_2_txs,
            "phase3_gas_per_swap": round(phase_3),
            "phase3_txs": phase_3_txs,
            "l1_commit_gas_per_swap": round(self._l1_gas(legs)),
        }

    # --- the runs -----------------------------------------------------------------------------

    def _measure(self) -> dict[str, Any]:
        self.pair = pair = SwapPair(self.manifest, "bank-a", "bank-b")
        max_wait = load_config(pair.b["config"]).batch.max_wait_seconds
        window = least_window(devnet.PRIORITY_WINDOW_SECONDS, max_wait) + WINDOW_MARGIN
        terms = pair.terms(
            window=window, price_min=1900 * PRICE_ONE, price_max=2100 * PRICE_ONE, fee_bps=FEE_BPS
        )
        with self.console.status("terms: bank-a proposes, bank-b accepts"):
            started = time.monotonic()
            self.terms_id = pair.agree(terms)
            agree_seconds = time.monotonic() - started
        pair.quote(PRICE)
        before = pair.ledger()

        ids, submitted, receipts = self._initiate(1)
        first = self._legs(self._wait("the first swap, alone", ids), submitted, receipts)
        ids, submitted, receipts = self._initiate(self.n)
        ended = self._wait(f"{self.n} concurrent swaps", ids)
        legs = self._legs(ended, submitted, receipts)

        outcomes = [e.on_a.state for e in ended]
        after = pair.ledger()
        latencies = [leg.ended_at - leg.started for leg in legs]
        phase_1_leg = [leg.phase_2_at - leg.started for leg in legs]
        seconds = max(leg.ended_at for leg in legs) - min(leg.started for leg in legs)
        swapped = self.n + 1
        return {
            "swaps": self.n,
            "capacity": self.capacity,
            "amount_x": str(AMOUNT_X),
            "window_seconds": window,
            "agree_seconds": round(agree_seconds, 2),
            "first": {"latency_seconds": round(first[0].ended_at - first[0].started, 3), **self._gas(first)},
            "concurrent": {
                "swaps_per_second": round(self.n / seconds, 3),
                "seconds": round(seconds, 3),
                "latency_p50_seconds": round(percentile(latencies, 50), 3),
                "latency_p90_seconds": round(percentile(latencies, 90), 3),
                "latency_max_seconds": round(max(latencies), 3),
                "phase_1_leg_p50_seconds": round(percentile(phase_1_leg, 50), 3),
                "completed": sum(1 for o in outcomes if o == SwapState.COMPLETED),
                **self._gas(legs),
            },
            "ledger": {
                "x_user_change": str(after["X user"] - before["X user"]),
                "y_user_change": str(after["Y user"] - before["Y user"]),
                "expected_y_user_change": str(swapped * quote(AMOUNT_X, PRICE, FEE_BPS)),
                "problems": settled(after),
            },
        }


def table(results: dict[str, Any]) -> str:
    first, many = results["first"], results["concurrent"]
    n = results["swaps"]
    rows = [
        ("terms agreed (propose -> both desks)", f"{results['agree_seconds']:.2f} s", ""),
        ("", "first swap", f"{n} concurrent"),
        ("completed", "1", f"{many['completed']}/{n}"),
        ("swaps per second", "", f"{many['swaps_per_second']}"),
        (
            "initiate -> redeemed, p50",
            f"{first['latency_seconds']:.2f} s",
            f"{many['latency_p50_seconds']:.2f} s",
        ),
        ("initiate -> redeemed, p90", "", f"{many['latency_p90_seconds']:.2f} s"),
        ("initiate -> redeemed, max", "", f"{many['latency_max_seconds']:.2f} s"),
        ("initiate -> phase 2 on bank-b, p50", "", f"{many['phase_1_leg_p50_seconds']:.2f} s"),
        (
            "phase 1 gas: initiate on bank-a (p50)",
            f"{first['initiate_gas_p50']:,}",
            f"{many['initiate_gas_p50']:,}",
        ),
        (
            "phase 2 gas: bank-b's Inbox, per swap",
            f"{first['phase2_gas_per_swap']:,}",
            f"{many['phase2_gas_per_swap']:,}",
        ),
        ("  in Inbox transactions", f"{first['phase2_txs']}", f"{many['phase2_txs']}"),
        (
            "phase 3 gas: bank-a's Inbox, per swap",
            f"{first['phase3_gas_per_swap']:,}",
            f"{many['phase3_gas_per_swap']:,}",
        ),
        ("  in Inbox transactions", f"{first['phase3_txs']}", f"{many['phase3_txs']}"),
        (
            "L1 gas: commitBatch shares, per swap",
            f"{first['l1_commit_gas_per_swap']:,}",
            f"{many['l1_commit_gas_per_swap']:,}",
        ),
    ]
    width = max(len(r[0]) for r in rows) + 2
    ledger = results["ledger"]
    adds_up = "everything adds up" if not ledger["problems"] else "; ".join(ledger["problems"])
    setting = f"devnet, capacity {results['capacity']}, W {results['window_seconds']} s"
    head = f"atomic swaps, 0.1 gold each ({setting})"
    lines = [head] + [f"{name:<{width}}{one:>14}{many_:>16}" for name, one, many_ in rows]
    lines.append(f"ledger: {adds_up}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = arguments("swaps", __doc__ or "")
    parser.add_argument("--swaps", type=int, default=20, help="concurrent swaps (default 20)")
    parser.add_argument("--capacity", type=int, default=16, help="batch capacity of both chains (default 16)")
    args = parser.parse_args(argv)
    if not 1 <= args.swaps <= 400:
        parser.error("--swaps must be 1..400 (the desk's inventory)")
    results = Bench(args.swaps, args.capacity, Console(highlight=False)).run()
    report(table(results), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
