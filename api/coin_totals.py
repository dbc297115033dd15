"""An account's totals in one margin coin, cross wallet plus isolated positions: what every
dialect's balance rows are written from (Binance's ``assets[]``, Bybit's ``coin[]``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from perpsim.sim import risk
from perpsim.sim.exchange import Exchange

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class CoinTotals:
    """The cross state and the sums over the coin's isolated positions."""

    cross: risk.CrossState
    has_isolated: bool
    wallet_coin: Decimal  # cross wallet + isolated margins
    unrealised_coin: Decimal  # cross + isolated unrealised PnL
    position_im_coin: Decimal
    maint_coin: Decimal


def coin_totals(ex: Exchange, account_id: str, coin_name: str) -> CoinTotals:
    """The account's totals in ``coin_name`` now."""
    account = ex.accounts[account_id]
    cross = risk.cross_state(ex, account_id, coin_name)
    isolated = [risk.settled_position_risk(ex, account_id, p.symbol, p.position_side)
                for p in account.open_positions()
                if p.coin == coin_name and p.margin_mode == "isolated"]
    return CoinTotals(
        cross=cross, has_isolated=bool(isolated),
        wallet_coin=cross.wallet_coin + sum((v.isolated_margin_coin for v in isolated), ZERO),
        unrealised_coin=cross.unrealised_coin + sum((v.unrealised_pnl_coin for v in isolated),
                                                    ZERO),
        position_im_coin=cross.position_im_coin + sum((v.initial_margin_coin for v in isolated),
                                                      ZERO),
        maint_coin=cross.maint_coin + sum((v.maint_margin_coin for v in isolated), ZERO))
