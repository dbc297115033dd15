"""Private COIN-M order endpoints, driven by the REAL ccxt 4.5.90 (sync and async) against a
live perpsim server: market, limit, post-only, reduce-only and conditional orders, queries,
cancels, fills, account isolation, the errors Binance gives, and bad input over the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from ccxt.test.exchange.base.test_order import test_order as check_order
from ccxt.test.exchange.base.test_trade import test_trade as check_trade
from test_api_account import (
    MARKET_ID,
    MODES,
    SYMBOL,
    Client,
    assert_binance_error,
    client_factory,
    control_account,
    journal,
    open_position,
    signed,
)

from conftest import START_MS, Market


@pytest.fixture
def clients(market: Market) -> Iterator[Callable[..., Client]]:
    """ccxt clients on the live market (closed at teardown)."""
    yield from client_factory(market)


def validate(client: Client, orders: list[dict[str, Any]]) -> None:
    """ccxt's own order validator on each order."""
    for order in orders:
        check_order(client.ex, {}, "fetchOrder", order, SYMBOL, client.milliseconds())


@pytest.mark.parametrize("mode", MODES)
def test_limit_and_post_only_orders_rest_query_and_cancel(
        market: Market, clients: Callable[..., Client], mode: str) -> None:
    creds = market.account()
    client = clients(creds, mode)
    limit = client.create_order(SYMBOL, "limit", "buy", 10, 59000)
    post_only = client.create_order(SYMBOL, "limit", "buy", 20, 58000, {"postOnly": True})
    gtx = client.create_order(SYMBOL, "limit", "sell", 5, 61000, {"timeInForce": "GTX"})
    validate(client, [limit, post_only, gtx])
    assert (limit["status"], limit["price"], limit["amount"], limit["filled"]) == (
        "open", 59000, 10, 0)
    assert limit["clientOrderId"].startswith("x-xcKtGhcu")
    assert post_only["postOnly"] is True
    assert post_only["timeInForce"] == "PO"
    assert gtx["postOnly"] is True
    assert gtx["side"] == "sell"
    fetched = client.fetch_order(limit["id"], SYMBOL)
    validate(client, [fetched])
    assert fetched["id"] == limit["id"]
    assert fetched["timestamp"] == START_MS
    by_client_id = client.fetch_order(None, SYMBOL, {"clientOrderId": limit["clientOrderId"]})
    assert by_client_id["id"] == limit["id"]
    opened = client.fetch_open_orders(SYMBOL)
    assert [o["id"] for o in opened] == [limit["id"], post_only["id"], gtx["id"]]
    assert control_account(market, creds["account_id"])["open_orders"] == 3
    canceled = client.cancel_order(limit["id"], SYMBOL)
    assert canceled["status"] == "canceled"
    validate(client, [canceled])
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(limit["id"], SYMBOL)
    client.cancel_all_orders(SYMBOL)
    assert client.fetch_open_orders(SYMBOL) == []
    history = client.fetch_orders(SYMBOL)
    validate(client, history)
    assert [(o["id"], o["status"]) for o in history] == [
        (limit["id"], "canceled"), (post_only["id"], "canceled"), (gtx["id"], "canceled")]
    assert [o["id"] for o in client.fetch_orders(SYMBOL, limit=1)] == [gtx["id"]]
    cancels = [e for e in journal(market) if e["type"] == "order.update"
               and e["payload"]["execution"] == "CANCELED"]
    assert len(cancels) == 3


@pytest.mark.parametrize("mode", MODES)
def test_market_orders_fills_and_my_trades(market: Market, clients: Callable[..., Client],
                                           mode: str) -> None:
    creds = market.account()
    client = clients(creds, mode)
    bought = open_position(client, "buy", 100)
    validate(client, [bought])
    assert bought["filled"] == 100
    assert bought["average"] > 60000
    assert bought["cost"] > 0
    market.prices("61000", "61000")
    closed = client.create_order(SYMBOL, "market", "sell", 100, None, {"reduceOnly": True})
    validate(client, [closed])
    assert closed["reduceOnly"] is True
    assert closed["status"] == "closed"
    assert control_account(market, creds["account_id"])["positions"] == []
    trades = client.fetch_my_trades(SYMBOL)
    for trade in trades:
        check_trade(client.ex, {}, "fetchMyTrades", trade, SYMBOL, client.milliseconds(),
                    False)
    fills = [e["payload"] for e in journal(market) if e["type"] == "order.update"
             and e["payload"]["execution"] == "TRADE"]
    assert [t["id"] for t in trades] == [str(f["trade_id"]) for f in fills]
    assert [t["order"] for t in trades] == [bought["id"]] * (len(trades) - 1) + [closed["id"]]
    assert trades[-1]["side"] == "sell"
    assert trades[-1]["takerOrMaker"] == "taker"
    assert Decimal(trades[-1]["info"]["realizedPnl"]) == Decimal(fills[-1]["realized_pnl"]) > 0
    assert sum(Decimal(t["info"]["commission"]) for t in trades) == sum(
        Decimal(f["commission"]) for f in fills)
    assert client.fetch_my_trades(SYMBOL, since=START_MS + 1) == []
    income = signed(market, creds, "GET", "/dapi/v1/income").json()
    pnl = [r for r in income if r["incomeType"] == "REALIZED_PNL"]
    assert [Decimal(r["income"]) for r in pnl] == [Decimal(fills[-1]["realized_pnl"])]
    assert pnl[0]["symbol"] == MARKET_ID
    wallet = Decimal(control_account(market, creds["account_id"])["balances"]["BTC"])
    assert sum(Decimal(r["income"]) for r in income) == wallet


def test_a_resting_limit_fills_as_maker_when_the_market_comes(
        market: Market, clients: Callable[..., Client]) -> None:
    client = clients(market.account())
    order = client.create_order(SYMBOL, "limit", "buy", 10, 59000)
    market.prices("58800", "58800")
    filled = client.fetch_order(order["id"], SYMBOL)
    validate(client, [filled])
    assert (filled["status"], filled["filled"], filled["average"]) == ("closed", 10, 59000)
    (trade,) = client.fetch_my_trades(SYMBOL)
    assert trade["takerOrMaker"] == "maker"
    assert trade["price"] == 59000
    assert client.fetch_positions()[0]["contracts"] == 10


@pytest.mark.parametrize("mode", MODES)
def test_stop_and_take_profit_rest_then_fire(market: Market, clients: Callable[..., Client],
                                             mode: str) -> None:
    creds = market.account()
    client = clients(creds, mode)
    open_position(client, "buy", 100)
    stop = client.create_order(SYMBOL, "market", "sell", 100, None,
                               {"triggerPrice": 58000, "reduceOnly": True})
    take = client.create_order(SYMBOL, "market", "sell", 100, None,
                               {"takeProfitPrice": 62000, "reduceOnly": True,
                                "workingType": "MARK_PRICE"})
    stop_limit = client.create_order(SYMBOL, "limit", "sell", 40, 57000, {"stopPrice": 57500})
    validate(client, [stop, take, stop_limit])
    assert (stop["status"], stop["triggerPrice"], stop["type"]) == ("open", 58000, "market")
    assert take["takeProfitPrice"] == 62000
    assert take["info"]["orderType"] == "TAKE_PROFIT_MARKET"
    assert stop_limit["info"]["orderType"] == "STOP"
    assert stop_limit["price"] == 57000
    resting = client.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert [o["id"] for o in resting] == [stop["id"], take["id"], stop_limit["id"]]
    assert client.fetch_open_orders(SYMBOL) == []  # conditional orders are off the book
    market.prices("62500", "62500")  # mark and last reach the take-profit
    fired = client.fetch_order(take["id"], SYMBOL, {"trigger": True})
    validate(client, [fired])
    assert fired["status"] == "closed"
    child = client.fetch_order(fired["info"]["actualOrderId"], SYMBOL)
    assert (child["status"], child["side"], child["filled"]) == ("closed", "sell", 100)
    assert child["clientOrderId"] == take["clientOrderId"]
    assert client.fetch_positions() == []
    canceled = client.cancel_order(stop["id"], SYMBOL, {"trigger": True})
    assert canceled["id"] == stop["id"]
    assert client.fetch_order(stop["id"], SYMBOL, {"trigger": True})["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(stop["id"], SYMBOL, {"trigger": True})
    # a later ms: at the fill's own ms the engine keeps that fill as the last price
    market.advance(1000)
    market.prices("57400", "57400")  # the stop-limit fires (last price) and opens a short
    history = client.fetch_orders(SYMBOL, params={"trigger": True})
    assert [o["status"] for o in history] == ["canceled", "closed", "closed"]
    position = control_account(market, creds["account_id"])["positions"][0]
    assert position["contracts"] == -40
    client.create_order(SYMBOL, "market", "buy", 40, None, {"triggerPrice": 59000})
    client.cancel_all_orders(SYMBOL, {"trigger": True})
    assert client.fetch_open_orders(SYMBOL, params={"trigger": True}) == []


@pytest.mark.parametrize("mode", MODES)
def test_the_errors_binance_gives(market: Market, clients: Callable[..., Client],
                                  mode: str) -> None:
    creds = market.account({"BTC": "0.01"})
    client = clients(creds, mode)
    before = journal(market)
    with pytest.raises(ccxt.ExchangeError, match="-5022"):  # GTX that would take
        client.create_order(SYMBOL, "limit", "buy", 1, 61000, {"postOnly": True})
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        client.create_order(SYMBOL, "market", "sell", 1, None, {"reduceOnly": True})
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
        client.create_order(SYMBOL, "market", "buy", 1000)
    with pytest.raises(ccxt.InvalidOrder):  # a stop that would trigger at once
        client.create_order(SYMBOL, "market", "sell", 1, None, {"triggerPrice": 61000})
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        client.fetch_order("424242", SYMBOL)
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        client.cancel_order("424242", SYMBOL)
    with pytest.raises(ccxt.BadSymbol):
        client.dapiPrivateGetOpenOrders({"symbol": "XYZUSD_PERP"})
    assert journal(market) == before


@pytest.mark.parametrize("mode", MODES)
def test_accounts_cannot_see_or_cancel_each_others_orders(
        market: Market, clients: Callable[..., Client], mode: str) -> None:
    alice_creds, bob_creds = market.account(), market.account()
    alice, bob = clients(alice_creds, mode), clients(bob_creds, mode)
    order = alice.create_order(SYMBOL, "limit", "buy", 10, 59000)
    stop = alice.create_order(SYMBOL, "market", "sell", 10, None, {"triggerPrice": 58000})
    open_position(alice, "buy", 5)
    for call in (lambda: bob.fetch_order(order["id"], SYMBOL),
                 lambda: bob.cancel_order(order["id"], SYMBOL),
                 lambda: bob.fetch_order(None, SYMBOL, {"clientOrderId": order["clientOrderId"]}),
                 lambda: bob.fetch_order(stop["id"], SYMBOL, {"trigger": True}),
                 lambda: bob.cancel_order(stop["id"], SYMBOL, {"trigger": True}),
                 lambda: bob.dapiPrivateGetOpenOrder({"symbol": MARKET_ID,
                                                      "orderId": order["id"]})):
        with pytest.raises(ccxt.OrderNotFound):
            call()
    bob.cancel_all_orders(SYMBOL)
    bob.cancel_all_orders(SYMBOL, {"trigger": True})
    assert bob.fetch_open_orders(SYMBOL) == []
    assert bob.fetch_open_orders(SYMBOL, params={"trigger": True}) == []
    assert bob.fetch_orders(SYMBOL) == []
    assert bob.fetch_my_trades(SYMBOL) == []
    assert bob.fetch_positions() == []
    assert [o["id"] for o in alice.fetch_open_orders(SYMBOL)] == [order["id"]]
    assert [o["id"] for o in alice.fetch_open_orders(SYMBOL, params={"trigger": True})] == [
        stop["id"]]
    assert len(alice.fetch_my_trades(SYMBOL)) >= 1


def test_new_order_resp_type_ack_and_result(market: Market) -> None:
    creds = market.account()
    base = {"symbol": MARKET_ID, "side": "BUY", "type": "MARKET", "quantity": "3"}
    ack = signed(market, creds, "POST", "/dapi/v1/order", base).json()  # ACK is the default
    assert (ack["status"], ack["executedQty"], ack["avgPrice"]) == ("NEW", "0", "0.0")
    result = signed(market, creds, "POST", "/dapi/v1/order",
                    {**base, "newOrderRespType": "RESULT", "newClientOrderId": "mine-1"}).json()
    assert (result["status"], result["executedQty"], result["clientOrderId"]) == (
        "FILLED", "3", "mine-1")
    assert Decimal(result["cumBase"]) == (3 * Decimal(100) / Decimal(result["avgPrice"])
                                          ).quantize(Decimal("1e-8"))
    queried = signed(market, creds, "GET", "/dapi/v1/order",
                     {"symbol": MARKET_ID, "orderId": ack["orderId"]}).json()
    assert queried["status"] == "FILLED"
    assert queried["positionSide"] == "BOTH"
    expected = {"orderId", "clientOrderId", "symbol", "pair", "status", "type", "side", "price",
                "origQty", "executedQty", "cumQty", "avgPrice", "cumBase", "timeInForce",
                "reduceOnly", "closePosition", "positionSide", "stopPrice", "workingType",
                "priceProtect", "origType", "time", "updateTime"}
    assert expected <= set(queried)
    open_one = signed(market, creds, "POST", "/dapi/v1/order",
                      {**base, "type": "LIMIT", "price": "50000", "timeInForce": "GTC"}).json()
    assert signed(market, creds, "GET", "/dapi/v1/openOrder",
                  {"symbol": MARKET_ID, "orderId": open_one["orderId"]}).json()["status"] == "NEW"
    assert_binance_error(signed(market, creds, "GET", "/dapi/v1/openOrder",
                                {"symbol": MARKET_ID, "orderId": ack["orderId"]}), -2013)


ORDER = {"symbol": MARKET_ID, "side": "BUY", "type": "LIMIT", "quantity": "1",
         "price": "50000", "timeInForce": "GTC"}
BAD_ORDER_CALLS: list[tuple[str, str, dict[str, Any] | str, int | None]] = [
    ("POST", "/dapi/v1/order", {**ORDER, "quantity": "NaN"}, -1100),
    ("POST", "/dapi/v1/order", {**ORDER, "quantity": "-1"}, -1100),
    ("POST", "/dapi/v1/order", {**ORDER, "quantity": "1e3"}, -1100),
    ("POST", "/dapi/v1/order", {**ORDER, "quantity": "abc"}, -1100),
    ("POST", "/dapi/v1/order", {**ORDER, "quantity": "0"}, -4003),
    ("POST", "/dapi/v1/order", {**ORDER, "quantity": "1.5"}, None),
    ("POST", "/dapi/v1/order", {**ORDER, "quantity": "2000000"}, -4005),
    ("POST", "/dapi/v1/order", {**ORDER, "quantity": "9" * 20}, None),
    ("POST", "/dapi/v1/order", {**ORDER, "quantity": "9" * 21}, -1100),
    ("POST", "/dapi/v1/order", {**ORDER, "price": "Infinity"}, -1100),
    ("POST", "/dapi/v1/order", {**ORDER, "price": "50000.05"}, -4014),
    ("POST", "/dapi/v1/order", {**ORDER, "price": "0"}, None),
    ("POST", "/dapi/v1/order", {k: v for k, v in ORDER.items() if k != "price"}, -1102),
    ("POST", "/dapi/v1/order", {k: v for k, v in ORDER.items() if k != "side"}, -1102),
    ("POST", "/dapi/v1/order", {k: v for k, v in ORDER.items() if k != "quantity"}, -1102),
    ("POST", "/dapi/v1/order", {**ORDER, "side": "buy"}, None),
    ("POST", "/dapi/v1/order", {**ORDER, "type": "ICEBERG"}, None),
    ("POST", "/dapi/v1/order", {**ORDER, "type": "STOP_MARKET", "stopPrice": "40000"}, -4120),
    ("POST", "/dapi/v1/order", {**ORDER, "timeInForce": "GTD"}, None),
    ("POST", "/dapi/v1/order", {**ORDER, "reduceOnly": "maybe"}, None),
    ("POST", "/dapi/v1/order", {**ORDER, "positionSide": "LONG"}, -4061),  # one-way mode
    ("POST", "/dapi/v1/order", {**ORDER, "positionSide": "UP"}, -4060),
    ("POST", "/dapi/v1/order", {**ORDER, "price": "70000"}, -4016),  # mark 60,000 × 1.15
    ("POST", "/dapi/v1/order", {**ORDER, "side": "SELL", "price": "50000"}, -4024),
    ("POST", "/dapi/v1/order", {**ORDER, "newClientOrderId": "has spaces!"}, None),
    ("POST", "/dapi/v1/order", {**ORDER, "newOrderRespType": "FULL"}, None),
    ("POST", "/dapi/v1/order", {**ORDER, "symbol": "BTCUSD"}, -1121),
    ("POST", "/dapi/v1/order", {**ORDER, "type": "MARKET"}, -1106),  # a price on a MARKET
    ("POST", "/dapi/v1/order", "symbol=BTCUSD_PERP&side=BUY&type=MARKET&quantity=%FF%FE", -1100),
    ("POST", "/dapi/v1/order", "symbol=BTCUSD_PERP&side=BUY&side=SELL", -1101),
    ("POST", "/dapi/v1/order", "=&&&==%%", -1101),  # two nameless parameters
    ("GET", "/dapi/v1/order", {"symbol": MARKET_ID}, -1102),
    ("GET", "/dapi/v1/order", {"symbol": MARKET_ID, "orderId": "1x"}, -1100),
    ("GET", "/dapi/v1/order", {"orderId": "1"}, -1102),
    ("DELETE", "/dapi/v1/order", {"symbol": MARKET_ID, "orderId": "-1"}, -1100),
    ("DELETE", "/dapi/v1/order", {"symbol": MARKET_ID, "orderId": "99"}, -2011),
    ("DELETE", "/dapi/v1/allOpenOrders", {}, -1102),
    ("GET", "/dapi/v1/allOrders", {}, -1102),
    ("GET", "/dapi/v1/allOrders", {"symbol": MARKET_ID, "limit": "1000"}, None),
    ("GET", "/dapi/v1/userTrades", {"pair": "DOGEUSD"}, None),
    ("GET", "/dapi/v1/userTrades", {"symbol": MARKET_ID, "fromId": "1", "startTime": "1"}, None),
    ("POST", "/dapi/v1/algoOrder", {"symbol": MARKET_ID, "side": "SELL", "type": "STOP_MARKET",
                                    "quantity": "1", "triggerPrice": "40000"}, -1102),
    ("POST", "/dapi/v1/algoOrder", {"symbol": MARKET_ID, "side": "SELL", "type": "LIMIT",
                                    "algoType": "CONDITIONAL", "quantity": "1",
                                    "triggerPrice": "40000"}, None),
    ("POST", "/dapi/v1/algoOrder", {"symbol": MARKET_ID, "side": "SELL", "type": "STOP_MARKET",
                                    "algoType": "CONDITIONAL", "quantity": "1",
                                    "triggerPrice": "NaN"}, -1100),
    ("POST", "/dapi/v1/algoOrder", {"symbol": MARKET_ID, "side": "SELL", "type": "STOP",
                                    "algoType": "CONDITIONAL", "quantity": "1",
                                    "triggerPrice": "40000"}, None),  # STOP needs a price
    ("POST", "/dapi/v1/algoOrder", {"symbol": MARKET_ID, "side": "SELL", "type": "STOP_MARKET",
                                    "algoType": "CONDITIONAL", "quantity": "1",
                                    "triggerPrice": "40000", "workingType": "LAST"}, None),
    ("DELETE", "/dapi/v1/algoOrder", {"symbol": MARKET_ID, "algoId": "7"}, -2011),
    ("GET", "/dapi/v1/algoOrder", {"symbol": MARKET_ID}, -1102),
    ("GET", "/dapi/v1/allAlgoOrders", {}, -1102),
]


@pytest.mark.parametrize(("method", "path", "params", "code"), BAD_ORDER_CALLS)
def test_bad_order_input_is_a_binance_error_and_changes_nothing(
        market: Market, method: str, path: str, params: dict[str, Any] | str,
        code: int | None) -> None:
    creds = market.account()
    before = journal(market)
    assert_binance_error(signed(market, creds, method, path, params), code)
    assert journal(market) == before
    assert control_account(market, creds["account_id"])["open_orders"] == 0
