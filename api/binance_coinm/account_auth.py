"""Signed-request authentication and strict parameter parsing for the private COIN-M endpoints.

Every private route depends on :data:`Signed` and nothing else, so the Binance HMAC check
(api/binance_coinm/signing.py) runs before any parameter is looked at. The parameters are then
read from the
exact signed query string (GET/DELETE) or form body (POST/PUT) through :class:`Params`, whose
getters check types the way Binance does: a malformed number is −1100, a missing mandatory
parameter −1102, an unknown symbol −1121, an unusable value −1130 (api/binance_coinm/errors.py).
The API-key-only endpoints (listenKey) use :data:`KeyOnly`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated

from fastapi import Depends, Request

from perpsim.api.auth import secret_lookup
from perpsim.api.binance_coinm.signing import (
    MalformedParameter,
    MissingParameter,
    api_key_only,
    verify_request,
)
from perpsim.api.deps import AuthenticatedCall, query_text
from perpsim.api.params_base import ParamReader
from perpsim.api.state import ServerState
from perpsim.sim.errors import InvalidInput

# Binance's own patterns for numeric parameters (quoted in its −1100 messages).
_DECIMAL_RE = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
_INT_RE = re.compile(r"^[0-9]{1,20}$")
MAX_MS = 2**63 - 1


class Params(ParamReader):
    """The signed parameters of one request, with Binance-strict typed getters (a missing
    one is −1102, an unknown symbol −1121)."""

    def missing(self, name: str) -> Exception:
        """−1102: mandatory parameter not sent."""
        return MissingParameter(name)

    def integer(self, name: str, *, required: bool = False, minimum: int = 0,
                maximum: int = MAX_MS) -> int | None:
        """A whole number in [minimum, maximum] (−1100 if not digits, −1130 out of range)."""
        value = self.required(name) if required else self.get(name)
        if value is None:
            return None
        if not _INT_RE.match(value):
            raise MalformedParameter(name)
        number = int(value)
        if not minimum <= number <= maximum:
            raise InvalidInput(f"Data sent for parameter '{name}' is not valid: {value} is "
                               f"outside [{minimum}, {maximum}].")
        return number

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        """A non-negative decimal in Binance's plain notation (−1100 otherwise)."""
        value = self.required(name) if required else self.get(name)
        if value is None:
            return None
        if not _DECIMAL_RE.match(value):
            raise MalformedParameter(name)
        return Decimal(value)

    def boolean(self, name: str, default: bool = False) -> bool:
        """``true`` / ``false`` (any case); anything else is −1130."""
        value = self.get(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise InvalidInput(f"Data sent for parameter '{name}' is not valid.")
        return lowered == "true"

    def choice(self, name: str, options: Sequence[str], *, default: str | None = None,
               required: bool = False, message: str | None = None) -> str | None:
        """One of ``options`` exactly (−1130 with ``message`` otherwise)."""
        value = self.required(name) if required else self.get(name)
        if value is None:
            return default
        if value not in options:
            raise InvalidInput(message or f"Data sent for parameter '{name}' is not valid.")
        return value

    def limit(self, default: int, maximum: int) -> int:
        """The ``limit`` parameter: 1..maximum, ``default`` when absent."""
        value = self.integer("limit", minimum=1, maximum=maximum)
        return default if value is None else value

    def time_range(self) -> tuple[int | None, int | None]:
        """``startTime`` and ``endTime`` (epoch ms), checked to be in order."""
        start, end = self.integer("startTime"), self.integer("endTime")
        if start is not None and end is not None and start > end:
            raise InvalidInput("Start time is greater than end time.")
        return start, end

    def position_side(self) -> str | None:
        """``positionSide`` as sent (None when absent); the engine checks it against the
        account's position mode (−4060 unknown side, −4061 wrong for the mode)."""
        return self.get("positionSide")


# An authenticated private request with this dialect's parameter reader.
Call = AuthenticatedCall[Params]


async def signed_call(request: Request) -> Call:
    """Authenticate a SIGNED request before anything else.

    Fresh means within recvWindow of the server time ``/dapi/v1/time`` reports (simulated
    time: what a client that syncs its clock signs with) or of the wall clock (what a client
    that never syncs signs with) — docs/dialect-notes.md "Clock".
    """
    state: ServerState = request.app.state.perpsim
    ex = state.exchange
    signed = verify_request(query=query_text(request), body=await request.body(),
                            headers=request.headers, secret_for=secret_lookup(ex),
                            now_ms=(ex.now_ms, state.wall_ms()))
    state.follow_wall_clock()
    account = ex.account_by_api_key(signed.api_key)
    assert account is not None  # verify_request found its secret
    return AuthenticatedCall(state, account.account_id, Params(signed.params, state.exchange))


async def key_only_call(request: Request) -> Call:
    """Authenticate an API-key-only (USER_STREAM) request such as listenKey."""
    state: ServerState = request.app.state.perpsim
    ex = state.exchange
    api_key = api_key_only(request.headers, secret_lookup(ex))
    account = ex.account_by_api_key(api_key)
    assert account is not None
    return AuthenticatedCall(state, account.account_id, Params({}, ex))


Signed = Annotated[Call, Depends(signed_call)]
KeyOnly = Annotated[Call, Depends(key_only_call)]
