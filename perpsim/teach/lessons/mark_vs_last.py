"""Lesson ``mark-vs-last``: a wick on the last price does not liquidate; a move of the mark does.

A 20x isolated long (100 contracts) watches two events, sampled every second: a 3-second wick
of the perp (the last price) to −10 % with the index unmoved, then the index itself walking
down 100 USD every 5 s. The mark is median(P1, P2, last); the lesson rebuilds P1 and P2 from
the tape (P2 = index + the average basis of the last 30 samples, 5 s apart) and checks the
median is the engine's mark. Liquidation is judged on the mark only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from perpsim.sim.exchange import Exchange
from perpsim.sim.money import round_to_tick
from perpsim.sim.risk import position_risk
from perpsim.teach.lessons._common import BTC, SECOND_MS, account, market, of_type, venue
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
    usd,
)

TOPIC = "mark-vs-last"
TITLE = "Mark vs last: what liquidation looks at"
SUMMARY = "a wick on the last price that does not liquidate, a move of the mark that does"

QTY, LEVERAGE = 100, 20
INDEX_USD = Decimal(60_000)
WICK_USD = Decimal(54_000)  # −10 %
WICK_S = 3
FALL_STEP_USD, FALL_TO_USD = Decimal(100), Decimal(57_000)


def mark_inputs(ex: Exchange, t_ms: int) -> tuple[Decimal, Decimal, Decimal]:
    """(P1, P2, last) of the median mark at ``t_ms`` (now), rebuilt from the tape."""
    pricer = ex.pricer(BTC)
    tape, tick = pricer.tape, ex.instrument(BTC).tick_size
    index = ex.index_price(BTC)
    to_funding = ex.profile.funding.next_funding_time_ms(t_ms) - t_ms
    p1 = index * (1 + ex.mark_funding_rate(BTC) * to_funding / ex.profile.funding.interval_ms)
    step, count = ex.profile.mark.basis_sample_interval_ms, ex.profile.mark.basis_samples
    last_sample = t_ms // step * step
    basis = sum((round_to_tick(tape.perp_at(s), tick) - tape.index_at(s)
                 for s in range(last_sample - (count - 1) * step, last_sample + 1, step)),
                Decimal(0))
    return p1, index + basis / count, ex.last_price(BTC)


@dataclass(frozen=True)
class Sample:
    """One second of the run: prices, the mark's inputs, the long's margin ratio (None: flat)."""

    s: float
    index: Decimal
    last: Decimal
    mark: Decimal
    p1: Decimal
    p2: Decimal
    ratio: Decimal | None


def run() -> Lesson:
    """The wick, then the fall; return the lesson with the engine's numbers."""
    ex = venue()
    long_id = account(ex, "1", label="20x isolated long", mode="isolated", leverage=LEVERAGE)
    market(ex, long_id, "BUY", QTY)
    opened = position_risk(ex, long_id, BTC)
    lp, bp = opened.liquidation_price_usd, opened.bankruptcy_price_usd
    assert lp is not None
    assert bp is not None
    assert opened.entry_price_usd is not None
    t_open = ex.now_ms
    rows: list[Sample] = []

    def sample() -> None:
        view = position_risk(ex, long_id, BTC)
        p1, p2, last = mark_inputs(ex, ex.now_ms)
        rows.append(Sample((ex.now_ms - t_open) / SECOND_MS, ex.index_price(BTC), last,
                           ex.mark_price(BTC), p1, p2,
                           view.margin_ratio if view.qty_contracts else None))

    def wait(seconds: int) -> None:
        for _ in range(seconds):
            ex.advance(SECOND_MS)
            sample()

    sample()
    wait(60)  # to 00:02:00, a basis sample instant: the 3-second wick is one of the 30 samples
    assert ex.now_ms % ex.profile.mark.basis_sample_interval_ms == 0
    ex.set_prices(BTC, INDEX_USD, WICK_USD)
    sample()
    wait(WICK_S - 1)
    wick_rows = [r for r in rows if r.last == WICK_USD]
    ex.advance(SECOND_MS)
    ex.set_prices(BTC, INDEX_USD, INDEX_USD)
    sample()
    wait(180)
    price = INDEX_USD
    while price > FALL_TO_USD:
        price -= FALL_STEP_USD
        ex.set_prices(BTC, price)
        sample()
        wait(5)

    wick = wick_rows[0]
    call = of_type(ex.journal, "margin.call", account_id=long_id)[0]
    [takeover] = of_type(ex.journal, "liquidation.takeover", account_id=long_id)
    [order] = of_type(ex.journal, "liquidation.order", account_id=long_id)
    wick_end_ms = t_open + int(wick_rows[-1].s * SECOND_MS)
    numbers: dict[str, Any] = {
        "qty_contracts": QTY, "leverage": LEVERAGE, "entry_usd": opened.entry_price_usd,
        "margin_btc": opened.isolated_margin_coin,
        "liquidation_price_usd": lp, "bankruptcy_price_usd": bp,
        "wick_last_usd": wick.last, "wick_index_usd": wick.index, "wick_p1_usd": wick.p1,
        "wick_p2_usd": wick.p2, "wick_mark_usd": wick.mark,
        "wick_seconds": len(wick_rows),
        "wick_max_margin_ratio": max(r.ratio for r in wick_rows if r.ratio is not None),
        "liquidations_during_wick": len([e for e in of_type(ex.journal, "liquidation.triggered")
                                         if e.time_ms <= wick_end_ms]),
        "margin_call_mark_usd": payload_decimal(call.payload, "mark"),
        "margin_call_ratio": payload_decimal(call.payload, "margin_ratio"),
        "liquidation_mark_usd": payload_decimal(takeover.payload, "mark"),
        "takeover_fill_usd": payload_decimal(order.payload, "avg_price"),
        "insurance_delta_btc": payload_decimal(order.payload, "insurance_delta"),
    }
    n = numbers
    fall = lp / opened.entry_price_usd - 1
    narrative = [
        f"A {LEVERAGE}x isolated long of {contracts(QTY)} (10,000 USD) at "
        f"{usd(n['entry_usd'], 1)}: margin {btc(n['margin_btc'])}, liquidation price "
        f"{usd(lp)} ({pct(fall, 1)}).",
        "Mark = median(P1, P2, last). P1 = index × (1 + funding rate × time to funding / 8 h); "
        "P2 = index + the average (perp − index) of the last 30 samples, 5 s apart (2.5 min).",
        f"The wick: for {n['wick_seconds']} s the perp trades at {usd(wick.last, 0)} "
        f"(−10 %) while the index stays at {usd(wick.index, 0)}.",
        f"Then P1 = {usd(wick.p1)}, P2 = {usd(wick.p2)} (one sample of −6,000 among 30), "
        f"last = {usd(wick.last)}: the mark is the middle one, {usd(wick.mark)} "
        f"({pct(wick.mark / wick.index - 1, 2)}).",
        f"The long's margin ratio peaked at {pct(n['wick_max_margin_ratio'], 1)}: nothing "
        f"happened. Judged on the last price ({usd(wick.last, 0)}, below the LP) it would "
        "have been liquidated.",
        "The wick's sample stays in P2 for 2.5 minutes, but with P1 and last back at 60,000 the "
        "median ignores it: the mark was 60,000 USD again as soon as the wick ended.",
        "Then the index itself falls, 100 USD every 5 s, the perp with it: P1, P2 and last "
        "agree, and the mark follows the index.",
        f"Margin call (ratio ≥ 80 %) at a mark of {usd(n['margin_call_mark_usd'], 0)}; "
        f"liquidation at {usd(n['liquidation_mark_usd'], 0)}, the first mark at or below the "
        f"LP {usd(lp)}.",
        f"The engine took the position over at bankruptcy ({usd(bp)}) and sold at "
        f"{usd(n['takeover_fill_usd'], 1)}: {signed_btc(n['insurance_delta_btc'])} to the "
        "insurance fund.",
    ]
    table = Table("The mark's three inputs (rebuilt from the tape) and the engine's mark, USD",
                  ("moment", "index", "last", "P1", "P2", "mark", "margin ratio"), tuple(
                      (label, *(f"{p:,.1f}" for p in (r.index, r.last, r.p1, r.p2, r.mark)),
                       "—" if r.ratio is None else pct(r.ratio, 1))
                      for label, r in _moments(rows, wick_rows)))
    charts = _charts(rows, lp, bp, n["margin_call_mark_usd"], n["liquidation_mark_usd"])
    return Lesson(TOPIC, TITLE, SUMMARY, narrative, numbers, [table], charts, ex,
                  {"long": long_id})


def _moments(rows: list[Sample], wick_rows: list[Sample]) -> list[tuple[str, Sample]]:
    after = rows.index(wick_rows[-1]) + 1
    flat = next(i for i, r in enumerate(rows) if r.ratio is None)
    return [("before wick", rows[0]), ("in the wick", wick_rows[0]), ("after it", rows[after]),
            ("last alive", rows[flat - 1]), ("liquidated", rows[flat])]


def _charts(rows: list[Sample], lp: Decimal, bp: Decimal, call_mark: Decimal,
            liq_mark: Decimal) -> list[Chart]:
    x = [r.s for r in rows]
    edge = [x[0], x[-1]]
    liq_s = next(r.s for r in rows if r.ratio is None)
    call_s = next(r.s for r in rows if r.ratio is not None and r.ratio >= Decimal("0.8"))
    return [
        Chart("Index, last, mark, and the long's liquidation price",
              "seconds since the long opened", "USD", (
                  Series("last (perp)", x, floats(r.last for r in rows), kind="step",
                         color="#9ca3af"),
                  Series("index", x, floats(r.index for r in rows), kind="step",
                         color="#1d4ed8"),
                  Series("P2 = index + 2.5-min average basis", x, floats(r.p2 for r in rows),
                         kind="step", color="#a78bfa"),
                  Series("mark = median(P1, P2, last)", x, floats(r.mark for r in rows),
                         kind="step", color="#f97316"),
                  Series("liquidation price", edge, floats([lp, lp]), kind="dash",
                         color="#b91c1c"),
                  Series("bankruptcy price", edge, floats([bp, bp]), kind="dash",
                         color="#111827"),
                  Series("margin call", [call_s], floats([call_mark]), kind="markers",
                         color="#d97706"),
                  Series("liquidated", [liq_s], floats([liq_mark]), kind="markers",
                         color="#111827"),
              )),
        Chart("The long's margin ratio (maintenance margin / margin balance)",
              "seconds since the long opened", "margin ratio (%)", (
                  Series("margin ratio", x, floats(None if r.ratio is None else r.ratio * 100
                                                   for r in rows), kind="step",
                         color="#b91c1c"),
                  Series("margin call at 80 %", edge, [80.0, 80.0], kind="dash",
                         color="#d97706"),
                  Series("liquidation at 100 %", edge, [100.0, 100.0], kind="dash",
                         color="#111827"),
              )),
    ]
