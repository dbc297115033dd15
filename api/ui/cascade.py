"""The dashboard's cascade view: liquidations per minute against price, book depth, the fund.

Dull on purpose: the numbers are ``sim.cascade_record`` over the engine's journal (the
``book.depth``, liquidation and ADL events) plus, for a finite book, its state now
(``sim.cascade.depth_view``); they are only written out here. Decimals travel as strings,
times as epoch milliseconds.
"""

from __future__ import annotations

import weakref
from decimal import Decimal
from typing import Any

from perpsim.numbers import readable
from perpsim.sim.cascade import depth_view
from perpsim.sim.cascade_record import CascadeTally
from perpsim.sim.exchange import Exchange

MAX_POINTS = 2_000  # book.depth records sent (the latest ones)
# One tally per exchange and symbol, fed only the events appended since the last request; a
# reset builds a new Exchange, and the old one's tallies go with it (weak keys).
_tallies: weakref.WeakKeyDictionary[Exchange, dict[str, CascadeTally]] = (
    weakref.WeakKeyDictionary())


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return readable(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def cascade_view(ex: Exchange, symbol: str) -> dict[str, Any]:
    """The cascade on ``symbol`` so far, and its finite book now (None for a stateless one)."""
    inst = ex.pricer(symbol).inst  # an unknown or unpriced symbol: the engine's 4xx error
    tallies = _tallies.setdefault(ex, {})
    tally = tallies.get(inst.symbol)
    if tally is None:
        tally = tallies[inst.symbol] = CascadeTally(ex, inst.symbol)
    tally.feed(ex.journal.since(tally.seen))
    record = tally.record()
    record["points"] = record["points"][-MAX_POINTS:]
    record["fund"] = [{"time": t, "insurance_fund": f} for t, f in record["fund"]]
    book = ex.books[inst.symbol].finite
    body = _plain(record)
    body["now"] = ex.now_ms
    body["coin"] = inst.margin_asset
    body["finite"] = None if book is None else _plain(
        depth_view(ex, inst.symbol) | {"levels": inst.book.levels,
                                       "contracts_per_level": inst.book.contracts_per_level,
                                       "refill_contracts_per_s": book.rate_per_s})
    return body
