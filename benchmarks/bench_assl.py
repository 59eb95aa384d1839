"""ASSL ablation at small scale: ASSL vs one-shot L1 + fine-tune vs the pruned shape from scratch.

A CPU-sized reproduction of the ASSL paper's ablation (EDSR-baseline, ×2, same MAC budget): a small
dense EDSR (light upsampler, like ASSL's) is trained on the bundled demo images, then pruned to half
its channels (``ratio=0.5``, ``round_to=16``) by

* ASSL (``fxprune.prepare`` + ``train_model(extra_loss=pruner.penalty, after_step=pruner.step)`` +
  ``fxprune.convert``) with ``align="joint"`` and ``align="ssa"``,
* one-shot L1 (``fxprune.compress(Spec(method="l1"))``) + fine-tuning for the same number of steps,
* the pruned architecture trained from scratch for the same number of steps,

and, as a fix a user can apply through ``TrainConfig.lr``, ASSL and L1 + fine-tune again at a higher
learning rate. Reports held-out Y-PSNR/SSIM (whole demo test images, shave = scale), params, MACs at a
1280×720 output, ONNX Runtime latency (2 threads, interleaved, median), the mean |γ| of the
unimportant vs kept gates when ASSL prunes, and the training-step overhead of the gated model.

    python benchmarks/bench_assl.py                 # full run (< 20 min on 2 busy cores), writes RESULTS.md
    python benchmarks/bench_assl.py --quick         # smoke test (~1 min), prints only
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import fxprune
from fxprune.data import pairs_from
from fxprune.metrics import bicubic_baseline, evaluate
from fxprune.models import build
from fxprune.train import TrainConfig, train_model

from bench_analysis import cpu_stall_s
from results_file import replace_section

HEADING = "## ASSL ablation (bench_assl.py)"
HERE = Path(__file__).resolve().parent
THREADS = 2
SCALE = 2
TRAIN_THREADS = 1   # measured on the shared cores: 2 torch threads made a training step 35-45x slower (barrier stalls)
FULL = dict(blocks=8, channels=64, batch=8, patch=32, dense_steps=500, steps=300, lr=2e-4, dense_lr=1e-3,
            fix_lr=2e-3, fix_finetune_steps=25000, latency_hw=(180, 320), rounds=7, overhead_rounds=9)
QUICK = dict(blocks=1, channels=32, batch=2, patch=16, dense_steps=6, steps=6, lr=2e-4, dense_lr=1e-3,
             fix_lr=2e-3, fix_finetune_steps=25000, latency_hw=(32, 48), rounds=2, overhead_rounds=2)
OUT_720P = 360 * 640   # LR pixels of a 1280x720 output at x2


# ---------------------------------------------------------------- helpers
class Stall:
    """Wall time and the share of it during which some task waited for a CPU (Linux PSI)."""

    def __init__(self) -> None:
        self.wall, self.stall = time.perf_counter(), cpu_stall_s()

    def seconds(self) -> float:
        return time.perf_counter() - self.wall

    def share(self) -> float | None:
        if self.stall is None:
            return None
        return (cpu_stall_s() - self.stall) / max(1e-9, self.seconds())

    def text(self) -> str:
        share = self.share()
        return f"{self.seconds() / 60:.1f} min" + ("" if share is None else f", CPU-wait (PSI some) {share:.0%}")


def seed_all(seed: int = 0) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def make_edsr(cfg: dict, channels: int) -> torch.nn.Module:
    return build("edsr", blocks=cfg["blocks"], channels=channels, scale=SCALE, upsampler="light")


def train_config(cfg: dict, lr: float, quick: bool) -> TrainConfig:
    return TrainConfig(task="sr", scale=SCALE, patch_size=cfg["patch"], batch_size=cfg["batch"], lr=lr,
                       device="cpu", seed=0, progress=True)


def gate_stats(pruner) -> dict[str, float]:
    """Mean |γ| of the gates of the unimportant and of the kept channels, over every gated producer."""
    unimportant, kept = [], []
    for group in pruner.groups:
        flags = pruner.unimportant[group.gid]
        for site, units in zip(group.sites, group.unit_of_channel):
            gamma = pruner.model.get_submodule(site.gate).gamma.detach().abs().cpu().numpy()
            drop = flags[units]
            unimportant.append(gamma[drop])
            kept.append(gamma[~drop])
    u, k = np.concatenate(unimportant), np.concatenate(kept)
    return {"gamma_unimportant": float(u.mean()), "gamma_kept": float(k.mean()), "gamma_unimportant_max": float(u.max())}


# ---------------------------------------------------------------- the stages
class Bench:
    def __init__(self, args, cfg: dict):
        self.args, self.cfg = args, cfg
        self.run = Stall()
        self.rows: dict[str, dict] = {}
        self.models: dict[str, torch.nn.Module] = {}
        self.notes: list[str] = []
        self.overhead: dict[str, float] = {}
        self.latency_info = ""
        self.pairs = pairs_from(None, "test", task="sr", scale=SCALE)
        self.x = torch.rand(1, 3, 24, 24)
        self.date = datetime.date.today().isoformat()

    # ----- bookkeeping
    def add(self, key: str, label: str, model: torch.nn.Module | None, scores: dict, **extra) -> None:
        row = {"label": label, "psnr": scores["psnr"], "ssim": scores["ssim"], **extra}
        if model is not None:
            self.models[key] = model
            h, w = self.cfg["latency_hw"]   # MACs are exactly proportional to the pixel count in this all-conv net
            row["params"] = fxprune.count_params(model)
            row["macs"] = fxprune.count_macs(model, (torch.zeros(1, 3, h, w),)) * OUT_720P // (h * w)
        self.rows[key] = row
        print(f"[{self.run.seconds() / 60:5.1f} min] {label}: PSNR {scores['psnr']:.3f} SSIM {scores['ssim']:.4f} "
              + " ".join(f"{k}={v}" for k, v in extra.items() if not isinstance(v, list)), flush=True)
        self.write()

    def eval(self, model) -> dict:
        return evaluate(model, self.pairs, shave=SCALE)

    # ----- 1. dense
    def dense(self) -> torch.nn.Module:
        cfg = self.cfg
        key = json.dumps({k: cfg[k] for k in ("blocks", "channels", "batch", "patch", "dense_steps", "dense_lr")},
                         sort_keys=True)
        cache = self.args.cache or Path(tempfile.gettempdir()) / (
            f"fxprune_bench_assl_dense_{hashlib.sha1(key.encode()).hexdigest()[:10]}.pt")
        seed_all(0)
        model = make_edsr(cfg, cfg["channels"])
        start = time.perf_counter()
        if Path(cache).exists() and not self.args.quick:
            state = torch.load(cache, map_location="cpu")
            model.load_state_dict(state["model"])
            note = f"dense weights loaded from the cache {cache} (trained by an earlier run, {state['seconds']:.0f} s)"
            seconds = state["seconds"]
        else:
            train_model(model, train_config(cfg, cfg["dense_lr"], self.args.quick), cfg["dense_steps"], SCALE,
                        description="dense")   # (its final evaluation is repeated below, also for cached weights)
            seconds = time.perf_counter() - start
            if not self.args.quick:
                torch.save({"model": model.state_dict(), "seconds": seconds, "config": key}, cache)
            note = f"dense model trained in {seconds:.0f} s, cached at {cache}"
        self.notes.append(note)
        model.eval()
        self.add("dense", f"dense {cfg['channels']} ch", model, self.eval(model), steps=cfg["dense_steps"],
                 lr=cfg["dense_lr"], seconds=round(seconds))
        return model

    # ----- 2a. ASSL
    def assl(self, key: str, label: str, dense, lr: float, **spec_fields) -> None:
        cfg = self.cfg
        seed_all(0)
        spec = fxprune.Spec(method="assl", ratio=0.5, round_to=16, steps=cfg["steps"], **spec_fields)
        pruner = fxprune.prepare(copy.deepcopy(dense), spec, (self.x,))
        diag = {"gamma_start": gate_stats(pruner)}

        def after_step() -> None:
            was_masked = pruner.masked
            if pruner.step_count + 1 == pruner.schedule.prune_at:
                diag["gamma_prune"] = gate_stats(pruner)      # the γ the mask is about to cut
            pruner.step()
            if pruner.masked and not was_masked:
                diag["psnr_prune"] = self.eval(pruner.model)["psnr"]  # masked, before any fine-tuning
                pruner.model.train()

        status = lambda: {"phase": pruner.phase, "α": round(pruner.alpha(), 4)}  # noqa: E731
        start = time.perf_counter()
        log = train_model(pruner.model, train_config(cfg, lr, self.args.quick), pruner.schedule.total, SCALE,
                          extra_loss=pruner.penalty, after_step=after_step, status=status, description=key)
        seconds = time.perf_counter() - start
        small = fxprune.convert(pruner)
        scores = self.eval(small)
        s = pruner.schedule
        g = diag.get("gamma_prune", diag["gamma_start"])
        self.add(key, label, small, scores, lr=lr, seconds=round(seconds), steps=s.total,
                 phases=f"{s.ssa}/{s.grow}/{s.hold}/{s.finetune}",
                 reg_share=round(s.prune_at / s.total, 3),
                 gamma0=(diag["gamma_start"]["gamma_unimportant"], diag["gamma_start"]["gamma_kept"]),
                 gamma=(g["gamma_unimportant"], g["gamma_kept"]), psnr_prune=diag.get("psnr_prune"),
                 psnr_masked_end=log.final.get("psnr"))

    # ----- 2b. L1 + fine-tune
    def l1(self, key: str, label: str, dense, lr: float, record_oneshot: bool) -> None:
        cfg = self.cfg
        seed_all(0)
        small = fxprune.compress(dense, fxprune.Spec(method="l1", ratio=0.5, round_to=16), (self.x,))
        if record_oneshot:
            self.add("l1_oneshot", "L1 one-shot, no fine-tuning", small, self.eval(small), steps=0)
        start = time.perf_counter()
        log = train_model(small, train_config(cfg, lr, self.args.quick), cfg["steps"], SCALE, description=key)
        small.eval()
        self.add(key, label, small, log.final, lr=lr, seconds=round(time.perf_counter() - start),
                 steps=cfg["steps"])

    # ----- 2c. scratch
    def scratch(self, key: str, lr: float) -> None:
        cfg = self.cfg
        seed_all(0)
        model = make_edsr(cfg, cfg["channels"] // 2)
        start = time.perf_counter()
        log = train_model(model, train_config(cfg, lr, self.args.quick), cfg["steps"], SCALE, description=key)
        model.eval()
        self.add(key, f"scratch {cfg['channels'] // 2} ch", model, log.final, lr=lr,
                 seconds=round(time.perf_counter() - start), steps=cfg["steps"])

    # ----- 4. gate overhead
    def gate_overhead(self, dense) -> None:
        cfg = self.cfg
        seed_all(0)
        x = torch.rand(cfg["batch"], 3, cfg["patch"], cfg["patch"])
        y = torch.rand(cfg["batch"], 3, cfg["patch"] * SCALE, cfg["patch"] * SCALE)
        pruner = fxprune.prepare(copy.deepcopy(dense), fxprune.Spec(method="assl", ratio=0.5, steps=cfg["steps"]), (x,))
        pruner.step_count = pruner.schedule.grow // 2   # mid-growth: the penalty is on (no pruner.step() is called)
        variants = {
            "nn.Module": (copy.deepcopy(dense).train(), None),
            "fxprune.trace": (fxprune.trace(dense, (x,)).train(), None),
            "gated (pruner.model) + penalty": (pruner.model.train(), pruner.penalty),
        }
        optims = {k: torch.optim.Adam(m.parameters(), lr=1e-5) for k, (m, _) in variants.items()}
        times: dict[str, list[float]] = {k: [] for k in variants}

        def one(k: str) -> float:
            model, extra = variants[k]
            start = time.perf_counter()
            loss = (model(x) - y).abs().mean()
            if extra is not None:
                loss = loss + extra()
            optims[k].zero_grad(set_to_none=True)
            loss.backward()
            optims[k].step()
            return time.perf_counter() - start

        for k in variants:      # warm-up
            one(k)
        order = list(variants)
        for r in range(cfg["overhead_rounds"]):
            for k in (order if r % 2 == 0 else order[::-1]):
                times[k].append(one(k))
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        self.overhead = {**{f"{k} ms": v for k, v in med.items()},
                         "gated / trace": med["gated (pruner.model) + penalty"] / med["fxprune.trace"],
                         "gated / nn.Module": med["gated (pruner.model) + penalty"] / med["nn.Module"],
                         "trace / nn.Module": med["fxprune.trace"] / med["nn.Module"],
                         "rounds": cfg["overhead_rounds"]}
        print("gate overhead:", {k: round(v, 3) for k, v in self.overhead.items()}, flush=True)
        self.write()

    # ----- ONNX latency
    def latency(self) -> None:
        h, w = self.cfg["latency_hw"]
        x = torch.rand(1, 3, h, w)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions, folder = {}, Path(tempfile.mkdtemp(prefix="bench_assl_"))
        for key, model in self.models.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = fxprune.export_onnx(model, folder / f"{key}.onnx", (x,), dynamic_hw=False, check=True)
            sessions[key] = ort.InferenceSession(str(folder / f"{key}.onnx"), options, providers=["CPUExecutionProvider"])
            self.rows[key]["onnx_err"] = report.max_abs_error
        feed = {"input": x.numpy()}
        for s in sessions.values():
            s.run(None, feed)
        ms: dict[str, list[float]] = {k: [] for k in sessions}
        stall = Stall()
        for r in range(self.cfg["rounds"]):
            for k in (list(sessions) if r % 2 == 0 else list(sessions)[::-1]):
                start = time.perf_counter()
                sessions[k].run(None, feed)
                ms[k].append((time.perf_counter() - start) * 1000)
        for k, v in ms.items():
            self.rows[k]["ort_ms"] = statistics.median(v)
        self.latency_info = (f"input 1×3×{h}×{w} (output {h * SCALE}×{w * SCALE}), static shape, median of "
                             f"{self.cfg['rounds']} interleaved rounds (timing phase {stall.text()})")
        print("latency:", {k: round(self.rows[k]["ort_ms"], 1) for k in ms}, flush=True)
        self.write()

    # ---------------------------------------------------------------- output
    def table(self) -> list[str]:
        lines = ["| model | steps | lr | Y-PSNR dB | SSIM | params | GMACs @1280×720 | ORT ms | PSNR right after "
                 "the prune mask | mean \\|γ\\| unimportant / kept at prune (at start) |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        order = ["bicubic", "dense", "assl_joint", "assl_ssa", "l1_oneshot", "l1_ft", "scratch", "assl_joint_fix",
                 "l1_ft_fix", "scratch_fix"]
        dash = "—"
        for key in [k for k in order if k in self.rows]:
            r = self.rows[key]
            steps = str(r.get("steps", dash)) + (f" (ssa/grow/hold/ft {r['phases']})" if "phases" in r else "")
            gamma = (f"{r['gamma'][0]:.3f} / {r['gamma'][1]:.3f} ({r['gamma0'][0]:.3f} / {r['gamma0'][1]:.3f})"
                     if "gamma" in r else dash)
            cells = [r["label"], steps, r.get("lr", dash), f"{r['psnr']:.3f}", f"{r['ssim']:.4f}",
                     f"{r['params'] / 1e3:.1f}K" if "params" in r else dash,
                     f"{r['macs'] / 1e9:.2f}" if "macs" in r else dash,
                     f"{r['ort_ms']:.1f}" if "ort_ms" in r else dash,
                     f"{r['psnr_prune']:.3f}" if r.get("psnr_prune") is not None else dash, gamma]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        return lines

    def setup_text(self) -> str:
        cfg = self.cfg
        share = self.run.share()
        return (
            f"Run {self.date} on {platform.machine()}, {os.cpu_count()} CPUs shared with other engineers' jobs, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {ort.__version__}. "
            f"Whole run so far {self.run.text()}"
            + (" — the machine was oversubscribed by other jobs throughout" if share is not None and share > 0.5 else "")
            + ".\n\n"
            f"- **Model**: EDSR, {cfg['blocks']} blocks × {cfg['channels']} channels, ×{SCALE}, ASSL's light upsampler "
            f"(one conv to 3·s² + PixelShuffle); the paper's ablation uses the 16 × 64 EDSR-baseline.\n"
            f"- **Threads**: training and evaluation in PyTorch use {TRAIN_THREADS} thread: on these oversubscribed "
            f"cores a training step with 2 torch threads took 1.1-1.4 s against 0.03 s with 1 thread (EDSR 4 × 32, "
            f"batch 8, patch 24; OpenMP barrier stalls), so 2 threads would not fit 20 min. ORT uses {THREADS}.\n"
            f"- **Data**: `fxprune.data` demo set, task sr ×{SCALE}: random LR patches {cfg['patch']}×{cfg['patch']} "
            f"(HR {cfg['patch'] * SCALE}) with flips/rotations from the 9 training images, batch {cfg['batch']}; "
            f"evaluation on the 3 held-out test images (chelsea, coffee, camera), whole images, Y-PSNR/SSIM with "
            f"shave = {SCALE}.\n"
            f"- **Training**: `fxprune.train.train_model` (L1 loss, Adam, constant lr, seed 0, the same batches for "
            f"every run). Dense: {cfg['dense_steps']} steps at lr {cfg['dense_lr']}. Every pruned model: "
            f"{cfg['steps']} steps in total at lr {cfg['lr']} (the paper's pruning lr 2e-4); the fix runs at lr "
            f"{cfg['fix_lr']} (ASSL also with `finetune_steps={cfg['fix_finetune_steps']}`).\n"
            f"- **Pruning**: `ratio=0.5, round_to=16` → {cfg['channels'] // 2} of {cfg['channels']} channels in every "
            f"group (trunk and every block's inner conv). ASSL: `fxprune.prepare(dense, Spec(method='assl', ratio=0.5, "
            f"steps={cfg['steps']}, align=...), (x,))`, `train_model(pruner.model, ..., extra_loss=pruner.penalty, "
            f"after_step=pruner.step)`, `fxprune.convert(pruner)`; the schedule's phases keep the paper's shares "
            f"(`steps` rescales them). L1: `fxprune.compress(dense, Spec(method='l1', ratio=0.5), (x,))` then "
            f"fine-tuning. Scratch: `build('edsr', blocks={cfg['blocks']}, channels={cfg['channels'] // 2}, "
            f"upsampler='light')`.\n"
            f"- **MACs** from `fxprune.count_macs` at a {cfg['latency_hw'][0]}×{cfg['latency_hw'][1]} input, scaled "
            f"to a 360×640 input (1280×720 output, as in the paper; exact, every op is per pixel). **ORT**: each model "
            f"exported with `fxprune.export_onnx(..., dynamic_hw=False)` (parity "
            f"checked), {THREADS} intra-op threads without spinning; {self.latency_info or 'pending'}.\n"
            + "".join(f"- {n}\n" for n in self.notes))

    def overhead_text(self) -> str:
        o = self.overhead
        if not o:
            return "(pending)"
        return (f"One training step (forward, L1 loss, backward, Adam) at batch {self.cfg['batch']}, LR patch "
                f"{self.cfg['patch']}, on the dense {self.cfg['channels']}-channel model, median of {o['rounds']} "
                f"interleaved rounds (direction alternating): nn.Module {o['nn.Module ms']:.1f} ms, "
                f"`fxprune.trace` GraphModule {o['fxprune.trace ms']:.1f} ms, gated `pruner.model` with "
                f"`pruner.penalty()` on {o['gated (pruner.model) + penalty ms']:.1f} ms. Gated / traced "
                f"**{o['gated / trace']:.2f}×**, gated / nn.Module **{o['gated / nn.Module']:.2f}×** "
                f"(traced / nn.Module {o['trace / nn.Module']:.2f}×); goal ≤ 1.15×: "
                f"{'met' if o['gated / nn.Module'] <= 1.15 else 'not met'} against the nn.Module, "
                f"{'met' if o['gated / trace'] <= 1.15 else 'not met'} against the traced model. Under this "
                f"contention single medians move by ±10-20%.")

    def reading(self) -> str:
        r = self.rows
        need = ("assl_joint", "l1_ft", "scratch")
        if not all(k in r for k in need):
            return "(pending: the run has not finished every method yet)"
        a, l, s = (r[k]["psnr"] for k in need)
        ranked = sorted(((a, "ASSL"), (l, "L1 + fine-tune"), (s, "scratch")), reverse=True)
        order = " > ".join(name for _, name in ranked)
        text = [f"Measured order at lr {self.cfg['lr']}: **{order}** "
                f"(ASSL joint {a:.2f} dB, L1 + FT {l:.2f} dB, scratch {s:.2f} dB; the paper: ASSL > L1 > scratch)."]
        gu, gk = r["assl_joint"]["gamma"]
        g0u, g0k = r["assl_joint"]["gamma0"]
        text.append(
            f"At the prune point the unimportant gates had only moved from mean |γ| {g0u:.3f} to {gu:.3f} "
            f"(kept: {g0k:.3f} → {gk:.3f}): Adam moves a parameter by about lr per step whatever the "
            f"penalty's size, so {r['assl_joint']['steps']} × {r['assl_joint']['reg_share']:.0%} regularization "
            f"steps at lr {self.cfg['lr']} can move γ by only ~{self.cfg['lr'] * r['assl_joint']['steps'] * r['assl_joint']['reg_share']:.3f} "
            f"(a little more while the penalty's gradient grows), far from 0. The mask therefore cuts live channels (PSNR right after masking "
            f"{r['assl_joint']['psnr_prune']:.2f} dB), as one-shot L1 does ({r['l1_oneshot']['psnr']:.2f} dB without "
            f"fine-tuning), and ASSL then fine-tunes for only {1 - r['assl_joint']['reg_share']:.0%} of the steps that "
            f"L1 + FT fine-tunes for." if r["assl_joint"].get("psnr_prune") is not None and "l1_oneshot" in r else "")
        if "assl_joint_fix" in r and "l1_ft_fix" in r:
            f, lf = r["assl_joint_fix"], r["l1_ft_fix"]
            text.append(
                f"Fix a user can apply (`TrainConfig(lr={self.cfg['fix_lr']})` and `Spec(finetune_steps="
                f"{self.cfg['fix_finetune_steps']})`, which raises the regularization share to {f['reg_share']:.0%}): "
                f"the unimportant gates reach mean |γ| "
                f"{f['gamma'][0]:.3f} (kept {f['gamma'][1]:.3f}) at the prune point, the mask costs "
                f"PSNR right after masking {f['psnr_prune']:.2f} dB, "
                f"and ASSL ends at {f['psnr']:.2f} dB vs L1 + FT at the same lr {lf['psnr']:.2f} dB "
                f"({'ASSL ahead' if f['psnr'] > lf['psnr'] else 'L1 + FT still ahead'} by {abs(f['psnr'] - lf['psnr']):.2f} dB).")
            if "scratch_fix" in r:
                ranked = sorted(((f["psnr"], "ASSL"), (lf["psnr"], "L1 + fine-tune"), (r["scratch_fix"]["psnr"], "scratch")),
                                reverse=True)
                text.append(f"Order at lr {self.cfg['fix_lr']}: **{' > '.join(n for _, n in ranked)}** "
                            f"(scratch {r['scratch_fix']['psnr']:.2f} dB); ASSL now fine-tunes only "
                            f"{1 - f['reg_share']:.0%} of the steps, so most of its remaining gap is fine-tuning time.")
        if "assl_ssa" in r:
            text.append(f"SSA alignment (paper's method) ends at {r['assl_ssa']['psnr']:.2f} dB vs joint "
                        f"{a:.2f} dB at the same lr, although its gates moved as little and its mask cost as much "
                        f"({r['assl_ssa']['psnr_prune']:.2f} dB right after masking): with a 16 dB start and ~120 "
                        f"fine-tuning steps the end point depends strongly on which trunk channels survive (SSA "
                        f"re-picks them from |γ|, joint keeps the L1 choice) and on the trajectory; one seed cannot "
                        f"separate the two.")
        text.append("Single seed, 3 test images, a few hundred steps: differences below ~0.05 dB are noise.")
        return " ".join(t for t in text if t)

    def section(self) -> str:
        parts = [self.setup_text(), "### Table", "", *self.table(), "",
                 f"![PSNR vs MACs](assl_psnr_vs_macs.png)" if self.args.plot_written else "",
                 "", "### Gate overhead (training step)", "", self.overhead_text(), "", "### Reading", "",
                 self.reading()]
        return "\n".join(parts)

    def write(self) -> None:
        if self.args.quick:
            return
        replace_section(self.args.out, HEADING, self.section())

    def plot(self) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
        styles = {"dense": ("k", "s"), "assl_joint": ("tab:blue", "o"), "assl_ssa": ("tab:cyan", "o"),
                  "l1_oneshot": ("tab:gray", "x"), "l1_ft": ("tab:orange", "^"), "scratch": ("tab:red", "v"),
                  "assl_joint_fix": ("tab:blue", "*"), "l1_ft_fix": ("tab:orange", "*"), "scratch_fix": ("tab:red", "*")}
        if "bicubic" in self.rows:
            ax.axhline(self.rows["bicubic"]["psnr"], color="gray", ls="--", lw=1, label=f"bicubic {self.rows['bicubic']['psnr']:.2f} dB")
        pruned = [k for k in styles if k in self.rows and k != "dense"]
        for i, key in enumerate(k for k in styles if k in self.rows):
            r = self.rows[key]
            color, marker = styles[key]
            x = r["macs"] / 1e9
            if key != "dense":   # all pruned models share one MAC count: spread them a little to read the labels
                x *= 1 + 0.025 * (pruned.index(key) - (len(pruned) - 1) / 2)
            lr = f", lr {r['lr']}" if "lr" in r else ""
            ax.scatter([x], [r["psnr"]], color=color, marker=marker, s=90 if marker == "*" else 55,
                       label=f"{r['label']}{lr}: {r['psnr']:.2f} dB", zorder=3)
        on_scale = [r["psnr"] for k, r in self.rows.items() if k != "l1_oneshot"]
        low, high = min(on_scale) - 0.4, max(on_scale) + 0.3
        ax.set_ylim(low, high)
        for key in (k for k in styles if k in self.rows and self.rows[k]["psnr"] < low):   # off-scale: mark at the bottom
            r = self.rows[key]
            ax.annotate(f"{r['label']}: {r['psnr']:.1f} dB (off scale)", (r["macs"] / 1e9, low), xytext=(8, 8),
                        textcoords="offset points", fontsize=7.5, color=styles[key][0],
                        arrowprops=dict(arrowstyle="->", color=styles[key][0]))
        ax.set_xscale("log")
        ax.set_xlabel("GMACs for a 1280×720 output (log; pruned points spread sideways for legibility)")
        ax.set_ylabel("Y-PSNR on the demo test images (dB)")
        ax.set_title(f"ASSL ablation, EDSR {self.cfg['blocks']}×{self.cfg['channels']} ×{SCALE} → "
                     f"{self.cfg['channels'] // 2} ch, {self.cfg['steps']} steps per pruned model")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7.5, loc="center right", framealpha=0.9)
        fig.tight_layout()
        path = HERE / "assl_psnr_vs_macs.png"
        fig.savefig(path if not self.args.quick else Path(tempfile.gettempdir()) / "assl_psnr_vs_macs_quick.png")
        plt.close(fig)
        self.args.plot_written = not self.args.quick
        self.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and steps (~1 min), prints only")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="markdown file to write the section into")
    parser.add_argument("--cache", type=Path, help="where to cache the trained dense model (default: a temp file)")
    parser.add_argument("--steps", type=int, help="steps per pruned model")
    parser.add_argument("--dense-steps", type=int, help="steps of dense pretraining")
    parser.add_argument("--fix-lr", type=float, help="learning rate of the fix runs")
    parser.add_argument("--no-ssa", action="store_true", help="skip the align='ssa' run")
    parser.add_argument("--no-fix", action="store_true", help="skip the higher-lr runs")
    args = parser.parse_args()
    args.plot_written = False
    cfg = dict(QUICK if args.quick else FULL)
    for name in ("steps", "dense_steps", "fix_lr"):
        if getattr(args, name) is not None:
            cfg[name] = getattr(args, name)
    torch.set_num_threads(TRAIN_THREADS)
    warnings.filterwarnings("ignore", category=FutureWarning)
    bench = Bench(args, cfg)
    bench.rows["bicubic"] = {"label": "bicubic", **bicubic_baseline(bench.pairs, SCALE)}
    dense = bench.dense()
    bench.gate_overhead(dense)
    bench.l1("l1_ft", "L1 one-shot + fine-tune", dense, cfg["lr"], record_oneshot=True)
    bench.assl("assl_joint", "ASSL, align joint", dense, cfg["lr"])
    bench.scratch("scratch", cfg["lr"])
    if not args.no_fix:
        bench.assl("assl_joint_fix", "ASSL, align joint (fix: lr, finetune_steps)", dense, cfg["fix_lr"],
                   finetune_steps=cfg["fix_finetune_steps"])
        bench.l1("l1_ft_fix", "L1 one-shot + fine-tune (fix lr)", dense, cfg["fix_lr"], record_oneshot=False)
        bench.scratch("scratch_fix", cfg["fix_lr"])
    if not args.no_ssa:
        bench.assl("assl_ssa", "ASSL, align ssa", dense, cfg["lr"], align="ssa")
    bench.plot()
    p = {k: (r.get("params"), r.get("macs")) for k, r in bench.rows.items() if k not in ("bicubic", "dense")}
    same = len(set(p.values())) == 1
    bench.notes.append(f"Every pruned model and the scratch model have the same architecture: params and MACs "
                       f"{'are identical' if same else 'DIFFER: ' + str(p)} "
                       f"({next(iter(p.values()))[0]} params, {next(iter(p.values()))[1] / 1e9:.3f} GMACs).")
    bench.latency()
    bench.plot()
    print(f"{HEADING}\n\n{bench.section()}")
    print(f"total {bench.run.text()}")


if __name__ == "__main__":
    main()
