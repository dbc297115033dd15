"""Where a sweep's runs execute: this process, local worker processes, or a Dask cluster.

Every executor calls the same top-level :func:`perpsim.sweep.run.run_row` on the same
:class:`~perpsim.sweep.run.RunSpec` values and hands each row back as it finishes; a run is a
pure function of its spec, so the order of completion, a retried task or a lost worker cannot
change a row. Local processes are started with ``spawn`` (no state inherited from the parent);
Dask tasks are keyed by the run's content hash.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from perpsim.sweep.run import RunSpec, run_hash, run_row

OnRow = Callable[[dict[str, Any]], None]
DASK_RETRIES = 2  # a task whose worker died is run again (same spec, same row)


@dataclass(frozen=True)
class Executor:
    """How to run: ``processes`` local workers (1: in this process), or Dask (``scheduler``
    address, or a LocalCluster of ``dask_workers``)."""

    processes: int = 0  # 0: one per core
    scheduler: str | None = None
    dask_workers: int = 0
    over_wire: bool = False

    @property
    def uses_dask(self) -> bool:
        """Whether the runs go to Dask."""
        return self.scheduler is not None or self.dask_workers > 0

    def describe(self) -> str:
        """A few words for the progress line."""
        if self.scheduler is not None:
            return f"Dask scheduler {self.scheduler}"
        if self.dask_workers:
            return f"Dask LocalCluster, {self.dask_workers} workers"
        count = self.processes or os.cpu_count() or 1
        return "this process" if count == 1 else f"{count} local processes"

    def run(self, runs: Sequence[RunSpec], on_row: OnRow) -> None:
        """Run every spec; ``on_row`` gets each row as it finishes (in this process)."""
        if not runs:
            return
        if self.uses_dask:
            run_on_dask(runs, on_row, scheduler=self.scheduler, workers=self.dask_workers,
                        over_wire=self.over_wire)
            return
        count = min(self.processes or os.cpu_count() or 1, len(runs))
        if count <= 1:
            for run in runs:
                on_row(run_row(run, self.over_wire))
            return
        run_on_processes(runs, on_row, count, over_wire=self.over_wire)


def process_pool(processes: int) -> ProcessPoolExecutor:
    """A pool of ``processes`` spawned workers (nothing inherited from this process)."""
    return ProcessPoolExecutor(max_workers=processes,
                               mp_context=multiprocessing.get_context("spawn"))


def run_on_processes(runs: Sequence[RunSpec], on_row: OnRow, processes: int, *,
                     over_wire: bool = False, pool: ProcessPoolExecutor | None = None) -> None:
    """``processes`` spawned local workers (or the ``pool`` given, left open)."""
    own = pool is None
    active = process_pool(processes) if pool is None else pool
    futures = [active.submit(run_row, run, over_wire) for run in runs]
    try:
        for future in as_completed(futures):
            on_row(future.result())
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    finally:
        if own:
            active.shutdown(wait=True, cancel_futures=True)


def local_cluster(workers: int) -> Any:
    """A Dask LocalCluster of ``workers`` single-threaded processes on 127.0.0.1."""
    from distributed import LocalCluster

    # No dashboard; the scheduler still serves its HTTP routes (/metrics, /health), by default
    # on port 8787 — taken when another Dask runs here, and the fallback then leaks a socket.
    # Any free loopback port instead.
    return LocalCluster(n_workers=workers, processes=True, threads_per_worker=1,
                        dashboard_address=None, host="127.0.0.1",
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


def run_on_dask(runs: Sequence[RunSpec], on_row: OnRow, *, scheduler: str | None = None,
                workers: int = 0, over_wire: bool = False) -> None:
    """A Dask cluster: the scheduler at ``scheduler``, or a LocalCluster of ``workers``."""
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise RuntimeError("Dask is not installed: pip install 'perpsim[sweep]' (or run on "
                           "local processes: --workers N)") from None
    cluster = None if scheduler is not None else local_cluster(workers)
    try:
        with Client(scheduler if scheduler is not None else cluster) as client:
            keys = [f"perpsim-run-{run_hash(run)}" for run in runs]
            futures = client.map(run_row, runs, over_wire=over_wire, key=keys,
                                 retries=DASK_RETRIES)
            for future in dask_completed(futures):
                on_row(future.result())
                future.release()
    finally:
        if cluster is not None:
            cluster.close()
