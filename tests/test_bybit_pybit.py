"""A full hedge cycle through unmodified pybit (``unified_trading.HTTP`` and ``WebSocket``)
against perpsim's Bybit v5 dialect, pointed at perpsim with URL settings only:
``HTTP(...).endpoint = <perpsim>`` and pybit's WebSocket URL templates
(``unified_trading.PUBLIC_WSS`` / ``PRIVATE_WSS``, the only URL knob pybit 5.17 has for them).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from pybit import unified_trading
from pybit.exceptions import InvalidRequestError

from live_market import START, Market

SYMBOL = "BTCUSD"
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


class Inbox:
    """Messages pybit's WebSocket threads hand to callbacks, for the test thread to wait on."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.messages.append(message)

    def wait_for(self, check: Callable[[dict[str, Any]], bool], what: str,
                 timeout_s: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                found = [m for m in self.messages if check(m)]
            if found:
                return found[-1]
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def pybit_urls(bybit_market: Market, monkeypatch: pytest.MonkeyPatch) -> str:
    ws_base = bybit_market.base_url.replace("http://", "ws://")
    monkeypatch.setattr(unified_trading, "PUBLIC_WSS", ws_base + "/v5/public/{CHANNEL_TYPE}")
    monkeypatch.setattr(unified_trading, "PRIVATE_WSS", ws_base + "/v5/private")
    return bybit_market.base_url


def _rows(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["retCode"] == 0, response
    rows: list[dict[str, Any]] = response["result"]["list"]
    return rows


def test_hedge_cycle_through_pybit(bybit_market: Market, pybit_urls: str) -> None:
    bybit_market.post("reset", {"profile": "bybit_inverse", "scenario": "manual", "seed": 0,
                                "start": START, "clock": "stepped", "speed": 1.0})
    creds = bybit_market.account({"BTC": "1"})
    http = unified_trading.HTTP(testnet=False, api_key=creds["api_key"],
                                api_secret=creds["api_secret"], max_retries=1)
    http.endpoint = pybit_urls
    public_inbox, private_inbox = Inbox(), Inbox()
    public = unified_trading.WebSocket(testnet=False, channel_type="inverse")
    private = unified_trading.WebSocket(testnet=False, channel_type="private",
                                        api_key=creds["api_key"],
                                        api_secret=creds["api_secret"])
    try:
        _cycle(bybit_market, http, public, private, public_inbox, private_inbox, creds)
    finally:
        public.exit()
        private.exit()


def _cycle(market: Market, http: Any, public: Any, private: Any, public_inbox: Inbox,
           private_inbox: Inbox, creds: dict[str, str]) -> None:
    public.ticker_stream(symbol=SYMBOL, callback=public_inbox)
    public.orderbook_stream(depth=50, symbol=SYMBOL, callback=public_inbox)
    public.trade_stream(symbol=SYMBOL, callback=public_inbox)
    public.kline_stream(interval=1, symbol=SYMBOL, callback=public_inbox)
    public.all_liquidation_stream(symbol=SYMBOL, callback=public_inbox)
    for subscribe in (private.order_stream, private.execution_stream, private.position_stream,
                      private.wallet_stream):
        subscribe(callback=private_inbox)
    public_inbox.wait_for(lambda m: m["topic"] == f"tickers.{SYMBOL}"
                          and m["type"] == "snapshot", "a ticker snapshot")
    snapshot = public_inbox.wait_for(lambda m: m["topic"] == f"orderbook.50.{SYMBOL}",
                                     "an order book snapshot")
    assert snapshot["type"] == "snapshot"
    rest_book = http.get_orderbook(category="inverse", symbol=SYMBOL, limit=50)["result"]
    assert (snapshot["data"]["b"], snapshot["data"]["a"]) == (rest_book["b"], rest_book["a"])

    # Market data.
    assert int(http.get_server_time()["result"]["timeSecond"]) * 1000 == 1_704_067_200_000
    (instrument,) = _rows(http.get_instruments_info(category="inverse"))
    assert (instrument["contractType"], instrument["lotSizeFilter"]["minOrderQty"],
            instrument["priceFilter"]["tickSize"]) == ("InversePerpetual", "1", "0.5")
    market.advance(2 * MINUTE_MS)
    market.prices("61000", "61000", SYMBOL)
    market.advance(3 * MINUTE_MS)
    (ticker,) = _rows(http.get_tickers(category="inverse", symbol=SYMBOL))
    assert ticker["lastPrice"] == "61000.0"
    assert Decimal(ticker["bid1Price"]) < Decimal(ticker["ask1Price"])
    book = http.get_orderbook(category="inverse", symbol=SYMBOL, limit=5)["result"]
    assert len(book["b"]) == len(book["a"]) == 5
    for method in (http.get_kline, http.get_mark_price_kline, http.get_index_price_kline):
        bars = _rows(method(category="inverse", symbol=SYMBOL, interval="1", limit=10))
        assert len(bars) == 6  # newest first
        assert Decimal(bars[-1][1]) == 60_000
        assert Decimal(bars[0][4]) == pytest.approx(Decimal(61_000), rel=Decimal("0.001"))
    public_inbox.wait_for(lambda m: m["topic"] == f"kline.1.{SYMBOL}"
                          and m["data"][0]["close"] == "61000.0", "a kline at 61,000")
    # pybit merges the deltas into its snapshot and hands the merged ticker on.
    public_inbox.wait_for(lambda m: m["topic"] == f"tickers.{SYMBOL}"
                          and m["data"].get("lastPrice") == "61000.0", "a ticker at 61,000")

    # Wallet, the spot leg, margin mode and leverage.
    (wallet,) = _rows(http.get_wallet_balance(accountType="CONTRACT"))
    assert wallet["coin"][0]["walletBalance"] == "1.00000000"
    http.create_internal_transfer(transferId="t-1", coin="BTC", amount="0.4",
                                  fromAccountType="CONTRACT", toAccountType="SPOT")
    spot = http.get_coins_balance(accountType="SPOT", coin="BTC")["result"]["balance"]
    assert spot[0]["walletBalance"] == "0.40000000"
    http.create_internal_transfer(transferId="t-2", coin="BTC", amount="0.4",
                                  fromAccountType="SPOT", toAccountType="CONTRACT")
    http.switch_margin_mode(category="inverse", symbol=SYMBOL, tradeMode=1, buyLeverage="2",
                            sellLeverage="2")
    with pytest.raises(InvalidRequestError, match="110026"):
        http.switch_margin_mode(category="inverse", symbol=SYMBOL, tradeMode=1,
                                buyLeverage="2", sellLeverage="2")
    http.set_leverage(category="inverse", symbol=SYMBOL, buyLeverage="3", sellLeverage="3")
    with pytest.raises(InvalidRequestError, match="110043"):
        http.set_leverage(category="inverse", symbol=SYMBOL, buyLeverage="3", sellLeverage="3")

    # Post-only rests, reduce-only without a position is refused, cancel.
    resting = http.place_order(category="inverse", symbol=SYMBOL, side="Sell",
                               orderType="Limit", qty="1000", price="62000",
                               timeInForce="PostOnly", orderLinkId="po-1")["result"]
    (open_order,) = _rows(http.get_open_orders(category="inverse", symbol=SYMBOL))
    assert (open_order["orderId"], open_order["timeInForce"], open_order["orderStatus"]) == (
        resting["orderId"], "PostOnly", "New")
    with pytest.raises(InvalidRequestError, match="110017"):
        http.place_order(category="inverse", symbol=SYMBOL, side="Buy", orderType="Market",
                         qty="100", reduceOnly=True)
    http.cancel_order(category="inverse", symbol=SYMBOL, orderLinkId="po-1")
    assert _rows(http.get_open_orders(category="inverse", symbol=SYMBOL)) == []

    # The hedge short, a conditional reduce-only stop that fires on a rise, executions.
    short = http.place_order(category="inverse", symbol=SYMBOL, side="Sell",
                             orderType="Market", qty="30000")["result"]
    stop = http.place_order(category="inverse", symbol=SYMBOL, side="Buy", orderType="Market",
                            qty="1000", triggerPrice="64000", triggerDirection=1,
                            triggerBy="LastPrice", reduceOnly=True)["result"]
    (waiting,) = _rows(http.get_open_orders(category="inverse", symbol=SYMBOL,
                                            orderFilter="StopOrder"))
    assert (waiting["orderStatus"], waiting["triggerDirection"]) == ("Untriggered", 1)
    private_inbox.wait_for(lambda m: m["topic"] == "order" and any(
        r["orderId"] == short["orderId"] and r["orderStatus"] == "Filled" for r in m["data"]),
        "the filled short on the order stream")
    trade = public_inbox.wait_for(lambda m: m["topic"] == f"publicTrade.{SYMBOL}",
                                  "the short on the public trade stream")
    assert (trade["data"][0]["S"], trade["data"][0]["v"]) == ("Sell", "30000")
    market.prices("64500", "64500", SYMBOL)
    market.advance(MINUTE_MS)
    (fired,) = _rows(http.get_order_history(category="inverse", symbol=SYMBOL,
                                            orderId=stop["orderId"]))
    assert (fired["orderStatus"], fired["cumExecQty"]) == ("Filled", "1000")
    executions = _rows(http.get_executions(category="inverse", symbol=SYMBOL))
    assert sorted(e["orderId"] for e in executions) == sorted([short["orderId"],
                                                              stop["orderId"]])
    private_inbox.wait_for(lambda m: m["topic"] == "execution" and any(
        e["orderId"] == stop["orderId"] for e in m["data"]), "the stop's execution")
    (position,) = _rows(http.get_positions(category="inverse", symbol=SYMBOL))
    assert (position["side"], position["size"], position["tradeMode"]) == ("Sell", "29000", 1)
    http.add_or_reduce_margin(category="inverse", symbol=SYMBOL, margin="0.01")
    (topped,) = _rows(http.get_positions(category="inverse", symbol=SYMBOL))
    assert Decimal(topped["positionBalance"]) - Decimal(position["positionBalance"]) == \
        Decimal("0.01")

    # Funding at 08:00 (the short receives): an execution of type Funding, a SETTLEMENT log row.
    market.advance(8 * HOUR_MS)
    (funding,) = _rows(http.get_executions(category="inverse", symbol=SYMBOL,
                                           execType="Funding"))
    assert Decimal(funding["execFee"]) < 0  # received
    (settlement,) = [r for r in _rows(http.get_transaction_log(category="inverse"))
                     if r["type"] == "SETTLEMENT"]
    assert Decimal(settlement["change"]) == -Decimal(funding["execFee"])
    (rate,) = _rows(http.get_funding_rate_history(category="inverse", symbol=SYMBOL))
    assert rate["fundingRateTimestamp"] == "1704096000000"
    private_inbox.wait_for(lambda m: m["topic"] == "wallet", "a wallet update")

    # Liquidation: the client sees it on the public stream, the position stream and REST.
    market.prices("100000", "100000", SYMBOL)
    market.advance(MINUTE_MS)
    liquidation = public_inbox.wait_for(
        lambda m: m["topic"] == f"allLiquidation.{SYMBOL}", "a liquidation frame")
    assert liquidation["data"][0]["S"] == "Sell"  # the short position was liquidated
    private_inbox.wait_for(lambda m: m["topic"] == "position" and any(
        p["size"] == "0" for p in m["data"]), "the closed position on the stream")
    (gone,) = _rows(http.get_positions(category="inverse", symbol=SYMBOL))
    assert gone["size"] == "0"
    history = _rows(http.get_order_history(category="inverse", symbol=SYMBOL))
    assert "CreateByLiq" in [o["createType"] for o in history]
    state = market.control.get("/control/state").json()
    assert state["ledger"]["total"] == state["ledger"]["deposits"]
    assert json.dumps(state)  # the control plane stays dialect-neutral JSON


def test_the_printed_pybit_snippet_reaches_the_server(bybit_market: Market) -> None:
    import subprocess
    import sys

    from perpsim.clients import client_snippets

    bybit_market.post("reset", {"profile": "bybit_inverse", "scenario": "manual", "seed": 0,
                                "start": START, "clock": "stepped", "speed": 1.0})
    creds = bybit_market.account({"BTC": "1"})
    program = (f"API_KEY, API_SECRET = {creds['api_key']!r}, {creds['api_secret']!r}\n"
               + client_snippets(bybit_market.base_url, ["pybit"])
               + "import json\n"
               "wallet = http.get_wallet_balance(accountType='CONTRACT')['result']['list'][0]\n"
               "ws = unified_trading.WebSocket(testnet=False, channel_type='inverse')\n"
               "print(json.dumps({'time': http.get_server_time()['time'],\n"
               "                  'btc': wallet['coin'][0]['walletBalance'],\n"
               "                  'ws': ws.is_connected()}))\n"
               "ws.exit()\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"time": bybit_market.state.exchange.now_ms,
                                       "btc": "1.00000000", "ws": True}
