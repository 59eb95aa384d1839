"""Rules for layers with weights (conv, transposed conv, linear) and for normalizations."""
from __future__ import annotations

import numpy as np
import torch.fx as fx

from .args import arg
from .context import CouplingContext
from .rules_reduce import EXACT_STATISTICS_OPS


def _batch_and_spatial(node: fx.Node, ctx: CouplingContext, x: fx.Node, reason: str) -> None:
    """Batch dim passes through; spatial dims are mixed by the kernel, so static ones are fixed."""
    ctx.tie(ctx.space(x, 0), ctx.space(node, 0))
    for d in range(2, ctx.ndim(node)):
        ctx.fix(ctx.space(node, d), reason)
    for d in range(2, ctx.ndim(x)):
        ctx.fix(ctx.space(x, d), reason)


def _grouped(ctx: CouplingContext, x_c: int | None, out_c: int | None, groups: int) -> None:
    """A grouped conv keeps whole groups: the in and out channels of one group form one unit."""
    if groups <= 1 or x_c is None or out_c is None:
        return
    in_per, out_per = ctx.spaces[x_c].size // groups, ctx.spaces[out_c].size // groups
    ctx.tie_within(out_c, out_per)
    k = np.arange(ctx.spaces[x_c].size)
    ctx.tie_elements(x_c, k, out_c, (k // in_per) * out_per)


def convolution(node: fx.Node, ctx: CouplingContext, *, transposed: bool | None = None) -> None:
    """conv1d/2d/3d, conv_transpose1d/2d/3d and the generic aten.convolution."""
    x, w, b = arg(node, 0, "input"), arg(node, 1, "weight"), arg(node, 2, "bias")
    generic = str(getattr(node.target, "overloadpacket", node.target)).endswith("convolution")
    if generic:
        transposed = bool(arg(node, 6, "transposed", False))
    groups = int(arg(node, 8 if generic else 6, "groups", 1))
    module = ctx.module_of(node, w)
    x_c, out_c = ctx.space(x, 1), ctx.space(node, 1)
    w_in, w_out = (ctx.space(w, 0), ctx.space(w, 1)) if transposed else (ctx.space(w, 1), ctx.space(w, 0))
    if groups == 1:
        ctx.tie(x_c, w_in)
        ctx.tie(out_c, w_out)
    elif transposed:  # weight [Cin, Cout/groups, ...]: the out dim is shared by every group, never sliced
        ctx.tie(x_c, w_in)
        ctx.cover(w_out)
    else:  # weight [Cout, Cin/groups, ...]: the in dim is shared by every group, never sliced
        ctx.tie(out_c, w_out)
        ctx.cover(w_in)
    _grouped(ctx, x_c, out_c, groups)
    if isinstance(b, fx.Node):
        ctx.tie(ctx.space(b, 0), out_c)
    for d in range(2, ctx.ndim(w)):
        ctx.fix(ctx.space(w, d), "kernel dim")
    _batch_and_spatial(node, ctx, x, "spatial dim mixed by a convolution")
    ctx.produce(out_c, module, weight=None if transposed and groups > 1 else w_out)
    ctx.consume(x_c, module)


def conv_transpose(node: fx.Node, ctx: CouplingContext) -> None:
    convolution(node, ctx, transposed=True)


def conv(node: fx.Node, ctx: CouplingContext) -> None:
    convolution(node, ctx, transposed=False)


def linear(node: fx.Node, ctx: CouplingContext) -> None:
    """y = x Wᵀ + b over the last dim; all leading dims pass through."""
    x, w, b = arg(node, 0, "input"), arg(node, 1, "weight"), arg(node, 2, "bias")
    module = ctx.module_of(node, w)
    rank = ctx.ndim(node)
    for d in range(rank - 1):
        ctx.tie(ctx.space(x, d), ctx.space(node, d))
    x_c, out_c = ctx.space(x, -1), ctx.space(node, -1)
    ctx.tie(x_c, ctx.space(w, 1))
    ctx.tie(out_c, ctx.space(w, 0))
    if isinstance(b, fx.Node):
        ctx.tie(ctx.space(b, 0), out_c)
    ctx.produce(out_c, module, weight=ctx.space(w, 0))
    ctx.consume(x_c, module)


def _out_index(node: fx.Node) -> int | None:
    """Native norm variants return (out, saved stats...): the activation is output 0."""
    return 0 if isinstance(node.meta.get("val"), (list, tuple)) else None


def _per_channel(node: fx.Node, ctx: CouplingContext, params: list, group_size: int = 1) -> None:
    """Dim 1 carries per-channel parameters (and stats); every dim passes through.

    With ``group_size`` > 1 (GroupNorm), statistics span runs of that many channels, which then
    form one unit: whole groups can go, single channels cannot.
    """
    x, index = arg(node, 0, "input"), _out_index(node)
    for d in range(ctx.ndim(node, index)):
        ctx.tie(ctx.space(x, d), ctx.space(node, d, index))
    channel = ctx.space(node, 1, index)
    for p in params:
        if isinstance(p, fx.Node):
            ctx.tie(ctx.space(p, 0), channel)
    ctx.tie_within(channel, group_size)
    val = node.meta.get("val")
    for i in range(1, len(val) if isinstance(val, (list, tuple)) else 0):
        for s in ctx.spaces_of(node, i):
            same = channel is not None and ctx.ndim(node, i) == 1 and ctx.spaces[s].size == ctx.spaces[channel].size
            ctx.tie(s, channel) if same else ctx.fix(s, "normalization statistics")


def batch_norm(node: fx.Node, ctx: CouplingContext) -> None:
    """batch_norm, native_batch_norm, _native_batch_norm_legit*: (x, weight, bias, mean, var, ...)."""
    names = ["weight", "bias", "running_mean", "running_var"]
    _per_channel(node, ctx, [arg(node, i + 1, n) for i, n in enumerate(names)])


def instance_norm(node: fx.Node, ctx: CouplingContext) -> None:
    batch_norm(node, ctx)  # same argument layout: (x, weight, bias, running_mean, running_var, ...)


def prelu(node: fx.Node, ctx: CouplingContext) -> None:
    _per_channel(node, ctx, [arg(node, 1, "weight")])


def group_norm(node: fx.Node, ctx: CouplingContext) -> None:
    """group_norm(x, num_groups, weight, bias, eps)."""
    groups = int(arg(node, 1, "num_groups"))
    channels = ctx.size(arg(node, 0, "input"), 1) or groups
    _per_channel(node, ctx, [arg(node, 2, "weight"), arg(node, 3, "bias")], channels // groups)


def native_group_norm(node: fx.Node, ctx: CouplingContext) -> None:
    """native_group_norm(x, weight, bias, N, C, HxW, group, eps)."""
    groups = int(arg(node, 6, "group"))
    channels = ctx.size(arg(node, 0, "input"), 1) or groups
    _per_channel(node, ctx, [arg(node, 1, "weight"), arg(node, 2, "bias")], channels // groups)


def layer_norm(node: fx.Node, ctx: CouplingContext, *, exact: bool = True) -> None:
    """LayerNorm: every dim passes through, the affine parameters follow the normalized dims. The
    statistics mix the normalized dims; aten.layer_norm stays exact over kept channels (the slicing
    pass keeps the original count, passes/phantom_statistics.py), so those dims are prunable unless
    ``exact`` is off (Spec(norm="fixed")) or the op is another overload (native_layer_norm)."""
    x = arg(node, 0, "input")
    shape = list(arg(node, 1, "normalized_shape"))
    rank = ctx.ndim(x)
    first = rank - len(shape)
    index = _out_index(node)
    for d in range(rank):
        ctx.tie(ctx.space(x, d), ctx.space(node, d, index))
    if not (exact and node.target in EXACT_STATISTICS_OPS):
        reason = "statistics kept fixed by norm='fixed'" if exact is False else "statistics mix channels"
        for d in range(first, rank):
            ctx.fix(ctx.space(x, d), f"normalized by LayerNorm ({reason})")
    for p in (arg(node, 2, "weight"), arg(node, 3, "bias")):
        if isinstance(p, fx.Node):
            for d in range(len(shape)):
                ctx.tie(ctx.space(p, d), ctx.space(x, first + d))
    val = node.meta.get("val")
    if isinstance(val, (list, tuple)):
        for i in range(1, len(val)):
            ctx.fix_tensor(node, "normalization statistics", i)
