"""The monitor's position read on Binance COIN-M (strategy/venue.py ``position_rows``): the
request ccxt's ``fetch_positions([symbol])`` makes, without ccxt's parse. What the strategy
reads of the rows is the same — checked on one account, flat then open, and on whole dry runs
(the record and every request) against the ccxt call it replaces."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from dry_run_helpers import counted_dry_run

from perpsim.api.app import create_app
from perpsim.api.state import ServerConfig
from perpsim.inprocess import IN_PROCESS_BASE, AsgiSession, DirectControl
from perpsim.strategy.connect import connect
from perpsim.strategy.record import HedgeConfig
from perpsim.strategy.resilience import resilient
from perpsim.strategy.venue import BinanceCoinM, venue_for

SYMBOL = "BTC/USD:BTC"


async def _both_ways() -> list[tuple[Any, Any, int]]:
    """(PositionView from ccxt's rows, from position_rows, rows) flat, short, hedge legs."""
    app = create_app(ServerConfig(scenario="calm", clock="stepped"))
    control = DirectControl(app)
    _, body = await control.call("POST", "/control/accounts", b'{"balances": {"BTC": "5"}}')
    account = json.loads(body)
    ex = connect(IN_PROCESS_BASE, account["api_key"], account["api_secret"], mode="async",
                 config={"session": AsgiSession(app), "timeout_on_exit": 0, "verify": False})
    venue = venue_for(ex)
    seen = []
    try:
        await ex.load_markets()
        for client in (ex, resilient(ex)):  # bare, and through the retrying wrapper
            rows = await venue.position_rows(client, SYMBOL)
            seen.append((venue.position(await ex.fetch_positions([SYMBOL]), SYMBOL),
                         venue.position(rows, SYMBOL), len(rows)))
        await ex.set_margin_mode("isolated", SYMBOL)
        await ex.create_order(SYMBOL, "market", "sell", 120)
        await control.call("POST", "/control/advance", b'{"ms": 3600000}')
        rows = await venue.position_rows(ex, SYMBOL)
        seen.append((venue.position(await ex.fetch_positions([SYMBOL]), SYMBOL),
                     venue.position(rows, SYMBOL), len(rows)))
        await ex.create_order(SYMBOL, "market", "buy", 120, params={"reduceOnly": True})
        rows = await venue.position_rows(ex, SYMBOL)
        seen.append((venue.position(await ex.fetch_positions([SYMBOL]), SYMBOL),
                     venue.position(rows, SYMBOL), len(rows)))
    finally:
        await ex.close()
    return seen


def test_the_rows_read_as_ccxt_s_flat_open_and_closed() -> None:
    seen = asyncio.run(_both_ways())
    for from_ccxt, from_rows, rows in seen:
        assert from_rows == from_ccxt
        assert rows == 1  # the symbol's row only (the other quoted contract is left out)
    assert [view.contracts for view, _, _ in seen] == [0, 0, -120, 0]
    assert seen[2][0].liquidation_price_usd is not None


def _dry_run(scenario: str, config: HedgeConfig | None = None) -> tuple[str, Counter[str]]:
    record, paths, _ = counted_dry_run(scenario, "binance_coinm", config)
    return record, paths


@pytest.mark.parametrize(("scenario", "config"), [
    ("calm", None), ("crash", None), ("funding_flip", None),
    # 10x without top-ups on the squeeze: margin calls, then the venue liquidates the short.
    ("squeeze", HedgeConfig(leverage=10, topup=False, collateral_btc=Decimal(1)))])
def test_a_dry_run_records_and_asks_the_same_as_with_ccxt_s_fetch_positions(
        monkeypatch: pytest.MonkeyPatch, scenario: str, config: HedgeConfig | None) -> None:
    rows_record, rows_paths = _dry_run(scenario, config)

    async def through_ccxt(self: BinanceCoinM, ex: Any, symbol: str) -> list[dict[str, Any]]:
        return list(await ex.fetch_positions([symbol]))

    monkeypatch.setattr(BinanceCoinM, "position_rows", through_ccxt)
    ccxt_record, ccxt_paths = _dry_run(scenario, config)
    assert rows_record == ccxt_record
    assert rows_paths["GET /dapi/v1/positionRisk"] > 0
    # The same requests (ccxt loads the leverage brackets at its first position read; the
    # setup has loaded them already either way).
    assert rows_paths == ccxt_paths
