"""``perpsim data list`` / ``show`` and the real-market library through the other commands:
``perpsim hedge --scenario <crash>`` end to end, the scenario listings, serve's resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perpsim.api.state import ServerConfig, ServerState
from perpsim.cli import build_parser, main

from live_market import Market

LIBRARY = ("binance-crash-2022-06-13", "binance-crash-2022-11-08", "bitmex-xbtusd-2018-2020",
           "deribit-btc-index-2019-2021")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_data_list_shows_the_library(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "list")
    assert code == 0
    for name in LIBRARY:
        assert name in out
    assert "perpsim hedge --scenario NAME" in out


def test_data_show_prints_a_summary_and_writes_an_offline_chart(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "chart.html"
    code, out, _ = run(capsys, "data", "show", "bitmex-xbtusd-2018-2020", "--html", str(target))
    assert code == 0
    assert "2,652" in out  # rows
    assert "data mode" in out
    assert "UTC hours 4, 12, 20" in out
    page = target.read_text()
    assert "Plotly" in page
    assert "<script src=" not in page  # plotly inlined: the chart opens offline
    assert "nearridge/Hehmeyer" in page  # the SOURCE note and licence travel with the chart
    assert "License: none stated" in page


def test_data_show_of_an_unknown_store_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "data", "show", "no-such-store")
    assert code == 2
    assert out == ""
    assert "no store 'no-such-store'" in err


def test_the_scenario_listings_include_the_library() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    hedge_help = sub.choices["hedge"].format_help()  # type: ignore[attr-defined]
    serve_help = sub.choices["serve"].format_help()  # type: ignore[attr-defined]
    for name in LIBRARY:
        assert name in hedge_help
        assert name in " ".join(serve_help.split())


def test_serve_resolves_a_library_name_with_a_window() -> None:
    state = ServerState(ServerConfig(scenario="deribit-btc-index-2019-2021@2020-03-12..2020-03-14"))
    scenario = state.exchange.scenario
    assert scenario.mode == "data"
    assert scenario.start_ms == 1_583_971_200_000
    assert state.exchange.now_ms == scenario.start_ms


@pytest.mark.slow
def test_hedge_runs_end_to_end_on_a_real_crash(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    report = tmp_path / "crash.html"
    code, out, err = run(capsys, "hedge", "--scenario", "binance-crash-2022-11-08", "--json",
                         "--report", str(report))
    assert code == 0, err
    result = json.loads(out)
    assert result["scenario"] == "binance-crash-2022-11-08"
    assert not result["liquidated"]
    assert report.is_file()
    # The run spans the crash: it opened before the 19:32 low and closed at the window's end.
    times = [e["time"] for e in result["events"]]
    assert min(times) <= 1_667_928_900_000
    assert max(times) >= 1_667_936_000_000


@pytest.mark.parametrize(("scenario", "profile", "symbol", "funding_time", "rate"), [
    # Deribit's 8-hour rate at 08:00 on Black Thursday settles on Binance's 00/08/16 schedule.
    ("deribit-btc-index-2019-2021@2020-03-12..2020-03-13", "binance_coinm", "BTCUSD_PERP",
     "2020-03-12T08:00:00", None),
    # BitMEX's own rates settle on BitMEX's 04/12/20 schedule: -0.375 % six times running.
    ("bitmex-xbtusd-2018-2020@2020-03-13..2020-03-14", "bitmex_xbtusd", "XBTUSD",
     "2020-03-13T04:00:00", "-0.00375"),
])
def test_the_library_settles_its_real_funding(scenario: str, profile: str, symbol: str,
                                              funding_time: str, rate: str | None) -> None:
    from decimal import Decimal

    import numpy as np

    state = ServerState(ServerConfig(scenario=scenario, profile=profile))
    ex = state.exchange
    t = int(np.datetime64(funding_time, "ms").astype(np.int64))
    recorded = ex.scenario.path("BTCUSD").funding_rate_at(t)
    assert recorded is not None
    ex.advance_until(t)
    settled = dict(ex.states[symbol].funding_history)
    assert settled[t] == Decimal(repr(recorded))
    if rate is not None:
        assert settled[t] == Decimal(rate)


def test_the_control_plane_resets_to_a_library_window(market: Market) -> None:
    state = market.post("reset", {"scenario": "binance-crash-2022-06-13@2022-06-13T01:00:00Z"})
    assert state["scenario"] == "binance-crash-2022-06-13@2022-06-13T01:00:00Z"
    assert market.state.exchange.now_ms == 1_655_082_000_000
    bad = market.control.post("/control/reset", json={"scenario": "binance-crash-2022-06-13@1999"})
    assert bad.status_code == 400
    assert "outside the data" in bad.text
