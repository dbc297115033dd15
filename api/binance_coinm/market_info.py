"""Market metadata on the wire: ``GET /dapi/v1/exchangeInfo`` and ``GET /dapi/v2/leverageBracket``.

Pure functions from a Profile (and the simulated time) to the JSON Binance sends. Field names,
types and string/number choices follow the real COIN-M responses, because ccxt's
``parse_market`` and ``load_leverage_brackets`` read exactly these (docs/dialect-notes.md §1,
§14). Numbers the profile does not hold are Binance's published constants, named below.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpsim.sim.money import MAX_PRICE_USD
from perpsim.sim.profile import Bracket, Instrument, Profile

# Binance's sentinel deliveryDate for perpetuals (2100-12-25); ccxt treats it as "no expiry".
PERPETUAL_DELIVERY_DATE_MS = 4_133_404_800_000
# Listing date reported for perpetuals (2020-08-10, BTCUSD_PERP's real onboardDate); quarterlies
# report their delivery date minus ~6 months, when Binance lists them.
PERPETUAL_ONBOARD_DATE_MS = 1_597_042_800_000
QUARTERLY_LISTED_BEFORE_DELIVERY_MS = 182 * 24 * 3_600_000

# What perpsim's engine accepts. TRAILING_STOP_MARKET is left out on purpose: ccxt checks
# createOrder types against this list client-side, so an unsupported type fails fast there.
ORDER_TYPES = ("LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX")

# Binance's static per-symbol values (identical on every COIN-M symbol); informational only.
MAX_NUM_ORDERS = 200
PERCENT_PRICE_UP = "1.1500"
PERCENT_PRICE_DOWN = "0.8500"
PERCENT_PRICE_DECIMAL = "4"
TRIGGER_PROTECT = "0.0500"
MAINT_MARGIN_PERCENT = "2.5000"
REQUIRED_MARGIN_PERCENT = "5.0000"
MARKET_TAKE_BOUND = "0.05"
EQUAL_QTY_PRECISION = 4

RATE_LIMITS = (
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
)

# The last bracket has no cap in the profile; Binance always sends a finite qtyCap and ccxt's
# leverage-tier validator requires one, so the open end is reported as this many coins.
UNBOUNDED_QTY_CAP_COIN = Decimal("1000000000")


def plain(value: Decimal | int) -> str:
    """A decimal as Binance writes it: fixed point, no exponent, no trailing zeros."""
    text = format(Decimal(value).normalize(), "f")
    return "0" if text in ("-0", "") else text


def _json_number(value: Decimal) -> int | float:
    """A JSON number for the bracket fields Binance sends unquoted (int when integral)."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _digits(step: Decimal) -> int:
    """Decimal places of a step such as 0.00000001 (→ 8)."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def contract_status(instrument: Instrument, now_ms: int) -> str:
    """TRADING, or DELIVERED once a dated contract's delivery time has passed."""
    delivery = instrument.delivery_date_ms
    if delivery is not None and now_ms >= delivery:
        return "DELIVERED"
    return "TRADING"


def symbol_info(profile: Profile, instrument: Instrument, now_ms: int) -> dict[str, Any]:
    """One entry of exchangeInfo ``symbols[]``."""
    if instrument.delivery_date_ms is None:
        delivery_ms = PERPETUAL_DELIVERY_DATE_MS
        onboard_ms = PERPETUAL_ONBOARD_DATE_MS
    else:
        delivery_ms = instrument.delivery_date_ms
        onboard_ms = delivery_ms - QUARTERLY_LISTED_BEFORE_DELIVERY_MS
    size = instrument.contract_size_usd
    coin_digits = _digits(profile.rounding.coin_step)
    return {
        "symbol": instrument.symbol,
        "pair": instrument.pair,
        "contractType": instrument.contract_type,
        "deliveryDate": delivery_ms,
        "onboardDate": onboard_ms,
        "contractStatus": contract_status(instrument, now_ms),
        "contractSize": int(size) if size == size.to_integral_value() else plain(size),
        "marginAsset": instrument.margin_asset,
        "maintMarginPercent": MAINT_MARGIN_PERCENT,
        "requiredMarginPercent": REQUIRED_MARGIN_PERCENT,
        "baseAsset": instrument.base_asset,
        "quoteAsset": instrument.quote_asset,
        "pricePrecision": instrument.price_precision,
        "quantityPrecision": instrument.quantity_precision,
        "baseAssetPrecision": coin_digits,
        "quotePrecision": coin_digits,
        "equalQtyPrecision": EQUAL_QTY_PRECISION,
        "triggerProtect": TRIGGER_PROTECT,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": plain(instrument.tick_size),
                "maxPrice": plain(MAX_PRICE_USD),
                "tickSize": plain(instrument.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": plain(instrument.min_qty),
                "maxQty": plain(instrument.max_qty),
                "stepSize": plain(instrument.lot_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": plain(instrument.min_qty),
                "maxQty": plain(instrument.market_max_qty),
                "stepSize": plain(instrument.lot_size),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": MAX_NUM_ORDERS},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": _multiplier(profile, "multiplier_up", PERCENT_PRICE_UP),
                "multiplierDown": _multiplier(profile, "multiplier_down", PERCENT_PRICE_DOWN),
                "multiplierDecimal": PERCENT_PRICE_DECIMAL,
            },
        ],
        "orderTypes": list(ORDER_TYPES),
        "timeInForce": list(TIME_IN_FORCE),
        "liquidationFee": format(profile.fees.liquidation_clearance_rate, ".6f"),
        "marketTakeBound": MARKET_TAKE_BOUND,
    }


def _multiplier(profile: Profile, name: str, default: str) -> str:
    """PERCENT_PRICE multiplier the engine enforces (profile price_band), 4 decimals."""
    if profile.price_band is None:
        return default
    return format(getattr(profile.price_band, name), ".4f")


def exchange_info(profile: Profile, now_ms: int) -> dict[str, Any]:
    """The whole ``GET /dapi/v1/exchangeInfo`` body; ``serverTime`` is the simulated now."""
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": [dict(limit) for limit in RATE_LIMITS],
        "exchangeFilters": [],
        "symbols": [symbol_info(profile, inst, now_ms) for inst in profile.instruments],
    }


def bracket_entry(bracket: Bracket) -> dict[str, Any]:
    """One bracket as /dapi/v2/leverageBracket sends it: quantities in coin, plain numbers."""
    cap = bracket.cap_coin if bracket.cap_coin is not None else UNBOUNDED_QTY_CAP_COIN
    return {
        "bracket": bracket.bracket,
        "initialLeverage": _json_number(bracket.max_leverage),
        "qtyCap": _json_number(cap),
        "qtyFloor": _json_number(bracket.floor_coin),
        "maintMarginRatio": _json_number(bracket.mmr),
        "cum": float(bracket.cum_coin),
    }


def symbol_brackets(instrument: Instrument) -> dict[str, Any]:
    """``{"symbol", "brackets": [...]}`` for one instrument."""
    return {
        "symbol": instrument.symbol,
        "brackets": [bracket_entry(b) for b in instrument.brackets],
    }


def leverage_brackets(profile: Profile, symbol: str | None = None) -> list[dict[str, Any]]:
    """The ``GET /dapi/v2/leverageBracket`` body: every symbol, or the one asked for.

    An unknown ``symbol`` raises UnknownSymbol (mapped to -1121 by api/binance_coinm/errors.py).
    """
    if symbol is None:
        return [symbol_brackets(inst) for inst in profile.instruments]
    return [symbol_brackets(profile.instrument(symbol))]
