"""The hub service: the indexer, the HTTP API and root announcements on the bus, in one process.

`xrelay hub run -c hub.toml` runs `HubService(config).run(stop)`. With `[bus] listen` it starts the
embedded broker first, admitting the logins of `[bus] users` (anyone without it: tests only), and
publishes through it as the users file's `hub`. Each sync that appended leaves announces, on
ROOTS_TOPIC (retained, so a daemon that connects later gets the latest at once), the root at the end
of each L1 block that changed it; a sync that catches up more than ANNOUNCE_AT_MOST blocks announces
only the latest root. Announcements are hints: receivers check roots on L1.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from aiohttp import web

from hub.api import create_app
from hub.broker import BrokerError, EmbeddedBroker, read_users
from hub.bus import Bus
from hub.config import HubConfig
from hub.envelope import HUB_SENDER, ROOTS_TOPIC, RootAnnouncement
from hub.indexer import Indexer, RootUpdate
from hub.store import HubStore

log = logging.getLogger("xrelay.hub.service")

ANNOUNCE_AT_MOST = 16


class HubService:
    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.store: HubStore | None = None
        self.indexer: Indexer | None = None
        self.broker: EmbeddedBroker | None = None
        self.bus: Bus | None = None
        self.api_url: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; raises if the indexer stops (IndexerError) or cannot start."""
        config = self.config
        async with AsyncExitStack() as stack:
            self.store = HubStore(config.store.path)
            stack.callback(self.store.close)
            l1 = config.l1
            self.indexer = Indexer(
                self.store,
                l1.rpc_urls,
                l1.hub,
                l1_chain_id=l1.chain_id,
                confirmations=l1.confirmations,
                start_block=l1.start_block,
                block_range=l1.block_range,
            )
            await self.indexer.start()

            bus_url = config.bus.url
            username, password = config.bus.credentials()
            if config.bus.listen is not None:
                users = None if config.bus.users is None else read_users(config.bus.users)
                if users is not None:
                    if HUB_SENDER not in users:
                        raise BrokerError(f"{config.bus.users} has no login for the hub service")
                    username, password = HUB_SENDER, users[HUB_SENDER].password
                else:
                    log.warning("event=broker_open reason='no [bus] users: it admits anyone'")
                self.broker = await stack.enter_async_context(
                    EmbeddedBroker(*config.bus.host_port, users=None if users is None else users.values())
                )
                bus_url = self.broker.url
            assert bus_url is not None
            self.bus = await stack.enter_async_context(
                Bus(
                    bus_url, HUB_SENDER, topics=(), username=username, password=password, tls=config.bus.tls()
                )
            )

            runner = web.AppRunner(create_app(self.indexer), access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            host, port = config.api.host_port
            await web.TCPSite(runner, host, port).start()
            self.api_url = f"http://{config.api.listen}"
            log.info("event=hub_service_started api=%s bus=%s hub=%s", self.api_url, bus_url, l1.hub)

            latest = self.indexer.latest_root()
            if latest is not None:  # the bus may be new: tell it where the tree stands
                await self._announce([latest])
            following = asyncio.create_task(self.indexer.run(l1.poll_interval, self._announce))
            stopping = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait([following, stopping], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (following, stopping):
                    if not task.done():
                        task.cancel()
                await asyncio.gather(following, stopping, return_exceptions=True)
            if not following.cancelled():
                following.result()  # the indexer stopped on its own: raise why
            log.info("event=hub_service_stopping")

    async def _announce(self, updates: list[RootUpdate]) -> None:
        assert self.bus is not None and self.indexer is not None
        for update in updates if len(updates) <= ANNOUNCE_AT_MOST else updates[-1:]:
            announcement = RootAnnouncement(size=update.size, root=update.root, l1_block=update.block)
            await self.bus.publish(ROOTS_TOPIC, announcement.to_bytes(), retain=True)
