"""A real ccxt ``binancecoinm`` client pointed at a perpsim server instead of Binance.

ccxt keeps ~25 base URLs per Binance client (``dapi*``, ``fapi*``, ``sapi*``, spot, options,
portfolio margin, and for ccxt.pro a tree of WebSocket URLs). Any one left alone would send a
request, with the user's key, to the real venue, so :func:`connect` rewrites every URL under
``urls['api']`` (and the ``test`` / ``demo`` sets used by sandbox and demo mode) to the same path
on perpsim, keeping the path: ``https://dapi.binance.com/dapi/v1`` → ``{base}/dapi/v1``,
``wss://dstream.binance.com/ws`` → ``{ws_base}/ws``.

It also restores what ccxt only does for Binance's own hostnames: the COIN-M error-code table
(``exceptions['inverse']``), which ``binance.handle_errors`` selects by URL prefix.
See docs/dialect-notes.md §0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support
import ccxt.pro

Mode = Literal["sync", "async", "pro"]

# URL sets ccxt switches to for set_sandbox_mode(True) / enable_demo_trading(True).
_URL_SETS = ("api", "test", "demo", "apiBackup", "demotrading")  # demotrading: ccxt.bybit

_DEFAULT_OPTIONS: dict[str, Any] = {
    # True would make load_markets call /sapi/v1/capital/config/getall with the user's keys.
    "fetchCurrencies": False,
}


def _check_base(url: str, schemes: tuple[str, ...], what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"{what} must be an absolute {'/'.join(schemes)} URL, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{what} must not carry a query or fragment, got {url!r}")
    return url.rstrip("/")


def default_ws_base(base_url: str) -> str:
    """The WebSocket base that matches an HTTP base (http → ws, https → wss)."""
    base = _check_base(base_url, ("http", "https"), "base_url")
    return ("wss" + base[5:]) if base.startswith("https") else ("ws" + base[4:])


def rebase(url: str, base: str) -> str:
    """``url`` with its scheme and host replaced by ``base``, its path kept."""
    path = urlsplit(url).path
    return base + path


def _rewrite_tree(node: Any, http_base: str, ws_base: str) -> Any:
    """Every http(s)/ws(s) URL string in a nested dict rebased onto perpsim."""
    if isinstance(node, dict):
        return {key: _rewrite_tree(value, http_base, ws_base) for key, value in node.items()}
    if isinstance(node, str):
        scheme = urlsplit(node).scheme
        if scheme in ("http", "https"):
            return rebase(node, http_base)
        if scheme in ("ws", "wss"):
            return rebase(node, ws_base)
    return node


def rewrite_urls(urls: Mapping[str, Any], base_url: str, ws_base_url: str) -> dict[str, Any]:
    """A copy of a ccxt ``urls`` dict whose API URL sets all point at perpsim."""
    http_base = _check_base(base_url, ("http", "https"), "base_url")
    ws_base = _check_base(ws_base_url, ("ws", "wss"), "ws_base_url")
    result = dict(urls)
    for key in _URL_SETS:
        if key in result:
            result[key] = _rewrite_tree(result[key], http_base, ws_base)
    return result


def restore_coinm_errors(exchange: Any) -> None:
    """Merge ccxt's COIN-M error table into the generic one, as ccxt does for dapi.binance.com.

    ``binance.handle_errors`` looks codes up in ``exceptions['inverse']`` only when the request
    URL starts with ``https://dapi.binance.com/`` (``get_exceptions_by_url``); on any other host
    −2019 (margin insufficient) and friends would surface as a bare ExchangeError.
    """
    exceptions = exchange.exceptions
    inverse = exceptions.get("inverse", {})
    for kind in ("exact", "broad"):
        if kind in inverse:
            exceptions[kind] = exchange.extend(exceptions.get(kind, {}), inverse[kind])


def connect(
    base_url: str,
    api_key: str | None,
    secret: str | None,
    *,
    mode: Mode = "sync",
    ws_base_url: str | None = None,
    options: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    dialect: str = "binance_coinm",
) -> Any:
    """A ccxt ``binancecoinm`` (sync, async_support or pro) talking only to perpsim.

    ``options`` deep-merges into ccxt's ``options``; ``config`` into the constructor config
    (e.g. ``{"timeout": 5000}``). The async and pro clients must be closed by the caller
    (``await ex.close()``). ``dialect="bybit_v5"`` (the venue's wire, as ``/control/state``
    names it) gives a ccxt ``bybit`` instead (strategy/connect_bybit.py).
    """
    if dialect == "bybit_v5":
        from perpsim.strategy.connect_bybit import connect_bybit

        return connect_bybit(base_url, api_key, secret, mode=mode, ws_base_url=ws_base_url,
                             options=options, config=config)
    if dialect != "binance_coinm":
        raise ValueError(f"dialect must be binance_coinm or bybit_v5, got {dialect!r}")
    ws_base = _check_base(ws_base_url or default_ws_base(base_url), ("ws", "wss"), "ws_base_url")
    # ccxt.pro treats a connection whose URL contains "/stream" as a spot one
    # (binance.is_spot_url) and would then resolve COIN-M stream symbols as spot markets.
    if "/stream" in ws_base or "demo-stream" in ws_base:
        raise ValueError(f"ws_base_url must not contain '/stream' (ccxt reads it as spot): "
                         f"{ws_base!r}")
    classes = {
        "sync": ccxt.binancecoinm,
        "async": ccxt.async_support.binancecoinm,
        "pro": ccxt.pro.binancecoinm,
    }
    exchange = build_client(classes, mode, _DEFAULT_OPTIONS, base_url, ws_base, api_key, secret,
                            options=options, config=config)
    restore_coinm_errors(exchange)
    return exchange


def build_client(classes: Mapping[str, Any], mode: str, default_options: Mapping[str, Any],
                 base_url: str, ws_base: str, api_key: str | None, secret: str | None, *,
                 options: Mapping[str, Any] | None, config: Mapping[str, Any] | None) -> Any:
    """The ccxt class for ``mode``, constructed with the caller's settings over perpsim's
    defaults, every URL rebased onto perpsim (shared by the Binance and Bybit connectors)."""
    if mode not in classes:
        raise ValueError(f"mode must be one of {', '.join(classes)}, got {mode!r}")
    settings: dict[str, Any] = {"enableRateLimit": False}
    settings.update(config or {})
    # ccxt deep-merges constructor options over its defaults, keeping the ones not named.
    settings["options"] = {**default_options, **dict(settings.get("options") or {}),
                           **dict(options or {})}
    if api_key is not None:
        settings["apiKey"] = api_key
    if secret is not None:
        settings["secret"] = secret
    exchange = classes[mode](settings)
    exchange.urls = rewrite_urls(exchange.urls, base_url, ws_base)
    return exchange


def all_api_urls(exchange: Any) -> list[str]:
    """Every URL string under the exchange's API URL sets (for checks and diagnostics)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, str):
            found.append(node)

    for key in _URL_SETS:
        walk(exchange.urls.get(key))
    return found
