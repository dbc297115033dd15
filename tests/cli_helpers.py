"""Running ``perpsim`` in-process in tests: the exit code and what it printed."""

from __future__ import annotations

import pytest

from perpsim.cli import main


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) in-process: (exit code, stdout, stderr); argparse's exits count too."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The single ``perpsim: error: ...`` line a refused command prints."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("perpsim: error: "), err
    return lines[0]
