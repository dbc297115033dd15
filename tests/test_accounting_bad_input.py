"""Bad input to every public accounting function raises a typed error naming the argument.

One table per module: (function, good keyword arguments, argument to spoil, bad values, error).
Each row first checks that the good arguments work, so a row cannot pass by accident.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal as D
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from perpsim.sim import funding_math as fm
from perpsim.sim import inverse as inv
from perpsim.sim import liquidation_price as lp
from perpsim.sim import margin as mg
from perpsim.sim.errors import InvalidInput, InvalidPrice, InvalidQuantity, LeverageTooHigh, OffTick
from perpsim.sim.profile import load_profile

BINANCE = load_profile("binance_coinm")
BTC = BINANCE.instrument("BTCUSD_PERP")
BRACKETS = BTC.brackets

# Not numbers at all, or not finite: every numeric argument must refuse these.
NOT_NUMBERS: list[Any] = [
    None,
    "abc",
    "",
    True,
    [1],
    float("nan"),
    D("NaN"),
    D("sNaN"),
    float("inf"),
    D("-Infinity"),
    D("1e400"),
]
PRICES = [*NOT_NUMBERS, 0, -1, "-0.5", D("0")]
SIGNED_QTY = [*NOT_NUMBERS, 0, "1.5", D("0.1")]
POSITIVE = [*NOT_NUMBERS, 0, -1]
RATES = [*NOT_NUMBERS, 1, -1, "1.5"]
LEVERAGES = [*NOT_NUMBERS, 0, "0.5", -3]
AMOUNTS = NOT_NUMBERS
NON_NEGATIVE = [*NOT_NUMBERS, -1, "-0.00000001"]
BAD_BRACKETS: list[Any] = [None, (), [], "abc", [1], (BRACKETS[1], BRACKETS[0]), BRACKETS[1:]]
NOT_A_MODEL: list[Any] = [None, "binance_coinm", 1, BRACKETS]

Row = tuple[Callable[..., Any], dict[str, Any], str, list[Any], type[Exception]]


def params(rows: list[Row]) -> list[Any]:
    out = []
    for fn, good, arg, bads, error in rows:
        for bad in bads:
            out.append(pytest.param(fn, good, arg, bad, error, id=f"{fn.__name__}-{arg}-{bad!r}"))
    return out


def check(fn: Callable[..., Any], good: dict[str, Any], arg: str, bad: Any, error: type) -> None:
    """``arg`` is the keyword to spoil, or "keyword>name" when the message names a part of it."""
    kwarg, _, name = arg.partition(">")
    fn(**good)  # the row's good arguments are accepted
    with pytest.raises(error, match=re.escape(name or kwarg)):
        fn(**{**good, kwarg: bad})


POSITION = {"qty_contracts": 3, "price_usd": 100, "contract_size_usd": 10}
FILL = {
    "qty_contracts": 3,
    "entry_price_usd": D(100),
    "fill_qty_contracts": -1,
    "fill_price_usd": 110,
    "contract_size_usd": 10,
}
FEE = {"qty_contracts": 3, "contract_size_usd": 10, "price_usd": 100, "rate": "0.0005"}

INVERSE: list[Row] = [
    (inv.signed_contracts, {"value": 1}, "value>qty_contracts", SIGNED_QTY, InvalidQuantity),
    (inv.side_of, {"qty_contracts": -2}, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (inv.contract_size, {"value": 1}, "value>contract_size_usd", POSITIVE, InvalidQuantity),
    (inv.rate_value, {"value": "0.1", "what": "rate"}, "value>rate", RATES, InvalidInput),
    (inv.exact, {"value": D(1)}, "value", [None, "1", 1.5, True, D("NaN")], InvalidInput),
    (inv.to_dec, {"value": Fraction(1, 3)}, "value", [None, "1", 1.5, D(1), True], InvalidInput),
    (inv.quotient, {"numerator": -1, "denominator": 3}, "numerator", [None, "1", 1.5, D(1), True],
     InvalidInput),
    (inv.quotient, {"numerator": 1, "denominator": 3}, "denominator",
     [None, 0, -3, 1.5, D(3), True], InvalidInput),
    (
        inv.face_value_usd,
        {"qty_contracts": 1, "contract_size_usd": 10},
        "qty_contracts",
        SIGNED_QTY,
        InvalidQuantity,
    ),
    (
        inv.face_value_usd,
        {"qty_contracts": 1, "contract_size_usd": 10},
        "contract_size_usd",
        POSITIVE,
        InvalidQuantity,
    ),
    (inv.coin_value, POSITION, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (inv.coin_value, POSITION, "price_usd", PRICES, InvalidPrice),
    (inv.coin_value, POSITION, "contract_size_usd", POSITIVE, InvalidQuantity),
    (inv.coin_value, POSITION, "rounding", ["floor", 1, BINANCE.fees], InvalidInput),
    (
        inv.pnl_coin,
        {"qty_contracts": 1, "entry_price_usd": 10, "exit_price_usd": 11, "contract_size_usd": 1},
        "qty_contracts",
        SIGNED_QTY,
        InvalidQuantity,
    ),
    (
        inv.pnl_coin,
        {"qty_contracts": 1, "entry_price_usd": 10, "exit_price_usd": 11, "contract_size_usd": 1},
        "entry_price_usd",
        PRICES,
        InvalidPrice,
    ),
    (
        inv.pnl_coin,
        {"qty_contracts": 1, "entry_price_usd": 10, "exit_price_usd": 11, "contract_size_usd": 1},
        "exit_price_usd",
        PRICES,
        InvalidPrice,
    ),
    (
        inv.pnl_coin,
        {"qty_contracts": 1, "entry_price_usd": 10, "exit_price_usd": 11, "contract_size_usd": 1},
        "contract_size_usd",
        POSITIVE,
        InvalidQuantity,
    ),
    (
        inv.average_entry,
        {"fills": [(1, 100)]},
        "fills",
        [None, "abc", 5, [], [(1,)], [[1, 100]], [(1, 2, 3)]],
        InvalidInput,
    ),
    (
        inv.average_entry,
        {"fills": [(1, 100)]},
        "fills>qty_contracts",
        [[(q, 100)] for q in SIGNED_QTY],
        InvalidQuantity,
    ),
    (
        inv.average_entry,
        {"fills": [(1, 100)]},
        "fills>price_usd",
        [[(1, p)] for p in PRICES],
        InvalidPrice,
    ),
    (inv.apply_fill, FILL, "qty_contracts", [*NOT_NUMBERS, "1.5"], InvalidQuantity),
    (inv.apply_fill, FILL, "entry_price_usd", PRICES, InvalidPrice),
    (inv.apply_fill, FILL, "fill_qty_contracts", SIGNED_QTY, InvalidQuantity),
    (inv.apply_fill, FILL, "fill_price_usd", PRICES, InvalidPrice),
    (inv.apply_fill, FILL, "contract_size_usd", POSITIVE, InvalidQuantity),
    (inv.apply_fill, FILL, "tick_size", PRICES[1:], InvalidPrice),
    (
        inv.apply_fill,
        {**FILL, "tick_size": "0.5"},
        "fill_price_usd",
        ["110.3", D("109.99")],
        OffTick,
    ),
    (
        inv.apply_fill,
        {**FILL, "qty_contracts": 0, "entry_price_usd": None},
        "entry_price_usd",
        [D(100), 0],
        InvalidInput,
    ),
    (inv.fee_coin, FEE, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (inv.fee_coin, FEE, "contract_size_usd", POSITIVE, InvalidQuantity),
    (inv.fee_coin, FEE, "price_usd", PRICES, InvalidPrice),
    (inv.fee_coin, FEE, "rate", RATES, InvalidInput),
    (inv.fee_coin, FEE, "rounding", ["floor", 1], InvalidInput),
]

MARGIN_BAL = {"margin_balance_coin": 1, "position_im_coin": D("0.1"), "order_im_coin": 0}
IM = {"qty_contracts": 3, "price_usd": 100, "contract_size_usd": 10, "leverage": 10}
MM = {"qty_contracts": 3, "price_usd": 100, "contract_size_usd": 10, "brackets": BRACKETS}
LEV = {"brackets": BRACKETS, "value_coin": 1, "leverage": 20}

MARGIN: list[Row] = [
    (mg.brackets_value, {"brackets": BRACKETS}, "brackets", BAD_BRACKETS, InvalidInput),
    (
        mg.bracket_for,
        {"brackets": BRACKETS, "value_coin": 1},
        "brackets",
        BAD_BRACKETS,
        InvalidInput,
    ),
    (
        mg.bracket_for,
        {"brackets": BRACKETS, "value_coin": 1},
        "value_coin",
        NON_NEGATIVE,
        InvalidInput,
    ),
    (
        mg.max_leverage,
        {"brackets": BRACKETS, "value_coin": 1},
        "value_coin",
        NON_NEGATIVE,
        InvalidInput,
    ),
    (
        mg.max_leverage,
        {"brackets": BRACKETS, "value_coin": 1},
        "brackets",
        BAD_BRACKETS,
        InvalidInput,
    ),
    (mg.leverage_value, {"leverage": 5}, "leverage", LEVERAGES, InvalidInput),
    (mg.leverage_value, {"leverage": 5}, "leverage", [0, "0.99", -1], LeverageTooHigh),
    (mg.check_leverage, LEV, "leverage", LEVERAGES, InvalidInput),
    (mg.check_leverage, LEV, "leverage", [126, "125.5", 10**6], LeverageTooHigh),
    (mg.check_leverage, {**LEV, "value_coin": 25}, "leverage", [21, "20.01"], LeverageTooHigh),
    (mg.check_leverage, LEV, "value_coin", NON_NEGATIVE, InvalidInput),
    (mg.check_leverage, LEV, "brackets", BAD_BRACKETS, InvalidInput),
    (mg.initial_margin_coin, IM, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (mg.initial_margin_coin, IM, "price_usd", PRICES, InvalidPrice),
    (mg.initial_margin_coin, IM, "contract_size_usd", POSITIVE, InvalidQuantity),
    (mg.initial_margin_coin, IM, "leverage", LEVERAGES, InvalidInput),
    (mg.maintenance_margin_coin, MM, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (mg.maintenance_margin_coin, MM, "price_usd", PRICES, InvalidPrice),
    (mg.maintenance_margin_coin, MM, "contract_size_usd", POSITIVE, InvalidQuantity),
    (mg.maintenance_margin_coin, MM, "brackets", BAD_BRACKETS, InvalidInput),
    (
        mg.margin_ratio,
        {"maint_margin_coin": 1, "margin_balance_coin": 2},
        "maint_margin_coin",
        NON_NEGATIVE,
        InvalidInput,
    ),
    (
        mg.margin_ratio,
        {"maint_margin_coin": 1, "margin_balance_coin": 2},
        "margin_balance_coin",
        AMOUNTS,
        InvalidInput,
    ),
    (
        mg.is_liquidatable,
        {"maint_margin_coin": 1, "margin_balance_coin": 2},
        "maint_margin_coin",
        NON_NEGATIVE,
        InvalidInput,
    ),
    (
        mg.is_liquidatable,
        {"maint_margin_coin": 1, "margin_balance_coin": 2},
        "margin_balance_coin",
        AMOUNTS,
        InvalidInput,
    ),
    (
        mg.isolated_margin_balance,
        {"isolated_wallet_coin": 1, "unrealised_pnl_coin": -1},
        "isolated_wallet_coin",
        NON_NEGATIVE,
        InvalidInput,
    ),
    (
        mg.isolated_margin_balance,
        {"isolated_wallet_coin": 1, "unrealised_pnl_coin": -1},
        "unrealised_pnl_coin",
        AMOUNTS,
        InvalidInput,
    ),
    (
        mg.cross_margin_balance,
        {"wallet_balance_coin": 1, "unrealised_pnls_coin": [1]},
        "wallet_balance_coin",
        AMOUNTS,
        InvalidInput,
    ),
    (
        mg.cross_margin_balance,
        {"wallet_balance_coin": 1, "unrealised_pnls_coin": [1]},
        "unrealised_pnls_coin",
        [None, "abc", 5, *[[x] for x in AMOUNTS]],
        InvalidInput,
    ),
    (mg.available_balance, MARGIN_BAL, "margin_balance_coin", AMOUNTS, InvalidInput),
    (mg.available_balance, MARGIN_BAL, "position_im_coin", NON_NEGATIVE, InvalidInput),
    (mg.available_balance, MARGIN_BAL, "order_im_coin", NON_NEGATIVE, InvalidInput),
]

SOLVE = {
    "qty_contracts": 3,
    "entry_price_usd": 50_000,
    "contract_size_usd": 100,
    "margin_coin": D("0.001"),
    "brackets": BRACKETS,
}
BP = {k: v for k, v in SOLVE.items() if k != "brackets"}
EXIT = {
    "qty_contracts": 3,
    "contract_size_usd": 100,
    "bankruptcy_price_usd": D(49_000),
    "exit_fee_rate": "0.00075",
    "funding_rate": "0.0001",
}
ROUND = {
    "price_usd": D("100.2"),
    "qty_contracts": 1,
    "tick_size": "0.5",
    "rounding": "tick_conservative",
}
ISO = {
    "profile": BINANCE,
    "instrument": BTC,
    "qty_contracts": 3,
    "entry_price_usd": 50_000,
    "isolated_margin_coin": D("0.001"),
    "funding_rate": 0,
}
CROSS = {
    "profile": BINANCE,
    "instrument": BTC,
    "qty_contracts": 3,
    "entry_price_usd": 50_000,
    "wallet_balance_coin": D("0.001"),
    "other_unrealised_pnl_coin": 0,
    "other_maint_margin_coin": 0,
    "funding_rate": 0,
}
HEDGE = {
    "profile": BINANCE,
    "instrument": BTC,
    "long_qty": 3,
    "long_entry_usd": 50_000,
    "short_qty": -1,
    "short_entry_usd": 50_000,
    "wallet_balance_coin": D("0.001"),
    "other_unrealised_pnl_coin": 0,
    "other_maint_margin_coin": 0,
    "mark_price_usd": 50_000,
}
SOLVED_PRICES = [None, "abc", 1, D(0), D(-1), D("NaN"), D("sNaN"), D("-Infinity")]

LIQUIDATION: list[Row] = [
    *[
        (fn, SOLVE, "qty_contracts", SIGNED_QTY, InvalidQuantity)
        for fn in (lp.liquidation_price_mm_at_lp, lp.liquidation_price_mm_at_entry)
    ],
    *[
        (fn, SOLVE, "entry_price_usd", PRICES, InvalidPrice)
        for fn in (lp.liquidation_price_mm_at_lp, lp.liquidation_price_mm_at_entry)
    ],
    *[
        (fn, SOLVE, "contract_size_usd", POSITIVE, InvalidQuantity)
        for fn in (lp.liquidation_price_mm_at_lp, lp.liquidation_price_mm_at_entry)
    ],
    *[
        (fn, SOLVE, "margin_coin", AMOUNTS, InvalidInput)
        for fn in (lp.liquidation_price_mm_at_lp, lp.liquidation_price_mm_at_entry)
    ],
    *[
        (fn, SOLVE, "brackets", BAD_BRACKETS, InvalidInput)
        for fn in (lp.liquidation_price_mm_at_lp, lp.liquidation_price_mm_at_entry)
    ],
    *[
        (fn, SOLVE, "extra_mm_coin", NON_NEGATIVE, InvalidInput)
        for fn in (lp.liquidation_price_mm_at_lp, lp.liquidation_price_mm_at_entry)
    ],
    (lp.bankruptcy_price, BP, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (lp.bankruptcy_price, BP, "entry_price_usd", PRICES, InvalidPrice),
    (lp.bankruptcy_price, BP, "contract_size_usd", POSITIVE, InvalidQuantity),
    (lp.bankruptcy_price, BP, "margin_coin", AMOUNTS, InvalidInput),
    (lp.bankruptcy_price, {**BP, "close_fee_rate": "0.00075"}, "close_fee_rate",
     [*RATES, "-0.0001"], InvalidInput),
    (lp.exit_costs_coin, EXIT, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (lp.exit_costs_coin, EXIT, "contract_size_usd", POSITIVE, InvalidQuantity),
    (lp.exit_costs_coin, EXIT, "bankruptcy_price_usd", SOLVED_PRICES[1:], InvalidPrice),
    (lp.exit_costs_coin, EXIT, "exit_fee_rate", [*RATES, "-0.0001"], InvalidInput),
    (lp.exit_costs_coin, EXIT, "funding_rate", RATES, InvalidInput),
    (lp.round_price, ROUND, "price_usd", SOLVED_PRICES[1:], InvalidPrice),
    (lp.round_price, ROUND, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (lp.round_price, ROUND, "tick_size", PRICES, InvalidPrice),
    (lp.round_price, ROUND, "rounding", [None, "up", "", 1], InvalidInput),
    (lp.isolated_prices, ISO, "profile", NOT_A_MODEL, InvalidInput),
    (lp.isolated_prices, ISO, "instrument", NOT_A_MODEL, InvalidInput),
    (lp.isolated_prices, ISO, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (lp.isolated_prices, ISO, "entry_price_usd", PRICES, InvalidPrice),
    (lp.isolated_prices, ISO, "isolated_margin_coin", NON_NEGATIVE, InvalidInput),
    (lp.isolated_prices, ISO, "funding_rate", RATES, InvalidInput),
    (lp.cross_prices, CROSS, "profile", NOT_A_MODEL, InvalidInput),
    (lp.cross_prices, CROSS, "instrument", NOT_A_MODEL, InvalidInput),
    (lp.cross_prices, CROSS, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (lp.cross_prices, CROSS, "entry_price_usd", PRICES, InvalidPrice),
    (lp.cross_prices, CROSS, "wallet_balance_coin", AMOUNTS, InvalidInput),
    (lp.cross_prices, CROSS, "other_unrealised_pnl_coin", AMOUNTS, InvalidInput),
    (lp.cross_prices, CROSS, "other_maint_margin_coin", NON_NEGATIVE, InvalidInput),
    (lp.cross_prices, CROSS, "funding_rate", RATES, InvalidInput),
    (lp.cross_hedge_prices, HEDGE, "profile", NOT_A_MODEL, InvalidInput),
    (lp.cross_hedge_prices, HEDGE, "instrument", NOT_A_MODEL, InvalidInput),
    (lp.cross_hedge_prices, HEDGE, "long_qty", [*SIGNED_QTY, -3], InvalidQuantity),
    (lp.cross_hedge_prices, HEDGE, "short_qty", [*SIGNED_QTY, 3], InvalidQuantity),
    (lp.cross_hedge_prices, HEDGE, "long_entry_usd", PRICES, InvalidPrice),
    (lp.cross_hedge_prices, HEDGE, "short_entry_usd", PRICES, InvalidPrice),
    (lp.cross_hedge_prices, HEDGE, "wallet_balance_coin", AMOUNTS, InvalidInput),
    (lp.cross_hedge_prices, HEDGE, "other_unrealised_pnl_coin", AMOUNTS, InvalidInput),
    (lp.cross_hedge_prices, HEDGE, "other_maint_margin_coin", NON_NEGATIVE, InvalidInput),
    (lp.cross_hedge_prices, HEDGE, "mark_price_usd", PRICES, InvalidPrice),
]

LEVELS = [(D(100), 10), (D("100.5"), 10)]
IMPACT = {"notional_usd": 15, "levels": LEVELS, "contract_size_usd": 1, "tick_size": "0.5"}
CLAMP = {
    "average_premium_rate": "0.001",
    "interest_rate": "0.0001",
    "clamp": "0.0005",
    "cap": "0.003",
}
RATE = {
    "samples": [D("0.001")],
    "interest_rate": "0.0001",
    "clamp": "0.0005",
    "cap": "0.003",
    "averaging": "weighted",
}
PAY = {"qty_contracts": 3, "mark_price_usd": 100, "contract_size_usd": 10, "funding_rate": "0.0001"}
UNITS = {"qty_contracts": np.array([3, -7]), "mark_price_usd": 100, "contract_size_usd": 10,
         "funding_rate": "0.0001", "step": D("0.00000001"), "rule": "half_even"}
PREMIUM = {"impact_bid_usd": 99, "impact_ask_usd": 101, "index_price_usd": 100}

FUNDING: list[Row] = [
    (fm.impact_price, IMPACT, "notional_usd", POSITIVE, InvalidQuantity),
    (fm.impact_price, IMPACT, "notional_usd", [10**6], InvalidInput),  # book too thin
    (fm.impact_price, IMPACT, "contract_size_usd", POSITIVE, InvalidQuantity),
    (fm.impact_price, IMPACT, "tick_size", PRICES[1:], InvalidPrice),
    (
        fm.impact_price,
        IMPACT,
        "levels",
        [
            None,
            "abc",
            5,
            [],
            [(100,)],
            [[100, 10]],
            [(D(100), 10), (D(100), 10)],
            [(D(100), 10), (D(101), 10), (D(99), 10)],
        ],
        InvalidInput,
    ),
    (fm.impact_price, IMPACT, "levels>price_usd", [[(p, 1000)] for p in PRICES], InvalidPrice),
    (fm.impact_price, IMPACT, "levels>price_usd", [[(D("100.2"), 1000)]], OffTick),
    (
        fm.impact_price,
        IMPACT,
        "levels>contracts",
        [[(D(100), q)] for q in [*SIGNED_QTY, -5]],
        InvalidInput,
    ),
    (fm.premium_sample, PREMIUM, "impact_bid_usd", PRICES, InvalidPrice),
    (fm.premium_sample, PREMIUM, "impact_ask_usd", PRICES, InvalidPrice),
    (fm.premium_sample, PREMIUM, "index_price_usd", PRICES, InvalidPrice),
    (
        fm.average_premium,
        {"samples": [1], "averaging": "plain"},
        "samples",
        [None, "abc", 5, [], *[[x] for x in AMOUNTS]],
        InvalidInput,
    ),
    (
        fm.average_premium,
        {"samples": [1], "averaging": "plain"},
        "averaging",
        [None, "median", 1],
        InvalidInput,
    ),
    (fm.clamp_funding_rate, CLAMP, "average_premium_rate", AMOUNTS, InvalidInput),
    (fm.clamp_funding_rate, CLAMP, "interest_rate", RATES, InvalidInput),
    (fm.clamp_funding_rate, CLAMP, "clamp", [*RATES, "-0.0001"], InvalidInput),
    (fm.clamp_funding_rate, CLAMP, "cap", [*RATES, 0, "-0.003"], InvalidInput),
    (fm.funding_rate, RATE, "samples", [None, [], ["abc"]], InvalidInput),
    (fm.funding_rate, RATE, "interest_rate", RATES, InvalidInput),
    (fm.funding_rate, RATE, "clamp", RATES, InvalidInput),
    (fm.funding_rate, RATE, "cap", [*RATES, 0], InvalidInput),
    (fm.funding_rate, RATE, "averaging", ["median"], InvalidInput),
    (
        fm.funding_rate_for,
        {"profile": BINANCE, "instrument": BTC, "samples": [0]},
        "profile",
        NOT_A_MODEL,
        InvalidInput,
    ),
    (
        fm.funding_rate_for,
        {"profile": BINANCE, "instrument": BTC, "samples": [0]},
        "instrument",
        NOT_A_MODEL,
        InvalidInput,
    ),
    (
        fm.funding_rate_for,
        {"profile": BINANCE, "instrument": BTC, "samples": [0]},
        "samples",
        [None, [], [None]],
        InvalidInput,
    ),
    (fm.funding_payment_coin, PAY, "qty_contracts", SIGNED_QTY, InvalidQuantity),
    (fm.funding_payment_coin, PAY, "mark_price_usd", PRICES, InvalidPrice),
    (fm.funding_payment_coin, PAY, "contract_size_usd", POSITIVE, InvalidQuantity),
    (fm.funding_payment_coin, PAY, "funding_rate", RATES, InvalidInput),
    (fm.payment_units, UNITS, "qty_contracts",
     [None, "abc", 3, np.array([1.5]), np.array([0, 1]), np.array([[1]]), [0], [1.5]],
     InvalidQuantity),
    (fm.payment_units, UNITS, "mark_price_usd", PRICES, InvalidPrice),
    (fm.payment_units, UNITS, "contract_size_usd", POSITIVE, InvalidQuantity),
    (fm.payment_units, UNITS, "funding_rate", RATES, InvalidInput),
    (fm.payment_units, UNITS, "step", POSITIVE, InvalidQuantity),
    (fm.payment_units, UNITS, "rule", ["nearest", None], InvalidInput),
]


@pytest.mark.parametrize(("fn", "good", "arg", "bad", "error"), params(INVERSE))
def test_inverse_bad_input(fn: Any, good: dict[str, Any], arg: str, bad: Any, error: type) -> None:
    check(fn, good, arg, bad, error)


@pytest.mark.parametrize(("fn", "good", "arg", "bad", "error"), params(MARGIN))
def test_margin_bad_input(fn: Any, good: dict[str, Any], arg: str, bad: Any, error: type) -> None:
    check(fn, good, arg, bad, error)


@pytest.mark.parametrize(("fn", "good", "arg", "bad", "error"), params(LIQUIDATION))
def test_liquidation_price_bad_input(
    fn: Any, good: dict[str, Any], arg: str, bad: Any, error: type
) -> None:
    check(fn, good, arg, bad, error)


@pytest.mark.parametrize(("fn", "good", "arg", "bad", "error"), params(FUNDING))
def test_funding_math_bad_input(
    fn: Any, good: dict[str, Any], arg: str, bad: Any, error: type
) -> None:
    check(fn, good, arg, bad, error)


def test_every_public_function_has_a_row() -> None:
    tested = {fn for rows in (INVERSE, MARGIN, LIQUIDATION, FUNDING) for fn, *_ in rows}
    for module in (inv, mg, lp, fm):
        public = {
            obj
            for name, obj in vars(module).items()
            if callable(obj)
            and not name.startswith("_")
            and getattr(obj, "__module__", None) == module.__name__
            and not isinstance(obj, type)
        }
        assert public <= tested, f"{module.__name__}: no bad-input row for {public - tested}"
