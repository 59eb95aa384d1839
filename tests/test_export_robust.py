"""Export of models that write their input in place or run at one size only (through compress too)."""
from __future__ import annotations

import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxprune
from fxprune.onnx import export_onnx


class MeanShiftNet(nn.Module):
    """EDSR/RCAN ports subtract the dataset mean from the input in place."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4, 0.45, 0.5]).view(1, 3, 1, 1) * 255)
        self.head = nn.Conv2d(3, 16, 3, padding=1)
        self.body = nn.Conv2d(16, 16, 3, padding=1)
        self.tail = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x):
        x.sub_(self.mean)
        h = self.head(x)
        return self.tail(h + torch.relu(self.body(h))) + self.mean


class PooledModulation(nn.Module):
    """A modulation block pooling to a size computed from the input, then mixing with a fixed-size Linear:
    it runs at the example's size only."""

    def __init__(self, size: int = 16):
        super().__init__()
        cells = (size // 4) ** 2
        self.head = nn.Conv2d(3, 16, 3, padding=1)
        self.mix = nn.Linear(cells, cells)
        self.tail = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x):
        h = self.head(x)
        height, width = h.shape[-2:]
        pooled = F.adaptive_avg_pool2d(h, (height // 4, width // 4))
        mixed = self.mix(pooled.flatten(2)).view_as(pooled)
        return self.tail(h * torch.sigmoid(F.interpolate(mixed, size=(height, width))))


def test_a_model_that_mutates_its_input_compresses_and_exports(tmp_path):
    torch.manual_seed(0)
    model = MeanShiftNet().eval()
    x = torch.rand(1, 3, 16, 16) * 255
    pristine = x.clone()
    small = fxprune.compress(model, fxprune.Spec(ratio=0.5, round_to=1), (x,))
    for net, name in ((model, "dense"), (small, "small")):
        report = export_onnx(net, tmp_path / f"{name}.onnx", x)
        assert report.dynamic and len(report.checked_shapes) == 2
        assert report.max_abs_error <= report.tolerance
    torch.testing.assert_close(x, pristine, rtol=0, atol=0)  # the caller's example is never written


def test_a_model_that_runs_at_one_size_only_is_exported_statically_with_a_warning(tmp_path):
    torch.manual_seed(0)
    model = PooledModulation().eval()
    x = torch.randn(1, 3, 16, 16)
    small = fxprune.compress(model, fxprune.Spec(ratio=0.5, round_to=1), (x,))
    for net, name in ((model, "dense"), (small, "small")):
        with pytest.warns(UserWarning, match="static height/width fixed at the example's 16x16: the model runs on no other size"):
            report = export_onnx(net, tmp_path / f"{name}.onnx", x)
        assert report.dynamic is False and report.checked_shapes == ((1, 3, 16, 16),)
        assert report.max_abs_error <= report.tolerance
        dims = [d.dim_value for d in onnx.load(str(report.path)).graph.input[0].type.tensor_type.shape.dim]
        assert dims == [1, 3, 16, 16]


class ResidualNet(nn.Module):
    """Global residual learning (VDSR-like): the output is the input plus a small learned residual,
    so an error in the residual branch is small next to the output's peak."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1),
             nn.Conv2d(16, 3, 3, padding=1)]
        )

    def forward(self, x):
        h = self.convs[0](x)
        h = h + torch.relu(self.convs[2](torch.relu(self.convs[1](h))))
        return x + 0.01 * self.convs[3](h)


def test_parity_check_catches_a_five_percent_error_on_any_one_conv(tmp_path):
    """Each conv's weight scaled by 1.05 in the ONNX file: the check must fail for every one of them,
    while the honest file passes well within the tolerance."""
    from onnx import numpy_helper

    from fxprune.onnx import check_onnx_parity

    torch.manual_seed(0)
    model = ResidualNet().eval()
    x = torch.randn(1, 3, 16, 16)
    report = export_onnx(model, tmp_path / "honest.onnx", x)
    assert report.max_abs_error <= report.tolerance / 10
    weights = [node.input[1] for node in onnx.load(str(report.path)).graph.node if node.op_type == "Conv"]
    assert len(weights) == 4
    for name in weights:
        broken = onnx.load(str(report.path))
        init = next(i for i in broken.graph.initializer if i.name == name)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.05, name))
        path = tmp_path / f"broken-{name}.onnx"
        onnx.save(broken, str(path))
        with pytest.raises(fxprune.ParityError, match="ONNX Runtime differs from PyTorch") as caught:
            check_onnx_parity(model, path, x)
        assert caught.value.max_abs_error > caught.value.tolerance, name


class _IntSizes(nn.Module):
    """Python ints from the input shape: dynamo refuses dynamic H/W, TorchScript bakes the example's."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        n, c, h, w = (int(s) for s in x.shape)
        return self.conv(x).reshape(n, c, h * w).softmax(-1).reshape(n, c, h, w)


def test_a_model_only_a_size_baking_exporter_takes_is_exported_statically(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning, match="static height/width fixed at the example's size: the dynamic export fails"):
        report = export_onnx(_IntSizes().eval(), tmp_path / "int.onnx", x)
    assert report.dynamic is False and report.checked_shapes == ((1, 3, 8, 8),)
    assert report.max_abs_error <= report.tolerance


class _ChannelGate(nn.Module):
    """SimpleGate: the exporter writes a channel Split, with opset 18's num_outputs even at 17."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        return a * b


def test_a_channel_split_exports_valid_at_opset_17(tmp_path):
    torch.manual_seed(0)
    report = export_onnx(_ChannelGate().eval(), tmp_path / "gate.onnx", torch.randn(1, 3, 8, 8), opset=17)
    written = onnx.load(str(report.path))
    onnx.checker.check_model(written)
    splits = [n for n in written.graph.node if n.op_type == "Split"]
    assert report.opset == 17 and splits and all(len(n.input) == 2 for n in splits)
    assert report.max_abs_error <= report.tolerance
