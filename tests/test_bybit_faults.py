"""Injected faults on the Bybit v5 paths answer as Bybit does: X-Bapi-Limit-* headers, retCode
10006 over the budget, HTTP 403 once banned, the rule's retCode for an order reject, 10016 in
a 5xx; and ccxt.bybit raises what it raises on Bybit."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import httpx
import pytest

from perpsim.strategy.connect_bybit import connect_bybit

from live_market import START, Market

SYMBOL = "BTC/USD:BTC"


@pytest.fixture
def fresh(bybit_market: Market) -> Iterator[dict[str, str]]:
    bybit_market.post("reset", {"profile": "bybit_inverse", "scenario": "manual", "seed": 0,
                                "start": START, "clock": "stepped", "speed": 1.0})
    yield bybit_market.account({"BTC": "1"})
    bybit_market.control.delete("/control/faults")


def _fault(market: Market, **spec: object) -> None:
    response = market.control.post("/control/faults", json=spec)
    assert response.status_code < 300, response.text


def test_a_rate_limit_counts_down_then_answers_10006_then_bans(
        bybit_market: Market, fresh: dict[str, str]) -> None:
    ex = connect_bybit(bybit_market.base_url, fresh["api_key"], fresh["api_secret"])
    ex.load_markets()
    _fault(bybit_market, kind="rate_limit", path="/v5/market/*", limit=2, interval_ms=3_600_000,
           ban_after=1)
    url = bybit_market.base_url + "/v5/market/time"
    first, second = httpx.get(url), httpx.get(url)
    assert [r.headers["X-Bapi-Limit-Status"] for r in (first, second)] == ["1", "0"]
    assert first.headers["X-Bapi-Limit"] == "2"
    assert int(first.headers["X-Bapi-Limit-Reset-Timestamp"]) > 0
    over = httpx.get(url)
    assert (over.status_code, over.json()["retCode"]) == (200, 10006)
    assert over.headers["X-Bapi-Limit-Status"] == "0"
    with pytest.raises(ccxt.RateLimitExceeded):  # sent while told to wait: banned, HTTP 403
        ex.fetch_time()
    banned = httpx.get(url)
    assert (banned.status_code, banned.text) == (403, "access too frequent")
    # The control plane is never limited; other v5 paths are not under this rule.
    assert bybit_market.control.get("/control/state").status_code == 200
    assert ex.fetch_positions([SYMBOL])[0]["contracts"] == 0


def test_an_order_reject_carries_the_rules_retcode(bybit_market: Market,
                                                   fresh: dict[str, str]) -> None:
    _fault(bybit_market, kind="order_reject", path="/v5/order/create", code=110007,
           msg="ab not enough for new order", count=1)
    ex = connect_bybit(bybit_market.base_url, fresh["api_key"], fresh["api_secret"])
    with pytest.raises(ccxt.InsufficientFunds, match="110007"):
        ex.create_order(SYMBOL, "market", "sell", 100)
    ex.create_order(SYMBOL, "market", "sell", 100)  # count=1: the next one goes through
    assert ex.fetch_positions([SYMBOL])[0]["contracts"] == 100


def test_a_5xx_keeps_its_status_with_bybits_envelope(bybit_market: Market,
                                                     fresh: dict[str, str]) -> None:
    _fault(bybit_market, kind="http_5xx", status=500, path="/v5/position/list", count=1)
    answer = httpx.get(bybit_market.base_url + "/v5/position/list")
    assert answer.status_code == 500
    assert answer.json()["retCode"] == 10016
    ex = connect_bybit(bybit_market.base_url, fresh["api_key"], fresh["api_secret"])
    assert ex.fetch_positions([SYMBOL])[0]["contracts"] == 0  # count=1: spent above
