"""SwapDesk on real anvil nodes: three-phase swaps between chain A (901, conftest's node_a) and chain B
(902, node_b), every message settled on an L1 (900, a node of this module's own) by the Hub with real
Groth16 proofs (tests/settlement.py) and executed by each chain's Inbox.

A and B each have a router, Outbox, Inbox (as tests/test_bounce.py deploys them) and a SwapDesk owned by
the chain's operator; X is gold, an origin token of A, and Y a stablecoin, an origin token of B. The
same Terms are registered on both desks; B quotes PRICE for the pair and holds INVENTORY of Y.

That world is built once per module (`build`, which benchmarks/swap_gas.py uses too); each test starts
from it again (anvil snapshots of the three nodes, and a copy of the Python mirror of the Hub's tree).
Every test checks the balances exactly: the user's, each desk's tokens and `held`, each router's
`locked`, each bridged token's supply and each chain's balance on L1 (`World.ledger`), so that value is
seen to be neither created nor lost."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import RPCEndpoint, TxReceipt

from bridge_contracts import anvil, deploy
from bridge_contracts.anvil import AnvilNode
from bridge_contracts.chain import Chain, Reverted, decode_revert
from bridge_contracts.messages import Message, bounce_of, sent_messages
from bridge_contracts.swaps import Swap, SwapReason, SwapState, Terms, quote, swap_id
from hub.delivery import message_key
from relayer.halts import Resolution, resolve
from relayer.store import Store, StoreError, SwapRecord, SwapSide, WatchCursor
from relayer.watcher import Finality
from tests.conftest import CHAIN_A_ID, CHAIN_B_ID, isolated
from tests.settlement import E18, NATIVE, Settlement, asset_id, events
from tests.test_bounce import BRIDGED_TOKEN_DEPLOY_GAS, L2, RELAYER, deploy_l2, send_with_extra_gas
from tests.test_inbox import calldata

L1, A, B = 900, CHAIN_A_ID, CHAIN_B_ID
OPERATOR_A, OPERATOR_B = anvil.dev_account(2), anvil.dev_account(3)  # each owns its chain's Inbox and desk
USER = anvil.dev_account(5)
MALLORY = anvil.dev_account(6)
ZERO = "0x" + "00" * 20
MAX_UINT = 2**256 - 1

E6 = 10**6
PRICE = 2_013_456_789  # Y base units (6 decimals) per 1e18 X base units: 1 GLD = 2013.456789 USD
PRICE_MIN, PRICE_MAX = 1_500 * E6, 2_500 * E6
FEE_BPS = 30
MIN_X, MAX_X = E18 // 100, 10 * E18
WINDOW = 3_600
TERMS_LIFETIME = 30 * 86_400
AMOUNT_X = 1_234_567_890_123_456_789  # about 1.23 GLD
QUOTE = quote(AMOUNT_X, PRICE, FEE_BPS)  # the Y that AMOUNT_X pays at PRICE, after the fee
INVENTORY = 100_000 * E6
USER_GOLD = 100 * E18

NONE, INITIATED, COMPLETED, REFUNDED = (
    SwapState.NONE,
    SwapState.INITIATED,
    SwapState.COMPLETED,
    SwapState.REFUNDED,
)
Ledger = dict[str, int]


# --- the world -----------------------------------------------------------------------------------


@dataclass
class World:
    hub: Settlement
    a: L2
    b: L2
    desk_a: Contract
    desk_b: Contract
    gold: Contract  # X, an origin token of A
    stable: Contract  # Y, an origin token of B
    terms: Terms

    @property
    def x(self) -> bytes:
        return self.terms.asset_x

    @property
    def y(self) -> bytes:
        return self.terms.asset_y

    @property
    def x_data(self) -> bytes:
        """X's assetData, as every message that carries it has it."""
        return bytes(self.a.router.functions.assetDataOf(self.x).call())

    @property
    def y_data(self) -> bytes:
        return bytes(self.b.router.functions.assetDataOf(self.y).call())

    def owner(self, l2: L2) -> Chain:
        """The chain signed for by its operator, who owns its desk."""
        return l2.chain.with_signer(l2.operator)

    def fund_desk_a_with_gold(self, amount: int) -> None:
        """Desk A's owner mints `amount` of X (gold, A's own token) and funds its desk with it: the
        owner's, beside what comes home for users."""
        self.a.chain.send(self.gold.functions.mint(OPERATOR_A.address, amount))
        owner_a = self.owner(self.a)
        owner_a.send(self.gold.functions.approve(self.desk_a.address, amount))
        owner_a.send(self.desk_a.functions.fund(self.gold.address, amount))

    def settle(self, source: L2, messages: list[Message]) -> None:
        """`source`'s next batch (what its Outbox sent, in order), settled on L1; the root imported on
        A and B."""
        self.hub.commit(source.id, messages, source.operator)
        assert self.hub.info(source.id).outbox_hash == source.outbox.functions.outboxHash().call()
        for l2 in (self.a, self.b):
            self.owner(l2).send(l2.inbox.functions.importRoot(self.hub.tree.root))

    def execute(self, dest: L2, m: Message) -> TxReceipt:
        """Executes the settled `m` on `dest` as the daemon's executor does: at the node's gas estimate,
        plus BRIDGED_TOKEN_DEPLOY_GAS for an asset's first arrival (which the estimate does not count)."""
        first = m.amount != 0 and self.bridged(dest, m.asset_id) is None
        fn = dest.inbox.functions.execute(m.as_tuple(), self.hub.proof(m).as_tuple())
        return send_with_extra_gas(
            dest.chain.with_signer(RELAYER), fn, BRIDGED_TOKEN_DEPLOY_GAS if first else 0
        )

    def deliver(self, source: L2, dest: L2, m: Message) -> TxReceipt:
        """Moves `m` from `source`'s Outbox to `dest`'s Inbox: settled alone, then executed."""
        self.settle(source, [m])
        return self.execute(dest, m)

    def initiate(
        self, amount_x: int = AMOUNT_X, min_y: int = QUOTE, terms_id: bytes | None = None
    ) -> tuple[bytes, Message, TxReceipt]:
        """Phase 1: USER starts a swap on A; its id, the phase-1 message and the receipt."""
        fn = self.desk_a.functions.initiate(terms_id or self.terms.terms_id, amount_x, min_y)
        receipt = self.a.chain.with_signer(USER).send(fn)
        [sent] = sent_messages(self.a.outbox, [receipt])
        [recorded] = events(self.desk_a, "SwapRecorded", receipt)
        return bytes(recorded["swapId"]), sent.message, receipt

    def phase2(self, phase1: Message) -> tuple[TxReceipt, Message]:
        """The phase-1 message moved to B and executed; the one result message desk B sent in that
        transaction."""
        receipt = self.deliver(self.a, self.b, phase1)
        assert [e["id"] for e in events(self.b.inbox, "MessageExecuted", receipt)] == [phase1.id()]
        sent = sent_messages(self.b.outbox, [receipt])
        assert len(sent) == 1, "phase 2 sends exactly one result message"
        return receipt, sent[0].message

    def phase3(self, result: Message) -> TxReceipt:
        """B's result moved to A and executed."""
        receipt = self.deliver(self.b, self.a, result)
        assert [e["id"] for e in events(self.a.inbox, "MessageExecuted", receipt)] == [result.id()]
        return receipt

    def bridged(self, l2: L2, asset: bytes) -> Contract | None:
        """The BridgedToken of `asset` on `l2` (None before the asset's first arrival there)."""
        token = l2.router.functions.assets(asset).call()[2]
        return None if token == ZERO else l2.chain.contract("BridgedToken", token)

    def ledger(self) -> Ledger:
        """Where every unit of X and Y is (None of a bridged token yet: 0). Checks that no desk holds
        less than its `held` says."""
        x_on_b, y_on_a = self.bridged(self.b, self.x), self.bridged(self.a, self.y)

        def balance(token: Contract | None, who: str) -> int:
            return 0 if token is None else int(token.functions.balanceOf(who).call())

        def supply(token: Contract | None) -> int:
            return 0 if token is None else int(token.functions.totalSupply().call())

        desk_a, desk_b = self.desk_a.address, self.desk_b.address
        found = {
            # A
            "user_x": balance(self.gold, USER.address),
            "user_y": balance(y_on_a, USER.address),
            "desk_a_x": balance(self.gold, desk_a),
            "desk_a_y": balance(y_on_a, desk_a),
            "held_a_x": int(self.desk_a.functions.held(self.gold.address).call()),
            "locked_x": int(self.a.router.functions.locked(self.x).call()),
            "supply_y_a": supply(y_on_a),
            # B
            "desk_b_x": balance(x_on_b, desk_b),
            "held_b_x": 0 if x_on_b is None else int(self.desk_b.functions.held(x_on_b.address).call()),
            "supply_x_b": supply(x_on_b),
            "desk_b_y": balance(self.stable, desk_b),
            "held_b_y": int(self.desk_b.functions.held(self.stable.address).call()),
            "owner_b_y": balance(self.stable, OPERATOR_B.address),
            "locked_y": int(self.b.router.functions.locked(self.y).call()),
            # L1: what each chain may release or mint of the other's asset
            "l1_b_x": self.hub.balance(B, self.x),
            "l1_a_y": self.hub.balance(A, self.y),
        }
        assert found["held_a_x"] <= found["desk_a_x"]
        assert found["held_b_x"] <= found["desk_b_x"] and found["held_b_y"] <= found["desk_b_y"]
        return found

    def swap(self, desk: Contract, sid: bytes) -> Swap:
        """The desk's record of the swap (swapOf)."""
        return Swap.from_tuple(desk.functions.swapOf(sid).call())

    def recorded(self, desk: Contract, receipt: TxReceipt) -> list[tuple[bytes, Swap]]:
        """The desk's SwapRecorded events in the receipt."""
        return [
            (bytes(e["swapId"]), Swap.from_event(e["swap"])) for e in events(desk, "SwapRecorded", receipt)
        ]


def origin_token(
    l2: L2, hub: Settlement, name: str, symbol: str, decimals: int, *, fee_bps: int = 0
) -> Contract:
    """A DevToken of `l2` registered as an origin asset with its router and with the Hub."""
    token = deploy.deploy_dev_token(l2.chain, name, symbol, decimals=decimals, transfer_fee_bps=fee_bps)
    l2.chain.send(l2.router.functions.registerToken(token.address))
    hub.chain.send(hub.hub.functions.registerAsset(l2.id, token.address))
    return token


def now(chain: Chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def timestamp(chain: Chain, receipt: TxReceipt) -> int:
    return int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def set_time(chain: Chain, when: int) -> None:
    """Mines a block of `chain` at `when`; later blocks follow it (rolled back with the test's snapshot)."""
    chain.w3.provider.make_request(RPCEndpoint("anvil_setNextBlockTimestamp"), [when])
    chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])


def build(l1: Chain, chain_a: Chain, chain_b: Chain) -> World:
    """The Hub on `l1`; A and B with router, Outbox, Inbox, X and Y, and a desk each; the terms
    registered on both desks, B's price set and its inventory funded; USER holds USER_GOLD of X and lets
    desk A take it."""
    hub = Settlement.deploy(l1)
    hub.register(A, OPERATOR_A)
    hub.register(B, OPERATOR_B)
    a = deploy_l2(chain_a, hub.l1, OPERATOR_A, (B,))
    b = deploy_l2(chain_b, hub.l1, OPERATOR_B, (A,))
    gold = origin_token(a, hub, "Gold", "GLD", 18)
    desk_a = chain_a.deploy("SwapDesk", a.outbox.address, a.inbox.address, OPERATOR_A.address)
    # Deployed in another order than on A: the desks' addresses differ, so that a check of the wrong
    # side's address is seen (the same deployer and nonce would give both desks one address).
    desk_b = chain_b.deploy("SwapDesk", b.outbox.address, b.inbox.address, OPERATOR_B.address)
    stable = origin_token(b, hub, "Stable", "USD", 6)
    assert desk_a.address != desk_b.address
    terms = Terms(
        chain_a=A,
        desk_a=desk_a.address,
        chain_b=B,
        desk_b=desk_b.address,
        asset_x=asset_id(A, gold.address),
        asset_y=asset_id(B, stable.address),
        price_min=PRICE_MIN,
        price_max=PRICE_MAX,
        fee_bps=FEE_BPS,
        min_amount_x=MIN_X,
        max_amount_x=MAX_X,
        last_start=now(chain_a) + TERMS_LIFETIME,
        window=WINDOW,
    )
    world = World(hub, a, b, desk_a, desk_b, gold, stable, terms)
    for l2, desk in ((a, desk_a), (b, desk_b)):
        receipt = world.owner(l2).send(desk.functions.registerTerms(terms.as_tuple()))
        [registered] = events(desk, "TermsRegistered", receipt)
        assert bytes(registered["termsId"]) == terms.terms_id
    owner_b = world.owner(b)
    owner_b.send(desk_b.functions.setPrice(terms.asset_x, terms.asset_y, PRICE))
    chain_b.send(stable.functions.mint(OPERATOR_B.address, INVENTORY))
    owner_b.send(stable.functions.approve(desk_b.address, INVENTORY))
    owner_b.send(desk_b.functions.fund(stable.address, INVENTORY))
    chain_a.send(gold.functions.mint(USER.address, USER_GOLD))
    chain_a.with_signer(USER).send(gold.functions.approve(desk_a.address, MAX_UINT))
    return world


@pytest.fixture(scope="module")
def node_l1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    node = anvil.start(L1, tmp_path_factory.mktemp("anvil") / f"{L1}.log")
    try:
        yield node
    finally:
        node.stop()


@contextmanager
def snapshots(*nodes: AnvilNode) -> Iterator[list[Chain]]:
    """conftest's isolation for several nodes at once: what is done inside is rolled back on each."""
    with ExitStack() as stack:
        yield [stack.enter_context(contextmanager(isolated)(node)) for node in nodes]


@pytest.fixture(scope="module")
def built(node_l1: AnvilNode, node_a: AnvilNode, node_b: AnvilNode) -> Iterator[World]:
    """The world, built once for the module and rolled back after it (node_a and node_b are shared)."""
    with snapshots(node_l1, node_a, node_b) as (l1, chain_a, chain_b):
        yield build(l1, chain_a, chain_b)


@pytest.fixture
def world(built: World, node_l1: AnvilNode, node_a: AnvilNode, node_b: AnvilNode) -> Iterator[World]:
    """The module's world, as built: the nodes and the Hub's mirror are rolled back after the test."""
    tree, places = copy.deepcopy(built.hub.tree), dict(built.hub.places)
    try:
        with snapshots(node_l1, node_a, node_b):
            yield built
    finally:
        built.hub.tree, built.hub.places = tree, places


# --- checks --------------------------------------------------------------------------------------


def reverts(chain: Chain, fn: ContractFunction, error: str) -> None:
    """Sending `fn` on `chain` reverts with exactly `error` (decoded, e.g. 'ZeroWindow()'): nothing sent."""
    with pytest.raises(Reverted) as caught:
        chain.send(fn)
    assert caught.value.error == error


def call_error(fn: ContractFunction, sender: str) -> str:
    """The decoded error of an eth_call of `fn` from `sender` (any address: a contract too)."""
    try:
        fn.call({"from": sender})
    except ContractLogicError as exc:
        return decode_revert(exc.data if isinstance(exc.data, str) else None)
    raise AssertionError("the call did not revert")


def moved(before: Ledger, after: Ledger, **changes: int) -> None:
    """`after` is `before` changed by exactly `changes` (name: delta), and by nothing else."""
    assert set(changes) <= set(before), set(changes) - set(before)
    assert after == {name: value + changes.get(name, 0) for name, value in before.items()}


def backed(ledger: Ledger, *, y_in_flight: int = 0) -> None:
    """Nothing created: every X on B is locked on A and is B's on L1; every Y on A is locked on B and is
    A's on L1 (`y_in_flight`: Y settled to A but never minted there)."""
    assert ledger["locked_x"] == ledger["supply_x_b"] == ledger["l1_b_x"]
    assert ledger["locked_y"] == ledger["l1_a_y"] == ledger["supply_y_a"] + y_in_flight


def result_data(desk_a: Contract, sid: bytes, state: SwapState, reason: SwapReason, amount_y: int) -> bytes:
    """The call of a result message: receiveResult(swapId, state, reason, amountY) on desk A."""
    return calldata(desk_a.functions.receiveResult(sid, state, reason, amount_y))


def hex32(value: bytes) -> str:
    return "0x" + value.hex()


def gold_of(w: World, who: LocalAccount) -> int:
    return int(w.gold.functions.balanceOf(who.address).call())


def failure(inbox: Contract, receipt: TxReceipt) -> str:
    """The decoded reason of the one MessageFailed of the receipt."""
    [failed] = events(inbox, "MessageFailed", receipt)
    return decode_revert(failed["reason"])


# --- registering terms ---------------------------------------------------------------------------


def test_terms_are_registered_under_their_python_id(world: World) -> None:
    w = world
    for desk in (w.desk_a, w.desk_b):
        assert tuple(desk.functions.termsOf(w.terms.terms_id).call()) == w.terms.as_tuple()
    other = dataclasses.replace(w.terms, fee_bps=0, window=2 * WINDOW)
    fn = w.desk_a.functions.registerTerms(other.as_tuple())
    assert bytes(fn.call({"from": OPERATOR_A.address})) == other.terms_id != w.terms.terms_id
    receipt = w.owner(w.a).send(fn)
    [registered] = events(w.desk_a, "TermsRegistered", receipt)
    assert bytes(registered["termsId"]) == other.terms_id
    assert tuple(registered["terms"].values()) == other.as_tuple()


def test_register_terms_refuses_what_it_must(world: World) -> None:
    w, t = world, world.terms
    a_eth, b_eth = asset_id(A, NATIVE), asset_id(B, NATIVE)
    unknown = b"\x42" * 32
    desk_a, desk_b = w.desk_a.address, w.desk_b.address
    latest = now(w.a.chain)
    on_a: list[tuple[Terms, str]] = [
        (dataclasses.replace(t, chain_a=999),
         f"NotThisDesk(chainA=999, deskA={desk_a}, chainB={B}, deskB={desk_b})"),
        (dataclasses.replace(t, desk_a=desk_b),
         f"NotThisDesk(chainA={A}, deskA={desk_b}, chainB={B}, deskB={desk_b})"),
        (dataclasses.replace(t, chain_b=A, desk_b=desk_a),  # this desk on both sides
         f"NotThisDesk(chainA={A}, deskA={desk_a}, chainB={A}, deskB={desk_a})"),
        (dataclasses.replace(t, price_min=0), f"BadBand(priceMin=0, priceMax={PRICE_MAX})"),
        (dataclasses.replace(t, price_min=PRICE_MAX + 1),
         f"BadBand(priceMin={PRICE_MAX + 1}, priceMax={PRICE_MAX})"),
        (dataclasses.replace(t, fee_bps=10_000), "FeeTooHigh(feeBps=10000)"),
        (dataclasses.replace(t, min_amount_x=0), f"BadAmounts(minAmountX=0, maxAmountX={MAX_X})"),
        (dataclasses.replace(t, max_amount_x=MIN_X - 1),
         f"BadAmounts(minAmountX={MIN_X}, maxAmountX={MIN_X - 1})"),
        (dataclasses.replace(t, window=0), "ZeroWindow()"),
        (dataclasses.replace(t, last_start=latest), f"LastStartPassed(lastStart={latest})"),
        (t, f"TermsAlreadyRegistered(termsId={hex32(t.terms_id)})"),
        # What side A pays out, X, must be an ERC-20 of its router.
        (dataclasses.replace(t, asset_x=unknown), f"UnknownAsset(assetId={hex32(unknown)})"),
        # Neither chain's native token, on either side: it would arrive as msg.value, which no phase takes.
        (dataclasses.replace(t, asset_x=a_eth), "NativeNotSwappable()"),
        (dataclasses.replace(t, asset_x=b_eth), "NativeNotSwappable()"),
        (dataclasses.replace(t, asset_y=a_eth), "NativeNotSwappable()"),
        (dataclasses.replace(t, asset_y=b_eth), "NativeNotSwappable()"),
    ]  # fmt: skip
    on_b: list[tuple[Terms, str]] = [
        (dataclasses.replace(t, chain_b=A),
         f"NotThisDesk(chainA={A}, deskA={desk_a}, chainB={A}, deskB={desk_b})"),
        (dataclasses.replace(t, price_max=0), f"BadBand(priceMin={PRICE_MIN}, priceMax=0)"),
        (dataclasses.replace(t, fee_bps=12_345), "FeeTooHigh(feeBps=12345)"),
        (dataclasses.replace(t, window=0), "ZeroWindow()"),
        (t, f"TermsAlreadyRegistered(termsId={hex32(t.terms_id)})"),
        # What side B pays out, Y, must be an ERC-20 of its router.
        (dataclasses.replace(t, asset_y=unknown), f"UnknownAsset(assetId={hex32(unknown)})"),
        (dataclasses.replace(t, asset_x=a_eth), "NativeNotSwappable()"),
        (dataclasses.replace(t, asset_x=b_eth), "NativeNotSwappable()"),
        (dataclasses.replace(t, asset_y=a_eth), "NativeNotSwappable()"),
        (dataclasses.replace(t, asset_y=b_eth), "NativeNotSwappable()"),
    ]  # fmt: skip
    for l2, desk, cases in ((w.a, w.desk_a, on_a), (w.b, w.desk_b, on_b)):
        for terms, error in cases:
            reverts(w.owner(l2), desk.functions.registerTerms(terms.as_tuple()), error)
    other = dataclasses.replace(t, window=2 * WINDOW)
    for l2, desk in ((w.a, w.desk_a), (w.b, w.desk_b)):
        for who in (USER, l2.chain.signer):  # only the owner: not a user, not the deployer
            reverts(
                l2.chain.with_signer(who),
                desk.functions.registerTerms(other.as_tuple()),
                f"OwnableUnauthorizedAccount(account={who.address})",
            )
        assert desk.functions.termsOf(other.terms_id).call()[0] == 0


# --- phase 1: refusals ---------------------------------------------------------------------------


def test_initiate_refuses_and_moves_nothing(world: World) -> None:
    """Each refusal of initiate, none of which takes X or sends a message; then lastStart: a swap starts
    at it, none after it."""
    w, t = world, world.terms
    user = w.a.chain.with_signer(USER)
    unknown = b"\x42" * 32

    def initiate(
        amount_x: int = AMOUNT_X, min_y: int = QUOTE, terms_id: bytes = t.terms_id
    ) -> ContractFunction:
        return w.desk_a.functions.initiate(terms_id, amount_x, min_y)

    start = w.ledger()
    reverts(user, initiate(terms_id=unknown), f"UnknownTerms(termsId={hex32(unknown)})")
    for amount_x in (MIN_X - 1, MAX_X + 1):
        error = f"AmountOutOfRange(amountX={amount_x}, minAmountX={MIN_X}, maxAmountX={MAX_X})"
        reverts(user, initiate(amount_x), error)
    reverts(user, initiate(min_y=0), "ZeroMinimum()")
    # Side B's desk never starts a swap of these terms.
    reverts(w.b.chain.with_signer(USER), w.desk_b.functions.initiate(t.terms_id, AMOUNT_X, QUOTE),
            f"NotSideA(termsId={hex32(t.terms_id)})")  # fmt: skip
    # The desk takes X only with the user's allowance, and only what the user has.
    user.send(w.gold.functions.approve(w.desk_a.address, AMOUNT_X - 1))
    desk = w.desk_a.address
    reverts(
        user,
        initiate(),
        f"ERC20InsufficientAllowance(spender={desk}, allowance={AMOUNT_X - 1}, needed={AMOUNT_X})",
    )
    user.send(w.gold.functions.approve(w.desk_a.address, MAX_UINT))
    elsewhere = USER_GOLD - AMOUNT_X + 1
    user.send(w.gold.functions.transfer(MALLORY.address, elsewhere))
    reverts(
        user,
        initiate(),
        f"ERC20InsufficientBalance(sender={USER.address}, balance={AMOUNT_X - 1}, needed={AMOUNT_X})",
    )
    w.a.chain.with_signer(MALLORY).send(w.gold.functions.transfer(USER.address, elsewhere))
    assert w.ledger() == start
    assert w.desk_a.functions.swapNonce().call() == 0
    assert w.a.outbox.functions.nonce().call() == 0

    # A swap starts at lastStart (A's clock), none after it.
    w.a.chain.w3.provider.make_request(RPCEndpoint("anvil_setNextBlockTimestamp"), [t.last_start])
    _, _, receipt = w.initiate()
    assert timestamp(w.a.chain, receipt) == t.last_start
    set_time(w.a.chain, t.last_start + 1)
    reverts(user, initiate(), f"TermsExpired(termsId={hex32(t.terms_id)}, lastStart={t.last_start})")
    assert w.desk_a.functions.swapNonce().call() == 1


# --- a complete swap -----------------------------------------------------------------------------


def test_a_swap_pays_the_user_the_quote_and_desk_b_keeps_x(world: World) -> None:
    w, terms_id = world, world.terms.terms_id
    assert w.desk_b.functions.quote(terms_id, AMOUNT_X).call() == QUOTE
    assert w.desk_b.functions.price(w.x, w.y).call() == PRICE
    start = w.ledger()
    assert start["held_b_y"] == start["desk_b_y"] == INVENTORY

    # Phase 1 on A: X taken from the user and sent (locked in A's router) to desk B.
    sid = swap_id(A, w.desk_a.address, 0)
    assert bytes(w.desk_a.functions.initiate(terms_id, AMOUNT_X, QUOTE).call({"from": USER.address})) == sid
    assert bytes(w.desk_a.functions.swapIdOf(A, w.desk_a.address, 0).call()) == sid
    got, phase1, receipt = w.initiate(AMOUNT_X, QUOTE)  # the least Y the user takes: exactly the quote
    print(f"\ngas initiate: {receipt['gasUsed']}")
    assert got == sid
    assert w.desk_a.functions.swapNonce().call() == 1
    deadline = timestamp(w.a.chain, receipt) + WINDOW
    order = (0, terms_id, USER.address, AMOUNT_X, QUOTE, deadline)
    assert phase1 == Message(
        A, B, 0, w.desk_a.address, w.desk_b.address, w.x, AMOUNT_X,
        calldata(w.desk_b.functions.receiveSwap(order)), w.x_data,
    )  # fmt: skip
    initiated = Swap(terms_id, USER.address, AMOUNT_X, QUOTE, 0, deadline, 0, INITIATED, SwapReason.NONE)
    assert w.recorded(w.desk_a, receipt) == [(sid, initiated)]
    assert w.swap(w.desk_a, sid) == initiated
    after_1 = w.ledger()
    moved(start, after_1, user_x=-AMOUNT_X, locked_x=AMOUNT_X)

    # Phase 2 on B: the swap, and one result message that pays Y to desk A.
    receipt, result = w.phase2(phase1)
    print(f"gas phase 2, swapped (X's first arrival on B: BridgedToken deployed): {receipt['gasUsed']}")
    completed_b = Swap(
        terms_id, USER.address, AMOUNT_X, QUOTE, QUOTE, deadline, 0, COMPLETED, SwapReason.NONE
    )
    assert w.recorded(w.desk_b, receipt) == [(sid, completed_b)]
    assert w.swap(w.desk_b, sid) == completed_b
    assert result == Message(
        B, A, 0, w.desk_b.address, w.desk_a.address, w.y, QUOTE,
        result_data(w.desk_a, sid, COMPLETED, SwapReason.NONE, QUOTE), w.y_data,
    )  # fmt: skip
    after_2 = w.ledger()
    moved(
        after_1, after_2,
        l1_b_x=AMOUNT_X, supply_x_b=AMOUNT_X, desk_b_x=AMOUNT_X, held_b_x=AMOUNT_X,
        desk_b_y=-QUOTE, held_b_y=-QUOTE, locked_y=QUOTE,
    )  # fmt: skip

    # Phase 3 on A: the user is paid Y; desk A keeps nothing.
    receipt = w.phase3(result)
    print(f"gas phase 3, paid (Y's first arrival on A: BridgedToken deployed): {receipt['gasUsed']}")
    completed_a = dataclasses.replace(initiated, amount_y=QUOTE, state=COMPLETED)
    assert w.recorded(w.desk_a, receipt) == [(sid, completed_a)]
    assert w.swap(w.desk_a, sid) == completed_a
    end = w.ledger()
    moved(after_2, end, l1_a_y=QUOTE, supply_y_a=QUOTE, user_y=QUOTE)
    assert end["desk_a_x"] == end["desk_a_y"] == end["held_a_x"] == 0
    backed(end)
    reverts(w.a.chain.with_signer(USER), w.desk_a.functions.reclaim(sid),
            f"NotInitiated(swapId={hex32(sid)}, state={int(COMPLETED)})")  # fmt: skip


# --- refunds -------------------------------------------------------------------------------------


def refund_round(
    w: World,
    reason: SwapReason,
    *,
    terms_id: bytes | None = None,
    min_y: int = QUOTE,
    on_b: Callable[[int], object] = lambda deadline: None,
) -> None:
    """A swap that B refunds for `reason`: phase 1, `on_b(deadline)` (what B does before it executes
    phase 1), phase 2 (exactly one result: X back to desk A) and phase 3 (X back to the user, in full).
    Both desks record it Refunded for `reason`; the ledger ends as it began."""
    terms_id = terms_id or w.terms.terms_id
    start = w.ledger()
    sid, phase1, receipt = w.initiate(AMOUNT_X, min_y, terms_id)
    deadline = timestamp(w.a.chain, receipt) + Terms(*w.desk_a.functions.termsOf(terms_id).call()).window
    on_b(deadline)

    receipt, result = w.phase2(phase1)
    print(f"\ngas phase 2, refunded ({reason.word}): {receipt['gasUsed']}")
    refunded_b = Swap(terms_id, USER.address, AMOUNT_X, min_y, 0, deadline, result.nonce, REFUNDED, reason)
    assert w.recorded(w.desk_b, receipt) == [(sid, refunded_b)]
    assert w.swap(w.desk_b, sid) == refunded_b
    assert result == Message(
        B, A, result.nonce, w.desk_b.address, w.desk_a.address, w.x, AMOUNT_X,
        result_data(w.desk_a, sid, REFUNDED, reason, 0), w.x_data,
    )  # fmt: skip
    # Nothing of desk B's moved: the X it got (minted) went back (burned).
    moved(start, w.ledger(), user_x=-AMOUNT_X, locked_x=AMOUNT_X, l1_b_x=AMOUNT_X)

    receipt = w.phase3(result)
    print(f"gas phase 3, refunded: {receipt['gasUsed']}")
    refunded_a = Swap(terms_id, USER.address, AMOUNT_X, min_y, 0, deadline, phase1.nonce, REFUNDED, reason)
    assert w.recorded(w.desk_a, receipt) == [(sid, refunded_a)]
    assert w.swap(w.desk_a, sid) == refunded_a
    end = w.ledger()
    assert end == start
    backed(end)


@pytest.mark.parametrize(
    "case",
    [
        "slippage",
        "expired",
        "inventory short",
        "price above band",
        "price below band",
        "no quote",
        "unknown terms",
    ],
)
def test_a_swap_b_refuses_gives_the_user_x_back(world: World, case: str) -> None:
    w = world
    owner_b = w.owner(w.b)

    def price(value: int) -> Callable[[int], object]:
        return lambda deadline: owner_b.send(w.desk_b.functions.setPrice(w.x, w.y, value))

    match case:
        case "slippage":  # the user wants one unit of Y more than the quote
            refund_round(w, SwapReason.SLIPPAGE, min_y=QUOTE + 1)
        case "expired":  # B executes phase 1 one second past the deadline, by B's clock
            refund_round(w, SwapReason.EXPIRED, on_b=lambda deadline: set_time(w.b.chain, deadline + 1))
        case "inventory short":  # desk B holds one unit of Y less than the swap pays
            short = INVENTORY - QUOTE + 1
            owner_b.send(w.desk_b.functions.withdraw(w.stable.address, OPERATOR_B.address, short))
            refund_round(w, SwapReason.INVENTORY_SHORT)
            assert w.desk_b.functions.held(w.stable.address).call() == QUOTE - 1
        case "price above band":
            refund_round(w, SwapReason.PRICE_OUTSIDE_BAND, min_y=1, on_b=price(PRICE_MAX + 1))
        case "price below band":
            refund_round(w, SwapReason.PRICE_OUTSIDE_BAND, min_y=1, on_b=price(PRICE_MIN - 1))
        case "no quote":  # a price of 0 withdraws B's quote
            refund_round(w, SwapReason.PRICE_OUTSIDE_BAND, min_y=1, on_b=price(0))
        case "unknown terms":  # terms registered on A only
            other = dataclasses.replace(w.terms, window=2 * WINDOW)
            w.owner(w.a).send(w.desk_a.functions.registerTerms(other.as_tuple()))
            refund_round(w, SwapReason.UNKNOWN_TERMS, terms_id=other.terms_id)
        case _:
            raise AssertionError(case)


def test_a_swap_whose_y_cannot_be_sent_is_refunded(world: World) -> None:
    """Y is a fee-on-transfer token in these terms: B's router refuses to lock what arrives short
    (TransferShortfall), so the swap's send fails in phase 2 and desk B refunds X instead (SendFailed),
    its inventory untouched."""
    w = world
    leaky = origin_token(w.b, w.hub, "Leaky Dollar", "LKD", 6, fee_bps=100)
    terms = dataclasses.replace(w.terms, asset_y=asset_id(B, leaky.address))
    for l2, desk in ((w.a, w.desk_a), (w.b, w.desk_b)):
        w.owner(l2).send(desk.functions.registerTerms(terms.as_tuple()))
    owner = w.owner(w.b)
    owner.send(w.desk_b.functions.setPrice(w.x, terms.asset_y, PRICE))
    w.b.chain.send(leaky.functions.mint(OPERATOR_B.address, INVENTORY))
    owner.send(leaky.functions.approve(w.desk_b.address, INVENTORY))
    receipt = owner.send(w.desk_b.functions.fund(leaky.address, INVENTORY))
    inventory = INVENTORY - INVENTORY // 100  # what arrived is what the desk holds
    assert events(w.desk_b, "Funded", receipt) == [{"token": leaky.address, "amount": inventory}]
    assert w.desk_b.functions.held(leaky.address).call() == inventory
    assert leaky.functions.balanceOf(w.desk_b.address).call() == inventory

    # Why phase 2 will refund: the send alone, as desk B makes it.
    sid = swap_id(A, w.desk_a.address, 0)
    send = w.desk_b.functions.sendSwapped(sid, A, w.desk_a.address, terms.asset_y, QUOTE)
    assert (
        call_error(send, w.desk_b.address)
        == f"TransferShortfall(expected={QUOTE}, received={QUOTE - QUOTE // 100})"
    )
    refund_round(w, SwapReason.SEND_FAILED, terms_id=terms.terms_id)
    assert w.desk_b.functions.held(leaky.address).call() == inventory
    assert leaky.functions.balanceOf(w.desk_b.address).call() == inventory
    assert w.b.router.functions.locked(terms.asset_y).call() == 0


# --- the bounce path -----------------------------------------------------------------------------


def test_a_bounced_phase_1_is_reclaimed_for_the_user(world: World) -> None:
    w = world
    own = 5 * E18  # desk A's owner keeps X of its own there, beside what comes home for the user
    w.fund_desk_a_with_gold(own)
    start = w.ledger()
    assert (start["held_a_x"], start["desk_a_x"]) == (own, own)

    sid, phase1, receipt = w.initiate()
    deadline = timestamp(w.a.chain, receipt) + WINDOW
    w.settle(w.a, [phase1])
    anyone = w.a.chain.with_signer(MALLORY)
    reclaim = w.desk_a.functions.reclaim(sid)
    reverts(anyone, reclaim, f"NotBounced(swapId={hex32(sid)})")

    # B's operator bounces phase 1: desk B is never called; the value goes home to desk A.
    receipt = w.b.bounce(phase1, w.hub.proof(phase1), "desk closed")
    [sent] = sent_messages(w.b.outbox, [receipt])
    bounce = sent.message
    assert bounce == bounce_of(phase1, 0)
    assert w.recorded(w.desk_b, receipt) == []
    assert w.swap(w.desk_b, sid).state == NONE
    reverts(anyone, reclaim, f"NotBounced(swapId={hex32(sid)})")
    receipt = w.phase3(bounce)
    assert events(w.a.inbox, "MessageRefunded", receipt)[0]["to"] == w.desk_a.address
    assert w.a.inbox.functions.refunded(phase1.id()).call()
    assert w.swap(w.desk_a, sid).state == INITIATED
    home = w.ledger()
    moved(start, home, user_x=-AMOUNT_X, desk_a_x=AMOUNT_X)
    # The user's X at desk A is not the owner's: only what the desk holds can be withdrawn.
    withdraw, owner_a = w.desk_a.functions.withdraw, w.owner(w.a)
    reverts(owner_a, withdraw(w.gold.address, OPERATOR_A.address, own + 1),
            f"MoreThanHeld(token={w.gold.address}, held={own}, requested={own + 1})")  # fmt: skip
    owner_a.send(withdraw(w.gold.address, OPERATOR_A.address, own))
    reverts(owner_a, withdraw(w.gold.address, OPERATOR_A.address, 1),
            f"MoreThanHeld(token={w.gold.address}, held=0, requested=1)")  # fmt: skip

    # Anyone may reclaim it; X goes to the user, once.
    receipt = anyone.send(reclaim)
    print(f"\ngas reclaim: {receipt['gasUsed']}")
    terms_id = w.terms.terms_id
    bounced = Swap(
        terms_id, USER.address, AMOUNT_X, QUOTE, 0, deadline, phase1.nonce, REFUNDED, SwapReason.BOUNCED
    )
    assert w.recorded(w.desk_a, receipt) == [(sid, bounced)]
    assert w.swap(w.desk_a, sid) == bounced
    end = w.ledger()
    moved(start, end, desk_a_x=-own, held_a_x=-own)
    backed(end)
    reverts(anyone, reclaim, f"NotInitiated(swapId={hex32(sid)}, state={int(REFUNDED)})")
    unknown = swap_id(A, w.desk_a.address, 7)
    reverts(anyone, w.desk_a.functions.reclaim(unknown), f"NotInitiated(swapId={hex32(unknown)}, state=0)")


# --- hostile callers -----------------------------------------------------------------------------


def test_only_the_inbox_calls_phase_2_and_3_and_only_the_desk_sends_a_swap(world: World) -> None:
    w = world
    sid, _, _ = w.initiate()
    order = (0, w.terms.terms_id, USER.address, AMOUNT_X, QUOTE, now(w.a.chain) + WINDOW)
    for who in (USER, OPERATOR_B):
        chain = w.b.chain.with_signer(who)
        reverts(chain, w.desk_b.functions.receiveSwap(order), f"OnlyInbox(caller={who.address})")
        send = w.desk_b.functions.sendSwapped(sid, A, who.address, w.y, QUOTE)
        reverts(chain, send, f"OnlySelf(caller={who.address})")
    receive = w.desk_a.functions.receiveResult(sid, COMPLETED, SwapReason.NONE, QUOTE)
    for who in (USER, OPERATOR_A):
        reverts(w.a.chain.with_signer(who), receive, f"OnlyInbox(caller={who.address})")
    assert w.swap(w.desk_a, sid).state == INITIATED


def test_a_phase_1_message_from_anyone_else_is_refunded_to_its_sender(world: World) -> None:
    """Mallory sends desk B a phase-1 message of the registered terms from her account: desk B refunds
    her (UnknownTerms), never swaps; the same without value fails (NoValue) and stays retryable."""
    w, terms_id = world, world.terms.terms_id
    w.a.chain.send(w.gold.functions.mint(MALLORY.address, AMOUNT_X))
    mallory = w.a.chain.with_signer(MALLORY)
    mallory.send(w.gold.functions.approve(w.a.router.address, AMOUNT_X))
    start = w.ledger()
    order = (0, terms_id, MALLORY.address, AMOUNT_X, 1, now(w.a.chain) + WINDOW)
    data = calldata(w.desk_b.functions.receiveSwap(order))
    receipts = [
        mallory.send(w.a.outbox.functions.sendWithAsset(B, w.desk_b.address, data, w.x, AMOUNT_X)),
        mallory.send(w.a.outbox.functions.send(B, w.desk_b.address, data)),
    ]
    valued, valueless = (s.message for s in sent_messages(w.a.outbox, receipts))
    assert gold_of(w, MALLORY) == 0
    w.settle(w.a, [valued, valueless])

    receipt = w.execute(w.b, valueless)
    assert failure(w.b.inbox, receipt) == "NoValue()"
    assert not w.b.inbox.functions.executed(valueless.id()).call()

    receipt = w.execute(w.b, valued)
    sid = swap_id(A, MALLORY.address, 0)
    [refund] = (s.message for s in sent_messages(w.b.outbox, [receipt]))
    assert refund == Message(
        B, A, 0, w.desk_b.address, MALLORY.address, w.x, AMOUNT_X,
        result_data(w.desk_a, sid, REFUNDED, SwapReason.UNKNOWN_TERMS, 0), w.x_data,
    )  # fmt: skip
    refunded = Swap(
        terms_id, MALLORY.address, AMOUNT_X, 1, 0, order[5], 0, REFUNDED, SwapReason.UNKNOWN_TERMS
    )
    assert w.recorded(w.desk_b, receipt) == [(sid, refunded)]
    assert w.swap(w.desk_b, swap_id(A, w.desk_a.address, 0)).state == NONE
    moved(start, w.ledger(), locked_x=AMOUNT_X, l1_b_x=AMOUNT_X)  # nothing of desk B's moved

    w.phase3(refund)  # to Mallory's account, with the result as its (ignored) call
    assert gold_of(w, MALLORY) == AMOUNT_X
    end = w.ledger()
    assert end == start
    backed(end)


def test_a_result_from_anyone_but_desk_b_is_refused(world: World) -> None:
    """Mallory sends desk A a result of the user's swap, with Y, from her account on B: it fails
    (NotFromCounterparty) and stays retryable; desk B's genuine result pays the user, once."""
    w = world
    w.b.chain.send(w.stable.functions.mint(MALLORY.address, QUOTE))
    mallory = w.b.chain.with_signer(MALLORY)
    mallory.send(w.stable.functions.approve(w.b.router.address, QUOTE))
    start = w.ledger()
    sid, phase1, _ = w.initiate()
    forged_data = result_data(w.desk_a, sid, COMPLETED, SwapReason.NONE, QUOTE)
    receipt = mallory.send(w.b.outbox.functions.sendWithAsset(A, w.desk_a.address, forged_data, w.y, QUOTE))
    [forged] = (s.message for s in sent_messages(w.b.outbox, [receipt]))
    w.settle(w.a, [phase1])
    receipt = w.execute(w.b, phase1)
    [result] = (s.message for s in sent_messages(w.b.outbox, [receipt]))
    w.settle(w.b, [forged, result])

    before = w.ledger()
    receipt = w.execute(w.a, forged)
    assert failure(w.a.inbox, receipt) == f"NotFromCounterparty(sourceChainId={B}, sender={MALLORY.address})"
    assert not w.a.inbox.functions.executed(forged.id()).call()
    assert w.swap(w.desk_a, sid).state == INITIATED
    assert w.ledger() == before

    w.execute(w.a, result)
    assert w.swap(w.desk_a, sid).state == COMPLETED
    execute_again = w.a.inbox.functions.execute(result.as_tuple(), w.hub.proof(result).as_tuple())
    reverts(w.a.chain.with_signer(RELAYER), execute_again, f"AlreadyExecuted(id={hex32(result.id())})")
    receipt = w.execute(w.a, forged)  # retried: the swap is over
    assert failure(w.a.inbox, receipt) == f"NotInitiated(swapId={hex32(sid)}, state={int(COMPLETED)})"
    end = w.ledger()
    # The user was paid once; Mallory's Y is locked on B and A's on L1, never minted on A.
    moved(
        start, end,
        user_x=-AMOUNT_X, user_y=QUOTE, locked_x=AMOUNT_X, supply_x_b=AMOUNT_X, l1_b_x=AMOUNT_X,
        desk_b_x=AMOUNT_X, held_b_x=AMOUNT_X, desk_b_y=-QUOTE, held_b_y=-QUOTE,
        locked_y=2 * QUOTE, l1_a_y=2 * QUOTE, supply_y_a=QUOTE,
    )  # fmt: skip
    backed(end, y_in_flight=QUOTE)


def test_the_owner_withdraws_only_what_the_desk_holds(world: World) -> None:
    w = world
    owner = w.owner(w.b)
    stable = w.stable.address
    start = w.ledger()
    for who in (USER, w.b.chain.signer):
        chain = w.b.chain.with_signer(who)
        unauthorized = f"OwnableUnauthorizedAccount(account={who.address})"
        reverts(chain, w.desk_b.functions.withdraw(stable, who.address, 1), unauthorized)
        reverts(chain, w.desk_b.functions.setPrice(w.x, w.y, PRICE_MAX), unauthorized)
        reverts(chain, w.desk_b.functions.fund(stable, 1), unauthorized)
    reverts(owner, w.desk_b.functions.withdraw(stable, ZERO, 1), "ZeroAddress()")
    too_much = f"MoreThanHeld(token={stable}, held={INVENTORY}, requested={INVENTORY + 1})"
    reverts(owner, w.desk_b.functions.withdraw(stable, OPERATOR_B.address, INVENTORY + 1), too_much)
    # Y that reaches the desk outside fund() is not held: the desk never pays it out.
    w.b.chain.send(w.stable.functions.mint(w.desk_b.address, 7))
    reverts(owner, w.desk_b.functions.withdraw(stable, OPERATOR_B.address, INVENTORY + 1), too_much)
    receipt = owner.send(w.desk_b.functions.withdraw(stable, OPERATOR_B.address, INVENTORY))
    assert events(w.desk_b, "Withdrawn", receipt) == [
        {"token": stable, "to": OPERATOR_B.address, "amount": INVENTORY}
    ]
    moved(start, w.ledger(), desk_b_y=7 - INVENTORY, held_b_y=-INVENTORY, owner_b_y=INVENTORY)


# --- gas ---------------------------------------------------------------------------------------


def steady(w: World) -> None:
    """One swap done: X has arrived on B and Y on A (their BridgedTokens deployed)."""
    _, phase1, _ = w.initiate()
    w.phase3(w.phase2(phase1)[1])


def outcome_at(fn: ContractFunction, gas: int) -> str:
    """What an Inbox.execute does at a gas limit (eth_call): "executed", "failed" (MessageFailed) or
    the error it reverts with."""
    try:
        return "executed" if fn.call({"from": RELAYER.address, "gas": gas}) else "failed"
    except ContractLogicError as exc:
        return decode_revert(exc.data if isinstance(exc.data, str) else None)


def test_phase_2_completes_at_the_estimate_and_reverts_below_it(world: World) -> None:
    """Phase 2 is never recorded as failed for want of gas: with less than it needs the execution reverts
    (NotEnoughGas), so the node's estimate settles on a limit where it completes (a swap, and a refund).
    Without PHASE2_GAS, limits a little above what phase 2 uses had it fail (MessageFailed), and the
    estimate settled there."""
    w = world
    steady(w)
    swapped, refunded = w.initiate(), w.initiate(min_y=QUOTE + 1)
    w.settle(w.a, [swapped[1], refunded[1]])
    for (sid, phase1, _), state in ((swapped, COMPLETED), (refunded, REFUNDED)):
        fn = w.b.inbox.functions.execute(phase1.as_tuple(), w.hub.proof(phase1).as_tuple())
        estimate = fn.estimate_gas({"from": RELAYER.address})
        assert estimate > w.desk_b.functions.PHASE2_GAS().call()
        outcomes = {gas: outcome_at(fn, gas) for gas in range(200_000, estimate + 300_000, 25_000)}
        assert outcome_at(fn, estimate) == "executed"
        assert set(outcomes.values()) == {"NotEnoughGas()", "executed"}, outcomes
        assert all(outcome == "executed" for gas, outcome in outcomes.items() if gas >= estimate)
        receipt = w.execute(w.b, phase1)  # at the node's estimate
        assert len(sent_messages(w.b.outbox, [receipt])) == 1
        assert w.swap(w.desk_b, sid).state == state


def swap_gas(w: World) -> dict[str, int]:
    """Gas (gasUsed) of each phase, every execution at the node's estimate (as the daemon sends it): a
    first swap (each bridged token's first arrival deploys it), then a swap and a refund (slippage) in the
    steady state, their phase-1 messages settled in one batch and their results in another."""
    results: dict[str, int] = {}
    _, phase1, receipt = w.initiate()
    results["initiate, the desk's first swap"] = int(receipt["gasUsed"])
    receipt, result = w.phase2(phase1)
    results["phase 2 swapped, X's first arrival on B (BridgedToken deployed)"] = int(receipt["gasUsed"])
    receipt = w.phase3(result)
    results["phase 3 paid, Y's first arrival on A (BridgedToken deployed)"] = int(receipt["gasUsed"])

    swapped, refunded = w.initiate(), w.initiate(min_y=QUOTE + 1)
    results["initiate"] = int(swapped[2]["gasUsed"])
    w.settle(w.a, [swapped[1], refunded[1]])
    execute = w.b.inbox.functions.execute(swapped[1].as_tuple(), w.hub.proof(swapped[1]).as_tuple())
    results["phase 2 swapped: the gas limit it needs (the node's estimate)"] = execute.estimate_gas(
        {"from": RELAYER.address}
    )
    executed = [w.execute(w.b, m) for _, m, _ in (swapped, refunded)]
    results["phase 2 swapped (Y sent to desk A)"] = int(executed[0]["gasUsed"])
    results["phase 2 refunded (slippage: X sent back)"] = int(executed[1]["gasUsed"])
    sent = [s.message for s in sent_messages(w.b.outbox, executed)]
    assert len(sent) == 2
    w.settle(w.b, sent)
    paid, back = (w.execute(w.a, m) for m in sent)
    results["phase 3 paid Y"] = int(paid["gasUsed"])
    results["phase 3 refunded X"] = int(back["gasUsed"])
    ends = [w.swap(w.desk_a, sid) for sid, _, _ in (swapped, refunded)]
    assert [(s.state, s.reason) for s in ends] == [
        (COMPLETED, SwapReason.NONE),
        (REFUNDED, SwapReason.SLIPPAGE),
    ]
    return results


def test_gas_of_each_phase(world: World) -> None:
    """What benchmarks/swap_gas.py measures, here so that it keeps working."""
    print()
    for name, gas in swap_gas(world).items():
        print(f"gas {name}: {gas}")


# --- the daemon's copy of the desk after a deep reorganisation -----------------------------------


HEAD_IS_FINAL, HEAD_IS_NOT = Finality("confirmations", 0), Finality("confirmations", 1)


class DeskCopy:
    """A daemon's store of desk A's swaps, filled as the desk's watcher fills it, on chain A."""

    def __init__(self, w: World, path: Path) -> None:
        self.w, self.chain, self.store = w, w.a.chain, Store(path)

    def rpc(self, method: str, *params: str) -> str:
        return str(self.chain.w3.provider.make_request(RPCEndpoint(method), list(params))["result"])

    def record(self, receipt: TxReceipt) -> tuple[SwapRecord, WatchCursor]:
        [(sid, swap)] = self.w.recorded(self.w.desk_a, receipt)
        block, block_hash = receipt["blockNumber"], "0x" + bytes(receipt["blockHash"]).hex()
        found = SwapRecord(hex32(sid), SwapSide.A, "bank-b", message_key(A, swap.message_nonce), swap, block,
                           block_hash)  # fmt: skip
        return found, WatchCursor("swap-desk", block, block_hash)

    def read(self, amount_x: int) -> tuple[str, TxReceipt]:
        """USER initiates a swap of `amount_x`, and the store records it as the desk's watcher does."""
        _, _, receipt = self.w.initiate(amount_x, quote(amount_x, PRICE, FEE_BPS))
        found, cursor = self.record(receipt)
        self.store.record_swaps([found], cursor=cursor)
        return found.swap_id, receipt

    def deep_reorg(self, snapshot: str, then_amount_x: int) -> TxReceipt:
        """The chain back to `snapshot`, an empty block, then USER's swap of `then_amount_x`; halted."""
        self.rpc("evm_revert", snapshot)
        self.rpc("evm_mine")
        _, _, receipt = self.w.initiate(then_amount_x, quote(then_amount_x, PRICE, FEE_BPS))
        self.store.halt("swap-desk", "reorganisation deeper than finality (the test)")
        return receipt

    def resolve(
        self, finality: Finality = HEAD_IS_FINAL, *, desk: bool = True, rewind: bool = False
    ) -> Resolution:
        contract = self.w.desk_a if desk else None
        return resolve(
            self.store, self.chain, contract, "swap-desk", finality=finality, rewind=rewind, who="the test"
        )


def test_a_deep_reorganisation_under_the_desk_s_stream_is_resumed_as_the_desk_records_it_now(
    world: World, tmp_path: Path
) -> None:
    """The "swap-desk" stream's resume (`relayer.halts.resolve`) after chain A reorganised deeper than
    finality (an anvil snapshot reverted): a swap read from a block that stayed is left alone; one whose
    id the chain now gives another swap (the same nonce, another amount) takes the desk's record in the
    chain's final blocks, with its new block, and its old reclaim transaction is forgotten; one the desk
    no longer has is forgotten; the watcher reads again from the last unchanged block, the stream is
    never a conflict, and the watcher reading those blocks again never moves a swap backwards."""
    d = DeskCopy(world, tmp_path / "store.sqlite")
    kept, kept_receipt = d.read(AMOUNT_X)
    snapshot = d.rpc("evm_snapshot")
    reused, _ = d.read(AMOUNT_X)
    lost, _ = d.read(AMOUNT_X)
    with d.store._write() as db:  # as if the daemon had sent a reclaim for it
        db.execute("UPDATE swaps SET tx = '0xabc' WHERE swap_id = ?", [reused])
    again_receipt = d.deep_reorg(snapshot, 2 * AMOUNT_X)  # nonce 1 again, for another amount
    before = d.store.swap(kept)

    outcome = d.resolve()
    assert outcome.lifted and outcome.conflicts == [], outcome
    assert (outcome.moved, outcome.dropped) == ([reused], [lost]), outcome
    assert d.store.swap(kept) == before
    assert d.store.swap(lost) is None
    now = d.store.swap(reused)
    assert now is not None
    assert (now.amount_x, now.status, now.block_number, now.tx) == (
        2 * AMOUNT_X,
        "initiated",
        again_receipt["blockNumber"],
        None,
    )
    assert now.message_id == message_key(A, 1)
    _, kept_cursor = d.record(kept_receipt)
    assert d.store.watch_cursor("swap-desk") == kept_cursor
    assert d.store.active_halt("swap-desk") is None

    # The watcher reads the chain again from the cursor: an older record of a swap never replaces a newer.
    newer, _ = d.record(again_receipt)
    older = dataclasses.replace(newer, swap=dataclasses.replace(newer.swap, state=COMPLETED), block_number=1)
    assert d.store.record_swaps([older], cursor=kept_cursor) == 0 and d.store.swap(reused) == now

    with pytest.raises(StoreError, match="not halted"):
        d.resolve()
    d.store.halt("swap-desk", "again")
    with pytest.raises(StoreError, match="only the outbox stream can be rewound"):
        d.resolve(rewind=True)


def test_a_swap_recorded_only_in_a_block_not_final_yet_is_read_again_once_final(
    world: World, tmp_path: Path
) -> None:
    """The "swap-desk" resume takes nothing from blocks above the chain's final head: a swap whose only
    record is there is forgotten, for the watcher to read once it is final. A halt left after the desk
    was taken out of the config is lifted with nothing to compare."""
    d = DeskCopy(world, tmp_path / "store.sqlite")
    snapshot = d.rpc("evm_snapshot")
    pending, _ = d.read(AMOUNT_X)
    d.deep_reorg(snapshot, 3 * AMOUNT_X)
    outcome = d.resolve(HEAD_IS_NOT)
    assert outcome.lifted and outcome.dropped == [pending] and d.store.swap(pending) is None, outcome

    d.store.halt("swap-desk", "left when the desk was taken out of the config")
    outcome = d.resolve(desk=False)
    assert outcome.lifted and "no swap desk configured" in outcome.summary, outcome
