"""How perpsim writes a number for a person: fixed-point digits at a venue's precision.

The one rule every human-facing output shares (the journal, the control plane, the dashboard,
the hedge report, the lessons); the Binance wire writes each field at its own fixed places
(api/deps.py). It lives here, outside sim/ and strategy/, because both use it and the client
(strategy/) must not import the engine.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

# The most decimals a venue shows for any amount: Binance writes coin amounts, mark and index
# prices and funding rates with 8 (one satoshi); traded prices have fewer.
SHOWN_PLACES = 8


def readable(amount: Decimal | float, max_places: int = SHOWN_PLACES) -> str:
    """``amount`` as a person (and a venue) writes it: fixed-point digits, never an exponent.

    An amount already on a grid of at most ``max_places`` decimals keeps its digits, trailing
    zeros included (``0E-8`` → ``"0.00000000"``, as the venue shows a zero coin amount); a
    quotient with a longer tail (an average or liquidation price, a margin ratio:
    ``61460.00000000000000000000000``) is rounded half-even to ``max_places`` and loses the
    zeros that carry no information (``"61460"``). A float is read through its shortest
    ``repr`` (``1e-05`` → ``"0.00001"``).
    """
    value = Decimal(repr(amount)) if isinstance(amount, float) else amount
    if not value.is_finite():
        raise ValueError(f"cannot write a non-finite amount ({amount!r})")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if -exponent <= max_places:
        return format(value, "f")
    with decimal.localcontext() as context:  # room for every integer digit, however many
        context.prec = max(context.prec, value.adjusted() + max_places + 2)
        rounded = value.quantize(Decimal(1).scaleb(-max_places), decimal.ROUND_HALF_EVEN)
    text = format(rounded, "f")
    text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
