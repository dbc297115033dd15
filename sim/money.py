"""Exact money: Decimal conversion with validation, coin quantisation, tick checks.

Floats never carry money in perpsim. Inputs from users (strings, ints, Decimals; floats only
when finite, converted through ``repr`` so 0.1 stays 0.1) become Decimals here, and every ledger
posting is quantised to the coin's step (1e-8: one satoshi for BTC) with the profile's rule.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Literal

from perpsim.sim.errors import InvalidInput, InvalidPrice, InvalidQuantity, OffTick

SATOSHI = Decimal("0.00000001")
ZERO = Decimal(0)
ONE = Decimal(1)

# Quantities bigger than this are refused outright: no venue lists anything near it, and it
# keeps every product of price and quantity far inside Decimal's 28-digit default precision.
MAX_ABS_AMOUNT = Decimal("1e15")

# Binance's PRICE_FILTER maxPrice, the same on every COIN-M symbol (its minPrice is the tick).
# Every price that enters the engine (orders, control-plane moves, scenario tapes) lies in
# [tick, MAX_PRICE_USD], so coin values CS/price stay far inside Decimal's precision.
MAX_PRICE_USD = Decimal("1000000000")

_MAX_WHOLE = int(MAX_ABS_AMOUNT)

RoundingRule = Literal["half_even", "half_up", "down", "up", "floor", "ceiling"]
_ROUNDING: dict[str, str] = {
    "half_even": decimal.ROUND_HALF_EVEN,
    "half_up": decimal.ROUND_HALF_UP,
    "down": decimal.ROUND_DOWN,
    "up": decimal.ROUND_UP,
    "floor": decimal.ROUND_FLOOR,
    "ceiling": decimal.ROUND_CEILING,
}

Number = Decimal | int | str | float


def to_decimal(value: object, what: str = "value") -> Decimal:
    """Convert a user-supplied number to a finite Decimal, or raise InvalidInput naming it."""
    # The engine's own Decimals (every price, amount and rate it holds) take the short way.
    if type(value) is Decimal and value.is_finite() and -MAX_ABS_AMOUNT <= value <= MAX_ABS_AMOUNT:
        return value
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a number, not a boolean ({value!r})")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise InvalidInput(f"{what} must be a number, got {value!r}") from None
    else:
        raise InvalidInput(f"{what} must be a number, got {type(value).__name__} {value!r}")
    if not result.is_finite():
        raise InvalidInput(f"{what} must be finite, got {value!r}")
    if abs(result) > MAX_ABS_AMOUNT:
        raise InvalidInput(f"{what} is too large ({value!r}); the limit is {MAX_ABS_AMOUNT:,}")
    return result


def positive_price(value: object, what: str = "price") -> Decimal:
    """A finite, strictly positive price as Decimal, or InvalidPrice naming it."""
    if type(value) is Decimal and value.is_finite() and 0 < value <= MAX_ABS_AMOUNT:
        return value  # the engine's own prices: the checks below would pass it unchanged
    try:
        price = to_decimal(value, what)
    except InvalidInput as exc:
        raise InvalidPrice(str(exc)) from None
    if price <= 0:
        raise InvalidPrice(f"{what} must be positive, got {value!r}")
    return price


def filtered_price(value: object, tick: Decimal, what: str = "price") -> Decimal:
    """A price inside the price filter [tick, MAX_PRICE_USD] (not necessarily on the tick grid),
    or InvalidPrice naming it and the bound it breaks."""
    price = positive_price(value, what)
    if price < tick:
        raise InvalidPrice(f"{what} {value} is below the minimum price {tick} (the tick size)")
    if price > MAX_PRICE_USD:
        raise InvalidPrice(f"{what} {value} is above the maximum price {MAX_PRICE_USD}")
    return price


def positive_quantity(value: object, what: str = "quantity") -> Decimal:
    """A finite, strictly positive quantity as Decimal, or InvalidQuantity naming it."""
    if type(value) is Decimal and value.is_finite() and 0 < value <= MAX_ABS_AMOUNT:
        return value  # the engine's own sizes: the checks below would pass it unchanged
    try:
        qty = to_decimal(value, what)
    except InvalidInput as exc:
        raise InvalidQuantity(str(exc)) from None
    if qty <= 0:
        raise InvalidQuantity(f"{what} must be positive, got {value!r}")
    return qty


def whole_contracts(value: object, what: str = "quantity") -> int:
    """A strictly positive whole number of contracts, or InvalidQuantity naming it."""
    if type(value) is int and 0 < value <= _MAX_WHOLE:
        return value  # the engine's own order sizes: the checks below would pass it unchanged
    qty = positive_quantity(value, what)
    if qty != qty.to_integral_value():
        raise InvalidQuantity(f"{what} must be a whole number of contracts, got {value!r}")
    return int(qty)


def quantize(amount: Decimal, step: Decimal = SATOSHI, rule: RoundingRule = "half_even") -> Decimal:
    """Round ``amount`` to a multiple of ``step`` (any step, e.g. a 0.5 tick) with the rule."""
    units = (amount / step).to_integral_value(rounding=_ROUNDING[rule])
    return (units * step).quantize(step)


def quantize_coin(amount: Decimal, rule: RoundingRule = "half_even") -> Decimal:
    """Round a coin amount to whole satoshis (1e-8) with the named rule."""
    return amount.quantize(SATOSHI, rounding=_ROUNDING[rule])


def round_to_tick(price: Decimal, tick: Decimal, rule: RoundingRule = "half_even") -> Decimal:
    """Round a price to the instrument's tick with the named rule."""
    return quantize(price, tick, rule)


def check_tick(price: Decimal, tick: Decimal, what: str = "price") -> Decimal:
    """Return ``price`` if it lies on the tick grid, else raise OffTick naming both."""
    if price % tick != 0:
        raise OffTick(f"{what} {price} is not a multiple of the tick size {tick}")
    return price
