"""Bounces on real anvil nodes: the L1 Hub on chain_a (901), full chains B (902, chain_b) and C (903, a
node of this module's own) with router, Outbox and Inbox, and D (904), a chain only the Hub knows (its
messages are made up, as in tests/test_inbox.py). A message with value that its destination bounces
goes home: the destination's Outbox sends the bounce message, L1's balances move back when it settles,
and the source's Inbox refunds the original sender; a bounced L1 deposit comes back as a withdrawal."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from bridge_contracts import anvil, deploy
from bridge_contracts.anvil import AnvilNode
from bridge_contracts.chain import Chain, Reverted, decode_revert
from bridge_contracts.messages import (
    BOUNCE_SENDER,
    Message,
    MessageProof,
    SentMessage,
    bounce_of,
    message_id,
    sent_messages,
)
from tests.conftest import isolated
from tests.settlement import (
    E18,
    NATIVE,
    Settlement,
    asset_data,
    asset_id,
    ether_data,
    events,
    message,
)
from tests.test_inbox import calldata

B, C, D = 902, 903, 904
OPERATOR_B, OPERATOR_C, OPERATOR_D = anvil.dev_account(2), anvil.dev_account(3), anvil.dev_account(4)
USER = anvil.dev_account(5)
RELAYER = anvil.dev_account(7)  # sends executions and finalizations, so USER pays only for its own sends
B_ETH = asset_id(B, NATIVE)
D_TOKEN = Web3.to_checksum_address("0x" + "d0" * 20)
D_TOKEN_ID = asset_id(D, D_TOKEN)
D_TOKEN_DATA = asset_data(D, D_TOKEN, "Token D", "TKD", 6)
ZERO = "0x" + "00" * 20
NO_BOUNCE_MESSAGE = 2**64 - 1
BOUNCED, REJECTED = 3, 2
BRIDGED_TOKEN_DEPLOY_GAS = 1_500_000  # as relayer.pipeline.executor adds for an asset's first arrival


@pytest.fixture(scope="module")
def node_c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    node = anvil.start(C, tmp_path_factory.mktemp("anvil") / f"{C}.log")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def chain_c(node_c: AnvilNode) -> Iterator[Chain]:
    """chain C, signed by dev account 0, rolled back when the test ends (as conftest's chain_a/chain_b)."""
    yield from isolated(node_c)


@dataclass
class L2:
    """One chain's router, Outbox and Inbox (owned by its operator)."""

    chain: Chain  # signed by the deployer
    operator: LocalAccount
    router: Contract
    outbox: Contract
    inbox: Contract

    @property
    def id(self) -> int:
        return self.chain.chain_id

    def send(
        self, sender: LocalAccount, fn: ContractFunction, value: int = 0
    ) -> tuple[SentMessage, TxReceipt]:
        receipt = self.chain.with_signer(sender).send(fn, value=value)
        [sent] = sent_messages(self.outbox, [receipt])
        return sent, receipt

    def execute(self, m: Message, proof: MessageProof) -> TxReceipt:
        return self.chain.with_signer(RELAYER).send(
            self.inbox.functions.execute(m.as_tuple(), proof.as_tuple())
        )

    def bounce_fn(self, m: Message, proof: MessageProof, reason: str) -> ContractFunction:
        return self.inbox.functions.bounce(m.as_tuple(), proof.as_tuple(), reason)

    def bounce(self, m: Message, proof: MessageProof, reason: str = "refused") -> TxReceipt:
        return self.chain.with_signer(self.operator).send(self.bounce_fn(m, proof, reason))


def deploy_l2(chain: Chain, l1: int, operator: LocalAccount, destinations: tuple[int, ...]) -> L2:
    poseidon = deploy.deploy_poseidon(chain, deploy.PROTOCOL_POSEIDON)
    router = deploy.deploy_asset_router(chain)
    outbox = deploy.deploy_outbox(chain, router.address, owner=chain.signer.address, poseidon=poseidon)
    inbox = deploy.deploy_inbox(chain, router.address, operator.address, l1, poseidon)
    chain.send(router.functions.connect(outbox.address, inbox.address))
    for dest in destinations:
        chain.send(outbox.functions.setDestination(dest, True))
    return L2(chain, operator, router, outbox, inbox)


@dataclass
class World:
    hub: Settlement
    b: L2
    c: L2

    def settle(self, source: L2, messages: list[Message]) -> None:
        """`source`'s next batch (what its Outbox sent, in order), settled on L1; the root imported on
        B and C."""
        self.hub.commit(source.id, messages, source.operator)
        assert self.hub.info(source.id).outbox_hash == source.outbox.functions.outboxHash().call()
        self.import_root()

    def settle_d(self, messages: list[Message]) -> None:
        """D's next batch of made-up messages, settled on L1; the root imported on B and C."""
        self.hub.commit(D, messages, OPERATOR_D)
        self.import_root()

    def import_root(self) -> None:
        for l2 in (self.b, self.c):
            l2.chain.with_signer(l2.operator).send(l2.inbox.functions.importRoot(self.hub.tree.root))


@pytest.fixture
def world(chain_a: Chain, chain_b: Chain, chain_c: Chain) -> World:
    hub = Settlement.deploy(chain_a)
    for chain_id, operator in ((B, OPERATOR_B), (C, OPERATOR_C), (D, OPERATOR_D)):
        hub.register(chain_id, operator)
    hub.chain.send(hub.hub.functions.registerAsset(D, D_TOKEN))
    b = deploy_l2(chain_b, hub.l1, OPERATOR_B, (C, D))
    c = deploy_l2(chain_c, hub.l1, OPERATOR_C, (B,))
    return World(hub, b, c)


def send_with_extra_gas(chain: Chain, fn: ContractFunction, extra: int) -> TxReceipt:
    """Chain.send with `extra` gas above the node's estimate."""
    address = chain.signer.address
    tx = fn.build_transaction(
        {"from": address, "nonce": chain.w3.eth.get_transaction_count(address), "chainId": chain.chain_id}
    )
    tx["gas"] = int(tx["gas"]) + extra
    signed = chain.signer.sign_transaction(cast(dict[str, Any], tx))
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    )
    assert receipt["status"] == 1
    return receipt


def fee(receipt: TxReceipt) -> int:
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def calls_to(chain: Chain, receipt: TxReceipt, address: str) -> list[dict[str, Any]]:
    """Every call frame of the transaction (callTracer) whose callee is `address`."""
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
    response = chain.w3.provider.make_request(
        "debug_traceTransaction",  # type: ignore[arg-type]
        [tx_hash, {"tracer": "callTracer"}],
    )
    found: list[dict[str, Any]] = []

    def walk(frame: dict[str, Any]) -> None:
        if str(frame.get("to", "")).lower() == address.lower():
            found.append(frame)
        for child in frame.get("calls", []):
            walk(child)

    walk(response["result"])
    return found


def assert_paid_without_calldata(chain: Chain, receipt: TxReceipt, to: str, amount: int) -> None:
    [frame] = calls_to(chain, receipt, to)
    assert (frame["type"], int(frame["value"], 16), frame["input"]) == ("CALL", amount, "0x")


# --- the round trip ------------------------------------------------------------------------------


@dataclass
class Holding:
    """An asset of B that USER sends to C: its id and data, USER's balance of it and the router's
    record of it (locked in the vault, or the BridgedToken's supply)."""

    id: bytes
    data: bytes
    amount: int
    native: bool
    held: Callable[[], int]
    router_state: Callable[[], int]


def _holding(world: World, kind: str) -> Holding:
    b = world.b
    match kind:
        case "native":
            return Holding(
                B_ETH,
                ether_data(B),
                2 * E18,
                True,
                lambda: b.chain.w3.eth.get_balance(USER.address),
                lambda: int(b.router.functions.locked(B_ETH).call()),
            )
        case "erc20 of B":
            token, token_id = world.hub.deposit_token(b.chain, b.router, USER, 100)
            return Holding(
                token_id,
                bytes(b.router.functions.assetDataOf(token_id).call()),
                40,
                False,
                lambda: int(token.functions.balanceOf(USER.address).call()),
                lambda: int(b.router.functions.locked(token_id).call()),
            )
        case "bridged L1 ether":
            # USER's 3 ETH deposited from L1 to B: a BridgedToken there, burned when sent to C.
            deposit, _ = world.hub.deposit(USER, B, USER.address, value=3 * E18)
            world.import_root()
            b.execute(deposit, world.hub.proof(deposit))
            l1_eth = asset_id(world.hub.l1, NATIVE)
            bridged = b.chain.contract("BridgedToken", b.router.functions.assets(l1_eth).call()[2])
            assert bridged.functions.balanceOf(USER.address).call() == 3 * E18
            return Holding(
                l1_eth,
                ether_data(world.hub.l1),
                E18,
                False,
                lambda: int(bridged.functions.balanceOf(USER.address).call()),
                lambda: int(bridged.functions.totalSupply().call()),
            )
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["native", "erc20 of B", "bridged L1 ether"])
def test_value_that_c_bounces_comes_back_to_its_sender_on_b(world: World, kind: str) -> None:
    hub, b, c = world.hub, world.b, world.c
    asset = _holding(world, kind)
    held, router_state = asset.held(), asset.router_state()
    hub_balances = (hub.balance(B, asset.id), hub.balance(C, asset.id))
    recorder = c.chain.deploy("CallRecorder")
    note = calldata(recorder.functions.receiveMessage(b"never"))
    send = b.outbox.functions.sendWithAsset(C, recorder.address, note, asset.id, asset.amount)
    sent, receipt = b.send(USER, send, asset.amount if asset.native else 0)
    paid = fee(receipt) if asset.native else 0
    original = sent.message
    assert asset.held() == held - asset.amount - paid
    world.settle(b, [original])
    assert hub.balance(C, asset.id) == hub_balances[1] + asset.amount

    # C bounces it: closed, nothing minted or released there, the bounce message sent home.
    c_outbox_nonce = c.outbox.functions.nonce().call()
    proof = hub.proof(original)
    assert c.bounce_fn(original, proof, "no peering").call({"from": OPERATOR_C.address}) == c_outbox_nonce
    receipt = c.bounce(original, proof, "no peering")
    print(f"\ngas bounce ({kind}): {receipt['gasUsed']}")
    assert events(c.inbox, "MessageBounced", receipt) == [
        {
            "id": original.id(),
            "sourceChainId": B,
            "nonce": original.nonce,
            "bounceNonce": c_outbox_nonce,
            "amount": asset.amount,
            "reason": "no peering",
        }
    ]
    expected = bounce_of(original, c_outbox_nonce)
    [bounce_sent] = sent_messages(c.outbox, [receipt])
    assert bounce_sent.message == expected
    assert bounce_sent.leaf == expected.leaf() == c.outbox.functions.leafOf(expected.as_tuple()).call()
    assert (expected.source_chain_id, expected.dest_chain_id, expected.sender, expected.target) == (
        C,
        B,
        BOUNCE_SENDER,
        USER.address,
    )
    assert expected.is_bounce and expected.bounced_id() == original.id()
    assert (expected.asset_id, expected.amount, expected.asset_data) == (asset.id, asset.amount, asset.data)
    assert c.inbox.functions.executed(original.id()).call()
    assert c.inbox.functions.bounced(original.id()).call()
    assert recorder.functions.count().call() == 0
    assert c.router.functions.assets(asset.id).call()[2] == ZERO  # never minted on C
    assert c.chain.w3.eth.get_balance(c.inbox.address) == 0

    # The bounce settles: L1's balances are as before the send.
    world.settle(c, [expected])
    assert (hub.balance(B, asset.id), hub.balance(C, asset.id)) == hub_balances

    # B's Inbox refunds USER, without calling it.
    receipt = b.execute(expected, hub.proof(expected))
    print(f"gas execute refund ({kind}): {receipt['gasUsed']}")
    assert events(b.inbox, "MessageRefunded", receipt) == [
        {
            "id": expected.id(),
            "bouncedId": original.id(),
            "to": USER.address,
            "assetId": asset.id,
            "amount": asset.amount,
        }
    ]
    [executed] = events(b.inbox, "MessageExecuted", receipt)
    assert (executed["id"], executed["target"], executed["amount"]) == (
        expected.id(),
        USER.address,
        asset.amount,
    )
    assert asset.held() == held - paid
    assert asset.router_state() == router_state
    assert b.inbox.functions.executed(expected.id()).call()
    assert not b.inbox.functions.bounced(expected.id()).call()
    assert b.chain.w3.eth.get_balance(b.inbox.address) == 0
    if asset.native:
        assert_paid_without_calldata(b.chain, receipt, USER.address, asset.amount)
    else:
        assert calls_to(b.chain, receipt, USER.address) == []
    with pytest.raises(Reverted, match=rf"AlreadyExecuted\(id=0x{expected.id().hex()}\)"):
        b.execute(expected, hub.proof(expected))


# --- refusals and the nullifier ------------------------------------------------------------------


def test_bounce_shares_the_nullifier_and_refuses_what_it_must(world: World) -> None:
    b, hub = world.b, world.hub
    recorder = b.chain.deploy("CallRecorder")
    note = calldata(recorder.functions.receiveMessage(b"x"))
    valued = [
        message(D, B, i, recorder.address, data=note, asset=D_TOKEN_ID, amount=i + 1, assetdata=D_TOKEN_DATA)
        for i in range(2)
    ]
    plain = message(D, B, 2, recorder.address, data=note)
    fake_bounce = message(
        D, B, 3, USER.address, sender=BOUNCE_SENDER, data=message_id(B, 9), asset=D_TOKEN_ID, amount=5,
        assetdata=D_TOKEN_DATA,
    )  # fmt: skip
    world.settle_d([*valued, plain, fake_bounce])
    first, second = valued

    with pytest.raises(Reverted, match=rf"OwnableUnauthorizedAccount\(account={USER.address}\)"):
        b.chain.with_signer(USER).send(b.bounce_fn(first, hub.proof(first), "x"))
    with pytest.raises(Reverted, match=r"BadPath\(\)"):
        b.bounce(first, dataclasses.replace(hub.proof(first), index=1))
    with pytest.raises(Reverted, match=r"UnknownRoot"):
        b.bounce(first, dataclasses.replace(hub.proof(first), aggregated_root=b"\x42" * 32))

    # Bounced, home to D even when D is no destination of B's; the nullifier is set for execute too.
    b.chain.send(b.outbox.functions.setDestination(D, False))
    receipt = b.bounce(first, hub.proof(first))
    [sent] = sent_messages(b.outbox, [receipt])
    assert sent.message == bounce_of(first, 0)
    with pytest.raises(Reverted, match=rf"AlreadyExecuted\(id=0x{first.id().hex()}\)"):
        b.bounce(first, hub.proof(first))
    with pytest.raises(Reverted, match=rf"AlreadyExecuted\(id=0x{first.id().hex()}\)"):
        b.execute(first, hub.proof(first))
    assert recorder.functions.count().call() == 0
    assert b.router.functions.assets(D_TOKEN_ID).call()[2] == ZERO

    # Executed: never bounced afterwards.
    b.execute(second, hub.proof(second))
    with pytest.raises(Reverted, match=rf"AlreadyExecuted\(id=0x{second.id().hex()}\)"):
        b.bounce(second, hub.proof(second))
    assert not b.inbox.functions.bounced(second.id()).call()

    # No value: only closed, no message sent.
    nonce, outbox_hash = b.outbox.functions.nonce().call(), b.outbox.functions.outboxHash().call()
    assert b.bounce_fn(plain, hub.proof(plain), "x").call({"from": OPERATOR_B.address}) == NO_BOUNCE_MESSAGE
    receipt = b.bounce(plain, hub.proof(plain), "gave up")
    assert events(b.inbox, "MessageBounced", receipt) == [
        {
            "id": plain.id(),
            "sourceChainId": D,
            "nonce": 2,
            "bounceNonce": NO_BOUNCE_MESSAGE,
            "amount": 0,
            "reason": "gave up",
        }
    ]
    assert sent_messages(b.outbox, [receipt]) == []
    assert (b.outbox.functions.nonce().call(), b.outbox.functions.outboxHash().call()) == (nonce, outbox_hash)
    assert b.inbox.functions.executed(plain.id()).call() and b.inbox.functions.bounced(plain.id()).call()
    assert b.inbox.functions.NO_BOUNCE_MESSAGE().call() == NO_BOUNCE_MESSAGE

    # A bounce is never bounced: its refund stays to be executed.
    with pytest.raises(Reverted, match=rf"CannotBounceABounce\(id=0x{fake_bounce.id().hex()}\)"):
        b.bounce(fake_bounce, hub.proof(fake_bounce))
    assert not b.inbox.functions.executed(fake_bounce.id()).call()

    # Only the Inbox sends bounces, and only the Inbox calls bounceOne.
    for who in (USER, OPERATOR_B, b.chain.signer):
        fn = b.outbox.functions.sendBounce(second.as_tuple())
        with pytest.raises(Reverted, match=rf"OnlyInbox\(caller={who.address}\)"):
            b.chain.with_signer(who).send(fn)
    with pytest.raises(Reverted, match=rf"OnlySelf\(caller={OPERATOR_B.address}\)"):
        b.chain.with_signer(OPERATOR_B).send(
            b.inbox.functions.bounceOne(first.as_tuple(), hub.proof(first).as_tuple(), "x")
        )


def test_bounce_many_with_root_isolates_each_item(world: World) -> None:
    b, hub = world.b, world.hub
    items = [
        message(D, B, i, USER.address, asset=D_TOKEN_ID, amount=10 + i, assetdata=D_TOKEN_DATA)
        for i in range(3)
    ] + [message(D, B, 3, USER.address, data=b"plain")]
    hub.commit(D, items, OPERATOR_D)  # settled; the root is not imported on B yet
    root = hub.tree.root
    proofs = [hub.proof(m) for m in items]
    b.chain.with_signer(OPERATOR_B).send(b.inbox.functions.importRoot(root))
    b.execute(items[1], proofs[1])
    # A fresh root for the round (D's next batch), so that the round imports it.
    hub.commit(D, [message(D, B, 4, USER.address, data=b"later")], OPERATOR_D)
    root = hub.tree.root
    proofs = [hub.proof(m) for m in items]
    bad = dataclasses.replace(proofs[2], index=0)
    reasons = ["a", "b", "c", "d"]
    fn = b.inbox.functions.bounceManyWithRoot(
        root,
        [m.as_tuple() for m in items],
        [p.as_tuple() for p in (proofs[0], proofs[1], bad, proofs[3])],
        reasons,
    )
    with pytest.raises(Reverted, match=r"OwnableUnauthorizedAccount"):
        b.chain.with_signer(USER).send(fn)
    assert fn.call({"from": OPERATOR_B.address}) == [BOUNCED, REJECTED, REJECTED, BOUNCED]
    receipt = b.chain.with_signer(OPERATOR_B).send(fn)
    assert events(b.inbox, "RootImported", receipt) == [{"root": root}]
    bounced = events(b.inbox, "MessageBounced", receipt)
    assert [(e["nonce"], e["bounceNonce"], e["reason"]) for e in bounced] == [
        (0, 0, "a"),
        (3, NO_BOUNCE_MESSAGE, "d"),
    ]
    rejected = [(e["id"], decode_revert(e["reason"])) for e in events(b.inbox, "MessageRejected", receipt)]
    assert rejected == [
        (items[1].id(), f"AlreadyExecuted(id=0x{items[1].id().hex()})"),
        (items[2].id(), "BadPath()"),
    ]
    assert [s.message for s in sent_messages(b.outbox, [receipt])] == [bounce_of(items[0], 0)]
    assert [b.inbox.functions.bounced(m.id()).call() for m in items] == [True, False, False, True]
    # The rejected one is bounced later with its genuine proof.
    b.bounce(items[2], proofs[2])
    assert b.outbox.functions.nonce().call() == 2
    for bad_args, error in (
        (([items[0].as_tuple()], [], ["a"]), r"LengthMismatch\(messages=1, proofs=0\)"),
        (([items[0].as_tuple()], [proofs[0].as_tuple()], []), r"ReasonsMismatch\(messages=1, reasons=0\)"),
    ):
        with pytest.raises(Reverted, match=error):
            b.chain.with_signer(OPERATOR_B).send(b.inbox.functions.bounceManyWithRoot(root, *bad_args))


def test_bounce_many_gas_per_message(world: World) -> None:
    b, hub = world.b, world.hub
    items = [
        message(D, B, i, USER.address, asset=D_TOKEN_ID, amount=i + 1, assetdata=D_TOKEN_DATA)
        for i in range(16)
    ]
    hub.commit(D, items[:8], OPERATOR_D)
    hub.commit(D, items[8:], OPERATOR_D)
    fn = b.inbox.functions.bounceManyWithRoot(
        hub.tree.root,
        [m.as_tuple() for m in items],
        [hub.proof(m).as_tuple() for m in items],
        ["peering"] * 16,
    )
    assert fn.call({"from": OPERATOR_B.address}) == [BOUNCED] * 16
    receipt = b.chain.with_signer(OPERATOR_B).send(fn)
    gas = int(receipt["gasUsed"])
    print(f"\ngas bounceManyWithRoot (16 messages with value): {gas} = {gas // 16} per message")
    assert [s.message for s in sent_messages(b.outbox, [receipt])] == [
        bounce_of(m, i) for i, m in enumerate(items)
    ]


# --- refunds -------------------------------------------------------------------------------------


def test_a_refund_to_a_contract_pays_it_without_a_call_and_a_refused_native_refund_is_retryable(
    world: World,
) -> None:
    """Bounce messages made up for D (as if D had bounced messages from B): a token refund to a
    CallRecorder reaches it without a call; a native refund to it fails (it takes no plain ether)."""
    b, hub = world.b, world.hub
    recorder = b.chain.deploy("CallRecorder")
    # D holds 1 ETH of B, locked in B's router.
    sent, _ = b.send(USER, b.outbox.functions.sendWithAsset(D, USER.address, b"", B_ETH, E18), E18)
    world.settle(b, [sent.message])
    native = message(
        D, B, 0, recorder.address, sender=BOUNCE_SENDER, data=message_id(B, 0), asset=B_ETH, amount=E18,
        assetdata=ether_data(B),
    )  # fmt: skip
    token = message(
        D, B, 1, recorder.address, sender=BOUNCE_SENDER, data=message_id(B, 1), asset=D_TOKEN_ID, amount=7,
        assetdata=D_TOKEN_DATA,
    )  # fmt: skip
    world.settle_d([native, token])

    # Its first arrival deploys the BridgedToken, which the node's estimate does not count (the
    # daemon adds gas for it too: relayer.pipeline.executor).
    fn = b.inbox.functions.execute(token.as_tuple(), hub.proof(token).as_tuple())
    receipt = send_with_extra_gas(b.chain.with_signer(RELAYER), fn, BRIDGED_TOKEN_DEPLOY_GAS)
    assert events(b.inbox, "MessageRefunded", receipt) == [
        {
            "id": token.id(),
            "bouncedId": message_id(B, 1),
            "to": recorder.address,
            "assetId": D_TOKEN_ID,
            "amount": 7,
        }
    ]
    bridged = b.chain.contract("BridgedToken", b.router.functions.assets(D_TOKEN_ID).call()[2])
    assert bridged.functions.balanceOf(recorder.address).call() == 7
    assert recorder.functions.count().call() == 0
    assert calls_to(b.chain, receipt, recorder.address) == []

    for _ in range(2):  # retryable: it fails again rather than being already executed
        receipt = b.execute(native, hub.proof(native))
        [failed] = events(b.inbox, "MessageFailed", receipt)
        assert (failed["id"], failed["sourceChainId"], failed["nonce"]) == (native.id(), D, 0)
        assert decode_revert(failed["reason"]) == f"NativeRefundFailed(to={recorder.address}, amount={E18})"
        assert events(b.inbox, "MessageRefunded", receipt) == []
        assert events(b.inbox, "MessageExecuted", receipt) == []
        assert not b.inbox.functions.executed(native.id()).call()
        assert b.router.functions.locked(B_ETH).call() == E18
        assert b.chain.w3.eth.get_balance(recorder.address) == 0
        assert b.chain.w3.eth.get_balance(b.inbox.address) == 0
        [frame] = calls_to(b.chain, receipt, recorder.address)  # tried once, with empty calldata
        assert (int(frame["value"], 16), frame["input"]) == (E18, "0x")


def test_a_bounced_l1_deposit_is_paid_back_on_l1_without_calldata(world: World) -> None:
    hub, c = world.hub, world.c
    l1_eth = asset_id(hub.l1, NATIVE)
    recorder = c.chain.deploy("CallRecorder")
    note = calldata(recorder.functions.receiveMessage(b"deposit"))
    deposit, _ = hub.deposit(USER, C, recorder.address, note, value=2 * E18)
    world.import_root()
    receipt = c.bounce(deposit, hub.proof(deposit), "deposits closed")
    [sent] = sent_messages(c.outbox, [receipt])
    assert sent.message == bounce_of(deposit, 0)
    assert (sent.message.dest_chain_id, sent.message.target) == (hub.l1, USER.address)
    assert hub.balance(C, l1_eth) == 2 * E18
    world.settle(c, [sent.message])
    assert hub.balance(C, l1_eth) == 0
    assert hub.balance(hub.l1, l1_eth) == 0  # L1 is the origin: released from `locked`, not credited

    before = hub.chain.w3.eth.get_balance(USER.address)
    receipt = hub.chain.with_signer(RELAYER).send(
        hub.hub.functions.finalizeWithdrawal(sent.message.as_tuple(), hub.proof(sent.message).as_tuple())
    )
    print(f"\ngas finalizeWithdrawal (bounced deposit): {receipt['gasUsed']}")
    assert hub.chain.w3.eth.get_balance(USER.address) == before + 2 * E18
    assert hub.hub.functions.locked(l1_eth).call() == 0
    assert_paid_without_calldata(hub.chain, receipt, USER.address, 2 * E18)
    [event] = events(hub.hub, "WithdrawalFinalized", receipt)
    assert (event["id"], event["target"], event["amount"]) == (sent.message.id(), USER.address, 2 * E18)


def test_a_withdrawal_that_is_not_a_bounce_still_calls_its_target_with_data(world: World) -> None:
    hub, c = world.hub, world.c
    c.chain.send(c.outbox.functions.setDestination(hub.l1, True))
    token = hub.chain.deploy("DevToken", "L1 token", "L1T", 18, 0)
    hub.chain.send(token.functions.mint(hub.hub.address, 5))
    data = calldata(token.functions.transfer(USER.address, 5))
    sent, _ = c.send(USER, c.outbox.functions.send(hub.l1, token.address, data))
    world.settle(c, [sent.message])
    assert not sent.message.is_bounce
    receipt = hub.chain.with_signer(RELAYER).send(
        hub.hub.functions.finalizeWithdrawal(sent.message.as_tuple(), hub.proof(sent.message).as_tuple())
    )
    [frame] = calls_to(hub.chain, receipt, token.address)
    assert frame["input"] == "0x" + data.hex()
    assert token.functions.balanceOf(USER.address).call() == 5


# --- the Python twin -----------------------------------------------------------------------------


def test_the_python_twin_of_the_bounce_format() -> None:
    assert Web3.to_checksum_address(Web3.keccak(text="xrelay.bounce")[12:]) == BOUNCE_SENDER
    original = message(B, C, 7, USER.address, asset=B_ETH, amount=3, data=b"call", assetdata=ether_data(B))
    bounce = bounce_of(original, 11)
    assert bounce == Message(C, B, 11, BOUNCE_SENDER, original.sender, B_ETH, 3, original.id(), ether_data(B))
    assert bounce.data == encode(["bytes32"], [original.id()])
    assert bounce.is_bounce and not original.is_bounce
    assert dataclasses.replace(bounce, sender=BOUNCE_SENDER.lower()).is_bounce
    assert bounce.bounced_id() == original.id()
    with pytest.raises(ValueError, match=r"not 33 bytes"):
        dataclasses.replace(bounce, data=original.id() + b"\x00").bounced_id()
    with pytest.raises(ValueError, match=r"is not a bounce"):
        original.bounced_id()
