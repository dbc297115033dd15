"""Shortcuts of the hedge's engine path give what the computations they replace give.

* A scenario path whose times are a regular grid says so (``PricePath.regular_step_ms``,
  checked once when it is built); its tape then finds rows by arithmetic, with no times read:
  the rows are those the search of the times finds, and a whole run's journal is the one the
  checked path writes.
* The mark's basis rows, a slice of distinct rows, are summed without counting uses: the
  same exact sums as the counted path.
* The mark's basis samples on a regular tape, summed by row with their numbers of uses in
  plain Python: the exact median, ties at half ticks included.
* A funding window whose premium average provably cannot leave the clamp band pays the
  interest rate without its samples being computed: the rate the samples give, on every
  profile, from deep inside the band to beyond its edges.
"""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim import scenario as scenario_module
from perpsim.sim.errors import ScenarioError
from perpsim.sim.exchange import Exchange
from perpsim.sim.market import MarketPricer, PriceTape
from perpsim.sim.profile import load_profile
from perpsim.sim.scenario import PricePath, load_scenario

from engine_helpers import BTC, T0, direct_mark, window_rate_of_samples

SECOND_MS = 1_000


# ---- PricePath knows its grid -----------------------------------------------------------------
@given(n=st.integers(1, 60), step=st.sampled_from([1, 100, 1000, 60_000]),
       bump_at=st.one_of(st.none(), st.integers(1, 59)), bump=st.sampled_from([-1, 1, 7]),
       block=st.sampled_from([1, 2, 3, 8, 1 << 20]))
@settings(max_examples=examples(200), deadline=None)
def test_a_path_tells_a_regular_grid_from_any_other(n: int, step: int, bump_at: int | None,
                                                    bump: int, block: int) -> None:
    """regular_step_ms is the step exactly when every gap is it (checked a block at a time:
    a gap on a block's edge counts as much as one inside)."""
    times = T0 + step * np.arange(n, dtype=np.int64)
    if bump_at is not None and bump_at < n:
        times[bump_at:] += bump  # one gap differs (strictly increasing unless it reaches 0)
    prices = np.full(n, 60_000.0)
    gaps = np.diff(times)
    with mock.patch.object(scenario_module, "_CHECK_ROWS", block):
        if len(gaps) and not (gaps > 0).all():
            with pytest.raises(ScenarioError, match="strictly increasing"):
                PricePath(times, prices, prices)
            return
        path = PricePath(times, prices, prices)
    regular = n >= 2 and bool((gaps == gaps[0]).all())
    assert path.regular_step_ms == (int(gaps[0]) if regular else None)


def test_a_bundled_scenario_is_a_regular_grid_and_read_only() -> None:
    scen = load_scenario("calm_30d", seed=0, days=1)
    path = scen.paths["BTCUSD"]
    assert path.regular_step_ms is not None
    with pytest.raises(ValueError, match="read-only"):
        path.times_ms[3] += 1  # the promise cannot be broken afterwards


# ---- rows by arithmetic = rows by search ------------------------------------------------------
@given(n=st.integers(2, 400), row_ms=st.sampled_from([700, 1000, 5000, 60_000]),
       first=st.integers(-200_000, 30_000_000), step=st.sampled_from([500, 1000, 5000, 60_000]),
       count=st.integers(1, 200), queries=st.lists(st.integers(-100_000, 30_000_000),
                                                   min_size=1, max_size=30))
@settings(max_examples=examples(300), deadline=None)
def test_a_regular_tapes_rows_are_the_searched_rows(n: int, row_ms: int, first: int, step: int,
                                                    count: int, queries: list[int]) -> None:
    times = T0 + row_ms * np.arange(n, dtype=np.int64)
    prices = np.full(n, 60_000.0)
    tape = PriceTape("BTCUSD", times, prices, prices, regular=True)
    checked = PriceTape("BTCUSD", times, prices, prices)
    grid = T0 + first + step * np.arange(count, dtype=np.int64)
    expected = np.maximum(np.searchsorted(times, grid, side="right") - 1, 0)
    assert np.array_equal(tape.rows_at(grid), expected)
    rows = tape.grid_rows(T0 + first, step, count)
    assert np.array_equal(np.arange(n)[rows], expected)
    assert type(rows) is type(checked.grid_rows(T0 + first, step, count))
    for q in queries:
        through = int(np.searchsorted(times, T0 + q, side="right"))
        assert tape.rows_through(T0 + q) == through
        assert tape.row_at(T0 + q) == max(0, through - 1)


def _run(days: float, *, trust_grid: bool) -> tuple[str, list[str]]:
    """A hedge, a 20x long and a 5x cross short over ``days`` of calm_30d at 1 s: the journal
    digest and the marks and rates read along the way."""
    from perpsim.benchmarks.engine_event_skipping import _open_positions

    scen = load_scenario("calm_30d", seed=3, days=days)
    patch = (mock.patch.object(PricePath, "regular_step_ms", property(lambda self: None))
             if not trust_grid else mock.patch.object(scenario_module, "_CHECK_ROWS", 1 << 20))
    with patch:
        ex = Exchange(load_profile("binance_coinm"), scen, seed=0)
    assert ex.pricer(BTC).tape._regular is trust_grid
    _open_positions(ex)
    seen = []
    for _ in range(int(days * 6) - 1):  # every 4 h: the mark, the predicted rate, the book
        ex.advance(4 * 3_600_000 + 1_234)
        seen += [str(ex.mark_price(BTC)), str(ex.predicted_funding_rate(BTC)),
                 str(ex.last_price(BTC)), str(ex.index_price(BTC))]
    ex.advance_until(scen.end_ms)
    return ex.journal.digest(), seen


def test_a_run_on_the_trusted_grid_writes_the_checked_runs_journal() -> None:
    assert _run(3, trust_grid=True) == _run(3, trust_grid=False)


# ---- the basis rows' exact sums ---------------------------------------------------------------
@given(offset=st.integers(0, 500), stride=st.sampled_from([1, 2, 5]),
       count=st.integers(1, 40), warm=st.booleans())
@settings(max_examples=examples(200), deadline=None)
def test_a_slice_of_rows_sums_as_the_counted_rows(offset: int, stride: int, count: int,
                                                  warm: bool) -> None:
    """Distinct rows summed in order (cached or not) give the counted path's Decimal."""
    rng = np.random.default_rng(offset * 97 + stride)
    n = offset + stride * count + 1
    index = 60_000 + rng.normal(0, 50, n)
    index[::7] = np.round(index[::7], 1)  # some short reprs among the long ones
    tape = PriceTape("BTCUSD", T0 + SECOND_MS * np.arange(n, dtype=np.int64), index,
                     index + 5, regular=True)
    prof = load_profile("binance_coinm")
    pricer = MarketPricer(prof, prof.instrument(BTC), tape)
    rows = slice(offset, offset + stride * (count - 1) + 1, stride)
    numbers = np.arange(n)[rows]
    expected = sum((Decimal(repr(float(x))) for x in index[numbers]), Decimal(0))
    if warm:
        pricer._index_sum(numbers[: count // 2])  # some rows already converted
    assert pricer._index_sum(rows) == expected
    assert pricer._index_sum(rows) == expected  # all rows cached
    assert pricer._index_sum(numbers) == expected


# ---- a window's rate when its average cannot leave the clamp ----------------------------------
PROFILES = ("binance_coinm", "bybit_inverse", "bitmex_xbtusd")


# Basis levels across the band (0.5 bp steps) and within 60 millionths of its edges, where
# the premium (the basis less the book's spread) and the basis fall on different sides.
LEVELS = st.one_of(st.integers(-14, 14).map(lambda k: k * 0.5e-4),
                   st.tuples(st.sampled_from([6e-4, -4e-4]), st.integers(-60, 60)).map(
                       lambda edge: edge[0] + edge[1] * 1e-6))


@given(name=st.sampled_from(PROFILES), level=LEVELS,
       wiggle_bp=st.sampled_from([0.0, 0.5, 2.0, 8.0]), seed=st.integers(0, 50),
       start_h=st.integers(0, 16), hours=st.integers(0, 24), extra_ms=st.integers(0, 90_000),
       row_ms=st.sampled_from([1_000, 5_000, 60_000]))
@settings(max_examples=examples(400), deadline=None)
def test_a_window_rate_is_the_one_its_samples_give(name: str, level: float, wiggle_bp: float,
                                                   seed: int, start_h: int, hours: int,
                                                   extra_ms: int, row_ms: int) -> None:
    """Premium levels from deep inside the clamp band (±0.05 % around 0.01 %) to beyond its
    edges: the shortcut answers only what the samples answer."""
    prof = load_profile(name)
    inst = prof.instruments[0]
    rng = np.random.default_rng(seed)
    n = 40 * 3_600_000 // row_ms
    index = 60_000 * np.exp(np.cumsum(rng.normal(0, 2e-5 * (row_ms / 1000) ** 0.5, n)))
    basis = level + wiggle_bp * 1e-4 * rng.standard_normal(n)
    perp = index * (1 + basis)
    tape = PriceTape(inst.pair, T0 + row_ms * np.arange(n, dtype=np.int64), index, perp,
                     regular=True)
    pricer = MarketPricer(prof, inst, tape)
    window_start = pricer.schedule.previous_time(T0 + start_h * 3_600_000 + 1)  # a funding time
    if window_start < T0:
        window_start = pricer.schedule.next_time(T0 - 1)
    # The whole window (a settlement: the bound may answer) and a running one (the samples).
    for start, until in ((window_start, pricer.schedule.next_time(window_start)),
                         (window_start, window_start + hours * 3_600_000 + extra_ms)):
        expected = window_rate_of_samples(pricer, start, until)
        assert str(pricer.window_rate(start, until)) == str(expected)


def test_the_shortcut_is_taken_inside_the_band_and_not_near_its_edges() -> None:
    """So the property above tests both paths: a calm window skips the samples, one whose
    premiums sit at the band's edge computes them."""
    prof = load_profile("binance_coinm")
    inst = prof.instruments[0]
    n = 9 * 3_600
    index = np.full(n, 60_000.0)
    for basis, skipped in ((1e-4, True), (5.9e-4, False), (-3.9e-4, False)):
        tape = PriceTape(inst.pair, T0 + 1_000 * np.arange(n, dtype=np.int64), index,
                         index * (1 + basis), regular=True)
        pricer = MarketPricer(prof, inst, tape)
        with mock.patch.object(MarketPricer, "_window_rate_of_samples",
                               autospec=True,
                               side_effect=MarketPricer._window_rate_of_samples) as samples:
            rate = pricer.window_rate(T0, T0 + 8 * 3_600_000)
        assert (samples.call_count == 0) is skipped
        assert rate == window_rate_of_samples(pricer, T0, T0 + 8 * 3_600_000)
        # A running window, or one whose samples are kept, uses the samples.
        with mock.patch.object(MarketPricer, "_window_rate_of_samples", autospec=True,
                               side_effect=MarketPricer._window_rate_of_samples) as samples:
            assert pricer.window_rate(T0, T0 + 7 * 3_600_000) == window_rate_of_samples(
                pricer, T0, T0 + 7 * 3_600_000)
            pricer._rate_memo.clear()
            assert pricer.window_rate(T0, T0 + 8 * 3_600_000) == rate
        assert samples.call_count == 2


@pytest.mark.parametrize("name", PROFILES)
def test_rates_at_the_band_edges_are_the_samples_rates(name: str) -> None:
    """Every basis level within 60 millionths of either edge, 3 millionths apart: where the
    premium leaves the band the shortcut must not answer (a bound off by more than the
    book's spread would)."""
    prof = load_profile(name)
    inst = prof.instruments[0]
    rng = np.random.default_rng(7)
    n = 10 * 3_600
    index = 60_000 * np.exp(np.cumsum(rng.normal(0, 2e-5, n)))
    times = T0 + 1_000 * np.arange(n, dtype=np.int64)
    for edge in (6e-4, -4e-4):
        for k in range(-20, 21):
            perp = index * (1 + edge + k * 3e-6 + 2e-6 * rng.standard_normal(n))
            pricer = MarketPricer(prof, inst, PriceTape(inst.pair, times, index, perp,
                                                        regular=True))
            first = pricer.schedule.next_time(T0 - 1)
            for start, until in ((first, pricer.schedule.next_time(first)),
                                 (first, first + 7_654_321)):
                assert str(pricer.window_rate(start, until)) == str(
                    window_rate_of_samples(pricer, start, until)), (edge, k)


# ---- the next window priced at the settlement --------------------------------------------------
def test_the_window_read_ahead_changes_nothing_but_the_memo() -> None:
    """After a settlement the window that began there is in the pricer's memo (with the key
    the next settlement asks with); a run without the read-ahead writes the same journal."""
    from perpsim.benchmarks.engine_event_skipping import _open_positions

    scen = load_scenario("calm_30d", seed=5, days=4)

    def run(read_ahead: bool) -> Exchange:
        ex = Exchange(load_profile("binance_coinm"), scen, seed=0)
        _open_positions(ex)
        if read_ahead:
            ex.advance_until(scen.end_ms)
        else:
            with mock.patch.object(Exchange, "_read_ahead_window_rates"):
                ex.advance_until(scen.end_ms)
        return ex

    ahead, plain = run(True), run(False)
    assert ahead.journal.digest() == plain.journal.digest()
    schedule = ahead.funding_schedules[BTC]
    settled = [e.time_ms for e in ahead.journal if e.type == "funding.settled"]
    assert len(settled) >= 10
    memo = ahead.pricer(BTC)._rate_memo
    for t in settled[:-1]:
        end = schedule.next_time(t)
        assert (schedule.previous_time(end), end, 0) in memo
    stepped = Exchange(load_profile("binance_coinm"), scen, seed=0)  # short advances
    stepped.advance(8 * 3_600_000)  # the settlement's window ends beyond this advance
    assert not any(key[1] > stepped.now_ms for key in stepped.pricer(BTC)._rate_memo)


# ---- the mark at a funding instant does not depend on the rate ----------------------------------
@given(name=st.sampled_from(PROFILES), window=st.integers(1, 20), offset_ms=st.sampled_from(
    [0, 0, 1, 999, -1]), rates=st.lists(st.decimals("-0.0375", "0.0375", places=8), min_size=2,
                                       max_size=3), last_ticks=st.integers(-50, 50))
@settings(max_examples=examples(200), deadline=None)
def test_the_mark_ignores_the_rate_exactly_where_the_memo_says(
        name: str, window: int, offset_ms: int, rates: list[Decimal], last_ticks: int) -> None:
    """rate_matters_at is False only where every rate gives the same mark (to the digit): at
    funding instants; a millisecond away the rate moves P1 again."""
    prof = load_profile(name)
    inst = prof.instruments[0]
    scen = load_scenario("calm_30d", seed=1, days=8)
    ex = Exchange(prof, scen, seed=0)
    pricer = ex.pricer(inst.symbol)
    t = pricer.schedule.next_time(scen.start_ms + window * 3_600_000) + offset_ms
    last = pricer.reference_at(t) + last_ticks * inst.tick_size
    marks = {str(pricer.mark_at(t, rate, last)) for rate in rates}
    if not pricer.rate_matters_at(t):
        assert offset_ms == 0
        assert len(marks) == 1


def test_a_settlement_reads_one_mark_for_the_instant() -> None:
    """The mark read to settle (the old rate) serves the reads after it (the new rate), and
    is the one computed afresh with the new rate."""
    scen = load_scenario("calm_30d", seed=2, days=2)
    ex = Exchange(load_profile("binance_coinm"), scen, seed=0)
    ex.create_account({"BTC": "1"})
    first_funding = ex.funding_schedules[BTC].next_time(ex.now_ms)
    pricer = ex.pricer(BTC)
    with mock.patch.object(MarketPricer, "mark_at", autospec=True,
                           side_effect=MarketPricer.mark_at) as computed:
        ex.advance_until(first_funding)
        settled = ex.mark_price(BTC)
    assert ex.mark_funding_rate(BTC) != 0  # the rate did change at the instant
    assert [c.args[1] for c in computed.call_args_list].count(first_funding) == 1
    fresh = MarketPricer(ex.profile, ex.instrument(BTC), pricer.tape, pricer.schedule)
    assert settled == fresh.mark_at(first_funding, ex.mark_funding_rate(BTC), ex.last_price(BTC))


# ---- the mark on a regular tape: rows with their numbers of samples ----------------------------


@given(halves=st.lists(st.integers(-400, 400), min_size=3, max_size=120),
       basis_halves=st.lists(st.integers(-200, 200), min_size=1, max_size=40),
       noise=st.lists(st.sampled_from([0.0, 0.0, 1e-9, -1e-9, 0.013, -0.021, 0.5]),
                      max_size=40),
       row_ms=st.sampled_from([1_000, 7_000, 15_000, 60_000, 300_000]),
       at=st.integers(-100_000, 40_000_000), rate=st.decimals("-0.003", "0.003", places=6),
       last_ticks=st.one_of(st.none(), st.integers(-300, 300)),
       shift=st.one_of(st.none(), st.decimals("-5", "5", places=2)))
@settings(max_examples=examples(400), deadline=None)
def test_the_mark_on_a_regular_tape_is_the_exact_median(
        halves: list[int], basis_halves: list[int], noise: list[float], row_ms: int, at: int,
        rate: Decimal, last_ticks: int | None, shift: Decimal | None) -> None:
    """Rows shared by several samples (coarse rows), half-tick ties, instants before the tape
    and after its end: the filter and the exact sums by row give the exact median."""
    n = len(halves)
    wiggle = [noise[i % len(noise)] if noise else 0.0 for i in range(n)]
    perp = np.array([60_000 + 0.05 * h + e for h, e in zip(halves, wiggle, strict=True)])
    index = perp - 0.05 * np.array([basis_halves[i % len(basis_halves)] for i in range(n)],
                                   dtype=np.float64)
    tape = PriceTape("BTCUSD", T0 + row_ms * np.arange(n, dtype=np.int64), index, perp,
                     regular=True)
    prof = load_profile("binance_coinm")
    pricer = MarketPricer(prof, prof.instrument(BTC), tape)
    t = T0 + at % (n * row_ms + 120_000)
    last = None if last_ticks is None else Decimal(60_000) + Decimal(last_ticks) / 10
    expected = direct_mark(pricer, t, rate, last, shift)
    assert str(pricer.mark_at(t, rate, last, basis_shift_usd=shift)) == str(expected)
    pricer._basis_memo.clear()
    pricer._basis_average(t)  # the exact sums by row, memoised
    assert str(pricer.mark_at(t, rate, last, basis_shift_usd=shift)) == str(expected)
    if row_ms >= 15_000:
        assert pricer._basis_row_counts(t // 1000 * 1000) is not None  # the path under test


@given(n_rows=st.integers(1, 50), row_ms=st.sampled_from([1_000, 7_000, 60_000, 300_000]),
       samples=st.sampled_from([1, 2, 5, 30, 64]), step=st.sampled_from([1_000, 3_000, 7_000]),
       at=st.integers(-2_000_000, 20_000_000))
@settings(max_examples=examples(400), deadline=None)
def test_basis_rows_with_their_uses_are_the_searched_rows_counted(
        n_rows: int, row_ms: int, samples: int, step: int, at: int) -> None:
    prof = load_profile("binance_coinm")
    prof = prof.model_copy(update={"mark": prof.mark.model_copy(update={
        "basis_samples": samples, "basis_sample_interval_ms": step})})
    times = T0 + row_ms * np.arange(n_rows, dtype=np.int64)
    prices = np.full(n_rows, 60_000.0)
    pricer = MarketPricer(prof, prof.instrument(BTC), PriceTape("BTCUSD", times, prices, prices,
                                                               regular=n_rows >= 2))
    last_sample = (T0 + at) // step * step
    counts = pricer._basis_row_counts(last_sample)
    if counts is None:
        assert n_rows < 2 or (samples - 1) * step // row_ms + 2 > 8
        return
    grid = last_sample - step * np.arange(samples - 1, -1, -1, dtype=np.int64)
    rows = np.maximum(np.searchsorted(times, grid, side="right") - 1, 0).tolist()
    expected = [(r, rows.count(r)) for r in sorted(set(rows))]
    assert counts == expected


@given(name=st.sampled_from(PROFILES), row_ms=st.sampled_from([1_000, 15_000, 60_000, 300_000]),
       seed=st.integers(0, 20), first=st.integers(-400, 5_000), count=st.integers(1, 3_000))
@settings(max_examples=examples(120), deadline=None)
def test_premiums_priced_once_per_row_are_every_samples_premium(
        name: str, row_ms: int, seed: int, first: int, count: int) -> None:
    """A coarse tape's repeated rows priced once and spread back: the very floats of pricing
    every sample (the direct walk), bit for bit; chunks crossing the tape's ends included."""
    prof = load_profile(name)
    inst = prof.instruments[0]
    step = prof.funding.premium_sample_interval_ms
    rng = np.random.default_rng(seed)
    n = 2_000
    index = 60_000 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    perp = np.round(index * (1 + rng.normal(2e-4, 3e-4, n)), 2)
    tape = PriceTape(inst.pair, T0 + row_ms * np.arange(n, dtype=np.int64), index, perp,
                     regular=True)
    pricer = MarketPricer(prof, inst, tape)
    first_ms = (T0 // step + first) * step
    grid = first_ms + step * np.arange(count, dtype=np.int64)
    assert pricer.premiums_on_grid(first_ms, count).tobytes() == pricer.premiums(grid).tobytes()
    rows = tape.grid_rows(first_ms, step, count)
    by_sample = pricer._premiums_of(tape.perp[rows], tape.index[rows])
    assert pricer._premiums_of_rows(rows).tobytes() == by_sample.tobytes()


def test_recorded_rates_are_not_read_ahead() -> None:
    """A data scenario settles its recorded rates: no premium window is computed ahead."""
    scen = load_scenario("real-2022-12-13", seed=0)
    ex = Exchange(load_profile("binance_coinm"), scen, seed=0)
    assert scen.end_ms is not None
    ex.advance_until(scen.end_ms)
    settled = [e for e in ex.journal if e.type == "funding.settled"]
    assert settled
    assert all(e.payload["source"] == "scenario" for e in settled)
    schedule = ex.funding_schedules[BTC]
    memo = ex.pricer(BTC)._rate_memo
    assert not any((schedule.previous_time(end), end, 0) in memo
                   for end in (schedule.next_time(e.time_ms) for e in settled))
