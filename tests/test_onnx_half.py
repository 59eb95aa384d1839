"""ONNX files community runtimes take: fp32 dynamic, fp16 (fp16 or fp32 I/O) and static, each run
in a plain ``onnxruntime.InferenceSession`` against PyTorch, with fxprune's metadata in the file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from spandrel_nets import build, save

import fxprune
from fxprune.checkpoint_files import checkpoint_info, load_checkpoint
from fxprune.onnx import ATOL_SCALE, FP16_ATOL_SCALE
from fxprune.widths import layer_widths

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VARIANTS = {  # name: export_onnx options, input dtype, ONNX input type, tolerance relative to the output's peak
    "fp32": ({}, np.float32, "tensor(float)", ATOL_SCALE),
    "fp16": ({"dtype": "float16"}, np.float16, "tensor(float16)", FP16_ATOL_SCALE),
    "fp16-fp32-io": ({"dtype": "float16", "io_dtype": "float32"}, np.float32, "tensor(float)", FP16_ATOL_SCALE),
    "static": ({"dynamic_hw": False}, np.float32, "tensor(float)", ATOL_SCALE),
}


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, torch.Tensor]:
    folder = tmp_path_factory.mktemp("half")
    model = load_checkpoint(save(build("Compact"), folder / "compact.safetensors"))
    info = checkpoint_info(model)
    x = info.example_input((16, 16))
    small = fxprune.compress(model, fxprune.Spec(method="l1", ratio=0.5, round_to=4), (x,))
    small.meta["fxprune"]["source"] = info.to_dict()
    return small, x


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_runs_in_a_plain_session_and_carries_the_metadata(
        pruned: tuple[torch.nn.Module, torch.Tensor], tmp_path: Path, variant: str) -> None:
    small, x = pruned
    options, dtype, onnx_type, atol_scale = VARIANTS[variant]
    path = tmp_path / f"{variant}.onnx"
    report = fxprune.export_onnx(small, path, (x,), opset=18, **options)
    assert report.max_abs_error <= report.tolerance and report.exporter == "dynamo"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    assert feed.type == onnx_type and session.get_outputs()[0].type == onnx_type
    static = variant == "static"
    assert all(isinstance(d, int) for d in feed.shape) == static
    size = (16, 16) if static else (20, 28)
    image = torch.rand(1, 3, *size)
    (actual,) = session.run(None, {feed.name: image.numpy().astype(dtype)})
    with torch.no_grad():
        expected = small(image.to(torch.float16).float() if dtype == np.float16 else image)
    torch.testing.assert_close(torch.from_numpy(actual.astype(np.float32)), expected,
                               atol=atol_scale * float(expected.abs().max()), rtol=0)

    written = onnx.load(str(path))
    assert written.opset_import[0].version == 18
    props = {p.key: p.value for p in written.metadata_props}
    assert (props["architecture"], props["scale"], props["input_channels"]) == ("Compact", "2", "3")
    assert json.loads(props["input_range"]) == [0.0, 1.0]
    assert json.loads(props["widths"]) == layer_widths(small)
    weights = [i for i in written.graph.initializer if len(i.dims) == 4]
    half = variant.startswith("fp16")
    assert weights and all(i.data_type == (onnx.TensorProto.FLOAT16 if half else onnx.TensorProto.FLOAT) for i in weights)
    assert (props.get("precision"), props.get("io_dtype")) == (
        ("float16", "float32" if variant == "fp16-fp32-io" else "float16") if half else (None, None))


def test_precision_arguments_are_checked(pruned: tuple[torch.nn.Module, torch.Tensor], tmp_path: Path) -> None:
    small, x = pruned
    with pytest.raises(ValueError, match="dtype must be one of float32, float16, got 'bfloat16'"):
        fxprune.export_onnx(small, tmp_path / "m.onnx", (x,), dtype="bfloat16")
    with pytest.raises(ValueError, match="io_dtype='float16' needs dtype='float16'"):
        fxprune.export_onnx(small, tmp_path / "m.onnx", (x,), io_dtype="float16")
