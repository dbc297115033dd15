"""The integer-ratio arithmetic of sim/inverse.py, sim/margin.py and sim/liquidation_price.py
equals exact rational arithmetic rounded once, digit for digit (hypothesis over wide ranges:
prices from a 1e-8 tick to the money limit, contract sizes from 1e-4 to 1e6 USD, up to 1e15
contracts, and Decimals with up to 28 significant digits such as solved liquidation prices).

The oracle is written here from the formulas with ``fractions.Fraction`` and rounded as the
engine rounds (one correctly rounded half-even division to 28 digits); results are compared
with ``as_tuple()``, so digits and exponent must match, not just the value.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from perpsim.sim.errors import InvalidInput, InvalidPrice, InvalidQuantity
from perpsim.sim.inverse import (
    PRECISION,
    apply_fill,
    average_entry,
    coin_value,
    exact,
    fee_coin,
    pnl_coin,
    quotient,
    signed_contracts,
)
from perpsim.sim.liquidation_price import exit_costs_coin, round_price
from perpsim.sim.margin import (
    available_balance,
    cross_margin_balance,
    initial_margin_coin,
    isolated_margin_balance,
    maintenance_margin_coin,
    margin_ratio,
)
from perpsim.sim.money import positive_price, positive_quantity, to_decimal, whole_contracts
from perpsim.sim.profile import Bracket, Rounding

SETTINGS = settings(deadline=None, max_examples=400)
ORACLE = decimal.Context(prec=PRECISION, rounding=decimal.ROUND_HALF_EVEN)
LIMIT = Decimal("1e15")


def rounded(value: Fraction) -> Decimal:
    """The exact rational, rounded once as the engine promises (reduced operands)."""
    return ORACLE.divide(Decimal(value.numerator), Decimal(value.denominator))


def same(got: Decimal, want: Decimal) -> bool:
    return got.as_tuple() == want.as_tuple()


def decimals(low: Decimal, high: Decimal, *, signed: bool = False) -> st.SearchStrategy[Decimal]:
    """Decimals in [low, high] (or ±) with 1–28 significant digits at any exponent that fits."""
    def build(digits: int, exponent: int, negative: bool) -> Decimal:
        return Decimal(f"{'-' if negative else ''}{digits}E{exponent}")

    raw = st.builds(build, st.integers(1, 10**28 - 1), st.integers(-40, 15),
                    st.booleans() if signed else st.just(False))
    return raw.filter(lambda d: low <= abs(d) <= high)


PRICES = st.one_of(decimals(Decimal("1e-8"), LIMIT),
                   st.integers(1, 10**11).map(lambda t: Decimal(t) / 10),  # on a 0.1 tick
                   st.sampled_from([Decimal("1e-8"), Decimal("60000.1"), LIMIT]))
SIZES = st.one_of(st.sampled_from([Decimal(1), Decimal(10), Decimal(100), Decimal("0.0001")]),
                  decimals(Decimal("1e-4"), Decimal("1e6")))
QTYS = st.integers(1, 10**15).flatmap(lambda q: st.sampled_from([q, -q]))
AMOUNTS = decimals(Decimal(0), Decimal("1e6"), signed=True)
RATES = decimals(Decimal("1e-9"), Decimal("0.99"), signed=True)


@SETTINGS
@given(st.integers(-10**60, 10**60), st.integers(1, 10**60), st.integers(1, 10**6))
def test_quotient_of_an_unreduced_pair_is_the_reduced_rounding(n: int, d: int, k: int) -> None:
    want = rounded(Fraction(n, d))
    assert same(quotient(n, d), want)
    assert same(quotient(n * k, d * k), want)


@SETTINGS
@given(QTYS, PRICES, SIZES)
def test_coin_value(qty: int, price: Decimal, cs: Decimal) -> None:
    want = rounded(abs(qty) * Fraction(cs) / Fraction(price))
    assert same(coin_value(qty, price, cs), want)


@SETTINGS
@given(QTYS, PRICES, SIZES, st.sampled_from([Decimal("1e-8"), Decimal("1e-6"),
                                              Decimal("0.5")]))
def test_coin_value_bitmex_floor(qty: int, price: Decimal, cs: Decimal, step: Decimal) -> None:
    rounding = Rounding(coin_step=step, coin_rule="floor", contract_value_floor=True)
    per_contract = (Fraction(cs) / Fraction(price) / Fraction(step)).__floor__()
    want = rounded(per_contract * Fraction(step) * abs(qty))
    assert same(coin_value(qty, price, cs, rounding), want)


@SETTINGS
@given(QTYS, PRICES, PRICES, SIZES)
def test_pnl_coin(qty: int, entry: Decimal, exit_: Decimal, cs: Decimal) -> None:
    want = rounded(qty * Fraction(cs) * (1 / Fraction(entry) - 1 / Fraction(exit_)))
    assert same(pnl_coin(qty, entry, exit_, cs), want)


@SETTINGS
@given(QTYS, PRICES, SIZES)
def test_pnl_at_entry_is_an_unsigned_zero(qty: int, entry: Decimal, cs: Decimal) -> None:
    assert same(pnl_coin(qty, entry, entry, cs), Decimal(0))


@SETTINGS
@given(QTYS, PRICES, QTYS, PRICES, SIZES)
def test_apply_fill(qty: int, entry: Decimal, fill: int, price: Decimal, cs: Decimal) -> None:
    ep, fp = Fraction(entry), Fraction(price)
    got = apply_fill(qty, entry, fill, price, cs)
    if (qty > 0) == (fill > 0):
        want_entry = rounded((abs(qty) + abs(fill)) / (abs(qty) / ep + abs(fill) / fp))
        assert got.entry_price_usd is not None
        assert same(got.entry_price_usd, want_entry)
        assert got.qty_contracts == qty + fill
        assert same(got.realised_pnl_coin, Decimal(0))
        return
    closed = min(abs(qty), abs(fill)) * (1 if qty > 0 else -1)
    assert same(got.realised_pnl_coin, rounded(closed * Fraction(cs) * (1 / ep - 1 / fp)))
    assert got.qty_contracts == qty + fill


@SETTINGS
@given(st.lists(st.tuples(QTYS, PRICES), min_size=1, max_size=6))
def test_average_entry(fills: list[tuple[int, Decimal]]) -> None:
    total = sum(abs(q) for q, _ in fills)
    coin = sum((Fraction(abs(q)) / Fraction(p) for q, p in fills), Fraction(0))
    assert same(average_entry(fills), rounded(total / coin))


@SETTINGS
@given(QTYS, SIZES, PRICES, RATES)
def test_fee_coin(qty: int, cs: Decimal, price: Decimal, rate: Decimal) -> None:
    value = rounded(abs(qty) * Fraction(cs) / Fraction(price))  # rounded first, as specified
    assert same(fee_coin(qty, cs, price, rate), rounded(Fraction(value) * Fraction(rate)))


@SETTINGS
@given(QTYS, PRICES, SIZES, st.integers(1, 125).map(Decimal) | decimals(Decimal(1), Decimal(125)))
def test_initial_margin(qty: int, price: Decimal, cs: Decimal, leverage: Decimal) -> None:
    value = rounded(abs(qty) * Fraction(cs) / Fraction(price))
    want = rounded(Fraction(value) / Fraction(leverage))
    assert same(initial_margin_coin(qty, price, cs, leverage), want)


BRACKETS = (
    Bracket(bracket=1, floor_coin=Decimal(0), cap_coin=Decimal(5), max_leverage=Decimal(125),
            mmr=Decimal("0.004"), cum_coin=Decimal(0)),
    Bracket(bracket=2, floor_coin=Decimal(5), cap_coin=Decimal(10), max_leverage=Decimal(100),
            mmr=Decimal("0.005"), cum_coin=Decimal("0.005")),
    Bracket(bracket=3, floor_coin=Decimal(10), cap_coin=None, max_leverage=Decimal(50),
            mmr=Decimal("0.0123456789"), cum_coin=Decimal("0.0733456789")),
)


@SETTINGS
@given(QTYS, PRICES, SIZES)
def test_maintenance_margin(qty: int, price: Decimal, cs: Decimal) -> None:
    value = rounded(abs(qty) * Fraction(cs) / Fraction(price))
    assume(value <= LIMIT)  # bracket_for refuses a value past the money limit
    bracket = [b for b in BRACKETS if b.floor_coin <= value][-1]
    want = rounded(Fraction(value) * Fraction(bracket.mmr) - Fraction(bracket.cum_coin))
    assert same(maintenance_margin_coin(qty, price, cs, BRACKETS), want)


@SETTINGS
@given(decimals(Decimal(0), Decimal("1e6")), AMOUNTS)
def test_margin_ratio(mm: Decimal, balance: Decimal) -> None:
    assume(mm > 0 and balance > 0)
    assert same(margin_ratio(mm, balance), rounded(Fraction(mm) / Fraction(balance)))


@SETTINGS
@given(decimals(Decimal(0), Decimal("1e6")), AMOUNTS, st.lists(AMOUNTS, max_size=5))
def test_margin_balances(wallet: Decimal, upnl: Decimal, others: list[Decimal]) -> None:
    want = rounded(Fraction(wallet) + Fraction(upnl))
    assert same(isolated_margin_balance(wallet, upnl), want)
    total = sum((Fraction(o) for o in others), Fraction(upnl))
    assert same(cross_margin_balance(upnl, others), rounded(total))


@SETTINGS
@given(AMOUNTS, decimals(Decimal(0), Decimal("1e6")), decimals(Decimal(0), Decimal("1e6")))
def test_available_balance(balance: Decimal, position_im: Decimal, order_im: Decimal) -> None:
    free = Fraction(balance) - Fraction(position_im) - Fraction(order_im)
    want = rounded(max(free, Fraction(0)))
    assert same(available_balance(balance, position_im, order_im), want)


@SETTINGS
@given(st.integers(-2 * 10**15, 2 * 10**15))
def test_int_contracts_take_the_short_way_to_the_same_answer(qty: int) -> None:
    # The fast path must accept and refuse exactly what the Decimal path does.
    for allow_zero in (False, True):
        try:
            want: int | str = int(to_decimal(Decimal(qty)))
            if want == 0 and not allow_zero:
                want = "error"
        except InvalidInput:
            want = "error"
        try:
            got: int | str = signed_contracts(qty, allow_zero=allow_zero)
        except InvalidQuantity:
            got = "error"
        assert got == want


@SETTINGS
@given(decimals(Decimal("1e-30"), Decimal("1e20"), signed=True))
def test_decimal_prices_take_the_short_way_to_the_same_answer(value: Decimal) -> None:
    want_ok = 0 < value <= LIMIT
    try:
        got = positive_price(value)
    except InvalidPrice:
        assert not want_ok
    else:
        assert want_ok
        assert got is value


TICKS = st.sampled_from([Decimal("0.1"), Decimal("0.5"), Decimal("0.01"), Decimal("1e-8"),
                         Decimal(1), Decimal(5)])


@SETTINGS
@given(PRICES, QTYS, TICKS)
def test_round_price_conservative(price: Decimal, qty: int, tick: Decimal) -> None:
    steps = Fraction(price) / Fraction(tick)
    units = steps.__ceil__() if qty > 0 else steps.__floor__()  # long up, short down
    want = (units * tick).quantize(tick)
    assert same(round_price(price, qty, tick, "tick_conservative"), want)


@SETTINGS
@given(QTYS, PRICES, SIZES, st.sampled_from([Decimal(0), Decimal("0.0005")]),
       st.sampled_from([Decimal(0), Decimal("0.0001"), Decimal("-0.0003")]))
def test_exit_costs(qty: int, bp: Decimal, cs: Decimal, fee: Decimal, funding: Decimal) -> None:
    paid = max(Fraction(0), (1 if qty > 0 else -1) * Fraction(funding))
    want = rounded(abs(qty) * Fraction(cs) / Fraction(bp) * (Fraction(fee) + paid))
    got = exit_costs_coin(qty, cs, bp, exit_fee_rate=fee, funding_rate=funding)
    assert same(got, want)


@SETTINGS
@given(st.integers(-2 * 10**15, 2 * 10**15))
def test_whole_contracts_take_the_short_way_to_the_same_answer(qty: int) -> None:
    try:
        want: int | str = int(positive_quantity(Decimal(qty)))
    except InvalidQuantity:
        want = "error"
    try:
        got: int | str = whole_contracts(qty)
    except InvalidQuantity:
        got = "error"
    assert got == want


@SETTINGS
@given(decimals(Decimal("1e-30"), Decimal("1e20"), signed=True))
def test_exact_of_a_decimal_is_its_fraction(value: Decimal) -> None:
    got = exact(value)
    assert got == Fraction(value)
    assert (got.numerator, got.denominator) == Fraction(value).as_integer_ratio()
