"""``perpsim bench`` runs end to end and reports every figure (tiny sizes; never timed).

The benchmarks compare ratios measured in one run and are not assertions about speed; this only
checks the SHAPE of what comes out (each suite runs, agrees with its own checks, every key is a
finite non-negative number; the sizes and counts that cannot be 0 are positive), so a refactor
cannot silently break ``perpsim bench --json`` and a loaded machine cannot fail it.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest

from perpsim import bench

TINY = bench.Sizes(engine_days=(0.05, 0.1, 0.05), accounts=150, api_rounds=10,
                   api_seconds=0.3, api_clients=8, ws_subscribers=10, ws_seconds=0.3,
                   e2e_scenario="calm", data_days=0.05, crowd=(40, 0.5, 0.1, 60))

EXPECTED = {
    "engine_short_days", "engine_short_rows", "engine_short_s", "engine_short_rows_per_s",
    "engine_short_baseline_s", "engine_short_speedup", "engine_long_days", "engine_long_rows",
    "engine_long_s", "engine_long_rows_per_s", "engine_long_baseline_s", "engine_long_speedup",
    "engine_resolution_days", "engine_1s_s", "engine_100ms_s", "engine_100ms_over_1s_rows",
    "engine_100ms_over_1s_time", "engine_long_target_s",
    "liq_accounts", "liq_liquidations", "liq_per_liquidation_ms", "liq_per_liquidation_cpu_ms",
    "liq_per_row_no_crossing_us",
    "liq_step_one_row_ms", "liq_visited_instant_ms", "liq_crash_s", "liq_index_build_s",
    "api_order_p50_ms", "api_order_p99_ms", "api_floor_p50_ms", "api_floor_p99_ms",
    "api_public_floor_p50_ms", "api_order_over_floor_p50", "api_order_over_floor_p99",
    "api_orders_per_s", "api_orders_per_s_one_client", "api_concurrency_gain",
    "ws_subscribers", "ws_frames_per_s", "ws_frames_per_subscriber_per_s", "ws_delivered_share",
    "e2e_wall_s", "e2e_simulated_days", "e2e_days_per_wall_s",
    "data_days", "data_rows", "data_open_s", "data_memory_ratio", "data_naive_open_s",
    "data_naive_memory_ratio", "data_day_window_s", "data_store_over_naive_time",
    "data_whole_over_day_time",
    "sweep_runs", "sweep_serial_runs_per_s", "sweep_processes_2_runs_per_s",
    "sweep_dask_2_runs_per_s", "sweep_processes_2_over_serial", "sweep_dask_2_over_serial",
    "hedge_in_process_s", "hedge_wire_s", "hedge_wire_over_in_process",
    "hedge_in_process_cpu_s", "hedge_in_process_fresh_app_cpu_s", "hedge_wire_cpu_s",
    "hedge_requests", "hedge_app_fraction", "hedge_engine_share",
    "request_us_ping", "request_us_premiumIndex", "request_us_klines",
    "request_us_positionRisk", "request_us_account", "request_us_advance",
    "crowd_settle_positions", "crowd_settle_us_per_position", "crowd_levels_us_per_position",
    "crowd_settle_with_levels_us", "crowd_one_by_one_us_per_position",
    "crowd_one_by_one_with_levels_us", "crowd_one_by_one_over_batch", "crowd_accounts",
    "crowd_days", "crowd_engine_s", "crowd_year_s_scaled", "crowd_settlements",
    "crowd_hedge_days", "crowd_hedge_s", "crowd_hedge_year_s_scaled",
}


# Sizes and counts fixed by the inputs (or, for the order rates, at least one completed order
# per client by construction): never 0, however slow the machine. Everything else is a timing
# or a ratio of timings, which only has to be a finite number >= 0.
POSITIVE = {
    "engine_short_days", "engine_short_rows", "engine_long_days", "engine_long_rows",
    "engine_resolution_days", "engine_100ms_over_1s_rows", "engine_long_target_s",
    "liq_accounts", "liq_liquidations", "ws_subscribers", "e2e_simulated_days",
    "api_orders_per_s", "api_orders_per_s_one_client", "hedge_requests",
    "crowd_settle_positions", "crowd_accounts", "crowd_days", "crowd_settlements",
    "crowd_hedge_days",
}


@pytest.fixture(scope="module")
def report() -> dict[str, object]:
    return bench.collect(TINY)


def test_every_suite_runs_and_every_figure_has_its_shape(report: dict[str, object]) -> None:
    assert report["failed"] == {}
    figures = report["figures"]
    assert isinstance(figures, dict)
    assert set(figures) == EXPECTED
    assert POSITIVE <= EXPECTED
    not_numbers = {k: v for k, v in figures.items()
                   if isinstance(v, bool) or not isinstance(v, int | float)
                   or not math.isfinite(v) or v < 0}
    assert not not_numbers, not_numbers
    zero = {k: figures[k] for k in POSITIVE if not figures[k] > 0}
    assert not zero, zero
    json.dumps(report, allow_nan=False)  # the --json output is one JSON object


def test_the_suites_own_checks_hold(report: dict[str, object]) -> None:
    results = report["results"]
    assert isinstance(results, dict)
    outcome = bench.checks(results)
    assert outcome["liq_ledger_conserved"]
    assert outcome["liq_no_survivor_past_its_level"]
    assert outcome["sweep_executors_agree"]
    assert outcome["hedge_in_process_equals_wire"]
    assert outcome["crowd_batch_equals_one_by_one"]
    assert outcome["crowd_ledger_conserved"]
    # The speed goals are reported for every suite that measures one, met or not.
    assert {"goal_liquidation_ms", "goal_settlement_us", "goal_hedge_year_s",
            "goal_two_processes_over_one"} <= set(outcome)
    machine = report["machine"]
    assert isinstance(machine, dict)
    assert machine["nproc"]
    assert machine["cpu"]


def test_the_command_line_parses_and_prints_json(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="perpsim")
    sub = parser.add_subparsers(dest="command", required=True)
    bench.add_bench_parser(sub)
    args = parser.parse_args(["bench", "--json", "--quick", "--only", "engine"])
    assert args.only == ["engine"]
    assert args.quick
    assert args.json
    monkeypatch.setattr(bench, "QUICK", TINY)
    assert args.run(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["command"] == "perpsim bench --quick --only engine"
    assert printed["figures"]["engine_long_rows"] > 0
    assert printed["figures"]["engine_long_speedup"] >= 0


def test_the_table_prints(capsys: pytest.CaptureFixture[str], report: dict[str, object]) -> None:
    bench._print_table({**report, "command": "perpsim bench"})
    out = capsys.readouterr().out
    assert "liquidation at scale" in out
    assert "reproduce: perpsim bench" in out


def test_sustained_orders_count_even_when_the_window_closes_at_once() -> None:
    # A loaded machine used to get 0 orders/s: set-up ran inside the timed window and used it
    # up. With a window of 0 s every (already warm) client still completes an order.
    from perpsim.benchmarks import api_latency
    from perpsim.benchmarks.server import child_server

    with child_server() as base:
        load = api_latency.sustained(base, clients=3, seconds=0.0)
    assert load["orders_per_s"] > 0
    assert load["orders_per_s_one_client"] > 0
    assert load["concurrency_gain"] > 0


def test_issue_16s_goals_are_judged_on_the_demo_hedge_only() -> None:
    from perpsim.strategy.record import DEMO_SCENARIO

    def sweep(scenario: str, in_process_s: float, wire_s: float, ratio: float
              ) -> dict[str, object]:
        return {"sweep": {"scaling": {"processes_2_over_serial": ratio},
                          "transport": {"scenario": scenario, "in_process_cpu_s": in_process_s,
                                        "wire_cpu_s": wire_s},
                          "goals": {"in_process_hedge_cpu_s": 0.3, "wire_hedge_cpu_s": 1.0,
                                    "two_workers_over_one": 1.8}}}

    assert bench.goals_met(sweep(DEMO_SCENARIO, 0.3, 1.0, 1.8)) == {
        "goal_two_processes_over_one": True, "goal_in_process_hedge_s": True,
        "goal_wire_hedge_s": True}
    assert bench.goals_met(sweep(DEMO_SCENARIO, 0.31, 1.01, 1.79)) == {
        "goal_two_processes_over_one": False, "goal_in_process_hedge_s": False,
        "goal_wire_hedge_s": False}
    # A shorter hedge (--quick) says nothing about the 30-day goals.
    assert bench.goals_met(sweep("calm", 0.01, 0.02, 2.0)) == {
        "goal_two_processes_over_one": True}
