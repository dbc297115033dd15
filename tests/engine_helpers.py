"""Shared builders and checks for the engine tests (tests/test_engine_*.py).

Everything starts from a known instant, 2024-01-01T00:00Z (``T0``), on the manual scenario
(BTCUSD 60,000 and ETHUSD 3,000, index = perp) unless a test asks for another scenario. With the
perp equal to the index and no funding settled yet, the Binance/Bybit mark (median of P1, P2 and
the last price) and the BitMEX fair price are exactly the index, so the prices a test sets are
the marks the engine judges by, and the numbers below can be checked by hand.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from functools import cache
from typing import Any

import numpy as np
import pytest

from perpsim.sim.accounts import DEFAULT_LEVERAGE
from perpsim.sim.exchange import Exchange
from perpsim.sim.journal import Event, expand
from perpsim.sim.market import MARK_STEP, MarketPricer, _template
from perpsim.sim.money import quantize
from perpsim.sim.profile import Profile, load_profile
from perpsim.sim.scenario import load_scenario, manual_scenario

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

BTC = "BTCUSD_PERP"  # binance_coinm
ETH = "ETHUSD_PERP"
BYBIT_BTC = "BTCUSD"  # bybit_inverse
XBT = "XBTUSD"  # bitmex_xbtusd
SATOSHI = Decimal("0.00000001")

PROTECTED_PREFIXES = ("wallet:", "isolated:", "insurance:", "fees:")


@cache
def profile(name: str = "binance_coinm") -> Profile:
    """A bundled profile (immutable, so one copy is shared)."""
    return load_profile(name)


# The manual scenario prices BTCUSD and ETHUSD; BitMEX's XBTUSD has a pair of its own, so its
# tests start a manual scenario pricing that pair at 60,000 too.
XBT_PRICES = {profile("bitmex_xbtusd").instrument(XBT).pair: 60_000.0}


def profile_with(name: str = "binance_coinm", **update: Any) -> Profile:
    """A copy of a bundled profile with top-level fields replaced (e.g. insurance_fund_start)."""
    return profile(name).model_copy(update=update)


def no_insurance(name: str = "binance_coinm") -> Profile:
    """The profile with an empty insurance fund in every coin (ADL tests)."""
    coins = profile(name).insurance_fund_start
    return profile_with(name, insurance_fund_start={c: Decimal(0) for c in coins})


def make_exchange(prof: str | Profile = "binance_coinm", *, scenario: str = "manual",
                  seed: int = 0, scenario_seed: int = 0, start_ms: int | None = T0,
                  manual_prices: dict[str, float] | None = None) -> Exchange:
    """An Exchange on ``scenario`` (manual by default, starting at ``start_ms``: T0); a named
    scenario starts where its data does.

    ``manual_prices`` gives the manual scenario's pairs and start prices (default BTCUSD 60,000
    and ETHUSD 3,000); the BitMEX tests pass ``{"XBTUSD": 60000.0}``.
    """
    p = profile(prof) if isinstance(prof, str) else prof
    if scenario == "manual":
        if manual_prices is None:
            scen = load_scenario("manual", seed=scenario_seed, start_ms=start_ms)
        else:
            scen = manual_scenario(start_ms, manual_prices, seed=scenario_seed)
        return Exchange(p, scen, seed=seed, start_ms=start_ms)
    scen = load_scenario(scenario, seed=scenario_seed)
    return Exchange(p, scen, seed=seed)


def fund(ex: Exchange, amount: str | Decimal = "1", coin: str = "BTC", *, label: str = "",
         leverage: int | None = None, mode: str | None = None,
         symbol: str | None = None) -> str:
    """A new account holding ``amount`` of ``coin``; optionally set leverage and margin mode."""
    account_id = ex.create_account({coin: amount}, label=label).account_id
    sym = symbol or _default_symbol(ex)
    if mode is not None and mode != ex.position(account_id, sym).margin_mode:
        ex.set_margin_mode(account_id, sym, mode)
    if leverage is not None:
        ex.set_leverage(account_id, sym, leverage)
    return account_id


def _default_symbol(ex: Exchange) -> str:
    return ex.profile.instruments[0].symbol


def types(events: Iterable[Event]) -> list[str]:
    """The event types, in order (a funding settlement's per-account payments included)."""
    return [e.type for e in expand(events)]


def of_type(events: Iterable[Event], *wanted: str) -> list[Event]:
    """The events whose type is one of ``wanted``, in order (a funding settlement's
    per-account ``funding.payment`` events included: see ``sim.journal.expand``)."""
    return [e for e in expand(events) if e.type in wanted]


def first_index(events: list[Event], event_type: str) -> int:
    """Position of the first event of a type (ValueError if absent)."""
    return types(events).index(event_type)


@dataclass(frozen=True)
class Snapshot:
    """Everything a rejected call must leave untouched."""

    now_ms: int
    journal_len: int
    digest: str
    postings: int
    balances: dict[str, Decimal]
    positions: dict[tuple[str, str], tuple[int, Decimal | None, int, str]]
    open_orders: dict[int, tuple[str, int]]
    algo_orders: dict[int, str]


def snapshot(ex: Exchange) -> Snapshot:
    """The observable state of the venue now."""
    return Snapshot(
        now_ms=ex.now_ms,
        journal_len=len(ex.journal),
        digest=ex.journal.digest(),
        postings=len(ex.ledger.postings),
        balances=ex.ledger.balances(),
        # A flat record with default settings is the same as none (the engine creates them
        # lazily on first look-up).
        positions={(a.account_id, s): (p.qty_contracts, p.entry_price_usd, p.leverage,
                                       p.margin_mode)
                   for a in ex.accounts.values() for s, p in a.positions.items()
                   if p.is_open or (p.leverage, p.margin_mode) != (DEFAULT_LEVERAGE, "cross")},
        open_orders={o.order_id: (o.status, o.filled_contracts) for o in ex.orders.values()},
        algo_orders={o.algo_id: o.status for o in ex.algo_orders.values()},
    )


def assert_rejected(ex: Exchange, error: type[Exception], call: Callable[..., object],
                    *args: object, match: str | None = None, **kwargs: object) -> None:
    """``call(*args, **kwargs)`` raises ``error`` and leaves the venue exactly as it was."""
    before = snapshot(ex)
    with pytest.raises(error, match=match):
        call(*args, **kwargs)
    after = snapshot(ex)
    assert after == before


def protected_balances(ex: Exchange) -> dict[str, Decimal]:
    """Balances of the accounts that hold someone's money (never negative)."""
    return {n: b for n, b in ex.ledger.balances().items() if n.startswith(PROTECTED_PREFIXES)}


def check_invariants(ex: Exchange) -> None:
    """Ledger conserved (with replay), no protected balance negative, journal well ordered."""
    ex.ledger.check_conserved(replay=True)
    negative = {n: b for n, b in protected_balances(ex).items() if b < 0}
    assert not negative, negative
    events = list(ex.journal)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(a.time_ms <= b.time_ms for a, b in itertools.pairwise(events))
    assert all(e.time_ms <= ex.now_ms for e in events)


def q(amount: Fraction | Decimal, rule: str = "half_even") -> Decimal:
    """An exact amount rounded to the satoshi (half-even, floor or up), as the ledger posts."""
    units = Fraction(amount) / Fraction(SATOSHI)
    if rule == "half_even":
        n = round(units)  # Fraction rounds half to even
    elif rule == "floor":
        n = math.floor(units)
    elif rule == "up":
        n = math.ceil(units) if units > 0 else math.floor(units)
    else:
        raise ValueError(rule)
    return (Decimal(n) * SATOSHI).quantize(SATOSHI)


def fr(x: Decimal | int | str) -> Fraction:
    """An exact rational from a Decimal, int or decimal string."""
    return Fraction(Decimal(x) if isinstance(x, str) else x)


def binance_isolated_lp(qty: int, entry: Decimal, margin: Decimal, mmr: str, cum: str = "0",
                        cs: int = 100) -> Fraction:
    """Mechanics §5, Binance style, one isolated position: solve
    W + s·N·(1/EP − 1/LP) = N/LP·MMR − cum for LP (exact)."""
    n = abs(qty) * cs
    s = 1 if qty > 0 else -1
    # W + s·N/EP − s·N/LP = N/LP·MMR − cum  ⇒  N/LP·(MMR + s) = W + cum + s·N/EP
    return n * (fr(mmr) + s) / (fr(margin) + fr(cum) + s * Fraction(n) / fr(entry))


def bankruptcy(qty: int, entry: Decimal, margin: Decimal, cs: int = 100) -> Fraction:
    """Price where W + s·N·(1/EP − 1/BP) = 0 (exact)."""
    n = abs(qty) * cs
    s = 1 if qty > 0 else -1
    return 1 / (1 / fr(entry) + s * fr(margin) / n)


def tick_up(price: Fraction, tick: str = "0.1") -> Decimal:
    """The first price on the tick strictly above ``price``."""
    t = fr(tick)
    units = int(price // t) + 1
    return Decimal(units) * Decimal(tick)


def tick_down(price: Fraction, tick: str = "0.1") -> Decimal:
    """The last price on the tick strictly below ``price``."""
    t = fr(tick)
    units = -int((-price) // t) - 1
    return Decimal(units) * Decimal(tick)


def direct_mark(pricer: MarketPricer, t_ms: int, rate: Decimal, last: Decimal | None = None,
                shift: Decimal | None = None) -> Decimal:
    """The mark with P2's exact basis average always computed, every sample on its own
    (money.quantize per sample): what the engine's memos and row shortcuts are checked against."""
    tape = pricer.tape
    index = tape.index_at(t_ms)
    interval = pricer.schedule.window_ms(t_ms)
    p1 = index * (1 + rate * (pricer.schedule.next_time(t_ms - 1) - t_ms) / interval)
    step = pricer.profile.mark.basis_sample_interval_ms
    n = pricer.profile.mark.basis_samples
    samples = t_ms // step * step - step * np.arange(n, dtype=np.int64)
    rows = np.maximum(np.searchsorted(tape.times_ms, samples, side="right") - 1, 0)
    total = sum((quantize(Decimal(repr(float(tape.perp[r]))), pricer.tick)
                 - Decimal(repr(float(tape.index[r]))) for r in rows.tolist()), Decimal(0))
    p2 = index + total / n + (shift or 0)
    last = quantize(tape.perp_at(t_ms), pricer.tick) if last is None else last
    return sorted((p1, p2, last))[1].quantize(MARK_STEP, rounding=ROUND_HALF_EVEN)


def drive(ex: Exchange, scenario: str, seed: int, *, moves: int, biggest_fall: float,
          hours: float | None = None) -> None:
    """Run ``ex`` through its market: on a manual scenario ``moves`` seeded price moves (at
    most ``biggest_fall`` down, 2.8 % up) a second, a minute or an hour apart, then 8 hours;
    on any other, its tape for ``hours`` (default: to its end)."""
    sym = ex.profile.instruments[0].symbol
    if scenario == "manual":
        rng = random.Random(seed)
        price = 60_000.0
        for _ in range(moves):
            price *= 1 + rng.uniform(biggest_fall, 0.028)
            ex.advance(rng.choice([1_000, 60_000, 3_600_000]))
            ex.set_prices(sym, Decimal(str(round(price, 1))))
        ex.advance(8 * 3_600_000)
    else:
        end = ex.scenario.end_ms
        assert end is not None
        ex.advance_until(end if hours is None else min(end, ex.now_ms + int(hours * 3_600_000)))


def window_rate_of_samples(pricer: MarketPricer, start_ms: int, until_ms: int,
                           premiums: Callable[[np.ndarray], np.ndarray] | None = None
                           ) -> Decimal:
    """A funding window's rate as computed before any shortcut or memo: every premium sample
    (``premiums``; default the pricer's general impact walk over searched rows), their
    (weighted) average with fresh weights, the template."""
    funding = pricer.profile.funding
    step = funding.premium_sample_interval_ms
    first = start_ms + step
    window, eight_hours = pricer.schedule.rate_scale(until_ms)
    scale = Fraction(window, eight_hours)
    if until_ms < first:
        return _template(0.0, funding.interest_rate, funding.clamp, pricer.inst.funding_cap,
                         scale)
    count = (until_ms // step * step - first) // step + 1
    premium = (premiums or pricer.premiums)(first + step * np.arange(count, dtype=np.int64))
    if funding.averaging == "weighted":
        weights = np.arange(1, len(premium) + 1, dtype=np.float64)
        average = float((premium * weights).sum() / weights.sum())
    else:
        average = float(premium.mean())
    return _template(average, funding.interest_rate, funding.clamp, pricer.inst.funding_cap,
                     scale)
