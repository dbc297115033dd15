"""The FastAPI application factory: one market, the Binance COIN-M dialect, the control plane.

Every route is ``async`` and the engine is synchronous, so requests run one at a time on the
event loop: the engine needs no locks. In realtime mode a background task moves simulated
time with the wall clock × speed; in stepped mode only ``POST /control/advance`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from perpsim.api import control
from perpsim.api.binance_errors import install_error_handlers
from perpsim.api.harness import install_harness
from perpsim.api.state import ServerConfig, ServerState

REALTIME_TICK_S = 0.05


def create_app(config: ServerConfig | None = None, *, state: ServerState | None = None) -> FastAPI:
    """A perpsim server for ``config`` (or around an existing ``state``)."""
    server_state = state or ServerState(config or ServerConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_follow_wall_clock(server_state))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="perpsim", version="0.1.0", lifespan=lifespan,
                  description="A mock exchange for inverse perpetual futures: the Binance "
                  "COIN-M dialect plus a control plane to reset, fund, move prices and time.")
    app.state.perpsim = server_state
    install_error_handlers(app)
    app.include_router(control.router)
    _include_dialect(app)
    from perpsim.api.ui import router as ui_router

    app.include_router(ui_router)
    install_harness(app)  # fault injection and recording: inert until asked for
    return app


def _include_dialect(app: FastAPI) -> None:
    """Mount the Binance COIN-M routers and WebSocket endpoints (whichever are present)."""
    from perpsim.api.binance_coinm.routes import ROUTERS

    for router in ROUTERS:
        app.include_router(router)


async def _follow_wall_clock(state: ServerState) -> None:
    """Realtime mode: keep simulated time at anchor + wall time × speed."""
    while True:
        state.follow_wall_clock()
        await asyncio.sleep(REALTIME_TICK_S)
