"""ASSL's prune point is lossless at any schedule length (Spec.shrink="schedule", the default)."""
from __future__ import annotations

import copy

import pytest
import torch

import fxprune
from fxprune.models import build
from fxprune.train import TrainConfig, train_model

TINY = {"edsr": dict(blocks=1, channels=8), "rcan": dict(groups=1, blocks=1, channels=8, reduction=4)}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hook_loop(name: str, steps: int, shrink: str = "schedule", lr: float = 1e-3, last: int | None = None) -> dict[str, float]:
    """The documented hook loop with a plain Adam on every parameter; the target is the dense
    model's own output, so any loss the prune step adds is what masking the channels costs.

    ``last``: run only the last this-many steps before the prune point (the schedule, its α and
    its cap are still those of ``steps``; the penalty starts from the untrained gates there).
    """
    torch.manual_seed(0)
    model = build(name, **TINY[name])
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        target = model(x)
    spec = fxprune.Spec(method="assl", ratio=0.5, round_to=4, steps=steps, shrink=shrink)
    pruner = fxprune.prepare(model, spec, (x,))
    optimizer = torch.optim.Adam(pruner.model.parameters(), lr=lr)
    if last is not None:
        pruner.step_count = pruner.schedule.prune_at - last
    seen: dict[str, float] = {}
    while not pruner.done:
        loss = (pruner.model(x) - target).abs().mean() + pruner.penalty()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        pruner.step()
        if pruner.step_count == pruner.schedule.prune_at - 1:
            seen["ratio"] = pruner.gate_ratio()
            with torch.no_grad():
                seen["before"] = (pruner.model(x) - target).abs().mean().item()
        if pruner.step_count == pruner.schedule.prune_at:
            assert pruner.masked
            with torch.no_grad():
                seen["after"] = (pruner.model(x) - target).abs().mean().item()
            break
    return seen


@pytest.mark.parametrize("name", ["edsr", "rcan"])
@pytest.mark.parametrize("steps", [300, 3000])
def test_loss_does_not_jump_at_the_prune_step(name, steps):
    # 3,000 whole steps take minutes on the shared cores: run that schedule's last 300 before the prune point
    seen = _hook_loop(name, steps, last=None if steps <= 300 else 300)
    assert seen["ratio"] <= 0.05
    assert seen["after"] <= 1.1 * seen["before"], seen


def test_the_paper_mode_still_prunes_live_channels_on_a_short_schedule():
    """Adam moves a gate about lr per step: 300 steps of the penalty alone leave the gates far from 0."""
    seen = _hook_loop("edsr", 300, shrink="paper")
    assert seen["ratio"] > 0.2
    assert seen["after"] > 1.5 * seen["before"]


def test_built_in_loop_reaches_the_gate_ratio_at_the_prune_point():
    torch.manual_seed(0)
    model = build("edsr", **TINY["edsr"])
    x = torch.rand(1, 3, 12, 12)
    pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=4, steps=300), (x,))
    seen = {}

    def after_step() -> None:
        pruner.step()
        if pruner.step_count == pruner.schedule.prune_at - 1:
            seen["ratio"] = pruner.gate_ratio()

    config = TrainConfig(steps=300, batch_size=2, patch_size=12, lr=1e-3, progress=False, device="cpu")
    train_model(pruner.model, config, pruner.schedule.total, 2, extra_loss=pruner.penalty, after_step=after_step)
    assert seen["ratio"] <= 0.05
    assert pruner.masked and pruner.done


def test_shrink_is_validated():
    with pytest.raises(fxprune.SpecError, match="shrink"):
        fxprune.Spec(method="assl", shrink="fast")
