"""ONNX export of every zoo model, dense and sliced, checked in a real ONNX Runtime session.

Each zoo test builds the model in a smaller configuration of the same class (EXPORT_CONFIG: fewer
blocks, stages or layers, the same ATen op kinds as the default model), slices it for the "sliced"
kind, calls ``export_onnx`` with its own ORT check, then reruns ONNX Runtime itself on one fresh
input of yet another size and compares with ``torch.testing.assert_close``. Export with symbolic
H/W is pure-Python sympy work that grows with the number of ops, not with their kinds; the op
kinds are what the export's correctness depends on. The exports run in the test process (under
xdist the tests spread over the workers; a pool of spawned processes paid the torch and exporter
imports and the torchlib table again).
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import fxprune
from fxprune.errors import FxpruneError, ParityError
from fxprune.models import build
from fxprune.onnx import ExportReport, OnnxExportError, check_onnx_parity, export_onnx
from fxprune.passes.slice_channels import slice_channels

from helpers import SMALL_ZOO_CONFIG, random_keep, zoo_names

EXAMPLE = (1, 3, 16, 16)
FRESH = (1, 3, 12, 28)  # the test's own rerun: neither the example size nor one the export checked
KINDS = ("dense", "sliced")
# Zoo exports that are known not to work, as {(name, kind): reason}; each becomes xfail(strict=True).
KNOWN_FAILURES: dict[tuple[str, str], str] = {}
EXPORT_CONFIG = SMALL_ZOO_CONFIG  # the zoo models as exported here (tests/helpers.py)


def _zoo_params() -> list:
    params = []
    for name in zoo_names():
        for kind in KINDS:
            reason = KNOWN_FAILURES.get((name, kind))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(name, kind, marks=marks, id=f"{name}-{kind}"))
    return params


def _module_kinds(model: nn.Module) -> set[type]:
    return {type(m) for m in model.modules()}


def _zoo_model(name: str, kind: str) -> nn.Module:
    torch.manual_seed(0)
    model = build(name, **EXPORT_CONFIG.get(name, {})).eval()
    if kind == "dense":
        return model
    graph = fxprune.analyze(model, (torch.randn(EXAMPLE),))
    return slice_channels(graph, random_keep(graph, np.random.default_rng(0)))


def _export(name: str, kind: str, directory: Path) -> dict:
    """Build (and slice), export with the function's own ORT check, and run PyTorch on one fresh input."""
    model = _zoo_model(name, kind)
    start = time.perf_counter()
    report = export_onnx(model, directory / f"{name}-{kind}.onnx", torch.randn(EXAMPLE))
    seconds = time.perf_counter() - start
    fresh = torch.randn(FRESH, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(fresh)
    return {"report": report, "seconds": seconds, "input": fresh.numpy(), "expected": expected.numpy()}


class ZooExports:
    """Each zoo export made once per process, on first request."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.done: dict[tuple[str, str], dict] = {}

    def result(self, name: str, kind: str) -> dict:
        if (name, kind) not in self.done:
            self.done[(name, kind)] = _export(name, kind, self.directory)
        return self.done[(name, kind)]


@pytest.fixture(scope="module")
def zoo_exports(tmp_path_factory):
    """The zoo exports of this module's process. The zoo tests ask for it through
    ``request.getfixturevalue``: a module fixture named in a test's signature would keep all of
    them on one xdist worker (tests/conftest.py), while each export is needed by one test only
    (and EDSR's by the broken-check test too)."""
    return ZooExports(tmp_path_factory.mktemp("onnx_zoo"))


def _dims(value: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


# ---------------------------------------------------------------------------- every zoo model
@pytest.mark.parametrize("name, kind", _zoo_params())
def test_zoo_model_exports_and_matches_onnxruntime(name, kind, request, record_property):
    # the smaller configuration has the default's module kinds
    assert _module_kinds(build(name, **EXPORT_CONFIG.get(name, {}))) == _module_kinds(build(name))
    result = request.getfixturevalue("zoo_exports").result(name, kind)
    record_property("export_seconds", round(result["seconds"], 2))
    report: ExportReport = result["report"]
    # the function's own check ran on other sizes than the example, and passed
    assert report.exporter == "dynamo"
    assert report.opset >= 17
    assert len(report.checked_shapes) == 2
    assert all(shape[2:] != EXAMPLE[2:] for shape in report.checked_shapes), report.checked_shapes
    assert report.max_abs_error <= report.tolerance and report.tolerance > 0

    # the file is self-contained and really has dynamic height and width
    assert sorted(p.name for p in report.path.parent.glob(f"{name}-{kind}*")) == [f"{name}-{kind}.onnx"]
    model = onnx.load(str(report.path))
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["output"]
    assert all(init.data_location == onnx.TensorProto.DEFAULT for init in model.graph.initializer)
    batch, channels, height, width = _dims(model.graph.input[0])
    assert (channels, height, width) == (3, "height", "width")
    assert batch == "batch"  # capture makes the batch dynamic too, so sliced graphs keep it
    out_dims = _dims(model.graph.output[0])
    assert all(isinstance(d, str) and ("height" in d or "width" in d) for d in out_dims[2:]), out_dims

    # one explicit rerun in a fresh ORT session, on an input of yet another size
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"input": result["input"]})
    expected = torch.from_numpy(result["expected"])
    assert expected.shape[2] % FRESH[2] == 0 and expected.shape[3] % FRESH[3] == 0
    torch.testing.assert_close(torch.from_numpy(actual), expected, rtol=1e-4, atol=1e-4)


def test_broken_check_raises_parity_error(zoo_exports):
    """The EDSR file checked against an EDSR with other weights (same I/O shapes) must fail."""
    report = zoo_exports.result("edsr", "dense")["report"]
    torch.manual_seed(123)
    other = build("edsr", **EXPORT_CONFIG["edsr"]).eval()
    with pytest.raises(ParityError, match=r"on input shape \(2, 3, 20, 24\): max abs error .* > tolerance") as caught:
        check_onnx_parity(other, report.path, torch.randn(EXAMPLE))
    assert caught.value.max_abs_error > caught.value.tolerance > 0
    assert caught.value.input_shape == (2, 3, 20, 24)
    # while the model the file came from passes the same check
    error, tolerance, shapes = check_onnx_parity(_zoo_model("edsr", "dense"), report.path, torch.randn(EXAMPLE))
    assert error <= tolerance and shapes == ((2, 3, 20, 24), (1, 3, 24, 20))


# ---------------------------------------------------------------------------- small models
class _TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x, y):
        z = self.norm(self.conv(x)) + y
        return z, z.mean(dim=1, keepdim=True)


class _BakedSizes(nn.Module):
    """Python ints from the input shape: torch.export cannot keep H/W dynamic, TorchScript bakes them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        n, c, h, w = (int(s) for s in x.shape)
        return self.conv(x).reshape(n, c, h * w).softmax(-1).reshape(n, c, h, w)


def _small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)).eval()


def test_static_export_creates_directories_and_has_static_dims(tmp_path):
    path = tmp_path / "new" / "nested" / "small.onnx"
    report = export_onnx(_small(), path, torch.randn(1, 3, 10, 12), dynamic_hw=False)
    assert report.path == path and path.is_file() and os.listdir(path.parent) == ["small.onnx"]
    assert report.exporter == "dynamo" and report.opset == 17
    assert report.checked_shapes == ((1, 3, 10, 12),)  # new random values, the one size the file accepts
    model = onnx.load(str(path))
    assert _dims(model.graph.input[0]) == [1, 3, 10, 12] and _dims(model.graph.output[0]) == [1, 3, 10, 12]


def test_two_inputs_two_outputs_and_train_mode_is_restored(tmp_path):
    torch.manual_seed(0)
    model = _TwoInputs().train()
    x, y = torch.randn(1, 3, 8, 8), torch.randn(1, 4, 8, 8)
    report = export_onnx(model, tmp_path / "two.onnx", (x, y))
    assert model.training and model.norm.training  # exported in eval mode, flags restored
    assert report.checked_shapes == ((2, 3, 12, 16), (1, 3, 16, 12))
    graph = onnx.load(str(report.path)).graph
    assert [i.name for i in graph.input] == ["input", "input1"]
    assert [o.name for o in graph.output] == ["output", "output1"]
    assert _dims(graph.input[1]) == ["batch", 4, "height", "width"]


def test_fallback_exporter_with_baked_sizes_is_caught_by_the_check(tmp_path):
    x = torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning, match="used a fallback: dynamo exporter"):
        report = export_onnx(_BakedSizes().eval(), tmp_path / "baked.onnx", x, check=False)
    assert report.exporter == "torchscript" and report.max_abs_error is None and report.checked_shapes == ()
    assert _dims(onnx.load(str(report.path)).graph.input[0])[2:] == ["height", "width"]  # declared, not true
    with pytest.raises(ParityError, match=r"ONNX Runtime failed on input shape \(2, 3, 12, 16\)") as caught:
        check_onnx_parity(_BakedSizes().eval(), report.path, x)
    assert math.isinf(caught.value.max_abs_error)


def test_graph_module_captured_with_static_sizes_needs_dynamic_hw_false(tmp_path):
    gm = fxprune.trace(_small(), torch.randn(1, 3, 8, 8), dynamic_hw=False)
    with pytest.raises(OnnxExportError, match="static height/width"):
        export_onnx(gm, tmp_path / "gm.onnx", torch.randn(1, 3, 8, 8))
    assert isinstance(OnnxExportError("x"), FxpruneError)


def test_user_input_is_validated(tmp_path):
    x = torch.randn(1, 3, 8, 8)
    good = tmp_path / "m.onnx"
    with pytest.raises(TypeError, match="torch.nn.Module"):
        export_onnx(lambda t: t, good, x)  # type: ignore[arg-type]
    for bad in (None, (), [x, 1], "image", np.zeros((1, 3, 8, 8))):
        with pytest.raises(TypeError, match="example_inputs"):
            export_onnx(_small(), good, bad)  # type: ignore[arg-type]
    for opset in (16, 17.0, True):
        with pytest.raises(ValueError, match="opset"):
            export_onnx(_small(), good, x, opset=opset)  # type: ignore[arg-type]
    for scale in (0, -1e-4, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="atol_scale"):
            export_onnx(_small(), good, x, atol_scale=scale)
    with pytest.raises(TypeError, match="dynamic_hw"):
        export_onnx(_small(), good, x, dynamic_hw=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path"):
        export_onnx(_small(), 3, x)  # type: ignore[arg-type]
    (tmp_path / "a_file").write_text("not a directory")
    with pytest.raises(ValueError, match="cannot create the directory"):
        export_onnx(_small(), tmp_path / "a_file" / "m.onnx", x)
    with pytest.raises(ValueError, match="must name a file"):
        export_onnx(_small(), tmp_path, x)
    assert not good.exists()
