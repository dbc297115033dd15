"""THE LIQUIDATION WATERFALL (mechanics §5). Read top to bottom: ``check_all`` → ``liquidate``.

Trigger, on the **mark** price: the mark reaches the position's liquidation price (for
Binance-style profiles that is exactly "margin balance ≤ maintenance margin"; for BitMEX/Bybit
it is how they define it). Isolated positions are judged alone; cross positions together per
settlement coin (each one's liquidation price holds the others at their marks).

Then, each step a journal event with its reason and numbers:
1. ``margin.call`` — a warning once the margin ratio passes the profile's threshold;
2. ``liquidation.triggered``;
3. cancel the account's open orders on the symbol (cross: in the coin) — stop if that cures it;
4. partial step-down (profiles with ``partial``): close just enough in the book to fall into the
   next lower bracket — stop if cured. Skipped when the mark has gapped past the bankruptcy
   price (Binance, Bybit: the whole position goes to the liquidation engine at that price);
5. takeover: the position closes at its **bankruptcy price** (the user's margin is gone, any
   rounding remainder goes to the insurance fund), and the liquidation engine works it into
   the book. A fill better than bankruptcy pays the surplus into the **insurance fund**; a
   worse one is paid by the fund;
6. if the fund cannot pay, **auto-deleveraging**: opposite positions, ranked by the venue's
   published formula (``adl_ranking``), are closed at the bankruptcy price instead.
Whatever no one can pay is socialised to the market counterparty, so no balance goes negative
and no coin is created or lost.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from perpsim.sim import funding_rows, risk, trading
from perpsim.sim.inverse import coin_value, fee_coin, pnl_coin
from perpsim.sim.ledger import (
    insurance_account,
    isolated_account,
    market_account,
    wallet_account,
)
from perpsim.sim.margin import bracket_for
from perpsim.sim.money import quantize
from perpsim.sim.orders import MatchPlan, Order, Side, opposite

if TYPE_CHECKING:
    from perpsim.sim.accounts import Account, Position
    from perpsim.sim.exchange import Exchange
    from perpsim.sim.profile import Instrument

ZERO = Decimal(0)
LIQUIDATION_ENGINE = "liquidation-engine"
_MAX_BOOK_ROUNDS = 1000  # synthetic depth replenishes; this bounds a runaway loop


def check_all(ex: Exchange) -> None:
    """Liquidate every position whose mark reached its liquidation price (margin calls too).

    Accounts are taken in creation order, as a pass over all of them would; the level index
    (sim/level_index.py) yields only those whose mark is near enough a liquidation or
    margin-call level to need the exact check below — the others it would leave unchanged.
    """
    for account in ex.watcher.index.candidates():
        check_account(ex, account)


def check_account(ex: Exchange, account: Account) -> None:
    """The exact check of one account: margin calls, then liquidation where reached."""
    if len(account.positions) == 1:
        (only,) = account.positions.values()
        if not only.is_open:
            return
        if only.margin_mode == "isolated":
            # The crowd's usual isolated account: the pass below with its cross part finding
            # no open cross position (this one stays isolated, liquidated or not).
            view = _margin_call(ex, account, only)
            if _reached(ex, account, only, view):
                liquidate(ex, account, [only], {id(only): view})
            return
    elif not any(p.is_open for p in account.positions.values()):
        return
    for pos in list(account.positions.values()):
        if pos.is_open and pos.margin_mode == "isolated":
            view = _margin_call(ex, account, pos)
            if _reached(ex, account, pos, view):
                liquidate(ex, account, [pos], {id(pos): view})
    for coin in dict.fromkeys(p.coin for p in account.open_positions()
                              if p.margin_mode == "cross"):
        positions = risk.cross_positions(ex, account.account_id, coin)
        views = {id(pos): _margin_call(ex, account, pos) for pos in positions}
        if any(_reached(ex, account, p, views[id(p)]) for p in positions):
            liquidate(ex, account, positions, views)


def _reached(ex: Exchange, account: Account, pos: Position,
             view: risk.MarginCheck | None = None) -> bool:
    """True when the mark is at or past the position's liquidation price.

    ``view``: the position's risk view computed with nothing moved since (a margin call may
    have been journaled, which moves no price or balance): its mark and liquidation price are
    the ones this would compute again."""
    if view is None:
        liq, _ = risk.liquidation_prices(ex, account.account_id, pos)
        return _beyond(ex, account, pos, liq, None)
    return _beyond(ex, account, pos, view.liquidation_price_usd, view.mark_price_usd)


def _past_bankruptcy(ex: Exchange, account: Account, pos: Position,
                     view: risk.MarginCheck | None = None) -> bool:
    """True when the mark is at or beyond the position's bankruptcy price (a gap through
    it); ``view`` as for :func:`_reached`."""
    if view is None:
        _, bankrupt = risk.liquidation_prices(ex, account.account_id, pos)
        return _beyond(ex, account, pos, bankrupt, None)
    return _beyond(ex, account, pos, view.bankruptcy_price_usd, view.mark_price_usd)


def _beyond(ex: Exchange, account: Account, pos: Position, level: Decimal | None,
            mark: Decimal | None) -> bool:
    """The mark (now, unless given) has reached ``level`` of the open ``pos``."""
    if level is None or not pos.is_open:
        return False
    if mark is None:
        mark = ex.mark_price(pos.symbol)
    # A cross hedged pair triggers in the direction it is net on (risk.trigger_side).
    side = risk.trigger_side(ex, account.account_id, pos)
    return mark <= level if side > 0 else mark >= level


def _margin_call(ex: Exchange, account: Account, pos: Position) -> risk.MarginCheck:
    """Journal a margin call when the ratio first reaches the threshold; the risk view used
    (the liquidation snapshot right after reuses it: nothing moves money in between)."""
    view = risk.margin_check(ex, account.account_id, pos)
    threshold = ex.profile.liquidation.margin_call_ratio
    if view.margin_ratio < threshold:
        pos.margin_call_sent = False
        return view
    if pos.margin_call_sent:
        return view
    pos.margin_call_sent = True
    ex.journal.append(ex.now_ms, "margin.call", account_id=account.account_id,
                      symbol=pos.symbol, position_side=pos.position_side,
                      margin_mode=pos.margin_mode, qty=pos.qty_contracts,
                      mark=view.mark_price_usd, margin_ratio=round(view.margin_ratio, 6),
                      margin_balance=view.margin_balance_coin,
                      maint_margin=view.maint_margin_coin,
                      liquidation_price=_finite(view.liquidation_price_usd))
    ex.watcher.replan()
    return view


def liquidate(ex: Exchange, account: Account, positions: list[Position],
              views: dict[int, risk.MarginCheck] | None = None) -> None:
    """Run the waterfall for an isolated position ([pos]) or an account's cross positions.

    ``views``: each position's risk view (by ``id``) computed at this stamp with nothing moved
    since (check_account's margin-call pass): the trigger snapshot reuses it instead of a
    second exact ``margin_check``, and so do the steps after it (their mark, the bankruptcy
    price) for as long as nothing has moved — ``known`` is emptied at the first step that
    moves a price, a balance or a position."""
    aid = account.account_id
    known = views or {}
    now = ex.now_ms  # one instant throughout: the time is read once
    ex.journal.append(now, "liquidation.triggered", account_id=aid,
                      margin_mode=positions[0].margin_mode, coin=positions[0].coin,
                      positions=[_snapshot(ex, aid, p, known.get(id(p))) for p in positions])
    # 1. Cancel the account's open orders on these symbols (cross: all in the coin).
    symbols = ([positions[0].symbol] if positions[0].margin_mode == "isolated" else
               [s for s, i in ex.instruments.items() if i.margin_asset == positions[0].coin])
    # A book with no resting order at all has none of this account's: cancel_all would scan
    # it (and check the symbol and the account, known here) to find nothing and do nothing.
    canceled = [o for s in symbols if len(ex.books[s]) for o in trading.cancel_all(ex, aid, s)]
    if canceled:
        known = {}  # the views predate the cancellations
        ex.journal.append(now, "liquidation.orders_canceled", account_id=aid,
                          order_ids=[o.order_id for o in canceled])
        if not any(_reached(ex, account, p) for p in positions):
            ex.journal.append(now, "liquidation.cured", account_id=aid,
                              step="orders_canceled")
            return
    # 2. Partial step-down to a lower bracket, where the venue does it — unless the mark has
    # gapped past a bankruptcy price: nothing is left to save, so the whole position goes to
    # the liquidation engine at its bankruptcy price (step 3), none of it through the book.
    bankrupt = any(_past_bankruptcy(ex, account, p, known.get(id(p))) for p in positions)
    if bankrupt:
        ex.journal.append(now, "liquidation.past_bankruptcy", account_id=aid,
                          symbols=[p.symbol for p in positions if p.is_open])
    if ex.profile.liquidation.partial and not bankrupt:
        while True:
            # A hedged leg on the side the pair is not net on only hedges: stepping it down
            # would add risk, so only the net side's leg (or a one-way position) steps down.
            live = [p for p in positions if p.is_open
                    and risk.trigger_side(ex, aid, p) == p.side]
            pos = live[0] if len(live) == 1 else max(
                live, key=lambda p: risk.mark_value_coin(ex, p), default=None)
            if pos is None or not _step_down(ex, account, pos, known.get(id(pos))):
                break
            known = {}  # the step's fills moved the book, the last price and the position
            if not any(_reached(ex, account, p) for p in positions if p.is_open):
                ex.journal.append(now, "liquidation.cured", account_id=aid,
                                  step="partial")
                return
    # 3. Takeover at the bankruptcy price, then the book, the insurance fund or ADL.
    # A cross hedged pair (LONG and SHORT of one symbol) shares one bankruptcy price: both
    # legs close there, the gaining leg first so the wallet never has to cover the loser alone.
    shared: dict[int, Decimal | None] = {}
    for pos in positions:
        if pos.is_open and risk.hedged_pair(ex, aid, pos) is not None:
            shared[id(pos)] = risk.liquidation_prices(ex, aid, pos)[1]
    live = [p for p in positions if p.is_open]
    live.sort(key=lambda p: -_pnl_at(ex, p, shared[id(p)]) if id(p) in shared else ZERO)
    for pos in live:
        _take_over(ex, account, pos, shared.get(id(pos)), known.get(id(pos)))
        known = {}  # the takeover moved balances, the book and the last price
    ex.journal.append(now, "liquidation.completed", account_id=aid,
                      insurance_fund=ex.ledger.balance(insurance_account(positions[0].coin)))
    ex.watcher.replan()


def _snapshot(ex: Exchange, account_id: str, pos: Position,
              view: risk.MarginCheck | None = None) -> dict[str, object]:
    if view is None:
        view = risk.margin_check(ex, account_id, pos)
    return {"symbol": pos.symbol, "position_side": pos.position_side, "qty": pos.qty_contracts,
            "entry": pos.entry_price_usd,
            "mark": view.mark_price_usd, "margin_balance": view.margin_balance_coin,
            "maint_margin": view.maint_margin_coin,
            "liquidation_price": _finite(view.liquidation_price_usd),
            "bankruptcy_price": _finite(view.bankruptcy_price_usd)}


def _finite(price: Decimal | None) -> Decimal | None:
    return price if price is not None and price.is_finite() else None


def _step_down(ex: Exchange, account: Account, pos: Position,
               view: risk.MarginCheck | None = None) -> bool:
    """Close part of ``pos`` in the book so its value falls below its bracket's floor (False,
    nothing done, when it is in the first bracket or nothing needs closing); ``view`` as for
    :func:`_reached`."""
    inst = ex.instruments[pos.symbol]
    mark = ex.mark_price(pos.symbol) if view is None else view.mark_price_usd
    # The position's value at this mark (risk.mark_value_coin) picks its bracket.
    bracket = bracket_for(inst.brackets, coin_value(pos.qty_contracts, mark,
                                                    inst.contract_size_usd))
    if bracket.bracket == 1:
        return False
    lot = inst.lot_size
    keep = int(bracket.floor_coin * mark / inst.contract_size_usd) // lot * lot
    while keep > 0 and coin_value(keep, mark, inst.contract_size_usd) >= bracket.floor_coin:
        keep -= lot
    close = abs(pos.qty_contracts) - keep
    if close <= 0:
        return False
    side = opposite(_side(pos))
    fills = _work_into_book(ex, inst, side, close)
    fee_rate = ex.profile.fees.liquidation_clearance_rate
    for price, qty in fills:
        realised, _ = trading.apply_position_fill(ex, account.account_id, inst,
                                                  -pos.side * qty, price, ZERO,
                                                  f"liquidation:{pos.symbol}",
                                                  release_margin=False,
                                                  position_side=pos.position_side)
        fee = quantize(fee_coin(qty, inst.contract_size_usd, price, fee_rate),
                       ex.profile.rounding.coin_step, ex.profile.rounding.coin_rule)
        if fee > 0:  # what the account cannot pay of the clearance fee is waived
            fee -= trading.uncollected(ex, pos.coin, fee, _holders(account.account_id, pos),
                                       insurance_account(pos.coin),
                                       "liquidation_clearance_fee", f"liquidation:{pos.symbol}")
        trading.record_forced_fill(ex, account.account_id, inst, side, qty, price, realised,
                                   max(fee, ZERO), "LIQUIDATION", pos.position_side)
    ex.journal.append(ex.now_ms, "liquidation.order", account_id=account.account_id,
                      symbol=pos.symbol, kind="partial", side=opposite(_side(pos)), qty=close,
                      avg_price=_avg(inst, fills), from_bracket=bracket.bracket,
                      position_qty=pos.qty_contracts)
    return True


def _side(pos: Position) -> Side:
    return _side_of(pos.qty_contracts)


def _side_of(qty: int) -> Side:
    return "BUY" if qty > 0 else "SELL"


def _holders(account_id: str, pos: Position) -> list[str]:
    wallet = wallet_account(account_id, pos.coin)
    if pos.margin_mode == "isolated":
        return [isolated_account(account_id, pos.margin_key), wallet]
    return [wallet]


def _pnl_at(ex: Exchange, pos: Position, price: Decimal | None) -> Decimal:
    """The position's PnL if closed at ``price`` (zero when there is no finite price)."""
    if price is None or not price.is_finite() or pos.entry_price_usd is None:
        return ZERO
    return pnl_coin(pos.qty_contracts, pos.entry_price_usd, price,
                    ex.instruments[pos.symbol].contract_size_usd)


def _take_over(ex: Exchange, account: Account, pos: Position,
               shared_bankruptcy_usd: Decimal | None = None,
               view: risk.MarginCheck | None = None) -> None:
    """Close the user's position at bankruptcy; the engine works it off (book / fund / ADL).

    ``view`` as for :func:`_reached`: its mark and bankruptcy price are the ones asked for
    here."""
    inst = ex.instruments[pos.symbol]
    aid, coin, cs = account.account_id, pos.coin, inst.contract_size_usd
    if shared_bankruptcy_usd is not None:
        bankrupt: Decimal | None = shared_bankruptcy_usd
    elif view is not None:
        bankrupt = view.bankruptcy_price_usd
    else:
        _, bankrupt = risk.liquidation_prices(ex, aid, pos)
    mark = ex.mark_price(pos.symbol) if view is None else view.mark_price_usd
    bp = bankrupt if bankrupt is not None and bankrupt.is_finite() else mark
    qty, entry = pos.qty_contracts, pos.entry_price_usd
    assert entry is not None
    step, rule = ex.profile.rounding.coin_step, ex.profile.rounding.coin_rule
    ref = f"liquidation:{pos.symbol}:{aid}"
    # The ledger names and the time, built and read once (each is the same every time here).
    fund, market, now = insurance_account(coin), market_account(coin), ex.now_ms
    # The user's side: the position closes at BP; its margin pays the loss.
    loss = -quantize(pnl_coin(qty, entry, bp, cs), step, rule)
    holder = (isolated_account(aid, pos.margin_key) if pos.margin_mode == "isolated"
              else wallet_account(aid, coin))  # _holders(aid, pos)[0]
    if loss > 0:
        trading.debit_from(ex, coin, loss, [holder], market, "liquidation_loss", ref)
    elif loss < 0:
        ex.ledger.post(market, holder, coin, -loss, "liquidation_pnl", ref, now)
    if pos.margin_mode == "isolated":
        remainder = ex.ledger.balance(holder)
        if remainder > 0:  # what bankruptcy-price rounding left: the clearance to the fund
            ex.ledger.post(holder, fund, coin, remainder, "liquidation_clearance", ref, now)
    pos.qty_contracts, pos.entry_price_usd, pos.updated_ms = 0, None, now
    funding_rows.changed(ex, pos)  # the settlement's cached rows
    pos.margin_call_sent = False
    trading.record_forced_fill(ex, aid, inst, opposite(_side_of(qty)), abs(qty), bp, -loss, ZERO,
                               "LIQUIDATION", pos.position_side)
    ex.journal.append(now, "liquidation.takeover", account_id=aid, symbol=pos.symbol,
                      qty=qty, entry=entry, mark=mark, bankruptcy_price=bp, loss=loss,
                      wallet=ex.ledger.balance(wallet_account(aid, coin)))
    # The engine now holds ``qty`` at BP and must close it: ADL first if the fund can't pay.
    engine_side = opposite("BUY" if qty > 0 else "SELL")
    remaining = abs(qty)
    planned, plan = _plan_book(ex, inst, engine_side, remaining)
    planned_pnl = _engine_pnl(qty, bp, planned, cs)
    deficit = max(ZERO, -planned_pnl)
    if deficit > ex.ledger.balance(fund):
        remaining -= _auto_deleverage(ex, inst, aid, qty, bp, remaining)
    if remaining:
        # With no ADL in between, the book is as planned (``plan`` is used only if its
        # version still matches) and fills equal to the plan's have the planned PnL.
        fills = _work_into_book(ex, inst, engine_side, remaining, plan)
        sign = 1 if qty > 0 else -1
        unrounded = (planned_pnl if remaining == abs(qty) and fills == planned
                     else _engine_pnl(sign * remaining, bp, fills, cs))
        engine_pnl = quantize(unrounded, step, rule)
        if engine_pnl > 0:
            ex.ledger.post(market, fund, coin, engine_pnl, "liquidation_surplus", ref, now)
        elif engine_pnl < 0:
            trading.debit_from(ex, coin, -engine_pnl, [fund], market, "liquidation_deficit",
                               ref)
        ex.journal.append(now, "liquidation.order", account_id=aid, symbol=pos.symbol,
                          kind="takeover", side=engine_side, qty=remaining,
                          avg_price=_avg(inst, fills), bankruptcy_price=bp,
                          insurance_delta=engine_pnl,
                          insurance_fund=ex.ledger.balance(fund))


def _engine_pnl(qty: int, bp: Decimal, fills: list[tuple[Decimal, int]], cs: Decimal) -> Decimal:
    """PnL of holding ``qty`` (the user's side) from BP and closing it at the fills."""
    sign = 1 if qty > 0 else -1
    return sum((pnl_coin(sign * q, bp, p, cs) for p, q in fills), ZERO)


def _plan_book(ex: Exchange, inst: Instrument, side: str,
               qty: int) -> tuple[list[tuple[Decimal, int]], MatchPlan]:
    """Fills a market order of the engine would get now, without applying them, and the
    book's plan of its first round."""
    book = ex.refresh_book(inst.symbol)
    fills: list[tuple[Decimal, int]] = []
    left = qty
    order = _engine_order(ex, inst, side, qty)
    plan = book.plan_match(order)
    for f in plan.fills:
        fills.append((f.price_usd, f.qty_contracts))
        left -= f.qty_contracts
    if left and fills:  # synthetic depth replenishes: the rest goes at the worst level seen
        fills.append((fills[-1][0], left))
    elif left:  # a finite book with nothing left on this side: its backstop (sim/depth.py)
        backstop = book.backstop_price("bids" if side == "SELL" else "asks")
        if backstop is not None:
            fills.append((backstop, left))
    return fills, plan


def _engine_order(ex: Exchange, inst: Instrument, side: str, qty: int) -> Order:
    now = ex.now_ms
    return Order(order_id=0, client_order_id="liquidation", account_id=LIQUIDATION_ENGINE,
                 symbol=inst.symbol, side=side, type="MARKET",  # type: ignore[arg-type]
                 qty_contracts=min(qty, inst.market_max_qty), price_usd=None,
                 time_in_force="IOC", reduce_only=False, created_ms=now,
                 updated_ms=now, seq=0)


def _work_into_book(ex: Exchange, inst: Instrument, side: str, qty: int,
                    planned: MatchPlan | None = None) -> list[tuple[Decimal, int]]:
    """Execute market orders of the engine until ``qty`` is done; users' makers get fills.

    ``planned``: ``_plan_book``'s first-round plan, taken instead of planning that round again
    when it is for the same order on the same book version (plan_match is deterministic)."""
    book = ex.refresh_book(inst.symbol)
    fills: list[tuple[Decimal, int]] = []
    left = qty
    for _ in range(_MAX_BOOK_ROUNDS):
        if not left:
            break
        if planned is not None and planned.version == book.version \
                and planned.order.qty_contracts == min(left, inst.market_max_qty):
            plan = planned
        else:
            plan = book.plan_match(_engine_order(ex, inst, side, left))
        planned = None
        if not plan.fills:
            # A finite book eaten to its last level: the maker takes the rest at its deepest
            # quote (sim/depth.py), so the liquidation completes at the worst price shown.
            backstop = book.backstop_price("bids" if side == "SELL" else "asks")
            if backstop is None:
                break
            fills.append((backstop, left))
            trading.record_trade(ex, inst, backstop, left, side)
            left = 0
            break
        book.apply_match(plan, ex.now_ms)
        for f in plan.fills:
            fills.append((f.price_usd, f.qty_contracts))
            left -= f.qty_contracts
            trading.record_trade(ex, inst, f.price_usd, f.qty_contracts, side)
            if f.maker_order_id is not None:
                trading.execute_maker(ex, inst, f.maker_order_id, f.qty_contracts, f.price_usd)
    if left:
        raise RuntimeError(f"the {inst.symbol} book could not absorb a liquidation of {qty}")
    if book.finite is not None:
        from perpsim.sim.cascade import journal_depth  # imports this module

        journal_depth(ex, inst.symbol, side)
    return fills


def _avg(inst: Instrument, fills: list[tuple[Decimal, int]]) -> Decimal | None:
    qty = sum(q for _, q in fills)
    if not qty:
        return None
    coin = sum((coin_value(q, p, inst.contract_size_usd) for p, q in fills), ZERO)
    return (qty * inst.contract_size_usd / coin).quantize(inst.tick_size)


def _auto_deleverage(ex: Exchange, inst: Instrument, bankrupt_account: str, qty: int,
                     bp: Decimal, wanted: int) -> int:
    """Close ranked profitable opposite positions at BP; the contracts so absorbed."""
    ranking = adl_ranking(ex, inst.symbol, opposite_of=qty, exclude=bankrupt_account)
    ex.journal.append(ex.now_ms, "adl.ranking", symbol=inst.symbol, bankruptcy_price=bp,
                      ranking=[{"account_id": a, "qty": p.qty_contracts, "score": round(s, 8)}
                               for a, p, s in ranking])
    done = 0
    for account_id, pos, score in ranking:
        if done == wanted:
            break
        take = min(abs(pos.qty_contracts), wanted - done)
        side = opposite(_side(pos))
        # Binance, BitMEX: no fee on ADL; Bybit: "Maker fee will be charged to the positions of
        # selected traders" (help.bybit.com 900000031623).
        fee_rate = (ex.profile.fees.maker_rate
                    if ex.profile.liquidation.adl_counterparty_fee == "maker" else ZERO)
        realised, fee = trading.apply_position_fill(ex, account_id, inst, -pos.side * take, bp,
                                                    fee_rate,
                                                    f"adl:{inst.symbol}:{bankrupt_account}",
                                                    position_side=pos.position_side)
        trading.record_forced_fill(ex, account_id, inst, side, take, bp, realised, fee, "ADL",
                                   pos.position_side)
        trading.trim_closing_orders(ex, account_id, pos)
        done += take
        ex.journal.append(ex.now_ms, "adl.fill", account_id=account_id, symbol=inst.symbol,
                          qty=take, price=bp, realized_pnl=realised, commission=fee,
                          score=round(score, 8),
                          position_qty=pos.qty_contracts,
                          counterparty_of=bankrupt_account)
    return done


def adl_ranking(ex: Exchange, symbol: str, opposite_of: int,
                exclude: str | None = None) -> list[tuple[str, Position, Decimal]]:
    """Every position opposite to ``opposite_of``'s side, first to be deleveraged first.

    Scores follow the venue's published formula (profile ``liquidation.adl_ranking``):
    * ``binance`` (Binance announcement 360033525471, dev.binance.vision/t/17801):
      max(0, UPNL) / max(1, wallet) × margin ratio, margin ratio = MM / (wallet + UPNL), 0 when
      wallet + UPNL ≤ 0 (wallet: the isolated margin, or the cross wallet with the account's
      cross MM and UPNL in the ratio, as Binance's cross margin ratio is account-wide);
    * ``bitmex`` (bitmex.com/app/autoDeleveraging): PnL% × effective leverage if PnL% > 0, else
      PnL% / effective leverage; PnL% = (mark value − entry value) / |entry value|, effective
      leverage = |mark value| / (mark value − bankrupt value), 1 for a position that cannot go
      bankrupt;
    * ``profit_times_leverage`` (Bybit, whose formula column is cut off in the stored copy):
      the same shape with effective leverage = value at mark / margin balance.
    Positions at a loss are ranked too, after the profitable ones, as the venues queue everyone.
    """
    inst = ex.instruments[symbol]
    cs = inst.contract_size_usd
    style = ex.profile.liquidation.adl_ranking
    ranked: list[tuple[str, Position, Decimal]] = []
    candidates = [(a, p) for a in ex.accounts.values() if a.account_id != exclude
                  for p in a.positions_on(symbol)]
    for account, pos in candidates:
        if not pos.is_open or (pos.qty_contracts > 0) == (opposite_of > 0):
            continue
        assert pos.entry_price_usd is not None
        view = risk.position_risk(ex, account.account_id, symbol, pos.position_side)
        upnl = view.unrealised_pnl_coin
        if style == "binance":
            wallet = (view.isolated_margin_coin if pos.margin_mode == "isolated"
                      else ex.wallet_balance(account.account_id, pos.coin))
            balance = view.margin_balance_coin
            ratio = view.maint_margin_coin / balance if balance > 0 else ZERO
            score = max(ZERO, upnl) / max(Decimal(1), wallet) * ratio
        else:
            pnl_pct = upnl / coin_value(pos.qty_contracts, pos.entry_price_usd, cs)
            leverage = _effective_leverage(view, pos, cs, bitmex=style == "bitmex")
            score = pnl_pct * leverage if pnl_pct > 0 else pnl_pct / leverage
        ranked.append((account.account_id, pos, score))
    ranked.sort(key=lambda r: -r[2])  # stable: ties keep account creation order
    return ranked


_UNBOUNDED_LEVERAGE = Decimal(10**6)  # a position at or past bankruptcy: first in the queue


def _effective_leverage(view: risk.PositionRisk, pos: Position, cs: Decimal, *,
                        bitmex: bool) -> Decimal:
    if not bitmex:
        balance = view.margin_balance_coin
        return view.value_coin / balance if balance > 0 else _UNBOUNDED_LEVERAGE
    bankrupt = view.bankruptcy_price_usd
    if bankrupt is None:
        return Decimal(1)  # cannot go bankrupt (BitMEX: leverage 1)
    if not bankrupt.is_finite():
        return _UNBOUNDED_LEVERAGE
    # BitMEX values are signed (a long's value is negative): mark value − bankrupt value =
    # side · (N/BP − N/MP), positive while the position is solvent.
    gap = pos.side * (coin_value(pos.qty_contracts, bankrupt, cs) - view.value_coin)
    return view.value_coin / gap if gap > 0 else _UNBOUNDED_LEVERAGE
