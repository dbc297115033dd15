"""What every router shares: the state dependency and how numbers go on the wire."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import Depends, Request

from perpsim.api.state import ServerState


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


def dec(value: Decimal | int | None, places: int | None = None) -> str:
    """A Decimal as Binance writes it: plain digits, fixed ``places`` if given ("0" for None)."""
    if value is None:
        return "0" if places is None else format(Decimal(0), f".{places}f")
    d = Decimal(value)
    if not d.is_finite():
        return "0"
    if places is not None:
        return format(d.quantize(Decimal(1).scaleb(-places)), "f")
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
