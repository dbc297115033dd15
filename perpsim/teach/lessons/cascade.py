"""Lesson ``cascade``: a crowd of leveraged longs, a 10 % shock, and the liquidations that feed on
each other through a finite book — while a 1x coin-collateralised short stands through it.

The bundled ``cascade`` scenario (fixtures/scenarios/cascade.json) describes all of it: a seeded
crowd (600 traders, 90 % long, 2x–20x, isolated and cross) entering over the first hour, a finite
book for BTCUSD_PERP (400 levels 5 USD apart, 250 contracts each, refilling at 100 contracts a
second), and a 10 % fall of the index over three minutes at 01:15. The venue is binance_coinm
with a 1 BTC insurance fund (the profile varied with ``model_copy``, as in ``insurance-adl``).

The same scenario runs twice: with the finite book, and with the profile's stateless book
(infinite depth at the tape's price). What the shock alone liquidates is the second run; what
the first run liquidates beyond that is the cascade: the liquidation engine's sells eat the
bids, the last price and the book mid fall below the index, Binance's mark (median of P1,
P2 = index + average mid basis, and last) follows, and further longs cross their levels.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from perpsim.sim.cascade_record import cascade_record
from perpsim.sim.exchange import Exchange
from perpsim.sim.ledger import insurance_account
from perpsim.sim.profile import Profile, load_profile
from perpsim.sim.risk import position_risk
from perpsim.sim.scenario import Scenario, load_scenario
from perpsim.teach.lessons._common import BTC, COIN, MINUTE_MS, SECOND_MS, journal, market
from perpsim.teach.model import (
    Chart,
    Lesson,
    Series,
    Table,
    btc,
    contracts,
    floats,
    pct,
    signed_usd,
    usd,
)

TOPIC = "cascade"
TITLE = "A liquidation cascade, and the hedge that stands through it"
SUMMARY = ("a crowd of leveraged longs, a 10 % shock and a thin book: liquidations move the "
           "price that triggers more; a 1x coin-collateralised short is never liquidated")

SCENARIO = "cascade"
FUND_BTC = Decimal(1)
SHOCK_AT_MS = 75 * MINUTE_MS  # after the scenario's start (its shock: at_hours 1.25)
SHOCK_OVER_MS = 3 * MINUTE_MS  # (over_hours 0.05)
BEFORE_MS, AFTER_MS = 5 * MINUTE_MS, 25 * MINUTE_MS  # the window the lesson watches
SAMPLE_MS = 10 * SECOND_MS
HEDGE_BTC = Decimal(2)
HEDGE_SHORT_SHARE = Decimal("0.995")  # of the collateral's value: the rest pays the fee


def venue_profile() -> Profile:
    """binance_coinm with a small insurance fund (a simulation choice, as in insurance-adl)."""
    base = load_profile("binance_coinm")
    fund = {coin: Decimal(0) for coin in base.insurance_fund_start} | {COIN: FUND_BTC}
    return base.model_copy(update={"insurance_fund_start": fund})


def open_hedge(ex: Exchange) -> str:
    """The 1x coin-collateralised short: HEDGE_BTC in the futures wallet, isolated at 1x,
    short its USD value (contracts = BTC × price / contract size)."""
    account_id = ex.create_account({COIN: HEDGE_BTC},
                                   label="hedge: 1x short, coin collateral").account_id
    ex.set_margin_mode(account_id, BTC, "isolated")
    ex.set_leverage(account_id, BTC, 1)
    inst = ex.instrument(BTC)
    price = ex.pricer(BTC).reference_at(ex.now_ms)
    qty = int(HEDGE_BTC * price / inst.contract_size_usd * HEDGE_SHORT_SHARE)
    market(ex, account_id, "SELL", qty)
    return account_id


def run_market(scenario: Scenario, *, sample: bool) -> tuple[Exchange, str, list[dict[str, Any]]]:
    """One run through the shock window: the exchange, the hedge's id, and (``sample``) its
    state every 10 s from five minutes before the shock."""
    ex = Exchange(venue_profile(), scenario, seed=scenario.seed)
    hedge = open_hedge(ex)
    shock = ex.start_ms + SHOCK_AT_MS
    ex.advance_until(shock - BEFORE_MS)
    samples: list[dict[str, Any]] = []
    end = shock + AFTER_MS
    if not sample:
        ex.advance_until(end)
    while ex.now_ms < end:
        ex.advance(SAMPLE_MS)
        samples.append(_sample(ex, hedge))
    return ex, hedge, samples


def _sample(ex: Exchange, hedge: str) -> dict[str, Any]:
    book = ex.refresh_book(BTC)
    view = position_risk(ex, hedge, BTC)
    depth = book.finite
    return {
        "time": ex.now_ms, "index": ex.index_price(BTC), "mark": ex.mark_price(BTC),
        "last": ex.last_price(BTC),
        "bids_quoted": None if depth is None else depth.available("bids", ex.now_ms),
        "fund": ex.ledger.balance(insurance_account(COIN)),
        "hedge_ratio": view.margin_ratio, "hedge_qty": view.qty_contracts,
        "hedge_equity_usd": (view.margin_balance_coin + ex.wallet_balance(hedge, COIN))
        * view.mark_price_usd,
        "hedge_liq": view.liquidation_price_usd,
    }


def run() -> Lesson:
    """Run the cascade and its infinite-depth twin; return the lesson with the engine's numbers."""
    scenario = load_scenario(SCENARIO)
    ex, hedge, samples = run_market(scenario, sample=True)
    twin, twin_hedge, _ = run_market(dataclasses.replace(scenario, books={}), sample=False)
    shock = ex.start_ms + SHOCK_AT_MS
    since = shock - BEFORE_MS
    record = cascade_record(ex, BTC, since_ms=since)
    alone = cascade_record(twin, BTC, since_ms=since)
    assert ex.crowd is not None
    crowd = ex.crowd
    longs = sum(t.side == "BUY" for t in crowd.traders)
    index_before = ex.pricer(BTC).tape.index_at(shock)
    index_after = ex.pricer(BTC).tape.index_at(shock + SHOCK_OVER_MS)
    gaps = [(s["mark"] - s["index"], s) for s in samples]
    widest_gap, at_gap = min(gaps, key=lambda g: (g[0], g[1]["time"]))
    lowest_last = min(samples, key=lambda s: (s["last"], s["time"]))
    thinnest = min(samples, key=lambda s: (s["bids_quoted"], s["time"]))
    whole_again = next((s for s in samples if s["time"] > thinnest["time"]
                        and s["bids_quoted"] == ex.instrument(BTC).book.levels
                        * ex.instrument(BTC).book.contracts_per_level), None)
    fund_low = min(samples, key=lambda s: (s["fund"], s["time"]))
    adl_contracts = sum(a["qty"] for a in record["adl"])
    hedge_adl = sum(a["qty"] for a in record["adl"] if a["account_id"] == hedge)
    hedge_liquidated = bool(journal(ex, "liquidation.triggered", account_id=hedge))
    twin_hedge_liquidated = bool(journal(twin, "liquidation.triggered", account_id=twin_hedge))
    first_adl = record["adl"][0]["time"] if record["adl"] else None
    max_ratio = max(s["hedge_ratio"] for s in samples)
    equity = [s["hedge_equity_usd"] for s in samples]
    numbers: dict[str, Any] = {
        "crowd_accounts": len(crowd.traders), "crowd_longs": longs,
        "crowd_leverage_min": min(t.leverage for t in crowd.traders),
        "crowd_leverage_max": max(t.leverage for t in crowd.traders),
        "crowd_contracts": sum(t.qty_contracts for t in crowd.traders),
        "index_before_usd": index_before, "index_after_usd": index_after,
        "shock_pct": index_after / index_before - 1,
        "refill_contracts_per_s": ex.instrument(BTC).book.refill_contracts_per_s,
        "liquidated_accounts": record["accounts"],
        "liquidated_accounts_infinite_depth": alone["accounts"],
        "cascade_accounts": record["accounts"] - alone["accounts"],
        "liquidated_contracts": sum(record["liquidated_contracts"]),
        "liquidated_contracts_infinite_depth": sum(alone["liquidated_contracts"]),
        "widest_mark_below_index_usd": -widest_gap,
        "widest_gap_minute": (at_gap["time"] - shock) / MINUTE_MS,
        "lowest_last_usd": lowest_last["last"], "index_then_usd": lowest_last["index"],
        "bids_quoted_min": thinnest["bids_quoted"],
        "book_whole_again_minute": None if whole_again is None
        else (whole_again["time"] - shock) / MINUTE_MS,
        "fund_start_btc": FUND_BTC, "fund_low_btc": fund_low["fund"],
        "fund_end_btc": samples[-1]["fund"],
        "fund_end_infinite_depth_btc": twin.ledger.balance(insurance_account(COIN)),
        "adl_fills": len(record["adl"]), "adl_contracts": adl_contracts,
        "first_adl_minute": None if first_adl is None else (first_adl - shock) / MINUTE_MS,
        "hedge_contracts_start": samples[0]["hedge_qty"],
        "hedge_contracts_end": samples[-1]["hedge_qty"], "hedge_adl_contracts": hedge_adl,
        "hedge_liquidated": hedge_liquidated,
        "hedge_liquidated_infinite_depth": twin_hedge_liquidated,
        "hedge_max_margin_ratio": max_ratio,
        "hedge_liquidation_price": samples[-1]["hedge_liq"],
        "hedge_equity_start_usd": equity[0], "hedge_equity_end_usd": equity[-1],
    }
    n = numbers
    narrative = [
        f"A seeded crowd of {n['crowd_accounts']} traders ({n['crowd_longs']} long, "
        f"{n['crowd_leverage_min']}x to {n['crowd_leverage_max']}x, "
        f"{contracts(n['crowd_contracts'])} in all) opens over the first hour through the "
        "engine's order path; the insurance fund holds " + btc(FUND_BTC, 2) + ".",
        f"The index falls from {usd(index_before)} to {usd(index_after)} "
        f"({pct(n['shock_pct'], 1, signed=True)}) in {SHOCK_OVER_MS // MINUTE_MS} minutes. "
        "With infinite depth that shock alone liquidates "
        f"{n['liquidated_accounts_infinite_depth']} accounts "
        f"({contracts(n['liquidated_contracts_infinite_depth'])}).",
        f"With a finite book it liquidates {n['liquidated_accounts']} "
        f"({contracts(n['liquidated_contracts'])}): {n['cascade_accounts']} more, the cascade. "
        "Each liquidation order walks the bids down; the refill "
        f"({contracts(n['refill_contracts_per_s'])} a second) cannot keep up.",
        f"The bids thin to {contracts(n['bids_quoted_min'])} quoted; the last price prints "
        f"{usd(n['lowest_last_usd'])} while the index is {usd(n['index_then_usd'])}. "
        "Binance's mark is the median of P1 (index-based), P2 (index + average mid basis) and "
        f"the last: as the mid sinks, P2 and the last drag it down to "
        f"{usd(n['widest_mark_below_index_usd'])} below the index "
        f"({n['widest_gap_minute']:.1f} min after the shock starts), past more longs' levels.",
        f"Liquidations filled below their bankruptcy prices drain the fund from "
        f"{btc(FUND_BTC, 2)} to {btc(n['fund_low_btc'])}"
        + (f"; once it cannot cover the next loss, ADL closes "
           f"{contracts(n['adl_contracts'])} of profitable shorts in {n['adl_fills']} "
           f"fills, from minute {n['first_adl_minute']:.1f}."
           if n["adl_fills"] else "; it never empties, so ADL does not fire."),
        (f"The book is whole again {n['book_whole_again_minute']:.1f} min after the shock "
         "began, and the last and the mark return to the index."
         if n["book_whole_again_minute"] is not None else
         "The book is still refilling at the end of the window."),
        f"The 1x coin-collateralised short ({contracts(n['hedge_contracts_start'])} against "
        f"{btc(HEDGE_BTC, 0)} of collateral) is never liquidated: its "
        f"margin ratio peaks at {pct(max_ratio, 2)} and "
        + ("it has no liquidation price at all. " if n["hedge_liquidation_price"] is None else
           f"its liquidation price is {usd(n['hedge_liquidation_price'])}. ")
        + "Its equity (collateral plus the short's PnL, at the mark): "
        f"{usd(equity[0])} before, {usd(equity[-1])} after "
        f"({signed_usd(equity[-1] - equity[0])}: the {pct(1 - HEDGE_SHORT_SHARE, 1)} of the "
        "collateral kept back for fees is the unhedged part)."
        + (f" ADL took {contracts(hedge_adl)} of it (a profitable short is in the queue)."
           if hedge_adl else ""),
    ]
    minutes = [(s["time"] - shock) / MINUTE_MS for s in samples]
    bucket_minutes = [(b - shock) / MINUTE_MS for b in record["buckets"]]
    alone_minutes = [(b - shock) / MINUTE_MS for b in alone["buckets"]]
    tables = [
        Table("Liquidations per minute (journal: liquidation.takeover, partial orders, adl.fill)",
              ("minute from shock", "contracts liquidated", "BTC liquidated", "ADL contracts"),
              tuple((f"{m:+.0f}", str(q), btc(c, 4), str(a)) for m, q, c, a in zip(
                  bucket_minutes, record["liquidated_contracts"], record["liquidated_coin"],
                  record["adl_contracts"], strict=True))),
        Table("Finite book against infinite depth", ("", "finite book", "infinite depth"), (
            ("accounts liquidated", str(record["accounts"]), str(alone["accounts"])),
            ("contracts liquidated", str(sum(record["liquidated_contracts"])),
             str(sum(alone["liquidated_contracts"]))),
            ("insurance fund at the end", btc(n["fund_end_btc"]),
             btc(n["fund_end_infinite_depth_btc"])),
            ("ADL fills", str(len(record["adl"])), str(len(alone["adl"]))),
        )),
    ]
    charts = [
        Chart("Prices through the cascade: the last and the mark leave the index",
              "minutes from the shock", "price (USD)", (
                  Series("index", minutes, floats(s["index"] for s in samples), color="#52606d"),
                  Series("mark", minutes, floats(s["mark"] for s in samples), color="#1d4ed8"),
                  Series("last", minutes, floats(s["last"] for s in samples), kind="step",
                         color="#b91c1c"),
              )),
        Chart("Liquidation volume per minute against the mark", "minutes from the shock",
              "BTC liquidated", (
                  Series("finite book", bucket_minutes, floats(record["liquidated_coin"]),
                         kind="bar", color="#b91c1c"),
                  Series("infinite depth (the shock alone)", alone_minutes,
                         floats(alone["liquidated_coin"]), kind="bar", color="#9aa5b1"),
                  Series("mark", minutes, floats(s["mark"] for s in samples), color="#1d4ed8",
                         right_axis=True),
              ), y2_title="mark (USD)"),
        Chart("The book thins and refills: bid contracts quoted", "minutes from the shock",
              "contracts", (
                  Series("bids quoted", minutes, floats(s["bids_quoted"] for s in samples),
                         kind="step", color="#047857"),
              )),
        Chart("The insurance fund, and ADL when it is empty", "minutes from the shock",
              "insurance fund (BTC)", (
                  Series("insurance fund", minutes, floats(s["fund"] for s in samples),
                         kind="step", color="#6d28d9"),
                  Series("ADL contracts", bucket_minutes, floats(record["adl_contracts"]),
                         kind="markers", color="#b91c1c", right_axis=True),
              ), y2_title="contracts auto-deleveraged"),
        Chart("The 1x hedge: margin ratio and USD equity", "minutes from the shock",
              "margin ratio", (
                  Series("margin ratio", minutes, floats(s["hedge_ratio"] for s in samples),
                         color="#047857"),
                  Series("equity at the mark (USD)", minutes, floats(equity), kind="dash",
                         color="#1f2933", right_axis=True),
              ), y2_title="USD"),
    ]
    return Lesson(TOPIC, TITLE, SUMMARY, narrative, numbers, tables, charts, ex,
                  {"hedge": hedge})
