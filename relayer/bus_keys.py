"""An institution's bus encryption key: making one, and registering its public half on the L1 Hub.

Peers seal every envelope to the key the L1 Hub has for the recipient's chain (`Hub.busKeys`), which
the chain's operator (or governance) sets with `Hub.setBusKey`. Rotating it: make a new key, put it
in the config as `[bus.key]` with the old one as `[bus.previous_key]`, restart the daemon, then
`xrelay bus-key register`; envelopes peers sealed to the old key still open for
`bus.key_grace_seconds` after the Hub recorded the change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from nacl.public import PrivateKey
from web3.contract import Contract

from bridge_contracts.chain import Chain
from bridge_contracts.views import HubBusKey
from hub.envelope import public_key_of
from relayer.config import ConfigError, InstitutionConfig


def new_key() -> PrivateKey:
    return PrivateKey.generate()


def write_keystore(path: Path, secret: PrivateKey, password: str) -> None:
    """The secret in an encrypted keystore file (Ethereum's V3 format, scrypt), readable by its owner
    only; an existing file is never overwritten."""
    keyfile = Account.encrypt(bytes(secret), password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(keyfile, file)


@dataclass(frozen=True)
class KeyState:
    """This institution's bus keys beside what the L1 Hub has for its chain."""

    configured: bytes  # the public key of bus.key
    previous: bytes | None  # of bus.previous_key
    registered: HubBusKey

    @property
    def in_force(self) -> bool:
        return self.registered.current == self.configured


def _l1(config: InstitutionConfig, path: Path) -> tuple[Chain, Contract]:
    """L1, as the chain's operator (the config's signer), and its Hub."""
    if config.l1.hub is None:
        raise ConfigError(path, [("l1.hub", "needed to read and register the bus key")])
    chain = Chain(config.l1.rpc_urls, config.chain.signer.resolve(), chain_id=config.l1.chain_id, name="L1")
    return chain, chain.contract("Hub", config.l1.hub)


def key_state(config: InstitutionConfig, path: Path, hub: Contract | None = None) -> KeyState:
    """The configured keys beside what the L1 `hub` (reached from the config when None) has."""
    if config.bus.key is None:
        raise ConfigError(path, [("bus.key", "no bus key is configured (xrelay bus-key new)")])
    hub = hub if hub is not None else _l1(config, path)[1]
    previous = config.bus.previous_key
    return KeyState(
        configured=public_key_of(config.bus.key.resolve("bus.key")),
        previous=None if previous is None else public_key_of(previous.resolve("bus.previous_key")),
        registered=HubBusKey.from_tuple(hub.functions.busKeys(config.chain.chain_id).call()),
    )


def register(config: InstitutionConfig, path: Path) -> str | None:
    """Register bus.key's public key for this chain on the L1 Hub, sent by the chain's operator (the
    config's signer); the transaction hash, or None when the Hub has that key already."""
    chain, hub = _l1(config, path)
    state = key_state(config, path, hub)
    if state.in_force:
        return None
    fn = hub.functions.setBusKey(config.chain.chain_id, state.configured)
    receipt = chain.send(fn, what=f"Hub.setBusKey({config.chain.chain_id})")
    return str(receipt["transactionHash"].to_0x_hex())
