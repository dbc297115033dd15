"""Inverse-contract arithmetic: value, PnL, harmonic entry, fills, fees (sim.inverse)."""

from __future__ import annotations

import decimal
from decimal import Decimal as D

import pytest

from perpsim.sim.errors import OffTick
from perpsim.sim.inverse import (
    Fill,
    apply_fill,
    average_entry,
    coin_value,
    face_value_usd,
    fee_coin,
    pnl_coin,
    side_of,
    signed_contracts,
    to_dec,
)
from perpsim.sim.money import quantize_coin
from perpsim.sim.profile import Rounding

BITMEX_ROUNDING = Rounding(coin_step=D("1e-8"), coin_rule="floor", contract_value_floor=True)
PLAIN_ROUNDING = Rounding(coin_step=D("1e-8"), coin_rule="half_even", contract_value_floor=False)


def test_coin_value_is_face_over_price() -> None:
    assert coin_value(100, 25_000, 100) == D("0.4")
    assert coin_value(-100, 25_000, 100) == D("0.4")  # unsigned
    assert face_value_usd(-100, 100) == D(10_000)


def test_bitmex_floors_each_contract_before_multiplying() -> None:
    # mechanics §0: 2,000 contracts at 1,160.72 cost 172,306,000 sat.
    assert coin_value(2000, "1160.72", 1, BITMEX_ROUNDING) == D("1.72306")
    exact = coin_value(2000, "1160.72", 1)
    assert exact > D("1.72306")  # 1.7230683...: the floor makes a difference
    assert coin_value(2000, "1160.72", 1, PLAIN_ROUNDING) == exact


def test_pnl_sign_convention() -> None:
    assert pnl_coin(15_000, 750, 800, 1) == D("1.25")
    assert pnl_coin(-15_000, 750, 800, 1) == D("-1.25")
    assert pnl_coin(1, 750, 750, 1) == 0


def test_results_do_not_depend_on_caller_context() -> None:
    with decimal.localcontext() as ctx:
        ctx.prec = 5
        low = pnl_coin(1000, 5000, 5500, 1)
    assert low == pnl_coin(1000, 5000, 5500, 1)
    assert len(low.as_tuple().digits) == 28


def test_average_entry_is_harmonic() -> None:
    assert average_entry([(1000, 5000), (2000, 6000)]) == D(5625)
    assert average_entry([(50, 10_000), (-50, 15_000)]) == D(12_000)  # |Q| used
    # the arithmetic mean would be 5,666.67: the wrong answer for inverse
    assert average_entry([(1000, 5000), (2000, 6000)]) != (D(5000) + 2 * D(6000)) / 3


def test_apply_fill_open_add() -> None:
    assert apply_fill(0, None, 1000, 5000, 1) == Fill(1000, D(5000), D(0))
    assert apply_fill(1000, D(5000), 2000, 6000, 1) == Fill(3000, D(5625), D(0))
    assert apply_fill(-10, D(100), -10, 100, 1) == Fill(-20, D(100), D(0))


def test_apply_fill_partial_close_keeps_entry() -> None:
    new = apply_fill(1000, D(5000), -400, 5500, 1)
    assert new.qty_contracts == 600
    assert new.entry_price_usd == D(5000)
    assert new.realised_pnl_coin == pnl_coin(400, 5000, 5500, 1)


def test_apply_fill_full_close() -> None:
    new = apply_fill(-15_000, D(800), 15_000, 750, 1)
    assert new == Fill(0, None, D("1.25"))


def test_apply_fill_flip_through_zero() -> None:
    new = apply_fill(100, D(10_000), -250, 11_000, 10)
    assert new.qty_contracts == -150
    assert new.entry_price_usd == D(11_000)
    assert new.realised_pnl_coin == pnl_coin(100, 10_000, 11_000, 10)


def test_apply_fill_checks_tick_when_given() -> None:
    apply_fill(0, None, 1, "100.5", 1, tick_size="0.5")
    with pytest.raises(OffTick, match="fill_price_usd"):
        apply_fill(0, None, 1, "100.3", 1, tick_size="0.5")


def test_fee_and_rebate() -> None:
    fee = fee_coin(10, 100, 10_104, "0.0005")
    assert fee.quantize(D("1e-9")) == D("0.000049485")
    assert quantize_coin(fee) == D("0.00004949")
    rebate = fee_coin(1000, 1, 10_000, "-0.00025")
    assert rebate == D("-0.000025")
    # BitMEX fee is on the floored contract value
    assert fee_coin(2000, 1, "1160.72", "0.00075", BITMEX_ROUNDING) == D("1.72306") * D("0.00075")


def test_signed_contracts_and_side() -> None:
    assert signed_contracts(-3) == -3
    assert signed_contracts("4") == 4
    assert signed_contracts(0, allow_zero=True) == 0
    assert side_of(5) == 1
    assert side_of(-5) == -1


def test_to_dec_rounds_once() -> None:
    from fractions import Fraction

    assert to_dec(Fraction(1, 4)) == D("0.25")
    assert str(to_dec(Fraction(2, 3))) == "0." + "6" * 27 + "7"
