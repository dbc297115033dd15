"""Every router of the Bybit v5 dialect, in the order the app mounts them."""

from perpsim.api.bybit_v5 import account_routes, market_routes, order_routes, streams

TITLE = "Bybit v5 inverse"
REST_PATH = "/v5"  # ccxt.bybit / pybit: the bare base URL
WS_PATH = "/v5/public/inverse"  # and /v5/private
# Headers a request is authenticated by (recordings keep them so a replay re-checks them).
SIGNED_HEADERS = ("x-bapi-api-key", "x-bapi-timestamp", "x-bapi-sign", "x-bapi-recv-window")

ROUTERS = (market_routes.router, order_routes.router, account_routes.router, streams.router)
