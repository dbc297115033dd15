"""Hedge mode over the Binance COIN-M dialect, driven by the REAL ccxt 4.5.90.

Binance: ``POST /dapi/v1/positionSide/dual`` (dualSidePosition true = hedge mode) is refused with
-4059 "No need to change position side.", -4067 when open orders exist and -4068 when a
position exists; in hedge mode orders carry ``positionSide`` LONG or SHORT, positionRisk has a
row per leg, and the user stream's position rows carry ``ps``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import ccxt
import pytest
from ccxt.test.exchange.base.test_position import test_position as check_position
from test_api_account import (
    MARKET_ID,
    MODES,
    SYMBOL,
    Client,
    assert_binance_error,
    client_factory,
    control_account,
    journal,
    signed,
)
from test_api_streams import assert_no_stream_errors, pro, raw, run, user_stream_open, within

from conftest import Market


@pytest.fixture
def clients(market: Market) -> Iterator[Callable[..., Client]]:
    """ccxt clients on the live market (closed at teardown)."""
    yield from client_factory(market)


@pytest.mark.parametrize("mode", MODES)
def test_set_position_mode_and_trade_both_legs_through_ccxt(
        market: Market, clients: Callable[..., Client], mode: str) -> None:
    creds = market.account({"BTC": "1"})
    client = clients(creds, mode)
    client.set_position_mode(True)
    assert signed(market, creds, "GET", "/dapi/v1/positionSide/dual").json() == {
        "dualSidePosition": True}
    client.create_order(SYMBOL, "market", "buy", 2000, params={"positionSide": "LONG"})
    client.create_order(SYMBOL, "market", "sell", 800, params={"positionSide": "SHORT"})
    positions = sorted(client.fetch_positions([SYMBOL]), key=lambda p: p["side"])
    assert [(p["side"], p["contracts"], p["hedged"]) for p in positions] == [
        ("long", 2000, True), ("short", 800, True)]
    # ccxt derives "collateral" from the liquidation price as if the leg stood alone; the pair
    # shares one price (net long here), so only the LONG leg passes that derivation, as on
    # Binance itself.
    check_position(client.ex, {}, "fetchPositions", positions[0], SYMBOL, client.milliseconds())
    assert [p["info"]["positionSide"] for p in positions] == ["LONG", "SHORT"]
    assert positions[1]["info"]["positionAmt"] == "-800"
    # One liquidation price for the pair (cross): Binance's formula with both legs' terms.
    assert positions[0]["info"]["liquidationPrice"] == positions[1]["info"]["liquidationPrice"]
    view = control_account(market, creds["account_id"])["positions"]
    assert sorted((v["position_side"], v["contracts"]) for v in view) == [
        ("LONG", 2000), ("SHORT", -800)]
    # A SELL on LONG closes the long leg (ccxt's own hedged + reduceOnly maps to it too).
    client.create_order(SYMBOL, "market", "sell", 300, params={"positionSide": "LONG"})
    client.create_order(SYMBOL, "market", "buy", 800, params={"hedged": True, "reduceOnly": True})
    legs = {p["info"]["positionSide"]: p["contracts"] for p in client.fetch_positions([SYMBOL])}
    assert legs == {"LONG": 1700}
    with pytest.raises(ccxt.ExchangeError, match="-4068"):
        client.set_position_mode(False)


def test_position_mode_switching_errors_over_the_wire(market: Market) -> None:
    creds = market.account({"BTC": "1"})
    path = "/dapi/v1/positionSide/dual"
    assert_binance_error(signed(market, creds, "POST", path, {"dualSidePosition": "false"}),
                         -4059)
    order = {"symbol": MARKET_ID, "side": "BUY", "type": "LIMIT", "quantity": "1",
             "price": "59000", "timeInForce": "GTC"}
    assert signed(market, creds, "POST", "/dapi/v1/order", order).status_code == 200
    before = journal(market)
    assert_binance_error(signed(market, creds, "POST", path, {"dualSidePosition": "true"}),
                         -4067)
    assert journal(market) == before
    signed(market, creds, "DELETE", "/dapi/v1/allOpenOrders", {"symbol": MARKET_ID})
    assert signed(market, creds, "POST", path, {"dualSidePosition": "true"}).json() == {
        "code": 200, "msg": "success"}
    # Hedge mode: no positionSide (or BOTH) is -4061, reduceOnly is refused (-4062).
    assert_binance_error(signed(market, creds, "POST", "/dapi/v1/order", order), -4061)
    assert_binance_error(signed(market, creds, "POST", "/dapi/v1/order",
                                {**order, "positionSide": "SHORT", "reduceOnly": "true"}),
                         -4062)
    rows = signed(market, creds, "GET", "/dapi/v1/positionRisk", {"symbol": MARKET_ID}).json()
    assert [r["positionSide"] for r in rows] == ["LONG", "SHORT"]
    hedged = {**order, "type": "MARKET", "positionSide": "SHORT", "side": "SELL"}
    del hedged["price"], hedged["timeInForce"]
    assert signed(market, creds, "POST", "/dapi/v1/order", hedged).status_code == 200
    # The dashboard's positions table reads the snapshot's rows: one per leg, side named.
    snapshot = market.control.get("/ui/api/snapshot", params={"history": "false"}).json()
    [mine] = [a for a in snapshot["accounts"] if a["account_id"] == creds["account_id"]]
    assert [(p["symbol"], p["position_side"], p["contracts"]) for p in mine["positions"]] == [
        (MARKET_ID, "SHORT", -1)]
    account = signed(market, creds, "GET", "/dapi/v1/account").json()
    assert {(p["symbol"], p["positionSide"]) for p in account["positions"]} >= {
        (MARKET_ID, "LONG"), (MARKET_ID, "SHORT")}


def test_user_stream_position_rows_name_the_leg(market: Market) -> None:
    creds = market.account({"BTC": "1"})

    async def scenario() -> None:
        async with pro(market, creds) as ex:
            await within(ex.set_position_mode(True, SYMBOL))
            key = (await within(ex.dapiPrivatePostListenKey()))["listenKey"]
            async with raw(market, key) as user:
                await user_stream_open(market, creds["account_id"])()
                await within(ex.create_order(SYMBOL, "market", "buy", 5,
                                             params={"positionSide": "LONG"}))
                await within(ex.create_order(SYMBOL, "market", "sell", 2,
                                             params={"positionSide": "SHORT"}))
                frames = await user.drain()
        updates = [f["a"]["P"][0] for f in frames
                   if f["e"] == "ACCOUNT_UPDATE" and f["a"]["m"] == "ORDER"]
        assert [(u["ps"], u["pa"]) for u in updates] == [("LONG", "5"), ("SHORT", "-2")]
        orders = [f["o"] for f in frames if f["e"] == "ORDER_TRADE_UPDATE"]
        assert {o["ps"] for o in orders} == {"LONG", "SHORT"}

    run(scenario())
    assert_no_stream_errors(market)
