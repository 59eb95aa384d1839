"""ASSL: gates, regularizer, schedule, alignment, hooks and convert."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fxprune
from helpers import zoo_names
from fxprune.models import build, names
from fxprune.passes.fold_weight_modules import FoldWeightModules as FoldWeightNorm
from fxprune.schedule import AsslSchedule

from randomnets import RandomNet, programs


def _train(pruner: fxprune.AsslPruner, x: torch.Tensor, steps: int, lr: float = 1e-2, seed: int = 0) -> None:
    """A tiny training loop of the documented shape (the target is a fixed random image)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        target = torch.rand(pruner.model(x).shape, generator=generator)
    optimizer = torch.optim.Adam(pruner.model.parameters(), lr=lr)
    for _ in range(steps):
        loss = (pruner.model(x) - target).abs().mean() + pruner.penalty()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        pruner.step()


@pytest.mark.parametrize("name", zoo_names())
def test_gated_model_equals_original_on_every_zoo_model(name):
    torch.manual_seed(0)
    model = build(name).eval()
    x = torch.randn(1, 3, 16, 16)
    pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=10), (x,))
    assert pruner.groups, "no group was gated"
    gates = [m for n, m in pruner.model.named_modules() if n.startswith("fxprune_gates.")]
    assert len(gates) == sum(len(g.sites) for g in pruner.groups)
    with torch.no_grad():
        torch.testing.assert_close(pruner.model(x), model(x))
        x_other = torch.randn(1, 3, 20, 24)
        torch.testing.assert_close(pruner.model(x_other), model(x_other))


def test_fold_restores_the_original_graph():
    model = build("rcan").eval()
    x = torch.randn(1, 3, 16, 16)
    pruner = fxprune.prepare(model, fxprune.Spec(method="assl", steps=10), (x,))
    original = [(n.name, n.target) for n in pruner.graph.gm.graph.nodes]
    folded = FoldWeightNorm()(pruner.model).gm
    assert [(n.name, n.target) for n in folded.graph.nodes] == original
    assert not any(name.startswith("fxprune_gates") for name, _ in folded.named_parameters())


@pytest.mark.parametrize("name", ["edsr", "rcan", "carn", "imdn", "nafnet", "swinir"])
def test_converted_model_equals_the_finetuned_masked_model(name):
    torch.manual_seed(1)
    model = build(name)
    x = torch.randn(2, 3, 16, 16)
    pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=12), (x,))
    _train(pruner, x, pruner.schedule.total)
    assert pruner.done and pruner.masked
    small = fxprune.convert(pruner)
    # counted at the example prepare captured: the dense count reuses that capture (at x[:1] it captured again)
    assert fxprune.count_macs(small, (x,)) < fxprune.count_macs(model, (x,))
    for shape in [(1, 3, 16, 16), (1, 3, 20, 12)]:
        probe = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(small(probe), pruner.model(probe))


def test_coupled_producers_keep_identical_channels():
    torch.manual_seed(2)
    model = build("edsr", blocks=3, channels=16)
    x = torch.randn(2, 3, 12, 12)
    pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=20, align="ssa"), (x,))
    _train(pruner, x, pruner.schedule.total)
    small = fxprune.convert(pruner)
    folded = FoldWeightNorm()(fxprune.masking.remove_channel_masks(pruner.model)).gm
    trunk = pruner.graph.group_of("head")
    kept = np.flatnonzero(pruner.keep()[trunk.id])
    assert 0 < len(kept) < trunk.channels
    keep = pruner.keep()
    for name, dim in trunk.producer_weights:
        expected = folded.get_parameter(name).detach().index_select(dim, torch.as_tensor(kept))
        for group in pruner.graph.groups:  # the weight's input channels are sliced by their own group
            if (name, 1) in group.params and group.id in keep:
                expected = expected.index_select(1, torch.as_tensor(np.flatnonzero(keep[group.id])))
        torch.testing.assert_close(small.get_parameter(name), expected)


def test_penalty_gradient_is_alpha_gamma_on_the_unimportant_set_only():
    model = build("edsr", blocks=2, channels=16)
    x = torch.randn(1, 3, 12, 12)
    pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=1000), (x,))
    pruner.step_count = pruner.schedule.ssa + pruner.schedule.grow // 2
    alpha = pruner.alpha()
    assert 0 < alpha < pruner.schedule.ceiling
    pruner.penalty().backward()
    for group in pruner.groups:
        dropped = pruner.unimportant[group.gid]
        for site, units in zip(group.sites, group.unit_of_channel):
            gamma = pruner.model.get_submodule(site.gate).gamma
            expected = torch.where(torch.as_tensor(dropped[units]), alpha * gamma.detach(), torch.zeros(()))
            torch.testing.assert_close(gamma.grad, expected)
            if site.bias:
                bias = pruner.model.get_parameter(site.bias)
                torch.testing.assert_close(bias.grad, torch.where(torch.as_tensor(dropped[units]), alpha * bias.detach(), torch.zeros(())))


def test_penalty_drives_unimportant_gates_down_and_leaves_the_rest():
    model = build("edsr", blocks=2, channels=16)
    x = torch.randn(1, 3, 12, 12)
    pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=400), (x,))
    gammas = {s.gate: pruner.model.get_submodule(s.gate).gamma.detach().clone() for g in pruner.groups for s in g.sites}
    optimizer = torch.optim.Adam([p for n, p in pruner.model.named_parameters() if n.endswith("gamma")], lr=1e-2)
    while pruner.phase in ("align", "grow", "hold"):
        penalty = pruner.penalty()
        if penalty.requires_grad:  # α is still 0 on the first steps
            penalty.backward()
        optimizer.step()
        optimizer.zero_grad()
        pruner.step()
    for group in pruner.groups:
        dropped = pruner.unimportant[group.gid]
        for site, units in zip(group.sites, group.unit_of_channel):
            now = pruner.model.get_submodule(site.gate).gamma.detach()
            before = gammas[site.gate]
            assert (now[dropped[units]].abs() < 0.2 * before[dropped[units]].abs()).all()
            torch.testing.assert_close(now[~dropped[units]], before[~dropped[units]])


def test_ssa_aligns_then_repicks_coupled_groups():
    torch.manual_seed(3)
    model = build("edsr", blocks=3, channels=16)
    x = torch.randn(1, 3, 12, 12)
    spec = fxprune.Spec(method="assl", ratio=0.5, round_to=1, align="ssa", steps=200)
    pruner = fxprune.prepare(model, spec, (x,))
    assert pruner.uses_ssa and pruner.schedule.ssa > 0 and pruner.phase == "align"
    trunk = next(g for g in pruner.groups if g.coupled)
    assert pruner.alpha(trunk) == 0.0
    loss = pruner.penalty()
    assert loss.item() < 0  # only the (negative) SSA term, since free groups start at α = 0
    loss.backward()
    gate = pruner.model.get_submodule(trunk.sites[0].gate)
    assert gate.gamma.grad is not None and gate.gamma.grad.abs().sum() > 0
    before = pruner.unimportant[trunk.gid].copy()
    with torch.no_grad():  # make the trunk's last units the strongest, so the re-pick must change
        for site in trunk.sites:
            pruner.model.get_submodule(site.gate).gamma[-4:] += 100.0
    pruner.step_count = pruner.schedule.ssa - 1
    pruner.step()
    assert not pruner.unimportant[trunk.gid][-4:].any()
    assert not np.array_equal(before, pruner.unimportant[trunk.gid]) or not before[-4:].any()


def test_schedule_scales_every_phase_to_the_requested_steps():
    spec = fxprune.Spec(method="assl", align="ssa", steps=3000)
    schedule = AsslSchedule.from_spec(spec)
    assert schedule.total == 3000
    full = AsslSchedule.from_spec(fxprune.Spec(method="assl", align="ssa"))
    assert full.grow == 20 * 5000 and full.hold == 43150 and full.delta == 1e-4
    for part in ("ssa", "hold", "finetune", "grow"):
        share, full_share = getattr(schedule, part) / schedule.total, getattr(full, part) / full.total
        assert abs(share - full_share) < 0.01
    assert schedule.alpha(schedule.ssa + schedule.grow - 1, start=schedule.ssa) < schedule.ceiling
    assert schedule.alpha(schedule.ssa + schedule.grow, start=schedule.ssa) == pytest.approx(schedule.ceiling)
    assert schedule.alpha(schedule.prune_at, start=0) == 0.0
    assert [schedule.phase(t) for t in (0, schedule.ssa, schedule.ssa + schedule.grow, schedule.prune_at, 3000)] == [
        "align", "grow", "hold", "finetune", "done"]


def test_resume_from_state_dict_matches_an_uninterrupted_run(tmp_path):
    x = torch.randn(1, 3, 12, 12)
    spec = fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=30)

    def fresh():
        torch.manual_seed(5)
        return fxprune.prepare(build("edsr", blocks=2, channels=16), spec, (x,))

    straight = fresh()
    _train(straight, x, 30, seed=1)
    first = fresh()
    _train(first, x, 25, seed=1)  # past the prune point: masks are in
    assert first.masked
    torch.save(first.state_dict(), tmp_path / "pruner.pt")
    resumed = fresh()
    resumed.load_state_dict(torch.load(tmp_path / "pruner.pt"))
    assert resumed.step_count == 25 and resumed.masked
    with torch.no_grad():
        torch.testing.assert_close(resumed.model(x), first.model(x))
    for gid, units in first.unimportant.items():
        np.testing.assert_array_equal(resumed.unimportant[gid], units)


def test_bad_states_and_wrong_stage_are_rejected():
    x = torch.randn(1, 3, 12, 12)
    pruner = fxprune.prepare(build("edsr", blocks=2, channels=16), fxprune.Spec(method="assl", steps=10), (x,))
    state = pruner.state_dict()
    with pytest.raises(fxprune.CheckpointError, match="format"):
        pruner.load_state_dict({"weights": 1})
    with pytest.raises(fxprune.CheckpointError, match="another spec"):
        pruner.load_state_dict({**state, "spec": {**state["spec"], "ratio": 0.25}})
    with pytest.raises(fxprune.CheckpointError, match="tensors"):
        pruner.load_state_dict({**state, "model": {k: v for k, v in list(state["model"].items())[1:]}})
    with pytest.raises(fxprune.CheckpointError, match="corrupt"):
        pruner.load_state_dict({k: v for k, v in state.items() if k != "step"})
    with pytest.raises(fxprune.StageError, match="not pruner.model"):
        fxprune.convert(pruner.model)
    with pytest.raises(fxprune.SpecError, match="method"):
        fxprune.prepare(build("edsr", blocks=1, channels=8), fxprune.Spec(method="l1"), (x,))
    with pytest.warns(UserWarning, match="has not finished"):
        fxprune.convert(pruner)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(), seed=st.integers(0, 2**16), align=st.sampled_from(["joint", "ssa"]))
def test_random_nets_gate_train_and_convert_exactly(program, seed, align):
    """On random architectures: gated == original at init, and the converted model equals the
    fine-tuned masked model (BN in eval mode so both see the same statistics)."""
    torch.manual_seed(seed)
    model = RandomNet(program).eval()
    x = torch.randn(2, 3, 8, 8)
    pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=8, align=align), (x,))
    with torch.no_grad():
        torch.testing.assert_close(pruner.model(x), model(x))
    if not pruner.groups:
        return
    _train(pruner, x, pruner.schedule.total, seed=seed)
    small = fxprune.convert(pruner)
    probe = torch.randn(1, 3, 10, 6)
    with torch.no_grad():
        torch.testing.assert_close(small(probe), pruner.model.eval()(probe))


def test_gate_ratio_reports_how_far_the_penalty_has_pushed():
    model = build("edsr", blocks=2, channels=16)
    x = torch.randn(1, 3, 12, 12)
    pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=100), (x,))
    start = pruner.gate_ratio()
    assert 0 < start < 1  # the L1 plan drops the weaker filters
    with torch.no_grad():
        for group in pruner.groups:
            for site, units in zip(group.sites, group.unit_of_channel):
                gamma = pruner.model.get_submodule(site.gate).gamma
                gamma[torch.as_tensor(pruner.unimportant[group.gid][units])] *= 0.1
    assert pruner.gate_ratio() == pytest.approx(0.1 * start, rel=1e-5)
    assert "dropped/kept" in repr(pruner)
