"""Inbox.executeBatches on a real anvil node (chain_b, 902): a round of messages grouped by batch, each
batch tree checked once with a multiproof (PoseidonMerkle.rootOfMany) and each batch's aggregated path
once. Chain C's batches are settled in a Python mirror of the L1 Hub's aggregated tree (the aggregated
leaves the Hub appends), whose roots B's operator imports: the Inbox never reads L1, so no Hub is needed
here (tests/test_inbox.py runs rounds of batches a real Hub settled).

The adversarial cases: swapped leaves, a position named twice, indices out of order or range, a wrong
depth, proof nodes left over or missing, a node outside the field, a leaf of another batch or of another
source chain, a bad aggregated path, and a message executed twice in one round; each rejects only its
own group (BadPath), and the Python verifier (proofs.merkle.poseidon_verify_multiproof) agrees with the
contract on every one of them."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import pytest
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from bridge_contracts import anvil, deploy
from bridge_contracts.chain import Chain, Reverted, decode_revert
from bridge_contracts.messages import (
    BatchProof,
    Message,
    MessageProof,
    aggregated_leaf,
    batch_groups,
)
from proofs import merkle
from proofs.field import R
from proofs.merkle import KeccakTree, PoseidonTree
from relayer.pipeline.context import Context
from relayer.pipeline.executor import OUT_OF_GAS, Executor
from relayer.sender import Sender
from tests.settlement import asset_data, asset_id, call_error, events, message

B, C, L1 = 902, 903, 901
OPERATOR_B = anvil.dev_account(2)
USER = anvil.dev_account(5)
EXECUTED, FAILED, REJECTED = 0, 1, 2
BAD_PATH = "BadPath()"
C_TOKEN = "0x" + "c0" * 20
C_TOKEN_ID = asset_id(C, C_TOKEN)
C_TOKEN_DATA = asset_data(C, C_TOKEN, "Token C", "TKC", 6)


def calldata(fn: ContractFunction) -> bytes:
    return bytes.fromhex(fn._encode_transaction_data().removeprefix("0x"))


@dataclass
class Settled:
    """One of C's batches: its messages (in order), its tree and its aggregated leaf's index."""

    number: int
    messages: list[Message]
    tree: PoseidonTree
    aggregated_index: int


@dataclass
class World:
    chain: Chain
    inbox: Contract
    recorder: Contract
    tree: KeccakTree  # the Hub's aggregated tree, mirrored
    batches: dict[int, Settled]

    def note(self, nonce: int) -> Message:
        """Message `nonce` of C to B's CallRecorder, without value."""
        data = calldata(self.recorder.functions.receiveMessage(b"n%d" % nonce))
        return message(C, B, nonce, self.recorder.address, data=data)

    def settle(self, messages: list[Message], capacity: int, *, source: int = C) -> Settled:
        """The next batch of `source` (C unless told), its aggregated leaf appended and the root imported."""
        number = sum(1 for s in self.batches.values() if s.messages[0].source_chain_id == source)
        tree = PoseidonTree([m.leaf() for m in messages], capacity)
        index = self.tree.append(aggregated_leaf(source, number, tree.depth, tree.root))
        settled = Settled(number, messages, tree, index)
        self.batches[index] = settled
        self.chain.with_signer(OPERATOR_B).send(self.inbox.functions.importRoot(self.tree.root))
        return settled

    def proof(self, settled: Settled, indices: list[int]) -> BatchProof:
        """The genuine BatchProof of the messages of `settled` at `indices`."""
        return BatchProof(
            source_chain_id=settled.messages[0].source_chain_id,
            batch_number=settled.number,
            depth=settled.tree.depth,
            indices=tuple(indices),
            nodes=tuple(settled.tree.multiproof(indices)),
            aggregated_index=settled.aggregated_index,
            aggregated_siblings=tuple(self.tree.proof(settled.aggregated_index)),
        )

    def group(self, settled: Settled, indices: list[int]) -> tuple[list[Message], BatchProof]:
        return [settled.messages[i] for i in indices], self.proof(settled, indices)

    def round_fn(self, groups: list[tuple[list[Message], BatchProof]], root: bytes | None = None) -> Any:
        messages = [m.as_tuple() for ms, _ in groups for m in ms]
        proofs = [p.as_tuple() for _, p in groups]
        return self.inbox.functions.executeBatches(root or self.tree.root, messages, proofs)

    def outcomes(self, groups: list[tuple[list[Message], BatchProof]]) -> list[int]:
        """The round's outcomes as an eth_call (nothing changes)."""
        return list(self.round_fn(groups).call({"from": USER.address}))

    def run(self, groups: list[tuple[list[Message], BatchProof]]) -> TxReceipt:
        return self.chain.with_signer(USER).send(self.round_fn(groups))

    def record(self, index: int) -> tuple[int, str, bytes, int, int, bytes]:
        source, sender, asset, amount, value, note = self.recorder.functions.records(index).call()
        return source, sender, bytes(asset), amount, value, bytes(note)

    def rejected(self, receipt: TxReceipt) -> list[tuple[bytes, str]]:
        return [(e["id"], decode_revert(e["reason"])) for e in events(self.inbox, "MessageRejected", receipt)]


@pytest.fixture
def world(chain_b: Chain) -> World:
    poseidon = deploy.deploy_poseidon(chain_b, deploy.PROTOCOL_POSEIDON)
    router = deploy.deploy_asset_router(chain_b)
    outbox = deploy.deploy_outbox(chain_b, router.address, owner=chain_b.signer.address, poseidon=poseidon)
    inbox = deploy.deploy_inbox(chain_b, router.address, OPERATOR_B.address, L1, poseidon)
    chain_b.send(router.functions.connect(outbox.address, inbox.address))
    return World(chain_b, inbox, chain_b.deploy("CallRecorder"), KeccakTree(), {})


def python_accepts(world: World, messages: list[Message], proof: BatchProof) -> bool:
    """What the contract's group check says, computed in Python: the multiproof reaches a batch root
    whose aggregated leaf (with the proof's source, number and depth) is under the current root."""
    if proof.depth > 10 or any(m.source_chain_id != proof.source_chain_id or m.amount >= R for m in messages):
        return False
    try:
        leaves = [m.leaf() for m in messages]
        root = merkle.poseidon_root_from_multiproof(leaves, proof.indices, proof.nodes, proof.depth)
        leaf = aggregated_leaf(proof.source_chain_id, proof.batch_number, proof.depth, root)
        return merkle.keccak_verify(leaf, proof.aggregated_index, proof.aggregated_siblings, world.tree.root)
    except merkle.MerkleError:
        return False


# --- bridge_contracts.messages: a round's batch groups ------------------------------------------


def test_batch_groups_from_single_proofs() -> None:
    """The daemon's grouping: one group per batch in the order of its first message, sorted by position;
    a position named twice gets a group of its own."""
    tree = PoseidonTree([101, 102, 103, 104], 8)
    agg = tuple(bytes([i]) * 32 for i in range(32))
    m = [message(C, B, n, USER.address) for n in range(5)]

    def single(index: int, batch: int = 4) -> MessageProof:
        return MessageProof(batch, index, tuple(tree.proof(index)), 7, agg, b"\x01" * 32)

    deposit = message(L1, B, 9, USER.address)
    items = [
        (m[3], single(3)),
        (deposit, MessageProof(9, 0, (), 8, agg, b"\x01" * 32)),
        (m[0], single(0)),
        (m[4], single(0)),  # claims message 0's place
        (m[1], single(1)),
    ]
    groups = batch_groups(items)
    assert [(g.proof.batch_number, g.proof.indices, [x.nonce for x in g.messages]) for g in groups] == [
        (4, (0, 1, 3), [0, 1, 3]),
        (4, (0,), [4]),
        (9, (0,), [9]),
    ]
    first = groups[0].proof
    assert (first.source_chain_id, first.depth, first.aggregated_index) == (C, 3, 7)
    assert first.nodes == tuple(tree.multiproof([0, 1, 3]))
    assert groups[2].proof == BatchProof(L1, 9, 0, (0,), (), 8, agg)
    with pytest.raises(ValueError, match="one aggregated root"):
        batch_groups([items[0], (m[1], dataclasses.replace(single(1), aggregated_root=b"\x02" * 32))])


# --- the Inbox ----------------------------------------------------------------------------------------


def test_a_full_batch_and_parts_of_others_in_one_round(world: World) -> None:
    full = world.settle([world.note(n) for n in range(16)], 16)
    part = world.settle([world.note(16 + n) for n in range(11)], 16)
    lone = world.settle([world.note(27 + n) for n in range(3)], 8)
    groups = [world.group(full, list(range(16))), world.group(part, [1, 2, 7, 10]), world.group(lone, [2])]
    assert groups[0][1].nodes == ()
    assert world.outcomes(groups) == [EXECUTED] * 21
    receipt = world.run(groups)
    executed = [e["nonce"] for e in events(world.inbox, "MessageExecuted", receipt)]
    assert executed == [*range(16), 17, 18, 23, 26, 29]
    assert world.recorder.functions.count().call() == 21
    assert world.record(0) == (C, message(C, B, 0, world.recorder.address).sender, bytes(32), 0, 0, b"n0")
    for m in full.messages:
        assert world.inbox.functions.executed(m.id()).call()
    # Each executes once: the same round again rejects every item, and a genuine single proof too.
    assert world.outcomes(groups) == [REJECTED] * 21
    receipt = world.run(groups[2:])
    assert world.rejected(receipt) == [
        (lone.messages[2].id(), f"AlreadyExecuted(id=0x{lone.messages[2].id().hex()})")
    ]


@pytest.mark.parametrize(
    "case",
    [
        "swapped leaves",
        "duplicated index",
        "indices out of order",
        "index out of range",
        "wrong depth",
        "leftover node",
        "truncated nodes",
        "tampered node",
        "node outside the field",
        "leaf of another batch",
        "message of another source chain",
        "another batch number",
        "tampered aggregated path",
        "short aggregated path",
        "aggregated index out of range",
        "amount outside the field",
    ],
)
def test_a_bad_group_is_rejected_alone(world: World, case: str) -> None:
    """Each forgery rejects every item of its group with BadPath(), and nothing else: the genuine group
    beside it executes, and the Python verifier refuses the same group."""
    batch = world.settle([world.note(n) for n in range(10)], 16)
    other = world.settle([world.note(10 + n) for n in range(4)], 8)
    messages, proof = world.group(batch, [1, 2, 5, 9])
    nodes = proof.nodes
    match case:
        case "swapped leaves":
            messages = [messages[1], messages[0], *messages[2:]]
        case "duplicated index":
            proof = dataclasses.replace(proof, indices=(1, 2, 2, 9))
        case "indices out of order":
            messages = [messages[1], messages[0], *messages[2:]]
            proof = dataclasses.replace(proof, indices=(2, 1, 5, 9))
        case "index out of range":
            proof = dataclasses.replace(proof, indices=(1, 2, 5, 9 + 16))
        case "wrong depth":
            # The same tree posed one level deeper: the genuine root as a left child of an empty sibling.
            zero = merkle.poseidon_zero_hashes(5)[4]
            proof = dataclasses.replace(proof, depth=5, nodes=(*nodes, zero))
        case "leftover node":
            proof = dataclasses.replace(proof, nodes=(*nodes, 0))
        case "truncated nodes":
            proof = dataclasses.replace(proof, nodes=nodes[:-1])
        case "tampered node":
            proof = dataclasses.replace(proof, nodes=((nodes[0] + 1) % R, *nodes[1:]))
        case "node outside the field":
            proof = dataclasses.replace(proof, nodes=(nodes[0] + R, *nodes[1:]))
        case "leaf of another batch":
            messages = [*messages[:3], other.messages[1]]
        case "message of another source chain":
            messages = [*messages[:3], dataclasses.replace(messages[3], source_chain_id=904)]
        case "another batch number":
            proof = dataclasses.replace(proof, batch_number=other.number)
        case "tampered aggregated path":
            flipped = bytes([proof.aggregated_siblings[0][0] ^ 1]) + proof.aggregated_siblings[0][1:]
            proof = dataclasses.replace(proof, aggregated_siblings=(flipped, *proof.aggregated_siblings[1:]))
        case "short aggregated path":
            proof = dataclasses.replace(proof, aggregated_siblings=proof.aggregated_siblings[:31])
        case "aggregated index out of range":
            proof = dataclasses.replace(proof, aggregated_index=proof.aggregated_index + 2**32)
        case "amount outside the field":
            messages = [*messages[:3], dataclasses.replace(messages[3], amount=R)]
    assert not python_accepts(world, messages, proof)
    genuine = world.group(other, [0, 3])
    groups = [(messages, proof), genuine]
    assert world.outcomes(groups) == [REJECTED] * 4 + [EXECUTED] * 2
    receipt = world.run(groups)
    assert world.rejected(receipt) == [(m.id(), BAD_PATH) for m in messages]
    assert [e["nonce"] for e in events(world.inbox, "MessageExecuted", receipt)] == [10, 13]
    # The genuine group of the same messages still goes through.
    assert world.outcomes([world.group(batch, [1, 2, 5, 9])]) == [EXECUTED] * 4


def test_the_contract_and_the_python_verifier_agree(world: World) -> None:
    """Random subsets and random tampering: the Inbox executes a group exactly when the Python verifier
    accepts it (eth_calls, so each case starts from the same state)."""
    rng = random.Random(7)
    batch = world.settle([world.note(n) for n in range(13)], 16)
    verdicts = set()
    for case in range(24):
        indices = sorted(rng.sample(range(16), rng.randrange(1, 7)))
        messages = [batch.messages[i] if i < 13 else world.note(100 + i) for i in indices]
        proof = world.proof(batch, indices)
        match case % 6:
            case 1:  # a padding position named (its "message" is not the padding leaf)
                proof = dataclasses.replace(proof, indices=tuple(min(15, i + 13) for i in indices))
            case 2 if proof.nodes:
                k = rng.randrange(len(proof.nodes))
                nodes = list(proof.nodes)
                nodes[k] = rng.randrange(R)
                proof = dataclasses.replace(proof, nodes=tuple(nodes))
            case 3:
                proof = dataclasses.replace(proof, nodes=proof.nodes[: rng.randrange(len(proof.nodes) + 1)])
            case 4 if len(indices) > 1:
                rng.shuffle(messages)
        accepted = python_accepts(world, messages, proof)
        verdicts.add(accepted)
        expected = EXECUTED if accepted else REJECTED
        assert world.outcomes([(messages, proof)]) == [expected] * len(messages), (case, indices)
    assert verdicts == {True, False}


def test_a_message_twice_in_one_round_executes_once(world: World) -> None:
    batch = world.settle([world.note(n) for n in range(4)], 8)
    twice = world.group(batch, [1, 2])
    groups = [twice, world.group(batch, [0, 1]), twice]
    assert world.outcomes(groups) == [EXECUTED, EXECUTED, EXECUTED, REJECTED, REJECTED, REJECTED]
    receipt = world.run(groups)
    already = [(m.id(), f"AlreadyExecuted(id=0x{m.id().hex()})") for m in (batch.messages[1], *twice[0])]
    assert world.rejected(receipt) == already
    assert world.recorder.functions.count().call() == 3


def test_per_item_refusals_and_failures_stay_with_their_item(world: World) -> None:
    failing = world.chain.deploy("CallRecorder")
    world.chain.send(failing.functions.setFailing(True))
    fails = message(C, B, 1, failing.address, data=calldata(failing.functions.receiveMessage(b"x")))
    elsewhere = message(C, 904, 2, world.recorder.address)
    minted = message(
        C, B, 3, world.recorder.address, data=calldata(world.recorder.functions.receiveMessage(b"minted")),
        asset=C_TOKEN_ID, amount=5, assetdata=C_TOKEN_DATA,
    )  # fmt: skip
    batch = world.settle([world.note(0), fails, elsewhere, minted], 8)
    groups = [world.group(batch, [0, 1, 2, 3])]
    assert world.outcomes(groups) == [EXECUTED, FAILED, REJECTED, EXECUTED]
    receipt = world.run(groups)
    [failed] = events(world.inbox, "MessageFailed", receipt)
    assert (failed["id"], decode_revert(failed["reason"])) == (fails.id(), "TargetFailing()")
    assert world.rejected(receipt) == [(elsewhere.id(), "WrongDestination(destChainId=904)")]
    assert not world.inbox.functions.executed(fails.id()).call()
    assert world.record(1)[2:] == (C_TOKEN_ID, 5, 0, b"minted")
    # The failed one is replayed, alone, once its target works.
    world.chain.send(failing.functions.setFailing(False))
    assert world.outcomes([world.group(batch, [1])]) == [EXECUTED]


def test_group_level_refusals(world: World) -> None:
    batch = world.settle([world.note(n) for n in range(3)], 8)
    messages, proof = world.group(batch, [0, 2])
    too_deep = dataclasses.replace(proof, depth=11)
    mine = [dataclasses.replace(m, source_chain_id=B) for m in messages]
    receipt = world.run([(messages, too_deep), (mine, dataclasses.replace(proof, source_chain_id=B))])
    assert world.rejected(receipt) == [
        *[(m.id(), "BatchTooDeep(depth=11)") for m in messages],
        *[(m.id(), "SourceIsThisChain()") for m in mine],
    ]
    # Round-level shape errors revert the call: nothing in it could be matched to its proof.
    fn = world.inbox.functions.executeBatches
    root = world.tree.root
    assert (
        call_error(fn(root, [messages[0].as_tuple()], [proof.as_tuple()]))
        == "LengthMismatch(messages=1, proofs=2)"
    )
    empty = dataclasses.replace(proof, indices=())
    assert call_error(fn(root, [], [empty.as_tuple()])) == "EmptyBatch(group=0)"
    unknown = b"\x42" * 32
    assert call_error(fn(unknown, [m.as_tuple() for m in messages], [proof.as_tuple()])) == (
        f"UnknownRoot(root=0x{unknown.hex()})"
    )


def test_the_operator_imports_the_root_in_the_round(world: World) -> None:
    batch = world.settle([world.note(n) for n in range(2)], 8)
    world.tree.append(b"\x05" * 32)  # a newer root, not imported yet
    messages, proof = world.group(batch, [0, 1])
    args = (world.tree.root, [m.as_tuple() for m in messages], [proof.as_tuple()])
    fn = world.inbox.functions.executeBatchesWithRoot(*args)
    with pytest.raises(Reverted, match="OwnableUnauthorizedAccount"):
        world.chain.with_signer(USER).send(fn)
    receipt = world.chain.with_signer(OPERATOR_B).send(fn)
    assert events(world.inbox, "RootImported", receipt) == [{"root": world.tree.root}]
    assert [e["nonce"] for e in events(world.inbox, "MessageExecuted", receipt)] == [0, 1]


def test_a_starving_target_reverts_the_round_at_any_limit(world: World) -> None:
    """A target that burns all the gas it is given, then reverts with all the data the rest pays for
    (GasTrap), makes the whole round revert at any limit (NotEnoughGas, or out of gas copying its reason):
    its message is never recorded as failed for want of gas, nor are the others."""
    trap = world.chain.deploy("GasTrap")
    batch = world.settle([world.note(0), message(C, B, 1, trap.address, data=b"\x01")], 8)
    fn = world.round_fn([world.group(batch, [0, 1])])
    for gas in (1_000_000, 4_000_000, 16_000_000):
        assert call_error_with_gas(fn, gas) in ("NotEnoughGas()", "no reason given")
    with pytest.raises(Exception):  # noqa: B017 (the node refuses to estimate it)
        fn.estimate_gas({"from": USER.address})
    assert not world.inbox.functions.executed(batch.messages[0].id()).call()


def call_error_with_gas(fn: ContractFunction, gas: int) -> str:
    try:
        fn.call({"from": USER.address, "gas": gas})
    except Exception as exc:  # ContractLogicError with the revert data, or out of gas
        data = getattr(exc, "data", None)
        return decode_revert(data if isinstance(data, str) else None)
    raise AssertionError("the call did not revert")


def test_an_l1_deposit_is_a_group_of_depth_0(world: World) -> None:
    deposit = message(
        L1, B, 4, world.recorder.address, data=calldata(world.recorder.functions.receiveMessage(b"d"))
    )
    index = world.tree.append(aggregated_leaf(L1, 4, 0, deposit.leaf()))
    world.chain.with_signer(OPERATOR_B).send(world.inbox.functions.importRoot(world.tree.root))
    proof = BatchProof(L1, 4, 0, (0,), (), index, tuple(world.tree.proof(index)))
    posed = dataclasses.replace(proof, depth=3, nodes=(0, 0, 0))  # posing as a batch of depth 3
    assert world.outcomes([([deposit], posed)]) == [REJECTED]
    assert world.outcomes([([deposit], dataclasses.replace(proof, indices=(1,)))]) == [REJECTED]
    receipt = world.run([([deposit], proof)])
    assert [e["nonce"] for e in events(world.inbox, "MessageExecuted", receipt)] == [4]


def test_gas_of_a_full_round(world: World) -> None:
    """Printed, never asserted tightly: benchmarks/execute_gas.py has the figures."""
    batch = world.settle([world.note(n) for n in range(64)], 64)
    receipt = world.run([world.group(batch, list(range(64)))])
    print(f"\ngas executeBatches (a full batch of 64, CallRecorder): {receipt['gasUsed']}"
          f" = {receipt['gasUsed'] // 64} per message")  # fmt: skip
    assert world.recorder.functions.count().call() == 64


# --- what the daemon's executor reads of a round (found by an outside review) ---------------------


def _forwarder(world: World) -> str:
    """A contract whose fallback calls the Inbox with its own calldata (all gas), ignoring the result."""
    inbox = bytes.fromhex(world.inbox.address[2:])
    runtime = bytes.fromhex("36600060003760006000366000600073") + inbox + bytes.fromhex("5af15000")
    init = bytes.fromhex(f"60{len(runtime):02x}80600b6000396000f3") + runtime
    contract = world.chain.w3.eth.contract(abi=[], bytecode=init)
    return str(world.chain.send(contract.constructor())["contractAddress"])


def _round_failure(world: World, messages: list[Message], root: bytes, groups: list[Any]) -> str:
    """The reason the operator's round of `messages` (in `groups`) fails at every gas limit, as the
    executor reads it."""
    fn = world.inbox.functions.executeBatchesWithRoot(
        root, [m.as_tuple() for m in messages], [g.proof.as_tuple() for g in groups]
    )
    try:
        asyncio.run(
            Sender(world.chain.with_signer(OPERATOR_B), stuck_after=5).send(fn, what="round", until_fed=True)
        )
    except Exception as exc:
        return exc.error if isinstance(exc, Reverted) else str(exc)
    raise AssertionError("the round landed")


def test_a_target_flooding_revert_data_starves_its_round_as_NotEnoughGas(world: World) -> None:
    """A plain message to a target that reverts with all the data it can afford: its round reverts
    NotEnoughGas (the copied reason is capped), which the executor halves and isolates."""
    trap = world.chain.deploy("GasTrap")
    settled = world.settle([world.note(0), message(C, B, 1, trap.address, data=b"\x01")], 8)
    group = SimpleNamespace(proof=world.proof(settled, [0, 1]))
    reason = _round_failure(world, list(settled.messages), world.tree.root, [group])
    assert reason.startswith("NotEnoughGas"), reason[:200]


def test_a_rejection_a_target_forges_does_not_hide_an_executed_message(world: World) -> None:
    """A target in the round makes the Inbox emit MessageRejected for the next message's id (its own
    executeMany with a bogus copy): the executor goes by the nullifier, and records it executed."""
    victim = world.note(1)
    bogus = MessageProof(0, 0, (), 0, tuple(bytes(32) for _ in range(32)), b"\x77" * 32)
    forged = world.inbox.functions.executeMany(
        [message(C, B, 1, USER.address).as_tuple()], [bogus.as_tuple()]
    )
    attacker = message(C, B, 0, _forwarder(world), data=calldata(forged))
    settled = world.settle([attacker, victim], 8)
    fn = world.inbox.functions.executeBatchesWithRoot(
        world.tree.root, [m.as_tuple() for m in settled.messages], [world.proof(settled, [0, 1]).as_tuple()]
    )
    receipt = world.chain.with_signer(OPERATOR_B).send(fn)
    assert world.inbox.functions.executed(victim.id()).call()
    assert [bytes(e["id"]) for e in events(world.inbox, "MessageRejected", receipt)] == [victim.id()]
    ctx = SimpleNamespace(inbox=world.inbox, call=lambda fn: asyncio.to_thread(fn.call))
    executor = Executor(cast(Context, ctx))
    found = executor._outcomes(receipt)
    assert found[victim.id()][0] == "rejected"  # what the events alone say
    kind, _ = asyncio.run(executor.outcome(victim, found, receipt["blockNumber"]))
    assert kind == "already executed"  # recorded executed


def test_a_round_too_big_for_a_block_fails_as_out_of_gas(world: World) -> None:
    """128 messages, each alone in a batch of capacity 1024: the round does not fit a 30M block, and it
    fails in the Inbox's own work (not NotEnoughGas): the executor halves rounds on that too."""
    items = []
    for n in range(128):
        m = world.note(n)
        tree = PoseidonTree([m.leaf()], 1024)
        index = world.tree.append(aggregated_leaf(C, n, tree.depth, tree.root))
        items.append((m, tree, index))
    root = world.tree.root
    proven = [
        (m, MessageProof(n, 0, tuple(tree.proof(0)), index, tuple(world.tree.proof(index)), root))
        for n, (m, tree, index) in enumerate(items)
    ]
    groups = batch_groups(proven)
    reason = _round_failure(world, [m for g in groups for m in g.messages], root, groups)
    assert not reason.startswith("NotEnoughGas")
    assert any(sign in reason.lower() for sign in OUT_OF_GAS), reason[:200]
