"""strategy/connect.py: a real ccxt binancecoinm that can only ever reach perpsim."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from perpsim.sim.profile import load_profile
from perpsim.strategy.connect import all_api_urls, connect, default_ws_base, rebase, rewrite_urls

from api_helpers import market_app, serve

BASE = "http://127.0.0.1:8765"
WS_BASE = "ws://127.0.0.1:8765"
KEY = "perpsimConnectKey"
SECRET = "perpsimConnectSecret"
MODES = ("sync", "async", "pro")


def close(ex: Any) -> None:
    """Release a client's HTTP session (sync) or aiohttp session (async, pro)."""
    if isinstance(ex, ccxt.Exchange):
        ex.session.close()
    else:
        asyncio.run(ex.close())


@pytest.fixture(params=MODES)
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    ex = connect(BASE, KEY, SECRET, mode=request.param)
    yield ex
    close(ex)


def test_every_api_url_points_at_perpsim(client: Any) -> None:
    urls = all_api_urls(client)
    assert len(urls) > 40  # dapi, fapi, sapi, spot, eapi, papi; test and demo sets too
    for url in urls:
        assert url.startswith((BASE + "/", WS_BASE + "/")), url
        assert "binance" not in url, url


def test_the_coinm_urls_keep_their_paths(client: Any) -> None:
    api = client.urls["api"]
    assert api["dapiPublic"] == f"{BASE}/dapi/v1"
    assert api["dapiPrivate"] == f"{BASE}/dapi/v1"
    assert api["dapiPrivateV2"] == f"{BASE}/dapi/v2"
    assert api["dapiData"] == f"{BASE}/futures/data"
    assert api["sapi"] == f"{BASE}/sapi/v1"
    assert client.urls["test"]["dapiPrivate"] == f"{BASE}/dapi/v1"
    assert client.urls["demo"]["dapiPublic"] == f"{BASE}/dapi/v1"


def test_pro_websocket_urls() -> None:
    ex = connect(BASE, KEY, SECRET, mode="pro", ws_base_url="ws://127.0.0.1:9999/")
    try:
        ws = ex.urls["api"]["ws"]
        assert ws["inverse"] == "ws://127.0.0.1:9999/ws"
        assert ws["ws-api"]["inverse"] == "ws://127.0.0.1:9999/ws-dapi/v1"
        assert ex.get_private_ws_url("inverse", "LK") == "ws://127.0.0.1:9999/ws/LK"
        assert ex.urls["test"]["ws"]["inverse"] == "ws://127.0.0.1:9999/ws"
    finally:
        close(ex)


def test_non_api_urls_are_left_alone(client: Any) -> None:
    assert client.urls["www"] == "https://www.binance.com"


def test_coinm_error_table_restored(client: Any) -> None:
    exact = client.exceptions["exact"]
    assert exact["-2019"] is ccxt.InsufficientFunds
    assert exact["-2022"] is ccxt.InvalidOrder
    assert exact["-2011"] is ccxt.OrderNotFound
    assert exact["-1021"] is ccxt.InvalidNonce


def test_options_and_config(client: Any) -> None:
    assert client.options["fetchCurrencies"] is False
    assert client.enableRateLimit is False
    assert client.options["defaultSubType"] == "inverse"
    assert client.apiKey == KEY
    assert client.secret == SECRET


def test_caller_options_and_config_win() -> None:
    ex = connect(BASE, None, None, options={"recvWindow": 5000, "fetchCurrencies": True},
                 config={"timeout": 1234, "enableRateLimit": True})
    try:
        assert ex.options["recvWindow"] == 5000
        assert ex.options["fetchCurrencies"] is True
        assert ex.options["defaultSubType"] == "inverse"  # ccxt's defaults survive
        assert ex.timeout == 1234
        assert ex.enableRateLimit is True
        assert not ex.apiKey
    finally:
        close(ex)


def test_default_ws_base() -> None:
    assert default_ws_base("http://127.0.0.1:1/") == "ws://127.0.0.1:1"
    assert default_ws_base("https://sim.example:8443/prefix") == "wss://sim.example:8443/prefix"


def test_rebase_keeps_the_path_only() -> None:
    assert rebase("https://dapi.binance.com/dapi/v1", BASE) == f"{BASE}/dapi/v1"
    assert rebase("wss://stream.binance.com:9443/ws", WS_BASE) == f"{WS_BASE}/ws"


def test_rewrite_urls_leaves_the_input_untouched() -> None:
    original = {"api": {"x": "https://dapi.binance.com/dapi/v1"}, "www": "https://binance.com"}
    rewritten = rewrite_urls(original, BASE, WS_BASE)
    assert rewritten["api"]["x"] == f"{BASE}/dapi/v1"
    assert original["api"]["x"] == "https://dapi.binance.com/dapi/v1"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"base_url": "127.0.0.1:8765"}, "base_url"),
        ({"base_url": "ftp://127.0.0.1"}, "base_url"),
        ({"base_url": BASE + "?x=1"}, "base_url"),
        ({"base_url": BASE, "ws_base_url": "http://127.0.0.1:1"}, "ws_base_url"),
        ({"base_url": BASE, "ws_base_url": "ws://127.0.0.1:1/stream"}, "/stream"),
        ({"base_url": BASE, "mode": "threads"}, "mode"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        connect(api_key=KEY, secret=SECRET, **kwargs)


# ---- end to end: real ccxt over HTTP against perpsim's serialisers on loopback ---------------


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = market_app(load_profile("binance_coinm"), lambda: int(time.time() * 1000),
                     {KEY: SECRET})
    with serve(app) as base_url:
        yield base_url


def test_sync_load_markets_fetch_time_and_a_signed_call(server: str) -> None:
    ex = connect(server, KEY, SECRET)
    try:
        markets = ex.load_markets()
        assert {"BTC/USD:BTC", "ETH/USD:ETH"} <= set(markets)
        assert abs(ex.fetch_time() - ex.milliseconds()) < 5000
        tiers = ex.fetch_leverage_tiers()  # GET /dapi/v2/leverageBracket, HMAC-signed
        assert tiers["BTC/USD:BTC"][0]["maxLeverage"] == 125
    finally:
        close(ex)


def test_wrong_secret_is_an_authentication_error(server: str) -> None:
    ex = connect(server, KEY, "not-the-secret")
    try:
        ex.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            ex.fetch_leverage_tiers()
    finally:
        close(ex)


def test_unknown_key_is_an_authentication_error(server: str) -> None:
    ex = connect(server, "someoneElse", SECRET)
    try:
        ex.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            ex.fetch_leverage_tiers()
    finally:
        close(ex)


def test_stale_timestamp_is_invalid_nonce(server: str) -> None:
    ex = connect(server, KEY, SECRET, options={"timeDifference": 60_000})  # clock 60 s behind
    try:
        ex.load_markets()
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            ex.fetch_leverage_tiers()
    finally:
        close(ex)


def test_unknown_endpoint_is_an_exchange_error(server: str) -> None:
    ex = connect(server, KEY, SECRET)
    try:
        with pytest.raises(ccxt.ExchangeError, match="-5000"):
            ex.dapiPublicGetTicker24hr({"symbol": "BTCUSD_PERP"})
    finally:
        close(ex)


@pytest.mark.parametrize("mode", ["async", "pro"])
def test_async_clients_load_markets(server: str, mode: str) -> None:
    async def run() -> tuple[int, set[str]]:
        ex = connect(server, KEY, SECRET, mode=mode)
        try:
            markets = await ex.load_markets()
            return await ex.fetch_time(), set(markets)
        finally:
            await ex.close()

    server_time, symbols = asyncio.run(run())
    assert server_time > 0
    assert "BTC/USD:BTC" in symbols
