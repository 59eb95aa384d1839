"""Image-quality metrics used in restoration papers: PSNR and SSIM on the Y channel.

The conventions follow the usual super-resolution evaluation scripts:

* images are tensors in ``[0, 1]`` (``CHW`` or ``NCHW``), first **quantized to 8 bits**
  (``round(x * 255) / 255`` after clamping; ``quantize=False`` skips this);
* ``y_channel=True`` compares the ITU-R BT.601 luma of MATLAB's ``rgb2ycbcr`` (:func:`rgb_to_y`);
* ``shave`` pixels are cropped from every border before comparing (for SR, ``shave = scale``);
* SSIM uses an 11x11 Gaussian window (sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``, on the 0–255
  scale, averaged over the *valid* region (no padding).

For a batch (``NCHW``) the metric of each image is computed and the mean returned. Identical
images have a PSNR of ``inf``. Metrics are computed in float64 on the inputs' device.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .eval_mode import eval_mode
from .tiling import tiles

__all__ = ["bicubic_baseline", "evaluate", "psnr", "rgb_to_y", "run_model", "ssim"]

_Y_WEIGHTS = (65.481, 128.553, 24.966)
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of an RGB image in ``[0, 1]``: ``16/255 + (65.481 R + 128.553 G + 24.966 B)/255``.

    Works on ``CHW`` or ``NCHW`` (channel dim ``-3`` of size 3) and keeps that dim with size 1;
    the result lies in ``[16/255, 235/255]`` like MATLAB's ``rgb2ycbcr``.

    >>> y = rgb_to_y(torch.ones(3, 2, 2))
    >>> tuple(y.shape), round(float(y[0, 0, 0]) * 255, 3)
    ((1, 2, 2), 235.0)
    """
    if img.ndim not in (3, 4) or img.shape[-3] != 3:
        raise ValueError(f"rgb_to_y: expected a 3-channel CHW or NCHW tensor, got shape {tuple(img.shape)}")
    w = torch.tensor(_Y_WEIGHTS, dtype=img.dtype, device=img.device).view(3, 1, 1) / 255.0
    return (img * w).sum(dim=-3, keepdim=True) + 16.0 / 255.0


def _to_nchw(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as a floating NCHW tensor."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ValueError(f"{name}: expected a CHW or NCHW tensor, got shape {tuple(x.shape)}")
    x = x.unsqueeze(0) if x.ndim == 3 else x
    return x if x.is_floating_point() else x.double()


def _shave(x: torch.Tensor, shave: int) -> torch.Tensor:
    """Crop ``shave`` pixels from each border of an NCHW tensor."""
    if isinstance(shave, bool) or not isinstance(shave, int) or shave < 0:
        raise ValueError(f"shave must be a non-negative integer, got {shave!r}")
    h, w = x.shape[-2:]
    if 2 * shave >= h or 2 * shave >= w:
        raise ValueError(f"shave={shave} leaves nothing of a {h}x{w} image")
    return x[..., shave : h - shave, shave : w - shave] if shave else x


def _prepare(
    sr: torch.Tensor, hr: torch.Tensor, shave: int, y_channel: bool, data_range: float, quantize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate, quantize, convert to Y and shave both images; float64 in ``[0, 1]``."""
    a, b = _to_nchw(sr, "sr"), _to_nchw(hr, "hr")
    if a.shape != b.shape:
        raise ValueError(f"sr and hr shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range!r}")
    a, b = (t.double().to(b.device) / data_range for t in (a, b))
    if quantize:
        a, b = (t.clamp(0, 1).mul(255).round().div(255) for t in (a, b))
    if y_channel and a.shape[1] == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    elif y_channel and a.shape[1] != 1:
        raise ValueError(f"y_channel needs 1 or 3 channels, got {a.shape[1]}")
    return _shave(a, shave), _shave(b, shave)


def psnr(
    sr: torch.Tensor,
    hr: torch.Tensor,
    shave: int = 0,
    y_channel: bool = True,
    data_range: float = 1.0,
    quantize: bool = True,
) -> float:
    """Peak signal-to-noise ratio in dB of ``sr`` against ``hr`` (whole images).

    Values are divided by ``data_range`` (so inputs in ``[0, data_range]``), quantized to 8 bits
    if ``quantize``, reduced to luma if ``y_channel`` (3-channel inputs; 1-channel are used as is),
    and ``shave`` pixels are cropped from every border. Identical images give ``inf``; a batch
    gives the mean of the per-image values.

    >>> hr = torch.zeros(3, 8, 8)
    >>> psnr(hr, hr)
    inf
    >>> round(psnr(hr + 0.2, hr, y_channel=False), 2)
    13.98
    """
    a, b = _prepare(sr, hr, shave, y_channel, data_range, quantize)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    values = [math.inf if m == 0 else -10.0 * math.log10(m) for m in mse.tolist()]
    return sum(values) / len(values)


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The normalized 1-D Gaussian (11 taps, sigma 1.5); the 2-D window is its outer product."""
    t = torch.arange(_SSIM_WINDOW, dtype=torch.float64) - (_SSIM_WINDOW - 1) / 2
    g = torch.exp(-(t**2) / (2 * _SSIM_SIGMA**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (valid region) of NCHW tensors on the 0–255 scale, channels independent."""
    n, c, h, w = a.shape
    if h < _SSIM_WINDOW or w < _SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least {_SSIM_WINDOW}x{_SSIM_WINDOW} after shaving, got {h}x{w}")
    g = _gaussian_window(a.dtype, a.device)
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1).reshape(n * 5 * c, 1, h, w)
    filtered = F.conv2d(F.conv2d(stack, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))  # separable window
    mu_a, mu_b, aa, bb, ab = filtered.reshape(n, 5, c, h - _SSIM_WINDOW + 1, w - _SSIM_WINDOW + 1).unbind(1)
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim(
    sr: torch.Tensor,
    hr: torch.Tensor,
    shave: int = 0,
    y_channel: bool = True,
    data_range: float = 1.0,
    quantize: bool = True,
) -> float:
    """Structural similarity of ``sr`` against ``hr`` with the standard Gaussian window.

    Preprocessing is as in :func:`psnr`; the images are then scaled to 0–255 and SSIM uses an
    11x11 Gaussian window with sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03`` and population statistics,
    averaged over the valid region (pixels at least 5 from the border) and over channels when
    ``y_channel`` is false. A batch gives the mean over images. Matches
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)``.

    >>> hr = torch.rand(3, 16, 16)
    >>> ssim(hr, hr)
    1.0
    """
    a, b = _prepare(sr, hr, shave, y_channel, data_range, quantize)
    per_image = _ssim_map(a * 255.0, b * 255.0).flatten(1).mean(dim=1)
    return float(per_image.mean())


# --------------------------------------------------------------------------- evaluating models


def _model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU if it has none)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _tile_scale(out: torch.Tensor, h: int, w: int) -> int:
    """The integer scale between an output tile and its ``h x w`` input tile."""
    oh, ow = out.shape[-2:]
    if oh % h or ow % w or oh // h != ow // w:
        raise ValueError(f"model output {oh}x{ow} is not an integer multiple of its input {h}x{w}")
    return oh // h


def _run_tiled(model: nn.Module, x: torch.Tensor, tile: int, pad: int) -> torch.Tensor:
    """Run ``model`` on the windows of :func:`fxprune.tiling.tiles` (cores of ``tile`` px with ``pad``
    px of context) and stitch the cores of the outputs."""
    out = None
    for t in tiles(x.shape[-2], x.shape[-1], tile + 2 * pad, pad):
        rows, cols = t.window()
        piece = model(x[..., rows, cols])
        s = _tile_scale(piece, rows.stop - rows.start, cols.stop - cols.start)
        if out is None:
            out = piece.new_zeros(*piece.shape[:2], x.shape[-2] * s, x.shape[-1] * s)
        (core_rows, core_cols), (crop_rows, crop_cols) = t.core(s), t.crop(s)
        out[..., core_rows, core_cols] = piece[..., crop_rows, crop_cols]
    return out


def run_model(
    model: nn.Module,
    lr: torch.Tensor,
    device: torch.device | str | None = None,
    tile: int | None = None,
    tile_pad: int = 16,
) -> torch.Tensor:
    """Restore one ``CHW`` image: eval mode, ``torch.inference_mode``, output clamped to ``[0, 1]``.

    ``device`` defaults to the model's device. With ``tile``, the input is processed in
    ``tile x tile`` pieces, each with ``tile_pad`` pixels of context on every side, and the
    centres are stitched (exact for receptive fields up to ``tile_pad``). The model's
    train/eval mode is restored afterwards. Returns a ``CHW`` tensor on ``lr``'s device.

    >>> up = nn.Upsample(scale_factor=2)
    >>> tuple(run_model(up, torch.rand(3, 5, 7), tile=4).shape)
    (3, 10, 14)
    """
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise ValueError(f"tile must be a positive integer or None, got {tile!r}")
    if lr.ndim != 3:
        raise ValueError(f"run_model: expected a CHW tensor, got shape {tuple(lr.shape)}")
    device = _model_device(model) if device is None else torch.device(device)
    with eval_mode(model), torch.inference_mode():
        x = lr.unsqueeze(0).to(device)
        out = model(x) if tile is None else _run_tiled(model, x, tile, tile_pad)
    return out[0].float().clamp(0, 1).to(lr.device)


def _mean_scores(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], outputs: Iterable[torch.Tensor], shave: int
) -> dict[str, float]:
    """Mean PSNR/SSIM of outputs against the HR of each pair."""
    ps, ss = [], []
    for out, (_, hr) in zip(outputs, pairs):
        if out.shape != hr.shape:
            raise ValueError(f"output shape {tuple(out.shape)} differs from the target's {tuple(hr.shape)}")
        ps.append(psnr(out, hr, shave=shave))
        ss.append(ssim(out, hr, shave=shave))
    return {"psnr": sum(ps) / len(ps), "ssim": sum(ss) / len(ss)}


def evaluate(
    model: nn.Module,
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    shave: int,
    device: torch.device | str | None = None,
    tile: int | None = None,
) -> dict[str, float]:
    """Mean Y-channel ``"psnr"`` and ``"ssim"`` of ``model`` over whole-image ``(lr, hr)`` pairs.

    Each ``lr`` goes through :func:`run_model` (eval mode, inference mode, on ``device`` or the
    model's device, optionally tiled) and is compared with ``hr`` with ``shave`` border pixels
    removed (``shave = scale`` for SR). See :func:`psnr` and :func:`ssim`.

    >>> hr = torch.rand(3, 16, 16)
    >>> evaluate(nn.Identity(), [(hr, hr)], shave=0)
    {'psnr': inf, 'ssim': 1.0}
    """
    if not pairs:
        raise ValueError("evaluate: no (lr, hr) pairs given")
    outputs = (run_model(model, lr, device=device, tile=tile) for lr, _ in pairs)
    return _mean_scores(pairs, outputs, shave)


def bicubic_baseline(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], scale: int) -> dict[str, float]:
    """``{"psnr", "ssim"}`` of plain bicubic upsampling by ``scale`` (the identity for ``scale=1``).

    A floor for reports: a trained model should beat it. Borders are shaved by ``scale``
    (0 for ``scale=1``, e.g. the PSNR of the noisy input for denoising).

    >>> hr = torch.full((3, 32, 32), 0.5)
    >>> bicubic_baseline([(hr[:, ::2, ::2], hr)], scale=2)["psnr"]
    inf
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if not pairs:
        raise ValueError("bicubic_baseline: no (lr, hr) pairs given")
    up = nn.Upsample(scale_factor=scale, mode="bicubic", align_corners=False) if scale > 1 else nn.Identity()
    outputs = (run_model(up, lr) for lr, _ in pairs)
    return _mean_scores(pairs, outputs, scale if scale > 1 else 0)
