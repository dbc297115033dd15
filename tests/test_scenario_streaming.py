"""Large scenarios stream (issue 15, point 6): a CSV is parsed in chunks, in bounded memory,
with the same result and the same error messages as in one piece; a reset builds the new market
off the event loop, so the server keeps answering while a big file loads."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest

from perpsim.api import state as state_module
from perpsim.api.app import create_app
from perpsim.api.security import IN_PROCESS
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig, ServerState
from perpsim.sim.errors import ScenarioError
from perpsim.sim.scenario_csv import read_scenario_csv

T0 = 1_670_889_600_000


def _write(path: Path, rows: int, *, funding_every: int = 0, blank_every: int = 0) -> Path:
    times = T0 + np.arange(rows, dtype=np.int64) * 1000
    index = 16_000 + np.round(np.sin(np.arange(rows) / 50) * 100, 1)
    with path.open("w") as out:
        out.write("time,index,perp" + (",funding_rate" if funding_every else "") + "\n")
        for i in range(rows):
            funding = ""
            if funding_every:
                funding = "," + ("0.0001" if i % funding_every == 0 else "")
            out.write(f"{times[i]},{index[i]},{index[i] + 5}{funding}\n")
            if blank_every and i % blank_every == 0:
                out.write("\n")
    return path


def test_chunks_give_the_same_columns_as_one_piece(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.csv", 1000, funding_every=97, blank_every=13)
    whole = read_scenario_csv(path, chunk_lines=10**6)
    for chunk in (1, 7, 64, 999):
        parts = read_scenario_csv(path, chunk_lines=chunk)
        for a, b in zip(whole, parts, strict=True):
            assert a is not None
            assert b is not None
            assert np.array_equal(a, b)
    assert len(whole[0]) == 1000
    assert len(whole[3]) == len(range(0, 1000, 97))


@pytest.mark.parametrize(("tail", "message"), [
    (f"{T0 + 4000},1,1\n{T0 + 4000},1,1\n", r"line 7 \(data row 6\): duplicate time"),
    (f"{T0 + 4000},1,1\n{T0 + 3000},1,1\n", r"line 7 \(data row 6\): time before"),
    (f"{T0 + 4000},1,1\n{T0 + 5000},x,1\n", r"line 7 \(data row 6\): index is not a number"),
    (f"{T0 + 4000},1,1\n\n{T0 + 5000},1\n", "line 8: expected 3 fields, found 2"),
])
def test_errors_across_chunk_boundaries_name_the_right_line(tmp_path: Path, tail: str,
                                                             message: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text("time,index,perp\n" + "".join(f"{T0 + i * 1000},1,1\n" for i in range(4))
                    + tail)
    for chunk in (1, 2, 3, 100):
        with pytest.raises(ScenarioError, match=message):
            read_scenario_csv(path, chunk_lines=chunk)


def test_a_large_csv_loads_in_about_twice_its_arrays(tmp_path: Path) -> None:
    rows = 200_000
    path = _write(tmp_path / "big.csv", rows)
    tracemalloc.start()
    try:
        times, index, perp, _, _ = read_scenario_csv(path, chunk_lines=4096)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert perp is not None
    arrays = times.nbytes + index.nbytes + perp.nbytes
    assert len(times) == rows
    assert peak <= 2 * arrays, (peak, arrays)


def test_a_reset_builds_the_market_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    release, building = threading.Event(), threading.Event()
    real = state_module.build_exchange

    def slow_build(*args: Any, **kwargs: Any) -> Any:
        building.set()
        assert release.wait(30), "the test never released the build"
        return real(*args, **kwargs)

    state = ServerState(ServerConfig(start="2024-01-01T00:00:00Z"))
    monkeypatch.setattr(state_module, "build_exchange", slow_build)
    results: list[int] = []
    with serve_in_thread(create_app(state=state, security=IN_PROCESS)) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        resetting = threading.Thread(target=lambda: results.append(
            http.post("/control/reset", json={"scenario": "calm"}).status_code))
        resetting.start()
        assert building.wait(30)
        # the build is blocked in its thread; the loop still answers (on the old market)
        assert http.get("/control/state").json()["scenario"] == "manual"
        release.set()
        resetting.join(30)
        assert results == [200]
        assert http.get("/control/state").json()["scenario"] == "calm"


def test_a_long_advance_lets_other_clients_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from perpsim.api import control

    monkeypatch.setattr(control, "YIELD_AFTER_S", 0.0)  # yield after every simulated day
    # Where the advance yields, it waits until another client has had an answer while the
    # simulated time stood between the start and the target: however busy the machine, the
    # other client gets in, and an advance that never yields finishes first and fails below.
    answered = threading.Event()
    real_sleep = asyncio.sleep

    async def yield_until_answered(seconds: float) -> None:
        while not answered.is_set():
            await real_sleep(0.01)

    monkeypatch.setattr(control, "asyncio", SimpleNamespace(sleep=yield_until_answered))
    state = ServerState(ServerConfig(start="2024-01-01T00:00:00Z"))
    start = state.exchange.now_ms
    target = start + 30 * 24 * 3_600_000
    seen: list[int] = []
    done: list[int] = []
    with serve_in_thread(create_app(state=state, security=IN_PROCESS)) as url, \
            httpx.Client(base_url=url, timeout=600) as http:
        advancing = threading.Thread(target=lambda: done.append(
            http.post("/control/advance", json={"until": target}).status_code))
        advancing.start()
        with httpx.Client(base_url=url, timeout=600) as other:
            while advancing.is_alive():
                seen.append(other.get("/control/health").json()["now"])
                if start < seen[-1] < target:
                    answered.set()
        advancing.join()
    assert done == [200]
    # some answer came while simulated time was between the start and the target
    assert any(start < now < target for now in seen), seen[:5]
