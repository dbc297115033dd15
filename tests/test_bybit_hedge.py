"""The hedging client on the ``bybit_inverse`` profile: ``perpsim hedge`` and ``perpsim demo``
run through ccxt.bybit over the Bybit v5 wire (the profile's default dialect), ``--dialect
binance_coinm`` still takes them over Binance's, and a sweep's in-process runs speak v5 too.

Which wire a run used is read from the requests the server answered (an ASGI wrapper around
the app the CLI builds, or the in-process transport's calls)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from perpsim.sweep.run import RunSpec, ScenarioRef, run_row

from cli_helpers import run_main

D = Decimal
BINANCE_PREFIXES = ("/dapi/", "/api/", "/sapi/", "/fapi/")
MARKETS: list[Any] = []  # the ServerStates the recorded apps served
# The coin hedged: 30,000 of Bybit's 1 USD contracts in 15 slices of 2,000 (the default 5 BTC
# makes 150 slices each way, which shows nothing more and costs most of this module's time).
SPOT = "0.5"


@pytest.fixture
def wire_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of every HTTP request the apps built by ``create_app`` answer (control plane
    included), in order; also those reaching an app in-process (perpsim.inprocess)."""
    import perpsim.api.app as app_module
    import perpsim.inprocess as inprocess

    paths: list[str] = []
    real_create = app_module.create_app

    def recording_app(*args: Any, **kwargs: Any) -> Any:
        app = real_create(*args, **kwargs)
        MARKETS.append(kwargs["state"])

        @app.middleware("http")
        async def note(request: Any, call_next: Any) -> Any:
            paths.append(request.url.path)
            return await call_next(request)

        return app

    real_call = inprocess.call_app

    async def recording_call(app: Any, method: str, path: str, *rest: Any) -> Any:
        paths.append(path)
        return await real_call(app, method, path, *rest)

    MARKETS.clear()
    monkeypatch.setattr(app_module, "create_app", recording_app)
    monkeypatch.setattr(inprocess, "call_app", recording_call)
    return paths


def venue_paths(paths: list[str], prefixes: tuple[str, ...]) -> list[str]:
    """The venue (non-control) paths, checked to be all under ``prefixes`` and not none."""
    used = [p for p in paths if not p.startswith("/control/")]
    assert used
    strays = sorted({p for p in used if not p.startswith(prefixes)})
    assert strays == []
    return used


def _funding_events(result: dict[str, Any]) -> list[tuple[int, Decimal]]:
    return [(int(e["time"]), D(e["amount"])) for e in result["events"]
            if e["type"] == "funding.payment"]


def _sane_hedge(result: dict[str, Any]) -> None:
    """Hedged value near the start value, the attribution closing (no unexplained coin), and
    every coin back in the spot wallet at the end (the withdrawal moved all of it)."""
    (market,) = MARKETS
    ex = market.exchange
    (account_id,) = ex.accounts
    assert ex.wallet_balance(account_id, "BTC") == 0
    assert ex.spot_balance(account_id, "BTC") == D(result["end_btc"])
    start, hedged = D(result["start_value_usd"]), D(result["end_value_usd_hedged"])
    assert abs(hedged - start) / start < D("0.02"), (start, hedged)
    assert result["liquidated"] is False
    assert result["contracts"] > 0
    assert D(result["fees_btc"]) > 0
    assert abs(D(result["other_btc"])) <= D("0.00000010"), result["other_btc"]


def test_hedge_on_bybit_inverse_runs_over_v5_and_funding_follows_the_path(
        capsys: pytest.CaptureFixture[str], wire_paths: list[str]) -> None:
    """funding_flip: 2 days at a premium (shorts receive), then 2 at a discount (shorts pay)."""
    code, out, err = run_main(capsys, "hedge", "--profile", "bybit_inverse", "--scenario",
                              "funding_flip", "--spot", SPOT, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["profile"] == "bybit_inverse"
    used = venue_paths(wire_paths, ("/v5/",))
    for needed in ("/v5/order/create", "/v5/execution/list", "/v5/position/list",
                   "/v5/asset/transfer/inter-transfer", "/v5/position/switch-isolated",
                   "/v5/position/closed-pnl", "/v5/account/wallet-balance"):
        assert needed in used, needed
    _sane_hedge(result)
    payments = _funding_events(result)
    flip_ms = result["start_time"] + 2 * 86_400_000
    early = [amount for time_ms, amount in payments if time_ms <= flip_ms]
    late = [amount for time_ms, amount in payments if time_ms > flip_ms + 8 * 3_600_000]
    assert early
    assert all(amount > 0 for amount in early), early
    assert late
    assert all(amount < 0 for amount in late), late
    assert D(result["funding_btc"]) == sum((amount for _, amount in payments), D(0))


def test_demo_on_bybit_inverse_writes_its_report_over_v5(
        capsys: pytest.CaptureFixture[str], wire_paths: list[str], tmp_path: Path) -> None:
    report = tmp_path / "bybit-demo.html"
    code, out, err = run_main(capsys, "demo", "--profile", "bybit_inverse", "--scenario", "calm",
                              "--report", str(report), "--spot", SPOT, "--json")
    assert code == 0, err
    result = json.loads(out)
    venue_paths(wire_paths, ("/v5/",))
    _sane_hedge(result)
    assert D(result["funding_btc"]) > 0  # calm: perp over the index, the short receives
    assert report.is_file()
    assert "bybit_inverse" in report.read_text(encoding="utf-8")


def _short_path(tmp_path: Path) -> Path:
    """Twelve hours of a gently rising index, one row an hour."""
    rows = ["time,index"] + [f"2024-01-01T{hour:02d}:00:00Z,{60000 + 25 * hour}"
                             for hour in range(13)]
    path = tmp_path / "twelve_hours.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_dialect_binance_coinm_runs_the_bybit_profile_over_binance(
        capsys: pytest.CaptureFixture[str], wire_paths: list[str], tmp_path: Path) -> None:
    code, out, err = run_main(capsys, "hedge", "--profile", "bybit_inverse", "--dialect",
                              "binance_coinm", "--scenario", str(_short_path(tmp_path)),
                              "--spot", SPOT, "--json")
    assert code == 0, err
    used = venue_paths(wire_paths, BINANCE_PREFIXES)
    assert "/dapi/v1/order" in used
    assert json.loads(out)["contracts"] > 0


def test_an_unknown_dialect_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "hedge", "--scenario", "calm", "--dialect", "ftx")
    assert code == 2
    assert out == ""
    assert "dialect must be one of binance_coinm, bybit_v5, got 'ftx'" in err


def test_a_sweep_run_on_bybit_inverse_speaks_v5_in_process_as_over_the_wire(
        wire_paths: list[str], tmp_path: Path) -> None:
    run = RunSpec(scenario=ScenarioRef.from_file(_short_path(tmp_path)), seed=0,
                  profile="bybit_inverse", params=(("leverage", 2), ("spot_btc", D(SPOT))))
    in_process = run_row(run)
    assert in_process["error"] == ""
    assert in_process["contracts"] > 0
    venue_paths(wire_paths, ("/v5/",))
    wire = run_row(run, over_wire=True)
    assert in_process["record_digest"] == wire["record_digest"]
    assert in_process["journal_digest"] == wire["journal_digest"]


def test_a_liquidated_isolated_hedge_accounts_for_the_clearance_as_a_fee(
        capsys: pytest.CaptureFixture[str], wire_paths: list[str]) -> None:
    # squeeze with thin isolated margin and no top-ups: the short is taken over, and what its
    # margin held beyond the loss at the bankruptcy price goes to the insurance fund. Bybit
    # charges that with the BustTrade (execFee): the attribution has nothing left over.
    code, out, err = run_main(capsys, "hedge", "--profile", "bybit_inverse", "--scenario",
                              "squeeze", "--spot", SPOT, "--collateral", "0.15", "--leverage",
                              "5", "--no-topup", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["liquidated"] is True
    (market,) = MARKETS
    ex = market.exchange
    (account_id,) = ex.accounts
    posted: dict[str, Decimal] = {}
    for posting in ex.ledger.history_of(account_id):
        if posting.reason in ("commission", "liquidation_clearance"):
            posted[posting.reason] = posted.get(posting.reason, D(0)) + posting.amount
    assert posted["liquidation_clearance"] > 0  # the case this test is about
    assert D(result["fees_btc"]) == posted["commission"] + posted["liquidation_clearance"]
    assert D(result["other_btc"]) == 0
