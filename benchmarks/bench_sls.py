"""SLS at small scale: learned N:M vs one-shot N:M + fine-tune vs L1 channels + fine-tune vs ASSL.

The ASSL ablation's dense model (``bench_assl.py``'s full setting: the shipped trained EDSR 8 × 64
×2 with ASSL's light upsampler, ``fxprune.weights.pretrained``) is compressed to MAC budgets 1/4
and 1/8 of the dense model, every method with the same number of training steps T (default 1000,
bench_assl's), the same batches, Adam at bench_assl's lr with its cosine schedule:

* SLS (``Spec(method="sls", budget=b, m=16, ...)``: search, freeze, fine-tune), ``fxprune.prepare``
  + ``train_model`` driven by the pruner's ``penalty`` / ``step`` / ``status`` and
  ``param_groups`` (the scores at their own lr) + ``fxprune.convert``;
* one-shot N:M at the largest uniform N within the budget (``Spec(method="nm", budget=b, m=16)``),
  fine-tuned for T steps under the frozen mask;
* one-shot L1 channel pruning (``macs=b``, ``round_to=16``), fine-tuned for T steps;
* ASSL channels (``macs=b``, ``round_to=16``), its schedule scaled to T steps.

Reports held-out Y-PSNR/SSIM (whole demo test images, shave = scale), params, MACs at a 1280×720
output (N:M layers counted at N/M), bytes on disk (``.pt2``; N:M models also compact), ONNX Runtime
latency (2 threads, interleaved rounds, median; static-shape export with parity check — N:M zeros
give no speed on CPU), the learned N per layer (plot ``sls_n_per_layer.png``) and the training-step
overhead of the masks against a plain traced step (goal ≤ 1.15×). The runs go to ``--jobs`` worker
processes with 1 torch thread each; RESULTS.md's section is rewritten as each run finishes, with
the CPU contention (PSI) of the run so far.

    python benchmarks/bench_sls.py             # full: about 10 min on 2 idle cores (--jobs 2), writes RESULTS.md
    python benchmarks/bench_sls.py --quick     # smoke test (~2 min), tiny untrained model, prints only
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import fxprune
from fxprune.counting import nm_layers
from fxprune.data import pairs_from
from fxprune.metrics import bicubic_baseline
from fxprune.train import train_model

from bench_assl import FULL, HERE, QUICK, SCALE, dense_model, measure, train_config, worker_start
from bench_common import Clock, interleaved_median_ms, ort_session, run_line, run_pool
from results_file import replace_section

HEADING = "## SLS: learned N:M vs one-shot N:M, L1 and ASSL (bench_sls.py)"
BUDGETS = (0.25, 0.125)
METHODS = {"sls": "SLS (learned N:M)", "nm": "one-shot N:M + fine-tune", "l1": "L1 channels + fine-tune",
           "assl": "ASSL channels"}
# SLS settings for short runs: the scores get their own learning rate (Adam moves a score by about
# that much per step) and λ anneals every 10 steps, so the search reaches the budget within half the
# steps; the rest fine-tunes. Probes of the search alone on the full setting (shipped 8 × 64, batch 8,
# patch 24, lr 1e-3 cosine over 1000 steps; chosen by where the search ends, not by PSNR): score lr
# 1e-2 froze 1/4 at step 25 and 1/8 at step 78 (reg_weight 0.02: 35 and 138), before the task loss had
# shaped the scores; 2e-3 froze 1/4 at step 119 and 1/8 at 243 of the 500 search steps, no greedy cut.
# The table says where each run froze and whether it was cut greedily.
SLS = dict(m=16, reg_weight=0.1, anneal_every=10, rerank_every=50, aux_lr=2e-3)
# timing settings beside bench_assl's configurations: ORT input (LR) size and rounds, mask-overhead rounds
TIMING = {"full": dict(latency_hw=(180, 320), rounds=7, overhead_rounds=9),
          "quick": dict(latency_hw=(32, 48), rounds=2, overhead_rounds=2)}


# ---------------------------------------------------------------- one run (in a worker process)
def run_one(job: dict) -> dict:
    """One (method, budget) run: train, convert, score, write its .pt2 (and compact) and .onnx files."""
    cfg, method, budget, key = job["cfg"], job["method"], job["budget"], job["key"]
    pairs, dense, x = worker_start(cfg, 0)
    train = dataclasses.replace(train_config(cfg, 0), steps=cfg["steps"])
    start = time.perf_counter()
    extra: dict = {}
    try:
        if method == "sls":
            spec = fxprune.Spec(method="sls", budget=budget, m=SLS["m"], steps=cfg["steps"], reg_weight=SLS["reg_weight"],
                                anneal_every=SLS["anneal_every"], rerank_every=SLS["rerank_every"])
            pruner = fxprune.prepare(copy.deepcopy(dense), spec, (x,))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train_model(pruner.model, train, pruner.total_steps, SCALE, extra_loss=pruner.penalty,
                            after_step=pruner.step, status=pruner.status, description=key,
                            param_groups=pruner.param_groups(cfg["lr"], SLS["aux_lr"]), state=pruner)
            greedy = any("cut greedily" in str(w.message) for w in caught)
            extra["frozen"] = f"step {pruner.frozen_at} of {pruner.search_steps}" + (" (greedy cut)" if greedy else "")
            model = fxprune.convert(pruner)
        elif method == "nm":
            model = fxprune.compress(copy.deepcopy(dense), fxprune.Spec(method="nm", budget=budget, m=SLS["m"]), (x,),
                                     train=train)
        elif method in ("l1", "assl"):
            spec = fxprune.Spec(method=method, macs=budget, round_to=cfg["round_to"],
                                **({"steps": cfg["steps"]} if method == "assl" else {}))
            model = fxprune.compress(copy.deepcopy(dense), spec, (x,), train=train)
        elif method == "dense":
            model = dense
        else:
            raise ValueError(method)
    except fxprune.SpecError as error:   # e.g. a budget the unmasked layers alone exceed
        return {**job, "cfg": None, "error": str(error)}
    model.eval()
    seconds = time.perf_counter() - start
    layers = nm_layers(model)
    if layers:
        extra["n_per_layer"] = {p.rsplit(".", 1)[0]: v["n"] / v["m"] for p, v in layers.items()}
    return {**job, "cfg": None, **measure(model, pairs), **extra, **files(model, job, x, bool(layers)),
            "seconds": seconds}


def files(model: torch.nn.Module, job: dict, x: torch.Tensor, nm: bool) -> dict:
    """Bytes of the .pt2 (and of the compact N:M .pt2), and the static-shape ONNX file for the latency."""
    folder, key = Path(job["folder"]), job["key"]
    out = {"bytes": fxprune.save(model, folder / f"{key}.pt2", (x,)).stat().st_size}
    if nm:
        out["bytes_compact"] = fxprune.save(model, folder / f"{key}_compact.pt2", (x,), compact_nm=True).stat().st_size
    h, w = job["latency_hw"]
    report = fxprune.export_onnx(model, folder / f"{key}.onnx", (torch.rand(1, 3, h, w),), dynamic_hw=False, check=True)
    return {**out, "onnx": str(report.path), "onnx_err": report.max_abs_error}


# ---------------------------------------------------------------- timing in the main process
def mask_overhead(cfg: dict) -> dict[str, float]:
    """One training step (forward, L1 loss, backward, Adam) of the masked SLS model with its penalty
    against the traced dense model, 1 torch thread, median of interleaved rounds; and one re-rank."""
    torch.manual_seed(0)
    dense = dense_model(cfg)
    x = torch.rand(cfg["batch"], 3, cfg["patch"], cfg["patch"])
    y = torch.rand(cfg["batch"], 3, cfg["patch"] * SCALE, cfg["patch"] * SCALE)
    pruner = fxprune.prepare(copy.deepcopy(dense),
                             fxprune.Spec(method="sls", budget=BUDGETS[0], m=SLS["m"], steps=cfg["steps"]), (x,))
    variants = {"fxprune.trace": (fxprune.trace(dense, (x,)).train(), None),
                "masked (pruner.model) + penalty": (pruner.model.train(), pruner.penalty)}
    optims = {k: torch.optim.Adam(m.parameters(), lr=1e-5) for k, (m, _) in variants.items()}
    times: dict[str, list[float]] = {k: [] for k in variants}

    def one(k: str) -> float:
        model, extra = variants[k]
        start = time.perf_counter()
        loss = (model(x) - y).abs().mean() + (extra() if extra else 0)
        optims[k].zero_grad(set_to_none=True)
        loss.backward()
        optims[k].step()
        return time.perf_counter() - start

    for k in variants:   # warm-up
        one(k)
    for r in range(cfg["overhead_rounds"]):
        for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
            times[k].append(one(k))
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    start = time.perf_counter()
    pruner.rerank()
    return {**{f"{k} ms": v for k, v in med.items()},
            "masked / trace": med["masked (pruner.model) + penalty"] / med["fxprune.trace"],
            "rerank ms": (time.perf_counter() - start) * 1000, "rounds": cfg["overhead_rounds"]}


# ---------------------------------------------------------------- the section
class Results:
    def __init__(self, args, cfg: dict):
        self.args, self.cfg = args, cfg
        self.runs: dict[str, dict] = {}
        self.notes: list[str] = []
        self.overhead: dict[str, float] = {}
        self.latency_info = ""
        self.plot_written = False
        self.clock = Clock()
        self.date = datetime.date.today().isoformat()
        self.bicubic = bicubic_baseline(pairs_from(None, "test", task="sr", scale=SCALE), SCALE)

    def add(self, run: dict) -> None:
        if "error" in run:
            self.notes.append(f"{METHODS[run['method']]} at budget {run['budget']}: not run ({run['error']})")
            print(self.notes[-1], flush=True)
        else:
            self.runs[run["key"]] = run
            print(f"[{self.clock.minutes():5.1f} min] {self.label(run)}: PSNR {run['psnr']:.3f} SSIM {run['ssim']:.4f}"
                  + (f", froze at {run['frozen']}" if "frozen" in run else "") + f" ({run['seconds']:.0f} s)", flush=True)
        self.write()

    def label(self, run: dict) -> str:
        if run["method"] == "dense":
            return f"dense {self.cfg['channels']} ch"
        return f"{METHODS[run['method']]}, budget {run['budget']}"

    def ordered(self) -> list[dict]:
        keys = ["dense"] + [f"{m}_{b}" for b in BUDGETS for m in METHODS]
        return [self.runs[k] for k in keys if k in self.runs]

    def table(self) -> list[str]:
        lines = ["| model | Y-PSNR dB | SSIM | params | GMACs @1280×720 | MAC fraction | .pt2 bytes (compact) | "
                 "ORT ms | SLS froze at |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
                 f"| bicubic | {self.bicubic['psnr']:.3f} | {self.bicubic['ssim']:.4f} | | | | | | |"]
        dense_macs = self.runs["dense"]["macs"] if "dense" in self.runs else None
        for r in self.ordered():
            size = f"{r['bytes']:,}" + (f" ({r['bytes_compact']:,})" if "bytes_compact" in r else "")
            cells = [self.label(r), f"{r['psnr']:.3f}", f"{r['ssim']:.4f}", f"{r['params']:,}", f"{r['macs'] / 1e9:.3f}",
                     f"{r['macs'] / dense_macs:.3f}" if dense_macs else "", size,
                     f"{r['ort_ms']:.1f}" if "ort_ms" in r else "", r.get("frozen", "")]
            lines.append("| " + " | ".join(cells) + " |")
        return lines

    def reading(self) -> str:
        out = []
        for budget in BUDGETS:
            rows = {m: self.runs.get(f"{m}_{budget}") for m in METHODS}
            a, b = rows["sls"], rows["nm"]
            if a and b:
                diff = a["psnr"] - b["psnr"]
                out.append(f"- Budget {budget}: SLS {a['psnr']:.3f} dB vs one-shot N:M {b['psnr']:.3f} dB "
                           f"({diff:+.3f} dB; the paper's direction is SLS ≥ one-shot, +0.01 to +0.24 dB on "
                           f"Urban100 ×4) — {'holds' if diff >= 0 else 'does NOT hold'} here.")
            done = {m: r for m, r in rows.items() if r}
            dense_macs = self.runs["dense"]["macs"] if "dense" in self.runs else None
            under = [f"{METHODS[m]} keeps {done[m]['macs'] / dense_macs:.3f}" for m in ("l1", "assl")
                     if m in done and dense_macs and done[m]["macs"] < 0.8 * budget * dense_macs]
            if under:
                out.append(f"- Budget {budget}: {', '.join(under)} of the dense MACs: with `round_to="
                           f"{self.cfg['round_to']}` every group keeps a multiple of {self.cfg['round_to']} channels, and "
                           f"the next multiple up exceeds the budget, so the channel rows sit below it (the N:M rows "
                           f"use it fully).")
            if len(done) == len(METHODS):
                order = " > ".join(f"{METHODS[m]} {done[m]['psnr']:.2f}"
                                   for m in sorted(done, key=lambda m: done[m]["psnr"], reverse=True))
                out.append(f"- Budget {budget}, measured order (dB): {order}.")
        out.append("- N:M zeros give no speed in ONNX Runtime on CPU (no sparse kernels): the N:M rows' latency is "
                   "the dense latency; their gain on CPU is size (compact bytes). Channel pruning is what speeds up CPUs.")
        out.append("- One seed, 3 test images: differences below ~0.05 dB are noise.")
        return "\n".join(out)

    def section(self) -> str:
        cfg = self.cfg
        model = (f"the shipped trained EDSR {cfg['blocks']} × {cfg['channels']} ×{SCALE} with ASSL's light upsampler "
                 f"(`fxprune.weights.pretrained`, bench_assl.py's dense model)" if cfg["pretrained"]
                 else f"an untrained EDSR {cfg['blocks']} × {cfg['channels']} ×{SCALE} (--quick)")
        setup = [
            run_line(self.date, self.args.jobs, self.clock), "",
            f"- **Model**: {model}.",
            f"- **Data**: the bundled demo images, random LR patches {cfg['patch']}×{cfg['patch']}, batch {cfg['batch']}, "
            f"flips/rotations; evaluation on the 3 held-out test images, whole images, Y-PSNR/SSIM, shave {SCALE}.",
            f"- **Training**: every compressed model gets **{cfg['steps']} steps** in total (SLS: search + fine-tuning; "
            f"one-shot N:M and L1: fine-tuning; ASSL: its whole schedule), L1 loss, Adam lr {cfg['lr']} "
            f"({cfg['lr_schedule']} schedule over each run's steps), seed 0 (the same batches for every method).",
            f"- **SLS**: M={SLS['m']}, reg_weight {SLS['reg_weight']}, anneal every {SLS['anneal_every']} steps, re-rank "
            f"every {SLS['rerank_every']}, score lr {SLS['aux_lr']} (`pruner.param_groups(lr, {SLS['aux_lr']})`), search "
            f"≤ half the steps. One-shot N:M: the largest uniform N of {SLS['m']} within the budget. Channels: "
            f"`Spec(method='l1' or 'assl', macs=budget, round_to={cfg['round_to']})`.",
            f"- **MACs** at a 360×640 input (1280×720 output), N:M layers at N/M; **params** count N:M zeros; "
            f"**bytes**: `fxprune.save` (.pt2), N:M also with `compact_nm=True` in brackets.",
            f"- **Latency**: {self.latency_info or 'pending (measured after the last run)'}.",
            *[f"- {n}" for n in self.notes]]
        over = self.overhead
        overhead = ("pending" if not over else
                    f"One training step (forward, L1 loss, backward, Adam) at batch {cfg['batch']}, LR patch {cfg['patch']}, "
                    f"1 torch thread, median of {over['rounds']} interleaved rounds: traced dense model "
                    f"{over['fxprune.trace ms']:.1f} ms, masked SLS model with its penalty "
                    f"{over['masked (pruner.model) + penalty ms']:.1f} ms: **{over['masked / trace']:.2f}×** (goal ≤ 1.15×, "
                    f"{'met' if over['masked / trace'] <= 1.15 else 'not met'}); one re-rank of every mask "
                    f"{over['rerank ms']:.1f} ms (every {SLS['rerank_every']} steps).")
        plot = ["![learned N/M per layer](sls_n_per_layer.png)", ""] if self.plot_written else []
        return "\n".join([*setup, "", "### Table", "", *self.table(), "", *plot, "### Mask overhead (training step)", "",
                          overhead, "", "### Reading", "", self.reading()])

    def write(self) -> None:
        if not self.args.quick:
            replace_section(self.args.out, HEADING, self.section())

    def latency(self, rounds: int, hw: tuple[int, int]) -> None:
        sessions = {k: ort_session(Path(r["onnx"])) for k, r in self.runs.items()}
        clock = Clock()
        ms = interleaved_median_ms(sessions, {"input": np.random.rand(1, 3, *hw).astype(np.float32)}, rounds)
        for k, v in ms.items():
            self.runs[k]["ort_ms"] = v
        err = max(r["onnx_err"] for r in self.runs.values())
        self.latency_info = (f"ONNX Runtime, 2 intra-op threads without spinning, each model exported with "
                             f"`fxprune.export_onnx(..., dynamic_hw=False)` at input 1×3×{hw[0]}×{hw[1]} (output "
                             f"{hw[0] * SCALE}×{hw[1] * SCALE}; parity checked, max abs error {err:.2g}), median of "
                             f"{rounds} interleaved rounds (timing phase {clock.text()})")
        print("latency ms:", {k: round(v, 1) for k, v in ms.items()}, flush=True)
        self.write()

    def plot(self) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        runs = [r for r in self.ordered() if "n_per_layer" in r]
        if not runs:
            return
        layers = list(runs[0]["n_per_layer"])
        fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
        width = 0.8 / len(runs)
        for i, r in enumerate(runs):
            values = [r["n_per_layer"].get(layer, 1.0) for layer in layers]
            ax.bar([j + i * width for j in range(len(layers))], values, width, label=f"{self.label(r)}: {r['psnr']:.2f} dB")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))], layers, rotation=60, fontsize=7, ha="right")
        ax.set_ylabel("N / M kept")
        ax.set_title(f"Learned (SLS) vs uniform (one-shot) N/M per layer, M={SLS['m']}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(tempfile.gettempdir()) / "sls_n_per_layer_quick.png" if self.args.quick else HERE / "sls_n_per_layer.png"
        fig.savefig(path)
        plt.close(fig)
        print(f"plot: {path}", flush=True)
        self.plot_written = not self.args.quick
        self.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny untrained model, few steps: checks the script works; prints only")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="markdown file for the section (not with --quick)")
    parser.add_argument("--steps", type=int, help="training steps per compressed model (default 1000, quick 24)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, 1 torch thread each (default 2)")
    parser.add_argument("--no-assl", action="store_true", help="skip the ASSL runs")
    args = parser.parse_args()
    cfg = {**(QUICK if args.quick else FULL), **TIMING["quick" if args.quick else "full"]}
    if args.quick:
        cfg["blocks"] = 4   # enough masked MACs beside the dense head and tail for N:M at 1/8 (M=16 fits 32·9 inputs)
    if args.steps is not None:
        cfg["steps"] = args.steps
    torch.set_num_threads(1)   # like the workers: the mask overhead is measured at the training's thread count
    warnings.filterwarnings("ignore")
    results = Results(args, cfg)
    results.overhead = mask_overhead(cfg)
    print("mask overhead:", {k: round(v, 3) for k, v in results.overhead.items()}, flush=True)
    results.write()
    folder = tempfile.mkdtemp(prefix="bench_sls_")
    methods = [m for m in ("sls", "nm", "assl", "l1") if not (args.no_assl and m == "assl")]   # longest runs first
    jobs = [{"method": "dense", "budget": 1.0, "key": "dense"}] + [
        {"method": m, "budget": b, "key": f"{m}_{b}"} for m in methods for b in BUDGETS]
    jobs = [{**job, "cfg": cfg, "folder": folder, "latency_hw": cfg["latency_hw"]} for job in jobs]
    print(f"{len(jobs)} runs ({cfg['steps']} steps per compressed model) on {args.jobs} worker(s); files in {folder}; "
          + ("prints only (--quick)" if args.quick else f"writing {args.out}"), flush=True)
    for run in run_pool(run_one, jobs, args.jobs):
        results.add(run)
    results.latency(cfg["rounds"], cfg["latency_hw"])
    results.plot()
    print(f"{HEADING}\n\n{results.section()}")
    print(f"total {results.clock.text()}")


if __name__ == "__main__":
    main()
