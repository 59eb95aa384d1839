"""Models whose capture used to go wrong: window attention written as SwinIR/Uformer write it (the
batch recovered from the window count) and a Restormer U-Net with PixelUnshuffle/PixelShuffle.
Each is compressed through the public path and must run at its example batch, equal to the
masked model."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import fxprune
from fxprune import capture_cache
from fxprune.graph_mode import copy_graph_module
from fxprune.masking import masked_model
from fxprune.models import build
from fxprune.passes.slice_channels import slice_channels
from fxprune.selection import plan_keep

from helpers import SMALL_ZOO_CONFIG, randomize_norms


class Windows(nn.Module):
    """The ten-line reproduction: conv, 4x4 windows, batch = int(windows / (H·W/16)), merge, conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        _, c, h, w = y.shape
        windows = y.view(-1, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, 4, 4)
        b = int(windows.shape[0] / (h * w / 16))
        y = windows.view(b, h // 4, w // 4, c, 4, 4).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
        return self.b(y)


def _check(model: nn.Module, x: torch.Tensor, other: torch.Tensor | None, *, public: bool = False) -> fxprune.ChannelGraph:
    """L1 at ratio 0.5 must give a model that runs on ``x`` (and on ``other`` where the graph is
    dynamic) and equals the masked model with the same keep-set. ``public`` goes through
    ``fxprune.compress`` (which is analyze, plan_keep and slice_channels: the other cases call
    those directly to capture once, as the window models' export is slow)."""
    spec = fxprune.Spec(method="l1", ratio=0.5, round_to=1)
    graph = fxprune.analyze(model, (x,))
    keep = plan_keep(graph, spec)
    assert keep, graph.summary()  # something is pruned
    assert graph.diagnostics == [], graph.summary()  # every op has a coupling rule
    small = fxprune.compress(model, spec, (x,)) if public else slice_channels(graph, keep)
    masked = masked_model(graph, keep)
    info = small.meta["fxprune_capture"]
    for t in [x] + ([other] if other is not None and info.dynamic_hw else []):
        torch.testing.assert_close(small(t), masked(t))
    # three times the example batch, whether the batch is dynamic or fixed (then run slice by slice)
    bigger = torch.cat([x, x.flip(-1), 0.5 * x])
    expected = torch.cat([masked(part) for part in bigger.split(x.shape[0])])
    torch.testing.assert_close(small(bigger), expected)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    return graph


def test_window_reverse_at_batch_one():
    torch.manual_seed(0)
    model, x = Windows().eval(), torch.randn(1, 3, 12, 12)
    _check(model, x, torch.randn(1, 3, 8, 16), public=True)
    gm = fxprune.trace(model, x)
    assert not gm.meta["fxprune_capture"].dynamic_batch  # the batch is baked in: recorded as static
    torch.testing.assert_close(gm(x), model(x))
    batch_of_three = torch.randn(3, 3, 12, 12)  # runs slice by slice (fxprune.graph_mode.fixed_batch)
    torch.testing.assert_close(gm(batch_of_three), model(batch_of_three))
    torch.testing.assert_close(copy_graph_module(gm).eval()(batch_of_three), model(batch_of_three))


class BatchMean(nn.Module):
    """Turns the batch into a Python int (export fixes it) and mixes the samples."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y - y.sum(0, keepdim=True) / int(x.shape[0])


def test_a_fixed_batch_is_not_sliced_where_the_samples_are_not_independent():
    """Slice by slice, each sample would be its own mean (all zeros): a wrong answer. The graph
    runs at its captured batch only, with a warning at capture, and refuses another batch loudly."""
    model, x = BatchMean().eval(), torch.randn(2, 3, 8, 8)
    with pytest.warns(UserWarning, match="not independent"):
        gm = fxprune.trace(model, x)
    info = gm.meta["fxprune_capture"]
    assert not info.dynamic_batch and not info.slices_match
    torch.testing.assert_close(gm(x), model(x))
    with pytest.raises(Exception):
        gm(torch.randn(4, 3, 8, 8))


def test_dynamic_batch_is_recorded_where_it_holds():
    gm = fxprune.trace(build("edsr", blocks=1, channels=8).eval(), torch.randn(1, 3, 8, 8))
    assert gm.meta["fxprune_capture"].dynamic_batch
    assert gm(torch.randn(3, 3, 8, 8)).shape == (3, 3, 16, 16)


@pytest.mark.parametrize("name, batch", [("swinir_windows", 1), ("uformer", 3), ("restormer_unet", 1)])
def test_zoo_model_compresses_and_runs_at_its_batch(name, batch):
    torch.manual_seed(0)
    config = SMALL_ZOO_CONFIG.get(name, {})  # restormer_unet's smaller configuration: the same op kinds
    model = randomize_norms(build(name, **config).eval(), seed=0)
    # the other size keeps at least two windows per dim at every level (one would be a size-1 dim,
    # which export specializes)
    x = torch.randn(batch, 3, 12, 12)
    graph = _check(model, x, torch.randn(batch, 3, 20, 24))
    # the same structure with other weights comes from the capture cache (tests/test_capture_cache.py
    # checks the other zoo models), with the same groups, bound to its own weights
    other = randomize_norms(build(name, **config).eval(), seed=1)
    key = capture_cache.key_of(other, (x,), (True, True))
    assert key is not None and capture_cache.lookup(key, other) is not None, "the zoo model should be cached"
    cached = fxprune.analyze(other, x)
    assert cached.summary() == graph.summary()
    assert [dataclasses.asdict(g) for g in cached.groups] == [dataclasses.asdict(g) for g in graph.groups]
    torch.testing.assert_close(cached.gm(x), other(x))


# restormer_unet (no window helper) compressed at batch 1 has a dynamic batch: tests/test_compress.py


def test_batch_checks_do_not_touch_the_model():
    """The capture's batch checks run on fake tensors: a train-mode BatchNorm counts no batch."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 3, 3, padding=1)).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fxprune.trace(model, torch.randn(1, 3, 8, 8))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])
