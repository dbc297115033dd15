"""The control plane (docs/contract.md): reset, accounts, prices, advance, state, journal.

Dull on purpose: parse with pydantic, call the engine, serialise. Errors are
``{"error": code, "message": text}`` with a 4xx status (api/binance_coinm/errors.py), and a rejected
call changes nothing because the engine checks everything before it mutates.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from perpsim.api.deps import State
from perpsim.api.security import confined_path, confined_ref
from perpsim.api.state import ServerState
from perpsim.numbers import readable
from perpsim.sim import risk
from perpsim.sim.errors import InvalidInput, InvalidState
from perpsim.sim.exchange import Exchange, Wake
from perpsim.sim.journal import Event, expand, is_event_type
from perpsim.sim.ledger import insurance_account
from perpsim.sim.money import filtered_price
from perpsim.sim.profile import bundled_profiles
from perpsim.sim.scenario import bundled_scenarios

router = APIRouter(prefix="/control", tags=["control"])

ADVANCE_SLICE_MS = 24 * 3_600_000  # a long advance runs a simulated day at a time
YIELD_AFTER_S = 0.05  # and yields to other clients after this much wall time

# Decimal amounts travel as strings; plain numbers are accepted too, booleans are not.
Amount = StrictStr | StrictInt | StrictFloat


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScenarioPath(_Body):
    """A scenario given by file path."""

    path: str = Field(min_length=1)


class ResetBody(_Body):
    """POST /control/reset: every field optional; omitted ones keep the server's start options."""

    profile: str | None = None
    scenario: str | ScenarioPath | None = None
    seed: StrictInt | None = Field(default=None, ge=0, le=2**63 - 1)
    start: str | StrictInt | None = None
    clock: Literal["stepped", "realtime"] | None = None
    speed: float | None = Field(default=None, gt=0, le=1_000_000)
    dialect: str | None = None  # the default wire (api/dialects.py); None keeps the current


class AccountBody(_Body):
    """POST /control/accounts."""

    balances: dict[str, Amount] = Field(default_factory=dict)
    spot_balances: dict[str, Amount] = Field(default_factory=dict)
    api_key: str | None = Field(default=None, min_length=8, max_length=128)
    api_secret: str | None = Field(default=None, min_length=8, max_length=128)
    label: str | None = Field(default=None, max_length=128)


class PricesBody(_Body):
    """POST /control/prices (manual scenario only)."""

    symbol: str
    index: Amount
    perp: Amount | None = None


class WakeBody(_Body):
    """Stop the advance when the symbol's mark reaches a level (a client wake-up)."""

    symbol: str
    mark_above: Amount | None = None
    mark_below: Amount | None = None


class AdvanceBody(_Body):
    """POST /control/advance: exactly one of ``ms`` or ``until``; optionally stop earlier."""

    ms: StrictInt | None = Field(default=None, ge=0)
    until: StrictInt | None = Field(default=None, ge=0)
    wake: list[WakeBody] = Field(default_factory=list, max_length=100)
    stop_on: list[str] = Field(default_factory=list, max_length=100,
                               description="event types that end the advance, e.g. margin.call")
    account_id: str | None = Field(default=None, description="stop_on only for this account")

    @model_validator(mode="after")
    def _one(self) -> AdvanceBody:
        if (self.ms is None) == (self.until is None):
            raise ValueError("send exactly one of 'ms' or 'until'")
        return self


def _str(value: Decimal | None) -> str | None:
    if value is None or not value.is_finite():
        return None
    # whole amounts as integers ("100"), others as the venue shows them (perpsim/numbers.py)
    return format(value.normalize(), "f") if value == value.to_integral() else readable(value)


def event_json(event: Event) -> dict[str, Any]:
    """An event as the control plane shows it: type, time, seq, then its payload."""
    return {"type": event.type, "time": event.time_ms, "seq": event.seq, **_plain(event.payload)}


def _plain(value: Any) -> Any:
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@router.post("/reset")
async def reset(body: ResetBody, state: State, request: Request) -> dict[str, Any]:
    """Discard everything and rebuild the market from scratch."""
    security = request.app.state.perpsim_security
    changes = body.model_dump(exclude_none=True)
    if isinstance(body.scenario, ScenarioPath):
        changes["scenario"] = {"path": str(confined_path(security, body.scenario.path,
                                                         "scenario path"))}
    elif body.scenario is not None:
        changes["scenario"] = confined_ref(security, body.scenario, "scenario",
                                           bundled_scenarios())
    if body.profile is not None:
        changes["profile"] = confined_ref(security, body.profile, "profile", bundled_profiles())
    await state.reset_off_loop(**changes)
    return market_state(state)


@router.post("/accounts", status_code=201)
async def create_account(body: AccountBody, state: State) -> dict[str, str]:
    """Open a funded account; returns its id and API credentials."""
    account = state.exchange.create_account(body.balances, label=body.label or "",
                                            api_key=body.api_key, api_secret=body.api_secret,
                                            spot_balances=body.spot_balances)
    return {"account_id": account.account_id, "api_key": account.api_key,
            "api_secret": account.api_secret}


@router.get("/accounts/{account_id}")
async def get_account(account_id: str, state: State) -> dict[str, Any]:
    """Balances and positions of an account, with every risk number."""
    ex = state.exchange
    account = ex.account(account_id)
    coins = sorted(ex.ledger.coins)
    positions = []
    for pos in account.positions.values():
        if not pos.is_open:
            continue
        view = risk.settled_position_risk(ex, account_id, pos.symbol, pos.position_side)
        positions.append({
            "symbol": pos.symbol, "position_side": pos.position_side,
            "contracts": view.qty_contracts,
            "entry_price": _str(view.entry_price_usd), "mark_price": _str(view.mark_price_usd),
            "unrealized_pnl": _str(view.unrealised_pnl_coin), "margin_mode": view.margin_mode,
            "leverage": view.leverage, "isolated_margin": _str(view.isolated_margin_coin),
            "maint_margin": _str(view.maint_margin_coin),
            "margin_ratio": _str(view.margin_ratio),
            "liquidation_price": _str(view.liquidation_price_usd),
            "bankruptcy_price": _str(view.bankruptcy_price_usd),
        })
    cross = {c: risk.cross_state(ex, account_id, c) for c in coins}
    return {
        "account_id": account_id, "label": account.label,
        "balances": {c: _str(ex.wallet_balance(account_id, c)) for c in coins},
        "spot_balances": {c: _str(ex.spot_balance(account_id, c)) for c in coins},
        "available": {c: _str(cross[c].available_coin) for c in coins},
        "margin_balance": {c: _str(cross[c].margin_balance_coin) for c in coins},
        "positions": positions,
        "open_orders": sum(len(b.open_orders(account_id)) for b in ex.books.values()),
        "open_conditional_orders": sum(1 for o in ex.algo_orders.values()
                                       if o.is_open and o.account_id == account_id),
    }


@router.post("/prices")
async def set_prices(body: PricesBody, state: State) -> dict[str, Any]:
    """Move a pair's prices now (manual scenario; 409 otherwise) and run what that triggers."""
    events = state.exchange.set_prices(body.symbol, body.index, body.perp)
    return {"now": state.exchange.now_ms, "events": [event_json(e) for e in expand(events)]}


@router.post("/advance")
async def advance(body: AdvanceBody, state: State) -> dict[str, Any]:
    """Run the simulation forward; the events it produced, in order."""
    ex = state.exchange
    if state.config.clock == "realtime":
        raise InvalidInput("the clock is realtime: time follows the wall clock; reset with "
                           "clock 'stepped' to advance by hand")
    target = ex.now_ms + body.ms if body.ms is not None else body.until
    wakes = [_wake(ex, w) for w in body.wake]
    if body.account_id is not None:
        ex.account(body.account_id)
    types, owner = frozenset(body.stop_on), body.account_id

    # What each event matched, asked by the engine's stop check, then again by the scan for
    # the stopping event: a settlement's payments are expanded once (the event is held, so
    # its id names it for the whole request).
    seen: dict[int, tuple[Event, str | None]] = {}

    def matched(event: Event) -> str | None:  # a settlement stands for its payments too
        known = seen.get(id(event))
        if known is not None and known[0] is event:
            return known[1]
        kind = next((e.type for e in expand((event,), owner) if e.type in types
                     and owner in (None, e.payload.get("account_id"))), None)
        seen[id(event)] = (event, kind)
        return kind

    def stop_on(event: Event) -> bool:
        return matched(event) is not None

    assert target is not None
    ex.clock.check_target(target)  # a bad target is refused before anything runs
    events: list[Event] = []
    stopped: str | None = None
    slice_start = time.monotonic()
    # A long advance runs in slices of simulated time and lets the event loop serve other
    # clients between them (the engine cannot tell: advancing to t1 then t2 equals t2).
    while True:
        chunk = ex.advance_until(min(target, ex.now_ms + ADVANCE_SLICE_MS), wakes=wakes,
                                 stop_on=stop_on if types else None)
        events.extend(chunk)
        stopped = next((e.type if e.type == "wake" else matched(e) for e in reversed(chunk)
                        if e.type == "wake" or (types and stop_on(e))), None)
        if stopped is not None or ex.now_ms >= target:
            break
        if time.monotonic() - slice_start > YIELD_AFTER_S:
            await asyncio.sleep(0)
            slice_start = time.monotonic()
            if state.exchange is not ex:  # a reset ran meanwhile: this market is gone
                raise InvalidState("the market was reset while this advance ran")
    return {"now": ex.now_ms, "events": [event_json(e) for e in expand(events)],
            "stopped": stopped}


def _wake(ex: Exchange, body: WakeBody) -> Wake:
    """A wake-up level inside the symbol's price filter (an unreachable level is a mistake)."""
    tick = ex.instrument(body.symbol).tick_size
    return Wake(body.symbol,
                None if body.mark_above is None else filtered_price(body.mark_above, tick,
                                                                    "mark_above"),
                None if body.mark_below is None else filtered_price(body.mark_below, tick,
                                                                    "mark_below"))


@router.get("/state")
async def get_market_state(state: State) -> dict[str, Any]:
    """Time, prices, funding, insurance fund and the ledger's conservation check."""
    return market_state(state)


def market_state(state: ServerState) -> dict[str, Any]:
    """The body of GET /control/state."""
    ex = state.exchange
    coins = sorted(ex.ledger.coins)
    symbols = {}
    for symbol in ex.pricers:
        symbols[symbol] = {
            "index": _str(ex.index_price(symbol)), "mark": _str(ex.mark_price(symbol)),
            "last": _str(ex.last_price(symbol)),
            "funding_rate": _str(ex.predicted_funding_rate(symbol)),
            "last_funding_rate": _str(ex.states[symbol].last_funding_rate),
            "next_funding_time": ex.next_funding_time_ms(symbol),
        }
    return {
        "now": ex.now_ms, "clock": state.config.clock, "speed": state.config.speed,
        "profile": ex.profile.name, "dialect": state.dialect, "scenario": ex.scenario.name,
        "seed": ex.seed,
        "scenario_end": ex.scenario.end_ms, "symbols": symbols,
        "insurance_fund": {c: _str(ex.ledger.balance(insurance_account(c))) for c in coins},
        "ledger": {"total": {c: _str(ex.ledger.total(c)) for c in coins},
                   "deposits": {c: _str(ex.ledger.deposits(c)) for c in coins}},
    }


@router.get("/journal", response_class=PlainTextResponse)
async def journal(
    state: State, since: Annotated[int, Query(ge=0)] = 0,
    types: Annotated[str | None, Query(max_length=4000, description=(
        "only these event types, comma-separated: funding.payment,margin.call"))] = None,
    account_id: Annotated[str | None, Query(max_length=64, description=(
        "only the events whose payload names this account"))] = None,
) -> PlainTextResponse:
    """The event journal after ``since``, as JSON lines (filtered here, not by the client)."""
    ex = state.exchange
    wanted = None if types is None else _event_types(types)
    if account_id is not None:
        ex.account(account_id)  # an unknown account is a 404 naming it
    # A funding settlement is one record; its per-account payments are rows of its detail,
    # served here as the funding.payment events they were (``sim.journal.expand``).
    events = [e for e in expand(ex.journal.since(since), account_id)
              if (wanted is None or e.type in wanted)
              and (account_id is None or e.payload.get("account_id") == account_id)]
    return PlainTextResponse("".join(e.to_json() + "\n" for e in events),
                             media_type="application/x-ndjson")


def _event_types(text: str) -> frozenset[str]:
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if not is_event_type(name):
            raise InvalidInput(f"types: {name!r} is not an event type name (dotted lower-case "
                               "words, comma-separated: funding.payment,margin.call)")
    return frozenset(names)
