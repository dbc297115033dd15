"""The whole hedge under faults, as tests/test_fault_survival.py (Binance COIN-M wire) and
tests/test_bybit_fault_survival.py (Bybit v5 wire) run it: plan → open → monitor → exit with
ccxt.pro over HTTP + WebSocket, wrapped by strategy.resilience as strategy.dryrun does, on the
bundled ``calm`` scenario while perpsim misbehaves; then the venue's journal is read and the run
checked for completeness, order integrity and conservation of the coin."""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

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
    clock_time_passer,
)
from perpsim.strategy.results import attribution
from perpsim.strategy.runner import run_hedge

HOUR_MS = 3_600_000
Faults = Callable[[int, str], list[dict[str, Any]]]  # (start ms, account id) → rules
Served = tuple[str, Harness]  # the server's base URL and its fault harness


@contextmanager
def served_with_faults() -> Iterator[Served]:
    """A perpsim server on 127.0.0.1 (free port) with the fault harness installed."""
    app = create_app(ServerConfig())
    harness = install_harness(app)
    with serve_in_thread(app) as url:
        yield url, harness


@dataclass(frozen=True)
class Wire:
    """What differs between the venues' runs: the profile and its wire, the hedged symbol's
    id, the coin held and how long the hedge runs."""

    profile: str
    dialect: str  # the profile's own wire, as /control/state names it
    symbol: str  # the venue's id of the perpetual, as the stepped clock asks for it
    spot_btc: Decimal
    hours: int
    min_contracts: int  # the whole coin hedged: spot × price / contract size, roughly


@dataclass
class Run:
    """One hedge under faults: what the client recorded and what the venue saw."""

    record: RunRecord
    journal: list[dict[str, Any]]
    faults: dict[str, Any]
    client: Stats
    account_id: str
    start_ms: int
    spot_end_btc: Decimal  # the spot wallet at the end, as the venue's wire reports it

    def fired(self, kind: str) -> int:
        return sum(f["fired"] for f in self.faults["faults"] if f["kind"] == kind)


async def _hedge(base_url: str, wire: Wire, faults: Faults, timeout_ms: int | None,
                 wall: dict[str, int] | None) -> Run:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await http.delete("/control/faults")
        state = (await http.post("/control/reset", json={
            "scenario": "calm", "seed": 0, "clock": "stepped", "profile": wire.profile})).json()
        assert state["dialect"] == wire.dialect
        start = int(state["now"])
        account = (await http.post("/control/accounts",
                                   json={"balances": {"BTC": str(wire.spot_btc)}})).json()
        installed = await http.post("/control/faults", json=faults(start, account["account_id"]))
        assert installed.status_code == 201, installed.text
        config = HedgeConfig(end_ms=start + wire.hours * HOUR_MS,
                             decision_interval_ms=4 * HOUR_MS, spot_btc=wire.spot_btc)
        ex = connect(base_url, account["api_key"], account["api_secret"], mode="pro",
                     config={"timeout": timeout_ms} if timeout_ms else None,
                     dialect=wire.dialect)
        clock = SteppedClock(base_url, symbol=wire.symbol, account_id=account["account_id"],
                             http=http)
        client = ResilientExchange(ex, RetryPolicy(seed=1), pass_time=clock_time_passer(clock),
                                   **_fake_wall(wall))
        try:
            await client.venue.credentials_set(client)
            record = await run_hedge(config, client, clock)
            balance = await ex.fetch_balance(dict(client.venue.spot_balance_params))
        finally:
            await clock.close()
            await ex.close()
        text = (await http.get("/control/journal")).text
        stats = (await http.get("/control/faults")).json()
        await http.delete("/control/faults")
    journal = [json.loads(line) for line in text.splitlines() if line]
    return Run(record, journal, stats, client.stats, account["account_id"], start,
               Decimal(str(balance["total"]["BTC"])))


def _fake_wall(wall: dict[str, int] | None) -> dict[str, Any]:
    """The client's sleep and wall clock on ``wall``, moved only by the client's waits (none:
    asyncio.sleep and the real clock)."""
    if wall is None:
        return {}

    async def wait(seconds: float) -> None:
        wall["ms"] += math.ceil(seconds * 1000)
        await asyncio.sleep(0)

    return {"sleep": wait, "wall_ms": lambda: wall["ms"]}


def hedge(served: Served, wire: Wire, faults: Faults, *, timeout_ms: int | None = None,
          fake_wall: bool = False) -> Run:
    """The hedge with ``faults`` installed, checked for completeness, order integrity and
    conservation of the coin. ``fake_wall``: rate budgets are counted on a wall clock that
    moves only while the client waits, the server's and the client's alike, so every request
    up to the first refusal falls in one window however slow the machine is."""
    base_url, harness = served
    wall = {"ms": 1_800_000_000_000}
    real_wall = harness.faults.wall_ms
    if fake_wall:
        harness.faults.wall_ms = lambda: wall["ms"]
    try:
        run = asyncio.run(asyncio.wait_for(
            _hedge(base_url, wire, faults, timeout_ms, wall if fake_wall else None), 180))
    finally:
        harness.faults.wall_ms = real_wall
    record = run.record
    assert record.exit_reason == "end"
    assert not record.liquidated
    assert record.contracts > wire.min_contracts
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
    # against what the client accounted from the venue's fills and funding.
    assert record.start_btc == wire.spot_btc
    assert record.fees_btc > 0
    assert run.spot_end_btc == (wire.spot_btc + record.futures_pnl_btc + record.funding_btc
                                - record.fees_btc)
    assert attribution(record).other_btc == 0
    return run
