"""Benchmark: WebSocket market-data frames per second to many subscribers.

Run: ``python -m benchmarks.ws_fanout [--subscribers 100] [--seconds 5] [--json]``

A ``perpsim serve`` child process (manual market, stepped clock). ``--subscribers`` raw
WebSocket clients each SUBSCRIBE to ``btcusd_perp@bookTicker`` and ``btcusd_perp@markPrice@1s``
(acknowledged before anything moves); a driver then steps the market as fast as the server
answers, for ``--seconds``: advance one second, then set a new price (control plane). Each step
moves the book and the mark, so every subscriber is owed two frames per step. (Setting the price
is a journal event, which wakes the stream pump at once; a bare ``advance`` on a quiet market
is picked up by the pump's 50 ms poll, so it would measure that cadence, not the fan-out.)

Reported: frames delivered per second (all subscribers together, from the first advance to the
last frame), frames per subscriber per second, steps per second, and the share of the owed
frames that arrived (coalescing may merge some; a slow reader would be dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp
import websockets

from perpsim.benchmarks.server import child_server

STREAMS = ["btcusd_perp@bookTicker", "btcusd_perp@markPrice@1s"]
STEP_MS = 1_000


class _Reader:
    """One subscriber: counts frames and remembers when the last one came."""

    def __init__(self) -> None:
        self.frames = 0
        self.last = 0.0

    async def run(self, url: str, ready: asyncio.Event, stop: asyncio.Event,
                  subscribed: list[int]) -> None:
        async with websockets.connect(url, max_queue=None, ping_interval=None) as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": STREAMS, "id": 1}))
            while True:  # the ack, then any initial frames
                message = json.loads(await ws.recv())
                if message.get("id") == 1:
                    break
            subscribed.append(1)
            await ready.wait()
            self.frames = 0
            while not stop.is_set():
                try:
                    await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                self.frames += 1
                self.last = time.perf_counter()


async def _measure(base: str, subscribers: int, seconds: float) -> dict[str, Any]:
    url = base.replace("http://", "ws://") + "/ws"
    ready, stop = asyncio.Event(), asyncio.Event()
    subscribed: list[int] = []
    readers = [_Reader() for _ in range(subscribers)]
    tasks = [asyncio.create_task(r.run(url, ready, stop, subscribed)) for r in readers]
    deadline = time.perf_counter() + 30
    while len(subscribed) < subscribers:
        if time.perf_counter() > deadline or any(t.done() for t in tasks):
            raise RuntimeError(f"only {len(subscribed)} of {subscribers} subscribed")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # let the initial frames drain before counting
    ready.set()
    await asyncio.sleep(0.05)
    advances = 0
    async with aiohttp.ClientSession(base, raise_for_status=True) as http:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            async with http.post("/control/advance", json={"ms": STEP_MS}) as response:
                await response.read()
            price = f"{60_000 + 10 * (advances % 50)}"
            async with http.post("/control/prices",
                                 json={"symbol": "BTCUSD_PERP", "index": price}) as response:
                await response.read()
            advances += 1
        driven = time.perf_counter() - started
    await asyncio.sleep(1.0)  # in-flight frames
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    frames = sum(r.frames for r in readers)
    end = max((r.last for r in readers), default=started)
    elapsed = max(end - started, driven)
    owed = advances * len(STREAMS) * subscribers
    return {"subscribers": subscribers, "streams_each": len(STREAMS), "seconds": round(driven, 2),
            "steps": advances, "steps_per_s": round(advances / driven, 1),
            "frames": frames, "frames_per_s": round(frames / elapsed, 1),
            "frames_per_subscriber_per_s": round(frames / elapsed / subscribers, 2),
            "delivered_share": round(frames / owed, 3) if owed else 0.0}


def run(subscribers: int = 100, seconds: float = 5.0) -> dict[str, Any]:
    """Start a server, measure; the figures."""
    with child_server() as base:
        return asyncio.run(asyncio.wait_for(_measure(base, subscribers, seconds), seconds + 120))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.subscribers, args.seconds)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
