"""The hedging client survives faults on the Bybit v5 wire (``bybit_inverse``) as it does on
Binance's (tests/test_fault_survival.py): the whole hedge (plan → open → monitor → exit,
ccxt.pro.bybit over HTTP + WebSocket, wrapped by strategy.resilience as strategy.dryrun does)
on a small ``calm`` run while perpsim answers as Bybit does — retCode 10006 and the
X-Bapi-Limit-* headers, 5xx with 10016, an order executed but its answer lost, an order
refused with a "try again" retCode — and then the venue's journal is read:

* the hedge completed: opened, held to the end, closed flat, every coin back in spot;
* no order was lost or duplicated: each orderLinkId appears in exactly one ``NEW``
  order.update, and the ids the venue knows are the ids the client says it placed;
* the coin is conserved: spot at the end = spot at the start + realised PnL − fees + funding,
  as the venue's own ledger (the journal) and the client's record both say;
* the fault really fired, and the client's counters show how it coped.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from perpsim.api.app import create_app
from perpsim.api.harness import Harness, install_harness
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig
from perpsim.strategy.clock import SteppedClock
from perpsim.strategy.connect import connect
from perpsim.strategy.record import HedgeConfig, RunRecord
from perpsim.strategy.resilience import (
    ResilientExchange,
    RetryPolicy,
    Stats,
    WallMs,
    clock_time_passer,
)
from perpsim.strategy.results import attribution
from perpsim.strategy.runner import run_hedge
from perpsim.strategy.venue import BYBIT_INVERSE

D = Decimal
HOUR = 3_600_000
SPOT_BTC = D("2")
ORDER_PATH = "/v5/order/create"
Faults = Callable[[int, str], list[dict[str, Any]]]  # (start ms, account id) → rules


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Harness]]:
    app = create_app(ServerConfig())
    harness = install_harness(app)
    with serve_in_thread(app) as url:
        yield url, harness


@dataclass
class Run:
    """One hedge under faults: what the client recorded and what the venue saw."""

    record: RunRecord
    journal: list[dict[str, Any]]
    faults: dict[str, Any]
    client: Stats
    account_id: str
    spot_end_btc: Decimal

    def fired(self, kind: str) -> int:
        return sum(f["fired"] for f in self.faults["faults"] if f["kind"] == kind)


async def _hedge(base_url: str, faults: Faults, wall: dict[str, int] | None) -> Run:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await http.delete("/control/faults")
        state = (await http.post("/control/reset", json={
            "scenario": "calm", "seed": 0, "clock": "stepped",
            "profile": "bybit_inverse"})).json()
        assert state["dialect"] == "bybit_v5"
        start = int(state["now"])
        account = (await http.post("/control/accounts",
                                   json={"balances": {"BTC": str(SPOT_BTC)}})).json()
        installed = await http.post("/control/faults", json=faults(start, account["account_id"]))
        assert installed.status_code == 201, installed.text
        config = HedgeConfig(end_ms=start + 8 * HOUR, decision_interval_ms=4 * HOUR,
                             spot_btc=SPOT_BTC)
        ex = connect(base_url, account["api_key"], account["api_secret"], mode="pro",
                     dialect="bybit_v5")
        clock = SteppedClock(base_url, symbol="BTCUSD", account_id=account["account_id"],
                             http=http)
        sleep = None
        wall_ms: WallMs | None = None
        if wall is not None:  # the rate budget's wall clock, moved only by the client's waits
            async def wait(seconds: float) -> None:
                wall["ms"] += math.ceil(seconds * 1000)
                await asyncio.sleep(0)
            sleep, wall_ms = wait, (lambda: wall["ms"])
        client = ResilientExchange(ex, RetryPolicy(seed=1), pass_time=clock_time_passer(clock),
                                   sleep=sleep, wall_ms=wall_ms)
        try:
            await BYBIT_INVERSE.credentials_set(client)
            record = await run_hedge(config, client, clock)
            balance = await ex.fetch_balance({"type": "spot"})
        finally:
            await clock.close()
            await ex.close()
        text = (await http.get("/control/journal")).text
        stats = (await http.get("/control/faults")).json()
        await http.delete("/control/faults")
    journal = [json.loads(line) for line in text.splitlines() if line]
    return Run(record, journal, stats, client.stats, account["account_id"],
               D(str(balance["total"]["BTC"])))


def hedge(served: tuple[str, Harness], faults: Faults, *, fake_wall: bool = False) -> Run:
    """The hedge with ``faults`` installed, checked for completeness, order integrity and
    conservation of the coin."""
    base_url, harness = served
    wall = {"ms": 1_800_000_000_000}
    real_wall = harness.faults.wall_ms
    if fake_wall:
        harness.faults.wall_ms = lambda: wall["ms"]
    try:
        run = asyncio.run(asyncio.wait_for(
            _hedge(base_url, faults, wall if fake_wall else None), 180))
    finally:
        harness.faults.wall_ms = real_wall
    record = run.record
    assert record.exit_reason == "end"
    assert not record.liquidated
    assert record.contracts > 1000  # 2 BTC at ~60,000 in $100 contracts
    updates = [e["payload"] for e in run.journal if e["type"] == "order.update"
               and e["payload"]["account_id"] == run.account_id]
    new = Counter(u["client_order_id"] for u in updates if u["execution"] == "NEW")
    assert [cid for cid, n in new.items() if n > 1] == []  # nothing duplicated
    placed = {e["client_order_id"] for e in record.events
              if e["type"] in ("order.placed", "order.crossed")}
    assert set(new) == placed  # nothing lost, nothing unknown to the client
    filled: dict[int, tuple[str, int]] = {}
    for u in updates:
        filled[u["order_id"]] = (u["side"], int(u["filled"]))
    assert sum(q for side, q in filled.values() if side == "SELL") == record.contracts
    assert sum(q for side, q in filled.values() if side == "BUY") == record.contracts
    assert updates[-1]["position_qty"] == 0  # flat at the end
    assert record.samples[-1].futures_equity_btc == 0  # collateral back in the spot wallet
    # Coin in = coin out + fees − funding income − realised PnL: the venue's spot wallet
    # against what the client accounted from Bybit's executions and closed PnL.
    assert record.start_btc == SPOT_BTC
    assert record.fees_btc > 0
    assert run.spot_end_btc == (SPOT_BTC + record.futures_pnl_btc + record.funding_btc
                                - record.fees_btc)
    assert attribution(record).other_btc == 0
    return run


def test_survives_rate_limits_by_waiting_for_bybits_reset_stamp(
        served: tuple[str, Harness]) -> None:
    # Every v5 request weighs 1 in a budget counted on a wall clock that moves only while the
    # client waits. Bybit says retCode 10006 and when the window resets
    # (X-Bapi-Limit-Reset-Timestamp); a client sending before the reset is banned (HTTP 403).
    run = hedge(served, lambda start, account: [
        {"kind": "rate_limit", "limit": 40, "interval_ms": 1000, "path": "/v5/*"}],
        fake_wall=True)
    (rule,) = run.faults["faults"]
    assert rule["fired"] >= 1
    assert rule["bans"] == 0  # never banned: the client waited for the reset
    assert run.client.rate_waits >= 1


def test_survives_5xx_and_an_order_executed_whose_answer_was_lost(
        served: tuple[str, Harness]) -> None:
    # The first order is executed but its answer is a 503 (10016): the client finds it by its
    # orderLinkId and does not place it again; a later order meets a 500 it did not run under.
    run = hedge(served, lambda start, account: [
        {"kind": "http_5xx", "status": 503, "executed": True, "path": ORDER_PATH,
         "method": "POST", "count": 1},
        {"kind": "http_5xx", "status": 500, "path": ORDER_PATH, "method": "POST",
         "after": 2, "count": 1},
        {"kind": "http_5xx", "status": 503, "path": "/v5/market/*", "count": 2}])
    assert run.fired("http_5xx") == 4
    assert run.client.found_after_error == 1  # the executed one, by orderLinkId
    assert run.client.resubmits >= 1  # the one that did not run, sent again (same id)
    assert run.client.retries >= 2  # the market reads


def test_survives_order_rejects_that_say_try_again(served: tuple[str, Harness]) -> None:
    run = hedge(served, lambda start, account: [
        {"kind": "order_reject", "code": 10016, "msg": "System error. Please try again later.",
         "path": ORDER_PATH, "count": 2, "account_id": account}])
    assert run.fired("order_reject") == 2
    assert run.client.resubmits >= 2
