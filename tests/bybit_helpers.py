"""Helpers for tests of the Bybit v5 wire against a live server: an unmodified pybit ``HTTP``
pointed at it, and a raw authenticated private WebSocket."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pybit import unified_trading
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from live_market import START, Market

SYMBOL = "BTCUSD"


def fresh_pybit(market: Market, balance: str = "1") -> Any:
    """A reset bybit_inverse market and a pybit HTTP client of a new account holding
    ``balance`` BTC (its credentials as ``.creds``)."""
    market.post("reset", {"profile": "bybit_inverse", "scenario": "manual", "seed": 0,
                          "start": START, "clock": "stepped", "speed": 1.0})
    return pybit_client(market, market.account({"BTC": balance}))


def pybit_client(market: Market, creds: dict[str, str]) -> Any:
    """An unmodified pybit HTTP pointed at ``market`` (its one URL setting) for ``creds``."""
    client = unified_trading.HTTP(testnet=False, api_key=creds["api_key"],
                                  api_secret=creds["api_secret"], max_retries=1)
    client.endpoint = market.base_url
    client.creds = creds
    return client


def rows(response: dict[str, Any]) -> list[dict[str, Any]]:
    """``result.list`` of a successful answer."""
    assert response["retCode"] == 0, response
    found: list[dict[str, Any]] = response["result"]["list"]
    return found


@contextmanager
def private_ws(market: Market, creds: dict[str, str], topics: list[str]
               ) -> Iterator[ClientConnection]:
    """``/v5/private`` authenticated and subscribed to ``topics``."""
    url = market.base_url.replace("http://", "ws://") + "/v5/private"
    with ws_connect(url, open_timeout=10) as ws:
        expires = str(int(time.time() * 1000) + 10_000)
        sign = hmac.new(creds["api_secret"].encode(), ("GET/realtime" + expires).encode(),
                        hashlib.sha256).hexdigest()
        ws.send(json.dumps({"op": "auth", "args": [creds["api_key"], expires, sign]}))
        assert json.loads(ws.recv(timeout=10))["success"] is True
        ws.send(json.dumps({"op": "subscribe", "args": topics}))
        assert json.loads(ws.recv(timeout=10))["success"] is True
        yield ws


def frames_until(ws: ClientConnection, wanted: set[str], timeout_s: float = 15.0
                 ) -> dict[str, dict[str, Any]]:
    """The latest frame of each topic in ``wanted``, once every one has arrived."""
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while not wanted <= set(seen) and time.monotonic() < deadline:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if frame.get("topic") in wanted:
            seen[frame["topic"]] = frame
    assert wanted <= set(seen), f"only {sorted(seen)} of {sorted(wanted)} arrived"
    return seen
