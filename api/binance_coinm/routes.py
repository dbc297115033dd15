"""Every router of the Binance COIN-M dialect, in the order the app mounts them."""

from perpsim.api.binance_coinm import (
    account_routes,
    futures_data_routes,
    market_routes,
    streams,
    venue_routes,
    wallet_routes,
)
from perpsim.api.binance_coinm.errors import (
    BINANCE_PREFIXES,
    HANDLED_ERRORS,
    broken_body,
    error_answer,
)
from perpsim.api.binance_coinm.faults import (
    ORDER_PATHS,
    RATE_LIMIT_POOLS,
    fault_answer,
    request_weight,
)
from perpsim.api.binance_coinm.openapi_params import declare_openapi
from perpsim.api.binance_coinm.stream_faults import ws_event_type, ws_expire, ws_open

TITLE = "Binance COIN-M"
REST_PATH = "/dapi/v1"
WS_PATH = "/ws"
PATH_PREFIXES = BINANCE_PREFIXES
WS_PATH_PREFIXES = ("/ws", "/stream")
SIGNED_HEADERS = ("x-mbx-apikey",)  # the signature itself travels in the parameters
# The core's hooks (api/dialects.py): the broken-market guard answers Binance paths with
# broken_body, the app-wide handlers with error_answer (and HANDLED_ERRORS), the stream faults
# read and end Binance's frames with the ws_* hooks; /openapi.json declares its parameters;
# injected faults answer as Binance (fault_answer, request_weight, ORDER_PATHS,
# RATE_LIMIT_POOLS).
__all__ = ["HANDLED_ERRORS", "ORDER_PATHS", "RATE_LIMIT_POOLS", "broken_body", "declare_openapi",
           "error_answer", "fault_answer", "request_weight", "ws_event_type", "ws_expire",
           "ws_open"]

ROUTERS = (market_routes.router, account_routes.router, wallet_routes.router, streams.router,
           venue_routes.router, futures_data_routes.router)
