"""What bench_routing.py's honest figures rest on: pooled PSNR, every window's true error, the per-route
estimator pick (in PyTorch and ONNX Runtime) and distillation toward a teacher."""
from __future__ import annotations

import math
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fxprune
from fxprune.metrics import psnr
from fxprune.models import build
from fxprune.routing import BicubicConv, RoutedModel, RoutingError, Variant
from fxprune.routing.distill import distill
from fxprune.routing.estimator import LaplacianEstimator, PickedEstimator, laplacian_energy
from fxprune.routing.evaluate import pick_estimator, pooled_psnr, window_errors
from fxprune.tiling import tile_windows


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.tuples(st.integers(2, 12), st.integers(2, 12)), min_size=1, max_size=4),
       seed=st.integers(0, 1000))
def test_pooled_psnr_is_the_psnr_of_all_pixels_together(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    pairs = [(torch.rand(1, 1, h, w, generator=g), torch.rand(1, 1, h, w, generator=g) * 0.3) for h, w in sizes]
    each = [psnr(a, b, y_channel=False, quantize=False) for a, b in pairs]
    squared = torch.cat([(a.double() - b.double()).pow(2).flatten() for a, b in pairs])
    expected = -10 * math.log10(float(squared.mean()))
    torch.testing.assert_close(pooled_psnr(each, [h * w for h, w in sizes]), expected, rtol=1e-9, atol=1e-9)


def test_pooled_psnr_rejects_mismatched_counts():
    with pytest.raises(ValueError, match="one pixel count per PSNR"):
        pooled_psnr([30.0, 31.0], [10])


def test_window_errors_are_each_windows_core_mse():
    """Bicubic route, HR = bicubic(LR) plus a known offset per window core: the log error is log(offset²)."""
    torch.manual_seed(0)
    patch, context, scale = 6, 2, 2
    bicubic = BicubicConv(scale, 3)
    routed = RoutedModel([Variant("bicubic", bicubic)],
                         LaplacianEstimator(torch.zeros(0), torch.zeros(1, 1)), patch=patch, context=context).eval()
    lr = 0.3 + 0.4 * torch.rand(3, 17, 22)
    hr = bicubic(lr[None])[0].clamp(0, 1)
    rows, cols = tile_windows(17, routed.tile, context), tile_windows(22, routed.tile, context)
    offsets = torch.empty(len(rows), len(cols))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            offsets[i, j] = 0.01 * (1 + i + 3 * j)
            hr[:, r.core_start * scale:r.core_stop * scale, c.core_start * scale:c.core_stop * scale] += offsets[i, j]
    windows, errors = window_errors(routed, [(lr, hr)])
    assert windows.shape == (len(rows) * len(cols), 3, routed.tile, routed.tile)
    torch.testing.assert_close(errors[:, 0], torch.log(offsets.reshape(-1) ** 2 + 1e-10), rtol=1e-4, atol=1e-4)


def test_picked_estimator_takes_each_routes_column_from_its_estimator():
    windows = torch.rand(5, 3, 8, 8)
    a = LaplacianEstimator(torch.tensor([0.1, 0.3]), torch.arange(9.0).reshape(3, 3))
    b = LaplacianEstimator(torch.tensor([0.2]), -torch.arange(6.0).reshape(2, 3) - 1)
    picked = PickedEstimator([a, b], [1, 0, 1])(windows)
    torch.testing.assert_close(picked[:, 0], b(windows)[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(picked[:, 1], a(windows)[:, 1], rtol=0, atol=0)
    torch.testing.assert_close(picked[:, 2], b(windows)[:, 2], rtol=0, atol=0)
    with pytest.raises(RoutingError, match="pick"):
        PickedEstimator([a, b], [0, 2, 1])


class Brightness(torch.nn.Module):
    """A 'CNN' that ranks route 0 perfectly (its error is the window's brightness) and route 1 not at all."""

    def forward(self, windows):
        mean = windows.mean(dim=(1, 2, 3))
        return torch.stack([mean, torch.zeros_like(mean)], dim=1)


def test_pick_estimator_takes_the_better_ranker_per_route():
    g = torch.Generator().manual_seed(0)
    # brightness and texture vary independently (a zero-mean checkerboard): route 0's error follows the
    # brightness, route 1's the edge score
    brightness = 0.3 + 0.4 * torch.rand(64, 1, 1, 1, generator=g)
    texture = 0.25 * torch.rand(64, 1, 1, 1, generator=g)
    checker = (torch.arange(12)[:, None] + torch.arange(12)[None, :]) % 2 * 2.0 - 1
    windows = (brightness + texture * checker).expand(64, 3, 12, 12)
    errors = torch.stack([windows.mean(dim=(1, 2, 3)), torch.log(laplacian_energy(windows))], dim=1)
    estimator, cnn_rho, lookup_rho = pick_estimator(Brightness(), windows, errors, bins=8)
    assert estimator.pick == [0, 1]
    assert cnn_rho[0] == pytest.approx(1.0) and lookup_rho[1] > 0.9 > 0.5 > abs(lookup_rho[0])


def test_routed_model_with_a_picked_estimator_runs_in_onnx_runtime(tmp_path):
    torch.manual_seed(0)
    net = build("edsr", blocks=1, channels=8, scale=2).eval()
    lookup = LaplacianEstimator(torch.tensor([0.05]), torch.log(torch.tensor([[1e-4, 1e-4], [1e-4, 3e-3]])))
    other = LaplacianEstimator(torch.tensor([0.05]), torch.log(torch.tensor([[5e-3, 1e-4], [5e-3, 3e-3]])))
    routed = RoutedModel([Variant("net", net), Variant("bicubic", BicubicConv(2, 3))],
                         PickedEstimator([other, lookup], [1, 0]), patch=8, context=2).eval()
    image = torch.full((1, 3, 21, 26), 0.4)
    image[..., 13:] = torch.rand(1, 3, 21, 13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = fxprune.export_onnx(routed, tmp_path / "r.onnx", (torch.rand(1, 3, 19, 23), torch.tensor(0.5)),
                                   opset=18).path
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    for beta in (0.0, 0.5):
        out, route_map = sess.run(None, {names[0]: image.numpy(), names[1]: np.array(beta, np.float32)})
        with torch.no_grad():
            ref, ref_map = routed(image, torch.tensor(beta))
        torch.testing.assert_close(torch.from_numpy(out), ref, rtol=1e-4, atol=1e-4)
        assert route_map.tolist() == ref_map.tolist()
    assert 0 < int(ref_map.sum()) < ref_map.numel()   # both routes used at β = 0.5


def test_distill_moves_the_student_toward_the_teacher():
    torch.manual_seed(0)
    teacher = build("edsr", blocks=1, channels=8, scale=2).eval()
    student = build("edsr", blocks=1, channels=8, scale=2)
    images = [np.random.default_rng(s).integers(0, 256, (48, 48, 3), dtype=np.uint8) for s in range(2)]
    x = torch.rand(4, 3, 12, 12)

    def gap() -> float:
        with torch.no_grad():
            return float((student(x) - teacher(x)).abs().mean())

    before = gap()
    out = distill(student, teacher, images, steps=40, patch=12, batch=4, lr=3e-3, hr_weight=0.0)
    assert out is student and not student.training
    assert gap() < 0.5 * before


def test_distill_steps_zero_changes_nothing_and_bad_settings_are_named():
    teacher = build("edsr", blocks=1, channels=8, scale=2)
    student = build("edsr", blocks=1, channels=8, scale=2)
    state = {k: v.clone() for k, v in student.state_dict().items()}
    distill(student, teacher, [np.zeros((32, 32, 3), np.uint8)], steps=0)
    for k, v in student.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    with pytest.raises(RoutingError, match="hr_weight"):
        distill(student, teacher, [], steps=1, hr_weight=1.5)
    with pytest.raises(RoutingError, match="steps"):
        distill(student, teacher, [], steps=-1)


def test_distilling_several_students_at_once_equals_one_at_a_time():
    import copy

    torch.manual_seed(1)
    teacher = build("edsr", blocks=1, channels=8, scale=2).eval()
    a, b = build("edsr", blocks=1, channels=8, scale=2), build("edsr", blocks=1, channels=4, scale=2)
    alone_a, alone_b = copy.deepcopy(a), copy.deepcopy(b)
    images = [np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)]
    settings_ = dict(steps=5, patch=8, batch=2, lr=1e-3)
    assert distill([a, b], teacher, images, **settings_) == [a, b]
    for together, alone in ((a, alone_a), (b, alone_b)):
        start = {k: v.clone() for k, v in alone.state_dict().items()}
        distill(alone, teacher, images, **settings_)
        assert any(not torch.equal(v, start[k]) for k, v in alone.state_dict().items())
        for (name, value), other in zip(together.state_dict().items(), alone.state_dict().values()):
            torch.testing.assert_close(value, other, rtol=1e-6, atol=1e-7, msg=name)
        assert not together.training
