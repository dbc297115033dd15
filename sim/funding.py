"""Funding: the schedule (a simpy process), the rate that settles, and settlement via the ledger.

At each of the profile's funding times every open position on a perpetual pays or receives
N / mark · F (F > 0: longs pay shorts). Which rate settles:
* data mode — the scenario's recorded rate at that time, if it has one;
* ``window_just_ended`` (Binance, Bybit) — the premium average of the window ending now;
* ``previous_window`` (BitMEX, OKX) — the rate computed at the previous funding time.
A position opened after a funding time does not pay it: only positions open at the instant do.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from perpsim.sim import funding_rows
from perpsim.sim.funding_detail import FundingDetail
from perpsim.sim.funding_math import funding_payment_coin, payment_units
from perpsim.sim.ledger import Ledger, isolated_account, market_account, wallet_account
from perpsim.sim.market import MarketPricer
from perpsim.sim.money import quantize

if TYPE_CHECKING:
    from collections.abc import Generator

    import simpy

    from perpsim.sim.exchange import Exchange


def start(ex: Exchange) -> None:
    """Start the funding schedule on the exchange's clock (if it lists perpetuals)."""
    if any(i.is_perpetual and i.symbol in ex.pricers for i in ex.profile.instruments):
        ex.clock.process(_schedule(ex))


def _schedule(ex: Exchange) -> Generator[simpy.Event, Any, None]:
    while True:
        t = next_funding_time(ex, ex.now_ms)
        yield ex.clock.timeout_until(t)
        ex.on_instant(t)


def next_funding_time(ex: Exchange, now_ms: int) -> int:
    """The first funding time of any perpetual strictly after ``now_ms``."""
    return min((ex.funding_schedules[s].next_time(now_ms) for s, i in ex.instruments.items()
                if i.is_perpetual), default=ex.profile.funding.next_funding_time_ms(now_ms))


def is_funding_time(ex: Exchange, t_ms: int, symbol: str | None = None) -> bool:
    """True if ``t_ms`` is a funding time of ``symbol`` (default: of any perpetual)."""
    if symbol is not None:
        return ex.funding_schedules[symbol].is_funding_time(t_ms)
    return next_funding_time(ex, t_ms - 1) == t_ms


def settle_due(ex: Exchange, t_ms: int) -> None:
    """Settle every perpetual's funding at ``t_ms`` if it is a funding time (once only)."""
    # The start instant is not a funding time of this market: nothing was held before it, and
    # the schedule (``_schedule``) first fires strictly after the start.
    if t_ms <= ex.start_ms or not is_funding_time(ex, t_ms):
        return
    settled = False
    for symbol, inst in ex.instruments.items():
        state = ex.states[symbol]
        if (not inst.is_perpetual or symbol not in ex.pricers or state.last_funding_ms == t_ms
                or not is_funding_time(ex, t_ms, symbol)):
            continue
        settle(ex, symbol, t_ms)
        settled = True
    if settled:
        ex.watcher.replan()


def settlement_rate(ex: Exchange, symbol: str, t_ms: int) -> tuple[Decimal, str]:
    """The rate that settles at funding time ``t_ms`` and where it came from."""
    recorded = _recorded_rate(ex, symbol, t_ms)
    if recorded is not None:
        return recorded, "scenario"
    pricer = ex.pricers[symbol]
    if ex.profile.funding.settles == "window_just_ended":
        start = ex.funding_schedules[symbol].previous_time(t_ms)
        return window_rate(pricer, start, t_ms), "premium_window_just_ended"
    return upcoming_rate(ex, symbol, t_ms), "premium_previous_window"


def upcoming_rate(ex: Exchange, symbol: str, t_ms: int | None = None) -> Decimal:
    """Previous-window venues: the rate the funding time ``t_ms`` (default: the next one) pays,
    computed over the window that ended one interval before it — known a whole interval ahead."""
    known = ex.states[symbol].next_funding_rate
    if known is not None:
        return known
    schedule = ex.funding_schedules[symbol]
    t = schedule.next_time(ex.now_ms) if t_ms is None else t_ms
    end = schedule.previous_time(t)
    return window_rate(ex.pricers[symbol], schedule.previous_time(end), end)


def window_rate(pricer: MarketPricer, window_start_ms: int, until_ms: int) -> Decimal:
    """``pricer.window_rate``: the window's premium samples are read off the pricer's sample
    grid (``MarketPricer.premiums_on_grid``), computed once per chunk in one vectorised pass,
    instead of searching the tape at every settlement."""
    return pricer.window_rate(window_start_ms, until_ms)


def _recorded_rate(ex: Exchange, symbol: str, t_ms: int) -> Decimal | None:
    path = ex.scenario.paths.get(ex.instruments[symbol].pair)
    if path is None or not len(path.funding_times_ms):
        return None
    i = int(np.searchsorted(path.funding_times_ms, t_ms))
    if i < len(path.funding_times_ms) and int(path.funding_times_ms[i]) == t_ms:
        return Decimal(repr(float(path.funding_rates[i])))
    return None


def settle(ex: Exchange, symbol: str, t_ms: int) -> None:
    """Pay funding on ``symbol`` at ``t_ms`` to and from every open position (``pay``) and
    journal the settlement as ONE record whose detail holds every position's row."""
    state = ex.states[symbol]
    rate, source = settlement_rate(ex, symbol, t_ms)
    mark = ex.mark_price(symbol)
    detail = pay(ex, symbol, t_ms, rate, mark)
    step, units = detail.step, detail.units
    if len(units) <= 8:  # a handful of positions: Python ints beat four array calls
        each = units.tolist()
        received, paid = sum(u for u in each if u > 0), -sum(u for u in each if u < 0)
    else:
        received, paid = int(units[units > 0].sum()), -int(units[units < 0].sum())
    state.last_funding_rate = rate
    state.last_funding_ms = t_ms
    state.funding_history.append((t_ms, rate))
    if ex.profile.funding.settles == "previous_window":
        start = ex.funding_schedules[symbol].previous_time(t_ms)
        state.next_funding_rate = window_rate(ex.pricers[symbol], start, t_ms)
    ex.journal.append_detailed(t_ms, "funding.settled", detail, {
        "symbol": symbol, "rate": rate, "source": source, "mark": mark,
        "positions": len(detail),
        "paid": (Decimal(paid) * step).quantize(step),
        "received": (Decimal(received) * step).quantize(step), "coin": detail.coin,
        "payments_digest": detail.digest()})


def pay(ex: Exchange, symbol: str, t_ms: int, rate: Decimal, mark: Decimal) -> FundingDetail:
    """Pay N / mark · ``rate`` to or from every open position on ``symbol``; their rows.

    Crowd scale: the positions are columns gathered once (``funding_rows``), every payment is
    computed at once (``payment_units``), every holder that can pay in full (or receives)
    moves in ONE ledger posting of integer steps (``Ledger.post_units``), and the rows are a
    table of steps, not events. Holders that cannot pay in full (the insurance fund covers
    them), hedge-mode accounts (two legs on one wallet, paid one after the other) and holders
    the arrays cannot hold take the per-position path, in position order, as every position
    did before.
    """
    from perpsim.sim.trading import debit_from

    inst = ex.instruments[symbol]
    coin = inst.margin_asset
    step, rule = ex.profile.rounding.coin_step, ex.profile.rounding.coin_rule
    ledger, market = ex.ledger, market_account(coin)
    ref = f"funding:{symbol}:{t_ms}"
    table = funding_rows.rows(ex, symbol, coin)
    units = payment_units(table.qty_contracts, mark, inst.contract_size_usd, rate, step, rule)
    if len(units) <= FEW_ROWS:
        return _pay_few(ex, symbol, t_ms, rate, mark, table, units)
    slots = table.holder_slots
    known = slots >= 0
    held = _units_after(ledger, slots)
    # One by one: hedge legs, holders never posted to or too big for the arrays, and payers
    # short of the payment (``debit_from`` takes the rest from the insurance fund).
    alone = table.hedge | ~known | ((units < 0) & (held < -units))
    alone[known] |= ledger.too_big(slots[known])
    batch = ~alone & (units != 0)
    if batch.any():
        ledger.post_units(market, coin, slots[batch], units[batch], "funding_fee", ref, t_ms)
    wallet_units, isolated_units = _units_after(ledger, table.wallet_slots), _units_after(
        ledger, table.isolated_slots)
    # Rows whose balances the step counts do not reproduce exactly keep their Decimals.
    exact: dict[int, tuple[Decimal, Decimal]] = {}
    inexact = alone | ~_exact(ledger, table.wallet_slots) | ~_exact(ledger, table.isolated_slots)
    for i in np.flatnonzero(inexact).tolist():  # in position order: a hedge account's second
        amount, holder = (Decimal(int(units[i])) * step).quantize(step), table.holder_names[i]
        if alone[i] and amount > 0:  # leg sees the first's
            ledger.post(market, holder, coin, amount, "funding_fee", ref, t_ms)
        elif alone[i] and amount < 0:
            debit_from(ex, coin, -amount, [holder], market, "funding_fee", ref)
        wallet, isolated = ledger.peek_balances((table.wallet_names[i], table.isolated_names[i]))
        exact[i] = (wallet, isolated)
    for account in table.paying_accounts:
        account.update_ms = t_ms
    return FundingDetail(symbol, coin, rate, mark, step, table.account_ids,
                         table.position_sides, table.margin_modes, table.qty_contracts, units,
                         wallet_units, isolated_units, exact, table.text_sha)


# A settlement of a few positions (one hedge and its neighbours, 1,095 times a year) spends
# more in the arrays' fixed costs than in the payments: below this many rows ``pay`` books the
# same payments in Decimals (``_pay_few``).
FEW_ROWS = 8


def _pay_few(ex: Exchange, symbol: str, t_ms: int, rate: Decimal, mark: Decimal,
             table: funding_rows.SymbolRows, units: np.ndarray) -> FundingDetail:
    """``pay`` for a few rows: the same postings (one batch of every holder that can pay in
    full or receives, then the rest one by one in position order) booked with the ledger's
    Decimal ``post_batch``, every row's balances after kept as the ledger's Decimals."""
    from perpsim.sim.trading import debit_from

    coin, step, ledger = ex.instruments[symbol].margin_asset, ex.profile.rounding.coin_step, \
        ex.ledger
    market, ref = market_account(coin), f"funding:{symbol}:{t_ms}"
    amounts = [(Decimal(u) * step).quantize(step) for u in units.tolist()]
    holders, slots = table.holder_names, table.holder_slots
    # The rows ``pay`` sends one by one whatever they owe: hedge legs, holders never posted to
    # or too big for the arrays (the same postings either way); then payers short of it.
    known = slots >= 0
    apart = table.hedge | ~known
    apart[known] |= ledger.too_big(slots[known])
    before = ledger.peek_balances(holders)
    alone = [bool(aside) or (amount < 0 and held < -amount)
             for aside, amount, held in zip(apart.tolist(), amounts, before, strict=True)]
    batch = [i for i, amount in enumerate(amounts) if amount and not alone[i]]
    if batch:
        ledger.post_batch(market, coin, [holders[i] for i in batch], [amounts[i] for i in batch],
                          "funding_fee", ref, t_ms)
    exact: dict[int, tuple[Decimal, Decimal]] = {}
    for i, amount in enumerate(amounts):  # in position order: a hedge account's second leg
        if alone[i] and amount > 0:  # sees the first's
            ledger.post(market, holders[i], coin, amount, "funding_fee", ref, t_ms)
        elif alone[i] and amount < 0:
            debit_from(ex, coin, -amount, [holders[i]], market, "funding_fee", ref)
        wallet, isolated = ledger.peek_balances((table.wallet_names[i], table.isolated_names[i]))
        exact[i] = (wallet, isolated)
    for account in table.paying_accounts:
        account.update_ms = t_ms
    unused = np.zeros(len(units), dtype=np.int64)  # every row's balances are in ``exact``
    return FundingDetail(symbol, coin, rate, mark, step, table.account_ids,
                         table.position_sides, table.margin_modes, table.qty_contracts, units,
                         unused, unused, exact, table.text_sha)


def _units_after(ledger: Ledger, slots: np.ndarray) -> np.ndarray:
    """Balances in steps; 0 where nothing was ever posted (slot -1)."""
    if not len(slots) or slots.min() >= 0:
        return ledger.units_at(slots)
    out = np.zeros(len(slots), dtype=np.int64)
    known = slots >= 0
    out[known] = ledger.units_at(slots[known])
    return out


def _exact(ledger: Ledger, slots: np.ndarray) -> np.ndarray:
    """True where the steps give the Decimal balance exactly (slot -1: never posted to, the
    ledger's zero on the step, which the steps give too)."""
    if not len(slots) or slots.min() >= 0:
        return ledger.units_exact(slots)
    out = np.ones(len(slots), dtype=bool)
    known = slots >= 0
    out[known] = ledger.units_exact(slots[known])
    return out


def pay_one_by_one(ex: Exchange, symbol: str, t_ms: int, rate: Decimal,
                   mark: Decimal) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """The per-position settlement ``pay`` replaced: one exact payment and one posting per
    position. Kept as the reference ``pay`` is checked against (tests/test_funding_batch.py)
    and timed against (benchmarks/crowd_scale.py); (account, amount, wallet, isolated margin
    after) per position."""
    from perpsim.sim.trading import debit_from

    inst = ex.instruments[symbol]
    coin = inst.margin_asset
    step, rule = ex.profile.rounding.coin_step, ex.profile.rounding.coin_rule
    market = market_account(coin)
    ref = f"funding:{symbol}:{t_ms}"
    rows = []
    for account in ex.accounts.values():
        for pos in account.positions_on(symbol):
            if not pos.is_open:
                continue
            amount = quantize(funding_payment_coin(pos.qty_contracts, mark,
                                                   inst.contract_size_usd, rate), step, rule)
            holder = (isolated_account(account.account_id, pos.margin_key)
                      if pos.margin_mode == "isolated"
                      else wallet_account(account.account_id, coin))
            if amount > 0:
                ex.ledger.post(market, holder, coin, amount, "funding_fee", ref, t_ms)
            elif amount < 0:
                debit_from(ex, coin, -amount, [holder], market, "funding_fee", ref)
            account.update_ms = t_ms
            rows.append((account.account_id, amount,
                         ex.ledger.balance(wallet_account(account.account_id, coin)),
                         ex.isolated_wallet(account.account_id, pos.margin_key)))
    return rows


def predicted_rate(ex: Exchange, symbol: str) -> Decimal:
    """The premium model's rate for the next funding time, as far as the window has run."""
    inst = ex.instrument(symbol)
    if not inst.is_perpetual:
        return Decimal(0)
    if ex.profile.funding.settles == "previous_window":
        return upcoming_rate(ex, inst.symbol)
    start = ex.funding_schedules[inst.symbol].previous_time(
        ex.funding_schedules[inst.symbol].next_time(ex.now_ms))
    return ex.pricer(inst.symbol).window_rate(start, ex.now_ms)
