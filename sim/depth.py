"""Finite synthetic depth: the market maker's quotes get eaten by fills and come back over time.

By default (``refill_contracts_per_s`` unset in the profile's ``book`` or the scenario's) the
synthetic maker is stateless: every order sees full depth (sim/book.py). With a refill rate the
book is finite, so a big seller (the liquidation engine) walks the bids down, moves the last
price and the book mid, and the mark follows where the venue's mark includes them:

* **What is eaten.** Each side keeps one number, the contracts consumed from its top (best level
  first). Level k of ``levels`` holds ``contracts_per_level``; with e contracts eaten the side
  quotes from level e // c on, that level holding c − e % c. The levels stay anchored to the
  reference (the tape's perp price), so the hole moves with the tape. Reading costs O(levels
  touched), never O(orders or accounts).
* **Refill.** The hole closes at ``refill_contracts_per_s`` per simulated second, counted in
  whole contracts from the last consumption: eaten(t) = max(0, e₀ − ⌊rate·(t − t₀)/1000⌋).
  Deterministic: a function of the fills and the clock only.
* **The touch.** While a side is eaten, its best remaining quote is where the next trade would
  print (arbitrageurs trade there): the engine's last price (sim/exchange.py ``last_price``).
* **The mid's history.** The book mid moves by half the hole's distance: (k_asks − k_bids) ·
  level_step · tick / 2 from the reference, k = levels eaten. The mark's P2 averages the mid
  minus the index at past sample instants; ``mid_shift_average`` gives the average of that
  shift over the same samples, from the consumption history kept for the averaging window.
* **Exhausted.** When a side has no level left, the deepest level's price is its backstop: the
  liquidation engine's remainder fills there (the maker stands behind its deepest quote), so a
  liquidation always completes — at the worst price the book shows.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from perpsim.sim.errors import ScenarioError
from perpsim.sim.profile import Profile, SyntheticBook

BookSide = Literal["bids", "asks"]
SIDES: tuple[BookSide, BookSide] = ("bids", "asks")


@dataclass(slots=True)
class _SideState:
    """One side: contracts eaten just after ``at_ms``, and the history kept for averaging."""

    eaten: int = 0
    at_ms: int = 0
    history_ms: list[int] = field(default_factory=list)  # consumption instants, ascending
    history_eaten: list[int] = field(default_factory=list)  # eaten just after each


class FiniteDepth:
    """The consumed-and-refilling state of one book's synthetic quotes (both sides)."""

    def __init__(self, spec: SyntheticBook, tick_usd: Decimal) -> None:
        assert spec.refill_contracts_per_s is not None
        self.spec = spec
        self.tick_usd = tick_usd
        self.rate_per_s = spec.refill_contracts_per_s
        self.capacity = spec.levels * spec.contracts_per_level
        self._sides = {side: _SideState() for side in SIDES}
        self.version = 0  # bumped by every consumption

    # ---- state at a time ------------------------------------------------------------------
    def eaten(self, side: BookSide, now_ms: int) -> int:
        """Contracts missing from the side's top at ``now_ms`` (after refill)."""
        state = self._sides[side]
        return _refilled(state.eaten, state.at_ms, now_ms, self.rate_per_s)

    def eaten_at(self, side: BookSide, t_ms: int) -> int:
        """Contracts missing at a past instant ``t_ms`` (from the kept history)."""
        state = self._sides[side]
        i = bisect_right(state.history_ms, t_ms) - 1
        if i < 0:
            return 0
        return _refilled(state.history_eaten[i], state.history_ms[i], t_ms, self.rate_per_s)

    def levels_eaten(self, side: BookSide, now_ms: int) -> int:
        """Whole levels gone from the top (``levels`` when the side is exhausted)."""
        return min(self.eaten(side, now_ms) // self.spec.contracts_per_level, self.spec.levels)

    def quotes(self, side: BookSide, now_ms: int) -> tuple[int, int]:
        """(first level still quoting, contracts left on it); (levels, 0) when exhausted."""
        e = self.eaten(side, now_ms)
        c = self.spec.contracts_per_level
        k = e // c
        if k >= self.spec.levels:
            return self.spec.levels, 0
        return k, c - e % c

    def available(self, side: BookSide, now_ms: int) -> int:
        """Synthetic contracts the side still quotes."""
        return max(0, self.capacity - self.eaten(side, now_ms))

    def full_at_ms(self, side: BookSide) -> int:
        """When the side is whole again (its last consumption time if it already is)."""
        state = self._sides[side]
        if state.eaten <= 0:
            return state.at_ms
        return state.at_ms + -(-state.eaten * 1000 // self.rate_per_s)

    # ---- change ------------------------------------------------------------------------------
    def consume(self, side: BookSide, qty: int, now_ms: int) -> None:
        """``qty`` synthetic contracts traded on ``side`` at ``now_ms`` (from the top)."""
        if qty <= 0:
            return
        state = self._sides[side]
        state.eaten = min(self.capacity, self.eaten(side, now_ms) + qty)
        state.at_ms = now_ms
        if state.history_ms and state.history_ms[-1] == now_ms:
            state.history_eaten[-1] = state.eaten
        else:
            state.history_ms.append(now_ms)
            state.history_eaten.append(state.eaten)
        self.version += 1

    def forget_before(self, t_ms: int) -> None:
        """Drop history no sample at or after ``t_ms`` needs (keeps the entry in force then)."""
        for state in self._sides.values():
            i = bisect_right(state.history_ms, t_ms) - 1
            if i > 0:
                del state.history_ms[:i]
                del state.history_eaten[:i]

    # ---- the mid ---------------------------------------------------------------------------
    def mid_shift_at(self, t_ms: int) -> Decimal:
        """Book mid minus the reference at ``t_ms``: half the difference of the eaten levels."""
        c, levels = self.spec.contracts_per_level, self.spec.levels
        k_bids = min(self.eaten_at("bids", t_ms) // c, levels - 1)
        k_asks = min(self.eaten_at("asks", t_ms) // c, levels - 1)
        return (k_asks - k_bids) * self.spec.level_step_ticks * self.tick_usd / 2

    def mid_shift_average(self, last_sample_ms: int, step_ms: int, n: int) -> Decimal:
        """Average of ``mid_shift_at`` over the n samples ending at ``last_sample_ms``."""
        first = last_sample_ms - (n - 1) * step_ms
        if all(self.full_at_ms(side) < first for side in SIDES):
            return Decimal(0)  # every sample in the window sees full depth
        self.forget_before(first)
        total = sum((self.mid_shift_at(first + j * step_ms) for j in range(n)), Decimal(0))
        return total / n

    def quiet_after_ms(self, sample_step_ms: int, n_samples: int) -> int:
        """From when on the depth no longer moves anything: both sides whole and out of the
        mark's averaging window."""
        return max(self.full_at_ms(side) for side in SIDES) + sample_step_ms * n_samples


def _refilled(eaten: int, at_ms: int, now_ms: int, rate_per_s: int) -> int:
    if eaten <= 0 or now_ms <= at_ms:
        return max(eaten, 0)
    return max(0, eaten - rate_per_s * (now_ms - at_ms) // 1000)


# ---- a scenario's ``book`` section: per-symbol changes of the profile's synthetic book -------

class BookOverride(BaseModel):
    """Fields of an instrument's synthetic ``book`` a scenario replaces (others: the profile's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    half_spread_ticks: StrictInt | None = Field(default=None, ge=1)
    levels: StrictInt | None = Field(default=None, ge=1, le=1000)
    level_step_ticks: StrictInt | None = Field(default=None, ge=1)
    contracts_per_level: StrictInt | None = Field(default=None, ge=1, le=10**12)
    refill_contracts_per_s: StrictInt | None = Field(default=None, ge=1, le=10**12)


def parse_books(raw: object, source: str) -> dict[str, BookOverride]:
    """A scenario's ``book`` section: {symbol: {field: value}}, or one ScenarioError naming
    the field."""
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(f"{source}: field book must be an object of symbol → book fields, "
                            "e.g. {\"BTCUSD_PERP\": {\"refill_contracts_per_s\": 500}}")
    out: dict[str, BookOverride] = {}
    for symbol, fields in raw.items():
        try:
            out[symbol] = BookOverride.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(["book", symbol, *(str(p) for p in err["loc"])])
            raise ScenarioError(f"{source}: field {where}: {err['msg']}") from None
    return out


def with_books(profile: Profile, books: Mapping[str, BookOverride], source: str) -> Profile:
    """``profile`` with the scenario's book changes applied (unknown symbols refused)."""
    unknown = sorted(set(books) - {i.symbol for i in profile.instruments})
    if unknown:
        raise ScenarioError(f"{source}: field book.{unknown[0]}: {profile.name} has no such "
                            f"instrument ({', '.join(i.symbol for i in profile.instruments)})")
    instruments = []
    for inst in profile.instruments:
        change = books.get(inst.symbol)
        if change is not None:
            fields = change.model_dump(exclude_none=True)
            book = SyntheticBook.model_validate(inst.book.model_dump() | fields)
            inst = inst.model_copy(update={"book": book})
        instruments.append(inst)
    return profile.model_copy(update={"instruments": tuple(instruments)})
