"""CI runs the README's test command and nothing else: `.ci/run` is `make test` (which itself
installs what the browser test needs), so a green CI means the README's command works."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", quick, flags=re.DOTALL)
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, commands  # the quick start is exactly two commands
    (test,) = [c for c in commands if "test" in c]
    return test


def test_ci_runs_the_readmes_test_command_and_nothing_else() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = [line.strip() for line in script.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    setup = {"set -euo pipefail", 'cd "$(dirname "$0")/.."'}
    assert [s for s in steps if s not in setup] == [readme_test_command()] == ["make test"]


def test_make_test_installs_the_browser_first() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (prerequisites,) = re.findall(r"^test:(.*)$", makefile, flags=re.MULTILINE)
    assert "chromium" in prerequisites.split()
    recipe = makefile.split("\nchromium:", 1)[1].split("\n\n", 1)[0]
    assert "apt-get" in recipe
    assert "install" in recipe
    assert 'id -u)" = 0' in recipe  # only as root
