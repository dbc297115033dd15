"""Every router of the Binance COIN-M dialect, in the order the app mounts them."""

from perpsim.api.binance_coinm import (
    account_routes,
    futures_data_routes,
    market_routes,
    streams,
    venue_routes,
    wallet_routes,
)
from perpsim.api.binance_coinm.errors import BINANCE_PREFIXES, broken_body

TITLE = "Binance COIN-M"
REST_PATH = "/dapi/v1"
WS_PATH = "/ws"
PATH_PREFIXES = BINANCE_PREFIXES
SIGNED_HEADERS = ("x-mbx-apikey",)  # the signature itself travels in the parameters
__all__ = ["broken_body"]  # the broken-market guard answers Binance paths with it

ROUTERS = (market_routes.router, account_routes.router, wallet_routes.router, streams.router,
           venue_routes.router, futures_data_routes.router)
