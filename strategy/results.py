"""What a hedge run earned and why: P&L attribution, hedge effectiveness, the --json result.

Pure functions of a :class:`~strategy.record.RunRecord` (no I/O, no network).

Attribution values every coin flow at the index at the end of the run (``P_end``), which makes
it add up exactly::

    end_hedged_usd − start_usd = spot leg + (futures leg + funding − fees + other) × P_end

* **spot leg** — all the coin held at the start × (P_end − P_start): what the unhedged holder
  gains or loses;
* **futures leg** — the realised PnL of the short in coin (its USD value at P_end); it contains
  the **basis**: the futures PnL at the perp's actual fill prices minus the PnL the same
  contracts would have made entered and exited at the index (the cost or gain of trading the
  perp rather than spot);
* **funding** (+ received, − paid) and **fees** (paid);
* **other** — whatever coin is left unexplained (e.g. a liquidation's loss beyond the realised
  PnL, or a position still open); zero in a normal run.

Hedge effectiveness compares the hedged portfolio (spot + futures equity at the index) with the
unhedged one (all the starting coin at the index) over time: maximum drawdown of each and the
variance reduction 1 − var(Δ hedged) / var(Δ unhedged).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

from perpsim.numbers import readable
from perpsim.strategy.record import RunRecord, Sample

ZERO = Decimal(0)
HUNDRED = Decimal(100)
_BTC = Decimal("0.00000001")
_USD = Decimal("0.01")
_PCT = Decimal("0.01")
_RATIO = Decimal("0.0001")
FILL_EVENT_TYPES = frozenset({"fill", "order.fill", "order.filled", "trade"})


@dataclass(frozen=True)
class Attribution:
    """Where the hedged portfolio's USD change came from (see the module docstring)."""

    start_price_usd: Decimal
    end_price_usd: Decimal
    start_btc: Decimal
    end_btc: Decimal  # coin held at the end (spot + futures equity)
    start_value_usd: Decimal
    end_value_usd_hedged: Decimal
    end_value_usd_unhedged: Decimal
    spot_pnl_usd: Decimal
    futures_pnl_btc: Decimal
    futures_pnl_usd: Decimal
    basis_btc: Decimal
    basis_usd: Decimal
    funding_btc: Decimal
    funding_usd: Decimal
    fees_btc: Decimal
    fees_usd: Decimal
    other_btc: Decimal
    other_usd: Decimal

    @property
    def hedged_pnl_usd(self) -> Decimal:
        """End hedged value minus start value."""
        return self.end_value_usd_hedged - self.start_value_usd

    @property
    def unhedged_pnl_usd(self) -> Decimal:
        """End unhedged value minus start value (= the spot leg)."""
        return self.end_value_usd_unhedged - self.start_value_usd


@dataclass(frozen=True)
class Effectiveness:
    """Hedged vs unhedged USD value over time, and how much risk the hedge removed."""

    times_ms: list[int]
    hedged_usd: list[Decimal]
    unhedged_usd: list[Decimal]
    max_drawdown_hedged_pct: Decimal
    max_drawdown_unhedged_pct: Decimal
    variance_reduction: Decimal | None  # 1 − var(Δ hedged)/var(Δ unhedged); None if undefined


# ---- small helpers ---------------------------------------------------------------------------
def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def fmt(value: Decimal | None, step: Decimal) -> str | None:
    """``value`` rounded to ``step`` as a plain string ('-0.00' shown as '0.00'); None stays."""
    if value is None:
        return None
    text = format(value.quantize(step), "f")
    return text[1:] if text.startswith("-") and Decimal(text) == 0 else text


def btc(value: Decimal | None) -> str | None:
    """A coin amount, to the satoshi."""
    return fmt(value, _BTC)


def usd(value: Decimal | None) -> str | None:
    """A USD amount or price, to the cent."""
    return fmt(value, _USD)


def iso(t_ms: int | None) -> str:
    """Epoch ms as ISO 8601 UTC (seconds; milliseconds only when non-zero)."""
    if t_ms is None:
        return ""
    moment = datetime.fromtimestamp(t_ms / 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{t_ms % 1000:03d}Z" if t_ms % 1000 else f"{text}Z"


def end_price_usd(record: RunRecord) -> Decimal:
    """The index at the end of the run (last sample), else the exit fill, else the start."""
    if record.samples:
        return record.samples[-1].index_usd
    return record.exit_price_usd or record.start_index_usd


# ---- basis -----------------------------------------------------------------------------------
def contract_size_usd(record: RunRecord) -> Decimal:
    """USD per contract: the plan's (taken from the market) or the record's."""
    size = record.plan.get("contract_size_usd") if isinstance(record.plan, dict) else None
    return record.contract_size_usd if size is None else _dec(size)


def _index_at(record: RunRecord, t_ms: int) -> Decimal:
    """The index at ``t_ms`` as far as the record knows: the last sample at or before it
    (the start index before the first sample)."""
    found = record.start_index_usd
    for sample in record.samples:
        if sample.time_ms > t_ms:
            break
        found = sample.index_usd
    return found


def _fills(record: RunRecord) -> list[tuple[int, Decimal, Decimal, Decimal]]:
    """Our fills from the events (``side``, ``contracts``, ``price``; ``index`` if recorded,
    else the index of the latest sample): (direction +1 buy / −1 sell, contracts, price,
    index)."""
    out = []
    for event in record.events:
        if event.get("type") not in FILL_EVENT_TYPES:
            continue
        side = str(event.get("side", "")).lower()
        price, qty = event.get("price"), event.get("contracts", event.get("amount"))
        if side not in ("buy", "sell") or price is None or qty is None:
            continue
        index = event.get("index")
        if index is None:
            time = event.get("time")
            index = _index_at(record, time) if isinstance(time, int) else None
        if index is None:
            continue
        out.append((1 if side == "buy" else -1, _dec(qty), _dec(price), _dec(index)))
    return out


def _entry_exit_index(record: RunRecord) -> tuple[Decimal, Decimal]:
    """Index when the hedge was opened and when it was closed, from the samples."""
    samples = record.samples
    open_idx = [i for i, s in enumerate(samples) if s.position_contracts != 0]
    if not open_idx:
        end = end_price_usd(record)
        return record.start_index_usd, end
    entry = samples[open_idx[0]].index_usd
    after = open_idx[-1] + 1
    exit_index = samples[after].index_usd if after < len(samples) else samples[-1].index_usd
    return entry, exit_index


def basis_btc(record: RunRecord) -> Decimal:
    """Futures PnL at the perp's fill prices minus the PnL at the index (coin).

    From the fill events when the run recorded them: Σ ± contracts × size × (1/price −
    1/index) (the index at the fill if recorded, else the latest sample's); otherwise from the
    average entry and exit prices of ``record.contracts`` and the index when the hedge was
    opened and closed. A liquidation's fills are the venue's, not ours: not counted."""
    size = contract_size_usd(record)
    fills = _fills(record)
    if fills:
        return sum((d * q * size * (1 / p - 1 / i) for d, q, p, i in fills), ZERO)
    if not record.contracts or record.entry_price_usd is None or record.exit_price_usd is None:
        return ZERO
    entry_index, exit_index = _entry_exit_index(record)
    n = Decimal(record.contracts) * size  # a short: PnL = N·cs·(1/exit − 1/entry)
    at_fills = n * (1 / record.exit_price_usd - 1 / record.entry_price_usd)
    at_index = n * (1 / exit_index - 1 / entry_index)
    return at_fills - at_index


# ---- attribution -----------------------------------------------------------------------------
def attribution(record: RunRecord) -> Attribution:
    """The P&L attribution of a run (see the module docstring)."""
    p0, p1 = record.start_index_usd, end_price_usd(record)
    start = record.start_btc
    if record.samples:
        last = record.samples[-1]
        end_btc = last.spot_btc + last.futures_equity_btc
    else:
        end_btc = start + record.futures_pnl_btc + record.funding_btc - record.fees_btc
    other = end_btc - start - record.futures_pnl_btc - record.funding_btc + record.fees_btc
    basis = basis_btc(record)
    return Attribution(
        start_price_usd=p0, end_price_usd=p1, start_btc=start, end_btc=end_btc,
        start_value_usd=start * p0, end_value_usd_hedged=end_btc * p1,
        end_value_usd_unhedged=start * p1, spot_pnl_usd=start * (p1 - p0),
        futures_pnl_btc=record.futures_pnl_btc, futures_pnl_usd=record.futures_pnl_btc * p1,
        basis_btc=basis, basis_usd=basis * p1,
        funding_btc=record.funding_btc, funding_usd=record.funding_btc * p1,
        fees_btc=record.fees_btc, fees_usd=record.fees_btc * p1,
        other_btc=other, other_usd=other * p1,
    )  # fmt: skip


# ---- hedge effectiveness ---------------------------------------------------------------------
def max_drawdown_pct(values: Iterable[Decimal]) -> Decimal:
    """The largest fall from a running peak, in % of that peak (0 for a rising series)."""
    peak: Decimal | None = None
    worst = ZERO
    for value in values:
        if peak is None or value > peak:
            peak = value
        if peak > 0:
            worst = max(worst, (peak - value) / peak * HUNDRED)
    return worst


def _variance(values: Sequence[Decimal]) -> Decimal:
    n = len(values)
    if n == 0:
        return ZERO
    mean = sum(values, ZERO) / n
    return sum(((v - mean) ** 2 for v in values), ZERO) / n


def variance_reduction(hedged: Sequence[Decimal], unhedged: Sequence[Decimal]) -> Decimal | None:
    """1 − var(Δ hedged) / var(Δ unhedged): 1 is a perfect hedge, 0 no hedge at all."""
    d_hedged = [b - a for a, b in pairwise(hedged)]
    d_unhedged = [b - a for a, b in pairwise(unhedged)]
    var_unhedged = _variance(d_unhedged)
    if var_unhedged == 0:
        return None
    return 1 - _variance(d_hedged) / var_unhedged


def effectiveness(record: RunRecord) -> Effectiveness:
    """Hedged vs unhedged value series and their summary (from the samples)."""
    times = [s.time_ms for s in record.samples]
    hedged = [s.hedged_value_usd for s in record.samples]
    unhedged = [record.start_btc * s.index_usd for s in record.samples]
    return Effectiveness(times, hedged, unhedged, max_drawdown_pct(hedged),
                         max_drawdown_pct(unhedged), variance_reduction(hedged, unhedged))


def liquidation_distance_pct(sample: Sample) -> Decimal | None:
    """How far the mark is from the liquidation price, in % of the mark (None without one)."""
    liq = sample.liquidation_price_usd
    if (sample.position_contracts == 0 or liq is None or not liq.is_finite() or liq <= 0
            or sample.mark_usd <= 0):
        return None
    return abs(liq - sample.mark_usd) / sample.mark_usd * HUNDRED


def min_liquidation_distance_pct(record: RunRecord) -> Decimal | None:
    """The closest the mark came to the liquidation price while the hedge was open
    (0 if the position was liquidated; None if it never had a liquidation price)."""
    distances = [d for d in map(liquidation_distance_pct, record.samples) if d is not None]
    if record.liquidated:
        distances.append(ZERO)
    return min(distances) if distances else None


def closest_liquidation(record: RunRecord) -> Sample | None:
    """The sample at which the mark came closest to the liquidation price (None: never had
    one). Shown as that price and its multiple of the mark: a 1x-ish short's liquidation price
    can be 1,000× the mark, which reads badly as "99,900 %"."""
    near = [(d, s) for s in record.samples if (d := liquidation_distance_pct(s)) is not None]
    return min(near, key=lambda pair: pair[0])[1] if near else None


def _mark_multiple(sample: Sample) -> Decimal:
    assert sample.liquidation_price_usd is not None
    return sample.liquidation_price_usd / sample.mark_usd


def closest_liquidation_text(record: RunRecord) -> str:
    """The closest liquidation price in words: price, multiple of the mark, when."""
    if record.liquidated:
        return "reached: " + (stop_text(record) or "liquidated")
    sample = closest_liquidation(record)
    if sample is None or sample.liquidation_price_usd is None:
        return "none (no liquidation price)"
    return (f"{sample.liquidation_price_usd:,.2f} USD = {_mark_multiple(sample):,.2f}× the mark "
            f"{sample.mark_usd:,.2f} (at {iso(sample.time_ms)})")


def stop_text(record: RunRecord) -> str | None:
    """Why the run stopped before the end of its window, in a few words (None: it did not)."""
    if record.exit_reason in ("", "end"):
        return None
    if record.exit_reason in ("liquidated", "adl"):
        hit = next((e for e in record.events if e.get("type") in ("liquidation", "adl")), None)
        if hit is None:
            return "liquidated" if record.exit_reason == "liquidated" else "auto-deleveraged"
        t = int(hit["time"])
        before = [s for s in record.samples if s.time_ms <= t] or record.samples[:1]
        mark = f", mark {before[-1].mark_usd:,.2f}" if before else ""
        what = "liquidated" if record.exit_reason == "liquidated" else "auto-deleveraged"
        return f"{what} at {iso(t)}{mark}"
    if record.exit_reason == "funding_budget":
        return f"funding budget {record.config.funding_budget_btc} BTC"
    if record.exit_reason == "price_above":
        return f"index reached --exit-above {record.config.exit_above_usd}"
    if record.exit_reason == "price_below":
        return f"index reached --exit-below {record.config.exit_below_usd}"
    return exit_reason_text(record)


# ---- outputs ---------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """``value`` with Decimals as strings, tuples as lists, recursively (JSON-safe)."""
    if isinstance(value, Decimal):
        return readable(value) if value.is_finite() else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def to_json(record: RunRecord, **meta: Any) -> dict[str, Any]:
    """The ``--json`` result (docs/contract.md), amounts as strings; ``meta`` (scenario,
    profile, seed, report path, ...) is added as given."""
    att = attribution(record)
    eff = effectiveness(record)
    mld = min_liquidation_distance_pct(record)
    return {
        **plain(meta),
        "contracts": record.contracts,
        "contract_size_usd": plain(contract_size_usd(record)),
        "entry_price": usd(record.entry_price_usd),
        "exit_price": usd(record.exit_price_usd),
        "liquidated": record.liquidated,
        "exit_reason": record.exit_reason,
        "start_time": record.start_ms,
        "end_time": record.end_ms,
        "start_btc": btc(att.start_btc),
        "end_btc": btc(att.end_btc),
        "start_price_usd": usd(att.start_price_usd),
        "end_price_usd": usd(att.end_price_usd),
        "start_value_usd": usd(att.start_value_usd),
        "end_value_usd_hedged": usd(att.end_value_usd_hedged),
        "end_value_usd_unhedged": usd(att.end_value_usd_unhedged),
        "spot_pnl_usd": usd(att.spot_pnl_usd),
        "futures_pnl_btc": btc(att.futures_pnl_btc),
        "futures_pnl_usd": usd(att.futures_pnl_usd),
        "basis_btc": btc(att.basis_btc),
        "basis_usd": usd(att.basis_usd),
        "funding_btc": btc(att.funding_btc),
        "funding_usd": usd(att.funding_usd),
        "fees_btc": btc(att.fees_btc),
        "fees_usd": usd(att.fees_usd),
        "other_btc": btc(att.other_btc),
        "topups_btc": btc(record.topups_btc),
        "min_liquidation_distance_pct": fmt(mld, _PCT),
        **_closest_json(record),
        "max_drawdown_hedged_pct": fmt(eff.max_drawdown_hedged_pct, _PCT),
        "max_drawdown_unhedged_pct": fmt(eff.max_drawdown_unhedged_pct, _PCT),
        "variance_reduction": fmt(eff.variance_reduction, _RATIO),
        "config": plain(asdict(record.config)),
        "events": [plain(event) for event in record.events],
    }


def _closest_json(record: RunRecord) -> dict[str, str | None]:
    sample = closest_liquidation(record)
    if sample is None or sample.liquidation_price_usd is None:
        return {"closest_liquidation_price_usd": None, "closest_liquidation_mark_usd": None,
                "closest_liquidation_mark_multiple": None}
    return {"closest_liquidation_price_usd": usd(sample.liquidation_price_usd),
            "closest_liquidation_mark_usd": usd(sample.mark_usd),
            "closest_liquidation_mark_multiple": fmt(_mark_multiple(sample), _RATIO)}


def _pct_change(new: Decimal, old: Decimal) -> str:
    if old == 0:
        return "n/a"
    return f"{(new - old) / old * HUNDRED:+.2f} %"


def _money(value: Decimal) -> str:
    return f"${value:,.2f}"


def _coin_usd(coin: Decimal, dollars: Decimal) -> str:
    return f"{coin:+.8f} BTC ({'-' if dollars < 0 else '+'}${abs(dollars):,.2f})"


def exit_reason_text(record: RunRecord) -> str:
    """Why the run ended, in words: the exit event's detail when the runner recorded one."""
    for event in reversed(record.events):
        if event.get("type") == "exit" and event.get("detail"):
            return f"{record.exit_reason}: {event['detail']}" if record.exit_reason else \
                str(event["detail"])
    return record.exit_reason or "end of scenario"


def attribution_rows(record: RunRecord) -> list[tuple[str, str, str]]:
    """(component, BTC, USD) rows of the attribution table, ending with the total."""
    att = attribution(record)
    rows = [
        ("Spot leg (coin held × index move)", "", f"{att.spot_pnl_usd:+,.2f}"),
        ("Futures leg (realised short PnL)", f"{att.futures_pnl_btc:+.8f}",
         f"{att.futures_pnl_usd:+,.2f}"),
        ("   of which basis (perp vs index fills)", f"{att.basis_btc:+.8f}",
         f"{att.basis_usd:+,.2f}"),
        ("Funding (+ received, − paid)", f"{att.funding_btc:+.8f}", f"{att.funding_usd:+,.2f}"),
        ("Fees", f"{-att.fees_btc:+.8f}", f"{-att.fees_usd:+,.2f}"),
    ]
    if att.other_btc.quantize(_BTC) != 0:
        rows.append(("Other (liquidation loss, open position)", f"{att.other_btc:+.8f}",
                     f"{att.other_usd:+,.2f}"))
    rows.append(("Total: hedged portfolio change", f"{att.end_btc - att.start_btc:+.8f}",
                 f"{att.hedged_pnl_usd:+,.2f}"))
    return rows


def summary_rows(record: RunRecord) -> list[tuple[str, str]]:
    """(label, value) rows of the summary table the CLI prints."""
    att = attribution(record)
    eff = effectiveness(record)
    size = contract_size_usd(record)
    entry = "—" if record.entry_price_usd is None else f"{record.entry_price_usd:,.2f}"
    exit_ = "—" if record.exit_price_usd is None else f"{record.exit_price_usd:,.2f}"
    vr = eff.variance_reduction
    start_usd = att.start_value_usd
    return [
        ("Hedge", f"short {record.contracts:,} contracts (${record.contracts * size:,.0f}) "
                  f"at {entry}"),
        ("Exit", f"at {exit_} · {exit_reason_text(record)}"),
        ("Liquidated", "YES" if record.liquidated else "no"),
        ("Start value", f"{_money(att.start_value_usd)}  ({att.start_btc:f} BTC × "
                        f"{att.start_price_usd:,.2f})"),
        ("End value, hedged", f"{_money(att.end_value_usd_hedged)}  "
                              f"({_pct_change(att.end_value_usd_hedged, start_usd)})"),
        ("End value, unhedged", f"{_money(att.end_value_usd_unhedged)}  "
                                f"({_pct_change(att.end_value_usd_unhedged, start_usd)})"),
        ("Spot leg", f"{att.spot_pnl_usd:+,.2f} USD"),
        ("Futures leg", _coin_usd(att.futures_pnl_btc, att.futures_pnl_usd)),
        ("  of which basis", _coin_usd(att.basis_btc, att.basis_usd)),
        ("Funding", _coin_usd(att.funding_btc, att.funding_usd)),
        ("Fees", _coin_usd(-att.fees_btc, -att.fees_usd)),
        ("Top-ups", f"{record.topups_btc:.8f} BTC"),
        ("Closest liquidation price", closest_liquidation_text(record)),
        ("Max drawdown", f"{eff.max_drawdown_hedged_pct:.2f} % hedged, "
                         f"{eff.max_drawdown_unhedged_pct:.2f} % unhedged"),
        ("Variance reduction", "n/a" if vr is None else f"{vr * HUNDRED:.1f} %"),
    ]
