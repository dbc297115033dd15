"""The monitor's stream path on the Bybit wire in a live (realtime) run: ccxt.pro.bybit's
watch_ticker / watch_orders / watch_positions / watch_balance against perpsim's
``/v5/public/inverse`` and ``/v5/private``, read through the venue (strategy/venue.py) into the
monitor's live view — the same loops a Binance client runs on ``markPriceUpdate`` and the user
stream. Every wait is bounded; the server binds 127.0.0.1 and stops with the module."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from perpsim.api.bybit_v5.streams import hub_for
from perpsim.strategy.connect_bybit import connect_bybit
from perpsim.strategy.monitor import Monitor
from perpsim.strategy.resilience import resilient
from perpsim.strategy.venue import BYBIT_INVERSE

from live_market import START, START_MS, Market, until

SYMBOL = "BTC/USD:BTC"
PRIVATE = {"order", "position", "wallet"}
D = Decimal


def subscribed(market: Market, account_id: str) -> bool:
    """The account's private connection is subscribed to its order, position and wallet."""
    hub = hub_for(market.state)
    return any(c.account_id == account_id and set(c.private_topics) >= PRIVATE
               for c in list(hub.conns))


async def _stream(market: Market, creds: dict[str, str]) -> None:
    ex = resilient(connect_bybit(market.base_url, creds["api_key"], creds["api_secret"],
                                 mode="pro"))
    events: list[str] = []
    marks: list[tuple[Decimal, Decimal | None]] = []
    try:
        await BYBIT_INVERSE.credentials_set(ex)
        tiers = BYBIT_INVERSE.tiers((await ex.fetch_leverage_tiers([SYMBOL]))[SYMBOL])
        monitor = Monitor(ex, SYMBOL, tiers=tiers, start_ms=START_MS, on_event=events.append,
                          on_mark=lambda mark, index: marks.append((mark, index)))
        monitor.start()
        assert monitor.streaming  # ccxt.pro.bybit streams (its tickers carry the mark)
        try:
            await until(lambda: monitor.live.mark_usd is not None, "a ticker frame", 20)
            # The market moves: the next tickers frames carry the new mark and index.
            market.prices("50000", "50100", symbol="BTCUSD")
            await until(lambda: monitor.live.index_usd == D("50000"), "the new index", 20)
            assert monitor.live.mark_usd is not None
            assert monitor.live.mark_usd > D("49000")
            assert marks[-1] == (monitor.live.mark_usd, D("50000"))
            # Our order: order, position and wallet frames on the private stream (once the
            # monitor's subscriptions have reached the server: an order before them is
            # seen by the next REST resync, not by the stream).
            await until(lambda: subscribed(market, creds["account_id"]),
                        "the private subscriptions", 20)
            await ex.create_order(SYMBOL, "market", "sell", 100)
            await until(lambda: monitor.live.position_contracts == -100, "the short", 20)
            await until(lambda: {"order.update", "position", "balance"} <= set(events),
                        "order, position and balance frames", 20)
            await ex.create_order(SYMBOL, "market", "buy", 100, None, {"reduceOnly": True})
            await until(lambda: monitor.live.position_contracts == 0, "flat again", 20)
            assert monitor.gaps == 0  # no stream failed on the way
        finally:
            await monitor.stop()
        assert not monitor.streaming
    finally:
        await ex.close()


def test_the_monitor_streams_bybit_frames_in_a_live_run(bybit_market: Market) -> None:
    bybit_market.post("reset", {"profile": "bybit_inverse", "scenario": "manual", "seed": 0,
                                "start": START, "clock": "realtime", "speed": 1.0})
    creds = bybit_market.account({"BTC": "1"})
    asyncio.run(asyncio.wait_for(_stream(bybit_market, creds), 120))
