"""Risk numbers of positions and accounts at the current mark: the one place they are computed.

Unrealised PnL, margin, maintenance and the liquidation test all use the **mark** price, never
the last trade (mechanics §3). Isolated positions are judged alone against their isolated
margin; cross positions together, per settlement coin, against the wallet.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar, cast

from perpsim.sim import liquidation_price as lp
from perpsim.sim.inverse import PRECISION, coin_value, pnl_coin
from perpsim.sim.margin import bracket_for, initial_margin_coin
from perpsim.sim.margin import margin_ratio as exact_margin_ratio
from perpsim.sim.money import MAX_ABS_AMOUNT

if TYPE_CHECKING:
    from perpsim.sim.accounts import Position, PositionSide
    from perpsim.sim.exchange import Exchange
    from perpsim.sim.profile import Instrument

ZERO = Decimal(0)
V = TypeVar("V")


def mark_value_coin(ex: Exchange, pos: Position) -> Decimal:
    """|Q|·CS / mark: the position's value in coin now."""
    inst = ex.instruments[pos.symbol]
    return coin_value(pos.qty_contracts, ex.mark_price(pos.symbol), inst.contract_size_usd)


def unrealised_pnl(ex: Exchange, pos: Position, mark: Decimal | None = None) -> Decimal:
    """Unrealised PnL in coin at the mark (or at ``mark``)."""
    if not pos.is_open or pos.entry_price_usd is None:
        return ZERO
    inst = ex.instruments[pos.symbol]
    mark = ex.mark_price(pos.symbol) if mark is None else mark
    return pnl_coin(pos.qty_contracts, pos.entry_price_usd, mark, inst.contract_size_usd)


def maint_margin(ex: Exchange, pos: Position, mark: Decimal | None = None) -> Decimal:
    """Maintenance margin by the profile's style (MM at mark with cum, or at entry + extras)."""
    if not pos.is_open or pos.entry_price_usd is None:
        return ZERO
    inst = ex.instruments[pos.symbol]
    mark = ex.mark_price(pos.symbol) if mark is None else mark
    liq = ex.profile.liquidation
    cs = inst.contract_size_usd
    if liq.style == "mm_at_liquidation_price":
        value = coin_value(pos.qty_contracts, mark, cs)
        b = bracket_for(inst.brackets, value)
        return max(ZERO, value * b.mmr - b.cum_coin)
    value_at_entry = coin_value(pos.qty_contracts, pos.entry_price_usd, cs)
    b = bracket_for(inst.brackets, value_at_entry)
    mm = value_at_entry * b.mmr - b.cum_coin
    if liq.include_exit_fee_in_mm or (liq.cross_fee_to_close and pos.margin_mode == "cross"):
        mm += coin_value(pos.qty_contracts, mark, cs) * ex.profile.fees.taker_rate
    if liq.include_funding_in_mm and inst.is_perpetual:
        # Only funding the position PAYS is held (BitMEX "+ Funding Rate"): F > 0 longs pay,
        # F < 0 shorts pay, so the held amount is value·max(0, side·F), as in the LP solver.
        paid_rate = max(ZERO, pos.side * ex.mark_funding_rate(pos.symbol))
        mm += coin_value(pos.qty_contracts, mark, cs) * paid_rate
    return max(ZERO, mm)


def position_im(ex: Exchange, pos: Position) -> Decimal:
    """Initial margin of the position at the mark and its leverage."""
    if not pos.is_open:
        return ZERO
    inst = ex.instruments[pos.symbol]
    return initial_margin_coin(pos.qty_contracts, ex.mark_price(pos.symbol),
                               inst.contract_size_usd, pos.leverage)


def order_im(ex: Exchange, account_id: str, coin: str) -> Decimal:
    """Initial margin reserved by the account's open orders that would grow positions."""
    from perpsim.sim.trading import opening_contracts

    total = ZERO
    account = ex.accounts[account_id]
    for symbol, book in ex.books.items():
        inst = ex.instruments[symbol]
        if inst.margin_asset != coin:
            continue
        for order in book.open_orders(account_id):
            pos = account.position(symbol, coin, order.position_side)
            opening = opening_contracts(pos, order.sign, order.remaining_contracts)
            if opening and order.price_usd is not None:
                total += initial_margin_coin(opening, order.price_usd, inst.contract_size_usd,
                                             pos.leverage)
    return total


@dataclass(frozen=True, slots=True)
class CrossState:
    """One account's cross-margin numbers in one coin."""

    wallet_coin: Decimal
    unrealised_coin: Decimal
    position_im_coin: Decimal
    order_im_coin: Decimal
    maint_coin: Decimal

    @property
    def margin_balance_coin(self) -> Decimal:
        """Wallet plus unrealised PnL of cross positions."""
        return self.wallet_coin + self.unrealised_coin

    @property
    def available_coin(self) -> Decimal:
        """Margin balance less position and order initial margin, floored at zero."""
        return max(ZERO, self.margin_balance_coin - self.position_im_coin - self.order_im_coin)

    @property
    def liquidatable(self) -> bool:
        """Cross trigger: margin balance ≤ maintenance margin (with some MM required)."""
        return self.maint_coin > 0 and self.margin_balance_coin <= self.maint_coin


def cross_positions(ex: Exchange, account_id: str, coin: str) -> list[Position]:
    """The account's open cross positions settled in ``coin``."""
    return [p for p in ex.accounts[account_id].open_positions()
            if p.coin == coin and p.margin_mode == "cross"]


def cross_state(ex: Exchange, account_id: str, coin: str) -> CrossState:
    """Cross numbers of an account in a coin, at the marks now."""
    positions = cross_positions(ex, account_id, coin)
    marks = _marks(ex, positions)
    return CrossState(
        wallet_coin=ex.wallet_balance(account_id, coin),
        unrealised_coin=sum((unrealised_pnl(ex, p, marks[p.symbol]) for p in positions), ZERO),
        position_im_coin=sum((position_im(ex, p) for p in positions), ZERO),
        order_im_coin=order_im(ex, account_id, coin),
        maint_coin=sum((maint_margin(ex, p, marks[p.symbol]) for p in positions), ZERO),
    )


def cross_margin(ex: Exchange, account_id: str, coin: str) -> tuple[Decimal, Decimal]:
    """(margin balance, maintenance margin) of the account's cross positions in ``coin``:
    :func:`cross_state`'s ``margin_balance_coin`` and ``maint_coin``, summed in the same order,
    without the position and order initial margins the margin test does not read."""
    positions = cross_positions(ex, account_id, coin)
    if len(positions) == 1:  # the common case, without the generators: the same additions
        (pos,) = positions
        mark = ex.mark_price(pos.symbol)
        unrealised = ZERO + unrealised_pnl(ex, pos, mark)
        maint = ZERO + maint_margin(ex, pos, mark)
    else:
        marks = _marks(ex, positions)
        unrealised = sum((unrealised_pnl(ex, p, marks[p.symbol]) for p in positions), ZERO)
        maint = sum((maint_margin(ex, p, marks[p.symbol]) for p in positions), ZERO)
    return ex.wallet_balance(account_id, coin) + unrealised, maint


def _marks(ex: Exchange, positions: list[Position]) -> dict[str, Decimal]:
    """The mark of each symbol of ``positions``, asked once (what each of them would get:
    nothing moves in between)."""
    return {symbol: ex.mark_price(symbol) for symbol in dict.fromkeys(p.symbol
                                                                        for p in positions)}


def cross_available(ex: Exchange, account_id: str, coin: str) -> Decimal:
    """What the account can still commit in ``coin`` (new orders, isolated top-ups)."""
    return cross_state(ex, account_id, coin).available_coin


def isolated_margin_balance(ex: Exchange, account_id: str, pos: Position) -> Decimal:
    """Isolated margin plus unrealised PnL."""
    return ex.isolated_wallet(account_id, pos.margin_key) + unrealised_pnl(ex, pos)


def isolated_liquidatable(ex: Exchange, account_id: str, pos: Position) -> bool:
    """Isolated trigger: margin balance ≤ maintenance margin."""
    mm = maint_margin(ex, pos)
    return pos.is_open and mm > 0 and isolated_margin_balance(ex, account_id, pos) <= mm


def removable_isolated_margin(ex: Exchange, account_id: str, pos: Position) -> Decimal:
    """How much isolated margin can leave while the rest still covers the initial margin."""
    balance = isolated_margin_balance(ex, account_id, pos)
    wallet = ex.isolated_wallet(account_id, pos.margin_key)
    return max(ZERO, min(wallet, balance - position_im(ex, pos)))


# Journals and wires cannot carry Infinity: "nothing left" shows as this ratio.
_NOTHING_LEFT_RATIO = Decimal(999)


def margin_ratio(mm: Decimal, balance: Decimal) -> Decimal:
    """MM / margin balance (≥ 1: liquidation), capped so that "nothing left" stays finite."""
    if type(mm) is Decimal and type(balance) is Decimal and mm.is_finite() \
            and balance.is_finite() and 0 < mm <= MAX_ABS_AMOUNT \
            and 0 < balance <= MAX_ABS_AMOUNT:
        return _engine_ratio(mm, balance)
    return min(exact_margin_ratio(mm, balance), _NOTHING_LEFT_RATIO)


# The engine's own positive amounts divided as Decimals (no integer ratios): the quotient is
# rounded once to inverse.PRECISION digits, half-even, as inverse.quotient rounds the same
# rational, so an inexact result is the same Decimal; an exact one is written as quotient
# writes it (its ideal exponent is 0: an integer without an exponent, a fraction with no
# trailing zero). tests/test_risk_margin_ratio.py checks it against margin.margin_ratio.
_DIVIDE = decimal.Context(prec=PRECISION, rounding=decimal.ROUND_HALF_EVEN, traps=[])
_EXACT = decimal.Context(prec=3 * PRECISION, traps=[])  # a product of two such is exact here
_ONE = Decimal(1)


def _engine_ratio(mm: Decimal, balance: Decimal) -> Decimal:
    ratio = _DIVIDE.divide(mm, balance)
    if ratio > _NOTHING_LEFT_RATIO:
        return _NOTHING_LEFT_RATIO  # what min() returns for any larger ratio
    if _EXACT.multiply(ratio, balance) != mm:
        return ratio  # inexact: the correctly rounded quotient
    if ratio == ratio.to_integral_value(context=_DIVIDE):
        return ratio.quantize(_ONE, context=_DIVIDE)  # ≤ 999: fits the precision
    return ratio.normalize(_DIVIDE)


@dataclass(frozen=True, slots=True)
class PositionRisk:
    """Everything a user sees about one position (control plane, positionRisk, lessons)."""

    symbol: str
    qty_contracts: int
    entry_price_usd: Decimal | None
    mark_price_usd: Decimal
    unrealised_pnl_coin: Decimal
    value_coin: Decimal
    margin_mode: str
    leverage: int
    isolated_margin_coin: Decimal
    initial_margin_coin: Decimal
    maint_margin_coin: Decimal
    margin_balance_coin: Decimal
    margin_ratio: Decimal
    liquidation_price_usd: Decimal | None
    bankruptcy_price_usd: Decimal | None
    position_side: str = "BOTH"


@dataclass(frozen=True, slots=True)
class MarginCheck:
    """What the liquidation engine reads of a position (the margin-call test and the trigger
    snapshot): :class:`PositionRisk`'s margin fields without its display-only ones (initial
    margin, unrealised PnL, value), which cost as much again to compute exactly."""

    mark_price_usd: Decimal
    maint_margin_coin: Decimal
    margin_balance_coin: Decimal
    margin_ratio: Decimal
    liquidation_price_usd: Decimal | None
    bankruptcy_price_usd: Decimal | None


def margin_check(ex: Exchange, account_id: str, pos: Position,
                 unrealised_coin: Decimal | None = None) -> MarginCheck:
    """The margin fields of ``pos``'s risk view now (exact, as :func:`position_risk`);
    ``unrealised_coin``: its unrealised PnL now, if the caller has it already."""
    # One mark for the whole view (each part would ask again and get the same: nothing moves
    # in between); an isolated wallet read once for the balance and the solver's inputs.
    mark = ex.mark_price(pos.symbol)
    if pos.margin_mode == "isolated":
        wallet = ex.isolated_wallet(account_id, pos.margin_key)
        if unrealised_coin is None:
            unrealised_coin = unrealised_pnl(ex, pos, mark)
        balance = wallet + unrealised_coin
        mm = maint_margin(ex, pos, mark)
        liq, bankrupt = liquidation_prices(ex, account_id, pos, isolated_wallet_coin=wallet)
    else:
        positions = cross_positions(ex, account_id, pos.coin)
        if len(positions) == 1 and positions[0] is pos and pos.position_side == "BOTH":
            # The crowd's usual cross account, one one-way position in the coin: cross_margin
            # and liquidation_prices with the mark, the wallet and the (no) others in hand.
            wallet = ex.wallet_balance(account_id, pos.coin)
            balance = wallet + (ZERO + unrealised_pnl(ex, pos, mark))
            mm = ZERO + maint_margin(ex, pos, mark)
            liq, bankrupt = liquidation_prices(ex, account_id, pos,
                                               cross_margin_coin=(wallet, ZERO, ZERO))
        else:
            balance, mm = cross_margin(ex, account_id, pos.coin)
            liq, bankrupt = liquidation_prices(ex, account_id, pos)
    return MarginCheck(mark, mm, balance, margin_ratio(mm, balance), liq, bankrupt)


def position_risk(ex: Exchange, account_id: str, symbol: str,
                  side: PositionSide = "BOTH") -> PositionRisk:
    """The risk view of one position (one-way, or one leg in hedge mode) now."""
    pos = ex.position(account_id, symbol, side)
    # The PnL at the mark once: the view shows it and an isolated margin balance adds it.
    unrealised = unrealised_pnl(ex, pos, ex.mark_price(pos.symbol))
    check = margin_check(ex, account_id, pos, unrealised)
    mark = check.mark_price_usd
    return PositionRisk(
        symbol=pos.symbol, qty_contracts=pos.qty_contracts, entry_price_usd=pos.entry_price_usd,
        mark_price_usd=mark, unrealised_pnl_coin=unrealised,
        value_coin=mark_value_coin(ex, pos) if pos.is_open else ZERO,
        margin_mode=pos.margin_mode, leverage=pos.leverage,
        isolated_margin_coin=ex.isolated_wallet(account_id, pos.margin_key),
        initial_margin_coin=position_im(ex, pos), maint_margin_coin=check.maint_margin_coin,
        margin_balance_coin=check.margin_balance_coin, margin_ratio=check.margin_ratio,
        liquidation_price_usd=check.liquidation_price_usd,
        bankruptcy_price_usd=check.bankruptcy_price_usd,
        position_side=pos.position_side,
    )


def engine_stamp(ex: Exchange) -> tuple[int, int, int]:
    """(now, journal length, ledger postings): changes whenever anything risk reads can.

    Every engine operation that moves a position, a wallet, an order, a setting or a price
    journals an event (and money moves post to the ledger, which a rollback may shorten), and
    time moves ``now``: between operations, the same stamp means the same risk numbers.
    """
    return ex.now_ms, len(ex.journal), len(ex.ledger.postings)


def settled_view(ex: Exchange, key: tuple[object, ...], compute: Callable[[], V]) -> V:
    """``compute()`` once per engine stamp and ``key``, for readers between engine operations
    (the API's wire views): every request made at one stamp shares the answer.

    Not for the engine's own use mid-operation (liquidation, trading): a position can change
    there before the event that moves the stamp is journaled. ``compute`` must be a pure
    function of the engine's state, and callers must not mutate what it returns.
    """
    stamp = engine_stamp(ex)
    if ex.risk_memo[0] != stamp:
        ex.risk_memo = (stamp, {})
    views = ex.risk_memo[1]
    if key in views:
        return cast(V, views[key])
    value = views[key] = compute()
    return value


def settled_position_risk(ex: Exchange, account_id: str, symbol: str,
                          side: PositionSide = "BOTH") -> PositionRisk:
    """:func:`position_risk` computed once per engine stamp (see :func:`settled_view`): a
    client reading /account, /positionRisk and /balance at one instant pays for it once."""
    return settled_view(ex, ("position_risk", account_id, symbol, side),
                        lambda: position_risk(ex, account_id, symbol, side))


def liquidation_prices(ex: Exchange, account_id: str, pos: Position,
                       mmr_scale: Decimal = Decimal(1), *,
                       isolated_wallet_coin: Decimal | None = None,
                       cross_margin_coin: tuple[Decimal, Decimal, Decimal] | None = None,
                       ) -> tuple[Decimal | None, Decimal | None]:
    """(liquidation, bankruptcy) price of a position, everything else held at today's marks.

    None where the position can never reach it (a 1x short with full coin collateral);
    Infinity (longs) where it already has. ``mmr_scale`` > 1 gives the margin-call price: the
    mark where MM / margin balance reaches 1 / mmr_scale. ``isolated_wallet_coin``: the
    isolated position's wallet now, when the caller has just read it; ``cross_margin_coin``:
    a cross position's (wallet, the other cross positions' unrealised PnL, their MM) now,
    likewise (summed from ZERO in the account's order, as this would sum them).
    """
    if not pos.is_open or pos.entry_price_usd is None:
        return None, None
    pair = hedged_pair(ex, account_id, pos)
    if pair is not None:
        shared = _pair_prices(ex, account_id, pair, mmr_scale)
        return shared.liquidation_price_usd, shared.bankruptcy_price_usd
    inst = _scaled(ex, pos.symbol, mmr_scale)
    rate = ex.mark_funding_rate(pos.symbol) if inst.is_perpetual else ZERO
    if pos.margin_mode == "isolated":
        if isolated_wallet_coin is None:
            isolated_wallet_coin = ex.isolated_wallet(account_id, pos.margin_key)
        margin: tuple[Decimal, ...] = (isolated_wallet_coin,)
    elif cross_margin_coin is not None:
        margin = cross_margin_coin
    else:
        others = [p for p in cross_positions(ex, account_id, pos.coin) if p is not pos]
        margin = (ex.wallet_balance(account_id, pos.coin),
                  sum((unrealised_pnl(ex, p) for p in others), ZERO),
                  sum((maint_margin(ex, p) for p in others), ZERO))
    # The solver is pure: memoise it on every input, so a cached answer is never stale.
    key = (pos.symbol, pos.qty_contracts, pos.entry_price_usd, pos.margin_mode, margin, rate,
           mmr_scale, pos.position_side)
    cached = ex.lp_cache.get(key)
    if cached is not None:
        return cached
    if pos.margin_mode == "isolated":
        prices = lp.isolated_prices(ex.profile, inst, pos.qty_contracts, pos.entry_price_usd,
                                    margin[0], funding_rate=rate)
    else:
        prices = lp.cross_prices(ex.profile, inst, pos.qty_contracts, pos.entry_price_usd,
                                 margin[0], other_unrealised_pnl_coin=margin[1],
                                 other_maint_margin_coin=margin[2], funding_rate=rate)
    if len(ex.lp_cache) > 500_000:  # bounded memory on huge runs
        ex.lp_cache.clear()
    result = (prices.liquidation_price_usd, prices.bankruptcy_price_usd)
    ex.lp_cache[key] = result
    return result


def hedged_pair(ex: Exchange, account_id: str, pos: Position) -> tuple[Position, Position] | None:
    """(LONG, SHORT) when ``pos`` is a cross hedge leg whose opposite leg is open too: then
    the two share one liquidation price (Binance's formula with both L and S terms)."""
    if pos.position_side == "BOTH" or pos.margin_mode != "cross":
        return None
    account = ex.accounts[account_id]
    legs = {p.position_side: p for p in account.positions_on(pos.symbol) if p.is_open}
    if "LONG" not in legs or "SHORT" not in legs:
        return None
    return legs["LONG"], legs["SHORT"]


def trigger_side(ex: Exchange, account_id: str, pos: Position) -> int:
    """+1 when the mark falling to the liquidation price liquidates ``pos``, −1 when rising:
    its own side, or for a cross hedged pair the side the pair is net on."""
    pair = hedged_pair(ex, account_id, pos)
    if pair is None:
        return pos.side
    return _pair_prices(ex, account_id, pair, Decimal(1)).side


def _pair_prices(ex: Exchange, account_id: str, pair: tuple[Position, Position],
                 mmr_scale: Decimal) -> lp.HedgePrices:
    long_, short = pair
    assert long_.entry_price_usd is not None
    assert short.entry_price_usd is not None
    inst = _scaled(ex, long_.symbol, mmr_scale)
    others = [p for p in cross_positions(ex, account_id, long_.coin) if p.symbol != long_.symbol]
    wallet = ex.wallet_balance(account_id, long_.coin)
    other_upnl = sum((unrealised_pnl(ex, p) for p in others), ZERO)
    other_mm = sum((maint_margin(ex, p) for p in others), ZERO)
    mark = ex.mark_price(long_.symbol)
    key = ("hedge", long_.symbol, long_.qty_contracts, long_.entry_price_usd,
           short.qty_contracts, short.entry_price_usd, wallet, other_upnl, other_mm, mark,
           mmr_scale)
    cached = ex.hedge_lp_cache.get(key)
    if cached is not None:
        return cached
    prices = lp.cross_hedge_prices(ex.profile, inst, long_.qty_contracts, long_.entry_price_usd,
                                   short.qty_contracts, short.entry_price_usd, wallet,
                                   other_unrealised_pnl_coin=other_upnl,
                                   other_maint_margin_coin=other_mm, mark_price_usd=mark)
    if len(ex.hedge_lp_cache) > 100_000:  # bounded memory on huge runs
        ex.hedge_lp_cache.clear()
    ex.hedge_lp_cache[key] = prices
    return prices


def _scaled(ex: Exchange, symbol: str, scale: Decimal) -> Instrument:
    """The instrument with MMR and cum scaled (margin-call levels), cached on the exchange."""
    inst = ex.instruments[symbol]
    if scale == 1:
        return inst
    key = (symbol, scale)
    if key not in ex.scaled_instruments:
        brackets = tuple(b.model_copy(update={"mmr": b.mmr * scale, "cum_coin": b.cum_coin * scale})
                         for b in inst.brackets)
        ex.scaled_instruments[key] = inst.model_copy(update={"brackets": brackets})
    return ex.scaled_instruments[key]
