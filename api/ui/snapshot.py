"""What the dashboard shows, serialised: the market, every account's risk, funding, events, history.

Dull on purpose: every number comes from the engine (``sim/risk.py`` through the control
plane's account view, ``sim/market_data.py`` for candles, the funding history the engine keeps)
and is only written out here. Decimals travel as strings, times as epoch milliseconds.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpsim.api import control
from perpsim.api.state import ServerState
from perpsim.numbers import readable
from perpsim.sim import market_data
from perpsim.sim.exchange import Exchange

RECENT_EVENTS = 300  # journal events the page starts its timeline with
FUNDING_HISTORY = 60  # funding settlements per symbol
MAX_ACCOUNTS = 100  # accounts listed (the first ones by id); ``accounts_total`` counts them all
HISTORY_BARS = 300  # price-chart bars: the finest interval that covers the market's life


def _num(value: Decimal) -> str:
    return readable(value)


def default_symbol(ex: Exchange) -> str | None:
    """The symbol the chart opens on: the first priced perpetual (else the first priced one)."""
    priced = list(ex.pricers)
    perps = [s for s in priced if ex.instruments[s].is_perpetual]
    return next(iter(perps or priced), None)


def history_interval(ex: Exchange) -> str:
    """The finest kline interval whose ``HISTORY_BARS`` bars reach back to the market's start."""
    span_ms = ex.now_ms - ex.start_ms
    for name, step_ms in market_data.INTERVALS_MS.items():
        if span_ms < step_ms * HISTORY_BARS:
            return name
    return "1w"


def price_history(ex: Exchange, symbol: str) -> dict[str, Any]:
    """Index, mark and last candles of ``symbol`` from the market's start to now."""
    interval = history_interval(ex)
    series: dict[str, Any] = {"symbol": symbol, "interval": interval}
    for kind in ("index", "mark", "last"):
        bars = market_data.candles(ex, symbol, interval, kind, start_ms=ex.start_ms,
                                   limit=HISTORY_BARS)
        if kind == "index":
            series["open_time"] = [bar.open_ms for bar in bars]
            series["close_time"] = [bar.close_ms for bar in bars]
        series[kind] = [_num(bar.close) for bar in bars]
    return series


def funding_history(ex: Exchange, symbol: str) -> list[dict[str, Any]]:
    """The symbol's last funding settlements: time and rate."""
    history = ex.states[symbol].funding_history[-FUNDING_HISTORY:]
    return [{"time": t_ms, "rate": _num(rate)} for t_ms, rate in history]


async def snapshot(state: ServerState, *, symbol: str | None, history: bool) -> dict[str, Any]:
    """Everything the page needs at once (``history``: with the chart's candles of ``symbol``)."""
    ex = state.exchange
    body = control.market_state(state)
    body["manual"] = ex.scenario.mode == "manual"
    for sym, row in body["symbols"].items():
        inst = ex.instruments[sym]
        row["perpetual"] = inst.is_perpetual
        row["tick_size"] = _num(inst.tick_size)
        row["coin"] = inst.margin_asset  # the unit of its PnL and margin
        row["funding_history"] = funding_history(ex, sym)
    body["default_symbol"] = default_symbol(ex)
    ids = list(ex.accounts)
    body["accounts_total"] = len(ids)
    body["accounts"] = [await control.get_account(aid, state) for aid in ids[:MAX_ACCOUNTS]]
    events = ex.journal.since(max(0, len(ex.journal) - RECENT_EVENTS))
    body["events"] = [control.event_json(e) for e in events]
    body["last_seq"] = len(ex.journal)
    chart = symbol or body["default_symbol"]
    if history and chart is not None:
        # an unknown or unpriced symbol is a 4xx (the engine's errors name it)
        body["history"] = price_history(ex, ex.pricer(chart).inst.symbol)
    return body
