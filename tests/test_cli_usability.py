"""What a newcomer meets first: ``perpsim --version``, a bare ``perpsim``, help that states every
default, "did you mean" for mistyped names, and ``perpsim serve`` on a busy port or a bad host."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from perpsim import __version__
from perpsim.api.app import create_app
from perpsim.api.state import ServerConfig, ServerState
from perpsim.cli import build_parser
from perpsim.teach import UnknownTopic, lesson_module

from api_helpers import AsgiClient
from cli_helpers import one_error_line, run_main


# ---- --version, bare perpsim, help ------------------------------------------------------------
def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "--version")
    assert code == 0
    assert out.strip() == f"perpsim {__version__}"


def test_a_bare_perpsim_prints_the_help_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys)
    assert code == 0
    assert err == ""
    assert out.startswith("usage: perpsim")
    for command in ("serve", "hedge", "demo", "teach", "replay", "bench"):
        assert re.search(rf"^\s+{command}\s+\S", out, re.MULTILINE), command


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _all_commands(parser: argparse.ArgumentParser, prefix: str = ""
                  ) -> dict[str, argparse.ArgumentParser]:
    """Every sub-command, nested ones too ("data import"), by its full name."""
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out[f"{prefix}{name}"] = child
                out.update(_all_commands(child, f"{prefix}{name} "))
    return out


def _shown(default: object) -> str:
    """How a default is written in a help text."""
    return str(default)


def test_every_option_of_every_subcommand_states_its_default() -> None:
    commands = _all_commands(build_parser())
    assert {"serve", "hedge", "demo", "teach", "replay", "bench"} <= set(commands)
    missing = []
    checked = 0
    for name, parser in commands.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction
                          | argparse._SubParsersAction):
                continue
            if action.required or (not action.option_strings and action.nargs not in ("?", "*")):
                continue  # a required option or positional has no default to state
            checked += 1
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            text = action.help or ""
            if "default" not in text:
                missing.append(f"{label}: no default in {text!r}")
            elif action.default not in (None, False, True, []) and \
                    _shown(action.default) not in text:
                missing.append(f"{label}: default {action.default!r} not in {text!r}")
    assert checked > 30
    assert not missing, "\n".join(missing)


def test_the_help_of_every_subcommand_prints(capsys: pytest.CaptureFixture[str]) -> None:
    for name in _all_commands(build_parser()):
        code, out, _ = run_main(capsys, *name.split(), "--help")
        assert code == 0
        assert out.startswith(f"usage: perpsim {name}")


# ---- did you mean ------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "suggestion"), [
    (["hedge", "--scenario", "crsh"], "unknown scenario 'crsh' (did you mean 'crash'?)"),
    (["demo", "--scenario", "calm30d"], "(did you mean 'calm_30d'?)"),
    (["hedge", "--scenario", "calm", "--profile", "bybit"],
     "unknown profile 'bybit' (did you mean 'bybit_inverse'?)"),
    (["serve", "--profile", "bitmex", "--port", "0"], "(did you mean 'bitmex_xbtusd'?)"),
    (["teach", "liquidaton"], "unknown topic 'liquidaton' (did you mean 'liquidation'?)"),
])
def test_a_mistyped_name_suggests_the_closest(capsys: pytest.CaptureFixture[str],
                                              argv: list[str], suggestion: str) -> None:
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert out == ""
    assert suggestion in one_error_line(err)


def test_no_suggestion_for_a_name_like_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "hedge", "--scenario", "qwxz")
    assert code == 2
    line = one_error_line(err)
    assert "unknown scenario 'qwxz'" in line
    assert "did you mean" not in line


def test_the_control_plane_and_the_library_suggest_too() -> None:
    # the names are resolved in sim/ and perpsim.teach, so every entry point says the same
    client = AsgiClient(create_app(state=ServerState(ServerConfig())))
    answer = client.post("/control/reset", json={"scenario": "squeez"})
    assert answer.status_code == 400
    assert "did you mean 'squeeze'?" in answer.text
    answer = client.post("/control/reset", json={"profile": "binance"})
    assert answer.status_code == 400
    assert "did you mean 'binance_coinm'?" in answer.text
    with pytest.raises(UnknownTopic, match="did you mean 'funding'"):
        lesson_module("fundng")


# ---- serve: bind first, then the banner ---------------------------------------------------------
def test_serve_on_a_busy_port_is_one_line_and_exit_2_without_a_banner(
        capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_main(capsys, "serve", "--port", str(port))
    assert code == 2
    assert out == ""
    assert f"port {port} on 127.0.0.1 is already in use" in one_error_line(err)


@pytest.mark.parametrize(("host", "problem"), [
    ("192.0.2.1", "192.0.2.1 is not an address of this machine"),  # TEST-NET: never local
    ("no-such-host.invalid", "cannot use host 'no-such-host.invalid'"),
])
def test_serve_on_a_bad_host_is_one_line_and_exit_2_without_a_banner(
        capsys: pytest.CaptureFixture[str], host: str, problem: str) -> None:
    code, out, err = run_main(capsys, "serve", "--host", host, "--port", "0")
    assert code == 2
    assert out == ""
    assert problem in one_error_line(err)


def test_serve_on_port_0_prints_the_port_it_bound_and_answers_there() -> None:
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen([sys.executable, "-m", "perpsim", "serve", "--port", "0"],
                                stdout=output, stderr=subprocess.STDOUT)
        try:
            base, answer = None, b""
            deadline = time.monotonic() + 120
            while answer != b"{}" and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
                output.seek(0)
                found = re.search(rb"control plane:\s+(http://127\.0\.0\.1:(\d+))/control",
                                  output.read())
                if found is None:
                    continue
                base = found.group(1).decode()
                assert int(found.group(2)) > 0
                try:
                    with urllib.request.urlopen(f"{base}/dapi/v1/ping", timeout=5) as response:
                        answer = response.read()
                except OSError:
                    continue
            assert answer == b"{}", (base, proc.poll())
        finally:
            proc.terminate()
            proc.wait(timeout=30)
