"""Capture (torch.export on a copy, typed errors) and the ChannelGraph API."""
from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch import nn

import fxprune
from fxprune.models import build


class InPlace(nn.Module):
    """Writes into its input and into an attribute, as some real models do."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        x[:, :1] = 0
        return self.conv(x)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.branch = Branchy()

    def forward(self, x):
        return self.branch(self.stem(x))


class Branchy(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


def test_trace_works_on_a_copy():
    model, x = InPlace(), torch.randn(1, 3, 8, 8)
    original = x.clone()
    gm = fxprune.trace(model, (x,))
    torch.testing.assert_close(x, original)
    assert model.calls == 0
    assert gm.get_parameter("conv.weight") is not model.conv.weight


def test_trace_is_dynamic_in_height_and_width():
    model = build("edsr", blocks=1, channels=8).eval()
    gm = fxprune.trace(model, torch.randn(1, 3, 16, 16))
    x = torch.randn(1, 3, 12, 20)
    torch.testing.assert_close(gm(x), model(x))
    assert gm.meta["fxprune_capture"].dynamic_hw


def test_capture_error_names_the_module():
    with pytest.raises(fxprune.CaptureError) as info:
        fxprune.trace(DataDependent(), torch.randn(1, 3, 8, 8), opaque_fallback=False)
    assert info.value.module == "branch"
    assert "hint:" in str(info.value)


def test_uncapturable_module_becomes_an_opaque_leaf():
    model, x = DataDependent().eval(), torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning, match="module 'branch'.*opaque leaf"):
        graph = fxprune.analyze(model, (x,))
    assert graph.gm.meta["fxprune_capture"].opaque == ("branch",)
    assert graph.group_of("stem").kind == "fixed"
    assert any("'branch'" in d.message for d in graph.diagnostics)
    torch.testing.assert_close(graph.gm(x), model(x))


class TwoInputs(nn.Module):
    def forward(self, x, y):
        return x if (x * y).sum() > 0 else y


def test_no_fallback_for_modules_with_several_inputs():
    model = Net2()
    with pytest.raises(fxprune.CaptureError) as info:
        fxprune.trace(model, torch.randn(1, 3, 8, 8))
    assert info.value.module == "mix"


class Net2(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix = TwoInputs()

    def forward(self, x):
        return self.mix(x, x + 1)


@pytest.mark.parametrize("bad", [None, [], "image", 3])
def test_bad_example_inputs(bad):
    with pytest.raises(TypeError, match="example_inputs"):
        fxprune.trace(nn.Conv2d(3, 3, 1), bad)


def test_not_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fxprune.trace(lambda x: x, torch.randn(1, 3, 4, 4))


def test_analyze_needs_inputs_for_a_module():
    with pytest.raises(TypeError, match="example_inputs"):
        fxprune.analyze(nn.Conv2d(3, 3, 1))


def test_analyze_accepts_a_traced_graph():
    gm = fxprune.trace(build("espcn").eval(), torch.randn(1, 3, 8, 8))
    assert [g.kind for g in fxprune.analyze(gm)] == ["free", "free", "fixed"]


def test_graph_api():
    graph = fxprune.analyze(build("edsr", blocks=2, channels=8).eval(), torch.randn(1, 3, 8, 8))
    trunk = graph.group_of("body.1.conv2")
    assert trunk is graph.group_of("head")
    assert len(graph) == 5 and [g.id for g in graph] == list(range(5))
    assert graph.by_kind("coupled") == [trunk]
    with pytest.raises(KeyError):
        graph.group_of("nope")
    text = graph.summary()
    assert "5 groups: 3 free, 1 coupled, 1 fixed" in text
    network = graph.to_networkx()
    assert isinstance(network, nx.DiGraph) and nx.is_directed_acyclic_graph(network)
    convs = [n for n, d in network.nodes(data=True) if "conv2d" in d["target"]]
    assert len(convs) == 8  # head, 2 × (conv1, conv2), body end, upsampler conv, tail conv
    assert all(network.nodes[n]["groups"] for n in convs)
    assert network.graph["groups"][trunk.id] is trunk
    for member in trunk.members:
        assert len(graph.unit_index(trunk, member)) == member.size
