"""Every bundled profile works in every command that takes one: the hedge finds the venue's
inverse perpetual in its own market list (BTCUSD_PERP on Binance, BTCUSD on Bybit, XBTUSD on
BitMEX), still over the Binance COIN-M wire."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from perpsim.cli import main
from perpsim.sim.profile import bundled_profiles, load_profile
from perpsim.strategy.markets import hedge_market
from perpsim.strategy.plan import PlanError

# The coin hedged: half a BTC is 30,000 of Bybit's and BitMEX's 1 USD contracts (15 slices of
# 2,000 each way), as telling as the default 5 BTC's 150 slices and a tenth of the requests.
SPOT_BTC = "0.5"


def test_the_three_venues_are_bundled() -> None:
    assert {"binance_coinm", "bybit_inverse", "bitmex_xbtusd"} <= set(bundled_profiles())


@pytest.mark.parametrize("profile", bundled_profiles())
def test_hedge_runs_on_every_bundled_profile(capsys: pytest.CaptureFixture[str],
                                             profile: str) -> None:
    code = main(["hedge", "--scenario", "calm", "--profile", profile, "--spot", SPOT_BTC,
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert (result["profile"], result["exit_reason"], result["liquidated"]) == (
        profile, "end", False)
    # all the coin hedged in the venue's own contracts (1 USD on Bybit/BitMEX, 100 on Binance)
    perp = next(i for i in load_profile(profile).instruments
                if i.is_perpetual and i.pair == "BTCUSD")
    assert Decimal(result["contract_size_usd"]) == perp.contract_size_usd
    held_usd = float(SPOT_BTC) * float(result["start_price_usd"])
    assert abs(result["contracts"] * float(perp.contract_size_usd) - held_usd) < 0.01 * held_usd


@pytest.mark.parametrize("profile", ["bybit_inverse", "bitmex_xbtusd"])
def test_demo_runs_on_the_other_profiles(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         profile: str) -> None:
    report = tmp_path / "report.html"
    code = main(["demo", "--scenario", "calm", "--profile", profile, "--spot", SPOT_BTC,
                 "--report", str(report)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "perpsim demo" in out
    assert report.is_file()
    assert profile in report.read_text(encoding="utf-8")


class _Venue:
    """What hedge_market reads of a ccxt client: markets and market(symbol)."""

    def __init__(self, *markets: dict[str, object]) -> None:
        self.markets = {str(m["symbol"]): m for m in markets}

    def market(self, symbol: str) -> dict[str, object]:
        for m in self.markets.values():
            if symbol in (m["symbol"], m["id"]):
                return m
        raise KeyError(symbol)


PERP = {"symbol": "BTC/USD:BTC", "id": "XBTUSD", "swap": True, "inverse": True, "base": "BTC",
        "quote": "USD", "active": True}
DATED = {**PERP, "symbol": "BTC/USD:BTC-240329", "id": "BTCUSD_240329", "swap": False}
LINEAR = {**PERP, "symbol": "BTC/USDT:USDT", "id": "BTCUSDT", "inverse": False, "quote": "USDT"}


def test_the_market_is_the_coins_inverse_perpetual_from_the_venues_list() -> None:
    assert hedge_market(_Venue(DATED, LINEAR, PERP), "BTC")["id"] == "XBTUSD"
    assert hedge_market(_Venue(DATED, PERP), "BTC", "BTCUSD_240329")["id"] == "BTCUSD_240329"
    with pytest.raises(PlanError, match="no inverse perpetual of ETH"):
        hedge_market(_Venue(DATED, LINEAR, PERP), "ETH")
    with pytest.raises(PlanError, match="no inverse perpetual of BTC"):
        hedge_market(_Venue(DATED, LINEAR, {**PERP, "active": False}), "BTC")
    with pytest.raises(PlanError, match="no market 'BTCUSD_PERP'"):
        hedge_market(_Venue(PERP), "BTC", "BTCUSD_PERP")
