"""Under a stepped clock the monitor's four resync reads run one after the other (they read
one simulated instant); live they run at once. Either way a dry run records the same and asks
the same requests."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from dry_run_helpers import counted_dry_run

from perpsim.strategy import runner
from perpsim.strategy.monitor import Monitor


def _dry_run(profile: str, scenario: str) -> tuple[str, Counter[str], list[bool]]:
    modes: list[bool] = []
    resync = Monitor.resync

    async def noting(self: Monitor, now_ms: int) -> Any:
        modes.append(self.concurrent_reads)
        return await resync(self, now_ms)

    Monitor.resync = noting  # type: ignore[method-assign]
    try:
        record, paths, _ = counted_dry_run(scenario, profile)
    finally:
        Monitor.resync = resync  # type: ignore[method-assign]
    return record, paths, modes


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
