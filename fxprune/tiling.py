"""Tiling geometry: how an image is cut into overlapping windows whose cores partition it.

Every tiled run in fxprune uses these windows: :func:`fxprune.runtime.run_tiled` (ONNX Runtime
sessions and torch callables on numpy images), :func:`fxprune.metrics.run_model` (torch tensors)
and the routed model (:mod:`fxprune.routing`, through :func:`axis_geometry`, the same windows as
index tensors).

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

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["AxisGeometry", "Tile", "Window", "axis_geometry", "check_tiling", "tile_pair", "tile_windows", "tiles"]


@dataclass(frozen=True)
class Window:
    """One tile along one axis: the input window ``[start, stop)`` and its core ``[core_start, core_stop)``."""

    start: int
    stop: int
    core_start: int
    core_stop: int


def check_tiling(tile: int, overlap: int) -> None:
    """Raise ``ValueError`` unless ``tile`` is a positive int larger than ``2 * overlap`` (an int >= 0).

    >>> check_tiling(32, 16)
    Traceback (most recent call last):
    ...
    ValueError: tile (32) must be larger than 2 * overlap (32): each input tile holds its core plus overlap px of context on both sides
    """
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
        raise ValueError(f"tile must be a positive int, got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f"overlap must be an int >= 0, got {overlap!r}")
    if tile <= 2 * overlap:
        raise ValueError(
            f"tile ({tile}) must be larger than 2 * overlap ({2 * overlap}): each input tile holds its core "
            "plus overlap px of context on both sides"
        )


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
    check_tiling(tile, overlap)
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


@dataclass(frozen=True)
class Tile:
    """One window of an image: its ``row`` and ``col`` windows, and the slices a tiled run needs."""

    row: Window
    col: Window

    def window(self) -> tuple[slice, slice]:
        """Rows and columns of the input window."""
        return slice(self.row.start, self.row.stop), slice(self.col.start, self.col.stop)

    def core(self, scale: int = 1) -> tuple[slice, slice]:
        """Rows and columns of the core in the output image (a ``scale`` times larger image)."""
        return (slice(self.row.core_start * scale, self.row.core_stop * scale),
                slice(self.col.core_start * scale, self.col.core_stop * scale))

    def crop(self, scale: int = 1) -> tuple[slice, slice]:
        """Rows and columns of the core within the window's output (``scale`` times the window).

        >>> t = tiles(100, 30, 40, 8)[1]  # rows: window 24..64, core 32..56
        >>> t.window()[0], t.core(2)[0], t.crop(2)[0]
        (slice(24, 64, None), slice(64, 112, None), slice(16, 64, None))
        """
        top, left = (self.row.core_start - self.row.start) * scale, (self.col.core_start - self.col.start) * scale
        return (slice(top, top + (self.row.core_stop - self.row.core_start) * scale),
                slice(left, left + (self.col.core_stop - self.col.core_start) * scale))


def tile_pair(tile: int | tuple[int, int], overlap: int) -> tuple[int, int]:
    """``(height, width)`` of a tile given as an int or a pair, each checked with :func:`check_tiling`.

    >>> tile_pair(48, 16), tile_pair((40, 64), 16)
    ((48, 48), (40, 64))
    """
    if isinstance(tile, (tuple, list)):
        if len(tile) != 2:
            raise ValueError(f"tile must be an int or a (height, width) pair, got {tile!r}")
        tile = int(tile[0]), int(tile[1])
    else:
        tile = tile, tile
    check_tiling(tile[0], overlap)
    check_tiling(tile[1], overlap)
    return tile


def tiles(height: int, width: int, tile: int | tuple[int, int], overlap: int) -> list[Tile]:
    """The windows of a ``height x width`` image in row-major order (see :func:`tile_windows`).

    >>> len(tiles(100, 30, 40, 8)), len(tiles(100, 100, (40, 100), 8))
    (4, 4)
    """
    tile_h, tile_w = tile_pair(tile, overlap)
    cols = tile_windows(width, tile_w, overlap)
    return [Tile(row, col) for row in tile_windows(height, tile_h, overlap) for col in cols]


# ---------------------------------------------------------------------------- the same windows as tensors
class AxisGeometry(NamedTuple):
    """Index vectors of one axis: ``gather`` (windows x tile input positions, flattened) and
    ``stitch`` (for each output position, its index in the concatenated window outputs)."""

    count: int
    gather: torch.Tensor
    stitch: torch.Tensor


def axis_geometry(length: int, patch: int, context: int, scale: int, device: torch.device) -> AxisGeometry:
    """The windows of :func:`tile_windows` (``tile = patch + 2·context``, ``overlap = context``) as
    index tensors, so one exported graph serves every image size: ``length`` may be a symbolic size
    under ``torch.export``.

    Window ``k`` starts at ``min(k·patch, L - tile)``, its core at ``k·patch + context`` (``0`` for
    the first window). An axis shorter than one window is extended to ``tile`` px by repeating its
    last position (the extension is cropped from the output).

    >>> g = axis_geometry(10, 4, 1, 2, torch.device("cpu"))
    >>> g.count, g.gather.view(g.count, -1).tolist()
    (2, [[0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9]])
    """
    tile = patch + 2 * context
    padded = torch.sym_max(length, tile)
    count = (padded - tile + patch - 1) // patch + 1
    starts = torch.clamp(torch.arange(count, device=device) * patch, max=padded - tile)
    offsets = torch.arange(tile, device=device)
    gather = torch.clamp(starts[:, None] + offsets[None, :], max=length - 1).reshape(-1)
    out = torch.arange(length * scale, device=device)
    window = torch.clamp(torch.div(torch.div(out, scale, rounding_mode="floor") - context, patch,
                                   rounding_mode="floor"), min=0, max=count - 1)
    stitch = window * (tile * scale) + out - starts.index_select(0, window) * scale
    return AxisGeometry(count, gather, stitch)
