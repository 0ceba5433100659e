"""Chain watchers: one contract event, followed block range by block range, confirmed blocks only.

A watcher acts on an event only once its block is `confirmations` blocks deep, so a reorg shallower
than that never reaches the store. Its handler stores the events of a block range and moves the
watcher's cursor (the last block fully processed) in one store step, so a daemon restarted at any
point re-reads from where it was and anything missed while it was down is backfilled. Ranges without
events are handed over only every `save_every` blocks: an idle chain costs no write per block, and a
restart reads those few blocks again. The chain's
RPC endpoints fail over inside `Chain` (bridge_contracts.chain.FailoverProvider).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from web3.contract.contract import ContractEvent
from web3.types import EventData

from bridge_contracts.chain import Chain

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[EventData], int], Awaitable[None]]
"""Stores the events of a block range (possibly none) and moves the cursor to the range's last
block, in one step."""


class Watcher:
    def __init__(
        self,
        name: str,
        chain: Chain,
        event: ContractEvent,
        handler: Handler,
        *,
        confirmations: int,
        cursor: int | None,
        filters: Mapping[str, Any] | None = None,
        start_block: int = 0,
        max_range: int = 2000,
        save_every: int = 100,
    ) -> None:
        self.name = name
        self.chain = chain
        self.event = event
        self.handler = handler
        self.confirmations = confirmations
        self.cursor = cursor  # the last block handled; None before the first
        self.filters = dict(filters or {})
        self.start_block = start_block
        self.max_range = max_range
        self.save_every = save_every
        self._saved = cursor  # the cursor as the store has it

    async def poll(self) -> int:
        """Handle every event up to the confirmed head; return how many there were."""
        head = await asyncio.to_thread(lambda: self.chain.w3.eth.block_number)
        confirmed = head - self.confirmations
        first = self.start_block if self.cursor is None else self.cursor + 1
        seen = 0
        while first <= confirmed:
            last = min(confirmed, first + self.max_range - 1)
            events = await asyncio.to_thread(self._logs, first, last)
            if events or self._saved is None or last - self._saved >= self.save_every:
                await self.handler(events, last)
                self._saved = last
            self.cursor = last
            seen += len(events)
            first = last + 1
        return seen

    def _logs(self, first: int, last: int) -> list[EventData]:
        found = self.event.get_logs(from_block=first, to_block=last, argument_filters=self.filters or None)
        return sorted(found, key=lambda e: (e["blockNumber"], e["logIndex"]))
