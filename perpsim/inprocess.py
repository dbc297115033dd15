"""The in-process transport: ccxt and the control plane call the perpsim app directly.

A dry run normally reaches perpsim over loopback HTTP (uvicorn in a thread). Here the same
requests — the same URLs, headers, signed query strings and bodies — are handed straight to the
ASGI app on the caller's event loop: no socket, no server thread, no HTTP parsing. What the
strategy sees is unchanged: ccxt still builds, signs and parses every request (it is given an
aiohttp-shaped ``session``), and the control plane still answers JSON to an ``httpx`` client
(given an ``httpx`` transport) — or, for the stepped clock's calls, without an HTTP client
at all (:class:`DirectControl`). ``strategy/`` never imports this module;
``perpsim.sweep`` and the CLI hand its objects to ``strategy.dryrun.dry_run``.

Only stepped markets are served this way (no lifespan: the realtime clock task never starts),
and only HTTP: a stepped dry run reads over REST (see strategy/dryrun.py).

A process that runs dry run after dry run (a sweep worker) keeps one app per thread and hands
it each run's new market (:class:`AppHost`, api/app.py ``serve_state``): FastAPI builds each
route's response field and handler at a new app's first requests, a tenth of a run otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import httpx

from perpsim.strategy.dryrun import Transport

# The URL ccxt and httpx address: a loopback name, because the app's Host allow-list
# (api/security.py) accepts only those. No socket is ever opened to it.
IN_PROCESS_BASE = "http://127.0.0.1"
_CLIENT = ("127.0.0.1", 0)
_SERVER = ("127.0.0.1", 80)
_ASGI = {"version": "3.0", "spec_version": "2.3"}


@dataclass(frozen=True)
class Answer:
    """A whole HTTP answer from the app."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class InProcessError(RuntimeError):
    """The app did not answer a request completely."""


class _Channels:
    """One request's two ASGI channels. A class, not closures: nothing is built per request
    but this object (an in-process dry run makes a thousand requests per hedge)."""

    __slots__ = ("_waiter", "body", "chunks", "done", "headers", "status")

    def __init__(self, body: bytes) -> None:
        self.body: bytes | None = body
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.done = False
        self._waiter: asyncio.Future[None] | None = None

    async def receive(self) -> dict[str, Any]:
        body = self.body
        if body is not None:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": False}
        # A request is never abandoned by an in-process client: "disconnect" only once the
        # answer is complete (an app listening for it would otherwise stop early).
        if not self.done:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)
        return {"type": "http.disconnect"}

    async def send(self, message: Mapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            self.chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self.finish()
        elif kind == "http.response.start":
            self.status = int(message["status"])
            self.headers.extend((bytes(k), bytes(v)) for k, v in message.get("headers", ()))

    def finish(self) -> None:
        self.done = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def call_app(app: Any, method: str, path: str, query: bytes,
                   headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    """One HTTP request through ``app`` (ASGI 3), awaited on the running loop."""
    scope = {"type": "http", "asgi": _ASGI, "http_version": "1.1", "method": method.upper(),
             "scheme": "http", "path": path, "raw_path": path.encode("latin-1"),
             "query_string": query, "root_path": "", "headers": headers, "client": _CLIENT,
             "server": _SERVER}
    channels = _Channels(body)
    try:
        await app(scope, channels.receive, channels.send)
    finally:
        channels.finish()
    if channels.status is None:
        raise InProcessError(f"{method} {path}: the app returned without an answer")
    return Answer(channels.status, channels.headers, b"".join(channels.chunks))


# ---- ccxt: an aiohttp-shaped session ------------------------------------------------------------
class _Response:
    """What ccxt reads from an aiohttp response inside ``async with session.get(...)``."""

    def __init__(self, answer: Answer) -> None:
        self.status = answer.status
        self.reason = _reason(answer.status)
        self.content = answer.body
        headers: dict[str, str] = {}
        for key, value in answer.headers:
            name = key.decode("latin-1")
            text = value.decode("latin-1")
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
        self.headers = headers

    async def text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.content.decode(encoding, errors)

    async def json(self) -> Any:
        return json.loads(self.content)


class _Request:
    """The awaitable context manager aiohttp's ``session.get(...)`` returns."""

    def __init__(self, session: AsgiSession, method: str, url: Any, data: Any,
                 headers: Mapping[str, str] | None) -> None:
        self.session, self.method, self.url = session, method, url
        self.data, self.headers = data, headers
        self.response: _Response | None = None

    async def __aenter__(self) -> _Response:
        self.response = await self.session.request(self.method, str(self.url), self.data,
                                                   self.headers)
        return self.response

    async def __aexit__(self, *exc: object) -> None:
        self.response = None


class AsgiSession:
    """Stands in for ccxt's ``aiohttp.ClientSession`` (``session=`` in the ccxt config)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers: dict[str, str] = {}  # default headers ccxt merges into every request
        self.requests = 0
        self.closed = False

    async def request(self, method: str, url: str, data: Any,
                      headers: Mapping[str, str] | None) -> _Response:
        parts = urlsplit(url)
        if isinstance(data, str):
            data = data.encode()
        elif data is not None and not isinstance(data, bytes | bytearray):
            raise InProcessError(f"{method} {parts.path}: unsupported body {type(data).__name__}")
        raw = [(k.lower().encode("latin-1"), str(v).encode("latin-1"))
               for k, v in (headers or {}).items()]
        raw.append((b"host", (parts.netloc or _SERVER[0]).encode("latin-1")))
        self.requests += 1
        answer = await call_app(self.app, method, parts.path or "/",
                                parts.query.encode("latin-1"), raw, bytes(data or b""))
        return _Response(answer)

    def _call(self, method: str, url: Any, *, data: Any = None,
              headers: Mapping[str, str] | None = None, **_: Any) -> _Request:
        # timeout= and proxy= are aiohttp's; in-process there is nothing to time out or proxy.
        return _Request(self, method, url, data, headers)

    def get(self, url: Any, **kwargs: Any) -> _Request:
        return self._call("GET", url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> _Request:
        return self._call("POST", url, **kwargs)

    def put(self, url: Any, **kwargs: Any) -> _Request:
        return self._call("PUT", url, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> _Request:
        return self._call("DELETE", url, **kwargs)

    async def close(self) -> None:
        self.closed = True


# ---- httpx: the control plane ------------------------------------------------------------------
class AsgiHttpxTransport(httpx.AsyncBaseTransport):
    """An httpx transport that answers from the app (leaner than httpx.ASGITransport, which
    runs every request in a task group and streams the body)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests += 1
        answer = await call_app(self.app, request.method, request.url.path,
                                request.url.query,
                                [(k.lower(), v) for k, v in request.headers.raw], body)
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body,
                              request=request)


# ---- the control plane without HTTP ------------------------------------------------------------
class DirectControl:
    """The control plane as a call (``strategy.clock.ControlPlane``) for the stepped clock and
    the dry run's set-up: the request — method, path, JSON body — goes to the whole app, every
    layer included, and its answer (status, bytes) comes back, without an httpx client
    building and parsing an HTTP request around it (the larger part of what an in-process
    advance cost). It answers every call, errors included, as the app answers them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls = 0

    async def call(self, method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        headers = [(b"host", _SERVER[0].encode())]
        if body:
            headers += [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())]
        self.calls += 1
        answer = await call_app(self.app, method, path, b"", headers, body)
        return answer.status, answer.body


def in_process_transport(app: Any) -> Transport:
    """What a dry run needs to reach ``app`` without a socket."""
    return Transport(base_url=IN_PROCESS_BASE, ccxt_session=AsgiSession(app),
                     http_transport=AsgiHttpxTransport(app), control=DirectControl(app))


class AppHost:
    """Apps reused from market to market: one per thread and security setting, lent to one
    run at a time (a run that starts while another holds the app gets a new one).

    ``create_app`` for every run would answer the same bytes (tests/test_inprocess_host.py
    runs markets A, B, A on one app against a new app each); the reused app skips what
    FastAPI builds per route at a new app's first requests."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.created = 0  # apps made (for tests: reuse is observable)

    def _idle(self) -> dict[Any, Any]:
        idle: dict[Any, Any] | None = getattr(self._local, "apps", None)
        if idle is None:
            idle = self._local.apps = {}
        return idle

    @contextlib.contextmanager
    def app(self, state: Any, security: Any = None) -> Iterator[Any]:
        """An app serving ``state`` (a ``ServerState``) for the block, guarded by
        ``security`` (default: in-process, perpsim/api/security.py ``IN_PROCESS``)."""
        from perpsim.api.app import create_app, serve_state
        from perpsim.api.security import IN_PROCESS

        security = IN_PROCESS if security is None else security
        idle = self._idle()
        app = idle.pop(security, None)  # taken: a nested run makes its own
        if app is not None and not app.state.perpsim_harness.idle:
            app = None  # a fault or a recording was set up on it: not for another market
        if app is None:
            app = create_app(state=state, security=security)
            self.created += 1
        else:
            serve_state(app, state)
        try:
            yield app
        finally:
            idle[security] = app


# The process's host (perpsim/sweep/run.py runs every in-process dry run through it).
HOST = AppHost()


@functools.lru_cache(maxsize=64)
def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
