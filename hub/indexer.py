"""Follows the L1 Hub's events into the hub's store and keeps the aggregated tree.

Every `sync` reads the Hub's logs (eth_getLogs, at most `block_range` blocks per request) from the
block after the cursor up to `confirmations` blocks below the head, and stores each range in one
transaction together with the new cursor: a restart resumes after the last range stored, and a
fresh store backfills from `start_block` (the Hub's deployment block). RPC requests go to the first
of `rpc_urls` that answers (bridge_contracts.chain.FailoverProvider), in a worker thread; the store
and the tree are only touched on the event loop, between awaits, so the API always sees a state
that was committed.

The tree (proofs.merkle.KeccakTree) is rebuilt from the stored leaves at start. After every
`AggregatedLeafAppended` the indexer checks that its own root equals the root the Hub emitted, and
stops with `AggregatedRootMismatch` if not: a proof served from a tree that disagrees with L1 would
be useless to everyone. A reorganisation deeper than `confirmations` (the cursor's block hash
changed) also stops it (`ReorgTooDeep`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from eth_utils.abi import event_abi_to_log_topic
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ProviderConnectionError, Web3RPCError
from web3.types import FilterParams, LogReceipt

from bridge_contracts import artifacts
from bridge_contracts.chain import FailoverProvider
from bridge_contracts.messages import Message
from hub.store import HubStore
from proofs.merkle import AGGREGATED_TREE_DEPTH, KeccakTree, MerkleError

log = logging.getLogger("xrelay.hub.indexer")

T = TypeVar("T")

INDEXED_EVENTS = (
    "ChainRegistered",
    "OperatorChanged",
    "VerifierSet",
    "AssetRegistered",
    "BatchCommitted",
    "BalanceChanged",
    "AggregatedLeafAppended",
    "DepositQueued",
    "WithdrawalFinalized",
)


class IndexerError(RuntimeError):
    """The indexer cannot go on: the message says why and what to do."""


class AggregatedRootMismatch(IndexerError):
    """The tree rebuilt here disagrees with the root the Hub emitted."""


class ReorgTooDeep(IndexerError):
    """A block already indexed is no longer on the L1's chain."""


class ProofUnavailable(ValueError):
    """No such leaf, or no such tree size, in what was indexed so far."""


@dataclass(frozen=True)
class RootUpdate:
    """The aggregated tree held `size` leaves with `root` at the end of L1 block `block`."""

    size: int
    root: bytes
    block: int


@dataclass(frozen=True)
class AggregatedProof:
    leaf_index: int
    size: int
    leaf: bytes
    root: bytes
    siblings: list[bytes]


def hex32(value: bytes | int) -> str:
    """A hash or field element as 0x + 64 hex digits."""
    raw = value.to_bytes(32, "big") if isinstance(value, int) else bytes(value)
    return "0x" + raw.hex()


def message_json(message: Message) -> dict[str, Any]:
    """A message as the API serves it: amount in decimal, bytes in 0x-hex."""
    return {
        "source_chain_id": message.source_chain_id,
        "dest_chain_id": message.dest_chain_id,
        "nonce": message.nonce,
        "sender": message.sender,
        "target": message.target,
        "asset_id": hex32(message.asset_id),
        "amount": str(message.amount),
        "data": "0x" + message.data.hex(),
        "asset_data": "0x" + message.asset_data.hex(),
    }


class Indexer:
    def __init__(
        self,
        store: HubStore,
        rpc_urls: Sequence[str],
        hub: str,
        *,
        l1_chain_id: int,
        confirmations: int = 1,
        start_block: int = 0,
        block_range: int = 2000,
        request_timeout: float = 30.0,
        tree_depth: int = AGGREGATED_TREE_DEPTH,
    ) -> None:
        self.store = store
        self.hub = Web3.to_checksum_address(hub)
        self.l1_chain_id = l1_chain_id
        self.confirmations = confirmations
        self.start_block = start_block
        self.block_range = block_range
        self.provider = FailoverProvider(rpc_urls, timeout=request_timeout)
        self.w3 = Web3(self.provider)
        self.contract: Contract = self.w3.eth.contract(address=self.hub, abi=artifacts.load("Hub").abi)
        self._events = {
            bytes(event_abi_to_log_topic(entry)): entry["name"]
            for entry in self.contract.abi
            if entry["type"] == "event" and entry["name"] in INDEXED_EVENTS
        }
        self.tree = KeccakTree(tree_depth)
        self._started = False

    # --- state ------------------------------------------------------------------------------------

    @property
    def indexed_block(self) -> int | None:
        cursor = self.store.cursor()
        return None if cursor is None else cursor[0]

    @property
    def aggregated_size(self) -> int:
        return self.tree.size

    @property
    def aggregated_root(self) -> bytes:
        return self.tree.root

    def latest_root(self) -> RootUpdate | None:
        """The current root and the block that made it; None for the empty tree."""
        rows = self.store.roots(self.tree.size, 1)
        if not rows:
            return None
        return RootUpdate(rows[0]["size"], bytes.fromhex(rows[0]["root"][2:]), rows[0]["block"])

    def proof(self, leaf_index: int, size: int | None = None) -> AggregatedProof:
        """The path of leaf `leaf_index` to the root the tree had at `size` leaves (default: now)."""
        size = self.tree.size if size is None else size
        if not 0 <= size <= self.tree.size:
            raise ProofUnavailable(f"size {size} is beyond the {self.tree.size} leaves indexed so far")
        if not 0 <= leaf_index < size:
            raise ProofUnavailable(f"no leaf {leaf_index} in a tree of {size} leaves")
        try:
            siblings = self.tree.proof(leaf_index, size)
        except MerkleError as exc:
            raise ProofUnavailable(str(exc)) from None
        return AggregatedProof(
            leaf_index, size, self.tree.leaf(leaf_index), self.tree.root_at(size), siblings
        )

    # --- following the Hub ------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the RPC endpoints lead to the configured L1 and Hub; rebuild the tree from the store."""
        try:
            chain_id = await self._rpc(lambda w3: w3.eth.chain_id)
        except ProviderConnectionError as exc:
            raise IndexerError(f"cannot reach the L1: {exc}") from None
        if chain_id != self.l1_chain_id:
            raise IndexerError(
                f"the L1 RPC ({self.provider.current_url}) serves chain {chain_id}, not {self.l1_chain_id}"
            )
        code = await self._rpc(lambda w3: w3.eth.get_code(self.hub))
        if not code:
            raise IndexerError(f"there is no contract at the Hub address {self.hub} on chain {chain_id}")
        self.store.bind(self.l1_chain_id, self.hub)
        self._load_tree()
        self._started = True
        log.info(
            "event=indexer_started hub=%s l1_chain_id=%d indexed_block=%s aggregated_size=%d",
            self.hub,
            self.l1_chain_id,
            self.indexed_block,
            self.tree.size,
        )

    def _load_tree(self) -> None:
        rows = self.store.leaves()
        tree = KeccakTree(self.tree.depth)
        for row in rows:
            if row["leaf_index"] != tree.size:
                raise IndexerError(f"{self.store.path}: leaf {tree.size} is missing from the store")
            tree.append(bytes.fromhex(row["leaf"][2:]))
        if rows and hex32(tree.root) != rows[-1]["root"]:
            raise AggregatedRootMismatch(
                f"{self.store.path}: the stored leaves give root {hex32(tree.root)}, but the Hub's root "
                f"after leaf {tree.size - 1} was {rows[-1]['root']}"
            )
        self.tree = tree

    async def sync(self) -> list[RootUpdate]:
        """Index every confirmed block not indexed yet. Returns the root at the end of each block that
        appended leaves, oldest first."""
        if not self._started:
            await self.start()
        head = await self._rpc(lambda w3: w3.eth.block_number)
        safe = head - self.confirmations
        await self._check_cursor()
        updates: list[RootUpdate] = []
        block_range = self.block_range
        while (first := self._next_block()) <= safe:
            last = min(safe, first + block_range - 1)
            try:
                logs = await self._get_logs(first, last)
            except Web3RPCError as exc:  # an answer, not an outage: most often "too many results"
                if block_range == 1:
                    raise
                block_range = max(1, block_range // 2)
                log.warning(
                    "event=get_logs_refused from=%d to=%d error=%r retry_range=%d",
                    first,
                    last,
                    str(exc),
                    block_range,
                )
                continue
            updates += self._apply(logs, last, await self._block_hash(last))
        return updates

    async def run(
        self,
        poll_interval: float = 2.0,
        on_roots: Callable[[list[RootUpdate]], Awaitable[None]] | None = None,
    ) -> None:
        """Sync forever, every `poll_interval` seconds. An RPC outage (every endpoint down) is logged
        and retried; an IndexerError (root mismatch, deep reorg, wrong chain) is raised."""
        while True:
            try:
                updates = await self.sync()
            except IndexerError:
                raise
            except Exception as exc:  # the RPC endpoints: down, throttling, answering garbage
                log.warning("event=sync_failed error=%r retry_in=%.1fs", str(exc), poll_interval)
            else:
                if updates and on_roots is not None:
                    await on_roots(updates)
            await asyncio.sleep(poll_interval)

    def _next_block(self) -> int:
        indexed = self.indexed_block
        return self.start_block if indexed is None else indexed + 1

    async def _check_cursor(self) -> None:
        cursor = self.store.cursor()
        if cursor is None:
            return
        block, block_hash = cursor
        now = await self._block_hash(block)
        if now != block_hash:
            raise ReorgTooDeep(
                f"L1 block {block} was indexed with hash {block_hash} but is now {now}: a "
                f"reorganisation deeper than confirmations={self.confirmations}. Raise [l1] confirmations "
                f"and index again into a new store"
            )

    async def _get_logs(self, first: int, last: int) -> list[LogReceipt]:
        params: FilterParams = {"address": self.hub, "fromBlock": first, "toBlock": last}
        logs = await self._rpc(lambda w3: w3.eth.get_logs(params))
        return sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"]))

    async def _block_hash(self, number: int) -> str:
        block = await self._rpc(lambda w3: w3.eth.get_block(number))
        return hex32(bytes(block["hash"]))

    async def _rpc(self, call: Callable[[Web3], T]) -> T:
        return await asyncio.to_thread(call, self.w3)

    # --- applying events --------------------------------------------------------------------------

    def _apply(self, logs: Iterable[LogReceipt], last_block: int, last_hash: str) -> list[RootUpdate]:
        """Store one range's events and the cursor in one transaction; append the new leaves to the
        tree, checking each root. If anything fails, the store keeps the previous range and the tree
        is rebuilt from it."""
        size_before = self.tree.size
        updates: dict[int, RootUpdate] = {}
        try:
            with self.store.transaction():
                for entry in logs:
                    name = self._events.get(bytes(entry["topics"][0])) if entry["topics"] else None
                    if name is None:
                        continue  # ownership transfers and the like
                    event = self.contract.events[name]().process_log(entry)
                    self._store_event(name, event["args"], entry)
                    if name == "AggregatedLeafAppended":
                        block = entry["blockNumber"]
                        updates[block] = RootUpdate(self.tree.size, self.tree.root, block)
                self.store.set_cursor(last_block, last_hash)
        except BaseException:
            if self.tree.size != size_before:
                self._load_tree()
            raise
        if updates:
            log.info(
                "event=leaves_indexed to_block=%d aggregated_size=%d aggregated_root=%s",
                last_block,
                self.tree.size,
                hex32(self.tree.root),
            )
        return list(updates.values())

    def _store_event(self, name: str, args: Mapping[str, Any], entry: LogReceipt) -> None:
        where = {"tx": hex32(bytes(entry["transactionHash"])), "block": entry["blockNumber"]}
        store = self.store
        if name == "ChainRegistered":
            store.upsert(
                "chains",
                {
                    "chain_id": args["chainId"],
                    "operator": Web3.to_checksum_address(args["operator"]),
                    "validium": int(args["validium"]),
                    "next_batch": 0,
                    "outbox_hash": hex32(0),
                    "block": entry["blockNumber"],
                },
            )
        elif name == "OperatorChanged":
            store.update_chain(args["chainId"], operator=Web3.to_checksum_address(args["operator"]))
        elif name == "VerifierSet":
            store.upsert(
                "verifiers",
                {
                    "chain_id": args["chainId"],
                    "capacity": args["capacity"],
                    "verifier": Web3.to_checksum_address(args["verifier"]),
                    "block": entry["blockNumber"],
                },
            )
        elif name == "AssetRegistered":
            store.upsert(
                "assets",
                {
                    "asset_id": hex32(args["assetId"]),
                    "origin_chain_id": args["originChainId"],
                    "origin_token": Web3.to_checksum_address(args["originToken"]),
                    "block": entry["blockNumber"],
                },
            )
        elif name == "BalanceChanged":
            store.upsert(
                "balances",
                {
                    "chain_id": args["chainId"],
                    "asset_id": hex32(args["assetId"]),
                    "balance": str(args["balance"]),
                    "block": entry["blockNumber"],
                },
            )
        elif name == "BatchCommitted":
            store.upsert(
                "batches",
                {
                    "chain_id": args["chainId"],
                    "batch_number": args["batchNumber"],
                    "count": args["count"],
                    "h_end": hex32(args["hEnd"]),
                    "batch_root": hex32(args["batchRoot"]),
                    "depth": args["depth"],
                    "leaf_index": args["leafIndex"],
                    "aggregated_root": hex32(args["aggregatedRoot"]),
                }
                | where,
            )
            store.update_chain(
                args["chainId"], next_batch=args["batchNumber"] + 1, outbox_hash=hex32(args["hEnd"])
            )
        elif name == "AggregatedLeafAppended":
            self._append(args["leafIndex"], bytes(args["leaf"]), bytes(args["root"]))
            store.upsert(
                "leaves",
                {"leaf_index": args["leafIndex"], "leaf": hex32(args["leaf"]), "root": hex32(args["root"])}
                | where,
            )
        elif name == "DepositQueued":
            message = Message.from_event(args["message"])
            store.upsert(
                "deposits",
                {
                    "nonce": args["nonce"],
                    "dest_chain_id": args["destChainId"],
                    "leaf": hex32(args["leaf"]),
                    "leaf_index": args["leafIndex"],
                    "aggregated_root": hex32(args["aggregatedRoot"]),
                    "message": orjson.dumps(message_json(message)).decode(),
                }
                | where,
            )
        elif name == "WithdrawalFinalized":
            store.upsert(
                "withdrawals",
                {
                    "id": hex32(args["id"]),
                    "source_chain_id": args["sourceChainId"],
                    "nonce": args["nonce"],
                    "target": Web3.to_checksum_address(args["target"]),
                    "amount": str(args["amount"]),
                }
                | where,
            )

    def _append(self, leaf_index: int, leaf: bytes, root: bytes) -> None:
        if leaf_index != self.tree.size:
            raise IndexerError(
                f"the Hub appended leaf {leaf_index} but the indexer holds {self.tree.size} leaves: "
                "events were missed; index again into a new store"
            )
        self.tree.append(leaf)
        if self.tree.root != root:
            log.critical(
                "event=aggregated_root_mismatch leaf_index=%d leaf=%s hub_root=%s indexer_root=%s",
                leaf_index,
                hex32(leaf),
                hex32(root),
                hex32(self.tree.root),
            )
            raise AggregatedRootMismatch(
                f"after leaf {leaf_index} ({hex32(leaf)}) the Hub's aggregated root is {hex32(root)} but the "
                f"indexer's tree gives {hex32(self.tree.root)}: its proofs would not verify; stopping"
            )
