"""Chaos: daemons SIGKILLed at random instants, over and over, while messages flow both ways, lose
nothing and run nothing twice (DESIGN.md §3, "The store owns the life").

Its own devnet (L1, bank-a and bank-b on anvil, 1 s blocks once deployed), the hub service and both
daemons as processes. Two threads send a steady stream through the Outbox, bank-a -> bank-b and
bank-b -> bank-a, to the destination's CallRecorder (every few messages with value, the source
chain's native asset through the AssetRouter). Meanwhile each daemon, with its prover worker (the
whole process group), is SIGKILLed at a uniformly random instant of its life — most a random
0.5-4 s after it answered again, some while it is still starting (recovering) — and started again,
until `XRELAY_CHAOS_KILLS` kills (20) have landed. Then the senders stop, everything drains, and:

- each message sent was executed exactly once on its destination (the Inbox's `MessageExecuted`
  events), and nothing else was executed, failed or rejected there;
- each message is "executed" in both stores (outgoing at the source, incoming at the destination),
  nothing is left in a status that is not final, every batch is settled, and `Store.check()` finds
  nothing wrong;
- the value adds up: what the source locked is what the destination minted, and what L1 says the
  destination holds.

The seed is printed; `XRELAY_CHAOS_SEED=<seed>` runs the same kill and send schedule again (the
interleaving with the daemons' own timing is never quite the same). A kill that lands inside a
non-atomic step is rare (a few tens of milliseconds of each second of work), so a longer hunt is
`XRELAY_CHAOS_KILLS=100 XRELAY_CHAOS_DRAIN_TIMEOUT=200`: under many kills a push lost with a killed
daemon's in-memory bus queue is retried after 30, 60, 150, then 300 s, and the drain must outwait that.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from web3.types import RPCEndpoint

from bridge_contracts import anvil
from bridge_contracts.chain import Chain
from bridge_contracts.messages import message_id, sent_messages
from hub.delivery import message_key
from relayer.config import load as load_config
from relayer.devnet import devnet
from relayer.devnet.services import Service, Services
from relayer.store import Store

SEED = int(os.environ.get("XRELAY_CHAOS_SEED") or random.SystemRandom().randrange(10**9))
KILLS = int(os.environ.get("XRELAY_CHAOS_KILLS", "20"))
DRAIN_TIMEOUT = float(os.environ.get("XRELAY_CHAOS_DRAIN_TIMEOUT", "75"))
WARM_UP_TIMEOUT = 300.0  # a cold kernel cache: about 2 min on 2 cores
UPTIME = (0.5, 4.0)  # a daemon is killed this long (uniformly random) after it answers again...
STARTING_SHARE = 0.25  # ...or, this often, at a random instant while it is still starting
STARTING_WINDOW = (0.0, 3.0)  # seconds after launch (a daemon answers in about 3 s on 2 cores)
# About 2 min for 20 kills on 2 cores (2 min more with a cold kernel cache), 3-4 s per extra kill.
pytestmark = pytest.mark.timeout(100 + WARM_UP_TIMEOUT + 4 * KILLS + 2 * DRAIN_TIMEOUT)
BLOCK_TIME = 1  # seconds, every chain, once the contracts are deployed
VALUE_EVERY = 4  # about one message in this many carries value
USER = anvil.dev_account(devnet.USER_ACCOUNT)
NATIVE = "0x0000000000000000000000000000000000000001"
BANKS = ("bank-a", "bank-b")


@dataclass
class Net:
    manifest: dict[str, Any]
    services: Services
    state: Path

    def entry(self, name: str) -> dict[str, Any]:
        return next(c for c in self.manifest["chains"] if c["name"] == name)

    def chain(self, name: str) -> Chain:
        return Chain(self.entry(name)["rpc_url"], USER)

    def contract(self, name: str, contract: str, key: str) -> Any:
        return self.chain(name).contract(contract, self.entry(name)["contracts"][key])

    def store(self, name: str) -> Store:
        return Store(load_config(Path(self.entry(name)["config"])).store.path)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    state = tmp_path_factory.mktemp("chaos")
    manifest = devnet.up(state, l2=2, capacities=(8,))  # deployed on automine (fast), then 1 s blocks:
    for node in devnet.nodes(manifest):
        Chain(node["rpc_url"], USER).w3.provider.make_request(
            RPCEndpoint("evm_setIntervalMining"), [BLOCK_TIME]
        )
    services = Services(state)
    try:
        services.start()
        yield Net(manifest, services, state)
    finally:
        services.stop()
        devnet.down(state)


# --- the senders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    key: str  # "<source chain id>:<nonce>"
    source: str
    dest: str
    amount: int  # of the source chain's native asset

    @property
    def id(self) -> bytes:
        source, nonce = map(int, self.key.split(":"))
        return message_id(source, nonce)


@dataclass
class Stream:
    """Sends source -> dest through the Outbox until stopped, one message per block or so."""

    net: Net
    source: str
    dest: str
    rng: random.Random
    stop: threading.Event
    sent: list[Sent] = field(default_factory=list)

    def run(self) -> None:
        chain = self.net.chain(self.source)
        outbox = chain.contract("Outbox", self.net.entry(self.source)["contracts"]["outbox"])
        router = chain.contract("AssetRouter", self.net.entry(self.source)["contracts"]["asset_router"])
        recorder = self.net.contract(self.dest, "CallRecorder", "call_recorder")
        native = bytes(router.functions.nativeAssetId().call())
        origin, origin_token, _ = router.functions.assets(native).call()
        assert (origin, origin_token) == (self.net.entry(self.source)["chain_id"], NATIVE)
        dest_id = self.net.entry(self.dest)["chain_id"]
        while not self.stop.is_set():
            n = len(self.sent)
            data = recorder.encode_abi("receiveMessage", [f"{self.source} {n}".encode()])
            if self.rng.randrange(VALUE_EVERY) == 0:
                amount = self.rng.randint(1, 10**15)
                fn = outbox.functions.sendWithAsset(dest_id, recorder.address, data, native, amount)
                receipt = chain.send(fn, value=amount)
            else:
                amount = 0
                receipt = chain.send(outbox.functions.send(dest_id, recorder.address, data))
            (sent,) = sent_messages(outbox, [receipt])
            key = message_key(sent.message.source_chain_id, sent.message.nonce)
            self.sent.append(Sent(key, self.source, self.dest, amount))
            self.stop.wait(self.rng.uniform(0.0, 0.3))


# --- the killer -------------------------------------------------------------------------------


@dataclass
class Chaos:
    """SIGKILLs the daemons (each with its process group: the prover worker dies with it) at random
    instants and starts them again, until `target` kills have landed. One thread per daemon, each
    with its own random life; the kill count is shared."""

    services: Services
    target: int
    seed: int
    kills: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _t0: float = field(default_factory=time.monotonic)

    def _take(self) -> int | None:
        with self._lock:
            if len(self.kills) >= self.target:
                return None
            self.kills.append("")
            return len(self.kills) - 1

    def _kill(self, daemon: Service, what: str) -> bool:
        slot = self._take()
        if slot is None:
            return False
        assert daemon.process is not None
        try:
            group = psutil.Process(daemon.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            group = []
        exited = daemon.process.poll()
        assert exited is None, f"{daemon.name} exited by itself with code {exited}: see {daemon.log_path}"
        daemon.kill()
        deadline = time.monotonic() + 10
        while (alive := [p for p in group if not _gone(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive, f"{daemon.name}: {alive} outlived the SIGKILL to its process group"
        line = (
            f"kill {slot + 1:2d} at {time.monotonic() - self._t0:6.1f} s: {daemon.name} {what} "
            f"(pid {daemon.process.pid}, {len(group)} child process(es) with it)"
        )
        self.kills[slot] = line
        print(line, flush=True)
        return True

    def life(self, name: str) -> None:
        daemon, rng = self.services.daemons[name], random.Random(f"{self.seed} {name}")
        while True:
            uptime = rng.uniform(*UPTIME)
            time.sleep(uptime)
            if not self._kill(daemon, f"{uptime:.2f} s after it answered"):
                return
            while True:
                daemon.launch()
                if rng.random() >= STARTING_SHARE:
                    break
                wait = rng.uniform(*STARTING_WINDOW)
                time.sleep(wait)
                state = "after it answered" if _answers(daemon) else "while starting"
                if not self._kill(daemon, f"{wait:.2f} s after launch, {state}"):
                    break
            daemon.wait_ready(timeout=60)

    def run(self) -> None:
        with ThreadPoolExecutor(len(self.services.daemons)) as pool:
            for future in [pool.submit(self.life, name) for name in self.services.daemons]:
                future.result()


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _answers(daemon: Service) -> bool:
    try:
        return requests.get(daemon.ready_url, headers=daemon.headers, timeout=0.2).ok
    except requests.RequestException:
        return False


# --- what ends where --------------------------------------------------------------------------


def _plain(row: Any, *names: str) -> dict[str, Any]:
    """The named fields of a store row (a dict, or a typed record), statuses as plain strings."""
    values = {n: row[n] if isinstance(row, Mapping) else getattr(row, n) for n in names}
    return {n: str(v) if isinstance(v, str) else v for n, v in values.items()}


def _rows(net: Net) -> dict[str, dict[str, dict[str, Any]]]:
    """Each bank's stored messages by id, and its batches under the id "batch <n>"."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for name in BANKS:
        with net.store(name) as store:
            messages = [
                _plain(m, "id", "direction", "status", "batch_number", "next_attempt_at")
                for m in store.messages()
            ]
            batches = [
                _plain(b, "batch_number", "status", "error", "first_nonce", "last_nonce")
                for b in store.batches()
            ]
        found[name] = {m["id"]: m for m in messages} | {f"batch {b['batch_number']}": b for b in batches}
    return found


def _drained(net: Net, sent: list[Sent]) -> bool:
    rows = _rows(net)
    for m in sent:
        for name, direction in ((m.source, "out"), (m.dest, "in")):
            row = rows[name].get(m.key)
            if row is None or row["direction"] != direction or row["status"] != "executed":
                return False
    return True


def _next_retry(net: Net, sent: list[Sent]) -> float | None:
    """When (time.monotonic()) the last retry the sources scheduled for a message not yet through is
    due, if that is still to come."""
    rows, now = _rows(net), time.time()
    due = [
        row["next_attempt_at"]
        for m in sent
        if (row := rows[m.source].get(m.key)) is not None
        and row["status"] not in ("executed", "failed")
        and (row["next_attempt_at"] or 0) > now
    ]
    return time.monotonic() + max(due) - now if due else None


def _ranges(keys: list[str]) -> str:
    """Message ids, consecutive nonces of one source chain as one range: "901:3..9, 901:12"."""
    pairs = sorted(tuple(map(int, key.split(":"))) for key in keys)
    runs: list[list[int]] = []  # [source, first, last]
    for source, nonce in pairs:
        if runs and runs[-1][0] == source and runs[-1][2] == nonce - 1:
            runs[-1][2] = nonce
        else:
            runs.append([source, nonce, nonce])
    return ", ".join(f"{s}:{a}" if a == b else f"{s}:{a}..{b}" for s, a, b in runs)


def _numbers(numbers: set[int]) -> str:
    return _ranges([f"0:{n}" for n in numbers]).replace("0:", "")


def _store_problems(net: Net, sent: list[Sent]) -> list[str]:
    """Every way the stores differ from "all executed, all settled, consistent": the messages not
    executed grouped by store, direction and status (with their batches and when the daemon will
    try them again), batches not settled or not holding their messages, and `Store.check()`."""
    problems: list[str] = []
    rows, now = _rows(net), time.time()
    expected = {(m.source, m.key): "out" for m in sent} | {(m.dest, m.key): "in" for m in sent}
    stuck: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for (name, key), direction in sorted(expected.items()):
        row = rows[name].get(key)
        if row is None:
            stuck[name, direction, "missing"].append({"id": key})
        elif row["direction"] != direction:
            stuck[name, direction, f"stored as {row['direction']!r}"].append(row)
        elif row["status"] != "executed":
            stuck[name, direction, row["status"]].append(row)
    for (name, direction, status), found in sorted(stuck.items()):
        side = "outgoing" if direction == "out" else "incoming"
        facts = []
        by_status: dict[str, set[int]] = defaultdict(set)
        for row in found:
            if row.get("batch_number") is not None and direction == "out":
                batch = rows[name].get(f"batch {row['batch_number']}")
                by_status[batch["status"] if batch else "not stored"].add(row["batch_number"])
        facts += [f"batch {_numbers(numbers)} {what}" for what, numbers in sorted(by_status.items())]
        due = [row["next_attempt_at"] - now for row in found if (row.get("next_attempt_at") or 0) > now]
        if due:
            facts.append(f"{len(due)} with a retry due in {min(due):.0f}..{max(due):.0f} s")
        where = f" ({'; '.join(facts)})" if facts else ""
        ids = _ranges([row["id"] for row in found])
        problems.append(f"{name}: {len(found)} {side} message(s) {status}{where}: {ids}")
    for name in BANKS:
        members: dict[int, list[int]] = defaultdict(list)
        for key, row in rows[name].items():
            if not key.startswith("batch ") and row["direction"] == "out" and row["batch_number"] is not None:
                members[row["batch_number"]].append(int(key.split(":")[1]))
        for key, row in sorted(rows[name].items()):
            if not key.startswith("batch "):
                if (name, key) not in expected:
                    problems.append(f"{name}: unexpected {row['direction']} message {key} ({row['status']})")
                continue
            held = sorted(members[row["batch_number"]])
            if held != list(range(row["first_nonce"], row["last_nonce"] + 1)):
                problems.append(
                    f"{name}: {key} ({row['status']}) should hold nonces "
                    f"{row['first_nonce']}..{row['last_nonce']}, but holds {_numbers(set(held)) or 'none'}"
                )
            if row["status"] != "settled":
                problems.append(f"{name}: {key} is {row['status']!r} (error: {row['error']})")
        with net.store(name) as store:
            if hasattr(store, "check"):
                problems += [f"{name}: Store.check(): {p}" for p in store.check()]
    return problems


def _last_errors(net: Net) -> list[str]:
    """Each daemon's last logged error, if any."""
    found = []
    for name, daemon in net.services.daemons.items():
        lines = [
            line for line in daemon.log_path.read_text(errors="replace").splitlines() if " ERROR " in line
        ]
        if lines:
            found.append(f"{name}'s last logged error ({len(lines)} in all): {lines[-1][:300]}")
    return found


def _chain_problems(net: Net, sent: list[Sent]) -> list[str]:
    """Each message executed exactly once on its destination, and nothing else happened there."""
    problems: list[str] = []
    for name in BANKS:
        inbox = net.contract(name, "Inbox", "inbox")
        ours = {m.id: m.key for m in sent if m.dest == name}
        executed = Counter(
            bytes(e["args"]["id"]) for e in inbox.events.MessageExecuted().get_logs(from_block=0)
        )
        never = [key for id_, key in ours.items() if executed[id_] == 0]
        twice = [f"{key} x{executed[id_]}" for id_, key in ours.items() if executed[id_] > 1]
        strangers = [f"0x{id_.hex()}" for id_ in executed if id_ not in ours]
        if never:
            problems.append(f"{name} Inbox: {len(never)} message(s) never executed: {_ranges(never)}")
        if twice:
            problems.append(
                f"{name} Inbox: {len(twice)} message(s) executed more than once: {', '.join(twice)}"
            )
        if strangers:
            problems.append(f"{name} Inbox: executed ids nobody sent: {', '.join(strangers)}")
        for event in ("MessageFailed", "MessageRejected"):
            logs = inbox.events[event]().get_logs(from_block=0)
            if logs:
                found = [ours.get(bytes(e["args"]["id"]), "0x" + bytes(e["args"]["id"]).hex()) for e in logs]
                problems.append(f"{name} Inbox: {event} for {', '.join(found)}")
    return problems


def _value_problems(net: Net, sent: list[Sent]) -> list[str]:
    """What each source locked of its native asset is what its peer minted, and what L1 says the
    peer holds."""
    problems: list[str] = []
    hub = Chain(net.manifest["l1"]["rpc_url"], USER).contract("Hub", net.manifest["l1"]["contracts"]["hub"])
    for source, dest in (BANKS, BANKS[::-1]):
        amount = sum(m.amount for m in sent if m.source == source)
        router = net.contract(source, "AssetRouter", "asset_router")
        native = bytes(router.functions.nativeAssetId().call())
        token = net.contract(dest, "AssetRouter", "asset_router").functions.assets(native).call()[2]
        supply = (
            0
            if int(token, 16) == 0
            else net.chain(dest).contract("BridgedToken", token).functions.totalSupply().call()
        )
        found = {
            f"locked on {source}": router.functions.locked(native).call(),
            f"supply on {dest}": supply,
            f"L1 balance of {dest}": hub.functions.balances(net.entry(dest)["chain_id"], native).call(),
        }
        if set(found.values()) != {amount}:
            problems.append(f"{source}'s native asset: sent {amount}, but {found}")
    return problems


def _warm_up(net: Net) -> list[Sent]:
    """One message each way, through the whole pipeline, before any kill: the prover's kernels are
    compiled (or loaded from their cache) and each daemon has settled and executed once. A cold
    kernel cache costs about 2 min here, and a daemon killed while compiling starts over."""
    sent = []
    for source, dest in (BANKS, BANKS[::-1]):
        recorder = net.contract(dest, "CallRecorder", "call_recorder")
        outbox = net.contract(source, "Outbox", "outbox")
        data = recorder.encode_abi("receiveMessage", [b"warm-up"])
        fn = outbox.functions.send(net.entry(dest)["chain_id"], recorder.address, data)
        (m,) = sent_messages(outbox, [net.chain(source).send(fn)])
        sent.append(Sent(message_key(m.message.source_chain_id, m.message.nonce), source, dest, 0))
    deadline = time.monotonic() + WARM_UP_TIMEOUT
    while not _drained(net, sent):
        assert time.monotonic() < deadline, f"warm-up: not through in {WARM_UP_TIMEOUT:.0f} s: " + "; ".join(
            _store_problems(net, sent)
        )
        time.sleep(0.5)
    return sent


def test_daemons_killed_at_any_instant_resume_exactly_where_they_were(net: Net) -> None:
    print(f"\nchaos seed {SEED} (XRELAY_CHAOS_SEED={SEED} runs this schedule again); state {net.state}")
    started = time.monotonic()
    warm = _warm_up(net)
    warm_up = time.monotonic() - started
    print(f"warm-up: one message each way through in {warm_up:.1f} s", flush=True)
    stop = threading.Event()
    streams = [
        Stream(net, source, dest, random.Random(f"{SEED} {source}"), stop)
        for source, dest in (BANKS, BANKS[::-1])
    ]
    chaos = Chaos(net.services, KILLS, SEED)
    with ThreadPoolExecutor(len(streams)) as senders:
        sending = [senders.submit(stream.run) for stream in streams]
        try:
            time.sleep(2.0)  # a few messages in flight before the first kill
            chaos.run()
        finally:
            stop.set()
        for future in sending:
            future.result()
    sent = warm + [m for stream in streams for m in stream.sent]
    kill_phase = time.monotonic() - started - warm_up
    print(f"{len(chaos.kills)} kills in {kill_phase:.1f} s; now draining", flush=True)

    drain_started = time.monotonic()
    deadline = drain_started + DRAIN_TIMEOUT
    while not (drained := _drained(net, sent)):
        if time.monotonic() >= deadline:
            # A push lost to a kill goes again on the pusher's backoff (30 s, then 60 s): a retry the
            # store has scheduled is waited for (up to twice the drain timeout) before anything is
            # called stuck.
            retry = _next_retry(net, sent)
            if retry is None or retry + 10 > drain_started + 2 * DRAIN_TIMEOUT:
                break
            deadline = retry + 10
        time.sleep(0.5)
    drain = time.monotonic() - drain_started

    problems = _chain_problems(net, sent) + _store_problems(net, sent) + _value_problems(net, sent)
    total = time.monotonic() - started
    for stream in streams:
        valued = [m for m in stream.sent if m.amount]
        print(
            f"sent {stream.source} -> {stream.dest}: {len(stream.sent)} messages "
            f"({len(valued)} with value, {sum(m.amount for m in valued)} wei)"
        )
    timed_out = "" if drained else " (timed out)"
    print(
        f"kills: {len(chaos.kills)} ({sum('starting' in k for k in chaos.kills)} while starting); "
        f"warm-up {warm_up:.1f} s; kill phase {kill_phase:.1f} s; drain {drain:.1f} s{timed_out}; "
        f"total {total:.1f} s (seed {SEED})"
    )
    if not hasattr(Store, "check"):
        print("Store.check() does not exist yet: the store's own invariants were not checked")
    assert len(chaos.kills) == KILLS
    assert all(stream.sent for stream in streams)
    logs = ", ".join(str(d.log_path) for d in net.services.daemons.values())
    assert not problems, (
        f"seed {SEED}: after {len(chaos.kills)} kills and {drain:.0f} s of draining{timed_out}:\n  "
        + "\n  ".join(problems + _last_errors(net))
        + f"\nlogs: {logs}"
    )
