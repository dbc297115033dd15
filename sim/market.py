"""Market data of one instrument: its price tape, the mark price, premium samples, funding rates.

Two ways to get each number, kept consistent by tests:
* exact (Decimal) at one instant — what the engine applies and shows;
* vectorised (float64 numpy) over a time grid — what the event-skipping search scans to find the
  next instant where something *might* happen; every candidate is then re-checked exactly.

The synthetic book is centred on the tape's perp price rounded to the tick (the "reference"), so
the book mid, the impact prices and the premium are functions of the tape alone. Users' resting
orders are not part of impact prices: they are small next to the 25,000 USD impact notional
and leaving them out keeps funding a pure function of the scenario (documented in docs/design.md).
"""

from __future__ import annotations

import collections
import functools
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import numpy as np

from perpsim.sim.errors import InvalidState
from perpsim.sim.funding_schedule import FundingSchedule
from perpsim.sim.money import quantize, round_to_tick
from perpsim.sim.profile import Instrument, Profile

RATE_STEP = Decimal("0.00000001")  # funding rates are published with 8 decimals
MARK_STEP = Decimal("0.00000001")


def decimal_price(x: float) -> Decimal:
    """A tape float as the Decimal it was written as (shortest repr: 16782.1 stays 16782.1)."""
    return Decimal(repr(float(x)))


def lowest_perp_price_usd(inst: Instrument) -> Decimal:
    """The lowest perp price the synthetic book can be centred on: its deepest bid level must
    stay above zero, or the impact prices (and so funding) would divide by zero."""
    book = inst.book
    return (book.half_spread_ticks + (book.levels - 1) * book.level_step_ticks + 1) * inst.tick_size


class PriceTape:
    """Index and perp prices of one pair over time; each row holds until the next.

    A scenario path is read-only; a manual tape grows by ``set`` (control-plane price moves).
    """

    def __init__(self, pair: str, times_ms: np.ndarray, index: np.ndarray, perp: np.ndarray,
                 *, manual: bool = False, regular: bool = False) -> None:
        self.pair = pair
        self.manual = manual
        self.version = 0  # bumped by every manual change, so caches keyed on rows notice
        self._times = [int(t) for t in times_ms] if manual else None
        self._index = [float(x) for x in index] if manual else None
        self._perp = [float(x) for x in perp] if manual else None
        self.times_ms = np.asarray(times_ms, dtype=np.int64)
        self.index = np.asarray(index, dtype=np.float64)
        self.perp = np.asarray(perp, dtype=np.float64)
        # The last row_at answer: one instant asks for its row dozens of times (mark, index,
        # book, last price, risk of every position), and a search costs microseconds.
        self._last_row: tuple[int | None, int] = (None, 0)
        # A scenario tape is mostly a regular grid: its first row and step let ``rows_through``
        # guess a row and check it against its neighbour instead of searching 31 M rows.
        self._grid = (None if manual or len(self.times_ms) < 2 else
                      (int(self.times_ms[0]), int(self.times_ms[1] - self.times_ms[0])))
        # ``regular``: the caller knows every row starts at times[0] + step · row (a scenario
        # path's regular_step_ms, checked once when it was built; its arrays are read-only):
        # then rows follow from times by arithmetic, with nothing to check.
        self._regular = regular and self._grid is not None

    def row_at(self, t_ms: int) -> int:
        """Row in force at ``t_ms`` (the first row before the tape starts)."""
        if self._last_row[0] == t_ms:
            return self._last_row[1]
        row = max(0, self.rows_through(t_ms) - 1)
        self._last_row = (t_ms, row)
        return row

    def rows_through(self, t_ms: int) -> int:
        """How many rows start at or before ``t_ms``: ``searchsorted(times, t, "right")``,
        from the regular-grid guess where it holds (checked on both sides), else a search."""
        if self._grid is not None:
            first, step = self._grid
            k = (t_ms - first) // step
            if self._regular:  # row k starts at first + step · k exactly
                return min(max(k + 1, 0), len(self.times_ms))
            times = self.times_ms
            if 0 <= k < len(times) - 1:
                if times[k] <= t_ms < times[k + 1]:
                    return k + 1
            elif k >= len(times) - 1 and times[-1] <= t_ms:
                return len(times)
        return int(np.searchsorted(self.times_ms, t_ms, side="right"))

    def rows_at(self, grid_ms: np.ndarray) -> np.ndarray:
        """Vectorised ``row_at``.

        Scenario tapes are mostly a regular grid: each row is guessed as (t − t0) // step and
        the guess checked against the row's neighbours; only wrong guesses are searched (a
        year's tape is 31.5 M rows: a search per sample costs more than the rest)."""
        times = self.times_ms
        n = len(times)
        if self._regular and self._grid is not None:
            first, step = self._grid
            return np.clip((grid_ms - first) // step, 0, n - 1)
        if self.manual or n < 2 or len(grid_ms) < 64:
            return np.maximum(np.searchsorted(times, grid_ms, side="right") - 1, 0)
        step = int(times[1] - times[0])
        guess = np.clip((grid_ms - times[0]) // step, 0, n - 1)
        after = times[np.minimum(guess + 1, n - 1)]
        right = ((times[guess] <= grid_ms) | (guess == 0)) & ((guess == n - 1) | (after > grid_ms))
        if right.all():
            return guess
        wrong = ~right
        guess[wrong] = np.maximum(
            np.searchsorted(times, grid_ms[wrong], side="right") - 1, 0)
        return guess

    def grid_rows(self, first_ms: int, step_ms: int, count: int) -> np.ndarray | slice:
        """``rows_at`` of the grid ``first_ms + step_ms · i`` (i < ``count``), usable as an
        index of the tape's columns.

        Where every grid time is itself a row's time, spaced evenly — a scenario tape sampled
        on a multiple of its own step — the rows are a strided slice (a view, no gather): the
        times being strictly increasing, a row starting exactly at t is the row in force at t.
        That takes one comparison per grid time instead of a guess checked on both sides."""
        times = self.times_ms
        n = len(times)
        if not self.manual and n >= 2 and count > 0:
            row_ms = int(times[1] - times[0])
            r0, off = divmod(first_ms - int(times[0]), row_ms)
            stride, rem = divmod(step_ms, row_ms)
            last = r0 + stride * (count - 1)
            if not off and not rem and r0 >= 0 and last < n:
                rows = slice(r0, last + 1, stride)
                if self._regular or np.array_equal(
                        times[rows] - first_ms, _grid_offsets(step_ms, count)):
                    return rows
        return self.rows_at(first_ms + step_ms * np.arange(count, dtype=np.int64))

    def index_at(self, t_ms: int) -> Decimal:
        """Index price at ``t_ms``."""
        return decimal_price(self.index[self.row_at(t_ms)])

    def perp_at(self, t_ms: int) -> Decimal:
        """Scenario perp (traded) price at ``t_ms``."""
        return decimal_price(self.perp[self.row_at(t_ms)])

    def row_start_ms(self, t_ms: int) -> int:
        """When the row in force at ``t_ms`` began."""
        return int(self.times_ms[self.row_at(t_ms)])

    def set(self, t_ms: int, index: Decimal, perp: Decimal) -> None:
        """Manual tapes only: from ``t_ms`` on, the prices are these."""
        if not self.manual or self._times is None or self._index is None or self._perp is None:
            raise InvalidState(
                "prices move only by the scenario here; reset with scenario 'manual'")
        if self._times and self._times[-1] == t_ms:
            self._index[-1], self._perp[-1] = float(index), float(perp)
        else:
            self._times.append(t_ms)
            self._index.append(float(index))
            self._perp.append(float(perp))
        self.times_ms = np.asarray(self._times, dtype=np.int64)
        self.index = np.asarray(self._index, dtype=np.float64)
        self.perp = np.asarray(self._perp, dtype=np.float64)
        self._last_row = (None, 0)
        self.version += 1


class MarketPricer:
    """Mark price and premium of one instrument over a tape, exact and vectorised."""

    def __init__(self, profile: Profile, instrument: Instrument, tape: PriceTape,
                 schedule: FundingSchedule | None = None) -> None:
        self.profile = profile
        self.inst = instrument
        self.tape = tape
        self.tick = instrument.tick_size
        self._tick_f = float(instrument.tick_size)
        self.schedule = schedule or FundingSchedule.of(profile, instrument)
        self._weights_usd, self._offsets_usd = _impact_walk(instrument)
        # Premium samples on the global sample grid (t = k · step), computed a chunk at a
        # time in one vectorised pass each and kept: settling funding reads a window's
        # samples as a slice instead of searching the tape for them every time.
        self._premium_chunks: dict[int, np.ndarray] = {}
        self._index_of_row: dict[int, Decimal] = {}  # exact index samples, by tape row
        self._reference: tuple[tuple[int, int], Decimal] = ((-1, -1), Decimal(0))
        # Memos of pure functions of (arguments, tape version): every caller at one instant
        # (settlement, liquidation checks, API reads) shares one exact computation. A manual
        # tape bumps its version on every change, so no entry outlives the prices it read.
        self._basis_memo: dict[tuple[int, int], Decimal] = {}
        self._rate_memo: dict[tuple[int, int, int], Decimal] = {}
        self._weights_1_to_n = np.empty(0, dtype=np.float64)  # see _window_weights
        # The farthest an impact price can lie from the book's centre: the deepest level.
        book = instrument.book
        self._deepest_offset_usd = float(
            (book.half_spread_ticks + (book.levels - 1) * book.level_step_ticks)
            * instrument.tick_size)
        self._basis_rows_memo: tuple[tuple[int, int], np.ndarray | slice] = (
            (-1, -1), slice(0))
        self._basis_counts_memo: tuple[tuple[int, int], list[tuple[int, int]]] = ((-1, -1), [])
        # A power-of-ten tick (0.1, 0.01) rounds with one Decimal.quantize: the same value as
        # money.quantize (x / tick is exact), at a third of the cost.
        self._tick_is_power_of_ten = instrument.tick_size.as_tuple().digits == (1,)

    # ---- exact, at one instant -------------------------------------------------------------
    def reference_at(self, t_ms: int) -> Decimal:
        """Centre of the synthetic book: the tape's perp price rounded to the tick."""
        # Kept for the last row asked: every mark, last-price and book read at one instant
        # asks for it (a manual change bumps the version).
        key = (self.tape.row_at(t_ms), self.tape.version)
        if self._reference[0] != key:
            self._reference = (key, round_to_tick(self.tape.perp_at(t_ms), self.tick))
        return self._reference[1]

    def mark_at(self, t_ms: int, funding_rate: Decimal, last: Decimal | None = None,
                basis_shift_usd: Decimal | None = None) -> Decimal:
        """The exact mark price at ``t_ms`` by the profile's method (mechanics §3).

        ``funding_rate`` is the rate the P1 / fair-price term uses (the last settled rate, or for
        a venue that settles the previous window, the rate that will be paid next); ``last`` is
        the last trade price (default: the book reference); ``basis_shift_usd`` is added to
        P2's basis average (a finite book's mid away from the reference: sim/depth.py).
        """
        index = self.tape.index_at(t_ms)
        interval = self.schedule.window_ms(t_ms) if self.inst.is_perpetual else 1
        p1 = index * (1 + funding_rate * self._time_to_funding_ms(t_ms) / interval)
        if self.profile.mark.method == "fair_price":
            return p1.quantize(MARK_STEP, rounding=ROUND_HALF_EVEN)
        if not self.inst.is_perpetual:
            # Binance "Mark Price in Quarterly Futures": Price Index + moving-average basis.
            p2 = index + self._basis_average(t_ms) + (basis_shift_usd or 0)
            return p2.quantize(MARK_STEP, rounding=ROUND_HALF_EVEN)
        last = self.reference_at(t_ms) if last is None else last
        mark = self._median_without_p2(t_ms, index, p1, last, basis_shift_usd)
        if mark is None:
            p2 = index + self._basis_average(t_ms) + (basis_shift_usd or 0)
            mark = sorted((p1, p2, last))[1]
        return mark.quantize(MARK_STEP, rounding=ROUND_HALF_EVEN)

    def _median_without_p2(self, t_ms: int, index: Decimal, p1: Decimal, last: Decimal,
                           basis_shift_usd: Decimal | None) -> Decimal | None:
        """median(P1, P2, last) when P2 clearly lies outside [P1, last] — then it is the
        nearer of the two, known exactly without P2's exact basis average (thirty Decimal
        conversions); None when P2 may be the median (or is already known exactly).

        Floats filter, exact arithmetic decides: the float basis average differs from the
        exact one by less than a tick (each sample's rounding to the tick can land one tick
        apart at a tie) plus float error, so a margin of two ticks and 1e-9 of the price is
        on the safe side."""
        step = self.profile.mark.basis_sample_interval_ms
        last_sample = t_ms // step * step
        if (last_sample, self.tape.version) in self._basis_memo:
            return None  # the exact P2 costs nothing
        tick = self._tick_f
        counts = self._basis_row_counts(last_sample)
        if counts is not None:  # a few rows, each with its number of samples: plain floats
            perp, index_column = self.tape.perp, self.tape.index
            basis_sum = 0.0
            for row, uses in counts:
                basis_sum += uses * (round(perp.item(row) / tick) * tick - index_column.item(row))
            basis_average = basis_sum / self.profile.mark.basis_samples
        else:
            rows = self._basis_rows(last_sample)
            basis = np.round(self.tape.perp[rows] / tick) * tick - self.tape.index[rows]
            basis_average = float(basis.sum()) / len(basis)
        p2 = float(index) + basis_average + float(basis_shift_usd or 0)
        lo, hi = (p1, last) if p1 <= last else (last, p1)
        margin = 2 * tick + 1e-9 * abs(p2)
        if p2 < float(lo) - margin:
            return lo
        if p2 > float(hi) + margin:
            return hi
        return None

    def _basis_rows(self, last_sample: int) -> np.ndarray | slice:
        """Tape rows of the N basis samples up to ``last_sample``, oldest first (the samples
        lie on a grid: on a scenario tape, usually a strided slice of rows — distinct rows, a
        view of the columns, no search). The last answer is kept: the float filter and the
        exact average of one instant ask for the same rows."""
        key = (last_sample, self.tape.version)
        if self._basis_rows_memo[0] == key:
            return self._basis_rows_memo[1]
        step = self.profile.mark.basis_sample_interval_ms
        n = self.profile.mark.basis_samples
        rows = self.tape.grid_rows(last_sample - (n - 1) * step, step, n)
        self._basis_rows_memo = (key, rows)
        return rows

    def rate_matters_at(self, t_ms: int) -> bool:
        """False where ``mark_at(t_ms, rate, ...)`` is the same for every rate: P1's funding
        basis is rate × time to funding / interval, zero at a funding instant and for a
        delivery contract (the mark is then quantized from the same values)."""
        return self._time_to_funding_ms(t_ms) != 0

    def _time_to_funding_ms(self, t_ms: int) -> int:
        """Time until the funding time at or after ``t_ms``: zero AT a funding instant.

        BitMEX "Funding Basis = Funding Rate * (Time Until Funding / Funding Interval)": at the
        funding timestamp the basis is gone, so the mark that values the payment is the index
        (the published 20 XBT × 0.25 % = 0.05 XBT). Binance's P1 uses the same factor.
        """
        if not self.inst.is_perpetual:
            return 0
        return self.schedule.next_time(t_ms - 1) - t_ms

    def _basis_average(self, t_ms: int) -> Decimal:
        """Moving average of (book mid − index) over the profile's last N basis samples."""
        step = self.profile.mark.basis_sample_interval_ms
        last_sample = t_ms // step * step
        key = (last_sample, self.tape.version)
        memo = self._basis_memo
        average = memo.get(key)
        if average is None:
            average = self._basis_average_of(last_sample)
            if len(memo) >= _MEMO_ENTRIES:
                memo.clear()
            memo[key] = average
        return average

    def _basis_average_of(self, last_sample: int) -> Decimal:
        """``_basis_average`` computed: the N basis samples up to ``last_sample``, exactly
        (each sample's reference less its index, summed — as two exact sums)."""
        counts = self._basis_row_counts(last_sample)
        if counts is not None:
            total = self._reference_sum_of_counts(counts) - self._index_sum_of_counts(counts)
        else:
            rows = self._basis_rows(last_sample)
            total = self._reference_sum(rows) - self._index_sum(rows)
        return total / self.profile.mark.basis_samples

    def _basis_row_counts(self, last_sample: int) -> list[tuple[int, int]] | None:
        """The basis samples up to ``last_sample`` as (tape row, samples in it), oldest first,
        on a tape known to be a regular grid when they are few and fall in a few rows
        (``_FEW_SAMPLES``, ``_FEW_ROWS``: a 1-minute tape, 1-second samples): the rows follow
        by arithmetic and a row the samples share is read once. None otherwise
        (``_basis_rows`` then). Kept for the last instant asked, as ``_basis_rows``."""
        n = self.profile.mark.basis_samples
        tape = self.tape
        if not tape._regular or tape._grid is None or n > _FEW_SAMPLES:
            return None
        step = self.profile.mark.basis_sample_interval_ms
        first_ms, row_ms = tape._grid
        if (n - 1) * step // row_ms + 2 > _FEW_ROWS:
            return None  # many distinct rows: numpy over them costs less
        key = (last_sample, tape.version)
        if self._basis_counts_memo[0] == key:
            return self._basis_counts_memo[1]
        last_row = len(tape.times_ms) - 1
        oldest = last_sample - (n - 1) * step

        def before(t_ms: int) -> int:  # how many samples lie before t_ms
            return min(max(-((oldest - t_ms) // step), 0), n)

        # Row r holds the samples in [first + r·row, first + (r + 1)·row); the first row also
        # those before the tape, the last those after it.
        counts = []
        top = min(max((last_sample - first_ms) // row_ms, 0), last_row)
        for row in range(min(max((oldest - first_ms) // row_ms, 0), last_row), top + 1):
            lower = 0 if row == 0 else before(first_ms + row * row_ms)
            upper = n if row == last_row else before(first_ms + (row + 1) * row_ms)
            if upper > lower:
                counts.append((row, upper - lower))
        self._basis_counts_memo = (key, counts)
        return counts

    def _reference_sum_of_counts(self, counts: list[tuple[int, int]]) -> Decimal:
        """``_reference_sum`` of rows given with their numbers of uses: the same test (every
        float tick count away from a half) and the same exact sums, each row converted once
        and multiplied by its uses (exact: whole tick counts, Decimals on the tick)."""
        perp = self.tape.perp
        tick_f = self._tick_f
        total_units = 0
        for row, uses in counts:
            units = perp.item(row) / tick_f
            whole = round(units)
            if not abs(units - whole) < _HALF_TICK_DOUBT - abs(units) * 1e-15:
                break
            total_units += uses * whole
        else:
            if abs(total_units) < 2 ** 52:
                return Decimal(total_units) * self.tick
        tick = self.tick
        total = Decimal(0)
        for row, uses in counts:
            value = Decimal(repr(perp.item(row)))
            value = (value.quantize(tick, rounding=ROUND_HALF_EVEN) if self._tick_is_power_of_ten
                     else quantize(value, tick))
            total += value * uses if uses > 1 else value
        return total

    def _index_sum_of_counts(self, counts: list[tuple[int, int]]) -> Decimal:
        """``_index_sum`` of rows given with their numbers of uses (the Counter it builds):
        each distinct row's Decimal, times its uses, summed in order."""
        index = self.tape.index
        cache = None if self.tape.manual else self._index_of_row
        if cache is not None and len(cache) + len(counts) > _BASIS_CACHE_ROWS:
            cache.clear()
        total = Decimal(0)
        for row, uses in counts:
            value = None if cache is None else cache.get(row)
            if value is None:
                value = Decimal(repr(index.item(row)))
                if cache is not None:
                    cache[row] = value
            total += value * uses if uses > 1 else value
        return total

    def _reference_sum(self, rows: np.ndarray | slice) -> Decimal:
        """Σ of the rows' book references (the perp's shortest-repr Decimal rounded half-even
        to the tick), exact. Where no perp lies near a half tick (1e-6 of a tick, more for
        counts in the billions), the float tick counts round as the Decimals do (the float and
        its repr differ by far less), so the sum is one integer; otherwise each is rounded in
        Decimal."""
        perps = self.tape.perp[rows]
        units = perps / self._tick_f
        whole = np.round(units)
        count = float(whole.sum())  # whole numbers: exact below 2**52
        # How far a float tick count may be from its Decimal's: the repr, the division and
        # the tick's own float each move it by a few parts in 1e16 of its size.
        doubt = _HALF_TICK_DOUBT - np.abs(units) * 1e-15
        if abs(count) < 2.0 ** 52 and bool((np.abs(units - whole) < doubt).all()):
            return Decimal(int(count)) * self.tick
        tick = self.tick
        if self._tick_is_power_of_ten:
            return sum((Decimal(repr(p)).quantize(tick, rounding=ROUND_HALF_EVEN)
                        for p in perps.tolist()), Decimal(0))
        return sum((quantize(Decimal(repr(p)), tick) for p in perps.tolist()), Decimal(0))

    def _index_sum(self, rows: np.ndarray | slice) -> Decimal:
        """Σ of the rows' index prices as the Decimals of their shortest reprs, exact.

        A row repeats when the tape is coarser than the samples (a 1-minute tape, 1-second
        basis samples): each distinct row is converted once and counted. Consecutive instants
        share all but a few rows: on a scenario tape each row is converted once (a manual
        tape's rows can change, so they are converted every time). A slice's rows are
        distinct: each is summed once, in the same order."""
        if isinstance(rows, slice):
            return self._distinct_index_sum(rows)
        uses = collections.Counter(rows.tolist())
        distinct = list(uses)
        if self.tape.manual:
            values = [Decimal(repr(x)) for x in self.tape.index[distinct].tolist()]
        else:
            cache = self._index_of_row
            missing = [row for row in distinct if row not in cache]
            if missing:
                if len(cache) + len(missing) > _BASIS_CACHE_ROWS:
                    cache.clear()
                    missing = distinct
                for row, x in zip(missing, self.tape.index[missing].tolist(), strict=True):
                    cache[row] = Decimal(repr(x))
            values = [cache[row] for row in distinct]
        return sum((value * uses[row] if uses[row] > 1 else value
                    for row, value in zip(distinct, values, strict=True)), Decimal(0))

    def _distinct_index_sum(self, rows: slice) -> Decimal:
        """``_index_sum`` of a slice of rows (distinct, each used once): the same Decimals added
        in the same order, without counting uses."""
        numbers = range(rows.start, rows.stop, rows.step)
        if self.tape.manual:  # its rows change: nothing is kept (grid_rows gives it no slice)
            return self._index_sum(np.arange(rows.start, rows.stop, rows.step))
        cache = self._index_of_row
        if len(cache) + len(numbers) > _BASIS_CACHE_ROWS:
            cache.clear()
        total = Decimal(0)
        if all(row in cache for row in numbers):
            for row in numbers:
                total += cache[row]
            return total
        for row, x in zip(numbers, self.tape.index[rows].tolist(), strict=True):
            value = cache.get(row)
            if value is None:
                value = cache[row] = Decimal(repr(x))
            total += value
        return total

    # ---- vectorised, over a grid --------------------------------------------------------------
    def references(self, grid_ms: np.ndarray) -> np.ndarray:
        """Vectorised reference (book centre) at each grid time."""
        perp = self.tape.perp[self.tape.rows_at(grid_ms)]
        return np.round(perp / self._tick_f) * self._tick_f

    def marks(self, grid_ms: np.ndarray, funding_rate: float) -> np.ndarray:
        """Vectorised mark at each grid time (float64; candidates only, re-checked exactly)."""
        rows = self.tape.rows_at(grid_ms)
        return self._marks(grid_ms, self.tape.index[rows], self.tape.perp[rows], funding_rate)

    def marks_of_rows(self, lo: int, hi: int, funding_rate: float) -> np.ndarray:
        """Vectorised mark at the start of tape rows lo..hi−1 (no search: rows are a slice)."""
        tape = self.tape
        return self._marks(tape.times_ms[lo:hi], tape.index[lo:hi], tape.perp[lo:hi],
                           funding_rate)

    def references_of_rows(self, lo: int, hi: int) -> np.ndarray:
        """Vectorised reference (book centre) of tape rows lo..hi−1."""
        return np.round(self.tape.perp[lo:hi] / self._tick_f) * self._tick_f

    def _marks(self, grid_ms: np.ndarray, index: np.ndarray, perp: np.ndarray,
               funding_rate: float) -> np.ndarray:
        if self.inst.is_perpetual:
            ttf = self.schedule.next_times(grid_ms) - grid_ms
            p1 = index * (1.0 + funding_rate * ttf / self.schedule.windows(grid_ms))
        else:
            p1 = index
        if self.profile.mark.method == "fair_price":
            return p1
        p2 = index + self._basis_averages(grid_ms)
        if not self.inst.is_perpetual:
            return p2
        last = np.round(perp / self._tick_f) * self._tick_f
        # median of three without sorting: max(min(a, b), min(max(a, b), c))
        return np.maximum(np.minimum(p1, p2), np.minimum(np.maximum(p1, p2), last))

    def _basis_averages(self, grid_ms: np.ndarray) -> np.ndarray:
        step = self.profile.mark.basis_sample_interval_ms
        n = self.profile.mark.basis_samples
        first = int(grid_ms[0]) // step * step - (n - 1) * step
        last = int(grid_ms[-1]) // step * step
        samples = np.arange(first, last + step, step, dtype=np.int64)
        basis = self.references(samples) - self.tape.index[self.tape.rows_at(samples)]
        csum = np.concatenate(([0.0], np.cumsum(basis)))
        k = (grid_ms // step * step - first) // step  # position of each grid time's last sample
        return (csum[k + 1] - csum[k + 1 - n]) / n

    # ---- premium and funding -------------------------------------------------------------------
    def premiums(self, sample_ms: np.ndarray) -> np.ndarray:
        """Premium index samples (mechanics §4) at the given times, from the synthetic book."""
        rows = self.tape.rows_at(sample_ms)  # once: the reference and the index share them
        return self._premiums_of(self.tape.perp[rows], self.tape.index[rows])

    def _premiums_of(self, perp: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``premiums`` of the tape prices in force at the samples."""
        if self.inst.impact_notional_coin is None and self._weights_usd.shape[1] == 1:
            return self._premiums_one_level(perp, index)
        ref = (np.round(perp / self._tick_f) * self._tick_f)[:, None]
        if self.inst.impact_notional_coin is not None:
            impact_ask = self._impact_by_coin(ref, +1)
            impact_bid = self._impact_by_coin(ref, -1)
        else:
            coin_ask = (self._weights_usd / (ref + self._offsets_usd)).sum(axis=1)
            coin_bid = (self._weights_usd / (ref - self._offsets_usd)).sum(axis=1)
            notional = self._weights_usd.sum()
            impact_ask = notional / coin_ask
            impact_bid = notional / coin_bid
        return (np.maximum(0.0, impact_bid - index) - np.maximum(0.0, index - impact_ask)) / index

    def _premiums_one_level(self, perp: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``_premiums_of`` when the impact notional fits in the first synthetic level (the
        usual book): the same operations on the same floats as the general walk (a one-term
        sum is its term), in 1-D arrays and in place — a year of samples is 6 M of them."""
        weight, offset = float(self._weights_usd[0, 0]), float(self._offsets_usd[0, 0])
        tick = self._tick_f
        index = np.ascontiguousarray(index)  # a strided view (grid_rows) is read three times
        ref = np.divide(perp, tick)
        np.round(ref, out=ref)
        ref *= tick
        ask = np.add(ref, offset)  # impact ask = N / (N / (ref + offset))
        np.divide(weight, ask, out=ask)
        np.divide(weight, ask, out=ask)
        bid = np.subtract(ref, offset, out=ref)
        np.divide(weight, bid, out=bid)
        np.divide(weight, bid, out=bid)
        bid -= index  # P = (max(0, bid − index) − max(0, index − ask)) / index
        np.maximum(0.0, bid, out=bid)
        np.subtract(index, ask, out=ask)
        np.maximum(0.0, ask, out=ask)
        bid -= ask
        bid /= index
        return bid

    def premiums_on_grid(self, first_ms: int, count: int) -> np.ndarray:
        """``premiums`` at ``first_ms + step · i`` for i < ``count`` (step: the profile's
        premium sample interval), the same floats: elementwise work on the same tape rows.

        A scenario tape's samples come from chunks of the sample grid computed once each; a
        manual tape (it grows) or an off-grid start is computed directly."""
        step = self.profile.funding.premium_sample_interval_ms
        if count <= 0:
            return np.empty(0, dtype=np.float64)
        if self.tape.manual or first_ms % step:
            return self.premiums(first_ms + step * np.arange(count, dtype=np.int64))
        k0 = first_ms // step
        pieces = []
        for chunk in range(k0 // _PREMIUM_CHUNK, (k0 + count - 1) // _PREMIUM_CHUNK + 1):
            values = self._premium_chunks.get(chunk)
            if values is None:
                rows = self.tape.grid_rows(chunk * _PREMIUM_CHUNK * step, step, _PREMIUM_CHUNK)
                values = self._premium_chunks[chunk] = self._premiums_of_rows(rows)
            lo = max(k0 - chunk * _PREMIUM_CHUNK, 0)
            hi = min(k0 + count - chunk * _PREMIUM_CHUNK, _PREMIUM_CHUNK)
            pieces.append(values[lo:hi])
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _premiums_of_rows(self, rows: np.ndarray | slice) -> np.ndarray:
        """``_premiums_of`` the tape rows ``rows``. Rows in order that repeat (samples finer
        than the tape: a 1-minute tape, 5-second samples) are priced once each and the values
        spread back to the samples — the same elementwise floats, a twelfth of the work."""
        tape = self.tape
        if isinstance(rows, np.ndarray) and len(rows) > 1:
            r0, r1 = int(rows[0]), int(rows[-1]) + 1
            if r1 - r0 < len(rows) // 2 and bool((rows[1:] >= rows[:-1]).all()):
                return self._premiums_of(tape.perp[r0:r1], tape.index[r0:r1])[rows - r0]
        return self._premiums_of(tape.perp[rows], tape.index[rows])

    def _impact_by_coin(self, ref: np.ndarray, side: int) -> np.ndarray:
        """Average fill price of a notional set in coin (Bybit: 0.1 BTC × 100x = 10 BTC).

        How much USD a level gives depends on its price, so the walk runs per sample: take
        each level's coin until the notional is reached (all of the depth if it is thinner).
        """
        book = self.inst.book
        assert self.inst.impact_notional_coin is not None
        target = float(self.inst.impact_notional_coin)
        steps = book.half_spread_ticks + np.arange(book.levels) * book.level_step_ticks
        prices = ref + side * steps[None, :] * self._tick_f
        level_coin = float(book.contracts_per_level * self.inst.contract_size_usd) / prices
        before = np.cumsum(level_coin, axis=1) - level_coin
        take = np.clip(target - before, 0.0, level_coin)
        return (take * prices).sum(axis=1) / take.sum(axis=1)

    def window_rate(self, window_start_ms: int, until_ms: int) -> Decimal:
        """Funding rate from the premium samples taken in (window_start, until] (§4 template).

        With ``until`` at the window's end this is the rate of that window; earlier, it is the
        "predicted" rate so far. Computed in float64 and rounded to 8 decimals, as published.
        """
        funding = self.profile.funding
        step = funding.premium_sample_interval_ms
        first = window_start_ms + step
        # Binance "F = [P̄ + clamp(I − P̄, ±0.05 %)] / (8/N)": a window of N hours pays N/8 of the
        # 8-hour template, its cap and floor scaled alike.
        window, eight_hours = self.schedule.rate_scale(until_ms)
        scale = Fraction(window, eight_hours)
        if until_ms < first:
            return _template(0.0, funding.interest_rate, funding.clamp, self.inst.funding_cap,
                             scale)
        # Memoised on the window and the tape's version: settlement, the next window's known
        # rate and every predicted-rate read at one instant share one computation.
        key = (window_start_ms, until_ms, self.tape.version)
        rate = self._rate_memo.get(key)
        if rate is not None:
            return rate
        count = (until_ms // step * step - first) // step + 1
        # A whole window (a settlement) is read once: the clamp bound over its rows costs a
        # third of computing its samples. A running window (the predicted rate, read again
        # and again as it grows) and one whose samples are computed already use the samples.
        whole = until_ms == self.schedule.next_time(window_start_ms)
        if whole and not self._samples_kept(first, count) and self._average_within_clamp(
                first, count, funding.interest_rate, funding.clamp,
                weighted=funding.averaging == "weighted"):
            # The average lies where the clamp gives back the interest rate itself: the
            # template's result does not depend on where exactly, and the samples need not
            # be computed.
            rate = _template_in_clamp(funding.interest_rate, self.inst.funding_cap, scale)
        else:
            rate = self._window_rate_of_samples(first, count, scale)
        if len(self._rate_memo) >= _MEMO_ENTRIES:
            self._rate_memo.clear()
        self._rate_memo[key] = rate
        return rate

    def _window_rate_of_samples(self, first: int, count: int, scale: Fraction) -> Decimal:
        """``window_rate`` from the premium samples themselves (float64, as published)."""
        funding = self.profile.funding
        premium = self.premiums_on_grid(first, count)
        if funding.averaging == "weighted":
            weights, weights_sum = self._window_weights(len(premium))
            average = float((premium * weights).sum() / weights_sum)
        else:
            average = float(premium.mean())
        return _template(average, funding.interest_rate, funding.clamp, self.inst.funding_cap,
                         scale)

    def _samples_kept(self, first_ms: int, count: int) -> bool:
        """True if ``premiums_on_grid(first_ms, count)`` would only read kept chunks."""
        step = self.profile.funding.premium_sample_interval_ms
        if self.tape.manual or first_ms % step:
            return False
        k0 = first_ms // step
        return all(chunk in self._premium_chunks for chunk in range(
            k0 // _PREMIUM_CHUNK, (k0 + count - 1) // _PREMIUM_CHUNK + 1))

    def _average_within_clamp(self, first_ms: int, count: int, interest: Decimal,
                              clamp: Decimal, *, weighted: bool) -> bool:
        """True if the (weighted) average P̄ of the premium samples at ``first_ms + step · i``
        (i < ``count``) provably lies in [interest − clamp, interest + clamp] with room to
        spare, so that the template's clamp(I − P̄) is I − P̄ and the rate is I whatever P̄ is
        (Binance in any market that is not stretched).

        Why it holds: with x = (perp − index) / index, a sample's premium differs from x by at
        most (deepest book offset + tick/2) / index — the impact bid lies between the
        reference less that offset and the reference, the impact ask between the reference
        and the reference plus it, the reference is the perp within half a tick, and a
        premium is zero only when the index lies between the two impact prices. So P̄ lies
        within that of the same average of x: four array passes over the window's rows
        instead of the impact walk's dozen. The float errors of both computations are bounded
        below (``slack``), far under the margin kept from the band's edges. Scenario tapes on
        the sample grid only (a manual tape changes; an off-grid window is computed
        directly), as ``premiums_on_grid``."""
        step = self.profile.funding.premium_sample_interval_ms
        if self.tape.manual or first_ms % step or count <= 0 or not clamp > 0:
            return False
        if self.inst.impact_notional_coin is None and not self._weights_usd.size:
            return False  # no impact notional: the samples are NaN, as the walk gives them
        rows = self.tape.grid_rows(first_ms, step, count)
        index = self.tape.index[rows]
        x = np.subtract(self.tape.perp[rows], index)
        x /= index
        index_low = float(index.min())
        if not index_low > 0:  # NaN or a non-positive index: let the samples decide
            return False
        if weighted:
            weights, divisor = self._window_weights(count)
            mean_x = float(np.dot(x, weights)) / divisor
        else:
            mean_x = float(x.sum()) / count
        largest = max(abs(float(x.max())), abs(float(x.min())))
        spread = (self._deepest_offset_usd + self._tick_f / 2) / index_low
        # Float errors, each bounded with room: the average of x in any summation order
        # (count·eps of its largest term) and x's own two roundings; the samples' rounding (a
        # few ulps of the price ratio each) and the exact path's float average (count·eps of
        # its largest premium, at most largest + spread); P̄'s rounding to 1e-12.
        slack = 4 * _EPS * (count + 2) * (largest + spread + 1) + 1e-12
        if not slack < 1e-6:  # NaN or an absurd scale: let the samples decide
            return False
        lower, upper = mean_x - spread - slack, mean_x + spread + slack
        margin = 1e-9
        return bool(lower - margin >= float(interest - clamp)
                    and upper + margin <= float(interest + clamp))

    def _window_weights(self, n: int) -> tuple[np.ndarray, float]:
        """Weights 1..n (float64) and their sum, the values ``np.arange(1, n + 1)`` and its
        ``sum()`` give (a sum of whole numbers below 2**53 is exact in any order): a view of
        one array kept at the longest window seen, instead of a new one per window."""
        if len(self._weights_1_to_n) < n:
            self._weights_1_to_n = np.arange(1, max(n, 2 * len(self._weights_1_to_n)) + 1,
                                             dtype=np.float64)
        return self._weights_1_to_n[:n], float(n * (n + 1) // 2)


# Basis samples summed row by row in plain Python (numpy calls cost more) when they are at
# most this many and lie in at most this many rows.
_FEW_SAMPLES = 64
_FEW_ROWS = 8
_BASIS_CACHE_ROWS = 1 << 14  # exact index samples kept (then forgotten all at once)
# A float tick count this far from a half is rounded as its Decimal is (see _reference_sum).
_HALF_TICK_DOUBT = 0.5 - 1e-6
_MEMO_ENTRIES = 256  # instants / windows a memo keeps (then forgotten all at once)
_PREMIUM_CHUNK = 1 << 14  # premium samples per vectorised pass (≈ 23 h at 5 s)


_EPS = float(np.finfo(np.float64).eps)


@functools.lru_cache(maxsize=8)
def _grid_offsets(step_ms: int, count: int) -> np.ndarray:
    """``step_ms · i`` for i < ``count`` (read-only, made once per grid shape)."""
    offsets = step_ms * np.arange(count, dtype=np.int64)
    offsets.flags.writeable = False
    return offsets


def _template(average: float, interest: Decimal, clamp: Decimal, cap: Decimal,
              scale: Fraction = Fraction(1)) -> Decimal:
    """F = (P̄ + clamp(I − P̄, ±clamp))·scale, capped at ±cap·scale, rounded to 8 decimals
    (scale = window / 8 h: 1 for the usual 8-hour funding)."""
    p_bar = Decimal(repr(average)).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)
    rate = p_bar + min(max(interest - p_bar, -clamp), clamp)
    if scale != 1:
        factor = Decimal(scale.numerator) / Decimal(scale.denominator)
        rate, cap = rate * factor, cap * factor
    rate = min(max(rate, -cap), cap)
    return rate.quantize(RATE_STEP, rounding=ROUND_HALF_EVEN)


def _template_in_clamp(interest: Decimal, cap: Decimal, scale: Fraction = Fraction(1)) -> Decimal:
    """``_template`` of an average whose 1e-12 rounding P̄ lies within ±clamp of the interest
    rate: P̄ + (I − P̄) is I (exact Decimal steps, a zero as +0 as x + (−x) gives), then the
    same scale, cap and rounding."""
    rate = interest + Decimal(0)
    if scale != 1:
        factor = Decimal(scale.numerator) / Decimal(scale.denominator)
        rate, cap = rate * factor, cap * factor
    rate = min(max(rate, -cap), cap)
    return rate.quantize(RATE_STEP, rounding=ROUND_HALF_EVEN)


def _impact_walk(inst: Instrument) -> tuple[np.ndarray, np.ndarray]:
    """USD taken from each synthetic level to fill the impact notional, and each level's offset.

    Synthetic levels hold a fixed number of contracts, so the USD taken per level does not depend
    on where the book is centred: the walk is computed once. If the synthetic depth is thinner
    than the impact notional, the impact price is the average over the whole depth.
    """
    book = inst.book
    level_usd = float(book.contracts_per_level * inst.contract_size_usd)
    # A coin notional (Bybit) is walked per sample instead (MarketPricer._impact_by_coin).
    remaining = float(inst.impact_notional_usd or 0)
    weights: list[float] = []
    offsets: list[float] = []
    for k in range(book.levels):
        if remaining <= 0:
            break
        take = min(level_usd, remaining)
        weights.append(take)
        offsets.append(float((book.half_spread_ticks + k * book.level_step_ticks) * inst.tick_size))
        remaining -= take
    return np.asarray(weights)[None, :], np.asarray(offsets)[None, :]
