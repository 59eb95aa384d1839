"""The per-process capture cache: same groups as a fresh capture, caller's weights, no stale graphs."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import fxprune
from fxprune import capture_cache
from fxprune.models import build
from helpers import SMALL_ZOO_CONFIG, zoo_names
from test_zoo_groups import CASES  # small configs of the zoo models (the others are small by default)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
X = torch.randn(1, 3, 16, 16)


def _groups(graph) -> list[dict]:
    return [dataclasses.asdict(g) for g in graph.groups]


# the window-attention models (SLOW_EXPORT_MODELS) take their cache check in tests/test_window_models.py,
# at the input their compression test captures anyway
@pytest.mark.parametrize("name", zoo_names())
def test_cached_capture_finds_the_same_groups(name):
    config = CASES[name][1] if name in CASES else SMALL_ZOO_CONFIG.get(name, {})  # restormer_unet: the smaller one
    capture_cache.clear()
    fresh = fxprune.analyze(build(name, **config).eval(), X)
    other = build(name, **config).eval()  # same structure, other weights: a cache hit
    key = capture_cache.key_of(other, (X,), (True, True))
    assert key is not None and capture_cache.lookup(key, other) is not None, "the zoo model should be cached"
    cached = fxprune.analyze(other, X)
    assert cached.summary() == fresh.summary()
    assert _groups(cached) == _groups(fresh)
    torch.testing.assert_close(cached.gm(X), other(X))  # bound to the second model's weights


class Scaled(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.factor = factor

    def forward(self, x):
        return self.conv(x) * self.factor


def _factory(k: int) -> nn.Module:
    class Repeat(nn.Module):
        def forward(self, x):
            return torch.cat([x] * k, dim=1)
    return Repeat()


def test_hit_binds_current_weights_and_returns_an_independent_copy():
    model = Scaled(2.0).eval()
    first = fxprune.trace(model, X)
    with torch.no_grad():
        model.conv.weight.mul_(3)
    second = fxprune.trace(model, X)
    torch.testing.assert_close(second(X), model(X))
    assert second.get_parameter("conv.weight").data_ptr() != model.conv.weight.data_ptr()
    with torch.no_grad():
        second.get_parameter("conv.weight").zero_()
    torch.testing.assert_close(fxprune.trace(model, X)(X), model(X))  # the cache was not written through
    next(n for n in second.graph.nodes if n.op == "output").args = ((),)
    assert len(list(fxprune.trace(model, X).graph.nodes)) == len(list(first.graph.nodes))


def test_settings_code_closures_and_inputs_are_part_of_the_key():
    for factor in (2.0, 4.0):
        model = Scaled(factor).eval()
        torch.testing.assert_close(fxprune.trace(model, X)(X), model(X))
    assert fxprune.trace(_factory(2), X)(X).shape[1] == 6
    assert fxprune.trace(_factory(3), X)(X).shape[1] == 9
    model = Scaled(1.0)
    assert fxprune.trace(model.train(), X).training and not fxprune.trace(model.eval(), X).training
    keys = {capture_cache.key_of(Scaled(1.0), (x,), (True, True)) for x in (X, X[:, :, :8], X.double())}
    assert len(keys) == 3


def test_models_with_hooks_are_not_cached():
    model = Scaled(1.0)
    model.conv.register_forward_hook(lambda m, i, o: o * 0)
    assert capture_cache.key_of(model, (X,), (True, True)) is None


def test_config_dataclasses_are_part_of_the_key():
    @dataclasses.dataclass
    class Config:
        repeats: int

    class Configured(nn.Module):
        def __init__(self, repeats: int):
            super().__init__()
            self.config = Config(repeats)

        def forward(self, x):
            return torch.cat([x] * self.config.repeats, dim=1)

    assert [fxprune.trace(Configured(k), X)(X).shape[1] for k in (2, 3)] == [6, 9]


SHIFT = 0.0  # a module-level global the forward reads: invisible to the cache key


class _ReadsGlobal(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x) + SHIFT


def _captured_again_after_shifting(model: nn.Module, x: torch.Tensor) -> None:
    """Change the global the forward reads; the next capture must compute what the model now does."""
    global SHIFT
    SHIFT = 1.0
    try:
        again = fxprune.trace(model, x)
        torch.testing.assert_close(again(x), model(x))
    finally:
        SHIFT = 0.0


def test_a_hit_that_computes_something_else_is_captured_again():
    x = torch.randn(1, 3, 8, 8)
    model = _ReadsGlobal().eval()
    fxprune.trace(model, x)
    _captured_again_after_shifting(model, x)


SEEN: list[tuple[int, ...]] = []  # input sizes the eager forward ran at


class _RecordsSizes(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        if all(isinstance(d, int) for d in x.shape):  # real runs only, not the capture's fake ones
            SEEN.append(tuple(x.shape))
        return self.conv(x) + SHIFT


def test_a_hit_is_checked_on_a_crop_of_a_large_example():
    """Two forwards at the full example size cost more than a capture of a wide model: the check
    runs at 16×16, and still sees a forward that computes something else."""
    x = torch.randn(2, 3, 40, 48)
    model = _RecordsSizes().eval()
    fxprune.trace(model, x)
    SEEN.clear()
    fxprune.trace(model, x)
    assert SEEN == [(2, 3, 16, 16)]
    _captured_again_after_shifting(model, x)
