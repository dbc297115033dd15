"""Market-data stores (sim/data_store.py) and store-backed scenarios (sim/scenario_store.py):
windowed reads return exactly the window's rows (plus the row in force at its start) across
partition files, and a store is an ordinary Scenario by name, path and window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from perpsim.sim.data_store import (
    Series,
    open_store,
    partition_keys,
    read_funding,
    read_window,
    write_store,
)
from perpsim.sim.errors import ScenarioError
from perpsim.sim.scenario import bundled_scenarios, load_scenario
from perpsim.sim.scenario_store import bundled_stores

DAY = 86_400_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
LIBRARY = ("binance-crash-2022-06-13", "binance-crash-2022-11-08", "bitmex-xbtusd-2018-2020",
           "deribit-btc-index-2019-2021")


def _series(days: float, step_ms: int, *, perp: bool = True, seed: int = 1) -> Series:
    rng = np.random.default_rng(seed)
    times = T0 + np.arange(0, int(days * DAY), step_ms, dtype=np.int64)
    index = 40_000 * np.exp(np.cumsum(rng.normal(0, 1e-4, len(times))))
    f_times = np.arange(T0 + 8 * 3_600_000, times[-1] + 1, 8 * 3_600_000, dtype=np.int64)
    f_rates = rng.normal(1e-4, 5e-5, len(f_times))
    return Series(times, index, index * 1.0001 if perp else None, f_times, f_rates)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Series]:
    series = _series(3.5, 60_000)
    path = tmp_path_factory.mktemp("stores") / "three-days"
    write_store(path, "three-days", "3.5 days of minutes", {"BTCUSD": series})
    return path, series


def test_one_parquet_file_per_day_and_a_manifest(store_dir: tuple[Path, Series]) -> None:
    path, series = store_dir
    files = sorted(p.name for p in (path / "BTCUSD").glob("*.parquet"))
    assert files == ["2024-01-01.parquet", "2024-01-02.parquet", "2024-01-03.parquet",
                     "2024-01-04.parquet", "funding.parquet"]
    info = open_store(path)
    assert info.rows == len(series) == 5040
    assert [f.rows for f in info.pairs["BTCUSD"].files] == [1440, 1440, 1440, 720]
    assert info.start_ms == T0
    assert info.end_ms == int(series.times_ms[-1])
    assert info.partition == "day"


def test_the_whole_store_reads_back_exactly(store_dir: tuple[Path, Series]) -> None:
    path, series = store_dir
    got = read_window(open_store(path), "BTCUSD")
    assert np.array_equal(got.times_ms, series.times_ms)
    assert np.array_equal(got.index, series.index)
    assert got.perp is not None
    assert np.array_equal(got.perp, series.perp)
    assert np.array_equal(got.funding_times_ms, series.funding_times_ms)
    assert np.array_equal(got.funding_rates, series.funding_rates)


@pytest.mark.parametrize(("start", "end"), [
    (T0 + DAY + 30_000, T0 + 2 * DAY + 5 * 60_000),  # between rows, across a file boundary
    (T0 + DAY, T0 + DAY),  # one instant, exactly on a row
    (T0 + 2 * DAY - 1, T0 + 3 * DAY + 3_600_000),  # starts on the last row of a file
    (T0 + 3 * DAY + 60_000, None),  # to the end
    (None, T0 + 90_000),  # from the start
    (T0 + 10 * DAY, None),  # after the data: the last row holds
])
def test_a_window_is_the_row_in_force_at_its_start_then_every_row_to_its_end(
        store_dir: tuple[Path, Series], start: int | None, end: int | None) -> None:
    path, series = store_dir
    got = read_window(open_store(path), "BTCUSD", start, end)
    t = series.times_ms
    lo = 0 if start is None else max(int(np.searchsorted(t, start, side="right")) - 1, 0)
    hi = len(t) if end is None else int(np.searchsorted(t, end, side="right"))
    assert np.array_equal(got.times_ms, t[lo:hi])
    assert np.array_equal(got.index, series.index[lo:hi])
    keep = np.ones(len(series.funding_times_ms), dtype=bool)
    if start is not None:
        keep &= series.funding_times_ms >= start
    if end is not None:
        keep &= series.funding_times_ms <= end
    assert np.array_equal(got.funding_times_ms, series.funding_times_ms[keep])


def test_a_window_reads_only_the_files_it_touches(store_dir: tuple[Path, Series],
                                                  tmp_path: Path) -> None:
    path, _ = store_dir
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in path.rglob("*"):
        target = copy / item.relative_to(path)
        if item.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(item.read_bytes())
    (copy / "BTCUSD" / "2024-01-01.parquet").write_bytes(b"not parquet")
    (copy / "BTCUSD" / "2024-01-04.parquet").unlink()
    got = read_window(open_store(copy), "BTCUSD", T0 + DAY + 60_000, T0 + 3 * DAY - 60_000)
    assert got.times_ms[0] == T0 + DAY + 60_000
    with pytest.raises(ScenarioError, match=r"2024-01-01\.parquet: cannot read"):
        read_window(open_store(copy), "BTCUSD", T0 + 60_000, T0 + DAY)


def test_month_partitions_for_sparse_data(tmp_path: Path) -> None:
    series = _series(70, 3_600_000, perp=False)
    info = write_store(tmp_path / "hourly", "hourly", "", {"BTCUSD": series}, partition="month")
    assert [f.file for f in info.pairs["BTCUSD"].files] == [
        "BTCUSD/2024-01.parquet", "BTCUSD/2024-02.parquet", "BTCUSD/2024-03.parquet"]
    got = read_window(info, "BTCUSD", T0 + 40 * DAY + 1, T0 + 41 * DAY)
    assert got.perp is None
    assert got.times_ms[0] == T0 + 40 * DAY
    assert got.times_ms[-1] == T0 + 41 * DAY
    assert len(got) == 25


def test_partition_keys_are_utc_days_and_months() -> None:
    t = np.array([T0 - 1, T0, T0 + 31 * DAY], dtype=np.int64)
    assert list(partition_keys(t, "day")) == ["2023-12-31", "2024-01-01", "2024-02-01"]
    assert list(partition_keys(t, "month")) == ["2023-12", "2024-01", "2024-02"]


@pytest.mark.parametrize(("mutate", "problem"), [
    (lambda s: Series(s.times_ms[::-1].copy(), s.index, s.perp), "times must increase"),
    (lambda s: Series(s.times_ms, np.where(np.arange(len(s)) == 5, -1.0, s.index), s.perp),
     "index row 6 is not a positive finite price"),
    (lambda s: Series(s.times_ms, s.index, np.where(np.arange(len(s)) == 2, np.nan, s.index)),
     "perp row 3"),
    (lambda s: Series(s.times_ms, s.index[:-1], None), "index has"),
    (lambda s: Series(s.times_ms, s.index, None, s.funding_times_ms, s.funding_rates * 1e5),
     "funding rate"),
])
def test_bad_series_are_refused_and_nothing_is_written(tmp_path: Path, mutate: object,
                                                       problem: str) -> None:
    assert callable(mutate)
    with pytest.raises(ScenarioError, match=problem):
        write_store(tmp_path / "bad", "bad", "", {"BTCUSD": mutate(_series(0.5, 60_000))})
    assert not (tmp_path / "bad").exists()


def test_a_store_is_never_overwritten(store_dir: tuple[Path, Series]) -> None:
    path, series = store_dir
    with pytest.raises(ScenarioError, match="already holds a store"):
        write_store(path, "again", "", {"BTCUSD": series})


def test_a_manifest_that_disagrees_with_its_files_is_an_error(tmp_path: Path) -> None:
    info = write_store(tmp_path / "s", "s", "", {"BTCUSD": _series(1.5, 60_000)})
    meta = json.loads((info.directory / "store.json").read_text())
    meta["pairs"]["BTCUSD"]["files"][0]["rows"] = 7
    (info.directory / "store.json").write_text(json.dumps(meta))
    with pytest.raises(ScenarioError, match="the manifest says 7"):
        read_window(open_store(info.directory), "BTCUSD")
    (info.directory / "store.json").write_text("{}")
    with pytest.raises(ScenarioError, match="malformed store manifest"):
        open_store(info.directory)


# ---- as scenarios -------------------------------------------------------------------------------
def test_a_store_directory_is_a_scenario_with_a_window(store_dir: tuple[Path, Series]) -> None:
    path, series = store_dir
    whole = load_scenario(str(path))
    assert whole.mode == "data"
    assert whole.start_ms == T0
    assert np.array_equal(whole.path("BTCUSD").index, series.index)
    window = f"{path}@2024-01-02T00:00:30Z..2024-01-03"
    scn = load_scenario(window, seed=3)
    p = scn.path("BTCUSD")
    assert scn.start_ms == T0 + DAY + 30_000  # the row in force, re-stamped to the start
    assert p.index[0] == series.index[1440]
    assert scn.end_ms == T0 + 2 * DAY
    assert p.funding_rate_at(T0 + DAY + 8 * 3_600_000) is not None
    assert scn.name == window
    later = load_scenario(str(path), start_ms=T0 + 3 * DAY)
    assert later.start_ms == T0 + 3 * DAY
    assert len(later.path("BTCUSD")) == 720


def test_a_store_without_perp_gets_the_seeded_derived_perp(tmp_path: Path) -> None:
    info = write_store(tmp_path / "idx", "idx", "index only", {"BTCUSD": _series(0.2, 60_000,
                                                                                 perp=False)})
    a = load_scenario(str(info.directory), seed=5).path("BTCUSD")
    b = load_scenario(str(info.directory), seed=5).path("BTCUSD")
    c = load_scenario(str(info.directory), seed=6).path("BTCUSD")
    assert np.array_equal(a.perp, b.perp)
    assert not np.array_equal(a.perp, c.perp)
    assert float(np.max(np.abs(a.perp / a.index - 1))) < 0.01


@pytest.mark.parametrize(("ref", "problem"), [
    ("{path}@2024-13-01", "window start"),
    ("{path}@2024-01-03..2024-01-02", "window end must be after its start"),
    ("{path}@2023-06-01", "outside the data"),
])
def test_bad_windows_name_the_problem(store_dir: tuple[Path, Series], ref: str,
                                      problem: str) -> None:
    path, _ = store_dir
    with pytest.raises(ScenarioError, match=problem):
        load_scenario(ref.format(path=path))


def test_the_library_is_bundled_and_listed_with_the_other_scenarios() -> None:
    assert set(LIBRARY) <= set(bundled_stores())
    listed = bundled_scenarios()
    for name in LIBRARY:
        assert listed[name]
        assert (bundled_stores()[name] / "SOURCE.txt").read_text().count("License") >= 1


@pytest.mark.parametrize(("name", "mode", "rows", "first_index"), [
    ("binance-crash-2022-06-13", "synthetic", 136 * 4, 26790.6),
    ("binance-crash-2022-11-08", "synthetic", 133 * 4, 19889.3),
    ("bitmex-xbtusd-2018-2020", "data", 2652, 7694.0),
    ("deribit-btc-index-2019-2021", "data", 16008, 5150.94),
])
def test_the_library_loads_as_real_scenarios(name: str, mode: str, rows: int,
                                             first_index: float) -> None:
    scn = load_scenario(name)
    p = scn.path("BTCUSD")
    assert scn.mode == mode
    assert len(p) == rows
    assert p.index[0] == first_index


def test_library_values_match_the_source_files() -> None:
    crash = load_scenario("binance-crash-2022-11-08").path("BTCUSD")
    assert crash.index.min() == 16830.0  # the 19:32 low survives the import (a wick)
    black_thursday = load_scenario("bitmex-xbtusd-2018-2020@2020-03-13T04:00Z..2020-03-13T12:00Z")
    assert black_thursday.path("BTCUSD").funding_rate_at(
        int(np.datetime64("2020-03-13T04:00", "ms").astype(np.int64))) == -0.00375
    deribit = load_scenario("deribit-btc-index-2019-2021@2020-03-13T02:00Z..2020-03-13T03:00Z")
    assert deribit.path("BTCUSD").index[0] == 4198.69
    hours = {int(t // 3_600_000 % 24)
             for t in read_funding(open_store(bundled_stores()["deribit-btc-index-2019-2021"]),
                                   "BTCUSD")[0].tolist()}
    assert hours == {0, 8, 16}
