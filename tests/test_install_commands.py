"""The README's "Install into your own project" commands work as written: from a path and from
a git URL (the wheel form is tests/test_packaging.py's). Each installs into a throwaway folder
(``--target``, ``--no-deps``: this environment has the dependencies) that must then hold the one
``perpsim`` package with its data, the pytest plugin's entry point and the command."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def install_commands() -> list[list[str]]:
    """The ``pip install`` lines of the README's install section, as argument lists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Install into your own project", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    commands = []
    for line in block.splitlines():
        for part in line.split("#", 1)[0].split("&&"):
            words = shlex.split(part)
            if words[:2] == ["pip", "install"]:
                commands.append(words[2:])
    return commands


def test_the_readme_shows_the_three_ways() -> None:
    args = [" ".join(a) for a in install_commands()]
    assert "/path/to/perpsim" in args
    assert "perpsim @ git+<your clone URL>" in args
    assert "/path/to/perpsim/dist/perpsim-*.whl" in args


def pip_install(requirement: str, target: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-compile", "--no-build-isolation", "--target", str(target),
                           requirement], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def assert_one_perpsim(target: Path) -> None:
    tops = {p.name for p in target.iterdir()
            if not p.name.endswith((".dist-info", ".egg-info")) and p.name != "bin"}
    assert tops == {"perpsim"}, tops
    assert (target / "perpsim" / "fixtures" / "profiles" / "binance_coinm.json").is_file()
    assert (target / "perpsim" / "api" / "ui" / "static" / "dashboard.js").is_file()
    (dist,) = target.glob("perpsim-*.dist-info")
    entry_points = (dist / "entry_points.txt").read_text()
    assert "[pytest11]" in entry_points
    assert "perpsim.pytest_plugin" in entry_points
    assert "perpsim = perpsim.cli:main" in entry_points


def test_install_from_a_path(tmp_path: Path) -> None:
    assert ["/path/to/perpsim"] in install_commands()
    pip_install(str(ROOT), tmp_path / "site")
    assert_one_perpsim(tmp_path / "site")


def test_install_from_a_git_url(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of perpsim")
    (url_form,) = [a[0] for a in install_commands() if "git+" in a[0]]
    # A clone of this checkout's committed state stands in for your clone's URL.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
                   check=True, capture_output=True, timeout=300)
    pip_install(url_form.replace("<your clone URL>", clone.as_uri()), tmp_path / "site")
    assert_one_perpsim(tmp_path / "site")
