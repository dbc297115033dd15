"""Fault containment (issue 15): an exception inside a simulated instant marks the market
broken, GET /control/health says what broke and where, every later call answers a clear error
until a reset, and the realtime clock task survives."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from safety_helpers import app_client

from perpsim.api.app import create_app
from perpsim.api.security import IN_PROCESS
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig, ServerState
from perpsim.sim import funding

HOUR_MS = 3_600_000


@pytest.fixture
def failing_funding(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """funding.settle_due raises at the first funding time it reaches (a simulated bug)."""
    real = funding.settle_due
    calls: list[int] = []

    def settle_due(ex: Any, t_ms: int) -> None:
        if t_ms % (8 * HOUR_MS) == 0 and not calls:
            calls.append(t_ms)
            raise ZeroDivisionError("simulated bug in funding")
        real(ex, t_ms)

    monkeypatch.setattr(funding, "settle_due", settle_due)
    return calls


def test_an_error_inside_an_instant_breaks_the_market_loudly(failing_funding: list[int]) -> None:
    client, state = app_client()
    creds = client.post("/control/accounts", json={"balances": {"BTC": "1"}}).json()
    response = client.post("/control/advance", json={"ms": 9 * HOUR_MS})
    assert response.status_code == 500
    health = client.get("/control/health").json()
    assert health["status"] == "broken"
    broken = health["broken"]
    assert broken["error"] == "ZeroDivisionError: simulated bug in funding"
    assert broken["during"] == "advance"
    assert broken["time"] == failing_funding[0]
    # where: the innermost perpsim frame, inside the simpy process that raised
    assert broken["where"].startswith("perpsim.sim.exchange:")
    assert broken["where"].endswith("in on_instant")
    # every later call is a clear 503, control plane and dialect alike
    for path in ("/control/state", "/control/journal"):
        later = client.get(path)
        assert later.status_code == 503
        assert later.json()["error"] == "market_broken"
        assert "simulated bug in funding" in later.json()["message"]
    assert client.post("/control/advance", json={"ms": 1}).status_code == 503
    dialect = client.get("/dapi/v1/time")
    assert dialect.status_code == 503
    assert dialect.json()["code"] == -1001
    assert "POST /control/reset" in dialect.json()["msg"]
    assert client.get("/dapi/v1/account", headers={"X-MBX-APIKEY": creds["api_key"]}
                      ).status_code == 503
    # a reset rebuilds a working market
    assert client.post("/control/reset", json={}).status_code == 200
    assert client.get("/control/health").json()["status"] == "ok"
    advanced = client.post("/control/advance", json={"ms": 9 * HOUR_MS})
    assert advanced.status_code == 200
    assert any(e["type"] == "funding.settled" for e in advanced.json()["events"])
    assert state.exchange.containment.broken is None


def test_an_unexpected_error_in_a_state_changing_request_breaks_the_market(
        monkeypatch: pytest.MonkeyPatch) -> None:
    client, state = app_client()

    def explode(*args: object, **kwargs: object) -> None:
        raise KeyError("half applied")

    monkeypatch.setattr(state.exchange, "create_account", explode)
    assert client.post("/control/accounts", json={"balances": {"BTC": "1"}}).status_code == 500
    health = client.get("/control/health").json()
    assert health["broken"]["during"] == "POST /control/accounts"
    assert client.get("/control/state").status_code == 503


def test_the_dashboard_snapshot_says_what_broke(failing_funding: list[int]) -> None:
    client, _ = app_client()
    client.post("/control/advance", json={"ms": 9 * HOUR_MS})
    snapshot = client.get("/ui/api/snapshot")
    assert snapshot.status_code == 503
    assert snapshot.json()["error"] == "market_broken"  # dashboard.js shows this message
    assert client.get("/ui").status_code == 200


def test_the_realtime_clock_task_survives_and_reports(failing_funding: list[int]) -> None:
    state = ServerState(ServerConfig(start="2024-01-01T07:59:59Z", clock="realtime",
                                     speed=1000))
    with serve_in_thread(create_app(state=state, security=IN_PROCESS)) as url, \
            httpx.Client(base_url=url, timeout=10) as http:
        deadline = time.monotonic() + 30
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = http.get("/control/health").json()
            if health["status"] == "broken":
                break
            time.sleep(0.05)
        assert health["status"] == "broken", health
        assert health["clock_task"] == "running"
        assert "simulated bug in funding" in health["broken"]["error"]
        assert http.get("/control/state").status_code == 503
        # the task is alive: after a reset, realtime time moves again
        assert http.post("/control/reset", json={"clock": "realtime", "speed": 1000,
                                                 "start": "2024-01-02T00:00:00Z"}
                         ).status_code == 200
        first = http.get("/control/state").json()["now"]
        time.sleep(0.3)
        assert http.get("/control/state").json()["now"] > first
        assert http.get("/control/health").json()["status"] == "ok"
