"""Bybit v5 request authentication: ``X-BAPI-*`` headers, HMAC-SHA256, independent of FastAPI.

``X-BAPI-SIGN = hex(HMAC_SHA256(secret, timestamp + apiKey + recvWindow + payload))`` where the
payload is the raw query string of a GET and the raw JSON body of a POST, exactly as sent
(ccxt 4.5.90 and pybit 5.17 both sign what they send). Freshness is Bybit's rule, the same as
Binance's: ``now − recvWindow ≤ timestamp < now + 1000``, against any of the clocks the caller
passes (the reported server time or the wall clock, as the Binance dialect accepts).
Failures are the shared :mod:`perpsim.api.auth` error classes, so api/bybit_v5/errors.py maps
them to retCodes 10002-10004 in one table. WebSocket auth signs ``"GET/realtime" +
expires``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping, Sequence

from perpsim.api.auth import (
    MAX_API_KEY_LENGTH,
    BadSignature,
    MalformedApiKey,
    MalformedParameter,
    MissingApiKey,
    MissingParameter,
    RecvWindowTooLarge,
    TimestampExpired,
    UnknownApiKey,
    check_freshness_any,
    sign,
)

API_KEY_HEADER = "X-BAPI-API-KEY"
TIMESTAMP_HEADER = "X-BAPI-TIMESTAMP"
SIGN_HEADER = "X-BAPI-SIGN"
RECV_WINDOW_HEADER = "X-BAPI-RECV-WINDOW"
DEFAULT_RECV_WINDOW_MS = 5000  # Bybit's default when the header is absent
MAX_RECV_WINDOW_MS = 60000
WS_AUTH_PREFIX = "GET/realtime"

_API_KEY_RE = re.compile(r"^[\x21-\x7e]+$")
_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_INT_RE = re.compile(r"^[0-9]{1,19}$")

__all__ = ["sign", "verify_request", "verify_ws_auth"]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        for key, candidate in headers.items():
            if key.lower() == wanted:
                return candidate
    return value


def _known_key(api_key: str | None, secret_for: Callable[[str], str | None]) -> tuple[str, str]:
    if not api_key:
        raise MissingApiKey(f"the {API_KEY_HEADER} header is missing or empty")
    if len(api_key) > MAX_API_KEY_LENGTH or not _API_KEY_RE.match(api_key):
        raise MalformedApiKey("the API key is not printable ASCII of at most 128 characters")
    secret = secret_for(api_key)
    if secret is None:
        raise UnknownApiKey("API key is invalid.")
    return api_key, secret


def _check_signature(payload: str, signature: str | None, secret: str) -> None:
    if not signature or not _HEX64_RE.match(signature):
        raise BadSignature("error sign! the X-BAPI-SIGN header is not 64 hex digits")
    if not hmac.compare_digest(sign(payload, secret), signature.lower()):
        raise BadSignature("error sign! the signature does not match timestamp + api_key + "
                           "recv_window + payload under this key's secret")


def verify_request(*, method: str, query: str, body: bytes, headers: Mapping[str, str],
                   secret_for: Callable[[str], str | None], now_ms: int | Sequence[int]) -> str:
    """Authenticate a private v5 request; return its API key or raise a SigningError."""
    api_key, secret = _known_key(_header(headers, API_KEY_HEADER), secret_for)
    raw_ts = _header(headers, TIMESTAMP_HEADER)
    if raw_ts is None or not _INT_RE.match(raw_ts):
        raise MissingParameter(TIMESTAMP_HEADER, f"the {TIMESTAMP_HEADER} header is missing "
                               "or not a whole number of ms")
    raw_window = _header(headers, RECV_WINDOW_HEADER)
    window = DEFAULT_RECV_WINDOW_MS
    if raw_window:
        if not _INT_RE.match(raw_window) or int(raw_window) <= 0:
            raise MalformedParameter(RECV_WINDOW_HEADER, f"{RECV_WINDOW_HEADER} must be a "
                                     f"positive whole number of ms, got {raw_window!r}")
        window = int(raw_window)
        if window > MAX_RECV_WINDOW_MS:
            raise RecvWindowTooLarge(f"recv_window {window} is above {MAX_RECV_WINDOW_MS}")
    check_freshness_any(int(raw_ts), window, _clocks(now_ms))
    payload = query if method.upper() in ("GET", "DELETE") else body.decode("utf-8", "replace")
    _check_signature(raw_ts + api_key + (raw_window or "") + payload,
                     _header(headers, SIGN_HEADER), secret)
    return api_key


def _clocks(now_ms: int | Sequence[int]) -> list[int]:
    return [now_ms] if isinstance(now_ms, int) else list(now_ms)


def verify_ws_auth(args: object, secret_for: Callable[[str], str | None],
                   now_ms: int | Sequence[int]) -> str:
    """Check ``{"op": "auth", "args": [apiKey, expires, signature]}``; return the API key."""
    if not isinstance(args, list) or len(args) != 3:
        raise MissingParameter("args", "auth takes args [apiKey, expires, signature]")
    api_key, expires, signature = (str(a) for a in args)
    api_key, secret = _known_key(api_key, secret_for)
    if not _INT_RE.match(expires):
        raise MissingParameter("expires", "expires must be a whole number of ms")
    if all(int(expires) <= now for now in _clocks(now_ms)):
        raise TimestampExpired(f"auth expires {expires} is in the past (server {now_ms})")
    _check_signature(WS_AUTH_PREFIX + expires, signature, secret)
    return api_key
