"""A client of the hub service's HTTP API (hub/api.py), for the daemons and the CLI.

    async with HubClient("http://127.0.0.1:8700") as hub:
        proof = await hub.batch_proof(901, 4)

Every failure (unreachable, an error status, an answer that is not JSON) raises HubClientError naming
the URL and the reason; an error answer's {"error": ...} text is the reason.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from hub.indexer import AggregatedProof


class HubClientError(RuntimeError):
    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"hub service {url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


def _bytes32(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


class HubClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str, **params: int | None) -> Any:
        """GET `path` with the given query parameters (None ones left out); the decoded JSON."""
        query = {name: str(value) for name, value in params.items() if value is not None}
        url = self.base_url + path
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.get(url, params=query) as response:
                body = await response.read()
                status = response.status
                shown = str(response.url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HubClientError(url, f"unreachable: {str(exc) or type(exc).__name__}") from None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise HubClientError(shown, f"HTTP {status}, not JSON: {body[:80]!r}", status) from None
        if status != 200:
            reason = data.get("error") if isinstance(data, dict) else None
            raise HubClientError(shown, f"HTTP {status}: {reason or body[:80]!r}", status)
        return data

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.get("/v1/status")
        return result

    async def chains(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get("/v1/chains")
        return result

    async def balances(self, chain_id: int) -> dict[str, int]:
        """asset id (0x-hex) -> balance."""
        rows = await self.get(f"/v1/chains/{chain_id}/balances")
        return {row["asset_id"]: int(row["balance"]) for row in rows}

    async def batches(
        self, chain_id: int, from_batch: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get(
            f"/v1/chains/{chain_id}/batches", **{"from": from_batch, "limit": limit}
        )
        return result

    async def roots(self, from_size: int = 1, limit: int | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get("/v1/roots", **{"from": from_size, "limit": limit})
        return result

    async def proof(self, leaf_index: int, size: int | None = None) -> AggregatedProof:
        return _proof(await self.get("/v1/proof", leaf_index=leaf_index, size=size))

    async def batch_proof(self, chain_id: int, batch_number: int, size: int | None = None) -> AggregatedProof:
        return _proof(await self.get(f"/v1/batches/{chain_id}/{batch_number}/proof", size=size))

    async def deposits(
        self, dest_chain_id: int, from_nonce: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get(
            "/v1/deposits", **{"dest": dest_chain_id, "from": from_nonce, "limit": limit}
        )
        return result


def _proof(data: dict[str, Any]) -> AggregatedProof:
    return AggregatedProof(
        leaf_index=data["leaf_index"],
        size=data["size"],
        leaf=_bytes32(data["leaf"]),
        root=_bytes32(data["root"]),
        siblings=[_bytes32(s) for s in data["siblings"]],
    )
