"""Public COIN-M market data (api/binance_coinm/market_routes.py) against a live perpsim server,
read by the real, unmodified ccxt 4.5.90 (sync and async_support).

Every structure ccxt parses goes through ccxt's own validators (ccxt/test/exchange/base/test_*.py
and, where ccxt ships a whole test for a method, that test); values are checked against the
engine's own numbers (control plane and journal). Bad input over the wire answers Binance JSON
with a 4xx status and leaves the journal untouched.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from ccxt.test.exchange.base.test_funding_rate_history import (
    test_funding_rate_history as check_funding_rate_history,
)
from ccxt.test.exchange.base.test_last_price import test_last_price as check_last_price
from ccxt.test.exchange.base.test_market import test_market as check_market
from ccxt.test.exchange.base.test_ohlcv import test_ohlcv as check_ohlcv
from ccxt.test.exchange.base.test_open_interest import test_open_interest as check_open_interest
from ccxt.test.exchange.base.test_order_book import test_order_book as check_order_book
from ccxt.test.exchange.base.test_shared_methods import assert_timestamp_order
from ccxt.test.exchange.base.test_ticker import test_ticker as check_ticker
from ccxt.test.exchange.base.test_trade import test_trade as check_trade
from ccxt.test.exchange.sync.test_fetch_order_book import (
    test_fetch_order_book as ccxt_fetch_order_book,
)
from ccxt.test.exchange.sync.test_fetch_tickers import test_fetch_tickers as ccxt_fetch_tickers
from ccxt.test.exchange.sync.test_fetch_trades import test_fetch_trades as ccxt_fetch_trades
from ccxt.test.exchange.sync.test_load_markets import test_load_markets as ccxt_load_markets

from perpsim.strategy.connect import connect

from conftest import START_MS, Market

SYMBOL = "BTC/USD:BTC"
MARKET_ID = "BTCUSD_PERP"
QUARTERLY = "BTC/USD:BTC-240329"
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
SKIP: dict[str, Any] = {}  # ccxt's skipped_properties: nothing skipped


def validate(check: Callable[..., Any], client: Any, method: str, entry: Any,
             *args: Any) -> None:
    """Run one of ccxt's structure validators the way ccxt's own test runner does."""
    check(client, SKIP, method, entry, *args)


@pytest.fixture
def trader(market: Market) -> Iterator[Any]:
    """A sync ccxt client with a funded account (10 BTC), markets loaded."""
    creds = market.account({"BTC": "10", "ETH": "100"})
    client = connect(market.base_url, creds["api_key"], creds["api_secret"])
    client.load_markets()
    yield client
    client.close()


@pytest.fixture
def public(market: Market) -> Iterator[Any]:
    """A sync ccxt client without keys (public endpoints only)."""
    client = connect(market.base_url, None, None)
    client.load_markets()
    yield client
    client.close()


def journal(market: Market) -> str:
    """The whole event journal (JSON lines)."""
    response = market.control.get("/control/journal")
    assert response.status_code == 200
    return response.text


def events(market: Market, kind: str) -> list[dict[str, Any]]:
    """Journal events of one type."""
    rows = [json.loads(line) for line in journal(market).splitlines() if line]
    return [row for row in rows if row["type"] == kind]


def symbol_state(market: Market, symbol: str = MARKET_ID) -> dict[str, Any]:
    """The control plane's view of one symbol (index, mark, last, funding)."""
    state: dict[str, Any] = market.control.get("/control/state").json()["symbols"][symbol]
    return state


# ---- markets, time ------------------------------------------------------------------------------


def test_load_markets_passes_ccxts_own_test(market: Market, public: Any) -> None:
    ccxt_load_markets(public, SKIP)
    for entry in public.markets.values():
        validate(check_market, public, "loadMarkets", entry)
    assert sorted(public.markets) == sorted([SYMBOL, "ETH/USD:ETH", QUARTERLY])
    assert public.market(SYMBOL)["inverse"] is True
    assert public.market(QUARTERLY)["future"] is True


def test_fetch_time_is_the_simulated_clock(market: Market, public: Any) -> None:
    assert public.fetch_time() == START_MS
    market.advance(HOUR_MS)
    assert public.fetch_time() == START_MS + HOUR_MS
    assert market.control.get("/dapi/v1/ping").json() == {}


# ---- tickers ------------------------------------------------------------------------------------


def test_ticker_reflects_trades(market: Market, trader: Any) -> None:
    trader.create_order(SYMBOL, "market", "buy", 5)  # lifts the synthetic ask at 60000.1
    trader.create_order(SYMBOL, "market", "sell", 3)  # hits the bid at 59999.9
    ticker = trader.fetch_ticker(SYMBOL)
    validate(check_ticker, trader, "fetchTicker", ticker, SYMBOL)
    coin = Decimal(5 * 100) / Decimal("60000.1") + Decimal(3 * 100) / Decimal("59999.9")
    assert ticker["last"] == 59999.9
    assert ticker["open"] == 60000.0
    assert (ticker["high"], ticker["low"]) == (60000.1, 59999.9)
    assert ticker["info"]["volume"] == "8"  # contracts
    assert Decimal(ticker["info"]["baseVolume"]) == coin.quantize(Decimal("1e-8"))
    assert ticker["baseVolume"] == float(coin.quantize(Decimal("1e-8")))
    assert Decimal(ticker["info"]["weightedAvgPrice"]) == (800 / coin).quantize(Decimal("1e-8"))
    assert ticker["info"]["count"] == 2
    assert ticker["info"]["lastQty"] == "3"
    assert ticker["timestamp"] == START_MS


def test_tickers_pass_ccxts_own_test(market: Market, public: Any) -> None:
    ccxt_fetch_tickers(public, SKIP, SYMBOL)
    tickers = public.fetch_tickers()
    assert sorted(tickers) == sorted(public.markets)
    for ticker in tickers.values():
        assert ticker["open"] > 0  # an idle market still quotes prices, never "0"
        assert ticker["baseVolume"] == 0


def test_mark_prices(market: Market, public: Any) -> None:
    market.prices("60000", "60300")
    market.advance(MINUTE_MS)
    state = symbol_state(market)
    ticker = public.fetch_mark_price(SYMBOL)
    validate(check_ticker, public, "fetchMarkPrice", ticker, SYMBOL)
    assert Decimal(ticker["info"]["markPrice"]) == Decimal(state["mark"])
    assert Decimal(ticker["info"]["indexPrice"]) == Decimal(state["index"])
    assert ticker["timestamp"] == START_MS + MINUTE_MS
    marks = public.fetch_mark_prices()
    assert sorted(marks) == sorted(public.markets)
    for entry in marks.values():
        validate(check_ticker, public, "fetchMarkPrices", entry, None)


def test_last_prices_bids_asks_and_open_interest(market: Market, trader: Any) -> None:
    other = market.account({"BTC": "10"})
    seller = connect(market.base_url, other["api_key"], other["api_secret"])
    trader.create_order(SYMBOL, "market", "buy", 5)
    seller.create_order(SYMBOL, "market", "sell", 2)
    seller.close()
    last = trader.fetch_last_prices()
    for entry in last.values():
        validate(check_last_price, trader, "fetchLastPrices", entry, None)
    assert last[SYMBOL]["price"] == 59999.9
    quotes = trader.fetch_bids_asks([SYMBOL])
    validate(check_ticker, trader, "fetchBidsAsks", quotes[SYMBOL], SYMBOL)
    assert (quotes[SYMBOL]["bid"], quotes[SYMBOL]["ask"]) == (59999.9, 60000.1)
    interest = trader.fetch_open_interest(SYMBOL)
    validate(check_open_interest, trader, "fetchOpenInterest", interest)
    # longs 5 against shorts 2 + the synthetic market's 3: five contracts are open
    assert interest["openInterestAmount"] == 5
    assert trader.fetch_funding_intervals()[SYMBOL]["interval"] == "8h"


# ---- order book ---------------------------------------------------------------------------------


def test_order_book_passes_ccxts_own_test(market: Market, public: Any) -> None:
    ccxt_fetch_order_book(public, SKIP, SYMBOL)
    book = public.fetch_order_book(SYMBOL, 5)
    validate(check_order_book, public, "fetchOrderBook", book, SYMBOL)
    assert book["bids"][0] == [59999.9, 2000]
    assert book["asks"][0] == [60000.1, 2000]
    assert (len(book["bids"]), len(book["asks"])) == (5, 5)
    assert book["timestamp"] == START_MS
    assert len(public.fetch_order_book(SYMBOL, 1000)["bids"]) > 5  # ccxt.pro's snapshot size


def test_update_id_grows_with_the_book_and_across_resets(market: Market, trader: Any) -> None:
    first = trader.fetch_order_book(SYMBOL)["nonce"]
    assert trader.fetch_order_book(SYMBOL)["nonce"] == first  # nothing changed
    trader.create_order(SYMBOL, "limit", "buy", 7, 59000)
    resting = trader.fetch_order_book(SYMBOL, 1000)
    assert resting["nonce"] > first
    assert [59000.0, 7] in resting["bids"]
    market.prices("61000")
    moved = trader.fetch_order_book(SYMBOL)
    assert moved["nonce"] > resting["nonce"]
    assert moved["bids"][0][0] == 60999.9
    market.post("reset", {"scenario": "manual", "start": START_MS})
    assert trader.fetch_order_book(SYMBOL)["nonce"] > moved["nonce"]
    ticker = trader.fetch_bids_asks([SYMBOL])[SYMBOL]
    assert int(ticker["info"]["lastUpdateId"]) == trader.fetch_order_book(SYMBOL)["nonce"]


# ---- trades -------------------------------------------------------------------------------------


def test_trades_pass_ccxts_own_test(market: Market, trader: Any) -> None:
    trader.create_order(SYMBOL, "market", "buy", 2500)  # sweeps two synthetic ask levels
    market.advance(MINUTE_MS)
    trader.create_order(SYMBOL, "market", "sell", 4)
    ccxt_fetch_trades(trader, SKIP, SYMBOL)
    trades = trader.fetch_trades(SYMBOL)
    assert [(t["side"], t["price"], t["amount"], t["timestamp"]) for t in trades] == [
        ("buy", 60000.1, 2000, START_MS), ("buy", 60000.2, 500, START_MS),
        ("sell", 59999.9, 4, START_MS + MINUTE_MS)]
    assert [t["id"] for t in trades] == ["1", "2", "3"]
    later = trader.fetch_trades(SYMBOL, since=START_MS + 1)
    assert [t["id"] for t in later] == ["3"]
    assert [t["id"] for t in trader.fetch_trades(SYMBOL, limit=1)] == ["3"]
    paged = trader.dapiPublicGetAggTrades({"symbol": MARKET_ID, "fromId": 2, "limit": 1})
    assert [row["a"] for row in paged] == [2]
    for method in ("dapiPublicGetTrades", "dapiPublicGetHistoricalTrades"):
        rows = trader.fetch_trades(SYMBOL, params={"fetchTradesMethod": method})
        for row in rows:
            validate(check_trade, trader, "fetchTrades", row, SYMBOL, trader.milliseconds(), True)
        assert [r["id"] for r in rows] == ["1", "2", "3"]
        assert rows[0]["cost"] == pytest.approx(2000 * 100 / 60000.1)  # baseQty, in coin


def test_historical_trades_need_a_known_api_key(market: Market) -> None:
    response = market.control.get("/dapi/v1/historicalTrades", params={"symbol": MARKET_ID},
                                  headers={"X-MBX-APIKEY": "x" * 64})
    assert response.status_code == 401
    assert response.json()["code"] == -2015


# ---- candles ------------------------------------------------------------------------------------


def test_ohlcv_last_mark_and_index(market: Market, trader: Any) -> None:
    trader.create_order(SYMBOL, "market", "buy", 10)
    market.advance(MINUTE_MS + 30_000)
    market.prices("60100", "60120")
    trader.create_order(SYMBOL, "market", "sell", 6)
    market.advance(2 * MINUTE_MS)
    now = trader.milliseconds()
    last = trader.fetch_ohlcv(SYMBOL, "1m", since=START_MS, limit=10)
    for row in last:
        validate(check_ohlcv, trader, "fetchOHLCV", row, SYMBOL, now)
    assert [row[0] for row in last] == [START_MS + i * MINUTE_MS for i in range(4)]
    assert last[0][1:5] == [60000.0, 60000.1, 60000.0, 60000.1]
    assert last[1][1:5] == [60000.0, 60120.0, 60000.0, 60119.9]
    assert last[0][5] == pytest.approx(10 * 100 / 60000.1)  # row[7]: base volume, in coin
    assert last[1][5] == pytest.approx(6 * 100 / 60119.9)
    assert last[2][5] == 0
    marks = trader.fetch_ohlcv(SYMBOL, "1m", since=START_MS, limit=10, params={"price": "mark"})
    index = trader.fetch_ohlcv(SYMBOL, "1m", since=START_MS, limit=10, params={"price": "index"})
    for rows, method in ((marks, "fetchMarkOHLCV"), (index, "fetchIndexOHLCV")):
        assert [row[0] for row in rows] == [row[0] for row in last]
        for row in rows:
            validate(check_ohlcv, trader, method, row, SYMBOL, now)
    assert [row[4] for row in index] == [60000.0, 60100.0, 60100.0, 60100.0]
    assert marks[-1][4] == pytest.approx(float(symbol_state(market)["mark"]), rel=1e-12)
    hourly = trader.fetch_ohlcv(SYMBOL, "1h", limit=3)
    assert [row[0] for row in hourly] == [START_MS]
    continuous = trader.dapiPublicGetContinuousKlines(
        {"pair": "BTCUSD", "contractType": "PERPETUAL", "interval": "1m", "limit": 2})
    assert continuous == trader.dapiPublicGetKlines(
        {"symbol": MARKET_ID, "interval": "1m", "limit": 2})


# ---- funding ------------------------------------------------------------------------------------

FUNDING_RATE_KEYS = {"info", "symbol", "markPrice", "indexPrice", "interestRate",
                     "estimatedSettlePrice", "timestamp", "datetime", "fundingRate",
                     "fundingTimestamp", "fundingDatetime", "interval"}


def check_funding_rate(client: Any, entry: dict[str, Any], symbol: str) -> None:
    """ccxt 4.5.90 ships no funding-rate validator: the unified keys, typed and consistent."""
    assert set(entry) >= FUNDING_RATE_KEYS, entry
    assert entry["symbol"] == symbol
    assert isinstance(entry["timestamp"], int)
    assert entry["datetime"] == client.iso8601(entry["timestamp"])
    assert entry["fundingDatetime"] == client.iso8601(entry["fundingTimestamp"])
    for key in ("markPrice", "indexPrice", "estimatedSettlePrice"):
        assert entry[key] > 0, key
    assert -1 < entry["fundingRate"] < 1


def test_funding_rate_is_the_predicted_rate(market: Market, public: Any) -> None:
    market.prices("60000", "60060")  # a 0.1 % premium: beyond the clamp, the rate leaves 0.01 %
    market.advance(2 * HOUR_MS)
    state = symbol_state(market)
    rate = public.fetch_funding_rate(SYMBOL)
    check_funding_rate(public, rate, SYMBOL)
    assert Decimal(rate["info"]["lastFundingRate"]) == Decimal(state["funding_rate"])
    assert Decimal(state["funding_rate"]) != Decimal("0.0001")
    assert rate["fundingTimestamp"] == state["next_funding_time"] == START_MS + 8 * HOUR_MS
    assert Decimal(rate["info"]["markPrice"]) == Decimal(state["mark"])
    assert rate["interestRate"] == 0.0001
    assert rate["timestamp"] == START_MS + 2 * HOUR_MS
    rates = public.fetch_funding_rates()
    assert set(rates) == {SYMBOL, "ETH/USD:ETH", QUARTERLY}
    check_funding_rate(public, rates["ETH/USD:ETH"], "ETH/USD:ETH")
    assert rates[QUARTERLY]["fundingRate"] is None  # a quarterly does not fund (Binance: "")
    assert rates[QUARTERLY]["info"]["nextFundingTime"] == 0


def test_funding_rate_history_equals_the_journal(market: Market, public: Any) -> None:
    market.prices("60000", "60060")
    market.advance(9 * HOUR_MS)
    market.prices("60000", "59940")
    market.advance(8 * HOUR_MS)
    settled = [(e["time_ms"], Decimal(e["payload"]["rate"]))
               for e in events(market, "funding.settled") if e["payload"]["symbol"] == MARKET_ID]
    assert [t for t, _ in settled][-2:] == [START_MS + 8 * HOUR_MS, START_MS + 16 * HOUR_MS]
    history = public.fetch_funding_rate_history(SYMBOL, since=START_MS)
    for entry in history:
        validate(check_funding_rate_history, public, "fetchFundingRateHistory", entry, SYMBOL)
    assert_timestamp_order(public, "fetchFundingRateHistory", SYMBOL, history)
    assert [(h["timestamp"], Decimal(h["info"]["fundingRate"])) for h in history] == settled
    assert settled[-2][1] > 0 > settled[-1][1]
    latest = public.fetch_funding_rate_history(SYMBOL, limit=1)
    assert [h["timestamp"] for h in latest] == [START_MS + 16 * HOUR_MS]
    first = public.fetch_funding_rate_history(SYMBOL, since=START_MS + 1, limit=1)
    assert [h["timestamp"] for h in first] == [START_MS + 8 * HOUR_MS]
    assert public.fetch_funding_rate_history(QUARTERLY) == []


# ---- async client -------------------------------------------------------------------------------


def test_async_client_reads_the_same_market(market: Market) -> None:
    market.prices("60000", "60060")
    market.advance(9 * HOUR_MS)

    async def run() -> dict[str, Any]:
        client = connect(market.base_url, None, None, mode="async")
        try:
            await client.load_markets()
            for entry in client.markets.values():
                validate(check_market, client, "loadMarkets", entry)
            now = client.milliseconds()
            result = {"time": await client.fetch_time(),
                      "ticker": await client.fetch_ticker(SYMBOL),
                      "book": await client.fetch_order_book(SYMBOL, 10),
                      "trades": await client.fetch_trades(SYMBOL),
                      "mark": await client.fetch_ohlcv(SYMBOL, "1h", since=START_MS, limit=20,
                                                       params={"price": "mark"}),
                      "rate": await client.fetch_funding_rate(SYMBOL),
                      "history": await client.fetch_funding_rate_history(SYMBOL, START_MS)}
            validate(check_ticker, client, "fetchTicker", result["ticker"], SYMBOL)
            validate(check_order_book, client, "fetchOrderBook", result["book"], SYMBOL)
            for row in result["mark"]:
                validate(check_ohlcv, client, "fetchOHLCV", row, SYMBOL, now)
            check_funding_rate(client, result["rate"], SYMBOL)
            for entry in result["history"]:
                validate(check_funding_rate_history, client, "fetchFundingRateHistory", entry,
                         SYMBOL)
            return result
        finally:
            await client.close()

    result = asyncio.run(run())
    assert result["time"] == START_MS + 9 * HOUR_MS
    assert result["trades"] == []
    assert len(result["mark"]) == 10
    assert [h["timestamp"] for h in result["history"]][-1] == START_MS + 8 * HOUR_MS
    assert result["rate"]["fundingTimestamp"] == START_MS + 16 * HOUR_MS


# ---- bad input ----------------------------------------------------------------------------------

BAD_REQUESTS = [
    # (path, query, HTTP status, Binance code)
    ("depth", {"symbol": "NOPE_PERP"}, 400, -1121),
    ("depth", {}, 400, -1102),
    ("depth", {"symbol": ""}, 400, -1102),
    ("depth", {"symbol": MARKET_ID, "limit": "0"}, 400, -1130),
    ("depth", {"symbol": MARKET_ID, "limit": "1001"}, 400, -1130),
    ("depth", {"symbol": MARKET_ID, "limit": "9" * 30}, 400, -1100),
    ("depth", {"symbol": MARKET_ID, "limit": "NaN"}, 400, -1100),
    ("depth", {"symbol": MARKET_ID, "limit": "abc"}, 400, -1100),
    ("depth", {"symbol": MARKET_ID, "limit": "-5"}, 400, -1100),
    ("depth", {"symbol": MARKET_ID, "limit": "2.5"}, 400, -1100),
    ("klines", {"symbol": MARKET_ID, "interval": "7m"}, 400, -1120),
    ("klines", {"symbol": MARKET_ID, "interval": "1M"}, 400, -1120),
    ("klines", {"symbol": MARKET_ID}, 400, -1102),
    ("klines", {"symbol": MARKET_ID, "interval": "1m", "limit": "1501"}, 400, -1130),
    ("klines", {"symbol": MARKET_ID, "interval": "1m", "startTime": "5", "endTime": "3"},
     400, -1130),
    ("klines", {"symbol": MARKET_ID, "interval": "1m", "startTime": "1e12"}, 400, -1100),
    ("markPriceKlines", {"symbol": "BTCUSD", "interval": "1m"}, 400, -1121),
    ("indexPriceKlines", {"pair": "XYZUSD", "interval": "1m"}, 400, -1121),
    ("indexPriceKlines", {"symbol": MARKET_ID, "interval": "1m"}, 400, -1102),
    ("continuousKlines", {"pair": "BTCUSD", "contractType": "WEEKLY", "interval": "1m"},
     400, -1130),
    ("continuousKlines", {"pair": "ETHUSD", "contractType": "CURRENT_QUARTER",
                          "interval": "1m"}, 400, -1121),
    ("aggTrades", {"symbol": MARKET_ID, "startTime": "10", "endTime": "9"}, 400, -1130),
    ("aggTrades", {"symbol": MARKET_ID, "fromId": "x"}, 400, -1100),
    ("aggTrades", {"symbol": MARKET_ID, "limit": "0"}, 400, -1130),
    ("trades", {"symbol": MARKET_ID, "limit": "100000"}, 400, -1130),
    ("fundingRate", {"symbol": MARKET_ID, "startTime": "2", "endTime": "1"}, 400, -1130),
    ("fundingRate", {"symbol": MARKET_ID, "limit": "1001"}, 400, -1130),
    ("fundingRate", {}, 400, -1102),
    ("premiumIndex", {"symbol": "btcusd_perp"}, 400, -1121),
    ("premiumIndex", {"pair": "NOPE"}, 400, -1121),
    ("ticker/24hr", {"symbol": MARKET_ID, "pair": "BTCUSD"}, 400, -1128),
    ("ticker/price", {"symbol": "NOPE"}, 400, -1121),
    ("ticker/bookTicker", {"symbol": "NOPE"}, 400, -1121),
    ("openInterest", {}, 400, -1102),
    ("historicalTrades", {"symbol": MARKET_ID}, 401, -2014),
    ("nope", {}, 404, -5000),
    ("ticker", {}, 404, -5000),
]


@pytest.mark.parametrize(("path", "query", "status", "code"), BAD_REQUESTS,
                         ids=[f"{p}-{'&'.join(q) or 'none'}-{c}" for p, q, _, c in BAD_REQUESTS])
def test_bad_input_is_a_binance_error_and_changes_nothing(
        market: Market, path: str, query: dict[str, str], status: int, code: int) -> None:
    before = journal(market)
    response = market.control.get(f"/dapi/v1/{path}", params=query)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "msg"}
    assert body["code"] == code, body
    assert body["msg"]
    assert journal(market) == before


def test_repeated_parameter_and_wrong_method(market: Market) -> None:
    before = journal(market)
    repeated = market.control.get(f"/dapi/v1/depth?symbol={MARKET_ID}&symbol={MARKET_ID}")
    assert (repeated.status_code, repeated.json()["code"]) == (400, -1101)
    posted = market.control.post("/dapi/v1/depth", params={"symbol": MARKET_ID})
    assert (posted.status_code, posted.json()["code"]) == (404, -5000)
    assert journal(market) == before


def test_ccxt_raises_binance_classes(market: Market, public: Any) -> None:
    with pytest.raises(ccxt.BadSymbol):
        public.dapiPublicGetDepth({"symbol": "NOPE_PERP"})
    with pytest.raises(ccxt.BadRequest):
        public.fetch_ohlcv(SYMBOL, "1M")
    with pytest.raises(ccxt.BadRequest):
        public.fetch_order_book(SYMBOL, 5000)


def test_symbol_without_prices_is_a_clear_error(market: Market) -> None:
    market.post("reset", {"scenario": "real-2022-12-13",  # BTCUSD prices only
                          "start": "2022-12-13T00:00:00Z"})
    get = market.control.get
    response = get("/dapi/v1/depth", params={"symbol": "ETHUSD_PERP"})
    assert response.status_code == 400
    assert response.json()["code"] == -1020
    assert "ETHUSD" in response.json()["msg"]
    for path in ("ticker/24hr", "premiumIndex", "ticker/price", "ticker/bookTicker"):
        rows = get(f"/dapi/v1/{path}").json()
        assert [row["symbol"] for row in rows] == ["BTCUSD_PERP", "BTCUSD_240329"], path
        assert get(f"/dapi/v1/{path}", params={"pair": "ETHUSD"}).json() == []
    for path, query in (("klines", {"symbol": "ETHUSD_PERP", "interval": "1m"}),
                        ("indexPriceKlines", {"pair": "ETHUSD", "interval": "1m"}),
                        ("fundingRate", {"symbol": "ETHUSD_PERP"}),
                        ("aggTrades", {"symbol": "ETHUSD_PERP"}),
                        ("openInterest", {"symbol": "ETHUSD_PERP"})):
        response = get(f"/dapi/v1/{path}", params=query)
        assert (response.status_code, response.json()["code"]) == (400, -1020), path
