"""Atomic swaps as the `SwapDesk` contract defines them (docs/protocol.md, "Atomic swaps").

`Terms` mirrors `SwapDesk.Terms`; `Terms.terms_id` is the hash both operators sign and both desks
register it under. `swap_id` and `quote` are `SwapDesk.swapIdOf` and `SwapDesk.quote`; `SwapState` and
`SwapReason` are the desk's enums, by the same numbers. `terms_digest` is what each operator signs
when it agrees terms (EIP-191, `sign_digest`).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import Web3

PRICE_ONE = 10**18
"""Prices are Y base units per 1e18 X base units (`SwapDesk.PRICE_ONE`)."""
MAX_FEE_BPS = 10_000
TERMS_TYPEHASH = keccak(b"xrelay.SwapDesk.terms.v1")
_TERMS_TYPES = [
    "uint64",
    "address",
    "uint64",
    "address",
    "bytes32",
    "bytes32",
    "uint128",
    "uint128",
    "uint16",
    "uint128",
    "uint128",
    "uint64",
    "uint64",
]


class SwapState(enum.IntEnum):
    """`SwapDesk.State`."""

    NONE = 0
    INITIATED = 1  # A: phase 1 sent, waiting for B's result
    COMPLETED = 2  # B: swapped, Y sent; A: the user was paid Y
    REFUNDED = 3  # B: X sent back; A: the user got X back


class SwapReason(enum.IntEnum):
    """`SwapDesk.Reason`: why a swap was refunded."""

    NONE = 0
    SLIPPAGE = 1
    EXPIRED = 2
    INVENTORY_SHORT = 3
    PRICE_OUTSIDE_BAND = 4
    UNKNOWN_TERMS = 5
    SEND_FAILED = 6
    BOUNCED = 7

    @property
    def word(self) -> str:
        """The reason's name as the store, the CLI, the API and the metrics say it."""
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class Terms:
    """`SwapDesk.Terms`: what both operators agree and sign."""

    chain_a: int
    desk_a: str
    chain_b: int
    desk_b: str
    asset_x: bytes
    asset_y: bytes
    price_min: int
    price_max: int
    fee_bps: int
    min_amount_x: int
    max_amount_x: int
    last_start: int
    window: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "desk_a", Web3.to_checksum_address(self.desk_a))
        object.__setattr__(self, "desk_b", Web3.to_checksum_address(self.desk_b))
        for name in ("asset_x", "asset_y"):
            if len(getattr(self, name)) != 32:
                raise ValueError(f"{name} must be 32 bytes")

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    @property
    def terms_id(self) -> bytes:
        """keccak256(abi.encode(terms)): the id both desks register the terms under."""
        return keccak(encode(_TERMS_TYPES, list(self.as_tuple())))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("asset_x", "asset_y"):
            out[name] = "0x" + out[name].hex()
        for name in ("price_min", "price_max", "min_amount_x", "max_amount_x"):
            out[name] = str(out[name])  # above 2^53: JSON numbers are not exact there
        return out

    @classmethod
    def from_json(cls, data: Any) -> Terms:
        """Terms from their JSON form; ValueError says which field is wrong."""
        if not isinstance(data, dict):
            raise ValueError("terms must be an object")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        extra = sorted(set(data) - set(names))
        if missing or extra:
            raise ValueError(f"terms: missing {missing or 'nothing'}, unknown {extra or 'nothing'}")
        values: dict[str, Any] = {}
        for name in names:
            value = data[name]
            try:
                if name in ("desk_a", "desk_b"):
                    if not Web3.is_address(value):
                        raise ValueError("not an address")
                    values[name] = value
                elif name in ("asset_x", "asset_y"):
                    raw = bytes.fromhex(str(value).removeprefix("0x"))
                    if len(raw) != 32:
                        raise ValueError("not 32 bytes")
                    values[name] = raw
                else:
                    if isinstance(value, bool) or not isinstance(value, int | str):
                        raise ValueError("not an integer")
                    number = int(value)
                    if number < 0:
                        raise ValueError("negative")
                    values[name] = number
            except ValueError as exc:
                raise ValueError(f"terms.{name}: {exc}: {value!r}") from None
        terms = cls(**values)
        terms.check()
        return terms

    def check(self) -> None:
        """What `SwapDesk.registerTerms` refuses, said before any transaction (ValueError)."""
        bounds = {
            "chain_a": 64,
            "chain_b": 64,
            "price_min": 128,
            "price_max": 128,
            "fee_bps": 16,
            "min_amount_x": 128,
            "max_amount_x": 128,
            "last_start": 64,
            "window": 64,
        }
        for name, bits in bounds.items():
            if not 0 <= getattr(self, name) < 1 << bits:
                raise ValueError(f"terms.{name} must fit in {bits} bits")
        if self.chain_a == self.chain_b:
            raise ValueError("terms: chain_a and chain_b are the same chain")
        if self.price_min == 0 or self.price_min > self.price_max:
            raise ValueError(f"terms: the price band {self.price_min}..{self.price_max} is empty")
        if self.fee_bps >= MAX_FEE_BPS:
            raise ValueError(f"terms.fee_bps must be below {MAX_FEE_BPS}")
        if self.min_amount_x == 0 or self.min_amount_x > self.max_amount_x:
            raise ValueError(f"terms: the amount range {self.min_amount_x}..{self.max_amount_x} is empty")
        if self.window == 0:
            raise ValueError("terms.window must be above 0")


def terms_digest(terms_id: bytes) -> bytes:
    """What each operator signs to agree terms: keccak256(TERMS_TYPEHASH, termsId)."""
    return keccak(TERMS_TYPEHASH + terms_id)


def swap_id(chain_a: int, desk_a: str, nonce: int) -> bytes:
    """keccak256(abi.encode(uint64 chainA, address deskA, uint64 swapNonce)): `SwapDesk.swapIdOf`."""
    return keccak(encode(["uint64", "address", "uint64"], [chain_a, desk_a, nonce]))


def quote(amount_x: int, price: int, fee_bps: int) -> int:
    """The Y a swap of `amount_x` pays at `price`, after the fee: `SwapDesk.quote`."""
    return min(amount_x * price // PRICE_ONE * (MAX_FEE_BPS - fee_bps) // MAX_FEE_BPS, (1 << 128) - 1)


SWAP_FIELDS = (
    "termsId",
    "user",
    "amountX",
    "minAmountY",
    "amountY",
    "deadline",
    "messageNonce",
    "state",
    "reason",
)
"""`SwapDesk.Swap`'s fields, in order."""


@dataclass(frozen=True)
class Swap:
    """`SwapDesk.Swap`, one desk's record of a swap (the `SwapRecorded` event)."""

    terms_id: bytes
    user: str
    amount_x: int
    min_amount_y: int
    amount_y: int
    deadline: int
    message_nonce: int
    state: SwapState
    reason: SwapReason

    @classmethod
    def from_tuple(cls, record: Any) -> Swap:
        """From what `desk.functions.swapOf(swapId).call()` returns."""
        return cls.from_event(dict(zip(SWAP_FIELDS, record, strict=True)))

    @classmethod
    def from_event(cls, record: Any) -> Swap:
        return cls(
            terms_id=bytes(record["termsId"]),
            user=record["user"],
            amount_x=int(record["amountX"]),
            min_amount_y=int(record["minAmountY"]),
            amount_y=int(record["amountY"]),
            deadline=int(record["deadline"]),
            message_nonce=int(record["messageNonce"]),
            state=SwapState(record["state"]),
            reason=SwapReason(record["reason"]),
        )
