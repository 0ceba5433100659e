"""The daemon's store: messages and their transitions, replays, batches, cursors, refusals, and two
processes writing at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from relayer.store import MessageRow, Store, StoreError, UnknownMessage
from tests.stored import message_row

BIG = 2**200 + 7  # beyond a 64-bit column: stored as text


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.sqlite") as opened:
        yield opened


def test_transitions_are_recorded_in_order_with_their_reasons(store: Store) -> None:
    assert store.add_message(message_row(1), "received", "delivered by bank-b")
    store.transition("902:1", "verified", "path and proof checked")
    store.transition("902:1", "executing", "in an executeMany transaction")
    store.transition("902:1", "executed", "MessageExecuted", exec_tx="0xabc", exec_gas=51000, executed_at=9.0)

    steps = [(h["from_status"], h["to_status"], h["reason"]) for h in store.history("902:1")]
    assert steps == [
        (None, "received", "delivered by bank-b"),
        ("received", "verified", "path and proof checked"),
        ("verified", "executing", "in an executeMany transaction"),
        ("executing", "executed", "MessageExecuted"),
    ]
    times = [h["at"] for h in store.history("902:1")]
    assert times == sorted(times)
    row = store.message("902:1")
    assert row is not None
    assert (row["status"], row["exec_tx"], row["exec_gas"], row["executed_at"]) == (
        "executed",
        "0xabc",
        51000,
        9.0,
    )
    assert row["updated_at"] >= row["created_at"]


def test_a_message_comes_back_as_it_went_in(store: Store) -> None:
    m = message_row(3, amount=BIG, leaf=BIG)
    store.add_message(m, "received", "delivered", payload={"delivery": [1, 2**70]})
    row = store.message("902:3")
    assert row is not None
    assert (row["amount"], row["leaf"]) == (str(BIG), str(BIG))  # big ints as decimal text
    assert row["payload"] == '{"delivery":[1,1180591620717411303424]}'
    assert (row["attempts"], row["next_attempt_at"], row["error"]) == (0, None, None)
    assert MessageRow.from_row(row) == m


def test_adding_a_message_again_changes_nothing(store: Store) -> None:
    assert store.add_message(message_row(1), "received", "first delivery")
    store.transition("902:1", "verified", "checked")
    assert not store.add_message(message_row(1), "received", "delivered again after a restart")
    row = store.message("902:1")
    assert row is not None and row["status"] == "verified"
    assert len(store.history("902:1")) == 2


def test_transitions_refuse_unknown_messages_statuses_and_columns(store: Store) -> None:
    store.add_message(message_row(1), "received", "delivered")
    with pytest.raises(UnknownMessage, match="no message 902:9"):
        store.transition("902:9", "verified", "checked")
    with pytest.raises(StoreError, match="'batched' is not a status of an incoming message"):
        store.transition("902:1", "batched", "wrong direction")
    with pytest.raises(StoreError, match="cannot set colour on a message"):
        store.transition("902:1", "verified", "checked", colour="red")
    with pytest.raises(StoreError, match="does not match its source chain and nonce"):
        store.add_message(replace(message_row(2), id="902:3"), "received", "bad id")
    assert [h["to_status"] for h in store.history("902:1")] == ["received"]


def test_transition_many_is_all_or_nothing(store: Store) -> None:
    for nonce in (1, 2):
        store.add_message(message_row(nonce, direction="out", source=901), "sent", "MessageSent")
    store.transition_many(["901:1", "901:2"], "batched", "in batch 0", batch_number=0)
    assert {r["status"] for r in store.messages()} == {"batched"}
    with pytest.raises(UnknownMessage):
        store.transition_many(["901:1", "901:7"], "settled", "batch 0 settled")
    assert {r["status"] for r in store.messages()} == {"batched"}
    assert all(len(store.history(i)) == 2 for i in ("901:1", "901:2"))


def test_messages_filter_and_come_oldest_first(store: Store) -> None:
    store.add_message(message_row(1), "received", "delivered")
    store.add_message(message_row(1, direction="out", source=901), "sent", "MessageSent")
    store.add_message(message_row(2), "received", "delivered")
    store.transition("902:2", "verified", "checked")
    assert [r["id"] for r in store.messages()] == ["902:1", "901:1", "902:2"]
    assert [r["id"] for r in store.messages(direction="in")] == ["902:1", "902:2"]
    assert [r["id"] for r in store.messages(status=["sent", "verified"])] == ["901:1", "902:2"]
    assert [r["id"] for r in store.messages(status="received", peer="bank-b")] == ["902:1"]
    assert store.messages(peer="bank-z") == []
    assert [r["id"] for r in store.messages(limit=2)] == ["902:1", "901:1"]
    assert store.counts() == {
        ("in", "bank-b", "received"): 1,
        ("in", "bank-b", "verified"): 1,
        ("out", "bank-b", "sent"): 1,
    }
    assert store.oldest_pending() == {"bank-b": store.messages()[0]["created_at"]}


def _failed(store: Store, nonce: int) -> str:
    store.add_message(message_row(nonce), "received", "delivered")
    store.transition(f"902:{nonce}", "verified", "checked")
    store.transition(f"902:{nonce}", "failed", "target reverted", error="TargetFailing()", attempts=3)
    return f"902:{nonce}"


def test_a_failed_message_is_replayed_once(store: Store) -> None:
    message_id = _failed(store, 1)
    assert store.request_replay(message_id) == "replay"
    row = store.message(message_id)
    assert row is not None
    assert (row["status"], row["attempts"]) == ("replay", 0)
    assert row["next_attempt_at"] == pytest.approx(row["updated_at"])
    assert store.request_replay(message_id) == "replay"  # idempotent: nothing more recorded
    assert [h["to_status"] for h in store.history(message_id)] == ["received", "verified", "failed", "replay"]
    assert store.history(message_id)[-1]["reason"] == "replay requested by the operator"
    store.transition(message_id, "verified", "picked up for a replay")
    assert store.request_replay(message_id) == "verified"
    assert len(store.history(message_id)) == 5


def test_replay_is_refused_for_executed_unknown_outgoing_and_unverified_messages(store: Store) -> None:
    message_id = _failed(store, 1)
    store.request_replay(message_id)
    store.transition(message_id, "executed", "MessageExecuted", exec_tx="0xfeed", executed_at=0.0)
    with pytest.raises(
        StoreError,
        match="message 902:1 was executed at 1970-01-01 00:00:00Z in transaction 0xfeed; "
        "it cannot be replayed",
    ):
        store.request_replay(message_id)
    with pytest.raises(UnknownMessage, match="no message 902:8"):
        store.request_replay("902:8")
    store.add_message(message_row(1, direction="out", source=901), "sent", "MessageSent")
    with pytest.raises(StoreError, match="message 901:1 is outgoing"):
        store.request_replay("901:1")
    store.add_message(message_row(2), "received", "delivered")
    store.transition("902:2", "refused", "bad path")
    with pytest.raises(StoreError, match="902:2 is 'refused': only a failed message can be replayed"):
        store.request_replay("902:2")
    assert store.history(message_id)[-1]["to_status"] == "executed"


def test_batches(store: Store) -> None:
    store.add_batch(0, capacity=16, count=2, first_nonce=0, last_nonce=1, h_start=0, h_end=BIG)
    store.add_batch(1, capacity=16, count=1, first_nonce=2, last_nonce=2, h_start=str(BIG), h_end="5")
    with pytest.raises(StoreError, match="batch 0 is already in the store"):
        store.add_batch(0, capacity=16)
    store.update_batch(0, "proven", public_inputs=[1, BIG], proof={"pi_a": ["1", "2"]}, proving_seconds=2.5)
    with pytest.raises(StoreError, match="no batch 5"):
        store.update_batch(5, "proven")
    with pytest.raises(StoreError, match="unknown batch status 'done'"):
        store.update_batch(0, "done")
    batch = store.batch(0)
    assert batch is not None
    assert (batch["status"], batch["h_end"], batch["attempts"]) == ("proven", str(BIG), 0)
    assert batch["public_inputs"] == f'["1","{BIG}"]'
    assert batch["proof"] == '{"pi_a":["1","2"]}'
    assert [b["batch_number"] for b in store.batches()] == [0, 1]
    assert [b["batch_number"] for b in store.batches(status="proving")] == [1]
    assert store.batch(7) is None


def test_cursors(store: Store) -> None:
    assert store.cursor("outbox") is None
    store.set_cursor("outbox", 10)
    store.set_cursor("outbox", 12)
    store.set_cursor("l1-deposits", 3)
    assert (store.cursor("outbox"), store.cursor("l1-deposits")) == (12, 3)


def test_refusals_are_kept_newest_first(store: Store) -> None:
    store.refuse(peer="bank-b", chain_id=902, kind="messages", reason="bad signature", raw=b'{"a":1}')
    store.refuse(peer=None, chain_id=None, kind="envelope", reason="not JSON", raw=b"\xff")
    rows = store.refusals()
    assert [(r["kind"], r["reason"], r["raw"]) for r in rows] == [
        ("envelope", "not JSON", b"\xff"),
        ("messages", "bad signature", b'{"a":1}'),
    ]
    assert (rows[1]["peer"], rows[1]["chain_id"]) == ("bank-b", 902)
    assert len(store.refusals(limit=1)) == 1


def test_reopening_keeps_everything_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        store.add_message(message_row(1), "received", "delivered")
    with Store(path) as store:
        assert [h["to_status"] for h in store.history("902:1")] == ["received"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database " * 100)
    with pytest.raises(StoreError, match=r"cannot use .*notes\.txt as a store"):
        Store(path)


# --- two processes at once ------------------------------------------------------------------------

WRITES = 150


def _writer(path: str, source: int, start: Any) -> None:
    start.wait()  # both processes open the new file, and write, at the same moment
    with Store(path) as store:
        for nonce in range(WRITES):
            store.add_message(message_row(nonce, source=source), "received", f"from process {source}")
            store.transition(f"{source}:{nonce}", "verified", "checked")
            store.refuse(peer=None, chain_id=source, kind="test", reason="a refusal", raw=b"x")
        store.transition_many([f"{source}:{n}" for n in range(WRITES)], "executing", "all at once")
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
                statuses = [h["to_status"] for h in store.history(f"{source}:{nonce}")]
                assert statuses == ["received", "verified", "executing"]
        assert len(store.refusals()) == 2 * WRITES
