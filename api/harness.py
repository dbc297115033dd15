"""The test harness around the app: fault injection (api/faults.py) and recording
(api/recording.py), applied by one pure-ASGI middleware.

When no fault is installed and nothing records, the middleware only checks two attributes and
calls the app: faults cost nothing when off. Otherwise, for HTTP it reads the body, asks the
fault registry (dialect paths only: the control plane is never faulted), sleeps an injected
latency, answers an injected error or runs the request (replacing its answer for an
``executed`` 5xx), and adds rate-limit headers. While recording, requests run one at a time
(after their latency) so the file holds them in the order they changed the market. For
WebSockets it wraps ``send``: data frames may be delayed, dropped, or end the connection
(disconnect, listen key expiry, downtime); request answers (``{"result": ..., "id": ...}``)
are never touched.

``install_harness(app)`` mounts it, with ``/control/faults`` and ``/control/record``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI

from perpsim.api import durable, fault_routes, recording
from perpsim.api.dialects import path_owner, stream_owner
from perpsim.api.faults import FaultRegistry, HttpDecision, HttpError, HttpRequest
from perpsim.api.recording import (
    RECORDED_HEADERS,
    Recorder,
    is_recorded,
    start_recording,
    stop_recording,
)
from perpsim.api.security import body_receive
from perpsim.api.state import ServerState
from perpsim.api.stream_session import SCOPE_KEY as SESSION_KEY
from perpsim.api.stream_session import StreamSession

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Harness:
    """One server's faults and recorder (``app.state.perpsim_harness``)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.faults = FaultRegistry(state.wall_ms)
        self.recorder: Recorder | None = None  # a recording to a file (POST /control/record)
        self.durable: Recorder | None = None  # the durable request log (api/durable.py)
        self.replay = False  # perpsim replay: faults are not decided again, only re-bound
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def idle(self) -> bool:
        """Nothing runs or is installed: no fault, no recording, no replay (the harness a new
        app starts with)."""
        return not (self.faults.active or self.recorders() or self.replay)

    def serve(self, state: ServerState) -> None:
        """Go with a new market ``state`` on the same app (api/app.py ``serve_state``), as a
        new harness would: an idle one only (faults, recordings and replays belong to the
        market they were set up on)."""
        if not self.idle:
            raise RuntimeError("the harness is in use (a fault, a recording or a replay): "
                               "a new market needs a new app")
        self.state = state
        self.faults = FaultRegistry(state.wall_ms)

    def recorders(self) -> list[Recorder]:
        """The recorders running now (the durable log first)."""
        return [r for r in (self.durable, self.recorder) if r is not None]

    def lock(self) -> asyncio.Lock:
        """The lock that serialises recorded requests (one per event loop)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock


def _account(state: ServerState, api_key: str | None) -> str | None:
    if not api_key:
        return None
    account = state.exchange.account_by_api_key(api_key)
    return None if account is None else account.account_id


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _answer(send: Send, error: HttpError, extra: dict[str, str]) -> None:
    if error.body is not None:
        payload = json.dumps(error.body, separators=(",", ":")).encode()
        ctype = "application/json"
    else:
        payload, ctype = error.text.encode(), "text/html; charset=utf-8"
    headers = {"content-type": ctype, "content-length": str(len(payload)), **extra,
               **error.headers}
    await send({"type": "http.response.start", "status": error.status,
                "headers": _raw_headers(headers)})
    await send({"type": "http.response.body", "body": payload})


class HarnessMiddleware:
    """Applies the harness's faults and recording (see module doc)."""

    def __init__(self, app: ASGIApp, harness: Harness) -> None:
        self.app = app
        self.harness = harness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        h = self.harness
        kind = scope["type"]
        if kind == "http" and not h.replay and (h.faults.active or h.recorders()):
            await self._http(scope, receive, send)
        elif kind == "websocket" and not h.replay and h.faults.active:
            await self._websocket(scope, receive, send)
        elif kind == "http" and h.faults.active:  # replay: downtime re-bound as it was
            try:
                await self.app(scope, receive, send)
            finally:
                h.faults.bind(h.state.exchange)
        else:
            await self.app(scope, receive, send)

    # ---- HTTP --------------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        h, state = self.harness, self.harness.state
        method, path = str(scope["method"]), str(scope["path"])
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        body = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        decision = HttpDecision()
        dialect = path_owner(path) if h.faults.active else None
        if dialect is not None:
            request = HttpRequest(method, path, dict(parse_qsl(query, keep_blank_values=True)),
                                  _account(state, headers.get(dialect.SIGNED_HEADERS[0])))
            decision = h.faults.decide_http(request, state.exchange.now_ms)
            answer = getattr(dialect, "fault_answer", None)  # the dialect's own error shapes
            if answer is not None:
                decision = answer(decision, state.exchange.now_ms)
        if decision.delay_s:
            await asyncio.sleep(decision.delay_s)
        error = decision.error
        kept = {k: headers[k] for k in RECORDED_HEADERS if k in headers}
        if error is not None and not error.executed:
            if h.recorders() and is_recorded(path):
                async with h.lock():
                    for recorder in h.recorders():
                        recorder.skipped(method, path, query, kept, body, error.status,
                                         error.rule)
            await _answer(send, error, decision.headers)
            return
        statuses: list[int] = []
        # With a durable log the answer waits until the request is logged: what a client saw
        # acknowledged survives a kill -9.
        held: list[Message] | None = [] if h.durable is not None else None

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(int(message["status"]))
                if error is None and decision.headers:
                    message = {**message, "headers": [*message.get("headers", []),
                                                      *_raw_headers(decision.headers)]}
            if error is None:
                if held is not None:
                    held.append(message)
                else:
                    await send(message)

        run = body_receive(body, receive)
        if not h.recorders() or not is_recorded(path):
            held = None
            try:
                await self.app(scope, run, capture)
            finally:
                if h.faults.active:
                    h.faults.bind(state.exchange)
        else:
            async with h.lock():
                await self._recorded(scope, run, capture, (method, path, query, kept, body),
                                     statuses, error)
        for message in held or ():
            await send(message)
        if error is not None:
            await _answer(send, error, decision.headers)

    async def _recorded(self, scope: Scope, run: Receive, capture: Send,
                        request: tuple[str, str, str, dict[str, str], bytes],
                        statuses: list[int], error: HttpError | None) -> None:
        h = self.harness
        with contextlib.ExitStack() as stack:  # stopped while waiting for the lock: none
            records = [stack.enter_context(r.request(*request)) for r in h.recorders()]
            try:
                await self.app(scope, run, capture)
            finally:
                for record in records:
                    record["app_status"] = statuses[0] if statuses else 500
                    record["status"] = (error.status if error is not None
                                        else record["app_status"])
                    if error is not None:
                        record["fault"] = error.rule
                if h.faults.active:
                    h.faults.bind(h.state.exchange)

    # ---- WebSocket ---------------------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        h, state = self.harness, self.harness.state
        path = str(scope["path"])
        dialect = stream_owner(path)
        if dialect is None:  # the dashboard's stream, like the control plane, is never faulted
            await self.app(scope, receive, send)
            return
        session = StreamSession()
        opened = getattr(dialect, "ws_open", None)  # an account known from the URL (Binance)
        if opened is not None:
            opened(session, path, state)
        h.faults.ws_opened(session.account_id)
        session.on_identified = h.faults.ws_identified  # an account learnt later (Bybit auth)
        scope[SESSION_KEY] = session
        closed = False

        async def faulty_send(message: Message) -> None:
            nonlocal closed
            kind = message["type"]
            if closed:
                if kind == "websocket.close":
                    return  # closing twice is harmless
                # The fault closed the socket: fail the app's later sends as a closed socket
                # would, so its sender ends (a silent drop could keep it looping).
                raise OSError("the WebSocket was closed by an injected fault")
            account = session.account_id
            if kind == "websocket.accept":
                await send(message)
                if h.faults.ws_down(path, account, state.exchange.now_ms):
                    closed = True
                    await send({"type": "websocket.close", "code": 1013,
                                "reason": "service unavailable (maintenance)"})
                return
            text = message.get("text") if kind == "websocket.send" else None
            # Only data frames have a kind: request answers (acks, pongs) are never faulted.
            event_type = dialect.ws_event_type(text) if text is not None else None
            if event_type is not None and h.faults.active:
                decision = h.faults.decide_ws(path, account, event_type, state.exchange.now_ms)
                if decision.delay_s:
                    await asyncio.sleep(decision.delay_s)
                if decision.expire_key and account is not None:
                    closed = True
                    frames, (code, reason) = dialect.ws_expire(session, state)
                    for frame in frames:
                        await send({"type": "websocket.send", "text": json.dumps(frame)})
                    await send({"type": "websocket.close", "code": code, "reason": reason})
                    return
                if decision.close is not None:
                    closed = True
                    await send({"type": "websocket.close", "code": decision.close[0],
                                "reason": decision.close[1]})
                    return
                if decision.drop:
                    return
            await send(message)

        await self.app(scope, receive, faulty_send)


def install_harness(app: FastAPI) -> Harness:
    """Mount fault injection and recording on a perpsim app (once; returns the harness)."""
    existing: Harness | None = getattr(app.state, "perpsim_harness", None)
    if existing is not None:
        return existing
    harness = Harness(app.state.perpsim)
    app.state.perpsim_harness = harness
    app.include_router(fault_routes.router)
    app.include_router(recording.router)
    app.include_router(durable.router)
    app.add_middleware(HarnessMiddleware, harness=harness)
    return harness


@contextlib.contextmanager
def record_to(app: FastAPI, path: str | Path) -> Iterator[dict[str, Any]]:
    """Record ``app``'s requests and journal to ``path`` while the block runs (``perpsim serve
    --record FILE``); the dict it yields holds the recording's summary afterwards."""
    harness = install_harness(app)
    start_recording(harness, path)
    summary: dict[str, Any] = {}
    try:
        yield summary
    finally:
        if harness.recorder is not None:  # not already stopped through the control plane
            summary.update(stop_recording(harness))
