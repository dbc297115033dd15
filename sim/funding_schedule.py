"""When one symbol funds: its interval (8 h, 4 h, 1 h ...) and scheduled interval changes.

Binance and Bybit fund most symbols every 8 h and some every 4 h or 1 h, and move a symbol
between intervals at announced instants; BitMEX announced moving XBTUSD from 8 h to 2 h
(venue-sources.md 17). A rate computed over a window of N hours is the 8-hour template scaled
by N/8 (Binance, from 2025-09-18: "Fund rate (F) = [Average premium index (P) + clamp (interest
rate − premium index (P), 0.05%, −0.05%)] / (8/N)"), and so are the cap and the floor.

A schedule is a list of segments: from ``from_ms`` on, funding times are ``from_ms + k·interval``
(the first segment is anchored at the profile's first funding hour and has no start). A change
takes effect on a whole hour, which is itself a funding time: usually one of the old schedule
(the venues switch there), otherwise it closes a shorter window, whose rate is scaled by its
own length like any other. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perpsim.sim.errors import ScenarioError
from perpsim.sim.profile import HOUR_MS, Instrument, Profile

EIGHT_HOURS_MS = 8 * HOUR_MS
_NO_START = -(2**62)


@dataclass(frozen=True, slots=True)
class IntervalChange:
    """From ``from_ms`` (a whole hour, itself a funding time) fund every ``interval_hours``.

    ``symbol`` names one instrument, or a pair (``BTCUSD``) for every perpetual on it, which
    keeps a scenario usable with any profile."""

    symbol: str
    from_ms: int
    interval_hours: int


@dataclass(frozen=True, slots=True)
class FundingSchedule:
    """Funding times of one symbol: (start, anchor, interval) segments in time order."""

    segments: tuple[tuple[int, int, int], ...]

    @classmethod
    def of(cls, profile: Profile, inst: Instrument,
           changes: tuple[IntervalChange, ...] = ()) -> FundingSchedule:
        """The symbol's schedule: its own interval (else the profile's), then ``changes``."""
        interval = (inst.funding_interval_hours * HOUR_MS if inst.funding_interval_hours
                    else profile.funding.interval_ms)
        anchor = profile.funding.times_utc_hours[0] * HOUR_MS
        schedule = cls(((_NO_START, anchor, interval),))
        sample = profile.funding.premium_sample_interval_ms
        for change in sorted((c for c in changes if c.symbol in (inst.symbol, inst.pair)),
                             key=lambda c: c.from_ms):
            schedule = schedule._with(change, sample)
        return schedule

    def _with(self, change: IntervalChange, sample_ms: int) -> FundingSchedule:
        new_interval = change.interval_hours * HOUR_MS
        if change.interval_hours < 1 or (24 * HOUR_MS) % new_interval or new_interval % sample_ms:
            raise ScenarioError(
                f"funding interval change of {change.symbol}: {change.interval_hours} h must be "
                f"a whole number of hours dividing 24 and a multiple of the premium sample "
                f"interval ({sample_ms} ms)")
        if change.from_ms <= self.segments[-1][0] or change.from_ms % HOUR_MS:
            raise ScenarioError(
                f"funding interval change of {change.symbol} at {change.from_ms}: it must be on "
                "a whole hour, after any earlier change")
        return FundingSchedule((*self.segments, (change.from_ms, change.from_ms, new_interval)))

    def _segment(self, t_ms: int) -> int:
        """Index of the segment in force at ``t_ms``."""
        if len(self.segments) == 1:  # no interval change: the one segment, without a loop
            return 0
        i = 0
        for k, (start, _, _) in enumerate(self.segments):
            if start <= t_ms:
                i = k
        return i

    def next_time(self, now_ms: int) -> int:
        """The first funding time strictly after ``now_ms``."""
        i = self._segment(now_ms)
        _, anchor, interval = self.segments[i]
        candidate = anchor + ((now_ms - anchor) // interval + 1) * interval
        if i + 1 < len(self.segments):
            candidate = min(candidate, self.segments[i + 1][0])
        return candidate

    def is_funding_time(self, t_ms: int) -> bool:
        """True if ``t_ms`` is one of the funding times."""
        return self.next_time(t_ms - 1) == t_ms

    def previous_time(self, t_ms: int) -> int:
        """The last funding time strictly before ``t_ms``."""
        _, anchor, interval = self.segments[self._segment(t_ms - 1)]
        return anchor + ((t_ms - 1 - anchor) // interval) * interval

    def window_ms(self, t_ms: int) -> int:
        """Length of the funding window ending at the funding time at or after ``t_ms``."""
        end = self.next_time(t_ms - 1)
        return end - self.previous_time(end)

    def rate_scale(self, t_ms: int) -> tuple[int, int]:
        """(window, 8 h): the fraction the 8-hour rate, cap and floor are scaled by."""
        return self.window_ms(t_ms), EIGHT_HOURS_MS

    def next_times(self, grid_ms: np.ndarray) -> np.ndarray:
        """Vectorised: the funding time at or after each grid time."""
        out = np.empty_like(grid_ms)
        starts = [s for s, _, _ in self.segments]
        which = np.searchsorted(np.asarray(starts[1:], dtype=np.int64), grid_ms - 1,
                                side="right")
        for i, (_, anchor, interval) in enumerate(self.segments):
            mask = which == i
            if not mask.any():
                continue
            g = grid_ms[mask]
            times = anchor + ((g - 1 - anchor) // interval + 1) * interval
            if i + 1 < len(self.segments):
                times = np.minimum(times, starts[i + 1])
            out[mask] = times
        return out

    def windows(self, grid_ms: np.ndarray) -> np.ndarray:
        """Vectorised ``window_ms`` (float64) at each grid time."""
        ends = self.next_times(grid_ms)
        if len(self.segments) == 1:
            return np.full(len(grid_ms), float(self.segments[0][2]))
        return np.asarray([float(e - self.previous_time(int(e))) for e in ends.tolist()])
