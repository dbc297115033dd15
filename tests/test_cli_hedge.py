"""``perpsim hedge`` and ``perpsim demo`` on the command line: arguments, bad input files (exit 2
with one line naming the file), and the --json result of a real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perpsim.cli import build_parser

from cli_helpers import one_error_line, run_main

ROOT = Path(__file__).resolve().parent.parent




@pytest.mark.parametrize(("argv", "problem"), [
    (["hedge"], "--scenario"),
    (["hedge", "--scenario", "calm", "--spot", "-1"], "argument --spot: must be a positive"),
    (["hedge", "--scenario", "calm", "--spot", "lots"], "argument --spot: must be a number"),
    (["hedge", "--scenario", "calm", "--hedge-ratio", "3"], "--hedge-ratio: must be in (0, 2]"),
    (["hedge", "--scenario", "calm", "--leverage", "0"], "--leverage: must be a whole number"),
    (["hedge", "--scenario", "calm", "--leverage", "2.5"], "--leverage: must be a whole number"),
    (["hedge", "--scenario", "calm", "--margin-mode", "portfolio"], "--margin-mode"),
    (["hedge", "--scenario", "calm", "--seed", "-3"], "--seed"),
    (["hedge", "--scenario", "calm", "--funding-budget", "nan"], "--funding-budget"),
    (["hedge", "--scenario", "calm", "--spot", "1", "--collateral", "2"],
     "--collateral 2 exceeds --spot 1"),
    (["hedge", "--scenario", "calm", "--exit-above", "50000", "--exit-below", "60000"],
     "--exit-below 60000 must be under --exit-above 50000"),
    (["hedge", "--scenario", "no_such_scenario"], "unknown scenario 'no_such_scenario'"),
    (["hedge", "--scenario", "manual"], "manual: has no price path"),
    (["hedge", "--scenario", "calm", "--profile", "no_such_venue"], "unknown profile"),
    (["demo", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_exit_2_with_one_line(capsys: pytest.CaptureFixture[str],
                                            argv: list[str], problem: str) -> None:
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert out == ""
    assert problem in one_error_line(err)


def test_a_malformed_scenario_csv_names_the_file(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_text("time,index\n2024-01-01T00:00:00Z,60000\n2024-01-01T00:01:00Z,sixty\n",
                   encoding="utf-8")
    code, out, err = run_main(capsys, "hedge", "--scenario", str(bad), "--json")
    assert code == 2
    assert out == ""
    line = one_error_line(err)
    assert f"{bad}, line 3" in line
    assert "'sixty'" in line


def test_a_missing_scenario_file_names_it(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    code, _, err = run_main(capsys, "hedge", "--scenario", str(tmp_path / "gone.csv"))
    assert code == 2
    assert one_error_line(err) == f"perpsim: error: {tmp_path / 'gone.csv'}: no such scenario file"


def test_a_bad_generator_spec_names_the_file(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text('{"generator": "gbm_jumps", "days": -1}', encoding="utf-8")
    code, _, err = run_main(capsys, "demo", "--scenario", str(spec))
    assert code == 2
    assert str(spec) in one_error_line(err)


def test_a_bad_profile_file_names_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    profile = tmp_path / "venue.json"
    profile.write_text("{not json", encoding="utf-8")
    code, _, err = run_main(capsys, "hedge", "--scenario", "calm", "--profile", str(profile))
    assert code == 2
    assert f"{profile}: not valid JSON" in one_error_line(err)


def test_hedge_help_lists_the_bundled_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "hedge", "--help")
    assert code == 0
    for name in ("calm", "calm_30d", "crash", "squeeze", "funding_flip", "basis_blowout",
                 "real-2022-12-13"):
        assert f"\n  {name} " in out, name
    for option in ("--spot", "--hedge-ratio", "--collateral", "--leverage", "--margin-mode",
                   "--no-topup", "--report", "--json", "--funding-budget", "--exit-above"):
        assert option in out


def test_the_options_reach_the_hedge_config() -> None:
    from decimal import Decimal

    from perpsim.cli import hedge_config

    args = build_parser().parse_args(
        ["hedge", "--scenario", "squeeze", "--spot", "1", "--collateral", "0.3", "--leverage",
         "5", "--margin-mode", "cross", "--no-topup", "--hedge-ratio", "0.5",
         "--funding-budget", "0.001", "--exit-above", "90000", "--exit-below", "40000"])
    config = hedge_config(args)
    assert (config.spot_btc, config.collateral_btc, config.leverage) == (1, Decimal("0.3"), 5)
    assert (config.margin_mode, config.topup, config.hedge_ratio) == ("cross", False,
                                                                      Decimal("0.5"))
    assert config.funding_budget_btc == Decimal("0.001")
    assert (config.exit_above_usd, config.exit_below_usd) == (90000, 40000)
    defaults = hedge_config(build_parser().parse_args(["demo"]))
    assert (defaults.spot_btc, defaults.collateral_btc, defaults.topup) == (5, None, True)


def test_serve_still_parses() -> None:
    args = build_parser().parse_args(["serve", "--port", "0", "--scenario", "crash"])
    assert (args.port, args.scenario, args.clock) == (0, "crash", "stepped")


def test_hedge_json_is_one_object_on_stdout(tmp_path: Path) -> None:
    """The console entry point end to end: a real run, --json, and a report file."""
    report = tmp_path / "r.html"
    done = subprocess.run(
        [sys.executable, "-m", "perpsim", "hedge", "--scenario", "calm", "--spot", "2",
         "--hedge-ratio", "0.5", "--json", "--report", str(report)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # exactly one JSON document, nothing else
    assert done.stdout.strip().count("\n") == 0
    for key in ("contracts", "entry_price", "exit_price", "liquidated", "start_value_usd",
                "end_value_usd_hedged", "end_value_usd_unhedged", "funding_btc", "fees_btc",
                "spot_pnl_usd", "futures_pnl_btc", "min_liquidation_distance_pct", "events"):
        assert key in result, key
    assert result["scenario"] == "calm"
    assert result["contracts"] == 600  # half of 2 BTC × 60,000 / 100 USD
    assert result["config"]["hedge_ratio"] == "0.5"
    assert result["liquidated"] is False
    assert result["report"] == str(report.resolve())
    assert report.is_file()
    assert all({"time", "type"} <= set(event) for event in result["events"])


def test_subprocess_bad_file_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "empty.csv"
    bad.write_text("", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "perpsim", "hedge", "--scenario", str(bad)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"perpsim: error: {bad}: the file is empty\n"


def test_an_infeasible_plan_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "hedge", "--scenario", "calm", "--spot", "1",
                              "--collateral", "0.1", "--json")
    assert code == 2
    assert out == ""
    line = one_error_line(err)
    assert "the hedge cannot be planned: collateral 0.1 cannot margin 600 contracts" in line


def test_a_failing_run_exits_1_with_one_line(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from perpsim.strategy import dryrun

    async def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("the venue went away\nmid-run")

    monkeypatch.setattr(dryrun, "dry_run", broken)
    code, out, err = run_main(capsys, "demo", "--json")
    assert code == 1
    assert out == ""
    assert one_error_line(err) == ("perpsim: error: the run failed: ConnectionError: the venue "
                                   "went away mid-run")


@pytest.mark.slow
def test_demo_runs_the_30_day_hedge_and_writes_the_report(tmp_path: Path) -> None:
    """The README's first command: a 30-day hedge, a summary table and a report path."""
    done = subprocess.run([sys.executable, "-m", "perpsim", "demo"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, "COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    report = tmp_path / "perpsim-demo-report.html"
    assert report.is_file()
    assert f"report: {report.resolve()}" in done.stdout
    for label in ("Hedge", "End value, hedged", "End value, unhedged", "Funding", "Fees",
                  "Liquidated", "Total: hedged portfolio change"):
        assert label in done.stdout, label
    assert "calm_30d" in done.stdout
    assert "100%" in done.stderr  # the progress bar ran to the end
    text = report.read_text(encoding="utf-8")
    assert "2024-01-31" in text  # the whole 30 days
