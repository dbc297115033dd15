"""Private COIN-M order routes: /order, /openOrder(s), /allOrders, /allOpenOrders, /algoOrder,
/openAlgoOrders, /allAlgoOrders, /algoOpenOrders and /userTrades.

Dull on purpose: authenticate (``Signed``), read typed parameters, call sim/trading.py or
sim/algo.py, serialise with account_wire. An account sees and cancels only its own orders:
another account's id answers exactly like a missing one (−2013, or −2011 when cancelling).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from perpsim.api.binance_coinm import account_wire as wire
from perpsim.api.binance_coinm.account_auth import Call, Signed
from perpsim.api.binance_coinm.errors import AlgoOrderRequired, to_binance_error
from perpsim.api.binance_coinm.market_info import MAX_NUM_ORDERS
from perpsim.api.binance_coinm.signing import MissingParameter
from perpsim.sim import algo, trading
from perpsim.sim.algo import ALGO_TYPES, WORKING_TYPES, AlgoOrder
from perpsim.sim.errors import InvalidInput, InvalidPrice, OrderNotFound, TooManyOpenOrders
from perpsim.sim.orders import ORDER_TYPES, SIDES, TIMES_IN_FORCE, Order

router = APIRouter(prefix="/dapi/v1", tags=["binance-coinm-orders"])

RESP_TYPES = ("ACK", "RESULT")
CONDITIONAL_TYPES = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                     "TRAILING_STOP_MARKET")


def _cancel_error(exc: OrderNotFound) -> JSONResponse:
    status, body = to_binance_error(exc, operation="cancel")
    return JSONResponse(body, status_code=status)


def _order_ref(call: Call) -> tuple[int | None, str | None]:
    """``orderId`` / ``origClientOrderId``: at least one is mandatory."""
    order_id = call.params.integer("orderId")
    client_id = call.params.get("origClientOrderId")
    if order_id is None and client_id is None:
        raise MissingParameter("orderId", "Param 'origClientOrderId' or 'orderId' must be sent, "
                               "but both were empty/null!")
    return order_id, client_id


def _check_open_order_limit(open_orders: int, symbol: str, what: str) -> None:
    """The MAX_NUM_ORDERS filter exchangeInfo advertises: at most 200 open per symbol."""
    if open_orders >= MAX_NUM_ORDERS:
        raise TooManyOpenOrders(f"{open_orders} {what} are open on {symbol}; the limit is "
                                f"{MAX_NUM_ORDERS} (MAX_NUM_ORDERS)")


def _find(call: Call) -> Order:
    inst = call.params.instrument()
    order_id, client_id = _order_ref(call)
    return trading.find_order(call.ex, call.account_id, inst.symbol, order_id,
                              None if order_id is not None else client_id)


# ---- plain orders -------------------------------------------------------------------------------
@router.post("/order")
async def new_order(call: Signed) -> dict[str, Any]:
    """Place a LIMIT or MARKET order (conditional types belong to /algoOrder)."""
    p = call.params
    inst = p.instrument()
    side = p.choice("side", SIDES, required=True, message="Invalid side.")
    order_type = p.required("type")
    if order_type in CONDITIONAL_TYPES:
        raise AlgoOrderRequired(f"order type {order_type} belongs to /dapi/v1/algoOrder")
    p.choice("type", ORDER_TYPES, message="Invalid orderType.")
    quantity = p.decimal("quantity", required=True)
    limit_price = p.decimal("price", required=order_type == "LIMIT")
    if order_type == "MARKET" and limit_price is not None:
        raise InvalidPrice("a MARKET order takes no price")  # −1106, as Binance
    tif = p.choice("timeInForce", TIMES_IN_FORCE, message="Invalid timeInForce.")
    reduce_only = p.boolean("reduceOnly")
    resp_type = p.choice("newOrderRespType", RESP_TYPES, default="ACK",
                         message="Invalid newOrderRespType.")
    position_side = p.position_side()
    if p.boolean("closePosition"):
        raise InvalidInput("closePosition is only allowed on conditional orders (/algoOrder).")
    _check_open_order_limit(len(call.ex.books[inst.symbol].open_orders(call.account_id)),
                            inst.symbol, "orders")
    order = trading.place_order(
        call.ex, call.account_id, inst.symbol, side, order_type, quantity, limit_price,
        time_in_force=tif, reduce_only=reduce_only, client_order_id=p.get("newClientOrderId"),
        position_side=position_side)
    return wire.order_json(call.ex, order, ack=resp_type == "ACK")


@router.get("/order")
async def query_order(call: Signed) -> dict[str, Any]:
    """One order of the caller, any status."""
    return wire.order_json(call.ex, _find(call))


@router.get("/openOrder")
async def query_open_order(call: Signed) -> dict[str, Any]:
    """One open order of the caller (−2013 once it is filled or cancelled)."""
    order = _find(call)
    if not order.is_open:
        raise OrderNotFound("Order does not exist.")
    return wire.order_json(call.ex, order)


@router.delete("/order", response_model=None)
async def cancel_order(call: Signed) -> dict[str, Any] | JSONResponse:
    """Cancel one open order of the caller (−2011 if it has none such)."""
    inst = call.params.instrument()
    order_id, client_id = _order_ref(call)
    try:
        order = trading.cancel_order(call.ex, call.account_id, inst.symbol, order_id,
                                     None if order_id is not None else client_id)
    except OrderNotFound as exc:
        return _cancel_error(exc)
    return wire.order_json(call.ex, order)


def _pair_filter(call: Call, *, required: bool) -> tuple[str | None, str | None]:
    """``symbol`` or ``pair``: checked against the profile; one is mandatory if ``required``."""
    inst = call.params.optional_instrument()
    pair = call.params.get("pair")
    if pair is not None and all(i.pair != pair for i in call.ex.profile.instruments):
        raise InvalidInput("Invalid pair.")
    if required and inst is None and pair is None:
        raise MissingParameter("symbol", "Either symbol or pair must be sent.")
    return (inst.symbol if inst is not None else None), pair


def _matches(order: Order | AlgoOrder, call: Call, symbol: str | None, pair: str | None) -> bool:
    return (order.account_id == call.account_id
            and (symbol is None or order.symbol == symbol)
            and (pair is None or call.ex.instruments[order.symbol].pair == pair))


@router.get("/openOrders")
async def open_orders(call: Signed) -> list[dict[str, Any]]:
    """The caller's open orders (on a symbol or pair, or all)."""
    symbol, pair = _pair_filter(call, required=False)
    orders = [o for book in call.ex.books.values() for o in book.open_orders(call.account_id)
              if _matches(o, call, symbol, pair)]
    return [wire.order_json(call.ex, o) for o in sorted(orders, key=lambda o: o.order_id)]


@router.get("/allOrders")
async def all_orders(call: Signed) -> list[dict[str, Any]]:
    """The caller's orders of every status, oldest first (Binance's windowing and limit)."""
    symbol, pair = _pair_filter(call, required=True)
    from_id = call.params.integer("orderId")
    start, end = call.params.time_range()
    limit = call.params.limit(50, 100)
    rows = [wire.order_json(call.ex, o) for o in call.ex.orders.values()
            if _matches(o, call, symbol, pair) and (from_id is None or o.order_id >= from_id)]
    return wire.select_window(rows, "time", start, end, limit, from_start=from_id is not None)


@router.delete("/allOpenOrders")
async def cancel_all_open_orders(call: Signed) -> dict[str, Any]:
    """Cancel every open order of the caller on a symbol."""
    inst = call.params.instrument()
    trading.cancel_all(call.ex, call.account_id, inst.symbol)
    return {"code": 200, "msg": wire.CANCEL_ALL_MSG}


# ---- conditional (algo) orders ------------------------------------------------------------------
@router.post("/algoOrder")
async def new_algo_order(call: Signed) -> dict[str, Any]:
    """Place a conditional order: STOP_MARKET, STOP, TAKE_PROFIT_MARKET or TAKE_PROFIT."""
    p = call.params
    inst = p.instrument()
    p.choice("algoType", ("CONDITIONAL",), required=True, message="Invalid algoType.")
    side = p.choice("side", SIDES, required=True, message="Invalid side.")
    algo_type = p.choice("type", ALGO_TYPES, required=True, message="Invalid orderType.")
    close_position = p.boolean("closePosition")
    quantity = p.decimal("quantity", required=not close_position)
    limit_price = p.decimal("price")
    trigger = p.decimal("triggerPrice", required=True)
    working_type = p.choice("workingType", WORKING_TYPES, default="CONTRACT_PRICE",
                            message="Invalid workingType.")
    tif = p.choice("timeInForce", TIMES_IN_FORCE, default="GTC",
                   message="Invalid timeInForce.")
    reduce_only = p.boolean("reduceOnly")
    p.boolean("priceProtect")
    p.choice("newOrderRespType", RESP_TYPES, default="ACK", message="Invalid newOrderRespType.")
    position_side = p.position_side()
    _check_open_order_limit(sum(1 for o in call.ex.algo_orders.values() if o.is_open and
                                o.account_id == call.account_id and o.symbol == inst.symbol),
                            inst.symbol, "conditional orders")
    order = algo.place_algo(
        call.ex, call.account_id, inst.symbol, side, algo_type, quantity, trigger, limit_price,
        working_type=working_type, reduce_only=reduce_only, close_position=close_position,
        time_in_force=tif, client_algo_id=p.get("clientAlgoId"), position_side=position_side)
    return wire.algo_json(call.ex, order)


def _find_algo(call: Call) -> AlgoOrder:
    inst = call.params.optional_instrument()
    algo_id = call.params.integer("algoId")
    client_id = call.params.get("clientAlgoId")
    if algo_id is None and client_id is None:
        raise MissingParameter("algoId", "Param 'clientAlgoId' or 'algoId' must be sent, "
                               "but both were empty/null!")
    order = algo.find_algo(call.ex, call.account_id, algo_id,
                           None if algo_id is not None else client_id)
    if inst is not None and order.symbol != inst.symbol:
        raise OrderNotFound("Order does not exist.")
    return order


@router.get("/algoOrder")
async def query_algo_order(call: Signed) -> dict[str, Any]:
    """One conditional order of the caller, any status."""
    return wire.algo_json(call.ex, _find_algo(call))


@router.delete("/algoOrder", response_model=None)
async def cancel_algo_order(call: Signed) -> dict[str, Any] | JSONResponse:
    """Cancel one waiting conditional order of the caller."""
    try:
        order = _find_algo(call)
        algo.cancel_algo(call.ex, call.account_id, order.algo_id)
    except OrderNotFound as exc:
        return _cancel_error(exc)
    return {"algoId": order.algo_id, "clientAlgoId": order.client_algo_id, "code": "200",
            "msg": "success"}


@router.get("/openAlgoOrders")
async def open_algo_orders(call: Signed) -> list[dict[str, Any]]:
    """The caller's waiting conditional orders (on a symbol, or all)."""
    symbol, pair = _pair_filter(call, required=False)
    return [wire.algo_json(call.ex, o) for o in call.ex.algo_orders.values()
            if o.is_open and _matches(o, call, symbol, pair)]


@router.get("/allAlgoOrders")
async def all_algo_orders(call: Signed) -> list[dict[str, Any]]:
    """The caller's conditional orders of every status, oldest first."""
    symbol, pair = _pair_filter(call, required=True)
    from_id = call.params.integer("algoId")
    start, end = call.params.time_range()
    limit = call.params.limit(100, 100)
    rows = [wire.algo_json(call.ex, o) for o in call.ex.algo_orders.values()
            if _matches(o, call, symbol, pair) and (from_id is None or o.algo_id >= from_id)]
    return wire.select_window(rows, "createTime", start, end, limit,
                              from_start=from_id is not None)


@router.delete("/algoOpenOrders")
async def cancel_all_algo_orders(call: Signed) -> dict[str, Any]:
    """Cancel every waiting conditional order of the caller on a symbol."""
    inst = call.params.instrument()
    for order in [o for o in call.ex.algo_orders.values()
                  if o.is_open and o.account_id == call.account_id and o.symbol == inst.symbol]:
        algo.cancel_algo(call.ex, call.account_id, order.algo_id)
    return {"code": 200, "msg": wire.CANCEL_ALL_MSG}


# ---- trades -------------------------------------------------------------------------------------
@router.get("/userTrades")
async def user_trades(call: Signed) -> list[dict[str, Any]]:
    """The caller's fills, oldest first (symbol or pair mandatory)."""
    symbol, pair = _pair_filter(call, required=True)
    order_id = call.params.integer("orderId")
    from_id = call.params.integer("fromId")
    start, end = call.params.time_range()
    if from_id is not None and (start is not None or end is not None):
        raise InvalidInput("fromId cannot be sent with startTime or endTime.")
    limit = call.params.limit(50, 1000)
    rows = []
    for event in wire.fills_of(call.ex, call.account_id):
        row = wire.trade_json(call.ex, event)
        if ((symbol is None or row["symbol"] == symbol)
                and (pair is None or row["pair"] == pair)
                and (order_id is None or row["orderId"] == order_id)
                and (from_id is None or row["id"] >= from_id)):
            rows.append(row)
    return wire.select_window(rows, "time", start, end, limit,
                              from_start=from_id is not None or order_id is not None)
