"""PostOnly, FOK and IOC orders that cannot do what they ask, on the Bybit v5 wire through
unmodified pybit: as on Bybit they are ACCEPTED (create answers an orderId) and cancelled at
once, ``orderStatus`` Cancelled with Bybit's ``rejectReason``, sent on the private order
stream, and no coin moves (the profile's ``unfillable_tif: cancel``)."""

from __future__ import annotations

from typing import Any

import pytest
from bybit_helpers import SYMBOL, frames_until, fresh_pybit, private_ws, rows

from live_market import Market


@pytest.mark.parametrize(("order", "reason"), [
    ({"side": "Buy", "price": "60500", "timeInForce": "PostOnly"},
     "EC_PostOnlyWillTakeLiquidity"),
    ({"side": "Sell", "price": "59500", "timeInForce": "PostOnly"},
     "EC_PostOnlyWillTakeLiquidity"),
    ({"side": "Buy", "price": "60000.5", "timeInForce": "FOK", "qty": "200001"},  # 200,000 there
     "EC_CancelForNoFullFill"),
    ({"side": "Buy", "price": "59000", "timeInForce": "IOC"}, "EC_NoImmediateQtyToFill"),
])
def test_an_unfillable_order_is_accepted_then_cancelled_with_its_reason(
        bybit_market: Market, order: dict[str, str], reason: str) -> None:
    http = fresh_pybit(bybit_market)
    wallet_before = rows(http.get_wallet_balance(accountType="CONTRACT"))
    ledger_before = bybit_market.control.get("/control/state").json()["ledger"]
    with private_ws(bybit_market, http.creds, ["order"]) as ws:
        placed = http.place_order(category="inverse", symbol=SYMBOL, orderType="Limit",
                                  **{"qty": "1000", "orderLinkId": "u-1", **order})
        assert placed["retCode"] == 0
        streamed = frames_until(ws, {"order"})["order"]["data"]
    (row,) = rows(http.get_order_history(category="inverse", symbol=SYMBOL,
                                         orderId=placed["result"]["orderId"]))
    assert (row["orderStatus"], row["rejectReason"], row["cumExecQty"], row["leavesQty"]) == (
        "Cancelled", reason, "0", "0")
    assert row["orderLinkId"] == "u-1"
    assert [(r["orderId"], r["orderStatus"], r["rejectReason"]) for r in streamed] == [
        (row["orderId"], "Cancelled", reason)]
    assert rows(http.get_open_orders(category="inverse", symbol=SYMBOL)) == []
    assert rows(http.get_executions(category="inverse", symbol=SYMBOL)) == []
    assert rows(http.get_wallet_balance(accountType="CONTRACT")) == wallet_before
    ledger_after: dict[str, Any] = bybit_market.control.get("/control/state").json()["ledger"]
    assert ledger_after == ledger_before
    (position,) = rows(http.get_positions(category="inverse", symbol=SYMBOL))
    assert position["size"] == "0"
