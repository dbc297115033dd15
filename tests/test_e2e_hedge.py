"""The hedge end to end: real ccxt over real HTTP and WebSocket against a live perpsim, on the
bundled scenarios (docs/contract.md, issue point 8). Each case runs the whole workflow
(plan → open → monitor → exit) through ``strategy.dryrun.dry_run`` and checks real numbers."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest

from perpsim.api.app import create_app
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig
from perpsim.fixtures import SCENARIOS_DIR
from perpsim.strategy.dryrun import dry_run
from perpsim.strategy.record import HedgeConfig, RunRecord
from perpsim.strategy.report import write_report
from perpsim.strategy.results import attribution, contract_size_usd, effectiveness, to_json

SATOSHI = D("0.00000001")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """A live server of our own: dry_run resets it to each scenario from the scenario's own
    start (the session server keeps a fixed start time across resets)."""
    with serve_in_thread(create_app(ServerConfig())) as url:
        yield url


def run(base_url: str, scenario: str, **config: Any) -> RunRecord:
    """One dry run of ``HedgeConfig(**config)`` on a bundled scenario (seed 0)."""
    return asyncio.run(dry_run(base_url, HedgeConfig(**config), scenario=scenario,
                               profile="binance_coinm", seed=0))


def scenario_end(base_url: str) -> int:
    end: int = httpx.get(f"{base_url}/control/state").json()["scenario_end"]
    return end


def journal(base_url: str) -> list[dict[str, Any]]:
    text = httpx.get(f"{base_url}/control/journal").text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def change_pct(new: D, old: D) -> D:
    return (new - old) / old * 100


def test_calm_holds_the_usd_value_and_receives_funding(base_url: str, tmp_path: Path) -> None:
    record = run(base_url, "calm")
    att = attribution(record)
    assert not record.liquidated
    assert record.contracts == 2998  # 5 BTC × 60,000 / 100, less what the fee needs
    assert abs(change_pct(att.end_value_usd_hedged, att.start_value_usd)) < 1
    assert record.funding_btc > 0  # perp over the index: shorts receive
    assert record.end_ms is not None
    assert record.end_ms >= scenario_end(base_url)
    assert record.samples[-1].position_contracts == 0
    assert att.other_btc == 0  # every coin explained by futures PnL, funding and fees
    result = to_json(record)
    assert D(result["funding_btc"]) == record.funding_btc
    # the HTML report of a real run carries its numbers
    text = write_report(record, tmp_path / "calm.html", scenario="calm",
                        profile="binance_coinm", seed=0).read_text(encoding="utf-8")
    assert '"name":"hedged (spot + short)"' in text
    assert f"{record.contracts:,} contracts" in text


def test_crash_hedged_value_holds_while_unhedged_falls(base_url: str) -> None:
    record = run(base_url, "crash")
    att = attribution(record)
    assert not record.liquidated
    assert abs(change_pct(att.end_value_usd_hedged, att.start_value_usd)) < 2
    assert change_pct(att.end_value_usd_unhedged, att.start_value_usd) < -25
    eff = effectiveness(record)
    assert eff.max_drawdown_unhedged_pct > 25
    assert eff.max_drawdown_hedged_pct < 2
    assert eff.variance_reduction is not None
    assert eff.variance_reduction > D("0.95")
    assert record.futures_pnl_btc > 1  # the short paid for the fall in coin


def test_squeeze_with_the_1x_coin_collateralised_short(base_url: str) -> None:
    record = run(base_url, "squeeze")
    att = attribution(record)
    assert not record.liquidated
    assert not any(e["type"].startswith("liquidation") for e in record.events)
    assert all(s.liquidation_price_usd is None or s.liquidation_price_usd > 2 * s.mark_usd
               for s in record.samples)
    assert change_pct(att.end_value_usd_unhedged, att.start_value_usd) > 25
    assert abs(change_pct(att.end_value_usd_hedged, att.start_value_usd)) < 2


THIN_5X = {"spot_btc": D(1), "collateral_btc": D("0.3"), "leverage": 5,
           "margin_mode": "isolated"}


def test_squeeze_5x_thin_collateral_survives_on_top_ups(base_url: str) -> None:
    record = run(base_url, "squeeze", **THIN_5X)
    assert record.contracts == 600
    assert not record.liquidated
    assert record.topups_btc > D("0.1")
    assert any(e["type"] == "topup" for e in record.events)
    result = to_json(record)
    assert result["liquidated"] is False
    assert D(result["min_liquidation_distance_pct"]) > 0
    att = attribution(record)
    assert abs(change_pct(att.end_value_usd_hedged, att.start_value_usd)) < 2


def test_squeeze_5x_thin_collateral_without_top_ups_is_liquidated(base_url: str) -> None:
    record = run(base_url, "squeeze", **THIN_5X, topup=False)
    assert record.liquidated
    assert record.topups_btc == 0
    assert "liquidat" in record.exit_reason
    result = to_json(record)
    assert result["liquidated"] is True
    assert result["min_liquidation_distance_pct"] == "0.00"
    assert any(e["type"] == "liquidation" for e in result["events"])
    assert record.end_ms is not None
    assert record.end_ms < scenario_end(base_url)
    # the liquidation's loss shows in the attribution: the margin is gone, the hedge with it
    att = attribution(record)
    assert att.futures_pnl_btc + att.other_btc < D("-0.15")
    assert att.end_value_usd_hedged < att.start_value_usd
    assert att.end_value_usd_unhedged > att.start_value_usd


def test_funding_flip_exits_on_the_funding_budget(base_url: str) -> None:
    record = run(base_url, "funding_flip", funding_budget_btc=D("0.005"))
    assert record.exit_reason == "funding_budget"
    [detail] = [e["detail"] for e in record.events if e["type"] == "exit"]
    assert "at the predicted rate" in detail
    assert record.end_ms is not None
    end = scenario_end(base_url)
    assert record.end_ms < end - 12 * 3_600_000  # well before the last row
    # closed BEFORE the settlement that would have breached it: never past the budget
    paid = D(0)
    for e in record.events:
        if e["type"] == "funding.payment":
            paid -= D(e["amount"])
            assert paid <= D("0.005"), e
    assert record.funding_btc >= D("-0.005")
    assert all(e["time"] < record.end_ms for e in record.events
               if e["type"] == "funding.payment")
    assert not record.liquidated
    assert record.samples[-1].position_contracts == 0


def day_rates() -> dict[int, D]:
    """The funding rates recorded in real-2022-12-13.csv, by epoch ms."""
    from perpsim.sim.synthetic import parse_time_ms

    rates = {}
    with (SCENARIOS_DIR / "real-2022-12-13.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["funding_rate"]:
                rates[parse_time_ms(row["time"], "time")] = D(row["funding_rate"])
    return rates


def test_real_day_completes_and_funding_is_the_days_data(base_url: str) -> None:
    record = run(base_url, "real-2022-12-13")
    assert not record.liquidated
    assert record.end_ms is not None
    assert record.end_ms >= scenario_end(base_url)
    rates = day_rates()
    assert len(rates) == 3
    payments = [e["payload"] for e in journal(base_url) if e["type"] == "funding.payment"]
    # the position is open at 08:00 and 16:00 (opened just after the 00:00 settlement)
    assert [p for p in payments if p["position_qty"] == 0] == []
    times = [e["time_ms"] for e in journal(base_url) if e["type"] == "funding.payment"]
    assert times == sorted(rates)[1:]
    expected = D(0)
    for t, payment in zip(times, payments, strict=True):
        assert D(payment["rate"]) == rates[t]  # the day's recorded rate, settled as given
        qty, mark = D(payment["position_qty"]), D(payment["mark"])
        amount = -qty * contract_size_usd(record) / mark * rates[t]
        assert abs(D(payment["amount"]) - amount) <= SATOSHI
        expected += D(payment["amount"])
    assert record.funding_btc == expected
    assert record.funding_btc < 0  # negative rates that day: the short paid
    assert sum(D(e["amount"]) for e in record.events if e["type"] == "funding.payment") \
        == expected


def test_hedge_ratio_and_exit_targets(base_url: str) -> None:
    """A half hedge with a stop below: exits on the price, and the result is half hedged."""
    record = run(base_url, "crash", hedge_ratio=D("0.5"), exit_below_usd=D(50000))
    assert record.contracts == 1500
    assert record.exit_price_usd is not None
    assert record.exit_price_usd < 51000
    assert record.exit_reason == "price_below"
    att = attribution(record)
    # half of the fall to ~50,000 is hedged: the value falls roughly half as much
    unhedged = change_pct(att.end_value_usd_unhedged, att.start_value_usd)
    hedged = change_pct(att.end_value_usd_hedged, att.start_value_usd)
    assert unhedged < -10
    assert unhedged / 2 - 3 < hedged < unhedged / 2 + 3
