"""Endogenous cascades: liquidations that move the price that triggers further liquidations.

Only books with finite depth (sim/depth.py) take part; with the default stateless books nothing
here runs and the engine behaves as before.

* **Same instant.** ``check_liquidations`` runs the liquidation check, and while it liquidated
  someone on a finite book (whose fills moved the last price, so the mark) runs it again, so an
  account the mark passed only because of another's liquidation goes in the same instant —
  also one earlier in creation order, which a single pass would leave to the next instant.
* **Following instants.** The event-skipping search (sim/watch.py) scans the tape, which knows
  nothing of the book's hole. While a finite book is eaten, or its hole is still inside the
  mark's averaging window, ``DepthWatch`` visits every mark sample instant (the mark's P2 moves
  there, and the refilling touch moves the last price), so a mark dragged down by the depleted
  book is seen when it reaches a liquidation level. Once every book is whole and out of the
  window it sleeps until a fill eats into one again.
* **The record.** After each liquidation order that walked a finite book, ``journal_depth``
  appends ``book.depth``: the side's contracts eaten and quoted, the best bid and ask, and the
  last, mark and index prices (what the dashboard's cascade view and the lesson chart).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import simpy

from perpsim.sim import liquidation

if TYPE_CHECKING:
    from collections.abc import Generator

    from perpsim.sim.book import OrderBook
    from perpsim.sim.exchange import Exchange

_MAX_ROUNDS = 10_000  # a cascade in one instant ends when no one is left; this bounds a bug


def finite_books(ex: Exchange) -> list[tuple[str, OrderBook]]:
    """(symbol, book) of every priced symbol whose book has finite depth."""
    return [(s, ex.books[s]) for s in ex.pricers if ex.books[s].finite is not None]


def check_liquidations(ex: Exchange) -> None:
    """The liquidation check, repeated while liquidations on finite books moved the mark."""
    if not any(ex.books[s].finite is not None for s in ex.pricers):
        liquidation.check_all(ex)
        return
    for _ in range(_MAX_ROUNDS):
        versions = _versions(ex)
        first = len(ex.journal)
        liquidation.check_all(ex)
        liquidated = any(e.type == "liquidation.triggered" for e in ex.journal.since(first))
        moved = versions != _versions(ex)
        if not (liquidated and moved):
            return
    raise RuntimeError(f"a liquidation cascade did not settle in {_MAX_ROUNDS} rounds")


def _versions(ex: Exchange) -> list[int]:
    return [book.finite.version for _, book in finite_books(ex) if book.finite is not None]


def journal_depth(ex: Exchange, symbol: str, side: str) -> None:
    """Append ``book.depth`` for a finite book after the engine traded on it."""
    book = ex.books[symbol]
    depth = book.finite
    if depth is None:
        return
    now = ex.now_ms
    ex.journal.append(now, "book.depth", **depth_view(ex, symbol),
                      taker_side=side, insurance_fund=_fund(ex, symbol))


def depth_view(ex: Exchange, symbol: str) -> dict[str, Any]:
    """A finite book's state now: eaten and quoted contracts per side, best quotes, prices."""
    book = ex.refresh_book(symbol)
    depth = book.finite
    assert depth is not None
    now = ex.now_ms
    return {
        "symbol": symbol,
        "bids_eaten": depth.eaten("bids", now), "asks_eaten": depth.eaten("asks", now),
        "bids_quoted": depth.available("bids", now), "asks_quoted": depth.available("asks", now),
        "best_bid": book.best_bid(), "best_ask": book.best_ask(),
        "last": ex.last_price(symbol), "mark": ex.mark_price(symbol),
        "index": ex.index_price(symbol),
    }


def _fund(ex: Exchange, symbol: str) -> object:
    from perpsim.sim.ledger import insurance_account

    return ex.ledger.balance(insurance_account(ex.instruments[symbol].margin_asset))


class DepthWatch:
    """The simpy process visiting mark-sample instants while a finite book is disturbed."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self._idle: simpy.Event | None = None
        self.visits = 0  # instants visited (for tests and benchmarks)

    def start(self) -> None:
        """Start on the exchange's clock (only called when some book is finite)."""
        for _, book in finite_books(self.ex):
            book.on_consume = self.poke
        self.ex.clock.process(self._run())

    def poke(self) -> None:
        """A finite book was eaten into: wake up if sleeping idle."""
        idle = self._idle
        if idle is not None and not idle.triggered:
            self._idle = None
            idle.succeed()

    def _quiet_after_ms(self) -> int:
        mark = self.ex.profile.mark
        return max((book.finite.quiet_after_ms(mark.basis_sample_interval_ms, mark.basis_samples)
                    for _, book in finite_books(self.ex) if book.finite is not None), default=0)

    def _run(self) -> Generator[simpy.Event, Any, None]:
        ex = self.ex
        step = ex.profile.mark.basis_sample_interval_ms
        while True:
            if ex.now_ms >= self._quiet_after_ms():
                self._idle = ex.env.event()
                yield self._idle
                continue
            yield ex.clock.timeout_until((ex.now_ms // step + 1) * step)
            self.visits += 1
            ex.on_instant(ex.now_ms)
