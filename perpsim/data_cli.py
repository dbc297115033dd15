"""``perpsim data``: import market data into stores, fetch it through ccxt, list and show stores.

A store (sim/data_store.py) is a scenario: give its name (bundled) or directory to ``--scenario``
of hedge, serve, teach..., optionally with a window: ``NAME@2020-03-12..2020-03-14``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from perpsim.sim.errors import ScenarioError

FORMATS = ("binance", "bybit", "tardis", "csv")


def add_data_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``data`` (import, fetch, list, show) to the CLI's subparsers."""
    data = subparsers.add_parser(
        "data", help="real market data: import files, fetch through ccxt, list and show stores",
        description="Turn market data into scenario stores (Parquet, partitioned by day) and "
        "browse the bundled real-market library. A store runs anywhere a scenario does: "
        "--scenario NAME_OR_DIR[@START..END].")
    sub = data.add_subparsers(dest="data_command", required=True, parser_class=type(data))

    imp = sub.add_parser("import", help="import files (Binance, Bybit, Tardis or any CSV)",
                         description="Import files into a new store directory. Every row is "
                         "checked (time order, positive finite prices); the first problem stops "
                         "the import naming the file and line; gaps are reported.")
    imp.add_argument("format", choices=FORMATS)
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE",
                     help="CSV, zip of CSVs or .csv.gz files (daily or monthly)")
    imp.add_argument("--out", type=Path, required=True, metavar="DIR",
                     help="the new store directory")
    imp.add_argument("--pair", default="BTCUSD", help="the pair the prices are (default BTCUSD)")
    imp.add_argument("--description", default=None,
                     help="one line describing the store (shown by data show; default: none)")
    imp.add_argument("--kind", default=None,
                     help="binance: klines|markPriceKlines|indexPriceKlines|premiumIndexKlines|"
                          "fundingRate; bybit: kline|mark|index|premium|funding "
                          "(default: from each file name)")
    imp.add_argument("--bars", choices=("ohlc", "open"), default="ohlc",
                     help="ohlc: a bar as open/extremes/close rows, open: its open only "
                          "(default: ohlc)")
    imp.add_argument("--map", default=None, metavar="NAME=COL,...",
                     help="csv: columns, e.g. time=ts,index=index_price,perp=last,"
                          "funding_rate=fr (names: time, index, perp, mark, last, funding_rate; "
                          "default: the columns' own names)")
    imp.add_argument("--time-unit", default="auto", choices=("auto", "s", "ms", "us", "iso"),
                     help="csv: how times are written (default: auto, guessed)")
    imp.add_argument("--funding-hours", default=None, metavar="H,H,...",
                     help="csv: keep funding rows only at these whole UTC hours, e.g. 0,8,16 "
                          "(default: every funding row)")
    imp.add_argument("--sort", action="store_true",
                     help="sort rows by time instead of refusing a file out of order "
                          "(default: refuse)")
    imp.add_argument("--partition", choices=("day", "month"), default="day",
                     help="one Parquet file per day (default) or per month (sparse data)")
    imp.set_defaults(run=_import)

    fetch = sub.add_parser("fetch", help="fetch klines and funding through ccxt (resumable)",
                           description="Fetch last, mark and index klines and the funding "
                           "history of a perpetual from any ccxt venue into a new store. "
                           "Interrupted? Run the same command again: it resumes.")
    fetch.add_argument("--exchange", default="binancecoinm",
                       help="ccxt exchange id (default: binancecoinm)")
    fetch.add_argument("--symbol", default="BTC/USD:BTC",
                       help="ccxt symbol (default: BTC/USD:BTC)")
    fetch.add_argument("--since", required=True, help="start (ISO 8601 UTC or epoch ms)")
    fetch.add_argument("--until", required=True, help="end (ISO 8601 UTC or epoch ms)")
    fetch.add_argument("--timeframe", default="1m", help="kline timeframe (default: 1m)")
    fetch.add_argument("--kinds", default="last,mark,index,funding",
                       help="any of last, mark, index, funding (comma-separated; default: "
                            "last,mark,index,funding)")
    fetch.add_argument("--url", default=None,
                       help="send every request to this base URL instead (e.g. a perpsim server; "
                            "default: the venue's own)")
    fetch.add_argument("--out", type=Path, required=True, metavar="DIR")
    fetch.add_argument("--pair", default="",
                       help="the scenario pair (default: the market's base + quote, e.g. BTCUSD)")
    fetch.add_argument("--bars", choices=("ohlc", "open"), default="ohlc",
                       help="ohlc: a bar as open/extremes/close rows, open: its open only "
                            "(default: ohlc)")
    fetch.add_argument("--limit", type=int, default=500, help="bars per request (default 500)")
    fetch.set_defaults(run=_fetch)

    lst = sub.add_parser("list", help="list the bundled real-market stores")
    lst.set_defaults(run=_list)

    show = sub.add_parser("show", help="a store's summary and an offline HTML chart")
    show.add_argument("name", help="bundled store name or store directory")
    show.add_argument("--html", default=None, metavar="FILE",
                      help="write the chart here (default ./perpsim-data-NAME.html)")
    show.set_defaults(run=_show)
    return data


def _store(name: str) -> Any:
    from perpsim.sim.data_store import is_store, open_store
    from perpsim.sim.scenario_store import bundled_stores

    bundled = bundled_stores()
    if name in bundled:
        return open_store(bundled[name])
    path = Path(name).expanduser()
    if is_store(path):
        return open_store(path)
    raise ScenarioError(f"no store {name!r}: bundled stores are {', '.join(bundled)}; or give "
                        "a store directory")


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def _import(args: argparse.Namespace) -> int:
    from perpsim.sim import data_import as di
    from perpsim.sim.data_store import write_store

    if args.map is not None and args.format != "csv":
        raise ScenarioError("--map applies to the csv format only")
    if args.format == "csv":
        if args.map is None:
            raise ScenarioError("the csv format needs --map time=COLUMN,index=COLUMN,...")
        hours = None
        if args.funding_hours:
            try:
                hours = tuple(int(h) for h in args.funding_hours.split(","))
            except ValueError:
                hours = (-1,)
            if not all(0 <= h <= 23 for h in hours):
                raise ScenarioError(f"--funding-hours: {args.funding_hours!r} is not a list of "
                                    "UTC hours 0-23")
        data = di.import_mapped(args.files, di.parse_mapping(args.map),
                                time_unit=args.time_unit, sort=args.sort, funding_hours=hours)
    elif args.format == "tardis":
        data = di.import_tardis(args.files, sort=args.sort)
    else:
        kinds = di.BINANCE_KINDS if args.format == "binance" else di.BYBIT_KINDS
        if args.kind is not None and args.kind not in kinds:
            raise ScenarioError(f"--kind for {args.format} must be one of {', '.join(kinds)}")
        reader = di.import_binance if args.format == "binance" else di.import_bybit
        data = reader(args.files, kind=args.kind, bars=args.bars, sort=args.sort)
    series = di.to_series(data)
    description = args.description or (f"{args.pair} from {len(args.files)} {args.format} "
                                       f"file(s), {args.files[0].name} …")
    info = write_store(args.out, args.out.name, description, {args.pair: series},
                       partition=args.partition,
                       source_note=f"Imported with perpsim data import {args.format} from:\n"
                       + "".join(f"  {f.name}\n" for f in args.files))
    _print_notes(data.notes)
    print(f"wrote {info.directory}: {info.rows:,} rows, {len(series.funding_times_ms)} funding "
          f"rates; run it: perpsim hedge --scenario {info.directory}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from perpsim.data_fetch import KINDS, FetchPlan, fetch_store
    from perpsim.sim.synthetic import parse_time_ms

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    wrong = [k for k in kinds if k not in KINDS]
    if wrong or not kinds:
        raise ScenarioError(f"--kinds: {', '.join(wrong) or 'none'} (choose from "
                            f"{', '.join(KINDS)})")
    if not 1 <= args.limit <= 1500:
        raise ScenarioError(f"--limit must be 1-1500, got {args.limit}")
    try:
        since, until = parse_time_ms(args.since, "--since"), parse_time_ms(args.until, "--until")
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    plan = FetchPlan(args.exchange, args.symbol, args.pair, args.timeframe, since, until, kinds,
                     args.limit)
    progress = Progress(TextColumn("[bold]{task.description:<8}"), BarColumn(),
                        TaskProgressColumn(), console=Console(stderr=True))
    tasks = {k: progress.add_task(k, total=1.0) for k in kinds}

    def update(kind: str, done: int, total: int) -> None:
        progress.update(tasks[kind], completed=done / total)

    with progress:
        info, notes = fetch_store(plan, args.out, url=args.url, bars=args.bars, progress=update)
    _print_notes(notes)
    print(f"wrote {info.directory}: {info.rows:,} rows; run it: perpsim hedge --scenario "
          f"{info.directory}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from perpsim.sim.data_store import open_store
    from perpsim.sim.scenario_store import bundled_stores
    from perpsim.sim.synthetic import format_time_ms

    table = Table(box=box.SIMPLE_HEAD, title="bundled real-market scenarios",
                  title_justify="left")
    for column in ("name", "from", "to", "rows", "funding"):
        table.add_column(column, no_wrap=True)
    table.add_column("description", overflow="fold", min_width=30)
    for name, directory in bundled_stores().items():
        store = open_store(directory)
        funding = sum(p.funding_rows for p in store.pairs.values())
        table.add_row(name, format_time_ms(store.start_ms)[:10], format_time_ms(store.end_ms)[:10],
                      f"{store.rows:,}", f"{funding:,}", store.description)
    Console().print(table)
    print("run one: perpsim hedge --scenario NAME[@START..END]; details: perpsim data show NAME")
    return 0


def _show(args: argparse.Namespace) -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from perpsim.data_chart import read_all, summary_rows, write_chart

    store = _store(args.name)
    series = read_all(store)  # once, for the table and the chart
    table = Table(box=box.SIMPLE, show_header=False, title=store.name, title_justify="left")
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("", overflow="fold")
    for label, value in summary_rows(store, series):
        table.add_row(label, value)
    Console().print(table)
    target = write_chart(store, Path(args.html or f"perpsim-data-{store.name}.html"), series)
    print(f"chart: {target}")
    return 0
