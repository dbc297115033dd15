"""Rate limits, venue-neutral: request weights, a budget per window of WALL time, 429 with
``Retry-After``, then 418 and a ban for a client that keeps sending (Binance's scheme, which
Bybit's 10006 / 403 maps onto).

A request's weight is the rule's ``weights`` override, else its dialect's ``request_weight``
hook (Binance COIN-M's table; 1 where a dialect has none). Counting orders, a POST to one of
the dialect's ``ORDER_PATHS`` costs 1. The window is ``interval_ms`` of wall time counted from
the rule's installation. A request that arrives while an earlier 429's ``Retry-After`` is still
running is a violation; ``ban_after`` of them give a 418 and an ``ban_ms`` ban, during which
every matching request is 418. The errors carry no body: each dialect's ``fault_answer`` shapes
them and adds its usage headers (X-MBX-USED-WEIGHT-*, X-Bapi-Limit-*).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perpsim.api.dialects import path_owner

if TYPE_CHECKING:
    from perpsim.api.faults import FaultSpec


@dataclass
class HttpError:
    """An injected answer: status, JSON body (or plain text), headers, and whether the request
    runs anyway (its own answer is then discarded). ``kind`` (rate_limit, banned, http_5xx,
    order_reject, downtime) and the rule's ``code`` / ``msg`` let a dialect shape the body."""

    status: int
    body: dict[str, Any] | None
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    executed: bool = False
    rule: str = ""
    kind: str = ""
    code: int | None = None
    msg: str | None = None


def order_paths(path: str) -> tuple[str, ...]:
    """The order-placing paths of the dialect owning ``path`` (empty if none)."""
    return tuple(getattr(path_owner(path), "ORDER_PATHS", ()))


class RateBudget:
    """One rate_limit rule's budget: the current window, its use, the ban."""

    def __init__(self, spec: FaultSpec, rule_id: str, installed_wall_ms: int) -> None:
        self.spec = spec
        self.rule_id = rule_id
        self.installed_wall_ms = installed_wall_ms
        self.window = -1
        self.used = 0
        self.retry_at = 0  # wall ms the last 429 told the client to wait for
        self.violations = 0
        self.banned_until = 0
        self.bans = 0

    def cost(self, method: str, path: str, params: Mapping[str, str]) -> int | None:
        """What a request spends (None: it does not count, e.g. a GET when counting orders)."""
        if self.spec.unit == "orders":
            return 1 if method == "POST" and path in order_paths(path) else None
        override = self.spec.weights.get(f"{method} {path}")
        if override is not None:
            return override
        weight = getattr(path_owner(path), "request_weight", None)
        return 1 if weight is None else int(weight(method, path, params))

    def charge(self, cost: int, wall_ms: int) -> HttpError | None:
        """Spend ``cost`` now; a 429 / 418 answer when the budget or a ban says no."""
        spec = self.spec
        if self.banned_until > wall_ms:
            return self._banned(wall_ms)
        window = (wall_ms - self.installed_wall_ms) // spec.interval_ms
        if window != self.window:
            self.window, self.used = window, 0
        if self.used + cost <= spec.limit:
            self.used += cost
            return None
        if wall_ms < self.retry_at:
            self.violations += 1
            if self.violations >= spec.ban_after:
                self.violations, self.bans = 0, self.bans + 1
                self.banned_until = wall_ms + spec.ban_ms
                return self._banned(wall_ms)
        window_end = self.installed_wall_ms + (window + 1) * spec.interval_ms
        if wall_ms >= self.retry_at:  # a new 429 episode: the client waited out the last one
            self.retry_at, self.violations = window_end, 0
        seconds = max(1, math.ceil((window_end - wall_ms) / 1000))
        return HttpError(429, None, text="Too Many Requests", kind="rate_limit",
                         headers={"Retry-After": str(seconds)}, rule=self.rule_id)

    def _banned(self, wall_ms: int) -> HttpError:
        seconds = max(1, math.ceil((self.banned_until - wall_ms) / 1000))
        return HttpError(418, None, text="I'm a teapot: banned", kind="banned",
                         headers={"Retry-After": str(seconds)}, rule=self.rule_id)
