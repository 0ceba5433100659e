"""End-to-end relay throughput and latency on the devnet, beside the raw capacity of the same node.

For each configuration of batch capacities (one capacity, or several proven adaptively: the daemon
proves each batch with the smallest capacity that holds it), on each broker (the embedded one, and
Mosquitto with TLS, logins and ACLs; envelopes are always sealed to the peer's bus key): a fresh devnet
(L1, bank-a, bank-b on anvil with 1 s blocks), the hub service and both daemons as processes, as
`xrelay demo` runs them. Then:

0. latency: 8 messages a -> b one at a time, each sent once the one before it was executed: the
   latency of a message that waits for nothing but the pipeline (its batch closing, proving,
   settling, delivery, execution). The p50 target is checked on this.
1. relay: N plain messages (Outbox.send to bank-b's CallRecorder) from bank-a, signed beforehand with
   consecutive nonces and sent back to back without waiting for receipts; each message's submission
   wall time is recorded, and it is done when bank-b's store has it "executed". Throughput is
   N / (last executed_at - first submission), the pipeline's fill included (the target is checked on
   this); "after the first round" is the rate once the first round has executed (the messages
   executed later, over the time from that round to the last). Latency under the flood is
   executed_at - submission.
   Proving seconds and commit gas per batch come from bank-a's store, execute gas from bank-b's.
2. raw capacity of the same node for the same call: bank-b's daemon is stopped, M more messages go
   a -> b until bank-a's store has them "pushed" (settled on L1 and published), and this script
   executes them itself on bank-b's Inbox, one `Inbox.execute(message, proof)` transaction each,
   signed beforehand with consecutive nonces and sent back to back (batch paths rebuilt from bank-a's
   store, aggregated paths from the hub service, the root imported by bank-b's operator first).
   Raw capacity is M / (last receipt seen - first submission). When M fits in a block or two, that
   depends on where in the block interval the first submission fell: the JSON also gives the blocks
   it took, the gas limit per transaction and the block gas limit (their quotient is the node's
   ceiling in executes per block).

Both phases sign every transaction before the clock starts: signing is not what is measured. Figures
only, never assertions: the targets (throughput >= 0.5 x raw at the best configuration, p50 latency
< 5 s at every one) are reported beside them, and the relay's latency is broken down in a stage
table: when (p50 and p90, seconds after submission) the messages reached each status in bank-a's and
bank-b's stores. A failed run keeps its state directory (logs in <state_dir>/logs/).

    python -m benchmarks.relay [--out FILE] [--configs 8 64 256 8,64,256] [--brokers embedded mosquitto]
                               [--messages N] [--timeout S] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psutil
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import Nonce, TxParams, TxReceipt, Wei

from benchmarks import arguments, report
from bridge_contracts import anvil
from bridge_contracts.chain import Chain
from bridge_contracts.messages import MessageProof, message_id, sent_messages
from bridge_contracts.views import hub_batch
from hub.client import HubClient
from hub.delivery import message_key
from hub.indexer import AggregatedProof
from proofs.merkle import PoseidonTree
from relayer.config import load as load_config
from relayer.devnet import devnet
from relayer.devnet.services import Services
from relayer.store import InStatus, OutStatus, Store, StoredMessage

BLOCK_TIME = 1.0
IDLE_SECONDS = 20.0  # how long the daemons' idle CPU is measured, nothing to relay
CONFIGS = ((8,), (64,), (256,), (8, 64, 256))
BROKERS = ("embedded", "mosquitto")
TIMEOUT = 900.0
GAS_MARGIN = 1.25  # over the first transaction's estimate, for every transaction of a phase
POLL = 0.25
TARGET_RATIO = 0.5  # relay throughput / raw capacity, at the best configuration
TARGET_P50 = 5.0  # seconds, with 1 s blocks
PACED = 8  # messages sent one at a time for the latency figure
LOG_TAIL = 15
STAGES_OUT = (OutStatus.SENT, OutStatus.BATCHED, OutStatus.SETTLED, OutStatus.PUSHED)
STAGES_IN = (InStatus.RECEIVED, InStatus.VERIFIED, InStatus.EXECUTING, InStatus.EXECUTED)


class BenchError(RuntimeError):
    """The run could not measure what it was to measure; the message says why."""


@dataclass(frozen=True)
class Blast:
    """Transactions sent back to back: each one's hash and submission wall time, and when the last
    receipt was seen (wall time)."""

    hashes: list[HexBytes]
    submitted: list[float]
    receipts: list[TxReceipt]
    last_receipt_at: float

    @property
    def seconds(self) -> float:
        return self.last_receipt_at - self.submitted[0]

    @property
    def submit_seconds(self) -> float:
        return self.submitted[-1] - self.submitted[0]


def _fees(chain: Chain) -> tuple[int, int]:
    """(maxFeePerGas, maxPriorityFeePerGas): far above the base fee, which full 1 s blocks raise by
    up to 12.5% a block, so that no transaction waits for the fee."""
    base = int(chain.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    tip = 10**9
    return max(20 * base, 10 * 10**9) + tip, tip


def sign_all(
    chain: Chain, account: LocalAccount, calls: Sequence[ContractFunction]
) -> tuple[int, list[bytes]]:
    """Every call signed by `account`, with consecutive nonces from its pending one, and one gas limit
    (returned with them): the first call's estimate with a margin (a phase's calls are the same call)."""
    gas = int(calls[0].estimate_gas({"from": account.address}) * GAS_MARGIN)
    nonce = chain.w3.eth.get_transaction_count(account.address, "pending")
    max_fee, tip = _fees(chain)
    raw = []
    for i, fn in enumerate(calls):
        params: TxParams = {
            "from": account.address,
            "nonce": Nonce(nonce + i),
            "gas": gas,
            "maxFeePerGas": Wei(max_fee),
            "maxPriorityFeePerGas": Wei(tip),
            "chainId": chain.chain_id,
            "value": Wei(0),
        }
        tx = fn.build_transaction(params)  # gas, fees, nonce and chain id given: nothing asked of the node
        raw.append(bytes(account.sign_transaction(cast(dict[str, Any], tx)).raw_transaction))
    return gas, raw


def blast(chain: Chain, raw: Sequence[bytes], *, timeout: float) -> Blast:
    """Send the signed transactions back to back, then wait for the last one's receipt (consecutive
    nonces of one account: it is mined last) and fetch the others'; every one must have succeeded."""
    w3 = chain.w3
    hashes, submitted = [], []
    for tx in raw:
        submitted.append(time.time())
        hashes.append(w3.eth.send_raw_transaction(tx))
    last = w3.eth.wait_for_transaction_receipt(hashes[-1], timeout=timeout, poll_latency=0.05)
    last_at = time.time()
    receipts = [w3.eth.wait_for_transaction_receipt(h, timeout=timeout) for h in hashes[:-1]] + [last]
    failed = [r for r in receipts if r["status"] != 1]
    if failed:
        raise BenchError(
            f"{len(failed)} of {len(receipts)} transactions failed, the first "
            f"{failed[0]['transactionHash'].to_0x_hex()} in block {failed[0]['blockNumber']}"
        )
    return Blast(hashes, submitted, receipts, last_at)


def _executed_at(m: StoredMessage) -> float:
    if m.executed_at is None:
        raise BenchError(f"message {m.id} is {m.status} but has no execution time")
    return m.executed_at


def _batch_number(m: StoredMessage) -> int:
    if m.batch_number is None:
        raise BenchError(f"message {m.id} is {m.status}, in no batch")
    return m.batch_number


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated linearly between the closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Run:
    """One configuration of capacities on one broker: the devnet and services up, the phases,
    everything down."""

    def __init__(  # noqa: PLR0917
        self,
        capacities: tuple[int, ...],
        messages: int,
        timeout: float,
        console: Console,
        keep: bool,
        broker: str,
    ) -> None:
        self.capacities = capacities
        self.name = f"{'/'.join(map(str, capacities))} on {broker}"
        self.broker = broker
        self.n = messages
        self.timeout = timeout
        self.console = console
        self.keep = keep
        self.user = anvil.dev_account(devnet.USER_ACCOUNT)
        label = "-".join(map(str, capacities))
        self.state_dir = Path(tempfile.mkdtemp(prefix=f"xrelay-bench-relay-{label}-{broker}-"))

    def run(self) -> dict[str, Any]:
        ok = False
        try:
            with self.console.status(f"{self.name}: devnet up (L1, bank-a, bank-b; dev keys)"):
                self.manifest = devnet.up(
                    self.state_dir,
                    l2=2,
                    block_time=BLOCK_TIME,
                    capacities=self.capacities,
                    broker=self.broker,
                )
            try:
                self.services = Services(self.state_dir)
                try:
                    with self.console.status(f"{self.name}: hub service and both daemons"):
                        self.services.start()
                    result = self._measure()
                    ok = True
                    return result
                finally:
                    self.services.stop()
            finally:
                devnet.down(self.state_dir)
        finally:
            if ok and not self.keep:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            else:
                if not ok:
                    self._show_logs()
                self.console.print(f"{self.name}: state and logs kept in {self.state_dir}")

    def _show_logs(self) -> None:
        for log in sorted((self.state_dir / "logs").glob("*.log")):
            if log.stem in ("l1", "bank-a", "bank-b"):
                continue  # the anvil nodes
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL:]
            self.console.print(f"[bold]{log}[/bold] (last {len(lines)} lines)")
            for line in lines:
                self.console.print(line, markup=False, highlight=False)

    # --- helpers ------------------------------------------------------------------------------

    def _entry(self, name: str) -> dict[str, Any]:
        return next(c for c in self.manifest["chains"] if c["name"] == name)

    def _store(self, name: str) -> Store:
        return Store(load_config(self._entry(name)["config"]).store.path)

    def _send_messages(self, label: str, count: int) -> tuple[Blast, list[str]]:
        """`count` plain messages bank-a -> bank-b's CallRecorder, back to back; the blast and the
        messages' ids in submission order."""
        a, b = self._entry("bank-a"), self._entry("bank-b")
        on_a = Chain(a["rpc_url"], self.user)
        outbox = on_a.contract("Outbox", a["contracts"]["outbox"])
        recorder = on_a.contract("CallRecorder", b["contracts"]["call_recorder"])

        def call(i: int) -> ContractFunction:
            note = f"{label} {i}".encode()
            data = bytes.fromhex(recorder.encode_abi("receiveMessage", [note])[2:])
            return outbox.functions.send(b["chain_id"], recorder.address, data)

        _, raw = sign_all(on_a, self.user, [call(i) for i in range(count)])
        sent = blast(on_a, raw, timeout=self.timeout)
        ids = []
        for receipt in sent.receipts:
            (event,) = sent_messages(outbox, [receipt])
            ids.append(message_key(event.message.source_chain_id, event.message.nonce))
        return sent, ids

    def _wait(self, description: str, name: str, ids: list[str], done: str) -> dict[str, StoredMessage]:
        """Poll `name`'s store until every one of `ids` has status `done`; their rows."""
        wanted = set(ids)
        bad = {"failed", "refused"}
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console) as progress:
            task = progress.add_task(description, total=len(ids), status="")
            deadline = time.monotonic() + self.timeout
            while True:
                with self._store(name) as store:
                    rows = {m.id: m for m in store.messages() if m.id in wanted}
                    if name == "bank-b":  # what bank-a has of the rest
                        with self._store("bank-a") as source:
                            behind = Counter(
                                str(m.status)
                                for m in source.messages(direction="out")
                                if m.id in wanted and m.id not in rows
                            )
                    else:
                        behind = Counter()
                statuses = Counter(str(m.status) for m in rows.values()) + behind
                finished = sum(m.status == done for m in rows.values())
                shown = " ".join(f"{s} {n}" for s, n in sorted(statuses.items()))
                progress.update(task, completed=finished, status=shown)
                failures = [m for m in rows.values() if m.status in bad]
                if failures:
                    first = failures[0]
                    raise BenchError(
                        f"{len(failures)} message(s) {first.status} on {name}, e.g. {first.id}: {first.error}"
                    )
                if finished == len(ids):
                    return rows
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{description}: {len(ids) - finished} of {len(ids)} messages not {done} on "
                        f"{name} within {self.timeout:.0f} s ({shown})"
                    )
                time.sleep(POLL)

    # --- the two phases -----------------------------------------------------------------------

    def _idle_cpu(self, seconds: float = IDLE_SECONDS) -> dict[str, float]:
        """Each daemon's CPU (with its prover processes), in % of one core, over `seconds` with nothing
        to relay."""
        processes = {}
        for name, daemon in self.services.daemons.items():
            assert daemon.process is not None
            root = psutil.Process(daemon.process.pid)
            processes[name] = [root, *root.children(recursive=True)]

        def cpu(procs: list[psutil.Process]) -> float:
            total = 0.0
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = p.cpu_times()
                    total += times.user + times.system
            return total

        before = {name: cpu(procs) for name, procs in processes.items()}
        time.sleep(seconds)
        return {
            name: round(100 * (cpu(procs) - before[name]) / seconds, 2) for name, procs in processes.items()
        }

    def _measure(self) -> dict[str, Any]:
        idle = self._idle_cpu()
        paced = self._paced(PACED)
        relay = self._relay()
        raw = self._raw(self.n)
        ratio = relay["messages_per_second"] / raw["messages_per_second"]
        return {
            "capacities": list(self.capacities),
            "broker": self.broker,
            "messages": self.n,
            "raw_messages": self.n,
            "idle_cpu_percent": idle,
            "paced": paced,
            "relay": relay,
            "raw": raw,
            "throughput_ratio": round(ratio, 4),
            "targets": {
                "p50_latency_under_seconds": TARGET_P50,
                "p50_latency_met": paced["latency_p50_seconds"] < TARGET_P50,
                "throughput_ratio_at_least": TARGET_RATIO,
                "throughput_ratio_met": ratio >= TARGET_RATIO,
            },
        }

    def _paced(self, count: int) -> dict[str, Any]:
        """Latency without a queue: `count` messages one at a time, each sent once the one before it
        was executed. (Under the flood of the relay phase, latency is mostly waiting in line.)"""
        latencies = []
        for i in range(count):
            sent, ids = self._send_messages(f"{self.name} paced {i}", 1)
            rows = self._wait(f"{self.name}: one message ({i + 1}/{count})", "bank-b", ids, "executed")
            latencies.append(_executed_at(rows[ids[0]]) - sent.submitted[0])
        return {
            "messages": count,
            "latency_p50_seconds": round(percentile(latencies, 50), 3),
            "latency_max_seconds": round(max(latencies), 3),
            "latencies_seconds": [round(x, 3) for x in latencies],
        }

    def _relay(self) -> dict[str, Any]:
        label = f"{self.name} relay"
        sent, ids = self._send_messages(label, self.n)
        submitted = dict(zip(ids, sent.submitted, strict=True))
        rows = self._wait(f"{self.name}: relay a -> b", "bank-b", ids, "executed")
        executed = {i: _executed_at(rows[i]) for i in ids}
        latencies = [executed[i] - submitted[i] for i in ids]
        seconds = max(executed.values()) - min(submitted.values())
        # once the first round has executed: the rate messages come out at, the pipeline's fill excluded
        first_round = min(executed.values())
        later = [t for t in executed.values() if t > first_round]
        sustained = len(later) / (max(later) - first_round) if later else None
        with self._store("bank-a") as source:
            out = [m for m in source.messages(direction="out") if m.id in submitted]
            numbers = sorted({m.batch_number for m in out if m.batch_number is not None})
            found = [source.batch(n) for n in numbers]
        proven = [b for b in found if b is not None]
        if len(proven) != len(numbers):
            raise BenchError(f"bank-a's store lacks some of batches {numbers}")
        exec_gas = [m.exec_gas for m in rows.values() if m.exec_gas is not None]
        stages = self._stages(submitted)
        return {
            "messages_per_second": round(self.n / seconds, 3),
            "sustained_messages_per_second": None if sustained is None else round(sustained, 3),
            "seconds": round(seconds, 3),
            "submit_seconds": round(sent.submit_seconds, 3),
            "latency_p50_seconds": round(percentile(latencies, 50), 3),
            "latency_p99_seconds": round(percentile(latencies, 99), 3),
            "latency_min_seconds": round(min(latencies), 3),
            "latency_max_seconds": round(max(latencies), 3),
            "latency_mean_seconds": round(statistics.fmean(latencies), 3),
            "batches": len(proven),
            "batch_sizes": [b.count for b in proven],
            "batch_capacities": [b.capacity for b in proven],
            "proving_seconds_mean": round(
                statistics.fmean(b.proving_seconds for b in proven if b.proving_seconds is not None), 3
            ),
            "commit_gas_mean": round(
                statistics.fmean(b.commit_gas for b in proven if b.commit_gas is not None)
            ),
            "l1_gas_per_message": round(
                sum(b.commit_gas for b in proven if b.commit_gas is not None)
                / sum(b.count for b in proven if b.commit_gas is not None)
            ),
            "execute_gas_per_message_mean": round(statistics.fmean(exec_gas)),
            "execute_transactions": len({rows[i].exec_tx for i in ids}),
            "stages_p50_seconds": stages[50],
            "stages_p90_seconds": stages[90],
        }

    def _stages(self, submitted: dict[str, float]) -> dict[int, dict[str, float]]:
        """Per status each message went through (bank-a's "out" ones, then bank-b's "in" ones), the
        50th and 90th percentiles over the messages of when it first got there, in seconds after its
        submission."""
        reached: dict[str, list[float]] = {}
        for name, statuses in (("bank-a", STAGES_OUT), ("bank-b", STAGES_IN)):
            with self._store(name) as store:
                for key, at in submitted.items():
                    first: dict[str, float] = {}
                    for t in store.history(key):
                        first.setdefault(t.to_status, t.at)
                    for status in statuses:
                        if status in first:
                            reached.setdefault(f"{name} {status}", []).append(first[status] - at)
        return {
            q: {stage: round(percentile(times, q), 3) for stage, times in reached.items()} for q in (50, 90)
        }

    def _raw(self, m: int) -> dict[str, Any]:
        a, b = self._entry("bank-a"), self._entry("bank-b")
        with self.console.status(f"{self.name}: stopping bank-b's daemon"):
            code = self.services.daemons["bank-b"].stop()
        self.console.print(f"{self.name}: bank-b's daemon stopped (exit code {code})")
        _, ids = self._send_messages(f"{self.name} raw", m)
        self._wait(f"{self.name}: a -> L1, pushed", "bank-a", ids, "pushed")

        l1 = Chain(self.manifest["l1"]["rpc_url"], self.user)
        hub = l1.contract("Hub", self.manifest["l1"]["contracts"]["hub"])
        with self._store("bank-a") as source:
            rows = {r.id: r for r in source.messages(direction="out")}
            numbers = sorted({_batch_number(rows[i]) for i in ids})
            members = {n: source.messages(direction="out", batch_number=n) for n in numbers}
            source_batches = {n: source.batch(n) for n in numbers}
        trees, leaf_indexes = {}, {}
        for number in numbers:
            batch = source_batches[number]
            if batch is None:
                raise BenchError(f"bank-a's store lacks batch {number}")
            trees[number] = PoseidonTree([r.leaf for r in members[number]], batch.capacity)
            leaf_indexes[number] = hub_batch(hub, a["chain_id"], number).leaf_index
        size, root, paths = self._aggregated_paths(hub, sorted(set(leaf_indexes.values())))

        operator = Chain(b["rpc_url"], anvil.dev_account(b["operator_account"]))
        inbox = operator.contract("Inbox", b["contracts"]["inbox"])
        if not inbox.functions.importedRoots(root).call():
            operator.send(inbox.functions.importRoot(root), what="importRoot")
        on_b = Chain(b["rpc_url"], self.user)
        inbox = on_b.contract("Inbox", b["contracts"]["inbox"])
        calls = []
        for i in ids:
            row = rows[i]
            number, index = _batch_number(row), row.index_in_batch
            assert index is not None
            path = paths[leaf_indexes[number]]
            proof = MessageProof(
                number, index, tuple(trees[number].proof(index)), path.leaf_index, tuple(path.siblings), root
            )
            calls.append(inbox.functions.execute(row.message.as_tuple(), proof.as_tuple()))
        with self.console.status(f"{self.name}: signing {m} Inbox.execute transactions"):
            gas_limit, raw = sign_all(on_b, self.user, calls)
        with self.console.status(f"{self.name}: {m} Inbox.execute transactions to bank-b"):
            sent = blast(on_b, raw, timeout=self.timeout)
        self._check_executed(inbox, ids, sent.receipts)
        blocks = {int(r["blockNumber"]) for r in sent.receipts}
        return {
            "messages_per_second": round(m / sent.seconds, 3),
            "seconds": round(sent.seconds, 3),
            "submit_seconds": round(sent.submit_seconds, 3),
            "execute_gas_per_message_mean": round(statistics.fmean(int(r["gasUsed"]) for r in sent.receipts)),
            "blocks": len(blocks),
            "gas_limit_per_transaction": gas_limit,
            "block_gas_limit": int(on_b.w3.eth.get_block("latest")["gasLimit"]),
            "batches": len(numbers),
            "aggregated_size": size,
        }

    def _aggregated_paths(
        self, hub: Contract, leaf_indexes: list[int]
    ) -> tuple[int, bytes, dict[int, AggregatedProof]]:
        """The hub service's aggregated root once it covers every leaf (and L1 knows it), and each
        leaf's path against it."""

        async def fetch() -> tuple[int, bytes, dict[int, AggregatedProof]]:
            async with HubClient(self.manifest["hub_service"]["api"]) as client:
                deadline = time.monotonic() + self.timeout
                while True:
                    status = await client.status()
                    size = int(status["aggregated_size"])
                    root = bytes.fromhex(str(status["aggregated_root"]).removeprefix("0x"))
                    if size > max(leaf_indexes) and hub.functions.isAggregatedRoot(root).call():
                        break
                    if time.monotonic() > deadline:
                        raise BenchError(
                            f"the hub service's aggregated tree has {size} leaves, not past "
                            f"{max(leaf_indexes)}, after {self.timeout:.0f} s"
                        )
                    await asyncio.sleep(POLL)
                paths = {i: await client.proof(i, size) for i in leaf_indexes}
            for i, path in paths.items():
                if path.root != root:
                    raise BenchError(f"the hub service's path of leaf {i} leads to another root")
            return size, root, paths

        return asyncio.run(fetch())

    @staticmethod
    def _check_executed(inbox: Contract, ids: list[str], receipts: list[TxReceipt]) -> None:
        """Inbox.execute returns false (and the transaction succeeds) when the target reverted: check
        every message's MessageExecuted event."""
        executed = set()
        for receipt in receipts:
            for event in inbox.events.MessageExecuted().process_receipt(receipt, errors=DISCARD):
                executed.add(bytes(event["args"]["id"]))
        missing = [i for i in ids if message_id(*map(int, i.split(":"))) not in executed]
        if missing:
            raise BenchError(
                f"{len(missing)} raw execute(s) did not execute their message, e.g. {missing[0]}"
            )


def table(results: dict[str, Any], broker: str) -> Table:
    runs = {name: r for name, r in results["runs"].items() if r["broker"] == broker}
    out = Table(
        title=(
            f"relay a -> b vs raw Inbox.execute, same node, on the {broker} broker\n"
            f"({results['block_time_seconds']:g} s blocks, {results['machine']['cpu_count']} CPUs)"
        )
    )
    out.add_column("figure")
    for r in runs.values():
        out.add_column(f"capacities {'/'.join(map(str, r['capacities']))}", justify="right")

    def row(name: str, show: Callable[[dict[str, Any]], str]) -> None:
        out.add_row(name, *(show(r) for r in runs.values()))

    row(
        f"idle CPU per daemon ({IDLE_SECONDS:g} s, % of a core)",
        lambda r: ", ".join(f"{name} {pct:.2f}%" for name, pct in r["idle_cpu_percent"].items()),
    )
    row("latency p50, one at a time", lambda r: f"{r['paced']['latency_p50_seconds']:.2f} s")
    row("  max", lambda r: f"{r['paced']['latency_max_seconds']:.2f} s ({r['paced']['messages']} messages)")
    row("messages N (relay) / M (raw)", lambda r: f"{r['messages']} / {r['raw_messages']}")
    row(
        "relay throughput (N / first sent..last executed)",
        lambda r: f"{r['relay']['messages_per_second']:.2f} msg/s",
    )
    row(
        "  after the first round executed",
        lambda r: (
            "-"
            if r["relay"]["sustained_messages_per_second"] is None
            else f"{r['relay']['sustained_messages_per_second']:.2f} msg/s"
        ),
    )
    row("  over", lambda r: f"{r['relay']['seconds']:.1f} s (sent in {r['relay']['submit_seconds']:.2f} s)")
    row("latency p50 under the flood", lambda r: f"{r['relay']['latency_p50_seconds']:.2f} s")
    row("latency p99 under the flood", lambda r: f"{r['relay']['latency_p99_seconds']:.2f} s")
    row(
        "latency min / max",
        lambda r: f"{r['relay']['latency_min_seconds']:.2f} / {r['relay']['latency_max_seconds']:.2f} s",
    )
    stages = [stage for r in runs.values() for stage in r["relay"]["stages_p50_seconds"]]

    def until(stage: str) -> Callable[[dict[str, Any]], str]:
        def show(r: dict[str, Any]) -> str:
            p50 = r["relay"]["stages_p50_seconds"].get(stage)
            p90 = r["relay"]["stages_p90_seconds"].get(stage)
            return "-" if p50 is None else f"{p50:.2f} / {p90:.2f} s"

        return show

    for stage in dict.fromkeys(stages):
        row(f"  p50 / p90 until {stage}", until(stage))
    row(
        "batches (messages/capacity)",
        lambda r: (
            f"{r['relay']['batches']}: "
            + ", ".join(
                f"{n}/{c}"
                for n, c in zip(r["relay"]["batch_sizes"], r["relay"]["batch_capacities"], strict=True)
            )
        ),
    )
    row("proving per batch (mean)", lambda r: f"{r['relay']['proving_seconds_mean']:.2f} s")
    row("commit gas per batch (mean)", lambda r: f"{r['relay']['commit_gas_mean']:,}")
    row("L1 gas per message (commits)", lambda r: f"{r['relay']['l1_gas_per_message']:,}")
    row(
        "execute gas per message (relay)",
        lambda r: (
            f"{r['relay']['execute_gas_per_message_mean']:,} ({r['relay']['execute_transactions']} txs)"
        ),
    )
    row("raw capacity (Inbox.execute)", lambda r: f"{r['raw']['messages_per_second']:.2f} msg/s")
    row("  over", lambda r: f"{r['raw']['seconds']:.2f} s, {r['raw']['blocks']} block(s)")
    row("execute gas per message (raw)", lambda r: f"{r['raw']['execute_gas_per_message_mean']:,}")
    row("relay / raw", lambda r: f"{r['throughput_ratio']:.3f}")
    row(
        f"target: relay/raw >= {TARGET_RATIO} (at the best)",
        lambda r: "met" if r["targets"]["throughput_ratio_met"] else "not met",
    )
    row(
        f"target: p50 < {TARGET_P50:g} s (one at a time)",
        lambda r: "met" if r["targets"]["p50_latency_met"] else "NOT met",
    )
    return out


def _config(text: str) -> tuple[int, ...]:
    """ "64" or "8,64,256": the capacities of one configuration."""
    try:
        capacities = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: capacities separated by commas, e.g. 8,64,256") from None
    for c in capacities:
        if c < 8 or c > 1024 or c & (c - 1):
            raise argparse.ArgumentTypeError(f"{text!r}: {c} is not a power of two from 8 to 1024")
    return capacities


def main(argv: list[str] | None = None) -> int:
    parser = arguments("relay", __doc__ or "")
    parser.add_argument(
        "--configs",
        type=_config,
        nargs="+",
        default=list(CONFIGS),
        help="configurations of batch capacities, each one capacity or several separated by commas "
        "(default: 8 64 256 8,64,256)",
    )
    parser.add_argument(
        "--messages",
        type=int,
        help="messages per configuration, relayed and raw (default: 4 x the largest capacity, "
        "from 256 to 1024)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT,
        help=f"seconds to wait for each phase (default {TIMEOUT:.0f})",
    )
    parser.add_argument("--keep", action="store_true", help="keep each run's state directory and logs")
    parser.add_argument(
        "--brokers",
        choices=BROKERS,
        nargs="+",
        default=list(BROKERS),
        help="the devnet's brokers, each configuration run on each (default: both; mosquitto: TLS, "
        "logins, ACLs); envelopes are always sealed",
    )
    args = parser.parse_args(argv)
    if args.messages is not None and args.messages < 1:
        parser.error("--messages must be at least 1")
    console = Console()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "block_time_seconds": BLOCK_TIME,
        "runs": {},
    }
    for broker in args.brokers:
        for capacities in args.configs:
            n = args.messages or min(1024, max(256, 4 * max(capacities)))
            run = Run(capacities, n, args.timeout, console, args.keep, broker)
            try:
                results["runs"][run.name] = run.run()
            except (BenchError, devnet.DevnetError) as exc:
                console.print(f"[red]{run.name}: {exc}[/red]")
                return 1
    runs = results["runs"].values()
    best = max(runs, key=lambda r: r["throughput_ratio"])
    results["summary"] = {
        "best_throughput_ratio": best["throughput_ratio"],
        "best_configuration": f"{'/'.join(map(str, best['capacities']))} on {best['broker']}",
        "throughput_ratio_target_met": best["throughput_ratio"] >= TARGET_RATIO,
        "p50_latency_target_met_everywhere": all(r["targets"]["p50_latency_met"] for r in runs),
    }
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    wide = Console(width=max(console.width, 120))  # a pipe's 80 columns would wrap every row
    with wide.capture() as captured:
        for broker in args.brokers:
            wide.print(table(results, broker))
        summary = results["summary"]
        wide.print(
            f"best relay/raw: {summary['best_throughput_ratio']:.3f} ({summary['best_configuration']}); "
            f"target >= {TARGET_RATIO}: {'met' if summary['throughput_ratio_target_met'] else 'NOT met'}; "
            f"p50 < {TARGET_P50:g} s one at a time everywhere: "
            f"{'met' if summary['p50_latency_target_met_everywhere'] else 'NOT met'}"
        )
    report(captured.get().rstrip("\n"), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
