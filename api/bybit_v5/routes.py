"""Every router of the Bybit v5 dialect, in the order the app mounts them."""

from perpsim.api.bybit_v5 import account_routes, market_routes, order_routes, streams
from perpsim.api.bybit_v5.errors import broken_body, error_answer
from perpsim.api.bybit_v5.faults import (
    ORDER_PATHS,
    RATE_LIMIT_POOLS,
    fault_answer,
    ws_event_type,
    ws_expire,
)

TITLE = "Bybit v5 inverse"
REST_PATH = "/v5"  # ccxt.bybit / pybit: the bare base URL
WS_PATH = "/v5/public/inverse"  # and /v5/private
PATH_PREFIXES = ("/v5/",)
WS_PATH_PREFIXES = ("/v5/public/", "/v5/private")
# Headers a request is authenticated by (recordings keep them so a replay re-checks them).
SIGNED_HEADERS = ("x-bapi-api-key", "x-bapi-timestamp", "x-bapi-sign", "x-bapi-recv-window")

# The core's hooks (api/dialects.py): injected faults (HTTP answers, stream frames), the
# broken-market guard's 503 and the app-wide handlers' answers take Bybit's shapes.
__all__ = ["ORDER_PATHS", "RATE_LIMIT_POOLS", "broken_body", "error_answer", "fault_answer",
           "ws_event_type", "ws_expire"]

ROUTERS = (market_routes.router, order_routes.router, account_routes.router, streams.router)
