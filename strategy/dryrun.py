"""A dry run of the hedge on perpsim: reset a stepped market, open a funded account, run.

Only the control plane (reset, accounts, state, advance) is perpsim-specific; the hedge itself
runs through real ccxt exactly as it would against a live venue.

A stepped dry run reads over REST only (no ``watch_*`` streams): its clock already stops at
every level and event a stream would have poked it for, and a stream frame racing a REST read
would make two runs of the same config differ. So a run is a pure function of its config,
whether the requests travel over loopback HTTP or, given a :class:`Transport`, straight into
an in-process app (perpsim/inprocess.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from perpsim.strategy.clock import ControlPlane, SteppedClock, control_call
from perpsim.strategy.connect import connect
from perpsim.strategy.control_http import AiohttpControl
from perpsim.strategy.markets import hedge_market
from perpsim.strategy.record import HedgeConfig, RunRecord
from perpsim.strategy.resilience import resilient
from perpsim.strategy.runner import Progress, run_hedge
from perpsim.strategy.venue import venue_for


class DryRunError(RuntimeError):
    """The control plane refused a set-up call."""


@dataclass(frozen=True)
class Transport:
    """Where a dry run's requests go instead of a socket (duck-typed: strategy/ never imports
    the server): ``ccxt_session`` stands in for ccxt's aiohttp session, ``http_transport`` is
    the control-plane client's httpx transport; ``base_url`` is the URL both are addressed to;
    ``control``, if any, answers control-plane calls without HTTP (strategy/clock.py
    ``ControlPlane``).
    """

    base_url: str
    ccxt_session: Any
    http_transport: httpx.AsyncBaseTransport
    control: ControlPlane | None = None


def scenario_ref(scenario: str | Path | dict[str, str]) -> str | dict[str, str]:
    """A bundled scenario name as is; a file path as ``{"path": ...}``."""
    if isinstance(scenario, dict):
        return scenario
    text = str(scenario)
    if isinstance(scenario, Path) or "/" in text or text.endswith((".csv", ".json")):
        return {"path": str(Path(text).resolve())}
    return text


async def _post(http: Callable[[], httpx.AsyncClient], control: ControlPlane | None, path: str,
                body: dict[str, Any]) -> Any:
    status, content = await control_call(http, control, "POST", path, body)
    if status >= 300:
        raise DryRunError(f"POST {path} answered {status}: "
                          f"{content.decode('utf-8', 'replace')}")
    return json.loads(content)


def _amount(value: Decimal) -> str:
    return format(value, "f")


async def dry_run(target: str | Transport, config: HedgeConfig, *,
                  scenario: str | Path | dict[str, str], profile: str = "binance_coinm",
                  seed: int = 0, progress: Progress | None = None,
                  dialect: str | None = None) -> RunRecord:
    """Run ``config`` on ``scenario`` from its first row to its last (or ``config.end_ms``),
    on the perpsim at ``target`` (a base URL, or an in-process :class:`Transport`), through
    the ccxt client of the market's wire: ``dialect`` if given, else the profile's default
    (``bybit_inverse`` → ccxt.bybit over Bybit v5, ``binance_coinm`` → ccxt.binancecoinm)."""
    transport = target if isinstance(target, Transport) else None
    base = (target.base_url if isinstance(target, Transport) else target).rstrip("/")
    # ccxt sleeps 250 ms on close for TLS connections to drain; a dry run has none (loopback
    # HTTP, or no socket at all).
    ccxt_config: dict[str, Any] = {"timeout_on_exit": 0}
    if transport is not None or base.startswith("http://"):
        # No TLS anywhere (loopback HTTP, or no socket): spare ccxt loading certifi's CA store
        # into an SSL context when it opens, tens of milliseconds per run.
        ccxt_config["verify"] = False
    if transport is not None:
        ccxt_config["session"] = transport.ccxt_session  # ccxt never closes a given session
    # Control-plane calls: in process straight to the app (when it answers them), over the
    # wire through aiohttp (strategy/control_http.py); httpx only for calls those decline.
    control = transport.control if transport is not None else AiohttpControl(base)
    made: list[httpx.AsyncClient] = []

    def http() -> httpx.AsyncClient:
        if not made:
            made.append(httpx.AsyncClient(base_url=base, timeout=120, transport=None
                                          if transport is None else transport.http_transport))
        return made[0]

    try:
        return await _run(http, control, base, ccxt_config, config, scenario=scenario,
                          profile=profile, seed=seed, progress=progress, dialect=dialect)
    finally:
        for client in made:
            await client.aclose()
        if isinstance(control, AiohttpControl):
            await control.close()


async def _run(http: Callable[[], httpx.AsyncClient], control: ControlPlane | None, base: str,
               ccxt_config: dict[str, Any], config: HedgeConfig, *,
               scenario: str | Path | dict[str, str], profile: str, seed: int,
               progress: Progress | None, dialect: str | None) -> RunRecord:
    """The dry run itself: reset, fund, connect ccxt, hedge (see :func:`dry_run`)."""
    reset: dict[str, Any] = {"scenario": scenario_ref(scenario), "profile": profile,
                             "seed": seed, "clock": "stepped"}
    if dialect is not None:
        reset["dialect"] = dialect
    state = await _post(http, control, "/control/reset", reset)
    end_ms = config.end_ms if config.end_ms is not None else state.get("scenario_end")
    if end_ms is not None and config.end_ms is None:
        config = replace(config, end_ms=int(end_ms))
    ex = connect(base, None, None, mode="async", config=ccxt_config,
                 dialect=str(state.get("dialect") or "binance_coinm"))
    try:
        await ex.load_markets()
        market = hedge_market(ex, config.coin, config.symbol)
        coin = market.get("settle") or market["base"]
        collateral = config.spot_btc if config.collateral_btc is None else \
            config.collateral_btc
        body: dict[str, Any] = {"balances": {coin: _amount(collateral)},
                                "label": "hedge dry run"}
        if config.spot_btc > collateral:
            body["spot_balances"] = {coin: _amount(config.spot_btc - collateral)}
        account = await _post(http, control, "/control/accounts", body)
        ex.apiKey, ex.secret = account["api_key"], account["api_secret"]
        await venue_for(ex).credentials_set(ex)
        clock = SteppedClock(base, symbol=market["id"], account_id=account["account_id"],
                             http=http, sole_actor=True, control=control)
        try:
            # Retries with backoff, client-id lookups instead of re-sends, stream resync:
            # the same wrapper a live run uses (strategy/resilience.py).
            return await run_hedge(config, resilient(ex, seed=seed, clock=clock), clock,
                                   progress=progress)
        finally:
            await clock.close()
    finally:
        await ex.close()
