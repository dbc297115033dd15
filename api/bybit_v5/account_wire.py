"""Private v5 answers on the wire: orders (plain and conditional), executions, positions,
wallet balances and the transaction log; pure functions of the engine's records.

Ids: a plain order's ``orderId`` is its engine id as text; a conditional order's is
``cond-<id>`` (Bybit keeps one id through trigger and fill, so the order it places when it
fires is shown inside the conditional row, never as a row of its own). Orders the venue forced
on an account (liquidation, ADL) carry ``createType`` CreateByLiq / CreateByAdl_PassThrough and
their executions ``execType`` BustTrade / AdlTrade, as on Bybit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from perpsim.api.bybit_v5.market_wire import COIN_PLACES, price, rate
from perpsim.api.coin_totals import coin_totals
from perpsim.api.deps import dec
from perpsim.api.ledger_rows import owned_by, posting_symbol
from perpsim.sim import risk
from perpsim.sim.accounts import (
    BYBIT_POSITION_IDX,
    DEFAULT_LEVERAGE,
    PositionSide,
    position_key,
)
from perpsim.sim.algo import AlgoOrder
from perpsim.sim.exchange import Exchange
from perpsim.sim.inverse import coin_value
from perpsim.sim.journal import Event
from perpsim.sim.ledger import Posting, isolated_account
from perpsim.sim.orders import FOK_UNFILLED, IOC_UNFILLED, POST_ONLY_WOULD_TAKE, Order
from perpsim.sim.profile import Instrument

CONDITIONAL_PREFIX = "cond-"
ORDER_STATUS = {"NEW": "New", "PARTIALLY_FILLED": "PartiallyFilled", "FILLED": "Filled",
                "CANCELED": "Cancelled", "EXPIRED": "Cancelled", "REJECTED": "Rejected"}
TIF_OUT = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "GTX": "PostOnly"}
TRIGGER_BY_OUT = {"MARK_PRICE": "MarkPrice", "CONTRACT_PRICE": "LastPrice"}
# Why the venue cancelled a new order at once (sim/orders.py CANCEL_REASONS) as Bybit says it.
REJECT_REASONS = {POST_ONLY_WOULD_TAKE: "EC_PostOnlyWillTakeLiquidity",
                  FOK_UNFILLED: "EC_CancelForNoFullFill",
                  IOC_UNFILLED: "EC_NoImmediateQtyToFill"}
RISE, FALL = 1, 2


def coin(value: Decimal | int | None) -> str:
    """A coin amount with 8 decimals."""
    return dec(value, COIN_PLACES)


def side_out(side: str) -> str:
    """BUY/SELL → Buy/Sell."""
    return "Buy" if side == "BUY" else "Sell"


def position_idx(side: str) -> int:
    """The engine's position side as Bybit's ``positionIdx``: 0 one-way, 1 buy side (LONG
    leg), 2 sell side (SHORT leg) of hedge mode."""
    return BYBIT_POSITION_IDX["LONG" if side == "LONG" else "SHORT" if side == "SHORT"
                              else "BOTH"]


def closes_leg(side: str, position_side: str) -> bool:
    """True for a hedge-mode order on the other side of its leg (a Sell on the long leg, a
    Buy on the short leg): it can only close, so it is reduce-only by nature."""
    return position_side != "BOTH" and (side == "BUY") != (position_side == "LONG")


def create_type(order: Order) -> str:
    """How the order came to be: by the user, or forced by liquidation / ADL."""
    if order.client_order_id.startswith("adl_autoclose"):
        return "CreateByAdl_PassThrough"
    if order.client_order_id.startswith("autoclose"):
        return "CreateByLiq"
    return "CreateByUser"


def link_id(order: Order) -> str:
    """The user's ``orderLinkId`` (empty for orders the venue placed)."""
    return "" if create_type(order) != "CreateByUser" else order.client_order_id


def trigger_direction(algo: AlgoOrder) -> int:
    """1 (rise) for a buy stop / sell take-profit, 2 (fall) for a sell stop / buy take-profit."""
    is_stop = algo.type.startswith("STOP")
    return RISE if (algo.side == "BUY") == is_stop else FALL


def algo_type_for(side: str, direction: int, *, limit: bool) -> str:
    """The engine's conditional type for a Bybit side and ``triggerDirection``."""
    is_stop = (side == "BUY") == (direction == RISE)
    base = "STOP" if is_stop else "TAKE_PROFIT"
    return base if limit else f"{base}_MARKET"


def _fill_part(ex: Exchange, inst: Instrument, order: Order | None) -> dict[str, Any]:
    if order is None:
        return {"cumExecQty": "0", "cumExecValue": coin(Decimal(0)), "cumExecFee": coin(0),
                "avgPrice": "", "leavesQty": None, "leavesValue": "0"}
    avg = order.avg_price_usd(inst.contract_size_usd)
    return {"cumExecQty": str(order.filled_contracts),
            "cumExecValue": coin(order.filled_value_coin),
            "cumExecFee": coin(order_fee(ex, order)),
            "avgPrice": price(inst, avg) if avg is not None else "",
            "leavesQty": str(order.remaining_contracts if order.is_open else 0),
            "leavesValue": "0"}


def order_fee(ex: Exchange, order: Order) -> Decimal:
    """Fees charged on ``order``'s fills so far (from the journal; see :func:`exec_fee`)."""
    return sum((exec_fee(ex, e) for e in fills_of(ex, order.account_id)
                if e.payload["order_id"] == order.order_id), Decimal(0))


def reject_reason(order: Order | None) -> str:
    """``rejectReason``: why the venue cancelled the order at once, else EC_NoError."""
    return REJECT_REASONS.get(order.cancel_reason, "EC_NoError") if order else "EC_NoError"


def cancel_type(order: Order) -> str:
    """``cancelType``: UNKNOWN while open or when the matching engine cancelled it at once
    (its ``rejectReason`` says why), CancelByLiq for the liquidation engine's, else by user."""
    if order.status not in ("CANCELED", "EXPIRED") or order.cancel_reason:
        return "UNKNOWN"
    return "CancelByLiq" if "autoclose" in order.client_order_id else "CancelByUser"


def order_row(ex: Exchange, order: Order) -> dict[str, Any]:
    """One plain order as /v5/order/realtime and /history answer."""
    inst = ex.instruments[order.symbol]
    row: dict[str, Any] = {
        "orderId": str(order.order_id), "orderLinkId": link_id(order), "blockTradeId": "",
        "symbol": order.symbol, "price": price(inst, order.price_usd) or "0",
        "qty": str(order.qty_contracts), "side": side_out(order.side), "isLeverage": "",
        "positionIdx": position_idx(order.position_side),
        "orderStatus": ORDER_STATUS[order.status],
        "createType": create_type(order),
        "cancelType": cancel_type(order), "rejectReason": reject_reason(order),
        "orderType": "Market" if order.type == "MARKET" else
        "Limit", "stopOrderType": "", "orderIv": "",
        "timeInForce": "IOC" if order.type == "MARKET" else TIF_OUT[order.time_in_force],
        "triggerPrice": "", "takeProfit": "", "stopLoss": "", "tpTriggerBy": "",
        "slTriggerBy": "", "triggerDirection": 0, "triggerBy": "", "lastPriceOnCreated": "",
        "reduceOnly": order.reduce_only or closes_leg(order.side, order.position_side),
        "closeOnTrigger": False, "smpType": "None",
        "smpGroup": 0, "smpOrderId": "", "tpslMode": "", "tpLimitPrice": "",
        "slLimitPrice": "", "placeType": "", "createdTime": str(order.created_ms),
        "updatedTime": str(order.updated_ms),
    }
    row.update(_fill_part(ex, inst, order))
    return row


def algo_status(algo: AlgoOrder, placed: Order | None) -> str:
    """Untriggered → (Triggered while its order works, then that order's status) /
    Deactivated (cancelled before the trigger)."""
    if algo.status == "NEW":
        return "Untriggered"
    if algo.status == "CANCELED" and placed is None:
        return "Deactivated"
    if placed is None:
        return "Rejected" if algo.status == "EXPIRED" else "Triggered"
    if placed.status == "NEW":
        return "Triggered"
    return ORDER_STATUS[placed.status]


def algo_row(ex: Exchange, algo: AlgoOrder) -> dict[str, Any]:
    """One conditional order (stopOrderType ``Stop``) with its trigger, any status."""
    inst = ex.instruments[algo.symbol]
    placed = ex.orders.get(algo.order_id) if algo.order_id is not None else None
    limit = algo.price_usd is not None
    row: dict[str, Any] = {
        "orderId": f"{CONDITIONAL_PREFIX}{algo.algo_id}", "orderLinkId": algo.client_algo_id,
        "blockTradeId": "", "symbol": algo.symbol,
        "price": price(inst, algo.price_usd) if limit else "0",
        "qty": str(algo.qty_contracts), "side": side_out(algo.side), "isLeverage": "",
        "positionIdx": position_idx(algo.position_side),
        "orderStatus": algo_status(algo, placed),
        "createType": "CreateByUser",
        "cancelType": "CancelByUser" if algo.status == "CANCELED" else "UNKNOWN",
        "rejectReason": reject_reason(placed), "orderType": "Limit" if limit else "Market",
        "stopOrderType": "Stop", "orderIv": "",
        "timeInForce": TIF_OUT.get(algo.time_in_force, "GTC") if limit else "IOC",
        "triggerPrice": price(inst, algo.trigger_price_usd), "takeProfit": "", "stopLoss": "",
        "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": trigger_direction(algo),
        "triggerBy": TRIGGER_BY_OUT.get(algo.working_type, "LastPrice"),
        "lastPriceOnCreated": "",
        "reduceOnly": algo.reduce_only or closes_leg(algo.side, algo.position_side),
        "closeOnTrigger": algo.close_position, "smpType": "None", "smpGroup": 0,
        "smpOrderId": "", "tpslMode": "", "tpLimitPrice": "", "slLimitPrice": "",
        "placeType": "", "createdTime": str(algo.created_ms),
        "updatedTime": str(max(algo.updated_ms, placed.updated_ms if placed else 0)),
    }
    row.update(_fill_part(ex, inst, placed))
    if row["leavesQty"] is None:
        row["leavesQty"] = str(algo.qty_contracts if algo.is_open else 0)
    return row


def fired_order_ids(ex: Exchange) -> set[int]:
    """Ids of the orders conditional orders placed (shown inside their conditional row)."""
    return {a.order_id for a in ex.algo_orders.values() if a.order_id is not None}


# ---- executions ---------------------------------------------------------------------------------
def fills_of(ex: Exchange, account_id: str) -> Iterator[Event]:
    """The account's fills: journal ``order.update`` events with execution TRADE."""
    for event in ex.journal:
        p = event.payload
        if (event.type == "order.update" and p["execution"] == "TRADE"
                and p["account_id"] == account_id):
            yield event


EXEC_TYPES = {"LIQUIDATION": "BustTrade", "ADL": "AdlTrade"}
CLEARANCE = "liquidation_clearance"  # the engine's posting of a taken-over isolated remainder


def clearance_fee(ex: Exchange, event: Event) -> Decimal:
    """What an isolated position's takeover left in its margin and the engine swept to the
    insurance fund at that instant (sim/liquidation.py ``_take_over``). On Bybit that is the
    fee to close the bankruptcy price holds, charged with the BustTrade: part of its
    ``execFee`` (a client summing its executions' fees then accounts for every coin)."""
    p = event.payload
    if p["order_type"] != "LIQUIDATION" or int(p["position_qty"]) != 0 \
            or p.get("margin_mode") != "isolated":
        return Decimal(0)
    side = str(p.get("position_side", "BOTH"))
    margin = isolated_account(p["account_id"],
                              p["symbol"] if side == "BOTH" else f"{p['symbol']}.{side}")
    return sum((q.amount for q in ex.ledger.history(margin) if q.source == margin
                and q.reason == CLEARANCE and q.time_ms == event.time_ms), Decimal(0))


def exec_fee(ex: Exchange, event: Event) -> Decimal:
    """A fill's ``execFee``: its commission, and a takeover's clearance (above)."""
    return Decimal(event.payload["commission"]) + clearance_fee(ex, event)


def execution_order_id(event: Event, conditional_of: dict[int, AlgoOrder]) -> str:
    """The ``orderId`` a fill is listed under (its conditional order's, if one placed it)."""
    order_id = int(event.payload["order_id"])
    algo = conditional_of.get(order_id)
    return f"{CONDITIONAL_PREFIX}{algo.algo_id}" if algo else str(order_id)


def execution_row(ex: Exchange, event: Event, conditional_of: dict[int, AlgoOrder]
                  ) -> dict[str, Any]:
    """One fill as /v5/execution/list and the ``execution`` stream send it."""
    p = event.payload
    inst = ex.instruments[p["symbol"]]
    fill_price = Decimal(p["last_price"])
    qty = int(p["last_qty"])
    order = ex.orders.get(int(p["order_id"]))
    algo = conditional_of.get(int(p["order_id"]))
    order_id = execution_order_id(event, conditional_of)
    value = coin_value(qty, fill_price, inst.contract_size_usd)
    fee = exec_fee(ex, event)
    return {
        "symbol": p["symbol"], "orderId": order_id,
        "orderLinkId": algo.client_algo_id if algo else (link_id(order) if order else ""),
        "side": side_out(p["side"]), "orderPrice": price(inst, order.price_usd) if order
        and order.price_usd is not None else "0",
        "orderQty": str(p["qty"]), "leavesQty": str(int(p["qty"]) - int(p["filled"])),
        "createType": create_type(order) if order else "CreateByUser",
        "orderType": "Market" if p["order_type"] != "LIMIT" else "Limit",
        "stopOrderType": "Stop" if algo else "", "execFee": coin(fee),
        "execId": str(p["trade_id"]), "execPrice": price(inst, fill_price),
        "execQty": str(qty), "execType": EXEC_TYPES.get(p["order_type"], "Trade"),
        "execValue": coin(value), "execTime": str(event.time_ms), "feeCurrency": inst.margin_asset,
        "isMaker": bool(p["maker"]),
        "feeRate": rate(fee / value) if value else rate(Decimal(0)),
        "tradeIv": "", "markIv": "", "markPrice": "", "indexPrice": "", "underlyingPrice": "",
        "blockTradeId": "", "closedSize": "", "seq": event.seq,
    }


def _funding_exec_id(event: Event) -> str:
    """One settlement is one journal record: a hedge account's two legs share its seq."""
    side = event.payload.get("position_side", "BOTH")
    return f"funding-{event.seq}" if side == "BOTH" else f"funding-{event.seq}-{side}"


def funding_execution_row(ex: Exchange, event: Event) -> dict[str, Any]:
    """A funding payment as Bybit lists it: execType Funding, ``execFee`` the amount paid
    (negative when received), ``feeRate`` the funding rate."""
    p = event.payload
    inst = ex.instruments[p["symbol"]]
    qty = int(p["position_qty"])
    mark = Decimal(p["mark"])
    return {
        "symbol": p["symbol"], "orderId": "", "orderLinkId": "",
        "side": "Buy" if qty > 0 else "Sell", "orderPrice": "0", "orderQty": "0",
        "leavesQty": "0", "createType": "", "orderType": "UNKNOWN", "stopOrderType": "",
        "execFee": coin(-Decimal(p["amount"])), "execId": _funding_exec_id(event),
        "execPrice": price(inst, mark), "execQty": str(abs(qty)), "execType": "Funding",
        "execValue": coin(coin_value(abs(qty), mark, inst.contract_size_usd)),
        "execTime": str(event.time_ms), "feeCurrency": inst.margin_asset, "isMaker": False,
        "feeRate": rate(Decimal(p["rate"])), "tradeIv": "", "markIv": "",
        "markPrice": rate(mark), "indexPrice": "", "underlyingPrice": "", "blockTradeId": "",
        "closedSize": "", "seq": event.seq,
    }


# ---- closed PnL ---------------------------------------------------------------------------------
def closed_contracts(event: Event) -> int:
    """Contracts of the position a fill closed (0 for a fill that only opened or added)."""
    p = event.payload
    signed = int(p["last_qty"]) if p["side"] == "BUY" else -int(p["last_qty"])
    before = int(p["position_qty"]) - signed
    if before == 0 or (before > 0) == (signed > 0):
        return 0
    return min(abs(signed), abs(before))


def closed_pnl_rows(ex: Exchange, account_id: str,
                    conditional_of: dict[int, AlgoOrder]) -> list[dict[str, Any]]:
    """/v5/position/closed-pnl: one row per order that closed contracts, oldest first.

    Every change of a position is a fill (the user's, the liquidation engine's, ADL's), so the
    entry price a fill closed at is the one the previous fill of the symbol left;
    ``closedPnl`` is the realised PnL net of the fills' fees."""
    rows: dict[int, dict[str, Any]] = {}
    totals: dict[int, list[Decimal]] = {}  # order → [closed, entry value, exit value, pnl, n]
    # (symbol, position side) → entry price after the latest fill (hedge legs apart)
    entry_of: dict[tuple[str, str], Decimal] = {}
    for event in fills_of(ex, account_id):
        p = event.payload
        closed = closed_contracts(event)
        leg = (p["symbol"], str(p.get("position_side", "BOTH")))
        entry_before = entry_of.get(leg)
        if p.get("position_entry") is not None:
            entry_of[leg] = Decimal(p["position_entry"])
        if not closed or entry_before is None:
            continue
        inst = ex.instruments[p["symbol"]]
        order_id = int(p["order_id"])
        exit_price = Decimal(p["last_price"])
        pnl = Decimal(p["realized_pnl"])
        size = closed * inst.contract_size_usd
        entry_value = size / entry_before
        total = totals.setdefault(order_id, [Decimal(0)] * 5)
        for i, value in enumerate((Decimal(closed), entry_value, size / exit_price,
                                   pnl - exec_fee(ex, event), Decimal(1))):
            total[i] += value
        order = ex.orders.get(order_id)
        conditional = conditional_of.get(order_id)
        rows[order_id] = {
            "symbol": inst.symbol, "orderType": "Market" if p["order_type"] != "LIMIT"
            else "Limit", "leverage": str(ex.position(account_id, inst.symbol).leverage),
            "updatedTime": str(event.time_ms), "side": side_out(p["side"]),
            "orderId": f"{CONDITIONAL_PREFIX}{conditional.algo_id}" if conditional
            else str(order_id), "qty": str(p["qty"]),
            "orderPrice": price(inst, order.price_usd) if order and order.price_usd else "0",
            "execType": EXEC_TYPES.get(p["order_type"], "Trade"),
            "createdTime": str(order.created_ms if order else event.time_ms),
        }
        closed_total, entry_total, exit_total, net, fills = total
        cs = inst.contract_size_usd
        rows[order_id].update({
            "closedSize": str(int(closed_total)), "cumEntryValue": coin(entry_total),
            "avgEntryPrice": price(inst, closed_total * cs / entry_total),
            "cumExitValue": coin(exit_total),
            "avgExitPrice": price(inst, closed_total * cs / exit_total),
            "closedPnl": coin(net), "fillCount": str(int(fills)),
        })
    return list(rows.values())


# ---- positions ----------------------------------------------------------------------------------
def realised_pnl(ex: Exchange, account_id: str, symbol: str) -> Decimal:
    """Cumulative realised PnL of the account on ``symbol``: closed PnL minus fees plus
    funding (Bybit's cumRealisedPnl)."""
    return sum((Decimal(r["change"]) for r in transaction_rows(ex, account_id)
                if r["symbol"] == symbol and not r["type"].startswith("TRANSFER")), Decimal(0))


def position_rows(ex: Exchange, account_id: str, inst: Instrument) -> list[dict[str, Any]]:
    """The account's /v5/position/list rows on ``inst``: one in one-way mode, one per leg
    (positionIdx 1 then 2) in hedge mode, flat or not, as Bybit lists them."""
    return [position_row(ex, account_id, inst, side)
            for side in ex.accounts[account_id].sides()]


def position_row(ex: Exchange, account_id: str, inst: Instrument,
                 side: PositionSide = "BOTH") -> dict[str, Any]:
    """One /v5/position/list row of the one-way position or of a hedge leg (a flat position:
    side "" and size 0)."""
    account = ex.accounts[account_id]
    pos = account.positions.get(position_key(inst.symbol, side))
    # Leverage and margin mode are the symbol's (shared by its legs): any record has them.
    settings = pos or next(iter(account.positions_on(inst.symbol)), None)
    leverage = settings.leverage if settings is not None else DEFAULT_LEVERAGE
    isolated = settings is not None and settings.margin_mode == "isolated"
    row: dict[str, Any] = {
        "positionIdx": position_idx(side), "riskId": 1, "riskLimitValue": "",
        "symbol": inst.symbol, "side": "", "size": "0", "avgPrice": "0", "positionValue": "0",
        "tradeMode": 1 if isolated else 0, "autoAddMargin": 0, "positionStatus": "Normal",
        "leverage": str(leverage), "markPrice": rate(ex.mark_price(inst.symbol)),
        "liqPrice": "", "bustPrice": "", "positionIM": coin(0), "positionMM": coin(0),
        "positionBalance": coin(0), "takeProfit": "", "stopLoss": "", "trailingStop": "",
        "sessionAvgPrice": "", "delta": "", "gamma": "", "vega": "", "theta": "",
        "unrealisedPnl": coin(0), "curRealisedPnl": coin(0),
        "cumRealisedPnl": coin(realised_pnl(ex, account_id, inst.symbol)),
        "adlRankIndicator": 0, "createdTime": str(pos.updated_ms if pos else 0),
        "updatedTime": str(pos.updated_ms if pos else 0), "seq": 0, "isReduceOnly": False,
        "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "",
    }
    if pos is None or not pos.is_open:
        return row
    view = risk.settled_position_risk(ex, account_id, inst.symbol, side)
    tier = next((b for b in inst.brackets
                 if b.cap_coin is None or view.value_coin <= b.cap_coin), inst.brackets[-1])
    row.update({
        "riskId": tier.bracket,
        "riskLimitValue": dec(tier.cap_coin) if tier.cap_coin is not None else "",
        "side": "Buy" if view.qty_contracts > 0 else "Sell",
        "size": str(abs(view.qty_contracts)),
        "avgPrice": rate(view.entry_price_usd) if view.entry_price_usd else "0",
        "positionValue": coin(view.value_coin),
        "liqPrice": _level(inst, view.liquidation_price_usd),
        "bustPrice": _level(inst, view.bankruptcy_price_usd),
        "positionIM": coin(view.initial_margin_coin),
        "positionMM": coin(view.maint_margin_coin),
        "positionBalance": coin(view.isolated_margin_coin if isolated
                                else view.initial_margin_coin),
        "unrealisedPnl": coin(view.unrealised_pnl_coin),
        "adlRankIndicator": 1,
    })
    return row


def _level(inst: Instrument, value: Decimal | None) -> str:
    return price(inst, value) if value is not None and value.is_finite() and value > 0 else ""


# ---- wallet -------------------------------------------------------------------------------------
def contract_coin_row(ex: Exchange, account_id: str, coin_name: str) -> dict[str, Any]:
    """One ``coin[]`` entry of the CONTRACT wallet (classic account): wallet balance
    (cross wallet plus isolated margins), equity, margins and what can be withdrawn."""
    totals = coin_totals(ex, account_id, coin_name)
    cross = totals.cross
    position_im, maint, wallet = totals.position_im_coin, totals.maint_coin, totals.wallet_coin
    unrealised = totals.unrealised_coin
    withdrawable = min(cross.available_coin, cross.wallet_coin)
    return {
        "coin": coin_name, "equity": coin(wallet + unrealised), "usdValue": "",
        "walletBalance": coin(wallet), "free": "", "locked": "0",
        "spotHedgingQty": "0", "borrowAmount": "", "availableToWithdraw": coin(withdrawable),
        "availableToBorrow": "", "accruedInterest": "", "totalOrderIM": coin(cross.order_im_coin),
        "totalPositionIM": coin(position_im), "totalPositionMM": coin(maint),
        "unrealisedPnl": coin(unrealised), "cumRealisedPnl": coin(sum(
            (realised_pnl(ex, account_id, inst.symbol) for inst in ex.profile.instruments
             if inst.margin_asset == coin_name), Decimal(0))),
        "bonus": "0", "marginCollateral": True, "collateralSwitch": True,
    }


def spot_coin_row(ex: Exchange, account_id: str, coin_name: str) -> dict[str, Any]:
    """One ``coin[]`` entry of the SPOT wallet: coin held, not margin."""
    held = coin(ex.spot_balance(account_id, coin_name))
    return {"coin": coin_name, "equity": held, "walletBalance": held, "free": held,
            "locked": "0", "availableToWithdraw": held, "usdValue": "", "borrowAmount": "",
            "totalOrderIM": "0", "totalPositionIM": "0", "totalPositionMM": "0",
            "unrealisedPnl": "0", "cumRealisedPnl": "0", "bonus": "0"}


# ---- transaction log (from the ledger) -----------------------------------------------------------
TX_TYPES = {"deposit": "TRANSFER_IN", "withdrawal": "TRANSFER_OUT", "transfer": "TRANSFER",
            "realized_pnl": "TRADE", "commission": "TRADE", "funding_fee": "SETTLEMENT",
            "liquidation_pnl": "LIQUIDATION", "liquidation_loss": "LIQUIDATION",
            "liquidation_clearance": "LIQUIDATION", "liquidation_clearance_fee": "LIQUIDATION"}


def transaction_rows(ex: Exchange, account_id: str,
                     postings: Iterable[Posting] | None = None) -> list[dict[str, Any]]:
    """Every posting between the account's contract wallet and the outside, oldest first,
    with the running contract balance (moves inside the account are not transactions)."""
    rows = []
    balance: dict[str, Decimal] = {}
    for posting in postings if postings is not None else ex.ledger.history_of(account_id):
        into = owned_by(posting.destination, account_id)
        out_of = owned_by(posting.source, account_id)
        if into == out_of:
            continue
        change = posting.amount if into else -posting.amount
        balance[posting.coin] = balance.get(posting.coin, Decimal(0)) + change
        kind = TX_TYPES.get(posting.reason, "TRADE")
        if kind == "TRANSFER":
            kind = "TRANSFER_IN" if into else "TRANSFER_OUT"
        rows.append({
            "id": str(posting.seq), "symbol": posting_symbol(ex, posting.ref),
            "category": "inverse", "side": "None", "transactionTime": str(posting.time_ms),
            "type": kind, "qty": "0", "size": "0", "currency": posting.coin,
            "tradePrice": "0",
            "funding": coin(change) if posting.reason == "funding_fee" else "0",
            "fee": coin(-change) if posting.reason == "commission" else "0",
            "cashFlow": coin(change) if posting.reason == "realized_pnl" else "0",
            "change": coin(change), "cashBalance": coin(balance[posting.coin]),
            "feeRate": "0", "bonusChange": "0", "tradeId": "", "orderId": "",
            "orderLinkId": "",
        })
    return rows
