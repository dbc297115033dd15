"""Lesson ``inverse-pnl``: a contract worth a fixed number of dollars, settled in coin.

One long and one short of 600 contracts (N = 60,000 USD), cross margin on 10 BTC each so
nothing is liquidated, while the price sweeps 15,000 → 240,000 USD in 5,000 USD steps. At each
step the engine's risk view gives the unrealised PnL in BTC at the mark; its USD value is that
times the mark. Then both positions close at 90,000 and the journal gives the realised PnL.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpsim.sim.risk import position_risk
from perpsim.teach.lessons._common import BTC, account, market, step_to, venue
from perpsim.teach.model import (
    Chart,
    Lesson,
    Series,
    Table,
    btc,
    contracts,
    floats,
    payload_decimal,
    signed_btc,
    signed_usd,
    usd,
)

TOPIC = "inverse-pnl"
TITLE = "Inverse PnL: a dollar contract settled in coin"
SUMMARY = ("why a coin-margined long's payoff is concave in BTC, a short's convex, "
           "both linear in USD")

QTY = 600  # contracts of 100 USD: N = 60,000 USD, 1 BTC at the start price
WALLET_BTC = "10"
START_USD = 60_000
PRICES = list(range(15_000, 240_001, 5_000))
MOVES = (-75, -50, -25, 0, 50, 100, 300)  # percent, for the table
CLOSE_USD = 90_000


def run() -> Lesson:
    """Run the sweep and the close; return the lesson with the engine's numbers."""
    ex = venue()
    long_id = account(ex, WALLET_BTC, label="long", leverage=1)
    short_id = account(ex, WALLET_BTC, label="short", leverage=1)
    long_entry = payload_decimal(market(ex, long_id, "BUY", QTY).payload, "position_entry")
    short_entry = payload_decimal(market(ex, short_id, "SELL", QTY).payload, "position_entry")
    n_usd = Decimal(QTY * 100)

    marks: list[Decimal] = []
    pnl: dict[str, list[Decimal]] = {"long": [], "short": []}
    for price in PRICES:
        step_to(ex, price)
        for role, account_id in (("long", long_id), ("short", short_id)):
            view = position_risk(ex, account_id, BTC)
            pnl[role].append(view.unrealised_pnl_coin)
        marks.append(ex.mark_price(BTC))
    usd_pnl = {role: [p * m for p, m in zip(values, marks, strict=True)]
               for role, values in pnl.items()}

    def at(role: str, move: int, in_usd: bool = False) -> Decimal:
        i = PRICES.index(START_USD * (100 + move) // 100)
        return (usd_pnl if in_usd else pnl)[role][i]

    step_to(ex, CLOSE_USD)
    close_long = market(ex, long_id, "SELL", QTY).payload
    close_short = market(ex, short_id, "BUY", QTY).payload

    numbers: dict[str, Any] = {
        "qty_contracts": QTY, "notional_usd": n_usd,
        "long_entry_usd": long_entry, "short_entry_usd": short_entry,
        "long_cap_btc": n_usd / long_entry,  # the most a long can ever make: N / entry
        "short_cap_btc": n_usd / short_entry,
        "long_up50_btc": at("long", 50), "long_down50_btc": at("long", -50),
        "long_down75_btc": at("long", -75), "long_up300_btc": at("long", 300),
        "short_up50_btc": at("short", 50), "short_down50_btc": at("short", -50),
        "long_up50_usd": at("long", 50, True), "long_down50_usd": at("long", -50, True),
        "close_long_price_usd": payload_decimal(close_long, "avg_price"),
        "close_short_price_usd": payload_decimal(close_short, "avg_price"),
        "close_long_realised_btc": payload_decimal(close_long, "realized_pnl"),
        "close_short_realised_btc": payload_decimal(close_short, "realized_pnl"),
    }
    n = numbers
    narrative = [
        f"A long and a short of {contracts(QTY)} (N = {usd(n_usd, 0)}) at "
        f"{usd(long_entry, 1)} and {usd(short_entry, 1)}, each on {WALLET_BTC} BTC of cross "
        "margin: neither is liquidated from 15,000 to 240,000 USD.",
        "PnL in coin = side × N × (1 / entry − 1 / price): the contract is a fixed number of "
        "dollars, paid out in a coin whose price is the thing that moves.",
        f"Long: {signed_btc(n['long_up50_btc'], 5)} at +50 % (90,000 USD), "
        f"{signed_btc(n['long_down50_btc'], 5)} at −50 % (30,000 USD): the same-size move "
        "gains a third of what it loses. Concave in coin.",
        f"The long's gain creeps towards N / entry = {btc(n['long_cap_btc'], 5)} and never "
        f"passes it ({signed_btc(n['long_up300_btc'], 5)} at +300 %); its loss has no floor "
        f"({signed_btc(n['long_down75_btc'], 5)} at −75 %).",
        f"Short: the mirror image, convex in coin: {signed_btc(n['short_down50_btc'], 5)} at "
        f"−50 %, {signed_btc(n['short_up50_btc'], 5)} at +50 %; it can never lose more than "
        f"N / entry = {btc(n['short_cap_btc'], 5)}.",
        f"In USD (coin PnL × price) both are straight lines: the long makes "
        f"{signed_usd(n['long_up50_usd'], 0)} at +50 % and {signed_usd(n['long_down50_usd'], 0)}"
        " at −50 %, i.e. N × (price / entry − 1). The curvature is all in the coin.",
        "Add the collateral: coin collateral makes a long hold coin twice (USD slope ×2), and "
        "makes a short with N / entry of collateral hold exactly N dollars — see the "
        "synthetic-dollar lesson.",
        f"Closed at 90,000: the long sold at {usd(n['close_long_price_usd'], 1)} and realised "
        f"{signed_btc(n['close_long_realised_btc'])}, the short bought at "
        f"{usd(n['close_short_price_usd'], 1)} and realised "
        f"{signed_btc(n['close_short_realised_btc'])}: the formula at the fill price.",
    ]
    rows = []
    for move in MOVES:
        price = START_USD * (100 + move) // 100
        rows.append((f"{move:+d} %", f"{price:,}", f"{at('long', move):+.5f}",
                     f"{at('long', move, True):+,.2f}", f"{at('short', move):+.5f}",
                     f"{at('short', move, True):+,.2f}"))
    table = Table("Unrealised PnL at the mark (engine risk view)",
                  ("move", "price USD", "long BTC", "long USD", "short BTC", "short USD"),
                  tuple(rows))
    x = [float(p) for p in PRICES]
    charts = [
        Chart("PnL in BTC: the long is capped above, the short below", "price (USD)",
              "unrealised PnL (BTC)", (
                  Series("long 600 contracts", x, floats(pnl["long"]), color="#047857"),
                  Series("short 600 contracts", x, floats(pnl["short"]), color="#b91c1c"),
                  Series(f"cap of the long: N / entry = {n['long_cap_btc']:.5f} BTC",
                         [x[0], x[-1]],
                         [float(n["long_cap_btc"])] * 2, kind="dash", color="#6b7280"),
              )),
        Chart("PnL in USD: straight lines", "price (USD)", "unrealised PnL (USD)", (
            Series("long 600 contracts", x, floats(usd_pnl["long"]), color="#047857"),
            Series("short 600 contracts", x, floats(usd_pnl["short"]), color="#b91c1c"),
        )),
    ]
    return Lesson(TOPIC, TITLE, SUMMARY, narrative, numbers, [table], charts, ex,
                  {"long": long_id, "short": short_id})

