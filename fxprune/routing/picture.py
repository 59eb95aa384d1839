"""Pictures for routing reports: the route map over an image, and PSNR against MACs over β."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..tiling import tile_windows

__all__ = ["plot_route_map", "plot_curve", "ROUTE_COLORS"]

# routes in order (expensive first): warm to cool; the fallback (last) is always blue
ROUTE_COLORS = ["#d62728", "#ff7f0e", "#bcbd22", "#2ca02c", "#17becf", "#9467bd", "#e377c2"]


def _color(k: int, count: int) -> str:
    return "#1f77b4" if k == count - 1 and count > 1 else ROUTE_COLORS[k % len(ROUTE_COLORS)]


def plot_route_map(image: np.ndarray, route_map: np.ndarray, names: Sequence[str], patch: int, context: int,
                   path: str | Path, title: str = "") -> Path:
    """The LR ``image`` (HxWx3 uint8) beside itself tinted by the route of each window's core, with a legend."""
    from ..report import _pyplot

    plt = _pyplot()
    import matplotlib.colors as mcolors
    from matplotlib.patches import Patch

    height, width = image.shape[:2]
    tile = patch + 2 * context
    rows, cols = tile_windows(max(height, tile), tile, context), tile_windows(max(width, tile), tile, context)
    tint = np.zeros((height, width, 3))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            tint[r.core_start:r.core_stop, c.core_start:c.core_stop] = mcolors.to_rgb(
                _color(int(route_map[i, j]), len(names)))
    base = image.astype(np.float64) / 255.0
    gray = base.mean(axis=2, keepdims=True)
    overlay = 0.35 * gray + 0.65 * tint
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2 * height / max(width, 1) + 1.0))
    axes[0].imshow(base)
    axes[0].set_title("input (LR)")
    axes[1].imshow(overlay)
    for r in rows[1:]:
        axes[1].axhline(r.core_start - 0.5, color="white", linewidth=0.3)
    for c in cols[1:]:
        axes[1].axvline(c.core_start - 0.5, color="white", linewidth=0.3)
    counts = np.bincount(route_map.reshape(-1), minlength=len(names))
    legend = [Patch(color=_color(k, len(names)), label=f"{n}: {100 * counts[k] / route_map.size:.0f}% of windows")
              for k, n in enumerate(names)]
    fig.legend(handles=legend, loc="lower center", ncol=min(4, len(names)), fontsize=9, frameon=False)
    axes[1].set_title(title or "route of each window")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    target = Path(path)
    fig.savefig(target, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return target


def plot_curve(rows: Sequence, path: str | Path, x: str = "macs_per_pixel", xlabel: str = "MACs per LR pixel",
               title: str = "") -> Path:
    """Y-PSNR against ``x`` for the routed curves (one line per method over β) and single routes (points)."""
    from ..report import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    methods = sorted({r.method for r in rows if r.beta is not None})
    styles = {"routed": ("o-", "#d62728"), "laplacian": ("s--", "#1f77b4"), "oracle": ("^:", "#2ca02c")}
    for method in methods:
        points = sorted((getattr(r, x), r.psnr, r.beta) for r in rows if r.method == method and r.beta is not None)
        style, color = styles.get(method, ("d-.", "#9467bd"))
        ax.plot([p[0] for p in points], [p[1] for p in points], style, color=color, label=f"{method} (β sweep)")
    for r in rows:
        if r.beta is None:
            ax.plot(getattr(r, x), r.psnr, "k*", markersize=9)
            ax.annotate(r.method.replace("route:", ""), (getattr(r, x), r.psnr), textcoords="offset points",
                        xytext=(4, -10), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Y-PSNR (dB)")
    ax.set_title(title or "PSNR against cost (★: one route on every window)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
