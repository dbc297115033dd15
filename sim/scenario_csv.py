"""Reading scenario CSV files fast, with one clear error naming the file, line and row.

Fast path: the file is read in chunks of lines; each chunk is split into a flat token list and
each column converted by one numpy call, so a 30-day one-second file (2.6 M rows) loads in a few
seconds in memory about twice its arrays. Only when a conversion fails does a per-row scan run,
to name the first bad row. Column meanings are in
sim/scenario.py.
"""

from __future__ import annotations

import re
from itertools import islice
from pathlib import Path
from typing import TextIO

import numpy as np

from perpsim.sim.errors import ScenarioError
from perpsim.sim.time_cells import BadCell, first_bad, iso_utc_ms

CSV_COLUMNS = ("time", "index", "perp", "funding_rate")
_MIN_EPOCH_MS = 100_000_000_000  # 1973: smaller "epoch ms" values are almost surely seconds
_MAX_EPOCH_MS = 7_258_118_400_000  # 2200-01-01: beyond it a time is a typo
_MAX_ABS_FUNDING = 1.0
_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float64)

CsvColumns = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]


class _Rows:
    """Maps 0-based data rows of a chunk to file lines and data rows for error messages."""

    def __init__(self, path: Path, lines: np.ndarray, first_row: int = 0) -> None:
        self.path, self.lines, self.first_row = path, lines, first_row

    def error(self, row: int, problem: str) -> ScenarioError:
        """One ScenarioError naming the file, the file line and the 1-based data row."""
        return ScenarioError(f"{self.path}, line {int(self.lines[row])} (data row "
                             f"{self.first_row + row + 1}): {problem}")


def _header(path: Path, line: str) -> list[str]:
    """Column names of the header line, checked against ``CSV_COLUMNS``."""
    names = [cell.strip().lower() for cell in line.split(",")]
    where = f"{path}, line 1 (header)"
    if names == [""]:
        raise ScenarioError(f"{where}: the header line is empty (want time,index,...)")
    for name in names:
        if name not in CSV_COLUMNS:
            allowed = ", ".join(CSV_COLUMNS)
            raise ScenarioError(f"{where}: unknown column {name!r} (allowed: {allowed})")
    for name in names:
        if names.count(name) > 1:
            raise ScenarioError(f"{where}: column {name!r} appears twice")
    for required in ("time", "index"):
        if required not in names:
            raise ScenarioError(f"{where}: missing required column {required!r}")
    return names


def _split(path: Path, body: str, ncols: int, first_line: int) -> tuple[list[str], np.ndarray]:
    """Flat field list of data lines (``body``, whose first line is file line ``first_line``)
    and each non-blank data row's file line."""
    if not body.endswith("\n"):
        body += "\n"
    # Field counts per line, vectorised over the bytes (both delimiters are ASCII).
    raw = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    comma_at = np.flatnonzero(raw == 44)
    commas = np.searchsorted(comma_at, ends) - np.searchsorted(comma_at, starts)
    blank = (ends - starts) == 0
    lines = np.arange(first_line, first_line + len(ends))
    bad = np.flatnonzero((commas != ncols - 1) & ~blank)
    if len(bad):
        line, found = int(lines[bad[0]]), int(commas[bad[0]]) + 1
        raise ScenarioError(f"{path}, line {line}: expected {ncols} fields, found {found}")
    if blank.any():
        # Blank lines (often trailing) are skipped; the others keep their file line numbers.
        body = "".join(f"{s}\n" for s in body.split("\n") if s)
        lines = lines[~blank]
    if not len(lines):
        return [], lines
    return body[:-1].replace("\n", ",").split(","), lines



def _describe(cell: str, what: str) -> str:
    """Why a price cell failed to parse."""
    return f"{what} is empty" if not cell.strip() else f"{what} is not a number: {cell.strip()!r}"


def _parse_times(column: list[str], rows: _Rows, epoch: bool) -> np.ndarray:
    """Epoch ms (when the file's first time is all digits) or ISO 8601 UTC, as int64 ms."""
    if epoch:
        try:
            times = np.array(column, dtype=np.int64)
        except (ValueError, OverflowError):
            row = first_bad(column, lambda c: c.strip().isdigit())
            raise rows.error(row, f"unparseable time {column[row].strip()!r}") from None
    else:
        times = _parse_iso(column, rows)
    small = np.flatnonzero(times < _MIN_EPOCH_MS)
    if len(small):
        row = int(small[0])
        raise rows.error(row, f"time {column[row].strip()} looks like epoch seconds, not ms")
    large = np.flatnonzero(times > _MAX_EPOCH_MS)
    if len(large):
        row = int(large[0])
        raise rows.error(row, f"time {column[row].strip()} is beyond the year 2200")
    return times


def _parse_iso(column: list[str], rows: _Rows) -> np.ndarray:
    """ISO 8601 times (``Z``, ``+00:00`` or no offset: all UTC) as int64 epoch ms."""
    try:
        return iso_utc_ms(column)
    except BadCell as bad:
        cell = column[bad.row].strip()
        if re.search(r"[+-]\d\d:?\d\d$", cell) and "T" in cell:
            raise rows.error(bad.row, f"time {cell!r} is not UTC (end it in Z)") from None
        problem = f"unparseable time {cell!r} (want ISO 8601 UTC or epoch ms)"
        raise rows.error(bad.row, problem) from None


def _parse_prices(column: list[str], what: str, rows: _Rows) -> np.ndarray:
    """A column of finite positive prices as float64."""
    try:
        values = np.array(column, dtype=np.float64)
    except ValueError:
        row = first_bad(column, float)
        raise rows.error(row, _describe(column[row], what)) from None
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if len(bad):
        row = int(bad[0])
        kind = "not finite" if not np.isfinite(values[row]) else "not positive"
        raise rows.error(row, f"{what} is {kind}: {column[row].strip()!r}")
    return values


def _parse_funding(column: list[str], rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a non-empty funding_rate, and the rates there (finite, |rate| <= 1)."""
    where = [i for i, cell in enumerate(column) if cell and not cell.isspace()]
    cells = [column[i] for i in where]
    try:
        rates = np.array(cells, dtype=np.float64)
    except ValueError:
        bad = first_bad(cells, float)
        raise rows.error(where[bad], _describe(cells[bad], "funding_rate")) from None
    wrong = np.flatnonzero(~(np.isfinite(rates) & (np.abs(rates) <= _MAX_ABS_FUNDING)))
    if len(wrong):
        i = int(wrong[0])
        problem = "not finite" if not np.isfinite(rates[i]) else "absurd (|rate| > 1)"
        raise rows.error(where[i], f"funding_rate is {problem}: {cells[i].strip()!r}")
    return np.array(where, dtype=np.int64), rates


CHUNK_LINES = 65_536  # rows parsed per numpy call: memory stays near the arrays themselves


def read_scenario_csv(path: Path, *, chunk_lines: int = CHUNK_LINES) -> CsvColumns:
    """Validated columns of a scenario CSV: times, index, perp (None if absent), funding.

    The file is read ``chunk_lines`` rows at a time, each chunk converted by numpy, so peak
    memory is about twice the final arrays (the chunks, then their concatenation) however
    large the file. Every problem raises one ScenarioError naming the file, the file line
    (the header is line 1) and the 1-based data row.
    """
    try:
        with path.open("r", encoding="utf-8-sig", newline=None) as handle:
            return _read_chunks(path, handle, chunk_lines)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a UTF-8 text file") from None


def _read_chunks(path: Path, handle: TextIO, chunk_lines: int) -> CsvColumns:
    header = handle.readline()
    first = list(islice(handle, chunk_lines))
    if not header.strip() and not "".join(first).strip():
        raise ScenarioError(f"{path}: the file is empty")
    # Quotes carry nothing in a file of numbers and times; a quoted comma then fails the count.
    names = _header(path, header.rstrip("\n").replace('"', ""))
    ncols = len(names)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    f_rows_parts: list[np.ndarray] = []
    f_rate_parts: list[np.ndarray] = []
    next_line, rows_before = 2, 0
    epoch: bool | None = None
    last_time: tuple[int, str] | None = None
    chunk = first
    while chunk:
        tokens, lines = _split(path, "".join(chunk).replace('"', ""), ncols, next_line)
        next_line += len(chunk)
        chunk = list(islice(handle, chunk_lines))
        if not len(lines):
            continue
        rows = _Rows(path, lines, rows_before)
        columns = {name: tokens[i::ncols] for i, name in enumerate(names)}
        if epoch is None:
            epoch = columns["time"][0].strip().isdigit()
        times = _parse_times(columns["time"], rows, epoch)
        _check_increasing(times, columns["time"], rows, last_time)
        last_time = (int(times[-1]), columns["time"][-1])
        parts["time"].append(times)
        parts["index"].append(_parse_prices(columns["index"], "index", rows))
        if "perp" in columns:
            parts["perp"].append(_parse_prices(columns["perp"], "perp", rows))
        if "funding_rate" in columns:
            f_rows, f_rates = _parse_funding(columns["funding_rate"], rows)
            f_rows_parts.append(times[f_rows])
            f_rate_parts.append(f_rates)
        rows_before += len(lines)
    if not rows_before:
        raise ScenarioError(f"{path}: no data rows after the header")
    times = _joined(parts.pop("time"), np.int64)
    index = _joined(parts.pop("index"), np.float64)
    perp = _joined(parts.pop("perp"), np.float64) if "perp" in parts else None
    f_times, f_rates = _EMPTY_I, _EMPTY_F
    if "funding_rate" in names:
        f_times = _joined(f_rows_parts, np.int64)
        f_rates = _joined(f_rate_parts, np.float64)
    return times, index, perp, f_times, f_rates


def _check_increasing(times: np.ndarray, cells: list[str], rows: _Rows,
                      previous: tuple[int, str] | None) -> None:
    """Times must increase within the chunk and from the previous chunk's last row."""
    if previous is not None and times[0] <= previous[0]:
        kind = "duplicate time" if times[0] == previous[0] else "time before the row above"
        raise rows.error(0, f"{kind} ({cells[0].strip()}); times must increase")
    steps = np.flatnonzero(np.diff(times) <= 0)
    if len(steps):
        row = int(steps[0]) + 1
        kind = "duplicate time" if times[row] == times[row - 1] else "time before the row above"
        raise rows.error(row, f"{kind} ({cells[row].strip()}); times must increase")


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """The chunks as one array (a single chunk is returned as is: no copy)."""
    if not parts:
        return np.zeros(0, dtype=dtype)
    if len(parts) == 1:
        return parts[0]
    joined = np.concatenate(parts)
    parts.clear()
    return joined
