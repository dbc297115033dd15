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
from perpsim.api.binance_coinm.stream_faults import ws_event_type, ws_expire, ws_open

TITLE = "Binance COIN-M"
REST_PATH = "/dapi/v1"
WS_PATH = "/ws"
PATH_PREFIXES = BINANCE_PREFIXES
WS_PATH_PREFIXES = ("/ws", "/stream")
SIGNED_HEADERS = ("x-mbx-apikey",)  # the signature itself travels in the parameters
# The broken-market guard answers Binance paths with broken_body; the stream faults read and
# end Binance's frames with the ws_* hooks.
__all__ = ["broken_body", "ws_event_type", "ws_expire", "ws_open"]

ROUTERS = (market_routes.router, account_routes.router, wallet_routes.router, streams.router,
           venue_routes.router, futures_data_routes.router)
