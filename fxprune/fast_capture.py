"""A cheaper capture for forwards whose Python never looks at an input size.

``torch.export`` spends most of its time on symbolic shapes: every op computes its output sizes
as sympy expressions of the input's batch, height and width, so that the graph can run at other
sizes. A forward whose Python code never reads a size of an activation (a plain CNN: convs,
activations, adds, PixelShuffle, channel attention) calls the same ops with the same arguments at
every input size, so a trace at the example size alone is already a graph for every size.

:func:`capture_size_blind` traces once with ``make_fx`` (pre-dispatch ATen ops, the same op set
``torch.export`` records) on fake tensors with static shapes, and watches the forward while it
runs: a read of an activation's size, stride or length from Python (``x.shape``, ``x.size(2)``,
``len(x)``, iterating a tensor, ``F.interpolate`` computing an output size), or an op that
returns a number of tensors the batch could change (``unbind``, ``split`` along a dimension
other than the channels), means the graph may have baked a size in. The capture then returns
None and the caller uses ``torch.export`` with dynamic shapes. The graph it returns has the
layout of ``ExportedProgram.module()``: weights as ``get_attr`` nodes named by their module
path, placeholders named after the forward's arguments, ``nn_module_stack`` on every op, and the
forward's own output structure.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import sys
from typing import Any, Iterator

import torch
import torch.fx as fx
from torch import nn
import torch.fx.config
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

logger = logging.getLogger("fxprune.capture")

_SIZE_READS = frozenset({
    torch.Tensor.size, torch.Tensor.shape.__get__, torch.Tensor.numel, torch.Tensor.nelement,
    torch.Tensor.__len__, torch.Tensor.__iter__, torch.Tensor.stride, torch.Tensor.storage_offset,
})
_SPLITS = frozenset({
    torch.split, torch.Tensor.split, torch.chunk, torch.Tensor.chunk, torch.unbind, torch.Tensor.unbind,
    torch.tensor_split, torch.Tensor.tensor_split, torch.Tensor.split_with_sizes, torch.split_with_sizes,
})
_TORCH_DIR = torch.__file__.rsplit("/", 1)[0] + "/"
# Python code inside torch that is part of a model's forward (its reads count as the model's).
_FORWARD_CODE = (_TORCH_DIR + "nn/functional.py", _TORCH_DIR + "nn/modules/")
# Size reads that only validate (they raise or pass, never shape the graph).
_VALIDATING = frozenset({"_verify_batch_size", "_verify_spatial_size"})


class _SizeWatch(TorchFunctionMode):
    """Stops the trace where the forward first observes a batch/height/width-dependent value."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        reads = func in _SIZE_READS or (func in _SPLITS and not _splits_channels(func, args, kwargs))
        if reads and (caller := _forward_frame()) is not None:
            raise _ReadsSize(f"{getattr(func, '__name__', func)} in {caller}")  # the graph cannot be used
        return func(*args, **kwargs)


class _ReadsSize(Exception):
    """The forward observed a size; raised out of the trace to end it early."""


def _splits_channels(func, args, kwargs) -> bool:
    """A split along dim 1 of an NCHW tensor (IMDN's distillation, NAFNet's gate): the number
    of pieces depends on the channels only, which never vary."""
    if func in (torch.unbind, torch.Tensor.unbind):
        return False
    tensor = args[0] if args else None
    dim = kwargs.get("dim", args[2] if len(args) > 2 else 0)
    return isinstance(tensor, torch.Tensor) and tensor.dim() == 4 and isinstance(dim, int) and dim in (1, -3)


def _forward_frame() -> str | None:
    """``file:function`` of the model code that made the call, or None for torch's own machinery."""
    frame = sys._getframe(2)
    # torch/functional.py: torch.split is Python there and dispatches from there, like Tensor.split in _tensor.py
    while frame is not None and (frame.f_code.co_name == "__torch_function__"  # the tracer's own modes
                                 or frame.f_code.co_filename.endswith(("torch/overrides.py", "torch/_tensor.py",
                                                                       "torch/functional.py"))):
        frame = frame.f_back
    if frame is None:
        return None
    filename, name = frame.f_code.co_filename, frame.f_code.co_name
    if name in _VALIDATING:
        return None
    if filename.startswith(_TORCH_DIR) and not filename.startswith(_FORWARD_CODE):
        return None
    return f"{filename}:{name}"


def capture_size_blind(model: nn.Module, inputs: tuple[Any, ...], dynamic_hw: bool = True) -> fx.GraphModule | None:
    """Trace ``model`` on ``inputs`` at static shapes; None when the forward reads a size.

    The returned graph shares ``model``'s submodules, parameters and buffers (the caller owns
    ``model``, a copy of the user's). Raises what ``make_fx`` raises when tracing fails.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
    >>> gm = capture_size_blind(net, (torch.randn(1, 3, 8, 8),))
    >>> gm(torch.randn(2, 3, 12, 10)).shape
    torch.Size([2, 8, 12, 10])
    >>> class Flatten(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x.view(x.shape[0], -1)
    >>> capture_size_blind(Flatten(), (torch.randn(1, 3, 8, 8),)) is None
    True
    """
    state = {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers(remove_duplicate=False))}
    names = list(state)
    flat_inputs, in_spec = pytree.tree_flatten((inputs, {}))
    out_spec: list[pytree.TreeSpec] = []

    def forward(*flat: Any) -> tuple[Any, ...]:
        args, kwargs = pytree.tree_unflatten(list(flat[len(names):]), in_spec)
        out = torch.func.functional_call(model, dict(zip(names, flat[:len(names)])), args, kwargs, strict=False)
        leaves, spec = pytree.tree_flatten(out)
        out_spec.append(spec)
        return tuple(leaves)

    forward._orig_mod = model  # type: ignore[attr-defined]  # make_fx records nn_module_stack under this root
    try:
        with _SizeWatch(), torch.backends.cudnn.flags(enabled=False), without_stack_traces():  # export records cudnn off
            traced = make_fx(forward, tracing_mode="fake", pre_dispatch=True, record_module_stack=True,
                             _disable_torch_fn_metadata_mode=True)(*state.values(), *flat_inputs)
    except _ReadsSize as read:
        logger.debug("size-blind capture not used: the forward reads a size (%s)", read)
        return None
    return _as_exported_layout(model, traced, names, _input_names(model, len(flat_inputs)), in_spec, out_spec[-1],
                               dynamic_hw)


@contextlib.contextmanager
def without_stack_traces() -> Iterator[None]:
    """make_fx's module-stack tracer (capture, and the ONNX exporter's decompositions) records a Python stack
    trace per node; nothing fxprune writes or reads uses it."""
    before = torch.fx.config.do_not_emit_stack_traces
    torch.fx.config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        torch.fx.config.do_not_emit_stack_traces = before


def _input_names(model: nn.Module, count: int) -> list[str]:
    """The forward's own argument names for the placeholders, as ``torch.export`` names them."""
    try:
        params = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:count]]
    return names + [f"arg{i}" for i in range(len(names), count)]


def _mark_sizes_free(placeholders: list[fx.Node], dynamic_hw: bool) -> None:
    """Give each image input a fake value whose batch (and height and width with ``dynamic_hw``)
    are symbols, as ``torch.export`` leaves them: code that asks which input sizes may vary
    (verification at another size, ONNX export, shape refreshes) reads it the same way.

    The symbols start from a batch of 2 (a size-1 dim would be fixed) and the example's height
    and width; every later refresh of the graph's shapes propagates them."""
    mode = FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv())
    free = [DimDynamic.DYNAMIC, DimDynamic.STATIC] + [DimDynamic.DYNAMIC if dynamic_hw else DimDynamic.STATIC] * 2
    for node in placeholders:
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor) and val.dim() == 4:
            # never written: empty() only reserves memory; the device is what the fake value must report
            hint = torch.empty((max(2, val.shape[0]), *val.shape[1:]), dtype=val.dtype, device=val.device)
            node.meta["val"] = mode.from_tensor(hint, symbolic_context=StatelessSymbolicContext(dynamic_sizes=free))


def _as_exported_layout(model: nn.Module, traced: fx.GraphModule, state_names: list[str], input_names: list[str],
                        in_spec: pytree.TreeSpec, out_spec: pytree.TreeSpec, dynamic_hw: bool) -> fx.GraphModule:
    graph = traced.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    anchor = placeholders[len(state_names)] if len(placeholders) > len(state_names) else placeholders[-1].next
    with graph.inserting_before(anchor):
        for node, name in zip(placeholders, state_names):
            attr = graph.create_node("get_attr", name)  # get_attr() would look it up in make_fx's module
            attr.meta.update(node.meta)
            node.replace_all_uses_with(attr)
            graph.erase_node(node)
    inputs = placeholders[len(state_names):]
    for node, name in zip(inputs, input_names):
        node.target = name
        node._rename(name)  # through the graph's namespace, as export names them (``input`` becomes ``input_1``)
    _mark_sizes_free(inputs, dynamic_hw)
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack:
            node.meta["nn_module_stack"] = {"L__self__" + path: value for path, value in stack.items()}
    root = nn.Module()
    for name, child in model.named_children():
        root.add_module(name, child)
    for name, tensor in [*model.named_parameters(recurse=False), *model.named_buffers(recurse=False)]:
        if isinstance(tensor, nn.Parameter):
            root.register_parameter(name, tensor)
        else:
            root.register_buffer(name, tensor)
    for name, value in vars(traced).items():  # tensors the forward created (torch.tensor(...)), kept by make_fx
        if name.startswith("_tensor_constant") and isinstance(value, torch.Tensor):
            root.register_buffer(name, value, persistent=False)
    graph._codegen = fx.graph._PyTreeCodeGen(fx.graph._PyTreeInfo(input_names, in_spec, out_spec))
    return fx.GraphModule(root, graph)
