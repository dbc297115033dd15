"""Surviving a venue that misbehaves, for any async / pro ccxt client the hedge trades with
(Binance COIN-M, Bybit inverse: their codes and calls come from strategy/venue.py).

:class:`ResilientExchange` wraps the client and is used in its place (every attribute it does
not define is the client's own):

* **Retries with backoff**: reads (``fetch_*``, ``load_markets``) and idempotent settings
  (leverage, margin mode) are retried on transient errors with exponential backoff and
  "equal jitter" from a seeded RNG (the same seed gives the same delays). A 429 / 418's
  ``Retry-After`` (Bybit: the ``X-Bapi-Limit-Reset-Timestamp`` of a spent budget) is
  honoured for *every* call of the client (one shared gate), so a well-behaved client is
  never banned. Which codes mean "wait" or "try again" is the venue's (strategy/venue.py).
* **Never double-submits**: ``create_order`` always carries a client order id (one is made up
  if the caller gave none). After an error that leaves the outcome unknown (a timeout, a 5xx)
  the id is looked up (Binance: ``fetch_order`` by ``origClientOrderId``, Bybit: by
  ``orderLinkId``; after a timeout again after short waits, because the request may still be
  executing) and the order found is returned; only an id the venue does not know is sent
  again. A duplicate-id answer (−4116, 110072) is resolved the same way. Transient order
  rejects (Binance −2010, −1015, −2020, −4131, −1008) are retried.
* **Non-idempotent calls are verified, not repeated blindly**: after an ambiguous failure of
  ``transfer`` (spot balance) or an isolated-margin top-up (``dapiPrivatePostPositionMargin``,
  ``privatePostV5PositionAddMargin``) the state
  is read back and the call is repeated only if it did not happen.
* **Maintenance** (ccxt ``OnMaintenance``, perpsim's downtime): time has to pass, so the
  wrapper calls ``pass_time`` — on a stepped perpsim :func:`clock_time_passer` advances the
  venue's clock — and retries; several calls failing together let time pass once.
* **WebSocket gaps**: a failed private ``watch_*`` forces a fresh listen key on the next call
  (ccxt otherwise reconnects with an expired one forever). What a stream missed is recovered by
  the caller's REST resync (strategy.monitor resyncs at every decision).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ccxt

from perpsim.strategy.venue import BINANCE_COINM, Venue, venue_for

# Binance's (each venue's are in strategy/venue.py). Server-side failures that say "try again"
# (the request did not, or may not, have run); order rejects that may pass a moment later.
TRANSIENT_CODES = BINANCE_COINM.transient_codes
REJECT_CODES = BINANCE_COINM.reject_codes
DUPLICATE_ID = BINANCE_COINM.duplicate_id_codes[0]
PRIVATE_WATCHES = ("watch_orders", "watch_my_trades", "watch_positions", "watch_balance")
SPOT_ACCOUNTS = ("spot", "main", "MAIN")

PassTime = Callable[[int], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
WallMs = Callable[[], int]


def _wall_now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try (seconds are wall time)."""

    attempts: int = 8  # tries of one call on transient errors
    base_s: float = 0.05  # first backoff
    cap_s: float = 2.0  # longest backoff
    max_retry_after_s: float = 120.0  # longest Retry-After obeyed (a 418 ban is longer: fail)
    settle_s: tuple[float, ...] = (0.2, 0.6)  # extra look-ups of an order after a timeout
    reject_retries: int = 5  # transient order rejects retried
    outage_waits: int = 16  # times time is let pass during maintenance
    outage_cap_s: float = 60.0  # live: longest wait between maintenance retries
    seed: int = 0


ANSWER_HEADERS = "perpsim_answer_headers"  # set on a ccxt error: the headers of ITS answer


def tag_errors_with_headers(exchange: Any) -> None:
    """Make every error ccxt raises for an answer carry that answer's headers.

    ccxt keeps only ``last_response_headers``, shared by concurrent calls, and sets it before
    its response context closes (which can yield to the loop) and before it raises: a
    rate-limit error could be read with another answer's headers, and its reset time missed.
    ccxt calls ``handle_errors`` then ``handle_http_status_code`` back to back, with the
    answer's headers, without yielding: that is where the headers are attached."""
    errors = getattr(exchange, "handle_errors", None)
    statuses = getattr(exchange, "handle_http_status_code", None)
    if getattr(exchange, "_perpsim_tagged", False) or errors is None or statuses is None:
        return  # tagged already, or not a ccxt client (a test's fake)
    seen: dict[str, Any] = {}

    def handle_errors(code: Any, reason: Any, url: Any, method: Any, headers: Any,
                      *rest: Any) -> Any:
        seen["headers"] = headers
        try:
            return errors(code, reason, url, method, headers, *rest)
        except Exception as error:
            setattr(error, ANSWER_HEADERS, headers)
            raise

    def handle_http_status_code(*args: Any) -> Any:
        try:
            return statuses(*args)
        except Exception as error:
            setattr(error, ANSWER_HEADERS, seen.get("headers"))
            raise

    exchange.handle_errors = handle_errors
    exchange.handle_http_status_code = handle_http_status_code
    exchange._perpsim_tagged = True


def classify(error: BaseException, venue: Venue = BINANCE_COINM) -> str | None:
    """``rate`` (not executed; wait), ``outage`` (maintenance), ``unknown`` (may have run,
    may still run), ``answered`` (the venue answered a failure: it may have run), ``reject``
    (an order refused for now), or None (a real error: do not retry)."""
    if isinstance(error, ccxt.OnMaintenance):
        return "outage"
    if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded) or (
            isinstance(error, ccxt.ExchangeError)
            and venue.has_code(error, venue.rate_limit_codes)):
        return "rate"
    if isinstance(error, ccxt.NetworkError):
        return "unknown"
    if venue.has_code(error, venue.reject_codes) and isinstance(error, ccxt.InvalidOrder):
        return "reject"
    if isinstance(error, ccxt.OperationFailed) or (
            isinstance(error, ccxt.ExchangeError)
            and venue.has_code(error, venue.transient_codes)):
        return "answered"
    return None


def clock_time_passer(clock: Any, step_ms: int = 60_000, max_step_ms: int = 3_600_000
                      ) -> PassTime:
    """Let venue time pass through a strategy clock (a stepped perpsim advances)."""

    async def pass_time(attempt: int) -> None:
        now = int(await clock.now_ms())
        await clock.wait(now + min(max_step_ms, step_ms * 2 ** min(attempt, 20)))

    return pass_time


@dataclass
class Stats:
    """What the wrapper did (for logs and tests)."""

    retries: int = 0
    lookups: int = 0
    found_after_error: int = 0
    resubmits: int = 0
    verified: int = 0
    outage_waits: int = 0
    rate_waits: int = 0
    listen_key_renewals: int = 0
    errors: list[str] = field(default_factory=list)

    def note(self, kind: str, what: str, error: BaseException) -> None:
        """Remember one handled error (the last 200)."""
        self.errors.append(f"{kind} {what}: {type(error).__name__} {str(error)[:160]}")
        del self.errors[:-200]


class ResilientExchange:
    """A ccxt async / pro client that survives faults (see module doc)."""

    def __init__(self, exchange: Any, policy: RetryPolicy | None = None, *,
                 pass_time: PassTime | None = None, sleep: Sleep | None = None,
                 wall_ms: WallMs | None = None) -> None:
        own = object.__setattr__
        own(self, "_ex", exchange)
        tag_errors_with_headers(exchange)
        own(self, "venue", venue_for(exchange))
        own(self, "policy", policy or RetryPolicy())
        own(self, "pass_time", pass_time)
        own(self, "_sleep", sleep or asyncio.sleep)
        own(self, "_wall_ms", wall_ms or _wall_now_ms)  # a venue's reset stamps are wall ms
        own(self, "_rng", random.Random(self.policy.seed))
        own(self, "stats", Stats())
        own(self, "_hold_until", 0.0)
        own(self, "_epoch", 0)
        own(self, "_outage_lock", asyncio.Lock())
        own(self, "_cid_count", 0)

    # ---- transparency --------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        value = getattr(self._ex, name)
        if name.startswith("fetch") and asyncio.iscoroutinefunction(value):
            async def retried(*args: Any, **kwargs: Any) -> Any:
                return await self.call(name, *args, **kwargs)
            return retried
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._ex, name, value)  # apiKey, secret, options...

    @property
    def inner(self) -> Any:
        """The wrapped ccxt client."""
        return self._ex

    # ---- the retry loop ------------------------------------------------------------------------
    def backoff_s(self, attempt: int) -> float:
        """Exponential backoff with equal jitter (seeded)."""
        p = self.policy
        delay = min(p.cap_s, p.base_s * 2 ** min(attempt, 30))
        return delay / 2 + self._rng.random() * delay / 2

    async def _gate(self) -> None:
        wait = self._hold_until - asyncio.get_running_loop().time()
        if wait > 0:
            await self._sleep(wait)

    async def _wait_rate(self, attempt: int, error: BaseException) -> None:
        """Honour Retry-After (shared by every call), else back off."""
        self.stats.rate_waits += 1
        headers = getattr(error, ANSWER_HEADERS, None)  # this answer's, not the latest one's
        if headers is None:
            headers = getattr(self._ex, "last_response_headers", None) or {}
        # Binance: Retry-After; Bybit: until its X-Bapi-Limit-Reset-Timestamp (venue.py).
        retry_after = self.venue.retry_after_s(headers, self._wall_ms())
        if retry_after is not None and retry_after > self.policy.max_retry_after_s:
            raise error  # banned for longer than we are willing to wait
        delay = max(retry_after or 0.0, self.backoff_s(attempt))
        loop = asyncio.get_running_loop()
        object.__setattr__(self, "_hold_until", max(self._hold_until, loop.time() + delay))
        await self._gate()

    async def _wait_outage(self, attempt: int, epoch: int) -> None:
        """Let time pass once for every call that failed in the same outage."""
        async with self._outage_lock:
            if self._epoch != epoch:
                return  # another call already let time pass since this one failed
            self.stats.outage_waits += 1
            if self.pass_time is not None:
                await self.pass_time(attempt)
            else:
                await self._sleep(min(self.policy.outage_cap_s,
                                      self.policy.base_s * 2 ** min(attempt + 4, 30)))
            object.__setattr__(self, "_epoch", self._epoch + 1)

    async def _handle(self, kind: str, what: str, error: BaseException,
                      counters: dict[str, int]) -> None:
        """Wait as ``kind`` requires, or re-raise when the budget is spent."""
        self.stats.note(kind, what, error)
        if kind == "outage":
            counters["outage"] += 1
            if counters["outage"] > self.policy.outage_waits:
                raise error
            await self._wait_outage(counters["outage"] - 1, counters["epoch"])
            return
        counters["tries"] += 1
        if counters["tries"] >= self.policy.attempts:
            raise error
        self.stats.retries += 1
        if kind == "rate":
            await self._wait_rate(counters["tries"], error)
        else:
            await self._sleep(self.backoff_s(counters["tries"]))

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<name>(...)`` retried on transient errors (for calls safe to repeat)."""
        method = getattr(self._ex, name)
        counters = {"tries": 0, "outage": 0, "epoch": 0}
        while True:
            await self._gate()
            counters["epoch"] = self._epoch
            try:
                return await method(*args, **kwargs)
            except Exception as error:
                kind = classify(error, self.venue)
                if kind is None or kind == "reject":
                    raise
                await self._handle(kind, name, error, counters)

    async def load_markets(self, *args: Any, **kwargs: Any) -> Any:
        """Markets, retried."""
        return await self.call("load_markets", *args, **kwargs)

    async def set_leverage(self, *args: Any, **kwargs: Any) -> Any:
        """Idempotent: retried."""
        return await self.call("set_leverage", *args, **kwargs)

    async def set_margin_mode(self, *args: Any, **kwargs: Any) -> Any:
        """Idempotent (a repeat answers MarginModeAlreadySet, which the caller expects)."""
        return await self.call("set_margin_mode", *args, **kwargs)

    # ---- orders --------------------------------------------------------------------------------
    def _client_id(self, params: Mapping[str, Any]) -> str:
        for key in ("clientOrderId", "newClientOrderId"):
            if params.get(key):
                return str(params[key])
        object.__setattr__(self, "_cid_count", self._cid_count + 1)
        return f"rs-{self.policy.seed}-{self._rng.getrandbits(32):08x}-{self._cid_count}"

    async def find_order(self, symbol: str, client_id: str) -> dict[str, Any] | None:
        """The order with this client id, or None if the venue does not know it."""
        self.stats.lookups += 1
        return await self.venue.find_order(self, symbol, client_id)  # its fetch_* retried

    async def _find_settled(self, symbol: str, client_id: str, kind: str) -> dict[str, Any] | None:
        found = await self.find_order(symbol, client_id)
        if found is not None or kind != "unknown":
            return found
        for wait in self.policy.settle_s:  # a timed-out request may still be executing
            await self._sleep(wait)
            found = await self.find_order(symbol, client_id)
            if found is not None:
                return found
        return None

    async def create_order(self, symbol: str, type: str, side: str, amount: Any,
                           price: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """Place an order exactly once (see module doc)."""
        client_id = self._client_id(params or {})
        sent = {k: v for k, v in (params or {}).items() if k != "newClientOrderId"}
        sent["clientOrderId"] = client_id
        counters = {"tries": 0, "outage": 0, "epoch": 0}
        rejects = 0
        while True:
            await self._gate()
            counters["epoch"] = self._epoch
            try:
                return await self._ex.create_order(symbol, type, side, amount, price, dict(sent))
            except Exception as error:
                kind = classify(error, self.venue)
                if kind is None:
                    if self.venue.is_duplicate_id(error):
                        found = await self.find_order(symbol, client_id)
                        if found is not None:
                            self.stats.found_after_error += 1
                            return found
                    raise
                if kind == "reject":
                    rejects += 1
                    self.stats.note(kind, "create_order", error)
                    if rejects > self.policy.reject_retries:
                        raise
                    self.stats.retries += 1
                    await self._sleep(self.backoff_s(rejects))
                    continue
                if kind in ("unknown", "answered"):
                    found = await self._find_settled(symbol, client_id, kind)
                    if found is not None:
                        self.stats.found_after_error += 1
                        self.stats.note(kind, "create_order (found)", error)
                        return found
                await self._handle(kind, "create_order", error, counters)
                self.stats.resubmits += 1

    async def cancel_order(self, id: str, symbol: str | None = None,
                           params: Mapping[str, Any] | None = None) -> Any:
        """Cancel, retried; a repeat that finds the order already gone returns its state."""
        counters = {"tries": 0, "outage": 0, "epoch": 0}
        ambiguous = False
        while True:
            await self._gate()
            counters["epoch"] = self._epoch
            try:
                return await self._ex.cancel_order(id, symbol, dict(params or {}))
            except ccxt.OrderNotFound:
                if not ambiguous:
                    raise
                order = dict(await self.call("fetch_order", id, symbol))
                if order.get("status") == "open":
                    raise
                return order
            except Exception as error:
                kind = classify(error, self.venue)
                if kind is None or kind == "reject":
                    raise
                ambiguous = ambiguous or kind in ("unknown", "answered")
                await self._handle(kind, "cancel_order", error, counters)

    # ---- non-idempotent calls, verified --------------------------------------------------------
    async def _verified(self, what: str, run: Callable[[], Awaitable[Any]],
                        read: Callable[[], Awaitable[Decimal]], change: Decimal) -> Any:
        """Run ``run`` once; after an ambiguous failure read the state and repeat only if
        ``read()`` did not move by ``change``."""
        before = await read()
        counters = {"tries": 0, "outage": 0, "epoch": 0}
        while True:
            await self._gate()
            counters["epoch"] = self._epoch
            try:
                return await run()
            except Exception as error:
                kind = classify(error, self.venue)
                if kind is None or kind == "reject":
                    raise
                if kind in ("unknown", "answered"):
                    if kind == "unknown":
                        await self._sleep(sum(self.policy.settle_s))
                    if await read() - before == change:
                        self.stats.verified += 1
                        self.stats.note(kind, f"{what} (happened)", error)
                        return {"info": {}, "status": "ok", "verified": True}
                await self._handle(kind, what, error, counters)

    async def _spot(self, code: str) -> Decimal:
        balance = await self.call("fetch_balance", dict(self.venue.spot_balance_params))
        return self.venue.spot_coin(balance, code)

    async def transfer(self, code: str, amount: Any, from_account: str, to_account: str,
                       params: Mapping[str, Any] | None = None) -> Any:
        """Move coin between wallets exactly once (checked against the spot balance)."""
        out_of_spot = from_account in SPOT_ACCOUNTS
        change = Decimal(str(amount)).quantize(Decimal("0.00000001"))
        return await self._verified(
            "transfer",
            lambda: self._ex.transfer(code, amount, from_account, to_account,
                                      dict(params or {})),
            lambda: self._spot(code), -change if out_of_spot else change)

    async def _isolated_margin(self, market_id: str, amount: Decimal,
                               run: Callable[[], Awaitable[Any]]) -> Any:
        return await self._verified(
            "position margin", run, lambda: self.venue.isolated_margin(self.call, market_id),
            amount)

    async def dapiPrivatePostPositionMargin(self, params: Mapping[str, Any]) -> Any:
        """Binance: add (type 1) or remove (type 2) isolated margin exactly once."""
        sign = 1 if str(params.get("type")) == "1" else -1
        return await self._isolated_margin(
            str(params.get("symbol")), sign * Decimal(str(params.get("amount"))),
            lambda: self._ex.dapiPrivatePostPositionMargin(dict(params)))

    async def privatePostV5PositionAddMargin(self, params: Mapping[str, Any]) -> Any:
        """Bybit: add (a positive ``margin``) or remove isolated margin exactly once."""
        return await self._isolated_margin(
            str(params.get("symbol")), Decimal(str(params.get("margin"))),
            lambda: self._ex.privatePostV5PositionAddMargin(dict(params)))

    # ---- streams -------------------------------------------------------------------------------
    def renew_listen_key(self) -> None:
        """Make the next private ``watch_*`` ask the venue for a listen key again."""
        self.stats.listen_key_renewals += 1
        options = getattr(self._ex, "options", {}) or {}
        for value in options.values():
            if isinstance(value, dict) and "lastAuthenticatedTime" in value:
                value["lastAuthenticatedTime"] = 0

    async def _watch(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self._ex, name)(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.renew_listen_key()
            raise

    async def watch_orders(self, *args: Any, **kwargs: Any) -> Any:
        """The user stream's orders (a failure renews the listen key)."""
        return await self._watch("watch_orders", *args, **kwargs)

    async def watch_my_trades(self, *args: Any, **kwargs: Any) -> Any:
        """The user stream's trades (a failure renews the listen key)."""
        return await self._watch("watch_my_trades", *args, **kwargs)

    async def watch_positions(self, *args: Any, **kwargs: Any) -> Any:
        """The user stream's positions (a failure renews the listen key)."""
        return await self._watch("watch_positions", *args, **kwargs)

    async def watch_balance(self, *args: Any, **kwargs: Any) -> Any:
        """The user stream's balances (a failure renews the listen key)."""
        return await self._watch("watch_balance", *args, **kwargs)


def resilient(exchange: Any, *, seed: int = 0, clock: Any = None,
              policy: RetryPolicy | None = None) -> ResilientExchange:
    """Wrap ``exchange`` (idempotent: an already wrapped client is returned as is). With a
    ``clock`` (strategy.clock), maintenance is waited out on that clock."""
    if isinstance(exchange, ResilientExchange):
        return exchange
    chosen = policy or RetryPolicy(seed=seed)
    return ResilientExchange(exchange, chosen,
                             pass_time=None if clock is None else clock_time_passer(clock))
