"""Getting in and out: post-only limit orders at the best price, re-priced when the book moves,
crossing after a bounded wait; sliced, idempotent, partial fills handled.

One *leg* (open, close, a rebalance) is cut into slices of at most ``max_order_contracts``.
Each slice posts a post-only (GTX) limit at the market's best price on our side (the best ask
for a sell, leaving our own resting quantity out of the reading), waits on the clock — which
wakes on our order updates — and re-prices when that best price moves. Once the slice has
waited ``maker_wait_ms`` the remainder crosses with IOC limits at the opposite best price.
Whatever filled before a cancel counts (partial fills), so a slice's quantity is only ever sent
again as the part still missing.

Client order ids are deterministic, ``hedge-{run_tag}-{leg}-{slice}-{attempt}``, and an order is
never sent twice: after a transport error the id is looked up (``fetch_order`` by
``origClientOrderId``) before anything is re-submitted, and a venue's duplicate-id answer is
resolved the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ccxt

from perpsim.strategy import quiet_reads
from perpsim.strategy.clock import Clock
from perpsim.strategy.plan import dec, harmonic_average
from perpsim.strategy.venue import venue_for

ZERO = Decimal(0)
MAX_SUBMIT_TRIES = 3
MAX_POST_ONLY_REJECTS = 3
MAX_EMPTY_CROSSES = 3
MAX_CLOSE_ROUNDS = 3
MAX_SHRINKS = 10

EventSink = Callable[[int, str, dict[str, Any]], None]


class ExecutionError(RuntimeError):
    """An order could not be worked to completion."""


class PostOnlyRejected(Exception):
    """The venue refused a post-only order because it would have taken liquidity."""


class NothingToReduce(Exception):
    """A reduce-only order found less position than it wanted (liquidated meanwhile)."""


@dataclass(frozen=True)
class Fill:
    """One of our trades, as the venue reported it."""

    time_ms: int
    trade_id: str
    order_id: str
    client_order_id: str
    side: str
    contracts: int
    price_usd: Decimal
    fee_btc: Decimal  # paid (positive)
    realized_pnl_btc: Decimal | None  # None: the venue reports it per order (Bybit)
    maker: bool


@dataclass
class LegResult:
    """What one leg achieved."""

    leg: str
    side: str
    requested: int
    fills: list[Fill] = field(default_factory=list)
    orders: int = 0
    crossed_contracts: int = 0

    @property
    def filled(self) -> int:
        """Contracts filled."""
        return sum(f.contracts for f in self.fills)

    @property
    def avg_price_usd(self) -> Decimal | None:
        """Harmonic average fill price (the inverse average entry)."""
        return harmonic_average([(f.contracts, f.price_usd) for f in self.fills])

    @property
    def fees_btc(self) -> Decimal:
        """Fees paid on the leg."""
        return sum((f.fee_btc for f in self.fills), ZERO)


def _is_open(order: dict[str, Any]) -> bool:
    return order.get("status") == "open"


class Executor:
    """Works legs for one symbol of one ccxt client (see module doc)."""

    def __init__(self, exchange: Any, clock: Clock, symbol: str, *, run_tag: str,
                 max_order_contracts: int, maker_wait_ms: int, reprice_interval_ms: int,
                 on_event: EventSink | None = None) -> None:
        self.ex = exchange
        self.venue = venue_for(exchange)
        self.clock = clock
        self.symbol = symbol
        self.market = exchange.market(symbol)
        self.tick = dec(self.market["precision"]["price"], "tick size")
        self.run_tag = run_tag
        self.max_order = max(1, max_order_contracts)
        self.maker_wait_ms = max(0, maker_wait_ms)
        self.reprice_ms = max(1, reprice_interval_ms)
        self.on_event = on_event or (lambda t, kind, details: None)
        self.legs: list[LegResult] = []

    @property
    def prefix(self) -> str:
        """The client-order-id prefix of this run."""
        return f"hedge-{self.run_tag}-"

    def client_id(self, leg: str, slice_no: int, attempt: int) -> str:
        """Deterministic client order id (Binance and Bybit allow 36 characters)."""
        cid = f"{self.prefix}{leg}-{slice_no}-{attempt}"
        if len(cid) > 36:
            raise ExecutionError(f"client order id {cid!r} is longer than 36 characters")
        return cid

    # ---- legs ----------------------------------------------------------------------------------
    async def trade(self, leg: str, side: str, contracts: int, *,
                    reduce_only: bool = False) -> LegResult:
        """Buy or sell ``contracts`` in slices; returns every fill."""
        result = LegResult(leg, side, contracts)
        self.legs.append(result)
        slice_no = shrinks = 0
        target = contracts
        while result.filled < target:
            qty = min(target - result.filled, self.max_order)
            try:
                got = await self._slice(result, slice_no, qty, reduce_only)
            except NothingToReduce as gone:
                # The position shrank under us (a liquidation): the caller re-reads it.
                self.on_event(await self.clock.now_ms(), "warning",
                              {"text": f"{leg}: the position is smaller than expected ({gone})"})
                return result
            except ccxt.InsufficientFunds:
                # The price moved against the margin estimate while the leg was worked: a
                # slightly smaller hedge beats none. Shrink by 0.2 % a time, 2 % at most.
                if reduce_only or shrinks >= MAX_SHRINKS:
                    raise
                step = max(1, target // 500)
                target, shrinks = max(result.filled, target - step), shrinks + 1
                self.on_event(await self.clock.now_ms(), "warning", {
                    "text": f"{leg}: margin insufficient, working {target} contracts instead of "
                            f"{target + step}"})
                slice_no += 1
                continue
            if got == 0:
                raise ExecutionError(f"{leg}: slice {slice_no} filled nothing")
            slice_no += 1
        return result

    async def position_contracts(self) -> int:
        """The signed position now (fetch_positions)."""
        positions = await self.ex.fetch_positions([self.symbol])
        return self.venue.position(positions, self.symbol).contracts

    async def close_position(self, leg: str = "close") -> LegResult:
        """Buy back exactly the open position with reduce-only orders, then confirm flat."""
        result = LegResult(leg, "buy", 0)
        for round_no in range(MAX_CLOSE_ROUNDS):
            qty = await self.position_contracts()
            if qty == 0:
                now = await self.clock.now_ms()
                self.on_event(now, "flat", {"symbol": self.market["id"]})
                return result
            side = "buy" if qty < 0 else "sell"
            part = await self.trade(leg if round_no == 0 else f"{leg}{round_no}", side,
                                    abs(qty), reduce_only=True)
            self.legs.remove(part)
            result.side = side
            result.requested += part.requested
            result.fills.extend(part.fills)
            result.orders += part.orders
            result.crossed_contracts += part.crossed_contracts
        raise ExecutionError(f"still not flat after {MAX_CLOSE_ROUNDS} closing rounds")

    # ---- one slice -----------------------------------------------------------------------------
    async def _slice(self, result: LegResult, slice_no: int, qty: int, reduce_only: bool) -> int:
        side, leg = result.side, result.leg
        start = await self.clock.now_ms()
        deadline = start + self.maker_wait_ms
        attempt = done = rejects = empty_crosses = 0
        while done < qty:
            now = await self.clock.now_ms()
            rest = qty - done
            cid = self.client_id(leg, slice_no, attempt)
            attempt += 1
            if now >= deadline or rejects >= MAX_POST_ONLY_REJECTS:
                order = await self._cross(cid, side, rest, reduce_only)
                result.orders += 1
                got = await self._settle(result, order)
                result.crossed_contracts += got
                done += got
                if got == 0:
                    empty_crosses += 1
                    if empty_crosses >= MAX_EMPTY_CROSSES:
                        break
                continue
            price = await self._best(side)
            params: dict[str, Any] = self.venue.post_only_params()
            if reduce_only:
                params["reduceOnly"] = True
            try:
                order = await self._submit(cid, "limit", side, rest, price, params)
            except PostOnlyRejected:
                rejects += 1
                continue
            result.orders += 1
            self.on_event(now, "order.placed", {
                "client_order_id": cid, "side": side, "contracts": rest, "price": str(price),
                "post_only": True, "reduce_only": reduce_only, "leg": leg})
            order = await self._rest(order, side, price, deadline)
            done += await self._settle(result, order)
        return done

    async def _rest(self, order: dict[str, Any], side: str, price: Decimal,
                    deadline: int) -> dict[str, Any]:
        """Leave a post-only order until it fills, the best price moves, or the deadline."""
        while True:
            now = await self.clock.now_ms()
            if now >= deadline:
                return await self._cancel(order, "maker wait over")
            waited = await self.clock.wait(min(now + self.reprice_ms, deadline),
                                           stop_on=("order.update",))
            if not quiet_reads.order_unchanged(
                    waited, sole_actor=getattr(self.clock, "sole_actor", False)):
                order = await self._fetch(order)
            if not _is_open(order):
                return order
            if await self.clock.now_ms() >= deadline:
                return await self._cancel(order, "maker wait over")
            remaining = int(dec(order.get("amount") or 0, "amount")) - self._filled(order)
            best = await self._best(side, own_price=price, own_qty=remaining)
            if best != price:
                return await self._cancel(order, f"best price moved {price} → {best}")

    async def _cross(self, cid: str, side: str, qty: int, reduce_only: bool) -> dict[str, Any]:
        """IOC limit at the opposite best price."""
        book = await self.ex.fetch_order_book(self.symbol, 5)
        levels = book["bids"] if side == "sell" else book["asks"]
        if not levels:
            raise ExecutionError(f"no {'bids' if side == 'sell' else 'asks'} to cross into")
        # At the opposite best price, not through it: the venue margins a limit order at its
        # own price, so a deep protective limit could fail a fully collateralised 1x hedge.
        # What the top level cannot fill is crossed again at the next best.
        limit = dec(levels[0][0], "best price")
        params: dict[str, Any] = {"timeInForce": "IOC"}
        if reduce_only:
            params["reduceOnly"] = True
        now = await self.clock.now_ms()
        order = await self._submit(cid, "limit", side, qty, limit, params)
        self.on_event(now, "order.crossed", {
            "client_order_id": cid, "side": side, "contracts": qty, "limit": str(limit),
            "reduce_only": reduce_only})
        if _is_open(order):  # an IOC never rests; be safe with a venue that says otherwise
            order = await self._cancel(order, "IOC remainder")
        return order

    # ---- wire helpers --------------------------------------------------------------------------
    async def _best(self, side: str, *, own_price: Decimal | None = None,
                    own_qty: int = 0) -> Decimal:
        """The market's best price on our side, our own resting quantity left out."""
        book = await self.ex.fetch_order_book(self.symbol, 10)
        levels = book["asks"] if side == "sell" else book["bids"]
        for level in levels:
            level_price, level_qty = dec(level[0], "price"), dec(level[1], "qty")
            if own_price is not None and level_price == own_price:
                level_qty -= own_qty
            if level_qty > 0:
                return level_price
        if own_price is not None:
            return own_price
        raise ExecutionError(f"the book has no {'asks' if side == 'sell' else 'bids'}")

    async def _submit(self, cid: str, kind: str, side: str, qty: int, price: Decimal,
                      params: dict[str, Any]) -> dict[str, Any]:
        """create_order with a fixed client id; never sends an id the venue already has."""
        for _ in range(MAX_SUBMIT_TRIES):
            try:
                order = dict(await self.ex.create_order(
                    self.symbol, kind, side, qty, float(price), {**params, "clientOrderId": cid}))
                # Bybit answers with the ids only; a post-only order it accepted and cancelled
                # at once raises here like a refused one.
                return await self.venue.complete(self.ex, order, self.symbol)
            except ccxt.NetworkError:
                found = await self._lookup(cid)
                if found is not None:
                    return found
            except ccxt.ExchangeError as error:
                if self.venue.is_post_only_rejection(error):
                    raise PostOnlyRejected(str(error)) from error
                if params.get("reduceOnly") and self.venue.is_nothing_to_reduce(error):
                    raise NothingToReduce(str(error)) from error
                if self.venue.is_duplicate_id(error):
                    found = await self._lookup(cid)
                    if found is not None:
                        return found
                raise
        raise ExecutionError(f"could not submit {cid} after {MAX_SUBMIT_TRIES} tries")

    async def _lookup(self, cid: str) -> dict[str, Any] | None:
        found = await self.venue.find_order(self.ex, self.symbol, cid)
        if found is None:
            return None
        try:
            return await self.venue.complete(self.ex, found, self.symbol)
        except ccxt.OrderImmediatelyFillable as error:  # found cancelled as post-only taker
            raise PostOnlyRejected(str(error)) from error

    def _filled(self, order: dict[str, Any]) -> int:
        return self.venue.filled_contracts(order)

    async def _fetch(self, order: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.ex.fetch_order(order["id"], self.symbol))

    async def _cancel(self, order: dict[str, Any], why: str) -> dict[str, Any]:
        """Cancel and return the order's final state (filled quantity included)."""
        # OrderNotFound: it filled (or expired) in the meantime; the fetch below tells.
        with contextlib.suppress(ccxt.OrderNotFound):
            await self.ex.cancel_order(order["id"], self.symbol)
        final = await self._fetch(order)
        now = await self.clock.now_ms()
        self.on_event(now, "order.canceled", {
            "client_order_id": order.get("clientOrderId"), "filled": self._filled(final),
            "reason": why})
        return final

    async def _settle(self, result: LegResult, order: dict[str, Any]) -> int:
        """Collect the order's trades into the leg; the contracts it filled."""
        filled = self._filled(order)
        if filled == 0:
            return 0
        mine = await self.venue.order_trades(self.ex, self.symbol, order)
        for t in sorted(mine, key=lambda t: (int(t.get("timestamp") or 0), str(t.get("id")))):
            numbers = self.venue.fill_numbers(t)
            fill = Fill(
                time_ms=int(t.get("timestamp") or 0), trade_id=str(t.get("id")),
                order_id=str(order["id"]), client_order_id=str(order.get("clientOrderId")),
                side=str(t.get("side")), contracts=numbers.contracts,
                price_usd=numbers.price_usd, fee_btc=numbers.fee_btc,
                realized_pnl_btc=numbers.realized_pnl_btc,
                maker=t.get("takerOrMaker") == "maker")
            result.fills.append(fill)
            self.on_event(fill.time_ms, "fill", {
                "client_order_id": fill.client_order_id, "side": fill.side,
                "contracts": fill.contracts, "price": str(fill.price_usd),
                "fee": str(fill.fee_btc), "maker": fill.maker, "leg": result.leg})
        got = sum(self.venue.fill_numbers(t).contracts for t in mine)
        if got != filled:
            raise ExecutionError(f"order {order.get('clientOrderId')} reports {filled} filled "
                                 f"but its trades add up to {got}")
        return filled
