"""Validate, then mutate (issue 15): random invalid control-plane and dialect calls never
change the market. A full state digest (journal digest, ledger balances, orders, positions,
tapes, the clock) is compared before and after each rejected call."""

from __future__ import annotations

import string
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples
from safety_helpers import app_client, signed, state_digest

from perpsim.api.state import ServerState

from api_helpers import AsgiClient

SYMBOL = "BTCUSD_PERP"
HOUR_MS = 3_600_000

# Values that are never a usable number: words (NaN and Infinity are refused too), or
# numbers of a form no field accepts.
WORDS = st.text(alphabet=string.ascii_letters + " _-", min_size=1, max_size=12)
NOT_A_PRICE = st.one_of(
    WORDS, st.sampled_from(["0", "-1", "-60000", "1e-30", "2e9", "1e400", "NaN", "Infinity",
                            "", " "]),
    st.decimals(min_value=Decimal("-1e6"), max_value=Decimal("0.09"), places=2).map(str),
    st.decimals(min_value=Decimal("1000000001"), max_value=Decimal("1e14"), places=0).map(str))
NOT_A_QUANTITY = st.one_of(
    WORDS, st.sampled_from(["0", "-1", "1.5", "0.0001", "1e20", "", "1e400"]),
    st.integers(min_value=-10**6, max_value=0).map(str),
    st.integers(min_value=1_000_001, max_value=10**12).map(str))
NOT_AN_AMOUNT = st.one_of(
    WORDS, st.sampled_from(["0", "-1", "1e20", "", "1e400", "0.000000001"]),
    st.integers(min_value=-10**6, max_value=0).map(str))
NOT_JSON_NUMBER = st.one_of(WORDS, st.booleans(), st.none(), st.just([]), st.just({}))


def _market() -> tuple[AsgiClient, ServerState, dict[str, str]]:
    """A market with an account that holds a position and resting orders."""
    client, state = app_client()
    creds = client.post("/control/accounts", json={"balances": {"BTC": "2"}}).json()
    for params in ({"side": "BUY", "type": "MARKET", "quantity": 20},
                   {"side": "BUY", "type": "LIMIT", "quantity": 5, "price": "59000",
                    "timeInForce": "GTC"},
                   {"side": "SELL", "type": "LIMIT", "quantity": 5, "price": "61000",
                    "timeInForce": "GTC"}):
        response = signed(client, state, creds, "POST", "/dapi/v1/order",
                          {"symbol": SYMBOL, **params})
        assert response.status_code == 200, response.text
    assert client.post("/control/advance", json={"ms": HOUR_MS}).status_code == 200
    return client, state, creds


CLIENT, STATE, CREDS = _market()


def control_calls() -> st.SearchStrategy[tuple[str, str, Any]]:
    """(method, path, JSON body) of control-plane calls that must be refused."""
    prices = st.one_of(
        st.fixed_dictionaries({"symbol": st.just(SYMBOL), "index": NOT_A_PRICE}),
        st.fixed_dictionaries({"symbol": st.just(SYMBOL), "index": st.just("60000"),
                               "perp": NOT_A_PRICE}),
        st.fixed_dictionaries({"symbol": WORDS, "index": st.just("60000")}),
        st.fixed_dictionaries({"symbol": st.just(SYMBOL), "index": NOT_JSON_NUMBER}),
    ).map(lambda body: ("POST", "/control/prices", body))
    advance = st.one_of(
        st.fixed_dictionaries({"ms": st.integers(max_value=-1)}),
        st.fixed_dictionaries({"ms": st.integers(min_value=100 * 365 * 24 * HOUR_MS + 1)}),
        st.fixed_dictionaries({"until": st.integers(min_value=0,
                                                    max_value=1_704_067_200_000)}),
        st.fixed_dictionaries({"ms": st.just(1), "until": st.integers(min_value=0)}),
        st.just({}),
        st.fixed_dictionaries({"ms": NOT_JSON_NUMBER}),
        st.fixed_dictionaries({"ms": st.just(HOUR_MS), "account_id": WORDS}),
        st.fixed_dictionaries({"ms": st.just(HOUR_MS), "wake": st.just(
            [{"symbol": "NOPE", "mark_above": "1"}])}),
        st.fixed_dictionaries({"ms": st.just(HOUR_MS), "wake": st.lists(
            st.fixed_dictionaries({"symbol": st.just(SYMBOL), "mark_above": NOT_A_PRICE}),
            min_size=1, max_size=2)}),
    ).map(lambda body: ("POST", "/control/advance", body))
    accounts = st.one_of(
        st.fixed_dictionaries({"balances": st.fixed_dictionaries({"BTC": NOT_AN_AMOUNT})}),
        st.fixed_dictionaries({"balances": st.dictionaries(
            st.text(alphabet=string.ascii_uppercase, min_size=4, max_size=6), st.just("1"),
            min_size=1, max_size=2)}),
        st.fixed_dictionaries({"balances": st.just({"BTC": "0.000000001"})}),
        st.fixed_dictionaries({"api_key": st.just(CREDS["api_key"])}),
        st.fixed_dictionaries({"api_key": st.text(max_size=7)}),
        st.fixed_dictionaries({"surprise": st.just(1)}),
    ).map(lambda body: ("POST", "/control/accounts", body))
    reset = st.one_of(
        st.fixed_dictionaries({"scenario": WORDS.filter(lambda w: w.strip() not in (
            "manual", "calm", "crash", "squeeze"))}),
        st.fixed_dictionaries({"scenario": st.sampled_from(
            ["/etc/passwd.csv", "../x.csv", "a/../../b.json"])}),
        st.fixed_dictionaries({"scenario": st.fixed_dictionaries({"path": st.sampled_from(
            ["/etc/hosts", "../../x.csv", "missing.csv"])})}),
        st.fixed_dictionaries({"profile": WORDS}),
        st.fixed_dictionaries({"seed": st.integers(max_value=-1)}),
        st.fixed_dictionaries({"speed": st.sampled_from([0, -1, 1e9])}),
        st.fixed_dictionaries({"clock": WORDS}),
        st.fixed_dictionaries({"start": WORDS}),
    ).map(lambda body: ("POST", "/control/reset", body))
    record = st.fixed_dictionaries({"path": st.sampled_from(
        ["/tmp/x.jsonl", "../x.jsonl", "~/x.jsonl"])}).map(
        lambda body: ("POST", "/control/record", body))
    return st.one_of(prices, advance, accounts, reset, record)


def dialect_calls() -> st.SearchStrategy[tuple[str, str, dict[str, Any]]]:
    """(method, path, parameters) of signed Binance calls that must be refused."""
    limit = {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    orders = st.one_of(
        st.builds(lambda q: {**limit, "quantity": q, "price": "60000"}, NOT_A_QUANTITY),
        st.builds(lambda p: {**limit, "quantity": "1", "price": p}, NOT_A_PRICE),
        st.sampled_from([
            {**limit, "quantity": "1", "price": "60000.05"},  # off the tick
            {**limit, "side": "HOLD", "quantity": "1", "price": "60000"},
            {**limit, "type": "ICEBERG", "quantity": "1", "price": "60000"},
            {**limit, "timeInForce": "FOREVER", "quantity": "1", "price": "60000"},
            {**limit, "quantity": "1"},  # LIMIT without price
            {**limit, "symbol": "DOGEUSD_PERP", "quantity": "1", "price": "1"},
            {"symbol": SYMBOL, "side": "BUY", "type": "MARKET", "quantity": "1",
             "price": "60000"},
            {"symbol": SYMBOL, "side": "BUY", "type": "MARKET", "quantity": "50000"},  # margin
            {"symbol": SYMBOL, "side": "BUY", "type": "MARKET", "quantity": "1",
             "reduceOnly": "true"},  # would increase the long
            {**limit, "quantity": "1", "price": "60000", "reduceOnly": "maybe"},
            {"symbol": SYMBOL, "side": "BUY", "type": "STOP_MARKET", "quantity": "1"},
            {**limit, "quantity": "1", "price": "60000", "closePosition": "true"},
        ]),
    ).map(lambda params: ("POST", "/dapi/v1/order", params))
    algo_base = {"symbol": SYMBOL, "side": "SELL", "type": "STOP_MARKET",
                 "algoType": "CONDITIONAL"}
    algos = st.one_of(
        st.builds(lambda p: {**algo_base, "quantity": "1", "triggerPrice": p}, NOT_A_PRICE),
        st.builds(lambda q: {**algo_base, "quantity": q, "triggerPrice": "59000"},
                  NOT_A_QUANTITY),
        st.sampled_from([{**algo_base, "quantity": "1"},
                         {**algo_base, "algoType": "OTHER", "quantity": "1",
                          "triggerPrice": "59000"},
                         {**algo_base, "quantity": "1", "triggerPrice": "61000"}]),  # at once
    ).map(lambda params: ("POST", "/dapi/v1/algoOrder", params))
    others = st.one_of(
        st.builds(lambda oid: ("DELETE", "/dapi/v1/order", {"symbol": SYMBOL, "orderId": oid}),
                  st.integers(min_value=1000, max_value=10**9)),
        st.just(("DELETE", "/dapi/v1/order", {"symbol": SYMBOL})),
        st.builds(lambda lev: ("POST", "/dapi/v1/leverage", {"symbol": SYMBOL,
                                                             "leverage": lev}),
                  st.one_of(st.integers(max_value=0), st.integers(min_value=126), WORDS)),
        st.builds(lambda kind: ("POST", "/dapi/v1/marginType", {"symbol": SYMBOL,
                                                               "marginType": kind}),
                  st.one_of(WORDS, st.just("CROSSED"), st.just("ISOLATED"))),
        st.builds(lambda amount: ("POST", "/dapi/v1/positionMargin",
                                  {"symbol": SYMBOL, "amount": amount, "type": "1"}),
                  st.one_of(NOT_AN_AMOUNT, st.just("0.1"))),  # cross: no isolated margin
        st.builds(lambda amount: ("POST", "/sapi/v1/asset/transfer",
                                  {"type": "CMFUTURE_MAIN", "asset": "BTC", "amount": amount}),
                  st.one_of(NOT_AN_AMOUNT, st.just("100"))),
    )
    return st.one_of(orders, algos, others)


def _assert_refused_and_unchanged(response: Any, before: str, what: object) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
    assert state_digest(STATE) == before, (what, response.text)


@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=control_calls())
def test_invalid_control_calls_change_nothing(call: tuple[str, str, Any]) -> None:
    method, path, body = call
    before = state_digest(STATE)
    response = CLIENT.request(method, path, json=body)
    _assert_refused_and_unchanged(response, before, call)


@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=dialect_calls())
def test_invalid_dialect_calls_change_nothing(call: tuple[str, str, dict[str, Any]]) -> None:
    method, path, params = call
    before = state_digest(STATE)
    response = signed(CLIENT, STATE, CREDS, method, path, params)
    _assert_refused_and_unchanged(response, before, call)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.text(alphabet=string.ascii_letters + string.digits, min_size=64, max_size=64),
       secret=st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=64),
       params=st.dictionaries(st.sampled_from(["symbol", "side", "type", "quantity", "price"]),
                              st.text(max_size=20), max_size=5))
def test_signed_garbage_changes_nothing(key: str, secret: str, params: dict[str, str]) -> None:
    """Correctly signed requests with a wrong key or secret, or garbage parameters."""
    before = state_digest(STATE)
    creds = {"api_key": key, "api_secret": secret}
    response = signed(CLIENT, STATE, creds, "POST", "/dapi/v1/order", params)
    _assert_refused_and_unchanged(response, before, (key, params))
    own = signed(CLIENT, STATE, CREDS, "POST", "/dapi/v1/order",
                 {**params, "quantity": "0"})  # the account's own key, garbage parameters
    _assert_refused_and_unchanged(own, before, params)


SIGNED_PATHS = [("POST", "/dapi/v1/order"), ("POST", "/dapi/v1/algoOrder"),
                ("DELETE", "/dapi/v1/order"), ("POST", "/dapi/v1/leverage"),
                ("POST", "/dapi/v1/marginType"), ("POST", "/dapi/v1/positionMargin"),
                ("POST", "/sapi/v1/asset/transfer"), ("GET", "/dapi/v1/allOrders"),
                ("GET", "/dapi/v1/userTrades"), ("DELETE", "/dapi/v1/allOpenOrders")]
GARBAGE_VALUES = st.one_of(
    st.text(max_size=16), st.sampled_from(["BTCUSD_PERP", "BUY", "SELL", "LIMIT", "MARKET",
                                           "1", "60000", "0.1", "true", "ISOLATED", "1e9"]),
    st.integers(min_value=-10, max_value=10**7).map(str))
GARBAGE_NAMES = st.sampled_from(["symbol", "side", "type", "quantity", "price", "timeInForce",
                                 "reduceOnly", "orderId", "leverage", "marginType", "amount",
                                 "asset", "triggerPrice", "algoType", "limit", "startTime"])


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(SIGNED_PATHS),
       params=st.dictionaries(GARBAGE_NAMES, GARBAGE_VALUES, max_size=7))
def test_correctly_signed_garbage_never_breaks_the_market(call: tuple[str, str],
                                                          params: dict[str, str]) -> None:
    """Signed with the account's real key: some garbage may even be a valid order, but no
    answer is a server error, the market never breaks and the ledger stays conserved."""
    client, state, creds = GARBAGE_MARKET
    response = signed(client, state, creds, *call, params)
    assert response.status_code < 500, (call, params, response.text)
    ex = state.exchange
    assert ex.containment.broken is None
    for coin in ex.ledger.coins:
        assert ex.ledger.total(coin) == ex.ledger.deposits(coin)


GARBAGE_MARKET = _market()
