"""Gas of forced inclusion (bridge_contracts/src/Hub.sol, Inbox.sol), per transaction.

Starts two anvil nodes: the L1 (901) with the Hub and the capacity-8 verifier of the tests' development
key (tests/settlement.py), and chain B (902) with its router, Outbox, Inbox and a CallRecorder. Chain C
(903, known only to the Hub) settles a capacity-8 batch of eight messages to B's CallRecorder (real
Groth16 proofs); B has settled its batch 0, so the commits measured are of its batch 1. Figures are
gasUsed, the 21,000 base and calldata included:

- requestPriorityOp: the leaf's fields, the batch path (3 siblings) and a body of the message (100 bytes
  of data) and its path, ABI-encoded and sealed to B's bus key: 784 bytes without value, 1,072 with value
  (assetData). The first operation of a queue (its length slot written from zero), then the steady
  state: a message without value and one with value.
- commitBatch of B's batch 1 with the priority cursor at 0 and an empty queue (every commit before
  forced inclusion), then with 8 operations queued: cursor 0 (nothing processed), 1 and 4 (processed:
  the cursor moves from 0, PriorityCursorReported). Each from the same L1 state (a snapshot).
- reportPriority: the cursor from 0 to 1 and to 4, alone (the same state).
- processPriorityOps on B's Inbox: after a first round (one operation; the root imported, the cursor
  slots written from zero), a round of 1 and one of 4 plain messages (a CallRecorder call each), and the
  cost per operation; beside it, one execute of a plain message.

    python -m benchmarks.priority_gas [--out FILE]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eth_abi.abi import encode
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import RPCEndpoint

from benchmarks import arguments, gas_table, local_chain, report
from bridge_contracts import anvil, deploy
from bridge_contracts.chain import Chain
from bridge_contracts.messages import (
    EMPTY_PRIORITY_HASH,
    Message,
    commit_digest,
    commitment,
    priority_digest,
    priority_id,
    sign_digest,
)
from hub.envelope import seal
from tests.settlement import CAPACITY, NATIVE, Prepared, Settlement, asset_id, ether_data, message

L1_ID, B, C = 901, 902, 903
OPERATOR_B, OPERATOR_C = anvil.dev_account(2), anvil.dev_account(3)
RELAYER = anvil.dev_account(7)
TARGET = anvil.dev_account(6).address
MESSAGE_ABI = "(uint64,uint64,uint64,address,address,bytes32,uint256,bytes,bytes)"
VALUED = 6  # the message of C's batch that carries value


@contextmanager
def rolled_back(chain: Chain) -> Iterator[None]:
    """Whatever is sent inside is undone afterwards (anvil's evm_snapshot / evm_revert)."""
    snapshot = chain.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
    try:
        yield
    finally:
        chain.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])


def _calldata(fn: ContractFunction) -> bytes:
    return bytes.fromhex(fn._encode_transaction_data().removeprefix("0x"))


def _request(hub: Settlement, m: Message) -> ContractFunction:
    place = hub.places[m.id()]
    siblings = list(place.batch_siblings)
    plain = encode(
        [MESSAGE_ABI, "uint64", "uint256", "uint256[]"],
        [m.as_tuple(), place.batch_number, place.index, siblings],
    )
    body = seal(plain, bytes(hub.hub.functions.busKeys(m.dest_chain_id).call()[0]))
    operator = OPERATOR_C if m.source_chain_id == C else OPERATOR_B
    signature = hub.force_signature(operator, m, body)
    return hub.hub.functions.requestPriorityOp(
        m.leaf_fields(), place.batch_number, place.index, siblings, body, signature
    )


def _commit(hub: Settlement, prepared: Prepared, cursor: int, rolling: bytes) -> ContractFunction:
    digest = commit_digest(
        prepared.public,
        CAPACITY,
        l1_chain_id=hub.l1,
        hub=hub.hub.address,
        priority_cursor=cursor,
        priority_hash=rolling,
    )
    return hub.hub.functions.commitBatch(
        commitment(prepared.public, CAPACITY, cursor, rolling),
        prepared.proof,
        sign_digest(OPERATOR_B, digest),
    )


def _report(hub: Settlement, cursor: int, rolling: bytes) -> ContractFunction:
    digest = priority_digest(B, cursor, rolling, l1_chain_id=hub.l1, hub=hub.hub.address)
    return hub.hub.functions.reportPriority(B, cursor, rolling, sign_digest(OPERATOR_B, digest))


def _deploy_b(chain: Chain, l1: int) -> tuple[Contract, Contract]:
    """B's asset layer, Outbox and Inbox (owned by B's operator); the Inbox and a CallRecorder."""
    poseidon = deploy.deploy_poseidon(chain, deploy.PROTOCOL_POSEIDON)
    router = deploy.deploy_asset_router(chain)
    outbox = deploy.deploy_outbox(chain, router.address, owner=chain.signer.address, poseidon=poseidon)
    inbox = deploy.deploy_inbox(chain, router.address, OPERATOR_B.address, l1, poseidon)
    chain.send(router.functions.connect(outbox.address, inbox.address))
    return inbox, chain.deploy("CallRecorder")


def measure() -> dict[str, int]:
    with local_chain(L1_ID) as l1, local_chain(B) as b:
        hub = Settlement.deploy(l1)
        hub.register(B, OPERATOR_B)
        hub.register(C, OPERATOR_C)
        inbox, recorder = _deploy_b(b, hub.l1)
        hub.commit(B, [message(B, C, 0, TARGET, data=b"batch 0")], OPERATOR_B)

        def to_recorder(nonce: int, **value: Any) -> Message:
            data = _calldata(recorder.functions.receiveMessage(b"forced %d" % nonce))
            return message(C, B, nonce, recorder.address, data=data, **value)

        c_eth = {"asset": asset_id(C, NATIVE), "amount": 10**18, "assetdata": ether_data(C)}
        incoming = [to_recorder(i, **(c_eth if i == VALUED else {})) for i in range(8)]
        hub.commit(C, incoming, OPERATOR_C)
        batch1 = hub.prepare(B, [message(B, C, 1, TARGET, data=b"batch 1")], OPERATOR_B)
        relayer = l1.with_signer(RELAYER)

        results: dict[str, int] = {}
        with rolled_back(l1):
            receipt = relayer.send(_commit(hub, batch1, 0, EMPTY_PRIORITY_HASH))
            results["commitBatch, cursor 0, empty queue"] = int(receipt["gasUsed"])
        requested = [int(relayer.send(_request(hub, m))["gasUsed"]) for m in incoming]
        results["requestPriorityOp, first op of a queue"] = requested[0]
        results["requestPriorityOp, no value"] = requested[1]
        results["requestPriorityOp, value"] = requested[VALUED]
        hashes = [bytes(hub.hub.functions.priorityHashAt(B, n).call()) for n in range(len(incoming) + 1)]
        for cursor in (0, 1, 4):
            with rolled_back(l1):
                receipt = relayer.send(_commit(hub, batch1, cursor, hashes[cursor]))
                results[f"commitBatch, cursor {cursor}, 8 ops queued"] = int(receipt["gasUsed"])
        for cursor in (1, 4):
            with rolled_back(l1):
                receipt = relayer.send(_report(hub, cursor, hashes[cursor]))
                results[f"reportPriority, cursor 0 -> {cursor}"] = int(receipt["gasUsed"])

        operator = b.with_signer(OPERATOR_B)

        def process(messages: list[Message]) -> int:
            cursor = int(inbox.functions.priorityCursor().call())
            items = []
            for m in messages:
                place = hub.places[m.id()]
                named = priority_id(m.source_chain_id, place.batch_number, place.index, m.leaf())
                items.append((named, m.as_tuple(), hub.proof(m).as_tuple(), ""))
            fn = inbox.functions.processPriorityOps(hub.tree.root, cursor, items)
            return int(operator.send(fn)["gasUsed"])

        process(incoming[:1])  # the first round: root imported, cursor and hash written from zero
        results["processPriorityOps, 1 op"] = process(incoming[1:2])
        results["processPriorityOps, 4 ops"] = process(incoming[2:6])
        results["processPriorityOps, per op (4 ops)"] = results["processPriorityOps, 4 ops"] // 4
        if (
            bytes(inbox.functions.priorityHash().call()) != hashes[6]
            or recorder.functions.count().call() != 6
        ):
            raise AssertionError("B's Inbox did not process the queue as L1 has it")
        plain = incoming[7]
        receipt = b.with_signer(RELAYER).send(
            inbox.functions.execute(plain.as_tuple(), hub.proof(plain).as_tuple())
        )
        results["execute, one plain message (for comparison)"] = int(receipt["gasUsed"])
        return results


def main(argv: list[str] | None = None) -> int:
    args = arguments("priority_gas", __doc__ or "").parse_args(argv)
    results = measure()
    report(gas_table(results), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
