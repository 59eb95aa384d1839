"""``report.md`` of ``fxprune route``: the routes, the estimator's quality, PSNR against MACs over β, the route map."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch

from ..data import to_image
from .evaluate import SweepRow, sweep
from .model import RoutedModel
from .picture import plot_curve, plot_route_map

__all__ = ["write_routing_report", "sweep_table", "mixed_beta"]


def sweep_table(rows: Sequence[SweepRow], names: Sequence[str]) -> list[str]:
    """Markdown rows: method, β, Y-PSNR, MACs/pixel, share of the largest route's MACs, windows per route."""
    largest = max((r.macs_per_pixel for r in rows if r.beta is None), default=1.0)
    lines = ["| method | β | Y-PSNR (dB) | MACs / LR px | of the largest route | windows per route |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        share = " / ".join(f"{100 * r.fractions[n]:.0f}%" for n in names)
        beta = "-" if r.beta is None else f"{r.beta:g}"
        lines.append(f"| {r.method} | {beta} | {r.psnr:.3f} | {r.macs_per_pixel:,.0f} | "
                     f"{100 * r.macs_per_pixel / largest:.0f}% | {share} |")
    return lines


def mixed_beta(rows: Sequence[SweepRow], method: str = "routed") -> float:
    """The β of ``method`` whose windows spread most evenly over the routes (the most telling route map)."""
    def entropy(r: SweepRow) -> float:
        return -sum(f * math.log(f) for f in r.fractions.values() if f > 0)

    candidates = [r for r in rows if r.method == method and r.beta is not None]
    return max(candidates, key=entropy).beta if candidates else 0.0


@torch.no_grad()
def write_routing_report(routed: RoutedModel, estimator: Any, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
                         betas: Sequence[float], out: str | Path, export: Any = None, comparison: Any = None) -> Path:
    """Evaluate ``routed`` on ``pairs`` at ``betas`` and write ``report.md`` with its two pictures into ``out``.

    ``comparison`` (:class:`fxprune.routing.compare.Comparison`) adds the whole-image comparison and its verdict.
    """
    out = Path(out)
    laplacian = getattr(estimator, "laplacian", None)
    rows = sweep(routed, pairs, betas, laplacian=laplacian)
    plot_curve(rows, out / "psnr_vs_macs.png", title=f"{len(pairs)} test image(s): Y-PSNR against MACs")
    beta = mixed_beta(rows)
    lr = pairs[0][0][None].to(routed.costs.device)
    _, route_map = routed(lr, torch.tensor(beta, device=lr.device))
    plot_route_map(to_image(pairs[0][0]), route_map[0].cpu().numpy(), routed.names, routed.patch, routed.context,
                   out / "route_map.png", title=f"route of each window at β = {beta:g}")
    largest = max(routed.window_costs)
    lines = ["# Routed model", "",
             f"One ONNX graph (`routed.onnx`) cuts the image into {routed.patch}-px windows with {routed.context} px "
             f"of context ({routed.tile}x{routed.tile} px each, scale {routed.scale}), predicts each route's error per "
             "window, and runs each window on the route maximizing β·(C₁ − Cᵢ)/C₁ + (fₙ − fᵢ)/fₙ "
             "(C: MACs of a window, f: predicted MSE, route 1 the largest, n the cheapest). β is an input: 0 favours "
             "quality, larger values cheaper routes.", "",
             "```bash", f"fxprune infer {out / 'routed.onnx'} in.png out.png --beta {beta:g}", "```", "",
             "## Routes", "", "| route | spec | MACs per window | of the largest |", "| --- | --- | ---: | ---: |"]
    for name, spec, cost in zip(routed.names, routed.specs, routed.window_costs):
        text = ", ".join(f"{k}={spec[k]}" for k in ("method", "ratio", "macs") if spec and spec.get(k) is not None)
        lines.append(f"| {name} | {text or 'fallback'} | {cost:,} | {100 * cost / largest:.1f}% |")
    lines += ["", f"Error estimator: {routed.estimator_cost:,} MACs per window "
              f"({100 * routed.estimator_cost / largest:.2f}% of the largest route), counted in every figure below.", ""]
    quality = getattr(estimator, "quality", None)
    if quality is not None:
        lines += [f"Spearman rank correlation of predicted and true log error on {quality.held_out} held-out windows "
                  f"(estimator trained on {quality.train_windows} windows; the Laplacian lookup is ARM-style and "
                  "training-free):", "", quality.table(), ""]
    lines += ["## PSNR against MACs", "",
              f"Y-PSNR on {len(pairs)} test image(s) (scale px shaved; mean over images), MACs per LR pixel over all "
              "images. `route:X` runs route X on every window (tiled like the routed model); `routed` is the CNN "
              "estimator, `laplacian` the lookup, `oracle` the true per-window errors (an upper bound).", "",
              "![PSNR against MACs](psnr_vs_macs.png)", ""]
    lines += sweep_table(rows, routed.names)
    lines += ["", "## Route map", "", "Windows of the first test image, tinted by the route they took "
              "(routes in order from red to green, the fallback blue).", "", "![route map](route_map.png)", ""]
    if comparison is not None:
        lines += ["## Against the whole-image variants", "",
                  "Each variant and the dense model on the whole image (no windows) in ONNX Runtime, the routed "
                  "graph at each β, on the same held-out images (details: `comparison.md`, `comparison.json`).", ""]
        lines += comparison.table() + ["", f"**Verdict:** {comparison.verdict()}", ""]
    if export is not None:
        lines += ["## Export", "", f"`{export.path.name}`: opset {export.opset}, dynamic batch/height/width, ONNX Runtime "
                  f"vs PyTorch max abs error {export.max_abs_error:.3g} on inputs "
                  f"{', '.join('x'.join(map(str, s)) for s in export.checked_shapes)}.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
