"""Random sessions against the engine: whatever a client does, the books stay right.

Each example is a random sequence of orders (market/limit, any side and size, including invalid
ones), manual price moves (±30 %), time jumps (up to 2 days), leverage and margin-mode changes,
isolated margin transfers and cancels on a manual-scenario venue. After every step: the ledger is
conserved (replayed from its postings), no wallet / isolated / insurance / fee balance is
negative, the journal is numbered 1, 2, 3… with times never going back, and a call the venue
rejected left everything — journal, balances, positions, orders — exactly as it was.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim import trading
from perpsim.sim.errors import (
    InsufficientFunds,
    InvalidInput,
    MarginModeAlreadySet,
    MarginModeChangeRejected,
    OrderNotFound,
    OrderRejected,
)
from perpsim.sim.exchange import Exchange
from perpsim.sim.money import quantize
from perpsim.sim.profile import Profile

from engine_helpers import (
    BTC,
    BYBIT_BTC,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    XBT,
    XBT_PRICES,
    check_invariants,
    fund,
    make_exchange,
    profile,
    snapshot,
)

# What a client may legitimately be told "no" with. Anything else (LedgerError, InvalidState,
# RuntimeError, ...) escaping a call is a bug and fails the test.
REJECTIONS = (InvalidInput, InsufficientFunds, OrderRejected, OrderNotFound,
              MarginModeAlreadySet, MarginModeChangeRejected)

TICK = Decimal("0.1")

def _profile() -> Profile:
    # The real clearance fee: a step-down whose fee a bankrupt account cannot pay must still
    # complete (test_engine_liquidation.py::test_cross_step_down_past_bankruptcy_completes).
    return profile()

def _mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any],
            weight: int = 6) -> st.SearchStrategy[Any]:
    """``valid`` about ``weight`` times as often as ``invalid``."""
    # (one_of of the same strategy repeated would not weight it: the branches are merged; and
    # hypothesis favours the first element of a sampled_from, so the valid branch comes first.)
    return st.sampled_from([True] * weight + [False]).flatmap(
        lambda ok: valid if ok else invalid)


accounts = st.integers(0, 2)
quantities = _mostly(st.one_of(st.sampled_from([600, 1_000, 2_000, 3_000, 5_000]),
                               st.integers(1, 3_000), st.integers(3_000, 70_000)),
                     st.sampled_from([0, -5, 1.5, "12", "abc", None, 10**9, True]))
offsets = _mostly(st.integers(-300, 300), st.sampled_from(["-1", "0", "0.05", "nan", None]))
sides = _mostly(st.sampled_from(["BUY", "SELL"]), st.just("HOLD"))
order_types = _mostly(st.sampled_from(["MARKET", "LIMIT"]), st.just("STOP"))
tifs = _mostly(st.sampled_from([None, "GTC", "IOC", "FOK", "GTX"]), st.just("DAY"))
orders = st.tuples(st.just("order"), accounts, sides, order_types, quantities, offsets, tifs,
                   _mostly(st.just(False), st.just(True), 3))
moves = st.tuples(st.just("price"),
                  st.one_of(st.sampled_from([-0.3, -0.2, -0.1, -0.05, 0.05, 0.1, 0.2, 0.3]),
                            st.floats(-0.3, 0.3)),
                  st.one_of(st.just(0.0), st.floats(-0.01, 0.01)))
jumps = st.tuples(st.just("advance"), _mostly(
    st.one_of(st.integers(0, 2 * DAY_MS), st.integers(0, 10 * MINUTE_MS),
              st.just("next_funding")),
    st.sampled_from([-1, 1.5, True])))
leverages = st.tuples(st.just("leverage"), accounts,
                      _mostly(st.integers(1, 125), st.sampled_from([0, 130, "3", 2.5, None])))
modes = st.tuples(st.just("mode"), accounts,
                  _mostly(st.sampled_from(["cross", "isolated"]), st.just("ISOLATED")))
transfers = st.tuples(st.just("margin"), accounts,
                      _mostly(st.sampled_from(["0.001", "0.01", "0.5", "3"]),
                              st.sampled_from(["0.000000001", "-1", "0"])),
                      st.booleans())
cancels = st.tuples(st.just("cancel"), accounts, st.integers(0, 10))
steps = st.lists(st.one_of(orders, orders, orders, moves, moves, jumps, leverages, modes,
                           transfers, cancels), min_size=3, max_size=30)


def _price_from(ex: Exchange, offset: object) -> object:
    if not isinstance(offset, int):
        return offset
    return ex.mark_price(BTC).quantize(TICK) + offset * 10 * TICK


def _apply(ex: Exchange, ids: list[str], step: tuple[Any, ...]) -> None:
    kind = step[0]
    if kind == "order":
        _, who, side, order_type, qty, offset, tif, reduce_only = step
        price = None if order_type == "MARKET" else _price_from(ex, offset)
        trading.place_order(ex, ids[who], BTC, side, order_type, qty, price,
                            time_in_force=tif, reduce_only=reduce_only)
    elif kind == "price":
        _, move, basis = step
        index = ex.index_price(BTC) * Decimal(repr(1 + move))
        index = min(max(quantize(index, TICK), Decimal(5_000)), Decimal(500_000))
        perp = quantize(index * Decimal(repr(1 + basis)), TICK)
        ex.set_prices(BTC, index, perp)
    elif kind == "advance":
        ms = step[1]
        if ms == "next_funding":
            target = ex.next_funding_time_ms(BTC)
            assert target is not None
            ex.advance_until(target)
            assert ex.now_ms == target
        else:
            before = ex.now_ms
            ex.advance(ms)
            assert ex.now_ms == before + ms
    elif kind == "leverage":
        ex.set_leverage(ids[step[1]], BTC, step[2])
    elif kind == "mode":
        ex.set_margin_mode(ids[step[1]], BTC, step[2])
    elif kind == "margin":
        ex.adjust_isolated_margin(ids[step[1]], BTC, step[2], add=step[3])
    elif kind == "cancel":
        # The n-th open order of anyone: sometimes the caller's own, sometimes another's.
        open_ids = [o.order_id for o in ex.books[BTC].open_orders()]
        order_id = open_ids[step[2] % len(open_ids)] if open_ids else step[2]
        trading.cancel_order(ex, ids[step[1]], BTC, order_id)
    else:  # pragma: no cover - the strategies above list every kind
        raise AssertionError(kind)


@settings(deadline=None, max_examples=examples(60), suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), steps)
def test_random_sessions_keep_the_books_right(start_with_positions: bool,
                                              session: list[tuple[Any, ...]]) -> None:
    ex = make_exchange(_profile())
    ex.advance(MINUTE_MS)
    ids = [fund(ex, amount) for amount in ("0.05", "1", "5")]
    if start_with_positions:  # so that random moves have something to liquidate
        ex.set_margin_mode(ids[0], BTC, "isolated")
        trading.place_order(ex, ids[0], BTC, "BUY", "MARKET", 500)  # 20x, ≈ 0.83 BTC
        trading.place_order(ex, ids[1], BTC, "SELL", "MARKET", 2_000)  # 20x cross
        trading.place_order(ex, ids[2], BTC, "BUY", "LIMIT", 1_000, "57000")
    check_invariants(ex)
    deposits = ex.ledger.deposits("BTC")
    assert deposits == Decimal("106.05")  # 6.05 from the users, 100 in the insurance fund
    start_ms = ex.now_ms
    for step in session:
        before = snapshot(ex)
        try:
            _apply(ex, ids, step)
        except REJECTIONS:
            assert snapshot(ex) == before, step
        check_invariants(ex)
        assert ex.ledger.total("BTC") == deposits
    assert ex.now_ms >= start_ms


VENUES = {  # profile → (symbol, manual start prices, contract size USD, max contracts)
    "binance_coinm": (BTC, None, 100, 2_900),  # under 5 BTC: bracket 1, every leverage allowed
    "bybit_inverse": (BYBIT_BTC, None, 1, 1_000_000),
    "bitmex_xbtusd": (XBT, XBT_PRICES, 1, 3_000_000),
}


def _venue(name: str) -> Exchange:
    prof = _profile() if name == "binance_coinm" else profile(name)
    return make_exchange(prof, manual_prices=VENUES[name][1])


def _move(ex: Exchange, symbol: str, move: float) -> None:
    tick = ex.instrument(symbol).tick_size
    index = quantize(ex.index_price(symbol) * Decimal(repr(1 + move)), tick)
    ex.set_prices(symbol, min(max(index, Decimal(5_000)), Decimal(500_000)))


@settings(deadline=None, max_examples=examples(40), suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(VENUES)),
       st.lists(st.tuples(st.floats(-0.3, 0.3), st.integers(0, 12 * HOUR_MS)), min_size=1,
                max_size=12),
       st.integers(1, 100), st.booleans())
def test_leveraged_longs_and_shorts_through_random_moves(venue: str,
                                                         path: list[tuple[float, int]],
                                                         leverage: int, isolated: bool) -> None:
    """A long and a short at the same leverage ride the same random path on each venue style:
    liquidations, the insurance fund and ADL only ever move coin around."""
    symbol, _, cs, cap = VENUES[venue]
    ex = _venue(venue)
    ex.advance(MINUTE_MS)
    mode = "isolated" if isolated else "cross"
    sides = [fund(ex, "1", mode=mode, leverage=leverage, symbol=symbol) for _ in range(2)]
    qty = max(1, min(cap, 60_000 // cs * leverage // 2))  # half the wallet as margin
    trading.place_order(ex, sides[0], symbol, "BUY", "MARKET", qty)
    trading.place_order(ex, sides[1], symbol, "SELL", "MARKET", qty)
    for move, wait in path:
        _move(ex, symbol, move)
        ex.advance(wait)
        check_invariants(ex)
        for account_id in sides:
            assert ex.wallet_balance(account_id, "BTC") >= 0
            assert ex.isolated_wallet(account_id, symbol) >= 0
    assert ex.ledger.total("BTC") == 102
