"""Venue-wide endpoints, the two clocks a signed request may follow, and −4120 for conditional
types on the plain order endpoint (api/binance_coinm/venue_routes.py, account_auth.py)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from test_api_account import signed

from perpsim.strategy.connect import connect

from conftest import START_MS, Market

HOUR_MS = 3_600_000


def test_spot_ping_time_and_system_status(market: Market) -> None:
    status = connect(market.base_url, None, None).fetch_status()  # ccxt's own parsing
    assert status["status"] == "ok"
    assert market.control.get("/api/v3/ping").json() == {}
    market.advance(HOUR_MS)
    assert market.control.get("/api/v3/time").json() == {"serverTime": START_MS + HOUR_MS}
    assert market.control.get("/dapi/v1/time").json() == {"serverTime": START_MS + HOUR_MS}
    assert market.control.get("/sapi/v1/system/status").json() == {"status": 0, "msg": "normal"}


def test_signed_request_fresh_against_simulated_or_wall_time(market: Market) -> None:
    creds = market.account()
    market.advance(HOUR_MS)
    server_ms = market.control.get("/dapi/v1/time").json()["serverTime"]
    # A client that synced its offset to /dapi/v1/time signs with simulated time …
    synced = signed(market, creds, "GET", "/dapi/v1/balance", timestamp=server_ms - 100)
    assert synced.status_code == 200, synced.text
    # … and one that never synced signs with its own wall clock: both are fresh.
    wall = signed(market, creds, "GET", "/dapi/v1/balance",
                  timestamp=int(time.time() * 1000))
    assert wall.status_code == 200, wall.text
    # Fresh against neither: −1021, naming the nearer clock (here the simulated one).
    stale = signed(market, creds, "GET", "/dapi/v1/balance", timestamp=server_ms - 11_000)
    assert stale.status_code == 400
    assert stale.json() == {"code": -1021,
                            "msg": "Timestamp for this request is outside of the recvWindow."}
    ahead = signed(market, creds, "GET", "/dapi/v1/balance", timestamp=server_ms + 1000)
    assert ahead.json()["code"] == -1021


@pytest.mark.parametrize("order_type", ["STOP", "STOP_MARKET", "TAKE_PROFIT",
                                        "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"])
def test_conditional_type_on_plain_order_endpoint_is_4120(market: Market,
                                                          order_type: str) -> None:
    creds = market.account()
    journal_before = market.control.get("/control/journal").text
    answer = signed(market, creds, "POST", "/dapi/v1/order",
                    {"symbol": "BTCUSD_PERP", "side": "SELL", "type": order_type,
                     "quantity": "1", "stopPrice": "40000"})
    assert answer.status_code == 400
    assert answer.json() == {"code": -4120, "msg": "Order type not supported for this endpoint. "
                             "Please use the Algo Order API endpoints instead."}
    assert market.control.get("/control/journal").text == journal_before


def test_premium_index_klines_follow_the_funding_premium(market: Market) -> None:
    market.prices("60000", "60300")  # perp 0.5 % above the index: a positive premium
    market.advance(HOUR_MS)
    rows = market.control.get("/dapi/v1/premiumIndexKlines",
                              params={"symbol": "BTCUSD_PERP", "interval": "1h",
                                      "startTime": START_MS}).json()
    assert [row[0] for row in rows] == [START_MS, START_MS + HOUR_MS]
    assert all(len(row) == 12 and row[6] == row[0] + HOUR_MS - 1 for row in rows)
    closes = [Decimal(row[4]) for row in rows]
    assert closes[-1] > 0  # the premium the funding rate averages is positive
    bad = market.control.get("/dapi/v1/premiumIndexKlines",
                             params={"symbol": "BTCUSD_PERP", "interval": "7m"})
    assert (bad.status_code, bad.json()["code"]) == (400, -1120)
    missing = market.control.get("/dapi/v1/premiumIndexKlines", params={"interval": "1h"})
    assert missing.json()["code"] == -1102
