"""The hub service's config file, `xrelay hub run -c hub.toml`:

    [l1]
    chain_id = 900
    rpc_urls = ["http://127.0.0.1:8545"]   # tried in order: the next when one fails
    confirmations = 1                      # blocks below the head before an event is indexed
    hub = "0x..."                          # the L1 Hub contract
    start_block = 0                        # where a fresh store starts: the Hub's deployment block
    block_range = 2000                     # blocks per eth_getLogs request
    poll_interval = 2.0                    # seconds between polls of the L1

    [api]
    listen = "127.0.0.1:8700"

    [store]
    path = "hub.sqlite"                    # relative to this file; its folder must exist

    [bus]                                  # exactly one of:
    url = "mqtts://broker.example:8883"    #   a shared broker (with username_env, password_env,
                                           #   client_cert + client_key, ca_cert as needed)
    # listen = "127.0.0.1:1883"            #   or an embedded broker (devnet), the service publishing
                                           #   through it

`load(path)` validates the whole file and raises `HubConfigError` listing every problem with its
dotted key ("l1.rpc_urls[1]"), as relayer/config.py does for an institution's file.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from web3 import Web3

from hub.bus import BusTls

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


class HubConfigError(ValueError):
    """Every problem found in one hub config file: (dotted key, message) pairs in `problems`."""

    def __init__(self, path: Path, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(
            "\n".join(f"{path}: {key}: {msg}" if key else f"{path}: {msg}" for key, msg in problems)
        )


def _show(value: object) -> str:
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise ValueError(f"{_show(value)} is not a valid URL: {exc}") from None
    if parts.scheme not in schemes:
        raise ValueError(f"{_show(value)}: the scheme must be {' or '.join(schemes)}")
    if not parts.hostname:
        raise ValueError(f"{_show(value)} has no host")
    return value


def _check_address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{_show(value)} is not an address: expected 0x followed by 40 hex digits")
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not Web3.is_checksum_address(value):
        raise ValueError(f"{_show(value)} is mixed-case but not a valid EIP-55 checksum address")
    return str(Web3.to_checksum_address(value))


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{_show(value)} is not an environment variable name (A-Z, 0-9, _)")
    return value


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
            raise ValueError(f"{_show(value)}: put an IPv6 address in brackets, e.g. [::1]:8700")
    if not sep or not host:
        raise ValueError(f"{_show(value)}: expected host:port, e.g. 127.0.0.1:8700")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ValueError(f"{_show(value)}: the port must be a number from 1 to 65535")
    return value


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    return (Path(base or Path.cwd()) / path.expanduser()).resolve()


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


_Listen = Annotated[str, AfterValidator(_check_listen)]
_EnvName = Annotated[str, AfterValidator(_check_env_name)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class L1Section(_Section):
    chain_id: Annotated[StrictInt, Field(gt=0)]
    rpc_urls: tuple[Annotated[str, AfterValidator(lambda v: _check_url(v, ("http", "https")))], ...]
    confirmations: Annotated[StrictInt, Field(ge=0, le=1000)] = 1
    hub: Annotated[str, AfterValidator(_check_address)]
    start_block: Annotated[StrictInt, Field(ge=0)] = 0
    block_range: Annotated[StrictInt, Field(ge=1, le=100_000)] = 2000
    poll_interval: Annotated[StrictFloat | StrictInt, Field(gt=0, le=3600)] = 2.0

    @field_validator("rpc_urls")
    @classmethod
    def _some_distinct(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        if not urls:
            raise ValueError("must list at least one URL")
        for index, url in enumerate(urls):
            if url in urls[:index]:
                raise ValueError(f"{_show(url)} is listed twice")
        return urls


class ApiSection(_Section):
    listen: _Listen = "127.0.0.1:8700"

    @property
    def host_port(self) -> tuple[str, int]:
        return _host_port(self.listen)


class StoreSection(_Section):
    path: Path = Field(default=Path("hub.sqlite"), validate_default=True)

    @field_validator("path")
    @classmethod
    def _folder_exists(cls, value: Path, info: ValidationInfo) -> Path:
        path = _resolve(value, info)
        if path.is_dir():
            raise ValueError(f"{path} is a folder: name the database file")
        if not path.parent.is_dir():
            raise ValueError(f"the folder {path.parent} does not exist")
        return path


class BusSection(_Section):
    url: Annotated[str, AfterValidator(lambda v: _check_url(v, ("mqtt", "mqtts")))] | None = None
    listen: _Listen | None = None
    username_env: _EnvName | None = None
    password_env: _EnvName | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_cert: Path | None = None

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
    def _one_way(self) -> BusSection:
        if (self.url is None) == (self.listen is None):
            raise ValueError(
                "set exactly one of url (a broker: mqtt:// or mqtts://) "
                "or listen (an embedded broker: host:port)"
            )
        if self.listen is not None:
            extra = [
                k
                for k in ("username_env", "password_env", "client_cert", "client_key", "ca_cert")
                if getattr(self, k)
            ]
            if extra:
                raise ValueError(
                    f"{', '.join(extra)} only go with url: the embedded broker is plain and anonymous"
                )
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        assert self.listen is not None
        return _host_port(self.listen)

    def credentials(self) -> tuple[str | None, str | None]:
        """The broker user name and password, read from their environment variables now."""
        username = os.environ.get(self.username_env) if self.username_env else None
        password = os.environ.get(self.password_env) if self.password_env else None
        return username, password

    def tls(self) -> BusTls | None:
        if self.url is None or not self.url.startswith("mqtts:"):
            return None
        return BusTls(ca_cert=self.ca_cert, client_cert=self.client_cert, client_key=self.client_key)


class HubConfig(_Section):
    l1: L1Section
    api: ApiSection = Field(default_factory=ApiSection)
    store: StoreSection
    bus: BusSection

    @model_validator(mode="before")
    @classmethod
    def _default_store(cls, data: Any) -> Any:
        # validated like a written one, so that the default path is taken from the file's folder
        return {"store": {}, **data} if isinstance(data, dict) else data


def load(path: str | Path) -> HubConfig:
    """Read and validate a hub config file; HubConfigError lists every problem found."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise HubConfigError(path, [("", "no such file")]) from None
    except OSError as exc:
        raise HubConfigError(path, [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HubConfigError(path, [("", f"invalid TOML: {exc}")]) from None
    return parse(data, base_dir=path.resolve().parent, path=path)


def parse(data: dict[str, Any], *, base_dir: Path, path: Path = Path("<config>")) -> HubConfig:
    """Validate a config already read (relative paths taken from `base_dir`)."""
    try:
        return HubConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise HubConfigError(
            path, [(_key(d["loc"]), _message(d)) for d in exc.errors(include_url=False)]
        ) from None


def _key(loc: tuple[str | int, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else part
    return key


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "tuple_type": "an array",
    "model_type": "a table",
    "path_type": "a path (a string)",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than_equal": ("le", "at most"),
}


def _message(details: ErrorDetails) -> str:
    kind, value, ctx, loc = details["type"], details["input"], details.get("ctx", {}), details["loc"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        section = _section(loc[:-1])
        known = list(section.model_fields) if section else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        return f"unknown key '{loc[-1]}' " + (
            f"(did you mean '{close[0]}'?)" if close else f"(known: {', '.join(known)})"
        )
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_show(value)}"
    if kind in _BOUNDS:
        bound, words = _BOUNDS[kind]
        return f"must be {words} {ctx[bound]}, not {_show(value)}"
    return details["msg"].removeprefix("Value error, ")


def _section(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = HubConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
