"""The fault registry's WebSocket rules on the Bybit v5 streams (raw websockets clients on
127.0.0.1, every wait bounded): ``stream`` globs match a frame's topic, ``account_id`` a private
connection from its ``auth`` on, op answers are never faulted, ``listen_key_expiry`` ends the
private session, downtime refuses the connection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from bybit_helpers import SYMBOL, fresh_pybit, private_ws, pybit_client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from live_market import START_MS, Market

PRIVATE_TOPICS = ["order", "execution", "position", "wallet"]


@pytest.fixture
def two(bybit_market: Market) -> Iterator[tuple[Any, Any]]:
    """Two pybit clients of two fresh accounts on a fresh market; faults cleared after."""
    first = fresh_pybit(bybit_market)
    second = pybit_client(bybit_market, bybit_market.account({"BTC": "1"}))
    yield first, second
    bybit_market.control.delete("/control/faults")


def _fault(market: Market, **spec: object) -> None:
    response = market.control.post("/control/faults", json=spec)
    assert response.status_code < 300, response.text


def _topics(ws: ClientConnection, quiet_s: float = 0.8, first_s: float = 15.0
            ) -> tuple[list[str], int | None]:
    """Topics of the data frames until the socket closes or stays quiet for ``quiet_s`` after
    the first frame; (topics, close code or None)."""
    topics: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            frame = json.loads(ws.recv(timeout=quiet_s if topics else first_s))
            if "topic" in frame:
                topics.append(frame["topic"])
    except TimeoutError:
        return topics, None
    except ConnectionClosed as closed:
        return topics, closed.rcvd.code if closed.rcvd else None
    return topics, None


def _sell(http: Any) -> None:
    http.place_order(category="inverse", symbol=SYMBOL, side="Sell", orderType="Market",
                     qty="100")


def _private_topics(market: Market, http: Any) -> tuple[list[str], int | None]:
    with private_ws(market, http.creds, PRIVATE_TOPICS) as ws:
        _sell(http)
        return _topics(ws)


def test_ws_drop_loses_only_the_named_accounts_topic(bybit_market: Market, two: Any) -> None:
    a, b = two
    _fault(bybit_market, kind="ws_drop", account_id=a.creds["account_id"], stream="execution")
    got_a, _ = _private_topics(bybit_market, a)
    got_b, _ = _private_topics(bybit_market, b)
    assert sorted(set(got_a)) == ["order", "position", "wallet"]
    assert sorted(set(got_b)) == sorted(PRIVATE_TOPICS)
    (rule,) = bybit_market.control.get("/control/faults").json()["faults"]
    assert rule["fired"] == got_b.count("execution") >= 1


def test_ws_disconnect_closes_only_the_named_private_connection(bybit_market: Market,
                                                                two: Any) -> None:
    a, b = two
    _fault(bybit_market, kind="ws_disconnect", account_id=a.creds["account_id"], count=1,
           close_code=4000)
    got_a, code_a = _private_topics(bybit_market, a)
    got_b, code_b = _private_topics(bybit_market, b)
    assert (got_a, code_a) == ([], 4000)
    assert (sorted(set(got_b)), code_b) == (sorted(PRIVATE_TOPICS), None)
    counted = bybit_market.control.get("/control/faults").json()["ws_connections"]
    assert counted == {a.creds["account_id"]: 1, b.creds["account_id"]: 1}


def test_listen_key_expiry_ends_the_private_session_not_the_public_one(
        bybit_market: Market, two: Any) -> None:
    a, _ = two
    _fault(bybit_market, kind="listen_key_expiry", account_id=a.creds["account_id"])
    got, code = _private_topics(bybit_market, a)
    assert (got, code) == ([], 1000)
    with _public(bybit_market, ["publicTrade.BTCUSD"]) as ws:
        _sell(a)
        topics, closed = _topics(ws)
    assert (topics, closed) == (["publicTrade.BTCUSD"], None)
    got_again, code_again = _private_topics(bybit_market, a)  # a new session: ended again
    assert (got_again, code_again) == ([], 1000)


@contextmanager
def _public(market: Market, topics: list[str]) -> Iterator[ClientConnection]:
    url = market.base_url.replace("http://", "ws://") + "/v5/public/inverse"
    with ws_connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"op": "subscribe", "req_id": "s", "args": topics}))
        assert json.loads(ws.recv(timeout=10))["success"] is True
        yield ws


def test_public_topics_drop_and_delay_by_topic_and_op_answers_pass(bybit_market: Market,
                                                                    two: Any) -> None:
    a, _ = two
    _fault(bybit_market, kind="ws_drop", stream="tickers.*")
    _fault(bybit_market, kind="ws_delay", stream="publicTrade.*", ms=300)
    with _public(bybit_market, ["tickers.BTCUSD", "publicTrade.BTCUSD"]) as ws:
        ws.send(json.dumps({"op": "ping", "req_id": "p"}))
        pong = json.loads(ws.recv(timeout=10))  # the ticker snapshot was dropped before it
        assert (pong["op"], pong["ret_msg"]) == ("ping", "pong")
        started = time.monotonic()
        _sell(a)
        topics, closed = _topics(ws)
        waited_s = time.monotonic() - started
    assert (topics, closed) == (["publicTrade.BTCUSD"], None)
    assert waited_s >= 0.3  # a lower bound only: the trade was held back
    rules = {r["kind"]: r for r in bybit_market.control.get("/control/faults").json()["faults"]}
    assert rules["ws_drop"]["fired"] >= 1
    assert rules["ws_delay"]["fired"] == 1


def test_downtime_refuses_the_bybit_streams(bybit_market: Market, two: Any) -> None:
    _fault(bybit_market, kind="downtime", start_ms=START_MS, end_ms=START_MS + 60_000)
    url = bybit_market.base_url.replace("http://", "ws://") + "/v5/public/inverse"
    with ws_connect(url, open_timeout=10) as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=10)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1013
