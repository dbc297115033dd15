"""The app-wide error handlers and the control plane's error shapes (dialect-neutral).

No request ever answers with FastAPI's own JSON or a bare 500 page. A failure on a dialect's
path (api/dialects.py ``path_owner``) is answered by that dialect's ``error_answer(request,
exc)`` hook in its own shape (Binance's ``{"code", "msg"}``, Bybit's envelope); every other
path, the control plane first, answers ``{"error": code, "message": text}`` (docs/contract.md).
A dialect that raises exceptions of its own outside sim/errors.py lists them in
``HANDLED_ERRORS`` so they are answered, not logged as crashes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from perpsim.api.dialects import DIALECTS, dialect_module, path_owner
from perpsim.sim import errors as domain

_CONTROL_STATUS: dict[type[BaseException], int] = {
    domain.ProfileError: 400,  # a bad profile or scenario named in a reset is the caller's
    domain.ScenarioError: 400,
    domain.UnknownAccount: 404,
    domain.OrderNotFound: 404,
    domain.InvalidState: 409,
    domain.InvalidInput: 400,
    domain.InsufficientFunds: 400,
    domain.OrderRejected: 400,
    domain.MarginModeAlreadySet: 400,
    domain.MarginModeChangeRejected: 400,
    domain.PerpsimError: 500,
}


def to_control_error(exc: domain.PerpsimError) -> tuple[int, dict[str, Any]]:
    """The control plane's ``{"error": code, "message": text}`` shape (docs/contract.md)."""
    status = next(
        (_CONTROL_STATUS[cls] for cls in type(exc).__mro__ if cls in _CONTROL_STATUS), 500
    )
    return status, {"error": exc.code, "message": str(exc)}


def control_validation_body(exc: RequestValidationError) -> dict[str, Any]:
    """The control plane's shape for a body or query that does not parse."""
    problems = list(exc.errors())
    if not problems:
        return {"error": "invalid_request", "message": "the request could not be parsed"}
    first = problems[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return {"error": "invalid_json", "message": f"the body is not valid JSON: {message}"}
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return {"error": "invalid_request",
            "message": f"{where or 'body'}: {message}{more}"}


def control_answer(request: Request, exc: Exception) -> Response:
    """A failure off the dialects' paths, in the control plane's shape."""
    if isinstance(exc, domain.PerpsimError):
        status, body = to_control_error(exc)
        return JSONResponse(body, status_code=status)
    if isinstance(exc, RequestValidationError):
        return JSONResponse(control_validation_body(exc), status_code=400)
    if isinstance(exc, StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "message": f"{request.method} "
                             f"{request.url.path}: {exc.detail}"},
                            status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"error": "internal_error", "message": "an unexpected error; the "
                         "server log has it"}, status_code=500)


def answer(request: Request, exc: Exception) -> Response:
    """The answer for ``exc`` raised while serving ``request``: the owning dialect's, else the
    control plane's."""
    hook = getattr(path_owner(request.url.path), "error_answer", None)
    if hook is not None:
        response: Response = hook(request, exc)
        return response
    return control_answer(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app`` (every dialect's own error classes included)."""

    async def on_error(request: Request, exc: Exception) -> Response:
        return answer(request, exc)

    handled: list[type[Exception]] = [domain.PerpsimError, RequestValidationError,
                                      StarletteHTTPException]
    for name in DIALECTS:
        handled += [cls for cls in getattr(dialect_module(name), "HANDLED_ERRORS", ())
                    if cls not in handled]
    for cls in handled:
        app.add_exception_handler(cls, on_error)
    # Starlette still re-raises after this one, so the error reaches logs and tests.
    app.add_exception_handler(Exception, on_error)
