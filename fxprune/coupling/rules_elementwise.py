"""Rules for elementwise ops (broadcasting), identity-like ops and tensor creation."""
from __future__ import annotations

import numpy as np
import torch.fx as fx

from .args import arg
from .context import CouplingContext, tensor_inputs


def broadcast(node: fx.Node, ctx: CouplingContext) -> None:
    """Elementwise op over broadcast tensors: equal-size dims align from the right and tie.

    A tie between two *activations* (tensors computed from the model input) is an elementwise join,
    which is what makes a group "coupled"; a tie to a parameter or constant is structural.
    """
    out_rank = ctx.ndim(node)
    inputs = tensor_inputs(node)
    for k in range(out_rank):
        out_space = ctx.space(node, k)
        in_spaces = []
        for a in inputs:
            offset = out_rank - ctx.ndim(a)
            if k >= offset:
                in_spaces.append((a, ctx.space(a, k - offset)))
        tied = [(a, s) for a, s in in_spaces if s is not None]
        joining = sum(ctx.is_activation(a) for a, _ in tied) >= 2
        for a, s in tied:
            ctx.tie(s, out_space, structural=not (joining and ctx.is_activation(a)))
        ctx.cover(out_space)


def identity(node: fx.Node, ctx: CouplingContext) -> None:
    """Output has the first input's shape, each element computed from the same position."""
    source = arg(node, 0, "self")
    if not isinstance(source, fx.Node) or ctx.ndim(source) != ctx.ndim(node):
        return fix_everything(node, ctx, "shape changed by an identity-like op")
    for k in range(ctx.ndim(node)):
        ctx.tie(ctx.space(source, k), ctx.space(node, k))


def glu(node: fx.Node, ctx: CouplingContext) -> None:
    """glu(x, dim) = a * sigmoid(b) for the two halves a, b of ``dim``: channel c pairs with c + C/2."""
    x = arg(node, 0, "self")
    rank = ctx.ndim(x)
    dim = int(arg(node, 1, "dim", -1)) % rank
    for d in range(rank):
        if d != dim:
            ctx.tie(ctx.space(x, d), ctx.space(node, d))
    whole, half = ctx.space(x, dim), ctx.space(node, dim)
    if whole is None or half is None:
        ctx.fix(whole, "glu of a single pair")
        return
    n = ctx.spaces[half].size
    ctx.tie_offset(half, whole, 0)
    k = np.arange(n)
    ctx.tie_elements(half, k, whole, k + n, structural=False)


def fresh(node: fx.Node, ctx: CouplingContext) -> None:
    """A tensor filled with one value (zeros, ones, full): its dims tie to nothing yet."""
    for s in ctx.spaces_of(node):
        ctx.cover(s)
    for a in tensor_inputs(node):  # *_like ops read only the shape
        for s in ctx.spaces_of(a):
            ctx.cover(s)


def fix_everything(node: fx.Node, ctx: CouplingContext, reason: str) -> None:
    """Conservative: no channel of any tensor this op touches may be dropped."""
    for a in tensor_inputs(node):
        ctx.fix_tensor(a, reason)
    val = node.meta.get("val")
    if isinstance(val, (list, tuple)):
        for i in range(len(val)):
            ctx.fix_tensor(node, reason, i)
    else:
        ctx.fix_tensor(node, reason)


def opaque_leaf(node: fx.Node, ctx: CouplingContext) -> None:
    """An opaque leaf (``torch.ops.fxprune.opaque``, see :mod:`fxprune.opaque`): every channel it
    touches is fixed; the diagnostic names the module."""
    name = str(node.args[1]).rsplit("#", 1)[0]
    fix_everything(node, ctx, f"module '{name}' could not be captured and runs as an opaque leaf")
    ctx.diagnose(
        node,
        f"module '{name}' could not be captured; it runs as an opaque leaf and its channels are fixed",
        "make its forward traceable by torch.export to prune through it",
    )


def ignore(node: fx.Node, ctx: CouplingContext) -> None:
    """Ops that only read sizes or assert: they constrain no channel."""
    for a in tensor_inputs(node):
        for s in ctx.spaces_of(a):
            ctx.cover(s)


__all__ = ["broadcast", "identity", "glu", "fresh", "fix_everything", "ignore"]
