"""A position's unrealised PnL at a new mark, computed by the client (strategy/mark_pnl.py), is
the venue's own answer digit for digit, or None — never a different number.

Checked against the server's own arithmetic and serialisers (sim/inverse.py ``pnl_coin``,
each dialect's ``coin`` / ``mark`` / ``rate`` writers) over many positions and marks, and in
dry runs of both venues by reading the position afresh at every reuse and comparing."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpsim.api.app import create_app
from perpsim.api.binance_coinm import account_wire as binance_account
from perpsim.api.binance_coinm import market_wire as binance_market
from perpsim.api.bybit_v5 import account_wire as bybit_account
from perpsim.api.bybit_v5 import market_wire as bybit_market
from perpsim.api.security import IN_PROCESS
from perpsim.api.state import ServerConfig, ServerState
from perpsim.inprocess import in_process_transport
from perpsim.sim.inverse import pnl_coin, to_dec
from perpsim.strategy import monitor as monitor_module
from perpsim.strategy.dryrun import dry_run
from perpsim.strategy.mark_pnl import written_pnl
from perpsim.strategy.record import HedgeConfig

D = Decimal

# (entry writer, mark writer, PnL writer) of each wire.
WIRES = {"binance_coinm": (binance_account.coin, binance_market.mark, binance_account.coin),
         "bybit_inverse": (bybit_market.rate, bybit_market.rate, bybit_account.coin)}


def _entry(fills: list[tuple[int, int]]) -> Decimal:
    """The engine's entry after ``fills`` (contracts, price in cents): harmonic average,
    rounded once to 28 digits as sim/inverse.py does."""
    contracts = sum(q for q, _ in fills)
    coin = sum(Fraction(q) / Fraction(cents, 100) for q, cents in fills)
    return to_dec(contracts / coin)


fills_st = st.lists(st.tuples(st.integers(1, 5_000), st.integers(1_000_000, 20_000_000)),
                    min_size=1, max_size=4)
marks_st = st.decimals(min_value=D("10000"), max_value=D("200000"), places=12,
                       allow_nan=False, allow_infinity=False)


@settings(max_examples=400, deadline=None)
@given(fills=fills_st, mark=marks_st, short=st.booleans(),
       contract_size=st.sampled_from([D(1), D(10), D(100)]),
       wire=st.sampled_from(sorted(WIRES)))
def test_the_pnl_is_the_venues_digits_or_none(fills: list[tuple[int, int]], mark: Decimal,
                                             short: bool, contract_size: Decimal,
                                             wire: str) -> None:
    entry = _entry(fills)
    contracts = sum(q for q, _ in fills) * (-1 if short else 1)
    write_entry, write_mark, write_pnl = WIRES[wire]
    venue = write_pnl(pnl_coin(contracts, entry, mark, contract_size))
    like = write_pnl(pnl_coin(contracts, entry, entry * 2, contract_size))  # an older answer
    mine = written_pnl(contracts, contract_size, write_entry(entry), write_mark(mark), like)
    assert mine is None or mine == venue


def test_almost_every_mark_is_proven() -> None:
    """Over a thousand marks of a hedge-sized short with a 28-digit entry, the digits are
    proven nearly always (a doubt needs the true value within ~1e-13 of a rounding edge)."""
    entry = _entry([(137, 6_012_345), (163, 6_020_001)])
    write_entry, write_mark, write_pnl = WIRES["binance_coinm"]
    like = write_pnl(D(0))
    proven = 0
    for step in range(1000):
        mark = D("45000") + D(step) * D("31.41592653")
        venue = write_pnl(pnl_coin(-300, entry, mark, D(100)))
        mine = written_pnl(-300, D(100), write_entry(entry), write_mark(mark), like)
        assert mine is None or mine == venue
        proven += mine is not None
    assert proven >= 995


def test_a_doubtful_last_digit_is_none() -> None:
    # At the entry itself the PnL is 0, but the written entry hides on which side of it the
    # venue's exact entry lies, and the venue writes "-0.00000000" for a hair below zero.
    assert written_pnl(-300, D(100), "60000.12345678", "60000.12345678", "0.00000000") is None
    assert written_pnl(-300, D(100), "60000.10000000", "61000.10000000", "0.00000000") == \
        "-0.00819669"
    # An entry written to one decimal may be anything within 0.05 of it: far too coarse.
    assert written_pnl(-300, D(100), "60000.1", "61000.1", "0.00000000") is None


def test_the_places_follow_the_venues_last_answer() -> None:
    entry, mark = "50000.00000000", "40000.00000000"  # a short in profit
    assert written_pnl(-1, D(100), entry, mark, "0.00000000") == "0.00050000"
    assert written_pnl(-1, D(100), entry, mark, "-0.0001") == "0.0005"


@pytest.mark.parametrize("bad", [("abc", "60000", "0.1"), ("60000", "NaN", "0.1"),
                                 ("60000", "60000", "")])
def test_what_is_not_a_number_is_refused(bad: tuple[str, str, str]) -> None:
    with pytest.raises(ValueError, match="not numbers"):
        written_pnl(-300, D(100), *bad)


@pytest.mark.parametrize(("profile", "scenario"), [("binance_coinm", "crash"),
                                                   ("binance_coinm", "squeeze"),
                                                   ("bybit_inverse", "crash")])
def test_every_reused_position_equals_a_fresh_read(monkeypatch: pytest.MonkeyPatch,
                                                   profile: str, scenario: str) -> None:
    """In a dry run, each position the monitor builds from a reused read at the new mark is
    the one the venue answers when asked right then (same contracts, entry, margin, leverage,
    liquidation price, unrealised PnL, margin mode)."""
    compared: list[bool] = []
    original = monitor_module.Monitor._positions_at_mark

    async def checked(self: monitor_module.Monitor, positions: Any,
                      premium: Any) -> Any:
        marked = await original(self, positions, premium)
        fresh = await self.ex.fetch_positions([self.symbol])
        compared.append(self.venue.position(marked, self.symbol)
                        == self.venue.position(fresh, self.symbol))
        return marked

    monkeypatch.setattr(monitor_module.Monitor, "_positions_at_mark", checked)
    app = create_app(state=ServerState(ServerConfig(profile=profile, scenario=scenario, seed=0,
                                                    clock="stepped")), security=IN_PROCESS)
    record = asyncio.run(dry_run(in_process_transport(app), HedgeConfig(), scenario=scenario,
                                 profile=profile, seed=0))
    assert record.contracts  # the hedge was open: there were positions to reuse
    assert compared
    assert all(compared)


def _fraction_reference(contracts: int, contract_size: Decimal, entry_text: str,
                        mark_text: str, places: int) -> str | None:
    """The computation in plain Fractions (what strategy/mark_pnl.py did before it worked
    in integer ratios): the four corners of the written entry and mark, rounded alike."""
    import decimal

    def span(text: str) -> tuple[Fraction, Fraction]:
        number = Decimal(text)
        half = Fraction(10) ** int(number.as_tuple().exponent) / 2
        return Fraction(number) - half, Fraction(number) + half

    def written(value: Fraction) -> str:
        context = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)
        rounded = context.divide(Decimal(value.numerator), Decimal(value.denominator))
        return format(rounded.quantize(Decimal(1).scaleb(-places),
                                       rounding=decimal.ROUND_HALF_EVEN), "f")

    entries, marks = span(entry_text), span(mark_text)
    if entries[0] <= 0 or marks[0] <= 0:
        return None
    size = contracts * Fraction(contract_size)
    corners = [size * (1 / e - 1 / m) for e in entries for m in marks]
    low, high = written(min(corners)), written(max(corners))
    return low if low == high else None


@settings(max_examples=300, deadline=None)
@given(contracts=st.integers(-100_000, 100_000),
       entry=st.decimals(min_value=D("0.1"), max_value=D("500000"), places=8,
                         allow_nan=False, allow_infinity=False),
       mark=st.decimals(min_value=D("0.1"), max_value=D("500000"), places=6,
                        allow_nan=False, allow_infinity=False),
       contract_size=st.sampled_from([D(1), D(10), D(100), D("0.5")]),
       places=st.integers(0, 12))
def test_integer_ratios_give_what_fractions_give(contracts: int, entry: Decimal, mark: Decimal,
                                                 contract_size: Decimal, places: int) -> None:
    like = format(Decimal(0).quantize(Decimal(1).scaleb(-places)), "f")
    assert written_pnl(contracts, contract_size, str(entry), str(mark), like) == \
        _fraction_reference(contracts, contract_size, str(entry), str(mark), places)
