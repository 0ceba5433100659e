"""Forced inclusion on real anvil nodes: the L1 Hub's priority queue of chain B (902) on chain_a (901),
filled with messages chain C (903, a chain only the Hub knows, as in tests/test_inbox.py) settled for
B with a real batch proof; the priority cursor in B's batch commits and reportPriority, overdue
operations, freeze and unfreeze; and B's Inbox on chain_b processing the queue (processPriorityOps),
its cursor and rolling hash the Hub's.

Module-scoped setup (its own snapshot of both nodes, rolled back when the module ends): the Hub, B's
router, Outbox and Inbox, B's batch 0 (1 wei of B's ether sent to C, so C holds some on L1), C's batch
0 of eight messages to B, and B's batch 1 proven but not committed (each test signs it with the cursor
it needs). Three Groth16 proofs in all; every test runs on conftest's per-test snapshots."""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode, encode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import RPCEndpoint, TxReceipt

from bridge_contracts import anvil, deploy
from bridge_contracts.anvil import AnvilNode
from bridge_contracts.chain import Chain, Reverted, decode_revert
from bridge_contracts.messages import (
    EMPTY_PRIORITY_HASH,
    Message,
    bounce_of,
    commit_digest,
    commitment,
    next_priority_hash,
    priority_digest,
    priority_id,
    sent_messages,
    sign_digest,
)
from hub.envelope import devnet_bus_key, seal, unseal
from relayer.halts import resolve
from relayer.store import QueuedOp, Store, StoreError, WatchCursor
from relayer.watcher import Finality
from tests.conftest import isolated
from tests.settlement import (
    CAPACITY,
    NATIVE,
    Prepared,
    Settlement,
    asset_id,
    call_error,
    ether_data,
    events,
    message,
)
from tests.test_inbox import calldata

B, C = 902, 903  # B is chain_b, where the Inbox is; C is a chain only the Hub knows
OPERATOR_B, OPERATOR_C = anvil.dev_account(2), anvil.dev_account(3)
USER = anvil.dev_account(5)
RELAYER = anvil.dev_account(7)  # forces messages and sends commits: anyone may
SECRET_SENDER = anvil.dev_account(9).address
RECIPIENT = anvil.dev_account(6).address
OWNER = anvil.dev_account(0).address  # governance on L1 (conftest's signer)
B_ETH, C_ETH = asset_id(B, NATIVE), asset_id(C, NATIVE)
DAY = 86_400
WINDOW = 4 * DAY  # Hub.DEFAULT_PRIORITY_WINDOW
EXECUTED, FAILED, BOUNCED, CLOSED = 0, 1, 3, 4
SECRET_NONCE = 0x5EC2E7C0FFEE0005  # distinctive bytes, to look for
SECRET_NOTE = b"terms of trade that only B may read"
MESSAGE_ABI = "(uint64,uint64,uint64,address,address,bytes32,uint256,bytes,bytes)"
# Runtime code that loops until it has burnt all the gas it was given: JUMPDEST PUSH1 0 JUMP.
BURNER_RUNTIME = bytes.fromhex("5b600056")


@dataclass
class World:
    hub: Settlement
    chain: Chain  # chain_b, signed by its deployer
    router: Contract
    outbox: Contract
    inbox: Contract
    recorder: Contract
    failing: Contract  # a CallRecorder that reverts
    incoming: list[Message]  # C's batch 0, every message to B
    next_b: Prepared  # B's batch 1, proven and signed for cursor 0

    @property
    def l1(self) -> Contract:
        return self.hub.hub

    def operator(self) -> Chain:
        return self.chain.with_signer(OPERATOR_B)


def _deploy_burner(chain: Chain) -> str:
    """A contract whose every call (and plain value transfer) burns all the gas it gets."""
    runtime = int.from_bytes(BURNER_RUNTIME, "big")
    # PUSH4 runtime, PUSH1 0, MSTORE, PUSH1 4, PUSH1 28, RETURN
    init = bytes.fromhex(f"63{runtime:08x}600052600460" + "1cf3")
    factory = chain.w3.eth.contract(abi=[], bytecode=init)
    address = chain.send(factory.constructor(), what="deploy burner")["contractAddress"]
    assert address is not None and bytes(chain.w3.eth.get_code(address)) == BURNER_RUNTIME
    return address


def _to(recorder: Contract, nonce: int, note: bytes, **fields: Any) -> Message:
    return message(
        C, B, nonce, recorder.address, data=calldata(recorder.functions.receiveMessage(note)), **fields
    )


def _build(a: Chain, b: Chain) -> World:
    hub = Settlement.deploy(a)
    hub.register(B, OPERATOR_B)
    hub.register(C, OPERATOR_C)
    poseidon = deploy.deploy_poseidon(b, deploy.PROTOCOL_POSEIDON)
    router = deploy.deploy_asset_router(b)
    outbox = deploy.deploy_outbox(b, router.address, owner=b.signer.address, poseidon=poseidon)
    inbox = deploy.deploy_inbox(b, router.address, OPERATOR_B.address, hub.l1, poseidon)
    b.send(router.functions.connect(outbox.address, inbox.address))
    b.send(outbox.functions.setDestination(C, True))
    recorder, failing = b.deploy("CallRecorder"), b.deploy("CallRecorder")
    b.send(failing.functions.setFailing(True))
    burner = _deploy_burner(b)

    # B's batch 0: 1 wei of B's ether to C (locked in B's router; C holds it on L1).
    sent_wei = outbox.functions.sendWithAsset(C, USER.address, b"", B_ETH, 1)
    [sent] = sent_messages(outbox, [b.with_signer(USER).send(sent_wei, value=1)])
    hub.commit(B, [sent.message], OPERATOR_B)
    c_eth = {"asset": C_ETH, "assetdata": ether_data(C)}
    incoming = [
        _to(recorder, 0, b"first"),
        _to(recorder, 1, b"valued", amount=7, **c_eth),
        _to(failing, 2, b"fails"),
        _to(recorder, 3, b"closed"),
        _to(recorder, 4, b"bounced", amount=5, **c_eth),
        _to(recorder, SECRET_NONCE, SECRET_NOTE, sender=SECRET_SENDER),
        _to(recorder, 6, b"sixth"),
        # C bounced B's wei back, to a sender that now burns all the gas a call gives it.
        dataclasses.replace(bounce_of(sent.message, 7), target=burner),
    ]
    hub.commit(C, incoming, OPERATOR_C)
    next_b = hub.prepare(B, [message(B, C, 1, RECIPIENT, data=b"next")], OPERATOR_B)
    return World(hub, b, router, outbox, inbox, recorder, failing, incoming, next_b)


@pytest.fixture(scope="module")
def base(node_a: AnvilNode, node_b: AnvilNode) -> Iterator[World]:
    with contextmanager(isolated)(node_a) as a, contextmanager(isolated)(node_b) as b:
        yield _build(a, b)


@pytest.fixture
def world(base: World, chain_a: Chain, chain_b: Chain) -> World:
    """The module's world, rolled back after the test (chain_a, chain_b), with its own copy of the
    Hub's Python mirror."""
    hub = dataclasses.replace(base.hub, tree=copy.deepcopy(base.hub.tree), places=dict(base.hub.places))
    return dataclasses.replace(base, hub=hub)


# --- helpers -------------------------------------------------------------------------------------


def error_from(fn: ContractFunction, sender: str, gas: int | None = None) -> str:
    """call_error for an eth_call from `sender` (an owner-only function), with `gas` if given."""
    try:
        fn.call({"from": sender} if gas is None else {"from": sender, "gas": gas})
    except ContractLogicError as exc:
        return decode_revert(exc.data if isinstance(exc.data, str) else None)
    raise AssertionError("the call did not revert")


def rpc(chain: Chain, method: str, *params: Any) -> Any:
    return chain.w3.provider.make_request(RPCEndpoint(method), list(params))["result"]


def advance(chain: Chain, seconds: int) -> None:
    rpc(chain, "evm_increaseTime", seconds)
    rpc(chain, "evm_mine")


def block_time(chain: Chain, receipt: TxReceipt) -> int:
    return int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def pid(world: World, m: Message) -> bytes:
    """The message's priority id, from where it is settled."""
    place = world.hub.places[m.id()]
    return priority_id(m.source_chain_id, place.batch_number, place.index, m.leaf())


def hash_after(world: World, messages: list[Message]) -> bytes:
    """The queue's rolling hash after these messages, in order (Python's)."""
    rolling = EMPTY_PRIORITY_HASH
    for m in messages:
        rolling = next_priority_hash(rolling, pid(world, m))
    return rolling


def plain_body(world: World, m: Message) -> bytes:
    """What a forced message's sealed body carries: the message and its batch path, ABI-encoded."""
    place = world.hub.places[m.id()]
    return encode(
        [MESSAGE_ABI, "uint64", "uint256", "uint256[]"],
        [m.as_tuple(), place.batch_number, place.index, list(place.batch_siblings)],
    )


def sealed_body(world: World, m: Message) -> bytes:
    key = bytes(world.l1.functions.busKeys(m.dest_chain_id).call()[0])
    return seal(plain_body(world, m), key)


def request(
    world: World,
    m: Message,
    *,
    leaf: tuple[int, int, bytes, int, int] | None = None,
    batch_number: int | None = None,
    index: int | None = None,
    siblings: tuple[int, ...] | None = None,
    body: bytes | None = None,
    signer: LocalAccount | None = None,
) -> ContractFunction:
    """requestPriorityOp for `m`, signed for by its source's operator (or `signer`); any argument
    given replaces the true one (the signature is for the true message and the body sent)."""
    place = world.hub.places[m.id()]
    body = sealed_body(world, m) if body is None else body
    operator = signer or (OPERATOR_C if m.source_chain_id == C else OPERATOR_B)
    return world.l1.functions.requestPriorityOp(
        m.leaf_fields() if leaf is None else leaf,
        place.batch_number if batch_number is None else batch_number,
        place.index if index is None else index,
        list(place.batch_siblings if siblings is None else siblings),
        body,
        world.hub.force_signature(operator, m, body),
    )


def force(world: World, m: Message, body: bytes | None = None) -> tuple[dict[str, Any], TxReceipt]:
    """requestPriorityOp for `m`, sent by a relayer: the PriorityOpQueued event and the receipt."""
    receipt = world.hub.chain.with_signer(RELAYER).send(request(world, m, body=body))
    [event] = events(world.l1, "PriorityOpQueued", receipt)
    return event, receipt


def commit_fn(
    world: World,
    cursor: int,
    rolling: bytes,
    *,
    signed_for: tuple[int, bytes] | None = None,
) -> ContractFunction:
    """commitBatch of B's batch 1 reporting `cursor` and `rolling`, signed by B's operator for them
    (or for `signed_for`: another cursor and hash)."""
    prepared = world.next_b
    signed_cursor, signed_hash = (cursor, rolling) if signed_for is None else signed_for
    digest = commit_digest(
        prepared.public,
        CAPACITY,
        l1_chain_id=world.hub.l1,
        hub=world.l1.address,
        priority_cursor=signed_cursor,
        priority_hash=signed_hash,
    )
    return world.l1.functions.commitBatch(
        commitment(prepared.public, CAPACITY, cursor, rolling),
        prepared.proof,
        sign_digest(OPERATOR_B, digest),
    )


def report_fn(world: World, cursor: int, rolling: bytes, signer: Any = OPERATOR_B) -> ContractFunction:
    digest = priority_digest(B, cursor, rolling, l1_chain_id=world.hub.l1, hub=world.l1.address)
    return world.l1.functions.reportPriority(B, cursor, rolling, sign_digest(signer, digest))


def state(world: World) -> tuple[int, int, bool]:
    """Hub.priority(B): window, cursor, frozen."""
    window, cursor, frozen = world.l1.functions.priority(B).call()
    return window, cursor, frozen


def overdue(world: World) -> tuple[bool, int, int]:
    late, index, deadline = world.l1.functions.overdue(B).call()
    return late, index, deadline


def process_fn(
    world: World, items: list[tuple[Message, str]], *, from_index: int | None = None, **proof_changes: Any
) -> ContractFunction:
    """processPriorityOps of (message, bounce reason) items against the Hub's current root, from the
    Inbox's cursor (or `from_index`), each named by its own priority id; the last item's proof changed
    by `proof_changes`."""
    proofs = [world.hub.proof(m) for m, _ in items]
    ids = [pid(world, m) for m, _ in items]
    if proof_changes:
        proofs[-1] = dataclasses.replace(proofs[-1], **proof_changes)
    cursor = inbox_priority(world)[0] if from_index is None else from_index
    return world.inbox.functions.processPriorityOps(
        world.hub.tree.root,
        cursor,
        [
            (i, m.as_tuple(), p.as_tuple(), reason)
            for i, (m, reason), p in zip(ids, items, proofs, strict=True)
        ],
    )


def process(world: World, items: list[tuple[Message, str]]) -> tuple[list[int], TxReceipt]:
    """The operator's round: its outcomes (simulated first) and its receipt."""
    fn = process_fn(world, items)
    outcomes = [int(o) for o in fn.call({"from": OPERATOR_B.address})]
    return outcomes, world.operator().send(fn)


def inbox_priority(world: World) -> tuple[int, bytes]:
    return (
        int(world.inbox.functions.priorityCursor().call()),
        bytes(world.inbox.functions.priorityHash().call()),
    )


def notes(recorder: Contract) -> list[bytes]:
    return [bytes(recorder.functions.records(i).call()[5]) for i in range(recorder.functions.count().call())]


# --- the L1 queue --------------------------------------------------------------------------------


def test_request_priority_op_queues_a_settled_message_for_its_destination(world: World) -> None:
    first, second, third = world.incoming[0], world.incoming[1], world.incoming[6]
    assert state(world) == (WINDOW, 0, False)
    assert world.l1.functions.priorityQueueLength(B).call() == 0
    assert overdue(world) == (False, 0, 0)
    assert bytes(world.l1.functions.priorityHashAt(B, 0).call()) == EMPTY_PRIORITY_HASH
    assert int(request(world, first).call()) == 0  # the queue index it gets

    body = sealed_body(world, first)
    event, receipt = force(world, first, body)
    print(f"\ngas requestPriorityOp (first of the queue, no value): {receipt['gasUsed']}")
    id0 = priority_id(C, 0, 0, first.leaf())
    h1 = next_priority_hash(EMPTY_PRIORITY_HASH, id0)
    deadline = block_time(world.hub.chain, receipt) + WINDOW
    assert event == {
        "destChainId": B,
        "index": 0,
        "priorityId": id0,
        "sourceChainId": C,
        "batchNumber": 0,
        "indexInBatch": 0,
        "deadline": deadline,
        "rollingHash": h1,
        "encryptedBody": body,
    }
    assert world.l1.functions.queuePosition(id0).call() == 1
    assert world.l1.functions.priorityQueueLength(B).call() == 1
    assert world.l1.functions.priorityOp(B, 0).call() == (id0, h1, deadline)
    assert bytes(world.l1.functions.priorityHashAt(B, 1).call()) == h1
    assert overdue(world) == (False, 0, deadline)
    assert world.l1.functions.priorityQueueLength(C).call() == 0  # the destination's queue, not the source's

    # The second operation chains the rolling hash.
    advance(world.hub.chain, 60)
    event, receipt = force(world, second)
    print(f"gas requestPriorityOp (value): {receipt['gasUsed']}")
    id1 = priority_id(C, 0, 1, second.leaf())
    h2 = next_priority_hash(h1, id1)
    later = block_time(world.hub.chain, receipt) + WINDOW
    assert later > deadline
    assert (event["index"], event["priorityId"], event["indexInBatch"]) == (1, id1, 1)
    assert (event["deadline"], event["rollingHash"]) == (later, h2)
    assert world.l1.functions.priorityOp(B, 1).call() == (id1, h2, later)
    assert [bytes(world.l1.functions.priorityHashAt(B, n).call()) for n in range(3)] == [
        EMPTY_PRIORITY_HASH,
        h1,
        h2,
    ]
    assert hash_after(world, [first, second]) == h2
    assert overdue(world) == (False, 0, deadline)  # the first one not reported is the one that counts

    # Governance shortens the window: a new operation never gets an earlier deadline than the last.
    receipt = world.hub.chain.send(world.l1.functions.setPriorityWindow(B, 3600))
    assert events(world.l1, "PriorityWindowSet", receipt) == [{"chainId": B, "window": 3600}]
    assert state(world) == (3600, 0, False)
    event, _ = force(world, third)
    assert (event["index"], event["deadline"]) == (2, later)
    assert world.l1.functions.priorityOp(B, 1).call()[2] == later  # queued ones keep theirs
    # A longer window again: the next deadline is its own.
    world.hub.chain.send(world.l1.functions.setPriorityWindow(B, 10 * DAY))
    event, receipt = force(world, world.incoming[3])
    assert event["deadline"] == block_time(world.hub.chain, receipt) + 10 * DAY


def test_the_request_shows_l1_nothing_of_the_message_but_its_sealed_body(world: World) -> None:
    secret = world.incoming[5]
    assert (secret.nonce, secret.sender) == (SECRET_NONCE, SECRET_SENDER)
    hidden = {
        "sender": bytes.fromhex(secret.sender[2:]),
        "target": bytes.fromhex(secret.target[2:]),
        "data": secret.data,
        "note": SECRET_NOTE,
        "nonce": secret.nonce.to_bytes(8, "big"),
    }
    plain = plain_body(world, secret)
    assert all(value in plain for value in hidden.values())  # the body does carry them
    event, receipt = force(world, secret)
    [log] = [entry for entry in receipt["logs"] if entry["address"] == world.l1.address]
    raw_event = bytes(log["data"]) + b"".join(bytes(topic) for topic in log["topics"])
    tx_input = bytes(world.hub.chain.w3.eth.get_transaction(receipt["transactionHash"])["input"])
    # The calldata is the leaf's fields, the batch path and the sealed body: nothing else.
    assert tx_input == calldata(request(world, secret, body=bytes(event["encryptedBody"])))
    for name, value in hidden.items():
        assert value not in raw_event, f"the event shows the message's {name}"
        assert value not in tx_input, f"the transaction's calldata shows the message's {name}"
    # The body is sealed to B's bus key: B opens it.
    assert event["priorityId"] == pid(world, secret)
    opened = unseal(bytes(event["encryptedBody"]), devnet_bus_key(2))
    assert opened == plain
    decoded_message, batch_number, index, siblings = decode(
        [MESSAGE_ABI, "uint64", "uint256", "uint256[]"], opened
    )
    source, dest, nonce, sender, target, asset, amount, data, assetdata = decoded_message
    checksum = Web3.to_checksum_address
    opened_message = Message(
        source, dest, nonce, checksum(sender), checksum(target), asset, amount, data, assetdata
    )
    assert opened_message == secret
    assert (batch_number, index, tuple(siblings)) == (0, 5, world.hub.places[secret.id()].batch_siblings)


REQUEST_REFUSALS = [
    "batch not settled",
    "source never settled",
    "tampered amount",
    "tampered asset",
    "tampered body",
    "wrong index",
    "wrong siblings",
    "short path",
    "index out of range",
    "already queued",
    "destination L1",
    "unknown destination",
    "empty body",
    "amount too large",
    "body too wide",
    "not the source's operator",
    "another body than signed",
]


def _request_refusal(world: World, case: str) -> tuple[ContractFunction, str]:
    m = world.incoming[1]  # with value
    source, dest, asset, amount, body = m.leaf_fields()
    siblings = world.hub.places[m.id()].batch_siblings
    match case:
        case "batch not settled":
            return request(world, m, batch_number=1), "UnknownBatch(chainId=903, batchNumber=1)"
        case "source never settled":
            stranger = (904, dest, asset, amount, body)
            return request(world, m, leaf=stranger), "UnknownBatch(chainId=904, batchNumber=0)"
        case "tampered amount":
            return request(world, m, leaf=(source, dest, asset, amount + 1, body)), "BadPath()"
        case "tampered asset":
            return request(world, m, leaf=(source, dest, B_ETH, amount, body)), "BadPath()"
        case "tampered body":
            return request(world, m, leaf=(source, dest, asset, amount, body ^ 1)), "BadPath()"
        case "wrong index":
            return request(world, m, index=2), "BadPath()"
        case "wrong siblings":
            return request(world, m, siblings=(siblings[0] ^ 1, *siblings[1:])), "BadPath()"
        case "short path":
            return request(world, m, siblings=siblings[:2]), "BadPath()"
        case "index out of range":  # no alias of the same leaf at index + 8
            return request(world, m, index=1 + 8), "IndexOutOfRange(index=9, depth=3)"
        case "already queued":
            force(world, m)
            return request(world, m), f"AlreadyQueued(priorityId=0x{pid(world, m).hex()})"
        case "destination L1":
            return request(world, m, leaf=(source, world.hub.l1, asset, amount, body)), "DestinationIsL1()"
        case "unknown destination":
            nowhere = (source, 999, asset, amount, body)
            return request(world, m, leaf=nowhere), "UnknownDestination(destChainId=999)"
        case "empty body":
            return request(world, m, body=b""), "EmptyBody()"
        case "amount too large":
            return request(world, m, leaf=(source, dest, asset, 2**128, body)), "BadLeaf()"
        case "body too wide":
            return request(world, m, leaf=(source, dest, asset, amount, body | 2**248)), "BadLeaf()"
        case "not the source's operator":  # nobody but the source queues its message, with its body
            return (
                request(world, m, signer=OPERATOR_B),
                f"BadSignature(recovered={OPERATOR_B.address}, operator={OPERATOR_C.address})",
            )
        case "another body than signed":
            fn = request(world, m)
            args = list(fn.args)
            args[4] = b"\x01" + bytes(args[4])[1:]
            error = call_error(world.l1.functions.requestPriorityOp(*args))
            assert error.startswith("BadSignature(") and OPERATOR_C.address not in error.split(",")[0]
            return world.l1.functions.requestPriorityOp(*args), error
    raise AssertionError(case)


@pytest.mark.parametrize("case", REQUEST_REFUSALS)
def test_request_priority_op_refusals(world: World, case: str) -> None:
    fn, error = _request_refusal(world, case)
    queued = world.l1.functions.priorityQueueLength(B).call()
    assert call_error(fn) == error
    with pytest.raises(Reverted, match=re.escape(error)):
        world.hub.chain.with_signer(RELAYER).send(fn)
    assert world.l1.functions.priorityQueueLength(B).call() == queued


def test_only_governance_sets_the_priority_window_within_bounds(world: World) -> None:
    with pytest.raises(Reverted, match=r"OwnableUnauthorizedAccount"):
        world.hub.chain.with_signer(OPERATOR_B).send(world.l1.functions.setPriorityWindow(B, DAY))
    for window in (0, 365 * DAY + 1, 2**64 - 1):
        assert (
            error_from(world.l1.functions.setPriorityWindow(B, window), OWNER)
            == f"BadPriorityWindow(window={window})"
        )
    assert error_from(world.l1.functions.setPriorityWindow(904, DAY), OWNER) == "UnknownChain(chainId=904)"
    for window in (1, 365 * DAY):
        world.hub.chain.send(world.l1.functions.setPriorityWindow(B, window))
        assert state(world) == (window, 0, False)
    assert state(world)[0] == 365 * DAY and world.l1.functions.priority(C).call()[0] == WINDOW


# --- the cursor in commits and reports ------------------------------------------------------------


def test_commit_batch_checks_the_priority_cursor_and_hash(world: World) -> None:
    first, second = world.incoming[0], world.incoming[6]
    force(world, first)
    force(world, second)
    h1, h2 = hash_after(world, [first]), hash_after(world, [first, second])
    # Python's digest is the Hub's, cursor and hash included.
    batch = commitment(world.next_b.public, CAPACITY, 1, h1)
    assert bytes(world.l1.functions.commitDigest(batch).call()) == commit_digest(
        world.next_b.public,
        CAPACITY,
        l1_chain_id=world.hub.l1,
        hub=world.l1.address,
        priority_cursor=1,
        priority_hash=h1,
    )
    assert call_error(commit_fn(world, 1, h2)) == f"BadPriorityHash(expected=0x{h1.hex()}, got=0x{h2.hex()})"
    assert (
        call_error(commit_fn(world, 0, h1))
        == f"BadPriorityHash(expected=0x{bytes(32).hex()}, got=0x{h1.hex()})"
    )
    assert call_error(commit_fn(world, 3, h2)) == "BadPriorityCursor(cursor=3, reported=0, queueLength=2)"
    # The signature covers the cursor: signed for 0, sent with 1, it is another operator's.
    error = call_error(commit_fn(world, 1, h1, signed_for=(0, EMPTY_PRIORITY_HASH)))
    assert re.fullmatch(
        rf"BadSignature\(recovered=0x[0-9a-fA-F]{{40}}, operator={OPERATOR_B.address}\)", error
    )
    assert OPERATOR_B.address not in error.split(",")[0]
    error = call_error(commit_fn(world, 1, h1, signed_for=(1, h2)))  # and the hash
    assert error.startswith("BadSignature(") and OPERATOR_B.address not in error.split(",")[0]

    # Reported at 1, the cursor never goes back.
    world.hub.chain.with_signer(RELAYER).send(report_fn(world, 1, h1))
    assert call_error(commit_fn(world, 0, EMPTY_PRIORITY_HASH)) == (
        "BadPriorityCursor(cursor=0, reported=1, queueLength=2)"
    )
    receipt = world.hub.chain.with_signer(RELAYER).send(commit_fn(world, 2, h2))
    assert events(world.l1, "PriorityCursorReported", receipt) == [
        {"chainId": B, "cursor": 2, "rollingHash": h2}
    ]
    assert [e["batchNumber"] for e in events(world.l1, "BatchCommitted", receipt)] == [1]
    assert state(world) == (WINDOW, 2, False)
    assert world.hub.info(B).next_batch == 2


def test_a_commit_at_the_same_cursor_reports_nothing_new(world: World) -> None:
    force(world, world.incoming[0])
    receipt = world.hub.chain.with_signer(RELAYER).send(commit_fn(world, 0, EMPTY_PRIORITY_HASH))
    assert events(world.l1, "PriorityCursorReported", receipt) == []
    assert events(world.l1, "BatchCommitted", receipt)[0]["batchNumber"] == 1
    assert state(world) == (WINDOW, 0, False)


def test_an_overdue_operation_refuses_commits_until_the_cursor_passes_it(world: World) -> None:
    first, second = world.incoming[0], world.incoming[6]
    event, _ = force(world, first)
    deadline = event["deadline"]
    h1 = hash_after(world, [first])
    advance(world.hub.chain, WINDOW + 60)
    force(world, second)  # queued late: its own deadline is days away
    assert overdue(world) == (True, 0, deadline)
    assert call_error(commit_fn(world, 0, EMPTY_PRIORITY_HASH)) == (
        f"PriorityOpOverdue(chainId=902, index=0, deadline={deadline})"
    )
    with pytest.raises(Reverted, match=r"PriorityOpOverdue"):
        world.hub.chain.with_signer(RELAYER).send(commit_fn(world, 0, EMPTY_PRIORITY_HASH))
    receipt = world.hub.chain.with_signer(RELAYER).send(commit_fn(world, 1, h1))
    assert events(world.l1, "PriorityCursorReported", receipt) == [
        {"chainId": B, "cursor": 1, "rollingHash": h1}
    ]
    assert world.hub.info(B).next_batch == 2
    late, index, _ = overdue(world)
    assert (late, index) == (False, 1)


def test_report_priority_needs_the_operators_signature(world: World) -> None:
    first, second = world.incoming[0], world.incoming[6]
    force(world, first)
    force(world, second)
    h1, h2 = hash_after(world, [first]), hash_after(world, [first, second])
    assert bytes(world.l1.functions.priorityDigest(B, 1, h1).call()) == priority_digest(
        B, 1, h1, l1_chain_id=world.hub.l1, hub=world.l1.address
    )
    assert call_error(report_fn(world, 1, h1, OPERATOR_C)) == (
        f"BadSignature(recovered={OPERATOR_C.address}, operator={OPERATOR_B.address})"
    )
    garbage = world.l1.functions.reportPriority(B, 1, h1, b"\x01" * 10)
    assert call_error(garbage) == f"BadSignature(recovered=0x{'0' * 40}, operator={OPERATOR_B.address})"
    assert call_error(world.l1.functions.reportPriority(904, 1, h1, b"")) == "UnknownChain(chainId=904)"
    assert call_error(report_fn(world, 1, h2)) == f"BadPriorityHash(expected=0x{h1.hex()}, got=0x{h2.hex()})"
    assert call_error(report_fn(world, 3, h2)) == "BadPriorityCursor(cursor=3, reported=0, queueLength=2)"

    receipt = world.hub.chain.with_signer(USER).send(report_fn(world, 1, h1))  # anyone sends it
    print(f"\ngas reportPriority (0 -> 1): {receipt['gasUsed']}")
    assert events(world.l1, "PriorityCursorReported", receipt) == [
        {"chainId": B, "cursor": 1, "rollingHash": h1}
    ]
    assert state(world) == (WINDOW, 1, False)
    again = world.hub.chain.with_signer(USER).send(report_fn(world, 1, h1))
    assert events(world.l1, "PriorityCursorReported", again) == []
    assert call_error(report_fn(world, 0, EMPTY_PRIORITY_HASH)) == (
        "BadPriorityCursor(cursor=0, reported=1, queueLength=2)"
    )
    world.hub.chain.with_signer(USER).send(report_fn(world, 2, h2))
    assert state(world) == (WINDOW, 2, False)


def test_freeze_a_chain_with_an_overdue_operation_until_governance_unfreezes_it(world: World) -> None:
    first = world.incoming[0]
    event, _ = force(world, first)
    deadline, h1 = event["deadline"], hash_after(world, [first])
    assert call_error(world.l1.functions.freeze(B)) == "NothingOverdue(chainId=902)"
    assert call_error(world.l1.functions.freeze(904)) == "UnknownChain(chainId=904)"
    assert error_from(world.l1.functions.unfreeze(B), OWNER) == "NotFrozen(chainId=902)"

    advance(world.hub.chain, WINDOW + 60)
    receipt = world.hub.chain.with_signer(USER).send(world.l1.functions.freeze(B))  # anyone
    assert events(world.l1, "ChainFrozen", receipt) == [
        {"chainId": B, "overdueIndex": 0, "deadline": deadline}
    ]
    assert state(world) == (WINDOW, 0, True)
    assert call_error(world.l1.functions.freeze(B)) == "Frozen(chainId=902)"
    # A frozen chain settles nothing (even a commit that reports the cursor past the overdue
    # operation) and takes no deposit; other chains go on.
    assert call_error(commit_fn(world, 1, h1)) == "Frozen(chainId=902)"
    with pytest.raises(Reverted, match=r"Frozen\(chainId=902\)"):
        world.hub.deposit(USER, B, RECIPIENT, value=1)
    with pytest.raises(Reverted, match=r"Frozen\(chainId=902\)"):
        world.hub.deposit(USER, B, RECIPIENT, b"no value")
    world.hub.deposit(USER, C, RECIPIENT, value=1)
    assert error_from(world.l1.functions.unfreeze(C), OWNER) == "NotFrozen(chainId=903)"
    with pytest.raises(Reverted, match=r"OwnableUnauthorizedAccount"):
        world.hub.chain.with_signer(OPERATOR_B).send(world.l1.functions.unfreeze(B))

    # Unfrozen while the operation is still overdue: anyone freezes it again at once.
    receipt = world.hub.chain.send(world.l1.functions.unfreeze(B))
    assert events(world.l1, "ChainUnfrozen", receipt) == [{"chainId": B}]
    world.hub.chain.with_signer(USER).send(world.l1.functions.freeze(B))
    assert state(world) == (WINDOW, 0, True)

    # B reports its cursor past it while frozen; governance unfreezes; B commits again.
    receipt = world.hub.chain.with_signer(USER).send(report_fn(world, 1, h1))
    assert events(world.l1, "PriorityCursorReported", receipt) == [
        {"chainId": B, "cursor": 1, "rollingHash": h1}
    ]
    assert overdue(world) == (False, 1, 0)
    world.hub.chain.send(world.l1.functions.unfreeze(B))
    assert state(world) == (WINDOW, 1, False)
    assert call_error(world.l1.functions.freeze(B)) == "NothingOverdue(chainId=902)"
    world.hub.chain.with_signer(RELAYER).send(commit_fn(world, 1, h1))
    assert world.hub.info(B).next_batch == 2
    receipt = world.hub.chain.with_signer(USER).send(world.l1.functions.deposit(B, RECIPIENT, b""), value=1)
    assert len(events(world.l1, "DepositQueued", receipt)) == 1


# --- the Inbox ------------------------------------------------------------------------------------


def test_process_priority_ops_in_queue_order_keeps_the_hubs_rolling_hash(world: World) -> None:
    first, valued, sixth, closed = (world.incoming[i] for i in (0, 1, 6, 3))
    queue = [first, valued, sixth, closed]
    for m in queue:
        force(world, m)
    assert inbox_priority(world) == (0, EMPTY_PRIORITY_HASH)

    outcomes, receipt = process(world, [(first, ""), (valued, "")])
    print(f"\ngas processPriorityOps (2 ops, root imported, a BridgedToken deployed): {receipt['gasUsed']}")
    assert outcomes == [EXECUTED, EXECUTED]
    assert events(world.inbox, "RootImported", receipt) == [{"root": world.hub.tree.root}]
    processed = events(world.inbox, "PriorityOpProcessed", receipt)
    hub_hashes = [bytes(world.l1.functions.priorityHashAt(B, n).call()) for n in range(5)]
    assert processed == [
        {
            "index": 0,
            "id": first.id(),
            "priorityId": pid(world, first),
            "outcome": EXECUTED,
            "rollingHash": hub_hashes[1],
        },
        {
            "index": 1,
            "id": valued.id(),
            "priorityId": pid(world, valued),
            "outcome": EXECUTED,
            "rollingHash": hub_hashes[2],
        },
    ]
    assert [e["nonce"] for e in events(world.inbox, "MessageExecuted", receipt)] == [0, 1]
    assert inbox_priority(world) == (2, hub_hashes[2])
    assert notes(world.recorder) == [b"first", b"valued"]
    assert world.recorder.functions.records(1).call()[3] == 7  # the value came with it (minted)

    outcomes, receipt = process(world, [(sixth, ""), (closed, "")])
    print(f"gas processPriorityOps (2 ops): {receipt['gasUsed']}")
    assert outcomes == [EXECUTED, EXECUTED]
    assert events(world.inbox, "RootImported", receipt) == []
    assert [e["index"] for e in events(world.inbox, "PriorityOpProcessed", receipt)] == [2, 3]
    assert inbox_priority(world) == (4, hub_hashes[4])
    assert notes(world.recorder) == [b"first", b"valued", b"sixth", b"closed"]

    # What the Inbox keeps is what B's operator reports to L1.
    cursor, rolling = inbox_priority(world)
    receipt = world.hub.chain.with_signer(RELAYER).send(commit_fn(world, cursor, rolling))
    assert events(world.l1, "PriorityCursorReported", receipt) == [
        {"chainId": B, "cursor": 4, "rollingHash": rolling}
    ]


def test_a_failed_priority_op_counts_as_processed_and_stays_retryable(world: World) -> None:
    fails = world.incoming[2]
    force(world, fails)
    outcomes, receipt = process(world, [(fails, "")])
    assert outcomes == [FAILED]
    [failed] = events(world.inbox, "MessageFailed", receipt)
    assert (failed["id"], decode_revert(failed["reason"])) == (fails.id(), "TargetFailing()")
    [processed] = events(world.inbox, "PriorityOpProcessed", receipt)
    assert (processed["index"], processed["outcome"]) == (0, FAILED)
    assert inbox_priority(world) == (1, bytes(world.l1.functions.priorityHashAt(B, 1).call()))
    assert not world.inbox.functions.executed(fails.id()).call()
    assert world.failing.functions.count().call() == 0

    world.chain.send(world.failing.functions.setFailing(False))
    world.chain.with_signer(USER).send(
        world.inbox.functions.execute(fails.as_tuple(), world.hub.proof(fails).as_tuple())
    )
    assert notes(world.failing) == [b"fails"]
    assert world.inbox.functions.executed(fails.id()).call()
    assert inbox_priority(world)[0] == 1  # a retry is no priority operation


def test_a_bounced_priority_op_sends_its_value_home(world: World) -> None:
    bounced = world.incoming[4]
    force(world, bounced)
    bounce_nonce = int(world.outbox.functions.nonce().call())
    outcomes, receipt = process(world, [(bounced, "refused by peering")])
    assert outcomes == [BOUNCED]
    [event] = events(world.inbox, "MessageBounced", receipt)
    assert event == {
        "id": bounced.id(),
        "sourceChainId": C,
        "nonce": 4,
        "bounceNonce": bounce_nonce,
        "amount": 5,
        "reason": "refused by peering",
    }
    [sent] = sent_messages(world.outbox, [receipt])
    assert sent.message == bounce_of(bounced, bounce_nonce)
    assert (sent.message.target, sent.message.amount) == (bounced.sender, 5)
    assert world.inbox.functions.bounced(bounced.id()).call()
    assert world.inbox.functions.executed(bounced.id()).call()
    assert world.recorder.functions.count().call() == 0
    assert events(world.inbox, "MessageExecuted", receipt) == []
    [processed] = events(world.inbox, "PriorityOpProcessed", receipt)
    assert processed["outcome"] == BOUNCED
    assert inbox_priority(world) == (1, bytes(world.l1.functions.priorityHashAt(B, 1).call()))


def test_a_message_closed_before_is_counted_not_run_again(world: World) -> None:
    executed, bounced = world.incoming[3], world.incoming[0]
    world.operator().send(world.inbox.functions.importRoot(world.hub.tree.root))
    world.chain.with_signer(USER).send(
        world.inbox.functions.execute(executed.as_tuple(), world.hub.proof(executed).as_tuple())
    )
    world.operator().send(
        world.inbox.functions.bounce(bounced.as_tuple(), world.hub.proof(bounced).as_tuple(), "no")
    )
    assert notes(world.recorder) == [b"closed"]
    force(world, executed)  # L1 does not know: anyone may still force them
    force(world, bounced)
    outcomes, receipt = process(world, [(executed, ""), (bounced, "")])
    assert outcomes == [CLOSED, CLOSED]
    for name in ("MessageExecuted", "MessageFailed", "MessageBounced"):
        assert events(world.inbox, name, receipt) == []
    assert [(e["id"], e["outcome"]) for e in events(world.inbox, "PriorityOpProcessed", receipt)] == [
        (executed.id(), CLOSED),
        (bounced.id(), CLOSED),
    ]
    assert notes(world.recorder) == [b"closed"]  # once
    assert inbox_priority(world) == (2, bytes(world.l1.functions.priorityHashAt(B, 2).call()))


def test_only_the_owner_processes_priority_ops(world: World) -> None:
    m = world.incoming[0]
    force(world, m)
    fn = process_fn(world, [(m, "")])
    for stranger in (USER, anvil.dev_account(0)):  # the deployer is not the owner either
        with pytest.raises(Reverted, match=rf"OwnableUnauthorizedAccount\(account={stranger.address}\)"):
            world.chain.with_signer(stranger).send(fn)
    assert inbox_priority(world) == (0, EMPTY_PRIORITY_HASH)
    assert world.recorder.functions.count().call() == 0


def test_a_bad_proof_reverts_the_whole_round(world: World) -> None:
    first, sixth = world.incoming[0], world.incoming[6]
    force(world, first)
    force(world, sixth)
    items = [(first, ""), (sixth, "")]
    root = world.hub.tree.root
    bad = [
        (process_fn(world, items, index=5), "BadPath()"),
        (process_fn(world, items, batch_siblings=(0, 0, 0)), "BadPath()"),
        (process_fn(world, items, aggregated_root=b"\x42" * 32), f"UnknownRoot(root=0x{'42' * 32})"),
        (
            process_fn(world, [(world.incoming[7], "refused")]),
            f"CannotBounceABounce(id=0x{world.incoming[7].id().hex()})",
        ),
    ]
    for fn, error in bad:
        with pytest.raises(Reverted, match=re.escape(error)):
            world.operator().send(fn)
    proof = world.hub.proof(first).as_tuple()
    misnamed = world.inbox.functions.processPriorityOps(
        root, 0, [(b"\x07" * 32, first.as_tuple(), proof, "")]
    )
    refused = [
        (process_fn(world, items, from_index=1), "StalePriorityRound(cursor=0, fromIndex=1)"),
        (misnamed, f"WrongPriorityOp(cursor=0, named=0x{'07' * 32}, computed=0x{pid(world, first).hex()})"),
    ]
    for fn, error in refused:
        assert error_from(fn, OPERATOR_B.address) == error
    # Nothing of the first operation was applied, the root was not imported, the cursor did not move.
    assert inbox_priority(world) == (0, EMPTY_PRIORITY_HASH)
    assert world.recorder.functions.count().call() == 0
    assert not world.inbox.functions.executed(first.id()).call()
    assert not world.inbox.functions.importedRoots(root).call()
    outcomes, _ = process(world, items)
    assert outcomes == [EXECUTED, EXECUTED]
    assert inbox_priority(world) == (2, bytes(world.l1.functions.priorityHashAt(B, 2).call()))


def _outcome_or_error(world: World, items: list[tuple[Message, str]]) -> str:
    try:
        return str(process_fn(world, items).call({"from": OPERATOR_B.address}))
    except ContractLogicError as exc:
        return decode_revert(exc.data if isinstance(exc.data, str) else None)


def test_every_forced_operation_can_be_processed_by_its_destination(world: World) -> None:
    refund = world.incoming[7]
    assert refund.is_bounce and refund.amount == 1
    force(world, refund)
    tries = {
        "execute": _outcome_or_error(world, [(refund, "")]),
        "bounce": _outcome_or_error(world, [(refund, "refused")]),
    }
    # The refund is sent with REFUND_GAS only: the burner takes that, the refund fails (retryable) and
    # the operation is processed; a bounce is never bounced.
    assert tries == {"execute": "[1]", "bounce": f"CannotBounceABounce(id=0x{refund.id().hex()})"}, tries


def test_a_target_that_burns_every_gas_and_floods_its_reason_fails_within_its_budget(world: World) -> None:
    """Without a budget of its own, executing this message would revert the round at every gas limit
    (the copy of its reason starves the Inbox: NotEnoughGas) and the queue could never move."""
    trap = world.chain.deploy("GasTrap")
    m = message(C, B, 100, trap.address, data=b"anything")
    world.hub.commit(C, [m], OPERATOR_C)
    force(world, m)
    fn = process_fn(world, [(m, "")])
    for gas in (8_000_000, 29_000_000):
        assert [int(o) for o in fn.call({"from": OPERATOR_B.address, "gas": gas})] == [1]  # FAILED
    assert error_from(process_fn(world, [(m, "")]), OPERATOR_B.address, gas=4_000_000) == "NotEnoughGas()"
    receipt = world.operator().send(fn)
    [failed] = events(world.inbox, "MessageFailed", receipt)
    assert len(failed["reason"]) <= world.inbox.functions.MAX_REASON_BYTES().call()
    assert inbox_priority(world) == (1, hash_after(world, [m]))
    assert not world.inbox.functions.executed(m.id()).call()  # retryable


# --- the daemon's copy of the queue after a deep reorganisation of L1 ---------------------------


def test_a_deep_reorganisation_under_the_priority_stream_reads_again_what_is_not_processed(
    world: World, tmp_path: Path
) -> None:
    """The "l1-priority" stream's resume (`relayer.halts.resolve`) after L1 reorganised deeper than
    finality (an anvil snapshot reverted) and now queues another operation at an index the store had:
    while this chain's Inbox is processing the stored one, it is a conflict (the stream stays halted,
    and cannot be rewound); once it is back to queued, it is forgotten, to be read again as L1 has it,
    and the watcher reads again from the last unchanged block. A row with no block hash (stored before
    hashes were kept) is compared too."""
    l1 = world.hub.chain
    store = Store(tmp_path / "store.sqlite")
    final = Finality("confirmations", 0)

    def read(m: Message, *, hashed: bool = True) -> TxReceipt:
        """`m` forced, and its operation stored as the "l1-priority" watcher does."""
        event, receipt = force(world, m)
        block_hash = "0x" + bytes(receipt["blockHash"]).hex()
        op = QueuedOp(event["index"], event["priorityId"], C, event["batchNumber"], event["indexInBatch"],
                      float(event["deadline"]), event["rollingHash"], receipt["blockNumber"], "bank-c", m,
                      block_hash=block_hash if hashed else None)  # fmt: skip
        store.record_priority_ops([op], cursor=WatchCursor("l1-priority", receipt["blockNumber"], block_hash))
        return receipt

    first = read(world.incoming[0])
    snapshot = rpc(l1, "evm_snapshot")
    read(world.incoming[1], hashed=False)
    store.start_priority([1])  # this chain's Inbox is processing it
    rpc(l1, "evm_revert", snapshot)
    rpc(l1, "evm_mine")
    force(world, world.incoming[2])  # L1's operation 1 now
    store.halt("l1-priority", "reorganisation deeper than finality (the test)")

    outcome = resolve(store, l1, world.l1, "l1-priority", finality=final, rewind=False, who="the test")
    assert not outcome.lifted and "priority operation 1 (processing" in outcome.conflicts[0], outcome
    assert "L1's final blocks contradict" in outcome.summary and store.active_halt("l1-priority") is not None
    with pytest.raises(StoreError, match="only the outbox stream can be rewound"):
        resolve(store, l1, world.l1, "l1-priority", finality=final, rewind=True, who="the test")

    store.priority_not_sent([1], "never mined (the test)")
    outcome = resolve(store, l1, world.l1, "l1-priority", finality=final, rewind=False, who="the test")
    assert outcome.lifted and outcome.dropped == ["1"] and outcome.conflicts == [], outcome
    assert store.priority_op(1) is None and store.priority_op(0) is not None
    assert store.watch_cursor("l1-priority") == WatchCursor(
        "l1-priority", first["blockNumber"], "0x" + bytes(first["blockHash"]).hex()
    )
