"""The WebSocket surface Binance documents for COIN-M, on the wire (a raw websockets client):
combined ``/stream?streams=`` frames, SET_PROPERTY / GET_PROPERTY ``combined``, a listen key
by URL or by SUBSCRIBE on either endpoint, the 24-hour connection limit, and the position rows
of ACCOUNT_UPDATE."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import websockets
from test_api_account import signed

from perpsim.api.binance_coinm.stream_hub import MAX_CONNECTION_S, existing_hub

from conftest import Market
from live_market import until

STREAM = "btcusd_perp"
MARK = f"{STREAM}@markPrice@1s"
WAIT_S = 5.0
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


class Socket:
    """A raw client: send a request, read JSON frames (every wait bounded)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, method: str, params: Any = None, request_id: Any = 1) -> None:
        body: dict[str, Any] = {"method": method, "id": request_id}
        if params is not None:
            body["params"] = params
        await self.ws.send(json.dumps(body))

    async def recv(self, timeout_s: float = WAIT_S) -> Any:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s))

    async def until(self, want: Any, what: str) -> Any:
        """Read frames until one satisfies ``want`` (bounded)."""
        for _ in range(200):
            frame = await self.recv()
            if want(frame):
                return frame
        raise AssertionError(f"no frame: {what}")


@contextlib.asynccontextmanager
async def socket(market: Market, path: str) -> AsyncIterator[Socket]:
    url = market.base_url.replace("http://", "ws://") + path
    async with websockets.connect(url, open_timeout=WAIT_S, close_timeout=1) as ws:
        yield Socket(ws)


def listen_key(market: Market, creds: dict[str, str]) -> str:
    answer = market.control.post("/dapi/v1/listenKey", headers={"X-MBX-APIKEY": creds["api_key"]})
    assert answer.status_code == 200, answer.text
    key: str = answer.json()["listenKey"]
    return key


async def control(call: Any, *args: Any) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(call, *args), WAIT_S)


def test_combined_stream_wraps_market_and_user_frames(market: Market) -> None:
    creds = market.account()
    key = listen_key(market, creds)

    async def scenario() -> None:
        async with socket(market, f"/stream?streams={MARK}/{STREAM}@bookTicker/{key}") as ws:
            first = await ws.recv()
            assert set(first) == {"stream", "data"}
            assert first["stream"] in (MARK, f"{STREAM}@bookTicker")
            await until(lambda: market.user_stream_open(creds["account_id"]), "user stream")
            await ws.send("LIST_SUBSCRIPTIONS", request_id=7)
            listed = await ws.until(lambda f: f.get("id") == 7, "the list answer")
            assert sorted(listed["result"]) == sorted([MARK, f"{STREAM}@bookTicker", key])
            await control(market.advance, 2000)
            mark = await ws.until(lambda f: f.get("stream") == MARK, "a wrapped mark price")
            assert mark["data"]["e"] == "markPriceUpdate"
            # A user-stream frame is named by its listen key; the key in the URL owns the
            # connection, so closing the key closes it.
            closed = market.control.delete("/dapi/v1/listenKey",
                                           headers={"X-MBX-APIKEY": creds["api_key"]})
            assert closed.status_code == 200
            expired = await ws.until(lambda f: f.get("stream") == key, "listenKeyExpired")
            assert expired["data"]["e"] == "listenKeyExpired"
            with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
                for _ in range(100):
                    await ws.recv(3)
            assert ws.ws.close_code == 1000
    run(scenario())


def test_set_property_combined_on_ws_and_get_property(market: Market) -> None:
    async def scenario() -> None:
        async with socket(market, "/ws") as ws:
            await ws.send("GET_PROPERTY", ["combined"], 1)
            assert await ws.recv() == {"result": False, "id": 1}
            await ws.send("SET_PROPERTY", ["combined", True], 2)
            assert await ws.recv() == {"result": None, "id": 2}
            await ws.send("GET_PROPERTY", ["combined"], 3)
            assert await ws.recv() == {"result": True, "id": 3}
            await ws.send("SUBSCRIBE", [MARK], 4)
            assert await ws.recv() == {"result": None, "id": 4}  # acks are never wrapped
            frame = await ws.recv()
            assert frame["stream"] == MARK
            assert frame["data"]["s"] == "BTCUSD_PERP"
            await ws.send("SET_PROPERTY", ["combined", "yes"], 5)
            assert (await ws.recv())["error"]["code"] == 1
            await ws.send("SET_PROPERTY", ["compressed", True], 6)
            assert (await ws.recv())["error"]["code"] == 0
        async with socket(market, f"/stream?streams={MARK}") as combined:
            assert (await combined.recv())["stream"] == MARK
            await combined.send("SET_PROPERTY", ["combined", False], 1)
            await combined.until(lambda f: f.get("id") == 1, "the ack")
            await control(market.advance, 2000)
            plain = await combined.until(lambda f: "id" not in f, "an unwrapped frame")
            assert plain["e"] == "markPriceUpdate"
    run(scenario())


def test_listen_key_by_subscribe_on_ws_and_unsubscribe(market: Market) -> None:
    creds = market.account()
    key = listen_key(market, creds)

    async def scenario() -> None:
        async with socket(market, "/ws") as ws:
            await ws.send("SUBSCRIBE", [key], 1)
            assert await ws.recv() == {"result": None, "id": 1}
            await until(lambda: market.user_stream_open(creds["account_id"]), "user stream")
            await control(market.post, "prices", {"symbol": "BTCUSD_PERP", "index": "61000"})
            await ws.send("LIST_SUBSCRIPTIONS", request_id=2)
            assert (await ws.until(lambda f: f.get("id") == 2, "list"))["result"] == [key]
            await ws.send("UNSUBSCRIBE", [key], 3)
            await ws.until(lambda f: f.get("id") == 3, "the unsubscribe ack")
            assert not market.user_stream_open(creds["account_id"])
            await ws.send("SUBSCRIBE", ["f" * 64], 4)
            assert (await ws.recv())["error"]["code"] == 2
    run(scenario())


def test_listen_key_by_subscribe_gets_fills_and_expiry_keeps_the_connection(
        market: Market) -> None:
    creds = market.account()
    key = listen_key(market, creds)

    async def scenario() -> None:
        async with socket(market, "/stream") as ws:
            await ws.send("SUBSCRIBE", [key, MARK], 1)
            assert await ws.recv() == {"result": None, "id": 1}
            await until(lambda: market.user_stream_open(creds["account_id"]), "user stream")
            market.control.delete("/dapi/v1/listenKey",
                                  headers={"X-MBX-APIKEY": creds["api_key"]})
            expired = await ws.until(lambda f: f.get("stream") == key, "listenKeyExpired")
            assert expired["data"]["e"] == "listenKeyExpired"
            # The market subscription on the same connection goes on.
            await control(market.advance, 2000)
            assert (await ws.until(lambda f: f.get("stream") == MARK, "mark"))["data"]
    run(scenario())


def test_connections_end_at_the_24_hour_limit(market: Market) -> None:
    assert MAX_CONNECTION_S == 24 * 3600

    async def scenario() -> None:
        async with socket(market, f"/ws/{MARK}") as first:
            await first.recv()
            hub = existing_hub(market.state)
            assert hub is not None
            hub.max_connection_s = 0.5  # the limit, shortened for this server's hub
            try:
                async with socket(market, f"/ws/{MARK}") as second:
                    with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
                        for _ in range(50):
                            await second.recv(3)
                    assert second.ws.close_code == 1000
                    assert second.ws.close_reason == "24 hour connection limit"
            finally:
                hub.max_connection_s = MAX_CONNECTION_S
    run(scenario())


def _order(market: Market, creds: dict[str, str], **params: str) -> dict[str, Any]:
    answer = signed(market, creds, "POST", "/dapi/v1/order",
                    {"symbol": "BTCUSD_PERP", "type": "MARKET", **params})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_account_update_position_rows_carry_cr_and_up(market: Market) -> None:
    creds = market.account()
    key = listen_key(market, creds)

    async def scenario() -> list[Any]:
        async with socket(market, f"/ws/{key}") as ws:
            await until(lambda: market.user_stream_open(creds["account_id"]), "user stream")
            await control(lambda: _order(market, creds, side="BUY", quantity="10"))
            opened = await ws.until(lambda f: f.get("e") == "ACCOUNT_UPDATE", "the open")
            await control(market.prices, "61000", "61000")
            await control(lambda: _order(market, creds, side="SELL", quantity="4",
                                         reduceOnly="true"))
            reduced = await ws.until(lambda f: f.get("e") == "ACCOUNT_UPDATE", "the reduce")
            return [opened, reduced]

    opened, reduced = run(scenario())
    (row_open,), (row_reduced,) = opened["a"]["P"], reduced["a"]["P"]
    assert list(row_open) == ["s", "pa", "ep", "cr", "up", "mt", "iw", "ps"]
    assert list(row_reduced) == list(row_open)
    fills = signed(market, creds, "GET", "/dapi/v1/userTrades",
                   {"symbol": "BTCUSD_PERP"}).json()
    assert Decimal(row_open["cr"]) == 0
    assert Decimal(row_reduced["cr"]) == sum(Decimal(f["realizedPnl"]) for f in fills) > 0
    (risk,) = [r for r in signed(market, creds, "GET", "/dapi/v1/positionRisk").json()
               if r["symbol"] == "BTCUSD_PERP"]
    assert row_reduced["pa"] == risk["positionAmt"] == "6"
    assert Decimal(row_reduced["up"]) == Decimal(risk["unRealizedProfit"])  # same mark, now


def test_a_client_ping_gets_a_pong(market: Market) -> None:
    async def scenario() -> None:
        async with socket(market, f"/ws/{MARK}") as ws:
            pong = await ws.ws.ping(b"perpsim")
            latency = await asyncio.wait_for(pong, WAIT_S)
            assert latency >= 0
    run(scenario())


KLINE_KEYS = ["t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q",
              "B"]


def test_kline_and_index_streams(market: Market) -> None:
    creds = market.account()
    names = [f"{STREAM}@kline_1m", "btcusd@indexPrice@1s", "btcusd@indexPriceKline_1m",
             f"{STREAM}@markPriceKline_1m", "btcusd_perpetual@continuousKline_1m"]

    async def scenario() -> dict[str, list[Any]]:
        seen: dict[str, list[Any]] = {name: [] for name in names}
        async with socket(market, "/stream?streams=" + "/".join(names)) as ws:
            async def read_until(done: Any, what: str) -> None:
                for _ in range(500):
                    if done():
                        return
                    frame = await ws.recv()
                    seen[frame["stream"]].append(frame["data"])
                raise AssertionError(what)

            await read_until(lambda: all(seen.values()), "a first frame on every stream")
            await control(lambda: _order(market, creds, side="BUY", quantity="7"))
            await read_until(lambda: any(k["k"]["v"] == "7" for k in seen[names[0]]),
                             "the print in the kline")
            await control(market.advance, 60_000)
            # The closed bar, then the next one (both in the same poll).
            await read_until(lambda: any(k["k"]["x"] for k in seen[names[0]])
                             and not seen[names[0]][-1]["k"]["x"], "the bar closing")
        return seen

    seen = run(scenario())
    kline, index, index_kline, mark_kline, continuous = (seen[n] for n in names)
    assert list(kline[0]) == ["e", "E", "s", "k"]
    assert list(kline[0]["k"]) == KLINE_KEYS
    assert (kline[0]["e"], kline[0]["s"], kline[0]["k"]["i"]) == ("kline", "BTCUSD_PERP", "1m")
    assert (kline[0]["k"]["f"], kline[0]["k"]["n"]) == (-1, 0)  # no print yet
    closed = next(k for k in kline if k["k"]["x"])
    rest = market.control.get("/dapi/v1/klines", params={
        "symbol": "BTCUSD_PERP", "interval": "1m", "startTime": closed["k"]["t"],
        "limit": 1}).json()[0]
    assert [closed["k"][x] for x in ("t", "o", "h", "l", "c", "v", "T", "q", "n", "V", "Q")] == \
        [rest[i] for i in range(11)]
    fills = signed(market, creds, "GET", "/dapi/v1/userTrades",
                   {"symbol": "BTCUSD_PERP"}).json()
    assert closed["k"]["f"] == closed["k"]["L"] == fills[0]["id"]
    assert kline[-1]["k"]["t"] == closed["k"]["t"] + 60_000  # the next bar follows
    assert index[0] == {"e": "indexPriceUpdate", "E": index[0]["E"], "i": "BTCUSD",
                        "p": "60000.00000000"}
    assert (index_kline[0]["e"], index_kline[0]["ps"], index_kline[0]["k"]["s"]) == (
        "indexPrice_kline", "BTCUSD", "0")
    assert (mark_kline[0]["e"], mark_kline[0]["k"]["s"]) == ("markPrice_kline", "BTCUSD_PERP")
    assert (continuous[0]["e"], continuous[0]["ps"], continuous[0]["ct"]) == (
        "continuous_kline", "BTCUSD", "PERPETUAL")
    assert "s" not in continuous[0]["k"]


def test_unknown_pair_streams_are_refused(market: Market) -> None:
    async def scenario() -> list[Any]:
        answers = []
        async with socket(market, "/ws") as ws:
            for i, name in enumerate(["nosuch@indexPrice", "btcusd_next_quarter@continuousKline_1m",
                                      f"{STREAM}@kline_7m"]):
                await ws.send("SUBSCRIBE", [name], i)
                answers.append(await ws.recv())
        return answers

    for answer in run(scenario()):
        assert answer["error"]["code"] == 2


def test_kline_stream_survives_a_reset(market: Market) -> None:
    async def scenario() -> list[Any]:
        async with socket(market, f"/ws/{STREAM}@kline_1m") as ws:
            first = await ws.recv()
            await control(market.post, "reset", {"scenario": "manual",
                                                 "start": "2024-06-01T00:00:00Z"})
            await control(market.advance, 60_000)
            after = await ws.until(lambda f: f["k"]["t"] >= 1_717_200_000_000, "a new bar")
            return [first, after]

    first, after = run(scenario())
    assert first["k"]["t"] < after["k"]["t"]
    assert not after["k"]["x"]  # the old market's bar is not closed into the new one
    hub = existing_hub(market.state)
    assert hub is not None
    assert hub.errors == []
