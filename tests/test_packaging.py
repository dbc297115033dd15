"""Installed, perpsim owns one import name: ``perpsim``. The wheel is built for real
(``python -m build``) and installed next to a bot project that has its own ``strategy/``,
``api/``, ``sim/`` and ``fixtures/`` packages: the README's plugin example must pass there under
``pytest`` and ``python -m pytest``, and ``perpsim demo`` must run from that folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The folders a bot project typically has, which perpsim must never shadow or import.
BOT_PACKAGES = ("strategy", "api", "sim", "fixtures", "benchmarks")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """perpsim's wheel, built from this checkout with ``python -m build``."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                           "--outdir", str(out), str(ROOT)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = out.glob("perpsim-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (without its dependencies, which this environment has) into a folder
    that goes first on PYTHONPATH: the bot's subprocesses import this copy, not the checkout."""
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-compile", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return site


def readme_plugin_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [block for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
              if "def test_" in block and "perpsim_exchange" in block]
    assert blocks, "README.md has no pytest plugin example"
    return str(blocks[0])


@pytest.fixture(scope="module")
def bot_project(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bot author's project: packages named like perpsim's folders, and the README's test."""
    bot = tmp_path_factory.mktemp("bot")
    for name in BOT_PACKAGES:
        (bot / name).mkdir()
        (bot / name / "__init__.py").write_text(f'WHOSE = "the bot\'s own {name}"\n')
    # as most projects do, so that `pytest` (not only `python -m pytest`) imports the bot's
    # packages: exactly where top-level `strategy`/`api` from perpsim used to collide
    (bot / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    tests = bot / "tests"
    tests.mkdir()
    (tests / "test_my_bot.py").write_text(readme_plugin_example())
    (tests / "test_whose_packages.py").write_text(
        "import os\n\n\n"
        "def test_the_bots_packages_are_its_own():\n"
        f"    for name in {BOT_PACKAGES!r}:\n"
        "        module = __import__(name)\n"
        "        assert module.WHOSE == f\"the bot's own {name}\", module.__file__\n\n\n"
        "def test_perpsim_is_the_installed_wheel():\n"
        "    import perpsim\n"
        "    import perpsim.pytest_plugin\n"
        "    assert perpsim.__file__.startswith(os.environ['PERPSIM_SITE']), perpsim.__file__\n")
    return bot


def bot_env(site: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(site), "PERPSIM_SITE": str(site)}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def test_the_wheel_holds_nothing_outside_perpsim(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    dist_name, version = wheel.name.split("-")[:2]
    assert {name.split("/")[0] for name in names} == {"perpsim", f"{dist_name}-{version}.dist-info"}
    # the repository's folders are inside, as perpsim.sim, perpsim.api, ...
    for folder in ("sim", "api", "strategy", "fixtures", "benchmarks"):
        assert f"perpsim/{folder}/__init__.py" in names
    assert "perpsim/fixtures/profiles/binance_coinm.json" in names
    assert "perpsim/api/ui/static/dashboard.js" in names
    top_level = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    for listing in top_level:
        assert zipfile.ZipFile(wheel).read(listing).decode().split() == ["perpsim"]


@pytest.mark.parametrize("runner", [["pytest"], ["python", "-m", "pytest"]],
                         ids=["pytest", "python -m pytest"])
def test_a_bot_project_runs_the_readme_example(runner: list[str], bot_project: Path,
                                                installed: Path) -> None:
    command = [str(BIN / runner[0]), *runner[1:], "-q", "-p", "no:cacheprovider",
               "-W", "error", "tests"]
    done = subprocess.run(command, cwd=bot_project, env=bot_env(installed),
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "4 passed" in done.stdout


def test_perpsim_demo_runs_from_any_folder(bot_project: Path, installed: Path,
                                           tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    # The bundled 3-day scenario: read from the wheel's package data like the default 30-day
    # one (whose whole run tests/test_cli_hedge.py checks already), in a tenth of the time.
    done = subprocess.run([sys.executable, "-m", "perpsim", "demo", "--scenario", "calm",
                           "--json", "--report", str(report)], cwd=bot_project,
                          env=bot_env(installed),
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert '"liquidated": false' in done.stdout
    assert report.stat().st_size > 10_000
