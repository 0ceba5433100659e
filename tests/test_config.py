"""relayer.config: the example configs load, bad configs are refused with clear, located messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from nacl.public import PrivateKey

from bridge_contracts.anvil import dev_account
from hub import config as hub_config
from hub.envelope import devnet_bus_key
from relayer import config
from relayer.config import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

BASE = """\
institution = "bank-a"

[chain]
chain_id = 901
rpc_urls = ["http://127.0.0.1:8546"]

[chain.contracts]
asset_router = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
outbox = "0xa513E6E4b8f2a923D98304ec87F64353C4D5C853"

[chain.signer]
devnet_account = 1

[l1]
chain_id = 900
rpc_urls = ["http://127.0.0.1:8545"]

[[peers]]
name = "bank-b"
chain_id = 902
allowed_assets = ["*"]

[[peers]]
name = "bank-c"
chain_id = 903

[admin]
listen = "127.0.0.1:8701"
token_env = "BANK_A_ADMIN_TOKEN"
"""

ASSET_ID = "0x" + "ab" * 32


def write(tmp_path: Path, text: str, name: str = "bank-a.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once in the base config"
    return text.replace(old, new)


def problems_of(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.path == path
    return caught.value.problems


# --- the examples -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "chain_id", "peer", "account"), [("bank-a", 901, "bank-b", 1), ("bank-b", 902, "bank-a", 2)]
)
def test_example_configs_load(name: str, chain_id: int, peer: str, account: int) -> None:
    loaded = config.load(CONFIGS / f"{name}.toml")
    assert loaded.institution == name
    assert loaded.chain.chain_id == chain_id
    assert loaded.l1.chain_id == 900
    assert [p.name for p in loaded.peers] == [peer]
    assert loaded.chain.signer.devnet_account == account
    assert loaded.store.path == CONFIGS / f"{name}.sqlite"
    assert loaded.bus.url is None

    rows = dict(config.summary(loaded))
    assert rows["institution"] == name
    assert f"id {chain_id}" in rows["chain"]
    assert rows["contract asset_router"] == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert "DEVNET ONLY" in rows["signer"]
    assert dev_account(account).address in rows["signer"]
    assert "id 900" in rows["l1"]
    assert rows[f"peer {peer}"].startswith(f"chain {901 if peer == 'bank-a' else 902};")
    assert "assets: any" in rows[f"peer {peer}"]
    assert rows["batch"].startswith(
        "capacities 8, 64, 256; closes when full, when the prover is idle, or at 5 s"
    )
    assert rows["store"] == str(CONFIGS / f"{name}.sqlite")
    assert rows["bus"] == "embedded broker (127.0.0.1:1883)"
    assert rows["admin"].startswith("127.0.0.1:870")


def test_defaults(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, BASE))
    assert loaded.chain.confirmations == 1
    assert loaded.l1.confirmations == 1
    assert loaded.l1.hub is None
    assert loaded.batch.capacities == (16,)
    assert loaded.batch.max_wait_seconds == 5.0
    assert loaded.store.path == tmp_path.resolve() / "bank-a.sqlite"  # "<institution>.sqlite" by the file
    bank_c = loaded.peers[1]
    assert bank_c.allowed_assets == ()
    assert bank_c.allowed_targets == ("*",)
    assert bank_c.rate_limit_per_minute == 6000
    assert loaded.admin.host == "127.0.0.1"
    assert loaded.admin.port == 8701
    rows = dict(config.summary(loaded))
    assert "assets: none" in rows["peer bank-c"]


def test_values_are_normalised(tmp_path: Path) -> None:
    text = edit(
        'allowed_assets = ["*"]',
        f'allowed_assets = ["{ASSET_ID.upper().replace("0X", "0x")}"]\n'
        'allowed_targets = ["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"]',
    )
    text = edit('listen = "127.0.0.1:8701"', 'listen = "[::1]:8702"', text)
    text += '\n[store]\npath = "state.sqlite"\n\n[bus]\nurl = "mqtts://broker.example:8883"\n'
    loaded = config.load(write(tmp_path, text))
    peer = loaded.peers[0]
    assert peer.allowed_assets == (ASSET_ID,)
    assert peer.allowed_targets == ("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",)  # checksummed
    assert (loaded.admin.host, loaded.admin.port) == ("::1", 8702)
    assert loaded.store.path == tmp_path.resolve() / "state.sqlite"
    assert dict(config.summary(loaded))["bus"] == "mqtts://broker.example:8883"


# --- bad configs ------------------------------------------------------------------------------

SIGNER = "devnet_account = 1"
PEER_C = 'name = "bank-c"\nchain_id = 903'
ADMIN = '[admin]\nlisten = "127.0.0.1:8701"\ntoken_env = "BANK_A_ADMIN_TOKEN"\n'
ROUTER_BAD_CHECKSUM = "0x5fbDB2315678afecb367f032d93F642f64180aa3"  # one letter's case changed
PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

BAD = [
    # (id, old text, new text, key, message fragment)
    ("missing institution", 'institution = "bank-a"\n', "", "institution", "required key is missing"),
    ("bad institution", 'institution = "bank-a"', 'institution = "Bank A"', "institution",
     "not a valid name"),
    ("missing section", ADMIN, "", "admin", "required section is missing"),
    ("missing outbox", 'outbox = "0xa513E6E4b8f2a923D98304ec87F64353C4D5C853"\n', "",
     "chain.contracts.outbox", "required key is missing"),
    ("unknown key", 'rpc_urls = ["http://127.0.0.1:8546"]', 'rpc_url = ["http://127.0.0.1:8546"]',
     "chain.rpc_url", "unknown key 'rpc_url' (did you mean 'rpc_urls'?)"),
    ("unknown section", ADMIN, ADMIN + "[peer]\nname = 'x'\n", "peer", "did you mean 'peers'?"),
    ("chain id 0", "chain_id = 901", "chain_id = 0", "chain.chain_id", "must be greater than 0, not 0"),
    ("chain id negative", "chain_id = 901", "chain_id = -5", "chain.chain_id", "must be greater than 0"),
    ("chain id string", "chain_id = 901", 'chain_id = "901"', "chain.chain_id",
     'expected an integer, got a string ("901")'),
    ("chain id bool", "chain_id = 901", "chain_id = true", "chain.chain_id",
     "expected an integer, got a boolean (true)"),
    ("confirmations", "chain_id = 901", "chain_id = 901\nconfirmations = 1001", "chain.confirmations",
     "must be at most 1000"),
    ("empty rpc urls", 'rpc_urls = ["http://127.0.0.1:8546"]', "rpc_urls = []", "chain.rpc_urls",
     "must list at least one URL"),
    ("rpc urls not a list", 'rpc_urls = ["http://127.0.0.1:8546"]', 'rpc_urls = "http://127.0.0.1:8546"',
     "chain.rpc_urls", "expected an array, got a string"),
    ("bad url scheme", 'rpc_urls = ["http://127.0.0.1:8546"]', 'rpc_urls = ["http://a", "ftp://b"]',
     "chain.rpc_urls[1]", "scheme 'ftp': expected http, https, ws or wss"),
    ("duplicate url", 'rpc_urls = ["http://127.0.0.1:8546"]', 'rpc_urls = ["http://a:1", "http://a:1"]',
     "chain.rpc_urls", "listed twice"),
    ("bad address", "0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x5FbDB2315678",
     "chain.contracts.asset_router", "not an address"),
    ("bad checksum", "0x5FbDB2315678afecb367f032d93F642f64180aa3", ROUTER_BAD_CHECKSUM,
     "chain.contracts.asset_router", "not a valid EIP-55 checksum"),
    ("plain private key", SIGNER, f'private_key = "{PRIVATE_KEY}"', "chain.signer",
     "plain private keys are never accepted in a config file"),
    ("plain key", SIGNER, f'key = "{PRIVATE_KEY}"', "chain.signer", "devnet_account"),
    ("key in env", SIGNER, f'env = "{PRIVATE_KEY}"', "chain.signer.env",
     "plain private keys are never accepted"),
    ("no signer", SIGNER, "", "chain.signer", "no signer: set one of env, keystore"),
    ("two signers", SIGNER, 'devnet_account = 1\nenv = "BANK_A_KEY"', "chain.signer",
     "exactly one of env, keystore or devnet_account, not env and devnet_account"),
    ("keystore without password", SIGNER, 'keystore = "operator.json"', "chain.signer.password_env",
     "required with keystore"),
    ("password without keystore", SIGNER, 'env = "BANK_A_KEY"\npassword_env = "PW"',
     "chain.signer.password_env", "only used with keystore"),
    ("keystore missing", SIGNER, 'keystore = "keys/nope.json"\npassword_env = "PW"', "chain.signer.keystore",
     "nope.json does not exist"),
    ("devnet account 10", SIGNER, "devnet_account = 10", "chain.signer.devnet_account", "0 to 9, not 10"),
    ("bad env name", 'token_env = "BANK_A_ADMIN_TOKEN"', 'token_env = "bank-a-token"', "admin.token_env",
     "not a valid environment variable name"),
    ("l1 is own chain", "chain_id = 900", "chain_id = 901", "l1.chain_id", "must differ from chain.chain_id"),
    ("l1 hub", "chain_id = 900", 'chain_id = 900\nhub = "0x12"', "l1.hub", "not an address"),
    ("capacity 12", ADMIN, ADMIN + "[batch]\ncapacity = 12\n", "batch.capacity",
     "power of two from 8 to 1024"),
    ("capacity 2048", ADMIN, ADMIN + "[batch]\ncapacity = 2048\n", "batch.capacity", "not 2048"),
    ("capacity true", ADMIN, ADMIN + "[batch]\ncapacity = true\n", "batch.capacity", "an integer, not True"),
    ("capacities 12", ADMIN, ADMIN + "[batch]\ncapacities = [8, 12]\n", "batch.capacities",
     "power of two from 8 to 1024"),
    ("capacities twice", ADMIN, ADMIN + "[batch]\ncapacities = [64, 8, 64]\n", "batch.capacities",
     "named twice"),
    ("capacities none", ADMIN, ADMIN + "[batch]\ncapacities = []\n", "batch.capacities", "at least one"),
    ("capacity and capacities", ADMIN, ADMIN + "[batch]\ncapacity = 8\ncapacities = [8]\n",
     "batch.capacity", "not both"),
    ("max wait 0", ADMIN, ADMIN + "[batch]\nmax_wait_seconds = 0\n", "batch.max_wait_seconds",
     "must be greater than 0"),
    ("max wait string", ADMIN, ADMIN + '[batch]\nmax_wait_seconds = "5"\n', "batch.max_wait_seconds",
     "expected a number"),
    ("peer is own chain", PEER_C, 'name = "bank-c"\nchain_id = 901', "peers[1].chain_id",
     "901 is already used by this institution's chain"),
    ("peer is l1", PEER_C, 'name = "bank-c"\nchain_id = 900', "peers[1].chain_id", "already used by the L1"),
    ("duplicate peer chain id", PEER_C, 'name = "bank-c"\nchain_id = 902', "peers[1].chain_id",
     'already used by peers[0] ("bank-b")'),
    ("duplicate peer name", PEER_C, 'name = "bank-b"\nchain_id = 903', "peers[1].name",
     'duplicate peer "bank-b"'),
    ("peer is self", PEER_C, 'name = "bank-a"\nchain_id = 903', "peers[1].name",
     "is this institution itself"),
    ("any mixed with ids", 'allowed_assets = ["*"]', f'allowed_assets = ["*", "{ASSET_ID}"]',
     "peers[0].allowed_assets", '"*" (any) cannot be mixed'),
    ("bad asset id", 'allowed_assets = ["*"]', 'allowed_assets = ["0x1234"]', "peers[0].allowed_assets[0]",
     "not an asset id"),
    ("bad target", 'allowed_assets = ["*"]', 'allowed_targets = ["bank-b"]', "peers[0].allowed_targets[0]",
     "not an address"),
    ("rate limit 0", 'allowed_assets = ["*"]', "rate_limit_per_minute = 0", "peers[0].rate_limit_per_minute",
     "must be greater than 0"),
    ("force after 0", 'allowed_assets = ["*"]', "force_after_seconds = 0", "peers[0].force_after_seconds",
     "must be greater than 0"),
    ("force before settlement", 'allowed_assets = ["*"]', 'allowed_assets = ["*"]\nforce_after_seconds = 20',
     "peers[0].force_after_seconds", "20 s is too short: a message needs up to batch.max_wait_seconds (5 s)"),
    ("peer unknown key", 'allowed_assets = ["*"]', 'allowed_asset = ["*"]', "peers[0].allowed_asset",
     "did you mean 'allowed_assets'?"),
    ("listen without port", 'listen = "127.0.0.1:8701"', 'listen = "127.0.0.1"', "admin.listen",
     "expected host:port"),
    ("listen port 70000", 'listen = "127.0.0.1:8701"', 'listen = "127.0.0.1:70000"', "admin.listen",
     "port must be a number from 1 to 65535"),
    ("listen ipv6 bare", 'listen = "127.0.0.1:8701"', 'listen = "::1:8701"', "admin.listen", "in brackets"),
    ("bus http", ADMIN, ADMIN + '[bus]\nurl = "http://broker:1883"\n', "bus.url",
     "scheme 'http': expected mqtt or mqtts"),
    ("bus no host", ADMIN, ADMIN + '[bus]\nurl = "mqtt://:1883"\n', "bus.url", "has no host"),
    ("bus cert without key", ADMIN, ADMIN + '[bus]\nclient_cert = "operator.json"\n', "bus.client_key",
     "required with client_cert"),
    ("bus ca missing", ADMIN, ADMIN + '[bus]\nca_cert = "ca.pem"\n', "bus.ca_cert", "does not exist"),
    ("store folder missing", ADMIN, ADMIN + '[store]\npath = "state/bank-a.sqlite"\n', "store.path",
     "does not exist"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "key", "fragment"), [pytest.param(*case[1:], id=case[0]) for case in BAD]
)
def test_bad_config(tmp_path: Path, old: str, new: str, key: str, fragment: str) -> None:
    (tmp_path / "operator.json").write_text("{}")  # an existing file for the keystore and TLS cases
    problems = problems_of(write(tmp_path, edit(old, new)))
    assert any(k == key and fragment in message for k, message in problems), problems
    assert not any(message.startswith("Value error") for _, message in problems)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.problems == [("", "no such file")]
    assert str(caught.value) == f"{path}: no such file"


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, edit("chain_id = 902", "chain_id = = 902"))
    [(key, message)] = problems_of(path)
    assert key == ""
    assert message.startswith("invalid TOML")
    assert "line 20" in message
    assert str(config.ConfigError(path, [(key, message)])).startswith(f"{path}: invalid TOML")


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = edit('institution = "bank-a"', 'institution = "Bank A"')
    text = edit("chain_id = 901", 'chain_id = "901"', text)
    text = edit('rpc_urls = ["http://127.0.0.1:8545"]', 'rpc_urls = ["ftp://x"]', text)
    text = edit(SIGNER, 'private_key = "0x00"', text)
    text = edit(PEER_C, 'name = "bank-b"\nchain_id = 902\nrate_limit_per_minute = -1', text)
    text = edit('token_env = "BANK_A_ADMIN_TOKEN"', 'token_env = "x"\nlisten_on = 1', text)
    text += "[batch]\ncapacity = 12\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    keys = [key for key, _ in caught.value.problems]
    assert keys == [
        "institution",
        "chain.chain_id",
        "chain.signer",
        "l1.rpc_urls[0]",
        "peers[1].rate_limit_per_minute",
        "batch.capacity",
        "admin.token_env",
        "admin.listen_on",
    ]
    lines = str(caught.value).splitlines()
    assert len(lines) == len(keys)
    assert lines[0].startswith(f'{path}: institution: "Bank A" is not a valid name')
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_cross_checks_are_reported_together(tmp_path: Path) -> None:
    text = edit(PEER_C, 'name = "bank-b"\nchain_id = 902\n\n[[peers]]\nname = "bank-a"\nchain_id = 900')
    text = edit('token_env = "BANK_A_ADMIN_TOKEN"', 'token_env = "bad name"', text)
    problems = problems_of(write(tmp_path, text))
    assert [key for key, _ in problems] == [
        "peers[1].name",
        "peers[1].chain_id",
        "peers[2].name",
        "peers[2].chain_id",
        "admin.token_env",
    ]


# --- the signer -------------------------------------------------------------------------------


def signer_config(tmp_path: Path, signer: str) -> Path:
    return write(tmp_path, edit(SIGNER, signer))


def test_signer_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = signer_config(tmp_path, 'env = "XRELAY_TEST_OPERATOR_KEY"')
    signer = config.load(path).chain.signer
    expected = dev_account(3)

    monkeypatch.delenv("XRELAY_TEST_OPERATOR_KEY", raising=False)
    assert signer.describe() == "env XRELAY_TEST_OPERATOR_KEY (not set)"
    with pytest.raises(ConfigError) as caught:
        signer.resolve()
    assert caught.value.path == path
    assert caught.value.problems == [
        ("chain.signer.env", "environment variable XRELAY_TEST_OPERATOR_KEY is not set")
    ]

    monkeypatch.setenv("XRELAY_TEST_OPERATOR_KEY", "0x" + expected.key.hex().removeprefix("0x"))
    assert signer.describe() == "env XRELAY_TEST_OPERATOR_KEY (set)"
    assert signer.resolve().address == expected.address

    monkeypatch.setenv("XRELAY_TEST_OPERATOR_KEY", "not-a-key-but-a-secret")
    with pytest.raises(ConfigError, match="does not hold a private key") as caught:
        signer.resolve()
    assert "not-a-key-but-a-secret" not in str(caught.value)


def test_signer_keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = dev_account(4)
    (tmp_path / "keys").mkdir()
    keyfile = Account.encrypt(expected.key, "correct horse", kdf="pbkdf2", iterations=1024)
    (tmp_path / "keys" / "operator.json").write_text(json.dumps(keyfile))
    path = signer_config(tmp_path, 'keystore = "keys/operator.json"\npassword_env = "XRELAY_TEST_PASSWORD"')
    signer = config.load(path).chain.signer
    assert signer.keystore == tmp_path.resolve() / "keys" / "operator.json"

    monkeypatch.delenv("XRELAY_TEST_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="XRELAY_TEST_PASSWORD is not set"):
        signer.resolve()

    monkeypatch.setenv("XRELAY_TEST_PASSWORD", "correct horse")
    assert signer.resolve().address == expected.address
    assert signer.describe() == f"keystore {signer.keystore} (password in XRELAY_TEST_PASSWORD, set)"

    monkeypatch.setenv("XRELAY_TEST_PASSWORD", "wrong")
    with pytest.raises(ConfigError, match="cannot decrypt keystore"):
        signer.resolve()


def test_signer_devnet_account(tmp_path: Path) -> None:
    signer = config.load(signer_config(tmp_path, "devnet_account = 1")).chain.signer
    assert signer.resolve().address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert signer.describe().startswith("devnet account 1 0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    assert "DEVNET ONLY" in signer.describe()


# --- the bus key ------------------------------------------------------------------------------


def bus_config(tmp_path: Path, bus: str, name: str = "bank-a.toml") -> Path:
    return write(tmp_path, BASE + "\n" + bus, name)


def test_bus_keys_env_keystore_and_devnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = PrivateKey.generate()
    (tmp_path / "keys").mkdir()
    keyfile = Account.encrypt(bytes(secret), "correct horse", kdf="pbkdf2", iterations=1024)
    (tmp_path / "keys" / "bus.json").write_text(json.dumps(keyfile))
    path = bus_config(
        tmp_path,
        '[bus]\nkey_grace_seconds = 60.0\n[bus.key]\nenv = "XRELAY_TEST_BUS_KEY"\n'
        '[bus.previous_key]\nkeystore = "keys/bus.json"\npassword_env = "XRELAY_TEST_PASSWORD"\n',
    )
    bus = config.load(path).bus
    assert bus.key is not None and bus.previous_key is not None and bus.key_grace_seconds == 60.0
    monkeypatch.delenv("XRELAY_TEST_BUS_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        bus.key.resolve("bus.key")
    assert caught.value.problems == [("bus.key.env", "environment variable XRELAY_TEST_BUS_KEY is not set")]
    monkeypatch.setenv("XRELAY_TEST_BUS_KEY", "a-secret-that-is-no-key")
    with pytest.raises(ConfigError, match="does not hold a key") as caught:
        bus.key.resolve("bus.key")
    assert "a-secret-that-is-no-key" not in str(caught.value)
    monkeypatch.setenv("XRELAY_TEST_BUS_KEY", "0x" + bytes(secret).hex())
    assert bytes(bus.key.resolve()) == bytes(secret)
    monkeypatch.setenv("XRELAY_TEST_PASSWORD", "correct horse")
    assert bytes(bus.previous_key.resolve("bus.previous_key")) == bytes(secret)
    monkeypatch.setenv("XRELAY_TEST_PASSWORD", "wrong")
    with pytest.raises(ConfigError) as caught:
        bus.previous_key.resolve("bus.previous_key")
    assert caught.value.problems[0][0] == "bus.previous_key.keystore"
    devnet = config.load(bus_config(tmp_path, "[bus.key]\ndevnet_key = 3\n", "devnet.toml")).bus.key
    assert devnet is not None and "DEVNET ONLY" in devnet.describe()
    assert bytes(devnet.resolve()) == bytes(devnet_bus_key(3))
    rows = dict(config.summary(config.load(path)))
    assert rows["bus key"] == "env XRELAY_TEST_BUS_KEY (set)"
    assert "a-secret" not in str(rows) and bytes(secret).hex() not in str(rows)


@pytest.mark.parametrize(
    ("bus", "key", "fragment"),
    [
        ('[bus.key]\nkey = "' + "ab" * 32 + '"\n', "bus.key", "plain private keys are never accepted"),
        ("[bus.key]\n", "bus.key", "set exactly one of env, keystore (with password_env) or devnet_key"),
        ('[bus.key]\nenv = "A"\ndevnet_key = 1\n', "bus.key", "not env and devnet_key"),
        ('[bus.key]\nenv = "A"\npassword_env = "B"\n', "bus.key.password_env", "goes with keystore"),
        ('[bus.key]\nkeystore = "nowhere.json"\npassword_env = "B"\n', "bus.key.keystore", "does not exist"),
        ("[bus]\nkey_grace_seconds = -1.0\n", "bus.key_grace_seconds", "must be at least 0.0"),
        ("[bus]\nmax_envelope_age_seconds = 0.0\n", "bus.max_envelope_age_seconds", "greater than 0"),
    ],
)
def test_bad_bus_keys(tmp_path: Path, bus: str, key: str, fragment: str) -> None:
    problems = problems_of(bus_config(tmp_path, bus))
    assert any(k == key and fragment in message for k, message in problems), problems


def test_models_are_frozen(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, BASE))
    with pytest.raises(ValueError, match="frozen"):
        loaded.institution = "bank-z"  # type: ignore[misc]


def test_the_example_hub_config_loads() -> None:
    hub = hub_config.load(Path(__file__).parent.parent / "configs" / "hub.toml")
    assert (hub.l1.chain_id, hub.api.listen, hub.bus.listen) == (900, "127.0.0.1:8700", "127.0.0.1:1883")
