"""Does routing pay? The routed model against each of its variants and the dense model run on the whole image.

The papers' baseline (ClassSR, ARM, SLS) is the single network on the whole image, not on the
routed model's overlapping windows. :func:`compare_routing` runs every model in ONNX Runtime on
held-out images: the dense model and each route on the whole image (no windows), the routed
graph at each β. Per model: Y-PSNR pooled over all images (one MSE over all their pixels) with
the per-image PSNR beside it, MACs (:func:`fxprune.count_macs` on each image; the routed model's
from its route maps) and measured latency, both summed over the images. The verdict
(:meth:`Comparison.verdict`) says whether some β comes within ``tolerance_db`` of the best
single variant at a lower latency, and otherwise recommends that variant.
"""
from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .evaluate import pooled_psnr
from .model import RoutedModel, routed_macs

__all__ = ["ComparisonRow", "Comparison", "compare_routing"]

TOLERANCE_DB = 0.05


@dataclass
class ComparisonRow:
    """One model on all the images: ``kind`` is ``dense``, ``variant`` (whole image) or ``routed`` (at ``beta``)."""

    name: str
    kind: str
    beta: float | None
    psnr: float
    per_image: list[float]
    macs: int
    latency_ms: float
    windows: dict[str, float] = field(default_factory=dict)


@dataclass
class Comparison:
    """The rows of :func:`compare_routing`, the images they were measured on, and the verdict's tolerance."""

    rows: list[ComparisonRow]
    images: list[str]
    threads: int | None
    tolerance_db: float = TOLERANCE_DB

    def best_variant(self) -> ComparisonRow:
        """The whole-image variant with the highest pooled PSNR (the fallback included; the dense model not)."""
        return max((r for r in self.rows if r.kind == "variant"), key=lambda r: r.psnr)

    def winners(self) -> list[ComparisonRow]:
        """Routed rows within ``tolerance_db`` of the best variant's PSNR at a lower latency, fastest first."""
        best = self.best_variant()
        found = [r for r in self.rows if r.kind == "routed" and r.psnr >= best.psnr - self.tolerance_db
                 and r.latency_ms < best.latency_ms]
        return sorted(found, key=lambda r: r.latency_ms)

    def verdict(self) -> str:
        """One sentence: the β to use, or that no β beats the best single variant and which one to use instead."""
        best, winners = self.best_variant(), self.winners()
        if winners:
            w = winners[0]
            return (f"routing pays: β = {w.beta:g} is within {self.tolerance_db:g} dB of {best.name} on the whole image "
                    f"({w.psnr - best.psnr:+.3f} dB) at {100 * w.latency_ms / best.latency_ms:.0f}% of its latency and "
                    f"{100 * w.macs / best.macs:.0f}% of its MACs; use --beta {w.beta:g}")
        return (f"no β comes within {self.tolerance_db:g} dB of {best.name} on the whole image ({best.psnr:.3f} dB, "
                f"{best.latency_ms:.1f} ms) at a lower latency: routing does not pay on these images; recommended: "
                f"{best.name} run on the whole image")

    def recommended(self) -> dict[str, Any]:
        """The verdict as data: ``{"model": name, "beta": β or None}``."""
        winners = self.winners()
        if winners:
            return {"model": "routed", "beta": winners[0].beta}
        return {"model": self.best_variant().name, "beta": None}

    def table(self) -> list[str]:
        """Markdown rows: model, β, pooled and per-image Y-PSNR, MACs and latency (sums, and share of the dense model's)."""
        dense = next((r for r in self.rows if r.kind == "dense"), self.rows[0])
        lines = ["| model | β | Y-PSNR pooled (dB) | per image (dB) | MACs | of dense | ORT latency (ms) | of dense |",
                 "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
        for r in self.rows:
            beta = "-" if r.beta is None else f"{r.beta:g}"
            per = " / ".join(f"{p:.2f}" for p in r.per_image)
            lines.append(f"| {r.name} | {beta} | {r.psnr:.3f} | {per} | {r.macs:,} | {100 * r.macs / dense.macs:.0f}% | "
                         f"{r.latency_ms:.1f} | {100 * r.latency_ms / dense.latency_ms:.0f}% |")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.images, "threads": self.threads, "tolerance_db": self.tolerance_db,
                "rows": [asdict(r) for r in self.rows], "best_variant": self.best_variant().name,
                "recommended": self.recommended(), "verdict": self.verdict()}

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """Write ``comparison.json`` and ``comparison.md`` into ``folder``; returns both paths."""
        folder = Path(folder)
        data = self.as_dict()
        json_path, md_path = folder / "comparison.json", folder / "comparison.md"
        json_path.write_text(json.dumps(data, indent=2, default=_finite))
        md_path.write_text("\n".join([
            "# Routed model against whole-image variants", "",
            f"{len(self.images)} held-out image(s): {', '.join(self.images)}. Every model runs in ONNX Runtime "
            f"({self.threads or 'default'} threads); variants and the dense model on the whole image, the routed "
            "model at each β. Y-PSNR pooled over all pixels (per image beside it); MACs and latency summed over "
            "the images.", "", *self.table(), "", f"**Verdict:** {self.verdict()}", ""]))
        return json_path, md_path


def _finite(value: Any) -> Any:
    return str(value)


def _export(model: nn.Module, path: Path, inputs: tuple[torch.Tensor, ...]) -> Path:
    from ..onnx import export_onnx

    with warnings.catch_warnings():  # fallback-exporter notes: the file is timed, not the model's product
        warnings.simplefilter("ignore")
        return export_onnx(model, path, inputs, opset=18, check=False).path


def _y_psnr(output: np.ndarray, hr: torch.Tensor, shave: int) -> tuple[float, int]:
    from ..metrics import psnr

    out = torch.from_numpy(np.asarray(output, dtype=np.float32)).clamp(0, 1)
    value = psnr(out, hr[None].to(out.device), shave=shave)
    return value, (hr.shape[-2] - 2 * shave) * (hr.shape[-1] - 2 * shave)


@torch.no_grad()
def compare_routing(routed: RoutedModel, dense: nn.Module, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
                    betas: Sequence[float], routed_onnx: str | Path, *, names: Sequence[str] | None = None,
                    threads: int | None = None, tolerance_db: float = TOLERANCE_DB) -> Comparison:
    """Measure the dense model, each route on the whole image and ``routed_onnx`` at each β on ``pairs``.

    ``pairs`` are held-out (LR ``[C, h, w]``, HR ``[C, H, W]``) images in [0, 1], not the images
    the estimator was trained on; ``routed_onnx`` is ``routed`` exported (its inputs ``image``,
    ``beta``). The dense model and the routes are exported here to a temporary folder. PSNR is
    on the Y channel with ``scale`` px shaved (none for scale 1), of outputs clamped to [0, 1];
    latency is ONNX Runtime's fastest of repeated runs (:func:`fxprune.latency.table.time_session`)
    per image, summed.
    """
    from ..counting import count_macs
    from ..latency.table import time_session
    from ..runtime import ROUTED_INPUTS, ROUTED_OUTPUTS, open_session

    if not pairs:
        raise ValueError("compare_routing needs at least one (LR, HR) image pair")
    shave = routed.scale if routed.scale > 1 else 0
    images = list(names) if names is not None else [f"image {i}" for i in range(len(pairs))]
    lrs = [lr[None].float().cpu() for lr, _ in pairs]
    models = [("dense", "dense", dense)] + [(f"whole:{n}", "variant", m) for n, m in zip(routed.names, routed.routes)]
    rows: list[ComparisonRow] = []
    with tempfile.TemporaryDirectory() as folder:
        for k, (name, kind, module) in enumerate(models):
            device = next((p.device for p in module.parameters()), torch.device("cpu"))
            session = open_session(_export(module, Path(folder) / f"m{k}.onnx", (lrs[0].to(device),)), threads=threads)
            feed_name = session.get_inputs()[0].name
            per, pixels, macs, latency = [], [], 0, 0.0
            for lr, (_, hr) in zip(lrs, pairs):
                feed = {feed_name: lr.numpy()}
                value, count = _y_psnr(session.run(None, feed)[0], hr, shave)
                per.append(value)
                pixels.append(count)
                macs += int(count_macs(module, (lr.to(device),)))
                latency += time_session(session, feed)
            rows.append(ComparisonRow(name, kind, None, pooled_psnr(per, pixels), per, macs, latency))
    session = open_session(routed_onnx, threads=threads)
    for beta in betas:
        per, pixels, macs, latency, counts = [], [], 0, 0.0, np.zeros(len(routed.names), dtype=np.int64)
        for lr, (_, hr) in zip(lrs, pairs):
            feed = {ROUTED_INPUTS[0]: lr.numpy(), ROUTED_INPUTS[1]: np.asarray(beta, dtype=np.float32)}
            out, route_map = session.run(list(ROUTED_OUTPUTS), feed)
            value, count = _y_psnr(out, hr, shave)
            per.append(value)
            pixels.append(count)
            macs += routed_macs(routed.window_costs, routed.estimator_cost, torch.from_numpy(route_map))
            counts += np.bincount(route_map.reshape(-1), minlength=len(routed.names))[: len(routed.names)]
            latency += time_session(session, feed)
        share = {n: float(c) / max(1, int(counts.sum())) for n, c in zip(routed.names, counts)}
        rows.append(ComparisonRow("routed", "routed", float(beta), pooled_psnr(per, pixels), per, macs, latency, share))
    return Comparison(rows, images, threads, tolerance_db)
