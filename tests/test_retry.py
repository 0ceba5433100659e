"""hub.retry: the one retry policy, by its exact values."""

from __future__ import annotations

from hub.retry import DELAYS, REPUSH, RETRY


def test_the_delays_are_the_table() -> None:
    assert DELAYS == (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
    assert [RETRY.delay(n) for n in range(1, 10)] == [1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 300.0, 300.0]
    assert RETRY.delay(0) == RETRY.delay(-5) == 1.0  # a first try counts as one


def test_pushes_wait_thirty_times_as_long() -> None:
    assert [REPUSH.delay(n) for n in (1, 2, 3, 7, 50)] == [30.0, 60.0, 150.0, 9000.0, 9000.0]


def test_next_attempt_is_from_now() -> None:
    assert RETRY.next_attempt(3, now=1000.0) == 1005.0
