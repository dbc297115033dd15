"""A real ccxt ``bybit`` client (sync, async_support or pro) pointed at perpsim's Bybit v5 dialect.

ccxt.bybit keeps its REST bases under ``urls['api']`` (``public``, ``private``, ...) and, for
ccxt.pro, its WebSocket URLs under ``urls['api']['ws']`` (``public.inverse``,
``private.contract`` = ``.../v5/private``); the test and demo-trading sets hold more. Every one
is rebased onto perpsim keeping its path (strategy/connect.py's ``rewrite_urls``), so no request
and no key ever reaches Bybit.

Options that make it a coin-margined client and keep ``load_markets`` to what perpsim lists:
``fetchMarkets.types = ['inverse']`` (ccxt would otherwise also ask for spot, linear and option
instruments), ``defaultType = 'swap'`` with ``defaultSubType = 'inverse'`` (balances, positions
and streams then default to the contract account). The account model is *not* preset: ccxt
asks ``/v5/user/query-api`` and ``/v5/account/info`` and perpsim answers as Bybit does for a
classic account (docs/bybit-dialect-notes.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt
import ccxt.async_support
import ccxt.pro

from perpsim.strategy.connect import Mode, _check_base, build_client, default_ws_base

BYBIT_OPTIONS: dict[str, Any] = {
    "fetchMarkets": {"types": ["inverse"]},
    "defaultType": "swap",
    "defaultSubType": "inverse",
}


def connect_bybit(
    base_url: str,
    api_key: str | None,
    secret: str | None,
    *,
    mode: Mode = "sync",
    ws_base_url: str | None = None,
    options: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Any:
    """A ccxt ``bybit`` (sync, async_support or pro) talking only to perpsim.

    ``options`` deep-merges into ccxt's ``options``; ``config`` into the constructor config.
    The async and pro clients must be closed by the caller (``await ex.close()``).
    """
    ws_base = _check_base(ws_base_url or default_ws_base(base_url), ("ws", "wss"), "ws_base_url")
    # ccxt.pro's order-book parser reads a URL containing "spot" as a spot connection.
    if "spot" in ws_base:
        raise ValueError(f"ws_base_url must not contain 'spot' (ccxt reads it as a spot "
                         f"stream): {ws_base!r}")
    classes = {"sync": ccxt.bybit, "async": ccxt.async_support.bybit, "pro": ccxt.pro.bybit}
    return build_client(classes, mode, BYBIT_OPTIONS, base_url, ws_base, api_key, secret,
                        options=options, config=config)
