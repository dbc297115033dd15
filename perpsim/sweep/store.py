"""The results of a sweep: one Parquet file, one row per run, keyed by the run's content hash.

Rows are written sorted by ``run_hash`` with a fixed schema, so the same runs give the same
file byte for byte whichever executor ran them and in whatever order they finished. The file is
rewritten (to a temporary name, then renamed) at checkpoints, so an interrupted sweep keeps
every finished run and the next invocation skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from perpsim.sweep.run import OUTCOME_FLOATS, PARAMETERS, row_columns

_INT_COLUMNS = ("seed", "contracts", "samples")


class ResultsError(RuntimeError):
    """A results file that is not one of ours (or not readable)."""


def schema() -> Any:
    """The Parquet schema of a results row."""
    import pyarrow as pa

    types: dict[str, Any] = {}
    for name in row_columns():
        if name in _INT_COLUMNS:
            types[name] = pa.int64()
        elif name in OUTCOME_FLOATS:
            types[name] = pa.float64()
        elif name in ("liquidated", "retry"):
            types[name] = pa.bool_()
        elif name in PARAMETERS:
            kind = PARAMETERS[name].kind
            types[name] = {int: pa.int64(), bool: pa.bool_(), str: pa.string()}.get(
                kind, pa.float64())
        else:
            types[name] = pa.string()
    return pa.schema([pa.field(name, kind) for name, kind in types.items()])


def read_rows(path: str | Path) -> dict[str, dict[str, Any]]:
    """The rows already in ``path`` by run hash ({} if the file does not exist)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = Path(path)
    if not target.exists():
        return {}
    try:
        table = pq.read_table(target)
    except (OSError, pa.ArrowException) as error:
        raise ResultsError(f"{target}: not a readable Parquet file ({error})") from None
    missing = [name for name in schema().names if name not in table.column_names]
    if missing:
        raise ResultsError(f"{target}: not a perpsim sweep results file (no column "
                           f"{missing[0]!r}); choose another --output")
    return {row["run_hash"]: row for row in table.select(schema().names).to_pylist()}


def write_rows(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write every row (sorted by run hash) to ``path`` atomically; the path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows, key=lambda row: str(row["run_hash"]))
    table = pa.Table.from_pylist([dict(row) for row in ordered], schema=schema())
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    pq.write_table(table, partial, compression="zstd")
    partial.replace(target)
    return target
