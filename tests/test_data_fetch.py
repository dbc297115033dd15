"""``perpsim data fetch`` through ccxt, offline: a perpsim server on 127.0.0.1 replaying the
bundled real day 2022-12-13 is the venue. Pages of last, mark and index klines and the funding
history become a store; an interrupted fetch resumes where it stopped without repeating rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import numpy as np
import pytest

from perpsim.api.app import create_app
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig, ServerState
from perpsim.cli import main
from perpsim.data_fetch import PARTIAL, FetchPlan, fetch_store, make_exchange
from perpsim.sim.data_store import read_window
from perpsim.sim.errors import ScenarioError
from perpsim.sim.scenario import load_scenario

DAY0 = 1_670_889_600_000  # 2022-12-13T00:00:00Z
HOUR = 3_600_000
SYMBOL = "BTC/USD:BTC"


@pytest.fixture(scope="module")
def venue() -> Iterator[str]:
    """perpsim on the real day, its clock run to the day's end so the day is history."""
    state = ServerState(ServerConfig(scenario="real-2022-12-13", clock="stepped"))
    state.exchange.advance_until(DAY0 + 23 * HOUR + 59 * 60_000)
    with serve_in_thread(create_app(state=state)) as base_url:
        yield base_url


def plan(**changes: Any) -> FetchPlan:
    base = {"exchange": "binancecoinm", "symbol": SYMBOL, "pair": "", "timeframe": "5m",
            "since_ms": DAY0 + 6 * HOUR, "until_ms": DAY0 + 18 * HOUR,
            "kinds": ("last", "mark", "index", "funding"), "limit": 50}
    return FetchPlan(**(base | changes))


class Flaky:
    """A ccxt client whose ``fail_on``-th index-kline request raises a network error."""

    def __init__(self, inner: Any, fail_on: int | None) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, {"index": 0, "all": 0}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not name.startswith("fetch_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls["all"] += 1
            if name == "fetch_index_ohlcv":
                self.calls["index"] += 1
                if self.calls["index"] == self.fail_on:
                    raise ccxt.NetworkError("connection reset (test)")
            return attr(*args, **kwargs)

        return call


def test_fetch_builds_a_store_that_matches_the_venue(venue: str, tmp_path: Path) -> None:
    progress: list[tuple[str, int, int]] = []
    info, _ = fetch_store(plan(), tmp_path / "dec13", url=venue, bars="open",
                          progress=lambda *a: progress.append(a))
    s = read_window(info, "BTCUSD")
    assert s.times_ms[0] == DAY0 + 6 * HOUR
    assert s.times_ms[-1] == DAY0 + 18 * HOUR - 5 * 60_000  # only bars closed by `until`
    assert len(s) == 144
    day = load_scenario("real-2022-12-13").path("BTCUSD")
    rows = np.searchsorted(day.times_ms, s.times_ms, side="right") - 1
    assert np.array_equal(s.index, day.index[rows])  # index bar opens are the day's index
    ex = make_exchange("binancecoinm", venue)
    last = ex.fetch_ohlcv(SYMBOL, "5m", DAY0 + 6 * HOUR, 3)
    assert s.perp is not None
    assert s.perp[:3].tolist() == [b[1] for b in last]  # perp: the last-price bars' opens
    # The funding settled at 08:00 and 16:00 is the day's recorded funding (data mode).
    assert s.funding_times_ms.tolist() == [DAY0 + 8 * HOUR, DAY0 + 16 * HOUR]
    assert s.funding_rates.tolist() == [-0.00001869, -0.00002983]
    assert not (tmp_path / "dec13" / PARTIAL).exists()
    assert {p[0] for p in progress} == {"last", "mark", "index", "funding"}
    assert all(done == total for kind, done, total in progress[-1:])
    scn = load_scenario(str(tmp_path / "dec13"))
    assert scn.mode == "data"


def test_an_interrupted_fetch_resumes_after_its_last_saved_page(venue: str,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    broken = Flaky(make_exchange("binancecoinm", venue), fail_on=2)
    with pytest.raises(ScenarioError, match=r"NetworkError.*run the same command again"):
        fetch_store(plan(), out, exchange=broken, bars="open")
    staged = (out / PARTIAL / "index.csv").read_text().splitlines()
    assert len(staged) == 1 + 50  # the header and the first page
    assert not (out / "store.json").exists()
    again = Flaky(make_exchange("binancecoinm", venue), fail_on=None)
    info, _ = fetch_store(plan(), out, exchange=again, bars="open")
    assert again.calls["index"] == 2  # the 2 missing pages only (3 pages of 50 for 144 bars)
    whole, _ = fetch_store(plan(), tmp_path / "clean", url=venue, bars="open")
    a, b = read_window(info, "BTCUSD"), read_window(whole, "BTCUSD")
    assert np.array_equal(a.times_ms, b.times_ms)
    assert np.array_equal(a.index, b.index)
    assert np.array_equal(a.funding_rates, b.funding_rates)


def test_a_partial_fetch_continues_only_with_the_same_arguments(venue: str,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "p"
    with pytest.raises(ScenarioError):
        fetch_store(plan(), out, exchange=Flaky(make_exchange("binancecoinm", venue), 1))
    with pytest.raises(ScenarioError, match="partial fetch with other arguments"):
        fetch_store(plan(timeframe="15m"), out, url=venue)


def test_the_command_shows_progress_and_writes_the_store(
        venue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = main(["data", "fetch", "--url", venue, "--since", "2022-12-13T10:00:00Z",
                 "--until", "2022-12-13T11:00:00Z", "--timeframe", "15m",
                 "--kinds", "index,last", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"wrote {out}" in printed.out
    assert "index" in printed.err  # the progress bars
    assert len(read_window(load_scenario_store(out), "BTCUSD")) == 4 * 4  # 4 bars, ohlc rows


def load_scenario_store(path: Path) -> Any:
    from perpsim.sim.data_store import open_store

    return open_store(path)


def test_a_venue_without_the_history_asked_for_is_refused_before_any_request(
        tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="kraken offers no mark, funding history"):
        fetch_store(plan(exchange="kraken", symbol="BTC/USD", kinds=("last", "mark", "funding")),
                    tmp_path / "k", url="http://127.0.0.1:9")
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize(("argv", "problem"), [
    (["--kinds", "last,volume"], "--kinds: volume"),
    (["--since", "yesterday"], "--since 'yesterday' is not an ISO 8601 time"),
    (["--exchange", "nosuchvenue"], "ccxt has no exchange 'nosuchvenue'"),
    (["--until", "2022-12-13T00:00:00Z"], "--until must be after --since"),
])
def test_bad_fetch_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    argv: list[str], problem: str) -> None:
    args = {"--since": "2022-12-13T01:00:00Z", "--until": "2022-12-13T02:00:00Z",
            "--out": str(tmp_path / "x"), "--url": "http://127.0.0.1:9"}
    for i in range(0, len(argv), 2):
        args[argv[i]] = argv[i + 1]
    code = main(["data", "fetch", *[x for kv in args.items() for x in kv]])
    err = capsys.readouterr().err
    assert code == 2
    assert problem in err
