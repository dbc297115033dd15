"""Lesson ``insurance-adl``: the insurance fund earns on orderly liquidations, pays for gaps, and
when it cannot pay, auto-deleveraging closes the most leveraged winners.

The venue's fund starts at 0.02 BTC (the profile varied with ``model_copy``). Three isolated
longs (20x, 25x, 50x) and three cross shorts of different leverage trade at 60,000. A slide to
59,000 liquidates the 50x long in an orderly way; a gap to 52,000 then takes the other two past
their bankruptcy prices. The journal tells the rest: takeover, fund cover, ADL ranking, ADL fill.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpsim.sim.exchange import Exchange
from perpsim.sim.inverse import pnl_coin
from perpsim.sim.ledger import insurance_account
from perpsim.sim.margin import maintenance_margin_coin
from perpsim.sim.profile import load_profile
from perpsim.teach.lessons._common import BTC, COIN, account, market, of_type, step_to, venue
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

TOPIC = "insurance-adl"
TITLE = "The insurance fund and auto-deleveraging"
SUMMARY = "a cascade where a gap drains the insurance fund and ADL closes a profitable trader"

FUND_BTC = Decimal("0.02")
LONGS = (("A", 20, 100), ("B", 25, 200), ("C", 50, 300))  # name, leverage, contracts
SHORTS = (("whale", "2", 300), ("trader", "0.2", 300), ("degen", "0.05", 200))  # name, BTC, qty
SLIDE_USD, GAP_USD = Decimal(59_000), Decimal(52_000)


def run() -> Lesson:
    """The slide, then the gap; return the lesson with the engine's numbers."""
    base = load_profile("binance_coinm")
    fund_start = {coin: Decimal(0) for coin in base.insurance_fund_start} | {COIN: FUND_BTC}
    ex = venue(base.model_copy(update={"insurance_fund_start": fund_start}))
    fund = insurance_account(COIN)
    names: dict[str, str] = {}
    for name, deposit, _ in SHORTS:
        names[account(ex, deposit, label=name, mode="cross", leverage=20)] = name
    for name, leverage, _ in LONGS:
        names[account(ex, "1", label=f"long {name}", mode="isolated", leverage=leverage)] = name
    ids = {name: account_id for account_id, name in names.items()}
    for name, _, qty in SHORTS:
        market(ex, ids[name], "SELL", qty)
    for name, _, qty in LONGS:
        market(ex, ids[name], "BUY", qty)
    short_entry = ex.position(ids["degen"], BTC).entry_price_usd
    assert short_entry is not None
    wallets = {name: ex.wallet_balance(ids[name], COIN) for name, _, _ in SHORTS}

    balances = [("start", ex.ledger.balance(fund))]
    step_to(ex, SLIDE_USD)
    balances.append(("slide: C liquidated", ex.ledger.balance(fund)))
    gap = step_to(ex, GAP_USD)
    takeovers = {names[e.payload["account_id"]]: e
                 for e in of_type(ex.journal, "liquidation.takeover")}
    order = {names[e.payload["account_id"]]: e for e in of_type(ex.journal, "liquidation.order")}
    [ranking] = of_type(gap, "adl.ranking")
    fills = of_type(gap, "adl.fill")
    balances.append(("gap: A liquidated", payload_decimal(order["A"].payload, "insurance_fund")))
    balances.append(("gap: B deleveraged", ex.ledger.balance(fund)))

    cs = ex.instrument(BTC).contract_size_usd
    b_bp = payload_decimal(takeovers["B"].payload, "bankruptcy_price")
    sell_at = payload_decimal(order["A"].payload, "avg_price")  # the bid during the gap
    b_would_cost = -pnl_coin(200, b_bp, sell_at, cs)
    ranked: list[dict[str, Any]] = []
    for row in ranking.payload["ranking"]:
        name = names[row["account_id"]]
        qty = -int(row["qty"])
        upnl = pnl_coin(-qty, short_entry, GAP_USD, cs)
        maint = maintenance_margin_coin(qty, GAP_USD, cs, ex.instrument(BTC).brackets)
        # Binance's Leverage PnL: max(0, UPNL) / max(1, wallet) × MM / (wallet + UPNL).
        ratio = maint / (wallets[name] + upnl)
        pnl_share = max(Decimal(0), upnl) / max(Decimal(1), wallets[name])
        ranked.append({"name": name, "qty": qty, "upnl": upnl, "pnl_pct": pnl_share,
                       "ratio": ratio, "score": Decimal(str(row["score"]))})
    [fill] = fills
    victim = names[fill.payload["account_id"]]
    numbers: dict[str, Any] = {
        "fund_start_btc": FUND_BTC, "short_entry_usd": short_entry,
        "c_lp_usd": _snap(ex, ids["C"], "liquidation_price"),
        "c_bp_usd": payload_decimal(takeovers["C"].payload, "bankruptcy_price"),
        "c_fill_usd": payload_decimal(order["C"].payload, "avg_price"),
        "c_surplus_btc": payload_decimal(order["C"].payload, "insurance_delta"),
        "fund_after_slide_btc": balances[1][1],
        "a_bp_usd": payload_decimal(takeovers["A"].payload, "bankruptcy_price"),
        "gap_fill_usd": sell_at,
        "a_deficit_btc": payload_decimal(order["A"].payload, "insurance_delta"),
        "fund_after_a_btc": balances[2][1], "b_bp_usd": b_bp, "b_would_cost_btc": b_would_cost,
        "ranking": [r["name"] for r in ranked], "scores": [r["score"] for r in ranked],
        "margin_ratios": [r["ratio"] for r in ranked],
        "pnl_pcts": [r["pnl_pct"] for r in ranked],
        "adl_victim": victim, "adl_qty": int(fill.payload["qty"]),
        "adl_price_usd": payload_decimal(fill.payload, "price"),
        "adl_realised_btc": payload_decimal(fill.payload, "realized_pnl"),
        "adl_upnl_at_mark_btc": ranked[0]["upnl"], "fund_end_btc": balances[3][1],
        "whale_still_short": ex.position(ids["whale"], BTC).qty_contracts,
    }
    n = numbers
    board = ", ".join(f"{r['name']} {r['score']:.3f}" for r in ranked)
    narrative = [
        f"Insurance fund: {btc(FUND_BTC, 2)}. Isolated longs at 60,000.1: A 20x × 100, "
        "B 25x × 200, C 50x × 300 contracts.",
        "Cross shorts at 59,999.9: whale (2 BTC, 300 contracts), trader (0.2 BTC, 300), "
        "degen (0.05 BTC, 200).",
        f"A slide to {usd(SLIDE_USD, 0)} passes C's LP ({usd(n['c_lp_usd'])}) but not its "
        f"bankruptcy price ({usd(n['c_bp_usd'])}): taken over at BP, sold at "
        f"{usd(n['c_fill_usd'], 1)}, {signed_btc(n['c_surplus_btc'])} into the fund.",
        f"Then a gap to {usd(GAP_USD, 0)}, past every bankruptcy price: the engine holds each "
        f"long from its BP and can only sell at {usd(sell_at, 1)}. Loss = N × (1/BP − 1/fill).",
        f"A (BP {usd(n['a_bp_usd'])}): the fund pays {btc(-n['a_deficit_btc'])} and is down to "
        f"{btc(n['fund_after_a_btc'])}.",
        f"B (BP {usd(b_bp)}) would cost {btc(b_would_cost)}, more than the fund holds: "
        "auto-deleveraging (ADL) instead.",
        "ADL ranks the shorts by Binance's Leverage PnL, max(0, unrealised PnL) / max(1, "
        f"wallet) × margin ratio (MM / (wallet + unrealised PnL)): {board}. The thinner the "
        "margin behind a winner, the earlier it is deleveraged.",
        f"First in the queue, {victim} is closed against B: {contracts(n['adl_qty'])} at B's "
        f"bankruptcy price {usd(n['adl_price_usd'])}, realising "
        f"{signed_btc(n['adl_realised_btc'])} instead of the "
        f"{signed_btc(n['adl_upnl_at_mark_btc'])} it showed at the mark.",
        f"The fund is untouched by ADL (still {btc(n['fund_end_btc'])}); the whale, least "
        f"leveraged, keeps its {contracts(-n['whale_still_short'])} short.",
        "In words: liquidations close at the bankruptcy price; better fills feed the fund, "
        "worse ones drain it, and past the fund the most leveraged winners pay.",
    ]
    tables = [
        Table("The ADL queue at the gap (journal adl.ranking, components rebuilt)",
              ("rank", "short", "contracts", "unrealised PnL", "PnL / max(1, wallet)",
               "margin ratio", "score"), tuple(
                  (str(i), r["name"], str(r["qty"]), signed_btc(r["upnl"]), pct(r["pnl_pct"]),
                   pct(r["ratio"]), f"{r['score']:.8f}")
                  for i, r in enumerate(ranked, 1))),
        Table("The insurance fund, step by step", ("after", "fund"),
              tuple((label, btc(value)) for label, value in balances)),
    ]
    charts = [
        Chart("The insurance fund: fed by the orderly liquidation, drained by the gap",
              "step", "insurance fund (BTC)", (
                  Series("insurance fund", [b[0] for b in balances],
                         floats(b[1] for b in balances), kind="bar", color="#6d28d9"),
              )),
        Chart("The ADL queue: score = PnL / max(1, wallet) × margin ratio",
              "short (queue order)", "ADL score", (
                  Series("score", [r["name"] for r in ranked], floats(r["score"] for r in ranked),
                         kind="bar", color="#b91c1c"),
                  Series("margin ratio", [r["name"] for r in ranked],
                         floats(r["ratio"] for r in ranked), kind="markers",
                         color="#1d4ed8", right_axis=True),
              ), y2_title="margin ratio"),
    ]
    return Lesson(TOPIC, TITLE, SUMMARY, narrative, numbers, tables, charts, ex,
                  {name: account_id for name, account_id in ids.items()})


def _snap(ex: Exchange, account_id: str, key: str) -> Decimal:
    """A field of an account's position snapshot in its liquidation.triggered event."""
    [event] = of_type(ex.journal, "liquidation.triggered", account_id=account_id)
    return Decimal(str(event.payload["positions"][0][key]))
