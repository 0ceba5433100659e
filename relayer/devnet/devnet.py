"""The devnet: one L1 and N institution chains as local anvil nodes, with the contracts deployed.

`up` makes a development proving key of the batch circuit for each capacity (keys/batch-<capacity>.zkey
and its verifying key keys/batch-<capacity>.vk.json; made once and then copied from a cache, see
`dev_key_cache`), starts the nodes in sessions of their own (they outlive the command), deploys (on L1
the Hub and each key's verifier, every institution chain registered with it and with those verifiers;
on each institution chain the AssetRouter, a deposit token, the Outbox, the Inbox and a CallRecorder),
and writes into the state directory a manifest (chain ids, RPC URLs, contract addresses, pids, funded
dev accounts) and one institution config per chain. `down` stops exactly the processes the manifest
names, after checking that each pid is still the anvil node it started. Everything here uses anvil's
well-known development keys and development proving keys: it is for development and tests only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import string
import tempfile
from collections.abc import Sequence
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
from bridge_contracts.verifier_gen import deploy_verifier
from hub.envelope import HUB_SENDER, devnet_bus_key, public_key_of
from proofs import merkle
from proofs.circuits.batch import BatchCircuit
from proofs.formats import r1cs as r1cs_format
from proofs.formats import snarkjs_json, zkey
from proofs.groth16 import keys as keys_module
from proofs.groth16 import setup as setup_module
from proofs.groth16.keys import VerifyingKey
from proofs.groth16.setup import setup
from relayer.devnet.mosquitto import (
    Mosquitto,
    MosquittoError,
    bus_env_names,
    dynsec_plugin,
    embedded_bus,
    mosquitto_binary,
)

L1_CHAIN_ID = 900
FIRST_L2_CHAIN_ID = 901
MAX_L2 = 8  # each institution's operator is one of anvil's 10 dev accounts (0 deploys, 9 is the demo user)
DEPLOYER_ACCOUNT = 0
USER_ACCOUNT = 9
DEV_TOKEN_SUPPLY = 1_000_000 * 10**18
DESK_INVENTORY = 100_000 * 10**18
"""The deposit tokens each institution's SwapDesk holds for swaps, from its operator's supply."""
MANIFEST = "manifest.json"
KEYS_DIR = "keys"
DEFAULT_CAPACITIES = (8, 64)
HEARTBEAT_SECONDS = 1.0  # without --block-time, the devnet still mines a block at least this often
DEFAULT_STATE_DIR = Path(".xrelay/devnet")
BROKERS = ("embedded", "mosquitto")
BUS_DIR = "bus"  # the broker's files in the state directory: logins, and Mosquitto's CA, config and log


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


PRIORITY_WINDOW_SECONDS = 600
"""How long a devnet chain has to process a message forced to it (production: days)."""
FORCE_AFTER_SECONDS = 300.0
"""How long a devnet daemon waits for a peer's receipt before it forces the message through L1."""


def up(
    state_dir: Path,
    *,
    l2: int = 2,
    block_time: float | None = None,
    capacities: Sequence[int] = DEFAULT_CAPACITIES,
    broker: str = "embedded",
) -> dict[str, Any]:
    """Start the devnet, deploy, write keys, manifest and configs; return the manifest.

    broker: "embedded" (the hub service embeds it: plain MQTT on loopback) or "mosquitto" (started
    here, TLS with a devnet CA); both authenticate every client with a login of its own, bound to its
    client id, and apply the per-institution topic ACLs."""
    if not 1 <= l2 <= MAX_L2:
        raise DevnetError(f"--l2 must be between 1 and {MAX_L2}, not {l2}")
    if block_time is not None and block_time <= 0:
        raise DevnetError(f"--block-time must be positive, not {block_time}")
    if not capacities:
        raise DevnetError("--capacity: name at least one batch capacity")
    for capacity in capacities:
        if not merkle.MIN_BATCH_CAPACITY <= capacity <= merkle.MAX_BATCH_CAPACITY or capacity & (
            capacity - 1
        ):
            raise DevnetError(
                f"--capacity must be a power of two from {merkle.MIN_BATCH_CAPACITY} to "
                f"{merkle.MAX_BATCH_CAPACITY}, not {capacity}"
            )
    capacities = sorted(set(capacities))
    _check_broker(broker)
    state_dir = state_dir.resolve()
    previous = read_manifest(state_dir)
    if previous is not None:
        alive = [n["pid"] for n in _running(previous)]
        old_broker = _mosquitto(previous)
        if old_broker is not None and old_broker.running:
            alive.append(old_broker.pid)
        if alive:
            pids = ", ".join(str(pid) for pid in alive)
            raise DevnetError(
                f"a devnet is already running from {state_dir} (pids {pids}): "
                f"run `xrelay devnet down --state-dir {state_dir}` first"
            )
    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in state_dir.glob("*.sqlite*"):  # the stores of an earlier devnet's chains, gone with them
        stale.unlink()
    logs = state_dir / "logs"

    started: list[AnvilNode] = []
    mosquitto: Mosquitto | None = None
    try:
        specs = [("l1", L1_CHAIN_ID)] + [(institution_name(i), FIRST_L2_CHAIN_ID + i) for i in range(l2)]
        for name, chain_id in specs:
            started.append(
                anvil.start(
                    chain_id,
                    logs / f"{name}.log",
                    # Blocks at once for each transaction, and at least every second (or every
                    # block_time): so a block is followed by the next one that makes it final soon.
                    block_time=block_time or HEARTBEAT_SECONDS,
                    mixed_mining=block_time is None,
                    slots_in_an_epoch=1,  # final (the node's "safe" block): one block deep
                    detach=True,
                )
            )
        manifest = _new_manifest(state_dir, specs, started, block_time)
        manifest["batch"] = {"capacities": capacities, "keys_dir": str(state_dir / KEYS_DIR)}
        mosquitto = _start_bus(state_dir, manifest, broker)
        _write_manifest(state_dir, manifest)  # pids on disk before anything else can fail
        vks = {c: write_batch_key(state_dir / KEYS_DIR, c) for c in capacities}
        chain_ids = [chain_id for _, chain_id in specs]
        for entry, node in zip(manifest["chains"], started[1:], strict=True):
            destinations = [c for c in chain_ids if c != entry["chain_id"]]
            entry["contracts"] = _deploy_institution(node, entry, destinations)
        manifest["l1"]["contracts"] = _deploy_l1(started[0], manifest["chains"], vks)
        manifest["hub_service"] = _write_hub_config(state_dir, manifest)
        for entry in manifest["chains"]:
            entry["config"] = str(_write_institution_config(state_dir, manifest, entry, capacities))
        manifest["status"] = "up"
        _write_manifest(state_dir, manifest)
        return manifest
    except BaseException:
        for node in started:
            node.stop()
        if mosquitto is not None:
            mosquitto.stop()
        (state_dir / MANIFEST).unlink(missing_ok=True)
        raise


def _check_broker(broker: str) -> None:
    if broker not in BROKERS:
        raise DevnetError(f"--broker must be one of {', '.join(BROKERS)}, not {broker}")
    if broker == "mosquitto":
        try:  # before anything starts: say at once what to install
            mosquitto_binary()
            dynsec_plugin()
        except MosquittoError as exc:
            raise DevnetError(str(exc)) from None


def _start_bus(state_dir: Path, manifest: dict[str, Any], broker: str) -> Mosquitto | None:
    """The devnet's broker: logins for every institution (each may write to all the others), the hub
    service, `admin` and `outsider` (tests only); Mosquitto started now, or the embedded broker's
    address for the hub service. Records it as manifest["bus"]; the Mosquitto started, if any."""
    institutions = {
        entry["name"]: [other["name"] for other in manifest["chains"] if other is not entry]
        for entry in manifest["chains"]
    }
    if broker == "embedded":
        listen = f"127.0.0.1:{anvil.free_port()}"
        manifest["bus"] = embedded_bus(state_dir / BUS_DIR, institutions, listen)
        return None
    mosquitto = Mosquitto(state_dir / BUS_DIR, anvil.free_port())
    try:
        mosquitto.write(institutions)
        mosquitto.start()
    except MosquittoError as exc:
        raise DevnetError(str(exc)) from None
    manifest["bus"] = mosquitto.manifest()
    return mosquitto


def _mosquitto(manifest: dict[str, Any]) -> Mosquitto | None:
    """The Mosquitto a manifest records, or None (the embedded broker, or an older manifest)."""
    bus = manifest.get("bus")
    return Mosquitto.from_manifest(bus) if bus and bus.get("broker") == "mosquitto" else None


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


def dev_key_cache() -> Path:
    """Where development keys are kept between devnets: $XRELAY_KEY_CACHE, else
    ~/.cache/xrelay/dev-keys (or under $XDG_CACHE_HOME). A key is filed under a hash of its circuit
    (the .r1cs bytes), its seed and the source of the code that makes and writes keys, so a changed
    circuit or setup never picks up an old key; and under a hash of its own bytes, checked on every
    use, so a damaged file is made again rather than used."""
    chosen = os.environ.get("XRELAY_KEY_CACHE")
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(chosen) if chosen else user_cache / "xrelay" / "dev-keys"


_KEY_CODE = (setup_module.__file__, keys_module.__file__, zkey.__file__)


def write_batch_key(keys_dir: Path, capacity: int) -> VerifyingKey:
    """A DEVELOPMENT proving key of the batch circuit of `capacity` (its secrets come from a public
    seed: anyone can forge proofs for it), shared by every institution chain: keys_dir/batch-<capacity>
    .zkey and its verifying key keys_dir/batch-<capacity>.vk.json (snarkjs's formats). The same
    circuit and seed always give the same key, so it is made once and copied from the cache after."""
    r1cs, seed = BatchCircuit(capacity).r1cs, f"xrelay devnet batch {capacity}".encode()
    made_by = hashlib.sha256(r1cs_format.to_bytes(r1cs) + b"\0" + seed)
    for source in _KEY_CODE:
        made_by.update(Path(source).read_bytes())
    prefix = f"batch-{capacity}-{made_by.hexdigest()[:24]}-"
    keys_dir.mkdir(parents=True, exist_ok=True)
    target = keys_dir / f"batch-{capacity}.zkey"
    cache = dev_key_cache()
    pk = None
    for cached in cache.glob(f"{prefix}*.zkey"):
        data = cached.read_bytes()
        if cached.stem.removeprefix(prefix) == hashlib.sha256(data).hexdigest()[:24]:
            target.write_bytes(data)
            pk = zkey.read(target)
            break
        cached.unlink(missing_ok=True)  # damaged: made again below
    if pk is None:
        pk = setup(r1cs, seed=seed, development=True)
        zkey.write(pk, target)
        with contextlib.suppress(OSError):  # no cache: the key is made again next time
            cache.mkdir(parents=True, exist_ok=True)
            data = target.read_bytes()
            fd, partial = tempfile.mkstemp(dir=cache, suffix=".part")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            # whole or not at all, also with two devnets starting at once
            Path(partial).replace(cache / f"{prefix}{hashlib.sha256(data).hexdigest()[:24]}.zkey")
    vk_json = json.dumps(snarkjs_json.verifying_key_to_json(pk.vk), indent=2) + "\n"
    (keys_dir / f"batch-{capacity}.vk.json").write_text(vk_json)
    return pk.vk


def _deploy_l1(node: AnvilNode, chains: list[dict[str, Any]], vks: dict[int, VerifyingKey]) -> dict[str, str]:
    """The L1 Hub (owned by the deployer, standing for governance) and the verifier of each batch
    key; every institution chain registered with its operator, those verifiers and its deposit token."""
    deployer = Chain(node.rpc_url, anvil.dev_account(DEPLOYER_ACCOUNT))
    hub = deploy.deploy_hub(deployer, deployer.signer.address)
    verifiers: dict[int, str] = {c: deploy_verifier(deployer, vk).address for c, vk in vks.items()}
    for entry in chains:
        chain_id = entry["chain_id"]
        deployer.send(hub.functions.registerChain(chain_id, entry["operator"], True))
        bus_key = public_key_of(devnet_bus_key(entry["operator_account"]))
        deployer.send(hub.functions.setBusKey(chain_id, bus_key))
        deployer.send(hub.functions.setPriorityWindow(chain_id, PRIORITY_WINDOW_SECONDS))
        for capacity, verifier in verifiers.items():
            deployer.send(hub.functions.setVerifier(chain_id, capacity, verifier))
        deployer.send(hub.functions.registerAsset(chain_id, entry["contracts"]["deposit_token"]))
    return {"hub": hub.address} | {f"batch_verifier_{c}": v for c, v in verifiers.items()}


def _write_hub_config(state_dir: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """hub.toml for the devnet's hub service, which also embeds the broker every daemon uses unless
    the devnet runs Mosquitto."""
    api = f"127.0.0.1:{anvil.free_port()}"
    bus = manifest["bus"]
    service: dict[str, str] = {}
    if bus["broker"] == "mosquitto":
        service["bus_username_env"], service["bus_password_env"] = bus_env_names(HUB_SENDER)
        bus_config = {
            "url": bus["url"],
            "ca_cert": os.path.relpath(bus["ca_cert"], state_dir),
            "username_env": service["bus_username_env"],
            "password_env": service["bus_password_env"],
        }
    else:  # the service logs in to its own broker as the users file's hub
        bus_config = {"listen": bus["listen"], "users": os.path.relpath(bus["credentials"], state_dir)}
    config = {
        "l1": {
            "chain_id": manifest["l1"]["chain_id"],
            "rpc_urls": [manifest["l1"]["rpc_url"]],
            "confirmations": 0,
            "hub": manifest["l1"]["contracts"]["hub"],
            "poll_interval": 0.1,
        },
        "api": {"listen": api},
        "store": {"path": "hub.sqlite"},
        "bus": bus_config,
    }
    path = state_dir / "hub.toml"
    header = f"# The devnet's hub service, written by `xrelay devnet up` on {manifest['created']}.\n\n"
    path.write_text(header + tomli_w.dumps(config))
    return {"config": str(path), "api": f"http://{api}", "bus_url": bus["url"], **service}


def _deploy_institution(node: AnvilNode, entry: dict[str, Any], destinations: list[int]) -> dict[str, str]:
    """An institution chain's contracts: the asset layer with a tokenized deposit the institution
    issues, the Outbox (owned by the operator) open to L1 and every other institution, the Inbox
    (owned by the operator, who imports L1's roots) and a CallRecorder to send messages to."""
    deployer = Chain(node.rpc_url, anvil.dev_account(DEPLOYER_ACCOUNT))
    poseidon = deploy.deploy_poseidon(deployer, deploy.PROTOCOL_POSEIDON)
    router = deploy.deploy_asset_router(deployer)
    letter = entry["name"].removeprefix("bank-").upper()
    token = deploy.deploy_dev_token(deployer, f"Bank {letter} Deposit Token", f"DT{letter}")
    for holder in (entry["operator"], anvil.dev_account(USER_ACCOUNT).address):
        deployer.send(token.functions.mint(holder, DEV_TOKEN_SUPPLY))
    deployer.send(router.functions.registerToken(token.address))
    outbox = deploy.deploy_outbox(deployer, router.address, owner=entry["operator"], poseidon=poseidon)
    inbox = deploy.deploy_inbox(deployer, router.address, entry["operator"], L1_CHAIN_ID, poseidon)
    deployer.send(router.functions.connect(outbox.address, inbox.address))
    recorder = deployer.deploy("CallRecorder")
    gold = deploy.deploy_dev_token(deployer, f"Bank {letter} Tokenized Gold", f"GLD{letter}")
    deployer.send(gold.functions.mint(anvil.dev_account(USER_ACCOUNT).address, DEV_TOKEN_SUPPLY))
    deployer.send(router.functions.registerToken(gold.address))
    desk = deployer.deploy("SwapDesk", outbox.address, inbox.address, entry["operator"])
    operator = deployer.with_signer(anvil.dev_account(entry["operator_account"]))
    for chain_id in destinations:
        operator.send(outbox.functions.setDestination(chain_id, True))
    # The desk's inventory: the institution's deposit token, which its users receive in swaps.
    operator.send(token.functions.approve(desk.address, DESK_INVENTORY))
    operator.send(desk.functions.fund(token.address, DESK_INVENTORY))
    return {
        "asset_router": router.address,
        "outbox": outbox.address,
        "inbox": inbox.address,
        "deposit_token": token.address,
        "call_recorder": recorder.address,
        "gold_token": gold.address,
        "swap_desk": desk.address,
    }


def _write_institution_config(
    state_dir: Path, manifest: dict[str, Any], entry: dict[str, Any], capacities: Sequence[int]
) -> Path:
    name = entry["name"]
    entry["admin"] = f"127.0.0.1:{anvil.free_port()}"
    entry["admin_token_env"] = f"XRELAY_{name.upper().replace('-', '_')}_ADMIN_TOKEN"
    peers = [
        {
            "name": other["name"],
            "chain_id": other["chain_id"],
            "allowed_assets": ["*"],
            "allowed_targets": ["*"],
            "force_after_seconds": FORCE_AFTER_SECONDS,
            "swap_desk": other["contracts"]["swap_desk"],
        }
        for other in manifest["chains"]
        if other is not entry
    ]
    config: dict[str, Any] = {
        "institution": name,
        "chain": {
            "chain_id": entry["chain_id"],
            "rpc_urls": [entry["rpc_url"]],
            "finality": "safe",  # anvil's safe block with one slot an epoch: one block deep
            "poll_seconds": 0.25,  # the devnet's chains mine at once or every second
            "contracts": {
                name: entry["contracts"][name] for name in ("asset_router", "outbox", "inbox", "swap_desk")
            },
            # anvil's well-known dev account: DEVNET ONLY, its key is public
            "signer": {"devnet_account": entry["operator_account"]},
        },
        "l1": {
            "chain_id": manifest["l1"]["chain_id"],
            "rpc_urls": [manifest["l1"]["rpc_url"]],
            "finality": "safe",
            "hub": manifest["l1"]["contracts"]["hub"],
            "hub_api": manifest["hub_service"]["api"],
        },
        "peers": peers,
        "batch": {"capacities": list(capacities), "max_wait_seconds": 1.0, "keys_dir": KEYS_DIR},
        "store": {"path": f"{name}.sqlite"},
        "bus": _institution_bus(state_dir, manifest, entry),
        "admin": {"listen": entry["admin"], "token_env": entry["admin_token_env"]},
    }
    # DEVNET ONLY: the bus key is derived from a public label; the deploy registered it on the L1 Hub.
    config["bus"]["key"] = {"devnet_key": entry["operator_account"]}
    path = state_dir / f"{name}.toml"
    header = (
        f"# {name}: xrelay institution config written by `xrelay devnet up` on {manifest['created']}.\n"
        "# DEVNET ONLY: the signer is one of anvil's well-known development accounts, whose key is public.\n"
        f"# The bus is {_BUS_TEXT[manifest['bus']['broker']]}; the login is read from\n"
        f"# {entry['bus_username_env']} and {entry['bus_password_env']} (their values: "
        f"{os.path.relpath(manifest['bus']['credentials'], state_dir)}, DEVNET ONLY).\n\n"
    )
    path.write_text(header + tomli_w.dumps(config))
    return path


_BUS_TEXT = {
    "embedded": "the broker the devnet's hub service embeds (plain MQTT on loopback)",
    "mosquitto": "the devnet's Mosquitto (TLS, its devnet CA in ca_cert)",
}


def _institution_bus(state_dir: Path, manifest: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """An institution config's [bus]: the devnet's broker, and where its login is read from."""
    bus = manifest["bus"]
    entry["bus_username_env"], entry["bus_password_env"] = bus_env_names(entry["name"])
    config = {
        "url": bus["url"],
        "username_env": entry["bus_username_env"],
        "password_env": entry["bus_password_env"],
    }
    if "ca_cert" in bus:
        config["ca_cert"] = os.path.relpath(bus["ca_cert"], state_dir)
    return config


def status(state_dir: Path) -> tuple[dict[str, Any], list[NodeStatus]] | None:
    """The manifest and the live state of each node, or None when no devnet was started here. A
    Mosquitto broker's state is set in the returned manifest's bus entry ("running")."""
    manifest = read_manifest(state_dir.resolve())
    if manifest is None:
        return None
    mosquitto = _mosquitto(manifest)
    if mosquitto is not None:
        manifest["bus"]["running"] = mosquitto.running
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
    """Stop every node of the devnet, and its Mosquitto, by pid; return the pids stopped. The logs
    stay; the configs and the broker logins go."""
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
    stopped = [p.pid for p in processes]
    mosquitto = _mosquitto(manifest)
    if mosquitto is not None and (pid := mosquitto.stop(timeout)) is not None:
        stopped.append(pid)
    (state_dir / MANIFEST).unlink()
    if manifest.get("bus", {}).get("credentials"):
        Path(manifest["bus"]["credentials"]).unlink(missing_ok=True)
    for entry in manifest["chains"]:
        if "config" in entry:
            Path(entry["config"]).unlink(missing_ok=True)
    if "hub_service" in manifest:
        Path(manifest["hub_service"]["config"]).unlink(missing_ok=True)
    return stopped
