"""``fast_levels.levels_batch`` (every position at once) equals the scalar solver bit for bit.

The scalar float bounds are what tests/test_level_index.py proves conservative against the
exact prices; the batch is the same formulas on arrays, so it must give the same float — or
the same "use exact" (None there, NaN here) — for every position.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim.fast_levels import Solver, batch_supported, levels_batch
from perpsim.sim.level_index import _UNSOLVED, SolvedLevels

from engine_helpers import profile

SOLVERS = [Solver.of(profile(name), inst) for name in ("binance_coinm", "binance_coinm_2024")
           for inst in profile(name).instruments]
SOLVERS = [s for s in SOLVERS if batch_supported(s)]

_position = st.tuples(
    st.integers(1, 2_000_000).flatmap(lambda q: st.sampled_from([q, -q])),
    st.floats(100.0, 250_000.0),  # entry
    st.floats(-2.0, 50.0),  # margin: cross wallets can be low or negative after losses
    st.booleans(),  # cross
)


def _same(a: float | None, b: float) -> bool:
    return math.isnan(b) if a is None else a == b


@settings(max_examples=examples(300), deadline=None)
@given(solver=st.sampled_from(SOLVERS), positions=st.lists(_position, min_size=1, max_size=30),
       rate=st.floats(-0.01, 0.01))
def test_the_batch_gives_the_scalar_solvers_floats(solver: Solver,
                                                   positions: list[tuple[int, float, float,
                                                                         bool]],
                                                   rate: float) -> None:
    qty = np.array([p[0] for p in positions], dtype=np.int64)
    entry = np.array([p[1] for p in positions])
    margin = np.array([p[2] for p in positions])
    cross = np.array([p[3] for p in positions])
    liq, call, lo, hi = levels_batch(solver, qty, entry, margin, rate, cross)
    for i, (q, e, m, c) in enumerate(positions):
        assert _same(solver.liquidation_level(q, e, m, rate, cross=c), liq[i])
        assert _same(solver.call_level(q, e, m, rate, cross=c), call[i])
        bounds = solver.ratio_boundary(q, e, m, rate, cross=c)
        assert _same(None if bounds is None else bounds[0], lo[i])
        assert _same(None if bounds is None else bounds[1], hi[i])


def test_the_binance_solvers_are_batched() -> None:
    assert SOLVERS  # the profiles the crowd benchmarks run on take the vectorised path


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: f"{s.style}-{s.contract_size}")
def test_a_crowd_through_every_bracket_gives_the_scalar_floats(solver: Solver) -> None:
    """Thousands of positions at once, sizes spread over every bracket of the tables, both
    sides, margins from deep underwater to many times the position, and half of them placed
    so that the root of some bracket lands on (or a hair off) a bracket edge: each bracket is
    solved on the rows still open for it only, and every row must still get the scalar
    solver's floats — "use exact" (NaN) included."""
    rng = np.random.default_rng(18)
    count = 4000
    qty = np.rint(np.exp(rng.uniform(0, math.log(2_000_000), count))).astype(np.int64)
    qty *= rng.choice([1, -1], count)
    entry = np.exp(rng.uniform(math.log(500), math.log(200_000), count))
    a = np.abs(qty) * solver.contract_size / entry  # coins at entry
    margin = a * rng.choice([-3.0, -1.0, -0.05, 0.0, 0.004, 0.01, 0.05, 0.2, 1.0, 5.0], count) \
        * rng.uniform(0.9, 1.1, count)
    # Edges: the margin that puts a bracket's root (rate 0, no fee) on one of its edges.
    for i in np.flatnonzero(rng.random(count) < 0.5).tolist():
        table = [solver.table, solver.call_table, solver.ratio_table][rng.integers(3)]
        floor, cap, mmr, cum = table[rng.integers(len(table))]
        edge = (cap if math.isfinite(cap) and rng.random() < 0.7 else floor) \
            * (1 + rng.choice([-1e-9, -1e-15, 0.0, 1e-15, 1e-9]))
        margin[i] = (edge * (1 + mmr) - a[i] - cum if qty[i] > 0
                     else a[i] - cum - edge * (1 - mmr))
    cross = rng.random(count) < 0.5
    for rate in (0.0, 0.0003, -0.0075):
        liq, call, lo, hi = levels_batch(solver, qty, entry, margin, rate, cross)
        for i in range(count):
            args = (int(qty[i]), float(entry[i]), float(margin[i]), rate)
            c = bool(cross[i])
            assert _same(solver.liquidation_level(*args, cross=c), liq[i])
            assert _same(solver.call_level(*args, cross=c), call[i])
            bounds = solver.ratio_boundary(*args, cross=c)
            assert _same(None if bounds is None else bounds[0], lo[i])
            assert _same(None if bounds is None else bounds[1], hi[i])
        if rate == 0.0:  # the data reach "use exact" and "never" on both sides
            for side in (qty > 0, qty < 0):
                assert np.isnan(liq[side]).any()
                assert np.isinf(liq[side]).any()


# ---- the level index's memo of these answers (level_index.SolvedLevels) --------------------------
@settings(max_examples=examples(200), deadline=None)
@given(solver=st.sampled_from(SOLVERS), positions=st.lists(_position, min_size=1, max_size=12),
       rate=st.floats(-0.01, 0.01), scalar=st.booleans())
def test_answers_held_read_back_as_the_scalar_solver_gives_them(
        solver: Solver, positions: list[tuple[int, float, float, bool]], rate: float,
        scalar: bool) -> None:
    # Held from a batch or from scalar solves, the answers read back for the same inputs are
    # the scalar solver's; any input moved (a sign of zero included) reads back nothing.
    memo = SolvedLevels()
    memo.grow(len(positions))
    qty = np.array([p[0] for p in positions], dtype=np.int64)
    entry = np.array([p[1] for p in positions])
    margin = np.array([p[2] for p in positions])
    cross = np.array([p[3] for p in positions])
    if scalar:
        for o, (q, e, m, c) in enumerate(positions):
            call = solver.call_level(q, e, m, rate, cross=c) if o % 2 else _UNSOLVED
            memo.put(o, (q, e, m, rate, c), solver.liquidation_level(q, e, m, rate, cross=c),
                     solver.ratio_boundary(q, e, m, rate, cross=c), call)
    else:
        memo.put_many(np.arange(len(positions)), qty, entry, margin, rate, cross,
                      levels_batch(solver, qty, entry, margin, rate, cross))
    for o, (q, e, m, c) in enumerate(positions):
        held = memo.get(o, q, e, m, rate, c)
        assert held is not None
        liq, boundary, call = held
        assert liq == solver.liquidation_level(q, e, m, rate, cross=c)
        assert boundary == solver.ratio_boundary(q, e, m, rate, cross=c)
        if scalar and not o % 2:
            assert call is _UNSOLVED
        else:
            assert call == solver.call_level(q, e, m, rate, cross=c)
        assert memo.get(o, q + 1, e, m, rate, c) is None
        assert memo.get(o, q, math.nextafter(e, math.inf), m, rate, c) is None
        assert memo.get(o, q, e, m + 1e-9, rate, c) is None
        assert memo.get(o, q, e, -m if m == 0 else m * 2, rate, c) is None
        assert memo.get(o, q, e, m, -rate if rate == 0 else rate * 2, c) is None
        assert memo.get(o, q, e, m, rate, not c) is None
        memo.forget(o)
        assert memo.get(o, q, e, m, rate, c) is None
