"""Funding interval variants: per-symbol intervals, scheduled changes, and the mark-basis rule.

Binance (BlockBeats report of the 2025-09-18 announcement, venue-sources.md 3): "Fund rate (F) =
[Average premium index (P) + clamp (interest rate − premium index (P), 0.05%, −0.05%)] / (8/N)"
for an N-hour interval, and "Price 2 = Price Index + Moving Average (30-second basis) ... 30
data points in 30 seconds". BitMEX announced moving XBTUSD from 8 h to 2 h funding
(venue-sources.md 17). perpsim scales the cap and floor by N/8 too, as Binance publishes an
adjusted cap per interval.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from perpsim.api.binance_coinm.market_wire import funding_info, premium_index
from perpsim.sim.errors import InvalidInput, ProfileError, ScenarioError
from perpsim.sim.exchange import Exchange
from perpsim.sim.funding_schedule import FundingSchedule, IntervalChange
from perpsim.sim.profile import Profile, load_profile
from perpsim.sim.scenario import SCENARIOS_DIR, load_scenario

from engine_helpers import BTC, ETH, HOUR_MS, SECOND_MS, T0, make_exchange, of_type, profile

D = Decimal


def _with_interval(hours: int, symbol: str = BTC) -> Profile:
    p = profile("binance_coinm")
    instruments = tuple(i.model_copy(update={"funding_interval_hours": hours})
                        if i.symbol == symbol else i for i in p.instruments)
    return p.model_copy(update={"instruments": instruments})


def _settled(events: list, symbol: str) -> list:
    return [e for e in of_type(events, "funding.settled") if e.payload["symbol"] == symbol]


# ---- the schedule ---------------------------------------------------------------------------


def test_schedule_times_windows_and_a_change() -> None:
    p = profile("binance_coinm")
    inst = p.instrument(BTC)
    plain = FundingSchedule.of(p, inst)
    assert plain.next_time(T0) == T0 + 8 * HOUR_MS
    assert plain.next_time(T0 - 1) == T0
    assert plain.window_ms(T0 + 1) == 8 * HOUR_MS
    changed = FundingSchedule.of(p, inst, (IntervalChange(BTC, T0 + 8 * HOUR_MS, 1),))
    assert changed.next_time(T0) == T0 + 8 * HOUR_MS  # the change instant still funds
    assert changed.window_ms(T0 + 8 * HOUR_MS) == 8 * HOUR_MS
    assert changed.next_time(T0 + 8 * HOUR_MS) == T0 + 9 * HOUR_MS
    assert changed.previous_time(T0 + 9 * HOUR_MS) == T0 + 8 * HOUR_MS
    assert changed.window_ms(T0 + 9 * HOUR_MS) == HOUR_MS
    assert changed.rate_scale(T0 + 9 * HOUR_MS) == (HOUR_MS, 8 * HOUR_MS)
    grid = np.arange(T0 - HOUR_MS, T0 + 12 * HOUR_MS, 15 * 60_000, dtype=np.int64)
    grid = np.sort(np.concatenate((grid, grid + 1, grid - 1)))
    assert changed.next_times(grid).tolist() == [changed.next_time(int(t) - 1) for t in grid]
    assert changed.windows(grid).tolist() == [float(changed.window_ms(int(t))) for t in grid]


def test_bad_changes_are_refused(tmp_path: Path) -> None:
    p = profile("binance_coinm")
    inst = p.instrument(BTC)
    with pytest.raises(ScenarioError, match="whole hour"):
        FundingSchedule.of(p, inst, (IntervalChange(BTC, T0 + HOUR_MS + 1, 4),))
    with pytest.raises(ScenarioError, match="after any earlier change"):
        FundingSchedule.of(p, inst, (IntervalChange(BTC, T0, 4), IntervalChange(BTC, T0, 2)))
    with pytest.raises(ScenarioError, match="dividing 24"):
        FundingSchedule.of(p, inst, (IntervalChange(BTC, T0, 5),))
    bad = profile("binance_coinm").model_dump(mode="json")
    bad["instruments"][0]["funding_interval_hours"] = 5
    (tmp_path / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"instruments\[0\]\.funding_interval_hours"):
        load_profile(tmp_path / "bad.json")


# ---- rates scaled by interval / 8 h ----------------------------------------------------------


@pytest.mark.parametrize(("hours", "rate"), [(8, "0.0001"), (4, "0.00005"), (1, "0.0000125")])
def test_flat_market_rate_is_the_interest_scaled_by_the_interval(hours: int, rate: str) -> None:
    """No premium: F = clamp(I, ±0.05 %) = 0.01 % per 8 h, scaled by N/8."""
    ex = make_exchange(_with_interval(hours))
    events = ex.advance_until(T0 + 8 * HOUR_MS)
    settled = _settled(events, BTC)
    assert [e.time_ms for e in settled] == [T0 + k * hours * HOUR_MS for k in range(1, 8 // hours
                                                                                   + 1)]
    assert {D(e.payload["rate"]) for e in settled} == {D(rate)}
    # ETHUSD_PERP keeps the profile's 8-hour schedule.
    assert [e.time_ms for e in _settled(events, ETH)] == [T0 + 8 * HOUR_MS]


def test_cap_is_scaled_too() -> None:
    """A 10 % premium hits the cap: 0.3 % per 8 h, 0.15 % per 4 h (fundingInfo says so too)."""
    ex = make_exchange(_with_interval(4))
    ex.set_prices(BTC, "60000", "66000")
    [settled] = _settled(ex.advance_until(T0 + 4 * HOUR_MS), BTC)
    assert D(settled.payload["rate"]) == D("0.0015")
    info = funding_info(ex, ex.instrument(BTC))
    assert (info["fundingIntervalHours"], D(info["adjustedFundingRateCap"])) == (4, D("0.0015"))
    assert funding_info(ex, ex.instrument(ETH))["fundingIntervalHours"] == 8
    assert D(premium_index(ex, ex.instrument(BTC))["interestRate"]) == D("0.00005")
    assert D(premium_index(ex, ex.instrument(ETH))["interestRate"]) == D("0.0001")


# ---- a scheduled change inside a scenario ----------------------------------------------------


def _scenario_file(tmp_path: Path, changes: list[dict[str, object]]) -> Path:
    spec = json.loads((SCENARIOS_DIR / "calm.json").read_text(encoding="utf-8"))
    spec["days"] = 1
    spec["funding_interval_changes"] = changes
    path = tmp_path / "calm_interval_change.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def test_scenario_changes_the_interval_at_a_funding_time(tmp_path: Path) -> None:
    path = _scenario_file(tmp_path, [{"symbol": BTC, "from": "2024-01-01T08:00:00Z",
                                      "interval_hours": 4}])
    scenario = load_scenario(path)
    assert scenario.funding_interval_changes == (IntervalChange(BTC, T0 + 8 * HOUR_MS, 4),)
    ex = Exchange(profile("binance_coinm"), scenario)
    events = ex.advance_until(T0 + 16 * HOUR_MS)
    assert [e.time_ms for e in _settled(events, BTC)] == [T0 + 8 * HOUR_MS, T0 + 12 * HOUR_MS,
                                                          T0 + 16 * HOUR_MS]
    assert ex.next_funding_time_ms(BTC) == T0 + 20 * HOUR_MS


def test_a_pair_name_changes_the_interval_on_any_profile(tmp_path: Path) -> None:
    """"BTCUSD" moves BTCUSD_PERP on Binance and XBTUSD on BitMEX alike; 04:00 is a BitMEX
    funding time, and on Binance it closes a 4-hour window paid at half the 8-hour rate."""
    path = _scenario_file(tmp_path, [{"symbol": "BTCUSD", "from": "2024-01-01T04:00:00Z",
                                      "interval_hours": 2}])
    scenario = load_scenario(path)
    binance = Exchange(profile("binance_coinm"), scenario)
    bitmex = Exchange(profile("bitmex_xbtusd"), scenario)
    assert binance.funding_schedules[BTC].window_ms(T0 + 9 * HOUR_MS) == 2 * HOUR_MS
    assert bitmex.funding_schedules["XBTUSD"].next_time(T0 + 4 * HOUR_MS) == T0 + 6 * HOUR_MS
    settled = _settled(binance.advance_until(T0 + 6 * HOUR_MS), BTC)
    assert [(e.time_ms, D(e.payload["rate"])) for e in settled] == [
        (T0 + 4 * HOUR_MS, D("0.00005")), (T0 + 6 * HOUR_MS, D("0.000025"))]


@pytest.mark.parametrize(("changes", "error", "match"), [
    ([{"symbol": BTC, "from": "2024-01-01T09:30:00Z", "interval_hours": 4}], ScenarioError,
     "whole hour"),
    ([{"symbol": "XYZUSD_PERP", "from": "2024-01-01T08:00:00Z", "interval_hours": 4}],
     InvalidInput, "XYZUSD_PERP"),
    ([{"symbol": BTC, "from": 1.5, "interval_hours": 4}], ScenarioError, "from a time"),
    ([{"symbol": BTC, "interval_hours": 4}], ScenarioError, "exactly symbol"),
    ({"symbol": BTC}, ScenarioError, "a list"),
])
def test_bad_scenario_changes_name_the_problem(tmp_path: Path, changes: object,
                                               error: type[Exception], match: str) -> None:
    path = _scenario_file(tmp_path, changes)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        Exchange(profile("binance_coinm"), load_scenario(path))


# ---- Binance's mark basis: 30 seconds now, 2.5 minutes before 2025-09-18 --------------------


def test_30_second_basis_now_and_the_dated_2024_profile() -> None:
    """30 samples: one a second now, one every 5 seconds in binance_coinm_2024."""
    marks = {}
    for name in ("binance_coinm", "binance_coinm_2024"):
        ex = make_exchange(name)
        ex.advance(60 * SECOND_MS)
        ex.set_prices(BTC, "60000", "60300")
        ex.advance(30 * SECOND_MS)
        marks[name] = ex.mark_price(BTC)
    assert marks["binance_coinm"] == D("60300")  # all 30 samples see the +300 basis
    assert marks["binance_coinm_2024"] == D(60_000) + D(300) * 7 / 30  # 7 of 30 samples
    with pytest.raises(ProfileError):
        load_profile("binance_coinm_2023")
