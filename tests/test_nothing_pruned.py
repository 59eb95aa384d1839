"""A spec that prunes nothing says, per group, which cause applied."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import fxprune
from fxprune.selection import explain_no_pruning

from helpers import params_of


class SeparableGenerator(nn.Module):
    """A small depthwise-separable generator whose groups all have 16 channels."""

    def __init__(self, channels: int = 16, blocks: int = 2):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels), nn.Conv2d(channels, channels, 1),
                          nn.ReLU())
            for _ in range(blocks)
        )
        self.expand = nn.Conv2d(channels, channels, 1)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x):
        h = self.head(x)
        for block in self.blocks:
            h = block(h)
        return self.tail(torch.relu(self.expand(h))) + x


X = torch.randn(1, 3, 12, 12)


def _warning(call) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    texts = [str(w.message) for w in caught if "no group loses any channel" in str(w.message)]
    assert len(texts) == 1, [str(w.message) for w in caught]
    return texts[0]


def test_round_to_rounding_back_up_is_named_per_group_with_a_round_to_that_prunes():
    torch.manual_seed(0)
    model = SeparableGenerator().eval()
    text = _warning(lambda: fxprune.compress(model, fxprune.Spec(ratio=0.5), (X,)))
    graph = fxprune.analyze(model, X)
    prunable = [g for g in graph.groups if g.prunable]
    assert prunable
    for group in prunable:
        assert f"group {group.id} (16 units: {', '.join(group.producers)}): round_to=16 rounds the 8 kept units back " \
               "up to 16; round_to=8 would prune it" in text
    for group in graph.groups:
        if not group.prunable:
            assert f"group {group.id} ({group.channels} units" in text and ": fixed (" in text
    # the advice works
    small = fxprune.compress(model, fxprune.Spec(ratio=0.5, round_to=8), (X,))
    assert params_of(small) < params_of(model)
    # and prepare explains itself the same way
    prepared = _warning(lambda: fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, steps=4), (X,)))
    assert text.split("\n", 1)[1] in prepared and prepared.endswith("training will not prune anything")


def test_a_skipping_override_and_a_too_small_ratio_are_named():
    model = SeparableGenerator().eval()
    graph = fxprune.analyze(model, X)
    skipped = graph.group_of("expand")
    spec = fxprune.Spec(ratio=0.05, round_to=1, overrides={"expand": None})
    lines = explain_no_pruning(graph, spec)
    assert any(line.startswith(f"group {skipped.id} ") and line.endswith("overrides['expand'] skips expand")
               for line in lines), lines
    others = [g for g in graph.groups if g.prunable and g.id != skipped.id]
    for group in others:
        assert any(line.startswith(f"group {group.id} ") and "ratio 0.05 of its 16 prunable units drops none "
                   "(it needs a ratio of at least 0.0625)" in line for line in lines), lines
    assert len(lines) == len(graph.groups)
    # a spec that prunes names no group
    assert explain_no_pruning(graph, fxprune.Spec(ratio=0.5, round_to=1)) == [
        line for line in explain_no_pruning(graph, fxprune.Spec(ratio=0.5, round_to=1)) if ": fixed (" in line
    ]
