"""Requests answered by their route's own handler, without the app's outer layers, for a client
in the same process (perpsim/inprocess.py).

An in-process dry run makes a thousand requests per hedge. Each one crosses the app's
middlewares (FastAPI's server-error, telemetry and body-limit layers, the host and token guard,
the broken-market guard, the fault and recording harness) and the route cache before it
reaches the route's direct handler (api/direct_routes.py), and for a dry run's requests none of
those layers does anything. :class:`DirectCalls` hands the caller that handler itself — the
one the route cache serves the path with: the same validation, the same endpoint, the same
answer bytes — inside the layers that do act on every request: FastAPI's exception middleware
with the app's own handlers (every error answered as before) and its exit stack. It steps
aside (None: send the request through the whole app) whenever anything in between could act:

* the route cache has not learnt the path (its first routings), or does not serve it directly;
* the Host is not one the guard accepts; a control token is set for a control path; the body
  is over the size cap, or JSON nested too deep (the guard refuses those);
* the market is broken (the broken-market guard answers 503 instead);
* faults are installed, a recording or the durable request log runs, a replay runs (the
  harness acts on, or writes down, every request);
* the app carries a middleware other than perpsim's own, a body limit, or dependency overrides.

An exception no handler answers marks the market broken when the call changes state (as the
broken-market guard does) and propagates, as it does out of the whole app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware

from perpsim.api.harness import HarnessMiddleware
from perpsim.api.health import STATE_CHANGING, BrokenMarketGuard
from perpsim.api.route_cache import Outcome, RouteCache
from perpsim.api.security import PROTECTED_PREFIXES, SecurityMiddleware, host_name
from perpsim.sim.bounded_json import too_deep

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# perpsim's own middlewares (api/app.py): none of them acts on a call DirectCalls serves.
_OWN_MIDDLEWARE = frozenset((SecurityMiddleware, BrokenMarketGuard, HarnessMiddleware))


class DirectCalls:
    """The direct way to ``app``'s routes for in-process requests (module doc)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._hosts = app.state.perpsim_security.hosts()
        self._leaves: dict[tuple[str, str], tuple[Outcome, ASGIApp]] = {}
        self._own_stack: bool | None = None  # only perpsim's middlewares (once the app runs)
        self.served = 0  # requests handed a leaf (benchmarks/hedge_profile.py reports it)

    def leaf(self, method: str, path: str, *, host: str | None, content_type: str | None,
             body: bytes) -> ASGIApp | None:
        """An ASGI app answering this request exactly as ``app`` would, without the layers
        in between; None when the request must go through ``app`` (module doc)."""
        if not self._nothing_in_between(method, path, host, content_type, body):
            return None
        cache = self.app.router.middleware_stack
        if not isinstance(cache, RouteCache):
            return None
        outcome = cache.learnt(method, path)
        if outcome is None or outcome.direct is None:
            return None
        known = self._leaves.get((method, path))
        if known is None or known[0] is not outcome:
            known = self._leaves[(method, path)] = (outcome, self._build(outcome, method, path))
        self.served += 1
        return known[1]

    def _nothing_in_between(self, method: str, path: str, host: str | None,
                            content_type: str | None, body: bytes) -> bool:
        app = self.app
        if app.dependency_overrides or not self._only_own_middleware():
            return False
        if host is None or host_name(host) not in self._hosts:
            return False
        security = app.state.perpsim_security
        if security.control_token is not None and path.startswith(PROTECTED_PREFIXES):
            return False
        if body and (len(body) > security.max_body_bytes
                     or ("json" in (content_type or "") and too_deep(body) is not None)):
            return False
        if app.state.perpsim.exchange.containment.broken is not None:
            return False
        harness = getattr(app.state, "perpsim_harness", None)
        return harness is None or not (harness.replay or harness.faults.active
                                       or harness.recorders())

    def _only_own_middleware(self) -> bool:
        """No middleware but perpsim's own and no body limit. Starlette builds the stack
        once, at the first request, and refuses middlewares after: from then on the answer
        cannot change, and it is kept."""
        if self._own_stack is not None:
            return self._own_stack
        app = self.app
        own = getattr(app, "max_body_size", None) is None and all(
            m.cls in _OWN_MIDDLEWARE for m in app.user_middleware)
        if app.middleware_stack is not None:
            self._own_stack = own
        return own

    def _build(self, outcome: Outcome, method: str, path: str) -> ASGIApp:
        """The route's direct handler inside FastAPI's exception and exit-stack layers, built
        as FastAPI builds them (fastapi/applications.py ``build_middleware_stack``)."""
        app, direct = self.app, outcome.direct
        assert direct is not None

        async def routed(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("router", app.router)
            outcome.apply(scope)  # what routing writes: path parameters, endpoint, context
            await direct(scope, receive, send)

        handlers = {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}
        layers = ExceptionMiddleware(AsyncExitStackMiddleware(routed), handlers=handlers,
                                     debug=app.debug)

        async def leaf(scope: Scope, receive: Receive, send: Send) -> None:
            scope["app"] = app  # what Starlette writes first (handlers read the app from it)
            try:
                await layers(scope, receive, send)
            except Exception as exc:  # unanswered: as the broken-market guard, then raise
                if method in STATE_CHANGING:
                    ex = app.state.perpsim.exchange
                    ex.containment.mark(exc, ex.now_ms, f"{method} {path}")
                raise

        return leaf


def direct_calls(app: Any) -> DirectCalls | None:
    """``app``'s DirectCalls (one per app), or None for an app that is not a perpsim app."""
    state = getattr(app, "state", None)
    if state is None or not hasattr(state, "perpsim_security") or not hasattr(state, "perpsim"):
        return None
    found: DirectCalls | None = getattr(state, "perpsim_direct_calls", None)
    if found is None:
        found = state.perpsim_direct_calls = DirectCalls(app)
    return found
