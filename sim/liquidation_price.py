"""Liquidation and bankruptcy prices, isolated and cross, both venue styles (mechanics §5).

Notation: N = |Q|·CS USD, s = side, EP entry, W the margin backing the position (isolated: the
isolated margin; cross: wallet + other positions' unrealised PnL − their MM, Binance's general
formula without hedge-mode terms). Margin balance at price P is W + s·N·(1/EP − 1/P).

* ``mm_at_liquidation_price`` (Binance, OKX): MM = N/LP·MMR − cum, valued at the price itself.
  With v = N/LP the equation W + s·N/EP − s·v = v·MMR − cum is linear in v:
  v = (W + cum + s·N/EP) / (MMR + s), i.e. LP = N·(MMR + s) / (W + cum + s·N/EP).
  The bracket depends on v, so brackets are scanned from the first one the price reaches (long:
  ascending value; short: descending) and the first bracket whose own solution lies in its range
  wins: the same fixed point as "re-solve with the bracket at the solved price", reached in at
  most len(brackets) steps, so it always terminates.
* ``mm_at_entry`` (BitMEX, classic Bybit): MM = N/EP·MMR − cum, a fixed coin amount, so
  s·N·(1/EP − 1/LP) = −(W − MM) gives 1/LP = 1/EP + s·(W − MM)/N.
* bankruptcy price: where the margin balance is zero, 1/BP = 1/EP + s·W/N (both styles).

Optional extra MM (profile flags include_exit_fee_in_mm / include_funding_in_mm): the taker fee
of closing at the bankruptcy price, N/BP·taker, and the funding the position would pay,
N/BP·max(0, s·F) (a receipt is not counted on). Both are fixed coin amounts added to MM.
Bybit cross (``cross_fee_to_close``) also leaves that fee at bankruptcy: 1/BP = (1/EP + s·W/N) /
(1 + s·taker), and MM holds N/BP·taker (help.bybit.com 360039261334: 0.5 BTC, long 10,000 at
8,000 → BP 5,718.57, LP 5,739.50).

Return values: ``None`` means the position cannot be liquidated (bankrupted) at any positive
price, e.g. a 1x short whose collateral is N/EP in the MM-at-LP style: its equity N/P always
exceeds N/P·MMR. A short's price above the largest price perpsim accepts (money.MAX_ABS_AMOUNT,
1e15 USD) is None too: a 1x short solves to ~1e30 from rounding dust, and no mark gets there.
``INFINITE_PRICE`` (long only) means it is already liquidatable at every price
(cross, when other positions' losses exceed the wallet). So "long: liquidate when mark ≤ LP;
short: when mark ≥ LP" works with every value. In the MM-at-entry style the MM does not shrink
with the price, so a 1x short there does have a (very high) LP: EP/MMR with cum 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from perpsim.sim.errors import InvalidInput, InvalidPrice, InvalidQuantity
from perpsim.sim.inverse import contract_size, exact, rate_value, signed_contracts, to_dec
from perpsim.sim.margin import brackets_value
from perpsim.sim.money import MAX_ABS_AMOUNT, positive_price, to_decimal
from perpsim.sim.profile import Bracket, Instrument, Profile

INFINITE_PRICE = Decimal("Infinity")
PriceRounding = Literal["none", "tick_conservative"]


@dataclass(frozen=True)
class LiquidationSolution:
    """An exact liquidation price (None: never; INFINITE_PRICE: always) and the bracket used."""

    price_usd: Decimal | None
    bracket: Bracket | None


@dataclass(frozen=True)
class PositionPrices:
    """Liquidation and bankruptcy prices rounded per profile, the exact ones, and the bracket."""

    liquidation_price_usd: Decimal | None
    bankruptcy_price_usd: Decimal | None
    bracket: Bracket | None
    liquidation_exact_usd: Decimal | None
    bankruptcy_exact_usd: Decimal | None


def _position(
    qty_contracts: object, entry_price_usd: object, contract_size_usd: object, margin_coin: object
) -> tuple[int, Fraction, Fraction, Fraction]:
    """Validate the common arguments; return side, N, 1/EP and W as exact rationals."""
    qty = signed_contracts(qty_contracts)
    entry = positive_price(entry_price_usd, "entry_price_usd")
    cs = contract_size(contract_size_usd)
    margin = to_decimal(margin_coin, "margin_coin")
    side = 1 if qty > 0 else -1
    return side, abs(qty) * exact(cs), 1 / exact(entry), exact(margin)


def _short_price(price: Fraction) -> Decimal | None:
    """A short's solved price, or None ("never") above the largest price perpsim accepts.

    A short backed by almost exactly its value in coin (1x) solves to a price like 3e30: no mark
    can reach it (prices are capped at MAX_ABS_AMOUNT), and valuing the position there would
    break the money limits, so it is reported as what it is: never liquidated or bankrupt."""
    if price > MAX_ABS_AMOUNT:
        return None
    return to_dec(price)


def _price_from_inverse(side: int, inverse_price: Fraction) -> Decimal | None:
    """1/P → P, with the sentinels for "no positive price" (long: always; short: never)."""
    if inverse_price <= 0:
        return INFINITE_PRICE if side > 0 else None
    if side < 0:
        return _short_price(1 / inverse_price)
    return to_dec(1 / inverse_price)


def bankruptcy_price(
    qty_contracts: object,
    entry_price_usd: object,
    contract_size_usd: object,
    margin_coin: object,
    *,
    close_fee_rate: object = 0,
) -> Decimal | None:
    """Exact price where margin balance W + s·N·(1/EP − 1/BP) is zero (None: never).

    With ``close_fee_rate`` (Bybit cross) the margin left at BP is exactly the taker fee of
    closing there, N/BP·fee: 1/BP = (1/EP + s·W/N) / (1 + s·fee), i.e. Bybit's published
    "Bankruptcy Price (Long) = 1.00075 × Quantity / (Quantity/Avg. Entry Price + Available
    Balance)" and "(Short) = 0.99925 × Quantity / (Quantity/Avg. Entry Price − Available Balance)".
    """
    side, n, inv_ep, w = _position(qty_contracts, entry_price_usd, contract_size_usd, margin_coin)
    fee = exact(rate_value(close_fee_rate, "close_fee_rate"))
    if fee < 0:
        raise InvalidInput(f"close_fee_rate must not be negative, got {close_fee_rate!r}")
    return _price_from_inverse(side, (inv_ep + side * w / n) / (1 + side * fee))


def _is_infinite(value: object) -> bool:
    # is_infinite() rather than == INFINITE_PRICE: comparing a signalling NaN would raise.
    return isinstance(value, Decimal) and value.is_infinite() and not value.is_signed()


def _solved_price(value: object, what: str) -> Decimal:
    """A price from a solver: a finite positive Decimal (no size limit: LPs can be huge)."""
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise InvalidPrice(f"{what} must be a finite positive Decimal, got {value!r}")
    return value


def _extra(value: object, what: str) -> Fraction:
    amount = to_decimal(value, what)
    if amount < 0:
        raise InvalidInput(f"{what} must not be negative, got {value!r}")
    return exact(amount)


def liquidation_price_mm_at_lp(
    qty_contracts: object,
    entry_price_usd: object,
    contract_size_usd: object,
    margin_coin: object,
    brackets: Sequence[Bracket],
    *,
    extra_mm_coin: object = 0,
) -> LiquidationSolution:
    """Binance-style exact LP solving W + s·N·(1/EP − 1/LP) = N/LP·MMR − cum, bracket re-solved.

    Each bracket's test is a comparison of one number of the position with bounds of the
    bracket alone (``_bracket_terms``, kept per table); only the bracket that holds the
    solution divides. The same tests as solving each bracket in turn (tests compare the two:
    tests/test_liquidation_price_terms.py)."""
    side, n, inv_ep, w = _position(qty_contracts, entry_price_usd, contract_size_usd, margin_coin)
    table = brackets_value(brackets)
    extra = _extra(extra_mm_coin, "extra_mm_coin")
    terms = _bracket_terms(table)
    # Work in v = N/P, the value the bracket is chosen by; v rises as a long's price falls.
    if side > 0:
        # Liquidated when W + N/EP − v ≤ v·MMR − cum, i.e. v ≥ root = (B + cum) / (1 + MMR)
        # with B = W + N/EP − extra; v = max(floor, root) must stay below the bracket's cap:
        # root < cap ⇔ B < cap·(1 + MMR) − cum (the bracket's ``long_below``).
        b_pos = w + n * inv_ep - extra
        for t in terms:
            if t.long_below is None or b_pos < t.long_below:
                v = max(t.lo, (b_pos + t.cum) / t.one_plus_mmr)
                if t.hi is not None and v >= t.hi:
                    continue  # the floor itself reaches the cap (a bracket of no width)
                if v <= 0:
                    return LiquidationSolution(INFINITE_PRICE, t.bracket)
                return LiquidationSolution(to_dec(n / v), t.bracket)
    else:
        # Liquidated when W − N/EP + v ≤ v·MMR − cum, i.e. v ≤ root = (A − cum) / (1 − MMR)
        # with A = N/EP − W + extra: root ≥ cap ⇔ A ≥ cum + cap·(1 − MMR), root ≥ floor ⇔
        # A ≥ cum + floor·(1 − MMR), root > 0 ⇔ A > cum (1 − MMR > 0).
        a_pos = n * inv_ep - w + extra
        for t in reversed(terms):
            if t.short_at_cap is not None and a_pos >= t.short_at_cap:
                # Defensive: needs MM to fall at a bracket edge, which rising MMR with either
                # cum rule rules out. The whole bracket is liquidatable, the one above is not.
                assert t.hi is not None
                price = _short_price(n / t.hi)
                return LiquidationSolution(price, t.bracket if price is not None else None)
            if a_pos >= t.short_at_floor and a_pos > t.cum:
                price = _short_price(n / ((a_pos - t.cum) / t.one_minus_mmr))
                return LiquidationSolution(price, t.bracket if price is not None else None)
    # A short whose margin beats MM at every value: it cannot be liquidated.
    return LiquidationSolution(None, None)


@dataclass(frozen=True, slots=True)
class _BracketTerms:
    """A bracket's exact numbers for ``liquidation_price_mm_at_lp`` (see there): its floor and
    cap in coin (the last bracket has no cap), cum, 1 ± MMR and the bounds its tests use."""

    bracket: Bracket
    lo: Fraction
    hi: Fraction | None
    cum: Fraction
    one_plus_mmr: Fraction
    one_minus_mmr: Fraction
    long_below: Fraction | None
    short_at_cap: Fraction | None
    short_at_floor: Fraction


_TERMS: dict[int, tuple[tuple[Bracket, ...], tuple[_BracketTerms, ...]]] = {}


def _bracket_terms(table: tuple[Bracket, ...]) -> tuple[_BracketTerms, ...]:
    """The table's ``_BracketTerms``, computed once per validated table (a profile's
    brackets are one immutable tuple: kept by identity, as brackets_value keeps them)."""
    known = _TERMS.get(id(table))
    if known is not None and known[0] is table:
        return known[1]
    terms = []
    for b in table:
        mmr, cum, lo = exact(b.mmr), exact(b.cum_coin), exact(b.floor_coin)
        # The last bracket extends upwards without bound, as in bracket_for.
        hi = None if b.cap_coin is None or b is table[-1] else exact(b.cap_coin)
        terms.append(_BracketTerms(
            bracket=b, lo=lo, hi=hi, cum=cum, one_plus_mmr=1 + mmr, one_minus_mmr=1 - mmr,
            long_below=None if hi is None else hi * (1 + mmr) - cum,
            short_at_cap=None if hi is None else cum + hi * (1 - mmr),
            short_at_floor=cum + lo * (1 - mmr)))
    if len(_TERMS) >= 64:
        _TERMS.clear()
    _TERMS[id(table)] = (table, tuple(terms))
    return tuple(terms)


def liquidation_price_mm_at_entry(
    qty_contracts: object,
    entry_price_usd: object,
    contract_size_usd: object,
    margin_coin: object,
    brackets: Sequence[Bracket],
    *,
    extra_mm_coin: object = 0,
) -> LiquidationSolution:
    """BitMEX/Bybit-style exact LP with MM valued at entry: 1/LP = 1/EP + s·(W − MM)/N."""
    side, n, inv_ep, w = _position(qty_contracts, entry_price_usd, contract_size_usd, margin_coin)
    extra = _extra(extra_mm_coin, "extra_mm_coin")
    table = brackets_value(brackets)
    # The bracket at the entry value, compared exactly (no rounding at a bracket edge).
    b = [x for x in table if exact(x.floor_coin) <= n * inv_ep][-1]
    mm = n * inv_ep * exact(b.mmr) - exact(b.cum_coin) + extra
    return LiquidationSolution(_price_from_inverse(side, inv_ep + side * (w - mm) / n), b)


def exit_costs_coin(
    qty_contracts: object,
    contract_size_usd: object,
    bankruptcy_price_usd: Decimal | None,
    *,
    exit_fee_rate: object = 0,
    funding_rate: object = 0,
) -> Decimal:
    """Extra MM: taker fee of closing at BP plus funding the position would pay, at BP value."""
    qty = signed_contracts(qty_contracts)
    cs = contract_size(contract_size_usd)
    fee = rate_value(exit_fee_rate, "exit_fee_rate")
    funding = rate_value(funding_rate, "funding_rate")
    if fee < 0:
        raise InvalidInput(f"exit_fee_rate must not be negative, got {exit_fee_rate!r}")
    if bankruptcy_price_usd is None or _is_infinite(bankruptcy_price_usd):
        # Never bankrupt (value → 0) or bankrupt already: nothing meaningful to value.
        return Decimal(0)
    bp = _solved_price(bankruptcy_price_usd, "bankruptcy_price_usd")
    side = 1 if qty > 0 else -1
    paid_funding = max(Fraction(0), side * exact(funding))
    if not fee and not paid_funding:  # no extras held (Binance): the value is not needed
        return to_dec(0)
    value = abs(qty) * exact(cs) / exact(bp)
    return to_dec(value * (exact(fee) + paid_funding))


def round_price(
    price_usd: Decimal | None, qty_contracts: object, tick_size: object, rounding: PriceRounding
) -> Decimal | None:
    """Round a liquidation/bankruptcy price per profile: tick_conservative = long up, short down."""
    side = 1 if signed_contracts(qty_contracts) > 0 else -1
    tick = positive_price(tick_size, "tick_size")
    if rounding not in ("none", "tick_conservative"):
        raise InvalidInput(f"rounding must be 'none' or 'tick_conservative', got {rounding!r}")
    if price_usd is None or _is_infinite(price_usd):
        return price_usd
    price = _solved_price(price_usd, "price_usd")
    if rounding == "none":
        return price
    # Conservative = reached earlier: a long's price rounded up, a short's down.
    # Exact rational rounding: money.round_to_tick divides in the caller's decimal context,
    # which could round a 28-digit price onto the tick before the ceiling/floor is taken.
    # price / tick = (p/pd) / (t/td) = p·td / (pd·t), all positive: // is the floor.
    p, pd = price.as_integer_ratio()
    t, td = tick.as_integer_ratio()
    units = -(-p * td // (pd * t)) if side > 0 else p * td // (pd * t)
    return (units * tick).quantize(tick)


def _prices(
    profile: object,
    instrument: object,
    qty_contracts: object,
    entry_price_usd: object,
    liquidation_margin: Decimal,
    bankruptcy_margin: Decimal,
    funding_rate: object,
    *,
    cross: bool = False,
) -> PositionPrices:
    if not isinstance(profile, Profile):
        raise InvalidInput(f"profile must be a Profile, got {type(profile).__name__}")
    if not isinstance(instrument, Instrument):
        raise InvalidInput(f"instrument must be an Instrument, got {type(instrument).__name__}")
    liq = profile.liquidation
    cs = instrument.contract_size_usd
    # Bybit cross: the fee to close at BP is left in the account at BP and held in MM.
    fee_to_close = cross and liq.cross_fee_to_close
    bp_exact = bankruptcy_price(
        qty_contracts,
        entry_price_usd,
        cs,
        bankruptcy_margin,
        close_fee_rate=profile.fees.taker_rate if fee_to_close else 0,
    )
    rate = rate_value(funding_rate, "funding_rate")
    extra = exit_costs_coin(
        qty_contracts,
        cs,
        bp_exact,
        exit_fee_rate=profile.fees.taker_rate
        if liq.include_exit_fee_in_mm or fee_to_close
        else 0,
        funding_rate=rate if liq.include_funding_in_mm else 0,
    )
    solve = (
        liquidation_price_mm_at_lp
        if liq.style == "mm_at_liquidation_price"
        else liquidation_price_mm_at_entry
    )
    sol = solve(
        qty_contracts,
        entry_price_usd,
        cs,
        liquidation_margin,
        instrument.brackets,
        extra_mm_coin=extra,
    )
    tick = instrument.tick_size
    return PositionPrices(
        liquidation_price_usd=round_price(
            sol.price_usd, qty_contracts, tick, liq.liquidation_price_rounding
        ),
        bankruptcy_price_usd=round_price(
            bp_exact, qty_contracts, tick, liq.bankruptcy_price_rounding
        ),
        bracket=sol.bracket,
        liquidation_exact_usd=sol.price_usd,
        bankruptcy_exact_usd=bp_exact,
    )


def isolated_prices(
    profile: Profile,
    instrument: Instrument,
    qty_contracts: object,
    entry_price_usd: object,
    isolated_margin_coin: object,
    *,
    funding_rate: object = 0,
) -> PositionPrices:
    """Liquidation and bankruptcy prices of an isolated position, per the profile's style."""
    margin = to_decimal(isolated_margin_coin, "isolated_margin_coin")
    if margin < 0:
        raise InvalidInput(
            f"isolated_margin_coin must not be negative, got {isolated_margin_coin!r}"
        )
    return _prices(
        profile, instrument, qty_contracts, entry_price_usd, margin, margin, funding_rate
    )


def cross_prices(
    profile: Profile,
    instrument: Instrument,
    qty_contracts: object,
    entry_price_usd: object,
    wallet_balance_coin: object,
    *,
    other_unrealised_pnl_coin: object = 0,
    other_maint_margin_coin: object = 0,
    funding_rate: object = 0,
) -> PositionPrices:
    """Prices of a cross position: W = wallet + others' unrealised PnL − others' MM (Binance)."""
    wallet = exact(to_decimal(wallet_balance_coin, "wallet_balance_coin"))
    other_upnl = exact(to_decimal(other_unrealised_pnl_coin, "other_unrealised_pnl_coin"))
    other_mm = _extra(other_maint_margin_coin, "other_maint_margin_coin")
    # Bankruptcy is where the whole cross balance is gone, so others' MM is not held back there.
    return _prices(
        profile,
        instrument,
        qty_contracts,
        entry_price_usd,
        to_dec(wallet + other_upnl - other_mm),
        to_dec(wallet + other_upnl),
        funding_rate,
        cross=True,
    )


@dataclass(frozen=True)
class HedgePrices:
    """The one liquidation / bankruptcy price a symbol's LONG and SHORT share in cross hedge
    mode, and the direction of the trigger: +1 when the mark falling to it liquidates (net
    long), −1 when the mark rising to it does (net short)."""

    liquidation_price_usd: Decimal | None
    bankruptcy_price_usd: Decimal | None
    side: int


def cross_hedge_prices(
    profile: object,
    instrument: object,
    long_qty: object,
    long_entry_usd: object,
    short_qty: object,
    short_entry_usd: object,
    wallet_balance_coin: object,
    *,
    other_unrealised_pnl_coin: object = 0,
    other_maint_margin_coin: object = 0,
    mark_price_usd: object,
) -> HedgePrices:
    """Binance's cross liquidation price with the hedge-mode terms (venue-sources.md 1):

        LP = [L·MMR_L + S·MMR_S + L − S] /
             [(WB − TMM1 + UPNL1 + cum_L + cum_S)/CM + L/EP_L − S/EP_S]

    (L, S in contracts, CM the contract size; N = contracts·CM). Both legs move with the same
    mark, so they share the price. The brackets are those of each leg's value at the solved
    price, found by re-solving from the brackets at the mark (at most one step per bracket).
    For profiles valuing MM at entry (Bybit two-way mode) MM is the fixed entry amount and the
    equation is the same with MMR = 0 on the price side. The exit-fee / funding extras of the
    one-way solver are not added here (no hedge-mode venue among the profiles uses them).
    """
    if not isinstance(profile, Profile):
        raise InvalidInput(f"profile must be a Profile, got {type(profile).__name__}")
    if not isinstance(instrument, Instrument):
        raise InvalidInput(f"instrument must be an Instrument, got {type(instrument).__name__}")
    if signed_contracts(long_qty, "long_qty") < 0:
        raise InvalidQuantity(f"long_qty must be positive (the LONG leg), got {long_qty!r}")
    if signed_contracts(short_qty, "short_qty") > 0:
        raise InvalidQuantity(f"short_qty must be negative (the SHORT leg), got {short_qty!r}")
    cs = exact(instrument.contract_size_usd)
    n_long = abs(signed_contracts(long_qty, "long_qty")) * cs
    n_short = abs(signed_contracts(short_qty, "short_qty")) * cs
    inv_l = 1 / exact(positive_price(long_entry_usd, "long_entry_usd"))
    inv_s = 1 / exact(positive_price(short_entry_usd, "short_entry_usd"))
    wallet = exact(to_decimal(wallet_balance_coin, "wallet_balance_coin"))
    other_upnl = exact(to_decimal(other_unrealised_pnl_coin, "other_unrealised_pnl_coin"))
    other_mm = _extra(other_maint_margin_coin, "other_maint_margin_coin")
    mark = positive_price(mark_price_usd, "mark_price_usd")
    w_liq = wallet + other_upnl - other_mm
    w_bankrupt = wallet + other_upnl
    equity0 = n_long * inv_l - n_short * inv_s
    table = instrument.brackets
    bankrupt = _hedge_solve(n_long - n_short, w_bankrupt + equity0)
    if profile.liquidation.style == "mm_at_entry":
        fixed = Fraction(0)
        for n, inv in ((n_long, inv_l), (n_short, inv_s)):
            b = [x for x in table if exact(x.floor_coin) <= n * inv][-1]
            fixed += n * inv * exact(b.mmr) - exact(b.cum_coin)
        liq = _hedge_solve(n_long - n_short, w_liq + equity0 - fixed)
    else:
        x = 1 / exact(mark)
        liq = (None, 0)
        for _ in range(2 * len(table) + 2):
            b_l = [b for b in table if exact(b.floor_coin) <= n_long * x][-1]
            b_s = [b for b in table if exact(b.floor_coin) <= n_short * x][-1]
            d = n_long * (1 + exact(b_l.mmr)) - n_short * (1 - exact(b_s.mmr))
            liq = _hedge_solve(d, w_liq + equity0 + exact(b_l.cum_coin) + exact(b_s.cum_coin))
            if liq[0] is None or liq[0] <= 0:
                break
            if liq[0] == x:
                break
            x = liq[0]
    tick = instrument.tick_size
    rounding = profile.liquidation
    side = liq[1] or bankrupt[1] or 1
    return HedgePrices(
        liquidation_price_usd=round_price(_hedge_price(liq[0], side), side, tick,
                                          rounding.liquidation_price_rounding),
        bankruptcy_price_usd=round_price(_hedge_price(bankrupt[0], side), side, tick,
                                         rounding.bankruptcy_price_rounding),
        side=side,
    )


def _hedge_solve(d: Fraction, n: Fraction) -> tuple[Fraction | None, int]:
    """Solve n = x·d for the trigger in x = 1/price: (x, direction).

    d > 0 (net long): liquidated once x ≥ n/d, x = 0 standing for "at every price" when n ≤ 0;
    d < 0 (net short): once x ≤ n/d, None ("never") unless n/d > 0; d = 0: price-free."""
    if d > 0:
        return (n / d if n > 0 else Fraction(0)), 1
    if d < 0:
        return (n / d if n < 0 else None), -1
    return (Fraction(0) if n <= 0 else None), 0


def _hedge_price(x: Fraction | None, side: int) -> Decimal | None:
    if x is None:
        return None
    if x <= 0:
        return INFINITE_PRICE if side > 0 else None
    return to_dec(1 / x)
