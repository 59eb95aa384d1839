"""Tests for fxprune.metrics: Y conversion, PSNR/SSIM against scikit-image, model evaluation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn
from torch.testing import assert_close

from fxprune.data import bicubic_upscale, demo_images, make_pairs, to_tensor
from fxprune.metrics import bicubic_baseline, evaluate, psnr, rgb_to_y, run_model, ssim


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sk_ssim(a: np.ndarray, b: np.ndarray, **kw: object) -> float:
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, **kw
    )


@pytest.fixture(scope="module")
def photo_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """(distorted, clean) uint8 RGB pairs from real photos: noise and bicubic down/up-sampling."""
    rng = np.random.default_rng(0)
    out = []
    for img in demo_images("test")[:2]:
        img = img[:160, :200]
        noisy = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).round().astype(np.uint8)
        blurry = bicubic_upscale(make_pairs([img], "sr", scale=4)[0][0], 4)
        out += [(noisy, img), ((blurry.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), img)]
    return out


def _t(img: np.ndarray) -> torch.Tensor:
    return to_tensor(img)


# --------------------------------------------------------------------------- rgb_to_y


def test_rgb_to_y_reference_values() -> None:
    x = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, 1.0]])
    y = rgb_to_y(x.view(3, 1, 5)).flatten() * 255
    expected = torch.tensor([16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966])
    assert_close(y, expected, atol=1e-4, rtol=0)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_rgb_to_y_matches_skimage(h: int, w: int, seed: int) -> None:
    img = np.random.default_rng(seed).random((h, w, 3))
    ref = torch.from_numpy(rgb2ycbcr(img)[..., 0] / 255.0)
    t = torch.from_numpy(img.transpose(2, 0, 1).copy())
    assert_close(rgb_to_y(t)[0], ref)
    assert_close(rgb_to_y(t.unsqueeze(0).repeat(2, 1, 1, 1))[1, 0], ref)  # NCHW


def test_rgb_to_y_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="3-channel"):
        rgb_to_y(torch.rand(4, 5, 5))


# --------------------------------------------------------------------------- psnr


def test_psnr_matches_skimage_rgb_and_y(photo_pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for dist, clean in photo_pairs:
        ref_rgb = peak_signal_noise_ratio(clean, dist, data_range=255)
        assert psnr(_t(dist), _t(clean), y_channel=False) == pytest.approx(ref_rgb, abs=1e-6)
        y_d, y_c = rgb2ycbcr(dist)[..., 0], rgb2ycbcr(clean)[..., 0]
        assert psnr(_t(dist), _t(clean)) == pytest.approx(peak_signal_noise_ratio(y_c, y_d, data_range=255), abs=1e-4)
        ref_shaved = peak_signal_noise_ratio(y_c[4:-4, 4:-4], y_d[4:-4, 4:-4], data_range=255)
        assert psnr(_t(dist), _t(clean), shave=4) == pytest.approx(ref_shaved, abs=1e-4)


def test_psnr_identical_is_inf_and_known_value() -> None:
    hr = torch.rand(3, 10, 12)
    assert psnr(hr, hr) == math.inf
    assert psnr(hr.clone(), hr, y_channel=False) == math.inf
    # one 8-bit level of error everywhere: 20 log10(255) dB
    a, b = torch.full((1, 8, 8), 100 / 255), torch.full((1, 8, 8), 101 / 255)
    assert psnr(a, b) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_psnr_quantize_option() -> None:
    hr = torch.full((1, 8, 8), 100 / 255, dtype=torch.float64)
    sr = hr + 0.2 / 255  # below half a level: vanishes when quantized
    assert psnr(sr, hr) == math.inf
    assert psnr(sr, hr, quantize=False) == pytest.approx(20 * math.log10(255 / 0.2), rel=1e-6)


def test_psnr_data_range() -> None:
    hr = torch.rand(3, 9, 9, generator=torch.Generator().manual_seed(1))
    sr = (hr + 0.05).clamp(0, 1)
    assert psnr(sr * 255, hr * 255, data_range=255) == pytest.approx(psnr(sr, hr), abs=1e-9)


def test_shave_excludes_borders() -> None:
    hr = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(2))
    sr = hr.clone()
    sr[..., :3, :] = 1 - sr[..., :3, :]
    sr[..., :, -2:] = 0
    assert math.isfinite(psnr(sr, hr, shave=2))
    assert psnr(sr, hr, shave=3) == math.inf
    assert ssim(sr, hr, shave=0) < 0.995  # the valid SSIM region still sees part of the border
    assert ssim(sr, hr, shave=3) == pytest.approx(1.0, abs=1e-12)


def test_batch_is_mean_of_images() -> None:
    g = torch.Generator().manual_seed(3)
    hr = torch.rand(2, 3, 16, 16, generator=g)
    sr = (hr + 0.1 * torch.randn(2, 3, 16, 16, generator=g)).clamp(0, 1)
    for metric in (psnr, ssim):
        each = [metric(sr[i], hr[i]) for i in range(2)]
        assert metric(sr, hr) == pytest.approx(sum(each) / 2)


@pytest.mark.parametrize(
    ("sr", "hr", "kw", "match"),
    [
        (torch.rand(3, 8, 8), torch.rand(3, 8, 9), {}, "shapes differ"),
        (torch.rand(3, 8, 8), torch.rand(3, 8, 8), {"shave": 4}, "shave"),
        (torch.rand(3, 8, 8), torch.rand(3, 8, 8), {"shave": -1}, "shave"),
        (torch.rand(2, 8, 8), torch.rand(2, 8, 8), {}, "y_channel"),
        (torch.rand(8, 8), torch.rand(8, 8), {}, "CHW"),
        (torch.rand(3, 8, 8), torch.rand(3, 8, 8), {"data_range": 0}, "data_range"),
    ],
)
def test_psnr_validation(sr: torch.Tensor, hr: torch.Tensor, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        psnr(sr, hr, **kw)


# --------------------------------------------------------------------------- ssim


def test_ssim_matches_skimage_on_y(photo_pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for dist, clean in photo_pairs:
        y_d, y_c = rgb2ycbcr(dist)[..., 0], rgb2ycbcr(clean)[..., 0]
        assert ssim(_t(dist), _t(clean)) == pytest.approx(_sk_ssim(y_c, y_d), abs=1e-7)
        shaved = _sk_ssim(y_c[3:-3, 3:-3], y_d[3:-3, 3:-3])
        assert ssim(_t(dist), _t(clean), shave=3) == pytest.approx(shaved, abs=1e-7)


def test_ssim_matches_skimage_on_rgb(photo_pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    dist, clean = photo_pairs[0]
    ref = _sk_ssim(clean, dist, channel_axis=-1)
    assert ssim(_t(dist), _t(clean), y_channel=False) == pytest.approx(ref, abs=1e-7)


def test_ssim_properties() -> None:
    g = torch.Generator().manual_seed(4)
    hr = torch.rand(3, 24, 24, generator=g)
    assert ssim(hr, hr) == pytest.approx(1.0, abs=1e-12)
    worse = [ssim((hr + s * torch.randn(3, 24, 24, generator=g)).clamp(0, 1), hr) for s in (0.02, 0.1, 0.3)]
    assert 1 > worse[0] > worse[1] > worse[2]
    other = torch.rand(3, 24, 24, generator=g)
    assert ssim(other, hr) == pytest.approx(ssim(hr, other), abs=1e-12)  # symmetric
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.rand(3, 10, 30), torch.rand(3, 10, 30))


# --------------------------------------------------------------------------- evaluate


class _TinySR(nn.Module):
    """A small x2 network: conv -> PixelShuffle plus a bicubic skip (receptive field 5 px)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1))
        self.shuffle = nn.PixelShuffle(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x) + 0.05 * self.shuffle(self.body(x))


@pytest.fixture(scope="module")
def sr_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return make_pairs([im[:96, :120] for im in demo_images("test")], "sr", scale=2)


def test_evaluate_bicubic_module_equals_baseline(sr_pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    up = nn.Upsample(scale_factor=2, mode="bicubic", align_corners=False)
    scores = evaluate(up, sr_pairs, shave=2)
    assert scores == pytest.approx(bicubic_baseline(sr_pairs, 2))
    assert set(scores) == {"psnr", "ssim"}
    by_hand = [psnr(bicubic_upscale(lr, 2), hr, shave=2) for lr, hr in sr_pairs]
    assert scores["psnr"] == pytest.approx(sum(by_hand) / len(by_hand))
    assert 24 < scores["psnr"] < 45 and 0.6 < scores["ssim"] < 1


def test_bicubic_baseline_ranks_scales() -> None:
    imgs = [im[:120, :120] for im in demo_images("test")]
    base = {s: bicubic_baseline(make_pairs(imgs, "sr", scale=s), s)["psnr"] for s in (2, 3, 4)}
    assert base[2] > base[3] > base[4]
    noisy = make_pairs(imgs, "denoise", sigma=25)
    assert bicubic_baseline(noisy, 1)["psnr"] == pytest.approx(evaluate(nn.Identity(), noisy, shave=0)["psnr"])


def test_evaluate_tiled_matches_whole(sr_pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    model = _TinySR()
    whole = evaluate(model, sr_pairs, shave=2)
    tiled = evaluate(model, sr_pairs, shave=2, tile=32)
    assert tiled == pytest.approx(whole, abs=1e-9)
    lr = sr_pairs[0][0]
    assert_close(run_model(model, lr, tile=17), run_model(model, lr))


def test_evaluate_restores_mode_and_clamps() -> None:
    model = nn.Sequential(nn.Dropout(0.5), nn.Identity()).train()
    hr = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(5))
    assert evaluate(model, [(hr, hr)], shave=0)["psnr"] == math.inf  # dropout off: eval mode
    assert model.training
    out = run_model(nn.Identity(), hr * 3 - 1)
    assert out.min() >= 0 and out.max() <= 1


def test_evaluate_validation() -> None:
    hr = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="differs"):
        evaluate(nn.Identity(), [(hr[:, :8], hr)], shave=0)
    with pytest.raises(ValueError, match="no"):
        evaluate(nn.Identity(), [], shave=0)
    with pytest.raises(ValueError, match="tile"):
        evaluate(nn.Identity(), [(hr, hr)], shave=0, tile=0)
    with pytest.raises(ValueError, match="integer multiple"):
        run_model(nn.Upsample(size=(20, 20)), hr, tile=8)
