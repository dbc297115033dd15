"""The control plane over loopback HTTP with aiohttp, the HTTP client ccxt already runs.

A stepped dry run over the wire makes one control call per decision (``POST /control/advance``)
besides ccxt's requests. Through httpx each costs several times what the same request costs
through aiohttp (httpx builds its request, URL and header models in Python at every call), and
an httpx client loads a TLS context when it is made, which a loopback dry run never uses. This
sends the same requests — method, path, JSON body — so the venue sees and answers the same
calls; it serves ``strategy.clock.ControlPlane`` and never declines a call.
"""

from __future__ import annotations

import aiohttp

_JSON = {"Content-Type": "application/json"}


class AiohttpControl:
    """Control-plane calls to ``base_url`` over one keep-alive aiohttp session."""

    def __init__(self, base_url: str, *, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.calls = 0
        self._session: aiohttp.ClientSession | None = None

    async def call(self, method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        """(status, body) of ``method path`` with the JSON ``body`` (b"": none)."""
        if self._session is None:  # made on the running loop, at the first call
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(ssl=False))
        self.calls += 1
        async with self._session.request(method, self.base_url + path, data=body or None,
                                         headers=_JSON if body else None) as response:
            return response.status, await response.read()

    async def close(self) -> None:
        """Close the session (and its connections)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
