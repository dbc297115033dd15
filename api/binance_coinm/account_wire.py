"""Private COIN-M responses on the wire: orders, algo orders, trades, income, account, positions.

Pure functions from engine records (and the journal / ledger) to the JSON Binance sends; the
field names and string/number choices are the ones ccxt 4.5.90 parses (docs/dialect-notes.md
§2-§3). Coin amounts are written with 8 decimals, prices with the instrument's price precision
(or 8 decimals when an average needs more), contracts as whole numbers, times as epoch ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from perpsim.api.coin_totals import coin_totals
from perpsim.api.deps import dec, price_digits
from perpsim.api.ledger_rows import owned_by, posting_symbol
from perpsim.sim import risk
from perpsim.sim.accounts import DEFAULT_LEVERAGE, PositionSide, position_key
from perpsim.sim.algo import AlgoOrder
from perpsim.sim.exchange import Exchange
from perpsim.sim.inverse import coin_value
from perpsim.sim.journal import Event
from perpsim.sim.ledger import Posting, wallet_account
from perpsim.sim.orders import Order
from perpsim.sim.profile import Instrument

COIN_PLACES = 8
CANCEL_ALL_MSG = "The operation of cancel all open order is done."
# Ledger reasons → Binance incomeType (docs/binance-coinm-dialect.md #8).
INCOME_TYPES: dict[str, str] = {
    "deposit": "TRANSFER",
    "withdrawal": "TRANSFER",
    "realized_pnl": "REALIZED_PNL",
    "liquidation_pnl": "REALIZED_PNL",
    "liquidation_loss": "REALIZED_PNL",
    "commission": "COMMISSION",
    "funding_fee": "FUNDING_FEE",
    "liquidation_clearance": "INSURANCE_CLEAR",
    "liquidation_clearance_fee": "INSURANCE_CLEAR",
}
INCOME_TYPE_NAMES = ("TRANSFER", "WELCOME_BONUS", "FUNDING_FEE", "REALIZED_PNL", "COMMISSION",
                     "INSURANCE_CLEAR", "DELIVERED_SETTELMENT")


def coin(value: Decimal | None) -> str:
    """A coin amount as Binance writes it: 8 fixed decimals."""
    return dec(value, COIN_PLACES)


def price(value: Decimal | None, inst: Instrument) -> str:
    """A price with the instrument's decimals, or 8 when it needs more (averages); "0" if none."""
    return price_digits(value, inst.price_precision) or "0"


# ---- orders -------------------------------------------------------------------------------------
def order_json(ex: Exchange, order: Order, *, ack: bool = False) -> dict[str, Any]:
    """An order as /dapi/v1/order answers; ``ack``: as it stood when accepted (ACK)."""
    inst = ex.instruments[order.symbol]
    executed = 0 if ack else order.filled_contracts
    avg = None if ack else order.avg_price_usd(inst.contract_size_usd)
    cost = Decimal(0) if ack else order.filled_value_coin
    return {
        "orderId": order.order_id,
        "symbol": order.symbol,
        "pair": inst.pair,
        "status": "NEW" if ack else order.status,
        "clientOrderId": order.client_order_id,
        "price": price(order.price_usd, inst),
        "avgPrice": price(avg, inst) if avg is not None else dec(0, inst.price_precision),
        "origQty": str(order.qty_contracts),
        "executedQty": str(executed),
        "cumQty": str(executed),
        "cumBase": coin(cost),
        # Binance shows GTC on MARKET orders; the engine runs them as IOC.
        "timeInForce": "GTC" if order.type == "MARKET" else order.time_in_force,
        "type": order.type,
        "origType": order.type,
        "reduceOnly": order.reduce_only,
        "closePosition": False,
        "side": order.side,
        "positionSide": order.position_side,
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "time": order.created_ms,
        "updateTime": order.created_ms if ack else order.updated_ms,
    }


def algo_status(ex: Exchange, algo: AlgoOrder) -> str:
    """Binance's algoStatus: a fired order is TRIGGERED while its order works, then FINISHED."""
    if algo.status != "TRIGGERED":
        return algo.status
    placed = ex.orders.get(algo.order_id) if algo.order_id is not None else None
    return "TRIGGERED" if placed is not None and placed.is_open else "FINISHED"


def algo_json(ex: Exchange, algo: AlgoOrder) -> dict[str, Any]:
    """A conditional order as /dapi/v1/algoOrder answers (no ``orderId``: ccxt would take it)."""
    inst = ex.instruments[algo.symbol]
    placed = ex.orders.get(algo.order_id) if algo.order_id is not None else None
    actual = placed.avg_price_usd(inst.contract_size_usd) if placed is not None else None
    fired = algo.status in ("TRIGGERED", "EXPIRED") and algo.order_id is not None
    return {
        "algoId": algo.algo_id,
        "clientAlgoId": algo.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": algo.type,
        "symbol": algo.symbol,
        "pair": inst.pair,
        "side": algo.side,
        "positionSide": algo.position_side,
        "timeInForce": algo.time_in_force,
        "quantity": str(algo.qty_contracts),
        "algoStatus": algo_status(ex, algo),
        "actualOrderId": str(algo.order_id) if algo.order_id is not None else "",
        "actualPrice": price(actual, inst) if actual is not None else "",
        "triggerPrice": price(algo.trigger_price_usd, inst),
        "price": price(algo.price_usd, inst),
        "icebergQuantity": None,
        "selfTradePreventionMode": "NONE",
        "workingType": algo.working_type,
        "priceMatch": "NONE",
        "closePosition": algo.close_position,
        "priceProtect": False,
        "reduceOnly": algo.reduce_only,
        "activatePrice": "",
        "callbackRate": "",
        "createTime": algo.created_ms,
        "updateTime": algo.updated_ms,
        "triggerTime": algo.updated_ms if fired or algo.status == "TRIGGERED" else 0,
        "goodTillDate": 0,
    }


def select_window(rows: list[dict[str, Any]], key: str, start: int | None, end: int | None,
                  limit: int, *, from_start: bool = False) -> list[dict[str, Any]]:
    """Rows (ascending) within [start, end] on ``key``: the first ``limit`` when a start (or
    ``from_start``) anchors the window, else the most recent ``limit`` — Binance's paging."""
    kept = [r for r in rows if (start is None or r[key] >= start)
            and (end is None or r[key] <= end)]
    if start is not None or from_start:
        return kept[:limit]
    return kept[-limit:]


# ---- trades (from the journal) ------------------------------------------------------------------
def fills_of(ex: Exchange, account_id: str) -> Iterator[Event]:
    """The account's fills: journal ``order.update`` events with execution TRADE, in order."""
    for event in ex.journal:
        payload = event.payload
        if (event.type == "order.update" and payload["execution"] == "TRADE"
                and payload["account_id"] == account_id):
            yield event


def trade_json(ex: Exchange, event: Event) -> dict[str, Any]:
    """One fill as /dapi/v1/userTrades answers (no spot markers such as ``isMaker``)."""
    p = event.payload
    inst = ex.instruments[p["symbol"]]
    fill_price = Decimal(p["last_price"])
    qty = int(p["last_qty"])
    return {
        "symbol": p["symbol"],
        "id": int(p["trade_id"]),
        "orderId": int(p["order_id"]),
        "pair": inst.pair,
        "side": p["side"],
        "price": price(fill_price, inst),
        "qty": str(qty),
        "realizedPnl": coin(Decimal(p["realized_pnl"])),
        "marginAsset": inst.margin_asset,
        "baseQty": coin(coin_value(qty, fill_price, inst.contract_size_usd)),
        "commission": coin(Decimal(p["commission"])),
        "commissionAsset": inst.margin_asset,
        "time": event.time_ms,
        "positionSide": p.get("position_side", "BOTH"),
        "buyer": p["side"] == "BUY",
        "maker": bool(p["maker"]),
    }


# ---- income (from the ledger) -------------------------------------------------------------------
def income_rows(ex: Exchange, account_id: str, postings: Iterable[Posting]) -> list[dict[str, Any]]:
    """The account's income history: one row per ledger posting between it and the outside.

    Moves between the account's own wallet and isolated margins are not income (Binance lists
    none for them); everything else is signed from the account's point of view.
    """
    rows = []
    for posting in postings:
        into = owned_by(posting.destination, account_id)
        out_of = owned_by(posting.source, account_id)
        if into == out_of:
            continue
        income_type = INCOME_TYPES.get(posting.reason, "TRANSFER")
        info = {"deposit": "DEPOSIT", "withdrawal": "WITHDRAW"}.get(posting.reason, "")
        rows.append({
            "symbol": posting_symbol(ex, posting.ref),
            "incomeType": income_type,
            "income": coin(posting.amount if into else -posting.amount),
            "asset": posting.coin,
            "info": info,
            "time": posting.time_ms,
            "tranId": posting.seq,
            "tradeId": "",
        })
    return rows


# ---- account, balances and positions ------------------------------------------------------------
def max_qty_coin(inst: Instrument, leverage: int) -> str:
    """The largest position (coin) the leverage allows: the cap of the last bracket admitting it."""
    caps = [b.cap_coin for b in inst.brackets if b.max_leverage >= leverage]
    if not caps:
        return "0"
    return "1000000000" if caps[-1] is None else dec(caps[-1])


def position_risk_row(ex: Exchange, account_id: str, inst: Instrument,
                      side: PositionSide = "BOTH") -> dict[str, Any]:
    """One /dapi/v1/positionRisk row (``side`` LONG / SHORT: a hedge-mode leg, whose SHORT
    amount is negative); a flat position has entryPrice 0 (ccxt drops it). Built once per
    engine stamp: /account's positions[] and /positionRisk at one instant share it."""
    row = risk.settled_view(ex, ("binance_coinm.positionRisk", account_id, inst.symbol, side),
                            lambda: _position_risk_row(ex, account_id, inst, side))
    return dict(row)


def _position_risk_row(ex: Exchange, account_id: str, inst: Instrument,
                       side: PositionSide) -> dict[str, Any]:
    account = ex.accounts[account_id]
    pos = account.positions.get(position_key(inst.symbol, side))
    # Leverage and margin type are the symbol's, shared by its legs.
    settings = pos or next(iter(account.positions_on(inst.symbol)), None)
    leverage = settings.leverage if settings is not None else DEFAULT_LEVERAGE
    mode = settings.margin_mode if settings is not None else "cross"
    row: dict[str, Any] = {
        "symbol": inst.symbol,
        "positionAmt": "0",
        "entryPrice": "0.0",
        "markPrice": coin(ex.mark_price(inst.symbol)),
        "unRealizedProfit": coin(Decimal(0)),
        "liquidationPrice": "0",
        "leverage": str(leverage),
        "maxQty": max_qty_coin(inst, leverage),
        "marginType": mode,
        "isolatedMargin": coin(Decimal(0)),
        "isAutoAddMargin": "false",
        "positionSide": side,
        "notionalValue": "0",
        "isolatedWallet": coin(ex.isolated_wallet(
            account_id, pos.margin_key if pos is not None else inst.symbol)),
        "updateTime": pos.updated_ms if pos is not None else 0,
        "breakEvenPrice": "0.0",
    }
    if pos is None or not pos.is_open:
        return row
    view = risk.settled_position_risk(ex, account_id, inst.symbol, side)
    notional = view.value_coin if view.qty_contracts > 0 else -view.value_coin
    row.update({
        "positionAmt": str(view.qty_contracts),
        "entryPrice": coin(view.entry_price_usd),
        "markPrice": coin(view.mark_price_usd),
        "unRealizedProfit": coin(view.unrealised_pnl_coin),
        "liquidationPrice": coin(view.liquidation_price_usd)
        if view.liquidation_price_usd is not None and view.liquidation_price_usd.is_finite()
        else "0",
        "isolatedMargin": coin(view.margin_balance_coin if mode == "isolated" else Decimal(0)),
        "notionalValue": coin(notional),
        "breakEvenPrice": coin(view.entry_price_usd),
    })
    return row


def account_position_row(ex: Exchange, account_id: str, inst: Instrument,
                         side: PositionSide = "BOTH") -> dict[str, Any]:
    """One entry of /dapi/v1/account ``positions[]`` (one per leg in hedge mode)."""
    risk_row = position_risk_row(ex, account_id, inst, side)
    pos = ex.accounts[account_id].positions.get(position_key(inst.symbol, side))
    im = mm = Decimal(0)
    if pos is not None and pos.is_open:
        view = risk.settled_position_risk(ex, account_id, inst.symbol, side)
        im, mm = view.initial_margin_coin, risk.maint_margin(ex, pos)
    return {
        "symbol": inst.symbol,
        "positionAmt": risk_row["positionAmt"],
        "initialMargin": coin(im),
        "maintMargin": coin(mm),
        "unrealizedProfit": risk_row["unRealizedProfit"],
        "positionInitialMargin": coin(im),
        "openOrderInitialMargin": coin(Decimal(0)),
        "leverage": risk_row["leverage"],
        "isolated": risk_row["marginType"] == "isolated",
        "positionSide": side,
        "entryPrice": risk_row["entryPrice"],
        "maxQty": risk_row["maxQty"],
        "notionalValue": risk_row["notionalValue"],
        "isolatedWallet": risk_row["isolatedWallet"],
        "updateTime": risk_row["updateTime"],
    }


def asset_json(ex: Exchange, account_id: str, coin_name: str) -> dict[str, Any]:
    """One entry of /dapi/v1/account ``assets[]``.

    Cross numbers come from the engine's cross state; isolated positions add their wallets,
    PnL and margins, as on Binance (walletBalance includes isolated wallets). ccxt reads
    free = availableBalance, used = initialMargin, total = marginBalance; with no isolated
    position the three are written so that free + used == total exactly, which ccxt's balance
    validator requires.
    """
    account = ex.accounts[account_id]
    touched = bool(ex.ledger.history(wallet_account(account_id, coin_name)))
    totals = coin_totals(ex, account_id, coin_name)
    cross = totals.cross
    position_im, maint, wallet = totals.position_im_coin, totals.maint_coin, totals.wallet_coin
    margin_balance = coin(wallet + totals.unrealised_coin)
    initial = coin(position_im + cross.order_im_coin)
    available = coin(cross.available_coin)
    if not totals.has_isolated and cross.available_coin > 0:
        available = coin(max(Decimal(0), Decimal(margin_balance) - Decimal(initial)))
    return {
        "asset": coin_name,
        "walletBalance": coin(wallet),
        "unrealizedProfit": coin(totals.unrealised_coin),
        "marginBalance": margin_balance,
        "maintMargin": coin(maint),
        "initialMargin": initial,
        "positionInitialMargin": coin(position_im),
        "openOrderInitialMargin": coin(cross.order_im_coin),
        "maxWithdrawAmount": coin(min(cross.available_coin, cross.wallet_coin)),
        "crossWalletBalance": coin(cross.wallet_coin),
        "crossUnPnl": coin(cross.unrealised_coin),
        "availableBalance": available,
        # 0 for a coin the account never held, as on Binance (ccxt then skips the asset).
        "updateTime": max(account.update_ms, account.created_ms, 1) if touched else 0,
    }


def priced_instruments(ex: Exchange) -> list[Instrument]:
    """Instruments that trade in this scenario (the others have no mark price)."""
    return [inst for inst in ex.profile.instruments if inst.symbol in ex.pricers]


def account_json(ex: Exchange, account_id: str) -> dict[str, Any]:
    """The /dapi/v1/account body."""
    account = ex.accounts[account_id]
    return {
        "assets": [asset_json(ex, account_id, c) for c in sorted(ex.ledger.coins)],
        "positions": [account_position_row(ex, account_id, i, side)
                      for i in priced_instruments(ex) for side in ex.accounts[account_id].sides()],
        "canDeposit": True,
        "canTrade": True,
        "canWithdraw": True,
        "feeTier": 0,
        "updateTime": account.update_ms,
    }


def balance_rows(ex: Exchange, account_id: str) -> list[dict[str, Any]]:
    """The /dapi/v1/balance body."""
    rows = []
    for coin_name in sorted(ex.ledger.coins):
        asset = asset_json(ex, account_id, coin_name)
        rows.append({
            "accountAlias": f"perpsim{account_id}",
            "asset": coin_name,
            "balance": asset["walletBalance"],
            "withdrawAvailable": asset["maxWithdrawAmount"],
            "crossWalletBalance": asset["crossWalletBalance"],
            "crossUnPnl": asset["crossUnPnl"],
            "availableBalance": asset["availableBalance"],
            "updateTime": asset["updateTime"],
        })
    return rows
