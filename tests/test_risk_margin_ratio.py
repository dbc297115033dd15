"""risk.margin_ratio's division of the engine's own amounts against the exact integer-ratio
computation it replaces (margin.margin_ratio, capped at 999): the same Decimal, digits and
exponent, for inexact and exact quotients alike; anything else takes the reference path."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim.errors import InvalidInput
from perpsim.sim.margin import margin_ratio as exact_margin_ratio
from perpsim.sim.risk import _NOTHING_LEFT_RATIO, margin_ratio

D = Decimal


def reference(mm: Decimal, balance: Decimal) -> Decimal:
    return min(exact_margin_ratio(mm, balance), _NOTHING_LEFT_RATIO)


def written(value: Decimal) -> tuple[object, ...]:
    """The Decimal as stored: sign, digits and exponent (1.0 and 1 differ here)."""
    return tuple(value.as_tuple())


amounts = (st.decimals(min_value=D("1E-8"), max_value=D(1000), places=8)
           | st.decimals(min_value=D("1E-20"), max_value=D(10), places=27)
           | st.integers(1, 10**6).map(lambda n: D(n).scaleb(-(n % 12))))
scales = st.sampled_from([D(1), D("0.5"), D("0.25"), D("0.2"), D("0.125"), D(2), D(4), D(8),
                          D(10), D(100), D("0.001"), D("1.000"), D("2.50"), D(999),
                          D("999.0"), D(1000), D("1E+3"), D("3")])


@settings(deadline=None, max_examples=examples(1000))
@given(amounts, amounts)
def test_any_two_amounts_divide_as_the_reference(mm: Decimal, balance: Decimal) -> None:
    assert written(margin_ratio(mm, balance)) == written(reference(mm, balance))


@settings(deadline=None, max_examples=examples(1000))
@given(amounts, scales)
def test_exact_ratios_are_written_as_the_reference_writes_them(balance: Decimal,
                                                               scale: Decimal) -> None:
    mm = balance * scale  # exact: the ratio is ``scale``, with whatever exponent it brings
    assert written(margin_ratio(mm, balance)) == written(reference(mm, balance))


@pytest.mark.parametrize(("mm", "balance"), [
    (D("0.2"), D("0.004")), (D("0.02"), D("0.004")), (D("1.00"), D("0.5")),
    (D("0.00100000"), D("0.00200000")), (D("999"), D("1")), (D("999.0000"), D("1.000")),
    (D("999.00000001"), D(1)), (D("1E+3"), D(1)), (D(5), D("1E-12")),
    (D("0.00012345678901234567890123"), D("0.0001523456789012345678901234")),
])
def test_examples(mm: Decimal, balance: Decimal) -> None:
    assert written(margin_ratio(mm, balance)) == written(reference(mm, balance))


@pytest.mark.parametrize(("mm", "balance"), [
    (D(0), D(1)), (D("0.1"), D(0)), (D("0.1"), D("-0.5")), (D(0), D(-1)), (1, D(2)),
    (D("0.1"), 2),
])
def test_other_inputs_take_the_reference(mm: Decimal, balance: Decimal) -> None:
    assert written(margin_ratio(mm, balance)) == written(reference(mm, balance))


def test_bad_inputs_fail_as_the_reference() -> None:
    for mm, balance in ((D(-1), D(1)), (D("NaN"), D(1)), (D(1), D("Infinity")),
                        (D("2E+15"), D(1)), (D(1), D("2E+15"))):
        with pytest.raises(InvalidInput) as ours:
            margin_ratio(mm, balance)
        with pytest.raises(InvalidInput) as theirs:
            reference(mm, balance)
        assert str(ours.value) == str(theirs.value)
