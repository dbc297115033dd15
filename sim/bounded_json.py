"""A nesting-depth bound for JSON read from users (scenario specs, profiles, request bodies).

Python's json parser recurses once per level: a document nested 100,000 deep raises
RecursionError (a 500 and a traceback) instead of a clear error. The depth is measured first,
on the brackets outside strings, without recursion.
"""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 64  # a profile nests 5 levels deep; nothing legitimate comes near 64

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of arrays/objects in ``text`` (0 for a scalar)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if b"[" not in data and b"{" not in data:
        return 0
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b'""', data)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def too_deep(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> str | None:
    """A message if ``text`` nests deeper than ``limit``, else None."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    # No deeper than its count of opening brackets (strings' included): a request body (a
    # control-plane advance: a dozen) is cleared without the scan.
    if data.count(b"[") + data.count(b"{") <= limit:
        return None
    depth = json_depth(data)
    if depth > limit:
        return f"JSON nested {depth} levels deep; the limit is {limit}"
    return None
