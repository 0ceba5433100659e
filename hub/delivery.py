"""The bodies of the daemons' bus envelopes (docs/protocol.md, "The bus").

"messages" (source daemon -> destination daemon): one settled batch's messages for that destination,
each with its path in the batch tree, and the batch's public inputs and proof, so that the
destination can check everything off-chain before it spends gas:

    {"batch": {"chain_id", "batch_number", "capacity",
               "public_inputs": [22 decimal strings, as PublicInputs.values() orders them],
               "proof": snarkjs proof JSON},
     "messages": [{"message": {...}, "index": int, "siblings": [decimal strings]}]}

"receipts" (destination -> source): what became of messages it received:

    {"results": [{"id": "901:3", "status": "executed" | "failed" | "refused" | "bounced",
                  "tx": "0x.." | null, "reason": str | null}]}

Decoding is strict: anything malformed raises `DeliveryError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from web3 import Web3

from bridge_contracts.messages import HUB_SLOTS, Message
from proofs.circuits.batch import PublicInputs
from proofs.formats import snarkjs_json
from proofs.groth16.proof import Proof

RECEIPT_STATUSES = ("executed", "failed", "refused", "bounced")


class DeliveryError(ValueError):
    """A delivery or receipt body is malformed; the message names the field."""


def message_key(source_chain_id: int, nonce: int) -> str:
    """The text id of a message everywhere off-chain: "<source chain id>:<nonce>"."""
    return f"{source_chain_id}:{nonce}"


@dataclass(frozen=True)
class BatchEvidence:
    """A settled batch: what its proof states and the proof."""

    chain_id: int
    batch_number: int
    capacity: int
    public_inputs: tuple[int, ...]  # as the proof states them, in the circuit's order
    proof: Proof

    @cached_property
    def public(self) -> PublicInputs:
        """The public inputs by name; raises ValueError if they are not those of a proof the Hub takes."""
        return PublicInputs.from_values(self.public_inputs, HUB_SLOTS)

    @property
    def batch_root(self) -> int:
        return self.public.batch_root


@dataclass(frozen=True)
class DeliveredMessage:
    message: Message
    index: int  # its position in the batch
    siblings: tuple[int, ...]  # its batch-tree path, bottom-up


@dataclass(frozen=True)
class Delivery:
    batch: BatchEvidence
    messages: tuple[DeliveredMessage, ...]


@dataclass(frozen=True)
class Receipt:
    id: str
    status: str
    tx: str | None = None
    reason: str | None = None


def message_to_json(m: Message) -> dict[str, Any]:
    return {
        "source_chain_id": m.source_chain_id,
        "dest_chain_id": m.dest_chain_id,
        "nonce": m.nonce,
        "sender": m.sender,
        "target": m.target,
        "asset_id": "0x" + m.asset_id.hex(),
        "amount": str(m.amount),
        "data": "0x" + m.data.hex(),
        "asset_data": "0x" + m.asset_data.hex(),
    }


def message_from_json(value: Any, where: str = "message") -> Message:
    fields = _object(value, where)
    asset_id = _hex(fields, "asset_id", where)
    if len(asset_id) != 32:
        raise DeliveryError(f"{where}.asset_id: must be 32 bytes, not {len(asset_id)}")
    return Message(
        source_chain_id=_int(fields, "source_chain_id", where, bits=64),
        dest_chain_id=_int(fields, "dest_chain_id", where, bits=64),
        nonce=_int(fields, "nonce", where, bits=64),
        sender=_address(fields, "sender", where),
        target=_address(fields, "target", where),
        asset_id=asset_id,
        amount=_int(fields, "amount", where, bits=128),
        data=_hex(fields, "data", where),
        asset_data=_hex(fields, "asset_data", where),
    )


def delivery_to_json(delivery: Delivery) -> dict[str, Any]:
    batch = delivery.batch
    return {
        "batch": {
            "chain_id": batch.chain_id,
            "batch_number": batch.batch_number,
            "capacity": batch.capacity,
            "public_inputs": [str(x) for x in batch.public_inputs],
            "proof": snarkjs_json.proof_to_json(batch.proof),
        },
        "messages": [
            {
                "message": message_to_json(d.message),
                "index": d.index,
                "siblings": [str(s) for s in d.siblings],
            }
            for d in delivery.messages
        ],
    }


def delivery_from_json(value: Any) -> Delivery:
    body = _object(value, "body")
    raw_batch = _object(body.get("batch"), "batch")
    inputs = raw_batch.get("public_inputs")
    if not isinstance(inputs, list):
        raise DeliveryError("batch.public_inputs: must be a list")
    try:
        proof = snarkjs_json.proof_from_json(raw_batch.get("proof"), "batch.proof")
    except snarkjs_json.SnarkjsJsonError as exc:
        raise DeliveryError(str(exc)) from None
    batch = BatchEvidence(
        chain_id=_int(raw_batch, "chain_id", "batch", bits=64),
        batch_number=_int(raw_batch, "batch_number", "batch", bits=64),
        capacity=_int(raw_batch, "capacity", "batch", bits=11),
        public_inputs=tuple(_decimal(x, f"batch.public_inputs[{i}]") for i, x in enumerate(inputs)),
        proof=proof,
    )
    try:
        _ = batch.public  # parsed now, so that values in another layout are refused as malformed
    except ValueError as exc:
        raise DeliveryError(f"batch.public_inputs: {exc}") from None
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise DeliveryError("messages: must be a non-empty list")
    messages = []
    for i, item in enumerate(raw_messages):
        where = f"messages[{i}]"
        entry = _object(item, where)
        siblings = entry.get("siblings")
        if not isinstance(siblings, list):
            raise DeliveryError(f"{where}.siblings: must be a list")
        messages.append(
            DeliveredMessage(
                message=message_from_json(entry.get("message"), f"{where}.message"),
                index=_int(entry, "index", where, bits=11),
                siblings=tuple(_decimal(s, f"{where}.siblings[{j}]") for j, s in enumerate(siblings)),
            )
        )
    return Delivery(batch, tuple(messages))


def receipts_to_json(receipts: Sequence[Receipt]) -> dict[str, Any]:
    return {"results": [{"id": r.id, "status": r.status, "tx": r.tx, "reason": r.reason} for r in receipts]}


def receipts_from_json(value: Any) -> list[Receipt]:
    results = _object(value, "body").get("results")
    if not isinstance(results, list):
        raise DeliveryError("results: must be a list")
    receipts = []
    for i, item in enumerate(results):
        entry = _object(item, f"results[{i}]")
        status = entry.get("status")
        if status not in RECEIPT_STATUSES:
            raise DeliveryError(f"results[{i}].status: must be one of {', '.join(RECEIPT_STATUSES)}")
        key, tx, reason = entry.get("id"), entry.get("tx"), entry.get("reason")
        if not isinstance(key, str) or not isinstance(tx, str | None) or not isinstance(reason, str | None):
            raise DeliveryError(f"results[{i}]: id must be a string, tx and reason strings or null")
        receipts.append(Receipt(key, status, tx, reason))
    return receipts


# --- field readers ------------------------------------------------------------------------------


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DeliveryError(f"{where}: must be an object")
    return value


def _int(fields: Mapping[str, Any], key: str, where: str, *, bits: int) -> int:
    value = fields.get(key)
    if isinstance(value, str):
        value = _decimal(value, f"{where}.{key}")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise DeliveryError(f"{where}.{key}: must be an integer in [0, 2^{bits})")
    return value


def _decimal(value: Any, where: str) -> int:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 78:
        raise DeliveryError(f"{where}: must be a decimal string")
    return int(value)


def _hex(fields: Mapping[str, Any], key: str, where: str) -> bytes:
    value = fields.get(key)
    try:
        if not isinstance(value, str) or not value.startswith("0x"):
            raise ValueError
        return bytes.fromhex(value[2:])
    except ValueError:
        raise DeliveryError(f"{where}.{key}: must be 0x-prefixed hex") from None


def _address(fields: Mapping[str, Any], key: str, where: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not Web3.is_address(value):
        raise DeliveryError(f"{where}.{key}: must be an address")
    return str(Web3.to_checksum_address(value))
