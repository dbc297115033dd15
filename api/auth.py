"""Request authentication shared by every dialect: the failure classes, HMAC-SHA256 and the
freshness rule. Each dialect's own signing (api/binance_coinm/signing.py,
api/bybit_v5/signing.py) decides what is signed and where the key travels, and its error
table maps these classes to its wire codes. Nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perpsim.sim.exchange import Exchange

# A timestamp this far or more ahead of the server's clock is refused, whatever the window
# (Binance's and Bybit's rule alike).
MAX_AHEAD_MS = 1000
MAX_API_KEY_LENGTH = 128


class SigningError(Exception):
    """Base of every authentication failure; ``str(exc)`` explains it for a log."""


class MissingApiKey(SigningError):
    """No (or an empty) X-MBX-APIKEY header on an endpoint that needs one."""


class MalformedApiKey(SigningError):
    """An API key that cannot be a key (too long, spaces, non-ASCII)."""


class UnknownApiKey(SigningError):
    """A well-formed API key that no account holds."""


class MissingParameter(SigningError):
    """A mandatory parameter (``timestamp`` or ``signature``) absent, empty or malformed."""

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        super().__init__(detail or f"mandatory parameter {name!r} missing or malformed")


class MalformedParameter(SigningError):
    """An optional parameter with an unusable value (e.g. ``recvWindow=abc``)."""

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        super().__init__(detail or f"parameter {name!r} has an illegal value")


class DuplicateParameter(SigningError):
    """The same parameter sent twice (Binance refuses rather than guess which counts)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"parameter {name!r} was sent more than once")


class BadSignature(SigningError):
    """The signature is not the HMAC of the payload under the key's secret."""


class TimestampAhead(SigningError):
    """``timestamp`` is ``MAX_AHEAD_MS`` or more ahead of the server clock."""


class TimestampExpired(SigningError):
    """``timestamp`` is older than ``recvWindow`` milliseconds."""


class RecvWindowTooLarge(SigningError):
    """``recvWindow`` above ``MAX_RECV_WINDOW_MS``."""


# HMAC keyed once per secret (the key schedule is a third of a short payload's cost); a copy
# signs each request. Bounded: emptied when this many secrets were seen.
_KEYED: dict[str, Any] = {}
_KEYED_MAX = 4096


def sign(payload: str | bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` keyed with ``secret`` (what a client appends)."""
    data = payload.encode() if isinstance(payload, str) else payload
    keyed = _KEYED.get(secret)
    if keyed is None:
        if len(_KEYED) >= _KEYED_MAX:
            _KEYED.clear()
        keyed = _KEYED[secret] = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    mac = keyed.copy()
    mac.update(data)
    return str(mac.hexdigest())


def check_freshness(timestamp_ms: int, recv_window_ms: int, now_ms: int) -> None:
    """Binance's rule: ``timestamp < now + 1000`` and ``now − timestamp ≤ recvWindow``."""
    if timestamp_ms >= now_ms + MAX_AHEAD_MS:
        raise TimestampAhead(
            f"timestamp {timestamp_ms} is {timestamp_ms - now_ms} ms ahead of the server "
            f"time {now_ms}"
        )
    if now_ms - timestamp_ms > recv_window_ms:
        raise TimestampExpired(
            f"timestamp {timestamp_ms} is {now_ms - timestamp_ms} ms old, more than the "
            f"recvWindow of {recv_window_ms} ms (server time {now_ms})"
        )


def check_freshness_any(timestamp_ms: int, recv_window_ms: int, clocks_ms: Sequence[int]) -> None:
    """Fresh against at least one of ``clocks_ms``; else the error against the nearest clock.

    The nearest clock is the one the client most likely meant (a client that synced to the
    server time, or one that signs with its own wall clock), so its error explains the most.
    """
    if not clocks_ms:
        raise ValueError("check_freshness_any needs at least one clock")
    errors: list[SigningError] = []
    for now_ms in clocks_ms:
        try:
            check_freshness(timestamp_ms, recv_window_ms, now_ms)
        except (TimestampAhead, TimestampExpired) as exc:
            errors.append(exc)
        else:
            return
    nearest = min(range(len(clocks_ms)), key=lambda i: abs(clocks_ms[i] - timestamp_ms))
    raise errors[nearest]


def secret_lookup(ex: Exchange) -> Callable[[str], str | None]:
    """The secret of an API key on ``ex`` (None for a key no account holds), for a verifier."""

    def lookup(api_key: str) -> str | None:
        account = ex.account_by_api_key(api_key)
        return None if account is None else account.api_secret

    return lookup
