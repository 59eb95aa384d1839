"""``fxprune compress`` and ``fxprune demo``: compress, export, measure and report.

Both end in :func:`finish`, which writes the compressed model (``model.pt2``), its ONNX file,
the coupled-layer page with kept/total per group, ``report.md`` with plots, and prints the
dense-vs-compressed table.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..analysis import analyze
from ..api import compress
from ..counting import count_macs, count_params, nm_layers
from ..data import pairs_from
from ..checkpoint import FILE as CHECKPOINT_FILE, resume_folder
from ..errors import CheckpointError, FxpruneError, SpecError
from ..interrupt import Interrupts, Written
from ..methods import method_for, registered_methods
from ..nm_check import check_nm
from ..metrics import bicubic_baseline, evaluate
from ..checkpoint_files import checkpoint_info
from ..model_io import save, save_safetensors
from ..models import build
from ..onnx import export_onnx
from ..record import keep_of, record_of
from ..report import ModelStats, comparison_table, stage_table, write_report
from ..runtime import open_session
from ..spec import NORM_MODES, Spec, read_spec_file
from ..train import TrainConfig, train_model
from ..viz import visualize
from .args import build_from_args, model_arguments

DENSE_CHECKPOINT = "checkpoint-dense"  # the demo's dense pretraining; its ASSL run uses OUT/checkpoint like compress
NOTHING_KEPT = "nothing was written; run the command again"
SPEC_OVERRIDES = ("method", "ratio", "macs", "latency", "round_to", "norm", "steps", "budget", "m", "n")
NM_SPEED_NOTE = ("N:M sparsity: ONNX Runtime on CPU has no N:M kernels, so the N:M zeros give no speed there "
                 "(any speed-up above comes from removed channels only); what CPU users gain is size "
                 "(model_compact.pt2; the packed graph adds a few kB per layer, so tiny models may not shrink). "
                 "Speed needs 2:4 sparsity (hardware='2:4') on NVIDIA GPUs with TensorRT.")


def load_spec(path: str | None, args: argparse.Namespace) -> tuple[Spec | list[Spec], dict[str, Any]]:
    """The spec from a YAML/JSON file (its optional ``train:`` section returned apart), then flags.

    A file with ``stages:`` (a list of specs, and optionally ``train:``) gives a list of specs,
    run in order by ``compress``; flags do not apply to it."""
    data: dict[str, Any] = {}
    if path:
        data = read_spec_file(path)
    train = data.pop("train", None) or {}
    if not isinstance(train, dict):
        raise SpecError("train", "the train section must be a mapping of TrainConfig fields")
    if "stages" in data:
        stages = data.pop("stages")
        if not isinstance(stages, list) or not stages:
            raise SpecError("stages", "must be a non-empty list of specs")
        if data:
            raise SpecError(next(iter(data)), "a spec file with stages: holds only 'stages' and 'train'")
        return [Spec.from_dict(stage) for stage in stages], train
    for name in SPEC_OVERRIDES:
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    return Spec.from_dict(data), train


def train_config(section: dict[str, Any], args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from the spec file's ``train:`` section, overridden by command-line flags."""
    fields = dict(section)
    for name in ("data", "val_data", "task", "batch_size", "patch_size", "lr", "lr_schedule", "device", "seed",
                 "teacher", "teacher_weight", "targets"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    if getattr(args, "quiet", False):
        fields["progress"] = False
    try:
        return TrainConfig(**fields)
    except TypeError as error:
        raise SpecError("train", f"unknown TrainConfig field: {error}") from error


def latencies(paths: list[Path], x: torch.Tensor, repeats: int = 10) -> list[float]:
    """Median ONNX Runtime latency (ms) of each file, runs interleaved so machine noise hits all alike."""
    sessions = [open_session(p) for p in paths]
    feed = x.numpy()
    times: list[list[float]] = [[] for _ in sessions]
    for session in sessions:
        session.run(None, {session.get_inputs()[0].name: feed})
    for _ in range(repeats):
        for k, session in enumerate(sessions):
            start = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: feed})
            times[k].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]


def finish(
    out: Path, name: str, dense: nn.Module, small: nn.Module, x: torch.Tensor,
    pairs: list | None, shave: int, repeats: int = 10,
) -> ModelStats:
    """Save, export, measure and report; returns the compressed model's figures."""
    out.mkdir(parents=True, exist_ok=True)
    record = record_of(small)
    if record is None:
        raise FxpruneError("the compressed model carries no fxprune record")
    save(small, out / "model.pt2", (x,), report={"groups": record["groups"], "spec": record["spec"]})
    save_safetensors(small, out / "model.safetensors")
    print(f"exporting to ONNX and checking it in ONNX Runtime ({out})")
    dense_report = export_onnx(dense, out / "dense.onnx", (x,))
    small_report = export_onnx(small, out / "model.onnx", (x,))
    dense_ms, small_ms = latencies([out / "dense.onnx", out / "model.onnx"], x, repeats)
    scores = [evaluate(m, pairs, shave=shave) if pairs else {} for m in (dense, small)]
    stats = [
        ModelStats(count_params(m), count_macs(m, (x,)), ms, s.get("psnr"), s.get("ssim"))
        for m, ms, s in zip((dense, small), (dense_ms, small_ms), scores)
    ]
    first = record.chain()[0]  # the stage that ran on the dense model: its groups are the graph's
    graph = analyze(dense, (x,), norm=first.spec.get("norm", "exact"))
    visualize(graph, out / "coupled.html", keep=keep_of(first, graph), title=f"{name}: kept / total per group")
    files = {"model.pt2": "the compressed model (fxprune.load)", "model.onnx": "the compressed model in ONNX",
             "model.safetensors": "its state dict; model.widths.json: the pruned widths per layer",
             "dense.onnx": "the original, for comparison", "coupled.html": "coupled groups with kept/total (open in a browser)",
             "groups.png": "kept units per group"}
    notes = [f"ONNX Runtime parity (max error vs PyTorch): dense {dense_report.max_abs_error:.1e}, "
             f"compressed {small_report.max_abs_error:.1e}",
             f"latency: median of {repeats} interleaved ONNX Runtime runs on a {tuple(x.shape)} input"]
    if nm_layers(small):
        compact = save(small, out / "model_compact.pt2", (x,), compact_nm=True)
        files["model_compact.pt2"] = "the N:M model stored as values + offsets (fxprune.load)"
        check = check_nm(small)
        notes.append(f"N:M check: {len(check.layers)} layers, {'all valid' if check.ok else 'INVALID'}; files: "
                     f"{(out / 'model.pt2').stat().st_size:,} bytes dense, {compact.stat().st_size:,} bytes compact")
        notes.append(NM_SPEED_NOTE)
    budget = small.meta.get("fxprune", {}).get("latency")
    if budget:
        notes.append(f"latency budget {budget['target']:g}: predicted {budget['predicted_ms'] / budget['dense_ms']:.3f} "
                     f"of the dense latency ({budget['threads']} threads), measured {small_ms / dense_ms:.3f} above")
    if pairs:
        notes.append(f"PSNR/SSIM: Y channel, {shave} px shaved, mean over {len(pairs)} held-out whole images")
        if shave > 1:
            floor = bicubic_baseline(pairs, shave)
            notes.append(f"bicubic upscaling on the same images: {floor['psnr']:.2f} dB / {floor['ssim']:.4f}")
    report = write_report(out, record, stats[0], stats[1], tuple(x.shape[-2:]), name, files=files, notes=notes)
    print("\n".join(comparison_table(stats[0], stats[1], tuple(x.shape[-2:]))))
    print("\n".join(outcome_lines(record)))
    if len(record.get("stages") or ()) > 1:
        print("\n".join(stage_table(record["stages"])))
    print("\n".join(notes))
    print(f"\nwrote {report}, {out / 'model.onnx'}, {out / 'model.pt2'}, {out / 'coupled.html'}")
    return stats[1]


def outcome_lines(record: Any) -> list[str]:
    """Per channel stage: the ratio requested and achieved, its MACs, and each request undone."""
    lines = []
    for number, stage in enumerate(record.chain(), 1):
        outcome = stage.outcome
        if not outcome:
            continue
        requested = outcome.get("requested_ratio")
        asked = f"requested ratio {requested:.3f}, " if requested is not None else ""
        macs = f"; MACs {stage.cost.macs / stage.cost.input_macs:.3f} of its input" if stage.cost and stage.cost.input_macs else ""
        lines.append(f"stage {number} ({stage.method}): {asked}achieved {outcome['achieved_ratio']:.3f} of the "
                     f"prunable units{macs}")
        lines += [f"  not done: {why}" for why in outcome.get("undone") or ()]
    return lines


def _needs_training(spec: Spec | list[Spec], args: argparse.Namespace, section: dict[str, Any]) -> bool:
    if isinstance(spec, list):
        return any(_needs_training(stage, args, section) for stage in spec)
    return (method_for(spec).trains or bool(section.get("steps"))
            or bool(getattr(args, "finetune_steps", None)))


def kept_files(out: Path, checkpoints: list[Path]) -> Callable[[], str]:
    """What an interrupted command leaves in ``out`` (for :class:`~fxprune.interrupt.Interrupts`):
    the results and checkpoints this run wrote, and how to continue from a checkpoint."""
    written = Written([*(folder / CHECKPOINT_FILE for folder in checkpoints),
                       *(out / name for name in ("model.pt2", "model.onnx", "report.md"))])

    def kept() -> str:
        files = written()
        if not files:
            return NOTHING_KEPT
        text = ", ".join(str(f) for f in files)
        if any(f.name == CHECKPOINT_FILE for f in files):
            text += f"; add --resume {out} to continue from the training checkpoint"
        return text
    return kept


def cmd_compress(args: argparse.Namespace) -> int:
    out = Path(args.output)
    with Interrupts("building and capturing the model", kept=NOTHING_KEPT) as guard:
        model, x = build_from_args(args)
        spec, section = load_spec(args.spec, args)
        if args.finetune_steps is not None:
            section["steps"] = args.finetune_steps
        if args.resume is not None:
            section["resume"] = str(resume_folder(args.resume))
        if args.checkpoint_every is not None:
            section["checkpoint_every"] = args.checkpoint_every
        # always set: SIGINT/SIGTERM during training then leaves a checkpoint, with no flag needed
        section.setdefault("checkpoint_dir", str(out / "checkpoint"))
        train = train_config(section, args) if _needs_training(spec, args, section) else None
        kept = kept_files(out, [f for f in [train and train.checkpoint_folder()] if f is not None])
        guard.now("compressing (analysis, pruning, conversion)", kept=kept)
        small = compress(model, spec, (x,), train=train)
        source = checkpoint_info(model)
        if source is not None:  # a .pth/.safetensors file: its architecture, scale, channels, range
            small.meta["fxprune"]["source"] = source.to_dict()
        guard.now("exporting, measuring and reporting")
        scale = small(x).shape[-2] // x.shape[-2]
        task = train.task if train else ("sr" if scale > 1 else "denoise")
        pairs = None
        if args.val_data or (train is not None and train.data is None):
            pairs = pairs_from(args.val_data, "test", task=task, scale=scale)
        finish(out, args.model, model, small, x, pairs, shave=scale if task == "sr" else 0)
    return 0


def demo_resume(folder: str | None, out: Path) -> tuple[str | None, str | None]:
    """The demo's checkpoints to resume from (dense pretraining, ASSL), from ``--resume DIR``: each
    phase that has a checkpoint there continues from it, the others run from their start."""
    if folder is None:
        return None, None
    dense = Path(folder) / DENSE_CHECKPOINT
    try:
        assl: str | None = str(resume_folder(folder))
    except CheckpointError:
        if not (dense / CHECKPOINT_FILE).is_file():
            raise
        assl = None
    return (str(dense) if (dense / CHECKPOINT_FILE).is_file() else None), assl


def cmd_demo(args: argparse.Namespace) -> int:
    """Compress the shipped trained EDSR with ASSL on the bundled images, export and compare."""
    out = Path(args.output)
    checkpoints = [out / DENSE_CHECKPOINT, out / "checkpoint"]
    with Interrupts("building the model", kept=kept_files(out, checkpoints)) as guard:
        return _demo(args, out, checkpoints, guard)


def _demo(args: argparse.Namespace, out: Path, checkpoints: list[Path], guard: Interrupts) -> int:
    from ..weights import NoPretrainedWeightsError, pretrained

    resume_dense, resume_assl = demo_resume(args.resume, out)
    torch.manual_seed(args.seed)
    x = torch.rand(1, 3, 48, 48)
    config = TrainConfig(steps=args.steps, batch_size=8, patch_size=32, lr=1e-3, seed=args.seed, progress=not args.quiet,
                         checkpoint_dir=str(checkpoints[1]), resume=resume_assl)
    if args.pretrain_steps:
        model = build("edsr", blocks=args.blocks, channels=args.channels, scale=2)
        print(f"\n1/3 training the dense EDSR ({args.pretrain_steps} steps on the bundled images)")
        guard.now("training the dense model")
        dense = dataclasses.replace(config, checkpoint_dir=str(checkpoints[0]), resume=resume_dense)
        train_model(model, dense, args.pretrain_steps, scale=2, description="dense")
        origin = f"trained here for {args.pretrain_steps} steps"
    else:
        try:
            model = pretrained("edsr", blocks=args.blocks, channels=args.channels, scale=2)
        except NoPretrainedWeightsError as error:
            raise SpecError("--blocks/--channels", f"{error}; or pass --pretrain-steps N to train one here") from error
        origin = "the shipped reference model (benchmarks/train_reference.py)"
        print(f"\n1/3 dense EDSR {args.blocks}x{args.channels}: {origin}")
    model.eval()
    guard.now("analyzing the dense model")
    graph = analyze(model, (x,))
    print(graph.summary())
    out.mkdir(parents=True, exist_ok=True)
    visualize(graph, out / "coupled_dense.html", title="EDSR: coupled channel groups")
    print(f"\n2/3 compressing with ASSL (ratio {args.ratio}, {args.steps} steps)")
    guard.now("compressing with ASSL")
    small = compress(model, Spec(method="assl", ratio=args.ratio, steps=args.steps), (x,), train=config)
    print("\n3/3 exporting, measuring and reporting")
    guard.now("exporting, measuring and reporting")
    x_eval = torch.rand(1, 3, 128, 128)
    finish(out, "edsr (demo)", model, small, x_eval, pairs_from(None, "test", task="sr", scale=2), shave=2)
    print(f"(dense model: {origin}; the compressed one trained {args.steps} ASSL steps from it)")
    return 0


def _training_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training (methods that train, or --finetune-steps)")
    g.add_argument("--data", help="folder of HR training images (default: the bundled demo images)")
    g.add_argument("--val-data", help="folder of HR images for PSNR/SSIM (default: the demo test images)")
    g.add_argument("--task", choices=("sr", "denoise", "deblur"), help="degradation to learn (default sr)")
    g.add_argument("--steps", type=int, help="length of the training schedule (Spec.steps)")
    g.add_argument("--finetune-steps", type=int, help="for one-shot methods: fine-tune this many steps")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--patch-size", type=int, help="LR patch size")
    g.add_argument("--lr", type=float, help="Adam learning rate")
    g.add_argument("--lr-schedule", choices=("constant", "cosine"),
                   help="constant (default) or cosine decay to 0 over the run")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    g.add_argument("--teacher", action=argparse.BooleanOptionalAction, default=None,
                   help="also pull the student to the original model's output (distillation; default off, on "
                        "with --targets teacher)")
    g.add_argument("--teacher-weight", type=float, help="weight of the teacher term (default 1.0)")
    g.add_argument("--targets", choices=("hr", "teacher"),
                   help="hr (default): --data holds HR images; teacher: --data is any folder of images, the "
                        "original model's output is the target (no HR needed)")


def add_commands(sub: Any) -> None:
    """Register ``compress`` and ``demo`` on the CLI's subparsers."""
    p = sub.add_parser("compress", help="compress a model as a spec says; write model, ONNX and report.md",
                       description="Compress MODEL (training when the method needs it) and write OUT/model.pt2, "
                       "OUT/model.onnx, OUT/report.md and OUT/coupled.html.")
    model_arguments(p)
    p.add_argument("--spec", help="YAML/JSON spec file (Spec fields, plus an optional 'train:' section)")
    p.add_argument("--method", choices=registered_methods(), help="overrides the spec's method")
    p.add_argument("--ratio", type=float, help="overrides the spec's ratio")
    p.add_argument("--macs", type=float, help="overrides the spec's MAC budget")
    p.add_argument("--latency", type=float, help="keep at most this fraction of the dense model's ONNX Runtime latency "
                   "measured here at --input-size (threads: $FXPRUNE_LATENCY_THREADS, default one per CPU)")
    p.add_argument("--round-to", type=int, dest="round_to", help="overrides the spec's round_to")
    p.add_argument("--norm", choices=NORM_MODES, help="channels read by LayerNorm / mean / softmax: 'exact' prunes them "
                   "with exact statistics, 'renormalize' prunes them with plain statistics over the kept channels "
                   "(fine-tune afterwards), 'fixed' keeps them; 'auto' (default): renormalize when --steps fine-tunes "
                   "an l1 result, exact otherwise")
    p.add_argument("--budget", type=float, help="N:M methods: keep at most this fraction of the dense MACs")
    p.add_argument("--m", type=int, help="N:M methods: the group size M")
    p.add_argument("--n", type=int, help="method nm: keep the N largest of every group")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    _training_flags(p)
    g = p.add_argument_group("crash-safe runs (Ctrl-C or SIGTERM during training writes OUT/checkpoint/ and exits 130/143)")
    g.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="also write the training state to OUT/checkpoint/ every N steps (it is always written "
                   "at the end and on SIGINT/SIGTERM)")
    g.add_argument("--resume", metavar="DIR", help="continue an interrupted run: DIR is its output folder or the "
                   "folder holding its checkpoint.pt (same model, spec and flags)")
    p.set_defaults(run=cmd_compress)

    p = sub.add_parser("demo", help="the whole pipeline on the shipped trained EDSR and the bundled images (~3 min on 2 cores)")
    p.add_argument("-o", "--output", default="fxprune-demo", metavar="DIR", help="output folder (default fxprune-demo)")
    p.add_argument("--blocks", type=int, default=4, help="EDSR residual blocks (default 4)")
    p.add_argument("--channels", type=int, default=32, help="EDSR channels (default 32)")
    p.add_argument("--pretrain-steps", type=int, default=0,
                   help="train the dense EDSR here for this many steps instead of loading the shipped weights "
                   "(needed for sizes without shipped weights; default 0)")
    p.add_argument("--steps", type=int, default=600, help="ASSL schedule steps (default 600)")
    p.add_argument("--ratio", type=float, default=0.5, help="fraction of channels ASSL removes (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", metavar="DIR", help="continue an interrupted demo from its output folder "
                   "(Ctrl-C or SIGTERM writes the training state there and exits 130/143)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_demo)
