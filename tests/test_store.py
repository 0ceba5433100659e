"""relayer.store.Store: the steps of a message's and a batch's life, each one transaction (a crash
anywhere inside a step leaves the store as before it), the invariants, repair of an older store,
typed rows, bounded refusals, and two processes at once."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge_contracts.messages import Message, bounce_of
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


# --- halts and rewinds ----------------------------------------------------------------------------


def sent_in(nonce: int, block: int, **kwargs: Any) -> Sent:
    """Message `nonce` as read in `block`, with that block's hash."""
    return Sent(
        message(nonce, **kwargs), "bank-b", block, outbox_hash=1000 + nonce, block_hash=f"0x{block:x}"
    )


def test_one_halt_per_scope_until_an_operator_lifts_it(store: Store) -> None:
    store.record_sent([sent_in(0, 30), sent_in(1, 31)], cursor=WatchCursor("outbox", 31, "0x1f"))
    assert store.active_halt("outbox") is None and store.halts() == []
    halt = store.halt("outbox", "reorganisation deeper than finality at block 31", 31)
    assert (halt.scope, halt.reason, halt.block, halt.lifted_at, halt.decision) == (
        "outbox",
        "reorganisation deeper than finality at block 31",
        31,
        None,
        None,
    )
    assert store.active_halt("outbox") == halt
    assert store.halt("outbox", "a second problem", 32) == halt  # the halt in force stays the one
    assert store.active_halt("l1-deposits") is None  # each scope has its own
    deposits = store.halt("l1-deposits", "conflict", None)
    assert store.halts() == [deposits, halt]  # newest first
    assert store.halts(limit=1) == [deposits]

    lifted = store.lift_halt(
        "outbox",
        "checked: the same messages, in other blocks",
        cursor=WatchCursor("outbox", 33, "0x21"),
        moved=[(f"{A}:1", 33, "0x21")],
    )
    assert (lifted.id, lifted.decision) == (halt.id, "checked: the same messages, in other blocks")
    assert lifted.lifted_at is not None
    assert store.active_halt("outbox") is None
    assert store.active_halt("l1-deposits") == deposits  # untouched
    assert store.watch_cursor("outbox") == WatchCursor("outbox", 33, "0x21")
    moved = store.message(f"{A}:1")
    assert moved is not None and (moved.block_number, moved.block_hash, moved.status) == (33, "0x21", "sent")
    assert store.read_blocks("outbox") == [(33, "0x21"), (30, "0x1e")]
    assert [m.id for m in store.messages_from_blocks("outbox", 31)] == [f"{A}:1"]
    assert [t.to_status for t in store.history(f"{A}:1")] == ["sent"]  # a move is no status change

    with pytest.raises(StoreError, match="the outbox stream is not halted"):
        store.lift_halt("outbox", "again")
    again = store.halt("outbox", "a new problem", 40)
    assert again.id != halt.id and store.active_halt("outbox") == again
    lifted_only = store.lift_halt("outbox", "nothing to move")  # no cursor: the watcher's stays
    assert lifted_only.decision == "nothing to move"
    assert store.watch_cursor("outbox") == WatchCursor("outbox", 33, "0x21")
    assert len(store.halts()) == 3
    assert store.check() == []


def test_a_sent_message_the_chain_contradicts_halts_the_outbox_and_nothing_is_stored(store: Store) -> None:
    assert store.record_sent([sent_in(0, 20), sent_in(1, 20)], cursor=WatchCursor("outbox", 20, "0x14")) == 2
    # The same content read again: nothing new, no halt, the cursor moves on.
    assert store.record_sent([sent_in(1, 20), sent_in(2, 21)], cursor=WatchCursor("outbox", 21, "0x15")) == 1
    assert store.active_halt("outbox") is None
    before = _snapshot(store)

    other_leaf = sent_in(1, 22, amount=7)  # nonce 1 again, another message
    assert store.record_sent([sent_in(3, 22), other_leaf], cursor=WatchCursor("outbox", 22, "0x16")) == 0
    halt = store.active_halt("outbox")
    assert halt is not None and halt.block == 22
    assert halt.reason.startswith(f"conflict: the chain has message {A}:1 in block 22 with leaf ")
    assert f"this store has it sent with leaf {message(1).leaf():#x} and outbox hash {1001:#x}" in halt.reason
    after = _snapshot(store)
    assert after.pop("halts") != before.pop("halts")
    assert after == before  # nothing of the range: 901:3 not stored, 901:1 as it was, the cursor stays
    assert store.message(f"{A}:3") is None
    assert store.watch_cursor("outbox") == WatchCursor("outbox", 21, "0x15")

    # Same leaf, another outbox hash: a conflict too (the halt in force stays the one).
    other_hash = Sent(message(2), "bank-b", 23, outbox_hash=9999)
    assert store.record_sent([other_hash], cursor=("outbox", 23)) == 0
    assert store.halts() == [halt]
    assert store.cursor("outbox") == 21
    assert store.active_halt("l1-deposits") is None
    assert store.check() == []


def test_a_deposit_l1_contradicts_halts_the_deposits_and_nothing_is_stored(store: Store) -> None:
    first = Deposit(message(0, source=L1, dest=A, amount=9), block_number=5, leaf_index=3)
    assert store.record_deposits([first], cursor=WatchCursor("l1-deposits", 5, "0x5")) == 1
    assert store.record_deposits([first], cursor=WatchCursor("l1-deposits", 6, "0x6")) == 0  # no halt
    assert store.active_halt("l1-deposits") is None
    other = Deposit(message(0, source=L1, dest=A, amount=8), block_number=7, leaf_index=3)
    new = Deposit(message(1, source=L1, dest=A), block_number=7, leaf_index=4)
    assert store.record_deposits([new, other], cursor=("l1-deposits", 7)) == 0
    halt = store.active_halt("l1-deposits")
    assert halt is not None and halt.block == 7
    assert halt.reason.startswith(f"conflict: L1 has deposit {L1}:0 in block 7 with leaf ")
    assert store.message(f"{L1}:1") is None
    kept = store.message(f"{L1}:0")
    assert kept is not None and (kept.message, kept.status) == (first.message, "verified")
    assert store.watch_cursor("l1-deposits") == WatchCursor("l1-deposits", 6, "0x6")
    assert store.active_halt("outbox") is None


def _batches_to_rewind(store: Store) -> None:
    """901:0..5 sent in blocks 10..15; batch 0 (901:0, 901:1) settled, batch 1 (901:2..4) proven,
    901:5 not in a batch; the outbox halted."""
    store.record_sent([sent_in(n, 10 + n) for n in range(6)], cursor=WatchCursor("outbox", 15, "0xf"))
    store.close_batch(0, capacity=8, message_ids=[f"{A}:0", f"{A}:1"])
    store.record_proof(0, batch_root=7, public_inputs=[1], proof=PROOF, seconds=1.0)
    store.start_commit(0)
    store.settle_batch(0, leaf_index=0, tx="0x1", gas=1, reason="committed")
    store.close_batch(1, capacity=8, message_ids=[f"{A}:{n}" for n in (2, 3, 4)])
    store.record_proof(1, batch_root=8, public_inputs=[2], proof=PROOF, seconds=1.0)
    store.halt("outbox", "reorganisation deeper than finality at block 13", 13)


def _rewind(store: Store) -> list[str]:
    return store.rewind_outbox(
        3,
        cursor=WatchCursor("outbox", 12, "0xc"),
        decision="rewind after the reorg",
        moved=[(f"{A}:2", 12, "0xc2")],
    )


def test_a_rewind_forgets_the_messages_from_a_nonce_and_their_unsettled_batch(store: Store) -> None:
    _batches_to_rewind(store)
    halt = store.active_halt("outbox")
    assert halt is not None
    histories = {n: [t.to_json() for t in store.history(f"{A}:{n}")] for n in (3, 4, 5)}
    rows = {n: store.message(f"{A}:{n}") for n in (3, 4, 5)}

    assert _rewind(store) == [f"{A}:3", f"{A}:4", f"{A}:5"]
    for n in (3, 4, 5):
        assert store.message(f"{A}:{n}") is None
        assert store.history(f"{A}:{n}") == []
    dropped = store.dropped()
    assert [d["message_id"] for d in dropped] == [f"{A}:5", f"{A}:4", f"{A}:3"]  # newest first
    for d in dropped:
        n = int(d["message_id"].split(":")[1])
        row = rows[n]
        assert row is not None
        assert d["halt_id"] == halt.id
        assert (d["message"]["status"], d["message"]["leaf"]) == (str(row.status), str(row.leaf))
        assert d["history"] == histories[n]
    assert [t["to_status"] for t in dropped[1]["history"]] == ["sent", "batched"]

    # The unsettled batch that held 901:3 is gone; its earlier message is "sent" again, in its new block.
    assert store.batch(1) is None and store.batch_history(1) == []
    back = store.message(f"{A}:2")
    assert back is not None
    assert (back.status, back.batch_number, back.index_in_batch) == ("sent", None, None)
    assert (back.block_number, back.block_hash) == (12, "0xc2")
    assert store.history(f"{A}:2")[-1].reason == "batch 1 dropped by a rewind to nonce 3"
    assert [m.status for m in store.messages(batch_number=0)] == ["settled", "settled"]  # L1's record stands
    assert store.watch_cursor("outbox") == WatchCursor("outbox", 12, "0xc")
    assert store.active_halt("outbox") is None
    [lifted] = store.halts()
    assert lifted.decision == (
        "rewind after the reorg; forgot 3 message(s) from nonce 3 and 1 unsettled batch(es)"
    )
    assert store.check() == []

    # The chain's messages from nonce 3 on, as they now are, are taken; batch 1 closes again over them.
    assert store.record_sent([sent_in(3, 13, amount=4)], cursor=WatchCursor("outbox", 13, "0xd")) == 1
    assert store.active_halt("outbox") is None
    batch = store.close_batch(1, capacity=8, message_ids=[f"{A}:2", f"{A}:3"])
    assert (batch.first_nonce, batch.last_nonce, batch.h_start) == (2, 3, 1001)
    assert store.check() == []


@pytest.mark.parametrize(
    ("from_nonce", "last_step", "refusal"),
    [
        (1, None, r"batch 0 \(nonces 0\.\.1\) is settled on L1; L1's record stands"),
        (3, "start_commit", r"batch 1 \(nonces 2\.\.4\) is being committed to L1"),
    ],
    ids=["settled", "committing"],
)
def test_a_rewind_into_a_settled_or_committing_batch_is_refused_and_changes_nothing(
    store: Store, from_nonce: int, last_step: str | None, refusal: str
) -> None:
    _batches_to_rewind(store)
    if last_step == "start_commit":
        store.start_commit(1)
    before = _snapshot(store)
    with pytest.raises(StoreError, match=refusal):
        store.rewind_outbox(from_nonce, cursor=WatchCursor("outbox", 9, "0x9"), decision="rewind")
    assert _snapshot(store) == before
    assert store.active_halt("outbox") is not None
    assert store.dropped() == []


def test_a_rewind_needs_a_halt(store: Store) -> None:
    store.record_sent([sent_in(0, 10)], cursor=("outbox", 10))
    with pytest.raises(StoreError, match="the outbox stream is not halted: nothing to rewind"):
        store.rewind_outbox(0, cursor=WatchCursor("outbox", 9), decision="rewind")
    assert store.message(f"{A}:0") is not None and store.cursor("outbox") == 10


def test_a_proof_of_another_statement_is_not_recorded(store: Store) -> None:
    store.record_sent([sent(n) for n in range(3)], cursor=("outbox", 20))
    store.close_batch(0, capacity=8, message_ids=[f"{A}:0", f"{A}:1"])  # outbox hashes 0 -> 1001
    before = _snapshot(store)
    for h_start, h_end in ((0, 1002), (5, 1001)):  # e.g. proven before a rewind closed batch 0 again
        assert not store.record_proof(
            0, batch_root=7, public_inputs=[1], proof=PROOF, seconds=1.0, h_start=h_start, h_end=h_end
        )
    assert _snapshot(store) == before
    assert store.record_proof(
        0, batch_root=7, public_inputs=[1], proof=PROOF, seconds=1.0, h_start=0, h_end=1001
    )
    proven = store.batch(0)
    assert proven is not None and (proven.status, proven.batch_root) == ("proven", 7)


# --- bounces --------------------------------------------------------------------------------------

RULE = "target not allowed: bank-b may not call 0x2222222222222222222222222222222222222222"


def test_an_incoming_message_the_rules_refuse_is_bounced(store: Store) -> None:
    receive(store)
    store.record_verdicts(verified=[f"{B}:0"], refused={}, bouncing={f"{B}:1": RULE, f"{B}:2": RULE})
    m = store.message(f"{B}:1")
    assert m is not None and (m.status, m.error) == ("bouncing", RULE)
    assert store.history(f"{B}:1")[-1].reason == f"to be bounced: {RULE}"
    store.record_verdicts(verified=[f"{B}:1"], refused={f"{B}:2": "x"}, bouncing={f"{B}:0": RULE})
    assert [m.status for m in store.messages(direction="in")] == ["verified", "bouncing", "bouncing"]
    assert store.request_bounce(f"{B}:1", "again") == "bouncing"  # already: left as it is
    with pytest.raises(StepRefused, match="only a verified message is executed"):
        store.start_execution([f"{B}:1"])

    store.bounce_not_done([f"{B}:1", f"{B}:0"], "nonce too low")  # 902:0 is not bouncing: left alone
    m = store.message(f"{B}:1")
    assert m is not None and (m.status, m.attempts, m.error) == ("bouncing", 1, RULE)
    assert m.due > m.updated_at  # on the retry policy
    assert store.history(f"{B}:1")[-1].reason == "bounce failed: nonce too low"
    verified = store.message(f"{B}:0")
    assert verified is not None and (verified.status, verified.attempts) == ("verified", 0)

    # The bounce transaction: 902:1 bounced in it; 902:2 was executed first (the same nullifier).
    store.record_bounces(
        {f"{B}:1": "MessageBounced in 0xb0", f"{B}:0": "not bouncing"},
        executed={f"{B}:2": "executed before the bounce"},
        tx="0xb0",
        gas_each=70_000,
    )
    m = store.message(f"{B}:1")
    assert m is not None
    assert (m.status, m.exec_tx, m.exec_gas) == ("bounced", "0xb0", 70_000)
    assert m.executed_at is not None
    assert [t.to_status for t in store.history(f"{B}:1")] == ["received", "bouncing", "bouncing", "bounced"]
    assert [m.status for m in store.messages(direction="in")] == ["verified", "bounced", "executed"]
    assert store.request_bounce(f"{B}:1", "again") == "bounced"  # idempotent
    store.record_bounces({f"{B}:1": "again"}, tx="0xb1", gas_each=1)
    again = store.message(f"{B}:1")
    assert again is not None and (again.exec_tx, len(store.history(f"{B}:1"))) == ("0xb0", 4)
    assert store.check() == []


def test_an_operator_bounces_a_failed_message_and_nothing_else(store: Store) -> None:
    original = message(0, amount=5)  # bank-a sent it to bank-b; bank-b bounced it
    store.record_sent([Sent(original, "bank-b", 10, 1000)], cursor=("outbox", 10))
    failing_bounce = bounce_of(original, 4)
    received = [message(n, source=B, dest=A) for n in range(4)] + [failing_bounce]
    store.receive("bank-b", [Received(m, "{}") for m in received], "from bank-b")
    keys = [f"{B}:{n}" for n in range(5)]
    store.record_verdicts(verified=keys, refused={})
    store.start_execution([keys[0], keys[1], keys[3], keys[4]])
    store.record_outcomes(
        [
            Outcome(keys[0], InStatus.FAILED, "Reverted"),
            Outcome(keys[1], InStatus.EXECUTED, "MessageExecuted"),
            Outcome(keys[3], InStatus.FAILED, "Reverted"),
            Outcome(keys[4], InStatus.FAILED, "refund refused"),
        ],
        tx="0xt",
        gas_each=None,
    )
    assert store.request_replay(keys[3]) == "replay"

    for blank in ("", "  "):
        with pytest.raises(StoreError, match="a bounce needs a reason"):
            store.request_bounce(keys[0], blank)
    with pytest.raises(StoreError, match="only a failed message can be bounced"):
        store.request_bounce(keys[1], "executed")
    with pytest.raises(StoreError, match="only a failed message can be bounced"):
        store.request_bounce(keys[2], "verified")
    with pytest.raises(StoreError, match="is outgoing"):
        store.request_bounce(f"{A}:0", "outgoing")
    with pytest.raises(StoreError, match="is itself a bounce"):
        store.request_bounce(keys[4], "a refund")
    with pytest.raises(UnknownMessage):
        store.request_bounce(f"{B}:9", "unknown")
    assert [m.status for m in store.messages(direction="in")] == [
        "failed",
        "executed",
        "verified",
        "replay",
        "failed",
    ]

    assert store.request_bounce(keys[0], "the target keeps reverting") == "bouncing"
    m = store.message(keys[0])
    assert m is not None
    assert (m.status, m.error, m.attempts) == ("bouncing", "the target keeps reverting", 0)
    assert m.due <= m.updated_at  # now
    assert store.history(keys[0])[-1].reason == "bounce: the target keeps reverting"
    assert store.request_bounce(keys[0], "again") == "bouncing"  # idempotent: nothing recorded
    assert len(store.history(keys[0])) == 5
    assert store.request_bounce(keys[3], "given up") == "bouncing"  # a replay not run yet, too
    assert store.check() == []


def _pushed_with_value(store: Store) -> None:
    """901:0 and 901:1 (5 of ASSET each) and 901:2 (no value) sent, settled and pushed to bank-b."""
    store.record_sent([sent(0, amount=5), sent(1, amount=5), sent(2)], cursor=("outbox", 20))
    store.close_batch(0, capacity=8, message_ids=[f"{A}:{n}" for n in range(3)])
    store.record_proof(0, batch_root=77, public_inputs=[A, 0], proof=PROOF, seconds=1.5)
    store.start_commit(0)
    store.settle_batch(0, leaf_index=4, tx="0xabc", gas=300_000, reason="committed")
    store.record_push([f"{A}:{n}" for n in range(3)], "bank-b", "pushed to bank-b")


def _bounce_executing(store: Store, original: Message, nonce: int) -> str:
    """bank-b's bounce of `original` (its message `nonce`) received, verified and being executed."""
    store.receive("bank-b", [Received(bounce_of(original, nonce), "{}")], "from bank-b")
    key = f"{B}:{nonce}"
    store.record_verdicts(verified=[key], refused={})
    store.start_execution([key])
    return key


def test_an_outgoing_message_bounced_by_its_destination_is_refunded_by_its_bounce(store: Store) -> None:
    _pushed_with_value(store)
    original = message(0, amount=5)
    assert store.record_receipts("bank-b", [ReceiptUpdate(f"{A}:0", OutStatus.BOUNCED, "0xb0", RULE)]) == []
    m = store.message(f"{A}:0")
    assert m is not None and (m.status, m.exec_tx, m.error) == ("bounced", "0xb0", RULE)
    assert store.history(f"{A}:0")[-1].reason == f"bank-b reports bounced: {RULE}"

    bounce = bounce_of(original, 0)
    found = store.original_of(bounce)
    assert found is not None and found.id == f"{A}:0"
    assert store.original_of(dataclasses.replace(bounce, amount=4)) is None  # not what was sent
    assert store.original_of(dataclasses.replace(bounce, asset_id=b"\xcd" * 32)) is None
    assert store.original_of(dataclasses.replace(bounce, data=message(7).id())) is None  # never sent
    assert store.original_of(dataclasses.replace(bounce, data=b"\x00" * 31)) is None  # no id
    assert store.original_of(message(0, source=B, dest=A, amount=5)) is None  # not a bounce
    key = _bounce_executing(store, original, 0)

    store.record_outcomes([Outcome(key, InStatus.EXECUTED, "MessageExecuted")], tx="0xr", gas_each=1)
    executed = store.message(key)
    assert executed is not None and executed.status == "executed"
    refunded = store.message(f"{A}:0")
    assert refunded is not None and refunded.status == "refunded"
    [*_, last] = store.history(f"{A}:0")
    assert (last.from_status, last.reason) == ("bounced", f"refunded: bounce {key} executed in 0xr")
    assert last.at == store.history(key)[-1].at  # one step

    # Receipts after the refund change nothing.
    late = [
        ReceiptUpdate(f"{A}:0", status, "0x9", "late") for status in (OutStatus.BOUNCED, OutStatus.EXECUTED)
    ]
    assert store.record_receipts("bank-b", late) == []
    assert store.message(f"{A}:0") == refunded
    assert store.check() == []


def test_a_bounce_executed_before_the_bounced_receipt_refunds_and_a_failed_one_does_not(store: Store) -> None:
    _pushed_with_value(store)
    first = _bounce_executing(store, message(1, amount=5), 1)
    second = _bounce_executing(store, message(2), 2)
    store.record_outcomes(
        [
            Outcome(first, InStatus.EXECUTED, "MessageExecuted"),
            Outcome(second, InStatus.FAILED, "refund refused"),
        ],
        tx="0xr",
        gas_each=None,
    )
    assert [t.to_status for t in store.history(f"{A}:1")][-2:] == ["pushed", "refunded"]
    assert [m.status for m in store.messages(direction="out")] == ["pushed", "refunded", "pushed"]
    store.record_receipts("bank-b", [ReceiptUpdate(f"{A}:1", OutStatus.BOUNCED, "0xb1", RULE)])  # late
    assert _status(store, f"{A}:1") == "refunded"
    assert store.check() == []


def _status(store: Store, key: str) -> str | None:
    m = store.message(key)
    return None if m is None else str(m.status)


# --- a crash inside any step leaves the store before it -------------------------------------------


def _snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    conn = store._db.conn
    tables = (
        "messages",
        "transitions",
        "batches",
        "batch_transitions",
        "cursors",
        "refusals",
        "halts",
        "dropped",
    )
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


def _bouncing(store: Store) -> None:
    receive(store)
    store.record_verdicts(verified=[], refused={}, bouncing=dict.fromkeys(INCOMING, RULE))


def _halted(store: Store) -> None:
    _sent(store)
    store.halt("outbox", "reorganisation deeper than finality", 9)


def _refund_executing(store: Store) -> None:
    """901:0 bounced by bank-b, 901:1 not yet reported; both their bounces being executed."""
    _pushed_with_value(store)
    store.record_receipts("bank-b", [ReceiptUpdate(f"{A}:0", OutStatus.BOUNCED, "0xb0", RULE)])
    for n in (0, 1):
        _bounce_executing(store, message(n, amount=5), n)


def _deposited(store: Store) -> None:
    store.record_deposits([Deposit(message(0, source=L1, dest=A), 5, 0)], cursor=("l1-deposits", 5))


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
    "record_verdicts-bouncing": (
        receive,
        lambda s: s.record_verdicts(
            verified=INCOMING[:1], refused={INCOMING[1]: "bad"}, bouncing={INCOMING[2]: RULE}
        ),
    ),
    "request_bounce": (_failed, lambda s: s.request_bounce(INCOMING[0], "given up")),
    "bounce_not_done": (_bouncing, lambda s: s.bounce_not_done(INCOMING, "nonce too low")),
    "record_bounces": (
        _bouncing,
        lambda s: s.record_bounces(
            dict.fromkeys(INCOMING[:2], "bounced"),
            executed={INCOMING[2]: "executed first"},
            tx="0x1",
            gas_each=1,
        ),
    ),
    "record_outcomes-refund": (
        _refund_executing,
        lambda s: s.record_outcomes(
            [Outcome(f"{B}:{n}", InStatus.EXECUTED, "x") for n in (0, 1)], tx="0x1", gas_each=1
        ),
    ),
    "halt": (_nothing, lambda s: s.halt("outbox", "reorganisation deeper than finality", 3)),
    "lift_halt": (
        _halted,
        lambda s: s.lift_halt(
            "outbox",
            "checked",
            cursor=WatchCursor("outbox", 12, "0xc"),
            moved=[(f"{A}:{n}", 12, "0xc") for n in range(3)],
        ),
    ),
    "record_sent-conflict": (
        _sent,
        lambda s: s.record_sent([sent(3), sent(1, amount=4)], cursor=("outbox", 30)),
    ),
    "record_deposits-conflict": (
        _deposited,
        lambda s: s.record_deposits(
            [Deposit(message(n, source=L1, dest=A, amount=n + 1), 6, n) for n in range(2)],
            cursor=("l1-deposits", 6),
        ),
    ),
    "rewind_outbox": (_batches_to_rewind, _rewind),
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
    _undo_v4_and_v3(conn)
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


def _undo_v6(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE swaps")
    conn.execute("DROP TABLE swap_terms")
    conn.execute("ALTER TABLE priority_ops DROP COLUMN block_hash")


def test_a_version_5_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v5.sqlite"
    with Store(path) as store:
        receive(store)
    conn = sqlite3.connect(path)
    _undo_v6(conn)
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.counts() == {("in", "bank-b", "received"): 3}
        assert store.swaps() == [] and store.swap_terms() == []


def _undo_v5(conn: sqlite3.Connection) -> None:
    _undo_v6(conn)
    conn.execute("DROP TABLE priority_ops")
    for column in ("force_tx", "force_index", "force_deadline"):
        conn.execute(f"ALTER TABLE messages DROP COLUMN {column}")


def _undo_v4_and_v3(conn: sqlite3.Connection) -> None:
    _undo_v5(conn)
    conn.execute("DROP TABLE envelopes")
    conn.execute("DROP TABLE dropped")
    conn.execute("DROP TABLE halts")
    conn.execute("DROP TABLE genesis")
    for column in ("block_hash", "exec_block", "confirmed_at"):
        conn.execute(f"ALTER TABLE messages DROP COLUMN {column}")
    conn.execute("ALTER TABLE cursors DROP COLUMN block_hash")


def test_a_version_3_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite"
    with Store(path) as store:
        receive(store)
    conn = sqlite3.connect(path)
    _undo_v5(conn)
    conn.execute("DROP TABLE envelopes")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.check() == []
        assert store.first_sight("e1", "bank-a", 100.0, forget_before=50.0)
        assert not store.first_sight("e1", "bank-a", 100.0, forget_before=50.0)  # a replay
        assert store.first_sight("e2", "bank-a", 200.0, forget_before=150.0)
        assert store.first_sight(
            "e1", "bank-a", 100.0, forget_before=150.0
        )  # forgotten: the caller refuses it as stale
    assert (tmp_path / "v3.sqlite.v3.bak").is_file()


def test_a_version_2_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    with Store(path) as store:
        receive(store)
        store.set_cursor("outbox", 7)
    conn = sqlite3.connect(path)
    _undo_v4_and_v3(conn)
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


def test_a_chains_genesis_is_pinned_once(store: Store) -> None:
    assert store.genesis("chain", A) is None
    assert store.pin_genesis("chain", A, "0x" + "11" * 32) == "0x" + "11" * 32
    assert store.pin_genesis("chain", A, "0x" + "22" * 32) == "0x" + "11" * 32  # the first pin stays
    assert store.genesis("chain", A) == "0x" + "11" * 32
    assert store.genesis("chain", B) is None  # another chain id: not that chain's
    assert store.genesis("l1", A) is None
    with pytest.raises(StoreError, match=r"holds the records of chain 901 \(its chain\), not of chain 902"):
        store.pin_genesis("chain", B, "0x" + "33" * 32)


def test_executions_and_bounces_are_confirmed_once_final_or_done_again(store: Store) -> None:
    receive(store)
    store.record_verdicts(
        verified=[f"{B}:0", f"{B}:1"], refused={}, bouncing={f"{B}:2": "target not allowed"}
    )
    store.start_execution([f"{B}:0", f"{B}:1"])
    executed = [Outcome(f"{B}:{n}", InStatus.EXECUTED, "executed") for n in (0, 1)]
    store.record_outcomes(executed, tx="0xe", gas_each=1, block=10)
    store.record_bounces({f"{B}:2": "bounced"}, tx="0xb", gas_each=1, block=12)
    assert store.unconfirmed(9) == []  # nothing final yet
    assert [m.id for m in store.unconfirmed(12)] == [f"{B}:0", f"{B}:1", f"{B}:2"]
    # The chain still has 0's execution; 1's and the bounce were reorganised away.
    store.confirm_outcomes([f"{B}:0"], [f"{B}:1", f"{B}:2"])
    assert [(m.id, m.status) for m in store.messages(direction="in")] == [
        (f"{B}:0", "executed"),
        (f"{B}:1", "verified"),
        (f"{B}:2", "bouncing"),
    ]
    assert store.unconfirmed(100) == []  # confirmed, or no longer executed
    assert "no longer in the chain" in store.history(f"{B}:1")[-1].reason
    assert store.check() == []
