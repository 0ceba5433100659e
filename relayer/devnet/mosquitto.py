"""A real, authenticated Mosquitto broker for the devnet and the tests (`xrelay devnet up --broker
mosquitto`). DEVNET ONLY: its CA is made here, its key lies beside it, and the logins are kept in
clear text (0600) for the devnet's services to use.

`Mosquitto(folder, port).write(institutions)` writes into `folder`:

- `ca.pem`, `ca.key`: a devnet CA; `server.pem`, `server.key`: the broker's certificate for
  127.0.0.1 and localhost, signed by it;
- `credentials.json` (0600): one random password per login (hub.broker.write_users: each
  institution, `hub`, and the test-only `admin`, which reads and writes everything, and `outsider`,
  which may log in and do nothing else), with the client id bound to it and its topics;
- `dynsec.json` (0600): the same logins for Mosquitto's dynamic security plugin: PBKDF2-SHA512
  password hashes (what `mosquitto_ctrl dynsec` writes), each client bound to its client id
  `xrelay-<name>` (a client giving that id with another login is refused), one role per client with
  exactly its topics, and every default access denied;
- `mosquitto.conf`: one TLS listener on 127.0.0.1:<port> (no plain one), `allow_anonymous false`,
  the plugin, `max_packet_size` a little above the daemons' envelope bound, no persistence, the log
  in `mosquitto.log`.

`start()` runs mosquitto in a session of its own (it outlives `xrelay devnet up`, as the anvil nodes
do) and waits until the TLS port completes a handshake; `stop()` stops it after checking that the pid
is still this broker (the program and its config file).
"""

from __future__ import annotations

import base64
import datetime
import glob
import hashlib
import ipaddress
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.broker import BusUser, bus_users, read_users, write_users

INSTALL_HINT = "install it with `sudo apt-get install mosquitto` (or run `make setup`, which does)"
DEFAULT_ENVELOPE_BYTES = 4 << 20
"""The daemons' default envelope bound (relayer/config.py, bus.max_envelope_bytes)."""
PACKET_MARGIN = 64 << 10
"""What an MQTT PUBLISH carries beside the envelope (fixed header, topic, packet id), with room."""
PBKDF2_ITERATIONS = 101
"""What `mosquitto_ctrl dynsec` uses; the passwords are 256-bit random, so more would add nothing."""
_SEARCH_BIN = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/bin")
_SEARCH_DYNSEC = (
    "/usr/lib/*/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto/mosquitto_dynamic_security.so",
    "/usr/lib64/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
    "/opt/homebrew/lib/mosquitto_dynamic_security.so",
)


class MosquittoError(RuntimeError):
    """Mosquitto is missing, or did not start; the message says what to do."""


def mosquitto_binary() -> Path:
    """The mosquitto program ($XRELAY_MOSQUITTO, else PATH, else the usual sbin folders)."""
    configured = os.environ.get("XRELAY_MOSQUITTO")
    if configured:
        if not Path(configured).is_file():
            raise MosquittoError(f"XRELAY_MOSQUITTO={configured} is not a file")
        return Path(configured)
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path=os.pathsep.join(_SEARCH_BIN))
    if found is None:
        raise MosquittoError(f"mosquitto is not installed (not on PATH nor in /usr/sbin): {INSTALL_HINT}")
    return Path(found)


def dynsec_plugin() -> Path:
    """Mosquitto's dynamic security plugin ($XRELAY_MOSQUITTO_DYNSEC, else the usual lib folders)."""
    configured = os.environ.get("XRELAY_MOSQUITTO_DYNSEC")
    if configured:
        return Path(configured)
    for pattern in _SEARCH_DYNSEC:
        for found in sorted(glob.glob(pattern)):
            return Path(found)
    raise MosquittoError(
        "mosquitto's dynamic security plugin (mosquitto_dynamic_security.so, Mosquitto 2.0 or newer) "
        f"was not found: {INSTALL_HINT}, or set XRELAY_MOSQUITTO_DYNSEC to its path"
    )


def dynsec_password(password: str, salt: bytes) -> dict[str, Any]:
    """A dynsec client's password fields: base64 PBKDF2-HMAC-SHA512 (64 bytes) of the password with
    the salt's raw bytes, as mosquitto_ctrl writes them (checked against `mosquitto_ctrl dynsec
    init`'s output)."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": PBKDF2_ITERATIONS,
    }


def dynsec_config(users: Mapping[str, BusUser]) -> dict[str, Any]:
    """The dynamic security plugin's JSON: one client per login, bound to its client id, with one role
    granting exactly its topics; every default access denied."""
    clients, roles = [], []
    for name, user in users.items():
        acls = [
            *({"acltype": "subscribePattern", "topic": t, "allow": True} for t in user.read),
            *({"acltype": "publishClientReceive", "topic": t, "allow": True} for t in user.read),
            *({"acltype": "unsubscribePattern", "topic": t, "allow": True} for t in user.read),
            *({"acltype": "publishClientSend", "topic": t, "allow": True} for t in user.write),
        ]
        role = {"rolename": f"xrelay-{name}", "textname": f"what {name} may read and write", "acls": acls}
        roles.append(role)
        assert user.password is not None
        clients.append(
            {
                "username": name,
                "clientid": user.client_id,
                "textname": f"xrelay devnet login {name}",
                **dynsec_password(user.password, os.urandom(12)),
                "roles": [{"rolename": f"xrelay-{name}"}],
            }
        )
    return {
        "clients": clients,
        "roles": roles,
        "groups": [],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": False,
        },
    }


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    tmp.replace(path)


def write_certificates(folder: Path, *, days: int = 365) -> None:
    """A devnet CA (ca.pem, ca.key) and the broker's certificate for 127.0.0.1 and localhost signed by
    it (server.pem, server.key); P-256 keys, 0600."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xrelay devnet"),
            x509.NameAttribute(NameOID.COMMON_NAME, "xrelay devnet CA - DEVNET ONLY"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xrelay devnet"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "xrelay devnet broker - DEVNET ONLY"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    _write_private(folder / "ca.key", key_pem(ca_key))
    _write_private(folder / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    _write_private(folder / "server.key", key_pem(server_key))
    _write_private(folder / "server.pem", server.public_bytes(serialization.Encoding.PEM))


class Mosquitto:
    """The devnet's Mosquitto, its files in `folder`, listening with TLS on 127.0.0.1:`port`."""

    def __init__(self, folder: Path, port: int, *, pid: int | None = None) -> None:
        self.folder = folder.resolve()
        self.port = port
        self.pid = pid

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def credentials(self) -> Path:
        return self.folder / "credentials.json"

    @property
    def log_path(self) -> Path:
        return self.folder / "mosquitto.log"

    def manifest(self) -> dict[str, Any]:
        """What the devnet's manifest records of this broker."""
        return {
            "broker": "mosquitto",
            "url": self.url,
            "port": self.port,
            "pid": self.pid,
            "folder": str(self.folder),
            "config": str(self.config_path),
            "credentials": str(self.credentials),
            "ca_cert": str(self.ca_cert),
            "log": str(self.log_path),
        }

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> Mosquitto:
        return cls(Path(entry["folder"]), int(entry["port"]), pid=entry.get("pid"))

    def write(
        self, institutions: Mapping[str, Sequence[str]], *, max_envelope_bytes: int = DEFAULT_ENVELOPE_BYTES
    ) -> dict[str, BusUser]:
        """Write certificates, logins and config for `institutions` (name -> its peers' names); return
        the logins (also in `credentials`)."""
        plugin = dynsec_plugin()
        self.folder.mkdir(parents=True, exist_ok=True)
        write_certificates(self.folder)
        users = bus_users(institutions)
        write_users(self.credentials, users)
        dynsec = self.folder / "dynsec.json"
        _write_private(dynsec, (json.dumps(dynsec_config(users), indent=2) + "\n").encode())
        lines = [
            "# xrelay devnet broker, written by `xrelay devnet up --broker mosquitto`. DEVNET ONLY.",
            "# TLS only, on loopback; every client authenticated by the dynamic security plugin,",
            "# bound to its client id, with per-institution topic ACLs (docs/operations.md, The broker).",
            "per_listener_settings false",
            "allow_anonymous false",
            f"plugin {plugin}",
            f"plugin_opt_config_file {dynsec}",
            f"max_packet_size {max_envelope_bytes + PACKET_MARGIN}",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            # mosquitto started as root drops to this user: stay the one who owns these files
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "",
            f"listener {self.port} 127.0.0.1",
            f"cafile {self.ca_cert}",
            f"certfile {self.folder / 'server.pem'}",
            f"keyfile {self.folder / 'server.key'}",
            "tls_version tlsv1.2",
            "",
        ]
        self.config_path.write_text("\n".join(lines))
        return users

    def start(self, *, timeout: float = 15.0) -> int:
        """Start mosquitto in a session of its own and wait until its TLS port answers; the pid."""
        binary = mosquitto_binary()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with (self.folder / "mosquitto.out").open("ab") as out:
            process = subprocess.Popen(
                [str(binary), "-c", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid = process.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise MosquittoError(
                    f"mosquitto exited with code {process.returncode}; the end of its logs:\n{self._tail()}"
                )
            if self._handshake():
                return process.pid
            time.sleep(0.05)
        process.kill()
        process.wait()
        raise MosquittoError(
            f"mosquitto did not answer on 127.0.0.1:{self.port} within {timeout:.0f} s:\n{self._tail()}"
        )

    def _handshake(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
                context.wrap_socket(sock, server_hostname="127.0.0.1"),
            ):
                return True
        except OSError:
            return False

    def _tail(self) -> str:
        text = ""
        for path in (self.folder / "mosquitto.out", self.log_path):
            if path.is_file():
                text += path.read_text(errors="replace")[-2000:]
        return text or "(no output)"

    def process(self) -> psutil.Process | None:
        """The live mosquitto this broker started, or None (gone, or the pid now is another program)."""
        if self.pid is None:
            return None
        try:
            process = psutil.Process(self.pid)
            cmdline = process.cmdline()
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        ours = bool(cmdline) and Path(cmdline[0]).name == "mosquitto" and str(self.config_path) in cmdline
        return process if ours else None

    @property
    def running(self) -> bool:
        return self.process() is not None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (SIGKILL after `timeout`) to the broker if it still runs; the pid stopped, or None."""
        process = self.process()
        if process is None:
            return None
        process.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs([process], timeout=timeout)
        for left in alive:
            left.kill()
        psutil.wait_procs(alive, timeout=timeout)
        return process.pid


# --- the devnet's bus, whichever the broker ---------------------------------------------------


def bus_env_names(name: str) -> tuple[str, str]:
    """The environment variables holding a bus login's user name and password in the devnet's configs:
    XRELAY_<NAME>_BUS_USER and XRELAY_<NAME>_BUS_PASSWORD."""
    prefix = f"XRELAY_{name.upper().replace('-', '_')}_BUS"
    return f"{prefix}_USER", f"{prefix}_PASSWORD"


def embedded_bus(folder: Path, institutions: Mapping[str, Sequence[str]], listen: str) -> dict[str, Any]:
    """The logins of the broker the devnet's hub service embeds, written to `folder`/credentials.json
    (0600); what the manifest records of it."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    credentials = folder / "credentials.json"
    write_users(credentials, bus_users(institutions))
    return {
        "broker": "embedded",
        "url": f"mqtt://{listen}",
        "listen": listen,
        "folder": str(folder),
        "credentials": str(credentials),
    }


def bus_logins(bus: Mapping[str, Any]) -> dict[str, BusUser]:
    """The logins a devnet manifest's `bus` entry names (none for a manifest without one)."""
    credentials = bus.get("credentials")
    return read_users(Path(credentials)) if credentials else {}
