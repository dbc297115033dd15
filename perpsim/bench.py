"""``perpsim bench``: the benchmark suite (benchmarks/), as a table or one JSON object.

Every figure that is compared is a ratio measured in one run (ours vs a baseline, an order vs
the stack's floor, 100 ms rows vs 1 s rows), next to the absolute numbers for information:
absolute timings depend on the machine and on what else runs on it. Nothing here is asserted
as a test; tests/test_bench_smoke.py only checks that every figure comes out.

Suites (``--only`` picks some; ``--quick`` shrinks every size for CI):
* engine — 30 and 365 days at 1 s rows with an open hedge, funding and liquidation monitoring,
  against a per-row loop; the same path at 1 s and 100 ms (benchmarks/engine_event_skipping.py);
* liquidation — 100,000 accounts through a crash (benchmarks/liquidation_scale.py);
* api — order round trips through ccxt vs the floor, orders/s with 8 clients (api_latency.py);
* ws — market-data frames per second to 100 subscribers (ws_fanout.py);
* e2e — the demo's 30-day hedge, wall time (e2e_demo.py);
* data — a year at 1 s rows opened from a Parquet store: time and peak memory over the arrays
  (data_store.py);
* sweep — sweep runs/s on 1 core, 2 processes, a 2-worker Dask LocalCluster; one hedge
  in-process vs over the wire (sweep_scaling.py);
* crowd — a funding settlement per position (batch vs per-position), the level upkeep after
  it, a crowd over days at 1 s scaled to a year, one hedge over a year (crowd_scale.py).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUITES = ("engine", "liquidation", "api", "ws", "e2e", "data", "sweep", "crowd")
ENGINE_TARGET_S = 2.0  # 365 days at 1 s rows, engine time, on a 2-core machine


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark runs."""

    engine_days: tuple[float, float, float]  # short span, long span, resolution-ratio span
    accounts: int
    api_rounds: int
    api_seconds: float
    api_clients: int
    ws_subscribers: int
    ws_seconds: float
    e2e_scenario: str
    data_days: float = 365.0
    sweep_runs: int = 4  # runs per executor, on sweep_scenario
    sweep_scenario: str = "calm"
    hedge_scenario: str = "calm"  # the in-process vs wire hedge
    crowd: tuple[int, float, float, int] = (10_000, 30.0, 365.0, 10_000)  # accounts, days,
    # hedge days, accounts in the settlement measurement


FULL = Sizes((30.0, 365.0, 30.0), 100_000, 300, 5.0, 8, 100, 5.0, "calm_30d", 365.0, 24, "calm",
             "calm_30d")
QUICK = Sizes((1.0, 3.0, 1.0), 2_000, 50, 1.0, 8, 100, 1.0, "calm", 3.0,
              crowd=(500, 2.0, 30.0, 1_000))


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to the CLI's subparsers (``run`` is set to :func:`run_bench`)."""
    bench = subparsers.add_parser(
        "bench", help="run the benchmark suite (engine, liquidation, API, WebSocket, demo)",
        description="Run the benchmark suite and print a table (or --json: one object with "
        "every figure and ratio). Ratios are measured in one run; absolute times depend on "
        "the machine. The full run takes a few minutes; --quick is CI-sized.")
    bench.add_argument("--json", action="store_true",
                       help="print one JSON object (default: a table)")
    bench.add_argument("--quick", action="store_true",
                       help="small sizes, a minute or so (CI; default: the full sizes)")
    bench.add_argument("--only", action="append", choices=SUITES, metavar="NAME",
                       help=f"run only this suite (repeatable): {', '.join(SUITES)} "
                       "(default: all)")
    bench.set_defaults(run=run_bench)
    return bench


def run_bench(args: argparse.Namespace) -> int:
    """Run the chosen suites; print the table or JSON; exit code 0 (1 if a suite failed)."""
    sizes = QUICK if args.quick else FULL
    only = tuple(args.only or SUITES)
    progress = None if args.json else _progress
    report = collect(sizes, only, progress=progress)
    report["command"] = "perpsim bench" + (" --quick" if args.quick else "") + "".join(
        f" --only {name}" for name in args.only or ())
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    return 1 if report["failed"] else 0


def collect(sizes: Sizes, only: tuple[str, ...] = SUITES, *,
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the suites named in ``only`` at ``sizes``: machine, raw results, flat figures."""
    import numpy as np

    np.seterr(all="ignore")
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "engine": lambda: _engine(sizes), "liquidation": lambda: _liquidation(sizes),
        "api": lambda: _api(sizes), "ws": lambda: _ws(sizes), "e2e": lambda: _e2e(sizes),
        "data": lambda: _data(sizes), "sweep": lambda: _sweep(sizes),
        "crowd": lambda: _crowd(sizes)}
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    started = time.perf_counter()
    for name in only:
        if progress is not None:
            progress(name)
        try:
            results[name] = runners[name]()
        except Exception as exc:  # one broken suite must not hide the others' figures
            failed[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        gc.collect()
    return {"machine": machine(), "sizes": sizes.__dict__, "results": results,
            "figures": figures(results), "failed": failed,
            "wall_s": round(time.perf_counter() - started, 1)}


def _engine(sizes: Sizes) -> dict[str, Any]:
    from perpsim.benchmarks import engine_event_skipping as bench

    short, long_, span = sizes.engine_days
    result = {"short": bench.measure(short)}
    gc.collect()
    result["long"] = bench.measure(long_)
    gc.collect()
    result["resolution"] = bench.resolution_ratio(span)
    return result


def _liquidation(sizes: Sizes) -> dict[str, Any]:
    from perpsim.benchmarks import liquidation_scale

    return liquidation_scale.run(sizes.accounts)


def _api(sizes: Sizes) -> dict[str, Any]:
    from perpsim.benchmarks import api_latency

    return api_latency.run(sizes.api_rounds, sizes.api_seconds, sizes.api_clients)


def _ws(sizes: Sizes) -> dict[str, Any]:
    from perpsim.benchmarks import ws_fanout

    return ws_fanout.run(sizes.ws_subscribers, sizes.ws_seconds)


def _e2e(sizes: Sizes) -> dict[str, Any]:
    try:
        from perpsim.strategy.dryrun import dry_run  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"perpsim.strategy.dryrun.dry_run is not importable ({exc})"}
    from perpsim.benchmarks import e2e_demo

    return e2e_demo.run(sizes.e2e_scenario)


def _data(sizes: Sizes) -> dict[str, Any]:
    from perpsim.benchmarks import data_store

    return data_store.run(sizes.data_days)


def _sweep(sizes: Sizes) -> dict[str, Any]:
    from perpsim.benchmarks import sweep_scaling

    return sweep_scaling.run(sizes.sweep_runs, sizes.sweep_scenario, sizes.hedge_scenario)


# ---- the flat figures ---------------------------------------------------------------------------
def _crowd(sizes: Sizes) -> dict[str, Any]:
    from perpsim.benchmarks import crowd_scale

    accounts, days, hedge_days, settle_accounts = sizes.crowd
    return crowd_scale.run(accounts, days, hedge_days, settle_accounts=settle_accounts)


def figures(results: Mapping[str, Any]) -> dict[str, float]:
    """Every figure and ratio by a flat name (only for the suites that ran)."""
    out: dict[str, float] = {}
    engine = results.get("engine")
    if engine:
        for span in ("short", "long"):
            r = engine[span]
            out.update({f"engine_{span}_days": r["days"], f"engine_{span}_rows": r["rows"],
                        f"engine_{span}_s": r["engine_s"],
                        f"engine_{span}_rows_per_s": r["rows_per_s"],
                        f"engine_{span}_baseline_s": r["baseline_s"],
                        f"engine_{span}_speedup": r["speedup"]})
        res = engine["resolution"]
        out.update({"engine_resolution_days": res["days"],
                    "engine_1s_s": res["engine_s_coarse"], "engine_100ms_s": res["engine_s_fine"],
                    "engine_100ms_over_1s_rows": res["rows_ratio"],
                    "engine_100ms_over_1s_time": res["time_ratio"],
                    "engine_long_target_s": ENGINE_TARGET_S})
    liq = results.get("liquidation")
    if liq:
        out.update({"liq_accounts": liq["accounts"], "liq_liquidations": liq["liquidations"],
                    "liq_per_liquidation_ms": liq["per_liquidation_ms"],
                    "liq_per_liquidation_cpu_ms": liq["per_liquidation_cpu_ms"],
                    "liq_per_row_no_crossing_us": liq["per_row_no_crossing_us"],
                    "liq_step_one_row_ms": liq["step_one_row_no_crossing_ms"],
                    "liq_visited_instant_ms": liq["visited_instant_no_crossing_ms"],
                    "liq_crash_s": liq["crash_s"], "liq_index_build_s": liq["index_build_s"]})
    api = results.get("api")
    if api:
        lat, load = api["latency"], api["sustained"]
        out.update({"api_order_p50_ms": lat["order"]["p50_ms"],
                    "api_order_p99_ms": lat["order"]["p99_ms"],
                    "api_floor_p50_ms": lat["signed_floor"]["p50_ms"],
                    "api_floor_p99_ms": lat["signed_floor"]["p99_ms"],
                    "api_public_floor_p50_ms": lat["public_floor"]["p50_ms"],
                    "api_order_over_floor_p50": lat["order_over_signed_floor_p50"],
                    "api_order_over_floor_p99": lat["order_over_signed_floor_p99"],
                    "api_orders_per_s": load["orders_per_s"],
                    "api_orders_per_s_one_client": load["orders_per_s_one_client"],
                    "api_concurrency_gain": load["concurrency_gain"]})
    ws = results.get("ws")
    if ws:
        out.update({"ws_subscribers": ws["subscribers"], "ws_frames_per_s": ws["frames_per_s"],
                    "ws_frames_per_subscriber_per_s": ws["frames_per_subscriber_per_s"],
                    "ws_delivered_share": ws["delivered_share"]})
    e2e = results.get("e2e")
    if e2e and "skipped" not in e2e:
        out.update({"e2e_wall_s": e2e["wall_s"], "e2e_simulated_days": e2e["simulated_days"],
                    "e2e_days_per_wall_s": e2e["simulated_days_per_wall_s"]})
    data = results.get("data")
    if data:
        out.update({"data_days": data["days"], "data_rows": data["rows"],
                    "data_open_s": data["store"]["seconds"],
                    "data_memory_ratio": data["store"]["memory_ratio"],
                    "data_naive_open_s": data["naive"]["seconds"],
                    "data_naive_memory_ratio": data["naive"]["memory_ratio"],
                    "data_day_window_s": data["day"]["seconds"],
                    "data_store_over_naive_time": data["store_over_naive_time"],
                    "data_whole_over_day_time": data["whole_over_day_time"]})
    sweep = results.get("sweep")
    if sweep:
        sc, tr = sweep["scaling"], sweep["transport"]
        out.update({"sweep_runs": sc["runs"], "sweep_serial_runs_per_s": sc["serial_runs_per_s"],
                    "sweep_processes_2_runs_per_s": sc["processes_2_runs_per_s"],
                    "sweep_dask_2_runs_per_s": sc["dask_2_runs_per_s"],
                    "sweep_processes_2_over_serial": sc["processes_2_over_serial"],
                    "sweep_dask_2_over_serial": sc["dask_2_over_serial"],
                    "hedge_in_process_s": tr["in_process_s"], "hedge_wire_s": tr["wire_s"],
                    "hedge_wire_over_in_process": tr["wire_over_in_process"],
                    "hedge_in_process_cpu_s": tr["in_process_cpu_s"],
                    "hedge_in_process_fresh_app_cpu_s": tr.get("in_process_fresh_app_cpu_s"),
                    "hedge_wire_cpu_s": tr["wire_cpu_s"]})
        if "hedge_profile" in sweep:
            hp = sweep["hedge_profile"]
            out.update({"hedge_requests": hp["requests"], "hedge_app_fraction": hp["app_fraction"],
                        "hedge_engine_share": hp["sampled_shares"]["engine"]})
        if "request_cost" in sweep:
            out.update({f"request_us_{name}": us for name, us
                        in sweep["request_cost"]["us_per_call"].items()})
    crowd = results.get("crowd")
    if crowd:
        st, cr, hd = crowd["settlement"], crowd["crowd"], crowd["hedge"]
        out.update({"crowd_settle_positions": st["positions"],
                    "crowd_settle_us_per_position": st["batch_us_per_position"],
                    "crowd_levels_us_per_position": st["levels_us_per_position"],
                    "crowd_settle_with_levels_us": st["settle_with_levels_us_per_position"],
                    "crowd_one_by_one_us_per_position": st["one_by_one_us_per_position"],
                    "crowd_one_by_one_with_levels_us": st[
                        "one_by_one_with_levels_us_per_position"],
                    "crowd_one_by_one_over_batch": st["one_by_one_over_batch"],
                    "crowd_accounts": cr["accounts"], "crowd_days": cr["days"],
                    "crowd_engine_s": cr["engine_s"], "crowd_year_s_scaled": cr["year_s_scaled"],
                    "crowd_settlements": cr["settlements"],
                    "crowd_hedge_days": hd["days"], "crowd_hedge_s": hd["engine_s"],
                    "crowd_hedge_year_s_scaled": hd["year_s_scaled"]})
    return out


def checks(results: Mapping[str, Any]) -> dict[str, bool]:
    """The yes/no outcomes: the engine target, agreement and conservation checks."""
    out: dict[str, bool] = {}
    if "engine" in results:
        out["engine_long_under_target"] = results["engine"]["long"]["engine_s"] < ENGINE_TARGET_S
    if "liquidation" in results:
        liq = results["liquidation"]
        out["liq_ledger_conserved"] = bool(liq["ledger_conserved"])
        out["liq_no_survivor_past_its_level"] = liq["survivors_past_their_level"] == 0
    if "data" in results:
        data = results["data"]
        out["data_memory_within_target"] = data["store"]["memory_ratio"] <= data["memory_target"]
        out["data_open_under_1_s"] = data["store"]["seconds"] < 1.0
    if "sweep" in results:
        out["sweep_executors_agree"] = bool(results["sweep"]["scaling"]["identical_rows"])
        out["hedge_in_process_equals_wire"] = bool(
            results["sweep"]["transport"]["identical_records"])
    if "crowd" in results:
        st = results["crowd"]["settlement"]
        out["crowd_batch_equals_one_by_one"] = bool(st["balances_identical"])
        out["crowd_ledger_conserved"] = bool(st["ledger_conserved"])
    out.update(goals_met(results))
    return out


def goals_met(results: Mapping[str, Any]) -> dict[str, bool]:
    """Issues 16's and 18's speed goals, met or not in this run (CPU figures; shown, never
    asserted: ``--quick`` sizes and a busy machine move them)."""
    out: dict[str, bool] = {}
    if "sweep" in results and "goals" in results["sweep"]:
        from perpsim.strategy.record import DEMO_SCENARIO

        sweep = results["sweep"]
        sc, tr, goals = sweep["scaling"], sweep["transport"], sweep["goals"]
        out["goal_two_processes_over_one"] = (sc["processes_2_over_serial"]
                                              >= goals["two_workers_over_one"])
        if tr["scenario"] == DEMO_SCENARIO:  # the goals are about the demo's 30-day hedge
            out["goal_in_process_hedge_s"] = (tr["in_process_cpu_s"]
                                              <= goals["in_process_hedge_cpu_s"])
            out["goal_wire_hedge_s"] = tr["wire_cpu_s"] <= goals["wire_hedge_cpu_s"]
    if "liquidation" in results:
        liq = results["liquidation"]
        out["goal_liquidation_ms"] = (liq["per_liquidation_cpu_ms"]
                                      <= liq["goal_per_liquidation_ms"])
    if "crowd" in results:
        crowd = results["crowd"]
        st, cr, hd, goals = (crowd[k] for k in ("settlement", "crowd", "hedge", "goals"))
        out["goal_settlement_us"] = (st["settle_with_levels_us_per_position"]
                                     <= goals["settle_us_per_position"])
        if cr["accounts"] >= 10_000:  # the goal is about 10,000 accounts
            out["goal_crowd_year_s"] = cr["year_s_scaled"] <= goals["crowd_10k_year_s"]
        out["goal_hedge_year_s"] = hd["year_s_scaled"] <= goals["hedge_year_s"]
    return out


# ---- machine and output -------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import ccxt
    import numpy as np

    return {"nproc": os.cpu_count(), "cpu": _cpu_model(), "ram_gb": _ram_gb(),
            "python": platform.python_version(), "platform": platform.platform(),
            "numpy": np.__version__, "ccxt": ccxt.__version__,
            "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _progress(name: str) -> None:
    print(f"perpsim bench: running {name} ...", file=sys.stderr, flush=True)


_LABELS = {
    "engine": "engine: event skipping", "liquidation": "liquidation at scale",
    "api": "API over ccxt (loopback)", "ws": "WebSocket fan-out", "e2e": "end to end (demo)",
    "data": "market-data store", "sweep": "sweeps",
    "crowd": "crowd scale: funding, levels, a year"}


def _print_table(report: Mapping[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    m = report["machine"]
    console.print(f"[bold]perpsim bench[/bold] · {m['nproc']} cores · {m['cpu']} · "
                  f"{m['ram_gb']} GB · Python {m['python']} · load {m['load_avg_1m']}")
    results = report["results"]
    table = Table(box=box.SIMPLE_HEAD, show_lines=False)
    table.add_column("suite")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for suite, rows in _table_rows(results).items():
        for i, (label, value) in enumerate(rows):
            table.add_row(_LABELS[suite] if i == 0 else "", label, value)
        table.add_section()
    console.print(table)
    for name, ok in checks(results).items():
        console.print(f"{'✓' if ok else '✗'} {name}")
    for name, error in report["failed"].items():
        console.print(f"[red]✗ {name} failed: {error}[/red]")
    console.print(f"reproduce: {report['command']}   (wall {report['wall_s']} s)")


def _table_rows(results: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    rows: dict[str, list[tuple[str, str]]] = {}
    if "engine" in results:
        e = results["engine"]
        found = []
        for span in ("short", "long"):
            r = e[span]
            found += [
                (f"{r['days']:g} d at 1 s: engine ({r['rows']:,} rows)", f"{r['engine_s']} s"),
                (f"{r['days']:g} d: per-row baseline / engine", f"{r['speedup']}×"
                 f"  ({r['baseline_s']} s)")]
        res = e["resolution"]
        found += [(f"{res['days']:g} d: 100 ms vs 1 s rows", f"{res['rows_ratio']}× rows"),
                  ("… engine time ratio", f"{res['time_ratio']}×  ({res['engine_s_fine']} s vs "
                   f"{res['engine_s_coarse']} s)"),
                  ("target: long span under", f"{ENGINE_TARGET_S} s")]
        rows["engine"] = found
    if "liquidation" in results:
        r = results["liquidation"]
        rows["liquidation"] = [
            ("accounts / liquidations", f"{r['accounts']:,} / {r['liquidations']:,}"),
            ("per liquidation (crash)", f"{r['per_liquidation_ms']} ms"),
            (f"… CPU (goal ≤ {r['goal_per_liquidation_ms']} ms)",
             f"{r['per_liquidation_cpu_ms']} ms"),
            ("per row, no crossing", f"{r['per_row_no_crossing_us']} µs"),
            ("one-row step, no crossing", f"{r['step_one_row_no_crossing_ms']} ms"),
            ("visited instant, no crossing", f"{r['visited_instant_no_crossing_ms']} ms"),
            ("index build (all positions)", f"{r['index_build_s']} s"),
            ("ledger conserved · survivors past level",
             f"{r['ledger_conserved']} · {r['survivors_past_their_level']}")]
    if "api" in results:
        lat, load = results["api"]["latency"], results["api"]["sustained"]
        rows["api"] = [
            ("order p50 / p99", f"{lat['order']['p50_ms']} / {lat['order']['p99_ms']} ms"),
            ("signed floor p50 / p99",
             f"{lat['signed_floor']['p50_ms']} / {lat['signed_floor']['p99_ms']} ms"),
            ("order / floor (p50, p99)",
             f"{lat['order_over_signed_floor_p50']}× · {lat['order_over_signed_floor_p99']}×"),
            ("public floor p50", f"{lat['public_floor']['p50_ms']} ms"),
            (f"orders/s, {load['clients']} clients (1 client)",
             f"{load['orders_per_s']} ({load['orders_per_s_one_client']})")]
    if "ws" in results:
        r = results["ws"]
        rows["ws"] = [(f"frames/s to {r['subscribers']} subscribers", f"{r['frames_per_s']:,}"),
                      ("per subscriber", f"{r['frames_per_subscriber_per_s']}/s"),
                      ("owed frames delivered", f"{r['delivered_share']:.1%}")]
    if "e2e" in results:
        r = results["e2e"]
        rows["e2e"] = [("skipped", r["skipped"])] if "skipped" in r else [
            (f"demo hedge, {r['simulated_days']:g} days", f"{r['wall_s']} s wall"),
            ("simulated days per wall second", f"{r['simulated_days_per_wall_s']}")]
    if "data" in results:
        r = results["data"]
        s, n, d = r["store"], r["naive"], r["day"]
        rows["data"] = [
            (f"{r['days']:g} d at 1 s: open as a scenario ({r['rows']:,} rows)",
             f"{s['seconds']} s"),
            ("peak memory / arrays used (target ≤ 1.5)", f"{s['memory_ratio']}×"),
            ("naive pyarrow.dataset read: time, memory", f"{n['seconds']} s, "
             f"{n['memory_ratio']}×"),
            ("one-day window", f"{d['seconds']} s ({r['whole_over_day_time']}× faster)"),
            ("store size on disk", f"{r['store_mb']} MB")]
    if "sweep" in results:
        sc, tr = results["sweep"]["scaling"], results["sweep"]["transport"]
        rows["sweep"] = [
            (f"{sc['runs']} runs on {sc['scenario']}: 1 core", f"{sc['serial_runs_per_s']} runs/s"),
            ("2 processes / 1 core", f"{sc['processes_2_over_serial']}×  "
             f"({sc['processes_2_runs_per_s']} runs/s)"),
            ("2-worker LocalCluster / 1 core", f"{sc['dask_2_over_serial']}×  "
             f"({sc['dask_2_runs_per_s']} runs/s)"),
            (f"hedge on {tr['scenario']}: in-process / wire",
             f"{tr['in_process_s']} s / {tr['wire_s']} s"),
            ("… CPU seconds: in-process / wire",
             f"{tr['in_process_cpu_s']} s / {tr['wire_cpu_s']} s"),
            ("… CPU seconds in-process on a new app", f"{tr.get('in_process_fresh_app_cpu_s')} s"),
            ("wire / in-process", f"{tr['wire_over_in_process']}×")]
        hp = results["sweep"].get("hedge_profile")
        if hp:
            rows["sweep"] += [
                ("… requests per hedge (control plane)",
                 f"{hp['requests']} ({hp['control_requests']})"),
                ("… in-process: inside the app / engine (sampled)",
                 f"{hp['app_fraction']:.0%} / {hp['sampled_shares']['engine']:.0%}")]
        rc = results["sweep"].get("request_cost")
        if rc:
            rows["sweep"].append(("CPU µs per in-process request", ", ".join(
                f"{name} {us}" for name, us in rc["us_per_call"].items())))
    if "crowd" in results:
        st, cr, hd = (results["crowd"][k] for k in ("settlement", "crowd", "hedge"))
        goals = results["crowd"]["goals"]
        rows["crowd"] = [
            (f"settlement of {st['positions']:,} positions: batch / per position",
             f"{st['batch_us_per_position']} µs / {st['one_by_one_us_per_position']} µs "
             f"({st['one_by_one_over_batch']}×)"),
            ("… level upkeep after it, per position", f"{st['levels_us_per_position']} µs"),
            (f"… batch + levels (goal ≤ {goals['settle_us_per_position']} µs)",
             f"{st['settle_with_levels_us_per_position']} µs"),
            (f"{cr['accounts']:,} accounts × {cr['days']:g} d at 1 s "
             f"({cr['settlements']} settlements)", f"{cr['engine_s']} s"),
            (f"… scaled to 365 d (goal ≤ {goals['crowd_10k_year_s']} s at 10,000)",
             f"{cr['year_s_scaled']} s"),
            (f"one hedge, {hd['days']:g} d at 1 s (goal ≤ {goals['hedge_year_s']} s a year)",
             f"{hd['engine_s']} s (year: {hd['year_s_scaled']} s)")]
    return rows
