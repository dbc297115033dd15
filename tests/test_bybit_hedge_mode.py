"""Hedge mode on the Bybit v5 wire through unmodified pybit (HTTP) and a raw private
WebSocket: ``switch-mode`` 3 is the engine's hedge mode, ``positionIdx`` 1 / 2 its LONG and
SHORT legs on orders, positions (one row per leg), leverage, isolated margin, executions and
the private stream; switching follows Bybit's rules (110024 / 110028 / 110025)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from bybit_helpers import SYMBOL, frames_until, fresh_pybit, private_ws
from bybit_helpers import rows as _rows
from pybit.exceptions import InvalidRequestError

from live_market import Market


@pytest.fixture
def http(bybit_market: Market) -> Any:
    return fresh_pybit(bybit_market)


def _by_idx(http: Any) -> dict[int, dict[str, Any]]:
    rows = _rows(http.get_positions(category="inverse", symbol=SYMBOL))
    return {row["positionIdx"]: row for row in rows}


def test_hedge_mode_trades_both_legs_through_pybit(http: Any, bybit_market: Market) -> None:
    assert list(_by_idx(http)) == [0]  # one-way: one row
    with pytest.raises(InvalidRequestError, match="110025"):
        http.switch_position_mode(category="inverse", symbol=SYMBOL, mode=0)
    http.switch_position_mode(category="inverse", symbol=SYMBOL, mode=3)
    flat = _by_idx(http)
    assert sorted(flat) == [1, 2]
    assert [flat[i]["size"] for i in (1, 2)] == ["0", "0"]

    # An order needs its leg; positionIdx 0 does not match hedge mode (10001).
    with pytest.raises(InvalidRequestError, match=r"position idx not match.*10001"):
        http.place_order(category="inverse", symbol=SYMBOL, side="Buy", orderType="Market",
                         qty="100")
    http.set_leverage(category="inverse", symbol=SYMBOL, buyLeverage="5", sellLeverage="5")
    long_leg = http.place_order(category="inverse", symbol=SYMBOL, side="Buy",
                                orderType="Market", qty="3000", positionIdx=1)["result"]
    short_leg = http.place_order(category="inverse", symbol=SYMBOL, side="Sell",
                                 orderType="Market", qty="1000", positionIdx=2)["result"]
    legs = _by_idx(http)
    assert [(legs[i]["side"], legs[i]["size"], legs[i]["leverage"]) for i in (1, 2)] == [
        ("Buy", "3000", "5"), ("Sell", "1000", "5")]

    # Reduce-only closes a leg (Sell on the buy side); on the leg's own side it is 110017.
    with pytest.raises(InvalidRequestError, match="110017"):
        http.place_order(category="inverse", symbol=SYMBOL, side="Buy", orderType="Market",
                         qty="100", positionIdx=1, reduceOnly=True)
    closing = http.place_order(category="inverse", symbol=SYMBOL, side="Sell",
                               orderType="Market", qty="1000", positionIdx=1,
                               reduceOnly=True)["result"]
    (closed,) = _rows(http.get_order_history(category="inverse", symbol=SYMBOL,
                                             orderId=closing["orderId"]))
    assert (closed["positionIdx"], closed["reduceOnly"], closed["orderStatus"]) == (
        1, True, "Filled")
    # Closing more than the leg holds is refused, as a reduce-only order would be.
    with pytest.raises(InvalidRequestError, match="110017"):
        http.place_order(category="inverse", symbol=SYMBOL, side="Buy", orderType="Market",
                         qty="1001", positionIdx=2)
    legs = _by_idx(http)
    assert (legs[1]["size"], legs[2]["size"]) == ("2000", "1000")
    orders = {o["orderId"]: o for o in _rows(http.get_order_history(category="inverse",
                                                                   symbol=SYMBOL))}
    assert (orders[long_leg["orderId"]]["positionIdx"],
            orders[short_leg["orderId"]]["positionIdx"]) == (1, 2)
    assert orders[long_leg["orderId"]]["reduceOnly"] is False
    executions = _rows(http.get_executions(category="inverse", symbol=SYMBOL))
    assert sorted(e["orderId"] for e in executions) == sorted(
        [long_leg["orderId"], short_leg["orderId"], closing["orderId"]])

    # No switching back while positions (110024) or orders (110028) are open.
    with pytest.raises(InvalidRequestError, match="110024"):
        http.switch_position_mode(category="inverse", symbol=SYMBOL, mode=0)
    http.place_order(category="inverse", symbol=SYMBOL, side="Sell", orderType="Market",
                     qty="2000", positionIdx=1)
    http.place_order(category="inverse", symbol=SYMBOL, side="Buy", orderType="Market",
                     qty="1000", positionIdx=2)
    resting = http.place_order(category="inverse", symbol=SYMBOL, side="Buy",
                               orderType="Limit", qty="100", price="50000",
                               positionIdx=1)["result"]
    with pytest.raises(InvalidRequestError, match="110028"):
        http.switch_position_mode(category="inverse", coin="BTC", mode=0)
    http.cancel_order(category="inverse", symbol=SYMBOL, orderId=resting["orderId"])
    http.switch_position_mode(category="inverse", coin="BTC", mode=0)
    assert list(_by_idx(http)) == [0]
    state = bybit_market.control.get("/control/state").json()
    assert state["ledger"]["total"] == state["ledger"]["deposits"]


def test_isolated_hedge_legs_take_margin_apart(http: Any) -> None:
    http.switch_position_mode(category="inverse", symbol=SYMBOL, mode=3)
    http.switch_margin_mode(category="inverse", symbol=SYMBOL, tradeMode=1, buyLeverage="4",
                            sellLeverage="4")
    with pytest.raises(InvalidRequestError, match=r"shared by both.*10001"):
        http.set_leverage(category="inverse", symbol=SYMBOL, buyLeverage="4", sellLeverage="6")
    http.place_order(category="inverse", symbol=SYMBOL, side="Buy", orderType="Market",
                     qty="2000", positionIdx=1)
    http.place_order(category="inverse", symbol=SYMBOL, side="Sell", orderType="Market",
                     qty="2000", positionIdx=2)
    before = _by_idx(http)
    assert before[1]["tradeMode"] == before[2]["tradeMode"] == 1
    with pytest.raises(InvalidRequestError, match=r"position idx.*10001"):
        http.add_or_reduce_margin(category="inverse", symbol=SYMBOL, margin="0.01")
    http.add_or_reduce_margin(category="inverse", symbol=SYMBOL, margin="0.01", positionIdx=2)
    after = _by_idx(http)
    assert Decimal(after[2]["positionBalance"]) - Decimal(before[2]["positionBalance"]) == \
        Decimal("0.01")
    assert after[1]["positionBalance"] == before[1]["positionBalance"]


def test_the_private_stream_sends_one_position_row_per_leg(http: Any,
                                                           bybit_market: Market) -> None:
    http.switch_position_mode(category="inverse", symbol=SYMBOL, mode=3)
    with private_ws(bybit_market, http.creds, ["position", "order", "execution"]) as ws:
        placed = http.place_order(category="inverse", symbol=SYMBOL, side="Sell",
                                  orderType="Market", qty="700", positionIdx=2)["result"]
        seen = frames_until(ws, {"position", "order", "execution"})
        legs = {row["positionIdx"]: row for row in seen["position"]["data"]}
        assert (legs[1]["size"], legs[2]["side"], legs[2]["size"]) == ("0", "Sell", "700")
        (order,) = seen["order"]["data"]
        assert (order["orderId"], order["positionIdx"]) == (placed["orderId"], 2)
        assert seen["execution"]["data"][0]["orderId"] == placed["orderId"]


def test_ccxt_bybit_trades_both_legs(http: Any, bybit_market: Market) -> None:
    from perpsim.strategy.connect_bybit import connect_bybit

    ex = connect_bybit(bybit_market.base_url, http.creds["api_key"], http.creds["api_secret"])
    unified = "BTC/USD:BTC"
    ex.set_position_mode(True, unified)
    ex.create_order(unified, "market", "sell", 1000, None, {"hedged": True})
    ex.create_order(unified, "market", "buy", 400, None, {"hedged": True})
    # ccxt sends a hedged reduce-only buy on the sell side (positionIdx 2): it closes the short.
    ex.create_order(unified, "market", "buy", 300, None, {"hedged": True, "reduceOnly": True})
    legs = {p["side"]: p for p in ex.fetch_positions([unified])}
    assert {side: (p["contracts"], p["hedged"]) for side, p in legs.items()} == {
        "long": (400, True), "short": (700, True)}
    assert sorted(o["info"]["positionIdx"] for o in ex.fetch_closed_orders(unified)) == [1, 2, 2]
