"""ASSL: Aligned Structured Sparsity Learning, as a registered method (``Spec(method="assl")``).

``prepare`` traces the model, analyzes its channel groups, picks the channels each pruned group
will lose (by L1 norm, jointly over all producers of a group) and gates every producer weight.
The returned :class:`AsslPruner` holds the gated GraphModule (``pruner.model``) and the
schedule; ``pruner.penalty()`` is added to the loss and ``pruner.step()`` called after each
optimizer step. With ``Spec.shrink="schedule"`` (default) ``step()`` also caps the unimportant
gates and biases at a fraction of their start magnitude that falls to 0 at the prune point
(:meth:`AsslSchedule.cap`), whatever the optimizer did, so the prune point is lossless at any
schedule length; ``"paper"`` leaves the gates to the penalty alone. At the end of the schedule's
hold phase the unimportant channels are masked out of the activations, so fine-tuning trains
exactly the model that ``convert`` will slice.

The user's loop around it is the example of :func:`fxprune.prepare`.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Mapping

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from ..analysis import analyze
from ..budget import ratio_for_macs
from ..errors import CheckpointError, SpecError
from ..graph import ChannelGraph
from ..graph_mode import copy_graph_module, enable_train_eval
from ..latency import plan_for_latency
from ..masking import MASK_BUFFER, insert_channel_masks, remove_channel_masks
from ..passes import pipeline
from ..passes.insert_assl_gates import InsertAsslGates
from ..record import mark_prepared, stamp
from ..schedule import AsslSchedule
from ..selection import CHANNEL_FIELDS, plan_keep, request_outcome, warn_undone
from ..spec import Spec, check_choice, check_count, check_positive
from ..verify import verify_sliced
from .assl_penalty import GatedGroup, gate_scores, si_penalty, ssa_loss
from .base import Method, Pruner, from_rank0, register_method

STATE_FORMAT = "fxprune.assl-pruner"
STATE_VERSION = 2


class AsslPruner(Pruner):
    """The state of one ASSL run; create it with ``fxprune.prepare(model, Spec(method="assl", ...), x)``.

    Attributes:
        model: the gated GraphModule to train (wrap it in DDP if you like).
        graph: the channel analysis of the original model.
        schedule: the step counts of every phase.
        step_count: optimizer steps taken so far (``step()`` calls).
        unimportant: per pruned group id, a bool per unit: True for the units that will be removed.
    """

    def __init__(self, graph: ChannelGraph, spec: Spec, model: fx.GraphModule, groups: list[GatedGroup],
                 unimportant: dict[int, np.ndarray]):
        self.graph = graph
        self.spec = spec
        self.model = model
        self.groups = groups
        self.unimportant = unimportant
        has_coupled = any(g.coupled for g in groups)
        self.uses_ssa = spec.align == "ssa" and has_coupled
        self.schedule = AsslSchedule.from_spec(spec, with_ssa=self.uses_ssa)
        self.step_count = 0
        self.masked = False
        self._repicked = not self.uses_ssa
        self._masks_cache: dict[tuple[int, str], torch.Tensor] = {}
        self._shrink_from: dict[str, torch.Tensor] = {}   # |param| when its group's penalty started

    # ------------------------------------------------------------------ the training hooks
    @property
    def phase(self) -> str:
        """``align``, ``grow``, ``hold``, ``finetune`` or ``done``."""
        return self.schedule.phase(self.step_count)

    @property
    def done(self) -> bool:
        return self.step_count >= self.schedule.total

    @property
    def total_steps(self) -> int:
        return self.schedule.total

    def _start(self, group: GatedGroup) -> int:
        return self.schedule.ssa if (group.coupled and self.uses_ssa) else 0

    def alpha(self, group: GatedGroup | None = None) -> float:
        """The current penalty factor (of one group, or the largest over all groups)."""
        if group is not None:
            return self.schedule.alpha(self.step_count, self._start(group))
        return max((self.alpha(g) for g in self.groups), default=0.0)

    def penalty(self) -> torch.Tensor:
        """The regularization term to add to the task loss for this step (differentiable).

        ½·α·Σ(γ² + b²) over the unimportant channels of every group whose penalty is on (its
        gradient α·γ is the coupled L2 that the official code adds before Adam's step), and
        during the alignment phase ``ssa_weight`` · SSA on coupled groups.
        """
        total = torch.zeros((), device=self._device())
        if self.masked:
            return total
        for group in self.groups:
            if group.coupled and self.uses_ssa and self.step_count < self.schedule.ssa:
                kept = int((~self.unimportant[group.gid]).sum())
                loss = ssa_loss(self.model, group, kept)
                if loss is not None and self.spec.ssa_weight > 0:
                    total = total + self.spec.ssa_weight * loss
                continue
            alpha = self.alpha(group)
            if alpha > 0:
                total = total + alpha * si_penalty(self.model, group, self._unimportant_tensor(group))
        return total

    def step(self) -> None:
        """Advance the schedule by one optimizer step; call it after ``optimizer.step()``."""
        self.step_count += 1
        if not self._repicked and self.step_count >= self.schedule.ssa:
            self._pick(coupled_only=True)
            self._repicked = True
        if self.spec.shrink == "schedule" and not self.masked:
            self._shrink()
        if not self.masked and self.step_count >= self.schedule.prune_at:
            self._mask()

    # ------------------------------------------------------------------ decisions
    def keep(self) -> dict[int, np.ndarray]:
        """The keep-set (bool per unit) of every pruned group."""
        return {gid: ~units for gid, units in self.unimportant.items()}

    def sparsity(self) -> float:
        """Fraction of the pruned groups' units that will be removed."""
        total = sum(len(u) for u in self.unimportant.values())
        return float(sum(u.sum() for u in self.unimportant.values()) / total) if total else 0.0

    def status(self) -> dict[str, Any]:
        """Phase, penalty factor α and mean |γ| dropped over kept (the progress bar's fields)."""
        return {"phase": self.phase, "α": round(self.alpha(), 4), "γ drop/keep": round(self.gate_ratio(), 3)}

    def aux_parameters(self) -> list[nn.Parameter]:
        """The gates' γ, one per gated weight."""
        return [self.model.get_submodule(site.gate).gamma for group in self.groups for site in group.sites]

    def param_groups(self, lr: float, gate_lr: float | None = None) -> list[dict[str, Any]]:
        """Optimizer groups giving the gates their own learning rate, e.g.
        ``torch.optim.Adam(pruner.param_groups(1e-4, 1e-3))`` (see ``TrainConfig.gate_lr``);
        without ``gate_lr``, one group of every parameter at ``lr``."""
        gates = self.aux_parameters()
        if gate_lr is None or not gates:
            return [{"params": list(self.model.parameters()), "lr": lr}]
        chosen = {id(p) for p in gates}
        rest = [p for p in self.model.parameters() if id(p) not in chosen]
        return [{"params": rest, "lr": lr}, {"params": gates, "lr": gate_lr}]

    def gate_ratio(self) -> float:
        """Mean |γ| of the channels to be removed over that of the kept ones (1 at the start;
        near 0 once the penalty has done its work, so masking them costs little)."""
        dropped, kept = [], []
        for group in self.groups:
            for site, units in zip(group.sites, group.unit_of_channel):
                gamma = self.model.get_submodule(site.gate).gamma.detach().abs().float().cpu().numpy()
                flags = self.unimportant[group.gid][units]
                dropped.append(gamma[flags])
                kept.append(gamma[~flags])
        low, high = np.concatenate(dropped or [np.zeros(0)]), np.concatenate(kept or [np.zeros(0)])
        return float(low.mean() / high.mean()) if low.size and high.size and high.mean() > 0 else 1.0

    def _pick(self, coupled_only: bool) -> None:
        """Re-pick the unimportant units from the gates' |γ|, jointly per group."""
        by_id = {g.gid: g for g in self.groups}
        counts = {gid: int((~u).sum()) for gid, u in self.unimportant.items()} if self.spec.latency is not None else None
        plan = plan_keep(self.graph, self.spec, scores=lambda graph, group: gate_scores(self.model, by_id[group.id]),
                         counts=counts)  # a latency budget's per-group counts were fixed at prepare
        for group in self.groups:
            if coupled_only and not group.coupled:
                continue
            self.unimportant[group.gid] = ~plan[group.gid]
        self.unimportant = from_rank0(self.unimportant)
        self._masks_cache.clear()

    @torch.no_grad()
    def _shrink(self) -> None:
        """Cap every penalized unimportant gate and bias at ``schedule.cap`` × its start magnitude.

        A projection after the optimizer's step: with Adam a penalized gate only drifts by about
        lr per step, so the penalty alone cannot reach 0 on short schedules, and the task loss
        keeps pushing a useful channel back up; the cap bounds it whatever the optimizer.
        """
        for group in self.groups:
            start = self._start(group)
            if self.step_count <= start:
                continue
            cap = self.schedule.cap(self.step_count, start)
            dropped = self._unimportant_tensor(group)
            for k, site in enumerate(group.sites):
                names = [f"{site.gate}.gamma"] + ([site.bias] if site.bias is not None else [])
                for name in names:
                    param = self.model.get_parameter(name)
                    chosen = dropped.to(param.device)[group.units_on(k, param.device)]
                    if name not in self._shrink_from:
                        self._shrink_from[name] = param.detach().abs().clone()
                    limit = self._shrink_from[name].to(param.device) * cap
                    param.copy_(torch.where(chosen, torch.clamp(param, -limit, limit), param))

    def _mask(self) -> None:
        insert_channel_masks(self.model, self.graph, self.keep(), activations_only=True)
        self.masked = True

    def _unimportant_tensor(self, group: GatedGroup) -> torch.Tensor:
        key = (group.gid, str(self._device()))
        if key not in self._masks_cache:
            self._masks_cache[key] = torch.as_tensor(self.unimportant[group.gid], device=self._device())
        return self._masks_cache[key]

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: spec, step, decisions and the gated model's tensors."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "spec": self.spec.to_dict(),
            "step": self.step_count,
            "repicked": self._repicked,
            "unimportant": {gid: np.flatnonzero(u).tolist() for gid, u in self.unimportant.items()},
            "model": {k: v for k, v in self.model.state_dict().items() if not k.startswith(MASK_BUFFER)},
            "shrink_from": {k: v.detach().cpu().clone() for k, v in self._shrink_from.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; raises :class:`~fxprune.CheckpointError` on a mismatch."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise CheckpointError("not an fxprune ASSL pruner state (missing or wrong 'format')")
        if state.get("version") != STATE_VERSION:
            raise CheckpointError(f"pruner state version {state.get('version')!r}; this fxprune reads {STATE_VERSION} "
                                  "(version 2 added the gate shrink's start magnitudes)")
        try:
            spec = Spec.from_dict(state["spec"])
            groups = {int(gid): list(units) for gid, units in state["unimportant"].items()}
            step, repicked, weights = int(state["step"]), bool(state["repicked"]), state["model"]
            shrink_from = {str(k): torch.as_tensor(v) for k, v in state["shrink_from"].items()}
        except (KeyError, TypeError, ValueError, SpecError) as error:
            raise CheckpointError(f"pruner state is incomplete or corrupt: {error}") from error
        if spec != self.spec:
            raise CheckpointError("the checkpoint was made with another spec; call prepare() with the same spec to resume")
        if set(groups) != set(self.unimportant):
            raise CheckpointError("the checkpoint's pruned groups differ from this model's; is it the same architecture?")
        own = {k for k in self.model.state_dict() if not k.startswith(MASK_BUFFER)}
        if set(weights) != own:
            missing = sorted(own - set(weights))[:3] or sorted(set(weights) - own)[:3]
            raise CheckpointError(f"the checkpoint's model tensors do not match this model (e.g. {missing})")
        for gid, units in groups.items():
            flags = np.zeros(len(self.unimportant[gid]), bool)
            flags[units] = True
            self.unimportant[gid] = flags
        self.step_count, self._repicked = step, repicked
        self._shrink_from = shrink_from
        self._masks_cache.clear()
        if self.masked:
            remove_channel_masks(self.model)
            self.masked = False
        self.model.load_state_dict(weights, strict=False)
        if self.step_count >= self.schedule.prune_at:
            self._mask()

    # ------------------------------------------------------------------ convert
    def convert(self) -> fx.GraphModule:
        """Fold the gates, drop the unimportant channels and return a plain, smaller GraphModule.

        The result (in eval mode) computes what ``self.model`` computes once its unimportant
        channels are masked (which they are from the fine-tuning phase on). Converting before the
        schedule has finished works, with a warning.
        """
        if not self.done:
            warnings.warn(f"converting at step {self.step_count} of {self.schedule.total} (phase "
                          f"'{self.phase}'): the schedule has not finished", stacklevel=3)
        gm = remove_channel_masks(copy_graph_module(self.model))
        sliced = pipeline("fold_and_slice", slice_channels={"graph": self.graph, "keep": self.keep()})(gm).gm
        small = enable_train_eval(sliced, mode=False)
        verify_sliced(small, self.model, self.graph, self.keep(), where="convert")
        return stamp(small, self.graph, self.keep(), self.spec, steps=self.step_count,
                     outcome=request_outcome(self.graph, self.spec, self.keep()))

    def __repr__(self) -> str:
        return (f"AsslPruner({len(self.groups)} gated groups, step {self.step_count}/{self.schedule.total}, "
                f"phase {self.phase}, α={self.alpha():.4g}, sparsity {self.sparsity():.2f}, "
                f"|γ| dropped/kept {self.gate_ratio():.3f})")


def prepare_assl(model: nn.Module, spec: Spec, example_inputs: Any) -> AsslPruner:
    """Trace ``model``, gate the producers of every pruned group, and return the pruner
    (``fxprune.prepare`` with ``Spec(method="assl")``; see the module docstring)."""
    graph = analyze(model, example_inputs, norm=spec.norm)
    if spec.macs is not None:  # MACs depend on the kept counts only: fix one ratio now
        spec = dataclasses.replace(spec, ratio=ratio_for_macs(graph, spec, example_inputs), macs=None)
    counts = None
    if spec.latency is not None:  # measured per process: every rank takes rank 0's counts
        counts = from_rank0(plan_for_latency(graph, spec, example_inputs).counts)
    plan = plan_keep(graph, spec, counts=counts)
    gm = copy_graph_module(graph.gm)
    weights = [w for gid in plan for w in graph.groups[gid].producer_weights]
    gated = InsertAsslGates(weights)(gm)
    gm, site_of = gated.gm, {s.param: s for s in gated.produced}
    groups = []
    for gid in plan:
        group = graph.groups[gid]
        members = {(m.param, m.dim): m for m in group.members if m.param is not None}
        sites = [site_of[name] for name, _ in group.producer_weights if name in site_of]
        if not sites:
            continue
        units = [graph.unit_index(group, members[(s.param, s.dim)]) for s in sites]
        groups.append(GatedGroup(gid, group.kind == "coupled", group.channels, sites, units))
    warn_undone("fxprune.prepare", graph, spec, plan if groups else {}, note="training will not prune anything",
                stacklevel=3)
    mark_prepared(gm, graph, spec)
    unimportant = from_rank0({g.gid: ~plan[g.gid] for g in groups})
    return AsslPruner(graph, spec, gm, groups, unimportant)


ALIGNMENTS = ("joint", "ssa")
SHRINKS = ("schedule", "paper")
ASSL_FIELDS = ("align", "reg_step", "reg_interval", "reg_ceiling", "hold_steps", "ssa_steps", "ssa_weight", "shrink",
               "finetune_steps")
ASSL_FIELDS_DOC = """``method="assl"``: Aligned Structured Sparsity Learning (weight-norm gates, a growing L2
penalty on the unimportant gates, then fine-tuning); needs training (``prepare`` / ``convert``
or ``compress(..., train=TrainConfig(...))``). It reads ``ratio`` / ``macs`` / ``latency`` /
``round_to`` as ``l1`` does. Its fields (the paper's values are the defaults; ``steps``
rescales the whole schedule):
    align: ``"joint"`` (default): each group's unimportant set is decided once from the
        scores summed over all its producers, so coupled layers are aligned exactly.
        ``"ssa"``: the paper's sparsity structure alignment (soft masks, −mean(M·Mᵀ)) runs
        on coupled groups for ``ssa_steps`` first; their set is then picked jointly.
    reg_step: Δα, the penalty factor's increment (1e-4).
    reg_interval: K, steps between increments (20).
    reg_ceiling: τ, the factor stops growing there (0.5).
    hold_steps: steps the penalty is held at τ before pruning (43150).
    ssa_steps: steps of SSA before coupled groups are penalized (10000, our choice; ignored
        with ``align="joint"``).
    ssa_weight: weight of the SSA loss (1.0, our choice).
    finetune_steps: steps of fine-tuning with the pruned channels masked (100000, our choice).
    steps: if set, every phase (SSA, growth, hold, fine-tuning) is scaled so the schedule
        takes this many steps in total.
    shrink: ``"schedule"`` (default): besides the penalty, ``pruner.step()`` caps every
        unimportant gate (and its bias) at a fraction of its value when its penalty started;
        the fraction falls with the accumulated penalty factor α and reaches 0 at the prune
        point, so masking costs nothing at any schedule length, whatever the optimizer.
        ``"paper"``: the penalty alone (coupled L2 through the optimizer, as the official
        code); with Adam the gates move about ``lr`` per step, so short schedules prune live
        channels.
"""


def validate_assl(spec: Spec) -> None:
    """The checks of ASSL's own fields (they run for the whole channel family).

    >>> Spec(method="assl", shrink="fast")
    Traceback (most recent call last):
    ...
    fxprune.errors.SpecError: spec field 'shrink': unknown gate shrink 'fast'; choose one of schedule, paper
    """
    check_choice("align", spec.align, ALIGNMENTS, "alignment")
    check_choice("shrink", spec.shrink, SHRINKS, "gate shrink")
    for name in ("reg_step", "reg_ceiling"):
        check_positive(name, getattr(spec, name))
    check_positive("ssa_weight", spec.ssa_weight, allow_zero=True)
    check_count("reg_interval", spec.reg_interval, minimum=1)
    for name in ("hold_steps", "ssa_steps", "finetune_steps"):
        check_count(name, getattr(spec, name), minimum=0)


ASSL = register_method(Method("assl", trains=True, prepare=prepare_assl,
                              summary="Aligned Structured Sparsity Learning: learned channel pruning (ASSL)",
                              owns=(*CHANNEL_FIELDS, "steps", *ASSL_FIELDS), family="channel", validate=validate_assl,
                              fields_doc=ASSL_FIELDS_DOC))
