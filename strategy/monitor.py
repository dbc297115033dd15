"""What the hedger knows about its position: a MonitorState rebuilt over REST at every decision
point, kept warm between them by ccxt.pro ``watch_*`` streams.

The REST resync is the source of truth for decisions (positions, futures and spot balances,
premium index, last trade (the current 1-minute candle's close), funding income): it is what a
restarted client would see, and it cannot be reordered behind an older WebSocket frame. The
streams make the client event-driven: a mark update crossing a wake level, an order update, a
liquidation order or a stream gap pokes the clock so a real-time runner decides at once instead
of at its next scheduled time. After a stream error the monitor counts a gap and the next
decision resyncs (it always does).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from perpsim.strategy.plan import (
    HUNDRED,
    Tier,
    coin_value,
    dec,
    distance_pct,
    tier_for,
)
from perpsim.strategy.quiet_income import income_places, payments_from_events
from perpsim.strategy.quiet_reads import QuietRead
from perpsim.strategy.venue import BINANCE_COINM, Venue, venue_for

if TYPE_CHECKING:
    from perpsim.strategy.clock import WaitResult

ZERO = Decimal(0)
# binancecoinm's spot-wallet params (kept for callers; each venue's are in strategy/venue.py).
SPOT_BALANCE = dict(BINANCE_COINM.spot_balance_params)


@dataclass(frozen=True)
class MonitorState:
    """The hedge at one instant, as the client sees it over the wire."""

    time_ms: int
    symbol: str  # ccxt unified symbol
    market_id: str
    contract_size_usd: Decimal
    tiers: tuple[Tier, ...]
    index_usd: Decimal
    mark_usd: Decimal
    last_usd: Decimal
    hedge_ratio: Decimal = Decimal(1)
    funding_rate_predicted: Decimal | None = None  # what the next funding time would settle
    next_funding_ms: int | None = None
    funding_cum_btc: Decimal = ZERO  # + received, − paid, since the run started
    funding_payments: int = 0
    funding_paid_streak: int = 0  # latest consecutive payments the short PAID
    funding_streak_start_ms: int | None = None
    position_contracts: int = 0  # signed: a hedge is negative
    entry_price_usd: Decimal | None = None
    margin_mode: str = "isolated"
    leverage: int = 1
    isolated_wallet_btc: Decimal = ZERO  # margin in the isolated position, excl. unrealised
    unrealized_pnl_btc: Decimal = ZERO
    liquidation_price_usd: Decimal | None = None  # as the venue reports it
    futures_wallet_btc: Decimal = ZERO  # cross wallet, excl. isolated margin
    futures_available_btc: Decimal = ZERO
    spot_btc: Decimal = ZERO
    fees_cum_btc: Decimal = ZERO
    taker_rate: Decimal = Decimal("0.0005")
    liquidated: bool = False  # the venue shrank or closed the position (liquidation or ADL)
    ws_gaps: int = 0

    # ---- derived -------------------------------------------------------------------------------
    @property
    def basis_usd(self) -> Decimal:
        """Mark − index."""
        return self.mark_usd - self.index_usd

    @property
    def basis_pct(self) -> Decimal:
        """(Mark − index) / index in percent."""
        return (self.mark_usd - self.index_usd) / self.index_usd * HUNDRED

    @property
    def perp_basis_usd(self) -> Decimal:
        """Perp last trade − index (spot)."""
        return self.last_usd - self.index_usd

    @property
    def position_value_btc(self) -> Decimal:
        """|Q|·CS / mark."""
        return coin_value(self.position_contracts, self.contract_size_usd, self.mark_usd)

    @property
    def margin_balance_btc(self) -> Decimal:
        """The margin backing the position: isolated wallet (or cross wallet) + unrealised."""
        if self.margin_mode == "isolated":
            return self.isolated_wallet_btc + self.unrealized_pnl_btc
        return self.futures_wallet_btc + self.unrealized_pnl_btc

    @property
    def maint_margin_btc(self) -> Decimal:
        """N/mark·MMR − cum with the tier of the value at the mark."""
        if not self.position_contracts:
            return ZERO
        value = self.position_value_btc
        tier = tier_for(self.tiers, value)
        return max(ZERO, value * tier.mmr - tier.cum_coin)

    @property
    def margin_ratio(self) -> Decimal:
        """Maintenance margin / margin balance (≥ 1: liquidation), as Binance defines it."""
        mm = self.maint_margin_btc
        if mm <= 0:
            return ZERO
        balance = self.margin_balance_btc
        return Decimal(999) if balance <= 0 else mm / balance

    @property
    def liquidation_distance_pct(self) -> Decimal | None:
        """|liquidation − mark| / mark in percent (None: cannot be liquidated)."""
        if not self.position_contracts:
            return None
        return distance_pct(self.liquidation_price_usd, self.mark_usd)

    @property
    def futures_equity_btc(self) -> Decimal:
        """Futures wallet + isolated margin + unrealised PnL."""
        return self.futures_wallet_btc + self.isolated_wallet_btc + self.unrealized_pnl_btc

    @property
    def total_btc(self) -> Decimal:
        """Everything held, in coin: spot wallet + futures equity."""
        return self.spot_btc + self.futures_equity_btc

    @property
    def target_contracts(self) -> int:
        """The short that hedges ``hedge_ratio`` of everything held, at the index."""
        raw = self.total_btc * self.index_usd * self.hedge_ratio / self.contract_size_usd
        return max(0, int(raw.to_integral_value()))

    @property
    def drift_pct(self) -> Decimal | None:
        """(short − target) / target in percent: + over-hedged, − under-hedged."""
        target = self.total_btc * self.index_usd * self.hedge_ratio / self.contract_size_usd
        if target <= 0:
            return None
        return (Decimal(-self.position_contracts) - target) / target * HUNDRED


@dataclass
class LiveView:
    """What the streams last said (for wake-ups between decisions; never for decisions)."""

    mark_usd: Decimal | None = None
    index_usd: Decimal | None = None
    mark_ms: int = 0
    position_contracts: int | None = None
    position_ms: int = 0
    foreign_orders: list[dict[str, Any]] = field(default_factory=list)  # liquidation, ADL
    updates: int = 0


Notify = Callable[[str], None]
MarkNotify = Callable[[Decimal, Decimal | None], None]


def venue_order_kind(order: Mapping[str, Any], venue: Venue = BINANCE_COINM) -> str | None:
    """"liquidation" or "adl" for an order the venue placed on our account, else None
    (how each venue marks them: strategy/venue.py)."""
    return venue.order_kind(order)


class Monitor:
    """Keeps a MonitorState for one symbol of one ccxt.pro client (see module doc)."""

    def __init__(self, exchange: Any, symbol: str, *, tiers: Sequence[Tier], start_ms: int,
                 hedge_ratio: Decimal = Decimal(1), on_event: Notify | None = None,
                 on_mark: MarkNotify | None = None) -> None:
        self.ex = exchange
        self.venue = venue_for(exchange)
        self.symbol = symbol
        market = exchange.market(symbol)
        self.market_id: str = market["id"]
        self.coin: str = market.get("settle") or market["base"]
        self.contract_size = dec(market.get("contractSize") or 1, "contractSize")
        self.taker_rate = dec(market.get("taker") or "0.0005", "taker fee")
        self.tiers = tuple(tiers)
        self.start_ms = start_ms
        self.hedge_ratio = hedge_ratio
        self.on_event = on_event or (lambda kind: None)
        self.on_mark = on_mark or (lambda mark, index: None)
        self.live = LiveView()
        self.gaps = 0
        self.fees_cum_btc = ZERO
        self.state: MonitorState | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._spot: Decimal | None = None
        self._income: list[tuple[int, Decimal, str]] = []  # (time, amount, tranId)
        self._income_next_ms: int | None = None  # refetch funding once this time has passed
        self.new_income: list[tuple[int, Decimal]] = []  # payments seen by the latest resync
        # The four reads of a resync at once (a live venue: one round trip's wait, not four),
        # or one after the other (stepped time: they read one simulated instant, so the
        # answers are the same, and in process or over loopback nothing overlaps anyway —
        # concurrency only costs the tasks, and on the wire extra connections).
        self.concurrent_reads = True
        # The sole-actor clock's log of the account's events (strategy/quiet_income.py; None:
        # always read the income), how much of it the income read so far covers, and the
        # decimals the venue writes income with (known after a read that returned some).
        self.event_log: list[dict[str, Any]] | None = None
        self._log_read = 0
        self._income_places: int | None = None
        # Reused after a quiet stepped wait (quiet_reads.py); the position at the new mark.
        self._futures_balance = QuietRead()
        self._positions = QuietRead()
        self._cross_read: Decimal | None = None  # the cross wallet the last balance gave

    # ---- streams -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the ``watch_*`` loops (they run until :meth:`stop`)."""
        if self._tasks or not self.venue.can_stream(self.ex):
            return
        loops: list[Callable[[], Any]] = [self._watch_mark, self._watch_orders,
                                          self._watch_positions, self._watch_balance]
        self._tasks = [asyncio.create_task(loop(), name=f"monitor-{loop.__name__}")
                       for loop in loops]

    async def stop(self) -> None:
        """Cancel the stream loops and wait for them."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _loop(self, step: Callable[[], Any]) -> None:
        backoff = 0.05
        while True:
            try:
                await step()
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception:
                # Whatever the stream missed, the next decision's REST resync recovers.
                self.gaps += 1
                self.on_event("gap")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _watch_mark(self) -> None:
        async def step() -> None:
            ticker = await self.venue.watch_mark(self.ex, self.symbol)
            ts = int(ticker.get("timestamp") or 0)
            if ts < self.live.mark_ms:
                return
            mark, index = self.venue.stream_mark_index(ticker)
            if mark is None:
                return
            self.live.mark_usd = dec(mark, "markPrice")
            self.live.index_usd = None if index is None else dec(index, "indexPrice")
            self.live.mark_ms = ts
            self.live.updates += 1
            self.on_mark(self.live.mark_usd, self.live.index_usd)

        await self._loop(step)

    async def _watch_orders(self) -> None:
        async def step() -> None:
            orders = await self.ex.watch_orders(self.symbol)
            for order in orders or []:
                if self.venue.order_kind(order) is not None:
                    self.live.foreign_orders.append(order)
                    self.on_event("liquidation.triggered")
            self.live.updates += 1
            self.on_event("order.update")

        await self._loop(step)

    async def _watch_positions(self) -> None:
        async def step() -> None:
            positions = await self.ex.watch_positions([self.symbol])
            for pos in positions or []:
                if pos.get("symbol") != self.symbol:
                    continue
                ts = int(pos.get("timestamp") or 0)
                if ts < self.live.position_ms:
                    continue
                amount = self.venue.stream_position_contracts(pos)
                if amount is not None:
                    self.live.position_contracts = amount
                    self.live.position_ms = ts
            self.live.updates += 1
            self.on_event("position")

        await self._loop(step)

    async def _watch_balance(self) -> None:
        async def step() -> None:
            await self.ex.watch_balance()
            self.live.updates += 1
            self.on_event("balance")

        await self._loop(step)

    @property
    def streaming(self) -> bool:
        """Whether the ``watch_*`` loops run (a stepped dry run reads over REST only)."""
        return bool(self._tasks)

    # ---- REST resync ---------------------------------------------------------------------------
    async def fetch_venue_orders(self, since_ms: int) -> None:
        """The venue's own orders on our account since ``since_ms`` (liquidation, ADL), read
        over REST into ``live.foreign_orders``: what the order stream reports, for a client
        that runs without streams."""
        for order in await self.venue.venue_orders(self.ex, self.symbol, since_ms):
            if self.venue.order_kind(order) is not None:
                self.live.foreign_orders.append(order)

    def spot_changed(self) -> None:
        """Our own transfer moved coin: re-read the spot wallet at the next resync."""
        self._spot = None
        self._futures_balance.changed()
        self._positions.changed()

    def after_wait(self, waited: WaitResult, *, sole_actor: bool) -> None:
        """The runner's wait between decisions ended: a quiet one lets the next resync reuse
        the futures balance and the position (strategy/quiet_reads.py)."""
        self._futures_balance.after_wait(waited, self.state, sole_actor=sole_actor,
                                         coin=self.coin, cross_wallet_btc=self._cross_read)
        self._positions.after_wait(waited, self.state, sole_actor=sole_actor)

    async def resync(self, now_ms: int) -> MonitorState:
        """Rebuild the state from REST (the decision-point read)."""
        ex, sym = self.ex, self.symbol
        # The last trade price is the close of the current 1-minute candle: the same number as
        # the 24-hour ticker's, at a fraction of its cost to the venue.
        reads = (lambda: ex.fetch_funding_rate(sym),
                 lambda: self._positions.read(lambda: self.venue.position_rows(ex, sym)),
                 lambda: self._futures_balance.read(ex.fetch_balance),
                 lambda: ex.fetch_ohlcv(sym, "1m", None, 1))
        if self.concurrent_reads:
            premium, positions, balance, candles = await asyncio.gather(*(r() for r in reads))
        else:
            premium, positions, balance, candles = [await read() for read in reads]
        if self._positions.reused:
            positions = await self._positions_at_mark(positions, premium)
        if self._spot is None:
            self._spot = await self._fetch_spot()
        await self._refresh_income(now_ms, premium)
        venue = self.venue
        quote = venue.premium(premium)
        mark, index = quote.mark_usd, quote.index_usd
        last = dec(candles[-1][4], "close") if candles else mark
        pos = venue.position(positions, sym)
        qty = pos.contracts
        entry, liq = pos.entry_price_usd, pos.liquidation_price_usd
        asset = venue.futures_wallet(balance, self.coin)
        wallet = asset.wallet_btc
        iso = pos.isolated_margin_btc
        mode = pos.margin_mode or (self.state.margin_mode if self.state else "isolated")
        cross = self._cross_read = asset.cross_wallet_btc
        futures_wallet = cross if cross is not None else wallet - iso
        if mode == "cross":
            iso = ZERO
        streak, streak_start = self._streak()
        self.state = MonitorState(
            time_ms=now_ms, symbol=sym, market_id=self.market_id,
            contract_size_usd=self.contract_size, tiers=self.tiers, index_usd=index,
            mark_usd=mark, last_usd=last, hedge_ratio=self.hedge_ratio,
            funding_rate_predicted=quote.predicted_rate,
            next_funding_ms=quote.next_funding_ms,
            funding_cum_btc=sum((amount for _, amount, _ in self._income), ZERO),
            funding_payments=len(self._income), funding_paid_streak=streak,
            funding_streak_start_ms=streak_start, position_contracts=qty,
            entry_price_usd=entry, margin_mode=mode, leverage=pos.leverage,
            isolated_wallet_btc=iso, unrealized_pnl_btc=pos.unrealized_pnl_btc,
            liquidation_price_usd=liq if liq is None or liq > 0 else None,
            futures_wallet_btc=futures_wallet,
            futures_available_btc=asset.available_btc,
            spot_btc=self._spot, fees_cum_btc=self.fees_cum_btc, taker_rate=self.taker_rate,
            ws_gaps=self.gaps,
        )
        return self.state

    async def _positions_at_mark(self, positions: Any, premium: Mapping[str, Any]) -> Any:
        """The reused position answer at the mark just read, or a fresh read when the venue's
        digits for its unrealised PnL cannot be proven (strategy/mark_pnl.py)."""
        marked = self.venue.positions_at_mark(self.ex, positions, self.symbol, premium,
                                              self.contract_size)
        if marked is None:
            marked = await self.venue.position_rows(self.ex, self.symbol)
        self._positions.answer = marked
        return marked

    async def _fetch_spot(self) -> Decimal:
        balance = await self.ex.fetch_balance(dict(self.venue.spot_balance_params))
        return self.venue.spot_coin(balance, self.coin)

    async def _refresh_income(self, now_ms: int, premium: Mapping[str, Any]) -> None:
        """Fetch funding income only after a funding time passed. (The settled rate itself is
        not read: no rule, sample or report uses it — the rules judge the predicted rate, the
        record the payments.)"""
        self.new_income = []
        if self._income_next_ms is not None and now_ms < self._income_next_ms:
            return
        since = (self._income[-1][0] + 1) if self._income else self.start_ms
        rows = self._income_from_events()
        if rows is None:
            seen = {tran for _, _, tran in self._income}
            rows = await self.venue.funding_payments(self.ex, self.symbol, since, seen)
            if rows:
                self._income_places = income_places(rows[-1][1])
        if self.event_log is not None:
            self._log_read = len(self.event_log)
        for time_ms, amount, tran in rows:
            self._income.append((time_ms, amount, tran))
            self.new_income.append((time_ms, amount))
        self._income.sort(key=lambda item: item[0])
        self._income_next_ms = self.venue.next_settlement_ms(premium)

    def _income_from_events(self) -> list[tuple[int, Decimal, str]] | None:
        """The rows an income read would return, from the clock's events since the last
        read; None when they cannot be proven (strategy/quiet_income.py)."""
        log, places = self.event_log, self._income_places
        if log is None or places is None or not self.venue.income_is_payments:
            return None
        payments = payments_from_events(log[self._log_read:], market_id=self.market_id,
                                        places=places)
        if payments is None:
            return None
        return [(time_ms, amount, f"event:{time_ms}") for time_ms, amount in payments]

    def _streak(self) -> tuple[int, int | None]:
        streak, start = 0, None
        for time_ms, amount, _ in reversed(self._income):
            if amount >= 0:
                break
            streak, start = streak + 1, time_ms
        return streak, start
