"""Before the first training step: the model runs at every image size it will be evaluated at.

A graph that baked an input size into a guard trains on fixed-size patches without complaint and
then fails on the first whole validation image; the run would train every step and die in the
held-out evaluation with torch's raw traceback. :func:`check_eval_sizes` runs the model once on
one image of each distinct size first.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .errors import VerificationError
from .metrics import run_model


def check_eval_sizes(model: nn.Module, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]] | None,
                     device: torch.device | str | None = None) -> None:
    """Raise :class:`~fxprune.VerificationError` naming the first evaluation image size at which
    ``model`` fails or gives an output of the wrong size (that of its ``hr``); one run per size.

    >>> import torch
    >>> pairs = [(torch.rand(3, 8, 8), torch.rand(3, 8, 8)), (torch.rand(3, 7, 5), torch.rand(3, 7, 5))]
    >>> check_eval_sizes(torch.nn.Identity(), pairs)            # passes silently
    >>> check_eval_sizes(torch.nn.Upsample(scale_factor=2), pairs)
    Traceback (most recent call last):
    ...
    fxprune.errors.VerificationError: fxprune.train: the model gives an output of size 16×16 for the evaluation image of size 8×8 (expected 8×8); stopped before step 1
    hint: check the task's scale (TrainConfig.scale) and the validation data
    """
    seen: set[tuple[int, ...]] = set()
    for lr, hr in pairs or ():
        if tuple(lr.shape) in seen:
            continue
        seen.add(tuple(lr.shape))
        size = "×".join(map(str, lr.shape[-2:]))
        try:
            out = run_model(model, lr, device=device)
        except Exception as error:  # noqa: BLE001 - named with the size, before any training
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise VerificationError(
                f"fxprune.train: the model fails on the evaluation image of size {size}: {type(error).__name__}: "
                f"{reason}; stopped before step 1\nhint: the graph runs at the training patch size only (the "
                "capture baked a size into it); evaluate at that size, or keep sizes symbolic in the forward",
                max_error=float("inf"), input_shapes=(tuple(lr.shape),)) from error
        if out.shape[-2:] != hr.shape[-2:]:
            raise VerificationError(
                f"fxprune.train: the model gives an output of size {'×'.join(map(str, out.shape[-2:]))} for the "
                f"evaluation image of size {size} (expected {'×'.join(map(str, hr.shape[-2:]))}); stopped before "
                "step 1\nhint: check the task's scale (TrainConfig.scale) and the validation data",
                max_error=float("inf"), input_shapes=(tuple(lr.shape),))
