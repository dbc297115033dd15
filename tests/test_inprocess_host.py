"""One app reused from market to market (perpsim/inprocess.py ``AppHost``, api/app.py
``serve_state``) answers every request of a dry run with the same bytes as a new app per run:
markets A, B, A on one app against A, B on new apps — every answer (status, headers, body), the
record and the journal — so nothing of one run reaches the next."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from ccxt.base.exchange import BaseExchange

import perpsim.inprocess as inprocess
from perpsim.api.app import create_app, serve_state
from perpsim.api.faults import FaultSpec
from perpsim.api.recording import start_recording, stop_recording
from perpsim.api.security import IN_PROCESS
from perpsim.api.state import ServerConfig, ServerState
from perpsim.inprocess import AppHost, in_process_transport
from perpsim.strategy.dryrun import dry_run
from perpsim.strategy.record import HedgeConfig
from perpsim.strategy.results import to_json


@dataclass(frozen=True)
class Market:
    scenario: str
    profile: str
    seed: int
    config: HedgeConfig


# Two dialects (a different route set warm in the route cache), two scenarios, two configs.
A = Market("calm", "binance_coinm", 0, HedgeConfig())
B = Market("crash", "bybit_inverse", 1, HedgeConfig(leverage=3))


def _state(market: Market) -> ServerState:
    state = ServerState(ServerConfig(profile=market.profile, scenario=market.scenario,
                                     seed=market.seed, clock="stepped"))
    # API credentials come from a cryptographic source; the same sequence for every run, so
    # the answers that carry them compare too.
    counter = itertools.count()
    state.token_source = lambda n: f"{next(counter):0{n}d}"[-n:]
    return state


_UUIDS = [0]


def _client_uuid() -> str:
    """ccxt's random ids (Bybit's transfer id, echoed by the venue), numbered per run."""
    _UUIDS[0] += 1
    return str(uuid.UUID(int=_UUIDS[0]))


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every request and answer of the in-process apps, in order."""
    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(BaseExchange, "uuid", staticmethod(_client_uuid))
    original = inprocess.call_app

    async def recording(app: Any, method: str, path: str, query: bytes, headers: Any,
                        body: bytes) -> inprocess.Answer:
        answer = await original(app, method, path, query, headers, body)
        seen.append((f"{method} {path}", answer))
        return answer

    monkeypatch.setattr(inprocess, "call_app", recording)
    return seen


def _run(app: Any, market: Market, state: ServerState,
         answers: list[tuple[str, Any]]) -> tuple[str, str, list[tuple[str, Any]]]:
    """(the record as JSON, the journal digest, the answers) of one dry run on ``app``."""
    start = len(answers)
    _UUIDS[0] = 0
    record = asyncio.run(dry_run(in_process_transport(app), market.config,
                                 scenario=market.scenario, profile=market.profile,
                                 seed=market.seed))
    return (json.dumps(to_json(record), sort_keys=True), state.exchange.journal.digest(),
            answers[start:])


def _fresh(market: Market, answers: list[tuple[str, Any]]) -> tuple[str, str, list[Any]]:
    state = _state(market)
    return _run(create_app(state=state, security=IN_PROCESS), market, state, answers)


def _hosted(host: AppHost, market: Market,
            answers: list[tuple[str, Any]]) -> tuple[str, str, list[Any]]:
    state = _state(market)
    with host.app(state) as app:
        return _run(app, market, state, answers)


def test_one_app_for_markets_a_b_a_answers_as_a_new_app_per_market(
        answers: list[tuple[str, Any]]) -> None:
    fresh_a, fresh_b = _fresh(A, answers), _fresh(B, answers)
    host = AppHost()
    hosted = [_hosted(host, market, answers) for market in (A, B, A)]
    assert host.created == 1  # one app served all three
    for (record, journal, seen), expected in zip(hosted, (fresh_a, fresh_b, fresh_a),
                                                 strict=True):
        assert record == expected[0]
        assert journal == expected[1]
        assert [path for path, _ in seen] == [path for path, _ in expected[2]]
        assert seen == expected[2]  # status, headers and body of every answer
    assert json.loads(fresh_a[0])["contracts"] > 0
    assert fresh_a[0] != fresh_b[0]  # the markets differ: a leak would show


def test_a_run_inside_a_run_gets_its_own_app() -> None:
    host = AppHost()
    with host.app(_state(A)) as outer, host.app(_state(B)) as inner:
        assert outer is not inner
        assert inner.state.perpsim.config.profile == "bybit_inverse"
        assert outer.state.perpsim.config.profile == "binance_coinm"
    with host.app(_state(B)) as again:
        assert again in (outer, inner)
    assert host.created == 2


def test_an_app_with_a_fault_installed_is_not_reused() -> None:
    host = AppHost()
    with host.app(_state(A)) as first:
        first.state.perpsim_harness.faults.add(FaultSpec(kind="latency", ms=5))
    state = _state(B)
    with host.app(state) as second:
        assert second is not first
        assert second.state.perpsim is state
        assert not second.state.perpsim_harness.faults.active
    assert host.created == 2


def test_serve_state_hands_the_harness_the_new_market_and_refuses_while_recording(
        tmp_path: Any) -> None:
    first, second = _state(A), _state(B)
    app = create_app(state=first, security=IN_PROCESS)
    harness = app.state.perpsim_harness
    serve_state(app, second)
    assert app.state.perpsim is second
    assert harness.state is second
    start_recording(harness, tmp_path / "run.jsonl")
    with pytest.raises(RuntimeError, match="harness is in use"):
        serve_state(app, first)
    assert app.state.perpsim is second  # refused: nothing changed
    stop_recording(harness)
    serve_state(app, first)
    assert app.state.perpsim is first


def test_each_thread_has_its_own_app() -> None:
    """A Dask worker runs tasks on several threads: never one app for two markets at once."""
    import threading

    host = AppHost()
    both_hold = threading.Barrier(2)
    seen: dict[str, Any] = {}

    def run(name: str, market: Market) -> None:
        with host.app(_state(market)) as app:
            both_hold.wait(timeout=60)  # both hold their app at once
            seen[name] = (app, app.state.perpsim.config.profile)

    threads = [threading.Thread(target=run, args=(name, market))
               for name, market in (("a", A), ("b", B))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert seen["a"][0] is not seen["b"][0]
    assert (seen["a"][1], seen["b"][1]) == ("binance_coinm", "bybit_inverse")
    assert host.created == 2
