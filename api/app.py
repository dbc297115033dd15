"""The FastAPI application factory: one market, every wire dialect (api/dialects.py), the control
plane.

Every route is ``async`` and the engine is synchronous, so requests run one at a time on the
event loop: the engine needs no locks. In realtime mode a background task moves simulated
time with the wall clock × speed; in stepped mode only ``POST /control/advance`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from perpsim.api import control, health
from perpsim.api.errors import install_error_handlers
from perpsim.api.harness import install_harness
from perpsim.api.health import BrokenMarketGuard
from perpsim.api.openapi import install_openapi
from perpsim.api.route_cache import install_route_cache
from perpsim.api.security import SecurityConfig, SecurityMiddleware
from perpsim.api.state import ServerConfig, ServerState

REALTIME_TICK_S = 0.05
log = logging.getLogger("perpsim")


def create_app(config: ServerConfig | None = None, *, state: ServerState | None = None,
               security: SecurityConfig | None = None, route_cache: bool = True) -> FastAPI:
    """A perpsim server for ``config`` (or around an existing ``state``), guarded by
    ``security`` (default: loopback Host names only, paths confined to the working directory,
    no control token). ``route_cache=False`` routes every request through FastAPI's own
    search and handlers (api/route_cache.py: the answers are the same, only slower)."""
    server_state = state or ServerState(config or ServerConfig())
    security = security or SecurityConfig()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_follow_wall_clock(lambda: app.state.perpsim))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Telemetry off: a mock exchange exports no traces, and FastAPI 0.165 otherwise asks the
    # OpenTelemetry providers on every request (1-2 % of an in-process hedge).
    app = FastAPI(title="perpsim", version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="A mock exchange for inverse perpetual futures: the Binance "
                  "COIN-M and Bybit v5 inverse dialects plus a control plane to reset, fund, "
                  "move prices and time.")
    app.state.perpsim = server_state
    app.state.perpsim_security = security
    install_error_handlers(app)
    app.include_router(control.router)
    app.include_router(health.router)
    _include_dialect(app)
    from perpsim.api.ui import router as ui_router

    app.include_router(ui_router)
    install_harness(app)  # fault injection and recording: inert until asked for
    install_openapi(app)
    app.add_middleware(BrokenMarketGuard, state_of=lambda: app.state.perpsim)
    app.add_middleware(SecurityMiddleware, config=security)  # outermost: first to see a request
    if route_cache:  # a path asked before skips FastAPI's route search and handler
        install_route_cache(app.router)
    return app


def serve_state(app: FastAPI, state: ServerState) -> None:
    """Make ``app`` (from :func:`create_app`) serve the market ``state`` from now on, as an app
    created around it would: every piece holding market state reads it from ``app.state``
    (routes, the broken-market guard) or is the harness, handed the new market; what is kept
    holds none — the routes, the route cache, the security settings and what FastAPI builds
    per route at an app's first requests (a tenth of an in-process dry run). For a process
    that serves one market after another (a sweep worker, perpsim/inprocess.py ``AppHost``);
    refused while the harness is in use (faults, a recording or a replay)."""
    app.state.perpsim_harness.serve(state)
    app.state.perpsim = state


def _include_dialect(app: FastAPI) -> None:
    """Mount every registered dialect's routers (api/dialects.py): their paths do not collide."""
    from perpsim.api.dialects import DIALECTS, routers

    for name in DIALECTS:
        for router in routers(name):
            app.include_router(router)


async def _follow_wall_clock(state_of: Callable[[], ServerState]) -> None:
    """Realtime mode: keep simulated time at anchor + wall time × speed (for the market the
    app serves at each tick: ``serve_state`` may hand it another).

    The task never dies: an error inside an advance has already marked the market broken
    (sim/containment.py; GET /control/health tells), and the task waits for a reset.
    """
    state = state_of()
    try:
        while True:
            state = state_of()
            state.clock_task_status = "running"
            try:
                state.follow_wall_clock()
            except Exception as exc:  # contained: the market says what broke
                ex = state.exchange
                ex.containment.mark(exc, ex.now_ms, "the realtime clock")
                log.error("perpsim: %s", ex.containment.broken.describe()
                          if ex.containment.broken else exc)
            await asyncio.sleep(REALTIME_TICK_S)
    finally:
        state.clock_task_status = "stopped"
