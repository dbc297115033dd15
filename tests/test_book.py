"""Order book: synthetic depth, price-time priority, planning vs applying, validation.

Instrument for the hand-checked numbers: tick 0.1, CS 100, synthetic book of 3 levels of 10
contracts, half spread 5 ticks, 10 ticks between levels. With the reference at 50,000:
asks 50,000.5 / 50,001.5 / 50,002.5 and bids 49,999.5 / 49,998.5 / 49,997.5.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim.book import OrderBook
from perpsim.sim.errors import (
    DuplicateClientOrderId,
    FillOrKillUnfilled,
    InvalidInput,
    InvalidPrice,
    InvalidQuantity,
    OffTick,
    OrderNotFound,
    PostOnlyWouldTake,
    UnknownSymbol,
)
from perpsim.sim.orders import Order
from perpsim.sim.profile import Instrument

D = Decimal
REF = D("50000")


def make_instrument(**overrides: Any) -> Instrument:
    raw: dict[str, Any] = {
        "symbol": "BTCUSD_PERP",
        "pair": "BTCUSD",
        "base_asset": "BTC",
        "quote_asset": "USD",
        "margin_asset": "BTC",
        "contract_type": "PERPETUAL",
        "contract_size_usd": "100",
        "tick_size": "0.1",
        "lot_size": 1,
        "min_qty": 1,
        "max_qty": 1000,
        "market_max_qty": 500,
        "price_precision": 1,
        "quantity_precision": 0,
        "funding_cap": "0.003",
        "impact_margin_usd": "200",
        "brackets": [
            {
                "bracket": 1,
                "floor_coin": "0",
                "max_leverage": "125",
                "mmr": "0.004",
                "cum_coin": "0",
            }
        ],
        "book": {
            "half_spread_ticks": 5,
            "levels": 3,
            "level_step_ticks": 10,
            "contracts_per_level": 10,
        },
    }
    raw.update(overrides)
    return Instrument.model_validate(raw)


_ids = itertools.count(1)


def mk(
    side: str = "BUY",
    qty: Any = 10,
    price: Any = None,
    *,
    type: str | None = None,
    tif: str = "GTC",
    account: str = "a",
    symbol: str = "BTCUSD_PERP",
) -> Order:
    n = next(_ids)
    if isinstance(price, str):
        price = D(price)
    return Order(
        order_id=n,
        client_order_id=f"c{n}",
        account_id=account,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        type=type or ("MARKET" if price is None else "LIMIT"),  # type: ignore[arg-type]
        qty_contracts=qty,
        price_usd=price,
        time_in_force=tif,  # type: ignore[arg-type]
        reduce_only=False,
        created_ms=0,
        updated_ms=0,
        seq=n,
    )


@pytest.fixture
def book() -> OrderBook:
    b = OrderBook(make_instrument())
    b.set_reference_price(REF)
    return b


def rest(book: OrderBook, *args: Any, **kw: Any) -> Order:
    """Place a non-crossing GTC limit order."""
    o = mk(*args, **kw)
    plan = book.plan_match(o)
    assert plan.action == "REST"
    assert not plan.fills
    book.add(o)
    return o


def fills_of(plan: Any) -> list[tuple[str, int, int | None]]:
    return [(str(f.price_usd), f.qty_contracts, f.maker_order_id) for f in plan.fills]


# ---- synthetic liquidity -------------------------------------------------------------------


def test_synthetic_quotes_around_reference(book: OrderBook) -> None:
    bids, asks = book.depth()
    assert bids == [(D("49999.5"), 10), (D("49998.5"), 10), (D("49997.5"), 10)]
    assert asks == [(D("50000.5"), 10), (D("50001.5"), 10), (D("50002.5"), 10)]
    assert (book.best_bid(), book.best_ask(), book.mid()) == (D("49999.5"), D("50000.5"), REF)
    assert book.synthetic_offset_usd() == D("0.5")
    assert book.depth(1) == ([(D("49999.5"), 10)], [(D("50000.5"), 10)])


def test_reference_is_rounded_to_tick() -> None:
    b = OrderBook(make_instrument())
    assert b.best_bid() is None
    assert b.mid() is None
    assert b.depth() == ([], [])
    assert b.set_reference_price(D("50000.04")) == D("50000.0")
    assert b.reference_price == D("50000.0")


def test_no_bids_at_or_below_zero() -> None:
    b = OrderBook(make_instrument())
    b.set_reference_price(D("1.6"))  # bids would be 1.1, 0.1, -0.9
    bids, _ = b.depth()
    assert bids == [(D("1.1"), 10), (D("0.1"), 10)]


@pytest.mark.parametrize("bad", [D(0), D(-5), D("NaN"), "x"])
def test_bad_reference_price(book: OrderBook, bad: Any) -> None:
    with pytest.raises(InvalidPrice):
        book.set_reference_price(bad)
    assert book.reference_price == REF


def test_market_buy_walks_levels_and_slips(book: OrderBook) -> None:
    o = mk("BUY", 25)
    plan = book.plan_match(o)
    assert fills_of(plan) == [("50000.5", 10, None), ("50001.5", 10, None), ("50002.5", 5, None)]
    assert plan.action == "FILLED"
    assert plan.would_take
    assert plan.fully_fillable
    assert (plan.filled_contracts, plan.remaining_contracts) == (25, 0)
    assert all(f.taker_order_id == o.order_id and f.taker_side == "BUY" for f in plan.fills)
    assert book.apply_match(plan, now_ms=5) == []  # no user maker touched
    for f in plan.fills:
        o.apply_fill(f.qty_contracts, f.price_usd, D(100), now_ms=5)
    # harmonic: 2500 / (1000/50000.5 + 1000/50001.5 + 500/50002.5)
    expected = D(2500) / (D(1000) / D("50000.5") + D(1000) / D("50001.5") + D(500) / D("50002.5"))
    assert o.avg_price_usd(D(100)) == expected
    # stateless: the next order sees full depth again
    assert book.depth()[1][0] == (D("50000.5"), 10)
    assert fills_of(book.plan_match(mk("BUY", 25))) == fills_of(plan)


def test_market_sell_beyond_depth_expires_rest(book: OrderBook) -> None:
    plan = book.plan_match(mk("SELL", 40))
    assert fills_of(plan) == [("49999.5", 10, None), ("49998.5", 10, None), ("49997.5", 10, None)]
    assert plan.action == "EXPIRE"
    assert not plan.fully_fillable
    assert plan.remaining_contracts == 10


def test_market_on_empty_book_expires() -> None:
    b = OrderBook(make_instrument())
    plan = b.plan_match(mk("BUY", 5))
    assert (plan.fills, plan.would_take, plan.action) == ((), False, "EXPIRE")


# ---- time in force -------------------------------------------------------------------------


def test_limit_ioc_partial_then_expire(book: OrderBook) -> None:
    plan = book.plan_match(mk("BUY", 15, "50001.0", tif="IOC"))
    assert fills_of(plan) == [("50000.5", 10, None)]
    assert (plan.action, plan.remaining_contracts) == ("EXPIRE", 5)


def test_limit_gtc_partial_rests_rest(book: OrderBook) -> None:
    o = mk("BUY", 15, "50001.0")
    plan = book.plan_match(o)
    assert fills_of(plan) == [("50000.5", 10, None)]
    assert plan.action == "REST"
    book.apply_match(plan)
    o.apply_fill(10, D("50000.5"), D(100))
    book.add(o)
    assert book.get(o.order_id) is o
    assert o.remaining_contracts == 5


def test_fok_unfillable_plans_nothing(book: OrderBook) -> None:
    plan = book.plan_match(mk("BUY", 35, "50002.5", tif="FOK"))
    assert plan.fills == ()
    assert plan.action == "REJECT"
    assert plan.would_take
    assert not plan.fully_fillable
    with pytest.raises(FillOrKillUnfilled, match="only 30 contracts"):
        plan.raise_if_rejected()
    ok = book.plan_match(mk("BUY", 30, "50002.5", tif="FOK"))
    assert (ok.action, ok.filled_contracts, ok.rejection) == ("FILLED", 30, None)


def test_gtx_that_would_take_is_rejected(book: OrderBook) -> None:
    plan = book.plan_match(mk("BUY", 5, "50000.5", tif="GTX"))
    assert (plan.action, plan.fills, plan.would_take) == ("REJECT", (), True)
    with pytest.raises(PostOnlyWouldTake):
        plan.raise_if_rejected()


def test_gtx_not_crossing_rests(book: OrderBook) -> None:
    o = mk("BUY", 5, "50000.4", tif="GTX")
    plan = book.plan_match(o)
    assert (plan.action, plan.fills, plan.would_take, plan.rejection) == ("REST", (), False, None)
    plan.raise_if_rejected()
    book.add(o)
    assert book.best_bid() == D("50000.4")
    # a post-only sell at that user bid would take it
    assert book.plan_match(mk("SELL", 1, "50000.4", tif="GTX")).action == "REJECT"


# ---- priority among users ------------------------------------------------------------------


def test_price_then_time_priority(book: OrderBook) -> None:
    first = rest(book, "SELL", 4, "50000.2", account="x")
    second = rest(book, "SELL", 4, "50000.2", account="y")
    better = rest(book, "SELL", 3, "50000.1", account="z")
    plan = book.plan_match(mk("BUY", 9))
    assert fills_of(plan) == [
        ("50000.1", 3, better.order_id),
        ("50000.2", 4, first.order_id),
        ("50000.2", 2, second.order_id),
    ]
    assert [f.maker_account_id for f in plan.fills] == ["z", "x", "y"]
    assert book.open_orders() == [better, first, second]
    touched = book.apply_match(plan, now_ms=9)
    assert touched == [better, first, second]
    assert (better.status, first.status, second.status) == ("FILLED", "FILLED", "PARTIALLY_FILLED")
    assert second.remaining_contracts == 2
    assert second.updated_ms == 9
    assert book.open_orders() == [second]
    assert book.get(first.order_id) is None
    assert book.depth(1)[1] == [(D("50000.2"), 2)]


def test_users_fill_before_synthetic_at_same_price(book: OrderBook) -> None:
    user = rest(book, "SELL", 3, "50000.5")
    assert book.depth(1)[1] == [(D("50000.5"), 13)]
    plan = book.plan_match(mk("BUY", 5, tif="IOC"))
    assert fills_of(plan) == [("50000.5", 3, user.order_id), ("50000.5", 2, None)]


def test_user_taker_matches_user_maker_and_self_trade_allowed(book: OrderBook) -> None:
    maker = rest(book, "SELL", 10, "50000.0", account="a")
    taker = mk("BUY", 4, "50000.0", tif="IOC", account="a")  # same account: no STP
    plan = book.plan_match(taker)
    assert fills_of(plan) == [("50000.0", 4, maker.order_id)]
    assert plan.fills[0].maker_account_id == plan.fills[0].taker_account_id == "a"
    assert plan.action == "FILLED"
    assert maker.filled_contracts == 0  # planning changed nothing
    assert book.apply_match(plan) == [maker]
    assert (maker.status, maker.remaining_contracts) == ("PARTIALLY_FILLED", 6)
    assert maker.avg_price_usd(D(100)) == D("50000.0")
    assert book.depth(1)[1] == [(D("50000.0"), 6)]


def test_stale_plan_refused(book: OrderBook) -> None:
    maker = rest(book, "SELL", 10, "50000.0")
    plan = book.plan_match(mk("BUY", 4, "50000.0", tif="IOC"))
    book.remove(maker.order_id)
    with pytest.raises(RuntimeError, match="stale plan"):
        book.apply_match(plan)
    assert maker.filled_contracts == 0


def test_add_refuses_order_crossing_users(book: OrderBook) -> None:
    rest(book, "SELL", 10, "50000.0")
    with pytest.raises(ValueError, match="crosses"):
        book.add(mk("BUY", 1, "50000.0"))
    with pytest.raises(InvalidInput, match="only GTC or GTX"):
        book.add(mk("BUY", 1, "49000.0", tif="IOC"))
    with pytest.raises(InvalidInput):
        book.add(mk("BUY", 1))  # MARKET


# ---- remove / get / client ids ---------------------------------------------------------------


def test_remove_get_not_found(book: OrderBook) -> None:
    a = rest(book, "BUY", 1, "49000.0")
    b = rest(book, "BUY", 2, "49000.0", account="b")
    assert len(book) == 2
    assert a.order_id in book
    assert book.open_orders("b") == [b]
    assert book.find_client_order("a", a.client_order_id) is a
    assert book.remove(a.order_id) is a
    assert a.status == "NEW"  # the engine sets CANCELED
    assert book.get(a.order_id) is None
    assert book.find_client_order("a", a.client_order_id) is None
    with pytest.raises(OrderNotFound, match=str(a.order_id)):
        book.remove(a.order_id)
    assert book.depth()[0][3] == (D("49000.0"), 2)


def test_duplicate_client_order_id(book: OrderBook) -> None:
    a = rest(book, "BUY", 1, "49000.0")
    dup = mk("BUY", 1, "48000.0")
    dup.client_order_id = a.client_order_id
    with pytest.raises(DuplicateClientOrderId):
        book.plan_match(dup)
    with pytest.raises(DuplicateClientOrderId):
        book.add(dup)
    dup.account_id = "other"  # another account may reuse it
    book.add(dup)


# ---- reference moves -----------------------------------------------------------------------


def test_reference_move_makes_resting_buy_marketable(book: OrderBook) -> None:
    low = rest(book, "BUY", 5, "49980.0")
    high = rest(book, "BUY", 7, "49990.0")
    sell = rest(book, "SELL", 2, "50100.0")
    assert book.crossing_levels() == (D("49990.0"), D("50100.0"))
    assert book.marketable_resting() == []
    # synthetic best ask = 49989.5 + 0.5 = 49990.0: touches the higher bid only
    book.set_reference_price(D("49989.5"))
    assert book.marketable_resting() == [high]
    book.set_reference_price(D("49900"))
    assert book.marketable_resting() == [high, low]
    plan = book.plan_sweep()
    assert [(str(f.price_usd), f.qty_contracts, f.maker_order_id) for f in plan.fills] == [
        ("49990.0", 7, high.order_id),
        ("49980.0", 5, low.order_id),
    ]
    assert all(f.taker_order_id is None and f.taker_side == "SELL" for f in plan.fills)
    assert book.apply_match(plan) == [high, low]
    assert (high.status, low.status) == ("FILLED", "FILLED")
    assert high.avg_price_usd(D(100)) == D("49990.0")  # as maker, at its own limit
    assert book.open_orders() == [sell]
    assert book.crossing_levels() == (None, D("50100.0"))


def test_reference_move_makes_resting_sell_marketable(book: OrderBook) -> None:
    sell = rest(book, "SELL", 3, "50010.0")
    book.set_reference_price(D("50010.5"))  # synthetic best bid 50010.0
    assert book.marketable_resting() == [sell]
    plan = book.plan_sweep()
    assert plan.fills[0].taker_side == "BUY"
    book.apply_match(plan)
    assert len(book) == 0


# ---- validation: typed errors, nothing changed -----------------------------------------------


BAD_ORDERS = [
    (lambda: mk("BUY", 0, "49000.0"), InvalidQuantity),
    (lambda: mk("BUY", -3, "49000.0"), InvalidQuantity),
    (lambda: mk("BUY", 1.5, "49000.0"), InvalidQuantity),
    (lambda: mk("BUY", D("2"), "49000.0"), InvalidQuantity),  # not an int
    (lambda: mk("BUY", True, "49000.0"), InvalidQuantity),
    (lambda: mk("BUY", 1001, "49000.0"), InvalidQuantity),  # above max_qty
    (lambda: mk("BUY", 501), InvalidQuantity),  # above market_max_qty
    (lambda: mk("BUY", 1, "49000.05"), OffTick),
    (lambda: mk("BUY", 1, "NaN"), InvalidPrice),
    (lambda: mk("BUY", 1, "Infinity"), InvalidPrice),
    (lambda: mk("BUY", 1, "0"), InvalidPrice),
    (lambda: mk("BUY", 1, "-100.0"), InvalidPrice),
    (lambda: mk("BUY", 1, 49000.0), InvalidPrice),  # float, not Decimal
    (lambda: mk("BUY", 1, D("49000.0"), type="MARKET"), InvalidPrice),
    (lambda: mk("BUY", 1, type="LIMIT"), InvalidPrice),
    (lambda: mk("HOLD", 1, "49000.0"), InvalidInput),
    (lambda: mk("BUY", 1, "49000.0", tif="DAY"), InvalidInput),
    (lambda: mk("BUY", 1, "49000.0", symbol="ETHUSD_PERP"), UnknownSymbol),
]


@pytest.mark.parametrize(("make", "error"), BAD_ORDERS)
def test_bad_orders_rejected_and_book_unchanged(
    book: OrderBook, make: Any, error: type[Exception]
) -> None:
    rest(book, "BUY", 2, "49999.9")
    rest(book, "SELL", 2, "50000.1")
    before = (book.depth(), book.open_orders(), book.version)
    bad = make()
    with pytest.raises(error):
        book.plan_match(bad)
    with pytest.raises((error, InvalidInput)):
        book.add(bad)
    assert (book.depth(), book.open_orders(), book.version) == before


def test_off_lot_and_below_min() -> None:
    b = OrderBook(make_instrument(lot_size=5, min_qty=10, max_qty=1000, market_max_qty=500))
    with pytest.raises(InvalidQuantity, match="lot size 5"):
        b.plan_match(mk("BUY", 12))
    with pytest.raises(InvalidQuantity, match="minimum 10"):
        b.plan_match(mk("BUY", 5))
    assert b.plan_match(mk("BUY", 15)).action == "EXPIRE"  # no reference price yet


def test_closed_or_filled_order_refused(book: OrderBook) -> None:
    done = mk("BUY", 1, "49000.0")
    done.status = "CANCELED"
    with pytest.raises(InvalidInput, match="CANCELED"):
        book.plan_match(done)
    full = mk("BUY", 1, "49000.0")
    full.filled_contracts = 1
    with pytest.raises(InvalidQuantity, match="nothing is left"):
        book.plan_match(full)


def test_many_resting_orders_plan_touches_few_levels(book: OrderBook) -> None:
    for i in range(3000):
        rest(book, "SELL", 1, D("50010.0") + D(i % 300) * D("0.1"), account=f"u{i % 7}")
    assert len(book) == 3000
    plan = book.plan_match(mk("BUY", 35))
    assert fills_of(plan)[:3] == [
        ("50000.5", 10, None),
        ("50001.5", 10, None),
        ("50002.5", 10, None),
    ]
    assert plan.filled_contracts == 35
    assert {f.price_usd for f in plan.fills[3:]} == {D("50010.0")}
    book.apply_match(plan)
    assert len(book) == 2995


def test_fifo_follows_seq_even_if_added_out_of_order(book: OrderBook) -> None:
    late = mk("SELL", 1, "50000.2")
    early = mk("SELL", 1, "50000.2")
    early.seq = late.seq - 1
    book.add(late)
    book.add(early)
    assert book.open_orders() == [early, late]
    assert fills_of(book.plan_match(mk("BUY", 1)))[0][2] == early.order_id


# ---- property: random flows keep the book sound ------------------------------------------------


_side = st.sampled_from(["BUY", "SELL"])
_limit = st.tuples(
    st.just("limit"),
    _side,
    st.integers(-30, 30),  # price in ticks from the reference
    st.integers(1, 25),
    st.sampled_from(["GTC", "GTC", "IOC", "FOK", "GTX"]),
    st.sampled_from(["a", "b"]),
)
_op = st.one_of(
    _limit,
    _limit,  # twice: limit orders are what builds a book worth testing
    st.tuples(st.just("market"), _side, st.integers(1, 40)),
    st.tuples(st.just("cancel"), st.integers(0, 1000)),
    st.tuples(st.just("ref"), st.integers(-20, 20)),
)


def _submit(book: OrderBook, order: Order, all_fills: list[Any]) -> None:
    """What the engine does with a new order: plan, apply both sides, then rest or expire."""
    plan = book.plan_match(order)
    if plan.action == "REJECT":
        assert plan.fills == ()
        order.status = "REJECTED"
        return
    book.apply_match(plan)
    for f in plan.fills:
        order.apply_fill(f.qty_contracts, f.price_usd, D(100))
    all_fills.extend(plan.fills)
    if plan.action == "REST":
        book.add(order)
    elif plan.action == "EXPIRE":
        order.status = "EXPIRED"


def _check_invariants(book: OrderBook, orders: list[Order], all_fills: list[Any]) -> None:
    for side in (book._bids, book._asks):
        assert side.prices == sorted(set(side.prices))
        assert set(side.prices) == set(side.levels)
        for level in side.levels.values():
            assert level
            seqs = [o.seq for o in level.values()]
            assert seqs == sorted(seqs)
            assert all(o.is_open and o.remaining_contracts > 0 for o in level.values())
    bid, ask = book.crossing_levels()
    assert bid is None or ask is None or bid < ask
    filled: dict[int, int] = {}
    for f in all_fills:
        assert f.qty_contracts > 0
        for oid in (f.taker_order_id, f.maker_order_id):
            if oid is not None:
                filled[oid] = filled.get(oid, 0) + f.qty_contracts
    for o in orders:
        assert o.filled_contracts + o.remaining_contracts == o.qty_contracts
        assert o.filled_contracts == filled.get(o.order_id, 0)
        assert 0 <= o.filled_contracts <= o.qty_contracts
        assert (o.order_id in book) == (o.is_open and o.type == "LIMIT" and o.status != "REJECTED")


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_op, max_size=60))
def test_random_flows_keep_book_sorted_uncrossed_and_conserved(ops: list[tuple[Any, ...]]) -> None:
    # A wide synthetic spread leaves room inside it for users to trade with each other.
    wide = {"half_spread_ticks": 20, "levels": 3, "level_step_ticks": 10, "contracts_per_level": 10}
    book = OrderBook(make_instrument(book=wide))
    book.set_reference_price(REF)
    orders: list[Order] = []
    all_fills: list[Any] = []
    for op in ops:
        if op[0] == "limit":
            _, side, ticks, qty, tif, account = op
            o = mk(side, qty, REF + D(ticks) * D("0.1"), tif=tif, account=account)
            orders.append(o)
            _submit(book, o, all_fills)
        elif op[0] == "market":
            o = mk(op[1], op[2])
            orders.append(o)
            _submit(book, o, all_fills)
        elif op[0] == "cancel":
            resting = book.open_orders()
            if resting:
                gone = book.remove(resting[op[1] % len(resting)].order_id)
                gone.status = "CANCELED"
        else:
            book.set_reference_price(REF + D(op[1]) * D("0.5"))
            sweep = book.plan_sweep()
            book.apply_match(sweep)
            all_fills.extend(sweep.fills)
            assert book.marketable_resting() == []
        _check_invariants(book, orders, all_fills)
