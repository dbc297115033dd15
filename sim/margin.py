"""Pure margin arithmetic: brackets, leverage caps, IM, MM, margin balance and ratio (mechanics §2).

Brackets are looked up by the position's value in coin at the relevant price: a bracket applies
while the value is in [floor_coin, cap_coin). Maintenance margin is N/P·MMR − cum with the
bracket chosen at that same value; with the Binance cum rule MM is continuous in the value.
The margin ratio is Binance's: maintenance margin / margin balance, so ≥ 1 means liquidation.
Results are exact, worked as integer ratios and rounded once (see sim.inverse); the ledger
quantises at postings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from perpsim.sim.errors import InvalidInput, LeverageTooHigh
from perpsim.sim.inverse import coin_value, quotient
from perpsim.sim.money import to_decimal
from perpsim.sim.profile import Bracket

INFINITE_RATIO = Decimal("Infinity")


# Tuples of Brackets already validated, by id (the tuple itself is kept, so the id cannot be
# reused while it is here): an instrument's table is looked up on every margin computation.
_VALIDATED: dict[int, tuple[Bracket, ...]] = {}
_VALIDATED_MAX = 1024


def brackets_value(brackets: object) -> tuple[Bracket, ...]:
    """Validate a non-empty sequence of Brackets sorted by floor from 0; the last is unbounded."""
    if type(brackets) is tuple and _VALIDATED.get(id(brackets)) is brackets:
        return brackets  # immutable, and Bracket is frozen: still valid
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
    if type(brackets) is tuple and len(_VALIDATED) < _VALIDATED_MAX:
        _VALIDATED[id(brackets)] = brackets
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
    value_n, value_d = coin_value(qty_contracts, price_usd, contract_size_usd).as_integer_ratio()
    lev_n, lev_d = lev.as_integer_ratio()
    return quotient(value_n * lev_d, value_d * lev_n)


def maintenance_margin_coin(
    qty_contracts: object, price_usd: object, contract_size_usd: object, brackets: Sequence[Bracket]
) -> Decimal:
    """Maintenance margin N/P·MMR − cum, bracket chosen at the value N/P.

    ``price_usd`` is the mark (Binance style); for the MM-at-entry style pass the entry price.
    """
    value = coin_value(qty_contracts, price_usd, contract_size_usd)
    b = bracket_for(brackets, value)
    value_n, value_d = value.as_integer_ratio()
    mmr_n, mmr_d = b.mmr.as_integer_ratio()
    cum_n, cum_d = b.cum_coin.as_integer_ratio()
    return quotient(value_n * mmr_n * cum_d - cum_n * value_d * mmr_d, value_d * mmr_d * cum_d)


def margin_ratio(maint_margin_coin: object, margin_balance_coin: object) -> Decimal:
    """MM / margin balance (Binance); ≥ 1 means liquidation, Infinity when balance ≤ 0 < MM."""
    mm = _non_negative(maint_margin_coin, "maint_margin_coin")
    balance = to_decimal(margin_balance_coin, "margin_balance_coin")
    if mm == 0:
        return Decimal(0)
    if balance <= 0:
        # Nothing left to cover the maintenance margin: as liquidatable as it gets.
        return INFINITE_RATIO
    mm_n, mm_d = mm.as_integer_ratio()
    balance_n, balance_d = balance.as_integer_ratio()  # balance_n > 0
    return quotient(mm_n * balance_d, mm_d * balance_n)


def is_liquidatable(maint_margin_coin: object, margin_balance_coin: object) -> bool:
    """True when margin balance ≤ maintenance margin (with some margin required)."""
    return margin_ratio(maint_margin_coin, margin_balance_coin) >= 1


def isolated_margin_balance(isolated_wallet_coin: object, unrealised_pnl_coin: object) -> Decimal:
    """Isolated margin balance: the position's isolated wallet plus its unrealised PnL."""
    wallet = _non_negative(isolated_wallet_coin, "isolated_wallet_coin")
    upnl = to_decimal(unrealised_pnl_coin, "unrealised_pnl_coin")
    return _sum_exact((wallet, upnl))


def _sum_exact(amounts: Iterable[Decimal]) -> Decimal:
    """Σ amounts, exact, rounded once (see sim.inverse.quotient)."""
    total_n, total_d = 0, 1
    for amount in amounts:
        n, d = amount.as_integer_ratio()
        total_n, total_d = total_n * d + n * total_d, total_d * d
    return quotient(total_n, total_d)


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
    amounts = [wallet]
    for i, upnl in enumerate(unrealised_pnls_coin):
        amounts.append(to_decimal(upnl, f"unrealised_pnls_coin[{i}]"))
    return _sum_exact(amounts)


def available_balance(
    margin_balance_coin: object, position_im_coin: object, order_im_coin: object
) -> Decimal:
    """Available balance: margin balance − position IM − order IM, floored at 0."""
    balance = to_decimal(margin_balance_coin, "margin_balance_coin")
    position_im = _non_negative(position_im_coin, "position_im_coin")
    order_im = _non_negative(order_im_coin, "order_im_coin")
    # Negated as ratios: unary minus on a Decimal would round it to the context's precision.
    parts = [balance.as_integer_ratio(), position_im.as_integer_ratio(),
             order_im.as_integer_ratio()]
    (b_n, b_d), (p_n, p_d), (o_n, o_d) = parts
    free_n = b_n * p_d * o_d - p_n * b_d * o_d - o_n * b_d * p_d
    return quotient(max(free_n, 0), b_d * p_d * o_d)
