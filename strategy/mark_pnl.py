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
from fractions import Fraction

_SIGNIFICANT = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)


def _decimals(text: str) -> int:
    """How many decimals a written number has ("0.00000000" → 8, "65000" → 0)."""
    exponent = Decimal(text).as_tuple().exponent
    return max(0, -int(exponent))


def _span(text: str) -> tuple[Fraction, Fraction]:
    """Every value a number written to its last digit (rounded to nearest) can stand for."""
    number = Decimal(text)
    half = Fraction(10) ** int(number.as_tuple().exponent) / 2
    return Fraction(number) - half, Fraction(number) + half


def _written(value: Fraction, places: int) -> str:
    """``value`` as the venue writes it with ``places`` decimals (see module doc)."""
    rounded = _SIGNIFICANT.divide(Decimal(value.numerator), Decimal(value.denominator))
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
    except (decimal.InvalidOperation, ValueError, TypeError, OverflowError):
        raise ValueError(f"not numbers: entry {entry_text!r}, mark {mark_text!r}, "
                         f"PnL {like_text!r}") from None
    if entries[0] <= 0 or marks[0] <= 0:
        return None  # a price that may be zero: no bound
    size = contracts * Fraction(contract_size_usd)
    corners = [size * (1 / entry - 1 / mark) for entry in entries for mark in marks]
    low, high = _written(min(corners), places), _written(max(corners), places)
    return low if low == high else None
