"""A full hedge cycle through unmodified ccxt.bybit (sync, async and pro) against perpsim's
Bybit v5 dialect, the control plane only moving prices and time.

Markets, tickers, book, klines (last, mark, index), funding history, wallet, the spot ↔
contract transfer, leverage, isolated margin, post-only / reduce-only / conditional orders,
cancel, executions, a funding payment after an advance, and a liquidation the client sees
(position gone, the venue's CreateByLiq order; with pro also on the user and public streams).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from perpsim.strategy.connect_bybit import connect_bybit

from live_market import START, Market, until

SYMBOL = "BTC/USD:BTC"
ID = "BTCUSD"
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


async def _run(value: Any) -> Any:
    """The result of a sync call, or of an async one awaited."""
    return await value if inspect.isawaitable(value) else value


async def _raises(kind: type[Exception], call: Any) -> str:
    with pytest.raises(kind) as info:
        await _run(call())
    return str(info.value)


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


def _journal(market: Market, kind: str, account_id: str) -> list[dict[str, Any]]:
    lines = market.control.get("/control/journal").text.splitlines()
    events = [json.loads(line) for line in lines]
    return [e["payload"] for e in events
            if e["type"] == kind and e["payload"].get("account_id") == account_id]


async def _move(market: Market, price: str, ms: int) -> None:
    await asyncio.to_thread(market.prices, price, price, ID)
    await asyncio.to_thread(market.advance, ms)


async def _cycle(market: Market, ex: Any, creds: dict[str, str], pro: bool) -> dict[str, Any]:
    seen: dict[str, list[Any]] = {"orders": [], "positions": [], "balance": [],
                                  "liquidations": [], "trades": []}
    watchers: list[asyncio.Task[None]] = []

    def watch(name: str, method: Any, *args: Any) -> None:
        async def loop() -> None:
            while True:
                seen[name].append(await method(*args))
        watchers.append(asyncio.create_task(loop()))

    markets = await _run(ex.load_markets())
    market_info = markets[SYMBOL]
    assert (market_info["inverse"], market_info["swap"], market_info["settle"],
            market_info["contractSize"]) == (True, True, "BTC", 1.0)
    assert market_info["precision"]["price"] == 0.5
    if pro:
        watch("orders", ex.watch_orders, SYMBOL)
        watch("positions", ex.watch_positions, [SYMBOL])
        watch("balance", ex.watch_balance)
        watch("trades", ex.watch_my_trades, SYMBOL)
        watch("liquidations", ex.watch_liquidations, SYMBOL)
        await until(lambda: _subscribed(market, {"order", "position", "wallet", "execution"},
                                        f"allLiquidation.{ID}"), "the streams")
        first = await ex.watch_ticker(SYMBOL)
        assert first["last"] == 60_000
        book = await ex.watch_order_book(SYMBOL, 50)
        assert book["bids"][0][0] < book["asks"][0][0]
        (bar,) = (await ex.watch_ohlcv(SYMBOL, "1m"))[-1:]
        assert bar[4] == 60_000

    # Market data: two minutes at 60,000 then three at 61,000 give six one-minute candles.
    await asyncio.to_thread(market.advance, 2 * MINUTE_MS)
    await _move(market, "61000", 3 * MINUTE_MS)
    ticker = await _run(ex.fetch_ticker(SYMBOL))
    assert ticker["last"] == 61_000
    assert ticker["bid"] < ticker["ask"]
    assert _d(ticker["info"]["indexPrice"]) == 61_000
    book = await _run(ex.fetch_order_book(SYMBOL, 5))
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert book["bids"][0][0] < book["asks"][0][0]
    for price in ("last", "mark", "index"):
        params = {} if price == "last" else {"price": price}
        bars = await _run(ex.fetch_ohlcv(SYMBOL, "1m", limit=10, params=params))
        assert len(bars) == 6, price  # 00:00 … 00:05, oldest first after ccxt's reversal
        assert bars[0][0] < bars[-1][0]
        assert (bars[0][1], bars[-1][4]) == (60_000, pytest.approx(61_000, rel=1e-3)), price
    rate = await _run(ex.fetch_funding_rate(SYMBOL))
    assert rate["fundingTimestamp"] == 1_704_096_000_000  # next funding: 08:00 UTC
    tiers = await _run(ex.fetch_leverage_tiers([SYMBOL]))
    assert tiers[SYMBOL][0]["maxLeverage"] == 100

    # Wallet and the spot leg: coin moves contract → spot → contract.
    balance = await _run(ex.fetch_balance())
    assert balance["BTC"]["total"] == 1.0
    await _run(ex.transfer("BTC", 0.5, "contract", "spot"))
    spot = await _run(ex.fetch_balance({"type": "spot"}))
    assert spot["BTC"]["total"] == 0.5
    await _run(ex.transfer("BTC", 0.5, "spot", "contract"))
    assert (await _run(ex.fetch_balance()))["BTC"]["total"] == 1.0

    # Isolated margin and leverage (Bybit refuses a leverage it already has: 110043).
    await _run(ex.set_margin_mode("isolated", SYMBOL, {"leverage": 2}))
    await _run(ex.set_leverage(3, SYMBOL))
    message = await _raises(ccxt.BadRequest, lambda: ex.set_leverage(3, SYMBOL))
    assert "110043" in message
    (flat,) = await _run(ex.fetch_positions([SYMBOL]))
    assert (flat["info"]["tradeMode"], flat["leverage"]) == (1, 3)  # ccxt: marginMode None

    # Post-only: rests above the ask; when it would take it is accepted and cancelled at once,
    # as on Bybit. Reduce-only with no position is refused.
    ask = ticker["ask"]
    resting = await _run(ex.create_order(SYMBOL, "limit", "sell", 1000, ask + 500,
                                         {"postOnly": True}))
    open_orders = await _run(ex.fetch_open_orders(SYMBOL))
    assert [(o["id"], o["timeInForce"], o["postOnly"]) for o in open_orders] == [
        (resting["id"], "PO", True)]
    taker = await _run(ex.create_order(SYMBOL, "limit", "sell", 1000, ticker["bid"] - 500,
                                       {"postOnly": True}))
    cancelled = [o for o in await _run(ex.fetch_closed_orders(SYMBOL)) if o["id"] == taker["id"]]
    assert [(o["status"], o["filled"], o["info"]["rejectReason"]) for o in cancelled] == [
        ("canceled", 0, "EC_PostOnlyWillTakeLiquidity")]
    await _raises(ccxt.InvalidOrder, lambda: ex.create_order(
        SYMBOL, "market", "buy", 100, None, {"reduceOnly": True}))
    await _run(ex.cancel_order(resting["id"], SYMBOL))
    assert await _run(ex.fetch_open_orders(SYMBOL)) == []

    # The hedge: short 0.5 BTC of USD value; a conditional reduce-only stop buys 1,000 back
    # when the price rises to 64,000, a take-profit below is cancelled.
    short = await _run(ex.create_order(SYMBOL, "market", "sell", 30_000))
    stop = await _run(ex.create_order(SYMBOL, "market", "buy", 1000, None, {
        "triggerPrice": 64_000, "triggerDirection": "above", "reduceOnly": True}))
    take = await _run(ex.create_order(SYMBOL, "market", "buy", 1000, None, {
        "triggerPrice": 50_000, "triggerDirection": "below", "reduceOnly": True}))
    waiting = await _run(ex.fetch_open_orders(SYMBOL))
    assert sorted((o["id"], o["triggerPrice"], o["info"]["orderStatus"]) for o in waiting) == \
        sorted([(stop["id"], 64_000, "Untriggered"), (take["id"], 50_000, "Untriggered")])
    await _run(ex.cancel_order(take["id"], SYMBOL))
    await _move(market, "64500", MINUTE_MS)
    fired = await _run(ex.fetch_order(stop["id"], SYMBOL))
    assert (fired["status"], fired["filled"]) == ("closed", 1000)
    (position,) = await _run(ex.fetch_positions([SYMBOL]))
    assert (position["side"], position["contracts"]) == ("short", 29_000)
    trades = await _run(ex.fetch_my_trades(SYMBOL))
    assert sorted(t["order"] for t in trades) == sorted([short["id"], stop["id"]])
    assert sum(t["amount"] for t in trades if t["side"] == "sell") == 30_000

    # Funding at 08:00: the short receives (flat premium: +0.01 %, longs pay shorts).
    await _move(market, "64500", 8 * HOUR_MS)
    funding = await _run(ex.fetch_funding_history(SYMBOL))
    payments = _journal(market, "funding.payment", creds["account_id"])
    assert len(funding) == len(payments) == 1
    assert _d(funding[0]["amount"]) == -_d(payments[0]["amount"])  # execFee: what was paid
    assert funding[0]["timestamp"] == 1_704_096_000_000
    history = await _run(ex.fetch_funding_rate_history(SYMBOL))
    assert [h["timestamp"] for h in history] == [1_704_096_000_000]

    # A shock liquidates the isolated 3x short; the client sees the position gone and the
    # venue's CreateByLiq order.
    await _move(market, "100000", MINUTE_MS)  # above the 3x short's ~91,000 bankruptcy
    after = await _run(ex.fetch_positions([SYMBOL]))
    assert all(p["contracts"] == 0 for p in after), json.dumps([p["info"] for p in after])
    closed = await _run(ex.fetch_closed_orders(SYMBOL))
    assert "CreateByLiq" in [o["info"]["createType"] for o in closed]
    if pro:
        await until(lambda: any(row["s"] == ID for batch in seen["liquidations"]
                                for row in [b["info"] for b in batch]), "a liquidation frame")
        await until(lambda: any(p["contracts"] == 0 for batch in seen["positions"]
                                for p in batch), "the closed position on the stream")
        await until(lambda: any(o["info"]["createType"] == "CreateByLiq"
                                for batch in seen["orders"] for o in batch),
                    "the venue's liquidation order on the order stream")
        await until(lambda: any(b["BTC"]["total"] < 1 for b in seen["balance"]), "wallet")
        # the execution frames travel on their own topic: wait for the bust fill, not the wallet
        await until(lambda: any(t["info"]["execType"] == "BustTrade"
                                for batch in seen["trades"] for t in batch),
                    "the liquidation's BustTrade on the execution stream")
        executions = [t["info"] for batch in seen["trades"] for t in batch]
        assert {e["orderId"] for e in executions} >= {short["id"], stop["id"]}
    for task in watchers:
        task.cancel()
    return seen


def _subscribed(market: Market, private: set[str], public: str) -> bool:
    from perpsim.api.bybit_v5.streams import hub_for

    hub = hub_for(market.state)
    conns = list(hub.conns)
    return (any(private <= c.private_topics for c in conns)
            and any(public in c.topics for c in conns))


def _reset(market: Market) -> dict[str, str]:
    market.post("reset", {"profile": "bybit_inverse", "scenario": "manual", "seed": 0,
                          "start": START, "clock": "stepped", "speed": 1.0})
    return market.account({"BTC": "1"})


@pytest.mark.parametrize("mode", ["sync", "async", "pro"])
def test_hedge_cycle_through_ccxt_bybit(bybit_market: Market, mode: str) -> None:
    creds = _reset(bybit_market)
    ex = connect_bybit(bybit_market.base_url, creds["api_key"], creds["api_secret"],
                       mode=mode)  # type: ignore[arg-type]

    async def main() -> None:
        try:
            await _cycle(bybit_market, ex, creds, pro=mode == "pro")
        finally:
            if mode != "sync":
                await ex.close()

    asyncio.run(asyncio.wait_for(main(), timeout=90))
    state = bybit_market.control.get("/control/state").json()
    assert state["ledger"]["total"] == state["ledger"]["deposits"]


def test_bad_signature_and_unknown_key_are_bybit_auth_errors(bybit_market: Market) -> None:
    creds = _reset(bybit_market)
    wrong_secret = connect_bybit(bybit_market.base_url, creds["api_key"], "x" * 64)
    with pytest.raises(ccxt.AuthenticationError, match="10004"):
        wrong_secret.fetch_positions([SYMBOL])
    unknown = connect_bybit(bybit_market.base_url, "nobody", "x" * 64)
    with pytest.raises(ccxt.AuthenticationError, match="10003"):
        unknown.fetch_balance()


def test_every_api_url_points_at_perpsim() -> None:
    from perpsim.strategy.connect import all_api_urls

    ex = connect_bybit("http://127.0.0.1:9", "k", "s", mode="pro")
    urls = [u for u in all_api_urls(ex) if "://" in u]
    assert urls
    assert all(u.startswith(("http://127.0.0.1:9", "ws://127.0.0.1:9")) for u in urls)
    assert ex.urls["api"]["ws"]["private"]["contract"] == "ws://127.0.0.1:9/v5/private"
