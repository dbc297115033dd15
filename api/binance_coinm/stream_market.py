"""Public market streams: names, readings at quiescent instants, and per-subscription coalescing.

A market stream's frames are taken only when the engine is at rest — between requests, on the
event loop — so each frame is the engine's state at an instant it actually reached (its ``E``),
read through the same serialisers as the REST answers (api/binance_coinm/market_wire.py).

Coalescing (the reason a 30-day advance does not emit millions of frames): a state stream
(depth, mark price, tickers, book ticker) sends at most one frame per quiescent instant, and
within its cadence (100 ms for ``depth@100ms``, 1 s for ``markPrice@1s``…) at most one per
cadence of simulated *or* wall time — a change that arrives sooner waits (``pending``) and goes
out as the *latest* state when the cadence has passed. Periodic streams (mark price, tickers)
also send when simulated time has moved a cadence, as Binance pushes them on a timer; depth,
the book ticker and the kline streams send only on change (a kline stream re-sends the bar it
last sent, closed, when a new bar opens). Event streams (trade, aggTrade) send every print;
forceOrder sends the latest liquidation of each second, as Binance does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from perpsim.api.binance_coinm import market_wire as wire
from perpsim.api.binance_coinm import stream_frames as fr
from perpsim.api.binance_coinm.sequence import depth_update_id
from perpsim.api.state import ServerState
from perpsim.sim.errors import PerpsimError
from perpsim.sim.exchange import Exchange, Trade
from perpsim.sim.journal import Event
from perpsim.sim.market_data import INTERVALS_MS, PriceKind, candles
from perpsim.sim.profile import Instrument

DEPTH_LEVELS = 1000  # what ccxt's snapshot asks for (GET /dapi/v1/depth?limit=1000)
PARTIAL_LEVELS = (5, 10, 20)
FORCE_ORDER_WINDOW_MS = 1000

_SYMBOL = r"(?P<symbol>[a-z0-9_]+)"
_PAIR = r"(?P<pair>[a-z0-9]+)"
_INTERVAL = "(?P<interval>" + "|".join(INTERVALS_MS) + ")"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(_SYMBOL + r"@kline_" + _INTERVAL), "kline"),
    (re.compile(_SYMBOL + r"@markPriceKline_" + _INTERVAL), "markPriceKline"),
    (re.compile(_PAIR + r"@indexPriceKline_" + _INTERVAL), "indexPriceKline"),
    (re.compile(_PAIR + r"_(?P<contract>perpetual|current_quarter|next_quarter)"
                r"@continuousKline_" + _INTERVAL), "continuousKline"),
    (re.compile(_PAIR + r"@indexPrice(@(?P<speed>1)s)?"), "indexPrice"),
    (re.compile(_SYMBOL + r"@depth(?P<levels>5|10|20)?(@(?P<speed>100|250|500)ms)?"), "depth"),
    (re.compile(_SYMBOL + r"@markPrice(@(?P<speed>1|3)s)?"), "markPrice"),
    (re.compile(r"!markPrice@arr(@(?P<speed>1|3)s)?"), "markPrice"),
    (re.compile(_SYMBOL + r"@miniTicker"), "miniTicker"),
    (re.compile(r"!miniTicker@arr"), "miniTicker"),
    (re.compile(_SYMBOL + r"@ticker"), "ticker"),
    (re.compile(r"!ticker@arr"), "ticker"),
    (re.compile(_SYMBOL + r"@bookTicker"), "bookTicker"),
    (re.compile(r"!bookTicker"), "bookTicker"),
    (re.compile(_SYMBOL + r"@trade"), "trade"),
    (re.compile(_SYMBOL + r"@aggTrade"), "aggTrade"),
    (re.compile(_SYMBOL + r"@forceOrder"), "forceOrder"),
    (re.compile(r"!forceOrder@arr"), "forceOrder"),
)
# Binance's update speeds per stream (COIN-M market streams), in simulated ms.
_DEFAULT_CADENCE_MS = {"depth": 250, "markPrice": 3000, "miniTicker": 500, "ticker": 500,
                       "bookTicker": 0, "trade": 0, "aggTrade": 0,
                       "forceOrder": FORCE_ORDER_WINDOW_MS, "indexPrice": 3000,
                       "kline": 250, "markPriceKline": 250, "indexPriceKline": 250,
                       "continuousKline": 250}
_ARR_CADENCE_MS = {"miniTicker": 1000, "ticker": 1000}
_PERIODIC = frozenset({"markPrice", "miniTicker", "ticker", "indexPrice"})
# Kline streams: the price each bar follows, and the frame that carries it.
_KLINES: dict[str, tuple[PriceKind, Callable[[int, Instrument, fr.KlineBar], fr.Frame]]] = {
    "kline": ("last", fr.kline),
    "continuousKline": ("last", fr.continuous_kline),
    "markPriceKline": ("mark", fr.mark_price_kline),
    "indexPriceKline": ("index", fr.index_price_kline),
}
_PAIR_KINDS = frozenset({"indexPrice", "indexPriceKline", "continuousKline"})


class UnknownStream(ValueError):
    """A stream name this server does not serve (Binance: error code 2, invalid request)."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A parsed stream name: kind, symbol (None: every symbol), cadence, partial depth."""

    name: str
    kind: str
    symbol: str | None
    cadence_ms: int
    levels: int | None = None
    interval: str | None = None  # kline streams


def parse_stream(name: object, ex: Exchange) -> StreamSpec:
    """The stream ``name`` names (symbols lower-case, as Binance), or UnknownStream."""
    if not isinstance(name, str):
        raise UnknownStream(f"stream names are strings, got {name!r}")
    for pattern, kind in _PATTERNS:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        groups = match.groupdict()
        symbol = None
        if kind in _PAIR_KINDS:
            symbol = _pair_symbol(ex, name, groups["pair"], groups.get("contract"))
        elif groups.get("symbol") is not None:
            symbol = groups["symbol"].upper()
            if symbol.lower() != groups["symbol"] or symbol not in ex.pricers:
                tradable = ", ".join(i.symbol.lower() for i in wire.tradable(ex))
                raise UnknownStream(f"unknown symbol in stream {name!r}; streams exist for: "
                                    f"{tradable}")
        speed = groups.get("speed")
        cadence = _DEFAULT_CADENCE_MS[kind] if symbol else _ARR_CADENCE_MS.get(
            kind, _DEFAULT_CADENCE_MS[kind])
        if speed is not None:
            cadence = int(speed) * (1000 if kind == "markPrice" else 1)
        levels = groups.get("levels")
        return StreamSpec(name, kind, symbol, cadence, int(levels) if levels else None,
                          groups.get("interval"))
    raise UnknownStream(f"unknown stream {name!r}")


def _pair_symbol(ex: Exchange, name: str, pair: str, contract: str | None) -> str:
    """The priced instrument a pair stream reads (its contract type's, or any of the pair)."""
    try:
        if contract is not None:
            inst = wire.contract_instrument(ex, pair.upper(), contract.upper())
        else:
            inst = wire.pair_instrument(ex, pair.upper())
    except PerpsimError:
        inst = None
    if inst is None or inst.symbol not in ex.pricers:
        pairs = ", ".join(sorted({i.pair.lower() for i in wire.tradable(ex)}))
        raise UnknownStream(f"unknown pair or contract in stream {name!r}; streams exist for: "
                            f"{pairs}")
    return inst.symbol


class Readings:
    """Market state at one quiescent instant, read through the REST serialisers, memoised."""

    def __init__(self, state: ServerState, liquidations: Sequence[Event]) -> None:
        self.state = state
        self.ex = state.exchange
        self.now_ms = self.ex.now_ms
        self.liquidations = liquidations
        self._memo: dict[tuple[str, str], Any] = {}

    def _get(self, kind: str, symbol: str, read: Callable[[], Any]) -> Any:
        key = (kind, symbol)
        if key not in self._memo:
            self._memo[key] = read()
        return self._memo[key]

    def inst(self, symbol: str) -> Instrument:
        """The instrument (static profile data)."""
        return self.ex.instruments[symbol]

    def symbols(self, spec: StreamSpec) -> list[str]:
        """The symbols a stream covers."""
        if spec.symbol is not None:
            return [spec.symbol]
        return [inst.symbol for inst in wire.tradable(self.ex)]

    def premium(self, symbol: str) -> dict[str, Any]:
        """The premiumIndex row."""
        return self._get("premium", symbol,
                         lambda: wire.premium_index(self.ex, self.inst(symbol)))

    def ticker(self, symbol: str) -> dict[str, Any]:
        """The ticker/24hr row."""
        return self._get("ticker", symbol,
                         lambda: wire.ticker_24hr(self.ex, self.inst(symbol)))

    def depth(self, symbol: str) -> tuple[int, dict[str, Any]]:
        """(update id, the REST depth body with every level the snapshot can show)."""
        def read() -> tuple[int, dict[str, Any]]:
            update_id = depth_update_id(self.state, symbol)
            return update_id, wire.depth(self.ex, self.inst(symbol), update_id, DEPTH_LEVELS)
        return self._get("depth", symbol, read)

    def book_ticker(self, symbol: str) -> dict[str, Any]:
        """The bookTicker row."""
        return self._get("book", symbol, lambda: wire.book_ticker(
            self.ex, self.inst(symbol), self.depth(symbol)[0]))

    def trades(self, symbol: str) -> list[Trade]:
        """The symbol's public prints so far."""
        return self.ex.states[symbol].trades

    def kline(self, symbol: str, interval: str, kind: PriceKind,
              open_ms: int | None = None) -> tuple[list[Any], int, int]:
        """(REST kline row, first and last trade id) of the bar now (or opening at
        ``open_ms``); trade ids −1 when the bar has no print."""
        def read() -> tuple[list[Any], int, int]:
            inst = self.inst(symbol)
            end = None if open_ms is None else open_ms + INTERVALS_MS[interval] - 1
            (candle,) = candles(self.ex, symbol, interval, kind, open_ms, end, 1)[-1:]
            ids = [t.trade_id for t in self.trades(symbol)
                   if kind == "last" and candle.open_ms <= t.time_ms <= candle.close_ms]
            return (wire.kline_row(self.ex, inst, candle, kind), min(ids, default=-1),
                    max(ids, default=-1))
        return self._get(f"kline {interval} {kind} {open_ms}", symbol, read)


def _without_times(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(v for k, v in row.items() if k not in ("time", "openTime", "closeTime"))


@dataclass(slots=True)
class Subscription:
    """One stream on one connection: what it last sent, and whether a change waits."""

    spec: StreamSpec
    generation: int
    last_sent_ms: int | None = None
    last_sent_wall: float = -math.inf
    last_key: Any = None
    pending: bool = False
    last_u: int = 0  # depth: the u of the last depthUpdate (or the baseline)
    seen_u: int = 0
    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)
    trade_index: dict[str, int] = field(default_factory=dict)
    force_seq: int = 0
    bar_open_ms: int | None = None  # kline streams: the open time of the bar last sent

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self, r: Readings, wall: float) -> list[fr.Frame | list[fr.Frame]]:
        """Take the baseline at subscription; the frames to send right after the ack."""
        kind = self.spec.kind
        if kind == "depth" and self.spec.levels is None:
            self._baseline_depth(r)  # diffs from here; ccxt takes the REST snapshot after the ack
            return []
        if kind in ("trade", "aggTrade"):
            self.trade_index = {s: len(r.trades(s)) for s in r.symbols(self.spec)}
            return []
        if kind == "forceOrder":
            self.force_seq = r.liquidations[-1].seq if r.liquidations else 0
            return []
        # State streams start with the current state, so a watch resolves at once.
        return self.poll(r, wall)

    def renew(self, generation: int) -> None:
        """The market was rebuilt (reset): its prints and liquidations are all new."""
        self.generation = generation
        self.trade_index = {}
        self.force_seq = 0
        self.bar_open_ms = None  # the old market's bar is not this market's to close

    def _baseline_depth(self, r: Readings) -> None:
        assert self.spec.symbol is not None
        update_id, body = r.depth(self.spec.symbol)
        self.last_u = self.seen_u = update_id
        self.bids, _ = fr.book_diff({}, body["bids"])
        self.asks, _ = fr.book_diff({}, body["asks"])

    # ---- polling -------------------------------------------------------------------------------
    def _due(self, now_ms: int, wall: float) -> bool:
        if self.last_sent_ms is None:
            return True
        cadence = self.spec.cadence_ms
        return now_ms >= self.last_sent_ms + cadence or wall >= self.last_sent_wall + cadence / 1000

    def _sent(self, now_ms: int, wall: float, key: Any) -> None:
        self.last_sent_ms, self.last_sent_wall, self.last_key = now_ms, wall, key
        self.pending = False

    def poll(self, r: Readings, wall: float) -> list[fr.Frame | list[fr.Frame]]:
        """The frames this subscription sends at this instant (often none)."""
        kind = self.spec.kind
        if kind in ("trade", "aggTrade"):
            return self._poll_trades(r)
        if kind == "forceOrder":
            return self._poll_force(r)
        if not self._due(r.now_ms, wall):
            # Within the cadence: whatever changed goes out, as the latest state, once due.
            self.pending = True
            return []
        if kind == "depth":
            return self._poll_depth(r, wall)
        if kind in _KLINES:
            return self._poll_kline(r, wall)
        return self._poll_state(r, wall)

    def _poll_state(self, r: Readings, wall: float) -> list[fr.Frame | list[fr.Frame]]:
        kind, now = self.spec.kind, r.now_ms
        symbols = r.symbols(self.spec)
        if kind in ("markPrice", "indexPrice"):
            rows = [r.premium(s) for s in symbols]
        elif kind == "bookTicker":
            rows = [r.book_ticker(s) for s in symbols]
        else:
            rows = [r.ticker(s) for s in symbols]
        key = tuple(_without_times(row) for row in rows)
        moved = (kind in _PERIODIC and self.last_sent_ms is not None
                 and now >= self.last_sent_ms + self.spec.cadence_ms)
        self.pending = False
        if key == self.last_key and not moved:
            return []
        self._sent(now, wall, key)
        if kind == "markPrice":
            frames = [fr.mark_price_update(row) for row in rows]
        elif kind == "indexPrice":
            frames = [fr.index_price_update(now, row["pair"], row["indexPrice"]) for row in rows]
        elif kind == "bookTicker":
            frames = [_book_ticker_frame(now, row) for row in rows]
        elif kind == "miniTicker":
            frames = [fr.mini_ticker(now, row) for row in rows]
        else:
            frames = [fr.ticker(now, row) for row in rows]
        if self.spec.symbol is None and kind != "bookTicker":
            return [frames]  # the !…@arr streams send one array
        return list(frames)

    def _poll_depth(self, r: Readings, wall: float) -> list[fr.Frame | list[fr.Frame]]:
        symbol = self.spec.symbol
        assert symbol is not None
        update_id, body = r.depth(symbol)
        self.pending = False
        if update_id == self.seen_u:
            return []
        self.seen_u = update_id
        inst = r.inst(symbol)
        if self.spec.levels is not None:  # partial book: the top N, whole, on every change
            levels = self.spec.levels
            top = ([row[:2] for row in body["bids"][:levels]],
                   [row[:2] for row in body["asks"][:levels]])
            if top == self.last_key:
                return []
            frame = fr.depth_update(r.now_ms, inst, self.last_u + 1, update_id, self.last_u,
                                    *top)
        else:
            self.bids, bids = fr.book_diff(self.bids, body["bids"])
            self.asks, asks = fr.book_diff(self.asks, body["asks"])
            if not bids and not asks:
                return []  # the counter moved but no level did: the next diff covers the ids
            frame = fr.depth_update(r.now_ms, inst, self.last_u + 1, update_id, self.last_u,
                                    bids, asks)
            top = None
        self.last_u = update_id
        self._sent(r.now_ms, wall, top)
        return [frame]

    def _poll_kline(self, r: Readings, wall: float) -> list[fr.Frame | list[fr.Frame]]:
        """The bar now when it changed; when a new bar opened, first the last one sent, closed
        (coalesced: bars wholly inside one advance are not replayed — ask REST for them)."""
        spec = self.spec
        assert spec.symbol is not None
        assert spec.interval is not None
        price_kind, make = _KLINES[spec.kind]
        inst = r.inst(spec.symbol)
        row, first_id, last_id = r.kline(spec.symbol, spec.interval, price_kind)
        self.pending = False
        frames: list[fr.Frame | list[fr.Frame]] = []
        if self.bar_open_ms is not None and row[0] != self.bar_open_ms:
            done, done_first, done_last = r.kline(spec.symbol, spec.interval, price_kind,
                                                  self.bar_open_ms)
            frames.append(make(r.now_ms, inst, fr.KlineBar(done, spec.interval, done_first,
                                                           done_last, True)))
        key = (tuple(row), first_id, last_id)
        if key == self.last_key and not frames:
            return []
        self._sent(r.now_ms, wall, key)
        self.bar_open_ms = row[0]
        frames.append(make(r.now_ms, inst, fr.KlineBar(row, spec.interval, first_id, last_id,
                                                       False)))
        return frames

    def _poll_trades(self, r: Readings) -> list[fr.Frame | list[fr.Frame]]:
        frames: list[fr.Frame | list[fr.Frame]] = []
        make = fr.trade if self.spec.kind == "trade" else fr.agg_trade
        for symbol in r.symbols(self.spec):
            trades = r.trades(symbol)
            start = self.trade_index.get(symbol, 0)
            if start >= len(trades):
                continue
            inst = r.inst(symbol)
            for t in trades[start:]:
                row = (wire.trade_row(inst, t) if self.spec.kind == "trade"
                       else wire.agg_trade_row(inst, t))
                frames.append(make(r.now_ms, inst, row))
            self.trade_index[symbol] = len(trades)
        return frames

    def _poll_force(self, r: Readings) -> list[fr.Frame | list[fr.Frame]]:
        fresh = [e for e in r.liquidations if e.seq > self.force_seq
                 and (self.spec.symbol is None or e.payload["symbol"] == self.spec.symbol)]
        if not fresh:
            return []
        self.force_seq = fresh[-1].seq
        # Binance pushes only the latest liquidation of each symbol within 1000 ms.
        latest: dict[tuple[str, int], Event] = {}
        for e in fresh:
            latest[(e.payload["symbol"], e.time_ms // FORCE_ORDER_WINDOW_MS)] = e
        return [fr.force_order(e.time_ms, r.inst(e.payload["symbol"]), e.payload)
                for e in sorted(latest.values(), key=lambda e: e.seq)]


def _book_ticker_frame(now_ms: int, row: dict[str, Any]) -> fr.Frame:
    return {"e": "bookTicker", "u": row["lastUpdateId"], "s": row["symbol"], "ps": row["pair"],
            "b": row["bidPrice"], "B": row["bidQty"], "a": row["askPrice"], "A": row["askQty"],
            "T": now_ms, "E": now_ms}
