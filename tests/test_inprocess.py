"""The in-process transport: the unmodified async ccxt client and an httpx control-plane client
reach a perpsim app with no socket, and see what they would see over the wire — the same
answers, the same Binance errors, the same signed-request checks."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt
import httpx
import pytest

from perpsim.api.app import create_app
from perpsim.api.state import ServerConfig
from perpsim.inprocess import IN_PROCESS_BASE, AsgiHttpxTransport, AsgiSession
from perpsim.strategy.connect import connect

SYMBOL = "BTC/USD:BTC"


async def _session(app: Any) -> dict[str, Any]:
    """Fund an account through the control plane, then trade and fail through ccxt."""
    seen: dict[str, Any] = {}
    session = AsgiSession(app)
    async with httpx.AsyncClient(base_url=IN_PROCESS_BASE,
                                 transport=AsgiHttpxTransport(app)) as http:
        account = (await http.post("/control/accounts",
                                   json={"balances": {"BTC": "0.01"}})).json()
        seen["bad_body"] = (await http.post("/control/accounts", content=b"{")).status_code
        ex = connect(IN_PROCESS_BASE, account["api_key"], account["api_secret"], mode="async",
                     config={"session": session, "timeout_on_exit": 0})
        try:
            await ex.load_markets()
            order = await ex.create_order(SYMBOL, "market", "sell", 2)
            seen["filled"] = order["filled"]
            positions = await ex.fetch_positions([SYMBOL])
            seen["contracts"] = [p["contracts"] for p in positions if p["contracts"]]
            for name, call in (
                    ("margin", lambda: ex.create_order(SYMBOL, "market", "sell", 1000)),
                    ("post_only", lambda: ex.create_order(SYMBOL, "limit", "buy", 1, 61000,
                                                          {"postOnly": True})),
                    ("unknown_order", lambda: ex.fetch_order("424242", SYMBOL))):
                try:
                    await call()
                except ccxt.BaseError as error:
                    seen[name] = (type(error).__name__, str(error))
            ex.secret = "not-the-secret"
            try:
                await ex.fetch_balance()
            except ccxt.BaseError as error:
                seen["bad_signature"] = (type(error).__name__, str(error))
        finally:
            await ex.close()
    seen["requests"] = session.requests
    seen["session_closed"] = session.closed
    return seen


def test_ccxt_trades_and_fails_in_process_as_over_the_wire() -> None:
    app = create_app(ServerConfig(scenario="manual", clock="stepped"))
    seen = asyncio.run(_session(app))
    assert seen["filled"] == 2
    assert seen["contracts"] == [2]
    assert seen["bad_body"] == 400
    assert seen["margin"][0] == "InsufficientFunds"
    assert "-2019" in seen["margin"][1]
    assert "-5022" in seen["post_only"][1]
    assert seen["unknown_order"][0] == "OrderNotFound"
    assert "-2013" in seen["unknown_order"][1]
    assert seen["bad_signature"][0] == "AuthenticationError"
    assert "-1022" in seen["bad_signature"][1]
    assert seen["requests"] >= 7
    assert seen["session_closed"] is False  # ccxt leaves a session it was given alone


def test_an_app_that_never_answers_is_an_error_not_a_hang() -> None:
    from perpsim.inprocess import InProcessError, call_app

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    with pytest.raises(InProcessError, match="GET /dapi/v1/ping: the app returned without"):
        asyncio.run(call_app(silent, "GET", "/dapi/v1/ping", b"", [], b""))
