"""The asset layer on real anvil nodes: asset ids, lock/release, mint/burn, access control, and
that no sequence of calls creates value."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from bridge_contracts import anvil, artifacts, deploy
from bridge_contracts.chain import Chain, Reverted

NATIVE = "0x0000000000000000000000000000000000000001"
E18 = 10**18


def asset_id(chain_id: int, token: str) -> bytes:
    return keccak(encode(["uint256", "address"], [chain_id, token]))


@dataclass
class Layer:
    """One chain's asset layer, with dev accounts 1 and 2 standing in as its Outbox and Inbox
    (those contracts come later; the router only checks the caller's address)."""

    chain: Chain
    router: Contract
    outbox: Chain
    inbox: Chain

    @property
    def chain_id(self) -> int:
        return self.chain.chain_id

    def lock_or_burn(self, aid: bytes, holder: str, amount: int, *, value: int = 0) -> None:
        self.outbox.send(self.router.functions.lockOrBurn(aid, holder, amount), value=value)

    def release_or_mint(self, aid: bytes, to: str, amount: int, data: bytes) -> None:
        self.inbox.send(self.router.functions.releaseOrMint(aid, to, amount, data))

    def token(self, aid: bytes, name: str = "BridgedToken") -> Contract:
        return self.chain.contract(name, self.router.functions.assets(aid).call()[2])


def connected_layer(chain: Chain) -> Layer:
    router = deploy.deploy_asset_router(chain)
    outbox, inbox = anvil.dev_account(1), anvil.dev_account(2)
    chain.send(router.functions.connect(outbox.address, inbox.address))
    return Layer(chain, router, chain.with_signer(outbox), chain.with_signer(inbox))


@pytest.fixture
def layer_a(chain_a: Chain) -> Layer:
    return connected_layer(chain_a)


@pytest.fixture
def layer_b(chain_b: Chain) -> Layer:
    return connected_layer(chain_b)


USER = anvil.dev_account(5)
OTHER = anvil.dev_account(6)


def dev_token(layer: Layer, *, fee_bps: int = 0) -> tuple[Contract, bytes]:
    """A DevToken registered as an origin asset, with 1000 tokens held and approved by USER."""
    token = deploy.deploy_dev_token(layer.chain, "Deposit", "DEP", decimals=6, transfer_fee_bps=fee_bps)
    layer.chain.send(token.functions.mint(USER.address, 1000 * E18))
    layer.chain.with_signer(USER).send(token.functions.approve(layer.router.address, 2**256 - 1))
    layer.chain.send(layer.router.functions.registerToken(token.address))
    return token, asset_id(layer.chain_id, token.address)


# --- asset ids ---------------------------------------------------------------------------------


def test_native_asset_is_registered_under_its_id(layer_a: Layer) -> None:
    aid = asset_id(layer_a.chain_id, NATIVE)
    assert layer_a.router.functions.nativeAssetId().call() == aid
    assert layer_a.router.functions.assets(aid).call() == [layer_a.chain_id, NATIVE, NATIVE]


# Pure view calls: the fixture's state is the same for every example.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain_id=st.integers(0, 2**256 - 1), token=st.binary(min_size=20, max_size=20))
def test_asset_id_matches_python(layer_a: Layer, chain_id: int, token: bytes) -> None:
    address = to_checksum_address(token)
    assert layer_a.router.functions.assetIdOf(chain_id, address).call() == asset_id(chain_id, address)


def test_register_token_records_id_and_metadata(layer_a: Layer) -> None:
    token, aid = dev_token(layer_a)
    assert layer_a.router.functions.assets(aid).call() == [layer_a.chain_id, token.address, token.address]
    assert layer_a.router.functions.assetIdOfToken(token.address).call() == aid
    data = layer_a.router.functions.assetDataOf(aid).call()
    assert data == encode(
        ["uint256", "address", "string", "string", "uint8"],
        [layer_a.chain_id, token.address, "Deposit", "DEP", 6],
    )


def test_register_refuses_non_contracts_and_duplicates(layer_a: Layer) -> None:
    with pytest.raises(Reverted, match=r"NotAContract"):
        layer_a.chain.send(layer_a.router.functions.registerToken(USER.address))
    token, _ = dev_token(layer_a)
    with pytest.raises(Reverted, match=r"AlreadyRegistered"):
        layer_a.chain.send(layer_a.router.functions.registerToken(token.address))


# --- access control ----------------------------------------------------------------------------


def test_connect_only_once_only_by_deployer(chain_a: Chain) -> None:
    router = deploy.deploy_asset_router(chain_a)
    with pytest.raises(Reverted, match=r"OnlyDeployer"):
        chain_a.with_signer(USER).send(router.functions.connect(USER.address, USER.address))
    with pytest.raises(Reverted, match=r"ZeroAddress"):
        chain_a.send(router.functions.connect(USER.address, "0x" + "00" * 20))
    chain_a.send(router.functions.connect(USER.address, OTHER.address))
    with pytest.raises(Reverted, match=r"AlreadyConnected"):
        chain_a.send(router.functions.connect(OTHER.address, USER.address))


def test_only_outbox_locks_and_only_inbox_releases(layer_a: Layer) -> None:
    aid = asset_id(layer_a.chain_id, NATIVE)
    layer_a.lock_or_burn(aid, USER.address, 5, value=5)
    user = layer_a.chain.with_signer(USER)
    with pytest.raises(Reverted, match=rf"OnlyOutbox\(caller={USER.address}\)"):
        user.send(layer_a.router.functions.lockOrBurn(aid, USER.address, 1), value=1)
    with pytest.raises(Reverted, match=r"OnlyInbox"):
        user.send(layer_a.router.functions.releaseOrMint(aid, USER.address, 5, b""))
    with pytest.raises(Reverted, match=r"OnlyInbox"):  # the Outbox cannot release either
        layer_a.outbox.send(layer_a.router.functions.releaseOrMint(aid, USER.address, 5, b""))


def test_only_the_router_mints_or_burns_bridged_tokens(layer_a: Layer, layer_b: Layer) -> None:
    aid = asset_id(layer_a.chain_id, NATIVE)
    layer_a.lock_or_burn(aid, USER.address, 10, value=10)
    layer_b.release_or_mint(aid, USER.address, 10, layer_a.router.functions.assetDataOf(aid).call())
    bridged = layer_b.token(aid)
    for signer in (layer_b.chain, layer_b.outbox, layer_b.inbox):
        with pytest.raises(Reverted, match=r"OnlyRouter"):
            signer.send(bridged.functions.mint(signer.signer.address, 1))
        with pytest.raises(Reverted, match=r"OnlyRouter"):
            signer.send(bridged.functions.burn(USER.address, 1))
    assert bridged.functions.totalSupply().call() == 10


# --- lock and release on the origin chain ------------------------------------------------------


def test_native_lock_then_release(layer_a: Layer) -> None:
    aid = asset_id(layer_a.chain_id, NATIVE)
    w3 = layer_a.chain.w3
    layer_a.lock_or_burn(aid, USER.address, 3 * E18, value=3 * E18)
    assert layer_a.router.functions.locked(aid).call() == 3 * E18
    assert w3.eth.get_balance(layer_a.router.address) == 3 * E18
    before = w3.eth.get_balance(OTHER.address)
    layer_a.release_or_mint(aid, OTHER.address, 2 * E18, b"")
    assert w3.eth.get_balance(OTHER.address) - before == 2 * E18
    assert layer_a.router.functions.locked(aid).call() == 1 * E18
    assert w3.eth.get_balance(layer_a.router.address) == 1 * E18


def test_native_value_must_equal_amount(layer_a: Layer) -> None:
    aid = asset_id(layer_a.chain_id, NATIVE)
    with pytest.raises(Reverted, match=r"NativeValueMismatch\(expected=5, received=4\)"):
        layer_a.lock_or_burn(aid, USER.address, 5, value=4)
    with pytest.raises(Reverted, match=r"ZeroAmount"):
        layer_a.lock_or_burn(aid, USER.address, 0, value=0)
    _, token_id = dev_token(layer_a)
    with pytest.raises(Reverted, match=r"NativeValueMismatch\(expected=0, received=1\)"):
        layer_a.lock_or_burn(token_id, USER.address, 5, value=1)


def test_release_never_exceeds_what_was_locked(layer_a: Layer) -> None:
    aid = asset_id(layer_a.chain_id, NATIVE)
    layer_a.lock_or_burn(aid, USER.address, 7, value=7)
    # Value that reaches the router outside lockOrBurn is not releasable: it was never sent.
    layer_a.chain.w3.provider.make_request("anvil_setBalance", [layer_a.router.address, hex(10**20)])  # type: ignore[arg-type]
    with pytest.raises(
        Reverted, match=r"InsufficientLocked\(assetId=0x[0-9a-f]{64}, locked=7, requested=8\)"
    ):
        layer_a.release_or_mint(aid, OTHER.address, 8, b"")
    layer_a.release_or_mint(aid, OTHER.address, 7, b"")
    with pytest.raises(Reverted, match=r"InsufficientLocked"):
        layer_a.release_or_mint(aid, OTHER.address, 1, b"")


def test_failed_native_release_changes_nothing(layer_a: Layer) -> None:
    aid = asset_id(layer_a.chain_id, NATIVE)
    layer_a.lock_or_burn(aid, USER.address, 7, value=7)
    with pytest.raises(Reverted, match=r"NativeTransferFailed"):  # the router has no receive()
        layer_a.release_or_mint(aid, layer_a.router.address, 7, b"")
    assert layer_a.router.functions.locked(aid).call() == 7


def test_erc20_lock_then_release(layer_a: Layer) -> None:
    token, aid = dev_token(layer_a)
    layer_a.lock_or_burn(aid, USER.address, 400, value=0)
    assert token.functions.balanceOf(layer_a.router.address).call() == 400
    assert token.functions.balanceOf(USER.address).call() == 1000 * E18 - 400
    layer_a.release_or_mint(aid, OTHER.address, 150, b"")
    assert token.functions.balanceOf(OTHER.address).call() == 150
    assert layer_a.router.functions.locked(aid).call() == 250


def test_fee_on_transfer_token_is_refused(layer_a: Layer) -> None:
    _, aid = dev_token(layer_a, fee_bps=100)
    with pytest.raises(Reverted, match=r"TransferShortfall\(expected=1000, received=990\)"):
        layer_a.lock_or_burn(aid, USER.address, 1000)


def test_unknown_assets_are_refused(layer_a: Layer) -> None:
    unknown = asset_id(layer_a.chain_id, OTHER.address)
    with pytest.raises(Reverted, match=r"UnknownAsset"):
        layer_a.lock_or_burn(unknown, USER.address, 1)
    # An unregistered asset of this chain was never locked, whatever the message claims.
    data = encode(
        ["uint256", "address", "string", "string", "uint8"], [layer_a.chain_id, OTHER.address, "", "", 18]
    )
    with pytest.raises(Reverted, match=r"UnknownAsset"):
        layer_a.release_or_mint(unknown, USER.address, 1, data)


# --- mint and burn away from the origin --------------------------------------------------------


def test_first_arrival_deploys_bridged_token_at_create2_address(layer_a: Layer, layer_b: Layer) -> None:
    token, aid = dev_token(layer_a)
    layer_a.lock_or_burn(aid, USER.address, 500)
    data = layer_a.router.functions.assetDataOf(aid).call()
    layer_b.release_or_mint(aid, OTHER.address, 500, data)

    bridged = layer_b.token(aid)
    assert bridged.functions.name().call() == "Deposit"
    assert bridged.functions.symbol().call() == "DEP"
    assert bridged.functions.decimals().call() == 6
    assert bridged.functions.assetId().call() == aid
    assert bridged.functions.originChainId().call() == layer_a.chain_id
    assert bridged.functions.originToken().call() == token.address
    assert bridged.functions.balanceOf(OTHER.address).call() == 500
    init_code = (
        layer_b.chain.w3.eth.contract(abi=bridged.abi, bytecode=artifacts.load("BridgedToken").bytecode)
        .constructor("Deposit", "DEP", 6, aid, layer_a.chain_id, token.address)
        .data_in_transaction
    )
    expected = keccak(b"\xff" + bytes.fromhex(layer_b.router.address[2:]) + aid + keccak(hexstr=init_code))[
        12:
    ]
    assert bridged.address == to_checksum_address(expected)
    # A bridged token of ours cannot be registered again as if this chain were its origin.
    with pytest.raises(Reverted, match=r"BridgedTokenNotOrigin"):
        layer_b.chain.send(layer_b.router.functions.registerToken(bridged.address))


def test_asset_data_must_match_the_asset_id(layer_a: Layer, layer_b: Layer) -> None:
    _, aid = dev_token(layer_a)
    forged = encode(
        ["uint256", "address", "string", "string", "uint8"], [layer_a.chain_id, OTHER.address, "X", "X", 18]
    )
    with pytest.raises(Reverted, match=r"AssetDataMismatch"):
        layer_b.release_or_mint(aid, USER.address, 1, forged)


def test_burn_needs_balance_and_no_allowance(layer_a: Layer, layer_b: Layer) -> None:
    aid = asset_id(layer_a.chain_id, NATIVE)
    layer_a.lock_or_burn(aid, USER.address, 100, value=100)
    layer_b.release_or_mint(aid, USER.address, 100, layer_a.router.functions.assetDataOf(aid).call())
    bridged = layer_b.token(aid)
    assert bridged.functions.name().call() == "Ether"
    layer_b.lock_or_burn(aid, USER.address, 60)
    assert bridged.functions.balanceOf(USER.address).call() == 40
    with pytest.raises(Reverted, match=r"ERC20InsufficientBalance"):
        layer_b.lock_or_burn(aid, USER.address, 41)
    with pytest.raises(Reverted, match=r"NativeValueMismatch"):  # value cannot ride along a burn
        layer_b.lock_or_burn(aid, USER.address, 1, value=1)


# --- value conservation ------------------------------------------------------------------------


def bridged_balance(layer: Layer, aid: bytes, holder: str | None = None) -> int:
    """A holder's balance (or the total supply) of a bridged asset; 0 before its first arrival."""
    if layer.router.functions.assets(aid).call()[2] == "0x" + "00" * 20:
        return 0
    token = layer.token(aid)
    fn = token.functions.totalSupply() if holder is None else token.functions.balanceOf(holder)
    result: int = fn.call()
    return result


def test_no_sequence_of_moves_creates_value(layer_a: Layer, layer_b: Layer) -> None:
    """Random sends both ways between origin chain A and chain B, delivered in order by honest
    Inboxes, mixed with moves that must be refused (burning more than is held, releasing more than
    is locked). After every step A's vault holds exactly what is locked, what is locked equals all
    the value outstanding (in flight to B, minted on B, in flight back to A), and the user's
    balance on A plus what is locked is what the user started with."""
    token, aid = dev_token(layer_a)
    data = layer_a.router.functions.assetDataOf(aid).call()
    start = token.functions.balanceOf(USER.address).call()
    rng = random.Random(20261123)
    to_b: list[int] = []  # locked on A, not yet minted on B
    to_a: list[int] = []  # burned on B, not yet released on A
    moves = ["send_a", "deliver_b", "send_b", "deliver_a", "overdraw_b", "over_release_a"]
    for _ in range(40):
        move = rng.choice(moves)
        held_on_b = bridged_balance(layer_b, aid, USER.address)
        locked = layer_a.router.functions.locked(aid).call()
        if move == "send_a":
            amount = rng.randint(1, 300)
            layer_a.lock_or_burn(aid, USER.address, amount)
            to_b.append(amount)
        elif move == "deliver_b" and to_b:
            layer_b.release_or_mint(aid, USER.address, to_b.pop(0), data)
        elif move == "send_b" and held_on_b:
            amount = rng.randint(1, held_on_b)
            layer_b.lock_or_burn(aid, USER.address, amount)
            to_a.append(amount)
        elif move == "deliver_a" and to_a:
            layer_a.release_or_mint(aid, USER.address, to_a.pop(0), b"")
        elif move == "overdraw_b":
            with pytest.raises(Reverted):
                layer_b.lock_or_burn(aid, USER.address, held_on_b + 1)
        elif move == "over_release_a":
            with pytest.raises(Reverted, match="InsufficientLocked"):
                layer_a.release_or_mint(aid, USER.address, locked + 1, b"")

        locked = layer_a.router.functions.locked(aid).call()
        assert locked == token.functions.balanceOf(layer_a.router.address).call()
        assert locked == sum(to_b) + bridged_balance(layer_b, aid) + sum(to_a)
        assert token.functions.balanceOf(USER.address).call() + locked == start
