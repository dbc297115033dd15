"""An inverse position's unrealised PnL at a new mark, written exactly as the venue writes it.

A client that already holds its position (contracts, entry) and reads the mark anyway can tell
its unrealised PnL without asking: Q·CS·(1/entry − 1/mark) in coin. A dry run that reuses a
position read (strategy/quiet_reads.py) must get the venue's own digits, or its record would
drift from a run that asked. The venue computes with its exact entry and mark and writes the
result rounded to a fixed number of decimals; the client only has the entry and the mark as
written (rounded to their last digit). So the answer is computed over every entry and mark the
written ones can stand for: PnL is monotonic in each, so the four corners bound it, and when
both bounds write the same digits, those are the venue's digits — proven, not estimated. When
they do not (the true value sits within a hair of a rounding boundary, a few in a million),
the answer is None and the caller asks the venue.

The rounding is the venue's (perpsim's): the exact rational rounded once to 28 significant
digits, half-even (sim/inverse.py ``to_dec``), then to the field's decimals, half-even
(api/deps.py ``dec``). The strategy never imports the server: tests/test_strategy_mark_pnl.py
checks this against the server's own functions over many positions and marks.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

_SIGNIFICANT = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)


def _decimals(text: str) -> int:
    """How many decimals a written number has ("0.00000000" → 8, "65000" → 0)."""
    exponent = Decimal(text).as_tuple().exponent
    return max(0, -int(exponent))


Ratio = tuple[int, int]  # numerator, denominator > 0: exact, without Fraction's gcd per step


def _span(text: str) -> tuple[Ratio, Ratio]:
    """Every value a number written to its last digit (rounded to nearest) can stand for:
    written ± half a unit of its last digit, as (numerator, denominator)."""
    sign, digits, exponent = Decimal(text).as_tuple()
    units = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    exponent = int(exponent)
    scale, den = (10 ** exponent, 2) if exponent >= 0 else (1, 2 * 10 ** -exponent)
    return ((2 * units - 1) * scale, den), ((2 * units + 1) * scale, den)


def _written(value: Ratio, places: int) -> str:
    """``value`` as the venue writes it with ``places`` decimals (see module doc)."""
    rounded = _SIGNIFICANT.divide(Decimal(value[0]), Decimal(value[1]))
    step = Decimal(1).scaleb(-places)
    return format(rounded.quantize(step, rounding=decimal.ROUND_HALF_EVEN), "f")


def written_pnl(contracts: int, contract_size_usd: Decimal, entry_text: str, mark_text: str,
                like_text: str) -> str | None:
    """The unrealised PnL of ``contracts`` (signed: short < 0) entered at ``entry_text`` at
    the mark ``mark_text``, written with as many decimals as ``like_text`` (the venue's last
    answer for this field), or None when the written entry and mark leave the last digit in
    doubt. Raises ValueError for a number that is not one."""
    try:
        entries, marks = _span(entry_text), _span(mark_text)
        places = _decimals(like_text)
        size_num, size_den = Decimal(contract_size_usd).as_integer_ratio()
    except (decimal.InvalidOperation, ValueError, TypeError, OverflowError):
        raise ValueError(f"not numbers: entry {entry_text!r}, mark {mark_text!r}, "
                         f"PnL {like_text!r}") from None
    if entries[0][0] <= 0 or marks[0][0] <= 0:
        return None  # a price that may be zero: no bound
    size_num *= contracts
    # size·(1/entry − 1/mark) with entry = a/b, mark = c/d: size·(c·b − a·d) / (a·c)
    corners = [(size_num * (c * b - a * d), size_den * a * c)
               for a, b in entries for c, d in marks]
    low = min(corners, key=_RatioKey)
    high = max(corners, key=_RatioKey)
    low_text, high_text = _written(low, places), _written(high, places)
    return low_text if low_text == high_text else None


class _RatioKey:
    """Orders ratios with positive denominators by value (cross-multiplied, exact)."""

    __slots__ = ("den", "num")

    def __init__(self, ratio: Ratio) -> None:
        self.num, self.den = ratio

    def __lt__(self, other: _RatioKey) -> bool:
        return self.num * other.den < other.num * self.den
