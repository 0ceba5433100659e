"""`xrelay run`: one institution's daemon.

It wires the pipeline together and runs each step in a loop of its own: the chain watchers (this
chain's Outbox, L1 deposits to this chain, this chain's L1 priority queue), the batcher with its prover
pool, the settler, the pusher, the forcer, the receiver (the bus) and the executor, plus the admin API.
Every step reads its work from the store and writes there before it acts, so the daemon can be killed
at any moment and started again. A step that fails (an RPC endpoint down, a transaction refused) is
logged and tried again; it never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from web3.contract import Contract
from web3.contract.contract import ContractEvent
from web3.types import EventData

from bridge_contracts.chain import Chain
from bridge_contracts.messages import Message
from hub.broker import EmbeddedBroker, sole_user
from hub.bus import Bus, BusDrop, BusTls
from hub.client import HubClient
from hub.envelope import KIND_RESYNC, ROOTS_TOPIC, inbox_filter
from hub.retry import RETRY
from relayer import api, halts
from relayer import config as institution_config
from relayer.config import ConfigError, InstitutionConfig, RpcChain
from relayer.metrics import Metrics
from relayer.pipeline.batcher import Batcher
from relayer.pipeline.context import Context
from relayer.pipeline.executor import Executor
from relayer.pipeline.priority import DeadlineWatch, Forcer, queue_handler
from relayer.pipeline.prover import ProverPool
from relayer.pipeline.pusher import Pusher
from relayer.pipeline.receiver import Receiver
from relayer.pipeline.settler import Settler
from relayer.pipeline.swaps import Operations, Swaps, desk_handler
from relayer.sender import Sender
from relayer.store import (
    HALT_SCOPES,
    PENDING_PRIORITY,
    Deposit,
    Halt,
    OutStatus,
    PriorityStatus,
    RefusalPolicy,
    Sent,
    Store,
    WatchCursor,
)
from relayer.watcher import Finality, Handler, Watcher

log = logging.getLogger("xrelay")

Step = Callable[[], Awaitable[float | None]]
"""A step of the pipeline: None when it did something (it runs again at once), else the seconds it
has nothing to do (it runs again then, or sooner when another step wakes it)."""
EMBEDDED_BROKER = ("127.0.0.1", 1883)


def proving_keys(config: InstitutionConfig) -> dict[int, Path]:
    """This chain's proving key of each of its batch capacities."""
    return {c: config.batch.keys_dir / f"batch-{c}.zkey" for c in config.batch.capacities}


def _require(config: InstitutionConfig, path: Path) -> tuple[str, str, str]:
    problems = []
    if config.chain.contracts.inbox is None:
        problems.append(("chain.contracts.inbox", "the daemon needs the Inbox's address to receive"))
    if config.l1.hub is None:
        problems.append(("l1.hub", "the daemon needs the L1 Hub's address to settle"))
    if config.l1.hub_api is None:
        problems.append(("l1.hub_api", "the daemon needs the hub service's URL for aggregated-tree proofs"))
    for capacity, key in proving_keys(config).items():
        if not key.is_file():
            problems.append(("batch.keys_dir", f"no proving key {key} for batch capacity {capacity}"))
    if config.bus.key is None:
        problems.append(
            ("bus.key", "the daemon needs its bus key to open what peers send (xrelay bus-key new)")
        )
    if not os.environ.get(config.admin.token_env):
        problems.append(("admin.token_env", f"environment variable {config.admin.token_env} is not set"))
    if problems:
        raise ConfigError(path, problems)
    assert config.chain.contracts.inbox and config.l1.hub and config.l1.hub_api
    return config.chain.contracts.inbox, config.l1.hub, config.l1.hub_api


class Daemon:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.config = institution_config.load(config_path)
        self.inbox_address, self.hub_address, self.hub_api = _require(self.config, config_path)
        self.signer = self.config.chain.signer.resolve()
        assert self.config.bus.key is not None  # _require
        self.bus_secrets = (self.config.bus.key.resolve("bus.key"),) + (
            (self.config.bus.previous_key.resolve("bus.previous_key"),)
            if self.config.bus.previous_key
            else ()
        )
        self.admin_token = os.environ[self.config.admin.token_env]
        self.started = time.time()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        config = self.config
        store = open_store(config.store.path, config.store.refusal_policy(), self.config_path)
        l2 = self._chain(store, "chain", config.chain, f"{config.institution}'s chain")
        l1 = self._chain(store, "l1", config.l1, "L1")
        broker = None
        if config.bus.url is None:
            # its own client id only, with its bus login if it has one
            names = (config.bus.username_env, config.bus.password_env)
            login = [os.environ.get(name) if name else None for name in names]
            broker = EmbeddedBroker(*EMBEDDED_BROKER, users=[sole_user(config.institution, *login)])
            await broker.start()
        pool = ProverPool(proving_keys(config), workers=config.batch.provers)
        hub_client = HubClient(self.hub_api)
        metrics = Metrics()
        try:
            async with self._bus(broker) as bus:
                ctx = Context(
                    config_path=self.config_path,
                    config=config,
                    store=store,
                    l2=l2,
                    l1=l1,
                    outbox=l2.contract("Outbox", config.chain.contracts.outbox),
                    inbox=l2.contract("Inbox", self.inbox_address),
                    hub=l1.contract("Hub", self.hub_address),
                    l2_sender=Sender(l2),
                    l1_sender=Sender(l1),
                    bus=bus,
                    hub_client=hub_client,
                    metrics=metrics,
                    desk=(
                        l2.contract("SwapDesk", config.chain.contracts.swap_desk)
                        if config.chain.contracts.swap_desk
                        else None
                    ),
                    bus_secrets=self.bus_secrets,
                )
                self._watch_bus(ctx)
                ctx.reload_peers()
                await self._check_chains(ctx)
                await pool.start()
                await self._serve(ctx, pool)
        finally:
            pool.close()
            await hub_client.close()
            if broker is not None:
                await broker.stop()
            store.close()

    def _chain(self, store: Store, name: str, rpc: RpcChain, label: str) -> Chain:
        """A chain whose every endpoint must serve its chain id and genesis block."""
        return Chain(
            rpc.rpc_urls,
            self.signer,
            chain_id=rpc.chain_id,
            genesis=_genesis(store, name, rpc),
            name=f"{label} ({rpc.chain_id})",
            failback_seconds=rpc.failback_seconds,
        )

    def _bus(self, broker: EmbeddedBroker | None) -> Bus:
        bus = self.config.bus
        url = bus.url if broker is None else broker.url
        assert url is not None
        tls = None
        if url.startswith("mqtts://"):
            tls = BusTls(ca_cert=bus.ca_cert, client_cert=bus.client_cert, client_key=bus.client_key)
        username = os.environ.get(bus.username_env) if bus.username_env else None
        password = os.environ.get(bus.password_env) if bus.password_env else None
        # Its own topic, and the hub service's root announcements: hints that wake the executor (a
        # root is used only once L1 confirms it).
        topics = (inbox_filter(self.config.institution), ROOTS_TOPIC)
        return Bus(
            url,
            self.config.institution,
            topics=topics,
            username=username,
            password=password,
            tls=tls,
            # It probes itself: deaf (connected, hearing nothing), it starts a fresh session.
            probe_seconds=bus.probe_seconds,
            deaf_after_seconds=bus.deaf_after_seconds,
            per_sender_pending=bus.per_peer_pending,
            per_sender_bytes=max(64 << 20, 4 * bus.max_envelope_bytes),
            max_payload_bytes=bus.max_envelope_bytes,
        )

    def _watch_bus(self, ctx: Context) -> None:
        """Record what the bus drops as refusals, export its state, and resync when it recovers."""

        def dropped(drop: BusDrop) -> None:
            reason = f"{drop.reason} (dropped by the bus: topic {drop.topic}, {drop.size} bytes)"
            ctx.refuse(
                peer=drop.sender, chain_id=None, kind="envelope", reason=reason, raw=drop.head, size=drop.size
            )
            ctx.metrics.failure(f"bus_{drop.kind}")

        ctx.bus.on_dropped = dropped
        ctx.bus.senders = lambda name: ctx.peer_by_name(name) is not None  # only peers get a queue
        ctx.bus.on_recovered = lambda: self._on_bus_recovered(ctx)
        ctx.metrics.watch_bus(ctx.bus)

    async def _on_bus_recovered(self, ctx: Context) -> None:
        """What peers sent may not have arrived (this daemon was deaf, lost its broker session, was
        reconnected, or has just started after a crash that lost envelopes it had not handled): ask
        each peer to push again now whatever waits for a receipt, and push this chain's own again (the
        peers' receipts may be what was lost)."""
        log.warning(
            "event=bus_resync institution=%s deaf_episodes=%d sessions_lost=%d reconnects=%d",
            ctx.config.institution,
            ctx.bus.deaf_episodes,
            ctx.bus.sessions_lost,
            ctx.bus.reconnects,
        )
        for peer in ctx.config.peers:
            await _resync(ctx, peer.name)

    async def _check_chains(self, ctx: Context) -> None:
        """Refuse to start against the wrong chains or contracts: a config pointing elsewhere would
        do harm."""
        for name, endpoints, rpc in (("chain", ctx.l2, ctx.config.chain), ("l1", ctx.l1, ctx.config.l1)):
            # Each endpoint answers for the configured chain id and genesis block (pinned in the store
            # at the first start); one that does not is never used, and the daemon starts if one is.
            stored = ctx.store.genesis(name, rpc.chain_id)
            if rpc.genesis is not None and stored is not None and stored != rpc.genesis:
                raise ConfigError(
                    self.config_path,
                    [(f"{name}.genesis", f"is {rpc.genesis}, but this store was kept for genesis {stored}")],
                )
            pinned = rpc.genesis is not None or stored is not None
            problems = await asyncio.to_thread(endpoints.check_endpoints)
            for bad in problems:
                log.error("%s.rpc_urls: %s: it is not used", name, bad)
            if len(problems) == len(endpoints.rpc_urls):
                raise ConfigError(
                    self.config_path, [(f"{name}.rpc_urls", "no endpoint is usable: " + "; ".join(problems))]
                )
            if not pinned and any(" has genesis " in p for p in problems):
                raise ConfigError(
                    self.config_path,
                    [
                        (
                            f"{name}.genesis",
                            "its endpoints serve chains of different genesis blocks: "
                            + "; ".join(problems)
                            + f"; set {name}.genesis to the right chain's block 0 hash",
                        )
                    ],
                )
            if endpoints.genesis is not None and stored is None:
                ctx.store.pin_genesis(name, rpc.chain_id, "0x" + endpoints.genesis.hex())
                log.info("%s: genesis 0x%s pinned in the store", name, endpoints.genesis.hex())
        contracts: tuple[tuple[str, Chain, Contract, str, str], ...] = (
            ("l1.hub", ctx.l1, ctx.hub, "l1ChainId", "Hub"),
            ("chain.contracts.outbox", ctx.l2, ctx.outbox, "outboxHash", "Outbox"),
            ("chain.contracts.inbox", ctx.l2, ctx.inbox, "MAX_BATCH_DEPTH", "Inbox"),
        )
        if ctx.desk is not None:
            contracts += (("chain.contracts.swap_desk", ctx.l2, ctx.desk, "swapNonce", "SwapDesk"),)
        for key, chain, contract, probe, kind in contracts:
            problem = await asyncio.to_thread(_contract_problem, chain, contract, probe, kind)
            if problem is not None:
                raise ConfigError(self.config_path, [(key, problem)])
        info = await ctx.hub_chain(ctx.chain_id)
        if not info.registered:
            raise ConfigError(
                self.config_path, [("l1.hub", f"the Hub has no chain {ctx.chain_id} registered")]
            )
        if info.operator != self.signer.address:
            log.warning(
                "the Hub's operator for chain %d is %s, this daemon signs as %s: commits will be refused",
                ctx.chain_id,
                info.operator,
                self.signer.address,
            )
        missing = [
            c
            for c in ctx.config.batch.capacities
            if int(await ctx.call(ctx.hub.functions.verifiers(ctx.chain_id, c)), 16) == 0
        ]
        if missing:  # a batch of such a capacity would be proven and then never settle
            shown = ", ".join(map(str, missing))
            raise ConfigError(
                self.config_path,
                [
                    (
                        "batch.capacities",
                        f"the Hub has no verifier of chain {ctx.chain_id}'s batches of capacity {shown}: "
                        "register one (Hub.setVerifier) or leave the capacity out",
                    )
                ],
            )
        if not (await ctx.keyring(fresh=True)).keys:
            log.error(
                "the L1 Hub's bus key for chain %d is none of this daemon's keys (bus.key, bus.previous_key):"
                " peers cannot write to it until `xrelay bus-key register -c %s`",
                ctx.chain_id,
                self.config_path,
            )

    async def _serve(self, ctx: Context, pool: ProverPool) -> None:
        receiver, executor = Receiver(ctx), Executor(ctx)
        await executor.recover()
        await self._on_bus_recovered(ctx)  # envelopes taken but not handled before a crash are gone
        chain, l1 = ctx.config.chain, ctx.config.l1

        def watcher(
            name: str, on: Chain, event: ContractEvent, handler: Handler, rpc: RpcChain, **kw: Any
        ) -> Watcher:
            ctx.watchers[name] = Watcher(
                name,
                on,
                event,
                handler,
                ctx.store,
                finality=Finality(rpc.finality, rpc.confirmations),
                on_reorg=lambda r: ctx.metrics.reorg("l1" if name.startswith("l1") else "chain", deep=r.deep),
                **kw,
            )
            return ctx.watchers[name]

        watchers = [
            watcher("outbox", ctx.l2, ctx.outbox.events.MessageSent, self._outgoing(ctx), chain),
            watcher(
                "l1-deposits",
                ctx.l1,
                ctx.hub.events.DepositQueued,
                self._deposits(ctx),
                l1,
                filters={"destChainId": ctx.chain_id},
            ),
            watcher(
                "l1-priority",
                ctx.l1,
                ctx.hub.events.PriorityOpQueued,
                queue_handler(ctx),
                l1,
                filters={"destChainId": ctx.chain_id},
            ),
        ]
        steps: list[tuple[str, Step]] = [
            ("outbox", self._watch(watchers[0], chain.poll_seconds)),
            ("l1-deposits", self._watch(watchers[1], l1.poll_seconds)),
            ("l1-priority", self._watch(watchers[2], l1.poll_seconds)),
            ("batcher", Batcher(ctx, pool).step),
            ("settler", Settler(ctx).step),
            ("pusher", Pusher(ctx).step),
            ("forcer", Forcer(ctx).step),
            ("swaps", Swaps(ctx).step),
            ("receiver", receiver.recheck),
            ("executor", executor.step),
            ("peers", self._peers(ctx)),
            ("metrics", self._metrics(ctx)),
        ]
        if ctx.desk is not None:
            desk = watcher("swap-desk", ctx.l2, ctx.desk.events.SwapRecorded, desk_handler(ctx), chain)
            steps.insert(3, ("swap-desk", self._watch(desk, chain.poll_seconds)))
        runner = await self._admin(ctx)
        tasks = [asyncio.create_task(self._loop(ctx, name, step), name=name) for name, step in steps]
        tasks.append(asyncio.create_task(self._listen(ctx, receiver), name="bus"))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        log.info(
            "%s: daemon running (chain %d, L1 %d)", ctx.config.institution, ctx.chain_id, ctx.l1_chain_id
        )
        try:
            await self._stop.wait()
        finally:
            log.info("stopping")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()

    async def _loop(self, ctx: Context, name: str, step: Step) -> None:
        """Run `step` for as long as the daemon runs: again at once when it did something, else when
        another step wakes it or its idle time is up; after a failure, on the retry policy."""
        wakeup = ctx.wakeups.event(name)
        failures = 0
        while True:
            wakeup.clear()
            try:
                idle = await step()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.exception("%s failed (%d in a row): %s", name, failures, exc)
                idle = RETRY.delay(failures)
            if idle is None:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), max(idle, 0.0))

    async def _listen(self, ctx: Context, receiver: Receiver) -> None:
        async for message in ctx.bus.messages():
            if message.topic == ROOTS_TOPIC:  # a hint: L1 settled more; the steps ask L1 themselves
                ctx.wakeups.wake("receiver", "executor")
                continue
            try:
                await receiver.handle(message.payload, message.topic)
            except Exception:  # e.g. the store's disk is full: the sender pushes it again later
                log.exception("handling an envelope failed")

    def _watch(self, watcher: Watcher, poll: float) -> Step:
        async def step() -> float | None:
            return None if await watcher.poll() else poll

        return step

    def _outgoing(self, ctx: Context) -> Handler:
        async def handle(events: Sequence[EventData], cursor: WatchCursor) -> None:
            sent = []
            for event in events:
                m = Message.from_event(event["args"]["message"])
                peer = ctx.peer_name(m.dest_chain_id)
                block_hash = "0x" + bytes(event["blockHash"]).hex()
                sent.append(Sent(m, peer, event["blockNumber"], int(event["args"]["outboxHash"]), block_hash))
            if ctx.store.record_sent(sent, cursor=cursor):
                ctx.wakeups.wake("batcher")

        return handle

    def _deposits(self, ctx: Context) -> Handler:
        async def handle(events: Sequence[EventData], cursor: WatchCursor) -> None:
            deposits = [
                Deposit(
                    Message.from_event(e["args"]["message"]),
                    e["blockNumber"],
                    e["args"]["leafIndex"],
                    "0x" + bytes(e["blockHash"]).hex(),
                )
                for e in events
            ]
            if ctx.store.record_deposits(deposits, cursor=cursor):
                ctx.wakeups.wake("executor")

        return handle

    def _peers(self, ctx: Context) -> Step:
        """Peers edited while the daemon runs. What a new peer sent while it was none was refused: it is
        asked to push again, until that request is sent (on the retry policy: its bus key may not be on
        L1 yet, or L1 may be unreachable)."""
        due: dict[str, float] = {}  # new peers still to ask -> when to try again
        failures: dict[str, int] = {}

        async def step() -> float:
            before = {(peer.name, peer.chain_id) for peer in ctx.config.peers}
            if ctx.reload_peers():
                for peer in ctx.config.peers:
                    if (peer.name, peer.chain_id) not in before:
                        due[peer.name], failures[peer.name] = 0.0, 0
            moment = time.monotonic()
            for name, at in list(due.items()):
                if ctx.peer_by_name(name) is None or (at <= moment and await _resync(ctx, name)):
                    del due[name], failures[name]
                elif at <= moment:
                    failures[name] += 1
                    due[name] = moment + RETRY.delay(failures[name])
            return 1.0

        return step

    def _metrics(self, ctx: Context) -> Step:
        deadlines = DeadlineWatch()

        async def step() -> float:
            ctx.metrics.refresh_from_store(ctx.store)
            deadlines.check(ctx.store.priority_ops(status=PENDING_PRIORITY))
            return 5.0

        return step

    async def _admin(self, ctx: Context) -> web.AppRunner:
        app = api.make_app(
            ctx.store,
            self.config_path,
            self.admin_token,
            ctx.metrics,
            lambda: self.status(ctx),
            replayed=lambda: ctx.wakeups.wake("executor", "forcer"),
            resume=lambda scope, rewind: self._resume(ctx, scope, rewind),
            swap_ops=Operations(ctx) if ctx.desk is not None else None,
        )
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, ctx.config.admin.host, ctx.config.admin.port).start()
        return runner

    async def _resume(self, ctx: Context, scope: str, rewind: bool) -> halts.Resolution:
        chain, contract = {"outbox": (ctx.l2, ctx.outbox), "swap-desk": (ctx.l2, ctx.desk)}.get(
            scope, (ctx.l1, ctx.hub)
        )
        rpc = ctx.config.l1 if scope.startswith("l1-") else ctx.config.chain
        outcome = await asyncio.to_thread(
            halts.resolve,
            ctx.store,
            chain,
            contract,
            scope,
            finality=Finality(rpc.finality, rpc.confirmations),
            rewind=rewind,
            who="the admin API",
        )
        if outcome.lifted:
            ctx.wakeups.wake(scope, "batcher", "settler", "pusher", "swaps", "executor")
        return outcome

    def status(self, ctx: Context) -> dict[str, Any]:
        last = ctx.store.last_batch()
        halted = {scope: ctx.store.active_halt(scope) for scope in HALT_SCOPES}
        return {
            "institution": ctx.config.institution,
            "chain_id": ctx.chain_id,
            "l1_chain_id": ctx.l1_chain_id,
            "operator": self.signer.address,
            "uptime_seconds": round(time.time() - self.started, 1),
            "peers": [p.name for p in ctx.config.peers],
            "last_batch": None if last is None else {"number": last.batch_number, "status": str(last.status)},
            "chains": {
                "chain": self._chain_health(
                    ctx, ctx.l2, ctx.chain_id, "outbox", halted["outbox"] or halted["swap-desk"]
                ),
                "l1": self._chain_health(
                    ctx,
                    ctx.l1,
                    ctx.l1_chain_id,
                    "l1-deposits",
                    halted["l1-deposits"] or halted["l1-priority"],
                ),
            },
            "halts": {scope: None if h is None else h.to_json() for scope, h in halted.items()},
            "priority": self._priority_status(ctx),
            "bus": ctx.bus.health(),
            "healthy": all(h is None for h in halted.values()),
        }

    @staticmethod
    def _priority_status(ctx: Context) -> dict[str, Any]:
        """Forced inclusion at a glance: this chain's priority queue (what it must process, the oldest
        deadline) and the messages this chain forced that wait on their peers."""
        pending = ctx.store.priority_ops(status=PENDING_PRIORITY)
        oldest = min((op.deadline for op in pending), default=None)
        forced = ctx.store.messages(direction="out", status=[OutStatus.FORCING, OutStatus.FORCED])
        return {
            "queue": {
                "pending": len(pending),
                "unreadable": sum(op.status == PriorityStatus.UNREADABLE for op in pending),
                "next": None if not pending else pending[0].index,
                "oldest_deadline": oldest,
                "seconds_left": None if oldest is None else round(oldest - time.time(), 1),
            },
            "forced_by_this_chain": {
                "forcing": sum(m.status == OutStatus.FORCING for m in forced),
                "forced": sum(m.status == OutStatus.FORCED for m in forced),
                "overdue": sum(
                    m.force_deadline is not None and m.force_deadline < time.time() for m in forced
                ),
            },
        }

    @staticmethod
    def _chain_health(
        ctx: Context, chain: Chain, chain_id: int, watcher: str, halt: Halt | None
    ) -> dict[str, Any]:
        return {
            "chain_id": chain_id,
            **ctx.watchers[watcher].health(),
            "halted": None if halt is None else halt.reason,
            "endpoint": chain.current_url,
            "endpoints": chain.endpoints(),
        }


async def _resync(ctx: Context, peer: str) -> bool:
    """Ask `peer` to push again now whatever waits for a receipt, and push this chain's own to it again;
    False if the request could not be sent (its pushes still go out on their schedule)."""
    try:
        ctx.store.push_now(peer)
        ctx.wakeups.wake("pusher")
        await ctx.send(peer, KIND_RESYNC, {})
    except Exception as exc:  # e.g. no bus key of the peer's on L1 yet, L1 unreachable, the disk full
        log.warning("cannot ask %s to push again: %s", peer, exc)
        return False
    return True


def _genesis(store: Store, name: str, rpc: RpcChain) -> bytes | None:
    """The genesis block a chain's endpoints must have: the config's, else the one pinned in the store
    at the first start (None before that)."""
    found = rpc.genesis or store.genesis(name, rpc.chain_id)
    return None if found is None else bytes.fromhex(found.removeprefix("0x"))


def _contract_problem(chain: Chain, contract: Contract, probe: str, kind: str) -> str | None:
    """Why `contract` is not a deployed `kind` (its `probe` view must answer), or None."""
    if not chain.w3.eth.get_code(contract.address):
        return f"{contract.address} has no code on chain {chain.chain_id}: it is not the {kind}"
    try:
        getattr(contract.functions, probe)().call()
    except Exception:
        return (
            f"{contract.address} on chain {chain.chain_id} does not answer as the {kind} does: "
            "is it another contract?"
        )
    return None


def open_store(path: Path, refusals: RefusalPolicy, config_path: Path) -> Store:
    """The daemon's store, repaired if an earlier xrelay left it half-way through a step; a store
    that is still inconsistent is refused, with what is wrong."""
    store = Store(path, refusals=refusals)
    for done in store.repair():
        log.warning("store %s repaired: %s", path, done)
    problems = store.check()
    if problems:
        store.close()
        raise ConfigError(
            config_path, [("store.path", f"the store {path} is inconsistent: " + "; ".join(problems))]
        )
    return store


def run(config_path: Path) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    daemon = Daemon(config_path)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(daemon.run())
