"""What the institution config (relayer/config.py) and the hub service's config (hub/config.py) share.

Field checkers (addresses, URLs, environment variable names, listen addresses, paths taken from the
config file's folder), the pydantic-annotated field types built on them, and the machinery that
turns a pydantic `ValidationError` into located problems: (dotted key, message) pairs such as
("peers[1].chain_id", "must be greater than 0, not 0"), with suggestions for misspelt keys and
values named by their TOML type. It lives in hub/ because imports run relayer -> hub, never back.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails, PydanticCustomError
from web3 import Web3

ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
"""An environment variable name."""
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
"""An Ethereum address, in any case."""


class ConfigProblems(ValueError):
    """Every problem found in one config file: (dotted key, message) pairs, one line each in str()."""

    def __init__(self, path: Path, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(
            "\n".join(
                f"{path}: {key}: {message}" if key else f"{path}: {message}" for key, message in problems
            )
        )


class Section(BaseModel):
    """A TOML table: unknown keys refused, frozen once loaded, attribute docstrings as descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# --- values -----------------------------------------------------------------------------------


def show(value: object) -> str:
    """A value as a TOML file would spell it, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def either(options: tuple[str, ...]) -> str:
    """("a", "b", "c") as "a, b or c"."""
    return ", ".join(options[:-1]) + " or " + options[-1]


def check_env_name(value: str) -> str:
    """`value` if it is a valid environment variable name."""
    if not ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{show(value)} is not a valid environment variable name: use upper-case letters, "
            "digits and '_', not starting with a digit"
        )
    return value


def check_address(value: str) -> str:
    """`value` checksummed, if it is an address (lower, upper or valid EIP-55 mixed case)."""
    if not ADDRESS.fullmatch(value):
        raise ValueError(f"{show(value)} is not an address: expected 0x followed by 40 hex digits")
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not Web3.is_checksum_address(value):
        raise ValueError(
            f"{show(value)} is mixed-case but not a valid EIP-55 checksum address: check it for a typo"
        )
    return str(Web3.to_checksum_address(value))


def check_url(value: str, schemes: tuple[str, ...]) -> str:
    """`value` if it is a URL with one of `schemes` and a host."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise ValueError(f"{show(value)} is not a valid URL: {exc}") from None
    if parts.scheme not in schemes:
        given = f"scheme '{parts.scheme}'" if parts.scheme else "no scheme"
        raise ValueError(f"{show(value)} has {given}: expected {either(schemes)}")
    if not parts.hostname:
        raise ValueError(f"{show(value)} has no host")
    return value


def check_distinct_urls(urls: tuple[str, ...]) -> tuple[str, ...]:
    """`urls` if there is at least one and none is listed twice."""
    if not urls:
        raise ValueError("must list at least one URL")
    for index, url in enumerate(urls):
        if url in urls[:index]:
            raise ValueError(f"{show(url)} is listed twice")
    return urls


def check_listen(value: str) -> str:
    """`value` if it is host:port ([v6 address]:port for IPv6)."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{show(value)}: {host!r} in brackets is not an IPv6 address") from None
    else:
        host, sep, port = value.rpartition(":")
        if ":" in host:
            raise ValueError(f"{show(value)}: put an IPv6 address in brackets, e.g. [::1]:8701")
    if not sep or not host:
        raise ValueError(f"{show(value)}: expected host:port, e.g. 127.0.0.1:8701 ([::1]:8701 for IPv6)")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ValueError(f"{show(value)}: the port must be a number from 1 to 65535")
    return value


def host_port(listen: str) -> tuple[str, int]:
    """A checked listen address as (host, port), an IPv6 host without its brackets."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def resolve(path: Path, info: ValidationInfo) -> Path:
    """`path` made absolute against the config file's folder (the working directory without one)."""
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    return (Path(base or Path.cwd()) / path.expanduser()).resolve()


def check_database_path(value: Path, info: ValidationInfo) -> Path:
    """`value` resolved, if it names a file (not a folder) in a folder that exists."""
    path = resolve(value, info)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: name the database file")
    if not path.parent.is_dir():
        raise ValueError(f"the folder {path.parent} does not exist")
    return path


def check_existing_file(value: Path | None, info: ValidationInfo) -> Path | None:
    """`value` resolved, if it is unset or names a file that exists."""
    if value is None:
        return None
    path = resolve(value, info)
    if not path.is_file():
        raise ValueError(f"file {path} does not exist")
    return path


EnvName = Annotated[str, AfterValidator(check_env_name)]
"""An environment variable's name."""
Address = Annotated[str, AfterValidator(check_address)]
"""An address, checksummed once loaded."""
Listen = Annotated[str, AfterValidator(check_listen)]
"""host:port to listen on."""
ChainId = Annotated[StrictInt, Field(gt=0)]
"""An EIP-155 chain id."""
Confirmations = Annotated[StrictInt, Field(ge=0, le=1000)]
"""Blocks to wait past an event's block, 0 to 1000."""


# --- reading and reporting --------------------------------------------------------------------


def read_toml(path: Path, error: type[ConfigProblems]) -> dict[str, Any]:
    """The TOML file at `path`; raises `error` with one whole-file problem if it cannot be had."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise error(path, [("", "no such file")]) from None
    except OSError as exc:
        raise error(path, [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise error(path, [("", "invalid TOML: the file is not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise error(path, [("", f"invalid TOML: {exc}")]) from None


def located(problems: list[tuple[tuple[str | int, ...], str]]) -> PydanticCustomError:
    """An error for keys below the one being validated, which `problems` expands one per key."""
    # pydantic puts a validator's error at its own key
    text = "; ".join(f"{key(where)}: {said}" for where, said in problems)
    return PydanticCustomError("located", "{text}", {"text": text, "problems": problems})


def problems(error: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """`error`, raised validating the model `root`, as (dotted key, message) pairs."""
    found: list[tuple[str, str]] = []
    for details in error.errors(include_url=False):
        loc = tuple(details["loc"])
        if details["type"] == "located":
            found += [(key(loc + tuple(where)), said) for where, said in details["ctx"]["problems"]]
        else:
            found.append((key(loc), message(details, root)))
    return found


def key(loc: tuple[str | int, ...]) -> str:
    """pydantic's ("peers", 1, "chain_id") as "peers[1].chain_id"."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


EXPECTED = {
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
"""What a pydantic type error's kind expected, in TOML's words."""

BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}
"""A pydantic bound error's kind: (its context key, its words)."""


def message(details: ErrorDetails, root: type[BaseModel]) -> str:
    """One pydantic error, in a model under `root`, in a TOML file's terms."""
    kind, value, ctx = details["type"], details["input"], details.get("ctx", {})
    loc = tuple(details["loc"])
    if kind == "missing":
        return "required section is missing" if section_at(loc, root) else "required key is missing"
    if kind == "extra_forbidden":
        section = section_at(loc[:-1], root)
        known = list(section.model_fields) if section else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(known)
        return f"unknown key '{loc[-1]}' ({hint})"
    if kind in EXPECTED:
        return f"expected {EXPECTED[kind]}, got {toml_type(value)}"
    if kind in BOUNDS:
        bound, words = BOUNDS[kind]
        return f"must be {words} {ctx[bound]}, not {show(value)}"
    return details["msg"].removeprefix("Value error, ")


def toml_type(value: object) -> str:
    """What a value read from TOML is, with the value where short: 'an integer (3)'."""
    if isinstance(value, bool):
        return f"a boolean ({show(value)})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        return f"a string ({show(value)})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return f"a date/time ({value.isoformat()})"
    return type(value).__name__


def section_at(loc: tuple[str | int, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The model of the TOML section at `loc` below `root`, or None if `loc` is not a section."""
    model = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        found = model_in(field.annotation) if field else None
        if found is None:
            return None
        model = found
    return model


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class in a field's annotation (itself, or inside Optional, tuple, ...), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := model_in(arg)) is not None:
            return found
    return None
