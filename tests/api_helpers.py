"""Test helpers: a uvicorn server on a free loopback port, run in a thread, and a tiny app.

The tiny app serves only ``/dapi/v1/time`` and ``/dapi/v1/exchangeInfo`` (from the real
serialiser) plus one signed echo endpoint, with the real error handlers, so a test can prove
that unmodified ccxt loads markets, reads the clock and signs requests against perpsim code
before the full dialect exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
from fastapi import FastAPI, Request

from perpsim.api.binance_coinm.market_info import exchange_info, leverage_brackets
from perpsim.api.binance_coinm.signing import verify_request
from perpsim.api.errors import install_error_handlers
from perpsim.api.server import serve_in_thread
from perpsim.sim.profile import Profile


def serve(app: Any, *, timeout_s: float = 30.0) -> AbstractContextManager[str]:
    """Run ``app`` on a free loopback port in a thread (lifespan off); yields its base URL."""
    return serve_in_thread(app, timeout_s=timeout_s, lifespan="off")


def market_app(
    profile: Profile, now_ms: Callable[[], int], accounts: dict[str, str] | None = None
) -> FastAPI:
    """A minimal Binance COIN-M app: time, exchangeInfo, leverage brackets (signed)."""
    app = FastAPI()
    install_error_handlers(app)
    secrets = dict(accounts or {})

    @app.get("/dapi/v1/time")
    def server_time() -> dict[str, int]:
        return {"serverTime": now_ms()}

    @app.get("/dapi/v1/exchangeInfo")
    def exchange_information() -> dict[str, Any]:
        return exchange_info(profile, now_ms())

    @app.get("/dapi/v2/leverageBracket")
    async def brackets(request: Request) -> list[dict[str, Any]]:
        signed = verify_request(
            query=request.url.query,
            body=await request.body(),
            headers=request.headers,
            secret_for=secrets.get,
            now_ms=now_ms(),
        )
        return leverage_brackets(profile, signed.params.get("symbol"))

    return app


class AsgiClient:
    """Synchronous calls into an ASGI app in-process (starlette's TestClient warns on httpx)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request through httpx's ASGI transport; app errors become 500 answers."""
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
                return await http.request(method, path, **kwargs)

        return asyncio.run(call())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET ``path``."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST ``path``."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        """PUT ``path``."""
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        """DELETE ``path``."""
        return self.request("DELETE", path, **kwargs)

