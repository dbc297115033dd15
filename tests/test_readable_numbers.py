"""Numbers a person can read, everywhere perpsim writes them (issue 11, point 6).

One short session on a live server touches every kind of amount (a cross and an isolated
position, fills at an average price, resting and stop orders, margin moved in and out, a
transfer, a funding settlement, a liquidation), with raw WebSockets collecting every market
and user stream frame and the dashboard's events. Then every documented GET endpoint (Binance
dialect, control plane, dashboard snapshot), every control-plane answer and the journal are
walked, and no number may be written in exponent form (``0E-8``) or with more decimals than a
venue shows (a 28-digit quotient's tail). The hedge report and a lesson are read as a browser
shows them, under the same rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import websockets
from rich.console import Console
from test_api_account import signed
from test_strategy_results import T0, hand_record

from perpsim.strategy.report import render_report
from perpsim.teach import run_lesson
from perpsim.teach.render import lesson_html, print_lesson

from conftest import Market
from live_market import until

SYMBOL_ID = "BTCUSD_PERP"
STREAM = "btcusd_perp"
HOUR_MS = 3_600_000
# Binance writes coin amounts, mark prices and rates with at most 8 decimals.
MAX_DECIMALS = 8
EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
DECIMAL = re.compile(r"^[-+]?\d+\.(\d+)$")
# Every kind of frame that carries numbers: the session waits until each has come by.
FRAME_KINDS = {
    "aggTrade", "trade", "depthUpdate", "bookTicker", "24hrTicker", "24hrMiniTicker",
    "markPriceUpdate", "indexPriceUpdate", "kline", "markPrice_kline", "indexPrice_kline",
    "continuous_kline", "forceOrder", "ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE", "ALGO_UPDATE",
    "MARGIN_CALL", "events", "tick"}
MARKET_STREAMS = [f"{STREAM}@{name}" for name in (
    "aggTrade", "trade", "markPrice", "markPrice@1s", "depth", "depth5", "bookTicker",
    "ticker", "miniTicker", "forceOrder", "kline_1m", "markPriceKline_1m")] + [
    "btcusd@indexPriceKline_1m", "btcusd_perpetual@continuousKline_1m", "btcusd@indexPrice"]


def unreadable(value: Any, where: str = "$") -> Iterator[str]:
    """Every number (JSON number or numeric string) in ``value`` a person cannot read."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from unreadable(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from unreadable(item, f"{where}[{i}]")
    elif isinstance(value, float):
        yield from unreadable(repr(value), where)
    elif isinstance(value, str):
        match = DECIMAL.match(value)
        if EXPONENT.match(value) or (match and len(match.group(1)) > MAX_DECIMALS):
            yield f"{where} = {value!r}"


def test_unreadable_finds_what_it_must() -> None:
    bad = {"a": "0E-8", "b": ["61457.80000000000000000000000"], "c": 1e-05, "d": "1E+2"}
    good = {"a": "0.00000000", "b": ["61457.8"], "c": 0.5, "d": "100", "e": "BTCUSD_PERP",
            "f": "1e3x"}
    assert len(list(unreadable(bad))) == 4
    assert list(unreadable(good)) == []


class Frames:
    """Raw WebSockets whose every frame is kept, read in the background."""

    def __init__(self) -> None:
        self.frames: list[Any] = []

    def kinds(self) -> set[str]:
        """The event types (``e``, or ``type`` on the dashboard's socket) seen so far."""
        return {x.get("e") or x.get("type") for f in self.frames
                for x in (f if isinstance(f, list) else [f]) if isinstance(x, dict)}

    async def collect(self, ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, asyncio.CancelledError):
            async for message in ws:
                self.frames.append(json.loads(message))


def session(market: Market) -> dict[str, Any]:
    """Run the session; every answer and frame, keyed by where it came from."""
    seen: dict[str, Any] = {}
    ids: dict[str, int] = {}
    trader = market.account({"BTC": "1"})
    victim = market.account({"BTC": "0.01"})

    def call(creds: dict[str, str], method: str, path: str, params: dict[str, Any]) -> Any:
        response = signed(market, creds, method, path, params)
        assert response.status_code == 200, (path, response.text)
        seen[f"{method} {path} {sorted(params)}"] = response.json()
        return response.json()

    def control(path: str, body: dict[str, Any]) -> Any:
        answer = market.post(path, body)
        seen[f"POST /control/{path}"] = answer
        return answer

    async def run() -> Frames:
        frames = Frames()
        key = call(trader, "POST", "/dapi/v1/listenKey", {})["listenKey"]
        victim_key = call(victim, "POST", "/dapi/v1/listenKey", {})["listenKey"]
        async with websockets.connect(f"{market.ws_url}/1") as public, \
                websockets.connect(f"{market.ws_url}/{key}") as user, \
                websockets.connect(f"{market.ws_url}/{victim_key}") as user2, \
                websockets.connect(market.base_url.replace("http", "ws") + "/ui/events") as ui:
            await public.send(json.dumps({"method": "SUBSCRIBE", "id": 1,
                                          "params": [*MARKET_STREAMS, "!markPrice@arr",
                                                     "!miniTicker@arr", "!ticker@arr",
                                                     "!bookTicker", "!forceOrder@arr"]}))
            tasks = [asyncio.create_task(frames.collect(ws))
                     for ws in (public, user, user2, ui)]
            # Every stream is live before anything happens (no fixed sleeps: a busy machine).
            await until(lambda: {"result": None, "id": 1} in frames.frames, "the SUBSCRIBE ack")
            await until(lambda: all(market.user_stream_open(c["account_id"])
                                    for c in (trader, victim)), "the user streams")
            await until(lambda: "hello" in frames.kinds(), "the dashboard socket")
            await asyncio.to_thread(trade)
            await until(lambda: frames.kinds() >= FRAME_KINDS, "every kind of frame", 30)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return frames

    def trade() -> None:
        control("prices", {"symbol": SYMBOL_ID, "index": "61457.83", "perp": "61460.1"})
        call(trader, "POST", "/dapi/v1/marginType", {"symbol": SYMBOL_ID, "marginType": "ISOLATED"})
        call(trader, "POST", "/dapi/v1/order", {"symbol": SYMBOL_ID, "side": "SELL",
                                                "type": "MARKET", "quantity": 307})
        call(trader, "POST", "/dapi/v1/positionMargin", {"symbol": SYMBOL_ID, "amount": "0.0123",
                                                         "type": 1})
        call(trader, "POST", "/dapi/v1/positionMargin", {"symbol": SYMBOL_ID, "amount": "0.001",
                                                         "type": 2})
        ids["order"] = call(trader, "POST", "/dapi/v1/order", {
            "symbol": SYMBOL_ID, "side": "BUY", "type": "LIMIT", "quantity": 3,
            "price": "50000", "timeInForce": "GTC"})["orderId"]
        ids["algo"] = call(trader, "POST", "/dapi/v1/algoOrder", {
            "symbol": SYMBOL_ID, "side": "BUY", "algoType": "CONDITIONAL",
            "type": "STOP_MARKET", "quantity": 5, "triggerPrice": "70000"})["algoId"]
        call(trader, "POST", "/sapi/v1/asset/transfer", {"type": "CMFUTURE_MAIN", "asset": "BTC",
                                                          "amount": "0.1"})
        call(victim, "POST", "/dapi/v1/leverage", {"symbol": SYMBOL_ID, "leverage": 50})
        call(victim, "POST", "/dapi/v1/order", {"symbol": SYMBOL_ID, "side": "BUY",
                                                "type": "MARKET", "quantity": 211})
        control("advance", {"ms": 8 * HOUR_MS})
        control("prices", {"symbol": SYMBOL_ID, "index": "58001.37"})

    frames = asyncio.run(asyncio.wait_for(run(), 60))
    seen["ws frames"] = frames.frames


    params = {"symbol": SYMBOL_ID}
    kline = {"symbol": SYMBOL_ID, "interval": "1m"}
    public_gets: list[tuple[str, dict[str, Any]]] = [
        ("/dapi/v1/time", {}), ("/dapi/v1/exchangeInfo", {}), ("/dapi/v1/depth", params),
        ("/dapi/v1/trades", params), ("/dapi/v1/aggTrades", params),
        ("/dapi/v1/premiumIndex", {}), ("/dapi/v1/fundingRate", params),
        ("/dapi/v1/fundingInfo", {}), ("/dapi/v1/klines", kline),
        ("/dapi/v1/continuousKlines", {"pair": "BTCUSD", "contractType": "PERPETUAL",
                                       "interval": "1m"}),
        ("/dapi/v1/markPriceKlines", kline), ("/dapi/v1/premiumIndexKlines", kline),
        ("/dapi/v1/indexPriceKlines", {"pair": "BTCUSD", "interval": "1m"}),
        ("/dapi/v1/ticker/24hr", {}), ("/dapi/v1/ticker/price", {}),
        ("/dapi/v1/ticker/bookTicker", {}), ("/dapi/v1/openInterest", params),
    ]
    stats = {"pair": "BTCUSD", "period": "5m"}
    public_gets += [("/dapi/v1/ping", {}), ("/api/v3/ping", {}), ("/api/v3/time", {}),
                    ("/sapi/v1/system/status", {}),
                    ("/futures/data/openInterestHist", {**stats, "contractType": "ALL"}),
                    ("/futures/data/topLongShortAccountRatio", stats),
                    ("/futures/data/topLongShortPositionRatio", stats),
                    ("/futures/data/globalLongShortAccountRatio", stats),
                    ("/futures/data/takerBuySellVol", {**stats, "contractType": "ALL"}),
                    ("/futures/data/basis", {**stats, "contractType": "PERPETUAL"})]
    for path, query in public_gets:
        response = market.control.get(path, params=query)
        assert response.status_code == 200, (path, response.text)
        seen[f"GET {path}"] = response.json()
    signed_gets: list[tuple[str, dict[str, Any]]] = [
        ("/dapi/v1/historicalTrades", params), ("/dapi/v1/openOrders", {}),
        ("/dapi/v1/allOrders", params), ("/dapi/v1/openAlgoOrders", {}),
        ("/dapi/v1/allAlgoOrders", params), ("/dapi/v1/userTrades", params),
        ("/dapi/v1/account", {}), ("/dapi/v1/balance", {}), ("/dapi/v1/positionRisk", {}),
        ("/dapi/v2/leverageBracket", {}), ("/dapi/v1/leverageBracket", {}),
        ("/dapi/v1/positionMargin/history", params), ("/dapi/v1/income", {}),
        ("/dapi/v1/commissionRate", params), ("/dapi/v1/positionSide/dual", {}),
        ("/api/v3/account", {}),
    ]
    trader_only: list[tuple[str, dict[str, Any]]] = [
        ("/dapi/v1/order", {**params, "orderId": ids["order"]}),
        ("/dapi/v1/openOrder", {**params, "orderId": ids["order"]}),
        ("/dapi/v1/algoOrder", {"algoId": ids["algo"]}),
    ]
    for path, query in trader_only:
        response = signed(market, trader, "GET", path, query)
        assert response.status_code == 200, (path, response.text)
        seen[f"GET {path}"] = response.json()
    for creds in (trader, victim):
        for path, query in signed_gets:
            response = signed(market, creds, "GET", path, query)
            assert response.status_code == 200, (path, response.text)
            seen[f"GET {path} {creds['account_id']}"] = response.json()
    for path in ("state", f"accounts/{trader['account_id']}",
                 f"accounts/{victim['account_id']}", "faults", "record", "health"):
        response = market.control.get(f"/control/{path}")
        assert response.status_code == 200, (path, response.text)
        seen[f"GET /control/{path}"] = response.json()
    seen["journal"] = [json.loads(line) for line in
                       market.control.get("/control/journal").text.splitlines()]
    seen["GET /ui/api/snapshot"] = market.control.get("/ui/api/snapshot").json()
    seen["GET /ui/api/cascade"] = market.control.get("/ui/api/cascade").json()
    bybit = {"category": "inverse", "symbol": SYMBOL_ID, "interval": "1"}
    for name in ("funding/history", "index-price-kline", "instruments-info", "kline",
                 "mark-price-kline", "orderbook", "recent-trade", "risk-limit", "tickers",
                 "time"):
        answer = market.control.get(f"/v5/market/{name}", params=bybit).json()
        assert answer["retCode"] == 0, (name, answer)
        seen[f"GET /v5/market/{name}"] = answer
    walked = {key.split()[1] for key in seen if key.startswith("GET ")} | {
        "/control/journal", "/control/accounts/{account_id}"}
    missing = sorted(json_get_paths(market) - walked)
    assert not missing, f"walk these endpoints too: {missing}"
    return seen


def json_get_paths(market: Market) -> set[str]:
    """Every GET endpoint the server documents, but the dashboard's page and its static files."""
    spec = market.control.get("/openapi.json").json()
    return {path for path, ops in spec["paths"].items()
            if "get" in ops and not (path == "/ui" or path.startswith("/ui/static/"))
            and not _bybit_private(path)}


def _bybit_private(path: str) -> bool:
    # Not walked yet: the Bybit v5 private endpoints (they need Bybit's X-BAPI signing and a
    # session of their own); the Bybit dialect's public market data is walked above.
    return path.startswith("/v5/") and not path.startswith("/v5/market/")


def test_every_endpoint_writes_readable_numbers(market: Market) -> None:
    seen = session(market)
    bad = [f"{source}: {problem}" for source, answer in seen.items()
           for problem in unreadable(answer)]
    assert bad == [], "\n".join(bad)


# ---- the HTML a person reads: the hedge report and a lesson ---------------------------------

TAG = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.DOTALL | re.IGNORECASE)


def unreadable_text(document: str) -> list[str]:
    """The unreadable numbers in what a browser shows of ``document`` (tags and scripts out:
    the charts' data is plotly's to format; a div id is no number)."""
    text = html.unescape(TAG.sub(" ", document))
    tokens = re.split(r"[\s,;=()\[\]{}<>|…→·:$%]+", text)
    return [problem for token in tokens for problem in unreadable(token.rstrip("."))]


def test_the_report_writes_readable_numbers() -> None:
    record = hand_record(with_fills=True)
    record.plan["liquidation_price_usd"] = D(200000) / D(3)  # a 28-digit quotient
    record.event(T0, "fill", side="sell", contracts=3, price=D("61460.00000000000000000000000"),
                 fee=1e-05, realized=D("0E-8"))
    document = render_report(record, scenario="hand", profile="binance_coinm", seed=0)
    assert unreadable_text(document) == []
    assert "66666.66666667" in document
    assert "fee=0.00001" in document
    assert "realized=0.00000000" in document
    assert "price=61460," in document


def test_a_lesson_writes_readable_numbers() -> None:
    lesson = run_lesson("inverse-pnl")  # its numbers are quotients: 1 / 60000 and the like
    assert unreadable_text(lesson_html(lesson)) == []
    console = Console(record=True, width=120)
    print_lesson(lesson, console)
    assert unreadable_text(console.export_text()) == []
