"""Envelopes: sealed to the recipient's bus key, signed over header and ciphertext, and every way of
tampering with one refused with its reason."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from nacl.public import PrivateKey

from bridge_contracts.anvil import dev_account
from hub.envelope import (
    Envelope,
    EnvelopeRefused,
    Keyring,
    PeerKey,
    RootAnnouncement,
    devnet_bus_key,
    inbox_filter,
    institution_topic,
    open_envelope,
    public_key_of,
    read_root_announcement,
    seal,
    sealed_size,
    sender_of,
    unseal,
)

OPERATOR_A, OPERATOR_B = dev_account(1), dev_account(2)
PEERS = {"bank-a": PeerKey(901, OPERATOR_A.address), "bank-c": PeerKey(903, dev_account(3).address)}
KEY_B = devnet_bus_key(2)
PUBLIC_B = public_key_of(KEY_B)
KEYRING_B = Keyring({PUBLIC_B: KEY_B}, {})
TARGET = "0x00000000000000000000000000000000DeaDBeef"
BODY = {"messages": [{"target": TARGET, "amount": "123456789", "data": "0xfeedface"}]}


def envelope(**fields: Any) -> Envelope:
    defaults: dict[str, Any] = {
        "kind": "messages",
        "sender": "bank-a",
        "recipient": "bank-b",
        "chain_id": 901,
        "body": {},
    }
    return Envelope(**(defaults | fields))


def open_b(raw: bytes, keyring: Keyring = KEYRING_B) -> Envelope:
    return open_envelope(raw, me="bank-b", peers=PEERS, keyring=keyring)


def resign(fields: dict[str, Any], account: LocalAccount = OPERATOR_A) -> bytes:
    """The envelope `fields` signed anew, as a sender that holds the key would."""
    unsigned = {name: value for name, value in fields.items() if name != "signature"}
    digest = keccak(orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS))
    signature = "0x" + bytes(account.sign_message(encode_defunct(primitive=digest)).signature).hex()
    return orjson.dumps({**unsigned, "signature": signature}, option=orjson.OPT_SORT_KEYS)


def refused(raw: bytes, keyring: Keyring = KEYRING_B) -> str:
    with pytest.raises(EnvelopeRefused) as caught:
        open_b(raw, keyring)
    return caught.value.reason


def test_an_envelope_opens_for_its_recipient_only_and_shows_nothing_in_the_clear() -> None:
    sent = envelope(body=BODY)
    raw = sent.seal(PUBLIC_B, OPERATOR_A)
    assert open_b(raw) == sent
    for secret in (TARGET, TARGET.lower()[2:], "123456789", "feedface", 'messages":'):
        assert secret.encode() not in raw
    assert len(raw) <= sealed_size(len(orjson.dumps(sent.body)))
    other = devnet_bus_key(3)
    assert "not a key of this institution" in refused(raw, Keyring({public_key_of(other): other}, {}))


def test_tampered_ciphertext_is_refused() -> None:
    fields = orjson.loads(envelope(body=BODY).seal(PUBLIC_B, OPERATOR_A))
    box = bytearray(base64.b64decode(fields["body"]))
    box[60] ^= 1
    tampered = {**fields, "body": base64.b64encode(bytes(box)).decode()}
    # By anyone on the way: the signature covers the ciphertext.
    assert "not by bank-a's operator" in refused(orjson.dumps(tampered))
    # By the sender itself, signed anew: the box does not open.
    assert refused(resign(tampered)) == "sealed body refused: it does not open with the key it names"


def test_a_body_sealed_to_another_key_under_this_key_is_refused() -> None:
    fields = orjson.loads(envelope(body=BODY).seal(public_key_of(devnet_bus_key(7)), OPERATOR_A))
    assert "not a key of this institution" in refused(orjson.dumps(fields))
    relabelled = resign({**fields, "key": "0x" + PUBLIC_B.hex()})
    assert refused(relabelled) == "sealed body refused: it does not open with the key it names"


def test_a_header_moved_onto_another_body_is_refused() -> None:
    first = orjson.loads(envelope(body=BODY).seal(PUBLIC_B, OPERATOR_A))
    second = orjson.loads(envelope(body={"results": []}, kind="receipts").seal(PUBLIC_B, OPERATOR_A))
    swapped = {**first, "body": second["body"]}
    assert "not by bank-a's operator" in refused(orjson.dumps(swapped))
    assert "belongs to another envelope" in refused(resign(swapped))
    # A peer re-sends another's sealed body under its own name: the sealed header names bank-a.
    stolen = {**first, "sender": "bank-c", "chain_id": 903}
    assert "belongs to another envelope" in refused(resign(stolen, dev_account(3)))


def test_header_checks() -> None:
    raw = envelope(body=BODY).seal(PUBLIC_B, OPERATOR_A)
    fields = orjson.loads(raw)
    assert (
        refused(envelope(recipient="bank-c").seal(PUBLIC_B, OPERATOR_A))
        == "addressed to 'bank-c', not to 'bank-b'"
    )
    assert refused(envelope(sender="bank-z").seal(PUBLIC_B, OPERATOR_A)).startswith("unknown sender 'bank-z'")
    assert refused(envelope(chain_id=902).seal(PUBLIC_B, OPERATOR_A)).startswith(
        "chain id 902 is not bank-a's"
    )
    assert refused(envelope(kind="gossip").seal(PUBLIC_B, OPERATOR_A)) == "unknown envelope kind 'gossip'"
    assert refused(envelope().seal(PUBLIC_B, OPERATOR_B)).startswith(f"signed by {OPERATOR_B.address}")
    assert refused(orjson.dumps({**fields, "version": 1})).startswith("version 1 is not spoken here")
    assert refused(orjson.dumps({**fields, "extra": 1})) == "unknown fields: extra"
    assert refused(orjson.dumps({k: v for k, v in fields.items() if k != "key"})) == "missing fields: key"
    assert refused(orjson.dumps({**fields, "body": 5})).startswith("field body has the wrong type")
    assert refused(orjson.dumps({**fields, "key": "0x12"})).startswith("key is not 32 bytes")
    assert refused(orjson.dumps({**fields, "id": "x" * 1_000_000})) == "id is not 32 lower-case hex digits"
    assert refused(resign({**fields, "body": "not base64!"})).startswith("sealed body refused")
    assert refused(b"[1]") == "the envelope is not a JSON object but list"
    assert refused(b"\xff").startswith("the envelope is not JSON")


def test_a_retired_key_is_refused_with_why() -> None:
    raw = envelope(body=BODY).seal(PUBLIC_B, OPERATOR_A)
    keyring = Keyring({}, {PUBLIC_B: "replaced on the L1 Hub at 5 and past its grace period (60 s)"})
    assert refused(raw, keyring).endswith("replaced on the L1 Hub at 5 and past its grace period (60 s)")


def test_seal_and_unseal_for_forced_bodies() -> None:
    box = seal(b"a forced message body", PUBLIC_B)
    assert unseal(box, KEY_B) == b"a forced message body"
    assert b"forced" not in box
    with pytest.raises(ValueError, match="32 bytes"):
        seal(b"x", bytes(32))
    assert public_key_of(PrivateKey(bytes(KEY_B))) == PUBLIC_B


def test_topics() -> None:
    topic = institution_topic("bank-b", "bank-a")
    assert topic == "xrelay/v2/institutions/bank-b/bank-a"
    assert inbox_filter("bank-b") == "xrelay/v2/institutions/bank-b/+"
    assert sender_of(topic, "bank-b") == "bank-a"
    assert sender_of(topic, "bank-a") is None
    assert sender_of("xrelay/v2/institutions/bank-b/Bad Name", "bank-b") is None
    with pytest.raises(ValueError, match="not an institution name"):
        institution_topic("bank-b", "#")


def test_root_announcements() -> None:
    announcement = RootAnnouncement(size=3, root=bytes(range(32)), l1_block=7)
    assert read_root_announcement(announcement.to_bytes()) == announcement
    with pytest.raises(EnvelopeRefused, match="a root announcement is"):
        read_root_announcement(envelope().seal(PUBLIC_B, OPERATOR_A))
