"""``fast_levels.levels_batch`` (every position at once) equals the scalar solver bit for bit.

The scalar float bounds are what tests/test_level_index.py proves conservative against the
exact prices; the batch is the same formulas on arrays, so it must give the same float — or
the same "use exact" (None there, NaN here) — for every position.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim.fast_levels import Solver, batch_supported, levels_batch

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
