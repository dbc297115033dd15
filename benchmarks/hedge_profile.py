"""Where one in-process hedge's time goes: requests by endpoint, time inside the app, and the
shares of the engine, the app's own code, the web framework, ccxt and the strategy (sampled).

Run: ``python -m perpsim.benchmarks.hedge_profile [--scenario calm_30d] [--profile P] [--json]``

Used by ``benchmarks/sweep_scaling.py`` (``perpsim bench --only sweep``) for the per-hedge
request count and the fraction of the hedge spent in the engine.

Each hedge runs on a new market served by one app, warmed by the first hedge, as in a sweep
worker (perpsim/inprocess.py ``AppHost``; since round 5 — until then a new app per hedge, whose
first requests also paid what FastAPI builds per route: ``framework`` was ~10 % higher).

* **Requests**: every request the hedge makes, counted where it enters the app
  (``perpsim.inprocess.call_app``), by method and path: ccxt's and the control plane's.
* **Time in the app** (wall, no profiler): the seconds spent inside ``call_app`` — routing,
  middleware, handlers and the engine — against the whole hedge; the rest is the client (ccxt
  building, signing and parsing; the strategy) and the event loop.
* **Sampled shares** (a second run, its main thread's stack sampled every millisecond by a
  thread; statistical, a few % either way): each sample goes to the innermost frame's owner
  among *engine* (perpsim/sim), *api* (perpsim/api: routes, wire shapes, signing),
  *framework* (FastAPI, Starlette, pydantic), *ccxt*, *strategy* (perpsim/strategy),
  *transport* (perpsim/inprocess, httpx) and *loop* (asyncio); library code (numpy, simpy,
  json...) counts for whoever called it, and anything else is *other*.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from perpsim.strategy.record import DEMO_PROFILE, DEMO_SCENARIO, HedgeConfig

# Who owns a sampled frame, by a fragment of its file path (the first match wins).
OWNERS = (("engine", ("perpsim/sim/", "/sim/")), ("api", ("perpsim/api/", "/api/")),
          ("framework", ("fastapi/", "starlette/", "pydantic")), ("ccxt", ("ccxt/",)),
          ("strategy", ("perpsim/strategy/", "/strategy/")),
          ("transport", ("perpsim/inprocess", "httpx/", "httpcore/")), ("loop", ("asyncio/",)))
SAMPLE_S = 0.001
SWITCH_S = 0.00001


def _market(scenario: str, profile: str = DEMO_PROFILE) -> Any:
    """A new app serving a new stepped market (the request-cost and transport benchmarks)."""
    from perpsim.api.app import create_app
    from perpsim.api.security import IN_PROCESS

    return create_app(state=_state(scenario, profile), security=IN_PROCESS)


def _state(scenario: str, profile: str = DEMO_PROFILE) -> Any:
    from perpsim.api.state import ServerConfig, ServerState

    return ServerState(ServerConfig(profile=profile, scenario=scenario, seed=0,
                                    clock="stepped"))


async def _hedge(target: Any, scenario: str, profile: str = DEMO_PROFILE) -> Any:
    from perpsim.strategy.dryrun import dry_run

    return await dry_run(target, HedgeConfig(), scenario=scenario, profile=profile, seed=0)


@contextmanager
def counted_app_calls() -> Iterator[tuple[Counter[str], list[float]]]:
    """Count and time every in-process request by "METHOD /path" while the block runs."""
    import perpsim.inprocess as inprocess

    counts: Counter[str] = Counter()
    seconds = [0.0]
    original = inprocess.call_app

    async def counting(app: Any, method: str, path: str, *rest: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(app, method, path, *rest)
        finally:
            seconds[0] += time.perf_counter() - started
            counts[f"{method.upper()} {path}"] += 1

    inprocess.call_app = counting  # type: ignore[assignment]
    try:
        yield counts, seconds
    finally:
        inprocess.call_app = original


def owner(frame: FrameType | None) -> str:
    """The owner (see OWNERS) of the innermost frame that has one, else "other"."""
    while frame is not None:
        path = frame.f_code.co_filename
        for name, fragments in OWNERS:
            if any(f in path for f in fragments):
                return name
        frame = frame.f_back
    return "other"


@contextmanager
def sampled_shares() -> Iterator[dict[str, float]]:
    """Sample the calling thread's stack every SAMPLE_S while the block runs; the dict is
    filled with each owner's share of the samples when the block ends."""
    target = threading.get_ident()
    counts: Counter[str] = Counter()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_S):
            counts[owner(sys._current_frames().get(target))] += 1

    shares: dict[str, float] = {}
    switch = sys.getswitchinterval()
    # The sampler waits for the GIL; the main thread hands it over at its next check after
    # the switch interval, or sooner at a call that releases it (numpy's searches do): a long
    # interval would pile the samples onto such calls.
    sys.setswitchinterval(SWITCH_S)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield shares
    finally:
        done.set()
        sampler.join()
        sys.setswitchinterval(switch)
        total = sum(counts.values()) or 1
        shares.update({name: round(counts[name] / total, 3)
                       for name in [*(n for n, _ in OWNERS), "other"]})
        shares["samples"] = total


def run(scenario: str = DEMO_SCENARIO, profile: str = DEMO_PROFILE) -> dict[str, Any]:
    """One warm-up hedge, one timed (requests, time in the app), one sampled (shares), each on
    a new market served by the same app."""
    from perpsim.inprocess import AppHost, in_process_transport

    host = AppHost()
    with host.app(_state(scenario, profile)) as app:
        asyncio.run(_hedge(in_process_transport(app), scenario, profile))
    with host.app(_state(scenario, profile)) as app, counted_app_calls() as (counts, app_s):
        started, cpu = time.perf_counter(), time.process_time()
        asyncio.run(_hedge(in_process_transport(app), scenario, profile))
        hedge_s, hedge_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    with host.app(_state(scenario, profile)) as app, sampled_shares() as shares:
        asyncio.run(_hedge(in_process_transport(app), scenario, profile))
    control = sum(n for k, n in counts.items() if " /control/" in k)
    return {"scenario": scenario, "profile": profile, "hedge_s": round(hedge_s, 3),
            "hedge_cpu_s": round(hedge_cpu_s, 3),
            "requests": sum(counts.values()), "control_requests": control,
            "advances": counts.get("POST /control/advance", 0),
            "by_endpoint": dict(counts.most_common()),
            "app_s": round(app_s[0], 3), "app_fraction": round(app_s[0] / hedge_s, 3),
            "sampled_shares": shares}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=DEMO_SCENARIO)
    parser.add_argument("--profile", default=DEMO_PROFILE)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.scenario, args.profile)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
