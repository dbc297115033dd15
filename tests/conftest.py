"""Shared fixtures: one real perpsim server per test session (uvicorn on 127.0.0.1, free port),
reset to a fresh manual market before each test that asks for it (pytest-httpserver's shape)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, settings

from live_market import START, START_MS, Market

__all__ = ["START", "START_MS", "Market"]  # tests also import these from conftest

from perpsim.api.app import create_app
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig, ServerState

# Property tests draw the same examples on every run (derandomize: seeded from each test's
# name), never replay a local example database, and never fail on how fast data generation
# happened to be on a busy machine: a failure is a bug, reproducible by running the test again.
# HYPOTHESIS_PROFILE=explore draws fresh random examples (to hunt for new counterexamples).
# Properties draw a share of their stated counts by default; --hypothesis-profile=thorough (or
# explore) draws them all (tests/hypothesis_budget.py).
settings.register_profile("perpsim", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", settings.get_profile("perpsim"))
settings.register_profile("explore", database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "perpsim"))


@pytest.fixture(scope="session")
def perpsim_server() -> Iterator[tuple[str, ServerState]]:
    """One live server for the whole session."""
    state = ServerState(ServerConfig(start=START))
    with serve_in_thread(create_app(state=state)) as base_url:
        yield base_url, state


@pytest.fixture
def market(perpsim_server: tuple[str, ServerState]) -> Iterator[Market]:
    """The session's server reset to a fresh manual market at 2024-01-01T00:00Z."""
    base_url, state = perpsim_server
    with httpx.Client(base_url=base_url, timeout=30) as client:
        handle = Market(base_url, state, client)
        handle.post("reset", {"profile": "binance_coinm", "scenario": "manual", "seed": 0,
                              "start": START, "clock": "stepped", "speed": 1.0})
        yield handle


@pytest.fixture(scope="module")
def bybit_market() -> Iterator[Market]:
    """A perpsim server on the ``bybit_inverse`` profile (its default wire: Bybit v5)."""
    state = ServerState(ServerConfig(profile="bybit_inverse", start=START))
    with serve_in_thread(create_app(state=state)) as base_url, \
            httpx.Client(base_url=base_url, timeout=30) as client:
        yield Market(base_url, state, client)
