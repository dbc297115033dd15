"""What one request costs inside the in-process app, by endpoint (CPU µs, no socket).

Run: ``python -m perpsim.benchmarks.request_cost [--calls 300] [--json]``

A stepped demo market (the hedge's: ``binance_coinm`` on ``calm_30d``) with one funded account
holding a short, served in-process (perpsim/inprocess.py). Each endpoint the hedge calls at
every step is called ``--calls`` times through the ccxt-shaped session (``AsgiSession``: what
ccxt's requests cost the app, the transport included), interleaved endpoint by endpoint so the
busy machine's noise hits every series alike, and timed with ``time.process_time`` (CPU of
this process: other processes' load does not count). Reported: µs per call, the best of
``--rounds`` rounds. ``POST /control/advance`` moves the market a minute per call, so it
includes the engine's minute; the others read a market standing still.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from perpsim.api.auth import sign

SYMBOL = "BTCUSD_PERP"
BASE = "http://127.0.0.1"


def _market() -> Any:
    from perpsim.api.app import create_app
    from perpsim.api.security import IN_PROCESS
    from perpsim.api.state import ServerConfig, ServerState
    from perpsim.strategy.record import DEMO_PROFILE, DEMO_SCENARIO

    return create_app(state=ServerState(ServerConfig(profile=DEMO_PROFILE, scenario=DEMO_SCENARIO,
                                                     seed=0, clock="stepped")),
                      security=IN_PROCESS)


class _Client:
    """Signs like ccxt (timestamp first, recvWindow and signature last) over an AsgiSession."""

    def __init__(self, app: Any) -> None:
        from perpsim.inprocess import AsgiSession

        self.session = AsgiSession(app)
        self.key = self.secret = ""
        self.public_headers = {"User-Agent": "python-requests/2.34.2",
                               "Accept-Encoding": "gzip, deflate"}

    async def control(self, path: str, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json", "User-Agent": "python-httpx/0.29.0"}
        response = await self.session.request("POST", f"{BASE}/control/{path}",
                                              json.dumps(body), headers)
        if response.status >= 300:
            raise RuntimeError(f"/control/{path} answered {response.status}: "
                               f"{response.content!r}")
        return json.loads(response.content)

    def signed_query(self, params: dict[str, str]) -> str:
        query = urlencode({"timestamp": str(int(time.time() * 1000)), **params,
                           "recvWindow": "10000"})
        return f"{query}&signature={sign(query, self.secret)}"

    async def get(self, path: str, query: str = "", *, signed: bool = False) -> bytes:
        headers = dict(self.public_headers)
        if signed:
            headers = {"X-MBX-APIKEY": self.key, **headers}
        url = f"{BASE}{path}?{query}" if query else f"{BASE}{path}"
        response = await self.session.request("GET", url, None, headers)
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {response.content!r}")
        return response.content

    async def post_signed(self, path: str, params: dict[str, str]) -> bytes:
        headers = {"X-MBX-APIKEY": self.key,
                   "Content-Type": "application/x-www-form-urlencoded", **self.public_headers}
        response = await self.session.request("POST", f"{BASE}{path}",
                                              self.signed_query(params), headers)
        if response.status != 200:
            raise RuntimeError(f"POST {path} answered {response.status}: {response.content!r}")
        return response.content


async def _measure(calls: int, rounds: int) -> dict[str, float]:
    client = _Client(_market())
    account = await client.control("accounts", {"balances": {"BTC": "5"}, "label": "bench"})
    client.key, client.secret = account["api_key"], account["api_secret"]
    await client.control("advance", {"ms": 3_600_000})
    await client.post_signed("/dapi/v1/order", {"symbol": SYMBOL, "side": "SELL",
                                                "type": "MARKET", "quantity": "100"})
    advance = {"ms": 60_000, "stop_on": ["order.update"], "account_id": account["account_id"]}
    endpoints: dict[str, Callable[[str], Any]] = {
        "ping": lambda q: client.get("/dapi/v1/ping"),
        "premiumIndex": lambda q: client.get("/dapi/v1/premiumIndex", f"symbol={SYMBOL}"),
        "klines": lambda q: client.get("/dapi/v1/klines",
                                       f"interval=1m&limit=1&symbol={SYMBOL}"),
        "positionRisk": lambda q: client.get("/dapi/v1/positionRisk", q, signed=True),
        "account": lambda q: client.get("/dapi/v1/account", q, signed=True),
        "advance": lambda q: client.control("advance", advance),
    }
    best: dict[str, float] = {}
    for _ in range(rounds):
        spent = dict.fromkeys(endpoints, 0.0)
        for _ in range(calls):
            query = client.signed_query({})
            for name, call in endpoints.items():
                started = time.process_time()
                await call(query)
                spent[name] += time.process_time() - started
        for name, seconds in spent.items():
            micros = seconds / calls * 1e6
            best[name] = min(best.get(name, micros), micros)
    return {name: round(us, 1) for name, us in best.items()}


def run(calls: int = 300, rounds: int = 3) -> dict[str, Any]:
    """µs of CPU per call by endpoint (best of ``rounds``)."""
    return {"calls": calls, "rounds": rounds, "us_per_call": asyncio.run(_measure(calls, rounds))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.calls, args.rounds)
    if args.json:
        print(json.dumps(result))
    else:
        for name, micros in result["us_per_call"].items():
            print(f"{name:>14}  {micros:8.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
