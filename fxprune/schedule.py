"""The ASSL schedule: when each group is aligned, penalized, held and fine-tuned, and how hard.

Phases, by global step ``t`` (every boundary is a step count):

* ``align``: only with ``align="ssa"`` and coupled groups: SSA on coupled groups for ``ssa``
  steps; free groups are already penalized.
* ``grow``: the penalty factor α of a group rises by ``delta`` every ``interval`` steps from 0
  until it reaches τ (``ceiling``) after ``grow`` steps.
* ``hold``: α stays at τ until ``prune_at``.
* ``finetune``: from ``prune_at`` the unimportant channels are masked out and the penalty is
  off; the schedule ends at ``total``.

With ``shrink="schedule"`` the unimportant gates are also capped, after every step, at
:meth:`AsslSchedule.cap` times their magnitude when the group's penalty started: one minus the
share of the group's total penalty (Σα over its steps) spent so far, so the cap follows α's growth
and reaches 0 at ``prune_at``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .spec import Spec


@dataclass(frozen=True)
class AsslSchedule:
    """Step counts and penalty constants derived from a :class:`~fxprune.spec.Spec`.

    >>> s = AsslSchedule.from_spec(Spec(method="assl", steps=2000))
    >>> s.total, s.alpha(0, start=0), round(s.alpha(s.grow, start=0), 6) == s.ceiling
    (2000, 0.0, True)
    """

    ssa: int
    grow: int
    hold: int
    finetune: int
    interval: int
    delta: float
    ceiling: float

    @classmethod
    def from_spec(cls, spec: Spec, with_ssa: bool | None = None) -> "AsslSchedule":
        """Scale the spec's phases to ``spec.steps`` when it is set (each phase keeps its share)."""
        with_ssa = spec.align == "ssa" if with_ssa is None else with_ssa
        increments = math.ceil(spec.reg_ceiling / spec.reg_step - 1e-9)
        phases = [spec.ssa_steps if with_ssa else 0, spec.reg_interval * increments, spec.hold_steps, spec.finetune_steps]
        if spec.steps is None:
            return cls(*phases, spec.reg_interval, spec.reg_step, spec.reg_ceiling)
        scale = spec.steps / sum(phases)
        ssa, hold, finetune = (int(round(p * scale)) for p in (phases[0], phases[2], phases[3]))
        grow = max(1, spec.steps - ssa - hold - finetune)
        interval = max(1, min(grow, int(round(spec.reg_interval * scale))))
        delta = spec.reg_ceiling / max(1, grow // interval)
        return cls(ssa, grow, hold, finetune, interval, delta, spec.reg_ceiling)

    @property
    def prune_at(self) -> int:
        """The step at which penalties stop and the unimportant channels are masked."""
        return self.ssa + self.grow + self.hold

    @property
    def total(self) -> int:
        return self.prune_at + self.finetune

    def phase(self, step: int) -> str:
        if step < self.ssa:
            return "align"
        if step < self.ssa + self.grow:
            return "grow"
        if step < self.prune_at:
            return "hold"
        if step < self.total:
            return "finetune"
        return "done"

    def alpha(self, step: int, start: int) -> float:
        """Penalty factor at ``step`` for a group whose penalty started at step ``start``."""
        if step < start or step >= self.prune_at:
            return 0.0
        return min(self.delta * ((step - start) // self.interval), self.ceiling)

    def cap(self, step: int, start: int) -> float:
        """After ``step`` steps, the fraction of its start magnitude an unimportant gate may keep
        (group penalized from ``start``): 1 − Σα(start..step−1) / Σα(start..prune_at−1); 0 from
        ``prune_at`` on.

        >>> s = AsslSchedule.from_spec(Spec(method="assl", steps=300))
        >>> s.cap(0, 0), 0 < s.cap(s.prune_at - 1, 0) < 0.05, s.cap(s.prune_at, 0)
        (1.0, True, 0.0)
        """
        if step >= self.prune_at:
            return 0.0
        spent = _alpha_sums(self, start)
        if step <= start or spent[-1] <= 0:
            return 1.0
        return float(1.0 - spent[step - start] / spent[-1])


@functools.lru_cache(maxsize=16)
def _alpha_sums(schedule: AsslSchedule, start: int) -> np.ndarray:
    """``out[k]`` = Σα over the ``k`` steps from ``start`` (k = 0 .. prune_at − start)."""
    steps = np.arange(start, max(start, schedule.prune_at))
    alphas = np.minimum(schedule.delta * ((steps - start) // schedule.interval), schedule.ceiling)
    return np.concatenate([[0.0], np.cumsum(alphas)])
