"""A perpsim server in a child process for the API benchmarks (loopback, a free port).

``perpsim serve --port 0`` binds a free port itself and prints it in its banner, which is read
back here: no window in which another process could take a port picked in advance.

The server runs as users run it (``python -m perpsim serve``), in its own process, so the
client's work (ccxt, signing, JSON) and the server's do not share one interpreter lock. It is
stopped (terminate, then kill) when the context exits; only the child started here is touched.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from perpsim.api.server import LOOPBACK

BANNER_URL = re.compile(r"control plane:\s+(http://\S+?)/control")


@contextmanager
def child_server(*, scenario: str = "manual", profile: str = "binance_coinm",
                 timeout_s: float = 30.0) -> Iterator[str]:
    """Start ``perpsim serve`` on a free loopback port; yield its base URL; stop it."""
    cmd = [sys.executable, "-m", "perpsim", "serve", "--host", LOOPBACK, "--port", "0",
           "--scenario", scenario, "--profile", profile, "--clock", "stepped"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # files, not pipes: a full pipe would block the child
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=output, stderr=errors, env=env)
        try:
            base = _wait_ready(proc, timeout_s, output, errors)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_ready(proc: subprocess.Popen[bytes], timeout_s: float, output: IO[bytes],
                errors: IO[bytes]) -> str:
    """The base URL from the child's banner, once it answers a ping."""
    deadline = time.monotonic() + timeout_s
    base = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            errors.seek(0)
            err = errors.read().decode(errors="replace")
            raise RuntimeError(f"perpsim serve exited with {proc.returncode}: {err[-2000:]}")
        if base is None:
            output.seek(0)
            found = BANNER_URL.search(output.read().decode(errors="replace"))
            base = found.group(1) if found else None
            if base is None:
                time.sleep(0.05)
                continue
        try:
            with urllib.request.urlopen(f"{base}/dapi/v1/ping", timeout=1.0) as response:
                if response.status == 200:
                    return base
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"perpsim serve did not answer on {base or 'its port'} within "
                       f"{timeout_s} s")


def control(base: str, path: str, body: dict[str, object]) -> dict[str, object]:
    """POST to the control plane; the JSON answer (HTTPError on an error status)."""
    request = urllib.request.Request(f"{base}/control/{path}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60.0) as response:
        result: dict[str, object] = json.loads(response.read())
    return result
