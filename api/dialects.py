"""The registry of wire dialects: one line per dialect, naming the module with its ROUTERS.

A dialect is one folder under api/ (routes, wire shapes, signing, errors, streams) over the
dialect-neutral core (state, control plane, faults, recording, dashboard); nothing outside its
folder imports it. Its routes module is all the core sees: ``ROUTERS``, ``TITLE``,
``REST_PATH``, ``WS_PATH``, ``PATH_PREFIXES``, ``SIGNED_HEADERS`` and optional hooks
(``error_answer``, ``HANDLED_ERRORS``, ``broken_body``, ``declare_openapi``, ``fault_answer``,
``request_weight``, ``ORDER_PATHS``, ``RATE_LIMIT_POOLS``, ``WS_PATH_PREFIXES`` with
``ws_event_type`` / ``ws_expire`` / ``ws_open``). Every registered
dialect is mounted on every server (their paths do not collide), so one market can be traded
through several wires at once; a profile's ``dialect`` (or ``perpsim serve --dialect``) only
names the default: the one perpsim's own clients (hedge, demo, the pytest plugin) speak.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

DIALECTS: dict[str, str] = {
    "binance_coinm": "perpsim.api.binance_coinm.routes",
    "bybit_v5": "perpsim.api.bybit_v5.routes",
}
DEFAULT_DIALECT = "binance_coinm"


def check_dialect(name: object) -> str:
    """``name`` if it is a registered dialect, else ValueError listing them."""
    if not isinstance(name, str) or name not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, got {name!r}")
    return name


def dialect_module(name: str) -> Any:
    """The routes module of dialect ``name``: its routers, paths and hooks."""
    return importlib.import_module(DIALECTS[check_dialect(name)])


def routers(name: str) -> Sequence[Any]:
    """The routers (HTTP and WebSocket) of dialect ``name``, in mounting order."""
    return tuple(dialect_module(name).ROUTERS)


def describe(name: str) -> tuple[str, str, str]:
    """``(title, REST path, WebSocket path)`` of dialect ``name`` (for ``perpsim serve``)."""
    module = dialect_module(name)
    return str(module.TITLE), str(module.REST_PATH), str(module.WS_PATH)


def signed_headers() -> tuple[str, ...]:
    """Every dialect's authentication headers, lower case (what a recording keeps)."""
    names: list[str] = []
    for name in DIALECTS:
        module = dialect_module(name)
        names += [h for h in module.SIGNED_HEADERS if h not in names]
    return tuple(names)


def path_owner(path: str) -> Any | None:
    """The routes module of the dialect whose ``PATH_PREFIXES`` cover ``path`` (None: no
    dialect's, e.g. the control plane). Faults apply only to dialect paths."""
    for name in DIALECTS:
        module = dialect_module(name)
        if path.startswith(tuple(module.PATH_PREFIXES)):
            return module
    return None


def stream_owner(path: str) -> Any | None:
    """The routes module of the dialect whose ``WS_PATH_PREFIXES`` cover the WebSocket
    ``path`` (None: no dialect's, e.g. the dashboard). Its hooks shape the stream faults:
    ``ws_event_type(text)`` (a data frame's kind, None for request answers), ``ws_expire``
    (what ends a private connection whose credential expires) and, optionally, ``ws_open``
    (the account a URL names)."""
    for name in DIALECTS:
        module = dialect_module(name)
        if path.startswith(tuple(getattr(module, "WS_PATH_PREFIXES", ()))):
            return module
    return None
