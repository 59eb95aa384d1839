"""Capture retries what can be retried: tensor attributes are lifted to buffers, a submodule with
data-dependent control flow runs as an opaque leaf, and torch's own output stays off the console."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import fxprune


class ViewConstant(nn.Module):
    """A plain tensor attribute that is a view of a parameter (deepcopy refuses non-leaf tensors)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 3, 3, padding=1)
        self.shift = torch.rand(3, 1, 1, 1)[:, 0]  # plain attribute, not a buffer
        self.scale = self.a.bias.reshape(1, 8, 1, 1) * 0 + 2  # non-leaf: computed from a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x - self.shift) * self.scale)


class Router(nn.Module):
    """Top-1 expert routing with data-dependent Python control flow."""

    def __init__(self, channels: int, two_outputs: bool = False):
        super().__init__()
        self.score = nn.Conv2d(channels, 2, 1)
        self.experts = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2))
        self.two_outputs = two_outputs

    def forward(self, x: torch.Tensor):
        scores = self.score(x).mean((2, 3))
        out = self.experts[int(scores[0].argmax().item())](x)
        if (scores > 0).any():
            out = out + x
        return (out, scores) if self.two_outputs else out


class Routed(nn.Module):
    def __init__(self, two_outputs: bool = False):
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.route = Router(8, two_outputs)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)
        self.two_outputs = two_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.route(self.head(x))
        if self.two_outputs:
            y, scores = y
            return self.tail(y) + scores.mean()
        return self.tail(y)


def test_tensor_attributes_are_lifted():
    torch.manual_seed(0)
    model, x = ViewConstant().eval(), torch.randn(1, 3, 8, 8)
    gm = fxprune.trace(model, x)
    torch.testing.assert_close(gm(x), model(x))
    assert not isinstance(model.scale, nn.Parameter) and "scale" not in dict(model.named_buffers())  # user's model untouched


def test_data_dependent_submodule_runs_as_opaque_leaf():
    torch.manual_seed(0)
    model, x = Routed().eval(), torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning, match="'route'.*opaque leaf"):
        small = fxprune.compress(model, fxprune.Spec(ratio=0.5, round_to=1), (x,))
    assert small.meta["fxprune_capture"].opaque == ("route",)
    assert small.get_parameter("head.weight").shape[0] == 8  # read by the opaque leaf: fixed
    torch.testing.assert_close(small(x), model(x))


def test_multi_output_submodule_fails_with_a_named_capture_error(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="fxprune.capture")
    with pytest.raises(fxprune.CaptureError) as info:
        fxprune.trace(Routed(two_outputs=True).eval(), torch.randn(1, 3, 8, 8))
    assert info.value.module == "route"
    assert "opaque leaf" in str(info.value)
    out, err = capfd.readouterr()
    assert out == "" and err == "", err[:500]  # torch printed the failing graph here before
    assert any("def forward" in r.getMessage() for r in caplog.records)  # ... now it is in the debug log


def test_quieting_covers_every_torch_logger_but_the_structured_trace():
    """Inside capture torch's warnings are off (children without their own level inherit it), its
    structured trace log keeps its level (silenced, it made every traced op capture a stack), and
    every level is back afterwards."""
    from fxprune.trace import _quiet_torch_logs

    child = logging.getLogger("torch.fx.experimental.fxprune_test_child")  # no level of its own
    own = logging.getLogger("torch.fxprune_test_own_level")
    own.setLevel(logging.INFO)
    structured = logging.getLogger("torch.__trace")
    structured_level = structured.level
    try:
        with _quiet_torch_logs():
            assert not child.isEnabledFor(logging.WARNING)
            assert not own.isEnabledFor(logging.WARNING)
            assert structured.level == structured_level
        assert child.isEnabledFor(logging.WARNING)
        assert own.level == logging.INFO
    finally:
        own.setLevel(logging.NOTSET)
