"""Time for the runner: the same ``wait`` against a stepped perpsim or a live venue.

* :class:`SteppedClock` (perpsim, ``clock: stepped``): time moves only when the client asks.
  ``wait(until, wake=..., stop_on=...)`` is one ``POST /control/advance`` with the mark levels
  at which a rule would act and the event types that need an immediate reaction (margin calls,
  liquidations, our order fills); perpsim stops the advance at the first of them, so the runner
  wakes at exactly the instant a real-time client would react, without stepping finely.
  A ``control`` (:class:`ControlPlane`) carries those calls without an httpx client.
* :class:`LiveClock` (a live venue, or perpsim in realtime mode): ``asyncio`` sleeps until the
  time, or earlier when a ``watch_*`` update pokes it (``notify_mark`` crossing a level,
  ``notify_event`` of a watched kind, a stream gap).

The runner makes the same ccxt calls with either clock.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx

from perpsim.strategy.rules import WakeLevels


@dataclass(frozen=True)
class WaitResult:
    """Where a wait ended: the venue time, why, and (stepped only) the venue's own events."""

    now_ms: int
    reason: str  # "time", "wake", "event" (a stop_on match), "notify" (live: a stream poke)
    events: tuple[dict[str, Any], ...] = field(default=())
    stopped: str | None = None  # the event type that ended it early


class Clock(Protocol):
    """What the runner and the executor need from time."""

    async def now_ms(self) -> int:
        """The venue's time now (epoch ms)."""
        ...

    async def wait(self, until_ms: int, *, wake: WakeLevels | None = None,
                   stop_on: Sequence[str] = ()) -> WaitResult:
        """Let time pass to ``until_ms``, or until a wake level or a ``stop_on`` event."""
        ...

    def notify_mark(self, mark: Decimal, index: Decimal | None) -> None:
        """A stream's mark update (a live clock compares it with the wake levels)."""
        ...

    def notify_event(self, kind: str) -> None:
        """A stream's event (order update, liquidation, gap...)."""
        ...

    async def close(self) -> None:
        """Release what the clock holds."""
        ...


class ClockError(RuntimeError):
    """The control plane refused or failed an advance."""


class ControlPlane(Protocol):
    """A way to the control plane other than an httpx client: in process, straight to the
    app (perpsim/inprocess.py ``DirectControl``); over the wire, aiohttp
    (strategy/control_http.py). It answers what the control plane answers over HTTP."""

    async def call(self, method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        """(status, body) of the call with the JSON ``body``; None when it must go over HTTP."""
        ...


async def control_call(http: Callable[[], httpx.AsyncClient], control: ControlPlane | None,
                       method: str, path: str, body: dict[str, Any] | None = None
                       ) -> tuple[int, bytes]:
    """(status, body) of a control-plane call: from ``control`` when it answers it, else over
    the httpx client ``http()`` gives (asked for only then; ``body``: a JSON object to send,
    None sends none)."""
    if control is not None:
        payload = b"" if body is None else json.dumps(
            body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        answer = await control.call(method, path, payload)
        if answer is not None:
            return answer
    response = await http().request(method, path, json=body)
    return response.status_code, response.content


class SteppedClock:
    """Advance a stepped perpsim through its control plane between decisions."""

    def __init__(self, base_url: str, *, symbol: str, account_id: str | None = None,
                 http: httpx.AsyncClient | Callable[[], httpx.AsyncClient] | None = None,
                 timeout_s: float = 120.0,
                 sole_actor: bool = False, control: ControlPlane | None = None) -> None:
        self.symbol = symbol  # the venue's market id, e.g. BTCUSD_PERP
        self.account_id = account_id
        # Nobody but this client acts on the account (a dry run's own account): everything
        # that happens to it between waits is in the waits' events (strategy/quiet_reads.py).
        self.sole_actor = sole_actor and account_id is not None
        self.base_url, self.timeout_s = base_url.rstrip("/"), timeout_s
        # The httpx client: given, given as a maker (called at the first call that needs it),
        # or made here then; none at all while ``control`` answers every call.
        self._own_http = http is None
        self._http = http if isinstance(http, httpx.AsyncClient) else None
        self._make_http = http if callable(http) and self._http is None else None
        self.control = control  # the control plane without httpx (in-process, or aiohttp)
        self._now: int | None = None
        self.advances = 0
        # Every event of the account the advances reported, in order (strategy/quiet_income.py).
        self.account_log: list[dict[str, Any]] = []

    async def now_ms(self) -> int:
        """Simulated time (read once from /control/state, then tracked from advances)."""
        if self._now is None:
            self._now = int((await self._call("GET", "/control/state"))["now"])
        return self._now

    async def wait(self, until_ms: int, *, wake: WakeLevels | None = None,
                   stop_on: Sequence[str] = ()) -> WaitResult:
        """One advance to ``until_ms`` that stops early at a wake level or a stop_on event."""
        now = await self.now_ms()
        if until_ms <= now:
            return WaitResult(now, "time")
        body: dict[str, Any] = {"until": int(until_ms)}
        if wake is not None and (wake.mark_above is not None or wake.mark_below is not None):
            level: dict[str, Any] = {"symbol": self.symbol}
            if wake.mark_above is not None:
                level["mark_above"] = str(wake.mark_above)
            if wake.mark_below is not None:
                level["mark_below"] = str(wake.mark_below)
            body["wake"] = [level]
        if stop_on:
            body["stop_on"] = list(stop_on)
            if self.account_id is not None:
                body["account_id"] = self.account_id
        answer = await self._call("POST", "/control/advance", body)
        self.advances += 1
        self._now = int(answer["now"])
        mine = tuple(e for e in answer.get("events", [])
                     if e.get("type") == "wake" or (self.account_id is not None
                                                   and e.get("account_id") == self.account_id))
        self.account_log.extend(e for e in mine if e.get("type") != "wake")
        stopped = answer.get("stopped")
        reason = "time" if stopped is None else ("wake" if stopped == "wake" else "event")
        return WaitResult(self._now, reason, mine, stopped)

    def notify_mark(self, mark: Decimal, index: Decimal | None) -> None:
        """Stepped time already stops at the levels: nothing to do."""

    def notify_event(self, kind: str) -> None:
        """Stepped time already stops on the events: nothing to do."""

    @property
    def http(self) -> httpx.AsyncClient:
        """The httpx client for calls ``control`` declines (made at the first)."""
        if self._http is None:
            self._http = self._make_http() if self._make_http is not None else \
                httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s)
        return self._http

    async def close(self) -> None:
        """Close the HTTP client if this clock created it."""
        if self._own_http and self._http is not None:
            await self._http.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, content = await control_call(lambda: self.http, self.control, method, path,
                                             body)
        if status >= 300:
            text = content.decode("utf-8", "replace")
            raise ClockError(f"control plane answered {status}: {text}")
        return json.loads(content)


class LiveClock:
    """Real time: sleep until the next decision, or until a stream update crosses a level."""

    def __init__(self, exchange: Any, *, speed: float = 1.0, max_sleep_s: float = 60.0) -> None:
        self.ex = exchange
        self.speed = speed  # simulated ms per wall ms (perpsim realtime ×speed; 1 on a venue)
        self.max_sleep_s = max_sleep_s
        self._poke = asyncio.Event()
        self._levels: WakeLevels | None = None
        self._stop_on: frozenset[str] = frozenset()
        self._why: str | None = None

    async def now_ms(self) -> int:
        """The venue's time (GET /time): the clock decisions and funding times are on."""
        try:
            return int(await self.ex.fetch_time())
        except Exception:
            return int(time.time() * 1000)

    async def wait(self, until_ms: int, *, wake: WakeLevels | None = None,
                   stop_on: Sequence[str] = ()) -> WaitResult:
        """Sleep (in slices of at most ``max_sleep_s``) until the time or a poke."""
        self._levels, self._stop_on, self._why = wake, frozenset(stop_on) | {"gap"}, None
        self._poke.clear()
        try:
            while True:
                now = await self.now_ms()
                if now >= until_ms:
                    return WaitResult(now, "time")
                seconds = min((until_ms - now) / 1000 / self.speed, self.max_sleep_s)
                try:
                    await asyncio.wait_for(self._poke.wait(), timeout=max(seconds, 0.001))
                except TimeoutError:
                    continue
                why = self._why or "notify"
                return WaitResult(await self.now_ms(), "wake" if why == "wake" else "event",
                                  stopped=why)
        finally:
            self._levels, self._stop_on = None, frozenset()

    def notify_mark(self, mark: Decimal, index: Decimal | None) -> None:
        """Wake the current wait if the mark reached one of its levels."""
        levels = self._levels
        if levels is None:
            return
        if (levels.mark_above is not None and mark >= levels.mark_above) or (
                levels.mark_below is not None and mark <= levels.mark_below):
            self._why = "wake"
            self._poke.set()

    def notify_event(self, kind: str) -> None:
        """Wake the current wait if it watches this kind of event."""
        if kind in self._stop_on:
            self._why = kind
            self._poke.set()

    async def close(self) -> None:
        """Nothing to release (the caller owns the exchange)."""
