"""Benchmark: opening a long market-data store as a scenario (sim/data_store.py).

Run: ``python -m perpsim.benchmarks.data_store [--days 365] [--json]``

A store of ``days`` at 1 s rows (times, index, perp; a funding rate every 8 hours; one Parquet
file per day) is written to a temporary directory. Then, each in a fresh Python process so the
peak resident memory belongs to that read alone:

* ``store`` — ``load_scenario(store)``: the whole span read through the windowed reader into the
  arrays the engine uses, and the PricePath checks;
* ``naive`` — the obvious alternative: ``pyarrow.dataset`` over the directory, ``to_table``,
  then each column to numpy (a whole-table copy per column);
* ``day`` — a one-day window in the middle of the store (only its files are read).

Reported: seconds, rows, the bytes of the arrays the scenario holds, and peak resident memory
above the process's baseline divided by those bytes (the target is at most 1.5). Absolute times
depend on the machine; the ratios store/naive and year/day are what compares.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from perpsim.benchmarks import sig

DAY_MS = 86_400_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MEMORY_TARGET = 1.5

_PROBE = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np, pyarrow, pyarrow.dataset
    import pyarrow.parquet, perpsim.sim.scenario_store  # imported before the baseline
    from perpsim.sim.scenario import load_scenario
    def status_kb(field):  # VmHWM starts afresh at exec; ru_maxrss would keep the parent's
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mode, ref = sys.argv[1], sys.argv[2]
    base_kb = status_kb("VmRSS")
    t0 = time.perf_counter()
    if mode == "naive":
        from pathlib import Path
        days = sorted(str(p) for p in Path(ref, "BTCUSD").glob("2*.parquet"))
        table = pyarrow.dataset.dataset(days, format="parquet").to_table()
        arrays = [table.column(n).to_numpy() for n in ("time_ms", "index", "perp")]
        rows = len(arrays[0])
        nbytes = sum(a.nbytes for a in arrays)
    else:
        path = load_scenario(ref).path("BTCUSD")
        arrays = [path.times_ms, path.index, path.perp, path.funding_times_ms, path.funding_rates]
        rows = len(path)
        nbytes = sum(a.nbytes for a in arrays)
    seconds = time.perf_counter() - t0
    peak_kb = status_kb("VmHWM")
    t1 = time.perf_counter()
    copies = [np.array(a, copy=True) for a in arrays]  # the floor: fresh arrays, one copy
    floor = time.perf_counter() - t1
    print(json.dumps({"seconds": seconds, "rows": rows, "array_bytes": nbytes,
                      "peak_over_base_bytes": (peak_kb - base_kb) * 1024,
                      "copy_floor_s": floor}))
""")


def write_year(directory: Path, days: float, seed: int = 0) -> dict[str, Any]:
    """Write a store of ``days`` at 1 s rows; its size and the time it took."""
    from perpsim.sim.data_store import Series, write_store

    rng = np.random.default_rng(seed)
    n = int(days * DAY_MS // 1000)
    times = np.arange(n, dtype=np.int64)
    times *= 1000
    times += T0
    index = rng.normal(0.0, 2e-5, n)  # in place from here on: the parent stays small
    np.cumsum(index, out=index)
    np.exp(index, out=index)
    index *= 40_000.0
    perp = rng.normal(1e-4, 2e-4, n)
    perp += 1.0
    perp *= index
    f_times = np.arange(T0 + 8 * 3_600_000, int(times[-1]) + 1, 8 * 3_600_000, dtype=np.int64)
    f_rates = rng.normal(1e-4, 5e-5, len(f_times))
    started = time.perf_counter()
    write_store(directory, "bench", f"{days:g} days at 1 s", {"BTCUSD": Series(
        times, index, perp, f_times, f_rates)})
    del times, index, perp
    written_s = time.perf_counter() - started
    size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    return {"rows": n, "write_s": sig(written_s), "store_mb": sig(size / 1e6, 3)}


def _probe(mode: str, ref: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode, ref], capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} probe failed: {done.stderr.strip()[-500:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["memory_ratio"] = sig(out["peak_over_base_bytes"] / out["array_bytes"])
    out["over_copy_floor"] = sig(out["seconds"] / out["copy_floor_s"], 3)
    out["seconds"] = sig(out["seconds"])
    out["copy_floor_s"] = sig(out["copy_floor_s"])
    return out


def run(days: float) -> dict[str, Any]:
    """Write the store, then time and measure the three reads."""
    with tempfile.TemporaryDirectory(prefix="perpsim-bench-store-") as tmp:
        store = Path(tmp) / "bench"
        written = write_year(store, days)
        whole = _probe("store", str(store))
        naive = _probe("naive", str(store))
        middle = T0 + int(days * DAY_MS) // 2 // DAY_MS * DAY_MS
        day = _probe("store", f"{store}@{middle}..{middle + DAY_MS - 1000}")
    return {"days": days, **written, "store": whole, "naive": naive, "day": day,
            "store_over_naive_time": sig(whole["seconds"] / naive["seconds"], 3),
            "whole_over_day_time": sig(whole["seconds"] / day["seconds"], 3),
            "memory_target": MEMORY_TARGET}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.days)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
