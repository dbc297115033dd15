"""The WebSocket streams, driven by the REAL ccxt.pro 4.5.90 (and a raw websockets client for
the wire shapes) against a live perpsim server: tickers, mark price, order book sync, trades,
the user data stream (orders, balance, positions, funding, liquidation), and coalescing.

No pytest-asyncio: each test is a coroutine run by :func:`run` under an overall timeout, and
every single wait inside it is bounded too, so nothing can hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import websockets

from perpsim.api.binance_coinm.stream_hub import existing_hub
from perpsim.strategy.connect import connect

from conftest import START_MS, Market
from live_market import until

SYMBOL = "BTC/USD:BTC"
MARKET_ID = "BTCUSD_PERP"
STREAM = "btcusd_perp"
DAY_MS = 86_400_000
WAIT_S = 5.0

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
    """Run a test coroutine on a fresh loop, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def within(awaitable: Awaitable[T], timeout_s: float = WAIT_S) -> T:
    """One bounded wait."""
    return await asyncio.wait_for(awaitable, timeout_s)


@contextlib.asynccontextmanager
async def pro(market: Market, creds: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """A ccxt.pro binancecoinm on the live market, markets loaded; always closed."""
    ex = connect(market.base_url, creds["api_key"] if creds else None,
                 creds["api_secret"] if creds else None, mode="pro")
    try:
        await within(ex.load_markets())
        yield ex
    finally:
        await ex.close()


async def control(call: Callable[..., T], *args: Any) -> T:
    """A control-plane call (blocking httpx) off the event loop."""
    return await within(asyncio.to_thread(call, *args))


def user_stream_open(market: Market, account_id: str) -> Callable[[], Awaitable[None]]:
    """A wait until the server delivers the account's user stream."""
    return lambda: until(lambda: market.user_stream_open(account_id),
                         f"the user stream of account {account_id}", WAIT_S)


def subscribed(market: Market, stream: str) -> Callable[[], Awaitable[None]]:
    """A wait until some connection is subscribed to ``stream``."""
    return lambda: until(lambda: market.subscribed(stream), f"a subscription to {stream}", WAIT_S)


async def next_update(watch: Callable[[], Awaitable[T]], act: Callable[[], Awaitable[Any]],
                      ready: Callable[[], Awaitable[None]]) -> T:
    """Start a watch, wait until the server serves it, do ``act``; what the watch returns."""
    task = asyncio.ensure_future(watch())
    try:
        await ready()
        await asyncio.sleep(0.05)  # let an initial frame (if any) resolve an earlier watch
        await act()
        return await within(task)
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def assert_no_stream_errors(market: Market) -> None:
    """The hub's listener and pump never failed."""
    hub = existing_hub(market.state)
    assert hub is None or hub.errors == []


class RawSocket:
    """A raw websockets client that keeps every frame it reads."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[Any] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self, timeout_s: float = WAIT_S) -> Any:
        frame = json.loads(await within(self.ws.recv(), timeout_s))
        self.frames.append(frame)
        return frame

    async def drain(self, quiet_s: float = 0.5, *,
                    until: Callable[[list[Any]], bool] | None = None) -> list[Any]:
        """Read until ``until(frames)`` holds (each frame awaited up to WAIT_S: a busy machine
        may pause longer than ``quiet_s``), then until nothing arrives for ``quiet_s``."""
        got: list[Any] = []
        while until is not None and not until(got):
            got.append(await self.recv())
        while True:
            try:
                got.append(await self.recv(quiet_s))
            except TimeoutError:
                return got


@contextlib.asynccontextmanager
async def raw(market: Market, name: str) -> AsyncIterator[RawSocket]:
    """A raw WebSocket on ``/ws/<name>``."""
    async with websockets.connect(f"{market.ws_url}/{name}", open_timeout=WAIT_S,
                                  close_timeout=1) as ws:
        yield RawSocket(ws)


# ---- public streams ------------------------------------------------------------------------


def test_watch_ticker_and_mark_price_follow_the_market(market: Market) -> None:
    async def scenario() -> None:
        async with pro(market) as ex:
            ticker = await within(ex.watch_ticker(SYMBOL))
            assert ticker["symbol"] == SYMBOL
            assert ticker["last"] == 60000
            assert ticker["timestamp"] == START_MS
            mark = await within(ex.watch_mark_price(SYMBOL))
            rest = await within(ex.fetch_mark_price(SYMBOL))
            assert (mark["markPrice"], mark["indexPrice"]) == (rest["markPrice"],
                                                               rest["indexPrice"])

            async def move() -> None:
                await control(market.prices, "61000", "61010")
                await control(market.advance, 1000)

            mark_task = asyncio.ensure_future(ex.watch_mark_price(SYMBOL))
            ticker = await next_update(lambda: ex.watch_ticker(SYMBOL), move,
                                     subscribed(market, f"{STREAM}@miniTicker"))
            mark = await within(mark_task)
            assert ticker["last"] == 61010
            assert ticker["timestamp"] == START_MS + 1000
            rest = await within(ex.fetch_mark_price(SYMBOL))
            assert mark["indexPrice"] == 61000
            assert mark["timestamp"] == START_MS + 1000
            assert mark["markPrice"] == rest["markPrice"]
            assert mark["info"]["r"] == rest["info"]["lastFundingRate"]
            assert mark["info"]["T"] == rest["info"]["nextFundingTime"]
    run(scenario())
    assert_no_stream_errors(market)


def test_watch_order_book_converges_with_the_rest_snapshot(market: Market) -> None:
    creds = market.account()

    async def scenario() -> None:
        async with pro(market) as public, pro(market, creds) as trader:
            depth = subscribed(market, f"{STREAM}@depth@100ms")
            book = await within(public.watch_order_book(SYMBOL))
            rest = await within(public.fetch_order_book(SYMBOL))
            assert book["nonce"] == rest["nonce"]
            assert book["bids"][:20] == rest["bids"][:20]

            async def quote() -> None:
                await within(trader.create_order(SYMBOL, "limit", "buy", 7, 59990))
            book = await next_update(lambda: public.watch_order_book(SYMBOL), quote, depth)
            assert [59990.0, 2007.0] in book["bids"] or [59990.0, 7.0] in book["bids"]

            async def move() -> None:
                await control(market.prices, "59000")
            await next_update(lambda: public.watch_order_book(SYMBOL), move, depth)
            rest = await within(public.fetch_order_book(SYMBOL))  # stepped: it stays put now
            # the remaining deltas arrive when they arrive (a busy machine is slow): wait for
            # the local book to reach the REST snapshot's update id, not a fixed 0.3 s
            await until(lambda: public.orderbooks[SYMBOL]["nonce"] >= rest["nonce"],
                        "the local book to catch up with REST", WAIT_S)
            local = public.orderbooks[SYMBOL]
            assert local["nonce"] == rest["nonce"]
            assert local["bids"][:50] == rest["bids"][:50]
            assert local["asks"][:50] == rest["asks"][:50]
            assert rest["bids"][0][0] < 59000 < rest["asks"][0][0]
    run(scenario())
    assert_no_stream_errors(market)


def test_watch_trades_sees_a_fill(market: Market) -> None:
    creds = market.account()

    async def scenario() -> None:
        async with pro(market) as public, pro(market, creds) as trader:
            async def trade() -> None:
                await within(trader.create_order(SYMBOL, "market", "sell", 25))
            trades = await next_update(lambda: public.watch_trades(SYMBOL), trade,
                                     subscribed(market, f"{STREAM}@trade"))
            assert len(trades) == 1
            assert (trades[0]["symbol"], trades[0]["side"], trades[0]["amount"]) == (
                SYMBOL, "sell", 25)
            rest = await within(public.fetch_trades(SYMBOL))
            assert trades[0]["id"] == rest[-1]["id"]
            assert trades[0]["price"] == rest[-1]["price"]
            assert trades[0]["timestamp"] == rest[-1]["timestamp"] == START_MS
    run(scenario())
    assert_no_stream_errors(market)


def test_raw_subscribe_ack_list_and_unsubscribe(market: Market) -> None:
    async def scenario() -> None:
        async with raw(market, "0") as ws:
            await ws.send({"method": "SUBSCRIBE", "params": [f"{STREAM}@markPrice@1s"], "id": 1})
            assert await ws.recv() == {"result": None, "id": 1}
            first = await ws.recv()
            assert first["e"] == "markPriceUpdate"
            assert set(first) == {"e", "E", "s", "p", "i", "P", "r", "T"}
            assert first["s"] == MARKET_ID
            assert all(isinstance(first[k], str) for k in "piPr")
            await ws.send({"method": "LIST_SUBSCRIPTIONS", "id": "two"})
            assert await ws.recv() == {"result": [f"{STREAM}@markPrice@1s"], "id": "two"}
            await ws.send({"method": "UNSUBSCRIBE", "params": [f"{STREAM}@markPrice@1s"],
                           "id": 3})
            assert await ws.recv() == {"result": None, "id": 3}
            await control(market.prices, "65000")
            await control(market.advance, 5000)
            assert await ws.drain(0.4) == []  # unsubscribed: nothing more
            await ws.send({"method": "SUBSCRIBE", "params": ["nosuch_perp@markPrice"], "id": 4})
            error = await ws.recv()
            assert error["id"] == 4
            assert error["error"]["code"] == 2
            await ws.send({"method": "SUBSCRIBE", "params": [f"{STREAM}@bogus"], "id": 5})
            assert (await ws.recv())["error"]["code"] == 2
            await ws.ws.send("{not json")
            assert (await ws.recv())["error"]["code"] == 3
    run(scenario())
    assert_no_stream_errors(market)


def test_all_market_streams_and_a_stream_named_in_the_path(market: Market) -> None:
    creds = market.account()

    async def scenario() -> None:
        async with pro(market) as public, pro(market, creds) as trader:
            marks = await within(public.watch_mark_prices())  # !markPrice@arr@1s
            tickers = await within(public.watch_tickers())  # !miniTicker@arr
            assert set(marks) == set(tickers) >= {SYMBOL, "ETH/USD:ETH"}
            assert tickers[SYMBOL]["last"] == marks[SYMBOL]["markPrice"] == 60000
            (bid_ask,) = (await within(public.watch_bids_asks([SYMBOL]))).values()
            rest = await within(public.fetch_order_book(SYMBOL, 5))
            assert (bid_ask["bid"], bid_ask["ask"]) == (rest["bids"][0][0], rest["asks"][0][0])
            async with raw(market, f"{STREAM}@aggTrade") as agg:
                await subscribed(market, f"{STREAM}@aggTrade")()
                await within(trader.create_order(SYMBOL, "market", "buy", 4))
                frame = await agg.recv()
            assert (frame["e"], frame["s"], frame["q"], frame["m"]) == (
                "aggTrade", MARKET_ID, "4", False)
            assert frame["a"] == frame["f"] == frame["l"]
            async with raw(market, "btcusd_perp@nonsense") as bad:
                assert (await bad.recv())["error"]["code"] == 2
                with contextlib.suppress(websockets.ConnectionClosed):
                    await bad.recv(2)
                assert bad.ws.close_code == 1008
    run(scenario())
    assert_no_stream_errors(market)


def test_raw_depth_frames_chain_on_the_rest_counter(market: Market) -> None:
    creds = market.account()

    async def scenario() -> None:
        async with raw(market, "1") as ws, pro(market, creds) as trader:
            await ws.send({"method": "SUBSCRIBE", "params": [f"{STREAM}@depth@100ms"], "id": 1})
            assert await ws.recv() == {"result": None, "id": 1}
            snapshot = await within(trader.fetch_order_book(SYMBOL, 1000))
            await within(trader.create_order(SYMBOL, "limit", "sell", 3, 60500))
            await control(market.prices, "60100")
            rest = await within(trader.fetch_order_book(SYMBOL, 1000))  # stepped: stays put
            frames = [f for f in await ws.drain(until=lambda got: any(
                f.get("u") == rest["nonce"] for f in got)) if f["e"] == "depthUpdate"]
            assert frames
            assert frames[0]["U"] <= snapshot["nonce"] + 1 <= frames[0]["u"]
            for before, after in itertools.pairwise(frames):
                assert after["pu"] == before["u"]
                assert after["U"] == before["u"] + 1
            assert frames[-1]["u"] == rest["nonce"]
            assert set(frames[0]) == {"e", "E", "T", "s", "ps", "U", "u", "pu", "b", "a"}
            assert ["60500.0", "3"] in [a for f in frames for a in f["a"]]
    run(scenario())
    assert_no_stream_errors(market)


# ---- user data stream ----------------------------------------------------------------------


def test_watch_orders_new_then_filled_by_a_price_move(market: Market) -> None:
    creds = market.account()

    async def scenario() -> None:
        async with pro(market, creds) as ex:
            seen: list[tuple[str, str, float]] = []

            async def collect() -> None:
                while True:
                    for order in await ex.watch_orders(SYMBOL):
                        seen.append((order["id"], order["status"], order["filled"]))

            task = asyncio.ensure_future(collect())
            try:
                await user_stream_open(market, creds["account_id"])()
                order = await within(ex.create_order(SYMBOL, "limit", "buy", 10, 59000))
                await until(lambda: len(seen) >= 1, "the NEW order")
                await control(market.prices, "58900")
                await until(lambda: len(seen) >= 2, "the fill")
            finally:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            assert seen == [(order["id"], "open", 0.0), (order["id"], "closed", 10.0)]
            cached = ex.orders.hashmap[SYMBOL][order["id"]]
            assert (cached["average"], cached["side"], cached["type"]) == (59000, "buy",
                                                                              "limit")
            assert cached["fee"]["currency"] == "BTC"
    run(scenario())
    assert_no_stream_errors(market)


def test_watch_balance_and_positions_match_rest(market: Market) -> None:
    creds = market.account()

    async def scenario() -> None:
        async with pro(market, creds) as ex:
            await within(ex.watch_positions())  # the first one answers the REST snapshot
            balance_task = asyncio.ensure_future(ex.watch_balance())
            positions = await next_update(
                ex.watch_positions,
                lambda: within(ex.create_order(SYMBOL, "market", "buy", 30)),
                user_stream_open(market, creds["account_id"]))
            balance = await within(balance_task)
            rest_positions = await within(ex.fetch_positions([SYMBOL]))
            rest_balance = await within(ex.fetch_balance())
            (pos,), (rest,) = positions, rest_positions
            assert (pos["symbol"], pos["side"], pos["contracts"], pos["marginMode"]) == (
                rest["symbol"], rest["side"], rest["contracts"], rest["marginMode"])
            assert pos["entryPrice"] == rest["entryPrice"]
            wallet = next(a for a in rest_balance["info"]["assets"] if a["asset"] == "BTC")
            assert balance["BTC"]["total"] == float(wallet["walletBalance"])
            assert balance["info"]["a"]["m"] == "ORDER"
    run(scenario())
    assert_no_stream_errors(market)


def test_funding_fee_account_update(market: Market) -> None:
    creds = market.account()

    async def scenario() -> None:
        async with pro(market, creds) as ex:
            await within(ex.create_order(SYMBOL, "market", "sell", 100))
            events: list[dict[str, Any]] = []

            async def past_funding() -> None:
                events.extend(await control(market.advance, 8 * 3_600_000 + 1))
            balance = await next_update(ex.watch_balance, past_funding,
                                        user_stream_open(market, creds["account_id"]))
            payments = [e for e in events if e["type"] == "funding.payment"]
            assert len(payments) == 1
            info = balance["info"]
            assert info["a"]["m"] == "FUNDING_FEE"
            assert info["E"] == payments[0]["time"] == START_MS + 8 * 3_600_000
            assert info["a"]["P"] == []  # cross: Binance pushes only the balance
            rest = await within(ex.fetch_balance())
            wallet = next(a for a in rest["info"]["assets"] if a["asset"] == "BTC")
            assert info["a"]["B"][0]["wb"] == wallet["walletBalance"]
            history = await within(ex.fetch_funding_history(SYMBOL))
            assert Decimal(history[-1]["info"]["income"]) == Decimal(payments[0]["amount"])
    run(scenario())
    assert_no_stream_errors(market)


def test_isolated_margin_and_transfers_account_updates_match_rest(market: Market) -> None:
    creds = market.account({"BTC": "1"}, spot_balances={"BTC": "0.5"})

    async def scenario() -> None:
        async with pro(market, creds) as ex:
            key = (await within(ex.dapiPrivatePostListenKey()))["listenKey"]
            async with raw(market, key) as user:
                await user_stream_open(market, creds["account_id"])()
                await within(ex.transfer("BTC", 0.25, "spot", "inverse"))
                await within(ex.set_margin_mode("isolated", SYMBOL))
                await within(ex.create_order(SYMBOL, "market", "buy", 100))
                await within(ex.dapiPrivatePostPositionMargin(
                    {"symbol": MARKET_ID, "amount": "0.001", "type": 1}))
                await control(market.advance, 8 * 3_600_000)
                frames = await user.drain(until=lambda got: any(
                    f.get("e") == "ACCOUNT_UPDATE" and f["a"]["m"] == "FUNDING_FEE"
                    for f in got))
            rest_balance = await within(ex.fetch_balance())
            rest_position = (await within(ex.fetch_positions([SYMBOL])))[0]["info"]
        updates = [f["a"] for f in frames if f["e"] == "ACCOUNT_UPDATE"]
        assert [u["m"] for u in updates] == ["DEPOSIT", "MARGIN_TYPE_CHANGE", "ORDER",
                                             "ISOLATED_MARGIN_TRANSFER", "FUNDING_FEE"]
        assert updates[0]["B"][0]["bc"] == "0.25000000"
        assert updates[0]["B"][0]["wb"] == "1.25000000"
        assert updates[1]["P"][0]["mt"] == "isolated"
        transfer, funding = updates[3], updates[4]
        assert Decimal(transfer["P"][0]["iw"]) - Decimal(updates[2]["P"][0]["iw"]) == Decimal(
            "0.001")
        wallet = next(a for a in rest_balance["info"]["assets"] if a["asset"] == "BTC")
        (row,) = funding["B"]
        assert (row["wb"], row["cw"]) == (wallet["walletBalance"], wallet["crossWalletBalance"])
        (pos,) = funding["P"]  # isolated: the funding fee comes with its position
        assert (pos["pa"], pos["ep"], pos["iw"]) == (
            rest_position["positionAmt"], rest_position["entryPrice"],
            rest_position["isolatedWallet"])
    run(scenario())
    assert_no_stream_errors(market)


def test_liquidation_on_force_order_and_the_users_order_stream(market: Market) -> None:
    victim = market.account({"BTC": "0.01"})

    async def scenario() -> None:
        async with pro(market) as public, pro(market, victim) as ex:
            await within(ex.set_leverage(50, SYMBOL))
            await within(ex.create_order(SYMBOL, "market", "buy", 200))
            orders_task = asyncio.ensure_future(ex.watch_orders(SYMBOL))
            await user_stream_open(market, victim["account_id"])()
            events: list[dict[str, Any]] = []

            async def crash() -> None:
                events.extend((await control(market.prices, "58000"))["events"])
            liquidations = await next_update(lambda: public.watch_liquidations(SYMBOL), crash,
                                             subscribed(market, f"{STREAM}@forceOrder"))
            orders = await within(orders_task)
            (takeover,) = [e for e in events if e["type"] == "liquidation.takeover"]
            (engine,) = [e for e in events if e["type"] == "liquidation.order"]
            (liq,) = liquidations  # the public forceOrder: the liquidation engine's order
            assert (liq["symbol"], liq["side"], liq["contracts"]) == (SYMBOL, "sell", 200)
            assert liq["price"] == float(engine["avg_price"])
            bankruptcy = format(Decimal(takeover["bankruptcy_price"]), ".8f")  # as Binance writes
            assert liq["info"]["p"] == bankruptcy
            # The victim's own stream: the position closed at its bankruptcy price.
            (forced,) = [o for o in orders if o["info"]["o"] == "LIQUIDATION"]
            assert forced["status"] == "closed"
            assert (forced["side"], forced["filled"]) == ("sell", 200)
            assert forced["clientOrderId"] == f"autoclose-{forced['id']}"
            assert forced["average"] == float(bankruptcy)
            assert ex.myLiquidations[-1]["contracts"] == 200
            rest = await within(ex.fetch_positions([SYMBOL]))
            assert rest == []
    run(scenario())
    assert_no_stream_errors(market)


def test_algo_update_on_the_order_stream(market: Market) -> None:
    creds = market.account()

    async def scenario() -> None:
        async with pro(market, creds) as ex:
            await within(ex.create_order(SYMBOL, "market", "buy", 10))
            (algo,) = await next_update(
                lambda: ex.watch_orders(SYMBOL),
                lambda: within(ex.create_order(SYMBOL, "market", "sell", 10, None,
                                               {"triggerPrice": 59000, "reduceOnly": True})),
                user_stream_open(market, creds["account_id"]))
            assert (algo["info"]["X"], algo["info"]["o"]) == ("NEW", "STOP_MARKET")
            assert algo["triggerPrice"] == 59000
            task = asyncio.ensure_future(ex.watch_orders(SYMBOL))
            await control(market.prices, "58500")
            await within(task)
            orders = ex.orders.hashmap[SYMBOL]
            await until(lambda: orders[algo["id"]]["info"]["X"] == "TRIGGERED", "the trigger")
            (placed,) = [o for o in orders.values() if "aid" not in o["info"]
                         and o["clientOrderId"] == algo["clientOrderId"]]
            assert (placed["status"], placed["side"], placed["filled"]) == ("closed", "sell", 10)
    run(scenario())
    assert_no_stream_errors(market)


def test_invalid_listen_key_and_reset_end_user_streams(market: Market) -> None:
    creds = market.account()

    async def scenario() -> None:
        async with raw(market, "f" * 64) as bogus:
            with contextlib.suppress(websockets.ConnectionClosed):
                await bogus.recv(2)
            assert bogus.ws.close_code == 1008
        async with pro(market, creds) as ex:
            key = (await within(ex.dapiPrivatePostListenKey()))["listenKey"]
        async with raw(market, key) as user:
            await user_stream_open(market, creds["account_id"])()
            await control(market.post, "reset", {"scenario": "manual"})
            expired = await user.recv()
            assert expired == {"e": "listenKeyExpired", "E": START_MS, "listenKey": key}
            with contextlib.suppress(websockets.ConnectionClosed):
                await user.recv(2)
            assert user.ws.close_code == 1000
    run(scenario())
    assert_no_stream_errors(market)


# ---- coalescing ----------------------------------------------------------------------------


def test_thirty_days_in_one_advance_coalesce_market_frames_not_user_events(
        market: Market) -> None:
    creds = market.account()

    async def scenario() -> None:
        async with pro(market, creds) as ex:
            await within(ex.create_order(SYMBOL, "market", "buy", 50))
            await within(ex.create_order(SYMBOL, "limit", "sell", 20, 61000))
            key = (await within(ex.dapiPrivatePostListenKey()))["listenKey"]
        async with raw(market, "0") as public, raw(market, key) as user:
            await public.send({"method": "SUBSCRIBE", "id": 1, "params": [
                f"{STREAM}@markPrice@1s", f"{STREAM}@depth@100ms", f"{STREAM}@depth"]})
            assert (await public.recv())["result"] is None
            await public.drain(0.3)
            await user_stream_open(market, creds["account_id"])()
            await control(market.prices, "61500")  # fills the resting sell: 30 long remain
            events = await control(market.advance, 30 * DAY_MS)
            await control(market.prices, "62000")
            end_ms = START_MS + 30 * DAY_MS
            market_frames = await public.drain(1.5, until=lambda got: any(  # the last state
                f.get("e") == "markPriceUpdate" and f["E"] == end_ms
                and f["i"] == "62000.00000000" for f in got))
            paid = sum(1 for e in events if e.get("account_id") == creds["account_id"]
                       and e["type"] == "funding.payment" and Decimal(e["amount"]) != 0)
            user_frames = await user.drain(until=lambda got: sum(
                1 for f in got if f.get("e") == "ACCOUNT_UPDATE"
                and f["a"]["m"] == "FUNDING_FEE") >= paid)
        mine = [e for e in events if e.get("account_id") == creds["account_id"]]
        payments = [e for e in mine if e["type"] == "funding.payment"
                    and Decimal(e["amount"]) != 0]
        assert len(payments) == 90
        fees = [f for f in user_frames if f["e"] == "ACCOUNT_UPDATE"
                and f["a"]["m"] == "FUNDING_FEE"]
        assert [f["E"] for f in fees] == [e["time"] for e in payments]
        assert [f["a"]["B"][0]["wb"] for f in fees] == [
            format(Decimal(e["wallet"]), ".8f") for e in payments]
        times = [f["E"] for f in user_frames]
        assert times == sorted(times)
        assert len(market_frames) < 50
        assert {f["e"] for f in market_frames} <= {"markPriceUpdate", "depthUpdate"}
        marks = [f for f in market_frames if f["e"] == "markPriceUpdate"]
        assert marks[-1]["E"] == START_MS + 30 * DAY_MS
        assert marks[-1]["i"] == "62000.00000000"
    run(scenario())
    assert_no_stream_errors(market)
