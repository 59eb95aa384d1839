"""Coupling rules for writes into a channel slice (``x[:, a:b] = conv(x[:, a:b])``, which export
records as ``copy_`` into a slice view; ``slice_scatter``) and for ``repeat_interleave`` along
channels, as RealPLKSR uses them: the channels are prunable, and the sliced model equals the masked
reference for any keep-set."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import fxprune
from fxprune.masking import masked_model
from fxprune.passes.slice_channels import slice_channels
from helpers import random_keep


class PartialConv(nn.Module):
    """RealPLKSR's PLKConv2d at inference: a conv over channels [start, end) written back in place."""

    def __init__(self, start: int, end: int):
        super().__init__()
        self.start, self.end = start, end
        self.conv = nn.Conv2d(end - start, end - start, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x[:, self.start:self.end] = self.conv(x[:, self.start:self.end])
        return x


class Scattered(PartialConv):
    """The functional form of the same write."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.slice_scatter(x, self.conv(x[:, self.start:self.end]), 1, self.start, self.end)


class Net(nn.Module):
    """conv (16) -> a write into a window of its channels -> conv (8) -> repeat each channel 2× -> conv."""

    def __init__(self, write: nn.Module):
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.write = write
        self.b = nn.Conv2d(16, 8, 1)
        self.c = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.write(torch.relu(self.a(x)))
        return self.c(torch.repeat_interleave(self.b(y) + 1, 2, dim=1))


NETS = {
    "copy_-head": lambda: PartialConv(0, 4),
    "copy_-middle": lambda: PartialConv(5, 11),
    "copy_-negative": lambda: PartialConv(10, 16),
    "slice_scatter": lambda: Scattered(3, 9),
}
X = torch.randn(1, 3, 8, 8)


@functools.cache
def analyzed(name: str) -> tuple[nn.Module, fxprune.ChannelGraph]:
    torch.manual_seed(0)
    write = NETS[name]()
    if name == "copy_-negative":
        write.start = -6  # x[:, -6:16]: the rule resolves the negative start
    model = Net(write).eval()
    return model, fxprune.analyze(model, (X,))


@pytest.mark.parametrize("name", NETS)
def test_written_and_repeated_channels_are_prunable(name):
    _, graph = analyzed(name)
    trunk, repeated = graph.group_of("a"), graph.group_of("b")
    assert graph.diagnostics == [], [str(d) for d in graph.diagnostics]
    assert trunk.kind == "coupled" and trunk.prunable == 16 and "write.conv" in trunk.producers, graph.summary()
    assert repeated.kind == "free" and repeated.prunable == 8, graph.summary()


@pytest.mark.parametrize("name", NETS)
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_sliced_equals_masked(name, seed):
    model, graph = analyzed(name)
    keep = random_keep(graph, np.random.default_rng(seed))
    sliced, masked = slice_channels(graph, keep), masked_model(graph, keep)
    kept_b = int(keep[graph.group_of("b").id].sum()) if graph.group_of("b").id in keep else 8
    assert sliced.get_parameter("c.weight").shape[1] == 2 * kept_b  # channel c of b became 2c, 2c+1
    for x in (X, torch.randn(2, 3, 6, 10)):
        torch.testing.assert_close(sliced(x.clone()), masked(x.clone()), rtol=1e-5, atol=1e-5)


def test_dropping_a_written_channel_removes_it_from_both_convs():
    """Drop channel 6 of the trunk: inside the window [5, 11) it is the write conv's output 1."""
    model, graph = analyzed("copy_-middle")
    group = graph.group_of("a")
    units = np.ones(16, bool)
    units[[4, 6]] = False  # one channel outside the window, one inside
    keep = {group.id: units}
    sliced, masked = slice_channels(graph, keep), masked_model(graph, keep)
    assert sliced.get_parameter("write.conv.weight").shape[:2] == (5, 5)
    assert sliced.get_parameter("a.weight").shape[0] == 14
    torch.testing.assert_close(sliced(X.clone()), masked(X.clone()), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        full = masked_model(graph, {group.id: np.ones(16, bool)})
    torch.testing.assert_close(full(X.clone()), model(X.clone()), rtol=1e-5, atol=1e-5)


def test_compress_prunes_through_the_write():
    model, _ = analyzed("copy_-middle")
    small = fxprune.compress(model, fxprune.Spec(ratio=0.75, round_to=1), (X,))
    assert small.get_parameter("a.weight").shape[0] == 4
    assert 1 <= small.get_parameter("write.conv.weight").shape[0] <= 4
