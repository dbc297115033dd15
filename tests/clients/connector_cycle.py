"""One hedge cycle through binance-futures-connector (CMFutures + CMFuturesWebsocketClient).

Run as ``python connector_cycle.py <base_url> <api_key> <api_secret>`` with the connector's
folder first on PYTHONPATH; prints a JSON report (cycle_common.emit). Pointed at perpsim by
constructor arguments only: ``CMFutures(base_url=...)``, ``CMFuturesWebsocketClient(
stream_url=...)``. The user stream is the connector's own example: a listen key subscribed with
SUBSCRIBE on ``/ws``; the mark price comes on a combined ``/stream`` connection.
"""

from __future__ import annotations

import sys
from typing import Any

import cycle_common as cc
from binance.__version__ import __version__
from binance.cm_futures import CMFutures
from binance.websocket.cm_futures.websocket_client import CMFuturesWebsocketClient

USER_SUBSCRIBE_ID = 1
MARK_SUBSCRIBE_ID = 2


def cycle(base_url: str, api_key: str, api_secret: str) -> dict[str, Any]:
    control = cc.Control(base_url)
    client = CMFutures(key=api_key, secret=api_secret, base_url=base_url)
    report: dict[str, Any] = {"client": "binance-futures-connector",
                              "connector_version": __version__}
    client.ping()
    report["server_time_ms"] = client.time()["serverTime"]
    report["symbols"] = [s["symbol"] for s in client.exchange_info()["symbols"]]
    book = client.depth(cc.SYMBOL, limit=5)
    report["bid"], report["ask"] = book["bids"][0][0], book["asks"][0][0]
    (premium,) = client.mark_price(cc.SYMBOL)
    report["mark_price"] = premium["markPrice"]
    user, market = cc.Inbox(), cc.Inbox()
    listen_key = client.new_listen_key()["listenKey"]
    ws_url = cc.ws_base(base_url)
    user_ws = CMFuturesWebsocketClient(stream_url=ws_url,
                                       on_message=lambda _, message: user.add(message))
    market_ws = CMFuturesWebsocketClient(stream_url=ws_url, is_combined=True,
                                         on_message=lambda _, message: market.add(message))
    try:
        user_ws.user_data(listen_key, id=USER_SUBSCRIBE_ID)
        market_ws.mark_price(cc.SYMBOL, speed=1, id=MARK_SUBSCRIBE_ID)
        user.wait_reply(USER_SUBSCRIBE_ID, "SUBSCRIBE of the listen key")
        market.wait_reply(MARK_SUBSCRIBE_ID, "SUBSCRIBE of the mark price")
        hedge(client, control, user, report)
    finally:
        user_ws.stop()
        market_ws.stop()
    report.update(cc.stream_summary(user, market, report["algo_id"]))
    return report


def hedge(client: CMFutures, control: cc.Control, user: cc.Inbox,
          report: dict[str, Any]) -> None:
    s = cc.SYMBOL
    report["leverage"] = client.change_leverage(s, 1)["leverage"]
    user.wait("ACCOUNT_CONFIG_UPDATE", lambda f: f["ac"]["l"] == 1, "leverage 1")
    client.change_margin_type(s, "ISOLATED")
    maker = client.new_order(s, "SELL", "LIMIT", timeInForce="GTX", quantity=1,
                             price=cc.POST_ONLY_PRICE_USD)
    canceled = client.cancel_order(s, orderId=maker["orderId"])
    report["post_only"] = [maker["status"], maker["timeInForce"], canceled["status"]]
    hedge_order = client.new_order(s, "SELL", "MARKET", quantity=cc.HEDGE_CONTRACTS)
    report["hedge_order_id"] = hedge_order["orderId"]
    user.wait("ORDER_TRADE_UPDATE", cc.filled(hedge_order["orderId"]), "the hedge")
    client.modify_isolated_position_margin(s, cc.MARGIN_ADD_BTC, 1)
    reduce = client.new_order(s, "BUY", "MARKET", quantity=cc.REDUCE_CONTRACTS,
                              reduceOnly="true")
    report["reduce_order_id"] = reduce["orderId"]
    user.wait("ORDER_TRADE_UPDATE", cc.filled(reduce["orderId"]), "the reduce")
    # The connector (4.2.0) has no algo-order method; its public sign_request sends one.
    stop = client.sign_request("POST", "/dapi/v1/algoOrder", {
        "symbol": s, "side": "BUY", "type": "STOP_MARKET", "algoType": "CONDITIONAL",
        "triggerPrice": cc.STOP_TRIGGER_USD, "quantity": cc.STOP_CONTRACTS,
        "reduceOnly": "true"})
    report["algo_id"] = stop["algoId"]
    user.wait("ALGO_UPDATE", lambda f: f["o"]["aid"] == stop["algoId"], "the stop")
    control.advance(cc.PAST_FIRST_FUNDING_MS)
    user.wait("ACCOUNT_UPDATE", cc.is_funding_fee, "the funding fee")
    # Signed with the wall clock (the connector never syncs): still fresh after the advance.
    income = client.get_income_history(symbol=s, incomeType="FUNDING_FEE")
    report["funding_income"] = [row["income"] for row in income]
    report["funding_rates"] = [row["fundingRate"] for row in client.funding_rate(s)]
    oi = client.open_interest_hist(cc.PAIR, "PERPETUAL", "1h", limit=1)
    report["open_interest_hist"] = oi[-1]["sumOpenInterest"]
    report["basis_rows"] = len(client.basis(cc.PAIR, "PERPETUAL", "1h", limit=2))
    control.prices(cc.STOP_TRIGGER_USD)
    triggered = user.wait("ALGO_UPDATE", cc.triggered(stop["algoId"]), "the stop triggering")
    user.wait("ORDER_TRADE_UPDATE", cc.filled(int(triggered["o"]["ai"])), "the stop's fill")
    user.wait("ACCOUNT_UPDATE", cc.flat, "the stop closing the position")
    risk = client.get_position_risk()
    report["position_after"] = next(r["positionAmt"] for r in risk if r["symbol"] == s)


if __name__ == "__main__":
    cc.emit(cycle(*sys.argv[1:4]))
