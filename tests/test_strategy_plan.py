"""strategy/plan.py: contract count, margin, liquidation estimate, funding, checks (by hand)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from perpsim.strategy.plan import (
    HedgePlan,
    PlanError,
    Tier,
    harmonic_average,
    liquidation_price,
    make_plan,
    margin_for_liquidation_price,
    tier_for,
)
from perpsim.strategy.record import HedgeConfig
from perpsim.strategy.venue import BINANCE_COINM

D = Decimal
MARKET = {
    "symbol": "BTC/USD:BTC", "id": "BTCUSD_PERP", "base": "BTC", "settle": "BTC",
    "contractSize": 100.0, "taker": 0.0005, "maker": 0.0002,
    "limits": {"amount": {"min": 1.0, "max": 1_000_000.0}},
}
# Binance COIN-M BTCUSD brackets (docs/mechanics.md §2), as fetch_leverage_tiers parses them.
_ROWS = [(1, "0", "5", 125, "0.004", "0"), (2, "5", "10", 100, "0.005", "0.005"),
         (3, "10", "20", 50, "0.01", "0.055"), (4, "20", "50", 20, "0.025", "0.355"),
         (5, "50", "100", 10, "0.05", "1.605"), (6, "100", "200", 5, "0.1", "6.605"),
         (7, "200", "400", 4, "0.125", "11.605"), (8, "400", "1000", 3, "0.15", "21.605"),
         (9, "1000", "9223372036854775807", 2, "0.25", "121.605")]
CCXT_TIERS = [{"tier": b, "minNotional": float(lo), "maxNotional": float(hi),
               "maintenanceMarginRate": float(mmr), "maxLeverage": lev,
               "info": {"bracket": str(b), "initialLeverage": str(lev), "qtyFloor": lo,
                        "qtyCap": hi, "maintMarginRatio": mmr, "cum": cum}}
              for b, lo, hi, lev, mmr, cum in _ROWS]
TIERS = BINANCE_COINM.tiers(CCXT_TIERS)
ONE_TIER = (Tier(D(0), None, D("0.004"), D(0), D(125)),)


def plan(**changes: Any) -> HedgePlan:
    config = HedgeConfig(**changes)
    return make_plan(config, MARKET, TIERS, index_usd=D(60000), mark_usd=D(60000),
                     funding_rate=D("0.0001"))


def test_tiers_come_from_the_exact_info_strings_and_the_last_is_open_ended() -> None:
    assert len(TIERS) == 9
    assert TIERS[1] == Tier(D(5), D(10), D("0.005"), D("0.005"), D(100))
    assert TIERS[-1].cap_coin is None
    assert tier_for(TIERS, D("4.99")).mmr == D("0.004")
    assert tier_for(TIERS, D(5)).mmr == D("0.005")  # [floor, cap)
    assert tier_for(TIERS, D(5000)).max_leverage == D(2)


def test_the_classic_1x_hedge_shorts_what_the_collateral_can_pay_for() -> None:
    p = plan()
    # 5 BTC × 60,000 / 100 = 3,000 contracts wanted; at 1x each needs 100/60,000 × (1 + 0.0005)
    # = 0.0016675 BTC of margin and fee, so 5 BTC covers 2,998 of them.
    assert p.contracts_wanted == 3000
    assert p.contracts == 2998
    assert p.usd_locked == D(299_800)
    assert p.initial_margin_btc == D("4.99666667")  # 299,800 / 60,000, rounded up
    assert p.margin_needed_btc <= p.collateral_btc == D(5)
    assert p.liquidation_price_usd is None
    assert p.liquidation_distance_pct is None
    assert p.ok
    text = "\n".join(p.explain())
    assert "cannot be liquidated" in text
    assert "299,800.00 USD locked" in text
    assert "2,998 rather than 3,000" in text


def test_isolated_10x_liquidation_price_by_the_published_formula() -> None:
    p = plan(leverage=10)
    # 3,000 contracts, isolated margin N/(EP·L) = 0.5 BTC, bracket 1 at the liquidation value:
    # short LP = EP·L·(1 − MMR)/(L − 1) = 60,000 × 10 × 0.996 / 9 = 66,400.
    assert p.contracts == 3000
    assert p.position_margin_btc == D("0.5")
    assert p.liquidation_price_usd == D(66400)
    assert p.liquidation_distance_pct is not None
    assert round(p.liquidation_distance_pct, 4) == D("10.6667")
    assert "66,400.00" in "\n".join(p.explain())


def test_expected_funding_per_day_is_rate_times_three_times_value() -> None:
    p = plan(leverage=2)
    assert p.contracts == 3000
    assert p.funding_per_day_btc == D("0.0015")  # 5 BTC × 0.01 % × 3
    assert p.funding_per_day_usd == D(90)
    assert "receive about 0.001500 BTC (90.00 USD) per day" in "\n".join(p.explain())


def test_cross_margin_uses_the_whole_collateral() -> None:
    p = plan(margin_mode="cross", leverage=3, spot_btc=D(5), collateral_btc=D(2))
    # 3,000 contracts at 3x need 5/3 + 0.0025 BTC: the 2 BTC of collateral back the position.
    assert p.contracts == 3000
    assert p.position_margin_btc == D(2) - D("0.0025")
    assert p.spot_left_btc == D(3)
    # short: v = (N/EP − W − cum)/(1 − MMR) = (5 − 1.9975)/0.996, LP = N/v
    expected = D(300000) / ((D(5) - D("1.9975")) / D("0.996"))
    assert p.liquidation_price_usd is not None
    assert abs(p.liquidation_price_usd - expected) < D("0.000001")


def test_too_little_collateral_is_an_error_that_says_what_would_do() -> None:
    p = plan(collateral_btc=D(1))
    assert not p.ok
    # 3,000 contracts are worth 5 BTC; the fee leaves 0.9975 of the 1 BTC: 5/0.9975 → 6x.
    assert "raise the collateral or the leverage (to at least 6x)" in p.errors[0]
    with pytest.raises(PlanError, match="cannot margin 3,000 contracts at 1x"):
        p.check()


def test_leverage_above_the_bracket_cap_is_refused() -> None:
    p = plan(spot_btc=D(600), leverage=5)
    assert any("leverage 5x exceeds the 3x cap" in e for e in p.errors)


def test_minimum_and_maximum_quantity() -> None:
    small = plan(spot_btc=D("0.0008"))  # 0.48 contracts → 0
    assert any("below the market minimum" in e for e in small.errors)
    big = plan(spot_btc=D(2000), leverage=2)  # 1,200,000 contracts
    assert any("above the market maximum" in e for e in big.errors)


def test_bad_inputs_are_collected() -> None:
    p = plan(hedge_ratio=D(0), collateral_btc=D(6))
    assert any("hedge ratio" in e for e in p.errors)
    assert any("collateral must be" in e for e in p.errors)


def test_liquidation_price_worked_example_12() -> None:
    # mechanics.md §6 #12: isolated, EP 50,000, 20x, MMR 0.4 %, cum 0 (N = 10,000 USD).
    w = D("0.01")  # N/(EP·L)
    long_lp = liquidation_price(100, D(50000), D(100), w, ONE_TIER)
    short_lp = liquidation_price(-100, D(50000), D(100), w, ONE_TIER)
    assert long_lp is not None
    assert round(long_lp, 2) == D("47809.52")
    assert short_lp is not None
    assert round(short_lp, 2) == D("52421.05")
    # ... and the margin that puts the short's LP there is the 0.01 BTC back.
    back = margin_for_liquidation_price(-100, D(50000), D(100), short_lp, ONE_TIER)
    assert abs(back - w) < D("1e-20")


def test_a_1x_short_backed_by_its_value_has_no_liquidation_price() -> None:
    assert liquidation_price(-3000, D(60000), D(100), D(5), TIERS) is None
    assert liquidation_price(-3000, D(60000), D(100), D("4.9"), TIERS) is not None


def test_harmonic_average_entry() -> None:
    # mechanics.md §6 #6: 50 @ 10,000 then 50 @ 15,000 → 12,000
    assert harmonic_average([(50, D(10000)), (50, D(15000))]) == D(12000)
    assert harmonic_average([]) is None
