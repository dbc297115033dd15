"""Shared fixtures: one real perpsim server per test session (uvicorn on 127.0.0.1, free port),
reset to a fresh manual market before each test that asks for it (pytest-httpserver's shape)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.server import serve_in_thread
from api.state import ServerConfig, ServerState

START = "2024-01-01T00:00:00Z"
START_MS = 1_704_067_200_000


@dataclass
class Market:
    """A handle on the live server: its URLs, its state and a control-plane client."""

    base_url: str
    state: ServerState
    control: httpx.Client

    @property
    def ws_url(self) -> str:
        """WebSocket base (``ws://host:port/ws``), as ccxt's urls['api']['ws'] wants it."""
        return self.base_url.replace("http://", "ws://") + "/ws"

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST to the control plane; assert success; the JSON answer."""
        response = self.control.post(f"/control/{path}", json=body)
        assert response.status_code < 300, response.text
        return response.json()

    def account(self, balances: dict[str, str] | None = None, **extra: Any) -> dict[str, str]:
        """Create a funded account (1 BTC by default): {account_id, api_key, api_secret}."""
        result: dict[str, str] = self.post("accounts", {"balances": balances or {"BTC": "1"},
                                                         **extra})
        return result

    def advance(self, ms: int) -> list[dict[str, Any]]:
        """Advance simulated time; the events."""
        events: list[dict[str, Any]] = self.post("advance", {"ms": ms})["events"]
        return events

    def prices(self, index: str, perp: str | None = None, symbol: str = "BTCUSD_PERP") -> Any:
        """Move the manual market's prices."""
        return self.post("prices", {"symbol": symbol, "index": index,
                                    **({"perp": perp} if perp else {})})


@pytest.fixture(scope="session")
def perpsim_server() -> Iterator[tuple[str, ServerState]]:
    """One live server for the whole session."""
    state = ServerState(ServerConfig(start=START))
    with serve_in_thread(create_app(state=state)) as base_url:
        yield base_url, state


@pytest.fixture
def market(perpsim_server: tuple[str, ServerState]) -> Iterator[Market]:
    """The session's server reset to a fresh manual market at 2024-01-01T00:00Z."""
    base_url, state = perpsim_server
    with httpx.Client(base_url=base_url, timeout=30) as client:
        handle = Market(base_url, state, client)
        handle.post("reset", {"profile": "binance_coinm", "scenario": "manual", "seed": 0,
                              "start": START, "clock": "stepped", "speed": 1.0})
        yield handle
