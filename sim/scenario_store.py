"""Store-backed scenarios: a market-data store (sim/data_store.py) plus a time window.

A reference is ``STORE[@START[..END]]`` where STORE is the name of a bundled store
(fixtures/data/) or the path of a store directory, and START / END are ISO 8601 UTC times
(a date alone means its midnight) or epoch ms, each optional: ``bitmex-xbtusd-2018-2020``,
``deribit-btc-index-2019-2021@2020-03-10..2020-03-20``, ``./my-store@..2024-01-31``.
Only the window's rows are read; the result is an ordinary Scenario (data mode when the store
records funding in the window). A store without perp prices gets one derived from the index
with the seeded default basis, as a CSV without a perp column does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from perpsim.fixtures import DATA_DIR
from perpsim.sim import synthetic
from perpsim.sim.data_store import StoreInfo, is_store, open_store, read_window
from perpsim.sim.errors import ScenarioError
from perpsim.sim.scenario import PricePath, Scenario, _scenario_of
from perpsim.sim.synthetic import format_time_ms, parse_time_ms


@dataclass(frozen=True)
class StoreRef:
    """A resolved reference: the store and the window asked for (None: its edge)."""

    store: StoreInfo
    start_ms: int | None
    end_ms: int | None
    text: str


def bundled_stores() -> dict[str, Path]:
    """Bundled store names → directories (fixtures/data/*/store.json)."""
    if not DATA_DIR.is_dir():
        return {}
    return {d.name: d for d in sorted(DATA_DIR.iterdir()) if is_store(d)}


def bundled_store_descriptions() -> dict[str, str]:
    """Bundled store names → the first line of their description."""
    out = {}
    for name, directory in bundled_stores().items():
        text = open_store(directory).description.strip()
        out[name] = text.splitlines()[0] if text else name
    return out


def _window_time(text: str, what: str, ref: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return parse_time_ms(text, what)
    except ValueError as exc:
        raise ScenarioError(f"scenario {ref!r}: {exc}") from None


def match_store(text: str) -> StoreRef | None:
    """The store a scenario reference names, or None if it names no store."""
    base, _, window = text.partition("@")
    bundled = bundled_stores()
    if base in bundled:
        directory = bundled[base]
    else:
        path = Path(base).expanduser()
        if not is_store(path):
            if window and path.is_dir():
                raise ScenarioError(f"{base}: a directory without a store manifest (store.json)")
            return None
        directory = path
    start_text, sep, end_text = window.partition("..")
    start = _window_time(start_text, "window start", text)
    end = _window_time(end_text, "window end", text) if sep else None
    if start is not None and end is not None and end <= start:
        raise ScenarioError(f"scenario {text!r}: the window end must be after its start")
    return StoreRef(open_store(directory), start, end, text)


def load_store_scenario(ref: StoreRef, seed: int, start_ms: int | None = None) -> Scenario:
    """The Scenario of ``ref``'s window; ``start_ms`` (e.g. ``serve --start``) moves the start
    inside the data, like a CSV's."""
    store = ref.store
    start = ref.start_ms if start_ms is None else start_ms
    if start is not None and not store.start_ms <= start <= store.end_ms:
        raise ScenarioError(
            f"{ref.text}: start {format_time_ms(start)} is outside the data "
            f"({format_time_ms(store.start_ms)} to {format_time_ms(store.end_ms)})")
    paths = {}
    for pair in store.pairs:
        series = read_window(store, pair, start, ref.end_ms)
        times = series.times_ms
        if start is not None and times[0] < start:
            times[0] = start  # the row in force at the start, re-stamped (fresh array: ours)
        perp = series.perp
        if perp is None:
            perp = synthetic.derive_perp(times, series.index, seed)
        paths[pair] = PricePath(times, series.index, perp, series.funding_times_ms,
                                series.funding_rates)
    name = store.name if ref.text == store.name else ref.text
    return _scenario_of(name, paths, seed, store.description.strip().splitlines()[0]
                        if store.description.strip() else store.name, str(store.directory))
