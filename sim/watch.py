"""Event skipping: find the next instant where something can happen, jump straight to it.

Instead of visiting every price row, a simpy process collects the levels that matter now —
liquidation and margin-call prices (on the mark), stop / take-profit triggers (mark or last),
resting limit orders (reached when the synthetic quotes cross them) — and scans the price
arrays (numpy, vectorised) up to the next scheduled event for the first row that reaches any of
them. Then it sleeps until that instant and hands it to ``Exchange.on_instant``, which does the
exact (Decimal) work. Cost grows with the number of events, not the number of rows.

Float scanning is only a filter: a candidate within a relative 1e-9 of a level is enough to
visit the instant; the exact check there decides. Positions' levels come from the level index
(sim/level_index.py): float bounds on the exact prices, on the safe side, recomputed only for
the accounts that changed, so a re-plan costs O(changes), not O(accounts). Cross accounts with
several positions in one coin are watched per symbol with the others held at today's marks
(solved exactly at every re-plan), which is exact for the common one-position case.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from perpsim.sim.level_index import LevelIndex

if TYPE_CHECKING:
    from collections.abc import Generator

    from perpsim.sim.exchange import Exchange
    from perpsim.sim.market import MarketPricer

_EPS = 1e-9
_CHUNK_ROWS = 250_000  # grid points per vectorised step: bounded memory on long horizons
_FIRST_ROWS = 1_024  # first window of a scan; each next one doubles up to _CHUNK_ROWS
_BOUND_SLACK = 1e-12  # relative float slack on the price bounds of a window


class Levels:
    """Trigger levels of one symbol: fire when mark/last ≤ a ``lo`` or ≥ a ``hi`` level."""

    __slots__ = ("last_hi", "last_lo", "mark_hi", "mark_lo")

    def __init__(self) -> None:
        self.mark_lo = -np.inf
        self.mark_hi = np.inf
        self.last_lo = -np.inf
        self.last_hi = np.inf

    def add_mark(self, level: Decimal, fires_below: bool) -> None:
        """Watch the mark crossing ``level`` downwards (or upwards)."""
        if fires_below:
            self.mark_lo = max(self.mark_lo, float(level))
        else:
            self.mark_hi = min(self.mark_hi, float(level))

    def add_last(self, level: Decimal, fires_below: bool) -> None:
        """Watch the last/reference price crossing ``level`` downwards (or upwards)."""
        if fires_below:
            self.last_lo = max(self.last_lo, float(level))
        else:
            self.last_hi = min(self.last_hi, float(level))

    @property
    def watches_mark(self) -> bool:
        """True if any mark level is set."""
        return self.mark_lo > -np.inf or self.mark_hi < np.inf

    @property
    def empty(self) -> bool:
        """True if nothing is watched."""
        return not self.watches_mark and self.last_lo == -np.inf and self.last_hi == np.inf


class Watcher:
    """The simpy process that sleeps until the next instant where a level is reached."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.proc: simpy.Process | None = None
        self.target_ms = ex.now_ms  # how far the current advance goes
        self._waiting = False
        self._interrupted = False
        self.hits = 0  # instants visited because a level was reached (for benchmarks)
        self.index = LevelIndex(ex)  # positions' trigger levels, kept up to date incrementally

    def start(self) -> None:
        """Start the process on the exchange's clock."""
        self.proc = self.ex.clock.process(self._run())

    def replan(self) -> None:
        """State changed: recompute levels (interrupts the sleeping process)."""
        if self.proc is None or not self._waiting or self._interrupted:
            return
        if self.ex.env.active_process is self.proc:
            return  # the process itself re-plans when its step finishes
        self._interrupted = True
        self.proc.interrupt("replan")

    def _run(self) -> Generator[simpy.Event, Any, None]:
        ex = self.ex
        while True:
            now = ex.now_ms
            horizon = min(self.target_ms, _next_scheduled(ex, now))
            hit = self.next_hit(now, horizon) if horizon > now else None
            self._waiting = True
            try:
                if horizon <= now:
                    yield ex.env.event()  # nothing to do until the next advance re-plans
                else:
                    yield ex.clock.timeout_until(horizon if hit is None else hit)
            except simpy.Interrupt:
                continue
            finally:
                self._waiting = False
                self._interrupted = False
            if hit is not None:
                self.hits += 1
                ex.on_instant(ex.now_ms)

    def next_hit(self, now_ms: int, horizon_ms: int) -> int | None:
        """First time in (now, horizon] where a watched level may be reached, or None."""
        best: int | None = None
        for symbol in self.ex.pricers:
            levels = collect_levels(self.ex, symbol)
            if levels.empty:
                continue
            end = horizon_ms if best is None else best
            t = _scan(self.ex, symbol, levels, now_ms, end)
            if t is not None and (best is None or t < best):
                best = t
        return best


def _next_scheduled(ex: Exchange, now_ms: int) -> int:
    """Next funding time (a scheduled event that changes balances and rates)."""
    from perpsim.sim.funding import next_funding_time

    return next_funding_time(ex, now_ms)


def collect_levels(ex: Exchange, symbol: str) -> Levels:
    """Every level that could trigger something on ``symbol`` now."""
    from perpsim.sim.risk import liquidation_prices, trigger_side

    levels = Levels()
    # Positions: the level index's bounds (sim/level_index.py); accounts with several cross
    # positions in a coin depend on the other marks, so theirs are solved exactly every time.
    levels.mark_lo, levels.mark_hi = ex.watcher.index.watch_range(symbol)
    call_scale = 1 / ex.profile.liquidation.margin_call_ratio
    for account_id, pos in ex.watcher.index.volatile_positions(symbol):
        below = trigger_side(ex, account_id, pos) > 0  # a hedged pair: its net side
        liq, _ = liquidation_prices(ex, account_id, pos)
        if liq is not None:
            levels.add_mark(liq, fires_below=below)
        if not pos.margin_call_sent:
            call, _ = liquidation_prices(ex, account_id, pos, call_scale)
            if call is not None:
                levels.add_mark(call, fires_below=below)
    add_order_levels(ex, symbol, levels)
    return levels


def add_order_levels(ex: Exchange, symbol: str, levels: Levels) -> None:
    """Levels of resting orders (the synthetic quotes reaching them), conditional orders and
    client wake-ups on ``symbol``."""
    from perpsim.sim import algo

    book = ex.books[symbol]
    max_buy, min_sell = book.crossing_levels()
    offset = book.synthetic_offset_usd()
    if max_buy is not None:  # the synthetic ask (reference + offset) comes down to it
        levels.add_last(max_buy - offset, fires_below=True)
    if min_sell is not None:
        levels.add_last(min_sell + offset, fires_below=False)
    algo.add_levels(ex, symbol, levels)
    for wake in ex.wakes:
        if wake.symbol == symbol and wake.mark_above is not None:
            levels.add_mark(wake.mark_above, fires_below=False)
        if wake.symbol == symbol and wake.mark_below is not None:
            levels.add_mark(wake.mark_below, fires_below=True)


def _scan(ex: Exchange, symbol: str, levels: Levels, now_ms: int, end_ms: int) -> int | None:
    """Vectorised search of one symbol's tape for the first instant reaching a level.

    Instants examined: the start of every tape row in (now, end] (prices change there) and,
    when the mark is watched, every basis-sample instant (the mark's moving average moves
    there); each set is scanned on its own and the earlier hit wins. The tape is taken in
    windows that start small and double (a hit is usually near when levels are near), and a
    window whose price range cannot reach any level (``_may_reach``) is skipped without
    computing its marks — so a quiet stretch costs a min and a max per window.
    """
    pricer = ex.pricers[symbol]
    times = pricer.tape.times_ms
    rate = float(ex.mark_funding_rate(symbol))
    sample_ms = ex.profile.mark.basis_sample_interval_ms
    rows_through = pricer.tape.rows_through  # a search of the tape, from a guess if regular
    last_row = rows_through(end_ms)
    first_lo = rows_through(now_ms)
    # Every window below reads rows inside this range, and a wider range only loosens the
    # bound: if all of it cannot reach a level, no window can (one min and max per column
    # instead of one per window — a quiet stretch between two funding times is the rule).
    if not _may_reach(levels, pricer, max(first_lo - 1, 0), max(last_row, first_lo, 1), rate):
        return None
    start = now_ms
    window = _FIRST_ROWS
    while start < end_ms:
        lo = rows_through(start)
        hi = min(last_row, lo + window)
        chunk_end = end_ms if hi == last_row else int(times[hi - 1])
        first = n_samples = 0
        if levels.watches_mark:
            first = (start // sample_ms + 1) * sample_ms
            n_samples = max(0, (chunk_end - first) // sample_ms + 1)
            if n_samples > window:
                n_samples = window
                chunk_end = first + (n_samples - 1) * sample_ms
                hi = rows_through(chunk_end)
        window = min(2 * window, _CHUNK_ROWS)
        if not _may_reach(levels, pricer, max(lo - 1, 0), max(hi, lo, 1), rate):
            start = chunk_end
            continue
        samples = first + sample_ms * np.arange(n_samples, dtype=np.int64)
        hits = []
        if hi > lo:
            mark = pricer.marks_of_rows(lo, hi, rate) if levels.watches_mark else None
            i = _first_reached(levels, mark, pricer.references_of_rows(lo, hi))
            if i is not None:
                hits.append(int(times[lo + i]))
        if len(samples):
            i = _first_reached(levels, pricer.marks(samples, rate), None)
            if i is not None:
                hits.append(int(samples[i]))
        if hits:
            return min(hits)
        start = chunk_end
    return None


def _may_reach(levels: Levels, pricer: MarketPricer, r0: int, r1: int, rate: float) -> bool:
    """False if no instant priced by tape rows r0..r1−1 can reach a level (a cheap bound).

    The mark is the median of P1, P2 and the reference (or P1 alone), so it lies between P1
    and the reference; P1 is the index times 1 + rate·(time to funding / interval), between 1
    and 1 + rate; the reference is the perp rounded to the tick, within a tick of it.
    """
    tape = pricer.tape
    tick = float(pricer.tick)
    perp = tape.perp[r0:r1]
    ref_lo, ref_hi = float(perp.min()) - tick, float(perp.max()) + tick
    if ref_lo <= levels.last_lo * (1 + _EPS) or ref_hi >= levels.last_hi * (1 - _EPS):
        return True
    if not levels.watches_mark:
        return False
    index = tape.index[r0:r1]
    r = rate if pricer.inst.is_perpetual else 0.0
    mark_lo = min(float(index.min()) * min(1.0, 1.0 + r), ref_lo) * (1 - _BOUND_SLACK)
    mark_hi = max(float(index.max()) * max(1.0, 1.0 + r), ref_hi) * (1 + _BOUND_SLACK)
    return mark_lo <= levels.mark_lo * (1 + _EPS) or mark_hi >= levels.mark_hi * (1 - _EPS)


def _first_reached(levels: Levels, mark: np.ndarray | None,
                   ref: np.ndarray | None) -> int | None:
    """Index of the first element where the mark or the reference reaches a level."""
    reached: np.ndarray | None = None
    if mark is not None:
        reached = (mark <= levels.mark_lo * (1 + _EPS)) | (mark >= levels.mark_hi * (1 - _EPS))
    if ref is not None and (levels.last_lo > -np.inf or levels.last_hi < np.inf):
        by_last = (ref <= levels.last_lo * (1 + _EPS)) | (ref >= levels.last_hi * (1 - _EPS))
        reached = by_last if reached is None else reached | by_last
    if reached is None or not len(reached):
        return None
    i = int(np.argmax(reached))
    return i if reached[i] else None
