"""The central invariant: the sliced model equals the masked model, on the zoo and random nets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fxprune
from fxprune.models import build, names
from fxprune.passes.slice_channels import slice_channels

from helpers import check_sliced_equals_masked, params_of, random_keep, randomize_norms, zoo_names
from randomnets import RandomNet, programs


# seed innermost: a model's second seed follows its first and reuses its capture (the capture cache
# holds 8 graphs; with the models innermost, each seed-1 test captured its model again)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", zoo_names())
def test_zoo_sliced_equals_masked(name, seed):
    torch.manual_seed(seed)
    model = randomize_norms(build(name).eval(), seed)  # per-channel norms/PReLU, so wrong indices show
    check_sliced_equals_masked(model, torch.randn(1, 3, 16, 16), torch.randn(1, 3, 20, 24), seed)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(windows=True), seed=st.integers(0, 2**16))
def test_random_nets_sliced_equals_masked(program, seed):
    torch.manual_seed(seed)
    model = RandomNet(program).eval()
    check_sliced_equals_masked(model, torch.randn(1, 3, 8, 8), torch.randn(1, 3, 6, 10), seed)


def test_fixed_units_cannot_be_dropped():
    model = build("edsr", blocks=1, channels=8).eval()
    graph = fxprune.analyze(model, torch.randn(1, 3, 8, 8))
    fixed = graph.by_kind("fixed")[0]
    with pytest.raises(ValueError, match="fixed"):
        slice_channels(graph, {fixed.id: np.arange(fixed.channels) > 0})


def test_bad_keep_sets_are_rejected():
    model = build("edsr", blocks=1, channels=8).eval()
    graph = fxprune.analyze(model, torch.randn(1, 3, 8, 8))
    trunk = graph.groups[0]
    with pytest.raises(ValueError, match="every unit"):
        slice_channels(graph, {trunk.id: np.zeros(trunk.channels, bool)})
    with pytest.raises(ValueError, match="units"):
        slice_channels(graph, {trunk.id: np.ones(trunk.channels + 1, bool)})
    with pytest.raises(KeyError):
        slice_channels(graph, {999: np.ones(3, bool)})


def test_sliced_model_does_not_touch_the_original():
    model = build("edsr", blocks=1, channels=8).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = fxprune.analyze(model, torch.randn(1, 3, 8, 8))
    slice_channels(graph, random_keep(graph, np.random.default_rng(0)))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
