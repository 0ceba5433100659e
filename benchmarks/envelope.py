"""What sealing costs: the time to make and open one "messages" envelope, sealed (bus protocol v2:
NaCl sealed box to the recipient's key, then the operator's signature over header and ciphertext)
beside signed only (what version 1 did), and the bytes on the wire.

Bodies have the shape the pusher sends: a batch's 22 public inputs and Groth16 proof, and 1, 16 or
64 messages with their batch paths (capacity 64) and 100 bytes of calldata each. Each figure is the
median of `--rounds` runs, in microseconds per envelope, on one core.

    python -m benchmarks.envelope [--rounds N] [--out FILE]
"""

from __future__ import annotations

import secrets
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_hash.auto import keccak

from benchmarks import arguments, report
from bridge_contracts.anvil import dev_account
from hub.envelope import Envelope, Keyring, PeerKey, devnet_bus_key, open_envelope, public_key_of

SIZES = (1, 16, 64)
DEPTH = 6  # a capacity-64 batch's path
OPERATOR = dev_account(1)
KEY = devnet_bus_key(2)
PEERS = {"bank-a": PeerKey(901, OPERATOR.address)}
KEYRING = Keyring({public_key_of(KEY): KEY}, {})


def _field() -> str:
    return str(int.from_bytes(secrets.token_bytes(31)))


def body(messages: int) -> dict[str, Any]:
    point = {"pi_a": [_field(), _field(), "1"], "pi_c": [_field(), _field(), "1"]}
    proof = point | {"pi_b": [[_field(), _field()], [_field(), _field()], ["1", "0"]], "protocol": "groth16"}
    batch = {
        "chain_id": 901,
        "batch_number": 7,
        "capacity": 64,
        "public_inputs": [_field() for _ in range(22)],
        "proof": proof,
    }
    message = {
        "source_chain_id": 901,
        "dest_chain_id": 902,
        "sender": "0x" + secrets.token_hex(20),
        "target": "0x" + secrets.token_hex(20),
        "asset_id": "0x" + secrets.token_hex(32),
        "amount": "1000000000000000000",
        "data": "0x" + secrets.token_hex(100),
        "asset_data": "0x" + secrets.token_hex(96),
    }
    items = [
        {"message": message | {"nonce": i}, "index": i, "siblings": [_field() for _ in range(DEPTH)]}
        for i in range(messages)
    ]
    return {"batch": batch, "messages": items}


def _signed_only(envelope: Envelope) -> bytes:
    """Version 1's wire form: the body in the clear, signed."""
    fields = {
        "version": 1,
        "kind": envelope.kind,
        "sender": envelope.sender,
        "chain_id": envelope.chain_id,
        "id": envelope.id,
        "sent_at": envelope.sent_at,
        "body": envelope.body,
    }
    digest = keccak(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))
    signature = OPERATOR.sign_message(encode_defunct(primitive=digest)).signature
    return orjson.dumps(fields | {"signature": "0x" + bytes(signature).hex()}, option=orjson.OPT_SORT_KEYS)


def _open_signed_only(raw: bytes) -> None:
    fields = orjson.loads(raw)
    signature = fields.pop("signature")
    digest = keccak(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))
    assert Account.recover_message(encode_defunct(primitive=digest), signature=signature) == OPERATOR.address


def _median_us(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e6, 1)


def measure(rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for n in SIZES:
        envelope = Envelope("messages", "bank-a", "bank-b", 901, body(n))
        sealed = envelope.seal(public_key_of(KEY), OPERATOR)
        signed = _signed_only(envelope)
        results[str(n)] = {
            "body_bytes": len(orjson.dumps(envelope.body)),
            "signed_bytes": len(signed),
            "sealed_bytes": len(sealed),
            "sign_us": _median_us(partial(_signed_only, envelope), rounds),
            "seal_and_sign_us": _median_us(partial(envelope.seal, public_key_of(KEY), OPERATOR), rounds),
            "verify_us": _median_us(partial(_open_signed_only, signed), rounds),
            "verify_and_open_us": _median_us(
                partial(open_envelope, sealed, me="bank-b", peers=PEERS, keyring=KEYRING), rounds
            ),
        }
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'messages':>8} {'body B':>8} {'signed B':>9} {'sealed B':>9} {'sign µs':>8} "
        f"{'seal+sign µs':>13} {'verify µs':>10} {'verify+open µs':>15}"
    ]
    for n, r in results.items():
        lines.append(
            f"{n:>8} {r['body_bytes']:>8,} {r['signed_bytes']:>9,} {r['sealed_bytes']:>9,} "
            f"{r['sign_us']:>8,.0f} {r['seal_and_sign_us']:>13,.0f} {r['verify_us']:>10,.0f} "
            f"{r['verify_and_open_us']:>15,.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = arguments("envelope", __doc__ or "")
    parser.add_argument("--rounds", type=int, default=200, help="runs per figure (default 200)")
    args = parser.parse_args(argv)
    results = measure(args.rounds)
    report(table(results), {"microseconds_per_envelope": results, "rounds": args.rounds}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
