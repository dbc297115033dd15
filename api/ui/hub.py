"""The dashboard's event feed: journal events and light price ticks for ``/ui/events``.

Delivery model (the same as api/binance_coinm/stream_hub.py, much smaller):

* One hub per server state and event loop, subscribed once (``ServerState.add_listener`` keeps
  its listeners for good). The listener only enqueues: it appends the (immutable) event to each
  connection's deque and wakes its sender. No awaits, no engine calls, no serialisation; an
  engine driven from another thread hands the event over with ``call_soon_threadsafe``.
* Each connection has a sender coroutine that wakes on events or every ``TICK_S``, sends the
  queued events in batches, then a tick (the control plane's ``/control/state`` body) when the
  market moved — time, journal length or a rebuilt market — or ``HEARTBEAT_S`` passed.
* A page that falls ``MAX_PENDING`` events behind gets ``{"type": "resync"}`` instead of them
  (it re-reads the snapshot); a reset gets ``{"type": "reset"}``.

Messages: ``hello`` {now, last_seq}, ``events`` {events: [...]}, ``tick`` {state...},
``reset``, ``resync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import weakref
from collections import deque
from typing import Any

from starlette.websockets import WebSocket

from perpsim.api import control
from perpsim.api.state import ServerState
from perpsim.sim.journal import Event

log = logging.getLogger("perpsim.ui")

TICK_S = 0.25  # how often a sender looks at the market when no event wakes it (wall time)
HEARTBEAT_S = 2.0  # a tick at least this often, even when nothing moved
MAX_PENDING = 5_000  # queued events per page before it is told to resync instead
BATCH = 500  # events per message


class UiClient:
    """One dashboard connection: its queued events and the flag that wakes its sender."""

    def __init__(self) -> None:
        self.pending: deque[Event] = deque()
        self.overflowed = False
        self.wake = asyncio.Event()

    def push(self, event: Event) -> None:
        """Queue an event (or, past ``MAX_PENDING``, drop the backlog and ask for a resync)."""
        if self.overflowed:
            return
        if len(self.pending) >= MAX_PENDING:
            self.pending.clear()
            self.overflowed = True
        else:
            self.pending.append(event)
        self.wake.set()


class UiHub:
    """The dashboard connections of one server on one event loop, and their listener."""

    def __init__(self, state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.thread_id = threading.get_ident()
        self.retired = False
        self.clients: set[UiClient] = set()
        state.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if self.retired or not self.clients:
            return
        if threading.get_ident() != self.thread_id:
            try:
                self.loop.call_soon_threadsafe(self._deliver, event)
            except RuntimeError:  # that loop is closed: this hub is history
                self.retired = True
            return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        for client in tuple(self.clients):
            client.push(event)

    def register(self) -> UiClient:
        """A new connection, receiving every event from now on."""
        client = UiClient()
        self.clients.add(client)
        return client

    def unregister(self, client: UiClient) -> None:
        """Stop delivering to ``client``."""
        self.clients.discard(client)

    async def run_sender(self, ws: WebSocket, client: UiClient) -> None:
        """Send ``hello``, then events and ticks, until the socket fails or is cancelled."""
        state = self.state
        exchange = state.exchange
        await _send(ws, {"type": "hello", "now": exchange.now_ms,
                         "last_seq": len(exchange.journal)})
        signature: tuple[int, int, int] | None = None
        last_tick = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.wake.wait(), TICK_S)
            client.wake.clear()
            if state.exchange is not exchange:  # a reset built a new market
                exchange = state.exchange
                client.pending.clear()
                client.overflowed = False
                signature = None
                await _send(ws, {"type": "reset", "now": exchange.now_ms})
            if client.overflowed:
                client.pending.clear()
                client.overflowed = False
                await _send(ws, {"type": "resync"})
            elif client.pending:
                batch = [client.pending.popleft()
                         for _ in range(min(BATCH, len(client.pending)))]
                await _send(ws, {"type": "events",
                                 "events": [control.event_json(e) for e in batch]})
                if client.pending:
                    client.wake.set()
            now = time.monotonic()
            current = (id(exchange), exchange.now_ms, len(exchange.journal))
            if current != signature or now - last_tick >= HEARTBEAT_S:
                signature, last_tick = current, now
                try:
                    tick = {"type": "tick", **control.market_state(state)}
                except Exception:  # a bad reading must not end the feed; the page keeps events
                    log.exception("dashboard tick failed")
                    continue
                await _send(ws, tick)


async def _send(ws: WebSocket, message: dict[str, Any]) -> None:
    await ws.send_text(json.dumps(message, separators=(",", ":")))


_HUBS: weakref.WeakKeyDictionary[ServerState, UiHub] = weakref.WeakKeyDictionary()


def hub_for(state: ServerState) -> UiHub:
    """The dashboard hub of ``state`` on the running loop (made on the first connection)."""
    loop = asyncio.get_running_loop()
    hub = _HUBS.get(state)
    if hub is None or hub.loop is not loop or hub.retired:
        if hub is not None:
            hub.retired = True
        hub = _HUBS[state] = UiHub(state, loop)
    return hub
