"""The level index (sim/level_index.py) and its float bounds (sim/fast_levels.py).

The index only decides where the engine looks; the exact check decides what happens. So the
tests hold it to that: its float levels bound the exact prices on the safe side, incremental
upkeep equals a rebuild from scratch, and whole runs — crowds of accounts through crashes,
squeezes and hand-set prices on every profile — give a journal byte-identical to a brute-force
engine that solves every position exactly at every re-plan and checks every account at every
instant (the design the index replaced).
"""

from __future__ import annotations

import math
import random
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim import funding, liquidation, trading, watch
from perpsim.sim.errors import PerpsimError
from perpsim.sim.exchange import Exchange
from perpsim.sim.fast_levels import Solver
from perpsim.sim.level_index import LevelIndex, SortedLevels
from perpsim.sim.market import lowest_perp_price_usd
from perpsim.sim.money import quantize
from perpsim.sim.profile import load_profile
from perpsim.sim.risk import liquidation_prices, position_risk
from perpsim.sim.scenario import load_scenario, manual_scenario

from engine_helpers import T0, drive, profile, profile_with

PROFILES = ["binance_coinm", "bybit_inverse", "bitmex_xbtusd"]


# ---- the sorted index --------------------------------------------------------------------------
@pytest.mark.parametrize("rebuild_at", [2, 512])
def test_sorted_levels_answer_like_a_plain_dict(monkeypatch: pytest.MonkeyPatch,
                                                rebuild_at: int) -> None:
    monkeypatch.setattr("perpsim.sim.level_index._REBUILD_AT", rebuild_at)
    rng = random.Random(rebuild_at)
    index, truth = SortedLevels(), {}
    for step in range(3000):
        o = rng.randrange(200)
        if rng.random() < 0.25:
            index.drop(o)
            truth.pop(o, None)
        else:
            level = rng.choice([rng.uniform(0, 100), float(rng.randrange(10)), math.inf,
                                -math.inf])
            index.set(o, level)
            truth[o] = level
        if step % 7 == 0:
            lo, hi = sorted((rng.uniform(-10, 110), rng.uniform(-10, 110)))
            assert sorted(index.between(lo, hi)) == sorted(
                k for k, v in truth.items() if lo <= v <= hi)
            assert index.top() == max(truth.values(), default=-math.inf)
            assert index.bottom() == min(truth.values(), default=math.inf)


# ---- float bounds against the exact prices ----------------------------------------------------
def _exchange_with(prof: str, qty: int, leverage: int, mode: str, extra: str) -> tuple[
        Exchange, str, str]:
    p = profile(prof)
    inst = p.instruments[0]
    ex = Exchange(p, manual_scenario(T0, {inst.pair: 60_000.0}), seed=1, start_ms=T0)
    aid = ex.create_account({inst.margin_asset: "5"}).account_id
    if mode == "isolated":
        ex.set_margin_mode(aid, inst.symbol, "isolated")
    ex.set_leverage(aid, inst.symbol, leverage)
    trading.place_order(ex, aid, inst.symbol, "BUY" if qty > 0 else "SELL", "MARKET", abs(qty))
    if mode == "isolated" and Decimal(extra) > 0:
        trading.adjust_isolated_margin(ex, aid, inst.symbol, extra, add=True)
    return ex, aid, inst.symbol


@settings(max_examples=examples(120), deadline=None)
@given(prof=st.sampled_from(PROFILES), side=st.sampled_from([1, -1]),
       size=st.integers(1, 4000), leverage=st.sampled_from([1, 2, 5, 10, 20, 50, 100]),
       mode=st.sampled_from(["cross", "isolated"]),
       extra=st.sampled_from(["0", "0.001", "0.3"]),
       rate=st.sampled_from(["0", "0.0001", "-0.0003", "0.00375"]))
def test_float_levels_bound_the_exact_prices_on_the_safe_side(
        prof: str, side: int, size: int, leverage: int, mode: str, extra: str,
        rate: str) -> None:
    p = profile(prof)
    inst = p.instruments[0]
    scale = size * (100 if inst.contract_size_usd == 1 else 1)
    try:
        ex, aid, symbol = _exchange_with(prof, side * scale, leverage, mode, extra)
    except PerpsimError:
        return  # the venue refused the set-up (leverage cap, margin): nothing to bound
    pos = ex.position(aid, symbol)
    if not pos.is_open:
        return
    ex.states[symbol].last_funding_rate = Decimal(rate)
    ex.states[symbol].next_funding_rate = Decimal(rate)
    solver = Solver.of(p, inst)
    margin = float(ex.isolated_wallet(aid, symbol) if mode == "isolated"
                   else ex.wallet_balance(aid, inst.margin_asset))
    assert pos.entry_price_usd is not None
    args = (pos.qty_contracts, float(pos.entry_price_usd), margin, float(rate))
    call_scale = 1 / p.liquidation.margin_call_ratio
    cross = mode == "cross"
    for bound, scale_ in ((solver.liquidation_level(*args, cross=cross), Decimal(1)),
                          (solver.call_level(*args, cross=cross), call_scale)):
        exact, _ = liquidation_prices(ex, aid, pos, scale_)
        if bound is None:
            continue  # too close to call: the index uses the exact price
        if exact is None:
            assert side < 0  # only a short can be out of reach; any bound is then safe
            continue
        exact_f = float(exact)
        tick = float(inst.tick_size)
        if side > 0:
            assert bound >= exact_f * (1 - 1e-15)
            assert bound <= exact_f * (1 + 1e-9) + 1.01 * tick or math.isinf(exact_f)
        else:
            assert bound <= exact_f * (1 + 1e-15)
            assert bound >= exact_f * (1 - 1e-9) - 1.01 * tick or exact_f > 1e12
    boundary = solver.ratio_boundary(*args, cross=cross)
    if boundary is None:
        return
    lo, hi = boundary
    # Marks on either side of the boundary: the exact margin ratio agrees with the bounds.
    threshold = p.liquidation.margin_call_ratio
    for factor in (0.5, 0.9, 0.99, 0.999, 1.001, 1.01, 1.1, 2.0):
        for edge in (lo, hi):
            if not math.isfinite(edge) or edge <= 0:
                continue
            mark = quantize(Decimal(edge * factor), inst.tick_size)
            if mark < lowest_perp_price_usd(inst):
                continue  # the synthetic book cannot quote there: refused at the edge
            ex.set_prices(symbol, mark)
            if not ex.position(aid, symbol).is_open:
                return  # liquidated on the way: the position is gone
            ratio = position_risk(ex, aid, symbol).margin_ratio
            m = float(ex.mark_price(symbol))
            past_hi, before_lo = (m <= hi, m < lo) if side > 0 else (m >= lo, m > hi)
            if ratio >= threshold:
                assert past_hi, (ratio, m, boundary)
            elif not before_lo:
                continue  # inside the band: either answer is allowed
            else:
                assert ratio < threshold


# ---- incremental upkeep equals a rebuild ---------------------------------------------------------
def _levels_of(index: LevelIndex) -> dict[str, tuple[dict[int, float], ...]]:
    return {s: tuple(i.as_dict() for i in levels.indexes) for s, levels in index.symbols.items()}


@pytest.mark.parametrize("prof", PROFILES)
def test_incremental_index_equals_a_fresh_one_through_a_crowded_crash(prof: str) -> None:
    ex = _crowd(prof, "crash", 60, seed=3)
    end = ex.scenario.end_ms
    assert end is not None
    while ex.now_ms < end:
        ex.advance(min(3 * 3_600_000, end - ex.now_ms))
        ex.watcher.index.sync()
        fresh = LevelIndex(ex)
        fresh.sync()
        assert _levels_of(ex.watcher.index) == _levels_of(fresh)
        assert ex.watcher.index.volatile == fresh.volatile


# ---- whole runs: byte-identical to the brute-force engine ----------------------------------------
def _brute_collect(ex: Exchange, symbol: str) -> watch.Levels:
    """``collect_levels`` as it was before the index: every position solved exactly."""
    levels = watch.Levels()
    call_scale = 1 / ex.profile.liquidation.margin_call_ratio
    for account in ex.accounts.values():
        pos = account.positions.get(symbol)
        if pos is None or not pos.is_open:
            continue
        liq, _ = liquidation_prices(ex, account.account_id, pos)
        if liq is not None:
            levels.add_mark(liq, fires_below=pos.side > 0)
        if not pos.margin_call_sent:
            call, _ = liquidation_prices(ex, account.account_id, pos, call_scale)
            if call is not None:
                levels.add_mark(call, fires_below=pos.side > 0)
    watch.add_order_levels(ex, symbol, levels)
    return levels


def _crowd(prof: str, scenario: str, n: int, seed: int, *, no_fund: bool = False) -> Exchange:
    p = profile(prof)
    if no_fund:
        p = profile_with(prof, insurance_fund_start={c: Decimal(0)
                                                     for c in p.insurance_fund_start})
    inst = p.instruments[0]
    if scenario == "manual":
        scen = manual_scenario(T0, {inst.pair: 60_000.0}, seed=seed)
        ex = Exchange(p, scen, seed=seed, start_ms=T0)
    else:
        ex = Exchange(p, load_scenario(scenario, seed=seed), seed=seed)
    rng = random.Random(seed)
    sym, coin, cs = inst.symbol, inst.margin_asset, inst.contract_size_usd
    other = [i.symbol for i in p.instruments[1:] if i.margin_asset == coin and i.pair == inst.pair]
    for _ in range(n):
        aid = ex.create_account({coin: rng.choice(["0.05", "0.2", "1"])}).account_id
        mode = rng.choice(["cross", "isolated", "isolated"])
        try:
            if mode == "isolated":
                ex.set_margin_mode(aid, sym, "isolated")
            ex.set_leverage(aid, sym, rng.choice([1, 2, 5, 10, 20, 50, 100]))
            mark = ex.mark_price(sym)
            lev = ex.position(aid, sym).leverage
            qty = max(1, int(ex.wallet_balance(aid, coin) * lev * mark / cs
                             * Decimal(str(round(rng.uniform(0.2, 0.9), 3)))))
            trading.place_order(ex, aid, sym, rng.choice(["BUY", "SELL"]), "MARKET", qty)
            if rng.random() < 0.3:
                off = Decimal(str(round(rng.uniform(-0.04, 0.04), 4)))
                trading.place_order(ex, aid, sym, rng.choice(["BUY", "SELL"]), "LIMIT",
                                    max(1, qty // 3), quantize(mark * (1 + off), inst.tick_size))
            if other and mode == "cross" and rng.random() < 0.3:
                trading.place_order(ex, aid, other[0], rng.choice(["BUY", "SELL"]), "MARKET",
                                    max(1, qty // 2))
        except PerpsimError:
            pass
    return ex


def _brute_check_all(ex: Exchange) -> None:
    for account in list(ex.accounts.values()):
        liquidation.check_account(ex, account)


@pytest.mark.parametrize(("prof", "scenario", "no_fund"), [
    ("binance_coinm", "crash", False), ("binance_coinm", "manual", True),
    ("bybit_inverse", "squeeze", False), ("bybit_inverse", "manual", True),
    ("bitmex_xbtusd", "crash", False), ("bitmex_xbtusd", "manual", True)])
def test_runs_match_the_brute_force_engine_byte_for_byte(
        monkeypatch: pytest.MonkeyPatch, prof: str, scenario: str, no_fund: bool) -> None:
    fast = _crowd(prof, scenario, 50, seed=5, no_fund=no_fund)
    drive(fast, scenario, 5, moves=40, biggest_fall=-0.03)
    with monkeypatch.context() as m:
        m.setattr(watch, "collect_levels", _brute_collect)
        m.setattr(liquidation, "check_all", _brute_check_all)
        slow = _crowd(prof, scenario, 50, seed=5, no_fund=no_fund)
        drive(slow, scenario, 5, moves=40, biggest_fall=-0.03)
    kinds = {e.type for e in fast.journal}
    assert "liquidation.takeover" in kinds
    assert "margin.call" in kinds
    assert fast.journal.digest() == slow.journal.digest()
    liquidated = {e.payload["account_id"] for e in fast.journal
                  if e.type == "liquidation.triggered"}
    assert liquidated == {e.payload["account_id"] for e in slow.journal
                          if e.type == "liquidation.triggered"}
    # Survivors: no open position is past its exact liquidation price at the last mark.
    for account in fast.accounts.values():
        for pos in account.open_positions():
            assert not liquidation._reached(fast, account, pos)


# ---- funding on a window of the tape -----------------------------------------------------------
def test_window_rate_equals_the_whole_tape_rate() -> None:
    ex = Exchange(load_profile("binance_coinm"), load_scenario("funding_flip", seed=2), seed=0)
    pricer = ex.pricers["BTCUSD_PERP"]
    rng = np.random.default_rng(0)
    start, end = ex.scenario.start_ms, ex.scenario.end_ms
    assert end is not None
    for _ in range(40):
        a = int(rng.integers(start - 3_600_000, end))
        b = a + int(rng.integers(0, 10 * 3_600_000))
        assert funding.window_rate(pricer, a, b) == pricer.window_rate(a, b)
