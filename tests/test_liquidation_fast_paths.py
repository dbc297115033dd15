"""The liquidation pass's shortcuts against the computations they replace.

* ``risk.margin_check`` asks the mark once, reads an isolated wallet once and takes the cross
  numbers from ``risk.cross_margin`` (no initial margins; for a lone one-way cross position,
  with the mark, the wallet and no others handed to ``liquidation_prices``): equal to the
  view it replaced
  (``reference_margin_check``, built on ``cross_state``) for every open position, every profile;
* ``risk.cross_state`` asks each mark once: equal to ``reference_cross_state``;
* ``liquidation.check_account`` takes a lone isolated position the short way
  (``reference_check_account``);
* ``liquidation.liquidate`` hands its trigger views to the step-down and the takeover while
  nothing has moved, and skips cancelling on a book with no resting order
  (``reference_liquidate`` asks again each time and cancels on every book);
* the journal freezes payloads through its fast path, ``append``'s keyword arguments in place
  (``journal._freeze_checked`` is the reference);
* the level index handles a few named accounts as a list (``LevelIndex._sync_few``; the array
  path it replaces, ``LevelIndex._sync_arrays``, is the reference) and reads back the float solver's
  answers for equal inputs (``SolvedLevels``, also tests/test_fast_levels_batch.py);
* ``Exchange.now_ms`` reads the clock's environment directly (``clock.now_ms``);
  ``Exchange.mark_price`` keeps whether the funding rate matters at its cached instant and
  reads the last price with the pricer and the time in hand (``reference_mark_price``,
  ``reference_last_price``).

Whole crowded runs through crashes, a squeeze, a finite-book cascade and ADL with an empty
fund give the same journal (digest), postings, balances and level index with every shortcut
as with every reference.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from perpsim.sim import journal, liquidation, risk, trading
from perpsim.sim.errors import PerpsimError
from perpsim.sim.exchange import Exchange
from perpsim.sim.ledger import insurance_account
from perpsim.sim.level_index import LevelIndex, SolvedLevels
from perpsim.sim.money import quantize
from perpsim.sim.profile import Profile
from perpsim.sim.scenario import load_scenario, manual_scenario

from engine_helpers import T0, check_invariants, drive, profile, profile_with

ZERO = Decimal(0)


# ---- the references: the code before the shortcuts ----------------------------------------------
def reference_cross_state(ex: Exchange, account_id: str, coin: str) -> risk.CrossState:
    positions = risk.cross_positions(ex, account_id, coin)
    return risk.CrossState(
        wallet_coin=ex.wallet_balance(account_id, coin),
        unrealised_coin=sum((risk.unrealised_pnl(ex, p) for p in positions), ZERO),
        position_im_coin=sum((risk.position_im(ex, p) for p in positions), ZERO),
        order_im_coin=risk.order_im(ex, account_id, coin),
        maint_coin=sum((risk.maint_margin(ex, p) for p in positions), ZERO),
    )


def reference_margin_check(ex: Exchange, account_id: str, pos: risk.Position,
                           unrealised_coin: Decimal | None = None) -> risk.MarginCheck:
    mark = ex.mark_price(pos.symbol)
    if pos.margin_mode == "isolated":
        if unrealised_coin is None:
            balance = risk.isolated_margin_balance(ex, account_id, pos)
        else:
            balance = ex.isolated_wallet(account_id, pos.margin_key) + unrealised_coin
        mm = risk.maint_margin(ex, pos, mark)
    else:
        state = reference_cross_state(ex, account_id, pos.coin)
        balance, mm = state.margin_balance_coin, state.maint_coin
    liq, bankrupt = risk.liquidation_prices(ex, account_id, pos)
    return risk.MarginCheck(mark, mm, balance, risk.margin_ratio(mm, balance), liq, bankrupt)


def reference_liquidate(ex: Exchange, account: liquidation.Account,
                        positions: list[liquidation.Position],
                        views: dict[int, risk.MarginCheck] | None = None) -> None:
    """``liquidation.liquidate`` before its steps reused the trigger views."""
    L = liquidation  # the module: the original read these names as its own
    aid = account.account_id
    known = views or {}
    ex.journal.append(ex.now_ms, "liquidation.triggered", account_id=aid,
                      margin_mode=positions[0].margin_mode, coin=positions[0].coin,
                      positions=[L._snapshot(ex, aid, p, known.get(id(p))) for p in positions])
    symbols = ([positions[0].symbol] if positions[0].margin_mode == "isolated" else
               [s for s, i in ex.instruments.items() if i.margin_asset == positions[0].coin])
    canceled = [o for s in symbols for o in trading.cancel_all(ex, aid, s)]
    if canceled:
        known = {}
        ex.journal.append(ex.now_ms, "liquidation.orders_canceled", account_id=aid,
                          order_ids=[o.order_id for o in canceled])
        if not any(L._reached(ex, account, p) for p in positions):
            ex.journal.append(ex.now_ms, "liquidation.cured", account_id=aid,
                              step="orders_canceled")
            return
    bankrupt = any(L._past_bankruptcy(ex, account, p, known.get(id(p))) for p in positions)
    if bankrupt:
        ex.journal.append(ex.now_ms, "liquidation.past_bankruptcy", account_id=aid,
                          symbols=[p.symbol for p in positions if p.is_open])
    if ex.profile.liquidation.partial and not bankrupt:
        while True:
            live = [p for p in positions if p.is_open
                    and risk.trigger_side(ex, aid, p) == p.side]
            pos = live[0] if len(live) == 1 else max(
                live, key=lambda p: risk.mark_value_coin(ex, p), default=None)
            if pos is None or not L._step_down(ex, account, pos):
                break
            if not any(L._reached(ex, account, p) for p in positions if p.is_open):
                ex.journal.append(ex.now_ms, "liquidation.cured", account_id=aid,
                                  step="partial")
                return
    shared: dict[int, Decimal | None] = {}
    for pos in positions:
        if pos.is_open and risk.hedged_pair(ex, aid, pos) is not None:
            shared[id(pos)] = risk.liquidation_prices(ex, aid, pos)[1]
    live = [p for p in positions if p.is_open]
    live.sort(key=lambda p: -L._pnl_at(ex, p, shared[id(p)]) if id(p) in shared else ZERO)
    for pos in live:
        L._take_over(ex, account, pos, shared.get(id(pos)))
    ex.journal.append(ex.now_ms, "liquidation.completed", account_id=aid,
                      insurance_fund=ex.ledger.balance(insurance_account(positions[0].coin)))
    ex.watcher.replan()


def reference_last_price(ex: Exchange, symbol: str) -> Decimal:
    """``Exchange.last_price`` before it took the pricer and the time in hand."""
    pricer = ex.pricer(symbol)
    state = ex.states[symbol]
    if ex.books[symbol].finite is not None:
        if state.trades and state.trades[-1].time_ms == ex.now_ms:
            return state.trades[-1].price_usd
        touch = ex.refresh_book(symbol).depleted_touch()
        return pricer.reference_at(ex.now_ms) if touch is None else touch
    if state.last_trade_price is not None and state.last_trade_tape == ex.tape_position(
            symbol):
        return state.last_trade_price
    return pricer.reference_at(ex.now_ms)


def reference_mark_price(ex: Exchange, symbol: str) -> Decimal:
    """``Exchange.mark_price`` before it kept whether the rate matters at the cached instant:
    every input asked again at every call (a memo of its own, on the full key)."""
    pricer = ex.pricer(symbol)
    rate, last = ex.mark_funding_rate(symbol), reference_last_price(ex, symbol)
    depth = ex.books[symbol].finite
    key = (symbol, ex.clock.now_ms, pricer.tape.version,
           rate if pricer.rate_matters_at(ex.clock.now_ms) else None, last,
           None if depth is None else depth.version)
    memo = ex.__dict__.setdefault("_reference_marks", {})
    cached = memo.get(symbol)
    if cached is not None and cached[0] == key:
        return cached[1]
    shift = None
    if depth is not None:
        step = ex.profile.mark.basis_sample_interval_ms
        shift = depth.mid_shift_average(ex.clock.now_ms // step * step, step,
                                        ex.profile.mark.basis_samples)
    mark = pricer.mark_at(ex.clock.now_ms, rate, last, basis_shift_usd=shift)
    memo[symbol] = (key, mark)
    return mark


def reference_check_account(ex: Exchange, account: liquidation.Account) -> None:
    """``liquidation.check_account`` before its lone isolated position's short way."""
    L = liquidation
    if not any(p.is_open for p in account.positions.values()):
        return
    for pos in list(account.positions.values()):
        if pos.is_open and pos.margin_mode == "isolated":
            view = L._margin_call(ex, account, pos)
            if L._reached(ex, account, pos, view):
                L.liquidate(ex, account, [pos], {id(pos): view})
    for coin in dict.fromkeys(p.coin for p in account.open_positions()
                              if p.margin_mode == "cross"):
        positions = risk.cross_positions(ex, account.account_id, coin)
        views = {id(pos): L._margin_call(ex, account, pos) for pos in positions}
        if any(L._reached(ex, account, p, views[id(p)]) for p in positions):
            L.liquidate(ex, account, positions, views)


def use_references(m: pytest.MonkeyPatch) -> None:
    m.setattr(risk, "margin_check", reference_margin_check)
    m.setattr(risk, "cross_state", reference_cross_state)
    m.setattr(liquidation, "liquidate", reference_liquidate)
    m.setattr(liquidation, "check_account", reference_check_account)
    m.setattr(journal, "_freeze", journal._freeze_checked)
    m.setattr(journal, "_freeze_own", lambda payload: journal._freeze_checked(payload, "payload"))
    m.setattr(Exchange, "now_ms", property(lambda ex: ex.clock.now_ms))
    m.setattr(Exchange, "mark_price", reference_mark_price)
    m.setattr(Exchange, "last_price", reference_last_price)
    m.setattr(LevelIndex, "_sync_few", LevelIndex._sync_arrays)
    m.setattr(SolvedLevels, "get", lambda *_: None)  # every position solved afresh


# ---- crowds --------------------------------------------------------------------------------------
def finite_book(p: Profile) -> Profile:
    """``p`` with a thin finite book on its first instrument (liquidations move the last price
    and, on Binance, the mark: a cascade) and a small insurance fund."""
    first = p.instruments[0]
    book = first.book.model_copy(update={"levels": 200, "level_step_ticks": 100,
                                         "contracts_per_level": 400,
                                         "refill_contracts_per_s": 20})
    instruments = (first.model_copy(update={"book": book}), *p.instruments[1:])
    funds = {c: Decimal("0.05") for c in p.insurance_fund_start}
    return p.model_copy(update={"instruments": instruments, "insurance_fund_start": funds})


def crowd(prof: str, scenario: str, n: int, seed: int, variant: str = "") -> Exchange:
    """``n`` accounts of every kind: cross and isolated, 1x-100x, small and bracket-2 sizes,
    resting orders (cancelled first when liquidated), a second cross position in the coin,
    hedge-mode pairs where the venue has them. ``variant``: ``no_fund`` (ADL), ``finite``
    (a finite book)."""
    p = profile(prof)
    if variant == "no_fund":
        p = profile_with(prof, insurance_fund_start={c: ZERO for c in p.insurance_fund_start})
    elif variant == "finite":
        p = finite_book(p)
    inst = p.instruments[0]
    if scenario == "manual":
        ex = Exchange(p, manual_scenario(T0, {inst.pair: 60_000.0}, seed=seed), seed=seed,
                      start_ms=T0)
    else:
        ex = Exchange(p, load_scenario(scenario, seed=seed), seed=seed)
    rng = random.Random(seed)
    sym, coin, cs = inst.symbol, inst.margin_asset, inst.contract_size_usd
    other = [i.symbol for i in p.instruments[1:] if i.margin_asset == coin and i.pair == inst.pair]
    for _ in range(n):
        aid = ex.create_account({coin: rng.choice(["0.05", "0.2", "1", "8"])}).account_id
        mode = rng.choice(["cross", "isolated", "isolated"])
        hedge = rng.random() < 0.15
        try:
            if hedge:
                ex.set_position_mode(aid, True)
            if mode == "isolated":
                ex.set_margin_mode(aid, sym, "isolated")
            ex.set_leverage(aid, sym, rng.choice([1, 2, 5, 10, 20, 50, 100]))
            mark = ex.mark_price(sym)
            lev = ex.position(aid, sym, "LONG" if hedge else "BOTH").leverage
            qty = max(1, int(ex.wallet_balance(aid, coin) * lev * mark / cs
                             * Decimal(str(round(rng.uniform(0.2, 0.9), 3)))))
            if hedge:
                trading.place_order(ex, aid, sym, "BUY", "MARKET", qty, position_side="LONG")
                trading.place_order(ex, aid, sym, "SELL", "MARKET", max(1, qty // 3),
                                    position_side="SHORT")
                continue
            side = rng.choice(["BUY", "SELL"])
            trading.place_order(ex, aid, sym, side, "MARKET", qty)
            if rng.random() < 0.4:  # a take-profit far away: still resting when liquidated
                off = Decimal(str(round(rng.uniform(0.1, 0.2), 3)))
                far = mark * (1 + off) if side == "BUY" else mark * (1 - off)
                trading.place_order(ex, aid, sym, "SELL" if side == "BUY" else "BUY",
                                    "LIMIT", max(1, qty // 3), quantize(far, inst.tick_size))
            if rng.random() < 0.2:
                off = Decimal(str(round(rng.uniform(-0.04, 0.04), 4)))
                trading.place_order(ex, aid, sym, rng.choice(["BUY", "SELL"]), "LIMIT",
                                    max(1, qty // 3), quantize(mark * (1 + off), inst.tick_size))
            if other and mode == "cross" and rng.random() < 0.3:
                trading.place_order(ex, aid, other[0], rng.choice(["BUY", "SELL"]), "MARKET",
                                    max(1, qty // 2))
        except PerpsimError:
            pass
    return ex


def state(ex: Exchange) -> tuple[object, ...]:
    index = ex.watcher.index
    return (ex.journal.digest(), [repr(p) for p in ex.ledger.postings], ex.ledger.balances(),
            {(a.account_id, k): (p.qty_contracts, p.entry_price_usd, p.margin_call_sent)
             for a in ex.accounts.values() for k, p in a.positions.items()},
            # the level index: every level, the positions it solved, the volatile accounts
            {s: [i.as_dict() for i in levels.indexes] for s, levels in index.symbols.items()},
            index.recomputed, index.volatile)


def steps(ex: Exchange) -> set[str]:
    """The steps of the waterfall a run went through (event types, order kinds, and whether
    hedged pairs or several cross positions of one account were liquidated)."""
    seen: set[str] = set()
    for e in ex.journal:
        seen.add(e.type)
        if e.type == "liquidation.order":
            seen.add(f"order:{e.payload['kind']}")
        if e.type == "liquidation.triggered":
            legs = e.payload["positions"]
            if any(p["position_side"] != "BOTH" for p in legs):
                seen.add("hedged")
            if len({p["symbol"] for p in legs}) > 1:
                seen.add("several cross")
    return seen


ALWAYS = {"margin.call", "liquidation.triggered", "liquidation.takeover", "order:takeover",
          "liquidation.orders_canceled", "liquidation.past_bankruptcy", "hedged"}
CASES = [("binance_coinm", "crash", "", {"order:partial", "liquidation.cured",
                                         "several cross"}),
         ("binance_coinm", "manual", "no_fund", {"order:partial", "several cross"}),
         ("binance_coinm", "manual", "finite", {"order:partial", "book.depth", "adl.fill"}),
         ("bybit_inverse", "squeeze", "", set()),
         ("bybit_inverse", "manual", "no_fund", set()),
         ("bitmex_xbtusd", "crash", "", set()),
         ("bitmex_xbtusd", "manual", "no_fund", {"adl.fill"})]


@pytest.mark.parametrize(("prof", "scenario", "variant", "reached"), CASES)
def test_runs_with_the_shortcuts_equal_runs_with_the_references(
        monkeypatch: pytest.MonkeyPatch, prof: str, scenario: str, variant: str,
        reached: set[str]) -> None:
    fast = crowd(prof, scenario, 60, seed=11, variant=variant)
    drive(fast, scenario, 11, moves=30, biggest_fall=-0.035, hours=36)
    with monkeypatch.context() as m:
        use_references(m)
        slow = crowd(prof, scenario, 60, seed=11, variant=variant)
        drive(slow, scenario, 11, moves=30, biggest_fall=-0.035, hours=36)
    assert ALWAYS | reached <= steps(fast)  # what the equality below covers
    check_invariants(fast)
    assert state(fast) == state(slow)


# ---- the views, position by position -------------------------------------------------------------
@pytest.mark.parametrize(("prof", "scenario"), [("binance_coinm", "crash"),
                                                ("bybit_inverse", "squeeze"),
                                                ("bitmex_xbtusd", "crash")])
def test_margin_views_equal_the_references_for_every_position(prof: str, scenario: str) -> None:
    ex = crowd(prof, scenario, 40, seed=3)
    end = ex.scenario.end_ms
    assert end is not None
    checked = 0
    while ex.now_ms < end and checked < 2_000:
        ex.advance(min(2 * 3_600_000, end - ex.now_ms))
        for account in ex.accounts.values():
            aid = account.account_id
            for coin in {p.coin for p in account.open_positions()}:
                ref = reference_cross_state(ex, aid, coin)
                assert risk.cross_state(ex, aid, coin) == ref
                assert risk.cross_margin(ex, aid, coin) == (ref.margin_balance_coin,
                                                            ref.maint_coin)
            for pos in account.open_positions():
                assert risk.margin_check(ex, aid, pos) == reference_margin_check(ex, aid, pos)
                upnl = risk.unrealised_pnl(ex, pos)
                assert risk.margin_check(ex, aid, pos, upnl) == \
                    reference_margin_check(ex, aid, pos, upnl)
                if pos.margin_mode == "isolated":
                    wallet = ex.isolated_wallet(aid, pos.margin_key)
                    assert risk.liquidation_prices(ex, aid, pos, isolated_wallet_coin=wallet) \
                        == risk.liquidation_prices(ex, aid, pos)
                checked += 1
    assert checked > 100


# ---- the mark's memo, instant by instant ------------------------------------------------------
@pytest.mark.parametrize("prof", ["binance_coinm", "bitmex_xbtusd"])
def test_the_mark_follows_a_rate_moved_within_an_instant_as_the_reference(prof: str) -> None:
    # The memo keeps whether the rate matters at its instant: within one instant a moved rate
    # must still give a new mark (off a funding instant) and the same one (at it), as the
    # reference, which asks ``rate_matters_at`` every time, computes afresh.
    ex = crowd(prof, "manual", 4, seed=5)
    sym = ex.profile.instruments[0].symbol
    state = ex.states[sym]
    funding_ms = ex.next_funding_time_ms(sym)
    assert funding_ms is not None
    rates = [Decimal("0.0001"), Decimal("-0.00375"), Decimal("0.003"), Decimal("0.0001")]
    seen_matters = set()
    for t in (ex.now_ms + 1_000, funding_ms - 60_000, funding_ms, funding_ms + 1_000):
        ex.advance_until(t)
        for rate in rates:
            if ex.profile.funding.settles == "previous_window":
                state.next_funding_rate = rate
            else:
                state.last_funding_rate = rate
            assert ex.mark_funding_rate(sym) == rate
            ex.__dict__.pop("_reference_marks", None)  # the reference computes afresh
            assert ex.mark_price(sym) == reference_mark_price(ex, sym)
            assert ex.last_price(sym) == reference_last_price(ex, sym)
            seen_matters.add(ex.pricers[sym].rate_matters_at(t))
    assert seen_matters == {True, False}  # both kinds of instant were met
