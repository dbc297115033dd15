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
    from collections.abc import Iterable

    from perpsim.sim.exchange import Exchange
    from perpsim.sim.journal import Event

MINUTE_MS = 60_000


def _dec(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


class CascadeTally:
    """The cascade on one symbol, fed journal events in order (``feed``); ``record`` reads it.

    Incremental, so a dashboard refreshing often pays for the new events only."""

    def __init__(self, ex: Exchange, symbol: str, *, since_ms: int | None = None,
                 bucket_ms: int = MINUTE_MS) -> None:
        inst = ex.instrument(symbol)
        self.symbol = inst.symbol
        self.cs = inst.contract_size_usd
        self.since_ms = ex.start_ms if since_ms is None else since_ms
        self.bucket_ms = bucket_ms
        self.seen = 0  # journal events fed so far
        self.volume: dict[int, list[Any]] = {}  # bucket → [contracts, coin, ADL contracts]
        self.points: list[dict[str, Any]] = []
        self.fund: list[tuple[int, Decimal]] = []
        self.adl: list[dict[str, Any]] = []
        self.liquidated: set[str] = set()
        self.count = 0

    def feed(self, events: Iterable[Event]) -> None:
        """Take the next journal events (in journal order, none skipped)."""
        for event in events:
            self.seen += 1
            if event.time_ms >= self.since_ms:
                self._take(event)

    def _take(self, event: Event) -> None:
        p, kind, symbol = event.payload, event.type, self.symbol
        bucket = event.time_ms // self.bucket_ms * self.bucket_ms
        if kind == "liquidation.completed":
            self.fund.append((event.time_ms, _dec(p["insurance_fund"])))
        elif kind == "liquidation.triggered":
            if any(pos.get("symbol") == symbol for pos in p.get("positions", ())):
                self.count += 1
                self.liquidated.add(str(p["account_id"]))
        elif p.get("symbol") != symbol:
            return
        elif kind == "liquidation.takeover" or (kind == "liquidation.order"
                                                and p.get("kind") == "partial"):
            qty = abs(int(p["qty"]))
            price = _dec(p["bankruptcy_price"] if kind == "liquidation.takeover"
                         else p["avg_price"])
            row = self.volume.setdefault(bucket, [0, Decimal(0), 0])
            row[0] += qty
            row[1] += coin_value(qty, price, self.cs)
        elif kind == "adl.fill":
            self.volume.setdefault(bucket, [0, Decimal(0), 0])[2] += int(p["qty"])
            self.adl.append({"time": event.time_ms, "account_id": p["account_id"],
                             "qty": int(p["qty"]), "price": _dec(p["price"]),
                             "counterparty_of": p["counterparty_of"]})
        elif kind == "book.depth":
            self.points.append({"time": event.time_ms, "last": _dec(p["last"]),
                                "mark": _dec(p["mark"]), "index": _dec(p["index"]),
                                "bids_quoted": int(p["bids_quoted"]),
                                "asks_quoted": int(p["asks_quoted"]),
                                "insurance_fund": _dec(p["insurance_fund"])})

    def record(self) -> dict[str, Any]:
        """What ``cascade_record`` returns, from the events fed so far (fresh lists)."""
        buckets = sorted(self.volume)
        return {
            "symbol": self.symbol, "bucket_ms": self.bucket_ms, "buckets": buckets,
            "liquidated_contracts": [self.volume[b][0] for b in buckets],
            "liquidated_coin": [self.volume[b][1] for b in buckets],
            "adl_contracts": [self.volume[b][2] for b in buckets],
            "points": list(self.points), "fund": list(self.fund), "adl": list(self.adl),
            "liquidations": self.count, "accounts": len(self.liquidated),
        }


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
    tally = CascadeTally(ex, symbol, since_ms=since_ms, bucket_ms=bucket_ms)
    tally.feed(ex.journal)
    return tally.record()
