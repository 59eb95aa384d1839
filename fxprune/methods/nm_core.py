"""What SLS and one-shot N:M share: which weights get masks, what a layer costs, freezing,
the greedy cut, checkpoints and ``convert``."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.fx as fx
from torch import nn

from ..analysis import analyze
from ..counting import count_macs
from ..errors import CheckpointError, ParityError, SpecError
from ..eval_mode import eval_mode
from ..graph import ChannelGraph
from ..graph_mode import copy_graph_module, enable_train_eval
from ..passes.fold_weight_modules import FoldWeightModules
from ..passes.insert_nm_masks import NM_MASKS, InsertNMMasks, NMMask, masks_of, weight_reads
from ..record import mark_prepared, stamp
from ..spec import Spec, check_choice, check_count, check_positive
from ..trace import as_inputs
from .base import Pruner, from_rank0

STATE_FORMAT = "fxprune.nm-pruner"
STATE_VERSION = 1
HARDWARE = ("2:4",)
# the Spec fields every N:M method owns (one method may own more)
NM_FIELDS = ("steps", "m", "budget", "hardware")
NM_FIELDS_DOC = """N:M fields (``method="sls"``: learned N per layer; ``method="nm"``: one-shot magnitude N:M).
Groups are ``m`` consecutive input channels per output filter and kernel tap; only conv /
linear weights whose reduction length is a multiple of ``m`` are masked, and the layers that
read the model input or write its output stay dense unless an override names them. Overrides
take ``m`` (``sls``) or ``m`` and ``n`` (``nm``).
    m: the group size M (16).
    n: ``nm`` only: keep the ``n`` largest of every group (1 ≤ n < m).
    n_per_layer: ``nm`` with ``budget``: ``"uniform"`` (the largest uniform N within the
        budget) or ``"magnitude"`` (N per layer, the units of least squared magnitude per MAC
        dropped first, so the MACs land on the budget up to one layer's unit).
    budget: keep at most this fraction of the dense MACs (0 < budget ≤ 1). ``sls`` needs it;
        ``nm`` takes ``n`` or ``budget`` (then the largest uniform N that fits). ``macs`` is
        an alias.
    hardware: ``"2:4"``: only the top 2 of every aligned block of 4 may be kept, so every
        pattern runs on NVIDIA sparse tensor cores; N is capped at M/2.
    steps: for ``sls`` the total of search and fine-tuning; for ``nm`` the optional
        fine-tuning under the frozen mask.
    rerank_every: re-rank the weights of every group from their magnitudes this often (1000).
    reg_weight: λ of the cost penalty ``λ · anneal · cost``, cost normalized by the dense
        MACs (1.4e-3, the paper's 1e-10 on raw MACs translated; annealing adjusts it).
    anneal_every / anneal_factor / anneal_threshold: every ``anneal_every`` steps (500), if
        the compression ratio (dense / current MACs) grew by less than ``anneal_threshold``
        (0.2), ``anneal *= anneal_factor`` (1.2). These are the official code's values; the
        paper's text says 1.1 and 0.1.
    search_steps: the budget must be met by this step (default: half of ``steps``); if the
        search has not met it, a greedy cut does (with a warning) and fine-tuning starts.
"""


def check_nm_fields(spec: Spec) -> None:
    """The checks every N:M method's ``validate`` starts with: ``m``, the search settings and
    ``hardware``; :class:`~fxprune.SpecError` naming the field.

    >>> check_nm_fields(Spec(method="nm", n=2, m=4))
    """
    check_count("m", spec.m, minimum=2)
    for name in ("rerank_every", "anneal_every"):
        check_count(name, getattr(spec, name), minimum=1)
    if spec.search_steps is not None:
        check_count("search_steps", spec.search_steps, minimum=0)
    check_positive("reg_weight", spec.reg_weight, allow_zero=True)
    check_positive("anneal_threshold", spec.anneal_threshold, allow_zero=True)
    if isinstance(spec.anneal_factor, bool) or not isinstance(spec.anneal_factor, (int, float)) \
            or spec.anneal_factor < 1:
        raise SpecError("anneal_factor", f"must be a number >= 1, got {spec.anneal_factor!r}", value=spec.anneal_factor)
    if spec.hardware is not None and spec.hardware not in HARDWARE:
        raise SpecError("hardware", f"unknown hardware pattern {spec.hardware!r}; choose None or one of "
                        f"{', '.join(HARDWARE)}", value=spec.hardware)
    if spec.hardware == "2:4" and spec.m % 4:
        raise SpecError("m", f"hardware='2:4' needs m divisible by 4, got {spec.m}", value=spec.m)


@dataclass(frozen=True)
class NMSite:
    """One masked weight: its parameter, module, group size, fixed N (if any) and dense MACs."""

    param: str
    module: str
    m: int
    n: int | None
    macs: int


def _boundary_weights(graph: ChannelGraph, weights: set[str]) -> set[str]:
    """Of ``weights``, those whose output channels are fixed as the model output, and those whose
    input channels belong to no group: no layer produces them, they are the model input."""
    out, fed = set(), set()
    for group in graph.groups:
        for member in group.members:
            if member.param is None:
                continue
            if member.dim == 1:
                fed.add(member.param)
            if member.dim == 0 and "model output" in group.fixed_reasons:
                out.add(member.param)
    return out | (set(weights) - fed)


def select_sites(graph: ChannelGraph, spec: Spec, example_inputs: Any) -> tuple[dict[str, NMSite], int]:
    """The weights to mask (param -> :class:`NMSite`) and the dense MACs of the model.

    Raises :class:`~fxprune.SpecError` for an override that matches no conv/linear weight, an
    override ``m`` that does not divide its layer, and a model without any eligible weight.
    """
    gm = graph.gm
    reads = weight_reads(gm)
    modules = {param.rpartition(".")[0]: graph.module_types.get(param.rpartition(".")[0]) for param in reads}
    unmatched = spec.unmatched_keys(modules)
    if unmatched:
        raise SpecError(f"overrides[{unmatched[0]!r}]", "matches no conv or linear layer of this model; modules: "
                        f"{', '.join(list(modules)[:8])}{' …' if len(modules) > 8 else ''}")
    report = count_macs(gm, example_inputs, per_layer=True)
    by_node = {layer.node: layer.macs for layer in report.layers}
    boundary = _boundary_weights(graph, set(reads))
    n_cap = spec.m // 2 if spec.hardware == "2:4" else spec.m - 1
    sites: dict[str, NMSite] = {}
    for param, nodes in reads.items():
        module = param.rpartition(".")[0]
        settings = spec.settings_for(module, modules[module])
        if settings is None:
            continue
        named = bool(spec._matching(module, modules[module]))
        if param in boundary and not named:
            continue
        m = int(settings.get("m", spec.m))
        where = f"overrides[{module!r}]"
        reduction = gm.get_parameter(param).shape[1]
        if reduction % m:
            if "m" in settings:
                raise SpecError(f"{where}.m", f"{module} reduces over {reduction} channels, not a multiple of m={m}")
            continue
        if spec.hardware == "2:4" and m % 4:
            raise SpecError(f"{where}.m", f"hardware='2:4' needs m divisible by 4, got {m}")
        n = settings.get("n")
        cap = m // 2 if spec.hardware == "2:4" else m
        if n is not None and n > cap:
            raise SpecError(f"{where}.n", f"must be at most {cap} for m={m}, got {n}")
        if n is None and spec.method == "nm" and spec.n is not None:
            n = min(spec.n, cap if "m" in settings else n_cap)
        sites[param] = NMSite(param, module, m, n, sum(by_node.get(node.name, 0) for node in nodes))
    if not sites:
        raise SpecError("m", f"no conv or linear weight of this model reduces over a multiple of m={spec.m} "
                        "channels (the layers reading the input or writing the output stay dense); try a smaller "
                        "m, or name a layer in overrides")
    return sites, report.total


def build(model: nn.Module, spec: Spec, example_inputs: Any) -> tuple[ChannelGraph, fx.GraphModule, dict[str, NMSite], int]:
    """Trace and analyze ``model``, and put an N:M mask on every selected weight of a copy."""
    inputs = as_inputs(example_inputs)
    graph = analyze(model, inputs)
    sites, dense = select_sites(graph, spec, inputs)
    gm = copy_graph_module(graph.gm)
    gm = InsertNMMasks({p: (s.m, spec.hardware) for p, s in sites.items()})(gm).gm
    mark_prepared(gm, graph, spec)
    return graph, gm, sites, dense


class NMPrunerBase(Pruner):
    """An N:M run: the masked model, its sites and cost model; subclasses add the schedule."""

    def __init__(self, graph: ChannelGraph, spec: Spec, model: fx.GraphModule, sites: dict[str, NMSite],
                 dense_macs: int, example_inputs: Any):
        self.graph = graph
        self.spec = spec
        self.model = model
        self.sites = sites
        self.dense_macs = dense_macs
        self.example_inputs = tuple(t.detach().clone() if isinstance(t, torch.Tensor) else t
                                    for t in as_inputs(example_inputs))
        self.masks: dict[str, NMMask] = masks_of(model, sites)
        self.step_count = 0
        self.frozen: dict[str, int] | None = None
        self._fixed = sum(s.macs for s in sites.values())
        low = self.macs(self.minimal_n())
        if spec.budget is not None and low > spec.budget * dense_macs:
            raise SpecError("budget", f"{spec.budget} is out of reach: with every masked layer at its smallest N the "
                            f"model keeps {low / dense_macs:.3f} of its MACs (dense layers stay dense); raise the "
                            "budget, lower m's N (n overrides) or mask more layers", value=spec.budget)

    # ------------------------------------------------------------------ cost
    def minimal_n(self) -> dict[str, int]:
        return {p: (s.n if s.n is not None else 1) for p, s in self.sites.items()}

    def current_n(self) -> dict[str, int]:
        """N of every masked weight now."""
        return {p: mask.n() for p, mask in self.masks.items()}

    def macs(self, ns: Mapping[str, int] | None = None) -> int:
        """MACs of one forward on the example input with these N (default: the current ones)."""
        ns = self.current_n() if ns is None else ns
        return self.dense_macs - self._fixed + sum(s.macs * ns[p] // s.m for p, s in self.sites.items())

    def cost_fraction(self, ns: Mapping[str, int] | None = None) -> float:
        return self.macs(ns) / self.dense_macs

    def soft_cost(self) -> torch.Tensor:
        """The differentiable cost (through the straight-through N), normalized by the dense MACs."""
        total = torch.zeros((), device=self._device())
        for p, site in self.sites.items():
            total = total + (site.macs / site.m) * (1 + self.masks[p].keep_ste().sum())
        return (self.dense_macs - self._fixed + total) / self.dense_macs

    def density(self) -> float:
        """Mean N/M over the masked weights, weighted by their MACs."""
        ns = self.frozen or self.current_n()
        return sum(s.macs * ns[p] / s.m for p, s in self.sites.items()) / max(1, self._fixed)

    def status(self) -> dict[str, Any]:
        return {"phase": self.phase, "MACs": round(self.cost_fraction(self.frozen), 4), "N/M": round(self.density(), 3)}

    def aux_parameters(self) -> list[nn.Parameter]:
        return [mask.scores for mask in self.masks.values()]

    # ------------------------------------------------------------------ decisions
    def freeze(self, ns: Mapping[str, int]) -> None:
        """Fix N per weight (rank 0's choice under torch.distributed) and re-rank."""
        ns = from_rank0(dict(ns))
        for p, n in ns.items():
            self.masks[p].freeze(n)
        self.frozen = ns
        self.rerank()

    def rerank(self) -> None:
        for p, mask in self.masks.items():
            mask.rerank(self.model.get_parameter(p))

    def greedy_cut(self, ns: Mapping[str, int]) -> dict[str, int]:
        """Lower N, one unit at a time, where the unit's keep probability per MAC saved is smallest,
        until the budget holds."""
        ns = dict(ns)
        probs = {p: mask.probabilities().detach().cpu() for p, mask in self.masks.items()}
        limit = self.spec.budget * self.dense_macs
        floor = self.minimal_n()
        while self.macs(ns) > limit:
            options = [(float(probs[p][ns[p] - 2]) / (s.macs / s.m or 1), p)
                       for p, s in self.sites.items() if ns[p] > floor[p]]
            if not options:
                break
            ns[min(options)[1]] -= 1
        return ns

    # ------------------------------------------------------------------ convert
    def convert(self) -> fx.GraphModule:
        """Bake the masks into the weights as zeros; record N and M per weight in ``gm.meta["fxprune"]``."""
        if not self.done:
            warnings.warn(f"converting at step {self.step_count} of {self.total_steps} (phase '{self.phase}'): "
                          "the schedule has not finished", stacklevel=2)
        ns = self.frozen or self.current_n()
        gm = copy_graph_module(self.model)
        gm = enable_train_eval(FoldWeightModules(NM_MASKS)(gm).gm, mode=False)
        nm = {p: {"n": ns[p], "m": s.m, "hardware": self.spec.hardware} for p, s in self.sites.items()}
        stamp(gm, self.graph, {}, self.spec, steps=self.step_count, nm=nm,
              macs={"dense": self.dense_macs, "sparse": self.macs(ns)})
        self._check(gm)
        return gm

    def _check(self, small: fx.GraphModule) -> None:
        with eval_mode(self.model, small), torch.no_grad():
            inputs = tuple(t.to(self._device()) if isinstance(t, torch.Tensor) else t for t in self.example_inputs)
            want, got = self.model(*inputs), small(*inputs)
        rtol, atol = 1e-4, 1e-5
        try:
            torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
        except AssertionError as error:
            comparable = all(isinstance(t, torch.Tensor) and t.numel() for t in (got, want)) and got.shape == want.shape
            raise ParityError(f"the converted N:M model differs from the masked one: {error}",
                              max_error=float((got - want).abs().max()) if comparable else None,
                              tolerance=atol + rtol * float(want.abs().max()) if comparable else None,
                              input_shapes=[tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor)]) from error

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ checkpoints
    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        """Spec, step, frozen N, schedule state and the masked model's tensors (ranks and scores too)."""
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "spec": self.spec.to_dict(),
                "step": self.step_count, "frozen": dict(self.frozen) if self.frozen else None,
                "model": self.model.state_dict(), **self._extra_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; raises :class:`~fxprune.CheckpointError` on a mismatch."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise CheckpointError("not an fxprune N:M pruner state (missing or wrong 'format')")
        if state.get("version") != STATE_VERSION:
            raise CheckpointError(f"pruner state version {state.get('version')!r}; this fxprune reads {STATE_VERSION}")
        try:
            spec = Spec.from_dict(state["spec"])
            step, frozen, weights = int(state["step"]), state["frozen"], state["model"]
        except (KeyError, TypeError, ValueError, SpecError) as error:
            raise CheckpointError(f"pruner state is incomplete or corrupt: {error}") from error
        if spec != self.spec:
            raise CheckpointError("the checkpoint was made with another spec; call prepare() with the same spec to resume")
        own = set(self.model.state_dict())
        if set(weights) != own:
            missing = sorted(own - set(weights))[:3] or sorted(set(weights) - own)[:3]
            raise CheckpointError(f"the checkpoint's model tensors do not match this model (e.g. {missing})")
        for mask in self.masks.values():
            mask.scores.requires_grad_(True)
        self.model.load_state_dict(weights)
        self.step_count = step
        self.frozen = None
        if frozen:
            for p, n in frozen.items():
                self.masks[p].freeze(int(n))
            self.frozen = {p: int(n) for p, n in frozen.items()}
        self._load_extra_state(state)
