"""The APIRoute every Bybit v5 router uses: any error becomes Bybit's envelope, never FastAPI's.

Catching inside the route (rather than in app-wide exception handlers) keeps the dialect one
folder: the app's handlers stay those of whichever dialect owns a path prefix, and this
dialect needs no line in them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from perpsim.api.bybit_v5.errors import error_response, is_expected
from perpsim.api.health import STATE_CHANGING

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class BybitRoute(APIRoute):
    """A route whose failures answer ``{"retCode": <Bybit code>, ...}`` with HTTP 200.

    The handler is FastAPI's wrapped by ``wrap_route_handler``, which api/direct_routes.py
    applies to its own handler too (a route answered without FastAPI's is still Bybit's)."""

    def get_route_handler(self) -> Handler:
        return self.wrap_route_handler(super().get_route_handler())

    @staticmethod
    def wrap_route_handler(handler: Handler) -> Handler:
        """``handler`` with every failure answered in Bybit's envelope."""

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # every failure is a Bybit answer (unknown: 10016, logged)
                state = getattr(request.app.state, "perpsim", None)
                now_ms = state.exchange.now_ms if state is not None else 0
                if state is not None and not is_expected(exc) and \
                        request.method in STATE_CHANGING:
                    # The state it left may be half applied: the market is broken (api/health.py
                    # would do this if the error escaped; here it is answered, not raised).
                    state.exchange.containment.mark(exc, now_ms,
                                                    f"{request.method} {request.url.path}")
                return error_response(exc, now_ms)

        return answer
