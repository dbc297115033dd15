"""Injected faults (api/faults.py) as Binance COIN-M answers them, on the Binance paths.

The registry decides in venue-neutral terms (a budget spent, a ban, a 5xx, a downtime, an order
reject); this module gives the decision Binance's shape:

* request weights per endpoint (COIN-M docs "Market Data" / "Account/Trades"; a call the table
  does not list weighs 1), and every answer of a limited endpoint carries
  ``X-MBX-USED-WEIGHT-<interval>`` (or ``X-MBX-ORDER-COUNT-<interval>`` counting orders);
* over the budget: 429 ``{"code": -1003}`` (orders: −1015) with ``Retry-After``; banned: 418
  −1003 "Way too many requests";
* a 500 is ``{"code": -1000}``, a 503 −1001 (with ``executed``: −1007 "execution status
  unknown"), a 502 / 504 the gateway's plain text; a rule's own ``code`` / ``msg`` win;
* an order reject is the rule's ``code`` (default −2010 NEW_ORDER_REJECTED) with Binance's
  message for it; downtime is 503 "System is under maintenance." (ccxt: OnMaintenance).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from perpsim.api.binance_coinm.errors import UNKNOWN_ERROR_MSG
from perpsim.api.fault_rates import HttpError, RateBudget
from perpsim.api.faults import MAINTENANCE_MSG, HttpDecision

# Default paths of rules that name none: the COIN-M IP weight pool (/sapi, /api have their own)
# and the order endpoint.
RATE_LIMIT_POOLS = ("/dapi/*",)
ORDER_PATHS = ("/dapi/v1/order",)
DEFAULT_REJECT_CODE = -2010
REJECT_MESSAGES = {
    -1008: "Server is currently overloaded with other requests. Please try again in a few "
           "minutes.",
    -1015: "Too many new orders; current limit is 1200 orders per MINUTE.",
    -2010: "NEW_ORDER_REJECTED",
    -2019: "Margin is insufficient.",
    -2020: "Unable to fill.",
    -4131: "The counterparty's best price does not meet the PERCENT_PRICE filter limit.",
}
# What Binance answers for each injected 5xx: (status, executed) → body (None: the gateway's
# plain-text page).
_5XX_BODIES: dict[tuple[int, bool], dict[str, Any]] = {
    (500, False): {"code": -1000, "msg": UNKNOWN_ERROR_MSG},
    (500, True): {"code": -1000, "msg": UNKNOWN_ERROR_MSG},
    (503, False): {"code": -1001, "msg": "Internal error; unable to process your request. "
                   "Please try again."},
    (503, True): {"code": -1007, "msg": "Timeout waiting for response from backend server. "
                  "Send status unknown; execution status unknown."},
}


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


def _used_headers(budget: RateBudget) -> dict[str, str]:
    name = "X-MBX-ORDER-COUNT-" if budget.spec.unit == "orders" else "X-MBX-USED-WEIGHT-"
    return {name + interval_label(budget.spec.interval_ms): str(budget.used)}


def _rate_body(error: HttpError, budget: RateBudget) -> dict[str, Any]:
    spec = budget.spec
    label = interval_label(spec.interval_ms)
    if error.kind == "banned":
        return {"code": -1003, "msg": f"Way too many requests; IP(127.0.0.1) banned until "
                f"{budget.banned_until}. Please use the websocket for live updates to avoid "
                "bans."}
    if spec.unit == "orders":
        return {"code": -1015, "msg": f"Too many new orders; current limit is {spec.limit} "
                f"orders per {label}."}
    return {"code": -1003, "msg": f"Too many requests; current limit of IP(127.0.0.1) is "
            f"{spec.limit} requests per {label}. Please use the websocket for live updates to "
            "avoid polling the API."}


def _body(error: HttpError, decision: HttpDecision) -> dict[str, Any] | None:
    if error.kind in ("rate_limit", "banned"):
        budget = next(b for b in decision.budgets if b.rule_id == error.rule)
        return _rate_body(error, budget)
    if error.kind == "downtime":
        return {"code": error.code or 1, "msg": error.msg or MAINTENANCE_MSG}
    if error.kind == "order_reject":
        code = error.code if error.code is not None else DEFAULT_REJECT_CODE
        return {"code": code, "msg": error.msg or REJECT_MESSAGES.get(code, "Order rejected.")}
    if error.code is not None or error.msg is not None:
        return {"code": error.code if error.code is not None else -1000,
                "msg": error.msg or UNKNOWN_ERROR_MSG}
    return _5XX_BODIES.get((error.status, error.executed))


def fault_answer(decision: HttpDecision, now_ms: int) -> HttpDecision:
    """``decision`` with Binance's weight headers and, if it answers an error, Binance's body."""
    headers = {k: v for budget in decision.budgets for k, v in _used_headers(budget).items()}
    error = decision.error
    if error is not None:
        error = dataclasses.replace(error, body=_body(error, decision))
    return dataclasses.replace(decision, error=error, headers=headers)
