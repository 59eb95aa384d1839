"""The images of bench_routing.py, split by use: what trained the models, what chooses settings, what is judged.

- **train**: fxprune's bundled demo training split (``fxprune.data.DEMO_SPLITS["train"]``): the shipped
  dense EDSR was trained on it (benchmarks/train_reference.py) and the variants are fine-tuned on it.
- **validation**: the demo *test* split (chelsea, coffee, camera) — train_reference.py picked the shipped
  checkpoint by its PSNR on them, so they are not clean test images — plus a generated dead-leaves image
  (seed 1). They choose the window size, context, estimator per route and β, and fit the lookup table.
- **test**: images no model or setting saw: scikit-image's retina (1411x1411), cell (660x550, grey) and
  motorcycle_left (741x500), matplotlib's grace_hopper (600x512), and a dead-leaves image (seed 2).
- **size series**: the test dead-leaves scene (seed 2) rendered at several sizes: the same content at
  more pixels per object, to read the saving against image size.

Dead leaves (occluding disks of power-law radii, each with a colour gradient) is the standard synthetic
model of natural-image statistics; ``dead_leaves`` renders it reproducibly at any size (2x supersampled).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

VALIDATION = ("chelsea", "coffee", "camera", "leaves1")
TEST = ("grace_hopper", "cell", "motorcycle_left", "retina", "leaves2")
LEAVES_SIZE = {"leaves1": 512, "leaves2": 1024}


def dead_leaves(size: int, seed: int, disks: int = 15000) -> np.ndarray:
    """A ``size`` x ``size`` RGB dead-leaves image; the scene depends on ``seed`` only, not on ``size``.

    >>> a, b = dead_leaves(64, 3, disks=50), dead_leaves(128, 3, disks=50)
    >>> a.shape, b.shape, a.dtype
    ((64, 64, 3), (128, 128, 3), dtype('uint8'))
    """
    rng = np.random.default_rng(seed)
    rmin, rmax = 0.004, 0.12
    u = rng.random(disks)   # radii with density ~ r^-3 on [rmin, rmax] (scale invariance)
    radii = 1 / np.sqrt(1 / rmin ** 2 - u * (1 / rmin ** 2 - 1 / rmax ** 2))
    centres = rng.random((disks, 2)) * (1 + 2 * rmax) - rmax
    colours = rng.random((disks, 3)) * 0.8 + 0.1
    slopes = rng.normal(0, 0.25, (disks, 2, 3))   # colour change per unit of the image width
    n = 2 * size
    img = np.full((n, n, 3), 0.5)
    coords = (np.arange(n) + 0.5) / n
    for (cy, cx), r, colour, slope in zip(centres, radii, colours, slopes):
        y0, y1 = np.searchsorted(coords, [cy - r, cy + r])
        x0, x1 = np.searchsorted(coords, [cx - r, cx + r])
        if y1 <= y0 or x1 <= x0:
            continue
        dy, dx = coords[y0:y1, None] - cy, coords[None, x0:x1] - cx
        inside = dy ** 2 + dx ** 2 <= r ** 2
        value = colour + dy[..., None] * slope[0] + dx[..., None] * slope[1]
        patch = img[y0:y1, x0:x1]
        patch[inside] = value[np.broadcast_to(inside, value.shape[:2])]
    img = img.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def load(name: str, size: int | None = None) -> np.ndarray:
    """Image ``name`` as ``HxWx3`` uint8 (``leaves1``/``leaves2``: dead leaves of seed 1/2 at ``size`` or their default)."""
    from PIL import Image

    if name.startswith("leaves"):
        return dead_leaves(size or LEAVES_SIZE[name], int(name[len("leaves"):]))
    if name == "grace_hopper":
        from matplotlib import cbook

        path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    else:
        import skimage

        folder = Path(os.path.dirname(skimage.__file__)) / "data"
        path = next(folder / f for f in os.listdir(folder) if f.split(".")[0] == name)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def images(names: tuple[str, ...], crop: int | None = None) -> list[tuple[str, np.ndarray]]:
    """``(name, image)`` for each name, its centre cut to ``crop`` x ``crop`` px when given (--quick, --crop)."""
    out = []
    for name in names:
        img = load(name, size=crop if name.startswith("leaves") and crop else None)
        if crop:
            top, left = max(0, (img.shape[0] - crop) // 2), max(0, (img.shape[1] - crop) // 2)
            img = img[top:top + crop, left:left + crop]
        out.append((name, img))
    return out
