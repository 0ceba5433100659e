"""The bodies daemons exchange on the bus: exact round trips and a clear error for every malformed
field (hub/delivery.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from web3 import Web3

from bridge_contracts.messages import Message
from hub.delivery import (
    BatchEvidence,
    DeliveredMessage,
    Delivery,
    DeliveryError,
    Receipt,
    delivery_from_json,
    delivery_to_json,
    message_key,
    receipts_from_json,
    receipts_to_json,
)
from proofs.groth16.proof import Proof
from proofs.groth16.setup import G1_GENERATOR, G2_GENERATOR

MESSAGE = Message(
    source_chain_id=901,
    dest_chain_id=902,
    nonce=7,
    sender=Web3.to_checksum_address("0x00000000000000000000000000000000000000a1"),
    target=Web3.to_checksum_address("0x00000000000000000000000000000000000000b2"),
    asset_id=bytes(range(32)),
    amount=2**128 - 1,
    data=b"\x01\x02",
    asset_data=b"\xff" * 40,
)
PROOF = Proof(G1_GENERATOR, G2_GENERATOR, G1_GENERATOR)  # points on their curves, as the decoder checks
DELIVERY = Delivery(
    BatchEvidence(901, 3, 16, tuple(range(22)), PROOF),
    (DeliveredMessage(MESSAGE, 5, (11, 12, 13, 2**253)),),
)


def _wire(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def test_a_delivery_round_trips_through_json_exactly() -> None:
    decoded = delivery_from_json(_wire(delivery_to_json(DELIVERY)))
    assert decoded == DELIVERY
    assert decoded.batch.batch_root == 5


def test_receipts_round_trip() -> None:
    receipts = [
        Receipt("901:7", "executed", "0xab", None),
        Receipt("901:8", "failed", "0xcd", "TargetFailing()"),
    ]
    assert receipts_from_json(_wire(receipts_to_json(receipts))) == receipts
    assert message_key(901, 7) == "901:7"


def _broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body: dict[str, Any] = _wire(delivery_to_json(DELIVERY))
    node = body
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (("batch",), ..., "batch: must be an object"),
        (("batch", "chain_id"), -1, r"batch.chain_id: must be an integer in \[0, 2\^64\)"),
        (("batch", "public_inputs"), "1,2", "batch.public_inputs: must be a list"),
        (("batch", "public_inputs", 3), "0x10", r"batch.public_inputs\[3\]: must be a decimal string"),
        (
            ("batch", "public_inputs", 21),
            ...,
            "batch.public_inputs: 21 public inputs given; a batch proof with 4",
        ),
        (("batch", "public_inputs", 11), str(2**128), r"batch.public_inputs: value slot 1: slotAssetHi"),
        (("batch", "proof", "pi_a"), ..., "batch.proof"),
        (("messages",), [], "messages: must be a non-empty list"),
        (("messages", 0, "siblings"), None, r"messages\[0\].siblings: must be a list"),
        (("messages", 0, "index"), True, r"messages\[0\].index: must be an integer"),
        (
            ("messages", 0, "message", "amount"),
            str(2**128),
            r"messages\[0\].message.amount: must be an integer in \[0, 2\^128\)",
        ),
        (("messages", 0, "message", "sender"), "0x1234", r"messages\[0\].message.sender: must be an address"),
        (("messages", 0, "message", "data"), "0102", r"messages\[0\].message.data: must be 0x-prefixed hex"),
        (("messages", 0, "message", "asset_id"), "0x01", r"messages\[0\].message.asset_id: must be 32 bytes"),
    ],
)
def test_every_malformed_field_is_named(path: tuple[Any, ...], value: Any, error: str) -> None:
    with pytest.raises(DeliveryError, match=error):
        delivery_from_json(_broken(path, value))


def test_malformed_receipts_are_refused() -> None:
    with pytest.raises(DeliveryError, match="results: must be a list"):
        receipts_from_json({"results": "none"})
    with pytest.raises(DeliveryError, match=r"results\[0\].status: must be one of executed, failed, refused"):
        receipts_from_json({"results": [{"id": "1:2", "status": "lost", "tx": None, "reason": None}]})
    with pytest.raises(DeliveryError, match=r"results\[0\]: id must be a string"):
        receipts_from_json({"results": [{"id": 5, "status": "executed", "tx": None, "reason": None}]})
