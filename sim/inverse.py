"""Pure inverse-contract arithmetic: coin value, PnL, harmonic entry, fills, fees (mechanics §0).

An inverse contract is quoted in USD but margined and settled in coin: N = |Q|·CS USD is worth
N/P coin at price P. Every function here is pure (no state, no I/O, no clock) and exact: each
Decimal input is taken as its exact integer ratio, the formula is worked out as one integer
numerator over one integer denominator, and the quotient is rounded once, to ``PRECISION``
significant digits, when it becomes a Decimal (``quotient``). So the answer never depends on the
caller's decimal context, and identities such as "open and close at the same price realise
exactly zero" hold exactly. (This is the rational arithmetic of ``fractions.Fraction`` without
its per-operation gcd and object: the liquidation waterfall makes millions of these calls, and
the rounded result is the same Decimal, digit for digit — tests/test_inverse.py checks it
against Fraction over wide ranges.) Quantisation to the coin step is *not* done
here (except the BitMEX per-contract floor, which is part of the value itself): the ledger
quantises at each posting with the profile's rule.

Quantities measuring a position or a trade must be non-zero whole contracts; only
``apply_fill``'s current position may be flat (0, with entry ``None``).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

from perpsim.sim.errors import InvalidInput, InvalidQuantity
from perpsim.sim.money import (
    MAX_ABS_AMOUNT,
    check_tick,
    positive_price,
    positive_quantity,
    to_decimal,
)
from perpsim.sim.profile import Rounding

# 28 significant digits, the default of Python's decimal context: ample (a 1e6-coin amount still
# resolves 1e-22), and a result then passes unchanged through a caller's default-context
# arithmetic such as unary minus. Fixed here so the caller's context can never change a result.
PRECISION = 28
_CTX = decimal.Context(prec=PRECISION, rounding=decimal.ROUND_HALF_EVEN)
_MAX_CONTRACTS = int(MAX_ABS_AMOUNT)  # to_decimal's limit, for the int fast path


def exact(value: Decimal | int | Fraction) -> Fraction:
    """The exact rational value of a finite Decimal, int or Fraction (no rounding)."""
    if type(value) is Decimal and value.is_finite():
        # Two ints take Fraction's short way (no ABC checks); the ratio is already reduced.
        return Fraction(*value.as_integer_ratio())
    if isinstance(value, bool) or not isinstance(value, Decimal | int | Fraction):
        raise InvalidInput(f"value must be a Decimal, int or Fraction, got {value!r}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise InvalidInput(f"value must be finite, got {value!r}")
    return Fraction(value)


def to_dec(value: Fraction | int) -> Decimal:
    """Round an exact rational to a Decimal of ``PRECISION`` digits, half-even, once."""
    if isinstance(value, bool) or not isinstance(value, Fraction | int):
        raise InvalidInput(f"value must be a Fraction or int, got {value!r}")
    value = Fraction(value)
    return quotient(value.numerator, value.denominator)


def quotient(numerator: int, denominator: int) -> Decimal:
    """numerator / denominator (ints, denominator > 0) rounded once to ``PRECISION`` digits.

    Decimal division is computed exactly and rounded once (half-even), so this is correctly
    rounded; and with two integer operands the result's digits and exponent depend only on the
    value (an exact 5625 or 0.05 comes back with no trailing digits), so an unreduced pair gives
    the very Decimal its reduced form — ``to_dec(Fraction(numerator, denominator))`` — gives.
    A positive denominator keeps a zero result unsigned (0/−5 would be −0).
    """
    if type(numerator) is not int:
        raise InvalidInput(f"numerator must be an int, got {numerator!r}")
    if type(denominator) is not int or denominator <= 0:
        raise InvalidInput(f"denominator must be a positive int, got {denominator!r}")
    return _CTX.divide(Decimal(numerator), Decimal(denominator))


def signed_contracts(
    value: object, what: str = "qty_contracts", *, allow_zero: bool = False
) -> int:
    """A signed whole number of contracts (+ long, − short), or InvalidQuantity naming it."""
    # The engine's own ints (every position and fill) take the short way: same answer.
    if type(value) is int and -_MAX_CONTRACTS <= value <= _MAX_CONTRACTS \
            and (value or allow_zero):
        return value
    try:
        qty = to_decimal(value, what)
    except InvalidInput as exc:
        raise InvalidQuantity(str(exc)) from None
    if qty != qty.to_integral_value():
        raise InvalidQuantity(f"{what} must be a whole number of contracts, got {value!r}")
    if qty == 0 and not allow_zero:
        raise InvalidQuantity(f"{what} must be non-zero (+ long, − short), got {value!r}")
    return int(qty)


def side_of(qty_contracts: object) -> int:
    """+1 for a long (qty > 0), −1 for a short (qty < 0); zero is an error."""
    return 1 if signed_contracts(qty_contracts) > 0 else -1


def contract_size(value: object) -> Decimal:
    """A validated contract size in USD (strictly positive), or InvalidQuantity."""
    return positive_quantity(value, "contract_size_usd")


def rate_value(value: object, what: str = "rate") -> Decimal:
    """A fee or funding rate: finite and strictly between −1 and 1, or InvalidInput naming it."""
    rate = to_decimal(value, what)
    if not -1 < rate < 1:
        raise InvalidInput(f"{what} must lie strictly between -1 and 1, got {value!r}")
    return rate


def face_value_usd(qty_contracts: object, contract_size_usd: object) -> Decimal:
    """N = |Q|·CS, the position's face value in USD (constant while held)."""
    qty = signed_contracts(qty_contracts)
    return abs(qty) * contract_size(contract_size_usd)


def coin_value(
    qty_contracts: object,
    price_usd: object,
    contract_size_usd: object,
    rounding: Rounding | None = None,
) -> Decimal:
    """Unsigned coin value N/P of |Q| contracts at ``price_usd`` (BitMEX floor if configured)."""
    qty = signed_contracts(qty_contracts)
    price = positive_price(price_usd, "price_usd")
    cs = contract_size(contract_size_usd)
    if rounding is not None and not isinstance(rounding, Rounding):
        raise InvalidInput(f"rounding must be a Rounding or None, got {type(rounding).__name__}")
    price_n, price_d = price.as_integer_ratio()
    cs_n, cs_d = cs.as_integer_ratio()
    if rounding is not None and rounding.contract_value_floor:
        # BitMEX values one contract in whole satoshis (floored), then multiplies: 2,000 at
        # 1,160.72 is 2,000 × 86,153 sat = 172,306,000 sat, not round(2,000/1,160.72 BTC).
        step_n, step_d = rounding.coin_step.as_integer_ratio()
        # floor(CS / P / step): both sides positive, so // is the floor.
        steps_per_contract = (cs_n * price_d * step_d) // (cs_d * price_n * step_n)
        return quotient(steps_per_contract * step_n * abs(qty), step_d)
    # |Q|·CS/P = |Q|·(cs_n/cs_d)·(price_d/price_n)
    return quotient(abs(qty) * cs_n * price_d, cs_d * price_n)


def pnl_coin(
    qty_contracts: object,
    entry_price_usd: object,
    exit_price_usd: object,
    contract_size_usd: object,
) -> Decimal:
    """Signed PnL in coin, side·N·(1/EP − 1/XP); use the mark as exit for unrealised PnL."""
    qty = signed_contracts(qty_contracts)
    entry = positive_price(entry_price_usd, "entry_price_usd")
    exit_ = positive_price(exit_price_usd, "exit_price_usd")
    cs = contract_size(contract_size_usd)
    return quotient(*_pnl_ratio(qty, entry, exit_, cs))


def _pnl_ratio(qty: int, entry: Decimal, exit_: Decimal, cs: Decimal) -> tuple[int, int]:
    """Q·CS·(1/EP − 1/XP) as (numerator, denominator > 0) of validated inputs.

    The sign of Q is the side, so no separate side factor is needed. With EP = e/ed,
    XP = x/xd, CS = c/cd: Q·(c/cd)·(ed/e − xd/x) = Q·c·(ed·x − xd·e) / (cd·e·x).
    """
    e, ed = entry.as_integer_ratio()
    x, xd = exit_.as_integer_ratio()
    c, cd = cs.as_integer_ratio()
    return qty * c * (ed * x - xd * e), cd * e * x


def average_entry(fills: Iterable[tuple[object, object]]) -> Decimal:
    """Harmonic average entry Σ|Q_i| / Σ(|Q_i|/P_i) of (qty_contracts, price_usd) fills."""
    total_qty = 0
    # Σ|Q_i|/P_i kept as one unreduced fraction coin_n / coin_d (P_i = n_i/d_i).
    coin_n, coin_d = 0, 1
    for i, fill in enumerate(_iterable(fills, "fills")):
        if not isinstance(fill, tuple) or len(fill) != 2:
            raise InvalidInput(
                f"fills[{i}] must be a (qty_contracts, price_usd) pair, got {fill!r}"
            )
        qty = abs(signed_contracts(fill[0], f"fills[{i}] qty_contracts"))
        price = positive_price(fill[1], f"fills[{i}] price_usd")
        total_qty += qty
        price_n, price_d = price.as_integer_ratio()
        coin_n, coin_d = coin_n * price_n + qty * price_d * coin_d, coin_d * price_n
    if total_qty == 0:
        raise InvalidInput("fills must not be empty")
    # CS cancels out of the harmonic mean, so it is not a parameter.
    return quotient(total_qty * coin_d, coin_n)


def _iterable(value: object, what: str) -> Iterable[object]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidInput(f"{what} must be a sequence, got {type(value).__name__}")
    return value


class Fill(NamedTuple):
    """A position after a fill: signed contracts, entry (None when flat), PnL realised by it."""

    qty_contracts: int
    entry_price_usd: Decimal | None
    realised_pnl_coin: Decimal


def apply_fill(
    qty_contracts: object,
    entry_price_usd: object,
    fill_qty_contracts: object,
    fill_price_usd: object,
    contract_size_usd: object,
    *,
    tick_size: object = None,
    rounding: Rounding | None = None,
) -> Fill:
    """Apply a signed fill to a position: add (harmonic entry), reduce, close, or flip.

    With ``rounding.entry_lot_contracts`` (BitMEX) an add averages per-lot coin values rounded
    to the coin step instead (see ``lot_average_entry``).
    """
    qty = signed_contracts(qty_contracts, "qty_contracts", allow_zero=True)
    fill_qty = signed_contracts(fill_qty_contracts, "fill_qty_contracts")
    price = positive_price(fill_price_usd, "fill_price_usd")
    cs = contract_size(contract_size_usd)
    if tick_size is not None:
        check_tick(price, positive_price(tick_size, "tick_size"), "fill_price_usd")
    if qty == 0:
        if entry_price_usd is not None:
            raise InvalidInput(
                f"entry_price_usd must be None for a flat position, got {entry_price_usd!r}"
            )
        return Fill(fill_qty, price, Decimal(0))
    entry = positive_price(entry_price_usd, "entry_price_usd")
    if (qty > 0) == (fill_qty > 0):
        if rounding is not None and rounding.entry_lot_contracts is not None:
            lot_entry = _lot_average_entry(qty, exact(entry), fill_qty, exact(price), rounding)
            return Fill(qty + fill_qty, to_dec(lot_entry), Decimal(0))
        # Adding: harmonic mean of the old entry and the fill, one rounding:
        # (|Q|+|F|) / (|Q|·ed/e + |F|·fd/f) = (|Q|+|F|)·e·f / (|Q|·ed·f + |F|·fd·e).
        e, ed = entry.as_integer_ratio()
        f, fd = price.as_integer_ratio()
        held, added = abs(qty), abs(fill_qty)
        new_entry = quotient((held + added) * e * f, held * ed * f + added * fd * e)
        return Fill(qty + fill_qty, new_entry, Decimal(0))
    closed = min(abs(qty), abs(fill_qty))
    sign = 1 if qty > 0 else -1
    realised = quotient(*_pnl_ratio(sign * closed, entry, price, cs))
    new_qty = qty + fill_qty
    if new_qty == 0:
        return Fill(0, None, realised)
    if (new_qty > 0) == (qty > 0):
        # A partial close realises PnL on the closed part; the rest keeps its entry.
        return Fill(new_qty, entry, realised)
    # A flip through zero: the excess opens a new position at the fill price.
    return Fill(new_qty, price, realised)


def _lot_average_entry(
    qty: int, entry: Fraction, fill_qty: int, fill_price: Fraction, rounding: Rounding
) -> Fraction:
    """BitMEX average entry: per-lot satoshi values, floored (long) or rounded (short).

    support.bitmex.com 6205210741277: "Satoshi Value = lot size/Fill Price ... For short XBT
    positions, round ... For long XBT positions, floor ... to the 8th decimal place"; 100 @
    29,800 + 200 @ 30,000 = 29,933.07. perpsim keeps no separate cost, so the held part's
    per-lot value is re-derived from its entry with the same rule: exact when that entry is a
    fill price (the published case), within one coin step per lot after several adds.
    """
    assert rounding.entry_lot_contracts is not None
    lot = rounding.entry_lot_contracts
    step = exact(rounding.coin_step)

    def lot_value(price: Fraction) -> Fraction:
        steps = lot / price / step
        # Longs floor; shorts round half up to the nearest step.
        units = math.floor(steps) if qty > 0 else math.floor(steps + Fraction(1, 2))
        return units * step

    total = abs(qty) + abs(fill_qty)
    average = (abs(qty) * lot_value(entry) + abs(fill_qty) * lot_value(fill_price)) / total
    return lot / average


def fee_coin(
    qty_contracts: object,
    contract_size_usd: object,
    price_usd: object,
    rate: object,
    rounding: Rounding | None = None,
) -> Decimal:
    """Trading fee in coin, N/trade price·rate (negative rate: a rebate, returned negative)."""
    fee_rate = rate_value(rate, "rate")
    value = coin_value(qty_contracts, price_usd, contract_size_usd, rounding)
    value_n, value_d = value.as_integer_ratio()
    rate_n, rate_d = fee_rate.as_integer_ratio()
    return quotient(value_n * rate_n, value_d * rate_d)
