"""Small things users hit: a misspelt Spec keyword, an example input of the wrong shape, warnings on
every call (issue 19, items 3 and 7)."""
from __future__ import annotations

import pytest

import fxprune
from fxprune.errors import SpecError


@pytest.mark.parametrize("given, closest", [("rato", "ratio"), ("round", "round_to"), ("methd", "method")])
def test_unknown_spec_keyword_names_the_closest_field(given, closest):
    with pytest.raises(SpecError, match=f"did you mean '{closest}'") as raised:
        fxprune.Spec(**{given: 0.5})
    assert raised.value.field == given and raised.value.value == 0.5


def test_unknown_spec_field_in_a_dict_names_the_closest_field():
    with pytest.raises(SpecError, match="did you mean 'overrides'"):
        fxprune.Spec.from_dict({"overides": {}})
