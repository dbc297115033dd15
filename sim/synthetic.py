"""Seeded synthetic price paths: GBM with jumps, scheduled shocks and basis regimes.

A generator spec (JSON, validated by ``GeneratorSpec``) describes one pair. The index is a
geometric Brownian motion with Poisson jumps and scheduled shocks (a crash or squeeze spread
evenly in log space over a window); the perp is ``index × (1 + basis)``, where the basis is an
Ornstein-Uhlenbeck process reverting to a regime mean that can switch at given hours. The
engine derives funding from the perp's premium over the index, so a positive basis makes
positive funding (longs pay shorts) and a negative one negative funding.

Determinism: everything comes from ``numpy.random.Generator(PCG64(child))`` for three children
of ``SeedSequence(seed)`` (diffusion, jumps, basis), so the same spec and seed give identical
arrays, and changing the jump settings does not reshuffle the diffusion noise. Generation is
vectorised and works in place: a year at one-second resolution (31.5 M rows) takes a few
seconds and about three arrays of memory (times, index, perp).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from perpsim.sim.errors import ScenarioError

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
YEAR_MS = 365 * DAY_MS  # crypto trades every day: annual vol and drift use a 365-day year
DEFAULT_START = "2024-01-01T00:00:00Z"
# A guard against specs that would need tens of GB: 100 M rows is about 3 years at 1 s.
MAX_ROWS = 100_000_000
# The OU recurrence is solved in chunks over which the decay factor shrinks by at most e^-30,
# so the rescaled partial sums stay far inside float64's range and precision.
_MAX_DECAY = 30.0

FloatArray = np.ndarray
IntArray = np.ndarray


def parse_time_ms(value: str | int, what: str = "time") -> int:
    """An ISO 8601 UTC time (``Z``, ``+00:00`` or no offset) or epoch ms, as epoch ms."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an ISO 8601 UTC time or epoch milliseconds")
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        # The contract says times are UTC; a time without an offset is read as UTC.
        moment = moment.replace(tzinfo=UTC)
    elif moment.utcoffset() != UTC.utcoffset(None):
        raise ValueError(f"{what} {value!r} must be UTC (end in Z)")
    return int(moment.timestamp() * 1000)


def format_time_ms(t_ms: int) -> str:
    """Epoch ms as ISO 8601 UTC, seconds resolution (milliseconds only when non-zero)."""
    moment = datetime.fromtimestamp(t_ms / 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{t_ms % 1000:03d}Z" if t_ms % 1000 else f"{text}Z"


class _Spec(BaseModel):
    """Immutable, unknown fields refused, NaN and infinity refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Jumps(_Spec):
    """Poisson jumps of the index: log-size ~ Normal(mean, stdev)."""

    rate_per_day: float = Field(ge=0, le=10_000)
    mean: float = Field(default=0.0, ge=-1, le=1)
    stdev: float = Field(default=0.0, ge=0, le=1)


class Shock(_Spec):
    """A scheduled move of the index: ``move`` (−0.35 = a 35 % fall) spread over a window."""

    at_hours: float = Field(ge=0)
    over_hours: float = Field(gt=0)
    move: float = Field(gt=-0.99, le=100)


class Regime(_Spec):
    """From ``from_hours`` on, the basis reverts to ``mean`` (perp / index − 1); ``vol``, when
    given, replaces the basis's stationary stdev in this regime."""

    from_hours: float = Field(ge=0)
    mean: float = Field(gt=-0.5, lt=0.5)
    vol: float | None = Field(default=None, ge=0, le=0.2)


class Basis(_Spec):
    """Ornstein-Uhlenbeck basis: reversion speed per hour, ``vol`` = stationary stdev."""

    regimes: tuple[Regime, ...] = Field(min_length=1)
    reversion_per_hour: float = Field(gt=0, le=3600)
    vol: float = Field(ge=0, le=0.2)

    @model_validator(mode="after")
    def _ordered(self) -> Basis:
        hours = [r.from_hours for r in self.regimes]
        if hours[0] != 0:
            raise ValueError("the first regime must start at from_hours 0")
        if any(b <= a for a, b in itertools.pairwise(hours)):
            raise ValueError("regimes must be in strictly increasing from_hours order")
        return self


# The documented default basis: a small premium (1 bp, the usual +0.01 %/8 h funding), pulled
# back with a half-life of ~20 minutes, typically within ±2 bp. Also used to derive a perp for
# CSV files that only give the index.
DEFAULT_BASIS = Basis(
    regimes=(Regime(from_hours=0, mean=0.0001),), reversion_per_hour=2.0, vol=0.0002
)


class FundingPoint(_Spec):
    """An explicit funding rate settled at ``at_hours`` after start, or at ``time``."""

    at_hours: float | None = Field(default=None, ge=0)
    time: str | None = None
    rate: float = Field(ge=-1, le=1)

    @model_validator(mode="after")
    def _one_time(self) -> FundingPoint:
        if (self.at_hours is None) == (self.time is None):
            raise ValueError("give exactly one of at_hours or time")
        if self.time is not None:
            parse_time_ms(self.time)
        return self


class GeneratorSpec(_Spec):
    """A seeded synthetic scenario for one pair (see the module docstring for the model)."""

    generator: Literal["gbm_jumps"]
    description: str = ""
    pair: str = Field(default="BTCUSD", pattern=r"^[A-Z0-9]{2,20}$")
    start: str | int = DEFAULT_START
    days: float = Field(gt=0, le=3660)
    resolution_ms: int = Field(default=60_000, ge=1, le=DAY_MS)
    start_price: float = Field(gt=0, lt=1e9)
    vol_annual: float = Field(ge=0, le=20)
    drift_annual: float = Field(default=0.0, ge=-20, le=20)
    jumps: Jumps | None = None
    shocks: tuple[Shock, ...] = ()
    basis: Basis = DEFAULT_BASIS
    funding_rates: tuple[FundingPoint, ...] | None = None

    @field_validator("start")
    @classmethod
    def _start_parses(cls, value: str | int) -> str | int:
        parse_time_ms(value, "start")
        return value

    @property
    def start_ms(self) -> int:
        """The spec's start as epoch ms."""
        return parse_time_ms(self.start, "start")

    @model_validator(mode="after")
    def _inside(self) -> GeneratorSpec:
        hours = self.days * 24
        for i, shock in enumerate(self.shocks):
            if shock.at_hours >= hours:
                raise ValueError(f"shocks[{i}] at_hours {shock.at_hours} is after the end")
        for i, regime in enumerate(self.basis.regimes):
            if regime.from_hours >= hours:
                raise ValueError(f"basis regime {i} from_hours is after the end")
        return self


@dataclass(frozen=True, eq=False)
class GeneratedPath:
    """Raw arrays of one generated pair (sim.scenario wraps them in a PricePath)."""

    times_ms: IntArray
    index: FloatArray
    perp: FloatArray
    funding_times_ms: IntArray
    funding_rates: FloatArray


def parse_spec(data: object, source: str) -> GeneratorSpec:
    """Validate a decoded JSON spec, or raise one ScenarioError naming the file and fields."""
    try:
        return GeneratorSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err["loc"]) or "spec"
            problems.append(f"field {where}: {err['msg']}")
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise ScenarioError(f"{source}: {'; '.join(problems)}{more}") from None


def _rows_after(t_rel_ms: float, resolution_ms: int) -> int:
    """The first row index k with k × resolution > t (a window's first increment)."""
    return math.floor(t_rel_ms / resolution_ms) + 1


def ou_in_place(x: FloatArray, log_a: float | FloatArray) -> None:
    """Solve x[k] = a[k]·x[k−1] + x[k] in place (x[0] is the initial state).

    ``log_a`` is log of the decay per step: a scalar for a regular grid, else one value per
    row (entry 0 unused). Chunks keep the rescaling factor below e^30 (see ``_MAX_DECAY``).
    """
    n = len(x)
    if n < 2:
        return
    if isinstance(log_a, np.ndarray):
        step = np.maximum(log_a[1:], -_MAX_DECAY)
        cum = np.concatenate(([0.0], np.cumsum(-step)))  # cum[k] = total decay up to row k
    else:
        step_decay = min(-float(log_a), _MAX_DECAY)
        chunk = n - 1 if step_decay == 0 else max(1, int(_MAX_DECAY // step_decay))
        chunk = min(chunk, n - 1)
        decay_full = np.arange(1, chunk + 1, dtype=np.float64) * step_decay
        grow_full, shrink_full = np.exp(decay_full), np.exp(-decay_full)
    i = 0
    while i < n - 1:
        if isinstance(log_a, np.ndarray):
            j = int(np.searchsorted(cum, cum[i] + _MAX_DECAY, side="right")) - 1
            j = min(max(j, i + 1), n - 1)
            decay = cum[i + 1 : j + 1] - cum[i]
            grow, shrink = np.exp(decay), np.exp(-decay)
        else:
            j = min(i + chunk, n - 1)
            grow, shrink = grow_full[: j - i], shrink_full[: j - i]
        seg = x[i + 1 : j + 1]
        seg *= grow
        np.cumsum(seg, out=seg)
        seg += x[i]
        seg *= shrink
        i = j


def _streams(seed: int) -> list[np.random.Generator]:
    """Independent PCG64 generators for diffusion, jumps and basis."""
    children = np.random.SeedSequence(seed).spawn(3)
    return [np.random.Generator(np.random.PCG64(child)) for child in children]


def basis_in_place(
    out: FloatArray,
    times_ms: IntArray,
    basis: Basis,
    rng: np.random.Generator,
    step_ms: int | None = None,
) -> None:
    """Fill ``out`` with the OU basis at ``times_ms``; ``step_ms`` when the grid is regular."""
    n = len(times_ms)
    if n == 0:
        return
    t0 = int(times_ms[0])
    dt_h: float | FloatArray
    if step_ms is not None:
        # Regular grid: regime rows by arithmetic, no n-sized temporaries.
        starts = [math.ceil(r.from_hours * HOUR_MS / step_ms) for r in basis.regimes]
        dt_h = step_ms / HOUR_MS
    else:
        starts = [
            int(np.searchsorted(times_ms, t0 + r.from_hours * HOUR_MS, side="left"))
            for r in basis.regimes
        ]
        dt_h = np.diff(times_ms, prepend=times_ms[:1]).astype(np.float64) / HOUR_MS
    log_a = -basis.reversion_per_hour * dt_h
    pull = -np.expm1(log_a)  # 1 − a: how far one step moves toward the regime mean
    # Exact OU discretisation: innovation stdev vol·sqrt(1 − a²) keeps the stationary stdev
    # at ``vol``; each regime pulls toward its mean with weight 1 − a.
    spread = np.sqrt(-np.expm1(2 * log_a))
    if n > 1:
        rng.standard_normal(out=out[1:])
    out[0] = basis.regimes[0].mean
    bounds = [*starts[1:], n]
    for regime, lo, hi in zip(basis.regimes, starts, bounds, strict=True):
        lo, hi = max(lo, 1), min(hi, n)
        if hi <= lo:
            continue
        vol = basis.vol if regime.vol is None else regime.vol
        seg = out[lo:hi]
        seg *= vol * (spread if np.ndim(spread) == 0 else spread[lo:hi])
        seg += (pull if np.ndim(pull) == 0 else pull[lo:hi]) * regime.mean
    ou_in_place(out, log_a)


def generate(
    spec: GeneratorSpec,
    seed: int = 0,
    *,
    start_ms: int | None = None,
    days: float | None = None,
    resolution_ms: int | None = None,
) -> GeneratedPath:
    """Generate the spec's path; ``start_ms``/``days``/``resolution_ms`` override the spec."""
    start = spec.start_ms if start_ms is None else int(start_ms)
    span_days = spec.days if days is None else float(days)
    res = spec.resolution_ms if resolution_ms is None else int(resolution_ms)
    if not (span_days > 0 and res >= 1):
        raise ScenarioError(f"days must be > 0 and resolution_ms >= 1 (got {span_days}, {res})")
    span_ms = round(span_days * DAY_MS)
    n = span_ms // res + 1
    if n < 2:
        raise ScenarioError(f"{span_days} days at {res} ms gives fewer than two rows")
    if n > MAX_ROWS:
        raise ScenarioError(f"{n:,} rows is too many (limit {MAX_ROWS:,}); lower the resolution")
    diffusion, jump_rng, basis_rng = _streams(seed)

    times = np.arange(n, dtype=np.int64)
    times *= res
    times += start

    # index[k] first holds the log-return into row k, then cumsum + exp turn it into prices.
    index = np.empty(n, dtype=np.float64)
    dt_years = res / YEAR_MS
    sigma = spec.vol_annual
    diffusion.standard_normal(out=index[1:])
    index[1:] *= sigma * math.sqrt(dt_years)
    index[1:] += (spec.drift_annual - 0.5 * sigma * sigma) * dt_years
    index[0] = 0.0  # so row 0 is exactly the start price after exp and scaling
    for shock in spec.shocks:
        lo = _rows_after(shock.at_hours * HOUR_MS, res)
        hi = _rows_after((shock.at_hours + shock.over_hours) * HOUR_MS, res)
        lo, hi = min(lo, n), min(max(hi, lo + 1), n)
        if hi > lo:
            index[lo:hi] += math.log1p(shock.move) / (hi - lo)
    if spec.jumps is not None and spec.jumps.rate_per_day > 0:
        count = int(jump_rng.poisson(spec.jumps.rate_per_day * (n - 1) * res / DAY_MS))
        where = jump_rng.integers(1, n, size=count)
        sizes = jump_rng.normal(spec.jumps.mean, spec.jumps.stdev, size=count)
        np.add.at(index, where, sizes)
    # Extreme specs may overflow; the check below turns that into one clear error.
    with np.errstate(over="ignore", invalid="ignore"):
        np.cumsum(index, out=index)
        np.exp(index, out=index)
        index *= spec.start_price
        perp = np.empty(n, dtype=np.float64)
        basis_in_place(perp, times, spec.basis, basis_rng, step_ms=res)
        perp += 1.0
        perp *= index
    if not (np.isfinite(index).all() and (index > 0).all() and (perp > 0).all()):
        raise ScenarioError("generated prices left the positive finite range; lower vol or moves")

    funding_t, funding_r = _funding_points(spec, start, int(times[-1]))
    return GeneratedPath(times, index, perp, funding_t, funding_r)


def _funding_points(spec: GeneratorSpec, start: int, end: int) -> tuple[IntArray, FloatArray]:
    """The explicit funding rates inside [start, end], sorted; empty when none are given."""
    points: dict[int, float] = {}
    for p in spec.funding_rates or ():
        if p.time is not None:
            t = parse_time_ms(p.time)
        else:
            assert p.at_hours is not None
            t = start + round(p.at_hours * HOUR_MS)
        if start <= t <= end:
            if t in points:
                raise ScenarioError(f"two funding rates at {format_time_ms(t)}")
            points[t] = p.rate
    ordered = sorted(points)
    return (
        np.array(ordered, dtype=np.int64),
        np.array([points[t] for t in ordered], dtype=np.float64),
    )


def derive_perp(times_ms: IntArray, index: FloatArray, seed: int) -> FloatArray:
    """A perp for an index-only path: ``index × (1 + basis)`` with ``DEFAULT_BASIS``."""
    perp = np.empty(len(index), dtype=np.float64)
    basis_in_place(perp, times_ms, DEFAULT_BASIS, _streams(seed)[2])
    perp += 1.0
    perp *= index
    return perp
