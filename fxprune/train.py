"""The built-in training loop: L1 loss, Adam, random patches, progress and evaluation.

``compress(..., train=TrainConfig(...))`` uses it to run the ASSL schedule or to fine-tune an
L1-pruned model; :func:`train_model` is also usable on its own (e.g. to train a dense baseline).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import RestorationDataset, pairs_from
from .errors import SpecError
from .metrics import evaluate
from .passes.insert_assl_gates import GATES

TASKS = ("sr", "denoise", "deblur")


@dataclass(frozen=True)
class TrainConfig:
    """How the built-in loop trains.

    Args:
        data: a folder of HR images, or None for the bundled demo training images.
        val_data: a folder of HR images to report PSNR/SSIM on; None uses the demo test images
            when ``data`` is None and skips evaluation otherwise.
        task: ``"sr"``, ``"denoise"`` or ``"deblur"`` (the degradation applied to the HR images).
        scale: SR factor; None infers it from the model's output size.
        steps: total optimizer steps. For ASSL it sets the schedule's length when the spec has
            no ``steps``; for L1 it is the fine-tuning length (0: no fine-tuning).
        patch_size: LR patch size; batch_size, lr: Adam's batch and learning rate.
        gate_lr: a learning rate for ASSL's gates alone (None: ``lr``). With Adam a gate moves
            about this much per step, so short schedules need it high enough to bring the
            unimportant gates near 0.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"`` ...
        seed: seeds torch, the patch sampler and the noise, so runs repeat exactly on CPU.
        eval_every: evaluate every this many steps (0: only at the end).
        progress: show a tqdm bar with loss, α, sparsity and PSNR.

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
    device: str = "auto"
    seed: int = 0
    eval_every: int = 0
    progress: bool = True
    sigma: float | None = None
    workers: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise SpecError("train.task", f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        for name in ("patch_size", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"train.{name}", f"must be a positive integer, got {value!r}")
        for name in ("steps", "scale"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise SpecError(f"train.{name}", f"must be a non-negative integer or None, got {value!r}")
        for name in ("lr", "gate_lr"):
            value = getattr(self, name)
            if value is None and name == "gate_lr":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise SpecError(f"train.{name}", f"must be a positive number, got {value!r}")
        for name in ("data", "val_data"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_dir():
                raise SpecError(f"train.{name}", f"no folder at {value}")

    def device_obj(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class TrainLog:
    """What a run did: per logged step the loss (and α, sparsity), and the evaluations."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    alpha: list[float] = field(default_factory=list)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        return self.evals[-1][1] if self.evals else {}

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "loss": self.loss, "alpha": self.alpha,
                "evals": [{"step": step, **scores} for step, scores in self.evals]}


def infer_scale(model: nn.Module, example_inputs: Any) -> int:
    """Output height over input height of one forward (1 for denoising/deblurring nets)."""
    x = example_inputs[0] if isinstance(example_inputs, (tuple, list)) else example_inputs
    with torch.no_grad():
        y = model(x)
    if y.shape[-2] % x.shape[-2]:
        raise ValueError(f"the output height {y.shape[-2]} is not a multiple of the input height {x.shape[-2]}")
    return y.shape[-2] // x.shape[-2]


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """One Adam group, or two when ``gate_lr`` gives ASSL's gates a learning rate of their own."""
    gates = [p for name, p in model.named_parameters() if name.startswith(GATES + ".")]
    if config.gate_lr is None or not gates:
        return [{"params": list(model.parameters())}]
    chosen = {id(p) for p in gates}
    rest = [p for p in model.parameters() if id(p) not in chosen]
    return [{"params": rest}, {"params": gates, "lr": config.gate_lr}]


def check_task(config: TrainConfig, scale: int) -> None:
    if (config.task == "sr") != (scale > 1):
        raise SpecError("train.task", f"task {config.task!r} does not fit a model with scale {scale}: "
                        "use 'sr' for upscaling models, 'denoise' or 'deblur' for same-size ones")


def loader_for(config: TrainConfig, scale: int, steps: int) -> DataLoader:
    dataset = RestorationDataset(
        config.data, task=config.task, scale=scale if config.task == "sr" else 2,
        patch_size=config.patch_size, length=max(1, steps) * config.batch_size, seed=config.seed, sigma=config.sigma,
    )
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=True, generator=generator,
                      num_workers=config.workers, drop_last=True)


def validation_pairs(config: TrainConfig, scale: int) -> list | None:
    source = config.val_data if config.val_data is not None else (None if config.data is None else False)
    if source is False:
        return None
    return pairs_from(source, "test", task=config.task, scale=scale, **({"sigma": config.sigma} if config.sigma else {}))


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
) -> TrainLog:
    """Train ``model`` in place for ``steps`` Adam steps on L1 loss (+ ``extra_loss()``).

    ``after_step`` runs after each optimizer step (e.g. ``pruner.step``); ``status`` adds fields
    to the progress bar; ``param_groups`` replaces the default Adam groups (e.g. a method's
    ``pruner.param_groups(lr, aux_lr)``). Evaluates every ``config.eval_every`` steps and at the end.
    """
    check_task(config, scale)
    device = config.device_obj()
    torch.manual_seed(config.seed)
    model.to(device).train()
    groups = param_groups if param_groups is not None else _param_groups(model, config)
    optimizer = torch.optim.Adam(groups, lr=config.lr)
    pairs = validation_pairs(config, scale)
    log = TrainLog()
    bar = tqdm(total=steps, desc=description, disable=not config.progress, dynamic_ncols=True)
    batches = iter(loader_for(config, scale, steps))
    for step in range(1, steps + 1):
        lr_batch, hr_batch = (t.to(device) for t in next(batches))
        loss = (model(lr_batch) - hr_batch).abs().mean()
        total = loss + extra_loss() if extra_loss is not None else loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        fields = {"loss": f"{loss.item():.4f}", **(status() if status else {})}
        if step % max(1, steps // 200) == 0 or step == steps:
            log.steps.append(step)
            log.loss.append(float(loss.item()))
            log.alpha.append(float(fields.get("α", 0.0) or 0.0))
        if pairs is not None and ((config.eval_every and step % config.eval_every == 0) or step == steps):
            scores = evaluate(model, pairs, shave=scale if config.task == "sr" else 0, device=device)
            log.evals.append((step, scores))
            fields["psnr"] = f"{scores['psnr']:.2f}"
            model.train()
        bar.set_postfix(fields, refresh=False)
        bar.update(1)
    bar.close()
    if math.isnan(log.loss[-1] if log.loss else 0.0):
        raise FloatingPointError("training diverged (loss is NaN); lower TrainConfig.lr")
    return log
