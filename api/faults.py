"""Fault injection: a venue that misbehaves on purpose, seeded and deterministic.

The registry is venue-neutral: its decisions name a status, a kind and the rule's code and
message; the dialect owning the path shapes the answer (its routes module's ``fault_answer``,
``request_weight``, ``ORDER_PATHS`` and ``RATE_LIMIT_POOLS``; api/binance_coinm/faults.py,
api/bybit_v5/faults.py). A rule (:class:`FaultSpec`, installed through
``POST /control/faults``, api/fault_routes.py) names a ``kind`` and what it applies to: an
endpoint (``path``, a glob such as ``/dapi/v1/*``, and ``method``) and/or an account
(``account_id``). A request or stream frame that does not
match is untouched, and the control plane (``/control/...``) is never faulted: it is the test's
own channel. api/harness.py applies the decisions taken here.

Determinism: every rule owns a ``random.Random(seed)`` and draws from it only for the requests
(or frames) it matches, after ``after`` skipped ones and while ``count`` allows, so the same
requests in the same order meet the same faults. Time bases:

* ``downtime`` windows are in **simulated** time: ``[start_ms, end_ms)`` of the market clock.
* ``rate_limit`` budgets are per window of **wall** time (``interval_ms``, Binance's minute by
  default), counted from the rule's installation: request weight protects the gateway in real
  time, like the timestamp check, and in a stepped market simulated time stands still while a
  client waits out a ``Retry-After``.
* latencies and WebSocket delays are wall-time sleeps.

Kinds: ``latency`` (``ms`` + seeded ``jitter_ms``), ``http_5xx`` (``status`` 500/502/503/504;
``executed: true`` runs the request and then loses its answer: Binance's "execution status
unknown"), ``rate_limit`` (request weights or order counts: 429 with ``Retry-After``, then 418
and a ban for a client that ignores it), ``order_reject`` (the dialect's error ``code``),
``ws_disconnect``, ``ws_drop`` (data frames lost), ``ws_delay`` (data frames late, in order),
``listen_key_expiry`` (a private stream's credential expires; each dialect says how: Binance's
``listenKeyExpired`` and a close, Bybit's private session closed), and
``downtime`` (requests fail with 503 "System is under maintenance.", streams close; at
``start_ms`` resting orders are kept (``orders: "hold"``: the matching engine runs on, only the
gateway is down) or cancelled (``"cancel"``), and a ``fault.downtime`` event is journalled).
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from perpsim.api.dialects import path_owner
from perpsim.api.fault_rates import HttpError, RateBudget, order_paths

if TYPE_CHECKING:
    from perpsim.sim.exchange import Exchange

Kind = Literal["latency", "http_5xx", "rate_limit", "order_reject", "ws_disconnect", "ws_drop",
               "ws_delay", "listen_key_expiry", "downtime"]
HTTP_KINDS = frozenset({"latency", "http_5xx", "rate_limit", "order_reject", "downtime"})
WS_KINDS = frozenset({"ws_disconnect", "ws_drop", "ws_delay", "listen_key_expiry", "downtime"})
MAX_MS = 60_000  # the longest injected latency or frame delay

MAINTENANCE_MSG = "System is under maintenance."  # ccxt: OnMaintenance (ExchangeNotAvailable)
_GATEWAY_TEXT = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                 504: "Gateway Timeout"}


class FaultSpec(BaseModel):
    """One fault rule (the body of ``POST /control/faults``); fields a kind ignores are unused."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    id: str | None = Field(default=None, min_length=1, max_length=64,
                           description="a name for the rule (default f1, f2, ...)")
    path: str | None = Field(default=None, max_length=200,
                             description="glob on the request or WebSocket path; default: every "
                             "dialect path (order_reject: each dialect's order endpoint, "
                             "rate_limit: each dialect's weight pool, e.g. /dapi/*, /v5/*)")
    method: str | None = Field(default=None, description="HTTP method (order_reject: POST)")
    account_id: str | None = Field(default=None, description="only this account's requests "
                                   "(by API key) and user stream")
    stream: str | None = Field(default=None, description="WebSocket kinds: glob on a data "
                               "frame's kind: Binance's event type 'e' (ORDER_TRADE_UPDATE, "
                               "markPriceUpdate), Bybit's topic (order, orderbook.50.*)")
    probability: float = Field(default=1.0, ge=0, le=1)
    seed: StrictInt = Field(default=0, ge=0)
    after: StrictInt = Field(default=0, ge=0, description="let this many matches pass first")
    count: StrictInt | None = Field(default=None, ge=0, description="fire at most this often")
    # latency, ws_delay
    ms: StrictInt = Field(default=0, ge=0, le=MAX_MS)
    jitter_ms: StrictInt = Field(default=0, ge=0, le=MAX_MS)
    # http_5xx, order_reject
    status: StrictInt | None = Field(default=None, description="http_5xx: 500, 502, 503 (default) "
                                     "or 504; order_reject: default 400")
    executed: bool = Field(default=False, description="http_5xx: run the request, then answer "
                           "the error (execution status unknown)")
    code: StrictInt | None = Field(default=None, description="the error code the dialect "
                                   "answers (order_reject default: Binance -2010, Bybit 10001)")
    msg: str | None = Field(default=None, max_length=500)
    # rate_limit
    limit: StrictInt = Field(default=2400, ge=1, description="weight (or orders) per interval")
    interval_ms: StrictInt = Field(default=60_000, ge=100, le=86_400_000,
                                   description="budget window, WALL time")
    unit: Literal["weight", "orders"] = "weight"
    weights: dict[str, StrictInt] = Field(default_factory=dict, description="override weights, "
                                          "keyed 'GET /dapi/v1/depth'")
    ban_after: StrictInt = Field(default=3, ge=1, description="requests sent during a "
                                 "Retry-After before the 418 ban")
    ban_ms: StrictInt = Field(default=120_000, ge=100, le=86_400_000)
    # ws_disconnect
    close_code: StrictInt = Field(default=1001, ge=1000, le=4999)
    # downtime (simulated time)
    start_ms: StrictInt | None = Field(default=None, ge=0)
    end_ms: StrictInt | None = Field(default=None, ge=0)
    orders: Literal["hold", "cancel"] = "hold"

    @model_validator(mode="after")
    def _check(self) -> FaultSpec:
        if self.kind == "downtime" and (self.start_ms is None or self.end_ms is None
                                        or self.end_ms <= self.start_ms):
            raise ValueError("downtime needs start_ms < end_ms (simulated epoch ms)")
        if self.kind == "http_5xx" and self.status not in (None, 500, 502, 503, 504):
            raise ValueError("http_5xx status must be 500, 502, 503 or 504")
        if self.kind == "order_reject" and self.status is not None and not \
                400 <= self.status <= 599:
            raise ValueError("order_reject status must be an HTTP error status")
        if self.close_code in (1004, 1005, 1006, 1015):
            raise ValueError(f"close_code {self.close_code} is reserved: it cannot be sent")
        if self.method is not None:
            self.method = self.method.upper()
        return self


@dataclass
class HttpRequest:
    """What a rule may look at in a request."""

    method: str
    path: str
    params: Mapping[str, str]
    account_id: str | None


@dataclass
class HttpDecision:
    """What to do with one request: sleep, then answer an error or run it (with extra headers)."""

    delay_s: float = 0.0
    error: HttpError | None = None
    headers: dict[str, str] = field(default_factory=dict)
    budgets: list[RateBudget] = field(default_factory=list)  # rate limits the request met


@dataclass
class WsDecision:
    """What to do with one outgoing data frame."""

    delay_s: float = 0.0
    drop: bool = False
    close: tuple[int, str] | None = None
    expire_key: bool = False
    rule: str = ""


class FaultRule:
    """An installed rule: its spec, its RNG and its counters."""

    def __init__(self, spec: FaultSpec, rule_id: str, installed_wall_ms: int) -> None:
        self.spec = spec
        self.id = rule_id
        self.rng = random.Random(spec.seed)
        self.seen = 0  # matching requests or frames
        self.fired = 0  # times the fault was applied
        self.budget = RateBudget(spec, rule_id, installed_wall_ms) \
            if spec.kind == "rate_limit" else None

    # ---- matching ----------------------------------------------------------------------------
    def matches_http(self, req: HttpRequest) -> bool:
        """True if this rule applies to the request (never to the control plane)."""
        spec = self.spec
        if spec.kind not in HTTP_KINDS:
            return False
        path, method = spec.path, spec.method
        if path is None:
            owner = path_owner(req.path)
            if owner is None:
                return False
            if spec.kind == "order_reject":  # the dialect's order endpoint(s)
                method = method or "POST"
                if req.path not in order_paths(req.path):
                    return False
            elif spec.kind == "rate_limit" and not any(  # the dialect's weight pool(s)
                    fnmatch.fnmatchcase(req.path, pool) for pool in owner.RATE_LIMIT_POOLS):
                return False
        elif not fnmatch.fnmatchcase(req.path, path):
            return False
        if spec.kind == "order_reject":
            method = method or "POST"
        if method is not None and req.method != method:
            return False
        return spec.account_id is None or spec.account_id == req.account_id

    def matches_ws(self, path: str, account_id: str | None, event_type: str | None) -> bool:
        """True if this rule applies to a frame of a connection (downtime: any frame)."""
        spec = self.spec
        if spec.kind not in WS_KINDS:
            return False
        if spec.kind == "listen_key_expiry" and account_id is None:
            return False
        if spec.path is not None and spec.kind != "downtime" and \
                not fnmatch.fnmatchcase(path, spec.path):
            return False
        if spec.account_id is not None and spec.account_id != account_id:
            return False
        return not (spec.stream is not None and spec.kind != "downtime" and (
            event_type is None or not fnmatch.fnmatchcase(event_type, spec.stream)))

    def fires(self) -> bool:
        """Count a match; True if the fault applies to it (after / count / probability)."""
        self.seen += 1
        spec = self.spec
        if self.seen <= spec.after or (spec.count is not None and self.fired >= spec.count):
            return False
        if spec.probability < 1 and self.rng.random() >= spec.probability:
            return False
        self.fired += 1
        return True

    def jittered_s(self) -> float:
        """The rule's delay with its seeded jitter, in seconds."""
        extra = self.rng.randint(0, self.spec.jitter_ms) if self.spec.jitter_ms else 0
        return (self.spec.ms + extra) / 1000

    def in_window(self, now_ms: int) -> bool:
        """Downtime: is the simulated time inside [start, end)?"""
        spec = self.spec
        assert spec.start_ms is not None
        assert spec.end_ms is not None
        return spec.start_ms <= now_ms < spec.end_ms

    def charge(self, req: HttpRequest, wall_ms: int) -> HttpError | None:
        """rate_limit: spend the request's weight; the 429 / 418 answer if over budget."""
        assert self.budget is not None
        cost = self.budget.cost(req.method, req.path, req.params)
        if cost is None:
            return None
        self.seen += 1
        error = self.budget.charge(cost, wall_ms)
        if error is not None:
            self.fired += 1
        return error

    def describe(self) -> dict[str, Any]:
        """The rule as GET /control/faults shows it: its spec and counters."""
        out = {"id": self.id, **self.spec.model_dump(exclude={"id"}, exclude_defaults=True),
               "kind": self.spec.kind, "seen": self.seen, "fired": self.fired}
        if self.budget is not None:
            out.update(used=self.budget.used, bans=self.budget.bans)
        return out


def http_error_for(rule: FaultRule) -> HttpError:
    """The answer of an http_5xx, order_reject or downtime rule, venue-neutral: a status and a
    plain text; the owning dialect's ``fault_answer`` gives it its body."""
    spec = rule.spec
    if spec.kind == "downtime":
        status, text = 503, spec.msg or MAINTENANCE_MSG
    elif spec.kind == "order_reject":
        status, text = spec.status or 400, spec.msg or "Order rejected."
    else:
        status = spec.status or 503
        text = _GATEWAY_TEXT[status]
    return HttpError(status, None, text=text, executed=spec.executed and spec.kind == "http_5xx",
                     rule=rule.id, kind=spec.kind, code=spec.code, msg=spec.msg)


class FaultRegistry:
    """The installed rules of one server and the decisions they take."""

    def __init__(self, wall_ms: Callable[[], int]) -> None:
        self.wall_ms = wall_ms
        self.rules: list[FaultRule] = []
        self.ws_connections: dict[str, int] = {}
        self._next = 0
        self._bound: Exchange | None = None
        self._scheduled: set[str] = set()  # downtime rules scheduled on the bound exchange

    @property
    def active(self) -> bool:
        """True while any rule is installed (the middleware is a pass-through otherwise)."""
        return bool(self.rules)

    def add(self, spec: FaultSpec) -> FaultRule:
        """Install a rule (ids must be unique)."""
        if spec.id is None:
            self._next += 1
            while any(r.id == f"f{self._next}" for r in self.rules):
                self._next += 1
            rule_id = f"f{self._next}"
        else:
            rule_id = spec.id
        if any(r.id == rule_id for r in self.rules):
            raise ValueError(f"a fault with id {rule_id!r} is already installed")
        rule = FaultRule(spec, rule_id, self.wall_ms())
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        """Uninstall one rule; False if there is none by that id."""
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        self._scheduled.discard(rule_id)
        return len(self.rules) < before

    def clear(self) -> int:
        """Uninstall every rule; how many there were."""
        n = len(self.rules)
        self.rules, self._scheduled, self._next = [], set(), 0
        self.ws_connections.clear()
        return n

    # ---- HTTP --------------------------------------------------------------------------------
    def decide_http(self, req: HttpRequest, sim_now_ms: int) -> HttpDecision:
        """Every matching rule's say on one request: latency adds up; the first error wins
        (downtime, then rate limits, then 5xx, then order rejects)."""
        decision = HttpDecision()
        errors: dict[str, HttpError] = {}
        wall = self.wall_ms()
        for rule in self.rules:
            if not rule.matches_http(req):
                continue
            kind = rule.spec.kind
            if kind == "latency":
                if rule.fires():
                    decision.delay_s += rule.jittered_s()
            elif kind == "downtime":
                if rule.in_window(sim_now_ms):
                    rule.seen += 1
                    rule.fired += 1
                    errors.setdefault("downtime", http_error_for(rule))
            elif kind == "rate_limit":
                error = rule.charge(req, wall)
                assert rule.budget is not None
                decision.budgets.append(rule.budget)  # the dialect adds its usage headers
                if error is not None:
                    errors.setdefault("rate_limit", error)
            elif rule.fires():
                errors.setdefault(kind, http_error_for(rule))
        for kind in ("downtime", "rate_limit", "http_5xx", "order_reject"):
            if kind in errors:
                decision.error = errors[kind]
                break
        return decision

    # ---- WebSocket ---------------------------------------------------------------------------
    def ws_opened(self, account_id: str | None) -> None:
        """Count a WebSocket connection (per account; public streams under 'public')."""
        key = account_id or "public"
        self.ws_connections[key] = self.ws_connections.get(key, 0) + 1

    def ws_identified(self, account_id: str) -> None:
        """A connection counted as public authenticated (Bybit's private ``auth``): count it
        under its account instead."""
        left = self.ws_connections.get("public", 0) - 1
        if left > 0:
            self.ws_connections["public"] = left
        else:
            self.ws_connections.pop("public", None)
        self.ws_opened(account_id)

    def ws_down(self, path: str, account_id: str | None, sim_now_ms: int) -> bool:
        """True if a downtime window covers this connection now."""
        return any(r.spec.kind == "downtime" and r.matches_ws(path, account_id, None)
                   and r.in_window(sim_now_ms) for r in self.rules)

    def decide_ws(self, path: str, account_id: str | None, event_type: str | None,
                  sim_now_ms: int) -> WsDecision:
        """Every matching rule's say on one outgoing data frame."""
        decision = WsDecision()
        for rule in self.rules:
            if not rule.matches_ws(path, account_id, event_type):
                continue
            kind = rule.spec.kind
            if kind == "downtime":
                if rule.in_window(sim_now_ms):
                    decision.close = (1001, "service unavailable (maintenance)")
                    decision.rule = rule.id
                continue
            if not rule.fires():
                continue
            decision.rule = decision.rule or rule.id
            if kind == "ws_delay":
                decision.delay_s += rule.jittered_s()
            elif kind == "ws_drop":
                decision.drop = True
            elif kind == "ws_disconnect":
                decision.close = decision.close or (rule.spec.close_code, "disconnected (fault)")
            elif kind == "listen_key_expiry":
                decision.expire_key = True
        return decision

    # ---- downtime on the engine's clock ------------------------------------------------------
    def bind(self, ex: Exchange) -> None:
        """Schedule the downtime windows' start on ``ex``'s clock (again after a reset)."""
        if ex is not self._bound:
            self._bound, self._scheduled = ex, set()
        for rule in self.rules:
            spec = rule.spec
            if spec.kind != "downtime" or rule.id in self._scheduled:
                continue
            assert spec.start_ms is not None
            assert spec.end_ms is not None
            self._scheduled.add(rule.id)
            if ex.now_ms >= spec.end_ms:
                continue
            if ex.now_ms >= spec.start_ms:
                start_downtime(ex, rule)
            else:
                ex.clock.process(_downtime_at_start(ex, rule, self))

    def describe(self) -> dict[str, Any]:
        """GET /control/faults."""
        return {"faults": [r.describe() for r in self.rules],
                "ws_connections": dict(sorted(self.ws_connections.items()))}


def _downtime_at_start(ex: Exchange, rule: FaultRule,
                       registry: FaultRegistry) -> Generator[Any, Any, None]:
    assert rule.spec.start_ms is not None
    yield ex.clock.timeout_until(rule.spec.start_ms)
    if rule in registry.rules and registry._bound is ex:  # still installed, same market
        start_downtime(ex, rule)


def start_downtime(ex: Exchange, rule: FaultRule) -> None:
    """A window opens: journal it and apply the resting-orders policy."""
    from perpsim.sim import algo, trading

    spec = rule.spec
    accounts = [spec.account_id] if spec.account_id is not None else list(ex.accounts)
    accounts = [a for a in accounts if a in ex.accounts]
    extra = {} if spec.account_id is None else {"account_id": spec.account_id}
    ex.journal.append(ex.now_ms, "fault.downtime", fault=rule.id, start_ms=spec.start_ms,
                      end_ms=spec.end_ms, orders=spec.orders, **extra)
    if spec.orders != "cancel":
        return
    for account_id in accounts:
        for symbol, book in ex.books.items():
            if book.open_orders(account_id):
                trading.cancel_all(ex, account_id, symbol)
        for order in [o for o in ex.algo_orders.values()
                      if o.is_open and o.account_id == account_id]:
            algo.cancel_algo(ex, account_id, order.algo_id)
