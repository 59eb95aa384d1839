"""Rules for ops that combine elements along dims: reductions, softmax, matmul/einsum, pooling."""
from __future__ import annotations

import string
from typing import Any

import torch
import torch.fx as fx

from .args import arg, dims_arg
from .context import CouplingContext, packet_name, tensor_inputs


def _schema_arg(node: fx.Node, name: str, default: Any = None) -> Any:
    """Argument ``name`` located through the op's schema (reductions put ``dim`` in different places)."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return node.kwargs.get(name, default)
    for position, argument in enumerate(schema.arguments):
        if argument.name == name:
            return arg(node, position, name, default)
    return default


# Reductions whose result does not change when zero elements are removed from the reduced dim.
_ZERO_SAFE = ("sum", "linalg_vector_norm", "norm", "nansum", "any")

_aten = torch.ops.aten
# Ops whose statistic over a dim stays exact when that dim loses channels, given the original
# count: a pruned channel is exactly zero in the masked model, so mean = sum over the kept / C,
# var adds (C - C')·mean², amax/amin meet 0, softmax adds (C - C')·exp(-max) to its denominator.
# The slicing pass rewrites each to that form (passes/phantom_statistics.py); without ``exact``
# (the registry of Spec(norm="fixed")) their dims stay fixed as before.
EXACT_STATISTICS_OPS = frozenset({
    _aten.mean.dim, _aten.var.correction, _aten.std.correction, _aten.var.dim, _aten.std.dim,
    _aten.amax.default, _aten.amin.default,
    _aten.softmax.int, _aten._softmax.default, _aten.log_softmax.int, _aten._log_softmax.default,
    _aten.layer_norm.default,
})
# Along-dim ops that are exact over the kept channels with no rewrite (zeros add nothing to a
# running sum); their pruned outputs are zeroed with the group.
_ZERO_SAFE_ALONG_DIM = ("cumsum",)
# A corrected variance divides by (count - correction): exact only when the count is a constant,
# i.e. over one dim (the channels), not over channels and a height that may vary.
_ONE_DIM_ONLY = ("var", "std")


def reduction(node: fx.Node, ctx: CouplingContext, *, exact: bool = True) -> None:
    """sum/mean/amax/var/std/norm/max.dim/...: reduced dims are summed away (exact for sums of
    zeros), kept prunable through an exact rewrite (mean, amax, amin; var and std over one dim;
    see :data:`EXACT_STATISTICS_OPS`) or fixed (max.dim's indices, prod, median... change when
    elements are removed); the other dims pass through."""
    x = arg(node, 0, "self")
    rank = ctx.ndim(x)
    dims = dims_arg(_schema_arg(node, "dim"), rank)
    reduced = set(range(rank)) if dims is None else set(dims)
    name = packet_name(node)
    rewritable = exact and node.target in EXACT_STATISTICS_OPS and (len(reduced) == 1 or name not in _ONE_DIM_ONLY)
    safe = name in _ZERO_SAFE or rewritable
    val = node.meta.get("val")
    indices = [i for i in range(len(val))] if isinstance(val, (list, tuple)) else [None]
    for index in indices:
        out_rank = ctx.ndim(node, index)
        keepdim = out_rank == rank
        out_dim = 0
        for d in range(rank):
            if d in reduced:
                space = ctx.space(x, d)
                ctx.cover(space) if safe else ctx.fix(space, _fix_reason(name, exact, node))
                if keepdim:
                    out_dim += 1
                continue
            ctx.tie(ctx.space(x, d), ctx.space(node, out_dim, index))
            out_dim += 1


def _fix_reason(name: str, exact: bool, node: fx.Node) -> str:
    if exact and node.target in EXACT_STATISTICS_OPS:
        return f"reduced by {name} over several dims (a corrected variance over channels has an exact form over one dim only)"
    if node.target in EXACT_STATISTICS_OPS:
        return f"reduced by {name} (statistics kept fixed by norm='fixed')"
    return f"reduced by {name} (removing channels changes it)"


def along_dim(node: fx.Node, ctx: CouplingContext, *, exact: bool = True) -> None:
    """softmax / log_softmax / cumsum: the dim passes through when the op stays exact over the kept
    channels (softmax with the phantom terms, a running sum as it is), else it is fixed; the other
    dims pass through."""
    x = arg(node, 0, "self")
    rank = ctx.ndim(x)
    dim = int(arg(node, 1, "dim")) % rank
    keeps = packet_name(node) in _ZERO_SAFE_ALONG_DIM or (exact and node.target in EXACT_STATISTICS_OPS)
    for d in range(rank):
        if d == dim and not keeps:
            ctx.fix(ctx.space(x, d), "normalized along this dim")
            ctx.fix(ctx.space(node, d), "normalized along this dim")
        else:
            ctx.tie(ctx.space(x, d), ctx.space(node, d))


# ---------------------------------------------------------------------------- contractions
def _contract(node: fx.Node, ctx: CouplingContext, operands: list[tuple[fx.Node, str]], output: str) -> None:
    """Einsum semantics: occurrences of one letter tie together (a contracted letter is a sum, so
    removing the same elements from every operand is exact). Letters right-aligned by broadcasting
    may have size 1 on one side, which owns no space and ties nothing."""
    occurrences: dict[str, list[tuple[fx.Node, int]]] = {}
    for tensor, letters in operands:
        if len(set(letters)) != len(letters):  # a diagonal: elements are picked pairwise
            ctx.fix_tensor(tensor, "diagonal in a contraction")
            continue
        for d, letter in enumerate(letters):
            occurrences.setdefault(letter, []).append((tensor, d))
    for d, letter in enumerate(output):
        occurrences.setdefault(letter, []).append((node, d))
    for letter, places in occurrences.items():
        spaces = [(t, ctx.space(t, d)) for t, d in places]
        present = [(t, s) for t, s in spaces if s is not None]
        activations = sum(ctx.is_activation(t) for t, _ in present if t is not node)
        for (t, s) in present[1:]:
            joining = activations >= 2 and t is not node and ctx.is_activation(t)
            ctx.tie(present[0][1], s, structural=not joining)
        for _, s in present:
            ctx.cover(s)


def _matmul_letters(rank_a: int, rank_b: int) -> tuple[str, str, str]:
    """Einsum letters for torch.matmul of operands of the given ranks (with broadcasting batch dims)."""
    batch_a, batch_b = max(rank_a - 2, 0), max(rank_b - 2, 0)
    batch = max(batch_a, batch_b)
    letters = string.ascii_lowercase[: batch]
    a_batch, b_batch = letters[batch - batch_a :], letters[batch - batch_b :]
    a = a_batch + ("K" if rank_a == 1 else "NK")
    b = b_batch + ("K" if rank_b == 1 else "KM")
    out = letters + ("N" if rank_a > 1 else "") + ("M" if rank_b > 1 else "")
    return a, b, out


def matmul(node: fx.Node, ctx: CouplingContext) -> None:
    """matmul / mm / bmm."""
    a, b = arg(node, 0, "self"), arg(node, 1, "other", arg(node, 1, "mat2"))
    la, lb, lo = _matmul_letters(ctx.ndim(a), ctx.ndim(b))
    _contract(node, ctx, [(a, la), (b, lb)], lo)


def addmm(node: fx.Node, ctx: CouplingContext) -> None:
    """addmm / baddbmm / addbmm-like: bias + a @ b, the bias broadcast to the output."""
    bias, a, b = arg(node, 0, "self"), arg(node, 1, "mat1"), arg(node, 2, "mat2")
    la, lb, lo = _matmul_letters(ctx.ndim(a), ctx.ndim(b))
    operands = [(a, la), (b, lb)]
    if isinstance(bias, fx.Node):
        operands.append((bias, lo[len(lo) - ctx.ndim(bias) :]))
    _contract(node, ctx, operands, lo)


def einsum(node: fx.Node, ctx: CouplingContext) -> None:
    equation = str(arg(node, 0, "equation")).replace(" ", "")
    tensors = list(arg(node, 1, "tensors"))
    if "..." in equation or "->" not in equation:
        from .rules_elementwise import fix_everything

        return fix_everything(node, ctx, "einsum with ellipsis or implicit output")
    inputs, output = equation.split("->")
    _contract(node, ctx, list(zip(tensors, inputs.split(","))), output)


def attention(node: fx.Node, ctx: CouplingContext) -> None:
    """scaled_dot_product_attention(q, k, v, mask, dropout, causal, scale): heads and batch pass
    through; the key length is softmaxed (fixed); the query/key width sets the default scale, so it
    is fixed unless ``scale`` is given; the value width passes to the output."""
    q, k, v = arg(node, 0, "query"), arg(node, 1, "key"), arg(node, 2, "value")
    mask, scale = arg(node, 3, "attn_mask"), arg(node, 6, "scale")
    rank = ctx.ndim(node)
    batch = "".join(string.ascii_lowercase[:rank - 2])
    operands = [(q, batch[rank - ctx.ndim(q):] + "LE"), (k, batch[rank - ctx.ndim(k):] + "SE"), (v, batch[rank - ctx.ndim(v):] + "SV")]
    if isinstance(mask, fx.Node):
        operands.append((mask, (batch + "LS")[rank - ctx.ndim(mask):]))
    _contract(node, ctx, operands, batch + "LV")
    ctx.fix(ctx.space(k, -2), "softmax over keys")
    if scale is None:
        ctx.fix(ctx.space(q, -1), "the default attention scale depends on this width")


# ---------------------------------------------------------------------------- spatial ops
def spatial(node: fx.Node, ctx: CouplingContext) -> None:
    """Pooling, interpolation, grid sampling: batch and channel dims pass through, spatial dims are
    resampled (static ones fixed). Extra tensor inputs (a sampling grid) are fixed."""
    x = arg(node, 0, "self", arg(node, 0, "input"))
    val = node.meta.get("val")
    indices = list(range(len(val))) if isinstance(val, (list, tuple)) else [None]
    for index in indices:
        for d in range(min(2, ctx.ndim(x))):
            ctx.tie(ctx.space(x, d), ctx.space(node, d, index))
        for d in range(2, ctx.ndim(node, index)):
            ctx.fix(ctx.space(node, d, index), "resampled spatial dim")
    for d in range(2, ctx.ndim(x)):
        ctx.fix(ctx.space(x, d), "resampled spatial dim")
    for other in tensor_inputs(node):
        if other is not x:
            ctx.fix_tensor(other, "sampling input")
