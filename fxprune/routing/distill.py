"""Fine-tuning a compressed route toward the dense model's output as well as the ground truth.

A variant pruned from a dense network has one job in a routed model: reproduce what the dense
network would produce on the windows sent to it. The dense model's output is a target without the
HR's unlearnable detail, so a short run on ``(1 - hr_weight)·|s(x) − t(x)| + hr_weight·|s(x) − y|``
recovers more than the same steps on the HR alone (issue 20: 300 HR-only steps left the 0.75
variant below bicubic).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..data import RestorationDataset
from ..distill import distill_loss
from .variants import RoutingError

__all__ = ["distill"]


def distill(student: nn.Module | Sequence[nn.Module], teacher: nn.Module, images: Sequence[np.ndarray], *, steps: int,
            scale: int = 2, lr: float = 5e-4, patch: int = 24, batch: int = 8, hr_weight: float = 0.5, seed: int = 0,
            device: str | torch.device = "cpu") -> nn.Module | list[nn.Module]:
    """Train ``student`` in place for ``steps`` Adam steps on random ``patch`` px LR crops of ``images``
    (bicubic ×``scale``), lr falling along half a cosine to 0; return it in eval mode.

    The loss is ``hr_weight`` times the L1 to the HR crop plus ``1 - hr_weight`` times the L1 to
    ``teacher``'s output (run without gradients). ``steps = 0`` returns the student untouched. A list
    of students trains each on the same batches (the teacher runs once per batch; each student has
    its own optimizer) and returns the list.

    >>> from fxprune.models import build
    >>> t = build("edsr", blocks=1, channels=8).eval()
    >>> s = build("edsr", blocks=1, channels=4)
    >>> img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    >>> distill(s, t, [img], steps=2, patch=8, batch=2).training
    False
    """
    for name, value, low in (("steps", steps, 0), ("patch", patch, 1), ("batch", batch, 1), ("scale", scale, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise RoutingError(f"distill: {name} must be an int >= {low}, got {value!r}")
    if not 0.0 <= hr_weight <= 1.0:
        raise RoutingError(f"distill: hr_weight must be in [0, 1] (0: the teacher's output alone), got {hr_weight!r}")
    if not lr > 0:
        raise RoutingError(f"distill: lr must be > 0, got {lr!r}")
    device = torch.device(device)
    students = list(student) if isinstance(student, Sequence) else [student]
    for s in students:
        s.to(device).train()
    teacher.to(device).eval()
    if steps > 0:
        data = RestorationDataset(list(images), task="sr", scale=scale, patch_size=patch, length=steps * batch,
                                  seed=seed)
        optimizers = [torch.optim.Adam([p for p in s.parameters() if p.requires_grad], lr=lr) for s in students]
        schedules = [torch.optim.lr_scheduler.LambdaLR(o, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
                     for o in optimizers]
        for step in range(steps):
            lrs, hrs = zip(*(data[step * batch + i] for i in range(batch)))
            x, y = torch.stack(lrs).to(device), torch.stack(hrs).to(device)
            with torch.no_grad():
                target = teacher(x)
            for s, optimizer, schedule in zip(students, optimizers, schedules):
                out = s(x)
                loss = hr_weight * (out - y).abs().mean() + distill_loss(out, target, weight=1 - hr_weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
    for s in students:
        s.eval()
    return students if isinstance(student, Sequence) else student
