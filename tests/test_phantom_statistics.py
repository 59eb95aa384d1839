"""Statistics over pruned channels stay exact: LayerNorm, mean/var/std, amax/amin and softmax over a
sliced channel dim equal the masked model's (pruned channels counted as zeros), at every size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

import fxprune
from fxprune.budget import MacModel
from fxprune.coupling.rules_reduce import EXACT_STATISTICS_OPS
from fxprune.masking import masked_model
from fxprune.models import build
from fxprune.passes.phantom_statistics import PHANTOM_REWRITERS
from fxprune.passes.slice_channels import slice_channels
from fxprune.selection import plan_keep

from helpers import StatisticsNet, check_sliced_equals_masked, check_statistics_at_scale


def test_every_op_the_rules_let_prune_has_an_exact_rewrite():
    assert set(PHANTOM_REWRITERS) == set(EXACT_STATISTICS_OPS)


def test_sliced_equals_masked_at_the_example_size_and_another():
    torch.manual_seed(0)
    model = StatisticsNet().eval()
    graph = check_sliced_equals_masked(model, torch.randn(2, 3, 12, 10), torch.randn(1, 3, 17, 23), seed=5)
    assert graph.group_of("a").prunable == 8, graph.summary()


@pytest.fixture(scope="module")
def statistics_graph():
    torch.manual_seed(0)
    return fxprune.analyze(StatisticsNet().eval(), (torch.randn(1, 3, 9, 11),))


@settings(max_examples=15, deadline=None)
@given(kept=st.integers(1, 7), seed=st.integers(0, 2**16), scale=st.sampled_from([1e-3, 1.0, 30.0]))
def test_exact_for_any_kept_count_and_activation_scale(statistics_graph, kept, seed, scale):
    """Few kept channels, tiny and large activations (softmax and variance are where the phantom
    terms matter most): the sliced model equals the masked one at float32 tolerance."""
    check_statistics_at_scale(statistics_graph, kept, seed, scale)


def test_phantom_terms_are_what_makes_it_exact():
    """Plain statistics over the kept channels (what renormalizing would compute) differ from the
    masked model: the rewrite, not luck, makes the two equal."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 1))
    ln = nn.LayerNorm(8)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.norm = model[0], model[1], ln

        def forward(self, x):
            return self.b(self.norm(self.a(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2))

    net = Net().eval()
    x = torch.randn(1, 3, 8, 8)
    graph = fxprune.analyze(net, (x,))
    keep = {graph.group_of("a").id: np.arange(8) % 2 == 0}
    sliced = slice_channels(graph, keep)
    with torch.no_grad():
        expected = masked_model(graph, keep)(x)
        torch.testing.assert_close(sliced(x), expected)
        kept = torch.arange(0, 8, 2)
        y = F.conv2d(x, net.a.weight[kept], net.a.bias[kept], padding=1).permute(0, 2, 3, 1)
        renormalized = F.layer_norm(y, (4,), ln.weight[kept], ln.bias[kept]).permute(0, 3, 1, 2)
        plain = F.conv2d(renormalized, net.b.weight[:, kept], net.b.bias)
    assert (plain - expected).abs().max() > 1e-2


@pytest.mark.parametrize("name", ["nafnet", "swinir"])  # hand-written LayerNorm2d; nn.LayerNorm on tokens
def test_normalized_trunks_shrink_like_a_cnn(name):
    """At ratio 0.5 the zoo's normalized models keep far fewer MACs than with their trunks fixed."""
    x = torch.randn(1, 3, 16, 16)
    model = build(name).eval()
    spec = fxprune.Spec(ratio=0.5, round_to=1)
    fractions = {}
    for norm in ("exact", "fixed"):
        graph = fxprune.analyze(model, (x,), norm=norm)
        macs = MacModel(graph, (x,))
        fractions[norm] = macs.macs(plan_keep(graph, spec)) / macs.dense
    assert fractions["exact"] < fractions["fixed"] - 0.1, fractions


def test_norm_fixed_keeps_the_trunk_and_exact_prunes_it_again_and_again():
    """A rewritten graph is analyzed and sliced exactly once more (compress verifies each stage
    against its masked model): the phantom forms compose."""
    torch.manual_seed(2)
    model = StatisticsNet(c=16).eval()
    x = torch.randn(1, 3, 8, 8)
    smalls = {"exact": fxprune.compress(model, fxprune.Spec(ratio=0.5, round_to=1), (x,))}
    with pytest.warns(fxprune.RequestUndoneWarning, match="no group loses any channel"):  # the trunk is all there is
        smalls["fixed"] = fxprune.compress(model, fxprune.Spec(ratio=0.5, round_to=1, norm="fixed"), (x,))
    smalls["exact, second stage"] = fxprune.compress(smalls["exact"], fxprune.Spec(ratio=0.5, round_to=1), (x,))
    widths = {key: small.get_parameter("a.weight").shape[0] for key, small in smalls.items()}
    assert widths == {"exact": 8, "fixed": 16, "exact, second stage": 4}


def test_an_unknown_statistics_mode_is_a_spec_error():
    with pytest.raises(fxprune.SpecError, match="norm.*auto, exact, renormalize, fixed"):
        fxprune.Spec(norm="renormalise")
