"""The Binance dialect's parameters and security in ``/openapi.json``.

The routes read Binance's parameters from the raw (signed) query or form body themselves, so
FastAPI cannot see them; this table declares them, so the schema documents the dialect and a
schema-driven fuzzer (schemathesis, tests/test_fuzz_openapi.py) sends realistic requests.
Notation: ``name`` optional, ``name!`` required; ``:int`` an integer, ``:dec`` a decimal
string, ``:a|b`` one of the listed values, else a string. Signed endpoints also take
``timestamp!:int``, ``recvWindow:int`` and ``signature!`` and need the API key header.
"""

from __future__ import annotations

from typing import Any

SIDE = "side!:BUY|SELL"
TIME = ("startTime:int", "endTime:int", "limit:int")
INTERVAL = ("interval!:1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M",)
ORDER_REF = ("symbol!", "orderId:int", "origClientOrderId")
ALGO_REF = ("symbol", "algoId:int", "clientAlgoId")
PERIOD = "period!:5m|15m|30m|1h|2h|4h|6h|12h|1d"  # /futures/data statistics
CONTRACT = "contractType!:PERPETUAL|CURRENT_QUARTER|NEXT_QUARTER"
CONTRACT_OR_ALL = "contractType!:ALL|PERPETUAL|CURRENT_QUARTER|NEXT_QUARTER"

PUBLIC: dict[tuple[str, str], tuple[str, ...]] = {
    ("get", "/dapi/v1/depth"): ("symbol!", "limit:int"),
    ("get", "/dapi/v1/trades"): ("symbol!", "limit:int"),
    ("get", "/dapi/v1/historicalTrades"): ("symbol!", "limit:int", "fromId:int"),
    ("get", "/dapi/v1/aggTrades"): ("symbol!", "fromId:int", *TIME),
    ("get", "/dapi/v1/premiumIndex"): ("symbol", "pair"),
    ("get", "/dapi/v1/fundingRate"): ("symbol!", *TIME),
    ("get", "/dapi/v1/klines"): ("symbol!", *INTERVAL, *TIME),
    ("get", "/dapi/v1/continuousKlines"): (
        "pair!", "contractType!:PERPETUAL|CURRENT_QUARTER|NEXT_QUARTER", *INTERVAL, *TIME),
    ("get", "/dapi/v1/markPriceKlines"): ("symbol!", *INTERVAL, *TIME),
    ("get", "/dapi/v1/indexPriceKlines"): ("pair!", *INTERVAL, *TIME),
    ("get", "/dapi/v1/ticker/24hr"): ("symbol", "pair"),
    ("get", "/dapi/v1/ticker/price"): ("symbol", "pair"),
    ("get", "/dapi/v1/ticker/bookTicker"): ("symbol", "pair"),
    ("get", "/dapi/v1/openInterest"): ("symbol!",),
    ("get", "/dapi/v1/premiumIndexKlines"): ("symbol!", *INTERVAL, *TIME),
    ("get", "/api/v3/ping"): (),
    ("get", "/api/v3/time"): (),
    ("get", "/sapi/v1/system/status"): (),
    ("get", "/futures/data/openInterestHist"): ("pair!", CONTRACT_OR_ALL, PERIOD, *TIME),
    ("get", "/futures/data/takerBuySellVol"): ("pair!", CONTRACT_OR_ALL, PERIOD, *TIME),
    ("get", "/futures/data/basis"): ("pair!", CONTRACT, PERIOD, *TIME),
    ("get", "/futures/data/topLongShortAccountRatio"): ("pair!", PERIOD, *TIME),
    ("get", "/futures/data/topLongShortPositionRatio"): ("pair!", PERIOD, *TIME),
    ("get", "/futures/data/globalLongShortAccountRatio"): ("pair!", PERIOD, *TIME),
}

SIGNED: dict[tuple[str, str], tuple[str, ...]] = {
    ("post", "/dapi/v1/order"): (
        "symbol!", SIDE, "type!:LIMIT|MARKET", "quantity!:dec", "price:dec",
        "timeInForce:GTC|IOC|FOK|GTX", "reduceOnly:true|false", "newClientOrderId",
        "newOrderRespType:ACK|RESULT", "positionSide:BOTH|LONG|SHORT"),
    ("get", "/dapi/v1/order"): ORDER_REF,
    ("delete", "/dapi/v1/order"): ORDER_REF,
    ("get", "/dapi/v1/openOrder"): ORDER_REF,
    ("get", "/dapi/v1/openOrders"): ("symbol", "pair"),
    ("get", "/dapi/v1/allOrders"): ("symbol", "pair", "orderId:int", *TIME),
    ("delete", "/dapi/v1/allOpenOrders"): ("symbol!",),
    ("post", "/dapi/v1/algoOrder"): (
        "symbol!", "algoType!:CONDITIONAL", SIDE,
        "type!:STOP|STOP_MARKET|TAKE_PROFIT|TAKE_PROFIT_MARKET", "quantity:dec", "price:dec",
        "triggerPrice!:dec", "workingType:CONTRACT_PRICE|MARK_PRICE",
        "timeInForce:GTC|IOC|FOK|GTX", "reduceOnly:true|false", "closePosition:true|false",
        "priceProtect:true|false", "clientAlgoId", "newOrderRespType:ACK|RESULT",
        "positionSide:BOTH|LONG|SHORT"),
    ("get", "/dapi/v1/algoOrder"): ALGO_REF,
    ("delete", "/dapi/v1/algoOrder"): ALGO_REF,
    ("get", "/dapi/v1/openAlgoOrders"): ("symbol", "pair"),
    ("get", "/dapi/v1/allAlgoOrders"): ("symbol", "pair", "algoId:int", *TIME),
    ("delete", "/dapi/v1/algoOpenOrders"): ("symbol!",),
    ("get", "/dapi/v1/userTrades"): ("symbol", "pair", "orderId:int", "fromId:int", *TIME),
    ("get", "/dapi/v1/account"): (),
    ("get", "/dapi/v1/balance"): (),
    ("get", "/dapi/v1/positionRisk"): ("symbol", "pair", "marginAsset"),
    ("get", "/dapi/v2/leverageBracket"): ("symbol",),
    ("get", "/dapi/v1/leverageBracket"): ("pair",),
    ("post", "/dapi/v1/leverage"): ("symbol!", "leverage!:int"),
    ("post", "/dapi/v1/marginType"): ("symbol!", "marginType!:ISOLATED|CROSSED"),
    ("post", "/dapi/v1/positionMargin"): ("symbol!", "amount!:dec", "type!:1|2",
                                          "positionSide:BOTH|LONG|SHORT"),
    ("get", "/dapi/v1/positionMargin/history"): ("symbol!", "type:1|2", *TIME),
    ("get", "/dapi/v1/income"): ("symbol", "incomeType", *TIME),
    ("get", "/dapi/v1/commissionRate"): ("symbol!",),
    ("get", "/dapi/v1/positionSide/dual"): (),
    ("post", "/dapi/v1/positionSide/dual"): ("dualSidePosition!:true|false",),
    ("post", "/sapi/v1/asset/transfer"): ("type!:MAIN_CMFUTURE|CMFUTURE_MAIN", "asset!",
                                          "amount!:dec"),
    ("get", "/api/v3/account"): (),
}
SIGNATURE = ("timestamp!:int", "recvWindow:int", "signature!")
KEY_ONLY = {("post", "/dapi/v1/listenKey"), ("put", "/dapi/v1/listenKey"),
            ("delete", "/dapi/v1/listenKey")}

SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-MBX-APIKEY",
               "description": "the account's API key (POST /control/accounts)"},
    "Signature": {"type": "apiKey", "in": "query", "name": "signature",
                  "description": "HMAC-SHA256 of the query string (or form body) with the "
                                 "account's API secret, hex"},
}


def parameter(spec: str) -> dict[str, Any]:
    """One OpenAPI query parameter from the table's notation."""
    name, _, kind = spec.partition(":")
    required = name.endswith("!")
    name = name.rstrip("!")
    schema: dict[str, Any]
    if kind == "int":
        schema = {"type": "integer", "minimum": 0}
    elif kind == "dec":
        schema = {"type": "string", "pattern": r"^[0-9]{1,20}(\.[0-9]{1,20})?$"}
    elif kind:
        schema = {"type": "string", "enum": kind.split("|")}
    else:
        schema = {"type": "string"}
    return {"name": name, "in": "query", "required": required, "schema": schema}


def declare_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the dialect's parameters and security to ``schema`` (api/openapi.py calls it)."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            key = (method, path)
            specs: tuple[str, ...] | None = PUBLIC.get(key)
            if key in SIGNED:
                specs = (*SIGNED[key], *SIGNATURE)
                operation["security"] = [{"ApiKey": [], "Signature": []}]
            elif key in KEY_ONLY:
                operation["security"] = [{"ApiKey": []}]
            if specs:
                declared = {p["name"] for p in operation.get("parameters", [])}
                operation["parameters"] = [*operation.get("parameters", []),
                                           *(parameter(s) for s in specs
                                             if s.partition(":")[0].rstrip("!") not in declared)]
    return schema
