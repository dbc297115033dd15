"""Spot wallet over the wire with the real ccxt: universal transfer and the spot balance."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from perpsim.strategy.connect import connect

from live_market import Market


def _client(market: Market, spot: str = "2", futures: str = "0.5") -> tuple[ccxt.Exchange, str]:
    creds = market.account({"BTC": futures}, spot_balances={"BTC": spot})
    ex = connect(market.base_url, creds["api_key"], creds["api_secret"])
    return ex, creds["account_id"]


def _balances(market: Market, account_id: str) -> tuple[Decimal, Decimal]:
    view = market.control.get(f"/control/accounts/{account_id}").json()
    return Decimal(view["spot_balances"]["BTC"]), Decimal(view["balances"]["BTC"])


def test_transfer_spot_to_futures_and_back(market: Market) -> None:
    ex, account_id = _client(market)
    ex.load_markets()
    ex.transfer("BTC", 0.75, "spot", "inverse")
    assert _balances(market, account_id) == (Decimal("1.25"), Decimal("1.25"))
    ex.transfer("BTC", 0.25, "inverse", "spot")
    assert _balances(market, account_id) == (Decimal("1.5"), Decimal("1"))
    spot = ex.fetch_balance({"type": "spot", "subType": "spot"})  # binancecoinm defaults to inverse
    assert spot["BTC"]["free"] == pytest.approx(1.5)
    journal = market.control.get("/control/journal").text
    assert journal.count('"type":"balance.transfer"') == 2


def test_transfer_more_than_held_is_refused_and_changes_nothing(market: Market) -> None:
    ex, account_id = _client(market)
    ex.load_markets()
    before = market.control.get("/control/journal").text
    with pytest.raises(ccxt.ExchangeError):
        ex.transfer("BTC", 5, "spot", "inverse")
    with pytest.raises(ccxt.ExchangeError):
        ex.transfer("BTC", 3, "inverse", "spot")
    assert _balances(market, account_id) == (Decimal("2"), Decimal("0.5"))
    assert market.control.get("/control/journal").text == before
