"""Risk views are computed once per engine stamp and never outlive a change of the engine state.

``risk.settled_position_risk`` (and the Binance positionRisk row built on ``risk.settled_view``)
is shared by every API read at one instant; anything that moves a position, a wallet, a setting,
a price or time must give a fresh answer equal to an uncached computation.
"""

from __future__ import annotations

from decimal import Decimal

from perpsim.api.binance_coinm import account_wire
from perpsim.sim import risk, trading
from perpsim.sim.exchange import Exchange

from engine_helpers import BTC, HOUR_MS, fund, make_exchange


def _fresh(ex: Exchange, account_id: str) -> risk.PositionRisk:
    return risk.position_risk(ex, account_id, BTC)


def _check(ex: Exchange, account_id: str) -> risk.PositionRisk:
    view = risk.settled_position_risk(ex, account_id, BTC)
    assert view == _fresh(ex, account_id)
    return view


def test_reads_at_one_stamp_share_the_view() -> None:
    ex = make_exchange()
    a = fund(ex, "1", mode="isolated")
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 300)
    first = _check(ex, a)
    assert risk.settled_position_risk(ex, a, BTC) is first
    row = account_wire.position_risk_row(ex, a, ex.instrument(BTC))
    row["positionAmt"] = "tampered"  # a caller's copy: the shared row is untouched
    assert account_wire.position_risk_row(ex, a, ex.instrument(BTC))["positionAmt"] == "-300"


def test_every_change_at_the_same_instant_gives_a_fresh_view() -> None:
    ex = make_exchange()
    a = fund(ex, "1", mode="isolated")
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 300)
    before = _check(ex, a)
    now = ex.now_ms
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 100)  # a fill
    after_fill = _check(ex, a)
    assert after_fill.qty_contracts == -400 != before.qty_contracts
    ex.adjust_isolated_margin(a, BTC, Decimal("0.1"), add=True)  # margin moved in
    after_margin = _check(ex, a)
    assert after_margin.isolated_margin_coin > after_fill.isolated_margin_coin
    assert after_margin.liquidation_price_usd != after_fill.liquidation_price_usd
    ex.set_prices(BTC, 54_000)  # the mark moved
    after_price = _check(ex, a)
    assert after_price.mark_price_usd == Decimal(54_000)
    assert ex.now_ms == now  # all of it at one instant


def test_time_passing_gives_a_fresh_view() -> None:
    ex = make_exchange(scenario="calm")
    a = fund(ex, "1", mode="isolated")
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 300)
    before = _check(ex, a)
    ex.advance(HOUR_MS)
    after = _check(ex, a)
    assert after.mark_price_usd != before.mark_price_usd


def test_a_new_setting_gives_a_fresh_view() -> None:
    ex = make_exchange()
    a = fund(ex, "1", mode="isolated", leverage=2)
    before = _check(ex, a)
    ex.set_leverage(a, BTC, 3)
    assert _check(ex, a).leverage == 3 != before.leverage
