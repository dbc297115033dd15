"""Helpers for the safety tests: an in-process app with a data directory, signed calls, and a
digest of everything a rejected call must leave untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from perpsim.api.app import create_app
from perpsim.api.binance_coinm.signing import sign
from perpsim.api.security import SecurityConfig
from perpsim.api.state import ServerConfig, ServerState

from api_helpers import AsgiClient

START = "2024-01-01T00:00:00Z"


def app_client(data_dir: Path | None = None, **security: Any) -> tuple[AsgiClient, ServerState]:
    """A fresh manual market behind the full app (paths confined to ``data_dir``)."""
    state = ServerState(ServerConfig(start=START))
    config = SecurityConfig(data_dir=data_dir or Path.cwd(), **security)
    return AsgiClient(create_app(state=state, security=config)), state


def signed(client: AsgiClient, state: ServerState, creds: dict[str, str], method: str,
           path: str, params: dict[str, Any]) -> httpx.Response:
    """A Binance-signed request (query for GET/DELETE, form body otherwise)."""
    payload = "&".join(p for p in (f"timestamp={state.wall_ms()}", urlencode(params),
                                   "recvWindow=10000") if p)
    payload += "&signature=" + sign(payload, creds["api_secret"])
    headers = {"X-MBX-APIKEY": creds["api_key"]}
    if method in ("GET", "DELETE"):
        return client.request(method, f"{path}?{payload}", headers=headers)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return client.request(method, path, content=payload, headers=headers)


def state_digest(state: ServerState) -> str:
    """Journal digest, ledger balances, orders, positions, tapes and the clock, hashed."""
    ex = state.exchange
    parts: dict[str, Any] = {
        "journal": ex.journal.digest(), "now": ex.now_ms,
        "ledger": sorted((str(k), str(v)) for k, v in ex.ledger.balances().items()),
        "orders": sorted((o.order_id, o.status, o.filled_contracts, str(o.price_usd))
                         for o in ex.orders.values()),
        "algo": sorted((o.algo_id, o.status) for o in ex.algo_orders.values()),
        "positions": sorted((a.account_id, s, p.qty_contracts, str(p.entry_price_usd),
                             p.leverage, p.margin_mode)
                            for a in ex.accounts.values() for s, p in a.positions.items()),
        "tapes": sorted((pair, t.version, t.times_ms.tolist()[-3:], t.index.tolist()[-3:],
                         t.perp.tolist()[-3:]) for pair, t in ex.tapes.items()),
        "scenario": ex.scenario.name, "profile": ex.profile.name,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
