"""relayer.watcher.Watcher over a real Outbox on anvil, its handler moving the cursor in a real Store:
confirmed blocks only, the cursor moved only by a handler that succeeded, restarts, backfill and range
splits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from web3.contract import Contract
from web3.types import EventData

from bridge_contracts import anvil, deploy
from bridge_contracts.chain import Chain
from relayer.store import Store, WatchCursor
from relayer.watcher import Finality, Watcher

L1_ID, PEER_ID = 900, 902
USER = anvil.dev_account(5)
TARGET = anvil.dev_account(7).address
INBOX = anvil.dev_account(2)
NAME = "outbox"


@dataclass
class Setup:
    chain: Chain
    outbox: Contract
    store_path: Path
    deployed_at: int  # the block the Outbox's set-up ended in

    def send(self, dest: int = PEER_ID) -> int:
        """Send a message; its nonce."""
        receipt = self.chain.with_signer(USER).send(self.outbox.functions.send(dest, TARGET, b"hi"))
        [event] = self.outbox.events.MessageSent().process_receipt(receipt)
        return int(event["args"]["nonce"])

    def reorg(self, depth: int) -> None:
        """Replace the last `depth` blocks with as many empty ones (their transactions are gone)."""
        response = self.chain.w3.provider.make_request("anvil_reorg", [depth, []])  # type: ignore[arg-type]
        assert "error" not in response, response

    def mine(self, blocks: int = 1) -> None:
        response = self.chain.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]
        assert "error" not in response, response

    @property
    def head(self) -> int:
        return self.chain.w3.eth.block_number


@dataclass
class Recorder:
    """A handler that records the events of each call that succeeded with events, and moves the
    cursor in the store as the daemon's handlers do; the calls with events numbered in `fail` (1 for
    the first, counting failed ones too) raise instead."""

    fail: frozenset[int] = frozenset()
    calls: list[list[EventData]] = field(default_factory=list)
    attempts: int = 0
    store: Store | None = None

    async def __call__(self, events: Sequence[EventData], cursor: WatchCursor) -> None:
        if events:
            self.attempts += 1
            if self.attempts in self.fail:
                raise RuntimeError("handler failed")
            self.calls.append(list(events))
        assert self.store is not None
        self.store.set_cursor(NAME, cursor.block, cursor.block_hash)

    @property
    def nonces(self) -> list[int]:
        return [int(e["args"]["nonce"]) for call in self.calls for e in call]


@pytest.fixture
def setup(chain_a: Chain, tmp_path: Path) -> Setup:
    router = deploy.deploy_asset_router(chain_a)
    outbox = deploy.deploy_outbox(chain_a, router.address, owner=chain_a.signer.address)
    chain_a.send(router.functions.connect(outbox.address, INBOX.address))
    for dest in (L1_ID, PEER_ID):
        chain_a.send(outbox.functions.setDestination(dest, True))
    return Setup(chain_a, outbox, tmp_path / "store.db", chain_a.w3.eth.block_number)


@pytest.fixture
def store(setup: Setup) -> Iterator[Store]:
    with Store(setup.store_path) as s:
        yield s


def watcher(
    setup: Setup, store: Store, handler: Recorder, *, confirmations: int = 0, **kwargs: Any
) -> Watcher:
    kwargs.setdefault("finality", Finality("confirmations", confirmations))
    kwargs.setdefault("start_block", setup.deployed_at)
    kwargs.setdefault("save_every", 1)
    handler.store = store
    return Watcher(NAME, setup.chain, setup.outbox.events.MessageSent, handler, store, **kwargs)


def poll(w: Watcher) -> int:
    return asyncio.run(w.poll())


def test_handles_events_only_once_confirmed(setup: Setup, store: Store) -> None:
    handler = Recorder()
    w = watcher(setup, store, handler, confirmations=2)
    setup.send()
    sent_in = setup.head
    assert sent_in == setup.deployed_at + 1
    assert poll(w) == 0
    assert handler.calls == []
    assert store.cursor(NAME) is None  # no block past the start is confirmed yet
    setup.mine()
    assert poll(w) == 0
    assert handler.calls == []
    assert store.cursor(NAME) == sent_in - 1
    setup.mine()
    assert poll(w) == 1
    [[event]] = handler.calls
    assert event["blockNumber"] == sent_in
    assert event["args"]["nonce"] == 0
    assert event["args"]["message"]["destChainId"] == PEER_ID
    assert store.cursor(NAME) == sent_in
    assert poll(w) == 0  # nothing new, nothing again
    assert len(handler.calls) == 1


def test_the_cursor_moves_only_after_the_handler_succeeded(setup: Setup, store: Store) -> None:
    handler = Recorder(fail=frozenset({1}))
    w = watcher(setup, store, handler)
    setup.send()
    setup.send()
    with pytest.raises(RuntimeError, match="handler failed"):
        poll(w)
    assert store.cursor(NAME) is None
    assert handler.calls == []
    assert poll(w) == 2
    assert handler.nonces == [0, 1]
    assert store.cursor(NAME) == setup.head


def test_a_failure_in_a_later_range_keeps_the_earlier_ranges(setup: Setup, store: Store) -> None:
    setup.send()
    setup.mine(4)
    setup.send()
    # Ranges of 3 blocks from the start block: the cursor may reach the end of the range before the
    # second message's, never past it.
    range_end = setup.deployed_at + 3 * ((setup.head - setup.deployed_at) // 3) - 1
    assert range_end > setup.deployed_at + 2  # the first message's range comes earlier
    handler = Recorder(fail=frozenset({2}))  # the second range's call with events fails
    w = watcher(setup, store, handler, max_range=3)
    with pytest.raises(RuntimeError, match="handler failed"):
        poll(w)
    assert handler.nonces == [0]
    assert store.cursor(NAME) == range_end
    assert poll(w) == 1  # only the failed range again
    assert handler.nonces == [0, 1]
    assert store.cursor(NAME) == setup.head


def test_a_new_watcher_resumes_from_the_stored_cursor(setup: Setup) -> None:
    with Store(setup.store_path) as store:
        before = Recorder()
        assert setup.send() == 0
        assert setup.send() == 1
        assert poll(watcher(setup, store, before)) == 2
        assert before.nonces == [0, 1]
        cursor = store.cursor(NAME)
        assert cursor == setup.head
    assert setup.send() == 2
    with Store(setup.store_path) as reopened:  # the daemon restarted
        after = Recorder()
        assert poll(watcher(setup, reopened, after)) == 1
        assert after.nonces == [2]
        assert all(e["blockNumber"] > cursor for call in after.calls for e in call)
        assert reopened.cursor(NAME) == setup.head


def test_events_emitted_while_not_polling_are_backfilled_in_order(setup: Setup, store: Store) -> None:
    handler = Recorder()
    w = watcher(setup, store, handler)
    assert poll(w) == 0
    for dest in (PEER_ID, L1_ID, PEER_ID, PEER_ID, L1_ID):
        setup.send(dest)
        setup.mine(3)
    assert poll(w) == 5
    assert handler.nonces == [0, 1, 2, 3, 4]
    blocks = [e["blockNumber"] for call in handler.calls for e in call]
    assert blocks == sorted(blocks) and len(set(blocks)) == 5


def test_filters_select_events(setup: Setup, store: Store) -> None:
    handler = Recorder()
    w = watcher(setup, store, handler, filters={"destChainId": L1_ID})
    for dest in (PEER_ID, L1_ID, PEER_ID, L1_ID):
        setup.send(dest)
    assert poll(w) == 2
    assert handler.nonces == [1, 3]


def test_long_ranges_are_split_without_missing_or_repeating(setup: Setup, store: Store) -> None:
    # Messages in consecutive blocks (every range boundary falls next to one), then gaps of 1 to 5.
    for _ in range(4):
        setup.send()
    for gap in (1, 2, 3, 4, 5, 1):
        setup.mine(gap)
        setup.send()
    setup.mine(2)
    handler = Recorder()
    w = watcher(setup, store, handler, max_range=3)
    assert poll(w) == 10
    assert handler.nonces == list(range(10))
    for call in handler.calls:
        blocks = [e["blockNumber"] for e in call]
        assert max(blocks) - min(blocks) < 3  # one call per range of at most 3 blocks
        assert (min(blocks) - setup.deployed_at) // 3 == (max(blocks) - setup.deployed_at) // 3
    assert store.cursor(NAME) == setup.head
    assert poll(w) == 0


def test_split_ranges_respect_confirmations(setup: Setup, store: Store) -> None:
    for _ in range(3):
        setup.send()
        setup.mine(2)
    last_sent = setup.head - 2
    handler = Recorder()
    w = watcher(setup, store, handler, max_range=2, confirmations=3)
    assert poll(w) == 2  # the last message is 2 blocks deep, not 3
    assert store.cursor(NAME) == setup.head - 3
    setup.mine()
    assert poll(w) == 1
    assert handler.nonces == [0, 1, 2]
    assert handler.calls[-1][0]["blockNumber"] == last_sent


def test_ranges_without_events_are_saved_only_every_so_many_blocks(setup: Setup, store: Store) -> None:
    handler = Recorder()
    w = watcher(setup, store, handler, save_every=5)
    assert poll(w) == 0
    first = store.cursor(NAME)
    assert first == setup.head  # the first range is always saved
    setup.mine(3)
    assert poll(w) == 0
    assert store.cursor(NAME) == first  # 3 empty blocks: not written
    setup.send()
    assert poll(w) == 1
    assert store.cursor(NAME) == setup.head  # events: written with them
    setup.mine(5)
    assert poll(w) == 0
    assert store.cursor(NAME) == setup.head  # 5 empty blocks: written


def test_the_nodes_finalized_block_is_the_final_head(setup: Setup, store: Store) -> None:
    handler = Recorder()
    w = watcher(setup, store, handler, finality=Finality("finalized", 0))
    setup.send()
    assert poll(w) == 0  # anvil's finalized block trails its head by two epochs of 32 blocks
    finalized = setup.chain.w3.eth.get_block("finalized")["number"]
    assert w.final_head == finalized < setup.head
    setup.mine(80)
    assert poll(w) == 1
    assert w.health()["final_head"] == setup.chain.w3.eth.get_block("finalized")["number"]


def test_a_reorganisation_above_the_final_head_is_only_noted(setup: Setup, store: Store) -> None:
    handler = Recorder()
    w = watcher(setup, store, handler, confirmations=3)
    setup.mine(3)
    assert poll(w) == 0
    setup.send()  # in the head block, 0 confirmations
    assert poll(w) == 0
    setup.reorg(2)  # the message is gone before it was final
    setup.mine(4)
    assert poll(w) == 0
    assert handler.calls == []
    assert w.last_reorg is not None and not w.last_reorg.deep and w.last_reorg.depth >= 1
    assert store.active_halt(NAME) is None
    assert setup.send() == 0  # the nonce is free again: the replacement is what the watcher reads
    setup.mine(3)
    assert poll(w) == 1 and handler.nonces == [0]


def test_a_reorganisation_below_the_cursor_halts_the_stream(setup: Setup, store: Store) -> None:
    handler = Recorder()
    w = watcher(setup, store, handler)
    setup.mine(3)  # the reorganisation keeps the Outbox's set-up
    setup.send()
    setup.mine(1)
    assert poll(w) == 1
    read_at = store.watch_cursor(NAME)
    assert read_at is not None and read_at.block_hash is not None
    setup.reorg(3)  # deeper than the watcher's 0 confirmations: the message it read is gone
    assert poll(w) == 0
    halt = store.active_halt(NAME)
    assert halt is not None and "reorganisation deeper than finality" in halt.reason
    assert w.halted and w.health()["halted"] and w.last_reorg is not None and w.last_reorg.deep
    setup.send()
    setup.mine(1)
    assert poll(w) == 0  # halted: reads nothing
    assert handler.nonces == [0]
    # The operator sets the cursor back before the reorganised blocks and lifts the halt.
    back = read_at.block - 3
    block = setup.chain.w3.eth.get_block(back)
    store.lift_halt(NAME, "test", cursor=WatchCursor(NAME, back, "0x" + bytes(block["hash"]).hex()))
    assert poll(w) == 1
    assert handler.nonces == [0, 0]  # the replacement, read from the chain as it is now
    assert not w.halted


def test_a_deep_reorganisation_while_stopped_is_found_at_the_start(setup: Setup) -> None:
    with Store(setup.store_path) as store:
        setup.mine(3)
        setup.send()
        assert poll(watcher(setup, store, Recorder())) == 1
    setup.reorg(2)
    setup.mine(2)
    with Store(setup.store_path) as store:
        w = watcher(setup, store, Recorder())
        assert poll(w) == 0
        assert store.active_halt(NAME) is not None


def test_check_canonical_halts_before_anything_is_settled(setup: Setup, store: Store) -> None:
    handler = Recorder()
    w = watcher(setup, store, handler)
    setup.mine(3)
    setup.send()
    assert poll(w) == 1
    assert asyncio.run(w.check_canonical()) is None
    setup.reorg(1)
    reason = asyncio.run(w.check_canonical())
    assert reason is not None and "deeper than finality" in reason
    assert store.active_halt(NAME) is not None


def test_a_chain_rolled_back_below_the_cursor_halts_the_stream(setup: Setup, store: Store) -> None:
    rpc = setup.chain.w3.provider.make_request
    snapshot = rpc("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    setup.send()
    setup.mine(3)
    w = watcher(setup, store, Recorder())
    assert poll(w) == 1
    assert "error" not in rpc("evm_revert", [snapshot])  # type: ignore[arg-type]
    assert poll(w) == 0  # the block read last no longer exists
    halt = store.active_halt(NAME)
    assert halt is not None and "no such block" in halt.reason


def test_check_canonical_checks_each_block_given(setup: Setup, store: Store) -> None:
    w = watcher(setup, store, Recorder())
    setup.mine(3)
    setup.send()
    sent_in = setup.head
    read = "0x" + bytes(setup.chain.w3.eth.get_block(sent_in)["hash"]).hex()
    setup.mine(2)
    assert poll(w) == 1
    assert asyncio.run(w.check_canonical([(sent_in, read)])) is None
    assert asyncio.run(w.check_canonical([(sent_in, "0x" + "00" * 32)])) is not None
    assert store.active_halt(NAME) is not None


def test_a_cursor_without_a_hash_takes_the_chains_at_the_first_poll(setup: Setup, store: Store) -> None:
    store.set_cursor(NAME, setup.deployed_at)  # as a store from before block hashes were kept has it
    w = watcher(setup, store, Recorder())
    assert poll(w) == 0
    saved = store.watch_cursor(NAME)
    assert saved is not None and saved.block_hash is not None
    block = setup.chain.w3.eth.get_block(saved.block)
    assert saved.block_hash == "0x" + bytes(block["hash"]).hex()
