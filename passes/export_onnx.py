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
import io
import logging
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from fxprune.errors import FxpruneError, ParityError
from fxprune.trace import _quiet_torch_logs

__all__ = ["ExportReport", "OnnxExportError", "export_onnx", "check_onnx_parity"]

# Above this many bytes of weights the file cannot be a single protobuf (2 GiB limit): weights go
# to an external data file next to it.
_SINGLE_FILE_LIMIT = 1_800_000_000
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Parity tolerance, relative to the reference output's peak: correct exports of every zoo model
# (dense and sliced, tests/test_export_onnx.py) stay below it, while a 5% error on one conv of a
# small residual branch on top of the input shows at ~2e-5 of the peak (tests/test_export_robust.py).
ATOL_SCALE = 1e-5
_PEAK_FLOOR = 0.01  # an all-zero output still gets a tolerance (1e-7)


class OnnxExportError(FxpruneError):
    """No ONNX exporter could export the model, or it could not be checked."""


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


# ---------------------------------------------------------------------------- validation
def _as_tensors(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)) and example_inputs and all(
        isinstance(t, torch.Tensor) for t in example_inputs
    ):
        return tuple(example_inputs)
    got = type(example_inputs).__name__
    if isinstance(example_inputs, (tuple, list)):
        got = f"{got} of ({', '.join(type(t).__name__ for t in example_inputs)})"
    raise TypeError(
        f"example_inputs must be a tensor or a non-empty tuple of tensors, e.g. (torch.randn(1, 3, 64, 64),); got {got}"
    )


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


# ---------------------------------------------------------------------------- helpers
def _flatten(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _flatten(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in _flatten(item)]
    raise TypeError(f"model outputs must be tensors (or tuples/lists/dicts of tensors), got {type(output).__name__}")


def _clones(inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Fresh copies for one run: a forward that writes its input (``x.sub_(mean)``) must not
    change what the next run (PyTorch or ONNX Runtime) sees."""
    return tuple(t.clone() for t in inputs)


def _size_steps(height: int, width: int) -> list[int]:
    """Offsets ``s`` tried for the other sizes ``(H+s, W+2s)``: 4, 8, 16, ... up to the image size."""
    return [4 * 2**k for k in range(max(1, int(math.log2(max(height, width, 4)))))]


def _other_size_failure(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> str | None:
    """None when the PyTorch model runs at some other height/width than the example, else why not."""
    first = next((t for t in inputs if t.dim() == 4), None)
    if first is None:
        return None
    n, _, h, w = first.shape
    generator = torch.Generator().manual_seed(0)
    last: Exception | None = None
    steps = _size_steps(h, w)
    with torch.no_grad(), _eval_mode(model):
        for s in steps:
            try:
                model(*_make_inputs(inputs, n, h + s, w + 2 * s, generator))
                return None
            except Exception as error:  # noqa: BLE001 - the model does not run at this size
                last = error
    return f"tried steps {steps}; last error: {_first_line(last) if last else '?'}"


def _names(prefix: str, count: int) -> list[str]:
    return [prefix if i == 0 else f"{prefix}{i}" for i in range(count)]


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Run in eval mode and restore every submodule's flag. GraphModules from torch.export have
    their mode baked in (and refuse ``train()``/``eval()``), so they are left alone."""
    if isinstance(model, fx.GraphModule):
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


# ---------------------------------------------------------------------------- exporters
def _dynamo_export(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    path: Path,
    opset: int,
    dynamic_hw: bool,
    batch_dynamic: bool,
    output_count: int,
    external: bool,
) -> None:
    dyn = torch.export.Dim.DYNAMIC
    if batch_dynamic:  # an example batch of 1 would be specialized (0/1 specialization)
        inputs = tuple(
            t.expand(2, *t.shape[1:]).contiguous() if t.dim() == 4 and t.shape[0] == 1 else t for t in inputs
        )
    shapes = []
    for t in inputs:
        spec: dict[int, Any] = {}
        if t.dim() == 4:
            if batch_dynamic:
                spec[0] = dyn
            if dynamic_hw:
                spec[2], spec[3] = dyn, dyn
        shapes.append(spec or None)
    with _quiet():
        program = torch.export.export(model, inputs, dynamic_shapes=tuple(shapes), strict=False)
        torch.onnx.export(
            program, (), str(path), dynamo=True, opset_version=opset, external_data=external,
            input_names=_names("input", len(inputs)), output_names=_names("output", output_count),
        )
    _finish_file(path, inputs, opset, external)


def _finish_file(path: Path, inputs: tuple[torch.Tensor, ...], opset: int, external: bool) -> None:
    """Name the dynamic dims and, where the exporter stayed above the requested opset, retry the
    down-conversion on the optimized graph (the exporter converts before optimizing, and fails on
    ops such as Split and Pad that the optimizer may remove)."""
    import onnx
    import onnx.version_converter

    model = onnx.load(str(path), load_external_data=False)
    _rename_symbols(model, inputs)
    written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if written < 18:
        _split_sizes_as_input(model)
    if written > opset and not external:
        try:
            converted = onnx.version_converter.convert_version(model, opset)
            _drop_default_noop_with_empty_axes(converted, opset)
            onnx.checker.check_model(converted)
        except Exception:  # noqa: BLE001 - no adapter for some op: keep the exporter's opset
            pass
        else:
            model = converted
    onnx.save(model, str(path))


def _split_sizes_as_input(model: Any) -> None:
    """Below opset 18, ``Split`` takes its sizes as an input; the exporter can still write the
    opset-18 ``num_outputs`` attribute, which the checker rejects. Where the outputs' sizes along
    the axis are known (channel splits always are), write them as the ``split`` input instead."""
    import onnx

    known = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
    for node in model.graph.node:
        if node.op_type != "Split" or node.domain not in ("", "ai.onnx"):
            continue
        attributes = {a.name: a for a in node.attribute}
        if "num_outputs" not in attributes or len(node.input) > 1:
            continue
        axis = attributes["axis"].i if "axis" in attributes else 0
        sizes = []
        for name in node.output:
            dims = known[name].type.tensor_type.shape.dim if name in known else []
            dim = dims[axis] if -len(dims) <= axis < len(dims) else None
            if dim is None or not dim.HasField("dim_value"):
                break
            sizes.append(dim.dim_value)
        if len(sizes) != len(node.output):
            continue  # left as written: the checker then names the node
        sizes_name = f"{node.name or node.output[0]}_sizes"
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(sizes, np.int64), sizes_name))
        node.input.append(sizes_name)
        node.attribute.remove(attributes["num_outputs"])


def _drop_default_noop_with_empty_axes(model: Any, opset: int) -> None:
    """ONNX's 18 -> 17 adapter for Reduce* moves ``axes`` back to an attribute but keeps the
    opset-18 attribute ``noop_with_empty_axes``; at its default 0 it means what opset 17 does."""
    if opset >= 18:
        return
    for node in model.graph.node:
        if node.op_type.startswith("Reduce") and node.domain in ("", "ai.onnx"):
            for attribute in list(node.attribute):
                if attribute.name == "noop_with_empty_axes" and attribute.i == 0:
                    node.attribute.remove(attribute)


def _rename_symbols(model: Any, inputs: tuple[torch.Tensor, ...]) -> None:
    """Give the dynamic dims readable names: ``s77`` -> ``batch``, ``2*s53`` -> ``2*height``."""
    mapping: dict[str, str] = {}
    for k, value in enumerate(model.graph.input[: len(inputs)]):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            continue
        for axis, label in ((0, "batch"), (2, "height"), (3, "width")):
            symbol = dims[axis].dim_param
            if symbol and _SYMBOL.fullmatch(symbol) and symbol not in mapping:
                mapping[symbol] = label if k == 0 else f"{label}_{k}"
    if not mapping:
        return
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        if not value.type.HasField("tensor_type"):
            continue
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = _SYMBOL.sub(lambda m: mapping.get(m.group(0), m.group(0)), dim.dim_param)


def _torchscript_export(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    path: Path,
    opset: int,
    dynamic_hw: bool,
    batch_dynamic: bool,
    outputs: list[torch.Tensor],
) -> None:
    input_names, output_names = _names("input", len(inputs)), _names("output", len(outputs))
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
            model, _clones(inputs), str(path), dynamo=False, opset_version=opset, input_names=input_names,
            output_names=output_names, dynamic_axes=axes or None,
        )


# ---------------------------------------------------------------------------- parity check
def _check_sizes(inputs: tuple[torch.Tensor, ...], onnx_dims: list[list[Any]]) -> list[tuple[int, int, int]]:
    """Candidate (batch, height, width) triples to check; each list entry is tried in order."""
    first = next((t for t in inputs if t.dim() == 4), None)
    if first is None:
        return []
    n, _, h, w = first.shape
    dims = next(d for t, d in zip(inputs, onnx_dims) if t.dim() == 4)
    batch = n + 1 if not isinstance(dims[0], int) else n
    return [(batch, h, w), (n, h, w)]


def _make_inputs(inputs: tuple[torch.Tensor, ...], batch: int, height: int, width: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    fresh = []
    for t in inputs:
        shape = (batch, t.shape[1], height, width) if t.dim() == 4 else tuple(t.shape)
        if t.is_floating_point():
            fresh.append(torch.randn(shape, generator=generator, dtype=t.dtype).to(t.device))
        elif t.dim() == 4:
            high = int(t.max().item()) + 1 if t.numel() else 2
            fresh.append(torch.randint(0, max(high, 2), shape, generator=generator, dtype=t.dtype).to(t.device))
        else:
            fresh.append(t.clone())
    return tuple(fresh)


def _error(actual: np.ndarray, expected: np.ndarray) -> float:
    actual, expected = actual.astype(np.float64), expected.astype(np.float64)
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    diff = np.where(same, 0.0, np.abs(actual - expected))
    return float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0


def check_onnx_parity(
    model: nn.Module,
    path: str | os.PathLike,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    atol_scale: float = ATOL_SCALE,
    seed: int = 0,
) -> tuple[float, float, tuple[tuple[int, ...], ...]]:
    """Run ``path`` in ONNX Runtime and compare with ``model`` on new random inputs.

    Where the ONNX file has dynamic height/width, inputs of a different size than the example are
    used: ``(H+s, W+2s)`` and ``(H+2s, W+s)`` for the smallest ``s`` in 4, 8, 16, ... on which the
    PyTorch model runs (so models that need multiples of some size get sizes that suit them); the
    first check also uses batch N+1 when the batch is dynamic. Returns ``(max_abs_error,
    tolerance, checked_shapes)``; raises :class:`~fxprune.errors.ParityError` when the error on
    some input exceeds ``atol_scale * max(0.01, max |reference|)`` or ONNX Runtime fails. The
    tolerance follows the output's scale, with no absolute floor at 1: a model adding a small residual
    to its input (peak ~4, residual ~0.01) must still fail with a 5% error on one conv of the residual.
    """
    import onnxruntime as ort

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = _as_tensors(example_inputs)
    if not Path(path).is_file():
        raise FileNotFoundError(f"no ONNX file at {str(path)!r}")
    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures are raised below with the input shape
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = session.get_inputs()
    if len(feeds) != len(inputs):
        raise ParityError(f"the ONNX file has {len(feeds)} inputs, the example has {len(inputs)}")
    onnx_dims = [list(f.shape) for f in feeds]
    hw_dynamic = any(
        t.dim() == 4 and not (isinstance(d[2], int) and isinstance(d[3], int)) for t, d in zip(inputs, onnx_dims)
    )
    generator = torch.Generator().manual_seed(seed)
    base = _check_sizes(inputs, onnx_dims)

    def reference(fresh: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        with torch.no_grad(), _eval_mode(model):
            return _flatten(model(*_clones(fresh)))

    cases: list[tuple[tuple[torch.Tensor, ...], list[torch.Tensor]]] = []
    if not base:  # no 4-D input: check on new values of the example shapes
        fresh = _make_inputs(inputs, 0, 0, 0, generator)
        cases.append((fresh, reference(fresh)))
    elif not hw_dynamic:
        (b, h, w), (n, _, _) = base
        for batch in dict.fromkeys((b, n)):
            fresh = _make_inputs(inputs, batch, h, w, generator)
            cases.append((fresh, reference(fresh)))
    else:
        (b, h, w), (n, _, _) = base
        steps = _size_steps(h, w)
        last_error: Exception | None = None
        for s in steps:
            try:
                trial = []
                for batch, hh, ww in ((b, h + s, w + 2 * s), (n, h + 2 * s, w + s)):
                    fresh = _make_inputs(inputs, batch, hh, ww, generator)
                    trial.append((fresh, reference(fresh)))
            except Exception as error:  # noqa: BLE001 - the model does not run at this size
                last_error = error
                continue
            cases = trial
            break
        if not cases:
            raise OnnxExportError(
                f"cannot check {path}: the PyTorch model runs on no other size than the example "
                f"(tried steps {steps}); last error: {_first_line(last_error) if last_error else '?'}"
            ) from last_error

    worst: tuple[float, float] = (0.0, 0.0)
    shapes = []
    for fresh, expected in cases:
        shape = tuple(fresh[0].shape)
        shapes.append(shape)
        try:
            actual = session.run(None, {f.name: t.detach().cpu().numpy() for f, t in zip(feeds, fresh)})
        except Exception as error:  # noqa: BLE001 - ORT raises its own exception types
            raise _parity_error(f"ONNX Runtime failed on input shape {shape}: {_first_line(error)}",
                                math.inf, math.nan, shape) from error
        if len(actual) != len(expected):
            raise _parity_error(f"ONNX Runtime returned {len(actual)} outputs, PyTorch {len(expected)} "
                                f"(input shape {shape})", math.inf, math.nan, shape)
        ref = [t.detach().cpu().numpy() for t in expected]
        for a, r in zip(actual, ref):
            if a.shape != r.shape:
                raise _parity_error(f"ONNX Runtime output shape {a.shape} != PyTorch {r.shape} "
                                    f"on input shape {shape}", math.inf, math.nan, shape)
        error = max(_error(a, r) for a, r in zip(actual, ref))
        finite = [np.abs(r[np.isfinite(r)]).max() for r in ref if np.isfinite(r).any()]
        tolerance = atol_scale * max(_PEAK_FLOOR, float(max(finite, default=0.0)))
        if not error <= tolerance:
            raise _parity_error(
                f"ONNX Runtime differs from PyTorch on input shape {shape}: max abs error {error:.3g} > "
                f"tolerance {tolerance:.3g} (atol_scale {atol_scale:g} x max(0.01, max|reference|))",
                error, tolerance, shape)
        if error >= worst[0]:
            worst = (error, tolerance)
    return worst[0], worst[1], tuple(shapes)


def _parity_error(message: str, error: float, tolerance: float, shape: tuple[int, ...]) -> ParityError:
    exc = ParityError(message)
    exc.max_abs_error, exc.tolerance, exc.input_shape = error, tolerance, shape  # type: ignore[attr-defined]
    return exc


# ---------------------------------------------------------------------------- entry point
def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    dynamic_hw: bool = True,
    opset: int = 17,
    check: bool = True,
    atol_scale: float = ATOL_SCALE,
) -> ExportReport:
    """Export ``model`` to a self-contained ONNX file at ``path`` and check it in ONNX Runtime.

    ``model`` is a plain ``nn.Module`` (exported in eval mode; its flags are restored) or a
    GraphModule from :func:`fxprune.trace` / ``slice_channels``. The input is named ``input``
    (``input1``, ... for more inputs) and the output ``output``. With ``dynamic_hw`` the height
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

    >>> import tempfile, os, torch
    >>> from fxprune.passes.export_onnx import export_onnx
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
    inputs = _as_tensors(example_inputs)
    _check_options(opset, atol_scale, dynamic_hw, check)
    target = _prepare_path(path)

    captured = _placeholder_dims(model)
    if captured is not None and len(captured) != len(inputs):
        raise ValueError(f"the GraphModule takes {len(captured)} inputs, example_inputs has {len(inputs)}")
    batch_dynamic = dynamic_hw
    if captured is not None:  # a GraphModule from torch.export: its dynamic dims are fixed already
        four_d = [d for d, t in zip(captured, inputs) if t.dim() == 4]
        batch_dynamic = dynamic_hw and all(d[0] for d in four_d)
        if dynamic_hw and not all(d[2] and d[3] for d in four_d):
            raise OnnxExportError(
                "this GraphModule was captured with a static height/width (fxprune.trace falls back to "
                "static sizes when the model does not allow dynamic ones); pass dynamic_hw=False"
            )

    with torch.no_grad(), _eval_mode(model):
        try:
            outputs = _flatten(model(*_clones(inputs)))
        except Exception as error:
            raise OnnxExportError(f"the model does not run on example_inputs: {_first_line(error)}") from error
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
    metadata = getattr(model, "onnx_metadata", None)  # e.g. fxprune.routing.RoutedModel's routes and costs
    if callable(metadata):
        onnx.helper.set_model_props(written, {**{p.key: p.value for p in written.metadata_props}, **metadata()})
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
            return export_onnx(model, target, inputs, dynamic_hw=False, opset=opset, check=True, atol_scale=atol_scale)
    return ExportReport(target, int(actual_opset), error, tolerance, shapes, exporter, dynamic_hw)


def _export_file(model: nn.Module, inputs: tuple[torch.Tensor, ...], target: Path, opset: int, dynamic_hw: bool,
                 batch_dynamic: bool, outputs: list[torch.Tensor], external: bool) -> tuple[str | None, list[str]]:
    """Try the exporters in order; (the one that wrote the file or None, the failures before it)."""
    failures: list[str] = []
    with _eval_mode(model):
        attempts = [("dynamo", batch_dynamic)] + ([("dynamo", False)] if batch_dynamic else [])
        attempts.append(("torchscript", batch_dynamic))
        for name, batch in attempts:
            try:
                if name == "dynamo":
                    _dynamo_export(model, inputs, target, opset, dynamic_hw, batch, len(outputs), external)
                else:
                    _torchscript_export(model, inputs, target, opset, dynamic_hw, batch, outputs)
            except Exception as error:  # noqa: BLE001 - every failure is reported by the caller
                failures.append(f"{name} exporter{' (dynamic batch)' if batch else ''}: {_first_line(error)}")
                continue
            return name, failures
    return None, failures
