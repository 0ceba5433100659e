"""An operator's decision on a halted stream (`xrelay resume`, `POST /v1/halts/{scope}/resume`).

A watcher halts its stream when a block it handled is no longer the chain's (a reorganisation deeper
than the chain's finality) or when the chain contradicts a stored message. Resolving it compares
every stored message read from a block that changed with what the chain says now:

- a message the chain still has, with the same leaf and outbox hash (only its block changed), is
  kept and takes its new block;
- a message the chain no longer has, or has with another content, is a conflict.

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
from relayer.store import OutStatus, Store, StoredMessage, StoreError, WatchCursor

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
    """Compare the halted stream's stored messages with the chain; lift the halt when they agree (or
    rewind, when asked and possible). `contract` is the Outbox ("outbox") or the L1 Hub
    ("l1-deposits")."""
    halt = store.active_halt(scope)
    if halt is None:
        raise StoreError(f"the {scope} stream is not halted: nothing to resume")
    if rewind and scope != "outbox":
        raise StoreError("only the outbox stream can be rewound: L1 deposits are L1's record")
    event = contract.events.MessageSent if scope == "outbox" else contract.events.DepositQueued
    fork: tuple[int, str] | None = None  # the newest block a stored message was read from that is unchanged
    changed: list[int] = []
    for number, read_hash in store.read_blocks(scope):
        if _hash_at(chain, number) == read_hash:
            fork = (number, read_hash)
            break
        changed.append(number)
    moved: list[tuple[str, int, str]] = []
    conflicts: list[StoredMessage] = []
    for m in store.messages_from_blocks(scope, min(changed)) if changed else []:
        found = list(event.get_logs(from_block=0, argument_filters={"nonce": m.nonce}))
        if scope == "l1-deposits":
            found = [e for e in found if e["args"]["destChainId"] == m.message.dest_chain_id]
        if len(found) == 1 and _same(m, found[0], scope):
            moved.append((m.id, found[0]["blockNumber"], "0x" + bytes(found[0]["blockHash"]).hex()))
        else:
            conflicts.append(m)
    cursor = _cursor(chain, scope, fork)
    decision = f"resumed by {who} after comparing {len(changed)} changed block(s) with the chain"
    if not conflicts:
        store.lift_halt(scope, decision, cursor=cursor, moved=moved)
        return Resolution(
            scope,
            True,
            f"no stored message conflicts with the chain ({len(moved)} moved to other blocks); "
            f"reading again from block {cursor.block}",
            moved=[m[0] for m in moved],
        )
    shown = [_conflict(m) for m in conflicts]
    if not rewind:
        first = min(m.nonce for m in conflicts)
        settled = [m for m in conflicts if m.status not in UNSETTLED_OUT]
        advice = (
            "L1 settled some of them: its record stands; bring the chain back to it (restore its node) "
            "and run resume again"
            if settled or scope != "outbox"
            else f"`xrelay resume --rewind` forgets this chain's unsettled messages from nonce {first} on "
            "and reads the chain again"
        )
        return Resolution(scope, False, f"{len(conflicts)} conflict(s) with the chain; {advice}", shown)
    first = min(m.nonce for m in conflicts)
    dropped = store.rewind_outbox(first, cursor=cursor, decision=decision + ", rewound", moved=moved)
    return Resolution(
        scope,
        True,
        f"rewound: forgot {len(dropped)} message(s) from nonce {first} on; reading again from block "
        f"{cursor.block}",
        shown,
        [m[0] for m in moved],
        dropped,
    )


def _same(m: StoredMessage, event: EventData, scope: str) -> bool:
    args = event["args"]
    if Message.from_event(args["message"]).leaf() != m.leaf:
        return False
    return scope != "outbox" or int(args["outboxHash"]) == m.outbox_hash


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
