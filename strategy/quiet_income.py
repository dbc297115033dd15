"""Funding income the client already holds: the stepped clock's own events instead of a read.

After every funding time the monitor reads its funding income (``/dapi/v1/income``): a tenth
of a stepped dry run's requests. A stepped perpsim reports every event of our account in the
advance answers, funding payments included (``funding.payment``: time, symbol, the signed
amount). With nobody else acting on the account (``SteppedClock(sole_actor=True)``) the
payments the clock saw since the last read are exactly the rows the next read would return, so
the read is spared whenever their rows can be written exactly as the venue writes them:

* only a venue whose income rows are the payments one for one (Binance COIN-M: one FUNDING_FEE
  row per payment, ``income`` = the signed amount with fixed decimals, ``time`` = the
  settlement's) — on others the client keeps reading;
* the venue's decimals are known from an earlier read, and every amount is exact at them
  (quantizing adds zeros only);
* no amount is zero (a payment that moves nothing posts no row) and no two payments share an
  instant (the read's order among them would be the venue's, not ours).

Otherwise the income is read as before. tests/test_strategy_quiet_income.py checks whole dry
runs record the same either way.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

PAYMENT = "funding.payment"


def income_places(amount: Decimal) -> int:
    """How many decimals the venue wrote ``amount`` with (a Decimal keeps them: "0.10" → 2)."""
    return max(0, -int(amount.as_tuple().exponent))


def payments_from_events(events: Iterable[Mapping[str, Any]], *, market_id: str,
                         places: int) -> list[tuple[int, Decimal]] | None:
    """(time, amount) of every funding payment on ``market_id`` among ``events`` (the
    account's own, oldest first), each amount written with ``places`` decimals; None when a
    row cannot be proven to be the venue's (module doc)."""
    step = Decimal(1).scaleb(-places)
    rows: list[tuple[int, Decimal]] = []
    for event in events:
        if event.get("type") != PAYMENT or event.get("symbol") != market_id:
            continue
        try:
            amount = Decimal(str(event["amount"]))
            time_ms = int(event["time"])
            written = amount.quantize(step)
        except (KeyError, TypeError, ValueError, decimal.InvalidOperation):
            return None
        if not amount.is_finite() or amount == 0 or written != amount:
            return None
        if rows and rows[-1][0] >= time_ms:  # two at an instant, or out of order
            return None
        rows.append((time_ms, written))
    return rows
