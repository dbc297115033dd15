"""The route cache (api/route_cache.py) and the direct handlers (api/direct_routes.py) change
nothing but speed: every path of the OpenAPI document, and the 404 and 405 around them, goes
to the route FastAPI's own search picks, and answers byte for byte as an app without them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import string
from typing import Any

import pytest

from perpsim.api.app import create_app
from perpsim.api.route_cache import RouteCache
from perpsim.api.security import IN_PROCESS
from perpsim.api.state import ServerConfig, ServerState
from perpsim.inprocess import Answer

_TRANSFER_ID = re.compile(rb'"transferId":"[0-9a-f-]{36}"')
HOST = [(b"host", b"127.0.0.1")]
JSON = [*HOST, (b"content-type", b"application/json")]


def _apps() -> tuple[Any, Any]:
    """The same market twice: with the cache (as served), and without."""
    def app(cache: bool) -> Any:
        return create_app(state=ServerState(ServerConfig(scenario="calm", clock="stepped")),
                          security=IN_PROCESS, route_cache=cache)

    return app(True), app(False)


async def _routed(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]] = HOST,
                  body: bytes = b"") -> tuple[Any, Answer]:
    """The route the request reached (None: none) and the app's answer."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 80)}
    status: list[int] = []
    answer_headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            answer_headers.extend(message.get("headers", []))
        else:
            chunks.append(message.get("body", b""))

    with contextlib.suppress(Exception):  # an unexpected error is answered (500), then raised
        await app(scope, receive, send)
    return scope.get("route"), Answer(status[0], answer_headers, b"".join(chunks))


def _requests(app: Any) -> list[tuple[str, str]]:
    """Every operation of the OpenAPI document (path parameters filled in), each path with a
    method it does not allow (405), and paths no route has (404)."""
    paths = app.openapi()["paths"]
    requests = []
    for template, operations in paths.items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        requests += [(method.upper(), path) for method in operations]
        requests.append(("PATCH" if "patch" not in operations else "TRACE", path))
    requests += [("GET", p) for p in ("/dapi/v1/nothing", "/control/nothing", "/v5/nothing",
                                      "/nothing", "/", "/dapi/v1/ping/")]
    return requests


def test_every_openapi_path_reaches_the_route_fastapis_search_picks() -> None:
    cached, plain = _apps()
    cache = cached.router.middleware_stack
    assert isinstance(cache, RouteCache)
    assert not isinstance(plain.router.middleware_stack, RouteCache)
    requests = _requests(plain)
    assert len(requests) > 100

    async def check() -> None:
        for method, path in requests:
            expected, _ = await _routed(plain, method, path)
            for _ in range(3):  # learnt on the first two, served from the cache on the third
                route, _ = await _routed(cached, method, path)
                assert route is expected, (method, path)
            assert cache.route_for(method, path) is expected, (method, path)

    asyncio.run(check())
    # The paths that have a route are cached, whatever their methods; the others are not.
    assert cache.route_for("GET", "/dapi/v1/positionRisk") is not None
    assert cache.route_for("PATCH", "/dapi/v1/positionRisk") is not None  # 405: the route's
    assert cache.route_for("GET", "/dapi/v1/nothing") is None
    assert cache.route_for("GET", "/docs") is None  # not an API route: FastAPI serves it


def test_answers_are_byte_for_byte_those_of_an_app_without_the_cache() -> None:
    cached, plain = _apps()

    async def answers(app: Any) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        seen = []
        for method, path in _requests(plain):
            if method != "GET" or path.startswith(("/ui", "/control/record", "/control/durable")):
                continue  # state-changing calls, and files and recordings, are checked below
            for _ in range(3):
                _, answer = await _routed(app, method, path)
            seen.append((answer.status, answer.headers, answer.body))
        for body in (b'{"ms": 60000}', b'{"ms": 60000}', b'{"ms": 60000}', b"{",
                     b'{"ms": "soon"}', b'{"ms": 1, "until": 2}', b'{"ms": 1, "extra": 1}',
                     b"[1]", b'"ms"', b"", b'{"until": 1}', b'{"ms": 60000}'):
            for headers in (JSON, [*HOST, (b"content-type", b"text/plain")], HOST):
                _, answer = await _routed(app, "POST", "/control/advance", headers, body)
                seen.append((answer.status, answer.headers, answer.body))
        _, answer = await _routed(app, "POST", "/control/accounts", JSON,
                                  b'{"balances": {"BTC": "1"}, "api_key": "k" }')
        seen.append((answer.status, answer.headers, answer.body))
        return seen

    with_cache, without = asyncio.run(answers(cached)), asyncio.run(answers(plain))
    assert len(with_cache) > 100
    for mine, theirs in zip(with_cache, without, strict=True):
        assert mine == theirs
    statuses = {status for status, _, _ in with_cache}
    assert {200, 400, 404, 405} <= statuses or {200, 400, 404} <= statuses


def test_a_dependency_override_is_honoured_on_a_cached_route() -> None:
    from perpsim.api.deps import get_state

    cached, _ = _apps()

    async def run() -> list[bytes]:
        bodies = []
        for _ in range(3):
            bodies.append((await _routed(cached, "GET", "/dapi/v1/time"))[1].body)
        other = ServerState(ServerConfig(scenario="calm", clock="stepped", start=1_000_000))

        async def override() -> ServerState:
            return other

        cached.dependency_overrides[get_state] = override
        bodies.append((await _routed(cached, "GET", "/dapi/v1/time"))[1].body)
        cached.dependency_overrides.clear()
        bodies.append((await _routed(cached, "GET", "/dapi/v1/time"))[1].body)
        return bodies

    bodies = asyncio.run(run())
    assert bodies[0] == bodies[2] == bodies[4]
    assert json.loads(bodies[3]) == {"serverTime": 1_000_000}


@pytest.mark.parametrize("profile", ["binance_coinm", "bybit_inverse"])
def test_an_in_process_hedge_gets_the_same_bytes_with_and_without_the_cache(
        profile: str) -> None:
    """A whole dry run: every answer byte for byte. As a multiset: the hedge reads some things
    concurrently, and which of two reads at one simulated instant answers first follows the
    wall clock (ccxt's rate limiter). Bybit's transfer ids are random UUIDs."""
    import perpsim.inprocess as inprocess
    from perpsim.inprocess import in_process_transport
    from perpsim.strategy.dryrun import dry_run
    from perpsim.strategy.record import HedgeConfig

    def run(cache: bool) -> list[tuple[str, str, int, bytes]]:
        seen: list[tuple[str, str, int, bytes]] = []
        original = inprocess.call_app

        async def recording(app: Any, method: str, path: str, *rest: Any) -> Answer:
            answer = await original(app, method, path, *rest)
            body = _TRANSFER_ID.sub(b'"transferId":"?"', answer.body)
            seen.append((method, path, answer.status, body))
            return answer

        state = ServerState(ServerConfig(profile=profile, scenario="calm", seed=0,
                                         clock="stepped"))
        tokens = random.Random(7)  # the same API credentials in both runs
        state.token_source = lambda n: "".join(tokens.choices(string.ascii_letters, k=n))
        app = create_app(state=state, security=IN_PROCESS, route_cache=cache)
        inprocess.call_app = recording  # type: ignore[assignment]
        try:
            asyncio.run(dry_run(in_process_transport(app), HedgeConfig(), scenario="calm",
                                profile=profile, seed=0))
        finally:
            inprocess.call_app = original
        return seen

    with_cache, without = run(True), run(False)
    assert len(with_cache) > 50
    assert sorted(with_cache) == sorted(without)
