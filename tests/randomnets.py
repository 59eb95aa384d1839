"""Random restoration-like architectures for property tests, drawn with Hypothesis.

A network is a program: a list of steps, each reading earlier values and appending one value.
Steps cover what coupling analysis must get right: residual adds, concats, channel splits with a
SimpleGate multiply, channel slices (indexing and narrow), 2x2 window partitions, channel attention, depthwise and grouped
convs, PixelShuffle and PixelUnshuffle, norms (with random per-channel parameters) and per-channel
scale parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

from fxprune.models.windows import window_partition, window_reverse


@dataclass(frozen=True)
class Step:
    op: str
    inputs: tuple[int, ...]
    channels: int  # output channels
    arg: int = 0


class RandomNet(nn.Module):
    """Replays a program of steps; value 0 is the 3-channel input image."""

    def __init__(self, steps: list[Step]):
        super().__init__()
        self.steps = steps
        channels = [3]
        self.layers = nn.ModuleList()
        for step in steps:
            cin = channels[step.inputs[0]]
            self.layers.append(self._layer(step, cin))
            channels.append(step.channels)
        self.tail = nn.Conv2d(channels[-1], 3, 3, padding=1)

    @staticmethod
    def _layer(step: Step, cin: int) -> nn.Module:
        if step.op == "conv":
            return nn.Conv2d(cin, step.channels, step.arg or 3, padding=(step.arg or 3) // 2)
        if step.op == "dwconv":
            return nn.Conv2d(cin, step.channels, 3, padding=1, groups=cin)
        if step.op == "gconv":
            return nn.Conv2d(cin, step.channels, 1, groups=step.arg)
        if step.op == "attention":
            hidden = max(cin // 4, 1)
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, cin, 1), nn.Sigmoid())
        if step.op == "upsample":
            return nn.Sequential(nn.Conv2d(cin, step.channels * 4, 3, padding=1), nn.PixelShuffle(2), nn.AvgPool2d(2))
        if step.op == "bn":
            bn = nn.BatchNorm2d(cin)
            with torch.no_grad():
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 1.5)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)
            return bn
        if step.op == "gn":  # random per-channel affine: slicing it at wrong indices must show
            gn = nn.GroupNorm(step.arg, cin)
            with torch.no_grad():
                gn.weight.uniform_(0.5, 1.5)
                gn.bias.uniform_(-0.5, 0.5)
            return gn
        if step.op == "prelu":
            prelu = nn.PReLU(cin)
            with torch.no_grad():
                prelu.weight.uniform_(-0.5, 0.5)
            return prelu
        if step.op == "unshuffle":
            return nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(cin * 4, step.channels * 4, 1), nn.PixelShuffle(2))
        if step.op in ("scale", "window"):
            module = nn.Module()
            module.scale = nn.Parameter(torch.rand(1, cin, 1, 1) + 0.5)
            return module
        return nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = [x]
        for step, layer in zip(self.steps, self.layers):
            a = values[step.inputs[0]]
            if step.op in ("conv", "dwconv", "gconv", "upsample", "bn", "gn", "prelu", "unshuffle"):
                y = layer(a)
            elif step.op == "relu":
                y = F.relu(a)
            elif step.op == "add":
                y = a + values[step.inputs[1]]
            elif step.op == "mul":
                y = a * values[step.inputs[1]]
            elif step.op == "attention":
                y = a * layer(a)
            elif step.op == "cat":
                y = torch.cat([a, values[step.inputs[1]]], dim=1)
            elif step.op == "gate":
                left, right = a.chunk(2, dim=1)
                y = left * right
            elif step.op == "split":
                y = torch.split(a, [step.channels, a.shape[1] - step.channels], dim=1)[0]
            elif step.op == "slice":  # channels [arg, arg + channels) by indexing, or narrow
                y = a[:, step.arg : step.arg + step.channels] if step.arg % 2 == 0 else a.narrow(1, step.arg, step.channels)
            elif step.op == "window":  # 2x2 windows as SwinIR writes them, a per-channel scale inside
                h, w = a.shape[-2:]
                windows = window_partition(a.permute(0, 2, 3, 1), 2) * layer.scale.reshape(-1)
                y = window_reverse(windows, 2, h, w).permute(0, 3, 1, 2)
            elif step.op == "scale":
                y = a * layer.scale
            elif step.op == "resscale":
                y = a * 0.5
            else:
                raise ValueError(step.op)
            values.append(y)
        return self.tail(values[-1])


@st.composite
def programs(draw, max_steps: int = 8, windows: bool = False) -> list[Step]:
    """A random valid program; channel counts stay small so a forward is cheap.

    ``windows`` adds 2x2 window partitions, whose captured graph runs only at the example's batch
    (the window reverse recovers the batch through Python floats, as SwinIR's does).
    """
    channels = [3]
    steps: list[Step] = []
    n = draw(st.integers(2, max_steps))
    first = draw(st.sampled_from([4, 6, 8]))
    steps.append(Step("conv", (0,), first, 3))
    channels.append(first)
    for _ in range(n):
        i = draw(st.integers(1, len(channels) - 1))
        c = channels[i]
        same = [j for j in range(1, len(channels)) if channels[j] == c and j != i]
        options = ["conv", "dwconv", "relu", "bn", "prelu", "scale", "resscale", "attention", "upsample", "cat",
                   "unshuffle"] + (["window"] if windows else [])
        if same:
            options += ["add", "mul", "add"]
        if c % 2 == 0:
            options += ["gate", "gconv"]
        if c % 2 == 0 and c >= 4:
            options.append("gn")
        if c >= 3:
            options += ["split", "slice"]
        op = draw(st.sampled_from(options))
        if op == "conv":
            step = Step(op, (i,), draw(st.sampled_from([4, 6, 8])), draw(st.sampled_from([1, 3])))
        elif op in ("add", "mul"):
            step = Step(op, (i, draw(st.sampled_from(same))), c)
        elif op == "cat":
            step = Step(op, (i, draw(st.integers(1, len(channels) - 1))), 0)
            step = Step(op, step.inputs, c + channels[step.inputs[1]])
        elif op == "gate":
            step = Step(op, (i,), c // 2)
        elif op == "gconv":
            step = Step(op, (i,), c, 2)
        elif op == "gn":
            step = Step(op, (i,), c, 2)
        elif op == "split":
            step = Step(op, (i,), draw(st.integers(1, c - 1)))
        elif op == "slice":
            start = draw(st.integers(0, c - 2))
            step = Step(op, (i,), draw(st.integers(1, c - start)), start)
        elif op in ("upsample", "unshuffle"):
            step = Step(op, (i,), draw(st.sampled_from([4, 8])))
        else:
            step = Step(op, (i,), c)
        steps.append(step)
        channels.append(step.channels)
    return steps
