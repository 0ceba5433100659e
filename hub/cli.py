"""`xrelay hub ...`: the hub service's commands (attached to the main CLI in relayer/cli.py)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from bridge_contracts.artifacts import ArtifactMissing
from hub import config as hub_config
from hub.broker import BrokerError
from hub.bus import BusError
from hub.config import HubConfigError
from hub.indexer import IndexerError
from hub.service import HubService
from hub.store import HubStoreError

# Errors that are the operator's to fix: one clear message, never a traceback.
OPERATOR_ERRORS = (
    HubConfigError,
    HubStoreError,
    IndexerError,
    BrokerError,
    BusError,
    ArtifactMissing,
    OSError,
)


log_level_option = click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning"])
)


def setup_logging(level: str) -> None:
    """Log lines with their time, level and logger, for the long-running services."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
def hub() -> None:
    """The hub service: indexes the L1 Hub, serves aggregated-tree proofs, announces roots."""


@hub.command("run")
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The hub service's TOML config.",
)
@log_level_option
def run(config_path: Path, log_level: str) -> None:
    """Index the L1 Hub, serve the API and announce new roots until SIGTERM or SIGINT."""
    setup_logging(log_level)
    try:
        config = hub_config.load(config_path)
        asyncio.run(_serve(HubService(config)))
    except OPERATOR_ERRORS as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve(service: HubService) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await service.run(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
