"""What the daemons say to each other over the bus: topics, sealed and signed envelopes, and root
announcements (docs/protocol.md, "The bus").

Topics: `xrelay/v2/institutions/<recipient>/<sender>` carries what `sender` sends `recipient`, so a
broker's ACL can let each institution read only its own topics and write only as itself to its
peers; `xrelay/v2/institutions/<name>/<name>` is the institution's own liveness probe, and
`xrelay/v2/hub/roots` carries the hub service's root announcements.

An envelope on the wire is one JSON object:

    {"version": 2, "kind": "messages", "sender": "bank-a", "recipient": "bank-b", "chain_id": 901,
     "id": "…", "sent_at": 1718000000.5, "key": "0x<recipient's X25519 public key>",
     "body": "<base64 NaCl sealed box>", "signature": "0x…"}

`body` is the canonical JSON of {"kind", "sender", "recipient", "id", "body": {...}} sealed
(libsodium's crypto_box_seal: X25519, XSalsa20-Poly1305) to the recipient's bus key as registered
on the L1 Hub (`Hub.busKeys`): only the recipient reads targets, amounts and calldata. The header
is repeated inside the sealed body and must match it, so a body cannot be moved under another
header. The signature is EIP-191 (personal_sign) by the sender chain's operator over
keccak256(canonical JSON of the envelope without "signature"): it covers the header and the
ciphertext, so nothing can be swapped. Canonical JSON is orjson with sorted keys.

Root announcements are the exception: public, unsigned hints that a new aggregated root exists
(`{"version": 2, "kind": "root", "size", "root", "l1_block"}`); a receiver checks the root on L1
before it relies on it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from web3 import Web3

VERSION = 2
ROOTS_TOPIC = "xrelay/v2/hub/roots"
_INSTITUTIONS = "xrelay/v2/institutions/"

KIND_MESSAGES = "messages"
"""Source daemon -> destination daemon: settled messages with their proofs."""
KIND_RECEIPTS = "receipts"
"""Destination daemon -> source daemon: what became of them."""
KIND_RESYNC = "resync"
"""A daemon that was deaf for a while -> its peers: push again now what still waits for a receipt."""
KIND_TERMS = "swap-terms"
"""Operator -> peer operator: swap terms proposed, accepted or refused (relayer/pipeline/swaps.py)."""
KINDS = (KIND_MESSAGES, KIND_RECEIPTS, KIND_RESYNC, KIND_TERMS)
KIND_ROOT = "root"
"""Hub service -> everyone, on ROOTS_TOPIC, unsigned and public."""

HUB_SENDER = "hub"
"""The bus name of the hub service."""

KEY_BYTES = 32
_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")  # an institution's name, as in its config
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_KEY = re.compile(r"0x[0-9a-f]{64}")
_ID = re.compile(r"[0-9a-f]{32}")  # new_envelope_id()
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "version": int,
    "kind": str,
    "sender": str,
    "recipient": str,
    "chain_id": int,
    "id": str,
    "sent_at": (int, float),
    "key": str,
    "body": str,
    "signature": str,
}


# --- topics -----------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an institution name: 1 to 63 lower-case letters, digits and '-', "
            "starting with a letter"
        )
    return name


def institution_topic(recipient: str, sender: str) -> str:
    """The topic that carries what `sender` sends `recipient`."""
    return f"{_INSTITUTIONS}{check_name(recipient)}/{check_name(sender)}"


def inbox_filter(name: str) -> str:
    """The subscription that receives everything addressed to institution `name`."""
    return f"{_INSTITUTIONS}{check_name(name)}/+"


def sender_of(topic: str, name: str) -> str | None:
    """The sender a topic of `name`'s inbox names, or None if it is not one of them."""
    prefix = f"{_INSTITUTIONS}{name}/"
    if not topic.startswith(prefix):
        return None
    sender = topic[len(prefix) :]
    return sender if _NAME.fullmatch(sender) else None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` (no wildcards) matches the MQTT `topic_filter`."""
    if topic.startswith("$") and not topic_filter.startswith("$"):
        return False  # MQTT 4.7.2: wildcards at the first level never match $ topics
    levels = topic.split("/")
    for index, wanted in enumerate(topic_filter.split("/")):
        if wanted == "#":
            return True
        if index >= len(levels) or (wanted != "+" and wanted != levels[index]):
            return False
    return len(levels) == len(topic_filter.split("/"))


# --- bus keys -----------------------------------------------------------------------------------


def public_key_of(secret: PrivateKey) -> bytes:
    return bytes(secret.public_key)


def devnet_bus_key(index: int) -> PrivateKey:
    """The devnet's bus key number `index`. DEVNET ONLY: derived from a public label, so anyone can
    compute it."""
    return PrivateKey(hashlib.sha256(f"xrelay devnet bus key {index}".encode()).digest())


def seal(plaintext: bytes, public_key: bytes) -> bytes:
    """`plaintext` sealed to an X25519 public key (libsodium's crypto_box_seal): only the holder of
    the matching secret key opens it, and nobody learns who sealed it. Also what a message forced
    through L1 carries as its encrypted body."""
    if len(public_key) != KEY_BYTES or not any(public_key):
        raise ValueError("a bus key is 32 bytes, not all zero")
    return bytes(SealedBox(PublicKey(public_key)).encrypt(plaintext))


def unseal(ciphertext: bytes, secret: PrivateKey) -> bytes:
    """The plaintext of a sealed box; raises CryptoError if it was not sealed to this key or was
    changed since."""
    return bytes(SealedBox(secret).decrypt(ciphertext))


def sealed_size(body_bytes: int) -> int:
    """An upper bound on the size of the envelope that carries a body of `body_bytes` bytes of JSON:
    the sealed box adds 48 bytes, base64 a third, and the header under 700 bytes."""
    return 4 * ((body_bytes + 200 + 48 + 2) // 3) + 700


class Keyring(NamedTuple):
    """The secret keys an institution opens envelopes with, by public key: the one the L1 Hub has
    now, and the one it replaced while that one's grace period lasts."""

    keys: Mapping[bytes, PrivateKey]
    retired: Mapping[bytes, str]
    """Public keys this institution holds but no longer opens with, and why (for the refusal)."""


# --- envelopes --------------------------------------------------------------------------------


class PeerKey(NamedTuple):
    """What a receiver knows of a peer: its chain id and that chain's operator on the L1 Hub."""

    chain_id: int
    operator: str


class EnvelopeRefused(ValueError):
    """An envelope that was not accepted. `reason` says why; `sender` and `chain_id` are what the
    envelope claimed, where it could be read (None otherwise)."""

    def __init__(self, reason: str, sender: str | None = None, chain_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sender = sender
        self.chain_id = chain_id


def new_envelope_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Envelope:
    """An envelope as its sender writes it and its recipient reads it, body in the clear."""

    kind: str
    sender: str
    recipient: str
    chain_id: int
    body: dict[str, Any]
    id: str = field(default_factory=new_envelope_id)
    sent_at: float = field(default_factory=time.time)

    def seal(self, recipient_key: bytes, account: LocalAccount) -> bytes:
        """The wire form: the body sealed to `recipient_key`, signed by `account` (the sender chain's
        operator)."""
        inner = _canonical(
            {"kind": self.kind, "sender": self.sender, "recipient": self.recipient, "id": self.id}
            | {"body": self.body}
        )
        header = {
            "version": VERSION,
            "kind": self.kind,
            "sender": self.sender,
            "recipient": self.recipient,
            "chain_id": self.chain_id,
            "id": self.id,
            "sent_at": self.sent_at,
            "key": "0x" + recipient_key.hex(),
            "body": base64.b64encode(seal(inner, recipient_key)).decode(),
        }
        signed = account.sign_message(encode_defunct(primitive=keccak(_canonical(header))))
        return _canonical({**header, "signature": "0x" + bytes(signed.signature).hex()})


def _canonical(fields: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise ValueError(
            f"envelope is not JSON: {exc} (write integers beyond 64 bits as decimal strings)"
        ) from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeRefused(f"{what} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnvelopeRefused(f"{what} is not a JSON object but {type(data).__name__}")
    return data


def _header(raw: bytes) -> dict[str, Any]:
    """An envelope's header checked: JSON object, version, every field with its type."""
    data = _json_object(raw, "the envelope")
    sender = data.get("sender") if isinstance(data.get("sender"), str) else None
    chain_id = data.get("chain_id") if _is_int(data.get("chain_id")) else None
    if "version" not in data:
        raise EnvelopeRefused("missing field: version", sender, chain_id)
    if data["version"] != VERSION or not _is_int(data["version"]):
        raise EnvelopeRefused(
            f"version {data['version']!r} is not spoken here (this node speaks version {VERSION})",
            sender,
            chain_id,
        )
    missing = [name for name in _FIELDS if name not in data]
    if missing:
        raise EnvelopeRefused(f"missing fields: {', '.join(missing)}", sender, chain_id)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise EnvelopeRefused(f"unknown fields: {', '.join(unknown)}", sender, chain_id)
    for name, kind in _FIELDS.items():
        value = data[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise EnvelopeRefused(
                f"field {name} has the wrong type ({type(value).__name__}: {str(value)[:40]})",
                sender,
                chain_id,
            )
    if not _SIGNATURE.fullmatch(data["signature"]):
        raise EnvelopeRefused("signature is not 65 bytes of 0x-hex", sender, chain_id)
    if not _KEY.fullmatch(data["key"]):
        raise EnvelopeRefused("key is not 32 bytes of lower-case 0x-hex", sender, chain_id)
    if not _ID.fullmatch(data["id"]):
        raise EnvelopeRefused("id is not 32 lower-case hex digits", sender, chain_id)
    if not _NAME.fullmatch(data["sender"]) or not _NAME.fullmatch(data["recipient"]):
        raise EnvelopeRefused("sender and recipient must be institution names", None, chain_id)
    return data


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def open_envelope(raw: bytes, *, me: str, peers: Mapping[str, PeerKey], keyring: Keyring) -> Envelope:
    """The envelope in `raw`, if it is addressed to `me`, signed by its sender's operator and sealed
    to one of `keyring`'s keys, its sealed header matching the outer one.

    `peers` maps each known institution's name to its chain id and that chain's operator (as the L1
    Hub registers it). Raises EnvelopeRefused with the reason otherwise.
    """
    data = _header(raw)
    sender, chain_id, kind = data["sender"], data["chain_id"], data["kind"]
    if data["recipient"] != me:
        raise EnvelopeRefused(f"addressed to {data['recipient']!r}, not to {me!r}", sender, chain_id)
    peer = peers.get(sender)
    if peer is None:
        raise EnvelopeRefused(f"unknown sender {sender!r}: not a peer of this institution", sender, chain_id)
    if chain_id != peer.chain_id:
        raise EnvelopeRefused(
            f"chain id {chain_id} is not {sender}'s: its chain is {peer.chain_id}", sender, chain_id
        )
    unsigned = {name: value for name, value in data.items() if name != "signature"}
    try:
        signer = Account.recover_message(
            encode_defunct(primitive=keccak(_canonical(unsigned))), signature=data["signature"]
        )
    except Exception:  # a malformed signature (bad v, s out of range) recovers nothing
        raise EnvelopeRefused("the signature recovers no address", sender, chain_id) from None
    if signer.lower() != peer.operator.lower():
        raise EnvelopeRefused(
            f"signed by {signer}, not by {sender}'s operator {Web3.to_checksum_address(peer.operator)}",
            sender,
            chain_id,
        )
    if kind not in KINDS:
        raise EnvelopeRefused(f"unknown envelope kind {kind!r}", sender, chain_id)
    key = bytes.fromhex(data["key"][2:])
    secret = keyring.keys.get(key)
    if secret is None:
        why = keyring.retired.get(key, "not a key of this institution")
        raise EnvelopeRefused(f"sealed to key {data['key'][:18]}…, {why}", sender, chain_id)
    try:
        inner = _json_object(unseal(base64.b64decode(data["body"], validate=True), secret), "the sealed body")
    except (CryptoError, binascii.Error, ValueError) as exc:
        reason = exc.reason if isinstance(exc, EnvelopeRefused) else "it does not open with the key it names"
        raise EnvelopeRefused(f"sealed body refused: {reason}", sender, chain_id) from None
    header = {"kind": kind, "sender": sender, "recipient": me, "id": data["id"]}
    if {name: inner.get(name) for name in header} != header or set(inner) != {*header, "body"}:
        raise EnvelopeRefused(
            "the sealed body belongs to another envelope (its header differs)", sender, chain_id
        )
    if not isinstance(inner["body"], dict):
        raise EnvelopeRefused("the sealed body's body is not a JSON object", sender, chain_id)
    return Envelope(
        kind=kind,
        sender=sender,
        recipient=me,
        chain_id=chain_id,
        body=inner["body"],
        id=data["id"],
        sent_at=data["sent_at"],
    )


# --- root announcements -----------------------------------------------------------------------


@dataclass(frozen=True)
class RootAnnouncement:
    """The hub service saw the L1 Hub's aggregated tree reach `size` leaves with `root`, in `l1_block`.
    A hint only: check the root on L1 (`Hub.isAggregatedRoot`) before relying on it."""

    size: int
    root: bytes
    l1_block: int

    def to_bytes(self) -> bytes:
        """The wire form, for ROOTS_TOPIC."""
        return _canonical(
            {
                "version": VERSION,
                "kind": KIND_ROOT,
                "size": self.size,
                "root": "0x" + self.root.hex(),
                "l1_block": self.l1_block,
            }
        )


def read_root_announcement(raw: bytes) -> RootAnnouncement:
    """The announcement in `raw`. Raises EnvelopeRefused."""
    data = _json_object(raw, "the announcement")
    size, root, l1_block = data.get("size"), data.get("root"), data.get("l1_block")
    if not (
        data.get("version") == VERSION
        and data.get("kind") == KIND_ROOT
        and _is_int(size)
        and _is_int(l1_block)
        and isinstance(root, str)
        and re.fullmatch(r"0x[0-9a-f]{64}", root)
    ):
        raise EnvelopeRefused(
            f'a root announcement is {{"version": {VERSION}, "kind": "root", "size": int, '
            '"root": "0x" + 64 hex, "l1_block": int}'
        )
    assert isinstance(size, int) and isinstance(l1_block, int)
    return RootAnnouncement(size=size, root=bytes.fromhex(root[2:]), l1_block=l1_block)
