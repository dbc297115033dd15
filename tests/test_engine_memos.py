"""The engine's shortcuts give the numbers the direct computation gives, and forget them when
they must.

Each shortcut in the pricer and the funding arithmetic is checked against the computation it
replaced, written out here as it was: the memoised basis average and window rates (and their
invalidation when a manual price is set, time moves or a funding rate settles), the float
filter that skips P2's exact basis when it cannot be the median, the strided premium grid and
the one-level impact walk, the scalar payment pass, a bar's four conversions, and the
watcher's whole-range bound.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache, partial
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim import market_data, trading, watch
from perpsim.sim.exchange import Exchange
from perpsim.sim.funding_math import payment_units
from perpsim.sim.market import MarketPricer, PriceTape, decimal_price
from perpsim.sim.money import quantize
from perpsim.sim.profile import Profile

from engine_helpers import (
    BTC,
    HOUR_MS,
    T0,
    direct_mark,
    make_exchange,
    profile,
    window_rate_of_samples,
)

SECOND_MS = 1_000


# ---- the computations the shortcuts replaced, as they were ----------------------------------
def direct_premiums(pricer: MarketPricer, sample_ms: np.ndarray) -> np.ndarray:
    """Premium samples by the general (2-D) impact walk over the searched rows."""
    tape = pricer.tape
    rows = np.maximum(np.searchsorted(tape.times_ms, sample_ms, side="right") - 1, 0)
    tick = float(pricer.inst.tick_size)
    ref = (np.round(tape.perp[rows] / tick) * tick)[:, None]
    index = tape.index[rows]
    weights, offsets = pricer._weights_usd, pricer._offsets_usd
    impact_ask = weights.sum() / (weights / (ref + offsets)).sum(axis=1)
    impact_bid = weights.sum() / (weights / (ref - offsets)).sum(axis=1)
    return (np.maximum(0.0, impact_bid - index) - np.maximum(0.0, index - impact_ask)) / index


def memo_free_rate(pricer: MarketPricer, start_ms: int, until_ms: int) -> Decimal:
    """``window_rate`` with fresh weights and directly computed samples, no memo."""
    return window_rate_of_samples(pricer, start_ms, until_ms,
                                  premiums=partial(direct_premiums, pricer))


# ---- random tapes -----------------------------------------------------------------------------
def _tape(perp_halves: list[int], basis_halves: list[int], noise: list[float],
          row_ms: int = SECOND_MS) -> PriceTape:
    """A tape (1 s rows unless told) around 60,000 whose perp sits on half ticks (ties for
    the tick rounding) plus noise (cycled; none if empty), and whose index is the perp less
    a basis."""
    n = len(perp_halves)
    times = T0 + row_ms * np.arange(n, dtype=np.int64)
    wiggle = [noise[i % len(noise)] if noise else 0.0 for i in range(n)]
    perp = np.array([60_000 + 0.05 * h + e for h, e in zip(perp_halves, wiggle, strict=True)])
    index = perp - 0.05 * np.array([basis_halves[i % len(basis_halves)] for i in range(n)],
                                   dtype=np.float64)
    return PriceTape("BTCUSD", times, index, perp)


@cache
def _binance() -> Profile:
    return profile("binance_coinm")


def _pricer(tape: PriceTape) -> MarketPricer:
    prof = _binance()
    return MarketPricer(prof, prof.instrument(BTC), tape)


halves = st.lists(st.integers(-400, 400), min_size=40, max_size=120)
bases = st.lists(st.integers(-200, 200), min_size=1, max_size=40)
noises = st.lists(st.sampled_from([0.0, 0.0, 1e-9, -1e-9, 0.013, -0.021, 0.5]), max_size=120)


@given(perp=halves, basis=bases, noise=noises, at_ms=st.integers(0, 200_000),
       rate=st.decimals("-0.003", "0.003", places=6),
       last_ticks=st.one_of(st.none(), st.integers(-300, 300)),
       shift=st.one_of(st.none(), st.decimals("-5", "5", places=2)),
       row_ms=st.sampled_from([SECOND_MS, SECOND_MS, 700, 60 * SECOND_MS]))
@settings(max_examples=examples(300), deadline=None)
def test_the_mark_equals_the_exact_median(perp: list[int], basis: list[int], noise: list[float],
                                          at_ms: int, rate: Decimal, last_ticks: int | None,
                                          shift: Decimal | None, row_ms: int) -> None:
    """Whether P2's exact basis is skipped (clearly not the median) or computed, memoised or
    not, the mark is the one the full exact computation gives — ties at half ticks included."""
    tape = _tape(perp, basis, noise, row_ms)  # 1-minute rows: samples share rows
    pricer = _pricer(tape)
    t = T0 + at_ms * row_ms // SECOND_MS
    last = None if last_ticks is None else Decimal(60_000) + Decimal(last_ticks) / 10
    expected = direct_mark(pricer, t, rate, last, shift)
    assert pricer.mark_at(t, rate, last, basis_shift_usd=shift) == expected
    pricer._basis_average(t)  # now memoised: the exact path again
    assert pricer.mark_at(t, rate, last, basis_shift_usd=shift) == expected


@given(perp=halves, noise=noises)
@settings(max_examples=examples(100), deadline=None)
def test_the_one_level_walk_and_the_strided_grid_give_the_general_walks_floats(
        perp: list[int], noise: list[float]) -> None:
    tape = _tape(perp, [3], noise)
    pricer = _pricer(tape)
    assert pricer._weights_usd.shape[1] == 1  # the fast path is the one under test
    grid = T0 + 5 * SECOND_MS * np.arange(len(perp) // 5, dtype=np.int64)
    rows = tape.grid_rows(int(grid[0]), 5 * SECOND_MS, len(grid))
    assert isinstance(rows, slice)
    fast = pricer._premiums_of(tape.perp[rows], tape.index[rows])
    direct = direct_premiums(pricer, grid)
    assert fast.tobytes() == direct.tobytes()  # bit for bit, signs of zero included
    assert pricer.premiums(grid).tobytes() == direct.tobytes()


@given(gaps=st.lists(st.sampled_from([1000, 1000, 1000, 1000, 500, 3000]), min_size=1,
                     max_size=300),
       first=st.integers(-3_000, 400_000), step=st.sampled_from([500, 1000, 2000, 5000, 7000]),
       count=st.integers(1, 200))
@settings(max_examples=examples(200), deadline=None)
def test_grid_rows_are_the_searched_rows(gaps: list[int], first: int, step: int,
                                         count: int) -> None:
    times = np.concatenate(([0], np.cumsum(gaps))).astype(np.int64)
    tape = PriceTape("BTCUSD", times, np.full(len(times), 60_000.0),
                     np.full(len(times), 60_000.0))
    grid = first + step * np.arange(count, dtype=np.int64)
    expected = np.maximum(np.searchsorted(times, grid, side="right") - 1, 0)
    rows = tape.grid_rows(first, step, count)
    assert np.array_equal(np.arange(len(times))[rows], expected)


@given(start=st.integers(0, 6 * 8), length=st.integers(0, 8 * 3600 // 5 + 3))
@settings(max_examples=examples(60), deadline=None)
def test_window_rates_equal_the_direct_ones(start: int, length: int) -> None:
    """Memoised, on cached chunks and shared weights: the rate of any window (full or running,
    crossing chunk edges) is the one fresh weights over direct samples give, twice over."""
    pricer = _calm_pricer()
    window_start = int(pricer.tape.times_ms[0]) // HOUR_MS * HOUR_MS + start * HOUR_MS
    until = window_start + 5 * SECOND_MS * length + (start % 5) * 999
    expected = memo_free_rate(pricer, window_start, until)
    assert pricer.window_rate(window_start, until) == expected
    assert pricer.window_rate(window_start, until) == expected  # from the memo


@cache
def _calm_pricer() -> MarketPricer:
    return make_exchange(scenario="calm").pricer(BTC)


def test_a_price_set_by_control_renews_the_mark_and_the_predicted_rate() -> None:
    ex = make_exchange()
    ex.advance(8 * HOUR_MS + 10 * SECOND_MS)  # the new window's second premium sample
    pricer = ex.pricer(BTC)
    before_mark, before_rate = ex.mark_price(BTC), ex.predicted_funding_rate(BTC)
    ex.set_prices(BTC, "59000", "59600")  # at the same instant: that sample's premium moves
    window_start = ex.funding_schedules[BTC].previous_time(ex.now_ms + 1)
    rate = ex.predicted_funding_rate(BTC)
    assert rate == memo_free_rate(pricer, window_start, ex.now_ms) != before_rate
    mark = ex.mark_price(BTC)
    assert mark == direct_mark(pricer, ex.now_ms, ex.mark_funding_rate(BTC),
                               ex.last_price(BTC)) != before_mark
    ex.advance(20 * SECOND_MS)  # the basis window moves on: 20 of its 30 samples at 59,600
    assert ex.mark_price(BTC) == direct_mark(pricer, ex.now_ms, ex.mark_funding_rate(BTC),
                                             ex.last_price(BTC)) != mark
    assert ex.predicted_funding_rate(BTC) == memo_free_rate(pricer, window_start, ex.now_ms)


def test_a_settled_funding_rate_renews_the_mark() -> None:
    """The mark's P1 uses the last settled rate: after a settlement the memo does not serve
    the mark of the old rate (between funding times P1 depends on it)."""
    ex = make_exchange(scenario="calm")
    trader = ex.create_account({"BTC": "1"}).account_id
    trading.place_order(ex, trader, BTC, "BUY", "MARKET", 10)
    pricer = ex.pricer(BTC)
    settled_before = ex.mark_funding_rate(BTC)
    next_funding = ex.funding_schedules[BTC].next_time(ex.now_ms)
    ex.advance_until(next_funding + 90 * SECOND_MS)
    assert ex.mark_funding_rate(BTC) != settled_before
    for _ in range(3):
        assert ex.mark_price(BTC) == direct_mark(pricer, ex.now_ms, ex.mark_funding_rate(BTC),
                                                 ex.last_price(BTC))
        ex.advance(37 * SECOND_MS)


@given(qty=st.lists(st.integers(-10**9, 10**9).filter(bool), min_size=1, max_size=8),
       rate=st.decimals("-0.9", "0.9", places=8).filter(lambda r: r != 0),
       mark=st.decimals("0.5", "1000000", places=2).filter(lambda m: m > 0),
       rule=st.sampled_from(["half_even", "half_up", "down", "up", "floor", "ceiling"]),
       cs=st.sampled_from([1, 10, 100]))
@settings(max_examples=examples(200), deadline=None)
def test_the_scalar_payment_pass_equals_the_array_pass(qty: list[int], rate: Decimal,
                                                       mark: Decimal, rule: str,
                                                       cs: int) -> None:
    step = Decimal("0.00000001")
    few = payment_units(np.array(qty, dtype=np.int64), mark, cs, rate, step, rule)  # type: ignore[arg-type]
    many = payment_units(np.array(qty * 9, dtype=np.int64), mark, cs, rate, step, rule)  # type: ignore[arg-type]
    assert few.tolist() == many.tolist()[:len(qty)]


def test_payments_on_a_rounding_boundary_take_the_exact_path_in_the_scalar_pass() -> None:
    qty = np.arange(1, 9, dtype=np.int64)  # 20 satoshis a contract, exactly
    for rule in ("floor", "ceiling", "up", "down", "half_even", "half_up"):
        units = payment_units(qty, Decimal(50_000), 100, Decimal("0.0001"),
                              Decimal("0.00000001"), rule)
        assert units.tolist() == (-20 * qty).tolist()
    halves = payment_units(np.array([1, 3]), Decimal(50_000), 100, Decimal("0.000001"),
                           Decimal("0.00000001"), "half_up")  # 0.2 and 0.6 sat: not ties
    assert halves.tolist() == [0, -1]


@given(values=st.lists(st.one_of(st.integers(599_000, 601_000).map(lambda k: k * 0.1),
                                 st.integers(1_198_000, 1_202_000).map(lambda k: k * 0.05),
                                 st.floats(59_000, 61_000)), min_size=1, max_size=50))
@settings(max_examples=examples(200), deadline=None)
def test_a_bars_extremes_are_those_of_every_converted_price(values: list[float]) -> None:
    array = np.array(values)
    for convert in (lambda x: decimal_price(x).quantize(Decimal("0.1")), decimal_price,
                    lambda x: Decimal(repr(float(x))).quantize(Decimal("0.00000001"))):
        every = [convert(x) for x in array]
        few = [convert(x) for x in market_data._extremes(array)]
        assert (few[0], max(few), min(few), few[-1]) == (every[0], max(every), min(every),
                                                         every[-1])
        assert [str(x) for x in (max(few), min(few))] == [str(max(every)), str(min(every))]


@given(lo_ticks=st.integers(-3_000, 3_000), hi_ticks=st.integers(-3_000, 3_000),
       horizon_h=st.integers(1, 30), start_s=st.integers(0, 86_400))
@settings(max_examples=examples(60), deadline=None)
def test_the_scans_whole_range_bound_never_hides_a_hit(lo_ticks: int, hi_ticks: int,
                                                       horizon_h: int, start_s: int) -> None:
    """The watcher's scan finds the first instant the exhaustive scan (every window's marks
    computed) finds: the bounds only skip stretches that cannot reach a level."""
    ex = _calm_exchange()
    pricer = ex.pricer(BTC)
    now = int(pricer.tape.times_ms[0]) + start_s * SECOND_MS
    mid = float(pricer.tape.perp[pricer.tape.row_at(now)])
    levels = watch.Levels()
    levels.add_mark(Decimal(repr(mid - 10 * abs(lo_ticks))), fires_below=True)
    levels.add_mark(Decimal(repr(mid + 10 * abs(hi_ticks))), fires_below=False)
    end = now + horizon_h * HOUR_MS
    found = watch._scan(ex, BTC, levels, now, end)
    with mock.patch.object(watch, "_may_reach", return_value=True):
        exhaustive = watch._scan(ex, BTC, levels, now, end)
    assert found == exhaustive


@cache
def _calm_exchange() -> Exchange:
    return make_exchange(scenario="calm")


@given(gaps=st.lists(st.sampled_from([1000, 1000, 1000, 1000, 500, 3000]), min_size=1,
                     max_size=300),
       queries=st.lists(st.integers(-5_000, 400_000), min_size=1, max_size=50))
@settings(max_examples=examples(200), deadline=None)
def test_rows_through_and_row_at_are_the_search(gaps: list[int], queries: list[int]) -> None:
    """The regular-grid guess for one instant answers what the search answers, on regular
    and irregular tapes, before the first row and after the last."""
    times = np.concatenate(([0], np.cumsum(gaps))).astype(np.int64)
    tape = PriceTape("BTCUSD", times, np.full(len(times), 60_000.0),
                     np.full(len(times), 60_000.0))
    for t in queries:
        through = int(np.searchsorted(times, t, side="right"))
        assert tape.rows_through(t) == through
        assert tape.row_at(t) == max(0, through - 1)


@given(perps=st.lists(st.one_of(st.floats(100, 200_000), st.integers(1, 2_000_000).map(
    lambda k: k * 0.1), st.integers(1, 4_000_000).map(lambda k: k * 0.05),
    st.floats(1e6, 1e9), st.integers(10**10, 10**11).map(lambda k: k * 0.005)), min_size=1,
    max_size=40), tick=st.sampled_from(["0.1", "0.5", "0.01", "1"]))
@settings(max_examples=examples(300), deadline=None)
def test_the_reference_sum_is_the_sum_of_exactly_rounded_references(perps: list[float],
                                                                    tick: str) -> None:
    """The basis average's reference part — one integer sum of float tick counts away from
    half ticks, Decimal rounding near them — is the sum of every perp rounded in Decimal."""
    n = len(perps)
    tape = PriceTape("BTCUSD", T0 + SECOND_MS * np.arange(n, dtype=np.int64),
                     np.full(n, 60_000.0), np.array(perps))
    prof = _binance()
    inst = prof.instrument(BTC).model_copy(update={"tick_size": Decimal(tick)})
    pricer = MarketPricer(prof, inst, tape)
    expected = sum((quantize(Decimal(repr(p)), Decimal(tick)) for p in perps), Decimal(0))
    assert pricer._reference_sum(np.arange(n)) == expected
