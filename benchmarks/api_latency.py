"""Benchmark: order round trips through the real ccxt over loopback, against the stack's floor.

Run: ``python -m benchmarks.api_latency [--rounds 300] [--seconds 5] [--json]``

A ``perpsim serve`` child process (manual market, stepped clock) and, in this process, the
unmodified ccxt ``binancecoinm`` pointed at it (``strategy.connect``). Measured in one run,
interleaved call by call so noise hits every series alike:

* order — ``create_order`` market 1 contract, alternately buy and sell (signed POST, matching,
  ledger, journal, the order serialiser);
* signed floor — ``GET /dapi/v1/positionSide/dual`` (signed, answers a constant): everything the
  order pays for except the engine — ccxt, HTTP, FastAPI, HMAC verification;
* public floor — ``GET /dapi/v1/ping`` (no signature).

Reported: p50 and p99 of each (ms) and the ratio order / signed floor. Then sustained orders per
second with 8 concurrent async ccxt clients (one account each) for ``--seconds``, next to one
client alone: every client is warmed up first (markets loaded, an order placed) and the rate is
completed orders / time to the last completion, so a slow machine gives a small rate, never 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import numpy as np

from perpsim.benchmarks import sig
from perpsim.benchmarks.server import child_server, control
from perpsim.strategy.connect import connect

SYMBOL = "BTC/USD:BTC"


def _account(base: str) -> dict[str, Any]:
    return control(base, "accounts", {"balances": {"BTC": "10"}})


def _percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples) * 1e3
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3),
            "p99_ms": round(float(np.percentile(arr, 99)), 3)}


def round_trips(base: str, rounds: int, warmup: int = 20) -> dict[str, Any]:
    """Interleaved order / signed floor / public floor calls; their percentiles and ratios."""
    acct = _account(base)
    ex = connect(base, acct["api_key"], acct["api_secret"], mode="sync")
    ex.load_markets()
    calls = {
        "order": lambda i: ex.create_order(SYMBOL, "market", "buy" if i % 2 == 0 else "sell", 1),
        "signed_floor": lambda i: ex.dapiPrivateGetPositionSideDual(),
        "public_floor": lambda i: ex.dapiPublicGetPing(),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(warmup + rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call(i)
            if i >= warmup:
                times[name].append(time.perf_counter() - started)
    result: dict[str, Any] = {name: _percentiles(t) for name, t in times.items()}
    order, floor = result["order"], result["signed_floor"]
    result["rounds"] = rounds
    result["order_over_signed_floor_p50"] = round(order["p50_ms"] / floor["p50_ms"], 2)
    result["order_over_signed_floor_p99"] = round(order["p99_ms"] / floor["p99_ms"], 2)
    result["order_over_public_floor_p50"] = round(
        order["p50_ms"] / result["public_floor"]["p50_ms"], 2)
    return result


async def _warm_client(base: str, acct: dict[str, Any]) -> Any:
    """A connected async client with its markets loaded and one order placed: the set-up
    cost (exchangeInfo, first connection) stays out of the timed window."""
    ex = connect(base, acct["api_key"], acct["api_secret"], mode="async")
    await ex.load_markets()
    await ex.create_order(SYMBOL, "market", "buy", 1)
    await ex.create_order(SYMBOL, "market", "sell", 1)
    return ex


async def _client_loop(ex: Any, stop_at: float) -> tuple[int, float]:
    """Orders until ``stop_at`` (at least one, however slow the machine); (count, last end)."""
    done, last = 0, time.perf_counter()
    while done == 0 or last < stop_at:
        await ex.create_order(SYMBOL, "market", "buy" if done % 2 == 0 else "sell", 1)
        done += 1
        last = time.perf_counter()
    return done, last


async def _sustained(base: str, accounts: list[dict[str, Any]], seconds: float) -> float:
    """Completed orders / the time until the last one completed, every client already warm."""
    clients = await asyncio.gather(*(_warm_client(base, a) for a in accounts))
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(_client_loop(ex, started + seconds) for ex in clients))
    finally:
        await asyncio.gather(*(ex.close() for ex in clients))
    orders = sum(count for count, _ in results)
    return orders / (max(last for _, last in results) - started)


def sustained(base: str, clients: int, seconds: float) -> dict[str, Any]:
    """Orders per second from ``clients`` concurrent clients, and from one alone."""
    accounts = [_account(base) for _ in range(clients)]
    one = asyncio.run(_sustained(base, accounts[:1], seconds))
    many = asyncio.run(_sustained(base, accounts, seconds))
    return {"clients": clients, "seconds": seconds,
            "orders_per_s": sig(many), "orders_per_s_one_client": sig(one),
            "concurrency_gain": sig(many / one, 3)}


def run(rounds: int = 300, seconds: float = 5.0, clients: int = 8) -> dict[str, Any]:
    """Start a server, measure both; the figures."""
    with child_server() as base:
        latency = round_trips(base, rounds)
        load = sustained(base, clients, seconds)
    return {"latency": latency, "sustained": load}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run and print the figures (JSON, or one line per figure)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.rounds, args.seconds)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
