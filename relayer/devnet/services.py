"""The devnet's long-running services as separate processes: the hub service and one daemon per
institution, each started with its config from the devnet's state directory and logging to
`<state_dir>/logs/<name>.log`, with its bus login (from the devnet's credentials file) in the
environment variables its config names. Used by `make demo` and the end-to-end tests, which also kill and
restart daemons (SIGKILL included) to check that nothing is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from hub.broker import BusUser
from hub.envelope import HUB_SENDER
from relayer.devnet.devnet import DevnetError, read_manifest
from relayer.devnet.mosquitto import bus_logins


@dataclass
class Service:
    name: str
    argv: list[str]
    log_path: Path
    ready_url: str
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 180.0) -> None:
        """Start the process and wait until its HTTP API answers."""
        self.launch()
        self.wait_ready(timeout=timeout)

    def launch(self) -> None:
        """Start the process and return at once, before it answers (`wait_ready` waits for that): the
        chaos test kills some daemons while they are still starting."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )

    def wait_ready(self, *, timeout: float = 180.0) -> None:
        """Wait until the launched process's HTTP API answers; stop it and raise DevnetError if it
        exits or does not answer within `timeout`."""
        assert self.process is not None, f"{self.name} was not launched"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DevnetError(
                    f"{self.name} exited with code {self.process.returncode}: see {self.log_path}"
                )
            try:
                if requests.get(self.ready_url, headers=self.headers, timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise DevnetError(
            f"{self.name} did not answer on {self.ready_url} within {timeout:.0f} s: see {self.log_path}"
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code (None if it was not running)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL to the service and its children (the prover pool): no chance to clean up, as when
        a machine loses power."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # it leads a session of its own
            self.process.wait()


def admin_token(name: str) -> str:
    """The devnet's admin token for an institution (DEVNET ONLY: derived from its name)."""
    return f"devnet-{name}-admin-token"


def _bus_env(entry: dict[str, Any], name: str, logins: dict[str, BusUser]) -> dict[str, str]:
    """The environment variables a service's config reads its bus login from, set to its login."""
    login = logins.get(name)
    if login is None or "bus_username_env" not in entry or login.password is None:
        return {}
    return {entry["bus_username_env"]: name, entry["bus_password_env"]: login.password}


class Services:
    """The hub service and every institution's daemon of a devnet that is up."""

    def __init__(self, state_dir: Path) -> None:
        manifest = read_manifest(state_dir.resolve())
        if manifest is None or manifest.get("status") != "up":
            raise DevnetError(f"no devnet is up in {state_dir}: run `xrelay devnet up` first")
        self.manifest: dict[str, Any] = manifest
        self.state_dir = Path(manifest["state_dir"])
        logs = self.state_dir / "logs"
        xrelay = [sys.executable, "-m", "relayer"]
        hub = manifest["hub_service"]
        logins = bus_logins(manifest.get("bus", {}))
        self.hub = Service(
            "hub",
            [*xrelay, "hub", "run", "-c", hub["config"]],
            logs / "hub.log",
            f"{hub['api']}/v1/status",
            env=_bus_env(hub, HUB_SENDER, logins),
        )
        self.daemons: dict[str, Service] = {}
        for chain in manifest["chains"]:
            name, token = chain["name"], admin_token(chain["name"])
            self.daemons[name] = Service(
                name,
                [*xrelay, "run", "-c", chain["config"]],
                logs / f"{name}-daemon.log",
                f"http://{chain['admin']}/v1/status",
                env={chain["admin_token_env"]: token, **_bus_env(chain, name, logins)},
                headers={"Authorization": f"Bearer {token}"},
            )

    def start(self) -> None:
        self.hub.start()
        for daemon in self.daemons.values():
            daemon.start()

    def stop(self) -> None:
        for service in [*self.daemons.values(), self.hub]:
            service.stop()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
