"""Public v5 market data under ``/v5/market`` (``category=inverse``).

Dull on purpose: parse (params.py), ask the engine, shape (market_wire.py), wrap in the
envelope. Times are simulated; a symbol the scenario has no prices for is left out of the
all-symbols lists and answers the engine's InvalidState (10001) when named.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from perpsim.api.bybit_v5 import market_wire as wire
from perpsim.api.bybit_v5.errors import envelope
from perpsim.api.bybit_v5.params import CATEGORY, Params, Public
from perpsim.api.bybit_v5.route_class import BybitRoute
from perpsim.sim import market_data
from perpsim.sim.exchange import Exchange
from perpsim.sim.market_data import PriceKind
from perpsim.sim.profile import Instrument

router = APIRouter(prefix="/v5/market", tags=["bybit v5 market data"], route_class=BybitRoute)

ORDERBOOK_LIMIT = (25, 200)  # inverse: default 25, max 200
TRADES_LIMIT = (500, 1000)
KLINE_LIMIT = (200, 1000)
FUNDING_LIMIT = (200, 200)


def _empty(q: Params) -> dict[str, Any]:
    """A list answer for a category perpsim lists nothing in."""
    return envelope({"category": q.get("category"), "list": [], "nextPageCursor": ""},
                    q.ex.now_ms)


def _quoted(ex: Exchange) -> list[Instrument]:
    return [inst for inst in ex.profile.instruments if inst.symbol in ex.pricers]


def _symbol(q: Params) -> Instrument:
    inst = q.instrument()
    q.ex.pricer(inst.symbol)  # InvalidState naming the scenario if it has no prices
    return inst


def _selection(q: Params) -> list[Instrument]:
    inst = q.optional_instrument()
    if inst is not None:
        q.ex.pricer(inst.symbol)
        return [inst]
    return _quoted(q.ex)


@router.get("/time")
async def server_time(q: Public) -> dict[str, Any]:
    """The simulated time (seconds and nanoseconds, as Bybit)."""
    now = q.ex.now_ms
    return envelope({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}, now)


@router.get("/instruments-info")
async def instruments_info(q: Public) -> dict[str, Any]:
    """The inverse contracts (ccxt's load_markets asks twice: a second time for PreLaunch)."""
    if not q.serves_category():
        return _empty(q)
    status = q.choice("status", ("Trading", "PreLaunch", "Settling", "Delivering", "Closed"))
    rows = [] if status not in (None, "Trading") else [
        wire.instrument_row(q.ex, inst) for inst in _selection(q)]
    return envelope({"category": CATEGORY, "list": rows, "nextPageCursor": ""}, q.ex.now_ms)


@router.get("/tickers")
async def tickers(q: Public) -> dict[str, Any]:
    """24-hour statistics, best prices, mark, index and funding of a symbol or all."""
    if not q.serves_category():
        return _empty(q)
    rows = [wire.ticker_row(q.ex, inst) for inst in _selection(q)]
    return envelope({"category": CATEGORY, "list": rows}, q.ex.now_ms)


@router.get("/orderbook")
async def orderbook(q: Public) -> dict[str, Any]:
    """Order book snapshot of one symbol."""
    q.category()
    inst = _symbol(q)
    limit = q.limit(*ORDERBOOK_LIMIT)
    version = q.ex.refresh_book(inst.symbol).version
    return envelope(wire.orderbook(q.ex, inst, limit, version), q.ex.now_ms)


@router.get("/recent-trade")
async def recent_trades(q: Public) -> dict[str, Any]:
    """The latest public trades, newest first."""
    q.category()
    inst = _symbol(q)
    trades = q.ex.states[inst.symbol].trades[-q.limit(*TRADES_LIMIT):]
    rows = [wire.trade_row(inst, t) for t in reversed(trades)]
    return envelope({"category": CATEGORY, "list": rows}, q.ex.now_ms)


def _klines(q: Params, kind: PriceKind) -> dict[str, Any]:
    q.category(required=False)  # Bybit defaults klines to linear; ccxt always sends it
    inst = _symbol(q)
    interval = wire.checked_interval(q.required("interval"))
    start, end = q.integer("start"), q.integer("end")
    candles = market_data.candles(q.ex, inst.symbol, interval, kind, start, end,
                                  q.limit(*KLINE_LIMIT))
    rows = [wire.kline_row(c, inst, with_volume=kind == "last") for c in reversed(candles)]
    return envelope({"category": CATEGORY, "symbol": inst.symbol, "list": rows}, q.ex.now_ms)


@router.get("/kline")
async def kline(q: Public) -> dict[str, Any]:
    """Last-price candles, newest first (volume in contracts, turnover in coin)."""
    return _klines(q, "last")


@router.get("/mark-price-kline")
async def mark_price_kline(q: Public) -> dict[str, Any]:
    """Mark-price candles, newest first."""
    return _klines(q, "mark")


@router.get("/index-price-kline")
async def index_price_kline(q: Public) -> dict[str, Any]:
    """Index-price candles, newest first."""
    return _klines(q, "index")


@router.get("/funding/history")
async def funding_history(q: Public) -> dict[str, Any]:
    """Settled funding rates, newest first (``endTime`` bounds them; ``limit`` up to 200)."""
    q.category()
    inst = _symbol(q)
    start, end = q.time_range()
    settled = [(t, r) for t, r in q.ex.states[inst.symbol].funding_history
               if (start is None or t >= start) and (end is None or t <= end)]
    chosen = list(reversed(settled))[:q.limit(*FUNDING_LIMIT)]
    rows = [wire.funding_row(inst, t, r) for t, r in chosen]
    return envelope({"category": CATEGORY, "list": rows}, q.ex.now_ms)


@router.get("/risk-limit")
async def risk_limit(q: Public) -> dict[str, Any]:
    """Risk-limit tiers: the profile's brackets."""
    q.category()
    rows = [wire.risk_limit_row(inst, b) for inst in _selection(q) for b in inst.brackets]
    return envelope({"category": CATEGORY, "list": rows, "nextPageCursor": ""}, q.ex.now_ms)
