"""Text cells of a price table → epoch milliseconds, vectorised, with the first bad cell found.

Shared by the scenario CSV reader (sim/scenario_csv.py) and the market-data importers
(sim/data_tables.py): both parse whole columns in C through numpy and, only when that fails,
walk the cells once to name the first one at fault.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np


class BadCell(ValueError):
    """The cell at ``row`` (0-based within the column) cannot be read."""

    def __init__(self, row: int) -> None:
        super().__init__(f"bad cell at row {row}")
        self.row = row


def first_bad(cells: list[str], ok: Callable[[str], object]) -> int:
    """Index of the first cell for which ``ok(cell)`` raises or is false (0 if none)."""
    for i, cell in enumerate(cells):
        try:
            if not ok(cell):
                return i
        except (ValueError, TypeError, OverflowError, Warning):
            return i
    return 0


def iso_utc_ms(cells: list[str]) -> np.ndarray:
    """ISO 8601 times (``Z``, ``+00:00`` or no offset: all UTC) as int64 epoch ms; BadCell names
    the first cell numpy cannot read as a UTC time."""
    # numpy parses ISO times in C but warns on offsets: strip the UTC suffixes in one pass.
    joined = "\n".join(cell.strip() for cell in cells) + "\n"
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
        raise BadCell(first_bad(cleaned, _iso_ok)) from None
    return stamps.astype(np.int64) // 1000


def _iso_ok(cell: str) -> bool:
    """True if numpy reads ``cell`` as a time without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return not np.isnat(np.datetime64(cell, "us"))
