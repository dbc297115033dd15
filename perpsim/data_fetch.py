"""``perpsim data fetch``: mark, index and last klines and funding history through ccxt, into a
store (sim/data_store.py), with progress and resume.

Pages are appended to CSV files in ``OUT/.partial/`` as they arrive; an interrupted fetch run
again with the same arguments continues after the last saved row of each kind (the arguments
are kept in ``.partial/fetch.json`` and must match). Only closed bars are kept (a bar whose
close is after ``until`` is still moving on a live venue). When every kind is complete, the
files go through the same importers as ``perpsim data import`` and the store is written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perpsim.sim.data_import import (
    BarPath,
    Imported,
    read_bybit_funding,
    read_klines,
    to_series,
)
from perpsim.sim.data_store import StoreInfo, write_store
from perpsim.sim.data_tables import read_tables
from perpsim.sim.errors import ScenarioError

KINDS = ("last", "mark", "index", "funding")
PARTIAL = ".partial"
_KLINE_HEADER = "open_time,open,high,low,close,close_time\n"
_FUNDING_HEADER = "fundingRateTimestamp,fundingRate\n"

Progress = Callable[[str, int, int], None]  # kind, done ms, total ms
_CCXT_METHOD = {"last": "fetchOHLCV", "mark": "fetchMarkOHLCV", "index": "fetchIndexOHLCV",
                "funding": "fetchFundingRateHistory"}


@dataclass(frozen=True)
class FetchPlan:
    """What to fetch (compared on resume: a partial download is only continued as itself)."""

    exchange: str
    symbol: str
    pair: str  # the scenario pair the prices become; "" = the market's base + quote (BTCUSD)
    timeframe: str
    since_ms: int
    until_ms: int
    kinds: tuple[str, ...]
    limit: int = 500


def make_exchange(exchange_id: str, url: str | None) -> Any:
    """A ccxt client for ``exchange_id``; with ``url`` every API URL points there instead (a
    perpsim server, a proxy or a recorded venue)."""
    import ccxt

    cls = getattr(ccxt, exchange_id, None)
    if cls is None or not isinstance(cls, type):
        raise ScenarioError(f"ccxt has no exchange {exchange_id!r}")
    ex = cls({"enableRateLimit": url is None, "options": {"fetchCurrencies": False}})
    if url is not None:
        from perpsim.strategy.connect import default_ws_base, restore_coinm_errors, rewrite_urls

        try:
            ex.urls = rewrite_urls(ex.urls, url, default_ws_base(url))
        except ValueError as exc:
            raise ScenarioError(f"--url: {exc}") from None
        restore_coinm_errors(ex)
    return ex


def _last_time(path: Path) -> int | None:
    """The time in the last saved row of a partial file (None if it has none)."""
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").strip().splitlines()
    return int(lines[-1].split(",")[0]) if len(lines) > 1 else None


def _partial(out: Path, plan: FetchPlan) -> Path:
    """The staging directory, created or checked against ``plan``."""
    staging = out / PARTIAL
    meta = staging / "fetch.json"
    wanted = asdict(plan) | {"kinds": list(plan.kinds)}
    if meta.is_file():
        saved = json.loads(meta.read_text(encoding="utf-8"))
        if saved != wanted:
            raise ScenarioError(f"{staging} holds a partial fetch with other arguments "
                                f"({saved}); run it with the same ones or delete the folder")
    else:
        staging.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(wanted), encoding="utf-8")
    return staging


def fetch_klines(ex: Any, plan: FetchPlan, kind: str, path: Path,
                 progress: Progress | None) -> int:
    """Append ``kind`` bars to ``path`` from after its last row up to ``until``; rows added."""
    step = int(ex.parse_timeframe(plan.timeframe) * 1000)
    method = {"last": ex.fetch_ohlcv, "mark": ex.fetch_mark_ohlcv,
              "index": ex.fetch_index_ohlcv}[kind]
    last = _last_time(path)
    since = plan.since_ms if last is None else last + step
    if last is None:
        path.write_text(_KLINE_HEADER, encoding="utf-8")
    added = 0
    total = max(plan.until_ms - plan.since_ms, 1)
    while since + step <= plan.until_ms:
        batch = method(plan.symbol, plan.timeframe, since, plan.limit)
        rows = [b for b in batch if since <= int(b[0]) and int(b[0]) + step <= plan.until_ms]
        if not rows:
            break
        with path.open("a", encoding="utf-8") as fh:  # saved page by page: resume point
            for b in rows:
                fh.write(f"{int(b[0])},{b[1]!r},{b[2]!r},{b[3]!r},{b[4]!r},"
                         f"{int(b[0]) + step - 1}\n")
        added += len(rows)
        since = int(rows[-1][0]) + step
        if progress is not None:
            progress(kind, min(since - plan.since_ms, total), total)
    if progress is not None:
        progress(kind, total, total)
    return added


def fetch_funding(ex: Any, plan: FetchPlan, path: Path, progress: Progress | None) -> int:
    """Append the funding history after the last saved rate up to ``until``; rows added."""
    last = _last_time(path)
    since = plan.since_ms if last is None else last + 1
    if last is None:
        path.write_text(_FUNDING_HEADER, encoding="utf-8")
    added = 0
    total = max(plan.until_ms - plan.since_ms, 1)
    while since <= plan.until_ms:
        batch = ex.fetch_funding_rate_history(plan.symbol, since, plan.limit)
        rows = sorted((int(r["timestamp"]), float(r["fundingRate"])) for r in batch
                      if r.get("timestamp") is not None and since <= int(r["timestamp"])
                      <= plan.until_ms)
        if not rows:
            break
        with path.open("a", encoding="utf-8") as fh:
            fh.writelines(f"{t},{rate!r}\n" for t, rate in rows)
        added += len(rows)
        since = rows[-1][0] + 1
        if progress is not None:
            progress("funding", min(since - plan.since_ms, total), total)
    if progress is not None:
        progress("funding", total, total)
    return added


def fetch_store(plan: FetchPlan, out: Path, *, url: str | None = None, bars: BarPath = "ohlc",
                progress: Progress | None = None, exchange: Any = None
                ) -> tuple[StoreInfo, list[str]]:
    """Fetch ``plan`` into a new store at ``out``; the store and the import notes."""
    if (out / "store.json").exists():
        raise ScenarioError(f"{out}: already holds a store; choose a new directory")
    if plan.until_ms <= plan.since_ms:
        raise ScenarioError("--until must be after --since")
    ex = exchange if exchange is not None else make_exchange(plan.exchange, url)
    missing = [k for k in plan.kinds if not ex.has.get(_CCXT_METHOD[k])]
    if missing:
        raise ScenarioError(f"{plan.exchange} offers no {', '.join(missing)} history through "
                            f"ccxt; leave {'it' if len(missing) == 1 else 'them'} out of --kinds")
    staging = _partial(out, plan)
    try:
        ex.load_markets()
        if plan.symbol not in ex.markets:
            raise ScenarioError(f"{plan.exchange} has no market {plan.symbol!r}")
        market = ex.markets[plan.symbol]
        pair = plan.pair or f"{market['base']}{market['quote']}"
        for kind in plan.kinds:
            if kind == "funding":
                fetch_funding(ex, plan, staging / "funding.csv", progress)
            else:
                fetch_klines(ex, plan, kind, staging / f"{kind}.csv", progress)
    except Exception as exc:
        import ccxt

        if isinstance(exc, ccxt.BaseError):
            raise ScenarioError(f"{plan.exchange}: {type(exc).__name__}: {exc} (saved so far: "
                                f"{staging}; run the same command again to resume)") from None
        raise
    data = Imported()
    for kind in plan.kinds:
        path = staging / f"{kind}.csv"
        if _last_time(path) is None:
            continue
        for table in read_tables(path, header=True):
            if kind == "funding":
                data.add_funding(*read_bybit_funding(table), table.label)
            else:
                data.add_prices(kind, *read_klines(table, kind, bars), table.label)
    if not data.prices:
        raise ScenarioError(f"{plan.exchange} returned no bars for {plan.symbol} between the "
                            "given times")
    series = to_series(data)
    note = (f"Fetched through ccxt {plan.exchange} {plan.symbol} ({plan.timeframe} bars, "
            f"{', '.join(plan.kinds)}){' from ' + url if url else ''}.\n"
            "Terms: the venue's market-data terms apply to this data.\n")
    info = write_store(out, out.name, f"{plan.exchange} {plan.symbol} {plan.timeframe}",
                       {pair: series}, source_note=note)
    shutil.rmtree(staging)
    return info, data.notes
