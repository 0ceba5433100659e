"""The hub service's HTTP API: chain status, balances, batches, roots and aggregated-tree proofs.

JSON (orjson). Hashes and field elements are 0x + 64 hex digits, amounts and balances decimal
strings, ids, numbers, indices and block numbers JSON integers. An error is {"error": "..."} with
400 (a malformed parameter) or 404 (nothing of that name, or not indexed yet).

    GET /v1/status                      {l1_chain_id, hub, indexed_block, aggregated_size, aggregated_root}
    GET /v1/chains                      [{chain_id, operator, validium, next_batch, outbox_hash}]
    GET /v1/chains/{id}/balances        [{asset_id, balance}]
    GET /v1/chains/{id}/batches?from=N&limit=L
                                        [{batch_number, count, h_end, batch_root, depth, leaf_index,
                                          aggregated_root, tx, block}]
    GET /v1/roots?from=N&limit=L        [{size, root, block}]   (size >= N, default 1)
    GET /v1/proof?leaf_index=i&size=s   {leaf_index, size, leaf, root, siblings: [32 x 0x..]}
    GET /v1/batches/{chain}/{n}/proof?size=s
                                        the same, for batch n's leaf
    GET /v1/deposits?dest=C&from=N&limit=L
                                        [{nonce, leaf, leaf_index, aggregated_root, message, tx, block}]

`size` defaults to the tree's current size; `limit` to 1000 (at most 10000).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from hub.indexer import AggregatedProof, Indexer, ProofUnavailable, hex32

INDEXER = web.AppKey("indexer", Indexer)
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class _Problem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except _Problem as problem:
        return _json({"error": problem.message}, problem.status)
    except ProofUnavailable as exc:
        return _json({"error": str(exc)}, 404)
    except web.HTTPException as exc:  # no such route, wrong method
        if exc.status < 400:
            raise
        return _json({"error": f"{exc.reason}: {request.method} {request.path}"}, exc.status)


def _int(value: str | None, name: str, *, default: int | None = None, minimum: int = 0) -> int:
    if value is None:
        if default is None:
            raise _Problem(400, f"the query parameter {name} is required")
        return default
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise _Problem(400, f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def _query(request: web.Request, name: str, **kwargs: Any) -> int:
    return _int(request.query.get(name), name, **kwargs)


def _path(request: web.Request, name: str) -> int:
    return _int(request.match_info[name], name)


def _limit(request: web.Request) -> int:
    return min(_query(request, "limit", default=DEFAULT_LIMIT, minimum=1), MAX_LIMIT)


def _proof_json(proof: AggregatedProof) -> dict[str, Any]:
    return {
        "leaf_index": proof.leaf_index,
        "size": proof.size,
        "leaf": hex32(proof.leaf),
        "root": hex32(proof.root),
        "siblings": [hex32(s) for s in proof.siblings],
    }


def _known_chain(indexer: Indexer, chain_id: int) -> None:
    if chain_id != indexer.l1_chain_id and indexer.store.chain(chain_id) is None:
        raise _Problem(404, f"chain {chain_id} is not registered on the Hub (as far as indexed)")


async def status(request: web.Request) -> web.Response:
    indexer = request.app[INDEXER]
    return _json(
        {
            "l1_chain_id": indexer.l1_chain_id,
            "hub": indexer.hub,
            "indexed_block": indexer.indexed_block,
            "aggregated_size": indexer.aggregated_size,
            "aggregated_root": hex32(indexer.aggregated_root),
        }
    )


async def chains(request: web.Request) -> web.Response:
    rows = request.app[INDEXER].store.chains()
    return _json(
        [
            {
                "chain_id": row["chain_id"],
                "operator": row["operator"],
                "validium": bool(row["validium"]),
                "next_batch": row["next_batch"],
                "outbox_hash": row["outbox_hash"],
            }
            for row in rows
        ]
    )


async def balances(request: web.Request) -> web.Response:
    indexer, chain_id = request.app[INDEXER], _path(request, "id")
    _known_chain(indexer, chain_id)
    rows = indexer.store.balances(chain_id)
    return _json([{"asset_id": row["asset_id"], "balance": row["balance"]} for row in rows])


async def batches(request: web.Request) -> web.Response:
    indexer, chain_id = request.app[INDEXER], _path(request, "id")
    _known_chain(indexer, chain_id)
    rows = indexer.store.batches(chain_id, _query(request, "from", default=0), _limit(request))
    return _json([{k: v for k, v in row.items() if k != "chain_id"} for row in rows])


async def roots(request: web.Request) -> web.Response:
    store = request.app[INDEXER].store
    return _json(store.roots(_query(request, "from", default=1), _limit(request)))


def _size(request: web.Request) -> int | None:
    value = request.query.get("size")
    return None if value is None else _int(value, "size")


async def proof(request: web.Request) -> web.Response:
    indexer = request.app[INDEXER]
    return _json(_proof_json(indexer.proof(_query(request, "leaf_index"), _size(request))))


async def batch_proof(request: web.Request) -> web.Response:
    indexer = request.app[INDEXER]
    chain_id, batch_number = _path(request, "chain"), _path(request, "n")
    batch = indexer.store.batch(chain_id, batch_number)
    if batch is None:
        raise _Problem(404, f"batch {batch_number} of chain {chain_id} is not committed (as far as indexed)")
    return _json(_proof_json(indexer.proof(batch["leaf_index"], _size(request))))


async def deposits(request: web.Request) -> web.Response:
    store = request.app[INDEXER].store
    rows = store.deposits(_query(request, "dest"), _query(request, "from", default=0), _limit(request))
    return _json([{k: v for k, v in row.items() if k != "dest_chain_id"} for row in rows])


def create_app(indexer: Indexer) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[INDEXER] = indexer
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/chains", chains)
    app.router.add_get("/v1/chains/{id}/balances", balances)
    app.router.add_get("/v1/chains/{id}/batches", batches)
    app.router.add_get("/v1/roots", roots)
    app.router.add_get("/v1/proof", proof)
    app.router.add_get("/v1/batches/{chain}/{n}/proof", batch_proof)
    app.router.add_get("/v1/deposits", deposits)
    return app
