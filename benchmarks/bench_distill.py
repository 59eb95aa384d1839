"""Distillation from the original model at equal steps: does the teacher term help, and can a run with no HR images keep up?

The shipped trained EDSR 8 × 64 ×2 (``fxprune.weights.pretrained``, light upsampler) is pruned at
ratio 0.5 (``round_to=16``) by one-shot L1 + fine-tune and by ASSL, each trained for the same T
steps (``train_model``, the batches fixed by the seed) in three ways:

* **HR**: L1 loss to the HR patches of fxprune's bundled demo training images (what the reference
  model was trained on), no teacher;
* **HR + teacher**: the same plus ``teacher_weight`` · L1 to the dense model's output
  (``TrainConfig(teacher=dense)``);
* **teacher only**: ``TrainConfig(targets="teacher")`` on images the reference model never saw
  (generated dead-leaves scenes, seeds 3-5, see ``routing_images.dead_leaves``): the images are the
  inputs (downscaled ×2 first), the dense model's output is the only target — no HR at all.

Y-PSNR (shave 2) on held-out HR images no model here saw in training or selection: the test split
of ``routing_images.py`` (grace_hopper, cell, motorcycle_left, retina, dead leaves seed 2), centre
crops of 256 px; mean ± sample std over 3 seeds. The section of RESULTS.md is rewritten as each run
finishes, with the CPU contention (PSI) of the run so far.

    python benchmarks/bench_distill.py              # full: 19 runs of 300 steps, ~15 min on 2 idle cores
    python benchmarks/bench_distill.py --quick      # check it works (~1-3 min), writes to a temp file
"""
from __future__ import annotations

import copy
import datetime
import statistics
import tempfile
import time
from pathlib import Path

import fxprune
from fxprune.data import make_pairs
from fxprune.distill import teacher_output
from fxprune.images import write_image
from fxprune.metrics import bicubic_baseline, evaluate
from fxprune.train import TrainConfig, teacher_for, train_model

from bench_assl import dense_model, mean_std, worker_start
from bench_common import Clock, run_jobs, run_line, training_config, training_parser
from results_file import replace_section
from routing_images import TEST, dead_leaves, images

HEADING = "## Distillation from the original model (bench_distill.py)"
SCALE, RATIO, TEACHER_WEIGHT = 2, 0.5, 1.0
FULL = dict(blocks=8, channels=64, batch=8, patch=24, steps=300, lr=1e-3, lr_schedule="cosine", seeds=3,
            pretrained=True, round_to=16, crop=256, unseen=384)
QUICK = dict(blocks=1, channels=32, batch=2, patch=16, steps=6, lr=1e-3, lr_schedule="cosine", seeds=2,
             pretrained=False, round_to=8, crop=64, unseen=96)
UNSEEN_SEEDS = (3, 4, 5)   # dead-leaves scenes: seed 1 is routing's validation image, seed 2 a test image
TARGETS = {"hr": "HR", "hr_teacher": f"HR + teacher (w = {TEACHER_WEIGHT})", "teacher": "teacher only, unseen images"}
METHODS = {"l1_ft": "L1 one-shot + fine-tune", "assl": "ASSL"}


def write_folders(cfg: dict, root: Path) -> tuple[str, str]:
    """The held-out HR test crops and the unseen training images, as PNG folders (what a user would have)."""
    test, unseen = root / "test", root / "unseen"
    test.mkdir(parents=True, exist_ok=True)
    unseen.mkdir(exist_ok=True)
    for name, img in images(TEST, crop=cfg["crop"]):
        write_image(test / f"{name}.png", img)
    for seed in UNSEEN_SEEDS:
        write_image(unseen / f"leaves{seed}.png", dead_leaves(cfg["unseen"], seed))
    return str(test), str(unseen)


def config(job: dict) -> TrainConfig:
    cfg, targets = job["cfg"], job["targets"]
    return TrainConfig(task="sr", scale=SCALE, patch_size=cfg["patch"], batch_size=cfg["batch"], lr=cfg["lr"],
                       lr_schedule=cfg["lr_schedule"], device="cpu", seed=job["seed"], progress=False,
                       val_data=job["test"], data=job["unseen"] if targets == "teacher" else None,
                       targets="teacher" if targets == "teacher" else "hr",
                       teacher=targets != "hr", teacher_weight=TEACHER_WEIGHT)


def run_one(job: dict) -> dict:
    """One (method, targets, seed) run in a worker process; returns its held-out scores."""
    cfg = job["cfg"]
    _, dense, x = worker_start(cfg, job["seed"])
    pairs = make_pairs([img for _, img in images(TEST, crop=cfg["crop"])], "sr", scale=SCALE)
    start = time.perf_counter()
    if job["method"] == "dense":
        return {**job, "cfg": None, **evaluate(dense, pairs, shave=SCALE), "seconds": 0.0}
    train = config(job)
    teacher = teacher_for(train, dense)
    if job["method"] == "l1_ft":
        model = fxprune.compress(copy.deepcopy(dense), fxprune.Spec(method="l1", ratio=RATIO, round_to=cfg["round_to"]),
                                 (x,))
        # deterministic: measured once
        one_shot = evaluate(model, pairs, shave=SCALE)["psnr"] if (job["seed"], job["targets"]) == (0, "hr") else None
        log = train_model(model, train, cfg["steps"], SCALE, description=job["method"], teacher=teacher)
    else:
        spec = fxprune.Spec(method="assl", ratio=RATIO, round_to=cfg["round_to"], steps=cfg["steps"])
        pruner = fxprune.prepare(copy.deepcopy(dense), spec, (x,))
        log = train_model(pruner.model, train, pruner.total_steps, SCALE, extra_loss=pruner.penalty,
                    after_step=pruner.step, description=job["method"], teacher=teacher,
                    param_groups=pruner.param_groups(train.lr, train.gate_lr), state=pruner)
        model, one_shot = fxprune.convert(pruner), None
    # the loop's last evaluation is on val_data = the test crops (HR), the trained model itself
    to_dense = [(lr, teacher_output(dense, lr[None])[0]) for lr, _ in pairs]
    return {**job, "cfg": None, **log.final, "fidelity": evaluate(model, to_dense, shave=SCALE)["psnr"],
            "one_shot": one_shot, "seconds": time.perf_counter() - start}


class Results:
    def __init__(self, args, cfg: dict, pairs: list):
        self.args, self.cfg, self.runs = args, cfg, []
        self.clock, self.date = Clock(), datetime.date.today().isoformat()
        self.bicubic = bicubic_baseline(pairs, SCALE)

    def add(self, run: dict) -> None:
        self.runs.append(run)
        print(f"[{self.clock.minutes():5.1f} min] {run['method']} {run['targets']} seed {run['seed']}: "
              f"PSNR {run['psnr']:.3f} ({run['seconds']:.0f} s)", flush=True)
        self.write()

    def psnrs(self, method: str, targets: str) -> list[float]:
        return [r["psnr"] for r in self.runs if r["method"] == method and r["targets"] == targets]

    def table(self) -> list[str]:
        lines = ["| method | targets | Y-PSNR dB (mean ± std) | seeds | PSNR to the dense model's output | "
                 "one-shot before training |", "|---|---|---|---|---|---|",
                 f"| bicubic | — | {self.bicubic['psnr']:.2f} | — | — | — |"]
        lines += [f"| dense {self.cfg['channels']} ch | — | {r['psnr']:.2f} | — | — | — |"
                  for r in self.runs if r["method"] == "dense"]
        for method, label in METHODS.items():
            for targets, text in TARGETS.items():
                rows = [r for r in self.runs if r["method"] == method and r["targets"] == targets]
                if rows:
                    lines.append(f"| {label} | {text} | {mean_std([r['psnr'] for r in rows])} | {len(rows)} | "
                                 f"{mean_std([r['fidelity'] for r in rows])} | "
                                 f"{mean_std([r['one_shot'] for r in rows if r['one_shot'] is not None])} |")
        return lines

    def reading(self) -> str:
        text, helps = [], []
        for method, label in METHODS.items():
            base = self.psnrs(method, "hr")
            if len(base) < 2:
                text.append(f"{label}: pending.")
                continue
            spread = 2 * statistics.stdev(base)
            for targets in ("hr_teacher", "teacher"):
                other = self.psnrs(method, targets)
                if len(other) < 2:
                    continue
                delta = statistics.mean(other) - statistics.mean(base)
                verdict = ("above" if delta > spread else "below" if delta < -spread else "within")
                text.append(f"{label}, {TARGETS[targets]}: {delta:+.2f} dB against HR alone ({verdict} two seed "
                            f"stds of HR alone, {spread:.2f} dB).")
                if targets == "hr_teacher":
                    helps.append(verdict == "above")
        if len(helps) == len(METHODS):
            text.append("Default: " + ("the teacher term helped both methods beyond the seed spread, so it could be "
                                       "on by default." if all(helps) else
                                       "the teacher term did not help both methods beyond the seed spread, so "
                                       "`TrainConfig(teacher=None)` keeps it off with HR targets."))
        return " ".join(text)

    def section(self) -> str:
        cfg = self.cfg
        model = (f"the shipped trained EDSR {cfg['blocks']} × {cfg['channels']} ×{SCALE}, light upsampler "
                 "(`fxprune.weights.pretrained`)" if cfg["pretrained"] else
                 f"an untrained EDSR {cfg['blocks']} × {cfg['channels']} (--quick: figures mean nothing)")
        setup = (run_line(self.date, self.args.jobs, self.clock) + "\n\n"
                 f"- **Model**: {model}, pruned at ratio {RATIO} (`round_to={cfg['round_to']}`); the teacher is the "
                 "same dense model (eval mode, no grad).\n"
                 f"- **Training**: {cfg['steps']} steps per run (ASSL: its whole schedule), L1, Adam lr {cfg['lr']} "
                 f"({cfg['lr_schedule']}), LR patches {cfg['patch']}×{cfg['patch']}, batch {cfg['batch']}, seeds "
                 f"{', '.join(str(s) for s in range(cfg['seeds']))}. HR runs use the bundled demo training images; "
                 f"teacher-only runs use {len(UNSEEN_SEEDS)} dead-leaves images of {cfg['unseen']} px the "
                 "reference never saw (downscaled ×2 into inputs).\n"
                 f"- **Test**: Y-PSNR, shave {SCALE}, on {cfg['crop']}-px centre crops of {', '.join(TEST)} "
                 "(no model here trained on or was chosen by them); also the PSNR of the student's output to the "
                 "dense model's output on them.\n")
        return "\n".join([setup, "### Table", "", *self.table(), "", "### Reading", "", self.reading()])

    def write(self) -> None:
        replace_section(self.args.out, HEADING, self.section())


def main() -> None:
    args = training_parser(__doc__.splitlines()[0], "pruned model").parse_args()
    cfg = training_config(args, QUICK, FULL, "bench_distill")
    root = Path(tempfile.mkdtemp(prefix="bench_distill_"))
    test, unseen = write_folders(cfg, root)
    pairs = make_pairs([img for _, img in images(TEST, crop=cfg["crop"])], "sr", scale=SCALE)
    results = Results(args, cfg, pairs)
    base = {"cfg": cfg, "test": test, "unseen": unseen}
    jobs = [{**base, "method": "dense", "targets": "—", "seed": 0}]
    for seed in range(cfg["seeds"]):          # seed-major: every configuration gets its first seed early
        jobs += [{**base, "method": m, "targets": t, "seed": seed} for m in METHODS for t in TARGETS]
    run_jobs(run_one, jobs, args, cfg["steps"], results.add)
    results.write()
    print(f"{HEADING}\n\n{results.section()}")


if __name__ == "__main__":
    main()
