"""Benchmark: the event-skipping engine vs a per-row loop over the same price arrays.

Run: ``python -m benchmarks.engine_event_skipping [--days 30] [--resolution-ms 1000] [--json]``
(one scenario), or ``perpsim bench --only engine`` for the suite's figures (30 and 365 days at
1 s with the baseline, and the 1 s vs 100 ms ratio).

Both sides run the same scenario (calm, seeded), with the same positions open: a 1x
coin-collateralised short (the hedge), a 20x isolated long and a 5x cross short, so there are
funding settlements and liquidation levels to watch. Data generation is excluded from timing.

* ours — ``Exchange.advance_until(end)``: jumps from one interesting instant to the next.
* baseline — a plain Python loop that visits every row: computes the mark (same formula, in
  float, with a running basis window), checks every position's liquidation level, and calls
  the engine's own exact handler at funding times and whenever a level is reached. It is the
  design the event-skipping engine replaces, made as cheap as a per-row loop can be.

Both must end in the same state (same liquidations, same funding count); the ratio printed is
baseline time / engine time, measured in this one run.

Resolution: one path generated at 100 ms and the same path sampled every 10th row (1 s); the
engine runs both. Ten times the rows and (nearly) the same events: if cost grows with events,
not rows, the time ratio stays far below 10.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from dataclasses import replace
from decimal import Decimal

import numpy as np

from perpsim.benchmarks import sig
from perpsim.sim import trading
from perpsim.sim.exchange import Exchange
from perpsim.sim.profile import load_profile
from perpsim.sim.risk import liquidation_prices
from perpsim.sim.scenario import PricePath, Scenario, load_scenario

_BASELINE_CHUNK = 1_000_000


def _open_positions(ex: Exchange) -> None:
    """The hedge (1x short, full coin collateral) plus two leveraged positions."""
    symbol = "BTCUSD_PERP"
    mark = ex.mark_price(symbol)
    hedger = ex.create_account({"BTC": "1"}, label="hedger")
    ex.set_leverage(hedger.account_id, symbol, 1)
    ex.set_margin_mode(hedger.account_id, symbol, "isolated")
    trading.place_order(ex, hedger.account_id, symbol, "SELL", "MARKET",
                        int(Decimal("0.98") * mark / 100))
    longer = ex.create_account({"BTC": "1"}, label="20x long")
    ex.set_margin_mode(longer.account_id, symbol, "isolated")
    trading.place_order(ex, longer.account_id, symbol, "BUY", "MARKET", 2000)
    shorter = ex.create_account({"BTC": "1"}, label="5x cross short")
    ex.set_leverage(shorter.account_id, symbol, 5)
    trading.place_order(ex, shorter.account_id, symbol, "SELL", "MARKET", 2500)


def run_engine(scenario: Scenario) -> tuple[float, Exchange]:
    """Time the event-skipping engine over the whole scenario (wall seconds)."""
    wall_s, _, ex = run_engine_timed(scenario)
    return wall_s, ex


def run_engine_timed(scenario: Scenario) -> tuple[float, float, Exchange]:
    """The engine over the whole scenario: wall and CPU seconds (the CPU time of this process
    holds still on a machine busy with other work; the wall time does not)."""
    ex = Exchange(load_profile("binance_coinm"), scenario, seed=0)
    _open_positions(ex)
    assert scenario.end_ms is not None
    started, cpu_started = time.perf_counter(), time.process_time()
    ex.advance_until(scenario.end_ms)
    return time.perf_counter() - started, time.process_time() - cpu_started, ex


def run_baseline(scenario: Scenario) -> tuple[float, Exchange, int]:
    """Time a per-row loop over the same arrays (exact engine work only where it matters)."""
    ex = Exchange(load_profile("binance_coinm"), scenario, seed=0)
    _open_positions(ex)
    symbol = "BTCUSD_PERP"
    pricer = ex.pricers[symbol]
    tape = pricer.tape
    profile = ex.profile
    tick = float(ex.instruments[symbol].tick_size)
    interval = profile.funding.interval_ms
    sample_ms = profile.mark.basis_sample_interval_ms
    window: deque[float] = deque(maxlen=profile.mark.basis_samples)
    assert scenario.end_ms is not None
    visits = 0
    started = time.perf_counter()
    levels = _levels(ex, symbol)
    first = int(tape.times_ms[0])
    next_sample = first // sample_ms * sample_ms
    next_funding = profile.funding.next_funding_time_ms(ex.now_ms)
    n = len(tape.times_ms)
    for lo in range(1, n, _BASELINE_CHUNK):  # python lists a million rows at a time
        hi = min(n, lo + _BASELINE_CHUNK)
        rows = zip(tape.times_ms[lo:hi].tolist(), tape.index[lo:hi].tolist(),
                   tape.perp[lo:hi].tolist(), strict=True)
        for t, idx, px in rows:
            ref = round(px / tick) * tick
            while next_sample <= t:
                window.append(ref - idx)
                next_sample += sample_ms
            rate = float(ex.mark_funding_rate(symbol))
            p1 = idx * (1.0 + rate * (next_funding - t) / interval)
            p2 = idx + (sum(window) / len(window) if window else 0.0)
            mark = sorted((p1, p2, ref))[1]
            due = t >= next_funding
            reached = any(mark <= lvl if below else mark >= lvl for lvl, below in levels)
            if due or reached:
                # The exact work is the engine's own: move its clock here, handle the instant.
                ex.clock.advance_until(t)  # funding, if due, runs here through its process
                if reached:
                    ex.on_instant(t)
                visits += 1
                if due:
                    next_funding = profile.funding.next_funding_time_ms(t)
                levels = _levels(ex, symbol)
    ex.clock.advance_until(scenario.end_ms)
    return time.perf_counter() - started, ex, visits


def _levels(ex: Exchange, symbol: str) -> list[tuple[float, bool]]:
    out = []
    for account in ex.accounts.values():
        pos = account.positions.get(symbol)
        if pos is not None and pos.is_open:
            liq, _ = liquidation_prices(ex, account.account_id, pos)
            if liq is not None:
                out.append((float(liq), pos.side > 0))
    return out


def _summary(ex: Exchange) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in ex.journal:
        counts[event.type] = counts.get(event.type, 0) + 1
    return {k: counts.get(k, 0) for k in ("funding.settled", "liquidation.completed")}


def measure(days: float, resolution_ms: int = 1000, *, baseline: bool = True,
            scenario: str = "calm_30d", seed: int = 0) -> dict[str, object]:
    """Engine (and baseline) over ``days`` of ``scenario`` at ``resolution_ms``; the figures."""
    gen_started = time.perf_counter()
    scen = load_scenario(scenario, seed=seed, days=days, resolution_ms=resolution_ms)
    gen_s = time.perf_counter() - gen_started
    rows = int(sum(len(p.times_ms) for p in scen.paths.values()))
    engine_s, engine_cpu_s, ex = run_engine_timed(scen)
    result: dict[str, object] = {
        "scenario": scenario, "days": days, "resolution_ms": resolution_ms, "rows": rows,
        "generation_s": sig(gen_s), "engine_s": sig(engine_s),
        "engine_cpu_s": sig(engine_cpu_s),
        "rows_per_s": round(rows / engine_s), "engine_instants_from_levels": ex.watcher.hits,
        "engine_events": _summary(ex)}
    if baseline:
        base_s, base_ex, visits = run_baseline(scen)
        if _summary(base_ex) != _summary(ex):
            raise RuntimeError(f"baseline and engine disagree: {_summary(base_ex)} vs "
                               f"{_summary(ex)}")
        result.update(baseline_s=sig(base_s), baseline_visits=visits,
                      speedup=round(base_s / engine_s, 1))
    return result


def resolution_ratio(days: float, *, fine_ms: int = 100, every: int = 10,
                     scenario: str = "calm_30d", seed: int = 0) -> dict[str, object]:
    """The same path at ``fine_ms`` and sampled every ``every`` rows: engine time of each."""
    fine = load_scenario(scenario, seed=seed, days=days, resolution_ms=fine_ms)
    coarse = replace(fine, paths={pair: PricePath(p.times_ms[::every], p.index[::every],
                                                  p.perp[::every])
                                  for pair, p in fine.paths.items()})
    coarse_s, coarse_ex = run_engine(coarse)
    fine_s, fine_ex = run_engine(fine)
    rows_fine = int(sum(len(p.times_ms) for p in fine.paths.values()))
    rows_coarse = int(sum(len(p.times_ms) for p in coarse.paths.values()))
    return {
        "days": days, "coarse_resolution_ms": fine_ms * every, "fine_resolution_ms": fine_ms,
        "rows_coarse": rows_coarse, "rows_fine": rows_fine,
        "rows_ratio": round(rows_fine / rows_coarse, 2),
        "engine_s_coarse": sig(coarse_s), "engine_s_fine": sig(fine_s),
        "time_ratio": round(fine_s / coarse_s, 2),
        "events_coarse": len(coarse_ex.journal), "events_fine": len(fine_ex.journal)}


def run(quick: bool = False) -> dict[str, object]:
    """The suite's engine figures: 30 and 365 days at 1 s (with the per-row baseline) and the
    1 s vs 100 ms ratio; ``quick`` shrinks every span (CI smoke)."""
    short, long_, span = (0.25, 1.0, 0.25) if quick else (30.0, 365.0, 30.0)
    return {"short": measure(short), "long": measure(long_),
            "resolution": resolution_ratio(span), "target_long_engine_s": 2.0}


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run both, check they agree, print the figures (table or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--resolution-ms", type=int, default=1000)
    parser.add_argument("--scenario", default="calm_30d")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.days, args.resolution_ms, baseline=not args.no_baseline,
                     scenario=args.scenario)
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
