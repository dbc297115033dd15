"""Under a stepped clock the monitor's four resync reads run one after the other (they read
one simulated instant); live they run at once. Either way a dry run records the same and asks
the same requests."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from perpsim.api.app import create_app
from perpsim.api.security import IN_PROCESS
from perpsim.api.state import ServerConfig, ServerState
from perpsim.inprocess import in_process_transport
from perpsim.strategy import runner
from perpsim.strategy.dryrun import dry_run
from perpsim.strategy.monitor import Monitor
from perpsim.strategy.record import HedgeConfig
from perpsim.strategy.results import to_json


def _dry_run(profile: str, scenario: str) -> tuple[str, Counter[str], list[bool]]:
    app = create_app(state=ServerState(ServerConfig(profile=profile, scenario=scenario, seed=0,
                                                    clock="stepped")), security=IN_PROCESS)
    transport = in_process_transport(app)
    session, paths = transport.ccxt_session, Counter[str]()
    original = session.request

    async def counting(method: str, url: str, data: Any, headers: Any) -> Any:
        paths[f"{method} {url.split('?')[0].split('127.0.0.1')[-1]}"] += 1
        return await original(method, url, data, headers)

    session.request = counting  # type: ignore[method-assign]
    modes: list[bool] = []
    resync = Monitor.resync

    async def noting(self: Monitor, now_ms: int) -> Any:
        modes.append(self.concurrent_reads)
        return await resync(self, now_ms)

    Monitor.resync = noting  # type: ignore[method-assign]
    try:
        record = asyncio.run(dry_run(transport, HedgeConfig(), scenario=scenario,
                                     profile=profile, seed=0))
    finally:
        Monitor.resync = resync  # type: ignore[method-assign]
    return json.dumps(to_json(record), sort_keys=True), paths, modes


@pytest.mark.parametrize(("profile", "scenario"), [("binance_coinm", "crash"),
                                                   ("bybit_inverse", "calm")])
def test_one_after_the_other_records_what_at_once_does(
        monkeypatch: pytest.MonkeyPatch, profile: str, scenario: str) -> None:
    sequential, sequential_paths, modes = _dry_run(profile, scenario)
    assert modes
    assert not any(modes)  # stepped: one after the other

    class NotStepped:
        pass

    monkeypatch.setattr(runner, "SteppedClock", NotStepped)
    concurrent, concurrent_paths, modes = _dry_run(profile, scenario)
    assert all(modes)
    assert sequential == concurrent
    assert sequential_paths == concurrent_paths
