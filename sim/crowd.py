"""A crowd of traders described in a scenario, seeded, built through the engine's order path.

A scenario JSON spec may carry a ``crowd`` section (docs/contract.md, "Crowds and finite
books"); ``CrowdSpec`` validates it (unknown fields refused, each error names its field), and
``build_crowd`` turns it into accounts on an Exchange:

* ``accounts`` traders on ``symbol``, each drawn from one ``random.Random(seed)`` stream in
  account order, so the same spec and seed give the same crowd: a side (long with probability
  ``long_fraction``), a leverage (``leverage``, whole), a size in contracts (``contracts``, on
  the lot), a margin mode (``margin_modes``: weights), and collateral: a futures deposit of
  ``collateral_multiple`` × the initial margin at the start price, plus the taker fee (cross:
  all of it backs the position; isolated: the position takes its initial margin, the rest
  stays in the wallet);
* every account is created, its margin mode and leverage set, with the engine's own calls;
* positions open through ``trading.place_order``, by ``entry.mode``:
  ``at_start`` — a MARKET order each, now; ``window`` — a MARKET order each at a seeded time in
  [start, start + ``window_minutes``) (a simpy process places them as the clock gets there);
  ``around_start`` — a GTC LIMIT order each at start price × (1 + u), u uniform in
  ±``spread_pct``: orders through the market fill at once, the others rest until reached.
* Everything that can be checked before the first account exists is (the symbol, each
  trader's leverage against the bracket of its size at the start price, the lot and size
  limits): a bad crowd raises one ScenarioError naming the field and changes nothing. An
  entry the engine refuses later (``window`` / ``around_start``: the price moved so the margin
  no longer suffices) is journalled ``crowd.entry_rejected`` with the reason.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from perpsim.sim import trading
from perpsim.sim.errors import (
    InsufficientFunds,
    InvalidInput,
    LeverageTooHigh,
    OrderRejected,
    ScenarioError,
)
from perpsim.sim.inverse import coin_value, fee_coin
from perpsim.sim.margin import check_leverage, initial_margin_coin
from perpsim.sim.money import round_to_tick

if TYPE_CHECKING:
    from collections.abc import Generator

    from perpsim.sim.exchange import Exchange

MINUTE_MS = 60_000


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Draw(_Spec):
    """A number drawn per trader: uniform or log-uniform in [min, max] (min = max: fixed)."""

    min: float = Field(gt=0)
    max: float = Field(gt=0)
    distribution: Literal["uniform", "log_uniform"] = "uniform"

    @model_validator(mode="after")
    def _ordered(self) -> Draw:
        if self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        return self

    def draw(self, rng: random.Random) -> float:
        """One value from the stream."""
        if self.distribution == "log_uniform":
            return math.exp(rng.uniform(math.log(self.min), math.log(self.max)))
        return rng.uniform(self.min, self.max)


class Entry(_Spec):
    """How and when the crowd's positions open (see the module docstring)."""

    mode: Literal["at_start", "window", "around_start"] = "at_start"
    window_minutes: float | None = Field(default=None, gt=0, le=525_600)
    spread_pct: float | None = Field(default=None, gt=0, lt=50)

    @model_validator(mode="after")
    def _fields_of_mode(self) -> Entry:
        if self.mode == "window" and self.window_minutes is None:
            raise ValueError("mode window needs window_minutes")
        if self.mode == "around_start" and self.spread_pct is None:
            raise ValueError("mode around_start needs spread_pct")
        if self.mode != "window" and self.window_minutes is not None:
            raise ValueError(f"window_minutes applies to mode window, not {self.mode}")
        if self.mode != "around_start" and self.spread_pct is not None:
            raise ValueError(f"spread_pct applies to mode around_start, not {self.mode}")
        return self


def _all_cross() -> dict[Literal["cross", "isolated"], float]:
    return {"cross": 1.0}


class CrowdSpec(_Spec):
    """A scenario's ``crowd`` section."""

    accounts: int = Field(ge=1, le=1_000_000)
    symbol: str = Field(default="BTCUSD_PERP", min_length=1)
    seed: int | None = Field(default=None, ge=0)
    long_fraction: float = Field(default=0.5, ge=0, le=1)
    leverage: Draw
    contracts: Draw
    margin_modes: dict[Literal["cross", "isolated"], float] = Field(
        default_factory=_all_cross, min_length=1)
    collateral_multiple: Draw = Draw(min=1.0, max=1.0)
    entry: Entry = Entry()

    @model_validator(mode="after")
    def _sane(self) -> CrowdSpec:
        if self.leverage.min < 1:
            raise ValueError("leverage.min must be at least 1")
        if self.collateral_multiple.min < 1:
            raise ValueError("collateral_multiple.min must be at least 1 (the initial margin)")
        weights = self.margin_modes.values()
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("margin_modes weights must be ≥ 0 with a positive sum")
        return self


def parse_crowd(data: object, source: str) -> CrowdSpec:
    """Validate a decoded ``crowd`` section, or one ScenarioError naming the fields."""
    try:
        return CrowdSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:3]:
            where = ".".join(["crowd", *(str(p) for p in err["loc"])])
            problems.append(f"field {where}: {err['msg']}")
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise ScenarioError(f"{source}: {'; '.join(problems)}{more}") from None


@dataclass(frozen=True, slots=True)
class Trader:
    """One member of the crowd as drawn: what it deposits and the order it places."""

    side: Literal["BUY", "SELL"]
    leverage: int
    qty_contracts: int
    margin_mode: Literal["cross", "isolated"]
    deposit_coin: Decimal
    entry_ms: int
    limit_usd: Decimal | None  # around_start: its limit price; None: a market order


@dataclass
class Crowd:
    """A built crowd: its traders and their account ids, in order."""

    spec: CrowdSpec
    traders: list[Trader]
    account_ids: list[str]


def draw_traders(ex: Exchange, spec: CrowdSpec, seed: int) -> list[Trader]:
    """The crowd as drawn for ``ex`` now, checked against the instrument (no change to ex)."""
    if spec.symbol not in ex.instruments:
        raise ScenarioError(f"field crowd.symbol: {spec.symbol!r} is not an instrument of "
                            f"{ex.profile.name} ({', '.join(ex.instruments)})")
    inst = ex.instruments[spec.symbol]
    start = ex.pricer(inst.symbol).reference_at(ex.now_ms)
    cs, lot = inst.contract_size_usd, inst.lot_size
    step = ex.profile.rounding.coin_step
    rng = random.Random(seed)
    modes = sorted(spec.margin_modes)
    weights = [spec.margin_modes[m] for m in modes]
    traders: list[Trader] = []
    for n in range(spec.accounts):
        side: Literal["BUY", "SELL"] = "BUY" if rng.random() < spec.long_fraction else "SELL"
        leverage = max(1, round(spec.leverage.draw(rng)))
        qty = max(lot, round(spec.contracts.draw(rng)) // lot * lot)
        mode: Literal["cross", "isolated"] = rng.choices(modes, weights)[0]
        multiple = Decimal(repr(spec.collateral_multiple.draw(rng)))
        entry_ms, limit = ex.now_ms, None
        if spec.entry.mode == "window":
            assert spec.entry.window_minutes is not None
            entry_ms += int(rng.random() * spec.entry.window_minutes * MINUTE_MS)
        elif spec.entry.mode == "around_start":
            assert spec.entry.spread_pct is not None
            u = rng.uniform(-spec.entry.spread_pct, spec.entry.spread_pct) / 100
            limit = round_to_tick(start * Decimal(repr(1 + u)), inst.tick_size)
        max_qty = inst.market_max_qty if limit is None else inst.max_qty
        if not inst.min_qty <= qty <= max_qty:
            raise ScenarioError(f"field crowd.contracts: trader {n} draws {qty} contracts, "
                                f"outside {inst.symbol}'s [{inst.min_qty}, {max_qty}]")
        price = limit or start
        try:
            check_leverage(inst.brackets, coin_value(qty, price, cs), leverage)
        except LeverageTooHigh as exc:
            raise ScenarioError(f"field crowd.leverage: trader {n} ({qty} contracts at "
                                f"{leverage}x): {exc}") from None
        margin = initial_margin_coin(qty, price, cs, leverage) * multiple
        fee = fee_coin(qty, cs, price, ex.profile.fees.taker_rate)
        deposit = ex.ledger.quantize(margin + 2 * max(fee, Decimal(0)), "up")
        traders.append(Trader(side, leverage, qty, mode, max(deposit, step), entry_ms, limit))
    return traders


def build_crowd(ex: Exchange, spec: CrowdSpec, seed: int | None = None) -> Crowd:
    """Create the crowd's accounts on ``ex`` and open (or schedule) their positions."""
    chosen = spec.seed if spec.seed is not None else (ex.seed if seed is None else seed)
    traders = draw_traders(ex, spec, chosen)
    inst = ex.instruments[spec.symbol]
    coin = inst.margin_asset
    ids: list[str] = []
    for n, trader in enumerate(traders):
        account = ex.create_account({coin: trader.deposit_coin}, label=f"crowd-{n}")
        if ex.position(account.account_id, inst.symbol).margin_mode != trader.margin_mode:
            ex.set_margin_mode(account.account_id, inst.symbol, trader.margin_mode)
        ex.set_leverage(account.account_id, inst.symbol, trader.leverage)
        ids.append(account.account_id)
    crowd = Crowd(spec, traders, ids)
    ex.journal.append(ex.now_ms, "crowd.built", symbol=inst.symbol, accounts=len(ids),
                      longs=sum(t.side == "BUY" for t in traders), seed=chosen,
                      entry=spec.entry.mode, first_account=ids[0], last_account=ids[-1])
    due = sorted(range(len(traders)), key=lambda i: (traders[i].entry_ms, i))
    now = [i for i in due if traders[i].entry_ms <= ex.now_ms]
    for i in now:
        _enter(ex, crowd, i)
    later = [i for i in due if traders[i].entry_ms > ex.now_ms]
    if later:
        ex.clock.process(_entries(ex, crowd, later))
    return crowd


def _enter(ex: Exchange, crowd: Crowd, i: int) -> None:
    trader, account_id = crowd.traders[i], crowd.account_ids[i]
    kind = "MARKET" if trader.limit_usd is None else "LIMIT"
    try:
        trading.place_order(ex, account_id, crowd.spec.symbol, trader.side, kind,
                            trader.qty_contracts, trader.limit_usd,
                            client_order_id=f"crowd-{i}")
    except (OrderRejected, InvalidInput, InsufficientFunds) as exc:
        ex.journal.append(ex.now_ms, "crowd.entry_rejected", account_id=account_id,
                          reason=type(exc).__name__, message=str(exc))


def _entries(ex: Exchange, crowd: Crowd, order: list[int]) -> Generator[Any, Any, None]:
    for i in order:
        yield ex.clock.timeout_until(crowd.traders[i].entry_ms)
        _enter(ex, crowd, i)
        ex.watcher.replan()
