"""What every client's hedge-cycle script shares (tests/test_real_clients.py runs the scripts).

The control plane is steered with the standard library only (it is perpsim's own API, not the
client's), the frames a client's streams deliver land in an :class:`Inbox` from whatever thread
or task the client calls back on, and the script prints one JSON report as its last line.
Every wait is bounded: a script fails with a message, never hangs.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

SYMBOL = "BTCUSD_PERP"
PAIR = "BTCUSD"
STREAM = "btcusd_perp"
HEDGE_CONTRACTS = 590  # 1 BTC at 60,000 USD in 100-USD contracts, less room for the fee
REDUCE_CONTRACTS = 10
STOP_CONTRACTS = HEDGE_CONTRACTS - REDUCE_CONTRACTS
POST_ONLY_PRICE_USD = "70000"  # far above the book: rests as a maker
STOP_TRIGGER_USD = "66000"
MARGIN_ADD_BTC = "0.01"
PAST_FIRST_FUNDING_MS = 8 * 3_600_000 + 1_000  # from 00:00 past the 08:00 funding
WAIT_S = 20.0

Frame = dict[str, Any]


def ws_base(base_url: str) -> str:
    """ws://host:port for http://host:port."""
    return "ws" + base_url[len("http"):]


class Control:
    """perpsim's control plane over plain HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}/control/{path}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=WAIT_S * 3) as answer:
            return json.loads(answer.read())

    def advance(self, ms: int) -> None:
        self.post("advance", {"ms": ms})

    def prices(self, usd: str) -> None:
        self.post("prices", {"symbol": SYMBOL, "index": usd, "perp": usd})


class Inbox:
    """Stream frames from any thread; combined frames unwrapped and their stream noted."""

    def __init__(self) -> None:
        self.frames: list[tuple[str | None, Any]] = []
        self.lock = threading.Lock()

    def add(self, frame: Any) -> None:
        """Keep one frame (a dict or JSON text; ``{"stream", "data"}`` unwrapped)."""
        if isinstance(frame, str | bytes):
            frame = json.loads(frame)
        stream = None
        if isinstance(frame, dict) and set(frame) == {"stream", "data"}:
            stream, frame = frame["stream"], frame["data"]
        with self.lock:
            self.frames.append((stream, frame))

    def events(self, kind: str) -> list[Frame]:
        """Every kept frame of event type ``kind`` (``e``)."""
        with self.lock:
            return [f for _, f in self.frames if isinstance(f, dict) and f.get("e") == kind]

    def find(self, kind: str, want: Callable[[Frame], bool]) -> Frame | None:
        return next((f for f in self.events(kind) if want(f)), None)

    def wait_reply(self, request_id: int, what: str) -> Frame:
        """Block until the answer to request ``request_id`` (a SUBSCRIBE ack) arrived."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with self.lock:
                for _, frame in self.frames:
                    if isinstance(frame, dict) and frame.get("id") == request_id:
                        if frame.get("result", "") is not None:
                            raise RuntimeError(f"{what} refused: {frame}")
                        return frame
            time.sleep(0.02)
        raise TimeoutError(f"no answer to {what}")

    def wait(self, kind: str, want: Callable[[Frame], bool], what: str) -> Frame:
        """Block (a thread-driven client) until a ``kind`` frame satisfies ``want``."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            found = self.find(kind, want)
            if found is not None:
                return found
            time.sleep(0.02)
        raise TimeoutError(f"no {kind} frame on the stream: {what}")

    async def wait_async(self, kind: str, want: Callable[[Frame], bool], what: str) -> Frame:
        """Await (an asyncio-driven client) until a ``kind`` frame satisfies ``want``."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            found = self.find(kind, want)
            if found is not None:
                return found
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no {kind} frame on the stream: {what}")


def filled(order_id: int) -> Callable[[Frame], bool]:
    """ORDER_TRADE_UPDATE of ``order_id`` reaching FILLED."""
    return lambda f: f["o"]["i"] == order_id and f["o"]["X"] == "FILLED"


def triggered(algo_id: int) -> Callable[[Frame], bool]:
    """ALGO_UPDATE of ``algo_id`` naming the order its trigger placed (``ai``)."""
    return lambda f: f["o"]["aid"] == algo_id and f["o"]["ai"] != ""


def is_funding_fee(frame: Frame) -> bool:
    return bool(frame["a"]["m"] == "FUNDING_FEE")


def flat(frame: Frame) -> bool:
    """ACCOUNT_UPDATE showing the symbol's position closed."""
    return any(row["s"] == SYMBOL and row["pa"] == "0" for row in frame["a"]["P"])


def stream_summary(user: Inbox, market: Inbox, algo_id: int) -> dict[str, Any]:
    """What the streams delivered, for the report."""
    return {
        "stream_filled_order_ids": sorted({f["o"]["i"] for f in user.events("ORDER_TRADE_UPDATE")
                                           if f["o"]["X"] == "FILLED"}),
        "stream_algo_statuses": [f["o"]["X"] for f in user.events("ALGO_UPDATE")
                                 if f["o"]["aid"] == algo_id],
        "stream_funding_fee_updates": len([f for f in user.events("ACCOUNT_UPDATE")
                                           if is_funding_fee(f)]),
        "stream_leverage_updates": [f["ac"]["l"] for f in user.events("ACCOUNT_CONFIG_UPDATE")],
        "stream_position_row_keys": sorted({",".join(row) for f in user.events("ACCOUNT_UPDATE")
                                            for row in f["a"]["P"]}),
        "stream_mark_frames": len(market.events("markPriceUpdate")),
        "stream_names": sorted({s for s, _ in market.frames if s is not None}),
    }


def emit(report: dict[str, Any]) -> None:
    """The report, as the script's last line of output."""
    print(json.dumps(report, sort_keys=True), flush=True)
