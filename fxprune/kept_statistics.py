"""The masked reference of ``Spec(norm="renormalize")``: statistics over the kept channels only.

With ``norm="renormalize"`` a sliced LayerNorm, mean, variance, max or softmax computes its plain
statistic over the channels that remain (what Torch-Pruning does), not the exact one of the
original count (``norm="exact"``, :mod:`fxprune.passes.phantom_statistics`). The masked model
stores every channel with the pruned ones at zero, so to mean the same thing its statistic ops
must skip the pruned channels instead of counting them. :func:`renormalize_statistics` rewrites a
masked graph so: each statistic op whose input carries a channel mask becomes the same statistic
weighted by that mask (mean = Σ x·m / Σ m, and so on). The reference is only run in PyTorch, so
the replacements are plain Python functions in the graph.

>>> import torch
>>> x = torch.tensor([[1.0, 3.0, 0.0, 0.0]])
>>> kept = torch.tensor([[True, True, False, False]])
>>> kept_mean(x, kept, [1], True)
tensor([[2.]])
>>> kept_softmax(x, kept, 1, False)
tensor([[0.1192, 0.8808, 0.0000, 0.0000]])
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
import torch.fx as fx

from .coupling.args import arg, dims_arg

aten = torch.ops.aten
_ALONG_ONE_DIM = (aten.softmax.int, aten._softmax.default, aten.log_softmax.int, aten._log_softmax.default)


def _weights(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1.0 at kept positions, 0.0 at pruned ones, in ``x``'s shape and dtype."""
    return torch.where(mask, 1.0, 0.0).to(x.dtype).expand_as(x)


def _all(dims: list[int] | None, rank: int) -> list[int]:
    return list(range(rank)) if dims is None else dims


def kept_mean(x: torch.Tensor, mask: torch.Tensor, dims: list[int] | None, keepdim: bool = False,
              dtype: torch.dtype | None = None) -> torch.Tensor:
    """Mean of ``x`` over ``dims`` counting only the positions ``mask`` keeps."""
    if dtype is not None:
        x = x.to(dtype)
    weights = _weights(x, mask)
    dims = _all(dims, x.dim())
    # a row with no kept position (pruned along another dim too) is masked afterwards; count it as 1 so it stays finite
    return (x * weights).sum(dims, keepdim=keepdim) / weights.sum(dims, keepdim=keepdim).clamp_min(1.0)


def kept_var(x: torch.Tensor, mask: torch.Tensor, dims: list[int] | None, correction: float, keepdim: bool = False,
             root: bool = False) -> torch.Tensor:
    """Variance (``root``: standard deviation) over the kept positions, divided by count − correction."""
    weights = _weights(x, mask)
    dims = _all(dims, x.dim())
    mean = kept_mean(x, mask, dims, True)
    squares = (weights * (x - mean) ** 2).sum(dims, keepdim=keepdim)
    var = squares / (weights.sum(dims, keepdim=keepdim) - correction)
    return var.sqrt() if root else var


def kept_extreme(x: torch.Tensor, mask: torch.Tensor, dims: list[int] | None, keepdim: bool = False,
                 largest: bool = True) -> torch.Tensor:
    """amax (``largest``) or amin over the kept positions."""
    fill = -torch.inf if largest else torch.inf
    skipped = torch.where(mask.expand_as(x), x, torch.full((), fill, dtype=x.dtype, device=x.device))
    dims = _all(dims, x.dim())
    return skipped.amax(dims, keepdim) if largest else skipped.amin(dims, keepdim)


def kept_softmax(x: torch.Tensor, mask: torch.Tensor, dim: int, log: bool, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(log_)softmax along ``dim`` over the kept positions; pruned positions get 0 (their group masks them)."""
    if dtype is not None:
        x = x.to(dtype)
    weights = _weights(x, mask)
    shifted = x - kept_extreme(x, mask, [dim], True)
    denominator = (shifted.exp() * weights).sum(dim, keepdim=True)
    out = shifted - denominator.log() if log else shifted.exp() / denominator
    return out * weights


def kept_layer_norm(x: torch.Tensor, mask: torch.Tensor, shape: list[int], weight: torch.Tensor | None,
                    bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    """LayerNorm over the last ``len(shape)`` dims with mean and (biased) variance of the kept positions."""
    dims = list(range(x.dim() - len(shape), x.dim()))
    mean = kept_mean(x, mask, dims, True)
    var = kept_var(x, mask, dims, 0.0, True)
    out = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out * _weights(x, mask)


def _dims(node: fx.Node, default: Any = None) -> list[int] | None:
    return dims_arg(arg(node, 1, "dim", default), node.args[0].meta["val"].dim())


def reduced_dims(node: fx.Node) -> list[int]:
    """The dims of its input that a statistic op of :data:`KEPT_STATISTICS` reduces over."""
    rank = node.args[0].meta["val"].dim()
    if node.target is aten.layer_norm.default:
        return list(range(rank - len(arg(node, 1, "normalized_shape")), rank))
    if node.target in _ALONG_ONE_DIM:
        return [int(arg(node, 1, "dim")) % rank]
    return _all(_dims(node), rank)  # dim None or [] reduces over every dim


def _mean(node: fx.Node, x: fx.Node, mask: fx.Node) -> tuple[Callable, tuple]:
    return kept_mean, (x, mask, _dims(node), bool(arg(node, 2, "keepdim", False)), node.kwargs.get("dtype"))


def _var(root: bool) -> Callable[[fx.Node, fx.Node, fx.Node], tuple[Callable, tuple]]:
    def read(node: fx.Node, x: fx.Node, mask: fx.Node) -> tuple[Callable, tuple]:
        if node.target in (aten.var.dim, aten.std.dim):
            correction = 1.0 if arg(node, 2, "unbiased", True) else 0.0
        else:
            given = node.kwargs.get("correction")
            correction = 1.0 if given is None else float(given)
        return kept_var, (x, mask, _dims(node), correction, bool(arg(node, 3, "keepdim", False)), root)

    return read


def _extreme(largest: bool) -> Callable[[fx.Node, fx.Node, fx.Node], tuple[Callable, tuple]]:
    def read(node: fx.Node, x: fx.Node, mask: fx.Node) -> tuple[Callable, tuple]:
        return kept_extreme, (x, mask, _dims(node, []), bool(arg(node, 2, "keepdim", False)), largest)

    return read


def _softmax(log: bool) -> Callable[[fx.Node, fx.Node, fx.Node], tuple[Callable, tuple]]:
    def read(node: fx.Node, x: fx.Node, mask: fx.Node) -> tuple[Callable, tuple]:
        dim = int(arg(node, 1, "dim")) % x.meta["val"].dim()
        dtype = node.kwargs.get("dtype", arg(node, 2, "dtype") if node.target in (aten.softmax.int, aten.log_softmax.int) else None)
        return kept_softmax, (x, mask, dim, log, dtype)

    return read


def _layer_norm(node: fx.Node, x: fx.Node, mask: fx.Node) -> tuple[Callable, tuple]:
    return kept_layer_norm, (x, mask, list(arg(node, 1, "normalized_shape")), arg(node, 2, "weight"),
                             arg(node, 3, "bias"), float(arg(node, 4, "eps", 1e-5)))


KEPT_STATISTICS: dict[Any, Callable[[fx.Node, fx.Node, fx.Node], tuple[Callable, tuple]]] = {
    aten.mean.dim: _mean,
    aten.var.correction: _var(root=False),
    aten.std.correction: _var(root=True),
    aten.var.dim: _var(root=False),
    aten.std.dim: _var(root=True),
    aten.amax.default: _extreme(largest=True),
    aten.amin.default: _extreme(largest=False),
    aten.softmax.int: _softmax(log=False),
    aten._softmax.default: _softmax(log=False),
    aten.log_softmax.int: _softmax(log=True),
    aten._log_softmax.default: _softmax(log=True),
    aten.layer_norm.default: _layer_norm,
}
"""The statistic ops ``norm="renormalize"`` computes over the kept channels: the same ops
``norm="exact"`` rewrites (a test keeps the tables equal)."""


def _varies_along(mask: torch.Tensor, dims: list[int]) -> bool:
    """Whether ``mask`` drops some but not all positions along ``dims`` somewhere (else the plain
    statistic already is the kept one, or its output is masked as a whole)."""
    return any(mask.shape[d] > 1 for d in dims) and not bool(mask.all())


ORIGINAL = "fxprune_statistic"  # node meta: the op a kept statistic replaced, for restore_statistics


@dataclasses.dataclass(frozen=True)
class _Ref:
    """A node named in a stored argument list (names survive copies of the graph; nodes do not)."""

    name: str


def renormalize_statistics(gm: fx.GraphModule, is_mask: Callable[[fx.Node], bool]) -> fx.GraphModule:
    """Rewrite, in place, every statistic op of a masked graph whose input is masked (``is_mask(input)``:
    a node that applies a channel mask, with the mask as its second argument) to skip the masked-out
    positions. The node keeps its name; :func:`restore_statistics` undoes it."""
    for node in list(gm.graph.nodes):
        read = KEPT_STATISTICS.get(node.target) if node.op == "call_function" else None
        source = node.args[0] if read is not None and node.args else None
        if not (isinstance(source, fx.Node) and is_mask(source)):
            continue
        mask = source.args[1]
        if not _varies_along(gm.get_buffer(str(mask.target)), reduced_dims(node)):
            continue
        function, args = read(node, source, mask)
        named = fx.node.map_aggregate((node.args, node.kwargs), lambda a: _Ref(a.name) if isinstance(a, fx.Node) else a)
        node.meta[ORIGINAL] = (node.target, *named)
        node.target, node.args, node.kwargs = function, args, {}
    gm.graph.lint()
    gm.recompile()
    return gm


def restore_statistics(gm: fx.GraphModule) -> fx.GraphModule:
    """Undo :func:`renormalize_statistics` in place: every kept statistic is its original op again."""
    nodes = {n.name: n for n in gm.graph.nodes}
    for node in gm.graph.nodes:
        if ORIGINAL in node.meta:
            target, args, kwargs = fx.node.map_aggregate(node.meta.pop(ORIGINAL),
                                                         lambda a: nodes[a.name] if isinstance(a, _Ref) else a)
            node.target, node.args, node.kwargs = target, args, kwargs
    gm.graph.lint()
    gm.recompile()
    return gm
