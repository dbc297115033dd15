"""Order, fill and match-plan records, and the checks an order must pass against its instrument.

The engine owns an order's lifecycle (it creates the record, applies the taker's fills, sets
EXPIRED/CANCELED); the book only mutates the orders resting in it (the maker side). Money is
exact: ``filled_value_coin`` is Σ qty·CS/price over the fills, unquantised (Decimal's 28
significant digits), so the average price is the harmonic mean mechanics §0 asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from perpsim.sim.accounts import PositionSide
from perpsim.sim.errors import (
    DuplicateClientOrderId,
    InvalidInput,
    InvalidPrice,
    InvalidQuantity,
    OrderRejected,
    UnknownSymbol,
)
from perpsim.sim.money import ZERO, check_tick, filtered_price, whole_contracts
from perpsim.sim.profile import Instrument

Side = Literal["BUY", "SELL"]
OrderType = Literal["LIMIT", "MARKET"]
TimeInForce = Literal["GTC", "IOC", "FOK", "GTX"]
OrderStatus = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "REJECTED"]
Action = Literal["FILLED", "REST", "EXPIRE", "REJECT"]  # what a plan does with the rest

SIDES: tuple[Side, ...] = ("BUY", "SELL")
ORDER_TYPES: tuple[OrderType, ...] = ("LIMIT", "MARKET")
TIMES_IN_FORCE: tuple[TimeInForce, ...] = ("GTC", "IOC", "FOK", "GTX")
OPEN_STATUSES: frozenset[OrderStatus] = frozenset({"NEW", "PARTIALLY_FILLED"})
# Why the venue itself cancelled an order at once (``Order.cancel_reason``): a post-only order
# that would take, a FOK order that cannot fill in full (both only on venues whose profile says
# ``unfillable_tif: cancel``), an IOC order with nothing to fill. The first two are the codes of
# the errors a "reject" venue raises instead (sim/errors.py).
POST_ONLY_WOULD_TAKE = "post_only_would_take"
FOK_UNFILLED = "fok_unfilled"
IOC_UNFILLED = "ioc_unfilled"
CANCEL_REASONS = (POST_ONLY_WOULD_TAKE, FOK_UNFILLED, IOC_UNFILLED)


def opposite(side: Side) -> Side:
    """The other side: BUY ↔ SELL."""
    return "SELL" if side == "BUY" else "BUY"


@dataclass(slots=True, kw_only=True)
class Order:
    """One order as the venue records it; mutable, the engine owns its lifecycle."""

    order_id: int
    client_order_id: str
    account_id: str
    symbol: str
    side: Side
    type: OrderType
    qty_contracts: int
    price_usd: Decimal | None  # None for MARKET
    time_in_force: TimeInForce
    reduce_only: bool
    created_ms: int
    updated_ms: int
    seq: int  # arrival sequence: time priority within a price level
    status: OrderStatus = "NEW"
    filled_contracts: int = 0
    filled_value_coin: Decimal = ZERO
    position_side: PositionSide = "BOTH"  # BOTH (one-way), LONG or SHORT (hedge mode)
    # Why the venue cancelled it (CANCEL_REASONS), "" when it did not; dialects word it.
    cancel_reason: str = ""

    @property
    def sign(self) -> int:
        """+1 for BUY, −1 for SELL."""
        return 1 if self.side == "BUY" else -1

    @property
    def remaining_contracts(self) -> int:
        """Contracts not yet filled."""
        return self.qty_contracts - self.filled_contracts

    @property
    def is_open(self) -> bool:
        """True while the order can still fill (NEW or PARTIALLY_FILLED)."""
        return self.status in OPEN_STATUSES

    def avg_price_usd(self, contract_size_usd: Decimal) -> Decimal | None:
        """Harmonic average fill price filled·CS / Σ(qty·CS/price); None before any fill."""
        if self.filled_contracts == 0:
            return None
        return self.filled_contracts * contract_size_usd / self.filled_value_coin

    def apply_fill(
        self,
        qty_contracts: int,
        price_usd: Decimal,
        contract_size_usd: Decimal,
        now_ms: int | None = None,
    ) -> None:
        """Record one fill: quantity, coin value, status (PARTIALLY_FILLED / FILLED), time."""
        # A fill the order cannot take means the caller's plan is stale or wrong: a bug, not
        # a user error, so it is a plain ValueError and nothing is changed.
        if not 0 < qty_contracts <= self.remaining_contracts:
            raise ValueError(
                f"order {self.order_id}: cannot fill {qty_contracts} contracts, "
                f"{self.remaining_contracts} remain"
            )
        if not self.is_open:
            raise ValueError(f"order {self.order_id} is {self.status}, it cannot fill")
        self.filled_contracts += qty_contracts
        self.filled_value_coin += qty_contracts * contract_size_usd / price_usd
        self.status = "FILLED" if self.remaining_contracts == 0 else "PARTIALLY_FILLED"
        if now_ms is not None:
            self.updated_ms = now_ms


@dataclass(frozen=True, slots=True)
class Fill:
    """One match between a taker and a maker; None ids mean the synthetic market maker.

    ``maker_order_id`` is None when the taker hit synthetic liquidity; ``taker_order_id`` is
    None when the synthetic market came to a resting user order after a reference-price move
    (that order fills as maker at its own limit price).
    """

    taker_order_id: int | None
    taker_account_id: str | None
    maker_order_id: int | None
    maker_account_id: str | None
    price_usd: Decimal
    qty_contracts: int
    taker_side: Side

    @property
    def maker_side(self) -> Side:
        """The resting side of the match."""
        return opposite(self.taker_side)

    @property
    def is_synthetic(self) -> bool:
        """True when one side is the synthetic market maker."""
        return self.maker_order_id is None or self.taker_order_id is None


@dataclass(frozen=True, slots=True)
class MatchPlan:
    """What a taker order would do now: its fills and what happens to the rest."""

    order: Order
    fills: tuple[Fill, ...]
    would_take: bool  # some opposite liquidity is marketable at the order's limit
    fully_fillable: bool  # the whole remaining quantity fills now (what FOK needs)
    action: Action  # FILLED, REST (put the rest on the book), EXPIRE, or REJECT
    rejection: OrderRejected | None  # the error to raise when action is REJECT
    filled_contracts: int
    remaining_contracts: int  # left after the fills
    version: int  # the book's version when planned; apply_match refuses a stale plan

    def raise_if_rejected(self) -> None:
        """Raise the typed rejection (PostOnlyWouldTake, FillOrKillUnfilled), if any."""
        if self.rejection is not None:
            raise self.rejection


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """Resting orders the synthetic market reached after a reference move, and their fills."""

    fills: tuple[Fill, ...]  # taker ids None: the synthetic maker; each fills a user maker
    version: int


def check_order(order: Order, instrument: Instrument) -> None:
    """Raise a typed error if ``order`` breaks the instrument's rules; change nothing.

    Checks symbol, side, type, time in force, quantity (whole, positive, on the lot, between
    min_qty and max_qty — market_max_qty for MARKET), price (a finite positive Decimal on the
    tick for LIMIT, None for MARKET) and that the order is still open with contracts left.
    Margin and reduce-only are the engine's checks, not this one's.
    """
    if order.symbol != instrument.symbol:
        raise UnknownSymbol(
            f"order {order.order_id} is for {order.symbol!r}, this book trades "
            f"{instrument.symbol!r}"
        )
    if order.side not in SIDES:
        raise InvalidInput(f"side must be BUY or SELL, got {order.side!r}")
    if order.type not in ORDER_TYPES:
        raise InvalidInput(f"order type must be LIMIT or MARKET, got {order.type!r}")
    if order.time_in_force not in TIMES_IN_FORCE:
        raise InvalidInput(
            f"time in force must be GTC, IOC, FOK or GTX, got {order.time_in_force!r}"
        )
    _check_quantity(order, instrument)
    _check_price(order, instrument)
    if not order.is_open:
        raise InvalidInput(f"order {order.order_id} is {order.status}, it cannot trade")


def _check_quantity(order: Order, instrument: Instrument) -> None:
    qty = order.qty_contracts
    whole_contracts(qty, "quantity")  # zero, negative, NaN, fractional → InvalidQuantity
    if not isinstance(qty, int) or isinstance(qty, bool):
        raise InvalidQuantity(f"quantity must be an int number of contracts, got {qty!r}")
    if qty % instrument.lot_size:
        raise InvalidQuantity(
            f"quantity {qty} is not a multiple of the lot size {instrument.lot_size}"
        )
    if qty < instrument.min_qty:
        raise InvalidQuantity(f"quantity {qty} is below the minimum {instrument.min_qty}")
    cap, kind = (
        (instrument.market_max_qty, "market")
        if order.type == "MARKET"
        else (instrument.max_qty, "limit")
    )
    if qty > cap:
        raise InvalidQuantity(f"quantity {qty} is above the {kind} order maximum {cap}")
    if not 0 <= order.filled_contracts < qty:
        raise InvalidQuantity(
            f"order {order.order_id} has {order.filled_contracts} of {qty} contracts filled; "
            f"nothing is left to trade"
        )


def _check_price(order: Order, instrument: Instrument) -> None:
    price = order.price_usd
    if order.type == "MARKET":
        if price is not None:
            raise InvalidPrice(f"a MARKET order takes no price, got {price!r}")
        return
    if price is None:
        raise InvalidPrice("a LIMIT order needs a price")
    # Only Decimal keeps the book's price keys exact and comparable with the tick grid.
    if not isinstance(price, Decimal):
        raise InvalidPrice(f"price must be a Decimal, got {type(price).__name__} {price!r}")
    filtered_price(price, instrument.tick_size, "price")
    check_tick(price, instrument.tick_size, "price")


def check_client_order_id(order: Order, existing: Order | None) -> None:
    """Raise DuplicateClientOrderId if ``existing`` is another open order with the same id."""
    if existing is not None and existing.order_id != order.order_id and existing.is_open:
        raise DuplicateClientOrderId(
            f"client order id {order.client_order_id!r} is already used by open order "
            f"{existing.order_id} of account {order.account_id!r}"
        )
