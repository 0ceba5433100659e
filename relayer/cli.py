"""The `xrelay` command: every subcommand is an operator's task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bridge_contracts import build as contract_build
from bridge_contracts.anvil import AnvilError
from bridge_contracts.artifacts import ArtifactMissing
from bridge_contracts.build import CompileError
from bridge_contracts.chain import Reverted
from bridge_contracts.toolchain import ToolchainMissing
from relayer import config as institution_config
from relayer import devnet as devnet_ops
from relayer.config import ConfigError
from relayer.devnet import DevnetError

console = Console(highlight=False)

# Errors that are the operator's to fix: shown as one clear message, never as a traceback.
OPERATOR_ERRORS = (
    ConfigError,
    DevnetError,
    ToolchainMissing,
    CompileError,
    AnvilError,
    ArtifactMissing,
    Reverted,
)


class XrelayGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OPERATOR_ERRORS as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=XrelayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xrelay")
def cli() -> None:
    """xrelay: the interoperability relayer an institution runs beside its ZK chain."""


@cli.group()
def contracts() -> None:
    """Build and check the Solidity contracts."""


@contracts.command("build")
@click.option("--check", is_flag=True, help="Compile in memory and fail if the committed artifacts differ.")
def contracts_build(check: bool) -> None:
    """Compile bridge_contracts/src with the pinned solc into bridge_contracts/artifacts."""
    if check:
        problems = contract_build.check()
        if problems:
            raise click.ClickException("artifacts do not match the sources:\n  " + "\n  ".join(problems))
        console.print("artifacts match the sources")
        return
    result = contract_build.build()
    for warning in result.warnings:
        console.print(f"[yellow]{warning}[/yellow]")
    console.print(f"wrote {len(result.artifacts)} artifacts to {contract_build.ARTIFACTS_DIR}")


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=devnet_ops.state_dir_default,
    show_default=f"$XRELAY_DEVNET_DIR or {devnet_ops.DEFAULT_STATE_DIR}",
    help="Where the devnet keeps its manifest, configs and logs.",
)


@cli.group()
def devnet() -> None:
    """Local L1 and institution chains on anvil, for development only."""


@devnet.command("up")
@click.option("--l2", type=int, default=2, show_default=True, help="How many institution chains.")
@click.option(
    "--block-time", type=float, default=None, help="Seconds per block (default: a block per transaction)."
)
@state_dir_option
def devnet_up(l2: int, block_time: float | None, state_dir: Path) -> None:
    """Start the L1 and N institution chains, deploy the contracts, write manifest and configs."""
    with console.status(f"starting L1 and {l2} institution chains, deploying contracts"):
        manifest = devnet_ops.up(state_dir, l2=l2, block_time=block_time)
    table = _table("devnet up", "chain", "chain id", "rpc url", "pid")
    for node in devnet_ops.nodes(manifest):
        table.add_row(node["name"], str(node["chain_id"]), node["rpc_url"], str(node["pid"]))
    console.print(table)
    _print_configs(manifest)
    console.print(
        f"manifest: {Path(manifest['state_dir']) / devnet_ops.MANIFEST}; `xrelay devnet status` shows it"
    )


@devnet.command("status")
@state_dir_option
def devnet_status(state_dir: Path) -> None:
    """Show the devnet's chains, whether each node runs, its contracts and the dev accounts."""
    found = devnet_ops.status(state_dir)
    if found is None:
        console.print(f"no devnet in {state_dir.resolve()}")
        return
    manifest, nodes = found
    table = _table(
        f"devnet in {manifest['state_dir']}", "chain", "chain id", "rpc url", "pid", "state", "block"
    )
    for node in nodes:
        state = "[green]running[/green]" if node.running else "[red]stopped[/red]"
        block = "-" if node.block is None else str(node.block)
        table.add_row(node.name, str(node.chain_id), node.rpc_url, str(node.pid), state, block)
    console.print(table)
    contracts_table = _table("contracts", "chain", "contract", "address")
    for entry in devnet_ops.nodes(manifest):
        for name, address in entry["contracts"].items():
            contracts_table.add_row(entry["name"], name, address)
    console.print(contracts_table)
    accounts = _table(manifest["accounts_note"], "#", "address", "private key", "role")
    for account in manifest["accounts"]:
        accounts.add_row(str(account["index"]), account["address"], account["private_key"], account["role"])
    console.print(accounts)
    _print_configs(manifest)


def _print_configs(manifest: dict[str, Any]) -> None:
    for node in manifest["chains"]:
        console.print(f"config for {node['name']}: {node['config']}")


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")  # wrap, never cut: addresses and keys get copied
    return table


@devnet.command("down")
@state_dir_option
def devnet_down(state_dir: Path) -> None:
    """Stop exactly the nodes this devnet started (by pid); keep their logs."""
    stopped = devnet_ops.down(state_dir)
    pids = ", ".join(map(str, stopped)) or "none were still running"
    console.print(f"devnet down; stopped pids: {pids}")


@cli.group()
def config() -> None:
    """Validate institution config files."""


@config.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def config_check(file: Path) -> None:
    """Validate an institution config and print a summary of it."""
    loaded = institution_config.load(file)
    table = _table(f"{file}: valid", "key", "value")
    table.show_header = False
    for label, value in institution_config.summary(loaded):
        table.add_row(label, value)
    console.print(table)


def main() -> None:
    cli(prog_name="xrelay")
