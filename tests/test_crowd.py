"""Crowds described in a scenario (sim/crowd.py): validated with errors naming the field,
seeded, built through the engine's own account and order calls."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from perpsim.sim.crowd import CrowdSpec, build_crowd, draw_traders, parse_crowd
from perpsim.sim.errors import ScenarioError
from perpsim.sim.scenario import load_scenario
from tests.engine_helpers import BTC, MINUTE_MS, check_invariants, make_exchange, snapshot

SPEC: dict[str, Any] = {
    "accounts": 50, "seed": 11, "long_fraction": 0.7,
    "leverage": {"min": 2, "max": 20, "distribution": "log_uniform"},
    "contracts": {"min": 10, "max": 400},
    "margin_modes": {"isolated": 1, "cross": 3},
    "collateral_multiple": {"min": 1.0, "max": 2.0},
}


def spec(**change: Any) -> CrowdSpec:
    return CrowdSpec.model_validate(SPEC | change)


@pytest.mark.parametrize(("change", "field"), [
    ({"accounts": 0}, "crowd.accounts"),
    ({"bogus": 1}, "crowd.bogus"),
    ({"long_fraction": 1.5}, "crowd.long_fraction"),
    ({"leverage": {"min": 5, "max": 2}}, "crowd.leverage"),
    ({"leverage": {"min": 0.5, "max": 2}}, "crowd"),
    ({"contracts": {"min": 1, "max": 2, "distribution": "normal"}},
     "crowd.contracts.distribution"),
    ({"margin_modes": {"portfolio": 1}}, "crowd.margin_modes.portfolio"),
    ({"entry": {"mode": "window"}}, "crowd.entry"),
    ({"entry": {"mode": "at_start", "spread_pct": 1}}, "crowd.entry"),
    ({"collateral_multiple": {"min": 0.5, "max": 1}}, "crowd"),
])
def test_a_bad_crowd_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ScenarioError, match=rf"^s\.json: field {field}\b"):
        parse_crowd(SPEC | change, "s.json")


def test_a_bad_crowd_in_a_scenario_file_names_the_file_and_field(tmp_path: Path) -> None:
    data = json.loads(Path(load_scenario("cascade").source).read_text())
    data["crowd"]["leverage"] = {"min": 3}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError, match=r"bad\.json: field crowd\.leverage\.max: Field "
                                            "required"):
        load_scenario(path)
    data = json.loads(Path(load_scenario("cascade").source).read_text())
    data["book"] = {"BTCUSD_PERP": {"levels": 0}}
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError, match=r"bad\.json: field book\.BTCUSD_PERP\.levels"):
        load_scenario(path)


def test_an_unknown_book_symbol_is_refused_when_the_venue_is_built(tmp_path: Path) -> None:
    data = json.loads(Path(load_scenario("cascade").source).read_text())
    data["book"] = {"XBTUSD": {"refill_contracts_per_s": 5}}
    del data["crowd"]
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError, match=r"field book\.XBTUSD: binance_coinm has no such"):
        make_exchange(scenario=str(path))


def test_a_crowd_the_venue_cannot_hold_changes_nothing() -> None:
    ex = make_exchange()
    before = snapshot(ex)
    too_big = spec(leverage={"min": 120, "max": 125},
                   contracts={"min": 50_000, "max": 50_000})  # 83 BTC: bracket 5 caps at 10x
    with pytest.raises(ScenarioError, match=r"field crowd\.leverage: trader 0 \(50000 "
                                            r"contracts at 12\dx\)"):
        build_crowd(ex, too_big)
    with pytest.raises(ScenarioError, match=r"field crowd\.symbol: 'XBTUSD' is not an "):
        build_crowd(ex, spec(symbol="XBTUSD"))
    assert snapshot(ex) == before


def test_the_crowd_is_seeded_and_drawn_within_its_bounds() -> None:
    ex = make_exchange()
    traders = draw_traders(ex, spec(), 11)
    assert traders == draw_traders(make_exchange(), spec(), 11)
    assert traders != draw_traders(ex, spec(), 12)
    assert all(2 <= t.leverage <= 20 for t in traders)
    assert all(10 <= t.qty_contracts <= 400 for t in traders)
    longs = sum(t.side == "BUY" for t in traders)
    assert 25 <= longs <= 45  # 0.7 of 50, seeded
    assert {t.margin_mode for t in traders} == {"isolated", "cross"}
    assert all(t.entry_ms == ex.now_ms and t.limit_usd is None for t in traders)


def test_the_crowd_opens_through_the_order_path_at_the_start() -> None:
    ex = make_exchange()
    crowd = build_crowd(ex, spec())
    assert len(crowd.account_ids) == 50
    for n, (account_id, trader) in enumerate(zip(crowd.account_ids, crowd.traders,
                                                 strict=True)):
        pos = ex.position(account_id, BTC)
        assert pos.qty_contracts == trader.qty_contracts * (1 if trader.side == "BUY" else -1)
        assert pos.leverage == trader.leverage
        assert pos.margin_mode == trader.margin_mode
        assert ex.account(account_id).label == f"crowd-{n}"
        trades = [e for e in ex.journal if e.type == "order.update"
                  and e.payload["account_id"] == account_id
                  and e.payload["execution"] == "TRADE"]
        assert trades
        assert all(e.payload["client_order_id"] == f"crowd-{n}" for e in trades)
    [built] = [e for e in ex.journal if e.type == "crowd.built"]
    assert built.payload["accounts"] == 50
    check_invariants(ex)


def test_a_window_entry_opens_positions_over_the_window() -> None:
    ex = make_exchange()
    crowd = build_crowd(ex, spec(entry={"mode": "window", "window_minutes": 10}))
    start = ex.now_ms
    assert not any(ex.position(a, BTC).is_open for a in crowd.account_ids)
    ex.advance(5 * MINUTE_MS)
    half = sum(ex.position(a, BTC).is_open for a in crowd.account_ids)
    assert 0 < half < 50
    ex.advance(5 * MINUTE_MS)
    assert all(ex.position(a, BTC).is_open for a in crowd.account_ids)
    times = {e.time_ms for e in ex.journal if e.type == "order.update"
             and e.payload["execution"] == "TRADE"}
    assert len(times) > 40
    assert all(start <= t < start + 10 * MINUTE_MS for t in times)
    check_invariants(ex)


def test_an_around_start_entry_rests_limit_orders_around_the_price() -> None:
    ex = make_exchange()
    crowd = build_crowd(ex, spec(entry={"mode": "around_start", "spread_pct": 1}))
    limits = [t.limit_usd for t in crowd.traders]
    assert all(p is not None and abs(p / Decimal(60_000) - 1) <= Decimal("0.01") for p in limits)
    open_now = sum(ex.position(a, BTC).is_open for a in crowd.account_ids)
    resting = len(ex.books[BTC].open_orders())
    assert open_now + resting == 50
    assert 0 < open_now < 50
    ex.set_prices(BTC, "59300")  # the market comes down to the resting bids above 59,300
    assert sum(ex.position(a, BTC).is_open for a in crowd.account_ids) > open_now
    check_invariants(ex)
