"""One-shot magnitude N:M: keep the N largest of every group of M, then optionally fine-tune.

``Spec(method="nm", n=2, m=4)`` keeps 2 of every 4; ``Spec(method="nm", budget=0.25, m=16)``
takes the largest uniform N whose MACs fit the budget; with ``n_per_layer="magnitude"`` N is chosen
per layer (:func:`~fxprune.methods.nm_alloc.allocate_n`: the units with the least squared magnitude
per MAC go first) so the MACs land on the budget up to one layer's unit, which matches the cost of
another model (e.g. an SLS result) instead of staying below it. With ``steps`` (or a training
config) the masked model is fine-tuned under the frozen mask; ``hardware="2:4"`` keeps only
2:4-valid patterns.

>>> import torch, fxprune
>>> from fxprune.models import build
>>> x = torch.randn(1, 3, 12, 12)
>>> pruner = fxprune.prepare(build("edsr", blocks=2, channels=16), fxprune.Spec(method="nm", n=2, m=4), x)
>>> pruner.done, set(pruner.frozen.values())
(True, {2})
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import SpecError
from ..spec import Spec, check_count
from .base import Method, register_method
from ..spec import check_choice
from .nm_alloc import LayerUnits, allocate_n, unit_losses
from .nm_core import NM_FIELDS, NMPrunerBase, build, check_nm_fields

N_PER_LAYER = ("uniform", "magnitude")


class NMPruner(NMPrunerBase):
    """A frozen magnitude N:M mask with optional fine-tuning (``spec.steps``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.freeze(self.magnitude_n() if self.spec.n_per_layer == "magnitude" else self.uniform_n())

    def uniform_n(self) -> dict[str, int]:
        """``spec.n`` everywhere, or the largest uniform N within ``spec.budget`` (per-layer overrides win)."""
        caps = {p: (s.m // 2 if self.spec.hardware == "2:4" else s.m) for p, s in self.sites.items()}
        def at(n: int) -> dict[str, int]:
            return {p: (s.n if s.n is not None else min(n, caps[p])) for p, s in self.sites.items()}
        if self.spec.budget is None:
            return at(self.spec.n)
        for n in range(max(caps.values()), 0, -1):
            if self.macs(at(n)) <= self.spec.budget * self.dense_macs:
                return at(n)
        raise SpecError("budget", f"{self.spec.budget} is out of reach even at N=1")  # prepare checked already

    def magnitude_n(self) -> dict[str, int]:
        """N per layer whose MACs land on ``spec.budget`` up to one layer's unit (per-layer ``n``
        overrides stay fixed), dropping the units of least squared magnitude per MAC first."""
        layers = {}
        for p, site in self.sites.items():
            mask = self.masks[p]
            layers[p] = LayerUnits(site.macs, site.m, unit_losses(self.model.get_parameter(p), mask),
                                   floor=site.n or 1, cap=site.n or mask.n_max)
        return allocate_n(layers, self.spec.budget * self.dense_macs, other_macs=self.dense_macs - self._fixed)

    @property
    def phase(self) -> str:
        return "done" if self.done else "finetune"

    @property
    def done(self) -> bool:
        return self.step_count >= self.total_steps

    @property
    def total_steps(self) -> int:
        return int(self.spec.steps or 0)

    def penalty(self) -> torch.Tensor:
        return torch.zeros((), device=self._device())

    def step(self) -> None:
        self.step_count += 1

    def __repr__(self) -> str:
        return (f"NMPruner({len(self.masks)} masked weights, step {self.step_count}/{self.total_steps}, "
                f"MACs {self.cost_fraction(self.frozen):.3f} of dense, mean N/M {self.density():.3f})")


def prepare_nm(model: nn.Module, spec: Spec, example_inputs: Any) -> NMPruner:
    graph, gm, sites, dense = build(model, spec, example_inputs)
    return NMPruner(graph, spec, gm, sites, dense, example_inputs)


def validate_nm(spec: Spec) -> None:
    """The N:M checks, then exactly one of ``n`` and ``budget``, with ``n`` within the group size.

    >>> Spec(method="nm", n=3, m=4, hardware="2:4")
    Traceback (most recent call last):
    ...
    fxprune.errors.SpecError: spec field 'n': must be at most 2 for m=4 in 2:4 mode, got 3
    """
    check_nm_fields(spec)
    check_choice("n_per_layer", spec.n_per_layer, N_PER_LAYER, "choice of N per layer")
    if spec.n_per_layer == "magnitude" and spec.budget is None:
        raise SpecError("n_per_layer", "'magnitude' chooses N per layer to meet a MAC budget: set budget= "
                        "(e.g. budget=0.112), not n=", value=spec.n_per_layer)
    if (spec.n is None) == (spec.budget is None):
        raise SpecError("n", "method 'nm' needs exactly one of n= (e.g. n=2, m=4) or budget=", value=spec.n)
    if spec.n is not None:
        check_count("n", spec.n, minimum=1)
        n_max = spec.m // 2 if spec.hardware == "2:4" else spec.m - 1
        if spec.n > n_max:
            raise SpecError("n", f"must be at most {n_max} for m={spec.m}{' in 2:4 mode' if spec.hardware else ''}, "
                            f"got {spec.n}", value=spec.n)


NM = register_method(Method("nm", trains=False, prepare=prepare_nm,
                            summary="one-shot magnitude N:M (optionally fine-tuned under the frozen mask)",
                            owns=(*NM_FIELDS, "n", "n_per_layer"), own_overrides=("m", "n"), validate=validate_nm))
