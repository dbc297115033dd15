"""P&L attribution, hedge effectiveness and the --json result on a hand-built run.

The run: 5 BTC held at 60,000 (300,000 USD); short 3,000 contracts × 100 USD at 60,000 (index
60,000); exit by buying them back at 48,000 while the index is 50,000; +0.01 BTC funding,
0.003 BTC fees. By hand:

* futures PnL at the fills  = 300,000/48,000 − 300,000/60,000 = 6.25 − 5 = 1.25 BTC
* the same at the index     = 300,000/50,000 − 300,000/60,000 = 6 − 5    = 1 BTC → basis 0.25 BTC
* coin at the end = 5 + 1.25 + 0.01 − 0.003 = 6.257 BTC → 312,850 USD at 50,000
* spot leg = 5 × (50,000 − 60,000) = −50,000 USD; futures leg 1.25 × 50,000 = 62,500 USD;
  funding 500 USD; fees 150 USD: −50,000 + 62,500 + 500 − 150 = +12,850 = 312,850 − 300,000.
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from perpsim.strategy.record import HedgeConfig, RunRecord, Sample
from perpsim.strategy.results import (
    attribution,
    attribution_rows,
    basis_btc,
    effectiveness,
    max_drawdown_pct,
    min_liquidation_distance_pct,
    stop_text,
    summary_rows,
    to_json,
    variance_reduction,
)

T0 = 1_704_067_200_000
HOUR = 3_600_000


def sample(t_h: int, index: str, *, spot: str = "0", equity: str = "5", pos: int = -3000,
           liq: str | None = None, mark: str | None = None, funding: str = "0",
           fees: str = "0") -> Sample:
    """One sample, ``t_h`` hours after T0 (mark and last default to the index)."""
    return Sample(time_ms=T0 + t_h * HOUR, index_usd=D(index), mark_usd=D(mark or index),
                  last_usd=D(mark or index), spot_btc=D(spot), futures_equity_btc=D(equity),
                  position_contracts=pos,
                  liquidation_price_usd=None if liq is None else D(liq),
                  margin_ratio=D("0.01"), funding_cum_btc=D(funding), fees_cum_btc=D(fees))


def hand_record(*, with_fills: bool = False) -> RunRecord:
    """The run of the module docstring."""
    record = RunRecord(
        config=HedgeConfig(), start_ms=T0, start_index_usd=D(60000), start_btc=D(5),
        plan={"explanation": "Short 3,000 contracts: 300,000 USD, the value of 5 BTC.\n\n"
                             "The coin is the collateral.",
              "contracts": 3000, "notional_usd": D(300000)},
        contracts=3000, entry_price_usd=D(60000), exit_price_usd=D(48000),
        end_ms=T0 + 3 * HOUR, exit_reason="end of scenario", futures_pnl_btc=D("1.25"),
        funding_btc=D("0.01"), fees_btc=D("0.003"),
        samples=[
            sample(0, "60000", equity="4.9985", liq="66000", fees="0.0015"),
            sample(1, "55000", equity="5.4530303", liq="57750", funding="0.01", fees="0.0015"),
            sample(2, "52000", equity="5.7", mark="51000", funding="0.01", fees="0.0015"),
            sample(3, "50000", equity="6.257", pos=0, funding="0.01", fees="0.003"),
        ],
    )
    record.event(T0, "hedge.open", contracts=3000, price=D(60000))
    if with_fills:
        record.event(T0, "fill", side="sell", contracts=3000, price=D(60000), index=D(60000))
        record.event(T0 + 3 * HOUR, "fill", side="buy", contracts=3000, price=D(48000),
                     index=D(50000))
    record.event(T0 + 3 * HOUR, "hedge.close", reason="end of scenario")
    return record


def test_attribution_adds_up_to_the_hedged_change() -> None:
    att = attribution(hand_record())
    assert att.start_value_usd == 300_000
    assert att.end_btc == D("6.257")
    assert att.end_value_usd_hedged == 312_850
    assert att.end_value_usd_unhedged == 250_000
    assert att.spot_pnl_usd == -50_000
    assert att.futures_pnl_usd == 62_500
    assert att.funding_usd == 500
    assert att.fees_usd == 150
    assert att.other_btc == 0
    total = att.spot_pnl_usd + att.futures_pnl_usd + att.funding_usd - att.fees_usd
    assert total == att.hedged_pnl_usd == 12_850


@pytest.mark.parametrize("with_fills", [False, True])
def test_basis_is_the_fill_pnl_minus_the_index_pnl(with_fills: bool) -> None:
    basis = basis_btc(hand_record(with_fills=with_fills))
    assert basis == pytest.approx(D("0.25"), abs=D("1e-20"))
    assert attribution(hand_record(with_fills=with_fills)).basis_usd.quantize(D(1)) == 12_500


def test_basis_is_zero_when_the_perp_trades_at_the_index() -> None:
    record = hand_record()
    record.exit_price_usd = D(50000)
    assert basis_btc(record) == 0


def test_other_row_catches_unexplained_coin() -> None:
    record = hand_record()
    record.samples[-1] = sample(3, "50000", equity="6.157", pos=0)  # 0.1 BTC lost elsewhere
    att = attribution(record)
    assert att.other_btc == D("-0.1")
    assert att.other_usd == -5_000
    assert any(row[0].startswith("Other") for row in attribution_rows(record))


def test_max_drawdown_by_hand() -> None:
    assert max_drawdown_pct([D(100), D(120), D(90), D(110), D(60), D(130)]) == 50
    assert max_drawdown_pct([D(1), D(2), D(3)]) == 0
    assert max_drawdown_pct([]) == 0


def test_variance_reduction_by_hand() -> None:
    hedged = [D(10), D(11), D(10), D(11), D(10)]  # changes ±1: variance 1
    unhedged = [D(10), D(12), D(10), D(12), D(10)]  # changes ±2: variance 4
    assert variance_reduction(hedged, unhedged) == D("0.75")
    assert variance_reduction(unhedged, unhedged) == 0
    assert variance_reduction(hedged, [D(5)] * 5) is None  # nothing to hedge


def test_effectiveness_series() -> None:
    eff = effectiveness(hand_record())
    assert eff.unhedged_usd == [300_000, 275_000, 260_000, 250_000]
    assert eff.hedged_usd[0] == D("4.9985") * 60_000
    assert eff.hedged_usd[-1] == 312_850
    assert eff.max_drawdown_unhedged_pct == pytest.approx(D("16.6666666666"), abs=D("1e-9"))


def test_min_liquidation_distance() -> None:
    record = hand_record()
    # 66,000 vs 60,000: 10 %; 57,750 vs 55,000: 5 %; no liquidation price later.
    assert min_liquidation_distance_pct(record) == 5
    record.liquidated = True
    assert min_liquidation_distance_pct(record) == 0
    record.samples = [sample(0, "60000")]
    record.liquidated = False
    assert min_liquidation_distance_pct(record) is None


def test_to_json_has_the_contract_fields_as_strings() -> None:
    result = to_json(hand_record(), scenario="hand", profile="binance_coinm", seed=7)
    json.dumps(result)  # JSON-safe
    assert result["scenario"] == "hand"
    assert result["seed"] == 7
    assert result["contracts"] == 3000
    assert result["entry_price"] == "60000.00"
    assert result["exit_price"] == "48000.00"
    assert result["liquidated"] is False
    assert result["start_value_usd"] == "300000.00"
    assert result["end_value_usd_hedged"] == "312850.00"
    assert result["end_value_usd_unhedged"] == "250000.00"
    assert result["funding_btc"] == "0.01000000"
    assert result["fees_btc"] == "0.00300000"
    assert result["spot_pnl_usd"] == "-50000.00"
    assert result["futures_pnl_btc"] == "1.25000000"
    assert result["basis_btc"] == "0.25000000"
    assert result["min_liquidation_distance_pct"] == "5.00"
    assert (result["closest_liquidation_price_usd"], result["closest_liquidation_mark_usd"],
            result["closest_liquidation_mark_multiple"]) == ("57750.00", "55000.00", "1.0500")
    assert result["config"]["spot_btc"] == "5"
    assert [e["type"] for e in result["events"]] == ["hedge.open", "hedge.close"]
    assert result["events"][0] == {"time": T0, "type": "hedge.open", "contracts": 3000,
                                   "price": "60000"}


def test_summary_rows_read_well() -> None:
    rows = dict(summary_rows(hand_record()))
    assert rows["Liquidated"] == "no"
    assert rows["Hedge"] == "short 3,000 contracts ($300,000) at 60,000.00"
    assert rows["End value, hedged"] == "$312,850.00  (+4.28 %)"
    assert rows["End value, unhedged"] == "$250,000.00  (-16.67 %)"
    assert rows["Funding"] == "+0.01000000 BTC (+$500.00)"
    assert rows["Fees"] == "-0.00300000 BTC (-$150.00)"
    # the closest: 57,750 vs the mark 55,000, as a price and a multiple of the mark
    assert rows["Closest liquidation price"].startswith("57,750.00 USD = 1.05× the mark 55,000.00")
    total = attribution_rows(hand_record())[-1]
    assert total == ("Total: hedged portfolio change", "+1.25700000", "+12,850.00")


def test_a_record_without_samples() -> None:
    record = hand_record()
    record.samples = []
    att = attribution(record)
    assert att.end_price_usd == 48_000  # the exit fill stands in for the missing index
    assert att.other_btc == 0
    assert to_json(record)["max_drawdown_hedged_pct"] == "0.00"


def test_a_far_liquidation_price_reads_as_a_price_and_a_multiple_of_the_mark() -> None:
    record = hand_record()
    record.samples = [sample(0, "60000", liq="82645000"), sample(1, "60040", liq="90000000")]
    rows = dict(summary_rows(record))
    # not "137,641.67 %": the price, its multiple of the mark, and when
    assert rows["Closest liquidation price"] == (
        "82,645,000.00 USD = 1,377.42× the mark 60,000.00 (at 2024-01-01T00:00:00Z)")
    assert "%" not in rows["Closest liquidation price"]
    record.samples = [sample(0, "60000")]
    assert dict(summary_rows(record))["Closest liquidation price"] == (
        "none (no liquidation price)")


def test_why_a_run_stopped_early_in_a_few_words() -> None:
    record = hand_record()
    record.exit_reason = "end"
    assert stop_text(record) is None
    record.exit_reason, record.liquidated = "liquidated", True
    record.event(T0 + HOUR, "liquidation", contracts_before=-3000, contracts_after=0)
    assert stop_text(record) == "liquidated at 2024-01-01T01:00:00Z, mark 55,000.00"
    assert dict(summary_rows(record))["Closest liquidation price"] == (
        "reached: liquidated at 2024-01-01T01:00:00Z, mark 55,000.00")
    record.exit_reason, record.liquidated = "funding_budget", False
    record.config = HedgeConfig(funding_budget_btc=D("0.005"))
    assert stop_text(record) == "funding budget 0.005 BTC"
    record.exit_reason = "price_above"
    record.config = HedgeConfig(exit_above_usd=D(70000))
    assert stop_text(record) == "index reached --exit-above 70000"
