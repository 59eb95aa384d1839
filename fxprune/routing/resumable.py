"""Crash-safe routing runs: the variants and the estimator of ``fxprune route``, checkpointed as they are made.

Everything lives in one folder (``OUT/checkpoint``): ``checkpoint.pt`` (written atomically by
:func:`fxprune.checkpoint.write_checkpoint`) records a fingerprint of the run (dense weights,
example shape, routing settings), the variants finished so far and the estimator's training state;
each finished variant is ``variant-K.pt2`` (:func:`fxprune.save`, atomic) and a variant being
fine-tuned keeps the built-in loop's checkpoint in ``variant-K/``. Every variant is used as read
back from its file, in the first run as in a resumed one, so a resumed run computes exactly what an
uninterrupted one computes.

A stop request (``stop()`` true, e.g. :class:`fxprune.checkpoint.StopOnSignal` after SIGINT/SIGTERM)
is honoured after the variant being made, at the estimator's next step, or inside a variant's
fine-tuning (the loop's own signal handling); :class:`RouteInterrupted` then says where it stopped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..checkpoint import FILE, TrainingInterrupted, read_checkpoint, write_checkpoint
from ..errors import CheckpointError, FxpruneError
from .training import EstimatorCheckpoints, EstimatorInterrupted, train_estimator
from .variants import Variant, build_variants

__all__ = ["RouteCheckpoint", "RouteInterrupted", "build_routes", "fingerprint"]

FORMAT = "fxprune.route-checkpoint"


class RouteInterrupted(FxpruneError):
    """A routing run stopped on request after saving its progress; ``where`` says how far it got."""

    fields = ("where", "folder")

    def __init__(self, where: str, folder: Path):
        self.where, self.folder = where, folder
        super().__init__(f"stopped {where}; progress saved in {folder}")


def fingerprint(model: nn.Module, example: torch.Tensor, settings: Mapping[str, Any]) -> str:
    """A digest of the dense weights, the example's shape and the run's settings: a checkpoint fits only its run.

    >>> conv, x = nn.Conv2d(3, 3, 1), torch.zeros(1, 3, 8, 8)
    >>> fingerprint(conv, x, {"patch": 8}) == fingerprint(conv, x, {"patch": 8})
    True
    >>> fingerprint(conv, x, {"patch": 8}) == fingerprint(conv, x, {"patch": 16})
    False
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(str(tuple(example.shape)).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RouteCheckpoint:
    """The checkpoint folder of one routing run (see the module docstring)."""

    def __init__(self, folder: str | Path, fingerprint: str, resume: bool) -> None:
        self.folder = Path(folder)
        self.state: dict[str, Any] = {"format": FORMAT, "fingerprint": fingerprint, "variants": [], "estimator": None}
        if resume:
            saved = read_checkpoint(self.folder)
            path = self.folder / FILE
            if saved.get("format") != FORMAT:
                raise CheckpointError(f"{path} is not a `fxprune route` checkpoint (format {saved.get('format')!r})",
                                      path=path)
            if saved.get("fingerprint") != fingerprint:
                raise CheckpointError(f"{path} was written by a run with another model, example size or routing "
                                      "spec; run the same command to continue it, or start over with --restart",
                                      path=path)
            self.state = saved
        elif self.folder.exists():
            shutil.rmtree(self.folder)

    def progress(self) -> str:
        """How far the saved run got, in words."""
        estimator = self.state.get("estimator")
        done = f"{len(self.state['variants'])} variant(s) made"
        return done + (f", estimator step {estimator['step']} of {estimator['steps']}" if estimator else "")

    def save(self) -> None:
        write_checkpoint(self.folder, self.state)

    def variant(self, k: int, make: Callable[[Any], nn.Module], train: Any, example: torch.Tensor) -> nn.Module:
        """Variant ``k``: read back from its file if finished, else made (``make(train)``), saved and read back."""
        from ..model_io import load, save

        path = self.folder / f"variant-{k}.pt2"
        if k < len(self.state["variants"]):
            return load(path)
        if train is not None:  # the fine-tuning loop checkpoints (and stops on a signal) in its own folder
            loop = self.folder / f"variant-{k}"
            resume = str(loop) if (loop / FILE).is_file() else None
            train = dataclasses.replace(train, checkpoint_dir=str(loop), resume=resume)
        try:
            small = make(train)
        except TrainingInterrupted as stop:
            raise RouteInterrupted(f"while fine-tuning variant {k + 1} (step {stop.step} of {stop.total})",
                                   self.folder) from stop
        save(small, path, (example,))
        self.state["variants"].append(path.name)
        self.save()
        return load(path)


def build_routes(model: nn.Module, specs: Sequence[Any] | Mapping[str, Any], example: torch.Tensor,
                 checkpoint: RouteCheckpoint, *, train: Any = None, fallback: str | None = "bicubic",
                 estimator_train: Any = None, patch: int = 48, context: int = 4, every: int = 50,
                 stop: Callable[[], bool] = lambda: False, **estimator_options: Any) -> tuple[list[Variant], nn.Module]:
    """:func:`build_variants` then :func:`train_estimator`, checkpointed into ``checkpoint`` and stoppable.

    Returns (variants, estimator). ``stop()`` is polled after each variant and each estimator step
    (and a variant's fine-tuning stops on the signal itself); a stop raises :class:`RouteInterrupted`
    once the progress is saved. ``every``: estimator steps between checkpoints.
    """
    def make(k: int, name: str, spec: Any) -> nn.Module:
        from ..api import compress

        small = checkpoint.variant(k, lambda config: compress(model, spec, (example,), train=config), train, example)
        if stop():
            raise RouteInterrupted(f"after variant {k + 1} ('{name}')", checkpoint.folder)
        return small

    variants = build_variants(model, specs, (example,), train=train, fallback=fallback, make=make)

    def save_estimator(state: dict[str, Any]) -> None:
        checkpoint.state["estimator"] = state
        checkpoint.save()

    saved = checkpoint.state.get("estimator")
    hooks = EstimatorCheckpoints(save_estimator, every=every, resume=saved, stop=stop)
    try:
        estimator = train_estimator(variants, estimator_train, patch=patch, context=context, checkpoints=hooks,
                                    **estimator_options)
    except EstimatorInterrupted as halt:
        raise RouteInterrupted(f"while training the estimator (step {halt.step} of {halt.total})",
                               checkpoint.folder) from halt
    return variants, estimator
