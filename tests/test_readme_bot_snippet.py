"""The README's "Your own bot against perpsim" snippet runs as pasted, against a server started
the way the README starts one (``perpsim serve --scenario crash --clock stepped``), in a fresh
Python process that sees only the installed package."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from perpsim.api.app import create_app
from perpsim.api.server import serve_in_thread
from perpsim.api.state import ServerConfig, ServerState

ROOT = Path(__file__).resolve().parents[1]
README_BASE = "http://127.0.0.1:8765"


def bot_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your own bot against perpsim", 1)[1].split("\n## ", 1)[0]
    return str(re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0])  # the first


def test_the_readme_bot_snippet_runs_as_pasted(tmp_path: Path) -> None:
    snippet = bot_snippet()
    assert snippet.count(README_BASE) == 1  # the one line a reader adapts: the server's URL
    state = ServerState(ServerConfig(scenario="crash", clock="stepped"))
    with serve_in_thread(create_app(state=state)) as base_url:
        script = tmp_path / "my_bot.py"
        script.write_text(snippet.replace(README_BASE, base_url), encoding="utf-8")
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("closed 590.0 "), done.stdout
    ex = state.exchange
    (account_id,) = ex.accounts
    assert ex.position(account_id, "BTCUSD_PERP").qty_contracts == -590
    assert ex.accounts[account_id].positions["BTCUSD_PERP"].margin_mode == "isolated"


def test_the_serve_banners_ccxt_lines_run_as_printed() -> None:
    from perpsim.cli import ccxt_snippet

    first_two = "\n".join(ccxt_snippet("http://127.0.0.1:8765", "k", "s").splitlines()[:2])
    scope: dict[str, object] = {}
    exec(first_two, scope)  # the import and connect() lines `perpsim serve` prints
    assert type(scope["ex"]).__name__ == "binancecoinm"
