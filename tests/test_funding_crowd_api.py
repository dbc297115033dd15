"""A crowd's funding is one journal record and one ledger posting, yet every account still
reads its own payment through the API: ``/dapi/v1/income`` FUNDING_FEE rows and
``/control/journal?account_id=`` give each account exactly its row of the settlement."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from test_api_account import signed

from perpsim.sim.funding_detail import FundingDetail
from perpsim.sim.ledger import BatchPosting

from conftest import Market

HOUR_MS = 3_600_000
SYMBOL = "BTCUSD_PERP"


def lines(market: Market, **params: Any) -> list[dict[str, Any]]:
    response = market.control.get("/control/journal", params=params)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def test_each_account_of_a_crowd_reads_its_own_funding(market: Market) -> None:
    market.prices("60000", "60120")  # a premium: longs pay shorts
    crowd = [market.account() for _ in range(12)]
    for i, creds in enumerate(crowd):
        if i % 3 == 0:
            done = signed(market, creds, "POST", "/dapi/v1/marginType",
                          {"symbol": SYMBOL, "marginType": "ISOLATED"})
            assert done.status_code == 200, done.text
        order = signed(market, creds, "POST", "/dapi/v1/order",
                       {"symbol": SYMBOL, "side": "BUY" if i % 2 else "SELL", "type": "MARKET",
                        "quantity": 10 + 7 * i})
        assert order.status_code == 200, order.text
    market.advance(8 * HOUR_MS)
    ex = market.state.exchange
    (settled,) = [e for e in ex.journal
                  if e.type == "funding.settled" and e.payload["symbol"] == SYMBOL]
    assert isinstance(settled.detail, FundingDetail)
    assert settled.payload["positions"] == len(crowd)
    fees = [p for p in ex.ledger.postings if p.reason == "funding_fee"]
    assert len(fees) == 1
    assert isinstance(fees[0], BatchPosting)
    assert not any(e.type == "funding.payment" for e in ex.journal)  # one record, no events
    for creds in crowd:
        aid = creds["account_id"]
        (row,) = settled.detail.rows_of(aid)
        amount = settled.detail.amount(row)
        assert amount != 0
        (paid,) = lines(market, types="funding.payment", account_id=aid)
        assert Decimal(paid["payload"]["amount"]) == amount
        assert paid["seq"] == settled.seq
        income = signed(market, creds, "GET", "/dapi/v1/income",
                        {"incomeType": "FUNDING_FEE"}).json()
        assert [Decimal(r["income"]) for r in income] == [amount]
        assert income[0]["symbol"] == SYMBOL
    # Longs paid what shorts received, less rounding: the record's totals are its rows'.
    total = sum((settled.detail.amount(i) for i in range(len(crowd))), Decimal(0))
    assert total == Decimal(settled.payload["received"]) - Decimal(settled.payload["paid"])
    ex.ledger.check_conserved(replay=True)
