"""relayer.store.Store: the steps of a message's and a batch's life, each one transaction (a crash
anywhere inside a step leaves the store as before it), the invariants, repair of an older store,
typed rows, bounded refusals, and two processes at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge_contracts.messages import Message
from relayer.store import (
    BatchStatus,
    Deposit,
    Direction,
    InStatus,
    Outcome,
    OutStatus,
    ReceiptUpdate,
    Received,
    RefusalPolicy,
    Sent,
    StepRefused,
    Store,
    StoreError,
    UnknownMessage,
    WatchCursor,
)
from tests import stored

A, B, L1 = 901, 902, 900
PROOF = {"pi_a": ["1", "2", "1"], "protocol": "groth16"}


def message(nonce: int, *, source: int = A, dest: int = B, amount: int = 0) -> Message:
    return stored.message(source, dest, nonce, amount)


def sent(nonce: int, **kwargs: Any) -> Sent:
    return Sent(message(nonce, **kwargs), "bank-b", 10 + nonce, outbox_hash=1000 + nonce)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.sqlite") as s:
        yield s


# --- the outgoing side ----------------------------------------------------------------------------


def settle(store: Store, count: int = 3) -> None:
    """Messages 0..count-1 sent, batched in batch 0, proven and settled."""
    store.record_sent([sent(n) for n in range(count)], cursor=("outbox", 20))
    store.close_batch(0, capacity=8, message_ids=[f"{A}:{n}" for n in range(count)])
    store.record_proof(0, batch_root=77, public_inputs=[A, 0, 1, 2], proof=PROOF, seconds=1.5)
    store.start_commit(0)
    store.settle_batch(0, leaf_index=4, tx="0xabc", gas=300_000, reason="committed")


def test_an_outgoing_message_goes_through_its_life(store: Store) -> None:
    assert store.record_sent([sent(0, amount=5), sent(1)], cursor=("outbox", 20)) == 2
    assert store.record_sent([sent(0, amount=5)], cursor=("outbox", 21)) == 0  # seen again: nothing new
    assert store.cursor("outbox") == 21
    m = store.message(f"{A}:0")
    assert m is not None
    assert (m.direction, m.status, m.message, m.leaf) == (
        Direction.OUT,
        "sent",
        message(0, amount=5),
        message(0, amount=5).leaf(),
    )
    assert (m.outbox_hash, m.block_number, m.attempts) == (1000, 10, 0)

    batch = store.close_batch(0, capacity=8, message_ids=[f"{A}:0", f"{A}:1"])
    assert (batch.status, batch.count, batch.first_nonce, batch.last_nonce, batch.h_start, batch.h_end) == (
        BatchStatus.PROVING,
        2,
        0,
        1,
        0,
        1001,
    )
    assert [m.index_in_batch for m in store.messages(batch_number=0)] == [0, 1]
    assert store.record_proof(0, batch_root=77, public_inputs=[A, 0], proof=PROOF, seconds=1.5)
    assert not store.record_proof(0, batch_root=77, public_inputs=[A, 0], proof=PROOF, seconds=1.5)
    proven = store.batch(0)
    assert proven is not None
    assert (proven.status, proven.batch_root, proven.public_inputs, proven.proof) == (
        "proven",
        77,
        (A, 0),
        PROOF,
    )
    assert store.start_commit(0).status == BatchStatus.COMMITTING
    refused = store.commit_refused(0, "Overdraft(901)")
    assert (refused.status, refused.attempts, refused.error) == ("proven", 1, "Overdraft(901)")
    assert refused.due > refused.updated_at  # on the retry policy
    store.start_commit(0)
    assert store.settle_batch(0, leaf_index=4, tx="0xabc", gas=1, reason="committed")
    assert not store.settle_batch(0, leaf_index=4, tx="0xabc", gas=1, reason="found on L1")
    assert {m.status for m in store.messages(batch_number=0)} == {"settled"}
    assert [t.to_status for t in store.batch_history(0)] == [
        "proving",
        "proven",
        "committing",
        "proven",
        "committing",
        "settled",
    ]

    [pushed] = store.record_push([f"{A}:0"], "bank-b", "pushed to bank-b")
    assert (pushed.status, pushed.attempts) == ("pushed", 1)
    assert pushed.due - pushed.updated_at == pytest.approx(30.0)  # REPUSH after one try
    [again] = store.record_push([f"{A}:0"], "bank-b", "pushed to bank-b")
    assert again.attempts == 2
    ignored = store.record_receipts(
        "bank-b",
        [
            ReceiptUpdate(f"{A}:0", OutStatus.REFUSED, None, "target not allowed"),
            ReceiptUpdate(f"{A}:9", OutStatus.EXECUTED, "0x1", None),  # not ours
            ReceiptUpdate(f"{A}:1", OutStatus.EXECUTED, "0x2", None),  # not pushed yet: kept as it is
        ],
    )
    assert ignored == [f"receipt for {A}:9, which is not a message this chain sent to bank-b"]
    refused_message = store.message(f"{A}:0")
    assert refused_message is not None
    assert (refused_message.status, refused_message.error) == ("refused", "target not allowed")
    assert [t.to_status for t in store.history(f"{A}:0")] == [
        "sent",
        "batched",
        "settled",
        "pushed",
        "pushed",
        "refused",
    ]
    assert store.check() == []


def test_close_batch_refuses_what_is_not_the_next_run_of_sent_messages(store: Store) -> None:
    store.record_sent([sent(n) for n in range(4)], cursor=("outbox", 20))
    with pytest.raises(StepRefused, match="the next batch is 0"):
        store.close_batch(1, capacity=8, message_ids=[f"{A}:0"])
    with pytest.raises(StepRefused, match="has nonce 1, the batch needs 0"):
        store.close_batch(0, capacity=8, message_ids=[f"{A}:1"])
    with pytest.raises(StoreError, match="exceed capacity 2"):
        store.close_batch(0, capacity=2, message_ids=[f"{A}:{n}" for n in range(3)])
    store.close_batch(0, capacity=8, message_ids=[f"{A}:0", f"{A}:1"])
    with pytest.raises(StepRefused, match="is batched, not a sent"):
        store.close_batch(1, capacity=8, message_ids=[f"{A}:1"])
    batch = store.close_batch(1, capacity=8, message_ids=[f"{A}:2"])
    assert (batch.first_nonce, batch.h_start, batch.h_end) == (2, 1001, 1002)
    assert store.check() == []


# --- the incoming side ----------------------------------------------------------------------------


def receive(store: Store) -> None:
    store.receive("bank-b", [Received(message(n, source=B, dest=A), "{}") for n in range(3)], "from bank-b")


def test_an_incoming_message_goes_through_its_life(store: Store) -> None:
    receive(store)
    receive(store)  # a duplicate delivery: nothing new
    assert store.counts() == {("in", "bank-b", "received"): 3}
    store.record_verdicts(verified=[f"{B}:0", f"{B}:1"], refused={f"{B}:2": "bad path: no"})
    store.record_verdicts(verified=[f"{B}:2"], refused={})  # no longer received: left alone
    assert store.message(f"{B}:2").status == "refused"  # type: ignore[union-attr]
    store.start_execution([f"{B}:0", f"{B}:1"])
    with pytest.raises(StepRefused, match="only a verified message is executed"):
        store.start_execution([f"{B}:2"])
    store.execution_not_sent([f"{B}:0", f"{B}:1"], "nonce too low")
    m = store.message(f"{B}:0")
    assert m is not None and (m.status, m.attempts, m.error) == ("verified", 1, "nonce too low")
    store.start_execution([f"{B}:0", f"{B}:1"])
    store.record_outcomes(
        [
            Outcome(f"{B}:0", InStatus.EXECUTED, "executed in 0xt"),
            Outcome(f"{B}:1", InStatus.FAILED, "Reverted"),
        ],
        tx="0xt",
        gas_each=100,
    )
    assert [m.status for m in store.messages(direction="in")] == ["executed", "failed", "refused"]
    assert store.request_replay(f"{B}:1") == "replay"
    assert store.request_replay(f"{B}:1") == "replay"  # idempotent
    with pytest.raises(StoreError, match="was executed"):
        store.request_replay(f"{B}:0")
    with pytest.raises(StoreError, match="it did not verify"):
        store.request_replay(f"{B}:2")
    with pytest.raises(UnknownMessage):
        store.request_replay(f"{B}:9")
    assert store.check() == []


def test_deposits_arrive_verified_with_the_cursor(store: Store) -> None:
    deposit = Deposit(message(0, source=L1, dest=A, amount=9), block_number=5, leaf_index=3)
    assert store.record_deposits([deposit], cursor=("l1-deposits", 7)) == 1
    assert store.record_deposits([deposit], cursor=("l1-deposits", 8)) == 0
    m = store.message(f"{L1}:0")
    assert m is not None and (m.peer, m.status, m.payload) == (
        "l1",
        "verified",
        '{"deposit":{"leaf_index":3}}',
    )
    assert store.cursor("l1-deposits") == 8


# --- a crash inside any step leaves the store before it -------------------------------------------


def _snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    conn = store._db.conn
    tables = ("messages", "transitions", "batches", "batch_transitions", "cursors", "refusals")
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def _nothing(store: Store) -> None:
    pass


def _sent(store: Store) -> None:
    store.record_sent([sent(n) for n in range(3)], cursor=("outbox", 9))


def _committing(store: Store) -> None:
    _sent(store)
    store.close_batch(0, capacity=8, message_ids=[f"{A}:{n}" for n in range(3)])
    store.record_proof(0, batch_root=7, public_inputs=[1], proof=PROOF, seconds=1.0)
    store.start_commit(0)


def _pushed(store: Store) -> None:
    settle(store)
    store.record_push([f"{A}:{n}" for n in range(3)], "bank-b", "pushed")


def _verified(store: Store) -> None:
    receive(store)
    store.record_verdicts(verified=[f"{B}:{n}" for n in range(3)], refused={})


def _executing(store: Store) -> None:
    _verified(store)
    store.start_execution([f"{B}:{n}" for n in range(3)])


def _failed(store: Store) -> None:
    _executing(store)
    store.record_outcomes([Outcome(INCOMING[0], InStatus.FAILED, "x")], tx=None, gas_each=None)


INCOMING = [f"{B}:{n}" for n in range(3)]
STEPS: dict[str, tuple[Callable[[Store], None], Callable[[Store], object]]] = {
    "record_sent": (_nothing, _sent),
    "close_batch": (
        _sent,
        lambda s: s.close_batch(0, capacity=8, message_ids=[f"{A}:{n}" for n in range(3)]),
    ),
    "settle_batch": (
        _committing,
        lambda s: s.settle_batch(0, leaf_index=1, tx="0x1", gas=1, reason="committed"),
    ),
    "record_push": (settle, lambda s: s.record_push([f"{A}:{n}" for n in range(3)], "bank-b", "pushed")),
    "record_receipts": (
        _pushed,
        lambda s: s.record_receipts(
            "bank-b", [ReceiptUpdate(f"{A}:{n}", OutStatus.EXECUTED, "0x1", None) for n in range(3)]
        ),
    ),
    "record_deposits": (
        _nothing,
        lambda s: s.record_deposits(
            [Deposit(message(n, source=L1, dest=A), 5, n) for n in range(2)], cursor=("l1-deposits", 6)
        ),
    ),
    "receive": (_nothing, receive),
    "record_verdicts": (
        receive,
        lambda s: s.record_verdicts(verified=INCOMING[:2], refused={INCOMING[2]: "bad"}),
    ),
    "start_execution": (_verified, lambda s: s.start_execution(INCOMING)),
    "record_outcomes": (
        _executing,
        lambda s: s.record_outcomes(
            [
                Outcome(key, InStatus.EXECUTED if n else InStatus.FAILED, "x")
                for n, key in enumerate(INCOMING)
            ],
            tx="0x1",
            gas_each=1,
        ),
    ),
    "execution_not_sent": (_executing, lambda s: s.execution_not_sent(INCOMING, "refused")),
    "request_replay": (_failed, lambda s: s.request_replay(INCOMING[0])),
}


class Crash(Exception):
    pass


@pytest.mark.parametrize("name", sorted(STEPS))
def test_a_crash_anywhere_inside_a_step_leaves_the_store_before_it(tmp_path: Path, name: str) -> None:
    prepare, step = STEPS[name]
    statements = 0
    crash_at = 1
    while True:  # crash at each statement of the step in turn, then let it run through
        with Store(tmp_path / f"{name}-{crash_at}.sqlite") as store:
            prepare(store)
            before = _snapshot(store)
            real = store._db.execute
            count = 0

            def execute(sql: str, params: Any = None, *, real: Any = real, crash_at: int = crash_at) -> Any:
                nonlocal count
                count += 1
                if count == crash_at:  # COMMIT too: killed before the commit reached the disk
                    raise Crash(f"crash at statement {count}: {sql[:40]}")
                return real(sql) if params is None else real(sql, params)

            store._db.execute = execute  # type: ignore[method-assign,assignment]
            try:
                step(store)
            except Crash:
                store._db.execute = real  # type: ignore[method-assign]
                assert _snapshot(store) == before, f"{name}: crash at statement {crash_at} left a change"
                assert store.check() == []
                crash_at += 1
                continue
            store._db.execute = real  # type: ignore[method-assign]
            statements = count
            assert _snapshot(store) != before
            assert store.check() == []
            break
    assert statements >= 3  # BEGIN, the writes, COMMIT: every one of them was a crash point


# --- invariants and repair ------------------------------------------------------------------------


def test_check_and_repair_a_store_left_half_way_by_an_older_xrelay(store: Store) -> None:
    settle(store, count=3)
    store.record_sent([sent(n) for n in range(3, 6)], cursor=("outbox", 30))
    store.close_batch(1, capacity=8, message_ids=[f"{A}:3", f"{A}:4", f"{A}:5"])
    store.record_sent([sent(6)], cursor=("outbox", 31))
    conn = store._db.conn
    # What the old two-transaction steps could leave: a settled batch whose messages stayed "batched"
    # (with the history to match), and a closed batch with a message never moved in.
    conn.execute(f"UPDATE messages SET status = 'batched' WHERE id = '{A}:1'")
    conn.execute(f"DELETE FROM transitions WHERE message_id = '{A}:1' AND to_status = 'settled'")
    conn.execute(
        f"UPDATE messages SET status = 'sent', batch_number = NULL, index_in_batch = NULL WHERE id = '{A}:5'"
    )
    conn.execute(f"DELETE FROM transitions WHERE message_id = '{A}:5' AND to_status = 'batched'")
    # ...and a receipt applied to a message never pushed (the old receiver took any receipt).
    conn.execute(f"UPDATE messages SET status = 'executed' WHERE id = '{A}:6'")
    conn.execute(
        "INSERT INTO transitions (message_id, from_status, to_status, at, reason) "
        f"VALUES ('{A}:6', 'sent', 'executed', 1.0, 'bank-b reports executed')"
    )
    conn.commit()
    problems = store.check()
    assert f"message {A}:1 is batched in batch 0, which is settled" in problems
    assert "batch 1: count is 3, but 2 messages are in it" in problems
    assert f"message {A}:5 is sent, but a batch already holds its nonce" in problems
    assert f"message {A}:6 is executed with batch None" in problems
    done = store.repair()
    assert set(done) == {
        f"message {A}:1 settled with batch 0",
        f"message {A}:5 moved into batch 1",
        f"message {A}:6 back to sent: its receipt came before it was pushed",
    }
    assert store.check() == []
    assert [m.nonce for m in store.messages(batch_number=1)] == [3, 4, 5]


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with Store(path) as store:
        receive(store)
        store.refuse(peer="x", chain_id=1, kind="envelope", reason="bad", raw=b"y" * 10)
    conn = sqlite3.connect(path)
    _undo_v3(conn)
    conn.execute("DROP TABLE batch_transitions")
    conn.execute("DROP INDEX idx_refusals_at")
    conn.execute("ALTER TABLE refusals DROP COLUMN raw_size")
    conn.execute(
        "INSERT INTO refusals (at, peer, chain_id, kind, reason, raw) "
        "VALUES (1e9, 'x', 1, 'envelope', 'big', ?)",
        [b"z" * 10_000],
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.counts() == {("in", "bank-b", "received"): 3}
        with sqlite3.connect(tmp_path / "old.sqlite.v1.bak") as backup:  # what an operator goes back to
            assert backup.execute("PRAGMA user_version").fetchone()[0] == 1
            assert backup.execute("SELECT count(*) FROM refusals").fetchone()[0] == 2
        refusals = store.refusals()
        assert [(r.reason, r.raw_size, len(r.raw)) for r in refusals] == [
            ("big", 10_000, 4096),
            ("bad", 10, 10),
        ]
        assert store.batch_history(0) == []


def _undo_v3(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE dropped")
    conn.execute("DROP TABLE halts")
    conn.execute("ALTER TABLE messages DROP COLUMN block_hash")
    conn.execute("ALTER TABLE cursors DROP COLUMN block_hash")


def test_a_version_2_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    with Store(path) as store:
        receive(store)
        store.set_cursor("outbox", 7)
    conn = sqlite3.connect(path)
    _undo_v3(conn)
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.counts() == {("in", "bank-b", "received"): 3}
        assert store.watch_cursor("outbox") == WatchCursor("outbox", 7, None)
        assert store.active_halt("outbox") is None
        assert (tmp_path / "v2.sqlite.v2.bak").is_file()


def test_a_newer_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store(path)


# --- refusals, reading ----------------------------------------------------------------------------


def test_refusals_keep_a_bounded_part_and_are_pruned(tmp_path: Path) -> None:
    with Store(
        tmp_path / "s.sqlite", refusals=RefusalPolicy(raw_bytes=16, keep=3, max_age_seconds=3600)
    ) as store:
        store.refuse(peer="bank-b", chain_id=B, kind="envelope", reason="too big", raw=b"x" * 5_000_000)
        [kept] = store.refusals()
        assert (kept.raw, kept.raw_size, kept.peer, kept.chain_id) == (b"x" * 16, 5_000_000, "bank-b", B)
        for n in range(5):
            store.refuse(peer=None, chain_id=None, kind="envelope", reason=f"r{n}", raw=b"y")
        assert [r.reason for r in store.refusals()] == ["r4", "r3", "r2"]
        assert len(store.refusals(limit=10**30)) == 3  # a huge limit is no error
        store._db.conn.execute("UPDATE refusals SET at = at - 7200")
        store._db.conn.commit()
        store.refuse(peer=None, chain_id=None, kind="envelope", reason="new", raw=b"")
        assert [r.reason for r in store.refusals()] == ["new"]


def test_messages_filter_and_limit(store: Store) -> None:
    settle(store)
    receive(store)
    assert [m.id for m in store.messages(direction="in", limit=2)] == [f"{B}:0", f"{B}:1"]
    assert len(store.messages(status=["settled", "received"])) == 6
    assert store.messages(peer="nobody") == []
    assert len(store.messages(limit=10**30)) == 6


def test_reopening_keeps_everything_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        receive(store)
    with Store(path) as store:
        assert [t.to_status for t in store.history(f"{B}:1")] == ["received"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database " * 100)
    with pytest.raises(StoreError, match=r"cannot use .*notes\.txt as a store"):
        Store(path)


# --- two processes at once ------------------------------------------------------------------------

WRITES = 100


def _writer(path: str, source: int, start: Any) -> None:
    start.wait()  # both processes open the new file, and write, at the same moment
    with Store(path) as store:
        for nonce in range(WRITES):
            store.receive(
                "bank-b", [Received(message(nonce, source=source, dest=A), "{}")], f"from process {source}"
            )
            store.record_verdicts(verified=[f"{source}:{nonce}"], refused={})
            store.refuse(peer=None, chain_id=source, kind="test", reason="a refusal", raw=b"x")
        store.start_execution([f"{source}:{n}" for n in range(WRITES)])
        store.set_cursor(f"writer-{source}", WRITES)


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [context.Process(target=_writer, args=(str(path), source, start)) for source in (902, 903)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0, 0]
    with Store(path) as store:
        assert store.counts() == {("in", "bank-b", "executing"): 2 * WRITES}
        for source in (902, 903):
            assert store.cursor(f"writer-{source}") == WRITES
            for nonce in range(WRITES):
                statuses = [t.to_status for t in store.history(f"{source}:{nonce}")]
                assert statuses == ["received", "verified", "executing"]
        assert len(store.refusals()) == 2 * WRITES
        assert store.check() == []
