"""The hedge workflow end to end: plan → open → monitor → exit → withdraw, into a RunRecord.

The runner only executes: decisions come from strategy.rules (pure), orders are worked by
strategy.execution, the state is read by strategy.monitor, time passes through a clock
(stepped perpsim or live). The ccxt calls are the same whichever clock drives it.

Liquidation is recognised from what the client can see on any venue: the position shrank or
vanished without one of our orders (the REST resync compares it with the sum of our fills),
plus the liquidation-engine orders the user stream reports; perpsim's control-plane events
(margin calls, liquidation steps) are added to the timeline when the stepped clock sees them.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import ccxt

from perpsim.numbers import readable
from perpsim.strategy.clock import Clock, SteppedClock, WaitResult
from perpsim.strategy.execution import ExecutionError, Executor, LegResult
from perpsim.strategy.markets import hedge_market
from perpsim.strategy.monitor import Monitor, MonitorState
from perpsim.strategy.plan import SATOSHI, HedgePlan, PlanError, make_plan
from perpsim.strategy.record import HedgeConfig, RunRecord, Sample
from perpsim.strategy.rules import (
    Exit,
    Rebalance,
    TopUp,
    Warn,
    decide,
    exit_time_ms,
    funding_check_time_ms,
    wake_levels,
)
from perpsim.strategy.venue import venue_for

ZERO = Decimal(0)
Progress = Callable[[float, int], None]
WATCHED_EVENTS = ("margin.call", "liquidation.triggered")
# perpsim journal events of our account worth a line in the timeline (stepped clock only).
VENUE_EVENTS = frozenset({"margin.call", "liquidation.triggered", "liquidation.cured",
                          "liquidation.takeover", "liquidation.completed", "adl.fill"})
MAX_IDLE_WAITS = 3  # waits that returned without time passing before wake-ups are dropped


def run_tag_for(config: HedgeConfig, start_ms: int) -> str:
    """A short deterministic tag for client order ids (same config and start → same ids)."""
    return hashlib.sha256(f"{config!r}|{start_ms}".encode()).hexdigest()[:8]


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def sample_of(state: MonitorState) -> Sample:
    """A record row from a monitor state."""
    return Sample(
        time_ms=state.time_ms, index_usd=state.index_usd, mark_usd=state.mark_usd,
        last_usd=state.last_usd, spot_btc=state.spot_btc,
        futures_equity_btc=state.futures_equity_btc,
        position_contracts=state.position_contracts,
        liquidation_price_usd=state.liquidation_price_usd, margin_ratio=state.margin_ratio,
        funding_cum_btc=state.funding_cum_btc, fees_cum_btc=state.fees_cum_btc)


class _Run:
    """One run's mutable bookkeeping (kept out of run_hedge for readability)."""

    def __init__(self, config: HedgeConfig, ex: Any, clock: Clock,
                 progress: Progress | None) -> None:
        self.config, self.ex, self.clock, self.progress = config, ex, clock, progress
        self.venue = venue_for(ex)
        self.record: RunRecord | None = None
        self.monitor: Monitor | None = None
        self.executor: Executor | None = None
        self.expected = 0  # the position our own fills add up to (signed)
        self.warned: set[str] = set()
        self.foreign_seen: set[str] = set()
        self.venue_kind = "liquidation"  # what the venue's own orders said, if anything
        self.venue_closed = False
        self.rebalances = 0
        self.start_ms = 0
        self.symbol = ""
        self.coin = ""
        self.market_id = ""

    # ---- timeline ------------------------------------------------------------------------------
    def event(self, time_ms: int, kind: str, details: dict[str, Any]) -> None:
        assert self.record is not None
        self.record.event(time_ms, kind, **details)

    def report(self, now_ms: int) -> None:
        if self.progress is None:
            return
        end = self.config.end_ms
        if end is None or end <= self.start_ms:
            fraction = 0.0
        else:
            fraction = min(1.0, max(0.0, (now_ms - self.start_ms) / (end - self.start_ms)))
        self.progress(fraction, now_ms)

    # ---- set-up --------------------------------------------------------------------------------
    async def balances(self) -> tuple[Decimal, Decimal]:
        """(spot, futures wallet) in the settlement coin."""
        spot = await self.ex.fetch_balance(dict(self.venue.spot_balance_params))
        futures = await self.ex.fetch_balance()
        return (self.venue.spot_coin(spot, self.coin),
                self.venue.futures_wallet(futures, self.coin).wallet_btc)

    async def transfer(self, amount: Decimal, to_futures: bool, why: str) -> None:
        amount = amount.quantize(SATOSHI)
        if amount <= 0:
            return
        spot, futures = self.venue.spot_account, self.venue.futures_account
        source, target = (spot, futures) if to_futures else (futures, spot)
        await self.ex.transfer(self.coin, float(amount), source, target)
        if self.monitor is not None:
            self.monitor.spot_changed()
        self.event(await self.clock.now_ms(), "transfer",
                   {"amount": str(amount), "to": "futures" if to_futures else "spot",
                    "reason": why})

    async def setup(self) -> HedgePlan:
        config, ex = self.config, self.ex
        await ex.load_markets()
        market = hedge_market(ex, config.coin, config.symbol)
        self.symbol, self.market_id = market["symbol"], market["id"]
        self.coin = market.get("settle") or market["base"]
        tiers = self.venue.tiers((await ex.fetch_leverage_tiers([self.symbol]))[self.symbol])
        premium = self.venue.premium(await ex.fetch_funding_rate(self.symbol))
        index, mark, rate = premium.index_usd, premium.mark_usd, premium.plan_rate
        self.start_ms = await self.clock.now_ms()
        spot, wallet = await self.balances()
        plan = make_plan(config, market, tiers, index_usd=index, mark_usd=mark,
                         funding_rate=rate)
        held = spot + wallet
        if held < config.spot_btc:
            raise PlanError(f"the account holds {held} {self.coin} (spot {spot}, futures "
                            f"{wallet}), less than the {config.spot_btc} to hedge")
        self.record = RunRecord(config=config, plan=plan.as_dict(), start_ms=self.start_ms,
                                start_index_usd=index, start_btc=held)
        self.event(self.start_ms, "plan", {"contracts": plan.contracts,
                                           "usd_locked": readable(plan.usd_locked),
                                           "explain": plan.explain()})
        plan.check()
        if wallet < plan.collateral_btc:
            await self.transfer(plan.collateral_btc - wallet, True, "deposit the collateral")
        await self.venue.set_margin(ex, config.margin_mode, config.leverage, self.symbol)
        self.monitor = Monitor(ex, self.symbol, tiers=tiers, start_ms=self.start_ms,
                               hedge_ratio=config.hedge_ratio, on_event=self.clock.notify_event,
                               on_mark=self.clock.notify_mark)
        self.monitor.concurrent_reads = not isinstance(self.clock, SteppedClock)
        if getattr(self.clock, "sole_actor", False):  # every event of the account is seen
            self.monitor.event_log = getattr(self.clock, "account_log", None)
        self.executor = Executor(
            ex, self.clock, self.symbol, run_tag=run_tag_for(config, self.start_ms),
            max_order_contracts=config.max_order_contracts, maker_wait_ms=config.maker_wait_ms,
            reprice_interval_ms=config.reprice_interval_ms, on_event=self.event)
        return plan

    # ---- the loop ------------------------------------------------------------------------------
    def count(self, leg: LegResult, sign: int) -> None:
        assert self.monitor is not None
        self.expected += sign * leg.filled
        self.monitor.fees_cum_btc += leg.fees_btc

    async def resync(self) -> MonitorState:
        """REST state, with funding payments and unexplained position changes recorded."""
        assert self.monitor is not None
        assert self.record is not None
        now = await self.clock.now_ms()
        previous_ms = self.monitor.state.time_ms if self.monitor.state else self.start_ms
        state = await self.monitor.resync(now)
        if state.position_contracts != self.expected and not self.monitor.streaming:
            await self.monitor.fetch_venue_orders(previous_ms)
        for time_ms, amount in self.monitor.new_income:
            self.event(time_ms, "funding.payment", {"amount": str(amount)})
        for order in self.monitor.live.foreign_orders:
            key = str(order.get("id") or order.get("clientOrderId"))
            if key in self.foreign_seen:
                continue  # the stream reports an order at every status change
            self.foreign_seen.add(key)
            kind = self.venue.order_kind(order) or "liquidation"
            self.venue_kind = kind
            self.event(int(order.get("timestamp") or now), f"{kind}.order",
                       {"client_order_id": order.get("clientOrderId"),
                        "side": order.get("side"), "contracts": order.get("amount")})
        self.monitor.live.foreign_orders.clear()
        actual = state.position_contracts
        if actual != self.expected:
            # Not our fills: the venue closed (part of) it. ADL if it said so, else liquidation.
            kind = self.venue_kind
            if kind == "liquidation":
                self.record.liquidated = True
            self.venue_closed = True
            self.event(now, kind, {"contracts_before": self.expected, "contracts_after": actual,
                                   "contracts_lost": abs(self.expected) - abs(actual)})
            self.expected = actual
        if self.venue_closed:
            state = replace(state, liquidated=True)
        return state

    async def topup(self, intent: TopUp, state: MonitorState) -> None:
        assert self.record is not None
        now = await self.clock.now_ms()
        try:
            if intent.from_spot_btc > 0:
                await self.transfer(intent.from_spot_btc, True, "top-up")
            if state.margin_mode == "isolated":
                await self.venue.add_isolated_margin(self.ex, self.market_id, intent.amount_btc)
        except ccxt.ExchangeError as error:
            self.event(now, "warning", {"text": f"top-up failed: {error}"})
            return
        self.record.topups_btc += intent.amount_btc
        self.event(now, "topup", {"amount": str(intent.amount_btc),
                                  "from_spot": str(intent.from_spot_btc),
                                  "liquidation_price_before": _s(state.liquidation_price_usd),
                                  "reason": intent.reason})

    async def rebalance(self, intent: Rebalance) -> None:
        assert self.executor is not None
        self.rebalances += 1
        now = await self.clock.now_ms()
        self.event(now, "rebalance", {"delta_contracts": intent.delta_contracts,
                                      "target_contracts": intent.target_contracts,
                                      "reason": intent.reason})
        leg = f"rb{self.rebalances}"
        try:
            if intent.from_spot_btc > 0:
                await self.transfer(intent.from_spot_btc, True, "margin for the rebalance")
            if intent.delta_contracts > 0:
                self.count(await self.executor.trade(leg, "sell", intent.delta_contracts), -1)
            else:
                self.count(await self.executor.trade(leg, "buy", -intent.delta_contracts,
                                                     reduce_only=True), 1)
        except (ccxt.ExchangeError, ExecutionError) as error:
            self.event(await self.clock.now_ms(), "warning",
                       {"text": f"rebalance failed: {error}"})
            for leg_result in self.executor.legs[-1:]:
                if leg_result.leg == leg:
                    self.count(leg_result, -1 if leg_result.side == "sell" else 1)

    def venue_events(self, waited: WaitResult) -> None:
        for e in waited.events:
            kind = e.get("type")
            if kind == "adl.fill":
                self.venue_kind = "adl"
            if kind in VENUE_EVENTS:
                details = {k: v for k, v in e.items()
                           if k not in ("type", "time", "seq", "account_id", "positions")}
                self.event(int(e.get("time") or waited.now_ms), str(kind), details)

    async def monitor_loop(self) -> Exit:
        assert self.record is not None
        assert self.monitor is not None
        config, idle = self.config, 0
        while True:
            state = await self.resync()
            self.record.samples.append(sample_of(state))
            self.report(state.time_ms)
            intents = decide(state, config)
            for intent in intents:
                if isinstance(intent, Exit):
                    return intent
                if isinstance(intent, TopUp):
                    await self.topup(intent, state)
                elif isinstance(intent, Rebalance):
                    await self.rebalance(intent)
                elif isinstance(intent, Warn) and intent.key not in self.warned:
                    self.warned.add(intent.key)
                    self.event(state.time_ms, "warning", {"text": intent.text})
            if any(isinstance(i, TopUp | Rebalance) for i in intents):
                state = await self.resync()
            now = await self.clock.now_ms()
            until = now + max(1, config.decision_interval_ms)
            leave = exit_time_ms(state, config)
            if leave is not None:
                until = min(until, max(leave, now))
            check = funding_check_time_ms(state, config)
            if check is not None and check > now:  # judge the budget before the settlement
                until = min(until, check)
            levels = wake_levels(state, config)
            if idle >= MAX_IDLE_WAITS:  # something keeps waking us at once: plain time step
                waited = await self.clock.wait(max(until, now + 1))
            else:
                waited = await self.clock.wait(until, wake=levels, stop_on=WATCHED_EVENTS)
            idle = idle + 1 if waited.now_ms == now else 0
            self.venue_events(waited)
            self.monitor.after_wait(waited, sole_actor=getattr(self.clock, "sole_actor", False))

    # ---- exit ----------------------------------------------------------------------------------
    async def finish(self, reason: Exit) -> None:
        assert self.record is not None
        assert self.executor is not None
        assert self.monitor is not None
        record, now = self.record, await self.clock.now_ms()
        record.exit_reason = ("adl" if reason.reason == "liquidated" and self.venue_kind == "adl"
                              else reason.reason)
        self.event(now, "exit", {"reason": reason.reason, "detail": reason.detail})
        close = await self.executor.close_position("close")
        self.count(close, 1 if close.side == "buy" else -1)
        if close.fills:
            record.exit_price_usd = close.avg_price_usd
        state = await self.resync()
        # Everything left in the futures wallet goes back to spot (isolated margin was
        # released into the wallet when the position closed).
        await self.transfer(state.futures_available_btc, False, "withdraw the collateral")
        if reason.reason == "end" and self.config.end_ms is not None:
            # Flat a little early (see rules.exit_time_ms); the record still spans the window.
            await self.clock.wait(self.config.end_ms)
        final = await self.resync()
        await self.totals()
        record.samples.append(sample_of(final))
        record.end_ms = final.time_ms
        record.events.sort(key=lambda e: e["time"])  # stable: same-time entries keep their order
        self.report(final.time_ms)

    async def totals(self) -> None:
        """Realised PnL, fees from our trades; funding from the income history."""
        assert self.record is not None
        assert self.monitor is not None
        record = self.record
        pnl, fees = await self.venue.realised_and_fees(self.ex, self.symbol, self.start_ms)
        record.futures_pnl_btc = pnl
        record.fees_btc = fees
        state = self.monitor.state
        record.funding_btc = state.funding_cum_btc if state is not None else ZERO


async def run_hedge(config: HedgeConfig, exchange: Any, clock: Clock, *,
                    progress: Progress | None = None) -> RunRecord:
    """Run the whole hedge on a ccxt.pro client (or a zero-argument factory of one, which is
    then closed here) and return the filled-in RunRecord. Raises PlanError before any order
    when the plan is infeasible."""
    owned = callable(exchange) and not isinstance(exchange, ccxt.Exchange) and not hasattr(
        exchange, "load_markets")
    ex = exchange() if owned else exchange
    if inspect.isawaitable(ex):
        ex = await ex
    run = _Run(config, ex, clock, progress)
    try:
        plan = await run.setup()
        assert run.monitor is not None
        assert run.executor is not None
        assert run.record is not None
        run.monitor.start()
        run.record.samples.append(sample_of(await run.resync()))
        opened = await run.executor.trade("open", "sell", plan.contracts)
        run.count(opened, -1)
        run.record.contracts = opened.filled
        run.record.entry_price_usd = opened.avg_price_usd
        reason = await run.monitor_loop()
        await run.finish(reason)
        return run.record
    finally:
        if run.monitor is not None:
            await run.monitor.stop()
        if owned:
            await ex.close()
