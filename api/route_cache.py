"""A path → route cache in front of the app's router, learnt from the router itself.

FastAPI finds a request's route by trying every route's regex, router by router (and, since
0.16x, twice per included router); for a Binance private call that is ~40 % of the time the
framework spends on it. A dry run asks the same few paths a thousand times. So this layer sits
where the router dispatches (``router.middleware_stack``, inside FastAPI's exception and exit
stack middlewares: every error is still answered by the same handlers) and remembers, per
``(method, path, root_path)``, what routing did: the leaf route it handed the request to and
what it wrote into the scope on the way (path parameters, endpoint, FastAPI's route context).
A later request with the same key gets those scope entries and goes straight to the leaf.

Nothing of FastAPI's internals is assumed: the outcome is observed at the leaf (every
``APIRoute.handle`` is watched) and cached only after two routings of the key wrote exactly
the same entries (the same objects); a key whose routing writes anything else (a per-request
object), removes a scope entry or reaches no API route (404, docs, static files, WebSockets)
always takes the router's own path. Adding a route to the app empties the cache. An app that
routes on the Host header (Starlette's ``Host`` routes) gets no cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import Host

from perpsim.api.direct_routes import direct_handler

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Key = tuple[str, str, str]

CAPACITY = 2048  # keys remembered (paths with parameters, fuzzers): beyond, route as usual
_UNCACHEABLE = object()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What routing did for one key: the leaf's handle and the scope entries it wrote
    (entries of a nested dict, such as FastAPI's own, as a dict of the entries written in
    it)."""

    route: APIRoute
    handle: ASGIApp
    written: tuple[tuple[str, Any], ...]
    direct: ASGIApp | None = None  # the route served without FastAPI's handler
    split: tuple[dict[str, Any], tuple[tuple[str, dict[str, Any]], ...]] = field(
        default=({}, ()), compare=False)  # ``written`` as ``apply`` uses it (made once)

    def same_as(self, other: Outcome) -> bool:
        """The same route and the same objects written under the same names."""
        if self.route is not other.route or len(self.written) != len(other.written):
            return False
        for (name, value), (other_name, other_value) in zip(self.written, other.written,
                                                             strict=True):
            if name != other_name:
                return False
            if isinstance(value, _Nested) and isinstance(other_value, _Nested):
                if not value.same_as(other_value):
                    return False
            elif not _same(value, other_value):
                return False
        return True

    def context(self) -> Any | None:
        """FastAPI's per-inclusion context of the route, if this version keeps one in the
        scope (it carries the dependencies and response settings the route is served with)."""
        for _, value in self.written:
            for candidate in value.entries.values() if isinstance(value, _Nested) else (value,):
                if getattr(candidate, "original_route", None) is self.route:
                    return candidate
        return None

    def apply(self, scope: Scope) -> None:
        """Write the entries into ``scope`` as routing would have."""
        plain, nested_entries = self.split
        scope.update(plain)
        for name, entries in nested_entries:
            nested = scope.get(name)
            if not isinstance(nested, dict):
                nested = scope[name] = {}
            nested.update(entries)


def _split(written: tuple[tuple[str, Any], ...]
           ) -> tuple[dict[str, Any], tuple[tuple[str, dict[str, Any]], ...]]:
    plain = {name: value for name, value in written if not isinstance(value, _Nested)}
    nested = tuple((name, value.entries) for name, value in written
                   if isinstance(value, _Nested))
    return plain, nested


@dataclass(frozen=True, slots=True)
class _Nested:
    """Entries routing wrote into a dict held by the scope."""

    entries: dict[str, Any]

    def same_as(self, other: _Nested) -> bool:
        return (self.entries.keys() == other.entries.keys()
                and all(_same(v, other.entries[k]) for k, v in self.entries.items()))


# Values that cannot change once made: equal ones are as good as the same object (a path
# parameter is a new string at every routing).
_IMMUTABLE = (str, bytes, int, float, bool, type(None))


def _same(value: Any, other: Any) -> bool:
    """The same object, or equal values of one immutable type."""
    if value is other:
        return True
    return type(value) is type(other) and isinstance(value, _IMMUTABLE) and value == other


@dataclass(slots=True)
class _Watch:
    """One routed request being observed: its scope as it came in, and what the leaf saw."""

    scope: Scope
    before: dict[str, Any]
    nested_before: dict[str, dict[str, Any]]
    outcome: Outcome | object | None = None


_watching: ContextVar[_Watch | None] = ContextVar("perpsim_route_watch", default=None)


@dataclass
class RouteCache:
    """Pure ASGI, in the router's place: a learnt route per key, else the router (see module
    doc). ``dispatch`` is the router's own entry (``router.middleware_stack``)."""

    routes: list[Any]
    dispatch: ASGIApp
    capacity: int = CAPACITY
    direct: bool = True  # serve simple routes without FastAPI's handler (api/direct_routes.py)
    outcomes: dict[Key, Outcome] = field(default_factory=dict)
    _first: dict[Key, Outcome | object] = field(default_factory=dict)
    _route_count: int = -1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.dispatch(scope, receive, send)
            return
        if len(self.routes) != self._route_count:  # a route was added: learn again
            self.outcomes.clear()
            self._first.clear()
            watch_api_routes(self.routes)
            self._route_count = len(self.routes)
        key = (scope["method"], scope["path"], scope.get("root_path", ""))
        outcome = self.outcomes.get(key)
        if outcome is not None:
            outcome.apply(scope)
            await (outcome.direct or outcome.handle)(scope, receive, send)
            return
        if self._first.get(key) is _UNCACHEABLE or len(self._first) >= self.capacity:
            await self.dispatch(scope, receive, send)
            return
        watch = _Watch(scope, dict(scope), {k: dict(v) for k, v in scope.items()
                                            if isinstance(v, dict)})
        token = _watching.set(watch)
        try:
            await self.dispatch(scope, receive, send)
        finally:
            _watching.reset(token)
            self._learn(key, watch.outcome)

    def _learn(self, key: Key, seen: Outcome | object | None) -> None:
        if not isinstance(seen, Outcome):
            self._first[key] = _UNCACHEABLE
            return
        first = self._first.get(key)
        if first is None:
            self._first[key] = seen
        elif isinstance(first, Outcome) and first.same_as(seen):
            direct = None
            if self.direct and key[0] in (seen.route.methods or ()):
                direct = direct_handler(seen.route, seen.context(), seen.handle)
            self.outcomes[key] = replace(seen, direct=direct)
        else:
            self._first[key] = _UNCACHEABLE

    def route_for(self, method: str, path: str, root_path: str = "") -> APIRoute | None:
        """The route a request for ``path`` goes to without routing (None: not learnt)."""
        outcome = self.outcomes.get((method, path, root_path))
        return None if outcome is None else outcome.route


def _observed(watch: _Watch, route: APIRoute, handle: ASGIApp, scope: Scope) -> Outcome | object:
    """What routing wrote into ``scope`` before handing it to ``route``; _UNCACHEABLE if it
    removed anything (replaying cannot remove)."""
    if any(name not in scope for name in watch.before):
        return _UNCACHEABLE
    written: list[tuple[str, Any]] = []
    for name, value in scope.items():
        if isinstance(value, dict) and name in watch.nested_before:
            old = watch.nested_before[name]
            if any(k not in value for k in old):
                return _UNCACHEABLE
            entries = {k: v for k, v in value.items() if k not in old or old[k] is not v}
            if entries:
                written.append((name, _Nested(entries)))
        elif isinstance(value, dict):
            written.append((name, _Nested(dict(value))))  # a new dict: replayed as a copy
        elif name not in watch.before or watch.before[name] is not value:
            written.append((name, value))
    outcome = tuple(written)
    return Outcome(route, handle, outcome, split=_split(outcome))


def _watched(route: APIRoute, handle: ASGIApp) -> ASGIApp:
    async def leaf(scope: Scope, receive: Receive, send: Send) -> None:
        watch = _watching.get()
        if watch is not None and watch.scope is scope and watch.outcome is None:
            watch.outcome = _observed(watch, route, handle, scope)
        await handle(scope, receive, send)

    return leaf


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every API route under ``routes``, through included routers and mounts."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI ≥ 0.16x keeps routers
        if included is not None:
            yield from api_routes(included.routes)
        children = getattr(route, "routes", None)
        if isinstance(children, list) and route is not included:
            yield from api_routes(children)


def watch_api_routes(routes: list[Any]) -> None:
    """Watch the leaf of every API route under ``routes`` (once, even if mounted twice)."""
    for route in api_routes(routes):
        if "handle" not in vars(route):
            route.handle = _watched(route, route.handle)  # type: ignore[method-assign,assignment]


def install_route_cache(router: Any, *, direct: bool = True) -> RouteCache | None:
    """Put a RouteCache in ``router``'s dispatch (None if the router has no such entry);
    ``direct=False`` keeps FastAPI's handler for every route."""
    dispatch = getattr(router, "middleware_stack", None)
    if dispatch is None or isinstance(dispatch, RouteCache):
        return dispatch
    if any(isinstance(route, Host) for route in router.routes):
        return None  # routes chosen by the Host header too: a key of method and path is not enough
    cache = RouteCache(router.routes, dispatch, direct=direct)
    router.middleware_stack = cache
    return cache
