"""Market-data stores: long real price paths in Parquet, read one time window at a time.

A store is a directory::

    store.json                 what it holds (format, name, description, partitions, pairs)
    SOURCE.txt                 where the data came from and under which licence (optional)
    BTCUSD/2022-06-13.parquet  one file per day (or per month for sparse data): time_ms, index
                               and, when recorded, perp
    BTCUSD/funding.parquet     the funding rates settled at their times: time_ms, rate

``store.json`` lists every price file with its first and last time and row count, so a window
picks its files without opening the others and the reader allocates the output arrays once:
each file is memory-mapped, decoded and copied into its slice, then dropped. Peak memory is the
arrays the engine uses plus one file's columns, whatever the length of the store.

Each row's prices hold until the next row (as in scenario CSVs). A window [start, end] also
returns the row in force at ``start`` (the last one at or before it), so a replay starting
between two rows starts at the right price. Nothing here reads the wall clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from perpsim.sim.errors import ScenarioError

STORE_FORMAT = "perpsim-store/1"
META_FILE = "store.json"
SOURCE_FILE = "SOURCE.txt"
FUNDING_FILE = "funding.parquet"
Partition = Literal["day", "month"]
PARTITIONS: tuple[Partition, ...] = ("day", "month")
DAY_MS = 86_400_000
_MAX_ABS_FUNDING = 1.0


@dataclass(frozen=True, eq=False)
class Series:
    """One pair's columns: times (strictly increasing epoch ms), index, perp (None when not
    recorded: the loader derives one) and the funding rates settled at ``funding_times_ms``."""

    times_ms: np.ndarray
    index: np.ndarray
    perp: np.ndarray | None = None
    funding_times_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    funding_rates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))

    def __len__(self) -> int:
        return len(self.times_ms)


@dataclass(frozen=True)
class PriceFile:
    """One partition file of a pair and what the manifest says it holds."""

    file: str  # relative to the store directory
    first_ms: int
    last_ms: int
    rows: int


@dataclass(frozen=True)
class PairInfo:
    """A pair's partition files and funding count."""

    has_perp: bool
    files: tuple[PriceFile, ...]
    funding_rows: int

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


@dataclass(frozen=True)
class StoreInfo:
    """A store's manifest (``store.json``) and its directory."""

    directory: Path
    name: str
    description: str
    partition: Partition
    pairs: dict[str, PairInfo]

    @property
    def start_ms(self) -> int:
        return min(p.files[0].first_ms for p in self.pairs.values())

    @property
    def end_ms(self) -> int:
        return max(p.files[-1].last_ms for p in self.pairs.values())

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.pairs.values())

    def source_note(self) -> str:
        """The text of SOURCE.txt, or an empty string."""
        path = self.directory / SOURCE_FILE
        return path.read_text(encoding="utf-8") if path.is_file() else ""


# ---- writing ------------------------------------------------------------------------------------
def check_series(pair: str, series: Series) -> None:
    """ScenarioError unless the columns are equal-length, sorted, finite and positive."""
    n = len(series.times_ms)
    if n == 0:
        raise ScenarioError(f"{pair}: no price rows")
    columns = [("index", series.index)] + ([("perp", series.perp)] if series.perp is not None
                                           else [])
    for what, values in columns:
        if len(values) != n:
            raise ScenarioError(f"{pair}: {what} has {len(values)} rows, times have {n}")
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if len(bad):
            raise ScenarioError(f"{pair}: {what} row {int(bad[0]) + 1} is not a positive "
                                f"finite price ({values[bad[0]]!r})")
    steps = np.flatnonzero(np.diff(series.times_ms) <= 0)
    if len(steps):
        raise ScenarioError(f"{pair}: times must increase strictly (row {int(steps[0]) + 2})")
    f_times, f_rates = series.funding_times_ms, series.funding_rates
    if len(f_times) != len(f_rates):
        raise ScenarioError(f"{pair}: funding times and rates differ in length")
    if len(f_times) > 1 and not bool(np.all(np.diff(f_times) > 0)):
        raise ScenarioError(f"{pair}: funding times must increase strictly")
    wrong = np.flatnonzero(~(np.isfinite(f_rates) & (np.abs(f_rates) <= _MAX_ABS_FUNDING)))
    if len(wrong):
        raise ScenarioError(f"{pair}: funding rate {f_rates[wrong[0]]!r} is not finite or "
                            "beyond ±1")


def partition_keys(times_ms: np.ndarray, partition: Partition) -> np.ndarray:
    """Each time's partition as text: ``YYYY-MM-DD`` (day) or ``YYYY-MM`` (month), UTC."""
    unit = "D" if partition == "day" else "M"
    return np.datetime_as_string(times_ms.astype("datetime64[ms]").astype(f"datetime64[{unit}]"))


def write_store(directory: Path, name: str, description: str, pairs: dict[str, Series], *,
                partition: Partition = "day", source_note: str | None = None,
                compression: str = "none") -> StoreInfo:
    """Write ``pairs`` as a store in ``directory`` (created; must not hold a store already).

    Uncompressed by default: second-by-second prices barely compress (a year at 1 s is 756 MB
    raw, 661 MB with snappy) and decoding is most of the time it takes to open a store; small
    bundled stores use zstd."""
    if partition not in PARTITIONS:
        raise ScenarioError(f"partition must be one of {', '.join(PARTITIONS)}, got {partition!r}")
    if not pairs:
        raise ScenarioError("a store needs at least one pair")
    for pair, series in pairs.items():
        check_series(pair, series)
    if (directory / META_FILE).exists():
        raise ScenarioError(f"{directory}: already holds a store ({META_FILE}); choose a new "
                            "directory")
    directory.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"format": STORE_FORMAT, "name": name,
                                "description": description, "partition": partition, "pairs": {}}
    for pair, series in pairs.items():
        (directory / pair).mkdir(exist_ok=True)
        times = np.ascontiguousarray(series.times_ms, dtype=np.int64)
        keys = partition_keys(times, partition)
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        ends = np.append(starts[1:], len(times))
        files = []
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            rel = f"{pair}/{keys[lo]}.parquet"
            columns = {"time_ms": times[lo:hi],
                       "index": np.asarray(series.index[lo:hi], dtype=np.float64)}
            if series.perp is not None:
                columns["perp"] = np.asarray(series.perp[lo:hi], dtype=np.float64)
            pq.write_table(pa.table(columns), directory / rel, compression=compression,
                           use_dictionary=False, write_statistics=False)
            files.append({"file": rel, "first_ms": int(times[lo]), "last_ms": int(times[hi - 1]),
                          "rows": hi - lo})
        funding = pa.table({"time_ms": np.asarray(series.funding_times_ms, dtype=np.int64),
                            "rate": np.asarray(series.funding_rates, dtype=np.float64)})
        pq.write_table(funding, directory / pair / FUNDING_FILE, compression=compression)
        manifest["pairs"][pair] = {"perp": series.perp is not None, "files": files,
                                   "funding_rows": len(series.funding_times_ms)}
    if source_note is not None:
        (directory / SOURCE_FILE).write_text(source_note, encoding="utf-8")
    (directory / META_FILE).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return open_store(directory)


# ---- reading ------------------------------------------------------------------------------------
def is_store(path: Path) -> bool:
    """True if ``path`` is a directory holding a store manifest."""
    return (path / META_FILE).is_file()


def open_store(directory: Path) -> StoreInfo:
    """The manifest of the store in ``directory`` (ScenarioError naming what is wrong)."""
    meta_path = directory / META_FILE
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{meta_path}: cannot read the store manifest ({exc.strerror})"
                            ) from None
    except ValueError as exc:
        raise ScenarioError(f"{meta_path}: not valid JSON ({exc})") from None
    try:
        if data["format"] != STORE_FORMAT:
            raise ScenarioError(f"{meta_path}: format {data['format']!r} is not {STORE_FORMAT}")
        pairs = {}
        for pair, info in data["pairs"].items():
            files = tuple(PriceFile(str(f["file"]), int(f["first_ms"]), int(f["last_ms"]),
                                    int(f["rows"])) for f in info["files"])
            if not files:
                raise ScenarioError(f"{meta_path}: pair {pair} lists no price files")
            pairs[str(pair)] = PairInfo(bool(info["perp"]), files, int(info["funding_rows"]))
        partition = data["partition"]
        if partition not in PARTITIONS or not pairs:
            raise ScenarioError(f"{meta_path}: bad partition {partition!r} or no pairs")
        return StoreInfo(directory, str(data["name"]), str(data.get("description", "")),
                         partition, pairs)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ScenarioError(f"{meta_path}: malformed store manifest ({exc!r})") from None


def _read_columns(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The named columns of one partition file (memory-mapped, decoded, then copied out)."""
    try:  # ParquetFile: no dataset discovery per file (a year is 365 of them)
        with pq.ParquetFile(path, memory_map=True) as handle:
            table = handle.read(columns=names, use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise ScenarioError(f"{path}: cannot read the Parquet file ({exc})") from None
    out = {}
    for name in names:
        column = table.column(name)
        out[name] = column.to_numpy()  # one chunk per file: a view, no copy
    return out


def read_window(store: StoreInfo, pair: str, start_ms: int | None = None,
                end_ms: int | None = None) -> Series:
    """Rows of ``pair`` from the one in force at ``start_ms`` up to ``end_ms`` (inclusive),
    and the funding settled in [start, end]. Only the files the window touches are read."""
    info = store.pairs.get(pair)
    if info is None:
        have = ", ".join(sorted(store.pairs))
        raise ScenarioError(f"store {store.name!r} has no {pair} prices (has {have})")
    lo_ms = info.files[0].first_ms if start_ms is None else int(start_ms)
    hi_ms = max(info.files[-1].last_ms, lo_ms) if end_ms is None else int(end_ms)
    if hi_ms < lo_ms:
        raise ScenarioError(f"store {store.name!r}: window end is before its start")
    firsts = np.array([f.first_ms for f in info.files], dtype=np.int64)
    first = max(int(np.searchsorted(firsts, lo_ms, side="right")) - 1, 0)
    last = int(np.searchsorted(firsts, hi_ms, side="right")) - 1
    if last < 0:
        raise ScenarioError(f"store {store.name!r}: the window ends before its data starts")
    names = ["time_ms", "index"] + (["perp"] if info.has_perp else [])
    chosen = info.files[first:last + 1]
    # The edge files are read first to find their slices; then the output is allocated once.
    edges = {0: _read_columns(store.directory / chosen[0].file, names)}
    if len(chosen) > 1:
        edges[len(chosen) - 1] = _read_columns(store.directory / chosen[-1].file, names)
    slices = []
    for i, pf in enumerate(chosen):
        lo, hi = 0, pf.rows
        if i in edges:
            times = edges[i]["time_ms"]
            if len(times) != pf.rows:
                raise ScenarioError(f"{store.directory / pf.file}: holds {len(times)} rows, the "
                                    f"manifest says {pf.rows}")
            if i == 0:
                lo = max(int(np.searchsorted(times, lo_ms, side="right")) - 1, 0)
            if i == len(chosen) - 1:
                hi = int(np.searchsorted(times, hi_ms, side="right"))
        slices.append((lo, hi))
    total = sum(hi - lo for lo, hi in slices)
    out = {name: np.empty(total, dtype=np.int64 if name == "time_ms" else np.float64)
           for name in names}
    at = 0
    for i, (pf, (lo, hi)) in enumerate(zip(chosen, slices, strict=True)):
        columns = edges.get(i) or _read_columns(store.directory / pf.file, names)
        if len(columns["time_ms"]) != pf.rows:
            raise ScenarioError(f"{store.directory / pf.file}: holds {len(columns['time_ms'])} "
                                f"rows, the manifest says {pf.rows}")
        for name in names:
            out[name][at:at + hi - lo] = columns[name][lo:hi]
        at += hi - lo
        del columns
    f_times, f_rates = read_funding(store, pair, lo_ms, hi_ms)
    return Series(out["time_ms"], out["index"], out.get("perp"), f_times, f_rates)


def read_funding(store: StoreInfo, pair: str, start_ms: int | None = None,
                 end_ms: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Funding times and rates of ``pair`` in [start, end] (all when not given)."""
    path = store.directory / pair / FUNDING_FILE
    if not path.is_file():
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    columns = _read_columns(path, ["time_ms", "rate"])
    times = np.array(columns["time_ms"], dtype=np.int64)
    rates = np.array(columns["rate"], dtype=np.float64)
    keep = np.ones(len(times), dtype=bool)
    if start_ms is not None:
        keep &= times >= start_ms
    if end_ms is not None:
        keep &= times <= end_ms
    return times[keep], rates[keep]
