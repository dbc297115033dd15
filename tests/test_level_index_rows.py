"""The level index's cached rows and array upkeep (sim/level_index.py) against a rebuild.

A funding settlement only moves balances, so the index keeps each position's solver inputs
(size, entry, margin mode, margin-call flag, margin account) in arrays and re-reads a position
only when a journal event, a single posting or ``touch`` names its account. These properties
drive random crowds through trades, settlements, price moves and liquidation checks with the
array paths forced on (tiny batch thresholds) and compare, after every step, the incremental
index with a fresh one built position by position with the default thresholds: the same rows,
the same four levels per position, the same volatile accounts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from typing import Any
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim import funding, level_index, liquidation, trading
from perpsim.sim.errors import PerpsimError
from perpsim.sim.exchange import Exchange
from perpsim.sim.ledger import isolated_account, wallet_account
from perpsim.sim.level_index import LevelIndex, SortedLevels
from perpsim.sim.money import quantize

from engine_helpers import make_exchange


@contextmanager
def _tiny_batches() -> Iterator[None]:
    """Every upkeep of more than a few positions takes the array paths."""
    with mock.patch.object(level_index, "_BATCH_AT", 2), \
            mock.patch.object(level_index, "_REBUILD_AT", 3):
        yield


def _rows_of(index: LevelIndex) -> dict[str, dict[int, tuple[Any, ...]]]:
    found: dict[str, dict[int, tuple[Any, ...]]] = {}
    for symbol, levels in index.symbols.items():
        rows = levels.rows
        found[symbol] = {o: (int(rows.qty[o]), float(rows.entry[o]), bool(rows.cross[o]),
                             bool(rows.called[o]), rows.holder[o])
                         for o in np.flatnonzero(rows.held).tolist()}
    return found


def _rows_read_from_the_positions(ex: Exchange,
                                   index: LevelIndex) -> dict[str, dict[int, tuple[Any, ...]]]:
    """What the rows must hold, read from the accounts as they are now."""
    found: dict[str, dict[int, tuple[Any, ...]]] = {s: {} for s in index.symbols}
    for o, aid in enumerate(index.account_ids):
        account = ex.accounts[aid]
        open_ = account.open_positions()
        cross = [p.coin for p in open_ if p.margin_mode == "cross"]
        if len(cross) != len(set(cross)) or any(p.position_side != "BOTH" for p in open_):
            continue  # volatile: judged exactly at every use, not kept in rows
        for p in open_:
            assert p.entry_price_usd is not None
            holder = (isolated_account(aid, p.margin_key) if p.margin_mode == "isolated"
                      else wallet_account(aid, p.coin))
            found[p.symbol][o] = (p.qty_contracts, float(p.entry_price_usd),
                                  p.margin_mode == "cross", p.margin_call_sent, holder)
    return found


def _levels_of(index: LevelIndex) -> dict[str, tuple[dict[int, float], ...]]:
    return {s: tuple(i.as_dict() for i in levels.indexes) for s, levels in index.symbols.items()}


def _assert_like_a_rebuild(ex: Exchange) -> None:
    index = ex.watcher.index
    with _tiny_batches():
        index.sync()
    fresh = LevelIndex(ex)
    fresh.sync()  # default thresholds: a few accounts, solved one by one
    assert _rows_of(index) == _rows_of(fresh) == _rows_read_from_the_positions(ex, index)
    for levels in index.symbols.values():  # margins read from the ledger's integer steps
        held = np.flatnonzero(levels.rows.held)
        expected = [float(ex.ledger.balance(h)) for h in levels.rows.holder[held].tolist()]
        assert index._margins(levels.rows, held).tolist() == expected
    assert _levels_of(index) == _levels_of(fresh)
    assert index.volatile == fresh.volatile


_trader = st.tuples(st.sampled_from(["cross", "isolated", "hedge"]),
                    st.sampled_from(["BUY", "SELL"]), st.integers(1, 400),
                    st.sampled_from([2, 10, 50, 100]), st.sampled_from(["0.05", "0.2", "1"]))
_step = st.one_of(
    st.tuples(st.just("fund"), st.sampled_from([-0.0075, -0.0001, 0.0001, 0.0003, 0.0075])),
    st.tuples(st.just("price"), st.floats(-0.08, 0.08)),
    st.tuples(st.just("trade"), st.integers(0, 30), st.sampled_from(["BUY", "SELL"]),
              st.integers(1, 400)),
    st.tuples(st.just("check"), st.just(0)),
)


def _open(ex: Exchange, symbol: str, traders: list[tuple[str, str, int, int, str]]) -> None:
    for mode, side, qty, leverage, deposit in traders:
        aid = ex.create_account({"BTC": deposit}).account_id
        try:
            if mode == "hedge":  # two legs on one wallet: a volatile account, never in rows
                ex.set_position_mode(aid, True)
                ex.set_leverage(aid, symbol, leverage)
                trading.place_order(ex, aid, symbol, "BUY", "MARKET", qty, position_side="LONG")
                trading.place_order(ex, aid, symbol, "SELL", "MARKET", max(1, qty // 2),
                                    position_side="SHORT")
                continue
            if mode != ex.position(aid, symbol).margin_mode:
                ex.set_margin_mode(aid, symbol, mode)
            ex.set_leverage(aid, symbol, leverage)
            trading.place_order(ex, aid, symbol, side, "MARKET", qty)
        except PerpsimError:
            pass  # not enough margin: the account stays as it is


def _apply(ex: Exchange, symbol: str, step: tuple[Any, ...]) -> None:
    kind = step[0]
    with _tiny_batches():
        if kind == "fund":
            rate = Decimal(str(step[1]))
            funding.pay(ex, symbol, ex.now_ms, rate, ex.mark_price(symbol))
        elif kind == "price":
            price = ex.last_price(symbol) * Decimal(str(round(1 + step[1], 4)))
            ex.advance(60_000)
            ex.set_prices(symbol, quantize(price, ex.instruments[symbol].tick_size))
        elif kind == "trade":
            _, who, side, qty = step
            ids = list(ex.accounts)
            with suppress(PerpsimError):  # not enough margin: nothing happens
                trading.place_order(ex, ids[who % len(ids)], symbol, side, "MARKET", qty)
        else:
            liquidation.check_all(ex)


@settings(max_examples=examples(60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(prof=st.sampled_from(["binance_coinm", "bybit_inverse"]),
       traders=st.lists(_trader, min_size=3, max_size=14),
       steps=st.lists(_step, min_size=1, max_size=10))
def test_incremental_rows_and_levels_equal_a_rebuild(
        prof: str, traders: list[tuple[str, str, int, int, str]],
        steps: list[tuple[Any, ...]]) -> None:
    ex = make_exchange(prof)
    symbol = ex.profile.instruments[0].symbol
    with _tiny_batches():
        _open(ex, symbol, traders)
    _assert_like_a_rebuild(ex)
    for step in steps:
        _apply(ex, symbol, step)
        _assert_like_a_rebuild(ex)


def test_a_settlement_re_solves_every_funded_position_and_only_those() -> None:
    ex = make_exchange("binance_coinm")
    symbol = ex.profile.instruments[0].symbol
    rng = random.Random(7)
    _open(ex, symbol, [(rng.choice(["cross", "isolated", "cross", "isolated", "hedge"]),
                        rng.choice(["BUY", "SELL"]), rng.randrange(1, 300), rng.choice([5, 20]),
                        "0.2") for _ in range(40)])
    index = ex.watcher.index
    index.sync()
    held = np.flatnonzero(index.symbols[symbol].rows.held).tolist()
    assert len(held) > 20
    assert index.volatile  # hedge-mode accounts: paid one posting per leg, solved exactly
    before = index.recomputed
    funding.pay(ex, symbol, ex.now_ms, Decimal("0.0005"), ex.mark_price(symbol))
    with _tiny_batches():
        changed = index.sync()
    # Every holder's balance moved, nothing else did; only the rows were solved again.
    assert changed.tolist() == sorted(set(held) | index.volatile)
    assert index.recomputed - before == len(held)
    assert not len(index.sync())  # nothing since
    _assert_like_a_rebuild(ex)


# ---- the sorted index's array paths --------------------------------------------------------------
_level = st.one_of(st.floats(-10.0, 110.0), st.sampled_from([0.0, -0.0, 5.0, math.inf, -math.inf]))
_change = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 60), _level),
    st.tuples(st.just("drop"), st.integers(0, 60), st.just(0.0)),
    st.tuples(st.just("batch"), st.lists(st.integers(0, 60), unique=True, max_size=40),
              st.lists(st.one_of(_level, st.just(math.nan)), min_size=40, max_size=40)),
    st.tuples(st.just("query"), st.floats(-20.0, 120.0), st.floats(-20.0, 120.0)),
)


@settings(max_examples=examples(200), deadline=None)
@given(rebuild_at=st.sampled_from([1, 4, 512]), changes=st.lists(_change, max_size=40))
def test_sorted_levels_with_batches_answer_like_a_plain_dict(
        rebuild_at: int, changes: list[tuple[Any, ...]]) -> None:
    with mock.patch.object(level_index, "_REBUILD_AT", rebuild_at):
        index, truth = SortedLevels(), dict[int, float]()
        for kind, a, b in changes:
            if kind == "set":
                index.set(a, b)
                truth[a] = b if a not in truth or truth[a] != b else truth[a]
            elif kind == "drop":
                index.drop(a)
                truth.pop(a, None)
            elif kind == "batch":
                ordinals = np.array(a, dtype=np.int64)
                levels = np.array(b[:len(a)], dtype=np.float64)
                index.batch = True
                index.set_array(ordinals, levels)
                index.settle()
                for o, v in zip(a, b, strict=False):
                    if math.isnan(v):
                        truth.pop(o, None)
                    else:
                        truth[o] = v
            else:
                lo, hi = min(a, b), max(a, b)
                assert sorted(index.between(lo, hi)) == sorted(
                    k for k, v in truth.items() if lo <= v <= hi)
            assert index.as_dict() == truth
            assert len(index) == len(truth)
            assert all((o in index) == (o in truth) for o in range(62))
            assert index.top() == max(truth.values(), default=-math.inf)
            assert index.bottom() == min(truth.values(), default=math.inf)


def _called(ex: Exchange) -> set[str]:
    return {a.account_id for a in ex.accounts.values() for p in a.open_positions()
            if p.margin_call_sent}


def test_rows_follow_margin_calls_their_resets_and_liquidations() -> None:
    """Down in small steps (calls, then liquidations), then back up (calls reset without an
    event: ``candidates`` touches the accounts it checked)."""
    ex = make_exchange("binance_coinm")
    symbol = ex.profile.instruments[0].symbol
    rng = random.Random(3)
    with _tiny_batches():
        _open(ex, symbol, [(rng.choice(["cross", "isolated"]), rng.choice(["BUY", "BUY", "SELL"]),
                            rng.randrange(50, 400), rng.choice([20, 50, 100]), "0.05")
                           for _ in range(60)])
    tick = ex.instruments[symbol].tick_size
    price, step = ex.last_price(symbol), Decimal("0.9975")
    called_seen = reset_seen = False
    for _ in range(60):
        called_before = _called(ex)
        with _tiny_batches():
            ex.advance(1_000)
            price = quantize(price * step, tick)
            ex.set_prices(symbol, price)
            ex.advance(1_000)
        _assert_like_a_rebuild(ex)
        called = _called(ex)
        reset_seen |= bool(called_before - called - {e.payload["account_id"] for e in ex.journal
                                                      if e.type == "liquidation.triggered"})
        if called and not called_seen:  # the first calls standing: turn back up
            called_seen, step = True, Decimal("1.004")
    kinds = {e.type for e in ex.journal}
    assert {"margin.call", "liquidation.triggered"} <= kinds
    assert called_seen  # some rows held a sent margin call when compared
    assert reset_seen  # and some calls were reset as the price came back
