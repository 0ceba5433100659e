"""Editing an institution config's peers in place: comments kept, every change validated first."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from relayer import config as institution_config
from relayer.config import ConfigError
from relayer.peers import PeerConflict, PeerError, UnknownPeer, add_peer, list_peers, remove_peer

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ASSET = "0x" + "ab" * 32


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bank-a.toml"
    shutil.copy(CONFIGS / "bank-a.toml", path)
    return path


def comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("#")]


def test_list_peers(config: Path) -> None:
    assert [(p.name, p.chain_id, p.allowed_assets) for p in list_peers(config)] == [("bank-b", 902, ("*",))]


def test_add_keeps_every_comment_and_puts_the_new_peer_after_the_last(config: Path) -> None:
    before = config.read_text()
    peer = add_peer(
        config, "bank-c", 903, allowed_assets=[ASSET], allowed_targets=["*"], rate_limit_per_minute=60
    )
    assert (peer.name, peer.chain_id, peer.allowed_assets, peer.rate_limit_per_minute) == (
        "bank-c",
        903,
        (ASSET,),
        60,
    )
    after = config.read_text()
    assert comments(after) == comments(before)
    assert [p.name for p in list_peers(config)] == ["bank-b", "bank-c"]
    # the comment introducing [batch] still comes right before it, after the new peer
    new_peer = after.index('name = "bank-c"')
    batch_comment = after.index("# When a batch of outgoing messages closes")
    assert new_peer < batch_comment < after.index("[batch]")
    assert '\n\n[[peers]]\nname = "bank-c"\nchain_id = 903\n' in after
    assert institution_config.load(config).batch.capacities == (8, 64, 256)  # the rest is untouched


def test_adding_then_removing_a_peer_gives_back_the_same_file(config: Path) -> None:
    before = config.read_text()
    add_peer(config, "bank-c", 903)
    add_peer(config, "bank-d", 904, allowed_assets=())
    remove_peer(config, "bank-d")
    remove_peer(config, "bank-c")
    assert config.read_text() == before


def test_remove_drops_the_peer_and_its_own_comments_only(config: Path) -> None:
    add_peer(config, "bank-c", 903)
    before = config.read_text()
    removed = remove_peer(config, "bank-b")
    assert (removed.name, removed.chain_id) == ("bank-b", 902)
    after = config.read_text()
    assert [p.name for p in list_peers(config)] == ["bank-c"]
    own = [line for line in comments(before) if "bank-b may send" in line or "bank-b's messages" in line]
    assert len(own) == 2
    assert comments(after) == [
        line for line in comments(before) if line not in own and "from bank-b" not in line
    ]


def test_removing_the_last_peer_keeps_the_comments_around_it(config: Path) -> None:
    remove_peer(config, "bank-b")
    text = config.read_text()
    assert list_peers(config) == ()
    assert "[[peers]]" not in text.replace("# [[peers]] for each peer.", "")
    assert "# A chain this institution exchanges messages with" in text
    assert "# When a batch of outgoing messages closes" in text
    add_peer(config, "bank-b", 902)
    assert [p.name for p in list_peers(config)] == ["bank-b"]


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            lambda c: add_peer(c, "bank-b", 905),
            PeerConflict,
            "there is already a peer named 'bank-b' (chain 902)",
        ),
        (
            lambda c: add_peer(c, "bank-x", 902),
            PeerConflict,
            "chain 902 is already the chain of peer 'bank-b'",
        ),
        (
            lambda c: add_peer(c, "bank-x", 901),
            PeerError,
            "cannot add peer 'bank-x': peers[1].chain_id: 901 is already used by this institution's chain",
        ),
        (
            lambda c: add_peer(c, "bank-x", 900),
            PeerError,
            "peers[1].chain_id: 900 is already used by the L1 (l1.chain_id)",
        ),
        (
            lambda c: add_peer(c, "bank-a", 905),
            PeerError,
            'peers[1].name: "bank-a" is this institution itself',
        ),
        (
            lambda c: add_peer(c, "bank-x", 905, allowed_assets=["0x12"]),
            PeerError,
            'peers[1].allowed_assets[0]: "0x12" is not an asset id',
        ),
        (
            lambda c: add_peer(c, "bank-x", 905, allowed_targets=["0xnothex"]),
            PeerError,
            'peers[1].allowed_targets[0]: "0xnothex" is not an address',
        ),
        (
            lambda c: add_peer(c, "bank-x", 905, allowed_assets=["*", ASSET]),
            PeerError,
            'peers[1].allowed_assets: "*" (any) cannot be mixed with other entries',
        ),
        (lambda c: add_peer(c, "Bank X", 905), PeerError, 'peers[1].name: "Bank X" is not a valid name'),
        # the hub service's name on the bus, the L1's in the store, and the label of a chain that is
        # not a peer: a peer by one of these names would be mistaken for them
        (lambda c: add_peer(c, "hub", 905), PeerError, 'peers[1].name: "hub" is reserved'),
        (lambda c: add_peer(c, "l1", 905), PeerError, 'peers[1].name: "l1" is reserved'),
        (lambda c: add_peer(c, "chain-905", 905), PeerError, 'peers[1].name: "chain-905" is reserved'),
        (
            lambda c: add_peer(c, "bank-x", 905, rate_limit_per_minute=0),
            PeerError,
            "peers[1].rate_limit_per_minute: must be greater than 0",
        ),
        (lambda c: add_peer(c, "bank-x", -1), PeerError, "peers[1].chain_id: must be greater than 0"),
        (lambda c: remove_peer(c, "bank-z"), UnknownPeer, "no peer named 'bank-z' (peers: bank-b)"),
    ],
)
def test_an_invalid_change_is_refused_and_the_file_left_unchanged(
    config: Path, change: Any, error: type[Exception], message: str
) -> None:
    before = config.read_bytes()
    with pytest.raises(error) as raised:
        change(config)
    assert str(raised.value).startswith(f"{config}: ")
    assert message in str(raised.value)
    assert config.read_bytes() == before
    assert sorted(p.name for p in config.parent.iterdir()) == ["bank-a.toml"]  # no temporary file left


def test_an_invalid_config_file_is_reported_as_such(config: Path) -> None:
    config.write_text(config.read_text().replace("capacities = [8, 64, 256]", "capacity = 12"))
    with pytest.raises(ConfigError, match=r"batch\.capacity: must be a power of two"):
        add_peer(config, "bank-c", 903)
    with pytest.raises(ConfigError, match="no such file"):
        remove_peer(config.with_name("missing.toml"), "bank-b")


def test_the_file_keeps_its_permissions(config: Path) -> None:
    config.chmod(0o640)
    add_peer(config, "bank-c", 903)
    assert config.stat().st_mode & 0o777 == 0o640
