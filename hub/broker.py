"""The embedded MQTT broker (amqtt), started in-process when no broker URL is configured.

For the devnet and the tests only: it listens without TLS, lets anyone connect anonymously and keeps
its sessions in memory (a restart forgets them). Production runs a real broker (Mosquitto, EMQX) with
TLS and per-institution topic ACLs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

log = logging.getLogger("xrelay.hub.broker")

# amqtt logs every packet and connection at INFO; keep its warnings and errors only.
for _noisy in ("amqtt", "transitions"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


class BrokerError(RuntimeError):
    """The embedded broker could not start (most often: its port is taken)."""


class AdmitEveryone(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Admits every client, with or without a user name. amqtt's own AnonymousAuthPlugin marks such
    sessions anonymous, and amqtt then keeps no messages for them while they are offline: persistent
    sessions would not work."""

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Session) -> bool:
        return True


class EmbeddedBroker:
    """An anonymous, plain-TCP MQTT 3.1.1 broker on host:port; `async with` starts and stops it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._broker is not None

    async def start(self) -> None:
        if self._broker is not None:
            return
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {f"{__name__}.{AdmitEveryone.__name__}": {}},
        }
        broker = Broker(config)
        try:
            await broker.start()
        except Exception as exc:
            raise BrokerError(
                f"the embedded MQTT broker cannot listen on {self.host}:{self.port}: {exc}"
            ) from exc
        self._broker = broker
        log.info("event=broker_started url=%s", self.url)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
            log.info("event=broker_stopped url=%s", self.url)

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
