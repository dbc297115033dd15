"""Honest outcomes on the command line: the progress bar ends at 100 % or says why the run
stopped, exit levels already reached are refused, the funding budget stops the hedge before the
settlement that would breach it (and the summary says so), --fail-on-liquidation gates CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_main

# 5x on 1 BTC of collateral with no top-ups: the squeeze liquidates the short (tests/test_e2e)
LIQUIDATED = ["hedge", "--scenario", "squeeze", "--leverage", "5", "--collateral", "1",
              "--no-topup"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich wraps at 80 columns without a terminal; wide enough to keep each line whole."""
    monkeypatch.setenv("COLUMNS", "300")



@pytest.mark.parametrize(("option", "price", "problem"), [
    ("--exit-above", "59000", "--exit-above 59000 is not above the index at the start "
                              "(60,000.00)"),
    ("--exit-above", "60000", "--exit-above 60000 is not above the index"),
    ("--exit-below", "61000", "--exit-below 61000 is not below the index at the start "
                              "(60,000.00)"),
])
def test_an_exit_level_already_reached_is_refused(capsys: pytest.CaptureFixture[str],
                                                  option: str, price: str, problem: str) -> None:
    code, out, err = run_main(capsys, "hedge", "--scenario", "calm", option, price)
    assert code == 2
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("perpsim: error: ")
    assert problem in line


def test_the_progress_bar_ends_at_100_percent(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "hedge", "--scenario", "calm")
    assert code == 0
    assert "100%" in err
    assert "stopped early" not in err
    assert "Closest liquidation price" in out


def test_a_liquidated_run_says_so_and_fails_only_when_asked(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, *LIQUIDATED)
    assert code == 0
    assert "stopped early: liquidated at 2024-" in err
    assert "100%" not in err
    assert "reached: liquidated at 2024-" in out
    code, out, err = run_main(capsys, *LIQUIDATED, "--json", "--fail-on-liquidation")
    assert code == 1
    assert json.loads(out)["liquidated"] is True  # the result is still printed
    assert err.strip() == "perpsim: the hedge was liquidated (exit 1: --fail-on-liquidation)"


def test_fail_on_liquidation_passes_a_hedge_that_survives(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "hedge", "--scenario", "calm", "--json",
                            "--fail-on-liquidation")
    assert code == 0
    assert json.loads(out)["liquidated"] is False


def test_the_funding_budget_stops_before_the_breaching_settlement(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    code, out, err = run_main(capsys, "hedge", "--scenario", "funding_flip",
                              "--funding-budget", "0.005", "--report", str(report))
    assert code == 0
    assert "stopped early: funding budget 0.005 BTC" in err
    assert "at the predicted rate" in out
    assert "closed before it" in out
    assert "closed before it" in report.read_text(encoding="utf-8")
