"""The Bybit v5 dialect's refusals, in-process: signing (X-BAPI-*), parameters, categories and
triggers answer Bybit's retCodes with HTTP 200, name the problem, and change nothing; the
WebSocket ops refuse unknown topics, private topics before auth and a bad auth signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect

from perpsim.api.app import create_app
from perpsim.api.state import ServerConfig, ServerState

from api_helpers import AsgiClient
from live_market import START, Market


class Signed:
    """A hand-rolled v5 client: signs exactly what it sends, as ccxt and pybit do."""

    def __init__(self, client: AsgiClient, key: str, secret: str) -> None:
        self.client, self.key, self.secret = client, key, secret

    def headers(self, payload: str, *, ts: int | None = None, window: str = "5000",
                secret: str | None = None) -> dict[str, str]:
        stamp = str(ts if ts is not None else int(time.time() * 1000))
        sign = hmac.new((secret or self.secret).encode(),
                        (stamp + self.key + window + payload).encode(),
                        hashlib.sha256).hexdigest()
        return {"X-BAPI-API-KEY": self.key, "X-BAPI-TIMESTAMP": stamp,
                "X-BAPI-RECV-WINDOW": window, "X-BAPI-SIGN": sign}

    def get(self, path: str, query: str, **kw: Any) -> dict[str, Any]:
        answer = self.client.get(f"{path}?{query}", headers=self.headers(query, **kw))
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    def post(self, path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        text = json.dumps(body)
        answer = self.client.post(path, content=text, headers={
            **self.headers(text, **kw), "content-type": "application/json"})
        assert answer.status_code == 200
        result: dict[str, Any] = answer.json()
        return result


@pytest.fixture
def bybit() -> Signed:
    state = ServerState(ServerConfig(profile="bybit_inverse", start=START))
    client = AsgiClient(create_app(state=state))
    creds = client.post("/control/accounts", json={"balances": {"BTC": "1"}}).json()
    return Signed(client, creds["api_key"], creds["api_secret"])


def _orders(bybit: Signed) -> int:
    return len(bybit.get("/v5/order/history", "category=inverse")["result"]["list"])


def test_signing_failures_are_bybits_codes(bybit: Signed) -> None:
    assert bybit.get("/v5/position/list", "category=inverse&symbol=BTCUSD")["retCode"] == 0
    wrong = bybit.get("/v5/position/list", "category=inverse", secret="x" * 64)
    assert (wrong["retCode"], wrong["retMsg"][:11]) == (10004, "error sign!")
    stale = bybit.get("/v5/position/list", "category=inverse",
                      ts=int(time.time() * 1000) - 60_000)
    assert stale["retCode"] == 10002
    assert "recvWindow" in stale["retMsg"] or "ms old" in stale["retMsg"]
    # A client that synced its clock to /v5/market/time (simulated time) is fresh too.
    synced = bybit.client.get("/v5/market/time").json()["time"]
    assert bybit.get("/v5/position/list", "category=inverse", ts=synced)["retCode"] == 0
    huge = bybit.get("/v5/position/list", "category=inverse", window="600000")
    assert huge["retCode"] == 10001
    unsigned = bybit.client.get("/v5/position/list?category=inverse").json()
    assert (unsigned["retCode"], unsigned["retMsg"]) == (10003, "API key is invalid.")
    # A body changed after signing is a bad signature and places nothing.
    text = json.dumps({"category": "inverse", "symbol": "BTCUSD", "side": "Sell",
                       "orderType": "Market", "qty": "10"})
    headers = {**bybit.headers(text), "content-type": "application/json"}
    tampered = bybit.client.post("/v5/order/create", content=text.replace("10", "99"),
                                 headers=headers).json()
    assert tampered["retCode"] == 10004
    assert _orders(bybit) == 0


@pytest.mark.parametrize(("body", "code", "words"), [
    ({"symbol": "NOPE"}, 10001, "NOPE"),
    ({"category": "linear"}, 10001, "category 'linear'"),
    ({"qty": None}, 10001, "qty is required"),
    ({"qty": "ten"}, 10001, "qty must be a decimal"),
    ({"side": "Short"}, 10001, "side must be one of Buy, Sell"),
    ({"orderType": "Limit"}, 10001, "price is required"),
    ({"timeInForce": "GTX", "orderType": "Limit", "price": "60000"}, 10001, "timeInForce"),
    ({"qty": "1.5"}, 10001, "whole"),
    ({"reduceOnly": True}, 110017, "reduce-only"),
    ({"qty": "100000000"}, 10001, ""),
    ({"triggerPrice": "70000", "triggerDirection": 2}, 110093, "expect Falling"),  # 60,000 now
    ({"triggerPrice": "50000", "triggerDirection": 1}, 110092, "expect Rising"),
    ({"triggerPrice": "70000"}, 10001, "triggerDirection is required"),
    ({"triggerPrice": "70000", "triggerDirection": 1, "triggerBy": "IndexPrice"}, 10001,
     "triggerBy"),
])
def test_a_refused_order_names_the_problem_and_changes_nothing(
        bybit: Signed, body: dict[str, Any], code: int, words: str) -> None:
    order = {"category": "inverse", "symbol": "BTCUSD", "side": "Buy", "orderType": "Market",
             "qty": "10", **body}
    answer = bybit.post("/v5/order/create", {k: v for k, v in order.items() if v is not None})
    assert answer["retCode"] == code, answer
    assert words in answer["retMsg"]
    assert _orders(bybit) == 0


def test_other_categories_list_nothing_and_unknown_ones_are_refused(bybit: Signed) -> None:
    for path in ("/v5/position/list", "/v5/order/realtime", "/v5/execution/list"):
        assert bybit.get(path, "category=linear")["result"]["list"] == []
        assert bybit.get(path, "category=futures")["retCode"] == 10001
    market = bybit.client.get("/v5/market/instruments-info?category=spot").json()
    assert market["result"]["list"] == []


def test_cursor_pages_through_executions(bybit: Signed) -> None:
    for _ in range(3):
        placed = bybit.post("/v5/order/create", {"category": "inverse", "symbol": "BTCUSD",
                                                 "side": "Buy", "orderType": "Market",
                                                 "qty": "10"})
        assert placed["retCode"] == 0
    first = bybit.get("/v5/execution/list", "category=inverse&limit=2")["result"]
    assert len(first["list"]) == 2
    rest = bybit.get("/v5/execution/list",
                     f"category=inverse&limit=2&cursor={first['nextPageCursor']}")["result"]
    assert (len(rest["list"]), rest["nextPageCursor"]) == (1, "")
    assert bybit.get("/v5/execution/list", "category=inverse&cursor=abc")["retCode"] == 10001


def test_websocket_ops_refuse_what_bybit_refuses(bybit_market: Market) -> None:
    bybit_market.post("reset", {"profile": "bybit_inverse", "scenario": "manual", "seed": 0,
                                "start": START, "clock": "stepped", "speed": 1.0})
    creds = bybit_market.account({"BTC": "1"})
    ws_base = bybit_market.base_url.replace("http://", "ws://")
    with ws_connect(ws_base + "/v5/public/inverse", open_timeout=10) as ws:
        ws.send(json.dumps({"op": "subscribe", "req_id": "1", "args": ["tickers.NOPE"]}))
        refused = json.loads(ws.recv(timeout=10))
        assert (refused["success"], refused["req_id"]) == (False, "1")
        assert "NOPE" in refused["ret_msg"]
        ws.send(json.dumps({"op": "ping", "req_id": "2"}))
        pong = json.loads(ws.recv(timeout=10))
        assert (pong["op"], pong["ret_msg"], pong["req_id"]) == ("ping", "pong", "2")
    with ws_connect(ws_base + "/v5/private", open_timeout=10) as ws:
        ws.send(json.dumps({"op": "subscribe", "args": ["order"]}))
        assert json.loads(ws.recv(timeout=10))["success"] is False  # not authenticated
        expires = str(int(time.time() * 1000) + 10_000)
        bad = hmac.new(b"wrong", ("GET/realtime" + expires).encode(), hashlib.sha256)
        ws.send(json.dumps({"op": "auth", "args": [creds["api_key"], expires,
                                                   bad.hexdigest()]}))
        denied = json.loads(ws.recv(timeout=10))
        assert (denied["op"], denied["success"], denied["retCode"]) == ("auth", False, 10004)
        good = hmac.new(creds["api_secret"].encode(), ("GET/realtime" + expires).encode(),
                        hashlib.sha256)
        ws.send(json.dumps({"op": "auth", "args": [creds["api_key"], expires,
                                                   good.hexdigest()]}))
        assert json.loads(ws.recv(timeout=10))["success"] is True
        ws.send(json.dumps({"op": "subscribe", "args": ["order", "nope"]}))
        assert json.loads(ws.recv(timeout=10))["success"] is False
        ws.send(json.dumps({"op": "ping", "req_id": "p"}))
        assert json.loads(ws.recv(timeout=10))["op"] == "pong"


def test_an_unexpected_error_breaks_the_market_and_v5_says_so(
        bybit: Signed, monkeypatch: pytest.MonkeyPatch) -> None:
    from perpsim.sim import trading

    def explode(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("simulated bug in trading")

    monkeypatch.setattr(trading, "place_order", explode)
    answer = bybit.post("/v5/order/create", {"category": "inverse", "symbol": "BTCUSD",
                                             "side": "Buy", "orderType": "Market", "qty": "1"})
    assert (answer["retCode"], answer["retMsg"]) == (10016, "Internal server error.")
    later = bybit.client.get("/v5/market/time")
    assert later.status_code == 503
    assert later.json()["retCode"] == 10016
    assert "simulated bug in trading" in later.json()["retMsg"]
    assert bybit.client.get("/control/health").json()["status"] == "broken"


def test_every_refusal_of_the_engine_has_a_bybit_code() -> None:
    import inspect as inspect_module

    from perpsim.api.bybit_v5.errors import INTERNAL_ERROR, ret_code_of
    from perpsim.sim import errors

    server_faults = (errors.LedgerError, errors.ProfileError, errors.ScenarioError)
    refusals = [cls for _, cls in inspect_module.getmembers(errors, inspect_module.isclass)
                if issubclass(cls, errors.PerpsimError) and cls is not errors.PerpsimError
                and not issubclass(cls, server_faults)]
    assert len(refusals) > 15
    unmapped = [cls.__name__ for cls in refusals if ret_code_of(cls("x"))[0] == INTERNAL_ERROR]
    assert unmapped == []
    assert ret_code_of(errors.PositionTooLargeForLeverage("x"))[0] == 110016


def _liquidated_long(market: Market) -> None:
    """A fresh account goes 50x long and the price falls through its liquidation."""
    from perpsim.strategy.connect_bybit import connect_bybit

    creds = market.account({"BTC": "1"})
    ex = connect_bybit(market.base_url, creds["api_key"], creds["api_secret"])
    ex.set_margin_mode("isolated", "BTC/USD:BTC", {"leverage": 50})
    ex.create_order("BTC/USD:BTC", "market", "buy", 6000)
    market.prices("50000", "50000", "BTCUSD")
    market.advance(60_000)


def test_streams_survive_a_reset_with_a_fresh_snapshot(bybit_market: Market) -> None:
    reset = {"profile": "bybit_inverse", "scenario": "manual", "seed": 0, "start": START,
             "clock": "stepped", "speed": 1.0}
    bybit_market.post("reset", reset)
    ws_base = bybit_market.base_url.replace("http://", "ws://")
    with ws_connect(ws_base + "/v5/public/inverse", open_timeout=10) as ws:
        ws.send(json.dumps({"op": "subscribe", "req_id": "s",
                            "args": ["tickers.BTCUSD", "allLiquidation.BTCUSD"]}))
        frames = [json.loads(ws.recv(timeout=10)) for _ in range(2)]  # ack, ticker snapshot
        assert (frames[0]["success"], frames[1]["type"]) == (True, "snapshot")

        def next_frame(topic: str) -> dict[str, Any]:
            while True:
                frame = json.loads(ws.recv(timeout=10))
                if frame.get("topic") == topic:
                    return frame

        _liquidated_long(bybit_market)
        assert next_frame("allLiquidation.BTCUSD")["data"][0]["S"] == "Buy"
        bybit_market.post("reset", reset)
        assert next_frame("tickers.BTCUSD")["type"] == "snapshot"
        _liquidated_long(bybit_market)  # the new market's journal counts from 1 again
        assert next_frame("allLiquidation.BTCUSD")["data"][0]["v"] == "6000"


def test_closed_pnl_recovers_entry_and_exit_exactly(bybit_market: Market) -> None:
    from decimal import Decimal

    from perpsim.strategy.connect_bybit import connect_bybit

    bybit_market.post("reset", {"profile": "bybit_inverse", "scenario": "manual", "seed": 0,
                                "start": START, "clock": "stepped", "speed": 1.0})
    creds = bybit_market.account({"BTC": "1"})
    ex = connect_bybit(bybit_market.base_url, creds["api_key"], creds["api_secret"])
    ex.create_order("BTC/USD:BTC", "market", "buy", 3000)
    bybit_market.prices("66000", "66000", "BTCUSD")
    ex.create_order("BTC/USD:BTC", "market", "sell", 1000)  # closes a third
    (row,) = ex.fetch_positions_history(["BTC/USD:BTC"])
    info = row["info"]
    fills = {t["order"]: t for t in ex.fetch_my_trades("BTC/USD:BTC")}
    entry, exit_ = (Decimal(str(t["price"])) for t in fills.values())
    assert (info["closedSize"], Decimal(info["avgEntryPrice"]), Decimal(info["avgExitPrice"])) \
        == ("1000", entry, exit_)
    gross = Decimal(1000) / entry - Decimal(1000) / exit_
    fee = Decimal(str(fills[info["orderId"]]["fee"]["cost"]))
    assert Decimal(info["closedPnl"]) == (gross - fee).quantize(Decimal("1e-8"))
    assert row["side"] == "long"  # ccxt reads a history row's Sell as a closed long


def test_a_servers_stream_hub_does_not_keep_it_alive() -> None:
    import gc
    import weakref

    from perpsim.api.bybit_v5.streams import hub_for

    state = ServerState(ServerConfig(profile="bybit_inverse", start=START))
    hub_for(state)
    gone = weakref.ref(state)
    del state
    gc.collect()
    assert gone() is None
