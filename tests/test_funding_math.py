"""Funding arithmetic: impact price, premium, rate from samples, payment (sim.funding_math)."""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest

from perpsim.sim.errors import InvalidInput
from perpsim.sim.funding_math import (
    average_premium,
    clamp_funding_rate,
    funding_payment_coin,
    funding_rate,
    funding_rate_for,
    impact_price,
    premium_sample,
)
from perpsim.sim.inverse import to_dec
from perpsim.sim.profile import load_profile

BINANCE = load_profile("binance_coinm")
BITMEX = load_profile("bitmex_xbtusd")
BTC = BINANCE.instrument("BTCUSD_PERP")


def test_impact_price_is_harmonic_average_fill() -> None:
    # 25,000 USD: 100 contracts (10,000 USD) at 50,000 then 150 contracts at 51,000
    asks = [(D(50_000), 100), (D(51_000), 200), (D(52_000), 500)]
    price = impact_price(25_000, asks, 100)
    coin = D(10_000) / 50_000 + D(15_000) / 51_000
    assert price == pytest.approx(D(25_000) / coin, rel=D("1e-30"))
    assert D(50_000) < price < D(51_000)


def test_impact_price_single_level_and_bids() -> None:
    assert impact_price(25_000, [(D(60_000), 1000)], 100) == D(60_000)
    bids = [(D(49_999), 50), (D(49_990), 500)]
    assert D(49_990) < impact_price(25_000, bids, 100) < D(49_999)


def test_impact_price_raises_when_book_too_thin() -> None:
    with pytest.raises(InvalidInput, match="cannot fill notional_usd"):
        impact_price(25_000, [(D(50_000), 100)], 100)


def test_impact_price_needs_best_first_levels() -> None:
    with pytest.raises(InvalidInput, match="monotonic"):
        impact_price(100, [(D(10), 10), (D(12), 10), (D(11), 10)], 1)


def test_premium_sample() -> None:
    assert premium_sample(10_010, 10_020, 10_000) == D("0.001")  # bid above index
    assert premium_sample(9_970, 9_980, 10_000) == D("-0.002")  # ask below index
    assert premium_sample(9_990, 10_010, 10_000) == 0  # index inside the spread


def test_average_premium_weighted_and_plain() -> None:
    samples = [D("0.001"), D("0.002"), D("0.003")]
    assert average_premium(samples, "plain") == D("0.002")
    # (1·1 + 2·2 + 3·3)/6 · 0.001
    assert average_premium(samples, "weighted") == to_dec(Fraction(14, 6000))


def test_clamp_and_cap() -> None:
    kw = {"interest_rate": "0.0001", "clamp": "0.0005", "cap": "0.00375"}
    assert clamp_funding_rate("0.0001", **kw) == D("0.0001")
    assert clamp_funding_rate("0.0003", **kw) == D("0.0001")  # within clamp: F = I
    assert clamp_funding_rate("0.002", **kw) == D("0.0015")
    assert clamp_funding_rate("0.01", **kw) == D("0.00375")  # capped
    assert clamp_funding_rate("-0.01", **kw) == D("-0.00375")


def test_funding_rate_from_samples_and_profile() -> None:
    samples = [D("0.0001")] * 10
    assert funding_rate(samples, interest_rate="0.0001", clamp="0.0005", cap="0.003") == D("0.0001")
    assert funding_rate_for(BINANCE, BTC, [D("0.01")]) == BTC.funding_cap
    # plain mean 0.001 (weighted would be 0.000667 and give 0.000167)
    assert funding_rate_for(BITMEX, BITMEX.instrument("XBTUSD"), [D("0.002"), D("0")]) == D(
        "0.0005"
    )


def test_funding_payment_sign_convention() -> None:
    # F > 0: longs pay shorts
    assert funding_payment_coin(15_000, 750, 1, "0.0025") == D("-0.05")
    assert funding_payment_coin(-15_000, 750, 1, "0.0025") == D("0.05")
    assert funding_payment_coin(-15_000, 750, 1, "-0.0025") == D("-0.05")
