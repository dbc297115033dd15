"""The guard in front of the whole app: Host allow-list, control-plane token, body limits, and
file paths confined to a data directory (docs/security.md).

* **Host allow-list.** A browser page on any site can make requests to 127.0.0.1 after a DNS
  rebinding; the only thing it cannot forge is the ``Host`` header. Requests (HTTP and
  WebSocket) whose Host is not loopback, the bound host or an ``--allow-host`` are refused
  with 403 before they reach a route.
* **Control token.** With a token set (``--control-token`` or ``PERPSIM_CONTROL_TOKEN``;
  mandatory when binding beyond loopback), ``/control/*`` and the dashboard ``/ui`` need
  ``Authorization: Bearer TOKEN`` (or ``X-Perpsim-Token``, or the cookie ``/ui?token=TOKEN``
  sets). The Binance dialect keeps its own signed authentication.
* **Body limits.** A body larger than ``max_body_bytes`` is refused with 413 without being read
  whole; a JSON body nested deeper than MAX_JSON_DEPTH with 400.
* **Confined paths.** Files named over the control plane (recordings, scenario and profile
  paths) must be relative paths inside ``data_dir``: absolute paths and ``..`` are refused.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import parse_qs

from perpsim.sim.bounded_json import too_deep
from perpsim.sim.errors import InvalidInput

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_BODY_BYTES = 1 << 20  # 1 MiB: a ccxt order is < 1 KB, a control call a few KB
TOKEN_ENV = "PERPSIM_CONTROL_TOKEN"
TOKEN_COOKIE = "perpsim_control_token"
PROTECTED_PREFIXES = ("/control", "/ui")


@dataclass(frozen=True)
class SecurityConfig:
    """How the server guards itself. ``data_dir=None`` leaves control-plane paths unconfined
    (only for trusted in-process embedding: the hedge job, the pytest plugin)."""

    allowed_hosts: tuple[str, ...] = ()
    control_token: str | None = None
    data_dir: Path | None = field(default_factory=Path.cwd)
    max_body_bytes: int = MAX_BODY_BYTES

    def hosts(self) -> frozenset[str]:
        """Every Host name accepted (lower case, without port or brackets)."""
        return frozenset(h.lower().strip("[]") for h in (*LOOPBACK_HOSTS, *self.allowed_hosts))


# For servers a program starts for itself on loopback (the hedge job, the pytest plugin, tests):
# the files they name are the program's own, so control-plane paths are not confined.
IN_PROCESS = SecurityConfig(data_dir=None)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of a Host header, without the port (``[::1]:80`` → ``::1``)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


# ---- confined paths --------------------------------------------------------------------------
def confined_path(config: SecurityConfig, text: str, what: str) -> Path:
    """``text`` as a file inside the data directory, or InvalidInput saying why not."""
    if config.data_dir is None:
        return Path(text)
    if "\x00" in text:
        raise InvalidInput(f"{what} {text!r} contains a NUL character")
    if (PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
            or PureWindowsPath(text).drive or text.startswith("~")):
        raise InvalidInput(f"{what} {text!r} is absolute; give a path relative to the data "
                           f"directory (--data-dir)")
    parts = PureWindowsPath(text).parts
    if ".." in parts:
        raise InvalidInput(f"{what} {text!r} contains '..'; paths must stay inside the data "
                           f"directory (--data-dir)")
    root = config.data_dir.resolve()
    path = (root / text).resolve()
    if path != root and root not in path.parents:  # a symlink pointing outside
        raise InvalidInput(f"{what} {text!r} leads outside the data directory (--data-dir)")
    return path


def confined_ref(config: SecurityConfig, text: str, what: str,
                 bundled: Collection[str]) -> str:
    """A bundled name as is (also ``calm.json`` when the data directory has no such file);
    anything else is a file or store inside the data directory.

    The loaders try a bare name as a path relative to the server's working directory before
    the bundled names, so a name is never passed through unless it is bundled or names
    nothing there: with ``--data-dir`` the working directory must not be readable.
    """
    if config.data_dir is None or text in bundled:
        return text
    if "/" not in text and "\\" not in text:
        base, at, window = text.partition("@")  # a store reference may carry a window
        if base in bundled:
            return text
        stem = PurePosixPath(base).stem
        if (base.endswith((".csv", ".json")) and stem in bundled and not at
                and not (config.data_dir / base).exists()):
            return stem  # "calm.json" means the bundled file, never one in the cwd
        if (config.data_dir / base).exists():
            return str(confined_path(config, base, f"{what} path")) + at + window
        if Path(base).exists():
            raise InvalidInput(f"{what} {text!r} is neither bundled nor in the data directory "
                               f"(--data-dir)")
        if not base.endswith((".csv", ".json")):
            return text  # a name: the loader says whether it is known
    return str(confined_path(config, text, f"{what} path"))


# ---- the middleware ---------------------------------------------------------------------------
class SecurityMiddleware:
    """Pure ASGI: Host allow-list, control token, body size and JSON depth (module doc)."""

    def __init__(self, app: ASGIApp, config: SecurityConfig) -> None:
        self.app = app
        self.config = config
        self._hosts = config.hosts()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _read_headers(scope)
        path = str(scope.get("path", ""))
        if (kind == "http" and path == "/ui" and self.config.control_token is not None
                and self._host_ok(headers)):
            token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            if token and self._token_ok(token[0]):  # the dashboard's login: a cookie
                await _set_cookie_and_redirect(send, token[0])
                return
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _refuse(kind, send, *refusal)
            return
        if kind == "http" and scope.get("method") in ("POST", "PUT", "DELETE", "PATCH"):
            await self._bounded_body(scope, receive, send, headers)
            return
        await self.app(scope, receive, send)

    def _host_ok(self, headers: dict[str, str]) -> bool:
        host = headers.get("host")
        return host is not None and host_name(host) in self._hosts

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        host = headers.get("host")
        if host is None:
            return 400, "host_missing", "the request has no Host header"
        if host_name(host) not in self._hosts:
            allowed = ", ".join(sorted(self._hosts))
            return (403, "host_not_allowed",
                    f"Host {host!r} is not allowed (allowed: {allowed}); start perpsim with "
                    "--allow-host NAME to accept it")
        path = str(scope.get("path", ""))
        if (self.config.control_token is not None and path.startswith(PROTECTED_PREFIXES)
                and not self._token_ok(_presented_token(headers))):
            return (401, "unauthorized",
                    "the control plane needs the control token: send 'Authorization: "
                    "Bearer TOKEN' (the dashboard: open /ui?token=TOKEN once)")
        return None

    def _token_ok(self, presented: str | None) -> bool:
        expected = self.config.control_token
        if expected is None:
            return True
        return presented is not None and hmac.compare_digest(presented.encode(),
                                                             expected.encode())

    async def _bounded_body(self, scope: Scope, receive: Receive, send: Send,
                            headers: dict[str, str]) -> None:
        cap = self.config.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await _refuse("http", send, 413, "body_too_large",
                          f"the request body ({declared} bytes) exceeds {cap} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, replay_receive([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await _refuse("http", send, 413, "body_too_large",
                              f"the request body exceeds {cap} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if "json" in headers.get("content-type", ""):
            problem = too_deep(body)
            if problem is not None:
                await _refuse("http", send, 400, "invalid_json", f"the body is refused: {problem}")
                return
        await self.app(scope, replay_receive([{"type": "http.request", "body": body,
                                        "more_body": False}], receive), send)


# The only headers the guard reads (decoding the others, a client's user agent and API key,
# is work for nothing on every request).
_READ = frozenset(("host", "content-length", "content-type", "authorization", "x-perpsim-token",
                   "cookie"))


def _read_headers(scope: Scope) -> dict[str, str]:
    """The headers the guard reads, by lower-case name (the last one sent of a name)."""
    headers: dict[str, str] = {}
    for key, value in scope.get("headers", ()):
        name = key.decode("latin-1").lower()
        if name in _READ:
            headers[name] = value.decode("latin-1")
    return headers


def _presented_token(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if "x-perpsim-token" in headers:
        return headers["x-perpsim-token"].strip()
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == TOKEN_COOKIE:
            return value
    return None


def replay_receive(messages: list[Message], receive: Receive | None = None) -> Receive:
    """A receive that hands the app ``messages`` already read (a buffered body), then the real
    channel (or a disconnect when there is none)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        if receive is not None:
            return await receive()
        return {"type": "http.disconnect"}

    return replayed


def body_receive(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the whole body already read, then the real channel."""
    return replay_receive([{"type": "http.request", "body": body, "more_body": False}], receive)


async def _refuse(kind: str, send: Send, status: int, code: str, message: str) -> None:
    if kind == "websocket":
        # Closing before accepting answers the handshake with 403.
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = json.dumps({"error": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _set_cookie_and_redirect(send: Send, token: str) -> None:
    cookie = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", b"/ui"), (b"set-cookie", cookie.encode("latin-1")),
                            (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
