"""Public v5 topics: parsing ``tickers.BTCUSD``-style names and computing each frame.

A :class:`Topic` remembers what it last sent, so the pump asks it every tick and it answers
only what changed: tickers send a snapshot then deltas of the fields that moved; the order
book an in-band snapshot then deltas (a level with size "0" is gone) with ``u`` and ``seq``
counting up; publicTrade and liquidation only prints newer than the last sent; kline the
current bar whenever it changed, and the previous one once with ``confirm: true``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from perpsim.api.bybit_v5 import market_wire as wire
from perpsim.sim import market_data
from perpsim.sim.errors import PerpsimError
from perpsim.sim.exchange import Exchange
from perpsim.sim.journal import Event
from perpsim.sim.profile import Instrument

ORDERBOOK_DEPTHS = (1, 50, 200, 500)
KINDS = ("tickers", "orderbook", "publicTrade", "kline", "liquidation", "allLiquidation")


class UnknownTopic(ValueError):
    """A topic name this dialect does not serve (the message says why)."""


@dataclass
class Topic:
    """One subscribed public topic and what it last sent."""

    name: str
    kind: str
    inst: Instrument
    depth: int = 0
    interval: str = ""
    last: dict[str, Any] = field(default_factory=dict)
    book: tuple[dict[str, str], dict[str, str]] | None = None
    seq: int = 0
    last_trade_id: int = -1
    last_event_seq: int = -1
    bar_open_ms: int = -1

    def restart(self) -> None:
        """Forget what was sent (a reset built a new market): the next frame is a snapshot.
        ``seq`` keeps counting, so a client never sees the book's sequence go back."""
        self.last, self.book = {}, None
        self.last_trade_id = self.last_event_seq = self.bar_open_ms = -1

    def frames(self, ex: Exchange, liquidations: list[Event]) -> list[dict[str, Any]]:
        """The frames due now (possibly none)."""
        try:
            if self.kind == "tickers":
                return self._ticker(ex)
            if self.kind == "orderbook":
                return self._orderbook(ex)
            if self.kind == "publicTrade":
                return self._trades(ex)
            if self.kind == "kline":
                return self._kline(ex)
            return self._liquidations(ex, liquidations)
        except PerpsimError:  # the symbol has no prices in this scenario (after a reset)
            return []

    def _frame(self, ex: Exchange, kind: str, data: Any) -> dict[str, Any]:
        return {"topic": self.name, "type": kind, "ts": ex.now_ms, "data": data}

    def _ticker(self, ex: Exchange) -> list[dict[str, Any]]:
        row = wire.ticker_row(ex, self.inst)
        if not self.last:
            self.last = row
            return [{**self._frame(ex, "snapshot", row), "cs": ex.now_ms}]
        delta = {k: v for k, v in row.items() if self.last.get(k) != v}
        if not delta:
            return []
        self.last = row
        return [{**self._frame(ex, "delta", {"symbol": self.inst.symbol, **delta}),
                 "cs": ex.now_ms}]

    def _orderbook(self, ex: Exchange) -> list[dict[str, Any]]:
        bids, asks = ex.refresh_book(self.inst.symbol).depth(self.depth)
        now = ({wire.price(self.inst, p): str(q) for p, q in bids},
               {wire.price(self.inst, p): str(q) for p, q in asks})
        if self.book is not None and now == self.book:
            return []
        self.seq += 1
        if self.book is None:
            kind, sides = "snapshot", now
        else:
            kind = "delta"
            sides = tuple({**{p: "0" for p in old if p not in new},
                           **{p: q for p, q in new.items() if old.get(p) != q}}
                          for old, new in zip(self.book, now, strict=True))  # type: ignore[assignment]
        self.book = now
        data = {"s": self.inst.symbol,
                "b": sorted(([p, q] for p, q in sides[0].items()),
                            key=lambda r: -Decimal(r[0])),
                "a": sorted(([p, q] for p, q in sides[1].items()), key=lambda r: Decimal(r[0])),
                "u": self.seq, "seq": self.seq}
        return [{**self._frame(ex, kind, data), "cts": ex.now_ms}]

    def _trades(self, ex: Exchange) -> list[dict[str, Any]]:
        trades = [t for t in ex.states[self.inst.symbol].trades
                  if t.trade_id > self.last_trade_id]
        if self.last_trade_id < 0:  # subscribing sends nothing old
            self.last_trade_id = trades[-1].trade_id if trades else 0
            return []
        if not trades:
            return []
        self.last_trade_id = trades[-1].trade_id
        rows = [{"T": t.time_ms, "s": self.inst.symbol, "S": "Sell" if t.buyer_is_maker
                 else "Buy", "v": str(t.qty_contracts), "p": wire.price(self.inst, t.price_usd),
                 "L": "ZeroPlusTick", "i": str(t.trade_id), "BT": False} for t in trades]
        return [self._frame(ex, "snapshot", rows)]

    def _kline(self, ex: Exchange) -> list[dict[str, Any]]:
        bars = market_data.candles(ex, self.inst.symbol, wire.INTERVALS[self.interval], "last",
                                   None, None, 2)
        frames = []
        current = bars[-1]
        if 0 <= self.bar_open_ms < current.open_ms and len(bars) > 1:
            frames.append(self._frame(ex, "snapshot", [self._bar(ex, bars[-2], True)]))
            self.last = {}
        self.bar_open_ms = current.open_ms
        row = self._bar(ex, current, False)
        if row != self.last:
            self.last = row
            frames.append(self._frame(ex, "snapshot", [row]))
        return frames

    def _bar(self, ex: Exchange, bar: market_data.Candle, confirm: bool) -> dict[str, Any]:
        return {"start": bar.open_ms, "end": bar.close_ms, "interval": self.interval,
                "open": wire.price(self.inst, bar.open), "close": wire.price(self.inst, bar.close),
                "high": wire.price(self.inst, bar.high), "low": wire.price(self.inst, bar.low),
                "volume": str(bar.volume_contracts),
                "turnover": wire.dec(bar.volume_coin, wire.COIN_PLACES), "confirm": confirm,
                "timestamp": ex.now_ms}

    def _liquidations(self, ex: Exchange, events: list[Event]) -> list[dict[str, Any]]:
        fresh = [e for e in events if e.seq > self.last_event_seq
                 and e.payload.get("symbol") == self.inst.symbol]
        if self.last_event_seq < 0:
            self.last_event_seq = events[-1].seq if events else 0
            return []
        if not fresh:
            return []
        self.last_event_seq = fresh[-1].seq
        frames = []
        for event in fresh:
            p = event.payload
            # The order closes the position: the position's side is the other one.
            position_side = "Buy" if p["side"] == "SELL" else "Sell"
            price = wire.price(self.inst, Decimal(str(p["avg_price"]))) if p.get(
                "avg_price") is not None else ""
            if self.kind == "liquidation":
                frames.append(self._frame(ex, "snapshot", {
                    "updatedTime": event.time_ms, "symbol": self.inst.symbol,
                    "side": position_side, "size": str(p["qty"]), "price": price}))
            else:
                frames.append(self._frame(ex, "snapshot", [{
                    "T": event.time_ms, "s": self.inst.symbol, "S": position_side,
                    "v": str(p["qty"]), "p": price}]))
        return frames


def parse_topic(name: object, ex: Exchange) -> Topic:
    """A public topic, or UnknownTopic naming the problem."""
    if not isinstance(name, str):
        raise UnknownTopic(f"topic must be a string, got {name!r}")
    parts = name.split(".")
    kind = parts[0]
    if kind not in KINDS:
        raise UnknownTopic(f"handler not found, topic:{name}")
    try:
        inst = ex.instrument(parts[-1])
    except PerpsimError:
        raise UnknownTopic(f"unknown symbol in topic:{name}") from None
    if kind == "orderbook":
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) not in ORDERBOOK_DEPTHS:
            raise UnknownTopic(f"orderbook depth must be one of {ORDERBOOK_DEPTHS}, "
                               f"topic:{name}")
        return Topic(name, kind, inst, depth=int(parts[1]))
    if kind == "kline":
        if len(parts) != 3 or parts[1] not in wire.INTERVALS:
            raise UnknownTopic(f"kline interval must be one of {', '.join(wire.INTERVALS)}, "
                               f"topic:{name}")
        return Topic(name, kind, inst, interval=parts[1])
    if len(parts) != 2:
        raise UnknownTopic(f"handler not found, topic:{name}")
    return Topic(name, kind, inst)
