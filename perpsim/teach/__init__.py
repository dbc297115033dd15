"""``perpsim teach``: lessons that show, with real engine runs, why liquidations happen.

Each topic is a module in ``perpsim.teach.lessons`` with ``TOPIC``, ``TITLE``, ``SUMMARY`` and
``run() -> Lesson``; ``perpsim.teach.render`` shows a lesson in the terminal and writes its
HTML chart file; ``perpsim.teach.cli`` is the command line.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from perpsim.sim.errors import did_you_mean
from perpsim.teach.model import Lesson

# topic → module in perpsim.teach.lessons, in teaching order
TOPICS: dict[str, str] = {
    "inverse-pnl": "inverse_pnl",
    "synthetic-dollar": "synthetic_dollar",
    "funding": "funding",
    "mark-vs-last": "mark_vs_last",
    "liquidation": "liquidation",
    "insurance-adl": "insurance_adl",
    "cascade": "cascade",
}


class UnknownTopic(ValueError):
    """A topic name that is not one of ``TOPICS``."""


def lesson_module(topic: str) -> ModuleType:
    """The module of a topic (UnknownTopic naming the topics if there is none)."""
    if topic not in TOPICS:
        raise UnknownTopic(f"unknown topic {topic!r}{did_you_mean(topic, TOPICS)}; "
                           f"topics: {', '.join(TOPICS)}")
    return import_module(f"perpsim.teach.lessons.{TOPICS[topic]}")


def topics() -> dict[str, str]:
    """Topic name → one-line summary, in teaching order."""
    return {topic: str(lesson_module(topic).SUMMARY) for topic in TOPICS}


def run_lesson(topic: str) -> Lesson:
    """Run a topic's lesson (a fresh engine run every time)."""
    lesson = lesson_module(topic).run()
    assert isinstance(lesson, Lesson)
    return lesson


__all__ = ["TOPICS", "Lesson", "UnknownTopic", "lesson_module", "run_lesson", "topics"]
