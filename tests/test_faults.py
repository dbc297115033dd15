"""Fault injection (api/faults.py, api/fault_rates.py, api/harness.py, /control/faults): each
kind behaves as specified, only for the account or endpoint it names, and a seed makes it
deterministic. In-process where the wall clock matters (a fake one), a live server and real
ccxt / WebSocket clients where the wire matters."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import ccxt
import httpx
import pytest
import websockets

from perpsim.api.app import create_app
from perpsim.api.binance_coinm.faults import request_weight
from perpsim.api.binance_coinm.stream_hub import existing_hub
from perpsim.api.harness import install_harness
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig, ServerState
from perpsim.strategy.connect import connect

from api_helpers import AsgiClient
from conftest import START, START_MS
from live_market import until

SYMBOL = "BTC/USD:BTC"


class FakeWall:
    """A wall clock the test moves by hand."""

    def __init__(self, ms: int = 1_800_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class InProcess(AsgiClient):
    """The app in-process, with the fault harness installed and an optional fake wall clock."""

    def __init__(self, wall: FakeWall | None) -> None:
        state = ServerState(ServerConfig(start=START), wall_ms=wall)
        super().__init__(create_app(state=state))
        install_harness(self.app)


def in_process(wall: FakeWall | None = None) -> InProcess:
    return InProcess(wall)


def add(client: Any, *specs: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post("/control/faults", json=list(specs))
    assert response.status_code == 201, response.text
    rules: list[dict[str, Any]] = response.json()["faults"]
    return rules


# ---- the control plane -------------------------------------------------------------------------
def test_rules_are_listed_with_counters_removed_and_validated() -> None:
    client = in_process()
    assert client.get("/control/faults").json() == {"faults": [], "ws_connections": {}}
    (rule,) = add(client, {"kind": "http_5xx", "path": "/dapi/v1/time", "count": 1})
    assert rule["id"] == "f1"
    assert client.get("/dapi/v1/time").status_code == 503
    assert client.get("/dapi/v1/time").status_code == 200
    (listed,) = client.get("/control/faults").json()["faults"]
    assert (listed["seen"], listed["fired"]) == (2, 1)
    bad = client.post("/control/faults", json={"kind": "downtime", "start_ms": 5, "end_ms": 5})
    assert bad.status_code == 400
    assert "start_ms < end_ms" in bad.json()["message"]
    unknown = client.post("/control/faults", json=[{"kind": "latency"}, {"kind": "flood"}])
    assert unknown.status_code == 400
    assert unknown.json()["message"].startswith("fault 1: kind")
    assert client.post("/control/faults", json={"kind": "latency", "id": "f1"}).status_code == 400
    assert len(client.get("/control/faults").json()["faults"]) == 1  # all or nothing
    assert client.delete("/control/faults/nope").status_code == 404
    assert client.delete("/control/faults/f1").json() == {"removed": 1}


def test_the_control_plane_is_never_faulted_and_rules_outlive_a_reset() -> None:
    client = in_process()
    add(client, {"kind": "http_5xx", "path": "*"})
    assert client.get("/control/state").status_code == 200
    assert client.post("/control/reset", json={"start": START}).status_code == 200
    assert client.get("/dapi/v1/ping").status_code == 503
    assert client.get("/docs").status_code == 200  # whatever the glob: dialect paths only
    assert client.delete("/control/faults").json() == {"removed": 1}
    assert client.get("/dapi/v1/ping").status_code == 200


def test_a_seed_makes_faults_deterministic() -> None:
    def statuses(seed: int) -> list[int]:
        client = in_process(FakeWall())
        add(client, {"kind": "http_5xx", "status": 502, "probability": 0.5, "seed": seed,
                     "path": "/dapi/v1/time", "after": 2, "count": 10})
        return [client.get("/dapi/v1/time").status_code for _ in range(40)]

    first = statuses(7)
    assert first == statuses(7)
    assert first != statuses(8)
    assert first[:2] == [200, 200]  # ``after``
    assert first.count(502) == 10  # ``count``


# ---- rate limits (wall time, a fake clock) ----------------------------------------------------
def test_weights_follow_binance() -> None:
    assert request_weight("GET", "/dapi/v1/depth", {"limit": "10"}) == 2
    assert request_weight("GET", "/dapi/v1/depth", {"limit": "1000"}) == 20
    assert request_weight("GET", "/dapi/v1/klines", {"limit": "500"}) == 5
    assert request_weight("GET", "/dapi/v1/ticker/24hr", {}) == 40
    assert request_weight("GET", "/dapi/v1/ticker/24hr", {"symbol": "BTCUSD_PERP"}) == 1
    assert request_weight("GET", "/dapi/v1/account", {}) == 5
    assert request_weight("POST", "/dapi/v1/order", {}) == 1


def test_rate_limit_429_with_retry_after_then_418_for_a_client_that_ignores_it() -> None:
    wall = FakeWall()
    client = in_process(wall)
    add(client, {"kind": "rate_limit", "limit": 12, "ban_after": 2, "ban_ms": 300_000})
    for _ in range(6):  # weight 2 each
        ok = client.get("/dapi/v1/depth", params={"symbol": "BTCUSD_PERP", "limit": 5})
        assert ok.status_code == 200
    assert ok.headers["X-MBX-USED-WEIGHT-1M"] == "12"
    wall.ms += 20_000
    refused = client.get("/dapi/v1/ping")
    assert refused.status_code == 429
    assert refused.json()["code"] == -1003
    assert refused.headers["Retry-After"] == "40"  # the window ends 40 s later
    assert client.get("/control/state").status_code == 200  # not the control plane
    wall.ms += 1_000
    assert client.get("/dapi/v1/ping").status_code == 429  # 1st time it did not wait
    banned = client.get("/dapi/v1/ping")  # 2nd: banned
    assert banned.status_code == 418
    assert banned.headers["Retry-After"] == "300"
    wall.ms += 60_000  # a new window, still banned
    assert client.get("/dapi/v1/ping").status_code == 418
    wall.ms += 300_000
    assert client.get("/dapi/v1/ping").status_code == 200
    (rule,) = client.get("/control/faults").json()["faults"]
    assert rule["bans"] == 1


def test_a_well_behaved_client_is_never_banned_and_orders_count_separately() -> None:
    wall = FakeWall()
    client = in_process(wall)
    add(client, {"kind": "rate_limit", "limit": 2, "interval_ms": 10_000, "unit": "orders"})
    assert client.get("/dapi/v1/ping").status_code == 200  # not an order: not counted
    for _ in range(2):
        assert client.post("/dapi/v1/order").status_code == 401  # counted, then refused: no key
    refused = client.post("/dapi/v1/order")
    assert refused.status_code == 429
    assert refused.json()["code"] == -1015
    wall.ms += int(refused.headers["Retry-After"]) * 1000  # waits as told
    assert client.post("/dapi/v1/order").status_code == 401


def test_a_rate_limit_naming_an_account_counts_only_its_requests() -> None:
    client = in_process(FakeWall())
    a = client.post("/control/accounts", json={"balances": {"BTC": "1"}}).json()
    b = client.post("/control/accounts", json={"balances": {"BTC": "1"}}).json()
    add(client, {"kind": "rate_limit", "limit": 3, "account_id": a["account_id"]})
    for _ in range(5):
        assert client.get("/dapi/v1/ping",
                          headers={"X-MBX-APIKEY": b["api_key"]}).status_code == 200
    codes = [client.get("/dapi/v1/ping", headers={"X-MBX-APIKEY": a["api_key"]}).status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_latency_delays_only_the_named_endpoint() -> None:
    client = in_process()
    add(client, {"kind": "latency", "path": "/dapi/v1/time", "ms": 300, "jitter_ms": 50})
    t0 = time.monotonic()
    assert client.get("/dapi/v1/time").status_code == 200
    slow = time.monotonic() - t0
    assert slow >= 0.3  # a lower bound only: a busy machine makes every call slower
    assert client.get("/dapi/v1/ping").status_code == 200
    # Which requests were delayed is read from the rule's counters, not from timings.
    (rule,) = client.get("/control/faults").json()["faults"]
    assert (rule["seen"], rule["fired"]) == (1, 1)


# ---- the wire, with real clients ---------------------------------------------------------------
class Live:
    """A live server of this module (harness installed) and a control-plane client."""

    def __init__(self, base_url: str, state: ServerState) -> None:
        self.base_url, self.state = base_url, state
        self.ws = base_url.replace("http://", "ws://") + "/ws"
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def post(self, path: str, body: Any) -> Any:
        response = self.http.post(f"/control/{path}", json=body)
        assert response.status_code < 300, response.text
        return response.json()

    def journal(self, kind: str) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in self.http.get("/control/journal").text.splitlines()]
        return [{"type": r["type"], **r["payload"]} for r in rows if r["type"] == kind]


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    state = ServerState(ServerConfig(start=START))
    app = create_app(state=state)
    install_harness(app)
    with serve_in_thread(app) as base_url:
        handle = Live(base_url, state)
        yield handle
        handle.http.close()


@pytest.fixture
def two(live: Live) -> tuple[dict[str, str], dict[str, str]]:
    """A fresh manual market, no faults, and two funded accounts."""
    live.http.delete("/control/faults")
    live.post("reset", {"scenario": "manual", "start": START, "clock": "stepped"})
    return (live.post("accounts", {"balances": {"BTC": "1"}}),
            live.post("accounts", {"balances": {"BTC": "1"}}))


@pytest.mark.parametrize(("status", "error"), [
    (500, ccxt.OperationFailed), (502, ccxt.ExchangeNotAvailable),
    (503, ccxt.OperationFailed), (504, ccxt.RequestTimeout)])
def test_5xx_answers_are_what_ccxt_expects(live: Live, two: Any, status: int,
                                           error: type[Exception]) -> None:
    live.post("faults", {"kind": "http_5xx", "status": status, "path": "/dapi/v1/time",
                         "count": 1})
    ex = connect(live.base_url, None, None)
    with pytest.raises(error):
        ex.fetch_time()
    assert ex.fetch_time() == START_MS


def test_an_executed_5xx_places_the_order_and_loses_the_answer(live: Live, two: Any) -> None:
    a, b = two
    live.post("faults", {"kind": "http_5xx", "executed": True, "path": "/dapi/v1/order",
                         "method": "POST", "account_id": a["account_id"]})
    ex_a = connect(live.base_url, a["api_key"], a["api_secret"])
    with pytest.raises(ccxt.RequestTimeout):  # −1007: execution status unknown
        ex_a.create_order(SYMBOL, "market", "sell", 10, None, {"clientOrderId": "mine-1"})
    assert ex_a.fetch_order(None, SYMBOL, {"origClientOrderId": "mine-1"})["status"] == "closed"
    ex_b = connect(live.base_url, b["api_key"], b["api_secret"])
    assert ex_b.create_order(SYMBOL, "market", "sell", 10)["status"] == "closed"


def test_order_rejects_only_for_the_named_account(live: Live, two: Any) -> None:
    a, b = two
    live.post("faults", {"kind": "order_reject", "account_id": a["account_id"], "count": 1})
    ex_a = connect(live.base_url, a["api_key"], a["api_secret"])
    with pytest.raises(ccxt.InvalidOrder, match="-2010"):
        ex_a.create_order(SYMBOL, "market", "sell", 10)
    ex_b = connect(live.base_url, b["api_key"], b["api_secret"])
    ex_b.create_order(SYMBOL, "market", "sell", 10)
    assert [e["account_id"] for e in live.journal("order.update")
            if e["execution"] == "NEW"] == [b["account_id"]]  # A's reject never reached it
    ex_a.create_order(SYMBOL, "market", "sell", 10)  # count 1: the next one passes


@pytest.mark.parametrize("orders", ["cancel", "hold"])
def test_downtime_fails_requests_and_applies_the_resting_orders_policy(
        live: Live, two: Any, orders: str) -> None:
    a, b = two
    ex_a = connect(live.base_url, a["api_key"], a["api_secret"])
    ex_b = connect(live.base_url, b["api_key"], b["api_secret"])
    resting_a = ex_a.create_order(SYMBOL, "limit", "buy", 10, 50_000)
    resting_b = ex_b.create_order(SYMBOL, "limit", "buy", 10, 50_000)
    live.post("faults", {"kind": "downtime", "start_ms": START_MS + 1_000,
                         "end_ms": START_MS + 60_000, "orders": orders,
                         "account_id": a["account_id"]})
    assert ex_a.fetch_time()  # before the window
    live.post("advance", {"ms": 2_000})
    (opened,) = live.journal("fault.downtime")
    assert (opened["orders"], opened["account_id"]) == (orders, a["account_id"])
    with pytest.raises(ccxt.OnMaintenance):
        ex_a.fetch_order(resting_a["id"], SYMBOL)
    assert ex_b.fetch_order(resting_b["id"], SYMBOL)["status"] == "open"  # not named
    live.post("advance", {"ms": 58_000})  # the window ends
    assert ex_a.fetch_order(resting_a["id"], SYMBOL)["status"] == (
        "canceled" if orders == "cancel" else "open")


def test_downtime_refuses_the_named_accounts_streams(live: Live, two: Any) -> None:
    a, _ = two
    live.post("faults", {"kind": "downtime", "start_ms": START_MS, "end_ms": START_MS + 1_000,
                         "account_id": a["account_id"]})
    key = live.http.post("/dapi/v1/listenKey", headers={"X-MBX-APIKEY": a["api_key"]})
    assert key.status_code == 503

    async def market_stream() -> Any:
        async with websockets.connect(f"{live.ws}/btcusd_perp@markPrice") as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 5))

    assert asyncio.run(market_stream())["e"] == "markPriceUpdate"  # public: no account named


# ---- WebSocket faults on the user stream -------------------------------------------------------
async def _user_stream(live: Live, creds: dict[str, str]) -> tuple[Any, str]:
    response = await asyncio.to_thread(live.http.post, "/dapi/v1/listenKey",
                                       headers={"X-MBX-APIKEY": creds["api_key"]})
    key = response.json()["listenKey"]
    ws = await websockets.connect(f"{live.ws}/{key}")
    await until(lambda: bool((hub := existing_hub(live.state)) and hub.users.get(
        creds["account_id"])), "the user stream")
    return ws, key


async def _collect(ws: Any, expect: int, quiet_s: float = 0.6
                   ) -> tuple[list[dict[str, Any]], int | None, float | None]:
    """Frames until the socket closes, or until ``expect`` frames came (each awaited up to
    10 s: a busy machine may pause longer than ``quiet_s``) and then none for ``quiet_s``;
    (frames, close code or None, monotonic time of the first frame)."""
    frames: list[dict[str, Any]] = []
    first_at = None
    try:
        while True:
            wait_s = 10.0 if len(frames) < expect else quiet_s
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), wait_s)))
            first_at = first_at or time.monotonic()
    except TimeoutError:
        return frames, None, first_at
    except websockets.ConnectionClosed as closed:
        return frames, closed.rcvd.code if closed.rcvd else None, first_at


def _streams(live: Live, two: Any, *specs: dict[str, Any], expect_a: int = 3) -> dict[str, Any]:
    """Both accounts' user streams while each places one market order (3 frames each, or
    ``expect_a`` for the faulted account a)."""
    a, b = two
    live.post("faults", list(specs))
    expect = {"a": expect_a, "b": 3}

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for who, creds in (("a", a), ("b", b)):
            ws, key = await _user_stream(live, creds)
            ex = connect(live.base_url, creds["api_key"], creds["api_secret"])
            t0 = time.monotonic()
            await asyncio.to_thread(ex.create_order, SYMBOL, "market", "sell", 10)
            frames, code, first_at = await _collect(ws, expect[who])
            out[who] = {"frames": [f.get("e") for f in frames], "code": code, "key": key,
                        "first_s": None if first_at is None else first_at - t0}
            await ws.close()
        return out

    return asyncio.run(asyncio.wait_for(scenario(), 90))


def test_ws_disconnect_closes_only_the_named_accounts_stream(live: Live, two: Any) -> None:
    got = _streams(live, two, {"kind": "ws_disconnect", "account_id": two[0]["account_id"],
                               "after": 1, "count": 1}, expect_a=1)
    assert got["a"]["frames"] == ["ORDER_TRADE_UPDATE"]
    assert got["a"]["code"] == 1001
    assert got["b"]["frames"] == ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE"]
    assert got["b"]["code"] is None


def test_ws_drop_loses_only_the_named_stream(live: Live, two: Any) -> None:
    got = _streams(live, two, {"kind": "ws_drop", "account_id": two[0]["account_id"],
                               "stream": "ORDER_TRADE_UPDATE"}, expect_a=1)
    assert got["a"]["frames"] == ["ACCOUNT_UPDATE"]
    assert got["b"]["frames"] == ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE"]


def test_ws_delay_makes_frames_late_but_in_order(live: Live, two: Any) -> None:
    got = _streams(live, two, {"kind": "ws_delay", "account_id": two[0]["account_id"],
                               "ms": 400})
    assert got["a"]["frames"] == got["b"]["frames"]
    assert got["a"]["first_s"] >= 0.4  # a lower bound only (a busy machine is slower)
    # b's frames were not delayed: the rule saw and delayed a's three frames and nothing else
    (rule,) = live.http.get("/control/faults").json()["faults"]
    assert (rule["seen"], rule["fired"]) == (3, 3)


def test_listen_key_expiry_ends_the_stream_and_the_key(live: Live, two: Any) -> None:
    a, _ = two
    got = _streams(live, two, {"kind": "listen_key_expiry", "account_id": a["account_id"]},
                   expect_a=1)
    assert got["a"]["frames"] == ["listenKeyExpired"]
    assert got["a"]["code"] == 1000
    assert len(got["b"]["frames"]) == 3
    renewed = live.http.put("/dapi/v1/listenKey", headers={"X-MBX-APIKEY": a["api_key"]})
    assert renewed.status_code == 400  # the expired key cannot be kept alive
    fresh = live.http.post("/dapi/v1/listenKey", headers={"X-MBX-APIKEY": a["api_key"]})
    assert fresh.json()["listenKey"] != got["a"]["key"]


def test_rate_limit_counts_violations_per_retry_after_not_per_run() -> None:
    # Requests already in flight when a 429 goes out arrive "during" its Retry-After; a client
    # that then waits it out starts clean. Only ban_after sends during ONE Retry-After ban it.
    from perpsim.api.fault_rates import RateBudget
    from perpsim.api.faults import FaultSpec

    budget = RateBudget(FaultSpec(kind="rate_limit", limit=2, interval_ms=1000, ban_after=2),
                        "f1", installed_wall_ms=0)
    for episode_ms in (0, 1000, 2000):  # three windows, each overspent, each waited out
        assert budget.charge(1, episode_ms) is None
        assert budget.charge(1, episode_ms) is None
        assert budget.charge(1, episode_ms).status == 429  # the 429: wait until the window ends
        assert budget.charge(1, episode_ms + 1).status == 429  # one in flight: a violation
    assert budget.bans == 0
    assert budget.charge(1, 2002).status == 418  # a second send in the same Retry-After
    assert budget.bans == 1
