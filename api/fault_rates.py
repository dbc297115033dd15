"""Rate limits as Binance applies them: request weights per endpoint, a budget per window
of WALL time, 429 with ``Retry-After``, then 418 and a ban for a client that keeps sending.

Weights are Binance COIN-M's (docs "Market Data" / "Account/Trades" endpoints; a call the table
does not list weighs 1). The window is ``interval_ms`` of wall time counted from the rule's
installation (Binance: the clock minute). A request that arrives while an earlier 429's
``Retry-After`` is still running is a violation; ``ban_after`` of them give a 418 and an
``ban_ms`` ban (Binance: 2 minutes to 3 days), during which every matching request is 418.
Every answer of a matching request carries ``X-MBX-USED-WEIGHT-<interval>`` (or
``X-MBX-ORDER-COUNT-<interval>`` when counting orders).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perpsim.api.faults import FaultSpec


@dataclass
class HttpError:
    """An injected answer: status, JSON body (or plain text), headers, and whether the request
    runs anyway (its own answer is then discarded)."""

    status: int
    body: dict[str, Any] | None
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    executed: bool = False
    rule: str = ""


def interval_label(ms: int) -> str:
    """Binance's interval suffix of X-MBX-USED-WEIGHT-*: 1M, 1H, 1D, or seconds."""
    for unit_ms, letter in ((86_400_000, "D"), (3_600_000, "H"), (60_000, "M")):
        if ms % unit_ms == 0:
            return f"{ms // unit_ms}{letter}"
    return f"{math.ceil(ms / 1000)}S"


def _by_limit(limit: str | None, default: int, steps: tuple[tuple[int, int], ...]) -> int:
    try:
        n = int(limit) if limit is not None else default
    except ValueError:
        n = default
    for upto, weight in steps:
        if n <= upto:
            return weight
    return steps[-1][1]


_KLINES = ((99, 1), (499, 2), (1000, 5), (10**9, 10))
_FIXED: dict[str, int] = {
    "GET /dapi/v1/ping": 1, "GET /dapi/v1/time": 1, "GET /dapi/v1/exchangeInfo": 1,
    "GET /dapi/v1/trades": 5, "GET /dapi/v1/historicalTrades": 20, "GET /dapi/v1/aggTrades": 20,
    "GET /dapi/v1/premiumIndex": 10, "GET /dapi/v1/fundingRate": 1, "GET /dapi/v1/account": 5,
    "GET /dapi/v1/income": 20, "GET /dapi/v1/commissionRate": 20,
    "GET /dapi/v1/positionSide/dual": 30, "GET /api/v3/account": 20,
    "POST /sapi/v1/asset/transfer": 900,
}
_SYMBOL_OR_ALL = {"GET /dapi/v1/ticker/24hr": (1, 40), "GET /dapi/v1/ticker/price": (1, 2),
                  "GET /dapi/v1/ticker/bookTicker": (2, 5), "GET /dapi/v1/openOrders": (1, 40),
                  "GET /dapi/v1/openAlgoOrders": (1, 40), "GET /dapi/v1/userTrades": (20, 40),
                  "GET /dapi/v1/allOrders": (20, 40)}


def request_weight(method: str, path: str, params: Mapping[str, str]) -> int:
    """Binance COIN-M request weight of one call (1 for anything the table does not list)."""
    key = f"{method} {path}"
    if key in _FIXED:
        return _FIXED[key]
    if key in _SYMBOL_OR_ALL:
        with_symbol, without = _SYMBOL_OR_ALL[key]
        return with_symbol if params.get("symbol") else without
    if key == "GET /dapi/v1/depth":
        return _by_limit(params.get("limit"), 500, ((50, 2), (100, 5), (500, 10), (10**9, 20)))
    if method == "GET" and path.startswith("/dapi/v1/") and path.endswith(("lines", "Klines")):
        return _by_limit(params.get("limit"), 500, _KLINES)
    return 1


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
            return 1 if method == "POST" and path.endswith("/order") else None
        return self.spec.weights.get(f"{method} {path}", request_weight(method, path, params))

    def charge(self, cost: int, wall_ms: int) -> HttpError | None:
        """Spend ``cost`` now; a 429 / 418 answer when the budget or a ban says no."""
        spec = self.spec
        label = interval_label(spec.interval_ms)
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
        if wall_ms >= self.retry_at:
            self.retry_at = window_end
        seconds = max(1, math.ceil((window_end - wall_ms) / 1000))
        if spec.unit == "orders":
            body = {"code": -1015, "msg": f"Too many new orders; current limit is {spec.limit} "
                    f"orders per {label}."}
        else:
            body = {"code": -1003, "msg": f"Too many requests; current limit of IP(127.0.0.1) is "
                    f"{spec.limit} requests per {label}. Please use the websocket for live "
                    "updates to avoid polling the API."}
        return HttpError(429, body, headers={"Retry-After": str(seconds)}, rule=self.rule_id)

    def _banned(self, wall_ms: int) -> HttpError:
        seconds = max(1, math.ceil((self.banned_until - wall_ms) / 1000))
        body = {"code": -1003, "msg": f"Way too many requests; IP(127.0.0.1) banned until "
                f"{self.banned_until}. Please use the websocket for live updates to avoid bans."}
        return HttpError(418, body, headers={"Retry-After": str(seconds)}, rule=self.rule_id)

    def used_headers(self) -> dict[str, str]:
        """X-MBX-USED-WEIGHT-<interval> (or ORDER-COUNT) as Binance adds to every answer."""
        name = "X-MBX-ORDER-COUNT-" if self.spec.unit == "orders" else "X-MBX-USED-WEIGHT-"
        return {name + interval_label(self.spec.interval_ms): str(self.used)}
