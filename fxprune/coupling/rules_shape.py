"""Rules for ops that move, split, join or reinterpret dimensions without arithmetic."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from .args import arg, dims_arg
from .context import CouplingContext, static_size
from .rules_elementwise import fix_everything


# ---------------------------------------------------------------------------- reshape family
def _hint(size: Any) -> int:
    """The example value of a (possibly symbolic) size, used to line up reshape chunks."""
    s = static_size(size)
    if s is not None:
        return s
    node = size.node
    hint = node.hint if node.hint is not None else node.shape_env.size_hint(node.expr, allow_none=True)
    return int(hint) if hint is not None else 8192


def _symbols(sizes: list[Any]) -> frozenset:
    return frozenset().union(*[s.node.expr.free_symbols for s in sizes if isinstance(s, torch.SymInt)])


def _same(a: list[Any], b: list[Any]) -> bool:
    """Whether two runs of sizes with equal example products describe the same extent.

    Static runs are compared exactly by the caller. With symbolic sizes the example values agree,
    and the runs must depend on the same symbols: ``[H] -> [H//4, 4]`` is a boundary (the program
    itself assumed it when the view was traced), ``[16] -> [H]`` with H = 16 by coincidence is not.
    """
    return _symbols(a) == _symbols(b)


def reshape_chunks(in_shape: list[Any], out_shape: list[Any]) -> list[tuple[list[int], list[int]]]:
    """Split a reshape into the smallest runs of input dims and output dims with equal products.

    Dims of size 1 are left out: they hold no channel. Sizes are lined up by their example values
    and a run closes only where the products are provably equal.
    """
    ins = [d for d, s in enumerate(in_shape) if static_size(s) != 1]
    outs = [d for d, s in enumerate(out_shape) if static_size(s) != 1]
    chunks: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(ins) or j < len(outs):
        run_in: list[int] = []
        run_out: list[int] = []
        p_in = p_out = 1
        while True:
            take_in = i < len(ins) and (not run_in or (p_in <= p_out and (run_out or j >= len(outs))))
            take_out = j < len(outs) and (not run_out or p_out < p_in)
            if run_in and run_out and p_in == p_out and _same(
                [in_shape[d] for d in run_in], [out_shape[d] for d in run_out]
            ):
                break
            if take_in:
                run_in.append(ins[i])
                p_in *= _hint(in_shape[ins[i]])
                i += 1
            elif take_out:
                run_out.append(outs[j])
                p_out *= _hint(out_shape[outs[j]])
                j += 1
            elif i < len(ins):
                run_in.append(ins[i])
                p_in *= _hint(in_shape[ins[i]])
                i += 1
            elif j < len(outs):
                run_out.append(outs[j])
                p_out *= _hint(out_shape[outs[j]])
                j += 1
            else:
                break
        chunks.append((run_in, run_out))
    return chunks


def _split_one(ctx: CouplingContext, node: fx.Node, whole: int, parts: list[int], part_sizes: list[int]) -> None:
    """One dim viewed as several (or several as one): channel c lives at one chosen part index.

    Only one of the part dims can carry the channel identity (kept sets must stay a product of
    per-dim sets); the analysis prefers the outermost and moves inward if that one ends up fixed.
    The other part dims are fixed.
    """
    candidates = [p for p in parts if p is not None]
    if not candidates:
        ctx.fix(whole, "reshaped into dims of size 1")
        return
    chosen = ctx.choose(node, candidates)
    position = parts.index(chosen)
    inner = math.prod(part_sizes[position + 1 :])
    ctx.tie_blocks(whole, chosen, inner, period=part_sizes[position])
    for p in candidates:
        if p != chosen:
            ctx.fix(p, "a reshape split this dim off a channel dim", soft=True)


def reshape(node: fx.Node, ctx: CouplingContext) -> None:
    """view / reshape / flatten / unflatten / squeeze / unsqueeze: matched by shapes alone."""
    x = arg(node, 0, "self")
    shape_source = arg(node, 1, "other")
    if isinstance(shape_source, fx.Node):  # view_as / reshape_as read only the other tensor's shape
        for k in range(ctx.ndim(node)):
            ctx.tie(ctx.space(shape_source, k), ctx.space(node, k))
    in_shape, out_shape = list(ctx.val(x).shape), list(ctx.val(node).shape)
    for run_in, run_out in reshape_chunks(in_shape, out_shape):
        in_spaces = [ctx.space(x, d) for d in run_in]
        out_spaces = [ctx.space(node, d) for d in run_out]
        if len(run_in) == 1 and len(run_out) == 1:
            ctx.tie(in_spaces[0], out_spaces[0])
        elif len(run_in) == 1 and in_spaces[0] is not None:
            _split_one(ctx, node, in_spaces[0], out_spaces, [ctx.static(out_shape[d]) or 1 for d in run_out])
        elif len(run_out) == 1 and out_spaces[0] is not None:
            _split_one(ctx, node, out_spaces[0], in_spaces, [ctx.static(in_shape[d]) or 1 for d in run_in])
        else:
            for s in in_spaces + out_spaces:
                ctx.fix(s, "reshape that mixes dims")


def permute(node: fx.Node, ctx: CouplingContext) -> None:
    x = arg(node, 0, "self")
    order = dims_arg(arg(node, 1, "dims"), ctx.ndim(x)) or []
    for out_dim, in_dim in enumerate(order):
        ctx.tie(ctx.space(x, in_dim), ctx.space(node, out_dim))


def transpose(node: fx.Node, ctx: CouplingContext) -> None:
    x = arg(node, 0, "self")
    rank = ctx.ndim(x)
    order = list(range(rank))
    if len(node.args) >= 3 or "dim0" in node.kwargs:
        d0, d1 = int(arg(node, 1, "dim0")) % rank, int(arg(node, 2, "dim1")) % rank
        order[d0], order[d1] = order[d1], order[d0]
    else:  # aten.t: reverse a matrix
        order = order[::-1]
    for out_dim, in_dim in enumerate(order):
        ctx.tie(ctx.space(x, in_dim), ctx.space(node, out_dim))


def expand(node: fx.Node, ctx: CouplingContext) -> None:
    """Broadcast copies: equal dims tie, dims grown from size 1 are new. ``expand_as`` reads only
    the shape of its second input, whose dims then tie to the output's (conservative)."""
    x = arg(node, 0, "self")
    shape_source = arg(node, 1, "other")
    if isinstance(shape_source, fx.Node):
        for k in range(ctx.ndim(node)):
            ctx.tie(ctx.space(shape_source, k), ctx.space(node, k))
    offset = ctx.ndim(node) - ctx.ndim(x)
    for k in range(ctx.ndim(node)):
        out_space = ctx.space(node, k)
        ctx.tie(ctx.space(x, k - offset) if k >= offset else None, out_space)
        ctx.cover(out_space)


# ---------------------------------------------------------------------------- joins and splits
def _other_dims(ctx: CouplingContext, a: fx.Node, a_index: int | None, b: fx.Node, b_index: int | None, skip: int) -> None:
    for d in range(ctx.ndim(b, b_index)):
        if d != skip:
            ctx.tie(ctx.space(a, d, a_index), ctx.space(b, d, b_index))


def cat(node: fx.Node, ctx: CouplingContext) -> None:
    """torch.cat: each input is a segment of the output along ``dim``."""
    tensors = [t for t in arg(node, 0, "tensors") if isinstance(t, fx.Node)]
    rank = ctx.ndim(node)
    dim = int(arg(node, 1, "dim", 0)) % rank
    out_space = ctx.space(node, dim)
    offset = 0
    for t in tensors:
        if ctx.ndim(t) != rank:  # legacy empty tensors in cat
            continue
        size = ctx.size(t, dim)
        if size is None or out_space is None:
            fix_everything(node, ctx, "concatenation along a dynamic dim")
            return
        ctx.tie_offset(ctx.space(t, dim), out_space, offset, part_size=size)
        _other_dims(ctx, t, None, node, None, dim)
        offset += size
    ctx.cover(out_space)


def stack(node: fx.Node, ctx: CouplingContext) -> None:
    """torch.stack: a new dim indexes the inputs, which cannot be dropped one by one."""
    tensors = [t for t in arg(node, 0, "tensors") if isinstance(t, fx.Node)]
    rank = ctx.ndim(node)
    dim = int(arg(node, 1, "dim", 0)) % rank
    ctx.fix(ctx.space(node, dim), "stacked inputs")
    for t in tensors:
        for d in range(ctx.ndim(t)):
            ctx.tie(ctx.space(t, d), ctx.space(node, d if d < dim else d + 1))


def _split_outputs(node: fx.Node, ctx: CouplingContext, sizes: list[int], dim: int) -> None:
    x = arg(node, 0, "self")
    whole = ctx.space(x, dim)
    offset = 0
    for i, size in enumerate(sizes):
        ctx.tie_offset(ctx.space(node, dim, i), whole, offset, part_size=size)
        _other_dims(ctx, x, None, node, i, dim)
        offset += size
    ctx.cover(whole)


def split(node: fx.Node, ctx: CouplingContext) -> None:
    """split / split_with_sizes / chunk / unsafe_split: outputs are segments of the input."""
    x = arg(node, 0, "self")
    rank = ctx.ndim(x)
    dim = int(arg(node, 2, "dim", 0)) % rank
    outputs = node.meta["val"]
    sizes = [ctx.static(o.shape[dim]) for o in outputs]
    if any(s is None for s in sizes) or ctx.size(x, dim) is None:
        return fix_everything(node, ctx, "split along a dynamic dim")
    _split_outputs(node, ctx, sizes, dim)


def unbind(node: fx.Node, ctx: CouplingContext) -> None:
    """unbind removes the dim: each output is one index of it, which therefore cannot be dropped."""
    x = arg(node, 0, "self")
    rank = ctx.ndim(x)
    dim = int(arg(node, 1, "dim", 0)) % rank
    ctx.fix(ctx.space(x, dim), "unbound into separate tensors")
    for i in range(len(node.meta["val"])):
        for d in range(rank):
            if d != dim:
                ctx.tie(ctx.space(x, d), ctx.space(node, d if d < dim else d - 1, i))


def getitem(node: fx.Node, ctx: CouplingContext) -> None:
    """Picking output i of a multi-output op: the same tensor under another node."""
    source, index = node.args[0], node.args[1]
    if not isinstance(index, int) or not isinstance(ctx.val(node), torch.Tensor):
        return
    for d in range(ctx.ndim(node)):
        ctx.tie(ctx.space(source, d, index), ctx.space(node, d))


def slice_(node: fx.Node, ctx: CouplingContext) -> None:
    """x[..., start:end] along one dim (step 1): output element j is input element start + j."""
    x = arg(node, 0, "self")
    rank = ctx.ndim(x)
    dim = int(arg(node, 1, "dim", 0)) % rank
    step = arg(node, 4, "step", 1)
    _other_dims(ctx, x, None, node, None, dim)
    whole, part = ctx.space(x, dim), ctx.space(node, dim)
    if whole is None:
        ctx.cover(part)
        return
    size = ctx.spaces[whole].size
    start = arg(node, 2, "start", 0)
    start = 0 if start is None else start
    if not isinstance(start, int) or step != 1:
        ctx.fix(whole, "sliced with a dynamic bound or a step")
        ctx.fix(part, "sliced with a dynamic bound or a step")
        return
    start = max(0, min(size, start + size if start < 0 else start))
    ctx.tie_offset(part, whole, start, part_size=ctx.size(node, dim))
    ctx.cover(whole)


def slice_bounds(start: Any, end: Any, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of ``x[start:end]`` along a dim of ``size``, clamped as Python clamps a
    slice; None when a bound is not a literal int (a dynamic bound).

    >>> slice_bounds(None, 4, 16), slice_bounds(-4, None, 16), slice_bounds(2, 2**63 - 1, 16)
    ((0, 4), (12, 16), (2, 16))
    """
    start = 0 if start is None else start
    end = size if end is None else end
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    start, end = (max(0, min(size, b + size if b < 0 else b)) for b in (start, end))
    return start, max(start, end)


def slice_scatter(node: fx.Node, ctx: CouplingContext) -> None:
    """``slice_scatter(x, src, dim, start, end)``: ``x`` with ``x[start:end]`` along ``dim`` replaced
    by ``src`` (what export writes for ``x[:, :k] = f(x[:, :k])``). The output ties to ``x`` index
    for index, and ``src``'s element j to output element start + j; with both inputs computed from
    the model input, the output's channels join two producers (as an add does)."""
    x, src = arg(node, 0, "self"), arg(node, 1, "src")
    rank = ctx.ndim(x)
    dim = int(arg(node, 2, "dim", 0)) % rank
    joining = ctx.is_activation(x) and ctx.is_activation(src)
    for d in range(rank):
        ctx.tie(ctx.space(x, d), ctx.space(node, d))
    _other_dims(ctx, src, None, node, None, dim)
    whole = ctx.space(node, dim)
    bounds = None if whole is None else slice_bounds(arg(node, 3, "start"), arg(node, 4, "end"),
                                                     ctx.spaces[whole].size)
    if bounds is None or arg(node, 5, "step", 1) != 1:
        ctx.fix(whole, "slice_scatter with a dynamic bound or a step")
        ctx.fix(ctx.space(src, dim), "slice_scatter with a dynamic bound or a step")
        return
    part = ctx.space(src, dim)
    if part is None:
        ctx.tie_offset(None, whole, bounds[0], part_size=ctx.size(src, dim))
        return
    k = np.arange(ctx.spaces[part].size)
    ctx.tie_elements(part, k, whole, k + bounds[0], structural=not joining)


def repeat_interleave(node: fx.Node, ctx: CouplingContext) -> None:
    """``repeat_interleave(x, r, dim)``: output element j along ``dim`` is input element j // r, so
    dropping input channel c drops output channels [c·r, (c+1)·r). Tensor repeats (one count per
    element) and ``dim=None`` (flatten first) are fixed."""
    x = arg(node, 0, "self")
    repeats, dim = arg(node, 1, "repeats"), arg(node, 2, "dim")
    if not isinstance(x, fx.Node) or not isinstance(repeats, int) or dim is None:
        return fix_everything(node, ctx, "repeat_interleave with per-element repeats or without a dim")
    rank = ctx.ndim(x)
    dim = int(dim) % rank
    _other_dims(ctx, x, None, node, None, dim)
    coarse, fine = ctx.space(x, dim), ctx.space(node, dim)
    if coarse is None:
        ctx.cover(fine)  # one element repeated: a broadcast, it ties nothing
        return
    ctx.tie_blocks(fine, coarse, repeats)


def narrow(node: fx.Node, ctx: CouplingContext) -> None:
    x = arg(node, 0, "self")
    rank = ctx.ndim(x)
    dim = int(arg(node, 1, "dim")) % rank
    start = arg(node, 2, "start")
    _other_dims(ctx, x, None, node, None, dim)
    whole, part = ctx.space(x, dim), ctx.space(node, dim)
    if whole is not None and isinstance(start, int):
        ctx.tie_offset(part, whole, start % ctx.spaces[whole].size, part_size=ctx.size(node, dim))
        ctx.cover(whole)
    else:
        ctx.fix(whole, "narrowed with a dynamic start")
        ctx.fix(part, "narrowed with a dynamic start")


def select(node: fx.Node, ctx: CouplingContext) -> None:
    """x.select(dim, i) picks one index: that dim cannot lose elements; the others pass through."""
    x = arg(node, 0, "self")
    rank = ctx.ndim(x)
    dim = int(arg(node, 1, "dim")) % rank
    ctx.fix(ctx.space(x, dim), "a single index of this dim is selected")
    for d in range(rank):
        if d != dim:
            ctx.tie(ctx.space(x, d), ctx.space(node, d if d < dim else d - 1))


# ---------------------------------------------------------------------------- pixel (un)shuffle
def pixel_shuffle(node: fx.Node, ctx: CouplingContext) -> None:
    """PixelShuffle(r): output channel c is made of input channels [c·r², (c+1)·r²)."""
    x = arg(node, 0, "self")
    r = int(arg(node, 1, "upscale_factor"))
    _shuffle(node, ctx, fine=ctx.space(x, -3), coarse=ctx.space(node, -3), block=r * r, x=x)


def pixel_unshuffle(node: fx.Node, ctx: CouplingContext) -> None:
    """PixelUnshuffle(r): input channel c becomes output channels [c·r², (c+1)·r²)."""
    x = arg(node, 0, "self")
    r = int(arg(node, 1, "downscale_factor"))
    channels = ctx.size(x, -3)
    fine = ctx.space(node, -3, known_size=channels * r * r if channels else None)
    _shuffle(node, ctx, fine=fine, coarse=ctx.space(x, -3), block=r * r, x=x)


def _shuffle(node: fx.Node, ctx: CouplingContext, *, fine: int | None, coarse: int | None, block: int, x: fx.Node) -> None:
    if coarse is None:
        ctx.fix(fine, "pixel shuffle to a single channel")
    else:
        ctx.tie_blocks(fine, coarse, block)
    rank = ctx.ndim(x)
    for d in range(rank - 3):
        ctx.tie(ctx.space(x, d), ctx.space(node, d))
    for d in (rank - 2, rank - 1):
        ctx.fix(ctx.space(x, d), "spatial dim rearranged by pixel shuffle")
        ctx.fix(ctx.space(node, d), "spatial dim rearranged by pixel shuffle")


# ---------------------------------------------------------------------------- padding and tiling
def pad(node: fx.Node, ctx: CouplingContext) -> None:
    """constant/reflection/replication pad: padded dims are fixed, the rest pass through."""
    x = arg(node, 0, "self")
    rank = ctx.ndim(x)
    widths = list(arg(node, 1, "pad") or [])
    padded = {rank - 1 - i // 2 for i, w in enumerate(widths) if not (isinstance(w, int) and w == 0)}
    for d in range(rank):
        if d in padded:
            ctx.fix(ctx.space(x, d), "padded dim")
            ctx.fix(ctx.space(node, d), "padded dim")
        else:
            ctx.tie(ctx.space(x, d), ctx.space(node, d))


def tiled(node: fx.Node, ctx: CouplingContext) -> None:
    """repeat / flip / roll / tile: dims whose size or order changes are fixed, others pass through."""
    x = arg(node, 0, "self")
    if ctx.ndim(x) != ctx.ndim(node):
        return fix_everything(node, ctx, "repeat that adds dims")
    name = str(getattr(node.target, "overloadpacket", node.target))
    moved: set[int] = set()
    if name.endswith(("flip", "roll")):
        dims = dims_arg(arg(node, 1 if name.endswith("flip") else 2, "dims"), ctx.ndim(x))
        moved = set(dims if dims is not None else range(ctx.ndim(x)))
    for d in range(ctx.ndim(x)):
        same = ctx.size(x, d) == ctx.size(node, d) and d not in moved
        if same:
            ctx.tie(ctx.space(x, d), ctx.space(node, d))
        else:
            ctx.fix(ctx.space(x, d), "repeated or reordered dim")
            ctx.fix(ctx.space(node, d), "repeated or reordered dim")


__all__ = [
    "cat", "expand", "getitem", "narrow", "pad", "permute", "pixel_shuffle", "pixel_unshuffle",
    "repeat_interleave", "reshape", "reshape_chunks", "select", "slice_", "slice_bounds", "slice_scatter", "split",
    "stack", "tiled", "transpose", "unbind",
]
