"""The liquidation waterfall through the engine (mechanics §5, sim/liquidation.py).

Hand numbers (binance_coinm, BTCUSD_PERP, CS 100, bracket 1: MMR 0.4 %, cum 0): a market buy of
100 contracts fills at the synthetic ask 60,000.1, so N = 10,000 USD and EP = 60,000.1; at 20x
its isolated margin is W = ⌈N / (EP·20)⌉ = 0.00833332 BTC. The liquidation price solves
W + N·(1/EP − 1/LP) = N/LP·MMR, i.e. LP = N·(1 + MMR) / (W + N/EP) ≈ 57,371.52 — a 4.4 % fall,
so a −5 % move (57,000) kills it. The closed form EP·L·(1+MMR)/(L+1) with W = N/(EP·L) exactly
gives 57,371.52 too. Bankruptcy: 1/BP = 1/EP − W/N, BP ≈ 57,142.95.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from perpsim.sim import trading
from perpsim.sim.exchange import Exchange
from perpsim.sim.ledger import insurance_account
from perpsim.sim.risk import position_risk

from engine_helpers import (
    BTC,
    BYBIT_BTC,
    HOUR_MS,
    MINUTE_MS,
    XBT,
    XBT_PRICES,
    bankruptcy,
    binance_isolated_lp,
    check_invariants,
    fr,
    fund,
    make_exchange,
    no_insurance,
    of_type,
    q,
    tick_down,
    tick_up,
    types,
)

EP = Decimal("60000.1")
W20 = Decimal("0.00833332")
N = 10_000


def _fund_balance(ex: Exchange) -> Decimal:
    return ex.ledger.balance(insurance_account("BTC"))


def _long_20x(ex: Exchange, mode: str = "isolated", wallet: str = "1") -> str:
    a = fund(ex, wallet, mode=mode, leverage=20)
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    return a


def _venue(prof: object = "binance_coinm") -> Exchange:
    ex = make_exchange(prof)  # type: ignore[arg-type]
    ex.advance(MINUTE_MS)  # off the 00:00 funding instant
    return ex


def _close(a: Fraction | Decimal, b: Fraction | Decimal, tol: Fraction) -> bool:
    return abs(Fraction(a) - Fraction(b)) <= tol


# ---- the trigger ------------------------------------------------------------------------------

def test_isolated_20x_long_liquidation_price_by_hand() -> None:
    ex = _venue()
    a = _long_20x(ex)
    assert ex.isolated_wallet(a, BTC) == W20 == q(Fraction(N) / fr(EP) / 20, "up")
    lp = binance_isolated_lp(100, EP, W20, "0.004")
    closed_form = fr(EP) * 20 * fr("1.004") / 21
    assert _close(lp, closed_form, Fraction(1, 100))
    risk = position_risk(ex, a, BTC)
    assert risk.liquidation_price_usd is not None
    assert risk.bankruptcy_price_usd is not None
    assert _close(fr(risk.liquidation_price_usd), lp, Fraction(1, 10**18))
    assert _close(fr(risk.bankruptcy_price_usd), bankruptcy(100, EP, W20), Fraction(1, 10**18))
    assert tick_down(lp) == Decimal("57371.5")
    assert 57_000 < lp < Decimal("0.96") * 60_000  # dies on −5 %, survives −4 %
    check_invariants(ex)


def test_isolated_20x_long_dies_at_its_liquidation_price_not_before() -> None:
    ex = _venue()
    a = _long_20x(ex)
    lp = binance_isolated_lp(100, EP, W20, "0.004")
    call = binance_isolated_lp(100, EP, W20, "0.005")  # MM / balance = 0.8: MMR / 0.8
    wallet = ex.wallet_balance(a, "BTC")
    ex.advance(1)
    assert types(ex.set_prices(BTC, tick_up(call))) == ["prices.set"]
    # Between the margin-call price and LP: a warning, once.
    events = ex.set_prices(BTC, tick_down(call))
    assert types(events) == ["prices.set", "margin.call"]
    assert Decimal(events[1].payload["margin_ratio"]) >= Decimal("0.8")
    assert types(ex.set_prices(BTC, tick_up(lp))) == ["prices.set"]  # 57,371.6: alive
    assert ex.mark_price(BTC) == Decimal("57371.6")
    assert ex.position(a, BTC).qty_contracts == 100
    events = ex.set_prices(BTC, tick_down(lp))  # 57,371.5: dead
    waterfall = [t for t in types(events) if t.startswith("liquidation.")]
    assert waterfall == ["liquidation.triggered", "liquidation.takeover", "liquidation.order",
                         "liquidation.completed"]
    assert "margin.call" not in types(events)  # already sent above, once per approach
    assert ex.position(a, BTC).qty_contracts == 0
    assert ex.isolated_wallet(a, BTC) == 0
    # Isolated: the loss stops at the isolated margin; the wallet is untouched.
    assert ex.wallet_balance(a, "BTC") == wallet
    takeover = of_type(events, "liquidation.takeover")[0]
    assert Decimal(takeover.payload["loss"]) == W20
    # The engine sold at the synthetic bid 57,371.4, above bankruptcy: a surplus for the fund.
    order = of_type(events, "liquidation.order")[0]
    assert order.payload["kind"] == "takeover"
    assert Decimal(order.payload["avg_price"]) == Decimal("57371.4")
    bp = fr(takeover.payload["bankruptcy_price"])
    surplus = q(N * (1 / bp - 1 / fr("57371.4")))
    assert Decimal(order.payload["insurance_delta"]) == surplus > 0
    check_invariants(ex)


def test_a_gap_past_liquidation_sends_margin_call_then_liquidates_in_the_same_instant() -> None:
    ex = _venue()
    a = _long_20x(ex)
    ex.advance(1)
    events = ex.set_prices(BTC, "57000")  # −5 %
    kinds = types(events)
    assert kinds[:3] == ["prices.set", "margin.call", "liquidation.triggered"]
    assert {e.time_ms for e in events} == {ex.now_ms}
    assert events[1].payload["account_id"] == a
    assert ex.position(a, BTC).qty_contracts == 0
    check_invariants(ex)


def test_watcher_liquidates_at_the_first_instant_the_mark_reaches_lp_on_a_scenario() -> None:
    def venue() -> tuple[Exchange, str]:
        ex = make_exchange(scenario="crash", scenario_seed=5)
        return ex, _long_20x(ex)

    ex, a = venue()
    ex.advance_until(ex.scenario.end_ms or 0)
    [triggered] = [e for e in of_type(ex.journal, "liquidation.triggered")
                   if e.payload["account_id"] == a]
    t = triggered.time_ms
    lp = fr(triggered.payload["positions"][0]["liquidation_price"])
    assert fr(triggered.payload["positions"][0]["mark"]) <= lp
    again, b = venue()
    again.advance_until(t - 1)
    assert again.position(b, BTC).qty_contracts == 100
    assert fr(again.mark_price(BTC)) > lp
    again.advance(1)
    assert again.position(b, BTC).qty_contracts == 0
    check_invariants(ex)


# ---- who survives -----------------------------------------------------------------------------

def test_one_x_short_with_full_coin_collateral_survives_plus_300_percent() -> None:
    ex = _venue()
    hedger = fund(ex, "1", mode="isolated", leverage=1)
    trading.place_order(ex, hedger, BTC, "SELL", "MARKET", 590)  # 59,000 USD ≈ 0.98333 BTC
    risk = position_risk(ex, hedger, BTC)
    assert ex.isolated_wallet(hedger, BTC) == q(Fraction(59_000) / fr("59999.9"), "up")
    assert risk.liquidation_price_usd is None
    assert risk.bankruptcy_price_usd is None
    ex.advance(1)
    assert types(ex.set_prices(BTC, "240000")) == ["prices.set"]
    risk = position_risk(ex, hedger, BTC)
    # Equity = N/P at every price: 59,000 / 240,000 = 0.24583 BTC, and MM / equity ≈ MMR.
    assert _close(fr(risk.margin_balance_coin), Fraction(59_000, 240_000), Fraction(1, 10**6))
    assert risk.margin_ratio < Decimal("0.0041")
    assert risk.liquidation_price_usd is None
    # Days of funding (shorts receive) and higher still: never liquidated.
    ex.advance(3 * 24 * HOUR_MS)
    assert types(ex.set_prices(BTC, "1000000")) == ["prices.set"]
    assert ex.position(hedger, BTC).qty_contracts == -590
    assert of_type(ex.journal, "liquidation.triggered", "margin.call") == []
    check_invariants(ex)


def test_cross_account_is_saved_by_its_free_balance() -> None:
    ex = _venue()
    isolated = _long_20x(ex, "isolated")
    cross = _long_20x(ex, "cross")
    wallet = ex.wallet_balance(cross, "BTC")
    assert wallet == 1 - q(Fraction(N) / fr(EP) * Fraction(5, 10_000))  # only the fee left
    cross_lp = binance_isolated_lp(100, EP, wallet, "0.004")  # W = the whole wallet
    risk = position_risk(ex, cross, BTC)
    assert risk.liquidation_price_usd is not None
    assert _close(fr(risk.liquidation_price_usd), cross_lp, Fraction(1, 10**18))
    assert int(cross_lp) == 8_606
    ex.advance(1)
    ex.set_prices(BTC, tick_down(binance_isolated_lp(100, EP, W20, "0.004")))
    assert ex.position(isolated, BTC).qty_contracts == 0
    assert ex.position(cross, BTC).qty_contracts == 100
    ex.set_prices(BTC, "20000")  # −67 %, still alive on its free balance
    assert ex.position(cross, BTC).qty_contracts == 100
    ex.set_prices(BTC, tick_up(cross_lp))
    assert ex.position(cross, BTC).qty_contracts == 100
    events = ex.set_prices(BTC, tick_down(cross_lp))
    assert of_type(events, "liquidation.triggered")[0].payload["margin_mode"] == "cross"
    assert ex.position(cross, BTC).qty_contracts == 0
    check_invariants(ex)


# ---- insurance fund and ADL -------------------------------------------------------------------

def test_insurance_fund_absorbs_a_gap_past_bankruptcy() -> None:
    ex = _venue()
    a = _long_20x(ex)
    wallet, fund_before = ex.wallet_balance(a, "BTC"), _fund_balance(ex)
    ex.advance(1)
    events = ex.set_prices(BTC, "50000")
    [order] = of_type(events, "liquidation.order")
    bp = fr(of_type(events, "liquidation.takeover")[0].payload["bankruptcy_price"])
    # the journal writes the quotient as a venue shows it: rounded to 8 decimals
    assert _close(bp, bankruptcy(100, EP, W20), Fraction(1, 2 * 10**8))
    # The engine holds 100 contracts from BP and sells them at the synthetic bid 49,999.9.
    assert Decimal(order.payload["avg_price"]) == Decimal("49999.9")
    deficit = q(N * (1 / bp - 1 / fr("49999.9")))
    assert deficit == Decimal("-0.02500069")
    assert Decimal(order.payload["insurance_delta"]) == deficit
    assert _fund_balance(ex) == fund_before + deficit
    assert Decimal(order.payload["insurance_fund"]) == fund_before + deficit
    assert ex.wallet_balance(a, "BTC") == wallet
    assert of_type(events, "adl.ranking", "adl.fill") == []
    check_invariants(ex)


def _shorts_for_adl(ex: Exchange) -> tuple[str, str]:
    """Two profitable shorts once the price falls: ``low`` (1 BTC, 100 contracts, created first)
    and ``high`` (0.1 BTC, 60 contracts: far more effective leverage)."""
    low = fund(ex, "1")
    trading.place_order(ex, low, BTC, "SELL", "MARKET", 100)
    high = fund(ex, "0.1")
    trading.place_order(ex, high, BTC, "SELL", "MARKET", 60)
    return low, high


def test_adl_when_the_fund_is_empty_ranked_by_binance_leverage_pnl() -> None:
    ex = _venue(no_insurance())
    assert _fund_balance(ex) == 0
    low, high = _shorts_for_adl(ex)
    victim = _long_20x(ex)
    wallets = {a: ex.wallet_balance(a, "BTC") for a in (low, high)}
    ex.advance(1)
    events = ex.set_prices(BTC, "50000")
    [ranking] = of_type(events, "adl.ranking")
    ranked = [r["account_id"] for r in ranking.payload["ranking"]]
    assert ranked == [high, low]  # not creation order: the score decides
    scores = [Decimal(r["score"]) for r in ranking.payload["ranking"]]
    # Binance's published Leverage PnL (dev.binance.vision/t/17801): max(0, UPNL)/max(1, wallet)
    # × MM/(wallet + UPNL). Both wallets are at most 1 BTC, so max(1, wallet) = 1.
    for account_id, qty, score in ((high, 60, scores[0]), (low, 100, scores[1])):
        n = qty * 100
        upnl = n * (1 / Fraction(50_000) - 1 / fr("59999.9"))
        wallet = fr(wallets[account_id])
        mm = Fraction(n, 50_000) * Fraction(4, 1000)
        expected = max(0, upnl) / max(1, wallet) * mm / (wallet + upnl)
        assert _close(fr(score), expected, Fraction(1, 10**8))
    assert scores[0] > scores[1] > 0
    bp = fr(of_type(events, "liquidation.takeover")[0].payload["bankruptcy_price"])
    fills = of_type(events, "adl.fill")
    assert [(f.payload["account_id"], f.payload["qty"]) for f in fills] == [(high, 60),
                                                                            (low, 40)]
    for f in fills:
        assert fr(f.payload["price"]) == bp
        assert f.payload["counterparty_of"] == victim
    assert Decimal(fills[0].payload["realized_pnl"]) == q(6_000 * (1 / bp - 1 / fr("59999.9")))
    assert ex.position(high, BTC).qty_contracts == 0
    assert ex.position(low, BTC).qty_contracts == -60
    assert ex.position(victim, BTC).qty_contracts == 0
    assert _fund_balance(ex) == 0
    # Everything went to ADL: the engine sent nothing into the book.
    assert of_type(events, "liquidation.order") == []
    assert types(events).index("adl.ranking") < types(events).index("liquidation.completed")
    check_invariants(ex)


def test_without_profitable_opposite_positions_the_loss_is_socialised_not_created() -> None:
    ex = _venue(no_insurance())
    victim = _long_20x(ex)
    ex.advance(1)
    events = ex.set_prices(BTC, "50000")
    [ranking] = of_type(events, "adl.ranking")
    assert ranking.payload["ranking"] == ()
    [cover] = of_type(events, "insurance.cover")
    assert Decimal(cover.payload["fund_paid"]) == 0
    assert Decimal(cover.payload["socialised"]) == Decimal(cover.payload["amount"]) > 0
    assert ex.position(victim, BTC).qty_contracts == 0
    assert _fund_balance(ex) == 0
    check_invariants(ex)


# ---- the waterfall's earlier steps ------------------------------------------------------------

def test_open_orders_are_cancelled_first() -> None:
    ex = _venue()
    a = _long_20x(ex)
    bid = trading.place_order(ex, a, BTC, "BUY", "LIMIT", 10, "50000")
    ask = trading.place_order(ex, a, BTC, "SELL", "LIMIT", 50, "65000")
    other = fund(ex, "1")
    theirs = trading.place_order(ex, other, BTC, "BUY", "LIMIT", 10, "50000")
    ex.advance(1)
    events = ex.set_prices(BTC, "57000")
    kinds = types(events)
    [canceled] = of_type(events, "liquidation.orders_canceled")
    assert sorted(canceled.payload["order_ids"]) == sorted([bid.order_id, ask.order_id])
    assert kinds.index("liquidation.triggered") < kinds.index("liquidation.orders_canceled") \
        < kinds.index("liquidation.takeover")
    assert (bid.status, ask.status, theirs.status) == ("CANCELED", "CANCELED", "NEW")
    check_invariants(ex)


def _big_isolated_long(ex: Exchange) -> str:
    a = fund(ex, "2", mode="isolated", leverage=20)
    # 3,600 contracts ≈ 6 BTC at 60,000: bracket 2 (5–10 BTC, MMR 0.5 %, cum 0.005).
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 3_600)
    return a


def test_binance_steps_a_bracket_2_position_down_before_taking_it_over() -> None:
    ex = _venue()
    a = _big_isolated_long(ex)
    risk = position_risk(ex, a, BTC)
    assert risk.value_coin == 6
    assert risk.liquidation_price_usd is not None
    ex.advance(1)
    price = tick_down(fr(risk.liquidation_price_usd))
    events = ex.set_prices(BTC, price)
    orders = of_type(events, "liquidation.order")
    assert orders[0].payload["kind"] == "partial"
    assert orders[0].payload["from_bracket"] == 2
    kept = orders[0].payload["position_qty"]
    # Kept just under the 5 BTC floor of bracket 2 at the mark: ⌊5·P/100⌋, minus one if equal.
    assert kept * 100 / fr(price) < 5 <= (kept + 1) * 100 / fr(price)
    assert orders[0].payload["qty"] == 3_600 - kept
    assert types(events).index("liquidation.triggered") < types(events).index(
        "liquidation.order")
    check_invariants(ex)


def test_isolated_liquidation_never_pays_the_wallet() -> None:
    ex = _venue()
    a = _big_isolated_long(ex)
    lp = position_risk(ex, a, BTC).liquidation_price_usd
    assert lp is not None
    wallet = ex.wallet_balance(a, "BTC")
    ex.advance(1)
    ex.set_prices(BTC, tick_down(fr(lp)))
    assert ex.wallet_balance(a, "BTC") == wallet


def test_cross_bracket_2_position_steps_down_too() -> None:
    ex = _venue()
    a = fund(ex, "0.5", leverage=20)
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 3_600)
    lp = position_risk(ex, a, BTC).liquidation_price_usd
    assert lp is not None
    ex.advance(1)
    events = ex.set_prices(BTC, tick_down(fr(lp)))
    orders = of_type(events, "liquidation.order")
    assert [o.payload["kind"] for o in orders][:1] == ["partial"]
    assert ex.wallet_balance(a, "BTC") >= 0
    check_invariants(ex)


# ---- other venues -----------------------------------------------------------------------------

def test_bybit_liquidation_price_mm_at_entry_rounded_up_is_the_trigger() -> None:
    """Bybit: MM valued at entry, 1/LP = 1/EP + (W − N/EP·MMR)/N, a long's LP rounded up to
    the 0.5 tick (reached earlier)."""
    ex = _venue("bybit_inverse")
    a = fund(ex, "1", mode="isolated", leverage=20, symbol=BYBIT_BTC)
    trading.place_order(ex, a, BYBIT_BTC, "BUY", "MARKET", 10_000)  # CS 1: N = 10,000 USD
    entry = ex.position(a, BYBIT_BTC).entry_price_usd
    assert entry == Decimal("60000.5")
    w = ex.isolated_wallet(a, BYBIT_BTC)
    assert w == q(Fraction(10_000) / fr(entry) / 20, "up")
    mm = Fraction(10_000) / fr(entry) * fr("0.005")
    exact_lp = 1 / (1 / fr(entry) + (fr(w) - mm) / 10_000)
    lp = tick_up(exact_lp, "0.5")
    assert lp == Decimal("57417.0")
    assert position_risk(ex, a, BYBIT_BTC).liquidation_price_usd == lp
    ex.advance(1)
    assert types(ex.set_prices(BYBIT_BTC, lp + Decimal("0.5")))[-1] != "liquidation.completed"
    assert ex.position(a, BYBIT_BTC).qty_contracts == 10_000
    events = ex.set_prices(BYBIT_BTC, lp)  # mark = LP: reached
    assert "liquidation.triggered" in types(events)
    assert ex.position(a, BYBIT_BTC).qty_contracts == 0
    check_invariants(ex)


def test_bitmex_liquidation_price_includes_the_exit_fee_and_is_the_trigger() -> None:
    """BitMEX: MM at entry plus the taker fee of closing at bankruptcy, N/BP·0.075 %, plus the
    funding the long will pay at the next funding time, N/BP·F (F known an interval ahead)."""
    ex = make_exchange("bitmex_xbtusd", manual_prices=XBT_PRICES)
    ex.advance(MINUTE_MS)
    a = fund(ex, "1", mode="isolated", leverage=20, symbol=XBT)
    trading.place_order(ex, a, XBT, "BUY", "MARKET", 10_000)
    entry = ex.position(a, XBT).entry_price_usd
    assert entry == Decimal("60000.5")
    w = fr(ex.isolated_wallet(a, XBT))
    bp = 1 / (1 / fr(entry) + w / 10_000)
    funding_rate = ex.predicted_funding_rate(XBT)
    assert funding_rate == Decimal("0.0001")  # flat premium: the interest rate, paid by longs
    mm = (Fraction(10_000) / fr(entry) * fr("0.005") + Fraction(10_000) / bp * fr("0.00075")
          + Fraction(10_000) / bp * fr(funding_rate))
    lp = 1 / (1 / fr(entry) + (w - mm) / 10_000)
    risk = position_risk(ex, a, XBT)
    assert risk.liquidation_price_usd is not None
    assert _close(fr(risk.liquidation_price_usd), lp, Fraction(1, 10**18))
    assert int(lp) == 57_465
    ex.advance(1)
    # The fair-price mark is index·(1 + F·time-to-funding/interval): put the MARK on each side.
    ex.set_prices(XBT, tick_up(lp, "0.5"))
    premium = fr(ex.mark_price(XBT)) / fr(ex.index_price(XBT))
    assert premium > 1
    ex.set_prices(XBT, tick_up(lp / premium, "0.5"))
    assert fr(ex.mark_price(XBT)) > lp
    assert ex.position(a, XBT).qty_contracts == 10_000
    events = ex.set_prices(XBT, tick_down(lp / premium, "0.5"))
    assert fr(ex.mark_price(XBT)) <= lp
    assert "liquidation.triggered" in types(events)
    assert ex.position(a, XBT).qty_contracts == 0
    check_invariants(ex)


def test_many_liquidations_keep_every_balance_non_negative() -> None:
    ex = _venue()
    accounts = [_long_20x(ex, mode, wallet) for mode in ("isolated", "cross")
                for wallet in ("0.01", "0.02", "1")]
    _shorts_for_adl(ex)
    ex.advance(1)
    for price in ("58000", "55000", "30000", "90000", "10000"):
        ex.set_prices(BTC, price)
        check_invariants(ex)
    # Everyone but the 1 BTC cross long (LP ≈ 8,606) went down on the way to 10,000.
    survivors = [a for a in accounts if ex.position(a, BTC).is_open]
    assert survivors == [accounts[-1]]
    assert ex.ledger.total("BTC") == 100 + Decimal("3.16")  # fund + deposits: nothing created


def test_cross_step_down_past_bankruptcy_completes() -> None:
    """A cross long in bracket 2 gapping far past bankruptcy: the wallet cannot pay the 1.5 %
    clearance fee of the step-down, so the fund should cover it (or it is waived) — the
    liquidation must still finish."""
    ex = _venue()
    a = fund(ex, "1", leverage=12)
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 3_600)  # 6 BTC: bracket 2
    ex.advance(1)
    ex.set_prices(BTC, "42200")  # −30 %
    assert ex.position(a, BTC).qty_contracts == 0
    assert "liquidation.completed" in types(ex.journal)
    check_invariants(ex)


def test_isolated_20x_short_dies_at_its_liquidation_price_not_before() -> None:
    ex = _venue()
    a = fund(ex, "1", mode="isolated", leverage=20)
    trading.place_order(ex, a, BTC, "SELL", "MARKET", 100)  # at the bid 59,999.9
    entry = Decimal("59999.9")
    w = ex.isolated_wallet(a, BTC)
    assert w == q(Fraction(N) / fr(entry) / 20, "up")
    lp = binance_isolated_lp(-100, entry, w, "0.004")
    # Mechanics §5 closed form for a short: EP·L·(1 − MMR)/(L − 1).
    assert _close(lp, fr(entry) * 20 * fr("0.996") / 19, Fraction(1, 100))
    risk = position_risk(ex, a, BTC)
    assert risk.liquidation_price_usd is not None
    assert _close(fr(risk.liquidation_price_usd), lp, Fraction(1, 10**18))
    ex.advance(1)
    ex.set_prices(BTC, tick_down(lp))
    assert ex.position(a, BTC).qty_contracts == -100
    events = ex.set_prices(BTC, tick_up(lp))
    assert of_type(events, "liquidation.order")[0].payload["side"] == "BUY"
    assert ex.position(a, BTC).qty_contracts == 0
    check_invariants(ex)


def test_cross_account_with_two_positions_gapping_past_bankruptcy_is_liquidated() -> None:
    ex = _venue()
    a = fund(ex, "1", leverage=20)
    trading.place_order(ex, a, BTC, "BUY", "MARKET", 100)
    trading.place_order(ex, a, "BTCUSD_240329", "BUY", "MARKET", 100)  # same pair, same coin
    ex.advance(1)
    events = ex.set_prices(BTC, "5000")
    assert "liquidation.triggered" in types(events)
    assert not ex.position(a, BTC).is_open
    assert not ex.position(a, "BTCUSD_240329").is_open
    check_invariants(ex)


def test_margin_call_is_sent_once_per_approach() -> None:
    ex = _venue()
    a = _long_20x(ex)
    call = binance_isolated_lp(100, EP, W20, "0.005")
    below_call = tick_down(call)
    ex.advance(1)
    assert types(ex.set_prices(BTC, below_call)) == ["prices.set", "margin.call"]
    assert types(ex.set_prices(BTC, below_call - 10)) == ["prices.set"]  # still close: no repeat
    assert types(ex.set_prices(BTC, "60000")) == ["prices.set"]  # recovered
    assert types(ex.set_prices(BTC, below_call)) == ["prices.set", "margin.call"]  # again
    assert ex.position(a, BTC).qty_contracts == 100
    check_invariants(ex)
