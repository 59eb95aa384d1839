"""The parity check: an ONNX file run in ONNX Runtime against the PyTorch model on new inputs."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ParityError
from .common import OnnxExportError, as_tensors, clones, eval_mode, first_line, flatten, make_inputs, size_steps

# Parity tolerance, relative to the reference output's peak: correct exports of every zoo model
# (dense and sliced, tests/test_export_onnx.py) stay below it, while a 5% error on one conv of a
# small residual branch on top of the input shows at ~2e-5 of the peak (tests/test_export_robust.py).
ATOL_SCALE = 1e-5
_PEAK_FLOOR = 0.01  # an all-zero output still gets a tolerance (1e-7)


def _check_sizes(inputs: tuple[torch.Tensor, ...], onnx_dims: list[list[Any]]) -> list[tuple[int, int, int]]:
    """Candidate (batch, height, width) triples to check; each list entry is tried in order."""
    first = next((t for t in inputs if t.dim() == 4), None)
    if first is None:
        return []
    n, _, h, w = first.shape
    dims = next(d for t, d in zip(inputs, onnx_dims) if t.dim() == 4)
    batch = n + 1 if not isinstance(dims[0], int) else n
    return [(batch, h, w), (n, h, w)]


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
    inputs = as_tensors(example_inputs)
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
        with torch.no_grad(), eval_mode(model):
            return flatten(model(*clones(fresh)))

    cases: list[tuple[tuple[torch.Tensor, ...], list[torch.Tensor]]] = []
    if not base:  # no 4-D input: check on new values of the example shapes
        fresh = make_inputs(inputs, 0, 0, 0, generator)
        cases.append((fresh, reference(fresh)))
    elif not hw_dynamic:
        (b, h, w), (n, _, _) = base
        for batch in dict.fromkeys((b, n)):
            fresh = make_inputs(inputs, batch, h, w, generator)
            cases.append((fresh, reference(fresh)))
    else:
        (b, h, w), (n, _, _) = base
        steps = size_steps(h, w)
        last_error: Exception | None = None
        for s in steps:
            try:
                trial = []
                for batch, hh, ww in ((b, h + s, w + 2 * s), (n, h + 2 * s, w + s)):
                    fresh = make_inputs(inputs, batch, hh, ww, generator)
                    trial.append((fresh, reference(fresh)))
            except Exception as error:  # noqa: BLE001 - the model does not run at this size
                last_error = error
                continue
            cases = trial
            break
        if not cases:
            raise OnnxExportError(
                f"cannot check {path}: the PyTorch model runs on no other size than the example "
                f"(tried steps {steps}); last error: {first_line(last_error) if last_error else '?'}"
            ) from last_error

    worst: tuple[float, float] = (0.0, 0.0)
    shapes = []
    for fresh, expected in cases:
        shape = tuple(fresh[0].shape)
        shapes.append(shape)
        try:
            actual = session.run(None, {f.name: t.detach().cpu().numpy() for f, t in zip(feeds, fresh)})
        except Exception as error:  # noqa: BLE001 - ORT raises its own exception types
            raise _parity_error(f"ONNX Runtime failed on input shape {shape}: {first_line(error)}",
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
    exc = ParityError(message, max_error=error, tolerance=tolerance, input_shapes=(shape,))
    exc.max_abs_error, exc.input_shape = error, shape  # type: ignore[attr-defined]  # the names tests and users read
    return exc
