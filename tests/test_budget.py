"""MAC budgets priced from kept counts: MacModel must equal slicing and counting, exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fxprune
from fxprune.budget import MacModel, ratio_for_macs
from fxprune.models import build
from fxprune.passes.slice_channels import slice_channels
from helpers import random_keep
from randomnets import RandomNet, programs

ZOO_CASES = ["edsr", "rcan", "carn", "imdn", "nafnet", "swinir", "restormer", "unet", "espcn", "fsrcnn", "srresnet"]


@pytest.mark.parametrize("name", ZOO_CASES)
def test_mac_model_equals_slice_and_count_on_the_zoo(name: str) -> None:
    x = torch.randn(1, 3, 16, 16)
    graph = fxprune.analyze(build(name).eval(), x)
    model = MacModel(graph, x)
    assert model.dense == fxprune.count_macs(graph.gm, x)
    rng = np.random.default_rng(0)
    for _ in range(2):
        keep = random_keep(graph, rng)
        assert model.macs(keep) == fxprune.count_macs(slice_channels(graph, keep), x)


@settings(max_examples=15, deadline=None)
@given(program=programs(), seed=st.integers(0, 2**16))
def test_mac_model_equals_slice_and_count_on_random_nets(program, seed: int) -> None:
    x = torch.randn(1, 3, 8, 8)
    graph = fxprune.analyze(RandomNet(program).eval(), x)
    keep = random_keep(graph, np.random.default_rng(seed))
    assert MacModel(graph, x).macs(keep) == fxprune.count_macs(slice_channels(graph, keep), x)


def test_ratio_for_macs_meets_the_budget_when_sliced() -> None:
    x = torch.randn(1, 3, 16, 16)
    graph = fxprune.analyze(build("rcan", groups=2, blocks=2).eval(), x)
    spec = fxprune.Spec(macs=0.5, round_to=1)
    ratio = ratio_for_macs(graph, spec, x)
    dense = fxprune.count_macs(graph.gm, x)
    sliced = fxprune.count_macs(slice_channels(graph, fxprune.selection.plan_keep(graph, spec, ratio=ratio)), x)
    assert sliced / dense <= 0.5
    slightly_less = fxprune.selection.plan_keep(graph, spec, ratio=ratio - 0.01)
    assert fxprune.count_macs(slice_channels(graph, slightly_less), x) / dense > 0.5 - 0.05
