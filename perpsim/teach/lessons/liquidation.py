"""Lesson ``liquidation``: liquidation vs bankruptcy price, brackets and the re-solve, isolated vs
cross margin on the same move.

Three accounts on one venue. ``big`` opens a 10x isolated long worth 9.5 BTC (bracket 2) only to
read its risk view: solved with its entry bracket the LP lands where the position is worth more
than 10 BTC (bracket 3), so the engine re-solves. It then closes. ``isolated`` and ``cross`` each
hold 1 BTC and the same 20x long of 100 contracts; the price falls 60,000 → 8,000 (0.5 % steps,
then 50 USD steps below 10,000) and the journal records who is liquidated where, losing what.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpsim.sim import liquidation_price as solver
from perpsim.sim import risk
from perpsim.sim.exchange import Exchange
from perpsim.teach.lessons._common import (
    BTC,
    COIN,
    SECOND_MS,
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

TOPIC = "liquidation"
TITLE = "Liquidation and bankruptcy prices"
SUMMARY = "liquidation vs bankruptcy price, brackets and the re-solve, isolated vs cross margin"

QTY, LEVERAGE = 100, 20
BIG_QTY, BIG_LEVERAGE = 5_700, 10  # 570,000 USD ≈ 9.5 BTC: bracket 2 at entry


def price_path() -> list[Decimal]:
    """60,000 down to 10,000 in 0.5 % steps, then to 8,000 in 50 USD steps."""
    fine = [Decimal(p) for p in range(10_000, 7_999, -50)]
    return [*geometric_path(60_000, 10_000, Decimal("0.005"))[1:], *fine]


def _brackets(ex: Exchange) -> dict[str, Any]:
    """The big long's risk view: bracket at entry, the naive solve, the engine's re-solve."""
    big = account(ex, "1", label="big: 10x isolated, 9.5 BTC", mode="isolated",
                  leverage=BIG_LEVERAGE)
    market(ex, big, "BUY", BIG_QTY)
    pos = ex.position(big, BTC)
    inst = ex.instrument(BTC)
    view = risk.position_risk(ex, big, BTC)
    assert view.liquidation_price_usd is not None
    assert pos.entry_price_usd is not None
    margin = view.isolated_margin_coin
    entry_bracket = next(b for b in reversed(inst.brackets) if b.floor_coin <= view.value_coin)
    alone = entry_bracket.model_copy(update={"floor_coin": Decimal(0), "cap_coin": None})
    naive = solver.liquidation_price_mm_at_lp(pos.qty_contracts, pos.entry_price_usd,
                                              inst.contract_size_usd, margin, [alone])
    solved = solver.isolated_prices(ex.profile, inst, pos.qty_contracts, pos.entry_price_usd,
                                    margin)
    assert naive.price_usd is not None
    assert solved.bracket is not None
    lp = view.liquidation_price_usd
    n_usd = Decimal(BIG_QTY) * inst.contract_size_usd
    out = {
        "big_entry_usd": pos.entry_price_usd, "big_margin_btc": margin,
        "big_value_btc": view.value_coin, "big_entry_bracket": entry_bracket.bracket,
        "big_entry_mmr": entry_bracket.mmr, "big_entry_cum": entry_bracket.cum_coin,
        "big_naive_lp_usd": naive.price_usd, "big_naive_value_btc": n_usd / naive.price_usd,
        "big_lp_usd": lp, "big_lp_value_btc": n_usd / lp, "big_lp_bracket": solved.bracket.bracket,
        "big_lp_mmr": solved.bracket.mmr, "big_lp_cum": solved.bracket.cum_coin,
        "big_lp_bracket_floor": solved.bracket.floor_coin,
        "big_mm_at_lp_btc": risk.maint_margin(ex, pos, lp),
        "big_balance_at_lp_btc": margin + risk.unrealised_pnl(ex, pos, lp),
    }
    market(ex, big, "SELL", BIG_QTY)  # this part is about the price, not a move: close it
    return out


def run() -> Lesson:
    """The bracket look, then the fall for the isolated and the cross long."""
    ex = venue()
    numbers: dict[str, Any] = {"qty_contracts": QTY, "leverage": LEVERAGE}
    numbers.update(_brackets(ex))
    iso = account(ex, "1", label="isolated 20x", mode="isolated", leverage=LEVERAGE)
    cross = account(ex, "1", label="cross 20x", mode="cross", leverage=LEVERAGE)
    market(ex, iso, "BUY", QTY)
    market(ex, cross, "BUY", QTY)
    views = {"iso": risk.position_risk(ex, iso, BTC), "cross": risk.position_risk(ex, cross, BTC)}
    pos = ex.position(iso, BTC)
    v = views["iso"]
    assert v.liquidation_price_usd is not None
    assert v.entry_price_usd is not None
    ep, lp = v.entry_price_usd, v.liquidation_price_usd
    mmr = ex.instrument(BTC).brackets[0].mmr
    numbers.update({
        "entry_usd": ep, "iso_margin_btc": v.isolated_margin_coin,
        "iso_lp_usd": lp, "iso_bp_usd": v.bankruptcy_price_usd,
        "iso_lp_closed_form_usd": ep * LEVERAGE * (1 + mmr) / (LEVERAGE + 1),
        "iso_bp_closed_form_usd": ep * LEVERAGE / (LEVERAGE + 1),
        "iso_mm_at_lp_btc": risk.maint_margin(ex, pos, lp),
        "iso_balance_at_lp_btc": v.isolated_margin_coin + risk.unrealised_pnl(ex, pos, lp),
        "cross_wallet_btc": ex.wallet_balance(cross, COIN),
        "cross_lp_usd": views["cross"].liquidation_price_usd,
        "cross_bp_usd": views["cross"].bankruptcy_price_usd,
    })
    wallets = {"iso": ex.wallet_balance(iso, COIN), "cross": ex.wallet_balance(cross, COIN)}
    marks: list[Decimal] = []
    equity: dict[str, list[Decimal]] = {"iso": [], "cross": []}
    for price in price_path():
        step_to(ex, price, wait_ms=SECOND_MS)
        marks.append(ex.mark_price(BTC))
        for role, account_id in (("iso", iso), ("cross", cross)):
            upnl = risk.unrealised_pnl(ex, ex.position(account_id, BTC))
            equity[role].append(ex.wallet_balance(account_id, COIN) +
                                ex.isolated_wallet(account_id, BTC) + upnl)
    for role, account_id in (("iso", iso), ("cross", cross)):
        [takeover] = of_type(ex.journal, "liquidation.takeover", account_id=account_id)
        numbers[f"{role}_liquidated_mark_usd"] = payload_decimal(takeover.payload, "mark")
        numbers[f"{role}_loss_btc"] = payload_decimal(takeover.payload, "loss")
        numbers[f"{role}_wallet_after_btc"] = ex.wallet_balance(account_id, COIN)
        numbers[f"{role}_wallet_before_btc"] = wallets[role]
    return _lesson(ex, numbers, marks, equity, {"isolated": iso, "cross": cross})


def _lesson(ex: Exchange, n: dict[str, Any], marks: list[Decimal],
            equity: dict[str, list[Decimal]], accounts: dict[str, str]) -> Lesson:
    d = n
    fall_cross = d["cross_liquidated_mark_usd"] / 60_000 - 1
    narrative = [
        "Liquidation price (LP): where margin balance = maintenance margin (MM). Isolated long: "
        "W + N × (1/entry − 1/LP) = N/LP × MMR − cum, solved for LP.",
        f"A {LEVERAGE}x isolated long of {contracts(QTY)} at {usd(d['entry_usd'], 1)}: "
        f"W = {btc(d['iso_margin_btc'])}, MMR 0.4 %, cum 0 → LP {usd(d['iso_lp_usd'])} "
        f"(closed form entry × L × (1 + MMR) / (L + 1) = {usd(d['iso_lp_closed_form_usd'])}).",
        f"At the LP its margin balance, {btc(d['iso_balance_at_lp_btc'])}, equals its MM "
        f"{btc(d['iso_mm_at_lp_btc'])}. Bankruptcy price (BP), where the balance is zero: "
        f"{usd(d['iso_bp_usd'])}.",
        f"Brackets: MMR grows with the position's value in coin. A {BIG_LEVERAGE}x long of "
        f"{contracts(BIG_QTY)} is worth {btc(d['big_value_btc'], 4)} at entry: bracket "
        f"{n['big_entry_bracket']} (MMR {pct(d['big_entry_mmr'], 1)}, cum "
        f"{btc(d['big_entry_cum'], 3)}).",
        f"Solved with that bracket, LP = {usd(d['big_naive_lp_usd'])}, where the position is "
        f"worth {btc(d['big_naive_value_btc'], 4)}: past {btc(d['big_lp_bracket_floor'], 0)}, "
        f"bracket {n['big_lp_bracket']} territory. So the engine re-solves.",
        f"With bracket {n['big_lp_bracket']} (MMR {pct(d['big_lp_mmr'], 1)}, cum "
        f"{btc(d['big_lp_cum'], 3)}): LP = {usd(d['big_lp_usd'])}, worth "
        f"{btc(d['big_lp_value_btc'], 4)}, inside it. cum keeps MM continuous at the edge, so "
        f"the move is only {usd(d['big_lp_usd'] - d['big_naive_lp_usd'])}.",
        f"Isolated vs cross: the same long, each on a 1 BTC wallet. Isolated risks only W: LP "
        f"{usd(d['iso_lp_usd'])}. Cross puts the whole wallet ({btc(d['cross_wallet_btc'])}) "
        f"behind it: LP {usd(d['cross_lp_usd'])}.",
        f"The fall: isolated was liquidated at a mark of {usd(d['iso_liquidated_mark_usd'], 1)}, "
        f"losing {btc(d['iso_loss_btc'])}; its wallet kept {btc(d['iso_wallet_after_btc'])}.",
        f"Cross rode the fall to {usd(d['cross_liquidated_mark_usd'], 0)} ({pct(fall_cross, 1)}) "
        f"and then lost {btc(d['cross_loss_btc'])}, leaving {btc(d['cross_wallet_after_btc'])}: "
        "more room, but everything in the wallet was at stake.",
    ]
    table = Table("The two 20x longs on the same fall (risk view and journal)",
                  ("", "isolated", "cross"), (
                      ("margin behind the position", btc(d["iso_margin_btc"]),
                       btc(d["cross_wallet_btc"])),
                      ("liquidation price", usd(d["iso_lp_usd"]), usd(d["cross_lp_usd"])),
                      ("bankruptcy price", usd(d["iso_bp_usd"]), usd(d["cross_bp_usd"])),
                      ("liquidated at mark", usd(d["iso_liquidated_mark_usd"]),
                       usd(d["cross_liquidated_mark_usd"])),
                      ("loss", btc(d["iso_loss_btc"]), btc(d["cross_loss_btc"])),
                      ("wallet left", btc(d["iso_wallet_after_btc"]),
                       btc(d["cross_wallet_after_btc"])),
                  ))
    resolve = Table("The bracket re-solve of the 10x long worth 9.5 BTC", (
        "solve with", "MMR", "cum", "LP", "value at LP", "consistent?"), (
        (f"bracket {n['big_entry_bracket']} (entry)", pct(d["big_entry_mmr"], 1),
         btc(d["big_entry_cum"], 3), usd(d["big_naive_lp_usd"]),
         btc(d["big_naive_value_btc"], 4), "no: past the bracket's cap"),
        (f"bracket {n['big_lp_bracket']} (at LP)", pct(d["big_lp_mmr"], 1),
         btc(d["big_lp_cum"], 3), usd(d["big_lp_usd"]), btc(d["big_lp_value_btc"], 4), "yes"),
    ))
    x = list(range(len(marks)))
    edge = [x[0], x[-1]]
    charts = [
        Chart("The fall, and each long's liquidation and bankruptcy price", "step (1 s apart)",
              "USD", (
                  Series("mark", x, floats(marks), color="#f97316"),
                  Series("isolated LP", edge, floats([d["iso_lp_usd"]] * 2), kind="dash",
                         color="#b91c1c"),
                  Series("isolated BP", edge, floats([d["iso_bp_usd"]] * 2), kind="dash",
                         color="#7f1d1d"),
                  Series("cross LP", edge, floats([d["cross_lp_usd"]] * 2), kind="dash",
                         color="#1d4ed8"),
                  Series("cross BP", edge, floats([d["cross_bp_usd"]] * 2), kind="dash",
                         color="#1e3a8a"),
              )),
        Chart("What each account has left: wallet + isolated margin + unrealised PnL",
              "step (1 s apart)", "BTC", (
                  Series("isolated account", x, floats(equity["iso"]), color="#b91c1c"),
                  Series("cross account", x, floats(equity["cross"]), color="#1d4ed8"),
              )),
    ]
    return Lesson(TOPIC, TITLE, SUMMARY, narrative, dict(n), [table, resolve], charts, ex,
                  accounts)
