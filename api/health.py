"""Fault containment on the wire: ``GET /control/health`` and the broken-market guard.

When an internal error broke the market (sim/containment.py), every request except the few
that inspect or rebuild it answers 503 with the breakage (control shape, or the shape of the
dialect owning the path: its ``broken_body``), so a client never trades on a market whose
funding or watcher process died. Unexpected exceptions in a state-changing request break the
market too: the state it left may be half applied.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter, Request

from perpsim.api.dialects import path_owner
from perpsim.api.state import ServerState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Still served on a broken market: what inspects it, rebuilds it, or ends a recording of it.
EXEMPT = ("/control/health", "/control/reset", "/control/record", "/control/snapshot",
          "/docs", "/redoc", "/openapi.json", "/ui/static")
EXEMPT_EXACT = ("/ui",)
STATE_CHANGING = ("POST", "PUT", "DELETE", "PATCH")

router = APIRouter(prefix="/control", tags=["control"])


def health(state: ServerState) -> dict[str, Any]:
    """The body of GET /control/health."""
    ex = state.exchange
    broken = ex.containment.broken
    return {"status": "broken" if broken is not None else "ok",
            "broken": None if broken is None else broken.as_json(),
            "now": ex.now_ms, "clock": state.config.clock,
            "clock_task": state.clock_task_status}


@router.get("/health")
async def get_health(request: Request) -> dict[str, Any]:
    """Whether the market works; if an internal error broke it, what broke, where and when."""
    return health(request.app.state.perpsim)


class BrokenMarketGuard:
    """Pure ASGI: refuse calls on a broken market; break it on an unexpected error."""

    def __init__(self, app: ASGIApp, state_of: Callable[[], ServerState]) -> None:
        self.app = app
        self.state_of = state_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state_of()
        path, method = str(scope.get("path", "")), str(scope.get("method", ""))
        broken = state.exchange.containment.broken
        if broken is not None and not _exempt(path):
            shape = getattr(path_owner(path), "broken_body", None)  # a dialect's own answer
            body: dict[str, Any]
            if shape is not None:
                body = shape(broken.describe(), state.exchange.now_ms)
            else:
                body = {"error": "market_broken", "message": broken.describe()}
            data = json.dumps(body).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})
            return
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if method in STATE_CHANGING:
                ex = state.exchange
                ex.containment.mark(exc, ex.now_ms, f"{method} {path}")
            raise


def _exempt(path: str) -> bool:
    return path in EXEMPT_EXACT or path.startswith(EXEMPT)
