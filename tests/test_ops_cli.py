"""The operator's commands for a daemon: `xrelay peers`, `xrelay messages`, `xrelay replay`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from relayer import cli as cli_module
from relayer.cli import cli
from relayer.config import load
from relayer.store import Store
from tests.stored import ASSET, message_row

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
        opened.add_message(message_row(1, amount=7), "received", "delivered by bank-b")
        opened.transition("902:1", "verified", "path and proof checked")
        opened.transition("902:1", "failed", "the target reverted", error="TargetFailing()", attempts=1)
        opened.add_message(message_row(2), "received", "delivered by bank-b")
        opened.transition("902:2", "executed", "MessageExecuted", exec_tx="0xbeef", executed_at=0.0)
        opened.add_message(message_row(1, direction="out"), "sent", "MessageSent in block 4")
        yield opened


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_help_lists_the_new_commands() -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert "peers " in out and "messages " in out and "replay " in out
    code, out, _ = run("messages", "--help")
    assert all(f"  {command} " in out for command in ("list", "show", "refused"))
    code, out, _ = run("peers", "--help")
    assert all(f"  {command} " in out for command in ("list", "add", "remove"))


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
        (("remove", "bank-z"), "no peer named 'bank-z' (peers: bank-b)"),
    ]:
        code, _, err = run("peers", args[0], "-c", str(config), *args[1:])
        assert code in (1, 2), args
        assert error in err, err
        assert "Traceback" not in err
    assert config.read_bytes() == before


def test_messages_list(config: Path, store: Store) -> None:
    code, out, _ = run("messages", "list", "-c", str(config))
    assert code == 0
    lines = [line for line in out.splitlines() if ":" in line and "│" in line]
    assert [line.split("│")[1].strip() for line in lines] == ["902:1", "902:2", "901:1"]
    assert "TargetFailing()" in out
    assert f"7 {ASSET[:10]}…" in out

    code, out, _ = run("messages", "list", "-c", str(config), "--status", "failed,sent", "--direction", "in")
    assert code == 0
    assert "902:1" in out and "902:2" not in out and "901:1" not in out
    code, out, _ = run("messages", "list", "-c", str(config), "--peer", "bank-z")
    assert (code, out.strip()) == (0, "no messages")
    code, out, _ = run("messages", "list", "-c", str(config), "--limit", "1")
    assert "902:1" in out and "902:2" not in out
    code, _, err = run("messages", "list", "-c", str(config), "--status", "lost")
    assert code == 2
    assert "unknown status lost" in err


def test_messages_show_has_the_whole_history(config: Path, store: Store) -> None:
    code, out, _ = run("messages", "show", "-c", str(config), "902:1")
    assert code == 0
    for text in [
        "0xcafe",
        "TargetFailing()",
        "delivered by bank-b",
        "path and proof checked",
        "the target reverted",
    ]:
        assert text in out
    history = out[out.index("history") :]
    assert history.index("received") < history.index("verified") < history.index("failed")
    code, _, err = run("messages", "show", "-c", str(config), "902:99")
    assert code == 1
    assert "no message 902:99 in the store" in err


def test_messages_refused(config: Path, store: Store) -> None:
    code, out, _ = run("messages", "refused", "-c", str(config))
    assert (code, out.strip()) == (0, "nothing refused")
    store.refuse(peer="bank-b", chain_id=902, kind="messages", reason="bad signature", raw=b"abc")
    code, out, _ = run("messages", "refused", "-c", str(config))
    assert code == 0
    assert "bank-b" in out and "bad signature" in out and "messages" in out


def test_replay(config: Path, store: Store) -> None:
    code, out, _ = run("replay", "-c", str(config), "902:1")
    assert code == 0
    assert "message 902:1: failed -> replay; the daemon executes it again shortly" in out
    code, out, _ = run("replay", "-c", str(config), "902:1")
    assert code == 0
    assert "message 902:1 is already waiting for its replay: nothing changed" in out
    assert [h["to_status"] for h in store.history("902:1")] == ["received", "verified", "failed", "replay"]
    assert store.history("902:1")[-1]["reason"] == "replay requested from the CLI"

    for message_id, error in [
        (
            "902:2",
            "message 902:2 was executed at 1970-01-01 00:00:00Z in transaction 0xbeef; it cannot be replayed",
        ),
        ("902:9", "no message 902:9 in the store"),
        ("901:1", "message 901:1 is outgoing (to bank-b): only incoming messages are replayed"),
    ]:
        code, _, err = run("replay", "-c", str(config), message_id)
        assert code == 1
        assert error in err
        assert "Traceback" not in err


def test_without_a_store_yet(config: Path) -> None:
    code, _, err = run("messages", "list", "-c", str(config))
    assert code == 1
    assert f"no store at {config.parent / 'bank-a.sqlite'} yet" in err
    assert not (config.parent / "bank-a.sqlite").exists()
