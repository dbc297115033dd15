"""Reading market-data files (CSV, zipped CSV, gzipped CSV) into checked numpy columns.

Every problem raises one ScenarioError naming the file (``archive.zip:member.csv`` inside a
zip), the file line and what is wrong. Files are split by pyarrow's CSV reader into string
columns (compact: a day of ticker rows does not become millions of Python strings) and each
column is converted in one call; only when that fails does a per-row scan run, to name the
first bad line. A file the fast reader refuses (a row with the wrong number of fields) is read
again with Python's csv module to name the line. Rows must be in time order: ``sorted`` (by
the caller) sorts them instead and says how many were out of place.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from perpsim.sim.errors import ScenarioError
from perpsim.sim.time_cells import BadCell, first_bad, iso_utc_ms

MT4_DATE = re.compile(r"^\d{4}\.\d{2}\.\d{2}[ T]")  # MetaTrader exports: 2022.06.01 00:00
_MIN_MS = 100_000_000_000  # 1973 in ms; smaller whole numbers are seconds
_MIN_US = 100_000_000_000_000  # 1973 in µs
_MAX_MS = 7_258_118_400_000  # 2200-01-01


@dataclass
class Table:
    """One file's rows: the header (None when the file has none), the cells of each column
    (strings, trimmed) and each row's line in the file (1-based) for error messages."""

    label: str
    header: list[str] | None
    columns: list[pa.Array]
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

    def column(self, index: int) -> pa.Array:
        """The cells of column ``index`` (ScenarioError if the file has fewer columns)."""
        if index >= len(self.columns):
            raise ScenarioError(f"{self.label}: expected at least {index + 1} columns, the file "
                                f"has {len(self.columns)}")
        return self.columns[index]

    def first(self, index: int) -> str:
        """The first cell of column ``index``."""
        return str(self.column(index)[0].as_py())

    def nonempty(self, index: int) -> np.ndarray:
        """Which rows have a value in column ``index``."""
        filled = pc.not_equal(self.column(index), "")
        return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)

    def subset(self, rows: np.ndarray, columns: list[int]) -> Table:
        """Rows ``rows`` (in that order) of ``columns``, keeping their file lines."""
        take = pa.array(rows, type=pa.int64())
        return Table(self.label, None, [self.column(c).take(take) for c in columns],
                     self.lines[rows])


def _payloads(path: Path) -> list[tuple[str, bytes]]:
    """(label, bytes) of a CSV, of each CSV inside a zip, or of a gzipped CSV."""
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
                out = [(f"{path}:{m}", archive.read(m)) for m in members]
        elif raw[:2] == b"\x1f\x8b":
            out = [(str(path), gzip.decompress(raw))]
        else:
            out = [(str(path), raw)]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ScenarioError(f"{path}: a damaged archive ({exc})") from None
    return [(label, data.removeprefix(b"\xef\xbb\xbf")) for label, data in out]


def _looks_like_header(first_cell: str) -> bool:
    """A first row whose first cell is not a number or a time is a header."""
    first = first_cell.strip()
    return not first or not (first[0].isdigit() or first[0] in "+-.")


def _line_numbers(data: bytes) -> np.ndarray:
    """1-based numbers of the lines that are not empty (the rows a CSV reader yields)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if not len(raw):
        return np.zeros(0, dtype=np.int64)
    ends = np.flatnonzero(raw == 10)
    if raw[-1] != 10:
        ends = np.append(ends, len(raw))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    lengths -= (lengths > 0) & (raw[np.maximum(ends - 1, 0)] == 13)  # CRLF files
    return np.flatnonzero(lengths > 0) + 1


def read_tables(path: Path, *, header: bool | None = None) -> list[Table]:
    """The tables in ``path`` (several for a zip with several CSVs). ``header`` None: detect
    it (a first cell that is not a number or a date)."""
    out = []
    for label, data in _payloads(path):
        lines = _line_numbers(data)
        if not len(lines):
            raise ScenarioError(f"{label}: the file is empty")
        head = data[: 1 << 16].decode("utf-8", errors="replace").lstrip("\r\n")
        head_row = next(csv.reader(io.StringIO(head)), [""])
        has_header = _looks_like_header(head_row[0]) if header is None else header
        names = [c.strip() for c in head_row] if has_header else None
        if has_header:
            lines = lines[1:]
        if not len(lines):
            raise ScenarioError(f"{label}: no data rows after the header")
        columns = _arrow_columns(data, len(head_row), has_header)
        if columns is None or len(columns[0]) != len(lines):
            columns = _python_columns(label, data, len(head_row), lines, has_header)
        out.append(Table(label, names, columns, lines))
    return out


def _arrow_columns(data: bytes, width: int, skip_header: bool) -> list[pa.Array] | None:
    """The columns as trimmed strings via pyarrow, or None if pyarrow refuses the file."""
    names = [f"c{i}" for i in range(width)]
    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=int(skip_header),
                                            use_threads=False),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                  strings_can_be_null=False,
                                                  quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return [pc.utf8_trim_whitespace(table.column(n).combine_chunks()) for n in names]


def _python_columns(label: str, data: bytes, width: int, lines: np.ndarray,
                    skip_header: bool) -> list[pa.Array]:
    """The slow, exact reading: names the line of a row with the wrong number of fields."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{label}: not a UTF-8 text file") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if skip_header:
        rows = rows[1:]
    for i, row in enumerate(rows):
        if len(row) != width:
            line = int(lines[i]) if i < len(lines) else i + 1 + int(skip_header)
            raise ScenarioError(f"{label}, line {line}: expected {width} fields, found "
                                f"{len(row)}")
    if len(rows) != len(lines):
        raise ScenarioError(f"{label}: a quoted field spans lines; write one row per line")
    return [pa.array([c.strip() for c in col], type=pa.string())
            for col in zip(*rows, strict=True)]



def _numbers(table: Table, index: int, dtype: pa.DataType) -> np.ndarray | None:
    """Column ``index`` cast to ``dtype`` as numpy, or None if some cell does not convert."""
    try:
        return np.asarray(pc.cast(table.column(index), dtype).to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def floats(table: Table, index: int, what: str, *, positive: bool) -> np.ndarray:
    """Column ``index`` as finite float64 (and > 0 when ``positive``)."""
    values = _numbers(table, index, pa.float64())
    if values is None:
        cells = table.column(index).to_pylist()
        row = first_bad(cells, float)
        cell = cells[row]
        problem = f"{what} is empty" if not cell else f"{what} is not a number: {cell!r}"
        raise table.error(row, problem)
    bad = ~np.isfinite(values)
    if positive:
        bad |= ~(values > 0)
    rows = np.flatnonzero(bad)
    if len(rows):
        row = int(rows[0])
        kind = "not finite" if not np.isfinite(values[row]) else "not positive"
        raise table.error(row, f"{what} is {kind}: {table.column(index)[row].as_py()!r}")
    return values


def times(table: Table, index: int, what: str = "time", unit: str = "auto") -> np.ndarray:
    """Column ``index`` as epoch ms: whole numbers in ``unit`` (s, ms, us; auto: by size) or
    ISO 8601 times (``T`` or a space, optional fraction and ``Z``; MetaTrader's ``YYYY.MM.DD``
    dates too), read as UTC."""
    first = table.first(index)
    if unit == "iso" or (unit == "auto" and not first.isdigit()):
        cells = table.column(index).to_pylist()
        if MT4_DATE.match(first):
            cells = [c.replace(".", "-", 2) for c in cells]
        return _iso(table, cells, what)
    raw = _numbers(table, index, pa.int64())
    if raw is None:
        cells = table.column(index).to_pylist()
        row = first_bad(cells, str.isdigit)
        raise table.error(row, f"{what} is not a whole number: {cells[row]!r}")
    if unit == "auto":
        unit = "us" if raw[0] >= _MIN_US else "ms" if raw[0] >= _MIN_MS else "s"
    if unit not in ("s", "ms", "us"):
        raise ScenarioError(f"time unit must be auto, s, ms, us or iso, got {unit!r}")
    out = raw // 1000 if unit == "us" else raw * (1000 if unit == "s" else 1)
    wrong = np.flatnonzero((out < _MIN_MS) | (out > _MAX_MS))
    if len(wrong):
        row = int(wrong[0])
        raise table.error(row, f"{what} {table.column(index)[row].as_py()} is not a time "
                               f"between 1973 and 2200 in {unit}")
    return out


def _iso(table: Table, cells: list[str], what: str) -> np.ndarray:
    try:
        return iso_utc_ms(cells)
    except BadCell as bad:
        raise table.error(bad.row, f"{what} is not an ISO 8601 UTC time: {cells[bad.row]!r}"
                          ) from None


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
