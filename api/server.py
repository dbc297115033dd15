"""Run a perpsim app under uvicorn on 127.0.0.1 in a background thread (tests, demo, plugin).

The server binds to loopback only, on a free port, and stops when the context exits.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

LOOPBACK = "127.0.0.1"
# Binance COIN-M: the server pings every 3 minutes and disconnects a peer whose pong has not
# come back within 10 minutes (protocol frames; every WebSocket client library answers them).
WS_PING_INTERVAL_S = 180.0
WS_PING_TIMEOUT_S = 600.0


def free_port() -> int:
    """A TCP port on the loopback interface that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(app: Any, *, port: int | None = None, timeout_s: float = 10.0,
                    lifespan: Literal["auto", "on", "off"] = "on") -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port by default); yield its base URL; stop it."""
    port = port or free_port()
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning",
                            lifespan=lifespan, ws_ping_interval=WS_PING_INTERVAL_S,
                            ws_ping_timeout=WS_PING_TIMEOUT_S)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"perpsim-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout_s)
            raise RuntimeError(f"perpsim server did not start on {LOOPBACK}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
