"""Public COIN-M market data on the wire: engine state → the JSON Binance sends.

Pure functions of the Exchange facade (no mutation beyond the engine's own lazy book refresh),
used by api/binance_coinm/market_routes.py. Field names, string/number choices and decimal
places follow Binance's COIN-M responses because ccxt 4.5.90 parses exactly these
(docs/dialect-notes.md §1): prices of trades in the instrument's price precision, mark / index /
rates with 8 decimals, quantities in whole contracts, coin amounts with 8 decimals.

Where Binance reports a number the engine does not keep (24h change, weighted average price,
open interest, taker-buy volume), it is derived here from engine data, exactly, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from perpsim.api.deps import dec
from perpsim.sim.errors import BadParameterCombination, InvalidInput, InvalidInterval, UnknownSymbol
from perpsim.sim.exchange import Exchange, Trade
from perpsim.sim.inverse import coin_value
from perpsim.sim.market_data import INTERVALS_MS, Candle, PriceKind, day_stats
from perpsim.sim.profile import Instrument

MARK_PLACES = 8  # markPrice, indexPrice, estimatedSettlePrice, mark/index klines
RATE_PLACES = 8  # lastFundingRate, interestRate, fundingRate
COIN_PLACES = 8  # baseVolume, baseQty
PERCENT_PLACES = 3  # priceChangePercent
HOUR_MS = 3_600_000
CONTRACT_TYPES = ("PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER")

T = TypeVar("T")


# ---- which instruments a request means -----------------------------------------------------


def tradable(ex: Exchange) -> list[Instrument]:
    """Instruments the scenario has prices for, in profile order (the rest cannot be quoted)."""
    return [inst for inst in ex.profile.instruments if inst.symbol in ex.pricers]


def pair_instruments(ex: Exchange, pair: str) -> list[Instrument]:
    """Instruments of ``pair`` (UnknownSymbol if the profile lists none)."""
    found = [inst for inst in ex.profile.instruments if inst.pair == pair]
    if not found:
        pairs = ", ".join(sorted({i.pair for i in ex.profile.instruments}))
        raise UnknownSymbol(f"unknown pair {pair!r} on {ex.profile.name}; known: {pairs}")
    return found


def pair_instrument(ex: Exchange, pair: str) -> Instrument:
    """One instrument of ``pair`` to read the pair's index from (a priced one if any)."""
    found = pair_instruments(ex, pair)
    return next((inst for inst in found if inst.symbol in ex.pricers), found[0])


def contract_instrument(ex: Exchange, pair: str, contract_type: str) -> Instrument:
    """The instrument of ``pair`` with ``contract_type`` (continuous klines)."""
    if contract_type not in CONTRACT_TYPES:
        raise InvalidInput(f"Invalid contractType {contract_type!r}; one of "
                           f"{', '.join(CONTRACT_TYPES)}.")
    for inst in pair_instruments(ex, pair):
        if inst.contract_type == contract_type:
            return inst
    raise UnknownSymbol(f"no {contract_type} contract of {pair} on {ex.profile.name}")


def requested(ex: Exchange, symbol: Instrument | None, pair: str | None) -> list[Instrument]:
    """The instruments of a ``symbol`` / ``pair`` / neither (= every quotable one) request."""
    if symbol is not None and pair is not None:
        raise BadParameterCombination("Combination of optional parameters invalid: send "
                                      "either symbol or pair, not both.")
    if symbol is not None:
        return [symbol]
    if pair is not None:
        return [inst for inst in pair_instruments(ex, pair) if inst.symbol in ex.pricers]
    return tradable(ex)


def checked_interval(interval: str) -> str:
    """A Binance kline interval the engine serves, checked (InvalidInterval otherwise)."""
    if interval not in INTERVALS_MS:
        raise InvalidInterval(f"Invalid interval. Use one of {', '.join(INTERVALS_MS)}.")
    return interval


def window(items: Sequence[T], time_of: Callable[[T], int], start_ms: int | None,
           end_ms: int | None, limit: int, *, from_start: bool = False) -> list[T]:
    """Items (ascending in time) within [start, end]; ``limit`` of them, Binance's way.

    With a start (or ``from_start``) the first ``limit`` from there, else the latest ``limit``.
    """
    chosen = [item for item in items
              if (start_ms is None or time_of(item) >= start_ms)
              and (end_ms is None or time_of(item) <= end_ms)]
    if start_ms is not None or from_start:
        return chosen[:limit]
    return chosen[-limit:]


# ---- numbers --------------------------------------------------------------------------------


def price(inst: Instrument, value: Decimal) -> str:
    """A traded price in the instrument's price precision (Binance: "37993.4")."""
    return dec(value, inst.price_precision)


def mark(value: Decimal) -> str:
    """A mark / index price or a rate, 8 decimals (Binance: "11029.69574559")."""
    return dec(value, MARK_PLACES)


def coin(value: Decimal) -> str:
    """A coin amount, 8 decimals."""
    return dec(value, COIN_PLACES)


# ---- rows -----------------------------------------------------------------------------------


def ticker_24hr(ex: Exchange, inst: Instrument) -> dict[str, Any]:
    """One ``GET /dapi/v1/ticker/24hr`` row (``baseVolume`` marks it COIN-M for ccxt)."""
    stats = day_stats(ex, inst.symbol)
    change = stats.last - stats.open
    volume_usd = stats.volume_contracts * inst.contract_size_usd
    vwap = volume_usd / stats.volume_coin if stats.volume_coin else Decimal(0)
    trades = ex.states[inst.symbol].trades
    return {
        "symbol": inst.symbol, "pair": inst.pair,
        "priceChange": price(inst, change),
        "priceChangePercent": dec(change / stats.open * 100, PERCENT_PLACES),
        "weightedAvgPrice": mark(vwap),
        "lastPrice": price(inst, stats.last),
        "lastQty": str(trades[-1].qty_contracts) if stats.trades else "0",
        "openPrice": price(inst, stats.open), "highPrice": price(inst, stats.high),
        "lowPrice": price(inst, stats.low),
        "volume": str(stats.volume_contracts), "baseVolume": coin(stats.volume_coin),
        "openTime": stats.open_ms, "closeTime": stats.close_ms,
        "firstId": stats.first_trade_id, "lastId": stats.last_trade_id, "count": stats.trades,
    }


def premium_index(ex: Exchange, inst: Instrument) -> dict[str, Any]:
    """One ``GET /dapi/v1/premiumIndex`` row.

    ``lastFundingRate`` is, as on Binance, the rate the *next* funding would settle at as far
    as the current window has run (the engine's predicted rate). Delivery contracts send empty
    rates and ``nextFundingTime`` 0, as Binance does. The engine does not simulate delivery
    settlement, so ``estimatedSettlePrice`` is the index now.
    """
    index = ex.index_price(inst.symbol)
    perpetual = inst.is_perpetual
    return {
        "symbol": inst.symbol, "pair": inst.pair,
        "markPrice": mark(ex.mark_price(inst.symbol)), "indexPrice": mark(index),
        "estimatedSettlePrice": mark(index),
        "lastFundingRate": mark(ex.predicted_funding_rate(inst.symbol)) if perpetual else "",
        # The interest of the symbol's interval: 0.01 % per 8 h, scaled for 4 h / 1 h funding.
        "interestRate": mark(ex.profile.funding.interest_rate
                             * ex.funding_schedules[inst.symbol].window_ms(ex.now_ms + 1)
                             / (8 * HOUR_MS)) if perpetual else "",
        "nextFundingTime": ex.next_funding_time_ms(inst.symbol) or 0,
        "time": ex.now_ms,
    }


def price_ticker(ex: Exchange, inst: Instrument) -> dict[str, Any]:
    """One ``GET /dapi/v1/ticker/price`` row (``ps`` is the pair)."""
    last = ex.last_price(inst.symbol)
    return {"symbol": inst.symbol, "ps": inst.pair, "price": price(inst, last), "time": ex.now_ms}


def book_ticker(ex: Exchange, inst: Instrument, update_id: int) -> dict[str, Any]:
    """One ``GET /dapi/v1/ticker/bookTicker`` row: best bid and ask with their contracts."""
    bids, asks = ex.refresh_book(inst.symbol).depth(1)
    bid = bids[0] if bids else (Decimal(0), 0)
    ask = asks[0] if asks else (Decimal(0), 0)
    return {
        "lastUpdateId": update_id, "symbol": inst.symbol, "pair": inst.pair,
        "bidPrice": price(inst, bid[0]), "bidQty": str(bid[1]),
        "askPrice": price(inst, ask[0]), "askQty": str(ask[1]), "time": ex.now_ms,
    }


def depth(ex: Exchange, inst: Instrument, update_id: int, limit: int) -> dict[str, Any]:
    """The ``GET /dapi/v1/depth`` body: ``limit`` levels a side, best first."""
    bids, asks = ex.refresh_book(inst.symbol).depth(limit)
    return {
        "lastUpdateId": update_id, "symbol": inst.symbol, "pair": inst.pair,
        "E": ex.now_ms, "T": ex.now_ms,
        "bids": [[price(inst, p), str(q)] for p, q in bids],
        "asks": [[price(inst, p), str(q)] for p, q in asks],
    }


def trade_row(inst: Instrument, trade: Trade) -> dict[str, Any]:
    """One ``/trades`` / ``/historicalTrades`` row (COIN-M: with ``baseQty`` in coin)."""
    return {
        "id": trade.trade_id, "price": price(inst, trade.price_usd),
        "qty": str(trade.qty_contracts),
        "baseQty": coin(coin_value(trade.qty_contracts, trade.price_usd, inst.contract_size_usd)),
        "time": trade.time_ms, "isBuyerMaker": trade.buyer_is_maker,
    }


def agg_trade_row(inst: Instrument, trade: Trade) -> dict[str, Any]:
    """One ``/aggTrades`` row; every print is its own aggregate (``f`` = ``l`` = ``a``)."""
    return {
        "a": trade.trade_id, "p": price(inst, trade.price_usd), "q": str(trade.qty_contracts),
        "f": trade.trade_id, "l": trade.trade_id, "T": trade.time_ms,
        "m": trade.buyer_is_maker,
    }


def kline_row(ex: Exchange, inst: Instrument, candle: Candle, kind: PriceKind) -> list[Any]:
    """One kline row. Last price: volume in contracts, row[7] base (coin) volume, taker-buy
    volumes; mark/index rows carry Binance's zero placeholders."""
    if kind != "last":
        return [candle.open_ms, mark(candle.open), mark(candle.high), mark(candle.low),
                mark(candle.close), "0", candle.close_ms, "0", candle.trades, "0", "0", "0"]
    close_ms = min(candle.close_ms, ex.now_ms)
    taker_buys = [t for t in ex.states[inst.symbol].trades
                  if candle.open_ms <= t.time_ms <= close_ms and not t.buyer_is_maker]
    buy_contracts = sum(t.qty_contracts for t in taker_buys)
    buy_coin = sum((coin_value(t.qty_contracts, t.price_usd, inst.contract_size_usd)
                    for t in taker_buys), Decimal(0))
    return [candle.open_ms, price(inst, candle.open), price(inst, candle.high),
            price(inst, candle.low), price(inst, candle.close), str(candle.volume_contracts),
            candle.close_ms, coin(candle.volume_coin), candle.trades, str(buy_contracts),
            coin(buy_coin), "0"]


def funding_rate_row(inst: Instrument, time_ms: int, rate: Decimal) -> dict[str, Any]:
    """One ``GET /dapi/v1/fundingRate`` row: a settled funding."""
    return {"symbol": inst.symbol, "fundingTime": time_ms, "fundingRate": mark(rate)}


def open_interest(ex: Exchange, inst: Instrument) -> dict[str, Any]:
    """``GET /dapi/v1/openInterest``: contracts open, counting the synthetic market's side.

    The synthetic market holds minus the users' net position, so the long total including it
    is max(users' longs, users' shorts).
    """
    longs = shorts = 0
    for account in ex.accounts.values():
        for pos in account.positions_on(inst.symbol):  # hedge mode: both legs
            if pos.qty_contracts > 0:
                longs += pos.qty_contracts
            else:
                shorts -= pos.qty_contracts
    return {"symbol": inst.symbol, "pair": inst.pair, "openInterest": str(max(longs, shorts)),
            "contractType": inst.contract_type, "time": ex.now_ms}


def funding_info(ex: Exchange, inst: Instrument) -> dict[str, Any]:
    """One ``GET /dapi/v1/fundingInfo`` row: the rate cap/floor and the funding interval (the
    cap and floor of an N-hour interval are the 8-hour ones × N/8)."""
    window = ex.funding_schedules[inst.symbol].window_ms(ex.now_ms + 1)
    cap = inst.funding_cap * window / (8 * HOUR_MS)
    return {
        "symbol": inst.symbol, "adjustedFundingRateCap": mark(cap),
        "adjustedFundingRateFloor": mark(-cap),
        "fundingIntervalHours": window // HOUR_MS, "disclaimer": False,
    }
