"""Rows for the tests of what reads the daemon's store (CLI, admin API), made through the store's own
pipeline steps, as the daemon makes them."""

from __future__ import annotations

from typing import Any

import orjson

from bridge_contracts.messages import Message
from proofs.message import roll
from relayer.store import InStatus, Outcome, OutStatus, ReceiptUpdate, Received, Sent, Store

ASSET = "0x" + "ab" * 32
BANK_A, BANK_B = 901, 902
PEER = "bank-b"


def incoming(nonce: int, *, amount: int = 0) -> Message:
    """A message from bank-b (902) to bank-a (901), carrying `amount` of ASSET if not 0."""
    return message(BANK_B, BANK_A, nonce, amount)


def outgoing(nonce: int, *, amount: int = 0) -> Message:
    """A message from bank-a (901) to bank-b (902), carrying `amount` of ASSET if not 0."""
    return message(BANK_A, BANK_B, nonce, amount)


def message(source: int, dest: int, nonce: int, amount: int = 0) -> Message:
    """A message from chain `source` to chain `dest`, carrying `amount` of ASSET if not 0."""
    return Message(
        source_chain_id=source,
        dest_chain_id=dest,
        nonce=nonce,
        sender="0x" + "11" * 20,
        target="0x" + "22" * 20,
        asset_id=bytes.fromhex(ASSET[2:]) if amount else bytes(32),
        amount=amount,
        data=b"\xca\xfe",
        asset_data=b"",
    )


# --- incoming -----------------------------------------------------------------------------------


def receive(store: Store, *messages: Message, payload: Any = None) -> list[str]:
    """Messages from bank-b stored "received", as the receiver stores a delivery (its JSON:
    `payload`, or a stand-in)."""
    body = orjson.dumps(payload or {"delivery": "from bank-b"}).decode()
    return store.receive(PEER, [Received(m, body) for m in messages], f"delivered by {PEER}")


def execute(store: Store, message_id: str, *, failure: str | None = None, tx: str = "0xbeef") -> None:
    """A "received" message verified, then executed in transaction `tx`; or, given `failure`, its
    target reverted there (the message "failed", with `failure` as its error)."""
    store.record_verdicts(verified=[message_id], refused={})
    store.start_execution([message_id])
    if failure is None:
        outcome = Outcome(message_id, InStatus.EXECUTED, "MessageExecuted")
    else:
        outcome = Outcome(message_id, InStatus.FAILED, failure)
    store.record_outcomes([outcome], tx=tx, gas_each=None if failure else 60_000)


# --- outgoing -----------------------------------------------------------------------------------


def send(store: Store, *messages: Message, block: int = 4) -> None:
    """Messages bank-a sent, of consecutive nonces, stored "sent" as the watcher stores the
    `MessageSent` events of `block` (one already stored is left alone); the outbox hash rolls on from
    the message before the first."""
    before = store.message(f"{BANK_A}:{messages[0].nonce - 1}")
    h = before.outbox_hash if before is not None and before.outbox_hash is not None else 0
    sent = []
    for m in messages:
        h = roll(h, m.leaf())
        sent.append(Sent(m, PEER, block, h))
    store.record_sent(sent, cursor=("outbox", block))


def prove(store: Store, batch_number: int, *, seconds: float = 2.5) -> None:
    """The "proving" batch proven (with a stand-in proof)."""
    store.record_proof(
        batch_number,
        batch_root=12345 + batch_number,
        public_inputs=[1, 2, 3],
        proof={"pi_a": ["1", "2", "1"], "protocol": "groth16"},
        seconds=seconds,
    )


def settle(store: Store, batch_number: int, *, tx: str = "0xc0ffee") -> None:
    """The "proven" batch committed in transaction `tx` and settled on L1, with its messages."""
    store.start_commit(batch_number)
    store.settle_batch(batch_number, leaf_index=batch_number, tx=tx, gas=300_000, reason="BatchSettled")


def deliver(store: Store, *message_ids: str, tx: str = "0xfeed") -> None:
    """Settled messages pushed to bank-b, which reports them executed in transaction `tx`."""
    store.record_push(message_ids, PEER, f"published to {PEER}")
    store.record_receipts(PEER, [ReceiptUpdate(key, OutStatus.EXECUTED, tx, None) for key in message_ids])


# --- what the CLI's and the admin API's tests read ----------------------------------------------


def fill_messages(store: Store) -> None:
    """From bank-b: 902:1 (carrying 7 of ASSET) failed, its target having reverted with
    TargetFailing(); 902:2 executed in 0xbeef (its delivery's JSON: {"deposit": {"x": 1}}).
    To bank-b: 901:0, sent."""
    receive(store, incoming(1, amount=7))
    receive(store, incoming(2), payload={"deposit": {"x": 1}})
    execute(store, "902:1", failure="the target reverted: TargetFailing()")
    execute(store, "902:2")
    send(store, outgoing(0))


def fill_batches(store: Store) -> None:
    """To bank-b: 901:0 to 901:5 sent; batch 0 (901:0, 901:1) settled in 0xc0ffee after one
    refused commit, batch 1 (901:2, 901:3) proven and its commit refused ("insufficient funds"), batch 2
    (901:4) proving; 901:5 not in a batch."""
    send(store, *(outgoing(nonce) for nonce in range(6)))
    store.close_batch(0, capacity=16, message_ids=["901:0", "901:1"])
    prove(store, 0)
    store.start_commit(0)
    store.commit_refused(0, "nonce too low")
    settle(store, 0)
    store.close_batch(1, capacity=16, message_ids=["901:2", "901:3"])
    prove(store, 1, seconds=3.25)
    store.start_commit(1)
    store.commit_refused(1, "insufficient funds")
    store.close_batch(2, capacity=16, message_ids=["901:4"])
