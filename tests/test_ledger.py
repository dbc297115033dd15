"""The double-entry ledger: hand-checkable postings, refusals that change nothing, conservation."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.sim.errors import LedgerError
from perpsim.sim.ledger import (
    Ledger,
    Posting,
    external_account,
    fees_account,
    insurance_account,
    isolated_account,
    market_account,
    wallet_account,
)

D = Decimal
WALLET_A = "wallet:alice:BTC"
MARKET = "market:BTC"
FEES = "fees:BTC"


@pytest.fixture
def ledger() -> Ledger:
    led = Ledger(["BTC", "ETH"])
    led.deposit("alice", "BTC", D("1.00000000"), "dep-1", 1_000)
    return led


def snapshot(led: Ledger) -> tuple[dict[str, Decimal], int]:
    return led.balances(), len(led.postings)


def test_account_name_helpers_match_the_design_table() -> None:
    assert external_account("BTC") == "external:BTC"
    assert wallet_account("alice", "BTC") == "wallet:alice:BTC"
    assert isolated_account("alice", "BTCUSD_PERP") == "isolated:alice:BTCUSD_PERP"
    assert insurance_account("BTC") == "insurance:BTC"
    assert fees_account("ETH") == "fees:ETH"
    assert market_account("BTC") == "market:BTC"


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: wallet_account("", "BTC"), "account id ''"),
        (lambda: wallet_account("a:b", "BTC"), "account id 'a:b'"),
        (lambda: wallet_account("al ice", "BTC"), "account id 'al ice'"),
        (lambda: wallet_account("alice", "btc"), "coin 'btc'"),
        (lambda: wallet_account("alice", ""), "coin ''"),
        (lambda: isolated_account("alice", ""), "symbol ''"),
        (lambda: market_account(None), "coin None"),  # type: ignore[arg-type]
    ],
)
def test_name_helpers_refuse_malformed_parts(call, fragment: str) -> None:
    with pytest.raises(LedgerError, match="malformed") as err:
        call()
    assert fragment in str(err.value)


def test_parts_matched_before_are_remembered_per_pattern_only() -> None:
    # Names once found well-formed are not matched again, but only for the same kind of part:
    # an account id that is no coin is still refused as a coin, a symbol as an account id.
    class Name(str):
        pass

    for _ in range(2):  # the second time from what the first remembered
        assert wallet_account("alice", "BTC") == "wallet:alice:BTC"
        assert isolated_account("bob.1", "BTCUSD_PERP") == "isolated:bob.1:BTCUSD_PERP"
        for call, fragment in [(lambda: market_account("alice"), "coin 'alice'"),
                               (lambda: wallet_account("BTCUSD_PERP:X", "BTC"), "account id"),
                               (lambda: isolated_account("alice", "al ice"), "symbol"),
                               (lambda: wallet_account(Name("a b"), "BTC"), "account id")]:
            with pytest.raises(LedgerError, match="malformed") as err:
                call()
            assert fragment in str(err.value)
    # A str subclass is matched every time and kept as it is, as before.
    name = Name("carol")
    assert wallet_account(name, "BTC") == "wallet:carol:BTC"


def test_fill_postings_are_hand_checkable(ledger: Ledger) -> None:
    # A fill that pays a 0.0005 BTC fee and realises 0.0123 BTC profit from the market.
    with ledger.transaction():
        fee = ledger.post(WALLET_A, FEES, "BTC", D("0.0005"), "fee.taker", "fill-7", 2_000)
        ledger.post(MARKET, WALLET_A, "BTC", D("0.0123"), "pnl.realised", "fill-7", 2_000)
    assert fee == Posting(2, 2_000, WALLET_A, FEES, "BTC", D("0.0005"), "fee.taker", "fill-7")
    assert str(fee.amount) == "0.00050000"  # stored at the coin step, so reports line up
    assert ledger.balance(WALLET_A) == D("1.0118")
    assert ledger.balance(FEES) == D("0.0005")
    assert ledger.balance(MARKET) == D("-0.0123")  # the counterparty may go negative
    assert ledger.balance("external:BTC") == D("-1")
    assert ledger.deposits("BTC") == D("1") == ledger.total("BTC")
    assert ledger.deposits("ETH") == 0 == ledger.total("ETH")
    assert [p.seq for p in ledger.postings] == [1, 2, 3]
    ledger.check_conserved(replay=True)


def test_withdraw_and_unused_accounts(ledger: Ledger) -> None:
    ledger.withdraw("alice", "BTC", D("0.25"), "wd-1", 3_000)
    assert ledger.balance(WALLET_A) == D("0.75")
    assert ledger.deposits("BTC") == D("0.75")
    assert ledger.balance("wallet:bob:BTC") == 0  # never used: zero, not an error
    assert ledger.balance("isolated:bob:BTCUSD_PERP") == 0
    assert ledger.history("wallet:bob:BTC") == ()
    assert [p.reason for p in ledger.history(WALLET_A)] == ["deposit", "withdrawal"]


def test_protected_account_refuses_to_go_negative_and_nothing_changes(ledger: Ledger) -> None:
    before = snapshot(ledger)
    with pytest.raises(LedgerError) as err:
        ledger.post(WALLET_A, MARKET, "BTC", D("1.00000001"), "pnl.realised", "f1", 2_000)
    assert str(err.value) == (
        "wallet:alice:BTC would go negative: balance 1.00000000, posting 1.00000001 BTC "
        "(pnl.realised)"
    )
    with pytest.raises(LedgerError, match="insurance:BTC would go negative: balance 0E-8"):
        ledger.post("insurance:BTC", MARKET, "BTC", D("0.1"), "fund.cover", "l1", 2_000)
    with pytest.raises(LedgerError, match="would go negative"):
        ledger.withdraw("alice", "BTC", D("2"), "wd", 2_000)
    assert snapshot(ledger) == before
    # Exactly emptying a wallet is fine.
    ledger.post(WALLET_A, MARKET, "BTC", D("1"), "pnl.realised", "f2", 2_000)
    assert ledger.balance(WALLET_A) == 0


def test_transaction_rolls_back_every_posting_and_new_account(ledger: Ledger) -> None:
    def fill() -> None:
        with ledger.transaction():
            iso = ledger.open_isolated("alice", "BTCUSD_PERP", "BTC")
            ledger.post(WALLET_A, iso, "BTC", D("0.6"), "margin", "o1", 5)
            ledger.post(MARKET, "wallet:bob:BTC", "BTC", D("0.1"), "pnl", "o1", 5)
            ledger.post(WALLET_A, FEES, "BTC", D("0.5"), "fee", "o1", 5)  # only 0.4 left

    before = snapshot(ledger)
    with pytest.raises(LedgerError, match="would go negative"):
        fill()
    assert snapshot(ledger) == before
    assert ledger.balances_of("alice") == {WALLET_A: D(1)}
    assert ledger.balances_of("bob") == {}
    assert ledger.history(WALLET_A)[-1].seq == 1
    ledger.check_conserved(replay=True)
    # The rolled-back isolated account is gone: posting to it needs open_isolated again.
    with pytest.raises(LedgerError, match="is not open; call open_isolated"):
        ledger.post(WALLET_A, "isolated:alice:BTCUSD_PERP", "BTC", D("0.1"), "m", "o2", 6)


def test_nested_transaction_undoes_only_the_inner_block(ledger: Ledger) -> None:
    def inner() -> None:
        with ledger.transaction():
            ledger.post(WALLET_A, FEES, "BTC", D("0.2"), "fee", "b", 5)
            raise RuntimeError("engine bug")  # any exception rolls back, not just LedgerError

    with ledger.transaction():
        ledger.post(WALLET_A, FEES, "BTC", D("0.1"), "fee", "a", 5)
        with pytest.raises(RuntimeError, match="engine bug"):
            inner()
        ledger.post(WALLET_A, FEES, "BTC", D("0.3"), "fee", "c", 5)
    assert [p.ref for p in ledger.postings] == ["dep-1", "a", "c"]
    assert [p.seq for p in ledger.postings] == [1, 2, 3]
    assert ledger.balance(FEES) == D("0.4")


def test_post_many_is_all_or_nothing(ledger: Ledger) -> None:
    done = ledger.post_many(
        [(WALLET_A, FEES, "BTC", D("0.001"), "fee"), (MARKET, WALLET_A, "BTC", D("0.5"), "pnl")],
        "fill-1",
        7,
    )
    assert [(p.seq, p.ref, p.time_ms) for p in done] == [(2, "fill-1", 7), (3, "fill-1", 7)]
    before = snapshot(ledger)
    with pytest.raises(LedgerError, match="not a multiple"):
        ledger.post_many(
            [(WALLET_A, FEES, "BTC", D("0.1"), "fee"), (WALLET_A, FEES, "BTC", D("1E-9"), "x")],
            "fill-2",
            8,
        )
    assert snapshot(ledger) == before


def test_coins_never_mix(ledger: Ledger) -> None:
    before = snapshot(ledger)
    with pytest.raises(LedgerError, match="wallet:alice:BTC holds BTC; it cannot take a 'ETH'"):
        ledger.post(WALLET_A, "market:ETH", "ETH", D("0.1"), "pnl", "x", 5)
    with pytest.raises(LedgerError, match="market:BTC holds BTC; it cannot take a 'ETH'"):
        ledger.post("wallet:alice:ETH", MARKET, "ETH", D("0.1"), "pnl", "x", 5)
    assert ledger.open_isolated("alice", "ETHUSD_PERP", "ETH") == "isolated:alice:ETHUSD_PERP"
    assert ledger.open_isolated("alice", "ETHUSD_PERP", "ETH") == "isolated:alice:ETHUSD_PERP"
    assert ledger.coin_of("isolated:alice:ETHUSD_PERP") == "ETH"
    with pytest.raises(LedgerError, match="already open in ETH; it cannot hold BTC"):
        ledger.open_isolated("alice", "ETHUSD_PERP", "BTC")
    with pytest.raises(LedgerError, match="isolated:alice:ETHUSD_PERP holds ETH"):
        ledger.post(WALLET_A, "isolated:alice:ETHUSD_PERP", "BTC", D("0.1"), "m", "x", 5)
    assert snapshot(ledger)[1] == before[1]


@pytest.mark.parametrize(
    ("amount", "fragment"),
    [
        (D("NaN"), "positive and finite, got Decimal('NaN')"),
        (D("sNaN"), "positive and finite"),
        (D("Infinity"), "positive and finite"),
        (D("-0.1"), "positive and finite, got Decimal('-0.1')"),
        (D("0"), "positive and finite"),
        (D("1E+16"), "positive and finite"),
        (D("0.000000005"), "not a multiple of the coin step 1E-8"),
        (0.1, "must be a Decimal, got float 0.1"),
        (1, "must be a Decimal, got int 1"),
        ("0.1", "must be a Decimal, got str '0.1'"),
        (True, "must be a Decimal, got bool True"),
    ],
)
def test_bad_amounts_are_refused_and_change_nothing(
    ledger: Ledger, amount: object, fragment: str
) -> None:
    before = snapshot(ledger)
    with pytest.raises(LedgerError) as err:
        ledger.post(WALLET_A, MARKET, "BTC", amount, "pnl", "x", 5)  # type: ignore[arg-type]
    assert fragment in str(err.value)
    assert snapshot(ledger) == before


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"coin": "DOGE", "destination": "market:DOGE"}, "unknown coin 'DOGE'; this ledger holds"),
        ({"source": "wallet:alice:btc"}, "unknown coin 'btc'"),
        ({"source": "wallet::BTC"}, "account id ''"),
        ({"source": "wallet:alice"}, "malformed ledger account name 'wallet:alice'"),
        ({"source": "savings:BTC"}, "malformed ledger account name 'savings:BTC'"),
        ({"source": ""}, "malformed ledger account name ''"),
        ({"source": None}, "account name must be a string, got None"),
        ({"source": "isolated:alice:BTCUSD_PERP"}, "is not open"),
        ({"destination": WALLET_A}, "two different accounts"),
        ({"reason": ""}, "non-empty reason"),
        ({"ref": None}, "ref must be a string"),
        ({"time_ms": -1}, "time_ms must be a non-negative int, got -1"),
        ({"time_ms": 1.5}, "time_ms must be a non-negative int, got 1.5"),
    ],
)
def test_bad_postings_are_refused_and_change_nothing(
    ledger: Ledger, kwargs: dict[str, object], fragment: str
) -> None:
    args: dict[str, object] = {
        "source": WALLET_A,
        "destination": MARKET,
        "coin": "BTC",
        "amount": D("0.1"),
        "reason": "pnl",
        "ref": "x",
        "time_ms": 5,
    }
    before = snapshot(ledger)
    with pytest.raises(LedgerError) as err:
        ledger.post(**(args | kwargs))  # type: ignore[arg-type]
    assert fragment in str(err.value)
    assert snapshot(ledger) == before


def test_bad_ledger_construction_and_queries() -> None:
    with pytest.raises(LedgerError, match="at least one coin"):
        Ledger([])
    with pytest.raises(LedgerError, match="coin 'usd' is malformed"):
        Ledger(["usd"])
    with pytest.raises(LedgerError, match="positive Decimal"):
        Ledger(["BTC"], D(0))
    led = Ledger(["BTC"])
    with pytest.raises(LedgerError, match="unknown coin 'ETH'"):
        led.total("ETH")
    with pytest.raises(LedgerError, match="unknown coin 'ETH'"):
        led.deposit("alice", "ETH", D(1), "d", 0)
    with pytest.raises(LedgerError, match="malformed"):
        led.deposit("", "BTC", D(1), "d", 0)
    with pytest.raises(LedgerError, match="malformed"):
        led.balance("wallet:al ice:BTC")
    with pytest.raises(LedgerError, match="is not open"):
        led.coin_of("isolated:alice:BTCUSD_PERP")


def test_queries_by_prefix_owner_and_history(ledger: Ledger) -> None:
    iso = ledger.open_isolated("alice", "BTCUSD_PERP", "BTC")
    ledger.deposit("bob", "ETH", D("3"), "dep-2", 2_000)
    ledger.post(WALLET_A, iso, "BTC", D("0.2"), "margin.add", "m1", 3_000)
    ledger.post(iso, MARKET, "BTC", D("0.05"), "pnl.realised", "f1", 4_000)
    assert ledger.balances("wallet:") == {WALLET_A: D("0.8"), "wallet:bob:ETH": D(3)}
    assert ledger.balances_of("alice") == {iso: D("0.15"), WALLET_A: D("0.8")}
    assert [p.seq for p in ledger.history(iso)] == [3, 4]
    assert [p.seq for p in ledger.history_of("alice")] == [1, 3, 4]
    assert ledger.total("ETH") == ledger.deposits("ETH") == D(3)
    assert ledger.postings[-1].reason == "pnl.realised"
    assert ledger.quantize(D("0.123456785"), "half_up") == D("0.12345679")
    assert ledger.quantize(D("0.123456785"), "down") == D("0.12345678")


def test_check_conserved_detects_corruption(ledger: Ledger) -> None:
    ledger.check_conserved(replay=True)
    ledger._accounts[WALLET_A].balance += D("0.00000001")  # simulate a bug outside post()
    with pytest.raises(LedgerError, match=r"BTC not conserved: accounts hold 1\.00000001"):
        ledger.check_conserved()


def test_from_profile_takes_coins_and_step() -> None:
    profile = SimpleNamespace(
        instruments=[SimpleNamespace(margin_asset="BTC"), SimpleNamespace(margin_asset="ETH")],
        insurance_fund_start={"BTC": D(10)},
        rounding=SimpleNamespace(coin_step=D("0.0001")),
    )
    led = Ledger.from_profile(profile)  # type: ignore[arg-type]
    assert led.coins == {"BTC", "ETH"}
    with pytest.raises(LedgerError, match=r"not a multiple of the coin step 0\.0001"):
        led.deposit("alice", "BTC", D("0.00001"), "d", 0)


# -- property: any mix of operations, some failing, conserves and failures change nothing ----

ACCOUNTS = [
    "wallet:a:BTC",
    "wallet:b:BTC",
    "wallet:a:ETH",
    "isolated:a:BTCUSD_PERP",
    "isolated:b:ETHUSD_PERP",
    "insurance:BTC",
    "fees:BTC",
    "fees:ETH",
    "market:BTC",
    "market:ETH",
    "external:BTC",
]
units = st.integers(min_value=-2, max_value=3 * 10**8)
amounts = st.one_of(
    units.map(lambda u: D(u).scaleb(-8)),
    units.map(lambda u: D(u).scaleb(-9)),  # mostly off the step
)
operation = st.one_of(
    st.tuples(st.just("deposit"), st.sampled_from("ab"), st.sampled_from(["BTC", "ETH"]), amounts),
    st.tuples(st.just("withdraw"), st.sampled_from("ab"), st.sampled_from(["BTC", "ETH"]), amounts),
    st.tuples(
        st.just("post"),
        st.sampled_from(ACCOUNTS),
        st.sampled_from(ACCOUNTS),
        st.sampled_from(["BTC", "ETH"]),
        amounts,
    ),
    st.tuples(
        st.just("batch"), st.lists(st.tuples(st.sampled_from(ACCOUNTS), amounts), max_size=4)
    ),
)


def apply(led: Ledger, op: tuple) -> None:
    kind = op[0]
    if kind == "deposit":
        led.deposit(op[1], op[2], op[3], "r", 0)
    elif kind == "withdraw":
        led.withdraw(op[1], op[2], op[3], "r", 0)
    elif kind == "post":
        led.post(op[1], op[2], op[3], op[4], "pnl", "r", 0)
    else:  # a batch of BTC postings into market:BTC, all or nothing
        led.post_many([(src, MARKET, "BTC", amt, "fee") for src, amt in op[1]], "r", 0)


@settings(deadline=None, max_examples=examples(150))
@given(st.lists(operation, max_size=40))
def test_random_operations_conserve_and_failures_change_nothing(ops: list[tuple]) -> None:
    led = Ledger(["BTC", "ETH"])
    led.open_isolated("a", "BTCUSD_PERP", "BTC")
    led.open_isolated("b", "ETHUSD_PERP", "ETH")
    for op in ops:
        before = snapshot(led)
        history_lengths = {name: len(led.history(name)) for name in ACCOUNTS}
        try:
            apply(led, op)
        except LedgerError:
            assert snapshot(led) == before
            assert {name: len(led.history(name)) for name in ACCOUNTS} == history_lengths
        for name, balance in led.balances().items():
            assert balance >= 0 or name.split(":")[0] in {"market", "external"}
        for coin in ("BTC", "ETH"):
            assert led.total(coin) == led.deposits(coin)
    assert [p.seq for p in led.postings] == list(range(1, len(led.postings) + 1))
    led.check_conserved(replay=True)


def test_a_batch_posting_shows_each_account_its_own_leg(ledger: Ledger) -> None:
    """Accounts' histories hold the batch itself; reading a history finds each one's leg."""
    bob = wallet_account("bob", "BTC")
    ledger.deposit("alice", "BTC", Decimal("1"), "d1", 1)
    ledger.deposit("bob", "BTC", Decimal("1"), "d2", 1)
    batch = ledger.post_batch(market_account("BTC"), "BTC", [WALLET_A, bob],
                              [Decimal("0.25"), Decimal("-0.5")], "funding_fee", "f", 2)
    (mine,) = [p for p in ledger.history(WALLET_A) if p.reason == "funding_fee"]
    (theirs,) = [p for p in ledger.history(bob) if p.reason == "funding_fee"]
    assert (mine.source, mine.destination, mine.amount, mine.seq) == (
        market_account("BTC"), WALLET_A, Decimal("0.25"), batch.seq)
    assert (theirs.source, theirs.destination, theirs.amount) == (
        bob, market_account("BTC"), Decimal("0.5"))
    assert [p.amount for p in ledger.history(market_account("BTC"))
            if p.reason == "funding_fee"] == [Decimal("0.25"), Decimal("0.5")]
    assert ledger.balances_of("bob") == {bob: Decimal("0.5")}
    ledger.check_conserved(replay=True)
