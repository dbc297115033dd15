"""Orders through the engine: matching against synthetic levels and users, time in force, the
rejections (each leaving the venue unchanged), account settings, and conditional orders.

Binance BTCUSD_PERP synthetic book around 60,000: asks 60,000.1, 60,000.2, … and bids 59,999.9,
59,999.8, … (one tick apart, 2,000 contracts each, 20 levels); maker 0.02 %, taker 0.05 %.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from perpsim.sim import algo, trading
from perpsim.sim.algo import WouldTriggerImmediately
from perpsim.sim.errors import (
    DuplicateClientOrderId,
    FillOrKillUnfilled,
    InsufficientFunds,
    InvalidInput,
    InvalidState,
    LeverageTooHigh,
    MarginModeAlreadySet,
    MarginModeChangeRejected,
    OrderNotFound,
    PositionTooLargeForLeverage,
    PostOnlyWouldTake,
    ReduceOnlyRejected,
)
from perpsim.sim.exchange import Exchange
from perpsim.sim.ledger import fees_account, isolated_account, wallet_account
from perpsim.sim.money import quantize
from perpsim.sim.orders import FOK_UNFILLED, IOC_UNFILLED, POST_ONLY_WOULD_TAKE, Order
from perpsim.sim.risk import position_risk

from engine_helpers import (
    BTC,
    HOUR_MS,
    MINUTE_MS,
    T0,
    assert_rejected,
    check_invariants,
    fr,
    fund,
    make_exchange,
    of_type,
    profile,
    profile_with,
    q,
    snapshot,
    types,
)

TAKER = Fraction(5, 10_000)
MAKER = Fraction(2, 10_000)


def _fee(qty: int, price: str, rate: Fraction) -> Decimal:
    return q(Fraction(qty * 100) / fr(price) * rate)


def _venue(balance: str = "10") -> tuple[Exchange, str]:
    ex = make_exchange()
    ex.advance(MINUTE_MS)  # off the 00:00 funding instant
    return ex, fund(ex, balance)


def _trades(ex: Exchange, order_id: int) -> list[tuple[int, Decimal, Decimal, bool]]:
    return [(e.payload["last_qty"], Decimal(e.payload["last_price"]),
             Decimal(e.payload["commission"]), e.payload["maker"])
            for e in of_type(ex.journal, "order.update")
            if e.payload["order_id"] == order_id and e.payload["execution"] == "TRADE"]


# ---- matching ---------------------------------------------------------------------------------

def test_market_buy_walks_the_synthetic_levels_and_averages_harmonically() -> None:
    ex, a = _venue()
    order = trading.place_order(ex, a, BTC, "BUY", "MARKET", 5_000)
    assert order.status == "FILLED"
    assert [(qty, p) for qty, p, _, _ in _trades(ex, order.order_id)] == [
        (2_000, Decimal("60000.1")), (2_000, Decimal("60000.2")), (1_000, Decimal("60000.3"))]
    coin = Fraction(2_000, 1) / fr("60000.1") + Fraction(2_000) / fr("60000.2") + \
        Fraction(1_000) / fr("60000.3")
    harmonic = Fraction(5_000) / coin
    arithmetic = (2_000 * fr("60000.1") + 2_000 * fr("60000.2") + 1_000 * fr("60000.3")) / 5_000
    assert harmonic != arithmetic
    avg = order.avg_price_usd(Decimal(100))
    assert avg is not None
    assert abs(fr(avg) - harmonic) < Fraction(1, 10**18)
    entry = ex.position(a, BTC).entry_price_usd
    assert entry is not None
    assert abs(fr(entry) - harmonic) < Fraction(1, 10**18)
    # Each fill pays the taker fee on its own value, quantised.
    fees = [_fee(2_000, "60000.1", TAKER), _fee(2_000, "60000.2", TAKER),
            _fee(1_000, "60000.3", TAKER)]
    assert [f for _, _, f, _ in _trades(ex, order.order_id)] == fees
    assert ex.wallet_balance(a, "BTC") == Decimal(10) - sum(fees)
    assert ex.ledger.balance(fees_account("BTC")) == sum(fees)
    assert ex.last_price(BTC) == Decimal("60000.3")
    check_invariants(ex)


def test_market_sell_walks_the_bids() -> None:
    ex, a = _venue()
    order = trading.place_order(ex, a, BTC, "SELL", "MARKET", 4_001)
    assert [(qty, p) for qty, p, _, _ in _trades(ex, order.order_id)] == [
        (2_000, Decimal("59999.9")), (2_000, Decimal("59999.8")), (1, Decimal("59999.7"))]
    assert ex.position(a, BTC).qty_contracts == -4_001


def test_market_order_larger_than_the_synthetic_depth_expires_the_rest() -> None:
    ex, a = _venue()
    ex.set_leverage(a, BTC, 10)
    order = trading.place_order(ex, a, BTC, "BUY", "MARKET", 45_000)
    assert order.status == "EXPIRED"
    assert order.filled_contracts == 40_000  # 20 levels × 2,000
    assert ex.position(a, BTC).qty_contracts == 40_000
    last = of_type(ex.journal, "order.update")[-1]
    assert (last.payload["execution"], last.payload["filled"]) == ("EXPIRED", 40_000)


def test_resting_gtc_limit_fills_as_maker_when_a_price_move_brings_the_quotes_to_it() -> None:
    ex, a = _venue("1")
    order = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 100, "59000")
    assert order.status == "NEW"
    assert ex.books[BTC].get(order.order_id) is order
    assert ex.wallet_balance(a, "BTC") == 1  # cross: margin is reserved, not moved
    ex.set_prices(BTC, "59000.1")  # synthetic ask 59,000.2: not yet
    ex.set_prices(BTC, "59000")  # ask 59,000.1: still above the bid
    assert order.status == "NEW"
    events = ex.set_prices(BTC, "58999.9")  # ask 59,000.0: reaches it
    assert types(events)[:2] == ["prices.set", "order.update"]
    assert order.status == "FILLED"
    fee = _fee(100, "59000", MAKER)
    assert fee == Decimal("0.00003390")
    assert _trades(ex, order.order_id) == [(100, Decimal("59000"), fee, True)]
    pos = ex.position(a, BTC)
    assert (pos.qty_contracts, pos.entry_price_usd) == (100, Decimal("59000"))
    assert ex.wallet_balance(a, "BTC") == 1 - fee
    assert ex.books[BTC].get(order.order_id) is None
    check_invariants(ex)


def test_isolated_limit_fill_moves_its_initial_margin_into_the_isolated_account() -> None:
    ex, a = _venue("1")
    ex.set_margin_mode(a, BTC, "isolated")
    ex.set_leverage(a, BTC, 10)
    trading.place_order(ex, a, BTC, "SELL", "LIMIT", 100, "61000")
    ex.set_prices(BTC, "61000.1")  # synthetic bid 61,000.0 reaches the ask
    im = q(Fraction(10_000) / 61_000 / 10, "up")
    fee = _fee(100, "61000", MAKER)
    assert ex.isolated_wallet(a, BTC) == im == Decimal("0.01639345")
    assert ex.wallet_balance(a, "BTC") == 1 - im - fee


def test_users_match_each_other_maker_and_taker_fees() -> None:
    ex, maker = _venue("1")
    taker = fund(ex, "1")
    resting = trading.place_order(ex, maker, BTC, "SELL", "LIMIT", 100, "60000")
    # Inside the synthetic spread: it rests and becomes the best ask.
    assert ex.books[BTC].best_ask() == Decimal("60000")
    market = trading.place_order(ex, taker, BTC, "BUY", "MARKET", 100)
    maker_fee, taker_fee = _fee(100, "60000", MAKER), _fee(100, "60000", TAKER)
    assert (maker_fee, taker_fee) == (Decimal("0.00003333"), Decimal("0.00008333"))
    assert _trades(ex, resting.order_id) == [(100, Decimal("60000"), maker_fee, True)]
    assert _trades(ex, market.order_id) == [(100, Decimal("60000"), taker_fee, False)]
    assert ex.position(maker, BTC).qty_contracts == -100
    assert ex.position(taker, BTC).qty_contracts == 100
    assert ex.position(maker, BTC).entry_price_usd == ex.position(taker, BTC).entry_price_usd \
        == Decimal("60000")
    assert ex.wallet_balance(maker, "BTC") == 1 - maker_fee
    assert ex.wallet_balance(taker, "BTC") == 1 - taker_fee
    assert ex.ledger.balance(fees_account("BTC")) == maker_fee + taker_fee
    assert ex.states[BTC].trades[-1].price_usd == Decimal("60000")
    check_invariants(ex)


def test_users_fill_before_the_synthetic_maker_at_the_same_price() -> None:
    ex, maker = _venue("1")
    taker = fund(ex, "1")
    resting = trading.place_order(ex, maker, BTC, "SELL", "LIMIT", 50, "60000.1")
    market = trading.place_order(ex, taker, BTC, "BUY", "MARKET", 120)
    fills = _trades(ex, market.order_id)
    assert [(qty, p) for qty, p, _, _ in fills] == [(50, Decimal("60000.1")),
                                                    (70, Decimal("60000.1"))]
    assert resting.status == "FILLED"


# ---- time in force ----------------------------------------------------------------------------

def test_post_only_that_would_take_is_rejected_and_changes_nothing() -> None:
    ex, a = _venue()
    assert_rejected(ex, PostOnlyWouldTake, trading.place_order, ex, a, BTC, "BUY", "LIMIT", 10,
                    "60000.1", time_in_force="GTX")
    assert_rejected(ex, PostOnlyWouldTake, trading.place_order, ex, a, BTC, "SELL", "LIMIT", 10,
                    "59999.9", time_in_force="GTX")
    ok = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 10, "60000", time_in_force="GTX")
    assert ok.status == "NEW"
    assert ex.books[BTC].best_bid() == Decimal("60000")


def test_fill_or_kill_that_cannot_fill_is_rejected_and_changes_nothing() -> None:
    ex, a = _venue()
    # Up to 60,000.2 the book holds 2 × 2,000 contracts.
    assert_rejected(ex, FillOrKillUnfilled, trading.place_order, ex, a, BTC, "BUY", "LIMIT",
                    4_001, "60000.2", time_in_force="FOK")
    order = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 4_000, "60000.2", time_in_force="FOK")
    assert (order.status, order.filled_contracts) == ("FILLED", 4_000)


def test_ioc_fills_what_it_can_and_expires_the_rest() -> None:
    ex, a = _venue()
    order = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 5_000, "60000.2",
                                time_in_force="IOC")
    assert (order.status, order.filled_contracts) == ("EXPIRED", 4_000)
    assert ex.position(a, BTC).qty_contracts == 4_000
    assert len(ex.books[BTC]) == 0
    updates = [e.payload["execution"] for e in of_type(ex.journal, "order.update")]
    assert updates == ["NEW", "TRADE", "TRADE", "EXPIRED"]


def test_gtc_remainder_rests_after_taking_what_crosses() -> None:
    ex, a = _venue()
    order = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 2_500, "60000.1")
    assert (order.status, order.filled_contracts) == ("PARTIALLY_FILLED", 2_000)
    assert ex.books[BTC].get(order.order_id) is order


# ---- rejections -------------------------------------------------------------------------------

def test_reduce_only_that_would_open_or_increase_is_rejected() -> None:
    ex, a = _venue()
    assert_rejected(ex, ReduceOnlyRejected, trading.place_order, ex, a, BTC, "SELL", "MARKET",
                    10, reduce_only=True)
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    assert_rejected(ex, ReduceOnlyRejected, trading.place_order, ex, a, BTC, "BUY", "MARKET",
                    10, reduce_only=True)
    assert_rejected(ex, ReduceOnlyRejected, trading.place_order, ex, a, BTC, "SELL", "MARKET",
                    101, reduce_only=True)
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 100, reduce_only=True)
    assert ex.position(a, BTC).qty_contracts == 0


def test_insufficient_margin_is_rejected_with_everything_unchanged() -> None:
    ex, a = _venue("0.01")
    other = fund(ex, "1")
    trading.place_order(ex, other, BTC, "SELL", "LIMIT", 10, "61000")
    # 1,000 contracts = 100,000 USD ≈ 1.667 BTC; at 20x that needs ≈ 0.0833 BTC.
    assert_rejected(ex, InsufficientFunds, trading.place_order, ex, a, BTC, "BUY", "MARKET",
                    1_000)
    assert_rejected(ex, InsufficientFunds, trading.place_order, ex, a, BTC, "BUY", "LIMIT",
                    1_000, "59000")
    assert ex.position(a, BTC).qty_contracts == 0
    # What fits does go through: 100 contracts need 0.00833 + fee.
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    assert ex.position(a, BTC).qty_contracts == 100


def test_a_rejected_order_leaves_no_trace_in_later_events() -> None:
    def run(with_rejection: bool) -> str:
        ex, a = _venue("0.01")
        if with_rejection:
            with pytest.raises(InsufficientFunds):
                trading.place_order(ex, a, BTC, "BUY", "MARKET", 1_000)
        trading.place_order(ex, a, BTC, "BUY", "MARKET", 10)
        return ex.journal.to_jsonl()

    assert run(True) == run(False)


def test_duplicate_client_order_id_among_open_orders_is_rejected() -> None:
    ex, a = _venue()
    b = fund(ex, "1")
    first = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 10, "59000", client_order_id="x-1")
    assert_rejected(ex, DuplicateClientOrderId, trading.place_order, ex, a, BTC, "BUY", "LIMIT",
                    10, "58000", client_order_id="x-1")
    # Another account may use the same id; after a cancel the id is free again.
    trading.place_order(ex, b, BTC, "BUY", "LIMIT", 10, "58000", client_order_id="x-1")
    trading.cancel_order(ex, a, BTC, client_order_id="x-1")
    assert first.status == "CANCELED"
    again = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 10, "58000", client_order_id="x-1")
    assert again.status == "NEW"


def test_cancelling_another_accounts_order_is_order_not_found() -> None:
    ex, a = _venue()
    b = fund(ex, "1")
    order = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 10, "59000", client_order_id="mine")
    assert_rejected(ex, OrderNotFound, trading.cancel_order, ex, b, BTC, order.order_id)
    assert_rejected(ex, OrderNotFound, trading.cancel_order, ex, b, BTC, client_order_id="mine")
    assert_rejected(ex, OrderNotFound, trading.cancel_order, ex, a, BTC, 999)
    assert order.status == "NEW"
    trading.cancel_order(ex, a, BTC, order.order_id)
    assert order.status == "CANCELED"
    assert_rejected(ex, OrderNotFound, trading.cancel_order, ex, a, BTC, order.order_id)


def test_leverage_above_the_bracket_cap_is_rejected() -> None:
    ex, a = _venue()
    assert_rejected(ex, LeverageTooHigh, ex.set_leverage, a, BTC, 126)
    ex.set_leverage(a, BTC, 125)
    assert ex.position(a, BTC).leverage == 125
    # 3,600 contracts at 60,000 are worth 6 BTC: bracket 2 (5–10 BTC), capped at 100x; the
    # order is what is too large (Binance -2027), not the leverage setting.
    assert_rejected(ex, PositionTooLargeForLeverage, trading.place_order, ex, a, BTC, "BUY",
                    "MARKET", 3_600)
    ex.set_leverage(a, BTC, 100)
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 3_600)
    assert_rejected(ex, LeverageTooHigh, ex.set_leverage, a, BTC, 101)
    assert ex.position(a, BTC).leverage == 100
    assert_rejected(ex, InvalidInput, ex.set_leverage, a, BTC, 2.5)


def test_margin_mode_changes() -> None:
    ex, a = _venue()
    assert_rejected(ex, MarginModeAlreadySet, ex.set_margin_mode, a, BTC, "cross")
    ex.set_margin_mode(a, BTC, "isolated")
    assert_rejected(ex, MarginModeAlreadySet, ex.set_margin_mode, a, BTC, "isolated")
    order = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 10, "59000")
    assert_rejected(ex, MarginModeChangeRejected, ex.set_margin_mode, a, BTC, "cross")
    trading.cancel_order(ex, a, BTC, order.order_id)
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 10)
    assert_rejected(ex, MarginModeChangeRejected, ex.set_margin_mode, a, BTC, "cross")
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 10, reduce_only=True)
    ex.set_margin_mode(a, BTC, "cross")
    assert ex.position(a, BTC).margin_mode == "cross"
    assert_rejected(ex, InvalidInput, ex.set_margin_mode, a, BTC, "CROSSED")


def test_add_and_remove_isolated_margin_move_exactly_that_amount() -> None:
    ex, a = _venue("1")
    assert_rejected(ex, InvalidInput, ex.adjust_isolated_margin, a, BTC, "0.1", add=True)
    ex.set_margin_mode(a, BTC, "isolated")
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    iso, wallet = ex.isolated_wallet(a, BTC), ex.wallet_balance(a, "BTC")
    assert ex.adjust_isolated_margin(a, BTC, "0.12345678", add=True) == iso + Decimal(
        "0.12345678")
    assert ex.isolated_wallet(a, BTC) == iso + Decimal("0.12345678")
    assert ex.wallet_balance(a, "BTC") == wallet - Decimal("0.12345678")
    ex.adjust_isolated_margin(a, BTC, "0.1", add=False)
    assert ex.isolated_wallet(a, BTC) == iso + Decimal("0.02345678")
    assert ex.wallet_balance(a, "BTC") == wallet - Decimal("0.02345678")
    transfer = of_type(ex.journal, "margin.transfer")[-1]
    assert Decimal(transfer.payload["amount"]) == Decimal("-0.1")
    # More than the wallet can give, more than the position can spare, finer than a satoshi.
    assert_rejected(ex, InsufficientFunds, ex.adjust_isolated_margin, a, BTC, "5", add=True)
    assert_rejected(ex, InsufficientFunds, ex.adjust_isolated_margin, a, BTC, "0.03",
                    add=False)
    assert_rejected(ex, InvalidInput, ex.adjust_isolated_margin, a, BTC, "0.000000001",
                    add=True)
    assert_rejected(ex, InvalidInput, ex.adjust_isolated_margin, a, BTC, "-1", add=True)
    check_invariants(ex)


def test_isolated_margin_add_changes_the_liquidation_price() -> None:
    from perpsim.sim.risk import position_risk

    ex, a = _venue("1")
    ex.set_margin_mode(a, BTC, "isolated")
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    before = position_risk(ex, a, BTC).liquidation_price_usd
    ex.adjust_isolated_margin(a, BTC, "0.01", add=True)
    after = position_risk(ex, a, BTC).liquidation_price_usd
    assert before is not None
    assert after is not None
    assert after < before


# ---- conditional orders -----------------------------------------------------------------------

def test_stop_market_on_mark_fires_when_the_mark_crosses_and_places_a_market_order() -> None:
    ex, a = _venue("1")
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    ex.advance(1)
    stop = algo.place_algo(ex, a, BTC, "SELL", "STOP_MARKET", 100, "58000",
                           working_type="MARK_PRICE", reduce_only=True)
    assert ex.set_prices(BTC, "58000.1")[1:] == []
    assert stop.status == "NEW"
    events = ex.set_prices(BTC, "58000")
    assert ex.mark_price(BTC) == Decimal("58000")
    assert stop.status == "TRIGGERED"
    assert stop.order_id is not None
    placed = ex.orders[stop.order_id]
    assert (placed.type, placed.side, placed.reduce_only) == ("MARKET", "SELL", True)
    assert _trades(ex, placed.order_id)[0][:2] == (100, Decimal("57999.9"))
    assert types(events) == ["prices.set", "order.update", "order.update", "algo.update"]
    assert ex.position(a, BTC).qty_contracts == 0
    check_invariants(ex)


def test_take_profit_on_contract_price() -> None:
    ex, a = _venue("1")
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 100)
    ex.advance(1)
    tp = algo.place_algo(ex, a, BTC, "BUY", "TAKE_PROFIT_MARKET", 100, "55000",
                         working_type="CONTRACT_PRICE", reduce_only=True)
    ex.set_prices(BTC, "55000.1")
    assert tp.status == "NEW"
    ex.advance(1)
    ex.set_prices(BTC, "55000")  # the book's centre, the contract price, reaches 55,000
    assert tp.status == "TRIGGERED"
    assert tp.order_id is not None
    assert _trades(ex, tp.order_id)[0][:2] == (100, Decimal("55000.1"))
    assert ex.position(a, BTC).qty_contracts == 0
    # Sold at 59,999.9, bought back at 55,000.1: PnL 10,000·(1/55,000.1 − 1/59,999.9).
    pnl = q(10_000 * (1 / fr("55000.1") - 1 / fr("59999.9")))
    fees = _fee(100, "59999.9", TAKER) + _fee(100, "55000.1", TAKER)
    assert pnl == Decimal("0.01515091")
    assert ex.wallet_balance(a, "BTC") == 1 + pnl - fees


def test_take_profit_fires_on_a_move_in_the_same_ms_as_the_opening_fill() -> None:
    """The price a fill printed at T is not the last price any more once the market moves at
    T: the contract price is the moved one and the take-profit fires."""
    ex, a = _venue("1")
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    tp = algo.place_algo(ex, a, BTC, "SELL", "TAKE_PROFIT_MARKET", 100, "62000",
                         working_type="CONTRACT_PRICE", reduce_only=True)
    ex.set_prices(BTC, "62000")
    assert tp.status == "TRIGGERED"
    assert tp.order_id is not None
    assert _trades(ex, tp.order_id)[0][:2] == (100, Decimal("61999.9"))
    assert ex.position(a, BTC).qty_contracts == 0


def test_a_conditional_order_that_would_trigger_at_once_is_rejected() -> None:
    ex, a = _venue("1")
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    assert_rejected(ex, WouldTriggerImmediately, algo.place_algo, ex, a, BTC, "SELL",
                    "STOP_MARKET", 100, "60000", working_type="MARK_PRICE")
    assert_rejected(ex, WouldTriggerImmediately, algo.place_algo, ex, a, BTC, "SELL",
                    "TAKE_PROFIT_MARKET", 100, "59000", working_type="CONTRACT_PRICE")
    assert ex.algo_orders == {}


def test_cancelled_stop_never_fires() -> None:
    ex, a = _venue("1")
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    stop = algo.place_algo(ex, a, BTC, "SELL", "STOP_MARKET", 100, "58000",
                           working_type="MARK_PRICE")
    other = fund(ex, "1")
    assert_rejected(ex, OrderNotFound, algo.cancel_algo, ex, other, stop.algo_id)
    algo.cancel_algo(ex, a, stop.algo_id)
    ex.set_prices(BTC, "57000")
    assert stop.status == "CANCELED"
    assert ex.position(a, BTC).qty_contracts == 100


def test_stop_on_a_scenario_fires_at_the_first_instant_the_mark_crosses() -> None:
    """The watcher jumps to the crossing: not a moment before it, nor after."""
    def venue() -> tuple[Exchange, str, algo.AlgoOrder]:
        ex = make_exchange(scenario="crash", scenario_seed=3)
        a = fund(ex, "1")
        trading.place_order(ex, a, BTC, "BUY", "MARKET", 10)
        trigger = quantize(ex.mark_price(BTC) * Decimal("0.85"), Decimal("0.1"))
        stop = algo.place_algo(ex, a, BTC, "SELL", "STOP_MARKET", 10, trigger,
                               working_type="MARK_PRICE", reduce_only=True)
        return ex, a, stop

    ex, _, stop = venue()
    ex.advance_until(ex.scenario.end_ms or 0)
    assert stop.status == "TRIGGERED"
    fired = stop.updated_ms
    assert T0 + 24 * HOUR_MS < fired < T0 + 27 * HOUR_MS  # during the crash
    again, _, stop2 = venue()
    again.advance_until(fired - 1)
    assert stop2.status == "NEW"
    assert again.mark_price(BTC) > stop2.trigger_price_usd
    again.advance(1)
    assert stop2.status == "TRIGGERED"
    assert again.mark_price(BTC) <= stop2.trigger_price_usd
    # Stopping on the way changes nothing: the events up to the crossing are the same.
    assert [e.to_json() for e in again.journal] == [
        e.to_json() for e in ex.journal if e.time_ms <= fired]
    check_invariants(ex)


def test_positions_and_balances_after_a_round_trip() -> None:
    ex, a = _venue("1")
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)  # at 60,000.1
    ex.advance(1)
    ex.set_prices(BTC, "66000")
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 100)  # at 65,999.9
    pnl = q(10_000 * (1 / fr("60000.1") - 1 / fr("65999.9")))
    fees = _fee(100, "60000.1", TAKER) + _fee(100, "65999.9", TAKER)
    assert ex.wallet_balance(a, "BTC") == 1 + pnl - fees
    assert ex.position(a, BTC).qty_contracts == 0
    assert ex.ledger.balance(wallet_account(a, "BTC")) == 1 + pnl - fees
    assert ex.ledger.balance(isolated_account(a, BTC)) == 0


def test_resting_limit_on_a_scenario_fills_at_the_first_instant_the_quotes_reach_it() -> None:
    def venue() -> tuple[Exchange, Order]:
        ex = make_exchange(scenario="crash", scenario_seed=3)
        a = fund(ex, "1")
        limit = quantize(ex.mark_price(BTC) * Decimal("0.8"), Decimal("0.1"))
        return ex, trading.place_order(ex, a, BTC, "BUY", "LIMIT", 10, limit)

    ex, order = venue()
    ex.advance_until(ex.scenario.end_ms or 0)
    assert order.status == "FILLED"
    [trade] = [e for e in of_type(ex.journal, "order.update")
               if e.payload["order_id"] == order.order_id and e.payload["execution"] == "TRADE"]
    assert trade.payload["maker"] is True
    assert Decimal(trade.payload["last_price"]) == order.price_usd
    again, order2 = venue()
    again.advance_until(trade.time_ms - 1)
    assert order2.status == "NEW"
    ask, limit = again.books[BTC].best_ask(), order2.price_usd
    assert ask is not None
    assert limit is not None
    assert ask > limit  # the synthetic ask was still above the bid a millisecond before
    again.advance(1)
    assert order2.status == "FILLED"


def test_prices_cannot_be_set_by_hand_on_a_scenario_that_drives_them() -> None:
    ex = make_exchange(scenario="calm")
    fund(ex, "1")
    assert_rejected(ex, InvalidState, ex.set_prices, BTC, "50000")


def test_a_symbol_the_scenario_has_no_prices_for_cannot_trade() -> None:
    ex = make_exchange(scenario="calm")  # BTCUSD only
    a = ex.create_account({"ETH": "10"}).account_id
    assert_rejected(ex, InvalidState, trading.place_order, ex, a, "ETHUSD_PERP", "BUY",
                    "MARKET", 1)


def test_trading_eth_without_eth_is_insufficient_funds() -> None:
    ex, a = _venue("10")  # BTC only
    assert_rejected(ex, InsufficientFunds, trading.place_order, ex, a, "ETHUSD_PERP", "BUY",
                    "MARKET", 1)


def test_isolated_partial_close_leaves_the_rest_its_share_of_margin() -> None:
    """Closing 2/3 of an isolated short at a loss: the 1/3 left keeps 1/3 of the margin it had,
    so its liquidation price does not move (the closed part leaves with its own loss)."""
    ex = make_exchange()
    a = fund(ex, "2", mode="isolated", leverage=5)
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 3000)
    ex.adjust_isolated_margin(a, BTC, "0.9", add=True)
    ex.advance(1)
    ex.set_prices(BTC, "70000")
    margin_before = ex.isolated_wallet(a, BTC)
    liq_before = position_risk(ex, a, BTC).liquidation_price_usd
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 2000, reduce_only=True)
    assert ex.isolated_wallet(a, BTC) == quantize(margin_before / 3, Decimal("1e-8"), "up")
    liq_after = position_risk(ex, a, BTC).liquidation_price_usd
    assert liq_before is not None
    assert liq_after is not None
    assert abs(liq_after - liq_before) < Decimal("0.01")
    check_invariants(ex)


# ---- unfillable_tif "cancel" (Bybit): accepted, then cancelled at once ---------------------------

@pytest.mark.parametrize(("side", "qty", "price", "tif", "reason"), [
    ("BUY", 10, "60000.1", "GTX", POST_ONLY_WOULD_TAKE),
    ("SELL", 10, "59999.9", "GTX", POST_ONLY_WOULD_TAKE),
    ("BUY", 4_001, "60000.2", "FOK", FOK_UNFILLED),  # the book holds 4,000 up to 60,000.2
])
def test_a_cancel_venue_accepts_the_unfillable_order_and_cancels_it_changing_no_coin(
        side: str, qty: int, price: str, tif: str, reason: str) -> None:
    ex = make_exchange(profile_with(unfillable_tif="cancel"))
    ex.advance(MINUTE_MS)
    a = fund(ex, "10")
    before = snapshot(ex)
    book_before = ex.refresh_book(BTC).depth(5)
    order = trading.place_order(ex, a, BTC, side, "LIMIT", qty, price, time_in_force=tif)
    assert (order.status, order.filled_contracts, order.cancel_reason) == ("EXPIRED", 0, reason)
    assert ex.orders[order.order_id] is order
    assert not order.is_open
    after = snapshot(ex)
    assert (after.balances, after.postings, after.positions) == (
        before.balances, before.postings, before.positions)
    assert ex.refresh_book(BTC).depth(5) == book_before  # nothing rests, nothing was taken
    events = [e.payload for e in of_type(ex.journal, "order.update")
              if e.payload["order_id"] == order.order_id]
    assert [(e["execution"], e.get("cancel_reason")) for e in events] == [
        ("NEW", None), ("EXPIRED", reason)]
    check_invariants(ex)


def test_a_cancel_venue_still_refuses_what_fails_the_other_checks() -> None:
    ex = make_exchange(profile_with(unfillable_tif="cancel"))
    ex.advance(MINUTE_MS)
    a = fund(ex, "0.00001")
    assert_rejected(ex, InsufficientFunds, trading.place_order, ex, a, BTC, "BUY", "LIMIT",
                    1_000, "60000.1", time_in_force="GTX")
    assert_rejected(ex, ReduceOnlyRejected, trading.place_order, ex, a, BTC, "SELL", "LIMIT",
                    10, "59999.9", time_in_force="GTX", reduce_only=True)


def test_an_ioc_with_nothing_to_fill_is_cancelled_with_its_reason() -> None:
    ex, a = _venue()
    nothing = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 10, "59000", time_in_force="IOC")
    assert (nothing.status, nothing.cancel_reason) == ("EXPIRED", IOC_UNFILLED)
    part = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 5_000, "60000.2",
                               time_in_force="IOC")
    assert (part.status, part.filled_contracts, part.cancel_reason) == ("EXPIRED", 4_000, "")


def test_the_cancel_reasons_are_the_codes_of_the_errors_a_reject_venue_raises() -> None:
    assert (PostOnlyWouldTake.code, FillOrKillUnfilled.code) == (POST_ONLY_WOULD_TAKE,
                                                                  FOK_UNFILLED)
    assert profile("binance_coinm").unfillable_tif == "reject"
    assert profile("bybit_inverse").unfillable_tif == "cancel"
