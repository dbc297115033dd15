"""Show a lesson: rich text in the terminal, and one self-contained HTML chart file.

The HTML file opens offline: plotly's JavaScript is inlined once, nothing refers to the network.
It holds the narrative, the tables, the charts and every number the lesson quotes, as
the engine produced it, plus the run's journal digest so a reader can tell two runs apart.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from rich.cells import cell_len
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table as RichTable
from rich.text import Text

from perpsim.numbers import readable
from perpsim.teach.model import Chart, Lesson, Series, Table

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1f2933; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #d9e2ec; }
.meta { color: #52606d; margin-top: 0; }
ol.story li { line-height: 1.5; margin: 0.35rem 0; max-width: 62rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.92rem; }
caption { text-align: left; font-weight: 600; padding: 0.3rem 0; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 0.3rem 0.7rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-size: 0.9rem; }
"""
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_SPARK = "▁▂▃▄▅▆▇█"
_SPARK_WIDTH = 48
_NAME_WIDTH = 30


def file_name(topic: str) -> str:
    """The chart file's name for a topic."""
    return f"perpsim-lesson-{topic}.html"


# ---- terminal --------------------------------------------------------------------------------

def print_lesson(lesson: Lesson, console: Console | None = None) -> None:
    """The lesson in the terminal: the story, its tables, and a sparkline per chart series."""
    out = console or Console()
    story = Text(lesson.summary + "\n\n", style="italic")
    for n, line in enumerate(lesson.narrative, 1):
        story.append(f"{n:>2}. ", style="bold cyan")
        story.append(line + ("\n" if n < len(lesson.narrative) else ""), style="not italic")
    out.print(Panel(story, title=f"[bold]perpsim teach {lesson.topic}[/] · {lesson.title}",
                    title_align="left"))
    for table in lesson.tables:
        out.print(_rich_table(table))
    width = max(12, min(_SPARK_WIDTH, out.width - _NAME_WIDTH - 6))
    for chart in lesson.charts:
        out.print(_sparklines(chart, width))


def _rich_table(table: Table) -> RichTable:
    rich = RichTable(title=table.title, title_justify="left", title_style="bold")
    for i, header in enumerate(table.headers):
        rich.add_column(header, justify="left" if i == 0 else "right")
    for row in table.rows:
        rich.add_row(*row)
    return rich


def sparkline(values: Sequence[float | None], low: float, high: float,
              width: int = _SPARK_WIDTH) -> str:
    """Values resampled to ``width`` cells, each a block whose height is its place in
    [low, high]; gaps are blank."""
    if not values:
        return ""
    cells_n = min(width, len(values))
    picks = [values[round(i * (len(values) - 1) / max(cells_n - 1, 1))] for i in range(cells_n)]
    span = high - low
    cells = []
    for v in picks:
        if v is None or not math.isfinite(v):
            cells.append(" ")
            continue
        level = 0 if span <= 0 else round((v - low) / span * (len(_SPARK) - 1))
        cells.append(_SPARK[max(0, min(len(_SPARK) - 1, level))])
    return "".join(cells)


def _sparklines(chart: Chart, width: int = _SPARK_WIDTH) -> Group:
    """A chart in text: one sparkline per series, each y axis on its own common scale."""
    drawn = [s for s in chart.series if len(s.y) >= 3]
    lines: list[Text] = [Text(f"chart · {chart.title}", style="bold")]
    for axis in (False, True):
        group = [s for s in drawn if s.right_axis is axis]
        finite = [v for s in group for v in s.y if v is not None and math.isfinite(v)]
        if not finite:
            continue
        low, high = min(finite), max(finite)
        title = chart.y2_title if axis and chart.y2_title else chart.y_title
        lines.append(Text(f"  {title}: {_short(low)} … {_short(high)}", style="dim"))
        for s in group:
            name = s.name if cell_len(s.name) < _NAME_WIDTH else s.name[:_NAME_WIDTH - 2] + "…"
            line = Text(f"    {name}{' ' * (_NAME_WIDTH - cell_len(name))}", style="dim")
            line.append(sparkline(list(s.y), low, high, width), style=_rich_colour(s.color))
            lines.append(line)
    return Group(*lines)


def _rich_colour(colour: str | None) -> str:
    return colour if colour and colour.startswith("#") and len(colour) == 7 else "white"


def _short(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return format(Decimal(f"{value:.5g}"), "f")  # 5 significant digits, never 1.2e-05


# ---- HTML ------------------------------------------------------------------------------------

def figure(chart: Chart) -> go.Figure:
    """The plotly figure of a chart."""
    layout: dict[str, Any] = {
        "title": {"text": chart.title}, "template": "plotly_white", "hovermode": "x unified",
        "xaxis": {"title": {"text": chart.x_title}}, "yaxis": {"title": {"text": chart.y_title}},
        "legend": {"orientation": "h", "y": -0.22},
        "margin": {"l": 80, "r": 80 if chart.y2_title else 20, "t": 50, "b": 40},
    }
    if chart.y2_title:
        layout["yaxis2"] = {"title": {"text": chart.y2_title}, "overlaying": "y",
                            "side": "right", "showgrid": False}
    fig = go.Figure(layout=layout)
    for series in chart.series:
        fig.add_trace(_trace(series))
    return fig


def _trace(s: Series) -> go.Scatter | go.Bar:
    axis = {"yaxis": "y2"} if s.right_axis else {}
    x, y = list(s.x), list(s.y)
    if s.kind == "bar":
        return go.Bar(x=x, y=y, name=s.name, marker={"color": s.color}, **axis)
    if s.kind == "markers":
        return go.Scatter(x=x, y=y, name=s.name, mode="markers",
                          marker={"color": s.color, "size": 11, "symbol": "x"}, **axis)
    line: dict[str, Any] = {"color": s.color}
    if s.kind == "step":
        line["shape"] = "hv"
    if s.kind == "dash":
        line["dash"] = "dash"
    return go.Scatter(x=x, y=y, name=s.name, mode="lines", line=line, connectgaps=False,
                      **axis)


def _figure_html(chart: Chart) -> str:
    return str(figure(chart).to_html(full_html=False, include_plotlyjs=False,
                                     config=_PLOT_CONFIG, default_height="430px"))


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        cells = "".join(f'<td class="num">{html.escape(c)}</td>' if i else
                        f"<td>{html.escape(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return (f"<table><caption>{html.escape(table.title)}</caption><thead><tr>{head}</tr>"
            f"</thead><tbody>{''.join(body)}</tbody></table>")


def _plain(value: object) -> str:
    if isinstance(value, Decimal | float):
        return readable(value) if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def lesson_html(lesson: Lesson) -> str:
    """The whole lesson as one HTML document (plotly JS inlined once, no network)."""
    ex = lesson.exchange
    meta = (f"profile <b>{html.escape(ex.profile.name)}</b> · scenario "
            f"<b>{html.escape(ex.scenario.name)}</b> · seed <b>{ex.seed}</b> · "
            f"journal {len(ex.journal)} events, digest <code>{ex.journal.digest()[:16]}</code>")
    numbers = Table("Every number the lesson quotes, as the engine produced it (8 decimals)",
                    ("name", "value"), tuple((k, _plain(v)) for k, v in lesson.numbers.items()))
    body = [
        f"<h1>{html.escape(lesson.title)}</h1>",
        f'<p class="meta">{html.escape(lesson.summary)}<br>{meta}</p>',
        "<h2>What the run shows</h2>",
        '<ol class="story">' + "".join(f"<li>{html.escape(line)}</li>"
                                       for line in lesson.narrative) + "</ol>",
        *[_html_table(t) for t in lesson.tables],
        "<h2>Charts</h2>",
        *[_figure_html(c) for c in lesson.charts],
        "<h2>The engine's numbers</h2>", _html_table(numbers),
        f"<p class=\"meta\">Re-run: <code>perpsim teach {html.escape(lesson.topic)}</code></p>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>perpsim lesson · {html.escape(lesson.title)}</title>"
        f"<style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
        "</head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_lesson_html(lesson: Lesson, out_dir: str | Path) -> Path:
    """Write ``out_dir/perpsim-lesson-TOPIC.html`` (directories created); its resolved path."""
    target = Path(out_dir).expanduser() / file_name(lesson.topic)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(lesson_html(lesson), encoding="utf-8")
    return target.resolve()
