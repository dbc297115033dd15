"""The HTML report: one self-contained file (plotly inlined once, no CDN) with the charts'
data, the attribution, the plan in words and the events timeline."""

from __future__ import annotations

import re
from pathlib import Path

from plotly.offline import get_plotlyjs
from test_strategy_results import hand_record

from perpsim.strategy.report import render_report, write_report

EXTERNAL_REF = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?"""
                          r"""(?:https?:)?//""", re.IGNORECASE)


def test_report_is_self_contained(tmp_path: Path) -> None:
    path = write_report(hand_record(), tmp_path / "sub" / "report.html", scenario="hand",
                        profile="binance_coinm", seed=3)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not EXTERNAL_REF.search(text), EXTERNAL_REF.search(text)
    # plotly's JS is inlined exactly once; outside it (its source names a topojson URL that
    # only geo charts fetch) nothing refers to the network at all.
    assert text.count(get_plotlyjs()) == 1
    rest = text.replace(get_plotlyjs(), "")
    assert "http://" not in rest
    assert "https://" not in rest
    assert text.count("Plotly.newPlot(") == 3
    assert len(text) > 1_000_000


def test_report_has_the_chart_data_and_tables() -> None:
    text = render_report(hand_record(), scenario="hand", profile="binance_coinm", seed=3)
    head = text.split("<body>", 1)[1]
    assert "scenario <b>hand</b>" in head
    assert "profile <b>binance_coinm</b>" in head
    assert "seed <b>3</b>" in head
    # prices, liquidation price, hedged and unhedged values, cumulative funding
    for trace in ('"name":"index"', '"name":"mark"', '"name":"last"',
                  '"name":"liquidation price"', '"name":"hedged (spot + short)"',
                  '"name":"unhedged (coin only)"', '"name":"funding (+ received, − paid)"'):
        assert trace in head, trace
    assert "[60000.0,55000.0,52000.0,50000.0]" in head  # the index
    assert "[300000.0,275000.0,260000.0,250000.0]" in head  # unhedged value
    assert "[66000.0,57750.0,null,null]" in head  # liquidation price, gone once flat
    assert "[0.0,0.01,0.01,0.01]" in head  # cumulative funding
    assert '"2024-01-01 03:00:00"' in head
    # the attribution, the plan in words and the events
    assert "+12,850.00" in head
    assert "+62,500.00" in head
    assert "-50,000.00" in head
    assert "<p>Short 3,000 contracts: 300,000 USD, the value of 5 BTC.</p>" in head
    assert "<p>The coin is the collateral.</p>" in head
    assert "hedge.open" in head
    assert "hedge.close" in head
    assert "2024-01-01 00:00:00" in head


def test_report_escapes_text_and_flags_liquidation() -> None:
    record = hand_record()
    record.liquidated = True
    record.exit_reason = "liquidated <at> 70,000"
    text = render_report(record, scenario="<x>", profile="p", seed=0)
    assert "scenario <b>&lt;x&gt;</b>" in text
    assert "liquidated &lt;at&gt; 70,000" in text
    assert "LIQUIDATED" in text
