"""The real Binance COIN-M clients, pinned exactly, each through one full hedge cycle over REST
and WebSocket against a live perpsim server: python-binance, binance-futures-connector, ccxt
for Node and ccxt for Python (which tests/test_hedge_cycle.py and tests/test_api_*.py also
drive in depth).

Each client runs its script (tests/clients/, tests/node/) in a subprocess pointed at perpsim by
constructor arguments / URL settings only, and prints a JSON report of what it saw; the test
checks the report against the engine. python-binance and the connector both install a package
named ``binance``, so the connector lives in its own ``--target`` folder (installed here from
the pin in pyproject.toml's ``connector`` extra); ccxt for Node is installed by ``npm ci`` from
tests/node/package-lock.json. Nothing is skipped: a missing npm or a failed install fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from perpsim.cli import main
from perpsim.clients import SNIPPETS, client_snippets

from conftest import Market

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CLIENTS = TESTS / "clients"
NODE_DIR = TESTS / "node"
CONNECTOR_DIR = TESTS / ".clients" / "connector"
SYMBOL = "BTCUSD_PERP"
SCRIPT_TIMEOUT_S = 240
POSITION_ROW_KEYS = "s,pa,ep,cr,up,mt,iw,ps"
HEDGE_CONTRACTS, REDUCE_CONTRACTS = 590, 10  # as the client scripts trade


def _extra_pin(extra: str, package: str) -> str:
    """``package==version`` as pinned in pyproject.toml's optional dependency ``extra``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["optional-dependencies"][extra]:
        if requirement.split("==")[0].strip() == package:
            assert "==" in requirement, f"{package} must be pinned exactly: {requirement!r}"
            return requirement.split("#")[0].strip()
    raise AssertionError(f"pyproject.toml's {extra!r} extra does not list {package}")


@pytest.fixture(scope="session")
def connector_site() -> Path:
    """binance-futures-connector in its own folder (its ``binance`` package would shadow
    python-binance's); installed once, again only when the pin changes."""
    pin = _extra_pin("connector", "binance-futures-connector")
    stamp = CONNECTOR_DIR / ".pin"
    if not stamp.exists() or stamp.read_text() != pin:
        shutil.rmtree(CONNECTOR_DIR, ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--target", str(CONNECTOR_DIR), pin],
            capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"installing {pin} failed:\n{done.stdout}{done.stderr}"
        stamp.write_text(pin)
    return CONNECTOR_DIR


@pytest.fixture(scope="session")
def node_ccxt() -> Path:
    """ccxt for Node as tests/node/package-lock.json pins it (npm ci when it differs)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail("node and npm are needed for the ccxt (Node) client test and were not "
                    "found on PATH: install Node.js 20 (Debian: apt-get install nodejs npm)")
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/ccxt"]["version"]
    installed = NODE_DIR / "node_modules" / "ccxt" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != wanted:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                              cwd=NODE_DIR, capture_output=True, text=True, timeout=600,
                              check=False)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}{done.stderr}"
    return Path(node)


def _run(command: list[str], market: Market, creds: dict[str, str],
         env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run([*command, market.base_url, creds["api_key"], creds["api_secret"]],
                          capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S,
                          env={**os.environ, **(env or {})}, check=False)
    assert done.returncode == 0, f"{command[-1]} failed:\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _check_cycle(market: Market, creds: dict[str, str], report: dict[str, Any]) -> None:
    """The report agrees with the engine: every step happened, and happened as reported."""
    ex = market.state.exchange
    account_id = creds["account_id"]
    assert SYMBOL in report["symbols"]
    assert Decimal(report["bid"]) < Decimal(report["ask"])
    assert Decimal(report["mark_price"]) > 0
    assert report["leverage"] == 1
    if report["stream_leverage_updates"] is not None:  # ccxt does not surface the event
        assert report["stream_leverage_updates"][-1] == 1
    assert report["post_only"] == ["NEW", "GTX", "CANCELED"]
    fills = [e.payload for e in ex.journal if e.type == "order.update"
             and e.payload["account_id"] == account_id and e.payload["execution"] == "TRADE"]
    filled_ids = {p["order_id"] for p in fills}
    assert {report["hedge_order_id"], report["reduce_order_id"]} <= filled_ids
    # Every fill reached the user stream: the hedge, the reduce-only, the triggered stop.
    assert set(report["stream_filled_order_ids"]) == filled_ids
    assert len(filled_ids) == 3
    stop = ex.algo_orders[report["algo_id"]]
    assert stop.account_id == account_id
    assert report["stream_algo_statuses"][0] == "NEW"
    assert report["stream_algo_statuses"][-1] in ("TRIGGERED", "FINISHED")
    payments = [Decimal(str(e.payload["amount"])) for e in ex.journal.expanded()
                if e.type == "funding.payment" and e.payload["account_id"] == account_id
                and Decimal(str(e.payload["amount"])) != 0]
    assert payments, "the advance crossed a funding time with an open position"
    assert [Decimal(x) for x in report["funding_income"]] == payments
    assert report["stream_funding_fee_updates"] == len(payments)
    assert report["funding_rates"], "the settled rate is in the funding history"
    assert report["stream_position_row_keys"] == [POSITION_ROW_KEYS]
    # /futures/data/openInterestHist at 08:00: the 580 contracts still short then (the
    # synthetic market long as many).
    assert report["open_interest_hist"] == str(HEDGE_CONTRACTS - REDUCE_CONTRACTS)
    assert report["stream_mark_frames"] >= 1
    assert report["position_after"] == "0"
    position = ex.accounts[account_id].positions.get(SYMBOL)
    assert position is None or position.qty_contracts == 0


def test_python_binance_hedge_cycle(market: Market) -> None:
    creds = market.account({"BTC": "1"})
    report = _run([sys.executable, str(CLIENTS / "python_binance_cycle.py")], market, creds)
    assert report["client"] == "python-binance"
    _check_cycle(market, creds, report)
    assert report["premium_index_klines"] == 2
    assert report["stream_kline_frames"] >= 1  # a raw /ws/<pair>_perpetual@continuousKline_1m
    # It synced its clock to the simulated server time (2024), not the wall clock.
    assert report["timestamp_offset_ms"] < -86_400_000
    assert report["stream_names"] == [f"{SYMBOL.lower()}@markPrice@1s"]  # a combined stream


def test_binance_futures_connector_hedge_cycle(market: Market, connector_site: Path) -> None:
    creds = market.account({"BTC": "1"})
    env = {"PYTHONPATH": os.pathsep.join([str(connector_site), str(CLIENTS)])}
    report = _run([sys.executable, str(CLIENTS / "connector_cycle.py")], market, creds, env)
    assert report["client"] == "binance-futures-connector"
    assert report["connector_version"] == _extra_pin("connector", "binance-futures-connector"
                                                     ).split("==")[1]
    _check_cycle(market, creds, report)
    assert report["stream_names"] == [f"{SYMBOL.lower()}@markPrice@1s"]  # a combined stream
    assert report["basis_rows"] == 2


def test_ccxt_node_hedge_cycle(market: Market, node_ccxt: Path) -> None:
    creds = market.account({"BTC": "2"})  # ccxt adds isolated margin in whole coins
    report = _run([str(node_ccxt), str(NODE_DIR / "hedge_cycle.mjs")], market, creds)
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert report["client"] == "ccxt-node " + lock["packages"]["node_modules/ccxt"]["version"]
    _check_cycle(market, creds, report)


# ---- perpsim clients: the printed snippets work -------------------------------------------


def test_clients_prints_every_client_for_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clients", "--url", "http://127.0.0.1:9999"]) == 0
    out = capsys.readouterr().out
    for name in SNIPPETS:
        assert name.replace("-", " ").split()[0] in out
    assert 'base_url="http://127.0.0.1:9999"' in out  # the connector's constructor argument
    assert 'DSTREAM_URL = "ws://127.0.0.1:9999/"' in out
    assert main(["clients", "--url", "ftp://x"]) == 2


def test_python_binance_snippet_reaches_the_server(market: Market) -> None:
    creds = market.account()
    program = (f"API_KEY, API_SECRET = {creds['api_key']!r}, {creds['api_secret']!r}\n"
               + client_snippets(market.base_url, ["python-binance"])
               + "import json\n"
               "btc = [b['balance'] for b in client.futures_coin_account_balance()\n"
               "       if b['asset'] == 'BTC']\n"
               "print(json.dumps({'time': client.futures_coin_time()['serverTime'], "
               "'btc': btc}))\n"
               "client.close_connection()\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"time": market.state.exchange.now_ms,
                                       "btc": ["1.00000000"]}


def test_ccxt_node_snippet_reaches_the_server(market: Market, node_ccxt: Path,
                                              tmp_path: Path) -> None:
    creds = market.account()
    script = NODE_DIR / f"snippet-{tmp_path.name}.mjs"  # beside node_modules, so ccxt resolves
    script.write_text(
        f"const API_KEY = {json.dumps(creds['api_key'])};\n"
        f"const API_SECRET = {json.dumps(creds['api_secret'])};\n"
        + client_snippets(market.base_url, ["ccxt-node"])
        + "const balance = await ex.fetchBalance();\n"
        "console.log(JSON.stringify({time: await ex.fetchTime(), btc: balance.BTC.total}));\n")
    try:
        done = subprocess.run([str(node_ccxt), str(script)], capture_output=True, text=True,
                              timeout=120, check=False)
    finally:
        script.unlink()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"time": market.state.exchange.now_ms, "btc": 1}


def test_ccxt_python_hedge_cycle(market: Market) -> None:
    creds = market.account({"BTC": "2"})  # ccxt adds isolated margin in whole coins
    report = _run([sys.executable, str(CLIENTS / "ccxt_cycle.py")], market, creds)
    assert report["client"] == "ccxt 4.5.90"
    _check_cycle(market, creds, report)
