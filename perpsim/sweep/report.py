"""``perpsim sweep --report``: one offline HTML page summarising a sweep's results.

Heatmaps of the liquidation probability and of the worst hedged drawdown over two parameters
(each cell: the runs with those two values, across everything else), the distribution of
funding P&L per scenario, and the worst runs with the ``perpsim hedge`` command that replays
each on its own. plotly's JavaScript is inlined once, as in strategy/report.py: the page opens
with no network.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from perpsim.sweep.run import PARAMETERS

WORST_SHOWN = 15

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; color: #1f2933; padding: 0 1rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #d9e2ec; } .meta { color: #52606d; }
table { border-collapse: collapse; font-size: 0.88rem; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 0.3rem 0.6rem; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-size: 0.8rem; background: #f0f4f8; padding: 0.1rem 0.3rem; }
button.copy { font-size: 0.75rem; margin-left: 0.4rem; }
.bad { color: #b91c1c; font-weight: 600; }
"""

_COPY_JS = """
document.addEventListener('click', function (e) {
  if (!e.target.classList.contains('copy')) return;
  navigator.clipboard.writeText(e.target.previousElementSibling.textContent);
  e.target.textContent = 'copied';
});
"""

_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _label(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "default"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _sort_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _number(value: Any) -> float | None:
    """A finite number, or None (missing, NaN)."""
    if isinstance(value, int | float) and not math.isnan(float(value)):
        return float(value)
    return None


def cells(rows: Sequence[Mapping[str, Any]], x: str, y: str
          ) -> tuple[list[str], list[str], dict[tuple[str, str], list[Mapping[str, Any]]]]:
    """The runs grouped by their (x, y) values, with both axes' labels in order."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(_label(row.get(x)), _label(row.get(y)))].append(row)
    xs = sorted({key[0] for key in groups}, key=_sort_key)
    ys = sorted({key[1] for key in groups}, key=_sort_key)
    return xs, ys, groups


def liquidation_probability(group: Sequence[Mapping[str, Any]]) -> float | None:
    """Liquidated runs / runs."""
    return sum(bool(r["liquidated"]) for r in group) / len(group) if group else None


def worst_drawdown(group: Sequence[Mapping[str, Any]]) -> float | None:
    """The largest hedged drawdown (percent) in the group."""
    values = [v for v in (_number(r.get("max_drawdown_hedged_pct")) for r in group)
              if v is not None]
    return max(values) if values else None


def heatmap(rows: Sequence[Mapping[str, Any]], x: str, y: str, *, title: str, statistic: Any,
            scale: str, text_format: str, zmax: float | None = None) -> go.Figure:
    """A heatmap of ``statistic(group)`` over the (x, y) cells, its colours from 0 (so that
    small differences do not look large) to ``zmax`` (default: the largest cell)."""
    xs, ys, groups = cells(rows, x, y)
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for yv in ys:
        line, words = [], []
        for xv in xs:
            group = groups.get((xv, yv), [])
            value = statistic(group) if group else None
            line.append(value)
            words.append("" if value is None else f"{value:{text_format}} ({len(group)})")
        z.append(line)
        text.append(words)
    fig = go.Figure(go.Heatmap(z=z, x=xs, y=ys, text=text, texttemplate="%{text}",
                               colorscale=scale, hoverongaps=False, zmin=0, zmax=zmax))
    fig.update_layout(title={"text": title}, template="plotly_white",
                      xaxis={"title": x, "type": "category"},
                      yaxis={"title": y, "type": "category"})
    return fig


def funding_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Funding P&L (USD, + received) per run, one histogram per scenario."""
    fig = go.Figure()
    by_scenario: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        funding = _number(row.get("funding_usd"))
        if funding is not None:
            by_scenario[str(row["scenario"])].append(funding)
    for scenario in sorted(by_scenario):
        fig.add_trace(go.Histogram(x=by_scenario[scenario], name=scenario, opacity=0.7))
    fig.update_layout(barmode="overlay", template="plotly_white",
                      title={"text": "Funding P&L per run (USD, + received by the short)"},
                      xaxis={"title": "funding USD"}, yaxis={"title": "runs"})
    return fig


def worst_runs(rows: Sequence[Mapping[str, Any]], count: int = WORST_SHOWN
               ) -> list[Mapping[str, Any]]:
    """Liquidated runs first, then by hedged drawdown, largest first."""
    def key(row: Mapping[str, Any]) -> tuple[bool, float, str]:
        drawdown = _number(row.get("max_drawdown_hedged_pct"))
        return (bool(row["liquidated"]), -1.0 if drawdown is None else drawdown,
                str(row["run_hash"]))

    return sorted(rows, key=key, reverse=True)[:count]


def _figure(fig: go.Figure) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False, config=_PLOT_CONFIG,
                           default_height="460px"))


def _worst_table(rows: Sequence[Mapping[str, Any]], varied: Sequence[str]) -> str:
    head = ["scenario", "seed", *varied, "liquidated", "worst hedged drawdown %",
            "unhedged drawdown %", "funding USD", "perpsim hedge"]
    out = ["<table><thead><tr>", *(f"<th>{html.escape(h)}</th>" for h in head),
           "</tr></thead><tbody>"]
    for row in rows:
        cells_html = [f"<td>{html.escape(str(row['scenario']))}</td>",
                      f'<td class="num">{row["seed"]}</td>']
        cells_html += [f'<td class="num">{html.escape(_label(row.get(k)))}</td>'
                       for k in varied]
        liquidated = '<td class="bad">yes</td>' if row["liquidated"] else "<td>no</td>"
        cells_html += [liquidated]
        for key in ("max_drawdown_hedged_pct", "max_drawdown_unhedged_pct", "funding_usd"):
            value = _number(row.get(key))
            cells_html.append("<td></td>" if value is None else
                              f'<td class="num">{value:.2f}</td>')
        command = html.escape(str(row["hedge_command"]))
        cells_html.append(f'<td><code>{command}</code><button class="copy" type="button">'
                          "copy</button></td>")
        out.append(f"<tr>{''.join(cells_html)}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render(rows: Sequence[Mapping[str, Any]], *, x: str, y: str, title: str,
           varied: Sequence[str] = ()) -> str:
    """The whole page."""
    finished = [r for r in rows if not r.get("error")]
    failed = [r for r in rows if r.get("error")]
    liquidated = sum(bool(r["liquidated"]) for r in finished)
    varied = [k for k in varied if k in PARAMETERS] or [
        k for k in PARAMETERS if len({_label(r.get(k)) for r in rows}) > 1]
    meta = (f"{len(rows):,} runs · {len(finished):,} finished · {liquidated:,} liquidated · "
            f"{len(failed):,} could not run · scenarios: "
            f"{html.escape(', '.join(sorted({str(r['scenario']) for r in rows})))}")
    body = [f"<h1>{html.escape(title)}</h1>", f'<p class="meta">{meta}</p>']
    if finished:
        body += [
            "<h2>Liquidation probability</h2>",
            "<p>Share of runs liquidated (or auto-deleveraged) in each cell, over every "
            "scenario, seed and other parameter; the run count in brackets.</p>",
            _figure(heatmap(finished, x, y, title=f"liquidation probability: {y} × {x}",
                            statistic=liquidation_probability, scale="Reds",
                            text_format=".0%", zmax=1.0)),
            "<h2>Worst hedged drawdown</h2>",
            "<p>The largest peak-to-trough fall (percent) of the hedged portfolio's USD value "
            "among the cell's runs.</p>",
            _figure(heatmap(finished, x, y, title=f"worst hedged drawdown %: {y} × {x}",
                            statistic=worst_drawdown, scale="Oranges", text_format=".2f")),
            "<h2>Funding</h2>", _figure(funding_figure(finished)),
            "<h2>The worst runs</h2>",
            "<p>Each replays on its own, with its report, by the command shown "
            "(add <code>--report FILE</code>).</p>",
            _worst_table(worst_runs(finished), varied)]
    if failed:
        reasons: dict[str, int] = defaultdict(int)
        for row in failed:
            reasons[str(row["error"])[:200]] += 1
        body += ["<h2>Runs that could not run</h2><table><tbody>",
                 *(f'<tr><td class="num">{n}</td><td>{html.escape(reason)}</td></tr>'
                   for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])),
                 "</tbody></table>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script>'
            f"<script>{_COPY_JS}</script>"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(path: str | Path, rows: Sequence[Mapping[str, Any]], **options: Any) -> Path:
    """Write the page; its resolved path."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(rows, **options), encoding="utf-8")
    return target.resolve()
