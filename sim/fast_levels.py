"""Float bounds on a position's trigger prices, for the event-skipping filter only.

The exact prices (``sim.liquidation_price``, Fractions) are what decides; solving them for every
position at every re-plan cost more than everything else in a long run, and the watcher and the
liquidation check only need to know *where to look*. So the same closed forms are evaluated in
float64 with a bound on their rounding error, and the answer is pushed outwards by that bound:

* ``liquidation_level`` / ``call_level`` — a price reached no later than the exact rounded
  liquidation (or margin-call) price of ``sim.risk.liquidation_prices``: a long's is ≥ it, a
  short's ≤ it, so a crossing is never missed;
* ``ratio_boundary`` — an interval holding the mark where the margin ratio (MM / margin balance,
  as ``sim.risk.position_risk`` computes it) reaches the margin-call threshold, so a position
  whose mark is outside it needs no margin-call work.

Where a bracket choice is too close to call in float, the functions return ``None`` and the
caller falls back to exact arithmetic. Sentinels: a long's level of +inf means "reached at every
price", −inf "never"; a short's +inf means "never". The error model is deliberately generous
(every input and operation costs a few units of 2⁻⁵²), so levels are off by ~1e-15 relative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from perpsim.sim.margin import brackets_value
from perpsim.sim.profile import Instrument, Profile

U = 2.0**-52  # twice the unit roundoff: every error term below is a multiple of it
INF = math.inf
Table = tuple[tuple[float, float, float, float], ...]  # (floor, cap (inf: last), mmr, cum)


def _table(inst: Instrument, scale: Decimal = Decimal(1), divide: Decimal | None = None) -> Table:
    """The instrument's brackets as floats, MMR and cum multiplied by ``scale`` (exactly as
    ``sim.risk`` scales them) or divided by ``divide``."""
    rows = []
    table = brackets_value(inst.brackets)
    for i, b in enumerate(table):
        mmr, cum = b.mmr * scale, b.cum_coin * scale
        if divide is not None:
            mmr, cum = b.mmr / divide, b.cum_coin / divide
        cap = INF if b.cap_coin is None or i == len(table) - 1 else float(b.cap_coin)
        rows.append((float(b.floor_coin), cap, float(mmr), float(cum)))
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class Solver:
    """Per-instrument constants of the float solvers (built once per exchange and symbol)."""

    style: str
    contract_size: float
    tick: float
    tick_rounding: bool
    threshold: float  # margin-call ratio
    exit_fee: float  # taker rate counted in MM (0 if the profile does not)
    close_fee: float  # Bybit cross: taker fee left at bankruptcy and held in MM (0: none)
    funding_in_mm: bool
    table: Table
    call_table: Table  # MMR and cum × 1/threshold: the margin-call price's brackets
    ratio_table: Table  # MMR and cum ÷ threshold: where MM / balance = threshold (MM at mark)
    mm_positive: bool  # MM > 0 at every positive value (so the ratio test is one-sided)

    @classmethod
    def of(cls, profile: Profile, inst: Instrument) -> Solver:
        """The solver constants of ``inst`` on ``profile``."""
        liq = profile.liquidation
        ratio = liq.margin_call_ratio
        table = brackets_value(inst.brackets)
        positive = table[0].cum_coin == 0 and all(
            b.cum_coin < b.floor_coin * b.mmr for b in table[1:])
        return cls(
            style=liq.style, contract_size=float(inst.contract_size_usd),
            tick=float(inst.tick_size),
            tick_rounding=liq.liquidation_price_rounding == "tick_conservative",
            threshold=float(ratio),
            exit_fee=float(profile.fees.taker_rate) if liq.include_exit_fee_in_mm else 0.0,
            close_fee=float(profile.fees.taker_rate) if liq.cross_fee_to_close else 0.0,
            funding_in_mm=liq.include_funding_in_mm and inst.is_perpetual,
            table=_table(inst), call_table=_table(inst, Decimal(1) / ratio),
            ratio_table=_table(inst, divide=ratio), mm_positive=positive)

    # ---- the three answers ---------------------------------------------------------------------
    def liquidation_level(self, qty: int, entry: float, margin: float,
                          rate: float, *, cross: bool = False) -> float | None:
        """Bound on the rounded liquidation price (long: ≥ it, short: ≤ it); None: use exact."""
        return self._level(qty, entry, margin, rate, self.table, cross)

    def call_level(self, qty: int, entry: float, margin: float, rate: float, *,
                   cross: bool = False) -> float | None:
        """Bound on the rounded margin-call price (MMR and cum scaled by 1 / threshold)."""
        return self._level(qty, entry, margin, rate, self.call_table, cross)

    def ratio_boundary(self, qty: int, entry: float, margin: float,
                       rate: float, *, cross: bool = False) -> tuple[float, float] | None:
        """(lo, hi) around the mark where MM / margin balance reaches the threshold; None: unknown.

        A long's ratio is at or above the threshold exactly when the mark is at or below that
        price, a short's when it is at or above it (MM rises and the balance falls as the mark
        moves against the position). Sentinels as for levels: +inf/-inf for always/never.
        """
        if not self.mm_positive:
            return None
        side = 1 if qty > 0 else -1
        n = abs(qty) * self.contract_size
        inv_ep = 1.0 / entry
        if self.style == "mm_at_liquidation_price":
            # MM = v·MMR − cum at the mark: the LP equation with MMR, cum ÷ threshold, no extras.
            return _mm_at_lp(side, n, inv_ep, margin, self.ratio_table, 0.0, 0.0)
        bracket = _entry_bracket(n * inv_ep, self.table)
        if bracket is None:
            return None
        _, _, mmr, cum = bracket
        # MM = A + k·v (value at entry plus the fee and funding valued at the mark).
        k = self._fee(cross) + (max(0.0, rate) if self.funding_in_mm else 0.0)
        a = n * inv_ep
        big_a = a * mmr - cum
        t = self.threshold
        if side > 0:  # balance W + a − v ≤ (A + k·v)/t  ⇔  v ≥ (W + a − A/t) / (1 + k/t)
            num, mag, den = margin + a - big_a / t, abs(margin) + a + abs(big_a) / t, 1 + k / t
        else:  # W − a + v ≤ (A + k·v)/t  ⇔  v·(1 − k/t) ≤ a − W + A/t
            num, mag, den = a - margin + big_a / t, abs(margin) + a + abs(big_a) / t, 1 - k / t
            if den <= 8 * U:
                return None
        root = num / den
        err = 16 * U * mag / den + 4 * U * abs(root)
        return _value_bounds(side, n, root, err)

    # ---- shared ----------------------------------------------------------------------------
    def _fee(self, cross: bool) -> float:
        """The taker rate MM holds: BitMEX's exit fee, or Bybit's fee to close in cross."""
        return self.exit_fee or (self.close_fee if cross else 0.0)

    def _level(self, qty: int, entry: float, margin: float, rate: float,
               table: Table, cross: bool) -> float | None:
        side = 1 if qty > 0 else -1
        n = abs(qty) * self.contract_size
        inv_ep = 1.0 / entry
        # Extra MM valued at the bankruptcy price: N/BP·(fee + max(0, s·F)), 1/BP = 1/EP + s·W/N
        # (Bybit cross: divided by 1 + s·fee, the fee to close being left at bankruptcy).
        k = self._fee(cross) + (max(0.0, side * rate) if self.funding_in_mm else 0.0)
        extra = extra_err = 0.0
        if k:
            inv_bp = inv_ep + side * margin / n
            inv_bp_err = 8 * U * (inv_ep + abs(margin) / n)
            if cross and self.close_fee:
                inv_bp /= 1 + side * self.close_fee
                inv_bp_err = 2 * inv_bp_err + 8 * U * abs(inv_bp)
            extra = n * max(0.0, inv_bp) * k
            extra_err = n * k * inv_bp_err + 8 * U * extra
        if self.style == "mm_at_liquidation_price":
            bounds = _mm_at_lp(side, n, inv_ep, margin, table, extra, extra_err)
        else:
            bounds = _mm_at_entry(side, n, inv_ep, margin, table, extra, extra_err)
        if bounds is None:
            return None
        level = bounds[1] if side > 0 else bounds[0]
        return self._round(side, level)

    def _round(self, side: int, level: float) -> float:
        """The profile's conservative tick rounding (long up, short down), pushed outwards."""
        if not self.tick_rounding or math.isinf(level):
            return level
        if side > 0:
            return math.ceil(level / self.tick * (1 + 4 * U)) * self.tick * (1 + 4 * U)
        return math.floor(level / self.tick * (1 - 4 * U)) * self.tick * (1 - 4 * U)


def _value_bounds(side: int, n: float, root: float, err: float) -> tuple[float, float] | None:
    """Price bounds (lo, hi) from v* = N / P known to ±err; sentinels where v* ≤ 0."""
    if root - err > 0:
        return n / (root + err) * (1 - 4 * U), n / (root - err) * (1 + 4 * U)
    if side > 0:
        # A long with v* ≤ 0 is past the level at every price; too close to call: exact.
        return (INF, INF) if root + err <= 0 else None
    # A short with v* ≤ 0 never gets there; too close to call: a huge but finite low bound.
    return (INF, INF) if root + err <= 0 else (n / (root + err) * (1 - 4 * U), INF)


def _mm_at_lp(side: int, n: float, inv_ep: float, w: float, table: Table, extra: float,
              extra_err: float) -> tuple[float, float] | None:
    """``liquidation_price_mm_at_lp`` in float: bounds (lo, hi) on the price, or None."""
    a = n * inv_ep
    if side > 0:
        for floor, cap, mmr, cum in table:
            den = 1 + mmr
            root = (w + a + cum - extra) / den
            err = (16 * U * (abs(w) + a + cum + extra) + extra_err) / den + 4 * U * abs(root)
            v_lo, v_hi = max(floor, root - err), max(floor, root + err)
            if v_lo >= cap * (1 + U):
                continue
            if v_hi >= cap * (1 - U):
                return None  # too close to the bracket's cap to choose
            if v_hi <= 0:
                return INF, INF
            if v_lo <= 0:
                return None
            return n / v_hi * (1 - 4 * U), n / v_lo * (1 + 4 * U)
        return None  # unreachable: the last bracket has no cap
    last = len(table) - 1
    for i in range(last, -1, -1):
        floor, cap, mmr, cum = table[i]
        den = 1 - mmr
        if den <= 8 * U:
            return None
        root = (a - w - cum + extra) / den
        err = (16 * U * (a + abs(w) + cum + extra) + extra_err) / den + 4 * U * abs(root)
        if i < last:
            if root - err >= cap * (1 + U):
                return n / cap * (1 - 4 * U), n / cap * (1 + 4 * U)
            if root + err >= cap * (1 - U):
                return None
        if floor > 0:
            if root - err >= floor * (1 + U):
                return _value_bounds(side, n, root, err)
            if root + err < floor * (1 - U):
                continue
            return None
        return _value_bounds(side, n, root, err)  # first bracket: liquidated iff v* > 0
    return INF, INF


def _entry_bracket(value: float, table: Table) -> tuple[float, float, float, float] | None:
    """The bracket holding the entry value, or None if the value is too close to a floor."""
    chosen = table[0]
    for row in table[1:]:
        floor = row[0]
        if abs(value - floor) <= 8 * U * max(value, floor):
            return None
        if floor <= value:
            chosen = row
    return chosen


def _mm_at_entry(side: int, n: float, inv_ep: float, w: float, table: Table, extra: float,
                 extra_err: float) -> tuple[float, float] | None:
    """``liquidation_price_mm_at_entry`` in float: 1/LP = 1/EP + s·(W − MM)/N."""
    a = n * inv_ep
    bracket = _entry_bracket(a, table)
    if bracket is None:
        return None
    _, _, mmr, cum = bracket
    mm = a * mmr - cum + extra
    mm_err = 16 * U * (a * mmr + cum + extra) + extra_err
    inv = inv_ep + side * (w - mm) / n
    err = 16 * U * (inv_ep + (abs(w) + abs(mm)) / n) + mm_err / n + 4 * U * abs(inv)
    if inv - err > 0:
        return 1 / (inv + err) * (1 - 4 * U), 1 / (inv - err) * (1 + 4 * U)
    if side > 0:
        return (INF, INF) if inv + err <= 0 else None
    return (INF, INF) if inv + err <= 0 else (1 / (inv + err) * (1 - 4 * U), INF)


# ---- many positions at once (crowd scale) --------------------------------------------------------
# The same formulas on numpy arrays, operation for operation (IEEE float64 gives the same bits as
# the scalar code above), for the mm-at-liquidation-price style (Binance); NaN stands for the
# scalar code's None ("use exact"). ``tests/test_level_index.py`` checks them equal element by
# element. A funding settlement moves every position's margin at once: this is its re-solve.
_NONE = math.nan


def batch_supported(solver: Solver) -> bool:
    """True if ``levels_batch`` handles this solver's style (else solve position by position)."""
    return solver.style == "mm_at_liquidation_price"


def levels_batch(solver: Solver, qty: np.ndarray, entry: np.ndarray, margin: np.ndarray,
                 rate: float, cross: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                          np.ndarray]:
    """(liquidation level, call level, ratio boundary lo, hi) per position, as the scalar
    ``liquidation_level``, ``call_level`` and ``ratio_boundary`` give them (NaN: None)."""
    if not batch_supported(solver):
        raise ValueError(f"levels_batch does not handle the {solver.style!r} style")
    side = np.where(qty > 0, 1, -1)
    n = np.abs(qty).astype(np.float64) * solver.contract_size
    inv_ep = 1.0 / entry
    # ``Solver._fee``: the exit fee, else the fee to close (cross positions only).
    fee = (np.full(len(qty), solver.exit_fee) if solver.exit_fee
           else np.where(cross, solver.close_fee, 0.0))
    funding = np.maximum(0.0, side * rate) if solver.funding_in_mm else 0.0
    k = fee + funding
    inv_bp = inv_ep + side * margin / n
    inv_bp_err = 8 * U * (inv_ep + np.abs(margin) / n)
    if solver.close_fee:
        closing = cross & (k != 0)
        shrunk = inv_bp / (1 + side * solver.close_fee)
        inv_bp_err = np.where(closing, 2 * inv_bp_err + 8 * U * np.abs(shrunk), inv_bp_err)
        inv_bp = np.where(closing, shrunk, inv_bp)
    extra = np.where(k != 0, n * np.maximum(0.0, inv_bp) * k, 0.0)
    extra_err = np.where(k != 0, n * k * inv_bp_err + 8 * U * extra, 0.0)
    zero = np.zeros(len(qty))
    levels = []
    for table in (solver.table, solver.call_table):
        lo, hi = _mm_at_lp_batch(side, n, inv_ep, margin, table, extra, extra_err)
        level = np.where(side > 0, hi, lo)
        levels.append(_round_batch(solver, side, level))
    if solver.mm_positive:
        ratio_lo, ratio_hi = _mm_at_lp_batch(side, n, inv_ep, margin, solver.ratio_table, zero,
                                             zero)
    else:
        ratio_lo = ratio_hi = np.full(len(qty), _NONE)
    return levels[0], levels[1], ratio_lo, ratio_hi


def _round_batch(solver: Solver, side: np.ndarray, level: np.ndarray) -> np.ndarray:
    if not solver.tick_rounding:
        return level
    c_up, c_down = 1 + 4 * U, 1 - 4 * U
    with np.errstate(invalid="ignore"):
        up = np.ceil(level / solver.tick * c_up) * solver.tick * c_up
        down = np.floor(level / solver.tick * c_down) * solver.tick * c_down
    rounded = np.where(side > 0, up, down)
    return np.where(np.isinf(level) | np.isnan(level), level, rounded)


def _value_bounds_batch(side: np.ndarray, n: np.ndarray, root: np.ndarray,
                        err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        lo_pos = n / (root + err) * (1 - 4 * U)
        hi_pos = n / (root - err) * (1 + 4 * U)
    positive = root - err > 0
    never = root + err <= 0
    lo = np.where(positive, lo_pos, np.where(never, INF, np.where(side > 0, _NONE, lo_pos)))
    hi = np.where(positive, hi_pos, np.where(never, INF, np.where(side > 0, _NONE, INF)))
    return lo, hi


def _mm_at_lp_batch(side: np.ndarray, n: np.ndarray, inv_ep: np.ndarray, w: np.ndarray,
                    table: Table, extra: np.ndarray,
                    extra_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_mm_at_lp`` on arrays: (lo, hi), NaN where the scalar code returns None.

    Each bracket is computed on the rows it is still open for only (``rows``: their indices),
    the same operations element by element as on whole columns."""
    a = n * inv_ep
    count = len(side)
    lo, hi = np.full(count, _NONE), np.full(count, _NONE)
    rows = np.flatnonzero(side > 0)  # longs: brackets in order, the first that holds the root
    for floor, cap, mmr, cum in table:
        if not len(rows):
            break
        w_, a_, n_, extra_ = w[rows], a[rows], n[rows], extra[rows]
        den = 1 + mmr
        root = (w_ + a_ + cum - extra_) / den
        err = (16 * U * (np.abs(w_) + a_ + cum + extra_) + extra_err[rows]) / den \
            + 4 * U * np.abs(root)
        v_lo, v_hi = np.maximum(floor, root - err), np.maximum(floor, root + err)
        skip = v_lo >= cap * (1 + U)
        close_cap = v_hi >= cap * (1 - U)
        never = ~close_cap & (v_hi <= 0)
        doubt = close_cap | (~never & (v_lo <= 0))
        good = ~skip & ~doubt & ~never
        with np.errstate(divide="ignore", invalid="ignore"):
            lo[rows[good]] = n_[good] / v_hi[good] * (1 - 4 * U)
            hi[rows[good]] = n_[good] / v_lo[good] * (1 + 4 * U)
        lo[rows[~skip & never]] = hi[rows[~skip & never]] = INF
        rows = rows[skip]
    rows = np.flatnonzero(side < 0)  # shorts: brackets from the top down
    last = len(table) - 1
    for i in range(last, -1, -1):
        if not len(rows):
            break
        floor, cap, mmr, cum = table[i]
        den = 1 - mmr
        if den <= 8 * U:  # every short still open: None (NaN already)
            rows = rows[:0]
            break
        w_, a_, extra_ = w[rows], a[rows], extra[rows]
        root = (a_ - w_ - cum + extra_) / den
        err = (16 * U * (a_ + np.abs(w_) + cum + extra_) + extra_err[rows]) / den \
            + 4 * U * np.abs(root)
        none = np.zeros(len(rows), dtype=bool)
        at_cap = root - err >= cap * (1 + U) if i < last else none
        near_cap = ~at_cap & (root + err >= cap * (1 - U)) if i < last else none
        above = root - err >= floor * (1 + U)
        # Clearly below the floor (neither at nor near the cap, nor above the floor): on to the
        # next bracket down. The others are decided here, on their own (usually few) rows.
        below = ~at_cap & ~near_cap & ~above & (root + err < floor * (1 - U)) if floor > 0 \
            else none
        here = ~below
        if here.any():
            at, near, up = at_cap[here], near_cap[here], above[here]
            decided, root_, err_ = rows[here], root[here], err[here]
            n_ = n[decided]
            lo[decided[at]] = n_[at] / cap * (1 - 4 * U)
            hi[decided[at]] = n_[at] / cap * (1 + 4 * U)
            keep = ~at & ~near  # near the cap: None
            decided, n_, root_, err_, up = decided[keep], n_[keep], root_[keep], err_[keep], \
                up[keep]
            v_lo, v_hi = _value_bounds_batch(side[decided], n_, root_, err_)
            if floor > 0:  # above the floor: its bounds; the rest (close to the floor): None
                lo[decided[up]], hi[decided[up]] = v_lo[up], v_hi[up]
            else:
                lo[decided], hi[decided] = v_lo, v_hi
        rows = rows[below]
    lo[rows] = hi[rows] = INF
    return lo, hi
