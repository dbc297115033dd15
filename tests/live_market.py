"""The live-server handle tests share (the fixtures that build it are in conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from perpsim.api.binance_coinm.stream_hub import existing_hub
from perpsim.api.state import ServerState

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
        """The raw stream base ``ws://host:port/ws`` (append a stream name or listen key);
        strategy.connect() derives its own from the REST base and appends ``/ws`` itself."""
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

    def user_stream_open(self, account_id: str) -> bool:
        """True once the server delivers ``account_id``'s user stream on an open socket."""
        hub = existing_hub(self.state)
        return hub is not None and bool(hub.users.get(account_id))

    def subscribed(self, stream: str) -> bool:
        """True once some open connection is subscribed to ``stream``."""
        hub = existing_hub(self.state)
        return hub is not None and any(stream in c.subs for c in list(hub.connections))


async def until(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll ``check`` until true, failing (never hanging) after ``timeout_s`` naming ``what``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
