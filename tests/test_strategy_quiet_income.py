"""Funding income is taken from the stepped clock's events instead of read only when the rows
are provably the venue's (strategy/quiet_income.py), and whole dry runs record the same."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from dry_run_helpers import counted_dry_run

from perpsim.strategy.monitor import Monitor
from perpsim.strategy.quiet_income import income_places, payments_from_events
from perpsim.strategy.record import HedgeConfig

MARKET = "BTCUSD_PERP"


def _payment(time_ms: int, amount: str, symbol: str = MARKET) -> dict[str, Any]:
    return {"type": "funding.payment", "time": time_ms, "seq": 1, "account_id": "1",
            "symbol": symbol, "amount": amount, "coin": "BTC"}


def test_payments_become_rows_written_as_the_venue_writes_them() -> None:
    events = [_payment(1, "0.00049644"), {"type": "margin.call", "time": 2},
              _payment(3, "-0.0000123"), _payment(4, "0.5", symbol="ETHUSD_PERP")]
    rows = payments_from_events(events, market_id=MARKET, places=8)
    assert rows == [(1, Decimal("0.00049644")), (3, Decimal("-0.00001230"))]
    assert rows is not None
    assert [str(amount) for _, amount in rows] == ["0.00049644", "-0.00001230"]
    assert payments_from_events([], market_id=MARKET, places=8) == []


@pytest.mark.parametrize("events", [
    [_payment(1, "0.000000001")],  # more decimals than the venue writes: not exact
    [_payment(1, "0.00000000")],  # nothing moved: no row
    [_payment(1, "0.1"), _payment(1, "0.2")],  # two at an instant: the venue's order
    [_payment(2, "0.1"), _payment(1, "0.2")],  # out of order
    [_payment(1, "lots")],
    [{"type": "funding.payment", "symbol": MARKET, "time": 1}],  # no amount
])
def test_rows_that_cannot_be_proven_are_read(events: list[dict[str, Any]]) -> None:
    assert payments_from_events(events, market_id=MARKET, places=8) is None


def test_the_venues_decimals_come_from_the_amount_as_written() -> None:
    assert income_places(Decimal("0.00049640")) == 8
    assert income_places(Decimal("-1.5")) == 1
    assert income_places(Decimal("12")) == 0


def _dry_run(scenario: str, profile: str = "binance_coinm",
             config: HedgeConfig | None = None) -> tuple[str, Counter[str]]:
    record, paths, _ = counted_dry_run(scenario, profile, config)
    return record, paths


INCOME = {"binance_coinm": "GET /dapi/v1/income", "bybit_inverse": "GET /v5/execution/list"}


@pytest.mark.parametrize(("profile", "scenario", "config"), [
    ("binance_coinm", "calm_30d", None),
    ("binance_coinm", "funding_flip", None),  # the short pays, then receives
    ("binance_coinm", "crash", None),
    ("binance_coinm", "squeeze", HedgeConfig(leverage=10, topup=False,
                                             collateral_btc=Decimal(1))),  # liquidated
    ("bybit_inverse", "calm", None),  # Bybit's executions are read as before
])
def test_a_dry_run_records_the_same_with_income_from_events(
        monkeypatch: pytest.MonkeyPatch, profile: str, scenario: str,
        config: HedgeConfig | None) -> None:
    derived, derived_paths = _dry_run(scenario, profile, config)
    monkeypatch.setattr(Monitor, "_income_from_events", lambda self: None)
    read, read_paths = _dry_run(scenario, profile, config)
    assert derived == read
    income = INCOME[profile]
    assert '"funding.payment"' in read
    if profile == "bybit_inverse":
        assert derived_paths == read_paths
    else:
        assert derived_paths[income] < read_paths[income]
        assert {k: v for k, v in derived_paths.items() if k != income} == \
            {k: v for k, v in read_paths.items() if k != income}
