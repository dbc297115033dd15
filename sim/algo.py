"""Conditional (algo) orders: stop-market, stop-limit, take-profit (market/limit).

They wait off the book until the mark price (``MARK_PRICE``) or the last price
(``CONTRACT_PRICE``) reaches the trigger; then the order they carry is placed like any other.
Stops fire on an adverse move (BUY at or above, SELL at or below the trigger), take-profits
on a favourable one. Binance refuses one that would fire at once (−2021); so does perpsim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from perpsim.sim.errors import (
    DuplicateClientOrderId,
    InvalidInput,
    InvalidQuantity,
    OrderNotFound,
    OrderRejected,
    PerpsimError,
    WouldTriggerImmediately,
)
from perpsim.sim.money import check_tick, filtered_price, positive_quantity
from perpsim.sim.orders import SIDES

if TYPE_CHECKING:
    from perpsim.sim.exchange import Exchange
    from perpsim.sim.watch import Levels

AlgoType = Literal["STOP_MARKET", "STOP", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"]
ALGO_TYPES: tuple[AlgoType, ...] = ("STOP_MARKET", "STOP", "TAKE_PROFIT", "TAKE_PROFIT_MARKET")
WORKING_TYPES = ("MARK_PRICE", "CONTRACT_PRICE")
_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


@dataclass(slots=True)
class AlgoOrder:
    """A conditional order waiting for its trigger."""

    algo_id: int
    client_algo_id: str
    account_id: str
    symbol: str
    side: str
    type: AlgoType
    qty_contracts: int
    trigger_price_usd: Decimal
    price_usd: Decimal | None
    working_type: str
    reduce_only: bool
    close_position: bool
    time_in_force: str
    created_ms: int
    updated_ms: int
    status: str = "NEW"  # NEW → TRIGGERED | CANCELED | EXPIRED
    order_id: int | None = None  # the order placed when it fired
    reason: str = ""
    position_side: str = "BOTH"  # hedge mode: the leg it opens or closes

    @property
    def is_open(self) -> bool:
        """True while waiting for the trigger."""
        return self.status == "NEW"

    @property
    def fires_below(self) -> bool:
        """True if it fires when the price falls to the trigger (SELL stop, BUY take-profit)."""
        stop = self.type in ("STOP", "STOP_MARKET")
        return (self.side == "SELL") == stop

    def reached(self, price: Decimal) -> bool:
        """Whether ``price`` has reached the trigger."""
        return price <= self.trigger_price_usd if self.fires_below else (
            price >= self.trigger_price_usd)


def place_algo(ex: Exchange, account_id: str, symbol: object, side: object, algo_type: object,
               quantity: object, trigger_price: object, price: object = None, *,
               working_type: object = "CONTRACT_PRICE", reduce_only: object = False,
               close_position: object = False, time_in_force: object = "GTC",
               client_algo_id: object = None, position_side: object = None) -> AlgoOrder:
    """Validate and store a conditional order (nothing changes if any check fails)."""
    from perpsim.sim.trading import position_side_for

    account = ex.account(account_id)
    inst = ex.instrument(symbol)
    if side not in SIDES:
        raise InvalidInput(f"side must be BUY or SELL, got {side!r}")
    if algo_type not in ALGO_TYPES:
        raise InvalidInput(f"conditional type must be one of {', '.join(ALGO_TYPES)}, got "
                           f"{algo_type!r}")
    if working_type not in WORKING_TYPES:
        raise InvalidInput(f"workingType must be MARK_PRICE or CONTRACT_PRICE, got "
                           f"{working_type!r}")
    for name, flag in (("reduceOnly", reduce_only), ("closePosition", close_position)):
        if not isinstance(flag, bool):
            raise InvalidInput(f"{name} must be true or false, got {flag!r}")
    leg = position_side_for(account, position_side, bool(reduce_only))
    if time_in_force not in ("GTC", "IOC", "FOK", "GTX"):
        raise InvalidInput(f"timeInForce must be GTC, IOC, FOK or GTX, got {time_in_force!r}")
    trigger = check_tick(filtered_price(trigger_price, inst.tick_size, "triggerPrice"),
                         inst.tick_size, "triggerPrice")
    limit = None
    if algo_type in ("STOP", "TAKE_PROFIT"):
        if price is None:
            raise InvalidInput(f"a {algo_type} order needs a price")
        limit = check_tick(filtered_price(price, inst.tick_size, "price"), inst.tick_size, "price")
    elif price is not None:
        raise InvalidInput(f"a {algo_type} order takes no price")
    if close_position:
        qty = 0
    else:
        value = positive_quantity(quantity, "quantity")
        if value != value.to_integral_value():
            raise InvalidQuantity(f"quantity must be a whole number of contracts, got {value}")
        qty = int(value)
        if qty % inst.lot_size:
            raise InvalidQuantity(f"quantity {qty} is not a multiple of the lot size "
                                  f"{inst.lot_size}")
        if qty > inst.max_qty:
            raise InvalidQuantity(f"quantity {qty} is above the maximum {inst.max_qty}")
    if client_algo_id is None:
        client_algo_id = ""  # named after the algo id once every check has passed
    elif not isinstance(client_algo_id, str) or not _CLIENT_ID.fullmatch(client_algo_id):
        raise InvalidInput(f"clientAlgoId must match {_CLIENT_ID.pattern}")
    order = AlgoOrder(
        algo_id=0, client_algo_id=client_algo_id, account_id=account_id, symbol=inst.symbol,
        side=str(side), type=algo_type, qty_contracts=qty, trigger_price_usd=trigger,
        price_usd=limit, working_type=str(working_type),
        # Hedge mode: the leg says whether it closes, so reduceOnly is never set there.
        reduce_only=bool(reduce_only or close_position) and leg == "BOTH",
        close_position=bool(close_position),
        time_in_force=str(time_in_force), created_ms=ex.now_ms,
        updated_ms=ex.now_ms, position_side=leg,
    )
    if order.reached(_price(ex, order)):
        raise WouldTriggerImmediately("Order would immediately trigger.")
    if client_algo_id and any(o.is_open and o.account_id == account_id
                              and o.client_algo_id == client_algo_id
                              for o in ex.algo_orders.values()):
        raise DuplicateClientOrderId(
            f"clientAlgoId {client_algo_id!r} is already used by an open order")
    order.algo_id = ex.next_id("order")
    order.client_algo_id = order.client_algo_id or f"perpsim-algo-{order.algo_id}"
    ex.algo_orders[order.algo_id] = order
    _journal(ex, order)
    ex.watcher.replan()
    return order


def cancel_algo(ex: Exchange, account_id: str, algo_id: object = None,
                client_algo_id: object = None) -> AlgoOrder:
    """Cancel an open conditional order of the account."""
    order = find_algo(ex, account_id, algo_id, client_algo_id)
    if not order.is_open:
        raise OrderNotFound(f"conditional order {order.algo_id} is {order.status}")
    order.status, order.updated_ms = "CANCELED", ex.now_ms
    _journal(ex, order)
    ex.watcher.replan()
    return order


def find_algo(ex: Exchange, account_id: str, algo_id: object = None,
              client_algo_id: object = None) -> AlgoOrder:
    """The account's conditional order by id or client id (OrderNotFound otherwise)."""
    ex.account(account_id)
    found: AlgoOrder | None = None
    if algo_id is not None:
        try:
            found = ex.algo_orders.get(int(str(algo_id)))
        except ValueError:
            raise InvalidInput(f"algoId must be an integer, got {algo_id!r}") from None
    elif client_algo_id is not None:
        found = next((o for o in reversed(ex.algo_orders.values())
                      if o.account_id == account_id and o.client_algo_id == client_algo_id), None)
    else:
        raise InvalidInput("either algoId or clientAlgoId must be sent")
    if found is None or found.account_id != account_id:
        raise OrderNotFound("Order does not exist.")
    return found


def _price(ex: Exchange, order: AlgoOrder) -> Decimal:
    if order.working_type == "MARK_PRICE":
        return ex.mark_price(order.symbol)
    return ex.last_price(order.symbol)


def fire_due(ex: Exchange) -> None:
    """Place the orders of every conditional order whose trigger the market reached."""
    from perpsim.sim import trading

    for order in [o for o in ex.algo_orders.values() if o.is_open]:
        if order.symbol not in ex.pricers or not order.reached(_price(ex, order)):
            continue
        order.status, order.updated_ms = "TRIGGERED", ex.now_ms
        qty = order.qty_contracts
        if order.close_position:
            qty = abs(ex.position(order.account_id, order.symbol,
                                  order.position_side).qty_contracts)
        market = order.type in ("STOP_MARKET", "TAKE_PROFIT_MARKET")
        try:
            if qty == 0:
                raise OrderRejected("no position left to close")
            placed = trading.place_order(
                ex, order.account_id, order.symbol, order.side, "MARKET" if market else "LIMIT",
                qty, None if market else order.price_usd,
                time_in_force=None if market else order.time_in_force,
                reduce_only=order.reduce_only, client_order_id=order.client_algo_id,
                position_side=order.position_side)
            order.order_id = placed.order_id
        except PerpsimError as exc:
            order.status, order.reason = "EXPIRED", str(exc)
        _journal(ex, order)


def add_levels(ex: Exchange, symbol: str, levels: Levels) -> None:
    """Tell the watcher where the symbol's open conditional orders fire."""
    for order in ex.algo_orders.values():
        if not order.is_open or order.symbol != symbol:
            continue
        if order.working_type == "MARK_PRICE":
            levels.add_mark(order.trigger_price_usd, order.fires_below)
        else:
            levels.add_last(order.trigger_price_usd, order.fires_below)


def _journal(ex: Exchange, order: AlgoOrder) -> None:
    ex.journal.append(
        ex.now_ms, "algo.update", account_id=order.account_id, symbol=order.symbol,
        algo_id=order.algo_id, client_algo_id=order.client_algo_id, side=order.side,
        algo_type=order.type, qty=order.qty_contracts, trigger_price=order.trigger_price_usd,
        price=order.price_usd, working_type=order.working_type, reduce_only=order.reduce_only,
        close_position=order.close_position, status=order.status, order_id=order.order_id,
        reason=order.reason, position_side=order.position_side,
    )
