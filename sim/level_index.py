"""Per-symbol indexes of positions' trigger levels, kept up to date incrementally.

The watcher needs, per symbol, the highest level a long can be liquidated (or margin-called) at
and the lowest a short can; the liquidation check needs the positions the mark has reached.
Recomputing every position at every re-plan made both O(accounts) per event; here each
position's float bounds (``sim.fast_levels``) are kept in sorted arrays and recomputed only when
something it depends on changed. What changed is read from the two append-only records the
engine already keeps: the journal (every position, margin-call flag and settings change names
its ``account_id``) and the ledger (every balance change names its wallet or isolated account).
A change of the funding rate re-marks a whole symbol where the profile counts funding in MM.
Each position's solver inputs (size, entry, margin mode, margin-call flag, margin account) are
kept in arrays too, re-read only for the accounts a record names: a funding settlement, one
batch posting that only moves balances, re-solves its holders from their new balances alone.
The float solver's last answers are kept per position with the inputs they came from
(``SolvedLevels``): a position re-solved from equal inputs (a margin call flips only its flag)
reads them back.

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
from typing import TYPE_CHECKING, cast

import numpy as np

from perpsim.sim.fast_levels import INF, Solver, batch_supported, levels_batch
from perpsim.sim.ledger import BatchPosting

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from perpsim.sim.accounts import Account, Position
    from perpsim.sim.exchange import Exchange

_SLACK = 1e-9  # relative: float marks against float levels (the exact check decides)
_REBUILD_AT = 512  # changed entries tolerated before the sorted arrays are rebuilt
_BATCH_AT = 64  # positions to recompute at once from which the float solves run as arrays
_UNSOLVED = object()  # SolvedLevels: the call level was not asked for


class SortedLevels:
    """Float levels keyed by account ordinal, queryable by range in O(log n + answer).

    The levels live in an array indexed by ordinal (NaN: absent), so a crowd's levels are set
    in one array assignment. Queries read a sorted snapshot (numpy) plus the entries changed
    since it was taken, themselves kept sorted (a short list); the snapshot is re-sorted once
    enough entries have changed.
    """

    def __init__(self) -> None:
        self._level = np.full(0, np.nan)  # by ordinal; NaN: no level
        self._count = 0  # levels present
        self._keys = np.empty(0, dtype=np.float64)
        self._ords = np.empty(0, dtype=np.int64)
        self._stale = np.zeros(0, dtype=bool)  # by ordinal: changed since the snapshot
        self._n_stale = 0
        self._fresh: list[tuple[float, int]] = []  # (level, ordinal) of the changed, sorted
        self._top = -1  # snapshot positions above it are all stale (only grows until re-sort)
        self._bottom = 0
        self.batch = False  # many changes coming: sort once at the end (``settle``)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, ordinal: int) -> bool:
        return self.get(ordinal) is not None

    def get(self, ordinal: int) -> float | None:
        """The ordinal's level (None: absent)."""
        if ordinal >= len(self._level):
            return None
        level: float = self._level.item(ordinal)
        return None if level != level else level

    def as_dict(self) -> dict[int, float]:
        """Every level by ordinal (for checks: it copies)."""
        present = np.flatnonzero(~np.isnan(self._level))
        return dict(zip(present.tolist(), self._level[present].tolist(), strict=True))

    def grow(self, size: int) -> None:
        """Make room for ordinals below ``size``."""
        have = len(self._level)
        if size > have:
            size = max(size, 2 * have)
            self._level = np.concatenate([self._level, np.full(size - have, np.nan)])
            self._stale = np.concatenate([self._stale, np.zeros(size - have, dtype=bool)])

    def set(self, ordinal: int, level: float) -> None:
        """Set (or replace) an ordinal's level."""
        old = self.get(ordinal)
        if old != level:
            self.grow(ordinal + 1)
            self._level[ordinal] = level
            if old is None:
                self._count += 1
            self._changed(ordinal, old, level)

    def drop(self, ordinal: int) -> None:
        """Forget an ordinal's level."""
        old = self.get(ordinal)
        if old is not None:
            self._level[ordinal] = np.nan
            self._count -= 1
            self._changed(ordinal, old, None)

    def _changed(self, ordinal: int, old: float | None, new: float | None) -> None:
        was_stale = self._stale.item(ordinal)
        if not was_stale:
            self._stale[ordinal] = True
            self._n_stale += 1
        if self.batch:  # no queries until ``settle``: just note it
            return
        if was_stale and old is not None:
            del self._fresh[bisect.bisect_left(self._fresh, (old, ordinal))]
        if new is not None:
            bisect.insort(self._fresh, (new, ordinal))
        if self._too_stale():
            self._rebuild()

    def set_array(self, ordinals: np.ndarray, levels: np.ndarray) -> None:
        """In a batch (``batch`` True): set each ordinal's level, or drop it where NaN — one
        array assignment; the snapshot is re-sorted at ``settle``. Ordinals distinct."""
        assert self.batch, "set_array only in a batch of changes"
        if not len(ordinals):
            return
        self.grow(int(ordinals.max()) + 1)
        old = self._level[ordinals]
        self._level[ordinals] = levels
        self._count += int(np.count_nonzero(~np.isnan(levels)) - np.count_nonzero(~np.isnan(old)))
        fresh = ordinals[~self._stale[ordinals]]
        self._stale[fresh] = True
        self._n_stale += len(fresh)

    def settle(self) -> None:
        """End a batch of changes: re-sort the snapshot, or the short list of changed entries."""
        self.batch = False
        if self._too_stale():
            self._rebuild()
        else:
            ords = np.flatnonzero(self._stale)
            levels = self._level[ords]
            present = ~np.isnan(levels)
            self._fresh = sorted(zip(levels[present].tolist(), ords[present].tolist(),
                                     strict=True))

    def _too_stale(self) -> bool:
        # A big index tolerates more changed entries (a re-sort costs its size).
        return self._n_stale > max(_REBUILD_AT, len(self._ords) >> 6)

    def _rebuild(self) -> None:
        level, old = self._level, self._ords
        moved = self._stale[old]
        again = old[moved]
        # Runs for the stable sort (timsort): the unchanged entries, still in order; the
        # changed ones in their old order (a settlement moves levels a little); the new ones.
        runs = [old[~moved], again[~np.isnan(level[again])]]
        if len(runs[0]) + len(runs[1]) < self._count:  # levels new since the snapshot
            listed = np.zeros(len(level), dtype=bool)
            listed[old] = True
            runs.append(np.flatnonzero(~np.isnan(level) & ~listed))
        ords = np.concatenate(runs)
        keys = level[ords]
        order = np.argsort(keys, kind="stable")
        self._keys, self._ords = keys[order], ords[order]
        self._stale[:] = False
        self._n_stale = 0
        self._fresh.clear()
        self._top, self._bottom = len(ords) - 1, 0

    def between(self, lo: float, hi: float) -> list[int]:
        """Ordinals whose level is in [lo, hi] (unordered)."""
        if lo > hi:
            return []
        i = int(np.searchsorted(self._keys, lo, side="left"))
        j = int(np.searchsorted(self._keys, hi, side="right"))
        ords = self._ords[i:j]
        if self._n_stale:
            ords = ords[~self._stale[ords]]
        found: list[int] = ords.tolist()
        a = bisect.bisect_left(self._fresh, (lo, -1))
        b = bisect.bisect_right(self._fresh, (hi, math.inf))
        found.extend(o for _, o in self._fresh[a:b])
        return found

    def top(self) -> float:
        """The highest level (−inf if none)."""
        k, ords, stale = self._top, self._ords, self._stale
        while k >= 0 and stale[ords[k]]:
            k -= 1
        self._top = k
        best = float(self._keys[k]) if k >= 0 else -INF
        return max(best, self._fresh[-1][0]) if self._fresh else best

    def bottom(self) -> float:
        """The lowest level (+inf if none)."""
        k, ords, stale = self._bottom, self._ords, self._stale
        n = len(ords)
        while k < n and stale[ords[k]]:
            k += 1
        self._bottom = k
        best = float(self._keys[k]) if k < n else INF
        return min(best, self._fresh[0][0]) if self._fresh else best


class PositionRows:
    """The solver's inputs of one symbol's positions, by ordinal: what a funding settlement
    leaves alone (size, entry, margin mode, margin-call flag, the ledger account holding the
    margin). Refreshed only for accounts whose positions may have changed (they are named by
    a journal event, a posting or ``LevelIndex.touch``); a settlement then only re-reads the
    balances. ``held``: the ordinal has an open position here that the index solves (not a
    volatile account's)."""

    def __init__(self) -> None:
        self.held = np.zeros(0, dtype=bool)
        self.qty = np.zeros(0, dtype=np.int64)
        self.entry = np.zeros(0, dtype=np.float64)
        self.cross = np.zeros(0, dtype=bool)
        self.called = np.zeros(0, dtype=bool)
        self.holder = np.full(0, None, dtype=object)  # ledger account of the margin (str)
        self.slot = np.zeros(0, dtype=np.int64)  # its ledger array slot (-1: not asked yet)
        self.slot_epoch = -1  # the ledger's ``slot_epoch`` the slots were asked in

    def grow(self, size: int) -> None:
        """Make room for ordinals below ``size``."""
        have = len(self.held)
        if size > have:
            extra = max(size, 2 * have) - have
            self.held = np.concatenate([self.held, np.zeros(extra, dtype=bool)])
            self.qty = np.concatenate([self.qty, np.zeros(extra, dtype=np.int64)])
            self.entry = np.concatenate([self.entry, np.zeros(extra, dtype=np.float64)])
            self.cross = np.concatenate([self.cross, np.zeros(extra, dtype=bool)])
            self.called = np.concatenate([self.called, np.zeros(extra, dtype=bool)])
            self.holder = np.concatenate([self.holder, np.full(extra, None, dtype=object)])
            self.slot = np.concatenate([self.slot, np.full(extra, -1, dtype=np.int64)])

    def put(self, o: int, account_id: str, pos: Position) -> None:
        """Record an open position's row."""
        assert pos.entry_price_usd is not None
        self.held[o] = True
        self.qty[o] = pos.qty_contracts
        self.entry[o] = float(pos.entry_price_usd)
        self.cross[o] = pos.margin_mode == "cross"
        self.called[o] = pos.margin_call_sent
        # The names ``isolated_account`` / ``wallet_account`` give (ids the engine checked).
        self.holder[o] = (f"isolated:{account_id}:{pos.margin_key}"
                          if pos.margin_mode == "isolated" else f"wallet:{account_id}:{pos.coin}")
        self.slot[o] = -1

    def clear(self, o: int) -> None:
        """Forget an ordinal's row (no open position the index solves)."""
        self.held[o] = False
        self.holder[o] = None


class SolvedLevels:
    """The float solver's last answers per ordinal, with the inputs they were solved from.

    ``Solver``'s answers are a pure function of (size, entry, margin, rate, cross), and the
    batch gives the scalar solver's floats (tests/test_fast_levels_batch.py), so where a
    position is solved again from equal inputs — a margin call flips only its flag, a
    ``touch`` may have moved nothing — the answers are read back instead of solved again.
    NaN stands for None ("use exact"; an unknown ratio boundary), as in ``levels_batch``.
    Floats are compared with their signs (0.0 == -0.0, but a solver could tell them apart).
    """

    def __init__(self) -> None:
        self.ok = np.zeros(0, dtype=bool)  # answers held for the inputs below
        self.call_ok = np.zeros(0, dtype=bool)  # the call level was asked for too
        self.qty = np.zeros(0, dtype=np.int64)
        self.cross = np.zeros(0, dtype=bool)
        # entry, margin, rate; liquidation level, call level, ratio boundary lo, hi
        self.floats = np.zeros((0, 7), dtype=np.float64)

    def grow(self, size: int) -> None:
        """Make room for ordinals below ``size``."""
        have = len(self.ok)
        if size > have:
            extra = max(size, 2 * have) - have
            self.ok = np.concatenate([self.ok, np.zeros(extra, dtype=bool)])
            self.call_ok = np.concatenate([self.call_ok, np.zeros(extra, dtype=bool)])
            self.qty = np.concatenate([self.qty, np.zeros(extra, dtype=np.int64)])
            self.cross = np.concatenate([self.cross, np.zeros(extra, dtype=bool)])
            self.floats = np.concatenate([self.floats, np.zeros((extra, 7))])

    def get(self, o: int, qty: int, entry: float, margin: float, rate: float,
            cross: bool) -> tuple[float | None, tuple[float, float] | None, object] | None:
        """(liquidation level, ratio boundary, call level or ``_UNSOLVED``) solved from these
        very inputs, or None."""
        if not self.ok.item(o) or self.qty.item(o) != qty or self.cross.item(o) != cross:
            return None
        held = self.floats[o].tolist()
        if held[0] != entry or not _same_float(held[1], margin) \
                or not _same_float(held[2], rate):
            return None
        liq, call, lo, hi = held[3:]
        return (None if liq != liq else liq, None if lo != lo else (lo, hi),
                (None if call != call else call) if self.call_ok.item(o) else _UNSOLVED)

    def put(self, o: int, inputs: tuple[int, float, float, float, bool], liq: float | None,
            boundary: tuple[float, float] | None, call: object) -> None:
        """Hold one scalar solve's answers (``call``: ``_UNSOLVED`` if not asked for)."""
        qty, entry, margin, rate, cross = inputs
        lo, hi = (math.nan, math.nan) if boundary is None else boundary
        if lo != lo:  # a boundary with a NaN in it would read back as None: not held
            self.ok[o] = False
            return
        self.ok[o] = True
        self.call_ok[o] = call is not _UNSOLVED
        self.qty[o] = qty
        self.cross[o] = cross
        held_call = math.nan if call is None or call is _UNSOLVED else cast(float, call)
        self.floats[o] = (entry, margin, rate, math.nan if liq is None else liq, held_call, lo,
                          hi)

    def put_many(self, ordinals: np.ndarray, qty: np.ndarray, entry: np.ndarray,
                 margin: np.ndarray, rate: float, cross: np.ndarray,
                 answers: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Hold a batch's answers (``levels_batch``: liquidation, call, boundary lo, hi)."""
        liqs, calls, los, his = answers
        self.ok[ordinals] = True
        self.call_ok[ordinals] = True
        self.qty[ordinals] = qty
        self.cross[ordinals] = cross
        self.floats[ordinals] = np.column_stack(
            [entry, margin, np.full(len(ordinals), rate), liqs, calls, los, his])

    def forget(self, o: int) -> None:
        """Hold nothing for this ordinal."""
        self.ok[o] = False


def _same_float(a: float, b: float) -> bool:
    """Equal, with the same sign (tells 0.0 from -0.0)."""
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


class SymbolLevels:
    """The four indexes of one symbol (see the module docstring) and its positions' rows."""

    def __init__(self, symbol: str, solver: Solver) -> None:
        self.symbol = symbol
        self.solver = solver
        self.rows = PositionRows()
        self.below = SortedLevels()  # candidate when mark ≤ level
        self.above = SortedLevels()  # candidate when mark ≥ level
        self.watch_below = SortedLevels()  # longs: the watcher's mark_lo is the top
        self.watch_above = SortedLevels()  # shorts: the watcher's mark_hi is the bottom
        self.rate: Decimal | None = None  # funding rate the levels were computed with
        self.solved = SolvedLevels()  # the float solver's last answers per ordinal

    @property
    def indexes(self) -> tuple[SortedLevels, ...]:
        """The four indexes, in the order ``assign`` takes their levels."""
        return self.below, self.above, self.watch_below, self.watch_above

    def grow(self, size: int) -> None:
        """Make room for ordinals below ``size``."""
        self.rows.grow(size)
        self.solved.grow(size)
        for index in self.indexes:
            index.grow(size)

    def assign(self, ordinal: int, levels: tuple[float | None, ...]) -> None:
        """Set an ordinal's four levels (None: absent from that index)."""
        for index, level in zip(self.indexes, levels, strict=True):
            if level is None:
                index.drop(ordinal)
            else:
                index.set(ordinal, level)

    def reached(self, ordinal: int, mark: float) -> bool:
        """True if the ordinal is a candidate at ``mark``."""
        below = self.below.get(ordinal)
        above = self.above.get(ordinal)
        return ((below is not None and mark * (1 - _SLACK) <= below)
                or (above is not None and mark * (1 + _SLACK) >= above))

    @property
    def empty(self) -> bool:
        """True if no position on this symbol can become a candidate."""
        return not self.below and not self.above

    def has(self, ordinal: int) -> bool:
        """True if the ordinal has a level in this symbol's candidate indexes."""
        return ordinal in self.below or ordinal in self.above

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
        self._dirty: set[str] = set()  # accounts whose positions may have changed
        self._moved: list[np.ndarray] = []  # ordinals whose balances moved (batch postings)
        # The last batch posting's owners, the accounts known then, and their ordinals: an
        # unchanged crowd's settlements name the same owners in the same order.
        self._owners: tuple[tuple[str | None, ...], int, np.ndarray] = (
            (), 0, np.empty(0, dtype=np.int64))
        self._full = True
        self._journal_seen = 0
        self._postings_seen = 0
        self._last_posting: object = None
        self.recomputed = 0  # positions recomputed (for benchmarks)

    # ---- keeping up to date ------------------------------------------------------------------
    def sync(self) -> np.ndarray:
        """Recompute whatever changed since the last call; the ordinals recomputed (sorted).

        Accounts named by a journal event, a single posting or ``touch`` have their positions'
        rows re-read; then every position whose inputs moved (those, the holders a batch
        posting paid, a whole symbol when its funding rate counts in MM and moved) is solved
        again from the rows and its margin balance.
        """
        changed = self._sync()
        return changed if isinstance(changed, np.ndarray) else np.array(changed, dtype=np.int64)

    def _sync(self) -> np.ndarray | list[int]:
        """``sync``; a few accounts named and no batch posting (a liquidation's own records)
        are handled as a list, without the arrays: the ordinals (sorted, distinct)."""
        ex = self.ex
        if not self.symbols:
            for symbol in ex.pricers:
                self.symbols[symbol] = SymbolLevels(
                    symbol, Solver.of(ex.profile, ex.instruments[symbol]))
        if len(self.account_ids) < len(ex.accounts):
            for aid in itertools.islice(ex.accounts, len(self.account_ids), None):
                self.ordinal[aid] = len(self.account_ids)
                self.account_ids.append(aid)
            for levels in self.symbols.values():
                levels.grow(len(self.account_ids))
        self._read_journal()
        self._read_ledger()
        if self._full:
            self._full = False
            refresh = list(range(len(self.account_ids)))
        else:
            refresh = sorted(self.ordinal[a] for a in self._dirty if a in self.ordinal)
        self._dirty.clear()
        if not self._moved and len(refresh) < _BATCH_AT and len(refresh) <= _REBUILD_AT:
            return self._sync_few(refresh)
        return self._sync_arrays(refresh)

    def _sync_arrays(self, refresh: list[int]) -> np.ndarray:
        """``_sync``'s solve as arrays: the accounts ``refresh`` (ordinals, sorted) re-read,
        then every position whose inputs moved solved again; the ordinals solved."""
        ex = self.ex
        # Sorted, distinct; sized by what changed, not by the crowd (a liquidation names a few).
        changed = np.array(refresh, dtype=np.int64)
        if self._moved:
            parts = [changed, *self._moved] if refresh else self._moved
            # One settlement's holders: in position order, so usually sorted already.
            changed = parts[0] if len(parts) == 1 and _increasing(parts[0]) else np.unique(
                np.concatenate(parts))
            self._moved = []
        if refresh:
            self._refresh(refresh)
        solved = [changed]
        for symbol, levels in self.symbols.items():
            held = levels.rows.held
            if levels.solver.funding_in_mm and (
                    rate := ex.mark_funding_rate(symbol)) != levels.rate:
                levels.rate = rate  # every position on the symbol: MM counts funding
                ordinals = np.flatnonzero(held)
                solved.append(ordinals)
            else:
                ordinals = changed[held[changed]]
            self._solve(levels, ordinals)
        if len(solved) > 1:
            changed = np.unique(np.concatenate(solved))
        return changed

    def _sync_few(self, refresh: list[int]) -> np.ndarray | list[int]:
        """The rest of ``_sync`` for a few accounts (sorted, distinct ordinals) and no batch
        posting: the same rows re-read and the same positions solved, one by one as ``_solve``
        solves so few, without building arrays for them."""
        if refresh:
            self._refresh(refresh)
        solved: list[np.ndarray] = []
        for symbol, levels in self.symbols.items():
            if levels.solver.funding_in_mm and (
                    rate := self.ex.mark_funding_rate(symbol)) != levels.rate:
                levels.rate = rate  # every position on the symbol: MM counts funding
                ordinals = np.flatnonzero(levels.rows.held)
                solved.append(ordinals)
                self._solve(levels, ordinals)
                continue
            held = levels.rows.held
            few = [o for o in refresh if held[o]]
            if not few:
                continue
            for index in levels.indexes:  # as _solve sets it: fewer than _REBUILD_AT
                index.batch = False
            for o in few:
                levels.assign(o, self._levels(levels, o))
            self.recomputed += len(few)
        if solved:
            return np.unique(np.concatenate([np.array(refresh, dtype=np.int64), *solved]))
        return refresh

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
                if isinstance(p, BatchPosting):  # balances only: its legs' owners, as ordinals
                    self._moved.append(self._ordinals_of(p.owners))
                    continue
                for name in (p.source, p.destination):
                    if name.startswith(("wallet:", "isolated:")):
                        self._dirty.add(name.split(":", 2)[1])
        self._postings_seen = n
        self._last_posting = postings[n - 1] if n else None

    def _ordinals_of(self, owners: tuple[str | None, ...]) -> np.ndarray:
        """The ordinals of a batch posting's owners (None, the venue's accounts: left out)."""
        last, known, found = self._owners
        if known != len(self.account_ids) or owners != last:  # equal: the same str objects
            ordinal = cast("Callable[[str | None, int], int]", self.ordinal.get)
            found = np.fromiter(map(ordinal, owners, itertools.repeat(-1)), dtype=np.int64,
                                count=len(owners))
            found = found[found >= 0]
            self._owners = (owners, len(self.account_ids), found)
        return found

    def _refresh(self, ordinals: list[int]) -> None:
        """Re-read the positions of these accounts into the rows; drop the levels of positions
        the index no longer solves (closed, or the account became volatile)."""
        ex = self.ex
        for o in ordinals:
            aid = self.account_ids[o]
            account = ex.accounts[aid]
            if len(account.positions) == 1:  # the crowd's usual case: one record, no doubt
                (only,) = account.positions.values()
                volatile = only.position_side != "BOTH"
            else:
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
                    if levels.rows.held[o]:  # levels exist only for held rows
                        levels.rows.clear(o)
                        levels.solved.forget(o)
                        for index in levels.indexes:
                            index.drop(o)
                else:
                    levels.rows.put(o, aid, pos)

    def _solve(self, levels: SymbolLevels, ordinals: np.ndarray) -> None:
        """Solve these ordinals' positions on one symbol again: as arrays when many (one
        ``fast_levels.levels_batch``, bit for bit the scalar solver), else one by one."""
        if not len(ordinals):
            return
        batch = len(ordinals) > _REBUILD_AT
        for index in levels.indexes:
            index.batch = batch
        if len(ordinals) >= _BATCH_AT and batch_supported(levels.solver):
            self._solve_many(levels, ordinals)
        else:
            for o in ordinals.tolist():
                levels.assign(o, self._levels(levels, o))
        if batch:
            for index in levels.indexes:
                index.settle()
        self.recomputed += len(ordinals)

    def _position(self, levels: SymbolLevels, o: int) -> tuple[str, Position]:
        aid = self.account_ids[o]
        return aid, self.ex.accounts[aid].positions[levels.symbol]

    def _levels(self, levels: SymbolLevels, o: int) -> tuple[float | None, ...]:
        """(below, above, watch below, watch above) of one position, from its row."""
        ex, rows, solver = self.ex, levels.rows, levels.solver
        holder = rows.holder[o]
        assert isinstance(holder, str)
        margin = float(ex.ledger.balance(holder))
        # ``item``: the element as a Python int, float or bool (what int(), float(), bool()
        # of the element give), without a numpy scalar in between.
        qty, entry, cross = rows.qty.item(o), rows.entry.item(o), rows.cross.item(o)
        called = rows.called.item(o)
        rate = float(levels.rate) if solver.funding_in_mm and levels.rate is not None else 0.0
        known = levels.solved.get(o, qty, entry, margin, rate, cross)
        if known is not None:  # solved from these very inputs before: the same answers
            liq, boundary, solved_call = known
        else:
            liq = solver.liquidation_level(qty, entry, margin, rate, cross=cross)
            boundary = solver.ratio_boundary(qty, entry, margin, rate, cross=cross)
            solved_call = _UNSOLVED
        call: float | None = INF if qty > 0 else -INF  # unused after a call
        if not called:
            if solved_call is _UNSOLVED:
                solved_call = solver.call_level(qty, entry, margin, rate, cross=cross)
            call = cast("float | None", solved_call)
        levels.solved.put(o, (qty, entry, margin, rate, cross), liq, boundary, solved_call)
        if liq is None:
            liq = _exact_level(ex, *self._position(levels, o), Decimal(1))
        if call is None:
            call = _exact_level(ex, *self._position(levels, o),
                                1 / ex.profile.liquidation.margin_call_ratio)
        return _combine(qty > 0, called, liq, call, boundary)

    def _solve_many(self, levels: SymbolLevels, ordinals: np.ndarray) -> None:
        ex, rows, solver = self.ex, levels.rows, levels.solver
        margin = self._margins(rows, ordinals)
        qty, entry = rows.qty[ordinals], rows.entry[ordinals]
        cross, called = rows.cross[ordinals], rows.called[ordinals]
        rate = float(levels.rate) if solver.funding_in_mm and levels.rate is not None else 0.0
        liqs, calls, los, his = levels_batch(solver, qty, entry, margin, rate, cross)
        levels.solved.put_many(ordinals, qty, entry, margin, rate, cross,
                               (liqs, calls, los, his))
        # The rare rows the float solve leaves to exact arithmetic (NaN), one by one.
        for i in np.flatnonzero(np.isnan(liqs)).tolist():
            liqs[i] = _exact_level(ex, *self._position(levels, int(ordinals[i])), Decimal(1))
        call_scale = 1 / ex.profile.liquidation.margin_call_ratio
        for i in np.flatnonzero(np.isnan(calls) & ~called).tolist():
            calls[i] = _exact_level(ex, *self._position(levels, int(ordinals[i])), call_scale)
        four = combine_batch(qty > 0, called, liqs, calls, los, his)
        if levels.below.batch:  # the four indexes in bulk (they are re-sorted at the end)
            for index, column in zip(levels.indexes, four, strict=True):
                index.set_array(ordinals, column)
        else:
            columns = [[None if v != v else v for v in column.tolist()] for column in four]
            for k, o in enumerate(ordinals.tolist()):
                levels.assign(o, tuple(column[k] for column in columns))

    def _margins(self, rows: PositionRows, ordinals: np.ndarray) -> np.ndarray:
        """The holders' margin balances as floats, ``float(balance)`` bit for bit: from the
        ledger's integer steps where they are exact (units / steps-per-coin: two exact floats,
        one correctly rounded division, as float(Decimal) rounds the same value), else from
        the Decimal balance."""
        ledger = self.ex.ledger
        if rows.slot_epoch != ledger.slot_epoch:  # slots were given again: ask again
            rows.slot[:] = -1
            rows.slot_epoch = ledger.slot_epoch
        slots = rows.slot[ordinals]
        if (slots < 0).any():
            unknown = ordinals[slots < 0]
            rows.slot[unknown] = ledger.slots(rows.holder[unknown].tolist())
            slots = rows.slot[ordinals]
        margin = np.full(len(ordinals), np.nan)
        per_coin = Decimal(1) / ledger.step
        fast = slots >= 0
        if per_coin == per_coin.to_integral_value() and per_coin < 2 ** 53 and fast.any():
            units = ledger.units_at(slots[fast])
            exact = ledger.units_exact(slots[fast]) & (np.abs(units) < 2 ** 53)
            fast[fast] = exact
            margin[fast] = units[exact] / float(per_coin)
        else:
            fast[:] = False
        if not fast.all():
            slow = ~fast
            margin[slow] = [float(b) for b in ledger.peek_balances(
                rows.holder[ordinals[slow]].tolist())]
        return margin

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
            found = self._sync()
            changed = found.tolist() if isinstance(found, np.ndarray) else found
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


def _combine(long: bool, called: bool, liq: float, call: float,
             boundary: tuple[float, float] | None) -> tuple[float | None, ...]:
    """(below, above, watch below, watch above) from a position's side, whether its margin
    call was sent, its liquidation level, its margin-call level (unused after a call) and its
    ratio boundary (None: unknown)."""
    # Unknown boundary: always a candidate (before a call) or always re-checked (after).
    lo, hi = boundary if boundary is not None else (-INF, INF)
    if long:
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


def _increasing(ordinals: np.ndarray) -> bool:
    """True if the ordinals are sorted and distinct."""
    return bool(np.all(ordinals[1:] > ordinals[:-1]))


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
