"""``Spec(norm="renormalize")``: statistics over the kept channels only (what Torch-Pruning does).

The sliced model computes plain LayerNorm / mean / var / softmax over what remains, its masked
reference skips the pruned channels the same way (fxprune.kept_statistics), and both equal an
independent hand-written model; exact and renormalized results differ, so each mode is tested
for what it does.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

import fxprune
from fxprune.graph_mode import copy_graph_module
from fxprune.kept_statistics import KEPT_STATISTICS
from fxprune.masking import insert_channel_masks, masked_model, remove_channel_masks
from fxprune.models import build
from fxprune.onnx import export_onnx
from fxprune.passes.phantom_statistics import PHANTOM_REWRITERS
from fxprune.passes.slice_channels import slice_channels
from fxprune.record import record_of
from fxprune.selection import plan_keep

from helpers import StatisticsNet, check_sliced_equals_masked, check_statistics_at_scale


def test_both_modes_cover_the_same_statistics():
    assert set(KEPT_STATISTICS) == set(PHANTOM_REWRITERS)


def test_sliced_equals_masked_at_the_example_size_and_another():
    torch.manual_seed(0)
    model = StatisticsNet().eval()
    graph = check_sliced_equals_masked(model, torch.randn(2, 3, 12, 10), torch.randn(1, 3, 17, 23), seed=5,
                                       norm="renormalize")
    assert graph.norm == "renormalize" and graph.group_of("a").prunable == 8, graph.summary()


class NormNet(nn.Module):
    """conv → LayerNorm over channels (channels-last) → softmax over channels → conv."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.norm = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 1), nn.LayerNorm(8)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        y = self.norm(self.a(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.b(y + y.softmax(1))


def _by_hand(net: NormNet, x: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """NormNet with only the ``kept`` channels, written out: plain statistics over them."""
    y = F.conv2d(x, net.a.weight[kept], net.a.bias[kept], padding=1).permute(0, 2, 3, 1)
    y = F.layer_norm(y, (len(kept),), net.norm.weight[kept], net.norm.bias[kept]).permute(0, 3, 1, 2)
    return F.conv2d(y + y.softmax(1), net.b.weight[:, kept], net.b.bias)


def test_renormalized_slice_is_the_plain_model_over_the_kept_channels_and_differs_from_exact():
    torch.manual_seed(1)
    net = NormNet().eval()
    x, x_other = torch.randn(1, 3, 8, 8), torch.randn(2, 3, 11, 7)
    kept = torch.tensor([0, 3, 4, 6])
    out = {}
    for norm in ("exact", "renormalize"):
        graph = fxprune.analyze(net, (x,), norm=norm)
        units = np.isin(np.arange(8), kept.numpy())
        keep = {graph.group_of("a").id: units}
        sliced, masked = slice_channels(graph, keep), masked_model(graph, keep)
        with torch.no_grad():
            for inputs in (x, x_other):
                torch.testing.assert_close(sliced(inputs), masked(inputs), rtol=1e-5, atol=1e-5)
            out[norm] = sliced(x)
    with torch.no_grad():
        torch.testing.assert_close(out["renormalize"], _by_hand(net, x, kept), rtol=1e-5, atol=1e-5)
    assert (out["renormalize"] - out["exact"]).abs().max() > 1e-2


@pytest.fixture(scope="module")
def renormalized_graph():
    torch.manual_seed(0)
    return fxprune.analyze(StatisticsNet().eval(), (torch.randn(1, 3, 9, 11),), norm="renormalize")


@settings(max_examples=10, deadline=None)
@given(kept=st.integers(2, 7), seed=st.integers(0, 2**16), scale=st.sampled_from([1e-3, 1.0, 30.0]))
def test_sliced_equals_masked_for_any_kept_count_and_activation_scale(renormalized_graph, kept, seed, scale):
    """From 2 kept channels: StatisticsNet's unbiased std of one channel is NaN when renormalized."""
    check_statistics_at_scale(renormalized_graph, kept, seed, scale)


def test_removing_the_masks_restores_every_statistic_op():
    """ASSL masks its model for the last phase and unmasks a copy to convert it: the kept
    statistics must turn back into the ops the slicing pass knows."""
    torch.manual_seed(3)
    x = torch.randn(1, 3, 8, 8)
    graph = fxprune.analyze(StatisticsNet().eval(), (x,), norm="renormalize")
    keep = {graph.group_of("a").id: np.arange(8) < 5}
    masked = insert_channel_masks(copy_graph_module(graph.gm), graph, keep)
    assert "kept_" in masked.code
    restored = remove_channel_masks(copy_graph_module(masked))
    assert restored.code == graph.gm.code
    with torch.no_grad():
        torch.testing.assert_close(restored(x), graph.gm(x))


def test_compress_and_assl_convert_with_renormalize():
    """Both entry points verify the renormalized result against its masked reference; the
    LayerNorm keeps a native form of the kept width."""
    torch.manual_seed(4)
    x = torch.randn(1, 3, 8, 8)
    net = NormNet().eval()
    with pytest.warns(UserWarning, match="nothing fine-tunes the result"):
        small = fxprune.compress(net, fxprune.Spec(ratio=0.5, round_to=1, norm="renormalize"), (x,))
    layer_norms = [n for n in small.graph.nodes if n.target is torch.ops.aten.layer_norm.default]
    assert [list(n.args[1]) for n in layer_norms] == [[4]]
    pruner = fxprune.prepare(net, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=6, norm="renormalize"), (x,))
    optimizer = torch.optim.Adam(pruner.model.parameters(), lr=1e-3)
    for _ in range(6):
        loss = (pruner.model(x) - net(x)).abs().mean() + pruner.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        pruner.step()
    converted = pruner.convert()
    assert converted.get_parameter("norm.weight").shape == (4,)


def test_renormalized_swinir_exports_native_layer_norm_and_matches_in_onnx_runtime(tmp_path):
    """One Swin layer (the default has two alike): its two LayerNorms each become a LayerNormalization."""
    x = torch.randn(1, 3, 16, 16)
    model = build("swinir", depth=1).eval()
    layer_norms = sum(isinstance(m, nn.LayerNorm) for m in model.modules())
    graph = fxprune.analyze(model, (x,), norm="renormalize")
    small = slice_channels(graph, plan_keep(graph, fxprune.Spec(ratio=0.5, round_to=8, norm="renormalize")))
    report = export_onnx(small, tmp_path / "swinir.onnx", (x,))
    ops = [node.op_type for node in onnx.load(tmp_path / "swinir.onnx").graph.node]
    assert layer_norms == 2
    assert report.max_abs_error <= report.tolerance and ops.count("LayerNormalization") >= layer_norms, (report, sorted(set(ops)))


def test_auto_renormalizes_what_compress_fine_tunes_and_keeps_the_rest_exact():
    """The default follows bench_norm_finetune.py: fine-tuned one-shot results renormalize (a native
    LayerNorm of the kept width), results without fine-tuning and trained methods stay exact."""
    torch.manual_seed(5)
    x = torch.randn(1, 3, 16, 16)
    net = NormNet().eval()
    spec = fxprune.Spec(ratio=0.5, round_to=1)
    assert spec.norm == "auto"
    train = fxprune.TrainConfig(steps=2, task="denoise", batch_size=2, patch_size=16, progress=False, device="cpu")
    tuned, untuned = fxprune.compress(net, spec, (x,), train=train), fxprune.compress(net, spec, (x,))
    pruner = fxprune.prepare(net, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=4), (x,))

    def layer_norm_widths(gm):
        return [list(n.args[1]) for n in gm.graph.nodes if n.target is torch.ops.aten.layer_norm.default]

    assert record_of(tuned).spec["norm"] == "renormalize" and layer_norm_widths(tuned) == [[4]]
    assert record_of(untuned).spec["norm"] == "exact" and layer_norm_widths(untuned) == []  # the phantom form
    assert pruner.graph.norm == "exact"
