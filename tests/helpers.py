"""Shared helpers for tests: random keep-sets and parameter perturbation."""
from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

import fxprune
from fxprune.graph import ChannelGraph
from fxprune.masking import masked_model
from fxprune.passes.slice_channels import slice_channels


@contextlib.contextmanager
def own_threads_and_random_states(threads: int | None = None) -> Iterator[None]:
    """Run a whole command or training run in the test's process as its own process would: on
    ``threads`` torch threads (None: as they are), and afterwards the caller's thread count and the
    global random states as they were (a command seeds torch's; a resumed training run sets numpy's
    and Python's from its checkpoint)."""
    before, states = torch.get_num_threads(), (np.random.get_state(), random.getstate())
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(before)
        np.random.set_state(states[0])
        random.setstate(states[1])


def random_keep(graph: ChannelGraph, rng: np.random.Generator, drop_probability: float = 0.5) -> dict[int, np.ndarray]:
    """Drop each prunable unit with the given probability, always keeping at least one unit per group."""
    keep = {}
    for g in graph.groups:
        prunable = graph.prunable_units(g)
        if not prunable.any():
            continue
        units = ~((rng.random(g.channels) < drop_probability) & prunable)
        if not units.any():
            units[rng.integers(g.channels)] = True
        for member in g.members:  # every tensor of the group keeps at least one channel
            of_member = graph.unit_index(g, member)
            if not units[of_member].any():
                units[of_member[0]] = True
        keep[g.id] = units
    return keep


def perturb_dropped(gm: fx.GraphModule, graph: ChannelGraph, keep: dict[int, np.ndarray], seed: int = 0) -> int:
    """Add noise to every parameter/buffer element that belongs to a dropped unit; returns how many."""
    generator = torch.Generator().manual_seed(seed)
    touched = 0
    with torch.no_grad():
        for gid, units in keep.items():
            group = graph.groups[gid]
            for member in group.members:
                if member.param is None:
                    continue
                dropped = torch.from_numpy(~units[graph.unit_index(group, member)])
                if not dropped.any():
                    continue
                tensor = _tensor(gm, member.param)
                if not tensor.is_floating_point():
                    continue
                index = [slice(None)] * tensor.dim()
                index[member.dim] = dropped
                region = tensor[tuple(index)]
                tensor[tuple(index)] = region + 2.0 * torch.rand(region.shape, generator=generator) + 0.5
                touched += int(region.numel())
    return touched


def _tensor(gm: fx.GraphModule, name: str) -> torch.Tensor:
    try:
        return gm.get_parameter(name)
    except AttributeError:
        return gm.get_buffer(name)


def params_of(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def check_sliced_equals_masked(model: torch.nn.Module, x: torch.Tensor, x_other: torch.Tensor | None, seed: int,
                               norm: str = "exact") -> ChannelGraph:
    """Analyze (statistics as ``norm``), drop random units, and check sliced == masked on ``x`` and another input size."""
    graph = fxprune.analyze(model, (x,), norm=norm)
    keep = random_keep(graph, np.random.default_rng(seed))
    sliced = slice_channels(graph, keep)
    masked = masked_model(graph, keep)
    for inputs in [t for t in (x, x_other) if t is not None]:
        actual = sliced(inputs)
        assert actual.shape == model(inputs).shape
        torch.testing.assert_close(actual, masked(inputs))
    if any((~units).any() for units in keep.values()):
        assert params_of(sliced) < params_of(model)
    return graph


_NORMS = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.PReLU)


def randomize_norms(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every BatchNorm/InstanceNorm/GroupNorm/LayerNorm/PReLU random per-channel parameters and
    statistics, in place, and return the model.

    At their defaults (weight 1, bias 0, running stats 0/1, one slope 0.25) these layers treat every
    channel alike, so slicing them at wrong indices would change nothing a test could see.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(t.shape, generator=generator, dtype=t.dtype)

    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, _NORMS):
                continue
            if isinstance(module, torch.nn.PReLU):
                module.weight.copy_(uniform(module.weight, -0.5, 0.5))
                continue
            if getattr(module, "weight", None) is not None:
                module.weight.copy_(uniform(module.weight, 0.5, 1.5))
            if getattr(module, "bias", None) is not None:
                module.bias.copy_(uniform(module.bias, -0.5, 0.5))
            if getattr(module, "running_mean", None) is not None:
                module.running_mean.copy_(uniform(module.running_mean, -0.5, 0.5))
                module.running_var.copy_(uniform(module.running_var, 0.5, 2.0))
    return model


# Window-attention models whose export takes tens of seconds; tests/test_window_models.py checks them
# (compress, run at the example batch and three times it, sliced == masked), the zoo-wide loops skip them.
SLOW_EXPORT_MODELS = frozenset({"swinir_windows", "uformer"})


# The zoo models with fewer repeats: the default's module kinds and ATen op kinds (after the ONNX
# decompositions; compared when this was written, and the module kinds again by test_export_onnx),
# for tests whose checks the op kinds decide, not the depth. A model already tiny is built as it is.
# restormer_unet keeps only level 1's transformer blocks (its encoder's and decoder's): its ONNX file has the
# default's 22 op types (compared when this was written); its export takes 14 s instead of 38.
SMALL_ZOO_CONFIG: dict[str, dict] = {
    "edsr": {"blocks": 1},
    "rcan": {"groups": 1, "blocks": 1},
    "srresnet": {"blocks": 1},
    "carn": {"blocks": 2, "units": 2},
    "nafnet": {"enc_blocks": (1,), "middle_blocks": 0, "dec_blocks": (0,)},
    "fsrcnn": {"m": 1},
    "dncnn": {"depth": 3},
    "vdsr": {"depth": 3},
    "unet": {"depth": 1},
    "swinir": {"depth": 1},
    "restormer": {"blocks": 1},
    "restormer_unet": {"blocks": (1, 0, 0), "refinement": 0},
}


def zoo_names() -> list[str]:
    """The zoo models the zoo-wide tests loop over."""
    from fxprune.models import names

    return [name for name in names() if name not in SLOW_EXPORT_MODELS]


class StatisticsNet(nn.Module):
    """One op of each kind over the channels of one trunk, and a mean over channels and height."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, 3, 3, padding=1)
        self.norm = nn.LayerNorm(c)
        self.weight = nn.Parameter(torch.rand(c) + 0.5)

    def forward(self, x):
        y = self.a(x)
        mu = y.mean(1, keepdim=True)
        var = (y - mu).pow(2).mean(1, keepdim=True)
        y = (y - mu) / (var + 1e-6).sqrt() * self.weight.view(1, -1, 1, 1)  # hand-written LayerNorm2d
        y = self.norm(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = y + y.softmax(1) - F.log_softmax(y, 1) * 0.1
        y = y * y.std(1, keepdim=True) + y.var(1, correction=0, keepdim=True) + y.amax(1, keepdim=True)
        return self.b(y - y.mean((1, 2), keepdim=True) + y.amin((1, 3), keepdim=True))


def check_statistics_at_scale(graph: ChannelGraph, kept: int, seed: int, scale: float) -> None:
    """On a StatisticsNet analysis: scale conv ``a``'s weights by ``scale``, keep ``kept`` random
    channels of its trunk, and check sliced == masked at float32 tolerance (relative to the output)."""
    group = graph.group_of("a")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("a.weight", "a.bias"):
            param = graph.gm.get_parameter(name)
            param.copy_(torch.randn(param.shape, generator=generator) * scale)
    x = torch.randn(1, 3, 9, 11, generator=generator)
    units = np.zeros(group.channels, bool)
    units[np.random.default_rng(seed).choice(group.channels, kept, replace=False)] = True
    keep = {group.id: units}
    with torch.no_grad():
        expected = masked_model(graph, keep)(x)
        torch.testing.assert_close(slice_channels(graph, keep)(x), expected, rtol=1e-4,
                                   atol=1e-4 * expected.abs().max().item())
