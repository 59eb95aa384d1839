"""The Hypothesis profile the suite runs under (tests/conftest.py)."""
from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

SEEN: list[int] = []


@settings(max_examples=5)
@given(st.integers(0, 10**9))
def test_examples_are_drawn(value):
    SEEN.append(value)


def test_ci_profile_is_derandomized_even_for_tests_with_their_own_settings():
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    own = settings(max_examples=3)  # what @settings(max_examples=...) in a test module builds
    if profile == "ci":
        assert settings.default.derandomize and own.derandomize and own.deadline is None
        assert len(SEEN) <= 5
    else:
        assert not own.derandomize
        if SEEN:  # the test above ran first: dev gave it ten times its own max_examples
            assert len(SEEN) >= 5 * 10
