"""Run a (compressed) restoration model on real images: ONNX Runtime sessions, tiled runs, routed models.

:func:`open_session` opens an ONNX file in ONNX Runtime (CUDA first when available);
:func:`run_tiled` runs an ORT session or a PyTorch module on an image of any size with bounded
memory, in the windows of :mod:`fxprune.tiling` (which explains why tiling leaves no seams);
:class:`RoutedSession` runs a routed model. Image files are read and written by :mod:`fxprune.images`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .errors import InferenceError
from .tiling import tile_pair, tiles

__all__ = ["open_session", "run_tiled", "session_tile", "RoutedSession", "RouteStats", "routing_metadata"]

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
        raise InferenceError(f"no ONNX model file at '{target}'; create one with `fxprune export MODEL -o {target.name}`",
            path=str(target))
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
            "export it again with `fxprune export`)",
            path=str(target),
        ) from error


# ---------------------------------------------------------------------------- tiled runs
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
                raise InferenceError(f"ONNX Runtime failed on a tile of shape {x.shape}: {_first_line(error)}",
                    input_shape=tuple(x.shape)) from error

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
    output is cropped to its core (see :mod:`fxprune.tiling`). The result equals a whole-image run
    (up to float rounding) when the model's receptive-field radius is at most ``overlap``. ``scale`` is the output/input size ratio, inferred from the first tile when
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
    tile_pair(tile, overlap)  # checked before anything else
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1):
        raise ValueError(f"scale must be a positive int or None, got {scale!r}")
    image = _check_image(image)
    run = _runner(model)
    height, width = image.shape[:2]
    as_uint8 = image.dtype == np.uint8
    result: np.ndarray | None = None  # allocated once the first tile tells the scale and channels
    for piece in tiles(height, width, tile, overlap):
        window = _to_model(image[piece.window()])
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
        rows, cols = piece.crop(scale)
        result[piece.core(scale)] = _from_model(out[0, :, rows, cols], as_uint8)
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
ROUTED_INPUTS = ("image", "beta")  # the routed ONNX file's names (RoutedModel.onnx_names)
ROUTED_OUTPUTS = ("restored", "route_map")


def routing_metadata(session: Any) -> dict[str, Any] | None:
    """The routing metadata of an ORT session of a routed model (see ``RoutedModel.onnx_metadata``), or None."""
    import json

    text = session.get_modelmeta().custom_metadata_map.get(ROUTING_KEY)
    return json.loads(text) if text else None


def _routed_names(found: list[str], names: tuple[str, str], kind: str, path: Any) -> list[str]:
    """The file's two routed ``kind`` in the order of ``names``; files from before the names existed
    (``input``, ``input1`` / ``output``, ``output1``) are read by position."""
    if set(names) <= set(found):
        return list(names)
    if len(found) == 2 and not set(found) & set(names):
        return found
    raise InferenceError(f"'{path}' has routed-model {kind} {found}; expected {list(names)}: export it again with "
                         "`fxprune route` or fxprune.export_onnx(RoutedModel)", path=str(path))


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
                                 "build one with `fxprune route` or fxprune.routing.RoutedModel", path=str(path))
        self.meta = meta
        self.routes: list[str] = list(meta["routes"])
        self._names = _routed_names([i.name for i in inputs], ROUTED_INPUTS, "inputs", path)
        self._outputs = _routed_names([o.name for o in self.session.get_outputs()], ROUTED_OUTPUTS, "outputs", path)

    def _run(self, batch: np.ndarray, beta: float, maps: list[np.ndarray]) -> np.ndarray:
        feeds = {self._names[0]: batch, self._names[1]: np.asarray(beta, dtype=np.float32)}
        try:
            out, route_map = self.session.run(self._outputs, feeds)
        except Exception as error:  # noqa: BLE001 - ORT raises its own exception types
            raise InferenceError(f"ONNX Runtime failed on an input of shape {batch.shape}: {_first_line(error)}",
                input_shape=tuple(batch.shape)) \
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
