"""Margin arithmetic: brackets, leverage caps, IM, MM, balances, ratio (sim.margin)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from perpsim.sim.errors import LeverageTooHigh
from perpsim.sim.margin import (
    available_balance,
    bracket_for,
    check_leverage,
    cross_margin_balance,
    initial_margin_coin,
    is_liquidatable,
    isolated_margin_balance,
    leverage_value,
    maintenance_margin_coin,
    margin_ratio,
    max_leverage,
)
from perpsim.sim.profile import load_profile

BTC = load_profile("binance_coinm").instrument("BTCUSD_PERP")
BRACKETS = BTC.brackets


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (0, 1),
        ("4.99999999", 1),
        (5, 2),
        ("9.9", 2),
        (10, 3),
        (50, 5),
        (999, 8),
        (1000, 9),
        (10**6, 9),
    ],
)
def test_bracket_for_uses_half_open_ranges(value: object, number: int) -> None:
    assert bracket_for(BRACKETS, value).bracket == number


def test_max_leverage() -> None:
    assert max_leverage(BRACKETS, 0) == 125
    assert max_leverage(BRACKETS, 25) == 20


def test_check_leverage_accepts_up_to_cap() -> None:
    assert check_leverage(BRACKETS, 1, 125) == 125
    assert check_leverage(BRACKETS, 1, D("2.5")) == D("2.5")
    assert check_leverage(BRACKETS, 60, 1) == 1


def test_check_leverage_names_bracket_and_cap() -> None:
    with pytest.raises(LeverageTooHigh, match=r"cap 20x of bracket 4"):
        check_leverage(BRACKETS, 25, 21)
    with pytest.raises(LeverageTooHigh, match="at least 1"):
        leverage_value(D("0.5"))


def test_initial_margin() -> None:
    assert initial_margin_coin(12_000, 8_000, 1, 50) == D("0.03")
    assert initial_margin_coin(-12_000, 8_000, 1, 50) == D("0.03")


def test_maintenance_margin_with_cum_is_continuous_at_bracket_floor() -> None:
    assert maintenance_margin_coin(100, 25_000, 100, BRACKETS) == D("0.0016")
    # value exactly 5 BTC: bracket 2, 5·0.005 − 0.005 = 0.02 = 5·0.004 (bracket 1 line)
    assert maintenance_margin_coin(1, 20, 100, BRACKETS) == D("0.02")
    # value 60 BTC: 60·5% − 1.605
    assert maintenance_margin_coin(60, 100, 100, BRACKETS) == D("1.395")


def test_margin_ratio() -> None:
    assert margin_ratio(D("0.5"), D(1)) == D("0.5")
    assert margin_ratio(0, 0) == 0
    assert margin_ratio(D("0.1"), 0) == D("Infinity")
    assert margin_ratio(D("0.1"), D("-1")) == D("Infinity")
    assert is_liquidatable(D(1), D(1))
    assert not is_liquidatable(D("0.99"), D(1))


def test_balances() -> None:
    assert isolated_margin_balance(D("0.1"), D("-0.03")) == D("0.07")
    assert cross_margin_balance(D(1), [D("0.2"), D("-0.5")]) == D("0.7")
    assert cross_margin_balance(D(1), []) == D(1)
    assert available_balance(D(1), D("0.3"), D("0.2")) == D("0.5")
    assert available_balance(D(1), D("0.8"), D("0.5")) == 0
