"""The venue-wide endpoints a COIN-M client touches outside ``/dapi``.

python-binance's ``Client()`` pings ``/api/v3/ping`` on construction and ``AsyncClient.create()``
reads ``/api/v3/time`` to compute its timestamp offset; ccxt's ``fetch_status`` reads
``/sapi/v1/system/status``. They answer what Binance answers; the time is the server time the
venue reports everywhere (simulated), the same as ``/dapi/v1/time``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from perpsim.api.deps import State

router = APIRouter(tags=["binance venue"])


@router.get("/api/v3/ping")
async def spot_ping() -> dict[str, Any]:
    """Connectivity check (Binance answers an empty object)."""
    return {}


@router.get("/api/v3/time")
async def spot_time(state: State) -> dict[str, int]:
    """The server time (simulated, like ``/dapi/v1/time``)."""
    return {"serverTime": state.exchange.now_ms}


@router.get("/sapi/v1/system/status")
async def system_status() -> dict[str, Any]:
    """Binance's documented shape: 0 normal, 1 system maintenance.

    perpsim has no maintenance of its own; a fault-injected outage (api/faults.py) answers
    before this route is reached.
    """
    return {"status": 0, "msg": "normal"}
