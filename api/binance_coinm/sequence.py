"""The order-book update id: one counter per symbol, shared by REST depth and the depth stream.

ccxt.pro keeps a local book from ``GET /dapi/v1/depth`` (``lastUpdateId`` → nonce) plus the
``depthUpdate`` deltas (``U``/``u``/``pu``), and drops the book unless both count on the same
sequence (docs/dialect-notes.md §4.1). The id is the book's own change counter
(``OrderBook.version``, bumped by every order added, removed or matched and every re-quote of
the synthetic liquidity) plus an offset that keeps it increasing when a reset builds a fresh
book, so a client that stays connected across ``POST /control/reset`` never sees it go back.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from perpsim.api.state import ServerState
from perpsim.sim.exchange import Exchange


@dataclass(slots=True)
class _Counter:
    """Where one symbol's id stands: the market it counts, its offset, the last id given."""

    market: weakref.ref[Exchange]
    offset: int
    last: int


_COUNTERS: WeakKeyDictionary[ServerState, dict[str, _Counter]] = WeakKeyDictionary()


def depth_update_id(state: ServerState, symbol: str) -> int:
    """The current update id of ``symbol``'s book (after bringing the book up to now).

    Grows whenever the book's content may have changed; never decreases for one server, even
    across resets. Raises UnknownSymbol / InvalidState like the engine for a symbol that does
    not exist or has no prices.
    """
    ex = state.exchange
    version = ex.refresh_book(symbol).version
    counters = _COUNTERS.setdefault(state, {})
    counter = counters.get(symbol)
    if counter is None:
        counter = counters[symbol] = _Counter(weakref.ref(ex), 0, 0)
    elif counter.market() is not ex:  # a reset built a new market: continue above the old ids
        counter.market, counter.offset = weakref.ref(ex), counter.last
    counter.last = max(counter.last, counter.offset + version)
    return counter.last
