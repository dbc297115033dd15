"""Importers: the files people already have → one pair's Series for a store (sim/data_store.py).

Formats (each file a CSV, a zip of CSVs or a gzipped CSV; with or without a header line):

* ``binance`` — data.binance.vision COIN-M (or USD-M) archives, daily or monthly: ``klines``
  (last price), ``markPriceKlines``, ``indexPriceKlines``, ``premiumIndexKlines`` (12 columns:
  open_time, open, high, low, close, volume, close_time, ...; a header is read by name, so
  trimmed files with open_time/open/high/low/close work too) and ``fundingRate`` (calc_time,
  funding_interval_hours, last_funding_rate). The kind comes from the file name
  (``BTCUSD_PERP-markPriceKlines-1m-2022-06-13.zip``) unless given.
* ``bybit`` — public.bybit.com ``kline_for_metatrader4`` files (no header: ``YYYY.MM.DD
  HH:MM`` in UTC+3, open, high, low, close, volume; moved to UTC), ``spot_index`` /
  ``premium_index`` files (start_at in seconds, symbol, period, open, high, low, close), kline
  files in the v5 API layout (startTime, open, high, low, close, ...; the kind ``kline`` /
  ``mark`` / ``index`` / ``premium`` from the name or given) and funding history (symbol,
  fundingRate, fundingRateTimestamp, with a header; Bybit publishes no funding archive).
* ``tardis`` — Tardis.dev ``derivative_ticker`` CSV (timestamp µs, funding_timestamp,
  funding_rate, last_price, index_price, mark_price, ...).
* ``csv`` — any CSV, with a mapping of its columns: ``time`` and some of ``index``, ``perp``,
  ``mark``, ``last``, ``funding_rate``.

What becomes of the columns: index ← index prices (else mark, else last, noted); perp ← last,
else mark, else index × (1 + premium), else nothing (a perp is derived with the seeded basis
when the scenario loads). A kline bar at open time t and interval I becomes four rows (open at
t, the extremes at t + I/4 and t + I/2 — low first on an up bar, high first on a down bar —
and the close at t + 3I/4) so a wick that would liquidate is replayed; ``bars="open"`` keeps
one row per bar (its open). Series on different time grids are joined by holding each price
until its next row. Funding times are snapped to the whole minute (Binance stamps calc_time a
few ms after the funding instant; the engine settles at exact funding times).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from perpsim.sim.data_store import Series
from perpsim.sim.data_tables import MT4_DATE, Table, floats, order, read_tables, times
from perpsim.sim.errors import ScenarioError

PriceKind = Literal["index", "mark", "last", "premium"]
BarPath = Literal["ohlc", "open"]
BINANCE_KINDS = {"klines": "last", "markPriceKlines": "mark", "indexPriceKlines": "index",
                 "premiumIndexKlines": "premium", "fundingRate": "funding"}
# Checked in this order against the file name: "premium_index" is a premium, "spot_index" an index.
BYBIT_KINDS = {"kline": "last", "mark": "mark", "premium": "premium", "index": "index",
               "funding": "funding"}
MT4_UTC_OFFSET_MS = 3 * 3_600_000  # Bybit's kline_for_metatrader4 files are stamped in UTC+3
MAPPABLE = ("time", "index", "perp", "mark", "last", "funding_rate")
MINUTE_MS = 60_000


@dataclass
class Imported:
    """What the files gave: price series by kind, funding, and notes for the user."""

    prices: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    funding: tuple[np.ndarray, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)
    files: int = 0
    rows: int = 0

    def add_prices(self, kind: str, t: np.ndarray, v: np.ndarray, label: str) -> None:
        self.prices[kind] = _append(self.prices.get(kind), (t, v), kind, label)

    def add_funding(self, t: np.ndarray, r: np.ndarray, label: str) -> None:
        bad = np.flatnonzero(np.abs(r) > 1.0)
        if len(bad):
            raise ScenarioError(f"{label}: funding rate {r[bad[0]]!r} is beyond ±1 (a percent "
                                "instead of a fraction?)")
        self.funding = _append(self.funding, (t, r), "funding", label)


def _append(have: tuple[np.ndarray, np.ndarray] | None, new: tuple[np.ndarray, np.ndarray],
            kind: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Two files of one kind joined: they must not overlap (daily + monthly of one day)."""
    if have is None:
        return new
    parts = sorted([have, new], key=lambda p: int(p[0][0]))
    if int(parts[1][0][0]) <= int(parts[0][0][-1]):
        raise ScenarioError(f"{label}: its {kind} rows overlap another file's (the same days "
                            "given twice, e.g. a daily and a monthly file?)")
    return (np.concatenate([parts[0][0], parts[1][0]]),
            np.concatenate([parts[0][1], parts[1][1]]))


# ---- klines -------------------------------------------------------------------------------------
def _kline_columns(table: Table) -> tuple[int, int, int, int, int, int | None]:
    """Positions of open time, open, high, low, close, close time (None if absent)."""
    if table.header is None:
        return 0, 1, 2, 3, 4, (6 if len(table.columns) >= 7 else None)
    t = table.need("open_time", "startTime", "start_time", "start_at", "open time", "timestamp",
                   "time")
    o, h, lo, c = (table.need(n) for n in ("open", "high", "low", "close"))
    close_time = table.find("close_time", "close time", required=False)
    return t, o, h, lo, c, close_time


def read_klines(table: Table, kind: str, bars: BarPath, *, sort: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """One kline table as rows (bar path ``bars``); prices positive unless a premium."""
    t_i, o_i, h_i, l_i, c_i, ct_i = _kline_columns(table)
    opens_ms = times(table, t_i, "open time")
    positive = kind != "premium"
    o, h, lo, c = (floats(table, i, f"{name} ({kind})", positive=positive)
                   for i, name in ((o_i, "open"), (h_i, "high"), (l_i, "low"), (c_i, "close")))
    interval = _interval(table, opens_ms, ct_i)  # before sorting: row 0 is the file's row 0
    perm = order(table, opens_ms, sort=sort, what="open time")
    opens_ms, o, h, lo, c = opens_ms[perm], o[perm], h[perm], lo[perm], c[perm]
    broken = np.flatnonzero((lo > np.minimum(o, c)) | (h < np.maximum(o, c)))
    if len(broken):
        raise table.error(int(perm[broken[0]]), "low/high do not contain open and close")
    return bar_path(opens_ms, o, h, lo, c, interval, bars)


def _interval(table: Table, opens_ms: np.ndarray, close_col: int | None) -> int:
    """The bar interval: close_time − open_time + 1 when given, else the smallest step."""
    if close_col is not None:
        closes = times(table, close_col, "close time", unit="ms")
        return int(closes[0] - opens_ms[0] + 1) if closes[0] > opens_ms[0] else MINUTE_MS
    steps = np.abs(np.diff(opens_ms))
    steps = steps[steps > 0]
    return int(steps.min()) if len(steps) else MINUTE_MS


def bar_path(opens_ms: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
             interval_ms: int, bars: BarPath) -> tuple[np.ndarray, np.ndarray]:
    """Bars as price rows: their opens, or open / extremes / close inside each bar."""
    if bars == "open":
        return opens_ms.copy(), o.copy()
    if interval_ms < 4:
        raise ScenarioError(f"bar interval {interval_ms} ms is too short to place four rows")
    up = c >= o
    quarter = interval_ms // 4
    t = (opens_ms[:, None] + np.array([0, quarter, 2 * quarter, 3 * quarter])).ravel()
    v = np.column_stack((o, np.where(up, lo, h), np.where(up, h, lo), c)).ravel()
    return t, v


# ---- funding ------------------------------------------------------------------------------------
def snap_minute(t_ms: np.ndarray) -> np.ndarray:
    """Times rounded to the nearest whole minute."""
    return (t_ms + MINUTE_MS // 2) // MINUTE_MS * MINUTE_MS


def read_binance_funding(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """calc_time, funding_interval_hours, last_funding_rate."""
    if table.header is None:
        t_i, r_i = 0, 2
    else:
        t_i = table.need("calc_time", "fundingTime")
        r_i = table.need("last_funding_rate", "fundingRate")
    t = snap_minute(times(table, t_i, "calc_time"))
    r = floats(table, r_i, "funding rate", positive=False)
    perm = order(table, t, sort=False, what="funding time")
    return t[perm], r[perm]


def read_bybit_funding(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """Bybit v5 funding history: fundingRate at fundingRateTimestamp (newest first is fine)."""
    t_i = table.need("fundingRateTimestamp", "timestamp", "time")
    r_i = table.need("fundingRate", "funding_rate")
    t = snap_minute(times(table, t_i, "fundingRateTimestamp"))
    r = floats(table, r_i, "fundingRate", positive=False)
    if len(t) > 1 and t[0] > t[-1]:  # the API lists newest first; files keep that order
        t, r = t[::-1].copy(), r[::-1].copy()
    perm = order(table, t, sort=False, what="fundingRateTimestamp")
    return t[perm], r[perm]


# ---- the formats --------------------------------------------------------------------------------
def _kind_from_name(path: Path, kinds: dict[str, str], default: str | None) -> str:
    name = path.name
    for token, kind in kinds.items():  # "kline" is in every kline file's name: last price
        if kind != "last" and token.lower() in name.lower():
            return kind
    if default is None:
        raise ScenarioError(f"{path}: cannot tell the data kind from the name; give --kind "
                            f"({', '.join(kinds)})")
    return default


def import_binance(paths: list[Path], *, kind: str | None = None, bars: BarPath = "ohlc",
                   sort: bool = False) -> Imported:
    """Binance public-data archives (see the module docstring)."""
    return _import_venue(paths, BINANCE_KINDS, read_binance_funding, kind, bars, sort)


def import_bybit(paths: list[Path], *, kind: str | None = None, bars: BarPath = "ohlc",
                 sort: bool = False) -> Imported:
    """Bybit kline and funding-history files (see the module docstring)."""
    return _import_venue(paths, BYBIT_KINDS, read_bybit_funding, kind, bars, sort,
                         mt4_offset_ms=MT4_UTC_OFFSET_MS)


FundingReader = Callable[[Table], tuple[np.ndarray, np.ndarray]]


def _import_venue(paths: list[Path], kinds: dict[str, str], funding_reader: FundingReader,
                  kind: str | None, bars: BarPath, sort: bool, *, mt4_offset_ms: int = 0
                  ) -> Imported:
    """Kline and funding files of one venue, each file's kind given or read from its name.
    Klines with MetaTrader dates are moved by ``mt4_offset_ms`` to UTC."""
    out = Imported()
    for path in paths:
        what = kinds[kind] if kind else _kind_from_name(path, kinds, "last")
        for table in read_tables(path):
            out.rows += len(table)
            if what == "funding":
                out.add_funding(*funding_reader(table), table.label)
                continue
            t, v = read_klines(table, what, bars, sort=sort)
            if mt4_offset_ms and MT4_DATE.match(table.first(0)):
                t = t - mt4_offset_ms
                out.notes.append(f"{table.label}: MetaTrader times read as UTC+"
                                 f"{mt4_offset_ms // 3_600_000} and moved to UTC")
            out.add_prices(what, t, v, table.label)
        out.files += 1
    return out


def import_tardis(paths: list[Path], *, sort: bool = False) -> Imported:
    """Tardis.dev derivative_ticker CSVs: index, last and mark prices and settled funding."""
    out = Imported()
    for path in paths:
        for table in read_tables(path, header=True):
            out.rows += len(table)
            t_i = table.need("timestamp")
            t = times(table, t_i, "timestamp", unit="us")
            perm = order(table, t, sort=sort, what="timestamp")
            for column, what in (("index_price", "index"), ("last_price", "last"),
                                 ("mark_price", "mark")):
                i = table.find(column, required=False)
                if i is not None:
                    got = _sparse_prices(table, i, t, perm, what)
                    if got is not None:
                        out.add_prices(what, *got, table.label)
            funding = _tardis_funding(table, t, perm)
            if funding is not None:
                out.add_funding(*funding, table.label)
        out.files += 1
    return out


def _sparse_prices(table: Table, column: int, t: np.ndarray, perm: np.ndarray, what: str
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """A price column where empty cells mean "no update": the rows that have one."""
    have = table.nonempty(column)
    if not have.any():
        return None
    rows = perm[have[perm]]
    return t[rows], floats(table.subset(rows, [column]), 0, what, positive=True)


def _tardis_funding(table: Table, t: np.ndarray, perm: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """The rate each funding time settled: the last funding_rate quoted for that
    funding_timestamp before it passed (times still to come at the file's end are left out)."""
    f_i, r_i = table.find("funding_timestamp", required=False), table.find(
        "funding_rate", required=False)
    if f_i is None or r_i is None:
        return None
    have = table.nonempty(f_i) & table.nonempty(r_i)
    rows = perm[have[perm]]
    if not len(rows):
        return None
    sub = table.subset(rows, [f_i, r_i])
    f_ms = times(sub, 0, "funding_timestamp", unit="us")
    rates = floats(sub, 1, "funding_rate", positive=False)
    settled = (t[rows] <= f_ms) & (f_ms <= int(t[perm[-1]]))
    f_ms, rates = f_ms[settled], rates[settled]
    if not len(f_ms):
        return None
    # Rows are in time order: the last quote of each funding time is the one that settled.
    keys, first_from_end = np.unique(f_ms[::-1], return_index=True)
    return snap_minute(keys), rates[len(f_ms) - 1 - first_from_end]


def parse_mapping(text: str) -> dict[str, str]:
    """``time=ts,index=index_price,...`` → {perpsim column: file column}."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key or not value:
            raise ScenarioError(f"--map: {part!r} is not NAME=COLUMN (e.g. time=ts,index=price)")
        if key not in MAPPABLE:
            raise ScenarioError(f"--map: unknown name {key!r} (known: {', '.join(MAPPABLE)})")
        if key in mapping:
            raise ScenarioError(f"--map: {key!r} is mapped twice")
        mapping[key] = value
    if "time" not in mapping or len(mapping) < 2:
        raise ScenarioError("--map needs time=COLUMN and at least one of "
                            f"{', '.join(MAPPABLE[1:])}")
    return mapping


def import_mapped(paths: list[Path], mapping: dict[str, str], *, time_unit: str = "auto",
                  sort: bool = False, funding_hours: tuple[int, ...] | None = None) -> Imported:
    """Any CSV with a header, its columns named by ``mapping``. A file may hold only some of
    the mapped columns (prices in one file, funding in another); each needs the time column
    and at least one other. ``funding_hours`` keeps only funding rows on those whole UTC hours
    (for venues that quote an 8-hour rate every hour)."""
    out = Imported()
    for path in paths:
        for table in read_tables(path, header=True):
            out.rows += len(table)
            t_i = table.need(mapping["time"])
            values = {k: v for k, v in mapping.items() if k != "time"}
            found = {k: table.find(v, required=False) for k, v in values.items()}
            present = {k: i for k, i in found.items() if i is not None}
            if not present:
                raise ScenarioError(f"{table.label}, line 1 (header): none of the mapped "
                                    f"columns {', '.join(values.values())} is in the file")
            t = times(table, t_i, mapping["time"], unit=time_unit)
            perm = order(table, t, sort=sort, what=mapping["time"])
            if sort and not np.array_equal(perm, np.arange(len(perm))):
                moved = int(np.count_nonzero(perm != np.arange(len(perm))))
                out.notes.append(f"{table.label}: {moved} rows were out of time order; sorted")
            for key, i in present.items():
                if key == "funding_rate":
                    rows = perm[table.nonempty(i)[perm]]
                    f_t = t[rows]
                    rates = floats(table.subset(rows, [i]), 0, mapping[key], positive=False)
                    if funding_hours is not None:
                        on = (f_t % 3_600_000 == 0) & np.isin(f_t // 3_600_000 % 24,
                                                              funding_hours)
                        f_t, rates = f_t[on], rates[on]
                    out.add_funding(snap_minute(f_t), rates, table.label)
                else:
                    got = _sparse_prices(table, i, t, perm, mapping[key])
                    if got is None:
                        raise ScenarioError(f"{table.label}: column {mapping[key]!r} is empty")
                    kind = "last" if key == "perp" else key
                    out.add_prices(kind, *got, table.label)
        out.files += 1
    return out


# ---- assembling a Series ------------------------------------------------------------------------
def hold_join(grid: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``v`` (set at times ``t``) as held at each time of ``grid`` (which starts at or after
    ``t[0]``)."""
    return v[np.searchsorted(t, grid, side="right") - 1]


def to_series(data: Imported) -> Series:
    """The store columns from what was imported (choices in the module docstring); notes on
    fallbacks and gaps are added to ``data.notes``."""
    p = data.prices
    if not p:
        raise ScenarioError("no prices in the files (only funding?): import price files too")
    index_kind = next(k for k in ("index", "mark", "last") if k in p) if (
        "index" in p or "mark" in p or "last" in p) else None
    if index_kind is None:
        raise ScenarioError("premium-index klines alone give no price: add index klines")
    if index_kind != "index":
        data.notes.append(f"no index prices: the {index_kind} price stands in for the index "
                          "(the perp is then derived with the seeded basis)")
    perp_kind = None if index_kind != "index" else next(
        (k for k in ("last", "mark") if k in p), None)
    t_idx, v_idx = p[index_kind]
    starts = [int(t_idx[0])]
    if perp_kind is not None:
        starts.append(int(p[perp_kind][0][0]))
    elif index_kind == "index" and "premium" in p:
        starts.append(int(p["premium"][0][0]))
    begin = max(starts)
    grid_parts = [t_idx[t_idx >= begin]]
    if perp_kind is not None:
        grid_parts.append(p[perp_kind][0][p[perp_kind][0] >= begin])
    elif index_kind == "index" and "premium" in p:
        grid_parts.append(p["premium"][0][p["premium"][0] >= begin])
    grid = np.unique(np.concatenate(grid_parts)) if len(grid_parts) > 1 else grid_parts[0]
    if not len(grid):
        raise ScenarioError("the index and perp files do not overlap in time")
    index = hold_join(grid, t_idx, v_idx)
    perp = None
    if perp_kind is not None:
        perp = hold_join(grid, *p[perp_kind])
    elif index_kind == "index" and "premium" in p:
        perp = index * (1.0 + hold_join(grid, *p["premium"]))
        data.notes.append("perp = index × (1 + premium index): no last or mark klines given")
    elif index_kind == "index":
        data.notes.append("no last or mark prices: the perp is derived with the seeded basis")
    if begin > int(t_idx[0]):
        data.notes.append("rows before both index and perp exist were left out")
    data.notes.extend(gap_notes(t_idx))
    f_t, f_r = data.funding if data.funding is not None else (np.zeros(0, np.int64),
                                                             np.zeros(0, np.float64))
    return Series(grid, index, perp, f_t, f_r)


def gap_notes(t_ms: np.ndarray, limit: int = 3) -> list[str]:
    """Gaps longer than twice the usual step (the median), largest first."""
    if len(t_ms) < 3:
        return []
    steps = np.diff(t_ms)
    usual = int(np.median(steps))
    big = np.flatnonzero(steps > 2 * usual)
    if not len(big):
        return []
    from perpsim.sim.synthetic import format_time_ms

    worst = big[np.argsort(steps[big])[::-1][:limit]]
    listed = "; ".join(f"{format_time_ms(int(t_ms[i]))} → {format_time_ms(int(t_ms[i + 1]))}"
                       for i in worst)
    return [f"{len(big)} gap(s) longer than twice the usual step of {usual // 1000} s "
            f"(prices hold across them): {listed}"]
