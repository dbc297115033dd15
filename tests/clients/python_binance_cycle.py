"""One hedge cycle through python-binance (AsyncClient + BinanceSocketManager), unmodified.

Run as ``python python_binance_cycle.py <base_url> <api_key> <api_secret>``; prints a JSON
report (cycle_common.emit). python-binance has no base-URL argument: its URLs are class
attributes, so a subclass names perpsim's (docs/clients.md) — nothing else is changed but how
long an idle socket's read waits before reading again (below).
``AsyncClient.create()`` then pings ``/api/v3/ping`` and syncs its timestamp offset to
``/api/v3/time`` (simulated time), exactly as against Binance.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

import cycle_common as cc
from binance import AsyncClient, BinanceSocketManager
from binance.enums import FuturesType
from binance.ws.reconnecting_websocket import ReconnectingWebsocket

# python-binance closes a socket once its read loop wakes up: on a frame, or when a read has
# waited ReconnectingWebsocket.TIMEOUT (10 s) for one, after which it just reads again. A
# stepped perpsim market is silent between steps, so closing the sockets idled 10 s; a shorter
# wait changes nothing else (no reconnect, no frame lost: the socket's queue is untouched).
ReconnectingWebsocket.TIMEOUT = 0.5


def perpsim_classes(base_url: str) -> tuple[type[AsyncClient], type[BinanceSocketManager]]:
    """python-binance's client and socket manager with perpsim's URLs."""
    client = type("PerpsimAsyncClient", (AsyncClient,), {
        "API_URL": f"{base_url}/api", "FUTURES_COIN_URL": f"{base_url}/dapi",
        "FUTURES_COIN_DATA_URL": f"{base_url}/futures/data"})
    sockets = type("PerpsimSocketManager", (BinanceSocketManager,), {
        "DSTREAM_URL": f"{cc.ws_base(base_url)}/"})
    return client, sockets


async def pump(socket: Any, inbox: cc.Inbox) -> None:
    """Read a python-binance socket into an inbox until cancelled."""
    while True:
        frame = await socket.recv()
        if isinstance(frame, dict) and frame.get("e") == "error":
            raise RuntimeError(f"python-binance socket error: {frame}")
        inbox.add(frame)


async def resync(client: Any) -> None:
    """python-binance's documented answer to −1021: sync the offset to the server time."""
    server = await client.futures_coin_time()
    client.timestamp_offset = server["serverTime"] - int(time.time() * 1000)


async def cycle(base_url: str, api_key: str, api_secret: str) -> dict[str, Any]:
    client_class, sockets_class = perpsim_classes(base_url)
    control = cc.Control(base_url)
    client = await client_class.create(api_key, api_secret)  # /api/v3/ping, /api/v3/time
    report: dict[str, Any] = {"client": "python-binance", "timestamp_offset_ms":
                              client.timestamp_offset}
    user, market = cc.Inbox(), cc.Inbox()
    try:
        bsm = sockets_class(client)
        info = await client.futures_coin_exchange_info()
        report["symbols"] = [s["symbol"] for s in info["symbols"]]
        book = await client.futures_coin_order_book(symbol=cc.SYMBOL, limit=5)
        report["bid"], report["ask"] = book["bids"][0][0], book["asks"][0][0]
        (premium,) = await client.futures_coin_mark_price(symbol=cc.SYMBOL)
        report["mark_price"] = premium["markPrice"]
        async with bsm.coin_futures_user_socket() as user_socket, \
                bsm.symbol_mark_price_socket(cc.SYMBOL, futures_type=FuturesType.COIN_M) \
                as mark_socket, \
                bsm.kline_futures_socket(cc.PAIR, futures_type=FuturesType.COIN_M) \
                as kline_socket:  # /ws/btcusd_perpetual@continuousKline_1m
            readers = [asyncio.create_task(pump(user_socket, user)),
                       asyncio.create_task(pump(mark_socket, market)),
                       asyncio.create_task(pump(kline_socket, market))]
            try:
                await hedge(client, control, user, report)
            finally:
                for reader in readers:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
        report.update(cc.stream_summary(user, market, report["algo_id"]))
        report["stream_kline_frames"] = len(market.events("continuous_kline"))
    finally:
        await client.close_connection()
    return report


async def hedge(client: Any, control: cc.Control, user: cc.Inbox, report: dict[str, Any]) -> None:
    s = cc.SYMBOL
    report["leverage"] = (await client.futures_coin_change_leverage(symbol=s, leverage=1))[
        "leverage"]
    await user.wait_async("ACCOUNT_CONFIG_UPDATE", lambda f: f["ac"]["l"] == 1, "leverage 1")
    await client.futures_coin_change_margin_type(symbol=s, marginType="ISOLATED")
    maker = await client.futures_coin_create_order(
        symbol=s, side="SELL", type="LIMIT", timeInForce="GTX", quantity=1,
        price=cc.POST_ONLY_PRICE_USD)
    canceled = await client.futures_coin_cancel_order(symbol=s, orderId=maker["orderId"])
    report["post_only"] = [maker["status"], maker["timeInForce"], canceled["status"]]
    hedge_order = await client.futures_coin_create_order(
        symbol=s, side="SELL", type="MARKET", quantity=cc.HEDGE_CONTRACTS)
    report["hedge_order_id"] = hedge_order["orderId"]
    await user.wait_async("ORDER_TRADE_UPDATE", cc.filled(hedge_order["orderId"]), "the hedge")
    await client.futures_coin_change_position_margin(symbol=s, amount=cc.MARGIN_ADD_BTC, type=1)
    reduce = await client.futures_coin_create_order(
        symbol=s, side="BUY", type="MARKET", quantity=cc.REDUCE_CONTRACTS, reduceOnly="true")
    report["reduce_order_id"] = reduce["orderId"]
    await user.wait_async("ORDER_TRADE_UPDATE", cc.filled(reduce["orderId"]), "the reduce")
    # python-binance 1.0.37 has algo-order methods for USDⓈ-M only; its own request helper
    # signs and sends the COIN-M one to /dapi/v1/algoOrder.
    stop = await client._request_futures_coin_api("post", "algoOrder", True, data={
        "symbol": s, "side": "BUY", "type": "STOP_MARKET", "algoType": "CONDITIONAL",
        "triggerPrice": cc.STOP_TRIGGER_USD, "quantity": cc.STOP_CONTRACTS,
        "reduceOnly": "true"})
    report["algo_id"] = stop["algoId"]
    await user.wait_async("ALGO_UPDATE", lambda f: f["o"]["aid"] == stop["algoId"], "the stop")
    await asyncio.to_thread(control.advance, cc.PAST_FIRST_FUNDING_MS)
    await user.wait_async("ACCOUNT_UPDATE", cc.is_funding_fee, "the funding fee")
    await resync(client)  # the offset synced before the advance is 8 hours stale
    income = await client.futures_coin_income_history(symbol=s, incomeType="FUNDING_FEE")
    report["funding_income"] = [row["income"] for row in income]
    report["funding_rates"] = [row["fundingRate"]
                               for row in await client.futures_coin_funding_rate(symbol=s)]
    oi = await client.futures_coin_open_interest_hist(pair=cc.PAIR, contractType="PERPETUAL",
                                                       period="1h", limit=1)
    report["open_interest_hist"] = oi[-1]["sumOpenInterest"]
    premium = await client.futures_coin_premium_index_klines(symbol=s, interval="1h", limit=2)
    report["premium_index_klines"] = len(premium)
    await asyncio.to_thread(control.prices, cc.STOP_TRIGGER_USD)
    triggered = await user.wait_async("ALGO_UPDATE", cc.triggered(stop["algoId"]), "trigger")
    await user.wait_async("ORDER_TRADE_UPDATE", cc.filled(int(triggered["o"]["ai"])),
                          "the stop's fill")
    await user.wait_async("ACCOUNT_UPDATE", cc.flat, "the stop closing the position")
    risk = await client.futures_coin_position_information()
    report["position_after"] = next(r["positionAmt"] for r in risk if r["symbol"] == s)


if __name__ == "__main__":
    cc.emit(asyncio.run(asyncio.wait_for(cycle(*sys.argv[1:4]), 180)))
