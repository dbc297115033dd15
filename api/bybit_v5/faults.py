"""Injected faults (api/faults.py) as Bybit answers them, on the v5 paths and streams.

The fault registry decides in the venue-neutral terms of its rules (a rate budget exceeded, a
ban, a 5xx, a downtime, an order reject) and writes Binance-shaped answers; this module turns a
decision into Bybit's:

* a request that meets a rate limit carries ``X-Bapi-Limit`` (the budget),
  ``X-Bapi-Limit-Status`` (what is left in the window) and ``X-Bapi-Limit-Reset-Timestamp``
  (wall ms the window ends), as Bybit adds to every answer of a limited endpoint;
* over the budget: HTTP 200 with ``retCode`` 10006 "Too many visits!" (ccxt:
  RateLimitExceeded); banned (a client that kept sending): HTTP 403 "access too frequent",
  Bybit's IP ban (ccxt maps 403 to RateLimitExceeded too);
* a 5xx or a downtime keeps its HTTP status with the envelope and 10016 (Bybit's "server
  error, try again"), except a 502 / 504, a gateway's plain-text page;
* an order reject is HTTP 200 with the rule's ``code`` as the retCode (Bybit's codes are
  positive; a rule without one, or with a Binance code, answers 10001 "params error").

On the WebSockets (``/v5/public/inverse``, ``/v5/private``) the rules' ``stream`` glob matches
a data frame's ``topic`` (``orderbook.50.BTCUSD``, ``order``, ...); op answers (subscribe
acks, pongs, auth) are never faulted. A private connection belongs to its account from its
``auth`` on. ``listen_key_expiry`` is Bybit's closest event: the private session ends (a close
1000 "auth expired"; no frame first, Bybit sends none) and the client reconnects and
authenticates again, as pybit and ccxt do on a close.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from perpsim.api.bybit_v5.errors import INTERNAL_ERROR, PARAMS_ERROR, RATE_LIMIT, envelope
from perpsim.api.fault_rates import HttpError
from perpsim.api.faults import MAINTENANCE_MSG, HttpDecision
from perpsim.api.state import ServerState
from perpsim.api.stream_session import StreamSession

BANNED_TEXT = "access too frequent"  # Bybit's 403 body for a banned IP
GATEWAY_PAGES = (502, 504)  # 5xx a gateway answers in plain text
# Default paths of rules that name none: every v5 request shares one budget; the order endpoint.
RATE_LIMIT_POOLS = ("/v5/*",)
ORDER_PATHS = ("/v5/order/create",)


def _limit_headers(decision: HttpDecision) -> dict[str, str]:
    if not decision.budgets:
        return {}
    budget = decision.budgets[0]
    spec = budget.spec
    window_end = budget.installed_wall_ms + (max(budget.window, 0) + 1) * spec.interval_ms
    return {"X-Bapi-Limit": str(spec.limit),
            "X-Bapi-Limit-Status": str(max(0, spec.limit - budget.used)),
            "X-Bapi-Limit-Reset-Timestamp": str(window_end)}


def _answer(error: HttpError, now_ms: int) -> HttpError:
    if error.kind == "rate_limit":
        return dataclasses.replace(error, status=200, headers={}, body=envelope(
            {}, now_ms, ret_code=RATE_LIMIT, ret_msg="Too many visits!"))
    if error.kind == "banned":
        return dataclasses.replace(error, status=403, body=None, text=BANNED_TEXT, headers={})
    if error.status >= 500:
        if error.kind == "http_5xx" and error.status in GATEWAY_PAGES and error.code is None \
                and error.msg is None:
            return error  # the gateway's own plain-text page, as in front of any venue
        return dataclasses.replace(error, body=envelope(
            {}, now_ms, ret_code=INTERNAL_ERROR, ret_msg=error.msg or (
                MAINTENANCE_MSG if error.kind == "downtime" else "Internal server error.")))
    code = error.code
    ret_code = code if isinstance(code, int) and code > 0 else PARAMS_ERROR
    message = error.msg or "order rejected"
    if ret_code == PARAMS_ERROR:
        message = f"params error: {message}"
    return dataclasses.replace(error, status=200, body=envelope({}, now_ms, ret_code=ret_code,
                                                                ret_msg=message))


def fault_answer(decision: HttpDecision, now_ms: int) -> HttpDecision:
    """``decision`` with Bybit's headers and, if it answers an error, Bybit's answer."""
    error = None if decision.error is None else _answer(decision.error, now_ms)
    return dataclasses.replace(decision, error=error, headers=_limit_headers(decision))


def ws_event_type(text: str) -> str | None:
    """A data frame's ``topic`` (None for op answers and anything else)."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, dict) or "data" not in frame:
        return None
    topic = frame.get("topic")
    return topic if isinstance(topic, str) else None


def ws_expire(session: StreamSession, state: ServerState
              ) -> tuple[list[dict[str, Any]], tuple[int, str]]:
    """The private session's authentication ends: no frame, a normal close."""
    return [], (1000, "auth expired")
