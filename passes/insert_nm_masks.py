"""N:M masks on conv / linear weights, as modules applied to the weight (SLS, one-shot N:M).

Groups are M consecutive *input* channels of one output filter at one kernel tap (the layout of
NVIDIA's 2:4 tooling). Inside a group every weight has a magnitude rank (0 = largest |w|),
stored once as a small integer tensor of the weight's shape. With M−1 layer-wise scores ``k``
(SLS's learnable N), ``p = cumprod(clamp(k, 0, 1.03))`` is non-increasing, ``b = p > 0.5`` and
the straight-through ``b − p.detach() + p`` gives

    mask = cat([1], b_ste)[rank]

which equals the paper's unit stack ``unit_0 + Σ_i b_ste[i−1]·unit_i`` (``unit_i = rank == i``)
in value and gradient, without M copies of the weight. ``N = 1 + Σ b``: a unit can only be
dropped after every smaller-magnitude unit is dropped (priority order).

``clamp`` inside the forward gives no gradient to a score outside [0, 1.03], so a score the task
loss pushed above the range could stay there: :meth:`NMMask.project` puts the scores back into
the range and the pruners call it after every optimizer step.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch
import torch.fx as fx
from torch import nn

from fxprune.pass_infra import PassBase, PassResult

from .insert_weight_modules import InsertWeightModules, calls_under

NM_MASKS = "fxprune_nm_masks"
SCORE_MAX = 1.03
HARDWARE = ("2:4",)

_aten = torch.ops.aten
_CONVS = {_aten.conv1d.default, _aten.conv2d.default, _aten.conv3d.default,
          _aten.conv1d.padding, _aten.conv2d.padding, _aten.conv3d.padding}


def grouped(weight: torch.Tensor, m: int) -> torch.Tensor:
    """``[Cout, Cin, *k]`` -> ``[Cout, *k, Cin/m, m]``: one row per N:M group."""
    moved = weight.movedim(1, -1)
    return moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)


def ungrouped(groups: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The inverse of :func:`grouped` for a weight of ``shape``."""
    moved = groups.reshape(*groups.shape[:-2], -1)
    return moved.movedim(-1, 1).reshape(shape)


def nm_ranks(weight: torch.Tensor, m: int, hardware: str | None = None) -> torch.Tensor:
    """Rank of every weight inside its group of ``m`` by |w| (0 = largest), as ``uint8``.

    With ``hardware="2:4"`` the top 2 of every aligned block of 4 come first, so keeping any
    N ≤ M/2 of a group is 2:4-valid.

    >>> nm_ranks(torch.tensor([[0.1, -3.0, 2.0, 0.5]]), 4).tolist()
    [[3, 0, 1, 2]]
    """
    magnitude = grouped(weight.detach().abs(), m)
    order = magnitude.argsort(dim=-1, descending=True, stable=True)
    if hardware == "2:4":
        blocks = magnitude.reshape(*magnitude.shape[:-1], m // 4, 4)
        in_block = blocks.argsort(dim=-1, descending=True, stable=True).argsort(dim=-1)
        eligible_last = (in_block >= 2).reshape(magnitude.shape).to(torch.uint8)
        second = torch.gather(eligible_last, -1, order).argsort(dim=-1, stable=True)
        order = torch.gather(order, -1, second)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(m, device=order.device).expand_as(order))
    return ungrouped(rank, weight.shape).to(torch.uint8).contiguous()


class NMMask(nn.Module):
    """``forward(w) = w · cat([1], b_ste)[rank]``: a learnable (or frozen) N:M mask of one weight.

    >>> w = torch.randn(4, 8, 3, 3)
    >>> mask = NMMask(w, m=4)
    >>> torch.equal(mask(w), w), mask.n()          # all scores 1: N = M, the original weight
    (True, 4)
    >>> mask.freeze(2); (mask(w) != 0).sum().item() == w.numel() // 2
    True
    """

    def __init__(self, weight: torch.Tensor, m: int, hardware: str | None = None):
        super().__init__()
        if m < 2 or weight.shape[1] % m:
            raise ValueError(f"the reduction length {weight.shape[1]} is not a multiple of m={m}")
        if hardware is not None and (hardware not in HARDWARE or m % 4):
            raise ValueError(f"hardware={hardware!r} needs m divisible by 4 and one of {HARDWARE}")
        self.m = m
        self.hardware = hardware
        self.n_max = m // 2 if hardware == "2:4" else m
        self.scores = nn.Parameter(torch.ones(m - 1, device=weight.device))
        self.register_buffer("rank", nm_ranks(weight, m, hardware))
        self.register_buffer("allowed", (torch.arange(m - 1, device=weight.device) < self.n_max - 1).float())

    def probabilities(self) -> torch.Tensor:
        """``p``: the keep probability of units 1 … M−1 (non-increasing)."""
        return torch.cumprod(self.scores.clamp(0, SCORE_MAX), 0) * self.allowed

    def keep_ste(self) -> torch.Tensor:
        """``b_ste``: exactly 0/1 in value, the gradient of ``p``."""
        p = self.probabilities()
        return (p > 0.5).to(p.dtype) - p.detach() + p

    def n(self) -> int:
        """The current N (1 + the units kept after the first)."""
        return 1 + int((self.probabilities() > 0.5).sum())

    def mask(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        values = self.keep_ste()
        values = torch.cat([torch.ones(1, dtype=values.dtype, device=values.device), values])
        return values.to(dtype or values.dtype)[self.rank.long()]

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask(weight.dtype)

    @torch.no_grad()
    def rerank(self, weight: torch.Tensor) -> None:
        """Recompute the ranks from the weight's current magnitudes."""
        self.rank.copy_(nm_ranks(weight, self.m, self.hardware))

    @torch.no_grad()
    def project(self) -> None:
        """Clamp the scores into [0, 1.03] (call after each optimizer step)."""
        self.scores.clamp_(0, SCORE_MAX)

    @torch.no_grad()
    def freeze(self, n: int) -> None:
        """Fix N: scores become exactly 1 for the kept units and 0 for the rest; no more training."""
        if not 1 <= n <= self.n_max:
            raise ValueError(f"n must be in [1, {self.n_max}], got {n}")
        self.scores.copy_((torch.arange(self.m - 1, device=self.scores.device) < n - 1).float())
        self.scores.requires_grad_(False)

    @property
    def frozen(self) -> bool:
        return not self.scores.requires_grad

    def extra_repr(self) -> str:
        extra = f", hardware={self.hardware}" if self.hardware else ""
        return f"m={self.m}{extra}"


def weight_reads(gm: fx.GraphModule) -> dict[str, list[fx.Node]]:
    """Parameter name -> the non-transposed conv / linear nodes that use it as their weight."""
    out: dict[str, list[fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function" or len(node.args) < 2:
            continue
        if node.target in _CONVS or node.target == _aten.linear.default or (
                node.target == _aten.convolution.default and not node.args[6]):
            weight = node.args[1]
            if isinstance(weight, fx.Node) and weight.op == "get_attr":
                out.setdefault(str(weight.target), []).append(node)
    return out


class InsertNMMasks(PassBase[dict[str, str]]):
    """Put an :class:`NMMask` on each ``param -> (m, hardware)``, in place (a thin use of
    :class:`~fxprune.passes.insert_weight_modules.InsertWeightModules`); produces param -> mask
    module path.

    >>> import torch, fxprune
    >>> gm = fxprune.trace(torch.nn.Conv2d(8, 4, 3), torch.randn(1, 8, 8, 8))
    >>> InsertNMMasks({"weight": (4, None)})(gm).produced
    {'weight': 'fxprune_nm_masks.weight'}
    >>> list(masks_of(gm))
    ['weight']
    """

    name = "insert_nm_masks"
    in_place = True

    def __init__(self, sites: Mapping[str, tuple[int, str | None]]):
        super().__init__()
        self.sites = dict(sites)

    def call(self, gm: fx.GraphModule) -> PassResult[dict[str, str]]:
        masks = {p: NMMask(gm.get_parameter(p), m, hw) for p, (m, hw) in self.sites.items()}
        return InsertWeightModules(masks, NM_MASKS)(gm)


def masks_of(gm: fx.GraphModule, sites: Iterable[str] | None = None) -> dict[str, NMMask]:
    """Param name -> its mask module, for every N:M mask in ``gm``."""
    out = {str(node.args[0].target): gm.get_submodule(node.target) for node in calls_under(gm, NM_MASKS)}
    return out if sites is None else {p: out[p] for p in sites}
