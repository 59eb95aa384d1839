"""One-shot L1 compression end to end on the zoo."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import fxprune
from fxprune.models import build, names
from fxprune.selection import l1_scores, plan_keep

from helpers import params_of, zoo_names


@pytest.mark.parametrize("name", zoo_names())
def test_compress_makes_every_zoo_model_smaller(name):
    torch.manual_seed(0)
    model = build(name).eval()
    example = torch.randn(1, 3, 16, 16)
    small = fxprune.compress(model, fxprune.Spec(method="l1", ratio=0.5, round_to=1), (example,))
    assert small.meta["fxprune_capture"].dynamic_batch  # compressed at batch 1, a graph for every batch
    x = torch.randn(3, 3, 20, 24)
    assert small(x).shape == model(x).shape
    assert params_of(small) < params_of(model)
    # the dense model counted on its capture at the example (the one compress made: a capture-cache hit,
    # no capture at x), run at x; a captured graph counts as its module does (test_counting.py)
    assert fxprune.count_macs(small, (x,)) < fxprune.count_macs(fxprune.trace(model, (example,)), (x,))


def test_l1_keeps_the_largest_filters_summed_over_the_group():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)).eval()
    graph = fxprune.analyze(model, torch.randn(1, 3, 8, 8))
    group = graph.group_of("0")
    expected = model[0].weight.detach().abs().sum((1, 2, 3)).numpy()
    np.testing.assert_allclose(l1_scores(graph, group), expected, rtol=1e-5)
    keep = plan_keep(graph, fxprune.Spec(ratio=0.5, round_to=1))[group.id]
    assert set(np.nonzero(keep)[0]) == set(np.argsort(-expected)[:4])


def test_coupled_scores_sum_every_producer():
    model = build("edsr", blocks=1, channels=8).eval()
    graph = fxprune.analyze(model, torch.randn(1, 3, 8, 8))
    trunk = graph.group_of("head")
    expected = sum(m.weight.detach().abs().sum((1, 2, 3)) for m in (model.head, model.body[0].conv2, model.body[1]))
    np.testing.assert_allclose(l1_scores(graph, trunk), expected.numpy(), rtol=1e-5)


def test_compress_accepts_a_dict_and_rejects_garbage():
    model = build("espcn").eval()
    small = fxprune.compress(model, {"ratio": 0.5, "round_to": 1}, (torch.randn(1, 3, 8, 8),))
    assert params_of(small) < params_of(model)
    with pytest.raises(fxprune.SpecError):
        fxprune.compress(model, "ratio=0.5", (torch.randn(1, 3, 8, 8),))


@pytest.mark.parametrize("target", [0.5, 0.3])
def test_mac_target_is_met(target):
    model = build("edsr", blocks=2, channels=64).eval()
    x = torch.randn(1, 3, 16, 16)
    small = fxprune.compress(model, fxprune.Spec(macs=target, round_to=8), (x,))
    ratio = fxprune.count_macs(small, (x,)) / fxprune.count_macs(model, (x,))
    assert ratio <= target
    assert ratio > target - 0.15  # the search lands near the target, not at a trivial extreme


def test_unreachable_mac_target_is_reported():
    with pytest.raises(fxprune.SpecError, match="macs"):
        fxprune.compress(build("espcn").eval(), fxprune.Spec(macs=0.01), (torch.randn(1, 3, 8, 8),))
