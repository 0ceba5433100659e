"""Gas of executing a round of messages on a destination's Inbox (bridge_contracts/src/Inbox.sol): the
per-message path (executeManyWithRoot: each message with its own batch path and aggregated path, checked
in an inner call of its own) beside the round by batch (executeBatchesWithRoot: one multiproof per batch
tree, one aggregated path per batch, each node hashed once), on the same node and state.

Starts one anvil node (chain B, 902) with B's router, Outbox and Inbox (owned by B's operator, who sends
every round). Chain C's batches (capacity 64, 64 messages each) are settled in a Python mirror of the L1
Hub's aggregated tree (the leaves the Hub appends; the Inbox never reads L1) whose root is imported
before the rounds, so no round pays for a root import, and the Inbox has executed one message before
(its first execution keeps the Outbox's address, once in its life). Every round runs from the same
state (a snapshot), with messages to one of two targets:

- a CallRecorder (receiveMessage(note): it reads the Inbox's context() and stores a record);
- a no-op target: an address without code, sent the same calldata (a call that does nothing).

"target" is the gas the target's own call frames used (debug_traceTransaction's callTracer: the frames
whose callee is the target, with what they call, here the Inbox's context()); the CALL that reaches the
target (its cold access, its memory) is the protocol's. protocol = gasUsed - target, per message: the
21,000 base and the calldata included. With the no-op target, target = 0 and everything is protocol.
Both paths share the Inbox's plain-message shortcut (a message without value is called straight from
the Inbox); "before" is the per-message path as it was without it (a fixed reference).

Rounds: 1 message of a batch; 16 of one batch (contiguous positions 0..15, and spread: every 4th);
the whole batch of 64; and 64 spread over 4 batches (16 contiguous of each).

    python -m benchmarks.execute_gas [--out FILE]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import RPCEndpoint, TxReceipt

from benchmarks import arguments, local_chain, report
from bridge_contracts import anvil, deploy
from bridge_contracts.chain import Chain
from bridge_contracts.messages import Message, MessageProof, aggregated_leaf, batch_groups
from proofs.merkle import KeccakTree, PoseidonTree
from tests.settlement import message

L1_ID, B, C = 901, 902, 903
OPERATOR_B = anvil.dev_account(2)
NO_OP_TARGET = Web3.to_checksum_address("0x" + "0b" * 20)  # no code: a call to it does nothing
CAPACITY = 64
BATCHES = 4
ROUNDS: dict[str, list[tuple[int, list[int]]]] = {
    "1 message": [(0, [37])],
    "16 of a batch (contiguous)": [(0, list(range(16)))],
    "16 of a batch (every 4th)": [(0, list(range(0, 64, 4)))],
    "64: a full batch": [(0, list(range(64)))],
    "64: 16 of each of 4 batches": [(b, list(range(16))) for b in range(BATCHES)],
}
PATHS = ("per-message", "by batch")
# Protocol gas per message of executeManyWithRoot with the Inbox of commit 7e4fa98, before the round by
# batch (every message then went through applyMessage's inner call), measured by this script on that
# artifact (CallRecorder target): for reference, never recomputed.
BEFORE = {
    "1 message": 250_629,
    "16 of a batch (contiguous)": 217_392,
    "16 of a batch (every 4th)": 217_391,
    "64: a full batch": 215_723,
    "64: 16 of each of 4 batches": 215_766,
}
TARGETS = ("CallRecorder", "no-op")


@dataclass
class Batch:
    number: int
    messages: list[Message]
    tree: PoseidonTree
    aggregated_index: int


@contextmanager
def rolled_back(chain: Chain) -> Iterator[None]:
    snapshot = chain.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
    try:
        yield
    finally:
        chain.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])


def target_gas(chain: Chain, receipt: TxReceipt, target: str) -> int:
    """The gas of every call frame of the transaction whose callee is `target` (callTracer)."""
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
    trace = chain.w3.provider.make_request(
        RPCEndpoint("debug_traceTransaction"), [tx_hash, {"tracer": "callTracer"}]
    )["result"]
    total = 0

    def walk(frame: dict[str, Any]) -> None:
        nonlocal total
        if str(frame.get("to", "")).lower() == target.lower():
            total += int(frame["gasUsed"], 16)
            return  # what it calls is its own work, counted in its gasUsed
        for child in frame.get("calls", []):
            walk(child)

    walk(trace)
    return total


def _calldata(fn: ContractFunction) -> bytes:
    return bytes.fromhex(fn._encode_transaction_data().removeprefix("0x"))


def measure() -> dict[str, Any]:
    with local_chain(B) as chain:
        poseidon = deploy.deploy_poseidon(chain, deploy.PROTOCOL_POSEIDON)
        router = deploy.deploy_asset_router(chain)
        outbox = deploy.deploy_outbox(chain, router.address, owner=chain.signer.address, poseidon=poseidon)
        inbox = deploy.deploy_inbox(chain, router.address, OPERATOR_B.address, L1_ID, poseidon)
        chain.send(router.functions.connect(outbox.address, inbox.address))
        recorder = chain.deploy("CallRecorder")
        operator = chain.with_signer(OPERATOR_B)
        tree = KeccakTree()
        batches: dict[str, list[Batch]] = {}
        nonce = 0
        for kind, target in (("CallRecorder", recorder.address), ("no-op", NO_OP_TARGET)):
            batches[kind] = []
            for _ in range(BATCHES):
                messages = []
                for _ in range(CAPACITY):
                    data = _calldata(recorder.functions.receiveMessage(b"note %d" % nonce))
                    messages.append(message(C, B, nonce, target, data=data))
                    nonce += 1
                number = nonce // CAPACITY - 1
                batch_tree = PoseidonTree([m.leaf() for m in messages], CAPACITY)
                index = tree.append(aggregated_leaf(C, number, batch_tree.depth, batch_tree.root))
                batches[kind].append(Batch(number, messages, batch_tree, index))
        # One message executed before the rounds, as on any running chain (the Inbox keeps its
        # Outbox's address from its first execution on: a one-time storage write no round should pay).
        warm_up = message(C, B, 10**6, NO_OP_TARGET)
        warm_tree = PoseidonTree([warm_up.leaf()], 8)
        warm_index = tree.append(aggregated_leaf(C, 10**6, warm_tree.depth, warm_tree.root))
        root = tree.root
        operator.send(inbox.functions.importRoot(root))
        warm_proof = MessageProof(
            10**6, 0, tuple(warm_tree.proof(0)), warm_index, tuple(tree.proof(warm_index)), root
        )
        operator.send(inbox.functions.execute(warm_up.as_tuple(), warm_proof.as_tuple()))

        results: dict[str, Any] = {}
        for name, parts in ROUNDS.items():
            results[name] = {}
            for kind, target in (("CallRecorder", recorder.address), ("no-op", NO_OP_TARGET)):
                items = []
                for b, indices in parts:
                    batch = batches[kind][b]
                    for i in indices:
                        proof = MessageProof(
                            batch.number,
                            i,
                            tuple(batch.tree.proof(i)),
                            batch.aggregated_index,
                            tuple(tree.proof(batch.aggregated_index)),
                            root,
                        )
                        items.append((batch.messages[i], proof))
                for path in PATHS:
                    fn = _round(inbox, root, items, path)
                    with rolled_back(chain):
                        receipt = operator.send(fn)
                        n = len(items)
                        assert len(inbox.events.MessageExecuted().process_receipt(receipt)) == n
                        own = target_gas(chain, receipt, target)
                    gas = int(receipt["gasUsed"])
                    results[name].setdefault(path, {})[kind] = {
                        "messages": n,
                        "gas": gas,
                        "target_gas": own,
                        "per_message": gas // n,
                        "protocol_per_message": (gas - own) // n,
                    }
        return results


def _round(inbox: Contract, root: bytes, items: list[tuple[Message, MessageProof]], path: str) -> Any:
    if path == "per-message":
        return inbox.functions.executeManyWithRoot(
            root, [m.as_tuple() for m, _ in items], [p.as_tuple() for _, p in items]
        )
    groups = batch_groups(items)
    messages = [m.as_tuple() for g in groups for m in g.messages]
    return inbox.functions.executeBatchesWithRoot(root, messages, [g.proof.as_tuple() for g in groups])


def table(results: dict[str, Any]) -> str:
    header = (
        f"{'round':<30}{'n':>4}{'before':>9}"
        f"{'old/msg':>10}{'old prot':>10}{'new/msg':>10}{'new prot':>10}{'target':>9}"
        f"{'no-op old':>11}{'no-op new':>11}{'saved':>8}"
    )
    lines = [header]
    for name, paths in results.items():
        old, new = paths["per-message"], paths["by batch"]
        rec_old, rec_new = old["CallRecorder"], new["CallRecorder"]
        n = rec_new["messages"]
        saved = 1 - rec_new["protocol_per_message"] / rec_old["protocol_per_message"]
        lines.append(
            f"{name:<30}{n:>4}{BEFORE.get(name, 0):>9,}"
            f"{rec_old['per_message']:>10,}{rec_old['protocol_per_message']:>10,}"
            f"{rec_new['per_message']:>10,}{rec_new['protocol_per_message']:>10,}"
            f"{rec_new['target_gas'] // n:>9,}"
            f"{old['no-op']['protocol_per_message']:>11,}{new['no-op']['protocol_per_message']:>11,}"
            f"{saved:>8.0%}"
        )
    lines += [
        "gas per message; before = protocol gas of executeManyWithRoot at commit 7e4fa98 (for reference);",
        "old = executeManyWithRoot (a proof per message), new = executeBatchesWithRoot",
        "(a multiproof per batch); prot = protocol: gasUsed minus the target's own call frames",
        "(CallRecorder); target = those frames per message; no-op = the same rounds to an address",
        "without code (all protocol); saved = the protocol gas per message the round by batch saves.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = arguments("execute_gas", __doc__ or "").parse_args(argv)
    results = measure()
    report(table(results), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
