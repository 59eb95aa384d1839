"""Export a model (plain ``nn.Module`` or an fxprune GraphModule, dense or sliced) to ONNX and check it.

:func:`export_onnx` writes one self-contained ``.onnx`` file whose input is named ``input`` and
output ``output``, with dynamic height and width (and batch, where the model allows it), then runs
the file in a real ONNX Runtime session on new random inputs of *other* image sizes than the
example and compares with PyTorch. A mismatch raises :class:`fxprune.errors.ParityError`.

Exporter choice (torch 2.13): the dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``
fed with our own non-strict ``torch.export`` program) is used first. It exports every zoo model,
dense and sliced, with symbolic H/W that stay correct at other sizes. The TorchScript exporter
(``dynamo=False`` with ``dynamic_axes``) is only a fallback: it is ~10x faster, but it traces with
concrete sizes, so reshapes in a sliced GraphModule (SwinIR windows, Restormer heads) get the
example's H/W baked in while the file still *declares* dynamic axes — the parity check on other
sizes is what catches that. Measured on the zoo at default sizes (2 CPU cores): dynamo 1-14 s
per model (SwinIR and NAFNet are the slow ones: symbolic-shape work in torch.export and the ONNX
decompositions), TorchScript 0.1-1.6 s but wrong for sliced SwinIR and Restormer at other sizes.

Opset: torch 2.13's exporter implements opset 18 and converts down with ONNX's version converter,
which has no 18 -> 17 adapter for Pad and Split; models that use them (NAFNet, UNet, SwinIR pad
to a multiple; IMDN, Restormer split channels) are written at opset 18 with a warning, and
``report.opset`` says what the file holds.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.fx as fx
from torch import nn

from ..errors import ParityError
from ..fast_capture import without_stack_traces
from ..trace import _quiet_torch_logs, export_program, without_fake_tensor_cache
from .decomposition_tables import reused_decomposition_tables
from .torchlib_registry import reused_torchlib_registry
from .common import OnnxExportError, as_tensors, clones, eval_mode, first_line, flatten, make_inputs, size_steps
from .finish import finish_file
from .half import FP16_ATOL_SCALE, Precision, check_precision, half_copy, io_inputs, wrapped
from .metadata import file_metadata
from .parity import ATOL_SCALE, check_onnx_parity

# Above this many bytes of weights the file cannot be a single protobuf (2 GiB limit): weights go
# to an external data file next to it.
_SINGLE_FILE_LIMIT = 1_800_000_000


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and how well ONNX Runtime matched PyTorch.

    ``max_abs_error`` is the largest error over all checked inputs and ``tolerance`` the tolerance
    of that same check (``atol_scale * max(0.01, max |reference output|)``); both are ``None`` when
    the check was skipped. ``checked_shapes`` holds the shape of ``input`` at each check and
    ``exporter`` is ``"dynamo"`` or ``"torchscript"``; ``checked_shapes`` is empty without a
    check. ``opset`` is read back from the file (it can be above the requested one, see
    :func:`export_onnx`). ``dynamic`` is False when the file's height/width are fixed at the
    example's size (asked for, or the model runs at no other size).
    """

    path: Path
    opset: int
    max_abs_error: float | None
    tolerance: float | None
    checked_shapes: tuple[tuple[int, ...], ...]
    exporter: str
    dynamic: bool = True  # height/width dynamic in the file (False: fixed at the example's size)


def _prepare_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    target = Path(path)
    if str(path) == "" or target.is_dir():
        raise ValueError(f"path must name a file, got the directory {str(path)!r}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the directory {str(target.parent)!r} for {str(path)!r}: {error}") from error
    return target


def _check_options(opset: Any, atol_scale: Any, dynamic_hw: Any, check: Any) -> None:
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 17:
        raise ValueError(f"opset must be an int >= 17, got {opset!r}")
    if isinstance(atol_scale, bool) or not isinstance(atol_scale, (int, float)) or not (
        math.isfinite(atol_scale) and atol_scale > 0
    ):
        raise ValueError(f"atol_scale must be a positive finite number, got {atol_scale!r}")
    for name, value in (("dynamic_hw", dynamic_hw), ("check", check)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _other_size_failure(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> str | None:
    """None when the PyTorch model runs at some other height/width than the example, else why not."""
    first = next((t for t in inputs if t.dim() == 4), None)
    if first is None:
        return None
    n, _, h, w = first.shape
    generator = torch.Generator().manual_seed(0)
    last: Exception | None = None
    steps = size_steps(h, w)
    with torch.no_grad(), eval_mode(model):
        for s in steps:
            try:
                model(*make_inputs(inputs, n, h + s, w + 2 * s, generator))
                return None
            except Exception as error:  # noqa: BLE001 - the model does not run at this size
                last = error
    return f"tried steps {steps}; last error: {first_line(last) if last else '?'}"


def _names(prefix: str, count: int) -> list[str]:
    return [prefix if i == 0 else f"{prefix}{i}" for i in range(count)]


def _io_names(model: nn.Module, kind: str, count: int) -> list[str]:
    """The model's own ONNX names (``onnx_names()["input"/"output"]``, e.g. a routed model's ``image, beta``), else ``_names``."""
    declared = getattr(model, "onnx_names", None)
    names = list(declared().get(kind) or ()) if callable(declared) else []
    return names if len(names) == count else _names(kind, count)


def _placeholder_dims(model: nn.Module) -> list[tuple[bool, ...]] | None:
    """For a GraphModule captured by torch.export: which dims of each input are symbolic."""
    if not isinstance(model, fx.GraphModule):
        return None
    dims = []
    for node in model.graph.nodes:
        if node.op != "placeholder":
            continue
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            return None
        dims.append(tuple(not isinstance(s, int) for s in val.shape))
    return dims


def _weight_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch's and onnxscript's progress prints and logs (onnxscript logs a traceback when
    ONNX's version converter has no adapter for an op); what matters is raised or warned here."""
    loggers = [logging.getLogger(n) for n in ("onnxscript", "onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with _quiet_torch_logs(), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@dataclass(frozen=True)
class _Attempt:
    """One try at writing the file: what to export, where, at which opset, with which dims dynamic."""

    model: nn.Module
    inputs: tuple[torch.Tensor, ...]
    path: Path
    opset: int
    dynamic_hw: bool
    batch_dynamic: bool
    outputs: list[torch.Tensor]  # the model's outputs on the example (their count and ranks)
    external: bool  # the weights go to an external data file


def _dynamo_export(job: _Attempt) -> None:
    inputs = job.inputs
    # the fake-tensor cache: export_program's and the decompositions' fake modes
    with _quiet(), without_fake_tensor_cache(), reused_torchlib_registry(), reused_decomposition_tables(), \
            without_stack_traces():
        program = export_program(job.model, inputs, dynamic_hw=job.dynamic_hw, dynamic_batch=job.batch_dynamic,
                                 dim=torch.export.Dim.DYNAMIC)
        torch.onnx.export(
            program, (), str(job.path), dynamo=True, opset_version=job.opset, external_data=job.external,
            input_names=_io_names(job.model, "input", len(inputs)),
            output_names=_io_names(job.model, "output", len(job.outputs)),
        )
    finish_file(job.path, inputs, job.opset, job.external)


def _torchscript_export(job: _Attempt) -> None:
    inputs, outputs, dynamic_hw, batch_dynamic = job.inputs, job.outputs, job.dynamic_hw, job.batch_dynamic
    input_names, output_names = _io_names(job.model, "input", len(inputs)), _io_names(job.model, "output", len(outputs))
    axes: dict[str, dict[int, str]] = {}
    for k, (name, t) in enumerate(zip(input_names, inputs)):
        if t.dim() == 4:
            suffix = "" if k == 0 else f"_{k}"
            spec = {0: f"batch{suffix}"} if batch_dynamic else {}
            if dynamic_hw:
                spec.update({2: f"height{suffix}", 3: f"width{suffix}"})
            if spec:
                axes[name] = spec
    for k, (name, t) in enumerate(zip(output_names, outputs)):
        if t.dim() == 4:
            suffix = "" if k == 0 else f"_{k}"
            spec = {0: "batch"} if batch_dynamic else {}
            if dynamic_hw:
                spec.update({2: f"out_height{suffix}", 3: f"out_width{suffix}"})
            if spec:
                axes[name] = spec
    with _quiet():
        torch.onnx.export(
            job.model, clones(inputs), str(job.path), dynamo=False, opset_version=job.opset, input_names=input_names,
            output_names=output_names, dynamic_axes=axes or None,
        )


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    dynamic_hw: bool = True,
    opset: int = 17,
    check: bool = True,
    atol_scale: float | None = None,
    dtype: str = "float32",
    io_dtype: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> ExportReport:
    """Export ``model`` to a self-contained ONNX file at ``path`` and check it in ONNX Runtime.

    ``model`` is a plain ``nn.Module`` (exported in eval mode; its flags are restored) or a
    GraphModule from :func:`fxprune.trace` / ``slice_channels``. The input is named ``input``
    (``input1``, ... for more inputs) and the output ``output``, unless the model names them with an
    ``onnx_names()`` method returning ``{"input": [...], "output": [...]}``. With ``dynamic_hw`` the height
    and width of 4-D inputs are dynamic, and so is the batch for plain modules (a GraphModule
    from torch.export keeps the batch it was captured with). The dynamo exporter is tried first,
    the TorchScript exporter is the fallback (a warning says why); ``report.exporter`` says which
    one wrote the file. A model that runs at no other size than the example in PyTorch, or that
    no exporter can export with a dynamic height/width (or only one that bakes the example's sizes
    in, which the check finds), is exported at the example's size with a ``UserWarning``
    (``report.dynamic`` is then False). ``opset`` below 18 is reached by ONNX's version converter; where it has
    no adapter for an op (Pad, Split) the file keeps opset 18, with a warning, and
    ``report.opset`` is the opset actually written.

    With ``check`` the file runs in an ``onnxruntime.InferenceSession`` (CPU) on new random
    inputs of other heights/widths than the example (see :func:`check_onnx_parity`); an error
    above ``atol_scale * max(0.01, max |reference output|)`` raises
    :class:`fxprune.errors.ParityError`. Weights above ~1.8 GB go to an external data file.
    A model with an ``onnx_metadata()`` method (a ``{key: str}`` dict) has it written into the
    file's metadata (:class:`fxprune.routing.RoutedModel` records its routes and costs so).

    The file's ``metadata_props`` also hold ``input_channels``, ``widths`` (JSON: out/in channels
    per conv/linear layer, see :func:`fxprune.widths.layer_widths`) and, for a model from
    :func:`fxprune.load_checkpoint` or compressed from one, ``architecture``, ``scale``,
    ``output_channels``, ``input_range`` and ``source_file``; ``metadata`` adds or overrides keys.

    ``dtype="float16"`` writes fp16 weights and activations (see :mod:`fxprune.onnx.half`), with
    inputs and outputs in ``io_dtype`` (default: ``dtype``; ``"float32"`` puts casts at both ends);
    the check compares with the fp32 model at ``atol_scale`` (default ``FP16_ATOL_SCALE``, 1e-2 of
    the output's peak, instead of ``ATOL_SCALE``), and the metadata say ``precision`` and ``io_dtype``.

    >>> import tempfile, os, torch
    >>> from fxprune.onnx import export_onnx
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    >>> report = export_onnx(net, os.path.join(tempfile.mkdtemp(), "net.onnx"), torch.randn(1, 3, 16, 16))
    >>> report.exporter, report.opset, report.checked_shapes
    ('dynamo', 17, ((2, 3, 20, 24), (1, 3, 24, 20)))
    >>> report.max_abs_error <= report.tolerance
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = as_tensors(example_inputs)
    precision = check_precision(dtype, io_dtype)
    if atol_scale is None:
        atol_scale = ATOL_SCALE if precision.weights == "float32" else FP16_ATOL_SCALE
    _check_options(opset, atol_scale, dynamic_hw, check)
    target = _prepare_path(path)
    properties = file_metadata(model, inputs, metadata)
    if precision.weights != "float32" or precision.io != "float32":
        return _export_half(model, target, inputs, precision, properties, dynamic_hw=dynamic_hw, opset=opset,
                            check=check, atol_scale=atol_scale)

    captured = _placeholder_dims(model)
    if captured is not None and len(captured) != len(inputs):
        raise ValueError(f"the GraphModule takes {len(captured)} inputs, example_inputs has {len(inputs)}")
    batch_dynamic = dynamic_hw
    inner = _placeholder_dims(wrapped(model)) if captured is None else None
    if inner is not None and len(inner) == len(inputs):  # a half copy of a captured graph: its batch is the graph's
        batch_dynamic = dynamic_hw and all(d[0] for d, t in zip(inner, inputs) if t.dim() == 4)
    if captured is not None:  # a GraphModule from torch.export: its dynamic dims are fixed already
        four_d = [d for d, t in zip(captured, inputs) if t.dim() == 4]
        batch_dynamic = dynamic_hw and all(d[0] for d in four_d)
        if dynamic_hw and not all(d[2] and d[3] for d in four_d):
            raise OnnxExportError(
                "this GraphModule was captured with a static height/width (fxprune.trace falls back to "
                "static sizes when the model does not allow dynamic ones); pass dynamic_hw=False"
            )

    with torch.no_grad(), eval_mode(model):
        try:
            outputs = flatten(model(*clones(inputs)))
        except Exception as error:
            raise OnnxExportError(f"the model does not run on example_inputs: {first_line(error)}") from error
    external = _weight_bytes(model) > _SINGLE_FILE_LIMIT

    static_reason = None
    if dynamic_hw:
        failure = _other_size_failure(model, inputs)
        if failure is not None:
            static_reason = f"the model runs on no other size than the example ({failure})"
    exporter, failures = None, []
    if static_reason is None:
        exporter, failures = _export_file(model, inputs, target, opset, dynamic_hw, batch_dynamic, outputs, external)
        if exporter is None and dynamic_hw:
            static_reason = "no exporter could export it with a dynamic height/width:\n  " + "\n  ".join(failures)
    if static_reason is not None:
        size = next(("x".join(map(str, t.shape[2:])) for t in inputs if t.dim() == 4), "?")
        warnings.warn(f"exporting {type(model).__name__} with a static height/width fixed at the example's "
                      f"{size}: {static_reason}", UserWarning, stacklevel=2)
        dynamic_hw = batch_dynamic = False
        exporter, failures = _export_file(model, inputs, target, opset, False, False, outputs, external)
    if exporter is None:
        raise OnnxExportError(f"could not export {type(model).__name__} to ONNX:\n  " + "\n  ".join(failures))
    if failures:
        note = ""
        if exporter == "torchscript" and dynamic_hw and not check:
            note = (" (the TorchScript exporter may bake the example's sizes into the graph; check=False leaves "
                    "that unverified)")
        warnings.warn(f"ONNX export of {type(model).__name__} used a fallback: " + "; ".join(failures) + note,
                      stacklevel=2)

    import onnx

    written = onnx.load(str(target), load_external_data=False)
    routes = getattr(model, "onnx_metadata", None)  # e.g. fxprune.routing.RoutedModel's routes and costs
    extra = {**properties, **(routes() if callable(routes) else {})}
    if extra:
        onnx.helper.set_model_props(written, {**{p.key: p.value for p in written.metadata_props}, **extra})
        onnx.save(written, str(target))
    try:
        onnx.checker.check_model(str(target))
    except onnx.checker.ValidationError as invalid:
        raise OnnxExportError(f"the exporter wrote an invalid ONNX file ({str(invalid).splitlines()[0]}); "
                              "try opset=18") from invalid
    actual_opset = next((o.version for o in written.opset_import if o.domain in ("", "ai.onnx")), opset)
    if actual_opset != opset:
        warnings.warn(f"requested opset {opset}, the exporter wrote opset {actual_opset}", stacklevel=2)

    error = tolerance = None
    shapes: tuple[tuple[int, ...], ...] = ()
    if check:
        try:
            error, tolerance, shapes = check_onnx_parity(model, target, inputs, atol_scale=atol_scale)
        except ParityError as failure:
            if not (dynamic_hw and exporter == "torchscript"):
                raise
            # dynamo rejected the dynamic sizes and TorchScript baked the example's into a file that
            # only declares them dynamic: the honest file is a static one
            warnings.warn(f"exporting {type(model).__name__} with a static height/width fixed at the example's size: "
                          f"the dynamic export fails at other sizes ({failure})", UserWarning, stacklevel=2)
            return export_onnx(model, target, inputs, dynamic_hw=False, opset=opset, check=True, atol_scale=atol_scale,
                               metadata=metadata)
    return ExportReport(target, int(actual_opset), error, tolerance, shapes, exporter, dynamic_hw)


def _export_file(model: nn.Module, inputs: tuple[torch.Tensor, ...], target: Path, opset: int, dynamic_hw: bool,
                 batch_dynamic: bool, outputs: list[torch.Tensor], external: bool) -> tuple[str | None, list[str]]:
    """Try the exporters in order; (the one that wrote the file or None, the failures before it)."""
    failures: list[str] = []
    with eval_mode(model):
        attempts = [("dynamo", batch_dynamic)] + ([("dynamo", False)] if batch_dynamic else [])
        attempts.append(("torchscript", batch_dynamic))
        for name, batch in attempts:
            job = _Attempt(model, inputs, target, opset, dynamic_hw, batch, outputs, external)
            try:
                (_dynamo_export if name == "dynamo" else _torchscript_export)(job)
            except Exception as error:  # noqa: BLE001 - every failure is reported by the caller
                failures.append(f"{name} exporter{' (dynamic batch)' if batch else ''}: {first_line(error)}")
                continue
            return name, failures
    return None, failures


def _export_half(model: nn.Module, target: Path, inputs: tuple[torch.Tensor, ...], precision: Precision,
                 properties: dict[str, str], *, dynamic_hw: bool, opset: int, check: bool,
                 atol_scale: float) -> ExportReport:
    """The fp16 file (see :mod:`fxprune.onnx.half`), checked against the fp32 model."""
    half, reference = half_copy(model, inputs, precision)
    file_inputs = io_inputs(inputs, precision)
    props = {**properties, "precision": precision.weights, "io_dtype": precision.io}
    written = export_onnx(half, target, file_inputs, dynamic_hw=dynamic_hw, opset=opset, check=False, metadata=props)
    if not check:
        return written
    error, tolerance, shapes = check_onnx_parity(reference, target, file_inputs, atol_scale=atol_scale)
    return dataclasses.replace(written, max_abs_error=error, tolerance=tolerance, checked_shapes=shapes)
