"""One EVM chain over JSON-RPC, and the account that signs for xrelay on it.

Transactions are signed locally (never by the node) and a revert is raised as `Reverted` with
the contract's custom error decoded by name and arguments.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


_UNREACHABLE = (requests.ConnectionError, requests.Timeout, requests.HTTPError)

# What an endpoint is, as FailoverProvider.endpoints() reports it.
IN_USE, HEALTHY, DOWN, WRONG_CHAIN, UNCHECKED = "in use", "healthy", "down", "wrong chain", "unchecked"


class _BadAnswer(RuntimeError):
    """An endpoint answered its identity check with something that is not an answer (an error, no block)."""


@dataclass(frozen=True)
class _Mismatch:
    """An endpoint serves another chain: `what` is "chain" (its chain id) or "genesis" (its block 0)."""

    what: str
    got: str
    expected: str

    def short(self) -> str:
        verb = "answers for chain" if self.what == "chain" else "has genesis"
        return f"{verb} {self.got}, expected {self.expected}"

    def problem(self, url: str) -> str:
        verb = "answers for chain" if self.what == "chain" else "has genesis"
        return f"{url} {verb} {self.got} (expected {self.expected})"


@dataclass
class _Endpoint:
    url: str
    provider: HTTPProvider  # requests, and the check before the endpoint is used: the request timeout
    probe: HTTPProvider  # fail-back probes and check_endpoints(): the short probe timeout
    state: str = UNCHECKED  # HEALTHY, DOWN, WRONG_CHAIN or UNCHECKED; "in use" is the current one
    reason: str | None = None  # why it is down or wrong, short: "ConnectionError", "answers for chain …"
    error: str | None = None  # the same at more length, for an operator
    mismatch: _Mismatch | None = None
    checked_at: float | None = None  # unix time
    checked_mono: float | None = None  # the same on the monotonic clock, for re-check intervals


class FailoverProvider(JSONBaseProvider):
    """JSON-RPC over HTTP to the first of several endpoints that answers: a request that cannot reach
    one (connection refused, timeout, HTTP error) goes to the next, which stays current until it fails
    in turn. A JSON-RPC error answer (a revert, say) is an answer, and never fails over.

    Given the chain's identity (`expected_chain_id`, and `expected_genesis`, the hash of block 0), an
    endpoint is checked before it is used (first use, and every move to it): one that answers for
    another chain, or another history of the same chain id, is never used, is reported (log.error)
    and is checked again at most every `recheck_seconds`. Without `expected_genesis` the genesis of
    the first endpoint that answers with the right chain id is learned and then required of the
    others. Without `expected_chain_id` nothing is checked (and nothing learned).

    While on a later endpoint, at most every `failback_seconds` a request first probes the earlier
    ones (with the short `probe_timeout`) and moves back to the first that is up and the right chain.

    Thread-safe: the state is guarded by a lock that is never held during a request; checks and
    probes run under a second lock, so that one thread at a time moves the provider."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 30.0,
        expected_chain_id: int | None = None,
        expected_genesis: bytes | None = None,
        name: str | None = None,
        failback_seconds: float = 30.0,
        recheck_seconds: float = 60.0,
        probe_timeout: float = 2.0,
    ) -> None:
        super().__init__()
        if not urls:
            raise ValueError("FailoverProvider needs at least one URL")
        self.urls = tuple(urls)
        self.expected_chain_id = expected_chain_id
        self.expected_genesis = expected_genesis
        self.name = (
            name
            if name is not None
            else (f"chain {expected_chain_id}" if expected_chain_id is not None else None)
        )
        self.failback_seconds = failback_seconds
        self.recheck_seconds = recheck_seconds
        probe_timeout = min(probe_timeout, timeout)
        self._endpoints = [
            _Endpoint(
                url,
                HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None),
                HTTPProvider(
                    url, request_kwargs={"timeout": probe_timeout}, exception_retry_configuration=None
                ),
            )
            for url in self.urls
        ]
        self._genesis = expected_genesis  # required of every endpoint once known
        self._lock = threading.Lock()  # the state below and the endpoints'; never held during I/O
        self._switching = threading.Lock()  # held by the one thread that checks, probes or moves
        self._current = 0
        self._verified = False  # whether the current endpoint was checked since the provider moved to it
        self._next_failback = 0.0  # monotonic

    @property
    def checks_identity(self) -> bool:
        return self.expected_chain_id is not None or self.expected_genesis is not None

    @property
    def genesis(self) -> bytes | None:
        """The genesis hash required of every endpoint: given, or learned (None until then)."""
        with self._lock:
            return self._genesis

    @property
    def current_url(self) -> str:
        with self._lock:
            return self.urls[self._current]

    def endpoints(self) -> list[dict[str, Any]]:
        """Each endpoint for an operator: url, state ("in use", "healthy", "down", "wrong chain",
        "unchecked"), error (why it is down or wrong, or None) and last_checked (unix time or None)."""
        with self._lock:
            return [
                {
                    "url": e.url,
                    "state": IN_USE if i == self._current and self._verified else e.state,
                    "error": e.error,
                    "last_checked": e.checked_at,
                }
                for i, e in enumerate(self._endpoints)
            ]

    def check_endpoints(self) -> list[str]:
        """Check every endpoint now (with the probe timeout); the problems, one per bad endpoint:
        "URL is down (ConnectionError)", "URL answers for chain X (expected Y)", "URL has genesis …"."""
        problems = []
        with self._switching:
            for index, endpoint in enumerate(self._endpoints):
                if self._check(index, endpoint.probe, ask=True, force=True):
                    continue
                if endpoint.mismatch is not None:
                    problems.append(endpoint.mismatch.problem(endpoint.url))
                else:
                    problems.append(f"{endpoint.url} is down ({endpoint.reason})")
        return problems

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self._maybe_fail_back()
        failures: dict[int, str] = {}
        while True:
            index = self._ready(failures)
            if index is None:
                break
            try:
                return self._endpoints[index].provider.make_request(method, params)
            except _UNREACHABLE as exc:
                failures[index] = type(exc).__name__
                self._mark_down(index, exc)
                if len(self._endpoints) > 1:
                    log.warning("RPC %s failed (%s); trying another", self.urls[index], exc)
        of = f" of {self.name}" if self.name else ""
        named = "; ".join(f"{self.urls[i]}: {failures[i]}" for i in sorted(failures))
        raise ProviderConnectionError(f"no RPC endpoint{of} answered {method}: {named}")

    def is_connected(self, show_traceback: bool = False) -> bool:
        with self._lock:
            usable = [e.provider for e in self._endpoints if e.state != WRONG_CHAIN]
        return any(p.is_connected(show_traceback) for p in usable)

    # -- choosing an endpoint

    def _ready(self, failures: dict[int, str]) -> int | None:
        """The endpoint a request goes to, checked, skipping those in `failures` (and adding to it the
        ones found bad); None when none is left."""
        with self._lock:
            if self._verified and self._current not in failures:
                return self._current
        with self._switching:
            with self._lock:  # another thread may have moved the provider meanwhile
                if self._verified and self._current not in failures:
                    return self._current
                start = self._current
            count = len(self._endpoints)
            for index in ((start + k) % count for k in range(count)):
                if index in failures:
                    continue
                endpoint = self._endpoints[index]
                if not self._check(index, endpoint.provider):
                    failures[index] = endpoint.reason or "unusable"
                    continue
                with self._lock:
                    if index != self._current:
                        log.warning("RPC of %s: now using %s", self.name or "the chain", endpoint.url)
                    self._move_to(index)
                return index
        return None

    def _move_to(self, index: int) -> None:
        """Make `index` current and checked. The caller holds the lock."""
        if index > 0:  # fail back from there, later
            self._next_failback = time.monotonic() + self.failback_seconds
        self._current = index
        self._verified = True

    def _mark_down(self, index: int, exc: Exception) -> None:
        with self._lock:
            self._set_down(index, exc)
            if self._current == index:  # else another thread has moved on already
                self._current = (index + 1) % len(self._endpoints)
                self._verified = False

    def _maybe_fail_back(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._current == 0 or not self._verified or now < self._next_failback:
                return
            self._next_failback = now + self.failback_seconds  # this thread probes; the others go on
            current = self._current
        if not self._switching.acquire(blocking=False):
            return  # another thread is checking or moving the provider
        try:
            for index in range(current):
                endpoint = self._endpoints[index]
                if self._check(index, endpoint.probe, ask=True):
                    log.info("failing back to %s", endpoint.url)
                    with self._lock:
                        self._move_to(index)
                    return
        finally:
            self._switching.release()

    # -- checking one endpoint

    def _check(self, index: int, provider: HTTPProvider, *, ask: bool = False, force: bool = False) -> bool:
        """Whether endpoint `index` can serve requests: it answers and is the expected chain. Records
        what was found. A wrong-chain endpoint is not asked again before `recheck_seconds` unless
        `force`. Without an identity to check, an endpoint is taken as it is (the request will tell)
        unless `ask`: then it is asked its chain id, to see that it answers."""
        endpoint = self._endpoints[index]
        with self._lock:
            if (
                not force
                and endpoint.state == WRONG_CHAIN
                and endpoint.checked_mono is not None
                and time.monotonic() - endpoint.checked_mono < self.recheck_seconds
            ):
                return False
        if not self.checks_identity and not ask:
            return True
        try:
            mismatch = self._identify(provider)
        except (*_UNREACHABLE, _BadAnswer) as exc:
            with self._lock:
                self._set_down(index, exc)
            return False
        with self._lock:
            was = endpoint.state
            endpoint.checked_at, endpoint.checked_mono = time.time(), time.monotonic()
            endpoint.mismatch = mismatch
            if mismatch is None:
                endpoint.state, endpoint.reason, endpoint.error = HEALTHY, None, None
                if was == WRONG_CHAIN:
                    log.info("RPC %s of %s is the right chain again", endpoint.url, self.name)
                return True
            endpoint.state, endpoint.reason = WRONG_CHAIN, mismatch.short()
            endpoint.error = endpoint.reason
            if index == self._current:
                self._verified = False
        log.error("RPC of %s: %s; not using it", self.name or "the chain", mismatch.problem(endpoint.url))
        return False

    def _identify(self, provider: HTTPProvider) -> _Mismatch | None:
        """Ask an endpoint which chain it serves; what differs from the expected, if anything. Learns
        the genesis hash from the first endpoint of the right chain id when none was given."""
        chain_id = int(_result(provider, "eth_chainId", []), 16)
        if self.expected_chain_id is not None and chain_id != self.expected_chain_id:
            return _Mismatch("chain", str(chain_id), str(self.expected_chain_id))
        if self.expected_chain_id is None and self.expected_genesis is None:
            return None  # nothing to compare with, nothing to learn
        block = _result(provider, "eth_getBlockByNumber", ["0x0", False])
        if not isinstance(block, Mapping) or not isinstance(block.get("hash"), str):
            raise _BadAnswer(f"eth_getBlockByNumber(0x0) answered {block!r}")
        genesis = bytes.fromhex(block["hash"].removeprefix("0x"))
        with self._lock:
            if self._genesis is None:
                self._genesis = genesis
                log.info("%s: genesis 0x%s (learned from an endpoint)", self.name, genesis.hex())
            expected = self._genesis
        if genesis != expected:
            return _Mismatch("genesis", "0x" + genesis.hex(), "0x" + expected.hex())
        return None

    def _set_down(self, index: int, exc: Exception) -> None:
        """Record endpoint `index` as unreachable. The caller holds the lock."""
        endpoint = self._endpoints[index]
        endpoint.state, endpoint.reason, endpoint.mismatch = DOWN, type(exc).__name__, None
        endpoint.error = f"{type(exc).__name__}: {exc}"[:300]
        endpoint.checked_at, endpoint.checked_mono = time.time(), time.monotonic()
        if index == self._current:
            self._verified = False


def _result(provider: HTTPProvider, method: str, params: list[Any]) -> Any:
    response = provider.make_request(RPCEndpoint(method), params)
    if "error" in response or "result" not in response:
        raise _BadAnswer(f"{method} answered {response.get('error')!r}")
    return response["result"]


class Chain:
    """A chain reached through one RPC URL or several (tried in order, failing over, failing back),
    with the account that signs for xrelay on it. Given `chain_id`, every endpoint is checked to serve
    that chain (and the same genesis) before it is used; see FailoverProvider."""

    def __init__(
        self,
        rpc_url: str | Sequence[str],
        signer: LocalAccount,
        *,
        request_timeout: float = 30.0,
        chain_id: int | None = None,
        genesis: bytes | None = None,
        name: str | None = None,
        failback_seconds: float = 30.0,
    ) -> None:
        self.rpc_urls = (rpc_url,) if isinstance(rpc_url, str) else tuple(rpc_url)
        self.provider = FailoverProvider(
            self.rpc_urls,
            timeout=request_timeout,
            expected_chain_id=chain_id,
            expected_genesis=genesis,
            name=name,
            failback_seconds=failback_seconds,
        )
        self.w3 = Web3(self.provider)
        self.rpc_url = self.rpc_urls[0]
        self.request_timeout = request_timeout
        self.name = name
        self.failback_seconds = failback_seconds
        self._chain_id = chain_id
        self.signer = signer

    def with_signer(self, signer: LocalAccount) -> Chain:
        """The same chain, with transactions signed by another account."""
        return Chain(
            self.rpc_urls,
            signer,
            request_timeout=self.request_timeout,
            chain_id=self._chain_id,
            genesis=self.provider.genesis,
            name=self.name,
            failback_seconds=self.failback_seconds,
        )

    @property
    def genesis(self) -> bytes | None:
        """The genesis block hash every endpoint must have: given, or learned from the first endpoint
        of the right chain id (None before that, or without a chain id)."""
        return self.provider.genesis

    @property
    def current_url(self) -> str:
        """The RPC endpoint requests go to now."""
        return self.provider.current_url

    def endpoints(self) -> list[dict[str, Any]]:
        """The RPC endpoints and their state, for an operator (FailoverProvider.endpoints)."""
        return self.provider.endpoints()

    def check_endpoints(self) -> list[str]:
        """Check every RPC endpoint now; the problems found, one readable line per bad endpoint."""
        return self.provider.check_endpoints()

    @cached_property
    def chain_id(self) -> int:
        """The chain id given, or else the node's."""
        return self._chain_id if self._chain_id is not None else self.w3.eth.chain_id

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
        # Headroom over the estimate: it is made against the latest block, and a storage write can
        # cost more in the block the transaction lands in (a slot set to a new value, not the same).
        tx["gas"] = min(int(tx["gas"]) * 6 // 5, int(self.w3.eth.get_block("latest")["gasLimit"]))
        signed = self.signer.sign_transaction(cast(dict[str, Any], tx))
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise Reverted(label, f"transaction 0x{tx_hash.hex()} failed in block {receipt['blockNumber']}")
        return receipt
