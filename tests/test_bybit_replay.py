"""A session through ccxt.bybit, recorded, replays on a fresh market to the identical journal
(the recording keeps the X-BAPI-* headers, so the replay re-checks every signature)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from perpsim.api.app import create_app
from perpsim.api.security import IN_PROCESS
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig
from perpsim.replay import EXIT_EQUAL, run
from perpsim.strategy.connect_bybit import connect_bybit

from conftest import START

SYMBOL = "BTC/USD:BTC"


def test_a_recorded_bybit_session_replays_to_the_same_digest(tmp_path: Path) -> None:
    path = tmp_path / "bybit.jsonl"
    app = create_app(ServerConfig(profile="bybit_inverse", start=START),
                     security=IN_PROCESS)  # records into pytest's tmp_path
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/control/record", json={"path": str(path)}).status_code == 200
        creds = http.post("/control/accounts", json={"balances": {"BTC": "1"}}).json()
        ex = connect_bybit(url, creds["api_key"], creds["api_secret"])
        ex.set_margin_mode("isolated", SYMBOL, {"leverage": 2})
        ex.create_order(SYMBOL, "market", "sell", 20_000)
        ex.create_order(SYMBOL, "limit", "buy", 1000, 55_000)
        ex.transfer("BTC", 0.1, "contract", "spot")
        http.post("/control/advance", json={"ms": 9 * 3_600_000})
        summary = http.post("/control/record", json={"stop": True}).json()
        digest = hashlib.sha256(http.get("/control/journal").text.encode("ascii")).hexdigest()
    assert summary["journal_digest"] == digest
    recorded = [json.loads(line) for line in path.read_text().splitlines()]
    signed = [r for r in recorded if r.get("kind") == "request" and r["path"].startswith("/v5/")
              and "x-bapi-sign" in r["headers"]]
    assert len(signed) >= 4
    assert run(path) == EXIT_EQUAL
