"""Liquidation and bankruptcy prices, both styles, isolated and cross (sim.liquidation_price)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from perpsim.sim.inverse import coin_value, pnl_coin
from perpsim.sim.liquidation_price import (
    INFINITE_PRICE,
    bankruptcy_price,
    cross_prices,
    exit_costs_coin,
    isolated_prices,
    liquidation_price_mm_at_entry,
    liquidation_price_mm_at_lp,
    round_price,
)
from perpsim.sim.margin import bracket_for, initial_margin_coin, maintenance_margin_coin
from perpsim.sim.profile import Bracket, load_profile

BINANCE = load_profile("binance_coinm")
BYBIT = load_profile("bybit_inverse")
BITMEX = load_profile("bitmex_xbtusd")
BTC = BINANCE.instrument("BTCUSD_PERP")
XBT = BITMEX.instrument("XBTUSD")
BYBIT_BTC = BYBIT.instrument("BTCUSD")


def flat(mmr: str, cum: str = "0") -> tuple[Bracket, ...]:
    return (Bracket(bracket=1, floor_coin=D(0), max_leverage=D(125), mmr=D(mmr), cum_coin=D(cum)),)


@pytest.mark.parametrize("lev", [2, 3, 5, 10, 20, 50, 100, 125])
@pytest.mark.parametrize("mmr", ["0.004", "0.005"])
def test_mm_at_lp_reduces_to_closed_form(lev: int, mmr: str) -> None:
    ep, m = D(50_000), D(mmr)
    margin = initial_margin_coin(3, ep, 100, lev)
    long = liquidation_price_mm_at_lp(3, ep, 100, margin, flat(mmr)).price_usd
    short = liquidation_price_mm_at_lp(-3, ep, 100, margin, flat(mmr)).price_usd
    assert long == pytest.approx(ep * lev * (1 + m) / (lev + 1), rel=D("1e-30"))
    assert short == pytest.approx(ep * lev * (1 - m) / (lev - 1), rel=D("1e-30"))


@pytest.mark.parametrize("lev", [2, 5, 20, 100])
def test_mm_at_entry_and_bankruptcy_closed_forms(lev: int) -> None:
    ep, m = D(10_000), D("0.005")
    margin = initial_margin_coin(1000, ep, 1, lev)
    long = liquidation_price_mm_at_entry(1000, ep, 1, margin, flat("0.005")).price_usd
    short = liquidation_price_mm_at_entry(-1000, ep, 1, margin, flat("0.005")).price_usd
    assert long == pytest.approx(ep * lev / (lev + 1 - m * lev), rel=D("1e-30"))
    assert short == pytest.approx(ep * lev / (lev - 1 + m * lev), rel=D("1e-30"))
    assert bankruptcy_price(1000, ep, 1, margin) == pytest.approx(ep * lev / (lev + 1))
    assert bankruptcy_price(-1000, ep, 1, margin) == pytest.approx(ep * lev / (lev - 1))


def test_solution_satisfies_the_defining_equation_with_cum() -> None:
    # 30 BTC long at 40,000 (bracket 4, cum 0.355) with 2 BTC isolated margin
    qty, ep, margin = 12_000, D(40_000), D(2)
    sol = liquidation_price_mm_at_lp(qty, ep, 100, margin, BTC.brackets)
    assert sol.price_usd is not None
    balance = margin + pnl_coin(qty, ep, sol.price_usd, 100)
    mm = maintenance_margin_coin(qty, sol.price_usd, 100, BTC.brackets)
    assert balance == pytest.approx(mm, abs=D("1e-25"))


def test_bracket_is_re_solved_at_the_liquidation_price() -> None:
    # 4.9 BTC at entry (bracket 1) but > 5 BTC at its LP: the answer must use bracket 2.
    qty, ep = 2450, D(50_000)
    margin = initial_margin_coin(qty, ep, 100, 20)
    assert bracket_for(BTC.brackets, coin_value(qty, ep, 100)).bracket == 1
    sol = liquidation_price_mm_at_lp(qty, ep, 100, margin, BTC.brackets)
    assert sol.bracket is not None
    assert sol.bracket.bracket == 2
    assert sol.price_usd is not None
    assert bracket_for(BTC.brackets, coin_value(qty, sol.price_usd, 100)) == sol.bracket
    naive = liquidation_price_mm_at_lp(qty, ep, 100, margin, BTC.brackets[:1]).price_usd
    assert naive is not None
    assert naive != sol.price_usd


def test_discontinuous_table_lands_on_the_bracket_edge() -> None:
    table = (
        Bracket(
            bracket=1,
            floor_coin=D(0),
            cap_coin=D(10),
            max_leverage=D(50),
            mmr=D("0.01"),
            cum_coin=D(0),
        ),
        Bracket(bracket=2, floor_coin=D(10), max_leverage=D(1), mmr=D("0.5"), cum_coin=D(0)),
    )
    # value 9 at entry 100, margin 3: neither line crosses inside its own bracket
    sol = liquidation_price_mm_at_lp(9, 100, 100, 3, table)
    assert sol.price_usd == 90
    assert sol.bracket == table[1]


def test_one_x_short_never_liquidates_in_mm_at_lp_style() -> None:
    margin = coin_value(10, 50_000, 100)
    sol = liquidation_price_mm_at_lp(-10, 50_000, 100, margin, BTC.brackets)
    assert sol.price_usd is None
    assert sol.bracket is None
    assert bankruptcy_price(-10, 50_000, 100, margin) is None
    prices = isolated_prices(BINANCE, BTC, -10, 50_000, margin)
    assert prices.liquidation_price_usd is None
    assert prices.bankruptcy_price_usd is None


def test_a_one_x_short_with_rounding_dust_has_no_astronomical_price() -> None:
    # Found by hypothesis: 1 contract short at 354.8 backed by its value (28-digit Decimal,
    # a hair under the exact N/EP) solved to LP ~2.9e30, which no mark can reach and which broke
    # the money limits (InvalidPrice) wherever the position was valued there.
    margin = coin_value(-1, D("354.8"), 100)
    sol = liquidation_price_mm_at_lp(-1, D("354.8"), 100, margin, BTC.brackets)
    assert sol.price_usd is None
    assert sol.bracket is None
    assert bankruptcy_price(-1, D("354.8"), 100, margin) is None
    prices = isolated_prices(BINANCE, BTC, -1, D("354.8"), margin)
    assert (prices.liquidation_price_usd, prices.bankruptcy_price_usd) == (None, None)
    # a short a little further from 1x keeps its (high but reachable) price
    thinner = margin - D("0.001")
    far = liquidation_price_mm_at_lp(-1, D("354.8"), 100, thinner, BTC.brackets).price_usd
    assert far is not None
    assert D("354.8") < far < D("1e15")


def test_one_x_short_in_mm_at_entry_style_has_a_far_price() -> None:
    # MM is a fixed coin amount there while equity N/P shrinks: LP = EP/MMR.
    margin = coin_value(10_000, 10_000, 1)
    sol = liquidation_price_mm_at_entry(-10_000, 10_000, 1, margin, flat("0.005"))
    assert sol.price_usd == D(2_000_000)


def test_long_already_under_water_in_cross_is_liquidatable_everywhere() -> None:
    prices = cross_prices(BINANCE, BTC, 10, 50_000, D("0.01"), other_unrealised_pnl_coin=D("-1"))
    assert prices.liquidation_price_usd == INFINITE_PRICE
    assert prices.bankruptcy_price_usd == INFINITE_PRICE


def test_cross_uses_wallet_other_pnl_and_other_mm() -> None:
    wallet, upnl, other_mm = D("0.5"), D("-0.1"), D("0.02")
    prices = cross_prices(
        BINANCE,
        BTC,
        20,
        50_000,
        wallet,
        other_unrealised_pnl_coin=upnl,
        other_maint_margin_coin=other_mm,
    )
    direct = liquidation_price_mm_at_lp(20, 50_000, 100, wallet + upnl - other_mm, BTC.brackets)
    assert prices.liquidation_price_usd == direct.price_usd
    assert prices.bankruptcy_price_usd == bankruptcy_price(20, 50_000, 100, wallet + upnl)
    # more wallet pushes a long's LP down
    richer = cross_prices(BINANCE, BTC, 20, 50_000, D(1))
    assert richer.liquidation_price_usd is not None
    assert prices.liquidation_price_usd is not None
    assert richer.liquidation_price_usd < prices.liquidation_price_usd


def test_bybit_rounds_conservatively_to_the_tick() -> None:
    margin = initial_margin_coin(10_000, 10_000, 1, 100)
    long = isolated_prices(BYBIT, BYBIT_BTC, 10_000, 10_000, margin)
    assert long.liquidation_price_usd == D("9950.5")  # 9,950.2487... up
    assert long.bankruptcy_price_usd == D("9901.0")  # 9,900.990... up
    short = isolated_prices(BYBIT, BYBIT_BTC, -10_000, 10_000, margin)
    assert short.liquidation_exact_usd is not None
    assert short.bankruptcy_exact_usd is not None
    assert short.liquidation_price_usd == D("10050.0")  # 10,050.2512... down
    assert short.bankruptcy_price_usd == D("10101.0")  # 10,101.0101... down


def test_round_price_keeps_sentinels_and_exact() -> None:
    assert round_price(None, -1, "0.5", "tick_conservative") is None
    assert round_price(INFINITE_PRICE, 1, "0.5", "tick_conservative") == INFINITE_PRICE
    assert round_price(D("100.2"), 1, "0.5", "none") == D("100.2")
    assert round_price(D("100.0"), 1, "0.5", "tick_conservative") == D("100.0")


def test_bitmex_adds_exit_fee_and_paid_funding_to_mm() -> None:
    qty, ep = 10_000, D(10_000)
    margin = initial_margin_coin(qty, ep, 1, 25)
    bp = bankruptcy_price(qty, ep, 1, margin)
    fee = exit_costs_coin(qty, 1, bp, exit_fee_rate=BITMEX.fees.taker_rate)
    base = isolated_prices(BITMEX, XBT, qty, ep, margin)
    expected = liquidation_price_mm_at_entry(qty, ep, 1, margin, XBT.brackets, extra_mm_coin=fee)
    assert base.liquidation_price_usd == expected.price_usd
    no_fee = liquidation_price_mm_at_entry(qty, ep, 1, margin, XBT.brackets).price_usd
    assert no_fee is not None
    assert base.liquidation_price_usd is not None
    assert base.liquidation_price_usd > no_fee  # a long is liquidated earlier
    paying = isolated_prices(BITMEX, XBT, qty, ep, margin, funding_rate="0.001")
    assert paying.liquidation_price_usd is not None
    assert paying.liquidation_price_usd > base.liquidation_price_usd
    receiving = isolated_prices(BITMEX, XBT, qty, ep, margin, funding_rate="-0.001")
    assert receiving.liquidation_price_usd == base.liquidation_price_usd  # not counted on


def test_binance_ignores_funding_rate_in_mm() -> None:
    margin = initial_margin_coin(10, 50_000, 100, 10)
    a = isolated_prices(BINANCE, BTC, 10, 50_000, margin)
    b = isolated_prices(BINANCE, BTC, 10, 50_000, margin, funding_rate="0.003")
    assert a == b


def test_exit_costs_for_never_bankrupt_position_are_zero() -> None:
    assert exit_costs_coin(-1, 1, None, exit_fee_rate="0.00075", funding_rate="-0.001") == 0
