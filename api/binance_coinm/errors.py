"""THE table from perpsim's errors to Binance COIN-M error responses, and the dialect's answer
for the app-wide handlers (api/errors.py).

Every domain error (sim/errors.py) and every authentication error (api/auth.py) becomes
``(HTTP status, {"code": <negative int>, "msg": <text>})`` here and nowhere else. Codes and
messages are Binance's own, chosen so that ccxt 4.5.90, with the COIN-M table restored
(strategy/connect.py), raises the class a Binance user would see (docs/dialect-notes.md §2):

=====================  =======  ======================================  =====================
perpsim error          code     Binance message                         ccxt raises
=====================  =======  ======================================  =====================
InsufficientFunds      −2019    Margin is insufficient.                 InsufficientFunds
OrderNotFound          −2013    Order does not exist.                   OrderNotFound
  (when cancelling)    −2011    Unknown order sent.                     OrderNotFound
ReduceOnlyRejected     −2022    ReduceOnly Order is rejected.           InvalidOrder
PostOnlyWouldTake      −5022    Due to the order could not be ...       ExchangeError (*)
FillOrKillUnfilled     −5021    Due to the order could not be ...       ExchangeError (*)
DuplicateClientOrderId −4116    ClientOrderId is duplicated.            ExchangeError (*)
MarginModeAlreadySet   −4046    No need to change margin type.          MarginModeAlreadySet
PriceAboveBand         −4016    Price is higher than mark price ...     ExchangeError (*)
PriceBelowBand         −4024    Price is lower than mark price ...      ExchangeError (*)
MarketPriceOutsideBand −4131    The counterparty's best price ...       ExchangeError (*)
PositionModeAlreadySet −4059    No need to change position side.        ExchangeError (*)
PositionModeOpenOrders −4067    Position side cannot be changed ...     ExchangeError (*)
PositionModeOpen...    −4068    Position side cannot be changed ...     ExchangeError (*)
UnknownSymbol          −1121    Invalid symbol.                         BadSymbol
wrong secret           −1022    Signature for this request is not ...   AuthenticationError
unknown API key        −2015    Invalid API-key, IP, or permissions...  AuthenticationError
stale timestamp        −1021    Timestamp for this request is outs...   InvalidNonce
AlgoOrderRequired      −4120    Order type not supported for this ...   ExchangeError (*)
=====================  =======  ======================================  =====================

(*) ccxt has no COIN-M mapping for these codes, so real Binance gives the same ExchangeError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from perpsim.api.binance_coinm import signing
from perpsim.sim import errors as domain

# Paths that speak the Binance dialect (connect() maps every ccxt base URL onto one of these);
# anything else (the /control plane) keeps its own error shape.
BINANCE_PREFIXES = ("/dapi/", "/fapi/", "/sapi/", "/api/", "/eapi/", "/papi/", "/futures/")

UNKNOWN_ERROR_MSG = "An unknown error occured while processing the request."  # sic, Binance


class AlgoOrderRequired(Exception):
    """A conditional order type sent to ``POST /dapi/v1/order``.

    Since Binance moved conditional orders to its Algo Service (USDⓈ-M 2025-12-09; COIN-M
    through ``/dapi/v1/algoOrder``) the plain order endpoint refuses them with −4120
    STOP_ORDER_SWITCH_ALGO instead of placing them.
    """


@dataclass(frozen=True, slots=True)
class WireError:
    """One row of the table: HTTP status, Binance code, and message (None: the error's own)."""

    status: int
    code: int
    msg: str | None


def _missing(name: str) -> str:
    return f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."


def _illegal(name: str) -> str:
    return f"Illegal characters found in parameter '{name}'."


# Most specific class first does not matter: lookup walks the exception's MRO.
ERROR_TABLE: dict[type[BaseException], WireError] = {
    # authentication (api/binance_coinm/signing.py)
    signing.MissingApiKey: WireError(401, -2014, "API-key format invalid."),
    signing.MalformedApiKey: WireError(401, -2014, "API-key format invalid."),
    signing.UnknownApiKey: WireError(
        401, -2015, "Invalid API-key, IP, or permissions for action."
    ),
    signing.BadSignature: WireError(400, -1022, "Signature for this request is not valid."),
    signing.TimestampAhead: WireError(
        400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
    ),
    signing.TimestampExpired: WireError(
        400, -1021, "Timestamp for this request is outside of the recvWindow."
    ),
    signing.RecvWindowTooLarge: WireError(400, -1131, "recvWindow must be less than 60000"),
    signing.DuplicateParameter: WireError(400, -1101, "Duplicate values for a parameter detected."),
    signing.MissingParameter: WireError(400, -1102, None),  # message names the parameter
    signing.MalformedParameter: WireError(400, -1100, None),
    AlgoOrderRequired: WireError(400, -4120, "Order type not supported for this endpoint. "
                                 "Please use the Algo Order API endpoints instead."),
    # domain (sim/errors.py)
    domain.UnknownSymbol: WireError(400, -1121, "Invalid symbol."),
    domain.InvalidInterval: WireError(400, -1120, "Invalid interval."),
    domain.BadParameterCombination: WireError(400, -1128, None),
    domain.LeverageTooHigh: WireError(400, -4028, "Leverage is not valid."),
    domain.OffTick: WireError(400, -4014, "Price not increased by tick size."),
    domain.InvalidPrice: WireError(400, -1130, "Data sent for parameter 'price' is not valid."),
    domain.InvalidQuantity: WireError(400, -1013, "Invalid quantity."),
    domain.InvalidInput: WireError(400, -1130, None),
    domain.InsufficientFunds: WireError(400, -2019, "Margin is insufficient."),
    domain.ReduceOnlyRejected: WireError(400, -2022, "ReduceOnly Order is rejected."),
    domain.PostOnlyWouldTake: WireError(
        400, -5022, "Due to the order could not be executed as maker, the Post Only order will "
        "be rejected. The order will not be recorded in the order history",
    ),
    domain.FillOrKillUnfilled: WireError(
        400, -5021, "Due to the order could not be filled immediately, the FOK order has been "
        "rejected. The order will not be recorded in the order history",
    ),
    domain.DuplicateClientOrderId: WireError(400, -4116, "ClientOrderId is duplicated."),
    domain.TooManyOpenOrders: WireError(400, -2025, "Reach max open order limit."),
    domain.PositionTooLargeForLeverage: WireError(
        400, -2027, "Exceeded the maximum allowable position at current leverage."),
    domain.PriceAboveBand: WireError(
        400, -4016, "Price is higher than mark price multiplier cap."
    ),
    domain.PriceBelowBand: WireError(
        400, -4024, "Price is lower than mark price multiplier floor."
    ),
    domain.MarketPriceOutsideBand: WireError(
        400, -4131, "The counterparty's best price does not meet the PERCENT_PRICE filter limit."
    ),
    domain.PositionModeAlreadySet: WireError(400, -4059, "No need to change position side."),
    domain.PositionModeChangeRejected: WireError(
        400, -4068, "Position side cannot be changed if there exists position."
    ),
    domain.PositionModeOpenOrders: WireError(
        400, -4067, "Position side cannot be changed if there exists open orders."
    ),
    domain.PositionModeOpenPositions: WireError(
        400, -4068, "Position side cannot be changed if there exists position."
    ),
    domain.InvalidPositionSide: WireError(400, -4060, "Invalid position side."),
    domain.PositionSideMismatch: WireError(
        400, -4061, "Order's position side does not match user's setting."
    ),
    domain.ReduceOnlyConflict: WireError(400, -4062, "Invalid or improper reduceOnly value."),
    domain.WouldTriggerImmediately: WireError(400, -2021, "Order would immediately trigger."),
    domain.OrderRejected: WireError(400, -2010, None),
    domain.OrderNotFound: WireError(400, -2013, "Order does not exist."),
    domain.MarginModeAlreadySet: WireError(400, -4046, "No need to change margin type."),
    domain.MarginModeChangeRejected: WireError(
        400, -4048, "Margin type cannot be changed if there exists position."
    ),
    domain.UnknownAccount: WireError(401, -2015, "Invalid API-key, IP, or permissions for action."),
    domain.InvalidState: WireError(400, -1020, None),
    # the server's own faults, never the request's
    domain.LedgerError: WireError(500, -1000, UNKNOWN_ERROR_MSG),
    domain.ProfileError: WireError(500, -1000, UNKNOWN_ERROR_MSG),
    domain.ScenarioError: WireError(500, -1000, UNKNOWN_ERROR_MSG),
    domain.PerpsimError: WireError(500, -1000, UNKNOWN_ERROR_MSG),
}

INTERNAL = WireError(500, -1000, UNKNOWN_ERROR_MSG)

# Binance has several codes where perpsim has one class; the engine's message says which.
# Keyed by words of the sim's messages (tests pin them against sim/money.py and sim/orders.py).
_QUANTITY_REFINEMENTS: tuple[tuple[tuple[str, ...], WireError], ...] = (
    (("whole number", "fractional"), WireError(
        400, -1111, "Precision is over the maximum defined for this asset.")),
    (("must be positive", "non-zero", "zero"), WireError(
        400, -4003, "Quantity less than or equal to zero.")),
    (("below the minimum",), WireError(400, -4004, "Quantity less than min quantity.")),
    (("above the",), WireError(400, -4005, "Quantity greater than max quantity.")),
    (("multiple of the lot",), WireError(400, -4023, "Qty not increased by step size.")),
)
_PRICE_REFINEMENTS: tuple[tuple[tuple[str, ...], WireError], ...] = (
    (("needs a price",), WireError(400, -1102, _missing("price"))),
    (("takes no price",), WireError(400, -1106, "Parameter 'price' sent when not required.")),
    (("must be positive",), WireError(400, -4001, "Price less than 0.")),
    (("below the minimum price",), WireError(400, -4013, "Price less than min price.")),
    (("above the maximum price",), WireError(400, -4002, "Price greater than max price.")),
)
_MARGIN_MODE_OPEN_ORDERS = WireError(
    400, -4047, "Margin type cannot be changed if there exists open orders."
)
_CANCEL_UNKNOWN_ORDER = WireError(400, -2011, "Unknown order sent.")


def _refine(message: str, rules: tuple[tuple[tuple[str, ...], WireError], ...]) -> WireError | None:
    lowered = message.lower()
    for words, wire in rules:
        if any(word in lowered for word in words):
            return wire
    return None


def wire_error(exc: BaseException, *, operation: str | None = None) -> WireError:
    """The table row for ``exc`` (by class, then refined by message/operation)."""
    message = str(exc)
    if isinstance(exc, domain.OrderNotFound) and operation == "cancel":
        return _CANCEL_UNKNOWN_ORDER
    if isinstance(exc, domain.InvalidQuantity):
        refined = _refine(message, _QUANTITY_REFINEMENTS)
        if refined is not None:
            return refined
    if isinstance(exc, domain.InvalidPrice) and not isinstance(exc, domain.OffTick):
        refined = _refine(message, _PRICE_REFINEMENTS)
        if refined is not None:
            return refined
    if isinstance(exc, domain.MarginModeChangeRejected) and "order" in message.lower():
        return _MARGIN_MODE_OPEN_ORDERS
    for cls in type(exc).__mro__:
        row = ERROR_TABLE.get(cls)
        if row is not None:
            return row
    return INTERNAL


def _own_message(exc: BaseException) -> str:
    if isinstance(exc, signing.MissingParameter):
        return _missing(exc.name)
    if isinstance(exc, signing.MalformedParameter):
        return _illegal(exc.name)
    return str(exc) or type(exc).__name__


def to_binance_error(
    exc: BaseException, *, operation: str | None = None
) -> tuple[int, dict[str, Any]]:
    """``(HTTP status, {"code", "msg"})`` for any exception; ``operation="cancel"`` → −2011."""
    row = wire_error(exc, operation=operation)
    msg = row.msg if row.msg is not None else _own_message(exc)
    return row.status, {"code": row.code, "msg": msg}


def validation_error_body(exc: RequestValidationError) -> dict[str, Any]:
    """−1102 for a missing parameter, −1100 for an unparsable one (FastAPI's 422 never leaks)."""
    problems = list(exc.errors())
    for problem in problems:
        if problem.get("type") == "missing":
            return {"code": -1102, "msg": _missing(_param_name(problem))}
    name = _param_name(problems[0]) if problems else "?"
    return {"code": -1100, "msg": _illegal(name)}


def _param_name(problem: Any) -> str:
    location = [str(part) for part in problem.get("loc", ()) if part not in ("query", "body")]
    return location[-1] if location else "?"


def unknown_path_body(method: str, path: str) -> dict[str, Any]:
    """What Binance's futures gateway sends, with HTTP 404, for a path/method it lacks."""
    return {"code": -5000, "msg": f"Path {path}, Method {method} is invalid"}


def broken_body(message: str, now_ms: int) -> dict[str, Any]:
    """What a request on a broken market answers (api/health.py; HTTP 503): −1001, Binance's
    "internal error; unable to process your request"."""
    return {"code": -1001, "msg": message}


def is_binance_path(path: str) -> bool:
    """True for the dialect's paths (errors in Binance JSON), False for the control plane."""
    return path.startswith(BINANCE_PREFIXES)


# Exceptions of this dialect's own that the app-wide handlers (api/errors.py) must answer.
HANDLED_ERRORS: tuple[type[Exception], ...] = (signing.SigningError, AlgoOrderRequired)


def error_answer(request: Request, exc: Exception) -> Response:
    """Binance's answer for a failure on a Binance path (api/errors.py calls it): domain and
    signing errors → the table; malformed parameters → −1102 / −1100; unknown path or method
    → 404 −5000; anything unexpected → 500 −1000."""
    if isinstance(exc, RequestValidationError):
        return JSONResponse(validation_error_body(exc), status_code=400)
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code in (404, 405):
            body = unknown_path_body(request.method, request.url.path)
            return JSONResponse(body, status_code=404)
        body = {"code": -1000, "msg": str(exc.detail) or UNKNOWN_ERROR_MSG}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    status, body = to_binance_error(exc)
    return JSONResponse(body, status_code=status)
