"""One run of a sweep: a pure function from its config to one results row.

A :class:`RunSpec` is everything a run depends on — the scenario (a bundled name, or a file's
*content*), the generator seed, the profile, the hedge parameters — and its content hash
(:func:`run_hash`) names it: the results file is keyed by it (resume), Dask keys tasks by it
(a retried or duplicated task gives the same row). :func:`run_row` is exactly what
``perpsim hedge`` runs (``strategy.dryrun.dry_run`` on a stepped market built from the same
scenario, profile and seed), in-process by default or over loopback HTTP (``over_wire``).

Everything here is importable by a fresh worker process (top-level functions, picklable
dataclasses): ``concurrent.futures`` with ``spawn`` and Dask both call :func:`run_row`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import shlex
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROW_FORMAT = 1  # bump when a row's meaning changes: old rows then no longer match by hash
SATOSHI = Decimal("0.00000001")


# ---- parameters ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """A hedge parameter a sweep can fix or vary: its type and bounds."""

    kind: type
    low: Decimal | None = None  # bounds (inclusive unless open_low)
    high: Decimal | None = None
    open_low: bool = False
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> str | None:
        """The problem with ``value`` (None if fine)."""
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return f"must be {'over' if self.open_low else 'at least'} {self.low}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high}"
        return None


_D = Decimal
PARAMETERS: dict[str, Param] = {
    "spot_btc": Param(Decimal, _D(0), open_low=True),
    "hedge_ratio": Param(Decimal, _D(0), _D(2), open_low=True),
    # The share of the coin deposited as futures margin (the rest stays spot, for top-ups).
    "collateral_fraction": Param(Decimal, _D(0), _D(1), open_low=True),
    "leverage": Param(int, _D(1), _D(125)),
    "margin_mode": Param(str, choices=("isolated", "cross")),
    "topup": Param(bool),
    "topup_below_pct": Param(Decimal, _D(0), _D(100), open_low=True),
    "topup_to_pct": Param(Decimal, _D(0), _D(100), open_low=True),
    "rebalance_drift_pct": Param(Decimal, _D(0), open_low=True),
    "funding_budget_btc": Param(Decimal, _D(0)),
    "exit_above_usd": Param(Decimal, _D(0), open_low=True),
    "exit_below_usd": Param(Decimal, _D(0), open_low=True),
}


# ---- inputs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioRef:
    """A bundled scenario (``name``) or a file carried by content (so a worker on another
    machine runs exactly it, and an edited file is a different run)."""

    name: str | None = None
    file_name: str | None = None
    content: bytes | None = None

    @classmethod
    def from_file(cls, path: Path) -> ScenarioRef:
        """A scenario file, read now."""
        return cls(file_name=path.name, content=path.read_bytes())

    @property
    def label(self) -> str:
        """How the results name it."""
        return self.name or str(self.file_name)

    @property
    def sha256(self) -> str:
        """The file content's hash ("" for a bundled name)."""
        return "" if self.content is None else hashlib.sha256(self.content).hexdigest()

    def materialise(self) -> str:
        """What ``perpsim hedge --scenario`` takes: the name, or a local copy of the file."""
        if self.content is None:
            return str(self.name)
        folder = Path(tempfile.gettempdir()) / "perpsim-sweep-inputs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.sha256[:20]}-{self.file_name}"
        if not path.is_file() or path.read_bytes() != self.content:
            partial = path.with_name(path.name + f".{id(self)}.part")
            partial.write_bytes(self.content)
            partial.replace(path)
        return str(path)


@dataclass(frozen=True)
class RunSpec:
    """Everything one run depends on."""

    scenario: ScenarioRef
    seed: int
    profile: str
    params: tuple[tuple[str, Any], ...]  # sorted (name, value)

    @property
    def param_map(self) -> dict[str, Any]:
        """The parameters as a dict."""
        return dict(self.params)


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"decimal": format(value.normalize(), "f")}
    return value


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def profile_sha256(profile: str) -> str:
    """A profile file's content hash ("" for a bundled profile name)."""
    path = Path(profile)
    if not profile.endswith(".json") or not path.is_file():
        return ""
    stat = path.stat()
    return _file_sha256(str(path), stat.st_mtime_ns, stat.st_size)


def run_hash(run: RunSpec) -> str:
    """The content hash that names a run (same config → same hash, on any machine; an edited
    scenario or profile file is another run)."""
    doc = {"format": ROW_FORMAT, "scenario": run.scenario.name,
           "scenario_file": run.scenario.file_name, "scenario_sha256": run.scenario.sha256,
           "seed": run.seed, "profile": run.profile,
           "profile_sha256": profile_sha256(run.profile),
           "params": [[k, _canonical(v)] for k, v in run.params]}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def hedge_config(run: RunSpec) -> Any:
    """The run's ``HedgeConfig`` (ValueError on a combination no hedge accepts)."""
    from perpsim.strategy.record import HedgeConfig

    params = run.param_map
    fraction = params.pop("collateral_fraction", None)
    spot = params.get("spot_btc", HedgeConfig.spot_btc)
    if fraction is not None and fraction < 1:
        params["collateral_btc"] = _as_typed((spot * fraction).quantize(SATOSHI))
    low, high = params.get("exit_below_usd"), params.get("exit_above_usd")
    if low is not None and high is not None and low >= high:
        raise ValueError(f"exit_below_usd {low} must be under exit_above_usd {high}")
    return HedgeConfig(**params)


def _as_typed(value: Decimal) -> Decimal:
    """``value`` as `perpsim hedge` would parse it back from the command line (the same digits,
    hence the same ``repr`` in the run's client-order-id tag)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Decimal(text)


_FLAGS = (("spot_btc", "--spot"), ("hedge_ratio", "--hedge-ratio"),
          ("leverage", "--leverage"), ("margin_mode", "--margin-mode"),
          ("funding_budget_btc", "--funding-budget"), ("exit_above_usd", "--exit-above"),
          ("exit_below_usd", "--exit-below"), ("topup_below_pct", "--topup-below"),
          ("topup_to_pct", "--topup-to"), ("rebalance_drift_pct", "--rebalance-drift"))


def hedge_command(run: RunSpec) -> str:
    """The ``perpsim hedge`` command line that runs exactly this run on its own: every
    parameter the run sets is spelled out (as written: 1.0 stays 1.0)."""
    config = hedge_config(run)
    params = run.param_map
    scenario = run.scenario.name if run.scenario.content is None else run.scenario.file_name
    words = ["perpsim", "hedge", "--scenario", str(scenario), "--profile", run.profile,
             "--seed", str(run.seed), "--spot", format(config.spot_btc, "f")]
    if config.collateral_btc is not None:
        words += ["--collateral", format(config.collateral_btc, "f")]
    for name, flag in _FLAGS[1:]:
        if name in params:
            value = params[name]
            words += [flag, format(value, "f") if isinstance(value, Decimal) else str(value)]
    if not config.topup:
        words.append("--no-topup")
    return shlex.join(words)


# ---- one run ------------------------------------------------------------------------------------
PARAM_COLUMNS = tuple(PARAMETERS)
OUTCOME_FLOATS = ("min_liquidation_distance_pct", "max_drawdown_hedged_pct",
                  "max_drawdown_unhedged_pct", "variance_reduction", "start_value_usd",
                  "end_value_usd_hedged", "end_value_usd_unhedged", "hedged_pnl_usd",
                  "unhedged_pnl_usd", "funding_btc", "funding_usd", "fees_btc", "fees_usd",
                  "basis_btc", "basis_usd", "futures_pnl_btc", "topups_btc", "other_btc",
                  "mean_basis_pct", "max_abs_basis_pct")


def _float(value: Any) -> float:
    return math.nan if value is None else float(Decimal(str(value)))


def _param_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value


def outcome(record: Any) -> dict[str, Any]:
    """The outcome columns of a finished run (from ``strategy.results.to_json``)."""
    from perpsim.strategy.results import to_json

    result = to_json(record)
    # `perpsim hedge --json` prints this object (plus scenario, profile, seed, report).
    digest = hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()
    row: dict[str, Any] = {"liquidated": bool(result["liquidated"]),
                           "exit_reason": str(result["exit_reason"]),
                           "contracts": int(result["contracts"])}
    start, hedged = result["start_value_usd"], result["end_value_usd_hedged"]
    unhedged = result["end_value_usd_unhedged"]
    result["hedged_pnl_usd"] = None if hedged is None else Decimal(hedged) - Decimal(start)
    result["unhedged_pnl_usd"] = None if unhedged is None else Decimal(unhedged) - Decimal(start)
    basis = [(s.mark_usd - s.index_usd) / s.index_usd * 100 for s in record.samples]
    result["mean_basis_pct"] = sum(basis, Decimal(0)) / len(basis) if basis else None
    result["max_abs_basis_pct"] = max((abs(b) for b in basis), default=None)
    for key in OUTCOME_FLOATS:
        row[key] = _float(result.get(key))
    row["samples"] = len(record.samples)
    row["record_digest"] = digest
    return row


def empty_outcome() -> dict[str, Any]:
    """The outcome columns of a run that could not start (its ``error`` says why)."""
    row: dict[str, Any] = {"liquidated": False, "exit_reason": "", "contracts": 0}
    row.update({key: math.nan for key in OUTCOME_FLOATS})
    row.update({"samples": 0, "record_digest": ""})
    return row


def config_columns(run: RunSpec) -> dict[str, Any]:
    """The config columns: every sweep parameter (None where the hedge default applies)."""
    params = run.param_map
    row: dict[str, Any] = {"run_hash": run_hash(run), "scenario": run.scenario.label,
                           "scenario_sha256": run.scenario.sha256, "seed": run.seed,
                           "profile": run.profile}
    for name in PARAM_COLUMNS:
        row[name] = _param_value(params.get(name))
    return row


def execute(run: RunSpec, *, over_wire: bool = False,
            on_market: Callable[[Any], None] | None = None) -> Any:
    """Run the hedge for ``run``; the RunRecord. ``on_market`` sees the market (the
    ServerState) after the run, e.g. for its journal digest."""
    from perpsim.api.app import create_app
    from perpsim.api.security import IN_PROCESS
    from perpsim.api.state import ServerConfig, ServerState
    from perpsim.strategy.dryrun import dry_run

    config = hedge_config(run)
    scenario = run.scenario.materialise()
    # The market is built first, as `perpsim hedge` does (a bad file fails here, named), then
    # reset by the dry run itself.
    state = ServerState(ServerConfig(profile=run.profile, scenario=scenario, seed=run.seed,
                                     clock="stepped"))
    # The market is this program's own (as for `perpsim hedge`): its scenario file may be
    # anywhere, e.g. the copy a worker made of a file sent by content.
    if over_wire:
        from perpsim.api.server import serve_in_thread

        with serve_in_thread(create_app(state=state, security=IN_PROCESS)) as base_url:
            record = asyncio.run(dry_run(base_url, config, scenario=scenario,
                                         profile=run.profile, seed=run.seed))
    else:
        from perpsim.inprocess import HOST, in_process_transport

        # The worker's app, serving this run's market (built per route once per worker).
        with HOST.app(state, IN_PROCESS) as app:
            record = asyncio.run(dry_run(in_process_transport(app), config,
                                         scenario=scenario, profile=run.profile,
                                         seed=run.seed))
    if on_market is not None:
        on_market(state)
    return record


def run_row(run: RunSpec, over_wire: bool = False) -> dict[str, Any]:
    """One results row: config columns, outcome columns, the engine's journal digest and the
    error (empty when the run finished). Never raises for a run that fails: a plan the venue
    refuses is an outcome of the sweep, not a crash of it."""
    row = config_columns(run)
    row["hedge_command"] = ""
    row["config_json"] = ""
    journal: list[str] = []
    try:
        row["hedge_command"] = hedge_command(run)
        row["config_json"] = json.dumps(asdict(hedge_config(run)), sort_keys=True, default=str)
        record = execute(run, over_wire=over_wire,
                         on_market=lambda state: journal.append(state.exchange.journal.digest()))
    except Exception as error:  # the row records why; the sweep goes on
        row.update(empty_outcome())
        row["journal_digest"] = ""
        row["error"] = f"{type(error).__name__}: {' '.join(str(error).split())}"
        row["retry"] = environmental(error)
        return row
    row.update(outcome(record))
    row["journal_digest"] = journal[0] if journal else ""
    row["error"] = ""
    row["retry"] = False
    return row


def environmental(error: BaseException) -> bool:
    """An error of the machine (sockets, memory, a timeout), not of the run's config: the next
    invocation of the sweep runs it again instead of keeping the row."""
    import ccxt

    return isinstance(error, OSError | MemoryError | ccxt.NetworkError)


def row_columns() -> list[str]:
    """Every column of a results row, in order."""
    sample = {**config_columns(RunSpec(ScenarioRef(name="calm"), 0, "binance_coinm", ())),
              "hedge_command": "", "config_json": "", **empty_outcome(),
              "journal_digest": "", "error": "", "retry": False}
    return list(sample)


def same_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two rows equal (NaN equals NaN)."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            return False
    return True
