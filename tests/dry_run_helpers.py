"""A stepped, in-process dry run that also counts ccxt's requests: the strategy tests that
prove a spared read changes nothing compare two of these (records and requests)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from perpsim.api.app import create_app
from perpsim.api.security import IN_PROCESS
from perpsim.api.state import ServerConfig, ServerState
from perpsim.inprocess import in_process_transport
from perpsim.strategy.dryrun import dry_run
from perpsim.strategy.record import HedgeConfig
from perpsim.strategy.results import to_json


def counted_dry_run(scenario: str, profile: str = "binance_coinm",
                    config: HedgeConfig | None = None) -> tuple[str, Counter[str], Any]:
    """(the record as sorted JSON, ccxt's requests by "METHOD /path", the record)."""
    app = create_app(state=ServerState(ServerConfig(profile=profile, scenario=scenario, seed=0,
                                                    clock="stepped")), security=IN_PROCESS)
    transport = in_process_transport(app)
    session, paths = transport.ccxt_session, Counter[str]()
    original = session.request

    async def counting(method: str, url: str, data: Any, headers: Any) -> Any:
        paths[f"{method} {url.split('?')[0].split('127.0.0.1')[-1]}"] += 1
        return await original(method, url, data, headers)

    session.request = counting  # type: ignore[method-assign]
    record = asyncio.run(dry_run(transport, config or HedgeConfig(), scenario=scenario,
                                 profile=profile, seed=0))
    return json.dumps(to_json(record), sort_keys=True), paths, record
