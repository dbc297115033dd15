"""How the core's stream faults (api/harness.py) see Binance's WebSocket frames.

* ``ws_open``: a ``/ws/<listenKey>`` URL names the account (and the key) of a user stream.
* ``ws_event_type``: a data frame's kind is its ``e`` (inside ``data`` on a combined stream);
  request answers (``{"result": ..., "id": ...}``) have none and are never faulted.
* ``ws_expire``: ``listen_key_expiry`` expires the key now and ends the stream as Binance
  does: a ``listenKeyExpired`` frame, then a normal close; a new POST gives a new key.
"""

from __future__ import annotations

import json
from typing import Any

from perpsim.api.state import ServerState
from perpsim.api.stream_session import StreamSession

USER_STREAM_PREFIX = "/ws/"


def ws_open(session: StreamSession, path: str, state: ServerState) -> None:
    """The account of a user stream opened on its listen key."""
    name = path[len(USER_STREAM_PREFIX):] if path.startswith(USER_STREAM_PREFIX) else ""
    account = state.account_for_listen_key(name) if name else None
    if account is not None:
        session.account_id, session.credential = account, name


def ws_event_type(text: str) -> str | None:
    """The ``e`` of a data frame (None for request answers and anything else)."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if isinstance(frame, list):
        frame = frame[0] if frame else None
    if isinstance(frame, dict) and isinstance(frame.get("data"), dict):
        frame = frame["data"]
    kind = frame.get("e") if isinstance(frame, dict) else None
    return kind if isinstance(kind, str) else None


def ws_expire(session: StreamSession, state: ServerState
              ) -> tuple[list[dict[str, Any]], tuple[int, str]]:
    """Expire the connection's listen key now: the frames to send, then the close."""
    key = session.credential
    entry = state.listen_keys.get(key) if key is not None else None
    if key is None or entry is None:  # no key in the URL: nothing Binance would expire
        return [], (1000, "listen key expired")
    state.listen_keys[key] = (entry[0], 0)
    frame = {"e": "listenKeyExpired", "E": state.exchange.now_ms, "listenKey": key}
    return [frame], (1000, "listen key expired")
