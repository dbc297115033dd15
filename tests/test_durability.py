"""Nothing acknowledged is lost (issue 15, points 3 and 5): ``perpsim serve --state-dir``
survives kill -9, snapshots restore, and SIGTERM / SIGINT close a recording properly. Real
server processes on free loopback ports, stopped by the tests."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from safety_helpers import app_client

from perpsim.api.binance_coinm.signing import sign
from perpsim.api.server import free_port
from perpsim.replay import main as replay_main

HOUR_MS = 3_600_000
SYMBOL = "BTCUSD_PERP"
Call = Callable[..., httpx.Response]


@contextmanager
def server(cwd: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], httpx.Client]]:
    """``perpsim serve`` in a subprocess on a free port; killed at the end if still running."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "perpsim", "serve", "--port", str(port), *args], cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                _out, err = process.communicate()
                raise AssertionError(f"perpsim serve exited {process.returncode}: {err}")
            try:
                if client.get("/control/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "perpsim serve did not start"
            time.sleep(0.1)
        yield process, client
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
        process.communicate()


def _signed(http: Any, creds: dict[str, str], method: str, path: str,
            params: dict[str, Any]) -> httpx.Response:
    payload = f"timestamp={int(time.time() * 1000)}&{urlencode(params)}&recvWindow=60000"
    payload += "&signature=" + sign(payload, creds["api_secret"])
    headers = {"X-MBX-APIKEY": creds["api_key"]}
    if method in ("GET", "DELETE"):
        return http.request(method, f"{path}?{payload}", headers=headers)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return http.request(method, path, content=payload, headers=headers)


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 300, response.text
    body: dict[str, Any] = response.json()
    return body


def part_one(http: Any) -> dict[str, str]:
    """Open an account, move prices, trade, cross a funding time; the account's credentials."""
    creds: dict[str, str] = _ok(http.post("/control/accounts", json={"balances": {"BTC": "2"}}))
    _ok(http.post("/control/prices", json={"symbol": SYMBOL, "index": "61000"}))
    _ok(_signed(http, creds, "POST", "/dapi/v1/order",
                {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": 10,
                 "price": "60000", "timeInForce": "GTC"}))
    _ok(_signed(http, creds, "POST", "/dapi/v1/order",
                {"symbol": SYMBOL, "side": "SELL", "type": "MARKET", "quantity": 5}))
    _ok(http.post("/control/advance", json={"ms": 8 * HOUR_MS + 1}))
    return creds


def part_two(http: Any, creds: dict[str, str]) -> None:
    """Keep trading with the same credentials after the interruption."""
    _ok(http.post("/control/prices", json={"symbol": SYMBOL, "index": "59000"}))
    _ok(http.post("/control/advance", json={"ms": HOUR_MS}))
    _ok(_signed(http, creds, "DELETE", "/dapi/v1/allOpenOrders", {"symbol": SYMBOL}))
    _ok(_signed(http, creds, "POST", "/dapi/v1/leverage", {"symbol": SYMBOL, "leverage": 5}))
    _ok(_signed(http, creds, "POST", "/dapi/v1/order",
                {"symbol": SYMBOL, "side": "BUY", "type": "MARKET", "quantity": 7}))
    _ok(http.post("/control/advance", json={"ms": 16 * HOUR_MS}))


def journal_sha(http: Any) -> str:
    return hashlib.sha256(http.get("/control/journal").text.encode()).hexdigest()


@pytest.fixture(scope="module")
def uninterrupted_sha() -> str:
    """The journal of parts one and two run without interruption, in-process."""
    client, _ = app_client()
    part_two(client, part_one(client))
    return journal_sha(client)


def test_kill_9_then_restart_resumes_every_acknowledged_request(
        tmp_path: Path, uninterrupted_sha: str) -> None:
    with server(tmp_path, "--state-dir", "state") as (process, http):
        creds = part_one(http)
        before_kill = journal_sha(http)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    with server(tmp_path, "--state-dir", "state") as (process, http):
        assert journal_sha(http) == before_kill
        part_two(http, creds)  # the credentials survived the restart too
        assert journal_sha(http) == uninterrupted_sha
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_a_snapshot_replays_and_restores(tmp_path: Path, uninterrupted_sha: str) -> None:
    with server(tmp_path, "--state-dir", "state") as (process, http):
        creds = part_one(http)
        summary = _ok(http.post("/control/snapshot", json={"path": "snap.jsonl"}))
        assert summary["requests"] >= 5
        refused = http.post("/control/snapshot", json={"path": "/tmp/elsewhere.jsonl"})
        assert refused.status_code == 400
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert replay_main([str(tmp_path / "snap.jsonl")]) == 0
    with server(tmp_path, "--restore", "snap.jsonl", "--state-dir", "state2") as (process, http):
        assert hashlib.sha256(http.get("/control/journal").text.encode()).hexdigest() == (
            _journal_sha_of_snapshot(tmp_path / "snap.jsonl"))
        part_two(http, creds)
        assert journal_sha(http) == uninterrupted_sha


def _journal_sha_of_snapshot(path: Path) -> str:
    from perpsim.api.recording import load_recording
    from perpsim.replay import rebuild

    rebuilt = rebuild(load_recording(path))
    return hashlib.sha256(rebuilt.state.exchange.journal.to_jsonl().encode()).hexdigest()


def test_snapshot_needs_a_state_dir() -> None:
    client, _ = app_client()
    response = client.post("/control/snapshot", json={"path": "s.jsonl"})
    assert response.status_code == 409
    assert "--state-dir" in response.json()["message"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_close_the_recording(tmp_path: Path, sig: signal.Signals) -> None:
    with server(tmp_path, "--record", "run.jsonl") as (process, http):
        part_one(http)
        process.send_signal(sig)
        assert process.wait(timeout=30) == 0
        out = process.stdout.read() if process.stdout else ""
    assert "perpsim: recorded" in out
    assert replay_main([str(tmp_path / "run.jsonl")]) == 0


def test_kill_9_while_requests_are_in_flight_loses_nothing_acknowledged(tmp_path: Path) -> None:
    import threading

    acknowledged: list[str] = []
    with server(tmp_path, "--state-dir", "state") as (process, http):
        stop = threading.Event()

        def hammer() -> None:
            n = 0
            with httpx.Client(base_url=str(http.base_url), timeout=5) as own:
                while not stop.is_set():
                    n += 1
                    try:
                        response = own.post("/control/accounts",
                                            json={"balances": {"BTC": "1"}, "label": f"c{n}"})
                    except httpx.TransportError:
                        return  # the server died mid-request: not acknowledged
                    if response.status_code == 201:
                        acknowledged.append(response.json()["account_id"])

        workers = [threading.Thread(target=hammer) for _ in range(3)]
        for worker in workers:
            worker.start()
        while len(acknowledged) < 30:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        stop.set()
        for worker in workers:
            worker.join(30)
    assert len(acknowledged) >= 30
    with server(tmp_path, "--state-dir", "state") as (process, http):
        for account_id in acknowledged:
            assert http.get(f"/control/accounts/{account_id}").status_code == 200, account_id
        state = http.get("/control/state").json()
        assert state["ledger"]["total"] == state["ledger"]["deposits"]
