"""How many examples a property test draws.

A property states its count for a deep run: ``@settings(max_examples=examples(200))``. The
default run (profile ``perpsim``, conftest.py) draws a quarter of that, at least 20, so the
whole suite stays a few minutes on a loaded two-core machine; every property still runs on
every run, on the same derandomised examples each time. A deep run draws the stated counts:

    .venv/bin/python -m pytest --hypothesis-profile=thorough        (the same examples, more)
    HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest           (fresh random ones)
"""

from __future__ import annotations

from hypothesis import settings

DEEP_PROFILES = ("thorough", "explore")
QUICK_SHARE = 4  # the default run draws 1/QUICK_SHARE of a property's deep count...
QUICK_FLOOR = 20  # ...but never fewer than this (nor more than the deep count)


def deep() -> bool:
    """True when the loaded profile is a deep one (``--hypothesis-verbosity`` and the like
    load ``<profile>-with-...`` variants of it)."""
    return settings.get_current_profile_name().split("-with-")[0] in DEEP_PROFILES


def examples(thorough: int) -> int:
    """``max_examples`` for a property whose deep run draws ``thorough`` examples."""
    if deep():
        return thorough
    return min(thorough, max(thorough // QUICK_SHARE, QUICK_FLOOR))
