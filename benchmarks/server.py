"""A perpsim server in a child process for the API benchmarks (loopback, a free port).

The server runs as users run it (``python -m perpsim serve``), in its own process, so the
client's work (ccxt, signing, JSON) and the server's do not share one interpreter lock. It is
stopped (terminate, then kill) when the context exits; only the child started here is touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from perpsim.api.server import LOOPBACK, free_port


@contextmanager
def child_server(*, scenario: str = "manual", profile: str = "binance_coinm",
                 timeout_s: float = 30.0) -> Iterator[str]:
    """Start ``perpsim serve`` on a free loopback port; yield its base URL; stop it."""
    port = free_port()
    cmd = [sys.executable, "-m", "perpsim", "serve", "--host", LOOPBACK, "--port", str(port),
           "--scenario", scenario, "--profile", profile, "--clock", "stepped"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a full pipe would block it
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        base = f"http://{LOOPBACK}:{port}"
        try:
            _wait_ready(proc, base, timeout_s, errors)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_ready(proc: subprocess.Popen[bytes], base: str, timeout_s: float,
                errors: IO[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            errors.seek(0)
            err = errors.read().decode(errors="replace")
            raise RuntimeError(f"perpsim serve exited with {proc.returncode}: {err[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/dapi/v1/ping", timeout=1.0) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"perpsim serve did not answer on {base} within {timeout_s} s")


def control(base: str, path: str, body: dict[str, object]) -> dict[str, object]:
    """POST to the control plane; the JSON answer (HTTPError on an error status)."""
    request = urllib.request.Request(f"{base}/control/{path}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60.0) as response:
        result: dict[str, object] = json.loads(response.read())
    return result
