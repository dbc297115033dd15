"""The nine venue rules of issue 13, each against the venue's published formula or example.

Sources are the numbered entries of the shared venue-sources.md (quoted in each docstring) and
docs/mechanics.md §7 of this repository, which lists every rule with its source.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from perpsim.sim import liquidation, risk, trading
from perpsim.sim import liquidation_price as lp
from perpsim.sim.errors import MarketPriceOutsideBand, PriceAboveBand, PriceBelowBand
from perpsim.sim.funding_math import impact_price
from perpsim.sim.inverse import apply_fill, coin_value
from perpsim.sim.market import MarketPricer, PriceTape

from engine_helpers import (
    BTC,
    BYBIT_BTC,
    SECOND_MS,
    T0,
    XBT,
    XBT_PRICES,
    bankruptcy,
    check_invariants,
    fr,
    fund,
    make_exchange,
    no_insurance,
    of_type,
    profile,
    q,
)

D = Decimal
HOUR_MS = 3_600_000
QUARTERLY = "BTCUSD_240329"


# ---- 1. BitMEX maintenance margin: funding only when the position pays it ------------------


@pytest.mark.parametrize(("side", "rate", "held"), [(-1, "0.001", False), (-1, "-0.001", True),
                                                    (1, "0.001", True), (1, "-0.001", False)])
def test_bitmex_mm_holds_the_funding_a_position_pays_not_what_it_receives(
        side: int, rate: str, held: bool) -> None:
    """BitMEX staff (venue-sources.md 14): "maintenanceMargin = (0.50% + Exit Taker Fee + Funding
    Rate)"; perpsim counts the funding term only where the position pays it (F > 0: longs pay,
    F < 0: shorts pay), as its liquidation-price solver does."""
    ex = make_exchange("bitmex_xbtusd", manual_prices=XBT_PRICES)
    account = fund(ex, "1", symbol=XBT)
    trading.place_order(ex, account, XBT, "BUY" if side > 0 else "SELL", "MARKET", 6_000)
    ex.states[XBT].next_funding_rate = D(rate)  # the rate BitMEX already published for next
    pos = ex.position(account, XBT)
    assert pos.entry_price_usd is not None
    mark = ex.mark_price(XBT)
    value_at_mark = coin_value(6_000, mark, 1)
    base = coin_value(6_000, pos.entry_price_usd, 1) * D("0.005") + value_at_mark * D("0.00075")
    funding = value_at_mark * abs(D(rate)) if held else 0
    assert risk.maint_margin(ex, pos) == base + funding


# ---- 2. Bybit cross: the fee to close is part of bankruptcy and maintenance ---------------


def test_bybit_cross_published_example_5718_57_and_5739_50() -> None:
    """help.bybit.com 360039261334 (venue-sources.md 6): "account balance of 0.5BTC and buy long
    10000 contracts at 8,000 USD using Cross Margin ... Bankruptcy Price = 1.00075 × 10000 /
    (10000/8000 + (0.5 − 0)) = 5718.57 ... Liquidation Price = 5739.50" (taker fee 0.075 %)."""
    bybit = profile("bybit_inverse")
    at_075 = bybit.model_copy(update={"fees": bybit.fees.model_copy(
        update={"taker_rate": D("0.00075")})})
    prices = lp.cross_prices(at_075, bybit.instrument(BYBIT_BTC), 10_000, 8_000, "0.5")
    assert prices.bankruptcy_exact_usd is not None
    assert prices.bankruptcy_exact_usd.quantize(D("0.01")) == D("5718.57")
    assert prices.liquidation_price_usd == D("5739.5")
    # The isolated formulas stay fee-free (Bybit's isolated classic formulas).
    isolated = lp.isolated_prices(at_075, bybit.instrument(BYBIT_BTC), 10_000, 8_000, "0.5")
    assert isolated.bankruptcy_exact_usd == D(8_000) * 10_000 / (10_000 + 4_000)


def test_bybit_cross_short_bankruptcy_leaves_the_fee_at_0_99925() -> None:
    """"Cross Margin Bankruptcy Price (Short) = 0.99925 × Quantity / (Quantity/Avg. Entry Price −
    Available Balance)" (help.mcs.io 360040683032, venue-sources.md 6)."""
    bybit = profile("bybit_inverse")
    at_075 = bybit.model_copy(update={"fees": bybit.fees.model_copy(
        update={"taker_rate": D("0.00075")})})
    prices = lp.cross_prices(at_075, bybit.instrument(BYBIT_BTC), -10_000, 8_000, "0.5")
    expected = Fraction("0.99925") * 10_000 / (Fraction(10_000, 8_000) - Fraction(1, 2))
    assert prices.bankruptcy_exact_usd == Decimal(expected.numerator) / expected.denominator
    assert prices.bankruptcy_price_usd == D("13323.0")  # short rounded down to the tick


# ---- 3. Binance quarterly mark = index + moving-average basis -----------------------------


def test_binance_quarterly_mark_is_index_plus_the_basis_average() -> None:
    """Binance "Mark Price in Quarterly Futures" (venue-sources.md 3): Mark = Price Index +
    moving-average basis. The perpetual's median(P1, P2, last) would give the index here."""
    ex = make_exchange()
    ex.set_prices(QUARTERLY, "60000", "60300")
    ex.advance(60 * SECOND_MS)
    ex.set_prices(QUARTERLY, "60000", "60000")
    # 30 one-second basis samples: the newest is 0, the 29 before it 300.
    assert ex.mark_price(QUARTERLY) == D(60_000) + D(300) * 29 / 30
    assert ex.mark_price(BTC) == D(60_000)  # the perpetual: median(60,000, 60,290, 60,000)
    grid = np.array([ex.now_ms], dtype=np.int64)
    assert ex.pricer(QUARTERLY).marks(grid, 0.0)[0] == pytest.approx(60_290, rel=1e-15)


# ---- 4. A gap past bankruptcy goes whole to the liquidation engine ------------------------


def test_binance_gap_past_bankruptcy_takes_the_whole_position_over_at_bankruptcy() -> None:
    """Binance / Bybit: once the mark is beyond the bankruptcy price nothing is left to step
    down; the whole position is taken over at its bankruptcy price (mechanics §5 waterfall)."""
    ex = make_exchange()
    account = fund(ex, "0.3", leverage=20, mode="isolated")
    trading.place_order(ex, account, BTC, "BUY", "MARKET", 3_100)  # 5.17 BTC: bracket 2
    pos = ex.position(account, BTC)
    entry, margin = pos.entry_price_usd, ex.isolated_wallet(account, BTC)
    assert entry is not None
    expected_bp = bankruptcy(3_100, entry, margin)
    ex.advance(SECOND_MS)
    events = ex.set_prices(BTC, "50000")
    assert of_type(events, "liquidation.past_bankruptcy")
    assert [e for e in of_type(events, "liquidation.order") if e.payload["kind"] == "partial"] == []
    [takeover] = of_type(events, "liquidation.takeover")
    assert takeover.payload["qty"] == 3_100
    # the journal writes the quotient as a venue shows it: rounded half-even to 8 decimals
    assert abs(fr(takeover.payload["bankruptcy_price"]) - expected_bp) <= Fraction(1, 2 * 10**8)
    check_invariants(ex)


def test_a_drop_short_of_bankruptcy_still_steps_down_first() -> None:
    """The control case: between LP and BP the partial step-down still comes first."""
    ex = make_exchange()
    account = fund(ex, "0.3", leverage=20, mode="isolated")
    trading.place_order(ex, account, BTC, "BUY", "MARKET", 3_100)
    liq, bp = risk.liquidation_prices(ex, account, ex.position(account, BTC))
    assert liq is not None
    assert bp is not None
    ex.advance(SECOND_MS)
    events = ex.set_prices(BTC, str(((liq + bp) / 2).quantize(D("0.1"))))
    assert not of_type(events, "liquidation.past_bankruptcy")
    assert next(e.payload["kind"] for e in of_type(events, "liquidation.order")) == "partial"


# ---- 5. ADL ranking formulas and Bybit's maker fee ----------------------------------------


def test_bitmex_adl_rank_is_pnl_percent_times_effective_leverage() -> None:
    """bitmex.com/app/autoDeleveraging (venue-sources.md 15): "Ranking = PNL Percentage *
    Effective Leverage (if PNL percentage > 0) ... where Effective Leverage = abs(Mark Value) /
    (Mark Value − Bankrupt Value), PNL percentage = (Mark Value − Avg Entry Value) / abs(Avg
    Entry Value)". A position that cannot go bankrupt (a fully collateralised 1x short) has
    leverage 1."""
    ex = make_exchange("bitmex_xbtusd", manual_prices=XBT_PRICES)
    hedge = fund(ex, "0.1001", symbol=XBT, leverage=1)
    geared = fund(ex, "0.02", symbol=XBT, leverage=10)
    for account in (hedge, geared):
        trading.place_order(ex, account, XBT, "SELL", "MARKET", 6_000)
    ex.advance(SECOND_MS)
    ex.set_prices(XBT, "55000")
    ranking = liquidation.adl_ranking(ex, XBT, opposite_of=1)
    assert [a for a, _, _ in ranking] == [geared, hedge]
    for account, pos, score in ranking:
        view = risk.position_risk(ex, account, XBT)
        assert pos.entry_price_usd is not None
        entry_value = fr(6_000) / fr(pos.entry_price_usd)
        mark_value = fr(6_000) / fr(view.mark_price_usd)  # the fair price, not the index
        # BitMEX signs a short's values positive: PnL% = (mark value − entry value) / entry.
        pnl_pct = (mark_value - entry_value) / entry_value
        if account == hedge:
            assert view.bankruptcy_price_usd is None
            leverage = Fraction(1)
        else:
            assert view.bankruptcy_price_usd is not None
            leverage = mark_value / (mark_value - fr(6_000) / fr(view.bankruptcy_price_usd))
        assert fr(score) == pytest.approx(pnl_pct * leverage, rel=1e-20)


def test_bybit_charges_deleveraged_counterparties_the_maker_fee() -> None:
    """help.bybit.com 900000031623 (venue-sources.md 8): "Maker fee will be charged to the
    positions of selected traders and Taker fee will be charged to the liquidated orders"."""
    ex = make_exchange(no_insurance("bybit_inverse"))
    short = fund(ex, "1", symbol=BYBIT_BTC)
    trading.place_order(ex, short, BYBIT_BTC, "SELL", "MARKET", 30_000)
    victim = fund(ex, "0.011", symbol=BYBIT_BTC, leverage=50)
    trading.place_order(ex, victim, BYBIT_BTC, "BUY", "MARKET", 30_000)
    ex.advance(SECOND_MS)
    fees_before = ex.ledger.balance("fees:BTC")
    events = ex.set_prices(BYBIT_BTC, "50000")
    [fill] = of_type(events, "adl.fill")
    assert fill.payload["account_id"] == short
    price = D(fill.payload["price"])
    fee = q(fr(fill.payload["qty"]) / fr(price) * fr(profile("bybit_inverse").fees.maker_rate))
    assert D(fill.payload["commission"]) == fee > 0
    assert ex.ledger.balance("fees:BTC") - fees_before >= fee
    check_invariants(ex)


# ---- 6. BitMEX average entry: per-lot satoshi values --------------------------------------


def test_bitmex_average_entry_published_example_29933_07() -> None:
    """support.bitmex.com 6205210741277 (venue-sources.md 16): "100 contracts at $29,800, 200
    contracts at $30,000 ... = 29933.07" from per-lot satoshi values floored for a long. The
    exact harmonic mean would be 29,933.04."""
    bitmex = profile("bitmex_xbtusd")
    fill = apply_fill(100, D(29_800), 200, 30_000, 1, rounding=bitmex.rounding)
    assert fill.entry_price_usd is not None
    assert fill.entry_price_usd.quantize(D("0.01")) == D("29933.07")
    assert apply_fill(100, D(29_800), 200, 30_000, 1).entry_price_usd.quantize(  # type: ignore
        D("0.01")) == D("29933.04")
    # A short rounds the satoshi values instead of flooring them.
    short = apply_fill(-100, D(29_800), -200, 30_000, 1, rounding=bitmex.rounding)
    lot = [Fraction(round(Fraction(100 * 10**8, p)), 10**8) for p in (29_800, 30_000)]
    assert fr(short.entry_price_usd) == pytest.approx(  # type: ignore[arg-type]
        100 / ((lot[0] + 2 * lot[1]) / 3), rel=1e-25)


def test_bitmex_engine_averages_entry_with_lot_rounding() -> None:
    ex = make_exchange("bitmex_xbtusd", manual_prices={"BTCUSD": 29_799.5})
    account = fund(ex, "1", symbol=XBT)
    trading.place_order(ex, account, XBT, "BUY", "MARKET", 100)  # the ask: 29,800
    ex.advance(SECOND_MS)
    ex.set_prices(XBT, "29999.5")
    trading.place_order(ex, account, XBT, "BUY", "MARKET", 200)  # the ask: 30,000
    entry = ex.position(account, XBT).entry_price_usd
    assert entry is not None
    assert entry.quantize(D("0.01")) == D("29933.07")


# ---- 7. BitMEX funding is valued at the mark of the funding instant -----------------------


def test_bitmex_funding_at_the_instant_pays_the_published_0_05_xbt() -> None:
    """bitmex.com/app/perpetualContractsGuideExamples (venue-sources.md 11): "Funding Amount =
    Mark Value * Funding Rate = 20 XBT * 0.25% = 0.05 XBT" for 15,000 contracts at 750. Fair
    price (venue-sources.md 12): the funding basis is Funding Rate × Time Until Funding /
    Interval, zero at the funding timestamp, so the mark there is the index."""
    ex = make_exchange("bitmex_xbtusd", manual_prices={"BTCUSD": 750.0})
    account = fund(ex, "25", symbol=XBT)
    trading.place_order(ex, account, XBT, "BUY", "MARKET", 15_000)
    ex.states[XBT].next_funding_rate = D("0.0025")  # the rate published for 04:00
    assert ex.mark_price(XBT) > 750  # before the instant the basis is there
    events = ex.advance_until(T0 + 4 * HOUR_MS)
    [payment] = [e for e in of_type(events, "funding.payment")
                 if e.payload["account_id"] == account]
    assert D(payment.payload["mark"]) == 750
    assert D(payment.payload["amount"]) == D("-0.05")


# ---- 8. Binance price bands and market-order protection -----------------------------------


def test_binance_percent_price_band_on_limit_orders() -> None:
    """exchangeInfo PERCENT_PRICE multiplierUp 1.15 / multiplierDown 0.85 (Binance error codes
    -4016 "Price is higher than mark price multiplier cap", -4024 "... lower than mark price
    multiplier floor"): with the mark at 60,000 a buy above 69,000 and a sell below 51,000 are
    refused."""
    ex = make_exchange()
    account = fund(ex, "1")
    with pytest.raises(PriceAboveBand):
        trading.place_order(ex, account, BTC, "BUY", "LIMIT", 1, "120000")
    with pytest.raises(PriceAboveBand):
        trading.place_order(ex, account, BTC, "BUY", "LIMIT", 1, "69000.1")
    with pytest.raises(PriceBelowBand):
        trading.place_order(ex, account, BTC, "SELL", "LIMIT", 1, "50999.9")
    assert trading.place_order(ex, account, BTC, "SELL", "LIMIT", 1, "69000").status == "NEW"
    assert trading.place_order(ex, account, BTC, "BUY", "LIMIT", 1, "51000").status == "NEW"
    # A sell far above the mark and a buy far below it are not limited by the band.
    assert trading.place_order(ex, account, BTC, "SELL", "LIMIT", 1, "120000").status == "NEW"


def test_binance_market_order_refused_when_the_best_price_is_outside_the_band() -> None:
    """-4131 "The counterparty's best price does not meet the PERCENT_PRICE filter limit"."""
    ex = make_exchange()
    account = fund(ex, "1")
    ex.advance(60 * SECOND_MS)
    ex.set_prices(BTC, "60000", "70000")  # the book jumps; the mark lags (basis average)
    assert ex.mark_price(BTC) * D("1.15") < 70_000
    with pytest.raises(MarketPriceOutsideBand):
        trading.place_order(ex, account, BTC, "BUY", "MARKET", 1)
    assert trading.place_order(ex, account, BTC, "SELL", "MARKET", 1).status == "FILLED"


def test_bands_are_binance_only() -> None:
    assert profile("bybit_inverse").price_band is None
    assert profile("bitmex_xbtusd").price_band is None


# ---- 9. Bybit impact margin notional: 0.1 BTC of initial margin ---------------------------


def test_bybit_impact_notional_is_10_btc_of_value() -> None:
    """help.bybit.com 360039261114 (venue-sources.md 10): "Impact Margin Notional is the notion
    available to trade with 0.1 BTC ... worth of initial margin" — 10 BTC at 100x, not USD."""
    bybit = profile("bybit_inverse")
    inst = bybit.instrument(BYBIT_BTC)
    assert inst.impact_notional_coin == 10
    assert inst.impact_notional_usd is None
    tape = PriceTape("BTCUSD", np.array([T0]), np.array([60_000.0]), np.array([61_000.0]))
    pricer = MarketPricer(bybit, inst, tape)
    book = inst.book
    # The perp trades above the index, so the premium is (impact bid − index) / index.
    bids = [(D(61_000) - (book.half_spread_ticks + k * book.level_step_ticks) * inst.tick_size,
             book.contracts_per_level) for k in range(book.levels)]
    # The USD notional that sells exactly 10 BTC walking these bids (each level 200,000 USD).
    left, usd = Fraction(10), Fraction(0)
    for price, contracts in bids:
        coin = min(left, Fraction(contracts) / fr(price))
        usd += coin * fr(price)
        left -= coin
    assert left == 0
    expected_bid = impact_price(Decimal(usd.numerator) / usd.denominator, bids, 1)
    premium = pricer.premiums(np.array([T0], dtype=np.int64))[0]
    assert premium == pytest.approx((float(expected_bid) - 60_000) / 60_000, rel=1e-9)
    # 10 BTC at 61,000 is 610,000 USD: three levels deep, where 10,000 USD stayed in the first.
    assert usd > 2 * 200_000
