"""api/binance_coinm/market_info.py: exchangeInfo and leverage brackets, parsed by real ccxt.

ccxt's own parsers (``parse_market``, the one ``load_markets`` uses, and
``parse_leverage_tiers`` / ``load_leverage_brackets``) read the serialised JSON offline, and
ccxt's shipped structure validators (ccxt/test/exchange/base) check what they produce.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from ccxt.test.exchange.base.test_leverage_tier import test_leverage_tier as check_tier
from ccxt.test.exchange.base.test_market import test_market as check_market

from perpsim.api.binance_coinm.market_info import (
    ORDER_TYPES,
    PERPETUAL_DELIVERY_DATE_MS,
    UNBOUNDED_QTY_CAP_COIN,
    exchange_info,
    leverage_brackets,
    plain,
)
from perpsim.sim.errors import UnknownSymbol
from perpsim.sim.profile import Profile, bundled_profiles, load_profile

NOW = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SYMBOL_FIELDS = {
    "symbol", "pair", "contractType", "deliveryDate", "onboardDate", "contractStatus",
    "contractSize", "marginAsset", "baseAsset", "quoteAsset", "pricePrecision",
    "quantityPrecision", "baseAssetPrecision", "quotePrecision", "equalQtyPrecision", "filters",
    "orderTypes", "timeInForce", "triggerProtect", "maintMarginPercent", "requiredMarginPercent",
    "liquidationFee", "marketTakeBound",
}
FILTERS = {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "MAX_NUM_ORDERS", "PERCENT_PRICE"}


def wire(value: Any) -> Any:
    """What a client receives: the value through JSON and back."""
    return json.loads(json.dumps(value))


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile("binance_coinm")


@pytest.fixture
def ccxt_client() -> Iterator[Any]:
    ex = ccxt.binancecoinm({"options": {"fetchCurrencies": False}})
    yield ex
    ex.session.close()


def parsed_markets(ex: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Run exactly what load_markets does with an exchangeInfo body, without the network."""
    ex.dapiPublicGetExchangeInfo = lambda params=None: info
    return dict(ex.load_markets(reload=True))


def test_top_level_fields(profile: Profile) -> None:
    info = wire(exchange_info(profile, NOW))
    assert set(info) == {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"}
    assert info["timezone"] == "UTC"
    assert info["serverTime"] == NOW
    assert info["exchangeFilters"] == []
    assert {limit["rateLimitType"] for limit in info["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS"}
    assert [s["symbol"] for s in info["symbols"]] == list(profile.symbols)


def test_symbol_fields_mirror_the_profile(profile: Profile) -> None:
    info = wire(exchange_info(profile, NOW))
    for raw, inst in zip(info["symbols"], profile.instruments, strict=True):
        assert set(raw) >= SYMBOL_FIELDS
        filters = {f["filterType"]: f for f in raw["filters"]}
        assert set(filters) == FILTERS
        assert Decimal(filters["PRICE_FILTER"]["tickSize"]) == inst.tick_size
        assert Decimal(filters["LOT_SIZE"]["stepSize"]) == inst.lot_size
        assert Decimal(filters["LOT_SIZE"]["minQty"]) == inst.min_qty
        assert Decimal(filters["LOT_SIZE"]["maxQty"]) == inst.max_qty
        assert Decimal(filters["MARKET_LOT_SIZE"]["maxQty"]) == inst.market_max_qty
        assert Decimal(str(raw["contractSize"])) == inst.contract_size_usd
        assert raw["marginAsset"] == inst.margin_asset
        assert raw["pricePrecision"] == inst.price_precision
        assert raw["contractStatus"] == "TRADING"
        assert Decimal(raw["liquidationFee"]) == profile.fees.liquidation_clearance_rate
        assert raw["orderTypes"] == list(ORDER_TYPES)
        assert raw["timeInForce"] == ["GTC", "IOC", "FOK", "GTX"]
        if inst.is_perpetual:
            assert raw["deliveryDate"] == PERPETUAL_DELIVERY_DATE_MS
        else:
            assert raw["deliveryDate"] == inst.delivery_date_ms
        assert raw["onboardDate"] < raw["deliveryDate"]


@pytest.mark.parametrize("name", bundled_profiles())
def test_ccxt_parses_every_market_and_its_validator_passes(name: str, ccxt_client: Any) -> None:
    prof = load_profile(name)
    markets = parsed_markets(ccxt_client, wire(exchange_info(prof, NOW)))
    assert len(markets) == len(prof.instruments)
    for market in markets.values():
        check_market(ccxt_client, {}, "fetchMarkets", market)
        assert market["inverse"] is True
        assert market["linear"] is False
        assert market["active"] is True
        assert market["margin"] is False


def test_ccxt_reads_precision_limits_and_expiry(profile: Profile, ccxt_client: Any) -> None:
    markets = parsed_markets(ccxt_client, wire(exchange_info(profile, NOW)))
    perp = markets["BTC/USD:BTC"]
    inst = profile.instrument("BTCUSD_PERP")
    assert perp["id"] == "BTCUSD_PERP"
    assert perp["type"] == "swap"
    assert perp["settle"] == "BTC"
    assert perp["expiry"] is None
    assert perp["contractSize"] == float(inst.contract_size_usd)
    assert perp["precision"]["price"] == float(inst.tick_size)
    assert perp["precision"]["amount"] == float(inst.lot_size)
    assert perp["limits"]["amount"] == {"min": inst.min_qty, "max": inst.max_qty}
    assert perp["limits"]["market"] == {"min": inst.min_qty, "max": inst.market_max_qty}
    quarterly = next(i for i in profile.instruments if not i.is_perpetual)
    dated = ccxt_client.market(quarterly.symbol)
    assert dated["type"] == "future"
    assert dated["expiry"] == quarterly.delivery_date_ms
    assert dated["symbol"].startswith(f"{quarterly.base_asset}/{quarterly.quote_asset}:")


def test_delivered_quarterly_is_inactive(profile: Profile, ccxt_client: Any) -> None:
    quarterly = next(i for i in profile.instruments if not i.is_perpetual)
    assert quarterly.delivery_date_ms is not None
    info = wire(exchange_info(profile, quarterly.delivery_date_ms))
    statuses = {s["symbol"]: s["contractStatus"] for s in info["symbols"]}
    assert statuses[quarterly.symbol] == "DELIVERED"
    parsed_markets(ccxt_client, info)
    assert ccxt_client.market(quarterly.symbol)["active"] is False
    assert ccxt_client.market("BTC/USD:BTC")["active"] is True


def test_order_types_gate_ccxt_create_order(profile: Profile, ccxt_client: Any) -> None:
    """ccxt refuses, before any request, an order type not in ``orderTypes``."""
    parsed_markets(ccxt_client, wire(exchange_info(profile, NOW)))
    stop = ccxt_client.create_order_request(
        "BTC/USD:BTC", "market", "sell", 1, None, {"triggerPrice": 39000, "isAlgoOrder": True}
    )
    assert stop["type"] == "STOP_MARKET"
    assert stop["triggerPrice"] == "39000"
    with pytest.raises(ccxt.InvalidOrder):
        ccxt_client.create_order_request(
            "BTC/USD:BTC", "market", "sell", 1, None, {"trailingPercent": 1}
        )


def test_leverage_brackets_in_coin(profile: Profile) -> None:
    body = wire(leverage_brackets(profile))
    assert [entry["symbol"] for entry in body] == list(profile.symbols)
    for entry, inst in zip(body, profile.instruments, strict=True):
        assert len(entry["brackets"]) == len(inst.brackets)
        for raw, bracket in zip(entry["brackets"], inst.brackets, strict=True):
            assert set(raw) == {"bracket", "initialLeverage", "qtyCap", "qtyFloor",
                                "maintMarginRatio", "cum"}
            assert raw["bracket"] == bracket.bracket
            assert Decimal(str(raw["initialLeverage"])) == bracket.max_leverage
            assert Decimal(str(raw["qtyFloor"])) == bracket.floor_coin
            assert Decimal(str(raw["maintMarginRatio"])) == bracket.mmr
            assert Decimal(str(raw["cum"])) == bracket.cum_coin
            cap = bracket.cap_coin if bracket.cap_coin is not None else UNBOUNDED_QTY_CAP_COIN
            assert Decimal(str(raw["qtyCap"])) == cap


def test_leverage_brackets_for_one_symbol(profile: Profile) -> None:
    assert [e["symbol"] for e in leverage_brackets(profile, "ETHUSD_PERP")] == ["ETHUSD_PERP"]
    with pytest.raises(UnknownSymbol):
        leverage_brackets(profile, "DOGEUSD_PERP")


def test_ccxt_leverage_tiers_pass_its_validator(profile: Profile, ccxt_client: Any) -> None:
    parsed_markets(ccxt_client, wire(exchange_info(profile, NOW)))
    tiers = ccxt_client.parse_leverage_tiers(wire(leverage_brackets(profile)), None, "symbol")
    assert set(tiers) == {ccxt_client.safe_symbol(s) for s in profile.symbols}
    for symbol_tiers in tiers.values():
        for tier in symbol_tiers:
            check_tier(ccxt_client, {}, "fetchLeverageTiers", tier)
    first = tiers["BTC/USD:BTC"][0]
    bracket = profile.instrument("BTCUSD_PERP").brackets[0]
    assert first["maxLeverage"] == float(bracket.max_leverage)
    assert first["maintenanceMarginRate"] == float(bracket.mmr)


def test_ccxt_position_bracket_cache(profile: Profile, ccxt_client: Any) -> None:
    """fetch_positions first calls load_leverage_brackets, which keeps [floor, mmr] pairs."""
    parsed_markets(ccxt_client, wire(exchange_info(profile, NOW)))
    body = wire(leverage_brackets(profile))
    ccxt_client.dapiPrivateV2GetLeverageBracket = lambda params=None: body
    cache = ccxt_client.load_leverage_brackets(True)
    inst = profile.instrument("BTCUSD_PERP")
    assert [Decimal(floor) for floor, _ in cache["BTC/USD:BTC"]] == [
        b.floor_coin for b in inst.brackets
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("0.10"), "0.1"), (Decimal("100"), "100"), (Decimal("1E+3"), "1000"),
     (Decimal("0.00000001"), "0.00000001"), (7, "7"), (Decimal("-0"), "0")],
)
def test_plain_number_format(value: Decimal | int, text: str) -> None:
    assert plain(value) == text
