"""The `xrelay` command: every subcommand is an operator's task."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
import requests
from rich.console import Console
from rich.table import Table
from web3.contract import Contract
from web3.exceptions import ProviderConnectionError

from bridge_contracts import build as contract_build
from bridge_contracts.anvil import AnvilError
from bridge_contracts.artifacts import ArtifactMissing
from bridge_contracts.build import CompileError
from bridge_contracts.chain import Chain, Reverted
from bridge_contracts.swaps import PRICE_ONE, Terms
from bridge_contracts.toolchain import ToolchainMissing
from hub import cli as hub_cli
from hub.broker import BrokerError
from hub.bus import BusError
from hub.config import HubConfigError
from hub.envelope import public_key_of
from proofs.formats import FormatError
from relayer import bus_keys, daemon, halts
from relayer import config as institution_config
from relayer import peers as peer_ops
from relayer import store as store_ops
from relayer.config import ANY, ConfigError
from relayer.devnet import devnet as devnet_ops
from relayer.devnet.demo import Demo
from relayer.devnet.devnet import DevnetError
from relayer.peers import PeerError
from relayer.pipeline.prover import ProverPoolError
from relayer.pipeline.swaps import bounce_refusal
from relayer.store import (
    BatchStatus,
    Direction,
    InStatus,
    OutStatus,
    Store,
    StoredMessage,
    StoreError,
    SwapSide,
    SwapStatus,
    Transition,
)
from relayer.watcher import Finality

console = Console(highlight=False)
F = TypeVar("F", bound=Callable[..., Any])

# Errors that are the operator's to fix: shown as one clear message, never as a traceback.
OPERATOR_ERRORS = (
    ConfigError,
    DevnetError,
    ToolchainMissing,
    CompileError,
    AnvilError,
    ArtifactMissing,
    Reverted,
    StoreError,
    PeerError,
    FormatError,
    ProverPoolError,
    BrokerError,
    BusError,
    HubConfigError,
    ProviderConnectionError,
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
@click.option(
    "--capacity",
    "capacities",
    type=int,
    multiple=True,
    default=devnet_ops.DEFAULT_CAPACITIES,
    show_default=True,
    help="A batch capacity (messages per batch) the chains prove with, adaptively: the devnet makes a "
    "development key of each and registers its verifier. Repeat for several.",
)
@click.option(
    "--broker",
    type=click.Choice(devnet_ops.BROKERS),
    default="embedded",
    show_default=True,
    help="The bus: the broker the hub service embeds, or a Mosquitto started here (TLS; needs mosquitto "
    "installed). Both authenticate each client and apply the per-institution topic ACLs.",
)
@state_dir_option
def devnet_up(
    l2: int, block_time: float | None, capacities: tuple[int, ...], broker: str, state_dir: Path
) -> None:
    """Start the L1 and N institution chains, deploy the contracts, write keys, manifest and configs."""
    with console.status(f"starting L1 and {l2} institution chains, deploying contracts"):
        manifest = devnet_ops.up(
            state_dir, l2=l2, block_time=block_time, capacities=capacities, broker=broker
        )
    table = _table("devnet up", "chain", "chain id", "rpc url", "pid")
    for node in devnet_ops.nodes(manifest):
        table.add_row(node["name"], str(node["chain_id"]), node["rpc_url"], str(node["pid"]))
    console.print(table)
    _print_configs(manifest)
    bus = manifest["bus"]
    where = f"mosquitto, pid {bus['pid']}" if bus["broker"] == "mosquitto" else "embedded in the hub service"
    console.print(f"bus: {bus['url']} ({where}); logins (DEVNET ONLY): {bus['credentials']}")
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


# --- operating a daemon: its peers, its messages, replays -----------------------------------------

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The institution's config file.",
)


def _open_store(config_path: Path) -> Store:
    """The store of the daemon that runs with this config (which must exist already)."""
    config = institution_config.load(config_path)
    path = config.store.path
    if not path.exists():
        raise StoreError(
            f"no store at {path} yet: the daemon creates it when it first runs with {config_path}"
        )
    return Store(path, refusals=config.store.refusal_policy())


def status_option(statuses: Iterable[str]) -> Callable[[F], F]:
    """`--status`: one of `statuses` or several (repeated, or as "a,b"); the command gets the list,
    or None for no filter."""
    choices = tuple(dict.fromkeys(str(status) for status in statuses))

    def check(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str] | None:
        words = [word for value in values for word in value.split(",") if word]
        unknown = [word for word in words if word not in choices]
        if unknown:
            raise click.BadParameter(f"unknown status {', '.join(unknown)}: use {', '.join(choices)}")
        return words or None

    return click.option(
        "--status",
        "statuses",
        multiple=True,
        callback=check,
        metavar="STATUS",
        help=f"Only these statuses (repeat it, or a,b): {', '.join(choices)}.",
    )


@cli.group()
def peers() -> None:
    """List, add and remove an institution's peers (a running daemon picks changes up by itself)."""


@peers.command("list")
@config_option
def peers_list(config_path: Path) -> None:
    """The peers in a config file and what each may do."""
    found = peer_ops.list_peers(config_path)
    if not found:
        console.print(f"{config_path}: no peers")
        return
    table = _table(
        f"peers of {config_path}", "name", "chain id", "assets", "targets", "per minute", "forced after"
    )
    for peer in found:
        table.add_row(
            peer.name,
            str(peer.chain_id),
            _allowed(peer.allowed_assets, "none (value refused)"),
            _allowed(peer.allowed_targets, "none"),
            str(peer.rate_limit_per_minute),
            f"{peer.force_after_seconds:g} s",
        )
    console.print(table)


def _allowed(values: tuple[str, ...], none: str) -> str:
    return "any" if values == (ANY,) else "\n".join(values) if values else none


@peers.command("add")
@config_option
@click.argument("name")
@click.argument("chain_id", type=int)
@click.option(
    "--asset",
    "assets",
    multiple=True,
    help="An asset id the peer may send value in (repeat it); default: any.",
)
@click.option("--no-value", is_flag=True, help="Accept no value from the peer (allowed_assets = []).")
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="An address the peer's messages may call (repeat it); default: any.",
)
@click.option("--rate-limit", type=int, default=600, show_default=True, help="The most messages per minute.")
@click.option(
    "--force-after",
    type=float,
    default=None,
    help="Seconds without the peer's receipt before a message is forced through L1 (default 21600).",
)
@click.option("--swap-desk", default=None, help="The peer's SwapDesk address, for atomic swaps with it.")
def peers_add(
    *,
    config_path: Path,
    name: str,
    chain_id: int,
    assets: tuple[str, ...],
    no_value: bool,
    targets: tuple[str, ...],
    rate_limit: int,
    force_after: float | None,
    swap_desk: str | None,
) -> None:
    """Add the peer NAME, whose chain is CHAIN_ID, to the config file (validated before it is written)."""
    if no_value and assets:
        raise click.UsageError("--no-value and --asset contradict each other: give one of them")
    peer = peer_ops.add_peer(
        config_path,
        name,
        chain_id,
        () if no_value else assets or (ANY,),
        targets or (ANY,),
        rate_limit,
        force_after_seconds=force_after,
        swap_desk=swap_desk,
    )
    console.print(f"added peer {peer.name} (chain {peer.chain_id}) to {config_path}")
    console.print("a running daemon picks the change up by itself")


@peers.command("remove")
@config_option
@click.argument("name")
def peers_remove(config_path: Path, name: str) -> None:
    """Remove the peer NAME from the config file."""
    peer = peer_ops.remove_peer(config_path, name)
    console.print(f"removed peer {peer.name} (chain {peer.chain_id}) from {config_path}")
    console.print("a running daemon picks the change up by itself")


@cli.group()
def messages() -> None:
    """The messages a daemon relays, their history, and the inputs it refused."""


@messages.command("list")
@config_option
@status_option([*OutStatus, *InStatus])
@click.option("--peer", help="Only messages to or from this peer.")
@click.option(
    "--direction", type=click.Choice([str(d) for d in Direction]), help="Only incoming or outgoing messages."
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (the oldest first).")
def messages_list(
    config_path: Path,
    statuses: list[str] | None,
    peer: str | None,
    direction: str | None,
    limit: int | None,
) -> None:
    """Messages, oldest first, with their status."""
    with _open_store(config_path) as store:
        rows = store.messages(status=statuses, peer=peer, direction=direction, limit=limit)
    if not rows:
        console.print("no messages")
        return
    table = _table(
        f"messages in {config_path}", "id", "dir", "peer", "status", "value", "batch", "tries", "age", "error"
    )
    now = time.time()
    for m in rows:
        table.add_row(
            m.id,
            m.direction,
            m.peer,
            m.status,
            _value(m),
            _or_dash(m.batch_number),
            str(m.attempts),
            _age(now - m.created_at),
            _short(m.error or "", 80),
        )
    console.print(table)


@messages.command("show")
@config_option
@click.argument("message_id", metavar="ID")
def messages_show(config_path: Path, message_id: str) -> None:
    """One message (ID: "<source chain id>:<nonce>"), and every status it went through, with why."""
    with _open_store(config_path) as store:
        m = store.message(message_id)
        if m is None:
            raise store_ops.UnknownMessage(f"no message {message_id} in the store {store.path}")
        history = store.history(message_id)
    _print_fields(f"message {message_id}", m.to_json())
    _print_history(history)


@messages.command("refused")
@config_option
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many.")
def messages_refused(config_path: Path, limit: int) -> None:
    """Inputs the daemon refused (envelopes, messages), newest first, with the reason."""
    with _open_store(config_path) as store:
        refusals = store.refusals(limit)
    if not refusals:
        console.print("nothing refused")
        return
    table = _table(
        f"refused by the daemon of {config_path}", "#", "at", "peer", "chain id", "kind", "reason", "bytes"
    )
    for r in refusals:
        table.add_row(
            str(r.id),
            store_ops.format_time(r.at),
            r.peer or "-",
            _or_dash(r.chain_id),
            r.kind,
            r.reason,
            str(r.raw_size),
        )
    console.print(table)


@cli.group()
def batches() -> None:
    """The batches of this chain's outgoing messages: proving, committing, settled."""


@batches.command("list")
@config_option
@status_option(BatchStatus)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Only the last N batches.")
def batches_list(config_path: Path, statuses: list[str] | None, limit: int | None) -> None:
    """Batches by number, with their status, messages, proving time and commit transaction."""
    with _open_store(config_path) as store:
        found = store.batches(status=statuses, limit=limit)
    if not found:
        console.print("no batches")
        return
    table = _table(
        f"batches in {config_path}",
        "batch",
        "status",
        "count",
        "nonces",
        "proving",
        "commit tx",
        "tries",
        "error",
        "age",
    )
    now = time.time()
    for b in found:
        table.add_row(
            str(b.batch_number),
            b.status,
            f"{b.count}/{b.capacity}",
            f"{b.first_nonce}..{b.last_nonce}",
            "-" if b.proving_seconds is None else f"{b.proving_seconds:.2f} s",
            b.commit_tx or "-",
            str(b.attempts),
            _short(b.error or "", 80),
            _age(now - b.created_at),
        )
    console.print(table)


@batches.command("show")
@config_option
@click.argument("batch_number", metavar="N", type=click.IntRange(min=0))
def batches_show(config_path: Path, batch_number: int) -> None:
    """Batch N, and every status it went through, with why."""
    with _open_store(config_path) as store:
        b = store.batch(batch_number)
        if b is None:
            raise StoreError(f"no batch {batch_number} in the store {store.path}")
        history = store.batch_history(batch_number)
    _print_fields(f"batch {batch_number}", b.to_json())
    _print_history(history)


@cli.group("store")
def store_group() -> None:
    """The daemon's store: whether it is consistent."""


@store_group.command("check")
@config_option
@click.option(
    "--repair",
    is_flag=True,
    help="First repair what an earlier xrelay left half-way through a step (nothing is lost).",
)
def store_check(config_path: Path, repair: bool) -> None:
    """Check that each batch holds exactly its messages and that every status agrees with its batch's
    and with its history; exit 1 if anything does not."""
    with _open_store(config_path) as store:
        if repair:
            done = store.repair()
            for line in done:
                console.print(f"repaired: {line}")
            if not done:
                console.print("nothing to repair")
        problems = store.check()
        path = store.path
    if problems:
        raise click.ClickException(f"the store {path} is inconsistent:\n  " + "\n  ".join(problems))
    console.print(f"the store {path} is consistent")


@cli.command()
@config_option
@click.argument("message_id", metavar="ID")
def replay(config_path: Path, message_id: str) -> None:
    """Have the daemon execute the failed incoming message ID again (safe to repeat)."""
    with _open_store(config_path) as store:
        before = store.message(message_id)
        status = store.request_replay(message_id, "replay requested from the CLI")
    if before is not None and before.status != status:
        console.print(
            f"message {message_id}: {before.status} -> {status}; the daemon executes it again shortly"
        )
    elif status == "replay":
        console.print(f"message {message_id} is already waiting for its replay: nothing changed")
    else:
        console.print(f"message {message_id} is {status}: it is to be executed already; nothing changed")


@cli.command()
@config_option
@click.argument("message_id", metavar="ID")
@click.option(
    "--reason", required=True, help="Why this chain gives the message up (sent back to the source)."
)
def bounce(config_path: Path, message_id: str, reason: str) -> None:
    """Give up on the failed incoming message ID: the daemon bounces it, so its value goes back to the
    source chain and its sender is refunded (safe to repeat)."""
    config = institution_config.load(config_path)
    with _open_store(config_path) as store:
        before = store.message(message_id)
        refusal = None if before is None else bounce_refusal(config, before.message)
        if refusal is not None:
            raise StoreError(refusal)
        status = store.request_bounce(message_id, f"{reason} (from the CLI)")
    if before is not None and before.status != status:
        console.print(f"message {message_id}: {before.status} -> {status}; the daemon bounces it shortly")
    else:
        console.print(f"message {message_id} is {status} already: nothing changed")


@cli.command()
@config_option
@click.argument("message_id", metavar="ID")
def force(config_path: Path, message_id: str) -> None:
    """Force the outgoing message ID through the L1 priority queue now, without waiting for its peer's
    force_after_seconds: the daemon sends Hub.requestPriorityOp shortly (safe to repeat)."""
    with _open_store(config_path) as store:
        before = store.message(message_id)
        status = store.force(message_id, "forcing requested from the CLI")
    if before is not None and before.status != status:
        console.print(f"message {message_id}: {before.status} -> {status}; the daemon forces it shortly")
    else:
        console.print(f"message {message_id} is {status} already: nothing changed")


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's status as JSON.")
def status(config_path: Path, as_json: bool) -> None:
    """The daemon's health: each chain's head, final head, last reorganisation, endpoint in use, and
    any halt waiting for an operator. Asks the running daemon (its admin API); when it is not running,
    says so and shows what the store holds."""
    config = institution_config.load(config_path)
    admin = config.admin
    url = f"http://{admin.host}:{admin.port}/v1/status"
    token = os.environ.get(admin.token_env, "")
    try:
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except requests.RequestException as exc:
        console.print(f"[red]the daemon is not answering at {url}[/red] ({type(exc).__name__})")
        with _open_store(config_path) as store:
            _print_halts([h.to_json() for h in store.halts() if h.lifted_at is None])
        raise SystemExit(1) from None
    if response.status_code != 200:
        raise click.ClickException(f"{url} answered {response.status_code}: {response.text[:200]}")
    body = response.json()
    if as_json:
        console.print_json(orjson.dumps(body).decode())
        return
    _print_fields(
        f"{body['institution']}: {'healthy' if body['healthy'] else 'HALTED'}",
        {k: body[k] for k in ("chain_id", "l1_chain_id", "operator", "uptime_seconds", "last_batch")},
    )
    chains = _table("chains", "chain", "head", "final head", "cursor", "finality", "last reorg", "endpoint")
    for name, c in body["chains"].items():
        reorg = c["last_reorg"]
        chains.add_row(
            f"{name} ({c['chain_id']})",
            _or_dash(c["head"]),
            _or_dash(c["final_head"]),
            _or_dash(c["cursor"]),
            c["finality"],
            _reorg(reorg),
            c["endpoint"]
            + "".join(f"\n{e['url']}: {e['state']}" for e in c["endpoints"] if e["state"] != "in use"),
        )
    console.print(chains)
    _print_halts([h for h in body["halts"].values() if h is not None])
    _print_priority(body["priority"])


def _print_priority(priority: dict[str, Any]) -> None:
    """Forced inclusion: what this chain must process of its L1 priority queue, and what it forced."""
    queue, forced = priority["queue"], priority["forced_by_this_chain"]
    if queue["pending"]:
        left = queue["seconds_left"]
        when = f"OVERDUE by {-left:.0f} s" if left < 0 else f"{left:.0f} s left"
        colour = "red" if left < 0 or queue["unreadable"] else "yellow"
        unreadable = f", {queue['unreadable']} UNREADABLE" if queue["unreadable"] else ""
        console.print(
            f"[{colour}]priority queue: {queue['pending']} operation(s) to process from {queue['next']}"
            f"{unreadable}; oldest deadline {store_ops.format_time(queue['oldest_deadline'])} "
            f"({when})[/{colour}]"
        )
    else:
        console.print("priority queue: nothing forced to this chain waits")
    if forced["forcing"] or forced["forced"]:
        overdue = f", {forced['overdue']} past the peer's deadline" if forced["overdue"] else ""
        console.print(
            f"forced by this chain: {forced['forcing']} being forced, "
            f"{forced['forced']} in peers' queues{overdue}"
        )


def _reorg(reorg: dict[str, Any] | None) -> str:
    if reorg is None:
        return "-"
    deep = "DEEP " if reorg["deep"] else ""
    return f"{deep}from block {reorg['block']}, {reorg['depth']} deep, {_age(time.time() - reorg['at'])} ago"


def _print_halts(halts: Sequence[dict[str, Any]]) -> None:
    if not halts:
        console.print("no halt: every stream runs")
        return
    for h in halts:
        console.print(
            f"[red]HALTED[/red] {h['scope']} since {store_ops.format_time(h['at'])}: {h['reason']}\n"
            f"  decide with: xrelay resume -c CONFIG --scope {h['scope']}"
            + (" (--rewind forgets what the chain no longer has)" if h["scope"] == "outbox" else "")
            + '; see docs/operations.md, "When a stream is halted"'
        )


@cli.command()
@config_option
@click.option(
    "--scope",
    type=click.Choice(store_ops.HALT_SCOPES),
    default="outbox",
    show_default=True,
    help="The halted stream: this chain's outgoing messages, L1 deposits or priority operations to it, "
    "or this chain's swap desk.",
)
@click.option(
    "--rewind",
    is_flag=True,
    help="Forget this chain's unsettled outgoing messages the chain no longer has as stored (and every "
    "later one), and read the chain again.",
)
def resume(config_path: Path, scope: str, rewind: bool) -> None:
    """Decide on a halted stream: compare what the store read with the chain as it is now; resume when
    they agree, or rewind (--rewind) when the chain lost unsettled messages. The running daemon picks
    the decision up by itself."""
    config = institution_config.load(config_path)
    on_l1 = scope.startswith("l1-")
    name, rpc = ("l1", config.l1) if on_l1 else ("chain", config.chain)
    with _open_store(config_path) as store:
        genesis = rpc.genesis or store.genesis(name, rpc.chain_id)
        chain = Chain(
            rpc.rpc_urls,
            config.chain.signer.resolve(),
            chain_id=rpc.chain_id,
            genesis=None if genesis is None else bytes.fromhex(genesis.removeprefix("0x")),
            name=scope,
        )
        contract: Contract | None
        if scope == "outbox":
            contract = chain.contract("Outbox", config.chain.contracts.outbox)
        elif scope == "swap-desk":  # None: a desk since taken out of the config, nothing to compare
            desk = config.chain.contracts.swap_desk
            contract = None if desk is None else chain.contract("SwapDesk", desk)
        else:
            if config.l1.hub is None:
                raise click.ClickException(f"{config_path}: l1.hub is not set")
            contract = chain.contract("Hub", config.l1.hub)
        finality = Finality(rpc.finality, rpc.confirmations)
        outcome = halts.resolve(
            store, chain, contract, scope, finality=finality, rewind=rewind, who="the CLI"
        )
    for line in outcome.conflicts:
        console.print(f"conflict: {line}")
    for message_id in outcome.dropped:
        console.print(f"forgotten: {message_id}")
    if not outcome.lifted:
        raise click.ClickException(f"{scope} stays halted: {outcome.summary}")
    console.print(f"{scope} resumed: {outcome.summary}")


# --- the bus encryption key ----------------------------------------------------------------------


@cli.group("bus-key")
def bus_key() -> None:
    """Make the institution's bus encryption key and register it on the L1 Hub."""


@bus_key.command("new")
@click.option(
    "--keystore",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the key to this new encrypted keystore file (else print it, for an environment variable).",
)
@click.option(
    "--password-env",
    default="XRELAY_BUS_KEY_PASSWORD",
    show_default=True,
    help="With --keystore: the environment variable holding its password (asked for when unset).",
)
def bus_key_new(keystore: Path | None, password_env: str) -> None:
    """Make a new bus encryption key (X25519)."""
    secret = bus_keys.new_key()
    public = "0x" + public_key_of(secret).hex()
    if keystore is None:
        console.print(f"public key: {public}")
        console.print(
            "secret key (put it in the variable [bus.key] env names; never in a file in the clear):"
        )
        click.echo(bytes(secret).hex())
        return
    password = os.environ.get(password_env) or click.prompt(
        "keystore password", hide_input=True, confirmation_prompt=True
    )
    try:
        bus_keys.write_keystore(keystore, secret, password)
    except FileExistsError:
        raise click.ClickException(f"{keystore} exists already: choose another file") from None
    console.print(f"public key: {public}")
    console.print(f'[bus.key]\nkeystore = "{keystore}"\npassword_env = "{password_env}"')


@bus_key.command("show")
@config_option
def bus_key_show(config_path: Path) -> None:
    """Show the configured bus keys beside the one the L1 Hub has for this chain."""
    config = institution_config.load(config_path)
    state = bus_keys.key_state(config, config_path)
    registered = state.registered
    console.print(f"bus.key:           0x{state.configured.hex()}")
    if state.previous is not None:
        console.print(f"bus.previous_key:  0x{state.previous.hex()}")
    console.print(f"L1 Hub, current:   0x{registered.current.hex()}")
    console.print(f"L1 Hub, previous:  0x{registered.previous.hex()} (replaced at {registered.changed_at})")
    if not state.in_force:
        raise click.ClickException("bus.key is not the key the L1 Hub has: `xrelay bus-key register`")


@bus_key.command("register")
@config_option
def bus_key_register(config_path: Path) -> None:
    """Register bus.key's public key on the L1 Hub (sent by the chain's operator, the config's signer)."""
    config = institution_config.load(config_path)
    tx = bus_keys.register(config, config_path)
    if tx is None:
        console.print("the L1 Hub has this key already")
    else:
        console.print(f"registered on the L1 Hub in {tx}; peers seal to it within 30 s")


@cli.group()
def swaps() -> None:
    """Atomic swaps with peers: the terms agreed, the desk's quote and inventory, and every swap."""


@swaps.command("list")
@config_option
@status_option(SwapStatus)
@click.option(
    "--side", type=click.Choice([str(s) for s in SwapSide]), help="a: this chain's users; b: its desk."
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (the newest first).")
def swaps_list(config_path: Path, statuses: list[str] | None, side: str | None, limit: int | None) -> None:
    """Swaps on this chain's desk, newest first."""
    with _open_store(config_path) as store:
        rows = store.swaps(status=statuses, side=side, limit=limit)
    if not rows:
        console.print("no swaps")
        return
    table = _table(f"swaps in {config_path}", "id", "side", "peer", "status", "reason", "x", "y", "deadline")
    now = time.time()
    for s in rows:
        left = s.deadline - now
        table.add_row(
            s.swap_id[:18] + "…",
            str(s.side),
            s.peer,
            str(s.status),
            s.reason or "-",
            str(s.amount_x),
            str(s.amount_y or "-"),
            ("in " + _age(left)) if left > 0 else (_age(-left) + " ago"),
        )
    console.print(table)


@swaps.command("show")
@config_option
@click.argument("swap_id", metavar="ID")
def swaps_show(config_path: Path, swap_id: str) -> None:
    """One swap (ID: its 0x swap id), with the status of its message (A: phase 1; B: the result)."""
    with _open_store(config_path) as store:
        s = store.swap(swap_id)
        if s is None:
            raise StoreError(f"no swap {swap_id} in the store {store.path}")
        m = store.message(s.message_id)
    _print_fields(f"swap {s.swap_id}", {**s.to_json(), "message_status": m.status if m else None})


@swaps.group("terms")
def swaps_terms() -> None:
    """Swap terms: proposed by one operator, accepted by the other, registered on both desks."""


@swaps_terms.command("list")
@config_option
def swaps_terms_list(config_path: Path) -> None:
    """Terms agreed, or being agreed, with peers."""
    with _open_store(config_path) as store:
        rows = store.swap_terms()
    if not rows:
        console.print("no swap terms")
        return
    table = _table(
        f"swap terms in {config_path}", "id", "peer", "side", "status", "x→y", "band", "window", "error"
    )
    for t in rows:
        terms = t.terms
        table.add_row(
            t.terms_id,
            t.peer,
            str(t.side),
            str(t.status),
            f"0x{terms.asset_x.hex()[:8]}…→0x{terms.asset_y.hex()[:8]}…",
            f"{_price(terms.price_min)}..{_price(terms.price_max)}",
            f"{terms.window} s",
            _short(t.error or "", 60),
        )
    console.print(table)


@swaps_terms.command("propose")
@config_option
@click.option("--peer", required=True, help="The peer institution the terms are with.")
@click.option(
    "--side",
    type=click.Choice(["a", "b"]),
    default="a",
    show_default=True,
    help="This chain's side: a (its users pay X and receive Y) or b (its desk sells Y).",
)
@click.option("--asset-x", required=True, help="The asset A's users pay: its asset id (0x + 64 hex digits).")
@click.option("--asset-y", required=True, help="The asset B's desk pays: its asset id.")
@click.option("--price-min", required=True, help="The band's low end: Y per X (a decimal, in base units).")
@click.option("--price-max", required=True, help="The band's high end: Y per X.")
@click.option("--fee-bps", type=click.IntRange(0, 9999), default=0, show_default=True, help="B's fee on Y.")
@click.option("--min-amount", type=click.IntRange(min=1), required=True, help="The least X a swap takes.")
@click.option("--max-amount", type=click.IntRange(min=1), required=True, help="The most X a swap takes.")
@click.option(
    "--open-for",
    type=click.IntRange(min=1),
    default=30 * 86400,
    show_default=True,
    help="Seconds from now during which swaps may start (last_start).",
)
@click.option(
    "--window", type=click.IntRange(min=1), required=True, help="W: seconds from a start to its deadline."
)
def swaps_terms_propose(config_path: Path, peer: str, side: str, **values: Any) -> None:
    """Propose swap terms to a peer: the daemon checks them (W against chain B's L1 priority window plus
    proving and settlement), signs them and sends them; the peer's operator accepts them."""
    config = institution_config.load(config_path)
    peer_config = next((p for p in config.peers if p.name == peer), None)
    if peer_config is None:
        raise click.UsageError(f"{peer} is not a peer in {config_path}")
    our_desk, their_desk = config.chain.contracts.swap_desk, peer_config.swap_desk
    if our_desk is None or their_desk is None:
        raise click.UsageError("swaps need chain.contracts.swap_desk and the peer's swap_desk in the config")
    ours, theirs = (config.chain.chain_id, our_desk), (peer_config.chain_id, their_desk)
    (chain_a, desk_a), (chain_b, desk_b) = (ours, theirs) if side == "a" else (theirs, ours)
    try:
        terms = Terms(
            chain_a=chain_a,
            desk_a=desk_a,
            chain_b=chain_b,
            desk_b=desk_b,
            asset_x=_asset_id(values["asset_x"], "--asset-x"),
            asset_y=_asset_id(values["asset_y"], "--asset-y"),
            price_min=_price_of(values["price_min"], "--price-min"),
            price_max=_price_of(values["price_max"], "--price-max"),
            fee_bps=values["fee_bps"],
            min_amount_x=values["min_amount"],
            max_amount_x=values["max_amount"],
            last_start=int(time.time()) + values["open_for"],
            window=values["window"],
        )
        terms.check()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    stored = _admin_call(config_path, "POST", "/v1/swaps/terms", {"peer": peer, "terms": terms.to_json()})
    console.print(
        f"terms {stored['terms_id']} {stored['status']}: sent to {peer}, whose operator accepts them"
    )


@swaps_terms.command("accept")
@config_option
@click.argument("terms_id", metavar="ID")
def swaps_terms_accept(config_path: Path, terms_id: str) -> None:
    """Accept terms a peer proposed: the daemon signs them, registers them on this chain's desk and tells
    the peer, whose daemon registers them on its own."""
    stored = _admin_call(config_path, "POST", f"/v1/swaps/terms/{terms_id}/accept", None)
    console.print(f"terms {stored['terms_id']} {stored['status']}: registered on this chain's desk shortly")


@swaps.command("price")
@config_option
@click.option("--asset-x", required=True, help="The asset paid to the desk (asset id).")
@click.option("--asset-y", required=True, help="The asset the desk pays (asset id).")
@click.argument("price")
def swaps_price(config_path: Path, asset_x: str, asset_y: str, price: str) -> None:
    """Quote PRICE (Y per X, a decimal, in base units) on this chain's desk for every terms on the pair;
    0 withdraws the quote. A swap happens only at a quote inside its terms' band."""
    body = {
        "asset_x": "0x" + _asset_id(asset_x, "--asset-x").hex(),
        "asset_y": "0x" + _asset_id(asset_y, "--asset-y").hex(),
        "price": str(_price_of(price, "PRICE", allow_zero=True)),
    }
    console.print(f"quoted in {_admin_call(config_path, 'POST', '/v1/swaps/price', body)['tx']}")


@swaps.command("fund")
@config_option
@click.option("--token", required=True, help="The token's address on this chain.")
@click.argument("amount", type=click.IntRange(min=1))
def swaps_fund(config_path: Path, token: str, amount: int) -> None:
    """Add AMOUNT (base units) of the operator's TOKEN to this chain's desk: the inventory swaps pay from."""
    body = {"token": token, "amount": str(amount)}
    console.print(f"funded in {_admin_call(config_path, 'POST', '/v1/swaps/fund', body)['tx']}")


def _asset_id(text: str, option: str) -> bytes:
    raw = bytes.fromhex(text.removeprefix("0x")) if len(text.removeprefix("0x")) == 64 else b""
    if len(raw) != 32:
        raise click.UsageError(f"{option} must be an asset id: 0x + 64 hex digits, not {text!r}")
    return raw


def _price_of(text: str, option: str, *, allow_zero: bool = False) -> int:
    """A decimal price (Y base units per X base unit) as the desk keeps it: times 1e18, exactly."""
    try:
        scaled = Decimal(text) * PRICE_ONE
    except InvalidOperation:
        raise click.UsageError(f"{option} must be a decimal number, not {text!r}") from None
    if scaled != scaled.to_integral_value() or scaled < (0 if allow_zero else 1) or scaled >= 1 << 128:
        raise click.UsageError(f"{option} {text} is not a price the desk can hold (18 decimals, below 2^128)")
    return int(scaled)


def _price(value: int) -> str:
    return f"{Decimal(value) / PRICE_ONE:f}"


def _admin_call(config_path: Path, method: str, path: str, body: Any) -> Any:
    """A request to the running daemon's admin API; its error said as the operator's error."""
    config = institution_config.load(config_path)
    admin = config.admin
    url = f"http://{admin.host}:{admin.port}{path}"
    headers = {"Authorization": f"Bearer {os.environ.get(admin.token_env, '')}"}
    try:
        response = requests.request(method, url, json=body, headers=headers, timeout=120)
    except requests.RequestException as exc:
        raise click.ClickException(f"the daemon is not answering at {url} ({type(exc).__name__})") from None
    if response.status_code >= 400:
        try:
            error = response.json().get("error", response.text)
        except ValueError:
            error = response.text
        raise click.ClickException(f"{method} {path}: {response.status_code}: {error}")
    return response.json()


def _value(m: StoredMessage) -> str:
    amount = m.message.amount
    return "-" if amount == 0 else f"{amount} 0x{m.message.asset_id.hex()[:8]}…"


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_fields(title: str, fields: dict[str, Any]) -> None:
    table = _table(title, "field", "value")
    table.show_header = False
    for key, value in fields.items():
        table.add_row(key, _field(key, value))
    console.print(table)


def _print_history(history: Sequence[Transition]) -> None:
    """Each status change: when, from what to what, and why."""
    changes = _table("history", "at", "change", "reason")
    for t in history:
        changes.add_row(store_ops.format_time(t.at), f"{t.from_status or '-'} -> {t.to_status}", t.reason)
    console.print(changes)


def _field(key: str, value: Any) -> str:
    """A value of a row's `to_json()` as an operator reads it."""
    if value is None:
        return "-"
    if value == "0x":
        return "(empty)"
    if key.endswith("_at") and isinstance(value, float):
        return store_ops.format_time(value)
    if isinstance(value, list):
        return "\n".join(map(str, value))
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


@cli.command("run")
@config_option
@hub_cli.log_level_option
def run_daemon(config_path: Path, log_level: str) -> None:
    """Run this institution's daemon: watch, batch, prove, settle, push, receive, execute."""
    hub_cli.setup_logging(log_level)
    daemon.run(config_path)


@cli.command("demo")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".xrelay/demo"),
    show_default=True,
    help="Where the demo's devnet keeps its state and logs.",
)
@click.option(
    "--capacity",
    "capacities",
    type=int,
    multiple=True,
    default=devnet_ops.DEFAULT_CAPACITIES,
    show_default=True,
    help="The batch capacities both chains prove with (repeat for several).",
)
def demo(state_dir: Path, capacities: tuple[int, ...]) -> None:
    """The whole system on a fresh devnet: messages, a call with value and a tokenized asset between
    two institutions through their daemons, then the results. DEVNET ONLY."""
    wide = Console(highlight=False, width=max(console.width, 110))  # the tables need the room
    Demo(state_dir, wide).run(capacities=capacities)


cli.add_command(hub_cli.hub)


def main() -> None:
    cli(prog_name="xrelay")
