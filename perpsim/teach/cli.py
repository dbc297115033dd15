"""``perpsim teach [TOPIC] [--out DIR] [--no-open]``: the lessons on the command line.

Wired into perpsim/cli.py with ``add_teach_parser(sub)``; the parser's default ``run`` is
``run_teach``. Without a topic it lists the topics. With one it runs the lesson (a real engine
run, in-process), prints it and writes ``DIR/perpsim-lesson-TOPIC.html``, printing its path.
Exit codes as for the rest of perpsim: 0 success, 2 unknown topic or an ``--out`` directory that
cannot be written (checked before the lesson runs), 1 the file cannot be written after all.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import webbrowser
from pathlib import Path
from typing import Any

from perpsim.teach import TOPICS, UnknownTopic, lesson_module, run_lesson, topics

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _topic_lines() -> list[str]:
    width = max(len(t) for t in TOPICS)
    return [f"  {topic:<{width}}  {summary}" for topic, summary in topics().items()]


def add_teach_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add the ``teach`` sub-command to ``perpsim``'s sub-parsers; returns it."""
    teach: argparse.ArgumentParser = subparsers.add_parser(
        "teach", help="lessons: see why liquidations happen, from real simulation runs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a lesson: a real perpsim engine run whose numbers it quotes. Prints the "
        "lesson and writes an HTML chart file that opens offline. Without a topic, lists them.",
        epilog="topics:\n" + "\n".join(_topic_lines()))
    teach.add_argument("topic", nargs="?", metavar="TOPIC",
                       help="the lesson to run (default: list the topics)")
    teach.add_argument("--out", default=".", metavar="DIR",
                       help="directory for the chart file perpsim-lesson-TOPIC.html (default: .)")
    teach.add_argument("--no-open", dest="open", action="store_false",
                       help="do not open the chart in a browser (default: open it, only on a "
                       "desktop session, from a terminal)")
    teach.set_defaults(run=run_teach)
    return teach


def _can_open_browser() -> bool:
    """A graphical browser is plausible: a terminal on macOS, Windows or a desktop session."""
    if not sys.stdout.isatty():
        return False
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _writable_dir(out: Path) -> str | None:
    """Why charts cannot be written into ``out`` (created if missing), or None if they can."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        return str(exc.strerror or exc)
    return None


def run_teach(args: argparse.Namespace) -> int:
    """List the topics, or run one lesson: print it, write its chart file, maybe open it."""
    from perpsim.teach.render import print_lesson, write_lesson_html  # plotly: only when needed

    topic: str | None = args.topic
    if topic is None:
        print("perpsim teach TOPIC: lessons driven by real engine runs. Topics:")
        print("\n".join(_topic_lines()))
        return EXIT_OK
    try:
        lesson_module(topic)
    except UnknownTopic as exc:
        print(f"perpsim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # before the lesson runs: a bad --out costs nothing and prints no half-finished lesson
    problem = _writable_dir(Path(args.out).expanduser())
    if problem is not None:
        print(f"perpsim: error: cannot write the chart file in {args.out}: {problem}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    lesson = run_lesson(topic)
    print_lesson(lesson)
    try:
        path = write_lesson_html(lesson, Path(args.out))
    except OSError as exc:
        print(f"perpsim: error: cannot write the chart file in {args.out}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"chart: {path}")
    if getattr(args, "open", False) and _can_open_browser():
        webbrowser.open(path.as_uri())
    return EXIT_OK
