"""One TOML file per institution: its chain, its signer, the L1, its peers and the daemon's settings.

`load(path)` reads a file and validates it, and reports every problem it finds at once, each with
the dotted key it concerns ("peers[1].chain_id"), as a `ConfigError`. `summary(config)` gives the
(label, value) rows that `xrelay config check FILE` prints. configs/bank-a.toml is a commented
example of the whole schema.

Relative paths in a file (the store, a keystore, TLS files) are taken from the file's own folder,
and are absolute in the loaded model. Secrets never sit in the file: it names the environment
variables that hold them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from nacl.public import PrivateKey
from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge_contracts.anvil import DEV_ACCOUNT_COUNT, dev_account
from hub.config_fields import (
    Address,
    ChainId,
    ConfigProblems,
    Confirmations,
    EnvName,
    Listen,
    Section,
    check_address,
    check_database_path,
    check_distinct_urls,
    check_existing_file,
    check_url,
    host_port,
    located,
    problems,
    read_toml,
    resolve,
    show,
)
from hub.envelope import devnet_bus_key
from relayer.store import L1_PEER, RefusalPolicy

ANY = "*"
"""In allowed_assets or allowed_targets: anything is allowed."""

_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
_CHAIN_LABEL = re.compile(r"chain-[0-9]+")
RESERVED_NAMES = frozenset({"hub", L1_PEER})
"""Names no institution may take: the hub service's on the bus, and the L1's in the store."""
_ASSET_ID = re.compile(r"0x[0-9a-fA-F]{64}")
_PLAIN_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_SIGNER_FORMS = ("env", "keystore", "devnet_account")

_PLAIN_KEY_REFUSED = (
    "plain private keys are never accepted in a config file: name the key's environment variable "
    "(env = ...), an encrypted keystore (keystore = ... with password_env = ...), or, on a devnet "
    "only, one of anvil's public dev accounts (devnet_account = 0-9)"
)


SETTLE_SECONDS = 30.0
"""What proving and settling a batch take at least, beyond its batching (for force_after_seconds)."""


class ConfigError(ConfigProblems):
    """Every problem found in one config file.

    `problems` holds (key, message) pairs: key is a dotted path such as "peers[1].chain_id", or ""
    for a problem with the whole file (missing, not TOML). str() gives one line per problem.
    """


# --- values -----------------------------------------------------------------------------------


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{show(value)} is not a valid name: use 1 to 63 lower-case letters, digits and '-', "
            "starting with a letter"
        )
    if value in RESERVED_NAMES or _CHAIN_LABEL.fullmatch(value):
        raise ValueError(
            f"{show(value)} is reserved ({', '.join(sorted(RESERVED_NAMES))} and chain-<id> name the hub "
            "service, the L1 and chains that are not peers): choose another name"
        )
    return value


def _check_rpc_url(value: str) -> str:
    return check_url(value, ("http", "https", "ws", "wss"))


def _check_asset(value: str) -> str:
    if value == ANY:
        return value
    if not _ASSET_ID.fullmatch(value):
        raise ValueError(f'{show(value)} is not an asset id: expected "*" or 0x followed by 64 hex digits')
    return value.lower()


def _check_genesis(value: str) -> str:
    if not _ASSET_ID.fullmatch(value):
        raise ValueError(f"{show(value)} is not a block hash: expected 0x followed by 64 hex digits")
    return value.lower()


def _check_target(value: str) -> str:
    return value if value == ANY else check_address(value)


_Name = Annotated[str, AfterValidator(_check_name)]
_RpcUrl = Annotated[str, AfterValidator(_check_rpc_url)]
_Genesis = Annotated[str, AfterValidator(_check_genesis)]


def _check_keystore(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    path = resolve(value, info)
    if not path.is_file():
        raise ValueError(f"keystore file {path} does not exist")
    return path


# --- sections ---------------------------------------------------------------------------------


class ContractsConfig(Section):
    """[chain.contracts]: where xrelay's contracts live on the institution's chain."""

    asset_router: Address
    """The AssetRouter contract, which locks, mints and releases value-carrying messages."""
    outbox: Address
    """The Outbox contract, where every message leaving the chain is numbered, hashed and emitted."""
    inbox: Address | None = None
    """The Inbox contract, which imports L1's aggregated roots and executes proven messages; the
    daemon needs it to receive."""
    swap_desk: Address | None = None
    """The SwapDesk contract (owned by the operator), for atomic swaps with peers; none: no swaps."""


class _SecretKey(Section):
    """A secret key the config names but never holds: read from the environment or a keystore."""

    _config_path: Path | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        if isinstance(context, dict) and isinstance(context.get("path"), Path):
            self._config_path = context["path"]

    def _read_env(self, where: str, name: str, field: str) -> str:
        value = os.environ.get(name, "")
        if not value:
            raise self._error(where, field, f"environment variable {name} is not set")
        return value

    def _error(self, where: str, field: str, message: str) -> ConfigError:
        return ConfigError(self._config_path or Path("<config>"), [(f"{where}.{field}", message)])


class SignerConfig(_SecretKey):
    """[chain.signer]: where the operator's key comes from; exactly one of env, keystore (with
    password_env) or devnet_account. A plain private key in the file is refused."""

    env: EnvName | None = None
    """The environment variable holding the private key (hex), read when the daemon starts."""
    keystore: Path | None = None
    """An encrypted Ethereum keystore (V3) file, relative to the config file; it must exist."""
    password_env: EnvName | None = None
    """With keystore, and only with it: the environment variable holding the keystore's password."""
    devnet_account: StrictInt | None = None
    """anvil's well-known development account 0-9. DEVNET ONLY: its key is public."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_plain_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("private_key" in data or "key" in data):
            raise ValueError(_PLAIN_KEY_REFUSED)
        return data

    @field_validator("env", mode="before")
    @classmethod
    def _env_is_not_a_key(cls, value: Any) -> Any:
        if isinstance(value, str) and _PLAIN_KEY.fullmatch(value):
            raise ValueError(_PLAIN_KEY_REFUSED)
        return value

    _keystore_exists = field_validator("keystore")(_check_keystore)

    @field_validator("devnet_account")
    @classmethod
    def _is_dev_account(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value < DEV_ACCOUNT_COUNT:
            raise ValueError(f"anvil has development accounts 0 to {DEV_ACCOUNT_COUNT - 1}, not {value}")
        return value

    @model_validator(mode="after")
    def _exactly_one_form(self) -> SignerConfig:
        forms = [form for form in _SIGNER_FORMS if getattr(self, form) is not None]
        if not forms:
            raise ValueError("no signer: set one of env, keystore (with password_env) or devnet_account")
        if len(forms) > 1:
            raise ValueError(f"set exactly one of env, keystore or devnet_account, not {' and '.join(forms)}")
        if self.keystore is not None and self.password_env is None:
            raise located([(("password_env",), "required with keystore: the variable holding its password")])
        if self.keystore is None and self.password_env is not None:
            raise located([(("password_env",), "only used with keystore")])
        return self

    def resolve(self) -> LocalAccount:
        """The operator's account, its key read now. Raises ConfigError if the key cannot be had."""
        if self.devnet_account is not None:
            return dev_account(self.devnet_account)
        if self.keystore is not None and self.password_env is not None:
            password = self._read_env("chain.signer", self.password_env, "password_env")
            try:
                keyfile = json.loads(self.keystore.read_text())
            except (OSError, ValueError) as exc:
                raise self._error(
                    "chain.signer", "keystore", f"cannot read keystore {self.keystore}: {exc}"
                ) from None
            try:
                key = Account.decrypt(keyfile, password)
            except Exception:
                raise self._error(
                    "chain.signer",
                    "keystore",
                    f"cannot decrypt keystore {self.keystore} with the password in {self.password_env} "
                    "(wrong password, or not a V3 keystore)",
                ) from None
            keystore_account: LocalAccount = Account.from_key(key)
            return keystore_account
        assert self.env is not None  # validation guarantees one form
        value = self._read_env("chain.signer", self.env, "env")
        try:
            account: LocalAccount = Account.from_key(value.strip())
        except Exception:  # never echo the value: it is meant to be a secret
            raise self._error(
                "chain.signer",
                "env",
                f"environment variable {self.env} does not hold a private key (64 hex digits)",
            ) from None
        return account

    def describe(self) -> str:
        """Where the key comes from, for `xrelay config check`; never the key itself."""
        if self.devnet_account is not None:
            address = dev_account(self.devnet_account).address
            return f"devnet account {self.devnet_account} {address} (DEVNET ONLY: its key is public)"
        if self.keystore is not None:
            return (
                f"keystore {self.keystore} (password in {self.password_env}, {_env_state(self.password_env)})"
            )
        return f"env {self.env} ({_env_state(self.env)})"


class RpcChain(Section):
    """A chain reached over JSON-RPC."""

    chain_id: ChainId
    """The chain's EIP-155 chain id."""
    rpc_urls: tuple[_RpcUrl, ...]
    """JSON-RPC endpoints (http, https, ws or wss), tried in this order: the next on failure."""
    finality: Literal["finalized", "safe", "confirmations"] = "finalized"
    """When a block is final, to act on its events: the node's "finalized" or "safe" block, or
    "confirmations" blocks below the head (also the rule on a node without the tag)."""
    confirmations: Confirmations = 1
    """How many blocks to wait past an event's block before acting on it (0 to 1000), when finality
    is "confirmations" or the node has no such tag."""
    poll_seconds: StrictFloat = Field(default=1.0, gt=0, le=600)
    """How often the daemon asks the chain for new blocks and what waits on it (about the block time)."""
    genesis: _Genesis | None = None
    """The hash of the chain's block 0, which every endpoint must have (0x + 64 hex digits). Without
    it the daemon pins the genesis its endpoints agree on at its first start, in its store."""
    failback_seconds: StrictFloat = Field(default=30.0, gt=0, le=86400)
    """While on a later RPC endpoint, how often the daemon tries the earlier ones again (it goes back
    to the first that is healthy and serves this chain)."""

    _some_distinct_urls = field_validator("rpc_urls")(check_distinct_urls)


class ChainConfig(RpcChain):
    """[chain]: the institution's own ZK chain."""

    contracts: ContractsConfig
    """[chain.contracts]: xrelay's contracts on this chain."""
    signer: SignerConfig
    """[chain.signer]: the operator key that sends this institution's transactions."""


class L1Config(RpcChain):
    """[l1]: the settlement layer all the institutions' chains settle to."""

    hub: Address | None = None
    """The L1 Hub contract, where batches settle; the daemon needs it to run."""
    hub_api: str | None = None
    """The hub service's HTTP API (http://host:port), which serves aggregated-tree proofs; the
    daemon needs it to receive."""

    @field_validator("hub_api")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, ("http", "https"))


class PeerConfig(Section):
    """[[peers]]: a chain this institution exchanges messages with, and what it accepts from it."""

    name: _Name
    """The peer institution's name, as in its own config's `institution`."""
    chain_id: ChainId
    """The peer's chain id."""
    allowed_assets: tuple[Annotated[str, AfterValidator(_check_asset)], ...] = ()
    """Asset ids (0x + 64 hex digits) the peer may send value in, or ["*"] for any; [] refuses value."""
    allowed_targets: tuple[Annotated[str, AfterValidator(_check_target)], ...] = (ANY,)
    """Addresses on this chain the peer's messages may call, or ["*"] for any."""
    rate_limit_per_minute: Annotated[StrictInt, Field(gt=0)] = 6000
    """The most messages accepted from this peer in one minute (default 6000, 100 a second: about what a
    chain of 30M-gas blocks a second executes; more are postponed and pushed again by the peer, so a
    lower limit also caps the throughput from that peer)."""
    force_after_seconds: Annotated[float, Field(gt=0)] = 21_600.0
    """Seconds after this chain sent a message to the peer without the peer reporting it executed
    before the daemon forces it through the L1 priority queue (default 6 h). At least
    batch.max_wait_seconds + SETTLE_SECONDS: a message is forced only once its batch is settled."""
    swap_desk: Address | None = None
    """The peer's SwapDesk on its chain, for atomic swaps under terms agreed with it; none: no swaps."""

    @field_validator("allowed_assets", "allowed_targets")
    @classmethod
    def _any_stands_alone(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if ANY in values and len(values) > 1:
            raise ValueError('"*" (any) cannot be mixed with other entries: write ["*"] alone, or list them')
        return values


class BatchConfig(Section):
    """[batch]: the batch circuits this chain proves with, and when a batch of outgoing messages closes.

    A batch closes when the largest capacity is full; when the prover is idle and at most one proven
    batch waits for L1 (a lone message does not wait for company); or `max_wait_seconds` after its
    first message. It is proven with the smallest capacity that holds it: a lone message pays for a
    small circuit, a flood fills large ones."""

    capacities: tuple[StrictInt, ...] = (16,)
    """The circuit capacities (messages per batch) this chain proves with, each a power of two from 8
    to 1024: one proving key each, and a verifier on L1 for each."""
    max_wait_seconds: StrictFloat = Field(default=5.0, gt=0, le=3600)
    """The longest a message waits for its batch to close while the prover is busy."""
    close_when_idle: bool = True
    """Close a batch as soon as the prover is idle (the lowest latency). false: a batch waits to be
    full or max_wait_seconds old (fewer, fuller batches: less L1 gas per message, more latency)."""
    provers: Annotated[StrictInt, Field(ge=1, le=64)] = 1
    """Batches proven at once, each in a prover process of its own holding the proving keys. One
    prover uses every core; more pay off only with cores to spare."""
    keys_dir: Path = Field(default=Path("keys"), validate_default=True)
    """The folder of the batch circuit's keys, relative to the config file: batch-<capacity>.zkey
    (this chain's proving key of each of its capacities) and batch-<capacity>.vk.json (the verifying
    key of each capacity peers prove with)."""

    @field_validator("keys_dir")
    @classmethod
    def _resolved(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve(value, info)

    @field_validator("capacities")
    @classmethod
    def _powers_of_two(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if not values:
            raise ValueError("name at least one capacity")
        for value in values:
            check_capacity(value)
        if len(set(values)) != len(values):
            raise ValueError(f"a capacity is named twice in {list(values)}")
        return tuple(sorted(values))

    @model_validator(mode="before")
    @classmethod
    def _one_capacity(cls, data: Any) -> Any:
        """`capacity = N`: shorthand for `capacities = [N]`."""
        if not isinstance(data, dict) or "capacity" not in data:
            return data
        data = dict(data)
        capacity = data.pop("capacity")
        if "capacities" in data:
            raise located([(("capacity",), "give capacity (one) or capacities (a list), not both")])
        if not isinstance(capacity, int) or isinstance(capacity, bool):
            raise located([(("capacity",), f"must be an integer, not {capacity!r}")])
        try:
            check_capacity(capacity)
        except ValueError as exc:
            raise located([(("capacity",), str(exc))]) from None
        data["capacities"] = [capacity]
        return data


def check_capacity(value: int) -> None:
    """A batch circuit's capacity is a power of two from 8 to 1024 (the Hub's and the batch tree's)."""
    if not 8 <= value <= 1024 or value & (value - 1):
        raise ValueError(f"must be a power of two from 8 to 1024 (8, 16, 32, ...), not {value}")


class StoreConfig(Section):
    """[store]: the daemon's SQLite database."""

    path: Path
    """The database file (default "<institution>.sqlite"), relative to the config file; its folder
    must exist."""

    refusal_bytes: Annotated[StrictInt, Field(ge=0, le=1 << 20)] = 4096
    """How much of each refused input (an envelope, a message) is kept, in bytes: enough to see
    what it was, never what a hostile sender wants to fill the disk with."""
    refusals_kept: Annotated[StrictInt, Field(ge=1)] = 10_000
    """How many refused inputs are kept; the oldest go first."""
    refusals_max_days: StrictFloat = Field(default=30.0, gt=0)
    """Refused inputs older than this many days are pruned."""

    _folder_exists = field_validator("path")(check_database_path)

    def refusal_policy(self) -> RefusalPolicy:
        return RefusalPolicy(self.refusal_bytes, self.refusals_kept, self.refusals_max_days * 86400)


class BusKeyConfig(_SecretKey):
    """[bus.key] (and [bus.previous_key]): where the institution's bus encryption key (an X25519
    secret key, which opens the envelopes peers seal to the public key the L1 Hub registers for this
    chain) comes from; exactly one of env, keystore (with password_env) or devnet_key. A plain key
    in the file is refused. `xrelay bus-key new` makes one."""

    env: EnvName | None = None
    """The environment variable holding the secret key (64 hex digits), read when the daemon starts."""
    keystore: Path | None = None
    """An encrypted keystore (Ethereum V3 format, holding the 32-byte secret), relative to the config
    file; it must exist."""
    password_env: EnvName | None = None
    """With keystore, and only with it: the environment variable holding the keystore's password."""
    devnet_key: Annotated[StrictInt, Field(ge=0, le=255)] | None = None
    """The devnet's bus key number 0-255. DEVNET ONLY: derived from a public label."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_plain_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("private_key" in data or "secret" in data or "key" in data):
            raise ValueError(
                _PLAIN_KEY_REFUSED.replace(
                    "one of anvil's public dev accounts (devnet_account = 0-9)",
                    "a devnet key (devnet_key = 0-255)",
                )
            )
        return data

    _keystore_exists = field_validator("keystore")(_check_keystore)

    @model_validator(mode="after")
    def _exactly_one_form(self) -> BusKeyConfig:
        forms = [form for form in ("env", "keystore", "devnet_key") if getattr(self, form) is not None]
        if len(forms) != 1:
            raise ValueError(
                "set exactly one of env, keystore (with password_env) or devnet_key"
                + (f", not {' and '.join(forms)}" if forms else "")
            )
        if (self.keystore is None) != (self.password_env is None):
            raise located([(("password_env",), "goes with keystore, and only with it")])
        return self

    def resolve(self, key: str = "bus.key") -> PrivateKey:
        """The secret key, read now. Raises ConfigError (naming `key`) if it cannot be had."""
        if self.devnet_key is not None:
            return devnet_bus_key(self.devnet_key)
        if self.keystore is not None and self.password_env is not None:
            password = self._read_env(key, self.password_env, "password_env")
            try:
                secret = Account.decrypt(json.loads(self.keystore.read_text()), password)
            except Exception:
                raise self._error(
                    key,
                    "keystore",
                    f"cannot decrypt keystore {self.keystore} with the password in {self.password_env} "
                    "(wrong password, or not a V3 keystore)",
                ) from None
            return PrivateKey(bytes(secret))
        assert self.env is not None
        value = self._read_env(key, self.env, "env").strip().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):  # never echo the value: it is a secret
            raise self._error(
                key, "env", f"environment variable {self.env} does not hold a key (64 hex digits)"
            )
        return PrivateKey(bytes.fromhex(value))

    def describe(self) -> str:
        """Where the key comes from, for `xrelay config check`; never the key itself."""
        if self.devnet_key is not None:
            return f"devnet bus key {self.devnet_key} (DEVNET ONLY: derived from a public label)"
        if self.keystore is not None:
            return (
                f"keystore {self.keystore} (password in {self.password_env}, {_env_state(self.password_env)})"
            )
        return f"env {self.env} ({_env_state(self.env)})"


class BusConfig(Section):
    """[bus]: the MQTT broker the institutions' daemons talk through."""

    url: str | None = None
    """mqtt://host[:port] or mqtts://host[:port]; unset, the daemon runs an embedded broker on
    127.0.0.1:1883 (a single institution trying things out; the devnet's daemons share the broker
    the hub service embeds)."""
    username_env: EnvName | None = None
    """The environment variable holding the broker user name."""
    password_env: EnvName | None = None
    """The environment variable holding the broker password."""
    client_cert: Path | None = None
    """TLS client certificate (PEM), relative to the config file; with client_key."""
    client_key: Path | None = None
    """The client certificate's private key (PEM), relative to the config file."""
    ca_cert: Path | None = None
    """CA certificate(s) (PEM) to trust for the broker, relative to the config file."""
    max_envelope_bytes: Annotated[StrictInt, Field(ge=65_536, le=256 << 20)] = 4 << 20
    """The largest envelope taken from the bus (4 MiB by default); a larger one is refused unread.
    The pusher splits a batch's messages over envelopes to stay under it."""
    key: BusKeyConfig | None = None
    """[bus.key]: the bus encryption key; the daemon needs it. Its public key must be the one the L1
    Hub registers for this chain (`xrelay bus-key register`)."""
    previous_key: BusKeyConfig | None = None
    """[bus.previous_key]: the key this one replaced, kept while peers may still seal to it."""
    key_grace_seconds: Annotated[float, Field(ge=0)] = 86_400.0
    """How long after the L1 Hub registered a new key envelopes sealed to the previous one still
    open (peers read the Hub's key again every 30 s; the default allows a day)."""
    max_envelope_age_seconds: Annotated[float, Field(gt=0)] = 3_600.0
    """An envelope sent longer ago than this (by its sender's clock) is refused as stale; the ids of
    younger ones are remembered, so a replayed envelope is refused. Peers push again what got no
    receipt, so nothing is lost."""
    probe_seconds: Annotated[float, Field(gt=0, le=600)] = 5.0
    """How often the daemon publishes a liveness probe to itself through the broker."""
    deaf_after_seconds: Annotated[float, Field(gt=0, le=3600)] = 20.0
    """Not hearing its own probe for this long while connected, the daemon counts itself deaf, starts
    a fresh broker session and asks its peers to push again; more than probe_seconds."""
    per_peer_pending: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = 500
    """Envelopes from one peer received and not yet handled; more are dropped (the peer pushes again
    what gets no receipt), so one peer cannot starve the others."""

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, ("mqtt", "mqtts"))

    _files_exist = field_validator("client_cert", "client_key", "ca_cert")(check_existing_file)

    @model_validator(mode="after")
    def _cert_with_key(self) -> BusConfig:
        if self.client_cert is not None and self.client_key is None:
            raise located([(("client_key",), "required with client_cert")])
        if self.client_key is not None and self.client_cert is None:
            raise located([(("client_cert",), "required with client_key")])
        return self

    @model_validator(mode="after")
    def _deaf_after_probe(self) -> BusConfig:
        if self.deaf_after_seconds <= self.probe_seconds:
            raise located([(("deaf_after_seconds",), "must be more than probe_seconds")])
        return self


class AdminConfig(Section):
    """[admin]: the daemon's HTTP admin API."""

    listen: Listen
    """host:port to listen on ([::1]:8701 for IPv6); keep it on loopback unless fronted by a proxy."""
    token_env: EnvName
    """The environment variable holding the bearer token the admin API requires."""

    @property
    def host(self) -> str:
        return host_port(self.listen)[0]

    @property
    def port(self) -> int:
        return host_port(self.listen)[1]


class InstitutionConfig(Section):
    """One institution's relayer daemon: the whole config file."""

    institution: _Name
    """The institution's name; it names its topic on the bus."""
    chain: ChainConfig
    """[chain]: the institution's own chain."""
    l1: L1Config
    """[l1]: the settlement layer."""
    peers: tuple[PeerConfig, ...] = ()
    """[[peers]]: the chains this institution exchanges messages with."""
    batch: BatchConfig = Field(default_factory=BatchConfig)
    """[batch]: the batching policy."""
    store: StoreConfig
    """[store]: the database (the section may be left out)."""
    bus: BusConfig = Field(default_factory=BusConfig)
    """[bus]: the message bus."""
    admin: AdminConfig
    """[admin]: the admin API."""

    @model_validator(mode="after")
    def _force_after_settlement(self) -> InstitutionConfig:
        least = self.batch.max_wait_seconds + SETTLE_SECONDS
        found: list[tuple[tuple[str | int, ...], str]] = [
            (
                ("peers", index, "force_after_seconds"),
                f"{peer.force_after_seconds:g} s is too short: a message needs up to "
                f"batch.max_wait_seconds ({self.batch.max_wait_seconds:g} s) to be batched and about "
                f"{SETTLE_SECONDS:g} s more to be proven and settled before it can be forced; make it "
                f"at least {least:g} s",
            )
            for index, peer in enumerate(self.peers)
            if peer.force_after_seconds < least
        ]
        if found:
            raise located(found)
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_store_path(cls, data: Any) -> Any:
        if isinstance(data, dict):
            store = data.get("store", {})
            if isinstance(store, dict) and "path" not in store:
                name = data.get("institution")
                path = f"{name}.sqlite" if isinstance(name, str) else "relayer.sqlite"
                data = {**data, "store": {**store, "path": path}}
        return data

    @field_validator("l1")
    @classmethod
    def _l1_is_another_chain(cls, l1: L1Config, info: ValidationInfo) -> L1Config:
        chain = info.data.get("chain")
        if isinstance(chain, ChainConfig) and l1.chain_id == chain.chain_id:
            raise located([(("chain_id",), f"must differ from chain.chain_id (both are {l1.chain_id})")])
        return l1

    @field_validator("peers")
    @classmethod
    def _peers_are_distinct(
        cls, peers: tuple[PeerConfig, ...], info: ValidationInfo
    ) -> tuple[PeerConfig, ...]:
        users: dict[int, str] = {}  # chain id -> who has it
        if isinstance(chain := info.data.get("chain"), ChainConfig):
            users[chain.chain_id] = "this institution's chain (chain.chain_id)"
        if isinstance(l1 := info.data.get("l1"), L1Config):
            users.setdefault(l1.chain_id, "the L1 (l1.chain_id)")
        names: dict[str, int] = {}
        found: list[tuple[tuple[str | int, ...], str]] = []
        for index, peer in enumerate(peers):
            if peer.name == info.data.get("institution"):
                found.append(((index, "name"), f"{show(peer.name)} is this institution itself"))
            elif peer.name in names:
                found.append(
                    ((index, "name"), f"duplicate peer {show(peer.name)}: see peers[{names[peer.name]}]")
                )
            else:
                names[peer.name] = index
            if peer.chain_id in users:
                found.append(
                    ((index, "chain_id"), f"{peer.chain_id} is already used by {users[peer.chain_id]}")
                )
            else:
                users[peer.chain_id] = f"peers[{index}] ({show(peer.name)})"
        if found:
            raise located(found)
        return peers


# --- loading and reporting --------------------------------------------------------------------


def load(path: str | Path) -> InstitutionConfig:
    """Read and validate one institution's config file. Raises ConfigError with every problem found."""
    path = Path(path)
    data = read_toml(path, ConfigError)
    try:
        return InstitutionConfig.model_validate(
            data, context={"base_dir": path.resolve().parent, "path": path}
        )
    except ValidationError as exc:
        raise ConfigError(path, problems(exc, InstitutionConfig)) from None


def _env_state(name: str | None) -> str:
    return "set" if name and os.environ.get(name) else "not set"


def _rpc(chain: RpcChain) -> str:
    urls = chain.rpc_urls[0] + "".join(f", then {url}" for url in chain.rpc_urls[1:])
    plural = "" if chain.confirmations == 1 else "s"
    depth = f"{chain.confirmations} confirmation{plural}"
    final = (
        depth if chain.finality == "confirmations" else f"the node's {chain.finality} block (else {depth})"
    )
    return f"id {chain.chain_id}, final: {final}, {urls}"


def _allowed(values: tuple[str, ...], none: str) -> str:
    return "any" if values == (ANY,) else ", ".join(values) if values else none


def summary(config: InstitutionConfig) -> list[tuple[str, str]]:
    """(label, value) rows describing a loaded config, for `xrelay config check`. No secrets."""
    rows = [("institution", config.institution), ("chain", _rpc(config.chain))]
    contracts = config.chain.contracts
    rows += [
        (f"contract {name}", str(getattr(contracts, name)))
        for name in type(contracts).model_fields
        if getattr(contracts, name) is not None
    ]
    rows += [
        ("signer", config.chain.signer.describe()),
        ("l1", _rpc(config.l1)),
        ("l1 hub", config.l1.hub or "not set"),
        ("hub service", config.l1.hub_api or "not set"),
    ]
    rows += [
        (
            f"peer {peer.name}",
            f"chain {peer.chain_id}; assets: {_allowed(peer.allowed_assets, 'none (value refused)')}; "
            f"targets: {_allowed(peer.allowed_targets, 'none')}; at most {peer.rate_limit_per_minute}/min; "
            f"forced through L1 after {peer.force_after_seconds:g} s",
        )
        for peer in config.peers
    ] or [("peers", "none")]
    bus = config.bus
    bus_text = bus.url or "embedded broker (127.0.0.1:1883)"
    if bus.username_env:
        bus_text += f", user in {bus.username_env} ({_env_state(bus.username_env)})"
    if bus.client_cert:
        bus_text += f", client certificate {bus.client_cert}"
    admin = config.admin
    rows += [
        (
            "batch",
            f"capacities {', '.join(map(str, config.batch.capacities))}; closes when full, when the "
            f"prover is idle, or at {config.batch.max_wait_seconds:g} s",
        ),
        ("keys", str(config.batch.keys_dir)),
        ("store", str(config.store.path)),
        ("bus", bus_text),
        (
            "bus key",
            bus.key.describe() if bus.key else "none: the daemon needs [bus.key] (xrelay bus-key new)",
        ),
        *([("bus previous key", bus.previous_key.describe())] if bus.previous_key else []),
        ("admin", f"{admin.listen}, token in {admin.token_env} ({_env_state(admin.token_env)})"),
    ]
    return rows
