"""Property tests on random architectures: what analysis calls a unit really is separable."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fxprune
from fxprune.masking import keep_all, masked_model

from helpers import perturb_dropped, random_keep
from randomnets import RandomNet, programs

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _net(program) -> tuple[RandomNet, torch.Tensor]:
    torch.manual_seed(0)
    return RandomNet(program).eval(), torch.randn(1, 3, 8, 8)


@SETTINGS
@given(program=programs(), seed=st.integers(0, 2**16))
def test_dropped_units_carry_no_information(program, seed):
    """Noise on every weight of dropped units leaves the masked model's output unchanged."""
    net, x = _net(program)
    graph = fxprune.analyze(net, (x,))
    assert not graph.diagnostics, graph.summary()
    keep = random_keep(graph, np.random.default_rng(seed))
    masked = masked_model(graph, keep)
    reference = masked(x)
    perturbed = copy.deepcopy(masked)
    perturb_dropped(perturbed, graph, keep, seed)
    torch.testing.assert_close(perturbed(x), reference)


@SETTINGS
@given(program=programs())
def test_keeping_everything_changes_nothing(program):
    net, x = _net(program)
    graph = fxprune.analyze(net, (x,))
    torch.testing.assert_close(masked_model(graph, keep_all(graph))(x), net(x))


@SETTINGS
@given(program=programs())
def test_every_conv_output_is_in_exactly_one_group(program):
    net, x = _net(program)
    graph = fxprune.analyze(net, (x,))
    convs = [name for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels > 1]
    for name in convs:
        owners = [g.id for g in graph.groups if name in g.producers]
        assert len(owners) == 1, (name, owners)


def test_perturbing_kept_weights_is_detected():
    """Guards the property test above against being vacuous: kept weights do reach the output."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1))
    x = torch.randn(1, 3, 8, 8)
    graph = fxprune.analyze(model, (x,))
    free = graph.by_kind("free")[0]
    keep = {free.id: np.array([True] * 4 + [False] * 4)}
    masked = masked_model(graph, keep)
    flipped = {free.id: ~keep[free.id]}
    changed = copy.deepcopy(masked)
    perturb_dropped(changed, graph, flipped)  # noise on the *kept* units
    with pytest.raises(AssertionError):
        torch.testing.assert_close(changed(x), masked(x))
