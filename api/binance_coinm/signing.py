"""Binance request authentication (HMAC-SHA256), independent of any web framework.

Binance signs ``totalParams`` = the raw query string concatenated with the raw form body,
minus the ``signature`` parameter itself, as hex HMAC-SHA256 keyed with the API secret; the
API key travels in the ``X-MBX-APIKEY`` header. ccxt 4.5.90 puts every parameter in the query
for GET/DELETE and in the form body for POST/PUT, with ``timestamp`` first and ``recvWindow``
(10000) and ``signature`` last (docs/dialect-notes.md §0.2).

Freshness follows Binance's rule: accept when ``timestamp < now + 1000`` and
``now − timestamp ≤ recvWindow``. ``now_ms`` is passed in by the caller — one clock, or several
(perpsim passes the server time it reports *and* the wall clock: a timestamp fresh against
either is accepted, docs/dialect-notes.md "Clock"); this module never reads a clock. Every
failure is a typed :class:`SigningError` (api/auth.py, shared by the dialects);
api/binance_coinm/errors.py maps the classes to Binance codes.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from perpsim.api.auth import (  # re-exported: the Binance modules and tests name them here
    MAX_AHEAD_MS,
    MAX_API_KEY_LENGTH,
    BadSignature,
    DuplicateParameter,
    MalformedApiKey,
    MalformedParameter,
    MissingApiKey,
    MissingParameter,
    RecvWindowTooLarge,
    SigningError,
    TimestampAhead,
    TimestampExpired,
    UnknownApiKey,
    check_freshness,
    check_freshness_any,
    sign,
)

__all__ = ["MAX_AHEAD_MS", "BadSignature", "DuplicateParameter", "MalformedApiKey",
           "MalformedParameter", "MissingApiKey", "MissingParameter", "RecvWindowTooLarge",
           "SignedRequest", "SigningError", "TimestampAhead", "TimestampExpired",
           "UnknownApiKey", "api_key_only", "check_api_key", "check_freshness",
           "check_freshness_any", "header_api_key", "parse_params", "sign", "signed_payload",
           "verify_request"]

API_KEY_HEADER = "X-MBX-APIKEY"
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000

_API_KEY_RE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_INT_RE = re.compile(r"^[0-9]{1,19}$")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request that passed authentication: who sent it and its parameters."""

    api_key: str
    params: dict[str, str]  # every parameter except ``signature``
    timestamp_ms: int
    recv_window_ms: int


def _text(raw: str | bytes | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    return raw


def parse_params(query: str | bytes | None, body: str | bytes | None = None) -> dict[str, str]:
    """All parameters of a request, query then form body; a repeated name is refused."""
    params: dict[str, str] = {}
    for part in (_text(query), _text(body)):
        if not part:  # nothing to parse (a GET's body, a POST's query)
            continue
        for name, value in parse_qsl(part, keep_blank_values=True):
            if name in params:
                raise DuplicateParameter(name)
            params[name] = value
    return params


def _split_signature(raw: str) -> tuple[str, list[str]]:
    """``raw`` without its ``signature=`` pairs, and the signature values found."""
    if not raw:
        return raw, []
    kept: list[str] = []
    found: list[str] = []
    for pair in raw.split("&"):
        if pair.startswith("signature="):
            found.append(pair[len("signature="):])
        else:
            kept.append(pair)
    return "&".join(kept), found


def signed_payload(query: str | bytes | None, body: str | bytes | None) -> tuple[str, str]:
    """The exact string Binance signs and the signature sent with it.

    ``query + body`` concatenated as raw text (no separator, as Binance documents), with the
    one ``signature`` parameter removed from whichever part carried it.
    """
    query_rest, in_query = _split_signature(_text(query))
    body_rest, in_body = _split_signature(_text(body))
    found = in_query + in_body
    if len(found) > 1:
        raise DuplicateParameter("signature")
    if not found or not found[0]:
        raise MissingParameter("signature")
    return query_rest + body_rest, found[0]


def header_api_key(headers: Mapping[str, str]) -> str | None:
    """The X-MBX-APIKEY header value, looked up case-insensitively."""
    value = headers.get(API_KEY_HEADER)
    if value is None:
        wanted = API_KEY_HEADER.lower()
        for name, candidate in headers.items():
            if name.lower() == wanted:
                return candidate
    return value


def check_api_key(
    api_key: str | None, secret_for: Callable[[str], str | None]
) -> tuple[str, str]:
    """``(api_key, secret)`` for a present, well-formed and known API key, or raise."""
    if api_key is None or api_key == "":
        raise MissingApiKey("the X-MBX-APIKEY header is missing or empty")
    if len(api_key) > MAX_API_KEY_LENGTH or not _API_KEY_RE.match(api_key):
        raise MalformedApiKey("the API key is not printable ASCII of at most 128 characters")
    secret = secret_for(api_key)
    if secret is None:
        raise UnknownApiKey("no account has that API key")
    return api_key, secret


def api_key_only(headers: Mapping[str, str], secret_for: Callable[[str], str | None]) -> str:
    """Authenticate an API-key-only (USER_STREAM) endpoint such as listenKey; return the key."""
    api_key, _secret = check_api_key(header_api_key(headers), secret_for)
    return api_key


def _timestamp(params: Mapping[str, str]) -> int:
    raw = params.get("timestamp")
    if raw is None or not _INT_RE.match(raw):
        raise MissingParameter("timestamp")
    return int(raw)


def _recv_window(params: Mapping[str, str], default_ms: int, max_ms: int) -> int:
    raw = params.get("recvWindow")
    if raw is None or raw == "":
        return default_ms
    if not _INT_RE.match(raw) or int(raw) <= 0:
        raise MalformedParameter("recvWindow", f"recvWindow must be a positive whole number "
                                               f"of ms, got {raw!r}")
    if int(raw) > max_ms:
        raise RecvWindowTooLarge(f"recvWindow {raw} is above the maximum {max_ms}")
    return int(raw)


def verify_request(
    *,
    query: str | bytes | None,
    body: str | bytes | None,
    headers: Mapping[str, str],
    secret_for: Callable[[str], str | None],
    now_ms: int | Sequence[int],
    default_recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
    max_recv_window_ms: int = MAX_RECV_WINDOW_MS,
) -> SignedRequest:
    """Authenticate a SIGNED (TRADE / USER_DATA) request, or raise a SigningError.

    Checks in Binance's order: API key present, well formed and known; parameters parse;
    ``timestamp`` present; ``recvWindow`` valid; the timestamp fresh against ``now_ms`` (or
    against any one of several clocks);
    finally the signature (constant-time compare). ``secret_for`` maps an API key to its
    secret (None when unknown).
    """
    api_key, secret = check_api_key(header_api_key(headers), secret_for)
    params = parse_params(query, body)
    payload, signature = signed_payload(query, body)
    params.pop("signature", None)
    timestamp_ms = _timestamp(params)
    recv_window_ms = _recv_window(params, default_recv_window_ms, max_recv_window_ms)
    check_freshness_any(timestamp_ms, recv_window_ms,
                        [now_ms] if isinstance(now_ms, int) else list(now_ms))
    if not _HEX64_RE.match(signature):
        raise BadSignature("the signature is not 64 hex digits")
    expected = sign(payload, secret)
    if not hmac.compare_digest(expected, signature.lower()):
        raise BadSignature("the signature does not match the request under this key's secret")
    return SignedRequest(
        api_key=api_key, params=params, timestamp_ms=timestamp_ms, recv_window_ms=recv_window_ms
    )
