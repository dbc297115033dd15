"""Lesson ``funding``: who pays whom, the premium index and the clamp, and a flip eating a hedge.

The bundled ``funding_flip`` scenario (seed 0) runs 4 days: 2 with the perp about 0.1 % above
the index, then 2 about 0.6 % below. A hedger (1 BTC, 1x isolated short of 600 contracts) and
a long of the same size hold through all 12 funding times. The lesson recomputes each window's
weighted premium average from the engine's own premium samples, applies the clamp and cap by
hand, and sets that beside the rate and payments the journal recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np

from perpsim.sim.exchange import Exchange
from perpsim.sim.journal import Event
from perpsim.sim.profile import load_profile
from perpsim.sim.scenario import load_scenario
from perpsim.teach.lessons._common import BTC, HOUR_MS, MINUTE_MS, account, market, of_type
from perpsim.teach.model import (
    Chart,
    Lesson,
    Series,
    Table,
    btc,
    contracts,
    floats,
    payload_decimal,
    pct,
    signed_btc,
    signed_usd,
    usd,
)

TOPIC = "funding"
TITLE = "Funding: premium, clamp, who pays whom"
SUMMARY = "the premium index, the ±0.05 % clamp and the cap, and a funding flip eating a hedge"

QTY = 600
SCENARIO = "funding_flip"


def window_average(ex: Exchange, start_ms: int, end_ms: int) -> Decimal:
    """P̄ of a window from the engine's premium samples: every 5 s in (start, end], sample i
    weighted i (Binance), rounded to 12 places as the engine does before the template."""
    step = ex.profile.funding.premium_sample_interval_ms
    samples = np.arange(start_ms + step, end_ms // step * step + 1, step, dtype=np.int64)
    premiums = ex.pricer(BTC).premiums(samples)
    weights = np.arange(1, len(premiums) + 1, dtype=np.float64)
    average = float((premiums * weights).sum() / weights.sum())
    return Decimal(repr(average)).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)


def _clock(t_ms: int) -> str:
    moment = datetime.fromtimestamp(t_ms / 1000, tz=UTC)
    return f"{moment:%b} {moment.day} {moment:%H}h"


def run() -> Lesson:
    """Run the flip with a hedger and a long; return the lesson with the engine's numbers."""
    profile = load_profile("binance_coinm")
    scenario = load_scenario(SCENARIO, seed=0)
    ex = Exchange(profile, scenario, seed=0)
    ex.advance(MINUTE_MS)
    hedger = account(ex, "1", label="hedger: 1 BTC + 1x short", mode="isolated", leverage=1)
    long_id = account(ex, "1", label="long", mode="cross", leverage=20)
    market(ex, hedger, "SELL", QTY)
    market(ex, long_id, "BUY", QTY)
    assert scenario.end_ms is not None
    ex.advance_until(scenario.end_ms)

    funding = profile.funding
    cap = ex.instrument(BTC).funding_cap
    rows: list[tuple[str, ...]] = []
    windows: list[dict[str, Any]] = []
    cumulative_btc, cumulative_usd = Decimal(0), Decimal(0)
    cum_series: list[tuple[float, Decimal, Decimal]] = [(0.0, Decimal(0), Decimal(0))]
    for settled in of_type(ex.journal, "funding.settled"):
        t = settled.time_ms
        p_bar = window_average(ex, t - funding.interval_ms, t)
        clamped = min(max(funding.interest_rate - p_bar, -funding.clamp), funding.clamp)
        uncapped = p_bar + clamped
        rate = payload_decimal(settled.payload, "rate")
        mark = payload_decimal(settled.payload, "mark")
        [paid] = _payments(ex, hedger, t)
        [long_paid] = _payments(ex, long_id, t)
        amount = payload_decimal(paid.payload, "amount")
        cumulative_btc += amount
        cumulative_usd += amount * mark
        hours = (t - scenario.start_ms) / HOUR_MS
        cum_series.append((hours, cumulative_btc, cumulative_usd))
        windows.append({"time_ms": t, "p_bar": p_bar, "clamped": clamped, "uncapped": uncapped,
                        "rate": rate, "mark": mark, "hedger_btc": amount,
                        "long_btc": payload_decimal(long_paid.payload, "amount")})
        rows.append((_clock(t), f"{p_bar * 100:+.4f}", f"{clamped * 100:+.2f}",
                     f"{uncapped * 100:+.4f}", f"{rate * 100:+.4f}", f"{mark:,.0f}",
                     f"{amount:+.8f}"))
    first = windows[0]
    flip = next(w for w in windows if w["rate"] < 0)
    received = sum((w["hedger_btc"] for w in windows if w["hedger_btc"] > 0), Decimal(0))
    paid_out = sum((w["hedger_btc"] for w in windows if w["hedger_btc"] < 0), Decimal(0))
    numbers: dict[str, Any] = {
        "qty_contracts": QTY, "notional_usd": Decimal(QTY * 100), "payments": len(windows),
        "interest_rate": funding.interest_rate, "clamp": funding.clamp, "cap": cap,
        "first_time_ms": first["time_ms"], "first_p_bar": first["p_bar"],
        "first_rate": first["rate"], "first_mark_usd": first["mark"],
        "first_hedger_btc": first["hedger_btc"], "first_long_btc": first["long_btc"],
        "flip_time_ms": flip["time_ms"], "flip_p_bar": flip["p_bar"],
        "flip_uncapped": flip["uncapped"], "flip_rate": flip["rate"],
        "flip_hedger_btc": flip["hedger_btc"],
        "hedger_received_btc": received, "hedger_paid_btc": paid_out,
        "hedger_net_btc": received + paid_out, "hedger_net_usd": cumulative_usd,
        "rates": [w["rate"] for w in windows], "p_bars": [w["p_bar"] for w in windows],
    }
    n = numbers
    days_cost = 3 * cap  # three payments a day at the cap
    narrative = [
        f"Scenario {SCENARIO} (seed 0), 4 days: the perp trades about 0.1 % above the index for "
        "2 days, then about 0.6 % below. Funding settles at 00, 08 and 16 UTC: "
        f"{n['payments']} payments.",
        "Premium index = [max(0, impact bid − index) − max(0, index − impact ask)] / index, "
        "sampled every 5 s; P̄ = their average weighted 1, 2, 3, … (later samples count more).",
        f"Rate F = P̄ + clamp(I − P̄, ±{pct(n['clamp'])}) with interest I = "
        f"{pct(n['interest_rate'])}, then "
        f"capped at ±{pct(n['cap'])}. F > 0: longs pay shorts; F < 0: shorts pay longs.",
        f"First payment ({_clock(first['time_ms'])}): P̄ = {pct(first['p_bar'], 4)}, so "
        f"I − P̄ = {pct(n['interest_rate'] - first['p_bar'], 4)} is clamped to "
        f"{pct(first['clamped'])}: F = {pct(first['rate'], 4)}.",
        f"Payment = N / mark × F = 60,000 / {usd(first['mark'])} × {pct(first['rate'], 4)} = "
        f"{btc(first['hedger_btc'])}: the long paid it, the short hedger received it (journal: "
        f"{signed_btc(first['long_btc'])} and {signed_btc(first['hedger_btc'])}).",
        f"After the flip ({_clock(flip['time_ms'])}): P̄ = {pct(flip['p_bar'], 4)}, "
        f"P̄ + {pct(n['clamp'])} = {pct(flip['uncapped'], 4)}, capped at "
        f"{pct(flip['rate'], 4)}: now the hedger pays about {btc(-flip['hedger_btc'], 5)} "
        "each time.",
        f"The hedger ({contracts(QTY)} short on 1 BTC) received {btc(received)}, then "
        f"paid {btc(-paid_out)}: net {signed_btc(received + paid_out)} "
        f"({signed_usd(cumulative_usd)} at the marks paid).",
        "That is the carry of a short hedge: paid while the perp trades rich, charged when it "
        f"trades cheap; at the cap it costs {pct(days_cost)} of the hedge a day.",
    ]
    table = Table("Each funding time: the template by hand beside the engine's settled rate",
                  ("UTC", "P̄ %", "clamp %", "P̄+clamp %", "F %", "mark USD", "hedger BTC"),
                  tuple(rows))
    charts = _charts(ex, scenario.start_ms, windows, cap, cum_series)
    return Lesson(TOPIC, TITLE, SUMMARY, narrative, numbers, [table], charts, ex,
                  {"hedger": hedger, "long": long_id})


def _payments(ex: Exchange, account_id: str, t_ms: int) -> list[Event]:
    return [e for e in of_type(ex.journal, "funding.payment", account_id=account_id)
            if e.time_ms == t_ms]


def _charts(ex: Exchange, start_ms: int, windows: list[dict[str, Any]],
            cap: Decimal, cum: list[tuple[float, Decimal, Decimal]]) -> list[Chart]:
    end_ms = int(windows[-1]["time_ms"])
    minutes = np.arange(start_ms, end_ms + 1, MINUTE_MS, dtype=np.int64)
    premium_pct = (ex.pricer(BTC).premiums(minutes) * 100).tolist()
    hours = ((minutes - start_ms) / HOUR_MS).tolist()
    interval_h = ex.profile.funding.interval_ms / HOUR_MS
    starts = [(int(w["time_ms"]) - start_ms) / HOUR_MS - interval_h for w in windows]
    step_x = [*starts, starts[-1] + interval_h]

    def step(key: str) -> list[float | None]:
        values = floats(Decimal(w[key]) * 100 for w in windows)
        return [*values, values[-1]]

    edge = [hours[0], hours[-1]]
    return [
        Chart("Premium index (each minute), its window average P̄ and the funding rate F",
              "hours since the start", "% per 8 h", (
                  Series("premium index sample", hours, premium_pct, color="#9ca3af"),
                  Series("P̄ (weighted window average)", step_x, step("p_bar"), kind="step",
                         color="#1d4ed8"),
                  Series("F settled (after clamp and cap)", step_x, step("rate"), kind="step",
                         color="#b91c1c"),
                  Series(f"cap +{cap * 100} %", edge, [float(cap * 100)] * 2, kind="dash",
                         color="#6b7280"),
                  Series(f"cap −{cap * 100} %", edge, [float(-cap * 100)] * 2, kind="dash",
                         color="#6b7280"),
              )),
        Chart("The hedger's cumulative funding (+ received, − paid)", "hours since the start",
              "funding (BTC)", (
                  Series("cumulative funding (BTC)", [c[0] for c in cum],
                         floats(c[1] for c in cum), kind="step", color="#6d28d9"),
                  Series("cumulative funding (USD at each mark)", [c[0] for c in cum],
                         floats(c[2] for c in cum), kind="step", color="#059669",
                         right_axis=True),
              ), y2_title="funding (USD)"),
    ]
