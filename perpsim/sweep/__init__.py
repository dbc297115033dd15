"""``perpsim sweep``: thousands of dry-run hedges from one spec (see perpsim/sweep/cli.py).

spec (the TOML/YAML spec and its expansion) → run (one run: a pure function of its config) →
executors (this process, local processes, Dask) → store (one Parquet file, resumable) →
report (one offline HTML page).
"""
