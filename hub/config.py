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
    # users = "bus/credentials.json"       #   with listen: the logins it admits (hub.broker.write_users:
                                           #   each bound to its client id, with its topics); the service
                                           #   logs in as "hub". Unset: it admits anyone (tests only)

`load(path)` validates the whole file and raises `HubConfigError` listing every problem with its
dotted key ("l1.rpc_urls[1]"), as relayer/config.py does for an institution's file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.bus import BusTls
from hub.config_fields import (
    Address,
    ChainId,
    ConfigProblems,
    Confirmations,
    EnvName,
    Listen,
    Section,
    check_database_path,
    check_distinct_urls,
    check_existing_file,
    check_url,
    host_port,
    problems,
    read_toml,
)


class HubConfigError(ConfigProblems):
    """Every problem found in one hub config file: (dotted key, message) pairs in `problems`."""


class L1Section(Section):
    chain_id: ChainId
    rpc_urls: tuple[Annotated[str, AfterValidator(lambda v: check_url(v, ("http", "https")))], ...]
    confirmations: Confirmations = 1
    hub: Address
    start_block: Annotated[StrictInt, Field(ge=0)] = 0
    block_range: Annotated[StrictInt, Field(ge=1, le=100_000)] = 2000
    poll_interval: Annotated[StrictFloat | StrictInt, Field(gt=0, le=3600)] = 2.0

    _some_distinct = field_validator("rpc_urls")(check_distinct_urls)


class ApiSection(Section):
    listen: Listen = "127.0.0.1:8700"

    @property
    def host_port(self) -> tuple[str, int]:
        return host_port(self.listen)


class StoreSection(Section):
    path: Path = Field(default=Path("hub.sqlite"), validate_default=True)

    _folder_exists = field_validator("path")(check_database_path)


class BusSection(Section):
    url: Annotated[str, AfterValidator(lambda v: check_url(v, ("mqtt", "mqtts")))] | None = None
    listen: Listen | None = None
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_cert: Path | None = None
    users: Path | None = None

    _files_exist = field_validator("client_cert", "client_key", "ca_cert", "users")(check_existing_file)

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
                    f"{', '.join(extra)} only go with url: the embedded broker is plain, and the service "
                    "logs in to it as the users file's hub"
                )
        elif self.users is not None:
            raise ValueError("users only goes with listen: a shared broker keeps its own logins")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        assert self.listen is not None
        return host_port(self.listen)

    def credentials(self) -> tuple[str | None, str | None]:
        """The broker user name and password, read from their environment variables now."""
        username = os.environ.get(self.username_env) if self.username_env else None
        password = os.environ.get(self.password_env) if self.password_env else None
        return username, password

    def tls(self) -> BusTls | None:
        if self.url is None or not self.url.startswith("mqtts:"):
            return None
        return BusTls(ca_cert=self.ca_cert, client_cert=self.client_cert, client_key=self.client_key)


class HubConfig(Section):
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
    return parse(read_toml(path, HubConfigError), base_dir=path.resolve().parent, path=path)


def parse(data: dict[str, Any], *, base_dir: Path, path: Path = Path("<config>")) -> HubConfig:
    """Validate a config already read (relative paths taken from `base_dir`)."""
    try:
        return HubConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise HubConfigError(path, problems(exc, HubConfig)) from None
