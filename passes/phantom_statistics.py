"""Exact statistics over the kept channels: the slicing pass's rewrite of ops that mix a sliced dim.

In the masked model (:mod:`fxprune.masking`) a pruned channel is exactly zero in every tensor of
its group. A statistic over a dim of C channels of which C' are kept is then a function of the
kept channels and C alone, so the sliced graph computes it with C kept as a constant (the pruned
channels become "phantoms": zeros that are counted but not stored):

- mean = Σ_kept x / C
- var = (Σ_kept (x − mean)² + (C − C')·mean²) / (C − correction); std = √var (with a
  correction only over one dim, so C is a constant)
- amax = max(amax_kept, 0); amin = min(amin_kept, 0)
- softmax: with m = max(amax_kept, 0), exp(x − m) / (Σ_kept exp(x − m) + (C − C')·exp(−m));
  log_softmax the log of it
- layer_norm over the kept channels with the mean and variance above (biased, as LayerNorm's)

Each rewrite replaces the op with ATen ops that export to ONNX (ReduceMean, Sub, Mul, Sqrt ...).
Sums are taken as means over the kept channels times C'/C, which needs no count of the dims that
kept their size (height and width may be symbolic) and does not overflow in fp16 where Σx² would. The coupling rules let exactly these ops' dims be pruned
(:data:`fxprune.coupling.rules_reduce.EXACT_STATISTICS_OPS`); a test keeps the two lists equal.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import torch
import torch.fx as fx

from fxprune.counting import PHANTOM_META, PhantomPart
from fxprune.coupling.args import arg, dims_arg
from fxprune.coupling.context import packet_name

aten = torch.ops.aten


class Sizes(Protocol):
    """Old and new static sizes of a sliced graph's dims (slice_channels' ``_Sizes``)."""

    def old(self, node: fx.Node, dim: int, index: int = 0) -> int | None: ...

    def new(self, node: fx.Node, dim: int, index: int = 0) -> int | None: ...


class _Counts:
    """The fraction ``kept`` = C'/C of the elements a statistic reads per output position that
    slicing kept (a product over the sliced dims; dims that kept their size, static or symbolic,
    cancel out), the original count ``total`` when every reduced dim was sliced, and where new
    nodes go (before the op being replaced)."""

    def __init__(self, node: fx.Node, x: fx.Node, dims: list[int], sizes: Sizes):
        self.node, self.x, self.dims = node, x, dims
        sliced = [d for d in dims if sizes.new(x, d) != sizes.old(x, d)]
        self.kept = math.prod(int(sizes.new(x, d)) / int(sizes.old(x, d)) for d in sliced)
        self.changed = bool(sliced)
        self.total = math.prod(int(sizes.old(x, d)) for d in dims) if len(sliced) == len(dims) else None

    def op(self, target: Any, *args: Any, **kwargs: Any) -> fx.Node:
        with self.node.graph.inserting_before(self.node):
            made = self.node.graph.call_function(target, args, kwargs)
        made.meta[PHANTOM_META] = PhantomPart(packet_name(self.node), result=False)
        return made

    def mean(self, t: fx.Node, keepdim: bool = True) -> fx.Node:
        """Σ_kept t / C, the mean over every channel with the pruned ones zero."""
        kept_mean = self.op(aten.mean.dim, t, self.dims, keepdim)
        return self.op(aten.mul.Tensor, kept_mean, self.kept)

    def phantom_max(self, t: fx.Node) -> fx.Node:
        """max over every channel (keepdim) when the pruned ones are zero."""
        return self.op(aten.clamp_min.default, self.op(aten.amax.default, t, self.dims, True), 0.0)

    def replace(self, result: fx.Node) -> None:
        result.meta[PHANTOM_META] = PhantomPart(packet_name(self.node), result=True)
        self.node.replace_all_uses_with(result)
        self.node.graph.erase_node(self.node)


def _counts(node: fx.Node, x: fx.Node, dims: Any, sizes: Sizes) -> _Counts | None:
    rank = x.meta["val"].dim()
    dims = dims_arg(dims, rank)
    counts = _Counts(node, x, sorted(range(rank) if dims is None else dims), sizes)
    return counts if counts.changed else None


def _squeezed(c: _Counts, t: fx.Node, keepdim: bool) -> fx.Node:
    return t if keepdim else c.op(aten.squeeze.dims, t, c.dims)


def _mean(node: fx.Node, sizes: Sizes) -> None:
    x = arg(node, 0, "self")
    c = _counts(node, x, arg(node, 1, "dim"), sizes)
    if c is None:
        return
    dtype = node.kwargs.get("dtype")
    source = c.op(aten._to_copy.default, x, dtype=dtype) if dtype is not None else x
    c.replace(c.mean(source, bool(arg(node, 2, "keepdim", False))))


def _centered(c: _Counts, x: fx.Node) -> tuple[fx.Node, fx.Node]:
    """(mean, x − mean) over every channel, the pruned ones zero."""
    mean = c.mean(x)
    return mean, c.op(aten.sub.Tensor, x, mean)


def _variance(c: _Counts, mean: fx.Node, centered: fx.Node, correction: float, keepdim: bool) -> fx.Node:
    """Σ (x − mean)² / (C − correction) over every channel: a pruned channel adds mean²."""
    kept_squares = c.mean(c.op(aten.mul.Tensor, centered, centered))
    phantom_squares = c.op(aten.mul.Tensor, c.op(aten.mul.Tensor, mean, mean), 1.0 - c.kept)
    biased = c.op(aten.add.Tensor, kept_squares, phantom_squares)
    if correction:
        if c.total is None:
            raise ValueError(f"{c.node.name}: a corrected variance over sliced and unsliced dims has no exact form "
                             "(the coupling rule fixes it)")
        biased = c.op(aten.mul.Tensor, biased, c.total / (c.total - correction))
    return _squeezed(c, biased, keepdim)


def _var_like(take_root: bool) -> Callable[[fx.Node, Sizes], None]:
    def rewrite(node: fx.Node, sizes: Sizes) -> None:
        x = arg(node, 0, "self")
        c = _counts(node, x, arg(node, 1, "dim"), sizes)
        if c is None:
            return
        if node.target in (aten.var.dim, aten.std.dim):  # (self, dim, unbiased=True, keepdim=False)
            correction = 1.0 if arg(node, 2, "unbiased", True) else 0.0
        else:  # (self, dim=None, *, correction=None, keepdim=False)
            correction = node.kwargs.get("correction")
            correction = 1.0 if correction is None else float(correction)
        result = _variance(c, *_centered(c, x), correction, bool(arg(node, 3, "keepdim", False)))
        c.replace(c.op(aten.sqrt.default, result) if take_root else result)

    return rewrite


def _extreme(clamp: Any) -> Callable[[fx.Node, Sizes], None]:
    def rewrite(node: fx.Node, sizes: Sizes) -> None:
        x = arg(node, 0, "self")
        c = _counts(node, x, arg(node, 1, "dim", []), sizes)
        if c is not None:
            with node.graph.inserting_after(node):
                clamped = node.graph.call_function(clamp, (node, 0.0))
            node.replace_all_uses_with(clamped, delete_user_cb=lambda user: user is not clamped)

    return rewrite


def _softmax_parts(node: fx.Node, sizes: Sizes) -> tuple[_Counts, fx.Node, fx.Node] | None:
    """(counts, x − m, the denominator) of a softmax over a sliced dim, or None if it kept its size."""
    x = arg(node, 0, "self")
    c = _counts(node, x, [int(arg(node, 1, "dim"))], sizes)
    if c is None:
        return None
    dtype = node.kwargs.get("dtype", arg(node, 2, "dtype") if node.target in (aten.softmax.int, aten.log_softmax.int) else None)
    if dtype is not None:
        x = c.op(aten._to_copy.default, x, dtype=dtype)
    top = c.phantom_max(x)
    shifted = c.op(aten.sub.Tensor, x, top)
    kept = c.op(aten.sum.dim_IntList, c.op(aten.exp.default, shifted), c.dims, True)
    phantoms = c.op(aten.mul.Tensor, c.op(aten.exp.default, c.op(aten.neg.default, top)), float(c.total) * (1.0 - c.kept))
    return c, shifted, c.op(aten.add.Tensor, kept, phantoms)


def _softmax(node: fx.Node, sizes: Sizes) -> None:
    parts = _softmax_parts(node, sizes)
    if parts is not None:
        c, shifted, denominator = parts
        c.replace(c.op(aten.div.Tensor, c.op(aten.exp.default, shifted), denominator))


def _log_softmax(node: fx.Node, sizes: Sizes) -> None:
    parts = _softmax_parts(node, sizes)
    if parts is not None:
        c, shifted, denominator = parts
        c.replace(c.op(aten.sub.Tensor, shifted, c.op(aten.log.default, denominator)))


def _layer_norm(node: fx.Node, sizes: Sizes) -> None:
    x = arg(node, 0, "input")
    shape = list(arg(node, 1, "normalized_shape"))
    rank = x.meta["val"].dim()
    c = _counts(node, x, list(range(rank - len(shape), rank)), sizes)
    if c is None:
        return
    weight, bias, eps = arg(node, 2, "weight"), arg(node, 3, "bias"), float(arg(node, 4, "eps", 1e-5))
    mean, centered = _centered(c, x)
    variance = _variance(c, mean, centered, 0.0, True)
    result = c.op(aten.mul.Tensor, centered, c.op(aten.rsqrt.default, c.op(aten.add.Tensor, variance, eps)))
    if weight is not None:
        result = c.op(aten.mul.Tensor, result, weight)
    if bias is not None:
        result = c.op(aten.add.Tensor, result, bias)
    c.replace(result)


PHANTOM_REWRITERS: dict[Any, Callable[[fx.Node, Sizes], None]] = {
    aten.mean.dim: _mean,
    aten.var.correction: _var_like(take_root=False),
    aten.std.correction: _var_like(take_root=True),
    aten.var.dim: _var_like(take_root=False),
    aten.std.dim: _var_like(take_root=True),
    aten.amax.default: _extreme(aten.clamp_min.default),
    aten.amin.default: _extreme(aten.clamp_max.default),
    aten.softmax.int: _softmax,
    aten._softmax.default: _softmax,
    aten.log_softmax.int: _log_softmax,
    aten._log_softmax.default: _log_softmax,
    aten.layer_norm.default: _layer_norm,
}
