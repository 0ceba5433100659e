"""The daemon's Prometheus metrics, in a registry of its own (so two daemons in one process, as in
the tests, never share or clash).

The daemon calls the event methods as things happen; the backlog gauges are recomputed from the
store by `refresh_from_store` (the admin API does it on every scrape of /metrics).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bridge_contracts.swaps import SwapReason
from hub.bus import DROP_KINDS, Bus
from relayer.store import (
    FINAL_STATUSES,
    HALT_SCOPES,
    PENDING_PRIORITY,
    PriorityStatus,
    Store,
    SwapSide,
    SwapStatus,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Content-Type of `Metrics.render()`'s text."""

PROVING_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.backlog = Gauge(
            "xrelay_backlog",
            "Messages not yet in a final status (executed, failed, refused), per peer and direction.",
            ["peer", "direction"],
            registry=self.registry,
        )
        self.oldest_pending_seconds = Gauge(
            "xrelay_oldest_pending_seconds",
            "Age of the oldest message to or from the peer not yet in a final status (0: none).",
            ["peer"],
            registry=self.registry,
        )
        self.batches_proven = Counter(
            "xrelay_batches_proven", "Batches of this chain's messages proven.", registry=self.registry
        )
        self.batches_settled = Counter(
            "xrelay_batches_settled", "Batches committed and settled on the L1 Hub.", registry=self.registry
        )
        self.proving_seconds = Histogram(
            "xrelay_proving_seconds",
            "Time to prove one batch.",
            buckets=PROVING_BUCKETS,
            registry=self.registry,
        )
        self.failures = Counter("xrelay_failures", "Failures, by reason.", ["reason"], registry=self.registry)
        self.messages_executed = Counter(
            "xrelay_messages_executed",
            "Incoming messages executed on this chain, per source peer.",
            ["peer"],
            registry=self.registry,
        )
        self.halted = Gauge(
            "xrelay_halted",
            "1 while a stream is halted for an operator (a reorganisation deeper than finality, or a "
            "conflict with the chain): 'outbox' stops this chain's whole outgoing pipeline.",
            ["scope"],
            registry=self.registry,
        )
        self.reorgs = Counter(
            "xrelay_reorgs",
            "Reorganisations seen, per chain ('chain' or 'l1') and whether they reached a final block.",
            ["chain", "deep"],
            registry=self.registry,
        )
        self.messages_forced = Counter(
            "xrelay_messages_forced",
            "Outgoing messages forced through the L1 priority queue, per destination peer.",
            ["peer"],
            registry=self.registry,
        )
        self.priority_queue_length = Gauge(
            "xrelay_priority_queue_length",
            "Operations of this chain's L1 priority queue not processed yet (forced to this chain).",
            registry=self.registry,
        )
        self.priority_unreadable = Gauge(
            "xrelay_priority_unreadable",
            "Operations of this chain's L1 priority queue whose message this daemon does not have: the "
            "queue cannot move past the first until an operator acts.",
            registry=self.registry,
        )
        self.priority_deadline_seconds = Gauge(
            "xrelay_priority_oldest_deadline_seconds",
            "Seconds left before the deadline of the oldest unprocessed operation of this chain's L1 "
            "priority queue (negative: overdue, anyone may freeze the chain; absent: none).",
            registry=self.registry,
        )
        self.swaps = Gauge(
            "xrelay_swaps",
            "Swaps on this chain's desk, by side (a: its users', b: its desk's) and status (initiated, "
            "completed, refunded).",
            ["side", "status"],
            registry=self.registry,
        )
        self.swaps_refunded = Gauge(
            "xrelay_swaps_refunded",
            "Refunded swaps on this chain's desk, by reason (slippage, expired, inventory-short, ...).",
            ["reason"],
            registry=self.registry,
        )
        self.swap_nearest_deadline_seconds = Gauge(
            "xrelay_swap_nearest_deadline_seconds",
            "Seconds left before the nearest deadline of the swaps this chain's users started that have no "
            "result yet (negative: past it, B refunds the swap when it runs its phase 2; absent: none).",
            registry=self.registry,
        )
        self._backlog_labels: set[tuple[str, str]] = set()
        self._pending_peers: set[str] = set()

    # --- events ---------------------------------------------------------------------------------

    def batch_proven(self, seconds: float) -> None:
        self.batches_proven.inc()
        self.proving_seconds.observe(seconds)

    def batch_settled(self) -> None:
        self.batches_settled.inc()

    def failure(self, reason: str) -> None:
        """`reason`: a short fixed word ("prove", "commit", "execute", "rpc", ...), never a free text
        (each distinct value is a time series)."""
        self.failures.labels(reason=reason).inc()

    def executed(self, peer: str) -> None:
        self.messages_executed.labels(peer=peer).inc()

    def forced(self, peer: str) -> None:
        self.messages_forced.labels(peer=peer).inc()

    def reorg(self, chain: str, *, deep: bool) -> None:
        self.reorgs.labels(chain=chain, deep=str(deep).lower()).inc()

    def watch_bus(self, bus: Bus) -> None:
        """Export the bus's state, read at every scrape: xrelay_bus_deaf, xrelay_bus_connected,
        xrelay_bus_last_heard_seconds, xrelay_bus_deaf_episodes_total, xrelay_bus_reconnects_total,
        xrelay_bus_sessions_lost_total and xrelay_bus_dropped_total{reason}."""
        self.registry.register(_BusCollector(bus))

    # --- from the store -------------------------------------------------------------------------

    def refresh_from_store(self, store: Store, now: float | None = None) -> None:
        """Recompute the backlog gauges; series seen before that have nothing pending go to 0."""
        now = time.time() if now is None else now
        backlog: dict[tuple[str, str], int] = {}
        for (direction, peer, status), count in store.counts().items():
            if status not in FINAL_STATUSES:
                backlog[peer, direction] = backlog.get((peer, direction), 0) + count
        for peer, direction in self._backlog_labels | set(backlog):
            self.backlog.labels(peer=peer, direction=direction).set(backlog.get((peer, direction), 0))
        self._backlog_labels |= set(backlog)
        oldest = store.oldest_pending()
        for peer in self._pending_peers | set(oldest):
            since = oldest.get(peer)
            self.oldest_pending_seconds.labels(peer=peer).set(0 if since is None else max(0.0, now - since))
        self._pending_peers |= set(oldest)
        for scope in HALT_SCOPES:
            self.halted.labels(scope=scope).set(store.active_halt(scope) is not None)
        pending = store.priority_ops(status=PENDING_PRIORITY)
        self.priority_queue_length.set(len(pending))
        self.priority_unreadable.set(sum(op.status == PriorityStatus.UNREADABLE for op in pending))
        if pending:
            self.priority_deadline_seconds.set(min(op.deadline for op in pending) - now)
        else:
            self.priority_deadline_seconds.set(float("nan"))
        self._refresh_swaps(store, now)

    def _refresh_swaps(self, store: Store, now: float) -> None:
        by_status: dict[tuple[str, str], int] = {
            (str(side), str(s)): 0 for side in SwapSide for s in SwapStatus
        }
        refunded: dict[str, int] = {reason.word: 0 for reason in SwapReason if reason}
        for (side, status, reason), count in store.swap_counts().items():
            by_status[side, status] = by_status.get((side, status), 0) + count
            if status == SwapStatus.REFUNDED and reason:
                refunded[reason] = refunded.get(reason, 0) + count
        for (side, status), count in by_status.items():
            self.swaps.labels(side=side, status=status).set(count)
        for reason, count in refunded.items():
            self.swaps_refunded.labels(reason=reason).set(count)
        deadlines = store.swap_deadlines()
        self.swap_nearest_deadline_seconds.set(min(deadlines.values()) - now if deadlines else float("nan"))

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class _BusCollector(Collector):
    """The bus's liveness and drops, as its `Bus` counts them."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def collect(self) -> Iterator[Metric]:
        bus = self.bus
        yield GaugeMetricFamily(
            "xrelay_bus_deaf",
            "1 while the daemon is connected to the broker but does not hear its own probes.",
            value=float(bus.deaf),
        )
        yield GaugeMetricFamily(
            "xrelay_bus_connected", "1 while connected to the broker.", value=float(bus.connected)
        )
        age = GaugeMetricFamily(
            "xrelay_bus_last_heard_seconds",
            "Seconds since the daemon last heard its own probe through the broker (none: never).",
        )
        if bus.last_heard is not None:
            age.add_metric([], max(0.0, time.time() - bus.last_heard))
        yield age
        for name, help_text, value in (
            ("xrelay_bus_deaf_episodes", "Times the daemon found itself deaf on the bus.", bus.deaf_episodes),
            ("xrelay_bus_reconnects", "Connections to the broker after the first.", bus.reconnects),
            (
                "xrelay_bus_sessions_lost",
                "Reconnections on which the broker kept no session for the daemon.",
                bus.sessions_lost,
            ),
        ):
            yield CounterMetricFamily(name, help_text, value=value)
        dropped = CounterMetricFamily(
            "xrelay_bus_dropped",
            "Incoming messages the bus dropped, by reason: too_large, queue_full (a peer over its "
            "quota), retained (stale garbage on an inbox topic), foreign_topic.",
            labels=["reason"],
        )
        for kind in DROP_KINDS:
            dropped.add_metric([kind], bus.dropped.get(kind, 0))
        yield dropped
