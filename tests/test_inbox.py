"""The Inbox on a real anvil node (chain_b, 902), executing messages settled by a Hub on chain_a (the
L1, 901) with real batch proofs, its roots imported by the chain's operator: value and context, the
all-or-nothing rule, the nullifier, reentrancy, every refusal, executeMany, a round by batch
(executeBatchesWithRoot; its multiproofs and their forgeries: tests/test_inbox_multiproof.py), and L1
deposits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt, Wei

from bridge_contracts import anvil, deploy
from bridge_contracts.chain import Chain, Reverted, decode_revert
from bridge_contracts.messages import Message, MessageProof, SentMessage, batch_groups, sent_messages
from tests.settlement import (
    E18,
    NATIVE,
    Settlement,
    asset_data,
    asset_id,
    call_error,
    ether_data,
    events,
    message,
)

B, C = 902, 903  # B is chain_b, where the Inbox is; C is a chain only the Hub knows
OPERATOR_B, OPERATOR_C = anvil.dev_account(2), anvil.dev_account(3)
USER = anvil.dev_account(5)
SENDER = anvil.dev_account(8).address  # the sender of every message C sends (tests.settlement.message)
B_ETH = asset_id(B, NATIVE)
C_TOKEN = Web3.to_checksum_address("0x" + "c0" * 20)
C_TOKEN_ID = asset_id(C, C_TOKEN)
C_TOKEN_DATA = asset_data(C, C_TOKEN, "Token C", "TKC", 6)


def calldata(fn: ContractFunction) -> bytes:
    return bytes.fromhex(fn._encode_transaction_data().removeprefix("0x"))


@dataclass
class World:
    hub: Settlement
    chain: Chain  # chain_b, signed by its deployer
    router: Contract
    outbox: Contract
    inbox: Contract
    recorder: Contract

    def to_recorder(
        self, nonce: int, note: bytes, recorder: Contract | None = None, **value: object
    ) -> Message:
        """A message from C to a CallRecorder on B (nonce `nonce` of C's outbox)."""
        target = recorder if recorder is not None else self.recorder
        data = calldata(target.functions.receiveMessage(note))
        return message(C, B, nonce, target.address, data=data, **value)  # type: ignore[arg-type]

    def settle(self, messages: list[Message]) -> None:
        """C's next batch, settled on L1, its root imported on B."""
        self.hub.commit(C, messages, OPERATOR_C)
        self.import_root()

    def import_root(self) -> None:
        self.chain.with_signer(OPERATOR_B).send(self.inbox.functions.importRoot(self.hub.tree.root))

    def execute(self, m: Message, proof: MessageProof | None = None) -> TxReceipt:
        p = proof if proof is not None else self.hub.proof(m)
        return self.chain.with_signer(USER).send(self.inbox.functions.execute(m.as_tuple(), p.as_tuple()))

    def simulate(self, m: Message, proof: MessageProof | None = None) -> bool:
        p = proof if proof is not None else self.hub.proof(m)
        return bool(self.inbox.functions.execute(m.as_tuple(), p.as_tuple()).call({"from": USER.address}))

    def record(self, index: int) -> tuple[int, str, bytes, int, int, bytes]:
        source, sender, asset, amount, value, note = self.recorder.functions.records(index).call()
        return source, sender, bytes(asset), amount, value, bytes(note)


@pytest.fixture
def world(chain_a: Chain, chain_b: Chain) -> World:
    hub = Settlement.deploy(chain_a)
    hub.register(B, OPERATOR_B)
    hub.register(C, OPERATOR_C)
    hub.chain.send(hub.hub.functions.registerAsset(C, C_TOKEN))
    poseidon = deploy.deploy_poseidon(chain_b, deploy.PROTOCOL_POSEIDON)
    router = deploy.deploy_asset_router(chain_b)
    outbox = deploy.deploy_outbox(chain_b, router.address, owner=chain_b.signer.address, poseidon=poseidon)
    inbox = deploy.deploy_inbox(chain_b, router.address, OPERATOR_B.address, hub.l1, poseidon)
    chain_b.send(router.functions.connect(outbox.address, inbox.address))
    chain_b.send(outbox.functions.setDestination(C, True))
    recorder = chain_b.deploy("CallRecorder")
    return World(hub, chain_b, router, outbox, inbox, recorder)


def send_from_b(world: World, fn: ContractFunction, value: int = 0) -> SentMessage:
    [sent] = sent_messages(world.outbox, [world.chain.with_signer(USER).send(fn, value=value)])
    return sent


@pytest.fixture
def funded(world: World) -> tuple[World, Contract]:
    """C holds 5 ETH of B and 100 of B's deposit token, locked in B's router: sent from B's Outbox
    and settled on L1 in B's first batch."""
    token, token_id = world.hub.deposit_token(world.chain, world.router, USER, 100)
    native = world.outbox.functions.sendWithAsset(C, USER.address, b"", B_ETH, 5 * E18)
    erc20 = world.outbox.functions.sendWithAsset(C, USER.address, b"", token_id, 100)
    sent = [send_from_b(world, native, 5 * E18), send_from_b(world, erc20)]
    world.hub.commit(B, [s.message for s in sent], OPERATOR_B)
    assert world.hub.balance(C, B_ETH) == 5 * E18
    assert world.hub.balance(C, token_id) == 100
    return world, token


def test_native_and_erc20_value_reach_the_target_with_its_context(funded: tuple[World, Contract]) -> None:
    world, token = funded
    token_id = bytes(world.router.functions.assetIdOfToken(token.address).call())
    native = world.to_recorder(0, b"native", asset=B_ETH, amount=2 * E18, assetdata=ether_data(B))
    erc20 = world.to_recorder(
        1, b"erc20", asset=token_id, amount=40, assetdata=world.router.functions.assetDataOf(token_id).call()
    )
    minted = world.to_recorder(2, b"minted", asset=C_TOKEN_ID, amount=7, assetdata=C_TOKEN_DATA)
    world.settle([native, erc20, minted])
    assert world.hub.balance(C, B_ETH) == 3 * E18

    receipt = world.execute(native)
    print(f"\ngas execute (native value, CallRecorder): {receipt['gasUsed']}")
    assert world.record(0) == (C, SENDER, B_ETH, 2 * E18, 2 * E18, b"native")
    assert world.chain.w3.eth.get_balance(world.recorder.address) == 2 * E18
    assert world.chain.w3.eth.get_balance(world.inbox.address) == 0
    assert world.router.functions.locked(B_ETH).call() == 3 * E18
    [executed] = events(world.inbox, "MessageExecuted", receipt)
    assert executed == {
        "id": native.id(),
        "sourceChainId": C,
        "nonce": 0,
        "target": world.recorder.address,
        "assetId": B_ETH,
        "amount": 2 * E18,
    }
    assert world.inbox.functions.executed(native.id()).call()

    receipt = world.execute(erc20)
    print(f"gas execute (ERC-20 released): {receipt['gasUsed']}")
    assert world.record(1) == (C, SENDER, token_id, 40, 0, b"erc20")
    assert token.functions.balanceOf(world.recorder.address).call() == 40
    assert world.router.functions.locked(token_id).call() == 60

    receipt = world.execute(minted)
    print(f"gas execute (ERC-20 minted, first arrival: BridgedToken deployed): {receipt['gasUsed']}")
    assert world.record(2) == (C, SENDER, C_TOKEN_ID, 7, 0, b"minted")
    bridged = world.chain.contract("BridgedToken", world.router.functions.assets(C_TOKEN_ID).call()[2])
    assert bridged.functions.balanceOf(world.recorder.address).call() == 7
    assert bridged.functions.decimals().call() == 6
    assert world.recorder.functions.count().call() == 3

    # The nullifier: each message executes once.
    for m in (native, erc20, minted):
        with pytest.raises(Reverted, match=rf"AlreadyExecuted\(id=0x{m.id().hex()}\)"):
            world.execute(m)
    assert call_error(world.inbox.functions.context()) == "NoMessage()"


def test_a_failing_target_leaves_nothing_applied_and_is_retried_once(funded: tuple[World, Contract]) -> None:
    world, _ = funded
    m = world.to_recorder(0, b"retry", asset=B_ETH, amount=E18, assetdata=ether_data(B))
    world.settle([m])
    world.chain.send(world.recorder.functions.setFailing(True))
    assert world.simulate(m) is False
    receipt = world.execute(m)
    [failed] = events(world.inbox, "MessageFailed", receipt)
    assert (failed["id"], failed["sourceChainId"], failed["nonce"]) == (m.id(), C, 0)
    assert decode_revert(failed["reason"]) == "TargetFailing()"
    assert not events(world.inbox, "MessageExecuted", receipt)
    assert not world.inbox.functions.executed(m.id()).call()
    assert world.router.functions.locked(B_ETH).call() == 5 * E18  # nothing released
    assert world.chain.w3.eth.get_balance(world.recorder.address) == 0
    assert world.recorder.functions.count().call() == 0

    world.chain.send(world.recorder.functions.setFailing(False))
    assert world.simulate(m) is True
    world.execute(m)
    assert world.record(0) == (C, SENDER, B_ETH, E18, E18, b"retry")
    assert world.router.functions.locked(B_ETH).call() == 4 * E18
    with pytest.raises(Reverted, match=r"AlreadyExecuted"):
        world.execute(m)


def test_a_target_cannot_execute_its_message_again(funded: tuple[World, Contract]) -> None:
    world, _ = funded
    reentrant = world.chain.deploy("ReentrantTarget")
    data = calldata(reentrant.functions.receiveMessage(b""))
    m = message(C, B, 0, reentrant.address, data=data, asset=B_ETH, amount=E18, assetdata=ether_data(B))
    other = world.to_recorder(1, b"nested")
    world.settle([m, other])
    execute_again = world.inbox.functions.execute(m.as_tuple(), world.hub.proof(m).as_tuple())
    world.chain.send(reentrant.functions.arm(world.inbox.address, calldata(execute_again)))
    world.execute(m)
    assert reentrant.functions.lastOk().call() is False
    assert decode_revert(reentrant.functions.lastResult().call()) == f"AlreadyExecuted(id=0x{m.id().hex()})"
    assert world.chain.w3.eth.get_balance(reentrant.address) == E18  # once
    assert world.router.functions.locked(B_ETH).call() == 4 * E18


def test_a_nested_execution_keeps_the_outer_context(world: World) -> None:
    reentrant = world.chain.deploy("ReentrantTarget")
    outer = message(
        C,
        B,
        0,
        reentrant.address,
        sender=USER.address,
        data=calldata(reentrant.functions.receiveMessage(b"")),
    )
    inner = world.to_recorder(1, b"inner")
    world.settle([outer, inner])
    execute_inner = world.inbox.functions.execute(inner.as_tuple(), world.hub.proof(inner).as_tuple())
    world.chain.send(reentrant.functions.arm(world.inbox.address, calldata(execute_inner)))
    world.execute(outer)
    assert reentrant.functions.lastOk().call() is True
    assert world.record(0)[:2] == (C, SENDER)
    assert (reentrant.functions.sourceAfter().call(), reentrant.functions.senderAfter().call()) == (
        C,
        USER.address,
    )
    assert world.inbox.functions.executed(inner.id()).call()


@pytest.mark.parametrize(
    "case",
    [
        "tampered leaf",
        "another source chain",
        "tampered batch path",
        "wrong index",
        "tampered aggregated path",
        "short aggregated path",
        "aggregated index out of range",
        "unknown root",
        "wrong destination",
        "source is this chain",
        "batch too deep",
    ],
)
def test_refusals(world: World, case: str) -> None:
    m = world.to_recorder(0, b"hello")
    world.settle([m, world.to_recorder(1, b"second")])
    good = world.hub.proof(m)
    proof, error = good, r"BadPath\(\)"
    match case:
        case "tampered leaf":
            m = dataclasses.replace(m, data=m.data + b"\x00")
        case "another source chain":
            m = dataclasses.replace(m, source_chain_id=904)
        case "tampered batch path":
            proof = dataclasses.replace(
                good, batch_siblings=(good.batch_siblings[0] ^ 1, *good.batch_siblings[1:])
            )
        case "wrong index":
            proof = dataclasses.replace(good, index=1)
        case "tampered aggregated path":
            flipped = bytes([good.aggregated_siblings[5][0] ^ 1]) + good.aggregated_siblings[5][1:]
            siblings = (*good.aggregated_siblings[:5], flipped, *good.aggregated_siblings[6:])
            proof = dataclasses.replace(good, aggregated_siblings=siblings)
        case "short aggregated path":
            proof = dataclasses.replace(good, aggregated_siblings=good.aggregated_siblings[:31])
        case "aggregated index out of range":
            proof = dataclasses.replace(good, aggregated_index=good.aggregated_index + 2**32)
        case "unknown root":
            proof = dataclasses.replace(good, aggregated_root=b"\x42" * 32)
            error = r"UnknownRoot\(root=0x" + "42" * 32
        case "wrong destination":
            m, error = dataclasses.replace(m, dest_chain_id=904), r"WrongDestination\(destChainId=904\)"
        case "source is this chain":
            m, error = dataclasses.replace(m, source_chain_id=B), r"SourceIsThisChain\(\)"
        case "batch too deep":
            proof, error = dataclasses.replace(good, batch_siblings=(0,) * 11), r"BatchTooDeep\(depth=11\)"
    with pytest.raises(Reverted, match=error):
        world.execute(m, proof)
    assert world.recorder.functions.count().call() == 0
    world.execute(world.to_recorder(0, b"hello"), good)  # the genuine message and proof still work
    assert world.recorder.functions.count().call() == 1


def test_a_proof_against_an_earlier_imported_root_still_works(world: World) -> None:
    first = world.to_recorder(0, b"first")
    world.settle([first])
    early = world.hub.proof(first)
    world.settle([world.to_recorder(1, b"second")])
    assert early.aggregated_root != world.hub.tree.root
    world.execute(first, early)
    assert world.record(0)[5] == b"first"


def test_execute_many_isolates_each_item(world: World) -> None:
    failing = world.chain.deploy("CallRecorder")
    world.chain.send(failing.functions.setFailing(True))
    good = [
        world.to_recorder(i, b"good %d" % i, asset=C_TOKEN_ID, amount=i + 1, assetdata=C_TOKEN_DATA)
        for i in range(3)
    ]
    fails = world.to_recorder(3, b"fails", failing)
    world.settle([*good, fails])
    bad_proof = dataclasses.replace(world.hub.proof(good[1]), index=2)
    items = [
        (good[0], world.hub.proof(good[0])),
        (good[1], bad_proof),
        (fails, world.hub.proof(fails)),
        (good[2], world.hub.proof(good[2])),
        (good[0], world.hub.proof(good[0])),  # already executed, earlier in this very call
    ]
    fn = world.inbox.functions.executeMany([m.as_tuple() for m, _ in items], [p.as_tuple() for _, p in items])
    assert fn.call({"from": USER.address}) == [0, 2, 1, 0, 2]
    receipt = world.chain.with_signer(USER).send(fn)
    print(f"\ngas executeMany (5 items: 2 executed, 1 failed, 2 rejected): {receipt['gasUsed']}")
    assert [e["nonce"] for e in events(world.inbox, "MessageExecuted", receipt)] == [0, 2]
    assert [e["nonce"] for e in events(world.inbox, "MessageFailed", receipt)] == [3]
    rejected = [
        (e["id"], decode_revert(e["reason"])) for e in events(world.inbox, "MessageRejected", receipt)
    ]
    assert rejected == [
        (good[1].id(), "BadPath()"),
        (good[0].id(), f"AlreadyExecuted(id=0x{good[0].id().hex()})"),
    ]
    assert [world.record(i)[5] for i in range(2)] == [b"good 0", b"good 2"]
    # The rejected one goes through later with its genuine proof.
    world.execute(good[1])
    assert world.recorder.functions.count().call() == 3
    with pytest.raises(Reverted, match=r"LengthMismatch\(messages=1, proofs=0\)"):
        world.chain.send(world.inbox.functions.executeMany([good[0].as_tuple()], []))


def test_execute_many_gas_per_message(world: World) -> None:
    batch = [world.to_recorder(i, b"n%d" % i) for i in range(8)]
    world.settle(batch)
    fn = world.inbox.functions.executeMany(
        [m.as_tuple() for m in batch], [world.hub.proof(m).as_tuple() for m in batch]
    )
    receipt = world.chain.with_signer(USER).send(fn)
    assert world.recorder.functions.count().call() == 8
    print(
        f"\ngas executeMany (8 plain messages): {receipt['gasUsed']} = {receipt['gasUsed'] // 8} per message"
    )


def test_the_operator_imports_a_root_and_executes_against_it_in_one_transaction(world: World) -> None:
    batch = [world.to_recorder(i, b"w%d" % i) for i in range(2)]
    world.hub.commit(C, batch, OPERATOR_C)  # settled on L1; its root is not imported on B
    root = world.hub.tree.root
    proofs = [world.hub.proof(m).as_tuple() for m in batch]
    fn = world.inbox.functions.executeManyWithRoot(root, [m.as_tuple() for m in batch], proofs)
    with pytest.raises(Reverted, match=r"OwnableUnauthorizedAccount"):
        world.chain.with_signer(USER).send(fn)
    receipt = world.chain.with_signer(OPERATOR_B).send(fn)
    assert events(world.inbox, "RootImported", receipt) == [{"root": root}]
    assert [e["nonce"] for e in events(world.inbox, "MessageExecuted", receipt)] == [0, 1]
    assert world.recorder.functions.count().call() == 2


def test_a_round_by_batch_carries_value_and_context_and_isolates_a_failure(
    funded: tuple[World, Contract],
) -> None:
    """executeBatchesWithRoot over two batches a real Hub settled (the root imported in the round): native
    value, a released and a minted ERC-20, a plain message and a failing one, each with its context."""
    world, token = funded
    token_id = bytes(world.router.functions.assetIdOfToken(token.address).call())
    failing = world.chain.deploy("CallRecorder")
    world.chain.send(failing.functions.setFailing(True))
    native = world.to_recorder(0, b"native", asset=B_ETH, amount=2 * E18, assetdata=ether_data(B))
    erc20 = world.to_recorder(
        1, b"erc20", asset=token_id, amount=40, assetdata=world.router.functions.assetDataOf(token_id).call()
    )
    minted = world.to_recorder(2, b"minted", asset=C_TOKEN_ID, amount=7, assetdata=C_TOKEN_DATA)
    plain = world.to_recorder(3, b"plain")
    fails = world.to_recorder(4, b"fails", failing)
    world.hub.commit(C, [native, erc20, plain], OPERATOR_C)
    world.hub.commit(C, [minted, fails], OPERATOR_C)
    root = world.hub.tree.root  # not imported yet
    items = [(m, world.hub.proof(m)) for m in (plain, fails, native, minted, erc20)]
    groups = batch_groups(items)
    assert [[m.nonce for m in g.messages] for g in groups] == [[0, 1, 3], [2, 4]]
    fn = world.inbox.functions.executeBatchesWithRoot(
        root, [m.as_tuple() for g in groups for m in g.messages], [g.proof.as_tuple() for g in groups]
    )
    assert fn.call({"from": OPERATOR_B.address}) == [0, 0, 0, 0, 1]
    receipt = world.chain.with_signer(OPERATOR_B).send(fn)
    assert events(world.inbox, "RootImported", receipt) == [{"root": root}]
    assert [e["nonce"] for e in events(world.inbox, "MessageExecuted", receipt)] == [0, 1, 3, 2]
    [failed] = events(world.inbox, "MessageFailed", receipt)
    assert (failed["nonce"], decode_revert(failed["reason"])) == (4, "TargetFailing()")
    assert [world.record(i) for i in range(4)] == [
        (C, SENDER, B_ETH, 2 * E18, 2 * E18, b"native"),
        (C, SENDER, token_id, 40, 0, b"erc20"),
        (C, SENDER, bytes(32), 0, 0, b"plain"),
        (C, SENDER, C_TOKEN_ID, 7, 0, b"minted"),
    ]
    assert world.chain.w3.eth.get_balance(world.recorder.address) == 2 * E18
    assert token.functions.balanceOf(world.recorder.address).call() == 40
    assert not world.inbox.functions.executed(fails.id()).call()
    assert call_error(world.inbox.functions.context()) == "NoMessage()"
    # The failed one is executed later, alone, with its single proof, once its target works.
    world.chain.send(failing.functions.setFailing(False))
    world.execute(fails)
    assert failing.functions.count().call() == 1


def test_only_the_owner_imports_roots(world: World) -> None:
    root = b"\x07" * 32
    with pytest.raises(Reverted, match=r"OwnableUnauthorizedAccount"):
        world.chain.with_signer(USER).send(world.inbox.functions.importRoot(root))
    assert not world.inbox.functions.importedRoots(root).call()
    owner = world.chain.with_signer(OPERATOR_B)
    receipt = owner.send(world.inbox.functions.importRoot(root))
    assert events(world.inbox, "RootImported", receipt) == [{"root": root}]
    assert world.inbox.functions.importedRoots(root).call()
    assert events(world.inbox, "RootImported", owner.send(world.inbox.functions.importRoot(root))) == []


def test_the_inbox_takes_value_only_from_its_router_and_applies_only_its_own_calls(world: World) -> None:
    with pytest.raises(Reverted, match=rf"OnlyRouter\(caller={USER.address}\)"):
        _send_value(world, USER.address)
    m = world.to_recorder(0, b"direct")
    with pytest.raises(Reverted, match=rf"OnlySelf\(caller={USER.address}\)"):
        world.chain.with_signer(USER).send(world.inbox.functions.applyMessage(m.as_tuple()))
    assert (world.inbox.functions.chainId().call(), world.inbox.functions.l1ChainId().call()) == (
        B,
        world.hub.l1,
    )


def _send_value(world: World, sender: str) -> None:
    """A plain value transfer to the Inbox, as an eth_call; raises Reverted with the decoded error."""
    try:
        world.chain.w3.eth.call({"from": sender, "to": world.inbox.address, "value": Wei(1)})
    except ContractLogicError as exc:
        raise Reverted("send value", decode_revert(exc.data if isinstance(exc.data, str) else None)) from exc


def test_l1_deposits_execute_on_the_l2(world: World) -> None:
    l1 = world.hub.l1
    l1_eth = asset_id(l1, NATIVE)
    note = calldata(world.recorder.functions.receiveMessage(b"deposit"))
    valued, _ = world.hub.deposit(USER, B, world.recorder.address, note, value=E18)
    plain, _ = world.hub.deposit(
        USER, B, world.recorder.address, calldata(world.recorder.functions.receiveMessage(b"plain"))
    )
    world.import_root()
    receipt = world.execute(valued)
    print(f"\ngas execute (L1 deposit, BridgedToken deployed and minted): {receipt['gasUsed']}")
    assert world.record(0) == (l1, USER.address, l1_eth, E18, 0, b"deposit")
    bridged = world.chain.contract("BridgedToken", world.router.functions.assets(l1_eth).call()[2])
    assert bridged.functions.balanceOf(world.recorder.address).call() == E18
    assert (bridged.functions.symbol().call(), bridged.functions.decimals().call()) == ("ETH", 18)
    world.execute(plain)
    assert world.record(1) == (l1, USER.address, bytes(32), 0, 0, b"plain")
    with pytest.raises(Reverted, match=r"AlreadyExecuted"):
        world.execute(valued)
    # A deposit's proof is its own leaf at depth 0: posing it as a batch of depth 3 fails.
    other, _ = world.hub.deposit(USER, B, world.recorder.address, note)
    world.import_root()
    proof = world.hub.proof(other)
    with pytest.raises(Reverted, match=r"BadPath\(\)"):
        world.execute(other, dataclasses.replace(proof, batch_siblings=(0, 0, 0)))


@pytest.mark.parametrize("target", ["router", "router, with value", "inbox", "outbox"])
def test_a_message_cannot_make_the_inbox_call_its_own_contracts(world: World, target: str) -> None:
    """A message whose target is the Inbox, its router or its Outbox would make them take the Inbox's
    own calls (applyMessage, releaseOrMint, sendBounce) as genuine: it fails (ForbiddenTarget), nothing
    is minted, released or sent, and it stays bounceable."""
    thief = USER.address
    forged = message(C, B, 9, thief, asset=C_TOKEN_ID, amount=10**6, assetdata=C_TOKEN_DATA)
    contract = {"inbox": world.inbox, "outbox": world.outbox}.get(target, world.router)
    fn = {
        "inbox": lambda: world.inbox.functions.applyMessage(forged.as_tuple()),
        "outbox": lambda: world.outbox.functions.sendBounce(forged.as_tuple()),
    }.get(target, lambda: world.router.functions.releaseOrMint(C_TOKEN_ID, thief, 10**6, C_TOKEN_DATA))()
    value = {"asset": C_TOKEN_ID, "amount": 5, "assetdata": C_TOKEN_DATA} if "value" in target else {}
    m = message(C, B, 0, contract.address, data=calldata(fn), **value)  # type: ignore[arg-type]
    world.settle([m])
    for receipt in (
        world.execute(m),
        world.chain.with_signer(USER).send(
            world.inbox.functions.executeBatches(
                world.hub.tree.root,
                [m.as_tuple()],
                [batch_groups([(m, world.hub.proof(m))])[0].proof.as_tuple()],
            )
        ),
    ):
        [failed] = events(world.inbox, "MessageFailed", receipt)
        assert decode_revert(failed["reason"]) == f"ForbiddenTarget(target={contract.address})"
        assert not events(world.outbox, "MessageSent", receipt)
    assert world.router.functions.assets(C_TOKEN_ID).call()[2] == "0x" + "00" * 20  # nothing minted
    assert not world.inbox.functions.executed(forged.id()).call()
    proof = world.hub.proof(m).as_tuple()
    world.chain.with_signer(OPERATOR_B).send(world.inbox.functions.bounce(m.as_tuple(), proof, "forbidden"))
    assert world.inbox.functions.bounced(m.id()).call()
