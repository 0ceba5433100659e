"""Chain watchers: one contract event, followed block range by block range, final blocks only.

A watcher acts on an event only once its block is final by the chain's own rule (`Finality`): the
node's `finalized` or `safe` block where the node has that tag, else `confirmations` blocks below
the head. A reorganisation above that never reaches the store; the watcher only notes it (`health`).

It checks the chain's continuity on every poll: the first block of each new range must have the
block it handled last as its parent, and that block must still be the chain's whenever the head
changes. A reorganisation that reaches a block it already handled is deeper than the chain's
finality: the watcher stops, its stream is halted in the store for an operator (`Store.halt`), and
it reads nothing more until the operator lifts the halt (`xrelay resume`), then starts again from
the cursor the store holds.

Its handler stores the events of a block range and moves the watcher's cursor (the last block fully
processed, with its hash) in one store step, so a daemon restarted at any point re-reads from where
it was. Ranges without events are handed over only every `save_every` blocks: an idle chain costs no
write per block. The chain's RPC endpoints fail over inside `Chain`
(bridge_contracts.chain.FailoverProvider).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from web3.contract.contract import ContractEvent
from web3.exceptions import BlockNotFound, Web3RPCError
from web3.types import BlockData, EventData

from bridge_contracts.chain import Chain
from relayer.store import Store, WatchCursor

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[EventData], WatchCursor], Awaitable[None]]
"""Stores the events of a block range (possibly none) and moves the cursor to the range's last
block, in one step."""
FinalityRule = Literal["finalized", "safe", "confirmations"]
HEADS_KEPT = 64  # recent heads remembered to tell how deep a reorganisation above the final head was


@dataclass(frozen=True)
class Finality:
    """When a block is final: the node's `finalized` or `safe` tag, or `confirmations` blocks deep (also
    the rule when the node does not know the tag)."""

    rule: FinalityRule
    confirmations: int

    def __str__(self) -> str:
        if self.rule == "confirmations":
            return f"{self.confirmations} confirmation{'' if self.confirmations == 1 else 's'}"
        return f"the node's {self.rule!r} block"


@dataclass(frozen=True)
class Reorg:
    """A reorganisation the watcher saw."""

    at: float
    block: int  # the lowest block it replaced, as far as the watcher can tell
    depth: int  # blocks replaced below the head the watcher saw before it
    deep: bool  # it reached a block the watcher had handled

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "block": self.block, "depth": self.depth, "deep": self.deep}


class DeepReorg(RuntimeError):
    """A block the watcher handled is no longer the chain's."""


class Watcher:
    def __init__(
        self,
        name: str,
        chain: Chain,
        event: ContractEvent,
        handler: Handler,
        store: Store,
        *,
        finality: Finality,
        filters: Mapping[str, Any] | None = None,
        start_block: int = 0,
        max_range: int = 2000,
        save_every: int = 100,
        on_reorg: Callable[[Reorg], None] | None = None,
    ) -> None:
        self.name = name
        self.chain = chain
        self.event = event
        self.handler = handler
        self.store = store
        self.finality = finality
        self.filters = dict(filters or {})
        self.start_block = start_block
        self.max_range = max_range
        self.save_every = save_every
        self.on_reorg = on_reorg or (lambda reorg: None)
        self.head: int | None = None
        self.final_head: int | None = None
        self.last_reorg: Reorg | None = None
        self.halted = False
        self._heads: OrderedDict[int, bytes] = OrderedDict()  # recent heads seen: number -> hash
        self._tag_missing = False
        self._final_hash: str | None = None  # the final head's hash, when the node's tag gave it
        self._load_cursor()

    def _load_cursor(self) -> None:
        saved = self.store.watch_cursor(self.name)
        self.cursor = None if saved is None else saved.block  # the last block handled
        self.cursor_hash = None if saved is None else saved.block_hash
        self._saved = self.cursor  # the cursor as the store has it

    async def poll(self) -> int:
        """Handle every event up to the final head; return how many there were. A halted stream reads
        nothing until the operator lifts the halt."""
        if self.store.active_halt(self.name) is not None:
            self.halted = True
            return 0
        if self.halted:  # lifted: the operator may have set the cursor back
            self.halted = False
            self._heads.clear()
            self._load_cursor()
            log.info("%s: halt lifted; reading again from block %s", self.name, self.cursor)
        latest = await self._block("latest")
        number, head_hash = int(latest["number"]), bytes(latest["hash"])
        changed = self._heads.get(number) != head_hash
        try:
            if changed or self.final_head is None:  # else nothing new: only what a failure left
                # A head that only extends the last one seen changed nothing below it.
                extends = bool(self._heads) and max(self._heads) == number - 1
                if not (extends and self._heads[number - 1] == bytes(latest["parentHash"])):
                    await self._note_reorg(number)
                    await self._check_cursor()
                self._remember(number, head_hash)
                self.head = number
                self.final_head = await self._final_head(number)
            return await self._read_final()
        except DeepReorg as exc:
            self._halt(str(exc))
            return 0
        except Exception:
            self._heads.clear()  # what was learned of the heads this poll may be half-done: check all again
            raise

    def health(self) -> dict[str, Any]:
        """For an operator: head, final head, cursor, the finality rule, the last reorganisation seen."""
        return {
            "finality": str(self.finality) + (" (the node has no such tag)" if self._tag_missing else ""),
            "head": self.head,
            "final_head": self.final_head,
            "cursor": self.cursor,
            "last_reorg": None if self.last_reorg is None else self.last_reorg.to_json(),
            "halted": self.halted,
        }

    async def check_canonical(self, blocks: Iterable[tuple[int, str | None]] = ()) -> str | None:
        """Whether the blocks this watcher stored — its saved cursor's, and `blocks` (number, hash as
        read) — are still the chain's: None, or why not (the stream is then halted). Asked before
        anything read from them is settled."""
        saved = self.store.watch_cursor(self.name)
        wanted = {number: read for number, read in blocks if read is not None}
        if saved is not None and saved.block_hash is not None:
            wanted[saved.block] = saved.block_hash
        for number, read in sorted(wanted.items()):
            now = await self._hash_or_none(number)
            if now != read:
                reason = (
                    f"reorganisation deeper than finality: block {number} was read with hash {read}, "
                    f"the chain now has {now or 'no such block'}"
                )
                self._halt(reason, block=number)
                return reason
        return None

    async def _read_final(self) -> int:
        assert self.final_head is not None
        first = self.start_block if self.cursor is None else self.cursor + 1
        seen = 0
        while first <= self.final_head:
            last = min(self.final_head, first + self.max_range - 1)
            final_hash = self._final_hash if last == self.final_head else None
            last_hash = final_hash or await self._hash_at(last)
            events = await asyncio.to_thread(self._logs, first, last)
            # The range read is the chain the watcher read before it: `first` follows the cursor's
            # block, and `last` is the same block after the logs as before them.
            if self.cursor_hash is not None:
                parent = "0x" + bytes((await self._block(first))["parentHash"]).hex()
                if parent != self.cursor_hash:
                    raise DeepReorg(
                        f"reorganisation deeper than finality: block {first}'s parent is {parent}, but "
                        f"block {self.cursor} was read with hash {self.cursor_hash}"
                    )
            hashes = {last: await self._hash_at(last)}
            if hashes[last] != last_hash:
                raise DeepReorg(
                    f"reorganisation deeper than finality: block {last} changed while it was read"
                )
            for event in events:  # every event from the chain as it is now, up to `last`
                number = event["blockNumber"]
                if number not in hashes:
                    hashes[number] = await self._hash_at(number)
                if "0x" + bytes(event["blockHash"]).hex() != hashes[number]:
                    raise DeepReorg(
                        f"reorganisation deeper than finality: block {event['blockNumber']} changed while it "
                        "was read"
                    )
            if events or self._saved is None or last - self._saved >= self.save_every:
                await self.handler(events, WatchCursor(self.name, last, hashes[last]))
                if self.store.active_halt(self.name) is not None:  # the handler found a conflict
                    self.halted = True
                    return seen
                self._saved = last
            self.cursor, self.cursor_hash = last, hashes[last]
            seen += len(events)
            first = last + 1
        return seen

    async def _check_cursor(self) -> None:
        """The block handled last must still be the chain's (a chain now shorter than it has lost it)."""
        if self.cursor is None:
            return
        if self.cursor_hash is None:  # a store from before block hashes were kept: from now on
            self.cursor_hash = await self._hash_at(self.cursor)
            self.store.set_cursor(self.name, self.cursor, self.cursor_hash)
            log.warning(
                "%s: the store kept no hash of block %d; taking the chain's as it is now",
                self.name,
                self.cursor,
            )
            return
        now = await self._hash_or_none(self.cursor)
        if now != self.cursor_hash:
            raise DeepReorg(
                f"reorganisation deeper than finality: block {self.cursor} was read with hash "
                f"{self.cursor_hash}, the chain now has {now or 'no such block'}"
            )

    async def _note_reorg(self, number: int) -> None:
        """The head changed: note a reorganisation of the blocks above the final head, if the heads
        seen before are no longer the chain's."""
        replaced = None
        for seen in sorted(self._heads, reverse=True):
            if seen > number:
                replaced = seen
                continue
            if await self._hash_at(seen) == "0x" + self._heads[seen].hex():
                break
            replaced = seen
        if replaced is None:
            return
        top = max(self._heads)
        deep = self.cursor is not None and replaced <= self.cursor
        self.last_reorg = Reorg(time.time(), replaced, top - replaced + 1, deep)
        self.on_reorg(self.last_reorg)
        for stale in [n for n in self._heads if n >= replaced]:
            del self._heads[stale]
        if not deep:
            log.info(
                "%s: reorganisation from block %d (%d block(s) deep), above the final head: nothing to do",
                self.name,
                replaced,
                self.last_reorg.depth,
            )

    def _remember(self, number: int, block_hash: bytes) -> None:
        self._heads[number] = block_hash
        self._heads.move_to_end(number)
        while len(self._heads) > HEADS_KEPT:
            self._heads.popitem(last=False)

    def _halt(self, reason: str, block: int | None = None) -> None:
        self.halted = True
        at = (self.cursor if block is None else block) or 0
        self.last_reorg = Reorg(time.time(), at, max((self.head or at) - at + 1, 1), True)
        self.on_reorg(self.last_reorg)
        self.store.halt(self.name, reason, at)

    async def _final_head(self, head: int) -> int:
        by_depth = head - self.finality.confirmations
        self._final_hash = None
        if self.finality.rule == "confirmations" or self._tag_missing:
            return by_depth
        try:
            final = await self._block(self.finality.rule)
        except Web3RPCError as exc:
            self._tag_missing = True
            log.warning(
                "%s: the node has no %r block (%s); final means %d confirmations instead",
                self.name,
                self.finality.rule,
                exc,
                self.finality.confirmations,
            )
            return by_depth
        self._final_hash = "0x" + bytes(final["hash"]).hex()
        return int(final["number"])

    async def _block(self, which: int | str) -> BlockData:
        return await asyncio.to_thread(self.chain.w3.eth.get_block, which)  # type: ignore[arg-type]

    async def _hash_or_none(self, number: int) -> str | None:
        try:
            return await self._hash_at(number)
        except BlockNotFound:
            return None

    async def _hash_at(self, number: int) -> str:
        return "0x" + bytes((await self._block(number))["hash"]).hex()

    def _logs(self, first: int, last: int) -> list[EventData]:
        found = self.event.get_logs(from_block=first, to_block=last, argument_filters=self.filters or None)
        return sorted(found, key=lambda e: (e["blockNumber"], e["logIndex"]))
