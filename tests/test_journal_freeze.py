"""The journal's fast freeze (journal._freeze_known) against the reference (_freeze_checked).

Every payload takes the fast path first; these properties prove it returns exactly what the
reference returns (same types, same texts, read-only mappings) and, on anything it does not
handle, that the fallback raises the reference's error naming the same path.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Context, Decimal
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.numbers import readable
from perpsim.sim.errors import InvalidInput
from perpsim.sim.journal import Journal, _decimal_text, _freeze, _freeze_checked, _freeze_own

D = Decimal


class Text(str):
    """A str subclass: allowed by the reference (kept as is), not by the fast path."""


class Count(int):
    """An int subclass (as an IntEnum member would be)."""


class Amount(Decimal):
    """A Decimal subclass."""


def shape(value: object) -> object:
    """``value`` with every container's and scalar's exact type spelled out, so equal shapes
    mean identical frozen values (a str is not a Text, a tuple not a list)."""
    if isinstance(value, MappingProxyType | dict):
        return (type(value).__name__, [(type(k).__name__, k, shape(v)) for k, v in
                                       value.items()])
    if isinstance(value, tuple | list):
        return (type(value).__name__, [shape(v) for v in value])
    return (type(value).__name__, value)


def outcome(freeze: Any, value: object) -> object:
    """What ``freeze(value, "payload")`` returns (its shape) or raises (type and message)."""
    try:
        return ("ok", shape(freeze(value, "payload")))
    except InvalidInput as exc:
        return ("error", str(exc))


decimals = (
    st.decimals(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False, places=8)
    | st.decimals(min_value=-10**6, max_value=10**6, places=12)
    | st.sampled_from([D("0E-8"), D("-0"), D("-0E-9"), D("1E+5"), D("-1.5E+3"), D("0E+2"),
                       D("61460.00000000000000000000000"), D("0.000000005"),
                       D("-0.000000005"), D("123456789012345678901234567890.123456789"),
                       D("1.123456789E+49"), D("1.123456789E+50"), D("-1.123456789E+51"),
                       D("9.99999999999E+60"), D("0.999999999999999"),
                       D("-0.99999999999999"), D("2.5E-9"), D("1.5E-8"),
                       D("1" + "0" * 49 + ".123456785"), D("-1" + "0" * 50 + ".123456785"),
                       D("1" + "0" * 55 + ".123456789")])
)
unusual = st.sampled_from([1.5, float("nan"), D("Infinity"), D("-Infinity"), D("NaN"),
                           Text("t"), Count(3), Amount("1.25"), b"bytes", object(), {1, 2}])
scalars = (st.none() | st.booleans() | st.integers() | st.text(max_size=5) | decimals)
keys = st.text(max_size=4)


def containers(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return (st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple)
            | st.dictionaries(keys, inner, max_size=3)
            | st.dictionaries(keys, inner, max_size=3).map(MappingProxyType)
            | st.dictionaries(keys, inner, max_size=2).map(OrderedDict)
            | st.dictionaries(st.integers(0, 3) | keys.map(Text), inner, min_size=1,
                              max_size=2))


usual_values = st.recursive(scalars, containers, max_leaves=12)
any_values = st.recursive(scalars | unusual, containers, max_leaves=12)


@settings(deadline=None, max_examples=examples(600))
@given(st.dictionaries(keys, usual_values, max_size=5))
def test_the_fast_path_freezes_usual_payloads_as_the_reference(payload: dict) -> None:
    assert outcome(_freeze, payload) == outcome(_freeze_checked, payload)


@settings(deadline=None, max_examples=examples(600))
@given(any_values)
def test_any_value_freezes_or_fails_as_the_reference(value: object) -> None:
    assert outcome(_freeze, value) == outcome(_freeze_checked, value)


def own_outcome(payload: dict, where: str) -> object:
    """``_freeze_own`` on a copy of ``payload`` (it freezes the dict it is given in place)."""
    assert where == "payload"
    return _freeze_own(dict(payload))


@settings(deadline=None, max_examples=examples(600))
@given(st.dictionaries(keys | keys.map(Text), any_values, max_size=6))
def test_freezing_a_dict_in_place_gives_what_the_reference_gives(payload: dict) -> None:
    # append's keyword arguments: the same frozen payload (types, texts, the keys' own
    # objects) or the same error naming the same path, whatever came before the unusual value.
    assert outcome(own_outcome, payload) == outcome(_freeze_checked, payload)


@settings(deadline=None, max_examples=examples(300))
@given(st.dictionaries(keys, usual_values, max_size=6))
def test_append_stores_the_reference_payload_and_leaves_the_callers_dict(payload: dict) -> None:
    journal = Journal()
    before = shape(payload)
    expected = outcome(_freeze_checked, payload)
    try:
        stored = ("ok", shape(journal.append(0, "x", **payload).payload))
    except InvalidInput as exc:
        stored = ("error", str(exc))
        assert len(journal) == 0
    assert stored == expected
    assert shape(payload) == before  # the keyword arguments were append's own dict


@settings(deadline=None, max_examples=examples(800))
@given(decimals)
def test_decimal_text_is_readable(value: Decimal) -> None:
    assert _decimal_text(value) == readable(value)


@settings(deadline=None, max_examples=examples(400))
@given(st.lists(decimals, min_size=1, max_size=6), st.integers(0, 12))
def test_equal_values_read_alike_whatever_was_written_before(values: list[Decimal],
                                                             extra_places: int) -> None:
    # Long tails are remembered by value: the same value with more zeros (another exponent),
    # written after, must still read as readable writes it.
    for value in values:
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # finite
        wider = value.quantize(Decimal(1).scaleb(exponent - extra_places),
                               context=Context(prec=200))
        assert wider == value
        for v in (value, wider, -value, wider.copy_negate()):
            assert _decimal_text(v) == readable(v)


@pytest.mark.parametrize(("value", "text"), [
    (D("0E-8"), "0.00000000"), (D("-0"), "-0"), (D("1E+5"), "100000"),
    (D("12.34567890"), "12.34567890"), (D("61460.00000000000000000000000"), "61460"),
    (D("0.000000005"), "0"), (D("-0.000000005"), "0"), (D("1.123456785"), "1.12345678"),
    (D("1.123456795"), "1.1234568"), (D("-0.999999999"), "-1"), (D("1.5E-8"), "0.00000002"),
    (D("1.123456789E+52"), "11234567890000000000000000000000000000000000000000000"),
    (D("1" + "0" * 49 + ".123456785"), "1" + "0" * 49 + ".12345678"),
    (D("-9" + "9" * 55 + ".999999999"), "-1" + "0" * 56),
])
def test_decimal_text_examples(value: Decimal, text: str) -> None:
    assert _decimal_text(value) == readable(value) == text


@pytest.mark.parametrize(("payload", "message"), [
    ({"a": [1, {"b": 1.5}]}, "payload.a[1].b has type float"),
    ({"a": {"b": D("NaN")}}, "payload.a.b must be finite"),
    ({"a": (1, {2: "x"})}, "payload.a[1] has a non-string key 2"),
    ({"a": [D("Infinity")]}, "payload.a[0] must be finite"),
    ({"d": D("1.25"), "e": D("1E-9"), "a": [1, 1.5]}, "payload.a[1] has type float"),
    ({"d": D("1.25"), "x": D("NaN")}, "payload.x must be finite"),
])
def test_refused_payloads_name_the_offending_path_and_store_nothing(payload: dict,
                                                                    message: str) -> None:
    journal = Journal()
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        journal.append(0, "x", **payload)
    assert len(journal) == 0


def test_subclasses_go_through_the_reference_and_keep_their_values() -> None:
    frozen = _freeze({"t": Text("t"), "n": Count(3), "d": Amount("1.25"),
                      "m": OrderedDict(k=D("1.0"))}, "payload")
    assert shape(frozen) == shape(_freeze_checked(
        {"t": Text("t"), "n": Count(3), "d": Amount("1.25"), "m": OrderedDict(k=D("1.0"))},
        "payload"))
    assert type(frozen["t"]) is Text
    assert frozen["d"] == "1.25"


def test_frozen_payloads_are_read_only() -> None:
    frozen = _freeze({"a": {"b": [1, D("2.5")]}}, "payload")
    assert isinstance(frozen, MappingProxyType)
    assert frozen["a"]["b"] == (1, "2.5")
    with pytest.raises(TypeError):
        frozen["a"]["c"] = 1  # type: ignore[index]
