"""The hedging client end to end against a live perpsim (real ccxt.pro over HTTP + WebSocket):
dry runs on bundled scenarios, and the executor's order handling on a manual market."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from perpsim.strategy.clock import LiveClock, SteppedClock, WaitResult
from perpsim.strategy.connect import connect
from perpsim.strategy.dryrun import dry_run
from perpsim.strategy.execution import Executor, LegResult
from perpsim.strategy.record import HedgeConfig, RunRecord
from perpsim.strategy.rules import WakeLevels
from perpsim.strategy.runner import run_hedge

from conftest import Market

D = Decimal
SYMBOL = "BTC/USD:BTC"
HOUR = 3_600_000


def journal(market: Market) -> list[dict[str, Any]]:
    """The whole event journal, each event flattened to {type, time, seq, **payload}."""
    response = market.control.get("/control/journal")
    assert response.status_code == 200, response.text
    rows = [json.loads(line) for line in response.text.splitlines() if line]
    return [{"type": r["type"], "time": r["time_ms"], "seq": r["seq"], **r["payload"]}
            for r in rows]


def run(market: Market, scenario: str, progress: Any = None,
        **changes: Any) -> tuple[RunRecord, str]:
    """A dry run on ``scenario``; the record and the account id it used."""
    config = HedgeConfig(**{"decision_interval_ms": 4 * HOUR, **changes})
    record = asyncio.run(dry_run(market.base_url, config, scenario=scenario, progress=progress))
    (created,) = [e for e in journal(market) if e["type"] == "account.created"]
    return record, created["account_id"]


def of_type(record: RunRecord, kind: str) -> list[dict[str, Any]]:
    """The record's timeline entries of one type."""
    return [e for e in record.events if e["type"] == kind]


# ---- dry runs ----------------------------------------------------------------------------------
def test_a_calm_dry_run_hedges_with_post_only_slices_and_returns_flat(market: Market) -> None:
    progress: list[tuple[float, int]] = []
    record, account_id = run(market, "calm", lambda f, t: progress.append((f, t)),
                             max_order_contracts=1000)
    events = journal(market)
    mine = [e for e in events if e.get("account_id") == account_id]
    # Plan: 5 BTC at 60,000, 1x: 2,998 contracts (the collateral also pays the fee).
    assert record.contracts == record.plan["contracts"] == 2998
    assert record.exit_reason == "end"
    assert not record.liquidated
    assert record.end_ms is not None
    assert record.end_ms == record.config.end_ms
    (flat,) = of_type(record, "flat")
    assert flat["time"] < record.end_ms
    # Opened with post-only orders, sliced at 1,000 contracts; maker fills or the bounded
    # wait's crossing, never anything else.
    placed = of_type(record, "order.placed")
    assert placed
    assert all(e["post_only"] for e in placed)
    sent = [e for e in mine if e["type"] == "order.update" and e["execution"] == "NEW"]
    assert all(e["qty"] <= 1000 for e in sent)
    opening = {e["client_order_id"] for e in sent if "-open-" in e["client_order_id"]}
    assert {cid.split("-")[3] for cid in opening} == {"0", "1", "2"}  # three slices
    fills = [e for e in mine if e["type"] == "order.update" and e["execution"] == "TRADE"]
    assert any(e["maker"] for e in fills)
    for fill in fills:
        assert fill["maker"] or fill["time_in_force"] == "IOC"
    assert all(e["time_in_force"] in ("GTX", "IOC") for e in sent)
    assert all(e["reduce_only"] for e in sent if "-close-" in e["client_order_id"])
    # Flat, collateral back in spot, nothing left in futures.
    state = market.control.get(f"/control/accounts/{account_id}").json()
    assert state["positions"] == []
    assert D(state["balances"]["BTC"]) == 0
    final = record.samples[-1]
    assert final.position_contracts == 0
    assert D(state["spot_balances"]["BTC"]) == final.spot_btc
    assert of_type(record, "transfer")[-1]["to"] == "spot"
    # The record adds up: coin at the end = start + futures PnL + funding − fees.
    assert final.spot_btc == (record.start_btc + record.futures_pnl_btc + record.funding_btc
                              - record.fees_btc)
    paid = sum((D(str(e["amount"])) for e in mine if e["type"] == "funding.payment"), D(0))
    assert record.funding_btc == paid > 0  # calm: the perp trades over the index, shorts receive
    # 3 days × 3 fundings; not the one at the very start, nor the one at the end instant
    # (the hedge is flat by then)
    assert len(of_type(record, "funding.payment")) == 8
    commissions = sum((D(str(e["commission"])) for e in fills), D(0))
    assert record.fees_btc == commissions
    assert record.entry_price_usd is not None
    assert record.exit_price_usd is not None
    # The ledger is conserved and the dollar value was locked.
    ledger = market.control.get("/control/state").json()["ledger"]
    assert ledger["total"] == ledger["deposits"]
    start_usd = record.start_btc * record.start_index_usd
    assert abs(final.hedged_value_usd - start_usd) / start_usd < D("0.002")
    # Coarse decisions: a sample per 4 hours or so, not per minute.
    assert 15 <= len(record.samples) <= 40
    # The progress callback ran from start to end.
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions)
    assert fractions[0] < 0.01
    assert fractions[-1] == 1.0
    assert progress[-1][1] == record.end_ms
    # The timeline is in time order and tells the story.
    times = [e["time"] for e in record.events]
    assert times == sorted(times)
    kinds = [e["type"] for e in record.events]
    assert kinds[0] == "plan"
    assert kinds.index("exit") < kinds.index("flat") < len(kinds) - 1


def test_a_squeeze_tops_up_at_the_wake_level(market: Market) -> None:
    record, account_id = run(market, "squeeze", collateral_btc=D(2), leverage=5,
                             decision_interval_ms=8 * HOUR)
    topups = of_type(record, "topup")
    assert topups, record.events
    # The stepped clock woke where the distance crossed 15 %, not at the next 8-hour decision.
    for topup in topups:
        distance = D(topup["reason"].split("%")[0].split()[-1])
        # The reason shows the distance to 0.01 %: a crossing just under 15 % reads "15.00".
        assert D(13) < distance <= D(15)
    assert record.topups_btc == sum((D(t["amount"]) for t in topups), D(0))
    moved = [e for e in journal(market) if e["type"] == "margin.transfer"
             and e["account_id"] == account_id]
    assert sum((D(str(e["amount"])) for e in moved), D(0)) == record.topups_btc
    assert record.end_ms is not None
    assert not any(e["type"] == "liquidation.triggered" for e in journal(market)
                   if e.get("account_id") == account_id and e["time"] < record.end_ms - HOUR)


def test_without_top_ups_the_squeeze_liquidates_and_the_run_says_so(market: Market) -> None:
    record, account_id = run(market, "squeeze", collateral_btc=D(2), leverage=5, topup=False,
                             decision_interval_ms=8 * HOUR)
    assert record.liquidated
    assert record.exit_reason == "liquidated"
    kinds = {e["type"] for e in record.events}
    assert {"warning", "liquidation", "margin.call", "liquidation.triggered"} <= kinds
    (trigger,) = [e for e in journal(market) if e["type"] == "liquidation.triggered"
                  and e["account_id"] == account_id]
    liquidation = of_type(record, "liquidation")[0]
    assert liquidation["time"] == trigger["time"]  # woken by stop_on, not a later decision
    state = market.control.get(f"/control/accounts/{account_id}").json()
    assert state["positions"] == []
    assert D(state["balances"]["BTC"]) == 0  # what was left went back to spot


def test_a_dry_run_is_deterministic(market: Market) -> None:
    # Same scenario, seed and config: the same requests, so the same journal byte for byte,
    # and the same record (client order ids included).
    runs = []
    for _ in range(2):
        record, _ = run(market, "squeeze", collateral_btc=D(2), leverage=5,
                        decision_interval_ms=8 * HOUR)
        runs.append((market.control.get("/control/journal").text, record.events, record.samples))
    assert runs[0] == runs[1]


# ---- the same runner in real time ---------------------------------------------------------------
def test_the_live_clock_runs_the_same_hedge_on_a_realtime_market(market: Market) -> None:
    # perpsim in realtime mode at 2,000× (1 simulated hour ≈ 1.8 s): the runner sleeps with
    # asyncio and wakes on the WebSocket streams, with the very same ccxt calls.
    market.post("reset", {"scenario": "calm", "clock": "realtime", "speed": 2000})
    account = market.account({"BTC": "5"})

    async def go() -> RunRecord:
        ex = connect(market.base_url, account["api_key"], account["api_secret"], mode="pro")
        try:
            clock = LiveClock(ex, speed=2000)
            now = await clock.now_ms()
            config = HedgeConfig(end_ms=now + HOUR // 2, decision_interval_ms=10 * 60_000)
            return await run_hedge(config, ex, clock)
        finally:
            await ex.close()

    record = asyncio.run(go())
    assert record.exit_reason == "end"
    assert record.contracts > 2900
    final = record.samples[-1]
    assert final.position_contracts == 0
    assert final.spot_btc == (record.start_btc + record.futures_pnl_btc + record.funding_btc
                              - record.fees_btc)
    state = market.control.get(f"/control/accounts/{account['account_id']}").json()
    assert state["positions"] == []
    assert D(state["spot_balances"]["BTC"]) == final.spot_btc


def test_the_live_clock_wakes_on_levels_events_and_time() -> None:
    class Venue:
        """fetch_time of a venue whose clock runs 1,000× the wall clock."""

        def __init__(self) -> None:
            self.t0 = time.monotonic()

        async def fetch_time(self) -> int:
            return 1_000_000 + int((time.monotonic() - self.t0) * 1_000_000)

    async def scenario() -> list[WaitResult]:
        clock = LiveClock(Venue(), speed=1000)
        results = []
        # a mark update crossing the level wakes the wait
        task = asyncio.create_task(clock.wait(10**9, wake=WakeLevels(mark_above=D(61000))))
        await asyncio.sleep(0.01)
        clock.notify_mark(D(60990), None)  # not yet
        await asyncio.sleep(0.01)
        assert not task.done()
        clock.notify_mark(D(61000), None)
        results.append(await task)
        # a watched event wakes it; an unwatched one does not
        task = asyncio.create_task(clock.wait(10**9, stop_on=("order.update",)))
        await asyncio.sleep(0.01)
        clock.notify_event("balance")
        await asyncio.sleep(0.01)
        assert not task.done()
        clock.notify_event("order.update")
        results.append(await task)
        # otherwise time passes (50 simulated seconds = 50 ms)
        start = await clock.now_ms()
        results.append(await clock.wait(start + 50_000))
        return results

    woken, poked, timed = asyncio.run(scenario())
    assert (woken.reason, woken.stopped) == ("wake", "wake")
    assert (poked.reason, poked.stopped) == ("event", "order.update")
    assert timed.reason == "time"


# ---- the executor on a manual market -----------------------------------------------------------
class PriceMovingClock(SteppedClock):
    """A stepped clock that moves the manual market's perp price at each wait."""

    def __init__(self, market: Market, account_id: str, moves: list[str]) -> None:
        super().__init__(market.base_url, symbol="BTCUSD_PERP", account_id=account_id)
        self.market, self.moves = market, moves

    async def wait(self, until_ms: int, *, wake: WakeLevels | None = None,
                   stop_on: Any = ()) -> WaitResult:
        if self.moves:
            price = self.moves.pop(0)
            await self.http.post("/control/prices", json={"symbol": "BTCUSD_PERP",
                                                          "index": price, "perp": price})
        return await super().wait(until_ms, wake=wake, stop_on=stop_on)


def with_executor(market: Market, moves: list[str], body: Callable[[Executor], Coroutine[
        Any, Any, LegResult]], **settings: Any) -> tuple[LegResult, list[dict[str, Any]]]:
    """Run ``body`` with an executor on a fresh 10 BTC account; its result and the journal."""
    account = market.account({"BTC": "10"})
    market.prices("60000")

    async def go() -> LegResult:
        ex = connect(market.base_url, account["api_key"], account["api_secret"], mode="pro")
        clock = PriceMovingClock(market, account["account_id"], moves)
        try:
            await ex.load_markets()
            executor = Executor(ex, clock, SYMBOL, run_tag="t1", **{
                "max_order_contracts": 2000, "maker_wait_ms": 60_000,
                "reprice_interval_ms": 15_000, **settings})
            return await body(executor)
        finally:
            await clock.close()
            await ex.close()

    result = asyncio.run(go())
    return result, [e for e in journal(market) if e.get("account_id") == account["account_id"]]


def test_post_only_reprices_when_the_book_moves_and_fills_as_maker(market: Market) -> None:
    # The sell rests at the best ask 60,000.1; the market drops (best ask 59,990.1): re-priced;
    # then it rises through the order, which fills as maker at its own price.
    result, events = with_executor(market, ["59990", "59990.3"],
                                   lambda ex: ex.trade("open", "sell", 50))
    sent = [e for e in events if e["type"] == "order.update" and e["execution"] == "NEW"]
    assert [(e["client_order_id"], e["price"], e["time_in_force"]) for e in sent] == [
        ("hedge-t1-open-0-0", "60000.1", "GTX"), ("hedge-t1-open-0-1", "59990.1", "GTX")]
    assert result.filled == 50
    assert [(f.price_usd, f.maker) for f in result.fills] == [(D("59990.1"), True)]


def test_crossing_after_the_wait_handles_partial_fills(market: Market) -> None:
    # No wait: cross at once. The top bid holds 2,000 contracts: the IOC fills 2,000, the rest
    # expires, and the remainder crosses again at the (replenished) best bid.
    result, events = with_executor(market, [], lambda ex: ex.trade("open", "sell", 3000),
                                   maker_wait_ms=0, max_order_contracts=5000)
    sent = [e for e in events if e["type"] == "order.update" and e["execution"] == "NEW"]
    assert [(e["qty"], e["time_in_force"]) for e in sent] == [(3000, "IOC"), (1000, "IOC")]
    expired = [e for e in events if e["type"] == "order.update" and e["execution"] == "EXPIRED"]
    assert expired
    assert expired[0]["filled"] == 2000
    assert result.filled == 3000
    assert not any(f.maker for f in result.fills)


def test_an_order_is_never_sent_twice_after_a_transport_error(market: Market) -> None:
    async def flaky_trade(executor: Executor) -> LegResult:
        real = executor.ex.create_order
        calls: list[str] = []

        async def create_order(*args: Any, **kwargs: Any) -> Any:
            order = await real(*args, **kwargs)  # the venue got it ...
            calls.append(args[-1]["clientOrderId"])
            if len(calls) == 1:
                raise ccxt.RequestTimeout("the answer was lost")  # ... the client never knew
            return order

        executor.ex.create_order = create_order
        result = await executor.trade("open", "sell", 40)
        assert calls == ["hedge-t1-open-0-0"]
        return result

    result, events = with_executor(market, [], flaky_trade, maker_wait_ms=0)
    sent = [e for e in events if e["type"] == "order.update" and e["execution"] == "NEW"]
    assert [e["client_order_id"] for e in sent] == ["hedge-t1-open-0-0"]
    assert result.filled == 40


def test_close_buys_back_exactly_the_short_reduce_only_and_confirms_flat(market: Market) -> None:
    async def open_then_close(executor: Executor) -> LegResult:
        await executor.trade("open", "sell", 70)
        assert await executor.position_contracts() == -70
        closed = await executor.close_position()
        assert await executor.position_contracts() == 0
        return closed

    result, events = with_executor(market, [], open_then_close, maker_wait_ms=0,
                                   max_order_contracts=30)
    closing = [e for e in events if e["type"] == "order.update" and e["execution"] == "NEW"
               and "-close-" in e["client_order_id"]]
    assert [e["qty"] for e in closing] == [30, 30, 10]
    assert all(e["reduce_only"] and e["side"] == "BUY" for e in closing)
    assert result.filled == 70


@pytest.mark.parametrize("cid_parts", [("open", 0, 0), ("rb12", 99, 999)])
def test_client_order_ids_are_deterministic_and_short(cid_parts: tuple[str, int, int]) -> None:
    ex = connect("http://127.0.0.1:1", None, None, mode="sync")
    ex.markets = {SYMBOL: {"id": "BTCUSD_PERP", "symbol": SYMBOL,
                           "precision": {"price": 0.1}}}
    ex.markets_by_id = {"BTCUSD_PERP": [ex.markets[SYMBOL]]}
    executor = Executor(ex, None, SYMBOL, run_tag="abcdef12",  # type: ignore[arg-type]
                        max_order_contracts=1, maker_wait_ms=0, reprice_interval_ms=1)
    cid = executor.client_id(*cid_parts)
    assert cid == executor.client_id(*cid_parts)
    assert cid.startswith("hedge-abcdef12-")
    assert len(cid) <= 36
