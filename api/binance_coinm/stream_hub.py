"""The WebSocket hub of one server: the journal listener, the connections, the market pump.

Delivery model (docs/binance-coinm-dialect.md "WebSocket"):

* The engine appends journal events synchronously inside HTTP handlers on the event loop. The
  hub's listener only does bookkeeping and enqueues: it updates the account views
  (api/binance_coinm/stream_accounts.py), turns the event into user-stream frames for the
  account's open connections, and wakes the market pump. No awaits, no engine calls, so every
  user event — ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, ALGO_UPDATE, MARGIN_CALL — reaches its
  connections in journal order, even the thousands of one long advance.
* Every connection has its own queue and a sender task that drains it.
* The market pump runs between requests (when the engine is at rest): woken by the listener or
  every ``POLL_S`` of wall time (time also moves without events: a quiet advance, realtime
  mode), it reads the market through the REST serialisers and lets each subscription decide
  what to send (api/binance_coinm/stream_market.py coalesces).
* A reset builds a new market: the user streams' listen keys are gone, so they get
  ``listenKeyExpired`` and are closed; public streams continue (the depth counter keeps
  growing across resets, api/binance_coinm/sequence.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.websockets import WebSocket

from perpsim.api.binance_coinm import stream_frames as fr
from perpsim.api.binance_coinm.stream_accounts import AccountViews, PositionView
from perpsim.api.binance_coinm.stream_market import Readings, StreamSpec, Subscription
from perpsim.api.state import ServerState
from perpsim.sim.errors import PerpsimError
from perpsim.sim.exchange import Exchange
from perpsim.sim.funding_detail import FundingDetail
from perpsim.sim.journal import Event

log = logging.getLogger("perpsim.streams")

POLL_S = 0.05  # how often the pump looks at the market when nothing wakes it (wall time)
KEY_CHECK_S = 1.0  # how often a user stream checks its listen key is still alive
MAX_BACKLOG = 100_000  # frames queued for a connection that does not read: then it is closed
MAX_LIQUIDATIONS = 10_000  # liquidation orders kept for the forceOrder streams
ZERO = Decimal(0)
MAX_CONNECTION_S = 24 * 3600.0  # Binance: a connection is valid for 24 hours (wall time)


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class Connection:
    """One WebSocket: its outgoing queue, its subscriptions, and (user streams) its account."""

    def __init__(self, ws: WebSocket, account_id: str | None = None,
                 listen_key: str | None = None, *, combined: bool = False) -> None:
        self.ws = ws
        self.account_id = account_id
        self.listen_key = listen_key
        # A listen key named in the URL (/ws/<key>, /stream?streams=<key>) owns the connection:
        # when it expires the connection closes. One subscribed later only stops its events.
        self.user_by_url = listen_key is not None
        self.combined = combined  # frames wrapped {"stream": name, "data": frame}
        self.subs: dict[str, Subscription] = {}
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.closing = False
        self.sent = 0
        self.lifetime: asyncio.TimerHandle | None = None

    def data(self, stream: str, frame: Any) -> None:
        """Queue a stream frame, wrapped with its stream name on a combined connection."""
        self.push({"stream": stream, "data": frame} if self.combined else frame)

    def push(self, frame: Any) -> None:
        """Queue a frame (a dict, a list of dicts, or ready JSON text)."""
        if self.closing:
            return
        if self.out.qsize() >= MAX_BACKLOG:
            self.close(1008, "too many unread messages")
            return
        self.out.put_nowait(frame)

    def close(self, code: int, reason: str) -> None:
        """Close after what is already queued."""
        if not self.closing:
            self.closing = True
            self.out.put_nowait(_Close(code, reason))

    async def next_item(self) -> Any:
        """The next queued item (user streams wake every KEY_CHECK_S to check their key)."""
        if self.account_id is None:
            return await self.out.get()
        try:
            return await asyncio.wait_for(self.out.get(), KEY_CHECK_S)
        except TimeoutError:
            return None

    async def run_sender(self, hub: StreamHub) -> None:
        """Drain the queue onto the socket until closed."""
        while True:
            item = await self.next_item()
            if item is None:
                hub.check_listen_key(self)
                continue
            if isinstance(item, _Close):
                with contextlib.suppress(Exception):  # the peer may be gone already
                    await self.ws.close(item.code, item.reason)
                return
            text = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
            await self.ws.send_text(text)
            self.sent += 1


class StreamHub:
    """Connections of one server and the listener that feeds them."""

    def __init__(self, state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.thread_id = threading.get_ident()
        self.retired = False
        self.errors: list[tuple[int, Exception]] = []
        self.connections: set[Connection] = set()
        self.users: dict[str, set[Connection]] = {}
        self.wake = asyncio.Event()
        self.pump_task: asyncio.Task[None] | None = None
        self.generation = 0
        self.exchange = state.exchange
        self.max_connection_s = MAX_CONNECTION_S
        self._in_engine = False  # inside a synchronous journal callback (see _on_event)
        self.views = AccountViews(self.exchange.instruments, self._mark_at)
        self.liquidations: list[Event] = []
        self._last_signature: tuple[int, int, int] | None = None
        self._seed(self.exchange)
        state.add_listener(self._on_event)

    # ---- the journal listener: bookkeeping and enqueueing only --------------------------------
    def _on_event(self, event: Event) -> None:
        if self.retired:
            return
        ex = self.state.exchange
        if threading.get_ident() != self.thread_id:  # the engine driven from another thread
            try:
                self.loop.call_soon_threadsafe(self._handle, event, ex)
            except RuntimeError:  # that loop is closed: this hub is history
                self.retired = True
            return
        # Synchronous with the engine: the event's instant is the engine's now, so the views
        # may read the mark at it (``_mark_at``); a deferred event may not.
        self._in_engine = True
        try:
            self._handle(event, ex)
        finally:
            self._in_engine = False

    def _handle(self, event: Event, ex: Exchange) -> None:
        try:
            if ex is not self.exchange:
                self._switch(ex, seed=False)
            if isinstance(event.detail, FundingDetail):  # one record for every position
                listened = [aid for aid in self.users if event.detail.rows_of(aid)]
                self.views.settle_funding(event.detail, skip=frozenset(listened))
                for aid in listened:  # their payments as the events the views read
                    for payment in event.detail.events(event, aid):
                        self._handle(payment, ex)
            payload = event.payload
            account_id = payload.get("account_id")
            conns = self.users.get(account_id) if isinstance(account_id, str) else None
            frames = self.views.apply(event.time_ms, event.type, payload,
                                      want_frames=bool(conns))
            for conn in conns or ():
                for frame in frames:
                    conn.data(conn.listen_key or "", frame)
            if event.type == "liquidation.order":
                self.liquidations.append(event)
                del self.liquidations[:-MAX_LIQUIDATIONS]
            if self.connections:
                self.wake.set()
        except Exception as exc:  # never let a stream bug interrupt the engine
            log.exception("stream listener failed on event %s", event.seq)
            self.errors.append((event.seq, exc))

    def _switch(self, ex: Exchange, *, seed: bool) -> None:
        """A reset built a new market: new views; user streams end (their keys are gone)."""
        self.exchange = ex
        self.generation += 1
        self.views = AccountViews(ex.instruments, self._mark_at)
        self.liquidations = []
        if seed:
            self._seed(ex)
        for conns in self.users.values():
            for conn in conns:
                self._expire(conn)
        self.users.clear()
        for conn in self.connections:
            for sub in conn.subs.values():
                sub.renew(self.generation)

    def _seed(self, ex: Exchange) -> None:
        """Start the views from the engine (only ever called with the engine at rest)."""
        realized: dict[tuple[str, str], Decimal] = {}
        for event in ex.journal:  # ``cr``: the realised PnL of every fill so far
            p = event.payload
            if event.type == "order.update" and p["execution"] == "TRADE":
                side = p.get("position_side", "BOTH")
                key = (p["account_id"],
                       p["symbol"] if side == "BOTH" else f"{p['symbol']}:{side}")
                realized[key] = realized.get(key, ZERO) + Decimal(str(p.get("realized_pnl")
                                                                      or 0))
        for account_id, account in ex.accounts.items():
            wallets = {coin: ex.wallet_balance(account_id, coin) for coin in ex.ledger.coins}
            # Keys as Account.positions: the symbol, or symbol:SIDE for a hedge-mode leg.
            positions = {key: PositionView(pos.qty_contracts, pos.entry_price_usd,
                                           pos.margin_mode,
                                           ex.isolated_wallet(account_id, pos.margin_key),
                                           realized.get((account_id, key), ZERO),
                                           pos.position_side)
                         for key, pos in account.positions.items()}
            self.views.seed(account_id, wallets, positions)

    def _mark_at(self, symbol: str, time_ms: int) -> Decimal | None:
        """The mark at an event being journalled now, read on the engine's own thread (None
        for an event handled later, from another thread's engine)."""
        ex = self.exchange
        if not self._in_engine or ex is not self.state.exchange or ex.now_ms != time_ms:
            return None
        try:
            return ex.mark_price(symbol)
        except PerpsimError:  # a symbol the scenario does not price
            return None

    def _expire(self, conn: Connection) -> None:
        """listenKeyExpired; a connection opened on the key closes, a subscription to it ends."""
        assert conn.listen_key is not None
        conn.data(conn.listen_key, fr.listen_key_expired(self.exchange.now_ms, conn.listen_key))
        if conn.user_by_url:
            conn.close(1000, "listen key expired")
        else:
            conn.account_id = conn.listen_key = None

    def check_listen_key(self, conn: Connection) -> None:
        """End a user stream whose listen key expired or was closed."""
        if conn.listen_key is None or conn.closing:
            return
        if self.state.account_for_listen_key(conn.listen_key) != conn.account_id:
            self.users.get(conn.account_id or "", set()).discard(conn)
            self._expire(conn)

    # ---- connections -----------------------------------------------------------------------
    def register(self, conn: Connection) -> None:
        """Start delivering to ``conn`` (user streams: its account's events from now on).

        Binance ends every connection at 24 hours of wall time (``max_connection_s``): a
        connection is a transport, and simulated time may jump 30 days in one advance.
        """
        self._catch_up()
        self.connections.add(conn)
        if conn.account_id is not None:
            self.users.setdefault(conn.account_id, set()).add(conn)
        conn.lifetime = self.loop.call_later(self.max_connection_s, conn.close, 1000,
                                             "24 hour connection limit")
        if self.pump_task is None or self.pump_task.done():
            self.pump_task = self.loop.create_task(self._pump(), name="perpsim-stream-pump")

    def unregister(self, conn: Connection) -> None:
        """Stop delivering to ``conn``."""
        self.connections.discard(conn)
        if conn.lifetime is not None:
            conn.lifetime.cancel()
        if conn.account_id is not None:
            self.users.get(conn.account_id, set()).discard(conn)
        self.wake.set()

    def attach_user(self, conn: Connection, account_id: str, listen_key: str) -> None:
        """A listen key subscribed on an open connection: its account's events from now on."""
        self._catch_up()
        self.detach_user(conn)
        conn.account_id, conn.listen_key = account_id, listen_key
        self.users.setdefault(account_id, set()).add(conn)

    def detach_user(self, conn: Connection) -> None:
        """Stop the connection's user stream (UNSUBSCRIBE of its listen key)."""
        if conn.account_id is not None:
            self.users.get(conn.account_id, set()).discard(conn)
        conn.account_id = conn.listen_key = None

    def readings(self) -> Readings:
        """The market now (the engine is at rest whenever a coroutine of the hub runs)."""
        return Readings(self.state, self.liquidations)

    def subscribe(self, conn: Connection, specs: list[StreamSpec]) -> list[tuple[str, Any]]:
        """Add subscriptions; the (stream, frame) pairs that follow the ack (the current state
        of state streams)."""
        self._catch_up()
        readings, wall = self.readings(), time.monotonic()
        frames: list[tuple[str, Any]] = []
        for spec in specs:
            if spec.name in conn.subs:
                continue
            sub = Subscription(spec, self.generation)
            conn.subs[spec.name] = sub
            frames.extend((spec.name, frame) for frame in sub.start(readings, wall))
        self.wake.set()
        return frames

    def _catch_up(self) -> None:
        ex = self.state.exchange
        if ex is not self.exchange:
            self._switch(ex, seed=True)

    # ---- the market pump ---------------------------------------------------------------------
    async def _pump(self) -> None:
        while self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL_S)
            self.wake.clear()
            try:
                self._tick()
            except Exception as exc:  # a bad reading must not end every stream
                log.exception("stream pump failed")
                self.errors.append((-1, exc))

    def _tick(self) -> None:
        self._catch_up()
        ex = self.exchange
        subscribed = [c for c in self.connections if c.subs]
        signature = (self.generation, ex.now_ms, len(ex.journal))
        pending = any(s.pending for c in subscribed for s in c.subs.values())
        if signature == self._last_signature and not pending:
            return
        self._last_signature = signature
        readings, wall = self.readings(), time.monotonic()
        for conn in subscribed:
            for sub in list(conn.subs.values()):
                try:
                    frames = sub.poll(readings, wall)
                except PerpsimError:  # e.g. a symbol the rebuilt market does not price
                    continue
                for frame in frames:
                    conn.data(sub.spec.name, frame)


_HUBS: weakref.WeakKeyDictionary[ServerState, StreamHub] = weakref.WeakKeyDictionary()


def hub_for(state: ServerState) -> StreamHub:
    """The hub of ``state`` on the running loop (made on the first WebSocket connection)."""
    loop = asyncio.get_running_loop()
    hub = _HUBS.get(state)
    if hub is None or hub.loop is not loop or hub.retired:
        if hub is not None:
            hub.retired = True
        hub = _HUBS[state] = StreamHub(state, loop)
    return hub


def existing_hub(state: ServerState) -> StreamHub | None:
    """The hub of ``state`` if a WebSocket ever connected (for tests and diagnostics)."""
    return _HUBS.get(state)
