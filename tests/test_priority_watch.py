"""This chain's priority queue as the store, the metrics and the deadline warnings see it: operations
recorded from L1 with their messages, and warnings that rise once per operation as a deadline nears."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from bridge_contracts.messages import Message
from relayer.metrics import Metrics
from relayer.pipeline.priority import DeadlineWatch
from relayer.store import PriorityStatus, QueuedOp, Store

USER = "0x00000000000000000000000000000000000000aa"


def _op(index: int, deadline: float, *, message: bool = True) -> QueuedOp:
    m = Message(901, 902, index, USER, USER, bytes(32), 0, b"forced", b"")
    return QueuedOp(
        index=index,
        priority_id=bytes([index]) * 32,
        source_chain_id=901,
        batch_number=0,
        index_in_batch=index,
        deadline=deadline,
        rolling_hash=bytes(32),
        block_number=10,
        peer="bank-a",
        message=m if message else None,
        siblings=(1, 2, 3),
        problem=None if message else "its sealed body does not open",
    )


def test_operations_are_stored_with_their_messages_and_counted_by_the_metrics(tmp_path: Path) -> None:
    now = time.time()
    with Store(tmp_path / "s.sqlite") as store:
        assert (
            store.record_priority_ops(
                [_op(0, now + 600), _op(1, now + 30, message=False)], cursor=("l1-priority", 10)
            )
            == 2
        )
        assert store.record_priority_ops([_op(0, now + 600)], cursor=("l1-priority", 11)) == 0  # read again
        first, second = store.priority_ops()
        assert (first.status, first.message_id, first.leaf) == (
            PriorityStatus.QUEUED,
            "901:0",
            first.message and first.message.leaf(),
        )
        assert (second.status, second.message_id, second.error) == (
            PriorityStatus.UNREADABLE,
            None,
            "its sealed body does not open",
        )
        message = store.message("901:0")
        assert message is not None and message.status == "verified"
        assert store.priority_processed() == 0
        metrics = Metrics()
        metrics.refresh_from_store(store, now=now)
        text = metrics.render().decode()
        assert "xrelay_priority_queue_length 2.0" in text
        assert "xrelay_priority_unreadable 1.0" in text
        assert "xrelay_priority_oldest_deadline_seconds 30." in text
        store.start_priority([0])
        store.record_priority_outcomes({0: ("executed", "")}, tx="0x" + "ab" * 32, gas_each=1, block=5)
        assert store.priority_processed() == 1
        message = store.message("901:0")
        assert message is not None and message.status == "executed"


def test_deadline_warnings_rise_once_per_operation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    now = time.time()
    with Store(tmp_path / "s.sqlite") as store:
        store.record_priority_ops([_op(0, now + 100)], cursor=("l1-priority", 10))
        (op,) = store.priority_ops()
    window = op.deadline - op.created_at
    watch = DeadlineWatch()
    caplog.set_level(logging.WARNING, logger="relayer.pipeline.priority")
    said = []
    for share in (0.1, 0.6, 0.7, 0.95, 1.01, 1.02):  # of the window gone
        caplog.clear()
        watch.check([op], op.created_at + window * share)
        said.append([(r.levelname, r.getMessage()) for r in caplog.records])
    assert [[level for level, _ in logged] for logged in said] == [
        [],
        ["WARNING"],
        [],
        ["ERROR"],
        ["CRITICAL"],
        [],
    ]
    assert "s left before its deadline" in said[1][0][1]
    assert "is past its deadline" in said[4][0][1] and "anyone may freeze it" in said[4][0][1]
