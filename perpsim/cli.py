"""The ``perpsim`` command line (docs/contract.md): serve, and the jobs built on it.

Exit codes: 0 success, 2 bad arguments or a bad input file (one line naming the problem),
1 anything else (and a liquidated hedge with --fail-on-liquidation). A bare ``perpsim`` prints
the help and exits 0; ``perpsim --version`` prints the version.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from perpsim.sim.errors import PerpsimError
from perpsim.strategy.record import DEMO_SCENARIO

if TYPE_CHECKING:
    from perpsim.api.state import ServerState
    from perpsim.strategy.record import HedgeConfig, RunRecord

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"perpsim: error: {message}\n")


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _positive_decimal(text: str) -> Decimal:
    value = _decimal(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_decimal(text: str) -> Decimal:
    value = _decimal(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive number, got {text}")
    return value


def _hedge_ratio(text: str) -> Decimal:
    value = _decimal(text)
    if not 0 < value <= 2:
        raise argparse.ArgumentTypeError(f"must be in (0, 2], got {text}")
    return value


def _leverage(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number 1-125, got {text!r}") from None
    if not 1 <= value <= 125:
        raise argparse.ArgumentTypeError(f"must be a whole number 1-125, got {text}")
    return value


DEMO_REPORT = "perpsim-demo-report.html"


def _scenario_epilog() -> str:
    from perpsim.sim.scenario import bundled_scenarios

    lines = [f"  {name:<16} {text}" for name, text in bundled_scenarios().items()
             if name != "manual"]
    return "bundled scenarios (or give a CSV / JSON spec path):\n" + "\n".join(lines)


def _add_run_options(cmd: argparse.ArgumentParser, *, scenario_default: str | None) -> None:
    """The options ``hedge`` and ``demo`` share."""
    if scenario_default is None:
        cmd.add_argument("--scenario", required=True, metavar="S",
                         help="bundled scenario name or CSV/JSON path (listed below)")
    else:
        cmd.add_argument("--scenario", default=scenario_default, metavar="S",
                         help="bundled scenario name or CSV/JSON path "
                              f"(default: {scenario_default})")
    cmd.add_argument("--profile", default="binance_coinm", metavar="P",
                     help="bundled profile name or path to a profile JSON (default: "
                          "binance_coinm); the hedge trades its BTC inverse perpetual")
    cmd.add_argument("--dialect", default=None, metavar="D",
                     help="the wire the hedging client speaks: binance_coinm (ccxt.binancecoinm)"
                          " or bybit_v5 (ccxt.bybit) (default: the profile's)")
    cmd.add_argument("--seed", type=_seed, default=0, metavar="N",
                     help="seed of the scenario generator (default: 0)")
    cmd.add_argument("--spot", type=_positive_decimal, default=Decimal(5), metavar="BTC",
                     help="coin held (default: 5)")
    cmd.add_argument("--hedge-ratio", type=_hedge_ratio, default=Decimal(1), metavar="R",
                     help="USD value shorted / USD value held (default: 1)")
    cmd.add_argument("--collateral", type=_positive_decimal, default=None, metavar="BTC",
                     help="coin deposited as futures margin (default: all of --spot); the rest "
                          "stays in the spot wallet and funds top-ups")
    cmd.add_argument("--leverage", type=_leverage, default=1, metavar="L",
                     help="leverage set on the position (default: 1)")
    cmd.add_argument("--margin-mode", choices=("isolated", "cross"), default="isolated",
                     help="margin mode of the position: isolated or cross (default: isolated)")
    cmd.add_argument("--no-topup", dest="topup", action="store_false",
                     help="never move spot coin into margin (a short may then be liquidated; "
                          "default: top up when the liquidation price comes near)")
    cmd.add_argument("--funding-budget", type=_non_negative_decimal, default=None,
                     metavar="BTC", help="exit before the funding settlement that would take "
                     "the net funding paid past this much coin, judged by the predicted rate "
                     "(default: no budget)")
    cmd.add_argument("--exit-above", type=_positive_decimal, default=None, metavar="USD",
                     help="exit when the index rises to this price; must be above the index "
                          "at the start (default: none)")
    cmd.add_argument("--exit-below", type=_positive_decimal, default=None, metavar="USD",
                     help="exit when the index falls to this price; must be below the index "
                          "at the start (default: none)")
    cmd.add_argument("--topup-below", type=_positive_decimal, default=None, metavar="PCT",
                     help="top up when liquidation is nearer than PCT %% of the mark (default 15)")
    cmd.add_argument("--topup-to", type=_positive_decimal, default=None, metavar="PCT",
                     help="... back out to PCT %% (default 35)")
    cmd.add_argument("--rebalance-drift", type=_positive_decimal, default=None, metavar="PCT",
                     help="re-size when the short is PCT %% off its target (default 5)")
    cmd.add_argument("--report", default=None, metavar="FILE",
                     help="write the HTML report here" + (
                         f" (default: ./{DEMO_REPORT})" if scenario_default
                         else " (default: no report)"))
    cmd.add_argument("--json", action="store_true",
                     help="print one JSON object with the result on stdout, nothing else "
                          "(default: a progress bar and a summary table)")
    cmd.add_argument("--fail-on-liquidation", action="store_true",
                     help="exit 1 if the hedge was liquidated, to gate CI (default: exit 0 "
                          "whatever the outcome)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    from perpsim import __version__
    from perpsim.sim.scenario import bundled_scenarios

    parser = _Parser(prog="perpsim", description="A mock exchange for inverse perpetual futures.",
                     epilog="Run 'perpsim COMMAND --help' for a command's options. Exit codes: "
                     "0 success, 1 failure, 2 bad arguments or input.")
    parser.add_argument("--version", action="version", version=f"perpsim {__version__}")
    parser.set_defaults(run=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    names = ", ".join(bundled_scenarios())
    serve = sub.add_parser("serve", help="run the mock exchange until interrupted",
                           description="Run the mock exchange (Binance COIN-M dialect + control "
                           f"plane) until interrupted. Bundled scenarios: {names}.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=_port, default=8765,
                       help="TCP port; 0 picks a free one, printed in the banner (default: 8765)")
    serve.add_argument("--profile", default="binance_coinm",
                       help="bundled profile name or path to a profile JSON "
                            "(default: binance_coinm)")
    serve.add_argument("--scenario", default="manual",
                       help="bundled name or CSV/JSON path (default: manual, prices set "
                            "through the control plane)")
    serve.add_argument("--seed", type=_seed, default=0,
                       help="seed of the scenario generator (default: 0)")
    serve.add_argument("--dialect", default=None, help="default wire for perpsim's clients "
                       "(binance_coinm, bybit_v5; default: the profile's); all are served")
    serve.add_argument("--start", default=None,
                       help="start time, ISO 8601 UTC or epoch ms (default: the scenario's "
                            "first row; 2024-01-01T00:00:00Z for manual)")
    serve.add_argument("--clock", choices=("stepped", "realtime"), default="stepped",
                       help="stepped: time moves only on POST /control/advance; realtime: "
                            "with the wall clock (default: stepped)")
    serve.add_argument("--speed", type=_positive_float, default=1.0,
                       help="realtime only: simulated seconds per wall second (default: 1.0)")
    serve.add_argument("--record", default=None, metavar="FILE",
                       help="record every request and the journal to FILE "
                            "(rebuild the run with: perpsim replay FILE; default: no recording)")
    from perpsim.serving import add_serve_options, run_serve

    add_serve_options(serve)
    serve.set_defaults(run=run_serve)

    epilog = _scenario_epilog()
    hedge = sub.add_parser(
        "hedge", help="dry-run the hedging strategy on a scenario",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog,
        description="Dry-run the hedge (hold --spot coin, short the inverse perpetual for the "
        "same USD value) on a scenario from its first to its last row, with real ccxt over HTTP "
        "against an in-process perpsim. Prints a summary (or --json) and writes "
        "an HTML report with --report.")
    _add_run_options(hedge, scenario_default=None)
    hedge.set_defaults(run=_hedge)

    demo = sub.add_parser(
        "demo", help="the hedging demo: a 30-day hedge, a summary and an HTML report",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog,
        description="Start perpsim in-process on a free port and run the whole hedge workflow "
        f"(open, monitor, exit) with real ccxt on the bundled {DEMO_SCENARIO} scenario: shows "
        f"progress, prints a summary table and writes an HTML report (./{DEMO_REPORT}).")
    _add_run_options(demo, scenario_default=DEMO_SCENARIO)
    demo.set_defaults(run=_demo)
    from perpsim.teach.cli import add_teach_parser

    add_teach_parser(sub)
    from perpsim.replay import add_replay_parser

    add_replay_parser(sub)
    from perpsim.bench import add_bench_parser

    add_bench_parser(sub)
    from perpsim.data_cli import add_data_parser

    add_data_parser(sub)
    from perpsim.clients import add_clients_parser

    add_clients_parser(sub)
    from perpsim.sweep.cli import add_sweep_parser

    add_sweep_parser(sub)
    return parser


def ccxt_snippet(base_url: str, api_key: str = "<api_key>", secret: str = "<api_secret>") -> str:
    """A ready-to-paste ccxt configuration for a server at ``base_url``."""
    return (
        "from perpsim.strategy.connect import connect   # rewrites every ccxt URL to perpsim\n"
        f"ex = connect({base_url!r}, {api_key!r}, {secret!r})   # mode='async' or 'pro' too\n"
        "# or by hand:\n"
        "import ccxt\n"
        "ex = ccxt.binancecoinm({'apiKey': KEY, 'secret': SECRET,\n"
        f"    'urls': {{'api': {{'dapiPublic': '{base_url}/dapi/v1', "
        f"'dapiPrivate': '{base_url}/dapi/v1',\n"
        f"                    'dapiPrivateV2': '{base_url}/dapi/v2', "
        f"'dapiData': '{base_url}/futures/data',\n"
        f"                    'ws': {{'inverse': '{base_url.replace('http', 'ws', 1)}/ws'}}}}}},\n"
        "    'options': {'fetchCurrencies': False}})\n"
        "ex.exceptions['exact'] = ex.extend(ex.exceptions['exact'], "
        "ex.exceptions['inverse']['exact'])"
    )


# ---- hedge and demo ----------------------------------------------------------------------------
class BadInput(PerpsimError):
    """A bad argument combination or input file found before the run starts (exit 2)."""

    code = "bad_input"


def hedge_config(args: argparse.Namespace) -> HedgeConfig:
    """The run's HedgeConfig from the parsed options (BadInput on a bad combination)."""
    from perpsim.strategy.record import HedgeConfig

    if args.collateral is not None and args.collateral > args.spot:
        raise BadInput(f"--collateral {args.collateral} exceeds --spot {args.spot} "
                       "(the collateral is part of the coin held)")
    if (args.exit_above is not None and args.exit_below is not None
            and args.exit_below >= args.exit_above):
        raise BadInput(f"--exit-below {args.exit_below} must be under --exit-above "
                       f"{args.exit_above}")
    tuning = {name: value for name, value in (
        ("topup_below_pct", getattr(args, "topup_below", None)),
        ("topup_to_pct", getattr(args, "topup_to", None)),
        ("rebalance_drift_pct", getattr(args, "rebalance_drift", None))) if value is not None}
    return HedgeConfig(spot_btc=args.spot, hedge_ratio=args.hedge_ratio,
                       collateral_btc=args.collateral, leverage=args.leverage,
                       margin_mode=args.margin_mode, topup=args.topup,
                       funding_budget_btc=args.funding_budget, exit_above_usd=args.exit_above,
                       exit_below_usd=args.exit_below, **tuning)


def _scenario_ref(text: str) -> str:
    """A scenario name as given, or a path made absolute (the server may resolve elsewhere)."""
    path = Path(text).expanduser()
    if path.is_file():
        return str(path.resolve())
    return text


def _market(args: argparse.Namespace) -> ServerState:
    """Build the market locally first: a bad scenario or profile fails here, naming the file."""
    from perpsim.api.state import ServerConfig, ServerState

    state = ServerState(ServerConfig(profile=args.profile, scenario=args.scenario,
                                     seed=args.seed, clock="stepped",
                                     dialect=getattr(args, "dialect", None)))
    if state.exchange.scenario.end_ms is None:
        raise BadInput(f"{args.scenario}: has no price path to run (give a scenario with rows, "
                       "e.g. calm or a CSV file)")
    return state


def _check_exit_levels(config: HedgeConfig, state: ServerState) -> None:
    """--exit-above / --exit-below must lie on their side of the index at the start: a target
    already reached would close the hedge the moment it opened (BadInput)."""
    if config.exit_above_usd is None and config.exit_below_usd is None:
        return
    ex = state.exchange
    perp = next((i for i in ex.profile.instruments
                 if i.is_perpetual and i.margin_asset == config.coin), None)
    if perp is None:
        return  # the run itself reports that there is nothing to hedge with
    index = ex.index_price(perp.symbol)
    shown = f"{index:,.2f}"
    if config.exit_above_usd is not None and config.exit_above_usd <= index:
        raise BadInput(f"--exit-above {config.exit_above_usd} is not above the index at the "
                       f"start ({shown}): the hedge would exit as soon as it opened")
    if config.exit_below_usd is not None and config.exit_below_usd >= index:
        raise BadInput(f"--exit-below {config.exit_below_usd} is not below the index at the "
                       f"start ({shown}): the hedge would exit as soon as it opened")


def run_job(args: argparse.Namespace, *, report: str | None, title: str) -> int:
    """Run the hedge over real HTTP against an in-process server; print results."""
    import asyncio
    import json

    from perpsim.api.app import create_app
    from perpsim.api.security import IN_PROCESS
    from perpsim.api.server import serve_in_thread
    from perpsim.strategy.report import write_report
    from perpsim.strategy.results import to_json

    config = hedge_config(args)
    state = _market(args)
    _check_exit_levels(config, state)
    from perpsim.strategy.dryrun import dry_run  # after the checks: bad input never waits for ccxt
    from perpsim.strategy.plan import PlanError

    scenario = _scenario_ref(args.scenario)
    meta = {"scenario": args.scenario, "profile": args.profile, "seed": args.seed}
    wall0 = time.monotonic()
    try:
        with serve_in_thread(create_app(state=state, security=IN_PROCESS)) as base_url:
            job = dry_run(base_url, config, scenario=scenario, profile=args.profile,
                          seed=args.seed, progress=None if args.json else _ProgressBar.update,
                          dialect=getattr(args, "dialect", None))
            if args.json:
                record = asyncio.run(job)
            else:
                with _ProgressBar(f"hedging on {args.scenario}") as bar:
                    record = asyncio.run(job)
                    bar.finish(record)
    except PlanError as error:
        print(f"perpsim: error: the hedge cannot be planned: {_one_line(error)}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:
        print(f"perpsim: error: the run failed: {type(error).__name__}: {_one_line(error)}",
              file=sys.stderr)
        return EXIT_FAILURE
    elapsed = time.monotonic() - wall0
    written = write_report(record, report, title=title, **meta) if report else None
    if args.json:
        result = to_json(record, **meta, report=None if written is None else str(written))
        print(json.dumps(result))
    else:
        _print_summary(record, f"{title} · {args.scenario}", written, elapsed)
    if record.liquidated and getattr(args, "fail_on_liquidation", False):
        print("perpsim: the hedge was liquidated (exit 1: --fail-on-liquidation)",
              file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class _ProgressBar:
    """A rich progress bar on stderr, fed by the runner's progress(fraction, now_ms) calls."""

    current: _ProgressBar | None = None

    def __init__(self, description: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TaskProgressColumn(), TextColumn("{task.fields[sim]}"),
                                 TimeElapsedColumn(), console=Console(stderr=True))
        self.task = self.progress.add_task(description, total=1.0, sim="")

    def __enter__(self) -> _ProgressBar:
        _ProgressBar.current = self
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        _ProgressBar.current = None

    def finish(self, record: RunRecord) -> None:
        """Leave the bar at 100 % when the run reached its end, else say why it stopped."""
        from perpsim.strategy.results import stop_text

        why = stop_text(record)
        if why is None:
            self.progress.update(self.task, completed=1.0)
        else:
            self.progress.update(self.task, description=f"stopped early: {why}")

    @staticmethod
    def update(fraction: float, now_ms: int) -> None:
        """The runner's progress callback."""
        from perpsim.strategy.results import iso

        bar = _ProgressBar.current
        if bar is not None:
            bar.progress.update(bar.task, completed=fraction,
                                sim=f"sim time {iso(now_ms - now_ms % 60_000)}")


def _print_summary(record: RunRecord, title: str, report: Path | None, elapsed_s: float) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from perpsim.strategy.results import attribution_rows, summary_rows

    out = Console()
    table = Table(title=title, show_header=False, title_justify="left", box=box.SIMPLE,
                  title_style="bold")
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("")
    for label, value in summary_rows(record):
        style = "bold red" if label == "Liquidated" and record.liquidated else None
        table.add_row(label, value, style=style)
    out.print(table)
    att = Table(title="P&L attribution (coin valued at the end index)", title_justify="left",
                box=box.SIMPLE_HEAD, title_style="bold")
    att.add_column("component")
    att.add_column("BTC", justify="right")
    att.add_column("USD", justify="right")
    rows = attribution_rows(record)
    for n, row in enumerate(rows):
        att.add_row(*row, style="bold" if n == len(rows) - 1 else None)
    out.print(att)
    out.print(f"finished in {elapsed_s:.1f} s", highlight=False)
    if report is not None:
        out.print(f"report: {report}", soft_wrap=True, markup=False, highlight=False)


def _hedge(args: argparse.Namespace) -> int:
    return run_job(args, report=args.report, title="perpsim hedge")


def _demo(args: argparse.Namespace) -> int:
    return run_job(args, report=args.report or DEMO_REPORT, title="perpsim demo: hedging BTC "
                   "with an inverse perpetual")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``perpsim`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run is None:  # a bare `perpsim`: asking what it does is not an error
        parser.print_help()
        return EXIT_OK
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except PerpsimError as exc:
        print(f"perpsim: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
