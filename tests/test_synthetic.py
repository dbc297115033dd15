"""Synthetic generators: deterministic per seed, the model they document, and clear spec errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perpsim.sim.errors import ScenarioError
from perpsim.sim.scenario import load_scenario
from perpsim.sim.synthetic import (
    DEFAULT_BASIS,
    GeneratorSpec,
    derive_perp,
    format_time_ms,
    generate,
    ou_in_place,
    parse_spec,
    parse_time_ms,
)

START = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR = 3_600_000
MIN = 60_000


def _spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "generator": "gbm_jumps",
        "pair": "BTCUSD",
        "start": "2024-01-01T00:00:00Z",
        "days": 1,
        "resolution_ms": 60_000,
        "start_price": 60_000,
        "vol_annual": 0.5,
        "drift_annual": 0,
        "jumps": {"rate_per_day": 0.5, "mean": 0, "stdev": 0.02},
        "shocks": [{"at_hours": 10, "over_hours": 2, "move": -0.2}],
        "basis": {
            "regimes": [{"from_hours": 0, "mean": 0.0003}, {"from_hours": 12, "mean": -0.004}],
            "reversion_per_hour": 2.0,
            "vol": 0.0005,
        },
    }
    base.update(changes)
    return base


def _gen(seed: int = 0, **changes: Any) -> Any:
    return generate(GeneratorSpec.model_validate(_spec(**changes)), seed)


# ---------------------------------------------------------------------------------------------
# Determinism and grid
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_arrays_different_seed_different() -> None:
    a, b, c = _gen(5), _gen(5), _gen(6)
    for name in ("times_ms", "index", "perp"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.times_ms, c.times_ms)
    assert not np.array_equal(a.index, c.index)
    assert not np.array_equal(a.perp, c.perp)


def test_bundled_scenario_is_deterministic_per_seed() -> None:
    one, two, other = (load_scenario("crash", seed=s).paths["BTCUSD"] for s in (1, 1, 2))
    np.testing.assert_array_equal(one.index, two.index)
    np.testing.assert_array_equal(one.perp, two.perp)
    assert not np.array_equal(one.index, other.index)


def test_grid_spans_the_days_at_the_resolution() -> None:
    g = _gen()
    assert len(g.times_ms) == 1441
    assert g.times_ms[0] == START
    assert g.times_ms[-1] == START + 24 * HOUR
    assert set(np.diff(g.times_ms).tolist()) == {MIN}
    assert g.index[0] == 60_000
    assert g.times_ms.dtype == np.int64
    assert g.index.dtype == g.perp.dtype == np.float64


def test_overrides_of_start_days_and_resolution() -> None:
    spec = GeneratorSpec.model_validate(_spec())
    g = generate(spec, 0, start_ms=START + 7 * HOUR, days=1, resolution_ms=1000)
    assert len(g.times_ms) == 86_401
    assert (g.times_ms[0], g.times_ms[-1]) == (START + 7 * HOUR, START + 31 * HOUR)
    scenario = load_scenario("calm", seed=2, start_ms=START + HOUR, days=0.5, resolution_ms=1000)
    path = scenario.paths["BTCUSD"]
    assert (scenario.start_ms, scenario.end_ms, len(path)) == (
        START + HOUR,
        START + 13 * HOUR,
        43_201,
    )


def test_one_second_day_has_the_documented_basis_statistics() -> None:
    """OU basis: mean = regime mean, stationary stdev = vol, whatever the resolution."""
    spec = GeneratorSpec.model_validate(
        _spec(
            shocks=[],
            jumps=None,
            basis={
                "regimes": [{"from_hours": 0, "mean": 0.001}],
                "reversion_per_hour": 4,
                "vol": 0.0005,
            },
        )
    )
    g = generate(spec, 3, resolution_ms=1000)
    basis = g.perp / g.index - 1
    assert basis.mean() == pytest.approx(0.001, abs=0.0001)
    assert basis.std() == pytest.approx(0.0005, rel=0.15)


# ---------------------------------------------------------------------------------------------
# The model: shocks, jumps, basis regimes
# ---------------------------------------------------------------------------------------------


def test_shock_moves_the_index_by_its_size_over_its_window() -> None:
    g = _gen(vol_annual=0, jumps=None)
    at, end = 10 * 60, 12 * 60
    assert g.index[at] == pytest.approx(60_000)
    assert g.index[end] == pytest.approx(60_000 * 0.8)
    assert g.index[-1] == pytest.approx(60_000 * 0.8)
    # Spread evenly in log space: halfway is sqrt(0.8) of the start.
    assert g.index[(at + end) // 2] == pytest.approx(60_000 * 0.8**0.5)


def test_jumps_leave_the_diffusion_noise_unchanged() -> None:
    """Separate random streams: adding jumps changes only the rows where jumps land."""
    calm = _gen(jumps=None, shocks=[])
    jumpy = _gen(jumps={"rate_per_day": 20, "mean": 0, "stdev": 0.05}, shocks=[])
    steps = np.diff(np.log(jumpy.index)) - np.diff(np.log(calm.index))
    moved = np.flatnonzero(np.abs(steps) > 1e-9)
    assert 5 <= len(moved) <= 45
    np.testing.assert_allclose(calm.perp / calm.index, jumpy.perp / jumpy.index, rtol=1e-14)


def test_basis_regimes_switch_the_perp_premium() -> None:
    g = _gen()
    basis = g.perp / g.index - 1
    assert basis[: 12 * 60].mean() > 0  # perp over index: positive funding
    assert basis[13 * 60 :].mean() == pytest.approx(-0.004, abs=0.0005)
    assert np.all(basis[13 * 60 :] < 0)  # perp under index: negative funding


def test_regime_vol_overrides_the_basis_vol() -> None:
    quiet = {"from_hours": 0, "mean": 0.0, "vol": 0.0}
    loud = {"from_hours": 12, "mean": 0.0, "vol": 0.01}
    g = _gen(basis={"regimes": [quiet, loud], "reversion_per_hour": 2, "vol": 0.001})
    basis = g.perp / g.index - 1
    assert np.abs(basis[: 12 * 60]).max() < 1e-12
    assert basis[14 * 60 :].std() > 0.005


def test_explicit_funding_rates_make_a_data_scenario(tmp_path: Path) -> None:
    rates = [
        {"at_hours": 0, "rate": 0.0001},
        {"time": "2024-01-01T08:00:00Z", "rate": -0.0002},
        {"at_hours": 16, "rate": 0.0003},
        {"at_hours": 30, "rate": 0.5},  # after the end: dropped
    ]
    file = tmp_path / "f.json"
    file.write_text(json.dumps(_spec(funding_rates=rates)), encoding="utf-8")
    scenario = load_scenario(file)
    path = scenario.paths["BTCUSD"]
    assert scenario.mode == "data"
    assert path.funding_times_ms.tolist() == [START, START + 8 * HOUR, START + 16 * HOUR]
    assert path.funding_rates.tolist() == [0.0001, -0.0002, 0.0003]
    assert load_scenario("calm").mode == "synthetic"


def test_derive_perp_on_irregular_rows_is_seeded() -> None:
    rng = np.random.default_rng(0)
    times = START + np.cumsum(rng.integers(1, 120_000, size=20_000))
    index = np.full(len(times), 100.0)
    a, b, c = (
        derive_perp(times, index, 1),
        derive_perp(times, index, 1),
        derive_perp(times, index, 2),
    )
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    basis = a / index - 1
    mean = DEFAULT_BASIS.regimes[0].mean
    assert basis.mean() == pytest.approx(mean, abs=0.00005)
    assert basis.std() == pytest.approx(DEFAULT_BASIS.vol, rel=0.2)


@pytest.mark.parametrize("log_a", [-0.01, -3.0, -200.0, "irregular"])
def test_ou_in_place_matches_the_plain_recurrence(log_a: float | str) -> None:
    rng = np.random.default_rng(1)
    n = 3000
    x = rng.standard_normal(n)
    a: Any = np.concatenate(([0.0], -rng.uniform(0, 40, n - 1))) if log_a == "irregular" else log_a
    decay = np.exp(a) if isinstance(a, np.ndarray) else np.full(n, np.exp(a))
    expected = x.copy()
    for k in range(1, n):
        expected[k] = decay[k] * expected[k - 1] + expected[k]
    got = x.copy()
    ou_in_place(got, a)
    # Decay is floored at e^-30 per step: at most ~1e-13 of the previous state differs.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-11)


# ---------------------------------------------------------------------------------------------
# Spec validation: one ScenarioError naming the file and the field
# ---------------------------------------------------------------------------------------------

BAD_SPECS = [
    ("extra field", {"colour": "red"}, "field colour: Extra inputs are not permitted"),
    ("extra nested", {"jumps": {"rate_per_day": 1, "size": 2}}, "field jumps.size"),
    ("unknown generator", {"generator": "heston"}, "field generator"),
    ("negative vol", {"vol_annual": -1}, "field vol_annual"),
    ("zero days", {"days": 0}, "field days"),
    ("bad start", {"start": "soon"}, "field start"),
    ("non-UTC start", {"start": "2024-01-01T00:00:00+02:00"}, "must be UTC"),
    (
        "shock after end",
        {"shocks": [{"at_hours": 30, "over_hours": 1, "move": -0.1}]},
        "after the end",
    ),
    (
        "total loss shock",
        {"shocks": [{"at_hours": 1, "over_hours": 1, "move": -1}]},
        "shocks.0.move",
    ),
    (
        "first regime late",
        {"basis": {"regimes": [{"from_hours": 1, "mean": 0}], "reversion_per_hour": 1, "vol": 0}},
        "from_hours 0",
    ),
    (
        "unordered regimes",
        {
            "basis": {
                "regimes": [{"from_hours": 0, "mean": 0}, {"from_hours": 0, "mean": 0.1}],
                "reversion_per_hour": 1,
                "vol": 0,
            }
        },
        "strictly increasing",
    ),
    ("absurd funding", {"funding_rates": [{"at_hours": 0, "rate": 2}]}, "funding_rates.0.rate"),
    (
        "funding without time",
        {"funding_rates": [{"rate": 0.001}]},
        "exactly one of at_hours or time",
    ),
    ("pair", {"pair": "btc usd"}, "field pair"),
]


@pytest.mark.parametrize(
    ("changes", "expected"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS]
)
def test_bad_spec_file_raises_one_clear_error(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(_spec(**changes)), encoding="utf-8")
    with pytest.raises(ScenarioError, match=expected) as info:
        load_scenario(file)
    assert str(info.value).startswith(str(file))


def test_invalid_json_and_non_object(tmp_path: Path) -> None:
    file = tmp_path / "broken.json"
    file.write_text("{nope", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"broken\.json: not valid JSON"):
        load_scenario(file)
    file.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"broken\.json: "):
        load_scenario(file)


def test_nan_is_refused() -> None:
    with pytest.raises(ScenarioError, match="field vol_annual"):
        parse_spec({**_spec(), "vol_annual": float("nan")}, "inline")


def test_too_many_rows_fail_before_allocating() -> None:
    spec = GeneratorSpec.model_validate(_spec())
    with pytest.raises(ScenarioError, match="too many"):
        generate(spec, 0, days=3650, resolution_ms=1)
    with pytest.raises(ScenarioError, match="fewer than two rows"):
        generate(spec, 0, days=0.5, resolution_ms=24 * HOUR)


def test_time_parsing_round_trip() -> None:
    assert parse_time_ms("2024-01-01T00:00:00Z") == START
    assert parse_time_ms("2024-01-01T00:00:00+00:00") == START
    assert parse_time_ms("2024-01-01T00:00:00") == START  # no offset: read as UTC
    assert parse_time_ms(str(START)) == START
    assert parse_time_ms(START) == START
    assert format_time_ms(START) == "2024-01-01T00:00:00Z"
    assert format_time_ms(START + 1500) == "2024-01-01T00:00:01.500Z"
    with pytest.raises(ValueError, match="must be UTC"):
        parse_time_ms("2024-01-01T01:00:00+01:00")
