"""Benchmark: liquidation at scale — many accounts on one symbol through a crash.

Run: ``python -m perpsim.benchmarks.liquidation_scale [--accounts 100000] [--json]``

Set-up (not timed): ``--accounts`` accounts on BTCUSD_PERP (Binance profile), leverage 2x-100x,
half cross and half isolated, four in five long, each opening its position with a market order
through the engine; a 1-second path at 60,000 that falls 40 % over an hour from hour 1, then
holds (no funding time inside it). Timed:

* the calm hour — ``advance`` over 3,600 rows where no level is crossed (per row: what a mark
  update costs when nothing happens);
* one-row steps with no crossing — ``advance`` by one row at a time (a client stepping the
  clock: re-plan and scan, every position still watched);
* a visited instant with no crossing — ``on_instant`` run in the calm (every stage of an
  instant: triggers, funding, the liquidation check over all accounts, wake-ups);
* the crash — ``advance`` to the end: every liquidation processed (per liquidation; wall and
  CPU time, the CPU figure being the steadier one on a shared machine).

Checks: the ledger is conserved; no surviving position's liquidation level was reached at the
lowest mark of the run (the index is compared with a brute-force exact check on a sample, and
in tests/test_level_index.py on every account). ``crash_journal_digest`` and
``crash_postings_digest`` (SHA-256 of the crash's journal lines and postings) let two versions
of the engine be compared: a speed-up must leave both unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable
from decimal import Decimal

import numpy as np

from perpsim.benchmarks import sig
from perpsim.sim import trading
from perpsim.sim.errors import PerpsimError
from perpsim.sim.exchange import Exchange
from perpsim.sim.journal import expand
from perpsim.sim.liquidation import _reached
from perpsim.sim.profile import Profile, load_profile
from perpsim.sim.scenario import PricePath, Scenario

SYMBOL = "BTCUSD_PERP"
START_MS = 1_704_067_200_000  # 2024-01-01T00:00Z: the next funding time is 08:00
HOUR_MS = 3_600_000
LEVERAGES = (2, 3, 5, 10, 20, 25, 50, 75, 100)
GOAL_PER_LIQUIDATION_MS = 0.3  # issue 18: at 100,000 accounts


def crash_scenario(seed: int = 0, *, calm_h: float = 1.0, crash_h: float = 1.0,
                   after_h: float = 1.0, fall: float = 0.40) -> Scenario:
    """A 1-second path: flat-ish at 60,000, a fall of ``fall`` over ``crash_h``, then flat."""
    rng = np.random.default_rng(seed)
    rows = int((calm_h + crash_h + after_h) * 3600) + 1
    times = START_MS + 1000 * np.arange(rows, dtype=np.int64)
    hours = (times - START_MS) / HOUR_MS
    progress = np.clip((hours - calm_h) / crash_h, 0.0, 1.0)
    noise = np.cumsum(rng.normal(0.0, 2e-5, rows))
    noise -= np.linspace(0.0, noise[-1], rows)  # a bridge: the path ends where the trend does
    index = 60_000.0 * np.exp(np.log1p(-fall) * progress + noise)
    index = np.round(index, 2)
    perp = np.round(index * (1 + 2e-4 + rng.normal(0.0, 5e-5, rows)), 1)
    path = PricePath(times, index, perp)
    return Scenario("crash_1s", "synthetic", {"BTCUSD": path}, START_MS, int(times[-1]), seed,
                    "benchmark crash: -40 % in an hour at 1 s rows", "benchmark")


def _profile() -> Profile:
    """Binance with a deep insurance fund (ADL ranks every account: not what this measures)."""
    base = load_profile("binance_coinm")
    return base.model_copy(update={"insurance_fund_start": {"BTC": Decimal(100_000)}})


def populate(ex: Exchange, accounts: int, seed: int = 0,
             leverages: tuple[int, ...] = LEVERAGES) -> int:
    """Open ``accounts`` positions of varied leverage and side; the number opened."""
    rng = random.Random(seed)
    mark = ex.mark_price(SYMBOL)
    opened = 0
    for _ in range(accounts):
        aid = ex.create_account({"BTC": "0.01"}).account_id
        leverage = rng.choice(leverages)
        try:
            if rng.random() < 0.5:
                ex.set_margin_mode(aid, SYMBOL, "isolated")
            ex.set_leverage(aid, SYMBOL, leverage)
            side = "BUY" if rng.random() < 0.8 else "SELL"
            qty = max(1, int(Decimal("0.01") * leverage * mark / 100
                             * Decimal(str(round(rng.uniform(0.3, 0.9), 3)))))
            trading.place_order(ex, aid, SYMBOL, side, "MARKET", qty)
            opened += 1
        except PerpsimError:
            continue
    return opened


def _count(ex: Exchange, kind: str) -> int:
    return sum(1 for e in ex.journal if e.type == kind)


def run(accounts: int = 100_000, *, seed: int = 0, sample: int = 2_000,
        updates: int = 20) -> dict[str, object]:
    """Set up, time the three phases, check; the figures."""
    scenario = crash_scenario(seed)
    ex = Exchange(_profile(), scenario, seed=seed)
    started = time.perf_counter()
    opened = populate(ex, accounts, seed)
    setup_s = time.perf_counter() - started
    first_s = _timed(lambda: ex.advance(1000))  # the index is built here (all positions)
    steps = 100
    step_s = _timed(lambda: _repeat(steps, lambda: ex.advance(1000))) / steps
    instant_s = _timed(lambda: _repeat(updates, lambda: ex.on_instant(ex.now_ms))) / updates
    calm_rows = 3_600 - 1 - steps
    calm_s = _timed(lambda: ex.advance(calm_rows * 1000))
    before, postings_before = len(ex.journal), len(ex.ledger.postings)
    assert scenario.end_ms is not None
    cpu_started = time.process_time()  # CPU seconds too: the machine is shared
    crash_s = _timed(lambda: ex.advance_until(scenario.end_ms))
    crash_cpu_s = time.process_time() - cpu_started
    events = ex.journal.since(before)
    liquidations = sum(1 for e in events if e.type == "liquidation.triggered")
    calls = sum(1 for e in events if e.type == "margin.call")
    ex.ledger.check_conserved()
    missed = _check_survivors(ex, sample, seed)
    return {
        "accounts": accounts, "positions_opened": opened, "setup_s": sig(setup_s),
        "index_build_s": sig(first_s),
        "calm_rows": calm_rows, "calm_s": sig(calm_s),
        "per_row_no_crossing_us": sig(1e6 * calm_s / calm_rows),
        "step_one_row_no_crossing_ms": sig(1e3 * step_s),
        "visited_instant_no_crossing_ms": sig(1e3 * instant_s),
        "crash_rows": len(scenario.paths["BTCUSD"].times_ms) - 3_600,
        "crash_s": sig(crash_s), "liquidations": liquidations, "margin_calls": calls,
        "adl_fills": _count(ex, "adl.fill"),
        "per_liquidation_ms": sig(1e3 * crash_s / max(liquidations, 1)),
        "crash_cpu_s": sig(crash_cpu_s),
        "per_liquidation_cpu_ms": sig(1e3 * crash_cpu_s / max(liquidations, 1)),
        "instants_visited": ex.watcher.hits, "ledger_conserved": True,
        "survivors_checked": min(sample, opened), "survivors_past_their_level": missed,
        "goal_per_liquidation_ms": GOAL_PER_LIQUIDATION_MS,
        "crash_journal_digest": _digest(e.to_json() for e in expand(events)),
        "crash_postings": len(ex.ledger.postings) - postings_before,
        "crash_postings_digest": _digest(repr(p) for p in ex.ledger.postings[postings_before:]),
    }


def _digest(lines: Iterable[str]) -> str:
    sha = hashlib.sha256()
    for line in lines:
        sha.update(line.encode())
        sha.update(b"\n")
    return sha.hexdigest()


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _repeat(times: int, call: Callable[[], object]) -> None:
    for _ in range(times):
        call()


def _check_survivors(ex: Exchange, sample: int, seed: int) -> int:
    """Exact check of a sample of accounts at the end: no open position is past its level."""
    rng = random.Random(seed + 1)
    accounts = list(ex.accounts.values())
    missed = 0
    for account in rng.sample(accounts, min(sample, len(accounts))):
        pos = account.positions.get(SYMBOL)
        if pos is not None and pos.is_open and _reached(ex, account, pos):
            missed += 1
    return missed


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run and print the figures (table or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.accounts, seed=args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return result


if __name__ == "__main__":
    main()
