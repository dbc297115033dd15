"""perpsim's pytest plugin: a live mock exchange for a trading bot's tests.

Loaded automatically once perpsim is installed (entry point ``pytest11``); with plugin
autoloading off, add ``-p perpsim.pytest_plugin``. One perpsim server runs per test session
(uvicorn on 127.0.0.1, a free port, in a thread) and is reset to a fresh market before every
test that uses it, so tests never see each other's orders.

Fixtures:

* ``perpsim_server`` (session): the running server (``base_url``, ``ws_url``, ``state``).
* ``perpsim`` (function): the server reset for this test, as a :class:`Perpsim` handle:
  ``prices()``, ``advance()``, ``journal()``, ``state()``, ``account(balances)`` → creds,
  ``ccxt(creds, mode="sync" | "async" | "pro")``, ``add_fault()`` / ``faults()``, ``reset()``.
* ``perpsim_account`` (function): a funded account (1 BTC unless the marker says otherwise):
  ``{"account_id", "api_key", "api_secret"}``.
* ``perpsim_exchange`` (function): a sync ccxt ``binancecoinm`` logged in to that account.

Settings (marker > command line > ini file > default): ``--perpsim-profile`` /
``perpsim_profile`` (binance_coinm), ``--perpsim-scenario`` / ``perpsim_scenario`` (manual),
``--perpsim-seed`` / ``perpsim_seed`` (0), ``perpsim_start`` (the scenario's own start);
per test ``@pytest.mark.perpsim(scenario="crash", seed=3, clock="stepped", balances={...})``.
``--perpsim-record DIR`` records every test that uses ``perpsim`` (requests and journal) and
keeps the file of each failing test as ``DIR/<test>.jsonl``: ``perpsim replay FILE`` rebuilds
that run exactly. The failing test's report names its file and that command (a "perpsim
recording" section), and the terminal summary lists them all.

PYTEST_DONT_REWRITE: nothing here needs assertion rewriting, and a conftest may import this
module before pytest loads it as a plugin.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from perpsim.strategy.connect import Mode

HOUR_MS = 3_600_000
DEFAULT_BALANCES = {"BTC": "1"}
_SETTINGS = ("profile", "scenario", "seed", "start", "clock", "speed")
_FAILED = pytest.StashKey[bool]()
_RECORDING = pytest.StashKey[Path]()  # where a failing test's recording is kept
_KEPT = pytest.StashKey[list[str]]()  # nodeid → recording lines for the terminal summary


class PerpsimError(AssertionError):
    """The control plane refused a call (the message carries its answer)."""


class PerpsimServer:
    """One live perpsim server (uvicorn on loopback, in a thread)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from perpsim.api.app import create_app
        from perpsim.api.harness import install_harness
        from perpsim.api.security import IN_PROCESS
        from perpsim.api.server import serve_in_thread
        from perpsim.api.state import ServerConfig, ServerState

        config = ServerConfig(**{k: v for k, v in settings.items() if v is not None})
        self.state = ServerState(config)
        app = create_app(state=self.state, security=IN_PROCESS)
        install_harness(app)
        self._stack = ExitStack()
        self.base_url: str = self._stack.enter_context(serve_in_thread(app))

    @property
    def ws_url(self) -> str:
        """The raw stream base ``ws://host:port/ws``."""
        return self.base_url.replace("http://", "ws://", 1) + "/ws"

    def stop(self) -> None:
        """Stop the server."""
        self._stack.close()


class Perpsim:
    """A test's handle on the server: control plane helpers and ccxt clients."""

    def __init__(self, server: PerpsimServer, settings: dict[str, Any]) -> None:
        self.server = server
        self.settings = dict(settings)
        self.base_url = server.base_url
        self.ws_url = server.ws_url
        self.http = httpx.Client(base_url=server.base_url, timeout=120)

    @property
    def server_state(self) -> Any:
        """The server's in-process ``api.state.ServerState`` (for white-box checks)."""
        return self.server.state

    # ---- control plane -------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.http.request(method, f"/control/{path}", json=body,
                                     params=params or None)
        if response.status_code >= 300:
            raise PerpsimError(f"{method} /control/{path} answered {response.status_code}: "
                               f"{response.text}")
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def reset(self, **changes: Any) -> dict[str, Any]:
        """A fresh market (this test's settings, with ``changes``); the market state."""
        self.settings.update(changes)
        body = {k: v for k, v in self.settings.items() if k in _SETTINGS and v is not None}
        result: dict[str, Any] = self._call("POST", "reset", body)
        return result

    def state(self) -> dict[str, Any]:
        """GET /control/state: time, prices, funding, insurance fund, ledger."""
        result: dict[str, Any] = self._call("GET", "state")
        return result

    def prices(self, index: str | float, perp: str | float | None = None,
               symbol: str = "BTCUSD_PERP") -> list[dict[str, Any]]:
        """Set the manual market's prices now; the events that triggered."""
        body: dict[str, Any] = {"symbol": symbol, "index": str(index)}
        if perp is not None:
            body["perp"] = str(perp)
        events: list[dict[str, Any]] = self._call("POST", "prices", body)["events"]
        return events

    def advance(self, ms: int | None = None, *, until: int | None = None, seconds: float = 0,
                minutes: float = 0, hours: float = 0) -> list[dict[str, Any]]:
        """Move simulated time (by ``ms`` / seconds / minutes / hours, or to ``until``);
        the events that happened (funding, fills, liquidations...)."""
        if until is not None:
            body: dict[str, Any] = {"until": int(until)}
        else:
            step = (ms or 0) + round((seconds + 60 * minutes + 3600 * hours) * 1000)
            body = {"ms": int(step)}
        events: list[dict[str, Any]] = self._call("POST", "advance", body)["events"]
        return events

    def journal(self, *types: str, since: int = 0) -> list[dict[str, Any]]:
        """The event journal as ``{"type", "time", "seq", **payload}`` dicts (only ``types``
        if given, e.g. ``journal("funding.payment")``)."""
        filters = {"types": ",".join(types)} if types else {}
        text = self._call("GET", "journal", since=since, **filters)  # filtered by the server
        rows = [json.loads(line) for line in str(text).splitlines() if line.strip()]
        return [{"type": r["type"], "time": r["time_ms"], "seq": r["seq"], **r["payload"]}
                for r in rows]

    def journal_digest(self) -> str:
        """SHA-256 of the journal's canonical JSON lines (equal runs give equal digests)."""
        import hashlib

        return hashlib.sha256(str(self._call("GET", "journal")).encode("ascii")).hexdigest()

    def account(self, balances: dict[str, str] | None = None, **extra: Any) -> dict[str, str]:
        """A funded account (``{"BTC": "1"}`` by default): account_id, api_key, api_secret.
        ``extra``: spot_balances, label, api_key, api_secret."""
        creds: dict[str, str] = self._call(
            "POST", "accounts", {"balances": balances or DEFAULT_BALANCES, **extra})
        return creds

    def account_info(self, account_id: str) -> dict[str, Any]:
        """GET /control/accounts/{id}: balances, positions with every risk number."""
        result: dict[str, Any] = self._call("GET", f"accounts/{account_id}")
        return result

    # ---- faults and recording ------------------------------------------------------------------
    def add_fault(self, spec: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Install a fault rule (api/faults.py), e.g. ``add_fault(kind="http_5xx",
        path="/dapi/v1/order", count=1)``; the installed rule."""
        installed: dict[str, Any] = self._call("POST", "faults", {**(spec or {}), **fields})
        return dict(installed["faults"][0])

    def faults(self) -> dict[str, Any]:
        """The installed rules with their counters (seen, fired...)."""
        result: dict[str, Any] = self._call("GET", "faults")
        return result

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "faults")

    def record(self, path: str | Path) -> None:
        """Start recording requests and the journal to ``path`` (replay: ``perpsim replay``)."""
        self._call("POST", "record", {"path": str(Path(path).resolve())})

    def stop_recording(self) -> dict[str, Any] | None:
        """Stop a running recording; its summary (None if none was running)."""
        if not self._call("GET", "record").get("recording"):
            return None
        result: dict[str, Any] = self._call("POST", "record", {"stop": True})
        return result

    # ---- ccxt ----------------------------------------------------------------------------------
    def ccxt(self, creds: dict[str, str] | None = None, mode: Mode = "sync",
             **config: Any) -> Any:
        """A ccxt client for the server's wire (``binancecoinm``, or ``bybit`` on a Bybit
        profile) pointed at this server (``mode`` sync, async or pro), logged in with ``creds``
        if given. Async and pro clients live on the caller's event loop: close them there
        (``async with ex:`` or ``await ex.close()``)."""
        from perpsim.strategy.connect import connect

        creds = creds or {}
        return connect(self.base_url, creds.get("api_key"), creds.get("api_secret"),
                       mode=mode, config=config or None, dialect=self.state()["dialect"])

    def close(self) -> None:
        """End of the test: drop its faults, close the control-plane client."""
        with contextlib.suppress(Exception):
            self.clear_faults()
        self.http.close()


# ---- pytest hooks --------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    """--perpsim-* options and their ini twins."""
    group = parser.getgroup("perpsim", "perpsim mock exchange")
    group.addoption("--perpsim-profile", dest="perpsim_profile", default=None, metavar="P",
                    help="exchange profile of the perpsim fixtures (default binance_coinm)")
    group.addoption("--perpsim-scenario", dest="perpsim_scenario", default=None, metavar="S",
                    help="scenario name or path of the perpsim fixtures (default manual)")
    group.addoption("--perpsim-seed", dest="perpsim_seed", default=None, type=int, metavar="N",
                    help="seed of the perpsim fixtures (default 0)")
    group.addoption("--perpsim-record", dest="perpsim_record", default=None, metavar="DIR",
                    help="record each test's requests and journal; keep failing tests' "
                    "recordings in DIR (replay with `perpsim replay FILE`)")
    parser.addini("perpsim_profile", "perpsim exchange profile", default="binance_coinm")
    parser.addini("perpsim_scenario", "perpsim scenario name or path", default="manual")
    parser.addini("perpsim_seed", "perpsim seed", default="0")
    parser.addini("perpsim_start", "perpsim start time (ISO 8601 UTC or epoch ms)", default="")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``perpsim`` marker."""
    config.addinivalue_line(
        "markers", "perpsim(profile=, scenario=, seed=, start=, clock=, speed=, balances=): "
        "the market the perpsim fixtures reset to for this test")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether a test failed (to keep its recording)."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
        keep = item.stash.get(_RECORDING, None)
        if keep is not None:  # written at the fixture's teardown, before the summary prints
            report.sections.append(("perpsim recording", _replay_hint(keep)))
            kept = item.config.stash.setdefault(_KEPT, [])
            if str(keep) not in kept:
                kept.append(str(keep))
    return report


def _replay_hint(path: Path) -> str:
    return f"recorded to {path}\nreplay it: perpsim replay {shlex.quote(str(path))}"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """List the recordings of failing tests, with the command that replays each."""
    kept = config.stash.get(_KEPT, [])
    if kept:
        terminalreporter.section("perpsim recordings of failing tests")
        for path in kept:
            terminalreporter.write_line(f"perpsim replay {shlex.quote(path)}")


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(f"perpsim_{name}", None)
    if value is not None:
        return value
    try:
        ini = config.getini(f"perpsim_{name}")
    except ValueError:
        return None
    return ini or None


def session_settings(config: pytest.Config) -> dict[str, Any]:
    """The session's market settings (command line > ini > defaults)."""
    seed = _option(config, "seed")
    start = _option(config, "start")
    if isinstance(start, str) and start.isdigit():
        start = int(start)
    return {"profile": _option(config, "profile") or "binance_coinm",
            "scenario": _option(config, "scenario") or "manual",
            "seed": int(seed) if seed is not None else 0, "start": start,
            "clock": "stepped", "speed": 1.0}


def _scenario_setting(value: Any) -> Any:
    text = str(value)
    if "/" in text or text.endswith((".csv", ".json")):
        return {"path": str(Path(text).resolve())}
    return value


def _test_file_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:180] + ".jsonl"


@pytest.fixture(scope="session")
def _perpsim_session(pytestconfig: pytest.Config) -> Iterator[PerpsimServer]:
    settings = session_settings(pytestconfig)
    settings["scenario"] = _scenario_setting(settings["scenario"])
    server = PerpsimServer(settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def perpsim_server(_perpsim_session: PerpsimServer) -> PerpsimServer:
    """The session's perpsim server (started on a free port, stopped at the end)."""
    return _perpsim_session


@pytest.fixture
def perpsim(_perpsim_session: PerpsimServer, request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Perpsim]:
    """The session's server, reset to a fresh market for this test."""
    settings = session_settings(request.config)
    marker = request.node.get_closest_marker("perpsim")
    if marker is not None:
        settings.update({k: v for k, v in marker.kwargs.items() if k in _SETTINGS})
    settings["scenario"] = _scenario_setting(settings["scenario"])
    handle = Perpsim(_perpsim_session, settings)
    try:
        handle.stop_recording()  # a recording a crashed test left behind
        handle.clear_faults()
        record_dir = request.config.getoption("perpsim_record", None)
        target = None
        if record_dir:
            target = Path(tmp_path_factory.mktemp("perpsim-record")) / "run.jsonl"
            handle.record(target)
            request.node.stash[_RECORDING] = (
                Path(record_dir) / _test_file_name(request.node.nodeid)).resolve()
        handle.reset()
        yield handle
        if target is not None:
            handle.stop_recording()
            if request.node.stash.get(_FAILED, False):
                keep = request.node.stash[_RECORDING]
                keep.parent.mkdir(parents=True, exist_ok=True)
                keep.write_bytes(target.read_bytes())
    finally:
        with contextlib.suppress(Exception):
            handle.stop_recording()
        handle.close()


@pytest.fixture
def perpsim_account(perpsim: Perpsim, request: pytest.FixtureRequest) -> dict[str, str]:
    """A funded account on the fresh market (marker ``balances=``, default 1 BTC)."""
    marker = request.node.get_closest_marker("perpsim")
    balances = marker.kwargs.get("balances") if marker is not None else None
    return perpsim.account(balances or DEFAULT_BALANCES)


@pytest.fixture
def perpsim_exchange(perpsim: Perpsim, perpsim_account: dict[str, str]) -> Any:
    """A sync ccxt client (``binancecoinm``; ``bybit`` on a Bybit profile) logged in to
    ``perpsim_account``."""
    return perpsim.ccxt(perpsim_account)
