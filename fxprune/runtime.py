"""Run a (compressed) restoration model on real images: ONNX Runtime sessions, tiling, PNG IO.

:func:`open_session` opens an ONNX file in ONNX Runtime (CUDA first when available);
:func:`run_tiled` runs an ORT session or a PyTorch module on an image of any size with bounded
memory; :func:`read_image` / :func:`write_image` read and write PNGs with Pillow.

How tiling avoids seams: the image is cut into *input windows* of at most ``tile`` px per side.
Each window owns a *core* region, and the cores partition the image. A core lies at least
``overlap`` px inside its window on every side that is not an image border, so as long as the
model's receptive-field radius (in input pixels) is at most ``overlap``, every output pixel of a
core sees exactly the same input pixels it would see in a whole-image run: the zero padding a
convolution applies at a window edge never reaches the core. The window's output is cropped to
the core (scaled by the model's scale factor) and written into the result, so there is no
blending and no seam — tiled output equals the whole-image output up to float rounding.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .errors import InferenceError

__all__ = ["open_session", "run_tiled", "read_image", "write_image", "tile_windows", "session_tile", "Window",
           "RoutedSession", "RouteStats", "routing_metadata"]

# ---------------------------------------------------------------------------- sessions
def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def open_session(path: str | os.PathLike, threads: int | None = None, providers: Sequence[Any] | None = None) -> Any:
    """Open the ONNX model at ``path`` in an ``onnxruntime.InferenceSession``.

    ``providers`` defaults to CUDA then CPU when the CUDA provider is available, else CPU only.
    ``threads`` sets the intra-op thread count (``None``: ONNX Runtime's default, one per core).
    A missing, empty, corrupt or non-ONNX file raises :class:`fxprune.errors.InferenceError`
    naming the path.

    >>> import os, tempfile, fxprune.runtime as rt
    >>> path = os.path.join(tempfile.mkdtemp(), "broken.onnx")
    >>> _ = open(path, "wb").write(b"not onnx")
    >>> rt.open_session(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fxprune.errors.InferenceError: cannot open the ONNX model '...broken.onnx': ...
    """
    import onnxruntime as ort

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    target = Path(path)
    if not target.is_file():
        raise InferenceError(f"no ONNX model file at '{target}'; create one with `fxprune export MODEL -o {target.name}`")
    if providers is None:
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors are raised below with the path
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(target), options, providers=list(providers))
    except Exception as error:  # noqa: BLE001 - ORT raises its own exception types
        raise InferenceError(
            f"cannot open the ONNX model '{target}': {_first_line(error)} (is the file corrupt or truncated? "
            "export it again with `fxprune export`)"
        ) from error


# ---------------------------------------------------------------------------- tiling
@dataclass(frozen=True)
class Window:
    """One tile along one axis: the input window ``[start, stop)`` and its core ``[core_start, core_stop)``."""

    start: int
    stop: int
    core_start: int
    core_stop: int


def tile_windows(length: int, tile: int, overlap: int) -> list[Window]:
    """Cut an axis of ``length`` px into windows of at most ``tile`` px whose cores partition it.

    Every core lies at least ``overlap`` px inside its window, except where the window touches the
    image border. Windows are exactly ``tile`` px whenever ``length >= tile`` (the last one is
    shifted inward), so an ONNX Runtime session sees at most a few distinct shapes.

    >>> [(w.start, w.stop, w.core_start, w.core_stop) for w in tile_windows(100, 40, 8)]
    [(0, 40, 0, 32), (24, 64, 32, 56), (48, 88, 56, 80), (60, 100, 80, 100)]
    >>> tile_windows(30, 40, 8)
    [Window(start=0, stop=30, core_start=0, core_stop=30)]
    """
    _check_tiling(tile, overlap)
    if length < 1:
        raise ValueError(f"cannot tile an axis of length {length}")
    if length <= tile:
        return [Window(0, length, 0, length)]
    step = tile - 2 * overlap
    windows = []
    core = 0
    while True:
        if core > 0 and length - core <= tile - overlap:  # the last window, flush with the border
            windows.append(Window(length - tile, length, core, length))
            return windows
        start = 0 if core == 0 else core - overlap
        core_stop = core + (tile - overlap if core == 0 else step)
        windows.append(Window(start, start + tile, core, core_stop))
        core = core_stop


def _check_tiling(tile: int, overlap: int) -> None:
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
        raise ValueError(f"tile must be a positive int, got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f"overlap must be an int >= 0, got {overlap!r}")
    if tile <= 2 * overlap:
        raise ValueError(
            f"tile ({tile}) must be larger than 2 * overlap ({2 * overlap}): each input tile holds its core "
            "plus overlap px of context on both sides"
        )


def _check_image(image: np.ndarray) -> np.ndarray:
    """Validate an HxWxC (or HxW) uint8 / float image and return it as HxWxC."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (HxWx3), got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or min(image.shape) < 1:
        raise ValueError(f"image must be HxWxC (e.g. HxWx3), got shape {image.shape}")
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"image must be uint8 or float in [0, 1], got dtype {image.dtype}")
    return image


def _to_model(window: np.ndarray) -> np.ndarray:
    """An HxWxC uint8 / float window -> a 1xCxHxW float32 [0, 1] batch."""
    data = window.astype(np.float32) / 255.0 if window.dtype == np.uint8 else window.astype(np.float32, copy=False)
    return np.ascontiguousarray(data.transpose(2, 0, 1)[None])


def _from_model(core: np.ndarray, as_uint8: bool) -> np.ndarray:
    """A CxHxW float output -> HxWxC, rounded and clipped to uint8 when the input was uint8."""
    core = core.transpose(1, 2, 0)
    return np.clip(np.rint(core * 255.0), 0, 255).astype(np.uint8) if as_uint8 else core.astype(np.float32, copy=False)


def _is_session(model: Any) -> bool:
    return hasattr(model, "get_inputs") and hasattr(model, "run") and not isinstance(model, torch.nn.Module)


def _runner(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function NCHW float32 numpy -> NCHW numpy for an ORT session or a torch callable."""
    if _is_session(model):
        name = model.get_inputs()[0].name

        def run_session(x: np.ndarray) -> np.ndarray:
            try:
                return np.asarray(model.run(None, {name: x})[0])
            except Exception as error:  # noqa: BLE001 - ORT raises its own exception types
                raise InferenceError(f"ONNX Runtime failed on a tile of shape {x.shape}: {_first_line(error)}") from error

        return run_session
    if not callable(model):
        raise TypeError(f"model must be an onnxruntime.InferenceSession or a callable on NCHW tensors, "
                        f"got {type(model).__name__}")
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32

    def run_torch(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.from_numpy(x).to(device=device, dtype=dtype))
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the model must return a tensor, got {type(out).__name__}")
        return out.detach().float().cpu().numpy()

    return run_torch


def _tile_pair(tile: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(tile, (tuple, list)):
        if len(tile) != 2:
            raise ValueError(f"tile must be an int or a (height, width) pair, got {tile!r}")
        return int(tile[0]), int(tile[1])
    return tile, tile  # type: ignore[return-value]


def run_tiled(
    model: Any,
    image: np.ndarray,
    scale: int | None = None,
    tile: int | tuple[int, int] = 128,
    overlap: int = 16,
) -> np.ndarray:
    """Run ``model`` on ``image`` tile by tile and return the stitched output image.

    ``model`` is an ``onnxruntime.InferenceSession`` (its first input is fed) or a callable on
    NCHW float tensors such as a torch module (run under ``torch.no_grad``). ``image`` is HxWxC,
    uint8 or float in [0, 1]. Input tiles are at most ``tile`` px per side (an int, or a
    ``(height, width)`` pair), including ``overlap`` px of context on each inner side; each tile's
    output is cropped to its core, see the module docstring and :func:`tile_windows`. The result
    equals a whole-image run (up to float rounding) when the model's receptive-field radius is at
    most ``overlap``. ``scale`` is the output/input size ratio, inferred from the first tile when
    ``None``. Memory beyond the input and output images is bounded by one tile (each window is
    converted to float on its own; the output is written core by core in its final dtype).

    Returns HxW·scale x C' (C' the model's output channels): uint8 (rounded, clipped) for a uint8
    image, else float32 as the model computed it (not clipped).

    >>> import numpy as np, torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    >>> image = np.random.default_rng(0).random((37, 50, 3), dtype=np.float32)
    >>> out = run_tiled(net, image, tile=16, overlap=2)
    >>> out.shape
    (74, 100, 3)
    >>> whole = net(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).detach().numpy()
    >>> bool(np.abs(out - whole).max() < 1e-5)
    True
    """
    tile_h, tile_w = _tile_pair(tile)
    _check_tiling(tile_h, overlap)
    _check_tiling(tile_w, overlap)
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1):
        raise ValueError(f"scale must be a positive int or None, got {scale!r}")
    image = _check_image(image)
    run = _runner(model)
    height, width = image.shape[:2]
    as_uint8 = image.dtype == np.uint8
    rows, cols = tile_windows(height, tile_h, overlap), tile_windows(width, tile_w, overlap)
    result: np.ndarray | None = None  # allocated once the first tile tells the scale and channels
    for row in rows:
        for col in cols:
            window = _to_model(image[row.start:row.stop, col.start:col.stop])
            out = run(window)
            if out.ndim != 4 or out.shape[0] != 1:
                raise ValueError(f"the model must return a 1xCxHxW output for a 1xCxHxW tile, got shape {out.shape}")
            in_h, in_w = window.shape[2:]
            if result is None:
                scale = _infer_scale(out.shape[2:], (in_h, in_w), scale)
                result = np.empty((height * scale, width * scale, out.shape[1]), np.uint8 if as_uint8 else np.float32)
            assert scale is not None
            if out.shape[1] != result.shape[2] or tuple(out.shape[2:]) != (in_h * scale, in_w * scale):
                raise ValueError(
                    f"the model returned shape {tuple(out.shape)} for a tile of {in_h}x{in_w}; expected "
                    f"(1, {result.shape[2]}, {in_h * scale}, {in_w * scale}) (scale {scale})"
                )
            top, left = (row.core_start - row.start) * scale, (col.core_start - col.start) * scale
            core_h, core_w = (row.core_stop - row.core_start) * scale, (col.core_stop - col.core_start) * scale
            result[row.core_start * scale:row.core_stop * scale, col.core_start * scale:col.core_stop * scale] = \
                _from_model(out[0, :, top:top + core_h, left:left + core_w], as_uint8)
    assert result is not None
    return result


def _infer_scale(out_hw: Sequence[int], in_hw: tuple[int, int], scale: int | None) -> int:
    (out_h, out_w), (in_h, in_w) = out_hw, in_hw
    if scale is not None:
        if (out_h, out_w) != (in_h * scale, in_w * scale):
            raise ValueError(f"scale={scale} but the model maps a {in_h}x{in_w} tile to {out_h}x{out_w}")
        return int(scale)
    if out_h % in_h or out_w % in_w or out_h // in_h != out_w // in_w or out_h < in_h:
        raise ValueError(
            f"the model maps a {in_h}x{in_w} tile to {out_h}x{out_w}, which is not an integer upscaling; "
            "run_tiled supports models whose output is the input size times an integer scale"
        )
    return out_h // in_h


def session_tile(session: Any, tile: int) -> int | tuple[int, int]:
    """The tile size to use with ``session``: ``tile``, or the model's fixed (H, W) if its input is static.

    >>> session_tile(object(), 64)
    64
    """
    if not _is_session(session):
        return tile
    shape = list(session.get_inputs()[0].shape)
    if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
        return int(shape[2]), int(shape[3])
    return tile


# ---------------------------------------------------------------------------- routed models
@dataclass
class RouteStats:
    """What a :class:`RoutedSession` run did: windows per route, MACs, and the route map(s).

    ``fractions`` maps each route name to its share of the windows; ``macs`` counts every window's
    route plus the estimator on every window (overlapping outer tiles included, so it is what was
    computed); ``macs_per_pixel`` divides by the input (LR) pixels; ``route_maps`` holds one
    ``[rows, cols]`` array per outer tile (one for a whole-image run).
    """

    routes: list[str]
    counts: list[int]
    macs: int
    macs_per_pixel: float
    route_maps: list[np.ndarray]

    @property
    def fractions(self) -> dict[str, float]:
        total = max(1, sum(self.counts))
        return {name: count / total for name, count in zip(self.routes, self.counts)}

    @property
    def route_map(self) -> np.ndarray:
        """The route map of a whole-image run (``[rows, cols]``, route indices in ``routes`` order)."""
        if len(self.route_maps) != 1:
            raise ValueError(f"this run used {len(self.route_maps)} outer tiles; see route_maps")
        return self.route_maps[0]

    def summary(self) -> str:
        """One line: the route fractions and MACs per pixel."""
        parts = ", ".join(f"{name} {100 * f:.1f}%" for name, f in self.fractions.items())
        return f"routes: {parts}; {self.macs_per_pixel:,.0f} MACs/pixel (estimator included)"


ROUTING_KEY = "fxprune.routing"


def routing_metadata(session: Any) -> dict[str, Any] | None:
    """The routing metadata of an ORT session of a routed model (see ``RoutedModel.onnx_metadata``), or None."""
    import json

    text = session.get_modelmeta().custom_metadata_map.get(ROUTING_KEY)
    return json.loads(text) if text else None


class RoutedSession:
    """An ONNX Runtime session of a routed model (exported from :class:`fxprune.routing.RoutedModel`).

    ``run(image, beta)`` restores an HxWxC image (uint8, or float in [0, 1]) with trade-off β
    (0: smallest predicted error; larger: cheaper routes) and returns ``(output, RouteStats)``.
    With ``tile`` the image is cut into outer tiles of at most ``tile`` px (``overlap`` px of
    context, as :func:`run_tiled`) so memory stays bounded; each tile is routed on its own.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers: Sequence[Any] | None = None):
        self.session = open_session(path, threads=threads, providers=providers)
        meta = routing_metadata(self.session)
        inputs = self.session.get_inputs()
        if meta is None or len(inputs) != 2:
            raise InferenceError(f"'{path}' is not a routed model (no '{ROUTING_KEY}' metadata and β input); "
                                 "build one with `fxprune route` or fxprune.routing.RoutedModel")
        self.meta = meta
        self.routes: list[str] = list(meta["routes"])
        self._names = [i.name for i in inputs]

    def _run(self, batch: np.ndarray, beta: float, maps: list[np.ndarray]) -> np.ndarray:
        feeds = {self._names[0]: batch, self._names[1]: np.asarray(beta, dtype=np.float32)}
        try:
            out, route_map = self.session.run(None, feeds)
        except Exception as error:  # noqa: BLE001 - ORT raises its own exception types
            raise InferenceError(f"ONNX Runtime failed on an input of shape {batch.shape}: {_first_line(error)}") \
                from error
        maps.extend(np.asarray(route_map))
        return np.asarray(out)

    def run(self, image: np.ndarray, beta: float = 0.0, tile: int | None = None,
            overlap: int = 16) -> tuple[np.ndarray, RouteStats]:
        """Restore ``image`` (HxWxC) routed with ``beta``; returns the output image and :class:`RouteStats`."""
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)) or not np.isfinite(beta):
            raise ValueError(f"beta must be a finite number, got {beta!r}")
        image = _check_image(image)
        maps: list[np.ndarray] = []
        if tile is None:
            out = self._run(_to_model(image), float(beta), maps)[0]
            result = _from_model(out, image.dtype == np.uint8)
        else:
            def run(x: torch.Tensor) -> torch.Tensor:
                return torch.from_numpy(self._run(x.numpy(), float(beta), maps))

            result = run_tiled(run, image, scale=int(self.meta["scale"]), tile=tile, overlap=overlap)
        costs, estimator = self.meta["window_macs"], int(self.meta["estimator_macs"])
        counts = np.bincount(np.concatenate([m.reshape(-1) for m in maps]), minlength=len(costs))[: len(costs)]
        macs = int(sum(int(c) * int(n) for c, n in zip(costs, counts)) + estimator * int(counts.sum()))
        pixels = image.shape[0] * image.shape[1]
        return result, RouteStats(self.routes, [int(c) for c in counts], macs, macs / pixels, maps)


# ---------------------------------------------------------------------------- image IO
def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (PNG, or any format Pillow reads) as an HxWx3 uint8 RGB array.

    Grayscale and palette images are converted to RGB, alpha is dropped. A missing file raises
    ``FileNotFoundError``; an unreadable one ``ValueError``; both name the path.

    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> write_image(path, np.full((4, 5, 3), 200, np.uint8))
    >>> read_image(path).shape, int(read_image(path)[0, 0, 0])
    ((4, 5, 3), 200)
    """
    from PIL import Image, UnidentifiedImageError

    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no image file at '{target}'")
    try:
        with Image.open(target) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"cannot read the image '{target}': {_first_line(error)}") from error


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (HxWx3 or HxW; uint8, or float in [0, 1], clipped and rounded) as an image.

    The format follows the file extension (PNG for ``.png``); the directory is created if needed.

    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "sub", "y.png")
    >>> write_image(path, np.linspace(0, 1, 12, dtype=np.float32).reshape(2, 2, 3))
    >>> read_image(path)[1, 1].tolist()
    [209, 232, 255]
    """
    from PIL import Image

    if not isinstance(array, np.ndarray):
        raise TypeError(f"array must be a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"array must be uint8 or float in [0, 1], got dtype {array.dtype}")
        array = np.clip(np.rint(np.nan_to_num(array.astype(np.float64)) * 255.0), 0, 255).astype(np.uint8)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(np.ascontiguousarray(array)).save(target)
    except (ValueError, KeyError) as error:  # unknown extension
        raise ValueError(f"cannot write the image '{target}': {_first_line(error)} (use a .png file name)") from error

