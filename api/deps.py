"""What every router shares: the state dependency, the authenticated call, and how numbers go
on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Request

from perpsim.api.state import ServerState
from perpsim.sim.exchange import Exchange

ParamsT = TypeVar("ParamsT")


async def get_state(request: Request) -> ServerState:
    """The server's state (realtime mode: brought up to the wall clock first).

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, where it
    would advance the engine concurrently with the realtime clock task on the event loop (and
    every request would pay a hop to the thread pool: an in-process dry run takes less than
    half the time without it).
    """
    state: ServerState = request.app.state.perpsim
    state.follow_wall_clock()
    return state


State = Annotated[ServerState, Depends(get_state)]

# What Starlette's URL parsing removes from, or splits off, a query string.
_URL_SPECIAL = frozenset("#\t\r\n")


def query_text(request: Request) -> str:
    """``request.url.query`` without building the URL (a signed request reads it every
    time): the raw query string, decoded as Starlette decodes it. A query holding a character
    Starlette's URL parsing treats specially (a ``#``, tab or newline) goes through it."""
    text: str = request.scope.get("query_string", b"").decode()
    if not _URL_SPECIAL.isdisjoint(text):
        return request.url.query
    return text


# Not slots: calling the alias AuthenticatedCall[Params](...) sets __orig_class__, which a
# frozen slots class refuses with a TypeError (a frozen plain one with the AttributeError
# typing expects). The dependencies build it with the bare class (the type checker infers the
# parameter): the alias's call costs more than the dataclass itself, on every private request.
@dataclass(frozen=True)
class AuthenticatedCall(Generic[ParamsT]):
    """An authenticated private request: the server, the caller's account, its parameters
    (in the dialect's own reader: ``AuthenticatedCall[Params]``)."""

    state: ServerState
    account_id: str
    params: ParamsT

    @property
    def ex(self) -> Exchange:
        """The live exchange."""
        return self.state.exchange


# Decimals of a price that needs more than its instrument's (an average fill price).
AVERAGE_PRICE_PLACES = 8

# 10**-places, made once: a serialiser writes a dozen decimals per row, a hedge ~12,000.
_QUANTUM = {places: Decimal(1).scaleb(-places) for places in range(32)}


def _quantum(places: int) -> Decimal:
    found = _QUANTUM.get(places)
    return Decimal(1).scaleb(-places) if found is None else found


def price_digits(value: Decimal | None, price_precision: int) -> str | None:
    """A price with ``price_precision`` decimals, or AVERAGE_PRICE_PLACES when it needs more
    (averages); None for none or a non-finite value (each dialect writes that its own way)."""
    if value is None or not value.is_finite():
        return None
    places = price_precision
    if value != value.quantize(_quantum(places)):
        places = AVERAGE_PRICE_PLACES
    return dec(value, places)


def dec(value: Decimal | int | None, places: int | None = None) -> str:
    """A Decimal as Binance writes it: plain digits, fixed ``places`` if given ("0" for None)."""
    if value is None:
        return "0" if places is None else format(Decimal(0), f".{places}f")
    d = value if type(value) is Decimal else Decimal(value)
    if not d.is_finite():
        return "0"
    if places is not None:
        return format(d.quantize(_quantum(places)), "f")
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
