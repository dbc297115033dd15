"""Benchmark: wall time of the demo's hedge, end to end, with real ccxt over loopback HTTP.

Run: ``python -m benchmarks.e2e_demo [--scenario calm_30d] [--json]``

Exactly what ``perpsim demo`` runs, without the progress bar and the HTML report: the demo's
options (``perpsim demo``'s defaults), its market built in-process, served by uvicorn on a free
loopback port, and ``strategy.dryrun.dry_run`` hedging through the unmodified ccxt (a stepped
dry run reads REST only) from the scenario's first row to its last. Reported: wall time,
simulated days, simulated days per wall second, the engine's event count and how the hedge ended.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from perpsim.api.app import create_app
from perpsim.api.security import IN_PROCESS
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig, ServerState
from perpsim.strategy.record import DEMO_PROFILE, DEMO_SCENARIO, HedgeConfig

DAY_MS = 86_400_000


def run(scenario: str = DEMO_SCENARIO) -> dict[str, Any]:
    """Run the demo's hedge on ``scenario``; the figures."""
    from perpsim.strategy.dryrun import dry_run

    config = HedgeConfig()  # the demo's options are HedgeConfig's defaults
    state = ServerState(ServerConfig(profile=DEMO_PROFILE, scenario=scenario, seed=0,
                                     clock="stepped"))
    started = time.perf_counter()
    with serve_in_thread(create_app(state=state, security=IN_PROCESS)) as base_url:
        record = asyncio.run(dry_run(base_url, config, scenario=scenario,
                                     profile=DEMO_PROFILE, seed=0))
    wall_s = time.perf_counter() - started
    end_ms = record.end_ms if record.end_ms is not None else record.start_ms
    days = (end_ms - record.start_ms) / DAY_MS
    return {"scenario": scenario, "wall_s": round(wall_s, 3), "simulated_days": round(days, 3),
            "simulated_days_per_wall_s": round(days / wall_s, 2) if wall_s else 0.0,
            "engine_events": len(state.exchange.journal), "contracts": record.contracts,
            "exit_reason": record.exit_reason, "liquidated": record.liquidated,
            "samples": len(record.samples)}


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
