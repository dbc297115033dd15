"""The MM-at-LP solver's per-table bounds give the solutions that solving each bracket in turn
gives: every bracket table of the bundled profiles and odd ones (a discontinuous table, one of
a single bracket), longs and shorts, any margin (1x shorts included) and extra MM."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim import liquidation_price as lp
from perpsim.sim.inverse import exact, to_dec
from perpsim.sim.liquidation_price import (
    INFINITE_PRICE,
    LiquidationSolution,
    _extra,
    _position,
    _short_price,
    liquidation_price_mm_at_lp,
)
from perpsim.sim.margin import brackets_value
from perpsim.sim.profile import Bracket, load_profile


def reference_mm_at_lp(qty_contracts: object, entry_price_usd: object,
                       contract_size_usd: object, margin_coin: object,
                       brackets: Sequence[Bracket], *,
                       extra_mm_coin: object = 0) -> LiquidationSolution:
    """The solver as it was: each bracket's root solved in turn, the first that holds wins."""
    side, n, inv_ep, w = _position(qty_contracts, entry_price_usd, contract_size_usd,
                                   margin_coin)
    table = brackets_value(brackets)
    extra = _extra(extra_mm_coin, "extra_mm_coin")
    order = table if side > 0 else tuple(reversed(table))
    for b in order:
        mmr, cum = exact(b.mmr), exact(b.cum_coin) - extra
        lo = exact(b.floor_coin)
        hi = None if b.cap_coin is None or b is table[-1] else exact(b.cap_coin)
        if side > 0:
            root = (w + n * inv_ep + cum) / (1 + mmr)
            v = max(lo, root)
            if hi is None or v < hi:
                if v <= 0:
                    return LiquidationSolution(INFINITE_PRICE, b)
                return LiquidationSolution(to_dec(n / v), b)
        else:
            root = (n * inv_ep - w - cum) / (1 - mmr)
            if hi is not None and root >= hi:
                price = _short_price(n / hi)
                return LiquidationSolution(price, b if price is not None else None)
            if root >= lo and root > 0:
                price = _short_price(n / root)
                return LiquidationSolution(price, b if price is not None else None)
    return LiquidationSolution(None, None)


def _bracket(k: int, floor: str, cap: str | None, mmr: str, cum: str) -> Bracket:
    return Bracket(bracket=k, floor_coin=Decimal(floor),
                   cap_coin=None if cap is None else Decimal(cap), max_leverage=Decimal(10),
                   mmr=Decimal(mmr), cum_coin=Decimal(cum))


TABLES: list[tuple[Bracket, ...]] = [
    inst.brackets for name in ("binance_coinm", "binance_coinm_2024", "bybit_inverse",
                               "bitmex_xbtusd")
    for inst in load_profile(name).instruments]
TABLES += [
    (_bracket(1, "0", None, "0.01", "0"),),  # one unbounded bracket
    (_bracket(1, "0", "5", "0.004", "0"),  # MM falls at the edge: the defensive branch
     _bracket(2, "5", "20", "0.02", "0.5"), _bracket(3, "20", None, "0.05", "0")),
    (_bracket(1, "0", "1", "0.005", "0"), _bracket(2, "1", "3", "0.01", "0.005"),
     _bracket(3, "3", None, "0.025", "0.05")),
]


@given(table=st.sampled_from(TABLES),
       qty=st.integers(1, 10**7).flatmap(lambda q: st.sampled_from([q, -q])),
       entry=st.decimals("100", "200000", places=1),
       leverage=st.one_of(st.decimals("0.5", "125", places=2), st.just(Decimal(1))),
       dust=st.integers(-5, 5),
       extra=st.one_of(st.just(Decimal(0)), st.decimals("0", "0.5", places=8)))
@settings(max_examples=examples(600), deadline=None)
def test_the_bounds_solve_as_each_bracket_in_turn(table: tuple[Bracket, ...], qty: int,
                                                  entry: Decimal, leverage: Decimal, dust: int,
                                                  extra: Decimal) -> None:
    cs = 100
    margin = (Decimal(abs(qty) * cs) / entry / leverage).quantize(Decimal("1e-8"))
    margin = max(Decimal(0), margin + Decimal(dust) / 10**8)  # 1x ± a few satoshis
    expected = reference_mm_at_lp(qty, entry, cs, margin, table, extra_mm_coin=extra)
    got = liquidation_price_mm_at_lp(qty, entry, cs, margin, table, extra_mm_coin=extra)
    assert got == expected
    assert str(got.price_usd) == str(expected.price_usd)


def test_the_terms_follow_the_table_not_a_stale_one() -> None:
    """Kept by identity: an equal-looking new table is solved with its own numbers."""
    first = (_bracket(1, "0", "2", "0.01", "0"), _bracket(2, "2", None, "0.02", "0.02"))
    second = (_bracket(1, "0", "2", "0.03", "0"), _bracket(2, "2", None, "0.05", "0.04"))
    for table in (first, second, first):
        got = liquidation_price_mm_at_lp(1000, Decimal(50_000), 100, Decimal("0.1"), table)
        assert got == reference_mm_at_lp(1000, Decimal(50_000), 100, Decimal("0.1"), table)
    assert lp._bracket_terms(brackets_value(second))[0].one_plus_mmr == Fraction(103, 100)
