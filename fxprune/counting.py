"""Multiply-accumulates (MACs) and parameter counts of a model, read off its exported ATen graph.

:func:`count_macs` captures the model with :func:`fxprune.trace` (or takes a ``GraphModule`` that
``fxprune.trace`` returned, e.g. one a pass has sliced) and runs that graph **once on the real
example inputs** through a :class:`torch.fx.Interpreter`, pricing every ATen op from the real
shapes of its arguments and result. The fake tensors in ``node.meta["val"]`` are not used: they
may be symbolic in H and W, and passes that rewrite sizes do not refresh them.

What one MAC is, op by op (``N`` is the batch, the product of all leading dims):

* **convolution** (1-D/2-D/3-D, grouped, depthwise): ``Cout·(Cin/groups)·prod(kernel)·N·prod(output
  spatial)``, which is ``weight.numel()·N·prod(output spatial)``;
* **transposed convolution**: ``Cin·(Cout/groups)·prod(kernel)·N·prod(INPUT spatial)`` — every
  input pixel is multiplied by the whole kernel once (the scatter view), so stride and
  ``output_padding`` do not inflate the count;
* **linear / mm / addmm / bmm / baddbmm / matmul / mv / dot / einsum**: one MAC per multiply of
  the contraction, ``output.numel() · K`` with ``K`` the contracted length (for ``nn.Linear`` on
  ``[B, N, C]`` that is ``B·N·C·out_features``);
* **scaled_dot_product_attention**: ``B·L·S·(E + Ev)`` for the two products plus ``B·L·S`` for the
  softmax;
* **bias** of conv / linear / addmm / baddbmm is **not** counted (the common convention: the add is
  folded into the accumulator);
* **normalization** (batch / group / instance / layer / RMS norm): one MAC per element — in
  inference a norm is one scale-and-shift per element, the statistics are not priced;
* **elementwise arithmetic between two tensors** (``add``, ``sub``, ``mul``, ``div``, ``maximum``,
  ``addcmul``, ...; broadcasting allowed): one MAC per output element. The same op with a Python
  scalar (``x * 0.5``, ``x + 1``) costs nothing, like every unary op and activation (ReLU, GELU,
  sigmoid, PReLU, sqrt, ...);
* **pooling, reductions and resampling** (max/avg/adaptive pooling, ``mean``/``sum``/``amax``/
  vector norms, every ``upsample_*``): one MAC per output element;
* **softmax** / log-softmax: one MAC per element;
* data movement (views, permutes, ``cat``, ``pad``, ``pixel_shuffle``, slicing, copies) is free.

Any other ATen op is counted as zero and named in :attr:`MacReport.uncounted`.

With ``weight_masks`` (parameter name -> 0/1 tensor of the parameter's shape, e.g. an N:M mask),
every conv / linear / matmul whose weight is a masked parameter costs ``(mask.sum() /
mask.numel())`` of its dense MACs: only the kept weights are multiplied. A model converted by
an N:M method (``sls``, ``nm``) carries N and M per weight in its record, so its masked layers
cost N/M of their dense MACs without being told (also after ``fxprune.save`` / ``load``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

import torch
import torch.fx as fx
from torch import nn
from torch.utils import _pytree as pytree

from .record import record_of
from .trace import as_inputs, trace, trace_if_cached

__all__ = ["LayerMacs", "MacReport", "count_macs", "count_params"]


class LayerMacs(NamedTuple):
    """One priced node of the graph: ``(node, module, op, macs, kind)``.

    ``module`` is the qualified name of the innermost ``nn.Module`` the op ran in (from
    ``node.meta["nn_module_stack"]``, else the owner of its weight); ``op`` is the ATen op name;
    ``kind`` is one of ``conv``, ``linear`` (a product with a parameter), ``matmul`` (a product of
    two activations), ``attention``, ``norm``, ``elementwise``, ``pool``, ``resample``, ``softmax``.
    """

    node: str
    module: str
    op: str
    macs: int
    kind: str


@dataclass(frozen=True)
class MacReport:
    """MACs of one forward: the ``total`` and one :class:`LayerMacs` per priced node, in graph order.

    ``uncounted`` names the ATen ops the graph ran that have no pricing rule (counted as zero).
    ``int(report)`` is the total.
    """

    total: int
    layers: tuple[LayerMacs, ...] = ()
    uncounted: tuple[str, ...] = ()
    input_shapes: tuple[tuple[int, ...], ...] = field(default=(), compare=False)

    def __int__(self) -> int:
        return self.total

    def by_kind(self) -> dict[str, int]:
        """MACs summed per kind of op (``conv``, ``linear``, ``norm``, ...)."""
        out: dict[str, int] = {}
        for layer in self.layers:
            out[layer.kind] = out.get(layer.kind, 0) + layer.macs
        return out

    def by_module(self) -> dict[str, int]:
        """MACs summed per module qualified name (``""`` is the root module)."""
        out: dict[str, int] = {}
        for layer in self.layers:
            out[layer.module] = out.get(layer.module, 0) + layer.macs
        return out

    def table(self, *, top: int | None = None) -> str:
        """A readable table of the layers (the ``top`` most expensive if given) and the total.

        >>> import torch
        >>> print(count_macs(torch.nn.Conv2d(3, 8, 3, padding=1), torch.randn(1, 3, 4, 4), per_layer=True).table())
        node    module  op      kind   MACs   share
        conv2d  <root>  conv2d  conv  3,456  100.0%
        total                         3,456
        """
        if top is not None and (not isinstance(top, int) or isinstance(top, bool) or top < 0):
            raise ValueError(f"top must be a non-negative int or None, got {top!r}")
        rows = list(self.layers)
        if top is not None:
            rows = sorted(rows, key=lambda r: -r.macs)[:top]
        body = [
            (r.node, r.module or "<root>", r.op, r.kind, f"{r.macs:,}",
             f"{100.0 * r.macs / self.total:.1f}%" if self.total else "-")
            for r in rows
        ]
        header = ("node", "module", "op", "kind", "MACs", "share")
        footer = ("total", "", "", "", f"{self.total:,}", "")
        widths = [max(len(row[i]) for row in [header, *body, footer]) for i in range(len(header))]

        def line(row: tuple[str, ...]) -> str:
            cells = [row[i].ljust(widths[i]) for i in range(4)] + [row[4].rjust(widths[4]), row[5].rjust(widths[5])]
            return "  ".join(cells).rstrip()

        lines = [line(header), *(line(row) for row in body)]
        if top is not None and top < len(self.layers):
            lines.append(f"... {len(self.layers) - top} more layers")
        lines.append(line(footer))
        if self.uncounted:
            lines.append("not priced (counted as 0): " + ", ".join(self.uncounted))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# ------------------------------------------------------------------------------------ op tables
PHANTOM_META = "fxprune_phantom"


@dataclass(frozen=True)
class PhantomPart:
    """Marks a node of an op that slicing rewrote to its exact form over the kept channels
    (passes/phantom_statistics.py): it is priced as the op it replaced (``op``, e.g. a LayerNorm
    is one norm MAC per element, as before slicing), on the ``result`` node; the other parts are free."""

    op: str
    result: bool

_CONV = {"conv1d", "conv2d", "conv3d"}
_CONV_TRANSPOSE = {"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}
_CONVOLUTION = {"convolution", "_convolution", "convolution_overrideable"}  # transposed flag at arg 6
# op name -> (positions of the two product operands)
_PRODUCTS: dict[str, tuple[int, int]] = {
    "linear": (0, 1), "mm": (0, 1), "matmul": (0, 1), "bmm": (0, 1), "mv": (0, 1), "dot": (0, 1),
    "vdot": (0, 1), "inner": (0, 1), "addmm": (1, 2), "baddbmm": (1, 2), "addmv": (1, 2),
}
_ATTENTION = {
    "scaled_dot_product_attention", "_scaled_dot_product_attention_math",
    "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
}
_NORMS = {
    "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit_functional", "_batch_norm_with_update", "_batch_norm_no_update",
    "instance_norm", "group_norm", "native_group_norm", "layer_norm", "native_layer_norm", "rms_norm",
    "_fused_rms_norm",
}
_ELEMENTWISE = {
    "add", "sub", "rsub", "mul", "div", "true_divide", "maximum", "minimum", "fmax", "fmin", "pow",
    "lerp", "addcmul", "addcdiv", "hypot", "atan2", "xlogy", "copysign",
}
_POOLS = {
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "fractional_max_pool2d",
    "fractional_max_pool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d",
    # reductions: a global pooling over some dims
    "mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "linalg_vector_norm",
    "norm", "logsumexp", "nansum", "nanmean",
}
_RESAMPLE = {
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d",
    "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "upsample_linear1d", "upsample_bilinear2d",
    "upsample_bicubic2d", "upsample_trilinear3d", "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa",
    "grid_sampler", "grid_sampler_2d", "grid_sampler_3d",
}
_SOFTMAX = {"softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax"}
# Ops that move or create data, or are otherwise free beyond the pointwise / view ops.
_FREE = {
    "cat", "concat", "concatenate", "stack", "hstack", "vstack", "pad", "constant_pad_nd", "reflection_pad1d",
    "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d", "replication_pad3d",
    "circular_pad", "_pad_circular", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle",
    "clone", "contiguous", "copy", "_to_copy", "to", "type_as", "reshape", "flatten", "unflatten", "split",
    "split_with_sizes", "tensor_split", "chunk", "unbind", "roll", "flip", "repeat", "repeat_interleave", "tile",
    "index", "index_select", "gather", "scatter", "index_put", "slice_scatter", "select_scatter",
    "masked_fill", "masked_scatter", "where", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "empty", "empty_like", "new_zeros", "new_ones", "new_full", "new_empty", "arange", "linspace",
    "scalar_tensor", "lift_fresh_copy", "_assert_tensor_metadata", "_assert_scalar", "sym_constrain_range_for_size",
    "_assert_async", "sym_size", "sym_numel", "sym_stride", "sym_storage_offset", "dropout", "native_dropout",
    "feature_dropout", "alpha_dropout", "expand_as", "view_as", "reshape_as", "detach", "alias", "prelu",
    "_prelu_kernel", "embedding", "item", "_local_scalar_dense", "rand", "randn", "rand_like", "randn_like",
    "bernoulli", "triu", "tril", "im2col", "col2im", "unfold", "fill", "zero", "set_", "resize_",
    "_unsafe_view", "clamp", "clip",
}
# Ops a weight may pass through on its way to a product (their result has the weight's density).
_WEIGHT_VIEWS = {
    "t", "permute", "transpose", "view", "reshape", "_unsafe_view", "expand", "unsqueeze", "squeeze",
    "contiguous", "clone", "alias", "detach", "flatten", "_to_copy", "to", "type_as", "numpy_T", "mT",
}


def _op_name(target: Any) -> str | None:
    """``aten.add_.Tensor`` -> ``add``; None for anything that is not an ATen op overload."""
    if isinstance(target, torch._ops.OpOverload):
        name = target.overloadpacket.__name__
    elif isinstance(target, torch._ops.OpOverloadPacket):
        name = target.__name__
    else:
        return None
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def _is_free(target: Any, name: str) -> bool:
    if name in _FREE or name in _WEIGHT_VIEWS:
        return True
    if isinstance(target, torch._ops.OpOverload):
        if getattr(target, "is_view", False):
            return True
        if torch.Tag.pointwise in target.tags:  # unary math, activations, comparisons, scalar arithmetic
            return True
    return False


# ------------------------------------------------------------------------------------ helpers
def _prod(values: Iterable[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _get(args: tuple, kwargs: dict, position: int, name: str, default: Any = None) -> Any:
    if position < len(args):
        return args[position]
    return kwargs.get(name, default)


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def _module_of(node: fx.Node) -> str | None:
    stack = node.meta.get("nn_module_stack")
    if stack:
        path = list(stack.values())[-1][0]
        return str(path) if path is not None else None
    return None


def _param_source(value: Any, limit: int = 16) -> str | None:
    """The get_attr target a product operand comes from, through views/transposes/copies."""
    node = value
    for _ in range(limit):
        if not isinstance(node, fx.Node):
            return None
        if node.op == "get_attr":
            return str(node.target)
        if node.op != "call_function" or _op_name(node.target) not in _WEIGHT_VIEWS or not node.args:
            return None
        node = node.args[0]
    return None


def _check_masks(weight_masks: Any, params: Mapping[str, torch.Tensor], where: str) -> dict[str, tuple[int, int]]:
    """Validate ``weight_masks`` against ``params``; returns ``name -> (kept, numel)``."""
    if weight_masks is None:
        return {}
    if not isinstance(weight_masks, Mapping):
        raise TypeError("weight_masks must be a dict of parameter name -> 0/1 tensor, "
                        f"got {type(weight_masks).__name__}")
    out: dict[str, tuple[int, int]] = {}
    for name, mask in weight_masks.items():
        if not isinstance(name, str):
            raise TypeError(f"weight_masks keys must be parameter names (str), got {name!r}")
        if name not in params:
            close = [p for p in params if p.endswith(name) or name.endswith(p)][:3]
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(f"weight_masks names {name!r}, which is not a parameter of {where}{hint}")
        if not isinstance(mask, torch.Tensor):
            try:
                mask = torch.as_tensor(mask)
            except Exception as error:  # noqa: BLE001 - any unconvertible value is a user error
                raise TypeError(f"weight_masks[{name!r}] must be a tensor, got {type(mask).__name__}") from error
        shape = tuple(params[name].shape)
        if tuple(mask.shape) != shape:
            raise ValueError(f"weight_masks[{name!r}] has shape {tuple(mask.shape)}, the parameter has shape {shape}")
        if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"weight_masks[{name!r}] must contain only 0 and 1 (or False/True)")
        out[name] = (int((mask != 0).sum()), mask.numel())
    return out


def _scaled(dense: int, density: tuple[int, int] | None) -> int:
    if density is None:
        return dense
    kept, numel = density
    if numel == 0:
        return 0
    return (dense * kept + numel // 2) // numel  # exact whenever numel divides dense·kept (conv, linear)


# ------------------------------------------------------------------------------------ counting
class _Pricer(fx.Interpreter):
    """Runs the graph on real tensors and prices every ATen call from the real shapes."""

    def __init__(self, gm: fx.GraphModule, densities: dict[str, tuple[int, int]]):
        super().__init__(gm, garbage_collect_values=True)
        self.densities = densities
        self.layers: list[LayerMacs] = []
        self.uncounted: set[str] = set()

    def run_node(self, n: fx.Node) -> Any:
        if n.op != "call_function":
            return super().run_node(n)
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            result = self.call_function(n.target, args, kwargs)
        self._price(n, args, kwargs, result)
        return result

    def _record(self, n: fx.Node, name: str, macs: int, kind: str, weight: str | None = None) -> None:
        module = _module_of(n)
        if module is None:
            module = weight.rpartition(".")[0] if weight else ""
        self.layers.append(LayerMacs(n.name, module, name, int(macs), kind))

    def _price(self, n: fx.Node, args: tuple, kwargs: dict, result: Any) -> None:
        name = _op_name(n.target)
        if name is None:  # operator.getitem, SymInt arithmetic, ... ; a higher-order op hides a subgraph
            if isinstance(n.target, torch._ops.HigherOrderOperator):
                self.uncounted.add(str(getattr(n.target, "__name__", n.target)))
            return
        phantom = n.meta.get(PHANTOM_META)
        if phantom is not None:
            if not phantom.result:
                return
            name = phantom.op
        out = _first_tensor(result)
        if name in ("max", "min") and getattr(n.target, "_overloadname", "") == "other":
            name = "maximum" if name == "max" else "minimum"  # the elementwise overload, not a reduction
        if name in _CONV or name in _CONV_TRANSPOSE or name in _CONVOLUTION:
            self._conv(n, name, args, kwargs, out)
        elif name in _PRODUCTS:
            self._product(n, name, args, kwargs, out)
        elif name == "einsum":
            self._einsum(n, args, kwargs, out)
        elif name in _ATTENTION:
            q, k, v = (_get(args, kwargs, i, key) for i, key in enumerate(("query", "key", "value")))
            batch, length, source = _prod(q.shape[:-2]), q.shape[-2], k.shape[-2]
            macs = batch * length * source * (q.shape[-1] + v.shape[-1] + 1)
            self._record(n, name, macs, "attention")
        elif name in _NORMS:
            self._record(n, name, _get(args, kwargs, 0, "input").numel(), "norm")
        elif name in _ELEMENTWISE:
            operands = [a for a in args if isinstance(a, torch.Tensor)]
            if len(operands) >= 2 and out is not None:
                self._record(n, name, out.numel(), "elementwise")
        elif name in _POOLS:
            if out is not None:
                self._record(n, name, out.numel(), "pool")
        elif name in _RESAMPLE:
            if out is not None:
                self._record(n, name, out.numel(), "resample")
        elif name in _SOFTMAX:
            if out is not None:
                self._record(n, name, out.numel(), "softmax")
        elif not _is_free(n.target, name):
            self.uncounted.add(name)

    def _conv(self, n: fx.Node, name: str, args: tuple, kwargs: dict, out: torch.Tensor | None) -> None:
        x, w = _get(args, kwargs, 0, "input"), _get(args, kwargs, 1, "weight")
        transposed = name in _CONV_TRANSPOSE or (
            name in _CONVOLUTION and bool(_get(args, kwargs, 6, "transposed", False)))
        spatial = w.dim() - 2
        # weight is [Cout, Cin/g, *k] (conv) or [Cin, Cout/g, *k] (transposed): numel = Cout·Cin/g·prod(k)
        batch = _prod(x.shape[: x.dim() - spatial - 1])
        positions = _prod(x.shape[-spatial:]) if transposed else _prod(out.shape[-spatial:])
        weight = _param_source(n.args[1] if len(n.args) > 1 else n.kwargs.get("weight"))
        dense = w.numel() * batch * positions
        self._record(n, name, _scaled(dense, self.densities.get(weight)), "conv", weight)

    def _product(self, n: fx.Node, name: str, args: tuple, kwargs: dict, out: torch.Tensor | None) -> None:
        i, j = _PRODUCTS[name]
        a = args[i]
        contracted = a.shape[-1] if a.dim() else 1
        dense = (out.numel() if out is not None else 0) * contracted
        sources = [_param_source(n.args[p]) for p in (i, j) if p < len(n.args)]
        masked = [s for s in sources if s is not None and s in self.densities]
        weight = next((s for s in sources if s is not None), None)
        macs = _scaled(dense, self.densities[masked[0]]) if masked else dense
        kind = "linear" if weight is not None or name == "linear" else "matmul"
        self._record(n, name, macs, kind, weight)

    def _einsum(self, n: fx.Node, args: tuple, kwargs: dict, out: torch.Tensor | None) -> None:
        equation = str(_get(args, kwargs, 0, "equation")).replace(" ", "")
        operands = list(_get(args, kwargs, 1, "tensors", ()))
        if len(operands) < 2 or out is None or "->" not in equation:
            if len(operands) >= 2:
                self.uncounted.add("einsum (implicit output)")
            return
        inputs, output = equation.split("->")
        sizes: dict[str, int] = {}
        for spec, tensor in zip(inputs.split(","), operands):
            head, _, tail = spec.partition("...")
            for letter, size in zip(head, tensor.shape):
                sizes[letter] = int(size)
            for letter, size in zip(reversed(tail), reversed(tensor.shape)):
                sizes[letter] = int(size)
        contracted = _prod(size for letter, size in sizes.items() if letter not in output)
        macs = out.numel() * contracted * (len(operands) - 1)
        weight = next((s for s in (_param_source(o) for o in n.args[1]) if s), None) if len(n.args) > 1 else None
        self._record(n, "einsum", macs, "linear" if weight else "matmul", weight)


def nm_layers(model: nn.Module) -> dict[str, dict[str, Any]]:
    """``param -> {"n", "m", "hardware"}`` of a converted N:M model, from its record
    (``meta["fxprune"].nm``, restored by :func:`fxprune.load`; see :mod:`fxprune.record`)."""
    record = record_of(model)
    return dict(record.nm or {}) if record is not None else {}


def nm_record(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``param -> (N, M)`` of a converted N:M model (see :func:`nm_layers`)."""
    return {str(p): (int(v["n"]), int(v["m"])) for p, v in nm_layers(model).items()}


def nm_densities(model: nn.Module, params: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """Densities (kept, numel) of the N:M weights a converted model's record names."""
    return {p: (params[p].numel() * n // m, params[p].numel()) for p, (n, m) in nm_record(model).items() if p in params}


def _graph_of(model: nn.Module, inputs: tuple[Any, ...]) -> fx.GraphModule:
    if isinstance(model, fx.GraphModule) and "fxprune_capture" in model.meta:
        return model
    cached = trace_if_cached(model, inputs)  # the capture analyze/compress made: it counts as a static one does
    return cached if cached is not None else trace(model, inputs, dynamic_hw=False)  # at this one size: static is enough


def count_macs(
    model: nn.Module,
    example_inputs: Any,
    *,
    per_layer: bool = False,
    weight_masks: Mapping[str, torch.Tensor] | None = None,
) -> int | MacReport:
    """Multiply-accumulates of one forward of ``model`` on ``example_inputs`` (the whole batch).

    ``model`` is an ``nn.Module`` (captured with :func:`fxprune.trace`) or a ``GraphModule`` that
    ``fxprune.trace`` returned or a pass derived from it (used as is). The graph is run once on
    the real inputs, so the count is exact for that input size. See the module docstring for
    what each op costs; in short: conv/linear/matmul products, one per element of norms,
    tensor-tensor arithmetic, pooling, resampling and softmax; bias adds and activations are free.

    ``weight_masks`` maps parameter names (as in ``model.named_parameters()``) to 0/1 tensors of
    the parameter's shape; a conv/linear/matmul whose weight is masked then costs
    ``mask.sum() / mask.numel()`` of its dense MACs. Masks on other parameters change nothing.

    Returns the total as an ``int``, or a :class:`MacReport` with one row per priced op when
    ``per_layer`` is true.

    Raises ``TypeError`` for a model, input, ``per_layer`` or ``weight_masks`` of the wrong type,
    ``KeyError`` for a mask naming no parameter, ``ValueError`` for a mask of the wrong shape or
    not 0/1 and for inputs the graph cannot run on, and :class:`fxprune.CaptureError` when
    ``torch.export`` cannot capture the model.

    >>> import torch
    >>> conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    >>> count_macs(conv, torch.randn(1, 3, 16, 16))  # 8·3·3·3 weights at 16·16 positions
    55296
    >>> mask = (torch.arange(conv.weight.numel()) % 2).reshape(conv.weight.shape)
    >>> count_macs(conv, torch.randn(1, 3, 16, 16), weight_masks={"weight": mask})
    27648
    >>> count_macs(torch.nn.Linear(8, 4), torch.randn(2, 5, 8), per_layer=True).by_kind()
    {'linear': 320}
    """
    if not isinstance(model, nn.Module):
        raise TypeError("model must be a torch.nn.Module or a GraphModule from fxprune.trace, "
                        f"got {type(model).__name__}")
    if not isinstance(per_layer, bool):
        raise TypeError(f"per_layer must be a bool, got {type(per_layer).__name__}")
    inputs = as_inputs(example_inputs)
    leaves = pytree.tree_leaves(inputs)
    if not any(isinstance(leaf, torch.Tensor) for leaf in leaves):
        raise TypeError("example_inputs must contain at least one tensor, e.g. (torch.randn(1, 3, 64, 64),)")
    if weight_masks is not None and not isinstance(weight_masks, Mapping):
        raise TypeError("weight_masks must be a dict of parameter name -> 0/1 tensor, "
                        f"got {type(weight_masks).__name__}")
    # Validate masks against the caller's model first: its names are the ones the caller knows.
    _check_masks(weight_masks, dict(model.named_parameters(remove_duplicate=False)), type(model).__name__)
    gm = _graph_of(model, inputs)
    densities = _check_masks(weight_masks, dict(gm.named_parameters(remove_duplicate=False)), "the traced graph")
    densities = {**nm_densities(model, dict(gm.named_parameters(remove_duplicate=False))), **densities}
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(leaves):
        raise ValueError(f"the graph takes {len(placeholders)} input(s), example_inputs has {len(leaves)}")
    flat = [leaf.detach().clone() if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves]
    pricer = _Pricer(gm, densities)
    saved = [(b, b.detach().clone()) for b in gm.buffers()]  # a training-mode forward updates BN stats
    try:
        with torch.no_grad():
            pricer.run(*flat)
    except Exception as error:  # noqa: BLE001 - re-raised with the input shapes
        shapes = [tuple(t.shape) for t in flat if isinstance(t, torch.Tensor)]
        raise ValueError(f"could not run {type(model).__name__} on inputs of shape {shapes}: "
                         f"{type(error).__name__}: {error}") from error
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
    total = sum(layer.macs for layer in pricer.layers)
    if not per_layer:
        return total
    return MacReport(
        total=total,
        layers=tuple(pricer.layers),
        uncounted=tuple(sorted(pricer.uncounted)),
        input_shapes=tuple(tuple(t.shape) for t in flat if isinstance(t, torch.Tensor)),
    )


def count_params(model: nn.Module, *, weight_masks: Mapping[str, torch.Tensor] | None = None) -> int:
    """Number of parameters of ``model`` (an ``nn.Module`` or ``GraphModule``); buffers excluded.

    A parameter shared by several modules is counted once. With ``weight_masks`` (parameter name
    -> 0/1 tensor of its shape) a masked parameter counts only its non-zero mask entries.

    >>> import torch
    >>> conv = torch.nn.Conv2d(4, 8, 3)
    >>> count_params(conv)  # 8·4·3·3 weights + 8 biases
    296
    >>> count_params(conv, weight_masks={"weight": torch.zeros(8, 4, 3, 3)})
    8
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = dict(model.named_parameters(remove_duplicate=False))
    densities = _check_masks(weight_masks, named, type(model).__name__)
    kept_by_id: dict[int, int] = {}
    for name, p in named.items():
        count = densities[name][0] if name in densities else p.numel()
        key = id(p)
        kept_by_id[key] = min(kept_by_id.get(key, count), count)  # an alias may carry the mask
    return sum(kept_by_id.values())
