"""``too_deep`` clears a text with no more opening brackets than the limit without scanning it,
and says what the scan says for every text: around the limit, with brackets inside strings
(counted by the shortcut, not by the scan), as str or bytes."""

from __future__ import annotations

import json

import pytest

from perpsim.sim.bounded_json import MAX_JSON_DEPTH, json_depth, too_deep


def _scanned(text: str | bytes, limit: int) -> str | None:
    """What too_deep said before the shortcut: the scan's depth against the limit."""
    depth = json_depth(text)
    return f"JSON nested {depth} levels deep; the limit is {limit}" if depth > limit else None


def _nested(depth: int, inside: str = "1") -> str:
    return "[" * depth + inside + "]" * depth


TEXTS = [
    "", "1", '"[[[["', "{}", _nested(3),
    json.dumps({"until": 1, "wake": [{"symbol": "BTCUSD_PERP", "mark_above": "70000"}],
                "stop_on": ["margin.call", "liquidation.triggered"], "account_id": "1"}),
    _nested(MAX_JSON_DEPTH), _nested(MAX_JSON_DEPTH + 1), _nested(MAX_JSON_DEPTH - 1, "{}"),
    _nested(MAX_JSON_DEPTH, "{}"),
    # more brackets than the limit, most inside strings: the scan decides (not too deep)
    json.dumps({"a": "[" * (MAX_JSON_DEPTH * 2), "b": [["{"]]}),
    json.dumps(["x"] * 10 + [[[["y"]]]] * 40),  # many brackets, shallow
    '{"a": "\\"[[", "b": ' + _nested(MAX_JSON_DEPTH) + "}",  # an escaped quote
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("limit", [0, 3, MAX_JSON_DEPTH])
def test_too_deep_says_what_the_scan_says(text: str, limit: int) -> None:
    assert too_deep(text, limit) == _scanned(text, limit)
    assert too_deep(text.encode(), limit) == _scanned(text, limit)


def test_the_limit_is_refused_one_level_past_it() -> None:
    assert too_deep(_nested(MAX_JSON_DEPTH)) is None
    assert too_deep(_nested(MAX_JSON_DEPTH + 1)) == (
        f"JSON nested {MAX_JSON_DEPTH + 1} levels deep; the limit is {MAX_JSON_DEPTH}")
