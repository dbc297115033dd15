"""The spot wallet beside the COIN-M account: universal transfer and the spot balance.

A hedger holds coin in spot and deposits part of it as futures margin; top-ups and the final
withdrawal move coin between the two exactly as on Binance, so the same ccxt calls work:
``transfer('BTC', amount, 'spot', 'inverse')`` → POST /sapi/v1/asset/transfer
(type MAIN_CMFUTURE or CMFUTURE_MAIN), ``fetch_balance({'type': 'spot', 'subType': 'spot'})``
→ GET /api/v3/account (binancecoinm defaults to the inverse account without subType).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from perpsim.api.binance_coinm.account_auth import Signed
from perpsim.api.deps import dec
from perpsim.sim.errors import InvalidInput

router = APIRouter(tags=["wallet"])

_DIRECTIONS = {"MAIN_CMFUTURE": True, "CMFUTURE_MAIN": False}


@router.post("/sapi/v1/asset/transfer")
async def universal_transfer(call: Signed) -> dict[str, Any]:
    """Move coin between the spot wallet (MAIN) and the COIN-M futures wallet (CMFUTURE)."""
    kind = call.params.required("type")
    if kind not in _DIRECTIONS:
        raise InvalidInput(f"transfer type {kind!r} is not supported here; use "
                           f"{' or '.join(_DIRECTIONS)}")
    asset = call.params.required("asset")
    amount = call.params.decimal("amount", required=True)
    call.ex.transfer(call.account_id, asset, amount, to_futures=_DIRECTIONS[kind])
    return {"tranId": len(call.ex.journal)}


@router.get("/api/v3/account")
async def spot_account(call: Signed) -> dict[str, Any]:
    """The spot wallet's balances (what ccxt's fetch_balance({'type': 'spot'}) reads)."""
    ex = call.ex
    account = ex.account(call.account_id)
    return {
        "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
        "sellerCommission": 0, "canTrade": True, "canWithdraw": True, "canDeposit": True,
        "brokered": False, "requireSelfTradePrevention": False,
        "updateTime": max(account.update_ms, ex.now_ms), "accountType": "SPOT",
        "balances": [{"asset": coin, "free": dec(ex.spot_balance(call.account_id, coin), 8),
                      "locked": "0.00000000"} for coin in sorted(ex.ledger.coins)],
        "permissions": ["SPOT"],
    }
