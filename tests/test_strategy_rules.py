"""strategy/rules.py: pure decisions over a hand-built MonitorState, numbers checkable by hand."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from perpsim.strategy.monitor import MonitorState
from perpsim.strategy.plan import SATOSHI, Tier
from perpsim.strategy.record import HedgeConfig
from perpsim.strategy.rules import (
    Exit,
    Rebalance,
    TopUp,
    Warn,
    decide,
    drift_levels,
    exit_time_ms,
    exit_trigger,
    funding_check_time_ms,
    funding_warning,
    predicted_funding_btc,
    rebalance,
    topup,
    topup_amount,
    wake_levels,
)

D = Decimal
TIERS = (Tier(D(0), D(5), D("0.004"), D(0), D(125)),
         Tier(D(5), None, D("0.005"), D("0.005"), D(100)))
CONFIG = HedgeConfig(end_ms=10**9)


def state(**changes: object) -> MonitorState:
    """A 1x hedge of 5 BTC at 60,000: 3,000 contracts short, isolated margin 5 BTC."""
    base = MonitorState(
        time_ms=1_000, symbol="BTC/USD:BTC", market_id="BTCUSD_PERP",
        contract_size_usd=D(100), tiers=TIERS, index_usd=D(60000), mark_usd=D(60000),
        last_usd=D(60000), position_contracts=-3000, entry_price_usd=D(60000),
        isolated_wallet_btc=D(5), spot_btc=D(0), futures_wallet_btc=D(0),
        futures_available_btc=D(0))
    return replace(base, **changes)  # type: ignore[arg-type]


def leveraged(**changes: object) -> MonitorState:
    """10x: isolated margin 0.5 BTC, mark 63,000, the venue's LP 66,400 (5.4 % away)."""
    values: dict[str, object] = {
        "isolated_wallet_btc": D("0.5"), "mark_usd": D(63000), "index_usd": D(63000),
        "leverage": 10, "liquidation_price_usd": D(66400),
        "unrealized_pnl_btc": D(300000) / D(63000) - D(5)}
    return state(**{**values, **changes})


def test_a_perfect_1x_hedge_needs_nothing() -> None:
    s = state()
    assert s.drift_pct == 0
    assert s.liquidation_distance_pct is None
    assert decide(s, CONFIG) == []


def test_derived_numbers() -> None:
    s = state(mark_usd=D(60030), last_usd=D(60012), index_usd=D(60000))
    assert s.basis_usd == D(30)
    assert s.perp_basis_usd == D(12)
    assert s.basis_pct == D("0.05")
    # 3,000 contracts at mark 60,000 are worth 5 BTC: bracket 2, MM = 5 × 0.005 − 0.005
    assert state().maint_margin_btc == D("0.02")
    assert state().margin_ratio == D("0.004")  # 0.02 / 5


# ---- exits ---------------------------------------------------------------------------------
def test_exit_early_enough_to_be_flat_at_the_end_of_the_window() -> None:
    config = HedgeConfig(end_ms=1_000_000, max_order_contracts=2000, maker_wait_ms=60_000)
    # 3,000 contracts close in 2 slices, each may wait 60 s: leave 2 × 60 s + 60 s before.
    assert exit_time_ms(state(), config) == 1_000_000 - 180_000
    ex = exit_trigger(state(time_ms=820_000), config)
    assert ex is not None
    assert ex.reason == "end"
    assert exit_trigger(state(time_ms=819_999), config) is None
    assert exit_time_ms(state(), HedgeConfig()) is None


def test_exit_on_price_target_and_stop_by_the_index() -> None:
    config = replace(CONFIG, exit_above_usd=D(70000), exit_below_usd=D(50000))
    assert exit_trigger(state(index_usd=D(70000), mark_usd=D(69990)), config).reason == (  # type: ignore[union-attr]
        "price_above")
    assert exit_trigger(state(index_usd=D(49999)), config).reason == "price_below"  # type: ignore[union-attr]
    assert exit_trigger(state(index_usd=D(69999), mark_usd=D(70100)), config) is None


def test_exit_when_net_funding_paid_exceeds_the_budget() -> None:
    config = replace(CONFIG, funding_budget_btc=D("0.01"))
    assert exit_trigger(state(funding_cum_btc=D("-0.01")), config) is None
    assert exit_trigger(state(funding_cum_btc=D("-0.01000001")), config).reason == (  # type: ignore[union-attr]
        "funding_budget")
    assert exit_trigger(state(funding_cum_btc=D("5")), config) is None


def test_the_funding_budget_exits_before_the_settlement_that_would_breach_it() -> None:
    # 3,000 contracts at mark 60,000 are worth 5 BTC: a -0.1 % rate makes the short pay 0.005
    config = replace(CONFIG, funding_budget_btc=D("0.01"), maker_wait_ms=60_000)
    settle = 8 * 3_600_000
    check = funding_check_time_ms(state(next_funding_ms=settle), config)
    assert check == settle - 3 * 60_000  # two slices of 2,000 may each wait a minute, + 1 min
    due = state(time_ms=check, next_funding_ms=settle, funding_rate_predicted=D("-0.001"),
                funding_cum_btc=D("-0.006"))
    assert predicted_funding_btc(due) == D("-0.005")
    ex = exit_trigger(due, config)
    assert ex is not None
    assert ex.reason == "funding_budget"
    assert "would pay 0.00500000 at the predicted rate -0.1000%" in ex.detail
    assert "net funding paid to 0.01100000 past the budget 0.01" in ex.detail
    # not yet time to judge, within the budget after it, or a rate the short receives
    assert exit_trigger(replace(due, time_ms=check - 1), config) is None
    assert exit_trigger(replace(due, funding_cum_btc=D("-0.005")), config) is None
    assert exit_trigger(replace(due, funding_rate_predicted=D("0.001")), config) is None
    # no budget, no check
    assert funding_check_time_ms(due, CONFIG) is None
    assert exit_trigger(due, CONFIG) is None


def test_exit_after_a_liquidation_takes_priority() -> None:
    s = state(position_contracts=0, liquidated=True, time_ms=10**9)
    assert decide(s, CONFIG) == [Exit("liquidated", "the position was liquidated")]


# ---- top-up --------------------------------------------------------------------------------
def test_top_up_brings_the_liquidation_price_back_to_the_target_distance() -> None:
    s = leveraged(futures_available_btc=D("0.2"), spot_btc=D(2))
    assert s.liquidation_distance_pct is not None
    assert round(s.liquidation_distance_pct, 3) == D("5.397")  # (66,400 − 63,000) / 63,000
    # Target LP = 63,000 × 1.35 = 85,050; value there v = 300,000 / 85,050 (bracket 1).
    # The short's margin balance at LP must equal MM: W + (v − 5) = 0.004·v → W = 5 − 0.996·v.
    v = D(300000) / D(85050)
    need = (D(5) - D("0.996") * v - D("0.5")).quantize(SATOSHI, rounding="ROUND_UP")
    assert topup_amount(s, CONFIG) == need
    intent = topup(s, CONFIG)
    assert isinstance(intent, TopUp)
    assert intent.amount_btc == need
    assert intent.from_spot_btc == need - D("0.2")  # the futures wallet's spare coin first


def test_top_up_is_capped_by_what_is_left_and_says_so() -> None:
    intent = topup(leveraged(futures_available_btc=D(0), spot_btc=D("0.1")), CONFIG)
    assert isinstance(intent, TopUp)
    assert intent.amount_btc == intent.from_spot_btc == D("0.1")
    assert "only 0.10000000 of 0.98677249 is available" in intent.reason
    empty = topup(leveraged(), CONFIG)
    assert isinstance(empty, Warn)
    assert "no coin is left" in empty.text


def test_no_top_up_above_the_threshold_or_when_forbidden() -> None:
    assert topup(leveraged(mark_usd=D(57000)), CONFIG) is None  # 16.5 % away
    forbidden = topup(leveraged(spot_btc=D(2)), replace(CONFIG, topup=False))
    assert isinstance(forbidden, Warn)
    assert "forbidden" in forbidden.text


def test_cross_top_up_comes_from_spot_only() -> None:
    s = leveraged(margin_mode="cross", isolated_wallet_btc=D(0), futures_wallet_btc=D("0.5"),
                  futures_available_btc=D("0.3"), spot_btc=D(3))
    intent = topup(s, CONFIG)
    assert isinstance(intent, TopUp)
    assert intent.from_spot_btc == intent.amount_btc


# ---- rebalance -----------------------------------------------------------------------------
def test_rebalance_when_the_hedge_drifts_beyond_the_threshold() -> None:
    # Holdings grew to 5.5 BTC (spot 0.5 + futures 5): target 5.5 × 60,000 / 100 = 3,300.
    s = state(spot_btc=D("0.5"), futures_available_btc=D("0.1"))
    assert round(s.drift_pct, 4) == D("-9.0909")  # type: ignore[arg-type]
    intent = rebalance(s, CONFIG)
    assert isinstance(intent, Rebalance)
    assert intent.delta_contracts == 300
    assert intent.target_contracts == 3300
    # 300 more at 1x need 300 × 100/60,000 × 1.0005 = 0.50025 BTC: 0.1 spare + 0.40025 spot
    assert intent.from_spot_btc == D("0.40025")


def test_rebalance_within_the_threshold_or_buying_back() -> None:
    assert rebalance(state(spot_btc=D("0.2")), CONFIG) is None  # −3.85 %
    over = rebalance(state(isolated_wallet_btc=D("4.5")), CONFIG)  # 4.5 BTC held, target 2,700
    assert isinstance(over, Rebalance)
    assert over.delta_contracts == -300
    assert over.from_spot_btc == 0


def test_rebalance_without_coin_to_margin_it_warns() -> None:
    s = state(spot_btc=D(0), futures_available_btc=D(0), isolated_wallet_btc=D("5.5"))
    intent = rebalance(s, CONFIG)
    assert isinstance(intent, Warn)
    assert "no coin is left" in intent.text


# ---- funding -------------------------------------------------------------------------------
def test_warn_when_funding_is_persistently_against_the_short() -> None:
    assert funding_warning(state(funding_paid_streak=2), CONFIG) is None
    w = funding_warning(state(funding_paid_streak=3, funding_streak_start_ms=777,
                              funding_cum_btc=D("-0.003"),
                              funding_rate_predicted=D("-0.0002")), CONFIG)
    assert isinstance(w, Warn)
    assert w.key == "funding-against-777"  # one warning per streak
    assert "3 intervals in a row" in w.text
    assert "-0.0200%" in w.text


# ---- wake levels ---------------------------------------------------------------------------
def test_wake_levels_are_where_the_rules_would_act() -> None:
    config = replace(CONFIG, exit_below_usd=D(50000), exit_above_usd=D(90000))
    s = leveraged(mark_usd=D(56000), index_usd=D(55990))
    levels = wake_levels(s, config)
    # top-up: distance = LP/mark − 1 < 15 % once mark > 66,400 / 1.15 = 57,739.13
    assert levels.mark_above == D(66400) / D("1.15")
    assert levels.mark_below == D(50010)  # the stop on the index, plus today's basis of 10
    assert levels.reasons == ("topup", "exit_below")
    # In a discount (mark under the index) an index level converts below its index value.
    discount = wake_levels(replace(s, index_usd=D(50100), mark_usd=D(49990)), config)
    assert discount.mark_below == D(49890)


def test_drift_levels_solve_the_drift_equation() -> None:
    # 3,000 short (N = 300,000 USD) at mark 60,000 (u = 5 BTC), holdings 5.25: K = 0.25.
    s = state(spot_btc=D("0.25"))
    (level,) = drift_levels(s, CONFIG)
    # drift = −5 % when u = K·0.95/0.05 = 4.75 BTC, i.e. at 300,000 / 4.75
    assert level == D(300000) / D("4.75")
    at_level = replace(s, mark_usd=level, index_usd=level,
                       unrealized_pnl_btc=D("4.75") - D(5))
    assert round(at_level.drift_pct, 6) == D("-5")  # type: ignore[arg-type]


def test_drift_levels_hold_with_a_basis() -> None:
    # Half hedge, perp 100 under the index: the levels are marks where the rule's drift,
    # measured at the index (mark + 100), is exactly ±5 %.
    s = state(position_contracts=-1500, isolated_wallet_btc=D("2.5"), futures_wallet_btc=D("2.5"),
              hedge_ratio=D("0.5"), mark_usd=D(59900), index_usd=D(60000),
              unrealized_pnl_btc=D(150000) / D(59900) - D("2.5"))
    levels = drift_levels(s, CONFIG)
    assert len(levels) == 2
    for level in levels:
        moved = replace(s, mark_usd=level, index_usd=level + 100,
                        unrealized_pnl_btc=D(150000) / level - D("2.5"))
        assert abs(abs(moved.drift_pct) - 5) < D("1e-20")  # type: ignore[arg-type]
