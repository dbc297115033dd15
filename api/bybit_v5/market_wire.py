"""Public v5 market data on the wire (``category=inverse``): pure functions of the engine.

Field names and string choices follow Bybit's v5 answers as ccxt.bybit 4.5.90 and pybit read
them (docs/bybit-dialect-notes.md): every number is a string; klines are newest first;
``contractType`` ``InversePerpetual`` and ``openInterestValue`` make ccxt treat a row as an
inverse swap; ``lotSizeFilter.minOrderQty`` is what ccxt takes as the contract size (1 USD).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpsim.api.deps import dec, price_digits
from perpsim.sim.errors import InvalidInterval
from perpsim.sim.exchange import Exchange, Trade
from perpsim.sim.market_data import Candle, day_stats
from perpsim.sim.profile import Bracket, Instrument

RATE_PLACES = 8
COIN_PLACES = 8
# Bybit's kline intervals → the engine's candle intervals.
INTERVALS: dict[str, str] = {
    "1": "1m", "3": "3m", "5": "5m", "15": "15m", "30": "30m", "60": "1h", "120": "2h",
    "240": "4h", "360": "6h", "720": "12h", "D": "1d", "W": "1w",
}
# BTCUSD's listing on Bybit (2018-11-15); informational, ccxt reads it as the market's created.
LAUNCH_TIME_MS = 1_542_211_200_000
MAX_PRICE_USD = Decimal("1999999")  # Bybit's priceFilter.maxPrice for BTCUSD


def price(inst: Instrument, value: Decimal | None) -> str:
    """A price with the instrument's decimals (more when an average needs them); "" if none."""
    return price_digits(value, inst.price_precision) or ""


def rate(value: Decimal) -> str:
    """A funding rate or mark/index price with 8 decimals."""
    return dec(value, RATE_PLACES)


def plain(value: Decimal | int) -> str:
    """Plain digits without trailing zeros."""
    return dec(Decimal(value))


def checked_interval(interval: str) -> str:
    """The engine interval for a Bybit kline interval (InvalidInterval otherwise)."""
    if interval not in INTERVALS:
        raise InvalidInterval(f"interval must be one of {', '.join(INTERVALS)}, got "
                              f"{interval!r}")
    return INTERVALS[interval]


def funding_interval_minutes(ex: Exchange) -> int:
    """The profile's funding interval in minutes (Bybit's ``fundingInterval``)."""
    return ex.profile.funding.interval_ms // 60_000


def instrument_row(ex: Exchange, inst: Instrument) -> dict[str, Any]:
    """One ``/v5/market/instruments-info`` row."""
    top = max(inst.brackets, key=lambda b: b.max_leverage)
    return {
        "symbol": inst.symbol,
        "contractType": "InversePerpetual" if inst.is_perpetual else "InverseFutures",
        "status": "Trading",
        "baseCoin": inst.base_asset,
        "quoteCoin": inst.quote_asset,
        "settleCoin": inst.margin_asset,
        "launchTime": str(LAUNCH_TIME_MS),
        "deliveryTime": str(inst.delivery_date_ms or 0),
        "deliveryFeeRate": "",
        "priceScale": str(inst.price_precision),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": plain(top.max_leverage),
                           "leverageStep": "1"},  # the engine takes whole leverage
        "priceFilter": {"minPrice": plain(inst.tick_size), "maxPrice": plain(MAX_PRICE_USD),
                        "tickSize": plain(inst.tick_size)},
        # ccxt takes minOrderQty as the contract size: the contracts are 1 USD each, qty 1.
        "lotSizeFilter": {"maxOrderQty": str(inst.max_qty), "minOrderQty": str(inst.min_qty),
                          "qtyStep": str(inst.lot_size),
                          "postOnlyMaxOrderQty": str(inst.max_qty),
                          "maxMktOrderQty": str(inst.market_max_qty),
                          "minNotionalValue": "0"},
        "unifiedMarginTrade": False,
        "fundingInterval": funding_interval_minutes(ex),
        "settleCoinDisplay": inst.margin_asset,
        "copyTrading": "none",
        "upperFundingRate": rate(inst.funding_cap),
        "lowerFundingRate": rate(-inst.funding_cap),
        "isPreListing": False,
        "preListingInfo": None,
    }


def open_interest_contracts(ex: Exchange, inst: Instrument) -> int:
    """Contracts open: the larger of users' longs and shorts (the synthetic market holds the
    difference, as in the Binance dialect)."""
    longs = shorts = 0
    for account in ex.accounts.values():
        pos = account.positions.get(inst.symbol)
        if pos is not None and pos.qty_contracts > 0:
            longs += pos.qty_contracts
        elif pos is not None:
            shorts -= pos.qty_contracts
    return max(longs, shorts)


def ticker_row(ex: Exchange, inst: Instrument) -> dict[str, Any]:
    """One ``/v5/market/tickers`` row (inverse): 24 h stats, best prices, mark, funding."""
    stats = day_stats(ex, inst.symbol)
    book = ex.refresh_book(inst.symbol)
    bids, asks = book.depth(1)
    mark_price = ex.mark_price(inst.symbol)
    oi = open_interest_contracts(ex, inst)
    return {
        "symbol": inst.symbol,
        "lastPrice": price(inst, stats.last),
        "indexPrice": rate(ex.index_price(inst.symbol)),
        "markPrice": rate(mark_price),
        "prevPrice24h": price(inst, stats.open),
        "price24hPcnt": dec((stats.last - stats.open) / stats.open, 6),
        "highPrice24h": price(inst, stats.high),
        "lowPrice24h": price(inst, stats.low),
        "prevPrice1h": price(inst, stats.open),
        "openInterest": str(oi),
        "openInterestValue": dec(oi * inst.contract_size_usd / mark_price, COIN_PLACES),
        "turnover24h": dec(stats.volume_coin, COIN_PLACES),
        "volume24h": str(stats.volume_contracts),
        "fundingRate": rate(ex.predicted_funding_rate(inst.symbol)),
        "nextFundingTime": str(ex.next_funding_time_ms(inst.symbol) or 0),
        "predictedDeliveryPrice": "",
        "basisRate": "",
        "deliveryFeeRate": "",
        "deliveryTime": str(inst.delivery_date_ms or 0),
        "ask1Size": str(asks[0][1]) if asks else "0",
        "bid1Price": price(inst, bids[0][0]) if bids else "",
        "ask1Price": price(inst, asks[0][0]) if asks else "",
        "bid1Size": str(bids[0][1]) if bids else "0",
        "basis": "",
    }


def orderbook(ex: Exchange, inst: Instrument, limit: int, update_id: int) -> dict[str, Any]:
    """``/v5/market/orderbook``: ``limit`` levels a side, best first."""
    bids, asks = ex.refresh_book(inst.symbol).depth(limit)
    return {
        "s": inst.symbol,
        "b": [[price(inst, p), str(q)] for p, q in bids],
        "a": [[price(inst, p), str(q)] for p, q in asks],
        "ts": ex.now_ms, "u": update_id, "seq": update_id, "cts": ex.now_ms,
    }


def kline_row(candle: Candle, inst: Instrument, *, with_volume: bool) -> list[str]:
    """One kline row: start, OHLC (and volume in contracts, turnover in coin for last price)."""
    row = [str(candle.open_ms), price(inst, candle.open), price(inst, candle.high),
           price(inst, candle.low), price(inst, candle.close)]
    if with_volume:
        row += [str(candle.volume_contracts), dec(candle.volume_coin, COIN_PLACES)]
    return row


def trade_row(inst: Instrument, trade: Trade) -> dict[str, Any]:
    """One ``/v5/market/recent-trade`` row; ``side`` is the taker's."""
    return {
        "execId": str(trade.trade_id), "symbol": inst.symbol,
        "price": price(inst, trade.price_usd), "size": str(trade.qty_contracts),
        "side": "Sell" if trade.buyer_is_maker else "Buy", "time": str(trade.time_ms),
        "isBlockTrade": False, "isRPITrade": False,
    }


def funding_row(inst: Instrument, time_ms: int, funding_rate: Decimal) -> dict[str, Any]:
    """One settled funding of ``/v5/market/funding/history``."""
    return {"symbol": inst.symbol, "fundingRate": rate(funding_rate),
            "fundingRateTimestamp": str(time_ms)}


def risk_limit_row(inst: Instrument, bracket: Bracket) -> dict[str, Any]:
    """One ``/v5/market/risk-limit`` tier: the profile's bracket (values in coin)."""
    cap = bracket.cap_coin if bracket.cap_coin is not None else Decimal("1000000000")
    return {
        "id": bracket.bracket, "symbol": inst.symbol, "riskLimitValue": plain(cap),
        "maintenanceMargin": plain(bracket.mmr),
        "initialMargin": plain((1 / bracket.max_leverage).quantize(Decimal("1e-8"))),
        "isLowestRisk": 1 if bracket.bracket == 1 else 0,
        "maxLeverage": dec(bracket.max_leverage, 2),
        "mmDeduction": plain(bracket.cum_coin),
    }
