"""The Outbox on a real anvil node: numbering, value through the AssetRouter, refusals, and that the
leaf and rolling hash it computes are the ones Python (and so the batch circuit) computes."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from bridge_contracts import anvil, deploy, toolchain
from bridge_contracts.chain import Chain, Reverted
from bridge_contracts.messages import Message, SentMessage, sent_messages
from bridge_contracts.verifier_gen import calldata, deploy_verifier
from proofs import merkle
from proofs.circuits.batch import Batch, BatchCircuit, PublicInputs
from proofs.formats import r1cs as r1cs_file
from proofs.formats import snarkjs_json
from proofs.formats import wtns as wtns_file
from proofs.groth16.prover import prove
from proofs.groth16.setup import setup
from proofs.groth16.verifier import verify
from proofs.message import roll
from tests import snarkjs

NATIVE = "0x0000000000000000000000000000000000000001"
L1_ID, PEER_ID = 900, 902
E18 = 10**18
USER = anvil.dev_account(5)
TARGET = anvil.dev_account(7).address
INBOX = anvil.dev_account(2)  # stands in for the Inbox, which comes with the L1 Hub


@dataclass
class Sender:
    chain: Chain
    router: Contract
    outbox: Contract

    def send(self, dest: int, data: bytes = b"", *, target: str = TARGET) -> SentMessage:
        receipt = self.chain.with_signer(USER).send(self.outbox.functions.send(dest, target, data))
        [sent] = sent_messages(self.outbox, [receipt])
        return sent

    def send_asset(
        self, dest: int, asset_id: bytes, amount: int, *, value: int = 0, data: bytes = b""
    ) -> SentMessage:
        fn = self.outbox.functions.sendWithAsset(dest, TARGET, data, asset_id, amount)
        receipt = self.chain.with_signer(USER).send(fn, value=value)
        [sent] = sent_messages(self.outbox, [receipt])
        return sent

    def native_asset(self) -> bytes:
        return bytes(self.router.functions.nativeAssetId().call())


@pytest.fixture
def sender(chain_a: Chain) -> Sender:
    router = deploy.deploy_asset_router(chain_a)
    outbox = deploy.deploy_outbox(chain_a, router.address, owner=chain_a.signer.address)
    chain_a.send(router.functions.connect(outbox.address, INBOX.address))
    for dest in (L1_ID, PEER_ID):
        chain_a.send(outbox.functions.setDestination(dest, True))
    return Sender(chain_a, router, outbox)


def test_send_numbers_hashes_and_emits_the_message(sender: Sender) -> None:
    first = sender.send(PEER_ID, b"\x01\x02")
    second = sender.send(L1_ID, b"hello")
    assert [first.message.nonce, second.message.nonce] == [0, 1]
    assert sender.outbox.functions.nonce().call() == 2
    m = first.message
    assert (m.source_chain_id, m.dest_chain_id, m.sender, m.target) == (901, PEER_ID, USER.address, TARGET)
    assert (m.asset_id, m.amount, m.data, m.asset_data) == (b"\0" * 32, 0, b"\x01\x02", b"")
    for sent in (first, second):
        assert sent.leaf == sent.message.leaf()
        assert sender.outbox.functions.leafOf(sent.message.as_tuple()).call() == sent.leaf
    assert first.outbox_hash == roll(0, first.leaf)
    assert second.outbox_hash == roll(first.outbox_hash, second.leaf)
    assert sender.outbox.functions.outboxHash().call() == second.outbox_hash


def test_body_is_the_top_248_bits_of_the_keccak_of_the_rest() -> None:
    m = Message(901, 902, 7, USER.address, TARGET, b"\x11" * 32, 5, b"call", b"asset")
    digest = keccak(
        encode(
            ["uint64", "uint64", "address", "address", "bytes", "bytes"],
            [901, 7, USER.address, TARGET, b"call", b"asset"],
        )
    )
    assert m.body() == int.from_bytes(digest[:31], "big")


def test_native_value_is_locked_and_carried(sender: Sender) -> None:
    native = sender.native_asset()
    sent = sender.send_asset(PEER_ID, native, 3 * E18, value=3 * E18)
    assert (sent.message.asset_id, sent.message.amount) == (native, 3 * E18)
    assert sent.message.asset_data == sender.router.functions.assetDataOf(native).call()
    assert sender.router.functions.locked(native).call() == 3 * E18
    assert sender.chain.w3.eth.get_balance(sender.router.address) == 3 * E18
    assert sent.leaf == sent.message.leaf()


def test_erc20_value_is_locked_and_bridged_value_burned(sender: Sender) -> None:
    chain, router = sender.chain, sender.router
    token = deploy.deploy_dev_token(chain, "Deposit", "DEP", decimals=6)
    chain.send(token.functions.mint(USER.address, 100))
    chain.with_signer(USER).send(token.functions.approve(router.address, 100))
    chain.send(router.functions.registerToken(token.address))
    token_id = bytes(router.functions.assetIdOfToken(token.address).call())
    sent = sender.send_asset(L1_ID, token_id, 60)
    assert token.functions.balanceOf(USER.address).call() == 40
    assert router.functions.locked(token_id).call() == 60
    assert sent.leaf == sent.message.leaf()

    # An asset from elsewhere arrives (the Inbox mints it), then leaves again: burned.
    foreign = encode(
        ["uint256", "address", "string", "string", "uint8"], [PEER_ID, NATIVE, "Peer", "PEER", 18]
    )
    foreign_id = keccak(encode(["uint256", "address"], [PEER_ID, NATIVE]))
    chain.with_signer(INBOX).send(router.functions.releaseOrMint(foreign_id, USER.address, 50, foreign))
    bridged = chain.contract("BridgedToken", router.functions.assets(foreign_id).call()[2])
    sent = sender.send_asset(PEER_ID, foreign_id, 20)
    assert bridged.functions.balanceOf(USER.address).call() == 30
    assert sent.message.asset_data == foreign
    assert sent.leaf == sent.message.leaf()


# (destination, target, asset, amount, msg.value, the error it gives)
Refusal = tuple[int, str, str | None, int, int, str]


@pytest.mark.parametrize(
    "case",
    [
        (903, TARGET, None, 0, 0, r"UnknownDestination\(destChainId=903\)"),
        (PEER_ID, "0x" + "00" * 20, None, 0, 0, r"ZeroTarget\(\)"),
        (PEER_ID, TARGET, "native", 0, 0, r"ZeroAmount\(\)"),
        (
            PEER_ID,
            TARGET,
            "native",
            2**128,
            0,
            r"AmountTooLarge\(amount=340282366920938463463374607431768211456",
        ),
        (PEER_ID, TARGET, "native", 5, 4, r"NativeValueMismatch\(expected=5, received=4\)"),
        (PEER_ID, TARGET, "unknown", 5, 0, r"UnknownAsset\(assetId=0x" + "ab" * 32),
        (903, TARGET, "native", 5, 5, r"UnknownDestination\(destChainId=903\)"),
    ],
)
def test_refusals(sender: Sender, case: Refusal) -> None:
    dest, target, asset, amount, value, error = case
    outbox = sender.outbox
    if asset is None:
        fn = outbox.functions.send(dest, target, b"")
    else:
        aid = sender.native_asset() if asset == "native" else b"\xab" * 32
        fn = outbox.functions.sendWithAsset(dest, target, b"", aid, amount)
    with pytest.raises(Reverted, match=error):
        sender.chain.with_signer(USER).send(fn, value=value)
    assert outbox.functions.nonce().call() == 0
    assert outbox.functions.outboxHash().call() == 0


def test_only_the_owner_sets_destinations_and_never_its_own_chain(sender: Sender) -> None:
    with pytest.raises(Reverted, match=r"OwnableUnauthorizedAccount"):
        sender.chain.with_signer(USER).send(sender.outbox.functions.setDestination(903, True))
    with pytest.raises(Reverted, match=r"SelfDestination\(chainId=901\)"):
        sender.chain.send(sender.outbox.functions.setDestination(901, True))
    sender.chain.send(sender.outbox.functions.setDestination(PEER_ID, False))
    with pytest.raises(Reverted, match=r"UnknownDestination"):
        sender.send(PEER_ID)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sends=st.lists(
        st.tuples(st.sampled_from([L1_ID, PEER_ID]), st.binary(max_size=80), st.integers(0, 10**6)),
        min_size=1,
        max_size=5,
    )
)
def test_rolling_hash_matches_python_for_any_sequence(
    sender: Sender, sends: list[tuple[int, bytes, int]]
) -> None:
    outbox_hash = sender.outbox.functions.outboxHash().call()
    nonce = sender.outbox.functions.nonce().call()
    for dest, data, amount in sends:
        if amount:
            sent = sender.send_asset(dest, sender.native_asset(), amount, value=amount, data=data)
        else:
            sent = sender.send(dest, data)
        assert sent.message.nonce == nonce
        assert sent.leaf == sent.message.leaf()
        outbox_hash = roll(outbox_hash, sent.leaf)
        assert sent.outbox_hash == outbox_hash
        nonce += 1
    assert sender.outbox.functions.outboxHash().call() == outbox_hash


# --- Python, circuit and Solidity agree ----------------------------------------------------------


def test_batch_witness_reproduces_the_outbox_hash_and_batch_root(sender: Sender, tmp_path: Path) -> None:
    native = sender.native_asset()
    sent = [
        sender.send(PEER_ID, b"first"),
        sender.send_asset(PEER_ID, native, 10**18, value=10**18, data=b"pay"),
        sender.send_asset(L1_ID, native, 7, value=7),
        sender.send(L1_ID, b"\x00" * 100),
        sender.send_asset(PEER_ID, native, 5, value=5),
    ]
    circuit = BatchCircuit(8)
    # Two batches, the second starting where the first ended on-chain.
    for number, (start, end) in enumerate([(0, 3), (3, 5)]):
        h_start = sent[start - 1].outbox_hash if start else 0
        batch = Batch(901, number, h_start, tuple(s.message.preimage() for s in sent[start:end]))
        witness = circuit.witness(batch)
        public = PublicInputs.from_values(circuit.r1cs.public_values(witness))
        assert (public.chain_id, public.batch_number, public.count) == (901, number, end - start)
        assert (public.h_start, public.h_end) == (h_start, sent[end - 1].outbox_hash)
        assert public.batch_root == merkle.batch_root([s.leaf for s in sent[start:end]], 8)
    assert sender.outbox.functions.outboxHash().call() == public.h_end

    # snarkjs agrees that the last witness satisfies the circuit.
    r1cs_file.write(circuit.r1cs, tmp_path / "batch.r1cs")
    wtns_file.write(witness, tmp_path / "batch.wtns")
    check = subprocess.run(
        [
            toolchain.node(),
            str(toolchain.snarkjs()),
            "wtns",
            "check",
            tmp_path / "batch.r1cs",
            tmp_path / "batch.wtns",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    said = re.sub(r"\x1b\[[0-9;]*m", "", check.stdout)  # snarkjs colours its verdict
    assert "WITNESS IS CORRECT" in said, said + check.stderr


def test_a_batch_proof_of_outbox_messages_verifies_in_py_ecc_solidity_and_snarkjs(
    sender: Sender, tmp_path: Path
) -> None:
    native = sender.native_asset()
    sent = [
        sender.send(PEER_ID, b"hello"),
        sender.send_asset(PEER_ID, native, 10**18, value=10**18, data=b"pay"),
        sender.send_asset(L1_ID, native, 3, value=3),
    ]
    circuit = BatchCircuit(8)
    witness = circuit.witness(Batch(901, 0, 0, tuple(s.message.preimage() for s in sent)))
    public = circuit.r1cs.public_values(witness)
    pk = setup(circuit.r1cs, seed=b"test_outbox", development=True)
    proof = prove(pk, witness)

    assert verify(pk.vk, public, proof)
    verifier = deploy_verifier(sender.chain, pk.vk)
    assert verifier.functions.verifyProof(*calldata(proof, public)).call()
    files = {"vk": snarkjs_json.verifying_key_to_json(pk.vk), "public": snarkjs_json.public_to_json(public)}
    files["proof"] = snarkjs_json.proof_to_json(proof)
    for name, content in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    assert snarkjs.verify(tmp_path / "vk.json", tmp_path / "public.json", tmp_path / "proof.json")
    # The proof is bound to the on-chain hash: claiming any other hEnd fails.
    stated = PublicInputs.from_values(public)
    forged = replace(stated, h_end=stated.h_end + 1).values()
    assert not verify(pk.vk, forged, proof)
    assert not verifier.functions.verifyProof(*calldata(proof, forged)).call()


def test_a_token_that_sends_from_transfer_from_keeps_the_order(sender: Sender) -> None:
    chain, router, outbox = sender.chain, sender.router, sender.outbox
    token = chain.deploy("ReentrantToken")
    chain.send(token.functions.transfer(USER.address, 100))
    chain.with_signer(USER).send(token.functions.approve(router.address, 100))
    chain.send(router.functions.registerToken(token.address))
    chain.send(token.functions.arm(outbox.address, PEER_ID))
    token_id = bytes(router.functions.assetIdOfToken(token.address).call())
    receipt = chain.with_signer(USER).send(outbox.functions.sendWithAsset(PEER_ID, TARGET, b"", token_id, 60))
    inner, outer = sent_messages(outbox, [receipt])
    assert (inner.message.nonce, inner.message.sender, inner.message.data) == (0, token.address, b"reentered")
    assert (outer.message.nonce, outer.message.amount) == (1, 60)
    assert outer.outbox_hash == roll(roll(0, inner.leaf), outer.leaf) == outbox.functions.outboxHash().call()
