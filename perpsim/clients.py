"""``perpsim clients``: how to point each client (Binance COIN-M and Bybit v5) at a perpsim server.

Prints, for a server URL, the constructor arguments / URL settings of every client perpsim is
tested with (tests/test_real_clients.py, tests/test_hedge_cycle.py); docs/clients.md explains
them. Every snippet only names URLs: no client is patched.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8765"


def ws_url(base_url: str) -> str:
    """The WebSocket base of a server (http → ws, https → wss)."""
    return "ws" + base_url[len("http"):]


def _fill(template: str, base: str) -> str:
    """A snippet for ``base`` (templates are not f-strings: JavaScript has braces too)."""
    return template.replace("__BASE__", base).replace("__WS__", ws_url(base))


def python_binance(base: str) -> str:
    """python-binance 1.0.37: its URLs are class attributes, so a subclass names perpsim's."""
    return _fill('''# python-binance (pip install python-binance==1.0.37)
from binance import AsyncClient, BinanceSocketManager, Client

# No base-URL argument: python-binance's URLs are class attributes, so a subclass names them.
class PerpsimClient(Client):
    API_URL = "__BASE__/api"  # /api/v3/ping, /api/v3/time
    FUTURES_COIN_URL = "__BASE__/dapi"
    FUTURES_COIN_DATA_URL = "__BASE__/futures/data"

class PerpsimAsyncClient(AsyncClient):
    API_URL = "__BASE__/api"
    FUTURES_COIN_URL = "__BASE__/dapi"
    FUTURES_COIN_DATA_URL = "__BASE__/futures/data"

class PerpsimSocketManager(BinanceSocketManager):
    DSTREAM_URL = "__WS__/"  # COIN-M streams: /stream?streams=..., /ws/<listenKey>

client = PerpsimClient(API_KEY, API_SECRET)   # pings /api/v3/ping
# async: client = await PerpsimAsyncClient.create(API_KEY, API_SECRET)
#        sockets = PerpsimSocketManager(client)
''', base)


def futures_connector(base: str) -> str:
    """binance-futures-connector 4.2.0: base URLs are constructor arguments."""
    return _fill('''# binance-futures-connector (pip install binance-futures-connector==4.2.0)
from binance.cm_futures import CMFutures
from binance.websocket.cm_futures.websocket_client import CMFuturesWebsocketClient

client = CMFutures(key=API_KEY, secret=API_SECRET, base_url="__BASE__")
streams = CMFuturesWebsocketClient(stream_url="__WS__", on_message=on_message)
streams.user_data(client.new_listen_key()["listenKey"])   # SUBSCRIBE <listenKey> on /ws
''', base)


def ccxt_python(base: str) -> str:
    """ccxt for Python: perpsim's connect() rewrites every URL of ccxt's table."""
    return _fill('''# ccxt for Python (pip install ccxt==4.5.90)
from perpsim.strategy.connect import connect   # rewrites every ccxt URL to perpsim

ex = connect("__BASE__", API_KEY, API_SECRET, mode="pro")   # or "sync", "async"
''', base)


def ccxt_node(base: str) -> str:
    """ccxt for Node: the constructor's ``urls`` (every URL of ccxt's table moved)."""
    return _fill('''// ccxt for Node (npm install ccxt@4.5.84)
import http from 'node:http';
import ccxt from 'ccxt';

const base = '__BASE__', wsBase = '__WS__';
const move = (node) => typeof node === 'string'
    ? (/^https?:/.test(node) ? base + new URL(node).pathname
        : /^wss?:/.test(node) ? wsBase + new URL(node).pathname : node)
    : Object.fromEntries(Object.entries(node).map(([k, v]) => [k, move(v)]));
const { api, test, demo } = new ccxt.pro.binancecoinm().urls;
const ex = new ccxt.pro.binancecoinm({
    apiKey: API_KEY, secret: API_SECRET,
    urls: { api: move(api), test: move(test), demo: move(demo) },
    httpAgent: new http.Agent(),  // ccxt needs one for plain ws:// URLs
    options: { fetchCurrencies: false },
});
''', base)


def ccxt_bybit(base: str) -> str:
    """ccxt.bybit for Python, on the Bybit v5 wire (docs/bybit-dialect-notes.md)."""
    return _fill('''# ccxt.bybit for Python, Bybit v5 wire (pip install ccxt==4.5.90)
from perpsim.strategy.connect_bybit import connect_bybit   # rewrites every ccxt.bybit URL

ex = connect_bybit("__BASE__", API_KEY, API_SECRET, mode="pro")   # or "sync", "async"
''', base)


def pybit(base: str) -> str:
    """pybit 5.17 (Bybit's SDK), on the Bybit v5 wire: an endpoint attribute and the WebSocket
    URL templates (pybit's only URL knobs for them)."""
    return _fill('''# pybit, Bybit v5 wire (pip install pybit==5.17.0)
from pybit import unified_trading

http = unified_trading.HTTP(api_key=API_KEY, api_secret=API_SECRET)
http.endpoint = "__BASE__"
unified_trading.PUBLIC_WSS = "__WS__/v5/public/{CHANNEL_TYPE}"   # before any WebSocket(...)
unified_trading.PRIVATE_WSS = "__WS__/v5/private"
# ws = unified_trading.WebSocket(testnet=False, channel_type="inverse")
''', base)


SNIPPETS: dict[str, Callable[[str], str]] = {
    "python-binance": python_binance,
    "binance-futures-connector": futures_connector,
    "ccxt": ccxt_python,
    "ccxt-node": ccxt_node,
    "ccxt-bybit": ccxt_bybit,
    "pybit": pybit,
}


def client_snippets(base_url: str, names: list[str] | None = None) -> str:
    """The snippets for ``base_url`` (all clients, or those named)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"the server URL must look like http://host:port, got {base_url!r}")
    base = base_url.rstrip("/")
    return "\n".join(SNIPPETS[name](base) for name in (names or list(SNIPPETS)))


def _run(args: argparse.Namespace) -> int:
    try:
        text = client_snippets(args.url, args.client)
    except ValueError as exc:
        print(f"perpsim: error: {exc}")
        return 2
    print(text, end="")
    return 0


def add_clients_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``perpsim clients``."""
    cmd = sub.add_parser(
        "clients", help="print how to point each client at a perpsim server",
        description="Print the constructor arguments / URL settings that point python-binance, "
        "binance-futures-connector, ccxt (Python) and ccxt (Node), and for the Bybit wire "
        "ccxt.bybit and pybit, at a perpsim server (docs/clients.md, "
        "docs/bybit-dialect-notes.md).")
    cmd.add_argument("--url", default=DEFAULT_URL, help=f"the server (default {DEFAULT_URL})")
    cmd.add_argument("--client", action="append", choices=list(SNIPPETS),
                     help="only this client (repeatable; default: all of them)")
    cmd.set_defaults(run=_run)
