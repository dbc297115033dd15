"""``perpsim data show``: a store's summary rows and an offline HTML chart (index, perp, funding).

Long stores are thinned for the chart (every k-th row, plus each bucket's low and high so a crash
wick stays visible); the summary is computed on every row. plotly's JavaScript is inlined once
(no CDN), as in the hedge report.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from perpsim.sim.data_store import Series, StoreInfo, read_window
from perpsim.sim.synthetic import format_time_ms

MAX_POINTS = 20_000


def summary_rows(store: StoreInfo, series: dict[str, Series] | None = None
                 ) -> list[tuple[str, str]]:
    """Label/value rows: span, rows, resolution, price range, funding, files (``series``:
    the pairs already read, else they are read here)."""
    rows = [("name", store.name), ("description", store.description),
            ("directory", str(store.directory)), ("partition", store.partition)]
    for pair in store.pairs:
        s = series[pair] if series is not None else read_window(store, pair)
        steps = np.diff(s.times_ms)
        usual = int(np.median(steps)) if len(steps) else 0
        rows += [
            (f"{pair} span", f"{format_time_ms(int(s.times_ms[0]))} → "
                             f"{format_time_ms(int(s.times_ms[-1]))} "
                             f"({(int(s.times_ms[-1]) - int(s.times_ms[0])) / 86_400_000:.2f} d)"),
            (f"{pair} rows", f"{len(s):,} (usual step {usual / 1000:g} s, "
                             f"{int(np.count_nonzero(steps > 2 * usual)) if usual else 0} gaps)"),
            (f"{pair} index USD", f"{s.index.min():,.2f} … {s.index.max():,.2f} "
                                  f"(first {s.index[0]:,.2f}, last {s.index[-1]:,.2f})"),
            (f"{pair} perp", "recorded" if s.perp is not None else
             "not recorded: derived from the index with the seeded basis"),
            (f"{pair} funding", _funding_text(s.funding_times_ms, s.funding_rates)),
            (f"{pair} files", f"{len(store.pairs[pair].files)} Parquet"),
        ]
    return rows


def _funding_text(times: np.ndarray, rates: np.ndarray) -> str:
    if not len(times):
        return "none recorded (the profile's premium model sets it: synthetic mode)"
    hours = sorted({int(t // 3_600_000 % 24) for t in times.tolist()})
    return (f"{len(times):,} rates (data mode), {rates.min():+.6f} … {rates.max():+.6f}, "
            f"mean {rates.mean():+.6f}, at UTC hours {', '.join(map(str, hours))}")


def _thin(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most about MAX_POINTS points, keeping each bucket's first, low and high."""
    if len(t) <= MAX_POINTS:
        return t, v
    size = int(np.ceil(len(t) / (MAX_POINTS / 3)))
    starts = np.arange(0, len(t), size)
    lows = starts + np.array([int(np.argmin(v[s:s + size])) for s in starts])
    highs = starts + np.array([int(np.argmax(v[s:s + size])) for s in starts])
    keep = np.unique(np.concatenate((starts, lows, highs, [len(t) - 1])))
    return t[keep], v[keep]


def _labels(t: np.ndarray) -> list[str]:
    return [str(x) for x in t.astype("datetime64[ms]").astype("datetime64[s]")]


def read_all(store: StoreInfo) -> dict[str, Series]:
    """Every pair's whole series."""
    return {pair: read_window(store, pair) for pair in store.pairs}


def chart_html(store: StoreInfo, series: dict[str, Series] | None = None) -> str:
    """One HTML page: the summary and, per pair, prices and funding charts."""
    series = read_all(store) if series is None else series
    parts = [f"<h1>{html.escape(store.name)}</h1><table>"]
    parts += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
              for k, v in summary_rows(store, series)]
    parts.append("</table>")
    layout: dict[str, Any] = {"template": "plotly_white", "hovermode": "x unified",
                              "legend": {"orientation": "h", "y": -0.2}}
    for pair, s in series.items():
        fig = go.Figure(layout={**layout, "title": {"text": f"{pair} prices (USD)"}})
        for name, values in (("index", s.index), ("perp", s.perp)):
            if values is not None:
                t, v = _thin(s.times_ms, values)
                fig.add_trace(go.Scatter(x=_labels(t), y=v, name=name, mode="lines",
                                         line={"shape": "hv"}))
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
        if len(s.funding_times_ms):
            fund = go.Figure(layout={**layout, "title": {"text": f"{pair} funding rate"}})
            fund.add_trace(go.Bar(x=_labels(s.funding_times_ms), y=s.funding_rates,
                                  name="funding rate"))
            parts.append(fund.to_html(full_html=False, include_plotlyjs=False))
    note = store.source_note()
    if note:
        parts.append(f"<h2>Source and licence</h2><pre>{html.escape(note)}</pre>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>perpsim data · {html.escape(store.name)}</title>"
            "<style>body{font-family:sans-serif;margin:2rem}th{text-align:left;padding-right:1rem}"
            "pre{white-space:pre-wrap;background:#f5f7fa;padding:1rem}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>\n'
            + "\n".join(parts) + "\n</body></html>\n")


def write_chart(store: StoreInfo, path: Path, series: dict[str, Series] | None = None) -> Path:
    """Write :func:`chart_html` to ``path``; the resolved path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(chart_html(store, series), encoding="utf-8")
    return path.resolve()
