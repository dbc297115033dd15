"""The dashboard's routes (api/ui/): the page, its offline JavaScript, the snapshot, the socket.

All against the live session server (the ``market`` fixture); positions are opened with the
real ccxt client over HTTP, as a user would. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Coroutine
from decimal import Decimal
from importlib import resources
from typing import Any, TypeVar

import websockets
from plotly.offline import get_plotlyjs

from perpsim.api.ui import hub as ui_hub
from perpsim.sim import market_data, risk
from perpsim.sim.cascade_record import cascade_record
from perpsim.sim.journal import Event
from perpsim.strategy.connect import connect

from conftest import START_MS, Market

SYMBOL = "BTC/USD:BTC"
MARKET_ID = "BTCUSD_PERP"
HOUR_MS = 3_600_000
WAIT_S = 5.0
T = TypeVar("T")


def shown(value: Decimal | None) -> Decimal | None:
    """``value`` rounded half-even to 8 decimals, as the dashboard writes it."""
    return None if value is None else value.quantize(Decimal("1e-8"))


def open_position(market: Market, side: str, contracts: int, leverage: int,
                  balance: str = "0.01") -> dict[str, str]:
    """A new account holding a cross position, opened through real ccxt."""
    creds = market.account({"BTC": balance})
    client = connect(market.base_url, creds["api_key"], creds["api_secret"])
    client.set_leverage(leverage, SYMBOL)
    client.create_order(SYMBOL, "market", side, contracts)
    return creds


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 20.0) -> T:
    """Run a test coroutine on a fresh loop, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


# ---- the page and its static files -------------------------------------------------------------


def test_the_page_is_served_with_its_controls(market: Market) -> None:
    page = market.control.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    for element in ("chart", "positions", "timeline", "funding-countdown", "insurance-fund",
                    "shock-price", "shock-apply", "advance-1h", "ws-status"):
        assert f'id="{element}"' in html, element
    sources = [s for s in re.findall(r'(?:src|href)="([^"]+)"', html) if s != "data:,"]
    assert sorted(sources) == ["/ui/static/dashboard.css", "/ui/static/dashboard.js",
                               "/ui/static/plotly.min.js"]
    for path in sources:
        response = market.control.get(path)
        assert response.status_code == 200, path
    assert market.control.get("/ui/static/dashboard.css").headers["content-type"].startswith(
        "text/css")
    assert market.control.get("/ui/static/dashboard.js").headers["content-type"].startswith(
        "text/javascript")


def test_nothing_is_loaded_from_the_network(market: Market) -> None:
    static = resources.files("perpsim.api.ui").joinpath("static")
    names = sorted(f.name for f in static.iterdir() if f.is_file())
    assert {"dashboard.html", "dashboard.js", "dashboard.css", "charts.js"} <= set(names)
    js = "".join(static.joinpath(n).read_text("utf-8") for n in names if n.endswith(".js"))
    imported = set(re.findall(r'from "\./([\w.]+)"', js))
    assert imported <= set(names), imported - set(names)  # every module the page imports ships
    for name in names:
        served = market.control.get("/ui" if name.endswith(".html") else f"/ui/static/{name}")
        assert served.status_code == 200, name
        packaged = resources.files("perpsim.api.ui").joinpath("static", name).read_text("utf-8")
        assert served.text == packaged  # what ships in the package is what is served
        assert not re.search(r"https?://|//cdn|@import|url\(", packaged, re.IGNORECASE), name
    js = market.control.get("/ui/static/dashboard.js").text
    # Every URL the script fetches or opens is on the server it came from.
    assert set(re.findall(r"fetch\(`([^`?$]+)", js)) == {"/ui/api/snapshot", "/control/"}
    assert "${location.host}/ui/events" in js


def test_plotly_is_served_from_the_installed_package(market: Market) -> None:
    response = market.control.get("/ui/static/plotly.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.text == get_plotlyjs()
    assert response.text.lstrip().startswith("/**\n* plotly.js v")
    again = market.control.get("/ui/static/plotly.min.js")
    assert again.headers["etag"] == response.headers["etag"]


def test_only_the_dashboard_files_are_static(market: Market) -> None:
    for path in ("/ui/static/hub.py", "/ui/static/..%2Froutes.py", "/ui/static/dashboard.htm"):
        assert market.control.get(path).status_code == 404, path


# ---- the snapshot ----------------------------------------------------------------------------


def test_snapshot_holds_what_the_page_shows(market: Market) -> None:
    long = open_position(market, "buy", 100, 20)
    short = open_position(market, "sell", 100, 5, balance="0.05")
    market.advance(9 * HOUR_MS)  # past the 08:00 funding
    body = market.control.get("/ui/api/snapshot").json()
    ex = market.state.exchange
    assert body["now"] == START_MS + 9 * HOUR_MS == ex.now_ms
    assert (body["clock"], body["scenario"], body["manual"]) == ("stepped", "manual", True)
    assert body["default_symbol"] == MARKET_ID
    row = body["symbols"][MARKET_ID]
    assert row["index"] == "60000"
    assert Decimal(row["mark"]) == ex.mark_price(MARKET_ID)
    assert row["next_funding_time"] == START_MS + 16 * HOUR_MS
    assert row["funding_history"] == [{"time": t, "rate": format(r, "f")}
                                      for t, r in ex.states[MARKET_ID].funding_history]
    assert len(row["funding_history"]) == 1
    assert body["insurance_fund"]["BTC"] == market.control.get(
        "/control/state").json()["insurance_fund"]["BTC"]
    assert body["accounts_total"] == 2
    by_id = {a["account_id"]: a for a in body["accounts"]}
    for creds, sign in ((long, 1), (short, -1)):
        aid = creds["account_id"]
        (pos,) = by_id[aid]["positions"]
        view = risk.position_risk(ex, aid, MARKET_ID)
        assert pos["contracts"] == sign * 100 == view.qty_contracts
        # the engine's numbers as the venue shows them: 8 decimals at most
        assert Decimal(pos["entry_price"]) == shown(view.entry_price_usd)
        assert Decimal(pos["liquidation_price"]) == shown(view.liquidation_price_usd)
        assert Decimal(pos["bankruptcy_price"]) == shown(view.bankruptcy_price_usd)
        assert Decimal(pos["margin_ratio"]) == shown(view.margin_ratio)
        # the same numbers as the control plane's account view
        assert pos == market.control.get(f"/control/accounts/{aid}").json()["positions"][0]
    types = [e["type"] for e in body["events"]]
    assert "funding.settled" in types
    assert "order.update" in types
    assert body["last_seq"] == len(ex.journal) == body["events"][-1]["seq"]


def test_snapshot_history_is_the_engines_candles(market: Market) -> None:
    market.prices("61000")
    market.advance(2 * HOUR_MS)
    market.prices("59000", "59010")
    body = market.control.get("/ui/api/snapshot").json()
    history = body["history"]
    ex = market.state.exchange
    assert (history["symbol"], history["interval"]) == (MARKET_ID, "1m")
    assert len(history["open_time"]) == 121 == len(history["close_time"])
    assert history["open_time"][0] == START_MS
    for kind in ("index", "mark", "last"):
        bars = market_data.candles(ex, MARKET_ID, "1m", kind, start_ms=START_MS, limit=300)
        assert history[kind] == [format(b.close, "f") for b in bars]
    assert Decimal(history["index"][0]) == 61000
    assert Decimal(history["index"][-1]) == 59000
    assert Decimal(history["last"][-1]) == ex.last_price(MARKET_ID)
    light = market.control.get("/ui/api/snapshot", params={"history": "false"}).json()
    assert "history" not in light
    eth = market.control.get("/ui/api/snapshot", params={"symbol": "ETHUSD_PERP"}).json()
    assert eth["history"]["symbol"] == "ETHUSD_PERP"
    assert market.control.get("/ui/api/snapshot", params={"symbol": "NOPE"}).status_code in (
        400, 404)


def test_history_interval_keeps_the_chart_bounded(market: Market) -> None:
    market.advance(30 * 24 * HOUR_MS)
    history = market.control.get("/ui/api/snapshot").json()["history"]
    assert history["interval"] == "4h"
    assert 150 < len(history["index"]) <= 300


# ---- the event socket ------------------------------------------------------------------------


class Feed:
    """A raw client of ``/ui/events``."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def next(self, kind: str, timeout_s: float = WAIT_S) -> dict[str, Any]:
        """The next message of type ``kind`` (others are skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {kind!r} message within {timeout_s}s")
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            if message["type"] == kind:
                return message

    async def events_until(self, wanted: str, timeout_s: float = WAIT_S) -> list[dict[str, Any]]:
        """Streamed events up to and including the first of type ``wanted``."""
        got: list[dict[str, Any]] = []
        while not any(e["type"] == wanted for e in got):
            got.extend((await self.next("events", timeout_s))["events"])
        return got


def _feed(market: Market) -> Any:
    url = market.base_url.replace("http://", "ws://") + "/ui/events"
    return websockets.connect(url, open_timeout=WAIT_S, close_timeout=1)


def test_events_socket_streams_a_liquidation(market: Market) -> None:
    victim = open_position(market, "buy", 100, 20)
    aid = victim["account_id"]
    seq_before = len(market.state.exchange.journal)

    async def scenario() -> None:
        async with _feed(market) as ws:
            feed = Feed(ws)
            hello = await feed.next("hello")
            assert (hello["now"], hello["last_seq"]) == (START_MS, seq_before)
            tick = await feed.next("tick")
            assert tick["symbols"][MARKET_ID]["index"] == "60000"
            answer = await asyncio.to_thread(market.prices, "56000")
            events = await feed.events_until("liquidation.completed")
            assert events == answer["events"]  # the same events, in journal order
            assert events[0]["seq"] == seq_before + 1
            (takeover,) = [e for e in events if e["type"] == "liquidation.takeover"]
            assert (takeover["account_id"], takeover["qty"]) == (aid, 100)
            tick = await feed.next("tick")
            assert tick["symbols"][MARKET_ID]["index"] == "56000"
            assert tick["insurance_fund"] == market.control.get(
                "/control/state").json()["insurance_fund"]
    run(scenario())


def test_events_socket_follows_time_resets_and_other_threads(market: Market) -> None:
    async def scenario() -> None:
        async with _feed(market) as ws:
            feed = Feed(ws)
            await feed.next("hello")
            await asyncio.to_thread(market.advance, 8 * HOUR_MS)
            events = await feed.events_until("funding.settled")
            assert events[-1]["time"] == START_MS + 8 * HOUR_MS
            assert (await feed.next("tick"))["now"] == START_MS + 8 * HOUR_MS
            # The engine driven from another thread: delivered through the loop, in order.
            await asyncio.to_thread(market.state.exchange.set_prices, MARKET_ID, "61000")
            (moved,) = await feed.events_until("prices.set")
            assert moved["index"] == "61000"
            await asyncio.to_thread(market.post, "reset", {"scenario": "manual"})
            assert (await feed.next("reset"))["now"] == START_MS
    run(scenario())


def test_a_page_that_falls_behind_is_told_to_resync() -> None:
    client = ui_hub.UiClient()
    event = Event(1, START_MS, "prices.set", {})
    for _ in range(ui_hub.MAX_PENDING):
        client.push(event)
    assert not client.overflowed
    assert len(client.pending) == ui_hub.MAX_PENDING
    client.push(event)
    assert client.overflowed
    assert not client.pending
    client.push(event)
    assert not client.pending


# ---- the cascade view --------------------------------------------------------------------------


def test_the_page_carries_the_cascade_view(market: Market) -> None:
    html = market.control.get("/ui").text
    for element in ("cascade-card", "cascade-chart", "cascade-depth", "cascade-summary",
                    "cascade-book"):
        assert f'id="{element}"' in html, element
    assert 'import { refreshCascade } from "./cascade.js";' in market.control.get(
        "/ui/static/dashboard.js").text
    js = market.control.get("/ui/static/cascade.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert set(re.findall(r"fetch\(`([^`?$]+)", js.text)) == {"/ui/api/cascade"}
    for key in ("liquidated_coin", "adl_contracts", "bids_quoted", "insurance_fund", "mark"):
        assert key in js.text, key


def test_cascade_endpoint_counts_a_liquidation_per_minute(market: Market) -> None:
    empty = market.control.get("/ui/api/cascade").json()
    assert (empty["symbol"], empty["buckets"], empty["finite"]) == (MARKET_ID, [], None)
    victim = open_position(market, "buy", 100, 20)
    market.prices("56000")
    body = market.control.get("/ui/api/cascade", params={"symbol": MARKET_ID}).json()
    ex = market.state.exchange
    [takeover] = [e for e in ex.journal if e.type == "liquidation.takeover"]
    assert body["buckets"] == [takeover.time_ms // 60_000 * 60_000]
    assert body["liquidated_contracts"] == [100]
    bp = Decimal(str(takeover.payload["bankruptcy_price"]))
    assert Decimal(body["liquidated_coin"][0]) == shown(Decimal(100 * 100) / bp)
    assert (body["liquidations"], body["accounts"]) == (1, 1)
    assert body["fund"][-1]["insurance_fund"] == market.control.get(
        "/control/state").json()["insurance_fund"]["BTC"]
    assert victim["account_id"] in {e.payload["account_id"] for e in ex.journal
                                    if e.type == "liquidation.triggered"}
    assert body["points"] == []  # a stateless book keeps no depth records
    assert market.control.get("/ui/api/cascade", params={"symbol": "NOPE"}).status_code == 400
    # The view is fed the new events only; it stays what the whole journal says.
    open_position(market, "buy", 100, 20)
    market.prices("52000")
    again = market.control.get("/ui/api/cascade").json()
    assert (again["liquidations"], again["accounts"]) == (2, 2)
    whole = cascade_record(ex, MARKET_ID)
    assert again["liquidated_contracts"] == whole["liquidated_contracts"]
    assert again["liquidated_coin"] == [str(shown(c)) for c in whole["liquidated_coin"]]


def test_cascade_view_of_a_finite_book_shows_its_depth_and_prices() -> None:
    from perpsim.api.ui.cascade import cascade_view
    from perpsim.sim import trading
    from perpsim.sim.exchange import Exchange
    from perpsim.sim.profile import load_profile
    from perpsim.sim.scenario import load_scenario

    base = load_profile("binance_coinm")
    insts = tuple(i.model_copy(update={"book": i.book.model_copy(update={
        "levels": 5, "level_step_ticks": 10, "contracts_per_level": 100,
        "refill_contracts_per_s": 10})}) if i.symbol == MARKET_ID else i
        for i in base.instruments)
    ex = Exchange(base.model_copy(update={"instruments": insts}),
                  load_scenario("manual", start_ms=START_MS), start_ms=START_MS)
    long_id = ex.create_account({"BTC": "0.1"}).account_id
    ex.set_margin_mode(long_id, MARKET_ID, "isolated")
    ex.set_leverage(long_id, MARKET_ID, 20)
    trading.place_order(ex, long_id, MARKET_ID, "BUY", "MARKET", 250)
    ex.advance(60_000)
    ex.set_prices(MARKET_ID, "57000")
    body = json.loads(json.dumps(cascade_view(ex, MARKET_ID)))  # JSON-ready as served
    [point] = body["points"]
    assert Decimal(point["last"]) < Decimal(point["index"]) == Decimal(57_000)
    assert point["bids_quoted"] == 500 - 250
    assert body["finite"]["bids_eaten"] == 250
    assert body["finite"]["refill_contracts_per_s"] == 10
    assert body["liquidated_contracts"] == [250]
