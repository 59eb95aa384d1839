"""Training and judging the per-window error estimators.

Targets are each route's log MSE on a window's core (the window minus ``context`` px each side,
scaled), measured on LR windows cut from degraded training images (:class:`fxprune.data.RestorationDataset`).
Quality is the Spearman rank correlation between predicted and true log error on held-out
windows (the test split), per route: routing only needs the ranking of windows to be right.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..data import RestorationDataset, demo_images, load_images
from ..errors import CheckpointError, FxpruneError
from ..train import TrainConfig
from .estimator import ErrorEstimator, LaplacianEstimator
from .variants import RoutingError, Variant, check_window

__all__ = ["WindowSet", "window_set", "train_estimator", "spearman", "EstimatorQuality", "EstimatorCheckpoints",
           "EstimatorInterrupted"]

_FLOOR = 1e-10  # MSE floor: log of a perfect (flat) window stays finite


@dataclass
class WindowSet:
    """LR windows ``[N, C, T, T]`` and each route's true log MSE on their cores ``[N, K]``."""

    windows: torch.Tensor
    log_errors: torch.Tensor


@torch.no_grad()
def window_set(variants: Sequence[Variant], dataset: RestorationDataset, indices: range, context: int,
               device: torch.device, chunk: int = 32) -> WindowSet:
    """Windows ``indices`` of ``dataset`` and every route's log MSE on each core (outputs clamped to [0, 1])."""
    lrs, hrs = zip(*(dataset[i] for i in indices))
    count = len(indices)
    lr, hr = torch.stack(lrs).to(device), torch.stack(hrs).to(device)
    scale = hr.shape[-1] // lr.shape[-1]
    lo, hi = context * scale, hr.shape[-1] - context * scale
    errors = torch.empty(count, len(variants), device=device)
    for k, v in enumerate(variants):
        for start in range(0, count, chunk):
            out = v.module(lr[start:start + chunk]).clamp(0, 1)
            diff = out[..., lo:hi, lo:hi] - hr[start:start + chunk, :, lo:hi, lo:hi]
            errors[start:start + chunk, k] = diff.pow(2).mean(dim=(1, 2, 3))
    return WindowSet(lr, torch.log(errors + _FLOOR))


def spearman(predicted: torch.Tensor, actual: torch.Tensor) -> list[float]:
    """Spearman rank correlation of each column of ``predicted`` with the same column of ``actual``.

    >>> spearman(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[10.0], [20.0], [25.0]]))
    [1.0]
    """
    from scipy.stats import spearmanr

    values = []
    for k in range(actual.shape[1]):
        rho = spearmanr(predicted[:, k].cpu().numpy(), actual[:, k].cpu().numpy()).statistic
        values.append(float(rho) if np.isfinite(rho) else float("nan"))
    return values


@dataclass
class EstimatorQuality:
    """Held-out Spearman ρ per route of the CNN and of the Laplacian lookup; the windows they were measured on."""

    routes: list[str]
    cnn: list[float]
    laplacian: list[float]
    held_out: int
    train_windows: int
    losses: list[float] = field(default_factory=list)

    def table(self) -> str:
        """A markdown table: route, CNN ρ, Laplacian ρ."""
        lines = ["| route | CNN estimator ρ | Laplacian lookup ρ |", "| --- | --- | --- |"]
        lines += [f"| {n} | {c:.3f} | {l:.3f} |" for n, c, l in zip(self.routes, self.cnn, self.laplacian)]
        return "\n".join(lines)


class EstimatorInterrupted(FxpruneError):
    """Estimator training stopped on request (a signal) after ``step`` of ``total`` steps, its state saved."""

    fields = ("step", "total")

    def __init__(self, step: int, total: int):
        self.step, self.total = step, total
        super().__init__(f"estimator training stopped after step {step} of {total} (state saved)")


@dataclass
class EstimatorCheckpoints:
    """The hooks of crash-safe estimator training.

    ``save(state)`` receives the training state (a dict of tensors and ints) every ``every``
    steps, after the last step and when ``stop()`` turns true; then training raises
    :class:`EstimatorInterrupted`. ``resume`` is such a state to continue from (same windows,
    seed and ``steps``).
    """

    save: Callable[[dict[str, Any]], None]
    every: int = 50
    resume: dict[str, Any] | None = None
    stop: Callable[[], bool] = field(default=lambda: False)

    def after(self, step: int, steps: int, state: Callable[[], dict[str, Any]]) -> None:
        """Called after each training step: save when due, and stop (raise) when asked to."""
        stopping = self.stop() and step < steps
        if stopping or step == steps or (self.every and step % self.every == 0):
            self.save(state())
        if stopping:
            raise EstimatorInterrupted(step, steps)


def _restore(state: dict[str, Any], estimator: nn.Module, optimizer: torch.optim.Optimizer,
             generator: torch.Generator, losses: list[float], steps: int) -> int:
    """Load a saved estimator training state; returns its step. CheckpointError when it is not this run's."""
    try:
        if int(state["steps"]) != steps:
            raise CheckpointError(f"the saved estimator state is for {state['steps']} steps, this run trains {steps}; "
                                  "start over (--restart)")
        estimator.load_state_dict(state["estimator"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        losses.extend(state["losses"])
        return int(state["step"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"the saved estimator state does not fit this estimator ({type(error).__name__}: "
                              f"{error}); start over (--restart)") from error


def _images(folder: str | None, split: str) -> list[np.ndarray]:
    return load_images(folder) if folder else demo_images(split)


def train_estimator(
    variants: Sequence[Variant],
    train: TrainConfig | None = None,
    *,
    patch: int = 48,
    context: int = 4,
    windows: int = 2048,
    held_out: int = 512,
    width: int = 16,
    checkpoints: "EstimatorCheckpoints | None" = None,
) -> ErrorEstimator:
    """Train one :class:`ErrorEstimator` (shared trunk, one head per route) on ``windows`` training windows.

    Windows are ``patch + 2·context`` px LR crops of ``train.data`` (default: the bundled
    training images), degraded as ``train.task``/``train.scale`` say; ``train.steps`` Adam steps
    (default 400) of ``train.batch_size`` windows at ``train.lr`` minimize the squared error of the
    predicted log MSE. The result carries ``.quality`` (:class:`EstimatorQuality`: held-out
    Spearman ρ per route on ``held_out`` windows of ``train.val_data`` or the test images, for the
    CNN and for a :class:`LaplacianEstimator` fitted on other training windows) and ``.laplacian``
    (that fitted lookup, usable as a training-free estimator). ``checkpoints``
    (:class:`EstimatorCheckpoints`) saves the training state as it goes, stops on request and
    continues a saved state; on CPU the continued run equals an uninterrupted one.
    """
    train = train or TrainConfig(progress=False)
    if not isinstance(train, TrainConfig):
        raise TypeError(f"train must be a fxprune.TrainConfig, got {type(train).__name__}")
    variants = list(variants)
    tile = patch + 2 * context
    channels, scale = check_window(variants, tile)
    if train.scale is not None and train.scale != scale:
        raise RoutingError(f"train.scale={train.scale} but the routes upscale by {scale}")
    device = train.device_obj()
    for v in variants:
        v.module.to(device)
    generator = torch.Generator().manual_seed(train.seed)
    torch.manual_seed(train.seed)
    common = dict(task=train.task, scale=max(scale, 2) if train.task == "sr" else 2, patch_size=tile,
                  sigma=train.sigma)
    if train.task == "sr" and scale < 2:
        raise RoutingError("train.task is 'sr' but the routes keep the size; set TrainConfig(task='denoise' or 'deblur')")
    training = RestorationDataset(_images(train.data, "train"), length=windows + held_out, seed=train.seed, **common)
    fit = window_set(variants, training, range(windows), context, device)
    lookup_set = window_set(variants, training, range(windows, windows + held_out), context, device)
    testing = RestorationDataset(_images(train.val_data, "test"), length=held_out, seed=train.seed + 1,
                                 augment=False, **common)
    test_set = window_set(variants, testing, range(held_out), context, device)

    estimator = ErrorEstimator(len(variants), width=width, channels=channels).to(device)
    with torch.no_grad():  # start each head at its route's mean log error
        for k, head in enumerate(estimator.heads):
            head[-1].bias.fill_(float(fit.log_errors[:, k].mean()))
    optimizer = torch.optim.Adam(estimator.parameters(), lr=train.lr)
    steps = train.steps or 400
    losses: list[float] = []
    start = 0 if checkpoints is None or checkpoints.resume is None else \
        _restore(checkpoints.resume, estimator, optimizer, generator, losses, steps)
    for step in range(start + 1, steps + 1):
        index = torch.randint(0, windows, (min(train.batch_size, windows),), generator=generator).to(device)
        loss = (estimator(fit.windows[index]) - fit.log_errors[index]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if checkpoints is not None:
            checkpoints.after(step, steps, lambda: {
                "step": step, "steps": steps, "estimator": estimator.state_dict(), "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(), "losses": list(losses)})
    estimator.eval()
    laplacian = LaplacianEstimator.fit(lookup_set.windows, lookup_set.log_errors).to(device)
    with torch.no_grad():
        cnn_rho = spearman(estimator(test_set.windows), test_set.log_errors)
        lap_rho = spearman(laplacian(test_set.windows), test_set.log_errors)
    estimator.quality = EstimatorQuality([v.name for v in variants], cnn_rho, lap_rho, held_out, windows,
                                         losses[:: max(1, steps // 50)])
    estimator.laplacian = laplacian
    return estimator
