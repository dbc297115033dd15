"""Market-data queries over the tape and the trade prints: candles, 24-hour statistics.

Candles of the last price follow the tape's perp price (the synthetic market trades there) with
users' trades folded in; mark candles sample the mark at every tape row and basis-sample
instant in the bar; index candles follow the index. Only the past is visible: a query never
returns data after ``now``. Volume is what users traded (the synthetic market's own volume is
not simulated), in contracts and in coin.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

import numpy as np

from perpsim.sim.errors import InvalidInput, InvalidInterval
from perpsim.sim.market import decimal_price

if TYPE_CHECKING:
    from perpsim.sim.exchange import Exchange

PriceKind = Literal["last", "mark", "index", "premium"]
INTERVALS_MS: dict[str, int] = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}
MAX_CANDLES = 1500  # Binance's limit per request


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar: open time, prices, volume in contracts and coin, trade count."""

    open_ms: int
    close_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume_contracts: int
    volume_coin: Decimal
    trades: int


def candles(ex: Exchange, symbol: str, interval: object, kind: PriceKind = "last",
            start_ms: int | None = None, end_ms: int | None = None,
            limit: int = 500) -> list[Candle]:
    """Bars of ``interval`` covering [start, end] (default: the latest ``limit`` up to now)."""
    if interval not in INTERVALS_MS:
        raise InvalidInterval(
            f"interval must be one of {', '.join(INTERVALS_MS)}, got {interval!r}")
    if not 1 <= limit <= MAX_CANDLES:
        raise InvalidInput(f"limit must be between 1 and {MAX_CANDLES}, got {limit}")
    step = INTERVALS_MS[str(interval)]
    pricer = ex.pricer(symbol)
    now = ex.now_ms
    end = now if end_ms is None else min(end_ms, now)
    first_open = (end // step - limit + 1) * step if start_ms is None else start_ms // step * step
    first_open = max(first_open, int(pricer.tape.times_ms[0]) // step * step)
    opens = np.arange(first_open, end + 1, step, dtype=np.int64)[:limit]
    trades = ex.states[symbol].trades
    cs = ex.instrument(symbol).contract_size_usd
    out: list[Candle] = []
    for open_ms in opens.tolist():
        close_ms = min(open_ms + step - 1, now)
        prices = _prices_in(ex, symbol, kind, open_ms, close_ms)
        in_bar = [t for t in trades if open_ms <= t.time_ms <= close_ms] if kind == "last" else []
        values = prices + [t.price_usd for t in in_bar]
        out.append(Candle(
            open_ms=open_ms, close_ms=open_ms + step - 1, open=values[0], high=max(values),
            low=min(values), close=_close(prices, in_bar),
            volume_contracts=sum(t.qty_contracts for t in in_bar),
            volume_coin=sum((t.qty_contracts * cs / t.price_usd for t in in_bar), Decimal(0)),
            trades=len(in_bar),
        ))
    return out


def _close(prices: list[Decimal], in_bar: list) -> Decimal:
    return in_bar[-1].price_usd if in_bar else prices[-1]


def _extremes(values: np.ndarray) -> np.ndarray:
    """The first, highest, lowest and last of ``values``: all a bar reads of its prices (open,
    high, low, close). The conversions to Decimal below are monotonic (the shortest repr of
    a larger float is not smaller; rounding to a step keeps order), so converting these four
    gives the bar that converting every price gave, at a handful of conversions a bar."""
    if len(values) <= 4:
        return values
    return values[[0, int(np.argmax(values)), int(np.argmin(values)), len(values) - 1]]


def _prices_in(ex: Exchange, symbol: str, kind: PriceKind, open_ms: int,
               close_ms: int) -> list[Decimal]:
    """The bar's prices: at its open, its highest and lowest, and its last before the live
    price (exact Decimals; every change inside the bar is looked at, see ``_extremes``)."""
    pricer = ex.pricer(symbol)
    tape = pricer.tape
    lo = tape.row_at(open_ms)
    hi = tape.rows_through(close_ms)
    if kind in ("index", "last"):
        # The rows in force at those times: the open's, then each row that starts in the bar.
        rows = slice(lo, max(hi, lo + 1))
        if kind == "index":
            return [decimal_price(x) for x in _extremes(tape.index[rows])]
        refs = pricer.references_of_rows(rows.start, rows.stop)
        return [decimal_price(x).quantize(pricer.tick) for x in _extremes(refs)]
    times = np.concatenate(([open_ms], tape.times_ms[lo + 1:hi])).astype(np.int64)
    step = ex.profile.mark.basis_sample_interval_ms
    samples = np.arange((open_ms // step + 1) * step, close_ms + 1, step, dtype=np.int64)
    grid = np.unique(np.concatenate((times, samples)))
    if kind == "premium":  # the premium index the funding rate averages (mechanics §4)
        return [Decimal(repr(float(x))).quantize(Decimal("0.00000001"))
                for x in _extremes(pricer.premiums(grid))]
    marks = pricer.marks(grid, float(ex.mark_funding_rate(symbol)))
    out = [Decimal(repr(float(x))).quantize(Decimal("0.00000001")) for x in _extremes(marks)]
    if close_ms == ex.now_ms:
        # The bar still open ends at the live mark, which also counts users' last trade
        # (the grid's marks use the tape's price as "last"; with the 30-second basis the two
        # can differ by the trade's distance from the book centre).
        out.append(ex.mark_price(symbol))
    return out


@dataclass(frozen=True, slots=True)
class DayStats:
    """Rolling 24-hour statistics of the last price."""

    open: Decimal
    high: Decimal
    low: Decimal
    last: Decimal
    volume_contracts: int
    volume_coin: Decimal
    trades: int
    first_trade_id: int
    last_trade_id: int
    open_ms: int
    close_ms: int


def day_stats(ex: Exchange, symbol: str) -> DayStats:
    """Open/high/low/last and users' volume over the 24 hours up to now."""
    now = ex.now_ms
    start = now - 86_400_000 + 1
    pricer = ex.pricer(symbol)
    tape = pricer.tape
    lo = tape.row_at(max(start, int(tape.times_ms[0])))
    hi = max(lo + 1, tape.rows_through(now))
    refs = pricer.references_of_rows(lo, hi)  # one vectorised pass; only 3 values leave it
    prices = [decimal_price(x).quantize(pricer.tick) for x in (refs[0], refs.max(), refs.min())]
    trades = [t for t in ex.states[symbol].trades if start <= t.time_ms <= now]
    values = prices + [t.price_usd for t in trades]
    cs = ex.instrument(symbol).contract_size_usd
    return DayStats(
        open=prices[0], high=max(values), low=min(values), last=ex.last_price(symbol),
        volume_contracts=sum(t.qty_contracts for t in trades),
        volume_coin=sum((t.qty_contracts * cs / t.price_usd for t in trades), Decimal(0)),
        trades=len(trades), first_trade_id=trades[0].trade_id if trades else -1,
        last_trade_id=trades[-1].trade_id if trades else -1, open_ms=start, close_ms=now,
    )
