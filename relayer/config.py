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

import difflib
import ipaddress
import json
import os
import re
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, get_args
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from web3 import Web3

from bridge_contracts.anvil import DEV_ACCOUNT_COUNT, dev_account

ANY = "*"
"""In allowed_assets or allowed_targets: anything is allowed."""

_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_ASSET_ID = re.compile(r"0x[0-9a-fA-F]{64}")
_PLAIN_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_SIGNER_FORMS = ("env", "keystore", "devnet_account")

_PLAIN_KEY_REFUSED = (
    "plain private keys are never accepted in a config file: name the key's environment variable "
    "(env = ...), an encrypted keystore (keystore = ... with password_env = ...), or, on a devnet "
    "only, one of anvil's public dev accounts (devnet_account = 0-9)"
)


class ConfigError(ValueError):
    """Every problem found in one config file.

    `problems` holds (key, message) pairs: key is a dotted path such as "peers[1].chain_id", or ""
    for a problem with the whole file (missing, not TOML). str() gives one line per problem.
    """

    def __init__(self, path: Path, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(
            "\n".join(
                f"{path}: {key}: {message}" if key else f"{path}: {message}" for key, message in problems
            )
        )


# --- values -----------------------------------------------------------------------------------


def _show(value: object) -> str:
    """A value as a TOML file would spell it, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _either(options: tuple[str, ...]) -> str:
    return ", ".join(options[:-1]) + " or " + options[-1]


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{_show(value)} is not a valid name: use 1 to 63 lower-case letters, digits and '-', "
            "starting with a letter"
        )
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{_show(value)} is not a valid environment variable name: use upper-case letters, "
            "digits and '_', not starting with a digit"
        )
    return value


def _check_address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{_show(value)} is not an address: expected 0x followed by 40 hex digits")
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not Web3.is_checksum_address(value):
        raise ValueError(
            f"{_show(value)} is mixed-case but not a valid EIP-55 checksum address: check it for a typo"
        )
    return str(Web3.to_checksum_address(value))


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise ValueError(f"{_show(value)} is not a valid URL: {exc}") from None
    if parts.scheme not in schemes:
        given = f"scheme '{parts.scheme}'" if parts.scheme else "no scheme"
        raise ValueError(f"{_show(value)} has {given}: expected {_either(schemes)}")
    if not parts.hostname:
        raise ValueError(f"{_show(value)} has no host")
    return value


def _check_rpc_url(value: str) -> str:
    return _check_url(value, ("http", "https", "ws", "wss"))


def _check_asset(value: str) -> str:
    if value == ANY:
        return value
    if not _ASSET_ID.fullmatch(value):
        raise ValueError(f'{_show(value)} is not an asset id: expected "*" or 0x followed by 64 hex digits')
    return value.lower()


def _check_target(value: str) -> str:
    return value if value == ANY else _check_address(value)


def _check_listen(value: str) -> str:
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{_show(value)}: {host!r} in brackets is not an IPv6 address") from None
    else:
        host, sep, port = value.rpartition(":")
        if ":" in host:
            raise ValueError(f"{_show(value)}: put an IPv6 address in brackets, e.g. [::1]:8701")
    if not sep or not host:
        raise ValueError(f"{_show(value)}: expected host:port, e.g. 127.0.0.1:8701 ([::1]:8701 for IPv6)")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ValueError(f"{_show(value)}: the port must be a number from 1 to 65535")
    return value


def _resolve(path: Path, info: ValidationInfo) -> Path:
    """`path` made absolute against the config file's folder (the working directory without one)."""
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    return (Path(base or Path.cwd()) / path.expanduser()).resolve()


def _located(problems: list[tuple[tuple[str | int, ...], str]]) -> PydanticCustomError:
    """An error for keys below the one being validated (pydantic puts a validator's error at its own
    key); `load` expands it into one problem per key."""
    text = "; ".join(f"{_key(where)}: {message}" for where, message in problems)
    return PydanticCustomError("located", "{text}", {"text": text, "problems": problems})


_Name = Annotated[str, AfterValidator(_check_name)]
_EnvName = Annotated[str, AfterValidator(_check_env_name)]
_Address = Annotated[str, AfterValidator(_check_address)]
_ChainId = Annotated[StrictInt, Field(gt=0)]
_Confirmations = Annotated[StrictInt, Field(ge=0, le=1000)]
_RpcUrl = Annotated[str, AfterValidator(_check_rpc_url)]


# --- sections ---------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ContractsConfig(_Section):
    """[chain.contracts]: where xrelay's contracts live on the institution's chain."""

    asset_router: _Address
    """The AssetRouter contract, which locks, mints and releases value-carrying messages."""
    outbox: _Address
    """The Outbox contract, where every message leaving the chain is numbered, hashed and emitted."""
    inbox: _Address | None = None
    """The Inbox contract, which imports L1's aggregated roots and executes proven messages; the
    daemon needs it to receive."""


class SignerConfig(_Section):
    """[chain.signer]: where the operator's key comes from; exactly one of env, keystore (with
    password_env) or devnet_account. A plain private key in the file is refused."""

    env: _EnvName | None = None
    """The environment variable holding the private key (hex), read when the daemon starts."""
    keystore: Path | None = None
    """An encrypted Ethereum keystore (V3) file, relative to the config file; it must exist."""
    password_env: _EnvName | None = None
    """With keystore, and only with it: the environment variable holding the keystore's password."""
    devnet_account: StrictInt | None = None
    """anvil's well-known development account 0-9. DEVNET ONLY: its key is public."""

    _config_path: Path | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        if isinstance(context, dict) and isinstance(context.get("path"), Path):
            self._config_path = context["path"]

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

    @field_validator("keystore")
    @classmethod
    def _keystore_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = _resolve(value, info)
        if not path.is_file():
            raise ValueError(f"keystore file {path} does not exist")
        return path

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
            raise _located([(("password_env",), "required with keystore: the variable holding its password")])
        if self.keystore is None and self.password_env is not None:
            raise _located([(("password_env",), "only used with keystore")])
        return self

    def resolve(self) -> LocalAccount:
        """The operator's account, its key read now. Raises ConfigError if the key cannot be had."""
        if self.devnet_account is not None:
            return dev_account(self.devnet_account)
        if self.keystore is not None and self.password_env is not None:
            password = self._read_env(self.password_env, "password_env")
            try:
                keyfile = json.loads(self.keystore.read_text())
            except (OSError, ValueError) as exc:
                raise self._error("keystore", f"cannot read keystore {self.keystore}: {exc}") from None
            try:
                key = Account.decrypt(keyfile, password)
            except Exception:
                raise self._error(
                    "keystore",
                    f"cannot decrypt keystore {self.keystore} with the password in {self.password_env} "
                    "(wrong password, or not a V3 keystore)",
                ) from None
            keystore_account: LocalAccount = Account.from_key(key)
            return keystore_account
        assert self.env is not None  # validation guarantees one form
        value = self._read_env(self.env, "env")
        try:
            account: LocalAccount = Account.from_key(value.strip())
        except Exception:  # never echo the value: it is meant to be a secret
            raise self._error(
                "env", f"environment variable {self.env} does not hold a private key (64 hex digits)"
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

    def _read_env(self, name: str, key: str) -> str:
        value = os.environ.get(name, "")
        if not value:
            raise self._error(key, f"environment variable {name} is not set")
        return value

    def _error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self._config_path or Path("<config>"), [(f"chain.signer.{key}", message)])


class _RpcChain(_Section):
    """A chain reached over JSON-RPC."""

    chain_id: _ChainId
    """The chain's EIP-155 chain id."""
    rpc_urls: tuple[_RpcUrl, ...]
    """JSON-RPC endpoints (http, https, ws or wss), tried in this order: the next on failure."""
    confirmations: _Confirmations = 1
    """How many blocks to wait past an event's block before acting on it (0 to 1000)."""

    @field_validator("rpc_urls")
    @classmethod
    def _some_distinct_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        if not urls:
            raise ValueError("must list at least one URL")
        for index, url in enumerate(urls):
            if url in urls[:index]:
                raise ValueError(f"{_show(url)} is listed twice")
        return urls


class ChainConfig(_RpcChain):
    """[chain]: the institution's own ZK chain."""

    contracts: ContractsConfig
    """[chain.contracts]: xrelay's contracts on this chain."""
    signer: SignerConfig
    """[chain.signer]: the operator key that sends this institution's transactions."""


class L1Config(_RpcChain):
    """[l1]: the settlement layer all the institutions' chains settle to."""

    hub: _Address | None = None
    """The L1 Hub contract, where batches settle; the daemon needs it to run."""
    hub_api: str | None = None
    """The hub service's HTTP API (http://host:port), which serves aggregated-tree proofs; the
    daemon needs it to receive."""

    @field_validator("hub_api")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value, ("http", "https"))


class PeerConfig(_Section):
    """[[peers]]: a chain this institution exchanges messages with, and what it accepts from it."""

    name: _Name
    """The peer institution's name, as in its own config's `institution`."""
    chain_id: _ChainId
    """The peer's chain id."""
    allowed_assets: tuple[Annotated[str, AfterValidator(_check_asset)], ...] = ()
    """Asset ids (0x + 64 hex digits) the peer may send value in, or ["*"] for any; [] refuses value."""
    allowed_targets: tuple[Annotated[str, AfterValidator(_check_target)], ...] = (ANY,)
    """Addresses on this chain the peer's messages may call, or ["*"] for any."""
    rate_limit_per_minute: Annotated[StrictInt, Field(gt=0)] = 600
    """The most messages accepted from this peer in one minute."""

    @field_validator("allowed_assets", "allowed_targets")
    @classmethod
    def _any_stands_alone(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if ANY in values and len(values) > 1:
            raise ValueError('"*" (any) cannot be mixed with other entries: write ["*"] alone, or list them')
        return values


class BatchConfig(_Section):
    """[batch]: when a batch of outgoing messages closes."""

    capacity: StrictInt = 16
    """Messages per batch: a power of two from 8 to 1024. A batch closes when full..."""
    max_wait_seconds: StrictFloat = Field(default=5.0, gt=0, le=3600)
    """...or this many seconds after its first message, whichever comes first."""
    keys_dir: Path = Field(default=Path("keys"), validate_default=True)
    """The folder of the batch circuit's keys, relative to the config file: batch-<capacity>.zkey
    (this chain's proving key) and batch-<capacity>.vk.json (the verifying key of each capacity
    peers prove with)."""

    @field_validator("keys_dir")
    @classmethod
    def _resolved(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)

    @field_validator("capacity")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if not 8 <= value <= 1024 or value & (value - 1):
            raise ValueError(f"must be a power of two from 8 to 1024 (8, 16, 32, ...), not {value}")
        return value


class StoreConfig(_Section):
    """[store]: the daemon's SQLite database."""

    path: Path
    """The database file (default "<institution>.sqlite"), relative to the config file; its folder
    must exist."""

    @field_validator("path")
    @classmethod
    def _folder_exists(cls, value: Path, info: ValidationInfo) -> Path:
        path = _resolve(value, info)
        if path.is_dir():
            raise ValueError(f"{path} is a folder: name the database file")
        if not path.parent.is_dir():
            raise ValueError(f"the folder {path.parent} does not exist")
        return path


class BusConfig(_Section):
    """[bus]: the MQTT broker the institutions' daemons talk through."""

    url: str | None = None
    """mqtt://host[:port] or mqtts://host[:port]; unset, the daemon runs an embedded broker on
    127.0.0.1:1883 (a single institution trying things out; the devnet's daemons share the broker
    the hub service embeds)."""
    username_env: _EnvName | None = None
    """The environment variable holding the broker user name."""
    password_env: _EnvName | None = None
    """The environment variable holding the broker password."""
    client_cert: Path | None = None
    """TLS client certificate (PEM), relative to the config file; with client_key."""
    client_key: Path | None = None
    """The client certificate's private key (PEM), relative to the config file."""
    ca_cert: Path | None = None
    """CA certificate(s) (PEM) to trust for the broker, relative to the config file."""

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value, ("mqtt", "mqtts"))

    @field_validator("client_cert", "client_key", "ca_cert")
    @classmethod
    def _file_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = _resolve(value, info)
        if not path.is_file():
            raise ValueError(f"file {path} does not exist")
        return path

    @model_validator(mode="after")
    def _cert_with_key(self) -> BusConfig:
        if self.client_cert is not None and self.client_key is None:
            raise _located([(("client_key",), "required with client_cert")])
        if self.client_key is not None and self.client_cert is None:
            raise _located([(("client_cert",), "required with client_key")])
        return self


class AdminConfig(_Section):
    """[admin]: the daemon's HTTP admin API."""

    listen: Annotated[str, AfterValidator(_check_listen)]
    """host:port to listen on ([::1]:8701 for IPv6); keep it on loopback unless fronted by a proxy."""
    token_env: _EnvName
    """The environment variable holding the bearer token the admin API requires."""

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class InstitutionConfig(_Section):
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
            raise _located([(("chain_id",), f"must differ from chain.chain_id (both are {l1.chain_id})")])
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
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for index, peer in enumerate(peers):
            if peer.name == info.data.get("institution"):
                problems.append(((index, "name"), f"{_show(peer.name)} is this institution itself"))
            elif peer.name in names:
                problems.append(
                    ((index, "name"), f"duplicate peer {_show(peer.name)}: see peers[{names[peer.name]}]")
                )
            else:
                names[peer.name] = index
            if peer.chain_id in users:
                problems.append(
                    ((index, "chain_id"), f"{peer.chain_id} is already used by {users[peer.chain_id]}")
                )
            else:
                users[peer.chain_id] = f"peers[{index}] ({_show(peer.name)})"
        if problems:
            raise _located(problems)
        return peers


# --- loading and reporting --------------------------------------------------------------------


def load(path: str | Path) -> InstitutionConfig:
    """Read and validate one institution's config file. Raises ConfigError with every problem found."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(path, [("", "no such file")]) from None
    except OSError as exc:
        raise ConfigError(path, [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, [("", "invalid TOML: the file is not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [("", f"invalid TOML: {exc}")]) from None
    try:
        return InstitutionConfig.model_validate(
            data, context={"base_dir": path.resolve().parent, "path": path}
        )
    except ValidationError as exc:
        raise ConfigError(path, _problems(exc)) from None


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for details in error.errors(include_url=False):
        loc = tuple(details["loc"])
        if details["type"] == "located":
            problems += [(_key(loc + tuple(where)), message) for where, message in details["ctx"]["problems"]]
        else:
            problems.append((_key(loc), _message(details)))
    return problems


def _key(loc: tuple[str | int, ...]) -> str:
    """pydantic's ("peers", 1, "chain_id") as "peers[1].chain_id"."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else part
    return key


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "tuple_type": "an array",
    "list_type": "an array",
    "model_type": "a table",
    "dict_type": "a table",
    "path_type": "a path (a string)",
}

_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _message(details: ErrorDetails) -> str:
    kind, value, ctx = details["type"], details["input"], details.get("ctx", {})
    loc = tuple(details["loc"])
    if kind == "missing":
        return "required section is missing" if _section_at(loc) else "required key is missing"
    if kind == "extra_forbidden":
        section = _section_at(loc[:-1])
        known = list(section.model_fields) if section else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(known)
        return f"unknown key '{loc[-1]}' ({hint})"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_toml_type(value)}"
    if kind in _BOUNDS:
        bound, words = _BOUNDS[kind]
        return f"must be {words} {ctx[bound]}, not {_show(value)}"
    return details["msg"].removeprefix("Value error, ")


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({_show(value)})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return f"a date/time ({value.isoformat()})"
    return type(value).__name__


def _section_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model of the TOML section at `loc`, or None if `loc` is not a section."""
    model: type[BaseModel] = InstitutionConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        found = _model_in(field.annotation) if field else None
        if found is None:
            return None
        model = found
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _env_state(name: str | None) -> str:
    return "set" if name and os.environ.get(name) else "not set"


def _rpc(chain: _RpcChain) -> str:
    urls = chain.rpc_urls[0] + "".join(f", then {url}" for url in chain.rpc_urls[1:])
    plural = "" if chain.confirmations == 1 else "s"
    return f"id {chain.chain_id}, {chain.confirmations} confirmation{plural}, {urls}"


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
            f"targets: {_allowed(peer.allowed_targets, 'none')}; at most {peer.rate_limit_per_minute}/min",
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
        ("batch", f"{config.batch.capacity} messages or {config.batch.max_wait_seconds:g} s, first reached"),
        ("keys", str(config.batch.keys_dir)),
        ("store", str(config.store.path)),
        ("bus", bus_text),
        ("admin", f"{admin.listen}, token in {admin.token_env} ({_env_state(admin.token_env)})"),
    ]
    return rows
