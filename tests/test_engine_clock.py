"""The engine's clock: exact landing times, events due at the target, bad input, same-instant order.

Pinned order within one instant (sim/exchange.py ``on_instant``): prices → triggers (resting
orders the market reached, algo orders) → funding → liquidation.
"""

from __future__ import annotations

import numpy as np
import pytest

from perpsim.sim import trading
from perpsim.sim.clock import MAX_ADVANCE_MS
from perpsim.sim.errors import InvalidInput
from perpsim.sim.exchange import Exchange
from perpsim.sim.journal import expand
from perpsim.sim.scenario import PricePath, Scenario

from engine_helpers import (
    BTC,
    HOUR_MS,
    MINUTE_MS,
    T0,
    check_invariants,
    fund,
    make_exchange,
    of_type,
    profile,
    snapshot,
    types,
)

FUNDING_8H = T0 + 8 * HOUR_MS


def test_advance_lands_exactly_on_the_target() -> None:
    ex = make_exchange()
    assert ex.now_ms == T0
    assert ex.advance(1) == []
    assert ex.now_ms == T0 + 1
    ex.advance(12_345)
    assert ex.now_ms == T0 + 12_346
    ex.advance_until(T0 + 5 * HOUR_MS + 7)
    assert ex.now_ms == T0 + 5 * HOUR_MS + 7
    ex.advance(0)
    assert ex.now_ms == T0 + 5 * HOUR_MS + 7
    ex.advance_until(ex.now_ms)
    assert ex.now_ms == T0 + 5 * HOUR_MS + 7


def test_an_advance_stopping_one_ms_short_of_funding_does_not_settle_it() -> None:
    ex = make_exchange()
    assert ex.advance_until(FUNDING_8H - 1) == []
    assert ex.now_ms == FUNDING_8H - 1
    events = ex.advance(1)
    assert ex.now_ms == FUNDING_8H
    settled = of_type(events, "funding.settled")
    assert [(e.time_ms, e.payload["symbol"]) for e in settled] == [
        (FUNDING_8H, "BTCUSD_PERP"), (FUNDING_8H, "ETHUSD_PERP")]
    # Reaching it again (advance by 0) does not settle it twice.
    assert ex.advance(0) == []
    assert ex.advance_until(FUNDING_8H) == []


def test_events_due_exactly_at_the_target_happen_in_that_advance() -> None:
    ex = make_exchange()
    a = fund(ex, "1")
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 100)
    events = ex.advance_until(FUNDING_8H)
    assert types(events) == ["funding.payment", "funding.settled", "funding.settled"]
    assert all(e.time_ms == FUNDING_8H for e in events)
    # One record per settlement; the payment is a row of its detail, with the record's seq.
    (payment,) = of_type(events, "funding.payment")
    assert payment.payload["account_id"] == a
    assert payment.seq == events[0].seq
    # The returned events are exactly the journal's tail.
    assert list(ex.journal)[-2:] == events


def test_a_long_advance_returns_every_funding_time_in_order() -> None:
    ex = make_exchange()
    events = ex.advance(3 * 24 * HOUR_MS)
    times = [e.time_ms for e in of_type(events, "funding.settled") if e.payload["symbol"] == BTC]
    assert times == [T0 + k * 8 * HOUR_MS for k in range(1, 10)]
    assert ex.now_ms == T0 + 72 * HOUR_MS


BAD_DURATIONS = [-1, -HOUR_MS, 1.0, 0.5, float("nan"), float("inf"), True, False, "1000", None,
                 MAX_ADVANCE_MS + 1]


@pytest.mark.parametrize("ms", BAD_DURATIONS, ids=repr)
def test_bad_advance_raises_and_changes_nothing(ms: object) -> None:
    ex = make_exchange()
    a = fund(ex, "1")
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 100)
    ex.advance(HOUR_MS)
    before = snapshot(ex)
    with pytest.raises(InvalidInput):
        ex.advance(ms)
    assert snapshot(ex) == before
    # The clock still works afterwards, and the next funding is still paid once, on time.
    events = ex.advance_until(FUNDING_8H)
    assert [e.time_ms for e in of_type(events, "funding.payment")] == [FUNDING_8H]


BAD_TARGETS = [T0 + HOUR_MS - 1, T0, 0, -1, float(T0 + 2 * HOUR_MS), float("nan"), True,
               str(T0 + 2 * HOUR_MS), None, T0 + HOUR_MS + MAX_ADVANCE_MS + 1]


@pytest.mark.parametrize("t_ms", BAD_TARGETS, ids=repr)
def test_bad_advance_until_raises_and_changes_nothing(t_ms: object) -> None:
    ex = make_exchange()
    a = fund(ex, "1")
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    ex.advance(HOUR_MS)
    before = snapshot(ex)
    with pytest.raises(InvalidInput):
        ex.advance_until(t_ms)
    assert snapshot(ex) == before
    assert ex.now_ms == T0 + HOUR_MS


def test_a_century_is_the_longest_advance() -> None:
    ex = make_exchange(start_ms=0)
    # Exactly a century is allowed by the check (not run here: it would settle 109,500
    # fundings); one ms more is refused.
    with pytest.raises(InvalidInput, match="century"):
        ex.advance_until(MAX_ADVANCE_MS + 1)
    assert ex.now_ms == 0


def _gap_scenario(at_ms: int, before: float, after: float) -> Scenario:
    """A two-row synthetic path: ``before`` from T0, ``after`` from ``at_ms`` on."""
    path = PricePath(np.array([T0, at_ms]), np.array([before, after]),
                     np.array([before, after]))
    return Scenario("gap", "synthetic", {"BTCUSD": path}, T0, at_ms, 0, "a gap", "test")


def test_scenario_gap_at_a_funding_time_pays_funding_then_liquidates() -> None:
    """Same instant: triggers (a resting bid the gap reaches fills), then funding (paid by every
    position open at that instant, the just-filled one included), then liquidation."""
    ex = Exchange(profile(), _gap_scenario(FUNDING_8H, 60_000.0, 50_000.0), seed=0)
    victim = fund(ex, "1", mode="isolated", leverage=20)
    bidder = fund(ex, "1")
    trading.place_order(ex, victim, BTC, "BUY", "MARKET", 100)
    resting = trading.place_order(ex, bidder, BTC, "BUY", "LIMIT", 10, "55000")
    events = list(expand(ex.advance_until(FUNDING_8H)))  # with the per-account payments
    assert {e.time_ms for e in events} == {FUNDING_8H}
    kinds = types(events)
    fill = next(i for i, e in enumerate(events) if e.type == "order.update"
                and e.payload["order_id"] == resting.order_id and e.payload["execution"] == "TRADE")
    payments = {e.payload["account_id"]: i for i, e in enumerate(events)
                if e.type == "funding.payment"}
    assert fill < payments[bidder]
    assert events[payments[bidder]].payload["position_qty"] == 10
    assert payments[victim] < kinds.index("funding.settled") < kinds.index("margin.call") < \
        kinds.index("liquidation.triggered") < kinds.index("liquidation.completed")
    # The liquidation happened once, although two processes (funding, watcher) reach the instant.
    assert kinds.count("liquidation.triggered") == 1
    assert kinds.count("funding.settled") == 1  # only BTCUSD trades in this scenario
    assert ex.position(victim, BTC).qty_contracts == 0
    check_invariants(ex)


def test_manual_move_at_a_funding_time_after_settlement_does_not_pay_twice() -> None:
    ex = make_exchange()
    victim = fund(ex, "1", mode="isolated", leverage=20)
    ex.advance(MINUTE_MS)
    trading.place_order(ex, victim, BTC, "BUY", "MARKET", 100)
    ex.advance_until(FUNDING_8H)
    events = ex.set_prices(BTC, "50000")
    assert types(events)[:3] == ["prices.set", "margin.call", "liquidation.triggered"]
    assert "funding.payment" not in types(events)
    payments = of_type(ex.journal, "funding.payment")
    assert [(e.time_ms, e.payload["account_id"]) for e in payments] == [(FUNDING_8H, victim)]
    first_liq = next(e.seq for e in ex.journal if e.type.startswith("liquidation."))
    assert payments[0].seq < first_liq
    check_invariants(ex)


def test_resting_order_reached_by_a_manual_move_fills_before_liquidation_in_that_instant() -> None:
    ex = make_exchange()
    ex.advance(MINUTE_MS)
    victim = fund(ex, "1", mode="isolated", leverage=20)
    trading.place_order(ex, victim, BTC, "BUY", "MARKET", 100)
    bidder = fund(ex, "1")
    bid = trading.place_order(ex, bidder, BTC, "BUY", "LIMIT", 5, "56000")
    events = ex.set_prices(BTC, "55000")
    kinds = types(events)
    assert kinds[0] == "prices.set"
    trade = next(i for i, e in enumerate(events)
                 if e.type == "order.update" and e.payload["order_id"] == bid.order_id)
    assert trade < kinds.index("margin.call") < kinds.index("liquidation.triggered")
    assert ex.position(bidder, BTC).qty_contracts == 5
