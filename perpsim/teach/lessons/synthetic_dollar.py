"""Lesson ``synthetic-dollar``: 1 BTC plus a 1x short of its USD value is a dollar that cannot die.

Two traders hold 1 BTC each and short 600 contracts (60,000 USD) against it, isolated margin:
A at 1x with all of the coin as collateral, B at 3x with a third of it (the rest in spot). The
price walks 60,000 → 240,000 (+300 %) → 15,000 (−75 %) → 60,000 in 0.5 % steps; the engine's
risk view gives each hedge's equity and margin ratio at every step, the journal B's liquidation.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpsim.sim.risk import position_risk
from perpsim.teach.lessons._common import (
    BTC,
    COIN,
    MINUTE_MS,
    T0_MS,
    account,
    geometric_path,
    market,
    of_type,
    step_to,
    venue,
)
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
    usd,
)

TOPIC = "synthetic-dollar"
TITLE = "The synthetic dollar: 1 BTC + a 1x short"
SUMMARY = ("a 1x short with coin collateral keeps its USD value and cannot be liquidated; "
           "3x with partial collateral can")

QTY = 600  # 60,000 USD: the value of 1 BTC at the start
STEP = Decimal("0.005")
TOP_USD, BOTTOM_USD, START_USD = 240_000, 15_000, 60_000
WAIT_MS = 10_000


def price_path() -> list[Decimal]:
    """60,000 → 240,000 → 15,000 → 60,000 in 0.5 % steps (each end included)."""
    return [*geometric_path(START_USD, TOP_USD, STEP), Decimal(TOP_USD),
            *geometric_path(TOP_USD, BOTTOM_USD, STEP), Decimal(BOTTOM_USD),
            *geometric_path(BOTTOM_USD, START_USD, STEP), Decimal(START_USD)]


def run() -> Lesson:
    """Walk the path with both hedges; return the lesson with the engine's numbers."""
    ex = venue()
    a = account(ex, "1.001", label="A: 1x, all coin as collateral", mode="isolated", leverage=1)
    b = account(ex, "0.334", label="B: 3x, a third as collateral", mode="isolated", leverage=3,
                spot_btc="0.666")
    market(ex, a, "SELL", QTY)
    market(ex, b, "SELL", QTY)
    n_usd = Decimal(QTY * 100)
    risk_a, risk_b = position_risk(ex, a, BTC), position_risk(ex, b, BTC)
    entry = risk_a.entry_price_usd
    assert entry is not None
    assert risk_b.liquidation_price_usd is not None
    assert risk_b.bankruptcy_price_usd is not None

    minutes: list[float] = []
    marks: list[Decimal] = []
    value: dict[str, list[Decimal | None]] = {"a": [], "b": []}
    coin_a: list[Decimal] = []
    ratio: dict[str, list[Decimal | None]] = {"a": [], "b": []}
    max_ratio_a = Decimal(0)
    for price in price_path():
        step_to(ex, price, wait_ms=WAIT_MS)
        mark = ex.mark_price(BTC)
        view_a, view_b = position_risk(ex, a, BTC), position_risk(ex, b, BTC)
        minutes.append((ex.now_ms - T0_MS) / MINUTE_MS)
        marks.append(mark)
        coin_a.append(view_a.margin_balance_coin)
        value["a"].append(view_a.margin_balance_coin * mark)
        ratio["a"].append(view_a.margin_ratio * 100)
        max_ratio_a = max(max_ratio_a, view_a.margin_ratio)
        b_open = view_b.qty_contracts != 0
        b_coin = ex.spot_balance(b, COIN) + (view_b.margin_balance_coin if b_open else 0)
        value["b"].append(b_coin * mark)
        ratio["b"].append(view_b.margin_ratio * 100 if b_open else None)

    [triggered] = of_type(ex.journal, "liquidation.triggered", account_id=b)
    [takeover] = of_type(ex.journal, "liquidation.takeover", account_id=b)
    liq_mark = payload_decimal(takeover.payload, "mark")
    a_values = [v for v in value["a"] if v is not None]
    b_values = [v for v in value["b"] if v is not None]
    i_top, i_bottom = marks.index(Decimal(TOP_USD)), marks.index(Decimal(BOTTOM_USD))
    numbers: dict[str, Any] = {
        "qty_contracts": QTY, "notional_usd": n_usd, "entry_usd": entry,
        "a_margin_btc": risk_a.isolated_margin_coin, "b_margin_btc": risk_b.isolated_margin_coin,
        "b_spot_btc": ex.spot_balance(b, COIN),
        "a_liquidation_price": risk_a.liquidation_price_usd,  # None: it has none
        "a_max_margin_ratio": max_ratio_a,
        "a_coin_at_top_btc": coin_a[i_top], "a_coin_at_bottom_btc": coin_a[i_bottom],
        "a_min_value_usd": min(a_values), "a_max_value_usd": max(a_values),
        "b_liquidation_price_usd": risk_b.liquidation_price_usd,
        "b_bankruptcy_price_usd": risk_b.bankruptcy_price_usd,
        "b_liquidated_at_mark_usd": liq_mark, "b_liquidated_at_ms": triggered.time_ms,
        "b_loss_btc": payload_decimal(takeover.payload, "loss"),
        "b_value_at_top_usd": value["b"][i_top], "b_value_at_bottom_usd": value["b"][i_bottom],
        "b_end_value_usd": b_values[-1], "a_end_value_usd": a_values[-1],
        "path_top_usd": max(marks), "path_bottom_usd": min(marks), "path_steps": len(marks),
    }
    n = numbers
    rise = risk_b.liquidation_price_usd / entry - 1
    narrative = [
        f"A and B each short {contracts(QTY)} (N = {usd(n_usd, 0)}, the value of 1 BTC) at "
        f"{usd(entry, 1)}, isolated margin, to lock the dollar value of their coin.",
        f"A: 1x, 1.001 BTC deposited, margin {btc(n['a_margin_btc'])} = N / entry. B: 3x, "
        f"0.334 BTC deposited, margin {btc(n['b_margin_btc'])}, {btc(n['b_spot_btc'], 3)} kept "
        "in spot.",
        "A short's equity = margin + N × (1 / price − 1 / entry). With margin = N / entry that "
        "is N / price coin: worth exactly N dollars at any price.",
        f"So A has no liquidation price: its equity N / price always beats the maintenance "
        f"margin N / price × 0.4 % (margin ratio at most {pct(n['a_max_margin_ratio'], 3)}).",
        f"The price went to {usd(n['path_top_usd'], 0)} (+300 %) and {usd(n['path_bottom_usd'], 0)}"
        f" (−75 %): A's equity went from 1 to {btc(n['a_coin_at_top_btc'], 4)} and "
        f"{btc(n['a_coin_at_bottom_btc'], 4)} while its value stayed between "
        f"{usd(n['a_min_value_usd'], 4)} and {usd(n['a_max_value_usd'], 4)}.",
        f"B's liquidation price: entry × L × (1 − MMR) / (L − 1) = "
        f"{usd(n['b_liquidation_price_usd'])} (+{pct(rise, 1)}); bankruptcy (no margin left) "
        f"at {usd(n['b_bankruptcy_price_usd'])}.",
        f"B was liquidated on the way up, at a mark of {usd(liq_mark, 1)}: all of its "
        f"{btc(n['b_loss_btc'])} of margin is gone, and with it the hedge.",
        f"From then on B's {btc(n['b_spot_btc'], 3)} was naked: {usd(n['b_value_at_top_usd'], 0)}"
        f" at the top, {usd(n['b_value_at_bottom_usd'], 0)} at the bottom, "
        f"{usd(n['b_end_value_usd'], 0)} back at 60,000 (A: {usd(n['a_end_value_usd'], 0)}).",
        "A hedge is only as safe as its collateral: 1x with coin collateral cannot be "
        "liquidated; 3x with a third of the coin dies on a +50 % move.",
    ]
    table = Table("The two hedges (engine risk view and journal)",
                  ("", "A: 1x, all coin", "B: 3x, a third"), (
                      ("isolated margin", btc(n["a_margin_btc"]), btc(n["b_margin_btc"])),
                      ("coin in spot", btc(0), btc(n["b_spot_btc"])),
                      ("liquidation price", "none",
                       usd(n["b_liquidation_price_usd"])),
                      ("bankruptcy price", "none", usd(n["b_bankruptcy_price_usd"])),
                      ("liquidated", "no", f"yes, at a mark of {usd(liq_mark, 1)}"),
                      ("value at 240,000", usd(value["a"][i_top] or 0),
                       usd(n["b_value_at_top_usd"] or 0)),
                      ("value at 15,000", usd(value["a"][i_bottom] or 0),
                       usd(n["b_value_at_bottom_usd"] or 0)),
                      ("value at the end", usd(n["a_end_value_usd"]), usd(n["b_end_value_usd"])),
                  ))
    liq_minute = (triggered.time_ms - T0_MS) / MINUTE_MS
    charts = [
        Chart("USD value of each hedge as the price triples, collapses and recovers",
              "minutes since 00:00 UTC", "hedge value (USD)", (
                  Series("A: 1x, all coin as collateral", minutes, floats(value["a"]),
                         color="#047857"),
                  Series("B: 3x, a third as collateral (+ spot)", minutes, floats(value["b"]),
                         color="#b91c1c"),
                  Series("B liquidated", [liq_minute], [float(value["b"][
                      minutes.index(liq_minute)] or 0)], kind="markers", color="#111827"),
                  Series("mark price", minutes, floats(marks), kind="dash", color="#6b7280",
                         right_axis=True),
              ), y2_title="mark price (USD)"),
        Chart("Margin ratio (maintenance margin / margin balance; 100 % = liquidation)",
              "minutes since 00:00 UTC", "margin ratio (%)", (
                  Series("A: 1x", minutes, floats(ratio["a"]), color="#047857"),
                  Series("B: 3x (gone once liquidated)", minutes, floats(ratio["b"]),
                         color="#b91c1c"),
              )),
        Chart("A's equity in coin is N / price: fewer BTC as the price rises, each worth more",
              "minutes since 00:00 UTC", "A's equity (BTC)", (
                  Series("A's equity (BTC)", minutes, floats(coin_a), color="#1d4ed8"),
                  Series("mark price", minutes, floats(marks), kind="dash", color="#6b7280",
                         right_axis=True),
              ), y2_title="mark price (USD)"),
    ]
    return Lesson(TOPIC, TITLE, SUMMARY, narrative, numbers, [table], charts, ex,
                  {"a": a, "b": b})
