"""A cascade as the journal recorded it: liquidation volume per minute, prices, depth, fund, ADL.

Read-only over ``Exchange.journal`` (plus the finite book's state now), so the dashboard's
cascade view (api/ui) and the ``cascade`` lesson show the same numbers the engine journalled:

* ``liquidation.takeover`` (whole positions, at the bankruptcy price) and partial
  ``liquidation.order`` events (step-downs) give the contracts liquidated per minute, and
  their value in coin at the price they closed at;
* ``adl.fill`` gives the contracts auto-deleveraged per minute and each ADL event;
* ``book.depth`` (sim/cascade.py, after every liquidation order on a finite book) gives the
  last, mark and index prices, the contracts still quoted per side and the insurance fund at
  those instants; ``liquidation.completed`` adds the fund after each liquidation.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from perpsim.sim.inverse import coin_value

if TYPE_CHECKING:
    from perpsim.sim.exchange import Exchange

MINUTE_MS = 60_000


def _dec(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def cascade_record(ex: Exchange, symbol: str, *, since_ms: int | None = None,
                   bucket_ms: int = MINUTE_MS) -> dict[str, Any]:
    """The cascade on ``symbol`` from ``since_ms`` (default: the market's start) to now.

    Returns ``buckets`` (start ms of each minute with liquidations or ADL, ascending) with
    ``liquidated_contracts``, ``liquidated_coin`` and ``adl_contracts`` per bucket;
    ``points`` (``book.depth`` records: time, last, mark, index, bids/asks quoted, fund);
    ``fund`` ((time, insurance fund) after each liquidation); ``adl`` (each ADL fill);
    ``liquidations`` (count of ``liquidation.triggered`` on the symbol) and ``accounts``
    (distinct accounts liquidated).
    """
    inst = ex.instrument(symbol)
    cs = inst.contract_size_usd
    start = ex.start_ms if since_ms is None else since_ms
    volume: dict[int, list[Any]] = {}
    points: list[dict[str, Any]] = []
    fund: list[tuple[int, Decimal]] = []
    adl: list[dict[str, Any]] = []
    liquidated: set[str] = set()
    count = 0
    for event in ex.journal:
        if event.time_ms < start:
            continue
        p = event.payload
        kind = event.type
        bucket = event.time_ms // bucket_ms * bucket_ms
        if kind == "liquidation.triggered":
            if any(pos.get("symbol") == symbol for pos in p.get("positions", ())):
                count += 1
                liquidated.add(str(p["account_id"]))
        elif p.get("symbol") != symbol and kind != "liquidation.completed":
            continue
        elif kind == "liquidation.takeover" or (kind == "liquidation.order"
                                                and p.get("kind") == "partial"):
            qty = abs(int(p["qty"]))
            price = _dec(p["bankruptcy_price"] if kind == "liquidation.takeover"
                         else p["avg_price"])
            row = volume.setdefault(bucket, [0, Decimal(0), 0])
            row[0] += qty
            row[1] += coin_value(qty, price, cs)
        elif kind == "adl.fill":
            row = volume.setdefault(bucket, [0, Decimal(0), 0])
            row[2] += int(p["qty"])
            adl.append({"time": event.time_ms, "account_id": p["account_id"],
                        "qty": int(p["qty"]), "price": _dec(p["price"]),
                        "counterparty_of": p["counterparty_of"]})
        elif kind == "book.depth":
            points.append({"time": event.time_ms, "last": _dec(p["last"]),
                           "mark": _dec(p["mark"]), "index": _dec(p["index"]),
                           "bids_quoted": int(p["bids_quoted"]),
                           "asks_quoted": int(p["asks_quoted"]),
                           "insurance_fund": _dec(p["insurance_fund"])})
        if kind == "liquidation.completed":
            fund.append((event.time_ms, _dec(p["insurance_fund"])))
    buckets = sorted(volume)
    return {
        "symbol": symbol, "bucket_ms": bucket_ms, "buckets": buckets,
        "liquidated_contracts": [volume[b][0] for b in buckets],
        "liquidated_coin": [volume[b][1] for b in buckets],
        "adl_contracts": [volume[b][2] for b in buckets],
        "points": points, "fund": fund, "adl": adl,
        "liquidations": count, "accounts": len(liquidated),
    }
