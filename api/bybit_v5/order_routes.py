"""Private v5 trading: ``/v5/order/*`` and ``/v5/execution/list``.

Dull on purpose: authenticate (``Private``), read typed parameters, call sim/trading.py or
sim/algo.py, shape with account_wire. A request with ``triggerPrice`` is a conditional order
(the engine's algo orders): ``triggerDirection`` 1 fires when the price rises to the trigger,
2 when it falls to it; ``triggerBy`` MarkPrice or LastPrice. ``timeInForce`` PostOnly is the
engine's post-only (GTX). ``positionIdx`` names the hedge-mode leg (position_mode.py). An
account sees and cancels only its own orders.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from perpsim.api.bybit_v5 import account_wire as wire
from perpsim.api.bybit_v5.errors import (
    TRIGGER_EXPECT_FALLING,
    TRIGGER_EXPECT_RISING,
    BybitError,
    envelope,
)
from perpsim.api.bybit_v5.params import CATEGORY, Call, Private, page
from perpsim.api.bybit_v5.position_mode import order_leg
from perpsim.api.bybit_v5.route_class import BybitRoute
from perpsim.sim import algo, trading
from perpsim.sim.algo import AlgoOrder
from perpsim.sim.errors import InvalidInput, OrderNotFound, WouldTriggerImmediately
from perpsim.sim.journal import expand
from perpsim.sim.orders import Order

router = APIRouter(prefix="/v5", tags=["bybit v5 orders"], route_class=BybitRoute)

SIDES = {"Buy": "BUY", "Sell": "SELL"}
ORDER_TYPES = {"Limit": "LIMIT", "Market": "MARKET"}
TIF_IN = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "PostOnly": "GTX"}
TRIGGER_BY_IN = {"MarkPrice": "MARK_PRICE", "LastPrice": "CONTRACT_PRICE"}
LIST_LIMIT = (20, 50)
EXECUTION_LIMIT = (50, 100)


def _ids(call: Call, order_id: str, link: str | None = None) -> dict[str, Any]:
    return envelope({"orderId": order_id, "orderLinkId": link or ""}, call.ex.now_ms)


@router.post("/order/create")
async def create_order(call: Private) -> dict[str, Any]:
    """A Limit or Market order; with ``triggerPrice`` a conditional one."""
    p = call.params
    p.category()
    inst = p.instrument()
    side = SIDES[p.choice("side", tuple(SIDES), required=True) or ""]
    order_type = ORDER_TYPES[p.choice("orderType", tuple(ORDER_TYPES), required=True) or ""]
    qty = p.decimal("qty", required=True)
    limit_price = p.decimal("price") if order_type == "LIMIT" else None
    if order_type == "LIMIT" and limit_price is None:
        raise InvalidInput("price is required for a Limit order")
    tif_in = p.choice("timeInForce", tuple(TIF_IN), default="GTC" if order_type == "LIMIT"
                      else "IOC") or "GTC"
    tif = TIF_IN[tif_in] if order_type == "LIMIT" else None
    reduce_only = p.boolean("reduceOnly")
    link = p.get("orderLinkId")
    leg, reduce_only = order_leg(p.get("positionIdx"), call.ex.account(call.account_id), side,
                                 reduce_only)
    trigger = p.decimal("triggerPrice")
    if trigger is None:
        order = trading.place_order(call.ex, call.account_id, inst.symbol, side, order_type,
                                    qty, limit_price, time_in_force=tif,
                                    reduce_only=reduce_only, client_order_id=link,
                                    position_side=leg)
        return _ids(call, str(order.order_id), wire.link_id(order))
    direction = p.integer("triggerDirection", required=True, minimum=1, maximum=2) or 0
    working = TRIGGER_BY_IN[p.choice("triggerBy", tuple(TRIGGER_BY_IN),
                                     default="LastPrice") or "LastPrice"]
    algo_type = wire.algo_type_for(side, direction, limit=order_type == "LIMIT")
    try:
        conditional = algo.place_algo(
            call.ex, call.account_id, inst.symbol, side, algo_type, qty, trigger, limit_price,
            working_type=working, reduce_only=reduce_only,
            close_position=p.boolean("closeOnTrigger"), time_in_force=tif or "GTC",
            client_algo_id=link, position_side=leg)
    except WouldTriggerImmediately as exc:
        code = TRIGGER_EXPECT_RISING if direction == wire.RISE else TRIGGER_EXPECT_FALLING
        word = "Rising" if direction == wire.RISE else "Falling"
        raise BybitError(code, f"expect {word}, but trigger_price[{trigger}] is already "
                         f"reached ({exc})") from exc
    return _ids(call, f"{wire.CONDITIONAL_PREFIX}{conditional.algo_id}",
                conditional.client_algo_id)


def _find(call: Call) -> Order | AlgoOrder:
    """The caller's order by ``orderId`` or ``orderLinkId`` (plain or conditional)."""
    p = call.params
    inst = p.instrument()
    order_id, link = p.get("orderId"), p.get("orderLinkId")
    if order_id is None and link is None:
        raise InvalidInput("orderId or orderLinkId is required")
    if order_id is not None and order_id.startswith(wire.CONDITIONAL_PREFIX):
        number = order_id.removeprefix(wire.CONDITIONAL_PREFIX)
        if not number.isdigit():
            raise OrderNotFound(f"order {order_id} does not exist")
        found: Order | AlgoOrder = algo.find_algo(call.ex, call.account_id, int(number))
    elif order_id is not None:
        if not order_id.isdigit():
            raise OrderNotFound(f"order {order_id} does not exist")
        found = trading.find_order(call.ex, call.account_id, inst.symbol, int(order_id), None)
    else:
        try:
            found = trading.find_order(call.ex, call.account_id, inst.symbol, None, link)
        except OrderNotFound:
            found = algo.find_algo(call.ex, call.account_id, None, link)
    if found.symbol != inst.symbol:
        raise OrderNotFound("order does not exist on this symbol")
    return found


@router.post("/order/cancel")
async def cancel_order(call: Private) -> dict[str, Any]:
    """Cancel one open order (or untriggered conditional order) of the caller."""
    call.params.category()
    found = _find(call)
    if isinstance(found, AlgoOrder):
        algo.cancel_algo(call.ex, call.account_id, found.algo_id)
        return _ids(call, f"{wire.CONDITIONAL_PREFIX}{found.algo_id}", found.client_algo_id)
    order = trading.cancel_order(call.ex, call.account_id, found.symbol, found.order_id, None)
    return _ids(call, str(order.order_id), wire.link_id(order))


@router.post("/order/cancel-all")
async def cancel_all(call: Private) -> dict[str, Any]:
    """Cancel every open order and untriggered conditional order of the caller on a symbol."""
    call.params.category()
    inst = call.params.instrument()
    rows = [{"orderId": str(o.order_id), "orderLinkId": wire.link_id(o)}
            for o in trading.cancel_all(call.ex, call.account_id, inst.symbol)]
    for conditional in [a for a in call.ex.algo_orders.values() if a.is_open and
                        a.account_id == call.account_id and a.symbol == inst.symbol]:
        algo.cancel_algo(call.ex, call.account_id, conditional.algo_id)
        rows.append({"orderId": f"{wire.CONDITIONAL_PREFIX}{conditional.algo_id}",
                     "orderLinkId": conditional.client_algo_id})
    return envelope({"list": rows, "success": "1"}, call.ex.now_ms)


def _empty(call: Call) -> dict[str, Any]:
    """A list answer for a category perpsim lists nothing in."""
    return envelope({"category": call.params.get("category"), "list": [],
                     "nextPageCursor": ""}, call.ex.now_ms)


def _rows(call: Call, *, open_only: bool) -> list[dict[str, Any]]:
    """The caller's orders, newest first, filtered by symbol / orderId / orderLinkId /
    orderFilter (Order or StopOrder)."""
    p = call.params
    inst = p.optional_instrument()
    wanted_id, wanted_link = p.get("orderId"), p.get("orderLinkId")
    kind = p.choice("orderFilter", ("Order", "StopOrder", "tpslOrder"))
    fired = wire.fired_order_ids(call.ex)
    rows: list[tuple[int, dict[str, Any]]] = []
    if kind in (None, "Order"):
        for order in call.ex.orders.values():
            if (order.account_id == call.account_id and order.order_id not in fired
                    and (not open_only or order.is_open)
                    # asked by id or symbol: build only the rows that can match (a row sums
                    # its fees from the journal; a hedge asks for one order at a time)
                    and (inst is None or order.symbol == inst.symbol)
                    and (wanted_id is None or str(order.order_id) == wanted_id)
                    and (wanted_link is None or wire.link_id(order) == wanted_link)):
                rows.append((order.created_ms, wire.order_row(call.ex, order)))
    if kind in (None, "StopOrder"):
        for conditional in call.ex.algo_orders.values():
            if conditional.account_id == call.account_id:
                row = wire.algo_row(call.ex, conditional)
                if not open_only or row["orderStatus"] in ("Untriggered", "New",
                                                           "PartiallyFilled", "Triggered"):
                    rows.append((conditional.created_ms, row))
    rows.sort(key=lambda r: (r[0], r[1]["orderId"]), reverse=True)
    return [row for _, row in rows
            if (inst is None or row["symbol"] == inst.symbol)
            and (wanted_id is None or row["orderId"] == wanted_id)
            and (wanted_link is None or row["orderLinkId"] == wanted_link)]


@router.get("/order/realtime")
async def open_orders(call: Private) -> dict[str, Any]:
    """Open orders (and, asked by id, recent closed ones), newest first, with a cursor."""
    if not call.params.serves_category():
        return _empty(call)
    by_id = call.params.get("orderId") or call.params.get("orderLinkId")
    # Bybit's realtime answers a closed order too when it is asked for by id.
    chosen, cursor = page(_rows(call, open_only=not by_id), call.params, *LIST_LIMIT)
    return envelope({"category": CATEGORY, "list": chosen, "nextPageCursor": cursor},
                    call.ex.now_ms)


@router.get("/order/history")
async def order_history(call: Private) -> dict[str, Any]:
    """Orders of every status, newest first, with a cursor."""
    if not call.params.serves_category():
        return _empty(call)
    start, end = call.params.time_range()
    rows = [r for r in _rows(call, open_only=False)
            if (start is None or int(r["createdTime"]) >= start)
            and (end is None or int(r["createdTime"]) <= end)]
    chosen, cursor = page(rows, call.params, *LIST_LIMIT)
    return envelope({"category": CATEGORY, "list": chosen, "nextPageCursor": cursor},
                    call.ex.now_ms)


@router.get("/execution/list")
async def executions(call: Private) -> dict[str, Any]:
    """The caller's fills and funding payments, newest first (``execType`` filters)."""
    p = call.params
    if not p.serves_category():
        return _empty(call)
    inst = p.optional_instrument()
    exec_type = p.choice("execType", ("Trade", "Funding", "BustTrade", "AdlTrade",
                                      "Settle", "BlockTrade", "MovePosition"))
    wanted_id = p.get("orderId")
    start, end = p.time_range()
    conditional_of = {a.order_id: a for a in call.ex.algo_orders.values()
                      if a.order_id is not None}
    rows = [wire.execution_row(call.ex, e, conditional_of)
            for e in wire.fills_of(call.ex, call.account_id)
            # asked for one order: build only its rows (a hedge settles order by order)
            if wanted_id is None or wire.execution_order_id(e, conditional_of) == wanted_id]
    rows += [wire.funding_execution_row(call.ex, e)
             for e in expand(call.ex.journal, call.account_id)
             if e.type == "funding.payment" and e.payload["account_id"] == call.account_id]
    rows.sort(key=lambda r: r["seq"], reverse=True)
    kept = [r for r in rows
            if (inst is None or r["symbol"] == inst.symbol)
            and (exec_type is None or r["execType"] == exec_type)
            and (wanted_id is None or r["orderId"] == wanted_id)
            and (start is None or int(r["execTime"]) >= start)
            and (end is None or int(r["execTime"]) <= end)]
    chosen, cursor = page(kept, p, *EXECUTION_LIMIT)
    return envelope({"category": CATEGORY, "list": [_public(r) for r in chosen],
                     "nextPageCursor": cursor}, call.ex.now_ms)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A row without perpsim's internal sort key."""
    return {k: v for k, v in row.items() if k != "seq"}
