"""The devnet: one L1 and N institution chains as local anvil nodes, with the contracts deployed.

`up` starts the nodes in sessions of their own (they outlive the command), deploys, and writes
into the state directory a manifest (chain ids, RPC URLs, contract addresses, pids, funded dev
accounts) and one institution config per chain. `down` stops exactly the processes the manifest
names, after checking that each pid is still the anvil node it started. Everything here uses
anvil's well-known development keys: it is for development and tests only.
"""

from __future__ import annotations

import json
import os
import signal
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import tomli_w
from web3 import Web3

from bridge_contracts import anvil, deploy
from bridge_contracts.anvil import AnvilNode
from bridge_contracts.chain import Chain

L1_CHAIN_ID = 900
FIRST_L2_CHAIN_ID = 901
MAX_L2 = 8  # each institution's operator is one of anvil's 10 dev accounts (0 deploys, 9 is the demo user)
DEPLOYER_ACCOUNT = 0
USER_ACCOUNT = 9
DEV_TOKEN_SUPPLY = 1_000_000 * 10**18
MANIFEST = "manifest.json"
DEFAULT_STATE_DIR = Path(".xrelay/devnet")


class DevnetError(RuntimeError):
    """The devnet cannot do what was asked; the message says why and what to do."""


def state_dir_default() -> Path:
    return Path(os.environ.get("XRELAY_DEVNET_DIR", DEFAULT_STATE_DIR))


def institution_name(index: int) -> str:
    """bank-a, bank-b, ... for the institution chains in order."""
    return f"bank-{string.ascii_lowercase[index]}"


@dataclass(frozen=True)
class NodeStatus:
    name: str
    chain_id: int
    rpc_url: str
    pid: int
    running: bool
    block: int | None


def read_manifest(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DevnetError(f"{path} is not valid JSON ({exc}): remove it by hand if no devnet runs") from exc
    return manifest


def _write_manifest(state_dir: Path, manifest: dict[str, Any]) -> None:
    path = state_dir / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a manifest


def nodes(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a manifest: the L1 first, then the institution chains."""
    return [manifest["l1"], *manifest["chains"]]


def _our_process(node: dict[str, Any]) -> psutil.Process | None:
    """The live anvil process this manifest entry started, or None (gone, or the pid was reused)."""
    try:
        process = psutil.Process(node["pid"])
        cmdline = process.cmdline()
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    is_anvil = bool(cmdline) and Path(cmdline[0]).name == "anvil"
    port = cmdline[cmdline.index("--port") + 1] if "--port" in cmdline[:-1] else None
    return process if is_anvil and port == str(node["port"]) else None


def _running(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [node for node in nodes(manifest) if _our_process(node) is not None]


def up(state_dir: Path, *, l2: int = 2, block_time: float | None = None) -> dict[str, Any]:
    """Start the devnet, deploy, write manifest and configs; return the manifest."""
    if not 1 <= l2 <= MAX_L2:
        raise DevnetError(f"--l2 must be between 1 and {MAX_L2}, not {l2}")
    if block_time is not None and block_time <= 0:
        raise DevnetError(f"--block-time must be positive, not {block_time}")
    state_dir = state_dir.resolve()
    previous = read_manifest(state_dir)
    if previous is not None:
        alive = _running(previous)
        if alive:
            pids = ", ".join(str(n["pid"]) for n in alive)
            raise DevnetError(
                f"a devnet is already running from {state_dir} (pids {pids}): "
                f"run `xrelay devnet down --state-dir {state_dir}` first"
            )
    state_dir.mkdir(parents=True, exist_ok=True)
    logs = state_dir / "logs"

    started: list[AnvilNode] = []
    try:
        specs = [("l1", L1_CHAIN_ID)] + [(institution_name(i), FIRST_L2_CHAIN_ID + i) for i in range(l2)]
        for name, chain_id in specs:
            started.append(anvil.start(chain_id, logs / f"{name}.log", block_time=block_time, detach=True))
        manifest = _new_manifest(state_dir, specs, started, block_time)
        _write_manifest(state_dir, manifest)  # pids on disk before anything else can fail
        chain_ids = [chain_id for _, chain_id in specs]
        for entry, node in zip(manifest["chains"], started[1:], strict=True):
            destinations = [c for c in chain_ids if c != entry["chain_id"]]
            entry["contracts"] = _deploy_institution(node, entry, destinations)
        for entry in manifest["chains"]:
            entry["config"] = str(_write_institution_config(state_dir, manifest, entry))
        manifest["status"] = "up"
        _write_manifest(state_dir, manifest)
        return manifest
    except BaseException:
        for node in started:
            node.stop()
        (state_dir / MANIFEST).unlink(missing_ok=True)
        raise


def _new_manifest(
    state_dir: Path, specs: list[tuple[str, int]], nodes: list[AnvilNode], block_time: float | None
) -> dict[str, Any]:
    entries = [
        {
            "name": name,
            "chain_id": chain_id,
            "rpc_url": node.rpc_url,
            "port": node.port,
            "pid": node.pid,
            "log": str(node.log_path),
            "contracts": {},
        }
        for (name, chain_id), node in zip(specs, nodes, strict=True)
    ]
    roles = {DEPLOYER_ACCOUNT: "deployer", USER_ACCOUNT: "user"}
    for index, entry in enumerate(entries[1:], start=1):  # institution k is operated by dev account k
        entry["operator_account"] = index
        entry["operator"] = anvil.dev_account(index).address
        roles[index] = f"{entry['name']} operator"
    accounts = []
    for index in range(anvil.DEV_ACCOUNT_COUNT):
        account = anvil.dev_account(index)
        accounts.append(
            {
                "index": index,
                "address": account.address,
                "private_key": "0x" + account.key.hex(),
                "role": roles.get(index, ""),
            }
        )
    return {
        "status": "starting",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "state_dir": str(state_dir),
        "block_time": block_time,
        "l1": entries[0],
        "chains": entries[1:],
        "accounts_note": "anvil's well-known development keys: DEVNET ONLY, they are public",
        "accounts": accounts,
    }


def _deploy_institution(node: AnvilNode, entry: dict[str, Any], destinations: list[int]) -> dict[str, str]:
    """An institution chain's contracts: the asset layer with a tokenized deposit the institution
    issues, and the Outbox (owned by the operator) open to L1 and every other institution. The router
    is connected once the Inbox exists, which comes with the L1 Hub."""
    deployer = Chain(node.rpc_url, anvil.dev_account(DEPLOYER_ACCOUNT))
    router = deploy.deploy_asset_router(deployer)
    letter = entry["name"].removeprefix("bank-").upper()
    token = deploy.deploy_dev_token(deployer, f"Bank {letter} Deposit Token", f"DT{letter}")
    for holder in (entry["operator"], anvil.dev_account(USER_ACCOUNT).address):
        deployer.send(token.functions.mint(holder, DEV_TOKEN_SUPPLY))
    deployer.send(router.functions.registerToken(token.address))
    outbox = deploy.deploy_outbox(deployer, router.address, owner=entry["operator"])
    operator = deployer.with_signer(anvil.dev_account(entry["operator_account"]))
    for chain_id in destinations:
        operator.send(outbox.functions.setDestination(chain_id, True))
    return {"asset_router": router.address, "outbox": outbox.address, "deposit_token": token.address}


def _write_institution_config(state_dir: Path, manifest: dict[str, Any], entry: dict[str, Any]) -> Path:
    name = entry["name"]
    env_prefix = name.upper().replace("-", "_")
    peers = [
        {
            "name": other["name"],
            "chain_id": other["chain_id"],
            "allowed_assets": ["*"],
            "allowed_targets": ["*"],
        }
        for other in manifest["chains"]
        if other is not entry
    ]
    config: dict[str, Any] = {
        "institution": name,
        "chain": {
            "chain_id": entry["chain_id"],
            "rpc_urls": [entry["rpc_url"]],
            "confirmations": 0,
            "contracts": {name: entry["contracts"][name] for name in ("asset_router", "outbox")},
            # anvil's well-known dev account: DEVNET ONLY, its key is public
            "signer": {"devnet_account": entry["operator_account"]},
        },
        "l1": {
            "chain_id": manifest["l1"]["chain_id"],
            "rpc_urls": [manifest["l1"]["rpc_url"]],
            "confirmations": 0,
        },
        "peers": peers,
        "batch": {"capacity": 16, "max_wait_seconds": 2.0},
        "store": {"path": f"{name}.sqlite"},
        "admin": {
            "listen": f"127.0.0.1:{anvil.free_port()}",
            "token_env": f"XRELAY_{env_prefix}_ADMIN_TOKEN",
        },
    }
    path = state_dir / f"{name}.toml"
    header = (
        f"# {name}: xrelay institution config written by `xrelay devnet up` on {manifest['created']}.\n"
        "# DEVNET ONLY: the signer is one of anvil's well-known development accounts, whose key is public.\n"
        "# No [bus] url: the daemon uses the embedded broker.\n\n"
    )
    path.write_text(header + tomli_w.dumps(config))
    return path


def status(state_dir: Path) -> tuple[dict[str, Any], list[NodeStatus]] | None:
    """The manifest and the live state of each node, or None when no devnet was started here."""
    manifest = read_manifest(state_dir.resolve())
    if manifest is None:
        return None
    rows = []
    for node in nodes(manifest):
        running = _our_process(node) is not None
        block = None
        if running:
            try:
                w3 = Web3(Web3.HTTPProvider(node["rpc_url"], request_kwargs={"timeout": 2}))
                block = w3.eth.block_number
            except Exception:  # running but not answering: shown as no block
                pass
        rows.append(NodeStatus(node["name"], node["chain_id"], node["rpc_url"], node["pid"], running, block))
    return manifest, rows


def down(state_dir: Path, *, timeout: float = 10.0) -> list[int]:
    """Stop every node of the devnet by pid; return the pids stopped. The logs stay."""
    state_dir = state_dir.resolve()
    manifest = read_manifest(state_dir)
    if manifest is None:
        raise DevnetError(f"no devnet was started from {state_dir} (no {MANIFEST} there)")
    processes = [p for p in (_our_process(node) for node in nodes(manifest)) if p is not None]
    for process in processes:
        process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    (state_dir / MANIFEST).unlink()
    for entry in manifest["chains"]:
        if "config" in entry:
            Path(entry["config"]).unlink(missing_ok=True)
    return [p.pid for p in processes]
