"""Dynamic patch routing: one routed ONNX graph (L1 variants of a dense EDSR x2 + bicubic) against each
variant alone, over β, in Y-PSNR, MACs and ONNX Runtime latency.

The dense model is the ASSL ablation's EDSR 8x64 x2 (light upsampler): the shipped trained weights
(``fxprune.weights.pretrained``, through ``bench_assl.dense_model``; --quick: a tiny untrained one). Variants:
``fxprune.compress(dense, Spec(method, ratio=r, round_to=16))`` for r = 0.25 / 0.5 / 0.75, each
fine-tuned; the fallback is bicubic as a grouped conv. The error estimator is trained on windows of
the training images; the Laplacian lookup (ARM) and the oracle (true per-window error) route the
same windows for comparison. Evaluation images: the demo test split plus two larger held-out photos
scikit-image ships (retina 1411x1411, motorcycle_left 500x741), reported per image and overall.

For each β: Y-PSNR (shave 2), MACs per LR pixel from the route maps (each window's route plus the
estimator on every window; checked against ``fxprune.count_macs`` of the routed model), the
fraction of windows per route, and the median ONNX Runtime latency (2 threads) of the one routed
graph. Beside it: each route (and the dense model) on the whole image and tiled like the routed
model (a routed graph with that single route).

    python benchmarks/bench_routing.py            # full run (~25-40 min on 2 idle cores), writes RESULTS.md
    python benchmarks/bench_routing.py --quick    # smoke test (~2-4 min), tiny model and crops, prints only
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

import fxprune
from fxprune.data import demo_images, make_pairs
from fxprune.metrics import psnr
from fxprune.routing import RoutedModel, Variant, build_variants, routed_macs
from fxprune.routing.evaluate import sweep
from fxprune.routing.training import train_estimator
from fxprune.train import TrainConfig

from bench_assl import dense_model
from bench_common import ort_session
from results_file import replace_section

HEADING = "## Dynamic patch routing (bench_routing.py)"
HERE = Path(__file__).resolve().parent
THREADS = 2
SCALE = 2
BETAS = [0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]
# the dense model: the ASSL ablation's (bench_assl.FULL: the shipped trained weights)
DENSE = dict(blocks=8, channels=64, batch=8, patch=32, pretrained=True)
FULL = dict(DENSE, ratios=(0.25, 0.5, 0.75), finetune_steps=300, finetune_lr=2e-4, patch_route=48, context=4,
            est_steps=1500, est_windows=2048, held_out=512, rounds=5, crop=None, round_to=16)
QUICK = dict(blocks=1, channels=16, batch=2, patch=16, pretrained=False, ratios=(0.25, 0.5, 0.75),
             finetune_steps=2, finetune_lr=2e-4, patch_route=16, context=4, est_steps=20, est_windows=64,
             held_out=32, rounds=1, crop=96, round_to=4)
EXTRA_IMAGES = ("retina.jpg", "motorcycle_left.png")


def log(start: float, text: str) -> None:
    print(f"[{(time.perf_counter() - start) / 60:5.1f} min] {text}", flush=True)


def eval_images(crop: int | None) -> list[tuple[str, np.ndarray]]:
    """The demo test images and two larger photos shipped with scikit-image (never in the training split)."""
    import os

    import skimage
    from PIL import Image

    from fxprune.data import DEMO_SPLITS
    images = list(zip(DEMO_SPLITS["test"], demo_images("test")))
    folder = Path(os.path.dirname(skimage.__file__)) / "data"
    for name in EXTRA_IMAGES:
        with Image.open(folder / name) as im:
            images.append((name.split(".")[0], np.asarray(im.convert("RGB"))))
    return [(n, im[:crop, :crop] if crop else im) for n, im in images]


class OneRoute(nn.Module):
    """The estimator of a single-route routed model: nothing to predict, no MACs."""

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return windows.new_zeros(windows.shape[0], 1)


def median_ms(sess: ort.InferenceSession, feed: dict, rounds: int) -> float:
    sess.run(None, feed)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def export(model: nn.Module, path: Path, inputs: tuple) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fxprune.export_onnx(model, path, inputs, opset=18).path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, few steps, 96-px crops; prints only")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="markdown file for the section")
    parser.add_argument("--method", choices=("l1", "assl"), default="l1", help="how the variants are compressed")
    parser.add_argument("--rounds", type=int, help="latency rounds per measurement (median)")
    args = parser.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    torch.set_num_threads(1)   # training and sweeps on one thread (shared cores); ORT timing uses 2
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="bench_routing_"))

    dense = dense_model(cfg)
    dense_note = ("the shipped trained weights (`fxprune.weights.pretrained`, bench_assl.py's dense model)"
                  if cfg["pretrained"] else "untrained (--quick)")
    x = torch.rand(1, 3, 24, 24)
    tune = TrainConfig(task="sr", scale=SCALE, patch_size=cfg["patch"], batch_size=cfg["batch"],
                       lr=cfg["finetune_lr"], steps=cfg["finetune_steps"], device="cpu", seed=0, progress=False)
    specs = {f"{args.method}-{r}": fxprune.Spec(method=args.method, ratio=r, round_to=cfg["round_to"], steps=cfg["finetune_steps"]
                                                if args.method == "assl" else None) for r in cfg["ratios"]}
    variants = build_variants(dense, specs, (x,), train=tune, fallback="bicubic")
    log(start, f"variants built: {[v.name for v in variants]}")
    est_config = TrainConfig(task="sr", scale=SCALE, steps=cfg["est_steps"], batch_size=32, lr=1e-3, device="cpu",
                             seed=0, progress=False)
    estimator = train_estimator(variants, est_config, patch=cfg["patch_route"], context=cfg["context"],
                                windows=cfg["est_windows"], held_out=cfg["held_out"])
    log(start, "estimator trained:\n" + estimator.quality.table())
    routed = RoutedModel(variants, estimator, patch=cfg["patch_route"], context=cfg["context"]).eval()
    dense_variant = Variant("dense", fxprune.trace(dense, (x,)))
    singles = {v.name: RoutedModel([v], OneRoute(), cfg["patch_route"], cfg["context"]).eval()
               for v in [dense_variant] + variants}

    images = eval_images(cfg["crop"])
    pairs = make_pairs([im for _, im in images], "sr", scale=SCALE)
    tile = routed.tile
    example = (torch.rand(1, 3, 2 * tile + 3, 2 * tile + 5), torch.tensor(0.5))
    routed_path = export(routed, folder / "routed.onnx", example)
    single_paths = {n: export(m, folder / f"tiled_{n}.onnx", example) for n, m in singles.items()}
    whole_paths = {v.name: export(v.module, folder / f"whole_{v.name}.onnx", (torch.rand(1, 3, 32, 32),))
                   for v in [dense_variant] + variants}
    log(start, "exported the routed graph, the single-route graphs and the whole-image models")

    # count_macs of the routed graph against the route-map arithmetic, on the first image
    lr0 = pairs[0][0][None]
    _, map0 = routed(lr0, torch.tensor(0.5))
    counted = fxprune.count_macs(routed, (lr0, torch.tensor(0.5)))
    from_map = routed_macs(routed.window_costs, routed.estimator_cost, map0)
    macs_check = (counted - from_map) / from_map

    per_image: dict[str, list] = {}
    latency: dict[tuple[str, str, float | None], float] = {}
    whole: dict[tuple[str, str], tuple[float, float]] = {}
    routed_sess = ort_session(routed_path, THREADS)
    single_sess = {n: ort_session(p, THREADS) for n, p in single_paths.items()}
    whole_sess = {n: ort_session(p, THREADS) for n, p in whole_paths.items()}
    for (name, _), (lr, hr) in zip(images, pairs):
        rows = sweep(routed, [(lr, hr)], BETAS, laplacian=estimator.laplacian)
        dense_rows = sweep(singles["dense"], [(lr, hr)], [])
        per_image[name] = rows + dense_rows
        feed = lr[None].numpy()
        for beta in BETAS:
            latency[(name, "routed", beta)] = median_ms(routed_sess, {"input": feed, "input1": np.array(beta, np.float32)},
                                                        cfg["rounds"])
        for n, s in single_sess.items():
            latency[(name, f"route:{n}", None)] = median_ms(s, {"input": feed, "input1": np.array(0, np.float32)},
                                                            cfg["rounds"])
        pixels = lr.shape[1] * lr.shape[2]
        for v in [dense_variant] + variants:
            with torch.no_grad():
                out = v.module(lr[None]).clamp(0, 1)
            macs = fxprune.count_macs(v.module, (torch.zeros(1, 3, 64, 64),)) / (64 * 64)
            whole[(name, v.name)] = (psnr(out, hr[None], shave=SCALE), macs)
            latency[(name, f"whole:{v.name}", None)] = median_ms(whole_sess[v.name], {"input": feed}, cfg["rounds"])
        log(start, f"{name}: {lr.shape[1]}x{lr.shape[2]} LR done")

    section = report(cfg, args, routed, estimator, images, pairs, per_image, latency, whole, dense_note, macs_check,
                     start, folder)
    print(f"{HEADING}\n\n{section}")
    if not args.quick:
        replace_section(args.out, HEADING, section)
        print(f"wrote {args.out}")


def aggregate(per_image: dict, pairs: list, latency: dict, method: str, beta: float | None) -> dict:
    """Mean PSNR over images, MACs per LR pixel over all pixels, summed latency."""
    psnrs, macs, pixels, ms = [], 0.0, 0, 0.0
    for (name, rows), (lr, _) in zip(per_image.items(), pairs):
        row = next(r for r in rows if r.method == method and r.beta == beta)
        n = lr.shape[1] * lr.shape[2]
        psnrs.append(row.psnr)
        macs += row.macs_per_pixel * n
        pixels += n
        key = (name, "routed" if method == "routed" else method, beta)
        ms += latency.get(key, float("nan"))
    return {"psnr": sum(psnrs) / len(psnrs), "macs": macs / pixels, "ms": ms, "per_image": psnrs}


def report(cfg, args, routed, estimator, images, pairs, per_image, latency, whole, dense_note, macs_check, start,
           folder) -> str:
    names = routed.names
    largest = names[0]
    lines = [f"Run {datetime.date.today().isoformat()}{' (--quick)' if args.quick else ''}, "
             f"{(time.perf_counter() - start) / 60:.1f} min.", "",
             f"- **Dense**: EDSR {cfg['blocks']}x{cfg['channels']} x{SCALE}, light upsampler; {dense_note}.",
             f"- **Variants**: `fxprune.compress(dense, Spec(method='{args.method}', ratio=r, round_to={cfg['round_to']}))`, r = "
             f"{', '.join(map(str, cfg['ratios']))}, fine-tuned {cfg['finetune_steps']} steps at lr "
             f"{cfg['finetune_lr']}; fallback bicubic (grouped 5x5 conv + pixel shuffle). MACs per "
             f"{routed.tile}x{routed.tile} window: " + ", ".join(f"{n} {c / 1e6:.1f}M" for n, c in
                                                                 zip(names, routed.window_costs)) + ".",
             f"- **Windows**: {routed.patch} px + {routed.context} px context ({routed.tile} px), the tiler of "
             "`fxprune.runtime.run_tiled`; no blending.",
             f"- **Estimator**: {estimator.quality.train_windows} training windows, {cfg['est_steps']} Adam steps; "
             f"{routed.estimator_cost / 1e6:.2f}M MACs per window (included in every routed figure). Held-out "
             f"Spearman ρ ({estimator.quality.held_out} windows of the test images):", "",
             estimator.quality.table(), "",
             f"- **MACs check**: `fxprune.count_macs(routed, (lr, β=0.5))` on {images[0][0]} exceeds the route-map "
             f"sum by {100 * macs_check:.4f}% (the routing arithmetic itself).",
             f"- **Latency**: ONNX Runtime {ort.__version__}, {THREADS} threads, median of {cfg['rounds']} runs per "
             "image, summed over the images.",
             f"- **Images** (LR size): " + ", ".join(f"{n} {lr.shape[1]}x{lr.shape[2]}" for (n, _), (lr, _) in
                                                     zip(images, pairs)) + ".", ""]
    table = ["| method | β | Y-PSNR (dB, mean) | MACs / LR px | of " + largest + " tiled | ORT ms (sum) | of "
             + largest + " tiled | windows per route (" + " / ".join(names) + ") |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    ref = aggregate(per_image, pairs, latency, f"route:{largest}", None)
    points = {}
    for method in [f"route:dense"] + [f"route:{n}" for n in names]:
        points[(method, None)] = aggregate(per_image, pairs, latency, method, None)
    for method in ("routed", "laplacian", "oracle"):
        for beta in BETAS:
            points[(method, beta)] = aggregate(per_image, pairs, latency, method, beta)
    for (method, beta), p in points.items():
        ms = "—" if np.isnan(p["ms"]) else f"{p['ms']:.1f}"
        share_ms = "—" if np.isnan(p["ms"]) else f"{100 * p['ms'] / ref['ms']:.0f}%"
        fr = overall_fractions(per_image, pairs, method, beta, names)
        table.append(f"| {method} | {'-' if beta is None else f'{beta:g}'} | {p['psnr']:.3f} | {p['macs']:,.0f} | "
                     f"{100 * p['macs'] / ref['macs']:.0f}% | {ms} | {share_ms} | {fr} |")
    whole_rows = ["| model on the whole image | Y-PSNR (dB, mean) | MACs / LR px | ORT ms (sum) |", "| --- | ---: | ---: | ---: |"]
    for n in ["dense"] + names[:-1]:
        ps = [whole[(img, n)][0] for img, _ in images]
        ms = sum(latency[(img, f"whole:{n}", None)] for img, _ in images)
        whole_rows.append(f"| {n} | {sum(ps) / len(ps):.3f} | {whole[(images[0][0], n)][1]:,.0f} | {ms:.1f} |")
    per = ["| image | " + " | ".join([f"{largest} tiled", "dense tiled"] + [f"routed β={b:g}" for b in BETAS]) + " |",
           "| --- |" + " ---: |" * (2 + len(BETAS))]
    for (name, rows) in per_image.items():
        cells = []
        for method, beta in [(f"route:{largest}", None), ("route:dense", None)] + [("routed", b) for b in BETAS]:
            r = next(r for r in rows if r.method == method and r.beta == beta)
            cells.append(f"{r.psnr:.2f} dB / {r.macs_per_pixel / 1e3:.0f}k")
        per.append(f"| {name} | " + " | ".join(cells) + " |")
    # the goal: within 0.05 dB of the largest variant tiled, at <= 60% of its MACs and latency
    ok = [(b, p) for (m, b), p in points.items() if m == "routed" and p["psnr"] >= ref["psnr"] - 0.05]
    if ok:
        beta, best = min(ok, key=lambda item: item[1]["macs"])
        verdict = (f"Goal (within 0.05 dB of {largest} tiled at ≤ 60% of its MACs and latency): cheapest routed "
                   f"point within 0.05 dB is β = {beta:g}: {best['psnr'] - ref['psnr']:+.3f} dB at "
                   f"{100 * best['macs'] / ref['macs']:.0f}% of the MACs and {100 * best['ms'] / ref['ms']:.0f}% of "
                   f"the latency — {'met' if best['macs'] <= 0.6 * ref['macs'] and best['ms'] <= 0.6 * ref['ms'] else 'NOT met'}.")
        verdict += " " + size_note(per_image, pairs, beta, largest)
    else:
        verdict = f"Goal NOT met: no β keeps the routed PSNR within 0.05 dB of {largest} tiled."
    plot_path = plot(points, names, folder if args.quick else HERE)
    return "\n".join(lines + ["### Overall", "", *table, "", verdict, "",
                              f"![routing: PSNR against MACs and latency]({plot_path.name})", "",
                              "### Whole-image runs (no windows)", "", *whole_rows, "",
                              "### Per image (Y-PSNR / MACs per LR px)", "", *per, ""])


def size_note(per_image: dict, pairs: list, beta: float, largest: str) -> str:
    """Per image at ``beta``: LR size, PSNR change and MACs share against the largest route tiled (small images
    have fewer windows that can take a cheap route, so the saving is read per image)."""
    parts = []
    for (name, rows), (lr, _) in zip(per_image.items(), pairs):
        routed = next(r for r in rows if r.method == "routed" and r.beta == beta)
        ref = next(r for r in rows if r.method == f"route:{largest}")
        parts.append(f"{name} ({lr.shape[1]}x{lr.shape[2]}): {routed.psnr - ref.psnr:+.2f} dB at "
                     f"{100 * routed.macs_per_pixel / ref.macs_per_pixel:.0f}% of the MACs")
    return f"Per image at β = {beta:g}: " + "; ".join(parts) + "."


def overall_fractions(per_image: dict, pairs: list, method: str, beta, names: list[str]) -> str:
    counts = np.zeros(len(names))
    for (name, rows), (lr, _) in zip(per_image.items(), pairs):
        row = next(r for r in rows if r.method == method and r.beta == beta)
        if set(row.fractions) != set(names):
            return "—"
        windows = lr.shape[1] * lr.shape[2]   # weight by image size (windows are proportional)
        counts += np.array([row.fractions[n] for n in names]) * windows
    return " / ".join(f"{100 * c / counts.sum():.0f}%" for c in counts)


def plot(points: dict, names: list[str], folder: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), dpi=110)
    for ax, key, label in ((axes[0], "macs", "MACs per LR pixel (estimator included)"),
                           (axes[1], "ms", "ONNX Runtime ms, 2 threads (sum over images)")):
        for method, style in (("routed", "o-"), ("laplacian", "s--"), ("oracle", "^:")):
            pts = sorted((p[key], p["psnr"]) for (m, b), p in points.items() if m == method and not np.isnan(p[key]))
            if pts:
                ax.plot(*zip(*pts), style, label=f"{method} (β 0..10)")
        for (m, b), p in points.items():
            if b is None and not np.isnan(p[key]):
                ax.plot(p[key], p["psnr"], "k*", markersize=9)
                ax.annotate(m.replace("route:", "") + " tiled", (p[key], p["psnr"]), xytext=(4, -10),
                            textcoords="offset points", fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("Y-PSNR (dB), mean over images")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Routed EDSR x2 variants: PSNR against cost (★ one route on every window)")
    fig.tight_layout()
    path = folder / "routing_psnr_vs_cost.png"
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
