"""Funding through the engine: when it settles, how much, who pays, which rate (mechanics §4).

Hand numbers: with the perp equal to the index the premium is 0, so the template gives
F = 0 + clamp(0.01 % − 0, ±0.05 %) = 0.01 %. A position of N USD then pays N / mark · F.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from perpsim.sim import trading
from perpsim.sim.exchange import Exchange
from perpsim.sim.journal import Event
from perpsim.sim.ledger import isolated_account, wallet_account
from perpsim.sim.scenario import load_scenario

from engine_helpers import (
    BTC,
    DAY_MS,
    ETH,
    HOUR_MS,
    MINUTE_MS,
    T0,
    XBT,
    XBT_PRICES,
    check_invariants,
    fr,
    fund,
    make_exchange,
    of_type,
    profile,
    q,
)

RATE_FLAT = Decimal("0.0001")



def _payments(events: list[Event] | object, account_id: str) -> list[Event]:
    return [e for e in of_type(events, "funding.payment")  # type: ignore[arg-type]
            if e.payload["account_id"] == account_id]


def _settled(events: object, symbol: str = BTC) -> list[Event]:
    return [e for e in of_type(events, "funding.settled")  # type: ignore[arg-type]
            if e.payload["symbol"] == symbol]


def test_binance_settles_at_00_08_16_utc_exactly() -> None:
    ex = make_exchange()
    events = ex.advance_until(T0 + 2 * DAY_MS)
    hours = [(e.time_ms - T0) // HOUR_MS for e in _settled(events)]
    assert hours == [8, 16, 24, 32, 40, 48]
    assert all((e.time_ms - T0) % (8 * HOUR_MS) == 0 for e in _settled(events))
    assert [e.time_ms for e in _settled(events, ETH)] == [e.time_ms for e in _settled(events)]
    assert {e.payload["source"] for e in _settled(events)} == {"premium_window_just_ended"}


def test_bitmex_settles_at_04_12_20_utc_exactly() -> None:
    ex = make_exchange("bitmex_xbtusd", manual_prices=XBT_PRICES)
    events = ex.advance_until(T0 + DAY_MS + 4 * HOUR_MS)
    hours = [(e.time_ms - T0) // HOUR_MS for e in _settled(events, XBT)]
    assert hours == [4, 12, 20, 28]
    assert all(e.time_ms % HOUR_MS == 0 for e in _settled(events, XBT))


def test_next_funding_time_is_the_next_slot() -> None:
    ex = make_exchange()
    assert ex.next_funding_time_ms(BTC) == T0 + 8 * HOUR_MS
    ex.advance_until(T0 + 8 * HOUR_MS - 1)
    assert ex.next_funding_time_ms(BTC) == T0 + 8 * HOUR_MS
    ex.advance(1)
    assert ex.next_funding_time_ms(BTC) == T0 + 16 * HOUR_MS
    bitmex = make_exchange("bitmex_xbtusd", manual_prices=XBT_PRICES)
    assert bitmex.next_funding_time_ms(XBT) == T0 + 4 * HOUR_MS


def test_flat_premium_longs_pay_shorts_n_over_mark_times_rate() -> None:
    ex = make_exchange()
    ex.advance(MINUTE_MS)
    long_ = fund(ex, "1", mode="isolated", leverage=10)
    short = fund(ex, "1")
    trading.place_order(ex, long_, BTC, "BUY", "MARKET", 100)
    trading.place_order(ex, short, BTC, "SELL", "MARKET", 100)
    iso_before = ex.isolated_wallet(long_, BTC)
    wallet_before = ex.wallet_balance(short, "BTC")
    events = ex.advance_until(T0 + 8 * HOUR_MS)
    settled = _settled(events)[0]
    assert Decimal(settled.payload["rate"]) == RATE_FLAT
    assert Decimal(settled.payload["mark"]) == 60_000
    # N / mark · F = 10,000 / 60,000 · 0.0001 = 0.0000166666… → 0.00001667 (half-even).
    expected = q(Fraction(10_000, 60_000) * fr(RATE_FLAT))
    assert expected == Decimal("0.00001667")
    [paid] = _payments(events, long_)
    [received] = _payments(events, short)
    assert Decimal(paid.payload["amount"]) == -expected
    assert Decimal(received.payload["amount"]) == expected
    # The isolated long pays from its isolated margin, the cross short receives in its wallet.
    assert ex.isolated_wallet(long_, BTC) == iso_before - expected
    assert ex.wallet_balance(short, "BTC") == wallet_before + expected
    assert Decimal(settled.payload["paid"]) == expected
    assert Decimal(settled.payload["received"]) == expected
    assert settled.payload["positions"] == 2
    check_invariants(ex)


def test_discount_makes_funding_negative_shorts_pay_at_the_cap() -> None:
    ex = make_exchange()
    ex.advance(MINUTE_MS)
    long_ = fund(ex, "1")
    short = fund(ex, "1")
    trading.place_order(ex, long_, BTC, "BUY", "MARKET", 100)
    trading.place_order(ex, short, BTC, "SELL", "MARKET", 100)
    ex.advance(MINUTE_MS)
    ex.set_prices(BTC, "60000", "59400")  # the perp 1 % under the index
    events = ex.advance_until(T0 + 8 * HOUR_MS)
    settled = _settled(events)[0]
    # P̄ ≈ −1 %: F = P̄ + 0.05 % ≈ −0.95 %, clamped to the −0.3 % cap of BTCUSD_PERP.
    assert Decimal(settled.payload["rate"]) == Decimal("-0.003")
    # mark = median(P1 = index, P2 = index + basis = 59,400, last = book centre 59,400).
    assert Decimal(settled.payload["mark"]) == 59_400
    expected = q(Fraction(10_000, 59_400) * Fraction(3, 1000))
    assert expected == Decimal("0.00050505")
    assert Decimal(_payments(events, short)[0].payload["amount"]) == -expected
    assert Decimal(_payments(events, long_)[0].payload["amount"]) == expected
    check_invariants(ex)


def test_funding_is_paid_on_eth_in_eth() -> None:
    ex = make_exchange()
    ex.advance(MINUTE_MS)
    a = ex.create_account({"ETH": "10"}).account_id
    trading.place_order(ex, a, ETH, "SELL", "MARKET", 300)  # 3,000 USD
    before = ex.wallet_balance(a, "ETH")
    events = ex.advance_until(T0 + 8 * HOUR_MS)
    [payment] = _payments(events, a)
    # 3,000 / 3,000 · 0.0001 = 0.0001 ETH, received by the short.
    assert payment.payload["coin"] == "ETH"
    assert Decimal(payment.payload["amount"]) == Decimal("0.0001")
    assert ex.wallet_balance(a, "ETH") == before + Decimal("0.0001")


@pytest.mark.parametrize(("open_at", "pays"), [
    (T0 + 8 * HOUR_MS - 1, True),
    (T0 + 8 * HOUR_MS, False),  # opened after the advance that settled 08:00
    (T0 + 8 * HOUR_MS + 1, False),
])
def test_only_positions_open_at_the_funding_instant_pay(open_at: int, pays: bool) -> None:
    ex = make_exchange()
    a = fund(ex, "1")
    ex.advance_until(open_at)
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    events = ex.advance_until(T0 + 16 * HOUR_MS)
    times = [e.time_ms for e in _payments(events, a)]
    assert times == ([T0 + 8 * HOUR_MS] if pays else []) + [T0 + 16 * HOUR_MS]


def test_a_position_closed_before_the_funding_time_does_not_pay() -> None:
    ex = make_exchange()
    a = fund(ex, "1")
    ex.advance(MINUTE_MS)
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    ex.advance_until(T0 + 8 * HOUR_MS - 1)
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 100, reduce_only=True)
    wallet = ex.wallet_balance(a, "BTC")
    events = ex.advance_until(T0 + 8 * HOUR_MS)
    assert _payments(events, a) == []
    assert _settled(events)[0].payload["positions"] == 0
    assert ex.wallet_balance(a, "BTC") == wallet


def test_start_instant_is_not_a_funding_settlement_even_if_prices_are_set_then() -> None:
    """T0 = 00:00 is a Binance funding time, but the venue opens at T0: a position opened then
    did not exist at that funding time. Advancing never settles it; setting prices at T0 must
    not either (the outcome must not depend on whether a price was set)."""
    ex = make_exchange()
    a = fund(ex, "1")
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 100)
    events = ex.set_prices(BTC, "60000")
    assert of_type(events, "funding.payment", "funding.settled") == []


def test_data_mode_settles_the_scenarios_recorded_rates() -> None:
    scen = load_scenario("real-2022-12-13")
    path = scen.paths["BTCUSD"]
    recorded = {int(t): Decimal(repr(float(r)))
                for t, r in zip(path.funding_times_ms, path.funding_rates, strict=True)}
    day = scen.start_ms
    assert sorted(recorded) == [day, day + 8 * HOUR_MS, day + 16 * HOUR_MS]
    ex = Exchange(profile(), scen, seed=0)
    long_ = fund(ex, "1")
    short = fund(ex, "1", mode="isolated", leverage=5)
    trading.place_order(ex, long_, BTC, "BUY", "MARKET", 100)
    trading.place_order(ex, short, BTC, "SELL", "MARKET", 100)
    marks = {}
    events = ex.advance_until(day + 8 * HOUR_MS)
    # The mark the settlement used: the previous rate (none settled yet) in the P1 term.
    marks[day + 8 * HOUR_MS] = ex.pricer(BTC).mark_at(ex.now_ms, Decimal(0), ex.last_price(BTC))
    events += ex.advance_until(scen.end_ms)
    settled = _settled(events)
    # The venue opened at the first recorded time, so the rates of 08:00 and 16:00 settle.
    assert [e.time_ms for e in settled] == [day + 8 * HOUR_MS, day + 16 * HOUR_MS]
    for e in settled:
        assert e.payload["source"] == "scenario"
        assert Decimal(e.payload["rate"]) == recorded[e.time_ms]
    assert Decimal(settled[0].payload["mark"]) == marks[day + 8 * HOUR_MS]
    assert recorded[day + 8 * HOUR_MS] == Decimal("-0.00001869")
    for e in settled:
        mark, rate = fr(e.payload["mark"]), fr(e.payload["rate"])
        amount = q(Fraction(10_000) / mark * rate)  # F < 0: shorts pay longs
        [paid] = [p for p in _payments(events, short) if p.time_ms == e.time_ms]
        [got] = [p for p in _payments(events, long_) if p.time_ms == e.time_ms]
        assert Decimal(paid.payload["amount"]) == amount < 0
        assert Decimal(got.payload["amount"]) == -amount
    check_invariants(ex)


def test_bitmex_pays_at_t_the_rate_known_since_the_previous_funding_time() -> None:
    """previous_window: the rate settled at 12:00 was computed at 04:00 (window 20:00–04:00);
    the 04:00–12:00 window — here a 1 % discount — is paid at 20:00."""
    ex = make_exchange("bitmex_xbtusd", manual_prices=XBT_PRICES)
    long_ = fund(ex, "1", symbol=XBT)
    short = fund(ex, "1", symbol=XBT)
    ex.advance_until(T0 + 4 * HOUR_MS)
    trading.place_order(ex, long_, XBT, "BUY", "MARKET", 1_000)
    trading.place_order(ex, short, XBT, "SELL", "MARKET", 1_000)
    ex.set_prices(XBT, "60000", "59400")
    ex.advance_until(T0 + 12 * HOUR_MS - 1)
    predicted = ex.predicted_funding_rate(XBT)
    assert predicted == RATE_FLAT  # the flat window before 04:00
    events = ex.advance(1)
    [at_12] = _settled(events, XBT)
    assert at_12.payload["source"] == "premium_previous_window"
    assert Decimal(at_12.payload["rate"]) == predicted
    # Fair price = index · (1 + F · time-until-funding / interval): AT 12:00 the time until
    # funding is zero, so the payment is valued at the index (bitmex.com/app/fairPriceMarking).
    assert Decimal(at_12.payload["mark"]) == Decimal("60000")
    # BitMEX floors every posting: the long pays ⌊−1,000/60,000·0.0001⌋ = −0.00000167 and the
    # short receives ⌊+0.0000016667⌋ = 0.00000166 (the satoshi goes to the venue).
    [paid] = _payments(events, long_)
    [got] = _payments(events, short)
    assert Decimal(paid.payload["amount"]) == Decimal("-0.00000167")
    assert Decimal(got.payload["amount"]) == Decimal("0.00000166")
    ex.set_prices(XBT, "60000")
    after = ex.predicted_funding_rate(XBT)
    # The discount window's rate: P̄ ≈ −1 %, +0.05 % clamp, capped at −0.375 %.
    assert after == Decimal("-0.00375")
    ex.advance_until(T0 + 20 * HOUR_MS - 1)
    assert ex.predicted_funding_rate(XBT) == after
    [at_20] = _settled(ex.advance(1), XBT)
    assert Decimal(at_20.payload["rate"]) == after
    check_invariants(ex)


def test_bitmex_first_funding_time_predicted_rate_equals_what_settles() -> None:
    ex = make_exchange("bitmex_xbtusd", manual_prices=XBT_PRICES)
    ex.advance(MINUTE_MS)
    ex.set_prices(XBT, "60000", "59400")
    ex.advance_until(T0 + 4 * HOUR_MS - 1)
    predicted = ex.predicted_funding_rate(XBT)
    [settled] = _settled(ex.advance(1), XBT)
    assert Decimal(settled.payload["rate"]) == predicted


@pytest.mark.parametrize("scenario", ["manual", "calm"])
def test_bitmex_profile_trades_on_the_bundled_scenarios(scenario: str) -> None:
    ex = Exchange(profile("bitmex_xbtusd"), load_scenario(scenario), seed=0)
    assert ex.mark_price(XBT) > 0


def test_funding_moves_isolated_and_wallet_accounts_only_by_the_payment() -> None:
    ex = make_exchange()
    ex.advance(MINUTE_MS)
    a = fund(ex, "1", mode="isolated", leverage=2)
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 300)
    before = ex.ledger.balances()
    events = ex.advance_until(T0 + 8 * HOUR_MS)
    [payment] = _payments(events, a)
    amount = Decimal(payment.payload["amount"])
    assert amount == q(Fraction(30_000, 60_000) * fr(RATE_FLAT)) == Decimal("0.00005")
    after = ex.ledger.balances()
    changed = {n: after[n] - before.get(n, Decimal(0)) for n in after
               if after[n] != before.get(n, Decimal(0))}
    assert changed == {isolated_account(a, BTC): amount, "market:BTC": -amount}
    assert wallet_account(a, "BTC") not in changed


def test_the_quarterly_does_not_fund() -> None:
    ex = make_exchange()
    ex.advance(MINUTE_MS)
    a = fund(ex, "1")
    trading.place_order(ex, a, "BTCUSD_240329", "BUY", "MARKET", 100)
    assert ex.next_funding_time_ms("BTCUSD_240329") is None
    events = ex.advance_until(T0 + 24 * HOUR_MS)
    assert _payments(events, a) == []
    assert {e.payload["symbol"] for e in _settled(events, BTC) + _settled(events, ETH)} == {
        BTC, ETH}
    assert _settled(events, "BTCUSD_240329") == []
