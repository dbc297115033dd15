"""perpsim sweep: the spec and its errors, deterministic expansion, in-process runs identical to
runs over the wire, resuming, Dask (a real 2-worker LocalCluster) equal to local processes byte
for byte, and the HTML report."""

from __future__ import annotations

import hashlib
import json
import socket
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest
from plotly.offline import get_plotlyjs

from perpsim.cli import build_parser, main
from perpsim.cli import hedge_config as cli_hedge_config
from perpsim.sweep.cli import overrides, run_sweep
from perpsim.sweep.executors import Executor, local_cluster
from perpsim.sweep.report import render
from perpsim.sweep.run import (
    RunSpec,
    ScenarioRef,
    environmental,
    hedge_command,
    run_hash,
    run_row,
)
from perpsim.sweep.run import hedge_config as sweep_hedge_config
from perpsim.sweep.spec import SpecError, expand, load_spec
from perpsim.sweep.store import read_rows, write_rows

REPO = Path(__file__).resolve().parent.parent
D = Decimal

SMALL = """
[sweep]
name = "small"
output = "small.parquet"

[grid]
leverage = [2, 3]
collateral_fraction = [1.0, 0.6]

[scenarios]
names = ["calm"]
seeds = [0]
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def calm(**params: Any) -> RunSpec:
    return RunSpec(scenario=ScenarioRef(name="calm"), seed=0, profile="binance_coinm",
                   params=tuple(sorted(params.items())))


# ---- the spec -----------------------------------------------------------------------------------
def test_the_bundled_example_parses_into_its_360_runs() -> None:
    spec = load_spec(REPO / "examples" / "sweep.toml")
    runs = expand(spec)
    assert len(runs) == 3 * 3 * 2 * 2 * 5 * 2
    assert len({run_hash(r) for r in runs}) == len(runs)
    assert spec.report_x == "leverage"
    assert spec.report_y == "collateral_fraction"
    assert {r.scenario.label for r in runs} == {"calm", "crash", "squeeze", "funding_flip",
                                                "basis_blowout"}
    assert {dict(r.params)["leverage"] for r in runs} == {3, 5, 10}
    assert {dict(r.params)["collateral_fraction"] for r in runs} == {D("0.5"), D("0.35"),
                                                                     D("0.2")}
    assert {dict(r.params)["topup"] for r in runs} == {True, False}


@pytest.mark.parametrize(("text", "expected"), [
    ("[grid]\nlevrage = [1, 2]\n", "spec.toml:2: grid.levrage: unknown hedge parameter"),
    ("[grid]\n\nleverage = [1, 2.5]\n", "spec.toml:3: grid.leverage: must be a whole number"),
    ("[grid]\nleverage = [1, 200]\n", "spec.toml:2: grid.leverage: must be at most 125"),
    ("[grid]\nleverage = []\n", "spec.toml:2: grid.leverage: must be a non-empty list"),
    ("[sweep]\nsample = \"sobol\"\n", "spec.toml:2: sweep.sample: must be \"grid\" or"),
    ("[scenarios]\nnames = [\"calm\", \"moon\"]\n",
     "spec.toml:2: scenarios.names: 'moon' is not a bundled scenario"),
    ("[scenarios]\nnames = [\"calm\"]\nfiles = [\"nope.csv\"]\n",
     "spec.toml:3: scenarios.files: no such file"),
    ("[hedge]\nmargin_mode = \"portfolio\"\n",
     "spec.toml:2: hedge.margin_mode: must be one of isolated, cross"),
    ("[hegde]\n", "spec.toml:1: hegde: unknown section"),
    ("[grid]\nleverage = [1, 2\n", "spec.toml: not valid TOML"),
    ("[sweep]\nsample = \"random\"\n[random]\nhedge_ratio = { min = 0.5, max = 1 }\n",
     "spec.toml:1: sweep.runs: random sampling needs runs"),
    ("[sweep]\nsample = \"random\"\nruns = 3\n[random]\nhedge_ratio = { min = 0.5, max = 1 }\n",
     "spec.toml:5: random.hedge_ratio: a range of a decimal parameter needs a step"),
    ("[hedge]\nleverage = 2\n[grid]\nleverage = [1, 2]\n",
     "spec.toml:4: grid.leverage: is also fixed in [hedge]"),
    ("[report]\nx = \"spot_btc\"\n[grid]\nleverage = [1]\n",
     "spec.toml:2: report.x: must be a varied parameter"),
    ("[sweep]\nprofiles = [\"binance_coinm\", \"kraken\"]\n",
     "spec.toml:2: sweep.profiles: 'kraken' is neither a bundled profile"),
])
def test_a_bad_spec_names_the_file_line_and_field(tmp_path: Path, text: str,
                                                  expected: str) -> None:
    path = write(tmp_path, text if "[scenarios]" in text else
                 text + "\n[scenarios]\nnames = [\"calm\"]\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{tmp_path}/{expected}")


def test_a_profile_file_is_checked_and_named_by_its_content(tmp_path: Path) -> None:
    source = (REPO / "fixtures" / "profiles" / "binance_coinm.json").read_text(encoding="utf-8")
    (tmp_path / "mine.json").write_text(source, encoding="utf-8")
    spec = load_spec(write(tmp_path, SMALL.replace('name = "small"',
                                                   'name = "small"\nprofiles = ["mine.json"]')))
    assert spec.profiles == (str(tmp_path / "mine.json"),)
    before = [run_hash(r) for r in expand(spec)]
    (tmp_path / "mine.json").write_text(source + "\n", encoding="utf-8")
    assert [run_hash(r) for r in expand(spec)] != before
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(SpecError, match=r"spec\.toml:4: sweep\.profiles: .*broken\.json"):
        load_spec(write(tmp_path, SMALL.replace('name = "small"',
                                                'name = "small"\nprofiles = ["broken.json"]')))


def test_a_missing_spec_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nothere\.toml: no such file"):
        load_spec(tmp_path / "nothere.toml")


def test_a_yaml_spec_reads_the_same_and_its_errors_have_lines(tmp_path: Path) -> None:
    yaml_spec = write(tmp_path, "sweep:\n  output: small.parquet\ngrid:\n  leverage: [2, 3]\n"
                      "  collateral_fraction: [1.0, 0.6]\nscenarios:\n  names: [calm]\n"
                      "  seeds: [0]\n", "spec.yaml")
    toml_spec = write(tmp_path, SMALL)
    assert [run_hash(r) for r in expand(load_spec(yaml_spec))] == \
        [run_hash(r) for r in expand(load_spec(toml_spec))]
    bad = write(tmp_path, "grid:\n  leverage: [1, 2]\n  hedge_ratio: [3]\nscenarios:\n"
                "  names: [calm]\n", "bad.yaml")
    with pytest.raises(SpecError, match=r"bad\.yaml:3: grid\.hedge_ratio: must be at most 2"):
        load_spec(bad)


def test_the_cli_reports_a_bad_spec_in_one_line_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[grid]\nleverage = [0]\n[scenarios]\nnames = [\"calm\"]\n")
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"perpsim: error: {path}:2: grid.leverage: must be at least 1, got 0"
    assert not (tmp_path / "spec.parquet").exists()


# ---- expansion ----------------------------------------------------------------------------------
def test_grid_expansion_is_every_combination_in_a_fixed_order(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, SMALL.replace('seeds = [0]', 'seeds = [0, 7]')))
    runs = expand(spec)
    assert [(dict(r.params)["leverage"], dict(r.params)["collateral_fraction"], r.seed)
            for r in runs] == [
        (2, D("1.0"), 0), (2, D("1.0"), 7), (2, D("0.6"), 0), (2, D("0.6"), 7),
        (3, D("1.0"), 0), (3, D("1.0"), 7), (3, D("0.6"), 0), (3, D("0.6"), 7)]
    assert [run_hash(r) for r in expand(load_spec(spec.path))] == [run_hash(r) for r in runs]


def test_random_sampling_is_seeded_and_stays_inside_the_ranges(tmp_path: Path) -> None:
    text = ("[sweep]\nsample = \"random\"\nruns = 40\nseed = {seed}\n[random]\n"
            "collateral_fraction = {{ min = 0.2, max = 1.0, step = 0.05 }}\n"
            "leverage = {{ min = 1, max = 10 }}\nmargin_mode = [\"isolated\", \"cross\"]\n"
            "[scenarios]\nnames = [\"crash\"]\n")
    first = expand(load_spec(write(tmp_path, text.format(seed=3), "a.toml")))
    again = expand(load_spec(write(tmp_path, text.format(seed=3), "b.toml")))
    other = expand(load_spec(write(tmp_path, text.format(seed=4), "c.toml")))
    assert [run_hash(r) for r in first] == [run_hash(r) for r in again]
    assert [run_hash(r) for r in first] != [run_hash(r) for r in other]
    fractions = {dict(r.params)["collateral_fraction"] for r in first}
    assert all(D("0.2") <= f <= 1 and (f / D("0.05")) % 1 == 0 for f in fractions)
    assert len(fractions) > 5
    assert {dict(r.params)["leverage"] for r in first} <= set(range(1, 11))
    assert {dict(r.params)["margin_mode"] for r in first} == {"isolated", "cross"}


def test_flags_make_a_spec_without_a_file_and_override_one(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["sweep", "--scenario", "crash", "--grid",
                                      "leverage=1,3", "--seeds", "0-2", "--set", "spot_btc=2"])
    spec = load_spec(None, overrides(args))
    runs = expand(spec)
    assert len(runs) == 2 * 3
    assert {dict(r.params)["spot_btc"] for r in runs} == {D(2)}
    args = build_parser().parse_args(["sweep", str(write(tmp_path, SMALL)), "--seeds", "4,5"])
    assert {r.seed for r in expand(load_spec(args.spec, overrides(args)))} == {4, 5}


def test_the_run_hash_is_the_content_not_the_path(tmp_path: Path) -> None:
    source = (REPO / "fixtures" / "scenarios" / "crash.json").read_bytes()
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    a = tmp_path / "one" / "crash.json"
    b = tmp_path / "two" / "crash.json"
    a.write_bytes(source)
    b.write_bytes(source)
    run_a = RunSpec(ScenarioRef.from_file(a), 0, "binance_coinm", ())
    run_b = RunSpec(ScenarioRef.from_file(b), 0, "binance_coinm", ())
    assert run_hash(run_a) == run_hash(run_b)
    b.write_bytes(source + b"\n")  # the same scenario to the parser, another file
    assert run_hash(run_a) != run_hash(RunSpec(ScenarioRef.from_file(b), 0, "binance_coinm", ()))
    assert run_hash(calm(leverage=2)) != run_hash(calm(leverage=3))
    assert run_hash(calm(hedge_ratio=D("1.0"))) == run_hash(calm(hedge_ratio=D("1.00")))


# ---- one run ------------------------------------------------------------------------------------
def test_in_process_and_over_the_wire_give_the_identical_run() -> None:
    run = calm(leverage=3, collateral_fraction=D("0.5"))
    in_process = run_row(run)
    wire = run_row(run, over_wire=True)
    assert in_process["error"] == ""
    assert in_process["contracts"] > 0
    assert in_process["record_digest"] == wire["record_digest"]
    assert in_process["journal_digest"] == wire["journal_digest"]
    assert json.dumps(in_process, sort_keys=True) == json.dumps(wire, sort_keys=True)


def test_a_run_is_exactly_what_its_perpsim_hedge_command_runs(
        capsys: pytest.CaptureFixture[str]) -> None:
    run = calm(leverage=2, collateral_fraction=D("0.6"), topup_below_pct=D(20),
               hedge_ratio=D("1.0"))
    command = hedge_command(run)
    assert command == ("perpsim hedge --scenario calm --profile binance_coinm --seed 0 "
                       "--spot 5 --collateral 3 --hedge-ratio 1.0 --leverage 2 "
                       "--topup-below 20")
    args = build_parser().parse_args(command.split()[1:])
    assert repr(cli_hedge_config(args)) == repr(sweep_hedge_config(run))
    row = run_row(run)
    assert main([*command.split()[1:], "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for meta in ("scenario", "profile", "seed", "report"):
        printed.pop(meta)
    digest = hashlib.sha256(json.dumps(printed, sort_keys=True).encode()).hexdigest()
    assert digest == row["record_digest"]


def test_an_infeasible_run_is_a_row_with_its_error_not_a_crash() -> None:
    row = run_row(calm(leverage=1, collateral_fraction=D("0.1")))
    assert row["error"].startswith("PlanError")
    assert row["record_digest"] == ""


# ---- executors, results, resume -----------------------------------------------------------------
def test_resume_skips_the_runs_already_in_the_file(tmp_path: Path) -> None:
    output = tmp_path / "small.parquet"
    one_seed = load_spec(write(tmp_path, SMALL.replace("[2, 3]", "[2]")))
    first = run_sweep(one_seed, Executor(processes=1), output, progress=False)
    assert (first.total, first.skipped, first.ran) == (2, 0, 2)
    before = read_rows(output)
    grown = load_spec(write(tmp_path, SMALL))
    second = run_sweep(grown, Executor(processes=1), output, progress=False)
    assert (second.total, second.skipped, second.ran) == (4, 2, 2)
    after = read_rows(output)
    assert len(after) == 4
    for key, row in before.items():
        assert json.dumps(after[key], sort_keys=True) == json.dumps(row, sort_keys=True)
    third = run_sweep(grown, Executor(processes=1), output, progress=False)
    assert (third.skipped, third.ran) == (4, 0)


def test_a_run_the_machine_failed_runs_again_on_resume(tmp_path: Path) -> None:
    output = tmp_path / "small.parquet"
    spec = load_spec(write(tmp_path, SMALL.replace("[2, 3]", "[2]").replace("[1.0, 0.6]",
                                                                            "[1.0]")))
    run_sweep(spec, Executor(processes=1), output, progress=False)
    (good,) = read_rows(output).values()
    assert good["retry"] is False
    write_rows(output, [{**good, "error": "OSError: [Errno 24] Too many open files",
                         "retry": True, "record_digest": ""}])
    again = run_sweep(spec, Executor(processes=1), output, progress=False)
    assert (again.skipped, again.ran) == (0, 1)
    assert read_rows(output)[good["run_hash"]] == good
    assert environmental(OSError(24, "Too many open files"))
    assert environmental(ccxt.RequestTimeout("binancecoinm GET ..."))
    assert not environmental(ValueError("exit_below_usd 5 must be under exit_above_usd 4"))


def test_dask_local_cluster_gives_the_same_file_as_local_processes(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, SMALL))
    local = run_sweep(spec, Executor(processes=2), tmp_path / "local.parquet", progress=False)
    dask = run_sweep(spec, Executor(dask_workers=2), tmp_path / "dask.parquet", progress=False)
    assert local.ran == dask.ran == 4
    assert local.failed == 0
    assert (tmp_path / "local.parquet").read_bytes() == (tmp_path / "dask.parquet").read_bytes()


def test_a_local_cluster_serves_its_routes_on_a_free_loopback_port() -> None:
    # Dask's scheduler serves /metrics and /health on 8787 by default, even without a
    # dashboard: with 8787 taken (another Dask here) its fallback used to leak a socket.
    held = socket.socket()
    try:
        held.bind(("127.0.0.1", 8787))
        held.listen()
    except OSError:
        pass  # taken already: the case this is about
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            cluster = local_cluster(1)
            try:
                bound = [s.getsockname() for s in
                         cluster.scheduler.http_server._sockets.values()]
            finally:
                cluster.close()
    finally:
        held.close()
    assert bound
    assert all(host == "127.0.0.1" and port != 8787 for host, port in bound)


def test_the_report_is_one_offline_page(tmp_path: Path) -> None:
    rows = [run_row(calm(leverage=lev)) for lev in (1, 2)]
    rows.append(run_row(calm(leverage=1, collateral_fraction=D("0.1"))))
    page = render(rows, x="leverage", y="seed", title="small sweep", varied=["leverage"])
    assert "liquidation probability: seed × leverage" in page
    assert "worst hedged drawdown %: seed × leverage" in page
    assert "Funding P&amp;L per run" in page or "Funding P&L per run" in page
    assert rows[0]["hedge_command"] in page
    assert "could not run" in page
    assert "PlanError" in page
    assert get_plotlyjs() in page  # inlined: the page opens with no network
    assert "<script src=" not in page


def test_the_cli_runs_a_spec_and_writes_results_and_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    spec = write(tmp_path, SMALL.replace("[2, 3]", "[2]").replace("[1.0, 0.6]", "[1.0]"))
    assert main(["sweep", str(spec), "--workers", "1", "--quiet", "--report"]) == 0
    out = capsys.readouterr().out
    assert "1 runs (0 already there, 1 run in" in out
    rows = read_rows(tmp_path / "small.parquet")
    assert [row["leverage"] for row in rows.values()] == [2]
    assert (tmp_path / "small.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert main(["sweep", str(spec), "--report-only", "--report", "again.html"]) == 0
    assert (tmp_path / "again.html").is_file()
