"""The HTML report of a hedge run: one self-contained file that opens offline.

plotly's JavaScript is inlined once (no CDN, no network at all); the charts are index / mark /
last with the liquidation price, the hedged vs unhedged portfolio value, and cumulative funding
(and fees). Tables: the outcome summary, the P&L attribution, the plan in plain words and the
events timeline. Nothing in it depends on the wall clock: the same run gives the same file
(up to plotly's random div ids).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from perpsim.numbers import readable
from perpsim.strategy.record import RunRecord
from perpsim.strategy.results import (
    attribution_rows,
    effectiveness,
    exit_reason_text,
    plain,
    summary_rows,
)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; color: #1f2933; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #d9e2ec; }
.meta { color: #52606d; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.92rem; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 0.3rem 0.7rem; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 2px solid #9aa5b1; }
.scroll { max-height: 32rem; overflow-y: auto; border: 1px solid #e4e7eb; }
.bad { color: #b91c1c; font-weight: 600; } .good { color: #047857; font-weight: 600; }
.explain p { line-height: 1.45; max-width: 60rem; }
.chart { height: 420px; }
"""

_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _time_label(t_ms: int) -> str:
    """Epoch ms as a plotly date string (UTC, no zone suffix: plotly.js ignores zones)."""
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _floats(values: Iterable[Decimal | None]) -> list[float | None]:
    return [None if v is None or not v.is_finite() else float(v) for v in values]


def _layout(title: str, y_title: str) -> dict[str, Any]:
    return {
        "title": {"text": title}, "template": "plotly_white", "hovermode": "x unified",
        "xaxis": {"title": {"text": "time (UTC)"}}, "yaxis": {"title": {"text": y_title}},
        "legend": {"orientation": "h", "y": -0.2}, "margin": {"l": 70, "r": 20, "t": 50, "b": 40},
    }


def price_figure(record: RunRecord) -> go.Figure:
    """Index, mark and last over time, with the position's liquidation price."""
    times = [_time_label(s.time_ms) for s in record.samples]
    fig = go.Figure(layout=_layout("Prices: index, mark, last and liquidation price", "USD"))
    for name, values, style in (
        ("index", [s.index_usd for s in record.samples], {"color": "#1f77b4"}),
        ("mark", [s.mark_usd for s in record.samples], {"color": "#ff7f0e"}),
        ("last", [s.last_usd for s in record.samples], {"color": "#7f7f7f", "width": 1}),
        ("liquidation price", [s.liquidation_price_usd if s.position_contracts else None
                               for s in record.samples],
         {"color": "#d62728", "dash": "dash"}),
    ):
        fig.add_trace(go.Scatter(x=times, y=_floats(values), name=name, mode="lines",
                                 line=style, connectgaps=False))
    return fig


def value_figure(record: RunRecord) -> go.Figure:
    """The hedged portfolio's USD value against the unhedged one (all the coin, no short)."""
    eff = effectiveness(record)
    times = [_time_label(t) for t in eff.times_ms]
    fig = go.Figure(layout=_layout("Portfolio value: hedged vs unhedged", "USD"))
    fig.add_trace(go.Scatter(x=times, y=_floats(eff.hedged_usd), name="hedged (spot + short)",
                             mode="lines", line={"color": "#047857", "width": 2.5}))
    fig.add_trace(go.Scatter(x=times, y=_floats(eff.unhedged_usd), name="unhedged (coin only)",
                             mode="lines", line={"color": "#b91c1c"}))
    return fig


def funding_figure(record: RunRecord) -> go.Figure:
    """Cumulative funding (+ received, − paid) and cumulative fees, in coin."""
    times = [_time_label(s.time_ms) for s in record.samples]
    fig = go.Figure(layout=_layout("Cumulative funding and fees", "BTC"))
    fig.add_trace(go.Scatter(x=times, y=_floats(s.funding_cum_btc for s in record.samples),
                             name="funding (+ received, − paid)", mode="lines",
                             line={"color": "#6d28d9", "width": 2.5, "shape": "hv"}))
    fig.add_trace(go.Scatter(x=times, y=_floats(-s.fees_cum_btc for s in record.samples),
                             name="fees (paid)", mode="lines",
                             line={"color": "#92400e", "shape": "hv"}))
    return fig


def _figure_html(fig: go.Figure) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False, config=_PLOT_CONFIG,
                           default_height="420px"))


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *,
           numeric: Sequence[int] = (), total_last: bool = False) -> str:
    rows = list(rows)
    out = ["<table><thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    for n, row in enumerate(rows):
        cls = ' class="total"' if total_last and n == len(rows) - 1 else ""
        cells = [f'<td class="num">{html.escape(str(c))}</td>' if i in numeric
                 else f"<td>{html.escape(str(c))}</td>" for i, c in enumerate(row)]
        out.append(f"<tr{cls}>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


_EXPLANATION_KEYS = ("explain", "explanation", "plain_words", "text", "summary", "description")


def _plan_html(plan: dict[str, Any]) -> str:
    """The plan's plain-words explanation, then its numbers."""
    parts = []
    for key in _EXPLANATION_KEYS:
        text = plan.get(key)
        if isinstance(text, str) and text.strip():
            paras = [p.strip() for p in text.strip().split("\n\n") if p.strip()]
            parts += [f"<p>{html.escape(p)}</p>" for p in paras]
            break
        if isinstance(text, list) and text:
            parts.append("<ul>" + "".join(f"<li>{html.escape(str(t))}</li>" for t in text)
                         + "</ul>")
            break
    numbers = [(k, v) for k, v in plan.items() if k not in _EXPLANATION_KEYS]
    if numbers:
        parts.append(_table(("plan item", "value"),
                            ((k, _cell(plain(v))) for k, v in numbers), numeric=(1,)))
    return '<div class="explain">' + ("".join(parts) or "<p>(no plan recorded)</p>") + "</div>"


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, float) and math.isfinite(value):
        return readable(value)  # a ccxt float: 1e-05 is written 0.00001
    return "" if value is None else str(value)


def _clip(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _events_html(events: Sequence[dict[str, Any]]) -> str:
    if not events:
        return "<p>(no events)</p>"
    rows = []
    for event in events:
        details = {k: v for k, v in event.items() if k not in ("time", "type", "explain")}
        time = event.get("time")
        rows.append((_time_label(time) if isinstance(time, int) else str(time or ""),
                     str(event.get("type", "")), _clip(_cell(plain(details)))))
    return '<div class="scroll">' + _table(("time (UTC)", "event", "details"), rows) + "</div>"


def render_report(record: RunRecord, *, scenario: str = "", profile: str = "",
                  seed: int | None = None, title: str = "perpsim hedge report") -> str:
    """The whole report as one HTML document (plotly JS inlined once)."""
    outcome = ('<span class="bad">LIQUIDATED</span>' if record.liquidated
               else '<span class="good">not liquidated</span>')
    meta = (f"scenario <b>{html.escape(scenario)}</b> · profile <b>{html.escape(profile)}</b>"
            f" · seed <b>{'' if seed is None else seed}</b> · "
            f"{html.escape(_time_label(record.start_ms))} → "
            f"{html.escape(_time_label(record.end_ms)) if record.end_ms else '…'} UTC · "
            f"{outcome} · exit: {html.escape(exit_reason_text(record))}")
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{meta}</p>',
        "<h2>Outcome</h2>",
        _table(("", ""), summary_rows(record), numeric=()),
        "<h2>Prices and liquidation</h2>", _figure_html(price_figure(record)),
        "<h2>Hedge effectiveness</h2>", _figure_html(value_figure(record)),
        "<h2>Funding</h2>", _figure_html(funding_figure(record)),
        "<h2>P&amp;L attribution</h2>",
        "<p>Coin amounts are valued at the index at the end of the run, so the rows add up to "
        "the hedged portfolio's change. The basis row is part of the futures leg.</p>",
        _table(("component", "BTC", "USD"), attribution_rows(record), numeric=(1, 2),
               total_last=True),
        "<h2>The plan</h2>", _plan_html(record.plan),
        "<h2>Events</h2>", _events_html(record.events),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)} · {html.escape(scenario)}</title>"
        f"<style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
        "</head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(record: RunRecord, path: str | Path, **meta: Any) -> Path:
    """Write the report to ``path`` (parents created); the resolved path."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(record, **meta), encoding="utf-8")
    return target.resolve()
