"""What a lesson hands to the renderers: its numbers, its words, its tables and chart series.

A lesson is the record of one real engine run. ``numbers`` holds every figure the narrative
quotes, exactly as the engine produced it (Decimal, int or str), so a test can hold each one
against the journal, the ledger or the risk views of the same run (``exchange``). Charts carry
plain floats: they are pictures of those numbers, never their source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from perpsim.sim.exchange import Exchange

SeriesKind = Literal["line", "step", "dash", "markers", "bar"]


@dataclass(frozen=True)
class Series:
    """One trace of a chart: x and y values (None leaves a gap), drawn as ``kind``."""

    name: str
    x: Sequence[float | str]
    y: Sequence[float | None]
    kind: SeriesKind = "line"
    color: str | None = None
    right_axis: bool = False  # drawn against the chart's second (right) y axis


@dataclass(frozen=True)
class Chart:
    """A chart: titles of the figure and its axes, and its series."""

    title: str
    x_title: str
    y_title: str
    series: tuple[Series, ...]
    y2_title: str | None = None


@dataclass(frozen=True)
class Table:
    """A small table of text cells (already formatted with units)."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass
class Lesson:
    """One lesson: a real run, the numbers it quotes, the words, the tables and the charts."""

    topic: str
    title: str
    summary: str
    narrative: list[str]
    numbers: dict[str, Any]
    tables: list[Table]
    charts: list[Chart]
    exchange: Exchange
    accounts: dict[str, str] = field(default_factory=dict)  # role → account id


# ---- number formatting: every quoted number carries its unit ----------------------------------

def _dec(value: Decimal | int | float | str) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def usd(value: Decimal | int | float | str, places: int = 2) -> str:
    """``57,371.52 USD``."""
    return f"{_dec(value):,.{places}f} USD"


def btc(value: Decimal | int | float | str, places: int = 8) -> str:
    """``0.00833332 BTC`` (signed when negative)."""
    return f"{_dec(value):.{places}f} BTC"


def signed_btc(value: Decimal | int | float | str, places: int = 8) -> str:
    """``+0.33333 BTC`` / ``-1.00000 BTC``."""
    return f"{_dec(value):+.{places}f} BTC"


def signed_usd(value: Decimal | int | float | str, places: int = 2) -> str:
    """``+30,000.00 USD``."""
    return f"{_dec(value):+,.{places}f} USD"


def pct(value: Decimal | int | float | str, places: int = 2, *, signed: bool = False) -> str:
    """A fraction as percent: 0.0005 → ``0.05 %``."""
    spec = f"{'+' if signed else ''}.{places}f"
    return f"{_dec(value) * 100:{spec}} %"


def contracts(value: int) -> str:
    """``600 contracts``."""
    return f"{value:,} contract{'s' if abs(value) != 1 else ''}"


def floats(values: Iterable[Decimal | int | float | None]) -> list[float | None]:
    """Chart values: None (and non-finite Decimals) become gaps."""
    out: list[float | None] = []
    for v in values:
        if v is None or (isinstance(v, Decimal) and not v.is_finite()):
            out.append(None)
        else:
            out.append(float(v))
    return out


def payload_decimal(payload: Mapping[str, Any], key: str) -> Decimal:
    """A Decimal from a journal payload (stored as fixed-point text: perpsim/numbers.py)."""
    return Decimal(str(payload[key]))
