"""Reading market-data files (CSV, zipped CSV, gzipped CSV) into checked numpy columns.

Every problem raises one ScenarioError naming the file (``archive.zip:member.csv`` inside a
zip), the file line and what is wrong. Columns are converted by one numpy call each; only when
that fails does a per-row scan run, to name the first bad line. Rows must be in time order:
``sorted`` (by the caller) sorts them instead and says how many were out of place.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perpsim.sim.errors import ScenarioError

MT4_DATE = re.compile(r"^\d{4}\.\d{2}\.\d{2}[ T]")  # MetaTrader exports: 2022.06.01 00:00
_MIN_MS = 100_000_000_000  # 1973 in ms; smaller whole numbers are seconds
_MIN_US = 100_000_000_000_000  # 1973 in µs
_MAX_MS = 7_258_118_400_000  # 2200-01-01


@dataclass
class Table:
    """One file's rows: the header (None when the file has none), cells by column, and each
    row's line in the file (1-based) for error messages."""

    label: str
    header: list[str] | None
    columns: list[list[str]]
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.lines)

    def error(self, row: int, problem: str) -> ScenarioError:
        """One ScenarioError naming the file and the line of data row ``row``."""
        return ScenarioError(f"{self.label}, line {int(self.lines[row])}: {problem}")

    def find(self, *names: str, required: bool = True) -> int | None:
        """Index of the first header column called one of ``names`` (case-insensitive)."""
        if self.header is None:
            raise ScenarioError(f"{self.label}: the file has no header line; name its columns")
        lowered = [h.strip().lower() for h in self.header]
        for name in names:
            if name.lower() in lowered:
                return lowered.index(name.lower())
        if required:
            raise ScenarioError(f"{self.label}, line 1 (header): no column "
                                f"{' or '.join(repr(n) for n in names)} (has "
                                f"{', '.join(self.header)})")
        return None

    def need(self, *names: str) -> int:
        """Index of the first header column called one of ``names``; ScenarioError if none."""
        found = self.find(*names)
        assert found is not None  # find raises when required
        return found

    def column(self, index: int) -> list[str]:
        """The cells of column ``index`` (ScenarioError if the file has fewer columns)."""
        if index >= len(self.columns):
            raise ScenarioError(f"{self.label}: expected at least {index + 1} columns, the file "
                                f"has {len(self.columns)}")
        return self.columns[index]


def _texts(path: Path) -> list[tuple[str, str]]:
    """(label, text) of a CSV, of each CSV inside a zip, or of a gzipped CSV."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        if zipfile.is_zipfile(io.BytesIO(raw)):
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
                if not members:
                    raise ScenarioError(f"{path}: the zip archive holds no .csv file")
                return [(f"{path}:{m}", archive.read(m).decode("utf-8-sig")) for m in members]
        if raw[:2] == b"\x1f\x8b":
            return [(str(path), gzip.decompress(raw).decode("utf-8-sig"))]
        return [(str(path), raw.decode("utf-8-sig"))]
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a UTF-8 text file") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ScenarioError(f"{path}: a damaged archive ({exc})") from None


def _looks_like_header(cells: list[str]) -> bool:
    """A first row whose first cell is not a number or a time is a header."""
    first = cells[0].strip() if cells else ""
    return not first or not (first[0].isdigit() or first[0] in "+-.")


def read_tables(path: Path, *, header: bool | None = None) -> list[Table]:
    """The tables in ``path`` (several for a zip with several CSVs). ``header`` None: detect
    it (a first cell that is not a number or a date)."""
    out = []
    for label, text in _texts(path):
        rows = list(csv.reader(io.StringIO(text)))
        lines = np.arange(1, len(rows) + 1)
        keep = [i for i, r in enumerate(rows) if r and any(c.strip() for c in r)]
        rows = [rows[i] for i in keep]
        lines = lines[keep]
        if not rows:
            raise ScenarioError(f"{label}: the file is empty")
        has_header = _looks_like_header(rows[0]) if header is None else header
        names = [c.strip() for c in rows[0]] if has_header else None
        if has_header:
            rows, lines = rows[1:], lines[1:]
        if not rows:
            raise ScenarioError(f"{label}: no data rows after the header")
        width = len(names) if names is not None else len(rows[0])
        widths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        bad = np.flatnonzero(widths != width)
        if len(bad):
            i = int(bad[0])
            raise ScenarioError(f"{label}, line {int(lines[i])}: expected {width} fields, "
                                f"found {int(widths[i])}")
        columns = [list(c) for c in zip(*rows, strict=True)]
        out.append(Table(label, names, columns, lines))
    return out


def _first_bad(cells: list[str], ok: Callable[[str], object]) -> int:
    for i, cell in enumerate(cells):
        try:
            if not ok(cell):
                return i
        except (ValueError, TypeError, OverflowError, Warning):
            return i
    return 0


def floats(table: Table, index: int, what: str, *, positive: bool) -> np.ndarray:
    """Column ``index`` as finite float64 (and > 0 when ``positive``)."""
    cells = table.column(index)
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        row = _first_bad(cells, float)
        cell = cells[row].strip()
        problem = f"{what} is empty" if not cell else f"{what} is not a number: {cell!r}"
        raise table.error(row, problem) from None
    bad = ~np.isfinite(values)
    if positive:
        bad |= ~(values > 0)
    rows = np.flatnonzero(bad)
    if len(rows):
        row = int(rows[0])
        kind = "not finite" if not np.isfinite(values[row]) else "not positive"
        raise table.error(row, f"{what} is {kind}: {cells[row].strip()!r}")
    return values


def times(table: Table, index: int, what: str = "time", unit: str = "auto") -> np.ndarray:
    """Column ``index`` as epoch ms: whole numbers in ``unit`` (s, ms, us; auto: by size) or
    ISO 8601 times (``T`` or a space, optional fraction and ``Z``; MetaTrader's ``YYYY.MM.DD``
    dates too), read as UTC."""
    cells = table.column(index)
    first = cells[0].strip()
    if unit == "iso" or (unit == "auto" and not first.isdigit()):
        if MT4_DATE.match(first):
            cells = [c.replace(".", "-", 2) for c in cells]
        return _iso(table, cells, what)
    try:
        raw = np.array(cells, dtype=np.int64)
    except (ValueError, OverflowError):
        row = _first_bad(cells, lambda c: c.strip().isdigit())
        raise table.error(row, f"{what} is not a whole number: {cells[row].strip()!r}") from None
    if unit == "auto":
        unit = "us" if raw[0] >= _MIN_US else "ms" if raw[0] >= _MIN_MS else "s"
    scale = {"s": 1000, "ms": 1, "us": 1}[unit] if unit in ("s", "ms", "us") else None
    if scale is None:
        raise ScenarioError(f"time unit must be auto, s, ms, us or iso, got {unit!r}")
    out = raw // 1000 if unit == "us" else raw * scale
    wrong = np.flatnonzero((out < _MIN_MS) | (out > _MAX_MS))
    if len(wrong):
        row = int(wrong[0])
        raise table.error(row, f"{what} {cells[row].strip()} is not a time between 1973 and "
                               f"2200 in {unit}")
    return out


def _iso(table: Table, cells: list[str], what: str) -> np.ndarray:
    joined = "\n".join(c.strip() for c in cells) + "\n"
    for suffix in ("Z\n", "z\n", "+00:00\n"):
        joined = joined.replace(suffix, "\n")
    cleaned = joined[:-1].split("\n")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            stamps = np.array(cleaned, dtype="datetime64[us]")
        if np.isnat(stamps).any():
            raise ValueError("NaT")
    except (ValueError, TypeError, Warning):
        row = _first_bad(cleaned, _iso_ok)
        raise table.error(row, f"{what} is not an ISO 8601 UTC time: {cells[row].strip()!r}"
                          ) from None
    return stamps.astype(np.int64) // 1000


def _iso_ok(cell: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return not np.isnat(np.datetime64(cell, "us"))


def order(table: Table, t_ms: np.ndarray, *, sort: bool, what: str = "time") -> np.ndarray:
    """The row order: identity if times increase strictly; with ``sort``, the sorting
    permutation (duplicates still refused); else a ScenarioError naming the first bad line."""
    steps = np.flatnonzero(np.diff(t_ms) <= 0)
    if not len(steps):
        return np.arange(len(t_ms))
    if sort:
        perm = np.argsort(t_ms, kind="stable")
        dup = np.flatnonzero(np.diff(t_ms[perm]) == 0)
        if len(dup):
            raise table.error(int(perm[dup[0] + 1]), f"duplicate {what} (another row has it)")
        return perm
    row = int(steps[0]) + 1
    kind = "duplicate" if t_ms[row] == t_ms[row - 1] else "out of order"
    raise table.error(row, f"{what} is {kind} (rows must be in increasing time order; "
                           "--sort sorts them)")
