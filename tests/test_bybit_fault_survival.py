"""The hedging client survives faults on the Bybit v5 wire (``bybit_inverse``) as it does on
Binance's (tests/test_fault_survival.py): the whole hedge (plan → open → monitor → exit,
ccxt.pro.bybit over HTTP + WebSocket, wrapped by strategy.resilience as strategy.dryrun does)
on a small ``calm`` run while perpsim answers as Bybit does — retCode 10006 and the
X-Bapi-Limit-* headers, 5xx with 10016, an order executed but its answer lost, an order
refused with a "try again" retCode — and then the venue's journal is read
(tests/fault_helpers.py, shared with the Binance tests):

* the hedge completed: opened, held to the end, closed flat, every coin back in spot;
* no order was lost or duplicated: each orderLinkId appears in exactly one ``NEW``
  order.update, and the ids the venue knows are the ids the client says it placed;
* the coin is conserved: spot at the end = spot at the start + realised PnL − fees + funding,
  as the venue's own ledger (the journal) and the client's record both say;
* the fault really fired, and the client's counters show how it coped.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from fault_helpers import Served, Wire, hedge, served_with_faults

ORDER_PATH = "/v5/order/create"
# 0.2 BTC at ~60,000 is 12,000 of Bybit's 1 USD contracts: six slices of 2,000 each way, enough
# for every fault below to meet several orders (the 5 BTC default would be 150 slices).
BYBIT = Wire(profile="bybit_inverse", dialect="bybit_v5", symbol="BTCUSD",
             spot_btc=Decimal("0.2"), hours=8, min_contracts=10_000)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with served_with_faults() as server:
        yield server


def test_survives_rate_limits_by_waiting_for_bybits_reset_stamp(served: Served) -> None:
    # Every v5 request weighs 1 in a budget counted on a wall clock that moves only while the
    # client waits. Bybit says retCode 10006 and when the window resets
    # (X-Bapi-Limit-Reset-Timestamp); a client sending before the reset is banned (HTTP 403).
    run = hedge(served, BYBIT, lambda start, account: [
        # ban_after 5: a decision's reads go out together (up to 4 in flight), so up to 3 can
        # arrive after the 10006 that the client has not seen yet; a 4th would mean it ignored it.
        {"kind": "rate_limit", "limit": 40, "interval_ms": 1000, "path": "/v5/*",
         "ban_after": 5}],
        fake_wall=True)
    (rule,) = run.faults["faults"]
    assert rule["fired"] >= 1
    assert rule["bans"] == 0  # never banned: the client waited for the reset
    assert run.client.rate_waits >= 1


def test_survives_5xx_and_an_order_executed_whose_answer_was_lost(served: Served) -> None:
    # The first order is executed but its answer is a 503 (10016): the client finds it by its
    # orderLinkId and does not place it again; a later order meets a 500 it did not run under.
    run = hedge(served, BYBIT, lambda start, account: [
        {"kind": "http_5xx", "status": 503, "executed": True, "path": ORDER_PATH,
         "method": "POST", "count": 1},
        {"kind": "http_5xx", "status": 500, "path": ORDER_PATH, "method": "POST",
         "after": 2, "count": 1},
        {"kind": "http_5xx", "status": 503, "path": "/v5/market/*", "count": 2}])
    assert run.fired("http_5xx") == 4
    assert run.client.found_after_error == 1  # the executed one, by orderLinkId
    assert run.client.resubmits >= 1  # the one that did not run, sent again (same id)
    assert run.client.retries >= 2  # the market reads


def test_survives_order_rejects_that_say_try_again(served: Served) -> None:
    run = hedge(served, BYBIT, lambda start, account: [
        {"kind": "order_reject", "code": 10016, "msg": "System error. Please try again later.",
         "path": ORDER_PATH, "count": 2, "account_id": account}])
    assert run.fired("order_reject") == 2
    assert run.client.resubmits >= 2
