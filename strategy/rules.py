"""The hedger's decisions: pure functions from a MonitorState (and the config) to intents.

Nothing here talks to the wire or reads a clock; the runner executes what comes back. Every
rule is written for the short hedge this product runs, but the arithmetic keeps the side.

* exit: the window's end, the index at a price target / stop, net funding paid past a budget
  (before the settlement that would take it past, judged by the predicted rate), or the
  position liquidated;
* top up: the liquidation distance fell below ``topup_below_pct`` → move enough coin into the
  position's margin to put it back at ``topup_to_pct`` (futures wallet first, then spot);
* rebalance: |hedge drift| beyond ``rebalance_drift_pct`` → re-size to the target;
* warn: funding against the short for ``funding_warn_intervals`` payments in a row.

:func:`wake_levels` turns the same thresholds into the mark prices at which the rules would act,
so a clock can sleep until one of them is reached instead of stepping finely.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from perpsim.strategy.monitor import MonitorState
from perpsim.strategy.plan import HUNDRED, SATOSHI, margin_for_liquidation_price
from perpsim.strategy.record import HedgeConfig

ZERO = Decimal(0)


@dataclass(frozen=True)
class TopUp:
    """Add ``amount_btc`` to the position's margin, ``from_spot_btc`` of it moved from spot."""

    amount_btc: Decimal
    from_spot_btc: Decimal
    reason: str


@dataclass(frozen=True)
class Rebalance:
    """Change the short by ``delta_contracts`` (> 0 sells more, < 0 buys back) to the target;
    ``from_spot_btc`` is moved to the futures wallet first to margin a larger short."""

    delta_contracts: int
    target_contracts: int
    reason: str
    from_spot_btc: Decimal = ZERO


@dataclass(frozen=True)
class Warn:
    """Tell the user something; ``key`` identifies it so it is said once."""

    key: str
    text: str


@dataclass(frozen=True)
class Exit:
    """Close the hedge: ``reason`` is end, price_above, price_below, funding_budget, liquidated."""

    reason: str
    detail: str = ""


Intent = TopUp | Rebalance | Warn | Exit


@dataclass(frozen=True)
class WakeLevels:
    """Mark levels to be woken at: the nearest above and below the mark, and why."""

    mark_above: Decimal | None = None
    mark_below: Decimal | None = None
    reasons: tuple[str, ...] = ()


def _pct(value: Decimal | None) -> str:
    return "none" if value is None else f"{value.quantize(Decimal('0.01'))}%"


# ---- exits -------------------------------------------------------------------------------------
EXIT_MARGIN_MS = 60_000


def _close_ms(state: MonitorState, config: HedgeConfig) -> int:
    """How long closing may take: every slice may wait ``maker_wait_ms`` before it crosses,
    plus a minute's margin."""
    slices = -(-abs(state.position_contracts) // max(1, config.max_order_contracts))
    return slices * max(0, config.maker_wait_ms) + EXIT_MARGIN_MS


def exit_time_ms(state: MonitorState, config: HedgeConfig) -> int | None:
    """When to start closing so the hedge is flat by ``end_ms``."""
    if config.end_ms is None:
        return None
    return config.end_ms - _close_ms(state, config)


def funding_check_time_ms(state: MonitorState, config: HedgeConfig) -> int | None:
    """When to judge the funding budget against the next settlement: early enough to be flat
    before it (None without a budget, a position or a known next funding time)."""
    if config.funding_budget_btc is None or not state.position_contracts or \
            state.next_funding_ms is None:
        return None
    return state.next_funding_ms - _close_ms(state, config)


def predicted_funding_btc(state: MonitorState) -> Decimal | None:
    """The next settlement's payment to the position at the predicted rate, valued at the mark
    (+ received, − paid): a positive rate makes longs pay shorts."""
    rate = state.funding_rate_predicted
    if rate is None or not state.position_contracts or state.mark_usd <= 0:
        return None
    return -state.position_contracts * state.contract_size_usd / state.mark_usd * rate


def _funding_budget_exit(state: MonitorState, config: HedgeConfig) -> Exit | None:
    """Exit now if the next settlement, at the predicted rate, would take net funding paid past
    the budget, and it is time to close so as to be flat before it."""
    budget, check = config.funding_budget_btc, funding_check_time_ms(state, config)
    upcoming = predicted_funding_btc(state)
    if budget is None or check is None or upcoming is None or state.next_funding_ms is None:
        return None
    if not check <= state.time_ms < state.next_funding_ms:
        return None
    paid_after = -(state.funding_cum_btc + upcoming)
    if paid_after <= budget:
        return None
    rate = state.funding_rate_predicted or ZERO
    return Exit("funding_budget",
                f"the settlement at {_utc(state.next_funding_ms)} would pay "
                f"{(-upcoming).quantize(SATOSHI)} at the predicted rate "
                f"{rate * HUNDRED:.4f}%, taking net funding paid to "
                f"{paid_after.quantize(SATOSHI)} past the budget {budget}: closed before it")


def _utc(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def exit_trigger(state: MonitorState, config: HedgeConfig) -> Exit | None:
    """The first exit condition that holds, if any."""
    if state.liquidated and state.position_contracts == 0:
        return Exit("liquidated", "the position was liquidated")
    leave = exit_time_ms(state, config)
    if leave is not None and state.time_ms >= leave:
        return Exit("end", "the hedging window ends: closing so as to be flat by its end")
    if config.exit_above_usd is not None and state.index_usd >= config.exit_above_usd:
        return Exit("price_above", f"index {state.index_usd} reached the target "
                                   f"{config.exit_above_usd}")
    if config.exit_below_usd is not None and state.index_usd <= config.exit_below_usd:
        return Exit("price_below", f"index {state.index_usd} reached the stop "
                                   f"{config.exit_below_usd}")
    budget = config.funding_budget_btc
    if budget is not None and -state.funding_cum_btc > budget:
        # the settlement came sooner or paid more than predicted
        return Exit("funding_budget", f"net funding paid {-state.funding_cum_btc} exceeds the "
                                      f"budget {budget}")
    return _funding_budget_exit(state, config)


# ---- top-up ------------------------------------------------------------------------------------
def topup_amount(state: MonitorState, config: HedgeConfig) -> Decimal:
    """Margin to add so the liquidation price sits ``topup_to_pct`` away from the mark (0 if it
    already does)."""
    qty, entry = state.position_contracts, state.entry_price_usd
    if not qty or entry is None:
        return ZERO
    side = 1 if qty > 0 else -1
    target_lp = state.mark_usd * (1 - side * config.topup_to_pct / HUNDRED)
    if target_lp <= 0:
        return ZERO
    needed = margin_for_liquidation_price(qty, entry, state.contract_size_usd, target_lp,
                                          state.tiers)
    have = state.isolated_wallet_btc if state.margin_mode == "isolated" else \
        state.futures_wallet_btc
    missing = needed - have
    return missing.quantize(SATOSHI, rounding=decimal.ROUND_UP) if missing > 0 else ZERO


def topup(state: MonitorState, config: HedgeConfig) -> TopUp | Warn | None:
    """Top up (or say why not) when the liquidation distance is below the threshold."""
    distance = state.liquidation_distance_pct
    if distance is None or distance >= config.topup_below_pct:
        return None
    bucket = int(distance)  # say it again only when the distance moved by a whole percent
    if not config.topup:
        return Warn(f"topup-forbidden-{bucket}",
                    f"liquidation is {_pct(distance)} away (below {config.topup_below_pct}%) "
                    "and top-ups are forbidden")
    amount = topup_amount(state, config)
    if amount <= 0:
        return None
    # Isolated: spare coin in the futures wallet first, then the spot wallet. Cross: the
    # futures wallet already backs the position, so new coin has to come from spot.
    spare = max(ZERO, state.futures_available_btc) if state.margin_mode == "isolated" else ZERO
    spare = spare.quantize(SATOSHI, rounding=decimal.ROUND_DOWN)
    from_spot = min(max(ZERO, amount - spare), state.spot_btc)
    usable = min(amount, spare + from_spot)
    if usable <= 0:
        return Warn(f"topup-empty-{bucket}",
                    f"liquidation is {_pct(distance)} away and no coin is left to top up")
    reason = (f"liquidation {_pct(distance)} away, below {config.topup_below_pct}%: add "
              f"{usable} to bring it to {config.topup_to_pct}%")
    if usable < amount:
        reason += f" (only {usable} of {amount} is available)"
    return TopUp(amount_btc=usable, from_spot_btc=from_spot, reason=reason)


# ---- rebalance ---------------------------------------------------------------------------------
def rebalance(state: MonitorState, config: HedgeConfig) -> Rebalance | Warn | None:
    """Re-size the short when it drifted beyond ``rebalance_drift_pct`` from its target.

    Buying back needs nothing; selling more needs its initial margin and fee, taken from the
    futures wallet's available balance, then from spot; if neither covers it, as much as they
    cover (a warning when that is nothing)."""
    drift = state.drift_pct
    if state.position_contracts >= 0 or drift is None or abs(drift) <= config.rebalance_drift_pct:
        return None
    short = -state.position_contracts
    target = state.target_contracts
    delta = target - short
    if delta == 0:
        return None
    reason = (f"hedge drift {_pct(drift)} beyond ±{config.rebalance_drift_pct}%: "
              f"{short} → {target} contracts")
    if delta < 0:
        return Rebalance(delta, target, reason)
    per_contract = state.contract_size_usd / state.index_usd * (
        Decimal(1) / max(state.leverage, 1) + state.taker_rate)
    spare = max(ZERO, state.futures_available_btc)
    funds = spare + max(ZERO, state.spot_btc)
    affordable = int(funds / per_contract)
    if affordable <= 0:
        return Warn(f"rebalance-unfunded-{int(drift)}",
                    f"{reason}, but no coin is left to margin a larger short")
    if affordable < delta:
        delta = affordable
        reason += f" (margin for {affordable} more only)"
    need = delta * per_contract
    from_spot = min(max(ZERO, need - spare), state.spot_btc)
    from_spot = min(from_spot.quantize(SATOSHI, rounding=decimal.ROUND_UP), state.spot_btc)
    return Rebalance(delta, target, reason, from_spot)


# ---- funding -----------------------------------------------------------------------------------
def funding_warning(state: MonitorState, config: HedgeConfig) -> Warn | None:
    """Warn once per streak of ``funding_warn_intervals`` payments the short paid."""
    n = config.funding_warn_intervals
    if n <= 0 or state.funding_paid_streak < n or state.position_contracts >= 0:
        return None
    predicted = state.funding_rate_predicted
    text = (f"funding has been against the short for {state.funding_paid_streak} intervals in "
            f"a row (net funding so far {state.funding_cum_btc}); next predicted rate "
            f"{'unknown' if predicted is None else f'{predicted * HUNDRED:.4f}%'}")
    return Warn(f"funding-against-{state.funding_streak_start_ms}", text)


def decide(state: MonitorState, config: HedgeConfig) -> list[Intent]:
    """Every intent for this decision point (an Exit, if any, comes alone)."""
    ex = exit_trigger(state, config)
    if ex is not None:
        return [ex]
    intents: list[Intent] = []
    for rule in (topup, rebalance, funding_warning):
        intent = rule(state, config)
        if intent is not None:
            intents.append(intent)
    return intents


# ---- wake levels -------------------------------------------------------------------------------
def drift_levels(state: MonitorState, config: HedgeConfig) -> list[Decimal]:
    """Marks at which |drift| would reach ``rebalance_drift_pct``, basis and all else held.

    The rule measures drift = (N/I − r·T) / (r·T) at the index I, and the holdings
    T = K + N/m move only with the short's PnL at the mark m = I + b (K = T − N/mark now, b the
    basis). Setting drift = ±d and q = r·(1 ± d):  N/I = q·(K + N/(I + b)), i.e.
    q·K·I² + (q·(K·b + N) − N)·I − N·b = 0. Each positive root I gives the mark I + b.
    """
    qty = state.position_contracts
    if qty >= 0:
        return []
    n = abs(qty) * state.contract_size_usd
    b = state.mark_usd - state.index_usd
    k = state.total_btc - n / state.mark_usd
    levels: list[Decimal] = []
    for sign in (1, -1):
        q = state.hedge_ratio * (1 + sign * config.rebalance_drift_pct / HUNDRED)
        a, lin, c = q * k, q * (k * b + n) - n, -n * b
        if a == 0:
            roots = [] if lin == 0 else [-c / lin]
        else:
            disc = lin * lin - 4 * a * c
            if disc < 0:
                continue
            root = disc.sqrt()
            roots = [(-lin + root) / (2 * a), (-lin - root) / (2 * a)]
        # A constant basis stops being a model long before it is 10 % of the price: the
        # quadratic's other root sits down there.
        levels.extend(x + b for x in roots if x > 10 * abs(b) and x + b > 0)
    return levels


def wake_levels(state: MonitorState, config: HedgeConfig) -> WakeLevels:
    """The nearest mark levels, above and below the mark, at which a rule would act.

    Liquidation, top-up and drift levels are on the mark already. Exit levels are on the index:
    each becomes a mark level by today's basis (mark − index), which keeps it on the same side
    of the mark as it is of the index. If the basis moves during the wait the wake comes a
    little early or late; the next decision re-levels with the new basis.
    """
    mark, index = state.mark_usd, state.index_usd
    above: list[tuple[Decimal, str]] = []
    below: list[tuple[Decimal, str]] = []
    liq = state.liquidation_price_usd
    if state.position_contracts and liq is not None and liq.is_finite():
        side = 1 if state.position_contracts > 0 else -1
        for level, why in ((liq, "liquidation"),
                           (liq / (1 - side * config.topup_below_pct / HUNDRED), "topup")):
            (above if level > mark else below).append((level, why))
    if state.position_contracts < 0 and config.rebalance_drift_pct > 0:
        for level in drift_levels(state, config):
            (above if level > mark else below).append((level, "rebalance"))
    on_index: list[tuple[Decimal, str]] = [
        (level, why) for level, why in ((config.exit_above_usd, "exit_above"),
                                        (config.exit_below_usd, "exit_below"))
        if level is not None]
    basis = mark - index
    for level, why in on_index:
        if level != index:  # at the level the rule acts now
            (above if level > index else below).append((level + basis, why))
    below = [(lv, why) for lv, why in below if lv > 0]
    up = min(above, default=None)
    down = max(below, default=None)
    return WakeLevels(
        mark_above=None if up is None else up[0], mark_below=None if down is None else down[0],
        reasons=tuple(why for why in (up and up[1], down and down[1]) if why))
