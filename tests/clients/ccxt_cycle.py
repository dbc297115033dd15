"""One hedge cycle through ccxt for Python (ccxt.pro binancecoinm), unmodified.

Run as ``python ccxt_cycle.py <base_url> <api_key> <api_secret>``; prints a JSON report
(cycle_common.emit). Pointed at perpsim the way perpsim's own ``connect()`` does it (every URL
of ccxt's table moved, docs/clients.md); the same cycle as the other clients' scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt
import cycle_common as cc

from perpsim.strategy.connect import connect

UNIFIED = "BTC/USD:BTC"


async def collect(watch: Callable[[], Awaitable[Any]], keep: Callable[[Any], None]) -> None:
    """Keep what a ccxt watch_* returns until cancelled."""
    while True:
        keep(await watch())


async def wait_for(check: Callable[[], Any], what: str) -> Any:
    for _ in range(int(cc.WAIT_S / 0.02)):
        found = check()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


async def cycle(base_url: str, api_key: str, api_secret: str) -> dict[str, Any]:
    control = cc.Control(base_url)
    ex = connect(base_url, api_key, api_secret, mode="pro")
    report: dict[str, Any] = {"client": f"ccxt {ccxt.__version__}"}
    orders: list[dict[str, Any]] = []
    balances: list[dict[str, Any]] = []
    positions: list[dict[str, Any]] = []
    marks: list[Any] = []
    loops: list[asyncio.Task[None]] = []
    try:
        await ex.load_markets()
        report["symbols"] = [m["id"] for m in ex.markets.values()]
        book = await ex.fetch_order_book(UNIFIED, 5)
        report["bid"], report["ask"] = str(book["bids"][0][0]), str(book["asks"][0][0])
        report["mark_price"] = (await ex.fetch_funding_rate(UNIFIED))["info"]["markPrice"]
        loops = [
            asyncio.create_task(collect(lambda: ex.watch_orders(UNIFIED),
                                        lambda os: orders.extend(o["info"] for o in os))),
            asyncio.create_task(collect(ex.watch_balance, lambda b: balances.append(b["info"]))),
            asyncio.create_task(collect(lambda: ex.watch_positions([UNIFIED]),
                                        lambda ps: positions.extend(p["info"] for p in ps))),
            asyncio.create_task(collect(lambda: ex.watch_mark_price(UNIFIED), marks.append)),
        ]
        await wait_for(lambda: any(c.url.rsplit("/", 1)[-1].isalnum() and len(
            c.url.rsplit("/", 1)[-1]) >= 20 and c.connected.done() for c in ex.clients.values()),
            "the user stream")
        await wait_for(lambda: marks, "a mark price frame")
        await hedge(ex, control, orders, balances, positions, report)
    finally:
        for task in loops:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await ex.close()
    report["stream_filled_order_ids"] = sorted({o["i"] for o in orders
                                                if o.get("X") == "FILLED" and "i" in o})
    report["stream_algo_statuses"] = [o["X"] for o in orders if o.get("aid") == report["algo_id"]]
    report["stream_funding_fee_updates"] = sum(1 for b in balances if b["a"]["m"] == "FUNDING_FEE")
    report["stream_leverage_updates"] = None  # ccxt does not surface ACCOUNT_CONFIG_UPDATE
    report["stream_position_row_keys"] = sorted({",".join(p) for p in positions})
    report["stream_mark_frames"] = len(marks)
    return report


async def hedge(ex: Any, control: cc.Control, orders: list[dict[str, Any]],
                balances: list[dict[str, Any]], positions: list[dict[str, Any]],
                report: dict[str, Any]) -> None:
    def filled(order_id: int) -> Callable[[], Any]:
        return lambda: next((o for o in orders if o.get("i") == order_id
                             and o.get("X") == "FILLED"), None)

    report["leverage"] = (await ex.set_leverage(1, UNIFIED))["leverage"]
    await ex.set_margin_mode("isolated", UNIFIED)
    maker = await ex.create_order(UNIFIED, "limit", "sell", 1, float(cc.POST_ONLY_PRICE_USD),
                                  {"postOnly": True})
    canceled = await ex.cancel_order(maker["id"], UNIFIED)
    report["post_only"] = [maker["info"]["status"], maker["info"]["timeInForce"],
                           canceled["info"]["status"]]
    hedge_order = await ex.create_order(UNIFIED, "market", "sell", cc.HEDGE_CONTRACTS)
    report["hedge_order_id"] = int(hedge_order["id"])
    await wait_for(filled(report["hedge_order_id"]), "the hedge fill")
    await ex.add_margin(UNIFIED, 1)  # whole coins: ccxt formats it with the contract precision
    reduce = await ex.create_order(UNIFIED, "market", "buy", cc.REDUCE_CONTRACTS, None,
                                   {"reduceOnly": True})
    report["reduce_order_id"] = int(reduce["id"])
    await wait_for(filled(report["reduce_order_id"]), "the reduce-only fill")
    stop = await ex.create_order(UNIFIED, "market", "buy", cc.STOP_CONTRACTS, None,
                                 {"triggerPrice": cc.STOP_TRIGGER_USD, "reduceOnly": True})
    report["algo_id"] = int(stop["info"]["algoId"])
    await wait_for(lambda: any(o.get("aid") == report["algo_id"] for o in orders), "the stop")
    await asyncio.to_thread(control.advance, cc.PAST_FIRST_FUNDING_MS)
    await wait_for(lambda: any(b["a"]["m"] == "FUNDING_FEE" for b in balances), "the funding fee")
    report["funding_income"] = [f["info"]["income"]
                                for f in await ex.fetch_funding_history(UNIFIED)]
    report["funding_rates"] = [r["info"]["fundingRate"]
                               for r in await ex.fetch_funding_rate_history(UNIFIED)]
    oi = await ex.fetch_open_interest_history(UNIFIED, "1h", None, 1,
                                              {"pair": cc.PAIR, "contractType": "PERPETUAL"})
    report["open_interest_hist"] = oi[-1]["info"]["sumOpenInterest"]
    await asyncio.to_thread(control.prices, cc.STOP_TRIGGER_USD)
    triggered = await wait_for(lambda: next((o for o in orders if o.get("aid") == report[
        "algo_id"] and o.get("ai")), None), "the stop triggering")
    await wait_for(filled(int(triggered["ai"])), "the stop's fill")
    await wait_for(lambda: any(p["s"] == cc.SYMBOL and p["pa"] == "0" for p in positions),
                   "the position closed")
    (position,) = await ex.fetch_positions([UNIFIED]) or [{"info": {"positionAmt": "0"}}]
    report["position_after"] = position["info"]["positionAmt"]


if __name__ == "__main__":
    cc.emit(asyncio.run(asyncio.wait_for(cycle(*sys.argv[1:4]), 180)))
