"""A dry run of the hedge on perpsim: reset a stepped market, open a funded account, run.

Only the control plane (reset, accounts, state, advance) is perpsim-specific; the hedge itself
runs through real ccxt (REST + WebSocket) exactly as it would against a live venue.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from perpsim.strategy.clock import SteppedClock
from perpsim.strategy.connect import connect
from perpsim.strategy.record import HedgeConfig, RunRecord
from perpsim.strategy.resilience import resilient
from perpsim.strategy.runner import Progress, run_hedge


class DryRunError(RuntimeError):
    """The control plane refused a set-up call."""


def scenario_ref(scenario: str | Path | dict[str, str]) -> str | dict[str, str]:
    """A bundled scenario name as is; a file path as ``{"path": ...}``."""
    if isinstance(scenario, dict):
        return scenario
    text = str(scenario)
    if isinstance(scenario, Path) or "/" in text or text.endswith((".csv", ".json")):
        return {"path": str(Path(text).resolve())}
    return text


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    response = await http.post(path, json=body)
    if response.status_code >= 300:
        raise DryRunError(f"POST {path} answered {response.status_code}: {response.text}")
    return response.json()


def _amount(value: Decimal) -> str:
    return format(value, "f")


async def dry_run(base_url: str, config: HedgeConfig, *, scenario: str | Path | dict[str, str],
                  profile: str = "binance_coinm", seed: int = 0,
                  progress: Progress | None = None) -> RunRecord:
    """Run ``config`` on ``scenario`` from its first row to its last (or ``config.end_ms``)."""
    base = base_url.rstrip("/")
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        state = await _post(http, "/control/reset", {
            "scenario": scenario_ref(scenario), "profile": profile, "seed": seed,
            "clock": "stepped"})
        end_ms = config.end_ms if config.end_ms is not None else state.get("scenario_end")
        if end_ms is not None and config.end_ms is None:
            config = replace(config, end_ms=int(end_ms))
        ex = connect(base, None, None, mode="pro")
        try:
            await ex.load_markets()
            market = ex.market(config.symbol)
            coin = market.get("settle") or market["base"]
            collateral = config.spot_btc if config.collateral_btc is None else \
                config.collateral_btc
            body: dict[str, Any] = {"balances": {coin: _amount(collateral)},
                                    "label": "hedge dry run"}
            if config.spot_btc > collateral:
                body["spot_balances"] = {coin: _amount(config.spot_btc - collateral)}
            account = await _post(http, "/control/accounts", body)
            ex.apiKey, ex.secret = account["api_key"], account["api_secret"]
            clock = SteppedClock(base, symbol=market["id"], account_id=account["account_id"],
                                 http=http)
            try:
                # Retries with backoff, client-id lookups instead of re-sends, stream resync:
                # the same wrapper a live run uses (strategy/resilience.py).
                return await run_hedge(config, resilient(ex, seed=seed, clock=clock), clock,
                                       progress=progress)
            finally:
                await clock.close()
        finally:
            await ex.close()
