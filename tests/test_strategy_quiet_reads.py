"""The futures balance and the position are reused only after a wait in which nothing could
have moved them but the mark (strategy/quiet_reads.py; the position's unrealised PnL at the
new mark: strategy/mark_pnl.py), and reusing them changes nothing in a dry run's record."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from dry_run_helpers import counted_dry_run

from perpsim.strategy import quiet_reads
from perpsim.strategy.clock import WaitResult
from perpsim.strategy.monitor import MonitorState
from perpsim.strategy.quiet_reads import (
    QuietRead,
    funding_left_cross_wallet,
    order_unchanged,
    quiet_wait,
)
from perpsim.strategy.record import HedgeConfig

HOUR_MS = 3_600_000
FUNDING_MS = 8 * HOUR_MS


def _state(contracts: int = -300, mode: str = "isolated",
           next_funding_ms: int | None = FUNDING_MS) -> MonitorState:
    return MonitorState(time_ms=0, symbol="BTC/USD:BTC", market_id="BTCUSD_PERP",
                        contract_size_usd=Decimal(100), tiers=(), index_usd=Decimal(60_000),
                        mark_usd=Decimal(60_000), last_usd=Decimal(60_000),
                        position_contracts=contracts, margin_mode=mode,
                        next_funding_ms=next_funding_ms)


def _waited(now_ms: int = 4 * HOUR_MS, *events: dict[str, Any]) -> WaitResult:
    return WaitResult(now_ms, "time", tuple(events))


def test_a_wait_is_quiet_only_if_nothing_could_move_the_account() -> None:
    assert quiet_wait(_waited(), _state())
    assert quiet_wait(_waited(4 * HOUR_MS, {"type": "wake"}), _state())  # a level, not money
    assert quiet_wait(_waited(), _state(contracts=0, mode="cross"))  # flat: nothing moves
    assert not quiet_wait(_waited(4 * HOUR_MS, {"type": "order.update"}), _state())
    assert not quiet_wait(_waited(4 * HOUR_MS, {"type": "funding.payment"}), _state())
    assert not quiet_wait(_waited(), _state(mode="cross"))  # the mark moves cross balances
    assert not quiet_wait(_waited(FUNDING_MS), _state())  # a funding time passed
    assert not quiet_wait(_waited(), None)  # nothing read yet


def test_an_order_is_unchanged_only_after_an_eventless_wait_with_nobody_else() -> None:
    assert order_unchanged(_waited(), sole_actor=True)
    assert order_unchanged(_waited(FUNDING_MS, {"type": "wake"}), sole_actor=True)
    assert not order_unchanged(_waited(), sole_actor=False)  # live: read it
    assert not order_unchanged(_waited(4 * HOUR_MS, {"type": "order.update"}), sole_actor=True)
    assert not order_unchanged(_waited(4 * HOUR_MS, {"type": "funding.payment"}),
                               sole_actor=True)


def test_the_answer_is_reused_once_after_a_quiet_wait_and_only_then() -> None:
    reads = Counter[str]()

    async def fetch() -> dict[str, int]:
        reads["n"] += 1
        return {"read": reads["n"]}

    async def scenario() -> list[int]:
        cache, seen = QuietRead(), []
        seen.append((await cache.read(fetch))["read"])  # first: read
        cache.after_wait(_waited(), _state(), sole_actor=True)
        seen.append((await cache.read(fetch))["read"])  # quiet: reused
        seen.append((await cache.read(fetch))["read"])  # no wait in between: read
        cache.after_wait(_waited(), _state(), sole_actor=True)
        cache.changed()  # our own transfer
        seen.append((await cache.read(fetch))["read"])
        cache.after_wait(_waited(), _state(), sole_actor=False)  # live: others may act
        seen.append((await cache.read(fetch))["read"])
        cache.after_wait(_waited(4 * HOUR_MS, {"type": "adl.fill"}), _state(), sole_actor=True)
        seen.append((await cache.read(fetch))["read"])
        return seen

    assert asyncio.run(scenario()) == [1, 1, 2, 3, 4, 5]


def _read_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """No balance or position answer reused, whatever the wait."""
    monkeypatch.setattr(quiet_reads, "quiet_wait", lambda waited, state: False)
    monkeypatch.setattr(quiet_reads, "funding_left_cross_wallet",
                        lambda waited, state, coin, cross_wallet_btc: False)


def _payment(wallet: str = "0.5", mode: str = "isolated", coin: str = "BTC") -> dict[str, Any]:
    return {"type": "funding.payment", "account_id": "1", "symbol": "BTCUSD_PERP",
            "amount": "0.0001", "coin": coin, "margin_mode": mode, "wallet": wallet,
            "isolated_wallet": "0.3"}


def test_funding_spares_the_balance_only_into_isolated_margin_with_the_cross_wallet_as_read(
        ) -> None:
    def spares(*events: dict[str, Any], state: MonitorState | None = None,
               cross: Decimal | None = Decimal("0.50000000")) -> bool:
        return funding_left_cross_wallet(_waited(FUNDING_MS, *events),
                                         _state() if state is None else state, coin="BTC",
                                         cross_wallet_btc=cross)

    assert spares(_payment())
    assert spares(_payment(), {"type": "wake"}, _payment())  # two legs, a level
    assert spares()  # a funding time passed, nothing paid (flat, or nothing due)
    assert not spares(_payment(wallet="0.49"))  # the cross wallet moved
    assert not spares(_payment(mode="cross"))  # cross funding moves the cross wallet
    assert not spares(_payment(coin="ETH"))  # another coin's wallet: not the one read
    assert not spares(_payment(), {"type": "order.update"})  # anything else: read
    assert not spares(_payment(wallet="not a number"))
    assert not spares(_payment(), cross=None)  # the venue does not report it apart
    assert not spares(_payment(), state=_state(mode="cross"))  # the mark moves cross balances
    assert not funding_left_cross_wallet(_waited(FUNDING_MS, _payment()), None, coin="BTC",
                                         cross_wallet_btc=Decimal("0.5"))


@pytest.mark.parametrize(("profile", "scenario"), [("binance_coinm", "calm"),
                                                   ("binance_coinm", "funding_flip"),
                                                   ("bybit_inverse", "calm")])
def test_the_balance_is_not_read_after_isolated_funding_and_the_record_is_the_same(
        monkeypatch: pytest.MonkeyPatch, profile: str, scenario: str) -> None:
    spared, spared_paths, _ = _dry_run(scenario, profile)
    monkeypatch.setattr(quiet_reads, "funding_left_cross_wallet",
                        lambda waited, state, coin, cross_wallet_btc: False)
    read, read_paths, _ = _dry_run(scenario, profile)
    assert spared == read
    balance = REUSED[profile][0]
    if profile == "binance_coinm":  # the cross wallet reported apart: reads spared
        assert 0 < spared_paths[balance] < read_paths[balance]
    else:  # Bybit reports no cross wallet apart: every read made
        assert spared_paths == read_paths
    assert {k: v for k, v in spared_paths.items() if k != balance} == \
        {k: v for k, v in read_paths.items() if k != balance}


def _dry_run(scenario: str, profile: str = "binance_coinm",
             config: HedgeConfig | None = None) -> tuple[str, Counter[str], int]:
    record, paths, hedge = counted_dry_run(scenario, profile, config)
    return record, paths, len(hedge.samples)


# The futures balance and the position reads of each venue's wire.
REUSED = {"binance_coinm": ("GET /dapi/v1/account", "GET /dapi/v1/positionRisk"),
          "bybit_inverse": ("GET /v5/account/wallet-balance", "GET /v5/position/list")}


@pytest.mark.parametrize(("profile", "scenario"), [("binance_coinm", "calm"),
                                                   ("binance_coinm", "crash"),
                                                   ("bybit_inverse", "calm")])
def test_a_dry_run_reads_balance_and_position_less_and_records_the_same(
        monkeypatch: pytest.MonkeyPatch, profile: str, scenario: str) -> None:
    reused, reused_paths, samples = _dry_run(scenario, profile)
    _read_every_time(monkeypatch)
    every, every_paths, _ = _dry_run(scenario, profile)
    assert reused == every
    for path in REUSED[profile]:
        assert every_paths[path] >= samples  # without reuse: one per decision at least
        assert 0 < reused_paths[path] < every_paths[path]
    # Only those reads are saved: every other endpoint is asked as often.
    assert {k: v for k, v in reused_paths.items() if k not in REUSED[profile]} == \
        {k: v for k, v in every_paths.items() if k not in REUSED[profile]}


# How each venue's ccxt client reads one order (Bybit: the open list, then the history).
ORDER_READS = {"binance_coinm": ("GET /dapi/v1/order",),
               "bybit_inverse": ("GET /v5/order/realtime", "GET /v5/order/history")}


@pytest.mark.parametrize(("profile", "scenario"), [("binance_coinm", "calm"),
                                                   ("bybit_inverse", "calm")])
def test_a_resting_order_is_read_again_only_after_an_event_and_records_the_same(
        monkeypatch: pytest.MonkeyPatch, profile: str, scenario: str) -> None:
    reused, reused_paths, _ = _dry_run(scenario, profile)
    monkeypatch.setattr(quiet_reads, "order_unchanged", lambda waited, sole_actor: False)
    every, every_paths, _ = _dry_run(scenario, profile)
    assert reused == every
    reads = ORDER_READS[profile]
    assert 0 < sum(reused_paths[p] for p in reads) < sum(every_paths[p] for p in reads)
    assert {k: v for k, v in reused_paths.items() if k not in reads} == \
        {k: v for k, v in every_paths.items() if k not in reads}


def test_a_liquidated_hedge_records_the_same_with_every_reuse(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """10x without top-ups on the squeeze: margin calls, then the venue liquidates the short."""
    config = HedgeConfig(leverage=10, topup=False, collateral_btc=Decimal(1))
    reused, reused_paths, _ = _dry_run("squeeze", config=config)
    assert '"liquidated": true' in reused
    _read_every_time(monkeypatch)
    monkeypatch.setattr(quiet_reads, "order_unchanged", lambda waited, sole_actor: False)
    every, every_paths, _ = _dry_run("squeeze", config=config)
    assert reused == every
    assert sum(reused_paths.values()) < sum(every_paths.values())
