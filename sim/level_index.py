"""Per-symbol indexes of positions' trigger levels, kept up to date incrementally.

The watcher needs, per symbol, the highest level a long can be liquidated (or margin-called) at
and the lowest a short can; the liquidation check needs the positions the mark has reached.
Recomputing every position at every re-plan made both O(accounts) per event; here each
position's float bounds (``sim.fast_levels``) are kept in sorted arrays and recomputed only when
something it depends on changed. What changed is read from the two append-only records the
engine already keeps: the journal (every position, margin-call flag and settings change names
its ``account_id``) and the ledger (every balance change names its wallet or isolated account).
A change of the funding rate re-marks a whole symbol where the profile counts funding in MM.

Per position (long shown; shorts mirror it), with L the liquidation level, C the margin-call
level and M the interval around the price where MM / margin balance reaches the threshold:
* watch level: max(L, C) before a margin call, L after one (what ``collect_levels`` watches);
* candidate when the mark ≤ max(L, M.hi) before a call; after one, when the mark ≤ L or
  ≥ M.lo (it recovered, so the flag must be reset). A position that is not a candidate is one
  ``liquidation.check_all`` would leave exactly as it is.
Accounts with several cross positions in one coin are judged with the others at today's marks,
so they are recomputed exactly on every use and are always candidates.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np

from perpsim.sim.fast_levels import INF, Solver, batch_supported, levels_batch
from perpsim.sim.ledger import BatchPosting, isolated_account, wallet_account

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from perpsim.sim.accounts import Account, Position
    from perpsim.sim.exchange import Exchange

_SLACK = 1e-9  # relative: float marks against float levels (the exact check decides)
_REBUILD_AT = 512  # changed entries tolerated before the sorted arrays are rebuilt
_BATCH_AT = 64  # positions to recompute at once from which the float solves run as arrays


class SortedLevels:
    """Float levels keyed by account ordinal, queryable by range in O(log n + answer).

    A sorted snapshot (numpy) plus the entries changed since it was taken, themselves kept
    sorted (a short list); the snapshot is re-sorted once enough entries have changed.
    """

    def __init__(self) -> None:
        self.level: dict[int, float] = {}
        self._keys = np.empty(0, dtype=np.float64)
        self._ords = np.empty(0, dtype=np.int64)
        self._stale: set[int] = set()  # ordinals changed since the snapshot: ignored in it
        self._fresh: list[tuple[float, int]] = []  # (level, ordinal) of the changed, sorted
        self._top = -1  # snapshot positions above it are all stale (only grows until re-sort)
        self._bottom = 0
        self.batch = False  # many changes coming: sort once at the end (``settle``)

    def __len__(self) -> int:
        return len(self.level)

    def set(self, ordinal: int, level: float) -> None:
        """Set (or replace) an ordinal's level."""
        old = self.level.get(ordinal)
        if old != level:
            self.level[ordinal] = level
            self._changed(ordinal, old, level)

    def drop(self, ordinal: int) -> None:
        """Forget an ordinal's level."""
        old = self.level.pop(ordinal, None)
        if old is not None:
            self._changed(ordinal, old, None)

    def _changed(self, ordinal: int, old: float | None, new: float | None) -> None:
        if self.batch:  # no queries until ``settle``: just note it
            self._stale.add(ordinal)
            return
        if ordinal in self._stale and old is not None:
            del self._fresh[bisect.bisect_left(self._fresh, (old, ordinal))]
        self._stale.add(ordinal)
        if new is not None:
            bisect.insort(self._fresh, (new, ordinal))
        if len(self._stale) > _REBUILD_AT:
            self._rebuild()

    def set_many(self, ordinals: list[int], levels: list[float | None]) -> None:
        """In a batch (``batch`` True): set each ordinal's level, or drop it where None — the
        dictionary work in bulk; the snapshot is re-sorted at ``settle`` as for ``set``."""
        assert self.batch, "set_many only in a batch of changes"
        level = self.level
        level.update({o: v for o, v in zip(ordinals, levels, strict=True) if v is not None})
        for o, v in zip(ordinals, levels, strict=True):
            if v is None:
                level.pop(o, None)
        self._stale.update(ordinals)

    def set_array(self, ordinals: np.ndarray, levels: np.ndarray) -> None:
        """``set_many`` from arrays, NaN standing for None (drop): the crowd-scale path."""
        assert self.batch, "set_array only in a batch of changes"
        present = ~np.isnan(levels)
        level = self.level
        level.update(zip(ordinals[present].tolist(), levels[present].tolist(), strict=True))
        if not present.all():
            for o in ordinals[~present].tolist():
                level.pop(o, None)
        self._stale.update(ordinals.tolist())

    def settle(self) -> None:
        """End a batch of changes: re-sort the snapshot, or the short list of changed entries."""
        self.batch = False
        if len(self._stale) > _REBUILD_AT:
            self._rebuild()
        else:
            level = self.level
            self._fresh = sorted((level[o], o) for o in self._stale if o in level)

    def _rebuild(self) -> None:
        n = len(self.level)
        ords = np.fromiter(self.level.keys(), dtype=np.int64, count=n)
        keys = np.fromiter(self.level.values(), dtype=np.float64, count=n)
        order = np.argsort(keys, kind="stable")
        self._keys, self._ords = keys[order], ords[order]
        self._stale.clear()
        self._fresh.clear()
        self._top, self._bottom = n - 1, 0

    def between(self, lo: float, hi: float) -> list[int]:
        """Ordinals whose level is in [lo, hi] (unordered)."""
        if lo > hi:
            return []
        i = int(np.searchsorted(self._keys, lo, side="left"))
        j = int(np.searchsorted(self._keys, hi, side="right"))
        stale = self._stale
        found = [o for o in self._ords[i:j].tolist() if o not in stale] if stale else \
            self._ords[i:j].tolist()
        a = bisect.bisect_left(self._fresh, (lo, -1))
        b = bisect.bisect_right(self._fresh, (hi, math.inf))
        found.extend(o for _, o in self._fresh[a:b])
        return found

    def top(self) -> float:
        """The highest level (−inf if none)."""
        k = self._top
        while k >= 0 and int(self._ords[k]) in self._stale:
            k -= 1
        self._top = k
        best = float(self._keys[k]) if k >= 0 else -INF
        return max(best, self._fresh[-1][0]) if self._fresh else best

    def bottom(self) -> float:
        """The lowest level (+inf if none)."""
        k, n = self._bottom, len(self._ords)
        while k < n and int(self._ords[k]) in self._stale:
            k += 1
        self._bottom = k
        best = float(self._keys[k]) if k < n else INF
        return min(best, self._fresh[0][0]) if self._fresh else best


class SymbolLevels:
    """The four indexes of one symbol (see the module docstring)."""

    def __init__(self, solver: Solver) -> None:
        self.solver = solver
        self.below = SortedLevels()  # candidate when mark ≤ level
        self.above = SortedLevels()  # candidate when mark ≥ level
        self.watch_below = SortedLevels()  # longs: the watcher's mark_lo is the top
        self.watch_above = SortedLevels()  # shorts: the watcher's mark_hi is the bottom
        self.rate: Decimal | None = None  # funding rate the levels were computed with

    @property
    def indexes(self) -> tuple[SortedLevels, ...]:
        """The four indexes, in the order ``assign`` takes their levels."""
        return self.below, self.above, self.watch_below, self.watch_above

    def assign(self, ordinal: int, levels: tuple[float | None, ...]) -> None:
        """Set an ordinal's four levels (None: absent from that index)."""
        for index, level in zip(self.indexes, levels, strict=True):
            if level is None:
                if ordinal in index.level:
                    index.drop(ordinal)
            else:
                index.set(ordinal, level)

    def reached(self, ordinal: int, mark: float) -> bool:
        """True if the ordinal is a candidate at ``mark``."""
        below = self.below.level.get(ordinal, -INF)
        above = self.above.level.get(ordinal, INF)
        return mark * (1 - _SLACK) <= below or mark * (1 + _SLACK) >= above

    @property
    def empty(self) -> bool:
        """True if no position on this symbol can become a candidate."""
        return not self.below.level and not self.above.level

    def has_any(self, ordinal: int) -> bool:
        """True if the ordinal has a level in any of the four indexes."""
        return (ordinal in self.below.level or ordinal in self.above.level
                or ordinal in self.watch_below.level or ordinal in self.watch_above.level)

    def has(self, ordinal: int) -> bool:
        """True if the ordinal has a level in this symbol's candidate indexes."""
        return ordinal in self.below.level or ordinal in self.above.level

    def may_be_reached(self, lo: float, hi: float) -> bool:
        """True if some level is reached by a mark somewhere in [lo, hi]."""
        return self.below.top() >= lo * (1 - _SLACK) or self.above.bottom() <= hi * (1 + _SLACK)

    def reached_now(self, mark: float) -> list[int]:
        """Every candidate ordinal at ``mark``."""
        return (self.below.between(mark * (1 - _SLACK), INF)
                + self.above.between(-INF, mark * (1 + _SLACK)))

    def newly_reached(self, old: float, new: float) -> list[int]:
        """Candidates at ``new`` that were not at ``old`` (the mark moved from one to the other)."""
        if new < old:
            return self.below.between(new * (1 - _SLACK), math.nextafter(old * (1 - _SLACK), -INF))
        if new > old:
            return self.above.between(math.nextafter(old * (1 + _SLACK), INF), new * (1 + _SLACK))
        return []


class LevelIndex:
    """Trigger levels of every position of an exchange, per symbol (see the module docstring)."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.symbols: dict[str, SymbolLevels] = {}
        self.account_ids: list[str] = []
        self.ordinal: dict[str, int] = {}
        self.volatile: set[int] = set()  # several cross positions in a coin: exact, always checked
        self._dirty: set[str] = set()
        self._full = True
        self._journal_seen = 0
        self._postings_seen = 0
        self._last_posting: object = None
        self.recomputed = 0  # positions recomputed (for benchmarks)

    # ---- keeping up to date ------------------------------------------------------------------
    def sync(self) -> set[int]:
        """Recompute whatever changed since the last call; the ordinals recomputed."""
        ex = self.ex
        if not self.symbols:
            for symbol in ex.pricers:
                self.symbols[symbol] = SymbolLevels(Solver.of(ex.profile, ex.instruments[symbol]))
        if len(self.account_ids) < len(ex.accounts):
            for aid in itertools.islice(ex.accounts, len(self.account_ids), None):
                self.ordinal[aid] = len(self.account_ids)
                self.account_ids.append(aid)
        self._read_journal()
        self._read_ledger()
        for symbol, levels in self.symbols.items():
            if levels.solver.funding_in_mm:
                rate = ex.mark_funding_rate(symbol)
                if rate != levels.rate:  # every position on the symbol: MM counts funding
                    levels.rate = rate
                    for index in levels.indexes:
                        self._dirty.update(self.account_ids[o] for o in index.level)
        if self._full:
            self._full = False
            self._dirty.clear()
            todo = list(range(len(self.account_ids)))
        else:
            todo = sorted(self.ordinal[a] for a in self._dirty if a in self.ordinal)
            self._dirty.clear()
        batch = len(todo) > _REBUILD_AT
        for levels in self.symbols.values():
            for index in levels.indexes:
                index.batch = batch
        if len(todo) >= _BATCH_AT and all(batch_supported(lv.solver)
                                          for lv in self.symbols.values()):
            self._recompute_many(todo)
        else:
            for o in todo:
                self._recompute(o)
        if batch:
            for levels in self.symbols.values():
                for index in levels.indexes:
                    index.settle()
        return set(todo)

    def touch(self, account_id: str) -> None:
        """Mark an account for recomputation (its state may have changed without a record)."""
        self._dirty.add(account_id)

    def _read_journal(self) -> None:
        journal = self.ex.journal
        n = len(journal)
        if n < self._journal_seen:
            self._full = True
        elif n > self._journal_seen:
            for event in journal.since(self._journal_seen):
                aid = event.payload.get("account_id")
                if isinstance(aid, str):
                    self._dirty.add(aid)
        self._journal_seen = n

    def _read_ledger(self) -> None:
        postings = self.ex.ledger.postings
        n, seen = len(postings), self._postings_seen
        if n < seen or (seen and postings[seen - 1] is not self._last_posting):
            self._full = True  # rolled back past what was read: start over
        else:
            for p in postings[seen:n]:
                if isinstance(p, BatchPosting):  # its legs' owners, named once per batch
                    self._dirty.update(owner for owner in p.owners if owner is not None)
                    continue
                for name in (p.source, p.destination):
                    if name.startswith(("wallet:", "isolated:")):
                        self._dirty.add(name.split(":", 2)[1])
        self._postings_seen = n
        self._last_posting = postings[n - 1] if n else None

    def _recompute(self, o: int) -> None:
        account = self.ex.accounts[self.account_ids[o]]
        positions = [p for p in account.positions.values() if p.is_open]
        cross = [p.coin for p in positions if p.margin_mode == "cross"]
        # Hedge-mode accounts are judged exactly every time (two legs per symbol).
        volatile = len(cross) != len(set(cross)) or any(p.position_side != "BOTH"
                                                        for p in positions)
        if volatile:
            self.volatile.add(o)
        else:
            self.volatile.discard(o)
        for symbol, levels in self.symbols.items():
            pos = account.positions.get(symbol)
            if volatile or pos is None or not pos.is_open:
                levels.assign(o, (None, None, None, None))
            else:
                levels.assign(o, self._levels(account, pos, levels.solver))
                self.recomputed += 1

    def _levels(self, account: Account, pos: Position,
                solver: Solver) -> tuple[float | None, ...]:
        """(below, above, watch below, watch above) of one position."""
        ex = self.ex
        aid = account.account_id
        margin_name = (isolated_account(aid, pos.margin_key) if pos.margin_mode == "isolated"
                       else wallet_account(aid, pos.coin))
        margin = float(ex.ledger.balance(margin_name))
        assert pos.entry_price_usd is not None
        entry, qty = float(pos.entry_price_usd), pos.qty_contracts
        rate = float(ex.mark_funding_rate(pos.symbol)) if solver.funding_in_mm else 0.0
        cross = pos.margin_mode == "cross"
        liq = solver.liquidation_level(qty, entry, margin, rate, cross=cross)
        if liq is None:
            liq = _exact_level(ex, aid, pos, Decimal(1))
        boundary = solver.ratio_boundary(qty, entry, margin, rate, cross=cross)
        call: float | None = INF if pos.side > 0 else -INF  # unused after a call
        if not pos.margin_call_sent:
            call = solver.call_level(qty, entry, margin, rate, cross=cross)
        if call is None:
            call = _exact_level(ex, aid, pos, 1 / ex.profile.liquidation.margin_call_ratio)
        return _combine(pos, liq, call, boundary)

    def _recompute_many(self, todo: list[int]) -> None:
        """``_recompute`` for many ordinals at once: the float solves as arrays per symbol
        (``fast_levels.levels_batch``, bit for bit the scalar solver), the rest as before."""
        ex = self.ex
        gathered: dict[str, list[tuple[int, Account, Position]]] = {s: [] for s in self.symbols}
        nowhere = (None, None, None, None)
        for o in todo:
            account = ex.accounts[self.account_ids[o]]
            if len(account.positions) == 1:  # the crowd's usual case: one record, no doubt
                (only,) = account.positions.values()
                volatile = only.position_side != "BOTH"
            else:
                positions = [p for p in account.positions.values() if p.is_open]
                cross = [p.coin for p in positions if p.margin_mode == "cross"]
                volatile = len(cross) != len(set(cross)) or any(p.position_side != "BOTH"
                                                                for p in positions)
            if volatile:
                self.volatile.add(o)
            elif o in self.volatile:
                self.volatile.discard(o)
            for symbol, levels in self.symbols.items():
                pos = account.positions.get(symbol)
                if volatile or pos is None or not pos.is_open:
                    if levels.has_any(o):
                        levels.assign(o, nowhere)
                else:
                    gathered[symbol].append((o, account, pos))
        for symbol, rows in gathered.items():
            if rows:
                self._solve_many(self.symbols[symbol], rows)

    def _solve_many(self, levels: SymbolLevels, rows: list[tuple[int, Account, Position]]) -> None:
        ex = self.ex
        solver = levels.solver
        names = [f"isolated:{a.account_id}:{p.margin_key}" if p.margin_mode == "isolated"
                 else f"wallet:{a.account_id}:{p.coin}" for _, a, p in rows]
        margin = np.array([float(b) for b in ex.ledger.peek_balances(names)])
        qty = np.array([p.qty_contracts for _, _, p in rows], dtype=np.int64)
        entry = np.array([float(p.entry_price_usd) for _, _, p in rows])  # type: ignore[arg-type]
        cross = np.array([p.margin_mode == "cross" for _, _, p in rows])
        symbol = rows[0][2].symbol
        rate = float(ex.mark_funding_rate(symbol)) if solver.funding_in_mm else 0.0
        liqs, calls, los, his = levels_batch(solver, qty, entry, margin, rate, cross)
        call_scale = 1 / ex.profile.liquidation.margin_call_ratio
        called = np.fromiter((p.margin_call_sent for _, _, p in rows), dtype=bool,
                             count=len(rows))
        # The rare rows the float solve leaves to exact arithmetic (NaN), one by one.
        for i in np.flatnonzero(np.isnan(liqs)).tolist():
            _, account, pos = rows[i]
            liqs[i] = _exact_level(ex, account.account_id, pos, Decimal(1))
        for i in np.flatnonzero(np.isnan(calls) & ~called).tolist():
            _, account, pos = rows[i]
            calls[i] = _exact_level(ex, account.account_id, pos, call_scale)
        four = combine_batch(qty > 0, called, liqs, calls, los, his)
        ordinals = np.fromiter((o for o, _, _ in rows), dtype=np.int64, count=len(rows))
        if levels.below.batch:  # the four indexes in bulk (they are re-sorted at the end)
            for index, column in zip(levels.indexes, four, strict=True):
                index.set_array(ordinals, column)
        else:
            columns = [[None if v != v else v for v in column.tolist()] for column in four]
            for k, o in enumerate(ordinals.tolist()):
                levels.assign(o, tuple(column[k] for column in columns))
        self.recomputed += len(rows)

    # ---- queries -----------------------------------------------------------------------------
    def watch_range(self, symbol: str) -> tuple[float, float]:
        """(highest long level, lowest short level) the watcher must look for on ``symbol``."""
        self.sync()
        levels = self.symbols[symbol]
        return levels.watch_below.top(), levels.watch_above.bottom()

    def volatile_positions(self, symbol: str) -> Iterator[tuple[str, Position]]:
        """Open positions on ``symbol`` of the accounts judged exactly at every use."""
        for o in sorted(self.volatile):
            aid = self.account_ids[o]
            for pos in self.ex.accounts[aid].positions_on(symbol):
                if pos.is_open:
                    yield aid, pos

    def candidates(self) -> Iterator[Account]:
        """Accounts ``check_all`` must examine, in creation order, found as it goes.

        After each account is handled (a liquidation can fill other accounts' orders, ADL them,
        or move the last price and so the mark), what changed is re-read and accounts that only
        now qualify are added if they come later in the order — as a pass over every account
        in order would have seen them. A symbol's exact mark is only computed once a cheap
        bound on it (``_mark_bounds``) says some level may be reached.
        """
        self.sync()
        ex = self.ex
        marks: dict[str, float] = {}  # symbols whose mark is being followed
        heap: list[int] = sorted(self.volatile)
        queued = set(heap)

        def push(found: Iterable[int], after: int) -> None:
            for c in found:
                if c > after and c not in queued:
                    queued.add(c)
                    heapq.heappush(heap, c)

        def follow(symbol: str, after: int) -> None:
            """Start following a symbol's mark if its levels may be reached now."""
            levels = self.symbols[symbol]
            if symbol in marks or levels.empty or not levels.may_be_reached(
                    *_mark_bounds(ex, symbol)):
                return
            marks[symbol] = float(ex.mark_price(symbol))
            push(levels.reached_now(marks[symbol]), after)

        for symbol in self.symbols:
            follow(symbol, -1)
        while heap:
            o = heapq.heappop(heap)
            aid = self.account_ids[o]
            before = len(ex.journal)
            yield ex.accounts[aid]
            self.touch(aid)  # a margin-call flag may have been reset without an event
            changed = self.sync()
            moved = len(ex.journal) != before  # trades may have moved the last price (the mark)
            for symbol, levels in self.symbols.items():
                if symbol in marks:
                    if moved:
                        mark = float(ex.mark_price(symbol))
                        push(levels.newly_reached(marks[symbol], mark), o)
                        marks[symbol] = mark
                    push((c for c in changed if levels.reached(c, marks[symbol])), o)
                elif moved or any(levels.has(c) for c in changed):
                    follow(symbol, o)
            push((c for c in changed if c in self.volatile), o)


def _combine(pos: Position, liq: float, call: float,
             boundary: tuple[float, float] | None) -> tuple[float | None, ...]:
    """(below, above, watch below, watch above) from a position's liquidation level, its
    margin-call level (unused after a call) and its ratio boundary (None: unknown)."""
    # Unknown boundary: always a candidate (before a call) or always re-checked (after).
    lo, hi = boundary if boundary is not None else (-INF, INF)
    called = pos.margin_call_sent
    if pos.side > 0:
        if called:
            return liq, lo, liq, None
        return max(liq, hi), None, max(liq, call), None
    if called:
        return hi, liq, None, liq
    return None, min(liq, lo), None, min(liq, call)


def combine_batch(long: np.ndarray, called: np.ndarray, liq: np.ndarray, call: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """``_combine`` on arrays (NaN: None): the four index columns of many positions.

    ``lo`` NaN means the ratio boundary is unknown, as ``boundary=None``; ``call`` is unused
    where ``called``. Python's max(a, b) keeps a unless b > a (min: unless b < a); the same
    choice is written out, so ties (0.0 against -0.0) pick the same float.
    """
    unknown = np.isnan(lo)
    lo = np.where(unknown, -INF, lo)
    hi = np.where(unknown, INF, hi)
    nan = np.full(len(liq), np.nan)
    short = ~long
    below = np.where(long, np.where(called, liq, np.where(hi > liq, hi, liq)),
                     np.where(called, hi, nan))
    above = np.where(long, np.where(called, lo, nan),
                     np.where(called, liq, np.where(lo < liq, lo, liq)))
    watch_below = np.where(long, np.where(called, liq, np.where(call > liq, call, liq)), nan)
    watch_above = np.where(short, np.where(called, liq, np.where(call < liq, call, liq)), nan)
    return below, above, watch_below, watch_above


def _mark_bounds(ex: Exchange, symbol: str) -> tuple[float, float]:
    """Cheap bounds on the exact mark now: it lies between P1 (index × 1 + rate·(time to
    funding / interval), between 1 and 1 + rate) and the last price (mark = median of P1, P2
    and last, or P1 alone)."""
    pricer = ex.pricers[symbol]
    tape = pricer.tape
    index = float(tape.index[tape.row_at(ex.now_ms)])
    rate = float(ex.mark_funding_rate(symbol)) if pricer.inst.is_perpetual else 0.0
    last = float(ex.last_price(symbol))
    lo = min(index * min(1.0, 1.0 + rate), last)
    hi = max(index * max(1.0, 1.0 + rate), last)
    return lo * (1 - _SLACK), hi * (1 + _SLACK)


def _exact_level(ex: Exchange, account_id: str, pos: Position, scale: Decimal) -> float:
    """The exact rounded liquidation (scale 1) or margin-call price as a float level."""
    from perpsim.sim.risk import liquidation_prices

    price, _ = liquidation_prices(ex, account_id, pos, scale)
    if price is None:  # never: a long's level is −inf, a short's +inf
        return -INF if pos.side > 0 else INF
    return float(price)
