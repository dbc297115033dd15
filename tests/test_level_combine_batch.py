"""``level_index.combine_batch`` (every position's four index levels at once) equals the
per-position ``_combine`` float for float, None standing as NaN — including ties, infinities
and unknown ratio boundaries."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from perpsim.sim.level_index import _combine, combine_batch

_level = st.one_of(st.floats(allow_nan=False), st.sampled_from([0.0, -0.0, 1.0, math.inf,
                                                                 -math.inf]))
_row = st.tuples(st.booleans(), st.booleans(), _level, _level, _level, _level, st.booleans())


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=40))
def test_combine_batch_equals_combine(rows: list[tuple[bool, bool, float, float, float, float,
                                                        bool]]) -> None:
    long = np.array([r[0] for r in rows])
    called = np.array([r[1] for r in rows])
    liq = np.array([r[2] for r in rows])
    call = np.array([math.inf if r[1] and r[0] else -math.inf if r[1] else r[3] for r in rows])
    lo = np.array([math.nan if r[6] else r[4] for r in rows])
    hi = np.array([math.nan if r[6] else r[5] for r in rows])
    columns = [c.tolist() for c in combine_batch(long, called, liq, call, lo, hi)]
    for k, (is_long, was_called, *_rest, unknown) in enumerate(rows):
        boundary = None if unknown else (float(lo[k]), float(hi[k]))
        expected = _combine(is_long, was_called, float(liq[k]), float(call[k]), boundary)
        got = tuple(None if math.isnan(c[k]) else c[k] for c in columns)
        assert len(expected) == len(got)
        for e, g in zip(expected, got, strict=True):
            assert (e is None and g is None) or (
                e is not None and g is not None and e == g
                and math.copysign(1.0, e) == math.copysign(1.0, g)), (rows[k], expected, got)
