"""api/binance_coinm/errors.py: each error becomes Binance JSON that real ccxt maps to the right
class."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from fastapi import FastAPI

from perpsim.api.binance_coinm import signing
from perpsim.api.binance_coinm.errors import ERROR_TABLE, is_binance_path, to_binance_error
from perpsim.api.errors import install_error_handlers, to_control_error
from perpsim.sim import errors as domain
from perpsim.sim.money import check_tick, positive_price, whole_contracts
from perpsim.strategy.connect import connect

from api_helpers import AsgiClient

URL = "http://127.0.0.1:9/dapi/v1/order"
# Domain classes that are the server's fault, not the request's: they answer 500 / −1000.
INTERNAL = {domain.PerpsimError, domain.ProfileError, domain.ScenarioError, domain.LedgerError}


def domain_classes() -> list[type[domain.PerpsimError]]:
    return [
        cls for _, cls in inspect.getmembers(domain, inspect.isclass)
        if issubclass(cls, domain.PerpsimError) and cls.__module__ == domain.__name__
    ]


def signing_classes() -> list[type[signing.SigningError]]:
    return [
        cls for _, cls in inspect.getmembers(signing, inspect.isclass)
        if issubclass(cls, signing.SigningError) and cls is not signing.SigningError
    ]


def make(cls: type[BaseException], message: str = "something was wrong") -> BaseException:
    if cls in (signing.MissingParameter, signing.MalformedParameter, signing.DuplicateParameter):
        return cls("timestamp")
    return cls(message)


@pytest.fixture(scope="module")
def coinm() -> Iterator[Any]:
    ex = connect("http://127.0.0.1:9", "key", "secret")
    yield ex
    ex.session.close()


def ccxt_class(exchange: Any, status: int, body: dict[str, Any], url: str = URL) -> str:
    """The ccxt error class binance.handle_errors raises for this response (or 'none')."""
    try:
        exchange.handle_errors(status, "reason", url, "POST", {}, json.dumps(body), body, None,
                               None)
    except ccxt.BaseError as exc:
        return type(exc).__name__
    return "none"


@pytest.mark.parametrize("cls", domain_classes(), ids=lambda c: c.__name__)
def test_every_domain_error_is_in_the_table(cls: type[domain.PerpsimError]) -> None:
    assert cls in ERROR_TABLE, f"add {cls.__name__} to api/binance_coinm/errors.ERROR_TABLE"
    status, body = to_binance_error(make(cls))
    assert set(body) == {"code", "msg"}
    assert isinstance(body["code"], int)
    assert body["code"] < 0
    assert isinstance(body["msg"], str)
    assert body["msg"]
    if cls in INTERNAL:
        assert (status, body["code"]) == (500, -1000)
    else:
        assert 400 <= status < 500


@pytest.mark.parametrize("cls", signing_classes(), ids=lambda c: c.__name__)
def test_every_signing_error_is_in_the_table(cls: type[signing.SigningError]) -> None:
    assert cls in ERROR_TABLE
    status, body = to_binance_error(make(cls))
    assert status in (400, 401)
    assert body["code"] < 0


@pytest.mark.parametrize(
    ("exc", "status", "code", "ccxt_error"),
    [
        # the four a strategy must be able to tell apart
        (signing.BadSignature("wrong secret"), 400, -1022, "AuthenticationError"),
        (signing.TimestampExpired("stale"), 400, -1021, "InvalidNonce"),
        (domain.InsufficientFunds("need 0.1 BTC"), 400, -2019, "InsufficientFunds"),
        (domain.OrderNotFound("no order 7"), 400, -2013, "OrderNotFound"),
        # the rest of the table
        (signing.TimestampAhead("ahead"), 400, -1021, "InvalidNonce"),
        (signing.MissingApiKey("none"), 401, -2014, "AuthenticationError"),
        (signing.MalformedApiKey("bad"), 401, -2014, "AuthenticationError"),
        (signing.UnknownApiKey("who"), 401, -2015, "AuthenticationError"),
        (domain.UnknownAccount("who"), 401, -2015, "AuthenticationError"),
        (signing.MissingParameter("signature"), 400, -1102, "BadRequest"),
        (signing.MalformedParameter("recvWindow"), 400, -1100, "BadRequest"),
        (signing.DuplicateParameter("symbol"), 400, -1101, "BadRequest"),
        (domain.UnknownSymbol("BTCUSD_XYZ"), 400, -1121, "BadSymbol"),
        (domain.ReduceOnlyRejected("would open"), 400, -2022, "InvalidOrder"),
        (domain.OrderRejected("no"), 400, -2010, "InvalidOrder"),
        (domain.MarginModeAlreadySet("already"), 400, -4046, "MarginModeAlreadySet"),
        (domain.MarginModeChangeRejected("a position is open"), 400, -4048,
         "OperationRejected"),
        (domain.MarginModeChangeRejected("open orders exist"), 400, -4047, "OperationRejected"),
        (domain.LeverageTooHigh("200 > 125"), 400, -4028, "BadRequest"),
        (domain.InvalidInput("side must be BUY or SELL"), 400, -1130, "BadRequest"),
        (domain.InvalidState("not now"), 400, -1020, "BadRequest"),
        # no COIN-M mapping in ccxt 4.5.90: real Binance gives the same ExchangeError
        (domain.PostOnlyWouldTake("would take"), 400, -5022, "ExchangeError"),
        (domain.FillOrKillUnfilled("cannot fill"), 400, -5021, "ExchangeError"),
        (domain.DuplicateClientOrderId("used"), 400, -4116, "ExchangeError"),
        (signing.RecvWindowTooLarge("big"), 400, -1131, "ExchangeError"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_ccxt_raises_the_expected_class(coinm: Any, exc: BaseException, status: int, code: int,
                                        ccxt_error: str) -> None:
    got_status, body = to_binance_error(exc)
    assert (got_status, body["code"]) == (status, code)
    assert ccxt_class(coinm, got_status, body) == ccxt_error


def test_cancel_of_unknown_order_uses_2011(coinm: Any) -> None:
    status, body = to_binance_error(domain.OrderNotFound("no order 7"), operation="cancel")
    assert body == {"code": -2011, "msg": "Unknown order sent."}
    assert ccxt_class(coinm, status, body) == "OrderNotFound"


def test_margin_mode_message_is_the_one_ccxt_special_cases() -> None:
    _, body = to_binance_error(domain.MarginModeAlreadySet("isolated already"))
    assert body["msg"] == "No need to change margin type."  # binance.handle_errors compares it


def test_without_the_restored_table_margin_errors_degrade() -> None:
    """Why connect() restores exceptions['inverse']: ccxt keys it on dapi.binance.com."""
    plain = ccxt.binancecoinm()
    try:
        status, body = to_binance_error(domain.InsufficientFunds("short"))
        assert ccxt_class(plain, status, body) == "ExchangeError"
        real_url = "https://dapi.binance.com/dapi/v1/order"
        assert ccxt_class(plain, status, body, url=real_url) == "InsufficientFunds"
    finally:
        plain.session.close()


def test_quantity_refinements_follow_the_engine_messages(coinm: Any) -> None:
    cases = {"0": -4003, "-3": -4003, "1.5": -1111}
    for raw, code in cases.items():
        with pytest.raises(domain.InvalidQuantity) as caught:
            whole_contracts(raw)
        status, body = to_binance_error(caught.value)
        assert body["code"] == code, (raw, body)
        assert ccxt_class(coinm, status, body) == "BadRequest"
    assert to_binance_error(domain.InvalidQuantity("quantity 1 is below the minimum 5"))[1][
        "code"] == -4004
    assert to_binance_error(
        domain.InvalidQuantity("quantity 70000 is above the market order maximum 60000"))[1][
        "code"] == -4005
    assert to_binance_error(
        domain.InvalidQuantity("quantity 3 is not a multiple of the lot size 2"))[1][
        "code"] == -4023
    assert to_binance_error(domain.InvalidQuantity("odd"))[1]["code"] == -1013


def test_price_refinements(coinm: Any) -> None:
    with pytest.raises(domain.OffTick) as off_tick:
        check_tick(Decimal("100.05"), Decimal("0.1"))
    assert to_binance_error(off_tick.value)[1]["code"] == -4014
    with pytest.raises(domain.InvalidPrice) as negative:
        positive_price("-1")
    assert to_binance_error(negative.value)[1]["code"] == -4001
    assert to_binance_error(domain.InvalidPrice("a LIMIT order needs a price"))[1]["code"] == -1102
    assert to_binance_error(domain.InvalidPrice("a MARKET order takes no price"))[1][
        "code"] == -1106
    for exc in (off_tick.value, negative.value):
        status, body = to_binance_error(exc)
        assert ccxt_class(coinm, status, body) == "BadRequest"


def test_messages_never_trip_ccxts_body_substring_checks() -> None:
    """binance.handle_errors makes any 4xx body holding LOT_SIZE / PRICE_FILTER an InvalidOrder."""
    for cls in [*domain_classes(), *signing_classes()]:
        _, body = to_binance_error(make(cls))
        assert "LOT_SIZE" not in body["msg"]
        assert "PRICE_FILTER" not in body["msg"]


def test_unexpected_exception_is_an_internal_error() -> None:
    assert to_binance_error(RuntimeError("boom")) == (
        500, {"code": -1000, "msg": "An unknown error occured while processing the request."})


def test_control_plane_shape() -> None:
    assert to_control_error(domain.UnknownAccount("no account 9")) == (
        404, {"error": "unknown_account", "message": "no account 9"})
    assert to_control_error(domain.InvalidState("data scenario"))[0] == 409
    assert to_control_error(domain.InvalidInput("bad"))[0] == 400
    assert to_control_error(domain.LedgerError("bug"))[0] == 500


def test_binance_paths() -> None:
    assert is_binance_path("/dapi/v1/order")
    assert is_binance_path("/futures/data/basis")
    assert not is_binance_path("/control/reset")
    assert not is_binance_path("/dapix")


class Client(AsgiClient):
    """The in-process client these tests use."""


@pytest.fixture
def client() -> Client:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/dapi/v1/order")
    def fetch_order(orderId: int) -> dict[str, int]:
        raise domain.OrderNotFound(f"no order {orderId}")

    @app.post("/dapi/v1/order")
    def create_order() -> None:
        raise domain.InsufficientFunds("needs 0.1 BTC, has 0.05")

    @app.get("/dapi/v1/account")
    def account() -> None:
        raise signing.TimestampExpired("stale")

    @app.get("/dapi/v1/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    @app.post("/control/accounts")
    def control_account() -> None:
        raise domain.UnknownAccount("no account 'x'")

    @app.get("/control/state")
    def control_state(seq: int) -> dict[str, int]:
        return {"seq": seq}

    return Client(app)


def test_handlers_answer_binance_json(client: Client) -> None:
    response = client.get("/dapi/v1/order", params={"orderId": 7})
    assert (response.status_code, response.json()) == (
        400, {"code": -2013, "msg": "Order does not exist."})
    response = client.post("/dapi/v1/order")
    assert response.json()["code"] == -2019
    assert client.get("/dapi/v1/account").json()["code"] == -1021


def test_malformed_requests_never_answer_422_or_500(client: Client) -> None:
    missing = client.get("/dapi/v1/order")
    assert missing.status_code == 400
    assert missing.json() == {
        "code": -1102,
        "msg": "Mandatory parameter 'orderId' was not sent, was empty/null, or malformed.",
    }
    illegal = client.get("/dapi/v1/order", params={"orderId": "abc"})
    assert illegal.status_code == 400
    assert illegal.json()["code"] == -1100
    assert "orderId" in illegal.json()["msg"]


def test_unknown_path_and_method_answer_like_binance(client: Client) -> None:
    response = client.get("/dapi/v1/nothingHere")
    assert (response.status_code, response.json()) == (
        404, {"code": -5000, "msg": "Path /dapi/v1/nothingHere, Method GET is invalid"})
    response = client.put("/dapi/v1/order")
    assert (response.status_code, response.json()["code"]) == (404, -5000)


def test_unknown_path_maps_to_exchange_error_in_ccxt(coinm: Any, client: Client) -> None:
    response = client.get("/dapi/v1/nothingHere")
    assert ccxt_class(coinm, response.status_code, response.json()) == "ExchangeError"


def test_unexpected_exception_answers_500_json(client: Client) -> None:
    response = client.get("/dapi/v1/boom")
    assert (response.status_code, response.json()["code"]) == (500, -1000)


def test_control_plane_keeps_its_own_shapes(client: Client) -> None:
    response = client.post("/control/accounts")
    assert (response.status_code, response.json()) == (
        404, {"error": "unknown_account", "message": "no account 'x'"})
    invalid = client.get("/control/state")
    assert invalid.status_code == 400
    assert invalid.json()["error"] == "invalid_request"
    missing = client.get("/control/nothing")
    assert (missing.status_code, missing.json()) == (
        404, {"error": "not_found", "message": "GET /control/nothing: Not Found"})
