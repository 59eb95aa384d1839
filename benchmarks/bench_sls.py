"""SLS at small scale: learned N:M vs one-shot N:M at equal MACs (and L1 / ASSL channels beside them).

The ASSL ablation's dense model (``bench_assl.py``'s full setting: the shipped trained EDSR 8 × 64
×2 with ASSL's light upsampler, ``fxprune.weights.pretrained``) is compressed to MAC budgets 1/4,
1/8 and 1/16 of the dense model with M=32 (the paper's M; at M=16 the dense first and last convs
alone keep 0.076 of the MACs, so 1/16 is out of reach), every run with the same number of training
steps T (default 1000, bench_assl's), Adam at bench_assl's lr with its cosine schedule, each
setting over ``--seeds`` seeds (default 3; the seed sets the batches and the SLS run):

* SLS (``Spec(method="sls", budget=b, m=32, ...)``: search, freeze, fine-tune), ``fxprune.prepare``
  + ``train_model`` driven by the pruner's ``penalty`` / ``step`` / ``status`` and
  ``param_groups`` (the scores at their own lr) + ``fxprune.convert``;
* one-shot N:M, **N per layer matched to that seed's SLS result**
  (``Spec(method="nm", budget=<SLS's MAC fraction>, n_per_layer="magnitude")``: the units of least
  squared magnitude per MAC are dropped first, so it lands on SLS's MACs up to one layer's unit),
  fine-tuned for T steps under the frozen mask; this is the equal-cost comparison;
* one-shot N:M at the largest uniform N within the budget (``Spec(method="nm", budget=b)``), as
  before, with its MACs beside it (usually well below the budget: it is not an equal-cost row);
* one seed of L1 channel pruning and of ASSL channels (``macs=0.125``, ``round_to=16``; both land
  at 0.065 of the MACs, the same model for budgets 1/4 and 1/8, and 1/16 is out of their reach),
  fine-tuned / scheduled over T steps (``--no-channels`` skips them).

Rows are compared only at equal cost: two rows whose MAC fractions differ by more than TOLERANCE
(0.005 of the dense MACs) are never compared, and the Reading (``sls_reading.py``, a pure
function of the table) says so. Reports held-out Y-PSNR/SSIM (whole demo test images, shave =
scale; mean ± std over seeds), MAC fraction (mean ± std), params, MACs at a 1280×720 output (N:M
layers counted at N/M), bytes on disk (``.pt2``; N:M models also compact) and ONNX Runtime latency
(2 threads, interleaved rounds, median; static-shape export with parity check — N:M zeros give no
speed on CPU) of each setting's seed-0 model, the learned N per layer (plot ``sls_n_per_layer.png``)
and the training-step overhead of the masks against a plain traced step (goal ≤ 1.15×). The runs
go to ``--jobs`` worker processes with 1 torch thread each; RESULTS.md's section is rewritten as
each run finishes, with the CPU contention (PSI) of the run so far.

    python benchmarks/bench_sls.py             # full: 30 runs, about 20 min on 2 idle cores (--jobs 2), writes RESULTS.md
    python benchmarks/bench_sls.py --quick     # smoke test, tiny untrained model, writes a temp file
"""
from __future__ import annotations

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
from bench_common import (Clock, interleaved_median_ms, ort_session, run_line, run_pool, training_config,
                          training_parser)
from results_file import replace_section
from sls_reading import Row, reading, spread

HEADING = "## SLS: learned N:M vs one-shot N:M, L1 and ASSL (bench_sls.py)"
BUDGETS = (0.25, 0.125, 0.0625)
# Equal cost: rows whose MAC fractions differ by more than this (of the dense MACs) are not compared.
# A matched row lands within one layer's unit of SLS (1/32 of one body conv: 0.002 of this model).
TOLERANCE = 0.005
CHANNEL_BUDGET = 0.125
METHODS = {"sls": "SLS (learned N:M)", "nm_matched": "one-shot N:M, N per layer matched to SLS",
           "nm": "one-shot N:M, uniform N", "l1": "L1 channels + fine-tune", "assl": "ASSL channels"}
# SLS settings for short runs: the scores get their own learning rate (Adam moves a score by about
# that much per step) and λ anneals every 10 steps, so the search reaches the budget within half the
# steps; the rest fine-tunes. Probes of the search alone on the full setting at M=16 (shipped 8 × 64,
# batch 8, patch 24, lr 1e-3 cosine over 1000 steps; chosen by where the search ends, not by PSNR):
# score lr 1e-2 froze 1/4 at step 25 and 1/8 at step 78 (reg_weight 0.02: 35 and 138), before the
# task loss had shaped the scores; 2e-3 froze 1/4 at step 119 and 1/8 at 243 of the 500 search steps,
# no greedy cut. The table says where each run froze and whether it was cut greedily.
SLS = dict(m=32, reg_weight=0.1, anneal_every=10, rerank_every=50, aux_lr=2e-3)
# timing settings beside bench_assl's configurations: ORT input (LR) size and rounds, mask-overhead rounds
TIMING = {"full": dict(latency_hw=(180, 320), rounds=7, overhead_rounds=9),
          "quick": dict(latency_hw=(32, 48), rounds=2, overhead_rounds=2)}


# ---------------------------------------------------------------- one run (in a worker process)
def run_one(job: dict) -> dict:
    """One (method, budget, seed) run: train, convert, score; seed 0 also writes its .pt2 (and
    compact) and .onnx files."""
    cfg, method, budget, seed = job["cfg"], job["method"], job["budget"], job["seed"]
    pairs, dense, x = worker_start(cfg, seed)
    train = dataclasses.replace(train_config(cfg, seed), steps=cfg["steps"])
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
                            after_step=pruner.step, status=pruner.status, description=job["key"],
                            param_groups=pruner.param_groups(cfg["lr"], SLS["aux_lr"]), state=pruner)
            greedy = any("cut greedily" in str(w.message) for w in caught)
            extra["frozen"] = f"{pruner.frozen_at}/{pruner.search_steps}" + (" greedy" if greedy else "")
            extra["sls_fraction"] = pruner.cost_fraction(pruner.frozen)
            model = fxprune.convert(pruner)
        elif method in ("nm", "nm_matched"):
            spec = (fxprune.Spec(method="nm", budget=job["target"], m=SLS["m"], n_per_layer="magnitude")
                    if method == "nm_matched" else fxprune.Spec(method="nm", budget=budget, m=SLS["m"]))
            model = fxprune.compress(copy.deepcopy(dense), spec, (x,), train=train)
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
    written = files(model, job, x, bool(layers)) if seed == 0 else {}
    return {**job, "cfg": None, **measure(model, pairs), **extra, **written, "seconds": seconds}


def follow(run: dict, base: dict) -> list[dict]:
    """After an SLS run: the one-shot N:M run of the same seed, N per layer matched to its MACs
    (``base``: the settings every job carries)."""
    if run["method"] != "sls" or "error" in run:
        return []
    return [{**base, "method": "nm_matched", "budget": run["budget"], "seed": run["seed"],
             "target": run["sls_fraction"], "key": f"nm_matched_{run['budget']}_s{run['seed']}"}]


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
            self.notes.append(f"{METHODS[run['method']]} at budget {run['budget']:g}, seed {run['seed']}: not run "
                              f"({run['error']})")
            print(self.notes[-1], flush=True)
        else:
            self.runs[run["key"]] = run
            print(f"[{self.clock.minutes():5.1f} min] {self.label(run)}, seed {run['seed']}: PSNR {run['psnr']:.3f} "
                  f"SSIM {run['ssim']:.4f}" + (f", froze at {run['frozen']}" if "frozen" in run else "")
                  + (f", MACs {self.fraction(run):.4f}" if self.fraction(run) is not None else "")
                  + f" ({run['seconds']:.0f} s)", flush=True)
        self.write()

    def label(self, run: dict) -> str:
        if run["method"] == "dense":
            return f"dense {self.cfg['channels']} ch"
        return METHODS[run["method"]]

    def dense(self) -> dict | None:
        return next((r for r in self.runs.values() if r["method"] == "dense"), None)

    def fraction(self, run: dict) -> float | None:
        """The run's MACs over the dense model's (None until the dense run is in)."""
        dense = self.dense()
        return run["macs"] / dense["macs"] if dense else None

    def settings(self) -> list[tuple[str, float, list[dict]]]:
        """(method, budget, its runs over seeds), in table order; the dense model first."""
        order = [("dense", 1.0)] + [(m, b) for b in BUDGETS for m in ("sls", "nm_matched", "nm")] + [
            (m, CHANNEL_BUDGET) for m in ("l1", "assl")]
        out = []
        for method, budget in order:
            runs = sorted((r for r in self.runs.values() if r["method"] == method and r["budget"] == budget),
                          key=lambda r: r["seed"])
            if runs:
                out.append((method, budget, runs))
        return out

    def rows(self) -> list[Row]:
        """The compressed settings as :class:`sls_reading.Row` (empty until the dense run is in)."""
        if self.dense() is None:
            return []
        return [Row(method, METHODS[method], budget, [self.fraction(r) for r in runs], [r["psnr"] for r in runs],
                    seeds=[r["seed"] for r in runs]) for method, budget, runs in self.settings() if method != "dense"]

    def table(self) -> list[str]:
        lines = ["| model | budget | seeds | MAC fraction | Y-PSNR dB | SSIM | params | GMACs @1280×720 | "
                 ".pt2 bytes (compact), seed 0 | ORT ms, seed 0 | SLS froze at (step/search steps) |",
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
                 f"| bicubic | | | | {self.bicubic['psnr']:.3f} | {self.bicubic['ssim']:.4f} | | | | | |"]

        def pm(values: list[float], digits: int) -> str:
            return f"{statistics.fmean(values):.{digits}f}" + (f" ± {spread(values):.{digits}f}" if len(values) > 1 else "")

        for method, budget, runs in self.settings():
            first = runs[0] if runs[0]["seed"] == 0 else {}
            size = (f"{first['bytes']:,}" + (f" ({first['bytes_compact']:,})" if "bytes_compact" in first else "")
                    if "bytes" in first else "")
            fractions = [self.fraction(r) for r in runs] if self.dense() else []
            cells = [self.label(runs[0]), "" if method == "dense" else f"{budget:g}", str(len(runs)),
                     pm(fractions, 4) if fractions else "", pm([r["psnr"] for r in runs], 3),
                     pm([r["ssim"] for r in runs], 4), f"{runs[0]['params']:,}",
                     pm([r["macs"] / 1e9 for r in runs], 3), size,
                     f"{first['ort_ms']:.1f}" if "ort_ms" in first else "",
                     ", ".join(r["frozen"] for r in runs if "frozen" in r)]
            lines.append("| " + " | ".join(cells) + " |")
        return lines

    def section(self) -> str:
        cfg = self.cfg
        model = (f"the shipped trained EDSR {cfg['blocks']} × {cfg['channels']} ×{SCALE} with ASSL's light upsampler "
                 f"(`fxprune.weights.pretrained`, bench_assl.py's dense model)" if cfg["pretrained"]
                 else f"an untrained EDSR {cfg['blocks']} × {cfg['channels']} ×{SCALE} (--quick)")
        channels = ("" if self.args.no_channels else
                    f" Channels (seed 0 only): `Spec(method='l1' or 'assl', macs={CHANNEL_BUDGET}, "
                    f"round_to={cfg['round_to']})`.")
        setup = [
            run_line(self.date, self.args.jobs, self.clock), "",
            f"- **Model**: {model}.",
            f"- **Data**: the bundled demo images, random LR patches {cfg['patch']}×{cfg['patch']}, batch {cfg['batch']}, "
            f"flips/rotations; evaluation on the 3 held-out test images, whole images, Y-PSNR/SSIM, shave {SCALE}.",
            f"- **Training**: every compressed model gets **{cfg['steps']} steps** in total (SLS: search + fine-tuning; "
            f"one-shot N:M and L1: fine-tuning; ASSL: its whole schedule), L1 loss, Adam lr {cfg['lr']} "
            f"({cfg['lr_schedule']} schedule over each run's steps); **{cfg['seeds']} seeds** per N:M setting (seed s "
            f"gives every method the same batches), figures are mean ± sample std over the seeds.",
            f"- **SLS**: M={SLS['m']}, reg_weight {SLS['reg_weight']}, anneal every {SLS['anneal_every']} steps, re-rank "
            f"every {SLS['rerank_every']}, score lr {SLS['aux_lr']} (`pruner.param_groups(lr, {SLS['aux_lr']})`), search "
            f"≤ half the steps. **One-shot N:M, matched**: per seed, `Spec(method='nm', budget=<that SLS run's MAC "
            f"fraction>, m={SLS['m']}, n_per_layer='magnitude')` (N per layer, least squared magnitude per MAC "
            f"dropped first; lands on SLS's MACs up to one layer's unit). **One-shot N:M, uniform**: the largest "
            f"uniform N of {SLS['m']} within the budget.{channels}",
            f"- **Equal cost**: two rows are compared only when their MAC fractions differ by at most {TOLERANCE} of "
            f"the dense MACs; a row uses its budget when within {TOLERANCE} of it.",
            f"- **MACs** at a 360×640 input (1280×720 output), N:M layers at N/M; **params** count N:M zeros; "
            f"**bytes**: `fxprune.save` (.pt2), N:M also with `compact_nm=True` in brackets.",
            f"- **Latency**: {self.latency_info or 'pending (measured after the last run)'}.",
            *[f"- {n}" for n in self.notes]]
        over = self.overhead
        overhead = ("pending" if not over else
                    f"One training step (forward, L1 loss, backward, Adam) at batch {cfg['batch']}, LR patch {cfg['patch']}, "
                    f"1 torch thread, median of {over['rounds']} interleaved rounds: traced dense model "
                    f"{over['fxprune.trace ms']:.1f} ms, masked SLS model (M={SLS['m']}) with its penalty "
                    f"{over['masked (pruner.model) + penalty ms']:.1f} ms: **{over['masked / trace']:.2f}×** (goal ≤ 1.15×, "
                    f"{'met' if over['masked / trace'] <= 1.15 else 'not met'}); one re-rank of every mask "
                    f"{over['rerank ms']:.1f} ms (every {SLS['rerank_every']} steps).")
        plot = ["![learned N/M per layer](sls_n_per_layer.png)", ""] if self.plot_written else []
        notes = ["- N:M zeros give no speed in ONNX Runtime on CPU (no sparse kernels): the N:M rows' latency is the "
                 "dense latency; their gain on CPU is size (compact bytes). Channel pruning is what speeds up CPUs.",
                 f"- {cfg['seeds']} seed(s), 3 test images: a difference inside the std of the paired differences "
                 "shows no direction" + (" (one seed: no spread to judge by)." if cfg["seeds"] == 1 else ".")]
        return "\n".join([*setup, "", "### Table", "", *self.table(), "", *plot, "### Mask overhead (training step)", "",
                          overhead, "", "### Reading", "", *reading(self.rows(), TOLERANCE), *notes])

    def write(self) -> None:
        replace_section(self.args.out, HEADING, self.section())

    def latency(self, rounds: int, hw: tuple[int, int]) -> None:
        timed = {k: r for k, r in self.runs.items() if "onnx" in r}
        sessions = {k: ort_session(Path(r["onnx"])) for k, r in timed.items()}
        clock = Clock()
        ms = interleaved_median_ms(sessions, {"input": np.random.rand(1, 3, *hw).astype(np.float32)}, rounds)
        for k, v in ms.items():
            self.runs[k]["ort_ms"] = v
        err = max(r["onnx_err"] for r in timed.values())
        self.latency_info = (f"ONNX Runtime, 2 intra-op threads without spinning, each setting's seed-0 model exported "
                             f"with `fxprune.export_onnx(..., dynamic_hw=False)` at input 1×3×{hw[0]}×{hw[1]} (output "
                             f"{hw[0] * SCALE}×{hw[1] * SCALE}; parity checked, max abs error {err:.2g}), median of "
                             f"{rounds} interleaved rounds (timing phase {clock.text()})")
        print("latency ms:", {k: round(v, 1) for k, v in ms.items()}, flush=True)
        self.write()

    def plot(self) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        budgets = [b for b in BUDGETS if any("n_per_layer" in r and r["budget"] == b and r["seed"] == 0
                                             for r in self.runs.values())]
        if not budgets:
            return
        fig, axes = plt.subplots(len(budgets), 1, figsize=(8, 2.6 * len(budgets) + 0.8), dpi=120, squeeze=False)
        for ax, budget in zip(axes[:, 0], budgets):
            runs = [self.runs[f"{m}_{budget}_s0"] for m in ("sls", "nm_matched", "nm") if f"{m}_{budget}_s0" in self.runs]
            layers = list(runs[0]["n_per_layer"])
            width = 0.8 / len(runs)
            for i, r in enumerate(runs):
                values = [r["n_per_layer"].get(layer, 1.0) for layer in layers]
                share = f", MACs {self.fraction(r):.3f}" if self.fraction(r) is not None else ""
                ax.bar([j + i * width for j in range(len(layers))], values, width,
                       label=f"{self.label(r)}: {r['psnr']:.2f} dB{share}")
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))], layers, rotation=60, fontsize=6, ha="right")
            ax.set_ylabel("N / M kept")
            ax.set_title(f"budget {budget:g} (seed 0)", fontsize=9)
            ax.legend(fontsize=6)
        fig.suptitle(f"Learned (SLS), matched and uniform one-shot N/M per layer, M={SLS['m']}", fontsize=10)
        fig.tight_layout()
        path = Path(tempfile.gettempdir()) / "sls_n_per_layer_quick.png" if self.args.quick else HERE / "sls_n_per_layer.png"
        fig.savefig(path)
        plt.close(fig)
        print(f"plot: {path}", flush=True)
        self.plot_written = not self.args.quick
        self.write()


def main() -> None:
    parser = training_parser(__doc__.splitlines()[0], "setting")
    parser.add_argument("--no-channels", action="store_true", help="skip the L1 and ASSL channel runs")
    args = parser.parse_args()
    cfg = {**training_config(args, QUICK, FULL, "bench_sls"), **TIMING["quick" if args.quick else "full"]}
    if args.quick:
        cfg["blocks"] = 8   # at M=32 the dense head and upsampler must stay under 1/16 - 1/32 of the MACs
    torch.set_num_threads(1)   # like the workers: the mask overhead is measured at the training's thread count
    warnings.filterwarnings("ignore")
    results = Results(args, cfg)
    results.overhead = mask_overhead(cfg)
    print("mask overhead:", {k: round(v, 3) for k, v in results.overhead.items()}, flush=True)
    results.write()
    folder = tempfile.mkdtemp(prefix="bench_sls_")
    base = {"cfg": cfg, "folder": folder, "latency_hw": cfg["latency_hw"]}
    jobs = [{"method": "dense", "budget": 1.0, "seed": 0, "key": "dense"}]
    jobs += [{"method": m, "budget": b, "seed": s, "key": f"{m}_{b}_s{s}"}
             for m in ("sls", "nm") for s in range(cfg["seeds"]) for b in BUDGETS]   # SLS first: matched runs follow it
    if not args.no_channels:
        jobs += [{"method": m, "budget": CHANNEL_BUDGET, "seed": 0, "key": f"{m}_{CHANNEL_BUDGET}_s0"} for m in ("assl", "l1")]
    jobs = [{**job, **base} for job in jobs]
    runs = len(jobs) + len(BUDGETS) * cfg["seeds"]
    print(f"{runs} runs ({cfg['steps']} steps per compressed model; the matched one-shot runs start as their SLS run "
          f"ends) on {args.jobs} worker(s); files in {folder}; writing {args.out}", flush=True)
    for run in run_pool(run_one, jobs, args.jobs, follow=lambda run: follow(run, base)):
        results.add(run)
    results.latency(cfg["rounds"], cfg["latency_hw"])
    results.plot()
    print(f"{HEADING}\n\n{results.section()}")
    print(f"total {results.clock.text()}")


if __name__ == "__main__":
    main()
