"""Scenario files: CSVs load exactly, every malformed file fails with one clear error, and the
bundled scenarios have the shapes they advertise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perpsim.fixtures import SCENARIOS_DIR
from perpsim.sim.errors import ScenarioError
from perpsim.sim.scenario import (
    MANUAL_PRICES,
    PricePath,
    Scenario,
    bundled_scenarios,
    load_scenario,
    manual_scenario,
)

T0 = 1_670_889_600_000  # 2022-12-13T00:00:00Z
MIN = 60_000
HOUR = 3_600_000
BUNDLED = (
    "basis_blowout",
    "calm",
    "calm_30d",
    "cascade",
    "crash",
    "funding_flip",
    "real-2022-12-13",
    "squeeze",
)


def _write(tmp_path: Path, text: str, name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _btc(scenario: Scenario) -> PricePath:
    return scenario.paths["BTCUSD"]


# ---------------------------------------------------------------------------------------------
# Good files
# ---------------------------------------------------------------------------------------------

GOOD_ISO = """time,index,perp,funding_rate
2022-12-13T00:00:00Z,17212.12,17204,-0.00004062
2022-12-13T00:01:00Z,17208.88,17207.6,
2022-12-13T00:02:00Z,17226.99,17219.8,
2022-12-13T08:00:00Z,17172.72,17164.3,-0.00001869
"""


def test_iso_csv_loads_every_column(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, GOOD_ISO))
    path = _btc(scenario)
    assert scenario.name == "s"
    assert scenario.mode == "data"
    assert scenario.source == str(tmp_path / "s.csv")
    assert (scenario.start_ms, scenario.end_ms) == (T0, T0 + 8 * HOUR)
    assert path.times_ms.tolist() == [T0, T0 + MIN, T0 + 2 * MIN, T0 + 8 * HOUR]
    assert path.index.tolist() == [17212.12, 17208.88, 17226.99, 17172.72]
    assert path.perp.tolist() == [17204.0, 17207.6, 17219.8, 17164.3]
    assert path.funding_times_ms.tolist() == [T0, T0 + 8 * HOUR]
    assert path.funding_rates.tolist() == [-0.00004062, -0.00001869]
    assert path.times_ms.dtype == np.int64
    assert path.index.dtype == path.perp.dtype == path.funding_rates.dtype == np.float64


def test_epoch_ms_csv_without_perp_derives_a_seeded_perp(tmp_path: Path) -> None:
    rows = "".join(f"{T0 + i * MIN},{60000 + i}\n" for i in range(5000))
    file = _write(tmp_path, "time,index\n" + rows)
    a, b, c = (load_scenario(file, seed=s) for s in (7, 7, 8))
    pa = _btc(a)
    assert a.mode == "synthetic"
    assert len(pa) == 5000
    assert pa.times_ms[-1] == T0 + 4999 * MIN
    np.testing.assert_array_equal(pa.perp, _btc(b).perp)
    assert not np.array_equal(pa.perp, _btc(c).perp)
    basis = pa.perp / pa.index - 1
    # The documented default basis: mean +1 bp, stationary stdev 2 bp.
    assert abs(basis.mean() - 0.0001) < 0.0001
    assert np.abs(basis).max() < 0.002
    assert len(pa.funding_times_ms) == 0


def test_csv_dialect_tolerance(tmp_path: Path) -> None:
    """BOM, CRLF, header case/spaces, quotes, +00:00 / naive / space-separated ISO, blank lines."""
    text = (
        "\ufeffTime, Index ,PERP\r\n"
        '"2022-12-13T00:00:00+00:00","100","101"\r\n'
        "\r\n"
        "2022-12-13 00:01:00,100.5,101.5\r\n"
        "2022-12-13T00:02:00,101,102\r\n\r\n\r\n"
    )
    path = _btc(load_scenario(_write(tmp_path, text)))
    assert path.times_ms.tolist() == [T0, T0 + MIN, T0 + 2 * MIN]
    assert path.perp.tolist() == [101.0, 101.5, 102.0]


def test_blank_lines_keep_file_line_numbers_in_errors(tmp_path: Path) -> None:
    file = _write(tmp_path, f"time,index\n{T0},1\n\n{T0 + 1},x\n")
    with pytest.raises(ScenarioError, match=r"line 4 \(data row 2\): index is not a number"):
        load_scenario(file)


def test_pair_option_names_the_csv_pair(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, GOOD_ISO), pair="ETHUSD")
    assert list(scenario.paths) == ["ETHUSD"]
    with pytest.raises(ScenarioError, match="no BTCUSD prices"):
        scenario.path("BTCUSD")


# ---------------------------------------------------------------------------------------------
# Malformed files: one ScenarioError naming the file, the line / row, and the problem
# ---------------------------------------------------------------------------------------------

H3 = "time,index,perp\n"
R1 = f"{T0},100,101\n"
BAD_FILES = [
    ("empty", "", "the file is empty"),
    ("whitespace only", "  \n\n", "the file is empty"),
    ("blank header", "\n" + R1, r"line 1 \(header\): the header line is empty"),
    ("header only", H3, "no data rows"),
    ("no index", "time,perp\n" + R1, r"line 1 \(header\): missing required column 'index'"),
    ("no time", "index,perp\n1,2\n", "missing required column 'time'"),
    ("unknown column", "time,index,volume\n" + R1, "unknown column 'volume'"),
    ("repeated column", "time,index,index\n" + R1, "column 'index' appears twice"),
    ("too few fields", H3 + R1 + f"{T0 + 1},100\n", "line 3: expected 3 fields, found 2"),
    ("too many fields", H3 + f"{T0},1,2,3\n", "line 2: expected 3 fields, found 4"),
    ("duplicate time", H3 + R1 + R1, r"line 3 \(data row 2\): duplicate time"),
    ("unsorted", H3 + R1 + f"{T0 + 5},1,1\n{T0 + 2},1,1\n", r"line 4 \(data row 3\): time before"),
    ("bad epoch", H3 + R1 + f"{T0 + 1}x,1,1\n", r"line 3 \(data row 2\): unparseable time"),
    ("epoch seconds", H3 + "1670889600,1,1\n", r"line 2 \(data row 1\): .*epoch seconds"),
    ("bad iso", H3 + "2022-13-01T00:00:00Z,1,1\n", r"line 2 \(data row 1\): unparseable time"),
    ("iso then junk", H3 + "2022-12-13T00:00:00Z,1,1\nyesterday,1,1\n", r"line 3 .*'yesterday'"),
    ("empty time", H3 + "2022-12-13T00:00:00Z,1,1\n,1,1\n", r"line 3 \(data row 2\): unparseable"),
    ("not utc", H3 + "2022-12-13T00:00:00+01:00,1,1\n", r"line 2 .*not UTC"),
    ("far future", H3 + "99999999999999,1,1\n", "beyond the year 2200"),
    ("nan index", H3 + R1 + f"{T0 + 1},nan,1\n", r"line 3 \(data row 2\): index is not finite"),
    ("inf perp", H3 + R1 + f"{T0 + 1},1,inf\n", r"line 3 \(data row 2\): perp is not finite"),
    ("empty index", H3 + R1 + f"{T0 + 1},,1\n", r"line 3 \(data row 2\): index is empty"),
    ("empty perp", H3 + f"{T0},1, \n", r"line 2 \(data row 1\): perp is empty"),
    ("text price", H3 + R1 + f"{T0 + 1},abc,1\n", "index is not a number: 'abc'"),
    ("zero price", H3 + R1 + f"{T0 + 1},0,1\n", r"line 3 \(data row 2\): index is not positive"),
    ("negative perp", H3 + f"{T0},1,-5\n", "perp is not positive"),
    ("funding nan", f"time,index,funding_rate\n{T0},1,nan\n", "funding_rate is not finite"),
    ("funding absurd", f"time,index,funding_rate\n{T0},1,\n{T0 + 1},1,1.5\n", r"line 3 .*absurd"),
    ("funding text", f"time,index,funding_rate\n{T0},1,0.01%\n", "funding_rate is not a number"),
]


@pytest.mark.parametrize(
    ("content", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_malformed_csv_raises_one_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    file = _write(tmp_path, content, "bad.csv")
    with pytest.raises(ScenarioError, match=expected) as info:
        load_scenario(file)
    assert str(info.value).startswith(str(file))


def test_non_utf8_file(tmp_path: Path) -> None:
    file = tmp_path / "bin.csv"
    file.write_bytes(b"time,index\n\xff\xfe,1\n")
    with pytest.raises(ScenarioError, match="not a UTF-8 text file"):
        load_scenario(file)


# ---------------------------------------------------------------------------------------------
# Resolution of names and paths
# ---------------------------------------------------------------------------------------------


def test_unknown_name_lists_the_bundled_scenarios() -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'") as info:
        load_scenario("nope")
    for name in ("manual", *BUNDLED):
        assert name in str(info.value)


def test_bundled_file_name_resolves_like_its_name() -> None:
    assert load_scenario("calm.json").source == str(SCENARIOS_DIR / "calm.json")


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.csv")
    other = _write(tmp_path, "x", "s.txt")
    with pytest.raises(ScenarioError, match=r"must be \.csv or \.json"):
        load_scenario(other)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(ScenarioError, match="seed"):
        load_scenario("calm", seed=seed)  # type: ignore[arg-type]


def test_csv_start_override_trims_inside_the_data(tmp_path: Path) -> None:
    file = _write(tmp_path, GOOD_ISO)
    path = _btc(load_scenario(file, start_ms=T0 + 90_000))
    assert path.times_ms.tolist() == [T0 + 90_000, T0 + 2 * MIN, T0 + 8 * HOUR]
    assert path.index.tolist() == [17208.88, 17226.99, 17172.72]  # 00:01's row holds at 00:01:30
    assert path.funding_times_ms.tolist() == [T0 + 8 * HOUR]
    with pytest.raises(ScenarioError, match="outside the data"):
        load_scenario(file, start_ms=T0 - 1)
    with pytest.raises(ScenarioError, match="apply to generator specs only"):
        load_scenario(file, days=1)


# ---------------------------------------------------------------------------------------------
# PricePath
# ---------------------------------------------------------------------------------------------


def test_row_at_exact_between_before_and_after() -> None:
    path = PricePath(np.array([10, 20, 30]), np.array([1.0, 2, 3]), np.array([1.0, 2, 3]))
    assert len(path) == 3
    assert [path.row_at(t) for t in (10, 20, 30)] == [0, 1, 2]
    assert [path.row_at(t) for t in (15, 29, 31, 10**12)] == [0, 1, 2, 2]
    assert path.row_at(5) == 0  # before the first row: the first row
    assert (path.start_ms, path.end_ms) == (10, 30)


def test_arrays_are_read_only(tmp_path: Path) -> None:
    path = _btc(load_scenario(_write(tmp_path, GOOD_ISO)))
    for array in (path.times_ms, path.index, path.perp, path.funding_times_ms, path.funding_rates):
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1


def test_funding_rate_at() -> None:
    path = PricePath(
        np.array([0, 8 * HOUR]), np.ones(2), np.ones(2), np.array([8 * HOUR]), np.array([0.001])
    )
    assert path.funding_rate_at(8 * HOUR) == 0.001
    assert path.funding_rate_at(0) is None
    assert path.funding_rate_at(9 * HOUR) is None


def test_price_path_validates_its_arrays() -> None:
    one = np.ones(2)
    with pytest.raises(ScenarioError, match="strictly increasing"):
        PricePath(np.array([5, 5]), one, one)
    with pytest.raises(ScenarioError, match="equal-length"):
        PricePath(np.array([1, 2]), one, np.ones(3))
    with pytest.raises(ScenarioError, match="funding times and rates"):
        PricePath(np.array([1, 2]), one, one, np.array([1]), np.array([]))


# ---------------------------------------------------------------------------------------------
# manual and the bundled scenarios
# ---------------------------------------------------------------------------------------------


def test_manual_scenario() -> None:
    scenario = load_scenario("manual", seed=3, start_ms=T0)
    assert scenario.mode == "manual"
    assert scenario.end_ms is None
    assert (scenario.start_ms, scenario.seed) == (T0, 3)
    assert set(scenario.paths) == {"BTCUSD", "ETHUSD"}
    for pair, price in MANUAL_PRICES.items():
        path = scenario.paths[pair]
        assert path.times_ms.tolist() == [T0]
        assert path.index.tolist() == path.perp.tolist() == [price]
    custom = manual_scenario(prices={"BTCUSD": 30_000})
    assert custom.paths["BTCUSD"].perp.tolist() == [30_000]
    assert custom.start_ms == 1_704_067_200_000  # 2024-01-01T00:00:00Z
    with pytest.raises(ScenarioError, match="must be positive"):
        manual_scenario(prices={"BTCUSD": 0})


def test_bundled_scenarios_lists_every_file_with_a_description() -> None:
    listed = bundled_scenarios()
    from perpsim.sim.scenario_store import bundled_stores  # the real-market library

    assert list(listed) == sorted(["manual", *BUNDLED, *bundled_stores()])
    for name, text in listed.items():
        assert text
        assert "\n" not in text, name


@pytest.mark.parametrize("name", BUNDLED)
def test_each_bundled_scenario_loads(name: str) -> None:
    scenario = load_scenario(name)
    path = _btc(scenario)
    assert scenario.name == name
    assert scenario.end_ms == path.end_ms
    assert len(path) > 1000
    assert np.all(path.index > 0)
    assert np.all(path.perp > 0)
    assert Path(scenario.source).parent == SCENARIOS_DIR


def _window(path: PricePath, from_h: float, to_h: float) -> slice:
    t0 = path.start_ms
    return slice(path.row_at(t0 + int(from_h * HOUR)), path.row_at(t0 + int(to_h * HOUR)) + 1)


def test_crash_falls_about_35_percent_in_its_window() -> None:
    path = _btc(load_scenario("crash"))
    before = path.index[_window(path, 23, 24)].max()
    during = path.index[_window(path, 24, 28)].min()
    assert during / before - 1 == pytest.approx(-0.35, abs=0.04)
    assert path.index[_window(path, 0, 24)].min() > 0.9 * path.index[0]


def test_squeeze_rises_about_40_percent_in_its_window() -> None:
    path = _btc(load_scenario("squeeze"))
    before = path.index[_window(path, 23, 24)].min()
    during = path.index[_window(path, 24, 29)].max()
    assert during / before - 1 == pytest.approx(0.40, abs=0.05)
    basis = path.perp[_window(path, 25, 29)] / path.index[_window(path, 25, 29)] - 1
    assert basis.mean() > 0.003  # a rich premium: funding at or near the cap


def test_funding_flip_basis_goes_from_positive_to_deeply_negative() -> None:
    path = _btc(load_scenario("funding_flip"))
    basis = path.perp / path.index - 1
    early, late = basis[_window(path, 0, 47)], basis[_window(path, 50, 96)]
    assert early.mean() > 0.0007
    assert np.mean(early > 0) > 0.95
    # Below -0.55 %: the template rate P + clamp(I - P) is under every profile's -cap.
    assert late.mean() < -0.0055
    assert np.all(late < 0)


def test_basis_blowout_keeps_the_perp_5_to_10_percent_below_the_index() -> None:
    path = _btc(load_scenario("basis_blowout"))
    basis = path.perp / path.index - 1
    span = basis[_window(path, 26, 36)]
    assert np.all((span < -0.05) & (span > -0.10))
    assert abs(basis[_window(path, 0, 24)].mean()) < 0.001
    assert abs(basis[_window(path, 40, 72)].mean()) < 0.001


def test_calm_has_a_small_positive_basis() -> None:
    path = _btc(load_scenario("calm"))
    basis = path.perp / path.index - 1
    assert 0.0001 < basis.mean() < 0.0003
    assert path.index.min() > 0.85 * path.index[0]
    assert path.index.max() < 1.15 * path.index[0]


def test_calm_30d_is_thirty_days_of_minutes() -> None:
    scenario = load_scenario("calm_30d")
    path = _btc(scenario)
    assert len(path) == 30 * 1440 + 1
    assert scenario.end_ms is not None
    assert scenario.end_ms - scenario.start_ms == 30 * 24 * HOUR
    assert set(np.diff(path.times_ms).tolist()) == {MIN}


def test_real_2022_12_13_is_one_day_with_its_three_funding_rates() -> None:
    scenario = load_scenario("real-2022-12-13")
    path = _btc(scenario)
    assert scenario.mode == "data"
    assert len(path) == 1440
    assert (path.start_ms, path.end_ms) == (T0, T0 + 1439 * MIN)
    assert path.funding_times_ms.tolist() == [T0, T0 + 8 * HOUR, T0 + 16 * HOUR]
    assert path.funding_rates.tolist() == [-0.00004062, -0.00001869, -0.00002983]
    assert 17_000 < path.index.min() < path.index.max() < 18_000
    basis = path.perp / path.index - 1
    assert -0.0011 < basis.min() < basis.mean() < 0 < basis.max() < 0.0006
    # The perp had no trades in the 04:29 bar: its 04:28 close holds at 04:29 and 04:30.
    at = path.row_at(T0 + (4 * 60 + 29) * MIN)
    assert path.perp[at] == path.perp[at + 1] == 17167.0
    assert "2022-12-13" in scenario.description


# ---- generated paths kept per process (sim/scenario.py ``_generated_path``) ----------------------
def _arrays(scenario: Any) -> list[Any]:
    return [getattr(path, name) for path in scenario.paths.values()
            for name in ("times_ms", "index", "perp", "funding_times_ms", "funding_rates")]


def test_a_generated_path_is_kept_and_equals_a_fresh_generation(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from perpsim.sim import scenario as scenario_module

    monkeypatch.setattr(scenario_module, "_GENERATED", {})
    first, again = load_scenario("calm", seed=3), load_scenario("calm", seed=3)
    assert again.paths["BTCUSD"] is first.paths["BTCUSD"]  # kept: the same frozen path
    assert again.paths is not first.paths  # each scenario its own mapping
    monkeypatch.setattr(scenario_module, "_GENERATED", {})
    fresh = load_scenario("calm", seed=3)  # generated again
    assert fresh.paths["BTCUSD"] is not first.paths["BTCUSD"]
    for kept, made in zip(_arrays(first), _arrays(fresh), strict=True):
        assert kept.dtype == made.dtype
        assert np.array_equal(kept, made)
        assert not kept.flags.writeable
    other_seed = load_scenario("calm", seed=4)
    assert not np.array_equal(other_seed.paths["BTCUSD"].perp, first.paths["BTCUSD"].perp)
    # A spec file whose text changes is generated anew (the text is the key, not the name).
    spec = tmp_path / "mine.json"
    text = (SCENARIOS_DIR / "calm.json").read_text(encoding="utf-8")
    spec.write_text(text, encoding="utf-8")
    before = load_scenario(spec, seed=3)
    assert np.array_equal(before.paths["BTCUSD"].perp, first.paths["BTCUSD"].perp)
    spec.write_text(text.replace('"days": 3', '"days": 2'), encoding="utf-8")
    after = load_scenario(spec, seed=3)
    assert len(after.paths["BTCUSD"].times_ms) < len(before.paths["BTCUSD"].times_ms)


def test_only_the_last_few_generated_paths_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from perpsim.sim import scenario as scenario_module

    monkeypatch.setattr(scenario_module, "_GENERATED", {})
    for seed in range(scenario_module._GENERATED_KEPT + 3):
        load_scenario("calm", seed=seed)
    assert len(scenario_module._GENERATED) == scenario_module._GENERATED_KEPT
    assert {key[2] for key in scenario_module._GENERATED} == set(
        range(3, scenario_module._GENERATED_KEPT + 3))  # the oldest went first
