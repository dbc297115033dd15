"""One full hedge cycle through ccxt only (REST + user stream), the control plane only steering.

Fund an account, isolated 1x, short the coin's USD value, advance past two funding times
(funding visible in fetch_funding_history and on the user stream), shock the price +50 %, the
position survives, close it reduce-only; balances and the ledger agree to the satoshi.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from perpsim.strategy.connect import connect

from live_market import Market, until

SYMBOL = "BTC/USD:BTC"
HOUR_MS = 3_600_000
SAT = Decimal("0.00000001")


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


async def _cycle(market: Market) -> dict[str, Any]:
    creds = market.account({"BTC": "1"})
    # connect() derives the WebSocket base (ws://host:port, it appends /ws) from the REST base.
    ex = connect(market.base_url, creds["api_key"], creds["api_secret"], mode="pro")
    stream_events: list[dict[str, Any]] = []
    try:
        await ex.load_markets()
        await ex.set_margin_mode("isolated", SYMBOL)
        await ex.set_leverage(1, SYMBOL)
        # 1 BTC at 60,000 USD: 600 contracts of 100 USD hedge it; keep room for the fee.
        order = await ex.create_order(SYMBOL, "market", "sell", 590)
        assert order["status"] == "closed"

        async def collect() -> None:
            while True:
                balance = await ex.watch_balance()
                stream_events.append(balance["info"])

        # A watch resolves only on frames sent after it is called: subscribe, let the user
        # stream connect, then move time.
        collector = asyncio.create_task(collect())
        await until(lambda: market.user_stream_open(creds["account_id"]), "the user stream")
        await asyncio.to_thread(market.advance, 17 * HOUR_MS)  # funding at 08:00 and 16:00
        await until(lambda: sum(1 for e in stream_events
                                if e.get("a", {}).get("m") == "FUNDING_FEE") >= 2,
                    "two FUNDING_FEE account updates")
        funding = await ex.fetch_funding_history(SYMBOL)
        shock = await asyncio.to_thread(market.prices, "90000", "90000")  # +50 %
        positions = await ex.fetch_positions([SYMBOL])
        close = await ex.create_order(SYMBOL, "market", "buy", 590, params={"reduceOnly": True})
        after = await ex.fetch_positions([SYMBOL])
        balance = await ex.fetch_balance()
        trades = await ex.fetch_my_trades(SYMBOL)
        collector.cancel()
        return {"creds": creds, "funding": funding, "shock": shock, "positions": positions,
                "close": close, "after": after, "balance": balance, "trades": trades,
                "stream": stream_events}
    finally:
        await ex.close()


def test_full_hedge_cycle_through_ccxt(market: Market) -> None:
    result = asyncio.run(asyncio.wait_for(_cycle(market), timeout=60))
    account_id = result["creds"]["account_id"]

    # Funding twice, received by the short (flat premium: +0.01 % per 8 h, longs pay shorts).
    funding = result["funding"]
    assert [f["timestamp"] for f in funding] == [1_704_096_000_000, 1_704_124_800_000]
    assert all(f["amount"] > 0 for f in funding)
    journal = market.control.get("/control/journal").text.splitlines()
    paid = [line for line in journal if '"type":"funding.payment"' in line]
    assert len(paid) == 2

    # The +50 % shock did not liquidate the 1x coin-collateralised short.
    assert all(e["type"] == "prices.set" for e in result["shock"]["events"])
    (position,) = result["positions"]
    assert position["contracts"] == 590
    assert position["side"] == "short"

    # Closed reduce-only: flat, and the account's coin adds up to the satoshi.
    assert result["close"]["status"] == "closed"
    assert result["after"] == [] or all(p["contracts"] == 0 for p in result["after"])
    view = market.control.get(f"/control/accounts/{account_id}").json()
    wallet = Decimal(view["balances"]["BTC"])
    realised = sum((_d(t["info"]["realizedPnl"]) for t in result["trades"]), Decimal(0))
    fees = sum((_d(t["fee"]["cost"]) for t in result["trades"]), Decimal(0))
    received = sum((_d(f["amount"]) for f in funding), Decimal(0))
    assert wallet == Decimal(1) + realised - fees + received
    assert _d(result["balance"]["BTC"]["total"]).quantize(SAT) == wallet
    # USD value held: the coin lost to the short is what the +50 % made the coin worth more.
    assert abs(wallet * 90_000 - 60_000) < 60_000 * Decimal("0.02")
    state = market.control.get("/control/state").json()
    assert state["ledger"]["total"] == state["ledger"]["deposits"]
    # The user stream carried both funding fees as ACCOUNT_UPDATE frames with reason FUNDING_FEE
    # (ccxt's watch_balance hands back the raw frame as ``info``).
    reasons = [info.get("a", {}).get("m") for info in result["stream"]]
    assert reasons.count("FUNDING_FEE") == 2
