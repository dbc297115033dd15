"""perpsim's pytest plugin (perpsim/pytest_plugin.py), run the way a bot author runs it: inner
pytest sessions (pytester) on test files that use only the plugin's fixtures — the README's
example first, as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from perpsim.replay import EXIT_EQUAL, run

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "perpsim.pytest_plugin"

# The README's example (section "Test your bot with the pytest plugin"), verbatim.
README_EXAMPLE = '''\
import ccxt
import pytest

SYMBOL = "BTC/USD:BTC"


def hedge(exchange, btc):
    """The bot under test: short the USD value of `btc` (one contract is $100)."""
    mark = exchange.fetch_mark_price(SYMBOL)["markPrice"]
    return exchange.create_order(SYMBOL, "market", "sell", int(btc * mark / 100))


def test_the_short_earns_funding(perpsim, perpsim_exchange):
    perpsim.prices(index="60000", perp="60060")    # perp over the index: shorts receive
    hedge(perpsim_exchange, 0.5)                   # 300 contracts
    perpsim.advance(hours=8)                       # to the next funding time
    (payment,) = perpsim.journal("funding.payment")
    assert float(payment["amount"]) > 0


def test_a_failed_order_reaches_the_bot(perpsim, perpsim_exchange):
    perpsim.add_fault(kind="http_5xx", status=503, path="/dapi/v1/order", count=1)
    with pytest.raises(ccxt.OperationFailed):      # Binance's -1001: "please try again"
        hedge(perpsim_exchange, 0.5)
    hedge(perpsim_exchange, 0.5)                   # the retry goes through
    assert len(perpsim.journal("order.update")) == 2   # NEW + filled: one order, not two
'''


@pytest.fixture(autouse=True, scope="module")
def _server_stack_imported() -> None:
    """Import everything the plugin's server and clients use before any inner session: pytester
    runs them in this process and then drops the modules they imported first, and compiled
    extensions (httptools, uvloop) do not survive a re-import intact (their exception classes
    change identity, and uvicorn then fails every WebSocket upgrade). httpx imports httpcore
    only when its first client is built: dropped and re-imported, httpcore's errors are no
    longer the ones httpx maps, and a later test's refused connection escapes as a raw
    httpcore error (test_durability's start-up poll, run after this module, failed so)."""
    import httpx
    import uvicorn

    from perpsim import pytest_plugin
    from perpsim.api.app import create_app
    from perpsim.strategy import connect

    assert pytest_plugin.Perpsim is not None
    assert connect.connect is not None
    httpx.Client().close()  # imports httpcore and httpx's transport now, for the whole run
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=0)
    config.load()
    factory = config.get_loop_factory()
    if factory is not None:
        factory().close()


def plugin_args() -> list[str]:
    """``-p perpsim.pytest_plugin`` unless the installed entry point loads it already."""
    installed = any(ep.value == PLUGIN for ep in metadata.entry_points(group="pytest11"))
    return [] if installed else ["-p", PLUGIN]


def inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*plugin_args(), "-p", "no:cacheprovider", "-W", "error", *args)


def readme_example() -> str | None:
    """The README's python block that tests a bot with the plugin's fixtures, if any."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        if "def test_" in block and "perpsim_exchange" in block:
            return str(block)
    return None


def test_the_example_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_my_bot=README_EXAMPLE)
    inner(pytester).assert_outcomes(passed=2)


def test_the_readme_example_passes_as_written(pytester: pytest.Pytester) -> None:
    example = readme_example()
    assert example is not None, "README.md has no pytest plugin example (a ```python block " \
        "with a test using perpsim_exchange)"
    pytester.makepyfile(test_my_bot=example)
    inner(pytester).assert_outcomes(passed=2)


def test_settings_come_from_marker_command_line_and_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nperpsim_seed = 3\n")
    pytester.makepyfile(test_settings=textwrap.dedent('''
        import pytest

        def test_from_the_command_line(perpsim):
            state = perpsim.state()
            assert (state["scenario"], state["seed"]) == ("crash", 3)

        @pytest.mark.perpsim(scenario="manual", seed=5, balances={"BTC": "2"})
        def test_from_the_marker(perpsim, perpsim_account):
            state = perpsim.state()
            assert (state["scenario"], state["seed"]) == ("manual", 5)
            info = perpsim.account_info(perpsim_account["account_id"])
            assert info["balances"]["BTC"] == "2"
    '''))
    inner(pytester, "--perpsim-scenario=crash").assert_outcomes(passed=2)


def test_every_test_gets_a_fresh_market_without_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_isolation=textwrap.dedent('''
        SYMBOL = "BTC/USD:BTC"

        def test_first(perpsim, perpsim_exchange, perpsim_server):
            assert perpsim.base_url == perpsim_server.base_url
            perpsim_exchange.create_order(SYMBOL, "market", "buy", 10)
            perpsim.add_fault(kind="latency", ms=1)
            perpsim.advance(minutes=5)

        def test_second(perpsim, perpsim_account):
            assert perpsim_account["account_id"] == "1"  # the first test's account is gone
            assert perpsim.journal("order.update") == []
            assert perpsim.faults()["faults"] == []
            assert perpsim.state()["now"] == 1704067200000
    '''))
    inner(pytester).assert_outcomes(passed=2)


def test_async_and_pro_clients(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_clients=textwrap.dedent('''
        import asyncio

        def test_async_and_pro(perpsim, perpsim_account):
            async def main():
                async with perpsim.ccxt(perpsim_account, mode="async") as ex:
                    balance = await ex.fetch_balance()
                pro = perpsim.ccxt(perpsim_account, mode="pro")
                try:
                    ticker = await asyncio.wait_for(pro.watch_mark_price("BTC/USD:BTC"), 10)
                finally:
                    await pro.close()
                return balance["total"]["BTC"], ticker["markPrice"]

            assert asyncio.run(main()) == (1.0, 60000.0)
    '''))
    inner(pytester).assert_outcomes(passed=1)


def test_record_keeps_failing_tests_and_they_replay(pytester: pytest.Pytester,
                                                    tmp_path: Path) -> None:
    pytester.makepyfile(test_recorded=textwrap.dedent('''
        def test_passes(perpsim, perpsim_exchange):
            perpsim_exchange.create_order("BTC/USD:BTC", "market", "sell", 10)

        def test_fails(perpsim, perpsim_exchange):
            perpsim_exchange.create_order("BTC/USD:BTC", "market", "sell", 20)
            perpsim.advance(hours=9)
            assert perpsim.journal("funding.payment") == []
    '''))
    target = tmp_path / "recordings"
    result = inner(pytester, f"--perpsim-record={target}")
    result.assert_outcomes(passed=1, failed=1)
    (kept,) = target.iterdir()
    assert kept.name == "test_recorded.py_test_fails.jsonl"
    assert run(kept) == EXIT_EQUAL
    # the failure's report names the file and the command that replays it, once per test
    output = result.stdout.str()
    failure = output[output.index("test_fails"):output.index("perpsim recordings of failing")]
    assert "perpsim recording" in failure
    assert f"recorded to {kept}" in failure
    assert f"replay it: perpsim replay {kept}" in failure
    summary = output[output.index("perpsim recordings of failing tests"):]
    assert summary.count("perpsim replay ") == 1
    assert f"perpsim replay {kept}" in summary
    assert "test_passes" not in summary


def test_autoloads_from_its_entry_point(tmp_path: Path) -> None:
    """What the ``pytest11`` entry point does once installed, proved with a stand-in dist."""
    dist = tmp_path / "site" / "perpsim_plugin_probe-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: perpsim-plugin-probe\n"
                                   "Version: 0.0\n")
    (dist / "entry_points.txt").write_text(f"[pytest11]\n{PLUGIN} = {PLUGIN}\n")
    tests = tmp_path / "bot"
    tests.mkdir()
    (tests / "test_my_bot.py").write_text(README_EXAMPLE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path / "site"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "error", str(tests)], cwd=tests, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_a_bybit_profile_gives_a_ccxt_bybit(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bybit_bot=textwrap.dedent('''
        import ccxt
        import pytest

        SYMBOL = "BTC/USD:BTC"

        @pytest.mark.perpsim(profile="bybit_inverse")
        def test_the_short_earns_funding_on_bybit(perpsim, perpsim_exchange):
            assert isinstance(perpsim_exchange, ccxt.bybit)
            perpsim.prices(index="60000", perp="60060", symbol="BTCUSD")
            perpsim_exchange.create_order(SYMBOL, "market", "sell", 30000)  # 1 USD contracts
            perpsim.advance(hours=8)
            (payment,) = perpsim_exchange.fetch_funding_history(SYMBOL)
            assert payment["amount"] < 0  # Bybit's execFee: negative when received
    '''))
    inner(pytester).assert_outcomes(passed=1)
