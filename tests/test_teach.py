"""``perpsim teach``: every lesson runs, quotes the engine's own numbers, keeps the ledger
conserved, and renders to a self-contained HTML file; the command lists and rejects topics.

Each lesson's numbers are held against what the same run's journal, ledger and risk views say,
recomputed independently here (exact formulas from docs/mechanics.md where they apply).
"""

from __future__ import annotations

import argparse
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from plotly.io.json import to_json_plotly
from plotly.offline import get_plotlyjs

from perpsim.sim import liquidation_price as solver
from perpsim.sim.journal import Event
from perpsim.sim.ledger import insurance_account
from perpsim.sim.risk import position_risk
from perpsim.teach import TOPICS, Lesson, run_lesson, topics
from perpsim.teach.cli import add_teach_parser
from perpsim.teach.render import lesson_html, sparkline, write_lesson_html

from engine_helpers import bankruptcy, binance_isolated_lp, fr, q

BTC = "BTCUSD_PERP"
EXTERNAL_REF = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?"""
                          r"""(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="module")
def lessons() -> dict[str, Lesson]:
    """Every lesson, run once for the module."""
    return {topic: run_lesson(topic) for topic in TOPICS}


def shown(value: Decimal) -> Decimal:
    """An engine quotient as the journal writes it: rounded half-even to 8 decimals."""
    return value.quantize(Decimal("1e-8"))


def events(lesson: Lesson, *types: str, **match: Any) -> list[Event]:
    # A funding settlement's per-account payments are rows of its record (``expand``).
    return [e for e in lesson.exchange.journal.expanded() if e.type in types
            and all(e.payload.get(k) == v for k, v in match.items())]


def dec(payload: Any, key: str) -> Decimal:
    return Decimal(str(payload[key]))


def close(a: Decimal | Fraction, b: Decimal | Fraction, tol: str = "1e-18") -> bool:
    return abs(Fraction(a) - Fraction(b)) <= Fraction(Decimal(tol))


# ---- every lesson ------------------------------------------------------------------------------

@pytest.mark.parametrize("topic", list(TOPICS))
def test_lesson_shape_and_ledger(lessons: dict[str, Lesson], topic: str) -> None:
    lesson = lessons[topic]
    assert lesson.topic == topic
    assert 5 <= len(lesson.narrative) <= 12
    assert all(line.strip() for line in lesson.narrative)
    text = " ".join(lesson.narrative)
    assert re.search(r"\d", text)
    assert " BTC" in text or " USD" in text
    assert lesson.charts
    assert all(s.y for c in lesson.charts for s in c.series)
    lesson.exchange.ledger.check_conserved(replay=True)
    negative = {k: v for k, v in lesson.exchange.ledger.balances().items()
                if k.startswith(("wallet:", "isolated:", "insurance:", "fees:")) and v < 0}
    assert not negative


@pytest.mark.parametrize("topic", list(TOPICS))
def test_html_is_self_contained_and_has_the_data(lessons: dict[str, Lesson], topic: str,
                                                 tmp_path: Path) -> None:
    lesson = lessons[topic]
    path = write_lesson_html(lesson, tmp_path / "out")
    assert path.name == f"perpsim-lesson-{topic}.html"
    text = path.read_text(encoding="utf-8")
    assert not EXTERNAL_REF.search(text)
    assert text.count(get_plotlyjs()) == 1
    rest = text.replace(get_plotlyjs(), "")
    assert "http://" not in rest
    assert "https://" not in rest
    assert rest.count("Plotly.newPlot(") == len(lesson.charts)
    for chart in lesson.charts:
        for series in chart.series:
            assert _plotly_json(series.name) in rest
            assert _plotly_json(list(series.y)) in rest
    for line in lesson.narrative[:2]:
        assert line.replace("&", "&amp;").replace("'", "&#x27;")[:40] in rest



# ---- cascade -----------------------------------------------------------------------------------

def test_cascade_tells_the_runs_story(lessons: dict[str, Lesson]) -> None:
    """A cascade happened (more liquidated than the shock alone does with infinite depth), the
    fund drained, ADL fired once it could not pay, the 1x hedge was never liquidated, and the
    numbers quoted are the journal's."""
    from perpsim.sim.cascade_record import cascade_record
    from perpsim.sim.ledger import insurance_account
    from perpsim.teach.lessons.cascade import FUND_BTC, SHOCK_AT_MS

    lesson = lessons["cascade"]
    n, ex = lesson.numbers, lesson.exchange
    assert n["liquidated_accounts"] > n["liquidated_accounts_infinite_depth"] > 0
    assert n["liquidated_contracts"] > n["liquidated_contracts_infinite_depth"]
    assert n["cascade_accounts"] == n["liquidated_accounts"] - n[
        "liquidated_accounts_infinite_depth"]
    assert Decimal("-0.11") < n["shock_pct"] < Decimal("-0.09")
    record = cascade_record(ex, BTC, since_ms=ex.start_ms + SHOCK_AT_MS - 5 * 60_000)
    assert record["accounts"] == n["liquidated_accounts"]
    assert n["lowest_last_usd"] < n["index_then_usd"]  # the book, not the tape, set the last
    assert n["widest_mark_below_index_usd"] > 0  # and the mark followed
    assert n["fund_low_btc"] < FUND_BTC / 100  # drained
    assert n["fund_end_infinite_depth_btc"] > FUND_BTC  # the shock alone fed it
    assert n["adl_fills"] == len(events(lesson, "adl.fill")) > 0
    first_adl = events(lesson, "adl.ranking")[0]
    before = [e for e in events(lesson, "liquidation.order") if e.seq < first_adl.seq]
    assert dec(before[-1].payload, "insurance_fund") < FUND_BTC / 100
    hedge = lesson.accounts["hedge"]
    assert not events(lesson, "liquidation.triggered", account_id=hedge)
    assert n["hedge_liquidated"] is False
    assert n["hedge_liquidated_infinite_depth"] is False
    assert n["hedge_contracts_end"] == n["hedge_contracts_start"] < 0
    assert n["hedge_max_margin_ratio"] < Decimal("0.01")
    assert abs(n["hedge_equity_end_usd"] / n["hedge_equity_start_usd"] - 1) < Decimal("0.005")
    assert n["crowd_accounts"] == len(ex.crowd.traders) == 600
    assert ex.ledger.balance(insurance_account("BTC")) == n["fund_end_btc"]

def _plotly_json(value: Any) -> str:
    """A value as plotly writes it into the page (its own encoder: ``/`` escaped, 1e-6 …)."""
    return str(to_json_plotly(value))


# ---- inverse-pnl -------------------------------------------------------------------------------

def test_inverse_pnl_numbers_and_curvature(lessons: dict[str, Lesson]) -> None:
    lesson = lessons["inverse-pnl"]
    n = lesson.numbers
    long_id, short_id = lesson.accounts["long"], lesson.accounts["short"]
    trades = {a: events(lesson, "order.update", account_id=a, execution="TRADE")
              for a in (long_id, short_id)}
    entry_long = dec(trades[long_id][0].payload, "position_entry")
    entry_short = dec(trades[short_id][0].payload, "position_entry")
    assert (n["long_entry_usd"], n["short_entry_usd"]) == (entry_long, entry_short)
    # PnL in coin = side × N × (1/entry − 1/price), exactly
    for key, qty, entry, price in (("long_up50_btc", 600, entry_long, 90_000),
                                   ("long_down50_btc", 600, entry_long, 30_000),
                                   ("long_down75_btc", 600, entry_long, 15_000),
                                   ("short_up50_btc", -600, entry_short, 90_000),
                                   ("short_down50_btc", -600, entry_short, 30_000)):
        assert close(n[key], qty * 100 * (1 / fr(entry) - Fraction(1, price))), key
    assert n["long_up300_btc"] < n["long_cap_btc"] == Decimal(60_000) / entry_long
    # concave in coin for the long, convex for the short, linear in USD
    [coin_chart, usd_chart] = lesson.charts
    def second_differences(values: Any) -> list[float]:
        ys = [float(v) for v in values]
        return [ys[i - 1] + ys[i + 1] - 2 * ys[i] for i in range(1, len(ys) - 1)]

    assert all(d < 0 for d in second_differences(coin_chart.series[0].y))  # long: concave
    assert all(d > 0 for d in second_differences(coin_chart.series[1].y))  # short: convex
    for series in usd_chart.series:  # USD: straight lines (to float rounding)
        assert all(abs(d) < 1e-6 for d in second_differences(series.y))
    # realised on the close = the journal's, = the formula at the fill price on the satoshi
    close_long, close_short = trades[long_id][1].payload, trades[short_id][1].payload
    assert n["close_long_realised_btc"] == dec(close_long, "realized_pnl")
    assert n["close_short_realised_btc"] == dec(close_short, "realized_pnl")
    assert n["close_long_realised_btc"] == q(60_000 * (1 / fr(entry_long)
                                                       - 1 / fr(n["close_long_price_usd"])))
    assert "+0.33333 BTC" in lesson.narrative[2]


# ---- synthetic-dollar -------------------------------------------------------------------------

def test_synthetic_dollar_1x_survives_3x_partial_is_liquidated(lessons: dict[str, Lesson]) -> None:
    lesson = lessons["synthetic-dollar"]
    ex, n = lesson.exchange, lesson.numbers
    a, b = lesson.accounts["a"], lesson.accounts["b"]
    prices = [dec(e.payload, "index") for e in events(lesson, "prices.set")]
    assert max(prices) >= 4 * 60_000
    assert min(prices) <= Decimal("0.25") * 60_000
    # A: never warned, never liquidated, still short, no liquidation price at all
    assert events(lesson, "margin.call", "liquidation.triggered", account_id=a) == []
    assert ex.position(a, BTC).qty_contracts == -600
    assert position_risk(ex, a, BTC).liquidation_price_usd is None
    assert n["a_liquidation_price"] is None
    assert abs(n["a_max_value_usd"] - 60_000) < Decimal("0.01")
    assert abs(n["a_min_value_usd"] - 60_000) < Decimal("0.01")
    assert n["a_max_margin_ratio"] < Decimal("0.0041")
    # B: liquidated, at a mark past the LP the lesson quotes, which the solver reproduces
    [triggered] = events(lesson, "liquidation.triggered", account_id=b)
    snap = triggered.payload["positions"][0]
    assert dec(snap, "liquidation_price") == shown(n["b_liquidation_price_usd"])
    assert dec(snap, "mark") == n["b_liquidated_at_mark_usd"] >= n["b_liquidation_price_usd"]
    assert n["b_liquidated_at_mark_usd"] < n["b_bankruptcy_price_usd"]
    prices_b = solver.isolated_prices(ex.profile, ex.instrument(BTC), -600, n["entry_usd"],
                                      n["b_margin_btc"])
    assert prices_b.liquidation_price_usd == n["b_liquidation_price_usd"]
    assert ex.position(b, BTC).qty_contracts == 0
    assert ex.isolated_wallet(b, BTC) == 0
    assert n["b_loss_btc"] == n["b_margin_btc"]


# ---- funding ----------------------------------------------------------------------------------

def test_funding_rates_and_payments_are_the_journals(lessons: dict[str, Lesson]) -> None:
    lesson = lessons["funding"]
    ex, n = lesson.exchange, lesson.numbers
    hedger, long_id = lesson.accounts["hedger"], lesson.accounts["long"]
    settled = events(lesson, "funding.settled")
    assert len(settled) == n["payments"] == 12
    assert n["rates"] == [dec(e.payload, "rate") for e in settled]
    # the template by hand on the lesson's P̄ gives the engine's rate at every funding time
    for p_bar, rate in zip(n["p_bars"], n["rates"], strict=True):
        hand = p_bar + min(max(n["interest_rate"] - p_bar, -n["clamp"]), n["clamp"])
        assert min(max(hand, -n["cap"]), n["cap"]).quantize(Decimal("1e-8")) == rate
    assert n["rates"][0] > 0 > n["rates"][-1] == -n["cap"]
    paid = events(lesson, "funding.payment", account_id=hedger)
    longs = events(lesson, "funding.payment", account_id=long_id)
    assert n["first_hedger_btc"] == dec(paid[0].payload, "amount") > 0
    assert n["first_long_btc"] == dec(longs[0].payload, "amount") == -n["first_hedger_btc"]
    # payment = N / mark × F on the satoshi (long pays when F > 0)
    first = settled[0].payload
    assert n["first_hedger_btc"] == q(Fraction(60_000) / fr(dec(first, "mark"))
                                      * fr(dec(first, "rate")))
    assert n["flip_hedger_btc"] == dec(paid[6].payload, "amount") < 0
    total = sum((dec(e.payload, "amount") for e in paid), Decimal(0))
    assert n["hedger_net_btc"] == total == n["hedger_received_btc"] + n["hedger_paid_btc"]
    # the ledger agrees: the isolated margin moved by exactly the payments
    [opened] = events(lesson, "order.update", account_id=hedger, execution="TRADE")
    assert ex.isolated_wallet(hedger, BTC) == dec(opened.payload, "isolated_wallet") + total


# ---- mark-vs-last -----------------------------------------------------------------------------

def test_mark_vs_last_wick_spares_mark_move_liquidates(lessons: dict[str, Lesson]) -> None:
    lesson = lessons["mark-vs-last"]
    ex, n = lesson.exchange, lesson.numbers
    long_id = lesson.accounts["long"]
    opened = events(lesson, "order.update", account_id=long_id, execution="TRADE")[0]
    entry, margin = dec(opened.payload, "position_entry"), dec(opened.payload, "isolated_wallet")
    assert margin == n["margin_btc"]
    assert close(n["liquidation_price_usd"], binance_isolated_lp(100, entry, margin, "0.004"))
    assert close(n["bankruptcy_price_usd"], bankruptcy(100, entry, margin))
    # the wick: last far below the LP, mark = median(P1, P2, last) barely moved, no liquidation
    assert n["wick_last_usd"] < n["liquidation_price_usd"]
    inputs = sorted((n["wick_p1_usd"], n["wick_p2_usd"], n["wick_last_usd"]))
    assert inputs[1].quantize(Decimal("1e-8")) == n["wick_mark_usd"] == Decimal("59800")
    assert n["wick_max_margin_ratio"] < Decimal("0.8")
    assert n["liquidations_during_wick"] == 0
    wick_sets = [e for e in events(lesson, "prices.set") if dec(e.payload, "perp") < 55_000]
    [triggered] = events(lesson, "liquidation.triggered", account_id=long_id)
    assert triggered.time_ms > wick_sets[-1].time_ms + 60_000
    # the mark move: liquidated at the first mark at or below the LP, after a margin call
    snap = triggered.payload["positions"][0]
    assert dec(snap, "mark") == n["liquidation_mark_usd"] <= n["liquidation_price_usd"]
    assert n["liquidation_mark_usd"] + 100 > n["liquidation_price_usd"]
    call = events(lesson, "margin.call", account_id=long_id)[0]
    assert call.seq < triggered.seq
    [order] = events(lesson, "liquidation.order", account_id=long_id)
    assert n["insurance_delta_btc"] == dec(order.payload, "insurance_delta") > 0
    assert ex.position(long_id, BTC).qty_contracts == 0


# ---- liquidation ------------------------------------------------------------------------------

def test_liquidation_prices_brackets_isolated_vs_cross(lessons: dict[str, Lesson]) -> None:
    lesson = lessons["liquidation"]
    ex, n = lesson.exchange, lesson.numbers
    iso, cross = lesson.accounts["isolated"], lesson.accounts["cross"]
    opened = events(lesson, "order.update", account_id=iso, execution="TRADE")[0]
    entry, margin = dec(opened.payload, "position_entry"), dec(opened.payload, "isolated_wallet")
    assert margin == n["iso_margin_btc"]
    assert close(n["iso_lp_usd"], binance_isolated_lp(100, entry, margin, "0.004"))
    assert close(n["iso_bp_usd"], bankruptcy(100, entry, margin))
    assert close(n["iso_balance_at_lp_btc"], n["iso_mm_at_lp_btc"], "1e-20")
    assert abs(n["iso_lp_usd"] - n["iso_lp_closed_form_usd"]) < Decimal("0.01")
    # the re-solve: the entry bracket's answer lies past its cap, the engine's inside bracket 3
    assert n["big_entry_bracket"] == 2
    assert n["big_naive_value_btc"] >= 10 > n["big_value_btc"]
    assert n["big_lp_bracket"] == 3
    assert 10 <= n["big_lp_value_btc"] < 20
    assert n["big_lp_usd"] != n["big_naive_lp_usd"]
    assert close(n["big_balance_at_lp_btc"], n["big_mm_at_lp_btc"], "1e-20")
    # isolated vs cross on the same fall: each liquidated past its own LP, from the journal
    for role, account_id in (("iso", iso), ("cross", cross)):
        [triggered] = events(lesson, "liquidation.triggered", account_id=account_id)
        snap = triggered.payload["positions"][0]
        assert dec(snap, "liquidation_price") == shown(n[f"{role}_lp_usd"])
        assert dec(snap, "mark") == n[f"{role}_liquidated_mark_usd"] <= n[f"{role}_lp_usd"]
        [takeover] = events(lesson, "liquidation.takeover", account_id=account_id)
        assert dec(takeover.payload, "loss") == n[f"{role}_loss_btc"]
        assert ex.wallet_balance(account_id, "BTC") == n[f"{role}_wallet_after_btc"]
    assert n["iso_loss_btc"] == n["iso_margin_btc"]
    assert n["iso_wallet_after_btc"] == n["iso_wallet_before_btc"]
    assert n["cross_loss_btc"] == n["cross_wallet_before_btc"]
    assert n["cross_lp_usd"] < n["iso_liquidated_mark_usd"] / 6


# ---- insurance-adl ----------------------------------------------------------------------------

def test_insurance_fund_and_adl_ranking_are_the_journals(lessons: dict[str, Lesson]) -> None:
    lesson = lessons["insurance-adl"]
    ex, n = lesson.exchange, lesson.numbers
    name_of = {account_id: name for name, account_id in lesson.accounts.items()}
    [ranking] = events(lesson, "adl.ranking")
    rows = ranking.payload["ranking"]
    assert n["ranking"] == [name_of[r["account_id"]] for r in rows]
    assert n["scores"] == [dec(r, "score") for r in rows]
    assert n["scores"] == sorted(n["scores"], reverse=True)
    # Binance's score, max(0, UPNL)/max(1, wallet) × MM/(wallet + UPNL), rebuilt by the
    # lesson, = the engine's to 8 places
    for pnl, ratio, score in zip(n["pnl_pcts"], n["margin_ratios"], n["scores"], strict=True):
        assert abs(pnl * ratio - score) < Decimal("1e-8")
    [fill] = events(lesson, "adl.fill")
    assert name_of[fill.payload["account_id"]] == n["adl_victim"] == n["ranking"][0]
    [takeover_b] = events(lesson, "liquidation.takeover", account_id=lesson.accounts["B"])
    assert dec(fill.payload, "price") == n["adl_price_usd"] == n["b_bp_usd"] == dec(
        takeover_b.payload, "bankruptcy_price")
    assert dec(fill.payload, "realized_pnl") == n["adl_realised_btc"] < n["adl_upnl_at_mark_btc"]
    assert fill.payload["counterparty_of"] == lesson.accounts["B"]
    assert ex.position(lesson.accounts[n["adl_victim"]], BTC).qty_contracts == 0
    # the fund: + surplus on the slide, − A's deficit on the gap, untouched by ADL
    assert n["fund_after_slide_btc"] == n["fund_start_btc"] + n["c_surplus_btc"]
    assert n["fund_after_a_btc"] == n["fund_after_slide_btc"] + n["a_deficit_btc"]
    assert n["fund_end_btc"] == n["fund_after_a_btc"] == ex.ledger.balance(
        insurance_account("BTC"))
    assert n["b_would_cost_btc"] > n["fund_after_a_btc"]
    assert events(lesson, "insurance.cover") == []  # the fund paid A's deficit in full
    assert n["c_bp_usd"] < n["c_fill_usd"] < n["c_lp_usd"]


# ---- the command ------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perpsim")
    add_teach_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


def test_cli_lists_the_topics(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["teach"]) == 0
    out = capsys.readouterr().out
    for topic, summary in topics().items():
        assert re.search(rf"^\s+{re.escape(topic)}\s+{re.escape(summary)}$", out, re.M)
    assert list(TOPICS) == ["inverse-pnl", "synthetic-dollar", "funding", "mark-vs-last",
                            "liquidation", "insurance-adl", "cascade"]


def test_cli_rejects_an_unknown_topic(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["teach", "margin"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert "unknown topic 'margin'" in line
    assert all(topic in line for topic in TOPICS)


def test_cli_runs_a_lesson_and_writes_its_chart(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["teach", "insurance-adl", "--out", str(tmp_path / "x"), "--no-open"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "x" / "perpsim-lesson-insurance-adl.html"
    assert path.is_file()
    assert f"chart: {path.resolve()}" in out
    assert "degen" in out
    assert "ADL" in out


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_cli_refuses_an_unwritable_directory_before_running(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        where: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ran: list[str] = []
    monkeypatch.setattr("perpsim.teach.cli.run_lesson", ran.append)
    assert _run(["teach", "inverse-pnl", "--out", str(tmp_path / where), "--no-open"]) == 2
    captured = capsys.readouterr()
    assert ran == []  # refused before the lesson ran
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith(f"perpsim: error: cannot write the chart file in {tmp_path / where}")


def test_sparkline_scales_and_gaps() -> None:
    assert sparkline([0.0, 1.0, None, 0.5], 0.0, 1.0) == "▁█ ▅"
    assert sparkline(list(map(float, range(100))), 0.0, 99.0, width=10)[::9] == "▁█"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """URLs the command tried to open in a browser (none is really opened)."""
    urls: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: urls.append(url) or True)
    return urls


def test_cli_opens_no_browser_when_not_on_a_terminal(tmp_path: Path, opened: list[str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["teach", "insurance-adl", "--out", str(tmp_path)]) == 0  # stdout is captured
    assert opened == []
    assert "chart: " in capsys.readouterr().out


def test_html_renders_without_writing(lessons: dict[str, Lesson]) -> None:
    text = lesson_html(lessons["funding"])
    assert text.startswith("<!DOCTYPE html>")
    assert "funding_flip" in text
    assert "The engine&#x27;s numbers" in text or "The engine's numbers" in text
