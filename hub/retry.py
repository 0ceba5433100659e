"""The one retry policy of the daemons and the hub service: how long to wait before trying a failed
thing again.

Every retry follows it: a transaction the chain refused or never mined (commits, executions,
withdrawals), a push that got no receipt, a step of the pipeline that raised (an RPC endpoint down),
a lost connection to the broker. The number of tries so far is kept with what is tried (a batch's or
a message's `attempts` in the store), so the wait resumes where it was after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Seconds before try n + 1 after n failed tries (n = 1, 2, ...); the last one repeats."""


@dataclass(frozen=True)
class RetryPolicy:
    """`DELAYS`, each multiplied by `scale` (a push waits longer than a transaction: its answer, the
    peer's receipt, needs the peer to verify and execute first)."""

    scale: float = 1.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after `attempts` failed tries (at least one)."""
        return self.scale * DELAYS[min(max(attempts, 1), len(DELAYS)) - 1]

    def next_attempt(self, attempts: int, now: float) -> float:
        """When to try again (unix time), after `attempts` failed tries at `now`."""
        return now + self.delay(attempts)


RETRY = RetryPolicy()
"""Transactions, RPC calls and the daemon's steps."""
REPUSH = RetryPolicy(scale=30.0)
"""Pushes to a peer that has not sent its receipt: again after 30 s, 60 s, 150 s, ..."""
