"""SLS at small scale: learned N:M vs one-shot N:M + fine-tune vs L1 channels + fine-tune vs ASSL.

The same small setup and dense model as the ASSL ablation (``bench_assl.py``: EDSR, light
upsampler, ×2, trained on the bundled demo images; the dense weights are cached and shared). At
MAC budgets 1/4 and 1/8 of the dense model, every method gets the same number of training steps:

* SLS (``Spec(method="sls", budget=b, m=M)``: search, freeze, fine-tune; the built-in loop driven by
  the pruner's ``penalty`` / ``step`` / ``status`` and ``param_groups``),
* one-shot N:M at the largest uniform N within the budget + fine-tuning under the frozen mask,
* one-shot L1 channel pruning (``macs=b``, ``round_to=16``) + fine-tuning,
* ASSL (``macs=b``, ``round_to=16``) with its schedule scaled to the same steps.

Reports held-out Y-PSNR/SSIM (whole demo test images, shave = scale), params, MACs at a 1280×720
output (N:M layers counted at N/M), bytes on disk (``.pt2``; N:M models also compact), ONNX Runtime
latency (2 threads, interleaved, median — N:M zeros give no speed on CPU), the learned N per layer
(plot) and the training-step overhead of the masks against a plain traced step (goal ≤ 1.15×).

    python benchmarks/bench_sls.py             # full run (~25-30 min on 2 idle cores), writes RESULTS.md
    python benchmarks/bench_sls.py --quick     # smoke test (~2 min), prints only
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

import fxprune
from fxprune.metrics import bicubic_baseline
from fxprune.train import train_model

from bench_assl import FULL, HERE, QUICK, SCALE, TRAIN_THREADS, Bench, seed_all, train_config
from results_file import replace_section

HEADING = "## SLS: learned N:M vs one-shot N:M, L1 and ASSL (bench_sls.py)"
BUDGETS = (0.25, 0.125)
# SLS settings for a few hundred steps: the scores get their own learning rate (Adam moves a score
# by about that much per step) and λ anneals every 10 steps, so the search can reach the budget
# within half the steps; the rest fine-tunes. Probes on this architecture (untrained weights, batch 4,
# patch 24, reg_weight 0.05): score lr 2e-3 needed the greedy cut at both budgets; 5e-3 met 1/4 at
# step 119 of 150; 1e-2 met 1/4 at step 64 and reached 0.138 of 1/8 by step 150 (greedy cut) —
# hence 1e-2 and a doubled reg_weight. The table says where each run froze and whether it was cut.
SLS = dict(m=16, reg_weight=0.1, anneal_every=10, rerank_every=50, aux_lr=1e-2)


class SlsBench(Bench):
    """Reuses bench_assl's dense model (cached), evaluation, MAC counting and ORT latency."""

    def __init__(self, args, cfg: dict):
        super().__init__(args, cfg)
        self.n_per_layer: dict[str, dict[str, float]] = {}
        self.frozen_at: dict[str, str] = {}

    def train_cfg(self, steps: int):
        return dataclasses.replace(train_config(self.cfg, self.cfg["lr"], self.args.quick), steps=steps)

    def sls(self, budget: float) -> None:
        cfg, key = self.cfg, f"sls_{budget}"
        seed_all(0)
        spec = fxprune.Spec(method="sls", budget=budget, m=SLS["m"], steps=cfg["steps"], reg_weight=SLS["reg_weight"],
                            anneal_every=SLS["anneal_every"], rerank_every=SLS["rerank_every"])
        pruner = fxprune.prepare(copy.deepcopy(self.dense_model), spec, (self.x,))
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            log = train_model(pruner.model, self.train_cfg(cfg["steps"]), pruner.total_steps, SCALE,
                              extra_loss=pruner.penalty, after_step=pruner.step, status=pruner.status,
                              description=key, param_groups=pruner.param_groups(cfg["lr"], SLS["aux_lr"]))
        greedy = any("cut greedily" in str(w.message) for w in caught)
        small = fxprune.convert(pruner)
        self.frozen_at[key] = f"step {pruner.frozen_at} of {pruner.search_steps}" + (" (greedy cut)" if greedy else "")
        self.n_per_layer[key] = {p.rsplit(".", 1)[0]: n / pruner.sites[p].m for p, n in pruner.frozen.items()}
        self.add(key, f"SLS M={SLS['m']}, budget {budget}", small, log.final, steps=cfg["steps"],
                 seconds=round(time.perf_counter() - start), frozen=self.frozen_at[key])

    def nm(self, budget: float) -> None:
        cfg, key = self.cfg, f"nm_{budget}"
        seed_all(0)
        spec = fxprune.Spec(method="nm", budget=budget, m=SLS["m"])
        start = time.perf_counter()
        small = fxprune.compress(copy.deepcopy(self.dense_model), spec, (self.x,), train=self.train_cfg(cfg["steps"]))
        layers = small.meta["fxprune"]["nm"]
        self.n_per_layer[key] = {p.rsplit(".", 1)[0]: v["n"] / v["m"] for p, v in layers.items()}
        self.add(key, f"one-shot N:M M={SLS['m']} + fine-tune, budget {budget}", small,
                 small.meta["fxprune"]["train"]["evals"][-1], steps=cfg["steps"], seconds=round(time.perf_counter() - start))

    def channels(self, method: str, budget: float) -> None:
        cfg, key = self.cfg, f"{method}_{budget}"
        seed_all(0)
        round_to = 8 if self.args.quick else 16   # the quick model's 32 channels cannot reach 1/4 at 16
        spec = fxprune.Spec(method=method, macs=budget, round_to=round_to,
                            **({"steps": cfg["steps"]} if method == "assl" else {}))
        start = time.perf_counter()
        small = fxprune.compress(copy.deepcopy(self.dense_model), spec, (self.x,), train=self.train_cfg(cfg["steps"]))
        label = {"l1": "L1 channels + fine-tune", "assl": "ASSL channels"}[method]
        self.add(key, f"{label}, budget {budget}", small, small.meta["fxprune"]["train"]["evals"][-1],
                 steps=cfg["steps"], seconds=round(time.perf_counter() - start))

    def disk(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="bench_sls_"))
        for key, model in self.models.items():
            self.rows[key]["bytes"] = fxprune.save(model, folder / f"{key}.pt2", (self.x,)).stat().st_size
            if fxprune.counting.nm_layers(model):
                path = fxprune.save(model, folder / f"{key}_compact.pt2", (self.x,), compact_nm=True)
                self.rows[key]["bytes_compact"] = path.stat().st_size
        self.write()

    def mask_overhead(self) -> None:
        cfg = self.cfg
        seed_all(0)
        x = torch.rand(cfg["batch"], 3, cfg["patch"], cfg["patch"])
        y = torch.rand(cfg["batch"], 3, cfg["patch"] * SCALE, cfg["patch"] * SCALE)
        pruner = fxprune.prepare(copy.deepcopy(self.dense_model),
                                 fxprune.Spec(method="sls", budget=0.25, m=SLS["m"], steps=cfg["steps"]), (x,))
        variants = {"fxprune.trace": (fxprune.trace(self.dense_model, (x,)).train(), None),
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

        for k in variants:
            one(k)
        for r in range(cfg["overhead_rounds"]):
            for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
                times[k].append(one(k))
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        start = time.perf_counter()
        pruner.rerank()
        self.overhead = {**{f"{k} ms": v for k, v in med.items()},
                         "masked / trace": med["masked (pruner.model) + penalty"] / med["fxprune.trace"],
                         "rerank ms": (time.perf_counter() - start) * 1000, "rounds": cfg["overhead_rounds"]}
        print("mask overhead:", {k: round(v, 3) for k, v in self.overhead.items()}, flush=True)

    # ---------------------------------------------------------------- output
    def table(self) -> list[str]:
        lines = ["| model | Y-PSNR dB | SSIM | params | GMACs @1280×720 | MAC fraction | .pt2 bytes (compact) | "
                 "ORT ms | SLS froze at |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        dense_macs = self.rows.get("dense", {}).get("macs")
        for key, r in self.rows.items():
            if key == "bicubic":
                lines.append(f"| bicubic | {r['psnr']:.3f} | {r['ssim']:.4f} | | | | | | |")
                continue
            frac = f"{r['macs'] / dense_macs:.3f}" if dense_macs and "macs" in r else ""
            size = f"{r['bytes']:,}" if "bytes" in r else ""
            if "bytes_compact" in r:
                size += f" ({r['bytes_compact']:,})"
            ms = f"{r['ort_ms']:.1f}" if "ort_ms" in r else ""
            lines.append(f"| {r['label']} | {r['psnr']:.3f} | {r['ssim']:.4f} | {r.get('params', ''):,} | "
                         f"{r.get('macs', 0) / 1e9:.3f} | {frac} | {size} | {ms} | {r.get('frozen', '')} |")
        return lines

    def reading(self) -> str:
        out = []
        for budget in BUDGETS:
            a, b = self.rows.get(f"sls_{budget}"), self.rows.get(f"nm_{budget}")
            if a and b:
                diff = a["psnr"] - b["psnr"]
                out.append(f"- Budget {budget}: SLS {a['psnr']:.3f} dB vs one-shot N:M {b['psnr']:.3f} dB "
                           f"({diff:+.3f} dB; the paper's direction is SLS ≥ one-shot, +0.01 to +0.24 dB on "
                           f"Urban100 ×4) — {'holds' if diff >= 0 else 'does NOT hold'} here.")
        out.append("- N:M zeros give no speed in ONNX Runtime on CPU (no sparse kernels): the N:M rows' latency is "
                   "the dense latency; their gain on CPU is size (compact bytes). Channel pruning is what speeds up CPUs.")
        return "\n".join(out)

    def section(self) -> str:
        cfg = self.cfg
        setup = (f"EDSR {cfg['blocks']}×{cfg['channels']} ×{SCALE} (light upsampler), the ASSL ablation's dense "
                 f"model; {cfg['steps']} training steps per compressed model (batch {cfg['batch']}, LR patch "
                 f"{cfg['patch']}, lr {cfg['lr']}); SLS M={SLS['m']}, reg_weight {SLS['reg_weight']}, anneal every "
                 f"{SLS['anneal_every']} steps, re-rank every {SLS['rerank_every']}, score lr {SLS['aux_lr']}; "
                 f"run {self.date}, {self.run.text()}.")
        over = ", ".join(f"{k} {v:.3g}" for k, v in self.overhead.items()) if self.overhead else "not measured"
        parts = [setup, "", *self.notes, "", "### Table", "", *self.table(), "",
                 "![learned N/M per layer](sls_n_per_layer.png)" if self.args.plot_written else "", "",
                 "### Mask overhead (training step)", "", over + f" (goal: masked / trace ≤ 1.15)", "",
                 f"Latency: {self.latency_info}", "", "### Reading", "", self.reading()]
        return "\n".join(parts)

    def write(self) -> None:
        if not self.args.quick:
            replace_section(self.args.out, HEADING, self.section())

    def plot(self) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
        keys = list(self.n_per_layer)
        layers = list(next(iter(self.n_per_layer.values()))) if keys else []
        width = 0.8 / max(1, len(keys))
        for i, key in enumerate(keys):
            values = [self.n_per_layer[key].get(layer, 1.0) for layer in layers]
            ax.bar([j + i * width for j in range(len(layers))], values, width, label=self.rows[key]["label"])
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))], layers, rotation=60, fontsize=7, ha="right")
        ax.set_ylabel("N / M kept")
        ax.set_title("Learned (SLS) vs uniform (one-shot) N/M per layer")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = HERE / "sls_n_per_layer.png" if not self.args.quick else Path(tempfile.gettempdir()) / "sls_n_quick.png"
        fig.savefig(path)
        plt.close(fig)
        self.args.plot_written = not self.args.quick
        self.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and steps, prints only")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="markdown file to write the section into")
    parser.add_argument("--cache", type=Path, help="the dense model cache (default: bench_assl's temp file)")
    parser.add_argument("--steps", type=int, help="steps per compressed model")
    parser.add_argument("--no-assl", action="store_true", help="skip the ASSL runs")
    args = parser.parse_args()
    args.plot_written = False
    cfg = dict(QUICK if args.quick else FULL)
    if args.quick:
        cfg.update(channels=32, blocks=2)   # reductions of 32: M=16 fits
    if args.steps is not None:
        cfg["steps"] = args.steps
    torch.set_num_threads(TRAIN_THREADS)
    warnings.filterwarnings("ignore", category=FutureWarning)
    bench = SlsBench(args, cfg)
    bench.rows["bicubic"] = {"label": "bicubic", **bicubic_baseline(bench.pairs, SCALE)}
    bench.dense_model = bench.dense()
    bench.mask_overhead()
    for budget in BUDGETS:
        runs = [("sls", lambda: bench.sls(budget)), ("nm", lambda: bench.nm(budget)),
                ("l1", lambda: bench.channels("l1", budget))]
        if not args.no_assl:
            runs.append(("assl", lambda: bench.channels("assl", budget)))
        for name, run in runs:
            try:
                run()
            except fxprune.SpecError as error:   # e.g. a budget the dense layers alone exceed
                bench.notes.append(f"{name} at budget {budget}: not run ({error})")
                print(bench.notes[-1], flush=True)
    bench.disk()
    bench.latency()
    bench.plot()
    print(f"{HEADING}\n\n{bench.section()}")
    print(f"total {bench.run.text()}")


if __name__ == "__main__":
    main()
