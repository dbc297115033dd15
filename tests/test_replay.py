"""Record and replay (api/recording.py, perpsim/replay.py): a recorded run — a real hedge over
ccxt.pro, a session that meets faults, a realtime market — replays on a fresh in-process market
to the identical journal digest; a tampered, truncated or foreign file is detected."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from perpsim.api.app import create_app
from perpsim.api.harness import install_harness, record_to
from perpsim.api.recording import load_recording
from perpsim.api.security import IN_PROCESS
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig
from perpsim.replay import EXIT_BAD_FILE, EXIT_DIFFER, EXIT_EQUAL, add_replay_parser, replay, run
from perpsim.strategy.connect import connect
from perpsim.strategy.dryrun import dry_run
from perpsim.strategy.record import HedgeConfig

from conftest import START, START_MS

SYMBOL = "BTC/USD:BTC"
HOUR = 3_600_000


def serve(config: ServerConfig) -> Any:
    app = create_app(config, security=IN_PROCESS)  # records into pytest's tmp_path
    install_harness(app)
    return serve_in_thread(app)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(ServerConfig(start=START)) as url:
        yield url


def journal_digest(http: httpx.Client) -> str:
    return hashlib.sha256(http.get("/control/journal").text.encode("ascii")).hexdigest()


def record(http: httpx.Client, path: Path) -> None:
    response = http.post("/control/record", json={"path": str(path)})
    assert response.status_code == 200, response.text


def stop(http: httpx.Client) -> dict[str, Any]:
    response = http.post("/control/record", json={"stop": True})
    assert response.status_code == 200, response.text
    summary: dict[str, Any] = response.json()
    return summary


def test_a_recorded_hedge_replays_to_the_same_digest(base_url: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hedge.jsonl"
    with httpx.Client(base_url=base_url, timeout=30) as http:
        record(http, path)
        assert http.get("/control/record").json()["recording"] is True
        config = HedgeConfig(end_ms=START_MS + 12 * HOUR, decision_interval_ms=4 * HOUR)
        asyncio.run(dry_run(base_url, config, scenario="calm"))
        summary = stop(http)
        assert summary["journal_digest"] == journal_digest(http)
    assert summary["requests"] > 50
    assert run(path) == EXIT_EQUAL
    out = capsys.readouterr().out
    assert f"digest:   {summary['journal_digest']}" in out
    assert "EQUAL" in out


def test_a_session_that_met_faults_replays_exactly(base_url: str, tmp_path: Path) -> None:
    path = tmp_path / "faults.jsonl"
    with httpx.Client(base_url=base_url, timeout=30) as http:
        http.delete("/control/faults")
        record(http, path)
        http.post("/control/reset", json={"scenario": "manual", "start": START})
        creds = http.post("/control/accounts", json={"balances": {"BTC": "1"}}).json()
        http.post("/control/faults", json=[
            {"kind": "order_reject", "count": 1},
            {"kind": "http_5xx", "executed": True, "path": "/dapi/v1/order", "method": "POST",
             "after": 1, "count": 1},
            {"kind": "downtime", "start_ms": START_MS + 60_000, "end_ms": START_MS + 120_000,
             "orders": "cancel"}])
        ex = connect(base_url, creds["api_key"], creds["api_secret"])
        outcomes = []
        for side in ("sell", "sell", "buy"):
            try:
                ex.create_order(SYMBOL, "market", side, 10)
                outcomes.append("ok")
            except Exception as error:
                outcomes.append(type(error).__name__)
        ex.create_order(SYMBOL, "limit", "buy", 5, 55_000)  # rests: cancelled by the downtime
        http.post("/control/prices", json={"symbol": "BTCUSD_PERP", "index": "60500"})
        http.post("/control/advance", json={"ms": 90_000})
        summary = stop(http)
        http.delete("/control/faults")
    assert outcomes == ["InvalidOrder", "RequestTimeout", "ok"]
    recording = load_recording(path)
    assert [r["executed"] for r in recording.requests].count(False) == 1  # the reject
    result = replay(recording, str(path))
    assert result.skipped == 1
    assert result.status_mismatches == []
    assert result.digest == summary["journal_digest"]
    assert any('"fault.downtime"' in line for line in recording.events)


def test_a_realtime_run_served_with_a_recording_replays_exactly(tmp_path: Path) -> None:
    path = tmp_path / "realtime.jsonl"
    app = create_app(ServerConfig(scenario="calm", clock="realtime", speed=600),
                     security=IN_PROCESS)
    # what `perpsim serve --record FILE` does: record while the server runs
    with record_to(app, path) as summary, serve_in_thread(app) as url:
        creds = httpx.post(f"{url}/control/accounts", json={"balances": {"BTC": "1"}}).json()
        ex = connect(url, creds["api_key"], creds["api_secret"])
        for side in ("buy", "sell", "buy"):
            ex.create_order(SYMBOL, "market", side, 10)
            time.sleep(0.1)  # simulated time runs on between requests
        ex.create_order(SYMBOL, "limit", "buy", 10, 59_000)
        time.sleep(0.2)
    assert summary["requests"] >= 5
    result = replay(load_recording(path))
    assert result.digest == summary["journal_digest"]
    assert result.events == summary["events"]


def test_recording_is_one_at_a_time_and_needs_a_writable_path(base_url: str,
                                                              tmp_path: Path) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        assert http.post("/control/record", json={"stop": True}).status_code == 409
        assert http.post("/control/record", json={}).status_code == 400
        blocked = tmp_path / "file"
        blocked.write_text("x")
        assert http.post("/control/record",
                         json={"path": str(blocked / "sub" / "r.jsonl")}).status_code == 400
        record(http, tmp_path / "one.jsonl")
        assert http.post("/control/record",
                         json={"path": str(tmp_path / "two.jsonl")}).status_code == 409
        stop(http)
        assert http.get("/control/record").json() == {"recording": False}


# ---- tampering ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The lines of a small recorded session with an order."""
    path = tmp_path_factory.mktemp("replay") / "small.jsonl"
    with httpx.Client(base_url=base_url, timeout=30) as http:
        record(http, path)
        http.post("/control/reset", json={"scenario": "manual", "start": START})
        creds = http.post("/control/accounts", json={"balances": {"BTC": "1"}}).json()
        connect(base_url, creds["api_key"], creds["api_secret"]).create_order(
            SYMBOL, "market", "sell", 25)
        http.post("/control/advance", json={"ms": 8 * HOUR})
        stop(http)
    return path.read_text().splitlines()


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "edited.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_untouched_file_replays_equal(recorded: list[str], tmp_path: Path) -> None:
    assert run(write(tmp_path, recorded)) == EXIT_EQUAL


def test_an_edited_request_changes_the_digest(recorded: list[str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    lines = list(recorded)
    (i,) = [n for n, line in enumerate(lines) if '"path":"/dapi/v1/order"' in line]
    row = json.loads(lines[i])
    row["body"] = row["body"].replace("quantity=25", "quantity=26")
    lines[i] = json.dumps(row)
    assert run(write(tmp_path, lines)) == EXIT_DIFFER
    out = capsys.readouterr().out
    assert "DIFFERENT: first difference at event" in out
    assert "status:   request" in out  # the altered order no longer passes its signature


def test_an_edited_journal_or_a_cut_file_is_a_bad_file(recorded: list[str], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    lines = list(recorded)
    (i,) = [n for n, line in enumerate(lines) if '"type":"order.update"' in line
            and '"NEW"' in line]
    lines[i] = lines[i].replace('"qty":25', '"qty":24')
    assert run(write(tmp_path, lines)) == EXIT_BAD_FILE
    assert "does not match its recorded digest" in capsys.readouterr().err
    assert run(write(tmp_path, recorded[:-1])) == EXIT_BAD_FILE
    assert "no end record" in capsys.readouterr().err
    assert run(write(tmp_path, ["{not json"])) == EXIT_BAD_FILE
    assert run(write(tmp_path, ['{"kind": "request"}'])) == EXIT_BAD_FILE
    assert "not a perpsim recording" in capsys.readouterr().err
    assert run(tmp_path / "missing.jsonl") == EXIT_BAD_FILE


def test_the_replay_command_line(recorded: list[str], tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="perpsim")
    add_replay_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["replay", str(write(tmp_path, recorded))])
    assert args.run(args) == EXIT_EQUAL
