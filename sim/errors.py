"""Every domain error perpsim raises, in one place.

Each dialect (api/binance_coinm, later others) maps these classes to its own error codes in a
single table, so the engine never knows about wire formats. Messages are written for a user:
they name the thing that was wrong and why.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PerpsimError(Exception):
    """Base of every domain error; ``code`` is a stable machine-readable name."""

    code = "perpsim_error"


class InvalidInput(PerpsimError, ValueError):
    """A value of the wrong type, not finite, not positive, or otherwise unusable."""

    code = "invalid_input"


class InvalidQuantity(InvalidInput):
    """A quantity that is zero, negative, fractional where whole, off the lot, or too large."""

    code = "invalid_quantity"


class InvalidPrice(InvalidInput):
    """A price that is zero, negative, not finite, or outside the allowed range."""

    code = "invalid_price"


class OffTick(InvalidPrice):
    """A price that is not a multiple of the instrument's tick size."""

    code = "off_tick"


class UnknownSymbol(InvalidInput):
    """A symbol the profile does not list."""

    code = "unknown_symbol"


class InvalidInterval(InvalidInput):
    """A candle interval the venue does not offer."""

    code = "invalid_interval"


class BadParameterCombination(InvalidInput):
    """Optional parameters that exclude each other (e.g. symbol and pair together)."""

    code = "bad_parameter_combination"


class LeverageTooHigh(InvalidInput):
    """Leverage above the cap of the bracket the position falls in (or below 1)."""

    code = "leverage_too_high"


class ProfileError(PerpsimError):
    """A malformed or inconsistent exchange profile file."""

    code = "profile_error"


class ScenarioError(PerpsimError):
    """A malformed scenario file or generator spec."""

    code = "scenario_error"


class LedgerError(PerpsimError):
    """A posting that would break the ledger (unknown account, negative amount, ...)."""

    code = "ledger_error"


class InsufficientFunds(PerpsimError):
    """Not enough available balance or margin for the request."""

    code = "insufficient_funds"


class UnknownAccount(PerpsimError):
    """An account id or API key that does not exist."""

    code = "unknown_account"


class OrderRejected(PerpsimError):
    """An order the venue refuses for a trading rule (the subclasses say which)."""

    code = "order_rejected"


class ReduceOnlyRejected(OrderRejected):
    """A reduce-only order that would open or increase a position."""

    code = "reduce_only_rejected"


class PostOnlyWouldTake(OrderRejected):
    """A post-only (GTX) order that would execute immediately as taker."""

    code = "post_only_would_take"


class FillOrKillUnfilled(OrderRejected):
    """A fill-or-kill order the book cannot fill completely at its limit."""

    code = "fok_unfilled"


class WouldTriggerImmediately(OrderRejected):
    """A conditional order whose trigger price is already reached."""

    code = "would_trigger_immediately"


class DuplicateClientOrderId(OrderRejected):
    """A client order id already used by an open order of the same account."""

    code = "duplicate_client_order_id"


class TooManyOpenOrders(OrderRejected):
    """The account already has the venue's maximum of open orders on the symbol
    (Binance's MAX_NUM_ORDERS filter)."""

    code = "too_many_open_orders"


class PositionTooLargeForLeverage(OrderRejected):
    """An order whose resulting position exceeds what the bracket allows at the current
    leverage (Binance -2027)."""

    code = "position_too_large_for_leverage"


class OrderNotFound(PerpsimError):
    """An order id or client order id the account does not have."""

    code = "order_not_found"


class MarginModeAlreadySet(PerpsimError):
    """Switching to the margin mode the symbol already uses (Binance -4046)."""

    code = "margin_mode_already_set"


class MarginModeChangeRejected(PerpsimError):
    """Margin mode cannot change while a position or open orders exist on the symbol."""

    code = "margin_mode_change_rejected"


class InvalidState(PerpsimError):
    """A call that is not valid in the engine's current state (e.g. prices on a data scenario)."""

    code = "invalid_state"


class PriceAboveBand(OrderRejected):
    """A limit buy above mark × the profile's price-band multiplier up (Binance -4016)."""

    code = "price_above_band"


class PriceBelowBand(OrderRejected):
    """A limit sell below mark × the price-band multiplier down (Binance -4024)."""

    code = "price_below_band"


class MarketPriceOutsideBand(OrderRejected):
    """A market order whose best counter price is outside the price band (Binance -4131)."""

    code = "market_price_outside_band"


class PositionModeAlreadySet(PerpsimError):
    """Switching to the position mode (one-way / hedge) already in use (Binance -4059)."""

    code = "position_mode_already_set"


class PositionModeChangeRejected(PerpsimError):
    """Position mode cannot change while the account holds positions or open orders."""

    code = "position_mode_change_rejected"


class PositionModeOpenOrders(PositionModeChangeRejected):
    """Position mode change refused: open orders exist (Binance -4067)."""

    code = "position_mode_open_orders"


class PositionModeOpenPositions(PositionModeChangeRejected):
    """Position mode change refused: a position exists (Binance -4068)."""

    code = "position_mode_open_positions"


class InvalidPositionSide(InvalidInput):
    """A positionSide other than BOTH, LONG or SHORT (Binance -4060)."""

    code = "invalid_position_side"


class PositionSideMismatch(OrderRejected):
    """An order's positionSide does not fit the account's position mode (Binance -4061)."""

    code = "position_side_mismatch"


class ReduceOnlyConflict(OrderRejected):
    """reduceOnly sent in hedge mode, where the position side says it (Binance -4062)."""

    code = "reduce_only_conflict"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'crash'?)`` for the known name closest to a mistyped ``name``, or "".

    Appended to "unknown scenario/profile/topic" messages where the names are resolved, so the
    CLI, the control plane and the pytest plugin all suggest the same thing."""
    names = list(known)
    folded = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=0.6)
    if not close:
        # a name that is a prefix or a part of exactly one known name ("binance" → binance_coinm)
        parts = [n for n in names if name and name.lower() in n.lower()]
        close = [parts[0].lower()] if len(parts) == 1 else []
    return f" (did you mean {folded[close[0]]!r}?)" if close else ""
