"""Chain faults end to end: no value lost, stranded or spent twice.

Its own devnet (L1, bank-a and bank-b on anvil), the hub service and both institutions' daemons as
processes, all real; the helpers are tests/test_e2e.py's. The faults are made on the nodes
themselves (anvil's manual mining and `anvil_reorg`), in the daemons' RPC endpoints (a dead one,
one of another chain, a forwarder that comes up later) and in the peering (a rule that refuses what
was sent, an operator who gives a failed message up). Each test checks where the value ended up:
the users' balances and the ledger of the asset on every chain and on L1.

The tests share one network and run in file order; each leaves it as it found it (configs, peering,
mining, halts) even when it fails.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import orjson
import pytest
import requests
from click.testing import CliRunner, Result
from web3 import Web3

from bridge_contracts import anvil
from bridge_contracts.messages import BOUNCE_SENDER, sent_messages
from bridge_contracts.views import hub_chain
from hub.delivery import message_key
from relayer.cli import cli
from relayer.devnet.services import admin_token
from relayer.store import HALT_SCOPES, StoredMessage
from tests.test_e2e import (
    ONE,
    RECIPIENT,
    USER,
    WAIT,
    Net,
    _adds_up,
    _asset,
    _ledger,
    _peer_b_allows_bank_a,
    network,
    reconfigured,
)

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    yield from network(tmp_path_factory.mktemp("faults"), l2=2)


# --- helpers --------------------------------------------------------------------------------------


def _rpc(net: Net, name: str, method: str, *params: Any) -> Any:
    """An RPC to `name`'s anvil node (its own methods included); the result."""
    response = net.chain(name).w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, (method, params, response)
    return response.get("result")


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token(name)}"}


def _admin(net: Net, name: str, path: str) -> requests.Response:
    response = requests.get(f"http://{net.entry(name)['admin']}{path}", headers=_auth(name), timeout=10)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    return response


def _xrelay(net: Net, name: str, command: str, *args: str) -> Result:
    """`xrelay COMMAND -c <name's config> ARGS...`, with the admin token in the environment."""
    env = {net.entry(name)["admin_token_env"]: admin_token(name)}
    return CliRunner().invoke(cli, [command, "-c", str(net.config(name)), *args], env=env)


def _until(what: str, check: Callable[[], Any], timeout: float = WAIT, every: float = 0.25) -> Any:
    """Poll `check` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)


def _deposit_token(net: Net, name: str) -> Any:
    return net.chain(name).contract("DevToken", net.entry(name)["contracts"]["deposit_token"])


def _bridged_balance(net: Net, name: str, asset: bytes, holder: str) -> int:
    """`holder`'s balance of the bridged token of `asset` on `name` (0 while none was ever minted)."""
    token = net.contract(name, "AssetRouter").functions.assets(asset).call()[2]
    if int(token, 16) == 0:
        return 0
    return int(net.chain(name).contract("BridgedToken", token).functions.balanceOf(holder).call())


def _bounces_of(net: Net, name: str, original: StoredMessage) -> list[StoredMessage]:
    """The bounce messages `name` sent to take back the value of `original`."""
    with net.store(name) as store:
        out = store.messages(direction="out")
    return [m for m in out if m.message.is_bounce and m.message.bounced_id() == original.message.id()]


def _row(net: Net, name: str, key: str) -> StoredMessage:
    row = net.row(name, key)
    assert row is not None, f"{name} has no message {key}"
    return row


def _statuses(net: Net, name: str, key: str) -> list[str]:
    with net.store(name) as store:
        return [str(t.to_status) for t in store.history(key)]


def _in_order(seen: list[str], *wanted: str) -> bool:
    """Whether `wanted` occur in `seen` in this order (others may come between)."""
    rest = iter(seen)
    return all(status in rest for status in wanted)


def _assert_outbox_halted(net: Net, name: str) -> None:
    """Within 10 s `name`'s outgoing pipeline is halted for a reorganisation, and every alarm says so:
    the admin API's status, `xrelay status` (JSON and text), the metrics."""
    status = _until(f"{name} to halt", lambda: (s := net.status(name))["healthy"] is False and s, timeout=10)
    shown = orjson.loads(_xrelay(net, name, "status", "--json").output)
    for s in (status, shown):
        assert s["healthy"] is False and s["halts"]["outbox"] is not None, s
        assert "reorganisation" in s["halts"]["outbox"]["reason"], s["halts"]
        assert s["chains"]["chain"]["halted"], s["chains"]["chain"]
    assert shown["chains"]["chain"]["last_reorg"]["deep"] is True, shown["chains"]["chain"]
    text = _xrelay(net, name, "status")
    assert "HALTED" in text.output and "xrelay resume" in text.output, text.output
    metrics = _admin(net, name, "/metrics").text
    assert re.search(r'^xrelay_halted\{scope="outbox"\} 1(\.0)?$', metrics, re.M), metrics
    assert re.search(r'^xrelay_reorgs_total\{chain="chain",deep="true"\} [1-9]', metrics, re.M), metrics


def _resume_refused_then_rewound(net: Net, name: str, lost: str) -> None:
    """`xrelay resume` refuses (the store has `lost`, the chain does not) and says to rewind; so does
    the admin API's resume, with 409; the admin API's resume with a rewind forgets `lost` and lifts the
    halt, and `xrelay resume --rewind` then finds nothing halted."""
    refused = _xrelay(net, name, "resume")
    assert refused.exit_code != 0, refused.output
    assert lost in refused.output and "--rewind" in refused.output, refused.output
    assert not net.status(name)["healthy"]
    url = f"http://{net.entry(name)['admin']}/v1/halts/outbox/resume"
    response = requests.post(url, headers=_auth(name), json={"rewind": False}, timeout=60)
    assert response.status_code == 409, response.text
    assert response.json()["lifted"] is False and lost in response.json()["conflicts"][0]
    response = requests.post(url, headers=_auth(name), json={"rewind": True}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["dropped"] == [lost] and response.json()["lifted"] is True
    again = _xrelay(net, name, "resume", "--rewind")
    assert again.exit_code != 0 and "is not halted" in again.output, again.output
    newest = next(h for h in _admin(net, name, "/v1/halts").json() if h["scope"] == "outbox")
    assert newest["decision"].startswith("resumed by the admin API"), newest
    # The desk's stream had read the same blocks: halted too, it resumes with no swap to take again.
    desk = net.status(name)["halts"]["swap-desk"]
    assert desk is None or "reorganisation" in desk["reason"], desk
    if desk is not None:
        resumed = _xrelay(net, name, "resume", "--scope", "swap-desk")
        assert resumed.exit_code == 0 and "0 swap(s)" in resumed.output, resumed.output
    assert net.status(name)["healthy"] is True


class _Forwarder:
    """Every TCP connection to 127.0.0.1:`port` piped to 127.0.0.1:`upstream`, a thread each way."""

    def __init__(self, port: int, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", port))
        self.sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.sockets += [client, server]
            for source, dest in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, dest), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, dest: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                dest.sendall(data)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                dest.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self.listener.close()
        with self._lock:
            for s in self.sockets:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


# --- reorganisations ------------------------------------------------------------------------------


def test_a_reorganisation_within_finality_is_absorbed_and_only_the_chain_s_message_goes(net: Net) -> None:
    """A message whose block is replaced before it is final (anvil's "safe" block trails the head by
    one) never reaches the relayer: bank-b executes only the message the chain has now under that
    nonce (other data), bank-a's store holds exactly that one, and nothing halts. The reorganisation
    is noted as not deep."""
    recorder = net.contract("bank-b", "CallRecorder")
    outbox = net.contract("bank-a", "Outbox")
    w3 = net.chain("bank-a").w3
    dest = net.entry("bank-b")["chain_id"]
    calls = recorder.functions.count().call()
    original_data = recorder.encode_abi("receiveMessage", [b"original, reorganised away"])
    replacement_data = recorder.encode_abi("receiveMessage", [b"replacement"])

    def submit(data: str) -> bytes:
        fn = outbox.functions.send(dest, recorder.address, data)
        tx = fn.build_transaction(
            {
                "from": USER.address,
                "nonce": w3.eth.get_transaction_count(USER.address, "pending"),
                "chainId": net.entry("bank-a")["chain_id"],
            }
        )
        return bytes(w3.eth.send_raw_transaction(USER.sign_transaction(tx).raw_transaction))

    def mined(tx: bytes) -> str:
        receipt = w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
        (sent,) = sent_messages(outbox, [receipt])
        return message_key(sent.message.source_chain_id, sent.message.nonce)

    _rpc(net, "bank-a", "evm_setAutomine", False)
    _rpc(net, "bank-a", "evm_setIntervalMining", 0)
    try:
        original = submit(original_data)
        _rpc(net, "bank-a", "evm_mine")
        key = mined(original)
        head = w3.eth.get_block("latest")
        assert w3.eth.get_block("safe")["number"] == head["number"] - 1  # the message is not final
        time.sleep(1.0)  # the watcher (0.25 s polls) most likely sees this head before it goes
        _rpc(net, "bank-a", "anvil_reorg", 1, [])  # the head block replaced by an empty one
        assert w3.eth.get_block(head["number"])["hash"] != head["hash"]
        assert _rpc(net, "bank-a", "eth_getTransactionReceipt", "0x" + original.hex()) is None
        replacement = submit(replacement_data)
        _rpc(net, "bank-a", "evm_mine")
        assert mined(replacement) == key  # the same nonce, so the same message id
    finally:
        _rpc(net, "bank-a", "evm_setAutomine", True)
        _rpc(net, "bank-a", "evm_setIntervalMining", 1)

    net.wait("bank-b", [key])
    net.wait("bank-a", [key])
    assert recorder.functions.count().call() == calls + 1
    *_, note = recorder.functions.records(calls).call()
    assert note == b"replacement"
    for name in ("bank-a", "bank-b"):
        assert _row(net, name, key).message.data == Web3.to_bytes(hexstr=replacement_data), name

    status = orjson.loads(_xrelay(net, "bank-a", "status", "--json").output)
    assert status["healthy"] is True and status["halts"] == dict.fromkeys(HALT_SCOPES), status
    reorg = status["chains"]["chain"]["last_reorg"]
    print(f"bank-a's last reorganisation: {reorg}")
    # The watcher may not have polled between the message's block and its replacement (then it saw
    # no reorganisation at all, which is just as right): only a reorganisation it saw is checked.
    if reorg is not None:
        assert reorg["deep"] is False and reorg["block"] == head["number"], reorg


def test_a_deep_reorganisation_halts_before_anything_settles_and_a_rewind_spends_nothing_twice(
    net: Net,
) -> None:
    """A reorganisation that removes a message bank-a had read (100 tokens, waiting for its batch)
    halts bank-a's outgoing pipeline at once, with an alarm (status, `xrelay status`, metric):
    nothing is batched or settled even past the batch's max wait. `xrelay resume` refuses (the store
    and the chain conflict); `xrelay resume --rewind` forgets the lost message. The user's next
    transfer (40 tokens, the same nonce) is relayed: the recipient has exactly 40, the user paid
    exactly 40, and the ledger adds up."""
    token = _asset(net, "bank-a", False)
    dev_token = _deposit_token(net, "bank-a")
    chain_a = net.entry("bank-a")["chain_id"]
    user_before = dev_token.functions.balanceOf(USER.address).call()
    recipient_before = _bridged_balance(net, "bank-b", token, RECIPIENT)
    ledger_before = _ledger(net, token, "bank-a")
    batches_before = hub_chain(net.hub(), chain_a).next_batch

    def slow_batches(config: dict[str, Any]) -> None:  # the message waits for its batch
        config["batch"]["max_wait_seconds"] = 10.0
        config["batch"]["close_when_idle"] = False

    with reconfigured(net, "bank-a", slow_batches):
        try:
            key = net.send("bank-a", "bank-b", RECIPIENT, b"", (token, 100 * ONE))
            net.wait("bank-a", [key], "sent", timeout=30)
            lost = _row(net, "bank-a", key)
            assert lost.block_number is not None
            w3 = net.chain("bank-a").w3
            depth = w3.eth.block_number - lost.block_number + 3  # a margin for the 1 s blocks
            _rpc(net, "bank-a", "anvil_reorg", depth, [])
            outbox = net.contract("bank-a", "Outbox")
            assert not outbox.events.MessageSent().get_logs(
                from_block=0, argument_filters={"nonce": lost.nonce}
            ), "the send is still on the chain"
            assert dev_token.functions.balanceOf(USER.address).call() == user_before

            _assert_outbox_halted(net, "bank-a")

            # Past the batch's max wait: nothing was batched, nothing settled on L1.
            time.sleep(max(0.0, lost.created_at + 12 - time.time()))
            still = _row(net, "bank-a", key)
            assert (still.status, still.batch_number) == ("sent", None), still
            assert hub_chain(net.hub(), chain_a).next_batch == batches_before
            assert net.row("bank-b", key) is None

            _resume_refused_then_rewound(net, "bank-a", key)
        finally:
            with net.store("bank-a") as store:
                halted = [scope for scope in HALT_SCOPES if store.active_halt(scope) is not None]
            for scope in halted:  # left so by a failure above: the next tests need bank-a to run
                _xrelay(
                    net, "bank-a", "resume", "--scope", scope, *(["--rewind"] if scope == "outbox" else [])
                )

        again = net.send("bank-a", "bank-b", RECIPIENT, b"", (token, 40 * ONE))
        assert again == key  # the chain gave the new transfer the lost one's nonce
        net.wait("bank-b", [again])
        net.wait("bank-a", [again])

    assert _bridged_balance(net, "bank-b", token, RECIPIENT) == recipient_before + 40 * ONE
    assert dev_token.functions.balanceOf(USER.address).call() == user_before - 40 * ONE
    assert _row(net, "bank-b", again).message.amount == 40 * ONE
    ledger_after = _ledger(net, token, "bank-a")
    _adds_up(ledger_before, "bank-a")
    _adds_up(ledger_after, "bank-a")
    assert ledger_after["locked on bank-a"] == ledger_before["locked on bank-a"] + 40 * ONE
    assert ledger_after["supply on bank-b"] == ledger_before["supply on bank-b"] + 40 * ONE


# --- RPC endpoints --------------------------------------------------------------------------------


def test_an_endpoint_of_another_chain_is_never_used_and_the_client_fails_back(net: Net) -> None:
    """bank-a's daemon is given a dead endpoint, then bank-b's node (another chain, with contracts at
    the same addresses), then its own: it relays both ways through its own, never reads bank-b's
    chain as its own, and reports each endpoint for what it is. When the first endpoint comes up (a
    forwarder to bank-a's node), the daemon fails back to it within `failback_seconds`."""
    recorder_b = net.contract("bank-b", "CallRecorder")
    recorder_a = net.contract("bank-a", "CallRecorder")
    chain_a = net.entry("bank-a")["chain_id"]
    port = anvil.free_port()
    dead = f"http://127.0.0.1:{port}"
    url_a, url_b = net.entry("bank-a")["rpc_url"], net.entry("bank-b")["rpc_url"]

    def endpoints(config: dict[str, Any]) -> None:
        config["chain"]["rpc_urls"] = [dead, url_b, url_a]
        config["chain"]["failback_seconds"] = 2.0

    def relay(note: bytes) -> None:
        there = net.send(
            "bank-a", "bank-b", recorder_b.address, recorder_b.encode_abi("receiveMessage", [note])
        )
        back = net.send(
            "bank-b", "bank-a", recorder_a.address, recorder_a.encode_abi("receiveMessage", [note])
        )
        net.wait("bank-b", [there])
        net.wait("bank-a", [back])
        net.wait("bank-a", [there])  # its receipt came back
        net.wait("bank-b", [back])

    with reconfigured(net, "bank-a", endpoints):
        relay(b"around a dead endpoint and another chain's")
        with net.store("bank-a") as store:
            out = store.messages(direction="out")
        assert out and {m.message.source_chain_id for m in out} == {chain_a}
        status = net.status("bank-a")["chains"]["chain"]
        seen = {e["url"]: e for e in status["endpoints"]}
        assert status["endpoint"] == url_a, status
        assert seen[dead]["state"] == "down", seen
        assert seen[url_b]["state"] == "wrong chain", seen
        assert "902" in (seen[url_b]["error"] or ""), seen
        assert seen[url_a]["state"] == "in use", seen

        forwarder = _Forwarder(port, net.entry("bank-a")["port"])
        try:
            came_up = time.monotonic()
            status = _until(
                f"bank-a's daemon to fail back to {dead}",
                lambda: (c := net.status("bank-a")["chains"]["chain"])["endpoint"] == dead and c,
                timeout=15,
            )
            print(f"failed back after {time.monotonic() - came_up:.1f} s")
            seen = {e["url"]: e for e in status["endpoints"]}
            assert seen[dead]["state"] == "in use", seen
            assert seen[url_b]["state"] == "wrong chain", seen
            relay(b"through the endpoint that came back")
            assert forwarder.sockets, "nothing went through the forwarder"
        finally:
            forwarder.close()


# --- bounces --------------------------------------------------------------------------------------


def test_value_a_peering_rule_refuses_comes_home_and_a_call_without_value_is_closed(net: Net) -> None:
    """bank-b lets bank-a call its CallRecorder only. bank-a's user sends 100 tokens and 2 ETH to
    their own address on bank-b, and a call without value there: bank-b bounces all three. The
    tokens and the ETH come home in bounce messages (bank-b's Outbox, sender BOUNCE_SENDER): the
    originals are "bounced", then "refunded" at bank-a, and the user has exactly what they had (less
    the gas); every ledger is as it was. The call without value is "bounced" on both sides, with no
    message back."""
    recorder = net.contract("bank-b", "CallRecorder")
    token, native = _asset(net, "bank-a", False), _asset(net, "bank-a", True)
    dev_token = _deposit_token(net, "bank-a")
    chain_a = net.chain("bank-a")
    tokens_before = dev_token.functions.balanceOf(USER.address).call()
    ledgers_before = {asset: _ledger(net, asset, "bank-a") for asset in (token, native)}
    rule = f"target not allowed: bank-a may not call {USER.address}"

    _peer_b_allows_bank_a(net, "--target", recorder.address)
    try:
        with_tokens = net.send("bank-a", "bank-b", USER.address, b"", (token, 100 * ONE))
        without_value = net.send("bank-a", "bank-b", USER.address)
        eth_before = chain_a.w3.eth.get_balance(USER.address)
        outbox = net.contract("bank-a", "Outbox")
        receipt = chain_a.send(
            outbox.functions.sendWithAsset(
                net.entry("bank-b")["chain_id"], USER.address, b"", native, 2 * ONE
            ),
            value=2 * ONE,
        )
        gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        (sent,) = sent_messages(outbox, [receipt])
        with_eth = message_key(sent.message.source_chain_id, sent.message.nonce)
        valued = [with_tokens, with_eth]
        net.wait("bank-b", [*valued, without_value], "bounced")
        net.wait("bank-a", valued, "refunded")
        net.wait("bank-a", [without_value], "bounced")
    finally:
        _peer_b_allows_bank_a(net)  # any target, any asset, as the devnet made it

    for key in [*valued, without_value]:
        there, here = _row(net, "bank-b", key), _row(net, "bank-a", key)
        assert there.error == rule, there
        assert _in_order(_statuses(net, "bank-b", key), "received", "bouncing", "bounced")
        with net.store("bank-b") as store:
            assert rule in str([t.reason for t in store.history(key)])
        assert here.error == rule, here
    for key in valued:
        assert _in_order(_statuses(net, "bank-a", key), "sent", "bounced", "refunded"), key
        (bounce,) = _bounces_of(net, "bank-b", _row(net, "bank-a", key))
        original = _row(net, "bank-a", key).message
        assert bounce.message.sender.lower() == BOUNCE_SENDER.lower()
        assert bounce.message.target.lower() == USER.address.lower()
        assert (bounce.message.asset_id, bounce.message.amount) == (original.asset_id, original.amount)
        assert bounce.peer == "bank-a"
        came_home = _row(net, "bank-a", bounce.id)
        assert (came_home.direction, came_home.status) == ("in", "executed"), came_home
    assert _bounces_of(net, "bank-b", _row(net, "bank-a", without_value)) == []

    assert dev_token.functions.balanceOf(USER.address).call() == tokens_before
    assert chain_a.w3.eth.get_balance(USER.address) == eth_before - gas
    for asset, before in ledgers_before.items():
        after = _ledger(net, asset, "bank-a")
        assert after == before, (asset.hex(), before, after)
        _adds_up(after, "bank-a")
    assert net.status("bank-a")["healthy"] and net.status("bank-b")["healthy"]


def test_a_failed_message_its_destination_gives_up_is_bounced_and_refunded_once(net: Net) -> None:
    """A call with 100 tokens whose target reverts is "failed" on bank-b. bank-b's operator gives it up
    (`xrelay bounce ID --reason`): bank-b bounces it ("bouncing", "bounced"), the tokens come home
    and bank-a marks it "refunded"; the user has exactly what they had and the ledger adds up. It can
    no longer be replayed, and bouncing it again changes nothing."""
    recorder = net.contract("bank-b", "CallRecorder")
    on_b = net.chain("bank-b")
    token = _asset(net, "bank-a", False)
    dev_token = _deposit_token(net, "bank-a")
    tokens_before = dev_token.functions.balanceOf(USER.address).call()
    ledger_before = _ledger(net, token, "bank-a")
    calls = recorder.functions.count().call()

    on_b.send(recorder.functions.setFailing(True))
    try:
        note = recorder.encode_abi("receiveMessage", [b"the target fails"])
        key = net.send("bank-a", "bank-b", recorder.address, note, (token, 100 * ONE))
        net.wait("bank-b", [key], "failed")
        net.wait("bank-a", [key], "failed")
        assert "TargetFailing" in str(_row(net, "bank-b", key).error)
        assert dev_token.functions.balanceOf(USER.address).call() == tokens_before - 100 * ONE

        given_up = _xrelay(net, "bank-b", "bounce", key, "--reason", "given up")
        assert given_up.exit_code == 0, given_up.output
        assert "failed -> bouncing" in given_up.output, given_up.output
        net.wait("bank-b", [key], "bounced")
        net.wait("bank-a", [key], "refunded")
    finally:
        on_b.send(recorder.functions.setFailing(False))

    assert _in_order(_statuses(net, "bank-b", key), "failed", "bouncing", "bounced")
    assert "given up" in str(_row(net, "bank-b", key).error)
    assert _in_order(_statuses(net, "bank-a", key), "failed", "bounced", "refunded")
    assert "given up" in str(_row(net, "bank-a", key).error)
    (bounce,) = _bounces_of(net, "bank-b", _row(net, "bank-a", key))
    assert (bounce.message.target.lower(), bounce.message.amount) == (USER.address.lower(), 100 * ONE)
    assert _row(net, "bank-a", bounce.id).status == "executed"
    assert recorder.functions.count().call() == calls
    assert dev_token.functions.balanceOf(USER.address).call() == tokens_before
    ledger_after = _ledger(net, token, "bank-a")
    assert ledger_after == ledger_before
    _adds_up(ledger_after, "bank-a")

    replay = _xrelay(net, "bank-b", "replay", key)
    assert replay.exit_code != 0 and "bounced" in replay.output, replay.output
    again = _xrelay(net, "bank-b", "bounce", key, "--reason", "given up again")
    assert again.exit_code == 0 and "nothing changed" in again.output, again.output
    time.sleep(3)  # had it bounced again, a second bounce message would be on its way by now
    assert _row(net, "bank-b", key).status == "bounced"
    assert len(_bounces_of(net, "bank-b", _row(net, "bank-a", key))) == 1
    inbox = net.contract("bank-b", "Inbox")
    message_id = _row(net, "bank-b", key).message.id()
    assert len(inbox.events.MessageBounced().get_logs(from_block=0, argument_filters={"id": message_id})) == 1
    assert dev_token.functions.balanceOf(USER.address).call() == tokens_before


def test_an_execution_reorganised_away_on_the_destination_is_done_again_once(net: Net) -> None:
    """bank-b executes a message in a block that a reorganisation then replaces before it is final:
    the Inbox no longer has it executed, so when the block's height is final bank-b's daemon finds
    its record contradicted, takes the message back to "verified" and executes it again — once: the
    target is called exactly one time in the chain as it is."""
    recorder = net.contract("bank-b", "CallRecorder")
    calls = recorder.functions.count().call()
    w3 = net.chain("bank-b").w3
    _rpc(net, "bank-b", "evm_setAutomine", False)
    _rpc(net, "bank-b", "evm_setIntervalMining", 0)
    try:
        data = recorder.encode_abi("receiveMessage", [b"twice?"])
        key = net.send("bank-a", "bank-b", recorder.address, data)
        pending = lambda: int(_rpc(net, "bank-b", "txpool_status")["pending"], 16)  # noqa: E731
        _until("bank-b's execute transaction", pending)
        _rpc(net, "bank-b", "evm_mine")
        net.wait("bank-b", [key], timeout=60)
        executed_in = _row(net, "bank-b", key).exec_tx
        assert recorder.functions.count().call() == calls + 1
        _rpc(net, "bank-b", "anvil_reorg", 1, [])  # the execution's block, replaced by an empty one
        assert _rpc(net, "bank-b", "eth_getTransactionReceipt", executed_in) is None
        assert recorder.functions.count().call() == calls
    finally:
        _rpc(net, "bank-b", "evm_setAutomine", True)
        _rpc(net, "bank-b", "evm_setIntervalMining", 1)
    _until("the execution done again", lambda: "verified" in _statuses(net, "bank-b", key)[2:] or None)
    net.wait("bank-b", [key])
    assert recorder.functions.count().call() == calls + 1
    assert w3.eth.get_transaction_receipt(_row(net, "bank-b", key).exec_tx)["status"] == 1  # type: ignore[arg-type]
    with net.store("bank-b") as store:
        assert any("no longer in the chain" in t.reason for t in store.history(key))
