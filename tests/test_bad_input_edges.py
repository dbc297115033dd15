"""Bad input is stopped at the edge with one clear error and changes nothing (issue 15, 1, 2,
5, 6): prices outside the price filter, absurd scenario and profile numbers, deep JSON, huge
bodies, the MAX_NUM_ORDERS filter and consistent Binance codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safety_helpers import app_client, signed, state_digest

from perpsim.api.state import ServerState
from perpsim.sim.errors import ProfileError
from perpsim.sim.profile import PROFILE_DIR, load_profile

from api_helpers import AsgiClient

HOUR_MS = 3_600_000
SYMBOL = "BTCUSD_PERP"


@pytest.mark.parametrize(("index", "perp", "field", "bound"), [
    ("1e-30", "60000", "index", "minimum price 0.1"),
    ("60000", "1e-30", "perp", "minimum price 0.1"),
    ("2e9", None, "index", "maximum price 1000000000"),
    ("60000", "0.05", "perp", "minimum price 0.1"),
    ("60000", "2.0", "perp", "minimum price 2.1"),  # the synthetic book's 20 levels reach 0
    ("1", None, "index", "minimum price 2.1"),
])
def test_a_price_outside_the_filter_is_refused_and_changes_nothing(
        index: str, perp: str | None, field: str, bound: str) -> None:
    client, state = app_client()
    before = state_digest(state)
    body = {"symbol": SYMBOL, "index": index, **({"perp": perp} if perp else {})}
    response = client.post("/control/prices", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_price"
    assert field in response.json()["message"]
    assert bound in response.json()["message"]
    assert state_digest(state) == before
    # funding keeps settling: the market was never damaged
    advanced = client.post("/control/advance", json={"ms": 8 * HOUR_MS})
    assert advanced.status_code == 200, advanced.text
    settled = [e["symbol"] for e in advanced.json()["events"] if e["type"] == "funding.settled"]
    assert settled.count(SYMBOL) == 1


def test_the_smallest_and_largest_tape_prices_work() -> None:
    client, _ = app_client()
    for index in ("2.1", "1000000000"):
        assert client.post("/control/prices", json={"symbol": SYMBOL, "index": index}
                           ).status_code == 200
        assert client.post("/control/advance", json={"ms": 8 * HOUR_MS}).status_code == 200
    assert client.get("/control/health").json()["status"] == "ok"


@pytest.mark.parametrize("bad", ["1e300", "1e-300", "0.01"])
def test_a_scenario_csv_price_outside_the_filter_fails_the_reset_naming_it(
        tmp_path: Path, bad: str) -> None:
    (tmp_path / "s.csv").write_text("time,index\n1704067200000,60000\n"
                                    f"1704067260000,{bad}\n1704067320000,60000\n")
    client, state = app_client(tmp_path)
    before = state_digest(state)
    response = client.post("/control/reset", json={"scenario": {"path": "s.csv"}})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "BTCUSD index price" in message
    assert "row 2" in message
    assert "price filter" in message
    assert state_digest(state) == before


def test_a_deeply_nested_scenario_spec_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    client, state = app_client(tmp_path)
    before = state_digest(state)
    response = client.post("/control/reset", json={"scenario": {"path": "deep.json"}})
    assert response.status_code == 400, response.text
    assert "nested 100000 levels deep" in response.json()["message"]
    assert state_digest(state) == before


def test_a_deeply_nested_request_body_is_refused() -> None:
    client, state = app_client()
    before = state_digest(state)
    body = '{"balances": ' + "[" * 50_000 + "]" * 50_000 + "}"
    response = client.post("/control/accounts", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    assert "nested" in response.json()["message"]
    assert state_digest(state) == before


def test_a_body_over_the_size_cap_answers_413_unread() -> None:
    client, state = app_client(max_body_bytes=64 * 1024)
    before = state_digest(state)
    big = json.dumps({"balances": {"BTC": "1"}, "label": "x" * 200_000})
    response = client.post("/control/accounts", content=big,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert state_digest(state) == before
    assert client.post("/control/accounts", json={"balances": {"BTC": "1"}}).status_code == 201


@pytest.mark.parametrize(("path", "value", "field"), [
    (("rounding", "coin_step"), "1e-30", "rounding.coin_step"),
    (("mark", "basis_samples"), 1_000_000_000, "mark.basis_samples"),
    (("funding", "premium_sample_interval_ms"), 1, "funding.premium_sample_interval_ms"),
    (("mark", "basis_sample_interval_ms"), 1, "mark.basis_sample_interval_ms"),
])
def test_absurd_profile_numbers_are_one_error_naming_the_field(
        tmp_path: Path, path: tuple[str, str], value: object, field: str) -> None:
    raw = json.loads((PROFILE_DIR / "binance_coinm.json").read_text())
    raw[path[0]][path[1]] = value
    file = tmp_path / "p.json"
    file.write_text(json.dumps(raw))
    with pytest.raises(ProfileError) as caught:
        load_profile(file)
    assert str(file) in str(caught.value)
    assert field in str(caught.value)


def test_a_deeply_nested_profile_is_one_clear_error(tmp_path: Path) -> None:
    file = tmp_path / "p.json"
    file.write_text('{"name": ' + "[" * 10_000 + "]" * 10_000 + "}")
    with pytest.raises(ProfileError, match="nested 10001 levels deep"):
        load_profile(file)


# ---- the dialect --------------------------------------------------------------------------------
def _trader() -> tuple[AsgiClient, ServerState, dict[str, str]]:
    client, state = app_client()
    creds = client.post("/control/accounts", json={"balances": {"BTC": "10"}}).json()
    return client, state, creds


def test_max_num_orders_is_enforced_with_binance_code() -> None:
    client, state, creds = _trader()
    for k in range(200):
        response = signed(client, state, creds, "POST", "/dapi/v1/order",
                          {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": 1,
                           "price": f"{59_000 - k}", "timeInForce": "GTC"})
        assert response.status_code == 200, response.text
    before = state_digest(state)
    response = signed(client, state, creds, "POST", "/dapi/v1/order",
                      {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": 1,
                       "price": "58000", "timeInForce": "GTC"})
    assert response.status_code == 400
    assert response.json() == {"code": -2025, "msg": "Reach max open order limit."}
    assert state_digest(state) == before


def test_fractional_quantity_is_the_same_error_on_order_and_algo_order() -> None:
    client, state, creds = _trader()
    order = signed(client, state, creds, "POST", "/dapi/v1/order",
                   {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": "1.5",
                    "price": "59000", "timeInForce": "GTC"})
    algo = signed(client, state, creds, "POST", "/dapi/v1/algoOrder",
                  {"symbol": SYMBOL, "side": "BUY", "type": "STOP_MARKET", "quantity": "1.5",
                   "triggerPrice": "61000", "algoType": "CONDITIONAL"})
    assert order.status_code == algo.status_code == 400
    assert order.json()["code"] == algo.json()["code"] == -1111


@pytest.mark.parametrize(("price", "code"), [("2000000000", -4002), ("0.05", -4013)])
def test_a_price_outside_the_filter_is_a_price_filter_error(price: str, code: int) -> None:
    client, state, creds = _trader()
    response = signed(client, state, creds, "POST", "/dapi/v1/order",
                      {"symbol": SYMBOL, "side": "SELL", "type": "LIMIT", "quantity": 1,
                       "price": price, "timeInForce": "GTC"})
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_a_tiny_limit_price_is_not_called_a_leverage_error() -> None:
    # A buy at 0.1 USD is 1,000 BTC per contract: too large for the leverage (Binance -2027),
    # or outside the price band once PERCENT_PRICE is enforced; never "Leverage is not valid".
    client, state, creds = _trader()
    response = signed(client, state, creds, "POST", "/dapi/v1/order",
                      {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": 1,
                       "price": "0.1", "timeInForce": "GTC"})
    assert response.status_code == 400
    assert response.json()["code"] != -4028
    assert response.json()["code"] in (-2027, -4024, -4016)
