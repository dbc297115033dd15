"""Private COIN-M account routes: balances, positions, leverage, margin, income, listen keys.

Dull on purpose: authenticate (``Signed`` / ``KeyOnly``), read typed parameters, call the
engine, serialise with account_wire. Order routes live in account_orders.py and are mounted
through this module's ``router``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from perpsim.api.binance_coinm import account_orders
from perpsim.api.binance_coinm import account_wire as wire
from perpsim.api.binance_coinm.account_auth import KeyOnly, Signed
from perpsim.api.binance_coinm.market_info import leverage_brackets, symbol_brackets
from perpsim.api.deps import dec
from perpsim.sim.errors import InvalidInput, InvalidState, LeverageTooHigh

router = APIRouter(tags=["binance-coinm-account"])

V1 = "/dapi/v1"
MAX_LEVERAGE = 125  # Binance's bound on /dapi/v1/leverage (brackets may cap lower)
MARGIN_TYPES = {"ISOLATED": "isolated", "CROSSED": "cross"}


# ---- account and positions ----------------------------------------------------------------------
@router.get(f"{V1}/account")
async def account(call: Signed) -> dict[str, Any]:
    """Balances per coin and every position (ccxt fetch_balance)."""
    return wire.account_json(call.ex, call.account_id)


@router.get(f"{V1}/balance")
async def balance(call: Signed) -> list[dict[str, Any]]:
    """Wallet and available balance per coin."""
    return wire.balance_rows(call.ex, call.account_id)


@router.get(f"{V1}/positionRisk")
async def position_risk(call: Signed) -> list[dict[str, Any]]:
    """One row per tradable symbol (flat ones with entryPrice 0), filtered by pair/marginAsset."""
    inst = call.params.optional_instrument()
    pair = call.params.get("pair")
    asset = call.params.get("marginAsset")
    # Hedge mode: a LONG and a SHORT row per symbol, as Binance sends them.
    sides = call.ex.account(call.account_id).sides()
    return [wire.position_risk_row(call.ex, call.account_id, i, side)
            for i in wire.priced_instruments(call.ex)
            if (inst is None or i.symbol == inst.symbol) and (pair is None or i.pair == pair)
            and (asset is None or i.margin_asset == asset) for side in sides]


@router.get("/dapi/v2/leverageBracket")
async def leverage_bracket_v2(call: Signed) -> list[dict[str, Any]]:
    """Brackets per symbol, quantities in coin (ccxt fetch_leverage_tiers / fetch_positions)."""
    inst = call.params.optional_instrument()
    return leverage_brackets(call.ex.profile, None if inst is None else inst.symbol)


@router.get(f"{V1}/leverageBracket")
async def leverage_bracket_v1(call: Signed) -> list[dict[str, Any]]:
    """The older per-pair form: the pair's perpetual's brackets."""
    pair = call.params.get("pair")
    rows: dict[str, dict[str, Any]] = {}
    for inst in call.ex.profile.instruments:
        if (pair is None or inst.pair == pair) and inst.pair not in rows:
            rows[inst.pair] = {"pair": inst.pair, "brackets": symbol_brackets(inst)["brackets"]}
    if pair is not None and not rows:
        raise InvalidInput("Invalid pair.")
    return list(rows.values())


@router.post(f"{V1}/leverage")
async def set_leverage(call: Signed) -> dict[str, Any]:
    """Set a symbol's leverage (1–125, and within the position's bracket)."""
    inst = call.params.instrument()
    leverage = call.params.integer("leverage", required=True, maximum=10**6)
    assert leverage is not None
    if not 1 <= leverage <= MAX_LEVERAGE:
        raise LeverageTooHigh(f"Leverage {leverage} is not valid")
    pos = call.ex.set_leverage(call.account_id, inst.symbol, leverage)
    return {"leverage": pos.leverage, "maxQty": wire.max_qty_coin(inst, pos.leverage),
            "symbol": inst.symbol}


@router.post(f"{V1}/marginType")
async def set_margin_type(call: Signed) -> dict[str, Any]:
    """Switch a symbol between ISOLATED and CROSSED (−4046 when already so)."""
    inst = call.params.instrument()
    margin_type = call.params.choice("marginType", tuple(MARGIN_TYPES), required=True,
                                     message="Invalid marginType.")
    assert margin_type is not None
    call.ex.set_margin_mode(call.account_id, inst.symbol, MARGIN_TYPES[margin_type])
    return {"code": 200, "msg": "success"}


@router.post(f"{V1}/positionMargin")
async def position_margin(call: Signed) -> dict[str, Any]:
    """Add (type 1) or reduce (type 2) an isolated position's margin."""
    p = call.params
    inst = p.instrument()
    amount = p.decimal("amount", required=True)
    kind = p.choice("type", ("1", "2"), required=True, message="Invalid type.")
    side = p.position_side() or "BOTH"
    call.ex.adjust_isolated_margin(call.account_id, inst.symbol, amount, add=kind == "1",
                                   position_side=side)
    return {"amount": float(amount or 0), "code": 200,
            "msg": "Successfully modify position margin.", "type": int(kind or 0)}


@router.get(f"{V1}/positionMargin/history")
async def position_margin_history(call: Signed) -> list[dict[str, Any]]:
    """The caller's isolated-margin changes on a symbol, oldest first."""
    inst = call.params.instrument()
    kind = call.params.choice("type", ("1", "2"), message="Invalid type.")
    start, end = call.params.time_range()
    limit = call.params.limit(50, 500)
    rows = []
    for event in call.ex.journal:
        p = event.payload
        if (event.type != "margin.transfer" or p["account_id"] != call.account_id
                or p["symbol"] != inst.symbol):
            continue
        adds = not p["amount"].startswith("-")
        if kind is not None and adds != (kind == "1"):
            continue
        rows.append({"amount": p["amount"].lstrip("-"), "asset": p["coin"],
                     "symbol": inst.symbol, "time": event.time_ms, "type": 1 if adds else 2,
                     "positionSide": p.get("position_side", "BOTH")})
    return wire.select_window(rows, "time", start, end, limit)


@router.get(f"{V1}/income")
async def income(call: Signed) -> list[dict[str, Any]]:
    """The caller's income history (funding, realised PnL, commission, transfers...)."""
    p = call.params
    inst = p.optional_instrument()
    income_type = p.choice("incomeType", wire.INCOME_TYPE_NAMES, message="Invalid incomeType.")
    start, end = p.time_range()
    limit = p.limit(100, 1000)
    rows = [r for r in wire.income_rows(call.ex, call.account_id,
                                        call.ex.ledger.history_of(call.account_id))
            if (inst is None or r["symbol"] == inst.symbol)
            and (income_type is None or r["incomeType"] == income_type)]
    return wire.select_window(rows, "time", start, end, limit)


@router.get(f"{V1}/commissionRate")
async def commission_rate(call: Signed) -> dict[str, Any]:
    """The maker and taker fee rates of a symbol."""
    inst = call.params.instrument()
    fees = call.ex.profile.fees
    return {"symbol": inst.symbol, "makerCommissionRate": dec(fees.maker_rate),
            "takerCommissionRate": dec(fees.taker_rate)}


@router.get(f"{V1}/positionSide/dual")
async def position_mode(call: Signed) -> dict[str, Any]:
    """The account's position mode: true is hedge mode (dual-side positions)."""
    return {"dualSidePosition": call.ex.account(call.account_id).dual_side_position}


@router.post(f"{V1}/positionSide/dual")
async def set_position_mode(call: Signed) -> dict[str, Any]:
    """Switch one-way ↔ hedge mode for every symbol (−4059 already, −4067 open orders, −4068
    open positions)."""
    call.params.required("dualSidePosition")
    call.ex.set_position_mode(call.account_id, call.params.boolean("dualSidePosition"))
    return {"code": 200, "msg": "success"}


# ---- user data stream keys (API key only, no signature) -----------------------------------------
@router.post(f"{V1}/listenKey")
async def new_listen_key(call: KeyOnly) -> dict[str, str]:
    """The account's live listen key, or a new one."""
    return {"listenKey": call.state.listen_key_for(call.account_id)}


@router.put(f"{V1}/listenKey")
async def keep_alive_listen_key(call: KeyOnly) -> dict[str, str]:
    """Extend the account's listen key by 60 minutes."""
    if not call.state.keep_alive(call.account_id):
        raise InvalidState("This listenKey does not exist.")
    return {"listenKey": call.state.listen_key_for(call.account_id)}


@router.delete(f"{V1}/listenKey")
async def close_listen_key(call: KeyOnly) -> dict[str, Any]:
    """Close the account's user data stream."""
    call.state.close_listen_key(call.account_id)
    return {}


# After this module's own routes: requests are matched against routes in order, and the reads a
# hedging client makes at every step (/account, /positionRisk, /income) are the most frequent.
router.include_router(account_orders.router)
