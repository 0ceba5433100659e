"""The operator's commands for a daemon: `xrelay peers`, `xrelay messages`, `xrelay batches`,
`xrelay replay`, `xrelay store check`."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from relayer import cli as cli_module
from relayer.cli import cli
from relayer.config import load
from relayer.store import Store
from tests.stored import ASSET, fill_batches, fill_messages

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as they need: no column squeezed out of the assertions' way."""
    monkeypatch.setattr(cli_module.console, "width", 200)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bank-a.toml"
    shutil.copy(CONFIGS / "bank-a.toml", path)
    return path


@pytest.fixture
def store(config: Path) -> Iterator[Store]:
    with Store(load(config).store.path) as opened:
        fill_messages(opened)
        yield opened


@pytest.fixture
def batches(store: Store) -> Store:
    fill_batches(store)
    return store


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_help_lists_the_new_commands() -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert all(f"  {group} " in out for group in ("peers", "messages", "batches", "replay", "store"))
    for group, commands in {
        "messages": ("list", "show", "refused"),
        "peers": ("list", "add", "remove"),
        "batches": ("list", "show"),
        "store": ("check",),
    }.items():
        code, out, _ = run(group, "--help")
        assert code == 0
        assert all(f"  {command} " in out for command in commands), group


def test_peers_list_add_remove(config: Path) -> None:
    code, out, _ = run("peers", "list", "-c", str(config))
    assert code == 0
    assert "bank-b" in out and "902" in out and "any" in out

    code, out, _ = run(
        "peers", "add", "-c", str(config), "bank-c", "903", "--asset", ASSET, "--rate-limit", "60"
    )
    assert code == 0, out
    assert f"added peer bank-c (chain 903) to {config}" in out
    assert "a running daemon picks the change up by itself" in out
    peer = load(config).peers[1]
    assert (peer.name, peer.chain_id, peer.allowed_assets, peer.rate_limit_per_minute) == (
        "bank-c",
        903,
        (ASSET,),
        60,
    )

    code, out, _ = run("peers", "add", "-c", str(config), "bank-d", "904", "--no-value")
    assert code == 0
    assert load(config).peers[2].allowed_assets == ()
    code, out, _ = run("peers", "list", "-c", str(config))
    assert "none (value refused)" in out and ASSET in out

    code, out, _ = run("peers", "remove", "-c", str(config), "bank-b")
    assert code == 0
    assert f"removed peer bank-b (chain 902) from {config}" in out
    assert [p.name for p in load(config).peers] == ["bank-c", "bank-d"]


def test_peer_changes_that_are_invalid_are_clean_errors(config: Path) -> None:
    before = config.read_bytes()
    for args, error in [
        (("add", "bank-b", "905"), "there is already a peer named 'bank-b'"),
        (("add", "bank-x", "901"), "peers[1].chain_id: 901 is already used by this institution's chain"),
        (("add", "bank-x", "905", "--asset", "0x12"), '"0x12" is not an asset id'),
        (("add", "bank-x", "905", "--asset", ASSET, "--no-value"), "--no-value and --asset contradict"),
        (("add", "hub", "905"), 'peers[1].name: "hub" is reserved'),
        (("add", "l1", "905"), 'peers[1].name: "l1" is reserved'),
        (("add", "chain-905", "905"), 'peers[1].name: "chain-905" is reserved'),
        (("remove", "bank-z"), "no peer named 'bank-z' (peers: bank-b)"),
    ]:
        code, _, err = run("peers", args[0], "-c", str(config), *args[1:])
        assert code in (1, 2), args
        assert error in err, err
        assert "Traceback" not in err
    assert config.read_bytes() == before


def table_rows(out: str) -> list[list[str]]:
    """The cells of a table's rows."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")
    ]


def table_ids(out: str) -> list[str]:
    return [row[0] for row in table_rows(out)]


def test_messages_list(config: Path, store: Store) -> None:
    code, out, _ = run("messages", "list", "-c", str(config))
    assert code == 0
    assert table_ids(out) == ["902:1", "902:2", "901:0"]
    assert "TargetFailing()" in out
    assert f"7 {ASSET[:10]}…" in out

    code, out, _ = run("messages", "list", "-c", str(config), "--status", "failed,sent", "--direction", "in")
    assert code == 0
    assert table_ids(out) == ["902:1"]
    code, out, _ = run("messages", "list", "-c", str(config), "--status", "executed", "--status", "sent")
    assert table_ids(out) == ["902:2", "901:0"]
    code, out, _ = run("messages", "list", "-c", str(config), "--peer", "bank-z")
    assert (code, out.strip()) == (0, "no messages")
    code, out, _ = run("messages", "list", "-c", str(config), "--limit", "1")
    assert table_ids(out) == ["902:1"]
    code, out, _ = run("messages", "list", "-c", str(config), "--limit", "1" + "0" * 22)
    assert table_ids(out) == ["902:1", "902:2", "901:0"]
    for args, error in [
        (("--status", "lost"), "unknown status lost: use sent, batched, settled"),
        (("--status", "proving"), "unknown status proving"),  # a batch's, not a message's
        (("--direction", "sideways"), "'sideways' is not one of 'out', 'in'"),
    ]:
        code, _, err = run("messages", "list", "-c", str(config), *args)
        assert code == 2
        assert error in err, err


def test_messages_show_has_the_whole_history(config: Path, store: Store) -> None:
    code, out, _ = run("messages", "show", "-c", str(config), "902:1")
    assert code == 0
    fields = out[: out.index("history")]
    for text in [
        "0xcafe",
        "the target reverted: TargetFailing()",
        "failed",
        "0xbeef",
        '{"delivery":"from bank-b"}',
    ]:
        assert text in fields, text
    history = out[out.index("history") :]
    changes = re.findall(r"(\S+) -> (\S+)", history)
    assert changes == [
        ("-", "received"),
        ("received", "verified"),
        ("verified", "executing"),
        ("executing", "failed"),
    ]
    for reason in ["delivered by bank-b", "path, batch proof and L1 settlement checked", "TargetFailing()"]:
        assert reason in history
    code, _, err = run("messages", "show", "-c", str(config), "902:99")
    assert code == 1
    assert "no message 902:99 in the store" in err


def test_messages_refused(config: Path, store: Store) -> None:
    code, out, _ = run("messages", "refused", "-c", str(config))
    assert (code, out.strip()) == (0, "nothing refused")
    store.refuse(peer="bank-b", chain_id=902, kind="messages", reason="bad signature", raw=b"abc" * 3000)
    code, out, _ = run("messages", "refused", "-c", str(config))
    assert code == 0
    assert "bank-b" in out and "bad signature" in out and "messages" in out
    assert "9000" in out  # the input's whole size, though only its first bytes are kept


def test_replay(config: Path, store: Store) -> None:
    code, out, _ = run("replay", "-c", str(config), "902:1")
    assert code == 0
    assert "message 902:1: failed -> replay; the daemon executes it again shortly" in out
    code, out, _ = run("replay", "-c", str(config), "902:1")
    assert code == 0
    assert "message 902:1 is already waiting for its replay: nothing changed" in out
    assert [t.to_status for t in store.history("902:1")] == [
        "received",
        "verified",
        "executing",
        "failed",
        "replay",
    ]
    assert store.history("902:1")[-1].reason == "replay requested from the CLI"

    for message_id, error in [
        ("902:2", r"message 902:2 was executed at \S+ \S+Z in transaction 0xbeef; it cannot be replayed"),
        ("902:9", "no message 902:9 in the store"),
        ("901:0", r"message 901:0 is outgoing \(to bank-b\): only incoming messages are replayed"),
    ]:
        code, _, err = run("replay", "-c", str(config), message_id)
        assert code == 1
        assert re.search(error, err), err
        assert "Traceback" not in err


def test_batches_list(config: Path, batches: Store) -> None:
    code, out, _ = run("batches", "list", "-c", str(config))
    assert code == 0
    assert table_ids(out) == ["0", "1", "2"]
    rows = {row[0]: row for row in table_rows(out)}
    assert rows["0"][:7] == ["0", "settled", "2/16", "0..1", "2.50 s", "0xc0ffee", "1"]
    assert rows["1"][:8] == ["1", "proven", "2/16", "2..3", "3.25 s", "-", "1", "insufficient funds"]
    assert rows["2"][:7] == ["2", "proving", "1/16", "4..4", "-", "-", "0"]

    code, out, _ = run("batches", "list", "-c", str(config), "--status", "settled")
    assert table_ids(out) == ["0"]
    code, out, _ = run("batches", "list", "-c", str(config), "--status", "proving,proven")
    assert table_ids(out) == ["1", "2"]
    code, out, _ = run("batches", "list", "-c", str(config), "--limit", "2")
    assert table_ids(out) == ["1", "2"]  # the last ones
    code, out, _ = run("batches", "list", "-c", str(config), "--status", "committing")
    assert (code, out.strip()) == (0, "no batches")
    for status in ("lost", "sent"):  # "sent" is a message's status, not a batch's
        code, _, err = run("batches", "list", "-c", str(config), "--status", status)
        assert code == 2
        assert f"unknown status {status}: use proving, proven, committing, settled" in err


def test_batches_show_has_the_whole_history(config: Path, batches: Store) -> None:
    code, out, _ = run("batches", "show", "-c", str(config), "0")
    assert code == 0
    fields = out[: out.index("history")]
    for text in ["settled", "0xc0ffee", "300000", '"protocol":"groth16"']:
        assert text in fields, text
    history = out[out.index("history") :]
    assert re.findall(r"(\S+) -> (\S+)", history) == [
        ("-", "proving"),
        ("proving", "proven"),
        ("proven", "committing"),
        ("committing", "proven"),
        ("proven", "committing"),
        ("committing", "settled"),
    ]
    for reason in [
        "closed with 2 messages",
        "proven in 2.50 s",
        "commit refused (try 1): nonce too low",
        "settled on L1 (BatchSettled)",
    ]:
        assert reason in history, reason

    code, _, err = run("batches", "show", "-c", str(config), "9")
    assert code == 1
    assert "no batch 9 in the store" in err
    code, _, err = run("batches", "show", "-c", str(config), "-1")
    assert code == 2


def test_store_check_and_repair(config: Path, batches: Store) -> None:
    code, out, _ = run("store", "check", "-c", str(config))
    assert code == 0
    assert f"the store {batches.path} is consistent" in out

    # What an xrelay whose steps were not one transaction each could leave: batch 1 settled, its
    # messages still batched; and a count that no repair can make right.
    with sqlite3.connect(batches.path) as db:
        db.execute("UPDATE batches SET status = 'settled' WHERE batch_number = 1")
        db.execute("UPDATE batches SET count = 5 WHERE batch_number = 2")
    db.close()
    code, out, err = run("store", "check", "-c", str(config))
    assert code == 1
    assert f"the store {batches.path} is inconsistent:" in err
    for problem in [
        "message 901:2 is batched in batch 1, which is settled",
        "message 901:3 is batched in batch 1, which is settled",
        "batch 2: count is 5, but 1 messages are in it",
    ]:
        assert problem in err, err
    assert "Traceback" not in err
    assert [m.status for m in batches.messages(batch_number=1)] == ["batched", "batched"]  # left as it was

    code, out, err = run("store", "check", "-c", str(config), "--repair")
    assert code == 1
    assert "repaired: message 901:2 settled with batch 1" in out
    assert "repaired: message 901:3 settled with batch 1" in out
    assert "901:2" not in err and "batch 2: count is 5, but 1 messages are in it" in err
    assert batches.history("901:2")[-1].reason == "batch 1 settled on L1 (repaired)"

    with sqlite3.connect(batches.path) as db:
        db.execute("UPDATE batches SET count = 1 WHERE batch_number = 2")
    db.close()
    code, out, _ = run("store", "check", "-c", str(config), "--repair")
    assert code == 0
    assert "nothing to repair" in out
    assert f"the store {batches.path} is consistent" in out


def test_without_a_store_yet(config: Path) -> None:
    for command in (("messages", "list"), ("batches", "list"), ("store", "check")):
        code, _, err = run(*command, "-c", str(config))
        assert code == 1
        assert f"no store at {config.parent / 'bank-a.sqlite'} yet" in err
    assert not (config.parent / "bank-a.sqlite").exists()
