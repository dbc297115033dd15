"""Orders and fills: validation, margin checks, matching through the book, applying fills.

The book *decides* fills (``plan_match``); this module checks the account can afford them, then
*applies* them through inverse accounting and the ledger. A rejected order changes nothing:
every check runs before the first mutation.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from perpsim.sim import algo, funding_rows
from perpsim.sim.accounts import POSITION_SIDES, PositionSide
from perpsim.sim.errors import (
    InsufficientFunds,
    InvalidInput,
    InvalidPositionSide,
    InvalidQuantity,
    InvalidState,
    LeverageTooHigh,
    MarketPriceOutsideBand,
    OrderNotFound,
    PositionSideMismatch,
    PositionTooLargeForLeverage,
    PriceAboveBand,
    PriceBelowBand,
    ReduceOnlyConflict,
    ReduceOnlyRejected,
)
from perpsim.sim.inverse import apply_fill as inverse_fill
from perpsim.sim.inverse import coin_value, fee_coin
from perpsim.sim.ledger import (
    fees_account,
    insurance_account,
    market_account,
    wallet_account,
)
from perpsim.sim.margin import check_leverage, initial_margin_coin
from perpsim.sim.money import positive_price, positive_quantity, quantize
from perpsim.sim.orders import (
    IOC_UNFILLED,
    ORDER_TYPES,
    SIDES,
    TIMES_IN_FORCE,
    Order,
    Side,
    TimeInForce,
    check_client_order_id,
    check_order,
)
from perpsim.sim.risk import cross_available

if TYPE_CHECKING:
    from perpsim.sim.accounts import Account, Position
    from perpsim.sim.exchange import Exchange
    from perpsim.sim.profile import Instrument

# Binance's rule for newClientOrderId.
_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


def place_order(ex: Exchange, account_id: str, symbol: object, side: object, order_type: object,
                quantity: object, price: object = None, *, time_in_force: object = None,
                reduce_only: object = False, client_order_id: object = None,
                position_side: object = None) -> Order:
    """Validate, margin-check, match and apply an order; returns its record.

    ``position_side``: None or BOTH in one-way mode; LONG or SHORT in hedge mode, where a BUY
    on LONG (SELL on SHORT) opens and the other side closes that leg (Binance positionSide).
    """
    account = ex.account(account_id)
    inst = ex.instrument(symbol)
    book = ex.refresh_book(inst.symbol)
    order = _build_order(ex, account, inst, side, order_type, quantity, price, time_in_force,
                         reduce_only, client_order_id)
    order.position_side = position_side_for(account, position_side, order.reduce_only)
    plan = book.plan_match(order)
    if ex.profile.unfillable_tif == "reject" or plan.rejection is None:
        plan.raise_if_rejected()
    _check_price_band(ex, inst, order, plan.fills)
    pos = account.position(inst.symbol, inst.margin_asset, order.position_side)
    _check_reduce_only(order, pos)
    _check_hedge_close(ex, order, pos)
    _check_margin(ex, account, inst, pos, order, plan.fills)
    # -- every check passed: from here on, apply ---------------------------------------------
    order.order_id = ex.next_id("order")
    order.seq = ex.next_id("seq")
    order.client_order_id = order.client_order_id or f"perpsim-{order.order_id}"
    ex.orders[order.order_id] = order
    _journal_order(ex, order, "NEW")
    if plan.rejection is not None:  # unfillable_tif "cancel": accepted, then cancelled at once
        _expire(ex, order, plan.rejection.code)
        return order
    book.apply_match(plan, ex.now_ms)
    for fill in plan.fills:
        trade_id = record_trade(ex, inst, fill.price_usd, fill.qty_contracts, order.side)
        _execute(ex, inst, order, fill.qty_contracts, fill.price_usd, trade_id, taker=True)
        if fill.maker_order_id is not None:
            execute_maker(ex, inst, fill.maker_order_id, fill.qty_contracts, fill.price_usd,
                          trade_id)
    if plan.action == "REST":
        book.add(order)
    elif plan.action == "EXPIRE" and order.remaining_contracts:
        _expire(ex, order, IOC_UNFILLED if order.filled_contracts == 0 else "")
    ex.watcher.replan()
    return order


def _expire(ex: Exchange, order: Order, reason: str) -> None:
    """The venue cancels what is left of a new order that may not rest (``reason``: one of
    CANCEL_REASONS, or "" for an IOC remainder after fills)."""
    order.status = "EXPIRED"
    order.updated_ms = ex.now_ms
    order.cancel_reason = reason
    _journal_order(ex, order, "EXPIRED")


def _build_order(ex: Exchange, account: Account, inst: Instrument, side: object,
                 order_type: object, quantity: object, price: object, time_in_force: object,
                 reduce_only: object, client_order_id: object) -> Order:
    if side not in SIDES:
        raise InvalidInput(f"side must be BUY or SELL, got {side!r}")
    if order_type not in ORDER_TYPES:
        raise InvalidInput(f"order type must be one of {', '.join(ORDER_TYPES)}, got "
                           f"{order_type!r}")
    tif: TimeInForce = "IOC"
    if order_type == "MARKET":
        if price is not None:
            raise InvalidInput("a MARKET order takes no price")
    else:
        tif = "GTC" if time_in_force is None else time_in_force  # type: ignore[assignment]
        if tif not in TIMES_IN_FORCE:
            raise InvalidInput(f"timeInForce must be one of {', '.join(TIMES_IN_FORCE)}, got "
                               f"{time_in_force!r}")
        if price is None:
            raise InvalidInput("a LIMIT order needs a price")
    if not isinstance(reduce_only, bool):
        raise InvalidInput(f"reduceOnly must be true or false, got {reduce_only!r}")
    if client_order_id is None:
        client_order_id = ""  # named after the order id once every check has passed
    elif not isinstance(client_order_id, str) or not _CLIENT_ID.fullmatch(client_order_id):
        raise InvalidInput(f"client order id must match {_CLIENT_ID.pattern}, got "
                           f"{client_order_id!r}")
    qty = positive_quantity(quantity, "quantity")
    if qty != qty.to_integral_value():
        raise InvalidQuantity(f"quantity must be a whole number of contracts, got {quantity!r}")
    order = Order(
        order_id=0, client_order_id=client_order_id, account_id=account.account_id,
        symbol=inst.symbol, side=side, type=order_type, qty_contracts=int(qty),
        price_usd=None if price is None else _price(price), time_in_force=tif,
        reduce_only=reduce_only, created_ms=ex.now_ms, updated_ms=ex.now_ms, seq=0,
    )
    check_order(order, inst)
    check_client_order_id(order, ex.books[inst.symbol].find_client_order(
        account.account_id, client_order_id))
    return order


def position_side_for(account: Account, position_side: object,
                      reduce_only: bool) -> PositionSide:
    """The order's position side for the account's mode (Binance -4060 / -4061 / -1106)."""
    if position_side is not None and position_side not in POSITION_SIDES:
        raise InvalidPositionSide(f"positionSide must be BOTH, LONG or SHORT, got "
                                  f"{position_side!r}")
    if not account.dual_side_position:
        if position_side not in (None, "BOTH"):
            raise PositionSideMismatch(f"positionSide {position_side} needs hedge mode; this "
                                       "account is in one-way mode (send BOTH or nothing)")
        return "BOTH"
    if position_side not in ("LONG", "SHORT"):
        raise PositionSideMismatch("in hedge mode every order needs positionSide LONG or SHORT, "
                                   f"got {position_side!r}")
    if reduce_only:
        # Binance: "reduceOnly ... Cannot be sent in Hedge Mode" — the side says it.
        raise ReduceOnlyConflict("reduceOnly cannot be sent in hedge mode: a SELL on LONG or a "
                                 "BUY on SHORT closes")
    return "LONG" if position_side == "LONG" else "SHORT"


def _check_hedge_close(ex: Exchange, order: Order, pos: Position) -> None:
    """A hedge-mode order closing a leg may close at most what the leg holds, counting the
    leg's other open closing orders (Binance -2022)."""
    if pos.position_side == "BOTH" or order.sign == pos.leg_sign:
        return
    book = ex.books[order.symbol]
    pending = sum(o.remaining_contracts for o in book.open_orders(order.account_id)
                  if o.position_side == pos.position_side and o.sign == order.sign)
    if order.qty_contracts + pending > abs(pos.qty_contracts):
        raise ReduceOnlyRejected(
            f"{order.side} on {pos.position_side} closes that leg: {order.qty_contracts} "
            f"contracts (plus {pending} in open closing orders) exceed the "
            f"{abs(pos.qty_contracts)} it holds")


def trim_closing_orders(ex: Exchange, account_id: str, pos: Position) -> list[Order]:
    """Cancel a hedge leg's resting closing orders, newest first, until they fit in what the
    leg still holds (after ADL shrank it): a closing fill never carries a leg through zero."""
    if pos.position_side == "BOTH":
        return []
    closing = [o for o in ex.books[pos.symbol].open_orders(account_id)
               if o.position_side == pos.position_side and o.sign != pos.leg_sign]
    pending = sum(o.remaining_contracts for o in closing)
    canceled = []
    for order in sorted(closing, key=lambda o: o.seq, reverse=True):
        if pending <= abs(pos.qty_contracts):
            break
        _cancel(ex, order, "CANCELED")
        pending -= order.remaining_contracts
        canceled.append(order)
    if canceled:
        ex.watcher.replan()
    return canceled


def _check_price_band(ex: Exchange, inst: Instrument, order: Order, fills: tuple) -> None:
    """Binance PERCENT_PRICE against the mark: limit buys ≤ mark × up, limit sells ≥ mark ×
    down (-4016 / -4024); a market order whose best counter price is outside is refused
    (-4131). Only the best price is checked: a market sweep is not cut at the band."""
    band = ex.profile.price_band
    if band is None:
        return
    mark = ex.mark_price(inst.symbol)
    cap = (mark * band.multiplier_up).quantize(inst.tick_size, rounding=ROUND_FLOOR)
    floor = (mark * band.multiplier_down).quantize(inst.tick_size, rounding=ROUND_CEILING)
    if order.type == "MARKET":
        best = fills[0].price_usd if fills else None
        if best is not None and (best > cap if order.side == "BUY" else best < floor):
            raise MarketPriceOutsideBand(
                f"the best {'ask' if order.side == 'BUY' else 'bid'} {best} is outside the "
                f"price band [{floor}, {cap}] around the mark {mark}")
        return
    if order.price_usd is None:
        return
    if order.side == "BUY" and order.price_usd > cap:
        raise PriceAboveBand(f"limit price {order.price_usd} is above {cap} (mark {mark} × "
                             f"{band.multiplier_up})")
    if order.side == "SELL" and order.price_usd < floor:
        raise PriceBelowBand(f"limit price {order.price_usd} is below {floor} (mark {mark} × "
                             f"{band.multiplier_down})")


def _price(price: object) -> Decimal:
    return positive_price(price, "price")  # the price filter is checked by check_order


def _check_reduce_only(order: Order, pos: Position) -> None:
    if not order.reduce_only:
        return
    if pos.qty_contracts == 0 or order.sign == pos.side:
        raise ReduceOnlyRejected(
            f"reduce-only {order.side} would open or increase the {order.symbol} position "
            f"({pos.qty_contracts} contracts)"
        )
    if order.qty_contracts > abs(pos.qty_contracts):
        raise ReduceOnlyRejected(
            f"reduce-only {order.side} of {order.qty_contracts} contracts exceeds the position "
            f"of {abs(pos.qty_contracts)}"
        )


def opening_contracts(pos: Position, sign: int, qty: int) -> int:
    """How many of ``qty`` contracts on side ``sign`` would open or grow the position."""
    if pos.position_side != "BOTH":  # a hedge leg: its own side opens, the other only closes
        return qty if sign == pos.leg_sign else 0
    if pos.qty_contracts == 0 or sign == pos.side:
        return qty
    return max(0, qty - abs(pos.qty_contracts))


def _check_margin(ex: Exchange, account: Account, inst: Instrument, pos: Position,
                  order: Order, fills: tuple) -> None:
    opening = opening_contracts(pos, order.sign, order.qty_contracts)
    if opening == 0:
        return
    if order.price_usd is not None:
        est_price = order.price_usd
    elif fills:
        est_price = max((f.price_usd for f in fills), key=lambda p: p * order.sign)
    else:
        est_price = ex.mark_price(inst.symbol)
    new_qty = pos.qty_contracts + order.sign * order.qty_contracts
    try:
        check_leverage(inst.brackets, coin_value(new_qty, est_price, inst.contract_size_usd),
                       pos.leverage)
    except LeverageTooHigh as exc:  # the order is too big for the leverage, not the reverse
        raise PositionTooLargeForLeverage(str(exc)) from None
    need = initial_margin_coin(opening, est_price, inst.contract_size_usd, pos.leverage)
    need += max(Decimal(0), fee_coin(order.qty_contracts, inst.contract_size_usd, est_price,
                                     ex.profile.fees.taker_rate))
    available = cross_available(ex, account.account_id, inst.margin_asset)
    if need > available:
        raise InsufficientFunds(
            f"margin is insufficient: the order needs {need:.8f} {inst.margin_asset} "
            f"(initial margin at {pos.leverage}x plus fee), available {available:.8f}"
        )


def record_trade(ex: Exchange, inst: Instrument, price: Decimal, qty: int,
                 taker_side: str) -> int:
    """Print a public trade (one per match) and make it the last price; its trade id."""
    from perpsim.sim.exchange import Trade

    trade_id = ex.next_id("trade")
    state = ex.states[inst.symbol]
    state.last_trade_price = price
    state.last_trade_tape = ex.tape_position(inst.symbol)
    state.trades.append(Trade(trade_id, inst.symbol, price, qty, taker_side == "SELL",
                              ex.now_ms))
    return trade_id


def execute_maker(ex: Exchange, inst: Instrument, order_id: int, qty: int, price: Decimal,
                  trade_id: int | None = None) -> None:
    """Apply a fill to a resting user order the book already filled (it was the maker)."""
    if trade_id is None:
        trade_id = ex.states[inst.symbol].trades[-1].trade_id
    _execute(ex, inst, ex.orders[order_id], qty, price, trade_id, taker=False,
             order_already_filled=True)


def _execute(ex: Exchange, inst: Instrument, order: Order, qty: int, price: Decimal,
             trade_id: int, *, taker: bool, order_already_filled: bool = False) -> None:
    """Apply one fill of ``order``: its record, the position, PnL, fee, margin, journal."""
    if not order_already_filled:
        order.apply_fill(qty, price, inst.contract_size_usd, ex.now_ms)
    rate = ex.profile.fees.taker_rate if taker else ex.profile.fees.maker_rate
    realised, fee = apply_position_fill(ex, order.account_id, inst, order.sign * qty, price,
                                        rate, f"order:{order.order_id}",
                                        position_side=order.position_side)
    _journal_order(ex, order, "TRADE", trade_id=trade_id, last_qty=qty, last_price=price,
                   realized_pnl=realised, commission=fee, maker=not taker)


def apply_position_fill(ex: Exchange, account_id: str, inst: Instrument, signed_qty: int,
                        price: Decimal, fee_rate: Decimal, ref: str, *,
                        release_margin: bool = True,
                        position_side: PositionSide = "BOTH") -> tuple[Decimal, Decimal]:
    """Move a position by ``signed_qty`` at ``price``; post PnL, fee and margin. (PnL, fee).

    ``release_margin=False`` (a partial liquidation) keeps a reduced isolated position's margin
    with the position instead of returning the closed part's share to the wallet.
    """
    account = ex.account(account_id)
    pos = account.position(inst.symbol, inst.margin_asset, position_side)
    coin = inst.margin_asset
    rule = ex.profile.rounding.coin_rule
    step = ex.profile.rounding.coin_step
    old_qty = pos.qty_contracts
    result = inverse_fill(old_qty, pos.entry_price_usd, signed_qty, price, inst.contract_size_usd,
                          rounding=ex.profile.rounding)
    if pos.leg_sign and result.qty_contracts * pos.leg_sign < 0:
        # A hedge leg never crosses zero; _check_hedge_close keeps closing orders within it.
        raise InvalidState(f"a fill of {signed_qty} would carry the {pos.position_side} leg of "
                           f"{inst.symbol} ({old_qty}) through zero")
    realised = quantize(result.realised_pnl_coin, step, rule)
    fee = quantize(fee_coin(abs(signed_qty), inst.contract_size_usd, price, fee_rate,
                            ex.profile.rounding), step, rule)
    wallet = wallet_account(account_id, coin)
    closed = 0 if old_qty == 0 or (old_qty > 0) == (signed_qty > 0) else min(
        abs(old_qty), abs(signed_qty))
    opened = abs(signed_qty) - closed
    with ex.ledger.transaction():
        if pos.margin_mode == "isolated":
            iso = ex.ledger.open_isolated(account_id, pos.margin_key, coin)
            margin_before = ex.ledger.balance(iso)
            _settle(ex, coin, realised, iso, "realized_pnl", ref)
            if closed and (release_margin or result.qty_contracts == 0):
                balance = ex.ledger.balance(iso)
                if result.qty_contracts == 0 or opened:
                    release = balance
                else:
                    # The part still open keeps its share of the margin it had; the closed
                    # part leaves with its share plus its own realised PnL (a loss beyond that
                    # share is the only thing the rest of the position has to carry).
                    keep = quantize(margin_before * (abs(old_qty) - closed) / abs(old_qty),
                                    step, "up")
                    release = max(Decimal(0), balance - keep)
                if release > 0:
                    ex.ledger.post(iso, wallet, coin, release, "isolated_margin_release", ref,
                                   ex.now_ms)
            if opened:
                im = quantize(initial_margin_coin(opened, price, inst.contract_size_usd,
                                                  pos.leverage), step, "up")
                im = min(im, ex.ledger.balance(wallet))
                if im > 0:
                    ex.ledger.post(wallet, iso, coin, im, "isolated_margin", ref, ex.now_ms)
            _settle(ex, coin, -fee, wallet, "commission", ref, fees=True, fallback=iso)
        else:
            _settle(ex, coin, realised, wallet, "realized_pnl", ref)
            _settle(ex, coin, -fee, wallet, "commission", ref, fees=True)
    pos.qty_contracts = result.qty_contracts
    funding_rows.changed(ex, pos)  # the settlement's cached rows
    pos.entry_price_usd = result.entry_price_usd
    pos.updated_ms = ex.now_ms
    account.update_ms = ex.now_ms
    if pos.qty_contracts == 0:
        pos.margin_call_sent = False
    return realised, fee


def _settle(ex: Exchange, coin: str, amount: Decimal, account_name: str, reason: str, ref: str,
            *, fees: bool = False, fallback: str | None = None) -> None:
    """Credit (amount > 0) or debit (< 0) a user ledger account against the venue.

    Debits come from the account, then ``fallback``; whatever a bankrupt user cannot pay is
    covered by the insurance fund and, past it, by the market counterparty, so no protected
    balance ever goes negative and nothing is created or lost.
    """
    if amount == 0:
        return
    venue = fees_account(coin) if fees and amount < 0 else market_account(coin)
    if amount > 0:
        ex.ledger.post(market_account(coin), account_name, coin, amount, reason, ref, ex.now_ms)
        return
    debit_from(ex, coin, -amount, [account_name, *([fallback] if fallback else [])], venue,
               reason, ref)


def debit_from(ex: Exchange, coin: str, amount: Decimal, sources: list[str], destination: str,
               reason: str, ref: str) -> Decimal:
    """Take ``amount`` from ``sources`` in order, then the insurance fund, then the market;
    returns what the fund and the market had to cover. When the fund itself is being paid,
    what the sources cannot pay is simply not collected."""
    left = uncollected(ex, coin, amount, sources, destination, reason, ref)
    if left <= 0 or destination == insurance_account(coin):
        return Decimal(0)
    covered = left
    fund = insurance_account(coin)
    take = min(left, ex.ledger.balance(fund))
    if take > 0:
        ex.ledger.post(fund, destination, coin, take, f"{reason}_covered", ref, ex.now_ms)
        left -= take
    if left > 0 and destination != market_account(coin):
        ex.ledger.post(market_account(coin), destination, coin, left, f"{reason}_socialised",
                       ref, ex.now_ms)
    ex.journal.append(ex.now_ms, "insurance.cover", coin=coin, amount=covered, reason=reason,
                      ref=ref, fund_paid=take, socialised=covered - take)
    return covered


def uncollected(ex: Exchange, coin: str, amount: Decimal, sources: list[str], destination: str,
                reason: str, ref: str) -> Decimal:
    """Collect what ``sources`` can pay of ``amount`` (nothing covered); what was not paid."""
    paid = Decimal(0)
    for name in sources:
        take = min(amount - paid, ex.ledger.balance(name))
        if take > 0:
            ex.ledger.post(name, destination, coin, take, reason, ref, ex.now_ms)
            paid += take
    return amount - paid


def cancel_order(ex: Exchange, account_id: str, symbol: object, order_id: object = None,
                 client_order_id: object = None) -> Order:
    """Cancel one open order of the account by id or client id."""
    inst = ex.instrument(symbol)
    order = find_order(ex, account_id, inst.symbol, order_id, client_order_id)
    if not order.is_open:
        raise OrderNotFound(f"order {order.order_id} is {order.status}; only open orders cancel")
    _cancel(ex, order, "CANCELED")
    ex.watcher.replan()
    return order


def cancel_all(ex: Exchange, account_id: str, symbol: object) -> list[Order]:
    """Cancel every open order of the account on ``symbol``; the cancelled orders."""
    inst = ex.instrument(symbol)
    ex.account(account_id)
    orders = ex.books[inst.symbol].open_orders(account_id)
    for order in orders:
        _cancel(ex, order, "CANCELED")
    if orders:
        ex.watcher.replan()
    return orders


def _cancel(ex: Exchange, order: Order, status: str) -> None:
    ex.books[order.symbol].remove(order.order_id)
    order.status = "CANCELED" if status == "CANCELED" else "EXPIRED"
    order.updated_ms = ex.now_ms
    _journal_order(ex, order, order.status)


def find_order(ex: Exchange, account_id: str, symbol: str, order_id: object,
               client_order_id: object) -> Order:
    """An order of this account on this symbol, by id or client id (OrderNotFound if not)."""
    ex.account(account_id)
    if order_id is None and client_order_id is None:
        raise InvalidInput("either orderId or origClientOrderId must be sent")
    if order_id is not None:
        if isinstance(order_id, bool) or not isinstance(order_id, int | str):
            raise InvalidInput(f"orderId must be an integer, got {order_id!r}")
        try:
            oid = int(order_id)
        except ValueError:
            raise InvalidInput(f"orderId must be an integer, got {order_id!r}") from None
        order = ex.orders.get(oid)
    else:
        order = next((o for o in reversed(ex.orders.values())
                      if o.account_id == account_id and o.client_order_id == client_order_id),
                     None)
    # Another account's order is reported exactly like a missing one: no information leaks.
    if order is None or order.account_id != account_id or order.symbol != symbol:
        raise OrderNotFound("Order does not exist.")
    return order


def adjust_isolated_margin(ex: Exchange, account_id: str, symbol: object, amount: object,
                           *, add: bool, position_side: object = "BOTH") -> Decimal:
    """Add wallet coin to, or remove it from, an isolated position's margin (a hedge leg's
    with ``position_side`` LONG / SHORT)."""
    pos = ex.position(account_id, symbol, position_side)
    if pos.margin_mode != "isolated" or not pos.is_open:
        raise InvalidInput(f"{pos.symbol} has no open isolated position to adjust margin on")
    value = positive_quantity(amount, "amount")
    step = ex.profile.rounding.coin_step
    if quantize(value, step, "down") != value:
        raise InvalidInput(f"amount {value} has more decimals than the coin step {step}")
    coin = pos.coin
    iso = ex.ledger.open_isolated(account_id, pos.margin_key, coin)
    wallet = wallet_account(account_id, coin)
    if add:
        available = cross_available(ex, account_id, coin)
        if value > available:
            raise InsufficientFunds(f"cannot add {value} {coin}: available balance is "
                                    f"{available}")
        ex.ledger.post(wallet, iso, coin, value, "isolated_margin_add", "transfer", ex.now_ms)
    else:
        from perpsim.sim.risk import removable_isolated_margin

        removable = removable_isolated_margin(ex, account_id, pos)
        if value > removable:
            raise InsufficientFunds(f"cannot remove {value} {coin}: at most {removable} can "
                                    "leave the position without breaking its initial margin")
        ex.ledger.post(iso, wallet, coin, value, "isolated_margin_remove", "transfer", ex.now_ms)
    ex.journal.append(ex.now_ms, "margin.transfer", account_id=account_id, symbol=pos.symbol,
                      position_side=pos.position_side,
                      coin=coin, amount=value if add else -value,
                      isolated_margin=ex.ledger.balance(iso), wallet=ex.ledger.balance(wallet))
    ex.watcher.replan()
    return ex.ledger.balance(iso)


def run_triggers(ex: Exchange) -> None:
    """Resting orders the moved market reached fill (as maker); due algo orders fire."""
    for symbol, book in ex.books.items():
        if symbol not in ex.pricers:
            continue
        plan = book.plan_sweep()
        if not plan.fills:
            continue
        inst = ex.instruments[symbol]
        book.apply_match(plan, ex.now_ms)
        for fill in plan.fills:
            assert fill.maker_order_id is not None
            trade_id = record_trade(ex, inst, fill.price_usd, fill.qty_contracts,
                                    fill.taker_side)
            execute_maker(ex, inst, fill.maker_order_id, fill.qty_contracts, fill.price_usd,
                          trade_id)
    algo.fire_due(ex)


def record_forced_fill(ex: Exchange, account_id: str, inst: Instrument, side: Side, qty: int,
                       price: Decimal, realised: Decimal, fee: Decimal, kind: str,
                       position_side: PositionSide = "BOTH") -> None:
    """Record a fill the venue forced on an account (kind LIQUIDATION or ADL) as a filled
    order of its own, as Binance does (client ids ``autoclose-…`` / ``adl_autoclose-…``), so
    it shows in the account's orders, trades and user stream. Its money is already posted."""
    order_id = ex.next_id("order")
    prefix = "autoclose" if kind == "LIQUIDATION" else "adl_autoclose"
    now = ex.now_ms  # one instant: the time is read once
    order = Order(order_id=order_id, client_order_id=f"{prefix}-{order_id}",
                  account_id=account_id, symbol=inst.symbol, side=side, type="MARKET",
                  qty_contracts=qty, price_usd=None, time_in_force="IOC", reduce_only=True,
                  created_ms=now, updated_ms=now, seq=ex.next_id("seq"),
                  position_side=position_side)
    order.apply_fill(qty, price, inst.contract_size_usd, now)
    ex.orders[order_id] = order
    _journal_order(ex, order, "TRADE", order_type=kind, now=now, trade_id=ex.next_id("trade"),
                   last_qty=qty, last_price=price, realized_pnl=realised, commission=fee,
                   maker=False)


def _journal_order(ex: Exchange, order: Order, execution: str, *, order_type: str | None = None,
                   now: int | None = None, **fill: object) -> None:
    """Journal an ``order.update`` of ``order`` (``now``: the time, if the caller has it)."""
    inst = ex.instruments[order.symbol]
    pos = ex.accounts[order.account_id].position(order.symbol, inst.margin_asset,
                                                 order.position_side)
    ex.journal.append(
        ex.now_ms if now is None else now, "order.update", account_id=order.account_id,
        symbol=order.symbol,
        execution=execution, order_id=order.order_id, client_order_id=order.client_order_id,
        side=order.side, order_type=order_type or order.type, time_in_force=order.time_in_force,
        reduce_only=order.reduce_only, price=order.price_usd, qty=order.qty_contracts,
        filled=order.filled_contracts, avg_price=order.avg_price_usd(inst.contract_size_usd),
        status=order.status, position_qty=pos.qty_contracts, position_entry=pos.entry_price_usd,
        margin_mode=pos.margin_mode, coin=inst.margin_asset, position_side=order.position_side,
        wallet=ex.wallet_balance(order.account_id, inst.margin_asset),
        isolated_wallet=ex.isolated_wallet(order.account_id, pos.margin_key),
        **({"cancel_reason": order.cancel_reason} if order.cancel_reason else {}), **fill,
    )

