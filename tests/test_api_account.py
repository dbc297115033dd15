"""Private COIN-M account endpoints, driven by the REAL ccxt 4.5.90 (sync and async) against a
live perpsim server: balances, positions, leverage tiers, leverage, margin mode and isolated
margin, funding history, authentication failures, listen keys, and bad input over the wire.

Order endpoints are in test_api_orders.py, which reuses the helpers here.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import ccxt
import httpx
import pytest
from ccxt.test.exchange.base.test_balance import test_balance as check_balance
from ccxt.test.exchange.base.test_leverage_tier import test_leverage_tier as check_tier
from ccxt.test.exchange.base.test_position import test_position as check_position

from perpsim.api.binance_coinm.signing import sign
from perpsim.strategy.connect import connect

from conftest import START_MS, Market

SYMBOL = "BTC/USD:BTC"
MARKET_ID = "BTCUSD_PERP"
MODES = ("sync", "async")
HOUR_MS = 3_600_000


class Client:
    """A ccxt binancecoinm in sync or async mode behind one synchronous interface."""

    def __init__(self, market: Market, creds: dict[str, str], mode: str = "sync",
                 secret: str | None = None) -> None:
        self.mode = mode
        self.ex = connect(market.base_url, creds["api_key"], secret or creds["api_secret"],
                          mode=mode)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop() if mode == "async" else None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.ex, name)
        if self.loop is None or not callable(attr):
            return attr
        loop = self.loop

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            return loop.run_until_complete(result) if inspect.isawaitable(result) else result

        return call

    def close(self) -> None:
        """Release the HTTP session (and the event loop)."""
        if self.loop is None:
            self.ex.session.close()
        else:
            self.loop.run_until_complete(self.ex.close())
            self.loop.close()


def client_factory(market: Market) -> Iterator[Callable[..., Client]]:
    """A factory of ccxt clients on the live market; all closed at teardown."""
    made: list[Client] = []

    def make(creds: dict[str, str], mode: str = "sync", secret: str | None = None) -> Client:
        client = Client(market, creds, mode, secret)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def clients(market: Market) -> Iterator[Callable[..., Client]]:
    """ccxt clients on the live market (closed at teardown)."""
    yield from client_factory(market)


def control_account(market: Market, account_id: str) -> dict[str, Any]:
    """GET /control/accounts/{id}."""
    response = market.control.get(f"/control/accounts/{account_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def journal(market: Market) -> list[dict[str, Any]]:
    """Every journal event."""
    text = market.control.get("/control/journal").text
    return [json.loads(line) for line in text.splitlines()]


def signed(market: Market, creds: dict[str, str], method: str, path: str,
           params: dict[str, Any] | str = "", *, timestamp: int | None = None) -> httpx.Response:
    """A raw Binance-signed request (query for GET/DELETE, form body for POST/PUT).

    ``params`` as a string goes on the wire verbatim (for malformed input).
    """
    query = params if isinstance(params, str) else urlencode(params)
    stamp = timestamp if timestamp is not None else int(market.state.wall_ms())
    payload = "&".join(part for part in (f"timestamp={stamp}", query, "recvWindow=10000")
                       if part)
    payload += "&signature=" + sign(payload, creds["api_secret"])
    headers = {"X-MBX-APIKEY": creds["api_key"]}
    if method in ("GET", "DELETE"):
        return market.control.request(method, f"{path}?{payload}", headers=headers)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return market.control.request(method, path, content=payload, headers=headers)


def assert_binance_error(response: httpx.Response, code: int | None = None) -> dict[str, Any]:
    """A 4xx answer with Binance's {"code": negative, "msg": text} body."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "msg"}, body
    assert body["code"] < 0, body
    assert body["msg"], body
    if code is not None:
        assert body["code"] == code, body
    return body


def open_position(client: Client, side: str = "buy", amount: int = 100) -> dict[str, Any]:
    """A market order that opens (or moves) a position."""
    order: dict[str, Any] = client.create_order(SYMBOL, "market", side, amount)
    assert order["status"] == "closed"
    return order


# ---- balances and positions ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_fetch_balance_matches_the_control_plane(market: Market, clients: Callable[..., Client],
                                                 mode: str) -> None:
    creds = market.account({"BTC": "2"})
    client = clients(creds, mode)
    fresh = client.fetch_balance()
    assert fresh["BTC"] == {"free": 2.0, "used": 0.0, "total": 2.0}
    open_position(client, "buy", 300)
    client.create_order(SYMBOL, "limit", "buy", 50, 50000)  # reserves order margin
    market.prices("59000", "59000")
    balance = client.fetch_balance()
    check_balance(client.ex, {}, "fetchBalance", balance)
    info = next(a for a in balance["info"]["assets"] if a["asset"] == "BTC")
    view = control_account(market, creds["account_id"])
    assert Decimal(info["walletBalance"]) == Decimal(view["balances"]["BTC"])
    assert Decimal(info["marginBalance"]) == Decimal(view["margin_balance"]["BTC"]).quantize(
        Decimal("1e-8"))
    assert abs(Decimal(info["availableBalance"]) - Decimal(view["available"]["BTC"])) <= Decimal(
        "1e-8")
    assert Decimal(info["unrealizedProfit"]) < 0  # the long lost as the mark fell
    assert Decimal(info["openOrderInitialMargin"]) > 0
    assert balance["BTC"]["total"] == float(info["marginBalance"])
    assert balance["BTC"]["used"] == float(info["initialMargin"])
    assert "ETH" not in balance  # never funded: updateTime 0, which ccxt skips


@pytest.mark.parametrize("mode", MODES)
def test_fetch_positions_pass_ccxts_validator(market: Market, clients: Callable[..., Client],
                                              mode: str) -> None:
    creds = market.account({"BTC": "1"})
    client = clients(creds, mode)
    assert client.fetch_positions() == []  # flat rows carry entryPrice 0: ccxt drops them
    open_position(client, "sell", 2000)  # 3.3 BTC short on 1 BTC: it has a liquidation price
    positions = client.fetch_positions()
    assert len(positions) == 1
    position = positions[0]
    check_position(client.ex, {}, "fetchPositions", position, SYMBOL, client.milliseconds())
    view = control_account(market, creds["account_id"])["positions"][0]
    assert position["side"] == "short"
    assert position["contracts"] == 2000
    assert position["marginMode"] == "cross"
    assert position["leverage"] == 20
    assert Decimal(position["info"]["entryPrice"]) == Decimal(view["entry_price"])
    assert Decimal(position["info"]["liquidationPrice"]) == Decimal(
        view["liquidation_price"]).quantize(Decimal("1e-8"))
    assert position["timestamp"] == START_MS
    assert position["hedged"] is False


def test_isolated_position_margin_add_and_reduce(market: Market,
                                                 clients: Callable[..., Client]) -> None:
    creds = market.account({"BTC": "3"})
    client = clients(creds)
    client.set_margin_mode("isolated", SYMBOL)
    with pytest.raises(ccxt.MarginModeAlreadySet):
        client.set_margin_mode("isolated", SYMBOL)
    client.set_leverage(10, SYMBOL)
    open_position(client, "buy", 600)
    with pytest.raises(ccxt.OperationRejected):  # −4048: a position exists
        client.set_margin_mode("cross", SYMBOL)
    before = Decimal(control_account(market, creds["account_id"])["positions"][0][
        "isolated_margin"])
    position = client.fetch_positions([SYMBOL])[0]
    check_position(client.ex, {}, "fetchPositions", position, SYMBOL, client.milliseconds())
    assert position["marginMode"] == "isolated"
    assert Decimal(position["info"]["isolatedWallet"]) == before
    asset = client.fetch_balance()["info"]["assets"][0]
    cross_wallet = Decimal(control_account(market, creds["account_id"])["balances"]["BTC"])
    assert Decimal(asset["crossWalletBalance"]) == cross_wallet
    assert Decimal(asset["walletBalance"]) == cross_wallet + before  # isolated wallets count
    added = client.add_margin(SYMBOL, 1)
    assert added["type"] == "add"
    assert added["amount"] == 1
    assert added["status"] == "ok"
    # ccxt truncates add_margin amounts to the contract step, so fractions go implicitly
    client.dapiPrivatePostPositionMargin({"symbol": MARKET_ID, "amount": "0.00012345",
                                          "type": 1})
    reduced = client.reduce_margin(SYMBOL, 1)
    assert reduced["type"] == "reduce"
    assert reduced["status"] == "ok"
    after = Decimal(control_account(market, creds["account_id"])["positions"][0][
        "isolated_margin"])
    assert after == before + Decimal("0.00012345")
    history = client.fetch_margin_adjustment_history(SYMBOL)
    assert [(h["type"], h["amount"]) for h in history] == [
        ("add", 1.0), ("add", 0.00012345), ("reduce", 1.0)]
    with pytest.raises(ccxt.InsufficientFunds):
        client.add_margin(SYMBOL, 5)


def test_leverage_tiers_pass_ccxts_validator(market: Market,
                                             clients: Callable[..., Client]) -> None:
    client = clients(market.account())
    tiers = client.fetch_leverage_tiers([SYMBOL])
    assert set(tiers) >= {SYMBOL}
    for tier in tiers[SYMBOL]:
        check_tier(client.ex, {}, "fetchLeverageTiers", tier)
    first = tiers[SYMBOL][0]
    assert (first["maxLeverage"], first["minNotional"], first["maxNotional"]) == (125, 0, 5)
    assert first["maintenanceMarginRate"] == 0.004


@pytest.mark.parametrize("mode", MODES)
def test_set_leverage(market: Market, clients: Callable[..., Client], mode: str) -> None:
    creds = market.account()
    client = clients(creds, mode)
    answer = client.set_leverage(50, SYMBOL)
    assert answer == {"leverage": 50, "maxQty": "20", "symbol": MARKET_ID}
    open_position(client, "buy", 10)
    assert control_account(market, creds["account_id"])["positions"][0]["leverage"] == 50
    assert client.fetch_positions()[0]["leverage"] == 50
    with pytest.raises(ccxt.BadRequest):  # −4028, whatever the bracket allows
        client.dapiPrivatePostLeverage({"symbol": MARKET_ID, "leverage": 126})


@pytest.mark.parametrize("mode", MODES)
def test_funding_history_equals_the_journals_payments(market: Market,
                                                      clients: Callable[..., Client],
                                                      mode: str) -> None:
    creds = market.account({"BTC": "1"})
    client = clients(creds, mode)
    market.advance(1)  # past the 00:00 funding instant the market starts on
    market.prices("60000", "60300")  # a premium: longs pay
    open_position(client, "buy", 500)
    market.advance(8 * HOUR_MS)
    payments = [e for e in journal(market) if e["type"] == "funding.payment"]
    assert len(payments) == 1
    assert Decimal(payments[0]["payload"]["amount"]) < 0
    history = client.fetch_funding_history(SYMBOL, since=START_MS)
    assert [(h["amount"], h["timestamp"], h["code"], h["symbol"]) for h in history] == [
        (float(p["payload"]["amount"]), p["time_ms"], "BTC", SYMBOL) for p in payments]
    rows = signed(market, creds, "GET", "/dapi/v1/income").json()
    assert {r["incomeType"] for r in rows} == {"TRANSFER", "COMMISSION", "FUNDING_FEE"}
    wallet = Decimal(control_account(market, creds["account_id"])["balances"]["BTC"])
    assert sum(Decimal(r["income"]) for r in rows) == wallet


# ---- authentication -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_authentication_failures(market: Market, clients: Callable[..., Client],
                                 mode: str) -> None:
    creds = market.account()
    with pytest.raises(ccxt.AuthenticationError):
        clients(creds, mode, secret="not-the-secret").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError):
        clients({**creds, "api_key": "nobody-has-this-key"}, mode).fetch_positions()
    late = clients(creds, mode)
    late.ex.options["timeDifference"] = 30_000  # the client's clock runs 30 s behind
    with pytest.raises(ccxt.InvalidNonce):
        late.create_order(SYMBOL, "market", "buy", 1)
    assert control_account(market, creds["account_id"])["positions"] == []


def test_listen_key_lifecycle(market: Market) -> None:
    creds = market.account()
    headers = {"X-MBX-APIKEY": creds["api_key"]}
    first = market.control.post("/dapi/v1/listenKey", headers=headers)
    assert first.status_code == 200
    key = first.json()["listenKey"]
    assert market.control.post("/dapi/v1/listenKey", headers=headers).json() == {
        "listenKey": key}
    assert market.control.put("/dapi/v1/listenKey", headers=headers).json() == {
        "listenKey": key}
    assert market.control.delete("/dapi/v1/listenKey", headers=headers).json() == {}
    assert_binance_error(market.control.put("/dapi/v1/listenKey", headers=headers))
    assert_binance_error(market.control.post("/dapi/v1/listenKey"), -2014)
    assert_binance_error(market.control.post("/dapi/v1/listenKey",
                                             headers={"X-MBX-APIKEY": "unknown"}), -2015)


def test_ccxt_user_stream_key_calls(market: Market, clients: Callable[..., Client]) -> None:
    client = clients(market.account())
    key = client.dapiPrivatePostListenKey()["listenKey"]
    assert client.dapiPrivatePutListenKey()["listenKey"] == key


# ---- bad input over the wire --------------------------------------------------------------------
BAD_ACCOUNT_CALLS: list[tuple[str, str, dict[str, Any] | str, int | None]] = [
    ("POST", "/dapi/v1/leverage", {"symbol": MARKET_ID, "leverage": "abc"}, -1100),
    ("POST", "/dapi/v1/leverage", {"symbol": MARKET_ID, "leverage": "0"}, -4028),
    ("POST", "/dapi/v1/leverage", {"symbol": MARKET_ID, "leverage": "-5"}, -1100),
    ("POST", "/dapi/v1/leverage", {"symbol": MARKET_ID, "leverage": "2.5"}, -1100),
    ("POST", "/dapi/v1/leverage", {"symbol": MARKET_ID, "leverage": "9" * 25}, -1100),
    ("POST", "/dapi/v1/leverage", {"symbol": MARKET_ID}, -1102),
    ("POST", "/dapi/v1/leverage", {"symbol": "NOPE_PERP", "leverage": "5"}, -1121),
    ("POST", "/dapi/v1/leverage", {"leverage": "5"}, -1102),
    ("POST", "/dapi/v1/marginType", {"symbol": MARKET_ID, "marginType": "isolated"}, -1130),
    ("POST", "/dapi/v1/marginType", {"symbol": MARKET_ID, "marginType": "CROSSED"}, -4046),
    ("POST", "/dapi/v1/marginType", {"symbol": MARKET_ID}, -1102),
    ("POST", "/dapi/v1/positionMargin", {"symbol": MARKET_ID, "amount": "NaN", "type": "1"},
     -1100),
    ("POST", "/dapi/v1/positionMargin", {"symbol": MARKET_ID, "amount": "-1", "type": "1"},
     -1100),
    ("POST", "/dapi/v1/positionMargin", {"symbol": MARKET_ID, "amount": "1", "type": "3"}, None),
    ("POST", "/dapi/v1/positionMargin", {"symbol": MARKET_ID, "amount": "1", "type": "1"}, None),
    ("POST", "/dapi/v1/positionMargin", "symbol=BTCUSD_PERP&amount=%ZZ&type=1", -1100),
    ("POST", "/dapi/v1/leverage", "symbol=BTCUSD_PERP&leverage=5&leverage=6", -1101),
    ("POST", "/dapi/v1/leverage", "%%%&&==&symbol", -1102),
    ("GET", "/dapi/v1/income", {"limit": "0"}, None),
    ("GET", "/dapi/v1/income", {"limit": "x"}, -1100),
    ("GET", "/dapi/v1/income", {"startTime": "5", "endTime": "4"}, None),
    ("GET", "/dapi/v1/income", {"incomeType": "LOTTERY"}, None),
    ("GET", "/dapi/v1/positionRisk", {"symbol": "BTCUSD"}, -1121),
    ("GET", "/dapi/v2/leverageBracket", {"symbol": "XYZ"}, -1121),
    ("GET", "/dapi/v1/positionMargin/history", {}, -1102),
    ("POST", "/dapi/v1/positionSide/dual", {"dualSidePosition": "false"}, -4059),
    ("POST", "/dapi/v1/positionSide/dual", {}, -1102),
    ("POST", "/dapi/v1/positionSide/dual", {"dualSidePosition": "maybe"}, -1130),
]


@pytest.mark.parametrize(("method", "path", "params", "code"), BAD_ACCOUNT_CALLS)
def test_bad_account_input_is_a_binance_error_and_changes_nothing(
        market: Market, method: str, path: str, params: dict[str, Any] | str,
        code: int | None) -> None:
    creds = market.account()
    # the symbol is already cross and flat: every call below must be refused
    before = journal(market)
    assert_binance_error(signed(market, creds, method, path, params), code)
    assert journal(market) == before


def test_unsigned_or_wrongly_signed_requests_are_refused_first(market: Market) -> None:
    creds = market.account()
    bad_symbol = {"symbol": "NOPE"}
    # an unknown symbol would be −1121, but authentication comes first
    assert_binance_error(market.control.get("/dapi/v1/account", params=bad_symbol), -2014)
    assert_binance_error(market.control.get(
        "/dapi/v1/positionRisk", params=bad_symbol, headers={"X-MBX-APIKEY": creds["api_key"]}),
        -1102)  # no timestamp
    wrong = {**creds, "api_secret": "x" * 64}
    assert_binance_error(signed(market, wrong, "GET", "/dapi/v1/positionRisk", bad_symbol), -1022)
    stale = int(market.state.wall_ms()) - 60_000
    assert_binance_error(signed(market, creds, "GET", "/dapi/v1/positionRisk", bad_symbol,
                                timestamp=stale), -1021)


def test_raw_account_rows(market: Market) -> None:
    creds = market.account({"BTC": "1"})
    rows = signed(market, creds, "GET", "/dapi/v1/positionRisk").json()
    assert [r["symbol"] for r in rows] == ["BTCUSD_PERP", "ETHUSD_PERP", "BTCUSD_240329"]
    assert rows[0]["entryPrice"] == "0.0"
    assert rows[0]["marginType"] == "cross"
    assert rows[0]["leverage"] == "20"
    assert rows[0]["maxQty"] == "50"
    balance = signed(market, creds, "GET", "/dapi/v1/balance").json()
    assert [(b["asset"], b["balance"]) for b in balance] == [("BTC", "1.00000000"),
                                                             ("ETH", "0.00000000")]
    assert signed(market, creds, "GET", "/dapi/v1/positionSide/dual").json() == {
        "dualSidePosition": False}
    fees = signed(market, creds, "GET", "/dapi/v1/commissionRate", {"symbol": MARKET_ID}).json()
    assert fees == {"symbol": MARKET_ID, "makerCommissionRate": "0.0002",
                    "takerCommissionRate": "0.0005"}
    v1 = signed(market, creds, "GET", "/dapi/v1/leverageBracket", {"pair": "BTCUSD"}).json()
    assert v1[0]["pair"] == "BTCUSD"
    assert v1[0]["brackets"][0]["initialLeverage"] == 125
