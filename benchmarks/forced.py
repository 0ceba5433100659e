"""Forced inclusion on the devnet: the time from an operator's `xrelay force` to the message's execution.

A fresh devnet (L1, bank-a, bank-b on anvil, the embedded broker), the hub service and both daemons as
processes. bank-b's daemon is stopped; bank-a sends N messages to bank-b's CallRecorder and, once they
are settled and pushed, forces each (`Store.force`, what `xrelay force` does); then bank-b's daemon is
started again. Per message:

- force -> forced: from the request to bank-a's store recording it in bank-b's L1 priority queue (the
  forcer's poll, sealing, `requestPriorityOp` mined);
- queued -> executed: from bank-b's store recording the operation (its watcher read the final L1
  event) to its execution through `processPriorityOps`;
- daemon ready -> executed: from bank-b's daemon answering again to the message's execution.

Figures only, never assertions. A failed run keeps its state directory (logs in <state_dir>/logs/).

    python -m benchmarks.forced [--out FILE] [--messages N]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import arguments, report
from bridge_contracts import anvil
from bridge_contracts.chain import Chain
from bridge_contracts.messages import sent_messages
from hub.delivery import message_key
from relayer.config import load as load_config
from relayer.devnet import devnet
from relayer.devnet.services import Services
from relayer.store import Store

TIMEOUT = 300.0


def _store(manifest: dict[str, Any], name: str) -> Store:
    entry = next(c for c in manifest["chains"] if c["name"] == name)
    return Store(load_config(entry["config"]).store.path)


def _wait(manifest: dict[str, Any], name: str, ids: list[str], status: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with _store(manifest, name) as store:
            if all(getattr(store.message(i), "status", None) == status for i in ids):
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name}: {status} not reached in {TIMEOUT:.0f} s")


def _reached(store: Store, message_id: str, status: str) -> float:
    return next(t.at for t in store.history(message_id) if t.to_status == status)


def measure(messages: int) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="xrelay-bench-forced-"))
    manifest = devnet.up(state, l2=2, capacities=(8,))
    services = Services(state)
    try:
        services.start()
        a = next(c for c in manifest["chains"] if c["name"] == "bank-a")
        b = next(c for c in manifest["chains"] if c["name"] == "bank-b")
        chain = Chain(a["rpc_url"], anvil.dev_account(devnet.USER_ACCOUNT))
        outbox = chain.contract("Outbox", a["contracts"]["outbox"])
        recorder = Chain(b["rpc_url"], chain.signer).contract("CallRecorder", b["contracts"]["call_recorder"])
        services.daemons["bank-b"].stop()
        ids = []
        for n in range(messages):
            data = recorder.encode_abi("receiveMessage", [f"forced {n}".encode()])
            receipt = chain.send(outbox.functions.send(b["chain_id"], recorder.address, data))
            (sent,) = sent_messages(outbox, [receipt])
            ids.append(message_key(sent.message.source_chain_id, sent.message.nonce))
        _wait(manifest, "bank-a", ids, "pushed")
        with _store(manifest, "bank-a") as store:
            requested: dict[str, float] = {}
            for i in ids:
                requested[i] = time.time()
                store.force(i, "forced by the benchmark")
        _wait(manifest, "bank-a", ids, "forced")
        services.daemons["bank-b"].start()
        ready = time.time()
        _wait(manifest, "bank-b", ids, "executed")
        with _store(manifest, "bank-a") as store:
            forced = [_reached(store, i, "forced") - requested[i] for i in ids]
        with _store(manifest, "bank-b") as store:
            queued_at = {op.message_id: op.created_at for op in store.priority_ops()}
            executed = {i: _reached(store, i, "executed") for i in ids}
        results = {
            "messages": messages,
            "force_to_forced_p50_s": round(statistics.median(forced), 2),
            "force_to_forced_max_s": round(max(forced), 2),
            "queued_to_executed_p50_s": round(statistics.median(executed[i] - queued_at[i] for i in ids), 2),
            "ready_to_executed_max_s": round(max(executed.values()) - ready, 2),
        }
    finally:
        services.stop()
        devnet.down(state)
    shutil.rmtree(state, ignore_errors=True)  # kept for its logs when the run failed
    return results


def table(results: dict[str, Any]) -> str:
    rows = [
        ("force -> forced (L1 queue), p50", f"{results['force_to_forced_p50_s']} s"),
        ("force -> forced, max", f"{results['force_to_forced_max_s']} s"),
        ("queued -> executed on bank-b, p50", f"{results['queued_to_executed_p50_s']} s"),
        ("bank-b's daemon ready -> all executed", f"{results['ready_to_executed_max_s']} s"),
    ]
    width = max(len(r[0]) for r in rows) + 2
    head = f"forced inclusion, {results['messages']} messages (devnet, capacity 8)"
    return "\n".join([head] + [f"{name:<{width}}{value:>10}" for name, value in rows])


def main(argv: list[str] | None = None) -> int:
    parser = arguments("forced", __doc__ or "")
    parser.add_argument("--messages", type=int, default=8, help="messages to force (default 8)")
    args = parser.parse_args(argv)
    results = measure(args.messages)
    report(table(results), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
