"""The built-in training loop: L1 loss, Adam, random patches, progress and evaluation.

``compress(..., train=TrainConfig(...))`` uses it to drive a method's pruner (its ``penalty()``,
``step()`` and ``status()``) or to fine-tune a one-shot result; :func:`train_model` is also usable on
its own (e.g. to train a dense baseline). It is method-neutral: it logs what ``status()`` reports.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from .checkpoint import FORMAT as CHECKPOINT_FORMAT, StopOnSignal, TrainingInterrupted, read_checkpoint, write_checkpoint
from .data import InputPatches, RestorationDataset, pairs_from
from .distill import distill_loss, frozen_teacher, teacher_fingerprint, teacher_output
from .errors import CheckpointError, SpecError
from .eval_sizes import check_eval_sizes
from .metrics import evaluate

TASKS = ("sr", "denoise", "deblur")
LR_SCHEDULES = ("constant", "cosine")
TARGETS = ("hr", "teacher")


@dataclass(frozen=True)
class TrainConfig:
    """How the built-in loop trains.

    Args:
        data: a folder of HR images, or None for the bundled demo training images.
        val_data: a folder of HR images to report PSNR/SSIM on; None uses the demo test images
            when ``data`` is None and skips evaluation otherwise.
        task: ``"sr"``, ``"denoise"`` or ``"deblur"`` (the degradation applied to the HR images).
        scale: SR factor; None infers it from the model's output size.
        steps: total optimizer steps. For a trained method it sets the schedule's length when
            the spec has no ``steps``; for a one-shot method it is the fine-tuning length (0: no
            fine-tuning).
        patch_size: LR patch size; batch_size, lr: Adam's batch and learning rate.
        gate_lr: a learning rate for a method's own parameters alone (None: ``lr``): gates,
            scores (``pruner.param_groups(lr, gate_lr)``). With Adam a gate moves
            about this much per step, so short schedules need it high enough to bring the
            unimportant gates near 0.
        lr_schedule: ``"constant"`` (default) or ``"cosine"``: every Adam group's learning rate
            falls from its own value to 0 along half a cosine over the run's steps, which settles
            the end point of short fine-tuning runs (a constant rate leaves it noisy).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"`` ...
        seed: seeds torch, the patch sampler and the noise, so runs repeat exactly on CPU.
        eval_every: evaluate every this many steps (0: only at the end).
        progress: show a tqdm bar with the loss, the method's ``status()`` figures and PSNR.
        checkpoint_dir: a folder for ``checkpoint.pt``: the full training state (model or the
            method's pruner, optimizer, step, RNG states, the patch sampler's position) written atomically
            every ``checkpoint_every`` steps and when SIGINT/SIGTERM arrives (the loop then
            finishes its step, writes, and raises :class:`~fxprune.checkpoint.TrainingInterrupted`).
        checkpoint_every: steps between checkpoints (0: only on SIGINT/SIGTERM).
        resume: a folder holding ``checkpoint.pt`` from an interrupted run with the same model,
            spec and config: training continues from it (and keeps checkpointing there unless
            ``checkpoint_dir`` says otherwise). On CPU the result equals an uninterrupted run.
        teacher: a model whose output the student is also pulled to (distillation):
            ``loss = L1(student, HR) + teacher_weight · L1(student, teacher(LR))``. ``True``: the
            model the run started from (``compress`` knows it; it is copied first, so training
            cannot move it); a module: that model; ``False``: none. ``None`` (default): none with
            HR targets, the original model with ``targets="teacher"``. Distillation is off by
            default: ``benchmarks/bench_distill.py`` measures at equal steps whether it helps, and
            it stays off unless it does beyond the seed spread (not yet measured at full size). The teacher runs in eval mode under
            ``no_grad`` on the training device; checkpoints keep only a fingerprint of it, and a
            resumed run gets it back from the same arguments.
        teacher_weight: ``w`` above (>= 0). Ignored with ``targets="teacher"``.
        targets: ``"hr"`` (default): ``data`` holds HR images, degraded into inputs.
            ``"teacher"``: ``data`` is any folder of images with no ground truth; they are the
            inputs (for SR downscaled by the scale first where large enough, see
            :class:`fxprune.data.InputPatches`) and the teacher's output is the only target.
            Evaluation uses ``val_data`` (HR) when given (or the demo test images when ``data``
            is None); otherwise it reports the student's fidelity to the teacher on crops of
            ``data`` as ``teacher_psnr`` / ``teacher_ssim`` (not a PSNR against ground truth).

    >>> TrainConfig(steps=100, batch_size=4).device_obj().type in ("cpu", "cuda")
    True
    """

    data: str | None = None
    val_data: str | None = None
    task: str = "sr"
    scale: int | None = None
    steps: int | None = None
    patch_size: int = 48
    batch_size: int = 16
    lr: float = 2e-4
    gate_lr: float | None = None
    lr_schedule: str = "constant"
    device: str = "auto"
    seed: int = 0
    eval_every: int = 0
    progress: bool = True
    sigma: float | None = None
    workers: int = 0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    resume: str | None = None
    teacher: nn.Module | bool | None = None
    teacher_weight: float = 1.0
    targets: str = "hr"

    def __post_init__(self) -> None:
        if self.targets not in TARGETS:
            raise SpecError("train.targets", f"unknown targets {self.targets!r}; choose 'hr' (HR images in data) or "
                            "'teacher' (any images; the teacher's output is the target)", value=self.targets)
        if self.teacher is not None and not isinstance(self.teacher, (bool, nn.Module)):
            raise SpecError("train.teacher", f"must be True, False, None or an nn.Module, got "
                            f"{type(self.teacher).__name__}", value=self.teacher)
        if self.targets == "teacher" and self.teacher is False:
            raise SpecError("train.teacher", "targets='teacher' trains on the teacher's output: leave teacher on "
                            "(None/True) or give a model, or use targets='hr'", value=False)
        weight = self.teacher_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise SpecError("train.teacher_weight", f"must be a number >= 0, got {weight!r}", value=weight)
        if self.task not in TASKS:
            raise SpecError("train.task", f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}", value=self.task)
        if self.lr_schedule not in LR_SCHEDULES:
            raise SpecError("train.lr_schedule", f"unknown schedule {self.lr_schedule!r}; choose one of "
                                                 f"{', '.join(LR_SCHEDULES)}", value=self.lr_schedule)
        for name in ("patch_size", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"train.{name}", f"must be a positive integer, got {value!r}", value=value)
        for name in ("steps", "scale", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise SpecError(f"train.{name}", f"must be a non-negative integer or None, got {value!r}", value=value)
        for name in ("lr", "gate_lr"):
            value = getattr(self, name)
            if value is None and name == "gate_lr":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise SpecError(f"train.{name}", f"must be a positive number, got {value!r}", value=value)
        for name in ("data", "val_data", "resume"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_dir():
                raise SpecError(f"train.{name}", f"no folder at {value}", value=value)
        if self.checkpoint_every and self.checkpoint_folder() is None:
            raise SpecError("train.checkpoint_every", "needs train.checkpoint_dir (the folder to write checkpoint.pt to)",
                            value=self.checkpoint_every)

    def checkpoint_folder(self) -> Path | None:
        """Where checkpoints go: ``checkpoint_dir``, else the ``resume`` folder, else None."""
        folder = self.checkpoint_dir if self.checkpoint_dir is not None else self.resume
        return None if folder is None else Path(folder)

    def device_obj(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class TrainLog:
    """What a run did: per logged step the loss and every numeric figure of the method's
    ``status()`` (``status``: name -> one value per logged step, NaN where that step had none),
    and the evaluations. It knows no method: it keeps whatever the status reports.

    >>> log = TrainLog()
    >>> log.record(1, 0.5, {"phase": "grow", "rate": 0.1})
    >>> log.record(2, 0.4, {"phase": "grow", "rate": 0.2, "cost": "1.5e-03"})
    >>> log.steps, log.status["rate"], log.status["cost"][1]
    ([1, 2], [0.1, 0.2], 0.0015)
    """

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    status: dict[str, list[float]] = field(default_factory=dict)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        return self.evals[-1][1] if self.evals else {}

    def record(self, step: int, loss: float, status: Mapping[str, Any] | None = None) -> None:
        """Log ``step``: its loss and the numeric entries of ``status`` (numbers, and strings that
        read as numbers, e.g. a progress bar's ``"1.40e-03"``; others such as a phase are skipped)."""
        figures = {name: value for name, value in ((n, _number(v)) for n, v in (status or {}).items())
                   if value is not None}
        for name in figures.keys() - self.status.keys():
            self.status[name] = [math.nan] * len(self.steps)
        self.steps.append(step)
        self.loss.append(float(loss))
        for name, series in self.status.items():
            series.append(figures.get(name, math.nan))

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "loss": self.loss, "status": self.status,
                "evals": [{"step": step, **scores} for step, scores in self.evals]}

    def load(self, saved: Mapping[str, Any]) -> None:
        """Take over a saved :meth:`as_dict` (a checkpoint's log) in place."""
        self.steps[:], self.loss[:] = saved["steps"], saved["loss"]
        self.status.clear()
        self.status.update({str(name): list(series) for name, series in dict(saved.get("status") or {}).items()})
        self.evals[:] = [(e.pop("step"), e) for e in (dict(e) for e in saved["evals"])]


def _number(value: Any) -> float | None:
    """``value`` as a float, or None if it is not a number (bools are not).

    >>> _number(3), _number("2.5e-3"), _number("grow"), _number(True)
    (3.0, 0.0025, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def infer_scale(model: nn.Module, example_inputs: Any) -> int:
    """Output height over input height of one forward (1 for denoising/deblurring nets)."""
    x = example_inputs[0] if isinstance(example_inputs, (tuple, list)) else example_inputs
    with torch.no_grad():
        y = model(x)
    if y.shape[-2] % x.shape[-2]:
        raise ValueError(f"the output height {y.shape[-2]} is not a multiple of the input height {x.shape[-2]}")
    return y.shape[-2] // x.shape[-2]


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """One Adam group, or two when ``gate_lr`` gives the modules a graph applies to its weights
    (gates, N:M masks) a learning rate of their own. A method's run passes
    ``pruner.param_groups(lr, aux_lr)`` to :func:`train_model` instead."""
    aux = _weight_module_parameters(model) if config.gate_lr is not None else []
    if not aux:
        return [{"params": list(model.parameters())}]
    chosen = {id(p) for p in aux}
    rest = [p for p in model.parameters() if id(p) not in chosen]
    return [{"params": rest}, {"params": aux, "lr": config.gate_lr}]


def _weight_module_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the modules a GraphModule calls on a parameter read (``get_attr``)."""
    if not isinstance(model, fx.GraphModule):
        return []
    found: dict[int, nn.Parameter] = {}
    for node in model.graph.nodes:
        source = node.args[0] if node.op == "call_module" and node.args else None
        if isinstance(source, fx.Node) and source.op == "get_attr":
            found.update((id(p), p) for p in model.get_submodule(str(node.target)).parameters())
    return list(found.values())


def check_task(config: TrainConfig, scale: int) -> None:
    if (config.task == "sr") != (scale > 1):
        raise SpecError("train.task", f"task {config.task!r} does not fit a model with scale {scale}: "
                        "use 'sr' for upscaling models, 'denoise' or 'deblur' for same-size ones", value=config.task)


class StepBatches(Sampler[list[int]]):
    """Batch ``s`` is ``perm[s·B:(s+1)·B]`` of one seeded permutation, from batch ``start`` on, so a
    resumed run draws exactly the batches the interrupted one would have drawn.

    >>> list(StepBatches(6, 2, seed=0, start=1)) == list(StepBatches(6, 2, seed=0))[1:]
    True
    """

    def __init__(self, length: int, batch_size: int, seed: int, start: int = 0):
        self.order = np.random.default_rng(seed).permutation(length)
        self.batch_size, self.start = batch_size, start

    def __len__(self) -> int:
        return max(0, len(self.order) // self.batch_size - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for s in range(self.start, len(self.order) // self.batch_size):
            yield self.order[s * self.batch_size:(s + 1) * self.batch_size].tolist()


def teacher_for(config: TrainConfig, original: nn.Module | None) -> nn.Module | None:
    """The teacher ``config`` asks for, as a frozen copy (:func:`fxprune.distill.frozen_teacher`),
    or None; ``original`` is the model the run started from (None when not known).

    >>> teacher_for(TrainConfig(), nn.Conv2d(3, 3, 1)) is None
    True
    >>> teacher_for(TrainConfig(targets="teacher"), nn.Conv2d(3, 3, 1)).training
    False
    """
    wanted = config.teacher
    if isinstance(wanted, nn.Module):
        return frozen_teacher(wanted)
    if wanted is False or (wanted is None and config.targets == "hr"):
        return None
    if original is None:
        raise SpecError("train.teacher", "no original model to teach with here: pass TrainConfig(teacher=model) "
                        "(or train_model(..., teacher=model))", value=wanted)
    return frozen_teacher(original)


def loader_for(config: TrainConfig, scale: int, steps: int, start: int = 0) -> DataLoader:
    """Batches for steps ``start+1 .. steps`` (every sample is a function of the seed and its index):
    ``(lr, hr)`` pairs, or ``(lr,)`` inputs alone with ``targets="teacher"``."""
    kind = InputPatches if config.targets == "teacher" else RestorationDataset
    dataset = kind(
        config.data, task=config.task, scale=scale if config.task == "sr" else 2,
        patch_size=config.patch_size, length=max(1, steps) * config.batch_size, seed=config.seed, sigma=config.sigma,
    )
    batches = StepBatches(len(dataset), config.batch_size, config.seed, start)
    # its own generator: iter() draws a base seed, which from torch's global RNG would shift a
    # resumed run's random state (restored just before) by one draw, so dropout masks would differ
    return DataLoader(dataset, batch_sampler=batches, num_workers=config.workers,
                      generator=torch.Generator().manual_seed(config.seed))


def validation_pairs(config: TrainConfig, scale: int) -> list | None:
    source = config.val_data if config.val_data is not None else (None if config.data is None else False)
    if source is False:
        return None
    return pairs_from(source, "test", task=config.task, scale=scale, **({"sigma": config.sigma} if config.sigma else {}))


def fidelity_pairs(config: TrainConfig, scale: int, teacher: nn.Module, device: torch.device) -> list:
    """``(input, teacher output)`` pairs on centre crops of ``config.data``'s inputs: what a run
    with no HR images evaluates against (its scores are fidelity to the teacher)."""
    inputs = InputPatches(config.data, task=config.task, scale=scale if config.task == "sr" else 2,
                          patch_size=config.patch_size, length=1, seed=config.seed, sigma=config.sigma).whole_inputs()
    return [(x, teacher_output(teacher, x[None].to(device))[0].cpu()) for x in inputs]


def train_model(
    model: nn.Module,
    config: TrainConfig,
    steps: int,
    scale: int,
    extra_loss: Callable[[], torch.Tensor] | None = None,
    after_step: Callable[[], None] | None = None,
    status: Callable[[], dict[str, Any]] | None = None,
    description: str = "train",
    param_groups: list[dict[str, Any]] | None = None,
    state: Any | None = None,
    teacher: nn.Module | None = None,
) -> TrainLog:
    """Train ``model`` in place for ``steps`` Adam steps on L1 loss (+ ``extra_loss()``).

    ``after_step`` runs after each optimizer step (e.g. ``pruner.step``); ``status`` adds fields
    to the progress bar and its numeric ones to the log (:attr:`TrainLog.status`); ``param_groups`` replaces the default Adam groups (e.g. a method's
    ``pruner.param_groups(lr, aux_lr)``). Evaluates every ``config.eval_every`` steps and at the end. ``state`` is
    what a checkpoint saves and restores besides the optimizer (anything with ``state_dict`` /
    ``load_state_dict`` that holds the model, e.g. a method's pruner; default: ``model``).
    ``teacher``: the model to teach with when ``config.teacher`` / ``config.targets`` ask for one,
    used as it is (``compress`` passes :func:`teacher_for`'s frozen copy of the original); when
    None, a module in ``config.teacher`` is copied and used.
    """
    check_task(config, scale)
    device = config.device_obj()
    if config.teacher is False or (config.teacher is None and config.targets == "hr"):
        teacher = None
    elif teacher is None:
        teacher = teacher_for(config, None)  # the module config names, or an error: no original known here
    if teacher is not None:
        teacher.to(device).eval()
    torch.manual_seed(config.seed)
    model.to(device).train()
    groups = param_groups if param_groups is not None else _param_groups(model, config)
    optimizer = torch.optim.Adam(groups, lr=config.lr)
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
    pairs = validation_pairs(config, scale)
    against_teacher = pairs is None and config.targets == "teacher"
    if against_teacher:
        pairs = fidelity_pairs(config, scale, teacher, device)
        if config.progress:
            tqdm.write(f"{description}: no HR validation images; evaluating fidelity to the teacher "
                       "(teacher_psnr / teacher_ssim), not PSNR against ground truth")
    check_eval_sizes(model, pairs, device)  # a size the graph cannot run fails now, not after training
    log = TrainLog()
    holder = model if state is None else state
    fingerprint = teacher_fingerprint(teacher)
    start = 0 if config.resume is None else _restore(config, holder, optimizer, log, steps, description, fingerprint)
    folder = config.checkpoint_folder()
    bar = tqdm(total=steps, initial=start, desc=description, disable=not config.progress, dynamic_ncols=True)
    batches = iter(loader_for(config, scale, steps, start))
    with StopOnSignal() if folder is not None else _NoSignals() as stop:
        for step in range(start + 1, steps + 1):
            _one_step(model, optimizer, next(batches), device, config, scale, step, steps, extra_loss, after_step,
                      status, pairs, log, bar, teacher, against_teacher)
            if folder is not None and ((config.checkpoint_every and step % config.checkpoint_every == 0)
                                       or stop.received or step == steps):
                path = write_checkpoint(folder, _payload(holder, optimizer, log, step, steps, description, config,
                                                         fingerprint))
                if stop.received:
                    bar.close()
                    raise TrainingInterrupted(stop.received, step, steps, path)
    bar.close()
    if math.isnan(log.loss[-1] if log.loss else 0.0):
        raise FloatingPointError("training diverged (loss is NaN); lower TrainConfig.lr")
    return log


class _NoSignals:
    received = None

    def __enter__(self) -> "_NoSignals":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def _one_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Any, device: torch.device,
              config: TrainConfig, scale: int, step: int, steps: int, extra_loss: Callable[[], torch.Tensor] | None,
              after_step: Callable[[], None] | None, status: Callable[[], dict[str, Any]] | None,
              pairs: list | None, log: TrainLog, bar: Any, teacher: nn.Module | None = None,
              against_teacher: bool = False) -> None:
    """Forward, L1 loss (to the HR and/or the teacher's output), backward, Adam, the hook, logging
    and evaluation of one step."""
    lr_batch = batch[0].to(device)
    _set_learning_rates(optimizer, config.lr_schedule, step, steps)
    out = model(lr_batch)
    if config.targets == "teacher":
        loss = distill_loss(out, teacher_output(teacher, lr_batch))
    else:
        loss = (out - batch[1].to(device)).abs().mean()
        if teacher is not None:
            loss = loss + distill_loss(out, teacher_output(teacher, lr_batch), weight=config.teacher_weight)
    total = loss + extra_loss() if extra_loss is not None else loss
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    if after_step is not None:
        after_step()
    figures = status() if status else {}
    fields = {"loss": f"{loss.item():.4f}", **figures}
    if step % max(1, steps // 200) == 0 or step == steps:
        log.record(step, loss.item(), figures)
    if pairs is not None and ((config.eval_every and step % config.eval_every == 0) or step == steps):
        scores = evaluate(model, pairs, shave=scale if config.task == "sr" else 0, device=device)
        if against_teacher:
            scores = {f"teacher_{name}": value for name, value in scores.items()}
        log.evals.append((step, scores))
        fields["teacher_psnr" if against_teacher else "psnr"] = f"{scores['teacher_psnr' if against_teacher else 'psnr']:.2f}"
        model.train()
    bar.set_postfix(fields, refresh=False)
    bar.update(1)


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The share of its base learning rate that a group uses at ``step`` (1-based) of ``steps``.

    >>> [round(lr_factor("cosine", s, 4), 3) for s in (1, 2, 3, 4)]
    [1.0, 0.854, 0.5, 0.146]
    """
    if schedule == "constant" or steps < 1:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps))


def _set_learning_rates(optimizer: torch.optim.Optimizer, schedule: str, step: int, steps: int) -> None:
    factor = lr_factor(schedule, step, steps)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def _rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _payload(holder: Any, optimizer: torch.optim.Optimizer, log: TrainLog, step: int, steps: int,
             description: str, config: TrainConfig, teacher: str | None = None) -> dict[str, Any]:
    return {"distill": {"targets": config.targets, "teacher_weight": config.teacher_weight, "teacher": teacher},
            "format": CHECKPOINT_FORMAT, "version": 1, "description": description, "steps": steps, "step": step,
            "state": holder.state_dict(), "optimizer": optimizer.state_dict(), "rng": _rng_states(),
            "sampler": {"seed": config.seed, "batch_size": config.batch_size, "next_batch": step},
            "log": log.as_dict()}


def _restore(config: TrainConfig, holder: Any, optimizer: torch.optim.Optimizer, log: TrainLog, steps: int,
             description: str, teacher: str | None = None) -> int:
    """Load ``config.resume``'s checkpoint into ``holder``, the optimizer, the RNGs and ``log``; returns its step."""
    payload = read_checkpoint(config.resume)
    path = Path(config.resume) / "checkpoint.pt"
    if payload.get("format") != CHECKPOINT_FORMAT or payload.get("version") != 1:
        raise CheckpointError(f"{path} is not an fxprune training checkpoint (format {payload.get('format')!r})",
                              path=path)
    try:
        mine = (description, steps, config.seed, config.batch_size)
        theirs = (payload["description"], payload["steps"], payload["sampler"]["seed"], payload["sampler"]["batch_size"])
        if mine != theirs:
            raise CheckpointError(f"{path} was written by another run ({theirs[0]!r}, {theirs[1]} steps, seed "
                                  f"{theirs[2]}, batch {theirs[3]}); this run is {mine[0]!r}, {mine[1]} steps, seed "
                                  f"{mine[2]}, batch {mine[3]}", path=path)
        mine_d = {"targets": config.targets, "teacher_weight": config.teacher_weight, "teacher": teacher}
        theirs_d = payload.get("distill", {"targets": "hr", "teacher_weight": config.teacher_weight, "teacher": None})
        if mine_d != theirs_d:
            raise CheckpointError(f"{path} was written with targets/teacher {theirs_d}; this run has {mine_d}: resume "
                                  "with the same model (the teacher is rebuilt from it), teacher and weight", path=path)
        holder.load_state_dict(payload["state"])
        optimizer.load_state_dict(payload["optimizer"])
        rng = payload["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        log.load(payload["log"])
        return int(payload["step"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path} is incomplete or does not fit this model ({type(error).__name__}: {error})",
                              path=path) from error
