"""Where one in-process hedge's time goes: requests by endpoint, time inside the app, and the
shares of the engine, the app's own code, the web framework and ccxt under cProfile.

Run: ``python -m perpsim.benchmarks.hedge_profile [--scenario calm_30d] [--json]``

Used by ``benchmarks/sweep_scaling.py`` (``perpsim bench --only sweep``) for the per-hedge
request count and the fraction of the hedge spent in the engine.

* **Requests**: every request the hedge makes, counted where it enters the app
  (``perpsim.inprocess.call_app``), by method and path: ccxt's and the control plane's.
* **Time in the app** (wall, no profiler): the seconds spent inside ``call_app`` — routing,
  middleware, handlers and the engine — against the whole hedge; the rest is the client (ccxt
  building, signing and parsing; the strategy) and the event loop.
* **Shares under cProfile** (a second, profiled run; the profiler inflates small calls, so
  these are proportions, not times): *engine* is the inclusive time of ``perpsim/sim`` code
  entered from outside it (nested engine calls are not counted twice); *api* the app's own
  code (perpsim/api) less the engine it calls; *framework* FastAPI, Starlette and pydantic;
  *ccxt* ccxt's own code.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from perpsim.strategy.record import DEMO_PROFILE, DEMO_SCENARIO, HedgeConfig

# Which code a profiled function belongs to, by a fragment of its file path.
ENGINE = ("perpsim/sim/", "/sim/")
GROUPS = {"api": ("perpsim/api/", "/api/"), "framework": ("fastapi/", "starlette/", "pydantic"),
          "ccxt": ("ccxt/",)}


def _market(scenario: str) -> Any:
    from perpsim.api.app import create_app
    from perpsim.api.security import IN_PROCESS
    from perpsim.api.state import ServerConfig, ServerState

    return create_app(state=ServerState(ServerConfig(profile=DEMO_PROFILE, scenario=scenario,
                                                     seed=0, clock="stepped")),
                      security=IN_PROCESS)


async def _hedge(target: Any, scenario: str) -> Any:
    from perpsim.strategy.dryrun import dry_run

    return await dry_run(target, HedgeConfig(), scenario=scenario, profile=DEMO_PROFILE, seed=0)


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


def _in(path: str, fragments: tuple[str, ...]) -> bool:
    return any(f in path for f in fragments)


def shares(stats: pstats.Stats) -> dict[str, float]:
    """Fractions of the profiled total: engine, api (less the engine), framework, ccxt."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in raw.values())
    engine = 0.0
    own = Counter[str]()
    for (path, _, _), (_, _, tt, _, callers) in raw.items():
        if _in(path, ENGINE):
            # Inclusive time of engine code entered from outside the engine.
            engine += sum(c[3] for caller, c in callers.items() if not _in(caller[0], ENGINE))
            continue
        for name, fragments in GROUPS.items():
            if _in(path, fragments):
                own[name] += tt
                break
    out = {"engine": engine / total}
    out.update({name: own[name] / total for name in GROUPS})
    return {k: round(v, 3) for k, v in out.items()}


def run(scenario: str = DEMO_SCENARIO) -> dict[str, Any]:
    """One warm-up hedge, one timed (requests, time in the app), one profiled (shares)."""
    from perpsim.inprocess import in_process_transport

    asyncio.run(_hedge(in_process_transport(_market(scenario)), scenario))
    transport = in_process_transport(_market(scenario))
    with counted_app_calls() as (counts, app_s):
        started = time.perf_counter()
        asyncio.run(_hedge(transport, scenario))
        hedge_s = time.perf_counter() - started
    profiler = cProfile.Profile()
    transport = in_process_transport(_market(scenario))
    profiler.enable()
    asyncio.run(_hedge(transport, scenario))
    profiler.disable()
    control = sum(n for k, n in counts.items() if " /control/" in k)
    return {"scenario": scenario, "hedge_s": round(hedge_s, 3),
            "requests": sum(counts.values()), "control_requests": control,
            "advances": counts.get("POST /control/advance", 0),
            "by_endpoint": dict(counts.most_common()),
            "app_s": round(app_s[0], 3), "app_fraction": round(app_s[0] / hedge_s, 3),
            "profiled_shares": shares(pstats.Stats(profiler))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=DEMO_SCENARIO)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.scenario)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
