"""Run a perpsim app under uvicorn on 127.0.0.1 in a background thread (tests, demo, plugin).

The server binds to loopback only, on a free port, and stops when the context exits.
"""

from __future__ import annotations

import errno
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


class BindError(OSError):
    """The server's socket cannot be bound; the message names the host, port and reason."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to ``host:port`` (port 0: a free one), or BindError.

    Binding before uvicorn starts lets a caller report a busy port or a bad host in one line
    and keeps the port it was given (no window for another process to take it)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise BindError(f"cannot use host {host!r}: {reason}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # as uvicorn does: a restarted server may rebind while old connections linger
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # listening at once: from here on the port is ours (a bound-only socket could still
        # be shared with another SO_REUSEADDR socket) and early connections wait in the queue
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        where = f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise BindError(f"port {port} on {host} is already in use (another server is "
                            "listening there; pick another with --port)") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise BindError(f"cannot listen on {where}: {host} is not an address of this "
                            "machine") from None
        if exc.errno == errno.EACCES:
            raise BindError(f"cannot listen on {where}: permission denied (ports under 1024 "
                            "need privileges)") from None
        raise BindError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sock


@contextmanager
def serve_in_thread(app: Any, *, port: int | None = None, timeout_s: float = 30.0,
                    lifespan: Literal["auto", "on", "off"] = "on") -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port by default); yield its base URL; stop it."""
    # Bound here, handed to uvicorn: no race with another process for a "free" port.
    sock = bind_socket(LOOPBACK, port or 0)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning",
                            lifespan=lifespan, ws_ping_interval=WS_PING_INTERVAL_S,
                            ws_ping_timeout=WS_PING_TIMEOUT_S)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"perpsim-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout_s)
            sock.close()
            raise RuntimeError(f"perpsim server did not start on {LOOPBACK}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()
