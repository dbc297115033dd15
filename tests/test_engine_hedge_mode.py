"""Hedge mode in the engine: Binance dual-side positions and Bybit two-way mode.

Binance (Change Position Mode, POST /dapi/v1/positionSide/dual; error codes -4059 "No need to
change position side.", -4067 "... if there exists open orders.", -4068 "... if there exists
position.", -4061 "Order's position side does not match user's setting."): a LONG and a SHORT
position per symbol; a BUY on LONG / SELL on SHORT opens, the other side closes that leg.
Cross liquidation uses Binance's formula with both legs' terms (venue-sources.md 1).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from perpsim.sim import liquidation_price as lp
from perpsim.sim import risk, trading
from perpsim.sim.accounts import BYBIT_POSITION_IDX, side_of_position_idx
from perpsim.sim.errors import (
    InvalidPositionSide,
    PositionModeAlreadySet,
    PositionModeOpenOrders,
    PositionModeOpenPositions,
    PositionSideMismatch,
    ReduceOnlyConflict,
    ReduceOnlyRejected,
)
from perpsim.sim.exchange import Exchange

from engine_helpers import (
    BTC,
    BYBIT_BTC,
    SECOND_MS,
    assert_rejected,
    check_invariants,
    fr,
    fund,
    make_exchange,
    no_insurance,
    of_type,
)

D = Decimal


def _hedged(ex: Exchange, amount: str = "1", **kwargs: object) -> str:
    account = fund(ex, amount, **kwargs)  # type: ignore[arg-type]
    ex.set_position_mode(account, True)
    return account


def test_switching_rules() -> None:
    ex = make_exchange()
    account = fund(ex, "1")
    assert_rejected(ex, PositionModeAlreadySet, ex.set_position_mode, account, False)
    trading.place_order(ex, account, BTC, "BUY", "MARKET", 10)
    assert_rejected(ex, PositionModeOpenPositions, ex.set_position_mode, account, True)
    trading.place_order(ex, account, BTC, "SELL", "MARKET", 10)
    trading.place_order(ex, account, BTC, "BUY", "LIMIT", 1, "59000")
    assert_rejected(ex, PositionModeOpenOrders, ex.set_position_mode, account, True)
    trading.cancel_all(ex, account, BTC)
    ex.set_position_mode(account, True)
    assert ex.account(account).dual_side_position
    assert_rejected(ex, PositionModeAlreadySet, ex.set_position_mode, account, True)
    ex.set_position_mode(account, False)  # flat again: back to one-way


def test_two_positions_per_symbol_open_and_close_by_side() -> None:
    ex = make_exchange()
    account = _hedged(ex)
    trading.place_order(ex, account, BTC, "BUY", "MARKET", 10, position_side="LONG")
    trading.place_order(ex, account, BTC, "SELL", "MARKET", 4, position_side="SHORT")
    assert ex.position(account, BTC, "LONG").qty_contracts == 10
    assert ex.position(account, BTC, "SHORT").qty_contracts == -4
    assert ex.position(account, BTC).qty_contracts == 0  # no one-way position
    # SELL on LONG closes the long leg; it never turns it short.
    trading.place_order(ex, account, BTC, "SELL", "MARKET", 3, position_side="LONG")
    assert ex.position(account, BTC, "LONG").qty_contracts == 7
    assert_rejected(ex, ReduceOnlyRejected, trading.place_order, ex, account, BTC, "SELL",
                    "MARKET", 8, position_side="LONG")
    # A resting closing order counts against the leg.
    trading.place_order(ex, account, BTC, "BUY", "LIMIT", 3, "59000", position_side="SHORT")
    assert_rejected(ex, ReduceOnlyRejected, trading.place_order, ex, account, BTC, "BUY",
                    "LIMIT", 2, "58000", position_side="SHORT")
    trading.place_order(ex, account, BTC, "BUY", "MARKET", 1, position_side="SHORT")
    assert ex.position(account, BTC, "SHORT").qty_contracts == -3
    check_invariants(ex)


def test_position_side_must_fit_the_mode() -> None:
    ex = make_exchange()
    one_way, hedged = fund(ex, "1"), _hedged(ex)
    assert_rejected(ex, PositionSideMismatch, trading.place_order, ex, one_way, BTC, "BUY",
                    "MARKET", 1, position_side="LONG")
    assert_rejected(ex, PositionSideMismatch, trading.place_order, ex, hedged, BTC, "BUY",
                    "MARKET", 1)
    assert_rejected(ex, PositionSideMismatch, trading.place_order, ex, hedged, BTC, "BUY",
                    "MARKET", 1, position_side="BOTH")
    assert_rejected(ex, InvalidPositionSide, trading.place_order, ex, hedged, BTC, "BUY",
                    "MARKET", 1, position_side="UP")
    assert_rejected(ex, ReduceOnlyConflict, trading.place_order, ex, hedged, BTC, "SELL",
                    "MARKET", 1, position_side="LONG", reduce_only=True)
    assert trading.place_order(ex, one_way, BTC, "BUY", "MARKET", 1,
                               position_side="BOTH").position_side == "BOTH"


def test_both_legs_pay_and_receive_funding() -> None:
    ex = make_exchange()
    account = _hedged(ex)
    trading.place_order(ex, account, BTC, "BUY", "MARKET", 10, position_side="LONG")
    trading.place_order(ex, account, BTC, "SELL", "MARKET", 10, position_side="SHORT")
    ex.set_prices(BTC, "60000", "60300")  # a premium: longs pay
    events = ex.advance_until(ex.profile.funding.next_funding_time_ms(ex.now_ms))
    payments = [e for e in of_type(events, "funding.payment") if e.payload["account_id"] == account]
    assert sorted(e.payload["position_side"] for e in payments) == ["LONG", "SHORT"]
    amounts = {e.payload["position_side"]: D(e.payload["amount"]) for e in payments}
    assert amounts["LONG"] < 0 < amounts["SHORT"]
    assert amounts["LONG"] + amounts["SHORT"] == 0
    check_invariants(ex)


def _binance_hedge_lp(ex: Exchange, account: str) -> tuple[Fraction, Fraction]:
    """venue-sources.md 1, the hedge terms (B = 0, TMM1 = UPNL1 = 0, both legs in bracket 1):
    LP = [L·MMR_L + S·MMR_S + L − S]·CM / [WB + cum_L + cum_S + N_L/EP_L − N_S/EP_S]; the
    bankruptcy price is the same with MMR = cum = 0."""
    long_, short = ex.position(account, BTC, "LONG"), ex.position(account, BTC, "SHORT")
    n_l, n_s = abs(long_.qty_contracts) * 100, abs(short.qty_contracts) * 100
    wallet = fr(ex.wallet_balance(account, "BTC"))
    equity = wallet + n_l / fr(long_.entry_price_usd) - n_s / fr(short.entry_price_usd)  # type: ignore[arg-type]
    mmr = Fraction(4, 1000)
    return (n_l * (1 + mmr) - n_s * (1 - mmr)) / equity, (n_l - n_s) / equity


def test_cross_hedge_legs_share_binances_liquidation_price_and_go_together() -> None:
    ex = make_exchange()
    account = _hedged(ex, "0.02", leverage=50)
    trading.place_order(ex, account, BTC, "BUY", "MARKET", 300, position_side="LONG")
    trading.place_order(ex, account, BTC, "SELL", "MARKET", 100, position_side="SHORT")
    liq, bankrupt = _binance_hedge_lp(ex, account)
    for side in ("LONG", "SHORT"):
        view = risk.position_risk(ex, account, BTC, side)  # type: ignore[arg-type]
        assert view.position_side == side
        assert fr(view.liquidation_price_usd) == pytest.approx(liq, rel=1e-25)  # type: ignore[arg-type]
        assert fr(view.bankruptcy_price_usd) == pytest.approx(bankrupt, rel=1e-25)  # type: ignore[arg-type]
    # Net long: the mark falling to it liquidates both legs; just above it nothing happens.
    assert risk.trigger_side(ex, account, ex.position(account, BTC, "SHORT")) == 1
    ex.advance(SECOND_MS)
    above = D(float(liq) + 5).quantize(D("0.1"))
    assert not of_type(ex.set_prices(BTC, str(above)), "liquidation.triggered")
    ex.advance(SECOND_MS)
    events = ex.set_prices(BTC, str(D(float(liq + bankrupt) / 2).quantize(D("0.1"))))
    takeovers = of_type(events, "liquidation.takeover")
    assert sorted(e.payload["qty"] for e in takeovers) == [-100, 300]
    prices = [fr(e.payload["bankruptcy_price"]) for e in takeovers]
    assert prices[0] == pytest.approx(prices[1], rel=1e-9)  # one price for the pair
    assert not ex.account(account).open_positions()
    check_invariants(ex)


def test_isolated_hedge_legs_have_their_own_margin_and_prices() -> None:
    ex = make_exchange()
    account = _hedged(ex, "1", leverage=20, mode="isolated")
    trading.place_order(ex, account, BTC, "BUY", "MARKET", 30, position_side="LONG")
    trading.place_order(ex, account, BTC, "SELL", "MARKET", 12, position_side="SHORT")
    for side, qty in (("LONG", 30), ("SHORT", -12)):
        pos = ex.position(account, BTC, side)
        margin = ex.isolated_wallet(account, f"{BTC}.{side}")
        assert margin > 0
        assert pos.entry_price_usd is not None
        expected = lp.isolated_prices(ex.profile, ex.instrument(BTC), qty, pos.entry_price_usd,
                                      margin)
        assert risk.liquidation_prices(ex, account, pos) == (
            expected.liquidation_price_usd, expected.bankruptcy_price_usd)
    ex.adjust_isolated_margin(account, BTC, "0.01", add=True, position_side="SHORT")
    check_invariants(ex)


def test_leverage_and_margin_mode_are_per_symbol() -> None:
    ex = make_exchange()
    account = _hedged(ex)
    trading.place_order(ex, account, BTC, "BUY", "MARKET", 10, position_side="LONG")
    ex.set_leverage(account, BTC, 10)
    assert {p.leverage for p in ex.account(account).positions_on(BTC)} == {10}
    assert ex.position(account, BTC, "SHORT").leverage == 10


def test_bybit_two_way_mode_position_idx() -> None:
    """Bybit's position_idx: 0 one-way, 1 the buy side, 2 the sell side of two-way mode; the
    engine's LONG / SHORT legs are those, with MM at entry (classic Bybit)."""
    assert BYBIT_POSITION_IDX == {"BOTH": 0, "LONG": 1, "SHORT": 2}
    assert [side_of_position_idx(i) for i in (0, 1, 2)] == ["BOTH", "LONG", "SHORT"]
    for bad in (3, "1", True, None):
        with pytest.raises(InvalidPositionSide):
            side_of_position_idx(bad)
    ex = make_exchange("bybit_inverse")
    account = _hedged(ex, "1", symbol=BYBIT_BTC)
    trading.place_order(ex, account, BYBIT_BTC, "BUY", "MARKET", 30_000, position_side="LONG")
    trading.place_order(ex, account, BYBIT_BTC, "SELL", "MARKET", 10_000, position_side="SHORT")
    long_, short = ex.position(account, BYBIT_BTC, "LONG"), ex.position(account, BYBIT_BTC,
                                                                          "SHORT")
    assert (long_.qty_contracts, short.qty_contracts) == (30_000, -10_000)
    # MM at entry: W + N_L/EP_L − N_S/EP_S − (N_L − N_S)·x = Σ N/EP·MMR, solved for x = 1/LP.
    assert long_.entry_price_usd is not None
    assert short.entry_price_usd is not None
    mm = sum(fr(n) / fr(e) * Fraction(5, 1000) for n, e in ((30_000, long_.entry_price_usd),
                                                              (10_000, short.entry_price_usd)))
    equity = (fr(ex.wallet_balance(account, "BTC")) + 30_000 / fr(long_.entry_price_usd)
              - 10_000 / fr(short.entry_price_usd))
    exact = 20_000 / (equity - mm)
    liq, _ = risk.liquidation_prices(ex, account, short)
    assert liq is not None
    assert fr(liq) - exact < Fraction(1, 2)  # rounded up to the tick: reached earlier
    assert fr(liq) >= exact


def test_a_net_long_pair_steps_down_its_long_leg_only() -> None:
    """The partial step-down reduces the leg the pair is net on; the hedging SHORT stays."""
    ex = make_exchange()
    account = _hedged(ex, "0.3", leverage=20)
    trading.place_order(ex, account, BTC, "BUY", "MARKET", 3_100, position_side="LONG")
    trading.place_order(ex, account, BTC, "SELL", "MARKET", 300, position_side="SHORT")
    short = ex.position(account, BTC, "SHORT")
    liq, bankrupt = risk.liquidation_prices(ex, account, short)
    assert liq is not None
    assert bankrupt is not None
    assert risk.trigger_side(ex, account, short) == 1
    ex.advance(SECOND_MS)
    events = ex.set_prices(BTC, str(((liq + bankrupt) / 2).quantize(D("0.1"))))
    orders = of_type(events, "liquidation.order")
    assert orders[0].payload["kind"] == "partial"
    assert orders[0].payload["side"] == "SELL"
    partials = [e for e in orders if e.payload["kind"] == "partial"]
    assert all(e.payload["side"] == "SELL" for e in partials)
    check_invariants(ex)


def test_adl_on_a_leg_trims_its_resting_closing_orders() -> None:
    """A SHORT leg shrunk by ADL keeps only the closing orders it can still fill."""
    ex = make_exchange(no_insurance())
    short = _hedged(ex, "1")
    trading.place_order(ex, short, BTC, "SELL", "MARKET", 100, position_side="SHORT")
    closing = trading.place_order(ex, short, BTC, "BUY", "LIMIT", 100, "45000",
                                  position_side="SHORT")
    victim = fund(ex, "0.002", leverage=20)  # 20 contracts on 0.002 BTC: LP near 56,900
    trading.place_order(ex, victim, BTC, "BUY", "MARKET", 20)
    ex.advance(SECOND_MS)
    events = ex.set_prices(BTC, "50000")
    [fill] = of_type(events, "adl.fill")
    assert (fill.payload["account_id"], fill.payload["qty"]) == (short, 20)
    assert ex.position(short, BTC, "SHORT").qty_contracts == -80
    assert closing.status == "CANCELED"  # 100 to close no longer fits in the 80 held
    check_invariants(ex)
