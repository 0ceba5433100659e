"""Add, remove and list the peers of an institution's config file, keeping its comments.

Every change is made on the file's text with tomlkit, validated as a whole config (the edited text
is written to a temporary file beside the original and loaded with `relayer.config.load`), and
only then put in place of the original with an atomic rename: a running daemon, which watches the
file, sees either the old file or the new one, never a half-written or invalid one. An invalid
change raises PeerError naming what was wrong, and leaves the file as it was.

Comments inside a [[peers]] table go with it; the comments after it (which TOML tools attach to it,
but which introduce whatever follows) stay where they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Array, Item, Table, Whitespace

from relayer import config as institution_config
from relayer.config import ANY, ConfigError, PeerConfig


class PeerError(ValueError):
    """A peer change that cannot be made; the file is unchanged. `problems` as in ConfigError."""

    def __init__(self, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class PeerConflict(PeerError):
    """The new peer's name or chain id is already a peer's."""


class UnknownPeer(PeerError):
    """No peer with that name."""


def list_peers(config_path: str | Path) -> tuple[PeerConfig, ...]:
    """The peers of a config file (which must be valid)."""
    return institution_config.load(config_path).peers


def add_peer(  # noqa: PLR0917 (the signature the daemon and the CLI share)
    config_path: str | Path,
    name: str,
    chain_id: int,
    allowed_assets: Sequence[str] = (ANY,),
    allowed_targets: Sequence[str] = (ANY,),
    rate_limit_per_minute: int = 600,
    *,
    force_after_seconds: float | None = None,
    swap_desk: str | None = None,
) -> PeerConfig:
    """Append a [[peers]] table to the config file; returns the peer as validated (force_after_seconds
    None: the default; swap_desk None: no swaps with it)."""
    path = Path(config_path)
    with _locked(path):
        current = institution_config.load(path)
        for peer in current.peers:
            if peer.name == name:
                raise PeerConflict(f"{path}: there is already a peer named {name!r} (chain {peer.chain_id})")
            if peer.chain_id == chain_id:
                raise PeerConflict(f"{path}: chain {chain_id} is already the chain of peer {peer.name!r}")
        text = _read(path)
        doc = tomlkit.parse(text)
        values: dict[str, Any] = {
            "name": name,
            "chain_id": chain_id,
            "allowed_assets": list(allowed_assets),
            "allowed_targets": list(allowed_targets),
            "rate_limit_per_minute": rate_limit_per_minute,
        }
        if force_after_seconds is not None:
            values["force_after_seconds"] = force_after_seconds
        if swap_desk is not None:
            values["swap_desk"] = swap_desk
        _append_peer(path, doc, values)
        new_text = tomlkit.dumps(doc)
        expected = tomllib.loads(text)
        expected["peers"] = [*expected.get("peers", []), values]
        loaded = _replace(path, new_text, expected, f"cannot add peer {name!r}")
    return next(peer for peer in loaded.peers if peer.name == name)


def remove_peer(config_path: str | Path, name: str) -> PeerConfig:
    """Remove the peer named `name` from the config file; returns it."""
    path = Path(config_path)
    with _locked(path):
        current = institution_config.load(path)
        names = [peer.name for peer in current.peers]
        if name not in names:
            known = ", ".join(names) or "none"
            raise UnknownPeer(f"{path}: no peer named {name!r} (peers: {known})")
        index = names.index(name)
        text = _read(path)
        doc = tomlkit.parse(text)
        _delete_peer(path, doc, index)
        new_text = tomlkit.dumps(doc)
        expected = tomllib.loads(text)
        del expected["peers"][index]
        if not expected["peers"]:
            del expected["peers"]
        _replace(path, new_text, expected, f"cannot remove peer {name!r}")
    return current.peers[index]


# --- editing the document ---------------------------------------------------------------------


def _peers_item(path: Path, doc: tomlkit.TOMLDocument) -> Item | None:
    if "peers" not in doc:
        return None
    item = doc.item("peers")
    if not isinstance(item, AoT | Array):
        raise PeerError(
            f"{path}: cannot edit the peers here: keep the [[peers]] tables together, one after another"
        )
    return item


def _append_peer(path: Path, doc: tomlkit.TOMLDocument, values: dict[str, Any]) -> None:
    peers = _peers_item(path, doc)
    if isinstance(peers, Array):  # peers = [{...}, ...]
        inline = tomlkit.inline_table()
        inline.update(values)
        peers.append(inline)
        return
    table = tomlkit.table()
    for key, value in values.items():
        table.append(key, value)
    if peers is None:  # the first peer: at the end of the file, after a blank line
        if not tomlkit.dumps(doc).endswith("\n\n"):
            table.trivia.indent = "\n"
        new = tomlkit.aot()
        new.append(table)
        doc.append("peers", new)
        return
    assert isinstance(peers, AoT)
    last = peers[-1]
    lead_in = _take_trailing(last)  # introduces what follows the last peer: keep it after the new one
    last.append(None, Whitespace("\n"))
    peers.append(table)
    for _, item in lead_in:
        table.value.body.append((None, item))


def _delete_peer(path: Path, doc: tomlkit.TOMLDocument, index: int) -> None:
    peers = _peers_item(path, doc)
    if isinstance(peers, Array):
        del peers[index]
        return
    assert isinstance(peers, AoT)
    lead_in = _take_trailing(peers[index])
    if all(isinstance(item, Whitespace) for _, item in lead_in):
        lead_in = []  # only spacing: the neighbours keep theirs
    if index > 0:
        previous = peers[index - 1].value.body
        if previous and lead_in and isinstance(previous[-1][1], Whitespace):
            lead_in = lead_in[1:] if isinstance(lead_in[0][1], Whitespace) else lead_in
        previous.extend(lead_in)
        del peers[index]
        return
    # The first peer: what followed it goes just before the [[peers]] tables (or in their place).
    position = next(i for i, (key, _) in enumerate(doc.body) if key is not None and key.key == "peers")
    if len(peers) > 1:
        del peers[0]
        doc.body[position:position] = lead_in
    else:
        doc.body[position : position + 1] = lead_in
    # doc.body was edited below tomlkit's index of it: the caller renders it at once, nothing more.


def _take_trailing(table: Table) -> list[tuple[Any, Item]]:
    """Remove and return the end of `table` from the first blank line after its last key: comments
    there introduce whatever comes next, not this table."""
    body: Container = table.value
    items = body.body
    last_key = max((i for i, (key, _) in enumerate(items) if key is not None), default=-1)
    start = next(
        (i for i in range(last_key + 1, len(items)) if isinstance(items[i][1], Whitespace)), len(items)
    )
    trailing = items[start:]
    del items[start:]
    return trailing


# --- writing --------------------------------------------------------------------------------


def _read(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as file:
        return file.read()


def _replace(
    path: Path, new_text: str, expected: dict[str, Any], what: str
) -> institution_config.InstitutionConfig:
    """Validate `new_text` as the config at `path` and put it in place; returns it loaded."""
    try:
        changed = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise PeerError(f"{path}: {what}: the edited file would not be valid TOML ({exc})") from None
    if changed != expected:  # a safety net for the comment-keeping edits above
        raise PeerError(f"{path}: {what}: the edit would change more than the peers; the file is unchanged")
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(new_text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, stat.S_IMODE(path.stat().st_mode))
        try:
            loaded = institution_config.load(temp)
        except ConfigError as exc:
            details = "; ".join(f"{key}: {message}" if key else message for key, message in exc.problems)
            raise PeerError(f"{path}: {what}: {details}", exc.problems) from None
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return loaded


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise edits of the config files in one folder (the CLI and a daemon's admin API)."""
    folder = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock
