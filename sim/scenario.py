"""Scenarios: the price paths (index, perp, optional historical funding) the engine replays.

Three kinds, all resolved by ``load_scenario``:

* a CSV file (one pair, ``BTCUSD`` unless told): columns ``time`` (ISO 8601 UTC or epoch ms),
  ``index`` (required), ``perp`` (optional; if absent, ``sim.synthetic.derive_perp`` makes it
  ``index × (1 + basis)`` with the seeded default OU basis: mean +1 bp, reversion 2/h, stationary
  stdev 2 bp) and ``funding_rate`` (optional; the rate settled at that row's time, empty
  elsewhere; recorded as given, since which times are funding times is the profile's business).
  Each row's prices hold until the next row. Reading and validation: sim/scenario_csv.py.
* a JSON generator spec (``sim.synthetic.GeneratorSpec``), e.g. the bundled ones in
  fixtures/scenarios/.
* ``manual``: one row per pair at the start time (BTCUSD 60,000, ETHUSD 3,000, index = perp);
  the control plane moves prices from there.

A JSON spec may also carry a ``crowd`` (traders created and positioned at the start, seeded:
sim/crowd.py) and a ``book`` section (per symbol, fields of the profile's synthetic book to
replace, e.g. ``{"BTCUSD_PERP": {"refill_contracts_per_s": 500}}`` for finite depth:
sim/depth.py); docs/contract.md describes both.

A JSON spec may also schedule funding interval changes (Binance / Bybit move symbols between
8 h, 4 h and 1 h; BitMEX announced 8 h → 2 h): ``"funding_interval_changes": [{"symbol":
"BTCUSD_PERP", "from": "2024-01-02T00:00:00Z", "interval_hours": 4}]`` — from that funding time
on, the symbol funds every 4 h at rates scaled by 4/8 (sim/funding_schedule.py). A pair name
(``"BTCUSD"``) instead of a symbol changes every perpetual of the pair, on any profile.

``mode`` tells the engine where funding comes from: ``data`` when the scenario carries funding
rates (they are settled; the premium model only predicts), ``synthetic`` when the premium model
sets the rate, ``manual`` when prices are set by hand.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from perpsim.fixtures import SCENARIOS_DIR
from perpsim.sim import synthetic
from perpsim.sim.bounded_json import too_deep
from perpsim.sim.crowd import CrowdSpec, parse_crowd
from perpsim.sim.depth import BookOverride, parse_books
from perpsim.sim.errors import ScenarioError, did_you_mean
from perpsim.sim.funding_schedule import IntervalChange
from perpsim.sim.scenario_csv import read_scenario_csv
from perpsim.sim.synthetic import format_time_ms

Mode = Literal["data", "synthetic", "manual"]
DEFAULT_PAIR = "BTCUSD"
MANUAL_START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z, the contract's example start
MANUAL_PRICES: dict[str, float] = {"BTCUSD": 60_000.0, "ETHUSD": 3_000.0}

_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_I.setflags(write=False)
_EMPTY_F = np.zeros(0, dtype=np.float64)
_EMPTY_F.setflags(write=False)


_CHECK_ROWS = 1 << 20  # times checked per pass (bounded temporaries on a 31 M-row year)


def _check_times(times: np.ndarray) -> int | None:
    """ScenarioError unless ``times`` strictly increase; their step if every gap is the same
    (a regular grid), else None — one pass, a block of gaps at a time."""
    n = len(times)
    if n < 2:
        return None
    step = int(times[1] - times[0])
    regular = True
    for lo in range(0, n - 1, _CHECK_ROWS):
        gaps = np.diff(times[lo:lo + _CHECK_ROWS + 1])
        if not bool((gaps > 0).all()):
            raise ScenarioError("price path times must be strictly increasing")
        regular = regular and bool((gaps == step).all())
    return step if regular else None


def _frozen(values: object, dtype: type) -> np.ndarray:
    """A read-only contiguous 1-D array of ``dtype`` (no copy when it already is one)."""
    array: np.ndarray = np.ascontiguousarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ScenarioError(f"price path arrays must be 1-D, got shape {array.shape}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class PricePath:
    """One pair's rows: times (strictly increasing epoch ms), index and perp prices, and the
    sparse funding rates settled at ``funding_times_ms`` (data mode; empty otherwise).

    Arrays are stored without copying when already int64/float64 and contiguous, and are made
    read-only (so the caller's array becomes read-only too: a path never changes under the
    engine)."""

    times_ms: np.ndarray
    index: np.ndarray
    perp: np.ndarray
    funding_times_ms: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    funding_rates: np.ndarray = field(default_factory=lambda: _EMPTY_F)
    _regular_step_ms: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for name, dtype in (
            ("times_ms", np.int64),
            ("index", np.float64),
            ("perp", np.float64),
            ("funding_times_ms", np.int64),
            ("funding_rates", np.float64),
        ):
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype))
        n = len(self.times_ms)
        if n == 0 or len(self.index) != n or len(self.perp) != n:
            raise ScenarioError("a price path needs at least one row and equal-length columns")
        if len(self.funding_times_ms) != len(self.funding_rates):
            raise ScenarioError("funding times and rates differ in length")
        object.__setattr__(self, "_regular_step_ms", _check_times(self.times_ms))

    @property
    def regular_step_ms(self) -> int | None:
        """The step when the times are a regular grid (``times[i] == times[0] + step · i`` for
        every row; the arrays are read-only, so it stays true), else None: the engine then
        finds a time's row by arithmetic instead of checking the times (sim/market.py)."""
        return self._regular_step_ms

    def __len__(self) -> int:
        """Number of rows."""
        return len(self.times_ms)

    @property
    def start_ms(self) -> int:
        """Time of the first row."""
        return int(self.times_ms[0])

    @property
    def end_ms(self) -> int:
        """Time of the last row (its prices hold from then on)."""
        return int(self.times_ms[-1])

    def row_at(self, t_ms: int) -> int:
        """Index of the row in force at ``t_ms`` (the first row before the path starts)."""
        row = int(np.searchsorted(self.times_ms, t_ms, side="right")) - 1
        return max(row, 0)

    def funding_rate_at(self, t_ms: int) -> float | None:
        """The data funding rate settled exactly at ``t_ms``, or None."""
        i = int(np.searchsorted(self.funding_times_ms, t_ms, side="left"))
        if i < len(self.funding_times_ms) and int(self.funding_times_ms[i]) == t_ms:
            return float(self.funding_rates[i])
        return None

    def starting_at(self, start_ms: int) -> PricePath:
        """The path from ``start_ms`` on: the row in force then, re-stamped to ``start_ms``."""
        row = self.row_at(start_ms)
        times = self.times_ms[row:].copy()
        times[0] = start_ms
        keep = self.funding_times_ms >= start_ms
        return PricePath(
            times, self.index[row:], self.perp[row:],
            self.funding_times_ms[keep], self.funding_rates[keep],
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class Scenario:
    """A named set of price paths keyed by pair (``BTCUSD``, ``ETHUSD``) and how to run them."""

    name: str
    mode: Mode
    paths: dict[str, PricePath]
    start_ms: int
    end_ms: int | None  # None for manual: time runs as far as the user advances it
    seed: int
    description: str
    source: str  # the CSV or JSON file, or "manual"
    funding_interval_changes: tuple[IntervalChange, ...] = ()
    crowd: CrowdSpec | None = None  # traders the engine creates at the start (sim/crowd.py)
    books: Mapping[str, BookOverride] = field(default_factory=dict)  # sim/depth.py

    def path(self, pair: str) -> PricePath:
        """The path of ``pair``, or ScenarioError naming the pairs it has."""
        try:
            return self.paths[pair]
        except KeyError:
            have = ", ".join(sorted(self.paths)) or "none"
            raise ScenarioError(
                f"scenario {self.name!r} has no {pair} prices (has {have})"
            ) from None


def manual_scenario(
    start_ms: int | None = None, prices: dict[str, float] | None = None, seed: int = 0
) -> Scenario:
    """Prices set by hand: one row per pair at ``start_ms`` (index = perp = start price)."""
    start = MANUAL_START_MS if start_ms is None else int(start_ms)
    chosen = dict(MANUAL_PRICES if prices is None else prices)
    paths = {}
    for pair, price in chosen.items():
        if not (np.isfinite(price) and price > 0):
            raise ScenarioError(f"manual start price for {pair} must be positive, got {price!r}")
        paths[pair] = PricePath(np.array([start]), np.array([price]), np.array([price]))
    listed = ", ".join(f"{p} {v:g}" for p, v in chosen.items())
    return Scenario(
        "manual", "manual", paths, start, None, seed, f"prices set by hand ({listed})", "manual"
    )


def _scenario_of(
    name: str, paths: dict[str, PricePath], seed: int, description: str, source: str
) -> Scenario:
    """Assemble a Scenario, deriving mode and span from its paths."""
    has_rates = any(len(p.funding_rates) for p in paths.values())
    return Scenario(
        name=name,
        mode="data" if has_rates else "synthetic",
        paths=paths,
        start_ms=min(p.start_ms for p in paths.values()),
        end_ms=max(p.end_ms for p in paths.values()),
        seed=seed,
        description=description,
        source=source,
    )


def _csv_description(path: Path) -> str:
    """First line of a ``SOURCE-<stem>.txt`` beside the CSV, else a plain note."""
    note = path.with_name(f"SOURCE-{path.stem}.txt")
    if note.is_file():
        first = note.read_text(encoding="utf-8").strip().splitlines()
        if first:
            return first[0].strip()
    return f"prices from {path.name}"


def _load_csv(path: Path, seed: int, start_ms: int | None, pair: str) -> Scenario:
    """A one-pair scenario from a CSV file (see the module docstring)."""
    times, index, perp, f_times, f_rates = read_scenario_csv(path)
    if perp is None:
        perp = synthetic.derive_perp(times, index, seed)
    price_path = PricePath(times, index, perp, f_times, f_rates)
    if start_ms is not None:
        if not price_path.start_ms <= start_ms <= price_path.end_ms:
            raise ScenarioError(
                f"{path}: start {format_time_ms(start_ms)} is outside the data "
                f"({format_time_ms(price_path.start_ms)} to {format_time_ms(price_path.end_ms)})"
            )
        price_path = price_path.starting_at(start_ms)
    return _scenario_of(path.stem, {pair: price_path}, seed, _csv_description(path), str(path))


def _load_spec(
    path: Path,
    seed: int,
    start_ms: int | None,
    days: float | None,
    resolution_ms: int | None,
) -> Scenario:
    """A generated scenario from a JSON generator spec file."""
    try:
        text = path.read_text(encoding="utf-8")
        problem = too_deep(text)
        if problem is not None:
            raise ScenarioError(f"{path}: not a generator spec: {problem}")
        data = json.loads(text)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the file ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{path}: not valid JSON ({exc})") from None
    changes = _interval_changes(data.pop("funding_interval_changes", None)
                                if isinstance(data, dict) else None, path)
    crowd_raw = data.pop("crowd", None) if isinstance(data, dict) else None
    crowd = None if crowd_raw is None else parse_crowd(crowd_raw, str(path))
    books_raw = data.pop("book", None) if isinstance(data, dict) else None
    books = {} if books_raw is None else parse_books(books_raw, str(path))
    spec = synthetic.parse_spec(data, str(path))
    price_path = _generated_path(str(path), text, spec, seed, start_ms, days, resolution_ms)
    description = spec.description or f"{spec.generator} path from {path.name}"
    scenario = _scenario_of(path.stem, {spec.pair: price_path}, seed, description, str(path))
    return dataclasses.replace(scenario, funding_interval_changes=changes, crowd=crowd,
                               books=books)


_GENERATED: dict[tuple[object, ...], PricePath] = {}
_GENERATED_KEPT = 8


def _generated_path(source: str, text: str, spec: synthetic.GeneratorSpec, seed: int,
                    start_ms: int | None, days: float | None, resolution_ms: int | None
                    ) -> PricePath:
    """The path generated from a spec file's ``text`` (parsed: ``spec``): a pure function of
    the text, the seed and the overrides, kept for the last few (a sweep worker loads the same
    scenario run after run, twice a run). A PricePath never changes (frozen, read-only
    arrays): markets share one as they would share equal copies."""
    key = (source, text, seed, start_ms, days, resolution_ms)
    path = _GENERATED.get(key)
    if path is not None:
        return path
    try:
        gen = synthetic.generate(
            spec, seed, start_ms=start_ms, days=days, resolution_ms=resolution_ms
        )
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    path = PricePath(gen.times_ms, gen.index, gen.perp, gen.funding_times_ms, gen.funding_rates)
    if len(_GENERATED) >= _GENERATED_KEPT:
        _GENERATED.pop(next(iter(_GENERATED)))  # the oldest
    _GENERATED[key] = path
    return path


def _interval_changes(raw: object, path: Path) -> tuple[IntervalChange, ...]:
    """The spec's ``funding_interval_changes`` (see the module docstring), validated."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ScenarioError(f"{path}: funding_interval_changes must be a list of objects")
    changes = []
    for i, item in enumerate(raw):
        where = f"{path}: funding_interval_changes[{i}]"
        if not isinstance(item, dict) or set(item) != {"symbol", "from", "interval_hours"}:
            raise ScenarioError(f"{where} must be an object with exactly symbol, from and "
                                "interval_hours")
        hours = item["interval_hours"]
        if isinstance(hours, bool) or not isinstance(hours, int) or not isinstance(
                item["symbol"], str) or not isinstance(item["from"], str | int):
            raise ScenarioError(f"{where}: symbol must be a string, from a time and "
                                "interval_hours an integer")
        try:
            from_ms = synthetic.parse_time_ms(item["from"], "from")
        except (ValueError, ScenarioError) as exc:
            raise ScenarioError(f"{where}: {exc}") from None
        changes.append(IntervalChange(item["symbol"], from_ms, hours))
    return tuple(changes)


def _bundled_files() -> dict[str, Path]:
    """Bundled scenario names → files (JSON specs and CSVs in fixtures/scenarios/)."""
    files = sorted([*SCENARIOS_DIR.glob("*.json"), *SCENARIOS_DIR.glob("*.csv")])
    return {f.stem: f for f in files}


def bundled_scenarios() -> dict[str, str]:
    """Bundled scenario names (plus ``manual``) → one-line descriptions, sorted by name."""
    out = {"manual": manual_scenario().description}
    for name, path in _bundled_files().items():
        if path.suffix == ".csv":
            out[name] = _csv_description(path)
            continue
        try:
            text = json.loads(path.read_text(encoding="utf-8")).get("description", "")
        except (OSError, ValueError, AttributeError):
            text = ""
        out[name] = str(text).strip().splitlines()[0] if str(text).strip() else name
    from perpsim.sim.scenario_store import bundled_store_descriptions

    out.update(bundled_store_descriptions())  # the real-market library (fixtures/data/)
    return dict(sorted(out.items()))


def load_scenario(
    name_or_path: str | Path,
    seed: int = 0,
    start_ms: int | None = None,
    *,
    days: float | None = None,
    resolution_ms: int | None = None,
    pair: str = DEFAULT_PAIR,
) -> Scenario:
    """Resolve a bundled name, ``manual``, a .csv or a .json spec path into a Scenario.

    ``start_ms`` moves a generated or manual scenario's start; for a CSV it starts the replay
    at that time (which must lie inside the data). ``days`` and ``resolution_ms`` override a
    generator spec's; ``pair`` names the pair a CSV describes.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ScenarioError(f"seed must be an integer, got {seed!r}")
    if seed < 0:
        raise ScenarioError(f"seed must be >= 0, got {seed}")
    text = str(name_or_path)
    if text == "manual":
        return manual_scenario(start_ms, seed=seed)
    from perpsim.sim.scenario_store import load_store_scenario, match_store  # imports this one

    store = match_store(text)  # a market-data store (+ window): sim/scenario_store.py
    if store is not None:
        if days is not None or resolution_ms is not None:
            raise ScenarioError(f"{text}: days and resolution apply to generator specs only")
        return load_store_scenario(store, seed, start_ms)
    bundled = _bundled_files()
    looks_like_path = isinstance(name_or_path, Path) or text.endswith((".csv", ".json"))
    if not looks_like_path and ("/" in text or "\\" in text):
        looks_like_path = True
    if looks_like_path:
        path = Path(text)
        if not path.is_file() and path.stem in bundled and path.name == text:
            path = bundled[path.stem]  # "calm.json" means the bundled file
        if not path.is_file():
            raise ScenarioError(f"{path}: no such scenario file")
    elif text in bundled:
        path = bundled[text]
    else:
        names = ["manual", *bundled]
        raise ScenarioError(f"unknown scenario {text!r}{did_you_mean(text, names)}; "
                            f"bundled scenarios: {', '.join(names)}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        if days is not None or resolution_ms is not None:
            raise ScenarioError(f"{path}: days and resolution apply to generator specs only")
        return _load_csv(path, seed, start_ms, pair)
    if suffix == ".json":
        return _load_spec(path, seed, start_ms, days, resolution_ms)
    raise ScenarioError(f"{path}: a scenario file must be .csv or .json")
