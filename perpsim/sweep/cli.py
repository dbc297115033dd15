"""``perpsim sweep``: many dry-run hedges from one spec, into one Parquet file and a report.

    perpsim sweep examples/sweep.toml                       # all local cores
    perpsim sweep examples/sweep.toml --dask-workers 4      # a Dask LocalCluster
    perpsim sweep examples/sweep.toml --scheduler tcp://host:8786
    perpsim sweep --scenario crash --grid leverage=1,2,5 --seeds 0-9 --report
    perpsim sweep examples/sweep.toml --report-only         # the page from the results so far

Runs already in the results file (same content hash) are skipped, so an interrupted sweep
resumes where it stopped, and a grown spec runs only what is new.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perpsim.sweep.executors import Executor
from perpsim.sweep.run import RunSpec, run_hash
from perpsim.sweep.spec import SpecError, SweepSpec, describe, expand, load_spec
from perpsim.sweep.store import ResultsError, read_rows, write_rows

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
CHECKPOINT_S = 10.0  # rewrite the results file at most this often while running


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"must look like NAME=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _seeds(text: str) -> list[int]:
    """``0-9`` or ``0,3,7``."""
    try:
        if "-" in text and "," not in text:
            low, high = (int(part) for part in text.split("-", 1))
            if high < low or low < 0:
                raise ValueError
            return list(range(low, high + 1))
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be A-B or a comma list of seeds, got {text!r}"
                                         ) from None
    return seeds


def _literal(text: str) -> Any:
    """A flag's value as TOML reads it (1 → int, 0.5 → float, true → bool), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sweep`` to the CLI's subparsers."""
    sweep = subparsers.add_parser(
        "sweep", help="run many dry-run hedges (a grid or random sample × scenarios × seeds)",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__,
        epilog="Spec format: see examples/sweep.toml. Flags override the spec's values.")
    sweep.add_argument("spec", nargs="?", default=None,
                       help="TOML (or YAML) sweep spec; optional when flags say everything "
                            "(default: none, the flags alone)")
    sweep.add_argument("--output", default=None, metavar="FILE.parquet",
                       help="results file (default: the spec's [sweep] output)")
    sweep.add_argument("--scenario", action="append", default=None, metavar="S",
                       help="bundled scenario or CSV/JSON file (repeatable; default: the spec's)")
    sweep.add_argument("--seeds", type=_seeds, default=None, metavar="A-B",
                       help="generator seeds, e.g. 0-9 or 0,3,7 (default: the spec's, else 0)")
    sweep.add_argument("--profile", action="append", default=None, metavar="P",
                       help="bundled profile (repeatable; default: the spec's)")
    sweep.add_argument("--grid", action="append", type=_assignment, default=[],
                       metavar="NAME=V1,V2",
                       help="a parameter axis, e.g. leverage=1,2,5 (default: the spec's axes)")
    sweep.add_argument("--set", action="append", type=_assignment, default=[],
                       metavar="NAME=V",
                       help="a parameter fixed for every run (default: the spec's [hedge])")
    sweep.add_argument("--random", type=_count, default=None, metavar="N",
                       help="draw N parameter sets from the axes instead of the full grid "
                            "(default: the full grid)")
    sweep.add_argument("--sample-seed", type=int, default=None, metavar="N",
                       help="seed of the random draws (default: the spec's, else 0)")
    workers = sweep.add_mutually_exclusive_group()
    workers.add_argument("--workers", type=_count, default=None, metavar="N",
                         help="local worker processes (default: one per core; 1: serial)")
    workers.add_argument("--dask-workers", type=_count, default=None, metavar="N",
                         help="run on a Dask LocalCluster of N worker processes (default: no Dask)")
    workers.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="run on the Dask cluster at ADDRESS (tcp://host:8786; default: none)")
    sweep.add_argument("--over-wire", action="store_true",
                       help="each run through loopback HTTP (uvicorn) instead of in-process "
                            "(slower; the same results; default: in-process)")
    sweep.add_argument("--report", nargs="?", const="", default=None, metavar="FILE",
                       help="write the HTML summary (default: the results file's name .html)")
    sweep.add_argument("--report-only", action="store_true",
                       help="do not run: write the report from the results file "
                            "(default: run)")
    sweep.add_argument("--x", default=None,
                       help="the heatmaps' x parameter (default: the first varied one)")
    sweep.add_argument("--y", default=None,
                       help="the heatmaps' y parameter (default: the second varied one, or seed)")
    sweep.add_argument("--list", action="store_true",
                       help="print the runs' `perpsim hedge` commands and exit "
                            "(default: run them)")
    sweep.add_argument("--quiet", action="store_true",
                       help="no progress bar (default: a progress bar)")
    sweep.set_defaults(run=run_sweep_command)
    return sweep


def overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The flags as spec sections (they replace the spec's keys)."""
    out: dict[str, dict[str, Any]] = {"sweep": {}, "hedge": {}, "scenarios": {}, "report": {}}
    if args.scenario:
        names, files = [], []
        for text in args.scenario:
            path = Path(text).expanduser()
            if path.is_file() or text.endswith((".csv", ".json")):
                files.append(str(path.resolve()))
            else:
                names.append(text)
        out["scenarios"].update({"names": names, "files": files})
    if args.seeds is not None:
        out["scenarios"]["seeds"] = args.seeds
    if args.profile:
        out["sweep"]["profiles"] = list(args.profile)
    if args.output:
        out["sweep"]["output"] = args.output
    axes = {key: [_literal(v.strip()) for v in value.split(",")] for key, value in args.grid}
    if axes:
        out["grid"] = axes
    if args.random is not None:  # draw from the axes (the spec's and the flags')
        out["sweep"].update({"sample": "random", "runs": args.random})
    if args.sample_seed is not None:
        out["sweep"]["seed"] = args.sample_seed
    out["hedge"].update({key: _literal(value) for key, value in args.set})
    if args.x:
        out["report"]["x"] = args.x
    if args.y:
        out["report"]["y"] = args.y
    return {section: values for section, values in out.items() if values}


@dataclass
class Outcome:
    """What a sweep did."""

    output: Path
    total: int
    skipped: int
    ran: int
    failed: int
    wall_s: float


def unique_runs(runs: Sequence[RunSpec]) -> list[RunSpec]:
    """Each content hash once (a random draw may repeat a grid point), first come first."""
    seen: set[str] = set()
    out = []
    for run in runs:
        key = run_hash(run)
        if key not in seen:
            seen.add(key)
            out.append(run)
    return out


def run_sweep(spec: SweepSpec, executor: Executor, output: str | Path, *,
              progress: bool = True) -> Outcome:
    """Run every run of ``spec`` not already in ``output``; the file then holds them all."""
    runs = unique_runs(expand(spec))
    rows = read_rows(output)
    # Runs already there are skipped, unless the machine failed them (see run.environmental).
    pending = [run for run in runs
               if run_hash(run) not in rows or rows[run_hash(run)].get("retry")]
    started = time.monotonic()
    last_write = started
    failed = 0
    bar = _Bar(len(runs), len(runs) - len(pending), executor.describe()) if progress else None

    def on_row(row: dict[str, Any]) -> None:
        nonlocal last_write, failed
        rows[str(row["run_hash"])] = row
        failed += bool(row["error"])
        if bar is not None:
            bar.advance(bool(row["liquidated"]), bool(row["error"]))
        if time.monotonic() - last_write >= CHECKPOINT_S:
            write_rows(output, rows.values())
            last_write = time.monotonic()

    try:
        if bar is not None:
            with bar:
                executor.run(pending, on_row)
        else:
            executor.run(pending, on_row)
    finally:
        path = write_rows(output, rows.values())
    return Outcome(path, len(runs), len(runs) - len(pending), len(pending), failed,
                   time.monotonic() - started)


class _Bar:
    """A rich progress bar with ETA on stderr."""

    def __init__(self, total: int, done: int, where: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]sweep[/bold]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[liquidated]} liquidated · {task.fields[failed]} failed"),
            TextColumn("·"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn(f"· {where}"), console=Console(stderr=True))
        self.task = self.progress.add_task("sweep", total=total, completed=done, liquidated=0,
                                           failed=0)
        self.liquidated = self.failed = 0

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def advance(self, liquidated: bool, failed: bool) -> None:
        self.liquidated += liquidated
        self.failed += failed
        self.progress.update(self.task, advance=1, liquidated=self.liquidated,
                             failed=self.failed)


def _executor(args: argparse.Namespace) -> Executor:
    return Executor(processes=args.workers or 0, scheduler=args.scheduler,
                    dask_workers=args.dask_workers or 0, over_wire=args.over_wire)


def _report_path(args: argparse.Namespace, output: Path) -> Path:
    return Path(args.report) if args.report else output.with_suffix(".html")


def run_sweep_command(args: argparse.Namespace) -> int:
    """``perpsim sweep``."""
    from perpsim.sweep.report import write_report
    from perpsim.sweep.run import hedge_command

    try:
        spec = load_spec(args.spec, overrides(args))
    except SpecError as error:
        print(f"perpsim: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    output = Path(spec.output)
    if args.list:
        try:
            for run in unique_runs(expand(spec)):
                try:
                    print(hedge_command(run))
                except ValueError as error:
                    print(f"# {run_hash(run)}: {error}")
        except BrokenPipeError:  # `| head`: the reader has all it wanted
            sys.stderr.close()
        return EXIT_OK
    try:
        if args.report_only:
            rows = read_rows(output)
            if not rows:
                print(f"perpsim: error: {output}: no results yet (run the sweep first)",
                      file=sys.stderr)
                return EXIT_BAD_INPUT
        else:
            print(describe(spec, expand(spec)), file=sys.stderr)
            outcome = run_sweep(spec, _executor(args), output, progress=not args.quiet)
            print(f"{outcome.output}: {outcome.total:,} runs ({outcome.skipped:,} already there, "
                  f"{outcome.ran:,} run in {outcome.wall_s:.1f} s, {outcome.failed:,} could not "
                  "run)")
            rows = read_rows(output)
    except ResultsError as error:
        print(f"perpsim: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"interrupted: the finished runs are in {output}; run again to resume",
              file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:  # an executor or cluster failure: the finished runs are kept
        print(f"perpsim: error: the sweep failed: {type(error).__name__}: "
              f"{' '.join(str(error).split())} (the finished runs are in {output}; run again "
              "to resume)", file=sys.stderr)
        return EXIT_FAILURE
    if args.report is not None or args.report_only:
        wanted = {run_hash(run) for run in expand(spec)}
        mine = [row for key, row in rows.items() if key in wanted] or list(rows.values())
        page = write_report(_report_path(args, output), mine, x=spec.report_x,
                            y=spec.report_y, title=f"perpsim sweep: {spec.name}",
                            varied=spec.varied)
        print(f"report: {page}")
    return EXIT_OK
