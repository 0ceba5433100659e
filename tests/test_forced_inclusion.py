"""Forced inclusion end to end: a message its destination ignores goes through the L1 priority queue.

Its own devnet (L1, bank-a and bank-b on anvil, Mosquitto), the hub service and both institutions'
daemons as processes, all real; the helpers are tests/test_e2e.py's. The destination is made to ignore
a message by stopping its daemon (SIGTERM or SIGKILL) or, for the censoring operator, by committing its
batches by hand without processing its queue; governance (the devnet's deployer) sets the priority
windows. The tests share one network and run in file order; the last one leaves bank-b frozen and its
daemon stopped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from bridge_contracts import anvil
from bridge_contracts.chain import Chain, decode_revert
from bridge_contracts.messages import (
    Message,
    commit_digest,
    commitment,
    force_digest,
    groth16_proof,
    message_id,
    priority_id,
    sent_messages,
    sign_digest,
)
from bridge_contracts.views import hub_chain
from hub.envelope import seal
from proofs.circuits.batch import Batch, BatchCircuit
from proofs.formats import zkey
from proofs.groth16.prover import prove
from relayer.cli import cli
from relayer.devnet import devnet
from relayer.pipeline.priority import forced_body, read_forced_body
from relayer.pipeline.pusher import batch_tree
from tests.test_e2e import ONE, USER, WAIT, Net, _asset, network, reconfigured

pytestmark = pytest.mark.timeout(900)

GOVERNANCE = anvil.dev_account(devnet.DEPLOYER_ACCOUNT)
FORCE_AFTER = 31.0  # the least bank-a's config allows: batch.max_wait_seconds (1 s) + 30 s


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    yield from network(tmp_path_factory.mktemp("forced"), l2=2)


# --- helpers --------------------------------------------------------------------------------------


def _governance(net: Net) -> tuple[Chain, Contract]:
    l1 = Chain(net.manifest["l1"]["rpc_url"], GOVERNANCE)
    return l1, l1.contract("Hub", net.manifest["l1"]["contracts"]["hub"])


def _window(net: Net, name: str, seconds: int) -> None:
    l1, hub = _governance(net)
    l1.send(hub.functions.setPriorityWindow(net.entry(name)["chain_id"], seconds))


def _chain_id(net: Net, name: str) -> int:
    return int(net.entry(name)["chain_id"])


def _force_after(seconds: float) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        for peer in config["peers"]:
            peer["force_after_seconds"] = seconds

    return change


def _record(net: Net, note: bytes) -> str:
    recorder = net.contract("bank-b", "CallRecorder")
    return net.send("bank-a", "bank-b", recorder.address, recorder.encode_abi("receiveMessage", [note]))


def _executions(net: Net, key: str) -> int:
    source, nonce = map(int, key.split(":"))
    inbox = net.contract("bank-b", "Inbox")
    logs = inbox.events.MessageExecuted().get_logs(
        from_block=0, argument_filters={"id": message_id(source, nonce)}
    )
    return len(logs)


def _priority(net: Net, name: str) -> tuple[int, int, bool]:
    """(window, reported cursor, frozen) of `name`'s chain on the Hub."""
    window, cursor, frozen = net.hub().functions.priority(_chain_id(net, name)).call()
    return int(window), int(cursor), bool(frozen)


def _error(fn: Any, sender: str) -> str:
    try:
        fn.call({"from": sender})
    except ContractLogicError as exc:
        return decode_revert(exc.data if isinstance(exc.data, str) else None)
    raise AssertionError("the call did not revert")


def _until(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def _force_by_hand(net: Net, key: str, body: bytes | None = None) -> tuple[Any, Any]:
    """requestPriorityOp for bank-a's message `key` (settled), signed by bank-a's operator and sent by
    a user, with `body` (default: the true one, sealed to bank-b): (its args, the receipt)."""
    with net.store("bank-a") as store:
        m = store.message(key)
        assert m is not None and m.batch_number is not None and m.index_in_batch is not None
        siblings = tuple(batch_tree(store, m.batch_number)[1].proof(m.index_in_batch))
    hub = net.hub()
    if body is None:
        bus_key = bytes(hub.functions.busKeys(_chain_id(net, "bank-b")).call()[0])
        body = seal(forced_body(m.message, m.batch_number, m.index_in_batch, siblings), bus_key)
    named = priority_id(m.message.source_chain_id, m.batch_number, m.index_in_batch, m.leaf)
    digest = force_digest(named, body, l1_chain_id=net.manifest["l1"]["chain_id"], hub=hub.address)
    signature = sign_digest(anvil.dev_account(net.entry("bank-a")["operator_account"]), digest)
    args = (m.message.leaf_fields(), m.batch_number, m.index_in_batch, list(siblings), body, signature)
    receipt = Chain(net.manifest["l1"]["rpc_url"], USER).send(hub.functions.requestPriorityOp(*args))
    return args, receipt


# --- the tests ------------------------------------------------------------------------------------


def test_a_message_a_stopped_peer_ignores_is_forced_and_executed_first_exactly_once(net: Net) -> None:
    _window(net, "bank-b", 600)
    recorder = net.contract("bank-b", "CallRecorder")
    count = recorder.functions.count().call()
    with reconfigured(net, "bank-a", _force_after(FORCE_AFTER)):
        net.services.daemons["bank-b"].stop()
        note = b"forced: the marker no L1 observer reads"
        forced = _record(net, note)
        net.wait("bank-a", [forced], "forced", timeout=FORCE_AFTER + WAIT)
        row = net.row("bank-a", forced)
        assert row is not None and row.force_tx is not None and row.force_index == 0
        assert row.force_deadline is not None and row.force_deadline > time.time() + 300

        # Nothing of the body is readable on L1: not in the event, not in the transaction.
        l1 = Chain(net.manifest["l1"]["rpc_url"], USER)
        receipt = l1.w3.eth.get_transaction_receipt(row.force_tx)  # type: ignore[arg-type]
        tx = l1.w3.eth.get_transaction(row.force_tx)  # type: ignore[arg-type]
        (event,) = net.hub().events.PriorityOpQueued().process_receipt(receipt, errors=DISCARD)
        secrets = [note, bytes.fromhex(recorder.address[2:]), bytes.fromhex(USER.address[2:])]
        for raw in [bytes(log["data"]) for log in receipt["logs"]] + [bytes(tx["input"])]:
            for secret in secrets:
                assert secret not in raw and secret.hex() not in raw.hex()
        assert event["args"]["destChainId"] == _chain_id(net, "bank-b")

        later = _record(net, b"sent after the forced one, while bank-b is down")
        net.wait("bank-a", [later], "pushed")
        net.services.daemons["bank-b"].start()
        net.wait("bank-b", [forced, later])
        net.wait("bank-a", [forced, later])

    assert recorder.functions.count().call() == count + 2
    assert _executions(net, forced) == 1
    inbox = net.contract("bank-b", "Inbox")
    (processed,) = inbox.events.PriorityOpProcessed().get_logs(from_block=0)
    assert processed["args"]["index"] == 0 and processed["args"]["outcome"] == 0  # EXECUTED
    (executed_later,) = inbox.events.MessageExecuted().get_logs(
        from_block=0, argument_filters={"id": message_id(*map(int, later.split(":")))}
    )
    assert (processed["blockNumber"], processed["logIndex"]) < (
        executed_later["blockNumber"],
        executed_later["logIndex"],
    )
    with net.store("bank-b") as store:
        (op,) = store.priority_ops()
    assert (op.status, op.outcome, op.message_id) == ("processed", "executed", forced)

    # bank-b's next batch settles, carrying its cursor past the operation.
    recorder_a = net.contract("bank-a", "CallRecorder")
    back = net.send(
        "bank-b", "bank-a", recorder_a.address, recorder_a.encode_abi("receiveMessage", [b"back"])
    )
    net.wait("bank-a", [back])
    assert _priority(net, "bank-b")[1] == 1
    status = net.status("bank-b")["priority"]
    assert status["queue"]["pending"] == 0


def test_l1_checks_every_forced_request_and_a_message_executed_before_counts_as_processed(net: Net) -> None:
    recorder = net.contract("bank-b", "CallRecorder")
    key = _record(net, b"executed, then forced")
    net.wait("bank-a", [key])
    count = recorder.functions.count().call()
    args, _ = _force_by_hand(net, key)

    hub, user = net.hub(), USER.address
    assert _error(hub.functions.requestPriorityOp(*args), user).startswith("AlreadyQueued")
    leaf, number, index, siblings, body, signature = args
    tampered = (leaf[0], leaf[1], leaf[2], leaf[3] + 1, leaf[4])
    assert (
        _error(hub.functions.requestPriorityOp(tampered, number, index, siblings, body, signature), user)
        == "BadPath()"
    )
    unsettled = hub.functions.requestPriorityOp(leaf, number + 1000, index, siblings, body, signature)
    assert _error(unsettled, user).startswith("UnknownBatch")
    to_l1 = (leaf[0], net.manifest["l1"]["chain_id"], *leaf[2:])
    assert (
        _error(hub.functions.requestPriorityOp(to_l1, number, index, siblings, body, signature), user)
        == "DestinationIsL1()"
    )

    # Bodies bank-b cannot use (bank-a's operator signed them: nobody else can queue a body): garbage,
    # and the right message with a wrong path. bank-b has both from the bus, so the queue moves on.
    garbage, wrong_path = _record(net, b"garbage body"), _record(net, b"wrong path")
    net.wait("bank-a", [garbage, wrong_path])
    count = recorder.functions.count().call()
    _force_by_hand(net, garbage, body=b"\x01" * 200)
    with net.store("bank-a") as store:
        m = store.message(wrong_path)
    assert m is not None and m.batch_number is not None and m.index_in_batch is not None
    bus_key = bytes(hub.functions.busKeys(_chain_id(net, "bank-b")).call()[0])
    _force_by_hand(
        net,
        wrong_path,
        body=seal(forced_body(m.message, m.batch_number, m.index_in_batch, (7, 7, 7)), bus_key),
    )

    def processed() -> bool:
        with net.store("bank-b") as store:
            ops = [store.priority_op(i) for i in (1, 2, 3)]
        return all(op is not None and op.status == "processed" for op in ops)

    _until("bank-b to process the operations", processed)
    with net.store("bank-b") as store:
        ops = [store.priority_op(i) for i in (1, 2, 3)]
    assert [(op.outcome, op.message_id) for op in ops if op is not None] == [
        ("closed", key),
        ("closed", garbage),
        ("closed", wrong_path),
    ]
    assert recorder.functions.count().call() == count  # none executed a second time
    for done in (key, garbage, wrong_path):
        assert _executions(net, done) == 1
    _until("bank-b to report its cursor", lambda: _priority(net, "bank-b")[1] == 4)


def test_daemons_killed_while_a_forced_message_is_in_flight_execute_it_exactly_once(net: Net) -> None:
    rng = random.Random(14)
    recorder = net.contract("bank-b", "CallRecorder")
    count = recorder.functions.count().call()
    bank_a, bank_b = net.services.daemons["bank-a"], net.services.daemons["bank-b"]
    bank_b.stop()
    keys = [_record(net, f"killed {i}".encode()) for i in range(3)]
    net.wait("bank-a", keys, "pushed")
    runner = CliRunner()
    for key in keys:
        result = runner.invoke(cli, ["force", key, "-c", str(net.config("bank-a"))])
        assert result.exit_code == 0, result.output
        assert "forcing" in result.output
    # SIGKILL to bank-a while it sends the requests.
    time.sleep(rng.uniform(0.0, 1.5))
    bank_a.kill()
    bank_a.start()
    net.wait("bank-a", keys, "forced")
    # SIGKILL to bank-b while it processes them.
    known = len(_store_ops(net))
    bank_b.launch()
    _until("bank-b to see the operations", lambda: len(_store_ops(net)) >= known + 3, timeout=120)
    time.sleep(rng.uniform(0.0, 1.0))
    bank_b.kill()
    bank_b.start()
    net.wait("bank-b", keys)
    net.wait("bank-a", keys)
    assert recorder.functions.count().call() == count + 3
    for key in keys:
        assert _executions(net, key) == 1
    ops = _store_ops(net)
    assert [op.status for op in ops] == ["processed"] * len(ops)
    assert {op.message_id for op in ops} >= set(keys)


def test_a_forced_message_whose_target_burns_all_its_gas_fails_and_the_queue_moves_on(net: Net) -> None:
    """Its execution gets a fixed budget (Inbox.PRIORITY_EXECUTION_GAS): it fails within it, the
    operation is processed, and its destination's operator can bounce it home."""
    chain_b = net.chain("bank-b")
    # PUSH4 <JUMPDEST PUSH1 0 JUMP: a loop that burns every gas it is given>, PUSH1 0, MSTORE, RETURN 4 bytes
    init = bytes.fromhex("635b600056" + "600052600460" + "1cf3")
    burner = chain_b.send(chain_b.w3.eth.contract(abi=[], bytecode=init).constructor())["contractAddress"]
    assert burner is not None
    asset = _asset(net, "bank-a", native=True)
    before = net.chain("bank-a").w3.eth.get_balance(USER.address)
    bank_b = net.services.daemons["bank-b"]
    bank_b.stop()
    key = net.send("bank-a", "bank-b", burner, b"", value=(asset, ONE))
    net.wait("bank-a", [key], "pushed")
    runner = CliRunner()
    result = runner.invoke(cli, ["force", key, "-c", str(net.config("bank-a"))])
    assert result.exit_code == 0, result.output
    net.wait("bank-a", [key], "forced")
    bank_b.start()
    net.wait("bank-b", [key], "failed")
    net.wait("bank-a", [key], "failed")
    with net.store("bank-b") as store:
        op = store.priority_ops()[-1]
    assert (op.message_id, op.status, op.outcome) == (key, "processed", "failed")

    result = runner.invoke(
        cli, ["bounce", key, "--reason", "its target takes all gas", "-c", str(net.config("bank-b"))]
    )
    assert result.exit_code == 0, result.output
    net.wait("bank-b", [key], "bounced")
    net.wait("bank-a", [key], "refunded")
    spent = before - net.chain("bank-a").w3.eth.get_balance(USER.address)
    assert 0 < spent < ONE // 100  # the value came back; only gas was spent


def _store_ops(net: Net) -> list[Any]:
    with net.store("bank-b") as store:
        return store.priority_ops()


def test_a_censoring_chain_is_refused_by_l1_frozen_and_settles_nothing_until_unfrozen(net: Net) -> None:
    """bank-b's operator commits its batches by hand without processing its queue."""
    length = int(net.hub().functions.priorityQueueLength(_chain_id(net, "bank-b")).call())
    _until("bank-b to report its cursor", lambda: _priority(net, "bank-b")[1] == length)
    window = 20
    _window(net, "bank-b", window)
    net.services.daemons["bank-b"].stop()
    key = _record(net, b"censored")
    net.wait("bank-a", [key], "pushed")
    _, receipt = _force_by_hand(net, key)
    (queued,) = net.hub().events.PriorityOpQueued().process_receipt(receipt, errors=DISCARD)
    index, deadline = queued["args"]["index"], queued["args"]["deadline"]
    assert index == length

    censor = _HandCommitter(net, "bank-b")
    censor.commit(censor.prepare(b"before the deadline"))  # not overdue yet: L1 takes it
    late = censor.prepare(b"after the deadline")
    l1 = Chain(net.manifest["l1"]["rpc_url"], USER)
    # Deadlines never go backwards: this one is the latest of the queue's, past the shorter window.
    assert deadline >= l1.w3.eth.get_block("latest")["timestamp"] + window
    ahead = deadline - l1.w3.eth.get_block("latest")["timestamp"] + 5
    l1.w3.provider.make_request("evm_increaseTime", [ahead])  # type: ignore[arg-type]
    l1.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert l1.w3.eth.get_block("latest")["timestamp"] > deadline
    assert censor.refusal(late).startswith("PriorityOpOverdue")
    hub = net.hub()
    assert _error(hub.functions.freeze(_chain_id(net, "bank-a")), USER.address).startswith("NothingOverdue")
    l1.send(hub.functions.freeze(_chain_id(net, "bank-b")))
    assert _priority(net, "bank-b")[2] is True
    assert censor.refusal(late).startswith("Frozen")
    deposit = hub.functions.deposit(_chain_id(net, "bank-b"), USER.address, b"")
    assert _error(deposit, USER.address).startswith("Frozen")

    # Governance lifts the freeze: still overdue, so anyone may freeze again at once; once the chain
    # reports its cursor past the operation, it settles again.
    l1_gov, hub_gov = _governance(net)
    l1_gov.send(hub_gov.functions.unfreeze(_chain_id(net, "bank-b")))
    assert censor.refusal(late).startswith("PriorityOpOverdue")
    caught_up = censor.prepare(
        b"after processing the queue", cursor=index + 1, rolling=queued["args"]["rollingHash"]
    )
    censor.commit(caught_up)
    assert _priority(net, "bank-b")[1] == index + 1


class _HandCommitter:
    """bank-b's operator settling its chain's batches by hand, without its daemon: it sends a message
    from its Outbox, proves the batch with the devnet's key and signs the commit."""

    def __init__(self, net: Net, name: str) -> None:
        self.net, self.name = net, name
        entry = net.entry(name)
        self.operator = anvil.dev_account(entry["operator_account"])
        self.capacity = min(net.manifest["batch"]["capacities"])
        self.key = zkey.read(Path(net.manifest["batch"]["keys_dir"]) / f"batch-{self.capacity}.zkey")

    def prepare(
        self, note: bytes, *, cursor: int | None = None, rolling: bytes | None = None
    ) -> tuple[Any, ...]:
        net = self.net
        outbox = net.contract(self.name, "Outbox")
        recorder = net.contract("bank-a", "CallRecorder")
        receipt = net.chain(self.name).send(
            outbox.functions.send(_chain_id(net, "bank-a"), recorder.address, note)
        )
        (sent,) = sent_messages(outbox, [receipt])
        hub = net.hub()
        info = hub_chain(hub, _chain_id(net, self.name))
        if cursor is None:
            cursor = _priority(net, self.name)[1]
            rolling = bytes(hub.functions.priorityHashAt(_chain_id(net, self.name), cursor).call())
        assert rolling is not None
        batch = Batch(
            _chain_id(net, self.name), info.next_batch, info.outbox_hash, (sent.message.preimage(),)
        )
        circuit = BatchCircuit(self.capacity)
        public = circuit.public_inputs(batch)
        proof = groth16_proof(prove(self.key, circuit.witness(batch, public)))
        digest = commit_digest(
            public,
            self.capacity,
            l1_chain_id=net.manifest["l1"]["chain_id"],
            hub=hub.address,
            priority_cursor=cursor,
            priority_hash=rolling,
        )
        signature = sign_digest(self.operator, digest)
        return commitment(public, self.capacity, cursor, rolling), proof, signature

    def commit(self, prepared: tuple[Any, ...]) -> None:
        Chain(self.net.manifest["l1"]["rpc_url"], USER).send(self.net.hub().functions.commitBatch(*prepared))

    def refusal(self, prepared: tuple[Any, ...]) -> str:
        return _error(self.net.hub().functions.commitBatch(*prepared), USER.address)


def test_the_forced_body_format_round_trips() -> None:
    """The sealed body's plaintext (relayer.pipeline.priority) reads back what was written, and the
    priority id binds the leaf to its place."""
    m = Message(7, 8, 3, USER.address, USER.address, bytes(32), 0, b"data", b"")
    body = forced_body(m, 2, 5, (1, 2, 3))
    assert read_forced_body(body) == (m, 2, 5, (1, 2, 3))
    assert priority_id(7, 2, 5, m.leaf()) != priority_id(7, 2, 4, m.leaf())
    for bad in (b"not json", b"{}", b'{"version": 1, "batch_number": "x", "index": 0, "siblings": []}'):
        with pytest.raises(ValueError):
            read_forced_body(bad)
