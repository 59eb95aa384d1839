"""The last line of defence: compress and convert never return a model that differs from its masked reference."""
from __future__ import annotations

import operator

import numpy as np
import pytest
import torch
from torch import nn

import fxprune
from fxprune.models import build
from fxprune.passes import slice_channels as slicing
from fxprune.passes.slice_channels import slice_channels
from fxprune.selection import plan_keep
from fxprune.verify import _other_sizes, verify_sliced

SPEC = fxprune.Spec(ratio=0.5, round_to=1)


def _consumer_of(gm: torch.fx.GraphModule, param: str) -> str:
    """The name of the first op node that reads parameter ``param``."""
    attr = next(n for n in gm.graph.nodes if n.op == "get_attr" and n.target == param)
    return next(u.name for u in gm.graph.nodes if attr in u.all_input_nodes)


def test_a_wrong_kept_index_in_the_slicing_is_caught_and_named(monkeypatch):
    """Off-by-one slicing of one conv's filters: compress raises and names that conv and its group."""
    torch.manual_seed(0)
    model = build("edsr", blocks=2, channels=16).eval()
    x = torch.randn(1, 3, 12, 12)
    graph = fxprune.analyze(model, x)
    victim = "body.1.conv1.weight"
    group = next(g for g in graph.groups if (victim, 0) in g.params)
    honest = slicing.kept_indices

    def off_by_one(graph, keep):
        kept = honest(graph, keep)
        for key, indices in kept.items():
            if key[0] == victim.replace(".", "_"):
                shifted = indices.copy()
                shifted[-1] = next(i for i in range(group.channels) if i not in set(indices))
                kept[key] = np.sort(shifted)
        return kept

    monkeypatch.setattr(slicing, "kept_indices", off_by_one)
    with pytest.raises(fxprune.VerificationError) as caught:
        fxprune.compress(model, SPEC, (x,))
    error = caught.value
    assert error.node == _consumer_of(graph.gm, victim)
    assert group.id in error.groups
    assert f"node '{error.node}' (aten.conv2d.default) in group {group.id} differs by" in str(error)
    assert error.max_error > error.tolerance > 0
    assert error.input_shapes == ((1, 3, 12, 12),)
    assert [row["id"] for row in error.report] == [g.id for g in graph.groups]


def test_a_hand_edited_weight_is_caught_at_its_node():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 12, 12)
    graph = fxprune.analyze(build("rcan", groups=1, blocks=1, channels=16).eval(), x)
    keep = plan_keep(graph, SPEC)
    small = slice_channels(graph, keep)
    verify_sliced(small, graph.gm, graph, keep, (x,))  # honest slicing passes
    param = next(name for name, p in small.named_parameters() if p.dim() == 4 and "body" in name)
    with torch.no_grad():
        weight = small.get_parameter(param)
        weight[0] = weight[1]  # filter 1 where filter 0 belongs, as a duplicated kept index would do
    with pytest.raises(fxprune.VerificationError, match="differs by") as caught:
        verify_sliced(small, graph.gm, graph, keep, (x,))
    assert caught.value.node == _consumer_of(small, param)


def test_a_dynamic_capture_is_also_checked_at_another_batch_and_size():
    x = torch.randn(1, 3, 12, 12)
    graph = fxprune.analyze(build("edsr", blocks=1, channels=8).eval(), x)
    sizes, fallback = _other_sizes(graph.gm, (x,))
    assert [tuple(batch[0].shape) for batch in sizes] == [(3, 3, 17, 15), (1, 3, 37, 41), (1, 3, 48, 48)]
    assert [tuple(batch[0].shape) for batch in fallback] == [(3, 3, 6, 6), (3, 3, 24, 24)]


def test_convert_refuses_a_decision_that_the_trained_masks_do_not_match():
    """The gated model was masked with one keep-set; slicing with another must not come back."""
    torch.manual_seed(0)
    model = build("edsr", blocks=1, channels=16).eval()
    x = torch.randn(1, 3, 12, 12)
    # shrink="paper": the default shrink zeroes the dropped gates, so a swapped unit would first
    # diverge downstream of its group rather than in it
    spec = fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=4, shrink="paper")
    pruner = fxprune.prepare(model, spec, (x,))
    for _ in range(4):
        pruner.step()
    assert pruner.masked
    fxprune.convert(pruner)  # the honest conversion passes
    gid, flags = next(iter(pruner.unimportant.items()))
    dropped, kept = np.flatnonzero(flags)[0], np.flatnonzero(~flags)[0]
    flags[dropped], flags[kept] = False, True
    with pytest.raises(fxprune.VerificationError, match=r"fxprune\.convert: .* in group") as caught:
        fxprune.convert(pruner)
    assert gid in caught.value.groups


class _Windows(nn.Module):
    """SwinIR's window partition/reverse in ten lines: the batch is recovered from the window count."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x):
        y = self.a(x)
        batch, channels, height, width = y.shape
        windows = y.view(batch, channels, height // 4, 4, width // 4, 4).permute(0, 2, 4, 1, 3, 5).reshape(-1, channels, 4, 4)
        recovered = int(windows.shape[0] / (height * width / 16))
        y = (2 * windows).view(recovered, height // 4, width // 4, channels, 4, 4).permute(0, 3, 1, 4, 2, 5)
        return self.b(y.reshape(recovered, channels, height, width))


def test_window_partition_model_is_never_returned_broken():
    """Either compress returns a model that runs and matches at the example's batch and another one,
    or it raises VerificationError; a model failing on its own example input never comes back."""
    torch.manual_seed(0)
    model = _Windows().eval()
    x = torch.randn(1, 3, 12, 12)
    try:
        small = fxprune.compress(model, SPEC, (x,))
    except fxprune.VerificationError as error:
        assert "the model is not returned" in str(error) and error.input_shapes[0][0] in (1, 3)
        return
    for batch in (x, torch.randn(3, 3, 12, 12)):
        assert small(batch).shape == batch.shape


class _SpatialSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x):
        y = self.a(x)
        batch, channels, height, width = y.shape
        return self.b(y.view(batch, channels, height * width).softmax(-1).view(batch, channels, height, width))


def test_a_size_baked_into_the_sliced_graph_is_caught_at_the_second_size():
    """Right at the example's size, wrong at any other: only the second run can see it."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 12, 12)
    graph = fxprune.analyze(_SpatialSoftmax().eval(), x)
    keep = plan_keep(graph, SPEC)
    small = slice_channels(graph, keep)
    view = next(n for n in small.graph.nodes if n.target is torch.ops.aten.view.default)
    view.args = (view.args[0], [12 * 12 if isinstance(s, torch.fx.Node) and s.target is operator.mul else s
                                for s in view.args[1]])
    small.recompile()
    torch.testing.assert_close(small(x.clone()), slice_channels(graph, keep)(x.clone()))  # fine at the example
    with pytest.raises(fxprune.VerificationError, match=r"node 'view' \(aten.view.default\) in group \d+ raises RuntimeError"
                       ) as caught:
        verify_sliced(small, graph.gm, graph, keep, (x,))
    assert caught.value.input_shapes == ((3, 3, 17, 15),)  # the first other size: example + (5, 3), batch 3
