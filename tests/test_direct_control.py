"""The in-process control plane without an HTTP client (perpsim/inprocess.py DirectControl):
the same answers as through httpx, byte for byte, errors included, and the same dry runs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import string
from typing import Any

import httpx

from perpsim.api.app import create_app
from perpsim.api.security import IN_PROCESS
from perpsim.api.state import ServerConfig, ServerState
from perpsim.inprocess import (
    IN_PROCESS_BASE,
    AsgiHttpxTransport,
    DirectControl,
    in_process_transport,
)
from perpsim.strategy.clock import ClockError, SteppedClock
from perpsim.strategy.dryrun import dry_run
from perpsim.strategy.record import HedgeConfig
from perpsim.strategy.results import to_json


def _app(scenario: str = "calm") -> Any:
    state = ServerState(ServerConfig(scenario=scenario, clock="stepped", seed=0))
    tokens = random.Random(7)  # the same API credentials in every app
    state.token_source = lambda n: "".join(tokens.choices(string.ascii_letters, k=n))
    return create_app(state=state, security=IN_PROCESS)


def test_the_clock_steps_and_fails_alike_with_and_without_an_http_client() -> None:
    async def run(direct: bool) -> tuple[list[Any], int]:
        app = _app()
        control = DirectControl(app)
        seen: list[Any] = []
        async with httpx.AsyncClient(base_url=IN_PROCESS_BASE,
                                     transport=AsgiHttpxTransport(app)) as http:
            clock = SteppedClock(IN_PROCESS_BASE, symbol="BTCUSD_PERP", account_id="nobody",
                                 http=http, control=control if direct else None)
            start = await clock.now_ms()
            for step in range(1, 4):
                seen.append(await clock.wait(start + step * 3_600_000))
            for bad in ({"stop_on": ["margin.call"]}, {"stop_on": ["not an event"]}):
                try:
                    await clock.wait(start + 5 * 3_600_000, **bad)  # type: ignore[arg-type]
                except ClockError as error:
                    seen.append(str(error))
        return seen, control.calls

    with_http, unused = asyncio.run(run(False))
    direct, calls = asyncio.run(run(True))
    assert direct == with_http
    assert unused == 0
    assert calls == 6  # the state, three advances, two refused
    assert "404" in direct[3]
    assert "nobody" in direct[3]


def test_a_dry_run_gets_the_same_control_answers_and_records_the_same() -> None:
    import perpsim.inprocess as inprocess

    def run(direct: bool) -> tuple[str, list[tuple[str, int, bytes]]]:
        seen: list[tuple[str, int, bytes]] = []
        original = inprocess.call_app

        async def recording(app: Any, method: str, path: str, *rest: Any) -> Any:
            answer = await original(app, method, path, *rest)
            if path.startswith("/control/"):
                seen.append((f"{method} {path}", answer.status, answer.body))
            return answer

        transport = in_process_transport(_app("crash"))
        if not direct:
            transport = dataclasses.replace(transport, control=None)
        inprocess.call_app = recording  # type: ignore[assignment]
        try:
            record = asyncio.run(dry_run(transport, HedgeConfig(), scenario="crash", seed=0))
        finally:
            inprocess.call_app = original
        assert (transport.control is not None) is direct
        return json.dumps(to_json(record), sort_keys=True), seen

    (direct, direct_answers), (with_http, http_answers) = run(True), run(False)
    assert direct == with_http
    assert direct_answers == http_answers
    assert sum(1 for call, _, _ in direct_answers if call == "POST /control/advance") > 10
