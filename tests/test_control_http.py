"""A dry run over the wire steers the control plane through aiohttp (strategy/control_http.py):
no httpx client is made, and the record is the in-process run's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from perpsim.api.app import create_app
from perpsim.api.security import IN_PROCESS
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig, ServerState
from perpsim.inprocess import in_process_transport
from perpsim.strategy import control_http
from perpsim.strategy.dryrun import dry_run
from perpsim.strategy.record import HedgeConfig
from perpsim.strategy.results import to_json


def _market() -> Any:
    return create_app(state=ServerState(ServerConfig(scenario="calm", seed=0, clock="stepped")),
                      security=IN_PROCESS)


def test_a_wire_dry_run_needs_no_httpx_and_records_what_in_process_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    in_process = asyncio.run(dry_run(in_process_transport(_market()), HedgeConfig(),
                                     scenario="calm", seed=0))

    def no_httpx(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an httpx client was made")

    monkeypatch.setattr(httpx.AsyncClient, "__init__", no_httpx)
    calls: list[str] = []
    original = control_http.AiohttpControl.call

    async def counted(self: Any, method: str, path: str, body: bytes) -> Any:
        calls.append(f"{method} {path}")
        return await original(self, method, path, body)

    monkeypatch.setattr(control_http.AiohttpControl, "call", counted)
    with serve_in_thread(_market()) as url:
        wire = asyncio.run(dry_run(url, HedgeConfig(), scenario="calm", seed=0))
    assert json.dumps(to_json(wire), sort_keys=True) == \
        json.dumps(to_json(in_process), sort_keys=True)
    assert calls[:2] == ["POST /control/reset", "POST /control/accounts"]
    assert calls.count("POST /control/advance") >= len(wire.samples)


def test_a_refused_control_call_says_what_the_venue_answered() -> None:
    async def run(url: str) -> tuple[int, Any]:
        control = control_http.AiohttpControl(url)
        try:
            answer = await control.call("POST", "/control/advance", b'{"ms": "soon"}')
        finally:
            await control.close()
        assert answer is not None
        return answer[0], json.loads(answer[1])

    with serve_in_thread(_market()) as url:
        status, body = asyncio.run(run(url))
    assert status == 400
    assert body["error"] == "invalid_request"
    assert "ms" in body["message"]
