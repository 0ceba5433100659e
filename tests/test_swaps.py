"""Atomic swaps end to end: bank-a's user swaps bank-a's tokenized gold (X) for bank-b's deposit token
(Y) through both desks, under terms the two daemons agreed over the bus.

Its own devnet (L1, bank-a and bank-b on anvil, Mosquitto), the hub service and both daemons as
processes, all real; `relayer.devnet.swapping` drives the operators (admin APIs) and the user (the
desks). The tests share one network and run in file order.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest

from bridge_contracts.swaps import SwapReason, SwapState, quote
from relayer.devnet.swapping import SwapPair, settled
from relayer.pipeline.swaps import least_window
from tests.test_e2e import ONE, WAIT, Net, network, reconfigured
from tests.test_forced_inclusion import FORCE_AFTER, _force_after, _until

pytestmark = pytest.mark.timeout(900)

PRICE = 2000 * ONE  # Y per X: 2000 deposit tokens per gold
FEE_BPS = 30
WINDOW = least_window(600, 1.0) + 60  # the devnet's priority window, batch.max_wait_seconds 1 s


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    yield from network(tmp_path_factory.mktemp("swaps"), l2=2)


@pytest.fixture(scope="module")
def pair(net: Net) -> SwapPair:
    return SwapPair(net.manifest)


@pytest.fixture(scope="module")
def terms_id(pair: SwapPair) -> str:
    terms = pair.terms(
        window=WINDOW, price_min=1900 * ONE, price_max=2100 * ONE, fee_bps=FEE_BPS, max_amount_x=100 * ONE
    )
    agreed = pair.agree(terms)
    pair.quote(PRICE)
    return agreed


@pytest.fixture(scope="module")
def long_terms_id(pair: SwapPair) -> str:
    """Terms whose window outlasts the clock jumps of the tests (bank-b's clock only goes forward)."""
    terms = pair.terms(window=20 * WINDOW, price_min=1900 * ONE, price_max=2100 * ONE, fee_bps=FEE_BPS)
    return pair.agree(terms)


def _advance(pair: SwapPair, seconds: int) -> None:
    """bank-b's clock `seconds` ahead (its next block)."""
    pair.on_b.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    pair.on_b.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_terms_too_short_for_the_priority_window_are_refused_saying_which_figure(pair: SwapPair) -> None:
    short = pair.terms(window=WINDOW // 2, price_min=ONE, price_max=ONE)
    with pytest.raises(Exception, match=r"window \d+ s is too short: .*L1 priority window 600 s"):
        pair.agree(short)


def test_a_swap_completes_and_every_balance_adds_up(pair: SwapPair, terms_id: str) -> None:
    before = pair.ledger()
    amount_x = 3 * ONE // 2
    expected_y = quote(amount_x, PRICE, FEE_BPS)
    swap_id = pair.initiate(terms_id, amount_x, expected_y)
    (ended,) = pair.wait([swap_id])
    after = pair.ledger()
    assert (ended.on_a.state, ended.on_b.state) == (SwapState.COMPLETED, SwapState.COMPLETED)
    assert ended.on_a.amount_y == ended.on_b.amount_y == expected_y
    assert after["X user"] == before["X user"] - amount_x
    assert after["Y user"] == before["Y user"] + expected_y
    assert after["X held by desk B"] == before["X held by desk B"] + amount_x
    assert after["Y held by desk B"] == before["Y held by desk B"] - expected_y
    assert settled(after) == []


def test_swaps_refund_in_full_each_for_its_reason(net: Net, pair: SwapPair, terms_id: str) -> None:
    before = pair.ledger()
    fair = quote(ONE, PRICE, FEE_BPS)
    slippage = pair.initiate(terms_id, ONE, fair + 1)
    short = pair.initiate(terms_id, 60 * ONE, 1)  # 120,000 Y: more than the desk's 100,000
    pair.wait([slippage, short])
    pair.quote(2500 * ONE)  # outside the band 1900..2100
    outside = pair.initiate(terms_id, ONE, 1)
    pair.wait([outside])
    pair.quote(PRICE)
    for swap_id, reason in ((slippage, SwapReason.SLIPPAGE), (short, SwapReason.INVENTORY_SHORT)):
        on_a, on_b = pair.state(pair.desk_a, swap_id), pair.state(pair.desk_b, swap_id)
        assert (on_a.state, on_a.reason) == (on_b.state, on_b.reason) == (SwapState.REFUNDED, reason)
    assert pair.state(pair.desk_a, outside).reason == SwapReason.PRICE_OUTSIDE_BAND
    after = pair.ledger()
    assert after["X user"] == before["X user"] and after["Y user"] == before["Y user"]
    assert after["X held by desk B"] == before["X held by desk B"]
    assert after["Y held by desk B"] == before["Y held by desk B"]
    assert settled(after) == []

    def stored() -> bool:
        with net.store("bank-a") as store:
            reasons = {s.reason for s in store.swaps(status="refunded")}
        return {"slippage", "inventory-short", "price-outside-band"} <= reasons

    _until("bank-a's store to have the three refunds", stored)


def test_b_down_phase_1_is_forced_through_l1_and_completes_or_refunds_by_its_deadline(
    net: Net, pair: SwapPair, terms_id: str, long_terms_id: str
) -> None:
    before = pair.ledger()
    with reconfigured(net, "bank-a", _force_after(FORCE_AFTER)):
        net.services.daemons["bank-b"].stop()
        expiring = pair.initiate(terms_id, ONE, 1)
        lasting = pair.initiate(long_terms_id, ONE, 1)
        phase_1 = [_phase_1(pair, s) for s in (expiring, lasting)]
        net.wait("bank-a", phase_1, "forced", timeout=FORCE_AFTER + WAIT)
        _advance(pair, 2 * WINDOW)  # past the first swap's deadline on bank-b's clock, not the second's
        net.services.daemons["bank-b"].start()
        ended = pair.wait([expiring, lasting])
    assert [(e.on_a.state, e.on_a.reason) for e in ended] == [
        (SwapState.REFUNDED, SwapReason.EXPIRED),
        (SwapState.COMPLETED, SwapReason.NONE),
    ]
    assert [e.on_b.state for e in ended] == [SwapState.REFUNDED, SwapState.COMPLETED]
    with net.store("bank-b") as store:
        processed = {op.message_id: op.outcome for op in store.priority_ops()}
    assert all(processed.get(key) == "executed" for key in phase_1), processed
    after = pair.ledger()
    assert after["X user"] == before["X user"] - ONE
    assert settled(after) == []


def test_daemons_killed_at_random_instants_during_20_swaps_end_each_swap_once(
    net: Net, pair: SwapPair, long_terms_id: str
) -> None:
    rng = random.Random()
    seed = rng.randrange(2**32)
    print(f"seed {seed}")
    rng.seed(seed)
    before = pair.ledger()
    swaps = []
    for i in range(20):
        minimum = quote(ONE, PRICE, FEE_BPS) + (1 if i % 4 == 0 else 0)  # every 4th refunds (slippage)
        swaps.append(pair.initiate(long_terms_id, ONE, minimum))
    kills = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and kills < 6:
        time.sleep(rng.uniform(1.0, 8.0))
        victim = net.services.daemons[rng.choice(["bank-a", "bank-b"])]
        victim.kill()
        kills += 1
        victim.start()
    ended = pair.wait(swaps, timeout=2 * WAIT)
    for i, e in enumerate(ended):
        want = SwapState.REFUNDED if i % 4 == 0 else SwapState.COMPLETED
        assert e.on_a.state == e.on_b.state == want, (seed, i, e.on_a.reason)
    after = pair.ledger()
    completed = sum(1 for e in ended if e.on_a.state == SwapState.COMPLETED)
    assert after["X user"] == before["X user"] - completed * ONE, seed
    assert after["Y user"] == before["Y user"] + completed * quote(ONE, PRICE, FEE_BPS), seed
    assert settled(after) == [], seed
    _until("the daemons' stores to have every swap ended", lambda: _stored_ended(net, swaps))


def _phase_1(pair: SwapPair, swap_id: bytes) -> str:
    return f"{pair.a['chain_id']}:{pair.state(pair.desk_a, swap_id).message_nonce}"


def _stored_ended(net: Net, swaps: list[bytes]) -> bool:
    for name in ("bank-a", "bank-b"):
        with net.store(name) as store:
            statuses = {s.swap_id: s.status for s in store.swaps()}
        if any(statuses.get("0x" + s.hex()) not in ("completed", "refunded") for s in swaps):
            return False
    return True
