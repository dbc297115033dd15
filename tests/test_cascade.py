"""Finite books and endogenous cascades (sim/depth.py, sim/cascade.py, sim/liquidation.py).

A finite book's synthetic depth is eaten by fills and refills at its rate; liquidation orders
walk it, their fills set the last price, the mark (Binance: median of P1, P2 and last, P2 with
the book mid's basis) follows, and further accounts are liquidated in the same or following
instants, the insurance fund draining and ADL firing when it cannot pay. The default stateless
book is untouched (every other test in the suite runs on it).
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pytest

from perpsim.sim import trading
from perpsim.sim.cascade_record import cascade_record
from perpsim.sim.crowd import CrowdSpec, build_crowd
from perpsim.sim.exchange import Exchange
from perpsim.sim.ledger import insurance_account
from perpsim.sim.profile import Profile
from perpsim.sim.scenario import load_scenario
from tests.engine_helpers import (
    BTC,
    SECOND_MS,
    check_invariants,
    fund,
    make_exchange,
    of_type,
    profile,
)

TICK = Decimal("0.1")


def finite(levels: int = 10, step_ticks: int = 10, per_level: int = 100,
           refill: int | None = 10, fund_btc: str = "100") -> Profile:
    """binance_coinm with a finite BTCUSD_PERP book (stateless with ``refill`` None: the same
    levels, infinitely deep) and the given insurance fund."""
    base = profile()
    instruments = tuple(
        i.model_copy(update={"book": i.book.model_copy(update={
            "levels": levels, "level_step_ticks": step_ticks, "contracts_per_level": per_level,
            "refill_contracts_per_s": refill})}) if i.symbol == BTC else i
        for i in base.instruments)
    funds = {c: Decimal(0) for c in base.insurance_fund_start} | {"BTC": Decimal(fund_btc)}
    return base.model_copy(update={"instruments": instruments, "insurance_fund_start": funds})


def sell(ex: Exchange, qty: int) -> str:
    """A well-funded account's market SELL of ``qty`` (eats the synthetic bids)."""
    account_id = fund(ex, "50", leverage=5)
    trading.place_order(ex, account_id, BTC, "SELL", "MARKET", qty)
    return account_id


def test_the_default_book_is_stateless() -> None:
    ex = make_exchange()
    assert ex.books[BTC].finite is None
    sell(ex, 5_000)
    bids, _ = ex.books[BTC].depth(1)
    assert bids == [(Decimal("59999.9"), 2_000)]  # full depth again for the next order
    assert ex.depth_watch.visits == 0


def test_fills_eat_the_top_of_a_side_and_it_refills_at_the_rate() -> None:
    ex = make_exchange(finite())
    sell(ex, 250)  # levels 59999.9 and 59998.9 gone, 50 of 59997.9 too
    book = ex.refresh_book(BTC)
    assert book.finite is not None
    assert book.finite.eaten("bids", ex.now_ms) == 250
    assert book.depth(2)[0] == [(Decimal("59997.9"), 50), (Decimal("59996.9"), 100)]
    assert book.depth(1)[1] == [(Decimal("60000.1"), 100)]  # the other side untouched
    ex.advance(5 * SECOND_MS)  # 50 contracts back, from the inside out
    assert ex.refresh_book(BTC).depth(1)[0] == [(Decimal("59997.9"), 100)]
    ex.advance(20 * SECOND_MS)
    assert ex.refresh_book(BTC).depth(1)[0] == [(Decimal("59999.9"), 100)]
    assert book.finite.eaten("bids", ex.now_ms) == 0


def test_the_last_price_leaves_the_tape_while_the_book_is_eaten_and_comes_back() -> None:
    ex = make_exchange(finite())
    sell(ex, 250)
    assert ex.last_price(BTC) == Decimal("59997.9")  # the fill this instant
    ex.advance(SECOND_MS)
    assert ex.last_price(BTC) == Decimal("59997.9")  # the eaten side's touch (240 eaten)
    ex.advance(15 * SECOND_MS)  # 90 eaten: the best level is back
    assert ex.last_price(BTC) == Decimal("59999.9")
    ex.advance(10 * SECOND_MS)  # whole again: the tape's price
    assert ex.last_price(BTC) == Decimal("60000")


def test_the_mark_follows_the_book_mid_through_p2() -> None:
    """Binance: mark = median(P1, P2, last), P2 = index + average of (mid − index) over 30
    one-second samples. With the perp on the index and no funding rate yet, P1 = index and the
    average is the finite book's mid shift: −(levels eaten on the bid) × step × tick / 2."""
    ex = make_exchange(finite(levels=50, refill=10))
    ex.advance(500)  # mid-second, so the samples fall on whole seconds before now
    sold_ms = ex.now_ms
    sell(ex, 2_000)  # 20 levels of bids
    ex.advance(12 * SECOND_MS)
    now = ex.now_ms
    shifts = []
    for j in range(30):
        s = now // SECOND_MS * SECOND_MS - j * SECOND_MS
        eaten = 0 if s < sold_ms else max(0, 2_000 - 10 * (s - sold_ms) // SECOND_MS)
        shifts.append(-(eaten // 100) * 10 * TICK / 2)
    p2 = Decimal(60_000) + sum(shifts) / 30
    last = ex.last_price(BTC)
    assert last < p2 < Decimal(60_000)
    assert ex.mark_price(BTC) == p2.quantize(Decimal("0.00000001"))
    ex.advance(300 * SECOND_MS)  # refilled and out of the window: the mark is the index again
    assert ex.mark_price(BTC) == Decimal(60_000)


def crowd_of_longs(accounts: int = 80) -> CrowdSpec:
    return CrowdSpec.model_validate({
        "accounts": accounts, "seed": 3, "long_fraction": 0.85,
        "leverage": {"min": 4, "max": 25, "distribution": "log_uniform"},
        "contracts": {"min": 100, "max": 600},
        "margin_modes": {"isolated": 1, "cross": 1},
        "entry": {"mode": "window", "window_minutes": 30},
    })


SHOCK_USD = Decimal(55_000)
THIN = {"levels": 40, "step_ticks": 500, "per_level": 300, "fund_btc": "0.05"}


def crash(prof: Profile) -> Exchange:
    """A crowd of longs entering around 60,000 over 30 minutes; an hour on (the book whole
    again), the index and perp fall to 55,000 and time runs five minutes."""
    ex = make_exchange(prof)
    build_crowd(ex, crowd_of_longs())
    ex.advance(3_600 * SECOND_MS)
    ex.set_prices(BTC, str(SHOCK_USD))
    ex.ledger.check_conserved()
    for _ in range(10):  # conserved to the satoshi at every step of the cascade, not just after
        ex.advance(30 * SECOND_MS)
        ex.ledger.check_conserved()
    return ex


def liquidated(ex: Exchange) -> set[str]:
    return {e.payload["account_id"] for e in of_type(ex.journal, "liquidation.triggered")}


def test_a_finite_book_turns_a_shock_into_a_cascade_and_conserves_the_ledger() -> None:
    thin = crash(finite(**THIN, refill=20))
    deep = crash(finite(**THIN, refill=None))
    assert liquidated(deep) < liquidated(thin)  # the shock's victims, and more
    check_invariants(thin)  # conserved to the satoshi, replayed, no protected balance < 0
    check_invariants(deep)
    # The extra ones went when the mark, dragged by the eaten book, was below the shock's price.
    for event in of_type(thin.journal, "liquidation.triggered"):
        if event.payload["account_id"] not in liquidated(deep):
            assert Decimal(str(event.payload["positions"][0]["mark"])) < SHOCK_USD
    record = cascade_record(thin, BTC)
    assert record["accounts"] == len(liquidated(thin))
    assert min(p["last"] for p in record["points"]) < SHOCK_USD
    assert thin.ledger.balance(insurance_account("BTC")) < Decimal("0.05")  # drained
    paid = [e.payload for e in of_type(thin.journal, "liquidation.order")
            if e.payload["kind"] == "takeover" and Decimal(str(e.payload["insurance_delta"])) < 0]
    assert paid, "some liquidations filled below their bankruptcy price"
    for order in paid:  # the engine sold longs below where the user's margin ran out
        assert Decimal(str(order["avg_price"])) < Decimal(str(order["bankruptcy_price"]))
    assert record["adl"], "the fund could not pay: ADL closed shorts"
    first_adl = of_type(thin.journal, "adl.ranking")[0]
    fund_then = [e for e in of_type(thin.journal, "liquidation.order", "liquidation.completed")
                 if e.seq < first_adl.seq][-1].payload["insurance_fund"]
    assert Decimal(str(fund_then)) < Decimal("0.05")
    assert not of_type(deep.journal, "book.depth")  # stateless: no book records


def test_each_step_of_a_cascade_is_journalled() -> None:
    ex = crash(finite(**THIN, refill=20))
    orders = of_type(ex.journal, "liquidation.order")
    depth = of_type(ex.journal, "book.depth")
    assert len(depth) == len(orders)  # one book record for each order the engine worked
    for record, order in zip(depth, orders, strict=True):
        assert record.seq < order.seq
        assert record.time_ms == order.time_ms
        assert record.payload["taker_side"] == order.payload["side"]
        assert Decimal(str(record.payload["bids_quoted"])) >= 0


def test_a_cascade_is_deterministic() -> None:
    prof = finite(**THIN, refill=20)
    assert crash(prof).journal.digest() == crash(prof).journal.digest()


def test_a_liquidation_bigger_than_the_book_completes_at_the_backstop() -> None:
    ex = make_exchange(finite(levels=3, step_ticks=10, per_level=100, refill=1))
    long_id = fund(ex, "1", leverage=20, mode="isolated")
    trading.place_order(ex, long_id, BTC, "BUY", "MARKET", 250)  # eats 250 of the 300 asks
    ex.advance(400 * SECOND_MS)  # asks whole again
    ex.set_prices(BTC, "57000")
    [order] = of_type(ex.journal, "liquidation.order")
    assert order.payload["qty"] == 250
    trades = ex.states[BTC].trades[-4:]
    # 100 + 100 + 50 on the three bid levels below 57,000; nothing left for a backstop here,
    # so eat the book first with a seller and liquidate a second long.
    assert [t.qty_contracts for t in trades[-3:]] == [100, 100, 50]
    check_invariants(ex)
    second = fund(ex, "1", leverage=20, mode="isolated")
    ex.advance(400 * SECOND_MS)
    ex.set_prices(BTC, "60000")
    trading.place_order(ex, second, BTC, "BUY", "MARKET", 200)
    ex.advance(400 * SECOND_MS)
    sell(ex, 300)  # every synthetic bid gone
    ex.set_prices(BTC, "57000")
    order = of_type(ex.journal, "liquidation.order")[-1]
    assert order.payload["account_id"] == second
    backstop = ex.books[BTC].backstop_price("bids")
    assert Decimal(str(order.payload["avg_price"])) == backstop
    check_invariants(ex)


def test_a_fair_price_mark_does_not_follow_the_book() -> None:
    """BitMEX's fair price is index × (1 + funding basis): no last, no mid, so a depleted book
    moves the last price but not the mark (the same as on a stateless book at that instant)."""
    base = profile("bitmex_xbtusd")
    xbt = base.instruments[0]

    def run(refill: int | None) -> Exchange:
        book = xbt.book.model_copy(update={"levels": 10, "level_step_ticks": 10,
                                           "contracts_per_level": 1_000,
                                           "refill_contracts_per_s": refill})
        prof = base.model_copy(update={"instruments": (xbt.model_copy(update={"book": book}),
                                                       *base.instruments[1:])})
        ex = make_exchange(prof, manual_prices={xbt.pair: 60_000.0})
        account_id = fund(ex, "50", leverage=5, symbol=xbt.symbol)
        trading.place_order(ex, account_id, xbt.symbol, "SELL", "MARKET", 5_000)
        ex.advance(10 * SECOND_MS)
        return ex

    thin, deep = run(10), run(None)
    book = thin.books[xbt.symbol].finite
    assert book is not None
    assert book.eaten("bids", thin.now_ms) == 5_000 - 10 * 10
    assert thin.last_price(xbt.symbol) < Decimal(60_000)
    assert thin.mark_price(xbt.symbol) == deep.mark_price(xbt.symbol)


def test_the_depth_watch_sleeps_once_the_book_is_whole_and_out_of_the_window() -> None:
    ex = make_exchange(finite(refill=100))
    sell(ex, 500)
    ex.advance(60 * SECOND_MS)  # whole after 5 s, out of the 30 s window after 35 s
    visits = ex.depth_watch.visits
    assert 30 <= visits <= 40
    ex.advance(3600 * SECOND_MS)
    assert ex.depth_watch.visits == visits


def test_a_scenario_book_section_makes_the_book_finite() -> None:
    scenario = load_scenario("cascade")
    assert scenario.books["BTCUSD_PERP"].refill_contracts_per_s == 100
    assert scenario.crowd is not None
    assert scenario.crowd.accounts == 600
    small = dataclasses.replace(scenario, crowd=None)
    ex = Exchange(profile(), small)
    assert ex.profile.instrument(BTC).book.levels == 400
    assert ex.books[BTC].finite is not None
    assert ex.books["ETHUSD_PERP"].finite is None


def test_a_profile_can_make_a_book_finite_and_a_bad_rate_is_named(tmp_path: Path) -> None:
    from perpsim.fixtures import PROFILES_DIR
    from perpsim.sim.errors import ProfileError
    from perpsim.sim.profile import load_profile

    data = json.loads((PROFILES_DIR / "binance_coinm.json").read_text())
    data["instruments"][0]["book"]["refill_contracts_per_s"] = 500
    good = tmp_path / "thin.json"
    good.write_text(json.dumps(data))
    ex = make_exchange(load_profile(str(good)))
    assert ex.books[BTC].finite is not None
    assert ex.books[BTC].finite.rate_per_s == 500
    data["instruments"][0]["book"]["refill_contracts_per_s"] = 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=r"bad\.json: field instruments\[0\]\.book\."
                                           r"refill_contracts_per_s \(BTCUSD_PERP\): must be"):
        load_profile(str(bad))
