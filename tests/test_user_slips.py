"""Small things users hit: a misspelt Spec keyword, an example input of the wrong shape, warnings on
every call (issue 19, items 3 and 7)."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

import fxprune
from fxprune.errors import SpecError
from fxprune.models import build


@pytest.mark.parametrize("given, closest", [("rato", "ratio"), ("round", "round_to"), ("methd", "method")])
def test_unknown_spec_keyword_names_the_closest_field(given, closest):
    with pytest.raises(SpecError, match=f"did you mean '{closest}'") as raised:
        fxprune.Spec(**{given: 0.5})
    assert raised.value.field == given and raised.value.value == 0.5


def test_unknown_spec_field_in_a_dict_names_the_closest_field():
    with pytest.raises(SpecError, match="did you mean 'overrides'"):
        fxprune.Spec.from_dict({"overides": {}})


COMPRESS = """
import torch, fxprune
from fxprune.models import build
fxprune.compress(build("edsr", blocks=1, channels=8), fxprune.Spec(method="l1", ratio=0.5, round_to=4),
                 (torch.rand(1, 3, 16, 16),))
"""


def test_compress_prints_no_warning():
    """A fresh process (nothing cached) with every warning shown once and FutureWarning an error."""
    done = subprocess.run([sys.executable, "-W", "always", "-W", "error::FutureWarning", "-c", COMPRESS],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_prepare_and_convert_warn_nothing():
    model, x = build("edsr", blocks=1, channels=8), torch.rand(1, 3, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=4, steps=1), (x,))
        (pruner.model(x).abs().mean() + pruner.penalty()).backward()
        pruner.step()
        fxprune.convert(pruner)
    assert [str(w.message) for w in caught] == []
