"""In-process requests answered by their route's handler without the app's outer layers
(api/direct_calls.py) get the answers the whole app gives, byte for byte, errors included; the
shortcut steps aside whenever a layer in between would act; the stepped clock's control calls
(perpsim/inprocess.py ``DirectControl``) fail as they fail over HTTP."""

from __future__ import annotations

import asyncio
import json
import random
import string
from typing import Any

import pytest

from perpsim.api.app import create_app
from perpsim.api.direct_calls import DirectCalls, direct_calls
from perpsim.api.security import IN_PROCESS, SecurityConfig
from perpsim.api.state import ServerConfig, ServerState
from perpsim.inprocess import IN_PROCESS_BASE, Answer, DirectControl, call_app
from perpsim.strategy.clock import ClockError, SteppedClock

HOST = "127.0.0.1"
JSON = "application/json"
Request = tuple[str, str, str | None, bytes]  # method, path, content type, body


def _app(security: SecurityConfig = IN_PROCESS) -> Any:
    state = ServerState(ServerConfig(scenario="calm", clock="stepped", seed=0))
    tokens = random.Random(7)  # the same API credentials in every app
    state.token_source = lambda n: "".join(tokens.choices(string.ascii_letters, k=n))
    return create_app(state=state, security=security)


def _headers(content_type: str | None, body: bytes,
             host: str = HOST) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", host.encode())]
    if content_type is not None:
        headers += [(b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode())]
    return headers


async def _whole(app: Any, request: Request) -> Answer:
    method, path, content_type, body = request
    return await call_app(app, method, path, b"", _headers(content_type, body), body)


async def _direct(app: Any, request: Request) -> tuple[bool, Answer]:
    """(whether the shortcut served it, the answer)."""
    method, path, content_type, body = request
    calls = direct_calls(app)
    assert calls is not None
    leaf = calls.leaf(method, path, host=HOST, content_type=content_type, body=body)
    answer = await call_app(app if leaf is None else leaf, method, path, b"",
                            _headers(content_type, body), body)
    return leaf is not None, answer


def _requests(account_id: str) -> list[Request]:
    """Control and dialect calls, good and bad, each three times (learnt on the first two)."""
    advance = json.dumps({"ms": 60_000, "stop_on": ["margin.call"],
                          "account_id": account_id}).encode()
    calls: list[Request] = [
        ("POST", "/control/advance", JSON, advance),
        ("POST", "/control/advance", JSON, b'{"ms": 60000, "wake": [{"symbol": "BTCUSD_PERP",'
                                            b' "mark_above": "1000000"}]}'),
        ("POST", "/control/advance", JSON, b'{"ms": "soon"}'),  # does not validate: 400
        ("POST", "/control/advance", JSON, b"{"),  # not JSON
        ("POST", "/control/advance", "text/plain", b'{"ms": 1}'),
        ("POST", "/control/advance", JSON, b'{"ms": 1, "account_id": "nobody"}'),  # 404
        ("POST", "/control/advance", JSON, b'{"until": 1}'),  # in the past: 400
        ("GET", "/control/state", None, b""),
        ("GET", f"/control/accounts/{account_id}", None, b""),
        ("GET", "/control/accounts/nobody", None, b""),
        ("POST", "/control/accounts", JSON, b'{"balances": {"BTC": "1"}, "api_key": "k"}'),
        ("POST", "/control/accounts", JSON, b'{"balances": {"BTC": "1"}, "label": "more"}'),
        ("GET", "/dapi/v1/premiumIndex", None, b""),
        ("GET", "/dapi/v1/time", None, b""),
        ("GET", "/dapi/v1/positionRisk", None, b""),  # unsigned: Binance's error
        ("GET", "/v5/market/tickers", None, b""),  # Bybit's error for a missing category
        ("DELETE", "/control/advance", None, b""),  # 405
    ]
    return [call for call in calls for _ in range(3)]


def test_answers_are_byte_for_byte_those_of_the_whole_app() -> None:
    whole_app, direct_app = _app(), _app()

    async def run() -> tuple[list[Answer], list[Answer], int]:
        body = b'{"balances": {"BTC": "5"}, "api_key": "key-of-test", "api_secret": "secret-1"}'
        opened = [await _whole(app, ("POST", "/control/accounts", JSON, body))
                  for app in (whole_app, direct_app)]
        assert opened[0] == opened[1]
        account_id = json.loads(opened[0].body)["account_id"]
        whole, direct, served = [], [], 0
        for request in _requests(account_id):
            whole.append(await _whole(whole_app, request))
            shortcut, answer = await _direct(direct_app, request)
            direct.append(answer)
            served += shortcut
        return whole, direct, served

    whole, direct, served = asyncio.run(run())
    assert direct == whole
    assert {a.status for a in whole} >= {200, 201, 400, 401, 404, 405}
    assert served >= 15  # the third of each learnt call at least


def test_it_steps_aside_when_a_layer_in_between_would_act() -> None:
    app = _app()

    async def learn() -> DirectCalls:
        for _ in range(2):
            await _whole(app, ("GET", "/dapi/v1/time", None, b""))
            await _whole(app, ("POST", "/control/advance", JSON, b'{"ms": 1}'))
        calls = direct_calls(app)
        assert calls is not None
        return calls

    calls = asyncio.run(learn())

    def served(method: str = "GET", path: str = "/dapi/v1/time", host: str | None = HOST,
               body: bytes = b"") -> bool:
        content_type = JSON if body else None
        return calls.leaf(method, path, host=host, content_type=content_type,
                          body=body) is not None

    assert served()
    assert served("POST", "/control/advance", body=b'{"ms": 1}')
    assert not served(path="/dapi/v1/ping")  # not learnt yet
    assert not served(host="evil.example")  # the guard refuses foreign hosts
    assert not served(host=None)
    assert not served("POST", "/control/advance", body=b"[" * 200 + b"]" * 200)  # too deep
    harness = app.state.perpsim_harness
    harness.replay = True
    assert not served()
    harness.replay = False
    asyncio.run(_whole(app, ("POST", "/control/faults", JSON,
                             b'{"kind": "http_5xx", "path": "/dapi/v1/time", "count": 1}')))
    assert not served()  # a fault is installed: the harness decides
    asyncio.run(_whole(app, ("DELETE", "/control/faults", None, b"")))
    assert served()
    app.dependency_overrides[object] = object
    assert not served()
    app.dependency_overrides.clear()
    ex = app.state.perpsim.exchange
    ex.containment.mark(RuntimeError("boom"), ex.now_ms, "a test")
    assert not served()  # the broken-market guard answers


def test_a_control_token_keeps_the_control_plane_behind_the_guard() -> None:
    app = _app(SecurityConfig(data_dir=None, control_token="a-control-token"))
    token = [(b"authorization", b"Bearer a-control-token")]

    async def run() -> tuple[bool, bool]:
        for _ in range(3):
            await call_app(app, "GET", "/dapi/v1/time", b"", _headers(None, b""), b"")
            await call_app(app, "GET", "/control/state", b"", _headers(None, b"") + token, b"")
        calls = direct_calls(app)
        assert calls is not None
        return (calls.leaf("GET", "/dapi/v1/time", host=HOST, content_type=None, body=b"")
                is not None,
                calls.leaf("GET", "/control/state", host=HOST, content_type=None, body=b"")
                is not None)

    assert asyncio.run(run()) == (True, False)


def test_an_unanswered_error_breaks_the_market_and_propagates_as_through_the_app(
        monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = []
    for shortcut in (False, True):
        app = _app()

        async def run(app: Any = app, shortcut: bool = shortcut) -> str:
            request: Request = ("POST", "/control/advance", JSON, b'{"ms": 60000}')
            for _ in range(2):
                await _whole(app, request)
            ex = app.state.perpsim.exchange

            def fail(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("the engine fell over")

            monkeypatch.setattr(ex, "advance_until", fail)
            calls = direct_calls(app)
            assert calls is not None
            leaf = calls.leaf("POST", "/control/advance", host=HOST, content_type=JSON,
                              body=request[3])
            assert leaf is not None  # learnt: the shortcut would serve it
            call = _direct(app, request) if shortcut else _whole(app, request)
            with pytest.raises(RuntimeError, match="fell over"):
                await call
            broken = ex.containment.broken
            assert broken is not None
            return broken.describe()

        outcomes.append(asyncio.run(run()))
    assert outcomes[0] == outcomes[1]
    assert "POST /control/advance" in outcomes[0]


def test_the_clock_fails_alike_with_and_without_the_direct_control_plane() -> None:
    import httpx

    from perpsim.inprocess import AsgiHttpxTransport

    async def run(direct: bool) -> tuple[list[str], int]:
        app = _app()
        control = DirectControl(app)
        messages = []
        async with httpx.AsyncClient(base_url=IN_PROCESS_BASE,
                                     transport=AsgiHttpxTransport(app)) as http:
            clock = SteppedClock(IN_PROCESS_BASE, symbol="BTCUSD_PERP", account_id="nobody",
                                 http=http, control=control if direct else None)
            start = await clock.now_ms()
            for step in range(1, 4):  # the third advance is served directly
                await clock.wait(start + step * 60_000)
            for _ in range(3):
                try:
                    await clock.wait(start + 10 * 60_000, stop_on=["margin.call"])
                except ClockError as error:
                    messages.append(str(error))
        return messages, control.calls

    with_http, _ = asyncio.run(run(False))
    direct, served = asyncio.run(run(True))
    assert direct == with_http
    assert len(direct) == 3
    assert "404" in direct[0]
    assert "nobody" in direct[0]
    assert served >= 2
