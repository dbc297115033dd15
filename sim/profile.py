"""Exchange profiles: every venue-specific number as typed, immutable, validated data.

A profile is a JSON file (fixtures/profiles/NAME.json, or any path a user passes). Nothing in the
engine hard-codes a venue's choice: where Binance, Bybit and BitMEX differ (mark method, which
funding window pays, liquidation style, rounding), the difference is a field here.
See docs/mechanics.md of the shared spec for the meaning of each number.
"""

from __future__ import annotations

import difflib
import json
import typing
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from perpsim.fixtures import PROFILES_DIR
from perpsim.sim.bounded_json import too_deep
from perpsim.sim.errors import ProfileError, UnknownSymbol, did_you_mean
from perpsim.sim.money import RoundingRule

HOUR_MS = 3_600_000

Loc = tuple[str | int, ...]


class _At(ValueError):
    """A validator's complaint about one field below the model being validated.

    Pydantic reports a model validator's error at the model itself; carrying the sub-path lets
    load_profile name the exact field (``instruments[0].brackets[3].cum_coin``).
    """

    def __init__(self, path: Loc | str, problem: str) -> None:
        super().__init__(problem)
        self.path: Loc = (path,) if isinstance(path, str) else path
        self.problem = problem


class _Frozen(BaseModel):
    """Immutable, strict about unknown fields, Decimals parsed from strings (finite only)."""

    # Integers and booleans are StrictInt/StrictBool field by field: lax mode would read "20"
    # as 20 and "yes" as True, hiding a typo. Decimals stay lax so "0.0002" parses.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Bracket(_Frozen):
    """One maintenance-margin bracket: applies while the position value in coin is in
    [floor_coin, cap_coin)."""

    bracket: StrictInt = Field(ge=1)
    floor_coin: Decimal = Field(ge=0)
    cap_coin: Decimal | None = Field(default=None, gt=0, description="None: no upper bound")
    max_leverage: Decimal = Field(ge=1)
    mmr: Decimal = Field(gt=0, lt=1, description="maintenance margin rate")
    cum_coin: Decimal = Field(ge=0, description="maintenance amount (cum, Bybit mmDeduction)")


class SyntheticBook(_Frozen):
    """Synthetic liquidity quoted around the scenario's perp price, so market orders slip."""

    half_spread_ticks: StrictInt = Field(ge=1)
    levels: StrictInt = Field(ge=1, le=1000)
    level_step_ticks: StrictInt = Field(ge=1)
    contracts_per_level: StrictInt = Field(ge=1, le=10**12)
    # None: stateless, every order sees full depth. A rate: finite depth that fills consume
    # and that refills at this many contracts per simulated second (sim/depth.py).
    refill_contracts_per_s: StrictInt | None = Field(default=None, ge=1, le=10**12)


class Instrument(_Frozen):
    """One tradable inverse contract."""

    symbol: str = Field(min_length=1)
    pair: str = Field(min_length=1)
    base_asset: str
    quote_asset: str
    margin_asset: str
    contract_type: Literal["PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER"]
    delivery_date_ms: StrictInt | None = Field(default=None, gt=0)
    contract_size_usd: Decimal = Field(gt=0, le=1_000_000)
    tick_size: Decimal = Field(ge=Decimal("1e-8"), le=1_000_000)
    lot_size: StrictInt = Field(ge=1, description="contracts step")
    min_qty: StrictInt = Field(ge=1)
    max_qty: StrictInt = Field(ge=1, le=10**12, description="limit order maximum, contracts")
    market_max_qty: StrictInt = Field(ge=1, le=10**12,
                                      description="market order maximum, contracts")
    price_precision: StrictInt = Field(ge=0, le=12)
    quantity_precision: StrictInt = Field(ge=0, le=12)
    funding_cap: Decimal = Field(gt=0, lt=1, description="funding rate is clamped to ±cap")
    funding_interval_hours: StrictInt | None = Field(
        default=None,
        ge=1,
        le=24,
        description="this symbol's funding interval (8, 4, 1 ...); None: the profile's times. "
        "Rates, cap and floor are the 8-hour ones scaled by interval / 8 h",
    )
    impact_margin_usd: Decimal | None = Field(
        default=None,
        gt=0,
        description="impact notional = this × the first bracket's max leverage (Binance)",
    )
    impact_margin_coin: Decimal | None = Field(
        default=None,
        gt=0,
        description="the same in coin (Bybit: 0.1 BTC of initial margin, 10 BTC at 100x)",
    )
    brackets: tuple[Bracket, ...] = Field(min_length=1)
    book: SyntheticBook

    @property
    def is_perpetual(self) -> bool:
        """True for perpetual swaps (which fund); quarterlies deliver instead."""
        return self.contract_type == "PERPETUAL"

    @property
    def impact_notional_usd(self) -> Decimal | None:
        """USD notional whose average fill price defines the impact bid/ask (mechanics §4);
        None when the impact notional is set in coin."""
        if self.impact_margin_usd is None:
            return None
        return self.impact_margin_usd * self.brackets[0].max_leverage

    @property
    def impact_notional_coin(self) -> Decimal | None:
        """Coin notional of the impact bid/ask (Bybit), None when it is set in USD."""
        if self.impact_margin_coin is None:
            return None
        return self.impact_margin_coin * self.brackets[0].max_leverage

    @model_validator(mode="after")
    def _consistent(self) -> Instrument:
        if self.contract_type == "PERPETUAL" and self.delivery_date_ms is not None:
            raise _At(
                "delivery_date_ms",
                "a PERPETUAL has no delivery date: remove delivery_date_ms or set it to null",
            )
        if self.contract_type != "PERPETUAL" and self.delivery_date_ms is None:
            raise _At("delivery_date_ms", f"a {self.contract_type} contract needs a delivery date")
        if (self.impact_margin_usd is None) == (self.impact_margin_coin is None):
            raise _At(
                "impact_margin_usd",
                "set exactly one of impact_margin_usd (Binance) and impact_margin_coin (Bybit)",
            )
        if self.funding_interval_hours is not None and 24 % self.funding_interval_hours:
            raise _At(
                "funding_interval_hours",
                f"{self.funding_interval_hours} h does not divide the day into equal intervals",
            )
        if not self.min_qty <= self.max_qty:
            raise _At("min_qty", f"min_qty {self.min_qty} exceeds max_qty {self.max_qty}")
        if not self.min_qty <= self.market_max_qty:
            raise _At(
                "market_max_qty",
                f"market_max_qty {self.market_max_qty} is below min_qty {self.min_qty}",
            )
        for name in ("min_qty", "max_qty", "market_max_qty"):
            if getattr(self, name) % self.lot_size:
                raise _At(name, f"{name} must be a multiple of lot_size {self.lot_size}")
        # A tick finer than the published price precision could not be quoted on the wire.
        if self.tick_size != self.tick_size.quantize(Decimal(1).scaleb(-self.price_precision)):
            raise _At(
                "tick_size",
                f"tick_size {self.tick_size} needs more than price_precision "
                f"{self.price_precision} decimals",
            )
        _check_brackets(self.brackets)
        return self


def _check_brackets(brackets: tuple[Bracket, ...]) -> None:
    """Sorted, starting at 0, contiguous, numbered 1.., MMR rising, leverage falling, MM < IM."""
    # Order matters: an unsorted table would otherwise be reported as a gap or a misnumbering.
    for i in range(1, len(brackets)):
        if not brackets[i].floor_coin > brackets[i - 1].floor_coin:
            raise _At(
                ("brackets", i, "floor_coin"),
                f"brackets are not sorted by floor_coin: {brackets[i].floor_coin} follows "
                f"{brackets[i - 1].floor_coin} (list them from the smallest floor up)",
            )
    if brackets[0].floor_coin != 0:
        raise _At(("brackets", 0, "floor_coin"), "the first bracket must start at floor_coin 0")
    for i, b in enumerate(brackets):
        last = i == len(brackets) - 1
        if last and b.cap_coin is not None:
            raise _At(
                ("brackets", i, "cap_coin"),
                "the last bracket must have no cap_coin (null: unbounded)",
            )
        if not last:
            nxt = brackets[i + 1].floor_coin
            if b.cap_coin is None:
                raise _At(
                    ("brackets", i, "cap_coin"),
                    f"only the last bracket may be unbounded; expected cap_coin {nxt}",
                )
            if b.cap_coin != nxt:
                what = "leaves a gap before" if b.cap_coin < nxt else "overlaps"
                raise _At(
                    ("brackets", i, "cap_coin"),
                    f"cap_coin {b.cap_coin} {what} the next bracket's floor_coin {nxt} "
                    f"(brackets must be contiguous: cap_coin = next floor_coin)",
                )
        if b.bracket != i + 1:
            raise _At(("brackets", i, "bracket"), f"must be numbered {i + 1}, got {b.bracket}")
        if b.mmr >= 1 / b.max_leverage:
            raise _At(
                ("brackets", i, "mmr"),
                f"mmr {b.mmr} must be below the initial margin rate 1/{b.max_leverage}",
            )
        if i and not b.mmr > brackets[i - 1].mmr:
            raise _At(
                ("brackets", i, "mmr"),
                f"mmr {b.mmr} must rise above the previous bracket's {brackets[i - 1].mmr}",
            )
        if i and not b.max_leverage <= brackets[i - 1].max_leverage:
            raise _At(
                ("brackets", i, "max_leverage"),
                f"max_leverage {b.max_leverage} must not rise above the previous bracket's "
                f"{brackets[i - 1].max_leverage}",
            )


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
            raise _At(
                "maker_rate",
                f"maker_rate {self.maker_rate} is a rebate larger than max_maker_rebate "
                f"{self.max_maker_rebate}",
            )
        if self.maker_rate + self.taker_rate < 0:
            # The venue would pay a trader who trades with themselves.
            raise _At("maker_rate", "maker_rate + taker_rate must not be negative")
        return self


class Funding(_Frozen):
    """Funding schedule and the rate template F = P̄ + clamp(I − P̄, ±clamp), capped."""

    times_utc_hours: tuple[StrictInt, ...] = Field(min_length=1)
    interest_rate: Decimal = Field(ge=-1, le=1, description="I per interval")
    clamp: Decimal = Field(ge=0, lt=1)
    # Bounded so a funding window holds at most a few thousand samples (each one is priced).
    premium_sample_interval_ms: StrictInt = Field(ge=1000, le=8 * HOUR_MS)
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
            raise _At(
                "times_utc_hours",
                f"{list(hours)} must be distinct hours 0..23 in increasing order",
            )
        # next_funding_time_ms assumes one fixed interval, so the schedule must be periodic.
        if 24 % len(hours):
            raise _At(
                "times_utc_hours",
                f"{len(hours)} funding times cannot split the day into equal intervals",
            )
        step = 24 // len(hours)
        if any(h - hours[0] != i * step for i, h in enumerate(hours)):
            raise _At(
                "times_utc_hours",
                f"{list(hours)} are unevenly spaced; {len(hours)} funding times must be "
                f"{step} h apart",
            )
        if self.interval_ms % self.premium_sample_interval_ms:
            raise _At(
                "premium_sample_interval_ms",
                f"{self.premium_sample_interval_ms} ms does not divide the funding interval "
                f"{self.interval_ms} ms",
            )
        return self

    def next_funding_time_ms(self, now_ms: int) -> int:
        """The first funding time strictly after ``now_ms`` (epoch ms, UTC)."""
        offset = self.times_utc_hours[0] * HOUR_MS
        k = (now_ms - offset) // self.interval_ms + 1
        return offset + k * self.interval_ms


class Mark(_Frozen):
    """How the mark price is made (mechanics §3)."""

    method: Literal["median3", "fair_price"]
    # Bounded: every exact mark sums basis_samples terms, so 1e9 would exhaust memory.
    basis_samples: StrictInt = Field(ge=1, le=3600,
                                     description="moving average length of (mid − index)")
    basis_sample_interval_ms: StrictInt = Field(ge=1000, le=HOUR_MS)


class Liquidation(_Frozen):
    """Liquidation style, rounding, partial step-down, ADL ranking, margin-call threshold."""

    style: Literal["mm_at_liquidation_price", "mm_at_entry"]
    include_exit_fee_in_mm: StrictBool
    include_funding_in_mm: StrictBool
    partial: StrictBool = Field(description="step down to a lower bracket before a full takeover")
    bankruptcy_price_rounding: Literal["none", "tick_conservative"]
    liquidation_price_rounding: Literal["none", "tick_conservative"]
    adl_ranking: Literal["profit_times_leverage", "bitmex", "binance"] = Field(
        description="binance: max(0,UPNL)/max(1,wallet) x MM/(wallet+UPNL); bitmex: PnL% x "
        "|mark value|/(mark value - bankrupt value); profit_times_leverage: PnL% x value/balance"
    )
    margin_call_ratio: Decimal = Field(gt=0, lt=1)
    cross_fee_to_close: StrictBool = Field(
        default=False,
        description="Bybit cross: the bankruptcy price leaves the taker fee of closing there "
        "(BP = (1 + fee)·Q / (Q/EP + available), long) and MM holds that fee",
    )
    adl_counterparty_fee: Literal["none", "maker"] = Field(
        default="none", description="fee charged to positions closed by ADL (Bybit: maker)"
    )


class Rounding(_Frozen):
    """How coin amounts are quantised at every ledger posting."""

    coin_step: Decimal = Field(ge=Decimal("1e-12"), le=1,
                               description="1e-8 is a satoshi; finer steps exceed Decimal's "
                               "28 digits on large balances")
    coin_rule: RoundingRule
    contract_value_floor: StrictBool = Field(
        description="BitMEX: floor each contract's coin value to coin_step before × quantity"
    )
    entry_lot_contracts: StrictInt | None = Field(
        default=None,
        ge=1,
        description="BitMEX: average entry from per-lot coin values (lot/price) rounded to "
        "coin_step, floored for longs and rounded for shorts; None: exact harmonic mean",
    )


class PriceBand(_Frozen):
    """Binance PERCENT_PRICE: a limit buy at most mark × up, a limit sell at least mark × down;
    a market order is refused when the best counter price is outside that band."""

    multiplier_up: Decimal = Field(gt=1)
    multiplier_down: Decimal = Field(gt=0, lt=1)


class Profile(_Frozen):
    """A whole venue: instruments, fees, funding, mark, liquidation, rounding, insurance fund."""

    name: str = Field(min_length=1)
    venue: str
    description: str = ""
    dialect: str = Field(default="binance_coinm", min_length=1, description="the wire the "
                         "venue speaks: perpsim's own clients use it by default (api/dialects.py)")
    bracket_cum: Literal["deduction", "none"] = Field(
        description="deduction: cum_n = floor_n·(MMR_n − MMR_n−1) + cum_n−1; none: all zero"
    )
    fees: Fees
    funding: Funding
    mark: Mark
    liquidation: Liquidation
    rounding: Rounding
    insurance_fund_start: dict[str, Decimal]
    price_band: PriceBand | None = Field(default=None, description="None: no price band")
    unfillable_tif: Literal["reject", "cancel"] = Field(
        default="reject", description="a post-only order that would take or a FOK order that "
        "cannot fill in full: 'reject' refuses it before it exists (Binance -5022 / -5021); "
        "'cancel' accepts it and cancels it at once with its reason (Bybit)")
    instruments: tuple[Instrument, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        seen: set[str] = set()
        for n, inst in enumerate(self.instruments):
            if inst.symbol in seen:
                raise _At(("instruments", n, "symbol"), f"duplicate symbol {inst.symbol!r}")
            seen.add(inst.symbol)
        for coin, balance in self.insurance_fund_start.items():
            if balance < 0:
                raise _At(("insurance_fund_start", coin), f"balance {balance} is negative")
        for n, inst in enumerate(self.instruments):
            if inst.margin_asset not in self.insurance_fund_start:
                raise _At(
                    "insurance_fund_start",
                    f"no balance for {inst.margin_asset} (margin asset of {inst.symbol})",
                )
            for i, b in enumerate(inst.brackets):
                expected = _expected_cum(self.bracket_cum, inst.brackets, i)
                if b.cum_coin != expected:
                    rule = (
                        "floor_coin × (mmr − previous mmr) + previous cum_coin"
                        if self.bracket_cum == "deduction"
                        else "0 for every bracket"
                    )
                    raise _At(
                        ("instruments", n, "brackets", i, "cum_coin"),
                        f"cum_coin {b.cum_coin} is inconsistent: bracket_cum "
                        f"{self.bracket_cum!r} ({rule}) gives {expected}",
                    )
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
    """The maintenance amount bracket ``i`` must carry under ``rule`` (mechanics §2)."""
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
    if path.suffix != ".json" and not path.is_file():
        path = PROFILE_DIR / f"{name_or_path}.json"
        if not path.is_file():
            text, known = str(name_or_path), bundled_profiles()
            raise ProfileError(f"unknown profile {text!r}{did_you_mean(text, known)}; "
                               f"bundled: {', '.join(known)}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from None
    problem = too_deep(text)
    if problem is not None:
        raise ProfileError(f"{path}: not a profile: {problem}")
    try:
        # Decimal for JSON fractions keeps 0.1 exact; NaN/Infinity tokens and duplicate keys are
        # refused here because json would otherwise accept them silently.
        raw = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise ProfileError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except _JSONProblem as exc:
        raise ProfileError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ProfileError(
            f"{path}: a profile must be a JSON object {{...}}, got a JSON {_json_kind(raw)}"
        )
    try:
        return Profile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ProfileError(f"{path}: {_describe(first, raw)}{more}") from None


class _JSONProblem(ValueError):
    """A JSON construct the profile format refuses (NaN, Infinity, duplicate keys)."""


def _refuse_constant(token: str) -> Any:
    raise _JSONProblem(
        f"{token} is not a number a profile accepts (write finite decimals as strings, "
        f'e.g. "0.0002")'
    )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JSONProblem(f"duplicate key {key!r} in one object")
        out[key] = value
    return out


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _describe(error: ErrorDetails, raw: dict[str, Any]) -> str:
    """One pydantic error as 'field PATH (SYMBOL): problem' for a user editing the file."""
    loc: Loc = tuple(error["loc"])
    problem = error["msg"]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _At):
        loc, problem = loc + cause.path, cause.problem
    kind = error["type"]
    if kind == "missing":
        problem = "required field is missing"
    elif kind == "extra_forbidden":
        problem = "unknown field (not part of the profile format)"
        allowed = _allowed_fields(loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if guess:
            problem += f"; did you mean {guess[0]!r}?"
        elif allowed:
            problem += f"; allowed here: {', '.join(allowed)}"
    elif kind in ("decimal_type", "decimal_parsing"):
        problem = (
            f'must be a decimal number written as a string (e.g. "0.0002"), got {error["input"]!r}'
        )
    elif kind != "value_error" and not isinstance(error["input"], dict | list):
        problem = f"{problem.replace('Input should be', 'must be', 1)}, got {error['input']!r}"
    where = _format_loc(loc) or "(top level)"
    symbol = _symbol_at(loc, raw)
    return f"field {where}{f' ({symbol})' if symbol else ''}: {problem}"


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _symbol_at(loc: Loc, raw: dict[str, Any]) -> str | None:
    """The symbol of the instrument an error is in, so the user finds the right block."""
    if len(loc) >= 2 and loc[0] == "instruments" and isinstance(loc[1], int):
        instruments = raw.get("instruments")
        if isinstance(instruments, list) and loc[1] < len(instruments):
            entry = instruments[loc[1]]
            if isinstance(entry, dict) and isinstance(entry.get("symbol"), str):
                return entry["symbol"]
    return None


def _allowed_fields(loc: Loc) -> list[str]:
    """Field names of the model found at ``loc`` (for 'did you mean' on an unknown field)."""
    model = _model_in(Profile)
    for part in loc:
        if model is None:
            return []
        if isinstance(part, str):
            field = model.model_fields.get(part)
            if field is None:
                return []
            model = _model_in(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation: X, tuple[X, ...], dict[str, X] or X | None give X."""
    while not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        args = [a for a in args if a is not type(None)]
        if not args:
            return None
        annotation = args[-1]
    return annotation
