"""The daemon's admin HTTP API (aiohttp). Every route, /metrics included, requires
`Authorization: Bearer <token>`; every answer is JSON (but /metrics, Prometheus text), an error
being {"error": "..."} with 400 (a bad request), 401 (no or wrong token), 404 (no such message,
batch, peer or route) or 409 (the request conflicts with the state: a replay of an executed
message, a duplicate peer).

    GET    /v1/status                    the daemon's status (its `status()` callable)
    GET    /v1/messages?status=&peer=&direction=&limit=    oldest first; status may be a,b
    GET    /v1/messages/{id}             the message and its "history" of transitions
    POST   /v1/messages/{id}/replay      {"id", "status", "changed"}
    POST   /v1/messages/{id}/bounce      {"reason"} -> {"id", "status", "changed"}
    POST   /v1/messages/{id}/force       force an outgoing message through L1 -> {"id", "status", "changed"}
    GET    /v1/priority?status=&limit=   this chain's L1 priority queue (messages forced to it), in order
    GET    /v1/batches?status=&limit=    batches by number; status may be a,b; limit: the last ones
    GET    /v1/batches/{n}               the batch and its "history" of transitions
    GET    /v1/peers                     the config file's peers
    POST   /v1/peers                     {"name", "chain_id", "allowed_assets"?, "allowed_targets"?,
                                          "rate_limit_per_minute"?, "force_after_seconds"?,
                                          "swap_desk"?}
                                          -> 201 and the peer
    DELETE /v1/peers/{name}              the removed peer
    GET    /v1/refusals?limit=           refused inputs, newest first
    GET    /v1/swaps?status=&side=&limit=    swaps on this chain's desk, newest first
    GET    /v1/swaps/{id}                one swap, with its message's status
    GET    /v1/swaps/terms               swap terms agreed or being agreed with peers
    POST   /v1/swaps/terms               {"peer", "terms": {...}} -> 201 and the terms, "proposed"
    POST   /v1/swaps/terms/{id}/accept   the terms, "accepted" (registered on the desk shortly)
    POST   /v1/swaps/price               {"asset_x", "asset_y", "price"} -> {"tx"} (B: the quote)
    POST   /v1/swaps/fund                {"token", "amount"} -> {"tx"} (B: inventory from the operator)
    GET    /metrics                      Prometheus text

Statuses are the store's words (`OutStatus`, `InStatus`, `BatchStatus`); a limit is a positive
integer (one beyond any store's size is no limit). Messages, batches, their transitions and refusals
are their rows' `to_json()`: big integers as decimal strings, asset ids, hashes and bytes as 0x-hex,
times as unix floats; each transition is {"from_status", "to_status", "at", "reason"}.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from web3 import Web3

from bridge_contracts.chain import Reverted
from bridge_contracts.swaps import Terms
from hub.config_fields import show
from relayer import peers as peer_ops
from relayer.config import ANY, ConfigError, PeerConfig
from relayer.config import load as load_config
from relayer.halts import Resolution
from relayer.metrics import CONTENT_TYPE, Metrics
from relayer.peers import PeerConflict, PeerError, UnknownPeer
from relayer.pipeline.swaps import Operations, TermsError, bounce_refusal
from relayer.sender import SendFailed
from relayer.store import (
    HALT_SCOPES,
    BatchStatus,
    Direction,
    InStatus,
    OutStatus,
    PriorityStatus,
    Store,
    StoreError,
    SwapSide,
    SwapStatus,
    Transition,
    UnknownMessage,
)

_MESSAGE_STATUSES = tuple(dict.fromkeys(str(s) for s in (*OutStatus, *InStatus)))
_BATCH_STATUSES = tuple(str(s) for s in BatchStatus)
_PRIORITY_STATUSES = tuple(str(s) for s in PriorityStatus)
_DIRECTIONS = tuple(str(d) for d in Direction)
_SWAP_STATUSES = tuple(str(s) for s in SwapStatus)
_SWAP_SIDES = tuple(str(s) for s in SwapSide)
_T = TypeVar("_T")
_PEER_FIELDS: dict[str, type] = {
    "name": str,
    "chain_id": int,
    "allowed_assets": list,
    "allowed_targets": list,
    "rate_limit_per_minute": int,
    "force_after_seconds": float,
    "swap_desk": str,
}


def make_app(
    store: Store,
    config_path: str | Path,
    token: str,
    metrics: Metrics,
    status: Callable[[], dict[str, Any]],
    *,
    replayed: Callable[[], None] = lambda: None,
    resume: Callable[[str, bool], Awaitable[Resolution]] | None = None,
    swap_ops: Operations | None = None,
) -> web.Application:
    """The admin API over `store` and the peers of the config file at `config_path`; `replayed` is
    called when a replay was asked for (the daemon wakes its executor)."""
    if not token:
        raise ValueError("the admin API needs a non-empty bearer token")
    api = _Api(store, Path(config_path), metrics, status, replayed=replayed, resume=resume)
    swap_api = _SwapApi(store, swap_ops)
    app = web.Application(middlewares=[_json_errors, _bearer(token)])
    app.add_routes(
        [
            web.get("/v1/status", api.status),
            web.get("/v1/messages", api.messages),
            web.get("/v1/messages/{id}", api.message),
            web.post("/v1/messages/{id}/replay", api.replay),
            web.post("/v1/messages/{id}/bounce", api.bounce),
            web.post("/v1/messages/{id}/force", api.force),
            web.get("/v1/priority", api.priority),
            web.get("/v1/batches", api.batches),
            web.get("/v1/batches/{n}", api.batch),
            web.get("/v1/peers", api.peers),
            web.post("/v1/peers", api.add_peer),
            web.delete("/v1/peers/{name}", api.remove_peer),
            web.get("/v1/refusals", api.refusals),
            web.get("/v1/halts", api.halts),
            web.post("/v1/halts/{scope}/resume", api.resume),
            web.get("/v1/swaps", swap_api.swaps),
            web.get("/v1/swaps/terms", swap_api.terms),
            web.post("/v1/swaps/terms", swap_api.propose),
            web.post("/v1/swaps/terms/{id}/accept", swap_api.accept),
            web.post("/v1/swaps/price", swap_api.price),
            web.post("/v1/swaps/fund", swap_api.fund),
            web.get("/v1/swaps/{id}", swap_api.swap),
            web.get("/metrics", api.metrics),
        ]
    )
    return app


class _Api:
    def __init__(
        self,
        store: Store,
        config_path: Path,
        metrics: Metrics,
        status: Callable[[], dict[str, Any]],
        *,
        replayed: Callable[[], None],
        resume: Callable[[str, bool], Awaitable[Resolution]] | None,
    ) -> None:
        self.store = store
        self.config_path = config_path
        self.metrics_ = metrics
        self.status_ = status
        self.replayed = replayed
        self.resume_ = resume

    async def status(self, request: web.Request) -> web.Response:
        return _json(self.status_())

    async def messages(self, request: web.Request) -> web.Response:
        query = request.query
        direction = query.get("direction") or None
        if direction is not None and direction not in _DIRECTIONS:
            raise _error(400, f"direction must be 'in' or 'out', not {show(direction)}")
        rows = await asyncio.to_thread(
            self.store.messages,
            status=_statuses(query.get("status"), _MESSAGE_STATUSES),
            peer=query.get("peer") or None,
            direction=direction,
            limit=_limit(query.get("limit")),
        )
        return _json([m.to_json() for m in rows])

    async def message(self, request: web.Request) -> web.Response:
        message_id = request.match_info["id"]
        m = await asyncio.to_thread(self.store.message, message_id)
        if m is None:
            raise _error(404, f"no message {message_id}")
        history = await asyncio.to_thread(self.store.history, message_id)
        return _json(m.to_json() | {"history": _history(history)})

    async def replay(self, request: web.Request) -> web.Response:
        message_id = request.match_info["id"]
        return await self._request(
            message_id, self.store.request_replay, "replay requested through the admin API"
        )

    async def bounce(self, request: web.Request) -> web.Response:
        message_id = request.match_info["id"]
        body = await _body(request)
        reason = body.get("reason") if isinstance(body, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            raise _error(400, "the body must be a JSON object with a non-empty 'reason' (sent to the source)")
        found = await asyncio.to_thread(self.store.message, message_id)
        if found is not None:
            config = await asyncio.to_thread(load_config, self.config_path)
            refusal = bounce_refusal(config, found.message)
            if refusal is not None:
                raise _error(409, refusal)
        return await self._request(message_id, self.store.request_bounce, f"{reason} (through the admin API)")

    async def force(self, request: web.Request) -> web.Response:
        message_id = request.match_info["id"]
        return await self._request(message_id, self.store.force, "forcing requested through the admin API")

    async def priority(self, request: web.Request) -> web.Response:
        statuses = _statuses(request.query.get("status"), _PRIORITY_STATUSES)
        limit = _limit(request.query.get("limit"))
        ops = await asyncio.to_thread(self.store.priority_ops, status=statuses, limit=limit)
        return _json([op.to_json() for op in ops])

    async def _request(self, message_id: str, step: Callable[[str, str], str], reason: str) -> web.Response:
        """An operator's request on one message (a replay, a bounce): the store step, its answer, and
        the executor woken when it changed something."""
        before = await asyncio.to_thread(self.store.message, message_id)
        try:
            status = await asyncio.to_thread(step, message_id, reason)
        except UnknownMessage as exc:
            raise _error(404, str(exc)) from None
        except StoreError as exc:
            raise _error(409, str(exc)) from None
        changed = before is not None and before.status != status
        if changed:
            self.replayed()
        return _json({"id": message_id, "status": status, "changed": changed})

    async def halts(self, request: web.Request) -> web.Response:
        found = await asyncio.to_thread(self.store.halts, _limit(request.query.get("limit")))
        return _json([h.to_json() for h in found])

    async def resume(self, request: web.Request) -> web.Response:
        scope = request.match_info["scope"]
        if scope not in HALT_SCOPES:
            raise _error(404, f"no stream {show(scope)}: the streams are {', '.join(HALT_SCOPES)}")
        body = await _body(request) or {}
        rewind = body.get("rewind", False) if isinstance(body, dict) else None
        if not isinstance(rewind, bool):
            raise _error(400, "the body must be a JSON object whose optional 'rewind' is true or false")
        if self.resume_ is None:
            raise _error(503, "this admin API cannot reach the chains to resume a stream")
        try:
            outcome = await self.resume_(scope, rewind)
        except StoreError as exc:
            raise _error(409, str(exc)) from None
        return _json(outcome.to_json(), status=200 if outcome.lifted else 409)

    async def batches(self, request: web.Request) -> web.Response:
        query = request.query
        found = await asyncio.to_thread(
            self.store.batches,
            status=_statuses(query.get("status"), _BATCH_STATUSES),
            limit=_limit(query.get("limit")),
        )
        return _json([b.to_json() for b in found])

    async def batch(self, request: web.Request) -> web.Response:
        text = request.match_info["n"]
        number = _batch_number(text)
        b = None if number is None else await asyncio.to_thread(self.store.batch, number)
        if b is None:
            raise _error(404, f"no batch {show(text) if number is None else number}")
        history = await asyncio.to_thread(self.store.batch_history, b.batch_number)
        return _json(b.to_json() | {"history": _history(history)})

    async def peers(self, request: web.Request) -> web.Response:
        peers = await asyncio.to_thread(peer_ops.list_peers, self.config_path)
        return _json([_peer(peer) for peer in peers])

    async def add_peer(self, request: web.Request) -> web.Response:
        args = _peer_args(await _body(request))
        peer = await self._edit(
            lambda: peer_ops.add_peer(
                self.config_path,
                args["name"],
                args["chain_id"],
                args.get("allowed_assets", (ANY,)),
                args.get("allowed_targets", (ANY,)),
                args.get("rate_limit_per_minute", 600),
                force_after_seconds=args.get("force_after_seconds"),
                swap_desk=args.get("swap_desk"),
            )
        )
        return _json(_peer(peer), status=201)

    async def remove_peer(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        peer = await self._edit(lambda: peer_ops.remove_peer(self.config_path, name))
        return _json(_peer(peer))

    async def _edit(self, change: Callable[[], PeerConfig]) -> PeerConfig:
        try:
            return await asyncio.to_thread(change)
        except UnknownPeer as exc:
            raise _error(404, str(exc)) from None
        except (PeerConflict, ConfigError) as exc:  # ConfigError: the file itself is invalid now
            raise _error(409, str(exc)) from None
        except PeerError as exc:
            raise _error(400, str(exc)) from None

    async def refusals(self, request: web.Request) -> web.Response:
        refusals = await asyncio.to_thread(self.store.refusals, _limit(request.query.get("limit")))
        return _json([r.to_json() for r in refusals])

    async def metrics(self, request: web.Request) -> web.Response:
        await asyncio.to_thread(self.metrics_.refresh_from_store, self.store)
        response = web.Response(body=self.metrics_.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response


# --- middlewares --------------------------------------------------------------------------------


class _SwapApi:
    """The swap routes: the store's swaps and terms, and the operator's requests to the desk."""

    def __init__(self, store: Store, ops: Operations | None) -> None:
        self.store = store
        self.ops = ops

    async def swaps(self, request: web.Request) -> web.Response:
        statuses = _statuses(request.query.get("status"), _SWAP_STATUSES)
        side = request.query.get("side")
        if side is not None and side not in _SWAP_SIDES:
            raise _error(400, f"side must be one of {', '.join(_SWAP_SIDES)}, not {side!r}")
        found = await asyncio.to_thread(
            self.store.swaps, status=statuses, side=side, limit=_limit(request.query.get("limit"))
        )
        return _json([s.to_json() for s in found])

    async def swap(self, request: web.Request) -> web.Response:
        found = await asyncio.to_thread(self.store.swap, request.match_info["id"])
        if found is None:
            raise _error(404, f"no swap {request.match_info['id']}")
        message = await asyncio.to_thread(self.store.message, found.message_id)
        return _json({**found.to_json(), "message_status": None if message is None else str(message.status)})

    async def terms(self, request: web.Request) -> web.Response:
        found = await asyncio.to_thread(self.store.swap_terms)
        return _json([t.to_json() for t in found])

    async def propose(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("peer"), str):
            raise _error(400, "the body must be a JSON object with 'peer' (a name) and 'terms'")
        try:
            terms = Terms.from_json(body.get("terms"))
        except ValueError as exc:
            raise _error(400, str(exc)) from None
        stored = await self._ask(lambda ops: ops.propose(body["peer"], terms))
        return _json(stored.to_json(), status=201)

    async def accept(self, request: web.Request) -> web.Response:
        terms_id = request.match_info["id"].lower()
        stored = await self._ask(lambda ops: ops.accept(terms_id))
        return _json(stored.to_json())

    async def price(self, request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            asset_x, asset_y = (_bytes32(body, name) for name in ("asset_x", "asset_y"))
            price = _natural(body, "price")
        except ValueError as exc:
            raise _error(400, str(exc)) from None
        tx = await self._ask(lambda ops: ops.set_price(asset_x, asset_y, price))
        return _json({"tx": tx})

    async def fund(self, request: web.Request) -> web.Response:
        body = await _body(request)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not Web3.is_address(token):
            raise _error(400, "'token' must be the token's address (0x + 40 hex digits)")
        try:
            amount = _natural(body, "amount")
        except ValueError as exc:
            raise _error(400, str(exc)) from None
        tx = await self._ask(lambda ops: ops.fund(Web3.to_checksum_address(token), amount))
        return _json({"tx": tx})

    async def _ask(self, request: Callable[[Operations], Awaitable[_T]]) -> _T:
        if self.ops is None:
            raise _error(409, "this daemon runs no swap desk")
        try:
            return await request(self.ops)
        except (TermsError, StoreError) as exc:
            raise _error(409, str(exc)) from None
        except Reverted as exc:
            raise _error(409, f"the desk refused it: {exc.error}") from None
        except SendFailed as exc:
            raise _error(503, str(exc)) from None


def _bytes32(body: Any, name: str) -> bytes:
    value = body.get(name) if isinstance(body, dict) else None
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) and len(value) == 66 else b""
    if len(raw) != 32:
        raise ValueError(f"'{name}' must be an asset id: 0x + 64 hex digits")
    return raw


def _natural(body: Any, name: str) -> int:
    """A non-negative integer field, given as a JSON number or a decimal string (beyond 2^53)."""
    value = body.get(name) if isinstance(body, dict) else None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 1 << 256:
        raise ValueError(f"'{name}' must be a non-negative integer (a decimal string beyond 2^53)")
    return value


async def _body(request: web.Request) -> Any:
    """The request's JSON body (None when it has none)."""
    raw = await request.read()
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _error(400, f"the body is not JSON: {exc}") from None


def _bearer(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _json(
                {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="xrelay admin"'},
            )
        return await handler(request)

    return check


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own errors (no such route, method not allowed) as JSON too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return _json({"error": exc.reason}, status=exc.status, headers=_allow(exc))


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


# --- values -------------------------------------------------------------------------------------


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(value, default=_default),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, int):  # beyond 64 bits
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _error(status: int, message: str) -> web.HTTPException:
    error = web.HTTPException(text=orjson.dumps({"error": message}).decode(), content_type="application/json")
    error.set_status(status)
    return error


def _limit(text: str | None) -> int | None:
    """A positive integer; one too large for any store to hold that many is no limit (and is never
    parsed: Python refuses to parse integers of thousands of digits)."""
    if not text:
        return None
    digits = text.lstrip("0")
    if not (text.isascii() and text.isdigit()) or not digits:
        raise _error(400, f"limit must be a positive integer, not {show(text)}")
    return int(digits) if len(digits) <= 18 else None


def _batch_number(text: str) -> int | None:
    """A batch number from a path; None for one too large to be any batch's."""
    if not (text.isascii() and text.isdigit()):
        raise _error(400, f"a batch number is a non-negative integer, not {show(text)}")
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else None


def _statuses(text: str | None, known: tuple[str, ...]) -> list[str] | None:
    """A status filter, "a,b", each one of `known`."""
    if not text:
        return None
    statuses = [s for s in text.split(",") if s]
    unknown = [s for s in statuses if s not in known]
    if unknown:
        raise _error(400, f"unknown status {', '.join(unknown)}: expected {', '.join(known)}")
    return statuses or None


def _history(history: list[Transition]) -> list[dict[str, Any]]:
    return [t.to_json() for t in history]


def _peer(peer: PeerConfig) -> dict[str, Any]:
    return peer.model_dump(mode="json")


def _peer_args(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _error(400, "the body must be a JSON object")
    unknown = sorted(set(body) - set(_PEER_FIELDS))
    if unknown:
        raise _error(400, f"unknown field {', '.join(unknown)}: expected {', '.join(_PEER_FIELDS)}")
    for field in ("name", "chain_id"):
        if field not in body:
            raise _error(400, f"{field} is required")
    for field, kind in _PEER_FIELDS.items():
        if field not in body:
            continue
        value = body[field]
        wrong = not isinstance(value, int | float if kind is float else kind) or isinstance(value, bool)
        if kind is list and not wrong:
            wrong = not all(isinstance(item, str) for item in value)
        if wrong:
            expected = {str: "a string", int: "an integer", float: "a number", list: "a list of strings"}[
                kind
            ]
            raise _error(400, f"{field} must be {expected}")
    return body
