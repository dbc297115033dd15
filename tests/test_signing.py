"""api/binance_coinm/signing.py: Binance HMAC authentication, checked against Binance's own
example."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from perpsim.api.binance_coinm import signing
from perpsim.api.binance_coinm.signing import (
    BadSignature,
    DuplicateParameter,
    MalformedApiKey,
    MalformedParameter,
    MissingApiKey,
    MissingParameter,
    RecvWindowTooLarge,
    TimestampAhead,
    TimestampExpired,
    UnknownApiKey,
    api_key_only,
    parse_params,
    sign,
    signed_payload,
    verify_request,
)

# Binance API documentation, "SIGNED endpoint examples for POST /api/v3/order".
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
DOC_NOW = 1499827319559

KEY = "perpsimTestKey0001"
SECRET = "perpsimTestSecret0001"
NOW = 1_704_067_200_000


def secrets(key: str) -> str | None:
    return {DOC_KEY: DOC_SECRET, KEY: SECRET}.get(key)


def signed_query(params: dict[str, object], secret: str = SECRET) -> str:
    payload = urlencode(params)
    return f"{payload}&signature={sign(payload, secret)}"


def verify(query: str = "", body: str = "", *, key: str | None = KEY, now: int = NOW,
           **kwargs: int) -> signing.SignedRequest:
    headers = {} if key is None else {"X-MBX-APIKEY": key}
    return verify_request(query=query, body=body, headers=headers, secret_for=secrets,
                          now_ms=now, **kwargs)


def test_known_answer_vector_from_binance_docs() -> None:
    assert sign(DOC_QUERY, DOC_SECRET) == DOC_SIGNATURE
    assert sign(DOC_QUERY.encode(), DOC_SECRET) == DOC_SIGNATURE


@pytest.mark.parametrize(
    ("query", "body"),
    [
        (f"{DOC_QUERY}&signature={DOC_SIGNATURE}", ""),  # all in the query (GET, DELETE)
        ("", f"{DOC_QUERY}&signature={DOC_SIGNATURE}"),  # all in the body (ccxt's POST)
        (  # mixed: Binance concatenates query and body with no separator
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
            "&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
            f"&signature={DOC_SIGNATURE}",
        ),
    ],
)
def test_docs_example_verifies_wherever_the_parameters_travel(query: str, body: str) -> None:
    signed = verify(query, body, key=DOC_KEY, now=DOC_NOW + 10)
    assert signed.api_key == DOC_KEY
    assert signed.timestamp_ms == 1499827319559
    assert signed.recv_window_ms == 5000
    assert signed.params["symbol"] == "LTCBTC"
    assert "signature" not in signed.params


def test_uppercase_hex_signature_is_accepted() -> None:
    query = f"{DOC_QUERY}&signature={DOC_SIGNATURE.upper()}"
    assert verify(query, key=DOC_KEY, now=DOC_NOW).api_key == DOC_KEY


def test_signed_payload_strips_only_the_signature() -> None:
    assert signed_payload("a=1&signature=ab&b=2", "") == ("a=1&b=2", "ab")
    assert signed_payload("a=1", "b=2&signature=cd") == ("a=1b=2", "cd")


def test_ccxt_style_request_verifies_with_default_recv_window() -> None:
    query = signed_query({"timestamp": NOW - 9_000, "symbol": "BTCUSD_PERP", "recvWindow": 10000})
    signed = verify(query)
    assert signed.recv_window_ms == 10000
    assert signed.params == {"timestamp": str(NOW - 9_000), "symbol": "BTCUSD_PERP",
                             "recvWindow": "10000"}


def test_recv_window_defaults_to_binance_5000() -> None:
    assert verify(signed_query({"timestamp": NOW - 5_000})).recv_window_ms == 5000
    with pytest.raises(TimestampExpired):
        verify(signed_query({"timestamp": NOW - 5_001}))


def test_wrong_secret_is_a_bad_signature() -> None:
    with pytest.raises(BadSignature):
        verify(signed_query({"timestamp": NOW}, secret="not-the-secret"))


def test_tampered_parameter_is_a_bad_signature() -> None:
    query = signed_query({"timestamp": NOW, "quantity": 1})
    with pytest.raises(BadSignature):
        verify(query.replace("quantity=1", "quantity=9"))


def test_signature_that_is_not_hex_is_bad() -> None:
    with pytest.raises(BadSignature):
        verify(f"timestamp={NOW}&signature=zz")


def test_missing_or_empty_signature() -> None:
    with pytest.raises(MissingParameter) as caught:
        verify(f"timestamp={NOW}")
    assert caught.value.name == "signature"
    with pytest.raises(MissingParameter):
        verify(f"timestamp={NOW}&signature=")


def test_missing_or_malformed_timestamp() -> None:
    for params in ({"symbol": "X"}, {"timestamp": ""}, {"timestamp": "12.5"}, {"timestamp": "-1"}):
        with pytest.raises(MissingParameter) as caught:
            verify(signed_query(params))
        assert caught.value.name == "timestamp"


def test_stale_timestamp() -> None:
    with pytest.raises(TimestampExpired):
        verify(signed_query({"timestamp": NOW - 10_001, "recvWindow": 10000}))


def test_future_timestamp_limit_is_one_second() -> None:
    assert verify(signed_query({"timestamp": NOW + 999})).timestamp_ms == NOW + 999
    with pytest.raises(TimestampAhead):
        verify(signed_query({"timestamp": NOW + 1000}))


def test_recv_window_bounds() -> None:
    assert verify(signed_query({"timestamp": NOW - 59_000, "recvWindow": 60000}))
    with pytest.raises(RecvWindowTooLarge):
        verify(signed_query({"timestamp": NOW, "recvWindow": 60001}))
    for bad in ("0", "abc", "5.5"):
        with pytest.raises(MalformedParameter):
            verify(signed_query({"timestamp": NOW, "recvWindow": bad}))


def test_caller_may_tighten_the_recv_window_limits() -> None:
    with pytest.raises(RecvWindowTooLarge):
        verify(signed_query({"timestamp": NOW, "recvWindow": 10000}), max_recv_window_ms=5000)


def test_api_key_missing_malformed_unknown() -> None:
    query = signed_query({"timestamp": NOW})
    with pytest.raises(MissingApiKey):
        verify(query, key=None)
    with pytest.raises(MissingApiKey):
        verify(query, key="")
    for bad in ("has space", "x" * 129, "ключ"):
        with pytest.raises(MalformedApiKey):
            verify(query, key=bad)
    with pytest.raises(UnknownApiKey):
        verify(query, key="nobodysKey")


def test_api_key_header_is_case_insensitive() -> None:
    query = signed_query({"timestamp": NOW})
    signed = verify_request(query=query, body=b"", headers={"x-mbx-apikey": KEY},
                            secret_for=secrets, now_ms=NOW)
    assert signed.api_key == KEY


def test_duplicate_parameters_are_refused() -> None:
    with pytest.raises(DuplicateParameter):
        parse_params("a=1", "a=2")
    with pytest.raises(DuplicateParameter):
        verify(signed_query({"timestamp": NOW}) + "&signature=" + "0" * 64)


def test_api_key_only_endpoint() -> None:
    assert api_key_only({"X-MBX-APIKEY": KEY}, secrets) == KEY
    with pytest.raises(UnknownApiKey):
        api_key_only({"X-MBX-APIKEY": "stranger"}, secrets)
    with pytest.raises(MissingApiKey):
        api_key_only({}, secrets)


def test_what_real_ccxt_signs_verifies() -> None:
    """ccxt.binancecoinm.sign() output, fed back through verify_request, passes."""
    from perpsim.strategy.connect import connect

    ex = connect("http://127.0.0.1:9", KEY, SECRET)
    ex.options["timeDifference"] = ex.milliseconds() - NOW  # makes ccxt's nonce() == NOW
    try:
        get = ex.sign("positionRisk", ["dapiPrivate"], "GET", {"pair": "BTCUSD"})
        query = get["url"].split("?", 1)[1]
        assert get["headers"]["X-MBX-APIKEY"] == KEY
        assert verify(query).params["pair"] == "BTCUSD"
        post = ex.sign("order", ["dapiPrivate"], "POST",
                       {"symbol": "BTCUSD_PERP", "side": "BUY", "type": "MARKET", "quantity": "1",
                        "reduceOnly": True})
        assert "?" not in post["url"]
        signed = verify("", post["body"])
        assert signed.params["reduceOnly"] == "true"
        assert signed.params["newClientOrderId"].startswith("x-xcKtGhcu")
        assert signed.recv_window_ms == 10000
    finally:
        ex.session.close()
