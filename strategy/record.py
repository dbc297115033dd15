"""What a hedge run is configured with and what it records: the seam between the runner
(plan → open → monitor → exit) and the results (attribution, JSON, HTML report, CLI).

Amounts are Decimals in coin (BTC for BTCUSD) or USD, named with their unit; times are epoch
milliseconds of the venue's clock (simulated on perpsim, real on a live venue).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

MarginMode = Literal["isolated", "cross"]


# What `perpsim demo` runs: the default HedgeConfig on this bundled scenario and profile.
DEMO_SCENARIO = "calm_30d"
DEMO_PROFILE = "binance_coinm"


@dataclass(frozen=True)
class HedgeConfig:
    """Everything a run needs to know (the CLI's options, docs/contract.md)."""

    coin: str = "BTC"  # the coin held; the hedge shorts the venue's inverse perpetual of it
    symbol: str | None = None  # a market to trade instead (ccxt symbol or venue id)
    spot_btc: Decimal = Decimal(5)
    hedge_ratio: Decimal = Decimal(1)
    collateral_btc: Decimal | None = None  # None: all the spot (the 1x coin-collateral hedge)
    leverage: int = 1
    margin_mode: MarginMode = "isolated"
    topup: bool = True  # move spot coin into margin when the liquidation distance is short
    topup_below_pct: Decimal = Decimal(15)  # top up when liquidation is nearer than this
    topup_to_pct: Decimal = Decimal(35)  # ... to bring it back out to this distance
    rebalance_drift_pct: Decimal = Decimal(5)  # re-size when |hedge − target| / target > this
    funding_budget_btc: Decimal | None = None  # exit once net funding PAID exceeds this
    exit_above_usd: Decimal | None = None  # price-target / stop exits on the index
    exit_below_usd: Decimal | None = None
    end_ms: int | None = None  # exit at this time (default: the scenario's end)
    # How often the runner re-evaluates at least: price-driven rules wake it at their levels
    # anyway (stepped clock: wake levels; live: watch_* updates), so this sets the sampling.
    decision_interval_ms: int = 4 * 3_600_000
    max_order_contracts: int = 2_000  # slice larger orders
    maker_wait_ms: int = 60_000  # a post-only order waits this long before crossing
    reprice_interval_ms: int = 15_000  # how often a resting post-only order checks the book
    funding_warn_intervals: int = 3  # warn after this many payments in a row against the short


@dataclass(frozen=True)
class Sample:
    """The portfolio at one instant (one row of the report's charts)."""

    time_ms: int
    index_usd: Decimal
    mark_usd: Decimal
    last_usd: Decimal
    spot_btc: Decimal  # coin in the spot wallet
    futures_equity_btc: Decimal  # futures wallet + isolated margin + unrealised PnL
    position_contracts: int  # signed (a hedge is negative)
    liquidation_price_usd: Decimal | None
    margin_ratio: Decimal
    funding_cum_btc: Decimal  # + received, − paid, since the start
    fees_cum_btc: Decimal

    @property
    def hedged_value_usd(self) -> Decimal:
        """USD value of everything held: spot wallet + futures equity, at the index."""
        return (self.spot_btc + self.futures_equity_btc) * self.index_usd


@dataclass
class RunRecord:
    """A finished (or stopped) run: plan, timeline, fills, funding, events, outcome."""

    config: HedgeConfig
    plan: dict[str, Any]  # the plan as numbers and plain-words explanation
    start_ms: int
    start_index_usd: Decimal
    start_btc: Decimal  # all coin held at the start (spot + collateral)
    contracts: int = 0  # shorted (positive number)
    entry_price_usd: Decimal | None = None  # average fill price of the opening orders
    exit_price_usd: Decimal | None = None  # average fill price of the closing orders
    end_ms: int | None = None
    liquidated: bool = False
    exit_reason: str = ""
    futures_pnl_btc: Decimal = Decimal(0)  # realised on the futures leg (excl. fees, funding)
    funding_btc: Decimal = Decimal(0)  # + received, − paid
    fees_btc: Decimal = Decimal(0)  # paid (positive)
    topups_btc: Decimal = Decimal(0)
    contract_size_usd: Decimal = Decimal(100)  # USD per contract (the market's contractSize)
    samples: list[Sample] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # {time, type, ...}

    def event(self, time_ms: int, kind: str, **details: Any) -> None:
        """Add a timeline entry."""
        self.events.append({"time": time_ms, "type": kind, **details})
