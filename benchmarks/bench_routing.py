"""Dynamic patch routing against its honest baselines: every single model run on the whole image.

Routes: the dense EDSR 8x64 x2 (the shipped trained weights; --quick: a tiny untrained one), its L1
variants ``fxprune.compress(dense, Spec('l1', ratio=r, round_to=16))`` each fine-tuned toward the dense
output and the HR (:func:`fxprune.routing.distill.distill`), and bicubic as a grouped conv.

Images (benchmarks/routing_images.py): the models were trained on fxprune's demo training split; a
*validation* split chooses the window size and context, the estimator of each route (CNN or Laplacian
lookup, by Spearman ρ), fits the lookup's table and chooses β; the *test* split is used for nothing but
the figures. PSNR over a split is the Y-PSNR of the MSE pooled over all its pixels (per image beside
it); MACs and ONNX Runtime latency (2 threads, median of ``rounds``) are summed over the same images.

Baselines are the dense model and each variant on the whole image (no windows); tiled single routes are
a diagnostic only. The goal: on the pooled test set, within 0.05 dB of the best whole-image variant at
no more than 70% of its measured latency, no test image losing more than 0.1 dB.

    python benchmarks/bench_routing.py            # full run (~25 min on 2 idle cores): RESULTS.md + README numbers
    python benchmarks/bench_routing.py --quick    # smoke test (a few min): tiny model, crops; writes a temp file
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
import torch
from torch import nn

import fxprune
from fxprune.data import DEMO_SPLITS, demo_images, make_pairs
from fxprune.metrics import psnr
from fxprune.routing import BicubicConv, RoutedModel, Variant, build_variants
from fxprune.routing.distill import distill
from fxprune.routing.estimator import LaplacianEstimator
from fxprune.routing.evaluate import pick_estimator, pooled_psnr, sweep, window_errors
from fxprune.routing.training import train_estimator
from fxprune.train import TrainConfig

import routing_images
from bench_assl import dense_model
from bench_common import Clock, ort_session, run_line
from results_file import replace_section

HEADING = "## Dynamic patch routing (bench_routing.py)"
HERE = Path(__file__).resolve().parent
THREADS = 2
SCALE = 2
BETAS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0]
GOAL_DB, GOAL_IMAGE_DB, GOAL_LATENCY = 0.05, 0.1, 0.70
FULL = dict(blocks=8, channels=64, pretrained=True, ratios=(0.25, 0.5, 0.75), round_to=16, distill_steps=500,
            distill_lr=5e-4, distill_patch=24, distill_batch=8, hr_weight=0.5,
            windows=((48, 4), (64, 4), (64, 8), (96, 4), (96, 8)), est_steps=1500, est_windows=512, rounds=3,
            crop=None, sizes=(512, 1024, 2048), dense_route=True)
QUICK = dict(blocks=1, channels=16, pretrained=False, ratios=(0.25, 0.5, 0.75), round_to=4, distill_steps=3,
             distill_lr=5e-4, distill_patch=16, distill_batch=2, hr_weight=0.5, windows=((16, 4), (24, 4)),
             est_steps=20, est_windows=64, rounds=1, crop=96, sizes=(64, 128), dense_route=True)


class ZeroEstimator(nn.Module):
    """A stand-in estimator predicting 0 for each of ``routes`` routes (windows' true errors need only the routes)."""

    def __init__(self, routes: int) -> None:
        super().__init__()
        self.routes = routes

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return windows.new_zeros(windows.shape[0], self.routes)


def log(clock: Clock, text: str) -> None:
    print(f"[{clock.minutes():5.1f} min] {text}", flush=True)


def median_ms(sess, inputs: tuple, rounds: int) -> float:
    """Median ms of ``rounds`` runs on ``inputs`` (in the graph's input order), after one warm-up run."""
    feed = {i.name: v for i, v in zip(sess.get_inputs(), inputs)}
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


def macs_per_pixel(module: nn.Module) -> float:
    """Whole-image MACs per LR pixel (exact for these all-conv models: MACs scale with the pixel count)."""
    return fxprune.count_macs(module, (torch.zeros(1, 3, 64, 64),)) / (64 * 64)


def make_variants(cfg: dict, dense: nn.Module, cache: Path | None, clock: Clock) -> list[Variant]:
    """One-shot L1 variants distilled from ``dense`` on the training split (cached by settings when ``cache``)."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 24, 24)
    specs = {f"l1-{r}": fxprune.Spec(method="l1", ratio=r, round_to=cfg["round_to"]) for r in cfg["ratios"]}
    train_imgs = demo_images("train")
    variants = build_variants(dense, specs, (x,), train=None, fallback=None)
    keys = [cache / (f"{v.name}_{cfg['blocks']}x{cfg['channels']}_{cfg['distill_steps']}s_{cfg['distill_lr']}_"
                     f"{cfg['distill_patch']}p{cfg['distill_batch']}b_hr{cfg['hr_weight']}.pt") if cache else None
            for v in variants]
    if all(k is not None and k.exists() for k in keys):   # a GraphModule does not unpickle: its weights only
        for v, k in zip(variants, keys):
            v.module.load_state_dict(torch.load(k))
        log(clock, f"variants loaded from {cache}")
    else:
        # the teacher runs once per batch for all variants (the same batches)
        distill([v.module for v in variants], dense, train_imgs, steps=cfg["distill_steps"], scale=SCALE,
                lr=cfg["distill_lr"], patch=cfg["distill_patch"], batch=cfg["distill_batch"],
                hr_weight=cfg["hr_weight"])
        log(clock, f"variants distilled {cfg['distill_steps']} steps")
        for v, k in zip(variants, keys):
            if k is not None:
                k.parent.mkdir(parents=True, exist_ok=True)
                torch.save(v.module.state_dict(), k)
    for v in variants:
        for p in v.module.parameters():
            p.requires_grad_(False)
    return variants


def whole_scores(models: dict[str, nn.Module], named_pairs: list) -> dict[str, list[float]]:
    """Y-PSNR (shave 2) of each model on each whole image."""
    scores = {}
    for name, module in models.items():
        with torch.no_grad():
            scores[name] = [psnr(module(lr[None]).clamp(0, 1), hr[None], shave=SCALE) for _, (lr, hr) in named_pairs]
    return scores


def pixels_of(named_pairs: list) -> list[int]:
    """The pixels each PSNR is taken over (HR minus the shaved border)."""
    return [(hr.shape[1] - 2 * SCALE) * (hr.shape[2] - 2 * SCALE) for _, (_, hr) in named_pairs]


def lr_pixels(named_pairs: list) -> list[int]:
    return [lr.shape[1] * lr.shape[2] for _, (lr, _) in named_pairs]


def curve(rows: list, method: str, named_pairs: list) -> dict[float, dict]:
    """Per β of ``method``: pooled PSNR, per-image PSNRs and MACs per LR pixel over the images."""
    px = pixels_of(named_pairs)
    return {r.beta: {"psnr": pooled_psnr(r.per_image, px), "per_image": r.per_image, "macs": r.macs_per_pixel,
                     "fractions": r.fractions} for r in rows if r.method == method and r.beta is not None}


def single(rows: list, name: str, named_pairs: list) -> dict:
    """Route ``name`` on every window (tiled as routed): pooled PSNR and MACs per LR pixel."""
    (row,) = [r for r in rows if r.method == f"route:{name}"]
    return {"psnr": pooled_psnr(row.per_image, pixels_of(named_pairs)), "macs": row.macs_per_pixel}


def meets(point: dict, ref_psnr: float, ref_images: list[float]) -> bool:
    """Within GOAL_DB of the reference pooled, and no image more than GOAL_IMAGE_DB below it."""
    return (point["psnr"] >= ref_psnr - GOAL_DB
            and min(a - b for a, b in zip(point["per_image"], ref_images)) >= -GOAL_IMAGE_DB)


def choose_beta(points: dict[float, dict], ref_psnr: float, ref_images: list[float]) -> tuple[float, bool]:
    """The cheapest β meeting the quality goal (True), else the β of the highest PSNR (False)."""
    ok = [b for b, p in points.items() if meets(p, ref_psnr, ref_images)]
    if ok:
        return min(ok, key=lambda b: points[b]["macs"]), True
    return max(points, key=lambda b: points[b]["psnr"]), False


def frontier(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the (cost, PSNR) points no other point beats on both (cheaper or equal and better)."""
    return [n for n, (c, p) in points.items()
            if not any((c2 <= c and p2 > p) or (c2 < c and p2 >= p) for m, (c2, p2) in points.items() if m != n)]


def best_at(points: dict[str, tuple[float, float]], cost: float) -> tuple[str, float] | None:
    """The whole-image model of the highest PSNR costing at most ``cost`` (None if all cost more)."""
    fit = [(p, n) for n, (c, p) in points.items() if c <= cost]
    return (max(fit)[1], max(fit)[0]) if fit else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny untrained model, few steps, crops; temp file")
    parser.add_argument("--out", type=Path, help="markdown file for the section (default RESULTS.md; --quick: temp)")
    parser.add_argument("--rounds", type=int, help="latency rounds per measurement (median)")
    parser.add_argument("--distill-steps", type=int, help="fine-tuning steps per variant")
    parser.add_argument("--cache", type=Path, help="folder to keep/reuse the distilled variants (same settings)")
    parser.add_argument("--windows", help="window grid to compare, e.g. '64:8,96:8' (patch:context)")
    parser.add_argument("--crop", type=int, help="centre crops of this many px (HR) of every image (exploration)")
    parser.add_argument("--est-steps", type=int, help="Adam steps of the CNN estimator")
    parser.add_argument("--est-windows", type=int, help="training windows of the CNN estimator")
    parser.add_argument("--no-sizes", action="store_true", help="skip the size series")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads for training and sweeps")
    args = parser.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    if args.distill_steps is not None:
        cfg["distill_steps"] = args.distill_steps
    if args.windows:
        cfg["windows"] = tuple(tuple(int(v) for v in w.split(":")) for w in args.windows.split(","))
    if args.crop:
        cfg["crop"] = args.crop
    for option in ("est_steps", "est_windows"):
        if getattr(args, option):
            cfg[option] = getattr(args, option)
    if args.no_sizes:
        cfg["sizes"] = ()
    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / "bench_routing_quick.md" if args.quick else HERE / "RESULTS.md"
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    clock = Clock()
    folder = Path(tempfile.mkdtemp(prefix="bench_routing_"))
    report = Report(cfg, args, clock)

    dense = dense_model(cfg)
    val = [(n, p) for (n, _), p in zip(routing_images.images(routing_images.VALIDATION, cfg["crop"]),
                                       make_pairs([im for _, im in routing_images.images(routing_images.VALIDATION,
                                                                                          cfg["crop"])], "sr", SCALE))]
    test_imgs = routing_images.images(routing_images.TEST, cfg["crop"])
    test = list(zip([n for n, _ in test_imgs], make_pairs([im for _, im in test_imgs], "sr", SCALE)))
    variants = make_variants(cfg, dense, args.cache, clock)
    dense_route = Variant("dense", fxprune.trace(dense, (torch.rand(1, 3, 24, 24),)))
    fallback = Variant("bicubic", BicubicConv(SCALE, 3))
    routes = ([dense_route] if cfg["dense_route"] else []) + variants + [fallback]
    singles = {v.name: v.module for v in [dense_route] + variants + [fallback]}

    # 1. whole-image baselines: PSNR on both splits, MACs, ORT latency on the test split
    report.val_whole = whole_scores(singles, val)
    report.test_whole = whole_scores(singles, test)
    report.macs = {n: macs_per_pixel(m) for n, m in singles.items()}
    paths = {n: export(m, folder / f"whole_{n}.onnx", (torch.rand(1, 3, 32, 32),)) for n, m in singles.items()}
    sessions = {n: ort_session(p, THREADS) for n, p in paths.items()}
    report.whole_ms = {n: [median_ms(s, (lr[None].numpy(),), cfg["rounds"]) for _, (lr, _) in test]
                       for n, s in sessions.items()}
    del sessions
    report.val, report.test = val, test
    log(clock, "whole-image baselines measured")
    report.write()

    # 2. window size and context, on validation: lookup fitted on the validation windows, cheapest β meeting the goal
    ref = report.reference()
    ref_val = pooled_psnr(report.val_whole[ref], pixels_of(val))
    grid = []
    for patch, context in cfg["windows"]:
        probe = RoutedModel(routes, ZeroEstimator(len(routes)), patch=patch, context=context).eval()
        windows, errors = window_errors(probe, [p for _, p in val])
        lookup = LaplacianEstimator.fit(windows, errors)
        rows = sweep(probe.with_estimator(lookup), [p for _, p in val], BETAS, oracle=True)
        points = curve(rows, "routed", val)
        beta, ok = choose_beta(points, ref_val, report.val_whole[ref])
        tiled = single(rows, ref, val)
        grid.append(dict(patch=patch, context=context, beta=beta, ok=ok, point=points[beta],
                         tiled_psnr=tiled["psnr"], tiled_macs=tiled["macs"], window_macs=probe.window_costs))
        log(clock, f"windows {patch}+{context}: β={beta:g} {'meets' if ok else 'misses'} the goal on validation, "
                   f"{points[beta]['macs']:,.0f} MACs/px")
    report.grid, report.ref_val = grid, ref_val
    met = [g for g in grid if g["ok"]]
    chosen = min(met, key=lambda g: g["point"]["macs"]) if met else max(grid, key=lambda g: g["point"]["psnr"])
    patch, context = chosen["patch"], chosen["context"]
    report.write()

    # 3. the estimator: CNN trained on training windows; per route the better ranker on validation windows
    est_config = TrainConfig(task="sr", scale=SCALE, steps=cfg["est_steps"], batch_size=32, lr=1e-3, device="cpu",
                             seed=0, progress=False)
    cnn = train_estimator(routes, est_config, patch=patch, context=context, windows=cfg["est_windows"],
                          held_out=min(64, cfg["est_windows"]))
    probe = RoutedModel(routes, ZeroEstimator(len(routes)), patch=patch, context=context).eval()
    windows, errors = window_errors(probe, [p for _, p in val])
    picked, cnn_rho, lookup_rho = pick_estimator(cnn, windows, errors)
    routed = RoutedModel(routes, picked, patch=patch, context=context).eval()
    report.estimator = dict(names=routed.names, cnn=cnn_rho, lookup=lookup_rho, pick=picked.pick,
                            windows=windows.shape[0], cost=routed.estimator_cost, train_windows=cfg["est_windows"])
    log(clock, f"estimator picked per route: {picked.pick} (0 CNN, 1 lookup)")

    # 4. β on validation
    val_rows = sweep(routed, [p for _, p in val], BETAS, oracle=False)
    report.val_curve = curve(val_rows, "routed", val)
    report.beta, report.beta_ok = choose_beta(report.val_curve, ref_val, report.val_whole[ref])
    report.routed = routed
    report.write()

    # 5. test: PyTorch sweep (PSNR, MACs), ORT latency of the one routed graph at each β
    test_rows = sweep(routed, [p for _, p in test], BETAS, oracle=True)
    report.test_curve = curve(test_rows, "routed", test)
    report.oracle_curve = curve(test_rows, "oracle", test)
    report.tiled = {n: single(test_rows, n, test) for n in routed.names}
    routed_path = export(routed, folder / "routed.onnx",
                         (torch.rand(1, 3, 2 * routed.tile + 3, 2 * routed.tile + 5), torch.tensor(0.5)))
    sess = ort_session(routed_path, THREADS)
    report.routed_ms = {b: [median_ms(sess, (lr[None].numpy(), np.array(b, np.float32)), cfg["rounds"]) for _, (lr, _) in test] for b in BETAS}
    log(clock, "test split measured")
    report.write()

    # 6. the same scene at several sizes: routed at the chosen β against the reference on the whole image
    whole_ref = ort_session(paths[ref], THREADS)
    report.sizes = []
    for size in cfg["sizes"]:
        img = routing_images.dead_leaves(size, 2)
        (lr, hr), = make_pairs([img], "sr", SCALE)
        (row,) = [r for r in sweep(routed, [(lr, hr)], [report.beta], oracle=False) if r.method == "routed"]
        with torch.no_grad():
            ref_psnr = psnr(singles[ref](lr[None]).clamp(0, 1), hr[None], shave=SCALE)
        feed = lr[None].numpy()
        ms_ref = median_ms(whole_ref, (feed,), cfg["rounds"])
        ms_routed = median_ms(sess, (feed, np.array(report.beta, np.float32)), cfg["rounds"])
        report.sizes.append(dict(size=size, lr=lr.shape[1:], routed_psnr=row.psnr, ref_psnr=ref_psnr,
                                 macs=row.macs_per_pixel, ms=ms_routed, ref_ms=ms_ref))
        log(clock, f"size {size}: done")
    report.done = True
    section = report.write()
    print(f"{HEADING}\n\n{section}")
    if not args.quick and args.out == HERE / "RESULTS.md":
        import readme_numbers
        readme = HERE.parent / "README.md"
        readme.write_text(readme_numbers.updated(readme.read_text(), args.out.read_text()))
        print(f"wrote {args.out} and the README numbers")


class Report:
    """What the run has measured so far, written as RESULTS.md's routing section after every phase."""

    def __init__(self, cfg: dict, args: argparse.Namespace, clock: Clock) -> None:
        self.cfg, self.args, self.clock = cfg, args, clock
        self.val_whole = self.test_whole = self.macs = self.whole_ms = None
        self.grid = self.estimator = self.val_curve = self.test_curve = self.routed_ms = None
        self.sizes: list = []
        self.done = False

    def reference(self) -> str:
        """The best single whole-image variant: of the compressed models and bicubic (a variant weaker than
        bicubic must not make an easy reference), the one of the highest pooled validation PSNR."""
        names = [n for n in self.val_whole if n != "dense"]
        return max(names, key=lambda n: pooled_psnr(self.val_whole[n], pixels_of(self.val)))

    def write(self) -> str:
        section = "\n".join(self.lines())
        replace_section(self.args.out, HEADING, section)
        return section

    def lines(self) -> list[str]:
        cfg = self.cfg
        status = "" if self.done else " **(run in progress: the section so far)**"
        out = [run_line(datetime.date.today().isoformat() + (" (--quick)" if self.args.quick else ""), 1, self.clock)
               + f" Training and sweeps used {self.args.threads} torch thread(s)." + status, "",
               f"- **Dense**: EDSR {cfg['blocks']}x{cfg['channels']} x{SCALE}, light upsampler; "
               + ("the shipped trained weights (`fxprune.weights.pretrained`)." if cfg["pretrained"] else
                  "untrained (--quick)."),
               f"- **Variants**: `fxprune.compress(dense, Spec('l1', ratio=r, round_to={cfg['round_to']}))`, r = "
               f"{', '.join(map(str, cfg['ratios']))}, each fine-tuned {cfg['distill_steps']} Adam steps (lr "
               f"{cfg['distill_lr']}, cosine to 0, batch {cfg['distill_batch']} of {cfg['distill_patch']} px LR "
               f"crops of the training split) on {cfg['hr_weight']}·L1(HR) + {1 - cfg['hr_weight']:g}·L1(dense "
               "output) (`fxprune.routing.distill.distill`). Fallback: bicubic (grouped 5x5 conv + pixel shuffle)."
               + (" The dense model is a route too." if cfg["dense_route"] else ""),
               "- **Images** (HR size; see benchmarks/routing_images.py): training (the dense model and the "
               f"fine-tuning): {', '.join(DEMO_SPLITS['train'])}. Validation (window, context, estimator, lookup "
               "table, β): " + self._sizes(getattr(self, "val", [])) + " — chelsea, coffee and camera chose the "
               "shipped dense checkpoint, so they serve here as validation, not test. Test (figures only): "
               + self._sizes(getattr(self, "test", [])) + ". leaves1/leaves2: dead-leaves images generated by seed.",
               f"- **Figures**: Y-PSNR (shave {SCALE}) of the MSE pooled over all pixels of a split; MACs per LR "
               "pixel over the split; ONNX Runtime "
               f"{_ort_version()} latency, {THREADS} threads, median of {cfg['rounds']} runs per image, summed "
               "over the split.", ""]
        if self.whole_ms is None:
            return out
        out += self._baselines()
        if self.grid:
            out += self._grid()
        if self.estimator:
            out += self._estimator()
        if self.test_curve and self.routed_ms:
            out += self._test()
        if self.sizes:
            out += self._size_series()
        return out

    @staticmethod
    def _sizes(named: list) -> str:
        return ", ".join(f"{n} {hr.shape[2]}x{hr.shape[1]}" for n, (_, hr) in named)

    def _whole_points(self, key: str) -> dict[str, tuple[float, float]]:
        px = pixels_of(self.test)
        cost = {"ms": lambda n: sum(self.whole_ms[n]), "macs": lambda n: self.macs[n]}[key]
        return {n: (cost(n), pooled_psnr(self.test_whole[n], px)) for n in self.test_whole}

    def _baselines(self) -> list[str]:
        ref = self.reference()
        px = pixels_of(self.test)
        names = [n for n, _ in self.test]
        lat, mac = self._whole_points("ms"), self._whole_points("macs")
        lines = ["### Whole-image baselines (test split)", "",
                 "| model | Y-PSNR pooled (dB) | " + " | ".join(names) + " | MACs / LR px | ORT ms (sum) |",
                 "| --- | ---: |" + " ---: |" * len(names) + " ---: | ---: |"]
        for n in self.test_whole:
            lines.append(f"| {n} | {pooled_psnr(self.test_whole[n], px):.3f} | "
                         + " | ".join(f"{v:.2f}" for v in self.test_whole[n])
                         + f" | {self.macs[n]:,.0f} | {sum(self.whole_ms[n]):,.1f} |")
        lines += ["", f"Reference (the best single whole-image variant or bicubic, chosen by pooled validation PSNR): **{ref}**. "
                  f"Pareto frontier of (PSNR, latency): {', '.join(frontier(lat))}; of (PSNR, MACs): "
                  f"{', '.join(frontier(mac))}.", ""]
        return lines

    def _grid(self) -> list[str]:
        ref = self.reference()
        lines = ["### Window size and context (validation split, Laplacian lookup fitted on it)", "",
                 f"Reference {ref} on the whole validation images: {self.ref_val:.3f} dB pooled, "
                 f"{self.macs[ref]:,.0f} MACs / LR px. Overhead of windows: ((P+2O)/P)² of the whole-image MACs.", "",
                 f"| patch P | context O | ((P+2O)/P)² | {ref} tiled: dB / MACs / px | cheapest β meeting the goal | "
                 "routed dB | routed MACs / px | of the reference's MACs |",
                 "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for g in self.grid:
            lines.append(f"| {g['patch']} | {g['context']} | {((g['patch'] + 2 * g['context']) / g['patch']) ** 2:.2f} | "
                         f"{g['tiled_psnr']:.3f} / {g['tiled_macs']:,.0f} | "
                         f"{g['beta']:g}{'' if g['ok'] else ' (none meets it: best PSNR shown)'} | "
                         f"{g['point']['psnr']:.3f} | {g['point']['macs']:,.0f} | "
                         f"{100 * g['point']['macs'] / self.macs[ref]:.0f}% |")
        met = [g for g in self.grid if g["ok"]]
        pick = min(met, key=lambda g: g["point"]["macs"]) if met else max(self.grid, key=lambda g: g["point"]["psnr"])
        lines += ["", f"Chosen: {pick['patch']} px windows with {pick['context']} px context ("
                  + ("the cheapest that meets the goal on validation)." if met else
                     "no window meets the goal on validation; the one of the highest PSNR).") , ""]
        return lines

    def _estimator(self) -> list[str]:
        e = self.estimator
        lines = [f"### Estimator (Spearman ρ on {e['windows'] // 2} validation windows; the lookup fitted on the "
                 "other half)", "",
                 f"CNN trained on {e['train_windows']} windows of the training split. The routed model uses, per "
                 f"route, the better of the two; both run on every window ({e['cost'] / 1e6:.2f}M MACs per window, "
                 "counted in every routed figure).", "",
                 "| route | CNN ρ | lookup ρ | used |", "| --- | ---: | ---: | --- |"]
        for n, c, l, k in zip(e["names"], e["cnn"], e["lookup"], e["pick"]):
            lines.append(f"| {n} | {c:.3f} | {l:.3f} | {'lookup' if k else 'CNN'} |")
        if self.val_curve:
            p = self.val_curve[self.beta]
            lines += ["", f"β chosen on validation: **{self.beta:g}** ("
                      + ("the cheapest β within " if self.beta_ok else "no β meets the goal; the highest PSNR, not within ")
                      + f"{GOAL_DB} dB of the reference pooled and {GOAL_IMAGE_DB} dB per image): {p['psnr']:.3f} dB "
                      f"against {self.ref_val:.3f}, {p['macs']:,.0f} MACs / LR px.", ""]
        return lines + [""]

    def _test(self) -> list[str]:
        ref = self.reference()
        px = pixels_of(self.test)
        ref_psnr = pooled_psnr(self.test_whole[ref], px)
        ref_ms, ref_macs = sum(self.whole_ms[ref]), self.macs[ref]
        lat, mac = self._whole_points("ms"), self._whole_points("macs")
        routed = self.routed
        lines = ["### Routed model on the test split", "",
                 f"{routed.patch} px windows, {routed.context} px context; routes "
                 + ", ".join(f"{n} ({c / 1e6:.1f}M MACs / window)" for n, c in zip(routed.names, routed.window_costs))
                 + f". Δ against {ref} on the whole image ({ref_psnr:.3f} dB, {ref_ms:,.1f} ms, "
                 f"{ref_macs:,.0f} MACs / LR px). 'Frontier' is the best whole-image model costing no more.", "",
                 "| β | Y-PSNR pooled | Δ dB | worst image Δ dB | MACs / LR px | of ref | ORT ms | of ref | "
                 "best whole-image model at ≤ that latency | oracle routing dB | windows per route ("
                 + " / ".join(routed.names) + ") |",
                 "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
        for b in BETAS:
            p, ms = self.test_curve[b], sum(self.routed_ms[b])
            worst = min(a - r for a, r in zip(p["per_image"], self.test_whole[ref]))
            best = best_at(lat, ms)
            front = "none" if best is None else f"{best[0]} {best[1]:.3f} dB ({'routed above' if p['psnr'] > best[1] else 'routed below'})"
            lines.append(f"| {b:g}{' (chosen)' if b == self.beta else ''} | {p['psnr']:.3f} | {p['psnr'] - ref_psnr:+.3f} | "
                         f"{worst:+.3f} | {p['macs']:,.0f} | {100 * p['macs'] / ref_macs:.0f}% | {ms:,.1f} | "
                         f"{100 * ms / ref_ms:.0f}% | {front} | {self.oracle_curve[b]['psnr']:.3f} | "
                         + " / ".join(f"{100 * p['fractions'][n]:.0f}%" for n in routed.names) + " |")
        above = {key: [b for b in BETAS if (lambda best: best is not None and self.test_curve[b]["psnr"] > best[1])(
                      best_at(whole, cost(b)))]
                 for key, whole, cost in (("latency", lat, lambda b: sum(self.routed_ms[b])),
                                          ("MACs", mac, lambda b: self.test_curve[b]["macs"]))}
        lines += ["", "Against the whole-image frontier: the routed point is above it (higher PSNR than every single "
                  "model costing no more) at β = " + (", ".join(f"{b:g}" for b in above["latency"]) or "none")
                  + " by latency, and at β = " + (", ".join(f"{b:g}" for b in above["MACs"]) or "none") + " by MACs."]
        names = [n for n, _ in self.test]
        b = self.beta
        p, ms = self.test_curve[b], self.routed_ms[b]
        lines += ["", f"Per image at the chosen β = {b:g} (routed against {ref} on the whole image):", "",
                  "| image | LR size | routed dB | " + ref + " dB | Δ dB | routed ms | " + ref + " ms | of ref |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for i, (n, (lr, _)) in enumerate(self.test):
            lines.append(f"| {n} | {lr.shape[2]}x{lr.shape[1]} | {p['per_image'][i]:.2f} | {self.test_whole[ref][i]:.2f} | "
                         f"{p['per_image'][i] - self.test_whole[ref][i]:+.2f} | {ms[i]:,.1f} | "
                         f"{self.whole_ms[ref][i]:,.1f} | {100 * ms[i] / self.whole_ms[ref][i]:.0f}% |")
        lines += ["", "Diagnostic, each route on every window (tiled as routed): "
                  + "; ".join(f"{n} {t['psnr']:.3f} dB at {t['macs']:,.0f} MACs / LR px ({t['macs'] / self.macs[n]:.2f}x its "
                              "whole-image MACs)" for n, t in self.tiled.items()) + ".", ""]
        worst = min(a - r for a, r in zip(p["per_image"], self.test_whole[ref]))
        share = sum(ms) / ref_ms
        verdict = (p["psnr"] >= ref_psnr - GOAL_DB and worst >= -GOAL_IMAGE_DB and share <= GOAL_LATENCY)
        lines.append(f"Goal (on the pooled test set within {GOAL_DB} dB of {ref} on the whole image at ≤ "
                     f"{GOAL_LATENCY:.0%} of its ORT latency, no image losing more than {GOAL_IMAGE_DB} dB), β = {b:g} "
                     f"chosen on validation: {p['psnr'] - ref_psnr:+.3f} dB pooled, worst image {worst:+.3f} dB, "
                     f"{share:.0%} of the latency, {p['macs'] / ref_macs:.0%} of the MACs — "
                     f"{'met' if verdict else 'NOT met'}.")
        any_ok = [c for c in BETAS if self.test_curve[c]["psnr"] >= ref_psnr - GOAL_DB
                  and min(a - r for a, r in zip(self.test_curve[c]["per_image"], self.test_whole[ref])) >= -GOAL_IMAGE_DB
                  and sum(self.routed_ms[c]) / ref_ms <= GOAL_LATENCY]
        lines += ["", ("With β chosen on the test images themselves (not done for the verdict) the goal would be met at "
                       f"β = {', '.join(f'{c:g}' for c in any_ok)}." if any_ok else
                       "No β of the sweep meets the goal on the test images either."), ""]
        plot_path = self.plot(lat, mac)
        lines += [f"![routing: PSNR against latency and MACs]({plot_path.name})", ""]
        return lines

    def _size_series(self) -> list[str]:
        ref = self.reference()
        lines = [f"### Saving against image size (dead leaves seed 2, the same scene at each size; β = {self.beta:g})", "",
                 f"| HR size | LR px | routed dB | {ref} dB | Δ dB | routed MACs / LR px | of ref | routed ms | {ref} ms | "
                 "of ref |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for s in self.sizes:
            lines.append(f"| {s['size']} | {s['lr'][0] * s['lr'][1]:,} | {s['routed_psnr']:.2f} | {s['ref_psnr']:.2f} | "
                         f"{s['routed_psnr'] - s['ref_psnr']:+.2f} | {s['macs']:,.0f} | "
                         f"{100 * s['macs'] / self.macs[ref]:.0f}% | {s['ms']:,.1f} | {s['ref_ms']:,.1f} | "
                         f"{100 * s['ms'] / s['ref_ms']:.0f}% |")
        fits = [s for s in self.sizes if s["routed_psnr"] >= s["ref_psnr"] - GOAL_IMAGE_DB and s["ms"] <= GOAL_LATENCY * s["ref_ms"]]
        lines += ["", (f"On this scene the routed model is within {GOAL_IMAGE_DB} dB at ≤ {GOAL_LATENCY:.0%} of the "
                       f"latency from {min(s['size'] for s in fits)} px HR on." if fits else
                       f"At no size of this series is the routed model within {GOAL_IMAGE_DB} dB at ≤ "
                       f"{GOAL_LATENCY:.0%} of the latency."), ""]
        return lines

    def plot(self, lat: dict, mac: dict) -> Path:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        folder = HERE if self.args.out == HERE / "RESULTS.md" else self.args.out.parent
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), dpi=110)
        for ax, whole, xs, label in ((axes[0], lat, [sum(self.routed_ms[b]) for b in BETAS], "ORT ms (sum over test)"),
                                     (axes[1], mac, [self.test_curve[b]["macs"] for b in BETAS], "MACs per LR pixel")):
            ax.plot(xs, [self.test_curve[b]["psnr"] for b in BETAS], "o-", label="routed (β sweep)")
            front = sorted(whole[n] for n in frontier(whole))
            ax.plot(*zip(*front), "k--", alpha=0.5, label="whole-image frontier")
            for n, (c, p) in whole.items():
                ax.plot(c, p, "k*", markersize=9)
                ax.annotate(n, (c, p), xytext=(4, -10), textcoords="offset points", fontsize=8)
            ax.set_xlabel(label)
            ax.set_ylabel("Y-PSNR pooled over the test split (dB)")
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle("Routed EDSR x2 against single models on the whole image (★)")
        fig.tight_layout()
        path = folder / "routing_psnr_vs_cost.png"
        fig.savefig(path)
        plt.close(fig)
        return path


def _ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


if __name__ == "__main__":
    main()
