"""An operator's decision on a halted stream (`xrelay resume`, `POST /v1/halts/{scope}/resume`).

A watcher halts its stream when a block it handled is no longer the chain's (a reorganisation deeper
than the chain's finality) or when the chain contradicts a stored message. Resolving it compares
every stored row read from a block that changed with what the chain says now:

- a message ("outbox", "l1-deposits") or priority operation ("l1-priority") the chain still has, with
  the same content (only its block changed), is kept and takes its new block;
- one the chain no longer has, or has with another content, is a conflict;
- a swap ("swap-desk") is a copy of the desk's record: the store takes it as the desk has it now
  (forgetting one the desk no longer has), so this stream never conflicts.

Without conflicts the halt is lifted and the watcher reads again from the last block that did not
change. With conflicts nothing changes unless the operator asks to rewind (outbox only): every
outgoing message from the first conflicting nonce on is forgotten (kept in the store's `dropped`
table), with every unsettled batch holding one, and the watcher reads the chain again — the chain as
it is now is what gets batched. A rewind is refused when one of those messages is settled on L1 (or
being committed): L1's record stands, and the chain must be brought back to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from web3.contract import Contract
from web3.exceptions import BlockNotFound
from web3.types import EventData

from bridge_contracts.chain import Chain
from bridge_contracts.messages import Message
from bridge_contracts.swaps import Swap
from hub.delivery import message_key
from relayer.store import OutStatus, Store, StoredMessage, StoredSwap, StoreError, SwapRecord, WatchCursor

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
    store: Store, chain: Chain, contract: Contract, scope: str, *, rewind: bool, who: str
) -> Resolution:
    """Compare the halted stream's stored rows with the chain; lift the halt when they agree (or
    rewind, when asked and possible). `contract` is the Outbox ("outbox"), the L1 Hub ("l1-deposits",
    "l1-priority") or the SwapDesk ("swap-desk")."""
    halt = store.active_halt(scope)
    if halt is None:
        raise StoreError(f"the {scope} stream is not halted: nothing to resume")
    if rewind and scope != "outbox":
        raise StoreError(f"only the outbox stream can be rewound, not {scope}")
    fork: tuple[int, str] | None = None  # the newest block a stored row was read from that is unchanged
    changed: list[int] = []
    for number, read_hash in store.read_blocks(scope):
        if _hash_at(chain, number) == read_hash:
            fork = (number, read_hash)
            break
        changed.append(number)
    cursor = _cursor(chain, scope, fork)
    decision = f"resumed by {who} after comparing {len(changed)} changed block(s) with the chain"
    again = f"reading again from block {cursor.block}"
    if scope == "swap-desk":  # the desk is the record: the store takes its swaps as they are now
        read = store.swaps_from_blocks(min(changed)) if changed else []
        swaps = {s.swap_id: _desk_record(store, chain, contract, s) for s in read}
        gone = [swap_id for swap_id, record in swaps.items() if record is None]
        store.lift_halt(scope, decision, cursor=cursor, swaps=swaps)
        return Resolution(
            scope,
            True,
            f"{len(swaps)} swap(s) read from changed blocks taken as the desk records them now "
            f"({len(gone)} it no longer has, forgotten); {again}",
            moved=[swap_id for swap_id in swaps if swap_id not in gone],
            dropped=gone,
        )
    moved: list[tuple[str | int, int, str]] = []
    conflicts: list[str] = []
    if scope == "l1-priority":
        for op in store.priority_ops_from_blocks(min(changed)) if changed else []:
            logs = contract.events.PriorityOpQueued.get_logs(
                from_block=0, argument_filters={"index": op.index}
            )
            found = [e for e in logs if bytes(e["args"]["priorityId"]) == op.priority_id]
            if len(found) == 1 and bytes(found[0]["args"]["rollingHash"]) == op.rolling_hash:
                moved.append((op.index, found[0]["blockNumber"], _block_hash(found[0])))
            else:
                conflicts.append(
                    f"priority operation {op.index} ({op.status}, from chain {op.source_chain_id}, read from "
                    f"block {op.block_number}): L1 no longer has it as stored"
                )
        first_nonce, settled = None, True  # L1's record
    else:
        event = contract.events.MessageSent if scope == "outbox" else contract.events.DepositQueued
        clashing: list[StoredMessage] = []
        for m in store.messages_from_blocks(scope, min(changed)) if changed else []:
            found = list(event.get_logs(from_block=0, argument_filters={"nonce": m.nonce}))
            if scope == "l1-deposits":
                found = [e for e in found if e["args"]["destChainId"] == m.message.dest_chain_id]
            if len(found) == 1 and _same(m, found[0], scope):
                moved.append((m.id, found[0]["blockNumber"], _block_hash(found[0])))
            else:
                clashing.append(m)
        conflicts = [_conflict(m) for m in clashing]
        first_nonce = min((m.nonce for m in clashing), default=None)
        settled = any(m.status not in UNSETTLED_OUT for m in clashing)
    shown_moved = [str(m[0]) for m in moved]
    if not conflicts:
        store.lift_halt(scope, decision, cursor=cursor, moved=moved)
        return Resolution(
            scope,
            True,
            f"no stored row conflicts with the chain ({len(moved)} moved to other blocks); {again}",
            moved=shown_moved,
        )
    if not rewind:
        advice = (
            f"`xrelay resume --rewind` forgets this chain's unsettled messages from nonce {first_nonce} on "
            "and reads the chain again"
            if scope == "outbox" and not settled
            else "L1 settled some of them: its record stands; bring the chain back to it (restore its node) "
            "and run resume again"
        )
        return Resolution(scope, False, f"{len(conflicts)} conflict(s) with the chain; {advice}", conflicts)
    assert first_nonce is not None
    dropped = store.rewind_outbox(first_nonce, cursor=cursor, decision=decision + ", rewound", moved=moved)
    return Resolution(
        scope,
        True,
        f"rewound: forgot {len(dropped)} message(s) from nonce {first_nonce} on; {again}",
        conflicts,
        shown_moved,
        dropped,
    )


def _same(m: StoredMessage, event: EventData, scope: str) -> bool:
    args = event["args"]
    if Message.from_event(args["message"]).leaf() != m.leaf:
        return False
    return scope != "outbox" or int(args["outboxHash"]) == m.outbox_hash


def _desk_record(store: Store, chain: Chain, desk: Contract, stored: StoredSwap) -> SwapRecord | None:
    """The desk's last SwapRecorded event of the swap in the chain as it is now (None: it has none)."""
    swap_id = bytes.fromhex(stored.swap_id[2:])
    events = desk.events.SwapRecorded.get_logs(from_block=0, argument_filters={"swapId": swap_id})
    if not events:
        return None
    last = max(events, key=lambda e: (e["blockNumber"], e["logIndex"]))
    swap = Swap.from_event(last["args"]["swap"])
    terms = store.terms("0x" + swap.terms_id.hex())  # the same id under other terms: with their peer
    return SwapRecord(
        stored.swap_id,
        stored.side,  # the id names desk A, so this desk's side is the same
        stored.peer if terms is None else terms.peer,
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


def _conflict(m: StoredMessage) -> str:
    return (
        f"{m.id} ({m.status}, nonce {m.nonce}, {m.message.amount} of 0x{m.message.asset_id.hex()[:8]}…, "
        f"read from block {m.block_number}): the chain no longer has it as stored"
    )
