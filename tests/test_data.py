"""Tests for fxprune.data: image loading, the demo split, degradations and aligned patches."""
from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.testing import assert_close

from fxprune import data
from fxprune.data import (
    RestorationDataset,
    bicubic_downscale,
    dataset_from,
    degrade,
    demo_images,
    gaussian_blur,
    load_images,
    make_pairs,
    modcrop,
    to_tensor,
)

HALF_LSB = 0.5 / 255 + 1e-5  # the LR is stored as 8-bit


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth-but-busy RGB uint8 image (random noise would also do, but this is more image-like)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(yy / 3.1 + c) * np.cos(xx / 4.7 - c) for c in range(3)], axis=-1)
    img = 127.5 + 90 * base + rng.normal(0, 20, (h, w, 3))
    return np.clip(img, 0, 255).round().astype(np.uint8)


# --------------------------------------------------------------------------- load_images


@pytest.fixture
def image_folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rgb = _textured(20, 30, seed=1)
    grey = _textured(12, 14, seed=2)[:, :, 0]
    rgba = np.dstack([_textured(10, 11, seed=3), np.full((10, 11), 40, np.uint8)])
    Image.fromarray(rgb).save(tmp_path / "b_rgb.png")
    Image.fromarray(grey, mode="L").save(tmp_path / "a_grey.PNG")
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "c_rgba.png")
    Image.fromarray(rgb).save(tmp_path / "d_rgb.bmp")
    smooth = np.clip(np.mgrid[0:20, 0:30, 0:3].sum(axis=0) * 6, 0, 255).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "e_smooth.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    Image.fromarray(rgb).save(tmp_path / "sub" / "nested.png")
    return tmp_path, {"rgb": rgb, "grey": grey, "rgba": rgba, "smooth": smooth}


def test_load_images_modes_and_order(image_folder: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, src = image_folder
    images = load_images(folder)
    assert len(images) == 5  # txt ignored, subfolder not searched
    assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for im in images)
    grey, rgb, rgba, bmp, jpg = images  # sorted by file name
    np.testing.assert_array_equal(grey, np.repeat(src["grey"][:, :, None], 3, axis=2))
    np.testing.assert_array_equal(rgb, src["rgb"])
    np.testing.assert_array_equal(rgba, src["rgba"][:, :, :3])  # alpha dropped, colours kept
    np.testing.assert_array_equal(bmp, src["rgb"])
    assert jpg.shape == (20, 30, 3)
    assert np.abs(jpg.astype(int) - src["smooth"]).mean() < 3  # lossy but the same picture


def test_load_images_recursive(image_folder: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, _ = image_folder
    assert len(load_images(folder, recursive=True)) == 6


def test_load_images_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_images(missing)
    with pytest.raises(ValueError, match="no image files"):
        load_images(tmp_path)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a directory"):
        load_images(tmp_path / "x.txt")
    Image.fromarray(_textured(8, 8)).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ValueError, match="broken.png"):
        load_images(tmp_path)


def test_load_images_truncated_file_names_it(tmp_path: Path) -> None:
    Image.fromarray(_textured(64, 64)).save(tmp_path / "full.png")
    payload = (tmp_path / "full.png").read_bytes()
    (tmp_path / "full.png").unlink()
    (tmp_path / "cut.png").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ValueError, match="cut.png"):
        load_images(tmp_path)


# --------------------------------------------------------------------------- demo images


def _digest(img: np.ndarray) -> str:
    return hashlib.sha1(img.tobytes() + str(img.shape).encode()).hexdigest()


def test_demo_split_fixed_and_disjoint() -> None:
    train, test = demo_images("train"), demo_images("test")
    assert len(train) == len(data.DEMO_SPLITS["train"]) >= 5
    assert len(test) == len(data.DEMO_SPLITS["test"]) in (2, 3)
    assert not set(data.DEMO_SPLITS["train"]) & set(data.DEMO_SPLITS["test"])
    assert not {_digest(im) for im in train} & {_digest(im) for im in test}  # no shared pixels
    assert all(im.dtype == np.uint8 and im.shape[2] == 3 for im in train + test)
    assert [_digest(im) for im in demo_images("train")] == [_digest(im) for im in train]
    assert [im.shape for im in test] == [(300, 451, 3), (400, 600, 3), (512, 512, 3)]
    with pytest.raises(ValueError, match="split"):
        demo_images("validation")


def test_demo_images_are_copies() -> None:
    first = demo_images("test")[0]
    first[:] = 0
    assert demo_images("test")[0].any()


def test_demo_images_need_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    data._demo_image.cache_clear()
    try:
        for split in data.DEMO_SPLITS:
            assert demo_images(split)
    finally:
        data._demo_image.cache_clear()


# --------------------------------------------------------------------------- modcrop and degradations


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 60), w=st.integers(1, 60), scale=st.integers(1, 6), lead=st.integers(0, 2))
def test_modcrop_numpy_and_tensor(h: int, w: int, scale: int, lead: int) -> None:
    arr = np.arange(h * w * 2).reshape(h, w, 2)
    t = torch.arange(h * w).reshape(*([1] * lead), h, w)
    if h < scale or w < scale:
        with pytest.raises(ValueError, match="smaller than scale"):
            modcrop(arr, scale)
        return
    out_a, out_t = modcrop(arr, scale), modcrop(t, scale)
    for oh, ow in (out_a.shape[:2], out_t.shape[-2:]):
        assert oh % scale == 0 and ow % scale == 0
        assert 0 <= h - oh < scale and 0 <= w - ow < scale
    np.testing.assert_array_equal(out_a, arr[: out_a.shape[0], : out_a.shape[1]])  # top-left kept
    assert out_t.shape[:-2] == t.shape[:-2]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_modcrop_rejects_bad_scale(bad: object) -> None:
    with pytest.raises(ValueError, match="scale"):
        modcrop(np.zeros((4, 4)), bad)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(h=st.integers(4, 40), w=st.integers(4, 40), scale=st.integers(2, 4))
def test_bicubic_downscale_shape_and_reference(h: int, w: int, scale: int) -> None:
    hr = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * 100 + w))
    lr = bicubic_downscale(hr, scale)
    assert lr.shape == (3, h // scale, w // scale)
    assert lr.min() >= 0 and lr.max() <= 1
    crop = hr[:, : h - h % scale, : w - w % scale].unsqueeze(0)
    ref = F.interpolate(crop, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    assert_close(lr, ref[0].clamp(0, 1))
    assert_close(bicubic_downscale(hr.unsqueeze(0), scale)[0], lr)  # NCHW agrees with CHW


def test_bicubic_downscale_preserves_constants() -> None:
    hr = torch.full((2, 3, 12, 18), 0.3)
    assert_close(bicubic_downscale(hr, 3), torch.full((2, 3, 4, 6), 0.3))


def test_degrade_denoise_noise_level_and_seeding() -> None:
    hr = torch.full((3, 64, 64), 128 / 255)
    noisy = degrade(hr, "denoise", sigma=15, seed=3)
    assert noisy.shape == hr.shape
    assert abs(float((noisy - hr).std()) * 255 - 15) < 0.6
    assert abs(float((noisy - hr).mean()) * 255) < 0.5
    assert torch.equal(noisy, degrade(hr, "denoise", sigma=15, seed=3))
    assert not torch.equal(noisy, degrade(hr, "denoise", sigma=15, seed=4))
    assert torch.equal(degrade(hr, "denoise", sigma=0), hr)


def test_degrade_deblur_same_size_and_smooths() -> None:
    hr = to_tensor(_textured(40, 48))
    blurred = degrade(hr, "deblur", sigma=2.0)
    assert blurred.shape == hr.shape
    tv = lambda x: (x[:, 1:] - x[:, :-1]).abs().mean()  # noqa: E731
    assert tv(blurred) < 0.5 * tv(hr)
    flat = torch.full((3, 20, 20), 0.4)
    assert_close(degrade(flat, "deblur", sigma=1.5), flat, atol=HALF_LSB, rtol=0)
    noisy = degrade(hr, "deblur", sigma=2.0, noise=5, seed=1)
    assert not torch.equal(noisy, blurred) and noisy.shape == hr.shape


def test_gaussian_blur_matches_direct_2d_convolution() -> None:
    x = torch.rand(1, 3, 17, 19, generator=torch.Generator().manual_seed(0))
    sigma = 1.3
    r = int(np.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    k2 = torch.outer(g, g) / torch.outer(g, g).sum()
    ref = F.conv2d(F.pad(x, (r,) * 4, mode="reflect"), k2.expand(3, 1, -1, -1), groups=3)
    assert_close(gaussian_blur(x, sigma), ref)
    with pytest.raises(ValueError, match="too small"):
        gaussian_blur(torch.rand(3, 4, 40), 2.0)


def test_degrade_validates_arguments() -> None:
    hr = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="task"):
        degrade(hr, "inpaint")
    with pytest.raises(ValueError, match="scale"):
        degrade(hr, "sr", scale=1)
    with pytest.raises(ValueError, match="sigma"):
        degrade(hr, "deblur", sigma=0)
    with pytest.raises(ValueError, match="noise"):
        degrade(hr, "sr", noise=-1)
    with pytest.raises(ValueError, match="floating"):
        degrade((hr * 255).to(torch.uint8), "sr")


def test_make_pairs_shapes() -> None:
    imgs = [_textured(31, 45), _textured(20, 22, seed=5)]
    for scale in (2, 3, 4):
        for lr, hr in make_pairs(imgs, "sr", scale=scale):
            assert hr.shape[-2] % scale == 0 and hr.shape[-1] % scale == 0
            assert lr.shape == (3, hr.shape[1] // scale, hr.shape[2] // scale)
            assert_close(lr, bicubic_downscale(hr, scale), atol=HALF_LSB, rtol=0)
    for task in ("denoise", "deblur"):
        pairs = make_pairs(imgs, task)
        assert [lr.shape for lr, _ in pairs] == [hr.shape for _, hr in pairs] == [(3, 31, 45), (3, 20, 22)]
    a, b = make_pairs(imgs, "denoise", seed=0), make_pairs(imgs, "denoise", seed=1)
    assert torch.equal(a[0][0], make_pairs(imgs, "denoise", seed=0)[0][0])
    assert not torch.equal(a[0][0], b[0][0])


# --------------------------------------------------------------------------- RestorationDataset


@pytest.fixture(scope="module")
def train_images() -> list[np.ndarray]:
    return [_textured(70, 90, seed=10), _textured(64, 64, seed=11), _textured(81, 75, seed=12)]


def _assert_aligned(lr: torch.Tensor, hr: torch.Tensor, scale: int, margin: int = 3) -> None:
    """LR equals the bicubic downscale of the HR patch away from the patch border."""
    inner = (slice(None), slice(margin, -margin), slice(margin, -margin))
    assert_close(lr[inner], bicubic_downscale(hr, scale)[inner], atol=HALF_LSB, rtol=0)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_patches_are_aligned(train_images: list[np.ndarray], scale: int) -> None:
    ds = RestorationDataset(train_images, "sr", scale=scale, patch_size=12, augment=False, length=20, seed=7)
    for i in range(len(ds)):
        lr, hr = ds[i]
        assert lr.dtype == hr.dtype == torch.float32
        assert lr.shape == (3, 12, 12) and hr.shape == (3, 12 * scale, 12 * scale)
        assert 0 <= lr.min() and lr.max() <= 1
        _assert_aligned(lr, hr, scale)


def test_misaligned_patch_would_be_detected(train_images: list[np.ndarray]) -> None:
    """The alignment check is strong enough to see a one-pixel HR shift."""
    ds = RestorationDataset(train_images, "sr", scale=2, patch_size=12, augment=False, length=1)
    lr, hr = ds[0]
    shifted = torch.roll(hr, shifts=1, dims=-1)
    with pytest.raises(AssertionError):
        _assert_aligned(lr, shifted, 2)


def _dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    return [t.rot90(k, dims=(-2, -1)) for t in (x, x.flip(-1)) for k in range(4)]


def test_augmentation_is_applied_identically(train_images: list[np.ndarray]) -> None:
    kw = dict(task="sr", scale=2, patch_size=10, length=40, seed=3)
    plain = RestorationDataset(train_images, augment=False, **kw)
    aug = RestorationDataset(train_images, augment=True, **kw)
    used = set()
    for i in range(len(aug)):
        lr, hr = aug[i]
        _assert_aligned(lr, hr, 2)  # the transformed pair is still aligned
        lr0, hr0 = plain[i]
        hr_match = [j for j, t in enumerate(_dihedral(hr0)) if torch.equal(t, hr)]
        lr_match = [j for j, t in enumerate(_dihedral(lr0)) if torch.equal(t, lr)]
        assert hr_match and hr_match == lr_match  # same crop, same transform on both
        used.add(hr_match[0])
    assert len(used) >= 5  # flips and rotations really happen


@pytest.mark.parametrize("task", ["denoise", "deblur"])
def test_same_size_tasks(train_images: list[np.ndarray], task: str) -> None:
    ds = RestorationDataset(train_images, task, patch_size=16, length=6, sigma=None, noise=2.0)
    for i in range(len(ds)):
        lr, hr = ds[i]
        assert lr.shape == hr.shape == (3, 16, 16)
        assert not torch.equal(lr, hr)
        assert 0 <= lr.min() and lr.max() <= 1


def test_denoise_noise_is_fresh_per_sample() -> None:
    flat = [np.full((40, 40, 3), 128, np.uint8)]
    ds = RestorationDataset(flat, "denoise", patch_size=16, length=4, sigma=20, augment=False)
    (a, ha), (b, hb) = ds[0], ds[1]
    assert torch.equal(ha, hb)
    assert not torch.equal(a, b)
    assert abs(float((a - ha).std()) * 255 - 20) < 2.5


def test_dataset_determinism(train_images: list[np.ndarray]) -> None:
    make = lambda seed: RestorationDataset(train_images, "sr", patch_size=8, length=10, seed=seed)  # noqa: E731
    a, b, c = make(0), make(0), make(1)
    for i in range(len(a)):
        assert all(torch.equal(x, y) for x, y in zip(a[i], b[i]))
    assert any(not torch.equal(a[i][1], c[i][1]) for i in range(len(a)))
    assert not torch.equal(a[0][1], a[1][1])
    assert torch.equal(a[3][0], a[3][0])  # re-reading an index gives the same sample


def test_dataset_index_bounds_and_length(train_images: list[np.ndarray]) -> None:
    ds = RestorationDataset(train_images, patch_size=8, length=5)
    assert len(ds) == 5
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(ValueError, match="length"):
        RestorationDataset(train_images, length=0)
    with pytest.raises(ValueError, match="patch_size"):
        RestorationDataset(train_images, patch_size=-1)


def test_dataset_too_small_images(train_images: list[np.ndarray]) -> None:
    small = _textured(30, 100)
    with pytest.raises(ValueError, match=r"30, 100"), pytest.warns(UserWarning):
        RestorationDataset([small], "sr", scale=2, patch_size=16)
    with pytest.warns(UserWarning, match="30x100"):
        ds = RestorationDataset([small, train_images[0]], "sr", scale=2, patch_size=16, length=4)
    assert len(ds.hr) == 1 and ds.hr[0].shape == (3, 70, 90)


def test_dataset_from_folder_and_demo(image_folder: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, _ = image_folder
    with pytest.warns(UserWarning):  # the RGBA/grey images are smaller than 16 px
        ds = dataset_from(folder, task="sr", scale=2, patch_size=8, length=3)
    lr, hr = ds[2]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 16, 16)
    demo = dataset_from(None, task="sr", scale=4, patch_size=24, length=8)
    assert len(demo.hr) == len(data.DEMO_SPLITS["train"])
    loader = torch.utils.data.DataLoader(demo, batch_size=4)
    lr_b, hr_b = next(iter(loader))
    assert lr_b.shape == (4, 3, 24, 24) and hr_b.shape == (4, 3, 96, 96)
    for lr, hr in zip(lr_b, hr_b):
        _assert_aligned(lr, hr, 4)


def test_pairs_from_demo_test_split() -> None:
    pairs = data.pairs_from(None, "test", task="sr", scale=3)
    assert [tuple(hr.shape) for _, hr in pairs] == [(3, 300, 450), (3, 399, 600), (3, 510, 510)]
