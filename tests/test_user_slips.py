"""Small things users hit: a misspelt Spec keyword, an example input of the wrong shape, warnings on
every call (issue 19, items 3 and 7)."""
from __future__ import annotations

import re
import subprocess
import sys
import warnings

import pytest
import torch

import fxprune
from fxprune.analysis import check_example_inputs
from fxprune.errors import ExampleInputError, SpecError
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


class Unshuffled(torch.nn.Module):
    """A PixelUnshuffle(2) in front of the first conv, as in ESRGAN ×2: the conv takes 12 channels."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Conv2d(12, 8, 3, padding=1)
        self.tail = torch.nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        return self.tail(self.head(torch.nn.functional.pixel_unshuffle(x, 2)))


@pytest.mark.parametrize("call", ["compress", "prepare", "analyze"])
@pytest.mark.parametrize("model, x, expected", [
    (build("edsr", blocks=1, channels=8), torch.rand(1, 1, 8, 8), (1, 3, 8, 8)),  # grey for an RGB model
    (build("edsr", blocks=1, channels=8), torch.rand(3, 8, 8), (1, 3, 8, 8)),  # no batch dim
    (Unshuffled(), torch.rand(2, 1, 8, 8), (2, 3, 8, 8)),
], ids=["one-channel", "3-D", "unshuffled"])
def test_an_example_that_does_not_fit_is_refused_up_front(call, model, x, expected):
    run = {"compress": lambda: fxprune.compress(model, fxprune.Spec(ratio=0.5), (x,)),
           "prepare": lambda: fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, steps=2), (x,)),
           "analyze": lambda: fxprune.analyze(model, (x,))}[call]
    with pytest.raises(ExampleInputError, match=re.escape(str(expected))) as raised:
        run()
    assert raised.value.expected == expected and raised.value.shape == tuple(x.shape)


def test_a_fitting_example_passes_the_check():
    check_example_inputs(Unshuffled(), torch.rand(1, 3, 8, 8))
    check_example_inputs(build("edsr", blocks=1, channels=8), (torch.rand(2, 3, 8, 8),))
