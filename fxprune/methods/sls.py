"""SLS: learnable layer-wise N:M sparsity under a MAC budget (Oh et al., CVPR 2022).

Every eligible conv / linear weight gets an :class:`~fxprune.passes.insert_nm_masks.NMMask`
with M−1 scores. During the *search* the loss term ``reg_weight · anneal · cost`` (cost = MACs
with the current straight-through N, over the dense MACs) pushes the scores down; every
``anneal_every`` steps ``anneal`` grows by ``anneal_factor`` when the compression ratio grew by
less than ``anneal_threshold``. Once the hard cost is within ``budget`` the masks are frozen
(rank 0 decides under torch.distributed), the penalty stops and the rest of the ``steps`` fine-tune
the masked model. If the budget is not met by ``search_steps`` (default half of ``steps``) a
greedy cut meets it, with a warning, so ``done`` always comes with the budget met.

Under ``DistributedDataParallel`` pass ``find_unused_parameters=True``: from the freeze on the
scores no longer take part in the forward.

After every ``step()`` the scores are projected into [0, 1.03]: the clamp inside the forward gives
no gradient outside that range, so a score pushed above it would otherwise stay there.

>>> import torch, fxprune, warnings
>>> from fxprune.models import build
>>> warnings.simplefilter("ignore")      # 4 steps are too few to learn the budget: a greedy cut warns
>>> x = torch.randn(1, 3, 12, 12)
>>> pruner = fxprune.prepare(build("edsr", blocks=2, channels=16), fxprune.Spec(method="sls", budget=0.5, m=8, steps=4), x)
>>> for _ in range(4):
...     (pruner.model(x).abs().mean() + pruner.penalty()).backward(); pruner.step()
>>> pruner.done, pruner.cost_fraction(pruner.frozen) <= 0.5
(True, True)
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import SpecError
from ..spec import Spec
from .base import Method, from_rank0, register_method
from .nm_core import NM_FIELDS, NM_FIELDS_DOC, NMPrunerBase, build, check_nm_fields


class SlsPruner(NMPrunerBase):
    """The state of one SLS run; create it with ``fxprune.prepare(model, Spec(method="sls", ...), x)``."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.anneal = 1.0
        self.frozen_at: int | None = None
        self._last_ratio = 1.0 / self.cost_fraction()
        steps = self.spec.steps
        self.search_steps = min(steps, self.spec.search_steps if self.spec.search_steps is not None else steps // 2)

    @property
    def phase(self) -> str:
        """``search`` (N is learned), ``finetune`` (N frozen) or ``done``."""
        if self.frozen is None:
            return "search"
        return "done" if self.done else "finetune"

    @property
    def done(self) -> bool:
        return self.frozen is not None and self.step_count >= self.total_steps

    @property
    def total_steps(self) -> int:
        return int(self.spec.steps)

    def penalty(self) -> torch.Tensor:
        """``reg_weight · anneal · cost`` while searching, 0 once N is frozen."""
        if self.frozen is not None:
            return torch.zeros((), device=self._device())
        return self.spec.reg_weight * self.anneal * self.soft_cost()

    def step(self) -> None:
        """After ``optimizer.step()``: project the scores, re-rank, anneal, and freeze once the budget holds."""
        self.step_count += 1
        if self.step_count % self.spec.rerank_every == 0:
            self.rerank()
        if self.frozen is not None:
            return
        for mask in self.masks.values():
            mask.project()
        if self.step_count % self.spec.anneal_every == 0:
            ratio = 1.0 / self.cost_fraction()
            if ratio - self._last_ratio < self.spec.anneal_threshold:
                self.anneal *= self.spec.anneal_factor
            self._last_ratio = ratio
        decision = None
        ns = self.current_n()
        if self.macs(ns) <= self.spec.budget * self.dense_macs:
            decision = ns
        elif self.step_count >= self.search_steps:
            decision = self.greedy_cut(ns)
            warnings.warn(f"SLS: the search did not meet budget={self.spec.budget} in {self.search_steps} steps "
                          f"(MACs at {self.cost_fraction(ns):.3f}); cut greedily to {self.cost_fraction(decision):.3f}. "
                          "Give it more steps or raise reg_weight", stacklevel=2)
        decision = from_rank0(decision)
        if decision is not None:
            self.freeze(decision)
            self.frozen_at = self.step_count

    def status(self) -> dict[str, Any]:
        return {**super().status(), "λ": f"{self.spec.reg_weight * self.anneal:.2e}"}

    def _extra_state(self) -> dict[str, Any]:
        return {"anneal": self.anneal, "last_ratio": self._last_ratio, "frozen_at": self.frozen_at}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.anneal = float(state.get("anneal", 1.0))
        self._last_ratio = float(state.get("last_ratio", 1.0))
        self.frozen_at = state.get("frozen_at")

    def __repr__(self) -> str:
        return (f"SlsPruner({len(self.masks)} masked weights, step {self.step_count}/{self.total_steps}, phase "
                f"{self.phase}, MACs {self.cost_fraction(self.frozen):.3f} of dense, mean N/M {self.density():.3f})")


def prepare_sls(model: nn.Module, spec: Spec, example_inputs: Any) -> SlsPruner:
    if spec.steps is None:
        raise SpecError("steps", "SLS needs the length of its run: set Spec.steps (search + fine-tuning), or "
                        "TrainConfig.steps with fxprune.compress")
    graph, gm, sites, dense = build(model, spec, example_inputs)
    return SlsPruner(graph, spec, gm, sites, dense, example_inputs)


def validate_sls(spec: Spec) -> None:
    """The N:M checks, and a MAC budget, which SLS cannot do without.

    >>> Spec(method="sls", m=8)
    Traceback (most recent call last):
    ...
    fxprune.errors.SpecError: spec field 'budget': method 'sls' learns N per layer under a MAC budget: ...
    """
    check_nm_fields(spec)
    if spec.budget is None:
        raise SpecError("budget", "method 'sls' learns N per layer under a MAC budget: set budget= "
                        "(e.g. 0.25 keeps a quarter of the dense MACs)", value=None)


SLS = register_method(Method(
    "sls", trains=True, prepare=prepare_sls, summary="learnable layer-wise N:M sparsity under a MAC budget (SLS)",
    owns=(*NM_FIELDS, "rerank_every", "reg_weight", "anneal_every", "anneal_factor", "anneal_threshold",
          "search_steps"),
    own_overrides=("m",), validate=validate_sls, fields_doc=NM_FIELDS_DOC))

