"""The v5 WebSocket endpoints: ``/v5/public/inverse`` and ``/v5/private``.

Requests are Bybit's ops: ``subscribe`` / ``unsubscribe`` with ``args`` topic names, ``ping``
(answered with a pong: ``ret_msg "pong"`` in public, ``op "pong"`` in private, as Bybit does),
and on the private path ``auth`` with ``[apiKey, expires, hex(HMAC(secret, "GET/realtime" +
expires))]``. Private topics: ``order``, ``execution``, ``position``, ``wallet`` (frames
``{"id", "topic", "creationTime", "data": [rows in the REST shape + category]}``).

Delivery: one pump task per server looks at the market every ``POLL_S`` of wall time, between
requests (the engine is at rest then). The journal listener only records the private events
and liquidations it sees; the pump turns them into frames from the engine's current records,
so an order that was placed and filled in one step is sent once, Filled, with its executions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import weakref
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from perpsim.api.auth import SigningError, secret_lookup
from perpsim.api.bybit_v5 import account_wire as wire
from perpsim.api.bybit_v5.params import CATEGORY
from perpsim.api.bybit_v5.signing import verify_ws_auth
from perpsim.api.bybit_v5.stream_topics import Topic, UnknownTopic, parse_topic
from perpsim.api.state import ServerState
from perpsim.api.stream_session import identify
from perpsim.sim.errors import PerpsimError
from perpsim.sim.exchange import Exchange
from perpsim.sim.journal import Event

router = APIRouter(tags=["bybit v5 websocket"])
log = logging.getLogger("perpsim.bybit_v5.streams")

POLL_S = 0.05
# pybit 5.17 sends a subscribe request *before* it records the request id and the topic's
# callback (_websocket_stream.subscribe): an answer faster than a network round trip finds
# neither, raises in its reader thread and makes it reconnect. Bybit is never that fast.
SUBSCRIBE_ANSWER_DELAY_S = 0.05
PRIVATE_TOPICS = ("order", "execution", "position", "wallet")
# Journal events that change what an account's private topics show.
ACCOUNT_EVENTS = ("order.update", "funding.payment", "balance.transfer", "margin.transfer",
                  "leverage.changed", "margin_mode.changed", "liquidation.order",
                  "liquidation.completed", "adl.fill", "balance.deposit", "algo.update")
MAX_LIQUIDATIONS = 10_000
_conn_ids = itertools.count(1)


class Connection:
    """One WebSocket: its queue, public topics, and (private) account and topics."""

    def __init__(self, ws: WebSocket, private: bool) -> None:
        self.ws = ws
        self.private = private
        self.conn_id = f"perpsim-{next(_conn_ids)}"
        self.account_id: str | None = None
        self.topics: dict[str, Topic] = {}
        self.private_topics: set[str] = set()
        self.out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def push(self, frame: dict[str, Any]) -> None:
        """Queue a frame for the sender."""
        self.out.put_nowait(frame)

    async def run_sender(self) -> None:
        """Send queued frames in order until None (the end) arrives."""
        while True:
            frame = await self.out.get()
            if frame is None:
                return
            await self.ws.send_text(json.dumps(frame))


class Hub:
    """One server's v5 connections, the events waiting for them, and the pump."""

    def __init__(self, state: ServerState) -> None:
        # Weak: _HUBS is keyed weakly by the state, and a value holding its key would keep it.
        self._state = weakref.ref(state)
        self.conns: set[Connection] = set()
        self._pending: list[tuple[Exchange, Event]] = []  # with the market that wrote it
        self._lock = threading.Lock()  # the listener may run on a worker thread
        self.liquidations: list[Event] = []
        self.task: asyncio.Task[None] | None = None
        # The market the topics last looked at (weak: it holds its server's state).
        self._market: weakref.ref[Exchange] = weakref.ref(state.exchange)
        state.add_listener(self._on_event)

    @property
    def state(self) -> ServerState:
        """The server this hub delivers for."""
        state = self._state()
        assert state is not None  # a hub lives only as long as its server's state
        return state

    def _on_event(self, event: Event) -> None:
        if not self.conns:
            return
        if (event.type in ACCOUNT_EVENTS or event.type == "liquidation.order"
                or event.detail is not None):
            with self._lock:
                self._pending.append((self.state.exchange, event))

    def start(self) -> None:
        """Run the pump (once per event loop)."""
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._pump(), name="perpsim-bybit-pump")

    async def _pump(self) -> None:
        while self.conns:
            try:
                self.tick()
            except Exception:  # a bad frame must not stop every stream
                log.exception("bybit v5 stream pump failed")
            await asyncio.sleep(POLL_S)
        with self._lock:  # nobody to deliver to: keep no market alive for them
            self._pending.clear()

    def tick(self) -> None:
        """Deliver what happened since the last tick, then each public topic's changes."""
        ex = self.state.exchange
        if ex is not self._market():  # a reset: the new market's topics start from a snapshot
            self._market = weakref.ref(ex)
            self.liquidations.clear()
            for conn in list(self.conns):
                for topic in conn.topics.values():
                    topic.restart()
        with self._lock:
            pending, self._pending = self._pending, []
        events = [event for market, event in pending if market is ex]
        for event in events:
            if event.type == "liquidation.order":
                self.liquidations.append(event)
        del self.liquidations[:-MAX_LIQUIDATIONS]
        touched: dict[str, list[Event]] = {}
        listening = {conn.account_id for conn in self.conns if conn.account_id is not None}
        for event in events:
            # A funding settlement is one record: only listening accounts' payments expand.
            detail = event.detail
            if detail is not None:
                for aid in listening:
                    payments = detail.events(event, aid)
                    if payments:
                        touched.setdefault(aid, []).extend(payments)
            account_id = event.payload.get("account_id")
            if isinstance(account_id, str) and account_id in ex.accounts:
                touched.setdefault(account_id, []).append(event)
        for conn in list(self.conns):
            if conn.account_id in touched:
                for frame in private_frames(ex, conn, touched[conn.account_id]):
                    conn.push(frame)
            for topic in conn.topics.values():
                for frame in topic.frames(ex, self.liquidations):
                    conn.push(frame)


_HUBS: weakref.WeakKeyDictionary[ServerState, Hub] = weakref.WeakKeyDictionary()


def hub_for(state: ServerState) -> Hub:
    """The server's hub (made on first use)."""
    hub = _HUBS.get(state)
    if hub is None:
        hub = _HUBS[state] = Hub(state)
    return hub


def _private_frame(ex: Exchange, topic: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"{topic}-{ex.now_ms}-{len(ex.journal)}", "topic": topic,
            "creationTime": ex.now_ms, "data": rows}


def private_frames(ex: Exchange, conn: Connection, events: list[Event]) -> list[dict[str, Any]]:
    """``order`` / ``execution`` / ``position`` / ``wallet`` frames for one account's events."""
    assert conn.account_id is not None
    account_id = conn.account_id
    wanted = conn.private_topics
    frames = []
    symbols = {e.payload["symbol"] for e in events if isinstance(e.payload.get("symbol"), str)
               and e.payload["symbol"] in ex.instruments}
    conditional_of = {a.order_id: a for a in ex.algo_orders.values() if a.order_id is not None}
    if "order" in wanted:
        rows, seen = [], set()
        for event in events:
            if event.type == "order.update":
                order_id = int(event.payload["order_id"])
                order = ex.orders.get(order_id)
                algo = conditional_of.get(order_id)
                key = ("c", algo.algo_id) if algo else ("o", order_id)
                if order is None or key in seen:
                    continue
                seen.add(key)
                row = wire.algo_row(ex, algo) if algo else wire.order_row(ex, order)
                rows.append({"category": CATEGORY, **row})
            elif event.type == "algo.update":
                algo_id = event.payload.get("algo_id")
                found = ex.algo_orders.get(algo_id) if isinstance(algo_id, int) else None
                if found is not None and ("c", found.algo_id) not in seen:
                    seen.add(("c", found.algo_id))
                    rows.append({"category": CATEGORY, **wire.algo_row(ex, found)})
        if rows:
            frames.append(_private_frame(ex, "order", rows))
    if "execution" in wanted:
        rows = [{"category": CATEGORY, **_no_seq(wire.execution_row(ex, e, conditional_of))}
                for e in events if e.type == "order.update"
                and e.payload["execution"] == "TRADE"]
        if rows:
            frames.append(_private_frame(ex, "execution", rows))
    if "position" in wanted and symbols:
        rows = [{"category": CATEGORY, **row} for s in sorted(symbols) if s in ex.pricers
                for row in wire.position_rows(ex, account_id, ex.instruments[s])]
        if rows:
            frames.append(_private_frame(ex, "position", rows))
    if "wallet" in wanted:
        coins = sorted({str(e.payload.get("coin") or ex.instruments[e.payload["symbol"]]
                            .margin_asset) for e in events
                        if e.payload.get("coin") or e.payload.get("symbol") in ex.instruments})
        if coins:
            row = {"accountType": "CONTRACT", "accountIMRate": "", "accountMMRate": "",
                   "totalEquity": "", "totalWalletBalance": "", "totalMarginBalance": "",
                   "totalAvailableBalance": "", "totalPerpUPL": "", "totalInitialMargin": "",
                   "totalMaintenanceMargin": "", "accountLTV": "",
                   "coin": [wire.contract_coin_row(ex, account_id, c) for c in coins
                            if c in ex.ledger.coins]}
            frames.append(_private_frame(ex, "wallet", [row]))
    return frames


def _no_seq(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "seq"}


# ---- endpoints ----------------------------------------------------------------------------------
@router.websocket("/v5/public/inverse")
async def public_inverse(websocket: WebSocket) -> None:
    """Public market topics of the inverse contracts."""
    await _serve(websocket, private=False)


@router.websocket("/v5/private")
async def private(websocket: WebSocket) -> None:
    """Authenticated account topics."""
    await _serve(websocket, private=True)


async def _serve(websocket: WebSocket, *, private: bool) -> None:
    state: ServerState = websocket.app.state.perpsim
    hub = hub_for(state)
    conn = Connection(websocket, private)
    await websocket.accept()
    hub.conns.add(conn)
    hub.start()
    sender = asyncio.create_task(conn.run_sender(), name="perpsim-bybit-sender")
    try:
        while True:
            receiver = asyncio.ensure_future(websocket.receive())
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receiver not in done:
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receiver
                return
            message = receiver.result()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            if '"subscribe"' in (text or ""):
                await asyncio.sleep(SUBSCRIBE_ANSWER_DELAY_S)
            _request(hub, conn, text or "")
    except WebSocketDisconnect:
        return
    finally:
        hub.conns.discard(conn)
        conn.out.put_nowait(None)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


def _reply(conn: Connection, op: str, req_id: Any, *, success: bool = True,
           ret_msg: str = "") -> dict[str, Any]:
    reply: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn.conn_id,
                             "op": op}
    if req_id is not None:
        reply["req_id"] = req_id
    return reply


def _request(hub: Hub, conn: Connection, text: str) -> None:
    """One client op, answered on the connection's queue (before any data it causes)."""
    try:
        request = json.loads(text)
    except ValueError:
        conn.push(_reply(conn, "", None, success=False, ret_msg=f"error:invalid json {text!r}"))
        return
    if not isinstance(request, dict):
        conn.push(_reply(conn, "", None, success=False, ret_msg="error:a request is an object"))
        return
    op, req_id, args = request.get("op"), request.get("req_id"), request.get("args") or []
    ex = hub.state.exchange
    if op == "ping":
        if conn.private:
            conn.push({"req_id": req_id, "op": "pong", "args": [str(ex.now_ms)],
                       "conn_id": conn.conn_id})
        else:
            conn.push(_reply(conn, "ping", req_id, ret_msg="pong"))
    elif op == "auth" and conn.private:
        try:
            api_key = verify_ws_auth(args, secret_lookup(ex), (ex.now_ms, hub.state.wall_ms()))
        except SigningError as exc:
            conn.push({**_reply(conn, "auth", req_id, success=False,
                                ret_msg=f"error:{exc}"), "retCode": 10004})
            return
        account = ex.account_by_api_key(api_key)
        conn.account_id = account.account_id if account is not None else None
        if conn.account_id is not None:  # stream faults naming the account apply from now on
            identify(conn.ws.scope, conn.account_id)
        conn.push({**_reply(conn, "auth", req_id), "retCode": 0})
    elif op in ("subscribe", "unsubscribe"):
        _subscribe(hub, conn, op, req_id, args)
    else:
        conn.push(_reply(conn, str(op), req_id, success=False,
                         ret_msg=f"error:unknown op {op!r}"))


def _subscribe(hub: Hub, conn: Connection, op: str, req_id: Any, args: Any) -> None:
    """All the topics or none: an unknown one answers success false and changes nothing."""
    if not isinstance(args, list) or not args:
        conn.push(_reply(conn, op, req_id, success=False, ret_msg="error:args must be a list "
                         "of topics"))
        return
    if conn.private:
        if conn.account_id is None:
            conn.push(_reply(conn, op, req_id, success=False,
                             ret_msg="error:request not authorized, send auth first"))
            return
        unknown = [a for a in args if a not in PRIVATE_TOPICS]
        if unknown:
            conn.push(_reply(conn, op, req_id, success=False,
                             ret_msg=f"error:handler not found,topics:{unknown}"))
            return
        if op == "subscribe":
            conn.private_topics.update(args)
        else:
            conn.private_topics.difference_update(args)
        conn.push(_reply(conn, op, req_id))
        return
    if op == "unsubscribe":
        for name in args:
            conn.topics.pop(str(name), None)
        conn.push(_reply(conn, op, req_id))
        return
    try:
        topics = [parse_topic(name, hub.state.exchange) for name in args]
    except UnknownTopic as exc:
        conn.push(_reply(conn, op, req_id, success=False, ret_msg=f"error:{exc}"))
        return
    conn.push(_reply(conn, op, req_id))
    for topic in topics:
        if topic.name not in conn.topics:
            conn.topics[topic.name] = topic
            for frame in topic.frames(hub.state.exchange, hub.liquidations):
                conn.push(frame)


__all__ = ["PerpsimError", "hub_for", "router"]
