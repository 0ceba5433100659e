"""The L1 Hub on a real anvil node (chain_a acts as L1), with real Groth16 batch proofs: settling
batches (balances, the aggregated tree, events), every refusal, the asset-origin rule, deposits and
withdrawals to L1; and that its hashing and digests are the ones Python computes."""

from __future__ import annotations

import dataclasses

import pytest
from web3 import Web3
from web3.types import TxReceipt

from bridge_contracts import anvil
from bridge_contracts.chain import Chain, Reverted
from bridge_contracts.messages import (
    Message,
    MessageProof,
    aggregated_leaf,
    commit_digest,
    message_id,
    sign_digest,
)
from bridge_contracts.views import HubBatch, HubBusKey, HubChain, hub_batch
from hub.envelope import devnet_bus_key, public_key_of
from proofs import merkle
from tests.settlement import (
    CAPACITY,
    DEPTH,
    E18,
    NATIVE,
    Prepared,
    Settlement,
    asset_id,
    call_error,
    ether_data,
    events,
    message,
)

B, C = 902, 903  # institution chains the Hub settles (it never reads them)
OPERATOR_B, OPERATOR_C = anvil.dev_account(2), anvil.dev_account(3)
USER = anvil.dev_account(5)
RECIPIENT = anvil.dev_account(6).address
B_ETH, C_ETH = asset_id(B, NATIVE), asset_id(C, NATIVE)


@pytest.fixture
def hub(chain_a: Chain) -> Settlement:
    settlement = Settlement.deploy(chain_a)
    settlement.register(B, OPERATOR_B)
    settlement.register(C, OPERATOR_C)
    return settlement


def l1_eth(hub: Settlement) -> bytes:
    return asset_id(hub.l1, NATIVE)


def test_commit_batch_settles_balances_tree_and_events(hub: Settlement) -> None:
    l1 = hub.l1
    assert bytes(hub.hub.functions.aggregatedRoot().call()) == hub.tree.root == hub.tree.root_at(0)
    assert hub.hub.functions.nativeAssetId().call() == l1_eth(hub)
    assert hub.hub.functions.assetOrigin(B_ETH).call() == B  # registerChain registers its native token
    messages = [
        message(B, C, 0, RECIPIENT, asset=B_ETH, amount=5, assetdata=ether_data(B)),
        message(B, C, 1, RECIPIENT, data=b"no value"),
        message(B, C, 2, RECIPIENT, asset=B_ETH, amount=7, assetdata=ether_data(B)),
    ]
    prepared = hub.prepare(B, messages, OPERATOR_B)
    # Python and Solidity agree on the public inputs and the digest the operator signs.
    assert hub.hub.functions.publicInputs(prepared.batch).call() == prepared.public.values()
    digest = commit_digest(prepared.public, CAPACITY, l1_chain_id=l1, hub=hub.hub.address)
    assert bytes(hub.hub.functions.commitDigest(prepared.batch).call()) == digest

    receipt = hub.commit(B, messages, OPERATOR_B)
    print(f"\ngas commitBatch (3 messages, 1 value slot): {receipt['gasUsed']}")
    root = merkle.batch_root([m.leaf() for m in messages], CAPACITY)
    leaf = aggregated_leaf(B, 0, DEPTH, root)
    [committed] = events(hub.hub, "BatchCommitted", receipt)
    assert committed == {
        "chainId": B,
        "batchNumber": 0,
        "count": 3,
        "hEnd": prepared.public.h_end,
        "batchRoot": root,
        "depth": DEPTH,
        "leafIndex": 0,
        "aggregatedRoot": hub.tree.root,
    }
    [appended] = events(hub.hub, "AggregatedLeafAppended", receipt)
    assert (appended["leafIndex"], bytes(appended["leaf"])) == (0, leaf)
    assert bytes(appended["root"]) == hub.tree.root
    # Chain B sent its own asset: C is credited, B is never debited.
    changes = [(e["chainId"], e["balance"]) for e in events(hub.hub, "BalanceChanged", receipt)]
    assert changes == [(C, 12)]
    assert (hub.balance(C, B_ETH), hub.balance(B, B_ETH)) == (12, 0)
    assert hub.info(B) == HubChain(True, True, OPERATOR_B.address, 1, prepared.public.h_end)
    assert hub_batch(hub.hub, B, 0) == HubBatch(root, DEPTH, 0, True)
    assert hub.hub.functions.aggregatedSize().call() == 1
    assert bytes(hub.hub.functions.rootAt(1).call()) == hub.tree.root
    assert bytes(hub.hub.functions.rootAt(0).call()) == hub.tree.root_at(0)
    for root_ in (hub.tree.root_at(0), hub.tree.root):
        assert hub.hub.functions.isAggregatedRoot(root_).call()
    assert call_error(hub.hub.functions.rootAt(2)) == "UnknownSize(size=2, aggregatedSize=1)"

    # C sends some back (debited; B, the origin, is not credited) and some to L1 (credited there).
    back = [
        message(C, B, 0, RECIPIENT, asset=B_ETH, amount=4, assetdata=ether_data(B)),
        message(C, l1, 1, RECIPIENT, asset=B_ETH, amount=3, assetdata=ether_data(B)),
    ]
    receipt = hub.commit(C, back, OPERATOR_C)
    print(f"gas commitBatch (2 messages, 2 value slots): {receipt['gasUsed']}")
    changes = [(e["chainId"], e["balance"]) for e in events(hub.hub, "BalanceChanged", receipt)]
    assert changes == [(C, 8), (C, 5), (l1, 3)]
    assert (hub.balance(C, B_ETH), hub.balance(B, B_ETH), hub.balance(l1, B_ETH)) == (5, 0, 3)
    assert hub_batch(hub.hub, C, 0).leaf_index == 1  # the second aggregated leaf
    # B's next batch starts where its first ended.
    hub.commit(B, [message(B, C, 3, RECIPIENT, data=b"next")], OPERATOR_B)
    assert hub.info(B).next_batch == 2
    assert hub_batch(hub.hub, B, 2) == HubBatch(0, 0, 0, False)  # not committed yet
    assert hub.hub.functions.aggregatedSize().call() == 3


def test_hub_views_refuse_a_record_of_another_shape() -> None:
    with pytest.raises(
        ValueError, match=r"Hub.chains returns 5 fields \(registered, .*outbox_hash\); 4 were given"
    ):
        HubChain.from_tuple([True, True, OPERATOR_B.address, 1])
    with pytest.raises(ValueError, match=r"Hub.batches returns 4 fields .*; 5 were given"):
        HubBatch.from_tuple([1, 3, 0, True, 0])
    assert HubBatch.from_tuple((1, 3, 0, True)) == HubBatch(
        batch_root=1, depth=3, leaf_index=0, committed=True
    )


def test_an_origin_chain_is_never_overdrawn_on_its_own_asset(hub: Settlement) -> None:
    token = Web3.to_checksum_address("0x" + "ab" * 20)
    b_token = asset_id(B, token)
    big = 2**128 - 1
    # An asset the Hub does not know has no origin: even B cannot send it before it is registered.
    transfer = [message(B, C, 0, RECIPIENT, asset=b_token, amount=big)]
    with pytest.raises(
        Reverted, match=r"Overdraft\(chainId=902, assetId=0x" + b_token.hex() + r", balance=0"
    ):
        hub.send(hub.prepare(B, transfer, OPERATOR_B))
    registered = hub.hub.functions.registerAsset(B, token)
    assert bytes(registered.call()) == b_token
    hub.chain.with_signer(USER).send(registered)  # anyone may register; idempotent
    hub.chain.with_signer(USER).send(registered)
    assert hub.hub.functions.assetOrigin(b_token).call() == B
    hub.commit(B, transfer, OPERATOR_B)
    hub.commit(B, [message(B, C, 1, RECIPIENT, asset=b_token, amount=big)], OPERATOR_B)  # any amount, again
    assert (hub.balance(B, b_token), hub.balance(C, b_token)) == (0, 2 * big)
    # C holds 2 * big; it can send that back, never more.
    too_much = [
        message(C, B, 0, RECIPIENT, asset=b_token, amount=big),
        message(C, B, 1, RECIPIENT, asset=b_token, amount=big),
        message(C, B, 2, RECIPIENT, asset=b_token, amount=1),
    ]
    with pytest.raises(
        Reverted, match=rf"Overdraft\(chainId=903, assetId=0x{b_token.hex()}, balance={2 * big}"
    ):
        hub.send(hub.prepare(C, too_much, OPERATOR_C))
    hub.commit(C, too_much[:2], OPERATOR_C)
    assert (hub.balance(B, b_token), hub.balance(C, b_token)) == (0, 0)


VALUED = [message(B, C, 0, RECIPIENT, asset=B_ETH, amount=5, assetdata=ether_data(B))]


def _refusal(hub: Settlement, case: str) -> tuple[Prepared, str]:
    """The batch commitment of one refusal case, and the error the Hub must give for it."""
    good = hub.prepare(B, VALUED, OPERATOR_B)
    other = anvil.dev_account(7)
    match case:
        case "unknown chain":
            return hub.prepare(904, [message(904, B, 0, RECIPIENT)], other), r"UnknownChain\(chainId=904\)"
        case "no verifier":
            hub.register(904, other, with_verifier=False)
            return (
                hub.prepare(904, [message(904, B, 0, RECIPIENT)], other),
                r"NoVerifier\(chainId=904, capacity=8\)",
            )
        case "bad batch number":
            return hub.prepare(B, VALUED, OPERATOR_B, batch_number=1), r"BadBatchNumber\(expected=0, got=1\)"
        case "bad hStart":
            return hub.prepare(B, VALUED, OPERATOR_B, h_start=5), r"BadHStart\(expected=0, got=5\)"
        case "bad count":
            zero = (*good.batch[:3], 0, *good.batch[4:])
            return dataclasses.replace(good, batch=zero), r"BadCount\(count=0, capacity=8\)"
        case "malformed signature":
            return (
                dataclasses.replace(good, signature=b"\x01" * 10),
                rf"BadSignature\(recovered=0x{'0' * 40}, operator={OPERATOR_B.address}\)",
            )
        case "wrong operator":
            return (
                hub.sign(good.public, good.proof, OPERATOR_C),
                rf"BadSignature\(recovered={OPERATOR_C.address}, operator={OPERATOR_B.address}\)",
            )
        case "signed for another hub":
            digest = commit_digest(good.public, CAPACITY, l1_chain_id=hub.l1, hub=RECIPIENT)
            return (
                dataclasses.replace(good, signature=sign_digest(OPERATOR_B, digest)),
                r"BadSignature\(recovered=0x[0-9a-fA-F]{40}, operator=",
            )
        case "invalid proof":
            forged = dataclasses.replace(good.public, h_end=good.public.h_end + 1)
            return hub.sign(forged, good.proof, OPERATOR_B), r"InvalidProof\(\)"
        case "proof of another batch":
            other_batch = hub.prepare(B, [message(B, C, 0, RECIPIENT, data=b"x")], OPERATOR_B)
            return hub.sign(good.public, other_batch.proof, OPERATOR_B), r"InvalidProof\(\)"
        case "overdraft":
            back = [message(C, B, 0, RECIPIENT, asset=B_ETH, amount=5, assetdata=ether_data(B))]
            return (
                hub.prepare(C, back, OPERATOR_C),
                rf"Overdraft\(chainId=903, assetId=0x{B_ETH.hex()}, balance=0, amount=5\)",
            )
        case "unknown destination":
            away = [message(B, 999, 0, RECIPIENT, asset=B_ETH, amount=5)]
            return hub.prepare(B, away, OPERATOR_B), r"UnknownDestination\(destChainId=999\)"
        case "value to itself":
            home = [message(B, B, 0, RECIPIENT, asset=B_ETH, amount=5)]
            return hub.prepare(B, home, OPERATOR_B), r"UnknownDestination\(destChainId=902\)"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "unknown chain",
        "no verifier",
        "bad batch number",
        "bad hStart",
        "bad count",
        "malformed signature",
        "wrong operator",
        "signed for another hub",
        "invalid proof",
        "proof of another batch",
        "overdraft",
        "unknown destination",
        "value to itself",
    ],
)
def test_commit_batch_refusals(hub: Settlement, case: str) -> None:
    prepared, error = _refusal(hub, case)
    root = hub.hub.functions.aggregatedRoot().call()
    with pytest.raises(Reverted, match=error):
        hub.chain.with_signer(USER).send(hub.hub.functions.commitBatch(*prepared.as_args()))
    info = hub.info(B)
    assert (info.next_batch, info.outbox_hash) == (0, 0)
    assert hub.hub.functions.aggregatedSize().call() == 0
    assert hub.hub.functions.aggregatedRoot().call() == root


def test_governance_is_the_owners(hub: Settlement) -> None:
    stranger = hub.chain.with_signer(USER)
    for call in (
        hub.hub.functions.registerChain(904, USER.address, True),
        hub.hub.functions.setOperator(B, USER.address),
        hub.hub.functions.setVerifier(B, CAPACITY, USER.address),
    ):
        with pytest.raises(Reverted, match=r"OwnableUnauthorizedAccount"):
            stranger.send(call)
    with pytest.raises(Reverted, match=r"BadChainId\(chainId=901\)"):
        hub.chain.send(hub.hub.functions.registerChain(hub.l1, USER.address, True))
    with pytest.raises(Reverted, match=r"AlreadyRegistered\(chainId=902\)"):
        hub.chain.send(hub.hub.functions.registerChain(B, USER.address, True))
    with pytest.raises(Reverted, match=r"UnknownChain\(chainId=904\)"):
        hub.chain.send(hub.hub.functions.setOperator(904, USER.address))
    assert hub.info(904) == HubChain(False, False, "0x" + "00" * 20, 0, 0)  # what the Hub has for none
    for capacity in (4, 12, 2048):
        with pytest.raises(Reverted, match=rf"BadCapacity\(capacity={capacity}\)"):
            hub.chain.send(hub.hub.functions.setVerifier(B, capacity, hub.verifier))
    assert hub.hub.functions.verifiers(B, CAPACITY).call() == hub.verifier

    # A new operator: the old one's signature no longer counts.
    batch = [message(B, C, 0, RECIPIENT, data=b"hi")]
    hub.chain.send(hub.hub.functions.setOperator(B, OPERATOR_C.address))
    assert hub.info(B).operator == OPERATOR_C.address
    with pytest.raises(Reverted, match=r"BadSignature"):
        hub.send(hub.prepare(B, batch, OPERATOR_B))
    hub.commit(B, batch, OPERATOR_C)


def test_a_chains_bus_key_is_set_by_its_operator_or_governance(hub: Settlement) -> None:
    def keys(chain_id: int) -> HubBusKey:
        return HubBusKey.from_tuple(hub.hub.functions.busKeys(chain_id).call())

    first = keys(B).current
    assert first == public_key_of(devnet_bus_key(2))  # registered with the chain (tests/settlement.py)
    new_key = public_key_of(devnet_bus_key(50))
    with pytest.raises(Reverted, match=rf"NotChainOperator\(chainId={B}, caller={USER.address}\)"):
        hub.chain.with_signer(USER).send(hub.hub.functions.setBusKey(B, new_key))
    with pytest.raises(Reverted, match=rf"NotChainOperator\(chainId={B}, caller={OPERATOR_C.address}\)"):
        hub.chain.with_signer(OPERATOR_C).send(hub.hub.functions.setBusKey(B, new_key))  # C's, not B's
    with pytest.raises(Reverted, match=r"UnknownChain\(chainId=904\)"):
        hub.chain.send(hub.hub.functions.setBusKey(904, new_key))
    with pytest.raises(Reverted, match=r"ZeroKey"):
        hub.chain.with_signer(OPERATOR_B).send(hub.hub.functions.setBusKey(B, bytes(32)))
    with pytest.raises(Reverted, match=r"SameKey"):
        hub.chain.with_signer(OPERATOR_B).send(hub.hub.functions.setBusKey(B, first))
    receipt = hub.chain.with_signer(OPERATOR_B).send(hub.hub.functions.setBusKey(B, new_key))
    [event] = events(hub.hub, "BusKeyChanged", receipt)
    assert (event["chainId"], bytes(event["key"]), bytes(event["previous"])) == (B, new_key, first)
    moment = hub.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert keys(B) == HubBusKey(new_key, first, moment)
    hub.chain.send(hub.hub.functions.setBusKey(B, first))  # governance may set it too
    assert keys(B).current == first and keys(B).previous == new_key
    assert keys(904) == HubBusKey(bytes(32), bytes(32), 0)


def test_deposit_locks_credits_and_appends_one_leaf(hub: Settlement) -> None:
    l1 = hub.l1
    sent, receipt = hub.deposit(USER, B, RECIPIENT, b"call", value=2 * E18)
    print(f"\ngas deposit (value): {receipt['gasUsed']}")
    assert (sent.source_chain_id, sent.dest_chain_id, sent.nonce, sent.sender) == (l1, B, 0, USER.address)
    assert (sent.asset_id, sent.amount, sent.asset_data) == (l1_eth(hub), 2 * E18, ether_data(l1))
    [event] = events(hub.hub, "DepositQueued", receipt)
    assert event["leaf"] == sent.leaf()
    assert bytes(event["aggregatedRoot"]) == hub.tree.root
    [appended] = events(hub.hub, "AggregatedLeafAppended", receipt)
    assert bytes(appended["leaf"]) == aggregated_leaf(l1, 0, 0, sent.leaf())
    assert hub.hub.functions.locked(l1_eth(hub)).call() == 2 * E18
    assert hub.balance(B, l1_eth(hub)) == 2 * E18
    assert hub.chain.w3.eth.get_balance(hub.hub.address) == 2 * E18

    plain, _ = hub.deposit(USER, C, RECIPIENT, b"just a call")
    assert (plain.nonce, plain.asset_id, plain.amount, plain.asset_data) == (1, bytes(32), 0, b"")
    assert hub.hub.functions.depositCount().call() == 2
    assert hub.hub.functions.aggregatedSize().call() == 2
    with pytest.raises(Reverted, match=r"UnknownDestination\(destChainId=999\)"):
        hub.chain.send(hub.hub.functions.deposit(999, RECIPIENT, b""), value=1)
    with pytest.raises(Reverted, match=r"UnknownDestination\(destChainId=901\)"):
        hub.chain.send(hub.hub.functions.deposit(l1, RECIPIENT, b""), value=1)
    with pytest.raises(Reverted, match=r"ZeroTarget\(\)"):
        hub.chain.send(hub.hub.functions.deposit(B, "0x" + "00" * 20, b""), value=1)


def _finalize(hub: Settlement, m: Message, proof: MessageProof) -> TxReceipt:
    return hub.chain.with_signer(USER).send(
        hub.hub.functions.finalizeWithdrawal(m.as_tuple(), proof.as_tuple())
    )


def test_a_withdrawal_to_l1_is_finalized_once(hub: Settlement) -> None:
    l1, eth = hub.l1, l1_eth(hub)
    hub.deposit(USER, B, RECIPIENT, value=3 * E18)
    withdrawal = message(B, l1, 0, RECIPIENT, asset=eth, amount=E18, assetdata=ether_data(l1))
    batch = [withdrawal, message(B, C, 1, RECIPIENT, data=b"other")]
    hub.commit(B, batch, OPERATOR_B)
    assert (hub.balance(B, eth), hub.balance(l1, eth)) == (2 * E18, 0)  # L1 is the origin: not credited
    proof = hub.proof(withdrawal)

    tampered = [
        (dataclasses.replace(withdrawal, amount=2 * E18), proof, r"BadPath\(\)"),
        (withdrawal, dataclasses.replace(proof, index=1), r"BadPath\(\)"),
        (withdrawal, dataclasses.replace(proof, batch_siblings=proof.batch_siblings[:2]), r"BadPath\(\)"),
        (
            withdrawal,
            dataclasses.replace(proof, batch_number=1),
            r"UnknownBatch\(chainId=902, batchNumber=1\)",
        ),
        (batch[1], hub.proof(batch[1]), r"WrongDestination\(destChainId=903\)"),
    ]
    for m, p, error in tampered:
        with pytest.raises(Reverted, match=error):
            _finalize(hub, m, p)

    before = hub.chain.w3.eth.get_balance(RECIPIENT)
    receipt = _finalize(hub, withdrawal, proof)
    print(f"\ngas finalizeWithdrawal: {receipt['gasUsed']}")
    assert hub.chain.w3.eth.get_balance(RECIPIENT) == before + E18
    assert hub.hub.functions.locked(eth).call() == 2 * E18
    [event] = events(hub.hub, "WithdrawalFinalized", receipt)
    assert event == {
        "id": message_id(B, 0),
        "sourceChainId": B,
        "nonce": 0,
        "target": RECIPIENT,
        "amount": E18,
    }
    assert hub.hub.functions.withdrawn(message_id(B, 0)).call()
    with pytest.raises(Reverted, match=rf"AlreadyWithdrawn\(id=0x{message_id(B, 0).hex()}\)"):
        _finalize(hub, withdrawal, proof)


def test_only_l1_ether_is_withdrawable_and_a_failed_call_is_retryable(hub: Settlement) -> None:
    l1 = hub.l1
    token = hub.chain.deploy("DevToken", "L1 token", "L1T", 18, 0)
    call = token.functions.transfer(RECIPIENT, 5)._encode_transaction_data()
    batch = [
        message(B, l1, 0, RECIPIENT, asset=B_ETH, amount=4, assetdata=ether_data(B)),
        message(B, l1, 1, token.address, data=bytes.fromhex(call[2:])),
    ]
    hub.commit(B, batch, OPERATOR_B)
    assert hub.balance(l1, B_ETH) == 4  # B's own asset sent to L1: counted there, never released
    with pytest.raises(Reverted, match=rf"NotWithdrawable\(assetId=0x{B_ETH.hex()}\)"):
        _finalize(hub, batch[0], hub.proof(batch[0]))
    # The Hub holds no tokens yet: the call fails and nothing is finalized.
    with pytest.raises(Reverted, match=r"WithdrawalCallFailed\(id=0x" + message_id(B, 1).hex()):
        _finalize(hub, batch[1], hub.proof(batch[1]))
    assert not hub.hub.functions.withdrawn(message_id(B, 1)).call()
    hub.chain.send(token.functions.mint(hub.hub.address, 5))
    _finalize(hub, batch[1], hub.proof(batch[1]))
    assert token.functions.balanceOf(RECIPIENT).call() == 5


def test_message_id_and_aggregated_leaf_match_solidity(hub: Settlement) -> None:
    """Python's formulas are the contracts': the id against its ABI encoding by hand (the Inbox tests
    check it against MessageExecuted), the aggregated leaf against the one a commit appends."""
    assert message_id(2**64 - 1, 2**64 - 1) == Web3.keccak(
        bytes.fromhex("00" * 24 + "ff" * 8 + "00" * 24 + "ff" * 8)
    )
    m = message(B, C, 0, RECIPIENT)
    receipt = hub.commit(B, [m], OPERATOR_B)
    [appended] = events(hub.hub, "AggregatedLeafAppended", receipt)
    assert bytes(appended["leaf"]) == aggregated_leaf(B, 0, DEPTH, merkle.batch_root([m.leaf()], CAPACITY))
