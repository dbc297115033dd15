"""Every worked example of mechanics.md §6, through its exchange profile, at published rounding.

Each case computes the figure with perpsim's functions and the profile the table names, then
shows it at the precision (and with the rounding) the exchange published.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_DOWN
from decimal import Decimal as D

import pytest

from perpsim.sim.funding_math import funding_payment_coin, funding_rate_for
from perpsim.sim.inverse import apply_fill, coin_value, fee_coin, pnl_coin
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
