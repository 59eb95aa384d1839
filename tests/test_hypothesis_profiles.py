"""The Hypothesis profile the suite runs under (tests/conftest.py)."""
from __future__ import annotations

import os
import unittest
from types import SimpleNamespace

import conftest
from hypothesis import given, settings
from hypothesis import strategies as st

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


def _draws(max_examples: int) -> list[int]:
    """The values a ``@settings(max_examples=...)`` test under the active profile is called with."""
    drawn: list[int] = []

    @settings(max_examples=max_examples)
    @given(st.integers(0, 10**9))
    def record(value: int) -> None:
        drawn.append(value)

    try:
        record()
    except unittest.SkipTest:  # how Hypothesis ends a test it was told to run no example of
        pass
    return drawn


def test_examples_are_drawn():
    first = _draws(5)
    # a profile that runs no example (e.g. phases=()) skips every @given test without calling it,
    # so the suite would look green; integers up to 10**9 never run out, so all 5 are drawn
    assert len(first) == 5 and len(set(first)) > 1
    if PROFILE == "ci":  # derandomized: the same examples on every run
        assert _draws(5) == first


def test_ci_profile_is_derandomized_even_for_tests_with_their_own_settings():
    own = settings(max_examples=3)  # what @settings(max_examples=...) in a test module builds
    if PROFILE == "ci":
        assert settings.default.derandomize and own.derandomize and own.deadline is None
    else:
        assert not own.derandomize


def test_dev_profile_scales_a_tests_own_max_examples(monkeypatch):
    @settings(max_examples=3)
    @given(st.integers())
    def own(value: int) -> None:
        pass

    item = SimpleNamespace(obj=own)  # the hook reads only ``item.obj``
    monkeypatch.setattr(conftest, "PROFILE", "dev")
    conftest.pytest_collection_modifyitems([item])
    assert own._hypothesis_internal_use_settings.max_examples == 3 * conftest.DEV_EXAMPLE_FACTOR
    monkeypatch.setattr(conftest, "PROFILE", "ci")
    conftest.pytest_collection_modifyitems([item])  # ci leaves a test's own count alone
    assert own._hypothesis_internal_use_settings.max_examples == 3 * conftest.DEV_EXAMPLE_FACTOR
