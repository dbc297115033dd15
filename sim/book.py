"""The order book of one symbol: users' resting orders plus synthetic liquidity.

Matching *decides*, the engine *applies* (architecture.md, the NautilusTrader lesson):
``plan_match`` returns the fills a taker order would get and changes nothing; the engine posts
them through accounting, then calls ``apply_match`` (which updates the resting maker orders),
``Order.apply_fill`` on the taker, and ``add`` if the plan says the rest should rest::

    plan = book.plan_match(order)
    plan.raise_if_rejected()              # GTX that would take, FOK the book cannot fill
    ... accounting for plan.fills ...
    book.apply_match(plan, now_ms)        # maker side
    for f in plan.fills: order.apply_fill(f.qty_contracts, f.price_usd, cs, now_ms)
    if plan.action == "REST": book.add(order)
    elif plan.action == "EXPIRE": order.status = "EXPIRED"

Rules this book follows (each a deliberate, documented choice):

* **Synthetic liquidity is stateless.** Around the reference price (the scenario's perp price
  on the tick) an ever re-quoting market maker shows ``levels`` asks at
  ref + (half_spread_ticks + k·level_step_ticks)·tick and bids symmetric below, each of
  ``contracts_per_level``. One market order walks those levels and slips; the next order sees
  full depth again (the maker replenished in between). Bids at or below zero are not quoted.
* **Price-time priority** among users: best price first, FIFO by ``Order.seq`` within a
  price. Where users and the synthetic maker quote the same price, users fill first: the
  maker re-quotes continuously, so it is always the last to arrive.
* **Self-trade is allowed** (no self-trade prevention): a taker may match its own account's
  resting order; both sides are booked as ordinary fills.
* **GTX (post-only) that would take** and **FOK that cannot fill completely** are planned as
  ``action == "REJECT"`` with no fills and the typed error in ``plan.rejection``
  (PostOnlyWouldTake, FillOrKillUnfilled), as Binance answers −5022 / −5021 without recording
  the order. A dialect that prefers an EXPIRED FOK can record it so from the same plan.
* **MARKET orders** have no limit and ignore time in force: whatever the book cannot fill
  expires. IOC remainders expire; GTC and non-taking GTX remainders rest.
* **Reference moves.** After ``set_reference_price`` a resting user BUY at or above the
  synthetic best ask (SELL at or below the synthetic best bid) is marketable. The market came
  to it, so it fills as maker at its own limit price, and completely: the stateless maker
  re-quotes and keeps trading with it until it is done (``plan_sweep``). The engine sweeps
  once per reference update, which also settles a GTC remainder that rested crossing the
  replenished synthetic quotes.

* **Finite depth** (a profile or scenario ``refill_contracts_per_s``; sim/depth.py): the
  synthetic quotes are no longer stateless. Taker fills against them are consumed from the
  top of the side and refill over simulated time (``set_now`` tells the book the time), so
  a big order moves the best quote, the mid and (sim/exchange.py) the last price. Sweeps of
  users' resting orders do not consume it: the maker trades with them at their own prices.
  Without a refill rate the book behaves exactly as described above.

Cost: per-side sorted price lists (bisect) with an insertion-ordered dict per level, so
``plan_match`` touches only the levels it fills from and cancels are O(1) within a level.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Literal

from perpsim.sim.depth import FiniteDepth
from perpsim.sim.errors import (
    FillOrKillUnfilled,
    InvalidInput,
    OrderNotFound,
    OrderRejected,
    PostOnlyWouldTake,
)
from perpsim.sim.money import positive_price, round_to_tick
from perpsim.sim.orders import (
    Action,
    Fill,
    MatchPlan,
    Order,
    SweepPlan,
    check_client_order_id,
    check_order,
    opposite,
)
from perpsim.sim.profile import Instrument

BookSide = Literal["bids", "asks"]
Level = tuple[Decimal, int]  # (price_usd, contracts)

_NO_ORDERS: dict[int, Order] = {}


class _Side:
    """One side of users' resting orders: sorted prices, FIFO dict of orders per price."""

    __slots__ = ("is_bid", "levels", "prices")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[Decimal, dict[int, Order]] = {}
        self.prices: list[Decimal] = []  # ascending; bids read it from the end

    def add(self, price: Decimal, order: Order) -> None:
        level = self.levels.get(price)
        if level is None:
            insort(self.prices, price)
            level = self.levels[price] = {}
        level[order.order_id] = order
        # The engine hands out increasing seq, so appending keeps FIFO; re-sort if it didn't.
        if len(level) > 1 and next(reversed(level.values())).seq < _second_last(level).seq:
            items = sorted(level.values(), key=lambda o: o.seq)
            level.clear()
            level.update((o.order_id, o) for o in items)

    def remove(self, price: Decimal, order_id: int) -> None:
        level = self.levels[price]
        del level[order_id]
        if not level:
            del self.levels[price]
            del self.prices[bisect_left(self.prices, price)]

    def best(self) -> Decimal | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def iter_prices(self) -> Iterator[Decimal]:
        return reversed(self.prices) if self.is_bid else iter(self.prices)

    def orders(self) -> Iterator[Order]:
        for price in self.iter_prices():
            yield from self.levels[price].values()


def _second_last(level: dict[int, Order]) -> Order:
    it = reversed(level.values())
    next(it)
    return next(it)


class OrderBook:
    """Price-time priority book of one instrument with stateless synthetic liquidity."""

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self._tick = instrument.tick_size
        self._bids = _Side(is_bid=True)
        self._asks = _Side(is_bid=False)
        self._orders: dict[int, Order] = {}
        self._keys: dict[int, Decimal] = {}  # order_id → its normalised price key
        self._by_client: dict[tuple[str, str], Order] = {}
        self._ref: Decimal | None = None
        self._version = 0
        spec = instrument.book
        self.finite: FiniteDepth | None = (
            None if spec.refill_contracts_per_s is None else FiniteDepth(spec, self._tick))
        self._now_ms = 0
        self.on_consume: Callable[[], None] | None = None  # told when fills eat finite depth

    # ---- reference price and synthetic liquidity -------------------------------------------

    @property
    def reference_price(self) -> Decimal | None:
        """The price synthetic liquidity is quoted around, on the tick (None until set)."""
        return self._ref

    @property
    def version(self) -> int:
        """Bumped by every change; a plan made at another version is stale."""
        return self._version

    def set_reference_price(self, price_usd: Decimal) -> Decimal:
        """Re-quote synthetic liquidity around ``price_usd`` rounded to the tick; return it."""
        price = round_to_tick(positive_price(price_usd, "reference price"), self._tick)
        if price <= 0:
            raise InvalidInput(f"reference price {price_usd} rounds to {price} on the tick")
        self._ref = price
        self._version += 1
        return price

    def set_now(self, now_ms: int) -> None:
        """The simulated time (finite depth refills with it; a plan made earlier is stale)."""
        if self.finite is not None and now_ms != self._now_ms:
            self._now_ms = now_ms
            self._version += 1

    def level_price(self, side: BookSide, k: int) -> Decimal | None:
        """Price of synthetic level ``k`` (0 = best) on ``side``, None before a reference
        is set or where it would be at or below zero."""
        if self._ref is None:
            return None
        sb = self.instrument.book
        offset = (sb.half_spread_ticks + k * sb.level_step_ticks) * self._tick
        price = self._ref + offset if side == "asks" else self._ref - offset
        return price if price > 0 else None

    def backstop_price(self, side: BookSide) -> Decimal | None:
        """Finite depth: the deepest level's price, where the maker takes what its quotes
        could not (sim/depth.py); None for a stateless book."""
        if self.finite is None:
            return None
        sb = self.instrument.book
        for k in range(sb.levels - 1, -1, -1):
            price = self.level_price(side, k)
            if price is not None:
                return price
        return None

    def depleted_touch(self) -> Decimal | None:
        """Finite depth: the best quote of the side eaten deeper (where the next trade would
        print), None while both sides are whole or equally eaten, or for a stateless book."""
        if self.finite is None or self._ref is None:
            return None
        bids = self.finite.eaten("bids", self._now_ms)
        asks = self.finite.eaten("asks", self._now_ms)
        if bids == asks:
            return None
        side: BookSide = "bids" if bids > asks else "asks"
        k, _ = self.finite.quotes(side, self._now_ms)
        price = self.level_price(side, min(k, self.instrument.book.levels - 1))
        return price if price is not None else self.backstop_price(side)

    def synthetic_offset_usd(self) -> Decimal:
        """Distance from the reference to the synthetic best bid/ask: half_spread_ticks·tick."""
        return self.instrument.book.half_spread_ticks * self._tick

    def _synthetic(self, side: BookSide) -> Iterator[tuple[Decimal, int]]:
        if self._ref is None:
            return
        sb = self.instrument.book
        first, first_qty = 0, sb.contracts_per_level
        if self.finite is not None:  # finite: start below what fills have eaten
            first, first_qty = self.finite.quotes(side, self._now_ms)
        for k in range(first, sb.levels):
            offset = (sb.half_spread_ticks + k * sb.level_step_ticks) * self._tick
            price = self._ref + offset if side == "asks" else self._ref - offset
            if price <= 0:
                return
            yield price, first_qty if k == first else sb.contracts_per_level

    def _synthetic_best(self, side: BookSide) -> Decimal | None:
        return next(self._synthetic(side), (None, 0))[0]

    # ---- reading ---------------------------------------------------------------------------

    def _merged(self, side: BookSide) -> Iterator[tuple[Decimal, dict[int, Order], int]]:
        """Levels best first: (price, users' orders there in priority order, synthetic qty)."""
        users = self._asks if side == "asks" else self._bids
        prices = users.iter_prices()
        synth = self._synthetic(side)
        u = next(prices, None)
        s = next(synth, None)
        sign = 1 if side == "asks" else -1  # compare so that "smaller" means "better"
        while u is not None or s is not None:
            if s is None or (u is not None and sign * u < sign * s[0]):
                assert u is not None
                yield u, users.levels[u], 0
                u = next(prices, None)
            elif u is None or sign * s[0] < sign * u:
                yield s[0], _NO_ORDERS, s[1]
                s = next(synth, None)
            else:
                yield u, users.levels[u], s[1]
                u, s = next(prices, None), next(synth, None)

    def levels(self, side: BookSide) -> Iterator[Level]:
        """Aggregated (price, contracts) of users plus synthetic, best first (for impact price)."""
        for price, orders, synth_qty in self._merged(side):
            yield price, synth_qty + sum(o.remaining_contracts for o in orders.values())

    def depth(self, limit: int = 100) -> tuple[list[Level], list[Level]]:
        """Up to ``limit`` aggregated levels per side: (bids, asks), each best first."""
        bids = [lvl for _, lvl in zip(range(limit), self.levels("bids"), strict=False)]
        asks = [lvl for _, lvl in zip(range(limit), self.levels("asks"), strict=False)]
        return bids, asks

    def best_bid(self) -> Decimal | None:
        """Highest bid, users or synthetic."""
        return _better(self._bids.best(), self._synthetic_best("bids"), highest=True)

    def best_ask(self) -> Decimal | None:
        """Lowest ask, users or synthetic."""
        return _better(self._asks.best(), self._synthetic_best("asks"), highest=False)

    def mid(self) -> Decimal | None:
        """(best bid + best ask) / 2, or None while a side is empty."""
        bid, ask = self.best_bid(), self.best_ask()
        return None if bid is None or ask is None else (bid + ask) / 2

    def get(self, order_id: int) -> Order | None:
        """The resting order with this id, or None."""
        return self._orders.get(order_id)

    def find_client_order(self, account_id: str, client_order_id: str) -> Order | None:
        """The resting order of ``account_id`` with this client order id, or None."""
        return self._by_client.get((account_id, client_order_id))

    def open_orders(self, account_id: str | None = None) -> list[Order]:
        """Resting orders (of one account, or all): bids then asks, each in priority order."""
        return [
            o
            for side in (self._bids, self._asks)
            for o in side.orders()
            if account_id is None or o.account_id == account_id
        ]

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def crossing_levels(self) -> tuple[Decimal | None, Decimal | None]:
        """(highest resting user BUY price, lowest resting user SELL price), None if none.

        A resting BUY becomes marketable once the synthetic best ask, ref + offset, falls to
        its price: the engine searches its price arrays for ref ≤ max_buy − offset (and
        ref ≥ min_sell + offset) to find the next such instant.
        """
        return self._bids.best(), self._asks.best()

    def marketable_resting(self) -> list[Order]:
        """Resting user orders the synthetic quotes now cross, in priority order."""
        out: list[Order] = []
        ask, bid = self._synthetic_best("asks"), self._synthetic_best("bids")
        if ask is not None:
            for price in self._bids.iter_prices():
                if price < ask:
                    break
                out.extend(self._bids.levels[price].values())
        if bid is not None:
            for price in self._asks.iter_prices():
                if price > bid:
                    break
                out.extend(self._asks.levels[price].values())
        return out

    # ---- planning (no mutation) --------------------------------------------------------------

    def plan_match(self, order: Order) -> MatchPlan:
        """The fills ``order`` would get now as taker, and what happens to the rest; no change."""
        self._check(order)
        want = order.remaining_contracts
        limit = order.price_usd if order.type == "LIMIT" else None
        side: BookSide = "asks" if order.side == "BUY" else "bids"
        tif = "IOC" if order.type == "MARKET" else order.time_in_force

        def crosses(price: Decimal) -> bool:
            return limit is None or (price <= limit if order.side == "BUY" else price >= limit)

        if tif == "GTX":
            best = self.best_ask() if side == "asks" else self.best_bid()
            if best is not None and crosses(best):
                error = PostOnlyWouldTake(
                    f"post-only {order.side} at {limit} would take liquidity at {best}"
                )
                return self._plan(order, (), True, False, "REJECT", error)
            return self._plan(order, (), False, False, "REST", None)

        fills: list[Fill] = []
        left = want
        would_take = False
        for price, makers, synth_qty in self._merged(side):
            if not crosses(price):
                break
            would_take = True
            for maker in makers.values():
                take = min(left, maker.remaining_contracts)
                fills.append(self._fill(order, maker, price, take))
                left -= take
                if not left:
                    break
            if left and synth_qty:
                take = min(left, synth_qty)
                fills.append(self._fill(order, None, price, take))
                left -= take
            if not left:
                break

        if left == 0:
            return self._plan(order, tuple(fills), would_take, True, "FILLED", None)
        if tif == "FOK":
            fok_error = FillOrKillUnfilled(
                f"fill-or-kill {order.side} {want} at {limit}: only {want - left} contracts "
                f"are available at that price or better"
            )
            return self._plan(order, (), would_take, False, "REJECT", fok_error)
        action: Action = "EXPIRE" if tif == "IOC" else "REST"
        return self._plan(order, tuple(fills), would_take, False, action, None)

    def plan_sweep(self) -> SweepPlan:
        """Fills for every marketable resting order: complete, as maker, at its own price."""
        fills = tuple(
            Fill(
                taker_order_id=None,
                taker_account_id=None,
                maker_order_id=o.order_id,
                maker_account_id=o.account_id,
                price_usd=self._keys[o.order_id],
                qty_contracts=o.remaining_contracts,
                taker_side=opposite(o.side),
            )
            for o in self.marketable_resting()
        )
        return SweepPlan(fills, self._version)

    def _plan(
        self,
        order: Order,
        fills: tuple[Fill, ...],
        would_take: bool,
        fully: bool,
        action: Action,
        rejection: OrderRejected | None,
    ) -> MatchPlan:
        filled = sum(f.qty_contracts for f in fills)
        return MatchPlan(
            order=order,
            fills=fills,
            would_take=would_take,
            fully_fillable=fully,
            action=action,
            rejection=rejection,
            filled_contracts=filled,
            remaining_contracts=order.remaining_contracts - filled,
            version=self._version,
        )

    @staticmethod
    def _fill(taker: Order, maker: Order | None, price: Decimal, qty: int) -> Fill:
        return Fill(
            taker_order_id=taker.order_id,
            taker_account_id=taker.account_id,
            maker_order_id=None if maker is None else maker.order_id,
            maker_account_id=None if maker is None else maker.account_id,
            price_usd=price,
            qty_contracts=qty,
            taker_side=taker.side,
        )

    # ---- mutation ---------------------------------------------------------------------------

    def apply_match(self, plan: MatchPlan | SweepPlan, now_ms: int | None = None) -> list[Order]:
        """Apply a plan's fills to the resting makers (the taker is the engine's); return them.

        Makers that fill completely leave the book. A plan made before any other change to
        the book is required (RuntimeError otherwise), so the fills are exactly the planned.
        """
        if plan.version != self._version:
            raise RuntimeError(
                f"stale plan: made at book version {plan.version}, the book is at {self._version}"
            )
        cs = self.instrument.contract_size_usd
        touched: dict[int, Order] = {}
        for fill in plan.fills:
            if fill.maker_order_id is None:
                if self.finite is not None:
                    eaten: BookSide = "asks" if fill.taker_side == "BUY" else "bids"
                    self.finite.consume(eaten, fill.qty_contracts, self._now_ms)
                    if self.on_consume is not None:
                        self.on_consume()
                continue
            maker = self._orders[fill.maker_order_id]
            maker.apply_fill(fill.qty_contracts, fill.price_usd, cs, now_ms)
            touched[maker.order_id] = maker
            if maker.remaining_contracts == 0:
                self._unlink(maker)
        self._version += 1
        return list(touched.values())

    def add(self, order: Order) -> None:
        """Rest an open LIMIT order (GTC, or GTX that does not take) after planning it."""
        self._check(order)
        if order.type != "LIMIT" or order.time_in_force not in ("GTC", "GTX"):
            raise InvalidInput(
                f"only GTC or GTX LIMIT orders rest on the book, not "
                f"{order.type} {order.time_in_force}"
            )
        if order.order_id in self._orders:
            raise ValueError(f"order {order.order_id} is already on the book")
        assert order.price_usd is not None
        key = order.price_usd.quantize(self._tick)
        # Users never cross each other: a crossing order must go through plan_match first.
        other = self._asks.best() if order.side == "BUY" else self._bids.best()
        if other is not None and (key >= other if order.side == "BUY" else key <= other):
            raise ValueError(
                f"order {order.order_id} {order.side} at {key} crosses a resting order at "
                f"{other}; match it with plan_match/apply_match before resting the rest"
            )
        (self._bids if order.side == "BUY" else self._asks).add(key, order)
        self._orders[order.order_id] = order
        self._keys[order.order_id] = key
        self._by_client[(order.account_id, order.client_order_id)] = order
        self._version += 1

    def remove(self, order_id: int) -> Order:
        """Take a resting order off the book (status untouched: the engine sets it)."""
        order = self._orders.get(order_id)
        if order is None:
            raise OrderNotFound(
                f"order {order_id} is not resting on the {self.instrument.symbol} book"
            )
        self._unlink(order)
        self._version += 1
        return order

    def _unlink(self, order: Order) -> None:
        key = self._keys.pop(order.order_id)
        (self._bids if order.side == "BUY" else self._asks).remove(key, order.order_id)
        del self._orders[order.order_id]
        client_key = (order.account_id, order.client_order_id)
        if self._by_client.get(client_key) is order:
            del self._by_client[client_key]

    def _check(self, order: Order) -> None:
        check_order(order, self.instrument)
        existing = self._by_client.get((order.account_id, order.client_order_id))
        check_client_order_id(order, existing)


def _better(a: Decimal | None, b: Decimal | None, highest: bool) -> Decimal | None:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b) if highest else min(a, b)
