"""Every worked example of mechanics.md §6 and of venue-sources.md, at published rounding.

Each case computes the figure with perpsim's functions and the profile the table names, then
shows it at the precision (and with the rounding) the exchange published.

Where each published example of venue-sources.md (numbered as there) is tested:

=====  ===========================================================  ==============================
entry  published example or figure                                  test
=====  ===========================================================  ==============================
1      300 BTC position: MMR 12.5 %, maintenance amount 11.605 BTC   VENUE_CASES "VS1 300 BTC ..."
1      cum rule floor·(MMR_n − MMR_n−1) + cum_n−1                    test_binance_cum_rule_...
1      100 × 100 / 25,000 = 0.4 BTC, MM 0.0016 BTC                   CASES "09 ..."
1      LP = N(MMR + side)/(W' + cum + side·N/EP), bracket re-solved  test_binance_lp_formula_...
1      hedge-mode terms (L, S) of the same formula                   test_engine_hedge_mode.py
2      BTCUSD / ETHUSD leverage table, IMR = 1/L, default 20x        test_binance_leverage_tables
3      P1 = index·(1 + F·time-to-funding/8 h), mark = median         test_binance_mark_p1_...
3      quarterly mark = index + moving-average basis                  test_venue_rules.py (3.)
3      30-second basis from 2025-09-18; F = [...] / (8/N)            test_funding_intervals.py
4      0.01 % interest per interval, 5,760 samples per 8 h           VENUE_CASES "VS4 ..."
4      impact notional 200 USD × max leverage, cap 0.75·(IMR − MMR)  VENUE_CASES "VS4 ..."
4      premium index formula; F template                            test_premium_index_..., CASES 14
5      Leverage PnL ranking; no fee on ADL                           test_venue_rules.py (5.),
                                                                    test_engine_liquidation.py
6      cross 0.5 BTC, 10,000 @ 8,000: BP 5,718.57, LP 5,739.50       test_venue_rules.py (2.)
6      isolated classic LP/BP at 8,000 and 50x; MMR 0.5 %            VENUE_CASES "VS6 ..."
7      bankruptcy price rounded up (long) / down (short) to 0.5      VENUE_CASES "VS6 ..."
8      5,000 @ 7,890.08, 50x: LP 7,773.50, BP 7,735.50; maker fee    VENUE_CASES "VS8 ...",
                                                                    test_venue_rules.py (5.)
9      UTA isolated LP = Q / [PV + (IM − MM)], MM with deduction     test_bybit_uta_isolated_...
10     weighted premium average (1..480); I = (0.06 % − 0.03 %)/3    test_bybit_funding_...
10     impact margin notional 0.1 BTC                                test_venue_rules.py (9.)
11     20 XBT, F = (1 % − 0.25 %)/3, 0.05 XBT, PnL 1.25, 04/12/20     CASES 01–03, VENUE_CASES VS11
11     the funding instant's mark                                    test_venue_rules.py (7.)
12     fair price = index·(1 + F·time-until-funding/interval)        test_bitmex_fair_price_...
13     PnL = contracts·(1/entry − 1/exit)                            CASES 03, 04
14     MM = 0.5 % + exit taker fee + funding paid                    test_venue_rules.py (1.)
15     ADL = PnL % × effective leverage                              test_venue_rules.py (5.)
16     100 @ 29,800 + 200 @ 30,000 = 29,933.07                       test_venue_rules.py (6.)
17     8 h → 2 h interval change                                     test_funding_intervals.py
18     taker 0.075 %, maker rebate 0.025 %                           VENUE_CASES "VS18 ..."
=====  ===========================================================  ==============================
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_DOWN
from decimal import Decimal as D
from fractions import Fraction

import pytest

from perpsim.sim.accounts import DEFAULT_LEVERAGE
from perpsim.sim.funding_math import (
    average_premium,
    funding_payment_coin,
    funding_rate_for,
    premium_sample,
)
from perpsim.sim.inverse import apply_fill, coin_value, fee_coin, pnl_coin, to_dec
from perpsim.sim.liquidation_price import isolated_prices
from perpsim.sim.margin import (
    bracket_for,
    check_leverage,
    initial_margin_coin,
    maintenance_margin_coin,
)
from perpsim.sim.money import quantize_coin
from perpsim.sim.profile import load_profile

BINANCE = load_profile("binance_coinm")
BYBIT = load_profile("bybit_inverse")
BITMEX = load_profile("bitmex_xbtusd")
BTC = BINANCE.instrument("BTCUSD_PERP")
ETH = BINANCE.instrument("ETHUSD_PERP")
XBT = BITMEX.instrument("XBTUSD")
BYBIT_BTC = BYBIT.instrument("BTCUSD")


def ex01_entry_value() -> D:
    return coin_value(15_000, 750, XBT.contract_size_usd)


def ex02_funding() -> D:
    # the account RECEIVES −0.05: the long pays 0.05 XBT
    return funding_payment_coin(15_000, 750, XBT.contract_size_usd, "0.0025")


def ex03_close_pnl() -> D:
    fill = apply_fill(15_000, D(750), -15_000, 800, XBT.contract_size_usd)
    assert fill.qty_contracts == 0
    assert fill.entry_price_usd is None
    return fill.realised_pnl_coin


def ex04_unrealised() -> D:
    return pnl_coin(1_000, 1_000, 1_250, XBT.contract_size_usd).quantize(D("0.01"))


def ex05_average_entry() -> D:
    fill = apply_fill(0, None, 1_000, 5_000, BYBIT_BTC.contract_size_usd)
    fill = apply_fill(fill.qty_contracts, fill.entry_price_usd, 2_000, 6_000, 1)
    assert fill.entry_price_usd is not None
    return fill.entry_price_usd.quantize(D("0.01"))


def ex06_average_entry() -> D:
    fill = apply_fill(50, D(10_000), 50, 15_000, BYBIT_BTC.contract_size_usd)
    assert fill.entry_price_usd is not None
    return fill.entry_price_usd


def ex07_pnl() -> D:
    exact = pnl_coin(1_000, 5_000, 5_500, BYBIT_BTC.contract_size_usd)  # 0.0181818...
    # Bybit publishes 0.01819: 1000/5000 − 1000/5500 with the exit value cut to 5 dp
    # (0.2 − 0.18181); the exact figure rounded up at 5 dp gives the same.
    cs = BYBIT_BTC.contract_size_usd
    published = coin_value(1_000, 5_000, cs) - coin_value(1_000, 5_500, cs).quantize(
        D("0.00001"), rounding=ROUND_DOWN
    )
    assert exact.quantize(D("0.00001"), rounding=ROUND_CEILING) == published
    return published


def ex08_initial_margin() -> D:
    cs = BYBIT_BTC.contract_size_usd
    check_leverage(BYBIT_BTC.brackets, coin_value(12_000, 8_000, cs), 50)
    return initial_margin_coin(12_000, 8_000, cs, 50)


def ex09_value() -> D:
    return coin_value(100, 25_000, BTC.contract_size_usd)


def ex09_maintenance() -> D:
    bracket = bracket_for(BTC.brackets, ex09_value())
    assert (bracket.mmr, bracket.cum_coin) == (D("0.004"), 0)
    return maintenance_margin_coin(100, 25_000, BTC.contract_size_usd, BTC.brackets)


def ex10_fee() -> D:
    return fee_coin(10, BTC.contract_size_usd, 10_104, BINANCE.fees.taker_rate)


def ex11_fee() -> D:
    return fee_coin(-10, BTC.contract_size_usd, 11_104, BINANCE.fees.maker_rate)


def ex12(qty: int) -> D:
    margin = initial_margin_coin(qty, 50_000, BTC.contract_size_usd, 20)
    price = isolated_prices(BINANCE, BTC, qty, 50_000, margin).liquidation_price_usd
    assert price is not None
    return price.quantize(D("0.01"))


def ex13_at_entry() -> D:
    margin = initial_margin_coin(10_000, 10_000, BYBIT_BTC.contract_size_usd, 100)
    prices = isolated_prices(BYBIT, BYBIT_BTC, 10_000, 10_000, margin)
    assert prices.liquidation_exact_usd is not None
    assert prices.liquidation_price_usd == D("9950.5")  # Bybit: long rounded up to the tick
    return prices.liquidation_exact_usd.quantize(D("0.01"))


def ex13_at_lp() -> D:
    # ETHUSD_PERP's first bracket is the generic case: 100x, MMR 0.5 %, cum 0
    margin = initial_margin_coin(1, 10_000, ETH.contract_size_usd, 100)
    price = isolated_prices(BINANCE, ETH, 1, 10_000, margin).liquidation_price_usd
    assert price is not None
    return price.quantize(D("0.01"))


def ex14_funding_rate() -> D:
    return funding_rate_for(BINANCE, BTC, [D("-0.00184")])


CASES: list[tuple[str, Callable[[], D], D]] = [
    ("01 bitmex entry value 20 XBT", ex01_entry_value, D(20)),
    ("02 bitmex funding pays 0.05 XBT", ex02_funding, D("-0.05")),
    ("03 bitmex PnL 1.25 XBT", ex03_close_pnl, D("1.25")),
    ("04 bitmex unrealised 0.20 XBT", ex04_unrealised, D("0.20")),
    ("05 bybit average entry 5,625.00", ex05_average_entry, D("5625.00")),
    ("06 bybit average entry 12,000", ex06_average_entry, D(12_000)),
    ("07 bybit PnL 0.01819 BTC", ex07_pnl, D("0.01819")),
    ("08 bybit initial margin 0.03 BTC", ex08_initial_margin, D("0.03")),
    ("09 binance value 0.4 BTC", ex09_value, D("0.4")),
    ("09 binance MM 0.0016 BTC", ex09_maintenance, D("0.0016")),
    ("10 binance fee 0.000049485 BTC", lambda: ex10_fee().quantize(D("1e-9")), D("0.000049485")),
    ("10 binance fee posting 0.00004949", lambda: quantize_coin(ex10_fee()), D("0.00004949")),
    ("11 binance fee ~0.000018 BTC", lambda: ex11_fee().quantize(D("1e-6")), D("0.000018")),
    ("11 binance fee posting 0.00001801", lambda: quantize_coin(ex11_fee()), D("0.00001801")),
    ("12 LP long 47,809.52", lambda: ex12(1), D("47809.52")),
    ("12 LP short 52,421.05", lambda: ex12(-1), D("52421.05")),
    ("13 MM at entry 9,950.25", ex13_at_entry, D("9950.25")),
    ("13 MM at LP 9,950.50", ex13_at_lp, D("9950.50")),
    ("14 funding rate -0.00134", ex14_funding_rate, D("-0.00134")),
]


@pytest.mark.parametrize(
    ("compute", "published"), [(c, p) for _, c, p in CASES], ids=[name for name, _, _ in CASES]
)
def test_worked_example(compute: Callable[[], D], published: D) -> None:
    result = compute()
    assert result == published
    assert str(result) == str(published)  # same digits as published, not just equal


def test_all_fourteen_examples_are_covered() -> None:
    assert {int(name.split()[0]) for name, _, _ in CASES} == set(range(1, 15))


def test_bitmex_postings_floor_each_contract() -> None:
    # Example 1 as BitMEX posts it: 15,000 × 133,333 sat (1/750 floored), 5,000 sat under 20.
    posted = coin_value(15_000, 750, XBT.contract_size_usd, BITMEX.rounding)
    assert posted == D("19.99995")
    assert coin_value(2_000, "1160.72", XBT.contract_size_usd, BITMEX.rounding) == D("1.72306")


# ---- venue-sources.md examples ---------------------------------------------------------------

ETH_BRACKETS = ETH.brackets


def vs1_bracket_at_300_btc() -> tuple[D, D]:
    bracket = bracket_for(BTC.brackets, 300)
    return bracket.mmr, bracket.cum_coin


def vs6_isolated(qty: int, what: str) -> D:
    """Bybit classic isolated at 8,000 and 50x: LP = EP·L/(L ± 1 ∓ MMR·L), BP = EP·L/(L ± 1)."""
    margin = initial_margin_coin(qty, 8_000, 1, 50)
    prices = isolated_prices(BYBIT, BYBIT_BTC, qty, 8_000, margin)
    value = prices.liquidation_price_usd if what == "lp" else prices.bankruptcy_price_usd
    assert value is not None
    return value


def vs8_bybit_adl_example(what: str) -> D:
    margin = initial_margin_coin(5_000, "7890.08", 1, 50)
    prices = isolated_prices(BYBIT, BYBIT_BTC, 5_000, "7890.08", margin)
    if what == "bp_exact":
        assert prices.bankruptcy_exact_usd is not None
        return prices.bankruptcy_exact_usd.quantize(D("0.000001"))
    value = prices.liquidation_price_usd if what == "lp" else prices.bankruptcy_price_usd
    assert value is not None
    return value


VENUE_CASES: list[tuple[str, Callable[[], object], object]] = [
    ("VS1 300 BTC: MMR 12.5 %, maintenance amount 11.605", vs1_bracket_at_300_btc,
     (D("0.125"), D("11.605"))),
    ("VS2 default leverage 20x", lambda: D(DEFAULT_LEVERAGE), D(20)),
    ("VS4 interest 0.01 % per interval", lambda: BINANCE.funding.interest_rate, D("0.0001")),
    ("VS4 5,760 premium samples per 8 h",
     lambda: BINANCE.funding.interval_ms // BINANCE.funding.premium_sample_interval_ms, 5_760),
    ("VS4 impact notional 200 USD × 125 = 25,000 USD", lambda: BTC.impact_notional_usd,
     D(25_000)),
    ("VS4 cap 0.75·(IMR − MMR) BTC 0.3 %",
     lambda: D("0.75") * (1 / BTC.brackets[0].max_leverage - BTC.brackets[0].mmr),
     BTC.funding_cap),
    ("VS4 cap 0.75·(IMR − MMR) ETH 0.375 %",
     lambda: D("0.75") * (1 / ETH.brackets[0].max_leverage - ETH.brackets[0].mmr),
     ETH.funding_cap),
    ("VS6 Bybit minimum MMR 0.5 %", lambda: BYBIT_BTC.brackets[0].mmr, D("0.005")),
    ("VS6 isolated long LP 7,881.77 → 7,882.0", lambda: vs6_isolated(10_000, "lp"),
     D("7882.0")),
    ("VS6 isolated short LP 8,121.83 → 8,121.5", lambda: vs6_isolated(-10_000, "lp"),
     D("8121.5")),
    ("VS7 long BP 7,843.14 rounded up to 7,843.5", lambda: vs6_isolated(10_000, "bp"),
     D("7843.5")),
    ("VS7 short BP 8,163.27 rounded down to 8,163.0", lambda: vs6_isolated(-10_000, "bp"),
     D("8163.0")),
    ("VS8 BP 7,735.372549", lambda: vs8_bybit_adl_example("bp_exact"), D("7735.372549")),
    ("VS8 BP ≈ 7,735.50", lambda: vs8_bybit_adl_example("bp"), D("7735.5")),
    ("VS8 LP 7,773.50", lambda: vs8_bybit_adl_example("lp"), D("7773.5")),
    ("VS8 Bybit charges the maker fee on ADL", lambda: BYBIT.liquidation.adl_counterparty_fee,
     "maker"),
    ("VS5 Binance: no fee on ADL", lambda: BINANCE.liquidation.adl_counterparty_fee, "none"),
    ("VS10 Bybit interest (0.06 % − 0.03 %)/3", lambda: (D("0.0006") - D("0.0003")) / 3,
     BYBIT.funding.interest_rate),
    ("VS11 BitMEX funding rate (1 % − 0.25 %)/3 = 0.25 %",
     lambda: (D("0.01") - D("0.0025")) / 3, D("0.0025")),
    ("VS11 BitMEX funding at 04, 12 and 20 UTC", lambda: BITMEX.funding.times_utc_hours,
     (4, 12, 20)),
    ("VS18 BitMEX taker 0.075 %, maker rebate 0.025 %",
     lambda: (BITMEX.fees.taker_rate, BITMEX.fees.maker_rate), (D("0.00075"), D("-0.00025"))),
]


@pytest.mark.parametrize(("compute", "published"), [(c, p) for _, c, p in VENUE_CASES],
                         ids=[name for name, _, _ in VENUE_CASES])
def test_venue_sources_example(compute: Callable[[], object], published: object) -> None:
    assert compute() == published


def test_binance_cum_rule_gives_every_published_maintenance_amount() -> None:
    """venue-sources.md 1: "Maintenance Amount = [Floor of Position Bracket on Level n *
    difference between Maintenance Margin Rate on Level n and Maintenance Margin Rate on Level
    n-1] + Maintenance Amount on Level n-1" — 200 × (12.5 % − 10 %) + 6.605 = 11.605."""
    for table in (BTC.brackets, ETH_BRACKETS):
        for prev, cur in itertools.pairwise(table):
            assert cur.cum_coin == cur.floor_coin * (cur.mmr - prev.mmr) + prev.cum_coin
    assert D(200) * (D("0.125") - D("0.1")) + D("6.605") == D("11.605")


@pytest.mark.parametrize("qty", [1, -1, 700, -700, 4_000])
def test_binance_lp_formula_one_way(qty: int) -> None:
    """venue-sources.md 1, one-way: LP = N(MMR + side)/(W' + cum + side·N/EP) with the bracket
    of the solved price (re-solved when it differs from the assumed one)."""
    margin = initial_margin_coin(qty, 60_000, BTC.contract_size_usd, 20 if abs(qty) < 4_000 else 10)
    prices = isolated_prices(BINANCE, BTC, qty, 60_000, margin)
    assert prices.bracket is not None
    n, side = Fraction(abs(qty) * 100), 1 if qty > 0 else -1
    b = prices.bracket
    formula = n * (Fraction(b.mmr) + side) / (Fraction(margin) + Fraction(b.cum_coin)
                                              + side * n / 60_000)
    assert prices.liquidation_price_usd is not None
    assert Fraction(prices.liquidation_price_usd) == pytest.approx(formula, rel=1e-25)
    assert bracket_for(BTC.brackets, to_dec(n / formula)) == b  # the bracket at the solved LP


def test_binance_leverage_tables() -> None:
    """venue-sources.md 2: BTCUSD 125x to 5 BTC, 100x to 10, 50x to 20, 20x to 50, 10x to 100,
    5x to 200, 4x to 400, 3x to 1,000, 2x above; ETHUSD 100x to 100, 75x to 500, 50x to 1,000,
    20x to 2,000, 10x to 4,000, 5x to 6,000, 4x to 8,000, 3x to 10,000, 2x above; IMR = 1/L."""
    btc = [(125, 5), (100, 10), (50, 20), (20, 50), (10, 100), (5, 200), (4, 400), (3, 1_000),
           (2, None)]
    eth = [(100, 100), (75, 500), (50, 1_000), (20, 2_000), (10, 4_000), (5, 6_000),
           (4, 8_000), (3, 10_000), (2, None)]
    for table, published in ((BTC.brackets, btc), (ETH_BRACKETS, eth)):
        assert [(int(b.max_leverage), b.cap_coin) for b in table] == [
            (lev, None if cap is None else D(cap)) for lev, cap in published]
    assert initial_margin_coin(100, 25_000, 100, 125) == D("0.4") * D("0.008")  # 0.80 %


def test_binance_mark_p1_and_median() -> None:
    """venue-sources.md 3: "Mark Price = Median (Price 1, Price 2, Contract Price); Price 1 =
    Price Index * (1 + Last Funding Rate*(Time Until Funding / 8))"."""
    import numpy as np

    from perpsim.sim.market import MarketPricer, PriceTape

    t0 = 1_704_067_200_000
    tape = PriceTape("BTCUSD", np.array([t0]), np.array([60_000.0]), np.array([60_000.0]))
    pricer = MarketPricer(BINANCE, BTC, tape)
    two_hours_in = t0 + 2 * 3_600_000
    # 6 of 8 hours to go: P1 = 60,000 × (1 + 0.001 × 6/8) = 60,045; P2 = last = 60,000.
    assert pricer.mark_at(two_hours_in, D("0.001"), D("60100")) == D("60045")
    assert pricer.mark_at(two_hours_in, D("0.001"), D("59000")) == D("60000")


def test_premium_index_formula() -> None:
    """venue-sources.md 4: "Premium Index = [Max (0, Impact Bid Price − Index Price) − Max (0,
    Index Price − Impact Ask Price)] / Index Price"."""
    assert premium_sample(60_060, 60_070, 60_000) == D("0.001")
    assert premium_sample(59_930, 59_940, 60_000) == D("-0.001")
    assert premium_sample(59_990, 60_010, 60_000) == 0


def test_bybit_funding_weights_1_to_480() -> None:
    """venue-sources.md 10: "(Premium Index_1 * 1 + ... + Premium Index_480 * 480)/(1 + 2 + ...
    + 480)" — Bybit's weighted average, one sample a minute over 8 h."""
    samples = [D(i) / 10**6 for i in range(1, 481)]
    weighted = sum(i * s for i, s in enumerate(samples, 1)) / sum(range(1, 481))
    assert average_premium(samples, BYBIT.funding.averaging) == weighted
    assert BYBIT.funding.interval_ms // BYBIT.funding.premium_sample_interval_ms == 480


def test_bybit_uta_isolated_formula_is_mm_at_entry() -> None:
    """venue-sources.md 9 (2024 version): "Liquidation Price (Long) = Contract Quantity /
    [Position Value + (Initial Margin − Maintenance Margin)] ... Position Value = Contract
    Quantity / Average Entry Price ... Maintenance Margin = (Position Value x MMR) − Maintenance
    Margin Deduction" — here at tier 2 (deduction 0.75 BTC)."""
    qty, entry = 10_000_000, D(60_000)  # 166.67 BTC: tier 2, MMR 1 %, deduction 0.75
    im = initial_margin_coin(qty, entry, 1, 50)
    prices = isolated_prices(BYBIT, BYBIT_BTC, qty, entry, im)
    value = Fraction(qty) / Fraction(entry)
    tier = bracket_for(BYBIT_BTC.brackets, to_dec(value))
    assert tier.cum_coin == D("0.75")
    mm = value * Fraction(tier.mmr) - Fraction(tier.cum_coin)
    assert prices.liquidation_exact_usd is not None
    assert Fraction(prices.liquidation_exact_usd) == pytest.approx(
        qty / (value + (Fraction(im) - mm)), rel=1e-25)


def test_bitmex_fair_price_formula() -> None:
    """venue-sources.md 12: "Funding Basis = Funding Rate * (Time Until Funding / Funding
    Interval); Fair Price = Index Price * (1 + Funding Basis)"."""
    import numpy as np

    from perpsim.sim.market import MarketPricer, PriceTape

    t0 = 1_704_067_200_000  # 00:00; BitMEX funds at 04:00
    tape = PriceTape("BTCUSD", np.array([t0]), np.array([60_000.0]), np.array([61_000.0]))
    pricer = MarketPricer(BITMEX, XBT, tape)
    assert pricer.mark_at(t0, D("0.0025")) == D(60_000) * (1 + D("0.0025") * 4 / 8)
