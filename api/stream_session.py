"""What the dialect-neutral core knows of one dialect WebSocket connection: whose it is.

The fault harness (api/harness.py) makes one per connection and puts it in the ASGI scope
before the dialect's endpoint runs. A dialect that knows the account when the connection opens
(Binance: the listen key in the path) fills it in its ``ws_open`` hook; one that learns it later
(Bybit: the ``auth`` op) calls :func:`identify` then. Rules naming an account
(``account_id``, ``listen_key_expiry``) act on the connection from that moment on.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

SCOPE_KEY = "perpsim.stream_session"


@dataclass(slots=True)
class StreamSession:
    """One WebSocket's account (None: public, or not yet authenticated) and the credential
    that names it on the wire (Binance's listen key; None where there is none)."""

    account_id: str | None = None
    credential: str | None = None
    on_identified: Callable[[str], None] | None = None

    def identify(self, account_id: str, credential: str | None = None) -> None:
        """The connection now belongs to ``account_id``."""
        if account_id == self.account_id:
            return
        self.account_id, self.credential = account_id, credential
        if self.on_identified is not None:
            self.on_identified(account_id)


def identify(scope: MutableMapping[str, Any], account_id: str) -> None:
    """Tell the harness (if it watches this connection) whose connection it is."""
    session = scope.get(SCOPE_KEY)
    if isinstance(session, StreamSession):
        session.identify(account_id)
