"""THE table from perpsim's errors to Bybit v5 ``retCode``s, and the v5 envelope.

Bybit answers every request with HTTP 200 and ``{"retCode", "retMsg", "result", "retExtInfo",
"time"}``; an error is a non-zero ``retCode``. Codes are Bybit's own, chosen so that ccxt.bybit
4.5.90 (``exceptions['exact']``) raises the class a Bybit user would see:

=========================  =======  ==========================================  ===================
perpsim error              retCode  Bybit message                               ccxt raises
=========================  =======  ==========================================  ===================
bad / missing parameter    10001    params error: ...                           BadRequest
stale timestamp            10002    invalid request, please check your server   InvalidNonce
                                    timestamp or recv_window param
unknown / missing API key  10003    API key is invalid.                         AuthenticationError
wrong signature            10004    error sign! ...                             AuthenticationError
rate limit (faults)        10006    Too many visits!                            RateLimitExceeded
OrderNotFound              110001   order not exists or too late to cancel      OrderNotFound
InsufficientFunds          110007   ab not enough for new order                 InsufficientFunds
LeverageTooHigh            110013   cannot set leverage due to risk limit       BadRequest
ReduceOnlyRejected         110017   current position is zero, cannot fix        InvalidOrder
                                    reduce-only order qty
MarginModeAlreadySet       110026   Cross/isolated margin mode is not modified  MarginModeAlreadySet
leverage unchanged         110043   Set leverage not modified                   BadRequest
PositionModeAlreadySet     110025   Position mode is not modified               NoChange
PositionModeOpenOrders     110028   Open orders exist, so you cannot change …   BadRequest
PositionModeOpenPositions  110024   You have an existing position, so …         BadRequest
DuplicateClientOrderId     110072   OrderLinkedID is duplicate                  InvalidOrder
TooManyOpenOrders          110020   number of active orders greater than …      InvalidOrder
PositionTooLargeFor…       110016   Requested quantity of contracts exceeds …   InvalidOrder
WouldTriggerImmediately    110092/3 expect Rising/Falling, but trigger_price …  InvalidOrder
anything unexpected        10016    Internal server error.                      ExchangeError
unknown path (HTTP 404)    10017    route not found: ...                        BadRequest
=========================  =======  ==========================================  ===================

PostOnly and FOK orders that cannot rest / fill: Bybit accepts them and cancels them at once
(the order shows ``Cancelled`` with its ``rejectReason``); the ``bybit_inverse`` profile says so
(``unfillable_tif: cancel``) and the engine does it. Only a profile that rejects them (Binance's,
served on this wire) raises PostOnlyWouldTake / FillOrKillUnfilled: 10001 naming the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from perpsim.api import auth as signing
from perpsim.sim import errors as domain

log = logging.getLogger(__name__)

PARAMS_ERROR = 10001
TIMESTAMP_ERROR = 10002
INVALID_KEY = 10003
SIGN_ERROR = 10004
RATE_LIMIT = 10006
INTERNAL_ERROR = 10016
ROUTE_NOT_FOUND = 10017
LEVERAGE_NOT_MODIFIED = 110043
TRIGGER_EXPECT_RISING = 110092
TRIGGER_EXPECT_FALLING = 110093

_TIMESTAMP_MSG = ("invalid request, please check your server timestamp or recv_window param. "
                  "req_timestamp[{ts}],server_timestamp[{now}],recv_window[{window}]")

# (retCode, message prefix or None: the error's own words after "params error: ")
RET_CODES: dict[type[BaseException], tuple[int, str | None]] = {
    signing.MissingApiKey: (INVALID_KEY, "API key is invalid."),
    signing.MalformedApiKey: (INVALID_KEY, "API key is invalid."),
    signing.UnknownApiKey: (INVALID_KEY, "API key is invalid."),
    signing.BadSignature: (SIGN_ERROR, None),
    signing.TimestampAhead: (TIMESTAMP_ERROR, None),
    signing.TimestampExpired: (TIMESTAMP_ERROR, None),
    signing.RecvWindowTooLarge: (PARAMS_ERROR, None),
    signing.SigningError: (PARAMS_ERROR, None),
    domain.UnknownAccount: (INVALID_KEY, "API key is invalid."),
    domain.OrderNotFound: (110001, "order not exists or too late to cancel"),
    domain.InsufficientFunds: (110007, "ab not enough for new order"),
    domain.LeverageTooHigh: (110013, "cannot set leverage due to risk limit"),
    domain.ReduceOnlyRejected: (110017, "current position is zero, cannot fix reduce-only "
                                "order qty"),
    domain.MarginModeAlreadySet: (110026, "Cross/isolated margin mode is not modified"),
    domain.PositionModeAlreadySet: (110025, "Position mode is not modified"),
    domain.PositionModeOpenOrders: (110028, "Open orders exist, so you cannot change position "
                                    "mode"),
    domain.PositionModeChangeRejected: (110024, "You have an existing position, so position "
                                        "mode cannot be switched"),
    domain.DuplicateClientOrderId: (110072, "OrderLinkedID is duplicate"),
    domain.TooManyOpenOrders: (110020, "number of active orders greater than the limit"),
    domain.PositionTooLargeForLeverage: (110016, "Requested quantity of contracts exceeds risk "
                                         "limit, please adjust your risk limit level"),
    domain.PostOnlyWouldTake: (PARAMS_ERROR, "EC_PostOnlyWillTakeLiquidity: the PostOnly order "
                               "would take liquidity"),
    domain.FillOrKillUnfilled: (PARAMS_ERROR, "EC_CancelForNoFullFill: the FOK order cannot be "
                                "filled in full"),
    domain.InvalidInput: (PARAMS_ERROR, None),
    domain.OrderRejected: (PARAMS_ERROR, None),
    domain.MarginModeChangeRejected: (PARAMS_ERROR, None),
    domain.InvalidState: (PARAMS_ERROR, None),
    RequestValidationError: (PARAMS_ERROR, None),
}


class BybitError(Exception):
    """An answer the dialect decides itself (e.g. 110043), with its retCode and message."""

    def __init__(self, ret_code: int, message: str) -> None:
        self.ret_code = ret_code
        super().__init__(message)


def is_expected(exc: BaseException) -> bool:
    """True for the refusals the table maps (anything else is a fault of the server)."""
    return isinstance(exc, BybitError) or any(cls in RET_CODES for cls in type(exc).__mro__)


def broken_body(message: str, now_ms: int) -> dict[str, Any]:
    """What a request on a broken market answers (api/health.py; HTTP 503)."""
    return envelope({}, now_ms, ret_code=INTERNAL_ERROR, ret_msg=message)


def ret_code_of(exc: BaseException) -> tuple[int, str]:
    """``(retCode, retMsg)`` for any exception (unknown ones are 10016, and logged)."""
    if isinstance(exc, BybitError):
        return exc.ret_code, str(exc)
    for cls in type(exc).__mro__:
        row = RET_CODES.get(cls)
        if row is not None:
            code, fixed = row
            if fixed is not None:
                return code, fixed
            if code == PARAMS_ERROR:
                return code, f"params error: {_words(exc)}"
            return code, _words(exc)
    log.error("unexpected error in a Bybit v5 route", exc_info=exc)
    return INTERNAL_ERROR, "Internal server error."


def _words(exc: BaseException) -> str:
    if isinstance(exc, RequestValidationError):
        problems = list(exc.errors())
        if problems:
            where = ".".join(str(p) for p in problems[0].get("loc", ()) if p != "body")
            return f"{where}: {problems[0].get('msg', 'invalid')}"
    return str(exc) or type(exc).__name__


def envelope(result: Any, time_ms: int, *, ret_code: int = 0, ret_msg: str = "OK",
             ext: dict[str, Any] | None = None) -> dict[str, Any]:
    """Bybit's v5 answer around ``result``."""
    return {"retCode": ret_code, "retMsg": ret_msg, "result": result,
            "retExtInfo": ext or {}, "time": time_ms}


def error_response(exc: BaseException, time_ms: int) -> JSONResponse:
    """HTTP 200 with the table's retCode, as Bybit answers a refused request."""
    code, message = ret_code_of(exc)
    return JSONResponse(envelope({}, time_ms, ret_code=code, ret_msg=message))


def error_answer(request: Request, exc: Exception) -> Response:
    """What the app-wide handlers (api/errors.py) answer on a v5 path. Route errors are caught
    inside the routes (route_class.BybitRoute), so only what happens before one is found
    arrives here: an unknown path or method is HTTP 404 with retCode 10017 (Bybit's "route not
    found"); anything else the table's answer."""
    state = getattr(request.app.state, "perpsim", None)
    now_ms = state.exchange.now_ms if state is not None else 0
    if isinstance(exc, StarletteHTTPException) and exc.status_code in (404, 405):
        return JSONResponse(envelope({}, now_ms, ret_code=ROUTE_NOT_FOUND, ret_msg=(
            f"route not found: {request.method} {request.url.path}")), status_code=404)
    return error_response(exc, now_ms)
