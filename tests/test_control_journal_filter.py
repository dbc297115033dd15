"""``GET /control/journal?types=a,b&account_id=N``: the server filters the journal."""

from __future__ import annotations

import json
from typing import Any

from test_api_account import signed

from conftest import Market

HOUR_MS = 3_600_000


def lines(market: Market, **params: Any) -> list[dict[str, Any]]:
    response = market.control.get("/control/journal", params=params)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def test_types_and_account_filter_on_the_server(market: Market) -> None:
    alice, bob = market.account(), market.account()
    market.prices("60000", "60060")
    for creds in (alice, bob):
        order = signed(market, creds, "POST", "/dapi/v1/order",
                       {"symbol": "BTCUSD_PERP", "side": "SELL", "type": "MARKET", "quantity": 100})
        assert order.status_code == 200, order.text
    market.advance(8 * HOUR_MS)
    everything = lines(market)
    payments = [e for e in everything if e["type"] == "funding.payment"]
    assert len(payments) == 2
    assert lines(market, types="funding.payment") == payments
    both = lines(market, types="funding.payment, funding.settled")
    assert both == [e for e in everything if e["type"] in ("funding.payment", "funding.settled")]
    assert {e["type"] for e in both} == {"funding.payment", "funding.settled"}
    alices = lines(market, account_id=alice["account_id"])
    assert alices == [e for e in everything
                      if e["payload"].get("account_id") == alice["account_id"]]
    assert "order.update" in {e["type"] for e in alices}
    (paid,) = lines(market, types="funding.payment", account_id=bob["account_id"])
    assert paid["payload"]["account_id"] == bob["account_id"]
    # One settlement is one journal record: its payments carry its seq, so ``since`` takes
    # all of them or none.
    since = payments[0]["seq"]
    assert payments[1]["seq"] == since
    assert lines(market, types="funding.payment", since=since - 1) == payments
    assert lines(market, types="funding.payment", since=since) == []


def test_bad_filters_are_named_and_change_nothing(market: Market) -> None:
    market.account()
    before = market.control.get("/control/journal").text
    unknown = market.control.get("/control/journal", params={"account_id": "999"})
    assert unknown.status_code == 404
    assert "999" in unknown.json()["message"]
    for bad in ("funding.payment,,margin.call", "Funding", "a b"):
        answer = market.control.get("/control/journal", params={"types": bad})
        assert answer.status_code == 400, bad
        assert "types" in answer.json()["message"]
    assert market.control.get("/control/journal").text == before
