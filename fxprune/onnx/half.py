"""fp16 ONNX files: weights and activations in float16, inputs and outputs in float16 or float32.

Community runtimes (TensorRT, OpenVINO, ONNX Runtime on GPU) run SR models in fp16. The model is
copied and cast to half in PyTorch before export (so the exporter writes fp16 weights and every
activation in fp16); with float32 I/O the file casts the input to half first and the output back.
The parity check runs the fp32 model on the same inputs in PyTorch: an fp16 file can only match it
to fp16 precision, so its tolerance is :data:`FP16_ATOL_SCALE` of the output's peak.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .common import eval_mode

__all__ = ["DTYPES", "FP16_ATOL_SCALE", "Precision", "check_precision", "half_copy", "io_inputs", "wrapped"]

DTYPES = {"float32": torch.float32, "float16": torch.float16}
# fp16 has an 11-bit mantissa (relative step 1e-3); a dozen layers of rounding stay within 1% of the
# output's peak on the tested architectures, while a wrong weight or a dropped op does not
FP16_ATOL_SCALE = 1e-2


@dataclass(frozen=True)
class Precision:
    """The dtype of the weights and activations, and that of the file's inputs and outputs."""

    weights: str
    io: str


def check_precision(dtype: Any, io_dtype: Any) -> Precision:
    """``dtype`` and ``io_dtype`` (default: ``dtype``) checked against :data:`DTYPES`.

    >>> check_precision("float16", None), check_precision("float16", "float32").io
    (Precision(weights='float16', io='float16'), 'float32')
    >>> check_precision("bfloat16", None)
    Traceback (most recent call last):
    ...
    ValueError: dtype must be one of float32, float16, got 'bfloat16'
    """
    for name, value in (("dtype", dtype), ("io_dtype", io_dtype)):
        if value is not None and value not in DTYPES:
            raise ValueError(f"{name} must be one of {', '.join(DTYPES)}, got {value!r}")
    if dtype == "float32" and io_dtype not in (None, "float32"):
        raise ValueError(f"io_dtype={io_dtype!r} needs dtype='float16' (an fp32 model has fp32 inputs and outputs)")
    return Precision(dtype, io_dtype or dtype)


class _Half(nn.Module):
    """The model in half, with inputs and outputs in ``io``."""

    def __init__(self, model: nn.Module, io: torch.dtype):
        super().__init__()
        self.model, self.io = model, io

    def forward(self, x: torch.Tensor) -> Any:  # one named input: the exporter matches dynamic shapes to it
        out = self.model(x.half())
        return out.to(self.io) if isinstance(out, torch.Tensor) else tuple(t.to(self.io) for t in out)


class _Reference(nn.Module):
    """The fp32 model, fed the file's inputs, giving outputs in the file's I/O dtype."""

    def __init__(self, model: nn.Module, io: torch.dtype):
        super().__init__()
        self.model, self.io = model, io

    def forward(self, x: torch.Tensor) -> Any:
        out = self.model(x.float())
        return out.to(self.io) if isinstance(out, torch.Tensor) else tuple(t.to(self.io) for t in out)


def half_copy(model: nn.Module, inputs: tuple[torch.Tensor, ...], precision: Precision
              ) -> tuple[nn.Module, nn.Module]:
    """(what to export: a half copy of ``model`` with I/O in ``precision.io``, the parity check's
    reference: ``model`` itself in fp32, fed and answering in ``precision.io``)."""
    io = DTYPES[precision.io]
    if len(inputs) != 1 or not inputs[0].is_floating_point():
        raise ValueError(f"an fp16 export takes a model with one floating-point input (an image); this one takes "
                         f"{len(inputs)} ({', '.join(str(t.dtype) for t in inputs)}): export it in float32")
    with eval_mode(model):
        half = _Half(_constants_to_half(copy.deepcopy(model).half()), io).eval()
    return half, _Reference(model, io)


def wrapped(model: nn.Module) -> nn.Module:
    """The model a :func:`half_copy` wraps (a captured graph keeps its dynamic dims there), else ``model``."""
    return model.model if isinstance(model, _Half) else model


def _constants_to_half(model: nn.Module) -> nn.Module:
    """``Module.half`` converts parameters and buffers only. A captured graph also holds plain tensor
    attributes (constants torch.export lifted) and ops that make fp32 tensors as it runs (SwinIR's
    shifted-window attention mask: ``zeros`` with no dtype, at sizes other than the example's),
    which would meet fp16 activations: convert those attributes and make those ops produce fp16."""
    for module in model.modules():
        for name, value in list(vars(module).items()):
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter) and value.dtype == torch.float32:
                setattr(module, name, value.half())
        if isinstance(module, torch.fx.GraphModule) and sum(_make_half(node) for node in module.graph.nodes):
            module.recompile()
    return model


def _make_half(node: torch.fx.Node) -> bool:
    """Turn an fp32 dtype argument of ``node`` into fp16, or give fp16 to an op that made an fp32
    tensor by default (``zeros`` without a dtype); True if the node changed."""
    args = tuple(torch.float16 if a is torch.float32 else a for a in node.args)
    kwargs = {k: torch.float16 if v is torch.float32 else v for k, v in node.kwargs.items()}
    val = node.meta.get("val")
    schema = getattr(node.target, "_schema", None)
    if (node.op == "call_function" and "dtype" not in kwargs and isinstance(val, torch.Tensor)
            and val.dtype == torch.float32 and schema is not None
            and any(a.name == "dtype" and a.kwarg_only for a in schema.arguments)):
        kwargs["dtype"] = torch.float16
    if args == node.args and kwargs == node.kwargs:
        return False
    node.args, node.kwargs = args, kwargs
    return True


def io_inputs(inputs: tuple[torch.Tensor, ...], precision: Precision) -> tuple[torch.Tensor, ...]:
    """The example inputs in the file's I/O dtype (floating-point ones only)."""
    return tuple(t.to(DTYPES[precision.io]) if t.is_floating_point() else t for t in inputs)
