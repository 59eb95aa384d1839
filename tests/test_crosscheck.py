"""fxprune's MAC and parameter counts against torch-pruning's (fxprune.cross_check)."""
from __future__ import annotations

import warnings

import pytest
import torch

import fxprune
from fxprune.models import build

X = torch.randn(1, 3, 32, 32)


# (model, the documented range of torch-pruning's total over fxprune's: measured, see fxprune/crosscheck.py)
@pytest.mark.parametrize("name, low, high", [
    ("edsr", 0.0, 0.01),        # plain conv nets: torch-pruning adds bias adds and activations
    ("rcan", 0.0, 0.01),
    ("dncnn", 0.0, 0.01),
    ("unet", 0.0, 0.01),
    ("fsrcnn", 1.0, 2.0),       # a transposed conv, priced at its output positions by torch-pruning
    ("nafnet", -0.1, 0.0),      # functional gating and attention torch-pruning does not see
    ("swinir", -0.1, 0.0),
])
def test_parameters_and_products_agree_exactly_totals_differ_as_documented(name, low, high):
    torch.manual_seed(0)
    model = build(name)
    check = fxprune.cross_check(model, (X,))
    assert check.agrees(tolerance=0.0), check.summary()
    assert check.params == check.tp_params == fxprune.count_params(model)
    assert check.products == check.tp_products > 0 and check.modules > 0
    assert check.macs == fxprune.count_macs(model, (X,))
    assert low < check.macs_difference < high, check.summary()


def test_a_compressed_graph_module_is_refused_with_the_reason():
    model = build("edsr", blocks=1, channels=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = fxprune.compress(model, fxprune.Spec(ratio=0.5, round_to=8), (X,))
    with pytest.raises(ValueError, match="cross-check the nn.Module"):
        fxprune.cross_check(small, (X,))
    with pytest.raises(TypeError):
        fxprune.cross_check("edsr", (X,))


def test_a_disagreement_is_named():
    check = fxprune.CrossCheck(100, 100, 10, 10, 90, 80, 2, disagreeing=("body.0",))
    assert not check.agrees() and "body.0" in check.summary() and check.products_difference == pytest.approx(-1 / 9)
