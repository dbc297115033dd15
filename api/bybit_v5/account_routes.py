"""Private v5 account, position and asset endpoints.

perpsim emulates Bybit's *classic* account (not the unified trading account): inverse
contracts margin from the CONTRACT wallet, coin held outside it sits in SPOT (FUND is the same
wallet: perpsim keeps one spot wallet per coin). ``/v5/user/query-api`` and
``/v5/account/info`` say so (``unified 0``, ``uta 0``), which is what makes ccxt.bybit use the
classic calls (``switch-isolated`` for the margin mode, ``accountType=CONTRACT``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter

from perpsim.api.bybit_v5 import account_wire as wire
from perpsim.api.bybit_v5.errors import LEVERAGE_NOT_MODIFIED, BybitError, envelope
from perpsim.api.bybit_v5.params import CATEGORY, Call, Private, page
from perpsim.api.bybit_v5.position_mode import BOTH_SIDES, MODES, position_side
from perpsim.api.bybit_v5.route_class import BybitRoute
from perpsim.sim.errors import InvalidInput

router = APIRouter(prefix="/v5", tags=["bybit v5 account"], route_class=BybitRoute)

CONTRACT_ACCOUNTS = ("CONTRACT",)
SPOT_ACCOUNTS = ("SPOT", "FUND")
# The classic account's unifiedMarginStatus (1: classic account).
CLASSIC_ACCOUNT_STATUS = 1
TRANSACTION_LIMIT = (20, 50)


def _ok(call: Call, result: Any) -> dict[str, Any]:
    return envelope(result, call.ex.now_ms)


# ---- the account model -----------------------------------------------------------------------
@router.get("/user/query-api")
async def query_api(call: Private) -> dict[str, Any]:
    """The key's owner: a classic (non-unified) account with trade and transfer rights."""
    account = call.ex.account(call.account_id)
    return _ok(call, {
        "id": call.account_id, "note": account.label, "apiKey": account.api_key,
        "readOnly": 0, "secret": "", "permissions": {
            "ContractTrade": ["Order", "Position"], "Spot": [], "Wallet": ["AccountTransfer"],
            "Options": [], "Derivatives": [], "CopyTrading": [], "BlockTrade": [],
            "Exchange": [], "NFT": [], "Affiliate": []},
        "ips": ["*"], "type": 1, "deadlineDay": -1, "expiredAt": "", "createdAt": "",
        "unified": 0, "uta": 0, "userID": call.account_id, "inviterID": 0, "vipLevel":
        "No VIP", "mktMakerLevel": "0", "affiliateID": 0, "rsaPublicKey": "",
        "isMaster": True, "parentUid": "0", "kycLevel": "LEVEL_DEFAULT", "kycRegion": ""})


@router.get("/account/info")
async def account_info(call: Private) -> dict[str, Any]:
    """The account's margin model: classic, regular margin."""
    return _ok(call, {"unifiedMarginStatus": CLASSIC_ACCOUNT_STATUS,
                      "marginMode": "REGULAR_MARGIN", "isMasterTrader": False,
                      "spotHedgingStatus": "OFF", "updatedTime": str(call.ex.now_ms),
                      "dcpStatus": "OFF", "timeWindow": 0, "smpGroup": 0})


@router.get("/asset/coin/query-info")
async def coin_info(call: Private) -> dict[str, Any]:
    """Coins the venue knows (no deposit or withdrawal networks are simulated)."""
    coins = sorted({inst.margin_asset for inst in call.ex.profile.instruments})
    return _ok(call, {"rows": [{"name": c, "coin": c, "remainAmount": "0", "chains": []}
                               for c in coins]})


# ---- wallet ----------------------------------------------------------------------------------
def _coins(call: Call) -> list[str]:
    wanted = call.params.get("coin")
    known = sorted(call.ex.ledger.coins)
    if wanted is None:
        return known
    chosen = [c for c in wanted.split(",") if c]
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise InvalidInput(f"coin {', '.join(unknown)} is not held at this venue")
    return chosen


@router.get("/account/wallet-balance")
async def wallet_balance(call: Private) -> dict[str, Any]:
    """The CONTRACT (or SPOT) wallet of a classic account."""
    kind = call.params.choice("accountType", (*CONTRACT_ACCOUNTS, "SPOT", "UNIFIED"),
                              required=True)
    if kind == "UNIFIED":
        raise InvalidInput("accountType UNIFIED: this is a classic account; use CONTRACT "
                           "(contract wallet) or SPOT")
    if kind == "SPOT":
        rows = [wire.spot_coin_row(call.ex, call.account_id, c) for c in _coins(call)]
    else:
        rows = [wire.contract_coin_row(call.ex, call.account_id, c) for c in _coins(call)]
    return _ok(call, {"list": [{"accountType": kind, "accountIMRate": "", "accountMMRate": "",
                                "totalEquity": "", "totalWalletBalance": "",
                                "totalMarginBalance": "", "totalAvailableBalance": "",
                                "totalPerpUPL": "", "totalInitialMargin": "",
                                "totalMaintenanceMargin": "", "accountLTV": "",
                                "coin": rows}]})


@router.get("/account/fee-rate")
async def fee_rate(call: Private) -> dict[str, Any]:
    """The profile's maker and taker rates for every contract (or the one asked)."""
    call.params.category()
    inst = call.params.optional_instrument()
    fees = call.ex.profile.fees
    chosen = [inst] if inst is not None else list(call.ex.profile.instruments)
    return _ok(call, {"category": CATEGORY, "list": [
        {"symbol": i.symbol, "baseCoin": i.base_asset,
         "takerFeeRate": format(fees.taker_rate, "f"),
         "makerFeeRate": format(fees.maker_rate, "f")} for i in chosen]})


def _transactions(call: Call) -> dict[str, Any]:
    p = call.params
    inst = p.optional_instrument()
    wanted_coin = p.get("currency") or p.get("coin")
    kind = p.get("type")
    start, end = p.time_range()
    rows = [r for r in reversed(wire.transaction_rows(call.ex, call.account_id))
            if (inst is None or r["symbol"] == inst.symbol)
            and (wanted_coin is None or r["currency"] == wanted_coin)
            and (kind is None or r["type"] == kind)
            and (start is None or int(r["transactionTime"]) >= start)
            and (end is None or int(r["transactionTime"]) <= end)]
    chosen, cursor = page(rows, p, *TRANSACTION_LIMIT)
    return _ok(call, {"list": chosen, "nextPageCursor": cursor})


@router.get("/account/transaction-log")
async def transaction_log(call: Private) -> dict[str, Any]:
    """Every change of the contract wallet, newest first (trades, funding, transfers)."""
    return _transactions(call)


@router.get("/account/contract-transaction-log")
async def contract_transaction_log(call: Private) -> dict[str, Any]:
    """The classic account's name for the same log."""
    return _transactions(call)


# ---- positions -------------------------------------------------------------------------------
@router.get("/position/list")
async def position_list(call: Private) -> dict[str, Any]:
    """The caller's position on a symbol, on every contract of ``settleCoin``, or (inverse
    needs neither, as on Bybit) on every contract."""
    p = call.params
    if not p.serves_category():
        return _ok(call, {"category": p.get("category"), "list": [], "nextPageCursor": ""})
    inst = p.optional_instrument()
    settle = p.get("settleCoin")
    chosen = [inst] if inst is not None else [
        i for i in call.ex.profile.instruments
        if (settle is None or i.margin_asset == settle) and i.symbol in call.ex.pricers]
    rows = [row for i in chosen for row in wire.position_rows(call.ex, call.account_id, i)]
    return _ok(call, {"category": CATEGORY, "list": rows, "nextPageCursor": ""})


@router.get("/position/closed-pnl")
async def closed_pnl(call: Private) -> dict[str, Any]:
    """Orders that closed contracts, newest first, with their entry, exit and net PnL."""
    p = call.params
    if not p.serves_category():
        return _ok(call, {"category": p.get("category"), "list": [], "nextPageCursor": ""})
    inst = p.optional_instrument()
    start, end = p.time_range()
    conditional_of = {a.order_id: a for a in call.ex.algo_orders.values()
                      if a.order_id is not None}
    rows = [r for r in reversed(wire.closed_pnl_rows(call.ex, call.account_id, conditional_of))
            if (inst is None or r["symbol"] == inst.symbol)
            and (start is None or int(r["updatedTime"]) >= start)
            and (end is None or int(r["updatedTime"]) <= end)]
    chosen, cursor = page(rows, p, *TRANSACTION_LIMIT)
    return _ok(call, {"category": CATEGORY, "list": chosen, "nextPageCursor": cursor})


def _leverage(call: Call, name: str) -> int:
    value = call.params.decimal(name, required=True)
    assert value is not None
    if value != value.to_integral_value():
        raise InvalidInput(f"{name} {value}: perpsim's contracts take whole leverage")
    return int(value)


def _one_leverage(call: Call) -> int:
    """buyLeverage = sellLeverage: perpsim keeps one leverage per symbol (both hedge legs)."""
    buy, sell = _leverage(call, "buyLeverage"), _leverage(call, "sellLeverage")
    if buy != sell:
        raise InvalidInput(f"buyLeverage {buy} and sellLeverage {sell} must be equal: perpsim "
                           "keeps one leverage per symbol, shared by both hedge-mode legs")
    return buy


@router.post("/position/set-leverage")
async def set_leverage(call: Private) -> dict[str, Any]:
    """Set the symbol's leverage (one for the one-way position or both hedge legs)."""
    call.params.category()
    inst = call.params.instrument()
    buy = _one_leverage(call)
    if call.ex.position(call.account_id, inst.symbol).leverage == buy:
        raise BybitError(LEVERAGE_NOT_MODIFIED, "leverage not modified")
    call.ex.set_leverage(call.account_id, inst.symbol, buy)
    return _ok(call, {})


@router.post("/position/switch-isolated")
async def switch_isolated(call: Private) -> dict[str, Any]:
    """Cross (tradeMode 0) ↔ isolated (1), setting the leverage with it."""
    p = call.params
    p.category()
    inst = p.instrument()
    mode = p.choice("tradeMode", ("0", "1"), required=True)
    buy = _one_leverage(call)
    call.ex.set_margin_mode(call.account_id, inst.symbol, "isolated" if mode == "1" else "cross")
    if call.ex.position(call.account_id, inst.symbol).leverage != buy:
        call.ex.set_leverage(call.account_id, inst.symbol, buy)
    return _ok(call, {})


@router.post("/position/switch-mode")
async def switch_mode(call: Private) -> dict[str, Any]:
    """Position mode: one-way (0) or hedge (3, both sides), for a ``symbol`` or a ``coin``
    (perpsim keeps the mode per account). Refused while positions (110024) or orders (110028)
    are open; 110025 when nothing changes."""
    p = call.params
    p.category()
    mode = p.choice("mode", MODES, required=True)
    if p.get("symbol") is not None:
        p.instrument()
    elif p.get("coin") is not None:
        coins = sorted({i.margin_asset for i in call.ex.profile.instruments})
        p.choice("coin", coins)
    else:
        raise InvalidInput("symbol or coin is required")
    call.ex.set_position_mode(call.account_id, mode == BOTH_SIDES)
    return _ok(call, {})


@router.post("/position/add-margin")
async def add_margin(call: Private) -> dict[str, Any]:
    """Add (positive) or reduce (negative) an isolated position's (or hedge leg's) margin."""
    p = call.params
    p.category()
    inst = p.instrument()
    leg = position_side(p.get("positionIdx"), call.ex.account(call.account_id))
    amount = p.decimal("margin", required=True)
    assert amount is not None
    if amount == 0:
        raise InvalidInput("margin must not be zero")
    call.ex.adjust_isolated_margin(call.account_id, inst.symbol, abs(amount), add=amount > 0,
                                   position_side=leg)
    return _ok(call, wire.position_row(call.ex, call.account_id, inst, leg))


# ---- asset: the spot ↔ contract transfer --------------------------------------------------------
@router.post("/asset/transfer/inter-transfer")
async def inter_transfer(call: Private) -> dict[str, Any]:
    """Move coin between SPOT/FUND and CONTRACT (the hedge's spot leg)."""
    p = call.params
    transfer_id = p.required("transferId")
    source = p.choice("fromAccountType", CONTRACT_ACCOUNTS + SPOT_ACCOUNTS, required=True)
    target = p.choice("toAccountType", CONTRACT_ACCOUNTS + SPOT_ACCOUNTS, required=True)
    if (source in CONTRACT_ACCOUNTS) == (target in CONTRACT_ACCOUNTS):
        raise InvalidInput(f"a transfer from {source} to {target} moves nothing here: "
                           "transfer between CONTRACT and SPOT/FUND")
    amount = p.decimal("amount", required=True)
    call.ex.transfer(call.account_id, p.required("coin"), amount,
                     to_futures=target in CONTRACT_ACCOUNTS)
    return _ok(call, {"transferId": transfer_id, "status": "SUCCESS"})


@router.get("/asset/transfer/query-account-coins-balance")
async def account_coins_balance(call: Private) -> dict[str, Any]:
    """Balances of one wallet: CONTRACT, or SPOT/FUND (the spot wallet)."""
    kind = call.params.choice("accountType", CONTRACT_ACCOUNTS + SPOT_ACCOUNTS, required=True)
    rows = []
    for coin_name in _coins(call):
        if kind in SPOT_ACCOUNTS:
            amount = call.ex.spot_balance(call.account_id, coin_name)
            transferable = amount
        else:
            row = wire.contract_coin_row(call.ex, call.account_id, coin_name)
            amount, transferable = Decimal(row["walletBalance"]), Decimal(row[
                "availableToWithdraw"])
        rows.append({"coin": coin_name, "walletBalance": wire.coin(amount),
                     "transferBalance": wire.coin(transferable), "bonus": "0"})
    return _ok(call, {"accountType": kind, "bizType": 1, "accountId": call.account_id,
                      "memberId": call.account_id, "balance": rows})


@router.get("/asset/transfer/query-inter-transfer-list")
async def transfer_list(call: Private) -> dict[str, Any]:
    """Transfers between the spot and contract wallets, newest first."""
    rows = [r for r in reversed(wire.transaction_rows(call.ex, call.account_id))
            if r["type"] in ("TRANSFER_IN", "TRANSFER_OUT")]
    out = [{"transferId": r["id"], "coin": r["currency"], "amount": r["change"].lstrip("-"),
            "fromAccountType": "SPOT" if r["type"] == "TRANSFER_IN" else "CONTRACT",
            "toAccountType": "CONTRACT" if r["type"] == "TRANSFER_IN" else "SPOT",
            "timestamp": r["transactionTime"], "status": "SUCCESS"} for r in rows]
    chosen, cursor = page(out, call.params, *TRANSACTION_LIMIT)
    return _ok(call, {"list": chosen, "nextPageCursor": cursor})
