"""Physically remove dropped channels: slice parameters and rewrite the sizes baked into the graph.

Given a :class:`~fxprune.graph.ChannelGraph` and a keep-set (one bool per unit of each group), the
pass returns a new GraphModule (the one it is given stays as it was) in which every
parameter/buffer of a group keeps only the kept indices, and every op argument that encodes a
channel count (view/expand shapes, split sizes, slice bounds, conv and GroupNorm group counts,
fill shapes) is rewritten, and statistics over a sliced dim (LayerNorm, mean, var, softmax ...)
are rewritten to count the dropped channels as the zeros they are (:mod:`.phantom_statistics`),
or, when the graph was analyzed with ``norm="renormalize"``, left to compute plain statistics over
the kept channels (:mod:`fxprune.kept_statistics` gives the masked model the same meaning).
The result runs without fxprune and equals the masked model (:func:`fxprune.masking.masked_model`).

Torch-Pruning's per-layer functions (``prune_conv_out_channels`` ...) edit ``nn.Module`` objects and
their attributes; an exported graph holds plain parameters used by functional ATen ops, so slicing
is done here on the tensors directly, and every parameter a group touches — including ones used
in arithmetic, like a ``[1, C, 1, 1]`` scale or an attention bias — is sliced the same way.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from fxprune.coupling.args import arg
from fxprune.coupling.context import static_size
from fxprune.coupling.rules_shape import slice_bounds
from fxprune.graph import ChannelGraph
from fxprune.graph_mode import copy_graph_module
from fxprune.masking import check_keep
from fxprune.pass_infra import PassBase, PassResult, PreconditionError
from fxprune.selection import SizeKey, kept_indices

from .insert_weight_modules import WeightModules
from .phantom_statistics import PHANTOM_REWRITERS

aten = torch.ops.aten


class _Sizes:
    """Old and new static sizes of tensor dims after slicing."""

    def __init__(self, kept: dict[SizeKey, np.ndarray]):
        self.kept = kept

    def new(self, node: fx.Node, dim: int, index: int = 0) -> int | None:
        val = node.meta.get("val")
        if isinstance(val, (list, tuple)):
            val = val[index]
        if not isinstance(val, torch.Tensor):
            return None
        dim %= val.dim()
        if (node.name, index, dim) in self.kept:
            return len(self.kept[(node.name, index, dim)])
        return static_size(val.shape[dim])

    def old(self, node: fx.Node, dim: int, index: int = 0) -> int | None:
        val = node.meta.get("val")
        if isinstance(val, (list, tuple)):
            val = val[index]
        return static_size(val.shape[dim]) if isinstance(val, torch.Tensor) else None

    def changed(self, node: fx.Node, dim: int, index: int = 0) -> bool:
        val = node.meta.get("val")
        rank = (val[index] if isinstance(val, (list, tuple)) else val).dim()
        return (node.name, index, dim % rank) in self.kept

    def count_before(self, node: fx.Node, dim: int, position: int) -> int:
        """How many kept indices of ``node``'s dim lie below ``position``."""
        return int(np.searchsorted(self.kept[(node.name, 0, dim)], position))


# ---------------------------------------------------------------------------- argument rewriters
Rewriter = Callable[[fx.Node, _Sizes], None]


def _set_arg(node: fx.Node, position: int, name: str, value: Any) -> None:
    if position < len(node.args):
        args = list(node.args)
        args[position] = value
        node.args = tuple(args)
    else:
        node.kwargs = {**node.kwargs, name: value}


def _is_size(entry: Any) -> bool:
    """A size entry to rewrite: a literal (not -1) or a symbolic size computed in the graph. A
    channel count read from a tensor's shape at run time (``c`` of ``x.shape`` where export left
    it symbolic) still holds the unsliced count of that tensor, not the count of this output."""
    return (isinstance(entry, int) and entry != -1) or isinstance(entry, fx.Node)


def _shape_arg(position: int, name: str) -> Rewriter:
    """The op's size list is its output shape (view, reshape, expand, new_zeros, full ...)."""

    def rewrite(node: fx.Node, sizes: _Sizes) -> None:
        shape = arg(node, position, name)
        if not isinstance(shape, (list, tuple)):
            return
        shape = list(shape)
        for d, entry in enumerate(shape):
            if _is_size(entry) and sizes.changed(node, d):
                shape[d] = sizes.new(node, d)
        _set_arg(node, position, name, shape)

    return rewrite


def _unflatten(node: fx.Node, sizes: _Sizes) -> None:
    dim = int(arg(node, 1, "dim"))
    rank = node.meta["val"].dim()
    parts = list(arg(node, 2, "sizes"))
    start = dim % (rank - len(parts) + 1)
    for k, entry in enumerate(parts):
        if _is_size(entry) and sizes.changed(node, start + k):
            parts[k] = sizes.new(node, start + k)
    _set_arg(node, 2, "sizes", parts)


def _split(node: fx.Node, sizes: _Sizes) -> None:
    """split / chunk become split_with_sizes with the new segment sizes."""
    x = arg(node, 0, "self")
    outputs = node.meta["val"]
    rank = outputs[0].dim()
    dim = int(arg(node, 2, "dim", 0)) % rank
    if not any(sizes.changed(node, dim, i) for i in range(len(outputs))):
        return
    new = [sizes.new(node, dim, i) for i in range(len(outputs))]
    node.target = aten.split_with_sizes.default
    node.args = (x, new, dim)
    node.kwargs = {}


def _slice(node: fx.Node, sizes: _Sizes) -> None:
    x = arg(node, 0, "self")
    rank = x.meta["val"].dim()
    dim = int(arg(node, 1, "dim", 0)) % rank
    if not sizes.changed(x, dim):
        return
    old = sizes.old(x, dim)
    start, end = arg(node, 2, "start", 0), arg(node, 3, "end", None)
    start = 0 if start is None else (start + old if start < 0 else start)
    end = old if end is None or (isinstance(end, int) and end >= old) else (end + old if end < 0 else end)
    node.args = (x, dim, sizes.count_before(x, dim, start), sizes.count_before(x, dim, end), 1)
    node.kwargs = {}


def _slice_scatter(node: fx.Node, sizes: _Sizes) -> None:
    """The window of ``slice_scatter(x, src, dim, start, end)`` counted in ``x``'s kept channels."""
    x, src = arg(node, 0, "self"), arg(node, 1, "src")
    dim = int(arg(node, 2, "dim", 0)) % x.meta["val"].dim()
    if not sizes.changed(x, dim):
        return
    start, end = slice_bounds(arg(node, 3, "start"), arg(node, 4, "end"), sizes.old(x, dim))
    node.args = (x, src, dim, sizes.count_before(x, dim, start), sizes.count_before(x, dim, end), 1)
    node.kwargs = {}


def _repeat_interleave(node: fx.Node, sizes: _Sizes) -> None:
    """An ``output_size`` given to ``repeat_interleave`` is the repeated dim's new size."""
    dim = arg(node, 2, "dim")
    if node.kwargs.get("output_size") is not None and dim is not None and sizes.changed(node, int(dim)):
        node.kwargs = {**node.kwargs, "output_size": sizes.new(node, int(dim))}


def _narrow(node: fx.Node, sizes: _Sizes) -> None:
    x = arg(node, 0, "self")
    dim = int(arg(node, 1, "dim")) % x.meta["val"].dim()
    if sizes.changed(x, dim):
        start = int(arg(node, 2, "start"))
        node.args = (x, dim, sizes.count_before(x, dim, start), sizes.new(node, dim))
        node.kwargs = {}


def _groups_arg(position: int, name: str, channel_dim_of_input: int = 1) -> Rewriter:
    """Grouped conv / GroupNorm: whole groups are dropped, so the count scales with the channels."""

    def rewrite(node: fx.Node, sizes: _Sizes) -> None:
        groups = int(arg(node, position, name, 1))
        x = arg(node, 0, "input")
        if groups > 1 and sizes.changed(x, channel_dim_of_input):
            per_group = sizes.old(x, channel_dim_of_input) // groups
            _set_arg(node, position, name, sizes.new(x, channel_dim_of_input) // per_group)

    return rewrite


def _native_group_norm(node: fx.Node, sizes: _Sizes) -> None:
    x = arg(node, 0, "input")
    if sizes.changed(x, 1):
        per_group = sizes.old(x, 1) // int(arg(node, 6, "group"))
        _set_arg(node, 4, "C", sizes.new(x, 1))
        _set_arg(node, 6, "group", sizes.new(x, 1) // per_group)


def _convolution(node: fx.Node, sizes: _Sizes) -> None:
    _groups_arg(8, "groups")(node, sizes)


REWRITERS: dict[Any, Rewriter] = {
    aten.view.default: _shape_arg(1, "size"),
    aten._unsafe_view.default: _shape_arg(1, "size"),
    aten.reshape.default: _shape_arg(1, "shape"),
    aten.expand.default: _shape_arg(1, "size"),
    aten.new_zeros.default: _shape_arg(1, "size"),
    aten.new_ones.default: _shape_arg(1, "size"),
    aten.new_empty.default: _shape_arg(1, "size"),
    aten.new_full.default: _shape_arg(1, "size"),
    aten.zeros.default: _shape_arg(0, "size"),
    aten.ones.default: _shape_arg(0, "size"),
    aten.empty.memory_format: _shape_arg(0, "size"),
    aten.full.default: _shape_arg(0, "size"),
    aten.unflatten.int: _unflatten,
    aten.split.Tensor: _split,
    aten.split_with_sizes.default: _split,
    aten.chunk.default: _split,
    aten.unsafe_split.Tensor: _split,
    aten.slice.Tensor: _slice,
    aten.narrow.default: _narrow,
    aten.slice_scatter.default: _slice_scatter,
    aten.repeat_interleave.self_int: _repeat_interleave,
    aten.conv1d.default: _groups_arg(6, "groups"),
    aten.conv2d.default: _groups_arg(6, "groups"),
    aten.conv3d.default: _groups_arg(6, "groups"),
    aten.conv_transpose1d.default: _groups_arg(6, "groups"),
    aten.conv_transpose2d.input: _groups_arg(6, "groups"),
    aten.conv_transpose3d.input: _groups_arg(6, "groups"),
    aten.convolution.default: _convolution,
    aten.group_norm.default: _groups_arg(1, "num_groups"),
    aten.native_group_norm.default: _native_group_norm,
    **PHANTOM_REWRITERS,
}


def _normalized_shape(node: fx.Node, sizes: _Sizes) -> None:
    """LayerNorm over the kept channels only (``Spec(norm="renormalize")``): its normalized shape is
    the input's sliced trailing sizes."""
    x = arg(node, 0, "input")
    shape = list(arg(node, 1, "normalized_shape"))
    rank = x.meta["val"].dim()
    _set_arg(node, 1, "normalized_shape", [sizes.new(x, rank - len(shape) + k) for k in range(len(shape))])


# norm="renormalize": plain statistics over whatever channels remain (only LayerNorm names a size)
RENORMALIZED_REWRITERS: dict[Any, Rewriter] = {
    **{target: rewrite for target, rewrite in REWRITERS.items() if target not in PHANTOM_REWRITERS},
    aten.layer_norm.default: _normalized_shape,
}


# ---------------------------------------------------------------------------- the pass
def _slice_tensors(gm: fx.GraphModule, kept: dict[SizeKey, np.ndarray]) -> int:
    """Slice every parameter/buffer along each of its member dims; returns elements removed."""
    attr_of = {n.name: str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    removed = 0
    for (node, _, dim), indices in kept.items():
        name = attr_of.get(node)
        if name is None:
            continue
        owner_name, _, leaf = name.rpartition(".")
        owner = gm.get_submodule(owner_name) if owner_name else gm
        tensor = getattr(owner, leaf)
        index = torch.as_tensor(indices, dtype=torch.long, device=tensor.device)
        sliced = tensor.detach().index_select(dim, index).clone()
        removed += tensor.numel() - sliced.numel()
        if isinstance(tensor, nn.Parameter):
            setattr(owner, leaf, nn.Parameter(sliced, requires_grad=tensor.requires_grad))
        else:
            owner.register_buffer(leaf, sliced, persistent=leaf not in owner._non_persistent_buffers_set)
    return removed


def _rewrite_sizes(gm: fx.GraphModule, kept: dict[SizeKey, np.ndarray], norm: str) -> None:
    """Rewrite every op argument of ``gm`` that encodes a sliced channel count, in place; statistics
    as ``norm`` (``Spec.norm``) says."""
    sizes = _Sizes(kept)
    rewriters = RENORMALIZED_REWRITERS if norm == "renormalize" else REWRITERS
    for node in list(gm.graph.nodes):  # phantom-statistics rewrites replace the node they visit
        rewrite = rewriters.get(node.target)
        if rewrite is not None:
            rewrite(node, sizes)


class SliceChannels(PassBase[int]):
    """Remove the dropped units of ``keep`` from the GraphModule it is given; produces the number
    of parameter/buffer elements removed.

    Not in place: the module given is left as it was (graph, parameters and buffers); the result
    is a deep copy of it whose graph is rewritten and whose sliced tensors are new. The module must
    have the node names of ``graph.gm`` (``graph.gm`` itself, or a copy whose weight modules were
    folded) and no weight modules left (:class:`PreconditionError` otherwise).
    """

    name = "slice_channels"
    in_place = False

    def __init__(self, graph: ChannelGraph, keep: Mapping[int, np.ndarray]):
        super().__init__()
        self.graph, self.keep = graph, keep

    def requires(self, gm: fx.GraphModule) -> None:
        weight_modules = [name for name, child in gm.named_children() if isinstance(child, WeightModules)]
        if weight_modules:
            raise PreconditionError(f"{self.name}: the model still has the weight modules under '{weight_modules[0]}'; "
                                    "fold them first (fold_weight_modules)", self.name)
        names = {n.name for n in gm.graph.nodes}
        missing = sorted({m.node for g in self.graph.groups for m in g.members} - names)
        if missing:
            raise PreconditionError(f"{self.name}: the model has no node '{missing[0]}' of the channel analysis; "
                                    "slice the model that was analyzed (or a copy of it)", self.name)

    def call(self, gm: fx.GraphModule) -> PassResult[int]:
        graph = self.graph.rebind(gm)
        kept = kept_indices(graph, check_keep(graph, self.keep))
        sliced = copy_graph_module(gm)
        removed = _slice_tensors(sliced, kept)
        _rewrite_sizes(sliced, kept, graph.norm)
        return PassResult(sliced, True, removed)


def slice_channels(graph: ChannelGraph, keep: Mapping[int, np.ndarray]) -> fx.GraphModule:
    """A smaller copy of ``graph.gm`` with the dropped units removed (:class:`SliceChannels` run on
    ``graph.gm``, which stays as it was).

    >>> import numpy as np, torch, fxprune
    >>> from fxprune.models import build
    >>> from fxprune.passes.slice_channels import slice_channels
    >>> graph = fxprune.analyze(build("edsr", blocks=2, channels=16), torch.randn(1, 3, 16, 16))
    >>> trunk = graph.groups[0]
    >>> small = slice_channels(graph, {trunk.id: np.arange(trunk.channels) < 8})
    >>> small.get_parameter("head.weight").shape, graph.gm.get_parameter("head.weight").shape
    (torch.Size([8, 3, 3, 3]), torch.Size([16, 3, 3, 3]))
    """
    return SliceChannels(graph, keep)(graph.gm).gm
