"""Channel-coupling rules: how each op ties the channels of its inputs and outputs.

The built-in rules are listed explicitly below (no import-order magic). Users add rules for their
own ops with :func:`register_coupling`.
"""
from __future__ import annotations

import functools
import operator
from typing import Any, Iterable

import torch

from .. import opaque  # noqa: F401 - registers torch.ops.fxprune.opaque
from ..spec import NORM_MODES
from . import rules_elementwise as ew
from . import rules_layers as layers
from . import rules_reduce as red
from . import rules_shape as shape
from .context import CouplingContext, Diagnostic, Space
from .registry import CouplingRegistry, Rule

aten = torch.ops.aten


def _ops(*names: str) -> list[Any]:
    """The aten overload packets that exist in this torch build (older builds lack a few)."""
    return [getattr(aten, n) for n in names if hasattr(aten, n)]


BUILTIN_RULES: list[tuple[list[Any], Rule]] = [
    # layers with weights
    (_ops("conv1d", "conv2d", "conv3d"), layers.conv),
    (_ops("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"), layers.conv_transpose),
    (_ops("convolution", "_convolution"), layers.convolution),
    (_ops("linear"), layers.linear),
    # normalizations
    (_ops("batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
          "_native_batch_norm_legit_functional", "cudnn_batch_norm"), layers.batch_norm),
    (_ops("instance_norm"), layers.instance_norm),
    (_ops("group_norm"), layers.group_norm),
    (_ops("native_group_norm"), layers.native_group_norm),
    (_ops("layer_norm", "native_layer_norm"), layers.layer_norm),
    (_ops("prelu", "_prelu_kernel"), layers.prelu),
    # identity-like
    (_ops("clone", "contiguous", "alias", "detach", "dropout", "feature_dropout", "alpha_dropout",
          "feature_alpha_dropout", "native_dropout", "_to_copy", "to", "type_as", "lift_fresh_copy",
          "lift_fresh", "_conj", "resolve_conj", "resolve_neg", "zeros_like", "ones_like", "empty_like",
          "full_like", "rand_like", "randn_like", "hardswish", "hardsigmoid", "relu6", "celu",
          "selu", "rrelu", "hardshrink", "softshrink", "log_sigmoid", "threshold", "silu", "gelu",
          "hardtanh", "leaky_relu", "elu", "softplus", "mish"), ew.identity),
    (_ops("glu"), ew.glu),
    (_ops("zeros", "ones", "full", "empty", "new_zeros", "new_ones", "new_full", "new_empty",
          "scalar_tensor", "empty_strided"), ew.fresh),
    (_ops("where", "masked_fill", "lerp", "addcmul", "addcdiv"), ew.broadcast),
    # copy(x, src) / x.copy_(src): src broadcast into x's shape; copy_ into a view of a channel
    # slice (x[:, :k] = conv(x[:, :k]), RealPLKSR) writes src's channels into the slice's
    (_ops("copy", "copy_"), ew.broadcast),
    (_ops("sym_size", "sym_numel", "sym_stride", "sym_storage_offset", "_assert_tensor_metadata",
          "_assert_scalar", "_assert_async", "_functional_assert_async", "_local_scalar_dense"), ew.ignore),
    # shape ops
    (_ops("view", "_unsafe_view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as",
          "reshape_as", "squeeze_copy", "unsqueeze_copy", "view_copy"), shape.reshape),
    (_ops("permute", "movedim", "permute_copy"), shape.permute),
    (_ops("transpose", "swapaxes", "swapdims", "t", "transpose_copy"), shape.transpose),
    (_ops("expand", "expand_as", "expand_copy", "broadcast_to"), shape.expand),
    (_ops("cat", "concat", "concatenate"), shape.cat),
    (_ops("stack"), shape.stack),
    (_ops("split", "split_with_sizes", "chunk", "unsafe_split", "unsafe_split_with_sizes",
          "unsafe_chunk", "tensor_split"), shape.split),
    (_ops("unbind"), shape.unbind),
    (_ops("slice", "slice_copy"), shape.slice_),
    (_ops("slice_scatter"), shape.slice_scatter),
    (_ops("repeat_interleave"), shape.repeat_interleave),
    (_ops("narrow"), shape.narrow),
    (_ops("select", "select_copy"), shape.select),
    (_ops("pixel_shuffle"), shape.pixel_shuffle),
    (_ops("pixel_unshuffle"), shape.pixel_unshuffle),
    (_ops("pad", "constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
          "replication_pad1d", "replication_pad2d", "replication_pad3d", "circular_pad2d"), shape.pad),
    (_ops("repeat", "tile", "flip", "roll"), shape.tiled),
    ([operator.getitem], shape.getitem),
    ([torch.ops.fxprune.opaque], ew.opaque_leaf),
    ([aten.max.other, aten.min.other, aten.maximum, aten.minimum], ew.broadcast),
    # reductions and contractions
    (_ops("sum", "mean", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "prod",
          "norm", "linalg_vector_norm", "logsumexp", "argmax", "argmin", "any", "all", "nansum",
          "nanmean", "median"), red.reduction),
    (_ops("softmax", "_softmax", "log_softmax", "_log_softmax", "cumsum", "cumprod", "logcumsumexp",
          "special_softmax"), red.along_dim),
    (_ops("matmul", "mm", "bmm"), red.matmul),
    (_ops("addmm", "baddbmm"), red.addmm),
    (_ops("einsum"), red.einsum),
    (_ops("scaled_dot_product_attention"), red.attention),
    (_ops("avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool1d", "max_pool2d", "max_pool3d",
          "max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
          "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
          "_adaptive_avg_pool2d", "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
          "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d",
          "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d", "upsample_bicubic2d",
          "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa", "grid_sampler", "grid_sampler_2d"), red.spatial),
]


def default_registry() -> CouplingRegistry:
    """A fresh registry holding only the built-in rules."""
    registry = CouplingRegistry(pointwise=ew.broadcast)
    for targets, rule in BUILTIN_RULES:
        registry.register(targets, rule)
    return registry


_user_registry = default_registry()


def registry() -> CouplingRegistry:
    """The registry :func:`fxprune.analyze` uses: built-ins plus what users registered."""
    return _user_registry


_STATISTICS_RULES = (red.reduction, red.along_dim, layers.layer_norm)


def registry_for(norm: str = "exact") -> CouplingRegistry:
    """The registry for a statistics mode (``Spec.norm``): ``"exact"`` is :func:`registry`, where
    channels read by LayerNorm, mean/var/std, amax/amin or softmax are prunable (the slicing pass
    keeps their statistics exact), and so are ``"renormalize"`` (the same channels are prunable;
    slicing computes plain statistics over the kept ones) and ``"auto"``; ``"fixed"`` keeps those channels as
    they are, as fxprune did before it had the exact forms. Rules users registered for these ops are kept in both.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> x = torch.randn(1, 3, 16, 16)
    >>> [fxprune.analyze(build("nafnet"), x, norm=norm).groups[0].kind for norm in ("exact", "fixed")]
    ['coupled', 'fixed']
    """
    if norm not in NORM_MODES:
        raise ValueError(f"unknown statistics mode {norm!r}; choose one of {', '.join(NORM_MODES)}")
    if norm != "fixed":
        return registry()
    fixed = registry().copy()
    for targets, rule in BUILTIN_RULES:
        if rule in _STATISTICS_RULES:
            builtin = [t for t in targets if fixed.get(t) is rule]
            fixed.register(builtin, functools.partial(rule, exact=False))
    return fixed


def register_coupling(targets: Any | Iterable[Any], rule: Rule) -> None:
    """Teach fxprune how an op couples channels.

    ``targets`` is an ATen op (``torch.ops.mylib.fancy.default`` or the packet
    ``torch.ops.mylib.fancy``), its name as a string (``"mylib::fancy"``), or a list of them.
    ``rule(node, ctx)`` must tie, fix or cover every static dim of the node's tensor inputs and
    outputs; see :class:`fxprune.coupling.CouplingContext`. Reuse a built-in rule when the op
    behaves like one, e.g. an elementwise custom activation:

    >>> import fxprune
    >>> from fxprune.coupling import rules_elementwise
    >>> fxprune.register_coupling("mylib::fancy_act", rules_elementwise.identity)
    """
    _user_registry.register(targets, rule)


__all__ = [
    "BUILTIN_RULES", "CouplingContext", "CouplingRegistry", "Diagnostic", "Rule", "Space",
    "default_registry", "register_coupling", "registry", "registry_for",
]
