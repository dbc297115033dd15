"""Determinism (same profile, scenario, seed and calls → the same journal, byte for byte) and
whole runs of every bundled scenario with the ledger conserved."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from perpsim.sim import algo, trading
from perpsim.sim.exchange import Exchange
from perpsim.sim.money import quantize

from engine_helpers import (
    BTC,
    HOUR_MS,
    MINUTE_MS,
    check_invariants,
    fund,
    make_exchange,
    of_type,
    protected_balances,
)

BUNDLED = ["calm", "crash", "squeeze", "funding_flip", "basis_blowout", "real-2022-12-13"]


def _session(scenario: str = "crash", scenario_seed: int = 7, *,
             step_ms: int | None = None) -> Exchange:
    """A fixed sequence of client calls over a scenario (the same every time it is called)."""
    ex = make_exchange(scenario=scenario, scenario_seed=scenario_seed, seed=42)
    hedger = fund(ex, "1", label="hedger", mode="isolated", leverage=1)
    long_ = fund(ex, "0.2", label="long", mode="isolated", leverage=20)
    cross = fund(ex, "1", label="cross")
    price = ex.mark_price(BTC)
    trading.place_order(ex, hedger, BTC, "SELL", "MARKET", int(Decimal("0.98") * price / 100))
    trading.place_order(ex, long_, BTC, "BUY", "MARKET", 500)
    trading.place_order(ex, cross, BTC, "SELL", "LIMIT", 200, quantize(price * Decimal("1.01"),
                                                                        Decimal("0.1")))
    algo.place_algo(ex, cross, BTC, "BUY", "STOP_MARKET", 100,
                    quantize(price * Decimal("1.2"), Decimal("0.1")), working_type="MARK_PRICE")
    resting = trading.place_order(ex, cross, BTC, "BUY", "LIMIT", 50,
                                  quantize(price * Decimal("0.9"), Decimal("0.1")))
    end = ex.scenario.end_ms
    assert end is not None
    if step_ms is None:
        ex.advance_until(ex.now_ms + 20 * HOUR_MS)
    else:
        while ex.now_ms < ex.scenario.start_ms + 20 * HOUR_MS:
            ex.advance(min(step_ms, ex.scenario.start_ms + 20 * HOUR_MS - ex.now_ms))
    if resting.is_open:
        trading.cancel_order(ex, cross, BTC, resting.order_id)
    if ex.position(long_, BTC).is_open:
        trading.place_order(ex, long_, BTC, "SELL", "MARKET", 100, reduce_only=True)
    late = fund(ex, "0.5", label="late", leverage=10)
    trading.place_order(ex, late, BTC, "BUY", "MARKET", 300)
    if step_ms is None:
        ex.advance_until(end)
    else:
        while ex.now_ms < end:
            ex.advance(min(step_ms, end - ex.now_ms))
    return ex


def test_same_inputs_give_a_byte_identical_journal() -> None:
    a, b = _session(), _session()
    assert len(a.journal) > 20
    assert a.journal.to_jsonl() == b.journal.to_jsonl()
    assert a.journal.digest() == b.journal.digest()
    assert [(p.source, p.destination, p.amount, p.reason) for p in a.ledger.postings] == [
        (p.source, p.destination, p.amount, p.reason) for p in b.ledger.postings]
    # The run did something worth comparing: trades, funding, a liquidation.
    kinds = {e.type for e in a.journal.expanded()}
    assert {"order.update", "funding.payment", "liquidation.triggered"} <= kinds


def test_a_different_scenario_seed_gives_a_different_journal() -> None:
    a, b = _session(scenario_seed=7), _session(scenario_seed=8)
    assert a.journal.digest() != b.journal.digest()
    assert a.journal.to_jsonl() != b.journal.to_jsonl()


def test_splitting_the_advances_does_not_change_the_journal() -> None:
    """Jumping in one go or in odd steps visits the same instants and records the same events."""
    whole = _session()
    assert _session(step_ms=HOUR_MS).journal.to_jsonl() == whole.journal.to_jsonl()
    assert _session(step_ms=7 * MINUTE_MS + 13).journal.to_jsonl() == whole.journal.to_jsonl()


_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_engine_determinism import _session
print(_session().journal.digest())
"""


@pytest.mark.slow
def test_journal_does_not_depend_on_the_hash_seed() -> None:
    tests_dir = str(Path(__file__).parent)
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", _SCRIPT.format(tests=tests_dir)],
                             capture_output=True, text=True, env=env, check=True,
                             cwd=Path(__file__).parent.parent)
        digests.add(out.stdout.strip())
    assert digests == {_session().journal.digest()}


# ---- every bundled scenario, end to end -------------------------------------------------------

def _run_bundled(name: str) -> tuple[Exchange, dict[str, str]]:
    ex = make_exchange(scenario=name)
    price = ex.mark_price(BTC)
    per_btc = price / 100  # contracts worth 1 BTC at the start
    hedger = fund(ex, "1", mode="isolated", leverage=1)
    trading.place_order(ex, hedger, BTC, "SELL", "MARKET", int(Decimal("0.98") * per_btc))
    long_ = fund(ex, "1", mode="isolated", leverage=20)
    trading.place_order(ex, long_, BTC, "BUY", "MARKET", int(2 * per_btc))
    cross = fund(ex, "1", leverage=5)
    trading.place_order(ex, cross, BTC, "SELL", "MARKET", int(4 * per_btc))
    end = ex.scenario.end_ms
    assert end is not None
    ex.advance_until(end)
    return ex, {"hedger": hedger, "long": long_, "cross": cross}


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_scenario_runs_with_the_ledger_conserved(name: str) -> None:
    ex, who = _run_bundled(name)
    check_invariants(ex)
    assert ex.ledger.total("BTC") == ex.ledger.deposits("BTC") == 3 + 100  # users + fund start
    assert all(b >= 0 for b in protected_balances(ex).values())
    # Funding settled at every 8-hourly time after the start, up to the end.
    start, end = ex.scenario.start_ms, ex.scenario.end_ms
    assert end is not None
    expected = [t for t in range(start + 8 * HOUR_MS, end + 1, 8 * HOUR_MS)]
    settled = [e.time_ms for e in of_type(ex.journal, "funding.settled")
               if e.payload["symbol"] == BTC]
    assert settled == expected
    # The coin-collateralised 1x short is never liquidated, whatever the path.
    assert ex.position(who["hedger"], BTC).qty_contracts < 0
    liquidated = {e.payload["account_id"] for e in of_type(ex.journal, "liquidation.triggered")}
    assert who["hedger"] not in liquidated
    # Every account's money is still all there: wallets, isolated margins, fees, the fund and
    # the market counterparty add up to what came in.
    users = sum(b for n, b in protected_balances(ex).items()
                if n.startswith(("wallet:", "isolated:")))
    assert users + ex.ledger.balance("fees:BTC") + ex.ledger.balance("insurance:BTC") + \
        ex.ledger.balance("market:BTC") == 103


def test_the_crash_liquidates_the_20x_long_and_the_squeeze_the_cross_short() -> None:
    crash, who = _run_bundled("crash")
    assert {e.payload["account_id"] for e in of_type(crash.journal, "liquidation.triggered")} \
        == {who["long"]}
    squeeze, who = _run_bundled("squeeze")
    assert {e.payload["account_id"] for e in of_type(squeeze.journal, "liquidation.triggered")} \
        == {who["cross"]}
