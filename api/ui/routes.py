"""The dashboard's routes: the page, its static files, the snapshot and the event socket.

* ``GET /ui`` — the page (api/ui/static/dashboard.html); plain JavaScript, no build step.
* ``GET /ui/static/plotly.min.js`` — plotly's own bundle from the installed ``plotly`` package
  (read once, kept in memory): no CDN, the dashboard works with no network at all.
* ``GET /ui/static/dashboard.js`` and ``dashboard.css`` — the page's script (a JavaScript
  module importing ``format.js``, ``events.js``, ``charts.js``, ``positions.js``) and style.
* ``GET /ui/api/snapshot`` — everything the page shows at once (api/ui/snapshot.py).
* ``GET /ui/api/cascade`` — the cascade view's data (api/ui/cascade.py; ``cascade.js``).
* ``WebSocket /ui/events`` — journal events and light price ticks (api/ui/hub.py).

The page's controls call the control plane (``POST /control/advance``, ``/control/prices``).
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket
from fastapi.responses import HTMLResponse, Response
from starlette.websockets import WebSocketDisconnect, WebSocketState

from perpsim.api.deps import State
from perpsim.api.state import ServerState
from perpsim.api.ui import hub as ui_hub
from perpsim.api.ui.cascade import cascade_view
from perpsim.api.ui.snapshot import default_symbol, snapshot

router = APIRouter(prefix="/ui", tags=["dashboard"])

_STATIC = {  # file → content type; nothing else under static/ is served
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",  # imports the four modules below
    "format.js": "text/javascript; charset=utf-8",
    "events.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "positions.js": "text/javascript; charset=utf-8",
    "cascade.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_cache: dict[str, bytes] = {}
_plotly: dict[str, tuple[bytes, str]] = {}


def _read_static(name: str) -> bytes:
    if name not in _cache:
        _cache[name] = resources.files("perpsim.api.ui").joinpath("static", name).read_bytes()
    return _cache[name]


def _load_plotly() -> tuple[bytes, str]:
    import plotly
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8"), f'"plotly-{plotly.__version__}"'


@router.get("", response_class=HTMLResponse)
async def page() -> Response:
    """The dashboard."""
    return Response(_read_static("dashboard.html"), media_type=_STATIC["dashboard.html"],
                    headers={"Cache-Control": "no-cache"})


@router.get("/static/plotly.min.js")
async def plotly_js() -> Response:
    """plotly.js as bundled in the installed ``plotly`` package (cached in memory)."""
    if "js" not in _plotly:
        _plotly["js"] = await asyncio.to_thread(_load_plotly)
    body, etag = _plotly["js"]
    return Response(body, media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=86400", "ETag": etag})


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    """The dashboard's script and stylesheet."""
    if name not in _STATIC:
        return Response(status_code=404)
    return Response(_read_static(name), media_type=_STATIC[name],
                    headers={"Cache-Control": "no-cache"})


@router.get("/api/snapshot")
async def get_snapshot(state: State, symbol: Annotated[str | None, Query(max_length=64)] = None,
                       history: bool = True) -> dict[str, Any]:
    """Prices, accounts with their risk, funding, insurance fund, recent events and (unless
    ``history=false``) the chart's index, mark and last candles of ``symbol``."""
    return await snapshot(state, symbol=symbol, history=history)


@router.get("/api/cascade")
async def get_cascade(state: State,
                      symbol: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
    """Liquidations and ADL per minute, the finite book's records and state, the insurance
    fund after each liquidation, on ``symbol`` (default: the chart's)."""
    ex = state.exchange
    chosen = symbol or default_symbol(ex)
    if chosen is None:
        return {"symbol": None, "buckets": [], "points": [], "fund": [], "adl": [],
                "finite": None, "now": ex.now_ms}
    return cascade_view(ex, chosen)


@router.websocket("/events")
async def events(websocket: WebSocket) -> None:
    """Journal events (batched) and light price ticks, as JSON text messages."""
    state: ServerState = websocket.app.state.perpsim
    hub = ui_hub.hub_for(state)
    client = hub.register()  # before the handshake: no event falls in between
    tasks: list[asyncio.Task[None]] = []
    try:
        await websocket.accept()
        tasks = [asyncio.create_task(hub.run_sender(websocket, client), name="perpsim-ui-send"),
                 asyncio.create_task(_drain(websocket), name="perpsim-ui-receive")]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unregister(client)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if websocket.application_state == WebSocketState.CONNECTED and (
                websocket.client_state == WebSocketState.CONNECTED):
            with contextlib.suppress(Exception):  # the peer may be gone already
                await websocket.close(1000)


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the page sends, until it leaves."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()
