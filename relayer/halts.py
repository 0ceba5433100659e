"""An operator's decision on a halted stream (`xrelay resume`, `POST /v1/halts/{scope}/resume`).

A watcher halts its stream when a block it handled is no longer the chain's (a reorganisation deeper
than the chain's finality) or when the chain contradicts a stored message. Resolving it compares every
stored row read after the newest block whose hash is unchanged (the fork) with the chain's final
blocks as they are now:

- a message ("outbox", "l1-deposits") the chain still has, with the same content (only its block
  changed), is kept and takes its new block; one it no longer has, or has with another content, is a
  conflict;
- a priority operation ("l1-priority") L1 still has, the same, takes its new block; one it no longer
  has as stored is forgotten, to be read again, while this chain's Inbox has not started on it, and is
  a conflict once it has;
- a swap ("swap-desk") is a copy of the desk's record: the store takes the desk's last final record
  of it (forgetting one with none), so this stream never conflicts.

Without conflicts the halt is lifted and the watcher reads again from the fork. With conflicts nothing
changes unless the operator asks to rewind (outbox only): every outgoing message from the first
conflicting nonce on is forgotten (kept in the store's `dropped` table), with every unsettled batch
holding one, and the watcher reads the chain again — the chain as it is now is what gets batched. A
rewind is refused when one of those messages is settled on L1 (or being committed): L1's record
stands, and the chain must be brought back to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from web3.contract import Contract
from web3.exceptions import BlockNotFound, Web3RPCError
from web3.types import EventData

from bridge_contracts.chain import Chain
from bridge_contracts.messages import Message
from bridge_contracts.swaps import Swap
from hub.delivery import message_key
from relayer.store import (
    OutStatus,
    PriorityOp,
    PriorityStatus,
    Store,
    StoredMessage,
    StoredSwap,
    StoreError,
    SwapRecord,
    WatchCursor,
)
from relayer.watcher import Finality

UNSETTLED_OUT = (OutStatus.SENT, OutStatus.BATCHED)  # the outgoing statuses L1 has not settled


@dataclass
class Resolution:
    scope: str
    lifted: bool
    summary: str
    conflicts: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "lifted": self.lifted,
            "summary": self.summary,
            "conflicts": self.conflicts,
            "moved": self.moved,
            "dropped": self.dropped,
        }


def resolve(
    store: Store,
    chain: Chain,
    contract: Contract | None,
    scope: str,
    *,
    finality: Finality,
    rewind: bool,
    who: str,
) -> Resolution:
    """Compare the halted stream's stored rows with the chain up to its final head; lift the halt when
    they agree (or rewind, when asked and possible). `contract` is the Outbox ("outbox"), the L1 Hub
    ("l1-deposits", "l1-priority") or the SwapDesk ("swap-desk"; None: this chain has none now)."""
    halt = store.active_halt(scope)
    if halt is None:
        raise StoreError(f"the {scope} stream is not halted: nothing to resume")
    if rewind and scope != "outbox":
        raise StoreError(f"only the outbox stream can be rewound, not {scope}")
    decision = f"resumed by {who}"
    if contract is None:  # a swap desk since taken out of the config: no stream to compare
        store.lift_halt(scope, decision + " (no swap desk configured)")
        return Resolution(scope, True, "this chain has no swap desk configured now: nothing to compare")
    fork: tuple[int, str] | None = None  # the newest block a stored row was read from that is unchanged
    changed = 0
    for number, read_hash in store.read_blocks(scope):
        if _hash_at(chain, number) == read_hash:
            fork = (number, read_hash)
            break
        changed += 1
    cursor = _cursor(chain, scope, fork)
    first = cursor.block + 1 if fork is not None else 0  # every row read after the fork is compared
    final = final_head(chain, finality)
    decision += f" after comparing {changed} changed block(s) with the chain up to its final block {final}"
    again = f"reading again from block {cursor.block}"
    c = _Comparison(store, chain, contract, scope, cursor, first, final, decision, again)
    if scope == "swap-desk":  # the desk is the record: the store takes its swaps as it has them now
        return _resume_desk(c)
    if scope == "l1-priority":  # L1 is the record: an operation not processed yet is read again
        return _resume_queue(c)
    return _resume_messages(c, rewind)


@dataclass
class _Comparison:
    """A halted stream being compared with its chain: rows read after `first - 1` against the chain's
    final blocks up to `final`."""

    store: Store
    chain: Chain
    contract: Contract
    scope: str
    cursor: WatchCursor  # where the watcher reads again from
    first: int
    final: int
    decision: str
    again: str


def _resume_desk(c: _Comparison) -> Resolution:
    store, scope, cursor = c.store, c.scope, c.cursor
    swaps = {
        s.swap_id: _desk_record(store, c.chain, c.contract, s, c.final)
        for s in store.swaps_from_blocks(c.first)
    }
    gone = [swap_id for swap_id, record in swaps.items() if record is None]
    store.lift_halt(scope, c.decision, cursor=cursor, swaps=swaps)
    return Resolution(
        scope,
        True,
        f"{len(swaps)} swap(s) read after block {cursor.block} taken as the desk records them in its "
        f"final blocks ({len(gone)} it has no record of, forgotten); {c.again}",
        moved=[swap_id for swap_id in swaps if swap_id not in gone],
        dropped=gone,
    )


def _resume_queue(c: _Comparison) -> Resolution:
    store, scope, cursor = c.store, c.scope, c.cursor
    moved: list[tuple[str | int, int, str]] = []
    conflicts: list[str] = []
    forgotten: list[int] = []
    for op in store.priority_ops_from_blocks(c.first):
        logs = c.contract.events.PriorityOpQueued.get_logs(
            from_block=0, to_block=c.final, argument_filters={"index": op.index}
        )
        found = [e for e in logs if bytes(e["args"]["priorityId"]) == op.priority_id]
        if len(found) == 1 and _same_op(op, found[0]):
            moved.append((op.index, found[0]["blockNumber"], _block_hash(found[0])))
        elif op.status in (PriorityStatus.QUEUED, PriorityStatus.UNREADABLE):
            forgotten.append(op.index)
        else:
            conflicts.append(
                f"priority operation {op.index} ({op.status}, from chain {op.source_chain_id}, read from "
                f"L1 block {op.block_number}): this chain's Inbox has {op.status} it, but L1's final "
                f"blocks up to {c.final} no longer have it as stored"
            )
    if not conflicts:
        store.lift_halt(scope, c.decision, cursor=cursor, moved=moved, forget_ops=forgotten)
        return Resolution(
            scope,
            True,
            f"{len(moved)} operation(s) L1 has in other blocks; {len(forgotten)} not processed yet and "
            f"no longer on L1 as stored, forgotten to be read again; {c.again}",
            moved=[str(m[0]) for m in moved],
            dropped=[str(index) for index in forgotten],
        )
    advice = (
        "L1's final blocks contradict what this chain's Inbox processed: stop and find out how L1 "
        "reorganised past its finality; nothing is changed until it is back"
    )
    return Resolution(scope, False, f"{len(conflicts)} conflict(s) with L1; {advice}", conflicts)


def _resume_messages(c: _Comparison, rewind: bool) -> Resolution:
    store, scope, cursor = c.store, c.scope, c.cursor
    moved: list[tuple[str | int, int, str]] = []
    event = c.contract.events.MessageSent if scope == "outbox" else c.contract.events.DepositQueued
    clashing: list[StoredMessage] = []
    for m in store.messages_from_blocks(scope, c.first):
        found = list(event.get_logs(from_block=0, to_block=c.final, argument_filters={"nonce": m.nonce}))
        if scope == "l1-deposits":
            found = [e for e in found if e["args"]["destChainId"] == m.message.dest_chain_id]
        if len(found) == 1 and _same(m, found[0], scope):
            moved.append((m.id, found[0]["blockNumber"], _block_hash(found[0])))
        else:
            clashing.append(m)
    shown_moved = [str(m[0]) for m in moved]
    if not clashing:
        store.lift_halt(scope, c.decision, cursor=cursor, moved=moved)
        return Resolution(
            scope,
            True,
            f"no stored message conflicts with the chain ({len(moved)} moved to other blocks); {c.again}",
            moved=shown_moved,
        )
    conflicts = [_conflict(m, c.final) for m in clashing]
    first_nonce = min(m.nonce for m in clashing)
    if not rewind:
        advice = (
            f"`xrelay resume --rewind` forgets this chain's unsettled messages from nonce {first_nonce} on "
            "and reads the chain again (or wait, and resume again, if the chain has them in blocks not "
            "final yet)"
            if scope == "outbox" and all(m.status in UNSETTLED_OUT for m in clashing)
            else "L1 settled some of them: its record stands; bring the chain back to it (restore its node) "
            "and run resume again"
        )
        return Resolution(scope, False, f"{len(conflicts)} conflict(s) with the chain; {advice}", conflicts)
    dropped = store.rewind_outbox(first_nonce, cursor=cursor, decision=c.decision + ", rewound", moved=moved)
    return Resolution(
        scope,
        True,
        f"rewound: forgot {len(dropped)} message(s) from nonce {first_nonce} on; {c.again}",
        conflicts,
        shown_moved,
        dropped,
    )


def final_head(chain: Chain, finality: Finality) -> int:
    """The chain's newest final block under `finality` (as the watchers tell it)."""
    latest = int(chain.w3.eth.block_number)
    if finality.rule != "confirmations":
        try:
            return int(chain.w3.eth.get_block(finality.rule)["number"])
        except Web3RPCError:  # the node has no such tag: the watchers count confirmations then
            pass
    return max(latest - finality.confirmations, 0)


def _same_op(op: PriorityOp, event: EventData) -> bool:
    args = event["args"]
    return bytes(args["rollingHash"]) == op.rolling_hash and float(args["deadline"]) == op.deadline


def _same(m: StoredMessage, event: EventData, scope: str) -> bool:
    args = event["args"]
    if Message.from_event(args["message"]).leaf() != m.leaf:
        return False
    return scope != "outbox" or int(args["outboxHash"]) == m.outbox_hash


def _desk_record(
    store: Store, chain: Chain, desk: Contract, stored: StoredSwap, final: int
) -> SwapRecord | None:
    """The desk's last SwapRecorded event of the swap in the chain's final blocks as they are now (None:
    it has none)."""
    swap_id = bytes.fromhex(stored.swap_id[2:])
    events = desk.events.SwapRecorded.get_logs(
        from_block=0, to_block=final, argument_filters={"swapId": swap_id}
    )
    if not events:
        return None
    last = max(events, key=lambda e: (e["blockNumber"], e["logIndex"]))
    swap = Swap.from_event(last["args"]["swap"])
    terms = store.terms("0x" + swap.terms_id.hex())  # the same id may now be a swap under other terms
    return SwapRecord(
        stored.swap_id,
        stored.side,  # the id names desk A, so this desk's side is the same
        "?" if terms is None else terms.peer,  # as the desk's watcher says of terms it does not have
        message_key(chain.chain_id, swap.message_nonce),
        swap,
        last["blockNumber"],
        _block_hash(last),
    )


def _block_hash(event: EventData) -> str:
    return "0x" + bytes(event["blockHash"]).hex()


def _cursor(chain: Chain, scope: str, fork: tuple[int, str] | None) -> WatchCursor:
    """Where the watcher reads again from: the newest block a stored message was read from that is
    unchanged (everything after it is read again; what is stored already is left alone), or the
    chain's start when there is none."""
    if fork is not None:
        return WatchCursor(scope, *fork)
    return WatchCursor(scope, 0, _hash_at(chain, 0))


def _hash_at(chain: Chain, number: int) -> str | None:
    """The block's hash in the chain as it is now (None: the chain is shorter than that)."""
    try:
        return "0x" + bytes(chain.w3.eth.get_block(number)["hash"]).hex()
    except BlockNotFound:
        return None


def _conflict(m: StoredMessage, final: int) -> str:
    return (
        f"{m.id} ({m.status}, nonce {m.nonce}, {m.message.amount} of 0x{m.message.asset_id.hex()[:8]}…, "
        f"read from block {m.block_number}): the chain's final blocks up to {final} no longer have it as "
        "stored"
    )
