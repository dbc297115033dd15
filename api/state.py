"""What a running server holds: the configuration, one Exchange, listen keys, the clock driver.

Reset builds a *new* Exchange from scratch (moto's lesson) and swaps it in only once it built,
so a bad reset leaves the old market untouched. The wall clock is read here and only here (the
engine never sees it): for realtime mode, and for checking request timestamps, which prove a
request is fresh exactly as on Binance; everything the market shows is simulated time.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from perpsim.api.dialects import check_dialect
from perpsim.sim.errors import InvalidInput
from perpsim.sim.exchange import Exchange, random_token
from perpsim.sim.journal import Event
from perpsim.sim.profile import load_profile
from perpsim.sim.scenario import load_scenario
from perpsim.sim.synthetic import parse_time_ms

ClockMode = Literal["stepped", "realtime"]
LISTEN_KEY_TTL_MS = 60 * 60 * 1000  # Binance: a listen key lives 60 minutes unless kept alive


@dataclass(frozen=True)
class ServerConfig:
    """How the market is built: profile, scenario, seed, start, clock mode and speed."""

    profile: str = "binance_coinm"
    scenario: str | dict[str, str] = "manual"
    seed: int = 0
    start: str | int | None = None
    clock: ClockMode = "stepped"
    speed: float = 1.0
    dialect: str | None = None  # the default wire; None: the profile's (api/dialects.py)

    def scenario_ref(self) -> str:
        """The scenario as a name or path."""
        if isinstance(self.scenario, dict):
            return self.scenario["path"]
        return self.scenario


def build_exchange(config: ServerConfig,
                   token_source: Callable[[int], str] = random_token) -> Exchange:
    """A fresh Exchange for ``config`` (raises a domain error naming what is wrong)."""
    if config.clock not in ("stepped", "realtime"):
        raise InvalidInput(f"clock must be 'stepped' or 'realtime', got {config.clock!r}")
    if not 0 < config.speed <= 1_000_000:
        raise InvalidInput(f"speed must be a positive number up to 1e6, got {config.speed!r}")
    try:
        start_ms = None if config.start is None else parse_time_ms(config.start, "start")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    profile = load_profile(config.profile)
    try:
        check_dialect(config.dialect or profile.dialect)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    scenario = load_scenario(config.scenario_ref(), seed=config.seed, start_ms=start_ms)
    return Exchange(profile, scenario, seed=config.seed, token_source=token_source)


class ServerState:
    """The server's single market plus what the wire needs around it."""

    def __init__(self, config: ServerConfig, wall_ms: Callable[[], int] | None = None) -> None:
        self.wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        # API credentials come from here (a cryptographic source); a recording captures them
        # like wall-clock readings, so a replay hands out the same ones.
        self.token_source: Callable[[int], str] = random_token
        self.listeners: list[Callable[[Event], None]] = []
        self.config = config
        self.clock_task_status = "not started"  # the realtime clock task (api/app.py)
        self.exchange = build_exchange(config, self._token)
        self.listen_keys: dict[str, tuple[str, int]] = {}  # key → (account_id, expires wall ms)
        self._anchor = (self.wall_ms(), self.exchange.now_ms)
        self._attach()

    def reset(self, **changes: Any) -> Exchange:
        """Rebuild the market with ``changes`` applied to the config (all or nothing).

        A new scenario without a ``start`` starts where its data starts (a CSV of 2022 cannot
        start at the previous scenario's 2024 start).
        """
        config = self.config_with(**changes)
        return self.install(config, build_exchange(config, self._token))

    def config_with(self, **changes: Any) -> ServerConfig:
        """The config a reset with ``changes`` builds (see ``reset``)."""
        if "scenario" in changes and "start" not in changes:
            changes["start"] = None
        return replace(self.config, **changes)

    async def reset_off_loop(self, **changes: Any) -> Exchange:
        """``reset``, with the market built in a worker thread: loading a large scenario file
        does not stop the event loop from serving the current market meanwhile."""
        config = self.config_with(**changes)
        exchange = await asyncio.to_thread(build_exchange, config, self._token)
        return self.install(config, exchange)

    def install(self, config: ServerConfig, exchange: Exchange) -> Exchange:
        """Swap in a market built for ``config``."""
        self.config, self.exchange = config, exchange
        self.listen_keys.clear()
        self._anchor = (self.wall_ms(), exchange.now_ms)
        self._attach()
        return exchange

    def _token(self, n: int) -> str:
        return self.token_source(n)

    @property
    def dialect(self) -> str:
        """The wire perpsim's own clients speak to this server: ``--dialect`` or the profile's
        (every registered dialect is served either way)."""
        return self.config.dialect or self.exchange.profile.dialect

    def _attach(self) -> None:
        for listener in self.listeners:
            self.exchange.journal.subscribe(listener)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Deliver every journal event of this and every later market to ``listener``."""
        self.listeners.append(listener)
        self.exchange.journal.subscribe(listener)

    # ---- realtime clock ----------------------------------------------------------------------
    def realtime_target_ms(self) -> int:
        """Where simulated time should be now: its anchor plus wall time elapsed × speed."""
        wall0, sim0 = self._anchor
        return sim0 + int((self.wall_ms() - wall0) * self.config.speed)

    def follow_wall_clock(self) -> None:
        """Realtime mode: advance the market to the wall clock's time (no-op when stepped)."""
        if self.config.clock != "realtime" or self.exchange.containment.broken is not None:
            return
        target = self.realtime_target_ms()
        end = self.exchange.scenario.end_ms
        if end is not None:
            target = min(target, end)
        if target > self.exchange.now_ms:
            self.exchange.advance_until(target)

    # ---- listen keys (user data streams) -------------------------------------------------------
    def listen_key_for(self, account_id: str) -> str:
        """Binance returns the account's live key if it has one, else a new one."""
        now = self.wall_ms()
        for key, (owner, expires) in self.listen_keys.items():
            if owner == account_id and expires > now:
                self.listen_keys[key] = (owner, now + LISTEN_KEY_TTL_MS)
                return key
        key = secrets.token_hex(32)
        self.listen_keys[key] = (account_id, now + LISTEN_KEY_TTL_MS)
        return key

    def keep_alive(self, account_id: str) -> bool:
        """Extend the account's listen key; False if it has none alive."""
        now = self.wall_ms()
        for key, (owner, expires) in self.listen_keys.items():
            if owner == account_id and expires > now:
                self.listen_keys[key] = (owner, now + LISTEN_KEY_TTL_MS)
                return True
        return False

    def close_listen_key(self, account_id: str) -> None:
        """Drop the account's listen keys."""
        for key in [k for k, (owner, _) in self.listen_keys.items() if owner == account_id]:
            del self.listen_keys[key]

    def account_for_listen_key(self, key: str) -> str | None:
        """The account a live listen key belongs to."""
        entry = self.listen_keys.get(key)
        if entry is None or entry[1] <= self.wall_ms():
            return None
        return entry[0]
