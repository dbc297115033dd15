"""The control plane over real HTTP: reset, accounts, prices, advance, state, journal."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from live_market import START_MS, Market

HOUR_MS = 3_600_000


def test_reset_rebuilds_from_scratch(market: Market) -> None:
    market.account({"BTC": "2"})
    state = market.post("reset", {"scenario": "crash", "seed": 7})
    assert state["scenario"] == "crash"
    assert state["seed"] == 7
    assert state["now"] == START_MS
    assert state["ledger"]["total"] == state["ledger"]["deposits"]
    assert state["insurance_fund"]["BTC"] == "100"
    # Nothing of the old market survived: account 1 is gone, the new one is 1 again.
    assert market.control.get("/control/accounts/1").status_code == 404
    assert market.account()["account_id"] == "1"


def test_reset_with_a_bad_scenario_keeps_the_old_market(market: Market) -> None:
    market.account({"BTC": "3"})
    before = market.control.get("/control/state").json()
    response = market.control.post("/control/reset", json={"scenario": "no-such-scenario"})
    assert response.status_code == 400
    assert response.json()["error"] == "scenario_error"
    assert "no-such-scenario" in response.json()["message"]
    assert market.control.get("/control/state").json() == before


def test_account_creation_and_view(market: Market) -> None:
    created = market.account({"BTC": "2.5"}, label="alice")
    assert set(created) == {"account_id", "api_key", "api_secret"}
    view = market.control.get(f"/control/accounts/{created['account_id']}").json()
    assert view["label"] == "alice"
    assert Decimal(view["balances"]["BTC"]) == Decimal("2.5")
    assert view["positions"] == []
    assert view["open_orders"] == 0
    state = market.control.get("/control/state").json()
    assert Decimal(state["ledger"]["deposits"]["BTC"]) == Decimal("102.5")  # fund + alice


def test_chosen_credentials_are_kept(market: Market) -> None:
    created = market.account(api_key="my-key-123456", api_secret="my-secret-123456")
    assert created["api_key"] == "my-key-123456"
    assert created["api_secret"] == "my-secret-123456"
    again = market.control.post("/control/accounts",
                                json={"balances": {}, "api_key": "my-key-123456"})
    assert again.status_code == 400
    assert "already in use" in again.json()["message"]


def test_advance_settles_funding_at_the_funding_time(market: Market) -> None:
    events = market.advance(8 * HOUR_MS)
    settled = [e for e in events if e["type"] == "funding.settled"]
    assert {e["symbol"] for e in settled} == {"BTCUSD_PERP", "ETHUSD_PERP"}
    assert all(e["time"] == START_MS + 8 * HOUR_MS for e in settled)
    # Flat premium: the rate is the interest rate, 0.01 % per 8 h.
    assert all(e["rate"] == "0.00010000" for e in settled)
    until = market.post("advance", {"until": START_MS + 9 * HOUR_MS})
    assert until["now"] == START_MS + 9 * HOUR_MS
    assert until["events"] == []


def test_prices_move_the_manual_market_and_trigger(market: Market) -> None:
    result = market.prices("65000", "65010")
    assert result["events"][0]["type"] == "prices.set"
    symbols = market.control.get("/control/state").json()["symbols"]
    assert symbols["BTCUSD_PERP"]["index"] == "65000"
    assert symbols["BTCUSD_PERP"]["last"] == "65010"


def test_prices_on_a_scenario_market_is_409(market: Market) -> None:
    market.post("reset", {"scenario": "calm"})
    response = market.control.post("/control/prices",
                                   json={"symbol": "BTCUSD_PERP", "index": "1"})
    assert response.status_code == 409
    assert response.json()["error"] == "invalid_state"


def test_journal_lines_and_since(market: Market) -> None:
    market.account()
    market.advance(8 * HOUR_MS)
    lines = market.control.get("/control/journal").text.splitlines()
    assert lines[0].startswith('{"payload":')
    assert len(lines) >= 4
    tail = market.control.get("/control/journal", params={"since": 2}).text.splitlines()
    assert tail == lines[2:]


BAD_CALLS = [
    ("advance", {"ms": -1}),
    ("advance", {"ms": 1.5}),
    ("advance", {"ms": "soon"}),
    ("advance", {}),
    ("advance", {"ms": 1, "until": 2}),
    ("advance", {"until": 5}),
    ("advance", {"ms": 10**18}),
    ("accounts", {"balances": {"BTC": "NaN"}}),
    ("accounts", {"balances": {"BTC": "-1"}}),
    ("accounts", {"balances": {"BTC": "1e40"}}),
    ("accounts", {"balances": {"BTC": "0.000000001"}}),
    ("accounts", {"balances": {"DOGE": "1"}}),
    ("accounts", {"balances": {"BTC": True}}),
    ("accounts", {"balances": "lots"}),
    ("accounts", {"balances": {}, "surprise": 1}),
    ("prices", {"symbol": "NOPE", "index": "1"}),
    ("prices", {"symbol": "BTCUSD_PERP", "index": "0"}),
    ("prices", {"symbol": "BTCUSD_PERP", "index": "inf"}),
    ("prices", {"symbol": "BTCUSD_PERP"}),
    ("reset", {"profile": "nope"}),
    ("reset", {"clock": "sundial"}),
    ("reset", {"speed": -2}),
    ("reset", {"start": "yesterday"}),
    ("reset", {"seed": -1}),
]


@pytest.mark.parametrize(("path", "body"), BAD_CALLS)
def test_bad_input_is_4xx_json_and_changes_nothing(market: Market, path: str,
                                                   body: dict[str, object]) -> None:
    market.account({"BTC": "1"})
    journal = market.control.get("/control/journal").text
    state = market.control.get("/control/state").json()
    response = market.control.post(f"/control/{path}", json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()
    assert set(error) == {"error", "message"}
    assert error["message"]
    assert market.control.get("/control/journal").text == journal
    assert market.control.get("/control/state").json() == state


def test_malformed_json_is_400(market: Market) -> None:
    response = market.control.post("/control/advance", content=b"{not json",
                                   headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert set(response.json()) == {"error", "message"}


def test_unknown_account_is_404(market: Market) -> None:
    response = market.control.get("/control/accounts/999")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown_account", "message": "no account '999'"}


def test_openapi_docs_are_served(market: Market) -> None:
    assert market.control.get("/docs").status_code == 200
    paths = market.control.get("/openapi.json").json()["paths"]
    assert {"/control/reset", "/control/accounts", "/control/advance"} <= set(paths)


def test_spot_balances_are_separate_from_margin(market: Market) -> None:
    created = market.account({"BTC": "0.5"}, spot_balances={"BTC": "1.5"})
    view = market.control.get(f"/control/accounts/{created['account_id']}").json()
    assert Decimal(view["balances"]["BTC"]) == Decimal("0.5")
    assert Decimal(view["spot_balances"]["BTC"]) == Decimal("1.5")
    assert Decimal(view["available"]["BTC"]) == Decimal("0.5")  # spot coin is not margin


def test_advance_stops_at_a_wake_level(market: Market) -> None:
    market.post("reset", {"scenario": "squeeze"})
    result = market.post("advance", {"ms": 48 * HOUR_MS,
                                     "wake": [{"symbol": "BTCUSD_PERP", "mark_above": "66000"}]})
    assert result["stopped"] == "wake"
    assert result["now"] < START_MS + 48 * HOUR_MS
    wake = result["events"][-1]
    assert wake["type"] == "wake"
    assert Decimal(wake["mark"]) >= Decimal("66000")
    # The instant before the wake the mark was still below the level: it stopped at the first.
    assert result["now"] == wake["time"]


def test_advance_stops_on_an_account_event(market: Market) -> None:
    market.post("reset", {"scenario": "squeeze"})
    other = market.account({"BTC": "1"})
    mine = market.account({"BTC": "1"})
    state = market.state.exchange
    from perpsim.sim import trading

    for who in (other, mine):
        state.set_margin_mode(who["account_id"], "BTCUSD_PERP", "isolated")
        trading.place_order(state, who["account_id"], "BTCUSD_PERP", "SELL", "MARKET", 1000)
    result = market.post("advance", {"ms": 48 * HOUR_MS, "stop_on": ["margin.call"],
                                     "account_id": mine["account_id"]})
    assert result["stopped"] == "margin.call"
    last = result["events"][-1]
    assert (last["type"], last["account_id"]) == ("margin.call", mine["account_id"])
    bad = market.control.post("/control/advance", json={"ms": 1, "account_id": "nobody"})
    assert bad.status_code == 404


def test_advance_stops_at_the_settlement_paying_the_account(market: Market) -> None:
    """A settlement is one record standing for its payments: the stop check expands it (once
    per request, however often it is asked) and the answer is that of an advance to the
    same instant without a stop."""
    from perpsim.sim import trading

    def opened() -> str:
        market.post("reset", {"scenario": "calm"})
        other, mine = market.account({"BTC": "1"}), market.account({"BTC": "1"})
        for who in (other, mine):
            trading.place_order(market.state.exchange, who["account_id"], "BTCUSD_PERP",
                                "SELL", "MARKET", 100)
        return str(mine["account_id"])

    mine = opened()
    stopped = market.post("advance", {"ms": 30 * HOUR_MS, "stop_on": ["funding.payment"],
                                      "account_id": mine})
    assert stopped["stopped"] == "funding.payment"
    payments = [e for e in stopped["events"] if e["type"] == "funding.payment"]
    assert {e["account_id"] for e in payments} == {"1", mine}  # both paid, one stop
    assert stopped["events"][-1]["type"] == "funding.settled"
    opened()
    plain = market.post("advance", {"until": stopped["now"]})
    assert plain["stopped"] is None
    assert plain["events"] == stopped["events"]
    assert plain["now"] == stopped["now"]


def test_realtime_clock_follows_the_wall_clock_times_speed(market: Market) -> None:
    market.post("reset", {"clock": "realtime", "speed": 3600.0})  # one hour per second
    wall0 = time.monotonic()
    first = market.control.get("/control/state").json()["now"]
    time.sleep(0.5)
    second = market.control.get("/control/state").json()["now"]
    wall_s = time.monotonic() - wall0
    # bounded by the wall time measured around both reads (a busy machine stretches it), with
    # a margin for the clock's tick: an hour per wall second, not faster, not slower
    assert 0.3 * HOUR_MS <= second - first <= (wall_s + 0.5) * HOUR_MS
    refused = market.control.post("/control/advance", json={"ms": 1000})
    assert refused.status_code == 400
    assert "realtime" in refused.json()["message"]
