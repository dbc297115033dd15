"""Wire and rules are independent: each profile names its default dialect, ``--dialect`` (the
config's ``dialect``) overrides it, and every server speaks every registered dialect over its
one engine, the control plane staying dialect-neutral."""

from __future__ import annotations

import pytest

from perpsim.api.app import create_app
from perpsim.api.dialects import DIALECTS, check_dialect, describe
from perpsim.api.state import ServerConfig, ServerState
from perpsim.sim.errors import InvalidInput
from perpsim.sim.profile import load_profile

from api_helpers import AsgiClient


@pytest.mark.parametrize(("profile", "dialect"), [("bybit_inverse", "bybit_v5"),
                                                  ("binance_coinm", "binance_coinm"),
                                                  ("bitmex_xbtusd", "binance_coinm")])
def test_each_profile_names_its_default_dialect(profile: str, dialect: str) -> None:
    assert load_profile(profile).dialect == dialect
    assert ServerState(ServerConfig(profile=profile)).dialect == dialect


def test_the_dialect_option_overrides_the_profile() -> None:
    state = ServerState(ServerConfig(profile="bybit_inverse", dialect="binance_coinm"))
    assert state.dialect == "binance_coinm"
    state.reset(profile="binance_coinm")  # the explicit choice survives a reset
    assert state.dialect == "binance_coinm"
    state.reset(dialect="bybit_v5")
    assert state.dialect == "bybit_v5"


def test_an_unknown_dialect_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="binance_coinm, bybit_v5"):
        ServerState(ServerConfig(dialect="ftx"))
    state = ServerState(ServerConfig())
    with pytest.raises(InvalidInput, match="dialect"):
        state.reset(dialect="ftx")
    assert state.dialect == "binance_coinm"  # a bad reset changes nothing
    with pytest.raises(ValueError, match="dialect"):
        check_dialect(None)


def test_every_dialect_describes_its_entry_points() -> None:
    assert describe("bybit_v5") == ("Bybit v5 inverse", "/v5", "/v5/public/inverse")
    assert {describe(name)[1] for name in DIALECTS} == {"/v5", "/dapi/v1"}


def test_one_server_speaks_both_wires_over_one_engine() -> None:
    state = ServerState(ServerConfig(profile="bybit_inverse", start="2024-01-01T00:00:00Z"))
    client = AsgiClient(create_app(state=state))
    binance = client.get("/dapi/v1/premiumIndex", params={"symbol": "BTCUSD"}).json()
    bybit = client.get("/v5/market/tickers", params={"category": "inverse",
                                                     "symbol": "BTCUSD"}).json()
    assert binance[0]["markPrice"] == bybit["result"]["list"][0]["markPrice"]
    assert bybit["retCode"] == 0
    # Errors take each wire's own shape; the control plane keeps its own.
    assert client.get("/v5/market/tickers", params={"category": "inverse",
                                                    "symbol": "NOPE"}).json()["retCode"] == 10001
    assert client.get("/dapi/v1/premiumIndex", params={"symbol": "NOPE"}).json()["code"] == -1121
    shown = client.get("/control/state").json()
    assert (shown["profile"], shown["dialect"]) == ("bybit_inverse", "bybit_v5")
    refused = client.post("/control/reset", json={"dialect": "ftx"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_input"
