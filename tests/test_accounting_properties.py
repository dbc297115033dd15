"""Property tests of the accounting identities (mechanics §0, §5) with hypothesis."""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim.inverse import apply_fill, average_entry, coin_value, exact, pnl_coin, to_dec
from perpsim.sim.liquidation_price import (
    INFINITE_PRICE,
    isolated_prices,
    liquidation_price_mm_at_lp,
)
from perpsim.sim.margin import (
    bracket_for,
    initial_margin_coin,
    isolated_margin_balance,
    maintenance_margin_coin,
)
from perpsim.sim.profile import Instrument, Profile, load_profile

PROFILES = {
    name: load_profile(name) for name in ("binance_coinm", "bybit_inverse", "bitmex_xbtusd")
}
BINANCE = PROFILES["binance_coinm"]
INSTRUMENTS: list[tuple[Profile, Instrument]] = [
    (p, i) for p in PROFILES.values() for i in p.instruments if i.is_perpetual
]
BINANCE_INSTRUMENTS = [i for p, i in INSTRUMENTS if p is BINANCE]

SETTINGS = settings(deadline=None, max_examples=examples(200))

qtys = st.integers(min_value=1, max_value=1_000_000)
signed_qtys = qtys.flatmap(lambda q: st.sampled_from([q, -q]))
prices = st.decimals(min_value="1", max_value="10000000", places=1)
sizes = st.sampled_from([D(1), D(10), D(100)])


@SETTINGS
@given(qty=qtys, entry=prices, exit_=prices, cs=sizes)
def test_long_and_short_pnl_mirror(qty: int, entry: D, exit_: D, cs: D) -> None:
    assert pnl_coin(qty, entry, exit_, cs) == -pnl_coin(-qty, entry, exit_, cs)


@SETTINGS
@given(q1=signed_qtys, q2=qtys, price=prices, cs=sizes)
def test_add_then_close_at_the_same_price_realises_exactly_zero(
    q1: int, q2: int, price: D, cs: D
) -> None:
    add = q2 if q1 > 0 else -q2
    opened = apply_fill(0, None, q1, price, cs)
    added = apply_fill(opened.qty_contracts, opened.entry_price_usd, add, price, cs)
    assert added.entry_price_usd == price
    closed = apply_fill(added.qty_contracts, added.entry_price_usd, -(q1 + add), price, cs)
    assert closed.qty_contracts == 0
    assert closed.entry_price_usd is None
    assert closed.realised_pnl_coin == 0


@SETTINGS
@given(q1=signed_qtys, q2=qtys, p1=prices, p2=prices, cs=sizes)
def test_add_at_two_prices_then_close_at_entry_realises_zero(
    q1: int, q2: int, p1: D, p2: D, cs: D
) -> None:
    add = q2 if q1 > 0 else -q2
    added = apply_fill(q1, p1, add, p2, cs)
    assert added.entry_price_usd is not None
    closed = apply_fill(
        added.qty_contracts, added.entry_price_usd, -(q1 + add), added.entry_price_usd, cs
    )
    assert closed.realised_pnl_coin == 0


@SETTINGS
@given(
    fills=st.lists(st.tuples(signed_qtys, prices), min_size=1, max_size=12),
    last=prices,
    cs=sizes,
)
def test_realised_pnl_of_a_round_trip_is_the_coin_flow(
    fills: list[tuple[int, D]], last: D, cs: D
) -> None:
    """Σ realised over any fills (adds, reduces, flips) ending flat = Σ Q·CS/P of the fills."""
    qty, entry, realised = 0, None, Fraction(0)
    flow = gross = Fraction(0)
    for fill_qty, price in [*fills, (0, last)]:
        fill_qty = fill_qty or -qty  # the final fill closes whatever is left
        if fill_qty == 0:
            continue
        qty, entry, pnl = apply_fill(qty, entry, fill_qty, price, cs)
        realised += exact(pnl)
        flow += fill_qty * exact(cs) / exact(price)
        gross += abs(fill_qty) * exact(cs) / exact(price)
    assert qty == 0
    # Only the 28-digit rounding of entries and PnLs separates them: relative to the coin traded.
    assert abs(realised - flow) <= Fraction(1, 10**24) * (1 + gross)


@SETTINGS
@given(
    adds=st.lists(st.tuples(qtys, prices), min_size=1, max_size=10),
    cuts=st.lists(st.floats(min_value=0.05, max_value=0.95), max_size=10),
    short=st.booleans(),
)
def test_harmonic_entry_through_adds_and_partial_closes(
    adds: list[tuple[int, D]], cuts: list[float], short: bool
) -> None:
    """Entry = Σ|Q|/Σ(|Q|/P) over the held lots; a partial close shrinks every lot pro rata."""
    side = -1 if short else 1
    qty, entry = 0, None
    held_qty, held_coin = Fraction(0), Fraction(0)  # exact reference: Σ|Q| and Σ|Q|/P
    for i, (q, price) in enumerate(adds):
        qty, entry, _ = apply_fill(qty, entry, side * q, price, 100)
        held_qty += q
        held_coin += Fraction(q) / exact(price)
        if i < len(cuts) and abs(qty) > 1:
            cut = max(1, min(abs(qty) - 1, int(abs(qty) * cuts[i])))
            qty, entry, _ = apply_fill(qty, entry, -side * cut, adds[0][1], 100)
            held_coin *= (held_qty - cut) / held_qty
            held_qty -= cut
        assert abs(qty) == held_qty
    assert entry is not None
    harmonic = held_qty / held_coin
    # Each add rounds the entry once to 28 digits: the drift stays at that level.
    assert abs(exact(entry) / harmonic - 1) <= Fraction(len(adds), 10**27)
    # average_entry computes the same mean of the adds exactly and rounds once.
    all_adds = sum(q for q, _ in adds) / sum(Fraction(q) / exact(p) for q, p in adds)
    assert average_entry(adds) == to_dec(all_adds)


@SETTINGS
@given(
    inst=st.sampled_from(BINANCE_INSTRUMENTS),
    base=st.integers(min_value=100, max_value=200_000),
    mult=st.integers(min_value=1, max_value=50),
    marks=st.lists(prices, min_size=1, max_size=20),
)
def test_one_x_short_with_full_collateral_is_never_liquidatable(
    inst: Instrument, base: int, mult: int, marks: list[D]
) -> None:
    qty, entry = base * mult, D(base)  # N/EP = mult·CS coin exactly
    collateral = coin_value(qty, entry, inst.contract_size_usd)
    assert exact(collateral) == Fraction(qty) * exact(inst.contract_size_usd) / base
    for mark in [D(1), D(10_000_000), *marks]:
        balance = isolated_margin_balance(
            collateral, pnl_coin(-qty, entry, mark, inst.contract_size_usd)
        )
        mm = maintenance_margin_coin(-qty, mark, inst.contract_size_usd, inst.brackets)
        assert balance > mm
    sol = liquidation_price_mm_at_lp(-qty, entry, inst.contract_size_usd, collateral, inst.brackets)
    assert sol.price_usd is None
    prices_ = isolated_prices(BINANCE, inst, -qty, entry, collateral)
    assert prices_.liquidation_price_usd is None
    assert prices_.bankruptcy_price_usd is None


@SETTINGS
@given(
    pair=st.sampled_from(INSTRUMENTS),
    qty=signed_qtys,
    ticks=st.integers(min_value=2_000, max_value=2_000_000),
    lev_pick=st.floats(min_value=0, max_value=1),
)
def test_liquidation_lies_between_entry_and_bankruptcy(
    pair: tuple[Profile, Instrument], qty: int, ticks: int, lev_pick: float
) -> None:
    profile, inst = pair
    cs = inst.contract_size_usd
    entry = ticks * inst.tick_size
    cap = int(bracket_for(inst.brackets, coin_value(qty, entry, cs)).max_leverage)
    assume(cap >= 2)
    lev = 2 + int(lev_pick * (cap - 2))
    margin = initial_margin_coin(qty, entry, cs, lev)
    p = isolated_prices(profile, inst, qty, entry, margin)
    lp, bp = p.liquidation_exact_usd, p.bankruptcy_exact_usd
    assert lp is not None
    assert bp is not None
    assert lp != INFINITE_PRICE
    assert bp != INFINITE_PRICE
    assert p.liquidation_price_usd is not None
    assert p.bankruptcy_price_usd is not None
    if qty > 0:
        assert bp < lp < entry
        assert p.bankruptcy_price_usd <= p.liquidation_price_usd <= entry
    else:
        assert entry < lp < bp
        assert entry <= p.liquidation_price_usd <= p.bankruptcy_price_usd


@SETTINGS
@given(
    inst=st.sampled_from(BINANCE_INSTRUMENTS),
    qty=signed_qtys,
    entry=st.decimals(min_value="100", max_value="200000", places=1),
    margin_frac=st.decimals(min_value="0.001", max_value="2", places=3),
    other=st.decimals(min_value="-1", max_value="1", places=4),
)
def test_re_solved_bracket_contains_the_value_at_the_solved_price(
    inst: Instrument, qty: int, entry: D, margin_frac: D, other: D
) -> None:
    cs = inst.contract_size_usd
    value = coin_value(qty, entry, cs)
    margin = value * margin_frac + other  # cross-like: may be negative
    sol = liquidation_price_mm_at_lp(qty, entry, cs, margin, inst.brackets)
    if sol.price_usd is None or sol.price_usd == INFINITE_PRICE:
        return
    assert sol.bracket == bracket_for(inst.brackets, coin_value(qty, sol.price_usd, cs))
    # ... and it solves W + s·N·(1/EP − 1/LP) = N/LP·MMR − cum
    balance = exact(margin) + exact(pnl_coin(qty, entry, sol.price_usd, cs))
    mm = exact(maintenance_margin_coin(qty, sol.price_usd, cs, inst.brackets))
    assert abs(balance - mm) <= Fraction(1, 10**18) * max(1, abs(mm))
