"""Where the pinned npm toolchain (solc, anvil, snarkjs) lives, and a clear error when it is missing.

`make setup` runs `npm ci` in bridge_contracts/, which installs the versions pinned by
package-lock.json. Set XRELAY_NODE_MODULES to use another node_modules folder.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

_ANVIL_PLATFORMS = {
    ("Linux", "x86_64"): "linux-amd64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Darwin", "x86_64"): "darwin-amd64",
    ("Darwin", "arm64"): "darwin-arm64",
}


class ToolchainMissing(RuntimeError):
    """A tool of the pinned npm toolchain is not installed."""


def node_modules() -> Path:
    return Path(os.environ.get("XRELAY_NODE_MODULES", PACKAGE_DIR / "node_modules"))


def _missing(what: str, path: Path) -> ToolchainMissing:
    return ToolchainMissing(
        f"{what} not found at {path}: run `make setup` in the xrelay checkout "
        "(it installs the pinned toolchain with `npm ci` in bridge_contracts/)"
    )


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise ToolchainMissing(
            "node (Node.js) is not on PATH: install Node.js 18 or newer, then `make setup`"
        )
    return found


def anvil() -> Path:
    """The anvil binary itself (not npm's wrapper script), so that its pid is the node's pid."""
    key = (platform.system(), platform.machine())
    suffix = _ANVIL_PLATFORMS.get(key)
    if suffix is None:
        raise ToolchainMissing(f"anvil has no npm build for {key[0]}/{key[1]}")
    path = node_modules() / "@foundry-rs" / f"anvil-{suffix}" / "bin" / "anvil"
    if not path.is_file():
        raise _missing("anvil", path)
    return path


def solcjs() -> Path:
    path = node_modules() / "solc" / "solc.js"
    if not path.is_file():
        raise _missing("solc", path)
    return path


def snarkjs() -> Path:
    """snarkjs's command-line script (a dev tool: the reference our proof formats are checked against)."""
    path = node_modules() / "snarkjs" / "cli.js"
    if not path.is_file():
        raise _missing("snarkjs", path)
    return path


def solc_version() -> str:
    """The compiler version: the solc npm package's version is the compiler's own."""
    manifest = solcjs().parent / "package.json"
    version: str = json.loads(manifest.read_text())["version"]
    return version
