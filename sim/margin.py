"""Pure margin arithmetic: brackets, leverage caps, IM, MM, margin balance and ratio (mechanics §2).

Brackets are looked up by the position's value in coin at the relevant price: a bracket applies
while the value is in [floor_coin, cap_coin). Maintenance margin is N/P·MMR − cum with the
bracket chosen at that same value; with the Binance cum rule MM is continuous in the value.
The margin ratio is Binance's: maintenance margin / margin balance, so ≥ 1 means liquidation.
Results are exact (see sim.inverse); the ledger quantises at postings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from fractions import Fraction

from perpsim.sim.errors import InvalidInput, LeverageTooHigh
from perpsim.sim.inverse import coin_value, exact, to_dec
from perpsim.sim.money import to_decimal
from perpsim.sim.profile import Bracket

INFINITE_RATIO = Decimal("Infinity")


def brackets_value(brackets: object) -> tuple[Bracket, ...]:
    """Validate a non-empty sequence of Brackets sorted by floor from 0; the last is unbounded."""
    if isinstance(brackets, str | bytes) or not isinstance(brackets, Sequence) or not brackets:
        raise InvalidInput(f"brackets must be a non-empty sequence of Bracket, got {brackets!r}")
    result = tuple(brackets)
    for i, b in enumerate(result):
        if not isinstance(b, Bracket):
            raise InvalidInput(f"brackets[{i}] must be a Bracket, got {type(b).__name__}")
        if i and not result[i - 1].floor_coin < b.floor_coin:
            raise InvalidInput(f"brackets must be sorted by floor_coin (entry {i})")
    if result[0].floor_coin != 0:
        raise InvalidInput("brackets: the first floor_coin must be 0")
    return result


def _non_negative(value: object, what: str) -> Decimal:
    amount = to_decimal(value, what)
    if amount < 0:
        raise InvalidInput(f"{what} must not be negative, got {value!r}")
    return amount


def bracket_for(brackets: Sequence[Bracket], value_coin: object) -> Bracket:
    """The bracket whose [floor_coin, cap_coin) holds a position value in coin (≥ 0)."""
    table = brackets_value(brackets)
    value = _non_negative(value_coin, "value_coin")
    # Brackets are contiguous and sorted, so the last floor at or below the value is the one.
    chosen = table[0]
    for b in table:
        if b.floor_coin <= value:
            chosen = b
    return chosen


def max_leverage(brackets: Sequence[Bracket], value_coin: object) -> Decimal:
    """The highest leverage allowed for a position of this value in coin."""
    return bracket_for(brackets, value_coin).max_leverage


def leverage_value(leverage: object) -> Decimal:
    """A leverage as Decimal: an int or Decimal ≥ 1, else InvalidInput / LeverageTooHigh."""
    lev = to_decimal(leverage, "leverage")
    if lev < 1:
        raise LeverageTooHigh(f"leverage must be at least 1, got {leverage!r}")
    return lev


def check_leverage(brackets: Sequence[Bracket], value_coin: object, leverage: object) -> Decimal:
    """Return the leverage if the bracket of ``value_coin`` allows it, else LeverageTooHigh."""
    lev = leverage_value(leverage)
    b = bracket_for(brackets, value_coin)
    if lev > b.max_leverage:
        upper = "∞" if b.cap_coin is None else f"{b.cap_coin}"
        raise LeverageTooHigh(
            f"leverage {lev} exceeds the cap {b.max_leverage}x of bracket {b.bracket} "
            f"(position value {to_decimal(value_coin, 'value_coin')} coin falls in "
            f"[{b.floor_coin}, {upper}) coin)"
        )
    return lev


def initial_margin_coin(
    qty_contracts: object, price_usd: object, contract_size_usd: object, leverage: object
) -> Decimal:
    """Initial margin N/(P·L) in coin."""
    lev = leverage_value(leverage)
    value = coin_value(qty_contracts, price_usd, contract_size_usd)
    return to_dec(exact(value) / exact(lev))


def maintenance_margin_coin(
    qty_contracts: object, price_usd: object, contract_size_usd: object, brackets: Sequence[Bracket]
) -> Decimal:
    """Maintenance margin N/P·MMR − cum, bracket chosen at the value N/P.

    ``price_usd`` is the mark (Binance style); for the MM-at-entry style pass the entry price.
    """
    value = coin_value(qty_contracts, price_usd, contract_size_usd)
    b = bracket_for(brackets, value)
    return to_dec(exact(value) * exact(b.mmr) - exact(b.cum_coin))


def margin_ratio(maint_margin_coin: object, margin_balance_coin: object) -> Decimal:
    """MM / margin balance (Binance); ≥ 1 means liquidation, Infinity when balance ≤ 0 < MM."""
    mm = _non_negative(maint_margin_coin, "maint_margin_coin")
    balance = to_decimal(margin_balance_coin, "margin_balance_coin")
    if mm == 0:
        return Decimal(0)
    if balance <= 0:
        # Nothing left to cover the maintenance margin: as liquidatable as it gets.
        return INFINITE_RATIO
    return to_dec(exact(mm) / exact(balance))


def is_liquidatable(maint_margin_coin: object, margin_balance_coin: object) -> bool:
    """True when margin balance ≤ maintenance margin (with some margin required)."""
    return margin_ratio(maint_margin_coin, margin_balance_coin) >= 1


def isolated_margin_balance(isolated_wallet_coin: object, unrealised_pnl_coin: object) -> Decimal:
    """Isolated margin balance: the position's isolated wallet plus its unrealised PnL."""
    wallet = _non_negative(isolated_wallet_coin, "isolated_wallet_coin")
    upnl = to_decimal(unrealised_pnl_coin, "unrealised_pnl_coin")
    return to_dec(exact(wallet) + exact(upnl))


def cross_margin_balance(
    wallet_balance_coin: object, unrealised_pnls_coin: Iterable[object]
) -> Decimal:
    """Cross margin balance: wallet balance plus Σ unrealised PnL of the cross positions."""
    wallet = to_decimal(wallet_balance_coin, "wallet_balance_coin")
    if isinstance(unrealised_pnls_coin, str | bytes) or not isinstance(
        unrealised_pnls_coin, Iterable
    ):
        raise InvalidInput(
            f"unrealised_pnls_coin must be a sequence of amounts, got {unrealised_pnls_coin!r}"
        )
    total = exact(wallet)
    for i, upnl in enumerate(unrealised_pnls_coin):
        total += exact(to_decimal(upnl, f"unrealised_pnls_coin[{i}]"))
    return to_dec(total)


def available_balance(
    margin_balance_coin: object, position_im_coin: object, order_im_coin: object
) -> Decimal:
    """Available balance: margin balance − position IM − order IM, floored at 0."""
    balance = to_decimal(margin_balance_coin, "margin_balance_coin")
    position_im = _non_negative(position_im_coin, "position_im_coin")
    order_im = _non_negative(order_im_coin, "order_im_coin")
    free: Fraction = exact(balance) - exact(position_im) - exact(order_im)
    return to_dec(max(free, Fraction(0)))
