"""Learning from the original model: the distillation loss, the teacher's targets, and a
fingerprint that lets a resumed run check it got the same teacher back.

The built-in loop (:mod:`fxprune.train`) adds ``weight · L1(student, teacher(LR))`` to its L1 loss
against the HR image when ``TrainConfig(teacher=...)`` is set, or trains on the teacher's output
alone with ``TrainConfig(targets="teacher")`` (no HR images needed). In your own loop, call
:func:`distill_loss` with the teacher's output.
"""
from __future__ import annotations

import copy
import hashlib

import torch
from torch import nn

from .errors import SpecError

__all__ = ["distill_loss", "frozen_teacher", "teacher_fingerprint", "teacher_output"]


def distill_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """``weight`` times the mean absolute difference between the student's and the teacher's output.

    The teacher's output is detached, so no gradient reaches the teacher. Add it to your task loss:
    ``loss = (student(lr) - hr).abs().mean() + distill_loss(student(lr), teacher(lr), weight=0.5)``,
    or use it alone when you have no HR images.

    >>> s = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    >>> t = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    >>> distill_loss(s, t), distill_loss(s, t, weight=0.5)
    (tensor(0.7500), tensor(0.3750))
    >>> distill_loss(s, t[:1])
    Traceback (most recent call last):
    ...
    fxprune.errors.SpecError: spec field 'teacher_out': the student's output has shape (2, 2) but the teacher's has (1, 2): they must match (same model input, same scale)
    """
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise SpecError("weight", f"the distillation weight must be a number >= 0, got {weight!r}", value=weight)
    if student_out.shape != teacher_out.shape:
        raise SpecError("teacher_out", f"the student's output has shape {tuple(student_out.shape)} but the teacher's "
                        f"has {tuple(teacher_out.shape)}: they must match (same model input, same scale)",
                        value=tuple(teacher_out.shape))
    return weight * (student_out - teacher_out.detach()).abs().mean()


def frozen_teacher(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to teach with (no gradients, eval mode). Freezing the caller's
    model itself would switch off gradients in a student built from it (a pruned student's
    parameters inherit ``requires_grad``) and change the caller's model; and a student that shares
    tensors with its source (possible with a custom capture) would move the teacher as it trains."""
    teacher = copy.deepcopy(model)
    teacher.requires_grad_(False)
    return teacher.eval()


def teacher_output(teacher: nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """The teacher's output for ``lr``: eval mode, no gradient, on ``lr``'s device.

    >>> teacher_output(nn.Conv2d(3, 3, 1), torch.rand(1, 3, 4, 4)).requires_grad
    False
    """
    teacher.to(lr.device).eval()
    with torch.no_grad():
        return teacher(lr)


def teacher_fingerprint(teacher: nn.Module | None) -> str | None:
    """A short hash of the teacher's parameters and buffers (None for no teacher), saved in a
    checkpoint instead of the teacher itself: resume rebuilds the teacher and checks it matches.

    >>> torch.manual_seed(0) is not None
    True
    >>> a = nn.Conv2d(3, 3, 1)
    >>> teacher_fingerprint(a) == teacher_fingerprint(copy.deepcopy(a)), teacher_fingerprint(None)
    (True, None)
    """
    if teacher is None:
        return None
    digest = hashlib.sha256()
    for name, tensor in sorted(teacher.state_dict().items()):
        digest.update(name.encode())
        if isinstance(tensor, torch.Tensor):
            digest.update(tensor.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
