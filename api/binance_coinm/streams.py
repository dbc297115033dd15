"""The Binance COIN-M WebSocket endpoints: raw ``/ws/<stream>``, combined ``/stream?streams=``.

As Binance documents them (COIN-M "WebSocket Market Streams" and "User Data Streams"):

* ``/ws/<stream>`` — one raw stream, frames as they are; ``/ws/<listenKey>`` — the user data
  stream; ``/ws`` or ``/ws/<n>`` (what ccxt.pro opens: n = 0, 1, 2 …) — subscribe later.
* ``/stream?streams=<a>/<b>/<listenKey>`` — combined: every data frame wrapped as
  ``{"stream": <name>, "data": <frame>}`` (a user-stream frame's name is its listen key).
* Live requests on both: SUBSCRIBE / UNSUBSCRIBE (stream names or a listen key), answered
  ``{"result": null, "id": N}``; LIST_SUBSCRIPTIONS; SET_PROPERTY / GET_PROPERTY
  ``combined`` (true wraps the frames of a ``/ws`` connection; ``/stream`` starts true).
  Errors use Binance's codes (0 unknown property, 1 invalid value type, 2 invalid request,
  3 invalid JSON).
* A listen key named in the URL owns the connection (closed when it expires, is closed or a
  reset drops it); one subscribed later only stops its events (``listenKeyExpired`` first).
* Every connection ends after 24 hours of wall time (stream_hub.MAX_CONNECTION_S), as on
  Binance; protocol ping/pong as Binance: the server pings every 3 minutes and drops a peer
  that has not answered within 10 (api/server.py WS_PING_*, uvicorn's websockets).

The hub (api/binance_coinm/stream_hub.py) delivers; this module only parses and answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from perpsim.api.binance_coinm.stream_hub import Connection, StreamHub, hub_for
from perpsim.api.binance_coinm.stream_market import StreamSpec, UnknownStream, parse_stream
from perpsim.api.state import ServerState

router = APIRouter(tags=["binance coin-m websocket"])

_PUBLIC_NAME = re.compile(r"[0-9]{1,6}")
_STREAM_SEPARATOR = "/"


def _error(code: int, msg: str, request_id: Any) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": request_id}


@router.websocket("/ws")
async def bare_stream(websocket: WebSocket) -> None:
    """A connection that subscribes with SUBSCRIBE."""
    await _serve(websocket, [], combined=False)


@router.websocket("/ws/{name}")
async def named_stream(websocket: WebSocket, name: str) -> None:
    """``/ws/<n>`` (subscribe-driven), ``/ws/<stream name>`` or ``/ws/<listenKey>``."""
    await _serve(websocket, [] if _PUBLIC_NAME.fullmatch(name) else [name], combined=False)


@router.websocket("/stream")
async def combined_stream(websocket: WebSocket) -> None:
    """``/stream?streams=a/b/<listenKey>``: frames wrapped ``{"stream", "data"}``."""
    names = websocket.query_params.get("streams", "")
    await _serve(websocket, [n for n in names.split(_STREAM_SEPARATOR) if n], combined=True)


def _is_market_name(name: str) -> bool:
    """Market streams have an ``@`` or start with ``!``; any other name is a listen key (and
    refused if no account holds it)."""
    return "@" in name or name.startswith("!")


async def _serve(websocket: WebSocket, names: list[str], *, combined: bool) -> None:
    state: ServerState = websocket.app.state.perpsim
    hub = hub_for(state)
    keys = [n for n in names if not _is_market_name(n)]
    if len(keys) > 1:
        await _refuse(websocket, "one listen key per connection")
        return
    listen_key = keys[0] if keys else None
    account_id = None if listen_key is None else state.account_for_listen_key(listen_key)
    if listen_key is not None and account_id is None:
        # Binance refuses a user stream on an unknown or expired listenKey.
        await _refuse(websocket, "invalid or expired listen key")
        return
    conn = Connection(websocket, account_id, listen_key, combined=combined)
    hub.register(conn)  # before the handshake completes: no event falls in between
    sender: asyncio.Task[None] | None = None
    try:
        await websocket.accept()
        sender = asyncio.create_task(conn.run_sender(hub), name="perpsim-stream-sender")
        market_names = [n for n in names if _is_market_name(n)]
        if market_names:
            _subscribe(hub, conn, market_names, None, ack=False)
        await _receive(websocket, hub, conn, sender)
    finally:
        hub.unregister(conn)
        # Close the queue first: under Python 3.11 asyncio.wait_for in next_item can swallow
        # the cancel below, which would leave the sender looping and stall server shutdown.
        conn.close(1000, "connection ended")
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


async def _refuse(websocket: WebSocket, reason: str) -> None:
    await websocket.accept()
    await websocket.close(1008, reason)


async def _receive(websocket: WebSocket, hub: StreamHub, conn: Connection,
                   sender: asyncio.Task[None]) -> None:
    """Answer requests until the peer leaves (or the sender closed the socket)."""
    receiver: asyncio.Task[Any] | None = None
    try:
        while True:
            receiver = asyncio.ensure_future(websocket.receive())
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receiver not in done:
                return  # the sender closed the connection (listen key expired, slow reader)
            message = receiver.result()
            receiver = None
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            _request(hub, conn, text or "")
    except WebSocketDisconnect:
        return
    finally:
        if receiver is not None:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver


def _request(hub: StreamHub, conn: Connection, text: str) -> None:
    """One client request: answer it on the connection's queue (acks before any data)."""
    try:
        request = json.loads(text)
    except ValueError as exc:
        conn.push(_error(3, f"Invalid JSON: {exc}", None))
        return
    if not isinstance(request, dict):
        conn.push(_error(2, "Invalid request: a request is a JSON object", None))
        return
    request_id = request.get("id")
    method, params = request.get("method"), request.get("params", [])
    if isinstance(request_id, bool) or not isinstance(request_id, int | str | None):
        conn.push(_error(1, "Invalid value type: id must be an integer, a string or null",
                         None))
        return
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            conn.push(_error(1, "Invalid value type: params must be a list of stream names",
                             request_id))
        elif method == "SUBSCRIBE":
            _subscribe(hub, conn, params, request_id, ack=True)
        else:
            for name in params:
                conn.subs.pop(name, None)
                if name == conn.listen_key and not conn.user_by_url:
                    hub.detach_user(conn)
            conn.push({"result": None, "id": request_id})
    elif method == "LIST_SUBSCRIPTIONS":
        user = [conn.listen_key] if conn.listen_key is not None else []
        conn.push({"result": [*conn.subs, *user], "id": request_id})
    elif method == "SET_PROPERTY":
        if not isinstance(params, list) or len(params) != 2 or params[0] != "combined":
            conn.push(_error(0, "Unknown property", request_id))
        elif not isinstance(params[1], bool):
            conn.push(_error(1, "Invalid value type: expected Boolean", request_id))
        else:
            conn.combined = params[1]
            conn.push({"result": None, "id": request_id})
    elif method == "GET_PROPERTY":
        ok = isinstance(params, list) and params == ["combined"]
        conn.push({"result": conn.combined, "id": request_id} if ok else
                  _error(0, "Unknown property", request_id))
    else:
        conn.push(_error(2, f"Invalid request: unknown method {method!r}", request_id))


def _subscribe(hub: StreamHub, conn: Connection, names: list[str], request_id: Any, *,
               ack: bool) -> None:
    """All the streams or none: an unknown name answers error 2 and subscribes nothing.

    A name that is not a market stream is a listen key: the account's user stream joins the
    connection (Binance's connector subscribes ``{"params": ["<listenKey>"]}`` on ``/ws``).
    """
    specs: list[StreamSpec] = []
    user: tuple[str, str] | None = None
    try:
        for name in names:
            if _is_market_name(name):
                specs.append(parse_stream(name, hub.state.exchange))
                continue
            account_id = hub.state.account_for_listen_key(name)
            if account_id is None:
                raise UnknownStream(f"unknown stream or invalid listen key {name!r}")
            if (user is not None and user[1] != name) or (
                    conn.user_by_url and conn.listen_key != name):
                raise UnknownStream("one listen key per connection")
            user = (account_id, name)
    except UnknownStream as exc:
        conn.push(_error(2, f"Invalid request: {exc}", request_id))
        if not ack:
            conn.close(1008, "unknown stream")
        return
    if user is not None and user[1] != conn.listen_key:
        hub.attach_user(conn, *user)
    frames = hub.subscribe(conn, specs)
    if ack:
        conn.push({"result": None, "id": request_id})
    for name, frame in frames:
        conn.data(name, frame)
