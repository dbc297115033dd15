"""Exchange profiles: every venue-specific number as typed, immutable, validated data.

A profile is a JSON file (fixtures/profiles/NAME.json, or any path a user passes). Nothing in the
engine hard-codes a venue's choice: where Binance, Bybit and BitMEX differ (mark method, which
funding window pays, liquidation style, rounding), the difference is a field here.
See docs/mechanics.md of the shared spec for the meaning of each number.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fixtures import PROFILES_DIR
from sim.errors import ProfileError, UnknownSymbol
from sim.money import RoundingRule

HOUR_MS = 3_600_000


class _Frozen(BaseModel):
    """Immutable, strict about unknown fields, Decimals parsed from strings."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Bracket(_Frozen):
    """One maintenance-margin bracket: applies while the position value in coin is in
    [floor_coin, cap_coin)."""

    bracket: int = Field(ge=1)
    floor_coin: Decimal = Field(ge=0)
    cap_coin: Decimal | None = Field(default=None, gt=0, description="None: no upper bound")
    max_leverage: Decimal = Field(ge=1)
    mmr: Decimal = Field(gt=0, lt=1, description="maintenance margin rate")
    cum_coin: Decimal = Field(ge=0, description="maintenance amount (cum, Bybit mmDeduction)")


class SyntheticBook(_Frozen):
    """Synthetic liquidity quoted around the scenario's perp price, so market orders slip."""

    half_spread_ticks: int = Field(ge=1)
    levels: int = Field(ge=1, le=1000)
    level_step_ticks: int = Field(ge=1)
    contracts_per_level: int = Field(ge=1)


class Instrument(_Frozen):
    """One tradable inverse contract."""

    symbol: str = Field(min_length=1)
    pair: str = Field(min_length=1)
    base_asset: str
    quote_asset: str
    margin_asset: str
    contract_type: Literal["PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER"]
    delivery_date_ms: int | None = Field(default=None, gt=0)
    contract_size_usd: Decimal = Field(gt=0)
    tick_size: Decimal = Field(gt=0)
    lot_size: int = Field(ge=1, description="contracts step")
    min_qty: int = Field(ge=1)
    max_qty: int = Field(ge=1, description="limit order maximum, contracts")
    market_max_qty: int = Field(ge=1, description="market order maximum, contracts")
    price_precision: int = Field(ge=0, le=12)
    quantity_precision: int = Field(ge=0, le=12)
    funding_cap: Decimal = Field(gt=0, lt=1, description="funding rate is clamped to ±cap")
    impact_margin_usd: Decimal = Field(
        gt=0, description="impact notional = this × the first bracket's max leverage"
    )
    brackets: tuple[Bracket, ...] = Field(min_length=1)
    book: SyntheticBook

    @property
    def is_perpetual(self) -> bool:
        """True for perpetual swaps (which fund); quarterlies deliver instead."""
        return self.contract_type == "PERPETUAL"

    @property
    def impact_notional_usd(self) -> Decimal:
        """USD notional whose average fill price defines the impact bid/ask (mechanics §4)."""
        return self.impact_margin_usd * self.brackets[0].max_leverage

    @model_validator(mode="after")
    def _consistent(self) -> Instrument:
        if self.contract_type == "PERPETUAL" and self.delivery_date_ms is not None:
            raise ValueError("a PERPETUAL has no delivery_date_ms")
        if self.contract_type != "PERPETUAL" and self.delivery_date_ms is None:
            raise ValueError(f"a {self.contract_type} contract needs delivery_date_ms")
        if not self.min_qty <= self.max_qty:
            raise ValueError("min_qty must not exceed max_qty")
        if self.min_qty % self.lot_size or self.max_qty % self.lot_size:
            raise ValueError("min_qty and max_qty must be multiples of lot_size")
        _check_brackets(self.brackets)
        return self


def _check_brackets(brackets: tuple[Bracket, ...]) -> None:
    """Sorted, contiguous, starting at 0, MMR rising, leverage falling, MM below IM."""
    if brackets[0].floor_coin != 0:
        raise ValueError("brackets: the first floor_coin must be 0")
    for i, b in enumerate(brackets):
        if b.bracket != i + 1:
            raise ValueError(f"brackets: entry {i} must be numbered {i + 1}, got {b.bracket}")
        if b.mmr >= 1 / b.max_leverage:
            raise ValueError(
                f"brackets[{i}]: mmr {b.mmr} must be below the initial margin rate "
                f"1/{b.max_leverage}"
            )
        last = i == len(brackets) - 1
        if last and b.cap_coin is not None:
            raise ValueError("brackets: the last bracket must have no cap_coin (unbounded)")
        if not last:
            nxt = brackets[i + 1]
            if b.cap_coin is None or b.cap_coin != nxt.floor_coin:
                raise ValueError(
                    f"brackets[{i}]: cap_coin {b.cap_coin} must equal the next floor_coin "
                    f"{nxt.floor_coin} (brackets sorted and contiguous)"
                )
            if not b.floor_coin < nxt.floor_coin:
                raise ValueError(f"brackets are not sorted by floor_coin at entry {i + 1}")
            if not nxt.mmr > b.mmr:
                raise ValueError(f"brackets[{i + 1}]: mmr must rise from bracket to bracket")
            if not nxt.max_leverage <= b.max_leverage:
                raise ValueError(f"brackets[{i + 1}]: max_leverage must not rise")


class Fees(_Frozen):
    """Maker/taker rates (negative maker = rebate) and the liquidation clearance fee."""

    maker_rate: Decimal = Field(gt=-1, lt=1)
    taker_rate: Decimal = Field(ge=0, lt=1)
    max_maker_rebate: Decimal = Field(
        ge=0, lt=Decimal("0.01"), description="bound on a negative maker_rate"
    )
    liquidation_clearance_rate: Decimal = Field(ge=0, lt=Decimal("0.1"))

    @model_validator(mode="after")
    def _rebate_bound(self) -> Fees:
        if self.maker_rate < -self.max_maker_rebate:
            raise ValueError(
                f"maker_rate {self.maker_rate} is a rebate larger than max_maker_rebate "
                f"{self.max_maker_rebate}"
            )
        if self.maker_rate + self.taker_rate < 0:
            raise ValueError("maker_rate + taker_rate must not be negative")
        return self


class Funding(_Frozen):
    """Funding schedule and the rate template F = P̄ + clamp(I − P̄, ±clamp), capped."""

    times_utc_hours: tuple[int, ...] = Field(min_length=1)
    interest_rate: Decimal = Field(ge=-1, le=1, description="I per interval")
    clamp: Decimal = Field(ge=0, lt=1)
    premium_sample_interval_ms: int = Field(gt=0)
    averaging: Literal["weighted", "plain"]
    settles: Literal["window_just_ended", "previous_window"]

    @cached_property
    def interval_ms(self) -> int:
        """Milliseconds between two funding times."""
        return 24 * HOUR_MS // len(self.times_utc_hours)

    @model_validator(mode="after")
    def _evenly_spaced(self) -> Funding:
        hours = self.times_utc_hours
        if list(hours) != sorted(set(hours)) or any(not 0 <= h < 24 for h in hours):
            raise ValueError("times_utc_hours must be distinct hours 0..23 in increasing order")
        if 24 % len(hours):
            raise ValueError("times_utc_hours must split the day evenly")
        step = 24 // len(hours)
        if any(h - hours[0] != i * step for i, h in enumerate(hours)):
            raise ValueError(f"times_utc_hours must be evenly spaced every {step} h")
        if self.interval_ms % self.premium_sample_interval_ms:
            raise ValueError("premium_sample_interval_ms must divide the funding interval")
        return self

    def next_funding_time_ms(self, now_ms: int) -> int:
        """The first funding time strictly after ``now_ms`` (epoch ms, UTC)."""
        offset = self.times_utc_hours[0] * HOUR_MS
        k = (now_ms - offset) // self.interval_ms + 1
        return offset + k * self.interval_ms


class Mark(_Frozen):
    """How the mark price is made (mechanics §3)."""

    method: Literal["median3", "fair_price"]
    basis_samples: int = Field(ge=1, description="moving average length of (mid − index)")
    basis_sample_interval_ms: int = Field(gt=0)


class Liquidation(_Frozen):
    """Liquidation style, rounding, partial step-down, ADL ranking, margin-call threshold."""

    style: Literal["mm_at_liquidation_price", "mm_at_entry"]
    include_exit_fee_in_mm: bool
    include_funding_in_mm: bool
    partial: bool = Field(description="step down to a lower bracket before a full takeover")
    bankruptcy_price_rounding: Literal["none", "tick_conservative"]
    liquidation_price_rounding: Literal["none", "tick_conservative"]
    adl_ranking: Literal["profit_times_leverage", "bitmex"]
    margin_call_ratio: Decimal = Field(gt=0, lt=1)


class Rounding(_Frozen):
    """How coin amounts are quantised at every ledger posting."""

    coin_step: Decimal = Field(gt=0)
    coin_rule: RoundingRule
    contract_value_floor: bool = Field(
        description="BitMEX: floor each contract's coin value to coin_step before × quantity"
    )


class Profile(_Frozen):
    """A whole venue: instruments, fees, funding, mark, liquidation, rounding, insurance fund."""

    name: str = Field(min_length=1)
    venue: str
    description: str = ""
    bracket_cum: Literal["deduction", "none"] = Field(
        description="deduction: cum_n = floor_n·(MMR_n − MMR_n−1) + cum_n−1; none: all zero"
    )
    fees: Fees
    funding: Funding
    mark: Mark
    liquidation: Liquidation
    rounding: Rounding
    insurance_fund_start: dict[str, Decimal]
    instruments: tuple[Instrument, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        symbols = [i.symbol for i in self.instruments]
        if len(set(symbols)) != len(symbols):
            raise ValueError("instruments: symbols must be unique")
        for inst in self.instruments:
            if inst.margin_asset not in self.insurance_fund_start:
                raise ValueError(
                    f"insurance_fund_start has no balance for {inst.margin_asset} "
                    f"(margin asset of {inst.symbol})"
                )
            for i, b in enumerate(inst.brackets):
                expected = _expected_cum(self.bracket_cum, inst.brackets, i)
                if b.cum_coin != expected:
                    raise ValueError(
                        f"{inst.symbol} brackets[{i}]: cum_coin {b.cum_coin} is inconsistent; "
                        f"bracket_cum '{self.bracket_cum}' gives {expected}"
                    )
        if any(v < 0 for v in self.insurance_fund_start.values()):
            raise ValueError("insurance_fund_start balances must not be negative")
        return self

    def instrument(self, symbol: object) -> Instrument:
        """The instrument named ``symbol``, or UnknownSymbol listing the ones that exist."""
        for inst in self.instruments:
            if inst.symbol == symbol:
                return inst
        known = ", ".join(i.symbol for i in self.instruments)
        raise UnknownSymbol(f"unknown symbol {symbol!r} on {self.name}; known: {known}")

    @property
    def symbols(self) -> tuple[str, ...]:
        """All instrument symbols, in file order."""
        return tuple(i.symbol for i in self.instruments)


def _expected_cum(rule: str, brackets: tuple[Bracket, ...], i: int) -> Decimal:
    if rule == "none" or i == 0:
        return Decimal(0)
    prev = brackets[i - 1]
    return brackets[i].floor_coin * (brackets[i].mmr - prev.mmr) + prev.cum_coin


PROFILE_DIR = PROFILES_DIR


def bundled_profiles() -> tuple[str, ...]:
    """Names of the profiles shipped in fixtures/profiles."""
    return tuple(sorted(p.stem for p in PROFILE_DIR.glob("*.json")))


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a bundled profile by name, or any profile JSON file by path.

    Raises ProfileError with one message naming the file, the field and the problem.
    """
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = PROFILE_DIR / f"{name_or_path}.json"
        if not path.is_file():
            known = ", ".join(bundled_profiles())
            raise ProfileError(f"unknown profile {str(name_or_path)!r}; bundled: {known}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a profile must be a JSON object")
    try:
        return Profile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        problem = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ProfileError(f"{path}: field {where}: {problem}{more}") from None
