"""The ledger's array side: batches of integer steps (``post_units``) against Decimal batches.

Two ledgers receive the same deposits and postings; one posts the batches as Decimals
(``post_batch``), the other as steps on slots (``post_units``), with ordinary postings, rollbacks
and reads interleaved. Every balance (value AND exponent, so answer bytes stay equal), every
history, the postings and conservation agree; ``units_at`` is the balance in steps; refusals
change nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim.errors import LedgerError
from perpsim.sim.ledger import Ledger, isolated_account, market_account, wallet_account

D = Decimal
MARKET = market_account("BTC")
STEP = D("1E-8")
NAMES = [wallet_account(f"u{i}", "BTC") for i in range(5)] + [isolated_account("u0", "BTCUSD")]


def _pair(deposits: list[str]) -> tuple[Ledger, Ledger]:
    """Two identical ledgers: deposits (one with more places than the step) to each name."""
    pair = (Ledger(["BTC", "ETH"]), Ledger(["BTC", "ETH"]))
    for led in pair:
        led.open_isolated("u0", "BTCUSD", "BTC")
        for i, amount in enumerate(deposits):
            led.deposit(f"u{i}", "BTC", D(amount), f"d{i}", 1)
        led.deposit("u0", "BTC", D("1"), "m", 1)
        led.post(NAMES[0], NAMES[5], "BTC", D("0.5"), "isolated_margin", "m", 1)
    return pair


def _exact(led: Ledger) -> dict[str, str]:
    """Balances as text: equal values with different exponents differ here."""
    return {name: str(balance) for name, balance in led.balances().items()}


def _histories(led: Ledger) -> dict[str, list[tuple[object, ...]]]:
    return {name: [(p.seq, p.source, p.destination, str(p.amount), p.reason)
                   for p in led.history(name)] for name in [*NAMES, MARKET]}


_deposit = st.sampled_from(["2", "1.5", "0.00000001", "3.100000000", "0.001"])
_batch = st.lists(st.tuples(st.integers(0, 5), st.integers(-40_000_000, 40_000_000)
                            .filter(lambda u: u != 0)), min_size=1, max_size=6,
                  unique_by=lambda leg: leg[0])
_step = st.one_of(
    st.tuples(st.just("batch"), _batch),
    st.tuples(st.just("post"), st.tuples(st.integers(0, 4), st.integers(1, 30_000_000))),
    st.tuples(st.just("rolled_back"), _batch),
    st.tuples(st.just("read"), st.integers(0, 5)),
    st.tuples(st.just("peek"), st.just(0)),
)


def _attempt(kind: str, post: Callable[[], object], led: Ledger) -> str:
    """Post (inside a transaction undone at once if ``kind`` says so); what happened."""
    try:
        if kind == "rolled_back":
            with led.transaction():
                post()
                raise RuntimeError("undo")
        post()
    except RuntimeError:
        return "undone"
    except LedgerError:
        return "refused"
    return "ok"


@settings(max_examples=examples(200), deadline=None)
@given(deposits=st.lists(_deposit, min_size=5, max_size=5),
       steps=st.lists(_step, min_size=1, max_size=12))
def test_batches_of_steps_equal_decimal_batches(deposits: list[str],
                                                steps: list[tuple[str, object]]) -> None:
    decimal, units = _pair(deposits)
    slots = units.slots(NAMES)
    for t, (kind, arg) in enumerate(steps, start=2):
        if kind == "peek":  # many balances at once (folded together): the same text
            many = [*NAMES, *NAMES]  # 12 names: the batched fold
            assert [str(b) for b in units.peek_balances(many)] == [
                str(b) for b in decimal.peek_balances(many)]
            continue
        if kind == "read":  # a read folds the pending steps: it must not change anything
            assert isinstance(arg, int)
            assert str(units.balance(NAMES[arg])) == str(decimal.balance(NAMES[arg]))
            continue
        if kind == "post":  # an ordinary posting between batches (a wallet pays the market)
            i, u = arg  # type: ignore[misc]
            amount = D(u) * STEP
            outcomes = []
            for led in (decimal, units):
                try:
                    led.post(NAMES[i], MARKET, "BTC", amount, "commission", "c", t)
                    outcomes.append("ok")
                except LedgerError:
                    outcomes.append("refused")
            assert outcomes[0] == outcomes[1]
            continue
        legs: list[tuple[int, int]] = arg  # type: ignore[assignment]
        names = [NAMES[k] for k, _ in legs]
        amounts = [(D(u) * STEP).quantize(STEP) for _, u in legs]
        idx = np.array([slots[k] for k, _ in legs], dtype=np.int64)
        steps_ = np.array([u for _, u in legs], dtype=np.int64)
        outcomes = [
            _attempt(kind, functools.partial(decimal.post_batch, MARKET, "BTC", names, amounts,
                                             "funding_fee", "f", t), decimal),
            _attempt(kind, functools.partial(units.post_units, MARKET, "BTC", idx, steps_,
                                             "funding_fee", "f", t), units)]
        assert outcomes[0] == outcomes[1]
        # The arrays hold the balance in steps, read without folding anything.
        assert units.units_at(slots).tolist() == [
            int(decimal.balance(n) / STEP) for n in NAMES]
    assert _exact(units) == _exact(decimal)
    assert _histories(units) == _histories(decimal)
    assert [(p.seq, p.source, p.destination, p.amount) for p in units.postings] == [
        (p.seq, p.source, p.destination, p.amount) for p in decimal.postings]
    units.check_conserved(replay=True)
    # ``units_exact``: where steps · step is the Decimal itself, exponent included.
    for name, slot, exact in zip(NAMES, slots.tolist(), units.units_exact(slots).tolist(),
                                 strict=True):
        rebuilt = (D(int(units.units_at(np.array([slot]))[0])) * STEP).quantize(STEP)
        assert exact == (str(rebuilt) == str(units.balance(name)))


def test_a_balance_with_more_places_than_the_step_is_not_exact() -> None:
    """Balances start at zero on the step, so "2" becomes 2.00000000 (exact), but a deposit
    written with nine places keeps them through every later addition."""
    led = Ledger(["BTC"])
    led.deposit("a", "BTC", D("2.000000000"), "d", 1)
    slots = led.slots([wallet_account("a", "BTC"), wallet_account("nobody", "BTC")])
    assert slots[1] == -1  # never posted to: no slot, and nothing was created
    assert wallet_account("nobody", "BTC") not in led.balances()
    assert led.units_at(slots[:1]).tolist() == [200_000_000]
    assert not led.units_exact(slots[:1])[0]
    led.post_units(MARKET, "BTC", slots[:1], np.array([-1], dtype=np.int64), "funding_fee",
                   "f", 2)
    assert str(led.balance(wallet_account("a", "BTC"))) == "1.999999990"
    assert not led.units_exact(slots[:1])[0]
    led.deposit("b", "BTC", D("2"), "d", 1)
    (b,) = led.slots([wallet_account("b", "BTC")])
    assert led.units_exact(np.array([b])).tolist() == [True]
    assert str(led.balance(wallet_account("b", "BTC"))) == "2.00000000"
    led.check_conserved(replay=True)


def test_bad_batches_of_steps_change_nothing() -> None:
    led = Ledger(["BTC", "ETH"])
    led.deposit("a", "BTC", D("0.00000010"), "d", 1)
    led.deposit("b", "BTC", D("1"), "d", 1)
    led.deposit("e", "ETH", D("1"), "d", 1)
    slots = led.slots([wallet_account(x, c) for x, c in (("a", "BTC"), ("b", "BTC"),
                                                          ("e", "ETH"))])
    before = (_exact(led), len(led.postings), led.units_at(slots).tolist())
    bad = [
        (slots[:1], [-11], "would go negative"),
        (slots[[0, 0]], [1, 1], "once"),
        (slots[2:], [1], "holds ETH"),
        (slots[:2], [1, 0], "non-zero"),
        (np.array([99]), [1], "unknown ledger slot"),
        (slots[:2], [1], "one int64 step count per slot"),
    ]
    for idx, amounts, message in bad:
        with pytest.raises(LedgerError, match=message):
            led.post_units(MARKET, "BTC", idx, np.array(amounts, dtype=np.int64),
                           "funding_fee", "f", 2)
        assert (_exact(led), len(led.postings), led.units_at(slots).tolist()) == before
    with pytest.raises(LedgerError, match="never the counterparty"):
        led.post_units(wallet_account("b", "BTC"), "BTC", slots[:2],
                       np.array([1, 1], dtype=np.int64), "funding_fee", "f", 2)
    assert (_exact(led), len(led.postings), led.units_at(slots).tolist()) == before


def test_a_forgotten_account_kills_its_slot() -> None:
    """A rollback that forgets an account created inside it retires the account's slot."""
    led = Ledger(["BTC"])
    epoch = led.slot_epoch
    slot = -1

    def deposit_then_fail() -> None:
        nonlocal slot
        with led.transaction():
            led.deposit("a", "BTC", D("1"), "d", 1)
            (slot,) = led.slots([wallet_account("a", "BTC")]).tolist()
            raise RuntimeError("undo")

    with pytest.raises(RuntimeError):
        deposit_then_fail()
    assert led.slot_epoch == epoch + 1
    with pytest.raises(LedgerError, match="unknown ledger slot"):
        led.units_at(np.array([slot]))
    led.deposit("a", "BTC", D("1"), "d", 2)
    (again,) = led.slots([wallet_account("a", "BTC")])
    assert again != slot
    assert led.units_at(np.array([again])).tolist() == [100_000_000]


def test_a_balance_too_big_for_steps_takes_the_decimal_path() -> None:
    led = Ledger(["BTC"], step=D("1E-12"))
    led.deposit("a", "BTC", D("1E+7"), "d", 1)  # 1e19 steps: beyond int64
    slots = led.slots([wallet_account("a", "BTC")])
    assert led.too_big(slots).tolist() == [True]
    with pytest.raises(LedgerError, match="too big"):
        led.post_units(MARKET, "BTC", slots, np.array([1], dtype=np.int64), "funding_fee",
                       "f", 2)
    led.withdraw("a", "BTC", D("9999999"), "w", 3)
    assert led.too_big(slots).tolist() == [False]
    assert led.units_at(slots).tolist() == [10**12]
