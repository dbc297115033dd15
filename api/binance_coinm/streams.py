"""The Binance COIN-M WebSocket endpoints: ``/ws/<n>`` (market streams) and ``/ws/<listenKey>``.

ccxt.pro connects to ``urls['api']['ws']['inverse']`` + ``/<n>`` (n = 0, 1, 2 … one connection
per watch) and sends ``{"method": "SUBSCRIBE", "params": [streams], "id": N}``; the answer is
``{"result": null, "id": N}``. For the user data stream it connects to ``/ws/<listenKey>`` and
sends nothing. A raw stream name as the path (``/ws/btcusd_perp@markPrice``) subscribes to it,
as on Binance. Requests: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY /
GET_PROPERTY (``combined``); errors use Binance's codes (0 unknown property, 1 invalid value
type, 2 invalid request, 3 invalid JSON). Protocol ping/pong is the WebSocket library's.

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
from perpsim.api.binance_coinm.stream_market import UnknownStream, parse_stream
from perpsim.api.state import ServerState

router = APIRouter(tags=["binance coin-m websocket"])

_PUBLIC_NAME = re.compile(r"[0-9]{1,6}")


def _error(code: int, msg: str, request_id: Any) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": request_id}


@router.websocket("/ws")
async def bare_stream(websocket: WebSocket) -> None:
    """A connection that subscribes with SUBSCRIBE."""
    await _serve(websocket, "")


@router.websocket("/ws/{name}")
async def named_stream(websocket: WebSocket, name: str) -> None:
    """``/ws/<n>`` (subscribe-driven), ``/ws/<stream name>`` or ``/ws/<listenKey>``."""
    await _serve(websocket, name)


async def _serve(websocket: WebSocket, name: str) -> None:
    state: ServerState = websocket.app.state.perpsim
    hub = hub_for(state)
    raw_stream = "@" in name or name.startswith("!")
    listen_key = name if name and not raw_stream and not _PUBLIC_NAME.fullmatch(name) else None
    account_id = None if listen_key is None else state.account_for_listen_key(listen_key)
    if listen_key is not None and account_id is None:
        # Binance refuses a user stream on an unknown or expired listenKey.
        await websocket.accept()
        await websocket.close(1008, "invalid or expired listen key")
        return
    conn = Connection(websocket, account_id, listen_key)
    hub.register(conn)  # before the handshake completes: no event falls in between
    sender: asyncio.Task[None] | None = None
    try:
        await websocket.accept()
        sender = asyncio.create_task(conn.run_sender(hub), name="perpsim-stream-sender")
        if raw_stream:
            _subscribe(hub, conn, [name], None, ack=False)
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
            conn.push({"result": None, "id": request_id})
    elif method == "LIST_SUBSCRIPTIONS":
        conn.push({"result": list(conn.subs), "id": request_id})
    elif method == "SET_PROPERTY":
        ok = (isinstance(params, list) and len(params) == 2 and params[0] == "combined"
              and isinstance(params[1], bool))
        conn.push({"result": None, "id": request_id} if ok else
                  _error(0, "Unknown property", request_id))
    elif method == "GET_PROPERTY":
        ok = isinstance(params, list) and params == ["combined"]
        conn.push({"result": False, "id": request_id} if ok else
                  _error(0, "Unknown property", request_id))
    else:
        conn.push(_error(2, f"Invalid request: unknown method {method!r}", request_id))


def _subscribe(hub: StreamHub, conn: Connection, names: list[str], request_id: Any, *,
               ack: bool) -> None:
    """All the streams or none: an unknown name answers error 2 and subscribes nothing."""
    try:
        specs = [parse_stream(name, hub.state.exchange) for name in names]
    except UnknownStream as exc:
        conn.push(_error(2, f"Invalid request: {exc}", request_id))
        if not ack:
            conn.close(1008, "unknown stream")
        return
    frames = hub.subscribe(conn, specs)
    if ack:
        conn.push({"result": None, "id": request_id})
    for frame in frames:
        conn.push(frame)
