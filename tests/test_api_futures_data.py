"""``/futures/data/*`` statistics (api/binance_coinm/futures_data.py) computed from what the
engine did: three accounts trade half an hour in, the boundary an hour in shows them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from test_api_account import assert_binance_error, signed

from conftest import START_MS, Market

HOUR_MS = 3_600_000
PAIR = "BTCUSD"


def _stats(market: Market, path: str, **params: Any) -> Any:
    answer = market.control.get(f"/futures/data/{path}",
                                params={"pair": PAIR, "period": "1h", **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def traded(market: Market) -> Market:
    """Long 30 (A), short 10 (B), long 5 (C) at 00:30; the clock at 01:00."""
    market.prices("60000", "60300")
    market.advance(HOUR_MS // 2)
    for side, qty in (("BUY", "30"), ("SELL", "10"), ("BUY", "5")):
        creds = market.account({"BTC": "1"})
        answer = signed(market, creds, "POST", "/dapi/v1/order",
                        {"symbol": "BTCUSD_PERP", "side": side, "type": "MARKET",
                         "quantity": qty})
        assert answer.status_code == 200, answer.text
    market.advance(HOUR_MS // 2)
    return market


def test_open_interest_history_replays_positions(traded: Market) -> None:
    rows = _stats(traded, "openInterestHist", contractType="PERPETUAL")
    assert [r["timestamp"] for r in rows] == [START_MS, START_MS + HOUR_MS]
    assert [r["sumOpenInterest"] for r in rows] == ["0", "35"]  # longs 35 = shorts 10 + 25
    assert rows[1]["pair"] == PAIR
    assert rows[1]["contractType"] == "PERPETUAL"
    # The value in coin at the contract's price then (60300 USD).
    assert Decimal(rows[1]["sumOpenInterestValue"]) == (Decimal(3500) / Decimal(60300)
                                                         ).quantize(Decimal("1e-8"))
    live = traded.control.get("/dapi/v1/openInterest", params={"symbol": "BTCUSD_PERP"})
    assert live.json()["openInterest"] == rows[-1]["sumOpenInterest"]


def test_long_short_ratios_count_accounts_and_contracts(traded: Market) -> None:
    # Holders at 01:00: A +30, C +5, B −10 and the synthetic market −25.
    (_, globl) = _stats(traded, "globalLongShortAccountRatio")
    assert (globl["longAccount"], globl["shortAccount"], globl["longShortRatio"]) == (
        "0.5000", "0.5000", "1.0000")
    (_, top_accounts) = _stats(traded, "topLongShortAccountRatio")
    assert (top_accounts["longAccount"], top_accounts["shortAccount"]) == ("1.0000", "0.0000")
    (empty, top_positions) = _stats(traded, "topLongShortPositionRatio")
    assert set(top_positions) == {"pair", "longShortRatio", "longPosition", "shortPosition",
                                  "timestamp"}
    assert top_positions["longPosition"] == "1.0000"  # the top 20 % of 4 holders: A alone
    assert (empty["longPosition"], empty["shortPosition"], empty["longShortRatio"]) == (
        "0.0000", "0.0000", "0.0000")  # nobody held anything at 00:00


def test_taker_volume_and_basis(traded: Market) -> None:
    (before, after) = _stats(traded, "takerBuySellVol", contractType="ALL")
    assert (before["takerBuyVol"], before["takerSellVol"]) == ("0", "0")
    assert (after["takerBuyVol"], after["takerSellVol"]) == ("35", "10")
    assert Decimal(after["takerBuyVolValue"]) > 0
    (first, _) = _stats(traded, "basis", contractType="PERPETUAL")
    assert first["futuresPrice"] == "60300.0"
    assert first["basis"] == "300.00000000"
    assert first["basisRate"] == "0.0050"
    assert first["annualizedBasisRate"] == ""


@pytest.mark.parametrize(("path", "params", "code"), [
    ("openInterestHist", {"pair": PAIR, "period": "1h"}, -1102),  # contractType missing
    ("openInterestHist", {"pair": PAIR, "period": "7m", "contractType": "ALL"}, -1130),
    ("basis", {"pair": PAIR, "period": "1h", "contractType": "ALL"}, -1130),
    ("takerBuySellVol", {"pair": "NOPE", "period": "1h", "contractType": "ALL"}, -1121),
    ("globalLongShortAccountRatio", {"period": "1h"}, -1102),
    ("topLongShortAccountRatio", {"pair": PAIR, "period": "1h", "limit": "501"}, -1130),
])
def test_bad_statistics_requests_are_binance_errors(market: Market, path: str,
                                                    params: dict[str, str], code: int) -> None:
    answer = market.control.get(f"/futures/data/{path}", params=params)
    assert_binance_error(answer, code)
