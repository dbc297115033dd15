"""``/futures/data/*``: Binance COIN-M trading statistics (api/binance_coinm/futures_data.py).

Dull on purpose: parse (pair and period mandatory, −1102; an unknown period or contract type
−1130; limit 1..500, default 30), compute per period boundary, serialise as Binance does:
contracts as integer strings, coin values and prices with 8 decimals, ratios with 4.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request

from perpsim.api.binance_coinm import futures_data as fd
from perpsim.api.binance_coinm import market_wire as wire
from perpsim.api.binance_coinm.account_auth import Params
from perpsim.api.binance_coinm.signing import parse_params
from perpsim.api.deps import State, dec, query_text
from perpsim.sim.errors import InvalidInput
from perpsim.sim.profile import Instrument

router = APIRouter(prefix="/futures/data", tags=["binance coin-m trading statistics"])

LIMIT = (30, 500)
_ALL = "ALL"


def _ratio(value: Decimal) -> str:
    return dec(value, 4)


class _Query:
    """The parameters every statistics endpoint shares."""

    def __init__(self, request: Request, state: Any, *, contract: bool,
                 allow_all: bool = True) -> None:
        q = Params(parse_params(query_text(request)), state.exchange)
        self.ex = state.exchange
        self.pair = q.required("pair")
        self.period = q.required("period")
        if self.period not in fd.PERIODS:
            raise InvalidInput(f"Invalid period; one of {', '.join(fd.PERIODS)}.")
        self.instruments = [i for i in wire.pair_instruments(self.ex, self.pair)
                            if i.symbol in self.ex.pricers]
        self.contract_type = _ALL
        if contract:
            types = (*((_ALL,) if allow_all else ()), *wire.CONTRACT_TYPES)
            self.contract_type = q.required("contractType")
            if self.contract_type not in types:
                raise InvalidInput(f"Invalid contractType; one of {', '.join(types)}.")
            if self.contract_type != _ALL:
                self.instruments = [wire.contract_instrument(self.ex, self.pair,
                                                             self.contract_type)]
        if not self.instruments:
            raise InvalidInput(f"the scenario has no prices for {self.pair}")
        start, end = q.time_range()
        self.times = fd.boundaries(self.ex, self.period, start, end, q.limit(*LIMIT))
        self.symbols = [i.symbol for i in self.instruments]


@router.get("/openInterestHist")
async def open_interest_hist(request: Request, state: State) -> list[dict[str, Any]]:
    """Open interest of a pair's contract type at each period boundary."""
    q = _Query(request, state, contract=True)
    prices = {i.symbol: fd.prices_at(q.ex, i, q.period, q.times) for i in q.instruments}
    rows = []
    for snap in fd.snapshots(q.ex, q.symbols, q.times):
        contracts = fd.open_interest(snap, q.symbols)
        value = sum((_coin_value(i, fd.open_interest(snap, [i.symbol]),
                                 prices[i.symbol].get(snap.time_ms)) for i in q.instruments),
                    Decimal(0))
        rows.append({"pair": q.pair, "contractType": q.contract_type,
                     "sumOpenInterest": str(contracts), "sumOpenInterestValue": dec(value, 8),
                     "timestamp": snap.time_ms})
    return rows


def _coin_value(inst: Instrument, contracts: int, prices: tuple[Decimal, Decimal] | None
                ) -> Decimal:
    if not contracts or prices is None:
        return Decimal(0)
    return contracts * inst.contract_size_usd / prices[0]


@router.get("/topLongShortAccountRatio")
async def top_long_short_account_ratio(request: Request, state: State) -> list[dict[str, Any]]:
    """Long/short accounts among the top 20 % of holders."""
    return _ratios(_Query(request, state, contract=False), top=True, by_account=True)


@router.get("/topLongShortPositionRatio")
async def top_long_short_position_ratio(request: Request, state: State
                                        ) -> list[dict[str, Any]]:
    """Long/short contracts held by the top 20 % of holders."""
    return _ratios(_Query(request, state, contract=False), top=True, by_account=False)


@router.get("/globalLongShortAccountRatio")
async def global_long_short_account_ratio(request: Request, state: State
                                          ) -> list[dict[str, Any]]:
    """Long/short accounts among every holder."""
    return _ratios(_Query(request, state, contract=False), top=False, by_account=True)


def _ratios(q: _Query, *, top: bool, by_account: bool) -> list[dict[str, Any]]:
    rows = []
    side = "Account" if by_account else "Position"
    for snap in fd.snapshots(q.ex, q.symbols, q.times):
        holders = fd.positions_by_account(snap, q.symbols)
        if top:
            holders = fd.top_holders(holders)
        longs, shorts, ratio = (fd.account_ratio(holders) if by_account
                                else fd.position_ratio(holders))
        rows.append({"pair": q.pair, "longShortRatio": _ratio(ratio),
                     f"long{side}": _ratio(longs), f"short{side}": _ratio(shorts),
                     "timestamp": snap.time_ms})
    return rows


@router.get("/takerBuySellVol")
async def taker_buy_sell_volume(request: Request, state: State) -> list[dict[str, Any]]:
    """Taker buy and sell volume in each period ending at a boundary."""
    q = _Query(request, state, contract=True)
    rows = []
    for t in q.times:
        buy = sell = 0
        buy_coin = sell_coin = Decimal(0)
        for inst in q.instruments:
            b, s, bc, sc = fd.taker_volumes(q.ex, inst, q.period, t)
            buy, sell, buy_coin, sell_coin = buy + b, sell + s, buy_coin + bc, sell_coin + sc
        rows.append({"pair": q.pair, "contractType": q.contract_type, "takerBuyVol": str(buy),
                     "takerSellVol": str(sell), "takerBuyVolValue": dec(buy_coin, 8),
                     "takerSellVolValue": dec(sell_coin, 8), "timestamp": t})
    return rows


@router.get("/basis")
async def basis(request: Request, state: State) -> list[dict[str, Any]]:
    """The contract's price against the index at each boundary (no ALL: one contract)."""
    q = _Query(request, state, contract=True, allow_all=False)
    (inst,) = q.instruments
    rows = []
    for t, (futures_usd, index_usd) in sorted(fd.prices_at(q.ex, inst, q.period,
                                                           q.times).items()):
        spread = futures_usd - index_usd
        rows.append({"indexPrice": wire.mark(index_usd), "contractType": q.contract_type,
                     "basisRate": _ratio(spread / index_usd),
                     "futuresPrice": wire.price(inst, futures_usd),
                     "annualizedBasisRate": "", "basis": wire.mark(spread), "pair": q.pair,
                     "timestamp": t})
    return rows
