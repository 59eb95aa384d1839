"""Images and degradations for training and evaluating restoration networks (no downloads).

Everything here works offline: images come from a folder on disk (:func:`load_images`) or from
scikit-image sample images that ship inside its wheel (:func:`demo_images`).

Conventions
-----------
* An *image* is an ``HxWx3`` ``uint8`` RGB numpy array; a *tensor* is ``float32`` in ``[0, 1]``,
  ``CHW`` (or ``NCHW``), on any device.
* Tasks (see :func:`degrade`): ``"sr"`` (bicubic downscaling by ``scale``; the LR is ``scale``
  times smaller than the modcropped HR), ``"denoise"`` (additive Gaussian noise, ``sigma`` on the
  0–255 scale) and ``"deblur"`` (Gaussian blur with kernel standard deviation ``sigma``, optional
  extra ``noise``). For ``denoise`` and ``deblur`` the degraded input and the HR have the **same
  size**.
* The deterministic part of a degradation (downscaling, blurring) is quantized to 8 bits, like LR
  images stored as PNG in the standard benchmarks; noise is added afterwards in float and the
  result is clamped to ``[0, 1]``.

The demo set
------------
:data:`DEMO_SPLITS` fixes which scikit-image sample images are used (sizes H x W):

* ``train``: astronaut 512x512, rocket 427x640, immunohistochemistry 512x512,
  hubble_deep_field 872x1000, coins 303x384 (grey), brick 512x512 (grey), grass 512x512 (grey),
  gravel 512x512 (grey), moon 512x512 (grey);
* ``test``: chelsea 300x451, coffee 400x600, camera 512x512 (grey).

Grey images are expanded to three equal channels. The split is by image, so no test pixel is ever
seen in training; training patches are random crops drawn by :class:`RestorationDataset`.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .images import read_image, to_rgb_uint8

__all__ = [
    "DEMO_SPLITS",
    "IMAGE_SUFFIXES",
    "InputPatches",
    "TASKS",
    "RestorationDataset",
    "bicubic_downscale",
    "bicubic_upscale",
    "dataset_from",
    "degrade",
    "demo_dataset",
    "demo_images",
    "gaussian_blur",
    "load_images",
    "make_pairs",
    "modcrop",
    "pairs_from",
    "to_image",
    "to_rgb_uint8",
    "to_tensor",
]

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
"""File suffixes :func:`load_images` reads (compared case-insensitively)."""

TASKS: tuple[str, ...] = ("sr", "denoise", "deblur")
"""The restoration tasks :func:`degrade` knows."""

DEFAULT_SIGMA: dict[str, float] = {"denoise": 25.0, "deblur": 1.6}
"""``sigma`` used when none is given: noise level (0–255 scale) or blur kernel std (pixels)."""

DEMO_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "astronaut",
        "rocket",
        "immunohistochemistry",
        "hubble_deep_field",
        "coins",
        "brick",
        "grass",
        "gravel",
        "moon",
    ),
    "test": ("chelsea", "coffee", "camera"),
}
"""Names of the ``skimage.data`` images in each split of the demo set (all bundled in the wheel)."""

_Array = TypeVar("_Array", np.ndarray, torch.Tensor)


# --------------------------------------------------------------------------- image conversion


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """An ``HxWx3`` ``uint8`` image as a ``float32`` ``3xHxW`` tensor in ``[0, 1]``.

    >>> t = to_tensor(np.full((2, 3, 3), 255, np.uint8))
    >>> tuple(t.shape), t.dtype, float(t.max())
    ((3, 2, 3), torch.float32, 1.0)
    """
    arr = to_rgb_uint8(img)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).float().div_(255.0)


def to_image(t: torch.Tensor) -> np.ndarray:
    """A ``CHW`` tensor in ``[0, 1]`` as an ``HxWx3`` ``uint8`` image (clamped and rounded).

    >>> to_image(torch.full((3, 1, 2), 0.5))[0, 0].tolist()
    [128, 128, 128]
    """
    if t.ndim != 3:
        raise ValueError(f"to_image: expected a CHW tensor, got shape {tuple(t.shape)}")
    arr = t.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return to_rgb_uint8(arr.transpose(1, 2, 0))


# --------------------------------------------------------------------------- reading images


def load_images(folder: str | Path, recursive: bool = False) -> list[np.ndarray]:
    """Read every PNG/JPEG/BMP/TIFF image in ``folder`` as ``HxWx3`` ``uint8`` RGB arrays.

    Files are taken in sorted path order; subfolders are searched only when ``recursive`` is
    true. Other files are ignored. Grey images get three equal channels, alpha is dropped, and
    only the first frame of a multi-frame file is read (each file by :func:`fxprune.images.read_image`).

    Raises ``FileNotFoundError`` for a missing folder, ``ValueError`` if ``folder`` is not a
    directory, holds no image, or an image file cannot be decoded (the message names the file).

    >>> import tempfile
    >>> from PIL import Image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     Image.new("L", (6, 4)).save(f"{d}/a.png")
    ...     [im.shape for im in load_images(d)]
    [(4, 6, 3)]
    """
    return [read_image(path) for path in image_files(folder, recursive)]


def image_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Sorted paths of the image files :func:`load_images` would read (same errors).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     image_files(d)
    Traceback (most recent call last):
    ...
    ValueError: no image files (.bmp, .jpeg, .jpg, .png, .tif, .tiff) in ...
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} is not a directory")
    candidates = root.rglob("*") if recursive else root.iterdir()
    files = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        kinds = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ValueError(f"no image files ({kinds}) in {str(root)!r}")
    return files


@functools.lru_cache(maxsize=None)
def _demo_image(name: str) -> np.ndarray:
    """One bundled ``skimage.data`` image as RGB ``uint8`` (cached; callers get copies)."""
    import skimage.data

    arr = to_rgb_uint8(getattr(skimage.data, name)(), name=f"skimage.data.{name}")
    arr.setflags(write=False)
    return arr


def demo_images(split: str = "train") -> list[np.ndarray]:
    """The bundled demo images of ``split`` (``"train"`` or ``"test"``), see :data:`DEMO_SPLITS`.

    The images ship inside the scikit-image wheel, so nothing is downloaded. The split is fixed
    and deterministic; the two splits share no image.

    >>> [im.shape for im in demo_images("test")]
    [(300, 451, 3), (400, 600, 3), (512, 512, 3)]
    """
    if split not in DEMO_SPLITS:
        raise ValueError(f"split must be one of {sorted(DEMO_SPLITS)}, got {split!r}")
    return [_demo_image(name).copy() for name in DEMO_SPLITS[split]]


# --------------------------------------------------------------------------- degradations


def _check_scale(scale: int, minimum: int = 1) -> int:
    """Validate an integer scale factor and return it."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < minimum:
        raise ValueError(f"scale must be an integer >= {minimum}, got {scale!r}")
    return int(scale)


def modcrop(img: _Array, scale: int) -> _Array:
    """Crop the bottom/right of ``img`` so that height and width are divisible by ``scale``.

    A numpy array is ``HxW`` or ``HxWxC`` (height on axis 0); a tensor is ``(..., H, W)``.

    >>> modcrop(np.zeros((7, 10, 3)), 3).shape
    (6, 9, 3)
    >>> tuple(modcrop(torch.zeros(1, 3, 7, 10), 2).shape)
    (1, 3, 6, 10)
    """
    scale = _check_scale(scale)
    if isinstance(img, torch.Tensor):
        h, w = img.shape[-2:]
    else:
        h, w = img.shape[:2]
    if h < scale or w < scale:
        raise ValueError(f"modcrop: image of size {h}x{w} is smaller than scale {scale}")
    h2, w2 = h - h % scale, w - w % scale
    if isinstance(img, torch.Tensor):
        return img[..., :h2, :w2]
    return img[:h2, :w2]


def _as_batch(x: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    """``x`` as a floating NCHW tensor, and whether it was CHW."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{name}: expected a CHW or NCHW tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating tensor in [0, 1], got dtype {x.dtype}")
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def bicubic_downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic (antialiased) downscaling of ``hr`` (``CHW``/``NCHW`` in ``[0, 1]``) by ``scale``.

    ``hr`` is :func:`modcrop`-ped first, so the result is exactly ``H//scale x W//scale``;
    the output is clamped to ``[0, 1]``.

    >>> tuple(bicubic_downscale(torch.rand(3, 9, 13), 2).shape)
    (3, 4, 6)
    """
    scale = _check_scale(scale)
    x, squeeze = _as_batch(modcrop(hr, scale), "bicubic_downscale")
    size = (x.shape[-2] // scale, x.shape[-1] // scale)
    out = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
    return out[0] if squeeze else out


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upscaling of ``lr`` (``CHW``/``NCHW``) by ``scale``, clamped to ``[0, 1]``.

    >>> tuple(bicubic_upscale(torch.rand(3, 4, 6), 3).shape)
    (3, 12, 18)
    """
    scale = _check_scale(scale)
    x, squeeze = _as_batch(lr, "bicubic_upscale")
    size = (x.shape[-2] * scale, x.shape[-1] * scale)
    out = F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp_(0, 1)
    return out[0] if squeeze else out


def _gaussian_kernel1d(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalized 1-D Gaussian of std ``sigma`` and radius ``ceil(3 sigma)``."""
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``img`` (``CHW``/``NCHW``), kernel radius ``ceil(3 sigma)``.

    Borders use reflect padding, so the output has the input's size; the image must be larger
    than the kernel radius in both dimensions.

    >>> x = torch.full((3, 8, 8), 0.25)
    >>> torch.allclose(gaussian_blur(x, 1.0), x)
    True
    """
    if not sigma > 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma!r}")
    x, squeeze = _as_batch(img, "gaussian_blur")
    k = _gaussian_kernel1d(float(sigma), x.dtype, x.device)
    r = (k.numel() - 1) // 2
    h, w = x.shape[-2:]
    if r >= h or r >= w:
        raise ValueError(f"gaussian_blur: image {h}x{w} is too small for sigma {sigma} (needs > {r} px)")
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x[0] if squeeze else x


def _check_task(task: str) -> str:
    """Validate a task name."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return task


def _resolve_sigma(task: str, sigma: float | None) -> float | None:
    """``sigma`` or the task default (``None`` for sr); rejects negative / zero values."""
    if task == "sr":
        return None
    value = DEFAULT_SIGMA[task] if sigma is None else float(sigma)
    if value < 0 or (task == "deblur" and value == 0):
        raise ValueError(f"sigma for task {task!r} must be {'> 0' if task == 'deblur' else '>= 0'}, got {sigma!r}")
    return value


def _noise_level(task: str, sigma: float | None, noise: float) -> float:
    """Standard deviation (0–255 scale) of the Gaussian noise a task adds."""
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    return float(sigma) if task == "denoise" else float(noise)


def _quantize(x: torch.Tensor) -> torch.Tensor:
    """Round ``x`` in ``[0, 1]`` to the 8-bit grid."""
    return x.clamp(0, 1).mul(255).round().div(255)


def _deterministic_part(hr: torch.Tensor, task: str, scale: int, sigma: float | None) -> torch.Tensor:
    """Downscale (sr), blur (deblur) or copy (denoise) ``hr``, then quantize to 8 bits."""
    if task == "sr":
        out = bicubic_downscale(hr, _check_scale(scale, 2))
    elif task == "deblur":
        out = gaussian_blur(hr, sigma)
    else:
        out = hr
    return _quantize(out)


def _torch_generator(seed: int | torch.Generator | None) -> torch.Generator:
    """A CPU generator from an int seed (``None`` means 0) or the generator itself."""
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


def _add_noise(x: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` plus Gaussian noise of std ``level/255`` (drawn on the CPU), clamped to ``[0, 1]``."""
    if level == 0:
        return x
    n = torch.randn(x.shape, generator=generator, dtype=torch.float32)
    return (x + n.to(device=x.device, dtype=x.dtype) * (level / 255.0)).clamp_(0, 1)


def degrade(
    hr: torch.Tensor,
    task: str,
    scale: int = 2,
    sigma: float | None = None,
    noise: float = 0.0,
    seed: int | torch.Generator | None = 0,
) -> torch.Tensor:
    """The degraded input for ``task`` from a clean ``hr`` (``CHW``/``NCHW`` in ``[0, 1]``).

    * ``"sr"``: :func:`bicubic_downscale` by ``scale`` (2, 3, 4, ...); the matching target is
      ``modcrop(hr, scale)``. ``sigma`` is ignored.
    * ``"denoise"``: ``hr`` plus Gaussian noise of std ``sigma`` on the 0–255 scale (default 25).
    * ``"deblur"``: Gaussian blur with kernel std ``sigma`` pixels (default 1.6), reflect padding.

    ``noise`` (0–255 scale) adds Gaussian noise after downscaling/blurring for sr and deblur.
    The downscaled/blurred image is quantized to 8 bits before noise is added; the result is
    clamped to ``[0, 1]``. Noise comes from a CPU generator seeded with ``seed`` (or ``seed``
    itself if it is a ``torch.Generator``), so results are identical on every device.
    For denoise and deblur the output has the same size as ``hr``.

    >>> hr = torch.rand(3, 16, 16)
    >>> [tuple(degrade(hr, t).shape) for t in ("sr", "denoise", "deblur")]
    [(3, 8, 8), (3, 16, 16), (3, 16, 16)]
    >>> torch.equal(degrade(hr, "denoise", seed=1), degrade(hr, "denoise", seed=1))
    True
    """
    task = _check_task(task)
    sigma = _resolve_sigma(task, sigma)
    level = _noise_level(task, sigma, noise)
    out = _deterministic_part(hr, task, scale, sigma)
    return _add_noise(out, level, _torch_generator(seed))


def _target(hr: torch.Tensor, task: str, scale: int) -> torch.Tensor:
    """The ground truth matching :func:`degrade`: modcropped for sr, unchanged otherwise."""
    return modcrop(hr, scale) if task == "sr" else hr


def _sub_seed(seed: int, index: int) -> int:
    """A 63-bit torch seed derived from ``(seed, index)``."""
    return int(np.random.default_rng((seed, index)).integers(2**63 - 1))


def make_pairs(
    images: Sequence[np.ndarray],
    task: str = "sr",
    scale: int = 2,
    sigma: float | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Whole-image ``(lr, hr)`` pairs of ``float32`` ``CHW`` tensors for evaluation.

    For sr the HR is :func:`modcrop`-ped to a multiple of ``scale``; for denoise/deblur the pair
    has equal sizes. Image ``i`` is degraded with a seed derived from ``(seed, i)``.

    >>> lr, hr = make_pairs([np.zeros((9, 10, 3), np.uint8)], "sr", scale=3)[0]
    >>> tuple(lr.shape), tuple(hr.shape)
    ((3, 3, 3), (3, 9, 9))
    """
    task = _check_task(task)
    pairs = []
    for i, img in enumerate(images):
        hr = _target(to_tensor(img), task, scale)
        pairs.append((degrade(hr, task, scale, sigma, noise, _sub_seed(seed, i)), hr))
    return pairs


# --------------------------------------------------------------------------- training dataset


def _images_from(source: str | Path | Sequence[np.ndarray] | None, split: str = "train") -> list[np.ndarray]:
    """Images of a source: ``None`` = demo split, a folder path, or a sequence of arrays."""
    if source is None:
        return demo_images(split)
    if isinstance(source, (str, Path)):
        return load_images(source)
    images = [to_rgb_uint8(img, name=f"image {i}") for i, img in enumerate(source)]
    if not images:
        raise ValueError("no images given (empty sequence)")
    return images


def _augment(x: torch.Tensor, hflip: bool, vflip: bool, rot: bool) -> torch.Tensor:
    """Apply a horizontal flip, vertical flip and 90° rotation (in that order) to ``(C, H, W)``."""
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    if rot:
        x = x.rot90(1, dims=(-2, -1))
    return x


class RestorationDataset(Dataset):
    """Random aligned ``(lr, hr)`` patches for training a restoration network.

    ``source`` is a folder of images (see :func:`load_images`), a sequence of ``HxWx3`` images,
    or ``None`` for the bundled demo training set. Each image is degraded **once, whole** (sr:
    bicubic downscaling of the modcropped image; deblur: blur) and kept as 8-bit; a sample crops an
    LR patch of ``patch_size`` at ``(y, x)`` and the HR patch at ``(y*scale, x*scale)`` of size
    ``patch_size*scale`` (same position and size for denoise/deblur), so the pair is exactly
    aligned (``scale`` is ignored for denoise/deblur). Noise (denoise, or ``noise`` > 0) is drawn
    fresh for every sample.

    The dataset is virtual: ``len()`` is ``length`` and sample ``index`` is a deterministic
    function of ``(seed, index)`` (image choice, crop, augmentation and noise). With ``augment``,
    random horizontal/vertical flips and a 90° rotation are applied identically to LR and HR.
    Images smaller than one HR patch are skipped with a warning; if none fits, ``ValueError``.
    Samples are ``float32`` ``CHW`` tensors in ``[0, 1]``.

    >>> ds = RestorationDataset([np.zeros((40, 50, 3), np.uint8)], scale=2, patch_size=8, length=5)
    >>> lr, hr = ds[0]
    >>> len(ds), tuple(lr.shape), tuple(hr.shape)
    (5, (3, 8, 8), (3, 16, 16))
    """

    def __init__(
        self,
        source: str | Path | Sequence[np.ndarray] | None = None,
        task: str = "sr",
        scale: int = 2,
        patch_size: int = 48,
        augment: bool = True,
        length: int = 1000,
        seed: int = 0,
        sigma: float | None = None,
        noise: float = 0.0,
    ) -> None:
        self.task = _check_task(task)
        self.scale = _check_scale(scale, 2) if task == "sr" else 1
        self.patch_size = _positive_int(patch_size, "patch_size")
        self.length = _positive_int(length, "length")
        self.augment = bool(augment)
        self.seed = int(seed)
        self.sigma = _resolve_sigma(self.task, sigma)
        self.noise_level = _noise_level(self.task, self.sigma, noise)
        images = self._fitting(_images_from(source, "train"))
        self.hr, self.lr = self._prepare(images)

    def _fitting(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Keep the images holding at least one HR patch, warning about the others."""
        need = self.patch_size * self.scale
        kept = []
        for i, img in enumerate(images):
            if img.shape[0] >= need and img.shape[1] >= need:
                kept.append(img)
            else:
                warnings.warn(
                    f"RestorationDataset: skipping image {i} of size {img.shape[0]}x{img.shape[1]}, "
                    f"smaller than the {need}x{need} HR patch",
                    stacklevel=3,
                )
        if not kept:
            raise ValueError(
                f"no image is at least {need}x{need} pixels (HR patch = patch_size {self.patch_size}"
                f" x scale {self.scale}); sizes: {[img.shape[:2] for img in images]}"
            )
        return kept

    def _prepare(self, images: list[np.ndarray]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """8-bit HR and degraded (noise-free) LR tensors of every whole image."""
        hrs, lrs = [], []
        for img in images:
            hr = to_tensor(modcrop(img, self.scale))
            lr = _deterministic_part(hr, self.task, self.scale, self.sigma)
            hrs.append(_to_u8(hr))
            lrs.append(_to_u8(lr))
        return hrs, lrs

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of length {self.length}")
        rng = np.random.default_rng((self.seed, int(index)))
        lr, hr = self._crop(rng)
        if self.augment:
            flips = rng.integers(0, 2, size=3).astype(bool)
            lr, hr = (_augment(t, *flips) for t in (lr, hr))
        generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        lr = _add_noise(lr, self.noise_level, generator)
        return lr.contiguous(), hr.contiguous()

    def _crop(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """An aligned random crop of a random image, as float tensors."""
        k = int(rng.integers(len(self.lr)))
        lr_full, hr_full, p, s = self.lr[k], self.hr[k], self.patch_size, self.scale
        y = int(rng.integers(lr_full.shape[-2] - p + 1))
        x = int(rng.integers(lr_full.shape[-1] - p + 1))
        lr = lr_full[:, y : y + p, x : x + p]
        hr = hr_full[:, y * s : (y + p) * s, x * s : (x + p) * s]
        return lr.float().div(255), hr.float().div(255)


class InputPatches(RestorationDataset):
    """Random input patches with no ground truth, for training on a teacher's output
    (``TrainConfig(targets="teacher")``): any folder of images will do, of any size.

    For ``"sr"`` an image at least ``patch_size * scale`` on both sides is bicubic-downscaled by
    ``scale`` first (8-bit, like :func:`degrade`): the model was trained on such LR inputs, while a
    photo at its native resolution is sharper per pixel, so its patches would ask the teacher for
    content it never learned to produce. A smaller image that still holds one patch is used as it
    is (it is still real content; a downscaled copy would hold no patch). For ``"denoise"`` and
    ``"deblur"`` the degradation is applied as :class:`RestorationDataset` does. Images holding no
    patch are skipped with a warning. A sample is a 1-tuple ``(lr,)``.

    >>> ds = InputPatches([np.zeros((41, 37, 3), np.uint8), np.zeros((20, 23, 3), np.uint8)], scale=2,
    ...                   patch_size=16, length=4)
    >>> [tuple(t.shape) for t in ds.lr], tuple(ds[0][0].shape)
    ([(3, 20, 18), (3, 20, 23)], (3, 16, 16))
    """

    def _fitting(self, images: list[np.ndarray]) -> list[np.ndarray]:
        kept = []
        for i, img in enumerate(images):
            if min(img.shape[:2]) >= self.patch_size:
                kept.append(img)
            else:
                warnings.warn(f"InputPatches: skipping image {i} of size {img.shape[0]}x{img.shape[1]}, smaller "
                              f"than one {self.patch_size}x{self.patch_size} input patch", stacklevel=3)
        if not kept:
            raise ValueError(f"no image is at least {self.patch_size}x{self.patch_size} pixels (one input patch); "
                             f"sizes: {[img.shape[:2] for img in images]}")
        return kept

    def _prepare(self, images: list[np.ndarray]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        lrs = []
        for img in images:
            image = to_tensor(img)
            if self.task != "sr":
                image = _deterministic_part(image, self.task, 1, self.sigma)
            elif min(img.shape[:2]) >= self.patch_size * self.scale:
                image = _deterministic_part(to_tensor(modcrop(img, self.scale)), "sr", self.scale, None)
            lrs.append(_to_u8(image))
        return [], lrs

    def __getitem__(self, index: int) -> tuple[torch.Tensor]:  # type: ignore[override]
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of length {self.length}")
        rng = np.random.default_rng((self.seed, int(index)))
        full = self.lr[int(rng.integers(len(self.lr)))]
        y = int(rng.integers(full.shape[-2] - self.patch_size + 1))
        x = int(rng.integers(full.shape[-1] - self.patch_size + 1))
        lr = full[:, y: y + self.patch_size, x: x + self.patch_size].float().div(255)
        if self.augment:
            lr = _augment(lr, *rng.integers(0, 2, size=3).astype(bool))
        generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        return (_add_noise(lr, self.noise_level, generator).contiguous(),)

    def whole_inputs(self, count: int = 4, size: int = 96) -> list[torch.Tensor]:
        """Up to ``count`` noise-free inputs (a centre crop of at most ``size`` px of each of the
        first images) on which to measure a student's fidelity to its teacher."""
        crops = []
        for full in self.lr[:count]:
            h, w = full.shape[-2:]
            top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
            crops.append(full[:, top: top + size, left: left + size].float().div(255))
        return crops


def _positive_int(value: int, name: str) -> int:
    """Validate a positive integer argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    """A ``[0, 1]`` tensor as ``uint8`` (4x smaller to keep whole images in memory)."""
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


# --------------------------------------------------------------------------- entry points


def dataset_from(source: str | Path | Sequence[np.ndarray] | None = None, **kwargs: Any) -> RestorationDataset:
    """A :class:`RestorationDataset` over ``source``: ``None`` (demo train split) or a folder.

    ``kwargs`` are passed to :class:`RestorationDataset` (``task``, ``scale``, ``patch_size``, ...).
    This is what ``--data DIR`` on the command line maps to.

    >>> ds = dataset_from(None, patch_size=16, length=3)
    >>> tuple(ds[0][1].shape)
    (3, 32, 32)
    """
    return RestorationDataset(source, **kwargs)


def demo_dataset(**kwargs: Any) -> RestorationDataset:
    """:class:`RestorationDataset` over the bundled demo training images.

    >>> len(demo_dataset(length=7))
    7
    """
    return RestorationDataset(None, **kwargs)


def pairs_from(
    source: str | Path | Sequence[np.ndarray] | None = None,
    split: str = "test",
    **kwargs: Any,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Evaluation pairs (:func:`make_pairs`) from a folder, images, or the demo ``split``.

    ``split`` only applies to the demo set (``source=None``); a folder is used whole.

    >>> len(pairs_from(None, "test", task="sr", scale=4))
    3
    """
    return make_pairs(_images_from(source, split), **kwargs)
