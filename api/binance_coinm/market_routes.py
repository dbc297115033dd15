"""Public (unsigned) COIN-M market data under ``/dapi/v1``: what ccxt's fetch_* market calls use.

Dull on purpose: parse the query strictly (api/binance_coinm/account_auth.py's ``Params``:
−1100 malformed, −1102 missing, −1121 unknown symbol, −1130 out of range), ask the engine,
serialise with api/binance_coinm/market_wire.py. Times are simulated; the book's
``lastUpdateId`` is the counter the depth stream uses (api/binance_coinm/sequence.py). A
symbol the profile lists but the scenario has no prices for answers the engine's
InvalidState (−1020, naming the scenario) and is left out of every all-symbols list.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request

from perpsim.api.auth import secret_lookup
from perpsim.api.binance_coinm import market_wire as wire
from perpsim.api.binance_coinm.account_auth import Params
from perpsim.api.binance_coinm.market_info import exchange_info
from perpsim.api.binance_coinm.sequence import depth_update_id
from perpsim.api.binance_coinm.signing import api_key_only, parse_params
from perpsim.api.deps import State, query_text
from perpsim.api.state import ServerState
from perpsim.sim import market_data
from perpsim.sim.exchange import Exchange, Trade
from perpsim.sim.market_data import PriceKind
from perpsim.sim.profile import Instrument

router = APIRouter(prefix="/dapi/v1", tags=["binance coin-m market data"])

# Binance's defaults and maxima per endpoint (COIN-M market-data docs). Depth serves any limit
# in 1..1000, not only Binance's 5/10/20/50/100/500/1000 (ccxt passes the user's limit as is).
DEPTH_LIMIT = (500, 1000)
TRADES_LIMIT = (500, 1000)
HISTORICAL_TRADES_LIMIT = (100, 500)
AGG_TRADES_LIMIT = (500, 1000)
KLINES_LIMIT = (500, market_data.MAX_CANDLES)
FUNDING_RATE_LIMIT = (100, 1000)


def _query(request: Request, state: ServerState) -> Params:
    """The query's parameters (a repeated name is −1101), with Binance-strict getters."""
    return Params(parse_params(query_text(request)), state.exchange)


def _quoted(ex: Exchange, inst: Instrument) -> Instrument:
    """``inst`` if the scenario prices it; else the engine's InvalidState."""
    ex.pricer(inst.symbol)
    return inst


def _symbol(q: Params) -> Instrument:
    """The mandatory, quotable ``symbol``."""
    return _quoted(q.ex, q.instrument())


def _selection(q: Params) -> list[Instrument]:
    """``symbol`` or ``pair`` or neither (every quotable instrument)."""
    symbol = q.optional_instrument()
    return wire.requested(q.ex, None if symbol is None else _quoted(q.ex, symbol), q.get("pair"))


@router.get("/ping")
async def ping() -> dict[str, Any]:
    """Connectivity check."""
    return {}


@router.get("/time")
async def server_time(state: State) -> dict[str, int]:
    """The simulated time."""
    return {"serverTime": state.exchange.now_ms}


@router.get("/exchangeInfo")
async def exchange_information(state: State) -> dict[str, Any]:
    """Instruments, filters, order types (ccxt's load_markets)."""
    return exchange_info(state.exchange.profile, state.exchange.now_ms)


@router.get("/depth")
async def depth(request: Request, state: State) -> dict[str, Any]:
    """Order book snapshot; ``lastUpdateId`` on the depth stream's counter."""
    q = _query(request, state)
    inst = _symbol(q)
    limit = q.limit(*DEPTH_LIMIT)
    return wire.depth(q.ex, inst, depth_update_id(state, inst.symbol), limit)


@router.get("/trades")
async def recent_trades(request: Request, state: State) -> list[dict[str, Any]]:
    """The latest public trades."""
    q = _query(request, state)
    inst = _symbol(q)
    trades = wire.window(q.ex.states[inst.symbol].trades, _time, None, None,
                         q.limit(*TRADES_LIMIT))
    return [wire.trade_row(inst, t) for t in trades]


@router.get("/historicalTrades")
async def historical_trades(request: Request, state: State) -> list[dict[str, Any]]:
    """Older public trades from ``fromId`` (MARKET_DATA: needs a known API key header)."""
    ex = state.exchange
    api_key_only(request.headers, secret_lookup(ex))
    q = _query(request, state)
    inst = _symbol(q)
    limit = q.limit(*HISTORICAL_TRADES_LIMIT)
    from_id = q.integer("fromId")
    trades = [t for t in ex.states[inst.symbol].trades if from_id is None or t.trade_id >= from_id]
    chosen = wire.window(trades, _time, None, None, limit, from_start=from_id is not None)
    return [wire.trade_row(inst, t) for t in chosen]


@router.get("/aggTrades")
async def aggregate_trades(request: Request, state: State) -> list[dict[str, Any]]:
    """Public trades in ccxt's fetch_trades shape, by ``fromId`` or time window."""
    q = _query(request, state)
    inst = _symbol(q)
    start, end = q.time_range()
    limit = q.limit(*AGG_TRADES_LIMIT)
    from_id = q.integer("fromId")
    trades = [t for t in q.ex.states[inst.symbol].trades
              if from_id is None or t.trade_id >= from_id]
    chosen = wire.window(trades, _time, start, end, limit, from_start=from_id is not None)
    return [wire.agg_trade_row(inst, t) for t in chosen]


@router.get("/premiumIndex")
async def premium_index(request: Request, state: State) -> list[dict[str, Any]]:
    """Mark, index and funding of a symbol, a pair or all: always a list (ccxt takes [0])."""
    q = _query(request, state)
    return [wire.premium_index(q.ex, inst) for inst in _selection(q)]


@router.get("/fundingRate")
async def funding_rate_history(request: Request, state: State) -> list[dict[str, Any]]:
    """Settled funding rates of a perpetual, oldest first."""
    q = _query(request, state)
    inst = _symbol(q)
    start, end = q.time_range()
    limit = q.limit(*FUNDING_RATE_LIMIT)
    rows = wire.window(q.ex.states[inst.symbol].funding_history, _first, start, end, limit)
    return [wire.funding_rate_row(inst, t, rate) for t, rate in rows]


@router.get("/fundingInfo")
async def funding_info(state: State) -> list[dict[str, Any]]:
    """Funding cap, floor and interval of every quotable perpetual."""
    ex = state.exchange
    return [wire.funding_info(ex, inst) for inst in wire.tradable(ex) if inst.is_perpetual]


@router.get("/klines")
async def klines(request: Request, state: State) -> list[list[Any]]:
    """Last-price candles (row[5] contracts, row[7] coin volume)."""
    q = _query(request, state)
    return _klines(q, _symbol(q), "last")


@router.get("/continuousKlines")
async def continuous_klines(request: Request, state: State) -> list[list[Any]]:
    """Last-price candles of the ``pair``'s contract of ``contractType``."""
    q = _query(request, state)
    inst = wire.contract_instrument(q.ex, q.required("pair"), q.required("contractType"))
    return _klines(q, _quoted(q.ex, inst), "last")


@router.get("/markPriceKlines")
async def mark_price_klines(request: Request, state: State) -> list[list[Any]]:
    """Mark-price candles of a symbol."""
    q = _query(request, state)
    return _klines(q, _symbol(q), "mark")


@router.get("/indexPriceKlines")
async def index_price_klines(request: Request, state: State) -> list[list[Any]]:
    """Index candles of a ``pair`` (Binance takes the pair here, not a symbol)."""
    q = _query(request, state)
    inst = wire.pair_instrument(q.ex, q.required("pair"))
    return _klines(q, _quoted(q.ex, inst), "index")


@router.get("/premiumIndexKlines")
async def premium_index_klines(request: Request, state: State) -> list[list[Any]]:
    """Premium-index candles of a symbol (the samples funding averages; mark-kline shape)."""
    q = _query(request, state)
    return _klines(q, _symbol(q), "premium")


@router.get("/ticker/24hr")
async def ticker_24hr(request: Request, state: State) -> list[dict[str, Any]]:
    """Rolling 24-hour statistics: always a list."""
    q = _query(request, state)
    return [wire.ticker_24hr(q.ex, inst) for inst in _selection(q)]


@router.get("/ticker/price")
async def ticker_price(request: Request, state: State) -> list[dict[str, Any]]:
    """Last price: always a list."""
    q = _query(request, state)
    return [wire.price_ticker(q.ex, inst) for inst in _selection(q)]


@router.get("/ticker/bookTicker")
async def book_ticker(request: Request, state: State) -> list[dict[str, Any]]:
    """Best bid and ask: always a list."""
    q = _query(request, state)
    return [wire.book_ticker(q.ex, inst, depth_update_id(state, inst.symbol))
            for inst in _selection(q)]


@router.get("/openInterest")
async def open_interest(request: Request, state: State) -> dict[str, Any]:
    """Contracts open on a symbol."""
    q = _query(request, state)
    return wire.open_interest(q.ex, _symbol(q))


def _klines(q: Params, inst: Instrument, kind: PriceKind) -> list[list[Any]]:
    interval = wire.checked_interval(q.required("interval"))
    start, end = q.time_range()
    limit = q.limit(*KLINES_LIMIT)
    candles = market_data.candles(q.ex, inst.symbol, interval, kind, start, end, limit)
    return [wire.kline_row(q.ex, inst, candle, kind) for candle in candles]


def _time(trade: Trade) -> int:
    return trade.time_ms


def _first(row: tuple[int, Decimal]) -> int:
    return row[0]
