"""The simulated clock: one simpy Environment, integer epoch milliseconds, steppable.

Time never comes from the wall clock here. ``advance_until(t)`` runs every event scheduled at or
before ``t`` (including those exactly at ``t``) and leaves ``now == t``: a funding time reached
by an advance is settled by that advance, not the next one.
"""

from __future__ import annotations

from typing import Any

import simpy
from simpy.core import StopSimulation
from simpy.events import NORMAL, URGENT, EventPriority

from perpsim.sim.errors import InvalidInput

# simpy orders same-time events by (priority, insertion). Ordinary timeouts are NORMAL (1);
# the stop of an advance is scheduled behind them so that everything due at ``t`` runs first.
_AFTER_EVERYTHING = EventPriority(NORMAL + 1)

# An advance beyond a century of simulated time is certainly a mistake (a seconds/ms mix-up).
MAX_ADVANCE_MS = 100 * 365 * 24 * 3_600_000


class SimClock:
    """Owner of simulated time: a simpy Environment starting at ``start_ms``."""

    def __init__(self, start_ms: int) -> None:
        if isinstance(start_ms, bool) or not isinstance(start_ms, int) or start_ms < 0:
            raise InvalidInput(
                f"start time must be a non-negative integer epoch ms, got {start_ms!r}")
        self.env = simpy.Environment(initial_time=start_ms)
        self._running_stop: simpy.Event | None = None

    @property
    def now_ms(self) -> int:
        """Current simulated time, epoch milliseconds UTC."""
        return int(self.env.now)

    def process(self, generator: Any) -> simpy.Process:
        """Start a simpy process on this clock."""
        return self.env.process(generator)

    def timeout_until(self, t_ms: int) -> simpy.Timeout:
        """A timeout event firing at absolute time ``t_ms`` (now if already past)."""
        return self.env.timeout(max(0, t_ms - self.now_ms))

    def advance(self, ms: object) -> int:
        """Run the simulation forward by ``ms`` milliseconds; returns the new time."""
        if isinstance(ms, bool) or not isinstance(ms, int):
            raise InvalidInput(f"advance needs an integer number of milliseconds, got {ms!r}")
        if ms < 0:
            raise InvalidInput(f"advance cannot go back in time ({ms} ms)")
        if ms > MAX_ADVANCE_MS:
            raise InvalidInput(f"advance of {ms} ms is more than a century; refused")
        return self.advance_until(self.now_ms + ms)

    def advance_until(self, t_ms: object) -> int:
        """Run every event due at or before ``t_ms``; afterwards ``now_ms == t_ms``."""
        self.check_target(t_ms)
        assert isinstance(t_ms, int)
        stop = simpy.Event(self.env)
        stop._ok = True
        stop._value = None
        self.env.schedule(stop, _AFTER_EVERYTHING, t_ms - self.now_ms)
        self._running_stop = stop
        try:
            self.env.run(until=stop)
        finally:
            self._running_stop = None
            if stop.callbacks:  # stopped early: the planned stop must not end a later run
                stop.callbacks.clear()
        return self.now_ms

    def stop_now(self) -> None:
        """End the running advance once the current step is done (a client wake-up)."""
        if self._running_stop is None:
            return
        early = simpy.Event(self.env)
        early._ok = True
        early._value = None
        early.callbacks.append(StopSimulation.callback)
        self.env.schedule(early, URGENT, 0)

    def check_target(self, t_ms: object) -> None:
        """Raise InvalidInput unless ``t_ms`` is an integer time from now to a century ahead."""
        if isinstance(t_ms, bool) or not isinstance(t_ms, int):
            raise InvalidInput(f"advance needs an integer epoch ms, got {t_ms!r}")
        if t_ms < self.now_ms:
            raise InvalidInput(f"cannot advance to {t_ms}: it is before now ({self.now_ms})")
        if t_ms - self.now_ms > MAX_ADVANCE_MS:
            raise InvalidInput(f"advance to {t_ms} is more than a century ahead; refused")

    def next_event_ms(self) -> float:
        """Time of the next scheduled event (``inf`` if none)."""
        return float(self.env.peek())
