"""Fault containment: an exception inside a simulated instant breaks the market, loudly.

A simpy process that raises dies, and the funding or watcher loop it ran never runs again; the
state it left may be half applied. Rather than carry on silently wrong, the exchange records a
``Breakage`` (what broke, where in the code, at which simulated instant, during which call) and
refuses every later call with ``MarketBroken`` until the market is rebuilt (a reset).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from perpsim.sim.errors import InvalidState


@dataclass(frozen=True)
class Breakage:
    """Why the market stopped: the exception, the innermost perpsim frame, the instant."""

    error: str  # exception class and message
    where: str  # file:line in function, the innermost frame inside perpsim
    time_ms: int  # simulated time when it happened
    during: str  # the call that was running (advance, set_prices, a request path)

    def describe(self) -> str:
        """One line for an error message, the health endpoint and the dashboard."""
        return (f"the market is broken since {self.during} at simulated time {self.time_ms}: "
                f"{self.error} (at {self.where}); POST /control/reset rebuilds it")

    def as_json(self) -> dict[str, Any]:
        """The breakage as GET /control/health shows it."""
        return {"error": self.error, "where": self.where, "time": self.time_ms,
                "during": self.during, "message": self.describe()}


class MarketBroken(InvalidState):
    """A call on a market an earlier internal error broke (until a reset)."""

    code = "market_broken"


def breakage(exc: BaseException, time_ms: int, during: str) -> Breakage:
    """A Breakage for ``exc``: its type and message, and where inside perpsim it was raised."""
    where = "?"
    origin = exc
    while origin.__cause__ is not None:  # simpy re-raises a process's error as a copy
        origin = origin.__cause__
    for frame, line in reversed([*traceback.walk_tb(exc.__traceback__),
                                 *traceback.walk_tb(origin.__traceback__)]):
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith("perpsim."):
            where = f"{module}:{line} in {frame.f_code.co_name}"
            break
    message = " ".join(str(exc).split())[:300]
    return Breakage(f"{type(exc).__name__}: {message}" if message else type(exc).__name__,
                    where, time_ms, during)


class Containment:
    """Holds a market's breakage; ``guard`` marks it broken when a call fails inside."""

    def __init__(self) -> None:
        self.broken: Breakage | None = None

    def check(self) -> None:
        """Raise MarketBroken if an earlier call broke the market."""
        if self.broken is not None:
            raise MarketBroken(self.broken.describe())

    def mark(self, exc: BaseException, time_ms: int, during: str) -> Breakage:
        """Record ``exc`` as the market's breakage (the first one wins)."""
        if self.broken is None:
            self.broken = breakage(exc, time_ms, during)
        return self.broken

    @contextmanager
    def guard(self, during: str, time_ms: Any) -> Iterator[None]:
        """Run a block that applies state: any exception escaping it breaks the market.

        ``time_ms`` is a callable giving the simulated time when the error is caught.
        """
        self.check()
        try:
            yield
        except Exception as exc:
            self.mark(exc, int(time_ms()), during)
            raise
