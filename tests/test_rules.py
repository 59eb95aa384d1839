"""One small network per coupling rule: the expected group of a named layer, then sliced == masked."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxprune

from helpers import check_sliced_equals_masked


class Net(nn.Module):
    """Named layers plus a forward written as a function of (layers, x)."""

    def __init__(self, forward: Callable, **layers: nn.Module | nn.Parameter):
        super().__init__()
        self.fn = forward
        for name, layer in layers.items():
            setattr(self, name, layer)

    def forward(self, x):
        return self.fn(self, x)


class LayerNorm2d(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.rand(c) + 0.5), nn.Parameter(torch.rand(c))

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return (x - mu) / (var + 1e-6).sqrt() * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def conv(cin, cout, k=3, **kw):
    return nn.Conv2d(cin, cout, k, padding=k // 2, **kw)


def attention(m, x):
    b, c, h, w = x.shape
    tokens = m.embed(x).flatten(2).transpose(1, 2)  # [B, N, 8]
    q, k, v = m.qkv(tokens).view(b, h * w, 3, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, 8)
    return m.out(m.proj(out).transpose(1, 2).reshape(b, 8, h, w))


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    layer: str  # a producer whose group is checked
    kind: str
    channels: int
    unit: int = 1
    prunable: int | None = None
    shape: tuple = (1, 3, 8, 8)


CASES = [
    Case("instance_norm", lambda: Net(lambda m, x: m.b(F.relu(m.n(m.a(x)))), a=conv(3, 8), n=nn.InstanceNorm2d(8, affine=True), b=conv(8, 3)), "a", "free", 8),
    Case("conv_transpose", lambda: Net(lambda m, x: m.c(m.t(m.a(x))), a=conv(3, 8), t=nn.ConvTranspose2d(8, 6, 4, 2, 1), c=conv(6, 3)), "t", "free", 6),
    Case("grouped_conv", lambda: Net(lambda m, x: m.c(m.g(m.a(x))), a=conv(3, 8), g=conv(8, 8, 1, groups=4), c=conv(8, 3)), "a", "free", 4, 2),
    Case("depthwise_multiplier", lambda: Net(lambda m, x: m.c(m.d(m.a(x))), a=conv(3, 4), d=conv(4, 8, groups=4), c=conv(8, 3)), "a", "free", 4, 1),
    Case("pixel_unshuffle", lambda: Net(lambda m, x: m.c(m.u(m.a(x))), a=conv(3, 4), u=nn.PixelUnshuffle(2), c=nn.Conv2d(16, 3, 1)), "a", "free", 4),
    Case("linear_channels_last", lambda: Net(lambda m, x: m.c(m.l(m.a(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)), a=conv(3, 8), l=nn.Linear(8, 6), c=conv(6, 3)), "l", "free", 6),
    Case("conv1d_batchnorm1d", lambda: Net(lambda m, x: m.c(F.relu(m.n(m.a(x.flatten(2))))).view_as(x), a=nn.Conv1d(3, 8, 3, padding=1), n=nn.BatchNorm1d(8), c=nn.Conv1d(8, 3, 1)), "a", "free", 8),
    Case("sdpa_heads", lambda: Net(attention, embed=conv(3, 8), qkv=nn.Linear(8, 24), proj=nn.Linear(8, 8), out=conv(8, 3)), "qkv", "free", 2, 12, shape=(1, 3, 4, 4)),
    Case("einsum_contraction", lambda: Net(lambda m, x: m.c(torch.einsum("bchw,bc->bchw", m.a(x), m.g(x).mean((2, 3)))), a=conv(3, 8), g=conv(3, 8), c=conv(8, 3)), "a", "coupled", 8),
    # statistics over channels: exact over the kept ones with the original count (phantom channels)
    Case("handwritten_layernorm", lambda: Net(lambda m, x: m.c(m.n(m.a(x))), a=conv(3, 8), n=LayerNorm2d(8), c=conv(8, 3)), "a", "free", 8),
    Case("layernorm_module_channels_last", lambda: Net(lambda m, x: m.c(m.n(m.a(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)), a=conv(3, 8), n=nn.LayerNorm(8), c=conv(8, 3)), "a", "free", 8),
    Case("layernorm_functional_no_affine", lambda: Net(lambda m, x: m.c(F.layer_norm(m.a(x).transpose(1, 3), (8,)).transpose(1, 3)), a=conv(3, 8), c=conv(8, 3)), "a", "free", 8),
    Case("softmax_over_channels", lambda: Net(lambda m, x: m.c(m.a(x).softmax(1)), a=conv(3, 8), c=conv(8, 3)), "a", "free", 8),
    Case("log_softmax_over_channels", lambda: Net(lambda m, x: m.c(F.log_softmax(m.a(x) - 3.0, 1)), a=conv(3, 8), c=conv(8, 3)), "a", "free", 8),
    # far below zero: the pruned zeros are the maximum, and exp(-max_kept) alone would overflow
    Case("log_softmax_far_below_zero", lambda: Net(lambda m, x: m.c(F.log_softmax(m.a(x) - 200.0, 1) / 100), a=conv(3, 8), c=conv(8, 3)), "a", "free", 8),
    Case("var_std_over_channels", lambda: Net(lambda m, x: m.c(m.a(x) * m.a(x).var(1, keepdim=True) + m.a(x).std(1, keepdim=True, correction=0)), a=conv(3, 8), c=conv(8, 3)), "a", "free", 8),
    Case("amax_amin_over_channels", lambda: Net(lambda m, x: m.c(m.a(x) * (m.a(x) - 1).amax(1, keepdim=True) + (m.a(x) + 1).amin(1).unsqueeze(1)), a=conv(3, 8), c=conv(8, 3)), "a", "free", 8),
    Case("cumsum_over_channels", lambda: Net(lambda m, x: m.c(m.a(x).cumsum(1)), a=conv(3, 8), c=conv(8, 3)), "a", "free", 8),
    Case("prod_over_channels_is_fixed", lambda: Net(lambda m, x: m.c(m.a(x) * m.a(x).prod(1, keepdim=True)), a=conv(3, 8), c=conv(8, 3)), "a", "fixed", 8, prunable=0),
    Case("max_with_indices_is_fixed", lambda: Net(lambda m, x: m.c(m.a(x) * m.a(x).max(1, keepdim=True).values), a=conv(3, 8), c=conv(8, 3)), "a", "fixed", 8, prunable=0),
    Case("corrected_var_over_two_dims_is_fixed", lambda: Net(lambda m, x: m.c(m.a(x) * m.a(x).var((1, 2), keepdim=True)), a=conv(3, 8), c=conv(8, 3)), "a", "fixed", 8, prunable=0),
    Case("channel_select_is_fixed", lambda: Net(lambda m, x: m.c(m.a(x) * m.a(x)[:, 0:1].sigmoid() + m.a(x)[:, 1].unsqueeze(1)), a=conv(3, 8), c=conv(8, 3)), "a", "fixed", 8, prunable=0),
    Case("sum_over_channels_is_exact", lambda: Net(lambda m, x: m.c(m.a(x) * m.a(x).pow(2).sum(1, keepdim=True)), a=conv(3, 8), c=conv(8, 3)), "a", "free", 8),
    Case("reshape_split_and_merge", lambda: Net(lambda m, x: m.c((m.a(x).view(1, 2, 4, 8, 8) * m.s).view(1, 8, 8, 8)), a=conv(3, 8), c=conv(8, 3), s=nn.Parameter(torch.rand(1, 2, 1, 1, 1) + 0.5)), "a", "free", 2, 4),
    Case("concat_with_the_input_image", lambda: Net(lambda m, x: m.c(torch.cat([x, m.a(x)], 1)), a=conv(3, 8), c=conv(11, 3)), "a", "free", 11, prunable=8),
    Case("glu", lambda: Net(lambda m, x: m.c(F.glu(m.a(x), 1)), a=conv(3, 8), c=conv(4, 3)), "a", "coupled", 4, 2),
    Case("shared_weights", lambda: Net(lambda m, x: m.c(m.b(F.relu(m.b(F.relu(m.a(x)))))), a=conv(3, 8), b=conv(8, 8), c=conv(8, 3)), "b", "free", 8),
    Case("channel_attention_broadcast", lambda: Net(lambda m, x: m.c(m.a(x) * torch.sigmoid(m.e(F.relu(m.r(m.a(x).mean((2, 3), keepdim=True)))))), a=conv(3, 8), r=conv(8, 2, 1), e=conv(2, 8, 1), c=conv(8, 3)), "e", "coupled", 8),
    Case("dropout_and_activations", lambda: Net(lambda m, x: m.c(F.dropout(F.hardswish(F.leaky_relu(m.a(x))), 0.1, False)), a=conv(3, 8), c=conv(8, 3)), "a", "free", 8),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule(case: Case):
    torch.manual_seed(0)
    model = case.build().eval()
    x = torch.randn(case.shape)
    graph = check_sliced_equals_masked(model, x, None, seed=3)
    assert not graph.diagnostics, graph.summary()
    group = graph.group_of(case.layer)
    assert (group.kind, group.channels, group.unit) == (case.kind, case.channels, case.unit), graph.summary()
    if case.prunable is not None:
        assert group.prunable == case.prunable


def test_unit_parameters_in_arithmetic_are_sliced():
    """A learnable [1, C, 1, 1] scale used as `x * scale` belongs to the group and is sliced."""
    model = Net(lambda m, x: m.c(m.a(x) * m.scale), a=conv(3, 8), c=conv(8, 3), scale=nn.Parameter(torch.rand(1, 8, 1, 1)))
    graph = fxprune.analyze(model.eval(), torch.randn(1, 3, 8, 8))
    assert ("scale", 1) in graph.group_of("a").params
