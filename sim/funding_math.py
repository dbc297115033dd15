"""Pure funding arithmetic: impact price, premium sample, rate from samples, payment (mechanics §4).

Template shared by Binance, Bybit, BitMEX and new OKX:
    premium sample P = [max(0, ImpactBid − Index) − max(0, Index − ImpactAsk)] / Index
    F = P̄ + clamp(I − P̄, −c, +c), then clamped to ±cap
where P̄ is the weighted (sample i weight i, 1-based: Binance, Bybit) or plain (BitMEX) mean.
Payment at a funding time is N/MP·F coin; F > 0: longs pay shorts. Results are exact (see
sim.inverse): rates are not quantised here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Literal

import numpy as np

from perpsim.sim.errors import InvalidInput, InvalidQuantity
from perpsim.sim.inverse import (
    coin_value,
    contract_size,
    exact,
    rate_value,
    signed_contracts,
    to_dec,
)
from perpsim.sim.money import (
    RoundingRule,
    check_tick,
    positive_price,
    positive_quantity,
    quantize,
    to_decimal,
)
from perpsim.sim.profile import Instrument, Profile

Averaging = Literal["weighted", "plain"]


def impact_price(
    notional_usd: object,
    levels: Sequence[tuple[object, object]],
    contract_size_usd: object,
    *,
    tick_size: object = None,
) -> Decimal:
    """Average fill price of a USD notional against (price_usd, contracts) levels, best first.

    For an inverse contract the average is harmonic: N / Σ coin bought. Pass asks ascending
    for the impact ask, bids descending for the impact bid. InvalidInput if the book is short.
    """
    notional = positive_quantity(notional_usd, "notional_usd")
    cs = contract_size(contract_size_usd)
    tick = None if tick_size is None else positive_price(tick_size, "tick_size")
    if isinstance(levels, str | bytes) or not isinstance(levels, Sequence):
        raise InvalidInput(f"levels must be a sequence of (price_usd, contracts), got {levels!r}")
    if not levels:
        raise InvalidInput(f"levels must not be empty: no book to fill notional_usd {notional}")
    remaining = exact(notional)
    coin = Fraction(0)
    previous: Decimal | None = None
    direction = 0
    for i, level in enumerate(levels):
        if not isinstance(level, tuple) or len(level) != 2:
            raise InvalidInput(f"levels[{i}] must be a (price_usd, contracts) pair, got {level!r}")
        price = positive_price(level[0], f"levels[{i}] price_usd")
        if tick is not None:
            check_tick(price, tick, f"levels[{i}] price_usd")
        contracts = signed_contracts(level[1], f"levels[{i}] contracts")
        if contracts < 0:
            raise InvalidInput(f"levels[{i}] contracts must be positive, got {level[1]!r}")
        if previous is not None:
            # Best first means strictly monotonic in one direction (asks up, bids down).
            step = 1 if price > previous else -1 if price < previous else 0
            if step == 0 or (direction and step != direction):
                raise InvalidInput(f"levels must be best first and strictly monotonic (entry {i})")
            direction = step
        previous = price
        if remaining > 0:
            take = min(remaining, contracts * exact(cs))
            coin += take / exact(price)
            remaining -= take
    if remaining > 0:
        raise InvalidInput(
            f"the book cannot fill notional_usd {notional}: {to_dec(remaining)} USD short"
        )
    return to_dec(exact(notional) / coin)


def premium_sample(
    impact_bid_usd: object, impact_ask_usd: object, index_price_usd: object
) -> Decimal:
    """P = [max(0, ImpactBid − Index) − max(0, Index − ImpactAsk)] / Index."""
    bid = exact(positive_price(impact_bid_usd, "impact_bid_usd"))
    ask = exact(positive_price(impact_ask_usd, "impact_ask_usd"))
    index = exact(positive_price(index_price_usd, "index_price_usd"))
    zero = Fraction(0)
    return to_dec((max(zero, bid - index) - max(zero, index - ask)) / index)


def average_premium(samples: Iterable[object], averaging: Averaging = "weighted") -> Decimal:
    """P̄ of premium samples, oldest first: weighted (Σ i·P_i / Σ i, i from 1) or plain mean."""
    if averaging not in ("weighted", "plain"):
        raise InvalidInput(f"averaging must be 'weighted' or 'plain', got {averaging!r}")
    if isinstance(samples, str | bytes) or not isinstance(samples, Iterable):
        raise InvalidInput(f"samples must be a sequence of premium samples, got {samples!r}")
    total = Fraction(0)
    weights = 0
    for i, sample in enumerate(samples, start=1):
        value = exact(to_decimal(sample, f"samples[{i - 1}]"))
        weight = i if averaging == "weighted" else 1
        total += weight * value
        weights += weight
    if weights == 0:
        raise InvalidInput("samples must not be empty")
    return to_dec(total / weights)


def clamp_funding_rate(
    average_premium_rate: object, *, interest_rate: object, clamp: object, cap: object
) -> Decimal:
    """F = P̄ + clamp(I − P̄, −clamp, +clamp), then clamped to ±cap."""
    p = exact(to_decimal(average_premium_rate, "average_premium_rate"))
    i = exact(rate_value(interest_rate, "interest_rate"))
    c = exact(rate_value(clamp, "clamp"))
    limit = exact(rate_value(cap, "cap"))
    if c < 0:
        raise InvalidInput(f"clamp must not be negative, got {clamp!r}")
    if limit <= 0:
        raise InvalidInput(f"cap must be positive, got {cap!r}")
    rate = p + min(c, max(-c, i - p))
    return to_dec(min(limit, max(-limit, rate)))


def funding_rate(
    samples: Iterable[object],
    *,
    interest_rate: object,
    clamp: object,
    cap: object,
    averaging: Averaging = "weighted",
) -> Decimal:
    """The funding rate of a window of premium samples (oldest first), per the template."""
    p_bar = average_premium(samples, averaging)
    return clamp_funding_rate(p_bar, interest_rate=interest_rate, clamp=clamp, cap=cap)


def funding_rate_for(
    profile: Profile, instrument: Instrument, samples: Iterable[object]
) -> Decimal:
    """funding_rate with the profile's interest, clamp and averaging and the symbol's cap."""
    if not isinstance(profile, Profile):
        raise InvalidInput(f"profile must be a Profile, got {type(profile).__name__}")
    if not isinstance(instrument, Instrument):
        raise InvalidInput(f"instrument must be an Instrument, got {type(instrument).__name__}")
    f = profile.funding
    return funding_rate(
        samples,
        interest_rate=f.interest_rate,
        clamp=f.clamp,
        cap=instrument.funding_cap,
        averaging=f.averaging,
    )


def funding_payment_coin(
    qty_contracts: object, mark_price_usd: object, contract_size_usd: object, funding_rate: object
) -> Decimal:
    """Coin the ACCOUNT RECEIVES at a funding time, −side·N/MP·F (negative: it pays)."""
    side = 1 if signed_contracts(qty_contracts) > 0 else -1
    rate = rate_value(funding_rate, "funding_rate")
    value = coin_value(
        qty_contracts, positive_price(mark_price_usd, "mark_price_usd"), contract_size_usd
    )
    # F > 0: longs pay shorts.
    return to_dec(-side * exact(value) * exact(rate))


# ---- crowd scale: every position's payment at once ------------------------------------------
# Which float fractions are too close to a rounding boundary to decide in float64 (relative to
# the value): the float product is within 3 ulps, and the exact path's own roundings (to 28
# digits in ``to_dec``, then to the step) move it by far less than this.
_FLOAT_DOUBT = 1e-12
_HALF_RULES = frozenset({"half_even", "half_up"})


def payment_units(qty_contracts: object, mark_price_usd: object, contract_size_usd: object,
                  funding_rate: object, step: object, rule: RoundingRule) -> np.ndarray:
    """Every position's funding payment in whole coin steps (int64; negative: it pays), equal
    to ``quantize(funding_payment_coin(q, ...), step, rule) / step`` for each q.

    Vectorised: one float64 product per position decides the rounding wherever the value is
    clearly away from a rounding boundary (an integer for the directed rules, a half for the
    half rules); the few others, and values too large for float64 to hold exactly, take the
    exact path. Same contract as the level index: floats filter, exact arithmetic decides.
    """
    qty = _contracts_array(qty_contracts)
    mark_price_usd = positive_price(mark_price_usd, "mark_price_usd")
    contract_size_usd = contract_size(contract_size_usd)
    funding_rate = rate_value(funding_rate, "funding_rate")
    step = positive_quantity(step, "step")
    if rule not in _RULES:
        raise InvalidInput(f"rule must be one of {', '.join(_RULES)}, got {rule!r}")
    # No one-by-one path for a handful of positions: three exact payments (≈ 69 µs) cost more
    # than the float pass with its doubt check (≈ 21 µs).
    # units(q) = −q · cs · F / (MP · step): one exact ratio per settlement, one product each.
    # As integers: an int / int true division is correctly rounded, the float a Fraction of
    # the same value gives, without building four Fractions every settlement.
    (cs_n, cs_d), (rate_n, rate_d), (mark_n, mark_d), (step_n, step_d) = (
        v.as_integer_ratio() for v in (contract_size_usd, funding_rate, mark_price_usd, step))
    ratio_f = -(cs_n * rate_n * mark_d * step_d) / (cs_d * rate_d * mark_n * step_n)
    if len(qty) <= _SCALAR_POSITIONS:
        each = []
        for q in qty.tolist():
            one = _units_of(q, ratio_f, rule)
            if one is None:  # in doubt: exact
                one = int(quantize(funding_payment_coin(q, mark_price_usd, contract_size_usd,
                                                        funding_rate), step, rule) / step)
            each.append(one)
        return np.array(each, dtype=np.int64)
    value = qty.astype(np.float64) * ratio_f
    floor = np.floor(value)
    frac = value - floor
    slack = np.abs(value) * _FLOAT_DOUBT + 1e-300
    if rule in _HALF_RULES:
        units = np.rint(value)
        doubt = np.abs(frac - 0.5) <= slack
    else:
        if rule == "floor":
            units = floor
        elif rule == "ceiling":
            units = np.ceil(value)
        elif rule == "down":
            units = np.trunc(value)
        else:  # up: away from zero
            units = np.where(value < 0, floor, np.ceil(value))
        doubt = (frac <= slack) | (1.0 - frac <= slack)
    doubt |= np.abs(value) >= 2.0 ** 52
    out = units.astype(np.int64)
    for i in np.flatnonzero(doubt).tolist():
        amount = quantize(funding_payment_coin(int(qty[i]), mark_price_usd, contract_size_usd,
                                               funding_rate), step, rule)
        out[i] = int(amount / step)
    return out


_RULES = ("half_even", "half_up", "down", "up", "floor", "ceiling")
# Up to this many positions (a hedge, a few accounts) the float pass runs on Python floats:
# the same IEEE operations as the arrays', without a dozen array calls for a handful of rows.
_SCALAR_POSITIONS = 8


def _units_of(qty: int, ratio: float, rule: RoundingRule) -> int | None:
    """One position's ``payment_units`` by the float pass, or None where it is in doubt
    (then the exact path decides): element for element what the array code computes."""
    value = float(qty) * ratio
    if abs(value) >= 2.0 ** 52:
        return None
    frac = value - math.floor(value)
    slack = abs(value) * _FLOAT_DOUBT + 1e-300
    if rule in _HALF_RULES:
        if abs(frac - 0.5) <= slack:
            return None
        return round(value)  # half to even, as np.rint
    if frac <= slack or 1.0 - frac <= slack:
        return None
    if rule == "floor":
        return math.floor(value)
    if rule == "ceiling":
        return math.ceil(value)
    if rule == "down":
        return math.trunc(value)
    return math.floor(value) if value < 0 else math.ceil(value)  # up: away from zero


def _contracts_array(value: object) -> np.ndarray:
    """A 1-D int64 array of non-zero whole contracts, or InvalidQuantity naming qty_contracts."""
    if isinstance(value, np.ndarray):
        if value.ndim == 1 and value.dtype.kind in "iu" and not (value == 0).any():
            return value.astype(np.int64, copy=False)
    elif isinstance(value, list | tuple):
        return np.array([signed_contracts(q, f"qty_contracts[{i}]") for i, q in enumerate(value)],
                        dtype=np.int64)
    raise InvalidQuantity(
        f"qty_contracts must be a 1-D array of non-zero whole contracts, got {value!r}")
