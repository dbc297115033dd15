"""A sweep spec (TOML, or YAML when PyYAML is installed) and its expansion into runs.

::

    [sweep]
    name = "leverage vs crashes"
    sample = "grid"            # "grid": every combination; "random": `runs` draws
    runs = 200                 # random only
    seed = 1                   # random only: the sampling seed
    profiles = ["binance_coinm"]
    output = "sweep.parquet"   # relative to the working directory

    [hedge]                    # fixed options of every run
    spot_btc = 5

    [grid]                     # one axis per parameter
    leverage = [1, 2, 3, 5]
    collateral_fraction = [1.0, 0.5]

    [random]                   # sample = "random": a range (with a step) or a list of choices
                               # (with sample = "random", [grid] lists are choices too)
    leverage = { min = 1, max = 10 }
    collateral_fraction = { min = 0.2, max = 1.0, step = 0.05 }
    margin_mode = ["isolated", "cross"]

    [scenarios]
    names = ["calm", "crash"]  # bundled scenarios and real-market windows (perpsim data list)
    files = ["my_path.csv"]    # CSV / JSON, relative to the spec file
    seeds = [0, 1, 2]          # generator seeds (every scenario × every seed)

    [report]
    x = "leverage"             # the heatmaps' axes
    y = "collateral_fraction"

Every mistake is a :class:`SpecError` naming the file, the line (when the parser can tell) and
the field. Expansion is deterministic: the same spec gives the same runs in the same order.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from perpsim.sweep.run import PARAMETERS, Param, RunSpec, ScenarioRef

SECTIONS = ("sweep", "hedge", "grid", "random", "scenarios", "report")
SWEEP_KEYS = ("name", "sample", "runs", "seed", "profiles", "output")
SCENARIO_KEYS = ("names", "files", "seeds")
REPORT_KEYS = ("x", "y")
MAX_RUNS = 1_000_000


class SpecError(ValueError):
    """A bad sweep spec: ``file:line: field: problem``."""


@dataclass(frozen=True)
class SweepSpec:
    """A parsed spec (see module doc)."""

    path: Path
    name: str
    sample: str
    runs: int
    seed: int
    profiles: tuple[str, ...]
    output: str
    hedge: Mapping[str, Any]
    grid: Mapping[str, tuple[Any, ...]]
    random: Mapping[str, tuple[Any, ...]]  # every choice a draw can take
    scenarios: tuple[ScenarioRef, ...]
    seeds: tuple[int, ...]
    report_x: str
    report_y: str
    varied: tuple[str, ...] = field(default=())  # the parameters that change between runs


# ---- reading ------------------------------------------------------------------------------------
class _Locator:
    """Finds the line of ``[section] key`` in the spec's text (tomllib gives no positions)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line(self, section: str | None, key: str | None = None) -> int | None:
        current = None
        for number, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            header = re.fullmatch(r"\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?", line)
            if header:
                current = header.group(1).strip("\"'")
                if key is None and current == section:
                    return number
                continue
            if key is not None and current == section and re.match(
                    rf"[\"']?{re.escape(key)}[\"']?\s*[=:]", line):
                return number
        return None

    def error(self, section: str | None, key: str | None, problem: str) -> SpecError:
        number = self.line(section, key)
        if number is None and key is not None:  # a missing key: point at its section
            number = self.line(section)
        where = f"{self.path}:{number}" if number is not None else str(self.path)
        name = ".".join(part for part in (section, key) if part)
        return SpecError(f"{where}: {name}: {problem}" if name else f"{where}: {problem}")


class _YamlLocator(_Locator):
    """Line numbers from PyYAML's node marks."""

    def __init__(self, path: Path, text: str, marks: Mapping[tuple[str, str | None], int]) -> None:
        super().__init__(path, text)
        self.marks = marks

    def line(self, section: str | None, key: str | None = None) -> int | None:
        return self.marks.get((section or "", key))


def _read(path: Path) -> tuple[dict[str, Any], _Locator]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot read it ({error})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        return _read_yaml(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML: {error}") from None
    return data, _Locator(path, text)


def _read_yaml(path: Path, text: str) -> tuple[dict[str, Any], _Locator]:
    try:
        import yaml
    except ImportError:
        raise SpecError(f"{path}: YAML specs need PyYAML (pip install pyyaml); or write TOML"
                        ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    marks: dict[tuple[str, str | None], int] = {}
    if isinstance(root, yaml.MappingNode):
        for key_node, value_node in root.value:
            section = str(key_node.value)
            marks[(section, None)] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                for sub_key, _ in value_node.value:
                    marks[(section, str(sub_key.value))] = sub_key.start_mark.line + 1
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the spec must be a mapping of sections")
    return data, _YamlLocator(path, text, marks)


# ---- values -------------------------------------------------------------------------------------
def _value(param: Param, raw: Any, fail: Callable[[str], SpecError]) -> Any:
    """One parameter value checked and converted (Decimal from the number as written)."""
    if param.kind is bool:
        if not isinstance(raw, bool):
            raise fail(f"must be true or false, got {raw!r}")
        return raw
    if param.kind is str:
        if raw not in param.choices:
            raise fail(f"must be one of {', '.join(param.choices)}, got {raw!r}")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise fail(f"must be a number, got {raw!r}")
    if param.kind is int:
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if not isinstance(raw, int):
            raise fail(f"must be a whole number, got {raw!r}")
        value: Any = raw
    else:
        try:
            value = Decimal(str(raw).strip())
        except InvalidOperation:
            raise fail(f"must be a number, got {raw!r}") from None
        if not value.is_finite():
            raise fail(f"must be a finite number, got {raw!r}")
    problem = param.check(value)
    if problem:
        raise fail(f"{problem}, got {raw!r}")
    return value


def _axis(param: Param, raw: Any, fail: Callable[[str], SpecError]) -> tuple[Any, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail("must be a non-empty list of values")
    values = tuple(_value(param, item, fail) for item in raw)
    if len(set(values)) != len(values):
        raise fail("lists a value twice")
    return values


def _choices(param: Param, raw: Any, fail: Callable[[str], SpecError]) -> tuple[Any, ...]:
    """A random axis: a list of choices, or {min, max, step} (every step from min to max)."""
    if isinstance(raw, list):
        return _axis(param, raw, fail)
    if not isinstance(raw, dict) or param.kind in (bool, str):
        raise fail("must be a list of choices" + ("" if param.kind in (bool, str) else
                                                   " or a table {min, max, step}"))
    unknown = sorted(set(raw) - {"min", "max", "step"})
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (min, max, step)")
    if "min" not in raw or "max" not in raw:
        raise fail("a range needs min and max")
    low, high = _value(param, raw["min"], fail), _value(param, raw["max"], fail)
    if high < low:
        raise fail(f"max {high} is under min {low}")
    step_raw = raw.get("step", 1 if param.kind is int else None)
    if step_raw is None:
        raise fail("a range of a decimal parameter needs a step (e.g. step = 0.05)")
    try:
        step = Decimal(str(step_raw))
    except InvalidOperation:
        raise fail(f"step must be a number, got {step_raw!r}") from None
    if not step.is_finite() or step <= 0 or (param.kind is int and step != int(step)):
        raise fail(f"step must be a positive {'whole ' if param.kind is int else ''}number, "
                   f"got {step_raw!r}")
    count = int((Decimal(high) - Decimal(low)) / step) + 1
    if count > MAX_RUNS:
        raise fail(f"{count} steps from min to max: use a larger step")
    values = [Decimal(low) + step * k for k in range(count)]
    return tuple(int(v) if param.kind is int else v for v in values)


def _strings(raw: Any, fail: Callable[[str], SpecError]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
        raise fail("must be a list of names")
    return tuple(raw)


def _profile(name: str, spec_path: Path, fail: Callable[[str], SpecError]) -> str:
    """A bundled profile name as is, or a profile JSON file (relative to the spec) made
    absolute; checked loadable now, so a bad one fails the spec, not every run."""
    from perpsim.sim.errors import PerpsimError
    from perpsim.sim.profile import bundled_profiles, load_profile

    if name in bundled_profiles():
        return name
    path = (spec_path.parent / name).resolve()
    if not name.endswith(".json") or not path.is_file():
        raise fail(f"{name!r} is neither a bundled profile ({', '.join(bundled_profiles())}) "
                   "nor a profile JSON file")
    try:
        load_profile(path)
    except PerpsimError as error:
        raise fail(" ".join(str(error).split())) from None
    return str(path)


def _seeds(raw: Any, fail: Callable[[str], SpecError]) -> tuple[int, ...]:
    if not isinstance(raw, list) or not raw or not all(
            isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in raw):
        raise fail("must be a non-empty list of non-negative whole numbers")
    if len(set(raw)) != len(raw):
        raise fail("lists a seed twice")
    return tuple(raw)


# ---- the spec -----------------------------------------------------------------------------------
COMMAND_LINE = "<command line>"


def load_spec(path: str | Path | None,
              overrides: Mapping[str, Mapping[str, Any]] | None = None) -> SweepSpec:
    """Read and check a spec file (SpecError names the file, line and field); ``overrides``
    (the command line's flags, by section and key) replace the file's values. Without a file
    the overrides are the whole spec (relative paths then from the working directory)."""
    if path is None:
        spec_path = Path.cwd() / COMMAND_LINE
        data: dict[str, Any] = {}
        where = _Locator(Path(COMMAND_LINE), "")
    else:
        spec_path = Path(path)
        data, where = _read(spec_path)
    for section, values in (overrides or {}).items():
        table = data.setdefault(section, {})
        if isinstance(table, dict):
            table.update(values)

    def fail_at(section: str | None, key: str | None) -> Callable[[str], SpecError]:
        return lambda problem: where.error(section, key, problem)

    for section in data:
        if section not in SECTIONS:
            raise where.error(section, None, f"unknown section (known: {', '.join(SECTIONS)})")
    tables: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise where.error(section, None, "must be a table of keys")
        tables[section] = table
    for section, known in (("sweep", SWEEP_KEYS), ("scenarios", SCENARIO_KEYS),
                           ("report", REPORT_KEYS)):
        for key in tables[section]:
            if key not in known:
                raise where.error(section, key, f"unknown key (known: {', '.join(known)})")
    for section in ("hedge", "grid", "random"):
        for key in tables[section]:
            if key not in PARAMETERS:
                raise where.error(section, key, "unknown hedge parameter (known: "
                                  f"{', '.join(PARAMETERS)})")

    sweep = tables["sweep"]
    name = sweep.get("name", spec_path.stem)
    if not isinstance(name, str) or not name.strip():
        raise where.error("sweep", "name", "must be a non-empty string")
    sample = sweep.get("sample", "grid")
    if sample not in ("grid", "random"):
        raise where.error("sweep", "sample", f"must be \"grid\" or \"random\", got {sample!r}")
    runs = sweep.get("runs", 0 if sample == "grid" else None)
    if sample == "random" and (not isinstance(runs, int) or isinstance(runs, bool)
                               or not 1 <= runs <= MAX_RUNS):
        raise where.error("sweep", "runs", f"random sampling needs runs = 1..{MAX_RUNS}, "
                          f"got {runs!r}")
    if sample == "grid" and "runs" in sweep:
        raise where.error("sweep", "runs", "only for sample = \"random\" (a grid runs every "
                          "combination)")
    seed = sweep.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise where.error("sweep", "seed", f"must be a non-negative whole number, got {seed!r}")
    profiles = _strings(sweep.get("profiles", ["binance_coinm"]), fail_at("sweep", "profiles"))
    if not profiles:
        raise where.error("sweep", "profiles", "must name at least one profile")
    profiles = tuple(_profile(name, spec_path, fail_at("sweep", "profiles")) for name in profiles)
    output = sweep.get("output", f"{spec_path.stem}.parquet")
    if not isinstance(output, str) or not output.endswith(".parquet"):
        raise where.error("sweep", "output", f"must be a .parquet file name, got {output!r}")

    hedge = {key: _value(PARAMETERS[key], raw, fail_at("hedge", key))
             for key, raw in tables["hedge"].items()}
    grid = {key: _axis(PARAMETERS[key], raw, fail_at("grid", key))
            for key, raw in tables["grid"].items()}
    rand = {key: _choices(PARAMETERS[key], raw, fail_at("random", key))
            for key, raw in tables["random"].items()}
    if sample == "grid" and rand:
        raise where.error("random", None, "only for sample = \"random\" (a grid takes lists "
                          "in [grid])")
    if sample == "random":  # a grid's axes are choices to draw from
        rand = {**grid, **rand}
        grid = {}
    for key in (*tables["grid"], *tables["random"]):
        if key in hedge:
            section = "grid" if key in tables["grid"] else "random"
            raise where.error(section, key, "is also fixed in [hedge]: keep one")

    scenarios = _scenarios(tables["scenarios"], spec_path, fail_at)
    seeds = _seeds(tables["scenarios"].get("seeds", [0]), fail_at("scenarios", "seeds"))
    varied = tuple(grid or rand)
    report = tables["report"]
    axes = [*varied, "seed"]
    report_x = report.get("x", axes[0])
    report_y = report.get("y", axes[1] if len(axes) > 1 else axes[0])
    for key, value in (("x", report_x), ("y", report_y)):
        if value not in (*varied, "seed", "scenario", "profile"):
            raise where.error("report", key, f"must be a varied parameter, seed, scenario or "
                              f"profile (varied here: {', '.join(varied) or 'none'}), "
                              f"got {value!r}")
    spec = SweepSpec(path=spec_path, name=name.strip(), sample=sample, runs=int(runs or 0),
                     seed=seed, profiles=profiles, output=output, hedge=hedge, grid=grid,
                     random=rand, scenarios=scenarios, seeds=seeds, report_x=report_x,
                     report_y=report_y, varied=varied)
    _check_runs(spec, where)
    return spec


def _scenarios(table: Mapping[str, Any], spec_path: Path,
               fail_at: Callable[[str | None, str | None], Callable[[str], SpecError]]
               ) -> tuple[ScenarioRef, ...]:
    from perpsim.sim.scenario import bundled_scenarios

    bundled = bundled_scenarios()
    names = _strings(table.get("names", []), fail_at("scenarios", "names"))
    for name in names:
        if name not in bundled or name == "manual":
            raise fail_at("scenarios", "names")(
                f"{name!r} is not a bundled scenario with a price path (bundled: "
                f"{', '.join(n for n in bundled if n != 'manual')})")
    refs = [ScenarioRef(name=name) for name in names]
    for text in _strings(table.get("files", []), fail_at("scenarios", "files")):
        file = (spec_path.parent / text).resolve()
        if not file.is_file():
            raise fail_at("scenarios", "files")(f"no such file: {file}")
        refs.append(ScenarioRef.from_file(file))
    if not refs:
        raise fail_at("scenarios", None)("name at least one scenario (names or files)")
    if len({ref.label for ref in refs}) != len(refs):
        raise fail_at("scenarios", None)("a scenario is listed twice")
    return tuple(refs)


def _check_runs(spec: SweepSpec, where: _Locator) -> None:
    """Reject a spec whose combinations could never be a valid HedgeConfig, before any run."""
    per_path = len(spec.scenarios) * len(spec.seeds) * len(spec.profiles)
    count = spec.runs * per_path if spec.sample == "random" else per_path * math.prod(
        len(axis) for axis in spec.grid.values())
    if count > MAX_RUNS:
        raise where.error("sweep", None, f"{count:,} runs: more than {MAX_RUNS:,}")
    low, high = spec.hedge.get("exit_below_usd"), spec.hedge.get("exit_above_usd")
    if low is not None and high is not None and low >= high:
        raise where.error("hedge", "exit_below_usd", f"{low} must be under exit_above_usd "
                          f"{high}")


# ---- expansion ----------------------------------------------------------------------------------
def parameter_sets(spec: SweepSpec) -> list[dict[str, Any]]:
    """The hedge parameters of every run, in order (grid: last axis fastest; random: seeded
    draws, each parameter drawn independently from its choices)."""
    if spec.sample == "grid":
        keys = list(spec.grid)
        combos = itertools.product(*(spec.grid[k] for k in keys)) if keys else [()]
        return [{**spec.hedge, **dict(zip(keys, combo, strict=True))} for combo in combos]
    rng = random.Random(_seed_bytes(spec.seed))
    keys = list(spec.random)
    return [{**spec.hedge, **{k: spec.random[k][rng.randrange(len(spec.random[k]))]
                              for k in keys}} for _ in range(spec.runs)]


def expand(spec: SweepSpec) -> list[RunSpec]:
    """Every run of the sweep: parameter sets × scenarios × seeds × profiles, deterministic."""
    runs: list[RunSpec] = []
    for params in parameter_sets(spec):
        for scenario in spec.scenarios:
            for seed in spec.seeds:
                for profile in spec.profiles:
                    runs.append(RunSpec(scenario=scenario, seed=seed, profile=profile,
                                        params=tuple(sorted(params.items()))))
    return runs


def _seed_bytes(seed: int) -> int:
    # random.Random(int) is stable across Python versions; hash the seed so that nearby seeds
    # do not give correlated first draws.
    return int.from_bytes(hashlib.sha256(f"perpsim-sweep:{seed}".encode()).digest()[:8], "big")


def describe(spec: SweepSpec, runs: Sequence[RunSpec]) -> str:
    """One line: what the sweep runs."""
    axes = ", ".join(f"{k} ×{len(v)}" for k, v in (spec.grid or spec.random).items())
    return (f"{spec.name}: {len(runs):,} runs = {spec.sample} ({axes or 'fixed parameters'}) × "
            f"{len(spec.scenarios)} scenario(s) × {len(spec.seeds)} seed(s) × "
            f"{len(spec.profiles)} profile(s)")
