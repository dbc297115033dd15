"""The crowd-scale funding settlement against the per-position one it replaced, to the satoshi.

``funding.pay`` computes every payment at once, moves every holder in one ledger posting and
keeps the rows in a table; ``funding.pay_one_by_one`` is the settlement as it was (one exact
payment, one posting and one event per position). On random crowds — cross and isolated, long
and short, one-way and hedge mode, holders too poor to pay, positive and negative rates, two
rounding rules — both give the same payment per position, the same balance in every ledger
account (insurance fund and market included) and the same per-account postings; the ledger
conserves and replays.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim import funding, funding_rows, trading
from perpsim.sim.errors import PerpsimError
from perpsim.sim.exchange import Exchange
from perpsim.sim.funding_detail import FundingDetail
from perpsim.sim.funding_math import funding_payment_coin, payment_units
from perpsim.sim.journal import expand
from perpsim.sim.ledger import (
    BatchPosting,
    LedgerError,
    market_account,
    wallet_account,
)
from perpsim.sim.market import MarketPricer, PriceTape
from perpsim.sim.money import quantize

from engine_helpers import BTC, XBT, XBT_PRICES, make_exchange, profile

T_MS = 1_704_096_000_000  # a funding time (08:00) after the manual scenario's start


_trader = st.tuples(
    st.sampled_from(["cross", "isolated"]),
    st.sampled_from(["BUY", "SELL"]),
    st.integers(1, 400),  # contracts
    st.integers(1, 50),  # leverage
    st.sampled_from(["2", "0.05", "0.01"]),  # deposit: the poorest cannot pay a big rate
    st.booleans(),  # hedge mode
)


def _crowd(prof: str, traders: list[tuple[str, str, int, int, str, bool]]) -> Exchange:
    """An exchange whose accounts opened ``traders``' positions (the rejected ones stay flat)."""
    if prof == "bitmex_xbtusd":
        ex, symbol = make_exchange(prof, manual_prices=XBT_PRICES), XBT
    else:
        ex, symbol = make_exchange(prof), BTC
    for mode, side, qty, leverage, deposit, hedge in traders:
        aid = ex.create_account({"BTC": deposit}).account_id
        try:
            if hedge:
                ex.set_position_mode(aid, True)
            if mode != ex.position(aid, symbol).margin_mode:
                ex.set_margin_mode(aid, symbol, mode)
            ex.set_leverage(aid, symbol, leverage)
            if hedge:  # both legs: LONG opened by a BUY, SHORT by a SELL
                trading.place_order(ex, aid, symbol, "BUY", "MARKET", qty, position_side="LONG")
                trading.place_order(ex, aid, symbol, "SELL", "MARKET", max(1, qty // 3),
                                    position_side="SHORT")
            else:
                trading.place_order(ex, aid, symbol, side, "MARKET", qty)
        except PerpsimError:
            pass  # not enough margin for that order: the account stays as it is
    return ex


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prof=st.sampled_from(["binance_coinm", "bitmex_xbtusd"]),
       traders=st.lists(_trader, min_size=1, max_size=10),
       rate=st.decimals("-0.3", "0.3", places=6).filter(lambda r: r != 0),
       mark=st.decimals("500", "250000", places=1),
       few_rows=st.sampled_from([0, funding.FEW_ROWS]))
def test_the_batch_pays_what_each_position_paid(prof: str, traders: list[tuple[str, str, int,
                                                                               int, str, bool]],
                                                 rate: Decimal, mark: Decimal,
                                                 few_rows: int) -> None:
    """Both ways of booking a settlement (the arrays, and Decimals for a few rows:
    ``few_rows`` 0 sends even one row through the arrays) pay what each position paid."""
    batch, each = _crowd(prof, traders), _crowd(prof, traders)
    symbol = XBT if prof == "bitmex_xbtusd" else BTC
    # Neither settlement changes anything but balances: compare after both have run.
    saved, funding.FEW_ROWS = funding.FEW_ROWS, few_rows
    try:
        detail = funding.pay(batch, symbol, T_MS, rate, mark)
    finally:
        funding.FEW_ROWS = saved
    expected = funding.pay_one_by_one(each, symbol, T_MS, rate, mark)
    got = [(detail.account_ids[i], detail.amount(i), detail.wallets[i],
            detail.isolated_wallets[i]) for i in range(len(detail))]
    assert got == expected
    assert batch.ledger.balances() == each.ledger.balances()
    for aid in batch.accounts:
        mine = [(p.source, p.destination, p.amount, p.reason)
                for p in batch.ledger.history_of(aid) if p.reason.startswith("funding_fee")]
        theirs = [(p.source, p.destination, p.amount, p.reason)
                  for p in each.ledger.history_of(aid) if p.reason.startswith("funding_fee")]
        assert sorted(mine) == sorted(theirs)
    batch.ledger.check_conserved(replay=True)


def test_a_settlement_is_one_posting_and_one_record_with_rows_per_account() -> None:
    ex = make_exchange()
    ids = []
    for i in range(30):
        aid = ex.create_account({"BTC": "1"}).account_id
        if i % 2:
            ex.set_margin_mode(aid, BTC, "isolated")
        trading.place_order(ex, aid, BTC, "BUY" if i % 3 else "SELL", "MARKET", 10 + i)
        ids.append(aid)
    postings, events = len(ex.ledger.postings), len(ex.journal)
    ex.advance_until(T_MS)
    fees = [p for p in ex.ledger.postings[postings:] if p.reason == "funding_fee"]
    assert len(fees) == 1  # one posting, 30 legs
    assert isinstance(fees[0], BatchPosting)
    assert len(fees[0].names) == 30
    (settled,) = [e for e in ex.journal.since(events)
                  if e.type == "funding.settled" and e.payload["symbol"] == BTC]
    assert [e.type for e in ex.journal.since(events)].count("funding.payment") == 0
    assert isinstance(settled.detail, FundingDetail)
    assert settled.payload["positions"] == 30
    # Per account: the rows come back as the payment events they replaced, with the record's
    # seq; and as ordinary postings in that account's ledger history.
    for aid in ids:
        (payment,) = [e for e in expand([settled], aid)
                      if e.type == "funding.payment"]
        assert payment.seq == settled.seq
        assert payment.payload["account_id"] == aid
        (leg,) = [p for p in ex.ledger.history_of(aid) if p.reason == "funding_fee"]
        amount = Decimal(payment.payload["amount"])
        assert leg.amount == abs(amount)
        assert (leg.destination if amount > 0 else leg.source).split(":")[1] == aid
    # The record's digest covers the rows: a different payment changes it.
    changed = FundingDetail(**{f: getattr(settled.detail, f) for f in (
        "symbol", "coin", "rate", "mark", "step", "account_ids", "position_sides",
        "margin_modes", "qty_contracts", "wallet_units", "isolated_units", "exact")},
        units=settled.detail.units + np.eye(1, 30, 5, dtype=np.int64)[0])
    assert changed.digest() != settled.payload["payments_digest"] == settled.detail.digest()
    ex.ledger.check_conserved(replay=True)


@given(qty=st.lists(st.integers(-10**9, 10**9).filter(bool), min_size=1, max_size=50),
       rate=st.decimals("-0.9", "0.9", places=8).filter(lambda r: r != 0),
       mark=st.decimals("0.5", "1000000", places=2).filter(lambda m: m > 0),
       rule=st.sampled_from(["half_even", "half_up", "down", "up", "floor", "ceiling"]),
       cs=st.sampled_from([1, 10, 100]))
@settings(max_examples=examples(200), deadline=None)
def test_payment_units_equal_the_exact_payment(qty: list[int], rate: Decimal, mark: Decimal,
                                               rule: str, cs: int) -> None:
    step = Decimal("0.00000001")
    units = payment_units(np.array(qty, dtype=np.int64), mark, cs, rate, step, rule)  # type: ignore[arg-type]
    for q, u in zip(qty, units.tolist(), strict=True):
        exact = quantize(funding_payment_coin(q, mark, cs, rate), step, rule)  # type: ignore[arg-type]
        assert Decimal(u) * step == exact


def test_payment_units_near_a_rounding_boundary_take_the_exact_path() -> None:
    # 1 contract of 100 USD at 50,000 and 0.0001: exactly 20 satoshis, and ×q exactly 20·q —
    # integers, where float rounding could fall either side for the directed rules.
    qty = np.arange(1, 2000, dtype=np.int64)
    for rule in ("floor", "ceiling", "up", "down"):
        units = payment_units(qty, Decimal(50_000), 100, Decimal("0.0001"),
                              Decimal("0.00000001"), rule)  # type: ignore[arg-type]
        assert units.tolist() == (-20 * qty).tolist()


def test_a_bad_batch_changes_nothing() -> None:
    ex = make_exchange()
    aid = ex.create_account({"BTC": "1"}).account_id
    before = ex.ledger.balances()
    wallet = wallet_account(aid, "BTC")
    for names, amounts in (([wallet], [Decimal("-2")]),  # would go negative
                           ([wallet], [Decimal("0.000000001")]),  # off the step
                           ([wallet, wallet], [Decimal(1), Decimal(1)]),  # twice
                           ([wallet], [Decimal(0)])):
        try:
            ex.ledger.post_batch(market_account("BTC"), "BTC", names, amounts, "funding_fee",
                                 "x", 1)
        except LedgerError:
            pass
        else:
            raise AssertionError(f"{names} {amounts} was accepted")
    assert ex.ledger.balances() == before
    assert profile().rounding.coin_rule == "half_even"


def test_a_rolled_back_batch_leaves_no_trace() -> None:
    ex = make_exchange()
    a, b = (ex.create_account({"BTC": "1"}).account_id for _ in range(2))
    names = [wallet_account(a, "BTC"), wallet_account(b, "BTC")]
    before, count = ex.ledger.balances(), len(ex.ledger.postings)
    try:
        with ex.ledger.transaction():
            ex.ledger.post_batch(market_account("BTC"), "BTC", names,
                                 [Decimal("0.1"), Decimal("-0.2")], "funding_fee", "x", 1)
            raise RuntimeError("undo")
    except RuntimeError:
        pass
    assert ex.ledger.balances() == before
    assert len(ex.ledger.postings) == count
    assert all(p.reason != "funding_fee" for p in ex.ledger.history_of(a))
    ex.ledger.check_conserved(replay=True)



@given(start_s=st.integers(0, 3 * 86_400), length_s=st.integers(1, 2 * 86_400))
@settings(max_examples=examples(40), deadline=None)
def test_premiums_on_the_grid_are_the_direct_ones(start_s: int, length_s: int) -> None:
    """The chunked premium cache gives the same floats as computing the samples directly
    (windows that cross chunk edges and the tape's ends included)."""
    pricer = _calm_pricer()
    step = pricer.profile.funding.premium_sample_interval_ms
    first = pricer.tape.times_ms[0] // step * step + step * (start_s * 1000 // step)
    count = length_s * 1000 // step + 1
    direct = pricer.premiums(first + step * np.arange(count, dtype=np.int64))
    assert np.array_equal(pricer.premiums_on_grid(int(first), count), direct)


@cache
def _calm_pricer() -> MarketPricer:
    return make_exchange(scenario="calm").pricer(BTC)


@given(gaps=st.lists(st.sampled_from([1000, 1000, 1000, 1000, 500, 3000]), min_size=1,
                     max_size=400),
       queries=st.lists(st.integers(-5_000, 500_000), min_size=64, max_size=300))
@settings(max_examples=examples(100), deadline=None)
def test_rows_at_equals_the_search(gaps: list[int], queries: list[int]) -> None:
    """The regular-grid guess gives the rows a search gives, on regular and irregular tapes."""
    times = np.concatenate(([0], np.cumsum(gaps))).astype(np.int64)
    tape = PriceTape("BTCUSD", times, np.full(len(times), 60_000.0), np.full(len(times), 60_000.0))
    grid = np.array(sorted(queries), dtype=np.int64)
    expected = np.maximum(np.searchsorted(times, grid, side="right") - 1, 0)
    assert np.array_equal(tape.rows_at(grid), expected)


def _settled_rows(ex: Exchange, symbol: str, t_ms: int, rate: Decimal,
                  mark: Decimal) -> list[tuple[str, str, str, str]]:
    detail = funding.pay(ex, symbol, t_ms, rate, mark)
    # The digest continues from the cached rows' hashed text: the same as hashing it all.
    assert detail.text_sha is not None
    assert detail.digest() == FundingDetail(
        detail.symbol, detail.coin, detail.rate, detail.mark, detail.step, detail.account_ids,
        detail.position_sides, detail.margin_modes, detail.qty_contracts, detail.units,
        detail.wallet_units, detail.isolated_units).digest()
    return [(detail.account_ids[i], str(detail.amount(i)), str(detail.wallets[i]),
             str(detail.isolated_wallets[i])) for i in range(len(detail))]


def _reference_rows(ex: Exchange, symbol: str, t_ms: int, rate: Decimal,
                    mark: Decimal) -> list[tuple[str, str, str, str]]:
    return [(aid, str(amount), str(wallet), str(isolated)) for aid, amount, wallet, isolated
            in funding.pay_one_by_one(ex, symbol, t_ms, rate, mark)]


def test_cached_rows_follow_every_position_change_between_settlements() -> None:
    """The batch's gathered rows are cached between settlements: after positions open on flat
    records, resize, close, after new accounts and a size set directly, each settlement still
    pays exactly what the per-position path pays (text compared: exponents too)."""
    traders = [("cross", "BUY", 40, 10, "2", False), ("isolated", "SELL", 25, 5, "2", False),
               ("cross", "SELL", 7, 20, "0.05", True), ("isolated", "BUY", 90, 50, "0.01",
                                                           False)]
    batch, each = _crowd("binance_coinm", traders), _crowd("binance_coinm", traders)
    ids = list(batch.accounts)
    changes = [
        lambda ex: None,  # nothing moved: the cached rows are used as they are
        lambda ex: trading.place_order(ex, ids[0], BTC, "BUY", "MARKET", 5),  # resized
        lambda ex: trading.place_order(ex, ids[1], BTC, "BUY", "MARKET", 25),  # closed
        lambda ex: trading.place_order(ex, ids[1], BTC, "SELL", "MARKET", 3),  # reopened
        lambda ex: trading.place_order(ex, ex.create_account({"BTC": "1.5"}).account_id, BTC,
                                       "SELL", "MARKET", 11),  # a new account
        lambda ex: setattr(ex.accounts[ids[0]].positions[BTC], "qty_contracts", 60),  # direct
        # a hedge account closes its LONG leg: its SHORT leg is paid in the batch now
        lambda ex: trading.place_order(ex, ids[2], BTC, "SELL", "MARKET", 7,
                                       position_side="LONG"),
        lambda ex: setattr(ex.accounts[ids[3]].positions[BTC], "qty_contracts", 0),  # as a
    ]  # liquidation leaves it
    for k, change in enumerate(changes):
        for ex in (batch, each):
            change(ex)
        # The cached rows, updated in place or gathered again, are the rows gathered afresh.
        cached = funding_rows.rows(batch, BTC, "BTC")
        fresh = funding_rows._gather(batch, BTC, "BTC", funding_rows._ExchangeRows())
        for column in ("account_ids", "position_sides", "margin_modes", "holder_names",
                       "wallet_names", "isolated_names", "qty_contracts", "hedge",
                       "holder_slots", "wallet_slots", "isolated_slots"):
            assert list(getattr(cached, column)) == list(getattr(fresh, column)), column
        assert [a.account_id for a in cached.paying_accounts] == [
            a.account_id for a in fresh.paying_accounts]
        assert cached.text_sha.digest() == fresh.text_sha.digest()
        rate = Decimal("0.0004") if k % 2 else Decimal("-0.0007")
        got = _settled_rows(batch, BTC, T_MS + k, rate, Decimal("61000"))
        assert got == _reference_rows(each, BTC, T_MS + k, rate, Decimal("61000"))
        assert {n: str(b) for n, b in batch.ledger.balances().items()} == {
            n: str(b) for n, b in each.ledger.balances().items()}
        assert [a.update_ms for a in batch.accounts.values()] == [
            a.update_ms for a in each.accounts.values()]
    batch.ledger.check_conserved(replay=True)


def _year_of_one_hedge(days: float) -> tuple[str, list[tuple[object, ...]], dict[str, str]]:
    from perpsim.benchmarks.engine_event_skipping import _open_positions
    from perpsim.sim.profile import load_profile
    from perpsim.sim.scenario import load_scenario

    scenario = load_scenario("calm_30d", seed=0, days=days, resolution_ms=1000)
    ex = Exchange(load_profile("binance_coinm"), scenario, seed=0)
    _open_positions(ex)
    assert scenario.end_ms is not None
    ex.advance_until(scenario.end_ms)
    postings = [(type(p).__name__, p.source, p.destination, p.amounts if isinstance(
        p, BatchPosting) else p.amount, p.reason, p.ref) for p in ex.ledger.postings]
    return (ex.journal.digest(), postings,
            {name: str(balance) for name, balance in ex.ledger.balances().items()})


def test_a_few_rows_booked_in_decimals_leave_the_run_the_arrays_leave() -> None:
    """A hedge's settlements (three positions) take ``_pay_few``; forced through the arrays
    instead, the run's journal digest, postings and balances (as text) are the same."""
    few = _year_of_one_hedge(3)
    saved, funding.FEW_ROWS = funding.FEW_ROWS, 0
    try:
        arrays = _year_of_one_hedge(3)
    finally:
        funding.FEW_ROWS = saved
    assert few == arrays
    assert sum(1 for p in few[1] if p[4] == "funding_fee") >= 9
