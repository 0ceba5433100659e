"""The daemon's swap steps without chains: terms as the store takes them through proposal, offer and
acceptance, swaps as the desk watcher records them, the metrics over them, the W rule, when a swap's
phase 1 is forced, and which messages an operator may not bounce."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bridge_contracts.messages import Message
from bridge_contracts.swaps import Swap, SwapReason, SwapState, Terms, quote, swap_id
from relayer.config import PeerConfig, load
from relayer.metrics import Metrics
from relayer.pipeline.swaps import RESULT_SELECTOR, bounce_refusal, force_at, least_window
from relayer.store import Store, StoreError, SwapRecord, SwapSide, SwapStatus, TermsStatus, WatchCursor

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DESK_A = "0x00000000000000000000000000000000000000d1"
DESK_B = "0x00000000000000000000000000000000000000d2"
USER = "0x00000000000000000000000000000000000000aa"


def sample_terms(**changes: int) -> Terms:
    values: dict[str, int] = {
        "price_min": 1900 * 10**18,
        "price_max": 2100 * 10**18,
        "fee_bps": 30,
        "min_amount_x": 1,
        "max_amount_x": 10**24,
        "last_start": int(time.time()) + 3600,
        "window": 1200,
    } | changes
    return Terms(901, DESK_A, 902, DESK_B, b"\x01" * 32, b"\x02" * 32, **values)


def test_terms_round_trip_as_json_and_bad_fields_say_which() -> None:
    terms = sample_terms()
    assert Terms.from_json(terms.to_json()) == terms
    assert terms.terms_id == Terms.from_json(terms.to_json()).terms_id
    for field, value, error in [
        ("price_min", "x", "terms.price_min: invalid literal"),
        ("desk_a", "0x12", "terms.desk_a: not an address"),
        ("asset_x", "0x01", "terms.asset_x: not 32 bytes"),
        ("window", -1, "terms.window: negative"),
        ("fee_bps", True, "terms.fee_bps: not an integer"),
    ]:
        with pytest.raises(ValueError, match=error):
            Terms.from_json(terms.to_json() | {field: value})
    with pytest.raises(ValueError, match="empty"):
        Terms.from_json(sample_terms(price_min=3000 * 10**18).to_json())
    with pytest.raises(ValueError, match="unknown"):
        Terms.from_json(terms.to_json() | {"colour": "red"})
    assert quote(10**18, 2000 * 10**18, 30) == 1994 * 10**18


def test_terms_go_from_proposed_to_registered_and_an_offer_waits_for_its_operator(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        ours = sample_terms()
        proposed = store.propose_terms(ours, "bank-b", SwapSide.A, "0xa1")
        assert (proposed.status, proposed.sent_at) == (TermsStatus.PROPOSED, None)
        store.terms_sent(proposed.terms_id)
        assert store.terms_accepted(proposed.terms_id, "0xb1")
        assert not store.terms_accepted(proposed.terms_id, "0xb1")  # once
        accepted = store.terms(proposed.terms_id)
        assert accepted is not None and accepted.status == TermsStatus.ACCEPTED
        assert (accepted.our_signature, accepted.their_signature) == ("0xa1", "0xb1")
        store.terms_registered(proposed.terms_id, "0xtx")
        assert store.swap_terms(status=TermsStatus.REGISTERED)[0].tx == "0xtx"

        theirs = sample_terms(window=5000)
        offered = store.offer_terms(theirs, "bank-b", SwapSide.A, "0xb2")
        assert offered.status == TermsStatus.OFFERED and offered.our_signature is None
        with pytest.raises(StoreError, match="not offered"):
            store.accept_terms(proposed.terms_id, "0xa2")
        accepted = store.accept_terms(offered.terms_id, "0xa2")
        assert (accepted.status, accepted.sent_at) == (TermsStatus.ACCEPTED, None)  # to be sent

        refused = sample_terms(window=7)
        store.refuse_terms(refused, "bank-b", SwapSide.A, "window 7 s is too short")
        (row,) = [t for t in store.swap_terms() if t.terms.window == 7]
        assert (row.status, row.error) == (TermsStatus.REFUSED, "window 7 s is too short")
        assert store.terms_accepted(row.terms_id, "0xb3") is False


def _record(store: Store, nonce: int, state: SwapState, reason: SwapReason, block: int) -> None:
    swap = Swap(sample_terms().terms_id, USER, 10**18, 1, 0, int(time.time()) + 600, nonce, state, reason)
    sid = "0x" + swap_id(901, DESK_A, nonce).hex()
    side = SwapSide.A if state == SwapState.INITIATED else SwapSide.B
    store.record_swaps(
        [SwapRecord(sid, side, "bank-b", f"901:{nonce}", swap, block)], cursor=("swap-desk", block)
    )


def test_swaps_follow_the_desk_and_the_metrics_count_them(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        _record(store, 0, SwapState.INITIATED, SwapReason.NONE, 5)
        _record(store, 1, SwapState.INITIATED, SwapReason.NONE, 5)
        _record(store, 0, SwapState.REFUNDED, SwapReason.SLIPPAGE, 9)
        assert store.watch_cursor("swap-desk") == WatchCursor("swap-desk", 9)
        first = store.swap("0x" + swap_id(901, DESK_A, 0).hex())
        assert first is not None and (first.side, first.status, first.reason) == ("a", "refunded", "slippage")
        assert list(store.swap_deadlines()) == ["901:1"]
        assert [s.status for s in store.swaps(status=SwapStatus.INITIATED)] == [SwapStatus.INITIATED]
        metrics = Metrics()
        metrics.refresh_from_store(store)
        text = metrics.render().decode()
    assert 'xrelay_swaps{side="a",status="refunded"} 1.0' in text
    assert 'xrelay_swaps{side="a",status="initiated"} 1.0' in text
    assert 'xrelay_swaps_refunded{reason="slippage"} 1.0' in text
    assert "xrelay_swap_nearest_deadline_seconds 5" in text  # about 600 s left


def test_w_must_cover_the_priority_window_proving_and_settlement() -> None:
    assert least_window(600, 1.0) == 1062  # (600 + 1 + 120 + 30) * 4/3 + 60, rounded up
    assert least_window(4 * 86400, 5.0) > 4 * 86400 * 4 // 3


def test_a_swaps_phase_1_is_forced_by_a_quarter_of_its_time_to_deadline() -> None:
    peer = PeerConfig(name="bank-b", chain_id=902, force_after_seconds=21600)
    sent = 1000.0
    at, why = force_at(sent, peer, None)
    assert at == sent + 21600 and "force_after_seconds (21600 s)" in why
    at, why = force_at(sent, peer, int(sent) + 1200)
    assert at == sent + 300 and "1/4 of its swap's time to deadline" in why
    assert force_at(sent, peer, int(sent) + 10**6)[0] == sent + 21600  # force_after comes first


def test_a_swap_result_to_this_desk_is_never_bounced() -> None:
    config = load(CONFIGS / "bank-a.toml")
    desk = "0x00000000000000000000000000000000000000d3"
    config = config.model_copy(
        update={
            "chain": config.chain.model_copy(
                update={"contracts": config.chain.contracts.model_copy(update={"swap_desk": desk})}
            )
        }
    )
    result = Message(902, 901, 0, DESK_B, desk, b"\x02" * 32, 5, RESULT_SELECTOR + bytes(128), b"")
    assert "never bounced" in (bounce_refusal(config, result) or "")
    phase_1 = Message(902, 901, 1, DESK_B, desk, b"\x02" * 32, 5, b"\x12\x34\x56\x78" + bytes(64), b"")
    assert bounce_refusal(config, phase_1) is None
    elsewhere = Message(902, 901, 2, DESK_B, USER, b"\x02" * 32, 5, RESULT_SELECTOR + bytes(128), b"")
    assert bounce_refusal(config, elsewhere) is None
