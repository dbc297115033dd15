"""Binance COIN-M ``/futures/data/*`` statistics, computed from the engine's own history.

Each row is the market as of a period boundary ``T`` (a multiple of ``period``, never after
simulated now):

* positions at ``T`` — replayed from the journal's fills (``order.update`` TRADE events carry
  each account's position after the fill; liquidation and ADL fills are fills too). The
  synthetic market is the counterparty of every user fill, so it holds minus the users' net
  position and counts as one more account, as ``/dapi/v1/openInterest`` counts it.
* open interest = max(longs, shorts) in contracts; its value in the base coin at the
  contract's last price at ``T``.
* long/short *account* ratios count accounts; *position* ratios sum contracts. "Top" traders
  are the top 20 % of position holders by size (Binance: by margin balance), at least one.
* taker volumes sum the public prints in ``(T − period, T]`` by the taker's side.
* basis = the contract's last price at ``T`` − the index at ``T``.

A boundary where nobody holds a position answers zero ratios ("0.0000"), not an invented 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from perpsim.sim.exchange import Exchange
from perpsim.sim.market_data import INTERVALS_MS, candles
from perpsim.sim.profile import Instrument

PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
TOP_SHARE = Decimal("0.2")
MARKET_MAKER = "<synthetic market>"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Who held what at one boundary: account → contracts (negative short), per symbol."""

    time_ms: int
    holdings: dict[str, dict[str, int]]  # symbol → account → contracts


def boundaries(ex: Exchange, period: str, start_ms: int | None, end_ms: int | None,
               limit: int) -> list[int]:
    """The period boundaries a request covers: from ``start`` onwards, else the latest
    ``limit`` up to ``end`` (or now); never before the scenario's first price."""
    step = INTERVALS_MS[period]
    first_data = min(int(p.tape.times_ms[0]) for p in ex.pricers.values())
    earliest = -(-first_data // step) * step
    last = (ex.now_ms if end_ms is None else min(end_ms, ex.now_ms)) // step * step
    if start_ms is not None:
        first = max(-(-start_ms // step) * step, earliest)
        return list(range(first, last + 1, step))[:limit]
    first = max(last - (limit - 1) * step, earliest)
    return list(range(first, last + 1, step))


def snapshots(ex: Exchange, symbols: Iterable[str], times_ms: Sequence[int]) -> list[Snapshot]:
    """Positions at each boundary, replayed from the journal in one pass."""
    wanted = set(symbols)
    held: dict[str, dict[str, int]] = {s: {} for s in wanted}
    out: list[Snapshot] = []
    events = iter(ex.journal)
    pending = next(events, None)
    for t in times_ms:
        while pending is not None and pending.time_ms <= t:
            p = pending.payload
            if (pending.type == "order.update" and p.get("execution") == "TRADE"
                    and p.get("symbol") in wanted):
                held[p["symbol"]][p["account_id"]] = int(p["position_qty"])
            pending = next(events, None)
        out.append(Snapshot(t, {s: _with_market(h) for s, h in held.items()}))
    return out


def _with_market(holdings: dict[str, int]) -> dict[str, int]:
    users = {a: q for a, q in holdings.items() if q != 0}
    net = sum(users.values())
    if net:
        users[MARKET_MAKER] = -net
    return users


def open_interest(snapshot: Snapshot, symbols: Iterable[str]) -> int:
    """Contracts open on ``symbols``: max(longs, shorts) per symbol, summed."""
    total = 0
    for symbol in symbols:
        qtys = snapshot.holdings[symbol].values()
        total += max(sum(q for q in qtys if q > 0), -sum(q for q in qtys if q < 0))
    return total


def positions_by_account(snapshot: Snapshot, symbols: Iterable[str]) -> dict[str, int]:
    """Each account's net contracts over ``symbols`` (flat accounts left out)."""
    merged: dict[str, int] = {}
    for symbol in symbols:
        for account, qty in snapshot.holdings[symbol].items():
            merged[account] = merged.get(account, 0) + qty
    return {a: q for a, q in merged.items() if q != 0}


def top_holders(positions: dict[str, int]) -> dict[str, int]:
    """The top 20 % of holders by position size (at least one)."""
    ranked = sorted(positions.items(), key=lambda item: (-abs(item[1]), item[0]))
    count = max(1, int(len(ranked) * TOP_SHARE))
    return dict(ranked[:count])


def account_ratio(positions: dict[str, int]) -> tuple[Decimal, Decimal, Decimal]:
    """(long share, short share, long/short) of accounts."""
    longs = sum(1 for q in positions.values() if q > 0)
    shorts = sum(1 for q in positions.values() if q < 0)
    return _shares(Decimal(longs), Decimal(shorts))


def position_ratio(positions: dict[str, int]) -> tuple[Decimal, Decimal, Decimal]:
    """(long share, short share, long/short) of contracts."""
    longs = sum(q for q in positions.values() if q > 0)
    shorts = -sum(q for q in positions.values() if q < 0)
    return _shares(Decimal(longs), Decimal(shorts))


def _shares(longs: Decimal, shorts: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    total = longs + shorts
    if total == 0:
        return Decimal(0), Decimal(0), Decimal(0)
    ratio = longs / shorts if shorts else Decimal(0)
    return longs / total, shorts / total, ratio


def taker_volumes(ex: Exchange, inst: Instrument, period: str, t: int
                  ) -> tuple[int, int, Decimal, Decimal]:
    """(buy contracts, sell contracts, buy coin, sell coin) of prints in (t − period, t]."""
    step = INTERVALS_MS[period]
    buy = sell = 0
    buy_coin = sell_coin = Decimal(0)
    for trade in ex.states[inst.symbol].trades:
        if not t - step < trade.time_ms <= t:
            continue
        value = trade.qty_contracts * inst.contract_size_usd / trade.price_usd
        if trade.buyer_is_maker:  # the seller took
            sell, sell_coin = sell + trade.qty_contracts, sell_coin + value
        else:
            buy, buy_coin = buy + trade.qty_contracts, buy_coin + value
    return buy, sell, buy_coin, sell_coin


def prices_at(ex: Exchange, inst: Instrument, period: str, times_ms: Sequence[int]
              ) -> dict[int, tuple[Decimal, Decimal]]:
    """(last price, index) at each boundary: the opening prices of the period's candles."""
    if not times_ms:
        return {}
    last = candles(ex, inst.symbol, period, "last", times_ms[0], times_ms[-1], len(times_ms))
    index = candles(ex, inst.symbol, period, "index", times_ms[0], times_ms[-1], len(times_ms))
    index_at = {c.open_ms: c.open for c in index}
    return {c.open_ms: (c.open, index_at[c.open_ms]) for c in last if c.open_ms in index_at}
