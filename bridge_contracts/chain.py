"""One EVM chain over JSON-RPC, and the account that signs for xrelay on it.

Transactions are signed locally (never by the node) and a revert is raised as `Reverted` with
the contract's custom error decoded by name and arguments.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from functools import cache, cached_property
from typing import Any, cast

import requests
from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, ProviderConnectionError
from web3.providers import HTTPProvider, JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse, TxParams, TxReceipt, Wei

from bridge_contracts import artifacts

log = logging.getLogger(__name__)

_PANIC_REASONS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}


class Reverted(RuntimeError):
    """A call or transaction reverted. `error` is the decoded reason, e.g. 'ZeroAmount()'."""

    def __init__(self, what: str, error: str) -> None:
        super().__init__(f"{what} reverted: {error}")
        self.error = error


def _selector(signature: str) -> bytes:
    return bytes(Web3.keccak(text=signature)[:4])


@cache
def _errors_by_selector() -> dict[bytes, tuple[str, list[str], list[str]]]:
    known: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for name in artifacts.names():
        for entry in artifacts.load(name).abi:
            if entry["type"] == "error":
                types = [i["type"] for i in entry["inputs"]]
                signature = f"{entry['name']}({','.join(types)})"
                known[_selector(signature)] = (
                    entry["name"],
                    [i["name"] for i in entry["inputs"]],
                    types,
                )
    known[_selector("Error(string)")] = ("Error", ["reason"], ["string"])
    known[_selector("Panic(uint256)")] = ("Panic", ["code"], ["uint256"])
    return known


def _show(abi_type: str, value: Any) -> str:
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value) if isinstance(value, str) else str(value)


def decode_revert(data: str | bytes | None) -> str:
    """Name a revert's return data: `InsufficientLocked(assetId=0x…, locked=5, requested=6)`."""
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data
    if not raw:
        return "no reason given"
    found = _errors_by_selector().get(raw[:4])
    if found is None:
        return f"unknown error 0x{raw.hex()}"
    name, names, types = found
    values = abi_decode(types, raw[4:])
    if name == "Panic":
        return f"Panic({_PANIC_REASONS.get(values[0], hex(values[0]))})"
    shown = (f"{n}={_show(t, v)}" if n else _show(t, v) for n, t, v in zip(names, types, values, strict=True))
    return f"{name}({', '.join(shown)})"


class LinkError(RuntimeError):
    """A contract's bytecode calls a library that was not given an address."""


_PLACEHOLDER = re.compile(r"__\$[0-9a-f]{34}\$__")


def library_placeholder(qualified_name: str) -> str:
    """solc's link placeholder for a public library: `__$` + the first 34 hex digits of
    keccak256("src/generated/PoseidonT3.sol:PoseidonT3") + `$__`."""
    return f"__${Web3.keccak(text=qualified_name).hex().removeprefix('0x')[:34]}$__"


def _qualified_name(library: str) -> str:
    """ "src/x/Lib.sol:Lib" as given, or the committed artifact's for a bare "Lib"."""
    return library if ":" in library else artifacts.load(library).qualified_name


def link(name: str, bytecode: str, libraries: Mapping[str, str]) -> str:
    """Fill the library placeholders of `bytecode` (contract `name`) with the given addresses, keyed
    by library name ("PoseidonT3") or fully qualified name ("src/generated/PoseidonT3.sol:PoseidonT3")."""
    for library, address in libraries.items():
        if not Web3.is_address(address):
            raise LinkError(f"{name}: library {library} has no valid address: {address!r}")
        placeholder = library_placeholder(_qualified_name(library))
        bytecode = bytecode.replace(placeholder, Web3.to_checksum_address(address)[2:].lower())
    missing = sorted(set(_PLACEHOLDER.findall(bytecode)))
    if missing:
        known = {library_placeholder(_qualified_name(n)): n for n in artifacts.names()}
        names = ", ".join(sorted(known.get(p, f"unknown library {p}") for p in missing))
        raise LinkError(f"{name} calls libraries that were not linked: {names}; pass their addresses")
    return bytecode


def reverted_error(what: str, exc: ContractLogicError) -> Reverted:
    data = exc.data if isinstance(exc.data, str | bytes) else None
    return Reverted(what, decode_revert(data) if data else str(exc.message or exc))


class FailoverProvider(JSONBaseProvider):
    """JSON-RPC over HTTP to the first of several endpoints that answers: a request that cannot reach
    one (connection refused, timeout, HTTP error) goes to the next, which stays current until it fails
    in turn. A JSON-RPC error answer (a revert, say) is an answer, and never fails over."""

    def __init__(self, urls: Sequence[str], *, timeout: float = 30.0) -> None:
        super().__init__()
        if not urls:
            raise ValueError("FailoverProvider needs at least one URL")
        self.urls = tuple(urls)
        self._providers = [
            HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
            for url in self.urls
        ]
        self._current = 0

    @property
    def current_url(self) -> str:
        return self.urls[self._current]

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        failures = []
        for _ in self._providers:
            index = self._current
            try:
                return self._providers[index].make_request(method, params)
            except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as exc:
                failures.append(f"{self.urls[index]}: {type(exc).__name__}")
                self._current = (index + 1) % len(self._providers)
                if len(self._providers) > 1:
                    log.warning("RPC %s failed (%s); trying %s", self.urls[index], exc, self.current_url)
        raise ProviderConnectionError(f"no RPC endpoint answered {method}: " + "; ".join(failures))

    def is_connected(self, show_traceback: bool = False) -> bool:
        return any(p.is_connected(show_traceback) for p in self._providers)


class Chain:
    """A chain reached through one RPC URL or several (tried in order, failing over), with the account
    that signs for xrelay on it."""

    def __init__(
        self, rpc_url: str | Sequence[str], signer: LocalAccount, *, request_timeout: float = 30.0
    ) -> None:
        self.rpc_urls = (rpc_url,) if isinstance(rpc_url, str) else tuple(rpc_url)
        self.w3 = Web3(FailoverProvider(self.rpc_urls, timeout=request_timeout))
        self.rpc_url = self.rpc_urls[0]
        self.request_timeout = request_timeout
        self.signer = signer

    def with_signer(self, signer: LocalAccount) -> Chain:
        """The same chain, with transactions signed by another account."""
        return Chain(self.rpc_urls, signer, request_timeout=self.request_timeout)

    @cached_property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifacts.load(name).abi)

    def deploy(self, name: str, *args: Any, libraries: Mapping[str, str] | None = None) -> Contract:
        """Deploy contract `name`, its public-library calls linked to `libraries` (name -> address)."""
        artifact = artifacts.load(name)
        bytecode = link(name, artifact.bytecode, libraries or {})
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=bytecode)
        receipt = self.send(factory.constructor(*args), what=f"deploy {name}")
        address = receipt["contractAddress"]
        assert address is not None
        return self.contract(name, address)

    def send(
        self,
        fn: ContractFunction | ContractConstructor,
        *,
        value: int = 0,
        what: str | None = None,
    ) -> TxReceipt:
        """Sign and send a contract call; wait for its receipt; raise Reverted if it failed."""
        label = what if what is not None else str(getattr(fn, "fn_name", "transaction"))
        params: TxParams = {
            "from": self.signer.address,
            "value": Wei(value),
            "nonce": self.w3.eth.get_transaction_count(self.signer.address, "pending"),
            "chainId": self.chain_id,
        }
        try:
            tx = fn.build_transaction(params)  # estimates gas: a revert surfaces here, decoded
        except ContractLogicError as exc:
            raise reverted_error(label, exc) from exc
        signed = self.signer.sign_transaction(cast(dict[str, Any], tx))
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise Reverted(label, f"transaction 0x{tx_hash.hex()} failed in block {receipt['blockNumber']}")
        return receipt
