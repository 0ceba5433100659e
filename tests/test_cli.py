"""The `xrelay` command itself: what it lists, and how it reports an operator's mistakes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner
from eth_account import Account
from nacl.public import PrivateKey

from relayer.cli import cli

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_help_lists_each_command_with_its_purpose() -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert "contracts  Build and check the Solidity contracts." in out
    assert "devnet     Local L1 and institution chains on anvil, for development only." in out
    assert "config     Validate institution config files." in out
    for group, commands in {
        "contracts": ["build"],
        "devnet": ["up", "status", "down"],
        "config": ["check"],
    }.items():
        code, out, _ = run(group, "--help")
        assert code == 0
        assert all(f"  {command} " in out for command in commands)


def test_contracts_check_passes_on_the_committed_artifacts() -> None:
    code, out, _ = run("contracts", "build", "--check")
    assert code == 0
    assert "artifacts match the sources" in out


def test_config_check_summarises_a_valid_file() -> None:
    code, out, _ = run("config", "check", str(CONFIGS / "bank-b.toml"))
    assert code == 0
    assert "valid" in out
    assert "bank-b" in out
    assert "902" in out
    assert "embedded broker" in out


def test_config_check_lists_every_problem_without_a_traceback(tmp_path: Path) -> None:
    text = (CONFIGS / "bank-a.toml").read_text()
    text = text.replace("capacities = [8, 64, 256]", "capacities = [8, 12]").replace(
        'listen = "127.0.0.1:8701"', 'listen = "nowhere"'
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    code, out, err = run("config", "check", str(bad))
    assert code == 1
    assert f"{bad}: batch.capacities: must be a power of two from 8 to 1024 (8, 16, 32, ...), not 12" in err
    assert f"{bad}: admin.listen: " in err
    assert "Traceback" not in err and out == ""


def test_config_check_of_a_missing_file(tmp_path: Path) -> None:
    code, _, err = run("config", "check", str(tmp_path / "absent.toml"))
    assert code == 1
    assert f"{tmp_path / 'absent.toml'}: no such file" in err


def test_bus_key_new_prints_a_key_or_writes_a_keystore(tmp_path: Path) -> None:
    code, out, _ = run("bus-key", "new")
    assert code == 0
    public = out.split("public key: ")[1].split()[0]
    secret = PrivateKey(bytes.fromhex(out.strip().splitlines()[-1]))
    assert public == "0x" + bytes(secret.public_key).hex()

    keystore = tmp_path / "bus.json"
    result = CliRunner(env={"XRELAY_BUS_KEY_PASSWORD": "correct horse"}).invoke(
        cli, ["bus-key", "new", "--keystore", str(keystore)]
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    stored = PrivateKey(bytes(Account.decrypt(json.loads(keystore.read_text()), "correct horse")))
    assert "0x" + bytes(stored.public_key).hex() in result.output
    assert 'password_env = "XRELAY_BUS_KEY_PASSWORD"' in result.output

    again = CliRunner(env={"XRELAY_BUS_KEY_PASSWORD": "x"}).invoke(
        cli, ["bus-key", "new", "--keystore", str(keystore)]
    )
    assert again.exit_code != 0 and "exists already" in again.output
    assert PrivateKey(bytes(Account.decrypt(json.loads(keystore.read_text()), "correct horse"))) == stored
