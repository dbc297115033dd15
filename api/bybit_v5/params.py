"""Request parameters of the v5 API and the authenticated-call dependency.

GET parameters come from the query string, POST parameters from the JSON body (ccxt and pybit
send numbers as strings or numbers, booleans as JSON booleans). The getters check the way Bybit
does and raise domain errors that api/bybit_v5/errors.py turns into 10001 with a message naming
the parameter. ``category`` must be ``inverse``: perpsim's instruments are coin-margined.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from perpsim.api.auth import secret_lookup
from perpsim.api.bybit_v5.signing import verify_request
from perpsim.api.deps import AuthenticatedCall, query_text
from perpsim.api.params_base import ParamReader
from perpsim.api.state import ServerState
from perpsim.sim.errors import InvalidInput
from perpsim.sim.exchange import Exchange

CATEGORY = "inverse"
OTHER_CATEGORIES = ("linear", "spot", "option")
_INT_RE = re.compile(r"^-?[0-9]{1,19}$")


class Params(ParamReader):
    """One request's parameters with Bybit-strict typed getters."""

    def get(self, name: str) -> str | None:
        """The value as text (JSON booleans as true / false); absent, null and empty count as
        absent."""
        value = self.raw.get(name)
        if isinstance(value, bool):
            return "true" if value else "false"
        return super().get(name)

    def missing(self, name: str) -> Exception:
        """10001: a mandatory parameter not sent."""
        return InvalidInput(f"{name} is required")

    def serves_category(self) -> bool:
        """For list endpoints: True for ``inverse``; False for Bybit's other categories (the
        answer is then an empty list, as Bybit gives an account with nothing there)."""
        value = self.required("category")
        if value in OTHER_CATEGORIES:
            return False
        self.category()
        return True

    def category(self, *, required: bool = True) -> None:
        """``category`` is ``inverse`` (the only one perpsim serves)."""
        value = self.required("category") if required else self.get("category")
        if value is not None and value != CATEGORY:
            raise InvalidInput(f"category {value!r} is not served here; perpsim lists "
                               f"coin-margined contracts under category={CATEGORY}")

    def integer(self, name: str, *, required: bool = False, minimum: int = 0,
                maximum: int = 2**63 - 1) -> int | None:
        """A whole number within [minimum, maximum]."""
        value = self.required(name) if required else self.get(name)
        if value is None:
            return None
        if not _INT_RE.match(value) or not minimum <= int(value) <= maximum:
            raise InvalidInput(f"{name} must be a whole number in [{minimum}, {maximum}], "
                               f"got {value!r}")
        return int(value)

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        """A finite decimal."""
        value = self.required(name) if required else self.get(name)
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise InvalidInput(f"{name} must be a decimal number, got {value!r}")
        return number

    def boolean(self, name: str, default: bool = False) -> bool:
        """``true``/``false`` (JSON or text); ``1``/``0`` as pybit users sometimes send."""
        value = self.get(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise InvalidInput(f"{name} must be true or false, got {value!r}")
        return lowered in ("true", "1")

    def choice(self, name: str, options: Sequence[str], *, default: str | None = None,
               required: bool = False) -> str | None:
        """One of ``options`` exactly."""
        value = self.required(name) if required else self.get(name)
        if value is None:
            return default
        if value not in options:
            raise InvalidInput(f"{name} must be one of {', '.join(options)}, got {value!r}")
        return value

    def limit(self, default: int, maximum: int) -> int:
        """``limit``: 1..maximum, ``default`` when absent."""
        value = self.integer("limit", minimum=1, maximum=maximum)
        return default if value is None else value

    def cursor(self) -> int:
        """The opaque ``cursor`` perpsim hands out: an offset into the result list."""
        value = self.get("cursor")
        if value is None:
            return 0
        if not value.isdigit():
            raise InvalidInput(f"cursor {value!r} was not issued by this server")
        return int(value)

    def time_range(self) -> tuple[int | None, int | None]:
        """``startTime`` / ``endTime`` (epoch ms) in order."""
        start, end = self.integer("startTime"), self.integer("endTime")
        if start is not None and end is not None and start > end:
            raise InvalidInput("startTime is after endTime")
        return start, end


def page(rows: list[dict[str, Any]], params: Params, default: int, maximum: int
         ) -> tuple[list[dict[str, Any]], str]:
    """One page of ``rows`` (newest first) and the cursor of the next ("" when none)."""
    offset = params.cursor()
    limit = params.limit(default, maximum)
    chosen = rows[offset:offset + limit]
    more = offset + limit < len(rows)
    return chosen, str(offset + limit) if more else ""


def query_params(request: Request, ex: Exchange) -> Params:
    """A public GET's parameters (a repeated name is refused)."""
    raw: dict[str, str] = {}
    for name, value in parse_qsl(query_text(request), keep_blank_values=True):
        if name in raw:
            raise InvalidInput(f"parameter {name!r} was sent more than once")
        raw[name] = value
    return Params(raw, ex)


# An authenticated private request with this dialect's parameter reader.
Call = AuthenticatedCall[Params]


async def private_call(request: Request) -> Call:
    """Authenticate (X-BAPI-* headers, wall-clock freshness) before reading any parameter."""
    state: ServerState = request.app.state.perpsim
    ex = state.exchange
    body = await request.body()
    api_key = verify_request(method=request.method, query=query_text(request), body=body,
                             headers=request.headers, secret_for=secret_lookup(ex),
                             now_ms=(ex.now_ms, state.wall_ms()))
    state.follow_wall_clock()
    account = ex.account_by_api_key(api_key)
    assert account is not None  # verify_request found its secret
    if request.method.upper() == "GET":
        params = query_params(request, ex)
    else:
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            raise InvalidInput("the body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise InvalidInput("the body must be a JSON object")
        params = Params(parsed, ex)
    return AuthenticatedCall(state, account.account_id, params)


Private = Annotated[Call, Depends(private_call)]


async def public_params(request: Request) -> Params:
    """The state brought up to the wall clock, then the query's parameters.

    ``async`` on purpose, as api/deps.py's ``get_state``: FastAPI runs a plain ``def``
    dependency in a worker thread, where it would advance the engine concurrently with the
    realtime clock task (and every public Bybit request would pay the hop to the pool)."""
    state: ServerState = request.app.state.perpsim
    state.follow_wall_clock()
    return query_params(request, state.exchange)


Public = Annotated[Params, Depends(public_params)]
