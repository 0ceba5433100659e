"""`xrelay devnet up|status|down` through the real command: nodes, deployment, manifest, configs,
and that down stops exactly the processes up started."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import tomli_w
from web3 import Web3

from bridge_contracts import artifacts
from bridge_contracts.views import HubChain, hub_chain
from proofs.formats import snarkjs_json
from relayer import config
from relayer.devnet.devnet import DESK_INVENTORY, nodes, write_batch_key

XRELAY = [sys.executable, "-m", "relayer"]


def xrelay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*XRELAY, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def manifest_of(state_dir: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((state_dir / "manifest.json").read_text())
    return manifest


def node_pids(manifest: dict[str, Any]) -> list[int]:
    return [node["pid"] for node in nodes(manifest)]


def write_stale_manifest(state_dir: Path, pid: int) -> None:
    """A manifest as a devnet leaves it, whose only node's pid is now `pid`."""
    entry = {"name": "l1", "chain_id": 900, "rpc_url": "http://127.0.0.1:1", "port": 1, "pid": pid}
    (state_dir / "manifest.json").write_text(json.dumps({"l1": entry, "chains": []}))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Path]:
    """A devnet with two institution chains, brought down at the end whatever the test did."""
    state_dir = tmp_path / "devnet"
    result = xrelay("devnet", "up", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    pids = node_pids(manifest_of(state_dir))
    try:
        yield state_dir
    finally:
        if (state_dir / "manifest.json").exists():
            xrelay("devnet", "down", "--state-dir", str(state_dir))
        for pid in pids:  # a failing test must not leave nodes behind either
            if not gone(pid):
                psutil.Process(pid).kill()


def test_up_starts_chains_deploys_and_writes_configs(devnet: Path) -> None:
    manifest = manifest_of(devnet)
    assert manifest["status"] == "up"
    all_nodes = nodes(manifest)
    assert [n["name"] for n in all_nodes] == ["l1", "bank-a", "bank-b"]
    assert len({n["chain_id"] for n in all_nodes}) == 3
    assert len({n["rpc_url"] for n in all_nodes}) == 3
    for node in all_nodes:
        w3 = Web3(Web3.HTTPProvider(node["rpc_url"]))
        assert w3.eth.chain_id == node["chain_id"]
        assert Path(node["log"]).is_file()
        assert Path(psutil.Process(node["pid"]).cmdline()[0]).name == "anvil"
        for address in node["contracts"].values():
            assert len(w3.eth.get_code(address)) > 0
    l1 = Web3(Web3.HTTPProvider(manifest["l1"]["rpc_url"]))
    hub = l1.eth.contract(address=manifest["l1"]["contracts"]["hub"], abi=artifacts.load("Hub").abi)
    contracts = manifest["l1"]["contracts"]
    keys = devnet / "keys"
    assert manifest["batch"] == {"capacities": [8, 64], "keys_dir": str(keys)}
    for capacity in (8, 64):
        assert (keys / f"batch-{capacity}.zkey").stat().st_size > 0
        vk = snarkjs_json.verifying_key_from_json(
            json.loads((keys / f"batch-{capacity}.vk.json").read_text()), "vk"
        )
        assert vk.development and vk.n_public == 22
    for chain in manifest["chains"]:
        assert set(chain["contracts"]) == {
            "asset_router",
            "outbox",
            "inbox",
            "deposit_token",
            "call_recorder",
            "gold_token",
            "swap_desk",
        }
        assert hub_chain(hub, chain["chain_id"]) == HubChain(True, True, chain["operator"], 0, outbox_hash=0)
        for capacity in (8, 64):
            assert (
                hub.functions.verifiers(chain["chain_id"], capacity).call()
                == contracts[f"batch_verifier_{capacity}"]
            )
        assert hub.functions.verifiers(chain["chain_id"], 16).call() == "0x" + "00" * 20
        w3 = Web3(Web3.HTTPProvider(chain["rpc_url"]))
        router = w3.eth.contract(
            address=chain["contracts"]["asset_router"], abi=artifacts.load("AssetRouter").abi
        )
        assert router.functions.inbox().call() == chain["contracts"]["inbox"]
        assert router.functions.outbox().call() == chain["contracts"]["outbox"]
        inbox = w3.eth.contract(address=chain["contracts"]["inbox"], abi=artifacts.load("Inbox").abi)
        assert inbox.functions.owner().call() == chain["operator"]
        assert inbox.functions.l1ChainId().call() == manifest["l1"]["chain_id"]
        desk = w3.eth.contract(address=chain["contracts"]["swap_desk"], abi=artifacts.load("SwapDesk").abi)
        assert desk.functions.owner().call() == chain["operator"]
        assert desk.functions.held(chain["contracts"]["deposit_token"]).call() == DESK_INVENTORY
        loaded = config.load(chain["config"])
        assert loaded.institution == chain["name"]
        assert loaded.chain.chain_id == chain["chain_id"]
        assert loaded.chain.rpc_urls == (chain["rpc_url"],)
        assert loaded.chain.contracts.asset_router == chain["contracts"]["asset_router"]
        assert loaded.chain.contracts.inbox == chain["contracts"]["inbox"]
        assert loaded.l1.hub == manifest["l1"]["contracts"]["hub"]
        assert (loaded.batch.capacities, loaded.batch.keys_dir) == ((8, 64), keys)
        assert loaded.chain.signer.resolve().address == chain["operator"]
        assert [p.chain_id for p in loaded.peers] == [
            c["chain_id"] for c in manifest["chains"] if c is not chain
        ]
        assert loaded.l1.chain_id == manifest["l1"]["chain_id"]
    assert len(manifest["accounts"]) == 10
    assert "DEVNET ONLY" in manifest["accounts_note"]


def test_status_shows_running_nodes(devnet: Path) -> None:
    result = xrelay("devnet", "status", "--state-dir", str(devnet))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("│ running │") == 3
    for node in nodes(manifest_of(devnet)):
        assert str(node["pid"]) in result.stdout


def test_second_up_is_refused(devnet: Path) -> None:
    before = manifest_of(devnet)
    result = xrelay("devnet", "up", "--state-dir", str(devnet))
    assert result.returncode != 0
    assert "already running" in result.stderr
    assert "xrelay devnet down" in result.stderr
    assert manifest_of(devnet) == before  # the running devnet is untouched


def test_down_stops_every_node_and_leaves_logs(devnet: Path) -> None:
    manifest = manifest_of(devnet)
    result = xrelay("devnet", "down", "--state-dir", str(devnet))
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in node_pids(manifest)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(pid) for pid in node_pids(manifest))
    assert not (devnet / "manifest.json").exists()
    assert all(Path(n["log"]).is_file() for n in manifest["chains"])
    status = xrelay("devnet", "status", "--state-dir", str(devnet))
    assert "no devnet" in status.stdout
    again = xrelay("devnet", "down", "--state-dir", str(devnet))
    assert again.returncode != 0 and "no devnet was started" in again.stderr


def test_down_never_stops_a_process_it_did_not_start(tmp_path: Path) -> None:
    """A stale manifest whose pid now belongs to another program: down leaves that program alone."""
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        write_stale_manifest(tmp_path, bystander.pid)
        result = xrelay("devnet", "down", "--state-dir", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert "none were still running" in result.stdout
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_block_time_and_single_chain(tmp_path: Path) -> None:
    state_dir = tmp_path / "timed"
    result = xrelay(
        "devnet", "up", "--l2", "1", "--block-time", "0.5", "--capacity", "8", "--state-dir", str(state_dir)
    )
    assert result.returncode == 0, result.stderr
    manifest = manifest_of(state_dir)
    try:
        assert [c["name"] for c in manifest["chains"]] == ["bank-a"]
        assert manifest["batch"]["capacities"] == [8]
        assert (state_dir / "keys" / "batch-8.zkey").is_file()
        assert config.load(manifest["chains"][0]["config"]).batch.capacities == (8,)
        w3 = Web3(Web3.HTTPProvider(manifest["l1"]["rpc_url"]))
        first = w3.eth.block_number
        time.sleep(1.5)
        assert w3.eth.block_number > first  # blocks come on time, not per transaction
    finally:
        assert xrelay("devnet", "down", "--state-dir", str(state_dir)).returncode == 0
    assert all(gone(pid) for pid in node_pids(manifest))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--l2", "0"], "--l2 must be between 1 and 8, not 0"),
        (["--l2", "9"], "--l2 must be between 1 and 8, not 9"),
        (["--block-time", "-1"], "--block-time must be positive"),
        (["--capacity", "12"], "--capacity must be a power of two from 8 to 1024, not 12"),
        (["--capacity", "2048"], "--capacity must be a power of two from 8 to 1024, not 2048"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    result = xrelay("devnet", "up", *args, "--state-dir", str(tmp_path))
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "manifest.json").exists()


def test_missing_toolchain_says_run_make_setup(tmp_path: Path) -> None:
    result = xrelay("devnet", "up", "--state-dir", str(tmp_path), env={"XRELAY_NODE_MODULES": str(tmp_path)})
    assert result.returncode != 0
    assert "anvil not found" in result.stderr
    assert "make setup" in result.stderr
    assert "Traceback" not in result.stderr
    build = xrelay("contracts", "build", env={"XRELAY_NODE_MODULES": str(tmp_path)})
    assert "solc not found" in build.stderr and "make setup" in build.stderr


def test_up_over_a_stale_manifest(tmp_path: Path) -> None:
    """A manifest left by a devnet whose nodes are gone (a reboot, a kill) does not block a new one."""
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid is now free: the stale manifest points at nothing
    write_stale_manifest(tmp_path, finished.pid)
    result = xrelay("devnet", "up", "--l2", "1", "--state-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    manifest = manifest_of(tmp_path)
    try:
        assert manifest["status"] == "up"
        assert manifest["l1"]["pid"] != finished.pid
    finally:
        assert xrelay("devnet", "down", "--state-dir", str(tmp_path)).returncode == 0


def test_the_daemon_refuses_to_start_on_contracts_that_are_not_the_right_ones(devnet: Path) -> None:
    manifest = manifest_of(devnet)
    entry = manifest["chains"][0]
    data = tomllib.loads(Path(entry["config"]).read_text())
    env = {entry["admin_token_env"]: "token"}
    no_code = "0x000000000000000000000000000000000000dEaD"
    keys_16 = devnet / "keys-16"
    shutil.copytree(devnet / "keys", keys_16, dirs_exist_ok=True)
    shutil.copyfile(keys_16 / "batch-8.zkey", keys_16 / "batch-16.zkey")
    cases = {
        "l1.hub": ({"l1": {**data["l1"], "hub": no_code}}, f"{no_code} has no code"),
        "chain.contracts.inbox": (
            {
                "chain": {
                    **data["chain"],
                    "contracts": {**data["chain"]["contracts"], "inbox": entry["contracts"]["outbox"]},
                }
            },
            "does not answer as the Inbox does",
        ),
        # a proving key of capacity 16 is there, but L1 has no verifier for it
        "batch.capacities": (
            {"batch": {**data["batch"], "capacities": [8, 16], "keys_dir": str(keys_16)}},
            "the Hub has no verifier of chain 901's batches of capacity 16",
        ),
    }
    for key, (change, message) in cases.items():
        path = devnet / f"bad-{key}.toml"
        path.write_text(tomli_w.dumps({**data, **change}))
        result = xrelay("run", "-c", str(path), env=env)
        assert result.returncode != 0, key
        assert key in result.stderr and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr


def test_a_development_key_is_made_once_and_a_damaged_cached_one_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XRELAY_KEY_CACHE", str(tmp_path / "cache"))
    made = write_batch_key(tmp_path / "first", 8)
    (cached,) = (tmp_path / "cache").iterdir()
    assert write_batch_key(tmp_path / "second", 8) == made
    assert (tmp_path / "second" / "batch-8.zkey").read_bytes() == cached.read_bytes()
    damaged = bytearray(cached.read_bytes())
    damaged[1000] ^= 1
    cached.write_bytes(bytes(damaged))
    assert write_batch_key(tmp_path / "third", 8) == made  # made again, not read from the damaged file
    assert (tmp_path / "third" / "batch-8.zkey").read_bytes() == (
        tmp_path / "first" / "batch-8.zkey"
    ).read_bytes()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cached.name]
